"""The systemd cgroup driver (`--systemd-cgroup`), against a real systemd: Debian's
systemd 252 started by systemd_harness.py as PID 1 of private namespaces with its own
cgroup subtree (the development VMs' PID 1 is not systemd). Each runtime command runs
inside those namespaces (nsenter), as it would on a systemd host, and talks to that
systemd over its D-Bus system bus.

The runc_reference tests show the harness is real and pin down what Debian's runc 1.1.5
does there; the others run the same scenario under runc and runcell side by side
(parametrized) or compare the two (differential): the transient scope unit each creates
(name, slice, `systemctl show` properties), where the container's processes are in every
hierarchy, the cgroupfs values, and that delete leaves no unit, cgroup directory or state
directory. runcell's cases fail, with runcell's own message, wherever runcell gives an
error. With RUNCELL_BIN=/usr/sbin/runc (pytest.ini) the "runcell" cases run runc and
expect runc's behaviour (its unit prefix, its devices quirk below).

What runc 1.1.5 does here (systemd 252, hybrid cgroups, kernel 6.18), as these tests found:
- unit "<prefix>-<name>.scope" (default "runc-<id>.scope") in slice <slice> (default
  system.slice; "a-b.slice" is /a.slice/a-b.slice), Delegate=yes, Memory/CPU/BlockIO/
  TasksAccounting=yes, DefaultDependencies=no, Description="libcontainer container <id>";
  resources come by SetUnitProperties after StartTransientUnit: MemoryLimit, CPUShares,
  CPUQuotaPerSecUSec/CPUQuotaPeriodUSec, TasksMax, DevicePolicy=strict + DeviceAllow;
  org.systemd.property.* annotations are passed through;
- runc writes the pid into <hierarchy>/<slice path>/<unit> in every v1 hierarchy itself,
  systemd-managed or not (freezer, cpuset, cpuacct here), and sets the cgroupfs values
  there too; systemd 252 then moves the container out of the devices scope into
  devices:/system.slice (which allows everything) when runc's SetUnitProperties turns the
  device policy on, so `runc ps` (which reads the devices cgroup) lists nothing;
- a name ending in ".slice" fails ("Cannot set property PIDs"), a "/" in the slice and a
  cgroupsPath without exactly two colons fail before anything is made;
- with DBUS_SYSTEM_BUS_ADDRESS pointing nowhere runc still reaches systemd: go-systemd
  falls back to systemd's private socket /run/systemd/private when run as root (runcell
  does the same).

Each private systemd runs on one of two cgroup layouts (LAYOUTS; tests marked @layouts run
on both, @v2_only on the second): "host", the host's as it is (hybrid here), and "v2", a
unified host made of the host's cgroup2 hierarchy alone (systemd_harness.py's
cgroup="v2"), where systemd runs with default-hierarchy=unified and both runtimes take
their cgroup v2 paths. That cgroup2 offers only hugetlb here (the other controllers are
bound to v1), so limits there are hugetlb ones. What runc 1.1.5 does on it:
- the v2 scope: Delegate=yes, IOAccounting, cgroup.freeze for pause; a limit whose
  controller v2 lacks fails when runc writes its file ("memory.max: no such file or
  directory"), after systemd took the unit;
- its eBPF device program (unnamed) replaces every program on the scope, systemd's
  sd_devices included; systemd attaches sd_devices again at its next realize
  (daemon-reload), from runc's DeviceAllow, which leaves out /dev/char/M:m entries without
  a /sys/dev/char node and has nothing for a deny-list: the container then loses those
  devices (every device, for a deny-list).
"""
import ctypes
import json
import os
import re
import secrets
import shutil
import struct
import time
from pathlib import Path

import pytest

import helpers
from helpers import NATIVE_ANNOTATIONS, Harness, Runtime
from systemd_harness import nspids, systemd_or_skip

MiB = 1024 * 1024
differential = pytest.mark.differential
runcell_specific = pytest.mark.runcell_specific
RUNTIMES = ["runc", "runcell"]


# ---------------------------------------------------------------------------------------
# Fixtures: one private systemd per module, runtimes that run inside it


def _private_systemd(session_dir, cgroup):
    base = session_dir / f"systemd-{cgroup}-{secrets.token_hex(3)}"
    # the runtimes run inside, where /tmp is private: the directory of the runcell under
    # test stays visible (read-only), as the session's work directories do (read-write)
    runcell = os.environ.get("RUNCELL_BIN") or str(helpers.REPO / "build" / "runcell")
    binaries = [os.path.dirname(os.path.abspath(runcell))]
    with systemd_or_skip(base, visible=[session_dir], readonly=binaries,
                         cgroup=cgroup) as harness:
        yield harness


@pytest.fixture(scope="module")
def sd_host(session_dir):
    """The private systemd on the host's cgroup layout (hybrid here)."""
    yield from _private_systemd(session_dir, "host")


@pytest.fixture(scope="module")
def sd_v2(session_dir):
    """The private systemd on a unified host: only the host's cgroup2 hierarchy, at
    /sys/fs/cgroup (here it offers hugetlb alone: cpu, memory, pids, io... are v1's)."""
    yield from _private_systemd(session_dir, "v2")


LAYOUTS = ["host", "v2"]


@pytest.fixture
def sd(request):
    """The private systemd a test runs against: the host's layout, or each of LAYOUTS
    for a test marked @layouts (the `sd` parameter, indirect)."""
    return request.getfixturevalue(f"sd_{getattr(request, 'param', 'host')}")


layouts = pytest.mark.parametrize("sd", LAYOUTS, indirect=True)
v2_only = pytest.mark.parametrize("sd", ["v2"], indirect=True)


class SdRuntime(Runtime):
    """A runtime run inside the private systemd's namespaces, with --systemd-cgroup."""

    def __init__(self, binary, root, sd, name, systemd_cgroup=True):
        super().__init__(binary, root, name)
        self.sd = sd
        self.systemd_cgroup = systemd_cgroup

    def inner_argv(self, *args):
        """The runtime's own argv, as it runs inside."""
        flags = ["--systemd-cgroup"] if self.systemd_cgroup else []
        return [self.binary, "--root", str(self.root), *flags, *map(str, args)]

    def argv(self, *args):
        return self.sd.argv(self.inner_argv(*args))


class SdHarness(Harness):
    """helpers.Harness for a runtime inside the private systemd: pids the runtime prints are
    systemd's pid namespace's (mapped to host pids for the leftover checks), and a test also
    fails if a unit, a cgroup directory or a mount inside that systemd is left behind."""

    def __init__(self, kind, binary, workdir, sd, systemd_cgroup=True):
        super().__init__(binary, workdir, name=kind)
        self.kind = kind
        self.is_runc = Path(binary).name == "runc"  # also RUNCELL_BIN=/usr/sbin/runc
        self.sd = sd
        self.rt = SdRuntime(binary, self.workdir / "root", sd, kind, systemd_cgroup)

    def note_pid(self, pid):
        host = self.sd.host_pid(pid) if int(pid) > 0 else None
        if host is not None:
            super().note_pid(host)

    def leftovers(self):
        problems = super().leftovers()
        for cid in self.ids:
            problems += [f"systemd unit {u}" for u in self.sd.units_matching(f"*{cid}*")]
            problems += [f"cgroup {d}" for d in self.sd.cgroup_dirs_containing(cid)]
        workdir = str(self.workdir)
        problems += [f"mount {mp} (inside systemd's mount namespace)"
                     for mp, _ in self.sd.mounts_inside()
                     if mp == workdir or mp.startswith(workdir + "/")]
        return problems

    def _remediate(self):
        for cid in self.ids:
            for unit in self.sd.units_matching(f"*{cid}*"):
                self.sd.systemctl("stop", unit)
        super()._remediate()
        for cid in self.ids:
            for d in sorted(self.sd.cgroup_dirs_containing(cid), key=len, reverse=True):
                helpers._rmdir_cgroup(d)

    # --- what tests ask
    def ns_pid(self, cid):
        return int(self.state(cid)["pid"])

    def default_prefix(self):
        return "runc" if self.is_runc else "runcell"


