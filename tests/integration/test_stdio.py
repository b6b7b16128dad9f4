"""stdio: the runtime's fds 0-2 become a non-terminal container's stdio; a terminal
container's pty master goes to --console-socket in one SCM_RIGHTS message carrying one
fd; a foreground `run` with a terminal works from a real tty."""
import array
import errno
import os
import pty
import select
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from helpers import run


def test_detached_container_writes_to_the_runtimes_stdout(h, bundle, workdir):
    bundle.sh("echo to-stdout; echo to-stderr >&2; cat")
    out_path, err_path = workdir / "out", workdir / "err"
    cid = h.new_id()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        res = h.create(bundle, cid, input="from-stdin\n", stdout=out, stderr=err)
    assert res.rc == 0, err_path.read_text()
    h.start_ok(cid)
    h.wait_status(cid, "stopped")
    assert out_path.read_text() == "to-stdout\nfrom-stdin\n"
    assert "to-stderr\n" in err_path.read_text()


def test_run_detach_writes_to_the_runtimes_stdout(h, bundle, workdir):
    bundle.sh("echo detached-output")
    bundle.write()
    out_path = workdir / "out"
    cid = h.new_id()
    with open(out_path, "wb") as out:
        res = h("run", "--detach", "--bundle", bundle.path, cid, stdout=out)
    assert res.rc == 0, res.describe()
    h.wait_status(cid, "stopped")
    assert out_path.read_text() == "detached-output\n"


def test_foreground_run_passes_stdin(h, bundle):
    bundle.args("cat")
    res = h.run_container(bundle, input="line one\nline two\n")
    assert res.rc == 0, res.describe()
    assert res.out == "line one\nline two\n"


def test_preserve_fds(h, bundle, workdir):
    extra = workdir / "extra"
    extra.write_text("preserved\n")
    bundle.sh("cat <&3; ls /proc/self/fd | wc -l")
    bundle.write()
    argv = h.rt.argv("run", "--preserve-fds", "1", "--bundle", bundle.path, h.new_id())
    # fd 3 (and only it) besides stdio reaches the container.
    res = run("/bin/sh", "-c", f"exec 3<{shlex.quote(str(extra))} 4<&3; exec {shlex.join(argv)}")
    assert res.rc == 0, res.describe()
    lines = res.out.splitlines()
    assert lines[0] == "preserved"
    # 0, 1, 2, 3 and the fd ls opens for /proc/self/fd.
    assert int(lines[1]) == 5, res.out


class ConsoleSocket:
    """A unix socket server that accepts one connection and records every message and
    every fd it carries."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.sock.settimeout(20)
        self.messages = []  # (data, [fds])
        self.error = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
            conn.settimeout(20)
            with conn:
                while True:
                    fds = array.array("i")
                    data, ancdata, flags, _ = conn.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
                    for level, type_, cdata in ancdata:
                        if level == socket.SOL_SOCKET and type_ == socket.SCM_RIGHTS:
                            fds.frombytes(cdata[: len(cdata) - (len(cdata) % fds.itemsize)])
                    if not data and not ancdata:
                        break
                    self.messages.append((data, list(fds), flags))
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def wait(self):
        self.thread.join(25)
        assert not self.thread.is_alive(), "the console socket was never closed"
        assert self.error is None, self.error
        return self.messages

    def close(self):
        self.sock.close()
        for _, fds, _ in self.messages:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass


def read_until_eof(fd, timeout=15, want=None):
    """Reads a pty master until EIO/EOF (all slaves closed) or until `want` is seen."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if not r:
            if want is not None and want in out:
                break
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError as e:
            if e.errno == errno.EIO:
                break
            raise
        if not chunk:
            break
        out += chunk
    return out


def test_console_socket_gets_one_message_with_one_fd(h, bundle, workdir):
    sock_path = workdir / "console.sock"
    server = ConsoleSocket(sock_path)
    try:
        bundle.config["process"]["terminal"] = True
        bundle.sh("tty; echo hi; stty size 2>/dev/null; exit 0")
        bundle.config["process"]["consoleSize"] = {"height": 33, "width": 101}
        cid = h.new_id()
        res = h.create(bundle, cid, "--console-socket", sock_path)
        assert res.rc == 0, res.describe()
        messages = server.wait()
        assert len(messages) == 1, f"expected exactly one message, got {messages}"
        data, fds, flags = messages[0]
        assert len(fds) == 1, f"expected exactly one fd, got {fds}"
        assert not flags & socket.MSG_CTRUNC
        master = fds[0]
        assert os.isatty(master)
        h.start_ok(cid)
        out = read_until_eof(master).decode(errors="replace")
        h.wait_status(cid, "stopped")
        lines = [line.strip() for line in out.splitlines()]
        assert "/dev/pts/0" in lines, out
        assert "hi" in lines, out
        assert "33 101" in lines, out
    finally:
        server.close()


