"""/dev/console in a container whose process has a terminal.

runc makes /dev/console the container's pty (the pty slave bound over a file it creates in
the container's /dev), so /dev/console is the same character device as the process's stdin;
programs such as systemd and agetty, and anything that writes to /dev/console, expect it.
`exec --tty` leaves /dev/console alone, and a container without a terminal has none.

CVE-2025-52565: runc bound the path /dev/pts/N onto the path /dev/console, both looked up
in the container, before maskedPaths and readonlyPaths; whoever could put a symlink at
either got a writable copy of /proc/sysrq-trigger or core_pattern. runcell binds the pty by
its descriptor onto a regular file it has just created (by descriptor, never following
what was there). Here a createContainer hook (in the container's mount namespace before
pivot_root, cwd the rootfs) stands in for the racing attacker and leaves a symlink to
/proc/sysrq-trigger, to core_pattern, to a host file, a directory or a bind of a host file
at /dev/console. runc 1.1.5 runs the same attacks as a reference (xfail: it follows them).

No test ever writes to /proc/sysrq-trigger or core_pattern: the attacks only try to open
them for writing (`: > file` writes nothing), and only host canaries are written.
"""
import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from helpers import set_mode
from test_namespaces import _userns_bundle
from test_stdio import ConsoleSocket, _run_in_pty, read_until_eof

MODES = ["native", "cell"]
PTY_SLAVE_MAJORS = range(136, 144)

# Facts about /dev/console, one "key value" line each. busybox stat without -L does not
# follow a symlink; %t:%T is major:minor in hex.
FACTS = r"""
echo "type $(stat -c %F /dev/console 2>&1)"
echo "dev $(stat -L -c %t:%T /dev/console 2>&1)"
echo "stdin $(stat -L -c %t:%T /proc/self/fd/0)"
if [ "$(stat -L -c %d:%i /dev/console)" = "$(stat -L -c %d:%i /proc/self/fd/0)" ]; then
  echo "same-as-stdin yes"; else echo "same-as-stdin no"; fi
echo "mounts $(grep -c ' /dev/console ' /proc/self/mountinfo)"
echo "fstype $(grep ' /dev/console ' /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1)"
if [ -w /dev/console ]; then echo "writable yes"; else echo "writable no"; fi
echo "to-the-console-$$" > /dev/console && echo "wrote $$"
"""


def facts(lines):
    """{key: value} of the FACTS lines in a container's output."""
    out = {}
    for line in lines:
        key, _, value = line.partition(" ")
        if key in ("type", "dev", "stdin", "same-as-stdin", "mounts", "fstype", "writable",
                   "wrote"):
            out[key] = value
    return out


def hexdev(text):
    major, minor = text.split(":")
    return int(major, 16), int(minor, 16)


@contextlib.contextmanager
def console_socket():
    # a short directory of its own: a unix socket's path has a 108-byte limit, which the
    # per-test work directories of parametrized tests can pass
    d = Path(tempfile.mkdtemp(prefix="rct-cs-", dir="/tmp"))
    server = ConsoleSocket(d / "s")
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(d, ignore_errors=True)


def run_with_terminal(harness, bundle, script, *extra, log=None):
    """Creates the bundle with a terminal and a console socket (extra: more create
    arguments), starts it and reads its pty until it ends. Returns (create's Result, output
    lines or None when create failed). log: a file for create's debug log."""
    bundle.process["terminal"] = True
    bundle.sh(script)
    bundle.write()
    with console_socket() as server:
        cid = harness.new_id()
        debug = ["--debug", "--log", log] if log else []
        res = harness(*debug, "create", "--bundle", bundle.path, "--pid-file",
                      harness.pid_file(cid), "--console-socket", server.path, *extra, cid)
        if res.rc != 0:
            return res, None
        harness.note_pid(harness.pid_file(cid).read_text())
        messages = server.wait()
        assert len(messages) == 1 and len(messages[0][1]) == 1, messages
        master = messages[0][1][0]
        harness.start_ok(cid)
        out = read_until_eof(master).decode(errors="replace")
        harness.wait_status(cid, "stopped")
        return res, [line.strip() for line in out.splitlines()]


@contextlib.contextmanager
def terminal_sleeper(harness, bundle):
    """A running container whose init (sleep) has a terminal; yields its id."""
    bundle.process["terminal"] = True
    bundle.args("sleep", "100")
    with console_socket() as server:
        cid = harness.create_ok(bundle, "--console-socket", server.path)
        assert len(server.wait()) == 1
        harness.start_ok(cid)
        # the master stays open (server holds it) while the test runs
        yield cid
        assert harness.kill(cid, "KILL").rc == 0