def _finish(harness):
    problems = harness.cleanup()
    if problems:
        pytest.fail(f"{harness.rt.name} left behind:\n  " + "\n  ".join(problems),
                    pytrace=False)


def _make(request, kind, sd, workdir, systemd_cgroup=True):
    if helpers.TIMEOUTS >= 3:
        pytest.fail(f"{helpers.TIMEOUTS} runtime calls have hung in this session",
                    pytrace=False)
    binary = request.getfixturevalue("runc_bin" if kind == "runc" else "runcell_bin")
    return SdHarness(kind, binary, workdir / kind, sd, systemd_cgroup)


@pytest.fixture(params=RUNTIMES)
def rt(request, sd, workdir):
    """runc and runcell in turn, each with --systemd-cgroup inside the private systemd."""
    harness = _make(request, request.param, sd, workdir)
    yield harness
    _finish(harness)


@pytest.fixture
def runc_sd(request, sd, workdir):
    harness = _make(request, "runc", sd, workdir)
    yield harness
    _finish(harness)


@pytest.fixture
def runcell_sd(request, sd, workdir):
    harness = _make(request, "runcell", sd, workdir)
    yield harness
    _finish(harness)


# ---------------------------------------------------------------------------------------
# Units, slices and cgroup paths


def expand_slice(slice_):
    """systemd's slice path: "a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice";
    "-.slice" -> "" (the root)."""
    assert slice_.endswith(".slice"), slice_
    name = slice_[: -len(".slice")]
    if name == "-":
        return ""
    parts = name.split("-")
    return "".join("/" + "-".join(parts[: i + 1]) + ".slice" for i in range(len(parts)))


class Unit:
    """The unit a cgroupsPath gives, as runc names it (docs/systemd.md)."""

    def __init__(self, harness, cid, cgroups_path=None):
        if not cgroups_path:
            slice_, prefix, name = "", harness.default_prefix(), cid
        else:
            slice_, prefix, name = cgroups_path.split(":")
        self.slice = slice_ or "system.slice"
        self.name = name if name.endswith(".slice") else f"{prefix}-{name}.scope"
        self.path = expand_slice(self.slice) + "/" + self.name  # the cgroup, inside

    def __repr__(self):
        return f"Unit({self.name} in {self.slice}: {self.path})"


def busybox_bundle(harness, *args, cgroups_path=None, resources=None, annotations=None):
    bundle = harness.bundle()
    bundle.args(*(args or ("sleep", "1000")))
    if cgroups_path is not None:
        bundle.linux["cgroupsPath"] = cgroups_path
    if resources:
        bundle.linux.setdefault("resources", {}).update(resources)
    if annotations:
        bundle.config.setdefault("annotations", {}).update(annotations)
    return bundle


def scoped_path(harness, cid, prefix="rct-test"):
    return f"system.slice:{prefix}:{cid}"


def run_ok(harness, bundle, cid):
    """`run --detach` of bundle as cid, asserting it worked; returns the ns pid."""
    bundle.write()
    res = harness("run", "--detach", "--bundle", bundle.path, "--pid-file",
                  harness.pid_file(cid), cid)
    assert res.rc == 0, f"{harness.kind} run --detach failed: {res.describe()}"
    pid = harness.pid_file(cid).read_text().strip()
    harness.note_pid(pid)
    return int(pid)


def hierarchies(sd):
    """{key: mount point} of every hierarchy systemd has (keys as /proc/PID/cgroup)."""
    return {key: mp for mp, _, _, key in sd.hierarchies}


def read(sd, controller, cgroup, name):
    mp = sd.mountpoint_of(controller)
    if mp is None:
        return None
    path = sd.host_cgroup(mp, cgroup) / name
    return path.read_text().strip() if path.exists() else None


def scope_dirs(sd, unit):
    """The unit's cgroup directories that exist, host paths."""
    return [d for d in (sd.host_cgroup(mp, unit.path) for mp, _, _, _ in sd.hierarchies)
            if d.exists()]


def wait_unit_gone(sd, unit, timeout=5):
    deadline = time.monotonic() + timeout
    while sd.units_matching(unit.name):
        if time.monotonic() > deadline:
            props = sd.show(unit.name, "LoadState", "ActiveState", "SubState")
            raise AssertionError(f"{unit.name} still loaded after {timeout}s: {props}")
        time.sleep(0.05)


def assert_active_scope(sd, unit, harness):
    props = sd.show(unit.name, "LoadState", "ActiveState", "SubState", "Delegate", "Slice",
                    "ControlGroup", "Transient")
    assert props["LoadState"] == "loaded" and props["ActiveState"] == "active", \
        f"{harness.kind}: {unit} is not active: {props}\n{sd.log_tail()}"
    assert props["Delegate"] == "yes", props
    assert props["Slice"] == unit.slice, props
    assert props["ControlGroup"] == unit.path, props
    assert props["Transient"] == "yes", props
    return props


def assert_in_scope(sd, harness, pid, unit, skip=()):
    """The process is in the unit's cgroup in every hierarchy (but those in skip)."""
    cgroups = sd.cgroups_of(pid)
    assert cgroups, f"process {pid} is gone"
    wrong = {key: path for key, path in cgroups.items()
             if key in hierarchies(sd) and key not in skip and path != unit.path}
    assert not wrong, f"{harness.kind}: pid {pid} not in {unit.path} in: {wrong}"
    return cgroups


def assert_nothing_left(sd, harness, cid, unit=None):
    assert not (harness.rt.root / cid).exists(), f"{harness.kind} left its state directory"
    assert not sd.units_matching(f"*{cid}*"), sd.units_matching(f"*{cid}*")
    assert not sd.cgroup_dirs_containing(cid), sd.cgroup_dirs_containing(cid)
    if unit is not None:
        assert not sd.units_matching(unit.name), sd.units_matching(unit.name)
        assert not scope_dirs(sd, unit), scope_dirs(sd, unit)


def delete_and_check(sd, harness, cid, unit, force=True):
    res = harness.delete(cid, force=force)
    assert res.rc == 0, f"{harness.kind} delete failed: {res.describe()}"
    wait_unit_gone(sd, unit)
    assert_nothing_left(sd, harness, cid, unit)


# Resources every scope test gives, and what they become.
RESOURCES = {
    "memory": {"limit": 64 * MiB},
    "pids": {"limit": 77},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000},
}
RESOURCE_PROPS = {
    "MemoryLimit": str(64 * MiB),
    "TasksMax": "77",
    "CPUShares": "512",
    "CPUQuotaPerSecUSec": "500ms",
    "CPUQuotaPeriodUSec": "100ms",
    "DevicePolicy": "strict",
    "MemoryAccounting": "yes",
    "CPUAccounting": "yes",
    "TasksAccounting": "yes",
    "BlockIOAccounting": "yes",
    "DefaultDependencies": "no",
}
RESOURCE_FILES = [  # controller, file, value
    ("memory", "memory.limit_in_bytes", str(64 * MiB)),
    ("pids", "pids.max", "77"),
    ("cpu", "cpu.shares", "512"),
    ("cpu", "cpu.cfs_quota_us", "50000"),
    ("cpu", "cpu.cfs_period_us", "100000"),
]


