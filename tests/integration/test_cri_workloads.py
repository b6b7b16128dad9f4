"""Kubernetes workloads through containerd's CRI plugin, runcell next to runc.

test_cri.py shows the handlers load and pick the mode; this file runs what a kubelet asks of
a runtime for ordinary pods — a securityContext, resources and their update, stats, env and
working directory, hostPath volumes, graceful and forced stops, OOM kills, restarts — each
first under containerd's default handler (Debian's runc) and then under runcell's handlers
(a cell with the gate on, and runcell-native), and asserts that the kubelet would see the
same thing from both: same ids, capabilities, flags, cgroup limits, outputs, exit codes and
reasons. The CRI messages are those the kubelet sends (cri_client.py).
"""
import os
import re
import secrets
import signal
import stat
import time
from pathlib import Path

import pytest

from cri_client import (CONTAINER, CONTAINER_EXITED, CONTAINER_RUNNING, POD, RUNTIME_DEFAULT,
                        container_config, linux_container_resources, linux_security_context,
                        mount)
from helpers import cgroup_dirs_named
from oci_image import IMAGE_REF
import test_cri

# test_cri's fixtures: a containerd of this module's own with the shipped handler config,
# and the pods a test runs (removed, and checked for leftovers, after it)
cri = test_cri.cri
pods = test_cri.pods

pytestmark = pytest.mark.containerd

HANDLERS = ["runcell", "runcell-native"]


def start(pods, handler, command, pod=None, **config):
    """A pod under handler (pod: more pod_sandbox_config() arguments) and one container in
    it (its own pid namespace, as the kubelet asks for v1 pods unless
    shareProcessNamespace), started; returns the container id."""
    pod_id, pod_cfg = pods.run_pod(handler, **(pod or {}))
    name = f"c{secrets.token_hex(3)}"
    config.setdefault("security_context", linux_security_context(pid=CONTAINER))
    cfg = container_config(name, IMAGE_REF, command, f"{name}.log", **config)
    cid = pods.client.create_container(pod_id, cfg, pod_cfg)
    pods.containers.append(cid)
    pods.client.start_container(cid)
    return cid


def running(pods, handler, command=("sleep", "1000"), **config):
    cid = start(pods, handler, list(command), **config)
    st = pods.client.wait_container_state(cid, CONTAINER_RUNNING)
    assert st["state"] == CONTAINER_RUNNING, (handler, st)
    return cid


def exec_ok(pods, cid, script):
    code, out, err = pods.client.exec_sync(cid, ["sh", "-c", script])
    assert code == 0, (script, code, out, err)
    return out


def exited(pods, cid, timeout=60):
    st = pods.client.wait_container_state(cid, CONTAINER_EXITED, timeout=timeout)
    assert st["state"] == CONTAINER_EXITED, st
    return st


def same_as_runc(pods, handler, scenario):
    """scenario(handler) under runc and under handler: both results, runc's first."""
    return scenario("runc"), scenario(handler)


def container_cgroup(cid):
    """{controller: cgroup directory} of a container (v1 controllers and the unified tree)."""
    found = {}
    for d in cgroup_dirs_named(cid):
        hierarchy = Path(d).relative_to("/sys/fs/cgroup").parts[0]  # e.g. cpu,cpuacct
        for controller in hierarchy.split(","):
            found[controller] = Path(d)
    return found


STATUS_FIELDS = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                 "NoNewPrivs")


