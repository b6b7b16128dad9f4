"""The systemd cgroup driver (`--systemd-cgroup`) on a bad day, against the real private
systemd 252 of systemd_harness.py (as test_systemd_cgroup.py, whose helpers this uses):
runcell SIGKILLed part-way through a create, creates and deletes in parallel, ids and
cgroupsPaths that systemd's unit names do not take, a unit of the same name already there,
systemd re-executed or reloaded (and an admin's set-property) between create and update or
delete, updates systemd refuses, the stand-in against a pids limit of 1, exec, the cell
mode, kill --all, pause and ps.

Each test leaves nothing behind (units, cgroup directories, state directories, processes:
SdHarness.leftovers) and checks that itself where the point is the cleanup.
"""
import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import helpers
from helpers import set_mode
from systemd_harness import systemd_or_skip
from test_systemd_cgroup import (
    SdHarness,
    Unit,
    assert_active_scope,
    assert_nothing_left,
    busybox_bundle,
    read,
    run_ok,
    scope_dirs,
    scoped_path,
    wait_unit_gone,
)

pytestmark = pytest.mark.runcell_specific
MiB = 1024 * 1024


# ---------------------------------------------------------------------------------------
# Fixtures: one private systemd for the module, runcell (and runc) inside it


@pytest.fixture(scope="module")
def sdf(session_dir):
    base = session_dir / f"systemd-faults-{os.getpid()}"
    runcell = os.environ.get("RUNCELL_BIN") or str(helpers.REPO / "build" / "runcell")
    binaries = [os.path.dirname(os.path.abspath(runcell))]
    with systemd_or_skip(base, visible=[session_dir], readonly=binaries) as harness:
        yield harness


def _harness(request, kind, sdf, workdir):
    binary = request.getfixturevalue("runc_bin" if kind == "runc" else "runcell_bin")
    return SdHarness(kind, binary, workdir / kind, sdf)


def _finish(harness):
    problems = harness.cleanup()
    if problems:
        pytest.fail(f"{harness.rt.name} left behind:\n  " + "\n  ".join(problems),
                    pytrace=False)


@pytest.fixture
def rc(request, sdf, workdir):
    """runcell with --systemd-cgroup inside the private systemd."""
    harness = _harness(request, "runcell", sdf, workdir)
    yield harness
    _finish(harness)


@pytest.fixture(params=["runc", "runcell"])
def both(request, sdf, workdir):
    """Debian's runc 1.1.5 and runcell in turn, where a test compares (with
    RUNCELL_BIN=/usr/sbin/runc both are runc)."""
    harness = _harness(request, request.param, sdf, workdir)
    yield harness
    _finish(harness)


def cpu_files(sdf, unit):
    return (read(sdf, "cpu", unit.path, "cpu.cfs_quota_us"),
            read(sdf, "cpu", unit.path, "cpu.cfs_period_us"))


def daemon_reload(sdf):
    res = sdf.systemctl("daemon-reload")
    assert res.returncode == 0, res.stderr


# ---------------------------------------------------------------------------------------
# update: what systemd keeps must be what the cgroup has, through a daemon-reload


def test_update_cpu_period_alone_keeps_the_quota(sdf, both):
    """`update --cpu-period` alone: the quota stays (runc merges the update into the
    container's resources). systemd takes the quota as a rate (CPUQuotaPerSecUSec) and
    rewrites cpu.cfs_quota_us from it on every realize: a rate left out of the update
    must not become "infinity"."""
    h = both
    cid = h.new_id()
    path = scoped_path(h, cid)
    unit = Unit(h, cid, path)
    run_ok(h, busybox_bundle(h, cgroups_path=path, resources={
        "cpu": {"quota": 50000, "period": 100000}}), cid)
    assert cpu_files(sdf, unit) == ("50000", "100000")
    res = h("update", "--cpu-period", "50000", cid)
    assert res.rc == 0, res.describe()
    daemon_reload(sdf)
    props = sdf.show(unit.name, "CPUQuotaPerSecUSec", "CPUQuotaPeriodUSec")
    assert cpu_files(sdf, unit) == ("50000", "50000"), (props, h.kind)
    assert props == {"CPUQuotaPerSecUSec": "1s", "CPUQuotaPeriodUSec": "50ms"}, props


def test_update_cpu_quota_alone_with_a_custom_period(sdf, both):
    """`update --cpu-quota` alone on a container whose period is not the default: the rate
    systemd keeps is the new quota over the container's period, so a daemon-reload leaves
    the quota as the update set it."""
    h = both
    cid = h.new_id()
    path = scoped_path(h, cid)
    unit = Unit(h, cid, path)
    run_ok(h, busybox_bundle(h, cgroups_path=path, resources={
        "cpu": {"quota": 25000, "period": 50000}}), cid)
    assert cpu_files(sdf, unit) == ("25000", "50000")
    res = h("update", "--cpu-quota", "40000", cid)
    assert res.rc == 0, res.describe()
    assert cpu_files(sdf, unit) == ("40000", "50000")
    daemon_reload(sdf)
    props = sdf.show(unit.name, "CPUQuotaPerSecUSec", "CPUQuotaPeriodUSec")
    assert cpu_files(sdf, unit) == ("40000", "50000"), (props, h.kind)
    assert props == {"CPUQuotaPerSecUSec": "800ms", "CPUQuotaPeriodUSec": "50ms"}, props


# ---------------------------------------------------------------------------------------
# Crash safety: runcell SIGKILLed at each step of a --systemd-cgroup create


