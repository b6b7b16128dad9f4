"""cgroups on v1, v2 and hybrid hosts: the container's cgroup, its limits, its removal.

The host may keep a controller in a v1 hierarchy (/sys/fs/cgroup/<controller>) or in the
cgroup2 hierarchy (/sys/fs/cgroup or, hybrid, /sys/fs/cgroup/unified); each check reads
the file names of the version that holds the controller.
"""
import os
import time
from pathlib import Path

import pytest

from helpers import CGROUP_TEST_PARENT, cgroup_dirs_named, controller_dir, process_alive

MiB = 1024 * 1024

# controller -> [(v1 file, v1 value, v2 file, v2 value)]
LIMITS = {
    "memory": [("memory.limit_in_bytes", str(64 * MiB), "memory.max", str(64 * MiB))],
    "pids": [("pids.max", "20", "pids.max", "20")],
    "cpu": [
        ("cpu.cfs_quota_us", "50000", "cpu.max", "50000 100000"),
        ("cpu.cfs_period_us", "100000", "cpu.max", "50000 100000"),
    ],
}


def proc_cgroups(pid):
    """{controller or "" (v2): path} from /proc/<pid>/cgroup."""
    result = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if not ctrls:
            result[""] = path
        for c in ctrls.split(","):
            if c:
                result[c.removeprefix("name=")] = path
    return result


def limited_bundle(bundle, cid):
    path = f"/{CGROUP_TEST_PARENT}/{cid}"
    bundle.linux["cgroupsPath"] = path
    bundle.linux["resources"].update(
        memory={"limit": 64 * MiB},
        pids={"limit": 20},
        cpu={"quota": 50000, "period": 100000},
    )
    return path


def available_controllers():
    found = {c: controller_dir(c) for c in LIMITS}
    return {c: v for c, v in found.items() if v[0] is not None}


def test_cgroup_limits_visible_on_the_host(h, bundle):
    ctrls = available_controllers()
    if not ctrls:
        pytest.skip("no memory, pids or cpu controller is mounted on this host")
    cid = h.new_id()
    path = limited_bundle(bundle, cid)
    bundle.args("sleep", "60")
    res = h.create(bundle, cid)
    assert res.rc == 0, res.describe()
    pid = h.state(cid)["pid"]

    def check():
        in_cgroups = proc_cgroups(pid)
        for ctrl, (mount, version) in ctrls.items():
            d = mount / path.lstrip("/")
            assert d.is_dir(), f"{ctrl}: {d} missing"
            assert str(pid) in (d / "cgroup.procs").read_text().split(), f"{pid} not in {d}"
            key = ctrl if version == 1 else ""
            assert in_cgroups.get(key) == path, (ctrl, in_cgroups)
            for v1_file, v1_value, v2_file, v2_value in LIMITS[ctrl]:
                name, want = (v1_file, v1_value) if version == 1 else (v2_file, v2_value)
                assert (d / name).read_text().strip() == want, f"{d / name}"

    check()  # created: already in its cgroup with its limits
    h.start_ok(cid)
    check()
    assert h.delete(cid, force=True).rc == 0
    assert not process_alive(pid)
    for ctrl, (mount, _) in ctrls.items():
        assert not (mount / path.lstrip("/")).exists(), f"{ctrl} cgroup left after delete"


def test_pids_limit_is_enforced(h, bundle):
    if controller_dir("pids")[0] is None:
        pytest.skip("the pids controller is not mounted on this host")
    cid = h.new_id()
    bundle.linux["cgroupsPath"] = f"/{CGROUP_TEST_PARENT}/{cid}"
    bundle.linux["resources"]["pids"] = {"limit": 10}
    # ash gives up at the first fork that fails; the pid namespace takes the sleeps down
    # with it.
    bundle.sh("exec 2>&1; for i in " + " ".join(map(str, range(20))) + "; do sleep 30 & done; "
              "echo all-forked")
    res = h.run_container(bundle, cid)
    assert "all-forked" not in res.out, res.describe()
    assert "fork" in res.out.lower() or "resource temporarily unavailable" in res.out.lower(), \
        res.out


def test_memory_limit_is_enforced(h, bundle):
    if controller_dir("memory")[0] is None:
        pytest.skip("the memory controller is not mounted on this host")
    cid = h.new_id()
    bundle.linux["cgroupsPath"] = f"/{CGROUP_TEST_PARENT}/{cid}"
    bundle.linux["resources"]["memory"] = {"limit": 16 * MiB, "swap": 16 * MiB}
    bundle.config["root"]["readonly"] = False
    # Fill a 64 MiB tmpfs: its pages are charged to the container's cgroup.
    bundle.add_mount("/big", "tmpfs", "tmpfs", ["size=64m"])
    bundle.sh("dd if=/dev/zero of=/big/fill bs=1M count=48 2>/dev/null; echo rc=$?")
    res = h.run_container(bundle, cid)
    # Killed by the OOM killer (137) or a failed write: either way not 48 MiB.
    assert res.rc != 0 or "rc=0" not in res.out, res.describe()


def test_default_cgroup_is_named_after_the_id(h, bundle):
    bundle.args("sleep", "60")
    cid = h.create_ok(bundle)
    pid = h.state(cid)["pid"]
    paths = proc_cgroups(pid)
    mine = proc_cgroups(os.getpid())
    named = [c for c, p in paths.items() if p.endswith(f"/{cid}")]
    assert named, f"the container is in no cgroup named {cid}: {paths} (host: {mine})"
    assert cgroup_dirs_named(cid)
    assert h.delete(cid, force=True).rc == 0
    deadline = time.time() + 5
    while cgroup_dirs_named(cid) and time.time() < deadline:
        time.sleep(0.05)
    assert cgroup_dirs_named(cid) == []


