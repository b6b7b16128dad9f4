"""kill --all and delete --force against containers that resist: processes that ignore
SIGTERM, a paused (frozen) container, processes that outlive their init.

A frozen v1 cgroup holds a SIGKILL until it is thawed; like runc, the runtime thaws after
sending it. The shared cases run against runc too (RUNCELL_BIN=/usr/sbin/runc).
"""
import time
from pathlib import Path

import pytest

from helpers import process_alive


def wait_for(cond, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def children_of(pid):
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def stubborn_container(h, bundle, host_dir, n_children=2):
    """A detached container whose init and children ignore SIGTERM; returns (id, init,
    children) once every child is up."""
    bundle.bind(host_dir, "/out")
    kids = " ".join(["sleep 1000 &"] * n_children)
    bundle.sh(f"trap '' TERM; {kids} echo up > /out/up; while true; do sleep 1; done")
    cid = h.run_detached(bundle)
    init = h.state(cid)["pid"]
    wait_for(lambda: (host_dir / "up").exists(), "the container to start")
    wait_for(lambda: len([c for c in children_of(init) if c]) >= n_children, "the children")
    kids = children_of(init)
    for k in kids:
        h.note_pid(k)
    return cid, init, kids


def test_delete_force_kills_processes_that_ignore_sigterm(h, bundle, host_dir):
    cid, init, kids = stubborn_container(h, bundle, host_dir)
    assert h.kill(cid, "TERM").rc == 0
    time.sleep(0.3)
    assert process_alive(init), "the init was meant to ignore SIGTERM"
    res = h.delete(cid, force=True)
    assert res.rc == 0, res.describe()
    for pid in [init, *kids]:
        assert not process_alive(pid), f"{pid} survived delete --force"
    assert "does not exist" in h("state", cid).msg


def test_kill_all_term_is_ignored_and_kill_all_kill_is_not(h, bundle, host_dir):
    cid, init, kids = stubborn_container(h, bundle, host_dir)
    res = h.kill(cid, "TERM", all=True)
    assert res.rc == 0, res.describe()
    time.sleep(0.3)
    assert all(process_alive(p) for p in [init, *kids]), "SIGTERM was trapped; all must live"
    res = h.kill(cid, "KILL", all=True)
    assert res.rc == 0, res.describe()
    wait_for(lambda: not any(process_alive(p) for p in [init, *kids]), "every process to die")
    h.wait_status(cid, "stopped")
    assert h.delete(cid).rc == 0


def test_delete_force_of_a_paused_container_kills_every_process(h, bundle, host_dir):
    cid, init, kids = stubborn_container(h, bundle, host_dir)
    assert h("pause", cid).rc == 0
    assert h.status(cid) == "paused"
    res = h.delete(cid, force=True)
    assert res.rc == 0, res.describe()
    for pid in [init, *kids]:
        assert not process_alive(pid), f"{pid} survived delete --force of a paused container"
    assert "does not exist" in h("state", cid).msg


def test_kill_all_kill_reaches_a_paused_container(h, bundle, host_dir):
    cid, init, kids = stubborn_container(h, bundle, host_dir)
    assert h("pause", cid).rc == 0
    res = h.kill(cid, "KILL", all=True)
    assert res.rc == 0, res.describe()
    # Frozen tasks die only once thawed: the runtime must thaw after the signal.
    wait_for(lambda: not any(process_alive(p) for p in [init, *kids]),
             "the paused container's processes to die")
    h.wait_status(cid, "stopped")
    assert h.delete(cid).rc == 0


def test_kill_kill_of_a_paused_container_ends_it(h, bundle, host_dir):
    cid, init, kids = stubborn_container(h, bundle, host_dir)
    assert h("pause", cid).rc == 0
    res = h.kill(cid, "KILL")
    assert res.rc == 0, res.describe()
    # The init dies (and its pid namespace with it) without a resume.
    wait_for(lambda: not process_alive(init), "the paused init to die")
    wait_for(lambda: not any(process_alive(p) for p in kids), "its children to die")
    h.wait_status(cid, "stopped")
    assert h.delete(cid).rc == 0


@pytest.mark.runcell_specific
def test_kill_all_term_of_a_paused_container_waits_for_resume(h, bundle, host_dir):
    # runc 1.1 thaws the cgroup after any `kill --all` (so its paused container quietly
    # runs again); runcell leaves a paused container paused: the signal is queued to every
    # process and delivered at resume.
    bundle.bind(host_dir, "/out")
    bundle.sh("trap 'echo got-term >> /out/log; exit 0' TERM; echo up > /out/up; "
              "while true; do sleep 0.1; done")
    cid = h.run_detached(bundle)
    init = h.state(cid)["pid"]
    wait_for(lambda: (host_dir / "up").exists(), "the container to start")
    assert h("pause", cid).rc == 0
    res = h.kill(cid, "TERM", all=True)
    assert res.rc == 0, res.describe()
    time.sleep(0.5)
    assert h.status(cid) == "paused"
    assert process_alive(init)
    assert not (host_dir / "log").exists(), "a frozen process handled a signal"
    assert h("resume", cid).rc == 0
    wait_for(lambda: not process_alive(init), "the init to handle SIGTERM after resume")
    assert "got-term" in (host_dir / "log").read_text()
    h.wait_status(cid, "stopped")
    assert h.delete(cid).rc == 0


def test_kill_all_reaches_processes_that_outlive_the_init(h, bundle, host_dir):
    # Without a pid namespace the init's children are not killed with it: they stay in
    # the container's cgroup, and only `kill --all` (containerd's cleanup) reaches them.
    bundle.drop_namespace("pid")
    bundle.bind(host_dir, "/out")
    bundle.sh("sleep 1000 & echo $! > /out/kid; sleep 1000 & echo $! >> /out/kid; "
              "trap '' TERM; exit 0")
    cid = h.create_ok(bundle)
    h.start_ok(cid)
    h.wait_status(cid, "stopped")
    wait_for(lambda: (host_dir / "kid").exists()
             and len((host_dir / "kid").read_text().split()) == 2, "the children's pids")
    kids = [int(p) for p in (host_dir / "kid").read_text().split()]
    for k in kids:
        h.note_pid(k)
    assert all(process_alive(k) for k in kids), "the children should outlive the init"
    res = h.kill(cid, "KILL", all=True)
    assert res.rc == 0, res.describe()
    wait_for(lambda: not any(process_alive(k) for k in kids), "the orphans to die")
    assert h.delete(cid).rc == 0


def test_signal_0_checks_that_the_container_runs(h, bundle):
    """`kill ID 0` sends nothing and says whether the init runs (runc's answer: success
    while it runs, "container not running" once it has stopped); --all too. Runs against
    runc as well."""
    bundle.args("sleep", "100")
    cid = h.run_detached(bundle)
    init = h.state(cid)["pid"]
    for args in (["kill", cid, "0"], ["kill", "--all", cid, "0"], ["kill", cid, "00"]):
        res = h(*args)
        assert res.rc == 0, res.describe()
    assert process_alive(init) and h.state(cid)["status"] == "running"
    assert h.kill(cid, "KILL").rc == 0
    h.wait_status(cid, "stopped")
    res = h("kill", cid, "0")
    assert res.rc != 0 and "container not running" in res.err, res.describe()
    assert h.delete(cid).rc == 0
