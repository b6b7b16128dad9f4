"""Hostile images: a rootfs crafted to confuse or escape the runtime while it sets the
container up. Its /etc/passwd (read for HOME), its symlinks (/etc -> /, links to host
paths, /dev/null replaced by a link to a host file) and its device nodes. Nothing may
escape the rootfs, no command may hang, and failures must be clear. Each case runs in a
cell (gate on) and natively (gate off).
"""
import os
import secrets
import shutil
import stat
import subprocess

import pytest

from helpers import mounts_under, set_mode

MODES = ["cell", "native"]


def home_of(h, bundle, uid=0, timeout=20):
    """HOME as the container's process sees it (the env has none: the runtime looks the
    user up in the image's /etc/passwd)."""
    bundle.process["user"] = {"uid": uid, "gid": uid}
    bundle.process["env"] = [e for e in bundle.process["env"] if not e.startswith("HOME=")]
    bundle.args("sh", "-c", "printf '%s' \"$HOME\" | od -An -c | tr -s ' '")
    res = h.run_container(bundle, timeout=timeout)
    assert res.rc == 0, res.describe()
    return res.out.strip()


def od(text):
    """What home_of prints for a HOME of `text` (bytes or str)."""
    data = text.encode("latin-1") if isinstance(text, str) else text
    out = subprocess.run(["od", "-An", "-c"], input=data, capture_output=True).stdout
    return " ".join(out.decode().split())


def set_passwd(bundle, content):
    path = bundle.rootfs / "etc" / "passwd"
    path.unlink()
    path.write_bytes(content)


# ---------------------------------------------------------------------------------------
# /etc/passwd
#
# runcell-specific: Debian's runc 1.1.5 fails create on a line over 64 KiB ("bufio.Scanner:
# token too long", also for /dev/zero), takes the bare "root" line as uid 0 with an empty
# HOME, and hangs for ever on a FIFO.


@pytest.mark.runcell_specific
@pytest.mark.parametrize("mode", MODES)
def test_passwd_long_line_does_not_inject_an_entry(h, bundle, mode):
    """A line longer than any line buffer, whose tail looks like an entry for uid 0, must
    not be read as one: the real root entry that follows gives HOME."""
    set_mode(bundle, mode)
    injected = "fake:x:0:0::/injected:/bin/sh"
    for size in (4096, 8192, 65536):
        head = "evil:x:1000:1000:"
        pad = "A" * (size - 1 - len(head))
        set_passwd(bundle, f"{head}{pad}{injected}\nroot:x:0:0:root:/root:/bin/sh\n".encode())
        assert home_of(h, bundle) == od("/root"), f"line of {size + len(injected)} bytes"


@pytest.mark.runcell_specific
@pytest.mark.parametrize("mode", MODES)
def test_passwd_malformed_lines_and_odd_bytes(h, bundle, mode):
    """Lines with missing fields or a bad uid are skipped; names and homes with odd bytes
    are taken as they are, not cut or interpreted."""
    set_mode(bundle, mode)
    lines = [
        b"root",
        b"root:x",
        b"root:x:0:0",
        b"root:x:0:0:",
        b"root:x::0::/no-uid:/bin/sh",
        b"root:x:0x0:0::/hex-uid:/bin/sh",
        b"root:x:99999999999999999999999:0::/huge-uid:/bin/sh",
        b"\xff\xfe\x01r\x7fo:x:1000:1000::/home/\xfe\xff\x01odd:/bin/sh",
        b"root:x:0:0:\x00nul:/root-after-nul:/bin/sh",
        b"root:x:0:0:ok:/root:/bin/sh",
    ]
    set_passwd(bundle, b"\n".join(lines) + b"\n")
    assert home_of(h, bundle) == od("/root")
    assert home_of(h, bundle, uid=1000) == od(b"/home/\xfe\xff\x01odd")
    assert home_of(h, bundle, uid=4242) == od("/"), "a user without an entry gets /"


