"""Helpers for the integration tests: running a runtime, busybox bundles, and the check
that a test left nothing behind (state directory, cgroup, mount, process).

Every runtime call goes through run(): the runtime's stdout and stderr are temporary
files, not pipes, so a container that inherits them never keeps a test waiting for EOF.
"""
import copy
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[2]
BUSYBOX = Path("/bin/busybox")
RUNC = Path("/usr/sbin/runc")
# linux.cgroupsPath used by tests that need to know where the container's cgroup is.
CGROUP_TEST_PARENT = "rct-test"
ID_PREFIX = "rct-"

# Linux capability numbers (include/uapi/linux/capability.h).
CAP_NUMBERS = {
    name: number
    for number, name in enumerate(
        """CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
        LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
        SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
        SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
        MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
        CHECKPOINT_RESTORE""".split()
    )
}


def cap_mask(names):
    """The /proc/<pid>/status bitmask for a list of "CAP_*" names."""
    mask = 0
    for name in names:
        mask |= 1 << CAP_NUMBERS[name.removeprefix("CAP_")]
    return mask


# The bundle suite checks runcell's native behaviour, a cell with its syscall gate off, which
# must match runc's (the differential tests compare the two); the gate itself has its own
# tests (test_cell_gate.py), and the containerd, CRI and podman tests run cells with the
# gate on, as runcell's default. runc ignores the annotation.
NATIVE_ANNOTATIONS = {"run.runcell.gate": "off"}


def set_mode(bundle, mode):
    """cell: runcell's default (the gate on); native: the annotation that switches the gate
    off (NATIVE_ANNOTATIONS). Returns the bundle."""
    ann = {k: v for k, v in bundle.config.get("annotations", {}).items()
           if k not in NATIVE_ANNOTATIONS}
    if mode == "native":
        ann.update(NATIVE_ANNOTATIONS)
    bundle.config["annotations"] = ann
    return bundle


