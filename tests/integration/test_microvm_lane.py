"""microVM mode end to end, in the QEMU hardware lane (tests/lanes/): this machine's
/dev/kvm is PVM, so the lane boots Debian's cloud kernel under QEMU TCG with nested SVM,
and runcell runs microVMs there with its own VMM, the guest kernel (vmm/kernel/build.sh)
and the agent initrd from the build.

The lane boots once for this module with runcell, mkfs.erofs, the guest kernel and agent
initrd, a busybox rootfs, one bundle per scenario and a bind mount source; each script in
tests/lanes/microvm-tests/ (except common.sh) is one pytest test here.
Skipped when qemu-system-x86_64 is not installed; fails when the guest kernel cannot be
built or the agent initrd is missing (both are part of the build).
"""
import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import default_spec, make_rootfs
from oci_image import IMAGE_REF, build_image_archive

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "lanes"))

import lane  # noqa: E402
from lane_kernel import LaneError  # noqa: E402

TESTS_DIR = REPO / "tests" / "lanes" / "microvm-tests"
MICROVM_TESTS = sorted(p for p in TESTS_DIR.glob("*.sh") if p.name != "common.sh")
# Opt-in (RUNCELL_LANE_EXTRA=1): crash safety and concurrency of microVMs, and stdio-scale
# (105 MB through the console). Each passes on its own, but sustained console traffic in
# the nested guest now and then freezes the whole lane guest under QEMU 7.2's TCG (seen
# in CI runs 14 and 16 and in 2 of 4 stress runs of session 7: QEMU's CPU time stops
# growing and the guest's own 200 s watchdog never fires, so it is the emulated L1 that
# stops, not a runcell process waiting); in the default run that takes every later test
# with it. stdio-volume (4 MiB out, 1 MiB in, byte for byte) stays in the default run.
EXTRA_DIR = REPO / "tests" / "lanes" / "microvm-extra"
if os.environ.get("RUNCELL_LANE_EXTRA") == "1":
    MICROVM_TESTS += sorted(EXTRA_DIR.glob("*.sh"))
LANE_TIMEOUT = 1200
# network.sh: the tap, the veth pair and the tc redirects between them
NETWORK_MODULES = ["tun", "veth", "sch_ingress", "cls_u32", "act_mirred"]
CONTAINERD_TOOLS = [Path("/usr/bin/containerd"), Path("/usr/bin/ctr"),
                    Path("/usr/bin/containerd-shim-runc-v2")]


def guest_kernel():
    """The guest kernel's directory: vmm/kernel/build.sh builds it once into the cache and
    afterwards only prints where it is."""
    out = subprocess.run([str(REPO / "vmm" / "kernel" / "build.sh")], capture_output=True,
                         text=True, timeout=3600)
    if out.returncode != 0:
        pytest.fail(f"vmm/kernel/build.sh failed:\n{out.stderr[-3000:]}", pytrace=False)
    return Path(out.stdout.strip().splitlines()[-1])


def bundle_config(args, **changes):
    """The bundle every scenario starts from: runc's default spec (what containerd would
    give, with its /dev tmpfs, devpts, mqueue, sysfs and cgroup mounts) in microvm mode."""
    spec = default_spec()
    spec["root"] = {"path": "/srv/rootfs", "readonly": False}
    spec["annotations"] = {"run.runcell.mode": "microvm"}
    spec["process"]["args"] = args
    spec["hostname"] = "microvm"
    for key, value in changes.items():
        spec[key] = value
    return spec


