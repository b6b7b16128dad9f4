"""CVE-2025-52881 (runc, November 2025): the runtime's writes to /proc misdirected.

Once the container's rootfs is in place, a runtime that reaches /proc/self/... through the
container's /proc can be sent to another procfs file by whoever can mount there: the
published attack races from a second container that shares a mount with this one and
binds another procfs entry over the file the runtime is about to write (an "is it on
procfs" check passes: it is procfs). runc's writes so misdirected included LSM labels
(AppArmor's "docker-default" into /proc/sysrq-trigger) and sysctls (into core_pattern).

runcell has two such paths, both covered here with the racing attacker played by a
createContainer hook (tests/integration/procfs_redirect_hook.py), which runs in the
container's namespaces after its /proc is mounted and before runcell finishes, exactly
where the race would be won:
- the process attributes written before exec (oom_score_adj, the LSM exec labels): the
  attacker binds its own /proc/<pid>/oom_score_adj over the init's;
- the masks and read-only binds, which name their targets as /proc/self/fd/N after
  pivot_root: the attacker binds its own fd directory, every fd a directory of its own,
  over the init's, so the runtime would bind that directory onto itself instead of
  making /proc/sys read-only (core_pattern writable: a host root shell on the next
  crash) and masking /proc/kcore.
Each test checks its precondition (the attacker's mount is in place in the container).
"""
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

from helpers import set_mode

pytestmark = pytest.mark.runcell_specific

HOOK = Path(__file__).resolve().parent / "procfs_redirect_hook.py"
MODES = ["cell", "native"]


def attack_hook(bundle, mode, outdir):
    bundle.config["hooks"] = {"createContainer": [{
        "path": sys.executable, "args": ["python3", str(HOOK), mode, str(outdir)],
        "timeout": 20}]}


def holder_pids(outdir):
    host, ns = (outdir / "holder.pids").read_text().split()
    return int(host), int(ns)


def oom_score_adj(pid):
    return int(Path(f"/proc/{pid}/oom_score_adj").read_text())


@pytest.mark.parametrize("mode", MODES)
def test_oom_score_adj_is_not_written_through_an_overmounted_proc(h, bundle, host_dir, mode):
    set_mode(bundle, mode)
    attack_hook(bundle, "oom", host_dir)
    bundle.process["oomScoreAdj"] = 321
    bundle.sh("grep -c oom_score_adj /proc/self/mountinfo; sleep 30")
    cid = h.create_ok(bundle)
    assert (host_dir / "mounted").exists(), "the attacker's mount was not made"
    holder, _ = holder_pids(host_dir)
    init = h.state(cid)["pid"]
    assert oom_score_adj(holder) != 321, "the write meant for the init went to the attacker"
    assert oom_score_adj(init) == 321, "oomScoreAdj was not applied to the init"


MASKED = ["/proc/kcore", "/proc/timer_list", "/proc/sched_debug", "/proc/keys"]


@pytest.mark.parametrize("mode", MODES)
def test_masks_and_read_only_binds_do_not_follow_an_overmounted_proc_self_fd(
        h, bundle, host_dir, mode):
    set_mode(bundle, mode)
    attack_hook(bundle, "fds", host_dir)
    masked = [f for f in MASKED if os.path.isfile(f)]
    # files only: a directory mask onto the attacker's file would just fail the create
    bundle.linux["maskedPaths"] = masked
    bundle.linux["readonlyPaths"] = ["/proc/sys"]
    script = ["grep -c ' /proc/1/fd ' /proc/self/mountinfo"]
    script += [f"echo \"{f} $(stat -c '%s %F %t:%T' {f})\"" for f in masked]
    # only opened for writing (never written): a broken defence must change nothing
    script.append("true > /proc/sys/kernel/core_pattern && echo 'OPENED core_pattern'")
    script.append("grep ' /proc/sys ' /proc/self/mountinfo")
    script.append("grep -c ' /decoy ' /proc/self/mountinfo")
    bundle.sh("; ".join(script) + "; true")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    assert (host_dir / "mounted").exists(), "the attacker's mount was not made"
    lines = res.out.splitlines()
    assert lines[0] == "1", f"the attacker's bind over /proc/1/fd is not in place: {res.out}"
    assert "OPENED" not in res.out, f"/proc/sys is writable in the container: {res.out}"
    assert "Read-only file system" in res.err, res.describe()
    for f in masked:
        assert f"{f} 0 character special file 1:3" in lines, res.out
    sys_line = [ln for ln in lines if " /proc/sys " in ln]
    assert sys_line and re.search(r" ro[, ]", sys_line[0]), res.out
    # the attacker's own bind of /decoy onto itself, and nothing of runcell's on it
    assert lines[-1] == "1", f"runcell mounted onto the attacker's directory: {res.out}"


def test_exec_does_not_write_through_a_proc_the_container_replaced(h, bundle, host_dir):
    """`exec` joins the container's mount namespace, whose /proc a container holding
    CAP_SYS_ADMIN (privileged, or root of a user namespace of its own) can replace at
    will: here with a tmpfs whose self and thread-self lead to a bind of another
    process's /proc/<pid> (procfs files all). runcell writes the exec'd process's
    oomScoreAdj through its own procfs handle, made before it joined: the value reaches
    the exec'd process, not the container's decoy. Native only: in a cell the gate
    refuses mount altogether (test_cell_gate)."""
    set_mode(bundle, "native")
    for kind in ("bounding", "effective", "permitted"):
        bundle.process["capabilities"][kind].append("CAP_SYS_ADMIN")
    bundle.bind(host_dir, "/host")
    bundle.sh("sleep 1000 & d=$!; "
              "mkdir -p /tmp/fake && mount -t tmpfs none /tmp/fake && mkdir /tmp/fake/d && "
              "mount --bind /proc/$d /tmp/fake/d && ln -s d /tmp/fake/self && "
              "ln -s d /tmp/fake/thread-self && mount --rbind /tmp/fake /proc && "
              "echo $d > /host/ready; wait")
    bundle.config["root"]["readonly"] = False
    cid = h.create_ok(bundle)
    h.start_ok(cid)
    deadline = time.monotonic() + 10
    while not (host_dir / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (host_dir / "ready").exists(), "the container did not replace its /proc"
    proc = dict(bundle.process, args=["sleep", "30"], oomScoreAdj=222)
    proc_file = host_dir / "process.json"
    proc_file.write_text(json.dumps(proc))
    pid_file = host_dir / "exec.pid"
    res = h("exec", "-d", "--pid-file", pid_file, "--process", proc_file, cid)
    assert res.rc == 0, res.describe()
    pid = int(pid_file.read_text())
    h.note_pid(pid)
    decoy = h("exec", cid, "cat", "/tmp/fake/d/oom_score_adj")
    assert decoy.rc == 0, decoy.describe()
    # precondition: the container's /proc/self is the decoy's
    seen = h("exec", cid, "readlink", "/proc/self")
    assert seen.out.strip() == "d", seen.describe()
    assert decoy.out.strip() != "222", "the write meant for the exec'd process went to the decoy"
    assert oom_score_adj(pid) == 222, "oomScoreAdj was not applied to the exec'd process"
