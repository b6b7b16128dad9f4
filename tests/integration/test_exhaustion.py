"""Resource exhaustion (issue 9, item 4): a fork bomb under a pids limit, a memory hog
under a memory limit, a container filling its own filesystem, and a full state directory.
Each time the container runs into its own limit (EAGAIN, the OOM killer, ENOSPC), the
host and a second container carry on, runcell's commands still answer and say what
happened, and `delete --force` leaves nothing behind.

The limits themselves (pids.max, memory.limit_in_bytes ...) and the OOM event stream
have their own tests (test_resources.py, test_events.py); these test what happens when
a container pushes against them. Cells (runcell's default) and native containers (the
gate off) are both run where the mode could matter.
"""
import errno
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers import (
    CGROUP_TEST_PARENT,
    cgroup_dirs_named,
    controller_dir,
    make_rootfs,
    mounts_under,
    process_alive,
    processes_mentioning,
    set_mode,
)

MiB = 1024 * 1024

modes = pytest.mark.parametrize("mode", ["cell", "native"])


def cgroup_file(controller, cid, name):
    mount, version = controller_dir(controller)
    if mount is None:
        pytest.skip(f"the {controller} controller is not mounted on this host")
    return mount / CGROUP_TEST_PARENT / cid / name, version


def key_values(text):
    return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line.strip())}


def run_detached(h, bundle, cid, log):
    """`run --detach` with the container's stdout and stderr going to the host file log."""
    bundle.linux["cgroupsPath"] = f"/{CGROUP_TEST_PARENT}/{cid}"
    bundle.write()
    with open(log, "ab") as f:
        res = h("run", "--detach", "--bundle", bundle.path, "--pid-file", h.pid_file(cid), cid,
                stdout=f, stderr=f)
    assert res.rc == 0, res.describe()
    h.note_pid(h.pid_file(cid).read_text().strip())


def stats_of(h, cid):
    res = h("events", "--stats", cid, timeout=10)
    assert res.rc == 0, res.describe()
    event = json.loads(res.out)
    assert event["type"] == "stats" and event["id"] == cid, event
    return event["data"]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def a_bystander_runs(h, mode, text):
    """A second container, started while the first is exhausting its limit, runs normally."""
    other = set_mode(h.bundle(), mode).args("echo", text)
    assert h.output_of(other, timeout=20) == text + "\n"


def delete_leaves_nothing(h, cid):
    init = h.state(cid).get("pid")
    start = h.pids.get(init)
    res = h.delete(cid, force=True, timeout=20)
    assert res.rc == 0, res.describe()
    assert not (h.rt.root / cid).exists()
    assert cgroup_dirs_named(cid) == []
    assert processes_mentioning(cid) == []
    assert not (init and process_alive(init, start)), f"init {init} survived delete --force"


# ---------------------------------------------------------------------------------------
# A fork bomb under a pids limit

PIDS_LIMIT = 64
# Each function call forks two more; a fork that fails ends that branch with busybox's
# "can't fork" (EAGAIN). The init then becomes a sleep, which needs no fork.
FORK_BOMB = "bomb() { bomb | bomb & }; bomb; exec sleep 1000"