def scenarios():
    tty = bundle_config(["sh", "-c", "tty; [ -t 0 ] && echo is-a-tty"])
    tty["process"]["terminal"] = True
    bind = bundle_config(["sh", "-c", "echo dir:$(cat /data/greeting); "
                          "echo file:$(cat /etc/greeting); "
                          "grep -o 'tmpfs /scratch' /proc/mounts | sed 's/tmpfs /tmpfs:/'; "
                          "touch /data/new 2>/dev/null && echo data:writable || echo data:read-only"])
    bind["mounts"] = copy.deepcopy(bind["mounts"]) + [
        {"destination": "/data", "type": "bind", "source": "/srv/bindsrc",
         "options": ["rbind", "ro"]},
        {"destination": "/etc/greeting", "type": "bind", "source": "/srv/bindsrc/greeting",
         "options": ["bind", "ro"]},
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
    ]
    # network.sh: the namespace the script makes (mvnet) by path; the workload serves a
    # page, fetches the peer's (an HTTP GET by nc: static busybox's wget crashes where
    # there is no /etc/services), and prints what its NIC looks like
    net = bundle_config(["sh", "-c",
                         "echo inside-the-microvm >/tmp/index.html; httpd -p 8080 -h /tmp; i=0; "
                         "until p=$(printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | "
                         "nc -w 3 10.200.0.1 8081 | tail -n 1) && [ -n \"$p\" ]; do "
                         "i=$((i+1)); [ $i -gt 30 ] && break; sleep 1; done; "
                         "echo fetched:$p; ip addr show eth0; ip link show eth0; ip route; "
                         "echo done; exec sleep 1000"])
    net["linux"] = copy.deepcopy(net["linux"])
    net["linux"]["namespaces"] = [
        ns for ns in net["linux"]["namespaces"] if ns["type"] != "network"
    ] + [{"type": "network", "path": "/run/netns/mvnet"}]
    return {
        "net": net,
        "echo": bundle_config(["echo", "hello from a microvm"]),
        "exit7": bundle_config(["sh", "-c", "echo to stdout; echo to stderr >&2; exit 7"]),
        "selfkill": bundle_config(["sh", "-c", "kill -9 $$"]),
        "sleep": bundle_config(["sh", "-c", "echo sleeping; exec sleep 1000"]),
        "seq": bundle_config(["seq", "1", "600000"]),
        "cat": bundle_config(["cat"]),
        "tty": tty,
        "bind": bind,
        "balloon": balloon_bundle(),
        "bigout": bigout_bundle(),
        "ticker": ticker_bundle(),
        "caps": bundle_config(["sh", "-c", "grep -E '^(Cap|NoNewPrivs)' /proc/self/status; "
                               "mount -t tmpfs none /mnt 2>/dev/null && echo mount: done "
                               "|| echo mount: refused"]),
        "security": security_bundle(),
        "security-wait": security_bundle("wait"),
        "hostile-image": hostile_image_bundle(),
        "devnodes": devnodes_bundle(mount_dev=True),
        "devnodes-imgdev": devnodes_bundle(mount_dev=False),
        "forkbomb": forkbomb_bundle(),
        # hooks.sh: createContainer and startContainer hooks, and one that fails
        "hooks": hooks_bundle(fail_start=False),
        "hooks-fail": hooks_bundle(fail_start=True),
        # cve-fd.sh: the process's descriptors (ls's own directory is the 3), its cwd, its root
        "fdprobe": bundle_config(["sh", "-c", "echo fds: $(ls /proc/self/fd); "
                                  "echo cwd: $(pwd); echo root: $(ls /); cat marker 2>/dev/null; "
                                  "echo ran"]),
    }


def hooks_bundle(fail_start):
    """hooks.sh: the hooks that run on the lane host in the container's (the VMM's)
    namespaces; each keeps the state it was given under /tmp/hooks."""
    spec = bundle_config(["sh", "-c", "echo sleeping; exec sleep 1000"])
    save = "cat > /tmp/hooks/{}.json"
    spec["hooks"] = {
        "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", save.format("create")]}],
        "startContainer": [{"path": "/bin/sh", "args": [
            "sh", "-c", "echo the hook says no >&2; exit 3" if fail_start
            else save.format("start")]}],
    }
    return spec


