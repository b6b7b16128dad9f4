"""linux.resources, field by field: a container created with the value, and the value read
back from the container's cgroup on the host; or, where the host cannot enforce it, the
error (and nothing left behind: no cgroup directory in any hierarchy, no state directory).

The shared cases are differential: the same config under runcell and Debian's runc 1.1.5
must both succeed with the same cgroup file values, or both fail. Where runcell does more
than runc 1.1.5 (cpu.idle and cpu.burst on v1, hugetlb on the v2 half of a hybrid host,
unified keys for v2 controllers on a hybrid host) the case is runcell_specific and says why.
Each check reads the file names of the cgroup version that holds the controller here.
"""
import json
import os
import secrets
import shutil
from pathlib import Path

import pytest

from helpers import (
    CGROUP_TEST_PARENT,
    HOST_CGROUP2_UNIFIED,
    Runtime,
    cgroup_dirs_named,
    cgroup_hierarchies,
    controller_dir,
    process_alive,
)

MiB = 1024 * 1024
runcell_specific = pytest.mark.runcell_specific


# ---------------------------------------------------------------------------------------
# Helpers


def cg_dir(controller, cid):
    """The container's directory in the hierarchy holding controller, and its version."""
    mount, version = controller_dir(controller)
    if mount is None:
        return None, None
    return mount / CGROUP_TEST_PARENT / cid, version


def cg_read(controller, cid, name):
    d, _ = cg_dir(controller, cid)
    if d is None:
        return None  # the host has no such controller
    path = d / name
    return path.read_text().strip() if path.exists() else None


def version_of(controller):
    return controller_dir(controller)[1]


def need(controller):
    if version_of(controller) is None:
        pytest.skip(f"the host has no {controller} controller")
    return version_of(controller)


def create_with(harness, resources, log=None, args=("sleep", "60")):
    """`create` of a sleeping busybox container with linux.resources updated by
    resources and its cgroup at /rct-test/<id>; returns (id, Result)."""
    bundle = harness.bundle()
    bundle.args(*args)
    bundle.linux["resources"].update(resources)
    cid = harness.new_id()
    bundle.linux["cgroupsPath"] = f"/{CGROUP_TEST_PARENT}/{cid}"
    bundle.write()
    glob = ["--log", log] if log else []
    res = harness(*glob, "create", "--bundle", bundle.path, "--pid-file",
                  harness.pid_file(cid), cid)
    if res.rc == 0:
        harness.note_pid(harness.pid_file(cid).read_text().strip())
    return cid, res


def runcell_under_test(harness):
    """False when RUNCELL_BIN points at runc, to check these tests themselves: runcell's own
    wording is then not asserted."""
    return Path(harness.rt.binary).name != "runc"


def says(harness, res, *texts):
    """Asserts that the runtime's error message holds each text (runcell's wording)."""
    assert res.rc != 0, res.describe()
    if runcell_under_test(harness):
        for text in texts:
            assert text in res.msg, res.describe()


def assert_nothing_left(harness, cid):
    assert cgroup_dirs_named(cid) == [], f"{harness.rt.name} left cgroups behind"
    assert not (harness.rt.root / cid).exists(), f"{harness.rt.name} left its state behind"


def differential(h, runc_h, resources, reads, **kw):
    """Creates the same container under runcell and runc; asserts both succeed with the same
    values of reads ({label: fn(cid) -> value}) or both fail leaving nothing behind.
    Returns {"runcell": (Result, values), "runc": (Result, values)}."""
    out = {}
    for name, harness in (("runcell", h), ("runc", runc_h)):
        cid, res = create_with(harness, resources, **kw)
        values = None
        if res.rc == 0:
            values = {label: fn(cid) for label, fn in reads.items()}
            assert harness.delete(cid, force=True).rc == 0
        else:
            assert_nothing_left(harness, cid)
        out[name] = (res, values)
    (mine, my_values), (theirs, their_values) = out["runcell"], out["runc"]
    assert (mine.rc == 0) == (theirs.rc == 0), (
        f"runcell and runc disagree on {json.dumps(resources)}:\n"
        f"runcell: {mine.describe()}\nrunc: {theirs.describe()}")
    assert my_values == their_values, (my_values, their_values)
    return out


