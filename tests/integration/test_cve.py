"""runc's container-escape CVEs as regression tests: each attempts the published attack
against runcell, in a cell (gate on, runcell's default) and natively (gate off), and shows
that it fails. Each also shows its precondition: the attacker really reaches what the
exploit needs (the runtime's process in the container, a host directory through
/proc/self/fd/N, a destination it can swap), so a missing defence would fail the test.

- CVE-2019-5736: a container overwrites the runtime binary through /proc/PID/exe.
- CVE-2024-21626: a host directory fd leaks into the container (cwd or program path
  through /proc/self/fd/N).
- CVE-2021-30465: a mount destination swapped for a symlink to / during setup.
- The /proc escape families: /proc/sys writes, masked paths, the runtime's own /proc/1.

The attackers are tests/integration/cve_attacker.c, built static with the host's gcc.
"""
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers import BUSYBOX, Harness, mountinfo, run, set_mode

pytestmark = pytest.mark.runcell_specific

HERE = Path(__file__).resolve().parent
MODES = ["cell", "native"]


def assert_mode(h, cid, mode):
    gate = h.state(cid)["annotations"].get("run.runcell.gate")
    assert gate == ("on" if mode == "cell" else "off"), f"{cid} runs with the gate {gate}"


def wait_for(cond, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture(scope="session")
def attacker(session_dir):
    """cve_attacker.c built static, so that it runs in any rootfs."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to build the attacker (tests/integration/cve_attacker.c)")
    out = session_dir / "cve_attacker"
    res = subprocess.run([gcc, "-static", "-O2", "-o", str(out), str(HERE / "cve_attacker.c")],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot build a static attacker here (static glibc missing?): {res.stderr}")
    return out


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def leaky_caller(fds, directory, argv):
    """argv run through a shell that first opens `directory` on each of `fds` without
    close-on-exec: a caller that leaks host directory descriptors into runcell."""
    redirs = " ".join(f"{fd}<\"$0\"" for fd in fds)
    return ["/bin/sh", "-c", f"exec {redirs}; exec \"$@\"", str(directory), *map(str, argv)]


# ---------------------------------------------------------------------------------------
# CVE-2019-5736


@pytest.fixture
def copied_runtime(runcell_bin, workdir):
    """A Harness driving a copy of the runcell binary: if the defence failed, the attack
    would overwrite the copy, never the build."""
    bindir = workdir / "bin-under-test"
    bindir.mkdir()
    binary = bindir / "runcell"
    shutil.copy2(runcell_bin, binary)
    harness = Harness(binary, workdir / "copied", name=f"runcell copy ({binary})")
    yield harness
    problems = harness.cleanup()
    if problems:
        pytest.fail("runcell left behind:\n  " + "\n  ".join(problems), pytrace=False)


def copy_shared_libraries(binary, rootfs):
    """Puts the libraries `binary` needs into rootfs, so that the runtime itself can run
    inside the container, as it does in the published exploit (the image has a libc)."""
    res = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    for lib in re.findall(r"(/\S+) \(0x", res.stdout):
        dest = rootfs / lib.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(lib, dest)


def parse_report(text):
    return [line.split(" ", 2) for line in text.splitlines()]


def seen_runtimes(text):
    """The runtime processes the attacker saw in the container."""
    return [line for line in parse_report(text) if line[0] == "seen"]


def runtime_handles(text):
    """The runtime executables the attacker got an O_PATH handle on (their links)."""
    return [line[2] for line in parse_report(text) if line[0] == "held" and "runcell" in line[2]]


@pytest.mark.parametrize("privileged", [False, True], ids=["default-caps", "cap-sys-ptrace"])
@pytest.mark.parametrize("mode", MODES)
def test_cve_2019_5736_runtime_binary_is_not_writable_from_the_container(
        copied_runtime, attacker, mode, privileged):
    """The container's init scans /proc for any process running runcell and tries to
    write its executable, directly and through an O_PATH handle reopened once the
    process is gone. `runcell exec` runs /evil, a script whose interpreter is
    /proc/self/exe (the exploit's trick to make the runtime exec itself in the
    container). The same attacker overwrites a host file run the same way (the control),
    which proves the attack works; runcell's binary must come out unchanged."""
    h = copied_runtime
    before = sha256(h.rt.binary)
    bundle = h.bundle()
    set_mode(bundle, mode)
    out = h.workdir / "out"
    out.mkdir(mode=0o777)
    shutil.copy2(attacker, bundle.rootfs / "attacker")
    control = out / "control-target"
    shutil.copy2(attacker, control)
    control_before = sha256(control)
    copy_shared_libraries(h.rt.binary, bundle.rootfs)
    # --log=/fifo: runcell, run as the script's interpreter, blocks opening its log until
    # the test lets it go, so the attacker has all the time the exploit needs.
    (bundle.rootfs / "evil").write_text("#!/proc/self/exe --log=/fifo\n")
    os.chmod(bundle.rootfs / "evil", 0o755)
    os.mkfifo(bundle.rootfs / "fifo")
    bundle.bind(out, "/out")
    if privileged:
        for kind in ("bounding", "effective", "permitted"):
            bundle.process["capabilities"][kind].append("CAP_SYS_PTRACE")
    bundle.args("/attacker", "exe", "/out/report", "/out/stop", "30", "runcell",
                "control-target")
    cid = h.run_detached(bundle)
    assert_mode(h, cid, mode)
    report = out / "report"
    wait_for(report.exists, "the attacker to start")

    # Short execs until the attacker (which polls /proc) has seen three of them: under a
    # loaded host it can miss a quick one, which said nothing about runcell.
    for _ in range(30):
        res = h("exec", cid, "true")
        assert res.rc == 0, res.describe()
        if len(seen_runtimes(report.read_text())) >= 3:
            break
    evil = subprocess.Popen(h.rt.argv("exec", cid, "/evil"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: runtime_handles(report.read_text()),
                 "the attacker to get a handle on the runtime's executable")
    finally:
        # Let the blocked runtime go (it opens its log, then fails on the unknown command).
        fd = os.open(bundle.rootfs / "fifo", os.O_RDONLY | os.O_NONBLOCK)
        try:
            evil.wait(timeout=10)
        finally:
            os.close(fd)
    res = h("exec", cid, "/out/control-target", "sleep", "100")
    assert res.rc == 0, res.describe()
    wait_for(lambda: "wrote /out/control-target" in report.read_text(),
             "the attacker to overwrite the control", timeout=5)
    (out / "stop").touch()
    wait_for(lambda: report.read_text().endswith("end\n"), "the attacker's report")
    text = report.read_text()

    # Preconditions: it saw runcell's processes in the container, held the executable of
    # the one that ran as the script's interpreter, and the same steps overwrite a host
    # file that is not protected.
    assert len(seen_runtimes(text)) >= 4, text
    runtime_held = runtime_handles(text)
    assert runtime_held, f"the attacker never reached the runtime's executable:\n{text}"
    assert sha256(control) != control_before, "the control was not overwritten"

    # The defence: what it reached is runcell's sealed copy, never the host binary, and
    # no write went through.
    assert all(t.startswith("/memfd:runcell") for t in runtime_held), text
    assert not re.search(r"^wrote .*runcell", text, re.M), text
    assert not re.search(r"^reopen .*runcell.* ok$", text, re.M), text
    assert not re.search(r"^direct \d+ ok$", text, re.M), text
    assert sha256(h.rt.binary) == before, "the runcell binary was modified"


# ---------------------------------------------------------------------------------------
# CVE-2024-21626

LEAKED = list(range(3, 10))  # the fds the leaky caller opens on a host directory


def fd_table(pid):
    """{fd: link} of a host pid."""
    table = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            table[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError as e:
            table[int(name)] = f"? {e}"
    return table


@pytest.mark.parametrize("mode", MODES)
def test_cve_2024_21626_no_host_fd_reaches_the_container(h, bundle, escape_dir, mode):
    """runcell is run by a caller that leaks seven descriptors of a host directory
    (fds 3-9, no close-on-exec). Neither the init nor an exec'd process may hold any of
    them, nor any other runtime descriptor: only stdio (and, with --preserve-fds, those)."""
    (escape_dir / "marker").write_text("host secret\n")
    set_mode(bundle, mode)
    bundle.args("sleep", "100")
    bundle.write()
    cid = h.new_id()
    argv = leaky_caller(LEAKED, escape_dir, h.rt.argv(
        "run", "--detach", "--bundle", bundle.path, "--pid-file", h.pid_file(cid), cid))
    res = run_argv(argv)
    assert res.rc == 0, res.err
    init = int(h.pid_file(cid).read_text())
    h.note_pid(init)
    assert_mode(h, cid, mode)
    assert sorted(fd_table(init)) == [0, 1, 2], fd_table(init)

    pid_file = h.workdir / "exec.pid"
    res = run_argv(leaky_caller(LEAKED, escape_dir, h.rt.argv(
        "exec", "--detach", "--pid-file", pid_file, cid, "sleep", "100")))
    assert res.rc == 0, res.err
    pid = int(pid_file.read_text())
    h.note_pid(pid)
    assert sorted(fd_table(pid)) == [0, 1, 2], fd_table(pid)

    # Precondition: a host directory descriptor inside the container is an escape. With
    # --preserve-fds 1 the caller hands fd 3 over on purpose and the container reads the
    # host file through it; the other six leaked fds still stay out.
    pid_file.unlink()
    res = run_argv(leaky_caller(LEAKED, escape_dir, h.rt.argv(
        "exec", "--preserve-fds", "1", "--detach", "--pid-file", pid_file, cid,
        "sleep", "100")))
    assert res.rc == 0, res.err
    pid = int(pid_file.read_text())
    h.note_pid(pid)
    table = fd_table(pid)
    assert sorted(table) == [0, 1, 2, 3], table
    assert table[3] == str(escape_dir)
    res = run_argv(leaky_caller(LEAKED, escape_dir, h.rt.argv(
        "exec", "--preserve-fds", "1", cid, "cat", "/proc/self/fd/3/marker")))
    assert res.rc == 0 and res.out == "host secret\n", res


def run_argv(argv, timeout=30):
    """helpers.run for a full argv (stdout and stderr are files, not pipes that a
    detached container would hold open)."""
    return run(argv[0], *argv[1:], timeout=timeout)


@pytest.mark.parametrize("mode", MODES)
def test_cve_2024_21626_cwd_through_proc_self_fd_fails(h, bundle, escape_dir, mode):
    """process.cwd (run) and --cwd (exec) set to /proc/self/fd/N, for every fd the leaky
    caller opened on a host directory and a few more: each fails with an error; no process
    ever runs with the host directory as its cwd."""
    (escape_dir / "marker").write_text("host secret\n")
    set_mode(bundle, mode)
    probe = "cat marker 2>/dev/null; pwd; echo ran"
    for n in [*LEAKED, 10, 11, 12]:
        bundle.config["process"]["cwd"] = f"/proc/self/fd/{n}"
        bundle.sh(probe)
        bundle.write()
        cid = h.new_id()
        res = run_argv(leaky_caller(LEAKED, escape_dir, h.rt.argv(
            "run", "--bundle", bundle.path, cid)))
        assert "host secret" not in res.out, f"fd {n}: {res}"
        assert res.rc != 0 and "ran" not in res.out, f"fd {n}: {res}"
        assert "cwd" in res.err, f"fd {n}: no clear error: {res.err}"

    bundle.config["process"]["cwd"] = "/"
    bundle.args("sleep", "100")
    cid = h.run_detached(bundle)
    assert_mode(h, cid, mode)
    for n in [*LEAKED, 10, 11, 12]:
        res = run_argv(leaky_caller(LEAKED, escape_dir, h.rt.argv(
            "exec", "--cwd", f"/proc/self/fd/{n}", cid, "sh", "-c", probe)))
        assert "host secret" not in res.out, f"fd {n}: {res}"
        assert res.rc != 0 and "ran" not in res.out, f"fd {n}: {res}"
        assert "cwd" in res.err, f"fd {n}: no clear error: {res.err}"
    # A descriptor handed over on purpose (--preserve-fds) is the container's to read,
    # but it is no working directory: the process would start outside its root.
    res = run_argv(leaky_caller(LEAKED, escape_dir, h.rt.argv(
        "exec", "--preserve-fds", "1", "--cwd", "/proc/self/fd/3", cid, "sh", "-c", probe)))
    assert res.rc != 0 and "ran" not in res.out, res
    assert "outside" in res.err, res.err


@pytest.mark.parametrize("mode", MODES)
def test_cve_2024_21626_program_path_through_proc_self_fd_fails(h, bundle, escape_dir, mode):
    """The exploit's other form: the program itself is /proc/self/fd/N/../../bin/busybox,
    a host binary reached through a leaked directory fd (runc 1.1.11's attack 3a). It
    must not run, neither as the init nor through exec."""
    set_mode(bundle, mode)
    depth = "../" * (len(escape_dir.parts) - 1)
    host_busybox = f"{depth}bin/busybox"
    assert (escape_dir / host_busybox).resolve() == Path("/bin/busybox").resolve()
    for n in LEAKED:
        bundle.args(f"/proc/self/fd/{n}/{host_busybox}", "echo", "ESCAPED")
        bundle.write()
        res = run_argv(leaky_caller(LEAKED, escape_dir, h.rt.argv(
            "run", "--bundle", bundle.path, h.new_id())))
        assert res.rc != 0 and "ESCAPED" not in res.out, f"fd {n}: {res}"
    bundle.args("sleep", "100")
    cid = h.run_detached(bundle)
    for n in LEAKED:
        res = run_argv(leaky_caller(LEAKED, escape_dir, h.rt.argv(
            "exec", cid, f"/proc/self/fd/{n}/{host_busybox}", "echo", "ESCAPED")))
        assert res.rc != 0 and "ESCAPED" not in res.out, f"fd {n}: {res}"
    # Precondition: with the descriptor really inside (handed over with --preserve-fds),
    # the same path does reach the host's binary.
    res = run_argv(leaky_caller(LEAKED, escape_dir, h.rt.argv(
        "exec", "--preserve-fds", "1", cid, f"/proc/self/fd/3/{host_busybox}", "sh", "-c",
        "readlink /proc/self/exe; echo ESCAPED")))
    assert res.rc == 0 and "ESCAPED" in res.out, res


RUNTIME_FDS = list(range(3, 32))  # wherever runcell's own descriptors may sit


@pytest.fixture
def host_process_with_echo(workdir):
    """A host process (a plain `sleep`) and a host-only program named echo (busybox, so
    `echo` is its applet): the target of a program path that would leave the container
    through a descriptor of the runtime's on the host's /proc."""
    hostonly = workdir / "hostonly"
    hostonly.mkdir()
    echo = hostonly / "echo"
    shutil.copy2(BUSYBOX, echo)
    proc = subprocess.Popen(["sleep", "300"])
    try:
        yield proc.pid, echo
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("mode", MODES)
def test_no_runtime_procfs_handle_in_the_program_path(h, bundle, host_process_with_echo, mode):
    """runcell keeps a handle on the host's procfs (its own pid namespace, mounted
    nowhere) for the /proc files it writes for the container's process. While it was open
    when the program was looked up and exec'd, a program path /proc/self/fd/N/<pid>/root/...
    ran, and could open for writing, files of any host process the container's user may
    ptrace-access: another pod's (same uid and capabilities), or every host process with
    CAP_SYS_PTRACE (session-19 red team; runc closes its descriptors before exec). Tried
    with CAP_SYS_PTRACE for every descriptor number, as the init and through exec."""
    pid, echo = host_process_with_echo
    set_mode(bundle, mode)
    for kind in ("bounding", "effective", "permitted"):
        bundle.process["capabilities"][kind].append("CAP_SYS_PTRACE")
    target = f"{pid}/root{echo}"
    assert os.path.exists(f"/proc/{target}")  # the path names a host program
    for n in RUNTIME_FDS:
        bundle.args(f"/proc/self/fd/{n}/{target}", "ESCAPED")
        res = h.run_container(bundle)
        assert res.rc != 0 and "ESCAPED" not in res.out, f"fd {n}: {res.describe()}"
    bundle.args("sleep", "100")
    cid = h.run_detached(bundle)
    assert_mode(h, cid, mode)
    for n in RUNTIME_FDS:
        res = h("exec", cid, f"/proc/self/fd/{n}/{target}", "ESCAPED")
        assert res.rc != 0 and "ESCAPED" not in res.out, f"fd {n}: {res.describe()}"
    # Precondition: with a descriptor on the host's /proc really inside (handed over with
    # --preserve-fds), the same path does run the host's program.
    res = run_argv(leaky_caller([3], "/proc", h.rt.argv(
        "exec", "--preserve-fds", "1", cid, f"/proc/self/fd/3/{target}", "ESCAPED")))
    assert res.rc == 0 and "ESCAPED" in res.out, res


# ---------------------------------------------------------------------------------------
# CVE-2021-30465

SWAP_ITERATIONS = 40


def payload_mounts(pid_or_self, payload_name):
    """Mount points (as the process sees them) whose source is the payload directory."""
    found = []
    with open(f"/proc/{pid_or_self}/mountinfo") as f:
        for line in f:
            fields = line.split(" - ")[0].split()
            root, mount_point = fields[3], fields[4]
            if root.rstrip("/").endswith("/" + payload_name):
                found.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)),
                                    mount_point))
    return found


