"""The cell kernel (notify placement): syscalls the gate routes to it are answered from the
cell's cgroup limits, so programs size themselves to the cell. Each view is checked in a
cell (gate on) and, to show the test can fail, natively (gate off), where the host's
numbers come back.
"""
import os
import re

import pytest

from helpers import NATIVE_ANNOTATIONS

pytestmark = pytest.mark.runcell_specific

HOST_CPUS = len(os.sched_getaffinity(0))


def as_cell(bundle):
    bundle.config["annotations"] = {
        k: v for k, v in bundle.config.get("annotations", {}).items() if k not in NATIVE_ANNOTATIONS
    }


def limits(bundle, memory=None, quota=None, period=100000):
    res = bundle.linux.setdefault("resources", {})
    if memory:
        res["memory"] = {"limit": memory, "swap": memory}
    if quota:
        res["cpu"] = {"quota": quota, "period": period}


def free_total_kib(output):
    """busybox free's "Mem:" total (KiB), from sysinfo(2): the first column, 15 wide.
    (Its "used" column subtracts /proc/meminfo's Cached, which still shows the host's
    page cache — the file views are not served yet — and can wrap into the next column.)"""
    m = re.search(r"^Mem:(.{15})", output, re.M)
    assert m, output
    return int(m.group(1))


def host_memtotal_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    raise AssertionError("no MemTotal")


@pytest.mark.skipif(HOST_CPUS < 2, reason="needs at least 2 CPUs to see a quota cut them down")
@pytest.mark.parametrize("cell", [True, False], ids=["cell", "native"])
def test_nproc_follows_the_cpu_quota(h, bundle, cell):
    if cell:
        as_cell(bundle)
    limits(bundle, quota=50000)  # half a CPU
    bundle.args("nproc")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    assert int(res.out) == (1 if cell else HOST_CPUS)


@pytest.mark.skipif(HOST_CPUS < 2, reason="needs at least 2 CPUs")
def test_a_fractional_quota_rounds_up(h, bundle):
    as_cell(bundle)
    limits(bundle, quota=150000)  # 1.5 CPUs
    bundle.args("nproc")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    assert int(res.out) == min(2, HOST_CPUS)


@pytest.mark.parametrize("cell", [True, False], ids=["cell", "native"])
def test_sysinfo_follows_the_memory_limit(h, bundle, cell):
    if cell:
        as_cell(bundle)
    limits(bundle, memory=256 << 20)
    bundle.args("free")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    total = free_total_kib(res.out)
    if cell:
        assert total == 256 << 10
    else:
        assert abs(total - host_memtotal_kib()) <= 1024


def test_no_limits_show_the_host(h, bundle):
    as_cell(bundle)
    bundle.sh("nproc; free")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    assert int(res.out.split()[0]) == HOST_CPUS
    assert abs(free_total_kib(res.out) - host_memtotal_kib()) <= 1024


@pytest.mark.skipif(HOST_CPUS < 2, reason="needs at least 2 CPUs")
def test_exec_is_served_too(h, bundle):
    as_cell(bundle)
    limits(bundle, memory=128 << 20, quota=50000)
    bundle.args("sleep", "60")
    cid = h.run_detached(bundle)
    res = h("exec", cid, "sh", "-c", "nproc; free")
    assert res.rc == 0, res.describe()
    assert int(res.out.split()[0]) == 1
    assert free_total_kib(res.out) == 128 << 10
    assert h.kill(cid, "KILL").rc == 0


@pytest.mark.skipif(HOST_CPUS < 2, reason="needs at least 2 CPUs")
def test_another_process_affinity_is_the_kernels(h, bundle):
    """sched_getaffinity for another pid goes on to the kernel (the pid is in the cell's
    namespace): taskset -p shows the real mask while nproc shows the cell's view."""
    as_cell(bundle)
    limits(bundle, quota=50000)
    bundle.sh("nproc; taskset -p 1")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    lines = res.out.split("\n")
    assert int(lines[0]) == 1
    mask = int(lines[1].rsplit(":", 1)[1].strip(), 16)
    assert bin(mask).count("1") == HOST_CPUS, res.out


# --- the file views (FUSE, served by the cell kernel) ------------------------------------