def forkbomb_bundle():
    """exhaustion.sh: a pids limit of 40; a background shell forks sleepers until a fork
    fails (its errors to /dev/null: console traffic is what the lane emulator dislikes)."""
    spec = bundle_config(["sh", "-c", "(exec 2>/dev/null; while :; do (exec sleep 1000) & done) & "
                          "exec sleep 1000"])
    spec["linux"] = copy.deepcopy(spec["linux"])
    spec["linux"].setdefault("resources", {})["pids"] = {"limit": 40}
    # the bundle asks for a writable cgroup mount: the guest must not give one that shows
    # the pids limit's cgroup
    spec["mounts"] = copy.deepcopy(spec["mounts"])
    for m in spec["mounts"]:
        if m["type"] == "cgroup":
            m["options"] = [o for o in m["options"] if o != "ro"]
    return spec


# security.sh: what a process reports about each setting, a line each ("name: value"); with
# the argument "wait" it then sleeps, so that a process can be exec'd next to it
SECURITY_PROBE = """#!/bin/sh
echo oom: $(cat /proc/self/oom_score_adj)
echo forward: $(cat /proc/sys/net/ipv4/ip_forward)
(echo 0 > /proc/sys/net/ipv4/ip_forward) 2>/dev/null && echo procsys: written || echo procsys: refused
echo visible: $(cat /etc/visible)
echo secret: [$(cat /etc/secret)]
echo secretdir: [$(ls /etc/secretdir)]
(echo x > /etc/secretdir/new) 2>/dev/null && echo secretdir-write: done || echo secretdir-write: refused
(echo x > /srv-ro/new) 2>/dev/null && echo ro-write: done || echo ro-write: refused
echo ro-read: $(cat /srv-ro/kept)
d=/tmp/made-$$
mkdir $d 2>/dev/null && echo mkdir: done || echo mkdir: refused
touch /tmp/touched-$$ && echo touch: done || echo touch: refused
grep -E '^Seccomp:' /proc/self/status
[ "${1:-}" = wait ] && exec sleep 1000
exit 0
"""