def runtime(request, which):
    return request.getfixturevalue("runc_h" if which == "runc" else "h")


# ---------------------------------------------------------------------------------------
# What /dev/console is, next to runc


def assert_console_is_the_pty(f, lines):
    assert f.get("type") == "character special file", lines
    major, _ = hexdev(f["dev"])
    assert major in PTY_SLAVE_MAJORS, lines
    assert f["dev"] == f["stdin"] and f["same-as-stdin"] == "yes", lines
    assert f["mounts"] == "1" and f["fstype"] == "devpts", lines
    assert f["writable"] == "yes", lines
    # what was written to /dev/console arrived on the console socket's master
    assert f.get("wrote") and f"to-the-console-{f['wrote']}" in lines, lines


@pytest.mark.differential
@pytest.mark.parametrize("variant", ["plain", "user-namespace", "no-pivot"])
@pytest.mark.parametrize("mode", MODES)
def test_terminal_container_has_its_pty_as_dev_console_like_runc(h, runc_h, mode, variant):
    seen = {}
    for name, harness in (("runc", runc_h), ("runcell", h)):
        bundle = harness.bundle()
        set_mode(bundle, mode)
        if variant == "user-namespace":
            _userns_bundle(bundle)
        extra = ["--no-pivot"] if variant == "no-pivot" else []
        res, lines = run_with_terminal(harness, bundle, FACTS, *extra)
        assert lines is not None, f"{name}: {res.describe()}"
        f = facts(lines)
        assert_console_is_the_pty(f, lines)
        f.pop("wrote")  # the shell's pid
        seen[name] = f
    assert seen["runcell"] == seen["runc"]


@pytest.mark.differential
@pytest.mark.parametrize("mode", MODES)
def test_no_dev_console_without_a_terminal_like_runc(h, runc_h, mode):
    script = ("ls -la /dev/console 2>&1; echo \"mounts $(grep -c ' /dev/console ' "
              "/proc/self/mountinfo)\"; true")
    seen = {}
    for name, harness in (("runc", runc_h), ("runcell", h)):
        bundle = harness.bundle()
        set_mode(bundle, mode)
        bundle.sh(script)
        res = harness.run_container(bundle)
        assert res.rc == 0, f"{name}: {res.describe()}"
        seen[name] = res.out + res.err
    assert "No such file or directory" in seen["runc"] and "mounts 0" in seen["runc"]
    assert seen["runcell"] == seen["runc"]


EXEC_SCRIPT = ("echo \"tty $(tty)\"; echo \"console $(stat -L -c %t:%T /dev/console 2>&1)\"; "
               "echo \"stdin $(stat -L -c %t:%T /proc/self/fd/0)\"; "
               "echo \"mounts $(grep -c ' /dev/console ' /proc/self/mountinfo)\"")


def exec_tty_facts(harness, cid):
    status, out = _run_in_pty(harness.rt.argv("exec", "--tty", cid, "sh", "-c", EXEC_SCRIPT))
    assert status == 0, out
    return dict(line.strip().split(" ", 1) for line in out.splitlines()
                if line.strip().split(" ")[0] in ("tty", "console", "stdin", "mounts"))


@pytest.mark.differential
@pytest.mark.parametrize("mode", MODES)
def test_exec_tty_leaves_dev_console_alone_like_runc(h, runc_h, mode):
    """`exec --tty` gets a pty of its own; /dev/console stays the init's (or stays absent
    in a container without a terminal), as with runc."""
    seen = {}
    for name, harness in (("runc", runc_h), ("runcell", h)):
        bundle = harness.bundle()
        set_mode(bundle, mode)
        with terminal_sleeper(harness, bundle) as cid:
            with_terminal = exec_tty_facts(harness, cid)
        plain = harness.bundle()
        set_mode(plain, mode)
        plain.args("sleep", "100")
        cid = harness.run_detached(plain)
        without = exec_tty_facts(harness, cid)
        assert harness.kill(cid, "KILL").rc == 0
        seen[name] = (with_terminal, without)
    with_terminal, without = seen["runcell"]
    # the init's pty is pts/0; the exec'd process has pts/1, and /dev/console is still pts/0
    assert with_terminal["tty"] == "/dev/pts/1", with_terminal
    assert hexdev(with_terminal["console"])[1] == 0 and with_terminal["mounts"] == "1"
    assert with_terminal["stdin"] != with_terminal["console"], with_terminal
    assert "No such file or directory" in without["console"] and without["mounts"] == "0"
    assert seen["runcell"] == seen["runc"]


