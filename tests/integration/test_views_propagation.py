"""The cell's file views must never propagate out of the container (finding F4).

The views are FUSE files the container init binds over /proc/meminfo, /sys/devices/system/
cpu/online and the rest. A mount made on a shared mount is made on each of its peers too,
and with rootfsPropagation "rshared" (what containerd asks for a bidirectional volume), or
a rootfsPropagation that changes / alone ("private", "slave"), a volume bound from the host
stays in the host mount's peer group. A volume covering a view's path (or /sys bound from
the host, as a privileged node agent's pod has it) so received the view mounts on the
host: the host's file read the cell's numbers ("0" for cpu/online of a 0.5-CPU cell), and
after delete a dead FUSE mount (ENOTCONN) stayed there. runc mounts nothing there, so
nothing leaks; runcell now leaves a view out where its target is on a shared mount (and
logs why), so the container sees the volume's file, as under runc.

The host side runs in a scratch mount namespace (unshare --mount --propagation private,
held by a `sleep` this test starts) that stands in for the host: its shared mounts are
made there, runcell runs there (through nsenter), the leaks would land there, and it goes
away with its holder, so the machine's own mounts are never touched. The ordinary case (no
shared mounts: every view follows the limits, none is seen outside) is
test_cell_kernel.py's test_proc_and_sys_views_follow_the_limits[cell] and
test_views_are_read_only_and_only_inside_the_cell.
"""
import os
import re
import shutil
import subprocess
import time

import pytest

from helpers import NATIVE_ANNOTATIONS, Harness

UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"

pytestmark = [
    pytest.mark.runcell_specific,
    pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host"),
    pytest.mark.skipif(not (os.access(UNSHARE, os.X_OK) and os.access(NSENTER, os.X_OK)),
                       reason="unshare and nsenter (util-linux) are needed"),
]

CPU = "/sys/devices/system/cpu"
MEMORY = 128 << 20


