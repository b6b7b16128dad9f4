"""An initramfs written straight into a newc cpio archive.

Nothing is staged in a directory tree: every entry (directory, host file, bytes, symlink,
device node) is recorded with the owner and mode it must have in the guest (root, always)
and streamed into the archive, so building needs no root and leaves nothing behind. The
archive is not compressed: under TCG the guest kernel would spend longer inflating it than
QEMU spends loading the larger file.
"""
import os
import re
import stat
import subprocess
from pathlib import Path, PurePosixPath

from lane_kernel import LaneError

NEWC_MAGIC = b"070701"
BLOCK = 4


class Initramfs:
    def __init__(self):
        # guest path -> (mode, payload); payload is bytes, a host Path, or a link target str
        self.entries = {}
        self.devices = {}

    def _parents(self, guest):
        for parent in reversed(PurePosixPath(guest).parents):
            key = str(parent)
            if key != "/" and key not in self.entries:
                self.entries[key] = (stat.S_IFDIR | 0o755, b"")

    def _put(self, guest, mode, payload):
        guest = _guest_path(guest)
        self._parents(guest)
        old = self.entries.get(guest)
        if old and stat.S_ISDIR(old[0]) and stat.S_ISDIR(mode):
            return
        self.entries[guest] = (mode, payload)

    def directory(self, guest, mode=0o755):
        self._put(guest, stat.S_IFDIR | mode, b"")

    def data(self, guest, content, mode=0o644):
        if isinstance(content, str):
            content = content.encode()
        self._put(guest, stat.S_IFREG | mode, content)

    def symlink(self, guest, target):
        self._put(guest, stat.S_IFLNK | 0o777, target)

    def char_device(self, guest, major, minor, mode=0o600):
        self._put(guest, stat.S_IFCHR | mode, b"")
        self.devices[_guest_path(guest)] = (major, minor)

    def host_file(self, host, guest):
        """A host file (symlinks followed) with its permission bits."""
        host = Path(host)
        mode = host.stat().st_mode & 0o7777
        self._put(guest, stat.S_IFREG | mode, host.resolve())

    def host_tree(self, host, guest):
        """A host file or directory tree; symlinks inside a tree stay symlinks."""
        host = Path(host)
        if not host.exists():
            raise LaneError(f"{host} does not exist")
        if not host.is_dir():
            self.host_file(host, guest)
            return
        self.directory(guest, host.stat().st_mode & 0o7777)
        for dirpath, dirnames, filenames in os.walk(host):
            rel = PurePosixPath(guest) / os.path.relpath(dirpath, host)
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                if path.is_symlink():
                    self.symlink(rel / name, os.readlink(path))
                elif path.is_dir():
                    self.directory(rel / name, path.stat().st_mode & 0o7777)
                elif path.is_file():
                    self.host_file(path, rel / name)

    def executable(self, host, guest):
        """A host program and, when it is dynamically linked, its shared libraries and
        dynamic loader at the paths the host's loader found them."""
        self.host_file(host, guest)
        for library in shared_libraries(host):
            self.host_file(library, library)

    def write(self, out_path):
        with open(out_path, "wb") as out:
            for number, guest in enumerate(sorted(self.entries), start=1):
                mode, payload = self.entries[guest]
                if isinstance(payload, Path):
                    payload = payload.read_bytes()
                elif isinstance(payload, str):
                    payload = payload.encode()
                major, minor = self.devices.get(guest, (0, 0))
                _entry(out, number, guest.lstrip("/"), mode, payload, major, minor)
            _entry(out, 0, "TRAILER!!!", 0, b"", 0, 0)


def _guest_path(guest):
    path = str(PurePosixPath("/") / str(guest))
    if ".." in PurePosixPath(path).parts:
        raise LaneError(f"guest path {guest!r} leaves the root")
    return path


def _pad(out, length):
    out.write(b"\0" * (-length % BLOCK))


def _entry(out, ino, name, mode, data, rdev_major, rdev_minor):
    name_bytes = name.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(mode) else 1
    fields = [ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev_major, rdev_minor,
              len(name_bytes), 0]
    header = NEWC_MAGIC + b"".join(b"%08X" % f for f in fields)
    out.write(header)
    out.write(name_bytes)
    _pad(out, len(header) + len(name_bytes))
    out.write(data)
    _pad(out, len(data))


_LDD_LIBRARY = re.compile(r"^\s*\S+ => (/\S+) \(0x[0-9a-f]+\)\s*$")
_LDD_LOADER = re.compile(r"^\s*(/\S+) \(0x[0-9a-f]+\)\s*$")


def shared_libraries(program):
    """Absolute paths of the libraries and loader ldd reports for `program`; none for a
    static program. A library ldd cannot find is an error, not a guest-time surprise."""
    result = subprocess.run(["ldd", str(program)], capture_output=True, text=True)
    if result.returncode != 0:
        if "not a dynamic executable" in result.stdout + result.stderr:
            return []
        raise LaneError(f"ldd {program} failed: {result.stderr.strip()}")
    found = []
    for line in result.stdout.splitlines():
        if "not found" in line:
            raise LaneError(f"{program}: shared library {line.strip()}")
        match = _LDD_LIBRARY.match(line) or _LDD_LOADER.match(line)
        if match:
            found.append(match.group(1))
        elif "statically linked" in line:
            return []
    return found


def is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def add_busybox(initramfs, busybox="/bin/busybox"):
    """busybox-static with a symlink per applet, so /init and the tests find `sh`,
    `insmod`, `mount` on PATH without `busybox --install` at boot."""
    if not Path(busybox).is_file():
        raise LaneError(f"{busybox} is missing: install busybox-static")
    if shared_libraries(busybox):
        raise LaneError(f"{busybox} is dynamically linked: install busybox-static")
    initramfs.host_file(busybox, "/bin/busybox")
    listing = subprocess.run([busybox, "--list-full"], capture_output=True, text=True,
                             check=True).stdout
    for applet in listing.split():
        if applet != "bin/busybox":
            initramfs.symlink("/" + applet, "/bin/busybox")
