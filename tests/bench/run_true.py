#!/usr/bin/python3
"""Lifecycle latency: `run` of /bin/true, N sequential containers per runtime, runtimes
alternated run by run so that machine noise hits them alike. Prints medians, totals and
the ratio to runc, and writes raw JSON. This is the headline test crun uses (100 runs).
run_all.py runs it as part of the whole suite.

usage: run_true.py [--runs N] [--runcell PATH] [--json OUT]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import TOP, Benchmark, BenchError, Session, summarize  # noqa: E402
from lifecycle import time_run_true  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--runcell", default=os.environ.get("RUNCELL_BIN") or
                    os.path.join(TOP, "build/runcell"))
    ap.add_argument("--json")
    a = ap.parse_args()
    try:
        with Session(a.runcell) as s:
            runtimes = s.discover()
            bench = Benchmark("run_true", "run /bin/true", {"runs": a.runs})
            time_run_true(s, bench, runtimes, a.runs)
    except BenchError as e:
        sys.exit("run_true.py: %s" % e)
    times = bench.data["metrics"]["run_ms"]["samples"]
    report = {}
    for name, ts in times.items():
        st = summarize(ts)
        report[name] = {"runs": len(ts), "median_ms": st["median"], "total_s": sum(ts) / 1000,
                        "p10_ms": st["p10"], "p90_ms": st["p90"]}
    print("runtime          runs  median(ms)  p10(ms)  p90(ms)  total(s)  ratio-to-runc")
    for name, r in report.items():
        ratio = r["median_ms"] / report["runc"]["median_ms"] if "runc" in report else float("nan")
        print("%-15s %5d %11.1f %8.1f %8.1f %9.2f %14.2f" % (
            name, r["runs"], r["median_ms"], r["p10_ms"], r["p90_ms"], r["total_s"], ratio))
    for name, info in s.info.items():
        if not info.get("available"):
            print("%-15s %s" % (name, info["reason"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"benchmark": "run /bin/true", "results": report,
                       "raw_s": {n: [t / 1000 for t in ts] for n, ts in times.items()},
                       "runtimes": s.info}, f, indent=2)
    if bench.errors:
        sys.exit("run_true.py: failed: " + "; ".join(bench.errors.values()))


if __name__ == "__main__":
    main()
