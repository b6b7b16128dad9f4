#!/usr/bin/env python3
"""The cell gate's costs in both placements of the cell kernel, in the MPK lane
(tests/lanes: QEMU TCG with protection keys; this machine's CPUs have none), all in one
run: gate_roundtrip.c (static) times an allowed syscall and the routed sysinfo in an xgate
cell, a notify cell and a native container (gate off), and the two bare round trips the
issue's targets compare with (a SIGSYS through the program's own RET_TRAP filter, a seccomp
user notification answered by a thread on the same CPU) in the native container.

    tests/bench/xgate_lane.py [--runcell build/runcell] [--ms 300] [--out DIR]

Prints a table with the ratios and writes results.json under --out. The numbers come from
software emulation: ratios between paths of the same run say something, absolute
nanoseconds do not describe any real CPU."""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO / "tests" / "lanes"))

from helpers import default_spec, make_rootfs  # noqa: E402
import lane  # noqa: E402

PLACEMENTS = {"xgate": {"run.runcell.placement": "xgate"},
              "notify": {"run.runcell.placement": "notify"},
              "native": {"run.runcell.gate": "off"}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runcell", default=os.environ.get("RUNCELL_BIN", str(REPO / "build" / "runcell")))
    ap.add_argument("--ms", type=int, default=300, help="time budget per measurement")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rootfs = work / "rootfs"
        make_rootfs(rootfs)
        subprocess.run(["gcc", "-O2", "-static", "-pthread", "-o", str(rootfs / "bin" / "gate_roundtrip"),
                        str(HERE / "gate_roundtrip.c")], check=True)
        bundles = work / "bundles"
        for name, ann in PLACEMENTS.items():
            spec = default_spec()
            spec["root"] = {"path": "/srv/rootfs", "readonly": False}
            spec["annotations"] = ann
            spec["process"]["args"] = ["sleep", "1000"]
            (bundles / name).mkdir(parents=True)
            (bundles / name / "config.json").write_text(json.dumps(spec))
        ops = {"xgate": ["getppid", "sysinfo"], "notify": ["getppid", "sysinfo"],
               "native": ["getppid", "sysinfo", "bare_sigsys", "bare_notify"]}
        lines = ["mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup",
                 "grep -q pku /proc/cpuinfo || echo 'RESULT {\"error\": \"no pku\"}'"]
        for name in PLACEMENTS:
            lines.append(f"runcell create --no-pivot --bundle /srv/bundles/{name} b-{name} && runcell start b-{name}")
        # alternate placements op by op, so that drift in the emulator hits all alike
        for op in ops["native"]:
            for name in PLACEMENTS:
                if op in ops[name]:
                    lines.append(f"echo RESULT {name} $(runcell exec b-{name} /bin/gate_roundtrip {op} {args.ms})")
        lines.append("for n in xgate notify native; do runcell delete --force b-$n; done")
        run = lane.run_lane(log=lambda m: None, shell_cmds=["\n".join(lines)],
                            adds=[(Path(args.runcell), "/usr/local/bin/runcell"), (rootfs, "/srv/rootfs"),
                                  (bundles, "/srv/bundles")], modules=["fuse"], timeout=600)
        output = "\n".join(run.result("shell-cmd-1").output) if run.done else run.failure_report()
    results = {}
    for m in re.finditer(r"RESULT (\w+) (\{.*\})", output):
        results.setdefault(m.group(1), {}).update(json.loads(m.group(2)))
    if "error" in output or not all(results.get(n) for n in PLACEMENTS):
        print(output)
        print("xgate_lane: incomplete results", file=sys.stderr)
        return 1
    x, n, nat = results["xgate"], results["notify"], results["native"]
    rows = [
        ("allowed syscall (getppid), xgate cell / native", x["getppid"] / nat["getppid"], "≤ 1.05"),
        ("allowed syscall (getppid), notify cell / native", n["getppid"] / nat["getppid"], "≤ 1.05"),
        ("routed sysinfo, xgate / bare SIGSYS round trip", x["sysinfo"] / nat["bare_sigsys"], "≤ 2"),
        ("routed sysinfo, notify / bare user-notification round trip", n["sysinfo"] / nat["bare_notify"], "≤ 1.5"),
        ("routed sysinfo, xgate / notify", x["sysinfo"] / n["sysinfo"], ""),
    ]
    print("| ns per call (lane, TCG) | xgate | notify | native |\n|---|---|---|---|")
    for op in ("getppid", "sysinfo"):
        print(f"| {op} | {x[op]:.0f} | {n[op]:.0f} | {nat[op]:.0f} |")
    print(f"| bare SIGSYS round trip | | | {nat['bare_sigsys']:.0f} |")
    print(f"| bare user-notification round trip | | | {nat['bare_notify']:.0f} |\n")
    print("| ratio | measured | target |\n|---|---|---|")
    for what, ratio, target in rows:
        print(f"| {what} | {ratio:.2f} | {target} |")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "xgate_lane.json").write_text(json.dumps({"results": results, "ms": args.ms}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
