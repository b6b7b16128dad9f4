#!/usr/bin/python3
"""The QEMU hardware lane: boots Debian's cloud kernel under QEMU TCG (emulated AMD SVM
and PKU) with an initramfs built for the run, runs guest tests inside and reports them as
TAP. See tests/lanes/README.md.

    python3 tests/lanes/lane.py run [--add HOST[:GUEST]]... [--test FILE]...
                                    [--shell-cmd 'CMD']... [--module NAME]...
                                    [--timeout S] [--smp N] [--verbose]

From Python (tests/integration/test_lane.py, or another helper's tests):
    sys.path.insert(0, "<repo>/tests/lanes"); import lane
    run = lane.run_lane(tests=[...], shell_cmds=[...], adds=[("build/runcell", None)])
    run.ok, run.results, run.boot_seconds, run.failure_report()
"""
import argparse
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lane_guest  # noqa: E402
import lane_kernel  # noqa: E402
import lane_probes  # noqa: E402
import lane_qemu  # noqa: E402
from lane_initramfs import Initramfs, add_busybox, is_elf  # noqa: E402
from lane_kernel import LaneError  # noqa: E402

LANES_DIR = Path(__file__).resolve().parent
GUEST_TESTS_DIR = LANES_DIR / "guest-tests"
# The modules every run loads: kvm_amd pulls in kvm and irqbypass.
DEFAULT_MODULES = ("kvm_amd",)
DEFAULT_TIMEOUT = 300
# One vCPU: the build machines have two cores shared by everyone, and a second TCG
# vCPU thread only slowed boot and tests when measured (see README.md).
DEFAULT_SMP = 1
DEFAULT_ADD_DIR = "/usr/local/bin"
# Boot messages at warning level and up only (a panic still shows), and no crypto
# self-tests: ~0.3 s of boot under TCG. --verbose boots without them.
QUIET_KERNEL_ARGS = "quiet cryptomgr.notests"


@dataclass
class TestResult:
    number: int
    name: str
    status: str = "not run"  # ok, skip, not ok, not run (the lane stopped before it)
    reason: str = ""
    seconds: float = None
    output: list = field(default_factory=list)

    @property
    def passed(self):
        return self.status in ("ok", "skip")

    def tap(self):
        line = f"{'ok' if self.passed else 'not ok'} {self.number} {self.name}"
        if self.status == "skip":
            line += f" # SKIP {self.reason}"
        elif self.reason:
            line += f" # {self.reason}"
        if self.seconds is not None:
            line += f" ({self.seconds:.2f}s)"
        return line


@dataclass
class LaneRun:
    results: list
    console: list
    boot_seconds: float = None  # guest uptime when /init started
    host_boot_seconds: float = None  # QEMU start to /init's first line, host clock
    wall_seconds: float = None
    done: bool = False
    timed_out: bool = False
    frozen: bool = False  # the emulator stopped the guest (lane_qemu.FROZEN_SECONDS)
    qemu_status: int = None
    problems: list = field(default_factory=list)  # failures outside any one test

    @property
    def ok(self):
        return self.done and not self.problems and all(r.passed for r in self.results)

    def result(self, name):
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def failure_report(self, console_lines=60):
        text = list(self.problems)
        for r in self.results:
            if not r.passed:
                text.append(r.tap())
                text += [f"    {line}" for line in r.output]
        if not self.done:
            text.append(f"last {console_lines} console lines:")
            text += [f"    {line}" for line in self.console[-console_lines:]]
        return "\n".join(text)


def parse_add(spec):
    """HOST[:GUEST] -> (host Path, guest path or None)."""
    host, sep, guest = spec.partition(":")
    return Path(host), (guest if sep else None)


def build_initramfs(path, prefix, kernel, modules, tests, adds, probes, interactive=False):
    """tests: [(name, script bytes)], in run order. adds: [(host, guest or None)]."""
    image = Initramfs()
    add_busybox(image)
    image.char_device("/dev/console", 5, 1)
    image.char_device("/dev/null", 1, 3, 0o666)
    for name in ("proc", "sys", "dev", "tmp", "run", "root", "lane/tests"):
        image.directory("/" + name)
    for name in modules:
        image.host_file(kernel.module_path(name), f"/lane/modules/{name}.ko")
    for name, binary in probes.items():
        image.host_file(binary, f"/lane/probes/{name}")
    for number, (name, script) in enumerate(tests, start=1):
        image.data(f"/lane/tests/{number:03d}-{name}", script, 0o755)
    for host, guest in adds:
        host = Path(host)
        if not host.exists():
            raise LaneError(f"--add {host}: no such file or directory")
        if guest is None:
            guest = f"{DEFAULT_ADD_DIR}/{host.name}" if host.is_file() else f"/srv/{host.name}"
        if host.is_file() and is_elf(host):
            image.executable(host, guest)
        else:
            image.host_tree(host, guest)
    image.data("/init", lane_guest.init_script(prefix, modules, len(tests), interactive), 0o755)
    image.write(path)


