"""Smoke test of the benchmark suite: `tests/bench/run_all.py --quick` with the built
binary produces its JSON and Markdown with every runtime in them (measured, or reported
absent with the reason), fails when a runtime fails, and leaves no container, state, cgroup,
process or mount behind. No threshold on any number: the quick setting must not fail on
noise."""
import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers import REPO, cgroup_hierarchies, mounts_under

# runcell's suite around runcell's binary (the runcell-native and runcell-microvm modes
# are names of that binary): nothing to check with RUNCELL_BIN=runc
pytestmark = pytest.mark.runcell_specific

RUN_ALL = REPO / "tests" / "bench" / "run_all.py"
RUNTIMES = ["runcell", "runcell-native", "runc", "runsc", "runcell-microvm"]
PYTHON = "/usr/bin/python3"  # Debian's, with Debian's matplotlib for the charts


def run_suite(out, *args, timeout=110):
    return subprocess.run([PYTHON, str(RUN_ALL), "--quick", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=timeout)


def leftovers(meta):
    """What the suite left on the host: its state roots and work directory, processes
    naming them or its container ids, cgroups named by its ids, mounts in its work dir."""
    problems = []
    for key in ("state_base", "work"):
        if os.path.exists(meta[key]):
            problems.append(f"{key} {meta[key]} still exists")
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if meta["state_base"] in cmd or meta["tag"] + "-" in cmd:
            problems.append(f"process {pid}: {cmd}")
    for mp in cgroup_hierarchies():
        for dirpath, dirnames, _ in os.walk(mp):
            problems += [f"cgroup {dirpath}/{d}" for d in dirnames if d.startswith(meta["tag"])]
    problems += [f"mount {m}" for m in mounts_under(meta["work"])]
    return problems


def table_rows(markdown, section):
    """The data rows of the table under `## section`, as lists of cells."""
    body = markdown.split("## " + section, 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split(" | ")]
            for line in body.splitlines() if line.startswith("| ")]
    return rows[0], rows[1:]  # header, rows


