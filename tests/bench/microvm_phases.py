#!/usr/bin/python3
"""microVM start-up, phase by phase, and the VMM's memory, measured in the QEMU hardware
lane (this machine's /dev/kvm is PVM, so microVMs run nested under QEMU TCG there; the
absolute numbers are TCG's, many times slower than hardware, and the ratios to runc and to
a runcell cell run in the same guest are what carries over).

Each run of `runcell run` of /bin/true in a microVM logs its phases (src/microvm_init.c):
vmm-setup (KVM VM, memory, devices, kernel and initrd loaded), vmm-start-to-guest-entry,
guest-entry-to-agent (the guest kernel's boot up to the agent's HELLO), agent-config (root
disk, overlay, OCI mounts) and start-to-workload. The same guest also times `run` of
/bin/true with runc (Debian's, brought into the lane) and with runcell as a cell (both
with --no-pivot: the lane's root is an initramfs, where pivot_root fails), and reads
the VMM's RSS and PSS while a microVM idles.

usage: microvm_phases.py [--runs N] [--json OUT]   (Firecracker's bounds for reference:
VMM start to guest kernel entry <= 5 ms, start to guest init <= 125 ms, VMM overhead
<= 5 MiB, all on hardware virtualization)
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TOP / "tests" / "lanes"))
sys.path.insert(0, str(TOP / "tests" / "integration"))

import lane  # noqa: E402
from helpers import default_spec, make_rootfs  # noqa: E402

PHASES = ["vmm-setup", "vmm-start-to-guest-entry", "guest-entry-to-agent", "agent-config",
          "start-to-workload"]

GUEST_SCRIPT = r"""
mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null
export RUNCELL_GUEST_KERNEL=/srv/guest/vmlinux RUNCELL_AGENT_INITRD=/srv/guest/agent.initrd
export RUNCELL_CACHE_DIR=/tmp/rc RUNCELL_MICROVM_BOOT_TIMEOUT_MS=120000
ms() { read up _ </proc/uptime; echo "$up"; }
# warm the image cache once (the first run builds the rootfs image)
cd /srv/bundles/microvm && runcell run warm >/dev/null 2>&1
i=0
while [ $i -lt RUNS ]; do
  for rt in microvm cell runc; do
    cd /srv/bundles/$rt
    a=$(ms)
    case $rt in
      runc) runc --root /run/runc-bench run --no-pivot b$i-$rt >/dev/null 2>&1 ;;
      cell) runcell run --no-pivot b$i-$rt >/dev/null 2>&1 ;;
      *) runcell --log /tmp/log-$rt-$i --log-format json run b$i-$rt >/dev/null 2>&1 ;;
    esac
    rc=$?
    b=$(ms)
    echo "BENCH wall $rt $a $b $rc"
  done
  sed -n 's/.*"msg":"microvm phases: \([^"]*\)".*/BENCH phases \1/p' /tmp/log-microvm-$i
  i=$((i + 1))
