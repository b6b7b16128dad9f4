"""Attacks on the cell kernel (notify placement) by a hostile cell, each run against the
real runtime on a real bundle. The cell kernel is the privileged host process that answers
the routed syscalls (sysinfo, sched_getaffinity: it writes the answer into the caller's
memory through /proc/<pid>/mem) and serves the /proc and /sys views over FUSE. Where an
attack is compared with the host, the same program runs with the gate off, so the host
kernel answers, which also shows that the probe sees what it claims to.

The probe is tests/helpers/cellk_attack_probe.c, built static here.
"""
import json
import os
import shutil
import subprocess

import pytest

from helpers import NATIVE_ANNOTATIONS, REPO, build_static, mountinfo

pytestmark = pytest.mark.runcell_specific

PROBE_SOURCE = REPO / "tests" / "helpers" / "cellk_attack_probe.c"


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    return build_static(tmp_path_factory.mktemp("cellk-attack"), "cellk-attack-probe",
                        PROBE_SOURCE.read_text(), ["-pthread"])


def as_cell(bundle):
    bundle.config["annotations"] = {
        k: v for k, v in bundle.config.get("annotations", {}).items() if k not in NATIVE_ANNOTATIONS
    }


def as_native(bundle):
    bundle.config.setdefault("annotations", {}).update(NATIVE_ANNOTATIONS)


def with_probe(bundle, probe):
    shutil.copy2(probe, bundle.path / "rootfs" / "bin" / "probe")


def memory_limit(bundle, memory):
    bundle.linux.setdefault("resources", {})["memory"] = {"limit": memory, "swap": memory}


def run_json(h, bundle, *argv, timeout=60):
    bundle.args(*argv)
    res = h.run_container(bundle, timeout=timeout)
    assert res.rc == 0, res.describe()
    lines = [line for line in res.out.splitlines() if line.startswith("{")]
    assert len(lines) == 1, res.describe()
    return json.loads(lines[0])


# --- routed syscalls aimed at memory the caller may not write ----------------------------

def test_routed_answers_respect_the_callers_page_protections(h, bundle, probe):
    """The cell kernel writes its answers through /proc/<pid>/mem, which forces its way past
    page protections (FOLL_FORCE): sysinfo or sched_getaffinity aimed at a read-only,
    PROT_NONE or execute-only page, at the program's own code or at a read-only mapping of
    a file overwrote them and succeeded, where the host kernel answers EFAULT and writes
    nothing. A program's read-only memory (its code, RELRO, sealed mappings) could so be
    rewritten through a routed call. The answers must be the host's, and no protected byte
    may change; sysinfo's padding bytes must come back zero, as the kernel leaves them (not
    the cell kernel's stack)."""
    with_probe(bundle, probe)
    memory_limit(bundle, 256 << 20)
    as_native(bundle)
    host = run_json(h, bundle, "/bin/probe", "memory")
    as_cell(bundle)
    cell = run_json(h, bundle, "/bin/probe", "memory")
    # the probe sees protected memory refused and a writable buffer written, natively
    assert host["sysinfo writable"] == [0, "", 1], host
    assert host["sysinfo read-only"] == [-1, "EFAULT", 0], host
    assert host["sysinfo padding is zero"] == 1, host
    assert cell["sysinfo writable"] == [0, "", 1], cell
    wrote = [name for name, r in cell.items() if isinstance(r, list) and name != "sysinfo writable"
             and r[2]]
    assert not wrote, f"the cell kernel wrote into protected memory: {wrote}\n{cell}"
    assert cell == host


def test_callers_killed_in_routed_syscalls_do_not_stop_the_cell_kernel(h, bundle, probe):
    """200 times a child whose 9 threads sit in routed syscalls is SIGKILLed: requests end
    while the cell kernel reads, checks or answers them (RECV, ID_VALID and SEND then fail
    with ENOENT), and pids are recycled meanwhile. The cell kernel must neither give up its
    listener (the cell's routed syscalls would then fail with ENOSYS) nor answer for the
    dead: afterwards sysinfo still gets the cell's memory limit."""
    with_probe(bundle, probe)
    as_cell(bundle)
    memory_limit(bundle, 192 << 20)
    out = run_json(h, bundle, "/bin/probe", "killed", "200", timeout=90)
    assert out == {"sysinfo": [0, ""], "totalram": 192 << 20}, out


