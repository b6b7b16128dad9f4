"""The cell kernel's CPU is the cell's: it joins the cell's CPU cgroups (v1 cpu and
cpuacct), so the cell's quota bounds what the cell kernel spends answering the cell and the
cell's usage shows it — and it stays out of everything through which runcell lists,
signals, freezes or OOM-kills the container (pids, freezer, memory, devices), so `ps`,
`kill --all`, `pause` and the OOM killer never meet it.

On a cgroup v2 cpu controller the cell kernel goes to <cell>/runcell-cellk instead, which
the QEMU lane checks (tests/lanes/xgate/xgate.sh: the lane mounts a pure cgroup2); these
checks skip there, saying so.

runcell-specific: runc has no cell kernel.
"""
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from helpers import NATIVE_ANNOTATIONS, build_static, cell_kernel_pids, controller_dir

pytestmark = pytest.mark.runcell_specific

# A cell process that makes routed syscalls (sysinfo: answered by the cell kernel) as fast
# as it can, for argv[1] seconds.
LOOP_C = r"""
#include <stdlib.h>
#include <sys/sysinfo.h>
#include <time.h>
int main(int argc, char **argv) {
  time_t end = time(NULL) + (argc > 1 ? atoi(argv[1]) : 30);
  struct sysinfo si;
  while (time(NULL) < end) sysinfo(&si);
  return 0;
}
"""


@pytest.fixture(scope="module")
def loop_bin(tmp_path_factory):
    return build_static(tmp_path_factory.mktemp("cellk-loop"), "routed-loop", LOOP_C)


def v1_cpu_hierarchies():
    """The v1 mount points accounting CPU, or skip (v2 cpu: the cell kernel is not moved)."""
    cpu, cpu_version = controller_dir("cpu")
    acct, acct_version = controller_dir("cpuacct")
    if cpu is None or cpu_version != 1:
        pytest.skip("the cpu controller is not on a v1 hierarchy here: on cgroup v2 the cell "
                    "kernel is in <cell>/runcell-cellk, checked in the QEMU lane (xgate.sh)")
    return cpu, (acct if acct_version == 1 else None)


def cgroups_of(pid):
    """{controller: path} from /proc/<pid>/cgroup (v1 lines only)."""
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(","):
            if c:
                out[c] = path
    return out


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cell(bundle, loop_bin, seconds, quota=None):
    bundle.config["annotations"] = {
        k: v for k, v in bundle.config.get("annotations", {}).items() if k not in NATIVE_ANNOTATIONS}
    if quota:
        bundle.linux.setdefault("resources", {})["cpu"] = {"quota": quota, "period": 100000}
    shutil.copy2(loop_bin, bundle.rootfs / "bin" / "routed-loop")
    bundle.args("/bin/routed-loop", str(seconds))


def test_cell_kernel_joins_the_cells_cpu_cgroups_and_nothing_else(h, bundle, loop_bin):
    v1_cpu_hierarchies()
    before = cell_kernel_pids()
    # Half a CPU for the two loops and their cell kernels (charged to the cell): unbounded
    # they held this 2-vCPU machine so busy that `ps` below took up to 30 s, by when a 30 s
    # loop had ended and ps listed nothing. The loops outlast any such wait; kill --all
    # ends them.
    cell(bundle, loop_bin, 300, quota=50000)
    cid = h.run_detached(bundle)
    init = h.state(cid)["pid"]
    res = h("exec", "--detach", cid, "/bin/routed-loop", "300")
    assert res.rc == 0, res.describe()
    mine = cell_kernel_pids(cid) - before
    assert len(mine) >= 2, f"expected the init's and the exec's cell kernels, found {mine}"
    cell_cgroups = cgroups_of(init)
    for pid in mine:
        theirs = cgroups_of(pid)
        for c in ("cpu", "cpuacct"):
            if c in cell_cgroups:
                assert theirs.get(c) == cell_cgroups[c], (pid, c, theirs, cell_cgroups)
        for c in ("pids", "freezer", "memory", "devices"):
            if c in cell_cgroups:
                assert theirs.get(c) != cell_cgroups[c], (pid, c, theirs, cell_cgroups)
    # ps and kill --all see the container's processes only
    res = h("ps", "--format", "json", cid)
    assert res.rc == 0, res.describe()
    listed = set(json.loads(res.out))
    assert init in listed and not listed & mine, (listed, mine)
    # pause freezes the cell, not the cell kernels that serve it; resume then works
    assert h("pause", cid).rc == 0
    try:
        for pid in mine:
            assert cgroups_of(pid).get("freezer") != cell_cgroups.get("freezer")
    finally:
        assert h("resume", cid).rc == 0
    assert h("kill", "--all", cid, "KILL").rc == 0
    h.wait_status(cid, "stopped")
    assert h("delete", cid).rc == 0
    deadline = time.monotonic() + 10
    while mine & cell_kernel_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not mine & cell_kernel_pids(), "cell kernels outlived their cell"


def test_the_cells_quota_bounds_its_cell_kernel(h, bundle, loop_bin):
    """A cell capped at 0.1 CPU makes routed syscalls for 4 s. What the cell's processes
    and its cell kernel spent together stays within the quota (plus one period of slack
    and the tick's rounding); the cell kernel's share shows in the cell's cpuacct usage.
    Before the cell kernel was charged, it alone spent ~0.35 CPU beside the cell's 0.1."""
    cpu_mount, acct_mount = v1_cpu_hierarchies()
    window = 4.0
    before = cell_kernel_pids()
    cell(bundle, loop_bin, 30, quota=10000)
    cid = h.run_detached(bundle)
    init = h.state(cid)["pid"]
    mine = cell_kernel_pids(cid) - before
    assert mine, "no cell kernel for the cell"
    time.sleep(0.5)  # past the start
    usage_file = None
    if acct_mount is not None:
        usage_file = acct_mount / cgroups_of(init)["cpuacct"].lstrip("/") / "cpuacct.usage"
    t0 = time.monotonic()
    k0 = sum(cpu_seconds(p) for p in mine)
    c0 = cpu_seconds(init)
    u0 = int(usage_file.read_text()) if usage_file else None
    time.sleep(window)
    elapsed = time.monotonic() - t0
    kernel = sum(cpu_seconds(p) for p in mine) - k0
    spent = kernel + cpu_seconds(init) - c0
    usage = (int(usage_file.read_text()) - u0) / 1e9 if usage_file else None
    assert h("delete", "--force", cid).rc == 0
    print(f"over {elapsed:.2f} s: cell kernel {kernel:.2f} s, cell + kernel {spent:.2f} s, "
          f"cpuacct {usage}")
    assert kernel > 0.02, f"the loop made no routed calls? cell kernel spent {kernel:.3f} s"
    bound = 0.1 * elapsed + 0.1 + 0.05
    assert spent <= bound, (f"cell + cell kernel spent {spent:.2f} s of CPU in {elapsed:.2f} s "
                            f"under a 0.1 CPU quota (bound {bound:.2f} s)")
    if usage is not None:
        # the cell's usage includes its cell kernel's (tick-rounded /proc figures: slack)
        assert usage >= kernel - 0.05, (usage, kernel)