def warned(h, workdir, resources, text):
    """A runcell create with resources succeeds and its log carries the warning text."""
    log = workdir / f"warned-{secrets.token_hex(3)}.log"
    cid, res = create_with(h, resources, log=log)
    assert res.rc == 0, res.describe()
    assert h.delete(cid, force=True).rc == 0
    assert text in log.read_text(), log.read_text()


def reader(controller, name):
    return lambda cid: cg_read(controller, cid, name)


def root_disk():
    """(major, minor) of the whole disk holding /, for block I/O rules."""
    st = os.stat("/")
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    sysdir = Path(f"/sys/dev/block/{major}:{minor}")
    if not sysdir.exists():
        pytest.skip(f"/ is on {major}:{minor}, which is not a block device (no /sys/dev/block)")
    if (sysdir / "partition").exists():
        major, minor = map(int, (sysdir.resolve().parent / "dev").read_text().split(":"))
    return major, minor


# ---------------------------------------------------------------------------------------
# memory


def test_memory_limit_reservation_swap(h, runc_h):
    v = need("memory")
    res = {"memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 96 * MiB}}
    if v == 1:
        if not (cg_dir("memory", "")[0].parent / "memory.memsw.limit_in_bytes").exists():
            pytest.skip("the host has no swap accounting (memory.memsw.*)")
        reads = {f: reader("memory", f) for f in (
            "memory.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.memsw.limit_in_bytes")}
        want = {"memory.limit_in_bytes": str(64 * MiB),
                "memory.soft_limit_in_bytes": str(32 * MiB),
                "memory.memsw.limit_in_bytes": str(96 * MiB)}
    else:
        reads = {f: reader("memory", f) for f in ("memory.max", "memory.low", "memory.swap.max")}
        # OCI swap is memory+swap; v2's swap.max is swap alone.
        want = {"memory.max": str(64 * MiB), "memory.low": str(32 * MiB),
                "memory.swap.max": str(32 * MiB)}
    out = differential(h, runc_h, res, reads)
    assert out["runcell"][1] == want


def test_memory_unlimited(h, runc_h):
    v = need("memory")
    name = "memory.limit_in_bytes" if v == 1 else "memory.max"
    out = differential(h, runc_h, {"memory": {"limit": -1}}, {name: reader("memory", name)})
    assert out["runcell"][1][name] in ("max", "9223372036854771712")


def test_memory_swap_below_limit_fails_for_both(h, runc_h):
    need("memory")
    out = differential(h, runc_h, {"memory": {"limit": 64 * MiB, "swap": 32 * MiB}}, {})
    assert out["runcell"][0].rc != 0
    says(h, out["runcell"][0], "memory.swap (33554432) must be at least memory.limit (67108864)")


def test_memory_swappiness_and_oom_killer(h, runc_h):
    if need("memory") != 1:
        pytest.skip("cgroup v2 has no swappiness or OOM-killer switch (runcell warns)")
    reads = {"swappiness": reader("memory", "memory.swappiness"),
             "oom": lambda cid: cg_read("memory", cid, "memory.oom_control").splitlines()[0]}
    out = differential(h, runc_h, {"memory": {"swappiness": 30, "disableOOMKiller": True}},
                       reads)
    assert out["runcell"][1] == {"swappiness": "30", "oom": "oom_kill_disable 1"}


def test_memory_swappiness_out_of_range_fails_for_both(h, runc_h):
    v = need("memory")
    if v == 2:
        # runc 1.1.5 checks the range only where it writes memory.swappiness (v1) and
        # ignores the field on v2; runcell refuses the invalid value on every host
        cid, res = create_with(h, {"memory": {"swappiness": 101}})
        says(h, res, "linux.resources.memory.swappiness", "between 0 and 100")
        assert_nothing_left(h, cid)
        return
    out = differential(h, runc_h, {"memory": {"swappiness": 101}}, {})
    says(h, out["runcell"][0], "linux.resources.memory.swappiness", "between 0 and 100")


def test_kernel_memory_is_ignored_with_runcs_warning(h, runc_h, workdir):
    v = need("memory")
    res = {"memory": {"kernel": 16 * MiB, "kernelTCP": 16 * MiB}}
    reads = {}
    if v == 1:
        # Left as inherited (unlimited): nothing was written.
        for f in ("memory.kmem.limit_in_bytes", "memory.kmem.tcp.limit_in_bytes"):
            if (cg_dir("memory", "")[0].parent / f).exists():
                reads[f] = reader("memory", f)
    values = {}
    for name, harness in (("runcell", h), ("runc", runc_h)):
        log = workdir / f"{name}.log"
        cid, r = create_with(harness, res, log=log)
        assert r.rc == 0, r.describe()
        values[name] = {label: fn(cid) for label, fn in reads.items()}
        assert harness.delete(cid, force=True).rc == 0
        assert "Kernel memory settings are ignored and will be removed" in log.read_text(), \
            f"{name}: no warning in its log"
    assert values["runcell"] == values["runc"]
    for value in values["runcell"].values():
        assert int(value) > 2**62, "kernel memory must not be limited"


def test_memory_use_hierarchy_false_is_ignored(h, runc_h, workdir):
    v = need("memory")
    reads = {"use_hierarchy": reader("memory", "memory.use_hierarchy")} if v == 1 else {}
    out = differential(h, runc_h, {"memory": {"useHierarchy": False}}, reads,
                       log=workdir / "log")
    assert out["runcell"][0].rc == 0
    if v == 1:
        assert out["runcell"][1]["use_hierarchy"] == "1"


# ---------------------------------------------------------------------------------------
# cpu, cpuset


def test_cpu_shares_quota_period(h, runc_h):
    v = need("cpu")
    res = {"cpu": {"shares": 512, "quota": 50000, "period": 100000}}
    if v == 1:
        reads = {f: reader("cpu", f) for f in ("cpu.shares", "cpu.cfs_quota_us",
                                                "cpu.cfs_period_us")}
        want = {"cpu.shares": "512", "cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000"}
    else:
        reads = {f: reader("cpu", f) for f in ("cpu.weight", "cpu.max")}
        # runc's conversion: weight = 1 + ((shares - 2) * 9999) / 262142
        want = {"cpu.weight": str(1 + ((512 - 2) * 9999) // 262142), "cpu.max": "50000 100000"}
    out = differential(h, runc_h, res, reads)
    assert out["runcell"][1] == want


def test_cpu_unlimited_quota(h, runc_h):
    v = need("cpu")
    name = "cpu.cfs_quota_us" if v == 1 else "cpu.max"
    out = differential(h, runc_h, {"cpu": {"quota": -1, "period": 50000}},
                       {name: reader("cpu", name)})
    assert out["runcell"][1][name] in ("-1", "max 50000")


def test_cpuset_cpus_and_mems(h, runc_h):
    need("cpuset")
    reads = {f: reader("cpuset", f) for f in ("cpuset.cpus", "cpuset.mems")}
    out = differential(h, runc_h, {"cpu": {"cpus": "0", "mems": "0"}}, reads)
    assert out["runcell"][1] == {"cpuset.cpus": "0", "cpuset.mems": "0"}


def test_cpuset_cpus_the_host_lacks_fails_for_both(h, runc_h):
    need("cpuset")
    out = differential(h, runc_h, {"cpu": {"cpus": "999-1000"}}, {})
    says(h, out["runcell"][0], 'cpuset.cpus "999-1000"')


def test_cpu_realtime(h, runc_h):
    v = need("cpu")
    res = {"cpu": {"realtimePeriod": 1000000, "realtimeRuntime": 1000}}
    if v == 2:
        cid, r = create_with(h, res)
        says(h, r, "not supported on cgroup v2")
        assert_nothing_left(h, cid)
        return
    parent = controller_dir("cpu")[0]
    if not (parent / "cpu.rt_runtime_us").exists():
        pytest.skip("the host's kernel has no realtime group scheduling (CONFIG_RT_GROUP_SCHED)")
    reads = {f: reader("cpu", f) for f in ("cpu.rt_period_us", "cpu.rt_runtime_us")}
    out = differential(h, runc_h, res, reads)
    mine = out["runcell"][0]
    if mine.rc == 0:
        assert out["runcell"][1] == {"cpu.rt_period_us": "1000000", "cpu.rt_runtime_us": "1000"}
    else:
        # The new cgroup's parents have no realtime budget to give (rt_runtime_us 0).
        says(h, mine, 'cpu.rt_runtime_us "1000"', "parent cgroup's realtime budget")


@runcell_specific
def test_cpu_idle_and_burst(h):
    # runc 1.1.5 writes neither on v1 (idle and burst came in runc 1.2); runcell does.
    v = need("cpu")
    cid, r = create_with(h, {"cpu": {"idle": 1, "burst": 1000, "quota": 50000,
                                     "period": 100000}})
    if r.rc != 0:
        assert "cpu.idle" in r.msg or "burst" in r.msg, r.describe()
        assert_nothing_left(h, cid)
        pytest.skip(f"the host's kernel lacks cpu.idle or CFS burst: {r.msg}")
    assert cg_read("cpu", cid, "cpu.idle") == "1"
    assert cg_read("cpu", cid, "cpu.cfs_burst_us" if v == 1 else "cpu.max.burst") == "1000"


# ---------------------------------------------------------------------------------------
# pids


@pytest.mark.parametrize("limit,want", [(20, "20"), (0, "max"), (-1, "max")])
def test_pids_limit(h, runc_h, limit, want):
    need("pids")
    out = differential(h, runc_h, {"pids": {"limit": limit}},
                       {"pids.max": reader("pids", "pids.max")})
    assert out["runcell"][1] == {"pids.max": want}


# ---------------------------------------------------------------------------------------
# blockIO


def blkio_file(v1_name, v2_name=None):
    def read(cid):
        d, v = cg_dir("blkio", cid) if version_of("blkio") else cg_dir("io", cid)
        if v == 2:
            return (d / v2_name).read_text().strip() if v2_name else None
        return (d / v1_name).read_text().strip() if (d / v1_name).exists() else None
    return read


def need_blkio():
    if version_of("blkio") is None and version_of("io") is None:
        pytest.skip("the host has no blkio (v1) or io (v2) controller")
    return version_of("blkio") or 2


def test_blkio_throttles(h, runc_h):
    v = need_blkio()
    major, minor = root_disk()
    dev = f"{major}:{minor}"
    res = {"blockIO": {
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 2 * MiB}],
        "throttleWriteBpsDevice": [{"major": major, "minor": minor, "rate": 1 * MiB}],
        "throttleReadIOPSDevice": [{"major": major, "minor": minor, "rate": 300}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 200}],
    }}
    if v == 1:
        names = ["read_bps_device", "write_bps_device", "read_iops_device", "write_iops_device"]
        reads = {n: blkio_file(f"blkio.throttle.{n}") for n in names}
        want = {"read_bps_device": f"{dev} {2 * MiB}", "write_bps_device": f"{dev} {MiB}",
                "read_iops_device": f"{dev} 300", "write_iops_device": f"{dev} 200"}
    else:
        reads = {"io.max": blkio_file(None, "io.max")}
        want = {"io.max": f"{dev} rbps={2 * MiB} wbps={MiB} riops=300 wiops=200"}
    out = differential(h, runc_h, res, reads)
    assert out["runcell"][1] == want