def standins(sdf):
    """Host pids of the stand-ins alive in systemd's namespaces (comm "runcell-standin")."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = open(f"/proc/{entry}/comm").read().strip()
        except OSError:
            continue
        if comm == "runcell-standin":
            found.append(int(entry))
    return found


def wait_no_standin(sdf, before, timeout=5):
    deadline = time.monotonic() + timeout
    while (left := set(standins(sdf)) - set(before)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not left, f"stand-ins outlived the killed runcell: {sorted(left)}"


def assert_state_and_list_readable(h, cid):
    res = h("state", cid)
    if res.rc == 0:
        st = json.loads(res.out)
        assert st["id"] == cid, st
        if st.get("pid"):
            h.note_pid(st["pid"])
    else:
        assert res.msg == "container does not exist", res.describe()
    res = h("list", "--format", "json")
    assert res.rc == 0, res.describe()
    ids = [c["id"] for c in json.loads(res.out) or []]
    assert len(ids) == len(set(ids)), ids


def assert_force_delete_cleans(sdf, h, cid, unit):
    res = h.delete(cid, force=True)
    assert res.rc == 0, res.describe()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (sdf.units_matching(unit.name) or
                                           scope_dirs(sdf, unit)):
        time.sleep(0.05)
    assert_nothing_left(sdf, h, cid, unit)
    assert not (problems := h.leftovers()), problems


# (syscall, when): strace kills runcell on entering the when-th call of that syscall. On
# the system bus AUTH, Hello, AddMatch, StartTransientUnit and RemoveMatch are a create's
# sendmsg calls 1..5; its only clone is the stand-in's fork, its only clone3 the container
# init's; its renameat calls save state.json, config.json, then (3) the state with the
# init's pid, after the clone, while the stand-in still holds the scope.
KILL_POINTS = {
    "before-standin": ("clone", 1),
    "before-StartTransientUnit": ("sendmsg", 4),
    "waiting-for-the-job": ("ppoll", 1),
    "unit-started": ("sendmsg", 5),
    "before-the-init-clone": ("clone3", 1),
    "after-the-init-clone": ("renameat", 3),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_create_killed_then_delete_force(sdf, rc, point):
    syscall, when = KILL_POINTS[point]
    cid = rc.new_id()
    path = scoped_path(rc, cid)
    unit = Unit(rc, cid, path)
    bundle = busybox_bundle(rc, cgroups_path=path, resources={"pids": {"limit": 10}})
    bundle.write()
    before = standins(sdf)
    inner = rc.rt.inner_argv("create", "--bundle", bundle.path, cid)
    trace = rc.workdir / f"trace-{point}"
    res = sdf.run(["strace", "-o", trace, "-e", f"trace={syscall}",
                   "-e", f"inject={syscall}:signal=KILL:when={when}", *inner])
    assert "runcell:" not in res.stderr, res.stderr  # killed, not failed on its own
    lines = trace.read_text().splitlines()
    assert len([x for x in lines if x.startswith(f"{syscall}(")]) == when and \
        lines[-1] == "+++ killed by SIGKILL +++", lines
    wait_no_standin(sdf, before)
    assert_state_and_list_readable(rc, cid)
    assert_force_delete_cleans(sdf, rc, cid, unit)
    # the id and the unit name are free again
    run_ok(rc, bundle, cid)
    assert_active_scope(sdf, unit, rc)
    assert_force_delete_cleans(sdf, rc, cid, unit)


def test_create_killed_in_a_prestart_hook(sdf, rc):
    """A prestart hook SIGKILLs runcell: the container's init is set up in its scope (and
    the stand-in gone), waiting for the hooks."""
    cid = rc.new_id()
    path = scoped_path(rc, cid)
    unit = Unit(rc, cid, path)
    bundle = busybox_bundle(rc, cgroups_path=path)
    bundle.config["hooks"] = {"prestart": [
        {"path": "/bin/sh", "args": ["sh", "-c", "kill -9 $PPID"]}]}
    bundle.write()
    before = standins(sdf)
    res = rc("create", "--bundle", bundle.path, cid)
    assert res.rc == -9 or res.rc == 137, res.describe()
    wait_no_standin(sdf, before)
    assert_state_and_list_readable(rc, cid)
    assert_force_delete_cleans(sdf, rc, cid, unit)


# ---------------------------------------------------------------------------------------
# Concurrency


def test_parallel_creates_and_deletes_in_one_slice(sdf, rc):
    n = 20
    top = f"rctpar{os.getpid() % 100000}"
    slice_ = f"{top}-pods.slice"
    rc.on_cleanup(lambda: sdf.systemctl("stop", slice_, f"{top}.slice"))
    bundle = busybox_bundle(rc, cgroups_path="placeholder", resources={
        "memory": {"limit": 64 * MiB}, "pids": {"limit": 20}})
    ids = [rc.new_id() for _ in range(n)]
    units = {cid: Unit(rc, cid, f"{slice_}:rct-test:{cid}") for cid in ids}
    bundles = {}
    for cid in ids:
        b = rc.bundle()
        b.config = json.loads(json.dumps(bundle.config))
        b.args("sleep", "1000")
        b.linux["cgroupsPath"] = f"{slice_}:rct-test:{cid}"
        b.write()
        bundles[cid] = b

    def create(cid):
        return cid, rc("run", "--detach", "--bundle", bundles[cid].path, "--pid-file",
                       rc.pid_file(cid), cid, timeout=60)

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(create, ids))
    failed = {cid: r.describe() for cid, r in results if r.rc != 0}
    assert not failed, failed
    for cid in ids:
        rc.note_pid(rc.pid_file(cid).read_text().strip())
    res = rc("list", "--format", "json")
    assert res.rc == 0, res.describe()
    listed = {c["id"]: c["status"] for c in json.loads(res.out)}
    assert listed == {cid: "running" for cid in ids}, listed
    for cid in ids:
        assert_active_scope(sdf, units[cid], rc)
        assert read(sdf, "pids", units[cid].path, "pids.max") == "20"
        assert read(sdf, "pids", units[cid].path, "pids.current") == "1"  # no stand-in left
    assert not standins(sdf)

    def delete(cid):
        return cid, rc("delete", "--force", cid, timeout=60)

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(delete, ids))
    failed = {cid: r.describe() for cid, r in results if r.rc != 0}
    assert not failed, failed
    res = rc("list", "--format", "json")
    assert res.rc == 0 and not json.loads(res.out), res.describe()
    for cid in ids:
        wait_unit_gone(sdf, units[cid])
        assert_nothing_left(sdf, rc, cid, units[cid])


# ---------------------------------------------------------------------------------------
# Names: what runcell's ids and cgroupsPaths allow against what systemd's unit names take


@pytest.mark.parametrize("shape", ["a_b.c", "A.b-c_d", "longest", "-lead"])
def test_ids_systemd_takes(sdf, rc, shape):
    """Ids whose default unit runcell-<id>.scope systemd takes: "_" and "." inside, the
    longest (a 255-character unit name), a leading "-" (given after "--")."""
    token = rc.new_id()
    cid = {"a_b.c": f"{token}a_b.c", "A.b-c_d": f"{token}A.b-c_d",
           "longest": token + "x" * (255 - len("runcell-.scope") - len(token)),
           "-lead": f"-{token}"}[shape]
    rc.track_id(cid)
    unit = Unit(rc, cid, None)
    assert len(unit.name) <= 255
    bundle = busybox_bundle(rc)
    bundle.write()
    res = rc("run", "--detach", "--bundle", bundle.path, "--pid-file", rc.pid_file(cid),
             "--", cid)
    assert res.rc == 0, res.describe()
    pid = int(rc.pid_file(cid).read_text())
    rc.note_pid(pid)
    assert_active_scope(sdf, unit, rc)
    assert sdf.cgroups_of(pid)["name=systemd"] == unit.path
    res = rc("delete", "--force", "--", cid)
    assert res.rc == 0, res.describe()
    wait_unit_gone(sdf, unit)
    assert_nothing_left(sdf, rc, cid, unit)


@pytest.mark.parametrize("cid", ["rct-a+b", "rct-" + "y" * 238])
def test_ids_systemd_refuses_are_a_clear_error(sdf, rc, cid):
    rc.track_id(cid)
    unit = Unit(rc, cid, None)
    bundle = busybox_bundle(rc)
    bundle.write()
    res = rc("run", "--detach", "--bundle", bundle.path, cid)
    assert res.rc != 0, res.describe()
    assert "not valid for systemd" in res.msg and unit.name in res.msg, res.msg
    # the default cgroupsPath it stands for, not a NULL printed as "(null)"
    assert f'cgroupsPath ":runcell:{cid}"' in res.msg, res.msg
    assert_nothing_left(sdf, rc, cid)
    assert not standins(sdf)


@pytest.mark.parametrize("where", ["system.slice:_p", "system.slice:.p", "pids.slice:p",
                                   "memory-a.slice:p"])
def test_unit_names_systemd_escapes_in_the_cgroup_path(sdf, rc, where):
    """systemd's cgroup of a unit or slice whose name starts with "_" or ".", or is
    "<controller>.<suffix>" ("pids.slice"), is that name with "_" before it (cg_escape):
    the container must be in its unit's cgroup in every hierarchy, with its limits there,
    and delete must leave nothing (runc 1.1.5 joins the unescaped paths, as runcell did)."""
    cid = rc.new_id()
    path = f"{where}:{cid}"
    unit = Unit(rc, cid, path)
    slices = [s for s in (where.split(":")[0], "memory.slice") if s != "system.slice"]
    rc.on_cleanup(lambda: sdf.systemctl("stop", *slices) if slices else None)
    bundle = busybox_bundle(rc, cgroups_path=path, resources={"pids": {"limit": 33}})
    pid = run_ok(rc, bundle, cid)
    props = sdf.show(unit.name, "ControlGroup", "ActiveState")
    assert props["ActiveState"] == "active", props
    where_ = sdf.cgroups_of(pid)
    wrong = {k: v for k, v in where_.items() if v != props["ControlGroup"]}
    assert not wrong, (props, where_)
    assert read(sdf, "pids", props["ControlGroup"], "pids.max") == "33"
    res = rc("update", "--pids-limit", "44", cid)  # the unit is found from the state's path
    assert res.rc == 0, res.describe()
    assert sdf.show(unit.name, "TasksMax")["TasksMax"] == "44"
    res = rc.delete(cid, force=True)
    assert res.rc == 0, res.describe()
    wait_unit_gone(sdf, unit)
    assert_nothing_left(sdf, rc, cid, unit)


# ---------------------------------------------------------------------------------------
# A unit of the same name already there


def test_same_cgroups_path_as_a_running_container(sdf, rc):
    """The second create fails saying so; the first container, its unit and its limits
    are untouched, and the second leaves nothing."""
    first, second = rc.new_id(), rc.new_id()
    path = f"system.slice:rct-test:{first}"
    unit = Unit(rc, first, path)
    pid = run_ok(rc, busybox_bundle(rc, cgroups_path=path, resources={
        "memory": {"limit": 64 * MiB}, "pids": {"limit": 77}}), first)
    props = sdf.show(unit.name, "MemoryLimit", "TasksMax", "ActiveState", "MainPID",
                     "InvocationID")
    bundle = busybox_bundle(rc, cgroups_path=path, resources={
        "memory": {"limit": 32 * MiB}, "pids": {"limit": 5}})
    bundle.write()
    res = rc("run", "--detach", "--bundle", bundle.path, second)
    assert res.rc != 0, res.describe()
    assert "already exists and is active" in res.msg and unit.name in res.msg, res.msg
    assert not (rc.rt.root / second).exists()
    assert sdf.show(unit.name, *props) == props
    assert read(sdf, "memory", unit.path, "memory.limit_in_bytes") == str(64 * MiB)
    assert read(sdf, "pids", unit.path, "pids.max") == "77"
    assert rc.status(first) == "running"
    assert sdf.cgroups_of(pid)["name=systemd"] == unit.path
    assert not standins(sdf)
    assert_force_delete_cleans(sdf, rc, first, unit)


def test_a_failed_unit_of_the_same_name_is_reset_and_reused(sdf, rc):
    cid = rc.new_id()
    path = scoped_path(rc, cid)
    unit = Unit(rc, cid, path)
    rc.on_cleanup(lambda: sdf.systemctl("reset-failed", unit.name))
    # a scope that ends "failed": its process ignores SIGTERM and is SIGKILLed after the
    # stop timeout
    res = sdf.run(["sh", "-c", f"setsid systemd-run --quiet --scope --unit={unit.name} "
                   "-p TimeoutStopSec=0.2 sh -c 'trap \"\" TERM; exec sleep 100' "
                   "</dev/null >/dev/null 2>&1 &"])
    assert res.returncode == 0, res.stderr
    deadline = time.monotonic() + 5
    while sdf.units_matching(unit.name) == [] and time.monotonic() < deadline:
        time.sleep(0.05)
    sdf.systemctl("stop", unit.name)
    props = sdf.show(unit.name, "ActiveState", "Result")
    assert props == {"ActiveState": "failed", "Result": "timeout"}, props
    pid = run_ok(rc, busybox_bundle(rc, cgroups_path=path), cid)
    assert_active_scope(sdf, unit, rc)
    assert sdf.cgroups_of(pid)["name=systemd"] == unit.path
    assert_force_delete_cleans(sdf, rc, cid, unit)


# ---------------------------------------------------------------------------------------
# systemd re-executed, reloaded, or changed by an admin between create and update/delete


def wait_systemd(sdf, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        res = sdf.run(["busctl", "--system", "call", "org.freedesktop.systemd1",
                       "/org/freedesktop/systemd1", "org.freedesktop.DBus.Peer", "Ping"],
                      timeout=10)
        if res.returncode == 0:
            return
        assert time.monotonic() < deadline, res.stderr
        time.sleep(0.05)


def devices_list(sdf, unit):
    return sorted(read(sdf, "devices", unit.path, "devices.list").splitlines())


def test_daemon_reexec_between_create_update_and_delete(sdf, rc):
    cid = rc.new_id()
    path = scoped_path(rc, cid)
    unit = Unit(rc, cid, path)
    pid = run_ok(rc, busybox_bundle(rc, cgroups_path=path, resources={
        "memory": {"limit": 64 * MiB}, "pids": {"limit": 77}}), cid)
    rules = devices_list(sdf, unit)
    assert "a *:* rwm" not in rules, rules
    assert sdf.systemctl("daemon-reexec").returncode == 0
    wait_systemd(sdf)
    assert_active_scope(sdf, unit, rc)
    res = rc("update", "--memory", str(96 * MiB), "--pids-limit", "66", cid)
    assert res.rc == 0, res.describe()
    assert sdf.show(unit.name, "MemoryLimit", "TasksMax") == {
        "MemoryLimit": str(96 * MiB), "TasksMax": "66"}
    assert read(sdf, "memory", unit.path, "memory.limit_in_bytes") == str(96 * MiB)
    assert read(sdf, "pids", unit.path, "pids.max") == "66"
    assert sdf.cgroups_of(pid)["devices"] == unit.path
    assert devices_list(sdf, unit) == rules
    assert sdf.systemctl("daemon-reexec").returncode == 0
    wait_systemd(sdf)
    assert_force_delete_cleans(sdf, rc, cid, unit)


def test_admin_set_property_then_update_and_reload(sdf, rc):
    """An admin's `systemctl set-property` stays what it set for what the update does not
    name; the update's own values, the device rules and the container's place survive a
    daemon-reload."""
    cid = rc.new_id()
    path = scoped_path(rc, cid)
    unit = Unit(rc, cid, path)
    pid = run_ok(rc, busybox_bundle(rc, cgroups_path=path, resources={
        "memory": {"limit": 64 * MiB}, "pids": {"limit": 77},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000}}), cid)
    rules = devices_list(sdf, unit)
    res = sdf.systemctl("set-property", "--runtime", unit.name, "MemoryLimit=200M",
                        "CPUShares=300")
    assert res.returncode == 0, res.stderr
    daemon_reload(sdf)
    res = rc("update", "--pids-limit", "55", "--cpu-quota", "30000", cid)
    assert res.rc == 0, res.describe()
    daemon_reload(sdf)
    assert sdf.show(unit.name, "MemoryLimit", "CPUShares", "TasksMax", "CPUQuotaPerSecUSec") \
        == {"MemoryLimit": str(200 * MiB), "CPUShares": "300", "TasksMax": "55",
            "CPUQuotaPerSecUSec": "300ms"}
    assert read(sdf, "memory", unit.path, "memory.limit_in_bytes") == str(200 * MiB)
    assert read(sdf, "cpu", unit.path, "cpu.shares") == "300"
    assert read(sdf, "pids", unit.path, "pids.max") == "55"
    assert cpu_files(sdf, unit) == ("30000", "100000")
    assert sdf.cgroups_of(pid)["devices"] == unit.path
    assert devices_list(sdf, unit) == rules
    assert_force_delete_cleans(sdf, rc, cid, unit)


def test_update_that_narrows_the_device_rules_survives_a_reload(sdf, rc):
    """`update --resources` with device rules that drop one (the fuse device here; runc's
    default devices always stay): systemd's DeviceAllow must become the new list (a
    DeviceAllow given to SetUnitProperties adds to the unit's list), or its next realize
    (daemon-reload) gives the container back the device the update took away."""
    cid = rc.new_id()
    path = scoped_path(rc, cid)
    unit = Unit(rc, cid, path)
    fuse = {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"}
    deny_all = {"allow": False, "access": "rwm"}
    run_ok(rc, busybox_bundle(rc, cgroups_path=path, resources={"devices": [deny_all, fuse]}),
           cid)
    assert "c 10:229 rwm" in devices_list(sdf, unit)
    assert "/dev/char/10:229 rwm" in sdf.show(unit.name, "DeviceAllow")["DeviceAllow"]
    res = rc("update", "--resources", "-", cid, input=json.dumps({"devices": [deny_all]}))
    assert res.rc == 0, res.describe()
    after_update = devices_list(sdf, unit)
    assert "c 10:229 rwm" not in after_update and "c 1:3 rwm" in after_update, after_update
    allowed = sdf.show(unit.name, "DeviceAllow")["DeviceAllow"].splitlines()
    assert "/dev/char/10:229 rwm" not in allowed and "/dev/char/1:3 rwm" in allowed, allowed
    daemon_reload(sdf)
    assert devices_list(sdf, unit) == after_update


# ---------------------------------------------------------------------------------------
# update with what systemd refuses


@pytest.mark.parametrize("bad", [["--cpu-share", "1"], ["--cpu-share", "300000"]])
def test_update_systemd_refuses_changes_nothing(sdf, both, bad):
    """A value systemd refuses (CPUShares outside 2..262144): the update fails, and what
    it also named (memory, pids) has not changed, in systemd or in the files (systemd
    checks every property before it applies any)."""
    h = both
    cid = h.new_id()
    path = scoped_path(h, cid)
    unit = Unit(h, cid, path)
    run_ok(h, busybox_bundle(h, cgroups_path=path, resources={
        "memory": {"limit": 64 * MiB}, "pids": {"limit": 77}, "cpu": {"shares": 512}}),
        cid)
    props = sdf.show(unit.name, "MemoryLimit", "TasksMax", "CPUShares")
    res = h("update", "--memory", str(100 * MiB), "--pids-limit", "88", *bad, cid)
    assert res.rc != 0 and "CPUShares" in res.msg, res.describe()
    time.sleep(0.1)  # systemd realizes a property change after its reply
    assert sdf.show(unit.name, *props) == props
    files = (read(sdf, "memory", unit.path, "memory.limit_in_bytes"),
             read(sdf, "pids", unit.path, "pids.max"), read(sdf, "cpu", unit.path, "cpu.shares"))
    assert files == (str(64 * MiB), "77", "512"), files


REFUSED_BY_THE_CGROUP = [
    ("runc", {"unified": {"memory.high": "1000000"}}),
    ("runc", {"unified": {"no.such.file": "1"}}),
    ("runcell", {"unified": {"memory.high": "1000000"}}),
    ("runcell", {"unified": {"no.such.file": "1"}}),
    ("runcell", {"cpu": {"cpus": "0-9999"}}),
    # runc 1.1.5 changes systemd's properties and the memory and pids files here (and
    # gives systemd a wrong CPU mask, "0-4 8-103")
    ("runcell", {"cpu": {"cpus": "0-100"}}),
    ("runcell", {"cpu": {"mems": "5"}}),
]


@pytest.mark.parametrize("both,bad", REFUSED_BY_THE_CGROUP, indirect=["both"],
                         ids=[f"{k}-{json.dumps(b)}" for k, b in REFUSED_BY_THE_CGROUP])
def test_update_the_cgroup_refuses_changes_nothing(sdf, both, bad):
    """What systemd takes but the cgroupfs side then refuses (unified keys on this hybrid
    host, a cpuset beyond the machine): the update fails and neither systemd's properties
    nor the cgroup files have changed."""
    h = both
    cid = h.new_id()
    path = scoped_path(h, cid)
    unit = Unit(h, cid, path)
    run_ok(h, busybox_bundle(h, cgroups_path=path, resources={
        "memory": {"limit": 64 * MiB}, "pids": {"limit": 77}}), cid)
    props = sdf.show(unit.name, "MemoryLimit", "TasksMax", "AllowedCPUs")
    cpuset = (read(sdf, "cpuset", unit.path, "cpuset.cpus"),
              read(sdf, "cpuset", unit.path, "cpuset.mems"))
    update = dict(bad, memory={"limit": 100 * MiB}, pids={"limit": 88})
    res = h("update", "--resources", "-", cid, input=json.dumps(update))
    assert res.rc != 0, res.describe()
    time.sleep(0.1)  # systemd realizes a property change after its reply
    assert sdf.show(unit.name, *props) == props
    assert read(sdf, "memory", unit.path, "memory.limit_in_bytes") == str(64 * MiB)
    assert read(sdf, "pids", unit.path, "pids.max") == "77"
    assert (read(sdf, "cpuset", unit.path, "cpuset.cpus"),
            read(sdf, "cpuset", unit.path, "cpuset.mems")) == cpuset
    # a good update after it works
    res = h("update", "--memory", str(100 * MiB), cid)
    assert res.rc == 0, res.describe()
    assert read(sdf, "memory", unit.path, "memory.limit_in_bytes") == str(100 * MiB)


# ---------------------------------------------------------------------------------------
# The stand-in, the modes, exec, kill --all, pause, ps


@pytest.mark.parametrize("mode", ["native", "cell"])
def test_pids_limit_1(sdf, rc, mode):
    """The stand-in counts in the scope's pids limit while create runs: a container whose
    limit is 1 still creates and runs, and then holds its init alone."""
    cid = rc.new_id()
    path = scoped_path(rc, cid)
    unit = Unit(rc, cid, path)
    bundle = busybox_bundle(rc, cgroups_path=path, resources={"pids": {"limit": 1}})
    set_mode(bundle, mode)
    res = rc.create(bundle, cid)
    assert res.rc == 0, res.describe()
    assert not standins(sdf)
    assert read(sdf, "pids", unit.path, "pids.max") == "1"
    assert sdf.show(unit.name, "TasksMax")["TasksMax"] == "1"
    rc.start_ok(cid)
    assert rc.status(cid) == "running"
    res = rc("ps", "--format", "json", cid)
    assert res.rc == 0, res.describe()
    assert len(json.loads(res.out)) == 1, res.out
    assert_force_delete_cleans(sdf, rc, cid, unit)


@pytest.mark.parametrize("mode", ["native", "cell"])
def test_exec_ps_pause_kill_all(sdf, rc, mode):
    cid = rc.new_id()
    path = scoped_path(rc, cid)
    unit = Unit(rc, cid, path)
    bundle = busybox_bundle(rc, "sh", "-c", "sleep 1000 & sleep 1000 & wait",
                            cgroups_path=path, resources={"pids": {"limit": 20}})
    set_mode(bundle, mode)
    pid = run_ok(rc, bundle, cid)
    res = rc("exec", cid, "sh", "-c", "cat /proc/self/cgroup")
    assert res.rc == 0, res.describe()
    assert f"name=systemd:{unit.path}" in res.out, res.out
    deadline = time.monotonic() + 5
    while True:
        res = rc("ps", "--format", "json", cid)
        assert res.rc == 0, res.describe()
        if len(json.loads(res.out)) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(json.loads(res.out)) == 3, res.out  # sh and its two sleeps, nothing else
    assert rc("pause", cid).rc == 0
    assert rc.status(cid) == "paused"
    assert read(sdf, "freezer", unit.path, "freezer.state") == "FROZEN"
    assert rc("resume", cid).rc == 0
    res = rc.kill(cid, "KILL", all=True)
    assert res.rc == 0, res.describe()
    rc.wait_status(cid, "stopped")
    wait_unit_gone(sdf, unit)  # empty: systemd collects it
    res = rc.delete(cid)
    assert res.rc == 0, res.describe()
    assert_nothing_left(sdf, rc, cid, unit)
    assert sdf.cgroups_of(pid) == {}


def allows_every_device(rules):
    return rules == ["a *:* rwm"] or {"b *:* rwm", "c *:* rwm"} <= set(rules)


def test_update_to_allow_every_device(sdf, rc):
    """`update --resources` allowing every device, from the default rules: the update
    works, and the container stays in its unit's devices cgroup, allowed everything,
    through a daemon-reload. (systemd drops its devices cgroup when told
    DevicePolicy=auto with no DeviceAllow and moves the container to the hierarchy's root:
    the update then failed, or not, by who came first.)"""
    cid = rc.new_id()
    path = scoped_path(rc, cid)
    unit = Unit(rc, cid, path)
    pid = run_ok(rc, busybox_bundle(rc, cgroups_path=path), cid)
    assert "a *:* rwm" not in devices_list(sdf, unit)
    for _ in range(3):
        res = rc("update", "--resources", "-", cid,
                 input=json.dumps({"devices": [{"allow": True, "access": "rwm"}]}))
        assert res.rc == 0, res.describe()
        time.sleep(0.1)  # systemd realizes a property change after its reply
        assert sdf.cgroups_of(pid)["devices"] == unit.path
        assert allows_every_device(devices_list(sdf, unit)), devices_list(sdf, unit)
    daemon_reload(sdf)
    assert sdf.cgroups_of(pid)["devices"] == unit.path
    assert allows_every_device(devices_list(sdf, unit)), devices_list(sdf, unit)
    # and back to the default rules
    res = rc("update", "--resources", "-", cid,
             input=json.dumps({"devices": [{"allow": False, "access": "rwm"}]}))
    assert res.rc == 0, res.describe()
    daemon_reload(sdf)
    assert sdf.cgroups_of(pid)["devices"] == unit.path
    rules = devices_list(sdf, unit)
    assert "c 1:3 rwm" in rules and not allows_every_device(rules), rules


def test_hooks_see_the_container_alone_in_its_scope(sdf, rc):
    """The stand-in ends once the container's init is in the scope (docs/systemd-cgroup.md):
    the prestart and createRuntime hooks, however long they take, find the init alone
    there, and it does not count in the pids limit meanwhile."""
    cid = rc.new_id()
    path = scoped_path(rc, cid)
    unit = Unit(rc, cid, path)
    seen = rc.workdir / "seen"
    inside = f"/sys/fs/cgroup/systemd{unit.path}/cgroup.procs"
    pids_current = f"/sys/fs/cgroup/pids{unit.path}/pids.current"
    hook = {"path": "/bin/sh",
            "args": ["sh", "-c", f"wc -l <{inside} >>{seen}; cat {pids_current} >>{seen}"]}
    bundle = busybox_bundle(rc, cgroups_path=path, resources={"pids": {"limit": 5}})
    bundle.config["hooks"] = {"prestart": [hook], "createRuntime": [hook]}
    res = rc.create(bundle, cid)
    assert res.rc == 0, res.describe()
    assert seen.read_text().split() == ["1", "1", "1", "1"], seen.read_text()
    assert_force_delete_cleans(sdf, rc, cid, unit)


# ---------------------------------------------------------------------------------------
# delete --force of a container whose state.json is damaged


@pytest.mark.parametrize("cgroups_path", [None, "system.slice:rct-test:{cid}"])
def test_delete_force_with_a_damaged_state(sdf, rc, cgroups_path):
    """state.json garbage: delete --force finds the container by its config.json's
    cgroupsPath, which with --systemd-cgroup is the unit's also when empty (the default
    "runcell-<id>.scope"): the init killed, the unit, its cgroups and the state gone."""
    cid = rc.new_id()
    path = cgroups_path.format(cid=cid) if cgroups_path else None
    unit = Unit(rc, cid, path)
    pid = run_ok(rc, busybox_bundle(rc, cgroups_path=path), cid)
    host = sdf.host_pid(pid)
    (rc.rt.root / cid / "state.json").write_text("garbage!\n")
    res = rc.delete(cid, force=True)
    assert res.rc == 0, res.describe()
    assert f"removing container {cid} by its cgroup {unit.path}" in res.err, res.describe()
    assert not helpers.process_alive(host)
    wait_unit_gone(sdf, unit)
    assert_nothing_left(sdf, rc, cid, unit)


# ---------------------------------------------------------------------------------------
# A create that fails at each stage leaves nothing


FAILING_CREATES = {
    "systemd-refuses": ({"cpu": {"shares": 1}}, None, "CPUShares"),
    "cgroupfs-refuses": ({"cpu": {"cpus": "0-100"}}, None, "cpuset.cpus"),
    "prestart-hook-fails": (None, {"prestart": [{"path": "/bin/false"}]}, "prestart"),
    "annotation-refused": (None, None, "org.systemd.property.Slice"),
}


@pytest.mark.parametrize("case", list(FAILING_CREATES))
def test_failed_create_leaves_nothing(sdf, rc, case):
    resources, hooks, says = FAILING_CREATES[case]
    cid = rc.new_id()
    path = scoped_path(rc, cid)
    unit = Unit(rc, cid, path)
    bundle = busybox_bundle(rc, cgroups_path=path, resources=resources)
    if hooks:
        bundle.config["hooks"] = hooks
    if case == "annotation-refused":
        bundle.config["annotations"]["org.systemd.property.Slice"] = "'user.slice'"
    before = standins(sdf)
    res = rc.create(bundle, cid)
    assert res.rc != 0, res.describe()
    assert says in res.msg, res.msg
    wait_no_standin(sdf, before)
    wait_unit_gone(sdf, unit)
    assert_nothing_left(sdf, rc, cid, unit)


# ---------------------------------------------------------------------------------------
# systemd unreachable after create


HIDE_SYSTEMD = "mount --bind /dev/null /run/systemd/private && exec \"$@\""


def unreachable(sdf, h, *args, input=None):
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS="unix:path=/nonexistent")
    return sdf.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    HIDE_SYSTEMD, "sh", *h.rt.inner_argv(*args)], env=env, input=input)


def test_systemd_unreachable_at_update_and_delete(sdf, rc):
    """update fails saying so, with nothing changed; delete --force still removes the
    container (a warning names the unit, which systemd collects once it is empty)."""
    cid = rc.new_id()
    path = scoped_path(rc, cid)
    unit = Unit(rc, cid, path)
    run_ok(rc, busybox_bundle(rc, cgroups_path=path, resources={"pids": {"limit": 77}}), cid)
    res = unreachable(sdf, rc, "update", "--pids-limit", "88", cid)
    assert res.returncode != 0, res.stdout + res.stderr
    assert "/run/systemd/private" in res.stderr, res.stderr
    assert read(sdf, "pids", unit.path, "pids.max") == "77"
    assert sdf.show(unit.name, "TasksMax")["TasksMax"] == "77"
    res = unreachable(sdf, rc, "delete", "--force", cid)
    assert res.returncode == 0, res.stderr
    assert "warning: delete: systemd cgroup driver: cannot reach systemd" in res.stderr, \
        res.stderr
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sdf.units_matching(unit.name):
        time.sleep(0.05)
    if sdf.units_matching(unit.name):
        # systemd read the scope's cgroup.events only after delete had removed the cgroup:
        # it never saw it empty (test_a_unit_left_without_its_cgroup_is_reclaimed)
        assert sdf.show(unit.name, "ActiveState")["ActiveState"] == "active"
        assert sdf.systemctl("stop", unit.name).returncode == 0
    assert_nothing_left(sdf, rc, cid, unit)


def test_a_unit_left_without_its_cgroup_is_reclaimed(sdf, rc):
    """delete --force while systemd cannot be reached removes the scope's cgroup before
    systemd has read that it emptied (here: systemd is stopped meanwhile): systemd keeps
    the scope "active" with no cgroup, for ever. A create with the same cgroupsPath then
    must not fail with "already exists and is active": a scope without a cgroup holds
    nothing."""
    cid = rc.new_id()
    path = scoped_path(rc, cid)
    unit = Unit(rc, cid, path)
    run_ok(rc, busybox_bundle(rc, cgroups_path=path), cid)
    os.kill(sdf.pid, signal.SIGSTOP)
    try:
        res = unreachable(sdf, rc, "delete", "--force", cid)
    finally:
        os.kill(sdf.pid, signal.SIGCONT)
    assert res.returncode == 0, res.stderr
    wait_systemd(sdf)
    assert not scope_dirs(sdf, unit)
    assert sdf.show(unit.name, "ActiveState")["ActiveState"] == "active"  # the phantom
    pid = run_ok(rc, busybox_bundle(rc, cgroups_path=path), cid)
    assert_active_scope(sdf, unit, rc)
    assert sdf.cgroups_of(pid)["name=systemd"] == unit.path
    assert_force_delete_cleans(sdf, rc, cid, unit)


def test_kill_all_after_systemd_collected_the_scope(sdf, both):
    """containerd's KillAll after the init exited: the scope (and so its cgroup) may be
    gone already, collected by systemd."""
    h = both
    cid = h.new_id()
    path = scoped_path(h, cid)
    unit = Unit(h, cid, path)
    run_ok(h, busybox_bundle(h, "true", cgroups_path=path), cid)
    h.wait_status(cid, "stopped")
    wait_unit_gone(sdf, unit)
    res = h.kill(cid, "KILL", all=True)
    assert res.rc == 0, res.describe()
    res = h.delete(cid)
    assert res.rc == 0, res.describe()
    assert_nothing_left(sdf, h, cid, unit)


# ---------------------------------------------------------------------------------------
# delete racing systemd's collection of the emptied scope


def _delete_traced(sdf, h, cid, trace, inject=None):
    """`delete --force cid` under strace (openat traced into the file trace), in the
    background; returns the Popen."""
    argv = ["strace", "-o", str(trace), "-e", "trace=openat"]
    if inject:
        argv += ["-e", f"inject=openat:{inject}"]
    return subprocess.Popen(sdf.argv([*argv, *h.rt.inner_argv("delete", "--force", cid)]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def test_delete_while_systemd_collects_the_scope(sdf, rc):
    """The container's processes killed, systemd collects its scope and removes the
    scope's cgroups while delete is between opening the cgroup and reading its
    cgroup.procs: delete --force must still succeed (a gone cgroup holds nothing).
    Made deterministic: systemd is stopped (SIGSTOP) until delete has opened the cgroup,
    whose openat strace then holds for a second."""
    def victim():
        cid = rc.new_id()
        path = scoped_path(rc, cid)
        run_ok(rc, busybox_bundle(rc, cgroups_path=path), cid)
        return cid, Unit(rc, cid, path)

    # a first delete, traced, finds which openat opens the scope's pids cgroup
    cid, unit = victim()
    trace = rc.workdir / "trace"
    os.kill(sdf.pid, signal.SIGSTOP)
    try:
        p = _delete_traced(sdf, rc, cid, trace)
        time.sleep(0.5)
    finally:
        os.kill(sdf.pid, signal.SIGCONT)
    assert p.wait(timeout=30) == 0, p.stderr.read().decode()
    opens = [line for line in trace.read_text().splitlines() if "openat(" in line]
    def target(unit):
        return f'"/sys/fs/cgroup/pids{unit.path}", O_RDONLY|O_CLOEXEC|O_DIRECTORY) = 3'

    nth = next(i for i, line in enumerate(opens, 1) if target(unit) in line)
    wait_unit_gone(sdf, unit)
    assert_nothing_left(sdf, rc, cid, unit)

    # the second: systemd goes on (and collects the scope) while that openat is held
    cid, unit = victim()
    os.kill(sdf.pid, signal.SIGSTOP)
    try:
        p = _delete_traced(sdf, rc, cid, rc.workdir / "trace2",
                           inject=f"delay_exit=1000000:when={nth}")
        time.sleep(0.4)
    finally:
        os.kill(sdf.pid, signal.SIGCONT)
    rc_ = p.wait(timeout=30)
    err = p.stderr.read().decode()
    held = [line for line in (rc.workdir / "trace2").read_text().splitlines()
            if "openat(" in line][nth - 1]
    assert target(unit) in held and "DELAYED" in held, held  # opened, then held
    assert rc_ == 0, err
    wait_unit_gone(sdf, unit)
    assert_nothing_left(sdf, rc, cid, unit)


def test_delete_killed_before_stopunit_then_delete_again(sdf, rc):
    """delete --force SIGKILLed after it removed the cgroups, before its StopUnit (the 4th
    sendmsg on the system bus: AUTH, Hello, AddMatch, StopUnit), with systemd held so that
    it cannot collect the scope first: the state directory is still there, and the next
    delete --force stops the unit systemd kept and removes the rest."""
    cid = rc.new_id()
    path = scoped_path(rc, cid)
    unit = Unit(rc, cid, path)
    run_ok(rc, busybox_bundle(rc, cgroups_path=path), cid)
    os.kill(sdf.pid, signal.SIGSTOP)
    try:
        res = sdf.run(["strace", "-o", "/dev/null", "-e", "trace=sendmsg",
                       "-e", "inject=sendmsg:signal=KILL:when=4",
                       *rc.rt.inner_argv("delete", "--force", cid)])
    finally:
        os.kill(sdf.pid, signal.SIGCONT)
    assert res.returncode != 0 and "runcell:" not in res.stderr, res.stderr
    wait_systemd(sdf)
    assert (rc.rt.root / cid).is_dir()
    assert not scope_dirs(sdf, unit)
    assert_state_and_list_readable(rc, cid)
    assert_force_delete_cleans(sdf, rc, cid, unit)