@pytest.mark.parametrize("handler", HANDLERS)
def test_a_security_context_gives_what_runc_gives(pods, handler):
    """runAsUser/runAsGroup/supplementalGroups, readOnlyRootFilesystem, capabilities
    (drop ALL, add NET_BIND_SERVICE), allowPrivilegeEscalation false, the RuntimeDefault
    seccomp profile: the init and an exec'd process get the same ids, capability sets and
    flags as under runc, and the root filesystem refuses a write the same way."""
    sc = linux_security_context(run_as_user=1000, run_as_group=3000, supplemental_groups=[4000],
                                readonly_rootfs=True, cap_add=["NET_BIND_SERVICE"],
                                cap_drop=["ALL"], no_new_privs=True, pid=CONTAINER,
                                seccomp=RUNTIME_DEFAULT)

    def scenario(h):
        cid = running(pods, h, security_context=sc)
        init = exec_ok(pods, cid, "cat /proc/1/status")
        execd = exec_ok(pods, cid, "cat /proc/self/status")
        write = pods.client.exec_sync(cid, ["sh", "-c", "touch /x 2>&1; echo rc=$?"])
        fields = [{k: v for k, v in re.findall(r"^(\w+):\s*(.*)$", text, re.M)
                   if k in STATUS_FIELDS} for text in (init, execd)]
        seccomp = [re.search(r"^Seccomp:\s*(\d)", text, re.M).group(1) for text in (init, execd)]
        return fields, seccomp, write

    runc, ours = same_as_runc(pods, handler, scenario)
    assert runc[0][0]["Uid"].split()[0] == "1000", runc  # the reference did what was asked
    assert runc[0][0]["CapBnd"] == "0000000000000400", runc  # NET_BIND_SERVICE alone
    assert ours[0] == runc[0], (handler, ours[0], runc[0])
    assert ours[2] == runc[2], (handler, ours[2], runc[2])
    assert "Read-only file system" in runc[2][1], runc[2]
    # the profile is a seccomp filter in both (a cell adds its gate, a second filter)
    assert runc[1] == ["2", "2"] and ours[1] == ["2", "2"], (runc[1], ours[1])


@pytest.mark.parametrize("handler", HANDLERS)
def test_env_working_dir_and_a_read_only_host_path(pods, handler, tmp_path):
    """envs, workingDir, and a hostPath volume (readOnly): the same view as under runc, the
    host file readable, a write refused, the host directory unchanged."""
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "data").write_text("from the host\n")
    script = ('echo "$GREETING $OTHER"; pwd; cat /data/data; '
              'echo x > /data/new 2>/dev/null; echo write=$?')

    def scenario(h):
        cid = running(pods, h, envs={"GREETING": "hello", "OTHER": "a b  c"},
                      working_dir="/tmp", mounts=[mount("/data", vol, readonly=True)])
        return exec_ok(pods, cid, script)

    runc, ours = same_as_runc(pods, handler, scenario)
    assert runc == "hello a b  c\n/tmp\nfrom the host\nwrite=1\n", runc
    assert ours == runc, (handler, ours)
    assert sorted(p.name for p in vol.iterdir()) == ["data"]


CGROUP_FILES = {"cpu": ("cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares"),
                "memory": ("memory.limit_in_bytes",)}


def cgroup_values(cid):
    dirs = container_cgroup(cid)
    return {f: (dirs[c] / f).read_text().strip() for c, files in CGROUP_FILES.items()
            for f in files}