# ---------------------------------------------------------------------------------------
# CVE-2025-52565: what a hook leaves at /dev/console is never followed

CANARY = "canary: the host's own\n"


def host_canary(directory):
    """A host directory any container user may use, holding a canary file (CANARY) that
    an attack must leave as it is: (directory, canary)."""
    directory.mkdir(mode=0o777)
    canary = directory / "canary"
    canary.write_text(CANARY)
    os.chmod(canary, 0o666)
    return directory, canary
# kernels without CONFIG_MAGIC_SYSRQ have none: the link to it then dangles
SYSRQ = os.path.exists("/proc/sysrq-trigger")


def attack_script(attack, canary):
    """The createContainer hook's shell script (cwd: the rootfs, before pivot_root)."""
    return {
        "symlink-sysrq": "ln -s /proc/sysrq-trigger dev/console",
        "symlink-core-pattern": "ln -s /proc/sys/kernel/core_pattern dev/console",
        # through the bind of the host directory at /hostdir: a host file
        "symlink-host-canary": "ln -s /hostdir/canary dev/console",
        "bind-host-canary": f"touch dev/console && mount --bind {canary} dev/console",
        "directory": "mkdir dev/console",
        "relative-symlink-up": "ln -s ../../../../../../proc/sysrq-trigger dev/console",
    }[attack]


ATTACKS = ["symlink-sysrq", "symlink-core-pattern", "symlink-host-canary", "bind-host-canary",
           "directory", "relative-symlink-up"]
RUNC_FOLLOWS = pytest.mark.xfail(
    strict=False,
    reason="runc 1.1.5 opens /dev/console with O_CREAT|O_TRUNC and binds /dev/pts/N onto it "
           "by path, following whatever is there (CVE-2025-52565; fixed in runc 1.2.8)")


def attack_params():
    params = []
    for attack in ATTACKS:
        for which in ("native", "cell"):
            params.append(pytest.param(which, attack, id=f"{which}-{attack}",
                                       marks=pytest.mark.runcell_specific))
        if attack != "directory":  # runc simply fails there (EISDIR)
            params.append(pytest.param("runc", attack, id=f"runc-{attack}", marks=RUNC_FOLLOWS))
    return params


ATTACK_CHECKS = r"""
ls -ld /dev/console
grep -E ' /proc/(sysrq-trigger|sys|sys/kernel/core_pattern) ' /proc/self/mountinfo | \
  sed 's/^[0-9]* [0-9]* [0-9:]* [^ ]* \([^ ]*\) .* - \([^ ]*\) .*/mount \1 \2/'
for f in /proc/sysrq-trigger /proc/sys/kernel/core_pattern; do
  ( : > "$f" ) 2>/dev/null && echo "OPENED $f"
done
# a regular file only: were the pty bound over it, reading would wait for input
if [ -f /hostdir/canary ]; then echo "canary $(cat /hostdir/canary)"; else
  echo "canary is now $(stat -c %F /hostdir/canary)"; fi
true
"""


@pytest.mark.parametrize("which,attack", attack_params())
def test_cve_2025_52565_dev_console_swapped_by_a_hook_is_not_followed(
        request, workdir, which, attack):
    harness = runtime(request, which)
    host, canary = host_canary(workdir / f"host-{which}")
    core_pattern = Path("/proc/sys/kernel/core_pattern").read_text()
    bundle = harness.bundle()
    if which != "runc":
        set_mode(bundle, which)
    bundle.bind(host, "/hostdir")
    saw = host / "hook-saw"
    bundle.config["hooks"] = {"createContainer": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", f"rm -rf dev/console; {attack_script(attack, canary)} && "
                             f"ls -ld dev/console > {saw}"]}]}
    res, lines = run_with_terminal(harness, bundle, FACTS + ATTACK_CHECKS)
    # the precondition: the hook really left its entry at /dev/console in the container
    assert saw.exists(), res.describe()
    hook_saw = saw.read_text()
    assert hook_saw[0] == ("d" if attack == "directory" else "-" if attack.startswith("bind")
                           else "l"), hook_saw
    assert lines is not None, f"create failed: {res.describe()}"
    f = facts(lines)
    assert_console_is_the_pty(f, lines)
    assert not [line for line in lines if line.startswith("OPENED")], lines
    # the pty went onto /dev/console only: never over a /proc file
    mounts = [line.split()[1:] for line in lines if line.startswith("mount ")]
    if SYSRQ:
        assert ["/proc/sysrq-trigger", "proc"] in mounts, lines
    assert ["/proc/sys", "proc"] in mounts, lines
    assert all(fstype == "proc" for _, fstype in mounts), lines
    assert f"canary {CANARY.strip()}" in lines, lines
    assert canary.read_text() == CANARY
    assert Path("/proc/sys/kernel/core_pattern").read_text() == core_pattern