@pytest.mark.runcell_specific
@pytest.mark.parametrize("mode", MODES)
def test_passwd_huge_file_without_newline(h, bundle, mode):
    """8 MiB without a newline, then root's entry: create neither hangs nor fails."""
    set_mode(bundle, mode)
    set_passwd(bundle, b"x" * (8 << 20) + b"\nroot:x:0:0::/root:/bin/sh\n")
    assert home_of(h, bundle) in (od("/root"), od("/"))


@pytest.mark.runcell_specific
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
@pytest.mark.parametrize("mode", MODES)
def test_passwd_that_is_not_a_file(h, bundle, mode, kind):
    """/etc/passwd as a FIFO (opening it would block forever), a link to /dev/zero
    (endless) or a directory: it is ignored, HOME is /, and create does not hang."""
    set_mode(bundle, mode)
    path = bundle.rootfs / "etc" / "passwd"
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        os.symlink("/dev/zero", path)
    else:
        path.mkdir()
    assert home_of(h, bundle, timeout=15) == od("/")


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
@pytest.mark.parametrize("mode", MODES)
def test_passwd_symlink_to_a_host_file_is_not_followed_out(h, bundle, escape_dir, mode,
                                                           relative):
    """/etc/passwd -> a host file: resolved inside the container, where it does not exist,
    so the host's entry never reaches the container."""
    set_mode(bundle, mode)
    (escape_dir / "passwd").write_text("root:x:0:0::/leaked-from-host:/bin/sh\n")
    target = ("../" * 12 + str(escape_dir).lstrip("/") if relative else str(escape_dir)) + \
        "/passwd"
    path = bundle.rootfs / "etc" / "passwd"
    path.unlink()
    os.symlink(target, path)
    assert home_of(h, bundle) == od("/")


@pytest.mark.runcell_specific
@pytest.mark.parametrize("mode", MODES)
def test_passwd_link_to_the_kernel_log_is_not_read(h, bundle, mode):
    """/etc/passwd -> /proc/kmsg: a regular file of size 0 whose reads, with the runtime's
    privileges (CAP_SYSLOG, before they are dropped), take the host's kernel log messages
    away from its reader. Before session 14 runcell read it: a logged line shaped like an
    entry for the container's uid became its HOME (the host's kernel log, which
    dmesg_restrict keeps from the container, crossed into it). Only the size the file
    reports is read. (Debian's runc 1.1.5 reads it too, then blocks for ever.)"""
    set_mode(bundle, mode)
    tag = secrets.token_hex(4)
    path = bundle.rootfs / "etc" / "passwd"
    path.unlink()
    os.symlink("/proc/kmsg", path)
    with open("/dev/kmsg", "w") as kmsg:
        kmsg.write(f"<6>rct{tag}:x:0:0::/from-the-kernel-log-{tag}:/bin/sh\n")
    assert home_of(h, bundle) == od("/")


# ---------------------------------------------------------------------------------------
# Symlinks


@pytest.mark.parametrize("target", ["/", "../../../../../.."], ids=["absolute", "relative"])
@pytest.mark.parametrize("mode", MODES)
def test_etc_is_a_link_to_root(h, bundle, host_dir, mode, target):
    """/etc -> / in the image, with the files containerd binds into /etc (hosts,
    resolv.conf): the binds land in the rootfs (where /etc leads inside it), never on the
    host's /."""
    set_mode(bundle, mode)
    name = "rct-" + secrets.token_hex(4)
    (host_dir / "hosts").write_text("127.0.0.1 hostile\n")
    etc = bundle.rootfs / "etc"
    for f in etc.iterdir():
        f.rename(bundle.rootfs / f.name)
    etc.rmdir()
    os.symlink(target, etc)
    bundle.bind(host_dir / "hosts", f"/etc/{name}")
    bundle.bind(host_dir / "hosts", "/etc/hosts")
    bundle.sh(f"cat /etc/{name} /{name}")
    hosts_existed = os.path.lexists("/hosts")
    res = h.run_container(bundle)
    assert not os.path.lexists(f"/{name}"), f"/{name} was created on the host"
    assert hosts_existed or not os.path.lexists("/hosts"), "/hosts was created on the host"
    assert not [mp for mp in mounts_under("/") if mp in (f"/{name}", "/hosts")]
    assert res.rc == 0, res.describe()
    assert res.out == "127.0.0.1 hostile\n" * 2
    assert (bundle.rootfs / name).exists()