def test_terminal_without_console_socket_is_an_error(h, bundle):
    bundle.config["process"]["terminal"] = True
    bundle.args("true")
    res = h.create(bundle)
    assert res.rc != 0
    assert "console" in res.msg.lower(), res.describe()


def test_console_socket_without_terminal_is_an_error(h, bundle, workdir):
    sock_path = workdir / "console.sock"
    server = ConsoleSocket(sock_path)
    try:
        bundle.args("true")
        res = h.create(bundle, None, "--console-socket", sock_path)
        assert res.rc != 0
        assert "terminal" in res.msg.lower() or "console" in res.msg.lower(), res.describe()
    finally:
        server.close()


def test_console_socket_whose_listener_never_accepts_fails_at_once(h, bundle, workdir):
    """A console socket whose listener never accepts and whose backlog is full (red team,
    session 18: create hung forever holding the container's lock): create fails at once
    with the reason, as runc's does, and leaves nothing behind."""
    sock_path = workdir / "full.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    fillers = []
    try:
        listener.bind(str(sock_path))
        listener.listen(0)
        for _ in range(16):
            f = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            f.setblocking(False)
            try:
                f.connect(str(sock_path))
            except BlockingIOError:
                f.close()
                break
            fillers.append(f)
        else:
            pytest.fail("the listener's backlog never filled")
        bundle.config["process"]["terminal"] = True
        bundle.args("true")
        cid = h.new_id()
        begun = time.monotonic()
        res = h.create(bundle, cid, "--console-socket", sock_path, timeout=20)
        took = time.monotonic() - begun
        assert res.rc != 0, res.describe()
        assert took < 10, f"create took {took:.1f} s to fail"
        assert ("accepts no more connections" in res.msg  # runcell's words
                or "resource temporarily unavailable" in res.msg), res.describe()  # runc's
        assert h("state", cid).rc != 0
        assert not (h.rt.root / cid).exists()
    finally:
        for f in fillers:
            f.close()
        listener.close()


def _run_in_pty(argv, timeout=30, input=None):
    """Runs argv with a new pty as its controlling terminal and stdio; returns
    (exit status, output)."""
    pid, master = pty.fork()
    if pid == 0:  # child
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    try:
        if input is not None:
            time.sleep(0.3)
            os.write(master, input)
        out = read_until_eof(master, timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            wpid, status = os.waitpid(pid, os.WNOHANG)
            if wpid:
                return os.waitstatus_to_exitcode(status), out.decode(errors="replace")
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"{argv} did not finish: {out!r}")
            time.sleep(0.05)
    finally:
        os.close(master)


def test_foreground_run_with_terminal_from_a_real_tty(h, bundle):
    bundle.config["process"]["terminal"] = True
    bundle.sh("tty; echo in-a-pty; exit 3")
    bundle.write()
    cid = h.new_id()
    status, out = _run_in_pty(h.rt.argv("run", "--bundle", bundle.path, cid))
    assert status == 3, out
    lines = [line.strip() for line in out.splitlines()]
    assert "/dev/pts/0" in lines, out
    assert "in-a-pty" in lines, out


def test_foreground_run_with_terminal_forwards_input(h, bundle):
    bundle.config["process"]["terminal"] = True
    bundle.sh("read line; echo got=$line")
    bundle.write()
    cid = h.new_id()
    status, out = _run_in_pty(h.rt.argv("run", "--bundle", bundle.path, cid),
                              input=b"typed\n")
    assert status == 0, out
    assert "got=typed" in out, out


def test_foreground_run_without_terminal_from_a_tty(h, bundle):
    # runc copies through pipes here (the container's `tty` says "not a tty"); either way
    # the output reaches the caller's terminal.
    bundle.sh("echo through; exit 0")
    bundle.write()
    cid = h.new_id()
    status, out = _run_in_pty(h.rt.argv("run", "--bundle", bundle.path, cid))
    assert status == 0, out
    assert "through" in out, out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_foreground_run_forwards_signals(h, bundle, sig):
    bundle.sh("trap 'echo caught; exit 42' TERM INT; echo ready; "
              "while :; do sleep 0.1; done")
    bundle.write()
    cid = h.new_id()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(h.rt.argv("run", "--bundle", bundle.path, cid),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                out.seek(0)
                if b"ready" in out.read():
                    break
                time.sleep(0.05)
            proc.send_signal(sig)
            rc = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        out.seek(0)
        text = out.read().decode()
    assert "caught" in text, text
    assert rc == 42, text