def security_bundle(*probe_args):
    """security.sh: runc's default masked and read-only paths (most of which this guest
    kernel lacks: skipped, as runc skips them) plus a masked file and directory and a
    read-only directory of the image's own, a sysctl, oomScoreAdj and a seccomp profile
    that refuses mkdir with EPERM."""
    spec = bundle_config(["sh", "/bin/security-probe", *probe_args])
    spec["process"]["oomScoreAdj"] = 123
    spec["linux"] = copy.deepcopy(spec["linux"])
    spec["linux"]["maskedPaths"] = spec["linux"]["maskedPaths"] + ["/etc/secret", "/etc/secretdir"]
    spec["linux"]["readonlyPaths"] = spec["linux"]["readonlyPaths"] + ["/srv-ro"]
    spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    spec["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }
    return spec


def hostile_image_bundle():
    """hostile-image.sh: a crafted image (hostile_image_files) whose links point at the
    host's files, and a mount whose destination goes through a link to "/"."""
    spec = bundle_config(["sh", "-c", "echo leak:[$(cat /leak 2>&1)]; "
                          "echo passwd:[$(cat /etc/passwd 2>&1)]; "
                          "echo home:[$HOME]; "
                          "[ -d /etc/escaped ] && echo escaped-mount:inside; "
                          "grep -c ' /etc/escaped ' /proc/mounts"])
    spec["root"] = {"path": "/srv/rootfs-hostile", "readonly": False}
    spec["process"]["env"] = [e for e in spec["process"]["env"] if not e.startswith("HOME=")]
    spec["mounts"] = copy.deepcopy(spec["mounts"]) + [
        {"destination": "/escape/etc/escaped", "type": "tmpfs", "source": "tmpfs",
         "options": ["size=1m"]}]
    return spec


DEVNODES_PROBE = (
    # the guest's disk numbers; the nodes device-nodes.sh plants guess them (254, 253, 252)
    "echo vda:$(cat /sys/block/vda/dev); "
    "for n in /tmp/vda* /dev/vda* /vol/vda*; do [ -e $n ] || continue; "
    "  head -c 1 $n >/dev/null 2>&1 && echo opened:$n || echo refused:$n; done; "
    "for n in /tmp/kmsg /dev/kmsg /vol/kmsg; do [ -e $n ] || continue; "
    "  echo probe >$n 2>/dev/null && echo opened:$n || echo refused:$n; done; "
    # what a root workload makes itself with CAP_MKNOD (containerd's default capabilities
    # have it; the bundle adds it to runc's)
    "maj=$(cut -d: -f1 /sys/block/vda/dev); "
    "mknod /tmp/made b $maj 0 && { head -c 1 /tmp/made >/dev/null 2>&1 "
    "  && echo opened:made-tmp || echo refused:made-tmp; }; "
    "mknod /dev/made b $maj 0 && { head -c 1 /dev/made >/dev/null 2>&1 "
    "  && echo opened:made-dev || echo refused:made-dev; }; "
    # what runc allows keeps working
    "[ \"$(head -c 4 /dev/zero | od -An -tx1 | tr -d ' ')\" = 00000000 ] && echo ok:zero; "
    "echo x >/dev/null && [ -z \"$(cat /dev/null)\" ] && echo ok:null; "
    "[ $(head -c 16 /dev/urandom | wc -c) = 16 ] && echo ok:urandom; "
    "[ $(head -c 16 /dev/random | wc -c) = 16 ] && echo ok:random; "
    "echo x 2>/dev/null >/dev/full || echo ok:full; "
    "echo via-dev-tty >/dev/tty && echo ok:tty; "
    "echo pts:$(tty); "
    "echo x >/dev/shm/f && echo ok:shm; "
    # linux.devices (devnodes_bundle's list): type, number (hex), mode and owner of each
    "for n in /dev/fuse /dev/net/tun /dev/null /dev/full /dev/ctl/fifo; do "
    "  echo node:$n:$(stat -c '%F:%t:%T:%a:%u:%g' $n 2>&1); done; "
    # opened (read-only: "<>" would create a missing node as a file): a node the guest's
    # kernel has a driver for (a misc device registers /sys/class/misc/NAME) opens; one it
    # has none for answers ENODEV, not the EACCES of a nodev mount
    "for d in fuse:/dev/fuse tun:/dev/net/tun; do name=${d%%:*}; node=${d#*:}; "
    "  [ -e /sys/class/misc/$name ] && drv=yes || drv=no; "
    "  err=$( (exec 3<$node) 2>&1) && echo open:$name:$drv:ok "
    "  || echo open:$name:$drv:${err##*: }; done; "
    "echo done")


def devnodes_bundle(mount_dev):
    """device-nodes.sh: an image (/srv/rootfs-devnodes, which the script makes, since the
    lane's initramfs carries no device nodes) with block and char nodes outside /dev, in
    its /dev and in a volume bound with an explicit "dev"; with a terminal, runc's /dev
    mounts and linux.devices, or (mount_dev False) without the /dev tmpfs, so the image's
    /dev is the container's. The devices: fuse, tun in a directory the guest must make,
    two of runc's defaults with their own mode and owner, and a FIFO."""
    spec = bundle_config(["sh", "-c", DEVNODES_PROBE])
    spec["root"] = {"path": "/srv/rootfs-devnodes", "readonly": False}
    spec["process"]["terminal"] = True
    mounts = [m for m in spec["mounts"] if mount_dev or m["destination"] != "/dev"]
    spec["mounts"] = copy.deepcopy(mounts) + [
        {"destination": "/vol", "type": "bind", "source": "/srv/devnodes-vol",
         "options": ["rbind", "dev"]}]
    spec["process"] = copy.deepcopy(spec["process"])
    for caps in spec["process"]["capabilities"].values():
        caps.append("CAP_MKNOD")
    spec["linux"] = copy.deepcopy(spec["linux"])
    spec["linux"]["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666,
         "uid": 0, "gid": 0},
        # (readable by others: the workload is root without CAP_DAC_OVERRIDE, and opens it)
        {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200, "fileMode": 0o664,
         "uid": 1000, "gid": 1001},
        # runc's defaults are 0666 root:root; a listed entry of the same path replaces them
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666,
         "uid": 1000, "gid": 1001},
        {"path": "/dev/full", "type": "c", "major": 1, "minor": 7, "fileMode": 0o640,
         "uid": 0, "gid": 1001},
        {"path": "/dev/ctl/fifo", "type": "p", "fileMode": 0o600, "uid": 1000, "gid": 0},
    ]
    return spec


