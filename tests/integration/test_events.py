"""events: a container's cgroup statistics (--stats, once) and the event stream (a stats
event every --interval, an oom event per OOM kill in the container's cgroup), in runc's
JSON lines; the errors in runc's words; the same bundle under runc gives the same keys."""
import json
import os
import select
import signal
import subprocess
import tempfile
import time

import pytest

from helpers import CGROUP_TEST_PARENT, controller_dir

MiB = 1024 * 1024

# runc 1.1's types.Event and types.Stats.
EVENT_KEYS = {"type", "id", "data"}
DATA_KEYS = {"cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
             "network_interfaces"}


def start_detached(h, bundle, script, memory=None, pids=None, swap=None, create_only=False):
    """Runs (or creates) the bundle with a known cgroup path; returns (id, cgroup path)."""
    cid = h.new_id()
    path = f"/{CGROUP_TEST_PARENT}/{cid}"
    bundle.linux["cgroupsPath"] = path
    resources = bundle.linux.setdefault("resources", {})
    if memory is not None:
        resources["memory"] = {"limit": memory}
        if swap is not None:
            resources["memory"]["swap"] = swap
    if pids is not None:
        resources["pids"] = {"limit": pids}
    bundle.sh(script)
    bundle.write()
    if create_only:
        res = h.create(bundle, cid, write=False)
        assert res.rc == 0, res.describe()
    else:
        res = h("run", "--detach", "--bundle", bundle.path, "--pid-file", h.pid_file(cid), cid)
        assert res.rc == 0, res.describe()
        h.note_pid(h.pid_file(cid).read_text())
    return cid, path


def stats_of(h, cid):
    res = h("events", "--stats", cid)
    assert res.rc == 0, res.describe()
    assert res.out.endswith("\n") and res.out.count("\n") == 1, res.describe()
    event = json.loads(res.out)
    assert event["type"] == "stats" and event["id"] == cid, event
    return event