@pytest.mark.parametrize("handler", HANDLERS)
def test_resources_and_their_update_land_in_the_cgroup_as_under_runc(pods, handler):
    """A pod's CPU and memory limits at create, then UpdateContainerResources (what the
    kubelet sends for an in-place resize): the container's cgroup files hold runc's values
    after each, and the limit is the one the container itself sees."""
    if not Path("/sys/fs/cgroup/cpu").is_dir() or not Path("/sys/fs/cgroup/memory").is_dir():
        pytest.skip("needs the v1 cpu and memory hierarchies (this test reads their files); "
                    "the pure cgroup v2 lane compares runc's and runcell's v2 files")
    at_create = linux_container_resources(cpu_period=100000, cpu_quota=50000, cpu_shares=512,
                                          memory_limit_in_bytes=96 << 20)
    updated = linux_container_resources(cpu_period=100000, cpu_quota=150000, cpu_shares=1024,
                                        memory_limit_in_bytes=160 << 20)

    def scenario(h):
        cid = running(pods, h, resources=at_create)
        before = cgroup_values(cid)
        pods.client.update_container_resources(cid, updated)
        after = cgroup_values(cid)
        seen = exec_ok(pods, cid, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
        return before, after, seen.strip()

    runc, ours = same_as_runc(pods, handler, scenario)
    assert runc[0]["cpu.cfs_quota_us"] == "50000" and runc[1]["cpu.shares"] == "1024", runc
    assert ours == runc, (handler, ours, runc)


@pytest.mark.parametrize("handler", HANDLERS)
def test_container_stats_report_cpu_and_memory(pods, handler):
    """ContainerStats (what the kubelet's summary API and the metrics server read): CPU time
    grows with the container's work and the working set holds what it allocated, under
    runcell as under runc."""
    work = ["sh", "-c", "x=$(head -c 20000000 /dev/zero | tr '\\0' a); "
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; touch /tmp/ready; "
            "while :; do sleep 1000; done"]  # a loop: a last plain command would be exec'd

    def scenario(h):
        cid = running(pods, h, command=work)
        deadline = time.monotonic() + 60
        while pods.client.exec_sync(cid, ["test", "-e", "/tmp/ready"])[0] != 0:
            assert time.monotonic() < deadline, f"{h}: the work did not finish in 60 s"
            time.sleep(0.2)
        return pods.client.container_stats(cid)

    runc, ours = same_as_runc(pods, handler, scenario)
    for name, stats in (("runc", runc), (handler, ours)):
        # the loop alone takes tens of milliseconds; the string holds 20 MB
        assert stats["cpu_ns"] and stats["cpu_ns"] > 10_000_000, (name, stats)
        assert stats["usage"] and stats["usage"] > 10 << 20, (name, stats)
        assert stats["working_set"] and stats["working_set"] > 10 << 20, (name, stats)


@pytest.mark.parametrize("handler", HANDLERS)
def test_stop_gives_sigterm_then_sigkill_after_the_grace_period(pods, handler):
    """StopContainer with a grace period: a process that exits on SIGTERM reports its own
    status; one that ignores SIGTERM is killed when the period ends (137). The same exit
    codes and reasons as under runc."""
    handles = ["sh", "-c", "trap 'exit 42' TERM; echo up; while :; do sleep 0.1; done"]
    ignores = ["sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.1; done"]

    def scenario(h):
        out = []
        for command, grace, field in ((handles, 10, "SigCgt"), (ignores, 2, "SigIgn")):
            cid = running(pods, h, command=command)
            # until the shell (pid 1 here) has set its trap: before it a SIGTERM to a pid 1
            # without a handler is dropped
            deadline = time.monotonic() + 30
            while not int(re.search(rf"^{field}:\s*(\w+)", exec_ok(pods, cid, "cat /proc/1/status"),
                                    re.M).group(1), 16) >> (signal.SIGTERM - 1) & 1:
                assert time.monotonic() < deadline, f"{h}: the shell set no TERM trap"
                time.sleep(0.05)
            begun = time.monotonic()
            pods.client.stop_container(cid, timeout=grace)
            took = time.monotonic() - begun
            st = exited(pods, cid)
            out.append((st["exit_code"], st["reason"], took >= grace if grace == 2 else None))
        return out

    runc, ours = same_as_runc(pods, handler, scenario)
    assert runc[0][0] == 42 and runc[1][0] == 137 and runc[1][2], runc
    assert ours == runc, (handler, ours, runc)


@pytest.mark.parametrize("handler", HANDLERS)
def test_an_oom_kill_is_reported_as_oomkilled(pods, handler):
    """A container over its memory limit: containerd reports reason OOMKilled and exit code
    137, as it does for runc (it learns of the kill from the cgroup's OOM event)."""
    hog = ["sh", "-c", "sleep 1; x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"]

    def scenario(h):
        cid = start(pods, h, hog,
                    resources=linux_container_resources(memory_limit_in_bytes=48 << 20))
        st = exited(pods, cid)
        return st["exit_code"], st["reason"]

    runc, ours = same_as_runc(pods, handler, scenario)
    assert runc == (137, "OOMKilled"), runc
    assert ours == runc, (handler, ours)


@pytest.mark.parametrize("handler", HANDLERS)
def test_a_restarted_container_runs_again_in_its_pod(pods, handler):
    """What the kubelet does on restartPolicy: a new container (attempt 1) with the same name
    in the same pod after the first exited, sharing the pod's namespaces; the exit codes of
    both are reported, as under runc."""
    def scenario(h):
        pod_id, pod_cfg = pods.run_pod(h)
        codes = []
        for attempt in (0, 1):
            cfg = container_config("app", IMAGE_REF, ["sh", "-c", f"exit {3 + attempt}"],
                                   f"app-{attempt}.log", attempt=attempt)
            cid = pods.client.create_container(pod_id, cfg, pod_cfg)
            pods.containers.append(cid)
            pods.client.start_container(cid)
            codes.append(exited(pods, cid)["exit_code"])
        return codes

    runc, ours = same_as_runc(pods, handler, scenario)
    assert runc == [3, 4], runc
    assert ours == runc, (handler, ours)


@pytest.mark.parametrize("handler", HANDLERS)
def test_exec_sync_exit_codes_output_and_timeout(pods, handler):
    """ExecSync (liveness/readiness probes, kubectl exec without a terminal): stdout and
    stderr apart, the exit code, and a command that outlives the probe's timeout is ended
    and reported as such, as under runc."""
    def scenario(h):
        cid = running(pods, h)
        plain = pods.client.exec_sync(cid, ["sh", "-c", "echo out; echo err >&2; exit 7"])
        begun = time.monotonic()
        try:
            pods.client.exec_sync(cid, ["sleep", "30"], timeout=1)
            timed_out = "no error"
        except Exception as e:  # noqa: BLE001 - containerd answers a timeout with an error
            timed_out = "DeadlineExceeded" if "DeadlineExceeded" in str(e) or \
                "timeout" in str(e).lower() else str(e)
        took = time.monotonic() - begun
        # the probe's process is gone: nothing but the init is left
        left = exec_ok(pods, cid, "ps -o comm= | grep -c '^sleep$' || true").strip()
        return plain, timed_out, took < 15, left

    runc, ours = same_as_runc(pods, handler, scenario)
    # the reference itself: the probe timed out in time and was ended (the init, `sleep
    # 1000`, is the one sleep left)
    assert runc == ((7, "out\n", "err\n"), "DeadlineExceeded", True, "1"), runc
    assert ours == runc, (handler, ours, runc)



@pytest.mark.parametrize("handler", HANDLERS)
def test_a_shared_process_namespace_shows_the_pods_processes(pods, handler):
    """shareProcessNamespace (pid POD): the container sees the pod's sandbox process and
    its own, and nothing of runcell's (a cell's kernel runs outside the pod's pid
    namespace), the same commands as under runc."""
    def scenario(h):
        cid = running(pods, h, security_context=linux_security_context(pid=POD))
        out = exec_ok(pods, cid, "ps -o comm=,args=")
        # the pause stand-in's `sleep 1` comes and goes: keep one line per distinct command
        return sorted(set(out.splitlines()))

    runc, ours = same_as_runc(pods, handler, scenario)
    assert any("trap 'exit 0' TERM" in line for line in runc), runc  # the sandbox's process
    assert ours == runc, (handler, ours, runc)


@pytest.mark.parametrize("handler", HANDLERS)
def test_the_pods_etc_files_and_shm(pods, handler):
    """/etc/hostname, /etc/hosts, /etc/resolv.conf (containerd's files for the pod, bound
    in) and the pod's /dev/shm: the same contents and mount options as under runc."""
    script = ("hostname; cat /etc/hostname /etc/hosts /etc/resolv.conf | md5sum; "
              "grep -E ' /etc/(hosts|hostname|resolv.conf) | /dev/shm ' /proc/self/mountinfo "
              "| cut -d' ' -f5,6,9-")

    def scenario(h):
        return exec_ok(pods, running(pods, h), script)

    runc, ours = same_as_runc(pods, handler, scenario)
    assert "/etc/resolv.conf" in runc and "/dev/shm" in runc, runc
    assert ours == runc, (handler, ours, runc)


def host_device():
    """(path, type letter, major, minor) of a host device node this host lets root open
    (the disk holding the root, else the kernel log, else a loop device), or None."""
    candidates = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/":
            candidates.append(fields[fields.index("-") + 2])
    candidates += ["/dev/kmsg", "/dev/loop0"]
    for path in candidates:
        try:
            st = os.stat(path)
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        except OSError:
            continue
        kind = "b" if stat.S_ISBLK(st.st_mode) else "c" if stat.S_ISCHR(st.st_mode) else None
        if kind:
            return path, kind, os.major(st.st_rdev), os.minor(st.st_rdev)
    return None


def test_a_privileged_pod_in_a_cell_gets_no_host_devices(pods):
    """A privileged pod on the runcell handler (the shipped config's
    privileged_without_host_devices, as Kata ships it) keeps every capability and its gate,
    but neither the host's device nodes nor a device cgroup that lets a node it makes open
    a host device (a disk, the kernel log); under runc (and runcell-native, which is runc's
    behaviour) the same pod opens it, which is what shows the test can fail."""
    dev = host_device()
    if dev is None:
        pytest.skip("this host lets root open none of its disk, /dev/kmsg or /dev/loop0")
    path, kind, major, minor = dev
    script = (f"grep -E '^(CapEff|Seccomp):' /proc/self/status; ls {path} 2>/dev/null; "
              f"mknod /hostdev {kind} {major} {minor}; echo mknod=$?; "
              "(exec 3< /hostdev) 2>/dev/null; echo open=$?")
    privileged = {"pod": {"privileged": True},
                  "security_context": linux_security_context(pid=CONTAINER, privileged=True)}
    seen = {h: exec_ok(pods, running(pods, h, **privileged), script)
            for h in ("runc", "runcell-native", "runcell")}
    full_caps = "CapEff:\t000001fffeffffff"
    for h in ("runc", "runcell-native"):
        assert full_caps in seen[h] and path in seen[h] and "open=0" in seen[h], (h, seen[h])
    assert full_caps in seen["runcell"], seen["runcell"]
    assert "Seccomp:\t2" in seen["runcell"], seen["runcell"]  # the gate stays
    assert path not in seen["runcell"], seen["runcell"]
    # the node is made (CAP_MKNOD), but the device cgroup does not let it open
    assert "mknod=0" in seen["runcell"] and "open=1" in seen["runcell"], seen["runcell"]


def test_a_privileged_pod_in_a_cell_cannot_change_the_hosts_kernel(pods):
    """A privileged pod's config leaves /proc/sys and /sys writable and masks nothing:
    under runc and runcell-native it rewrites a host-wide sysctl (vm.swappiness, with the
    value it read: the host is unchanged) and reads /proc/timer_list; in a cell (gate on) the
    floor keeps /proc/sys and /sys read-only and the kernel's information masked, which
    the gate alone could not (a write is file I/O; session-19 red team: core_pattern)."""
    script = ("v=$(cat /proc/sys/vm/swappiness); (echo $v > /proc/sys/vm/swappiness) "
              "2>/dev/null; echo sysctl=$?; grep -E ' /sys (rw|ro),' /proc/self/mountinfo | "
              "cut -d' ' -f5,6; [ -c /proc/timer_list ] && echo timers=masked || echo timers=shown")
    privileged = {"pod": {"privileged": True},
                  "security_context": linux_security_context(pid=CONTAINER, privileged=True)}
    seen = {h: exec_ok(pods, running(pods, h, **privileged), script)
            for h in ("runc", "runcell-native", "runcell")}
    for h in ("runc", "runcell-native"):
        assert "sysctl=0" in seen[h] and "/sys rw," in seen[h], (h, seen[h])
        assert "timers=shown" in seen[h], (h, seen[h])
    assert "sysctl=1" in seen["runcell"], seen["runcell"]
    assert "/sys ro," in seen["runcell"] and "timers=masked" in seen["runcell"], seen["runcell"]