def test_blkio_weight(h, runc_h):
    v = need_blkio()
    if v == 1:
        reads = {"weight": lambda cid: (blkio_file("blkio.weight")(cid)
                                        or blkio_file("blkio.bfq.weight")(cid))}
    else:
        reads = {"weight": lambda cid: (blkio_file(None, "io.bfq.weight")(cid))}
    out = differential(h, runc_h, {"blockIO": {"weight": 500}}, reads)
    mine = out["runcell"][0]
    if mine.rc != 0:
        says(h, mine, "weight")
        pytest.skip(f"the host offers no block I/O weights (both runtimes fail): {mine.msg}")
    assert out["runcell"][1]["weight"] in ("500", "default 500")


def test_blkio_weight_device(h, runc_h):
    v = need_blkio()
    major, minor = root_disk()
    sched = Path(f"/sys/dev/block/{major}:{minor}/queue/scheduler")
    bfq = sched.exists() and "[bfq]" in sched.read_text()
    res = {"blockIO": {"weightDevice": [{"major": major, "minor": minor, "weight": 300}]}}
    name = "blkio.bfq.weight_device" if v == 1 else "io.bfq.weight"
    out = differential(h, runc_h, res, {name: blkio_file(name, name)})
    mine = out["runcell"][0]
    if bfq:
        assert mine.rc == 0, mine.describe()
        assert f"{major}:{minor} 300" in out["runcell"][1][name]
    else:
        # Per-device weights are BFQ's; the disk uses another scheduler.
        assert mine.rc != 0
        if v == 1:
            says(h, mine, "does not use the BFQ I/O scheduler")