# runc's spec adds a cgroup namespace where /sys/fs/cgroup is cgroup v2 (statfs there)
HOST_CGROUP2_UNIFIED = os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def default_spec():
    """`runc spec` (runc 1.1.5) as a dict, with process.terminal false and the annotation
    that switches runcell's gate off (NATIVE_ANNOTATIONS). On a cgroup v2 host it has a
    cgroup namespace, as runc's has there."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": list(caps),
                "effective": list(caps),
                "permitted": list(caps),
                "ambient": list(caps),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "annotations": dict(NATIVE_ANNOTATIONS),
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": [
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                    "gid=5",
                ],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
            },
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"},
                {"type": "network"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
            ] + ([{"type": "cgroup"}] if HOST_CGROUP2_UNIFIED else []),
            "maskedPaths": [
                "/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ],
        },
    }


# ---------------------------------------------------------------------------------------
# Running the runtime


class Runtime:
    """A runtime binary with its own --root."""

    def __init__(self, binary, root, name=None):
        self.binary = str(binary)
        self.root = Path(root)
        self.name = name or Path(binary).name

    def argv(self, *args):
        return [self.binary, "--root", str(self.root), *map(str, args)]

    def __repr__(self):
        return f"Runtime({self.name}, root={self.root})"


class Result(NamedTuple):
    rc: int
    out: str
    err: str

    @property
    def msg(self):
        """The error message the runtime printed (see error_message)."""
        return error_message(self.err)

    def describe(self):
        return f"rc={self.rc}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def run(runtime, *args, input=None, timeout=30, cwd=None, stdout=None, stderr=None, env=None):
    """Runs `runtime args...` and returns Result(rc, stdout, stderr).

    runtime is a Runtime (its --root is passed first) or a binary path. Global flags such
    as --log go first in args. stdout/stderr may be open files to hand the runtime (and
    so a detached container) instead of the captured temporary files; the captured text
    is then "". A command still running after `timeout` seconds is killed with its
    process group and the test fails.
    """
    if isinstance(runtime, Runtime):
        argv = runtime.argv(*args)
    else:
        argv = [str(runtime), *map(str, args)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryFile() as inp:
        if input is not None:
            inp.write(input.encode() if isinstance(input, str) else input)
            inp.seek(0)
        proc = subprocess.Popen(
            argv,
            stdin=inp if input is not None else subprocess.DEVNULL,
            stdout=stdout if stdout is not None else out,
            stderr=stderr if stderr is not None else err,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            global TIMEOUTS
            TIMEOUTS += 1
            _kill_group(proc.pid)
            proc.wait()
            out.seek(0)
            err.seek(0)
            raise AssertionError(
                f"`{' '.join(argv)}` did not finish within {timeout}s\n--- stdout\n"
                f"{out.read().decode(errors='replace')}\n--- stderr\n"
                f"{err.read().decode(errors='replace')}"
            ) from None
        out.seek(0)
        err.seek(0)
        return Result(rc, out.read().decode(errors="replace"), err.read().decode(errors="replace"))


# How many runtime calls have hung in this session; after a few, tests stop starting
# containers (see conftest.py) instead of each waiting out its timeouts.
TIMEOUTS = 0


def _kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


_LOGRUS = re.compile(r'level=(?:error|fatal) msg="((?:[^"\\]|\\.)*)"')


def error_message(stderr):
    """The message of the last error line on stderr, without the program prefix.

    runcell prints `runcell: MSG`; runc prints logrus text (`time=... level=error
    msg="runc create failed: MSG"`) or, with --log, the bare message.
    """
    lines = [line for line in stderr.splitlines() if line.strip()]
    chosen = None
    for line in reversed(lines):
        if line.startswith(("runcell: ", "runc: ")) or _LOGRUS.search(line):
            chosen = line
            break
    if chosen is None:
        chosen = lines[-1] if lines else ""
    m = _LOGRUS.search(chosen)
    if m:
        chosen = json.loads('"' + m.group(1) + '"')
    for prefix in ("runcell: ", "runc: "):
        chosen = chosen.removeprefix(prefix)
    return re.sub(r"^runc \w+ failed: ", "", chosen)


RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_rfc3339(text):
    """Parses an RFC 3339 timestamp (Z or offset, any number of fraction digits)."""
    assert RFC3339.match(text), f"not an RFC 3339 timestamp: {text!r}"
    m = re.match(r"^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$", text)
    base, frac, zone = m.groups()
    iso = base + ("." + (frac + "000000")[:6] if frac else "") + (
        "+00:00" if zone == "Z" else zone
    )
    return datetime.fromisoformat(iso)


# ---------------------------------------------------------------------------------------
# Bundles

_APPLETS = None


def busybox_applets():
    global _APPLETS
    if _APPLETS is None:
        out = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True)
        _APPLETS = [a for a in out.stdout.split() if a and "/" not in a and a != "busybox"]
    return _APPLETS


def make_rootfs(rootfs):
    """A busybox rootfs: /bin/busybox with a symlink per applet, minimal /etc."""
    rootfs = Path(rootfs)
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    os.chmod(rootfs / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in busybox_applets():
        os.symlink("busybox", rootfs / "bin" / applet)
    (rootfs / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (rootfs / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (rootfs / "etc" / "hostname").write_text("rootfs\n")


class Bundle:
    """An OCI bundle: path/config.json (written from self.config) and path/rootfs."""

    def __init__(self, path, config=None):
        self.path = Path(path)
        self.rootfs = self.path / "rootfs"
        self.config = config if config is not None else default_spec()

    @property
    def config_path(self):
        return self.path / "config.json"

    @property
    def process(self):
        return self.config["process"]

    @property
    def linux(self):
        return self.config.setdefault("linux", {})

    def write(self):
        self.config_path.write_text(json.dumps(self.config, indent=2))

    def args(self, *argv):
        self.process["args"] = list(argv)
        return self

    def sh(self, script):
        return self.args("sh", "-c", script)

    def add_mount(self, destination, type_=None, source=None, options=None):
        m = {"destination": destination}
        if type_ is not None:
            m["type"] = type_
        if source is not None:
            m["source"] = str(source)
        if options is not None:
            m["options"] = list(options)
        self.config.setdefault("mounts", []).append(m)
        return m

    def bind(self, host_path, destination, *options):
        return self.add_mount(destination, "bind", host_path, ["rbind", *options])

    def namespace_types(self):
        return [ns["type"] for ns in self.linux.get("namespaces", [])]

    def set_namespace(self, type_, path=None):
        nss = [ns for ns in self.linux.get("namespaces", []) if ns["type"] != type_]
        entry = {"type": type_}
        if path is not None:
            entry["path"] = str(path)
        nss.append(entry)
        self.linux["namespaces"] = nss

    def drop_namespace(self, type_):
        self.linux["namespaces"] = [
            ns for ns in self.linux.get("namespaces", []) if ns["type"] != type_
        ]

    def copy_config(self):
        return copy.deepcopy(self.config)


# ---------------------------------------------------------------------------------------
# What a container can leave behind on the host


def _unescape_mountinfo(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mountinfo():
    """[(mount point, fstype, super options)] from /proc/self/mountinfo."""
    result = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.rstrip("\n").split(" - ", 1)
            fields = left.split()
            rfields = right.split()
            result.append(
                (_unescape_mountinfo(fields[4]), rfields[0], rfields[2] if len(rfields) > 2 else "")
            )
    return result


def mounts_under(prefix):
    prefix = str(prefix).rstrip("/")
    return [mp for mp, _, _ in mountinfo() if mp == prefix or mp.startswith(prefix + "/")]


def cgroup_hierarchies():
    """{mount point: (fstype, controllers)} of every cgroup and cgroup2 mount."""
    result = {}
    for mp, fstype, opts in mountinfo():
        if fstype == "cgroup":
            ctrls = [o for o in opts.split(",") if o not in ("rw", "ro") and "=" not in o]
            ctrls += [o.split("=", 1)[1] for o in opts.split(",") if o.startswith("name=")]
            result[mp] = ("cgroup", ctrls)
        elif fstype == "cgroup2":
            try:
                ctrls = Path(mp, "cgroup.controllers").read_text().split()
            except OSError:
                ctrls = []
            result[mp] = ("cgroup2", ctrls)
    return result


def controller_dir(controller):
    """(mount point, version) of the hierarchy holding `controller`, v1 first."""
    v2 = None
    for mp, (fstype, ctrls) in cgroup_hierarchies().items():
        if controller in ctrls:
            if fstype == "cgroup":
                return Path(mp), 1
            v2 = Path(mp)
    if v2 is not None:
        return v2, 2
    return None, None


def cgroup_dirs_named(name, max_depth=8):
    """Every directory called `name` in any cgroup hierarchy."""
    found = []
    for mp in cgroup_hierarchies():
        base_depth = mp.rstrip("/").count("/")
        for dirpath, dirnames, _ in os.walk(mp):
            if dirpath.count("/") - base_depth >= max_depth:
                dirnames[:] = []
            for d in dirnames:
                if d == name:
                    found.append(os.path.join(dirpath, d))
    return found


def proc_stat(pid):
    """(state letter, start time) of a process, or None when it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = data[data.rindex(")") + 2:].split()
    return rest[0], int(rest[19])


