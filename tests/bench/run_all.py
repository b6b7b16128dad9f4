#!/usr/bin/python3
"""The benchmark suite: runcell as a cell, runcell-native, runc, runsc and runcell's
microVM mode (where this build has one), side by side on this machine.

usage: run_all.py [--quick|--full] [--out DIR] [--runcell PATH] [--runc PATH]
                  [--runsc PATH] [--runtimes a,b,...]
                  [--benchmarks lifecycle,footprint,syscalls,apps]

Writes DIR/results.json (raw samples, summaries, the machine), DIR/report.md (medians,
p10/p90 and ratios to runc) and DIR/<benchmark>.png. --quick (about a minute) is a smoke
test: it fails only when a runtime fails to run, never on the numbers. --full (the
default) gives the numbers worth quoting. Exit status: 0 when every available runtime ran
every benchmark, 1 when one failed (the report says which and why), 2 on bad usage.
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import apps  # noqa: E402
import footprint  # noqa: E402
import lifecycle  # noqa: E402
import report  # noqa: E402
import syscalls  # noqa: E402
from benchlib import TOP, RUNTIME_ORDER, BenchError, Session, cgroup_layout, log  # noqa: E402
from benchlib import read_text  # noqa: E402

BENCHMARKS = {"lifecycle": lifecycle, "footprint": footprint, "syscalls": syscalls,
              "apps": apps}

SETTINGS = {
    "quick": {
        "lifecycle": {"runs": 3, "cycles": 2, "concurrency": 5, "batches": 1},
        "footprint": {"containers": 1, "settle_s": 0.5, "reps": 1},
        "syscalls": {"ms_per_op": 40, "reps": 1},
        "apps": {"redis_requests": 2000, "redis_clients": 20, "wrk_connections": 16,
                 "wrk_seconds": 1, "reps": 1},
    },
    "full": {
        "lifecycle": {"runs": 100, "cycles": 30, "concurrency": 20, "batches": 5},
        "footprint": {"containers": 5, "settle_s": 1.0, "reps": 5},
        "syscalls": {"ms_per_op": 300, "reps": 10},
        "apps": {"redis_requests": 20000, "redis_clients": 20, "wrk_connections": 16,
                 "wrk_seconds": 5, "reps": 5},
    },
}


def machine():
    cpu = "?"
    for line in (read_text("/proc/cpuinfo", "") or "").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = "?"
    for line in (read_text("/proc/meminfo", "") or "").splitlines():
        if line.startswith("MemTotal:"):
            mem = "%.1f GiB" % (int(line.split()[1]) / 1024 / 1024)
    osname = "?"
    for line in (read_text("/etc/os-release", "") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            osname = line.split("=", 1)[1].strip('"')
    return {"os": osname, "kernel": platform.release(), "cores": os.cpu_count(), "cpu": cpu,
            "memory": mem, "cgroups": cgroup_layout()}


def loadavg():
    return " ".join((read_text("/proc/loadavg", "") or "? ? ?").split()[:3])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="setting", action="store_const", const="quick",
                   help="smoke test, about a minute")
    g.add_argument("--full", dest="setting", action="store_const", const="full",
                   help="the numbers to quote (the default; 10 to 20 minutes)")
    ap.add_argument("--out", default="bench-results", help="output directory")
    ap.add_argument("--runcell", default=os.environ.get("RUNCELL_BIN") or
                    os.path.join(TOP, "build/runcell"))
    ap.add_argument("--runc", help="runc binary (default: runc on PATH)")
    ap.add_argument("--runsc", help="runsc binary (default: runsc on PATH)")
    ap.add_argument("--runtimes", help="comma-separated subset of " + ",".join(RUNTIME_ORDER))
    ap.add_argument("--benchmarks", help="comma-separated subset of " + ",".join(BENCHMARKS))
    a = ap.parse_args()
    setting = a.setting or "full"
    wanted = a.runtimes.split(",") if a.runtimes else None
    for name in wanted or []:
        if name not in RUNTIME_ORDER:
            ap.error("unknown runtime %r (known: %s)" % (name, ", ".join(RUNTIME_ORDER)))
    chosen = a.benchmarks.split(",") if a.benchmarks else list(BENCHMARKS)
    for name in chosen:
        if name not in BENCHMARKS:
            ap.error("unknown benchmark %r (known: %s)" % (name, ", ".join(BENCHMARKS)))
    if os.geteuid() != 0:
        sys.exit("run_all.py: the runtimes need root to create containers")
    os.makedirs(a.out, exist_ok=True)

    started = time.monotonic()
    results = {
        "meta": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "setting": setting,
            "command": " ".join(shlex.quote(x) for x in ["tests/bench/run_all.py"] + sys.argv[1:]),
            "machine": machine(),
            "loadavg_before": loadavg(),
            "params": {b: SETTINGS[setting][b] for b in chosen},
        },
        "runtimes": {},
        "benchmarks": {},
        "failures": [],
    }
    failures = results["failures"]
    try:
        with Session(a.runcell, wanted, {"runc": a.runc, "runsc": a.runsc}) as s:
            results["meta"].update(tag=s.tag, state_base=s.state_base, state_fs=s.state_fs,
                                   work=s.work, runcell=s.runcell)
            runtimes = s.discover()
            results["runtimes"] = s.info
            for name, info in s.info.items():
                log("%-16s %s" % (name, "measured: " + info.get("version", "")
                                  if info.get("available") else info["reason"]))
            for name in chosen:
                log("%s ..." % name)
                t0 = time.monotonic()
                try:
                    bench = BENCHMARKS[name].run(s, runtimes, SETTINGS[setting][name])
                except BenchError as e:  # the benchmark itself could not be set up
                    failures.append("%s: %s" % (name, e))
                    log("%s FAILED: %s" % (name, e))
                    continue
                results["benchmarks"][name] = bench.data
                failures += ["%s: %s: %s" % (name, rt, err) for rt, err in bench.errors.items()]
                log("%s done in %.0f s" % (name, time.monotonic() - t0))
    except BenchError as e:
        failures.append(str(e))
    finally:
        results["meta"]["loadavg_after"] = loadavg()
        results["meta"]["duration_s"] = time.monotonic() - started
        report.add_summaries(results)
        _, note = report.charts(results, a.out)
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
        with open(os.path.join(a.out, "report.md"), "w") as f:
            f.write(report.markdown(results, note))
            if failures:
                f.write("\n## Failures\n\n" + "\n".join("- `%s`" % x.replace("`", "'")
                                                        for x in failures) + "\n")
    log("wrote %s/results.json and %s/report.md" % (a.out, a.out))
    if failures:
        for x in failures:
            print("run_all.py: FAILED: " + x, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