def test_blkio_leaf_weight(h, runc_h, workdir):
    v = need_blkio()
    if v == 2:
        cid, r = create_with(h, {"blockIO": {"leafWeight": 500}}, log=workdir / "log")
        assert r.rc == 0, r.describe()
        assert "leafWeight is ignored" in (workdir / "log").read_text()
        return
    out = differential(h, runc_h, {"blockIO": {"leafWeight": 500}},
                       {"leaf": blkio_file("blkio.leaf_weight")})
    mine = out["runcell"][0]
    if mine.rc != 0:
        # Leaf weights were CFQ's, gone since Linux 5.0.
        says(h, mine, "blkio.leaf_weight", "CFQ")
    else:
        assert out["runcell"][1]["leaf"] == "500"


# ---------------------------------------------------------------------------------------
# hugetlb


def hugepage_2mb():
    if not Path("/sys/kernel/mm/hugepages/hugepages-2048kB").exists():
        pytest.skip("the host has no 2 MiB huge pages")


def test_hugepage_limit(h, runc_h):
    hugepage_2mb()
    v = version_of("hugetlb")
    if v is None:
        cid, r = create_with(h, {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}]})
        says(h, r, "no hugetlb controller")
        assert_nothing_left(h, cid)
        return
    if v == 2 and version_of("memory") == 1:
        pytest.skip("hugetlb is on the v2 half of this hybrid host, which runc 1.1.5 cannot "
                    "use (see test_hugepage_limit_on_the_v2_half_of_a_hybrid_host)")
    name = "hugetlb.2MB.limit_in_bytes" if v == 1 else "hugetlb.2MB.max"
    out = differential(h, runc_h, {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}]},
                       {name: reader("hugetlb", name)})
    assert out["runcell"][1] == {name: str(4 * MiB)}