@pytest.mark.runcell_specific
def test_default_cgroup_path_is_runcell_id(h, bundle):
    bundle.args("sleep", "60")
    cid = h.create_ok(bundle)
    paths = proc_cgroups(h.state(cid)["pid"])
    for ctrl in ("memory", "pids", "cpu"):
        if ctrl in paths:
            assert paths[ctrl] == f"/runcell/{cid}", paths


def test_cgroup_removed_when_create_fails(h, bundle):
    cid = h.new_id()
    bundle.linux["cgroupsPath"] = f"/{CGROUP_TEST_PARENT}/{cid}"
    bundle.args("/nonexistent")
    res = h.create(bundle, cid)
    assert res.rc != 0
    assert cgroup_dirs_named(cid) == []


@pytest.mark.runcell_specific  # runc 1.1.5 only warns (runc 1.2 refuses, in these words)
def test_a_cgroup_that_already_holds_processes_is_refused(h, bundle):
    """Two containers given one cgroupsPath (red team, session 18: the second's `kill --all`
    and delete reached the first's, and any host process, in it): the second create is
    refused before anything exists, and the first keeps running in its cgroup."""
    path = f"/{CGROUP_TEST_PARENT}/{h.new_id()}"
    bundle.linux["cgroupsPath"] = path
    bundle.args("sleep", "1000")
    first = h.run_detached(bundle)
    pid = h.state(first)["pid"]
    second = h.new_id()
    res = h.create(bundle, second)
    assert res.rc != 0, res.describe()
    assert "container's cgroup is not empty: 1 process(es) found" in res.msg, res.describe()
    assert h("state", second).rc != 0
    assert not (h.rt.root / second).exists()
    assert process_alive(pid)
    assert h.status(first) == "running"
    name = path.rsplit("/", 1)[1]
    assert cgroup_dirs_named(name), "the first container's cgroup was removed"
    assert h.delete(first, force=True).rc == 0
    assert cgroup_dirs_named(name) == []


def test_cgroup_removed_when_container_exits_and_is_deleted(h, bundle):
    cid = h.new_id()
    bundle.linux["cgroupsPath"] = f"/{CGROUP_TEST_PARENT}/{cid}"
    bundle.args("true")
    assert h.create(bundle, cid).rc == 0
    h.start_ok(cid)
    h.wait_status(cid, "stopped")
    assert h.delete(cid).rc == 0
    assert cgroup_dirs_named(cid) == []


def test_cgroup_mount_inside_the_container(h, bundle):
    bundle.sh("grep -E ' /sys/fs/cgroup' /proc/self/mounts | cut -d' ' -f2,3,4")
    lines = h.output_of(bundle).splitlines()
    assert lines, "no cgroup mount under /sys/fs/cgroup"
    for line in lines:
        target, fstype, opts = line.split()
        assert fstype in ("tmpfs", "cgroup", "cgroup2"), line
        if fstype != "tmpfs":
            assert "ro" in opts.split(","), line


# --- how processes get into the container's cgroup
#
# The init and every exec'd process join the container's cgroups themselves (a v1
# hierarchy by writing "0" to its `tasks` file, v2 by being cloned into it with clone3's
# CLONE_INTO_CGROUP), which spares the RCU grace period that moving another process costs.
# A process that enters the container's cgroup namespace cannot see its own cgroup, so
# there the runtime moves it into the v2 hierarchy. Each way must end with the process in
# the container's cgroup in every hierarchy the host has, and nowhere else.


def _host_hierarchies():
    """The hierarchy keys of /proc/self/cgroup: "" (v2) and each v1 controller set."""
    return set(proc_cgroups(os.getpid()))


@pytest.mark.parametrize("namespaces", [(), ("cgroup",), ("cgroup", "user")],
                         ids=["host-cgroupns", "cgroupns", "cgroupns+userns"])
def test_init_and_exec_join_every_hierarchy(h, bundle, namespaces):
    if "user" in namespaces:
        from test_namespaces import _userns_bundle
        _userns_bundle(bundle)
    for ns in namespaces:
        bundle.set_namespace(ns)
    cid = h.new_id()
    path = f"/{CGROUP_TEST_PARENT}/{cid}"
    bundle.linux["cgroupsPath"] = path
    bundle.args("sleep", "60")
    res = h.create(bundle, cid)
    assert res.rc == 0, res.describe()
    init = h.state(cid)["pid"]
    want = {key: path for key in _host_hierarchies()}
    assert proc_cgroups(init) == want, "init after create"
    h.start_ok(cid)
    res = h("exec", "--detach", "--pid-file", str(h.workdir / f"{cid}.pid"), cid, "sleep", "50")
    assert res.rc == 0, res.describe()
    pid = int((h.workdir / f"{cid}.pid").read_text())
    h.note_pid(pid)
    assert proc_cgroups(pid) == want, "exec'd process"
    if "cgroup" in namespaces:
        # joined before the namespace was made: the namespace's root is the container's
        # cgroup, so inside it every hierarchy shows "/"
        res = h("exec", cid, "cat", "/proc/self/cgroup")
        assert res.rc == 0, res.describe()
        inside = {line.split(":", 2)[2] for line in res.out.splitlines()}
        assert inside == {"/"}, res.out
    assert h.delete(cid, force=True).rc == 0
    assert not process_alive(pid) and not process_alive(init)
    assert not cgroup_dirs_named(cid), "cgroup left after delete"
