"""--pid-file in a directory a less privileged user can write.

runcell writes every pid file (run, create, exec, restore) as a temporary file in the pid
file's directory renamed over the name. Its temporary name used to be `.NAME.tmp.<pid of
runcell>`, opened with O_CREAT|O_TRUNC: the owner of the directory (here nobody) planted a
symlink under that name pointing at a root-only file, and root wrote the pid through it and
then renamed the symlink to the pid file. runc 1.1.5 opens its temporary name with O_EXCL
and fails instead.

Each test plants, as nobody, symlinks to a root-only victim under every name the old scheme
could use: runcell is started from a shell that waits for a line before it execs runcell,
so runcell's pid is known before it runs and the symlinks cover it (and the next pids, in
case a child of runcell wrote the file). The victim must come out unchanged and the pid
file must be a regular file holding the right pid, with nothing left next to it. (The new
names are random, so no planted set can cover them.)
"""
import json
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers import Result, process_alive

NOBODY = 65534
VICTIM_TEXT = "root-owned secret content\n"
# the pids after runcell's that the symlinks cover as well
PID_SPAN = 64


@pytest.fixture
def shared(workdir):
    """(dir owned by nobody, 0755; a root-only 0600 file outside it)."""
    d = workdir / "shared"
    d.mkdir()
    os.chown(d, NOBODY, NOBODY)
    d.chmod(0o755)
    victim = workdir / "victim"
    victim.write_text(VICTIM_TEXT)
    victim.chmod(0o600)
    return d, victim


def plant(directory, victim, names):
    """Symlinks names -> victim in directory, made by nobody (the directory's owner)."""
    code = "import os, sys\nfor n in sys.argv[2:]:\n    os.symlink(sys.argv[1], n)\n"
    subprocess.run([sys.executable, "-c", code, str(victim), *names], cwd=directory,
                   user=NOBODY, group=NOBODY, extra_groups=[], check=True, timeout=30)


def run_with_planted(h, directory, victim, file_name, *args, env=None):
    """Runs `runcell args...` (as h would) after nobody planted symlinks to victim under the
    old temporary names of directory/file_name for runcell's pid and the next ones.
    Returns (Result, the planted names)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        # stdout and stderr are files, not pipes: a detached container keeps them open
        proc = subprocess.Popen(["/bin/sh", "-c", 'read go; exec "$@" </dev/null', "sh",
                                 *h.rt.argv(*args)],
                                stdin=subprocess.PIPE, stdout=out, stderr=err, env=env,
                                start_new_session=True)
        try:
            names = [f".{file_name}.tmp.{pid}" for pid in range(proc.pid, proc.pid + PID_SPAN)]
            plant(directory, victim, names)
            proc.stdin.write(b"go\n")
            proc.stdin.close()
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()
        out.seek(0)
        err.seek(0)
        return Result(rc, out.read().decode(errors="replace"),
                      err.read().decode(errors="replace")), names


def assert_victim_untouched(victim):
    st = os.lstat(victim)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    assert victim.read_text() == VICTIM_TEXT, "runcell wrote through a planted symlink"


def read_pid_file(path):
    """The pid in path, which must be a regular file (not a planted symlink)."""
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode), f"{path} is not a regular file: {stat.filemode(st.st_mode)}"
    assert st.st_uid == 0, st
    text = Path(path).read_text()
    assert text.isdigit(), repr(text)  # a bare integer, as containerd reads it
    return int(text)


def assert_only(directory, names):
    """directory holds exactly names: no temporary file left, no planted symlink touched."""
    assert sorted(os.listdir(directory)) == sorted(names)


def check(directory, victim, planted, pid_file_name):
    assert_victim_untouched(victim)
    for name in planted:
        assert os.readlink(directory / name) == str(victim), name
    assert_only(directory, [pid_file_name, *planted])
    return read_pid_file(directory / pid_file_name)


@pytest.mark.parametrize("command", ["run", "create"])
def test_pid_file_is_not_written_through_planted_symlinks(h, bundle, shared, command):
    directory, victim = shared
    bundle.args("sleep", "100")
    bundle.write()
    cid = h.new_id()
    extra = ["--detach"] if command == "run" else []
    res, planted = run_with_planted(h, directory, victim, "pid", command, *extra, "--bundle",
                                    bundle.path, "--pid-file", directory / "pid", cid)
    assert res.rc == 0, res.describe()
    pid = check(directory, victim, planted, "pid")
    h.note_pid(pid)
    assert h.state(cid)["pid"] == pid


def test_exec_pid_file_is_not_written_through_planted_symlinks(h, bundle, shared):
    directory, victim = shared
    bundle.args("sleep", "100")
    cid = h.run_detached(bundle)
    res, planted = run_with_planted(h, directory, victim, "exec.pid", "exec", "--detach",
                                    "--pid-file", directory / "exec.pid", cid, "sleep", "50")
    assert res.rc == 0, res.describe()
    pid = check(directory, victim, planted, "exec.pid")
    h.note_pid(pid)
    assert process_alive(pid)
    assert pid in json.loads(h("ps", "--format", "json", cid).out)


# A stand-in for criu's restore (criu cannot restore on every kernel): starts the "restored"
# tree and writes its pid where runcell asked. It checks none of criu's work.
FAKE_CRIU = r"""#!/bin/sh
case "$1" in
  -V) echo "Version: 3.17.1"; exit 0 ;;
  check) exit 0 ;;
  restore) ;;
  *) exit 1 ;;
esac
prev=
for a in "$@"; do
  [ "$prev" = --pidfile ] && pidfile="$a"
  prev="$a"
done
setsid sleep 100 </dev/null >/dev/null 2>&1 &
echo $! > "$pidfile"
"""


@pytest.mark.runcell_specific  # the stand-in speaks criu's command line; runc uses its RPC
def test_restore_pid_file_is_not_written_through_planted_symlinks(h, bundle, shared, workdir):
    directory, victim = shared
    criu = workdir / "criu"
    criu.write_text(FAKE_CRIU)
    criu.chmod(0o755)
    images = workdir / "images"
    images.mkdir()
    (images / "descriptors.json").write_text('["/dev/null","/dev/null","/dev/null"]')
    bundle.write()  # a native container: what runcell restores
    cid = h.new_id()
    res, planted = run_with_planted(h, directory, victim, "pid", "--criu", criu, "restore",
                                    "--detach", "--image-path", images, "--bundle", bundle.path,
                                    "--pid-file", directory / "pid", cid)
    assert res.rc == 0, res.describe()
    pid = check(directory, victim, planted, "pid")
    h.note_pid(pid)
    assert h.state(cid)["pid"] == pid


def test_a_symlink_at_the_pid_file_name_is_replaced_not_followed(h, bundle, shared):
    """What the directory's owner leaves at the pid file's own name is replaced by the
    rename: root never opens the name itself."""
    directory, victim = shared
    plant(directory, victim, ["pid"])
    bundle.args("sleep", "100")
    bundle.write()
    cid = h.new_id()
    res = h("run", "--detach", "--bundle", bundle.path, "--pid-file", directory / "pid", cid)
    assert res.rc == 0, res.describe()
    assert_victim_untouched(victim)
    assert_only(directory, ["pid"])
    pid = read_pid_file(directory / "pid")
    h.note_pid(pid)
    assert h.state(cid)["pid"] == pid
