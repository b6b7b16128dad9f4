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


def vmctl_seeds():
    # a script of events for fuzz_vmctl.c (its OP_ list): opcodes and their operands; TURN
    # twice where a caller just connected (one turn accepts it, the next reads its request)
    CONNECT, REQUEST, HANGUP, STDIN, STDIN_CLOSE, OUTPUT, REPLIES, FRAME, RAW_FRAME, TURN, \
        WAIT, QUEUED, FINISH = range(13)
    EXEC, PS, SIGNAL, RESIZE, PAUSE, RESUME, MEMORY, STATS, PIDS_LIMIT = range(9)
    STDOUT, STDERR, EXIT, STDIN_CREDIT, EXEC_STARTED, EXEC_ERROR, PS_REPLY, STATS_REPLY, \
        PIDS_LIMIT_REPLY = range(9)

    def s(text):
        return bytes([len(text)]) + text.encode()

    def exec_(conn, tty=False):  # /bin/sh, 24x80
        return bytes([REQUEST, conn, EXEC, 1 if tty else 0]) + s("/bin/sh") + bytes([24, 80])

    def started(proc=0):  # proc: the index of the VMM's EXEC among those it sent
        return bytes([FRAME, EXEC_STARTED, proc]) + struct.pack("<I", 42)

    def data(stream, text, proc=0):
        return bytes([FRAME, stream, proc]) + s(text)

    def exit_(proc=0, code=0):
        return bytes([FRAME, EXIT, proc, 0, code])

    session = (exec_(0) + bytes([TURN, TURN]) + started() + bytes([REPLIES, 0, STDIN, 0]) +
               s("hello\n") + bytes([TURN, TURN, FRAME, STDIN_CREDIT, 0, 0]) +
               data(STDOUT, "hello\n") + data(STDERR, "warning\n") +
               bytes([OUTPUT, 0, 0, OUTPUT, 0, 1, TURN, TURN, REQUEST, 0, SIGNAL, 0, 15,
                      TURN, TURN, STDIN_CLOSE, 0, TURN, TURN]) +
               exit_() + bytes([TURN, TURN, REPLIES, 0]))
    write("vmctl", "exec-session", bytes([0]) + session)
    write("vmctl", "exec-tty",
          bytes([0]) + exec_(0, tty=True) + bytes([TURN, TURN]) + started() +
          bytes([REQUEST, 0, RESIZE, 0, TURN, TURN, STDIN, 0]) + s("ls\r") + bytes([TURN, TURN]) +
          data(STDOUT, "bin\r\n") + bytes([OUTPUT, 0, 0, TURN, TURN]) + exit_(code=1) +
          bytes([TURN, TURN, REPLIES, 0]))
    stats = struct.pack("<QIHHBB", 1000, 1 << 20, 4096, 8192, 3, 0)
    write("vmctl", "agent-requests",
          bytes([0, REQUEST, 0, PS, 0, REQUEST, 1, STATS, 0, REQUEST, 2, PIDS_LIMIT, 0, 100,
                 TURN, TURN, FRAME, PS_REPLY, 0, 0, 3]) + s("/sbin/init") +
          bytes([FRAME, STATS_REPLY, 1, 1]) + stats +
          bytes([FRAME, PIDS_LIMIT_REPLY, 2, 0, 0]) + s("") +
          bytes([1, TURN, TURN, REPLIES, 0, REPLIES, 1, REPLIES, 2]))
    write("vmctl", "machine-requests",
          bytes([0, REQUEST, 0, PAUSE, 0, REQUEST, 1, RESUME, 0, REQUEST, 2, MEMORY, 0, 0,
                 REQUEST, 3, PS, 4, TURN, TURN, REPLIES, 0, REPLIES, 1, REPLIES, 2, REPLIES, 3]))
    # the deadline at 1 ms: a ps and an exec the agent never answers, then a late start
    write("vmctl", "deadline",
          bytes([1, REQUEST, 0, PS, 0]) + exec_(1) + bytes([CONNECT, 2, TURN, TURN, WAIT, WAIT,
                                                            REPLIES, 0, REPLIES, 1]) +
          started() + data(STDOUT, "late") + exit_())
    write("vmctl", "no-room",
          bytes([0]) + exec_(0) + bytes([TURN, TURN]) + started() +
          bytes([QUEUED, 0x80, REQUEST, 1, PS, 0, REQUEST, 2, MEMORY, 0, 0, TURN, TURN,
                 REPLIES, 2, HANGUP, 0, 1, TURN, TURN, QUEUED, 0, TURN, TURN, REPLIES, 1]))
    # output up to the window (the pattern in 64 KiB frames), read out and credited
    write("vmctl", "window",
          bytes([0]) + exec_(0) + bytes([TURN, TURN]) + started() +
          bytes([FRAME, STDOUT, 0, 0xff, 0xf0]) * 4 + bytes([OUTPUT, 0, 0, TURN, TURN]) * 8 +
          bytes([FRAME, STDERR, 0, 0xff, 0xf0, TURN, TURN]))
    write("vmctl", "finish",
          bytes([0]) + exec_(0) + exec_(1) + bytes([TURN, TURN]) + started() +
          bytes([REQUEST, 2, PS, 0, TURN, TURN, FINISH]))
    write("vmctl", "exec-error",
          bytes([0]) + exec_(0) + bytes([TURN, TURN, FRAME, EXEC_ERROR, 0, 2, 2]) +
          s("exec: \"sh\": executable file not found in $PATH") + bytes([TURN, TURN, REPLIES, 0]))
    write("vmctl", "protocol-error",
          bytes([0]) + exec_(0) + bytes([TURN, TURN]) + exit_())


