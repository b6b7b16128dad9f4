"""The QEMU hardware lane (tests/lanes/): Debian's cloud kernel under QEMU TCG, with
emulated AMD SVM (so /dev/kvm works) and PKU.

The lane boots once for this module with runcell's build (RUNCELL_BIN or build/runcell)
added, and runs every tests/lanes/guest-tests/*.sh; each guest test is one pytest test
here. Two more boots check the lane's own failure paths: a hung guest is killed at the
deadline, and a guest that stops without reporting `done` fails the run.
Skipped when qemu-system-x86_64 is not installed.
"""
import re
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "lanes"))

import lane  # noqa: E402
from lane_kernel import LaneError  # noqa: E402

GUEST_TESTS = sorted(lane.GUEST_TESTS_DIR.glob("*.sh"))
LANE_TIMEOUT = 300


def _require_qemu():
    if shutil.which(lane.lane_qemu.QEMU) is None:
        pytest.skip(f"{lane.lane_qemu.QEMU} is not installed (apt-get install qemu-system-x86)")


def _run_lane(**kwargs):
    _require_qemu()
    try:
        return lane.run_lane(log=lambda msg: None, **kwargs)
    except LaneError as e:
        pytest.fail(f"the lane could not be prepared: {e}", pytrace=False)


@pytest.fixture(scope="module")
def lane_run(runcell_bin):
    return _run_lane(tests=GUEST_TESTS, adds=[(Path(runcell_bin), "/usr/local/bin/runcell")],
                     timeout=LANE_TIMEOUT)


def test_lane_boots_and_finishes(lane_run):
    assert lane_run.done and not lane_run.problems, lane_run.failure_report()
    assert lane_run.boot_seconds is not None
    print(f"boot to /init: {lane_run.boot_seconds:.2f}s guest, "
          f"{lane_run.host_boot_seconds:.2f}s host; whole run {lane_run.wall_seconds:.1f}s")


@pytest.mark.parametrize("script", GUEST_TESTS, ids=[p.stem for p in GUEST_TESTS])
def test_guest(lane_run, script):
    result = lane_run.result(lane.lane_guest.test_name(script.stem))
    output = "\n".join(result.output)
    if result.status == "skip":
        pytest.skip(f"{script.name} skipped in the guest: {result.reason}")
    assert result.status == "ok", (
        f"{result.tap()}\n--- guest output ---\n{output}"
        + ("" if lane_run.done else "\n--- lane ---\n" + lane_run.failure_report()))


def test_lane_kills_a_hung_guest_at_the_deadline():
    run = _run_lane(shell_cmds=["echo before-hang", "echo hanging-now; sleep 1000"], timeout=20)
    assert run.timed_out and not run.done and not run.ok
    assert run.qemu_status is None
    assert run.wall_seconds < 30
    assert run.result("shell-cmd-1").status == "ok"
    hung = run.result("shell-cmd-2")
    assert hung.status == "not ok" and hung.reason == "did not finish"
    assert hung.output == ["hanging-now"]  # relayed as it came, not when the test ended
    assert any("shell-cmd-2" in p for p in run.problems), run.problems


def test_lane_fails_when_the_guest_stops_without_done():
    run = _run_lane(shell_cmds=["echo going-down; poweroff -f; sleep 30"], timeout=60)
    assert not run.timed_out and not run.done and not run.ok
    assert any("before reporting done" in p for p in run.problems), run.problems


def test_a_frozen_emulator_is_killed_and_leaves_what_its_threads_were_in(tmp_path, monkeypatch):
    """The freeze watchdog on a stand-in for a frozen QEMU (no QEMU needed): a process that
    prints a line and then uses no CPU is killed after FROZEN_SECONDS, and the report names
    its thread, its state and wait channel, and the console's last line."""
    monkeypatch.setattr(lane.lane_qemu, "FROZEN_SECONDS", 2)
    monkeypatch.setattr(lane.lane_qemu, "FREEZE_DIR", tmp_path / "freezes")
    console = lane.lane_qemu.run(["sh", "-c", "echo still-here; exec sleep 120"], timeout=100)
    assert console.frozen and console.timed_out and console.returncode is None
    assert console.wall_seconds < 90, console.wall_seconds
    report = Path(console.freeze_report)
    assert report.parent == tmp_path / "freezes", console.freeze_report
    text = report.read_text()
    assert re.search(r"^thread \d+ sleep: state S, wchan \S+, syscall ", text, re.M), text
    assert text.rstrip().endswith("last console lines:\nstill-here"), text


def test_results_need_this_runs_prefix():
    prefix = "LANE-0123abcd"
    console = [
        "[    1.0] LANE-0123abcd:boot 1.50",
        f"{prefix}:plan 2",
        f"{prefix}:start 1 a",
        f"{prefix}:| LANE-ffffffff:ok 2 b",  # test output that looks like a result
        "LANE-ffffffff:ok 2 b",  # another run's prefix
        "ok 2 b",
        f"{prefix}:time 1 0.50",
        f"[   2.0] kernel noise {prefix}:not ok 1 a # exit status 3",
        f"{prefix}:done",
    ]
    run = lane.parse(prefix, console, ["a", "b"])
    assert run.boot_seconds == 1.5
    a, b = run.results
    assert (a.status, a.reason, a.seconds) == ("not ok", "exit status 3", 0.5)
    assert a.output == ["LANE-ffffffff:ok 2 b"]
    assert b.status == "not run"
    assert run.done and not run.ok
    assert any("without running ['b']" in p for p in run.problems)
