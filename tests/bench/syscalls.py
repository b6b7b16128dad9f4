"""Syscall costs inside a container: syscall_bench.c (built here, static) times getppid,
open+close, stat, a 4 KiB read and sysinfo, on the host with no container and inside a
container of each runtime, alternated run by run.

sysinfo is the syscall a cell routes: the gate hands it to the cell kernel (a seccomp user
notification served by a process outside the cell), so in the `runcell` column it costs a
round trip to that process; everywhere else it is an ordinary syscall.

The `runc+seccomp` column is runc with the default seccomp profile Docker and podman give
every container (seccomp_profile.py): bare runc runs no filter at all, which is not how
containers run, and any filter costs the seccomp entry path on every syscall."""
import json
import os
import shutil
import subprocess

import seccomp_profile
from benchlib import HERE, BenchError, Benchmark, random_bytes

OPS = [
    ("getppid", "getppid", "the bare cost of entering the kernel (and of the gate)"),
    ("open_close", "open + close", "path walk in the container's rootfs"),
    ("stat", "stat", ""),
    ("read_4k", "pread 4 KiB (page cache)", ""),
    ("sysinfo", "sysinfo (routed to the cell kernel in a cell)", ""),
]


class Host:
    """The host, as a runtime-like column: the program run with no container."""
    name = "host"


class WithDefaultProfile:
    """runc, as a column of its own, running a bundle with the engines' default profile."""
    name = "runc+seccomp"

    def __init__(self, runc, bundle):
        self.runc = runc
        self.bundle = bundle


def build(session):
    """Compiles syscall_bench.c statically into the work directory."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise BenchError("syscall_bench: no C compiler (install build-essential)")
    out = os.path.join(session.work, "syscall_bench")
    r = subprocess.run([cc, "-O2", "-static", "-Wall", "-Wextra", "-Werror", "-o", out,
                        os.path.join(HERE, "syscall_bench.c")], capture_output=True)
    if r.returncode != 0:
        raise BenchError("syscall_bench: cannot build it statically: %s" %
                         r.stderr.decode(errors="replace").strip()[-800:])
    return out


def parse(text, who):
    try:
        data = json.loads(text.strip().splitlines()[-1])
        return {key: float(data[key]) for key, _, _ in OPS}
    except (ValueError, KeyError, IndexError):
        raise BenchError("%s: syscall_bench printed no result: %r" % (who, text[-300:]))


def run(session, runtimes, p):
    bench = Benchmark("syscalls", "Syscall costs inside a container", p)
    for key, title, _ in OPS:
        bench.metric(key, title, "ns/op", "lower")
    binary = build(session)
    budget = str(p["ms_per_op"])

    def add_files(cfg, bundle):
        shutil.copy(binary, os.path.join(bundle, "rootfs", "syscall_bench"))
        with open(os.path.join(bundle, "rootfs", "bench-data"), "wb") as f:
            f.write(random_bytes(64 * 1024))

    # The file is named relative to the working directory, the container's / and the
    # rootfs on the host, so that open and stat walk the same one-component path in both.
    bundle = session.busybox_bundle("syscalls", ["/syscall_bench", "bench-data", budget],
                                    edit=add_files)
    rootfs = os.path.join(bundle, "rootfs")
    columns = [Host()] + list(runtimes)
    runc = next((rt for rt in runtimes if rt.name == "runc"), None)
    profile = seccomp_profile.find_profile()
    if runc and profile:
        def add_profile(cfg, path):
            add_files(cfg, path)
            seccomp_profile.apply(cfg, profile)
        profiled = session.busybox_bundle("syscalls-seccomp",
                                          ["/syscall_bench", "bench-data", budget],
                                          edit=add_profile)
        columns.insert(columns.index(runc) + 1, WithDefaultProfile(runc, profiled))
        bench.note("runc+seccomp: runc with %s (Docker's default profile, as podman's "
                   "containers-common ships it) converted for the bundle's capabilities"
                   % profile)
    elif runc:
        bench.note("runc+seccomp not measured: no default seccomp profile at %s (Debian's "
                   "golang-github-containers-common, which podman depends on, installs one)"
                   % " or ".join(seccomp_profile.PROFILE_PATHS))

    def one(rt, i):
        if rt.name == "host":
            r = subprocess.run([binary, "bench-data", budget], capture_output=True,
                               cwd=rootfs, timeout=600)
            if r.returncode != 0:
                raise BenchError("host: syscall_bench failed: %s" % r.stderr.decode()[-500:])
            out = r.stdout.decode()
        elif isinstance(rt, WithDefaultProfile):
            cid = session.new_id(rt.runc, "sys")
            out = rt.runc.call("run", "--bundle", rt.bundle, cid, capture=True, timeout=600)[1]
        else:
            cid = session.new_id(rt, "sys")
            out = rt.call("run", "--bundle", bundle, cid, capture=True, timeout=600)[1]
        for key, value in parse(out, rt.name).items():
            bench.add(key, rt.name, value)

    bench.alternate(columns, p["reps"], one)
    return bench
