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