@pytest.mark.parametrize("mode", MODES)
def test_cve_2021_30465_mount_destination_swapped_for_symlink(h, workdir, attacker, mode):
    """Container A shares a volume with container B and swaps vol/mnt (a directory) and
    vol/link (a symlink to /) with RENAME_EXCHANGE as fast as it can, while B, whose
    config binds a payload directory onto /vol/mnt, is created again and again. The
    payload may only ever be mounted inside B's root: never in the host's mount
    namespace, never where B cannot see it (outside its root), never over the host's /."""
    vol = workdir / "vol"
    (vol / "mnt").mkdir(parents=True)
    os.symlink("/", vol / "link")
    os.chmod(vol, 0o777)
    payload_name = "payload-" + secrets.token_hex(4)
    payload = workdir / payload_name
    payload.mkdir()
    (payload / "marker").write_text("payload\n")
    out = workdir / "out"
    out.mkdir(mode=0o777)
    host_root_mounts = sum(1 for mp, _, _ in mountinfo() if mp == "/")

    a = h.bundle("attacker")
    set_mode(a, mode)
    shutil.copy2(attacker, a.rootfs / "attacker")
    a.bind(vol, "/vol")
    a.bind(out, "/out")
    a.args("/attacker", "swap", "/vol", "mnt", "link", "/out/stop", "/out/swaps")
    a_id = h.run_detached(a)
    assert_mode(h, a_id, mode)

    b = h.bundle("victim")
    set_mode(b, mode)
    b.bind(vol, "/vol")
    b.bind(payload, "/vol/mnt")
    b.args("sleep", "100")
    b.write()
    outcomes = {}
    for _ in range(SWAP_ITERATIONS):
        cid = h.new_id()
        res = h.create(b, cid, write=False)
        assert not payload_mounts("self", payload_name), "the payload is mounted on the host"
        assert sum(1 for mp, _, _ in mountinfo() if mp == "/") == host_root_mounts
        if res.rc == 0:
            seen = payload_mounts(h.state(cid)["pid"], payload_name)
            # Inside B's root: where /vol/mnt resolved at the time (the directory, which
            # the attacker may since have renamed to link, or / through the symlink).
            assert len(seen) == 1 and seen[0] in ("/vol/mnt", "/vol/link", "/"), seen
            outcomes[seen[0]] = outcomes.get(seen[0], 0) + 1
        else:
            assert res.msg, res.describe()
            key = "error: " + res.msg.split(": ", 1)[-1]
            outcomes[key] = outcomes.get(key, 0) + 1
        assert h.delete(cid, force=True).rc == 0
    (out / "stop").touch()
    wait_for((out / "swaps").exists, "the attacker to stop")
    swaps = int((out / "swaps").read_text().split()[1])
    # Precondition: the destination really was swapped, thousands of times, while B was
    # being set up, and B's setup met the symlink at least once.
    assert swaps > 1000, (out / "swaps").read_text()
    assert set(outcomes) - {"/vol/mnt"}, f"B never met the swapped destination: {outcomes}"
    assert (payload / "marker").read_text() == "payload\n"
    print(f"{swaps} swaps; outcomes: {outcomes}")