def agent_host_seeds():
    # a script for fuzz_agent_host.c (its OP_ list and agent_frame's kinds): a flags byte
    # (1: a NIC, so NETWORK before CONFIG; 2: the container already running; 4: the host's
    # end of the channel takes a few frames only), then events
    FRAME, RAW, HEADER, STEP, STEPS, AGENT_READ, OUT_READ, OUT_CLOSE, STDIN, STDIN_CLOSE, \
        SIGNAL, HANG_UP, STOP, DEAF = range(14)
    HELLO, CONFIGURED, ERROR, STARTED, STDOUT, STDERR, EXIT, STDIN_CREDIT, EXEC_STARTED, \
        EXEC_ERROR, PS_REPLY, STATS_REPLY, PIDS_LIMIT_REPLY, ANY = range(14)
    NET, RUNNING, SMALL_CHANNEL = 1, 2, 4

    def s(text):
        return bytes([len(text)]) + text.encode()

    def data(stream, n, proc=0, seed=0x41):  # proc 0: the container's; 0xc0 + k: process k
        return bytes([FRAME, stream, proc]) + struct.pack("<H", n) + bytes([seed])

    def exit_(kind=0, value=0, proc=0):
        return bytes([FRAME, EXIT, proc, kind, value])

    def steps(n):
        return bytes([STEPS, n - 1])

    boot = (bytes([FRAME, HELLO]) + s("0.1.0") + bytes([0, FRAME, CONFIGURED, STEP, AGENT_READ,
                                                         FRAME, STARTED]) +
            struct.pack("<I", 42) + bytes([STEP, AGENT_READ]))
    session = (data(STDOUT, 6) + data(STDERR, 5) + data(STDOUT, 0) + bytes([STDIN]) +
               struct.pack("<H", 5) + steps(4) + bytes([OUT_READ, 0, 0, OUT_READ, 1, 0, AGENT_READ,
                                                         FRAME, STDIN_CREDIT, 0, 0]) +
               steps(2) + exit_(value=3) + steps(4))
    write("agent_host", "session", bytes([0]) + boot + session)
    write("agent_host", "session-net", bytes([NET]) + boot + session)
    write("agent_host", "running", bytes([RUNNING]) + session)
    # output up to the window in whole frames, read out and credited, then past it
    window = b"".join(data(STDOUT, 0xfffc, seed=i) + steps(3) for i in range(4))
    write("agent_host", "window",
          bytes([RUNNING]) + window + bytes([OUT_READ, 0, 0xff, AGENT_READ]) + steps(4) + window)
    write("agent_host", "stdin",
          bytes([RUNNING]) + (bytes([STDIN, 0xff, 0xff]) + steps(2)) * 6 +
          bytes([AGENT_READ, FRAME, STDIN_CREDIT, 0, 0x90, AGENT_READ, STDIN_CLOSE]) + steps(4) +
          bytes([AGENT_READ, SIGNAL, 14, SIGNAL, 27]) + steps(2) + bytes([AGENT_READ]))
    # the agent does not read: the host's credits wait, and output past the window fails
    write("agent_host", "window-held",
          bytes([RUNNING | SMALL_CHANNEL]) + (bytes([STDIN, 0xff, 0xff]) + steps(2)) * 4 +
          window + window)
    write("agent_host", "deaf",
          bytes([RUNNING, DEAF, STDIN, 100, 0]) + steps(4) + data(STDOUT, 10) + steps(4))
    write("agent_host", "hang-up", bytes([RUNNING]) + data(STDOUT, 100) + bytes([HANG_UP]))
    write("agent_host", "exit-then-hang-up",
          bytes([RUNNING]) + data(STDOUT, 0x8000) + exit_(1, 9) + bytes([HANG_UP]))
    write("agent_host", "stop", bytes([RUNNING]) + data(STDERR, 100) + bytes([STOP, STEP]))
    write("agent_host", "boot-error",
          bytes([0, FRAME, ERROR, 4]) + struct.pack("<I", 2) + s("no root disk") + bytes([STEP]))
    write("agent_host", "boot-partial",
          bytes([0, HEADER]) + struct.pack("<HI", 0x0101, 100) + bytes([STEP]))
    write("agent_host", "exec-frames",
          bytes([RUNNING, FRAME, EXEC_STARTED, 0xc3]) + struct.pack("<I", 7) + steps(2) +
          data(STDOUT, 3, proc=0xc5) + bytes([FRAME, PS_REPLY]) + struct.pack("<I", 1) +
          bytes([1, FRAME, ANY]) + struct.pack("<H", 0x0201) + bytes([0]) + steps(2))
    # found in review: frames after EXIT {proc 0} were taken (a second EXIT replaced the
    # status); they are a protocol error now
    write("agent_host", "regress-exit-twice",
          bytes([RUNNING]) + exit_() + exit_(1, 9) + steps(2))
    write("agent_host", "output-after-exit",
          bytes([RUNNING]) + exit_() + data(STDOUT, 4) + steps(2))


if __name__ == "__main__":
    config_seeds()
    state_seeds()
    cli_seeds()
    fuse_seeds()
    render_seeds()
    vmctl_seeds()
    agent_host_seeds()
