"""A private, real systemd (Debian's systemd 252 and dbus-daemon) for the systemd cgroup
driver tests, never the machine's own.

The development VMs' PID 1 is not systemd (it is process_api), so the tests start one:
/lib/systemd/systemd --system as PID 1 of new pid, mount, cgroup, network, uts and ipc
namespaces (unshare(1)), in container mode (container=runcell-test), as
systemd-nspawn would run it but on the host's root file system:

- Its own cgroup subtree. A directory runcell-test-systemd-<hex> (plus a leaf
  runcell-test-client) is made in every mounted hierarchy: under the starter's own cgroup
  in each v1 hierarchy (each controller, name=systemd), under the root of cgroup2 (the one
  cgroup there that may hold processes and hand controllers down). The starter joins it,
  then unshares its cgroup namespace, so the subtree becomes the namespace's root; unshare
  itself is moved back out before systemd starts, so systemd finds only its own processes
  there. Inside, a fresh tmpfs covers /sys/fs/cgroup and each hierarchy is mounted again
  with the host's options, which in the new cgroup namespace shows the subtree as the root:
  systemd sees an ordinary hybrid layout (or v2 or v1, as the host has), and its slices and
  scopes are the host's <hierarchy>/<parent>/runcell-test-systemd-<hex>/<slice>/<unit>.
  That tmpfs is read-only: systemd 252 in a container otherwise mounts the controllers the
  host left unmounted (net_cls, net_prio, perf_event, hugetlb here, whose hierarchy roots
  would be the host's) and makes cpu,cpuacct symlinks; start() checks none got mounted.
- Its own /run and /tmp (tmpfs; the host's submounts there are detached first), a fresh
  read-only sysfs, /proc of its pid namespace with /proc/sys read-only (systemd would
  otherwise set the host's fs.file-max), its own network namespace (systemd brings its
  loopback up), and a pty of the harness as /dev/console (systemd 252 in a container logs
  only to a terminal there; a thread copies it into console.log). The directories the
  tests need are bound back at their host paths: the harness directory and `visible`
  read-write (bundles, --root, pid files), `readonly` read-only (the runtime binaries).
  Nothing is mounted on the host: every mount is made in the private mount namespace
  (propagation private), which dies with systemd; stop() checks the host's mountinfo.
- Only the units given here: SYSTEMD_UNIT_PATH is /run/systemd/transient plus a
  directory with a target (runcell-test.target), dbus.socket and dbus.service (dbus-daemon
  with its own allow-all config on the private /run/dbus/system_bus_socket, so systemd
  registers org.freedesktop.systemd1 on that bus); no generators
  (SYSTEMD_GENERATOR_PATH, SYSTEMD_ENVIRONMENT_GENERATOR_PATH: an empty directory), no
  kernel command line (SYSTEMD_PROC_CMDLINE), no journald, services' output to /dev/null.

A unified host on any host with cgroup2 (SystemdHarness(..., cgroup="v2"); the default,
cgroup="host", is the layout above): only the host's cgroup2 hierarchy is used. The
subtree is made under its root as above, and inside the private mount namespace that
hierarchy alone is mounted, at /sys/fs/cgroup (no tmpfs, no v1 hierarchy), so systemd
finds a unified host (default-hierarchy=unified) and so do the runtimes. Its mount point
inside differs from the host's (/sys/fs/cgroup/unified on a hybrid host): `hierarchies`
and the keys of `subtrees` are the mount points inside, `host_mounts` maps them to the
host's, and host_cgroup() takes the inside one. The processes keep the v1 cgroups the
harness's own process has (the cgroup namespace's root there; nothing inside sees them).
The controllers such a host offers are those the host's cgroup2 root hands down
(v2_controllers(); on a hybrid host only what no v1 hierarchy holds, hugetlb here), and
systemd tracks its units there (tracking_key "", where the host layout's is
"name=systemd").

start() waits (30 s at most) until `busctl --system call org.freedesktop.systemd1 ... Ping`
answers and `systemctl is-system-running` says running (or degraded), inside.

Commands run inside with run() / argv(): `nsenter --all -t <systemd>` (the user namespace
is the caller's and is skipped), after which the command joins the leaf cgroup
/runcell-test-client of each hierarchy (made again if systemd trimmed it: systemd 252 removes
empty foreign cgroups in the v1 hierarchies its root slice does not use, blkio and devices
here), as a shell on a systemd machine is in systemd's tree, never outside it. Note that
systemd also moves such stray processes to its root cgroup in some hierarchies (cpu,
devices) when it realizes a slice. Pids that commands print are systemd's pid namespace's;
host_pid() maps them to host pids, host_cgroup() maps cgroup paths seen inside to host
directories, cgroups_of() reads /proc/PID/cgroup inside.

stop() SIGKILLs systemd by pid (the kernel then kills everything in its pid namespace),
waits for unshare, removes the cgroup subtree bottom-up in every hierarchy (retrying while
it drains) and says what it could not clean. If the harness's own process dies first, its
systemd dies with it (PR_SET_PDEATHSIG on the starter, unshare --kill-child); the
orphaned empty subtree is swept by the next start() once it is 5 minutes old.
systemd_or_skip() gives a started harness, or skips saying why systemd cannot run here
(not root, no systemd/dbus-daemon/nsenter/unshare, no cgroup mounts, systemd's own log).

Limits: this is systemd in a container, not a booted host: no journald, udev, logind or
user sessions, no /etc units; the machine lacks CAP_SYS_RESOURCE (dbus-daemon logs that it
cannot raise its fd limit); the host's cgroup layout is used as it is (here cpu and cpuacct
are separate hierarchies, so systemd 252 logs that it cannot attach to cpuacct, and the
kernel has no blkio.weight); what runs inside sees the private /run (the host's /run/runc,
/run/runcell are hidden) and /tmp (only the bound directories).
"""
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import termios
import threading
import time
from pathlib import Path