@pytest.mark.parametrize("mode", MODES)
def test_mount_destination_through_a_chain_of_links(h, bundle, escape_dir, mode):
    """A destination reached through three links, the last one absolute and pointing at a
    host directory: the mount lands inside the rootfs or is refused, never on the host."""
    set_mode(bundle, mode)
    os.symlink("b", bundle.rootfs / "a")
    os.symlink("/c", bundle.rootfs / "b")
    os.symlink(str(escape_dir), bundle.rootfs / "c")
    bundle.add_mount("/a/data", "tmpfs", "tmpfs", ["size=1m"])
    bundle.sh("touch /a/data/x && grep -c ' /tmp/rct-escape' /proc/self/mountinfo; true")
    h.run_container(bundle)
    assert os.listdir(escape_dir) == [], "something was created in the host directory"
    assert mounts_under(escape_dir) == []


@pytest.mark.parametrize("mode", MODES)
def test_symlink_loop_in_a_mount_destination_fails_clearly(h, bundle, mode):
    set_mode(bundle, mode)
    os.symlink("loop2", bundle.rootfs / "loop1")
    os.symlink("loop1", bundle.rootfs / "loop2")
    bundle.add_mount("/loop1/x", "tmpfs", "tmpfs", ["size=1m"])
    bundle.args("true")
    res = h.run_container(bundle)
    assert res.rc != 0
    assert "/loop1/x" in res.msg and "symbolic links" in res.msg, res.msg


@pytest.mark.runcell_specific
@pytest.mark.parametrize("mode", MODES)
def test_dev_null_is_a_link_to_a_host_file(h, bundle, escape_dir, mode):
    """The image has no /dev tmpfs (the config mounts none) and its /dev/null is a link to
    a host file. The runtime makes the real device in the rootfs, masks paths with it, and
    the host file is neither written, nor mounted over, nor visible in the container.
    (Debian's runc 1.1.5 leaves the image's dangling link as /dev/null and its masked
    files then do not exist: safe for the host too, but not this test's device check.)"""
    set_mode(bundle, mode)
    secret = escape_dir / "secret"
    secret.write_text("host secret\n")
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if not m["destination"].startswith("/dev")]
    os.symlink(str(secret), bundle.rootfs / "dev" / "null")
    os.symlink(str(escape_dir), bundle.rootfs / "dev" / "zero")
    bundle.sh("echo overwritten > /dev/null; cat /proc/kcore /proc/keys 2>&1 | head -c 100; "
              "stat -c '%F %t:%T' /dev/null /dev/zero")
    res = h.run_container(bundle)
    assert secret.read_text() == "host secret\n"
    assert sorted(os.listdir(escape_dir)) == ["secret"]
    assert mounts_under(escape_dir) == []
    if res.rc == 0:
        assert "host secret" not in res.out
        assert res.out.splitlines()[-2:] == ["character special file 1:3",
                                             "character special file 1:5"], res.out
    else:
        assert "/dev/null" in res.msg or "/dev/zero" in res.msg, res.msg


# ---------------------------------------------------------------------------------------
# A /proc that is not the kernel's
#
# After pivot_root the runtime reaches its masks and read-only binds through
# /proc/self/fd/N and sets process attributes through /proc (the bounding set was cut to
# the kernel's last capability as /proc/sys/kernel/cap_last_cap gave it). An image that
# puts files of its own there gets them read as the kernel's.


