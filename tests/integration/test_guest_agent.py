"""The guest agent (vmm/guest) end to end, before runcell's own VMM exists: the guest kernel
that vmm/kernel/build.sh builds boots in QEMU's microvm machine (TCG) with the agent's
initrd and a busybox erofs root disk; tests/helpers/agent_drive plays the host's side of the
protocol over the socket behind the guest's agent port and exits with the workload's status.

QEMU specifics: microvm announces its virtio-mmio devices on the kernel command line only
with acpi=off; it has no i8042, so the guest reboots by triple fault (reboot=t) to end QEMU
(-no-reboot); and a virtconsole drops whatever its socket cannot take at once, so the agent
port is a virtserialport named runcell.agent (the agent falls back to it when there is no
/dev/hvc0). Skipped when the guest kernel has not been built or QEMU is missing; the kernel
is never built from here.
"""
import glob
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUSYBOX = Path("/bin/busybox")
QEMU = shutil.which("qemu-system-x86_64")
CACHE = Path(os.environ.get("RUNCELL_CACHE_DIR", "/var/cache/runcell"))


def build_dir():
    if os.environ.get("RUNCELL_AGENT_BUILD"):
        return Path(os.environ["RUNCELL_AGENT_BUILD"])
    if os.environ.get("RUNCELL_BIN"):
        return Path(os.environ["RUNCELL_BIN"]).resolve().parent
    return REPO / "build"


def guest_kernel():
    if os.environ.get("RUNCELL_GUEST_KERNEL_BZIMAGE"):
        return Path(os.environ["RUNCELL_GUEST_KERNEL_BZIMAGE"])
    found = glob.glob(str(CACHE / "guest-kernel" / "*" / "bzImage"))
    return Path(max(found, key=os.path.getmtime)) if found else None


KERNEL = guest_kernel()
pytestmark = [
    pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed"),
    pytest.mark.skipif(
        KERNEL is None,
        reason="the guest kernel has not been built (vmm/kernel/build.sh fills "
        f"{CACHE}/guest-kernel)",
    ),
    pytest.mark.runcell_specific,
]