# ---------------------------------------------------------------------------------------
# /proc escape families

# Written back with their current values, so that a broken defence changes nothing.
PROC_SYS_FILES = ["kernel/core_pattern", "kernel/modprobe", "vm/overcommit_memory",
                  "kernel/hostname", "net/core/somaxconn"]


@pytest.mark.parametrize("mode", MODES)
def test_proc_sys_is_read_only(h, bundle, mode):
    """Container root cannot write /proc/sys (core_pattern is the classic escape: a
    pipe handler runs as root on the host) nor open /proc/sysrq-trigger for writing: the
    runtime mounts them read-only, so the write fails with EROFS before any capability
    check. Precondition: the files are the host's (core_pattern is not namespaced) and
    readable."""
    set_mode(bundle, mode)
    files = [f for f in PROC_SYS_FILES if Path("/proc/sys", f).exists()]
    host = {f: Path("/proc/sys", f).read_text() for f in files}
    script = []
    for f in files:
        script.append(f"v=$(cat /proc/sys/{f}); echo \"read {f} $v\"; "
                      f"echo \"$v\" > /proc/sys/{f} && echo 'WROTE {f}'; "
                      f"true > /proc/sys/{f} && echo 'OPENED {f}'")
    sysrq = os.path.exists("/proc/sysrq-trigger")
    if sysrq:
        script.append("true > /proc/sysrq-trigger && echo 'OPENED sysrq-trigger'")
    script.append("grep -E ' /proc/(sys|sysrq-trigger) ' /proc/self/mountinfo")
    bundle.sh("; ".join(script) + "; true")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    assert f"read kernel/core_pattern {host['kernel/core_pattern'].strip()}" in res.out
    assert "WROTE" not in res.out and "OPENED" not in res.out, res.out
    assert res.err.count("Read-only file system") == 2 * len(files) + sysrq, res.err
    for line in res.out.splitlines():
        if " /proc/sys" in line:
            assert re.search(r" ro[, ]", line), line
    assert {f: Path("/proc/sys", f).read_text() for f in files} == host


