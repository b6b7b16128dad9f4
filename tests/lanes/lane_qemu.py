"""Running the lane's guest under QEMU TCG and reading its serial console."""
import ctypes
import os
import selectors
import shutil
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
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
# What QEMU's threads were blocked in at each freeze, kept across runs (the harness runs
# the lane again after a freeze, and a passing re-run would otherwise lose the evidence).
FREEZE_DIR = Path(os.environ.get("RUNCELL_CACHE_DIR") or "/var/cache/runcell") / "lane" / "freezes"
FREEZES_KEPT = 10


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
    freeze_report: str = ""  # then: the file holding what QEMU's threads were blocked in


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


def qemu_threads(pid):
    """Each thread of a frozen QEMU: state, wait channel, the syscall it is in and its
    kernel stack, then gdb's backtraces of all of them where gdb is installed."""
    out = []
    for task in sorted(Path(f"/proc/{pid}/task").iterdir(), key=lambda p: int(p.name)):
        def read(name):
            try:
                return (task / name).read_text(errors="replace").strip()
            except OSError as e:
                return f"({e.strerror})"
        stat = read("stat")
        state = stat.rsplit(")", 1)[1].split()[0] if ")" in stat else "?"
        out.append(f"thread {task.name} {read('comm')}: state {state}, wchan {read('wchan')}, "
                   f"syscall {read('syscall')}")
        out += ["    " + line for line in read("stack").splitlines()]
    gdb = shutil.which("gdb")
    if gdb:
        try:
            r = subprocess.run([gdb, "-p", str(pid), "-batch", "-nx", "-ex", "thread apply all bt 15"],
                               capture_output=True, text=True, timeout=60)
            out += ["gdb:"] + r.stdout.splitlines()[-300:]
        except subprocess.TimeoutExpired:
            out.append("gdb: no answer in 60 s")
    return "\n".join(out)


def save_freeze_report(pid, lines):
    """Writes qemu_threads and the console's last lines to FREEZE_DIR (keeping the newest
    FREEZES_KEPT); returns the file's path, or a note of why there is none."""
    try:
        text = qemu_threads(pid)
    except OSError as e:
        text = f"QEMU's threads could not be read: {e}"
    text += "\n\nlast console lines:\n" + "\n".join(lines[-80:]) + "\n"
    try:
        FREEZE_DIR.mkdir(parents=True, exist_ok=True)
        path = FREEZE_DIR / f"freeze-{datetime.now():%Y%m%d-%H%M%S}-{pid}.txt"
        path.write_text(text)
        for old in sorted(FREEZE_DIR.glob("freeze-*.txt"))[:-FREEZES_KEPT]:
            old.unlink()
        return str(path)
    except OSError as e:
        return f"(not saved: {e})"


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
    freeze_report = ""
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
                    freeze_report = save_freeze_report(proc.pid, lines)
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
                   time.monotonic() - start, seen, frozen, freeze_report)