@pytest.fixture(scope="module")
def quick(runcell_bin, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-quick")
    r = run_suite(out, "--runcell", runcell_bin)
    assert r.returncode == 0, f"run_all.py --quick failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    results = json.loads((out / "results.json").read_text())
    return out, results, (out / "report.md").read_text()


def test_quick_reports_every_runtime(quick):
    out, results, md = quick
    assert list(results["runtimes"]) == RUNTIMES
    runtime_rows = {row[0]: row for row in table_rows(md, "Runtimes")[1]}
    assert set(runtime_rows) == set(RUNTIMES)
    for name, info in results["runtimes"].items():
        if info["available"]:
            assert runtime_rows[name][-1] == "measured"
        else:
            # absent, with its reason, in the JSON and in the report
            assert info["reason"], name
            assert info["reason"].split(" (")[0] in runtime_rows[name][-1], name
    for name in ("runcell", "runcell-native", "runc"):
        assert results["runtimes"][name]["available"], results["runtimes"][name]
    # each runcell column ran in the mode it names, as the containers' state says
    assert results["runtimes"]["runcell"]["state_annotations"] == {
        "run.runcell.mode": "cell", "run.runcell.gate": "on", "run.runcell.placement": "notify"}
    assert results["runtimes"]["runcell-native"]["state_annotations"] == {
        "run.runcell.mode": "cell", "run.runcell.gate": "off"}
    assert runtime_rows["runcell"][3] == "gate=on, mode=cell, placement=notify"
    if not results["runtimes"]["runsc"]["available"]:
        assert "not installed" in results["runtimes"]["runsc"]["reason"]
    vm = results["runtimes"]["runcell-microvm"]
    if not vm["available"]:
        assert vm["reason"].startswith("not available in this build"), vm


def test_quick_measures_every_available_runtime(quick):
    out, results, md = quick
    assert results["meta"]["setting"] == "quick"
    assert results["failures"] == []
    available = [n for n, i in results["runtimes"].items() if i["available"]]
    assert set(results["benchmarks"]) == {"lifecycle", "footprint", "syscalls", "apps"}
    for bkey, bench in results["benchmarks"].items():
        assert bench["errors"] == {}, bkey
        if bkey == "apps":
            skipped = bench.get("skipped", {})
            expected = {"redis_set_rps", "redis_get_rps"} if "redis" not in skipped else set()
            expected |= {"nginx_rps"} if "nginx" not in skipped else set()
            assert set(bench["metrics"]) == expected
        else:
            assert bench["metrics"], bkey
        for key, metric in bench["metrics"].items():
            assert set(metric["samples"]) >= set(available), (bkey, key)
            for rt in available:
                samples = metric["samples"][rt]
                assert samples and all(isinstance(v, (int, float)) and v >= 0 for v in samples)
                st = bench["summary"][key][rt]
                assert st["p10"] <= st["median"] <= st["p90"]
            runc_median = bench["summary"][key]["runc"]["median"]
            if runc_median:
                assert bench["summary"][key]["runc"]["ratio_to_runc"] == pytest.approx(1.0)
    syscalls = results["benchmarks"]["syscalls"]
    assert "host" in syscalls["metrics"]["getppid"]["samples"]
    # runc with the engines' default seccomp profile, where runc and the profile exist;
    # otherwise the benchmark says why it is missing
    if results["runtimes"]["runc"]["available"]:
        if "runc+seccomp" in syscalls["metrics"]["getppid"]["samples"]:
            assert all(syscalls["summary"][key]["runc+seccomp"]["median"] > 0
                       for key in syscalls["metrics"])
            assert any(n.startswith("runc+seccomp: runc with ") for n in syscalls["notes"])
        else:
            assert any(n.startswith("runc+seccomp not measured") for n in syscalls["notes"])
    # the cell's routed syscall is measured; the other runtimes' sysinfo is a plain syscall
    assert results["benchmarks"]["syscalls"]["summary"]["sysinfo"]["runcell"]["median"] > 0


def test_quick_markdown_tables(quick):
    out, results, md = quick
    for bench in results["benchmarks"].values():
        header, rows = table_rows(md, bench["title"])
        assert header[:3] == ["metric", "unit", "better"]
        for name, info in results["runtimes"].items():
            assert name in header, (bench["title"], name)
            col = header.index(name)
            for row in rows:
                assert len(row) == len(header), row
                if info["available"]:
                    assert row[col].split(" [")[0].replace(",", "").replace(".", "").isdigit(), row
                else:
                    assert row[col] == "n/a", row
    if results["runtimes"]["runcell-microvm"]["available"] is False:
        assert "not available in this build" in md


def test_quick_writes_charts_or_says_why(quick):
    out, results, md = quick
    try:
        subprocess.run([PYTHON, "-c", "import matplotlib"], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        assert "Charts skipped" in md
        return
    for bkey in results["benchmarks"]:
        png = out / f"{bkey}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"({bkey}.png)" in md


def test_quick_leaves_nothing_behind(quick):
    out, results, md = quick
    assert leftovers(results["meta"]) == []
    assert results["meta"]["state_base"].startswith("/run/runcell-bench-")


def test_failing_runtime_fails_the_suite_and_cleans_up(runcell_bin, tmp_path):
    """A runtime whose `run` fails makes the suite exit 1 naming it, the others are still
    measured, an absent runsc is reported absent, and nothing is left behind."""
    wrapper = tmp_path / "bin" / "runcell"
    wrapper.parent.mkdir()
    # fails `run`, passes everything else to the real binary under the same name (the
    # name picks runcell's mode)
    wrapper.write_text(
        "#!/bin/bash\n"
        'for a in "$@"; do\n'
        '  [ "$a" = run ] && { echo "runcell: injected failure" >&2; exit 1; }\n'
        "done\n"
        f'exec -a "$0" {runcell_bin} "$@"\n')
    wrapper.chmod(0o755)
    out = tmp_path / "out"
    r = run_suite(out, "--runcell", str(wrapper), "--runtimes", "runcell,runc,runsc",
                  "--runsc", str(tmp_path / "no-such-runsc"), "--benchmarks", "lifecycle")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "lifecycle: runcell:" in r.stderr and "injected failure" in r.stderr, r.stderr
    results = json.loads((out / "results.json").read_text())
    md = (out / "report.md").read_text()
    lifecycle = results["benchmarks"]["lifecycle"]
    assert "injected failure" in lifecycle["errors"]["runcell"]
    assert set(lifecycle["errors"]) == {"runcell"}
    assert lifecycle["metrics"]["run_ms"]["samples"]["runc"]
    assert "**runcell failed**" in md
    runsc = results["runtimes"]["runsc"]
    assert runsc["available"] is False and "no executable at" in runsc["reason"]
    assert "not selected" in results["runtimes"]["runcell-native"]["reason"]
    assert leftovers(results["meta"]) == []


def test_bad_usage_is_refused(runcell_bin, tmp_path):
    r = run_suite(tmp_path / "out", "--runcell", runcell_bin, "--runtimes", "crun")
    assert r.returncode == 2 and "unknown runtime 'crun'" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_default_seccomp_profile_is_enforced_under_runc(runc_h, bundle):
    """The syscall benchmark's runc+seccomp column runs runc with the engines' default
    profile converted to config.json (tests/bench/seccomp_profile.py): the filter must
    load and be in force, or the column would be bare runc under another name."""
    import sys

    sys.path.insert(0, str(REPO / "tests" / "bench"))
    import seccomp_profile

    profile = seccomp_profile.find_profile()
    if profile is None:  # podman's dependency, which scripts/install-deps.sh installs
        pytest.fail("no default seccomp profile at %s (scripts/install-deps.sh installs podman "
                    "and with it containers-common)" % seccomp_profile.PROFILE_PATHS,
                    pytrace=False)
    bundle.args("grep", "^Seccomp", "/proc/self/status")
    bundle.config.get("linux", {}).pop("seccomp", None)
    assert "Seccomp:\t0" in runc_h.output_of(bundle)  # no filter: the check can fail
    seccomp_profile.apply(bundle.config, profile)
    out = runc_h.output_of(bundle)
    assert "Seccomp:\t2" in out and "Seccomp_filters:\t1" in out, out
