#!/usr/bin/env python3
"""Lifecycle latency: `run` of /bin/true, N sequential containers per runtime, runtimes
alternated run by run so that machine noise hits them alike. Prints medians, totals and
the ratio to runc, and writes raw JSON. This is the headline test crun uses (100 runs).

usage: run_true.py [--runs N] [--runcell PATH] [--json OUT]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))


def make_bundle(runcell, path):
    subprocess.run([os.path.join(TOP, "scripts/make-busybox-bundle.sh"), path, runcell,
                    "/bin/true"], check=True, stdout=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--runcell", default=os.path.join(TOP, "build/runcell"))
    ap.add_argument("--json")
    a = ap.parse_args()
    a.runcell = os.path.abspath(a.runcell)
    work = tempfile.mkdtemp(prefix="runcell-bench-")
    # runcell as a cell (its default: the syscall gate on) and with the gate off, through
    # the handler name runcell-native (a symlink, as `cmake --install` makes).
    native = os.path.join(work, "runcell-native")
    os.symlink(os.path.abspath(a.runcell), native)
    runtimes = {"runcell": a.runcell, "runcell-native": native}
    for other in ("runc", "runsc"):
        if shutil.which(other):
            runtimes[other] = shutil.which(other)
    state_base = tempfile.mkdtemp(prefix="runcell-bench-", dir="/run")
    try:
        bundle = os.path.join(work, "bundle")
        make_bundle(a.runcell, bundle)
        times = {name: [] for name in runtimes}
        for i in range(a.runs):
            for name, binary in runtimes.items():
                # state roots on tmpfs, where runtimes keep them in production (/run)
                root = os.path.join(state_base, "root-" + name)
                cid = "bench-%s-%d" % (name, i)
                t0 = time.perf_counter()
                # runsc refuses to run a sandbox in the host's network namespace setup
                # without a network of its own; the bundle has no network to offer
                extra = ["--network=none"] if name == "runsc" else []
                r = subprocess.run([binary, *extra, "--root", root, "run", "--bundle", bundle,
                                    cid],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
                dt = time.perf_counter() - t0
                if r.returncode != 0:
                    sys.exit("%s run failed (%d): %s" % (name, r.returncode, r.stderr.decode()))
                times[name].append(dt)
        report = {}
        for name, ts in times.items():
            report[name] = {"runs": len(ts), "median_ms": statistics.median(ts) * 1000,
                            "total_s": sum(ts),
                            "p10_ms": sorted(ts)[len(ts) // 10] * 1000,
                            "p90_ms": sorted(ts)[(len(ts) * 9) // 10] * 1000}
        print("runtime          runs  median(ms)  p10(ms)  p90(ms)  total(s)  ratio-to-runc")
        for name, r in report.items():
            ratio = (r["median_ms"] / report["runc"]["median_ms"]) if "runc" in report else float("nan")
            print("%-15s %5d %11.1f %8.1f %8.1f %9.2f %14.2f" % (
                name, r["runs"], r["median_ms"], r["p10_ms"], r["p90_ms"], r["total_s"], ratio))
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"benchmark": "run /bin/true", "results": report,
                           "raw_s": times}, f, indent=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(state_base, ignore_errors=True)


if __name__ == "__main__":
    main()