def on_v1(sd, controller):
    mp = sd.mountpoint_of(controller)
    return mp is not None and any(m == mp and fstype == "cgroup"
                                  for m, fstype, _, _ in sd.hierarchies)


def assert_resources(sd, unit, props=RESOURCE_PROPS, files=RESOURCE_FILES):
    got = sd.show(unit.name, *props)
    assert {k: got.get(k) for k in props} == props, got
    for controller, name, want in files:
        if not on_v1(sd, controller):
            continue  # the v1 file names; this host has the controller on cgroup v2
        value = read(sd, controller, unit.path, name)
        assert value == want, f"{controller}:{unit.path}/{name}: {value!r}, want {want!r}"


# On the unified view (sd_v2) cgroup v2 has only hugetlb: a limit for any other controller
# is refused by both runtimes (test_v2_limits_without_a_controller_are_refused); the
# hugetlb limit exercises the cgroupfs side below systemd's slices (the slice's
# cgroup.subtree_control, which systemd leaves alone for a controller it does not manage).
V2_HUGETLB = {"hugepageLimits": [{"pageSize": "2MB", "limit": 8 * MiB}]}
V2_PROPS = {
    "MemoryAccounting": "yes",
    "CPUAccounting": "yes",
    "IOAccounting": "yes",
    "TasksAccounting": "yes",
    "DevicePolicy": "strict",
    "DefaultDependencies": "no",
    "Delegate": "yes",
}


def v2_hugetlb(sd):
    """Whether systemd's cgroup2 root offers hugetlb with 2 MB pages."""
    root = sd.subtrees[sd.mountpoint_of("")]
    return "hugetlb" in sd.v2_controllers() and (root / "hugetlb.2MB.max").exists()


def layout_resources(sd):
    """The resources a scope test gives: RESOURCES on the host's layout; on the unified
    view (whose cgroup2 has no cpu, memory or pids controller here) a hugetlb limit."""
    if not sd.unified:
        return RESOURCES
    missing = [c for c in ("cpu", "memory", "pids") if c not in sd.v2_controllers()]
    if not missing:
        return RESOURCES  # a real unified host: the v2 property table
    return V2_HUGETLB if v2_hugetlb(sd) else None


def assert_layout_resources(sd, unit, resources):
    if resources is RESOURCES:
        if sd.unified:  # the v2 names of the same resources
            got = sd.show(unit.name, "MemoryMax", "TasksMax", "CPUWeight", "CPUQuotaPerSecUSec")
            assert got == {"MemoryMax": str(64 * MiB), "TasksMax": "77", "CPUWeight": "20",
                           "CPUQuotaPerSecUSec": "500ms"}, got
            return
        assert_resources(sd, unit)
        return
    got = sd.show(unit.name, *V2_PROPS)
    assert got == V2_PROPS, got
    if resources is V2_HUGETLB:
        assert read(sd, "hugetlb", unit.path, "hugetlb.2MB.max") == str(8 * MiB)
        parent = unit.path.rsplit("/", 1)[0] or "/"
        assert "hugetlb" in read(sd, "", parent, "cgroup.subtree_control").split()


# ---------------------------------------------------------------------------------------
# cgroup v2 device programs (BPF_CGROUP_DEVICE), as bpftool would list them

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine)
BPF_PROG_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD, BPF_PROG_QUERY = 13, 15, 16
BPF_CGROUP_DEVICE = 6


def _bpf(cmd, attr):
    r = _libc.syscall(ctypes.c_long(_SYS_BPF), ctypes.c_long(cmd), attr,
                      ctypes.c_long(len(attr)))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"bpf({cmd}): {os.strerror(e)}")
    return r


def device_programs(path):
    """The names of the device programs attached to the cgroup v2 directory path itself
    (systemd 252's is "sd_devices", runcell's "runcell_devices", runc 1.1.5's has none),
    sorted."""
    if _SYS_BPF is None:
        pytest.skip(f"no bpf syscall number known for {os.uname().machine}")
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        ids = (ctypes.c_uint32 * 64)()
        attr = ctypes.create_string_buffer(
            struct.pack("=IIIIQI", fd, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), 64), 120)
        _bpf(BPF_PROG_QUERY, attr)
        count = struct.unpack_from("=I", attr.raw, 24)[0]
    finally:
        os.close(fd)
    names = []
    for prog_id in ids[:count]:
        prog = _bpf(BPF_PROG_GET_FD_BY_ID,
                    ctypes.create_string_buffer(struct.pack("=III", prog_id, 0, 0), 120))
        try:
            info = ctypes.create_string_buffer(256)  # struct bpf_prog_info; name at 64
            _bpf(BPF_OBJ_GET_INFO_BY_FD, ctypes.create_string_buffer(
                struct.pack("=IIQ", prog, 256, ctypes.addressof(info)), 120))
            names.append(info.raw[64:80].split(b"\0")[0].decode())
        finally:
            os.close(prog)
    return sorted(names)


# ---------------------------------------------------------------------------------------
# runc 1.1.5 in the private systemd: the harness is real, and what runc does there


def test_runc_reference_scope_unit_resources_and_cgroups(sd, runc_sd):
    cid = runc_sd.new_id()
    unit = Unit(runc_sd, cid, f"system.slice:runc-test:{cid}")
    assert unit.name == f"runc-test-{cid}.scope"
    bundle = busybox_bundle(runc_sd, cgroups_path=f"system.slice:runc-test:{cid}",
                            resources=RESOURCES)
    pid = run_ok(runc_sd, bundle, cid)

    props = assert_active_scope(sd, unit, runc_sd)
    assert props["SubState"] == "running"
    more = sd.show(unit.name, "Description", "TasksCurrent", "DeviceAllow", "CollectMode")
    assert more["Description"] == f"libcontainer container {cid}"
    assert more["TasksCurrent"] == "1"
    assert "/dev/char/1:3 rwm" in more["DeviceAllow"]  # /dev/null, from runc's defaults
    assert more["CollectMode"] == "inactive"
    assert_resources(sd, unit)
    # runc joins every hierarchy itself; systemd then moved it out of the devices scope
    # (test_runc_reference_devices_cgroup below)
    assert_in_scope(sd, runc_sd, pid, unit, skip=("devices",))
    assert len(scope_dirs(sd, unit)) == len(sd.hierarchies), scope_dirs(sd, unit)
    for key, mp in hierarchies(sd).items():  # the host sees the same directories
        assert (sd.host_cgroup(mp, unit.path)).is_dir(), key
    host_pid = sd.host_pid(pid)
    assert str(host_pid) in Path(sd.host_cgroup(sd.mountpoint_of("memory"), unit.path),
                                 "cgroup.procs").read_text().split()

    delete_and_check(sd, runc_sd, cid, unit)


def test_runc_reference_nested_slice(sd, runc_sd):
    cid = runc_sd.new_id()
    slice_ = f"t{secrets.token_hex(3)}-a.slice"
    runc_sd.on_cleanup(lambda: sd.systemctl("stop", slice_, slice_.split("-")[0] + ".slice"))
    path = f"{slice_}:cri-containerd:{cid}"
    unit = Unit(runc_sd, cid, path)
    prefix = slice_.split("-")[0]
    assert unit.path == f"/{prefix}.slice/{slice_}/cri-containerd-{cid}.scope"
    pid = run_ok(runc_sd, busybox_bundle(runc_sd, cgroups_path=path), cid)
    assert_active_scope(sd, unit, runc_sd)
    assert sd.cgroups_of(pid)["name=systemd"] == unit.path
    delete_and_check(sd, runc_sd, cid, unit)
    # the slices stay (active, empty) until stopped
    assert sd.show(slice_, "ActiveState")["ActiveState"] == "active"