@pytest.fixture(scope="module")
def guest_assets():
    build = build_dir()
    drive, initrd = build / "agent_drive", build / "guest" / "agent.initrd"
    for p in (drive, initrd):
        if not p.exists():
            pytest.fail(f"{p} is missing: build the tree (make -C {build})")
    if not shutil.which("mkfs.erofs") or not BUSYBOX.exists():
        pytest.skip("mkfs.erofs (erofs-utils) or busybox-static is not installed")
    work = Path(tempfile.mkdtemp(prefix="rct-agent-"))
    root = work / "rootfs"
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root"):
        (root / d).mkdir(parents=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for a in applets:
        if a != "busybox":
            (root / "bin" / a).symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    image = work / "rootfs.erofs"
    subprocess.run(["mkfs.erofs", "--quiet", str(image), str(root)], check=True)
    yield {"drive": drive, "initrd": initrd, "image": image, "work": work}
    if not os.environ.get("RCT_KEEP"):
        shutil.rmtree(work, ignore_errors=True)


class Guest:
    """One boot: QEMU plus agent_drive; result() waits for both."""

    def __init__(self, assets, drive_args, stdin=subprocess.DEVNULL, timeout=90):
        self.dir = Path(tempfile.mkdtemp(prefix="vm-", dir=assets["work"]))
        self.sock = self.dir / "agent.sock"
        self.log = self.dir / "console.log"
        self.timeout = timeout
        self.qemu = subprocess.Popen([
            QEMU, "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=off,acpi=off",
            "-accel", "tcg", "-cpu", "max", "-m", "256", "-nodefaults", "-no-user-config",
            "-nographic", "-no-reboot", "-serial", f"file:{self.log}",
            "-kernel", str(KERNEL), "-initrd", str(assets["initrd"]),
            "-append", "console=ttyS0 reboot=t panic=-1 quiet",
            "-drive", f"id=root,file={assets['image']},format=raw,if=none,readonly=on",
            "-device", "virtio-blk-device,drive=root,serial=rootfs",
            "-device", "virtio-serial-device",
            "-chardev", f"socket,id=agent,path={self.sock},server=on,wait=off",
            "-device", "virtserialport,chardev=agent,name=runcell.agent",
        ], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.drive = subprocess.Popen(
            [str(assets["drive"]), str(self.sock), "--timeout", str(timeout), *drive_args],
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def result(self, input_bytes=None):
        try:
            out, err = self.drive.communicate(input=input_bytes, timeout=self.timeout + 10)
        except BaseException:
            # a hung run: the guest goes too (by pid), not left running behind the test
            self.qemu.kill()
            self.qemu.wait()
            raise
        finally:
            if self.drive.poll() is None:
                self.drive.kill()
                self.drive.wait()
        try:
            self.qemu.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.qemu.kill()
            self.qemu.wait()
            pytest.fail(f"the guest did not power off after the workload\n{self.console()}")
        return self.drive.returncode, out, err

    def console(self):
        try:
            return "guest console:\n" + self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "no guest console log"


def run(assets, *args, input_bytes=None):
    g = Guest(assets, list(args), stdin=subprocess.PIPE if input_bytes is not None
              else subprocess.DEVNULL)
    rc, out, err = g.result(input_bytes)
    return rc, out, err, g.console()


def test_echo_output(guest_assets):
    rc, out, err, log = run(guest_assets, "--", "/bin/sh", "-c", "echo hello; echo oops >&2")
    assert rc == 0, f"{err!r}\n{log}"
    assert out == b"hello\n"
    assert err == b"oops\n"


def test_exit_code(guest_assets):
    rc, out, err, log = run(guest_assets, "--", "/bin/sh", "-c", "exit 7")
    assert rc == 7, f"{err!r}\n{log}"


def test_killed_by_signal(guest_assets):
    rc, out, err, log = run(guest_assets, "--", "/bin/sh", "-c", "kill -KILL $$")
    assert rc == 128 + signal.SIGKILL, f"{err!r}\n{log}"


def test_signal_forwarded(guest_assets):
    """SIGTERM to the driver reaches the workload as a SIGNAL message."""
    g = Guest(guest_assets, ["--", "/bin/sh", "-c",
                             "trap 'echo got TERM; exit 3' TERM; echo ready; "
                             "while :; do sleep 0.1; done"])
    line = g.drive.stdout.readline()
    assert line == b"ready\n", g.console()
    g.drive.send_signal(signal.SIGTERM)
    rc, out, err = g.result()
    assert rc == 3, f"{err!r}\n{g.console()}"
    assert out == b"got TERM\n"


def test_terminal(guest_assets):
    rc, out, err, log = run(guest_assets, "--tty", "--winsize", "33x77", "--",
                            "/bin/sh", "-c", "tty; stty size; echo $TERM")
    assert rc == 0, f"{err!r}\n{log}"
    # a terminal's output discipline turns \n into \r\n
    assert out == b"/dev/pts/0\r\n33 77\r\nxterm\r\n"
    assert err == b""


def test_terminal_is_dev_console(guest_assets):
    """As runc gives it (and runcell's cells): the terminal process's /dev/console is its
    pty, the same device as its stdin, bound over a file in its /dev; text written there
    reaches the terminal. --ro: made while the /dev tmpfs is writable under a read-only
    root."""
    script = ("stat -c '%F %t:%T' /dev/console; "
              "[ \"$(stat -L -c %d:%i /dev/console)\" = \"$(stat -L -c %d:%i /proc/self/fd/0)\" ]"
              " && echo same-as-stdin; grep -c ' /dev/console ' /proc/self/mountinfo; "
              "echo via-dev-console > /dev/console")
    rc, out, err, log = run(guest_assets, "--tty", "--ro", "--", "/bin/sh", "-c", script)
    assert rc == 0, f"{err!r}\n{log}"
    assert out == (b"character special file 88:0\r\nsame-as-stdin\r\n1\r\n"
                   b"via-dev-console\r\n"), out
    rc, out, err, log = run(guest_assets, "--", "/bin/sh", "-c", "ls /dev/console 2>&1; true")
    assert rc == 0, f"{err!r}\n{log}"
    assert b"No such file or directory" in out, out


def test_stdin_relay(guest_assets):
    data = os.urandom(700 * 1024)  # more than the 256 KiB window: credits must flow
    rc, out, err, log = run(guest_assets, "--", "/bin/sh", "-c", "cat | md5sum; wc -c </dev/null",
                            input_bytes=data)
    assert rc == 0, f"{err!r}\n{log}"
    assert out.split()[0].decode() == hashlib.md5(data).hexdigest()


def test_stdin_end_after_every_byte_is_written(guest_assets):
    """STDIN_EOF arriving when the agent has already written all the input (the driver holds
    it back until every byte is credited) still closes the workload's stdin at once: the
    agent once armed nothing to wake it then, and `wc` waited for its end until some other
    message came (a flaky hang of exec in the lane)."""
    data = b"line\n" * 20000
    rc, out, err, log = run(guest_assets, "--eof-when-drained", "--", "/bin/sh", "-c",
                            "wc -l; echo after", input_bytes=data)
    assert rc == 0, f"{err!r}\n{log}"
    assert out.split() == [b"20000", b"after"]


def test_large_stdout_in_order(guest_assets):
    rc, out, err, log = run(guest_assets, "--", "/bin/seq", "1", "620000")
    assert rc == 0, f"{err!r}\n{log}"
    want = "".join(f"{i}\n" for i in range(1, 620001)).encode()
    assert len(want) > 4 * 1024 * 1024
    assert len(out) == len(want)
    assert out == want


def test_missing_executable_is_an_error(guest_assets):
    rc, out, err, log = run(guest_assets, "--", "/bin/no-such-program", "x")
    assert rc == 125, f"{err!r}\n{log}"
    assert b'guest error (exec): exec: "/bin/no-such-program"' in err
    assert b"No such file or directory" in err
    rc, out, err, log = run(guest_assets, "--", "no-such-program")
    assert rc == 125
    assert b'exec: "no-such-program": executable file not found in $PATH' in err


def test_hostname_readonly_root_and_disk_by_serial(guest_assets):
    rc, out, err, log = run(guest_assets, "--hostname", "cell7", "--ro", "--rootfs",
                            "serial:rootfs", "--", "/bin/sh", "-c",
                            "hostname; touch /x 2>/dev/null && echo writable; "
                            "touch /dev/shm/ok && echo shm-writable")
    assert rc == 0, f"{err!r}\n{log}"
    assert out == b"cell7\nshm-writable\n"


def test_writable_root_and_bad_mount(guest_assets):
    rc, out, err, log = run(guest_assets, "--", "/bin/sh", "-c",
                            "echo hi >/etc/new && cat /etc/new")
    assert rc == 0, f"{err!r}\n{log}"
    assert out == b"hi\n"
    rc, out, err, log = run(guest_assets, "--mount", "/data:bind:/run/nowhere", "--", "/bin/true")
    assert rc == 125
    assert b"guest error (mounts)" in err and b"/run/nowhere" in err
