"""create/start/run/state/list/kill/delete: the lifecycle containerd drives."""
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from helpers import RFC3339, parse_rfc3339, process_alive

# A container that exits on SIGTERM even as PID 1 of its pid namespace (where a signal
# without a handler is ignored).
TERMINABLE = "trap 'exit 143' TERM; while :; do sleep 0.1; done"


def wait_for_term_trap(pid, timeout=10):
    """Until the TERMINABLE shell has set its trap: before that a SIGTERM reaches a pid 1
    with no handler, which the kernel drops, and the container runs on (seen under load)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.M).group(1), 16)
        if caught >> (signal.SIGTERM - 1) & 1:
            return
        time.sleep(0.02)
    raise AssertionError(f"pid {pid} set no SIGTERM handler in {timeout}s")


def test_create_blocks_until_start_then_runs_and_stops(h, bundle):
    bundle.args("sleep", "1")
    cid = h.create_ok(bundle)

    text = h.pid_file(cid).read_text()
    assert text.isdigit(), f"pid file must hold a bare integer, no newline: {text!r}"
    pid = int(text)
    st = h.state(cid)
    assert st["status"] == "created"
    assert st["pid"] == pid
    assert process_alive(pid), "the pid in the pid file must be a live process"
    # Blocked before exec'ing the user program.
    time.sleep(0.3)
    assert h.status(cid) == "created"
    argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    assert os.path.basename(argv0) != b"sleep", "the user program ran before start"

    h.start_ok(cid)
    assert h.status(cid) == "running"
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"1"]
    h.wait_status(cid, "stopped", timeout=10)
    assert not process_alive(pid)
    assert h.delete(cid).rc == 0


def test_run_foreground_exits_with_container_status(h, bundle):
    bundle.sh("echo to-stdout; echo to-stderr >&2; exit 7")
    cid = h.new_id()
    res = h.run_container(bundle, cid)
    assert res.rc == 7, res.describe()
    assert res.out == "to-stdout\n"
    assert "to-stderr" in res.err
    # A foreground run deletes its container.
    assert "does not exist" in h("state", cid).msg


def test_run_foreground_success_and_signal_exit(h, bundle):
    bundle.args("true")
    assert h.run_container(bundle).rc == 0
    # A container killed by a signal: the shell convention 128 + signal.
    bundle.sh("kill -KILL $$")
    bundle.drop_namespace("pid")  # PID 1 of a pid namespace cannot SIGKILL itself
    assert h.run_container(bundle).rc == 128 + 9


@pytest.mark.parametrize("runtime", ["runcell", "runc"])
def test_id_starting_with_a_dot_runs(request, runtime):
    """Ids may start with '.'; the session keyring is named "_ses.<id>", as runc names it:
    the kernel refuses to make a keyring whose name starts with '.' (runcell's create failed
    with "join session keyring: Operation not permitted")."""
    harness = request.getfixturevalue("h" if runtime == "runcell" else "runc_h")
    bundle = harness.bundle()
    bundle.sh("echo ran")
    bundle.write()
    cid = harness.track_id("." + harness.new_id())
    res = harness.run_container(bundle, cid)
    assert res.rc == 0, res.describe()
    assert res.out == "ran\n"


def test_run_detach(h, bundle):
    bundle.args("sleep", "60")
    cid = h.run_detached(bundle)
    st = h.state(cid)
    assert st["status"] == "running"
    assert process_alive(st["pid"])
    assert int(h.pid_file(cid).read_text()) == st["pid"]
    assert h.kill(cid, "KILL").rc == 0
    h.wait_status(cid, "stopped")
    assert h.delete(cid).rc == 0


def test_state_fields(h, bundle):
    bundle.args("sleep", "60")
    cid = h.create_ok(bundle)
    st = h.state(cid)
    assert {"ociVersion", "id", "pid", "status", "bundle", "created", "owner"} <= set(st)
    assert set(st) <= {"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created",
                       "owner", "annotations"}
    assert st["id"] == cid
    assert st["status"] == "created"
    assert isinstance(st["pid"], int) and st["pid"] > 0
    assert st["bundle"] == str(bundle.path)
    assert st["rootfs"] == str(bundle.rootfs)
    assert st["owner"] == ""
    assert RFC3339.match(st["created"]), st["created"]
    created = parse_rfc3339(st["created"])
    assert abs(created.timestamp() - time.time()) < 60
    assert st["ociVersion"]


def test_state_bundle_is_absolute_for_relative_bundle(h, bundle):
    bundle.args("sleep", "60")
    bundle.write()
    cid = h.new_id()
    res = h("create", "--bundle", bundle.path.name, cid, cwd=bundle.path.parent)
    assert res.rc == 0, res.describe()
    assert h.state(cid)["bundle"] == str(bundle.path)
    # Without --bundle the current directory is the bundle.
    cid2 = h.new_id()
    res = h("create", cid2, cwd=bundle.path)
    assert res.rc == 0, res.describe()
    st = h.state(cid2)
    assert st["bundle"] == str(bundle.path)
    assert st["rootfs"] == str(bundle.rootfs)


def test_list_table_json_quiet(h, bundle):
    res = h("list")
    assert res.rc == 0, res.describe()
    assert res.out.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]

    bundle.args("sleep", "60")
    created = h.create_ok(bundle)
    running = h.create_ok(bundle)
    h.start_ok(running)

    res = h("list")
    assert res.rc == 0, res.describe()
    lines = res.out.splitlines()
    assert lines[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert lines[0].startswith("ID ")
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {created, running}
    for cid, status in ((created, "created"), (running, "running")):
        row = rows[cid]
        assert row[1] == str(h.state(cid)["pid"])
        assert row[2] == status
        assert row[3] == str(bundle.path)
        assert RFC3339.match(row[4]), row

    res = h("list", "--format", "json")
    assert res.rc == 0, res.describe()
    entries = {e["id"]: e for e in json.loads(res.out)}
    assert set(entries) == {created, running}
    assert entries[created]["status"] == "created"
    assert entries[running]["status"] == "running"
    assert entries[running]["bundle"] == str(bundle.path)
    assert entries[running]["pid"] == h.state(running)["pid"]

    res = h("list", "-q")
    assert res.rc == 0, res.describe()
    assert sorted(res.out.split()) == sorted([created, running])


@pytest.mark.parametrize("signal_arg", ["15", "TERM", "SIGTERM", "KILL", "9", "SIGKILL"])
def test_kill_signal_forms(h, bundle, signal_arg):
    bundle.sh(TERMINABLE)
    cid = h.create_ok(bundle)
    h.start_ok(cid)
    pid = h.state(cid)["pid"]
    wait_for_term_trap(pid)
    res = h.kill(cid, signal_arg)
    assert res.rc == 0, res.describe()
    h.wait_status(cid, "stopped", timeout=10)
    assert not process_alive(pid)
    assert h.delete(cid).rc == 0


def test_kill_default_signal_is_term(h, bundle):
    bundle.sh(TERMINABLE)
    cid = h.create_ok(bundle)
    h.start_ok(cid)
    wait_for_term_trap(h.state(cid)["pid"])
    res = h.kill(cid)
    assert res.rc == 0, res.describe()
    h.wait_status(cid, "stopped", timeout=10)


def test_kill_created_container(h, bundle):
    bundle.args("sleep", "60")
    cid = h.create_ok(bundle)
    res = h.kill(cid, "KILL")
    assert res.rc == 0, res.describe()
    h.wait_status(cid, "stopped")
    assert h.delete(cid).rc == 0


def test_kill_all(h, bundle):
    bundle.sh("sleep 1000 & sleep 1000 & echo started; wait")
    cid = h.create_ok(bundle)
    h.start_ok(cid)
    init = h.state(cid)["pid"]
    deadline = time.time() + 5
    children = []
    while time.time() < deadline:
        children = [int(p) for p in Path(f"/proc/{init}/task/{init}/children").read_text().split()]
        if len(children) == 2:
            break
        time.sleep(0.05)
    assert len(children) == 2, f"expected two sleeps under {init}, got {children}"
    res = h.kill(cid, "KILL", all=True)
    assert res.rc == 0, res.describe()
    h.wait_status(cid, "stopped")
    deadline = time.time() + 5
    while time.time() < deadline and any(process_alive(p) for p in children):
        time.sleep(0.05)
    assert not any(process_alive(p) for p in children + [init])
    assert h.delete(cid).rc == 0


def test_delete_running_refused_without_force(h, bundle):
    bundle.args("sleep", "60")
    cid = h.create_ok(bundle)
    h.start_ok(cid)
    pid = h.state(cid)["pid"]
    res = h.delete(cid)
    assert res.rc != 0
    assert "running" in res.msg, res.describe()
    assert h.status(cid) == "running", "a refused delete must leave the container alone"
    assert process_alive(pid)
    res = h.delete(cid, force=True)
    assert res.rc == 0, res.describe()
    assert not process_alive(pid)
    assert "does not exist" in h("state", cid).msg


def test_delete_force_created_container(h, bundle):
    bundle.args("sleep", "60")
    cid = h.create_ok(bundle)
    pid = h.state(cid)["pid"]
    res = h.delete(cid, force=True)
    assert res.rc == 0, res.describe()
    assert not process_alive(pid)


def test_delete_created_container_without_force(h, bundle):
    # Like runc: a container that was created but never started is deleted (killed)
    # without --force.
    bundle.args("sleep", "60")
    cid = h.create_ok(bundle)
    pid = h.state(cid)["pid"]
    res = h.delete(cid)
    assert res.rc == 0, res.describe()
    assert not process_alive(pid)
    assert "does not exist" in h("state", cid).msg


def test_container_exiting_by_itself_is_stopped_and_delete_twice(h, bundle):
    bundle.args("true")
    cid = h.create_ok(bundle)
    h.start_ok(cid)
    h.wait_status(cid, "stopped")
    # Still stopped when asked again, and in the list.
    assert h.status(cid) == "stopped"
    entries = {e["id"]: e for e in json.loads(h("list", "--format", "json").out)}
    assert entries[cid]["status"] == "stopped"
    assert h.delete(cid).rc == 0
    res = h.delete(cid)
    assert res.rc != 0
    assert "does not exist" in res.msg, res.describe()
    assert h.delete(cid, force=True).rc == 0  # --force: an absent container is not an error


def test_delete_force_nonexistent_succeeds(h):
    cid = h.new_id()
    res = h.delete(cid, force=True)
    assert res.rc == 0, res.describe()


def test_many_containers_in_one_root(h, bundle):
    bundle.args("sleep", "60")
    ids = [h.create_ok(bundle) for _ in range(3)]
    assert sorted(h("list", "-q").out.split()) == sorted(ids)
    for cid in ids:
        assert h.delete(cid, force=True).rc == 0
    assert h("list", "-q").out.split() == []


def test_containerd_call_sequence(h, bundle):
    """The calls the runc v2 shim makes, with its global flags; nothing is logged as an
    error along the way."""
    log = bundle.path / "log.json"
    g = ["--log", log, "--log-format", "json"]
    bundle.sh(TERMINABLE)
    bundle.write()
    cid = h.new_id()
    pid_file = bundle.path / "init.pid"
    res = h(*g, "create", "--bundle", bundle.path, "--pid-file", pid_file, "--no-new-keyring",
            cid)
    assert res.rc == 0, res.describe()
    pid = int(pid_file.read_text())
    h.note_pid(pid)
    for args in (["start", cid], ["state", cid], ["kill", cid, "15"]):
        if args[0] == "kill":
            wait_for_term_trap(pid)
        res = h(*g, *args)
        assert res.rc == 0, (args, res.describe())
    h.wait_status(cid, "stopped")
    res = h(*g, "delete", cid)
    assert res.rc == 0, res.describe()
    res = h(*g, "delete", "--force", cid)  # the shim may delete again
    if log.exists():
        for line in log.read_text().splitlines():
            if line.strip():
                assert json.loads(line)["level"] != "error", line


def test_create_with_no_pivot_and_no_new_keyring(h, bundle):
    bundle.args("sleep", "60")
    cid = h.new_id()
    res = h.create(bundle, cid, "--no-pivot", "--no-new-keyring")
    assert res.rc == 0, res.describe()
    h.start_ok(cid)
    assert h.status(cid) == "running"


def test_pid_file_relative_path(h, bundle):
    bundle.args("sleep", "60")
    bundle.write()
    cid = h.new_id()
    res = h("create", "--bundle", bundle.path, "--pid-file", "rel.pid", cid, cwd=h.workdir)
    assert res.rc == 0, res.describe()
    text = (h.workdir / "rel.pid").read_text()
    assert text == str(h.state(cid)["pid"])


@pytest.mark.runcell_specific
def test_concurrent_creates_of_one_id(h, bundle):
    """The per-id lock: of several simultaneous creates of one id exactly one wins, and
    the losers do not disturb the winner. (runc 1.1.5 races here: a losing create can
    remove the winner's state directory, leaving its init process orphaned.)"""
    bundle.args("sleep", "60")
    bundle.write()
    cid = h.new_id()
    procs = []
    for _ in range(4):
        f = tempfile.TemporaryFile()
        procs.append((subprocess.Popen(h.rt.argv("create", "--bundle", bundle.path, cid),
                                       stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                                       start_new_session=True), f))
    codes = []
    for p, f in procs:
        codes.append(p.wait(timeout=30))
        f.close()
    assert codes.count(0) == 1, codes
    st = h.state(cid)
    assert st["status"] == "created"
    assert process_alive(st["pid"])
    h.start_ok(cid)
    assert h.status(cid) == "running"


def test_concurrent_commands_on_one_container(h, bundle):
    bundle.args("sleep", "60")
    cid = h.create_ok(bundle)
    h.start_ok(cid)
    procs = []
    for args in (["state", cid], ["delete", "--force", cid], ["state", cid], ["kill", cid, "9"],
                 ["list", "-q"]):
        f = tempfile.TemporaryFile()
        procs.append(subprocess.Popen(h.rt.argv(*args), stdin=subprocess.DEVNULL, stdout=f,
                                      stderr=f, start_new_session=True))
    for p in procs:
        p.wait(timeout=30)
    # Whatever the interleaving, the container ends up gone (the finalizer checks that
    # nothing is left).
    res = h("state", cid)
    assert res.rc != 0 and "does not exist" in res.msg, res.describe()