def test_runc_reference_devices_cgroup(sd, runc_sd):
    """runc 1.1.5 gives the device rules to systemd only by SetUnitProperties after the
    scope has started; systemd 252 (v1 devices) then moves the container to the slice's
    devices cgroup, which allows every device, and `runc ps` (reading the devices
    cgroup) lists nothing. A scope started with the device properties keeps its process
    (systemd-run below). This pins the behaviour down; runcell should not copy it."""
    cid = runc_sd.new_id()
    path = scoped_path(runc_sd, cid)
    unit = Unit(runc_sd, cid, path)
    pid = run_ok(runc_sd, busybox_bundle(runc_sd, cgroups_path=path), cid)
    if "devices" not in hierarchies(sd):
        pytest.skip("no v1 devices hierarchy here")
    cgroups = sd.cgroups_of(pid)
    assert cgroups["devices"] == "/system.slice", cgroups
    assert read(sd, "devices", "/system.slice", "devices.list") == "a *:* rwm"
    assert "c 1:3 rwm" in read(sd, "devices", unit.path, "devices.list")  # rules, no task
    res = runc_sd("ps", "--format", "json", cid)
    assert res.rc == 0 and not json.loads(res.out), res.describe()  # "null"
    delete_and_check(sd, runc_sd, cid, unit)

    # the same properties given at StartTransientUnit keep the process in the scope
    name = f"rct-devices-{secrets.token_hex(3)}"
    res = sd.run(["systemd-run", "--scope", f"--unit={name}", "-p", "Delegate=yes",
                  "-p", "DevicePolicy=strict", "-p", "DeviceAllow=/dev/null rw",
                  "sh", "-c", "cat /proc/self/cgroup"])
    assert res.returncode == 0, res.stderr
    assert f"devices:/system.slice/{name}.scope" in res.stdout, res.stdout




# ---------------------------------------------------------------------------------------
# Both runtimes, the same scenario


@layouts
def test_create_start_state_kill_delete(sd, rt):
    cid = rt.new_id()
    path = scoped_path(rt, cid)
    unit = Unit(rt, cid, path)
    resources = layout_resources(sd)
    bundle = busybox_bundle(rt, cgroups_path=path, resources=resources)
    res = rt.create(bundle, cid)
    assert res.rc == 0, f"{rt.kind} create failed: {res.describe()}"
    st = rt.state(cid)
    assert st["status"] == "created", st
    pid = int(st["pid"])
    assert_active_scope(sd, unit, rt)
    skip = ("devices",) if rt.is_runc else ()  # test_runc_reference_devices_cgroup
    assert_in_scope(sd, rt, pid, unit, skip=skip)
    assert_layout_resources(sd, unit, resources)
    if sd.unified:  # the scope holds the container's init alone (the stand-in has gone)
        assert read(sd, "", unit.path, "cgroup.procs").split() == [str(sd.host_pid(pid))]

    rt.start_ok(cid)
    assert rt.status(cid) == "running"
    assert_in_scope(sd, rt, pid, unit, skip=skip)

    res = rt.kill(cid, "KILL")
    assert res.rc == 0, res.describe()
    rt.wait_status(cid, "stopped")
    # the scope is empty: systemd stops and collects it on its own
    wait_unit_gone(sd, unit)
    delete_and_check(sd, rt, cid, unit, force=False)


@layouts
def test_ps_lists_the_container(sd, rt):
    cid = rt.new_id()
    path = scoped_path(rt, cid)
    pid = run_ok(rt, busybox_bundle(rt, cgroups_path=path), cid)
    res = rt("ps", "--format", "json", cid)
    assert res.rc == 0, res.describe()
    if rt.is_runc and not json.loads(res.out):  # "null"
        pytest.xfail("runc 1.1.5 reads the pids from the devices cgroup, which systemd "
                     "moved the container out of (test_runc_reference_devices_cgroup)")
    assert json.loads(res.out) == [pid], res.out


def test_devices_cgroup_confines_the_container(sd, rt):
    if "devices" not in hierarchies(sd):
        pytest.skip("no v1 devices hierarchy here")
    cid = rt.new_id()
    path = scoped_path(rt, cid)
    unit = Unit(rt, cid, path)
    pid = run_ok(rt, busybox_bundle(rt, cgroups_path=path), cid)
    where = sd.cgroups_of(pid)["devices"]
    if rt.is_runc and where != unit.path:
        pytest.xfail(f"runc 1.1.5's container is in devices:{where} "
                     "(test_runc_reference_devices_cgroup)")
    assert where == unit.path
    rules = read(sd, "devices", where, "devices.list").splitlines()
    assert "a *:* rwm" not in rules and "c 1:3 rwm" in rules, rules
    # systemd realizes the unit again on a property change and on daemon-reload: the
    # container stays in its devices cgroup with the same rules (runc 1.1.5's is moved out
    # when its SetUnitProperties brings in the device policy: test_runc_reference_devices_*)
    res = rt("update", "--pids-limit", "99", cid)
    assert res.rc == 0, res.describe()
    assert sd.systemctl("daemon-reload").returncode == 0
    assert sd.cgroups_of(pid)["devices"] == unit.path
    after = read(sd, "devices", unit.path, "devices.list").splitlines()
    assert "a *:* rwm" not in after and sorted(after) == sorted(rules), (rules, after)


# The device rules in force, seen from inside: c 1:12 and c 1:13 are minors the mem driver
# does not have, so an open the rules allow fails with ENXIO ("No such device") and one
# they deny with EPERM (test_resources.py's probe).
DEVICE_PROBE = (
    "for spec in '</dev/null' '</dev/t-12' '>/dev/t-12' '</dev/t-13'; do "
    "if (eval \"exec 3$spec\") 2>/tmp/err; then echo \"$spec opened\"; "
    "else echo \"$spec $(grep -o 'Operation not permitted\\|No such device' /tmp/err)\"; fi; "
    "done")
ENXIO, EPERM = "No such device", "Operation not permitted"
DEVICE_CASES = {
    # deny-all, then c 1:12 for reading: systemd can name every rule
    "allow-list": ([{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 12, "access": "r"}],
                   [ENXIO, EPERM, EPERM]),
    # allow-all but reading and writing c 1:13: no systemd form
    "deny-list": ([{"allow": True, "access": "rwm"},
                   {"allow": False, "type": "c", "major": 1, "minor": 13, "access": "rw"}],
                  [ENXIO, ENXIO, EPERM]),
    # c *:12 for reading: a wildcard major with one minor, which systemd cannot name
    "wildcard-major": ([{"allow": False, "access": "rwm"},
                        {"allow": True, "type": "c", "minor": 12, "access": "r"}],
                       [ENXIO, EPERM, EPERM]),
}


def device_bundle(harness, rules, cgroups_path):
    """A bundle that makes /dev/t-12 (c 1:12) and /dev/t-13 (c 1:13) (CAP_MKNOD; mknod
    stays allowed by every case's rules) and sleeps."""
    bundle = busybox_bundle(harness, cgroups_path=cgroups_path)
    bundle.config["root"]["readonly"] = False
    bundle.linux["resources"]["devices"] = rules
    for caps in bundle.process["capabilities"].values():
        caps.append("CAP_MKNOD")
    bundle.sh("mknod /dev/t-12 c 1 12 && mknod /dev/t-13 c 1 13 && exec sleep 1000")
    return bundle