SYSTEMD = Path("/lib/systemd/systemd")
DBUS_DAEMON = Path("/usr/bin/dbus-daemon")
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
SUBTREE_PREFIX = "runcell-test-systemd-"
CLIENT_CGROUP = "runcell-test-client"
TARGET = "runcell-test.target"


class SystemdUnavailable(Exception):
    """systemd cannot run here; the message says why."""


# ---------------------------------------------------------------------------------------
# The host's cgroup hierarchies


def _mountinfo():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.rstrip("\n").split(" - ", 1)
            fields, rfields = left.split(), right.split()
            yield fields[4], rfields[0], (rfields[2] if len(rfields) > 2 else "")


def host_hierarchies():
    """[(mount point, fstype, super options, key)] of the host's cgroup mounts: key is the
    hierarchy's controller list as /proc/self/cgroup names it ("cpu", "name=systemd",
    "" for cgroup2). A hierarchy mounted twice is listed once."""
    seen = set()
    result = []
    for mp, fstype, opts in _mountinfo():
        if fstype == "cgroup":
            ctrls = [o for o in opts.split(",") if o not in ("rw", "ro")]
            key = ",".join(sorted(c for c in ctrls if c in _v1_controllers() or
                                  c.startswith("name=")))
        elif fstype == "cgroup2":
            key = ""
        else:
            continue
        if key in seen:
            continue
        seen.add(key)
        result.append((mp, fstype, opts, key))
    return result


_V1 = None


def _v1_controllers():
    global _V1
    if _V1 is None:
        _V1 = set()
        with open("/proc/cgroups") as f:
            for line in f:
                if not line.startswith("#"):
                    _V1.add(line.split()[0])
    return _V1


def own_cgroups(pid="self"):
    """{key: path} from /proc/<pid>/cgroup, key as in host_hierarchies()."""
    result = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        result[",".join(sorted(ctrls.split(","))) if ctrls else ""] = path
    return result


def _die_with_parent():
    """In the starter (then unshare): SIGKILL when the harness's process dies, so a
    crashed test run leaves no systemd behind (unshare --kill-child passes it on)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def nspids(pid):
    """The pids of a process in each pid namespace from ours down (/proc/PID/status NSpid)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return [int(p) for p in line.split()[1:]]
    except OSError:
        pass
    return []


