"""Mount targets and device paths are resolved inside the rootfs: a symlink in the image
must never redirect a mount (or a created directory or device) to the host."""
import os

import pytest

from helpers import mounts_under


def assert_untouched(host_dir):
    assert os.listdir(host_dir) == [], f"something was created in {host_dir}"
    assert mounts_under(host_dir) == [], f"something is mounted under {host_dir}"


@pytest.mark.parametrize("relative", [False, True], ids=["absolute-link", "relative-link"])
def test_symlinked_tmpfs_target(h, bundle, escape_dir, relative):
    target = ("../" * 12 + str(escape_dir).lstrip("/")) if relative else str(escape_dir)
    os.symlink(target, bundle.rootfs / "evil")
    bundle.add_mount("/evil/x", "tmpfs", "tmpfs", ["size=1m"])
    bundle.sh("grep ' /evil' /proc/self/mounts; touch /evil/x/inside 2>&1; echo done")
    res = h.run_container(bundle)
    # Either the mount lands inside the rootfs (the link resolved in it) or the runtime
    # refuses; never on the host.
    assert_untouched(escape_dir)
    if res.rc == 0:
        assert "done" in res.out


def test_symlinked_bind_target(h, bundle, escape_dir, host_dir):
    (host_dir / "payload").write_text("x")
    os.symlink(str(escape_dir), bundle.rootfs / "evil")
    bundle.bind(host_dir, "/evil/bound")
    bundle.args("true")
    h.run_container(bundle)
    assert_untouched(escape_dir)


def test_symlinked_intermediate_directory(h, bundle, escape_dir):
    (bundle.rootfs / "a").mkdir()
    os.symlink(str(escape_dir), bundle.rootfs / "a" / "b")
    bundle.add_mount("/a/b/c/d", "tmpfs", "tmpfs", ["size=1m"])
    bundle.args("true")
    h.run_container(bundle)
    assert_untouched(escape_dir)


def test_symlinked_mount_destination_itself(h, bundle, escape_dir):
    os.symlink(str(escape_dir), bundle.rootfs / "evil")
    bundle.add_mount("/evil", "tmpfs", "tmpfs", ["size=1m"])
    bundle.args("true")
    h.run_container(bundle)
    assert_untouched(escape_dir)


def test_symlinked_device_path(h, bundle, escape_dir):
    # /dev is a tmpfs made by the runtime, so link a device through a directory that the
    # image controls.
    os.symlink(str(escape_dir), bundle.rootfs / "evil")
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if not m["destination"].startswith("/dev")]
    bundle.linux["devices"] = [{"path": "/evil/fuse", "type": "c", "major": 10, "minor": 229,
                                "fileMode": 0o666}]
    bundle.args("true")
    h.run_container(bundle)
    assert_untouched(escape_dir)


def test_symlinked_cwd(h, bundle, escape_dir):
    os.symlink(str(escape_dir), bundle.rootfs / "evil")
    bundle.config["process"]["cwd"] = "/evil/newdir"
    bundle.args("pwd")
    h.run_container(bundle)
    assert_untouched(escape_dir)


def test_symlinked_masked_and_readonly_paths(h, bundle, escape_dir):
    (escape_dir / "keep").write_text("host data\n")
    os.symlink(str(escape_dir), bundle.rootfs / "evil")
    bundle.linux["maskedPaths"].append("/evil/keep")
    bundle.linux["readonlyPaths"].append("/evil")
    bundle.args("true")
    h.run_container(bundle)
    assert os.listdir(escape_dir) == ["keep"]
    assert (escape_dir / "keep").read_text() == "host data\n"
    assert mounts_under(escape_dir) == []


@pytest.mark.runcell_specific
def test_runtime_inside_the_container_is_a_sealed_copy(h, bundle):
    """CVE-2019-5736: until it execs the user program, the init runs runtime code inside
    the container. Its /proc/<pid>/exe must be a sealed anonymous copy of runcell, so a
    container process that reaches it cannot write to the host's binary."""
    bundle.args("true")
    cid = h.create_ok(bundle)
    pid = h.state(cid)["pid"]
    exe = os.readlink(f"/proc/{pid}/exe")
    assert exe.startswith("/memfd:runcell"), exe
    # The copy is immutable: write, grow, shrink and further sealing are all sealed.
    import fcntl
    fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY)
    try:
        seals = fcntl.fcntl(fd, 1034)  # F_GET_SEALS
    finally:
        os.close(fd)
    wanted = 0x1 | 0x2 | 0x4 | 0x8  # F_SEAL_SEAL, SHRINK, GROW, WRITE
    assert seals & wanted == wanted, hex(seals)
