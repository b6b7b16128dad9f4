"""Concurrency: many runcell commands at once, from threads calling the binary.

- 50 full lifecycles (create, start, kill, delete) in parallel on distinct ids, while
  another thread lists: every command succeeds, `list` always parses with unique ids,
  nothing is left behind.
- 10 commands at once on one id (start, kill, delete, state, pause, resume, exec, ps,
  list, delete --force, shuffled), several rounds: each either succeeds or fails with one
  of the documented state errors (ACCEPTED below, exact messages), and the container ends
  in a state that `delete --force` cleans up completely.

runcell-specific: the accepted errors are runcell's messages, and Debian's runc 1.1.5
fails the first part (`list` exits 1 when a container is deleted while it lists).
"""
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import set_mode

pytestmark = pytest.mark.runcell_specific

PARALLEL_LIFECYCLES = 50
ROUNDS_ON_ONE_ID = 10


class ListWatcher(threading.Thread):
    """Lists the root in a loop until stopped; records every inconsistency."""

    def __init__(self, h):
        super().__init__(daemon=True)
        self.h = h
        self.stop = threading.Event()
        self.problems = []
        self.rounds = 0

    def run(self):
        while not self.stop.is_set():
            res = self.h("list", "--format", "json")
            try:
                listed = json.loads(res.out) if res.rc == 0 else None
            except ValueError:
                listed = None
            if res.rc != 0 or (listed is not None and not isinstance(listed, list)):
                self.problems.append(f"list --format json: {res.describe()}")
                continue
            ids = [c["id"] for c in listed or []]
            if len(ids) != len(set(ids)):
                self.problems.append(f"duplicate ids in list: {ids}")
            res = self.h("list", "-q")
            if res.rc != 0 or len(res.out.split()) != len(set(res.out.split())):
                self.problems.append(f"list -q: {res.describe()}")
            self.rounds += 1


def wait_stopped(h, cid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = h("state", cid)
        if res.rc != 0:
            return res
        if json.loads(res.out)["status"] == "stopped":
            return res
        time.sleep(0.02)
    return h("state", cid)


def lifecycle(h, bundle, cid):
    """One container's life; returns the failures as (step, Result)."""
    failures = []
    res = h.create(bundle, cid, write=False, timeout=60)
    if res.rc != 0:
        return [("create", res)]
    for step, args in (("start", ["start", cid]), ("kill", ["kill", cid, "KILL"])):
        res = h(*args, timeout=60)
        if res.rc != 0:
            failures.append((step, res))
    res = wait_stopped(h, cid)
    if res.rc != 0 or json.loads(res.out)["status"] != "stopped":
        failures.append(("state", res))
    res = h("delete", cid, timeout=60)
    if res.rc != 0:
        failures.append(("delete", res))
    return failures


@pytest.mark.parametrize("mode", ["cell", "native"])
def test_fifty_lifecycles_in_parallel(h, bundle, mode):
    set_mode(bundle, mode)
    bundle.args("sleep", "100")
    bundle.write()
    ids = [h.new_id() for _ in range(PARALLEL_LIFECYCLES)]
    watcher = ListWatcher(h)
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=PARALLEL_LIFECYCLES) as pool:
            results = list(pool.map(lambda cid: lifecycle(h, bundle, cid), ids))
    finally:
        watcher.stop.set()
        watcher.join(timeout=60)
    failures = [f"{cid} {step}: {res.describe()}"
                for cid, fs in zip(ids, results) for step, res in fs]
    assert not failures, "\n".join(failures)
    assert not watcher.problems, "\n".join(watcher.problems)
    assert watcher.rounds > 0
    res = h("list", "--format", "json")
    assert res.rc == 0 and res.out.strip() == "null", res.describe()
    # h's cleanup then checks that no state directory, cgroup, mount or process is left.


# The documented errors a command may meet when another one changed the container first
# (runc's wording where runc has one). {id} is the container id.
ACCEPTED = [
    "container does not exist",
    "container not running",
    "container not paused",
    "cannot start an already running container",
    "cannot start a container that has stopped",
    "cannot start a container in the paused state",
    "cannot delete container {id} that is not stopped: running",
    "cannot delete container {id} that is not stopped: paused",
    "cannot exec in a paused container",
    "cannot exec in a stopped container",
]


def accepted(cmd, res, cid):
    if res.rc == 0:
        return True
    if res.msg in [a.format(id=cid) for a in ACCEPTED]:
        return True
    # An exec'd process killed with its container (kill KILL, delete --force): the exit
    # status of a process killed by SIGKILL, and nothing to report.
    if cmd[0] == "exec" and res.rc == 128 + 9 and not res.err.strip():
        return True
    return False


def commands(cid):
    return [
        ["start", cid],
        ["kill", cid, "KILL"],
        ["delete", cid],
        ["state", cid],
        ["pause", cid],
        ["resume", cid],
        ["exec", cid, "sh", "-c", "sleep 0.2"],
        ["ps", cid],
        ["list", "-q"],
        ["delete", "--force", cid],
    ]


@pytest.mark.parametrize("mode", ["cell", "native"])
def test_ten_commands_at_once_on_one_id(h, bundle, mode):
    set_mode(bundle, mode)
    bundle.args("sleep", "100")
    bundle.write()
    rng = random.Random(1234)
    unexpected = []
    seen = {}
    for rnd in range(ROUNDS_ON_ONE_ID):
        cid = h.create_ok(bundle, write=False)
        if rnd % 2:
            h.start_ok(cid)
        cmds = commands(cid)
        rng.shuffle(cmds)
        barrier = threading.Barrier(len(cmds))

        def one(cmd):
            barrier.wait()
            return cmd, h(*cmd, timeout=60)

        with ThreadPoolExecutor(max_workers=len(cmds)) as pool:
            for cmd, res in pool.map(one, cmds):
                key = (cmd[0] + (" --force" if "--force" in cmd else ""),
                       "ok" if res.rc == 0 else res.msg.replace(cid, "{id}") or f"rc={res.rc}")
                seen[key] = seen.get(key, 0) + 1
                if not accepted(cmd, res, cid):
                    unexpected.append(f"round {rnd} {cmd}: {res.describe()}")
        # Whatever happened, state and list still parse, and delete --force finishes it.
        res = h("state", cid)
        if res.rc == 0:
            assert json.loads(res.out)["id"] == cid
        else:
            assert res.msg == "container does not exist", res.describe()
        res = h("list", "--format", "json")
        assert res.rc == 0, res.describe()
        json.loads(res.out)
        res = h.delete(cid, force=True)
        assert res.rc == 0, res.describe()
        problems = h.leftovers()
        deadline = time.monotonic() + 5
        while problems and time.monotonic() < deadline:
            time.sleep(0.05)
            problems = h.leftovers()
        assert not problems, problems
    assert not unexpected, "\n\n".join(unexpected)
    print("\n".join(f"{k}: {v}" for k, v in sorted(seen.items())))
    # The delete --force of every round ran against the others: it must have won each.
    assert not [k for k in seen if k[0] == "delete --force" and k[1] != "ok"], seen