def _unescape(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


class ScratchHost:
    """A mount namespace standing in for the host: a copy of this one, all private (so
    nothing made in it reaches the machine), held by a `sleep` started here."""

    def __init__(self):
        self.proc = subprocess.Popen([UNSHARE, "--mount", "--propagation", "private",
                                      "sleep", "infinity"], start_new_session=True,
                                     stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.mounted = []  # mount points made here, unmounted (recursively) at close
        own = os.readlink("/proc/self/ns/mnt")
        deadline = time.monotonic() + 10
        while True:
            try:
                if (os.readlink(f"/proc/{self.pid}/ns/mnt") != own
                        and open(f"/proc/{self.pid}/comm").read().strip() == "sleep"):
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError("unshare --mount did not start")
            time.sleep(0.01)
        self.baseline = {m["id"] for m in self.mounts()}

    def run(self, *argv, check=True):
        res = subprocess.run([NSENTER, "-t", str(self.pid), "-m", *map(str, argv)],
                             capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL)
        if check:
            assert res.returncode == 0, f"{argv} in the scratch host: {res.stderr}"
        return res

    def bind_shared(self, path):
        """path becomes a mount of its own in a peer group, as a volume's source on a host
        whose / is shared (systemd's)."""
        self.run("mount", "--bind", path, path)
        self.mounted.append(str(path))
        self.run("mount", "--make-shared", path)

    def mounts(self):
        result = []
        with open(f"/proc/{self.pid}/mountinfo") as f:
            for line in f:
                left, right = line.rstrip("\n").split(" - ", 1)
                fields = left.split()
                result.append({"id": int(fields[0]), "mountpoint": _unescape(fields[4]),
                               "optional": fields[6:], "fstype": right.split()[0]})
        return result

    def new_fuse_mounts(self):
        """FUSE mounts made here since the namespace was made: any is a leaked view."""
        return [m["mountpoint"] for m in self.mounts()
                if m["fstype"].startswith("fuse") and m["id"] not in self.baseline]

    def read(self, path):
        res = self.run("cat", path, check=False)
        return res.stdout if res.returncode == 0 else f"cat failed: {res.stderr.strip()}"

    def close(self):
        if self.proc.poll() is None:
            # leaked views too (they sit on these mounts), then the namespace itself
            for mp in reversed(self.mounted):
                self.run("umount", "--recursive", "--lazy", mp, check=False)
            for mp in self.new_fuse_mounts():
                self.run("umount", "--lazy", mp, check=False)
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def host():
    scratch = ScratchHost()
    yield scratch
    scratch.close()


@pytest.fixture
def hn(runcell_bin, workdir, host):
    """A Harness whose runcell runs in the scratch host (a wrapper that nsenters it):
    every container it made is deleted there before the namespace goes."""
    wrapper = workdir / "runcell-in-scratch-host"
    wrapper.write_text(f'#!/bin/sh\nexec {NSENTER} -t {host.pid} -m {runcell_bin} "$@"\n')
    wrapper.chmod(0o755)
    harness = Harness(wrapper, workdir / "runcell",
                      name=f"runcell in a scratch host ({runcell_bin})")
    yield harness
    problems = harness.cleanup()
    if problems:
        pytest.fail("runcell left behind:\n  " + "\n  ".join(problems), pytrace=False)


def cell_bundle(harness):
    b = harness.bundle()
    b.config["annotations"] = {k: v for k, v in b.config.get("annotations", {}).items()
                               if k not in NATIVE_ANNOTATIONS}
    b.linux.setdefault("resources", {}).update(
        memory={"limit": MEMORY, "swap": MEMORY}, cpu={"quota": 50000, "period": 100000})
    b.args("sleep", "60")
    return b


def run_detached(harness, bundle, log):
    cid = harness.new_id()
    bundle.write()
    res = harness("--log", log, "run", "--detach", "--bundle", bundle.path, "--pid-file",
                  harness.pid_file(cid), cid)
    assert res.rc == 0, res.describe()
    harness.note_pid(harness.pid_file(cid).read_text().strip())
    return cid


def exec_out(harness, cid, script):
    res = harness("exec", cid, "sh", "-c", script)
    assert res.rc == 0, res.describe()
    return res.out


def meminfo_total_kib(harness, cid):
    return int(exec_out(harness, cid, "head -1 /proc/meminfo").split()[1])


def warnings_of(log):
    return log.read_text() if log.exists() else ""


@pytest.mark.parametrize("propagation, volume_options", [
    ("rshared", ["rshared"]),  # containerd's bidirectional volume
    ("private", []),           # changes / alone: the volume keeps the host's peer group
], ids=["rshared", "private-root-only"])
def test_no_view_on_a_volume_shared_with_the_host(hn, host, workdir, propagation,
                                                  volume_options):
    """A volume at /sys/devices/system/cpu whose mount is in the host's peer group: the
    host's directory gets no FUSE mount while the cell runs or after delete, its files
    keep their contents, and the container reads them there (runc's view), with a warning
    naming each view left out. The views elsewhere (/proc) are still the cell's."""
    vol = workdir / "cpuvol"
    vol.mkdir()
    (vol / "online").write_text("volume online\n")
    (vol / "possible").write_text("volume possible\n")
    host.bind_shared(vol)
    b = cell_bundle(hn)
    b.linux["rootfsPropagation"] = propagation
    b.bind(vol, CPU, *volume_options)
    log = workdir / "runcell.log"
    cid = run_detached(hn, b, log)

    assert host.new_fuse_mounts() == [], "the cell's views are mounted on the host"
    assert host.read(vol / "online") == "volume online\n"
    assert exec_out(hn, cid, f"cat {CPU}/online {CPU}/possible") == \
        "volume online\nvolume possible\n"
    assert meminfo_total_kib(hn, cid) == MEMORY >> 10
    for view in ("online", "possible"):
        assert re.search(rf"level=warning msg=\"cell views: {CPU}/{view} is not served: it is "
                         r"on a shared mount", warnings_of(log)), warnings_of(log)

    res = hn("delete", "--force", cid)
    assert res.rc == 0, res.describe()
    assert host.new_fuse_mounts() == [], "the cell's views stayed on the host after delete"
    assert host.read(vol / "online") == "volume online\n"
    assert host.read(vol / "possible") == "volume possible\n"


def test_no_view_on_sys_bound_from_the_host(hn, host, workdir):
    """A privileged node agent's pod: the host's /sys bound bidirectionally (rbind,rshared
    with rootfsPropagation rshared). The host's own cpu/online must keep saying what the
    host has, not "0" (the 0.5-CPU cell's), during the cell's life and after."""
    host.run("mount", "--make-rshared", "/sys")  # in the scratch host only: it is private
    b = cell_bundle(hn)
    b.linux["rootfsPropagation"] = "rshared"
    # /sys from the host; nothing else mounted over its tree, which would propagate too
    b.config["mounts"] = [m for m in b.config["mounts"]
                          if not m["destination"].startswith("/sys")]
    b.bind("/sys", "/sys", "rshared", "ro")
    for key in ("maskedPaths", "readonlyPaths"):
        b.linux[key] = [p for p in b.linux.get(key, []) if not p.startswith("/sys")]
    log = workdir / "runcell.log"
    with open(f"{CPU}/online") as f:
        online = f.read()
    cid = run_detached(hn, b, log)

    assert host.new_fuse_mounts() == [], "the cell's views are mounted on the host"
    assert host.read(f"{CPU}/online") == online
    assert exec_out(hn, cid, f"cat {CPU}/online") == online
    assert meminfo_total_kib(hn, cid) == MEMORY >> 10
    assert f"cell views: {CPU}/online is not served" in warnings_of(log), warnings_of(log)

    res = hn("delete", "--force", cid)
    assert res.rc == 0, res.describe()
    assert host.new_fuse_mounts() == [], "the cell's views stayed on the host after delete"
    assert host.read(f"{CPU}/online") == online


@pytest.mark.parametrize("shared", ["rootfs", "bundle"])
def test_views_with_an_rshared_root_stay_in_the_container(hn, host, workdir, shared):
    """rootfsPropagation "rshared" with no volume, the rootfs on a shared mount of the host
    (a mount itself, as containerd's overlay under a shared /run, or a directory in one).
    The rootfs's mount is made private in the container's namespace before it is bound
    onto itself (pivot_root needs that), so /proc and /sys are fresh mounts under a private
    parent: every view is served, and none reaches the host."""
    b = cell_bundle(hn)
    host.bind_shared(b.rootfs if shared == "rootfs" else b.path)
    b.linux["rootfsPropagation"] = "rshared"
    log = workdir / "runcell.log"
    cid = run_detached(hn, b, log)

    assert host.new_fuse_mounts() == [], "the cell's views are mounted on the host"
    out = exec_out(hn, cid, f"cat {CPU}/online {CPU}/possible; grep -c ^processor /proc/cpuinfo;"
                            " grep -c '^cpu[0-9]' /proc/stat; cut -d. -f1 /proc/uptime;"
                            " grep -c fuse.runcell /proc/self/mountinfo")
    online, possible, processors, stat_cpus, uptime, views = out.split()
    assert (online, possible, processors, stat_cpus, views) == ("0", "0", "1", "1", "6"), out
    assert int(uptime) < 60, out
    assert meminfo_total_kib(hn, cid) == MEMORY >> 10
    assert "cell views" not in warnings_of(log), warnings_of(log)

    res = hn("delete", "--force", cid)
    assert res.rc == 0, res.describe()
    assert host.new_fuse_mounts() == [], "the cell's views stayed on the host after delete"