@runcell_specific
def test_hugepage_limit_on_the_v2_half_of_a_hybrid_host(h, runc_h):
    # runc 1.1.5's v1 driver looks for hugetlb among the v1 hierarchies only and fails
    # ("cannot set hugetlb limit: container could not join or create cgroup"); runcell
    # writes the v2 file, since the container's v2 cgroup is there too.
    hugepage_2mb()
    if not (version_of("hugetlb") == 2 and version_of("memory") == 1):
        pytest.skip("needs a hybrid host whose hugetlb controller is on cgroup v2")
    cid, r = create_with(h, {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}]})
    assert r.rc == 0, r.describe()
    assert cg_read("hugetlb", cid, "hugetlb.2MB.max") == str(4 * MiB)
    rcid, rr = create_with(runc_h, {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}]})
    assert rr.rc != 0 and "cannot set hugetlb limit" in rr.msg, rr.describe()


def test_hugepage_size_the_host_lacks(h):
    if version_of("hugetlb") is None:
        pytest.skip("the host has no hugetlb controller")
    cid, r = create_with(h, {"hugepageLimits": [{"pageSize": "3MB", "limit": 4 * MiB}]})
    says(h, r, "hugetlb.3MB", "the host has no 3MB huge pages")
    assert_nothing_left(h, cid)


# ---------------------------------------------------------------------------------------
# network, rdma


def test_network_class_id(h, runc_h, workdir):
    res = {"network": {"classID": 0x100001}}
    out = differential(h, runc_h, res, {"classid": reader("net_cls", "net_cls.classid")})
    if version_of("net_cls") is None and HOST_CGROUP2_UNIFIED:
        # a cgroup v2 host has no net_cls: runc leaves the setting out, runcell too, warning
        assert out["runcell"][1] == {"classid": None}
        warned(h, workdir, res, "linux.resources.network.classID is ignored: the host has no net_cls")
    elif version_of("net_cls") is None:
        says(h, out["runcell"][0], "network.classID is set but the host has no net_cls controller")
    else:
        assert out["runcell"][1] == {"classid": str(0x100001)}


def test_network_priorities(h, runc_h, workdir):
    res = {"network": {"priorities": [{"name": "lo", "priority": 5}]}}
    out = differential(h, runc_h, res,
                       {"prio": lambda cid: "lo 5" in (cg_read("net_prio", cid,
                                                               "net_prio.ifpriomap") or "")})
    if version_of("net_prio") is None and HOST_CGROUP2_UNIFIED:
        assert out["runcell"][1] == {"prio": False}
        warned(h, workdir, res, "linux.resources.network.priorities is ignored: the host has no "
               "net_prio")
    elif version_of("net_prio") is None:
        says(h, out["runcell"][0], "network.priorities is set but the host has no net_prio controller")
    else:
        assert out["runcell"][1] == {"prio": True}