MASKED_FILES = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"]


@pytest.mark.parametrize("mode", MODES)
def test_masked_paths_hide_the_hosts_data(h, bundle, mode):
    """maskedPaths: each file is the container's /dev/null (reads empty, writes vanish) and
    each directory an empty read-only tmpfs. Precondition: on the host each has content
    (else masking proves nothing)."""
    set_mode(bundle, mode)
    readable = []
    for f in MASKED_FILES:
        try:
            with open(f, "rb") as fh:
                if fh.read(1):
                    readable.append(f)
        except OSError:
            pass
    if not readable:
        pytest.skip(f"none of {MASKED_FILES} has content on this host")
    dirs = [d for d in ("/sys/firmware", "/proc/acpi", "/proc/scsi")
            if os.path.isdir(d) and os.listdir(d)]
    script = [f"echo x > {f}; echo \"{f} $(wc -c < {f}) $(stat -c '%F %t:%T' {f})\""
              for f in readable]
    script += [f"touch {d}/x && echo 'WROTE {d}'; echo \"{d} $(ls -A {d} | wc -l)\""
               for d in dirs]
    bundle.sh("; ".join(script) + "; true")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    for f in readable:
        assert f"{f} 0 character special file 1:3\n" in res.out, res.out
    for d in dirs:
        assert f"{d} 0\n" in res.out, res.out
    assert "WROTE" not in res.out, res.out


