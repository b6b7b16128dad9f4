"""Shared machinery for the benchmark suite (tests/bench): the runtimes under comparison,
their state roots, bundles, statistics, and the clean-up that removes every container the
suite started, even when a benchmark fails or the suite is interrupted.

Every runtime runs with its own --root under one /run/runcell-bench-* directory (tmpfs,
where runtimes keep their state in production), and every container id starts with the
session's prefix, so that the clean-up, and a test checking it, can find what is ours.
"""
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))

# Column order of every table and chart; runc is the reference for ratios.
RUNTIME_ORDER = ["runcell", "runcell-native", "runc", "runsc", "runcell-microvm"]
REFERENCE = "runc"
DESCRIPTIONS = {
    "runcell": "runcell as a cell: its default mode, the syscall gate on",
    "runcell-native": "runcell with the gate off (invoked as runcell-native)",
    "runc": "Debian's runc",
    "runsc": "Debian's runsc (gVisor), --network=none",
    "runcell-microvm": "runcell's microVM mode (invoked as runcell-microvm)",
    "host": "no container: the program run directly on the host",
}


class BenchError(Exception):
    """A runtime failed to do what a benchmark asked (not noise: the suite fails)."""


def log(msg):
    print("bench: " + msg, flush=True)


# ---------------------------------------------------------------------------------------
# Statistics


def percentile(values, q):
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    s = sorted(values)
    if not s:
        return None
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(values):
    return {
        "n": len(values),
        "median": percentile(values, 50),
        "p10": percentile(values, 10),
        "p90": percentile(values, 90),
    }


def rotate(items, i):
    """items starting at position i: each runtime takes each place in turn, so that none
    always runs right after the same other one (or first, on a cold cache)."""
    if not items:
        return []
    k = i % len(items)
    return items[k:] + items[:k]


# ---------------------------------------------------------------------------------------
# Host facts


def read_text(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def mountinfo():
    """[(mount point, fstype, super options)] of this mount namespace."""
    result = []
    for line in read_text("/proc/self/mountinfo", "").splitlines():
        left, right = line.split(" - ", 1)
        mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), left.split()[4])
        rf = right.split()
        result.append((mp, rf[0], rf[2] if len(rf) > 2 else ""))
    return result


def fs_type(path):
    """The type of the filesystem path is on, from the mount table (longest prefix)."""
    path = os.path.realpath(path)
    best, kind = "", "?"
    for mp, fstype, _ in mountinfo():
        if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
            best, kind = mp, fstype
    return kind


def mounts_under(path):
    path = str(path).rstrip("/")
    return [mp for mp, _, _ in mountinfo() if mp == path or mp.startswith(path + "/")]


def cgroup_mounts():
    """{mount point: (version, controllers)}."""
    out = {}
    for mp, fstype, opts in mountinfo():
        if fstype == "cgroup":
            out[mp] = (1, [o for o in opts.split(",") if o not in ("rw", "ro")])
        elif fstype == "cgroup2":
            out[mp] = (2, (read_text(os.path.join(mp, "cgroup.controllers"), "") or "").split())
    return out


def cgroup_layout():
    """"v1", "v2" or "hybrid", as this host mounts its cgroups."""
    versions = {v for v, _ in cgroup_mounts().values()}
    if versions == {1, 2}:
        return "hybrid"
    return "v2" if versions == {2} else "v1"


def memory_cgroup(rel):
    """(directory, usage in bytes) of the memory cgroup at rel (a cgroupsPath): v1's
    memory.usage_in_bytes (what runc's `events --stats` reports) where the memory
    controller is on v1, else v2's memory.current; (None, None) when it does not exist."""
    mounts = cgroup_mounts()
    for version, name in ((1, "memory.usage_in_bytes"), (2, "memory.current")):
        mp = next((m for m, (v, c) in mounts.items() if v == version and "memory" in c), None)
        if mp is None:
            continue
        d = os.path.join(mp, rel.lstrip("/"))
        raw = read_text(os.path.join(d, name))
        return (d, int(raw)) if raw else (None, None)
    return None, None


def pss_kib(pid):
    """Proportional set size of a process (shared pages divided among their users)."""
    for line in (read_text("/proc/%d/smaps_rollup" % pid, "") or "").splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def cmdline(pid):
    raw = read_text("/proc/%d/cmdline" % pid)
    return raw.replace("\0", " ").strip() if raw else ""


def live_pids():
    return {int(e) for e in os.listdir("/proc") if e.isdigit()}


def process_state(pid):
    raw = read_text("/proc/%d/stat" % pid)
    return raw[raw.rindex(")") + 2] if raw else None