def _starttime(stat):
    return int(stat[stat.rindex(")") + 2:].split()[19])


def _rmdir_tree(path, deadline):
    """Removes a cgroup directory tree bottom-up, killing what is left in it (only processes
    this harness started can be there) and retrying while it drains."""
    path = Path(path)
    if not path.is_dir():
        return []
    problems = []
    dirs = sorted((Path(d) for d, _, _ in os.walk(path)), key=lambda p: len(p.parts),
                  reverse=True)
    for d in dirs:
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                try:
                    pids = (d / "cgroup.procs").read_text().split()
                except OSError:
                    pids = []
                for p in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(p), signal.SIGKILL)
                if time.monotonic() > deadline:
                    problems.append(f"cannot remove {d}: {e}")
                    break
                time.sleep(0.05)
    return problems


# ---------------------------------------------------------------------------------------
# Units and configuration

DBUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
</busconfig>
"""


def _units(base, log):
    return {
        TARGET: f"""[Unit]
Description=runcell test systemd ({base})
DefaultDependencies=no
Wants=dbus.socket dbus.service
After=dbus.socket dbus.service
AllowIsolate=yes
""",
        "dbus.socket": """[Unit]
Description=D-Bus System Message Bus Socket (runcell test systemd)
DefaultDependencies=no

[Socket]
ListenStream=/run/dbus/system_bus_socket
""",
        "dbus.service": f"""[Unit]
Description=D-Bus System Message Bus (runcell test systemd)
DefaultDependencies=no
Requires=dbus.socket
After=dbus.socket

[Service]
Type=notify
NotifyAccess=main
ExecStart={DBUS_DAEMON} --config-file={base}/dbus.conf --address=systemd: \\
  --nofork --nopidfile --nosyslog
StandardOutput=append:{log}
StandardError=append:{log}
""",
    }


# The script the starter runs as PID 1 of the new namespaces, before exec'ing systemd.
# $1: the harness directory, $2: the pty that becomes /dev/console; the rest: mount point,
# fstype, options of each hierarchy as triples, then "--", then the directories to keep
# visible, each as rw:PATH or ro:PATH (parents first).
_INNER = r"""
set -eu
base=$1; console=$2; shift 2
mount --make-rprivate /
mount -t proc -o nosuid,nodev,noexec proc /proc
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
# what the host mounted under /run, /tmp and /sys is hidden below the new mounts but
# would still be listed in mountinfo (and by systemd as mount units): detach it first
submounts() {
  awk -v p="$1/" 'substr($5, 1, length(p)) == p { print length($5), $5 }' \
    /proc/self/mountinfo | sort -rn | cut -d" " -f2-
}
hier=""
while [ "$1" != "--" ]; do hier="$hier $1:$2:$3"; shift 3; done
shift
submounts /run | while read -r mp; do umount -l "$mp" 2>/dev/null || true; done
mount -t tmpfs -o mode=755,nosuid,nodev,size=65536k tmpfs /run
mkdir /run/.rct-keep
i=0
for keep in "$@"; do
  i=$((i+1)); mkdir /run/.rct-keep/$i; mount --bind "${keep#*:}" /run/.rct-keep/$i
  if [ "${keep%%:*}" = ro ]; then mount -o remount,bind,ro /run/.rct-keep/$i; fi
done
submounts /tmp | while read -r mp; do umount -l "$mp" 2>/dev/null || true; done
mount -t tmpfs -o mode=1777,nosuid,nodev,size=65536k tmpfs /tmp
i=0
for keep in "$@"; do
  i=$((i+1)); mkdir -p "${keep#*:}"; mount --move /run/.rct-keep/$i "${keep#*:}"