def probe_devices(harness, cid):
    res = harness("exec", cid, "sh", "-c", DEVICE_PROBE)
    assert res.rc == 0, res.describe()
    return res.out.splitlines()


def want_devices(results):
    return ["</dev/null opened"] + [f"{spec} {r}" for spec, r in
                                    zip(("</dev/t-12", ">/dev/t-12", "</dev/t-13"), results)]


@layouts
def test_device_rules_hold_through_daemon_reload(sd, rt):
    """The config's device rules are what the container gets, at create and after
    systemd realizes the unit again (daemon-reload: every package install on a systemd
    host). On v1 (the host's layout here) the scope's devices cgroup holds them
    (test_devices_cgroup_confines_the_container); on v2 device filtering is an eBPF
    program, not a controller: systemd attaches its own (sd_devices) from
    DevicePolicy/DeviceAllow beside the runtime's, and a device is usable only when every
    program allows it."""
    _device_rules_through_reload(sd, rt, "allow-list")


@v2_only
@pytest.mark.parametrize("case", ["deny-list", "wildcard-major"])
def test_v2_device_rules_systemd_cannot_name(sd, rt, case):
    """Rules systemd cannot name (a deny-list, a wildcard major) get no program of
    systemd's on v2 (DevicePolicy=auto, no DeviceAllow), which after a daemon-reload would
    deny what they allow: the runtime's program alone holds them. (On v1 the scope's
    devices cgroup can only be systemd's strict list, rewritten on each realize: the
    limit docs/systemd-cgroup.md names.)"""
    _device_rules_through_reload(sd, rt, case)


def _device_rules_through_reload(sd, rt, case):
    rules, results = DEVICE_CASES[case]
    cid = rt.new_id()
    path = scoped_path(rt, cid)
    unit = Unit(rt, cid, path)
    pid = run_ok(rt, device_bundle(rt, rules, path), cid)
    want = want_devices(results)
    if not sd.unified and rt.is_runc and sd.cgroups_of(pid)["devices"] != unit.path:
        pytest.xfail("runc 1.1.5's container is in devices:/system.slice "
                     "(test_runc_reference_devices_cgroup)")
    assert probe_devices(rt, cid) == want, f"{rt.kind}, at create"
    scope = sd.host_cgroup(sd.mountpoint_of(""), unit.path) if sd.unified else None
    own = "" if rt.is_runc else "runcell_devices"  # runc 1.1.5's program has no name
    systemd_has_one = case == "allow-list" or rt.is_runc
    if scope is not None:
        # runc 1.1.5 replaces every device program on the cgroup with its own
        assert device_programs(scope) == (
            [own] if rt.is_runc else sorted([own] + ["sd_devices"] * systemd_has_one))
    assert sd.systemctl("daemon-reload").returncode == 0
    after = probe_devices(rt, cid)
    if rt.is_runc and after != want:
        pytest.xfail(f"runc 1.1.5 after daemon-reload: {after} (systemd's program now "
                     "denies what runc left out of DeviceAllow: /dev/char/1:12, whose "
                     "/sys/dev/char entry is missing, a deny-list, a wildcard major)")
    assert after == want, f"{rt.kind}, after daemon-reload"
    if scope is not None:
        assert device_programs(scope) == sorted([own] + ["sd_devices"] * systemd_has_one)


@runcell_specific
@layouts
def test_device_update_then_daemon_reload(sd, runcell_sd):
    """`update` replaces the device rules in systemd's unit too (an empty DeviceAllow
    first, as runc does: systemd adds a list to the one it has), so a daemon-reload after
    it brings back no rule the update took away (v1: systemd rewrites the devices cgroup
    from its list; v2: its program)."""
    rt = runcell_sd
    cid = rt.new_id()
    path = scoped_path(rt, cid)
    unit = Unit(rt, cid, path)
    rules, results = DEVICE_CASES["allow-list"]
    run_ok(rt, device_bundle(rt, rules, path), cid)
    assert probe_devices(rt, cid) == want_devices(results)
    swapped = [{"allow": False, "access": "rwm"},
               {"allow": True, "type": "c", "major": 1, "minor": 13, "access": "rw"}]
    res = rt("update", "--resources", "-", cid, input=json.dumps({"devices": swapped}))
    assert res.rc == 0, res.describe()
    want = want_devices([EPERM, EPERM, ENXIO])
    assert probe_devices(rt, cid) == want, "after update"
    assert sd.systemctl("daemon-reload").returncode == 0
    assert probe_devices(rt, cid) == want, "after update and daemon-reload"
    allowed = sd.show(unit.name, "DeviceAllow")["DeviceAllow"].splitlines()
    assert "/dev/char/1:13 rw" in allowed and not [a for a in allowed if "1:12" in a], allowed


def test_events_stats(sd, rt):
    cid = rt.new_id()
    path = scoped_path(rt, cid)
    run_ok(rt, busybox_bundle(rt, cgroups_path=path, resources=RESOURCES), cid)
    res = rt("events", "--stats", cid)
    assert res.rc == 0, res.describe()
    event = json.loads(res.out)
    assert event["type"] == "stats" and event["id"] == cid, event
    data = event["data"]
    assert data["memory"]["usage"]["limit"] == 64 * MiB, data["memory"]
    assert data["memory"]["usage"]["usage"] > 0, data["memory"]
    assert data["pids"]["current"] >= 1 and data["pids"]["limit"] == 77, data["pids"]
    assert data["cpu"]["usage"]["total"] > 0, data["cpu"]


@layouts
def test_pause_resume(sd, rt):
    cid = rt.new_id()
    path = scoped_path(rt, cid)
    unit = Unit(rt, cid, path)
    run_ok(rt, busybox_bundle(rt, cgroups_path=path), cid)
    res = rt("pause", cid)
    assert res.rc == 0, res.describe()
    assert rt.status(cid) == "paused"
    if sd.mountpoint_of("freezer"):
        assert read(sd, "freezer", unit.path, "freezer.state") == "FROZEN"
    else:
        assert read(sd, "", unit.path, "cgroup.freeze") == "1"
        assert "frozen 1" in read(sd, "", unit.path, "cgroup.events").splitlines()
    # systemd's view of the unit is unchanged (runc 1.1.5 and runcell freeze the cgroup
    # themselves, not through systemd's FreezeUnit)
    assert_active_scope(sd, unit, rt)
    res = rt("resume", cid)
    assert res.rc == 0, res.describe()
    assert rt.status(cid) == "running"
    if sd.mountpoint_of("freezer"):
        assert read(sd, "freezer", unit.path, "freezer.state") == "THAWED"
    else:
        assert read(sd, "", unit.path, "cgroup.freeze") == "0"
        assert "frozen 0" in read(sd, "", unit.path, "cgroup.events").splitlines()
    assert_active_scope(sd, unit, rt)
    if sd.unified:  # no cell kernel in a native container: nothing parked beside it
        assert not sd.cgroup_dirs_containing(".runcell-parked")