@modes
@pytest.mark.parametrize("pidns", ["pidns", "hostpid"])
def test_fork_bomb_stays_within_its_pids_limit(h, workdir, mode, pidns):
    bundle = set_mode(h.bundle(), mode).sh(FORK_BOMB)
    bundle.linux.setdefault("resources", {})["pids"] = {"limit": PIDS_LIMIT}
    if pidns == "hostpid":
        # No pid namespace: killing the init does not take the bomb with it, so delete
        # --force must sweep a cgroup whose processes keep forking.
        bundle.drop_namespace("pid")
    cid = h.new_id()
    log = workdir / f"{cid}.log"
    run_detached(h, bundle, cid, log)
    current, _ = cgroup_file("pids", cid, "pids.current")
    events, _ = cgroup_file("pids", cid, "pids.events")

    # The bomb runs into the limit: the kernel counts refused forks and busybox says why.
    wait_for(lambda: key_values(events.read_text()).get("max", 0) > 0, 10,
             f"a fork refused by the pids limit ({events})")
    wait_for(lambda: b"Resource temporarily unavailable" in log.read_bytes(), 10,
             "the bomb's EAGAIN on its stderr")
    assert b"can't fork" in log.read_bytes()

    # While it keeps trying, it never holds more than its limit.
    deadline = time.monotonic() + 1.5
    peak = 0
    while time.monotonic() < deadline:
        peak = max(peak, int(current.read_text()))
    assert 0 < peak <= PIDS_LIMIT, peak

    # Another container and runcell's own commands are unaffected.
    a_bystander_runs(h, mode, "bystander")
    assert h.status(cid) == "running"
    res = h("ps", "--format", "json", cid, timeout=10)
    assert res.rc == 0, res.describe()
    assert 1 <= len(json.loads(res.out)) <= PIDS_LIMIT, res.out
    stats = stats_of(h, cid)["pids"]
    assert stats["limit"] == PIDS_LIMIT and 0 < stats["current"] <= PIDS_LIMIT, stats
    assert any(line.split()[:1] == [cid] for line in h("list").out.splitlines()[1:])

    delete_leaves_nothing(h, cid)


# ---------------------------------------------------------------------------------------
# A memory hog under a memory limit

MEMORY_LIMIT = 32 * MiB


@modes
def test_memory_hog_is_oom_killed_and_reported(h, workdir, host_dir, mode):
    from test_events import EventStream  # the OOM watch of `runcell events`

    _, version = cgroup_file("memory", "x", "memory.stat")
    # The hog (tail buffering an endless line) is the largest process in the cgroup, so
    # the OOM killer picks it; the init's shell outlives it and records how it ended.
    bundle = set_mode(h.bundle(), mode).sh(
        "tail /dev/zero; echo $? > /host/hog-status; exec sleep 1000")
    bundle.bind(host_dir, "/host")
    # memory+swap equal to memory: no swap can absorb the allocation.
    bundle.linux.setdefault("resources", {})["memory"] = {"limit": MEMORY_LIMIT,
                                                          "swap": MEMORY_LIMIT}
    neighbour_bundle = set_mode(h.bundle(), mode).args("sleep", "1000")
    neighbour = h.new_id()
    run_detached(h, neighbour_bundle, neighbour, workdir / "neighbour.log")

    cid = h.new_id()
    bundle.linux["cgroupsPath"] = f"/{CGROUP_TEST_PARENT}/{cid}"
    bundle.write()
    res = h.create(bundle, cid, write=False)
    if res.rc != 0 and ("memsw" in res.err or "swap" in res.err):
        pytest.skip(f"this host cannot limit swap, so an OOM is not certain: {res.msg}")
    assert res.rc == 0, res.describe()
    stream = EventStream(h, "--interval", "30s", cid)
    try:
        stream.wait_registered()
        h.start_ok(cid)
        status = host_dir / "hog-status"
        # not just exists(): the shell creates the file before echo writes the status
        wait_for(lambda: status.exists() and status.read_text().strip(), 20, "the hog to end")
        assert status.read_text().strip() == "137", "the hog did not die of SIGKILL"
        # `events` says so, in runc's words.
        assert stream.read_until(lambda lines: any(e["type"] == "oom" for e in lines),
                                 timeout=10), f"{stream.lines} {stream.stderr()}"
        assert {"type": "oom", "id": cid} in stream.lines
    finally:
        stream.stop()

    # The kernel killed in the hog's cgroup and nowhere else.
    if version == 1:
        kills = key_values(cgroup_file("memory", cid, "memory.oom_control")[0].read_text())
        neighbour_kills = key_values(
            cgroup_file("memory", neighbour, "memory.oom_control")[0].read_text())
    else:
        kills = key_values(cgroup_file("memory", cid, "memory.events")[0].read_text())
        neighbour_kills = key_values(
            cgroup_file("memory", neighbour, "memory.events")[0].read_text())
    assert kills["oom_kill"] >= 1, kills
    assert neighbour_kills["oom_kill"] == 0, neighbour_kills

    # --stats (runc's types.Stats, which has no OOM counter: the oom event above is how runc
    # and runcell report a kill): the limit, and on v1 the high-water mark at the limit and
    # the kernel's failcnt for memory and memory+swap as the cgroup has them (kernel 6.18
    # leaves both 0 on an OOM, so equality is what can be checked).
    memory = stats_of(h, cid)["memory"]
    assert memory["usage"]["limit"] == MEMORY_LIMIT, memory["usage"]
    assert memory["usage"]["usage"] <= MEMORY_LIMIT, memory["usage"]
    if version == 1:
        assert memory["usage"]["max"] == MEMORY_LIMIT, memory["usage"]
        assert memory["swap"]["limit"] == MEMORY_LIMIT, memory["swap"]
        for entry, name in (("usage", "memory.failcnt"), ("swap", "memory.memsw.failcnt")):
            failcnt = int(cgroup_file("memory", cid, name)[0].read_text())
            assert memory[entry]["failcnt"] == failcnt, (entry, memory[entry], failcnt)

    # The container itself and its neighbour live on; the host's runtime still answers.
    assert h.status(cid) == "running"
    assert h.status(neighbour) == "running"
    res = h("exec", neighbour, "echo", "neighbour", timeout=20)
    assert res.rc == 0 and res.out == "neighbour\n", res.describe()
    res = h("exec", cid, "echo", "survivor", timeout=20)
    assert res.rc == 0 and res.out == "survivor\n", res.describe()
    a_bystander_runs(h, mode, "bystander")
    delete_leaves_nothing(h, cid)
    delete_leaves_nothing(h, neighbour)