def hostile_image_files(rootfs):
    """Links a runtime that resolved paths on the host would follow out of the image:
    /etc/passwd and /leak to the lane host's /srv/host-secret (absolute and by ..), /escape
    to "/" (a mount destination goes through it)."""
    (rootfs / "etc" / "passwd").unlink()
    os.symlink("/srv/host-secret", rootfs / "etc" / "passwd")
    os.symlink("../../../../../../srv/host-secret", rootfs / "leak")
    os.symlink("/", rootfs / "escape")


def security_files(rootfs):
    """The probe, and the image's files security.sh's bundle masks or makes read-only."""
    (rootfs / "bin" / "security-probe").write_text(SECURITY_PROBE)
    (rootfs / "etc" / "visible").write_text("shown\n")
    (rootfs / "etc" / "secret").write_text("host-secret\n")
    (rootfs / "etc" / "secretdir").mkdir()
    (rootfs / "etc" / "secretdir" / "key").write_text("k\n")
    (rootfs / "srv-ro").mkdir()
    (rootfs / "srv-ro" / "kept").write_text("kept\n")


def ticker_bundle():
    """resources.sh: a tick a line every 0.2 s, with 1.5 CPUs and 512 MiB. (The long sleep
    keeps a second process there whenever `events --stats` counts them: the ticker's own
    short sleeps come and go.)"""
    spec = bundle_config(["sh", "-c", "sleep 100000 & while true; do echo tick; sleep 0.2; done"])
    spec["linux"] = copy.deepcopy(spec["linux"])
    spec["linux"].setdefault("resources", {}).update(
        {"memory": {"limit": 512 << 20}, "cpu": {"quota": 150000, "period": 100000}})
    return spec


def bigout_bundle():
    """stdio-scale.sh: 105 copies of the 1,000,003-byte block in its own rootfs."""
    spec = bundle_config(["sh", "-c", "i=0; while [ $i -lt 105 ]; do cat /block; i=$((i+1)); done"])
    spec["root"] = {"path": "/srv/rootfs-big", "readonly": True}
    return spec


def balloon_bundle():
    """balloon.sh: memhog touches 512 MiB, holds it 4 s, frees it and idles, in a
    microVM with a 1 GiB memory limit."""
    spec = bundle_config(["/bin/memhog", "512", "4", "4", "600"])
    spec["linux"] = copy.deepcopy(spec["linux"])
    spec["linux"].setdefault("resources", {})["memory"] = {"limit": 1 << 30}
    return spec


def build_workloads(rootfs):
    """The lane's own workload programs (tests/lanes/workloads/*.c), static, into the
    busybox rootfs's /bin."""
    for src in sorted((REPO / "tests/lanes/workloads").glob("*.c")):
        subprocess.run(["gcc", "-static", "-O2", "-o", str(rootfs / "bin" / src.stem), str(src)],
                       check=True, capture_output=True)


HOSTILE_AGENTS = {"garbage": 1, "oversize": 2, "flood": 3, "silent": 4}


