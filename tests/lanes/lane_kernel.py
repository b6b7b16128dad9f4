"""The lane's guest kernel: Debian's cloud kernel and its modules, fetched once and cached.

The cache is ${RUNCELL_CACHE_DIR:-/var/cache/runcell}/lane/<kernel release>/:
  vmlinuz           the kernel image (bzImage)
  vmlinux           the same kernel uncompressed, when it has a PVH entry note and the
                    payload's compressor is at hand: QEMU starts it at its 32-bit PVH entry,
                    which skips the firmware's real-mode boot and the kernel's
                    self-decompression, both slow under TCG (~0.9 s of a ~3 s boot)
  modules/<f>.ko    every module of the package, decompressed (busybox insmod wants plain
                    ELF), flattened: module names are unique within one kernel
  modules.json      {module name: {"file": "<f>.ko", "depends": [names]}}, read from each
                    module's .modinfo section (the .deb carries no modules.dep: depmod
                    writes it at install time)
  package           the Debian package name and version the directory came from, and
                    the cache layout's version (a new layout refetches)
The directory appears atomically (built beside it, then renamed) under a lock, so two
lanes started at once on a fresh machine fetch the package once.
"""
import fcntl
import gzip
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple

META_PACKAGE = "linux-image-cloud-amd64"
PACKAGE_PREFIX = "linux-image-"
CACHE_LAYOUT = 2
# apt-cache's answer changes only when these do (apt-get update, dpkg); remembering it
# saves ~1 s of apt-cache per lane run on this machine.
APT_STATE = ("/var/lib/apt/lists", "/var/lib/dpkg/status")
XEN_ELFNOTE_PHYS32_ENTRY = 18


class LaneError(Exception):
    """A lane could not be prepared or run; the message says what to do."""


class Kernel(NamedTuple):
    release: str  # e.g. 6.1.0-56-cloud-amd64
    directory: Path
    vmlinuz: Path
    modules: dict  # name -> {"file": str, "depends": [str]}

    @property
    def boot_image(self):
        """What QEMU's -kernel gets: the PVH vmlinux when there is one."""
        vmlinux = self.directory / "vmlinux"
        return vmlinux if vmlinux.is_file() else self.vmlinuz

    def module_path(self, name):
        return self.directory / "modules" / self.modules[name]["file"]

    def load_order(self, wanted):
        """The modules to insmod for `wanted`, each after the modules it depends on."""
        order, visiting = [], set()

        def visit(name):
            name = normalise(name)
            if name in order:
                return
            if name not in self.modules:
                raise LaneError(f"kernel {self.release} has no module {name!r}")
            if name in visiting:
                raise LaneError(f"module dependency cycle through {name!r}")
            visiting.add(name)
            for dep in self.modules[name]["depends"]:
                visit(dep)
            visiting.discard(name)
            order.append(name)

        for name in wanted:
            visit(name)
        return order


def normalise(name):
    """Module names treat '-' and '_' alike (kvm-amd.ko is module kvm_amd)."""
    return name.replace("-", "_")


def cache_root():
    return Path(os.environ.get("RUNCELL_CACHE_DIR") or "/var/cache/runcell") / "lane"


def _run(argv, **kwargs):
    try:
        return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)
    except FileNotFoundError as e:
        raise LaneError(f"{argv[0]} is not installed") from e
    except subprocess.CalledProcessError as e:
        raise LaneError(f"{' '.join(argv)} failed ({e.returncode}): {e.stderr.strip()}") from e