def wait_for_pids(h, cid, n, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        res = h("ps", "--format", "json", cid)
        assert res.rc == 0, res.describe()
        pids = json.loads(res.out)
        if len(pids) == n:
            return pids
        assert time.monotonic() < deadline, f"expected {n} processes in {cid}, got {pids}"
        time.sleep(0.05)


class EventStream:
    """`events ARGS...` running in the background, its stdout read line by line."""

    def __init__(self, h, *args):
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(h.rt.argv("events", *args), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.err,
                                     start_new_session=True)
        self.buf = b""
        self.lines = []

    def read_until(self, done, timeout):
        """Collects lines until done(lines) is true, EOF, or the timeout. Returns done()."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while not done(self.lines):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self.buf += chunk
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                self.lines.append(json.loads(line))
        return done(self.lines)

    def wait_registered(self, timeout=10):
        """Waits until the process holds its OOM watch: an eventfd (v1) or inotify (v2)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"events exited early: {self.stderr()}"
            try:
                links = [os.readlink(f"/proc/{self.proc.pid}/fd/{fd}")
                         for fd in os.listdir(f"/proc/{self.proc.pid}/fd")]
            except (FileNotFoundError, ProcessLookupError):
                links = []
            if any(link in ("anon_inode:[eventfd]", "anon_inode:inotify") for link in links):
                time.sleep(0.1)
                return
            time.sleep(0.02)
        raise AssertionError("events never registered for OOM notifications")

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def stop(self):
        """Ends the process (by its pid) if it is still running; returns its status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait_exit(5) is None:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.err.close()
        return self.proc.returncode


def cgroup_file(controller, path, v1_name, v2_name):
    mount, version = controller_dir(controller)
    if mount is None:
        pytest.skip(f"the {controller} controller is not mounted on this host")
    return mount / path.lstrip("/") / (v1_name if version == 1 else v2_name)


def memory_is_v2():
    mount, version = controller_dir("memory")
    if mount is None:
        pytest.skip("the memory controller is not mounted on this host")
    return version == 2


# ---------------------------------------------------------------------------------------
# --stats


def test_stats_of_a_running_container(h, bundle):
    cid, path = start_detached(h, bundle, "sleep 1000 & sleep 1000 & wait",
                               memory=64 * MiB, pids=40)
    pids = wait_for_pids(h, cid, 3)
    before = stats_of(h, cid)
    assert set(before) == EVENT_KEYS and set(before["data"]) == DATA_KEYS, before
    data = before["data"]
    assert data["pids"] == {"current": len(pids), "limit": 40}, data["pids"]
    assert data["memory"]["usage"]["limit"] == 64 * MiB, data["memory"]
    assert data["memory"]["usage"]["usage"] > 0, data["memory"]
    assert data["memory"]["raw"], data["memory"]
    limit_file = cgroup_file("memory", path, "memory.limit_in_bytes", "memory.max")
    assert int(limit_file.read_text()) == data["memory"]["usage"]["limit"]
    assert data["cpu"]["usage"]["total"] > 0, data["cpu"]

    # A busy loop run inside the container is charged to its cgroup.
    res = h("exec", cid, "sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")
    assert res.rc == 0, res.describe()
    after = stats_of(h, cid)["data"]
    grew = after["cpu"]["usage"]["total"] - data["cpu"]["usage"]["total"]
    assert grew >= 20_000_000, f"cpu usage grew by {grew} ns only"
    assert after["cpu"]["usage"]["user"] + after["cpu"]["usage"]["kernel"] > \
        data["cpu"]["usage"]["user"] + data["cpu"]["usage"]["kernel"], after["cpu"]
    assert after["pids"]["current"] == 3, after["pids"]


def test_stats_of_a_created_container(h, bundle):
    cid, _ = start_detached(h, bundle, "true", pids=7, create_only=True)
    assert h.status(cid) == "created"
    data = stats_of(h, cid)["data"]
    # pids.current counts tasks: the waiting init's threads (runc's Go init has several).
    init = h.state(cid)["pid"]
    threads = len(os.listdir(f"/proc/{init}/task"))
    assert data["pids"] == {"current": threads, "limit": 7}, data["pids"]


# ---------------------------------------------------------------------------------------
# The stream


def test_stream_prints_stats_every_interval(h, bundle):
    cid, _ = start_detached(h, bundle, "sleep 1000")
    stream = EventStream(h, "--interval", "1s", cid)
    try:
        start = time.monotonic()
        got = stream.read_until(lambda lines: len(lines) >= 2, timeout=2.6)
        took = time.monotonic() - start
        assert got, f"{len(stream.lines)} events in {took:.1f}s: {stream.lines} " \
            f"{stream.stderr()}"
        assert took >= 1.5, f"two 1s-interval events came after only {took:.2f}s"
        for event in stream.lines:
            assert event["type"] == "stats" and event["id"] == cid, event
            assert set(event["data"]) == DATA_KEYS, event
        assert stream.proc.poll() is None, "the stream ended by itself"
    finally:
        status = stream.stop()
    assert status == -signal.SIGTERM, status


def test_stream_ends_when_the_container_goes_away(h, bundle):
    v2 = memory_is_v2()
    cid, _ = start_detached(h, bundle, "sleep 1000")
    stream = EventStream(h, "--interval", "300ms", cid)
    try:
        assert stream.read_until(lambda lines: len(lines) >= 1, timeout=5), stream.stderr()
        assert h.kill(cid, "KILL").rc == 0
        h.wait_status(cid, "stopped")
        if v2:
            # runc's v2 watch ends with the last process (cgroup.events: populated 0).
            assert stream.wait_exit(5) == 0, stream.stderr()
        else:
            # On v1 the stream goes on until the cgroup is removed: the kernel signals
            # the OOM eventfd then, which is how runc's ends.
            n = len(stream.lines)
            assert stream.read_until(lambda lines: len(lines) >= n + 2, timeout=5), \
                stream.stderr()
            assert stream.proc.poll() is None, "the stream ended before the delete"
            res = h.delete(cid)
            assert res.rc == 0, res.describe()
            assert stream.wait_exit(5) == 0, stream.stderr()
        stream.read_until(lambda lines: False, timeout=1)  # to EOF
        assert all(e["type"] == "stats" for e in stream.lines), stream.lines
    finally:
        stream.stop()


def test_stream_reports_an_oom_kill(h, bundle):
    # memory+swap equal to memory: no swap can absorb the allocation.
    try:
        cid, path = start_detached(h, bundle, "tail /dev/zero; sleep 1000", memory=16 * MiB,
                                   swap=16 * MiB, create_only=True)
    except AssertionError as e:
        if "swap" in str(e) or "memsw" in str(e):
            pytest.skip(f"this host cannot limit swap, so an OOM is not certain: {e}")
        raise
    stream = EventStream(h, "--interval", "30s", cid)
    try:
        stream.wait_registered()
        h.start_ok(cid)
        assert stream.read_until(lambda lines: any(e["type"] == "oom" for e in lines),
                                 timeout=30), f"{stream.lines} {stream.stderr()}"
        oom = next(e for e in stream.lines if e["type"] == "oom")
        assert oom == {"type": "oom", "id": cid}, oom
        # The kernel did kill in that cgroup.
        if memory_is_v2():
            events = cgroup_file("memory", path, "", "memory.events").read_text()
            kills = dict(line.split() for line in events.splitlines())["oom_kill"]
        else:
            control = cgroup_file("memory", path, "memory.oom_control", "").read_text()
            kills = dict(line.split() for line in control.splitlines())["oom_kill"]
        assert int(kills) >= 1, kills
        assert stream.proc.poll() is None, "the stream ended with the OOM"
    finally:
        stream.stop()


# ---------------------------------------------------------------------------------------
# Errors


def stopped_container(h, bundle):
    cid = h.run_detached(bundle.args("true"))
    h.wait_status(cid, "stopped")
    return cid


ERROR_CASES = [
    # (arguments, where {cid} is a stopped container and {live} a running one; message)
    (["--stats", "rct-does-not-exist"], "container does not exist"),
    (["--interval", "0s", "rct-does-not-exist"], "container does not exist"),
    (["--stats", "{cid}"], "container with id {cid} is not running"),
    (["{cid}"], "container with id {cid} is not running"),
    (["--interval", "abc", "{live}"], 'invalid value "abc" for flag -interval: parse error'),
    (["--interval", "1", "{live}"], 'invalid value "1" for flag -interval: parse error'),
    (["--interval", "0s", "{live}"], "duration interval must be greater than 0"),
    (["--interval=-1s", "--stats", "{live}"], "duration interval must be greater than 0"),
]


def check_errors(h, bundle):
    """Runs every error case; returns {case index: message} and checks nothing changed."""
    cid = stopped_container(h, bundle)
    live = h.run_detached(h.bundle().args("sleep", "1000"))
    before = sorted(os.listdir(h.rt.root))
    got = {}
    for i, (args, _) in enumerate(ERROR_CASES):
        argv = [a.format(cid=cid, live=live) for a in args]
        res = h("events", *argv)
        assert res.rc == 1, res.describe()
        got[i] = res.msg.replace(cid, "{cid}").replace(live, "{live}")
    res = h("events")
    assert res.rc == 1 and '"events" requires exactly 1 argument(s)' in res.msg, res.describe()
    res = h("events", cid, live)
    assert res.rc == 1 and '"events" requires exactly 1 argument(s)' in res.msg, res.describe()
    assert sorted(os.listdir(h.rt.root)) == before
    assert h.status(cid) == "stopped" and h.status(live) == "running"
    return got


def test_errors_in_runcs_words(h, bundle):
    got = check_errors(h, bundle)
    for i, (args, want) in enumerate(ERROR_CASES):
        assert got[i] == want, f"events {args}: {got[i]!r}, want {want!r}"


# ---------------------------------------------------------------------------------------
# Differential


def keys(event):
    return set(event), set(event["data"])


@pytest.mark.differential
def test_stats_have_runcs_keys(h, runc_h):
    results = {}
    for name, harness in (("runcell", h), ("runc", runc_h)):
        b = harness.bundle()
        cid, _ = start_detached(harness, b, "sleep 1000 & wait", memory=48 * MiB, pids=20)
        wait_for_pids(harness, cid, 2)
        results[name] = stats_of(harness, cid)
    ours, theirs = results["runcell"], results["runc"]
    assert keys(ours) == keys(theirs)
    od, td = ours["data"], theirs["data"]
    for section in ("cpu", "cpuset", "pids"):
        assert set(od[section]) == set(td[section]), section
    assert set(od["cpu"]["usage"]) == set(td["cpu"]["usage"])
    for entry in ("usage", "swap", "kernel", "kernelTCP"):
        assert "limit" in od["memory"][entry] and "failcnt" in od["memory"][entry], entry
    # The same kernel file gives the same counters; the same config the same limits.
    assert set(od["memory"]["raw"]) == set(td["memory"]["raw"])
    assert od["memory"]["usage"]["limit"] == td["memory"]["usage"]["limit"] == 48 * MiB
    assert od["pids"] == td["pids"] == {"current": 2, "limit": 20}
    # (runc 1.1.5 has no cpuset counters on a cgroup v2 host; the keys match above)
    assert od["cpuset"].get("cpus") == td["cpuset"].get("cpus")
    assert od["intel_rdt"] == td["intel_rdt"] and od["network_interfaces"] is None
    assert td["network_interfaces"] is None


@pytest.mark.differential
def test_errors_match_runc(h, runc_h):
    ours = check_errors(h, h.bundle())
    theirs = check_errors(runc_h, runc_h.bundle())
    for i, (args, _) in enumerate(ERROR_CASES):
        assert ours[i] == theirs[i], f"events {args}: runcell {ours[i]!r}, runc {theirs[i]!r}"


def test_help(h):
    res = h("events", "--help")
    assert res.rc == 0 and "--interval" in res.out and "--stats" in res.out, res.describe()