def meminfo_kib(text, key):
    m = re.search(rf"^{re.escape(key)}:\s+(\d+) kB", text, re.M)
    assert m, text
    return int(m.group(1))


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host")
@pytest.mark.parametrize("cell", [True, False], ids=["cell", "native"])
def test_proc_and_sys_views_follow_the_limits(h, bundle, cell):
    if cell:
        as_cell(bundle)
    limits(bundle, memory=256 << 20, quota=50000)
    bundle.sh("cat /proc/meminfo; echo ==; grep -c ^processor /proc/cpuinfo; echo ==;"
              " grep -c '^cpu[0-9]' /proc/stat; echo ==; cat /sys/devices/system/cpu/online;"
              " echo ==; cat /proc/uptime; echo ==; free")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    meminfo, processors, stat_cpus, online, uptime, free = res.out.split("==\n")
    if cell:
        assert meminfo_kib(meminfo, "MemTotal") == 256 << 10
        assert meminfo_kib(meminfo, "MemFree") <= 256 << 10
        assert meminfo_kib(meminfo, "SwapTotal") == 0
        assert int(processors) == 1 and int(stat_cpus) == 1  # half a CPU of quota
        assert online.strip() == "0"
        # the cell's uptime: seconds since its init started, not the host's
        assert float(uptime.split()[0]) < 60
        # free's columns add up: used = total - free - buff/cache is not negative
        mem = re.search(r"^Mem:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", free, re.M)
        assert mem and int(mem.group(1)) == 256 << 10 and int(mem.group(2)) < 256 << 10, free
    else:
        assert meminfo_kib(meminfo, "MemTotal") == host_memtotal_kib()
        assert int(processors) == len([ln for ln in open("/proc/cpuinfo") if ln.startswith("processor")])


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host")
def test_views_are_read_only_and_only_inside_the_cell(h, bundle, workdir):
    as_cell(bundle)
    limits(bundle, memory=128 << 20)
    bundle.sh("grep -E ' /proc/meminfo | /sys/devices/system/cpu/online ' /proc/self/mountinfo;"
              " echo x > /proc/meminfo && echo WRITABLE; true")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    assert res.out.count("fuse.runcell") == 2, res.out
    assert "WRITABLE" not in res.out
    # nothing of it is mounted on the host
    with open("/proc/self/mountinfo") as f:
        assert "fuse.runcell" not in f.read()


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host")
def test_views_of_an_exec_and_after_a_long_time(h, bundle):
    """Views are files of the container's mount namespace: an exec'd process sees them,
    and they keep being served while the cell runs."""
    as_cell(bundle)
    limits(bundle, memory=64 << 20)
    bundle.args("sleep", "60")
    cid = h.run_detached(bundle)
    for _ in range(3):
        res = h("exec", cid, "sh", "-c", "head -1 /proc/meminfo")
        assert res.rc == 0, res.describe()
        assert meminfo_kib(res.out, "MemTotal") == 64 << 10
    assert h.kill(cid, "KILL").rc == 0


def test_a_cell_with_a_user_namespace_runs_without_file_views(h, bundle):
    """FUSE mounts only in the user namespace that opened /dev/fuse, which the init cannot
    open itself: such a cell runs, with the gate and routed syscalls, and the host's
    /proc/meminfo (documented limitation)."""
    from test_namespaces import _userns_bundle  # the user namespace suite's bundle set-up

    as_cell(bundle)
    _userns_bundle(bundle)
    limits(bundle, memory=128 << 20)
    bundle.sh("grep Seccomp_filters /proc/self/status; free; head -1 /proc/meminfo")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    assert "Seccomp_filters:\t2" in res.out
    assert free_total_kib(res.out) == 128 << 10  # sysinfo is routed
    assert meminfo_kib(res.out, "MemTotal") == host_memtotal_kib()


# --- the placement: notify (default) or xgate where the CPU has protection keys ----------

def host_has_pku():
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    return "pku" in flags and "ospke" in flags


@pytest.mark.parametrize("asked", [None, "notify", "xgate"])
def test_placement_in_state_and_log(h, bundle, workdir, asked):
    """The placement asked for is the one in force, except xgate on a CPU without
    protection keys: notify then, and the log says why. Either way the routed syscalls are
    served (free shows the limit). The xgate placement itself is tested in the MPK lane
    (test_xgate_lane.py)."""
    as_cell(bundle)
    if asked:
        bundle.config.setdefault("annotations", {})["run.runcell.placement"] = asked
    limits(bundle, memory=128 << 20)
    bundle.args("sleep", "60")
    log = workdir / "placement.log"
    cid = h.new_id()
    bundle.write()
    res = h("--log", log, "run", "--detach", "--bundle", bundle.path, h.track_id(cid))
    assert res.rc == 0, res.describe()
    want = "xgate" if asked == "xgate" and host_has_pku() else "notify"
    assert h.state(cid)["annotations"]["run.runcell.placement"] == want
    text = log.read_text()
    assert f"cell kernel placement {want}" in text, text
    if asked == "xgate" and want == "notify":
        assert "needs protection keys (PKU)" in text, text
    res = h("exec", cid, "sh", "-c", "free")
    assert res.rc == 0, res.describe()
    assert free_total_kib(res.out) == 128 << 10
    assert h.kill(cid, "KILL").rc == 0