# ---------------------------------------------------------------------------------------
# A container filling its own filesystem


def fill_script(path):
    """dd until the filesystem is full; the shell records dd's status and stays up."""
    return (f"dd if=/dev/zero of={path} bs=1k; echo dd-status=$?; "
            f"echo again > {path}.more; echo write-status=$?; exec sleep 1000")


def check_filled(h, cid, log, mode, path):
    wait_for(lambda: b"write-status=" in log.read_bytes(), 20, "the container to fill its disk")
    text = log.read_text(errors="replace")
    assert "No space left on device" in text, text
    assert "dd-status=1" in text, text
    assert "write-status=1" in text, text  # still full, not a transient failure
    # The container, exec and state keep working on a full filesystem.
    assert h.status(cid) == "running"
    res = h("exec", cid, "sh", "-c", f"test -s {path} && echo alive", timeout=20)
    assert res.rc == 0 and res.out == "alive\n", res.describe()
    a_bystander_runs(h, mode, "bystander")


@modes
def test_container_filling_its_loop_mounted_rootfs(h, workdir, mode):
    for tool in ("mkfs.ext4", "losetup", "fallocate"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (e2fsprogs, util-linux)")
    if not os.path.exists("/dev/loop-control"):
        pytest.skip("no loop devices on this host (/dev/loop-control is missing)")
    image = workdir / "rootfs.img"
    # Allocated up front, so the host gives the container's filesystem 24 MiB and not a
    # block more, whatever it writes.
    subprocess.run(["fallocate", "-l", str(24 * MiB), image], check=True)
    # nodiscard: mkfs would otherwise punch the allocation back out of the image.
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-E", "nodiscard", image], check=True,
                   capture_output=True)
    blocks_before = os.stat(image).st_blocks
    assert blocks_before * 512 >= 24 * MiB, "the image is not allocated up front"
    bundle = set_mode(h.bundle(), mode)
    shutil.rmtree(bundle.rootfs)
    bundle.rootfs.mkdir()
    res = subprocess.run(["mount", "-o", "loop", image, bundle.rootfs], capture_output=True,
                         text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot loop-mount an ext4 image here: {res.stderr.strip()}")
    cid = None
    try:
        make_rootfs(bundle.rootfs)
        bundle.config["root"]["readonly"] = False
        bundle.sh(fill_script("/fill"))
        cid = h.new_id()
        log = workdir / f"{cid}.log"
        bundle.write()
        outside = sorted(p.name for p in bundle.path.iterdir())
        run_detached(h, bundle, cid, log)
        check_filled(h, cid, log, mode, "/fill")
        delete_leaves_nothing(h, cid)
        st = os.statvfs(bundle.rootfs)
        assert st.f_bavail * st.f_frsize < MiB, "the container did not fill its filesystem"
        fill = bundle.rootfs / "fill"
        assert 16 * MiB < fill.stat().st_size < 24 * MiB, fill.stat().st_size
        # The host paid nothing beyond the image: it neither grew nor allocated more, and
        # nothing appeared next to the rootfs.
        assert os.stat(image).st_size == 24 * MiB
        # (fewer blocks is fine: the host may trim the loop-mounted filesystem meanwhile)
        assert os.stat(image).st_blocks <= blocks_before
        assert sorted(p.name for p in bundle.path.iterdir()) == outside
    finally:
        if cid is not None:
            h.delete(cid, force=True)
        subprocess.run(["umount", bundle.rootfs], capture_output=True)
        if mounts_under(bundle.rootfs):
            subprocess.run(["umount", "-l", bundle.rootfs], capture_output=True)
    assert mounts_under(bundle.rootfs) == []
    # mount -o loop set autoclear: the loop device went with the mount.
    res = subprocess.run(["losetup", "-j", image], capture_output=True, text=True)
    assert res.stdout.strip() == "", f"loop device left attached: {res.stdout}"


@modes
def test_container_filling_a_size_limited_tmpfs(h, workdir, mode):
    bundle = set_mode(h.bundle(), mode).sh(fill_script("/data/fill"))
    bundle.add_mount("/data", "tmpfs", "tmpfs", ["nosuid", "nodev", "size=4m"])
    cid = h.new_id()
    log = workdir / f"{cid}.log"
    run_detached(h, bundle, cid, log)
    check_filled(h, cid, log, mode, "/data/fill")
    res = h("exec", cid, "sh", "-c", "wc -c < /data/fill", timeout=20)
    delete_leaves_nothing(h, cid)
    # 4 MiB and not a byte more reached the tmpfs (the host's memory backs it).
    assert res.rc == 0 and int(res.out) <= 4 * MiB, res.describe()
    assert list(Path(bundle.rootfs).rglob("fill*")) == []  # nothing landed in the rootfs


# ---------------------------------------------------------------------------------------
# A full state directory


def fill_up(directory, inodes):
    """Uses up the filesystem's blocks (one growing file) or its inodes (empty files)."""
    n = 0
    try:
        if inodes:
            while True:
                (directory / f"inode{n}").touch()
                n += 1
        with open(directory / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError as e:
        assert e.errno == errno.ENOSPC, e


def free_up(directory):
    for p in directory.iterdir():
        if p.name == "filler" or p.name.startswith("inode"):
            p.unlink()


@modes
@pytest.mark.parametrize("full", ["blocks", "inodes"])
def test_create_on_a_full_state_directory(h, mode, full):
    root = h.rt.root
    root.mkdir(parents=True, exist_ok=True)
    # Enough inodes for the root, one container's state directory and what it holds.
    size = "size=256k,nr_inodes=16" if full == "inodes" else "size=64k"
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"{size},mode=0711", "rct-state", root],
                   check=True)
    try:
        # A container made while there is room, to check that the full disk harms it not.
        first = h.create_ok(set_mode(h.bundle(), mode).args("sleep", "1000"))
        fill_up(root, inodes=full == "inodes")

        bundle = set_mode(h.bundle(), mode).args("sleep", "1000")
        cid = h.new_id()
        res = h.create(bundle, cid, timeout=20)
        assert res.rc != 0, res.describe()
        if full == "blocks":
            want = (rf"save state of {cid} in {re.escape(str(root))}/{cid}: "
                    r"write state\.json: No space left on device")
        else:
            want = (rf"create state directory {re.escape(str(root))}/{cid}: "
                    r"No space left on device")
        assert re.fullmatch(want, res.msg), res.describe()
        # Nothing of the failed create is left: no process, cgroup or state directory.
        assert not (root / cid).exists()
        assert cgroup_dirs_named(cid) == []
        assert processes_mentioning(cid) == []
        # The commands that read the state directory still work, the first container too.
        res = h("list", "--format", "json", timeout=10)
        assert res.rc == 0, res.describe()
        assert [c["id"] for c in json.loads(res.out)] == [first], res.out
        assert h.status(first) == "created"
        res = h.delete(cid)
        assert res.rc != 0 and res.msg == "container does not exist", res.describe()

        # With room again, the same id can be created.
        free_up(root)
        res = h.create(bundle, cid, timeout=20)
        assert res.rc == 0, res.describe()
        assert h.status(cid) == "created"
        for c in (first, cid):
            delete_leaves_nothing(h, c)
        res = h("list", "-q")
        assert res.rc == 0 and res.out == "", res.describe()
    finally:
        for c in h.ids:
            h.delete(c, force=True)
        subprocess.run(["umount", root], capture_output=True)
    assert mounts_under(root) == []


