#!/usr/bin/env python3
"""The notify placement's costs on this host, all in one run: gate_roundtrip.c (static)
times an allowed syscall (getppid) and the routed sysinfo in a notify cell and in a
native container (gate off), and in the native container the bare round trips the issue's
targets compare with: a SIGSYS through the program's own RET_TRAP filter, and a seccomp
user notification answered on the same CPU by a thread of the same process
(bare_notify) and by another process (bare_notify_process: the notify supervisor is one,
so every answer switches address spaces twice). Where the CPU has protection keys (the
pku flag), an xgate cell is measured in the same run, against the bare SIGSYS round trip.
A native container with the default seccomp profile Docker and podman apply (column
"profile", see seccomp_profile.py) shows what an allowed syscall costs as engines run
containers, next to the bare native one.

    tests/bench/gate_host.py [--runcell build/runcell] [--ms 300] [--rounds 5] [--out DIR]
                             [--probe PATH] [--profile seccomp.json]

Run as root. Placements alternate op by op and round by round; the table shows each
path's median over the rounds, and the ratios are taken between those medians. --probe
takes a gate_roundtrip built elsewhere (statically) for a machine without a compiler.
Where the CPU has no protection keys, tests/bench/xgate_lane.py measures the xgate
placement in the MPK lane (emulated, so only its ratios mean anything)."""
import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from helpers import default_spec, make_rootfs  # noqa: E402
import seccomp_profile  # noqa: E402

PLACEMENTS = {"notify": {"run.runcell.placement": "notify"}, "native": {"run.runcell.gate": "off"}}
OPS = {"notify": ["getppid", "sysinfo"],
       "native": ["getppid", "sysinfo", "bare_sigsys", "bare_notify", "bare_notify_process"]}


def cpu_has_pku():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return "pku" in line.split()
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runcell", default=os.environ.get("RUNCELL_BIN", str(REPO / "build" / "runcell")))
    ap.add_argument("--ms", type=int, default=300, help="time budget per measurement")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=None)
    ap.add_argument("--probe", default=None, help="a static gate_roundtrip built elsewhere")
    ap.add_argument("--profile", default=seccomp_profile.find_profile(),
                    help="the engines' default seccomp profile (containers-common's seccomp.json)")
    args = ap.parse_args()
    placements, ops = dict(PLACEMENTS), dict(OPS)
    if args.profile:
        placements["profile"] = {"run.runcell.gate": "off"}
        ops["profile"] = ["getppid", "sysinfo"]
    if cpu_has_pku():
        placements["xgate"] = {"run.runcell.placement": "xgate"}
        ops["xgate"] = ["getppid", "sysinfo"]
    if os.geteuid() != 0:
        print("gate_host: run as root (it starts containers)", file=sys.stderr)
        return 2
    samples = {name: {op: [] for op in ops[name]} for name in placements}
    ids = {}
    root = tempfile.mkdtemp(prefix="runcell-gate-state-")
    rc = [args.runcell, "--root", root]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rootfs = work / "rootfs"
        make_rootfs(rootfs)
        if args.probe:
            shutil.copy2(args.probe, rootfs / "bin" / "gate_roundtrip")
        else:
            subprocess.run(["gcc", "-O2", "-static", "-pthread", "-o",
                            str(rootfs / "bin" / "gate_roundtrip"), str(HERE / "gate_roundtrip.c")],
                           check=True)
        try:
            for name, ann in placements.items():
                spec = default_spec()
                spec["root"] = {"path": str(rootfs), "readonly": True}
                spec["annotations"] = ann
                spec["process"]["args"] = ["sleep", "100000"]
                if name == "profile":
                    seccomp_profile.apply(spec, args.profile)
                bundle = work / ("bundle-" + name)
                bundle.mkdir()
                (bundle / "config.json").write_text(json.dumps(spec))
                ids[name] = f"gate-{name}-{secrets.token_hex(3)}"
                subprocess.run(rc + ["run", "--detach", "--bundle", str(bundle), ids[name]], check=True)
            for _ in range(args.rounds):
                for op in ops["native"]:
                    for name in placements:
                        if op not in ops[name]:
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
    n, nat, x, prof = med["notify"], med["native"], med.get("xgate"), med.get("profile")
    rows = [("allowed syscall (getppid), notify cell / native", n["getppid"] / nat["getppid"], "≤ 1.05")]
    if prof:
        rows.append(("allowed syscall (getppid), notify cell / native with the default profile",
                     n["getppid"] / prof["getppid"], ""))
    if x:
        rows.append(("allowed syscall (getppid), xgate cell / native", x["getppid"] / nat["getppid"], "≤ 1.05"))
        if prof:
            rows.append(("allowed syscall (getppid), xgate cell / native with the default profile",
                         x["getppid"] / prof["getppid"], ""))
        rows.append(("routed sysinfo, xgate / bare SIGSYS round trip", x["sysinfo"] / nat["bare_sigsys"], "≤ 2"))
    rows += [("routed sysinfo, notify / bare user-notification round trip (answering thread)",
              n["sysinfo"] / nat["bare_notify"], "≤ 1.5"),
             ("routed sysinfo, notify / bare user-notification round trip (answering process)",
              n["sysinfo"] / nat["bare_notify_process"], "")]
    columns = [("notify cell", n)] + ([("xgate cell", x)] if x else []) + [("native", nat)] \
        + ([("native + default profile", prof)] if prof else [])
    print(f"| ns per call (median of {args.rounds}) | " + " | ".join(c for c, _ in columns) + " |\n"
          + "|---" * (len(columns) + 1) + "|")

    def row(label, op):
        cells = [f"{m[op]:.0f}" if op in m else "" for _, m in columns]
        print(f"| {label} | " + " | ".join(cells) + " |")
    for op in ("getppid", "sysinfo"):
        row(op, op)
    row("bare SIGSYS round trip", "bare_sigsys")
    row("bare user-notification round trip, answering thread", "bare_notify")
    row("bare user-notification round trip, answering process", "bare_notify_process")
    print()
    if not x:
        print("(no xgate column: this CPU has no protection keys; tests/bench/xgate_lane.py)\n")
    if not prof:
        print("(no default-profile column: no seccomp.json; install containers-common or pass --profile)\n")
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
