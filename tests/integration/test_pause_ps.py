"""pause/resume (the cgroup freezer) and ps (the processes of the container's cgroup)."""
import json
import os
import time

from helpers import process_alive


def counter_container(h, bundle, host_dir):
    """A detached container that appends a line to a host file every 50 ms."""
    bundle.bind(host_dir, "/out")
    bundle.sh("while true; do echo x >> /out/ticks; sleep 0.05; done")
    cid = h.run_detached(bundle)
    ticks = host_dir / "ticks"
    deadline = time.monotonic() + 10
    while not (ticks.exists() and ticks.read_text().count("x") >= 2):
        assert time.monotonic() < deadline, "the container never started ticking"
        time.sleep(0.05)
    return cid, ticks


def count(ticks):
    return ticks.read_text().count("x")


def test_pause_freezes_and_resume_thaws(h, bundle, host_dir):
    cid, ticks = counter_container(h, bundle, host_dir)
    res = h("pause", cid)
    assert res.rc == 0, res.describe()
    assert h.status(cid) == "paused"
    before = count(ticks)
    time.sleep(0.5)
    assert count(ticks) == before, "processes kept running while paused"
    res = h("resume", cid)
    assert res.rc == 0, res.describe()
    assert h.status(cid) == "running"
    deadline = time.monotonic() + 5
    while count(ticks) == before:
        assert time.monotonic() < deadline, "processes did not run again after resume"
        time.sleep(0.05)


def test_pause_and_resume_in_the_wrong_state(h, bundle, host_dir):
    cid, _ = counter_container(h, bundle, host_dir)
    res = h("resume", cid)
    assert res.rc != 0 and "not paused" in res.msg, res.describe()
    assert h("pause", cid).rc == 0
    res = h("pause", cid)
    assert res.rc != 0 and "not running" in res.msg, res.describe()
    res = h("pause", "rct-does-not-exist")
    assert res.rc != 0 and "does not exist" in res.msg, res.describe()


def test_delete_force_of_a_paused_container(h, bundle, host_dir):
    cid, _ = counter_container(h, bundle, host_dir)
    pid = h.state(cid)["pid"]
    assert h("pause", cid).rc == 0
    res = h("delete", cid)
    assert res.rc != 0 and "not stopped" in res.msg, res.describe()
    res = h("delete", "--force", cid)
    assert res.rc == 0, res.describe()
    assert not process_alive(pid), "the paused init survived delete --force"


def test_ps_json_lists_the_containers_processes(h, bundle):
    bundle.sh("sleep 100 & sleep 100 & wait")
    cid = h.run_detached(bundle)
    init = h.state(cid)["pid"]
    deadline = time.monotonic() + 5
    while True:
        res = h("ps", "--format", "json", cid)
        assert res.rc == 0, res.describe()
        pids = json.loads(res.out)
        if len(pids) == 3:
            break
        assert time.monotonic() < deadline, f"expected the init and two children, got {pids}"
        time.sleep(0.05)
    assert init in pids
    for pid in pids:
        assert os.path.exists(f"/proc/{pid}")
    assert os.getpid() not in pids


def test_ps_table_and_ps_options(h, bundle):
    bundle.args("sleep", "100")
    cid = h.run_detached(bundle)
    init = h.state(cid)["pid"]
    res = h("ps", cid)
    assert res.rc == 0, res.describe()
    lines = res.out.splitlines()
    assert "PID" in lines[0].split()
    assert len(lines) == 2 and str(init) in lines[1].split(), res.out
    res = h("ps", cid, "-o", "pid,comm")
    assert res.rc == 0, res.describe()
    assert res.out.split() == ["PID", "COMMAND", str(init), "sleep"], res.out


def test_ps_of_a_missing_container(h):
    res = h("ps", "rct-does-not-exist")
    assert res.rc != 0 and "does not exist" in res.msg, res.describe()