def build_hostile_agents(build_dir, out):
    """One initrd per behaviour of tests/lanes/hostile/hostile_agent.c, packed by the
    build's own initrd writer."""
    make_initrd = build_dir / "runcell-make-initrd"
    if not make_initrd.is_file():
        pytest.fail(f"{make_initrd} is missing: it is built with runcell", pytrace=False)
    out.mkdir()
    for name, behaviour in HOSTILE_AGENTS.items():
        exe = out / f"{name}.bin"
        subprocess.run(["gcc", "-static", "-O2", f"-DBEHAVIOUR={behaviour}", "-D_GNU_SOURCE",
                        "-I", str(REPO / "include"),
                        str(REPO / "tests/lanes/hostile/hostile_agent.c"),
                        str(REPO / "src/agent_proto.c"), str(REPO / "src/sysctl_path.c"),
                        str(REPO / "src/error.c"),
                        "-o", str(exe)], check=True, capture_output=True)
        subprocess.run([str(make_initrd), str(out / f"{name}.initrd"), str(exe)], check=True,
                       capture_output=True)
        exe.unlink()
    # hostile-kernel.sh: a freestanding "vmlinux" that abuses every device
    hostile = REPO / "tests/lanes/hostile"
    subprocess.run(["gcc", "-O2", "-ffreestanding", "-fno-pic", "-fno-pie", "-no-pie", "-nostdlib",
                    "-static", "-mno-red-zone", "-mgeneral-regs-only", "-fno-stack-protector",
                    "-fno-asynchronous-unwind-tables", "-Wall", "-Wextra", "-Werror",
                    f"-Wl,-T,{hostile / 'hostile_kernel.ld'}", "-Wl,--build-id=none",
                    "-Wl,-z,noexecstack", "-Wl,--no-warn-rwx-segments",
                    str(hostile / "hostile_kernel.c"), "-o", str(out / "kernel.elf")],
                   check=True, capture_output=True)


# Test helpers the lane's scripts run (static: the lane guest has busybox and little else).
LANE_HELPERS = {"console-receiver": "tests/helpers/console_receiver.c",
                "subreaper": "tests/helpers/subreaper.c",
                # chroot-escape.sh copies it into a rootfs of its own
                "chroot-escape": "tests/lanes/microvm-tests/chroot_escape.c"}