def test_rdma(h, runc_h):
    if version_of("rdma") is not None:
        pytest.skip("the host has an rdma controller; this case checks the refusal without one")
    out = differential(h, runc_h, {"rdma": {"mlx5_0": {"hcaHandles": 3}}}, {})
    mine = out["runcell"][0]
    says(h, mine, "rdma is set but the host has no rdma controller")


# ---------------------------------------------------------------------------------------
# unified


def host_mode():
    kinds = {fstype for fstype, _ in cgroup_hierarchies().values()}
    if kinds == {"cgroup2"}:
        return "unified"
    return "hybrid" if "cgroup2" in kinds else "legacy"


def test_unified_key_for_a_v1_controller(h, runc_h):
    if host_mode() != "hybrid" or version_of("memory") != 1:
        pytest.skip("needs a hybrid host with memory on cgroup v1")
    out = differential(h, runc_h, {"unified": {"memory.max": str(64 * MiB)}}, {})
    mine = out["runcell"][0]
    says(h, mine, 'linux.resources.unified "memory.max": the memory controller is on cgroup v1')
    assert "cannot use unified on cgroup v1" in out["runc"][0].msg


@runcell_specific
def test_unified_key_for_a_v2_controller_of_a_hybrid_host(h):
    # runc 1.1.5 refuses every unified key unless the host is pure v2; runcell writes the
    # keys whose controller is on the v2 hierarchy, where the container has a cgroup too.
    if host_mode() != "hybrid" or version_of("hugetlb") != 2:
        pytest.skip("needs a hybrid host whose hugetlb controller is on cgroup v2")
    hugepage_2mb()
    cid, r = create_with(h, {"unified": {"hugetlb.2MB.max": str(8 * MiB)}})
    assert r.rc == 0, r.describe()
    assert cg_read("hugetlb", cid, "hugetlb.2MB.max") == str(8 * MiB)


def test_unified_on_a_unified_host(h, runc_h):
    if host_mode() != "unified":
        pytest.skip("needs a pure cgroup v2 host")
    need("pids")
    out = differential(h, runc_h, {"unified": {"pids.max": "33"}},
                       {"pids.max": reader("pids", "pids.max")})
    assert out["runcell"][1] == {"pids.max": "33"}


# ---------------------------------------------------------------------------------------
# devices


def devices_list(cid):
    return sorted(cg_read("devices", cid, "devices.list").splitlines())


@pytest.mark.parametrize("rules", [
    pytest.param(None, id="default-spec"),
    pytest.param([], id="no-rules"),
    pytest.param([{"allow": False, "access": "rwm"},
                  {"allow": True, "type": "c", "major": 4, "minor": 64, "access": "rw"},
                  {"allow": True, "type": "b", "major": 8, "access": "r"},
                  {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "w"}],
                 id="allow-list"),
    pytest.param([{"allow": True, "access": "rwm"},
                  {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"}],
                 id="deny-list"),
])
def test_device_cgroup_list(h, runc_h, rules):
    if version_of("devices") != 1:
        pytest.skip("no v1 devices controller (cgroup v2 uses the eBPF filter: "
                    "tests/unit/test_device_filter.c and test_device_rules_inside)")
    res = {} if rules is None else {"devices": rules}
    out = differential(h, runc_h, res, {"list": devices_list})
    lst = out["runcell"][1]["list"]
    if rules and rules[0]["allow"]:
        assert lst == ["a *:* rwm"]
    else:
        assert "a *:* rwm" not in lst and "c 1:3 rwm" in lst


# Two char devices no driver has: an open the rules allow reaches the kernel's lookup and
# fails with ENXIO ("No such device"), one they deny fails with EPERM.
PROBE_RULES = [{"allow": False, "access": "rwm"},
               {"allow": True, "type": "c", "major": 1, "minor": 12, "access": "r"}]
PROBE_WANT = ["</dev/t-12 No such device", ">/dev/t-12 Operation not permitted",
              "</dev/t-13 Operation not permitted"]
PROBE_SCRIPT = (
    "for spec in '</dev/t-12' '>/dev/t-12' '</dev/t-13'; do "
    "if (eval \"exec 3$spec\") 2>/tmp/err; then echo \"$spec opened\"; "
    "else echo \"$spec $(grep -o 'Operation not permitted\\|No such device' /tmp/err)\"; fi; "
    "done")


def probe_bundle(harness, rules, script):
    """A bundle that makes /dev/t-12 (c 1:12) and /dev/t-13 (c 1:13) (CAP_MKNOD; mknod of
    anything is allowed by the default rules) and then runs script."""
    bundle = harness.bundle()
    bundle.config["root"]["readonly"] = False
    bundle.linux["resources"]["devices"] = rules
    for caps in bundle.process["capabilities"].values():
        caps.append("CAP_MKNOD")
    bundle.sh("mknod /dev/t-12 c 1 12 && mknod /dev/t-13 c 1 13 || exit 1; " + script)
    return bundle


def test_device_rules_inside(h, runc_h):
    # c 1:12 is allowed for reading only, c 1:13 not at all.
    outputs = {name: harness.output_of(probe_bundle(harness, PROBE_RULES, PROBE_SCRIPT))
               .splitlines() for name, harness in (("runcell", h), ("runc", runc_h))}
    assert outputs["runcell"] == outputs["runc"]
    assert outputs["runcell"] == PROBE_WANT


def test_device_rule_punching_a_hole_in_a_wildcard_fails_for_both(h, runc_h):
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "access": "rwm"},
             {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}]
    out = differential(h, runc_h, {"devices": rules}, {})
    mine = out["runcell"][0]
    assert mine.rc != 0
    says(h, mine, "linux.resources.devices[2]", "punch a hole")