RACE_CREATES = 20


@pytest.mark.runcell_specific
@pytest.mark.parametrize("mode", MODES)
def test_cve_2025_52565_dev_console_swapped_while_runcell_makes_it(h, workdir, mode):
    """The hook leaves a process behind in the container's mount namespace that keeps
    replacing /dev/console with a symlink to a host file (through a bind) or to
    core_pattern while runcell sets up the container. Each create either gives the
    container its pty at /dev/console or fails saying why; nothing is ever followed.
    Precondition: runcell's debug log shows that it met (and removed) the racer's symlink
    at least once (about one create in three here)."""
    host, canary = host_canary(workdir / "host")
    core_pattern = Path("/proc/sys/kernel/core_pattern").read_text()
    bundle = h.bundle()
    set_mode(bundle, mode)
    bundle.bind(host, "/hostdir")
    swaps = host / "swaps"
    racer = ("i=0; while [ $i -lt 400 ]; do "
             "rm -rf dev/console; ln -s /hostdir/canary dev/console; "
             "rm -rf dev/console; ln -s /proc/sys/kernel/core_pattern dev/console; "
             f"i=$((i+1)); echo $i > {swaps}; done")
    hook_ran = host / "hook-ran"
    bundle.config["hooks"] = {"createContainer": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", f"echo > {hook_ran}; ( {racer} ) </dev/null >/dev/null 2>&1 & "
                             "sleep 0.02"]}]}
    outcomes = {}
    met = raced = 0
    for i in range(RACE_CREATES):
        swaps.unlink(missing_ok=True)
        hook_ran.unlink(missing_ok=True)
        log = workdir / f"create-{i}.log"
        res, lines = run_with_terminal(h, bundle, FACTS + ATTACK_CHECKS, log=log)
        met += "/dev/console: removed what was there (mode 120777)" in log.read_text()
        # the hook ran, where it could reach the host's files, on every create: only the
        # racer's scheduling may fail to line up with the set-up
        assert hook_ran.exists(), res.describe()
        # whether the racer got through a round while the container was set up: under
        # load (a CI run with other work on 2 CPUs) it may not have been scheduled in time
        raced += swaps.exists()
        if lines is None:
            assert "/dev/console" in res.msg, res.describe()
            key = res.msg.split("/dev/console: ", 1)[-1]
        else:
            assert_console_is_the_pty(facts(lines), lines)
            assert not [line for line in lines if line.startswith("OPENED")], lines
            key = "the pty"
        outcomes[key] = outcomes.get(key, 0) + 1
        assert canary.read_text() == CANARY
        assert Path("/proc/sys/kernel/core_pattern").read_text() == core_pattern
    if not met and not raced:
        pytest.skip(f"the racer never completed a round during any of {RACE_CREATES} creates "
                    f"(the machine too loaded to schedule it in time): nothing was raced")
    assert met, (f"the racer ran during {raced} of {RACE_CREATES} creates, but runcell never "
                 f"met its symlink at /dev/console: {outcomes}")
    print(f"met the symlink {met} times in {RACE_CREATES} (the racer ran in {raced}); "
          f"outcomes: {outcomes}")


@pytest.mark.runcell_specific
@pytest.mark.parametrize("mode", MODES)
def test_cve_2025_52565_directory_with_entries_at_dev_console_is_refused(h, mode, host_dir):
    """runcell removes an empty directory at /dev/console but does not walk a tree the
    container prepared: create fails, saying why, and leaves nothing behind."""
    bundle = h.bundle()
    set_mode(bundle, mode)
    bundle.config["hooks"] = {"createContainer": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", "mkdir -p dev/console/sub && ln -s /proc/sysrq-trigger "
                             "dev/console/link"]}]}
    res, lines = run_with_terminal(h, bundle, "true")
    assert lines is None and res.rc != 0, res.describe()
    assert "/dev/console is a directory with entries" in res.msg, res.describe()


