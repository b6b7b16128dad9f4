"""Hostile images: a rootfs crafted to confuse or escape the runtime while it sets the
container up. Its /etc/passwd (read for HOME), its symlinks (/etc -> /, links to host
paths, /dev/null replaced by a link to a host file) and its device nodes. Nothing may
escape the rootfs, no command may hang, and failures must be clear. Each case runs in a
cell (gate on) and natively (gate off).
"""
import os
import secrets
import stat
import subprocess

import pytest

from helpers import NATIVE_ANNOTATIONS, mounts_under

MODES = ["cell", "native"]


def set_mode(bundle, mode):
    ann = {k: v for k, v in bundle.config.get("annotations", {}).items()
           if k not in NATIVE_ANNOTATIONS}
    if mode == "native":
        ann.update(NATIVE_ANNOTATIONS)
    bundle.config["annotations"] = ann


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

