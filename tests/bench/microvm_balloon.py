#!/usr/bin/python3
"""What free page reporting (virtio-balloon) gives back: the VMM's memory over time while
a microVM's workload touches 512 MiB, holds it and frees it, with reporting on and with
it off (RUNCELL_MICROVM_FREE_PAGE_REPORTING=0), measured in the QEMU hardware lane (this
machine's /dev/kvm is PVM; microVMs run nested under QEMU TCG there, so the touch phase
is slow, and what carries over is the shape: how far and how fast the footprint falls).

Both runs are tests/lanes/microvm-tests/balloon.sh with BALLOON_OBSERVE_S set: it samples
the VMM's VmRSS and its guest-RAM memfd's allocated size (the memory the host really
holds for the guest: RSS alone would also fall for memory that was only unmapped) every
half second and prints them. The workload is tests/lanes/workloads/memhog.c in a bundle
with a 1 GiB memory limit.

usage: microvm_balloon.py [--observe S] [--runcell PATH] [--json OUT]
"""
import argparse
import copy
import json
import os
import re
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

SAMPLE = re.compile(r"sample t=([\d.]+)s phase=(\w+) rss=(\d+)MiB memfd=(\d+)MiB")
MODES = {"reporting": "", "no-reporting": "RUNCELL_MICROVM_FREE_PAGE_REPORTING=0 "}


def guest_kernel():
    out = subprocess.run([str(TOP / "vmm/kernel/build.sh")], capture_output=True, text=True,
                         check=True)
    return Path(out.stdout.strip().splitlines()[-1]) / "vmlinux"


def balloon_bundle(path):
    spec = default_spec()
    spec["root"] = {"path": "/srv/rootfs", "readonly": False}
    spec["annotations"] = {"run.runcell.mode": "microvm"}
    spec["process"]["args"] = ["/bin/memhog", "512", "4", "4", "600"]
    spec["linux"] = copy.deepcopy(spec["linux"])
    spec["linux"].setdefault("resources", {})["memory"] = {"limit": 1 << 30}
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(spec))


def parse(lines):
    return [{"t": float(m[1]), "phase": m[2], "rss_mib": int(m[3]), "memfd_mib": int(m[4])}
            for m in (SAMPLE.search(line) for line in lines) if m]


def summary(samples):
    if not samples:
        return None
    base = min((s for s in samples if s["phase"] == "start"), key=lambda s: s["rss_mib"],
               default=samples[0])
    freed = [s for s in samples if s["phase"] in ("freed", "done")]
    t_free = freed[0]["t"] if freed else None
    back = next((s["t"] - t_free for s in freed
                 if s["memfd_mib"] < base["memfd_mib"] + 128), None)
    return {"baseline_rss_mib": base["rss_mib"], "baseline_memfd_mib": base["memfd_mib"],
            "peak_rss_mib": max(s["rss_mib"] for s in samples),
            "peak_memfd_mib": max(s["memfd_mib"] for s in samples),
            "final_rss_mib": samples[-1]["rss_mib"], "final_memfd_mib": samples[-1]["memfd_mib"],
            "seconds_to_baseline_plus_128mib": back}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--observe", type=int, default=20,
                    help="seconds to watch after the workload frees its memory")
    ap.add_argument("--runcell", default=os.environ.get("RUNCELL_BIN") or
                    str(TOP / "build/runcell"))
    ap.add_argument("--json")
    a = ap.parse_args()
    mkfs = shutil.which("mkfs.erofs")
    if not mkfs:
        sys.exit("microvm_balloon.py needs mkfs.erofs (scripts/install-deps.sh)")
    initrd = Path(a.runcell).parent / "guest" / "agent.initrd"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        guest = work / "guest"
        guest.mkdir()
        shutil.copy2(guest_kernel(), guest / "vmlinux")
        shutil.copy2(initrd, guest / "agent.initrd")
        rootfs = work / "rootfs"
        make_rootfs(rootfs)
        subprocess.run(["gcc", "-static", "-O2", "-o", str(rootfs / "bin" / "memhog"),
                        str(TOP / "tests/lanes/workloads/memhog.c")], check=True)
        balloon_bundle(work / "bundles" / "balloon")
        adds = [(Path(a.runcell), "/usr/local/bin/runcell"), (Path(mkfs), None),
                (guest, "/srv/guest"), (rootfs, "/srv/rootfs"), (work / "bundles", "/srv/bundles"),
                (TOP / "tests/lanes/microvm-tests", "/srv/microvm-tests")]
        cmds = [f"{env}BALLOON_OBSERVE_S={a.observe} sh /srv/microvm-tests/balloon.sh"
                for env in MODES.values()]
        run = lane.run_lane(shell_cmds=cmds, adds=adds, timeout=1200, log=lambda m: None)
    curves, failures = {}, []
    for i, mode in enumerate(MODES, start=1):
        result = run.result(f"shell-cmd-{i}")
        curves[mode] = parse(result.output if result else [])
        if not result or result.status != "ok":
            failures.append(f"{mode}: " + ("\n".join(result.output[-5:]) if result else "no result"))
    report = {"observe_s": a.observe, "lane_boot_s": run.boot_seconds,
              "summary": {m: summary(c) for m, c in curves.items()}, "samples": curves,
              "failures": failures}
    print("VMM memory over time, 512 MiB touched then freed in a 1 GiB microVM "
          "(QEMU lane, TCG nested):")
    for mode, samples in curves.items():
        print(f"\n{mode}:")
        print("   t (s)  phase     RSS MiB  memfd MiB")
        for s in samples:
            print(f"  {s['t']:6.1f}  {s['phase']:8s} {s['rss_mib']:8d} {s['memfd_mib']:10d}")
    print()
    for mode, s in report["summary"].items():
        if s:
            back = s["seconds_to_baseline_plus_128mib"]
            print(f"{mode:13s} baseline {s['baseline_memfd_mib']} MiB, peak {s['peak_memfd_mib']} "
                  f"MiB, after {a.observe} s {s['final_memfd_mib']} MiB (memfd; RSS "
                  f"{s['baseline_rss_mib']}/{s['peak_rss_mib']}/{s['final_rss_mib']}); back "
                  f"within 128 MiB of the baseline: "
                  + (f"{back:.1f} s after the free" if back is not None else "never"))
    if failures:
        print("failures:", *failures, sep="\n")
    if not run.ok:
        print(run.failure_report())
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    return 1 if failures or not run.ok else 0


if __name__ == "__main__":
    sys.exit(main())
