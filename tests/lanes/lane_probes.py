"""The lane's probes: small static C programs (tests/lanes/probes/*.c) that guest tests
run. Each is compiled once per source content into the cache
(<cache>/lane/probes/<name>-<sha256 prefix>), so editing a probe rebuilds it and nothing
stale is used."""
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from lane_kernel import LaneError, cache_root

PROBES_DIR = Path(__file__).resolve().parent / "probes"
CFLAGS = ["-std=c17", "-O2", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wformat=2",
          "-D_GNU_SOURCE", "-static"]


def build_all(log=lambda msg: None):
    """{probe name: path of its static binary} for every probe source."""
    return {source.stem: build(source, log) for source in sorted(PROBES_DIR.glob("*.c"))}


def build(source, log=lambda msg: None):
    source = Path(source)
    digest = hashlib.sha256(source.read_bytes() + " ".join(CFLAGS).encode()).hexdigest()[:16]
    out_dir = cache_root() / "probes"
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = out_dir / f"{source.stem}-{digest}"
    if binary.is_file():
        return binary
    log(f"lane: compiling {source.name}")
    fd, tmp = tempfile.mkstemp(prefix=f".{source.stem}-", dir=out_dir)
    os.close(fd)
    try:
        result = subprocess.run(["gcc", *CFLAGS, "-o", tmp, str(source)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise LaneError(f"gcc {source} failed:\n{result.stderr}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, binary)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return binary