done
rmdir /run/.rct-keep/* /run/.rct-keep
umount -l /sys
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /sys
case " $hier " in
  *" /sys/fs/cgroup:"*) split= ;;  # cgroup v2 only: the hierarchy is /sys/fs/cgroup
  *) split=1; mount -t tmpfs -o mode=755,nosuid,nodev,noexec,size=4096k cgroup /sys/fs/cgroup ;;
esac
for h in $hier; do
  mp=${h%%:*}; rest=${h#*:}; fstype=${rest%%:*}; opts=${rest#*:}
  mkdir -p "$mp"
  mount -t "$fstype" -o "$opts" "$fstype" "$mp"
done
# read-only, as under systemd-nspawn: systemd 252 in a container otherwise mounts the
# controllers the host left unmounted (net_cls, perf_event, hugetlb...) here, whose
# hierarchies' roots would be the host's, and makes the cpu,cpuacct symlinks
if [ -n "$split" ]; then
  mount -o remount,ro,nosuid,nodev,noexec,size=4096k,mode=755 /sys/fs/cgroup
fi
mount --bind "$console" /dev/console
# the harness moves unshare (outside this pid namespace) out of the subtree's root, so
# that systemd finds only its own processes there, then says go
read -r go
[ "$go" = go ]
exec </dev/null
exec env -i container=runcell-test TERM=dumb \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  SYSTEMD_UNIT_PATH="/run/systemd/transient:$base/units" \
  SYSTEMD_GENERATOR_PATH="$base/empty" SYSTEMD_ENVIRONMENT_GENERATOR_PATH="$base/empty" \
  SYSTEMD_PROC_CMDLINE="systemd.show_status=0" \
  SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_LEVEL="${RCT_SYSTEMD_LOG_LEVEL:-info}" \
  SYSTEMD_LOG_COLOR=0 \
  """ + str(SYSTEMD) + r""" --system --unit=""" + TARGET + r""" --show-status=0 \
  --log-target=console --default-standard-output=null --default-standard-error=null
"""

# Run by each command before it execs: joins the client cgroup of every hierarchy ($1 is
# the space-separated list of mount points). systemd trims empty cgroups it does not own
# in v1 hierarchies whose controllers its root slice does not use (blkio, devices here),
# so the client directory is made again when it is gone; failing that the command joins
# the namespace's root cgroup, never staying in the host's cgroup outside the subtree.
_JOIN = r"""
for d in $1; do
  c=$d/""" + CLIENT_CGROUP + r"""
  joined=
  for try in 1 2 3; do
    if [ ! -d "$c" ] && mkdir "$c" 2>/dev/null && [ -e "$c/cpuset.cpus" ]; then
      cat "$d/cpuset.cpus" >"$c/cpuset.cpus"; cat "$d/cpuset.mems" >"$c/cpuset.mems"
    fi
    if echo $$ 2>/dev/null >"$c/cgroup.procs"; then joined=1; break; fi
  done
  if [ -z "$joined" ] && ! echo $$ >"$d/cgroup.procs"; then
    echo "runcell-test systemd harness: cannot join a cgroup in $d" >&2
    exit 125
  fi
done
shift
exec "$@"
"""


# ---------------------------------------------------------------------------------------
# The harness


CGROUP_LAYOUTS = ("host", "v2")


class SystemdHarness:
    def __init__(self, base, visible=(), readonly=(), cgroup="host"):
        """cgroup: "host", systemd sees the host's hierarchies as they are (hybrid here);
        "v2", it sees only the host's cgroup2 hierarchy, mounted at /sys/fs/cgroup: a
        unified host (with the controllers the host's cgroup2 has)."""
        if cgroup not in CGROUP_LAYOUTS:
            raise ValueError(f"cgroup={cgroup!r}: want one of {CGROUP_LAYOUTS}")
        self.base = Path(base)
        self.visible = [str(Path(v).resolve()) for v in visible]
        self.readonly = [str(Path(v).resolve()) for v in readonly]
        self.cgroup = cgroup
        self.name = SUBTREE_PREFIX + secrets.token_hex(4)
        self.proc = None  # the unshare process, our child
        self.pid = None  # systemd, PID 1 of the namespaces, host pid
        # (mount point, fstype, options, key) as systemd sees them: the host's mount
        # points, but with cgroup="v2" (where cgroup2 is at /sys/fs/cgroup inside)
        self.hierarchies = []
        self.host_mounts = {}  # mount point inside -> the host's mount point
        self.subtrees = {}  # mount point inside -> host path of the subtree root
        self.origins = {}  # mount point inside -> host path of the starter's own cgroup
        self.log_path = self.base / "console.log"
        self.console_path = None
        self._console = None
        self._console_thread = None

    # --- lifetime
    def check_prerequisites(self):
        if os.geteuid() != 0:
            raise SystemdUnavailable("a private systemd needs root")
        for tool in (SYSTEMD, DBUS_DAEMON, Path(NSENTER), Path(UNSHARE)):
            if not os.access(tool, os.X_OK):
                raise SystemdUnavailable(f"{tool} is not installed (apt-get install systemd "
                                         "dbus util-linux)")
        hierarchies = host_hierarchies()
        if not hierarchies:
            raise SystemdUnavailable("no cgroup hierarchy is mounted on this host")
        if self.cgroup == "v2":
            hierarchies = [h for h in hierarchies if h[1] == "cgroup2"]
            if not hierarchies:
                raise SystemdUnavailable("this host has no cgroup2 hierarchy to show systemd "
                                         "as a unified host")
            mp, fstype, opts, key = hierarchies[0]
            self.hierarchies = [("/sys/fs/cgroup", fstype, opts, key)]
            self.host_mounts = {"/sys/fs/cgroup": mp}
        else:
            self.hierarchies = hierarchies
            self.host_mounts = {mp: mp for mp, _, _, _ in hierarchies}
        for mp in self.host_mounts.values():
            if not mp.startswith("/sys/fs/cgroup"):
                raise SystemdUnavailable(f"cgroup hierarchy mounted at {mp}, outside "
                                         "/sys/fs/cgroup: cannot give systemd the same layout")

    def _sweep_stale(self, min_age=300):
        """Removes the subtrees of harnesses whose process died without stop() (their
        systemd went with them: PR_SET_PDEATHSIG, unshare --kill-child): a
        runcell-test-systemd-* directory with no process anywhere below it, older than
        min_age seconds (a live harness always has its systemd in every hierarchy)."""
        own = own_cgroups()
        now = time.time()
        for mp, fstype, _, key in self.hierarchies:
            mp = self.host_mounts[mp]
            parent = Path(mp) if fstype == "cgroup2" else Path(mp + own.get(key, "/").rstrip("/"))
            try:
                candidates = [d for d in parent.iterdir()
                              if d.name.startswith(SUBTREE_PREFIX) and d.is_dir()]
            except OSError:
                continue
            for d in candidates:
                try:
                    if now - d.stat().st_ctime < min_age or any(
                            Path(dirpath, "cgroup.procs").read_text().strip()
                            for dirpath, _, _ in os.walk(d)):
                        continue
                except OSError:
                    continue
                _rmdir_tree(d, time.monotonic() + 2)

    def _make_subtrees(self):
        own = own_cgroups()
        for mp, fstype, _, key in self.hierarchies:
            rel = own.get(key)
            if rel is None:
                raise SystemdUnavailable(f"/proc/self/cgroup has no entry for {mp}")
            host_mp = self.host_mounts[mp]
            self.origins[mp] = Path(host_mp + rel.rstrip("/"))
            if fstype == "cgroup2":
                # under the root, which alone may both hold processes (the caller's own
                # cgroup does) and hand controllers down to a child
                rel = "/"
            root = Path(host_mp + rel.rstrip("/")) / self.name
            self.subtrees[mp] = root
            for d in (root, root / CLIENT_CGROUP):
                d.mkdir()
                if Path(d, "cpuset.cpus").exists():
                    # a v1 cpuset child starts empty and takes no task until it has both
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        Path(d, f).write_text(Path(d.parent, f).read_text())

    def start(self, timeout=30):
        self.check_prerequisites()
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "units").mkdir(exist_ok=True)
        (self.base / "empty").mkdir(exist_ok=True)
        self.log_path.touch()
        (self.base / "dbus.conf").write_text(DBUS_CONF)
        for name, text in _units(self.base, self.log_path).items():
            (self.base / "units" / name).write_text(text)
        self._sweep_stale()
        try:
            self._make_subtrees()
        except OSError as e:
            self._remove_subtrees()
            raise SystemdUnavailable(f"cannot make the cgroup subtree: {e}") from None

        self._open_console()
        args = [str(self.base), self.console_path]
        for mp, fstype, opts, _ in self.hierarchies:
            args += [mp, fstype, ",".join(o for o in opts.split(",") if o not in ("ro",))]
        args.append("--")
        args += self._kept()
        procs = " ".join(str(root / "cgroup.procs") for root in self.subtrees.values())
        starter = (f'for f in {procs}; do echo $$ >"$f"; done; exec {UNSHARE} --pid --mount '
                   '--cgroup --uts --ipc --net --fork --kill-child=SIGKILL --propagation private '
                   '-- /bin/sh -c "$0" sh "$@"')
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(["/bin/sh", "-c", starter, _INNER, *args],
                                         stdin=subprocess.PIPE, stdout=log, stderr=log,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        finally:
            log.close()
        try:
            self._release(timeout)
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _open_console(self):
        """A pty for systemd's /dev/console (it logs there, and only to a terminal, as
        under systemd-nspawn); a thread copies what it writes into log_path."""
        master, slave = os.openpty()
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.OPOST  # no \n -> \r\n
        attrs[3] &= ~(termios.ECHO | termios.ICANON)
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self._console = (master, slave)
        self.console_path = os.ttyname(slave)

        def copy():
            with open(self.log_path, "ab", buffering=0) as log:
                while True:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        return
                    if not data:
                        return
                    log.write(data)

        self._console_thread = threading.Thread(target=copy, daemon=True,
                                                name="systemd-console")
        self._console_thread.start()

    def _close_console(self):
        if self._console is None:
            return
        master, slave = self._console
        self._console = None
        os.close(slave)  # the copier reads EIO once no one has the slave open
        self._console_thread.join(timeout=5)
        os.close(master)

    def _kept(self):
        """rw:PATH / ro:PATH for each directory under /tmp or /run (which the private
        tmpfs mounts replace; the rest of the file system is the host's) that must stay
        visible: the harness directory, `visible`, `readonly`; parents first, none twice."""
        def hidden(path):
            return any(path == d or path.startswith(d + "/") for d in ("/tmp", "/run"))

        def covered(path, by):
            return any(path == b or path.startswith(b.rstrip("/") + "/") for b in by)

        rw = [str(self.base.resolve()), *self.visible]
        entries = []
        for mode, paths in (("rw", rw), ("ro", self.readonly)):
            for path in paths:
                if hidden(path) and not any(p == path for _, p in entries) and not (
                        mode == "rw" and covered(path, [p for m, p in entries if m == "rw"])):
                    entries.append((mode, path))
        entries.sort(key=lambda e: e[1].count("/"))
        return [f"{mode}:{path}" for mode, path in entries]

    def _release(self, timeout):
        """Once unshare has forked systemd's PID 1, moves unshare back to the cgroups the
        starter came from and lets PID 1 go on."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SystemdUnavailable(
                    f"the namespaces could not be set up (exit {self.proc.returncode}):\n"
                    + self.log_tail())
            self.pid = self._find_pid1()
            if self.pid is not None:
                break
            if time.monotonic() > deadline:
                raise SystemdUnavailable(f"unshare forked no PID 1 within {timeout}s")
            time.sleep(0.01)
        for mp in self.subtrees:
            Path(self.origins[mp], "cgroup.procs").write_text(str(self.proc.pid))
        try:
            self.proc.stdin.write(b"go\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def _find_pid1(self):
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            with contextlib.suppress(OSError):
                children = (task / "children").read_text().split()
                if children:
                    return int(children[0])
        return None

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            if self.proc.poll() is not None:
                raise SystemdUnavailable(
                    f"systemd exited ({self.proc.returncode}) before it answered:\n"
                    + self.log_tail())
            if self._comm(self.pid) == "systemd":
                res = self.run(["busctl", "--system", "call", "org.freedesktop.systemd1",
                                "/org/freedesktop/systemd1", "org.freedesktop.DBus.Peer",
                                "Ping"], timeout=10)
                if res.returncode == 0:
                    state = self.run(["systemctl", "is-system-running"], timeout=10)
                    last = state.stdout.strip()
                    if last in ("running", "degraded"):
                        bad = self.unexpected_cgroup_mounts()
                        if bad:  # the read-only /sys/fs/cgroup should prevent it
                            raise RuntimeError(
                                "systemd mounted cgroup hierarchies the host has not: "
                                + ", ".join(bad))
                        return
                else:
                    last = res.stderr.strip()
            if time.monotonic() > deadline:
                raise SystemdUnavailable(
                    f"systemd did not answer on its bus within {timeout}s (last: {last!r}):\n"
                    + self.log_tail())
            time.sleep(0.05)

    @staticmethod
    def _comm(pid):
        try:
            return Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return None

    def log_tail(self, lines=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        """Kills systemd and everything in its namespaces, removes the cgroup subtree.
        Returns a list of problems (empty when all is clean)."""
        problems = []
        if self.pid is None and self.proc is not None and self.proc.poll() is None:
            self.pid = self._find_pid1()
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                problems.append("unshare did not exit after its child was killed")
        problems += self._remove_subtrees()
        self._close_console()
        # every mount was made in the private mount namespace, none may show here
        base = str(self.base.resolve())
        problems += [f"host mount {mp}" for mp, _, _ in _mountinfo()
                     if mp == base or mp.startswith(base + "/") or SUBTREE_PREFIX in mp]
        return problems

    def _remove_subtrees(self):
        problems = []
        deadline = time.monotonic() + 10
        for root in self.subtrees.values():
            problems += _rmdir_tree(root, deadline)
        return problems

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        problems = self.stop()
        if problems and exc[0] is None:
            raise RuntimeError("systemd harness left behind: " + "; ".join(problems))

    # --- running things inside
    def argv(self, cmd):
        """The argv that runs cmd (a list) inside systemd's namespaces and client cgroup."""
        mps = " ".join(mp for mp, _, _, _ in self.hierarchies)
        return [NSENTER, "-t", str(self.pid), "--all", "--", "/bin/sh", "-c", _JOIN, "sh",
                mps, *map(str, cmd)]

    def run(self, cmd, check=False, timeout=30, input=None, env=None):
        """Runs cmd inside; returns subprocess.CompletedProcess with text stdout/stderr.
        Its output goes to temporary files, not pipes, so a detached container that
        inherits them keeps nobody waiting; after `timeout` seconds it is killed
        (subprocess.TimeoutExpired)."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(
                self.argv(cmd), stdout=out, stderr=err, env=env, start_new_session=True,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL)
            try:
                if input is not None:
                    proc.stdin.write(input.encode() if isinstance(input, str) else input)
                    proc.stdin.close()
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
            out.seek(0)
            err.seek(0)
            res = subprocess.CompletedProcess(proc.args, rc,
                                              out.read().decode(errors="replace"),
                                              err.read().decode(errors="replace"))
        if check:
            res.check_returncode()
        return res

    def systemctl(self, *args, check=False):
        return self.run(["systemctl", "--no-pager", *args], check=check)

    def show(self, unit, *props):
        """`systemctl show -p ... unit` as a dict (every property when none is named); a
        property listed once per value (DeviceAllow) has its values joined by newlines."""
        args = ["show", unit] + [f"--property={p}" for p in props]
        res = self.systemctl(*args)
        if res.returncode != 0:
            raise AssertionError(f"systemctl show {unit}: {res.stderr}")
        out = {}
        for line in res.stdout.splitlines():
            k, _, v = line.partition("=")
            out[k] = out[k] + "\n" + v if k in out else v  # DeviceAllow= comes once a rule
        return out

    def units_matching(self, pattern):
        """Names of units systemd has loaded (any state) matching a glob."""
        res = self.systemctl("list-units", "--all", "--plain", "--no-legend", pattern)
        return [line.split()[0] for line in res.stdout.splitlines() if line.strip()]

    # --- mapping between systemd's namespaces and the host
    def host_cgroup(self, mountpoint, path):
        """The host directory of cgroup `path` (as seen inside, e.g. /system.slice/x.scope)
        in the hierarchy mounted at `mountpoint` (e.g. /sys/fs/cgroup/memory)."""
        return self.subtrees[mountpoint] / str(path).lstrip("/")

    def mountpoint_of(self, controller):
        """The mount point of the hierarchy holding a controller ("memory",
        "name=systemd"), a v1 hierarchy first; "" (cgroup2) gives the cgroup2 mount."""
        v2 = None
        for mp, fstype, _, key in self.hierarchies:
            if fstype == "cgroup2":
                v2 = mp
                if controller == "":
                    return mp
            elif controller in key.split(","):
                return mp
        if v2 is not None and controller in self.v2_controllers():
            return v2
        return None

    def v2_controllers(self):
        """The controllers systemd's cgroup2 root offers (its subtree root's
        cgroup.controllers: what the host's root hands down), [] without cgroup2."""
        for mp, fstype, _, _ in self.hierarchies:
            if fstype == "cgroup2":
                root = self.subtrees.get(mp) or Path(self.host_mounts[mp])
                return Path(root, "cgroup.controllers").read_text().split()
        return []

    @property
    def unified(self):
        """Whether systemd sees a unified (cgroup v2 only) host."""
        return [fstype for _, fstype, _, _ in self.hierarchies] == ["cgroup2"]

    @property
    def tracking_key(self):
        """The /proc/PID/cgroup key (as cgroups_of() gives) of the hierarchy systemd tracks
        its units' processes in: "name=systemd" on a hybrid or v1 host, "" on a unified."""
        keys = [key for _, _, _, key in self.hierarchies]
        return "name=systemd" if "name=systemd" in keys else ""

    def cgroup_dirs_containing(self, text):
        """Host directories in systemd's cgroup subtree whose name contains text."""
        found = []
        for root in self.subtrees.values():
            for dirpath, dirnames, _ in os.walk(root):
                found += [os.path.join(dirpath, d) for d in dirnames if text in d]
        return found

    def cgroups_of(self, ns_pid):
        """/proc/<ns_pid>/cgroup read inside: {key: path}, key as in host_hierarchies()
        ("memory", "name=systemd", "" for cgroup2); {} once the process is gone."""
        res = self.run(["cat", f"/proc/{ns_pid}/cgroup"])
        result = {}
        for line in res.stdout.splitlines():
            _, ctrls, path = line.split(":", 2)
            result[",".join(sorted(ctrls.split(","))) if ctrls else ""] = path
        return result

    def host_pid(self, ns_pid):
        """The host pid of the process whose pid in systemd's pid namespace is ns_pid (it
        may be in a namespace below, a container's), or None when it is gone: the one
        whose NSpid has ns_pid at systemd's level and the same start time."""
        res = self.run(["cat", f"/proc/{int(ns_pid)}/stat"])
        if res.returncode != 0:
            return None
        start = _starttime(res.stdout)
        level = len(nspids("self"))  # systemd's pid namespace is one below ours
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pids = nspids(entry)
            if len(pids) > level and pids[level] == int(ns_pid):
                try:
                    if _starttime(Path(f"/proc/{entry}/stat").read_text()) == start:
                        return int(entry)
                except OSError:
                    continue
        return None

    def mounts_inside(self):
        """[(mount point, fstype)] of systemd's mount namespace."""
        res = self.run(["cat", "/proc/self/mountinfo"], check=True)
        out = []
        for line in res.stdout.splitlines():
            left, right = line.split(" - ", 1)
            out.append((left.split()[4], right.split()[0]))
        return out

    def unexpected_cgroup_mounts(self):
        ours = {mp for mp, _, _, _ in self.hierarchies}
        return [mp for mp, fstype in self.mounts_inside()
                if fstype in ("cgroup", "cgroup2") and mp not in ours]


@contextlib.contextmanager
def systemd_or_skip(base, visible=(), readonly=(), cgroup="host"):
    """A started SystemdHarness, or pytest.skip with the reason it cannot start here."""
    import pytest

    harness = SystemdHarness(base, visible, readonly, cgroup=cgroup)
    try:
        harness.start()
    except SystemdUnavailable as e:
        pytest.skip(f"no private systemd here: {e}")
    try:
        yield harness
    finally:
        problems = harness.stop()
        if problems:
            pytest.fail("systemd harness left behind: " + "; ".join(problems), pytrace=False)