# ---------------------------------------------------------------------------------------
# systemd


def test_systemd_cgroup_says_why(h, runc_h):
    if Path("/run/systemd/system").is_dir():
        pytest.skip("systemd is running on this host")
    msgs = {}
    for name, harness in (("runcell", h), ("runc", runc_h)):
        bundle = harness.bundle()
        bundle.args("true")
        bundle.write()
        cid = harness.new_id()
        res = harness("--systemd-cgroup", "create", "--bundle", bundle.path, cid)
        assert res.rc != 0, res.describe()
        assert_nothing_left(harness, cid)
        msgs[name] = res.msg
    for msg in msgs.values():
        assert "systemd not running on this host, cannot use systemd cgroups manager" in msg, msgs


# ---------------------------------------------------------------------------------------
# A pure cgroup v2 view of this host
#
# On a hybrid host the v2 code paths (the eBPF device filter above all) are reachable for
# real: each runtime command runs in a private mount namespace whose /sys/fs/cgroup is the
# host's cgroup2 hierarchy alone, so both runtimes see a unified host. The hierarchy and
# its enforcement are the kernel's own; only the v1 controllers are out of view (the
# processes stay in the runtime's v1 cgroups, which limit nothing here).

V2_VIEW = ('umount -l /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && '
           'exec "$@"')


class V2ViewRuntime(Runtime):
    def argv(self, *args):
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", V2_VIEW, "sh",
                *super().argv(*args)]


def v2_view(*harnesses):
    mode = host_mode()
    if mode == "legacy":
        pytest.skip("the host has no cgroup2 hierarchy")
    if mode == "hybrid":
        if not shutil.which("unshare"):
            pytest.skip("unshare (util-linux) is needed for the v2 view")
        for harness in harnesses:
            harness.rt = V2ViewRuntime(harness.rt.binary, harness.rt.root, harness.rt.name)
    return [p for p in cgroup_hierarchies() if cgroup_hierarchies()[p][0] == "cgroup2"][0]


def v2_read(mount, cid, name):
    path = Path(mount) / CGROUP_TEST_PARENT / cid / name
    return path.read_text().strip() if path.exists() else None


def test_v2_view_device_filter(h, runc_h):
    v2_view(h, runc_h)
    outputs = {name: harness.output_of(probe_bundle(harness, PROBE_RULES, PROBE_SCRIPT))
               .splitlines() for name, harness in (("runcell", h), ("runc", runc_h))}
    assert outputs["runcell"] == outputs["runc"]
    assert outputs["runcell"] == PROBE_WANT


def test_v2_view_default_devices(h, runc_h):
    # No device rules in the config: deny-all plus the default devices, on both.
    v2_view(h, runc_h)
    script = ("for d in null zero full random urandom tty ptmx; do "
              "(exec 3</dev/$d) 2>/dev/null && echo $d; done; " + PROBE_SCRIPT)
    outputs = {}
    for name, harness in (("runcell", h), ("runc", runc_h)):
        bundle = probe_bundle(harness, [], script)
        del bundle.linux["resources"]["devices"]
        outputs[name] = harness.output_of(bundle).splitlines()
    assert outputs["runcell"] == outputs["runc"]
    assert outputs["runcell"][-3:] == ["</dev/t-12 Operation not permitted",
                                       ">/dev/t-12 Operation not permitted",
                                       "</dev/t-13 Operation not permitted"]
    assert "null" in outputs["runcell"] and "zero" in outputs["runcell"]