def current_package(root):
    """The versioned kernel package that linux-image-cloud-amd64 depends on, and the
    version it pins, from the local apt lists (no network); remembered in
    <root>/apt-answer.json for as long as the apt and dpkg state stay the same."""
    state = []
    for path in APT_STATE:
        try:
            state.append(os.stat(path).st_mtime_ns)
        except OSError:
            state.append(None)
    memo = root / "apt-answer.json"
    try:
        saved = json.loads(memo.read_text())
        if saved["state"] == state:
            return saved["package"], saved["version"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    show = _run(["apt-cache", "show", "--no-all-versions", META_PACKAGE]).stdout
    match = re.search(r"^Depends:.*?\b(linux-image-\S+-cloud-amd64) \(= (\S+)\)", show, re.M)
    if not match:
        raise LaneError(f"apt-cache show {META_PACKAGE} names no versioned kernel:\n{show}")
    package, version = match.groups()
    tmp = memo.with_name(f".{memo.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"state": state, "package": package, "version": version}))
    os.replace(tmp, memo)
    return package, version


def _cached_kernels(root):
    return sorted(p.parent for p in root.glob("*/package") if (p.parent / "vmlinuz").is_file())


def _load(directory):
    modules = json.loads((directory / "modules.json").read_text())
    return Kernel(directory.name, directory, directory / "vmlinuz", modules)


def fetch(log=lambda msg: None):
    """The cached kernel, fetching Debian's current cloud kernel first when it is not
    there. Without apt lists (or offline) the newest cached kernel serves."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    try:
        package, version = current_package(root)
    except LaneError as e:
        cached = _cached_kernels(root)
        if not cached:
            raise
        log(f"lane: {e}; using the cached kernel {cached[-1].name}")
        return _load(cached[-1])
    release = package[len(PACKAGE_PREFIX):]
    directory = root / release
    stamp = f"{package} {version} layout={CACHE_LAYOUT}\n"
    if (directory / "package").is_file() and (directory / "package").read_text() == stamp:
        return _load(directory)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (directory / "package").is_file() and (directory / "package").read_text() == stamp:
            return _load(directory)
        log(f"lane: fetching {package} {version} into {directory}")
        _populate(root, directory, package, release, stamp)
    return _load(directory)


def _populate(root, directory, package, release, stamp):
    work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=root))
    try:
        _run(["apt-get", "download", f"{package}"], cwd=work)
        debs = list(work.glob("*.deb"))
        if len(debs) != 1:
            raise LaneError(f"apt-get download {package} left {len(debs)} .deb files")
        tree = work / "tree"
        _run(["dpkg-deb", "-x", str(debs[0]), str(tree)])
        stage = work / "stage"
        (stage / "modules").mkdir(parents=True)
        vmlinuz = tree / "boot" / f"vmlinuz-{release}"
        if not vmlinuz.is_file():
            raise LaneError(f"{package} has no boot/vmlinuz-{release}")
        shutil.copyfile(vmlinuz, stage / "vmlinuz")
        _extract_pvh_vmlinux(vmlinuz, stage / "vmlinux")
        index = {}
        kernel_dir = _modules_dir(tree, release)
        for path in sorted(kernel_dir.rglob("*.ko*")):
            image = _decompressed(path)
            info = modinfo(image)
            name = normalise(info.get("name") or path.name.split(".ko")[0])
            file = f"{name}.ko"
            (stage / "modules" / file).write_bytes(image)
            depends = [normalise(d) for d in info.get("depends", "").split(",") if d]
            index[name] = {"file": file, "depends": depends}
        if "kvm_amd" not in index:
            raise LaneError(f"{package} has no kvm-amd module")
        (stage / "modules.json").write_text(json.dumps(index, indent=1, sort_keys=True))
        (stage / "package").write_text(stamp)
        # Move an older layout aside rather than deleting it in place, so that a lane
        # reading it never finds a half-removed directory, only the old or the new one.
        if directory.exists():
            os.rename(directory, work / "old")
        os.rename(stage, directory)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _modules_dir(tree, release):
    for base in (tree / "lib" / "modules" / release, tree / "usr" / "lib" / "modules" / release):
        if base.is_dir():
            return base
    raise LaneError(f"the kernel package has no lib/modules/{release}")


def _decompressed(path):
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko.zst"):
        return _run(["zstd", "-dc", str(path)], text=False).stdout
    if path.name.endswith(".ko"):
        return data
    raise LaneError(f"unknown module compression: {path.name}")


def modinfo(image):
    """The key=value strings of an ELF64 module's .modinfo section, as a dict (only the
    first value of a repeated key). Parsed here: Debian's kmod tools live in /sbin, and a
    plain user's PATH may not reach them."""
    if image[:4] != b"\x7fELF" or image[4] != 2:
        raise LaneError("a kernel module is not an ELF64 file")
    shoff, = struct.unpack_from("<Q", image, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", image, 0x3A)

    def section(index):
        name, _type, _flags, _addr, offset, size = struct.unpack_from(
            "<IIQQQQ", image, shoff + index * shentsize)
        return name, offset, size

    _, names_offset, _ = section(shstrndx)
    for index in range(shnum):
        name, offset, size = section(index)
        end = image.index(b"\0", names_offset + name)
        if image[names_offset + name:end] == b".modinfo":
            info = {}
            for item in image[offset:offset + size].split(b"\0"):
                key, sep, value = item.decode("utf-8", "replace").partition("=")
                if sep and key not in info:
                    info[key] = value
            return info
    return {}


def _extract_pvh_vmlinux(bzimage, out):
    """Writes the uncompressed kernel inside a bzImage to `out` when it can boot by PVH;
    otherwise writes nothing and the lane boots the bzImage (only slower)."""
    data = bzimage.read_bytes()
    if data[0x202:0x206] != b"HdrS":
        return
    setup_sects = data[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    payload = data[start:start + payload_length]
    image = _decompress_payload(payload)
    # Kbuild appends the decompressed size to every payload: a short image is refused.
    size, = struct.unpack_from("<I", payload, len(payload) - 4)
    if image is None or len(image) != size or image[:4] != b"\x7fELF":
        return
    if not _has_pvh_note(image):
        return
    out.write_bytes(image)


def _decompress_payload(payload):
    """The kernel's compressed payload, decompressed; None for a compressor this host
    lacks. lz4 and zstd have no Python module in Debian's python3, so their tools serve."""
    try:
        if payload[:2] == b"\x1f\x8b":
            return gzip.decompress(payload)
        if payload[:6] == b"\xfd7zXZ\x00":
            return lzma.decompress(payload)
        tools = {b"\x02\x21\x4c\x18": "lz4", b"\x28\xb5\x2f\xfd": "zstd"}
        tool = tools.get(payload[:4])
        if tool is None or shutil.which(tool) is None:
            return None
        # The payload's last 4 bytes give the decompressed size; lz4 and zstd read them as
        # trailing garbage, which they warn about but decompress past.
        result = subprocess.run([tool, "-dc"], input=payload, capture_output=True)
        return result.stdout or None
    except (OSError, EOFError, lzma.LZMAError, gzip.BadGzipFile):
        return None


def _has_pvh_note(image):
    """Whether an ELF64 vmlinux carries XEN_ELFNOTE_PHYS32_ENTRY, which QEMU's -kernel
    needs to boot it by PVH."""
    phoff, = struct.unpack_from("<Q", image, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", image, 0x36)
    for index in range(phnum):
        p_type, _flags, offset, _vaddr, _paddr, filesz = struct.unpack_from(
            "<IIQQQQ", image, phoff + index * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        at, end = offset, offset + filesz
        while at + 12 <= end:
            namesz, descsz, note_type = struct.unpack_from("<III", image, at)
            name = image[at + 12:at + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and note_type == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            at += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False
