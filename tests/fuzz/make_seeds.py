#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/<target>/ (valid inputs, a starting point
for the fuzzer). Run it again after changing an input format; regression inputs found by
fuzzing are added to the corpus by hand, next to these."""
import json
import pathlib
import shutil
import struct
import subprocess
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
TOP = HERE.parent.parent


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def runc_spec(*args):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["runc", "spec", *args], cwd=tmp, check=True)
        return pathlib.Path(tmp, "config.json").read_text()


def config_seeds():
    if shutil.which("runc"):
        write("config", "runc-spec.json", runc_spec())
        write("config", "runc-spec-rootless.json", runc_spec("--rootless"))
    write("config", "full-config.json", (TOP / "tests/unit/data/oci/full_config.json").read_text())
    minimal = {"ociVersion": "1.0.2", "root": {"path": "rootfs"},
               "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}}}
    write("config", "minimal.json", json.dumps(minimal))


def state_seeds():
    state = {"ociVersion": "1.2.0", "id": "c1", "status": "running", "pid": 4242,
             "pidStartTime": 123456, "bundle": "/run/bundles/c1", "rootfs": "/run/bundles/c1/rootfs",
             "created": "2026-11-22T10:00:00.123456789Z", "owner": "", "cgroupPath": "/runcell/c1",
             "mode": "cell", "annotations": {"run.runcell.gate": "on"}, "systemdCgroup": False,
             "useTerminal": True, "pausedFromCreated": False}
    write("state", "running.json", json.dumps(state, indent=2))
    write("state", "created-minimal.json",
          json.dumps({"ociVersion": "1.2.0", "id": "c2", "status": "created"}))
    paused = dict(state, status="paused", pausedFromCreated=True, mode="native")
    write("state", "paused.json", json.dumps(paused))


def cli_seeds():
    argvs = [
        ["--bundle", "/run/b", "--pid-file", "/run/b/pid", "c1"],
        ["-b", "bundle", "--console-socket=/tmp/sock", "--no-pivot", "c1"],
        ["--preserve-fds", "3", "-no-new-keyring", "--no-pivot=false", "c1"],
        ["-bbundle", "--", "--not-an-option"],
        ["--help"],
    ]
    for i, argv in enumerate(argvs):
        write("cli", f"argv-{i}", b"\0".join(a.encode() for a in argv))


# FUSE requests (include/uapi/linux/fuse.h): fuse_in_header is len, opcode, unique, nodeid,
# uid, gid, pid, padding (u32 u32 u64 u64 u32 u32 u32 u32).
FUSE_LOOKUP, FUSE_GETATTR, FUSE_OPEN, FUSE_READ, FUSE_STATFS, FUSE_RELEASE = 1, 3, 14, 15, 17, 18
FUSE_FLUSH, FUSE_INIT, FUSE_FORGET, FUSE_INTERRUPT = 25, 26, 2, 36
ROOT = 1
MEMINFO = ROOT + 1  # the views' node ids follow the root, in enum rc_view order


def request(opcode, unique, nodeid, arg=b""):
    return struct.pack("<IIQQIIII", 40 + len(arg), opcode, unique, nodeid, 0, 0, 1, 0) + arg


def fuse_init(unique=1):
    # fuse_init_in: major, minor, max_readahead, flags, flags2, unused[11]
    return request(FUSE_INIT, unique, 0, struct.pack("<IIII", 7, 31, 131072, 0) + bytes(48))


def fuse_read(unique, nodeid, fh, offset, size):
    # fuse_read_in: fh, offset, size, read_flags, lock_owner, flags, padding
    return request(FUSE_READ, unique, nodeid, struct.pack("<QQIIQII", fh, offset, size, 0, 0, 0, 0))


def fuse_open(unique, nodeid):
    return request(FUSE_OPEN, unique, nodeid, struct.pack("<II", 0x8000, 0))  # O_RDONLY|O_LARGEFILE


def fuse_release(unique, nodeid, fh):
    return request(FUSE_RELEASE, unique, nodeid, struct.pack("<QIIQ", fh, 0, 0, 0))


def fuse_seeds():
    lookup = request(FUSE_LOOKUP, 2, ROOT, b"meminfo\0")
    write("views_fuse", "init", fuse_init())
    write("views_fuse", "lookup", lookup)
    write("views_fuse", "getattr", request(FUSE_GETATTR, 3, MEMINFO, bytes(16)))
    write("views_fuse", "open", fuse_open(4, MEMINFO))
    write("views_fuse", "read", fuse_read(5, MEMINFO, 0, 0, 4096))
    write("views_fuse", "statfs", request(FUSE_STATFS, 6, ROOT))
    # a whole session: the handler keeps open files between requests
    write("views_fuse", "session",
          fuse_init() + lookup + fuse_open(3, MEMINFO) + fuse_read(4, MEMINFO, 0, 0, 4096)
          + fuse_read(5, MEMINFO, 0, 64, 4096) + request(FUSE_FLUSH, 6, MEMINFO, bytes(24))
          + fuse_release(7, MEMINFO, 0) + request(FUSE_FORGET, 8, MEMINFO, struct.pack("<Q", 1)))
    write("views_fuse", "two-opens",
          fuse_open(1, ROOT + 1 + 1) + fuse_open(2, ROOT + 1 + 2)
          + fuse_read(3, ROOT + 1 + 2, 1, 10, 100) + fuse_release(4, 0, 1)
          + request(FUSE_INTERRUPT, 5, 0, struct.pack("<Q", 3)))


def head(path, limit):
    try:
        return pathlib.Path(path).read_text()[:limit]
    except OSError:
        return ""


def render_seeds():
    memory_stat = ("cache 1048576\nrss 2097152\ntotal_active_anon 1048576\n"
                   "total_inactive_file 524288\ntotal_rss 2097152\nactive_file 4096\n")
    cpuinfo = head("/proc/cpuinfo", 3000)
    texts = "\0".join([memory_stat, head("/proc/meminfo", 3000), cpuinfo, head("/proc/stat", 3000)])
    gib = 1 << 30
    cases = {
        # view, allowed cpus, limit, usage, cache, inactive_file, quota, period, pids, page_cache, uptime
        "meminfo-limited": (0, 2, gib, gib // 4, gib // 16, gib // 32, 0, 0, 5, gib // 16, 12.5),
        "meminfo-unlimited": (0, 2, 0, gib // 4, 0, 0, 0, 0, 0, 0, 1.0),
        "cpuinfo-quota": (1, 8, 0, 0, 0, 0, 150000, 100000, 3, 0, 3.0),
        "stat-one-cpu": (2, 2, 0, 0, 0, 0, 50000, 100000, 0, 0, 100.0),
        "uptime": (3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 86400.25),
        "online": (4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0.0),
        "possible": (5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0.0),
    }
    for name, c in cases.items():
        header = struct.pack("<BH8Qd", *c)
        assert len(header) == 75
        write("views_render", name, header + texts.encode())


if __name__ == "__main__":
    config_seeds()
    state_seeds()
    cli_seeds()
    fuse_seeds()
    render_seeds()