@modes
def test_start_on_a_full_state_directory(h, mode):
    """start execs the program before it records "running": when the record cannot be
    written, start says so, and the state still tells the truth (runc derives "running"
    from its exec fifo being gone; runcell from its start socket being gone)."""
    root = h.rt.root
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0711", "rct-state", root],
                   check=True)
    try:
        cid = h.create_ok(set_mode(h.bundle(), mode).args("sleep", "1000"))
        init = h.state(cid)["pid"]
        fill_up(root, inodes=False)
        res = h.start(cid, timeout=20)
        assert res.rc != 0, res.describe()
        assert re.fullmatch(rf"save state of {cid} in {re.escape(str(root))}/{cid}: "
                            r"write state\.json: No space left on device",
                            res.msg), res.describe()
        # The program runs, and every reader says so.
        wait_for(lambda: Path(f"/proc/{init}/cmdline").read_bytes().startswith(b"sleep\0"),
                 10, "the init to exec the program")
        assert h.status(cid) == "running"
        res = h("list", "--format", "json")
        assert res.rc == 0 and [c["status"] for c in json.loads(res.out)] == ["running"], res.out
        res = h.start(cid)
        assert res.rc != 0 and res.msg == "cannot start an already running container", \
            res.describe()
        res = h("exec", cid, "echo", "inside", timeout=20)
        assert res.rc == 0 and res.out == "inside\n", res.describe()
        # delete --force needs no room.
        delete_leaves_nothing(h, cid)
        free_up(root)
        res = h("list", "-q")
        assert res.rc == 0 and res.out == "", res.describe()
    finally:
        for c in h.ids:
            h.delete(c, force=True)
        subprocess.run(["umount", root], capture_output=True)
    assert mounts_under(root) == []


# ---------------------------------------------------------------------------------------
# A memory limit below what setting up the container needs


@modes
def test_memory_limit_below_the_set_up_names_the_oom_kill(h, mode):
    """A limit of a page: the init is OOM-killed while it sets the container up. runc
    refuses the limit ("unable to set memory limit to 4096 (current usage: ...)"); runcell,
    which sets the limit before the init joins, said only "container init exited
    unexpectedly". It must name the OOM kill and the limit, and leave nothing."""
    if controller_dir("memory")[0] is None:
        pytest.skip("the memory controller is not mounted on this host")
    bundle = set_mode(h.bundle(), mode).args("true")
    bundle.linux.setdefault("resources", {})["memory"] = {"limit": 4096}
    cid = h.new_id()
    bundle.linux["cgroupsPath"] = f"/{CGROUP_TEST_PARENT}/{cid}"
    res = h.create(bundle, cid, timeout=20)
    assert res.rc != 0, res.describe()
    assert res.msg == ("set up container: container init exited unexpectedly: the OOM killer "
                       "killed it: linux.resources.memory.limit 4096 is below what setting up "
                       "the container needs"), res.describe()
    assert h.leftovers() == []