def fake_proc(root, decoy):
    """A directory shaped like /proc: self/fd/N links to decoy, cap_last_cap "0"."""
    (root / "sys" / "kernel").mkdir(parents=True)
    (root / "sys" / "kernel" / "cap_last_cap").write_text("0\n")
    (root / "self" / "fd").mkdir(parents=True)
    for n in range(128):
        os.symlink(decoy, root / "self" / "fd" / str(n))


# What the container's root holds in its bounding set after its exec, if it runs at all
# (a proc mount of its own, made on a tmpfs at /tmp: its /proc is not the kernel's).
BOUNDING_PROBE = ("mount -t tmpfs t /tmp && mkdir /tmp/p && mount -t proc proc /tmp/p && "
                  "grep CapBnd /tmp/p/self/status; ls /sys/firmware | head -3; true")


@pytest.mark.parametrize("mode", MODES)
def test_proc_link_whose_procfs_a_volume_hides(h, bundle, host_dir, mode):
    """/proc -> /vol/p in the image, and a volume at /vol (whose files came from the image
    too) with a fake /proc in p/. Before session 14 the procfs landed in the image's /vol/p,
    the volume hid it, and after pivot_root runcell took the volume's files for the
    kernel's: the masks went to the decoy (/sys/firmware stayed readable) and the bounding
    set was not cut (cap_last_cap "0"), so the container's root got every capability on
    exec (CapBnd 000001fffefffffe, then mount worked). As runc 1.1.5 (CVE-2023-27561,
    CVE-2023-28642), proc must be mounted on an ordinary directory."""
    set_mode(bundle, mode)
    fake_proc(host_dir / "p", "/vol/decoy")
    (host_dir / "decoy").mkdir()
    shutil.rmtree(bundle.rootfs / "proc")
    (bundle.rootfs / "vol" / "p").mkdir(parents=True)
    os.symlink("/vol/p", bundle.rootfs / "proc")
    bundle.bind(host_dir, "/vol")
    bundle.process["noNewPrivileges"] = False
    bundle.sh(BOUNDING_PROBE)
    res = h.run_container(bundle)
    assert "CapBnd" not in res.out, res.describe()
    assert res.rc != 0, res.describe()
    assert "must be mounted on ordinary directory" in res.msg and "/proc" in res.msg, res.msg
    assert os.listdir(host_dir / "decoy") == []


@pytest.mark.parametrize("mode", MODES)
def test_image_proc_without_a_proc_mount(h, bundle, mode):
    """A config without a proc mount and an image whose /proc holds self/fd/N links and
    sys/kernel/cap_last_cap "0": before session 14 the masks went where the links led and
    the container's root got a full bounding set. As runc ("/proc/self/fd is not on
    procfs"), create fails."""
    set_mode(bundle, mode)
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["type"] != "proc"]
    (bundle.rootfs / "decoy").mkdir()
    fake_proc(bundle.rootfs / "proc", "/decoy")
    bundle.config["root"]["readonly"] = False
    bundle.process["noNewPrivileges"] = False
    bundle.sh(BOUNDING_PROBE)
    res = h.run_container(bundle)
    assert "CapBnd" not in res.out, res.describe()
    assert res.rc != 0, res.describe()
    assert "/proc" in res.msg, res.msg


@pytest.mark.parametrize("fstype", ["proc", "sysfs"])
@pytest.mark.parametrize("mode", MODES)
def test_proc_and_sys_on_a_link_are_refused(h, bundle, mode, fstype):
    """/proc or /sys of the image is a link to a directory of the image: refused as runc
    1.1.5 refuses it (before session 14 the filesystem was mounted where the link led)."""
    set_mode(bundle, mode)
    dest = "/proc" if fstype == "proc" else "/sys"
    shutil.rmtree(bundle.rootfs / dest.lstrip("/"))
    (bundle.rootfs / "elsewhere").mkdir()
    os.symlink("elsewhere", bundle.rootfs / dest.lstrip("/"))
    bundle.args("true")
    res = h.run_container(bundle)
    assert res.rc != 0, res.describe()
    assert f'filesystem "{fstype}" must be mounted on ordinary directory' in res.msg, res.msg