def processes_mentioning(text):
    """Live (not zombie) processes whose command line contains text."""
    me = os.getpid()
    return [
        p for p in live_pids()
        if p != me and text in cmdline(p) and process_state(p) not in (None, "Z", "X")
    ]


def safe_rmtree(path):
    """rmtree that never crosses a mount point: a bind mount leaked onto a rootfs that
    binds the host's /usr would otherwise take the host's files with it."""
    if not os.path.lexists(path):
        return
    for mp in sorted(mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    if mounts_under(path):
        raise BenchError("refusing to remove %s: mounts remain under it" % path)
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# Runtimes


def run_waiting(argv, timeout, **popen_args):
    """Runs argv to its end and returns its exit status, or None if it ran past timeout
    seconds (then it is killed). Waits in waitpid, woken the moment the process ends:
    subprocess.run(timeout=...) instead polls with sleeps of 0.5, 1, 2 ... 50 ms, which
    rounds every measured call up to 15.5, 31.5 or 63.5 ms and turned the lifecycle
    numbers into steps of 16 ms."""
    p = subprocess.Popen(argv, **popen_args)
    expired = threading.Event()

    def expire():
        expired.set()
        p.kill()

    timer = threading.Timer(timeout, expire)
    timer.start()
    try:
        rc = p.wait()
    finally:
        timer.cancel()
    return None if expired.is_set() else rc


class Runtime:
    def __init__(self, name, binary, root, global_args=()):
        self.name = name
        self.binary = binary
        self.root = root
        self.global_args = list(global_args)
        self.version = ""

    def argv(self, *args):
        return [self.binary, *self.global_args, "--root", self.root, *map(str, args)]

    def call(self, *args, timeout=120, capture=False, check=True):
        """Runs the runtime; stderr (and stdout unless captured) go to files, never pipes,
        so that a container inheriting them cannot keep the call waiting for EOF.
        Returns (returncode, stdout text, stderr text); raises BenchError on failure."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            rc = run_waiting(self.argv(*args), timeout, stdin=subprocess.DEVNULL,
                             stdout=out if capture else subprocess.DEVNULL, stderr=err)
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode(errors="replace")
            stderr = err.read().decode(errors="replace")
        if check and rc != 0:
            what = "timed out after %ss" % timeout if rc is None else "exited %d" % rc
            raise BenchError("%s: `%s` %s: %s" % (self.name, " ".join(self.argv(*args)), what,
                                                  (stderr.strip() or stdout.strip())[-800:]))
        return rc, stdout, stderr

    def state(self, cid):
        return json.loads(self.call("state", cid, capture=True, timeout=30)[1])

    def wait_stopped(self, cid, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            if self.state(cid)["status"] == "stopped":
                return
            if time.monotonic() > deadline:
                raise BenchError("%s: container %s still running after %ss" %
                                 (self.name, cid, timeout))
            time.sleep(0.002)

    def __repr__(self):
        return self.name


class Session:
    """The runtimes under test, their state roots and a work directory, and the clean-up
    of both. Use as a context manager: `with Session(runcell) as s: ...`."""

    def __init__(self, runcell, wanted=None, others=None):
        """wanted: names of the runtimes to compare (None: all); others: {"runc": path,
        "runsc": path} to use instead of the ones on PATH."""
        self.runcell = os.path.abspath(runcell)
        self.wanted = wanted
        self.others = others or {}
        self.tag = "bn" + secrets.token_hex(3)
        self.work = None
        self.state_base = None
        self.state_fs = None
        self.runtimes = []  # the available ones, in RUNTIME_ORDER
        self.info = {}  # name -> {"available": bool, "description", "binary", "reason"...}
        self.ids = {}  # runtime name -> [container ids handed out]
        self._counter = 0
        self._old_handlers = {}

    # --- context management: SIGTERM and SIGHUP end the suite through its clean-up
    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        self.work = tempfile.mkdtemp(prefix="runcell-bench-")
        os.chmod(self.work, 0o755)
        self.state_base = tempfile.mkdtemp(prefix="runcell-bench-", dir="/run")
        try:
            self.state_fs = self._state_on_tmpfs()
        except BaseException:
            # __exit__ does not run when __enter__ fails: undo what it made here
            self.__exit__(None, None, None)
            raise
        return self

    def _state_on_tmpfs(self):
        """The state roots live where a runtime's do on a real node: /run, a tmpfs. Where
        /run is not one (a development VM whose / holds it), a tmpfs is mounted on the
        state base: on a disk, runcell's durable state writes (fsync) and runc's (none)
        would be compared instead of the runtimes. Says which."""
        if fs_type(self.state_base) == "tmpfs":
            return "tmpfs (/run)"
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700,size=256m", "tmpfs",
                            self.state_base], capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError("mount a tmpfs for the state roots on %s: %s" % (
                self.state_base, r.stderr.strip()))
        return "tmpfs (mounted by the suite: /run here is %s)" % fs_type("/run")

    def _on_signal(self, signum, frame):
        raise SystemExit("bench: interrupted by signal %d" % signum)

    def __exit__(self, *exc):
        try:
            self.cleanup()
        finally:
            for sig, old in self._old_handlers.items():
                signal.signal(sig, old)
        return False

    # --- runtimes
    def discover(self):
        """The runtimes to compare: runcell as a cell, runcell-native, runc, runsc (when
        installed) and runcell's microVM mode (when this build can run one: probed, never
        assumed). Each is recorded in self.info, available or not and why."""
        if not (os.path.isfile(self.runcell) and os.access(self.runcell, os.X_OK)):
            raise BenchError("runcell binary %s is missing or not executable" % self.runcell)
        # The mode follows the name runcell is invoked by, as containerd's shim invokes it
        # through a handler's binary name (cmake --install makes these symlinks).
        candidates = {"runcell": (self.runcell, [])}
        for alias in ("runcell-native", "runcell-microvm"):
            link = os.path.join(self.work, "bin", alias)
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(self.runcell, link)
            candidates[alias] = (link, [])
        missing = {}
        for other in ("runc", "runsc"):
            path = self.others.get(other)
            if path:
                if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                    missing[other] = "not installed: no executable at %s" % path
                    continue
            else:
                path = shutil.which(other) or shutil.which(other, path="/usr/sbin:/sbin")
            if path:
                # runsc needs a network of its own or none; the bundles bring none.
                candidates[other] = (path, ["--network=none"] if other == "runsc" else [])
        for name in RUNTIME_ORDER:
            info = {"description": DESCRIPTIONS[name]}
            self.info[name] = info
            if self.wanted is not None and name not in self.wanted:
                info.update(available=False, reason="not selected (--runtimes)")
                continue
            if name not in candidates:
                hint = {"runsc": " (RUNCELL_DEPS_OPTIONAL=1 scripts/install-deps.sh installs "
                                 "it)", "runc": " (scripts/install-deps.sh installs it)"}
                info.update(available=False,
                            reason=missing.get(name, "not installed: not found on PATH") +
                            hint.get(name, ""))
                continue
            binary, gargs = candidates[name]
            rt = Runtime(name, binary, os.path.join(self.state_base, name), gargs)
            rt.version = version_of(binary)
            info.update(binary=binary, global_args=gargs, version=rt.version)
            if name == "runcell-microvm":
                reason = self._probe(rt)
                if reason:
                    info.update(available=False,
                                reason="not available in this build (`run` fails: %s)" % reason)
                    continue
            info["available"] = True
            self.runtimes.append(rt)
        return self.runtimes

    def _probe(self, rt):
        """None when rt runs a /bin/true container, else its error (first line)."""
        bundle = self.busybox_bundle("probe", ["/bin/true"])
        cid = self.new_id(rt, "probe")
        rc, out, err = rt.call("run", "--bundle", bundle, cid, check=False, timeout=60,
                               capture=True)
        if rc == 0:
            rt.call("delete", "--force", cid, check=False)
            return None
        msg = (err.strip() or out.strip() or "exit status %s" % rc).splitlines()[0]
        return re.sub(r"^[^:]*runcell[^:]*: ", "", msg)

    def record_mode(self, rt, state):
        """Keeps the run.runcell.* annotations of a container's state (the mode and gate
        it really ran with), for the report's runtime table."""
        ann = {k: v for k, v in (state.get("annotations") or {}).items()
               if k.startswith("run.runcell.")}
        if ann:
            self.info[rt.name]["state_annotations"] = ann

    def new_id(self, rt, what):
        self._counter += 1
        short = {"runcell": "cell", "runcell-native": "native", "runcell-microvm": "vm"}
        cid = "%s-%s-%s-%d" % (self.tag, short.get(rt.name, rt.name), what, self._counter)
        self.ids.setdefault(rt.name, []).append(cid)
        return cid

    # --- bundles
    def busybox_bundle(self, name, args, edit=None):
        """A bundle whose rootfs is Debian's busybox-static (scripts/make-busybox-bundle.sh),
        running args; edit(config dict, bundle dir) may change it. Returns its path."""
        path = os.path.join(self.work, "bundle-" + name)
        if not os.path.exists(path):
            subprocess.run([os.path.join(TOP, "scripts/make-busybox-bundle.sh"), path,
                            self.runcell, *args], check=True, stdout=subprocess.DEVNULL)
            if edit:
                cfg = load_config(path)
                edit(cfg, path)
                save_config(path, cfg)
        return path

    # --- clean-up
    def cleanup(self):
        """Deletes every container the suite started (the ids it handed out and whatever
        each runtime still lists in its root), ends any runtime process still running
        with our state root on its command line, removes empty cgroups named by our ids,
        then the state roots and the work directory. Says what it had to force."""
        if self.state_base is None:
            return
        for rt in self.runtimes + [r for r in self._probed_only()]:
            ids = list(self.ids.get(rt.name, []))
            if os.path.isdir(rt.root):
                rc, out, _ = rt.call("list", "--quiet", capture=True, check=False, timeout=60)
                if rc == 0:
                    ids += [i for i in out.split() if i not in ids]
            for cid in ids:
                if os.path.isdir(rt.root):
                    rt.call("delete", "--force", cid, check=False, timeout=60)
        deadline = time.monotonic() + 5
        while processes_mentioning(self.state_base) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in processes_mentioning(self.state_base):
            log("clean-up: killing leftover process %d: %s" % (pid, cmdline(pid)))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        leftover = cgroup_dirs_with_prefix(self.tag)
        for d in leftover:  # only our containers' cgroups carry our prefix
            for pid in (read_text(os.path.join(d, "cgroup.procs"), "") or "").split():
                log("clean-up: killing process %s left in cgroup %s" % (pid, d))
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for d in leftover:
            for attempt in range(40):  # a killed process leaves its cgroup a moment later
                try:
                    os.rmdir(d)
                    log("clean-up: removed leftover cgroup %s" % d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if attempt == 39:
                        log("clean-up: cannot remove leftover cgroup %s: %s" % (d, e))
                    time.sleep(0.05)
        safe_rmtree(self.state_base)
        if self.work:
            safe_rmtree(self.work)

    def _probed_only(self):
        """Runtimes that were probed but are not in self.runtimes (the microVM probe)."""
        names = {rt.name for rt in self.runtimes}
        out = []
        for name, info in self.info.items():
            if name not in names and info.get("binary"):
                out.append(Runtime(name, info["binary"], os.path.join(self.state_base, name),
                                   info.get("global_args", [])))
        return out


def cgroup_dirs_with_prefix(prefix, max_depth=6):
    """Cgroup directories (any hierarchy) whose name starts with prefix, deepest first."""
    found = []
    for mp in cgroup_mounts():
        base = mp.rstrip("/").count("/")
        for dirpath, dirnames, _ in os.walk(mp):
            if dirpath.count("/") - base >= max_depth:
                dirnames[:] = []
            found += [os.path.join(dirpath, d) for d in dirnames if d.startswith(prefix)]
    return sorted(found, key=len, reverse=True)


def version_of(binary):
    try:
        r = subprocess.run([binary, "--version"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout.decode(errors="replace").splitlines()[0].strip() if r.stdout else ""


def load_config(bundle):
    with open(os.path.join(bundle, "config.json")) as f:
        return json.load(f)


def save_config(bundle, cfg):
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def random_bytes(n):
    return random.Random(8).randbytes(n)


# ---------------------------------------------------------------------------------------
# Results


class Benchmark:
    """One benchmark's raw results: per metric, the samples of each runtime; per runtime
    that failed, its error."""

    def __init__(self, key, title, params):
        self.key = key
        self.data = {"title": title, "params": params, "metrics": {}, "errors": {}, "notes": []}

    @property
    def errors(self):
        return self.data["errors"]

    def metric(self, key, title, unit, better):
        """better: "lower" or "higher"."""
        self.data["metrics"].setdefault(
            key, {"title": title, "unit": unit, "better": better, "samples": {}})

    def add(self, key, runtime, value):
        self.data["metrics"][key]["samples"].setdefault(runtime, []).append(value)

    def note(self, text):
        self.data["notes"].append(text)

    def fail(self, runtime, message):
        log("%s: %s FAILED: %s" % (self.key, runtime, message))
        self.errors.setdefault(runtime, message)

    def alternate(self, runtimes, reps, fn):
        """fn(rt, i) for each repetition i, the runtimes rotated each time (each takes
        each place in the order in turn); a runtime that raises BenchError is recorded as
        failed and left out of the repetitions that follow."""
        for i in range(reps):
            for rt in rotate(list(runtimes), i):
                if rt.name in self.errors:
                    continue
                try:
                    fn(rt, i)
                except BenchError as e:
                    self.fail(rt.name, str(e))
