"""The MPK placement of the cell kernel (xgate), in the QEMU hardware lane (tests/lanes/):
this machine's CPUs have no protection keys, the lane's emulated CPU (-cpu max) has them.

The lane boots once with runcell, a busybox rootfs holding tests/lanes/xgate/xgate_probe.c
built static and dynamic (with this host's libc and dynamic loader: their WRPKRU and XRSTOR
instructions are what the scan must neutralize), bundles for the three placements with
256 MiB and 1.5 CPUs, and the addresses of the gate's syscall instruction and of the cell
kernel's data read from runcell-xgate; tests/lanes/xgate/xgate.sh runs the checks and the
attacks inside. Skipped when qemu-system-x86_64 is not installed.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import default_spec, make_rootfs

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "lanes"))

import lane  # noqa: E402
from lane_kernel import LaneError  # noqa: E402

SCRIPT = REPO / "tests" / "lanes" / "xgate" / "xgate.sh"
PROBE = REPO / "tests" / "lanes" / "xgate" / "xgate_probe.c"
HOST_LIBS = ["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]
PY_PROBE = REPO / "tests" / "lanes" / "xgate" / "py_probe.py"
HOST_PYTHON = Path("/usr/bin/python3")


def copy_at_same_path(rootfs, path):
    dst = rootfs / str(path).lstrip("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, dst)


def add_python(rootfs):
    """Debian's python3 with its shared libraries and exactly the standard library modules
    py_probe.py loads (found by running it here with -S), at their host paths."""
    exe = HOST_PYTHON.resolve()
    listing = subprocess.run(
        [str(exe), "-S", "-c",
         "import runpy, sys, io, contextlib\n"
         "with contextlib.redirect_stdout(io.StringIO()):\n"
         f"    runpy.run_path({str(PY_PROBE)!r})\n"
         "print('\\n'.join(sorted({m.__file__ for m in sys.modules.values()"
         " if getattr(m, '__file__', None)})))"],
        capture_output=True, text=True, check=True).stdout.split()
    copy_at_same_path(rootfs, exe)
    (rootfs / "usr/bin/python3").symlink_to(exe.name)
    for f in listing:
        copy_at_same_path(rootfs, Path(f))
    ldd = subprocess.run(["ldd", str(exe)], capture_output=True, text=True, check=True).stdout
    for line in ldd.splitlines():
        parts = line.split("=>")
        lib = (parts[1] if len(parts) > 1 else parts[0]).split("(")[0].strip()
        if lib.startswith("/"):
            copy_at_same_path(rootfs, Path(lib))
    shutil.copy2(PY_PROBE, rootfs / "py_probe.py")


def bundle(bundles, name, annotations, args=("sleep", "1000")):
    spec = default_spec()
    spec["root"] = {"path": "/srv/rootfs", "readonly": False}
    spec["annotations"] = annotations
    spec["process"]["args"] = list(args)
    resources = spec["linux"].setdefault("resources", {})
    resources["memory"] = {"limit": 256 * 1024 * 1024}
    resources["cpu"] = {"quota": 150000, "period": 100000}
    (bundles / name).mkdir(parents=True)
    (bundles / name / "config.json").write_text(json.dumps(spec, indent=1))


def xgate_symbols(xgate_bin):
    out = subprocess.run(["nm", "-P", str(xgate_bin)], capture_output=True, text=True,
                         check=True).stdout
    return {f[0]: int(f[2], 16) for f in (line.split() for line in out.splitlines())
            if len(f) >= 3}


@pytest.fixture(scope="module")
def xgate_lane(runcell_bin, tmp_path_factory):
    if shutil.which(lane.lane_qemu.QEMU) is None:
        pytest.skip(f"{lane.lane_qemu.QEMU} is not installed (apt-get install qemu-system-x86)")
    xgate_bin = Path(runcell_bin).parent / "runcell-xgate"
    if not xgate_bin.is_file():
        pytest.fail(f"{xgate_bin} is missing: it is built with runcell", pytrace=False)
    work = tmp_path_factory.mktemp("xgate-lane")
    rootfs = work / "rootfs"
    make_rootfs(rootfs)
    for name, static in (("probe-static", True), ("probe-dyn", False)):
        cmd = ["gcc", "-O2", "-pthread", "-o", str(rootfs / "bin" / name), str(PROBE)]
        if static:
            cmd.insert(1, "-static")
        subprocess.run(cmd, check=True, capture_output=True)
    for lib in HOST_LIBS:
        copy_at_same_path(rootfs, Path(lib))
    if HOST_PYTHON.exists():
        add_python(rootfs)
    bundles = work / "bundles"
    bundle(bundles, "xgate", {"run.runcell.placement": "xgate"})
    bundle(bundles, "notify", {"run.runcell.placement": "notify"})
    bundle(bundles, "native", {"run.runcell.gate": "off"})
    bundle(bundles, "xgate-run", {"run.runcell.placement": "xgate"},
           ("/bin/probe-static", "views"))
    syms = xgate_symbols(xgate_bin)
    info = work / "info"
    info.mkdir()
    # seccomp reports the address after the syscall instruction; it is 2 bytes long
    (info / "gate-insn").write_text(hex(syms["xgate_syscall_ret"] - 2))
    (info / "kernel-data").write_text(hex(syms["xgate_stack_busy"]))
    adds = [(Path(runcell_bin), "/usr/local/bin/runcell"), (rootfs, "/srv/rootfs"),
            (bundles, "/srv/bundles"), (info, "/srv/xgate")]
    try:
        return lane.run_lane(log=lambda msg: None, tests=[SCRIPT], adds=adds,
                             modules=["fuse"], timeout=600)
    except LaneError as e:
        pytest.fail(f"the lane could not be prepared: {e}", pytrace=False)


def test_xgate_in_the_lane(xgate_lane):
    result = xgate_lane.result(lane.lane_guest.test_name(SCRIPT.stem))
    output = "\n".join(result.output)
    if result.status == "skip":
        pytest.skip(f"xgate.sh skipped in the guest: {result.reason}")
    assert result.status == "ok", (
        f"{result.tap()}\n--- guest output ---\n{output}"
        + ("" if xgate_lane.done else "\n--- lane ---\n" + xgate_lane.failure_report()))
    assert "all xgate checks passed" in output