def dev_snapshot(path):
    """Every entry of a host directory, as lstat shows it, with link targets."""
    entries = {}
    for name in sorted(os.listdir(path)):
        st = os.lstat(path / name)
        entries[name] = (stat.S_IFMT(st.st_mode), st.st_mode, st.st_rdev, st.st_size,
                         st.st_mtime_ns, os.readlink(path / name) if stat.S_ISLNK(st.st_mode)
                         else None)
    st = os.stat(path)
    return entries, st.st_mtime_ns, st.st_ctime_ns


@pytest.mark.parametrize("which", [
    pytest.param("native", marks=pytest.mark.runcell_specific),
    pytest.param("cell", marks=pytest.mark.runcell_specific),
    pytest.param("runc", marks=RUNC_FOLLOWS),
])
def test_cve_2025_52565_host_dev_bind_with_a_console_link_is_left_alone(
        request, workdir, which):
    """/dev bound from a host directory (no tmpfs): its entries are the caller's. Its
    `console` is a symlink to a host file (through another bind): runcell creates and
    removes nothing there, follows nothing, and the container still has its terminal."""
    harness = runtime(request, which)
    host, canary = host_canary(workdir / f"hostdir-{which}")
    dev = workdir / f"hostdev-{which}"
    dev.mkdir()
    for d in ("pts", "shm", "mqueue"):
        (dev / d).mkdir()
    os.mknod(dev / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(dev / "null", 0o666)
    os.symlink("pts/ptmx", dev / "ptmx")
    os.symlink("/hostdir/canary", dev / "console")
    before = dev_snapshot(dev)

    bundle = harness.bundle()
    if which != "runc":
        set_mode(bundle, which)
    mounts = bundle.config["mounts"]
    i = next(i for i, m in enumerate(mounts) if m["destination"] == "/dev")
    mounts[i] = {"destination": "/dev", "type": "bind", "source": str(dev),
                 "options": ["rbind", "nosuid"]}
    bundle.bind(host, "/hostdir")
    res, lines = run_with_terminal(harness, bundle, "tty; ls -l /dev/console; " + ATTACK_CHECKS)
    assert lines is not None, f"create failed: {res.describe()}"
    assert "/dev/pts/0" in lines, lines
    assert not [line for line in lines if line.startswith("OPENED")], lines
    assert canary.read_text() == CANARY
    assert dev_snapshot(dev) == before
    assert os.readlink(dev / "console") == "/hostdir/canary"


@pytest.mark.runcell_specific
@pytest.mark.parametrize("mode", MODES)
def test_dev_console_replaces_what_the_image_and_devices_put_there(h, mode):
    """A config without a /dev tmpfs, whose image ships /dev/console as a character device
    (debootstrap images have 5:1), and a linux.devices entry for it (Docker's --privileged
    lists the host's /dev/console): in both, the container's /dev/console is its pty."""
    bundle = h.bundle()
    set_mode(bundle, mode)
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/dev"]
    bundle.linux["devices"] = [{"path": "/dev/console", "type": "c", "major": 5, "minor": 1,
                                "fileMode": 0o600, "uid": 0, "gid": 0}]
    bundle.linux["resources"]["devices"] = [{"allow": False, "access": "rwm"}]
    os.mknod(bundle.rootfs / "dev" / "console", 0o600 | stat.S_IFCHR, os.makedev(5, 1))
    res, lines = run_with_terminal(h, bundle, FACTS)
    assert lines is not None, res.describe()
    assert_console_is_the_pty(facts(lines), lines)


@pytest.mark.runcell_specific
@pytest.mark.parametrize("mode", MODES)
def test_dev_console_with_a_read_only_root_and_dev(h, mode):
    """root.readonly and a read-only /dev tmpfs: /dev/console is made before either turns
    read-only (as runc makes it before its finalizeRootfs), and both end up read-only."""
    bundle = h.bundle()
    set_mode(bundle, mode)
    bundle.config["root"]["readonly"] = True
    dev = next(m for m in bundle.config["mounts"] if m["destination"] == "/dev")
    dev["options"] = dev["options"] + ["ro"]
    res, lines = run_with_terminal(
        h, bundle, FACTS + "touch /dev/x 2>/dev/null && echo 'WROTE /dev'; "
                          "touch /x 2>/dev/null && echo 'WROTE /'; true")
    assert lines is not None, res.describe()
    assert_console_is_the_pty(facts(lines), lines)
    assert not [line for line in lines if line.startswith("WROTE")], lines

