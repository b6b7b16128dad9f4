"""Running the lane's guest under QEMU TCG and reading its serial console."""
import ctypes
import os
import selectors
import shutil
import signal
import subprocess
import time
from typing import NamedTuple

from lane_kernel import LaneError

QEMU = "qemu-system-x86_64"
PR_SET_PDEATHSIG = 1
# -cpu max under TCG emulates AMD SVM with nested paging and PKU: what kvm_amd and the MPK
# work need. -nic none: no network card to probe at boot.
BASE_ARGS = ["-accel", "tcg", "-cpu", "max", "-machine", "q35", "-nographic", "-no-reboot",
             "-nic", "none"]
# panic=-1 turns a guest panic into a reboot, which -no-reboot turns into QEMU exiting.
KERNEL_ARGS = "console=ttyS0 panic=-1"


# QEMU 7.2's TCG now and then stops the whole guest for good while a nested guest moves a
# lot of data (session 7: its CPU time stops growing, the guest's own watchdogs never
# fire). A running guest always uses some CPU (timer ticks, the lane's own loops), so this
# long without any is that freeze, not a slow test.
FROZEN_SECONDS = 90


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


class Console(NamedTuple):
    lines: list  # the console's lines, carriage returns stripped
    returncode: int  # QEMU's exit status; None when it was killed at the deadline
    timed_out: bool  # at the deadline, or frozen (then `frozen` says so too)
    wall_seconds: float
    first_line_seconds: dict  # marker -> host seconds from QEMU's start to the first line containing it
    frozen: bool = False  # killed after FROZEN_SECONDS without using any CPU


def qemu_binary():
    path = shutil.which(QEMU)
    if not path:
        raise LaneError(f"{QEMU} is not installed (apt-get install qemu-system-x86)")
    return path


def command(kernel, initrd, memory_mib=2048, smp=1, append=""):
    cmdline = f"{KERNEL_ARGS} {append}".strip()
    # a debugging aid: $RUNCELL_LANE_MONITOR names a unix socket for QEMU's monitor, to
    # look at a guest that stopped making progress (info cpus, info registers)
    monitor = os.environ.get("RUNCELL_LANE_MONITOR")
    extra = ["-monitor", f"unix:{monitor},server,nowait"] if monitor else []
    return [qemu_binary(), *BASE_ARGS, *extra, "-m", str(memory_mib), "-smp", str(smp),
            "-kernel", str(kernel), "-initrd", str(initrd), "-append", cmdline]


def die_with_parent():
    """In the child before exec: SIGKILL QEMU when the process that started it dies, even
    by SIGKILL (a killed pytest or a `timeout` around lane.py must not leave a guest
    running on two shared cores)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(127)


def run(argv, timeout, on_line=None, markers=(), on_first_output=None):
    """Run QEMU until it exits or `timeout` seconds pass (then SIGKILL by pid). Every
    console line goes to on_line as it arrives. on_first_output runs once the guest has
    printed something, by when QEMU has read -kernel and -initrd into guest memory."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=die_with_parent)
    lines, pending, seen = [], b"", {}
    timed_out = closed = frozen = False
    last_ticks, last_progress = None, start

    def take(line_bytes):
        line = line_bytes.decode("utf-8", "replace").replace("\r", "")
        lines.append(line)
        for marker in markers:
            if marker not in seen and marker in line:
                seen[marker] = time.monotonic() - start
        if on_line:
            on_line(line)

    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while True:
                left = start + timeout - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                ticks = cpu_ticks(proc.pid)
                if ticks != last_ticks:
                    last_ticks, last_progress = ticks, time.monotonic()
                elif time.monotonic() - last_progress > FROZEN_SECONDS:
                    timed_out = frozen = True
                    break
                if not sel.select(timeout=min(left, 1.0)):
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    closed = True
                    break
                if on_first_output:
                    on_first_output()
                    on_first_output = None
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    take(line)
        if pending:
            take(pending)
    finally:
        if closed:
            try:  # the console closed: QEMU is on its way out
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.stdout.close()
        returncode = proc.wait()
    return Console(lines, None if timed_out else returncode, timed_out,
                   time.monotonic() - start, seen, frozen)