@pytest.mark.parametrize("mode", MODES)
def test_runtime_init_in_proc_is_unreachable(h, bundle, mode):
    """Until `start`, pid 1 of the container is runcell code holding the runtime's
    descriptors and environment. A process exec'd next to it sees it (its cmdline shows
    runcell: the precondition) but cannot open its fds, cwd, root, exe, environ or memory
    (the init is not dumpable)."""
    set_mode(bundle, mode)
    bundle.args("true")
    cid = h.create_ok(bundle)
    assert_mode(h, cid, mode)
    # Listing /proc/1/fd is allowed (the directory belongs to root); following any link
    # in it, or cwd, root and exe, or reading environ and maps, needs ptrace access.
    script = ("tr '\\0' ' ' < /proc/1/cmdline; echo; ls /proc/1/fd | wc -l; "
              "for l in /proc/1/fd/* /proc/1/cwd /proc/1/root /proc/1/exe; do "
              "readlink $l && echo \"REACHED $l\"; ls $l/ >/dev/null 2>&1 && echo \"REACHED $l/\"; "
              "done; for f in environ maps; do "
              "cat /proc/1/$f >/dev/null 2>&1 && echo \"REACHED $f\"; done; true")
    res = h("exec", cid, "sh", "-c", script)
    assert res.rc == 0, res.describe()
    lines = res.out.splitlines()
    assert "runcell" in lines[0], res.out
    assert int(lines[1]) > 3, "the init holds the runtime's descriptors: " + res.out
    assert "REACHED" not in res.out, res.out
    assert h.delete(cid, force=True).rc == 0