def test_update(sd, rt):
    cid = rt.new_id()
    path = scoped_path(rt, cid)
    unit = Unit(rt, cid, path)
    run_ok(rt, busybox_bundle(rt, cgroups_path=path, resources=RESOURCES), cid)
    assert_resources(sd, unit)
    res = rt("update", "--memory", str(100 * MiB), "--pids-limit", "88", "--cpu-share", "256",
             "--cpu-quota", "20000", cid)
    assert res.rc == 0, res.describe()
    props = dict(RESOURCE_PROPS, MemoryLimit=str(100 * MiB), TasksMax="88", CPUShares="256",
                 CPUQuotaPerSecUSec="200ms")
    files = [("memory", "memory.limit_in_bytes", str(100 * MiB)), ("pids", "pids.max", "88"),
             ("cpu", "cpu.shares", "256"), ("cpu", "cpu.cfs_quota_us", "20000"),
             ("cpu", "cpu.cfs_period_us", "100000")]
    assert_resources(sd, unit, props, files)
    # and through --resources, as containerd does
    res = rt("update", "--resources", "-", cid,
             input=json.dumps({"memory": {"limit": 80 * MiB}, "pids": {"limit": 66}}))
    assert res.rc == 0, res.describe()
    assert_resources(sd, unit, dict(props, MemoryLimit=str(80 * MiB), TasksMax="66"),
                     [("memory", "memory.limit_in_bytes", str(80 * MiB)),
                      ("pids", "pids.max", "66")])


@layouts
def test_default_cgroups_path(sd, rt):
    cid = rt.new_id()
    unit = Unit(rt, cid, None)
    assert unit.name == f"{rt.default_prefix()}-{cid}.scope"
    assert unit.path == f"/system.slice/{unit.name}"
    pid = run_ok(rt, busybox_bundle(rt), cid)
    assert_active_scope(sd, unit, rt)
    assert sd.cgroups_of(pid)[sd.tracking_key] == unit.path
    delete_and_check(sd, rt, cid, unit)


@layouts
def test_nested_slice(sd, rt):
    cid = rt.new_id()
    top = f"t{secrets.token_hex(3)}"
    slice_ = f"{top}-a-b.slice"
    rt.on_cleanup(lambda: sd.systemctl("stop", slice_, f"{top}-a.slice", f"{top}.slice"))
    path = f"{slice_}:rct-test:{cid}"
    unit = Unit(rt, cid, path)
    assert unit.path == f"/{top}.slice/{top}-a.slice/{slice_}/rct-test-{cid}.scope"
    resources = layout_resources(sd)
    pid = run_ok(rt, busybox_bundle(rt, cgroups_path=path, resources=resources), cid)
    assert_active_scope(sd, unit, rt)
    skip = ("devices",) if rt.is_runc else ()
    assert_in_scope(sd, rt, pid, unit, skip=skip)
    assert_layout_resources(sd, unit, resources)
    delete_and_check(sd, rt, cid, unit)


def test_name_ending_in_slice_is_refused(sd, rt):
    """A name ending in ".slice" names a slice unit, which cannot hold the container's
    process: runc 1.1.5 asks for one with PIDs= and systemd refuses. Nothing may stay."""
    cid = rt.new_id()
    path = f"system.slice:rct-test:{cid}.slice"
    unit = Unit(rt, cid, path)
    assert unit.name == f"{cid}.slice"
    bundle = busybox_bundle(rt, cgroups_path=path)
    bundle.write()
    res = rt("run", "--detach", "--bundle", bundle.path, cid)
    assert res.rc != 0, f"{rt.kind}: {res.describe()}"
    assert res.msg, res.describe()
    if rt.is_runc:
        assert "Cannot set property PIDs" in res.msg, res.msg
    assert_nothing_left(sd, rt, cid, unit)


@pytest.mark.parametrize("path", ["a/b:x:y", "too:many:colons:here", "nocolon"])
def test_bad_cgroups_path(sd, rt, path):
    cid = rt.new_id()
    bundle = busybox_bundle(rt, cgroups_path=path)
    bundle.write()
    res = rt("run", "--detach", "--bundle", bundle.path, cid)
    assert res.rc != 0, f"{rt.kind} accepted cgroupsPath {path!r}: {res.describe()}"
    # the message says what is wrong with it
    assert path in res.msg or (path.startswith("a/b") and "a/b" in res.msg), res.msg
    if rt.is_runc:
        assert ("invalid slice name: a/b" if "/" in path else
                'expected cgroupsPath to be of format "slice:prefix:name"') in res.msg
    assert_nothing_left(sd, rt, cid)
    assert not sd.units_matching("x-y.scope") and not sd.cgroup_dirs_containing("x-y")


@layouts
def test_systemd_property_annotations(sd, rt):
    cid = rt.new_id()
    path = scoped_path(rt, cid)
    unit = Unit(rt, cid, path)
    bundle = busybox_bundle(rt, cgroups_path=path, annotations={
        "org.systemd.property.TimeoutStopUSec": "uint64 123456789",
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
    })
    run_ok(rt, bundle, cid)
    props = sd.show(unit.name, "TimeoutStopUSec", "CollectMode")
    assert props == {"TimeoutStopUSec": "2min 3.456789s", "CollectMode": "inactive-or-failed"}
    delete_and_check(sd, rt, cid, unit)


@layouts
def test_exec_joins_the_scope(sd, rt):
    cid = rt.new_id()
    path = scoped_path(rt, cid)
    unit = Unit(rt, cid, path)
    bundle = busybox_bundle(rt, cgroups_path=path)
    if "cgroup" in bundle.namespace_types():
        bundle.drop_namespace("cgroup")  # the paths below are then systemd's
    run_ok(rt, bundle, cid)
    res = rt("exec", cid, "cat", "/proc/self/cgroup")
    assert res.rc == 0, res.describe()
    seen = {}
    for line in res.out.splitlines():
        _, ctrls, cgpath = line.split(":", 2)
        seen[",".join(sorted(ctrls.split(","))) if ctrls else ""] = cgpath
    wrong = {k: v for k, v in seen.items() if k in hierarchies(sd) and v != unit.path}
    assert not wrong, f"{rt.kind}: exec'd process outside {unit.path}: {wrong}"


@layouts
def test_container_exit_then_systemd_collects_then_delete(sd, rt):
    cid = rt.new_id()
    path = scoped_path(rt, cid)
    unit = Unit(rt, cid, path)
    bundle = busybox_bundle(rt, "sh", "-c", "sleep 0.3", cgroups_path=path)
    run_ok(rt, bundle, cid)
    rt.wait_status(cid, "stopped")
    wait_unit_gone(sd, unit)
    delete_and_check(sd, rt, cid, unit, force=False)


HIDE_PRIVATE_SOCKET = ("mount --bind /dev/null /run/systemd/private && "
                       "exec \"$@\"")


def test_systemd_unreachable_is_a_clear_error(sd, rt):
    """Neither the system bus nor systemd's private socket answers: a clear error, and
    nothing made."""
    cid = rt.new_id()
    path = scoped_path(rt, cid)
    unit = Unit(rt, cid, path)
    bundle = busybox_bundle(rt, cgroups_path=path)
    bundle.write()
    inner = rt.rt.inner_argv("run", "--detach", "--bundle", bundle.path, cid)
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS="unix:path=/nonexistent")
    res = sd.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                  HIDE_PRIVATE_SOCKET, "sh", *inner], env=env)
    assert res.returncode != 0, f"{rt.kind}: {res.stdout}{res.stderr}"
    msg = helpers.error_message(res.stderr)
    assert re.search(r"d-?bus|system bus|/run/systemd/private", msg, re.I), msg
    assert_nothing_left(sd, rt, cid, unit)


def test_reaches_systemd_without_the_system_bus(sd, rt):
    """The system bus first, then, as root, systemd's private socket (go-systemd's order,
    which runcell follows): a DBUS_SYSTEM_BUS_ADDRESS that points nowhere (no D-Bus daemon
    on the host) does not stop either runtime, and delete still reaches systemd."""
    cid = rt.new_id()
    path = scoped_path(rt, cid)
    unit = Unit(rt, cid, path)
    bundle = busybox_bundle(rt, cgroups_path=path)
    bundle.write()
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS="unix:path=/nonexistent")
    res = rt("run", "--detach", "--bundle", bundle.path, cid, env=env)
    assert res.rc == 0, res.describe()
    assert_active_scope(sd, unit, rt)
    delete_and_check(sd, rt, cid, unit)