# ---------------------------------------------------------------------------------------
# Device nodes


def host_root_device():
    st = os.stat("/")
    return os.major(st.st_dev), os.minor(st.st_dev)


@pytest.mark.parametrize("mode", MODES)
def test_device_nodes_in_the_image_are_not_usable(h, bundle, mode):
    """The image carries device nodes for the host's memory (/dev/mem, c 1:1), kernel log
    (c 1:11) and the block device of the host's root filesystem. The container's root
    sees them (the precondition) but the device cgroup refuses every open: nothing of the
    host is read."""
    set_mode(bundle, mode)
    major, minor = host_root_device()
    nodes = {"mem": (stat.S_IFCHR, 1, 1), "kmsg": (stat.S_IFCHR, 1, 11)}
    if major != 0:
        nodes["rootdisk"] = (stat.S_IFBLK, major, minor)
    for name, (kind, ma, mi) in nodes.items():
        os.mknod(bundle.rootfs / name, kind | 0o666, os.makedev(ma, mi))
    script = "; ".join(f"stat -c '{n} %t:%T' /{n}; head -c 64 /{n} > /dev/null && echo 'READ {n}'"
                       for n in nodes)
    bundle.sh(script + "; true")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    for name, (_, ma, mi) in nodes.items():
        assert f"{name} {ma:x}:{mi:x}" in res.out, res.out
    assert "READ" not in res.out, res.out
    assert res.err.count("Operation not permitted") == len(nodes), res.err


@pytest.mark.parametrize("mode", MODES)
def test_device_node_as_mount_destination_parent(h, bundle, mode):
    """A destination below a device node of the image: refused with a clear error."""
    set_mode(bundle, mode)
    os.mknod(bundle.rootfs / "memdev", stat.S_IFCHR | 0o666, os.makedev(1, 1))
    bundle.add_mount("/memdev/x", "tmpfs", "tmpfs", ["size=1m"])
    bundle.args("true")
    res = h.run_container(bundle)
    assert res.rc != 0
    assert "/memdev/x" in res.msg, res.msg


@pytest.mark.parametrize("mode", MODES)
def test_device_path_that_is_a_fifo_in_a_user_namespace(h, bundle, mode):
    """In a user namespace a linux.devices node is the host's, bound onto the path in the
    rootfs; the image has a FIFO there. Before session 14 runcell opened it for reading to
    make the mount point and create hung for ever; now the FIFO is only held (O_PATH) and
    the host's node is bound over it, as runc does."""
    set_mode(bundle, mode)
    host_id = 100000
    bundle.set_namespace("user")
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": host_id, "size": 65536}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": host_id, "size": 65536}]
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["type"] != "cgroup"]
    name = "rct-null-" + secrets.token_hex(4)
    host_node = f"/tmp/{name}"
    os.mknod(host_node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    try:
        os.mkfifo(bundle.rootfs / "tmp" / name)
        bundle.linux["devices"] = [{"path": host_node, "type": "c", "major": 1, "minor": 3,
                                    "fileMode": 0o666}]
        for dirpath, dirnames, filenames in os.walk(bundle.rootfs):
            for n in [dirpath] + [os.path.join(dirpath, f) for f in dirnames + filenames]:
                st = os.lstat(n)
                os.lchown(n, st.st_uid + host_id, st.st_gid + host_id)
        bundle.sh(f"stat -c '%F %t:%T' {host_node}")
        res = h.run_container(bundle, timeout=15)
    finally:
        os.unlink(host_node)
    assert res.rc == 0, res.describe()
    assert res.out == "character special file 1:3\n", res.out