# --- the views filesystem's mounts --------------------------------------------------------

def fuse_mounts_under(path):
    path = str(path).rstrip("/")
    return [mp for mp, fstype, _ in mountinfo()
            if fstype.startswith("fuse") and (mp == path or mp.startswith(path + "/"))]


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host")
@pytest.mark.parametrize("propagation", ["rshared", "private"])
def test_views_stay_in_the_cells_mount_namespace(h, bundle, propagation):
    """The views filesystem is mounted on a staging directory in the state directory (a host
    path, in the container's mount namespace) before its files are bound into the rootfs.
    On a host whose state directory is on a shared mount (systemd makes / and /run shared)
    and a rootfsPropagation that leaves that mount shared in the container's namespace
    (rshared, as containerd asks for bidirectional volumes; or private/slave, which change
    / alone), that mount propagated to the host: a FUSE mount served by the cell's kernel
    on the host, which outlived the container (a dead mount, and `delete` failed: "remove
    state directory: Directory not empty"). Here the state directory is made a shared
    mount as on such a host; the views must work in the cell and never appear on it."""
    root = h.rt.root
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", str(root), str(root)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(root)], check=True)
        as_cell(bundle)
        memory_limit(bundle, 128 << 20)
        bundle.linux["rootfsPropagation"] = propagation
        bundle.args("sleep", "60")
        cid = h.run_detached(bundle)
        res = h("exec", cid, "head", "-1", "/proc/meminfo")
        assert res.rc == 0 and res.out.split()[1] == str(128 << 10), res.describe()
        assert not fuse_mounts_under(root), "the cell's views are mounted on the host"
        res = h("delete", "--force", cid)
        assert res.rc == 0, res.describe()
        assert not fuse_mounts_under(root), "the cell's views are mounted on the host"
    finally:
        for mp in sorted(fuse_mounts_under(root), key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True)
        subprocess.run(["umount", "-l", str(root)], capture_output=True)


WRITING = ["open O_RDWR", "open O_WRONLY|O_TRUNC", "open O_WRONLY|O_APPEND",
           "open O_RDONLY|O_TRUNC", "reopen O_PATH as O_RDWR", "truncate", "chmod", "chown",
           "utimensat", "setxattr", "mknod over it", "unlink", "rename away", "rename over it",
           "link to it", "mmap MAP_SHARED writable"]
REACHING = ["directory below it", "openat .. of it", "getdents of it"]


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host")
def test_a_view_cannot_be_changed_or_reached_past(h, bundle, probe):
    """Every door to changing /proc/meminfo's view or reaching the views filesystem behind
    it, as root with the default capabilities: write opens (also an O_PATH descriptor
    reopened through /proc/self/fd), truncate, chmod/chown/utimes/xattrs, replacing,
    removing or linking it, a writable shared mapping, ".." and getdents through it. Each
    must fail (the views are a read-only filesystem the cell kernel serves; the server
    itself accepts any open, so the read-only mount is what stands here). A private writable
    mapping is the writer's copy, not the next reader's; reads at 2^62 and after a seek
    there end at once; O_DIRECT reads the text; and the view is the cell's afterwards."""
    with_probe(bundle, probe)
    memory_limit(bundle, 128 << 20)
    as_cell(bundle)
    # first on an ordinary file, to show that the probe sees success (not natively on
    # /proc/meminfo: procfs's chmod changes the entry for every procfs on the host)
    bundle.sh("echo some text > /dev/shm/file; /bin/probe views /dev/shm/file;"
              " /bin/probe views /proc/meminfo; head -1 /proc/meminfo")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    control = json.loads(res.out.splitlines()[0])
    assert control["open O_RDWR"] == "ok" and control["chmod"] == "ok", control
    out = json.loads(res.out.splitlines()[1])
    assert set(WRITING + REACHING) <= set(out), out
    allowed = [name for name in WRITING + REACHING if out[name] == "ok"]
    assert not allowed, f"these succeeded on a view: {allowed}\n{out}"
    assert out["private mapping written, read again"] == "same", out
    assert (out["pread at 2^62"], out["read after a seek to 2^62"]) == (0, 0), out
    assert out["SEEK_END is the length"] == 1 and out["O_DIRECT reads the text"] == 1, out
    assert res.out.splitlines()[2].split()[1] == str(128 << 10), res.out