def test_placement_without_the_gate_is_not_shown(h, bundle):
    """A container with the gate off has no cell kernel: no placement in its state."""
    bundle.args("true")
    cid = h.create_ok(bundle)
    assert "run.runcell.placement" not in h.state(cid).get("annotations", {})
    assert h("delete", "--force", cid).rc == 0


def test_unknown_placement_is_refused_and_leaves_nothing(h, bundle):
    as_cell(bundle)
    bundle.config.setdefault("annotations", {})["run.runcell.placement"] = "fast"
    bundle.args("true")
    cid = h.new_id()
    res = h.create(bundle, cid)
    assert res.rc != 0
    assert ('annotations: run.runcell.placement: must be "notify" or "xgate", got "fast"'
            in res.err), res.describe()
    assert h("state", cid).rc != 0


def cell_kernel_pids():
    """Pids of the runcell-cellk processes on the host (the notify placement's supervisors)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == "runcell-cellk":
                    found.add(int(entry))
        except OSError:
            pass
    return found


def test_cell_kernels_end_with_the_cell(h, bundle):
    """The init's cell kernel and an exec's one serve their listener from a thread blocked
    in NOTIF_RECV; each must still end once the processes it serves are gone, not linger
    with that thread."""
    import time

    before = cell_kernel_pids()
    as_cell(bundle)
    limits(bundle, quota=50000)
    bundle.args("sleep", "60")
    cid = h.run_detached(bundle)
    # a detached exec keeps its own cell kernel while it runs
    res = h("exec", "--detach", cid, "sh", "-c", "nproc; sleep 60")
    assert res.rc == 0, res.describe()
    mine = cell_kernel_pids() - before
    assert len(mine) >= 2, f"expected the init's and the exec's cell kernels, found {mine}"
    assert h("exec", cid, "nproc").out.strip() == "1"  # and a third, served and gone
    assert h("delete", "--force", cid).rc == 0
    deadline = time.monotonic() + 10
    while mine & cell_kernel_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not mine & cell_kernel_pids(), "cell kernels outlived their cell"


def cpu_seconds(pid):
    """CPU time (user + system, every thread) the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_cell_kernel_idles_once_its_listener_hangs_up(h, bundle):
    """Without a pid namespace, a process exec'd into the cell can outlive the init: the
    init's cell kernel then still serves the views filesystem (that process has it mounted)
    while the init's gate listener has hung up. On kernels that fail RECV at once on such a
    listener, a listener thread that retried it spun a CPU until the cell ended; it must
    end instead, and the cell kernel sit idle."""
    import time

    before = cell_kernel_pids()
    as_cell(bundle)
    bundle.drop_namespace("pid")
    bundle.args("sleep", "60")
    cid = h.run_detached(bundle)
    res = h("exec", "--detach", cid, "sleep", "60")
    assert res.rc == 0, res.describe()
    mine = cell_kernel_pids() - before
    assert len(mine) == 2, f"expected the init's and the exec's cell kernels, found {mine}"
    assert h.kill(cid, "KILL").rc == 0
    h.wait_status(cid, "stopped")
    time.sleep(0.2)  # let the init's cell kernel see the hang-up
    # the exec's cell kernel serves the live process; the init's one the views it uses
    assert mine <= cell_kernel_pids(), "a cell kernel ended while its cell still runs"
    used = {pid: cpu_seconds(pid) for pid in mine}
    time.sleep(1.0)
    spent = {pid: cpu_seconds(pid) - used[pid] for pid in mine}
    assert all(s < 0.3 for s in spent.values()), f"a cell kernel kept a CPU busy: {spent}"
    assert h("delete", "--force", cid).rc == 0
    deadline = time.monotonic() + 10
    while mine & cell_kernel_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not mine & cell_kernel_pids(), "cell kernels outlived their cell"


@pytest.mark.parametrize("failing", ["before-views", "after-views"])
def test_failed_create_leaves_no_cell_kernel(h, bundle, tmp_path, failing):
    """The cell kernel starts while the init sets up. A create that fails before the init
    has mounted the views (a bind mount of a missing source) or after it handed them over
    (a failing createRuntime hook) must not leave it behind: it exits when the control
    socket closes with no views mounted, or once the init is gone and the views with it."""
    import time

    before = cell_kernel_pids()
    as_cell(bundle)
    bundle.args("true")
    if failing == "before-views":
        bundle.bind(tmp_path / "missing", "/mnt")
        reason = str(tmp_path / "missing")
    else:
        bundle.config["hooks"] = {"createRuntime": [
            {"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]}
        reason = "createRuntime"
    cid = h.new_id()
    res = h.create(bundle, cid)
    assert res.rc != 0 and reason in res.err, res.describe()  # failed where meant to
    deadline = time.monotonic() + 10
    while cell_kernel_pids() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not cell_kernel_pids() - before, "a failed create left its cell kernel"
    assert h("state", cid).rc != 0