def build_lane_helpers(out):
    out.mkdir()
    for name, source in LANE_HELPERS.items():
        subprocess.run(["gcc", "-static", "-O2", "-D_GNU_SOURCE", str(REPO / source),
                        "-o", str(out / name)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def microvm_lane(runcell_bin, tmp_path_factory):
    if shutil.which(lane.lane_qemu.QEMU) is None:
        pytest.skip(f"{lane.lane_qemu.QEMU} is not installed (apt-get install qemu-system-x86)")
    mkfs = shutil.which("mkfs.erofs")
    if mkfs is None:
        pytest.fail("mkfs.erofs is missing: install erofs-utils (scripts/install-deps.sh)",
                    pytrace=False)
    initrd = Path(runcell_bin).parent / "guest" / "agent.initrd"
    if not initrd.is_file():
        pytest.fail(f"{initrd} is missing: it is built with runcell (vmm/guest)", pytrace=False)
    kernel = guest_kernel() / "vmlinux"

    work = tmp_path_factory.mktemp("microvm-lane")
    guest = work / "guest"
    guest.mkdir()
    shutil.copy2(kernel, guest / "vmlinux")
    shutil.copy2(initrd, guest / "agent.initrd")
    rootfs = work / "rootfs"
    make_rootfs(rootfs)
    rootfs_hostile = work / "rootfs-hostile"
    make_rootfs(rootfs_hostile)
    hostile_image_files(rootfs_hostile)
    rootfs_big = work / "rootfs-big"
    make_rootfs(rootfs_big)
    (rootfs_big / "block").write_bytes(os.urandom(1000003))
    build_workloads(rootfs)
    security_files(rootfs)
    bundles = work / "bundles"
    for name, config in scenarios().items():
        (bundles / name).mkdir(parents=True)
        (bundles / name / "config.json").write_text(json.dumps(config, indent=1))
    bindsrc = work / "bindsrc"
    bindsrc.mkdir()
    (bindsrc / "greeting").write_text("greetings from the host\n")

    hostile = work / "hostile"
    build_hostile_agents(Path(runcell_bin).parent, hostile)
    helpers = work / "helpers"
    build_lane_helpers(helpers)

    # containerd.sh: containerd, ctr and the runc v2 shim from the host, and the busybox
    # OCI image the containerd tests use (the script skips, saying why, without them)
    image = work / "image"
    image.mkdir()
    build_image_archive(image / "busybox-oci.tar")
    (image / "ref").write_text(IMAGE_REF)
    containerd_tools = [(tool, None) for tool in CONTAINERD_TOOLS if tool.is_file()]

    adds = [(Path(runcell_bin), "/usr/local/bin/runcell"), (Path(mkfs), None),
            (hostile, "/srv/hostile"),
            (helpers / "console-receiver", "/usr/local/bin/console-receiver"),
            (helpers / "subreaper", "/usr/local/bin/subreaper"),
            (helpers / "chroot-escape", "/usr/local/bin/chroot-escape"),
            (guest, "/srv/guest"), (rootfs, "/srv/rootfs"), (rootfs_big, "/srv/rootfs-big"),
            (rootfs_hostile, "/srv/rootfs-hostile"), (bundles, "/srv/bundles"),
            (bindsrc, "/srv/bindsrc"), (TESTS_DIR, "/srv/microvm-tests"),
            (image, "/srv/image")] + containerd_tools
    # network.sh: iproute2 (busybox ip makes no veth pairs) and tc, with their libraries
    adds += [(Path(shutil.which("ip") or "/usr/bin/ip"), "/usr/local/bin/ip"),
             (Path(shutil.which("tc") or "/usr/sbin/tc"), "/usr/local/bin/tc")]
    try:
        run = lane.run_lane(log=lambda msg: None, tests=MICROVM_TESTS, adds=adds,
                            modules=NETWORK_MODULES, timeout=LANE_TIMEOUT)
        if run.frozen:
            # the emulator, not runcell, stopped the whole guest (QEMU used no CPU at all
            # for lane_qemu.FROZEN_SECONDS; a runcell hang leaves the guest running and is
            # caught by the scripts' own bounds): one more run, and the freeze is printed
            print(f"microVM lane: {run.problems[0]}; running the lane again")
            failed_before = [r for r in run.results
                             if r.status == "not ok" and r.reason != "did not finish"]
            run = lane.run_lane(log=lambda msg: None, tests=MICROVM_TESTS, adds=adds,
                                modules=NETWORK_MODULES, timeout=LANE_TIMEOUT)
            # a test that failed before the freeze failed: passing on the rerun does not
            # wash that out
            for first in failed_before:
                again = run.result(first.name)
                if again.passed:
                    again.status = "not ok"
                    again.reason = f"failed in the run that froze ({first.reason or 'not ok'})"
                    again.output = first.output + ["--- passed on the rerun ---"] + again.output
        return run
    except LaneError as e:
        pytest.fail(f"the lane could not be prepared: {e}", pytrace=False)


def test_microvm_lane_finishes(microvm_lane):
    assert microvm_lane.done and not microvm_lane.problems, microvm_lane.failure_report()
    print(f"lane boot {microvm_lane.boot_seconds:.2f}s; whole run "
          f"{microvm_lane.wall_seconds:.1f}s")


@pytest.mark.parametrize("script", MICROVM_TESTS, ids=[p.stem for p in MICROVM_TESTS])
def test_microvm(microvm_lane, script):
    result = microvm_lane.result(lane.lane_guest.test_name(script.stem))
    output = "\n".join(result.output)
    if result.status == "skip":
        pytest.skip(f"{script.name} skipped in the guest: {result.reason}")
    assert result.status == "ok", (
        f"{result.tap()}\n--- guest output ---\n{output}"
        + ("" if microvm_lane.done else "\n--- lane ---\n" + microvm_lane.failure_report()))