def default_tests():
    return sorted(GUEST_TESTS_DIR.glob("*.sh"))


def _prepare(modules, log):
    """The kernel (fetched once), the modules to load in order, and the probes."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    lane_qemu.qemu_binary()  # fail before fetching anything when QEMU is missing
    kernel = lane_kernel.fetch(log)
    return kernel, kernel.load_order([*DEFAULT_MODULES, *modules]), lane_probes.build_all(log)


def run_lane(tests=None, shell_cmds=(), adds=(), modules=(), timeout=DEFAULT_TIMEOUT,
             smp=DEFAULT_SMP, memory_mib=2048, append="", on_line=None, log=None,
             keep_initramfs=None, quiet=True):
    """Boot the lane once and run `tests` (paths of guest test scripts; default: every
    tests/lanes/guest-tests/*.sh unless shell_cmds are given) then `shell_cmds`."""
    if tests is None:
        tests = [] if shell_cmds else default_tests()
    scripts = [(lane_guest.test_name(Path(t).stem), Path(t).read_bytes()) for t in tests]
    for index, cmd in enumerate(shell_cmds, start=1):
        scripts.append((f"shell-cmd-{index}", f"{cmd}\n".encode()))
    names = [name for name, _ in scripts]
    if len(set(names)) != len(names):
        raise LaneError(f"two guest tests share a name: {names}")
    kernel, load, probes = _prepare(modules, log)
    prefix = lane_guest.new_prefix()
    # The initramfs (as large as what --add brings) goes as soon as QEMU has read it, so
    # even a lane killed with SIGKILL leaves at most an empty directory behind.
    tmp = tempfile.mkdtemp(prefix="runcell-lane-")
    remove_tmp = lambda: shutil.rmtree(tmp, ignore_errors=True)  # noqa: E731
    try:
        initrd = Path(keep_initramfs) if keep_initramfs else Path(tmp) / "initramfs.cpio"
        build_initramfs(initrd, prefix, kernel, load, scripts, adds, probes)
        if quiet:
            append = f"{QUIET_KERNEL_ARGS} {append}"
        argv = lane_qemu.command(kernel.boot_image, initrd, memory_mib, smp, append)
        console = lane_qemu.run(argv, timeout, on_line, markers=(f"{prefix}:boot",),
                                on_first_output=remove_tmp)
    finally:
        remove_tmp()
    run = parse(prefix, console.lines, names)
    run.wall_seconds = console.wall_seconds
    run.host_boot_seconds = console.first_line_seconds.get(f"{prefix}:boot")
    run.timed_out = console.timed_out
    run.frozen = console.frozen
    run.qemu_status = console.returncode
    if console.frozen:
        running = [r for r in run.results if r.status == "running"]
        where = f" while test {running[0].name!r} ran" if running else ""
        run.problems.append(f"the emulator froze the lane guest{where}: QEMU used no CPU for "
                            f"{lane_qemu.FROZEN_SECONDS}s; its threads: {console.freeze_report}")
    elif console.timed_out:
        running = [r for r in run.results if r.status == "running"]
        where = f" while test {running[0].name!r} ran" if running else ""
        run.problems.append(f"lane timed out after {timeout}s{where}")
    elif not run.done:
        where = "before /init started" if run.boot_seconds is None else "before reporting done"
        run.problems.append(f"the guest stopped {where} (QEMU exit status "
                            f"{console.returncode})")
    for r in run.results:
        if r.status == "running":
            r.status, r.reason = "not ok", "did not finish"
    return run


_TAP = re.compile(r"^(ok|not ok) (\d+) (\S+)(?: # (.*))?$")


def parse(prefix, lines, names):
    """Results from the console. A line counts only if it carries this run's prefix;
    anything before the prefix on the same line (kernel noise) is dropped."""
    results = [TestResult(number, name) for number, name in enumerate(names, start=1)]
    run = LaneRun(results, lines)
    marker = f"{prefix}:"
    current = None
    for line in lines:
        at = line.find(marker)
        if at < 0:
            continue
        body = line[at + len(marker):]
        if body.startswith("| ") or body == "|":
            if current:
                current.output.append(body[2:])
        elif body.startswith("boot "):
            run.boot_seconds = _float(body[5:])
        elif body.startswith("insmod-failed "):
            run.problems.append(f"insmod {body.split()[1]} failed in the guest")
        elif body.startswith("start "):
            current = _numbered(results, body.split()[1:2])
            if current:
                current.status = "running"
        elif body.startswith("time "):
            parts = body.split()
            found = _numbered(results, parts[1:2])
            if found and len(parts) > 2:
                found.seconds = _float(parts[2])
        elif body == "done":
            run.done = True
        elif match := _TAP.match(body):
            found = _numbered(results, [match.group(2)])
            if found:
                directive = match.group(4) or ""
                if match.group(1) == "ok" and directive.startswith("SKIP"):
                    found.status, found.reason = "skip", directive[4:].strip()
                else:
                    found.status, found.reason = match.group(1), directive
            current = None
    missing = [r.name for r in results if r.status == "not run"]
    if run.done and missing:
        run.problems.append(f"the guest reported done without running {missing}")
    return run


def _float(text):
    try:
        return float(text)
    except ValueError:
        return None


def _numbered(results, fields):
    if fields and fields[0].isdigit() and 1 <= int(fields[0]) <= len(results):
        return results[int(fields[0]) - 1]
    return None


def shell(adds=(), modules=(), smp=DEFAULT_SMP, memory_mib=2048, append=""):
    """Boot the lane with a shell on the console, for a developer at a terminal. QEMU's
    console is this terminal: Ctrl-A X quits QEMU, `exit` powers the guest off."""
    kernel, load, probes = _prepare(modules, None)
    with tempfile.TemporaryDirectory(prefix="runcell-lane-") as tmp:
        initrd = Path(tmp) / "initramfs.cpio"
        build_initramfs(initrd, lane_guest.new_prefix(), kernel, load, [], adds, probes,
                        interactive=True)
        argv = lane_qemu.command(kernel.boot_image, initrd, memory_mib, smp,
                                 f"{QUIET_KERNEL_ARGS} {append}")
        return subprocess.call(argv)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="lane.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="boot the lane and run guest tests")
    p.add_argument("--add", action="append", default=[], metavar="HOST[:GUEST]",
                   help="put a host file or directory in the guest (default guest path "
                        f"{DEFAULT_ADD_DIR}/NAME for a file, /srv/NAME for a directory); "
                        "a dynamically linked program brings its shared libraries")
    p.add_argument("--test", action="append", default=None, metavar="FILE",
                   help="run this guest test script (repeatable; default: every "
                        "tests/lanes/guest-tests/*.sh unless --shell-cmd is given)")
    p.add_argument("--shell-cmd", action="append", default=[], metavar="CMD",
                   help="run CMD with busybox sh in the guest as a test (output shown)")
    p.add_argument("--module", action="append", default=[], metavar="NAME",
                   help="insmod this kernel module (and its dependencies) too")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"kill QEMU after this many seconds (default {DEFAULT_TIMEOUT})")
    p.add_argument("--smp", type=int, default=DEFAULT_SMP, help="guest vCPUs")
    p.add_argument("--memory", type=int, default=2048, help="guest memory in MiB")
    p.add_argument("--append", default="", help="extra kernel command line")
    p.add_argument("--keep-initramfs", metavar="FILE", help="write the initramfs here")
    p.add_argument("--console-log", metavar="FILE", help="save the whole console here")
    p.add_argument("-v", "--verbose", action="store_true", help="echo the console live")
    s = sub.add_parser("shell", help="boot the lane with a shell on this terminal")
    s.add_argument("--add", action="append", default=[], metavar="HOST[:GUEST]")
    s.add_argument("--module", action="append", default=[], metavar="NAME")
    s.add_argument("--smp", type=int, default=DEFAULT_SMP)
    s.add_argument("--memory", type=int, default=2048)
    s.add_argument("--append", default="")
    args = parser.parse_args(argv)
    # SIGTERM (e.g. from `timeout`) unwinds like an exception: QEMU is killed and the
    # temporary initramfs removed on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.command == "shell":
        try:
            return shell([parse_add(a) for a in args.add], args.module, args.smp, args.memory,
                         args.append)
        except LaneError as e:
            print(f"lane: {e}", file=sys.stderr)
            return 2

    on_line = (lambda line: print(f"console: {line}", file=sys.stderr)) if args.verbose else None
    started = time.monotonic()
    try:
        run = run_lane(tests=args.test, shell_cmds=args.shell_cmd,
                       adds=[parse_add(a) for a in args.add], modules=args.module,
                       timeout=args.timeout, smp=args.smp, memory_mib=args.memory,
                       append=args.append, on_line=on_line,
                       keep_initramfs=args.keep_initramfs, quiet=not args.verbose)
    except LaneError as e:
        print(f"lane: {e}", file=sys.stderr)
        return 2
    if args.console_log:
        Path(args.console_log).write_text("\n".join(run.console) + "\n")
    print(f"1..{len(run.results)}")
    for r in run.results:
        print(r.tap())
        if not r.passed or r.name.startswith("shell-cmd-") or args.verbose:
            for line in r.output:
                print(f"#   {line}")
    for problem in run.problems:
        print(f"# lane: {problem}")
    if not run.done and not args.verbose:
        print("# last console lines:")
        for line in run.console[-40:]:
            print(f"#   {line}")
    boot = f"{run.boot_seconds:.2f}s" if run.boot_seconds is not None else "?"
    host_boot = f"{run.host_boot_seconds:.2f}s" if run.host_boot_seconds is not None else "?"
    print(f"# boot to /init: {boot} guest uptime, {host_boot} from QEMU start; "
          f"whole run {time.monotonic() - started:.1f}s")
    return 0 if run.ok else 1


if __name__ == "__main__":
    sys.exit(main())