# ---------------------------------------------------------------------------------------
# runcell's modes


@runcell_specific
def test_runcell_cell_mode(sd, runcell_sd):
    """A cell (gate on, the cell kernel): it runs in its scope, exec works, delete leaves
    nothing (the cell kernel's own cgroup placement included)."""
    cid = runcell_sd.new_id()
    path = scoped_path(runcell_sd, cid)
    unit = Unit(runcell_sd, cid, path)
    bundle = busybox_bundle(runcell_sd, cgroups_path=path, resources=RESOURCES)
    bundle.config["annotations"] = {k: v for k, v in bundle.config["annotations"].items()
                                    if k not in NATIVE_ANNOTATIONS}
    pid = run_ok(runcell_sd, bundle, cid)
    st = runcell_sd.state(cid)
    assert st["status"] == "running" and st["annotations"].get("run.runcell.gate") != "off"
    assert_active_scope(sd, unit, runcell_sd)
    assert sd.cgroups_of(pid)["name=systemd"] == unit.path
    assert_resources(sd, unit)
    res = runcell_sd("exec", cid, "sh", "-c", "echo hello from $(hostname)")
    assert res.rc == 0 and res.out == "hello from runc\n", res.describe()
    delete_and_check(sd, runcell_sd, cid, unit)


def cell_kernels(sd):
    """{pid in systemd's pid namespace: cgroup v2 path seen inside} of the cell kernels
    (comm runcell-cellk) running under this private systemd."""
    ours = os.stat(f"/proc/{sd.pid}/ns/pid").st_ino
    level = len(nspids("self"))  # systemd's pid namespace is one below ours
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if (Path(f"/proc/{entry}/comm").read_text().strip() != "runcell-cellk"
                    or os.stat(f"/proc/{entry}/ns/pid").st_ino != ours):
                continue
        except OSError:
            continue
        pids = nspids(entry)
        if len(pids) > level:
            found[pids[level]] = None
    for ns_pid in found:
        found[ns_pid] = sd.cgroups_of(ns_pid).get("")
    return {k: v for k, v in found.items() if v is not None}


@runcell_specific
@v2_only
def test_runcell_v2_cell_kernel_pause_delete(sd, runcell_sd):
    """A cell on a unified host under systemd. The cell kernel goes to the child
    <scope>/runcell-cellk only where cgroup v2 has the cpu controller
    (cgroups_cell_kernel.c: it is charged to the cell there), and a freeze parks it in the
    sibling <scope>.runcell-parked. On this view v2 has no cpu controller (v1 has it, and
    no v1 hierarchy is mounted), so the cell kernel joins no cgroup of the cell: it stays
    where runcell was started (the harness's client cgroup), outside the unit, and neither
    directory is made, pause or not. Either way the scope holds the container's processes
    only, pause freezes it while the cell kernel keeps serving, and delete ends the cell
    kernel and leaves nothing."""
    rt = runcell_sd
    cid = rt.new_id()
    path = scoped_path(rt, cid)
    unit = Unit(rt, cid, path)
    bundle = busybox_bundle(rt, cgroups_path=path, resources=layout_resources(sd))
    bundle.config["annotations"] = {k: v for k, v in bundle.config["annotations"].items()
                                    if k not in NATIVE_ANNOTATIONS}
    pid = run_ok(rt, bundle, cid)
    st = rt.state(cid)
    assert st["status"] == "running" and st["annotations"].get("run.runcell.gate") != "off"
    assert_active_scope(sd, unit, rt)
    assert sd.cgroups_of(pid)[""] == unit.path
    kernels = cell_kernels(sd)
    assert kernels, "no cell kernel found"
    charged = "cpu" in sd.v2_controllers()
    cellk = f"{unit.path}/runcell-cellk"
    parked = f"{unit.path}.runcell-parked"
    if charged:
        assert set(kernels.values()) == {cellk}, kernels
    else:
        assert set(kernels.values()) == {"/runcell-test-client"}, kernels
        assert not sd.cgroup_dirs_containing("runcell-cellk")
    assert read(sd, "", unit.path, "cgroup.procs").split() == [str(sd.host_pid(pid))]
    res = rt("ps", "--format", "json", cid)
    assert res.rc == 0 and json.loads(res.out) == [pid], res.describe()

    res = rt("pause", cid)
    assert res.rc == 0, res.describe()
    assert rt.status(cid) == "paused"
    assert read(sd, "", unit.path, "cgroup.freeze") == "1"
    assert "frozen 1" in read(sd, "", unit.path, "cgroup.events").splitlines()
    if charged:
        assert set(cell_kernels(sd).values()) == {parked}
        assert read(sd, "", parked, "cgroup.freeze") == "0"
    else:
        assert not sd.cgroup_dirs_containing(".runcell-parked")
        assert set(cell_kernels(sd).values()) == {"/runcell-test-client"}
    assert_active_scope(sd, unit, rt)
    res = rt("resume", cid)
    assert res.rc == 0, res.describe()
    assert rt.status(cid) == "running"
    assert not sd.cgroup_dirs_containing(".runcell-parked")
    assert set(cell_kernels(sd).values()) == ({cellk} if charged else {"/runcell-test-client"})
    res = rt("exec", cid, "sh", "-c", "echo hello from $(hostname)")
    assert res.rc == 0 and res.out == "hello from runc\n", res.describe()

    delete_and_check(sd, rt, cid, unit)
    deadline = time.monotonic() + 5
    while cell_kernels(sd) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not cell_kernels(sd), "the cell kernel outlived its cell"
    assert not sd.cgroup_dirs_containing("runcell-cellk")
    assert not sd.cgroup_dirs_containing(".runcell-parked")


@runcell_specific
@v2_only
def test_delete_while_systemd_removes_the_emptied_scope(sd, runcell_sd):
    """delete --force races systemd: once the container's last process is dead, systemd
    stops the scope and removes its cgroup, which delete may still have open (reading
    cgroup.procs, waiting on cgroup.events): the kernel answers ENODEV (or ENOENT) there,
    and delete failed with "read cgroup.events: No such device", keeping the state (seen in
    about one run of this module in ten on a loaded host; container_ops.c's stop_all now
    takes a removed cgroup as one without processes). Here a process of the host's in the scope
    (outside the container's pid namespace: delete's kill sweep ends it, not the init's
    death) and each read(2) of delete slowed by 0.1 s (strace) make systemd's removal land
    inside those reads every time."""
    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    rt = runcell_sd
    cid = rt.new_id()
    path = scoped_path(rt, cid)
    unit = Unit(rt, cid, path)
    run_ok(rt, busybox_bundle(rt, cgroups_path=path), cid)
    procs = f"{sd.mountpoint_of('')}{unit.path}/cgroup.procs"
    res = sd.run(["sh", "-c", f'sleep 1000 </dev/null >/dev/null 2>&1 & echo $! >"{procs}"'])
    assert res.returncode == 0, res.stderr
    assert len(read(sd, "", unit.path, "cgroup.procs").split()) == 2
    res = sd.run(["strace", "-f", "-o", "/dev/null", "-e", "trace=read",
                  "-e", "inject=read:delay_enter=100000",
                  *rt.rt.inner_argv("delete", "--force", cid)], timeout=60)
    assert res.returncode == 0, f"delete --force: {res.stderr}"
    wait_unit_gone(sd, unit)
    assert_nothing_left(sd, rt, cid, unit)