def process_alive(pid, starttime=None):
    st = proc_stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return starttime is None or st[1] == starttime


def processes_mentioning(text):
    """Live pids whose command line or cgroup mentions `text` (a container id)."""
    needle = text.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            cgroup = Path(f"/proc/{entry}/cgroup").read_bytes()
        except OSError:
            continue
        if needle in cmdline or (b"/" + needle + b"\n") in cgroup or (b"/" + needle + b"/") in cgroup:
            if process_alive(int(entry)):
                found.append(int(entry))
    return found


def host_pid_status(pid):
    """/proc/<pid>/status as a dict of field -> value."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return fields


# ---------------------------------------------------------------------------------------
# The per-test harness


def new_container_id():
    return ID_PREFIX + secrets.token_hex(6)


class Harness:
    """One runtime with its own --root in a per-test work directory. Every container id
    it hands out is deleted (--force) at the end of the test and checked for leftovers."""

    def __init__(self, binary, workdir, name=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.rt = Runtime(binary, self.workdir / "root", name)
        self.ids = []
        self.pids = {}  # pid -> start time, every container pid seen
        self.netns = []
        self.finalizers = []
        self._nbundles = 0

    # --- ids, bundles, raw calls
    def new_id(self):
        cid = new_container_id()
        self.ids.append(cid)
        return cid

    def track_id(self, cid):
        if cid not in self.ids:
            self.ids.append(cid)
        return cid

    def bundle(self, name=None):
        self._nbundles += 1
        b = Bundle(self.workdir / (name or f"bundle{self._nbundles}"))
        make_rootfs(b.rootfs)
        return b

    def __call__(self, *args, **kw):
        return run(self.rt, *args, **kw)

    def note_pid(self, pid):
        pid = int(pid)
        if pid > 0 and pid not in self.pids:
            st = proc_stat(pid)
            self.pids[pid] = st[1] if st else None

    # --- lifecycle
    def create(self, bundle, cid=None, *extra, pid_file=True, write=True, **kw):
        """`create --bundle B [--pid-file F] extra... ID`; returns Result."""
        cid = self.track_id(cid or self.new_id())
        if write and isinstance(bundle, Bundle):
            bundle.write()
        path = bundle.path if isinstance(bundle, Bundle) else bundle
        args = ["create", "--bundle", path]
        if pid_file:
            args += ["--pid-file", self.pid_file(cid)]
        res = self(*args, *extra, cid, **kw)
        if res.rc == 0 and pid_file and self.pid_file(cid).exists():
            text = self.pid_file(cid).read_text()
            if text.strip().isdigit():
                self.note_pid(text.strip())
        return res

    def create_ok(self, bundle, *extra, **kw):
        cid = self.new_id()
        res = self.create(bundle, cid, *extra, **kw)
        assert res.rc == 0, f"create failed: {res.describe()}"
        return cid

    def pid_file(self, cid):
        return self.workdir / f"{cid}.pid"

    def start(self, cid, **kw):
        return self("start", cid, **kw)

    def start_ok(self, cid, **kw):
        res = self.start(cid, **kw)
        assert res.rc == 0, f"start failed: {res.describe()}"
        return res

    def run_container(self, bundle, cid=None, *extra, write=True, **kw):
        """Foreground `run --bundle B extra... ID`; returns Result."""
        cid = self.track_id(cid or self.new_id())
        if write:
            bundle.write()
        return self("run", "--bundle", bundle.path, *extra, cid, **kw)

    def output_of(self, bundle, *extra, **kw):
        """Runs the bundle in the foreground, asserts exit 0 and returns its stdout."""
        res = self.run_container(bundle, None, *extra, **kw)
        assert res.rc == 0, f"run failed: {res.describe()}"
        return res.out

    def run_detached(self, bundle, **kw):
        cid = self.new_id()
        bundle.write()
        res = self("run", "--detach", "--bundle", bundle.path, "--pid-file", self.pid_file(cid),
                   cid, **kw)
        assert res.rc == 0, f"run --detach failed: {res.describe()}"
        self.note_pid(self.pid_file(cid).read_text().strip())
        return cid

    def state(self, cid):
        res = self("state", cid)
        assert res.rc == 0, f"state {cid} failed: {res.describe()}"
        st = json.loads(res.out)
        if st.get("pid"):
            self.note_pid(st["pid"])
        return st

    def status(self, cid):
        return self.state(cid)["status"]

    def wait_status(self, cid, status, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            current = self.status(cid)
            if current == status:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{cid} is {current!r}, not {status!r}, after {timeout}s")
            time.sleep(0.05)

    def kill(self, cid, signal=None, all=False, **kw):
        args = ["kill", *(["--all"] if all else []), cid]
        return self(*args, *([signal] if signal is not None else []), **kw)

    def delete(self, cid, force=False, **kw):
        return self("delete", *(["--force"] if force else []), cid, **kw)

    # --- host resources a test makes
    def add_netns(self):
        name = ID_PREFIX + "ns-" + secrets.token_hex(4)
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        self.netns.append(name)
        return name

    def on_cleanup(self, fn):
        self.finalizers.append(fn)

    # --- the end of a test
    def leftovers(self):
        problems = []
        for cid in self.ids:
            if (self.rt.root / cid).exists():
                problems.append(f"state directory {self.rt.root / cid}")
            for d in cgroup_dirs_named(cid):
                problems.append(f"cgroup {d}")
            for pid in processes_mentioning(cid):
                problems.append(f"process {pid} mentioning {cid}: {_cmdline(pid)}")
        for pid, start in self.pids.items():
            if process_alive(pid, start):
                problems.append(f"container process {pid}: {_cmdline(pid)}")
        for mp in mounts_under(self.workdir):
            problems.append(f"mount {mp}")
        return problems

    def cleanup(self):
        for cid in self.ids:
            try:
                res = self("state", cid, timeout=15)
                if res.rc == 0:
                    pid = json.loads(res.out).get("pid")
                    if pid:
                        self.note_pid(pid)
            except (AssertionError, ValueError):
                pass
            try:
                self("delete", "--force", cid, timeout=30)
            except AssertionError:
                pass
        deadline = time.monotonic() + 5
        problems = self.leftovers()
        while problems and time.monotonic() < deadline:
            time.sleep(0.1)
            problems = self.leftovers()
        if problems:
            self._remediate()
        for name in self.netns:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        for fn in reversed(self.finalizers):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - keep cleaning up
                problems.append(f"finalizer {fn}: {e}")
        remove_empty_test_cgroup_parents()
        return problems

    def _remediate(self):
        """Removes what a failed test left, so the next tests start clean."""
        for cid in self.ids:
            for pid in processes_mentioning(cid):
                _kill(pid)
        for pid, start in self.pids.items():
            if process_alive(pid, start):
                _kill(pid)
        time.sleep(0.2)
        for mp in sorted(mounts_under(self.workdir), key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True)
        for cid in self.ids:
            for d in sorted(cgroup_dirs_named(cid), key=len, reverse=True):
                _rmdir_cgroup(d)
            shutil.rmtree(self.rt.root / cid, ignore_errors=True)


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _rmdir_cgroup(path):
    for dirpath, dirnames, _ in sorted(os.walk(path), key=lambda t: len(t[0]), reverse=True):
        try:
            procs = Path(dirpath, "cgroup.procs").read_text().split()
        except OSError:
            procs = []
        for p in procs:
            _kill(int(p))
        for _ in range(20):
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)


def remove_empty_test_cgroup_parents():
    for mp in cgroup_hierarchies():
        try:
            os.rmdir(os.path.join(mp, CGROUP_TEST_PARENT))
        except OSError:
            pass


def safe_rmtree(path):
    """rmtree, but never across a mount point (a leaked bind mount would delete host
    files)."""
    path = Path(path)
    if not path.exists():
        return
    if mounts_under(path):
        for mp in sorted(mounts_under(path), key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True)
        if mounts_under(path):
            return
    shutil.rmtree(path, ignore_errors=True)


def build_static(directory, name, source, flags=()):
    """Compiles C source text with the host's gcc into directory/name, static (the
    containers' busybox rootfs has no libc); skips the test, saying why, where it cannot."""
    import pytest

    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip(f"gcc is needed to build {name}")
    src = Path(directory) / f"{name}.c"
    src.write_text(source)
    out = Path(directory) / name
    res = subprocess.run([gcc, "-static", "-O2", *flags, "-o", str(out), str(src)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot build {name} statically here: {res.stderr.strip()}")
    return out


def cell_kernel_pids(cid=None):
    """Cell kernels running now; with cid, only that container's (a cell kernel keeps the
    command line of the runcell that started it, which names the container): other tests
    or users of the machine may be starting and ending cells meanwhile."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() != "runcell-cellk":
                    continue
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                if cid is None or cid.encode() in argv:
                    found.add(int(entry))
            except OSError:
                pass
    return found
