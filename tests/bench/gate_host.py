#!/usr/bin/env python3
"""The notify placement's costs on this host, all in one run: gate_roundtrip.c (static)
times an allowed syscall (getppid) and the routed sysinfo in a notify cell and in a
native container (gate off), and in the native container the bare round trips the issue's
targets compare with: a SIGSYS through the program's own RET_TRAP filter, and a seccomp
user notification answered on the same CPU by a thread of the same process
(bare_notify) and by another process (bare_notify_process: the notify supervisor is one,
so every answer switches address spaces twice).

    tests/bench/gate_host.py [--runcell build/runcell] [--ms 300] [--rounds 5] [--out DIR]

Run as root. Placements alternate op by op and round by round; the table shows each
path's median over the rounds, and the ratios are taken between those medians. The xgate
placement needs protection keys, which this machine lacks: tests/bench/xgate_lane.py
measures it in the MPK lane."""
import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from helpers import default_spec, make_rootfs  # noqa: E402

PLACEMENTS = {"notify": {"run.runcell.placement": "notify"}, "native": {"run.runcell.gate": "off"}}
OPS = {"notify": ["getppid", "sysinfo"],
       "native": ["getppid", "sysinfo", "bare_sigsys", "bare_notify", "bare_notify_process"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runcell", default=os.environ.get("RUNCELL_BIN", str(REPO / "build" / "runcell")))
    ap.add_argument("--ms", type=int, default=300, help="time budget per measurement")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("gate_host: run as root (it starts containers)", file=sys.stderr)
        return 2
    samples = {name: {op: [] for op in OPS[name]} for name in PLACEMENTS}
    ids = {}
    root = tempfile.mkdtemp(prefix="runcell-gate-state-")
    rc = [args.runcell, "--root", root]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rootfs = work / "rootfs"
        make_rootfs(rootfs)
        subprocess.run(["gcc", "-O2", "-static", "-pthread", "-o", str(rootfs / "bin" / "gate_roundtrip"),
                        str(HERE / "gate_roundtrip.c")], check=True)
        try:
            for name, ann in PLACEMENTS.items():
                spec = default_spec()
                spec["root"] = {"path": str(rootfs), "readonly": True}
                spec["annotations"] = ann
                spec["process"]["args"] = ["sleep", "100000"]
                bundle = work / ("bundle-" + name)
                bundle.mkdir()
                (bundle / "config.json").write_text(json.dumps(spec))
                ids[name] = f"gate-{name}-{secrets.token_hex(3)}"
                subprocess.run(rc + ["run", "--detach", "--bundle", str(bundle), ids[name]], check=True)
            for _ in range(args.rounds):
                for op in OPS["native"]:
                    for name in PLACEMENTS:
                        if op not in OPS[name]:
                            continue
                        r = subprocess.run(rc + ["exec", ids[name], "/bin/gate_roundtrip", op, str(args.ms)],
                                           capture_output=True, text=True, timeout=120)
                        if r.returncode != 0:
                            print(f"gate_host: {op} in the {name} container failed: {r.stderr.strip()}",
                                  file=sys.stderr)
                            return 1
                        samples[name][op].append(json.loads(r.stdout.strip().splitlines()[-1])[op])
        finally:
            for cid in ids.values():
                subprocess.run(rc + ["delete", "--force", cid], capture_output=True)
            os.rmdir(root) if not os.listdir(root) else None
    med = {name: {op: statistics.median(v) for op, v in ops.items()} for name, ops in samples.items()}
    n, nat = med["notify"], med["native"]
    rows = [
        ("allowed syscall (getppid), notify cell / native", n["getppid"] / nat["getppid"], "≤ 1.05"),
        ("routed sysinfo, notify / bare user-notification round trip (answering thread)",
         n["sysinfo"] / nat["bare_notify"], "≤ 1.5"),
        ("routed sysinfo, notify / bare user-notification round trip (answering process)",
         n["sysinfo"] / nat["bare_notify_process"], ""),
    ]
    print(f"| ns per call (median of {args.rounds}) | notify cell | native |\n|---|---|---|")
    for op in ("getppid", "sysinfo"):
        print(f"| {op} | {n[op]:.0f} | {nat[op]:.0f} |")
    print(f"| bare SIGSYS round trip | | {nat['bare_sigsys']:.0f} |")
    print(f"| bare user-notification round trip, answering thread | | {nat['bare_notify']:.0f} |")
    print(f"| bare user-notification round trip, answering process | | {nat['bare_notify_process']:.0f} |\n")
    print("| ratio | measured | target |\n|---|---|---|")
    for what, ratio, target in rows:
        print(f"| {what} | {ratio:.2f} | {target} |")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "gate_host.json").write_text(
            json.dumps({"samples": samples, "medians": med, "ms": args.ms}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