# ---------------------------------------------------------------------------------------
# CVE-2025-31133

# What a createContainer hook (in the container's mount namespace, before pivot_root, cwd
# the rootfs) leaves at dev/null in place of the null device runcell made there.
NULL_SWAPS = {
    "symlink-to-core-pattern": "ln -s /proc/sys/kernel/core_pattern dev/null",
    "regular-file": "echo not-null > dev/null",
    "removed": "true",
    "other-device": "mknod -m 666 dev/null c 1 5",
}


@pytest.mark.parametrize("swap", list(NULL_SWAPS))
@pytest.mark.parametrize("mode", MODES)
def test_cve_2025_31133_dev_null_swapped_before_masking_is_refused(h, bundle, host_dir, mode,
                                                                    swap):
    """maskedPaths files are covered with the container's /dev/null. In runc (before 1.2.8)
    a /dev/null replaced by a symlink to /proc/sys/kernel/core_pattern was bound over each
    masked file as it was, leaving core_pattern writable through /proc/keys and the like
    (a host root shell on the next crash); a regular file in its place made every masked
    file read its content. runcell opens /dev/null inside the root, checks it is the
    character device 1:3 and binds that very descriptor: create fails, naming /dev/null
    and the masked path, and leaves nothing behind (the harness checks state directories,
    mounts, cgroups and processes). Precondition: a masked path that is a file exists (so
    /dev/null is needed) and the hook's entry was in place."""
    set_mode(bundle, mode)
    masked_files = [p for p in bundle.linux["maskedPaths"] if os.path.isfile(p)]
    assert masked_files, "no masked path of the default spec is a file on this host"
    core_pattern = Path("/proc/sys/kernel/core_pattern").read_text()
    saw = host_dir / "hook-saw"
    bundle.config["hooks"] = {"createContainer": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", f"rm -f dev/null && {NULL_SWAPS[swap]} && "
                             f"(ls -l dev/null 2>&1 || true) > {saw}"]}]}
    bundle.args("true")
    res = h.create(bundle)
    assert saw.exists(), res.describe()
    hook_saw = saw.read_text()
    assert {"symlink-to-core-pattern": hook_saw.startswith("l"),
            "regular-file": hook_saw.startswith("-"),
            "removed": "No such file" in hook_saw,
            "other-device": re.match(r"c.* 1, +5 ", hook_saw) is not None}[swap], hook_saw
    assert res.rc != 0, res.describe()
    assert f"masked path {masked_files[0]}" in res.msg, res.describe()
    if swap == "removed":
        assert "open /dev/null inside rootfs: No such file or directory" in res.msg, res.msg
    else:
        assert "/dev/null is not the null device" in res.msg, res.msg
    assert Path("/proc/sys/kernel/core_pattern").read_text() == core_pattern