done
cd /srv/bundles/idle && runcell create idle </dev/null >/dev/null 2>&1 && runcell start idle
pid=$(runcell state idle | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
sleep 2
echo "BENCH rss $(grep VmRSS /proc/$pid/status | tr -s ' ' | cut -d' ' -f2)"
echo "BENCH pss $(grep '^Pss:' /proc/$pid/smaps_rollup | tr -s ' ' | cut -d' ' -f2)"
runcell delete --force idle
"""


def guest_kernel():
    out = subprocess.run([str(TOP / "vmm/kernel/build.sh")], capture_output=True, text=True,
                         check=True)
    return Path(out.stdout.strip().splitlines()[-1]) / "vmlinux"


def median(values):
    v = sorted(values)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def parse(lines):
    wall = {"microvm": [], "cell": [], "runc": []}
    phases = {p: [] for p in PHASES}
    extra = {}
    failures = []
    for line in lines:
        parts = line.split()
        if len(parts) < 2 or parts[0] != "BENCH":
            continue
        if parts[1] == "wall":
            rt, a, b, rc = parts[2], float(parts[3]), float(parts[4]), parts[5]
            if rc != "0":
                failures.append(f"{rt} exited {rc}")
            else:
                wall[rt].append((b - a) * 1000)
        elif parts[1] == "phases":
            text = " ".join(parts[2:])
            for chunk in text.replace("(", ",").split(","):
                words = chunk.split()
                if len(words) >= 3 and words[0] in phases and words[2] == "ms":
                    phases[words[0]].append(float(words[1]))
                elif len(words) >= 2 and words[0] in phases:
                    phases[words[0]].append(float(words[1]))
        elif parts[1] in ("rss", "pss") and len(parts) > 2 and parts[2].isdigit():
            extra[parts[1] + "_kib"] = int(parts[2])
    return wall, phases, extra, failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--runcell", default=os.environ.get("RUNCELL_BIN") or
                    str(TOP / "build/runcell"))
    ap.add_argument("--json")
    a = ap.parse_args()
    runc = shutil.which("runc")
    mkfs = shutil.which("mkfs.erofs")
    if not runc or not mkfs:
        sys.exit("microvm_phases.py needs runc and mkfs.erofs (scripts/install-deps.sh)")
    initrd = Path(a.runcell).parent / "guest" / "agent.initrd"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        guest = work / "guest"
        guest.mkdir()
        shutil.copy2(guest_kernel(), guest / "vmlinux")
        shutil.copy2(initrd, guest / "agent.initrd")
        make_rootfs(work / "rootfs")
        for name in ("microvm", "cell", "runc", "idle"):
            spec = default_spec()
            spec["root"] = {"path": "/srv/rootfs", "readonly": True}
            spec["process"]["args"] = ["sleep", "1000"] if name == "idle" else ["true"]
            spec["annotations"] = ({"run.runcell.mode": "microvm"}
                                   if name in ("microvm", "idle") else {})
            if name == "microvm" or name == "idle":
                spec["root"]["readonly"] = False
            d = work / "bundles" / name
            d.mkdir(parents=True)
            (d / "config.json").write_text(json.dumps(spec))
        adds = [(Path(a.runcell), "/usr/local/bin/runcell"), (Path(runc), None),
                (Path(mkfs), None), (guest, "/srv/guest"), (work / "rootfs", "/srv/rootfs"),
                (work / "bundles", "/srv/bundles")]
        run = lane.run_lane(shell_cmds=[GUEST_SCRIPT.replace("RUNS", str(a.runs))], adds=adds,
                            timeout=1800, log=lambda m: None)
        result = run.result("shell-cmd-1")
        if not run.ok:
            print(run.failure_report())
        wall, phases, extra, failures = parse(result.output)
    report = {"runs": a.runs, "lane_boot_s": run.boot_seconds,
              "wall_ms_median": {rt: median(v) for rt, v in wall.items()},
              "phase_ms_median": {p: median(v) for p, v in phases.items()},
              "vmm_idle": extra, "failures": failures}
    print(f"microVM phases in the QEMU lane (TCG, nested SVM), {a.runs} runs, medians:")
    for p in PHASES:
        m = report["phase_ms_median"][p]
        print(f"  {p:28s} {m:9.1f} ms" if m is not None else f"  {p:28s}   (none)")
    runc_ms = report["wall_ms_median"]["runc"]
    print("run /bin/true in the same guest (wall, /proc/uptime resolution 10 ms):")
    for rt in ("microvm", "cell", "runc"):
        m = report["wall_ms_median"][rt]
        ratio = f" (x{m / runc_ms:.2f} runc)" if m and runc_ms else ""
        print(f"  {rt:8s} {m:9.1f} ms{ratio}" if m is not None else f"  {rt:8s}   (none)")
    print(f"idle microVM's VMM: RSS {extra.get('rss_kib')} KiB, PSS {extra.get('pss_kib')} KiB "
          f"(guest memory touched by the guest included)")
    if failures:
        print("failures:", failures)
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    return 1 if failures or not run.ok else 0


if __name__ == "__main__":
    sys.exit(main())