@v2_only
def test_v2_limits_without_a_controller_are_refused(sd, rt):
    """cgroup v2 here has no memory controller (v1 has it): both runtimes refuse a memory
    limit (runc 1.1.5 when it writes memory.max, runcell before the container starts,
    naming the controller) and leave no unit. systemd itself takes MemoryMax and TasksMax
    (org.systemd.property annotations, which only systemd reads) for a scope whose cgroup
    has neither controller: it shows them and realizes nothing."""
    if "memory" in sd.v2_controllers() or "pids" in sd.v2_controllers():
        pytest.skip("this host's cgroup v2 has the memory and pids controllers")
    cid = rt.new_id()
    path = scoped_path(rt, cid)
    unit = Unit(rt, cid, path)
    bundle = busybox_bundle(rt, cgroups_path=path, resources={"memory": {"limit": 64 * MiB}})
    bundle.write()
    res = rt("run", "--detach", "--bundle", bundle.path, cid)
    assert res.rc != 0, f"{rt.kind}: {res.describe()}"
    if rt.is_runc:
        assert "memory.max: no such file or directory" in res.msg, res.msg
    else:
        assert "linux.resources.memory is set but the host has no memory controller" in \
            res.msg, res.msg
    wait_unit_gone(sd, unit)
    assert_nothing_left(sd, rt, cid, unit)

    cid = rt.new_id()
    path = scoped_path(rt, cid)
    unit = Unit(rt, cid, path)
    bundle = busybox_bundle(rt, cgroups_path=path, annotations={
        "org.systemd.property.MemoryMax": "uint64 67108864",
        "org.systemd.property.TasksMax": "uint64 50",
    })
    run_ok(rt, bundle, cid)
    assert_active_scope(sd, unit, rt)
    assert sd.show(unit.name, "MemoryMax", "TasksMax") == {"MemoryMax": str(64 * MiB),
                                                          "TasksMax": "50"}
    assert read(sd, "", unit.path, "memory.max") is None
    assert read(sd, "", unit.path, "pids.max") is None
    delete_and_check(sd, rt, cid, unit)


@runcell_specific
def test_runcell_native_mode(sd, runcell_sd):
    """run.runcell.gate: off (helpers.NATIVE_ANNOTATIONS, every bundle above has it): a
    foreground run's exit status and output come back, the scope goes with it."""
    cid = runcell_sd.new_id()
    path = scoped_path(runcell_sd, cid)
    unit = Unit(runcell_sd, cid, path)
    bundle = busybox_bundle(runcell_sd, "sh", "-c", "cat /proc/self/cgroup; exit 3",
                            cgroups_path=path)
    assert bundle.config["annotations"]["run.runcell.gate"] == "off"
    res = runcell_sd.run_container(bundle, cid)
    assert res.rc == 3, res.describe()
    assert f"name=systemd:{unit.path}" in res.out, res.out
    wait_unit_gone(sd, unit)  # run deleted the container on its way out
    assert_nothing_left(sd, runcell_sd, cid, unit)


# ---------------------------------------------------------------------------------------
# runcell's scope next to runc's


COMPARED_PROPS = [
    "LoadState", "ActiveState", "SubState", "Transient", "Delegate", "Slice",
    "DefaultDependencies", "MemoryAccounting", "CPUAccounting", "BlockIOAccounting",
    "TasksAccounting", "MemoryLimit", "TasksMax", "CPUShares", "CPUQuotaPerSecUSec",
    "CPUQuotaPeriodUSec", "BlockIOWeight", "DevicePolicy", "DeviceAllow", "AllowedCPUs",
    "CollectMode", "TimeoutStopUSec", "KillMode", "SendSIGKILL", "ControlGroup",
    "IOAccounting", "MemoryMax", "CPUWeight", "IOWeight", "DelegateControllers",
]
COMPARED_FILES = [
    ("memory", "memory.limit_in_bytes"), ("memory", "memory.soft_limit_in_bytes"),
    ("memory", "memory.memsw.limit_in_bytes"), ("pids", "pids.max"), ("cpu", "cpu.shares"),
    ("cpu", "cpu.cfs_quota_us"), ("cpu", "cpu.cfs_period_us"), ("cpuset", "cpuset.cpus"),
    ("cpuset", "cpuset.mems"), ("devices", "devices.list"), ("freezer", "freezer.state"),
    ("blkio", "blkio.weight"), ("hugetlb", "hugetlb.2MB.max"), ("", "cgroup.type"),
    ("", "cgroup.subtree_control"), ("", "cgroup.freeze"),
]
DIFF_RESOURCES = {
    "memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 128 * MiB},
    "pids": {"limit": 77},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
}


def _scope_view(sd, harness, cid):
    """What a runtime made of DIFF_RESOURCES (on the unified view: layout_resources):
    unit properties, cgroup files, where the container is; the container id and runtime
    name written as <id>."""
    path = scoped_path(harness, cid)
    unit = Unit(harness, cid, path)
    resources = layout_resources(sd) if sd.unified else DIFF_RESOURCES
    pid = run_ok(harness, busybox_bundle(harness, cgroups_path=path,
                                         resources=resources), cid)

    def norm(value):
        return None if value is None else value.replace(cid, "<id>")

    props = {k: norm(v) for k, v in sd.show(unit.name, *COMPARED_PROPS).items()}
    if props.get("DeviceAllow"):
        props["DeviceAllow"] = "\n".join(sorted(props["DeviceAllow"].splitlines()))
    # On the hybrid host runcell also enables the v2 part's controllers (hugetlb here) down
    # to the scope, as it does on any v2 hierarchy; runc 1.1.5's v1 manager only joins the
    # unified hierarchy there. Compared where both runtimes manage v2 (the unified view).
    files = {f"{c}/{n}": norm(read(sd, c, unit.path, n)) for c, n in COMPARED_FILES
             if sd.mountpoint_of(c) and (sd.unified or c != "hugetlb")}
    cgroups = {k: norm(v) for k, v in sd.cgroups_of(pid).items() if k in hierarchies(sd)}
    dirs = sorted(str(d).replace(cid, "<id>") for d in scope_dirs(sd, unit))
    return props, files, cgroups, dirs


@differential
@layouts
def test_runcell_scope_matches_runc(sd, runc_sd, runcell_sd):
    theirs = _scope_view(sd, runc_sd, runc_sd.new_id())
    ours = _scope_view(sd, runcell_sd, runcell_sd.new_id())
    names = ("systemctl show", "cgroup files", "/proc/PID/cgroup", "cgroup directories")
    for name, t, o in zip(names, theirs, ours):
        if name == "/proc/PID/cgroup":
            # runc's container is left in devices:/system.slice by systemd
            # (test_runc_reference_devices_cgroup); runcell's belongs in its scope
            t, o = dict(t), dict(o)
            ours_devices = o.pop("devices", None)
            if not runcell_sd.is_runc:
                assert ours_devices in (None, "/system.slice/rct-test-<id>.scope"), o
            t.pop("devices", None)
        if name == "cgroup files" and "devices/devices.list" in t:
            t, o = dict(t), dict(o)
            t_rules, o_rules = t.pop("devices/devices.list"), o.pop("devices/devices.list")
            assert sorted((o_rules or "").splitlines()) == sorted(
                (t_rules or "").splitlines()), (o_rules, t_rules)
        if isinstance(t, list):
            assert o == t, f"{name} differ, runcell vs runc: {o} vs {t}"
            continue
        diff = {k: (o.get(k), t.get(k)) for k in sorted(set(t) | set(o)) if o.get(k) != t.get(k)}
        assert not diff, f"{name} differs, (runcell, runc): {diff}"