@runcell_specific
@pytest.mark.parametrize("view", ["host", "v2"])
def test_update_replaces_the_device_rules(h, view):
    # runc 1.1.5's update ignores device rules; runcell's applies them: on v1 the fewest
    # devices.allow/deny writes from the current list, on v2 a new program swapped in
    # for the old one.
    if view == "v2":
        v2_view(h)
    elif version_of("devices") != 1:
        pytest.skip("the host has no v1 devices controller")
    bundle = probe_bundle(h, PROBE_RULES, "sleep 1000")
    cid = h.run_detached(bundle)
    probe = ["sh", "-c", PROBE_SCRIPT]
    res = h("exec", cid, *probe)
    assert res.rc == 0 and res.out.splitlines() == PROBE_WANT, res.describe()
    swapped = [{"allow": False, "access": "rwm"},
               {"allow": True, "type": "c", "major": 1, "minor": 13, "access": "rw"}]
    res = h("update", "--resources", "-", cid, input=json.dumps({"devices": swapped}))
    assert res.rc == 0, res.describe()
    res = h("exec", cid, *probe)
    assert res.rc == 0, res.describe()
    assert res.out.splitlines() == ["</dev/t-12 Operation not permitted",
                                    ">/dev/t-12 Operation not permitted",
                                    "</dev/t-13 No such device"], res.out
    bad = [{"allow": True, "type": "c", "access": "rwm"},
           {"allow": False, "type": "c", "major": 1, "minor": 13, "access": "r"}]
    res = h("update", "--resources", "-", cid, input=json.dumps({"devices": bad}))
    assert res.rc != 0 and "punch a hole" in res.msg, res.describe()
    res = h("exec", cid, *probe)
    assert res.out.splitlines()[2] == "</dev/t-13 No such device", "a failed update changed it"


def test_v2_view_hugetlb_and_unified(h, runc_h):
    mount = v2_view(h, runc_h)
    hugepage_2mb()
    if "hugetlb" not in Path(mount, "cgroup.controllers").read_text().split():
        pytest.skip("the cgroup2 hierarchy offers no hugetlb controller")
    out = differential(h, runc_h, {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}]},
                       {"max": lambda cid: v2_read(mount, cid, "hugetlb.2MB.max")})
    assert out["runcell"][1] == {"max": str(4 * MiB)}
    out = differential(h, runc_h, {"unified": {"hugetlb.2MB.max": str(6 * MiB)}},
                       {"max": lambda cid: v2_read(mount, cid, "hugetlb.2MB.max")})
    assert out["runcell"][1] == {"max": str(6 * MiB)}


def test_v2_view_controller_the_hierarchy_lacks(h, runc_h):
    mount = v2_view(h, runc_h)
    if "pids" in Path(mount, "cgroup.controllers").read_text().split():
        pytest.skip("the cgroup2 hierarchy has a pids controller")
    out = differential(h, runc_h, {"pids": {"limit": 20}}, {})
    mine = out["runcell"][0]
    says(h, mine, "pids")


def test_v2_view_pause_kill_delete(h, runc_h, host_dir):
    # The v2 freezer (cgroup.freeze): a paused container killed with --all, and one
    # deleted with --force.
    v2_view(h, runc_h)
    for harness in (h, runc_h):
        for how in ("kill-all", "delete-force"):
            bundle = harness.bundle()
            bundle.sh("trap '' TERM; sleep 1000 & sleep 1000 & wait")
            cid = harness.run_detached(bundle)
            init = harness.state(cid)["pid"]
            assert harness("pause", cid).rc == 0
            assert harness.status(cid) == "paused"
            if how == "kill-all":
                res = harness.kill(cid, "KILL", all=True)
                assert res.rc == 0, res.describe()
                harness.wait_status(cid, "stopped")
                assert harness.delete(cid).rc == 0
            else:
                res = harness.delete(cid, force=True)
                assert res.rc == 0, res.describe()
            assert not process_alive(init), f"{harness.rt.name} {how}: init survived"
            assert_nothing_left(harness, cid)
