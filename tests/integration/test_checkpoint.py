"""checkpoint and restore (criu).

Three kinds of test:
- the real criu of this host. Where `criu check` fails (criu 3.17 cannot even initialise
  on kernel 6.18: "vdso: Unexpected rt vDSO area bounds"), checkpoint and restore must fail
  with criu's own reason and the log's path, leave a checkpointed container running and
  leave nothing behind from a restore; runc is compared on the same host. Where criu works,
  the round trip runs: a busybox loop that counts in memory and keeps a file open is
  checkpointed, restored with --detach, and goes on counting with the same file open.
- bad input (unknown id, wrong state, missing image path, existing id, unsupported flags):
  runc's messages, nothing left behind.
- runcell's side of the protocol against a stand-in for criu (a shell script given with
  --criu): the arguments criu gets (runc's: --root, --freeze-cgroup, external mounts,
  --restore-sibling, --inherit-fd for stdio pipes, the cgroup criu runs in), what runcell
  does with criu's outcome (a dump that ends the container deletes it; a restore gives a
  running container with the restored pid, --detach and the pid file, a foreground restore
  exits with the init's status, a failed one kills what criu left in the cgroup), and the
  prestart hook run from criu's action script. The stand-in checks none of criu's work.
"""
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers import Runtime, controller_dir, proc_stat, process_alive, run, set_mode

# ---------------------------------------------------------------------------------------
# The host's criu

_CRIU_CHECK = None


def criu_check():
    """(works, reason): whether `criu check` passes here, and criu's own reason if not."""
    global _CRIU_CHECK
    if _CRIU_CHECK is None:
        path = shutil.which("criu")
        if path is None:
            _CRIU_CHECK = (False, "criu is not installed")
        else:
            res = subprocess.run([path, "check"], capture_output=True, text=True, timeout=60)
            reasons = criu_error_lines(res.stdout + res.stderr)
            _CRIU_CHECK = (res.returncode == 0,
                           "; ".join(reasons) or f"criu check exited {res.returncode}")
    return _CRIU_CHECK


def criu_error_lines(text):
    """The messages of criu's "Error (file:line): message" lines."""
    return [m.group(1) for m in re.finditer(r"Error \([^)]*\): (.*)", text)]


def needs_criu_failing():
    works, _ = criu_check()
    if works:
        pytest.skip("criu works on this host: its failure path is covered by the stand-in "
                    "tests and the round trip runs instead")
    if shutil.which("criu") is None:
        pytest.skip("criu is not installed")


def needs_criu_working():
    works, reason = criu_check()
    if not works:
        pytest.skip(f"criu cannot checkpoint on this host; `criu check` says: {reason}")


# ---------------------------------------------------------------------------------------
# Containers

COUNTER = ("exec 3>>/data/held; i=0; "
           "while true; do i=$((i+1)); echo $i > /data/count.tmp; "
           "mv /data/count.tmp /data/count; sleep 0.1; done")


def wait_for(cond, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def read_count(host_dir):
    try:
        text = (host_dir / "count").read_text().strip()
    except FileNotFoundError:
        return 0
    return int(text) if text.isdigit() else 0


def counter_container(h, bundle, host_dir):
    """A detached container counting in a shell variable, fd 3 open on /data/held."""
    bundle.bind(host_dir, "/data")
    bundle.sh(COUNTER)
    cid = h.run_detached(bundle)
    wait_for(lambda: read_count(host_dir) >= 2, "the container to count")
    return cid


def assert_still_counting(h, cid, pid, host_dir):
    """Running, same init, and not frozen: the count goes on."""
    st = h.state(cid)
    assert st["status"] == "running" and st["pid"] == pid, st
    before = read_count(host_dir)
    wait_for(lambda: read_count(host_dir) > before, "the container to keep counting")


# ---------------------------------------------------------------------------------------
# The host's criu: the failure path

def test_failed_checkpoint_reports_criu_reason_and_keeps_running(h, bundle, host_dir,
                                                                 workdir):
    needs_criu_failing()
    cid = counter_container(h, bundle, host_dir)
    pid = h.state(cid)["pid"]
    images, work = workdir / "images", workdir / "work"
    res = h("checkpoint", "--image-path", images, "--work-path", work, cid)
    assert res.rc != 0, res.describe()
    log = work / "dump.log"
    reasons = criu_error_lines(log.read_text())
    assert reasons, f"criu wrote no Error line to {log}"
    assert res.msg == f"criu failed: {'; '.join(reasons)} (log: {log})", res.describe()
    # and it is the reason `criu check` gives on this host
    _, check_reason = criu_check()
    assert check_reason.split("; ")[0] in res.msg, (check_reason, res.msg)
    assert_still_counting(h, cid, pid, host_dir)
    # the images directory holds what runc writes before criu runs
    assert json.loads((images / "descriptors.json").read_text())[0] == "/dev/null"


def test_real_criu_takes_every_dump_option(h, bundle, host_dir, workdir):
    """criu rejects an option it does not know (or a malformed one) with its usage text
    before it opens its log; failing on kernel detection instead means it took them all."""
    needs_criu_failing()
    cid = counter_container(h, bundle, host_dir)
    pid = h.state(cid)["pid"]
    images, work = workdir / "images", workdir / "work"
    (images / "parent").mkdir(parents=True)
    res = h("checkpoint", "--image-path", images, "--work-path", work, "--parent-path",
            "parent", "--leave-running", "--tcp-established", "--ext-unix-sk", "--shell-job",
            "--file-locks", "--auto-dedup", "--manage-cgroups-mode", "full", "--page-server",
            "127.0.0.1:9", "--empty-ns", "network", cid)
    assert res.rc != 0, res.describe()
    log = work / "dump.log"
    assert log.exists() and "Version:" in log.read_text().splitlines()[0], res.describe()
    reasons = criu_error_lines(log.read_text())
    assert reasons and res.msg == f"criu failed: {'; '.join(reasons)} (log: {log})", \
        res.describe()
    assert_still_counting(h, cid, pid, host_dir)


def test_checkpoint_log_defaults_to_the_image_path(h, bundle, host_dir, workdir):
    needs_criu_failing()
    cid = counter_container(h, bundle, host_dir)
    images = workdir / "images"
    res = h("checkpoint", "--image-path", images, cid)
    assert res.rc != 0, res.describe()
    assert res.msg.startswith("criu failed: ") and res.msg.endswith(
        f"(log: {images}/dump.log)"), res.describe()
    assert h.status(cid) == "running"


def test_checkpoint_default_image_path_is_cwd_checkpoint(h, bundle, host_dir, workdir):
    needs_criu_failing()
    cid = counter_container(h, bundle, host_dir)
    res = h("checkpoint", cid, cwd=workdir)
    assert res.rc != 0, res.describe()
    assert res.msg.endswith(f"(log: {workdir}/checkpoint/dump.log)"), res.describe()


def test_pre_dump_feature_check_carries_criu_reason(h, bundle, host_dir, workdir):
    needs_criu_failing()
    cid = counter_container(h, bundle, host_dir)
    pid = h.state(cid)["pid"]
    res = h("checkpoint", "--pre-dump", "--image-path", workdir / "images", cid)
    assert res.rc != 0, res.describe()
    _, check_reason = criu_check()
    assert res.msg == (f"CRIU feature check failed: mem_dirty_track (needed by --pre-dump): "
                       f"{check_reason}"), res.describe()
    assert_still_counting(h, cid, pid, host_dir)


def write_descriptors(images, fds=("/dev/null", "/dev/null", "/dev/null")):
    images.mkdir(parents=True, exist_ok=True)
    (images / "descriptors.json").write_text(json.dumps(list(fds)))


def test_failed_restore_reports_criu_reason_and_leaves_nothing(h, workdir, host_dir):
    needs_criu_failing()
    bundle = h.bundle()
    bundle.bind(host_dir, "/data")
    bundle.sh("sleep 100")
    bundle.write()
    images, work = workdir / "images", workdir / "work"
    # a stdio pipe to hand over: criu must take the --inherit-fd that says so
    write_descriptors(images, ["/dev/null", "pipe:[12345]", "/dev/null"])
    cid = h.new_id()
    # every option is one criu accepts: it fails on kernel detection, not on its usage
    res = h("restore", "--image-path", images, "--work-path", work, "--bundle", bundle.path,
            "--tcp-established", "--ext-unix-sk", "--shell-job", "--file-locks",
            "--auto-dedup", "--manage-cgroups-mode", "strict", "--empty-ns", "network",
            "--lsm-mount-context", "system_u:object_r:container_file_t:s0",
            "--detach", cid)
    assert res.rc != 0, res.describe()
    log = work / "restore.log"
    assert log.exists() and "Version:" in log.read_text().splitlines()[0], res.describe()
    reasons = criu_error_lines(log.read_text())
    assert reasons and res.msg == f"criu failed: {'; '.join(reasons)} (log: {log})", \
        res.describe()
    assert not (h.rt.root / cid).exists()
    assert h("state", cid).msg == "container does not exist"
    # the harness checks for a cgroup, process or mount left behind


def test_runc_fails_the_same_way_and_both_keep_running(h, runc_h, workdir):
    """Differential: the same checkpoint with Debian's runc. Where criu fails both fail and
    both containers keep running; where it works both end their container."""
    results = {}
    for name, harness in (("runcell", h), ("runc", runc_h)):
        host = workdir / f"host-{name}"
        host.mkdir()
        bundle = harness.bundle()
        cid = counter_container(harness, bundle, host)
        pid = harness.state(cid)["pid"]
        res = harness("checkpoint", "--image-path", workdir / f"images-{name}", "--work-path",
                      workdir / f"work-{name}", cid)
        state = harness("state", cid)
        running = state.rc == 0 and json.loads(state.out)["status"] == "running"
        results[name] = (res.rc == 0, running, pid, host, harness, cid)
    (ok_a, run_a, *_), (ok_b, run_b, *_) = results["runcell"], results["runc"]
    assert ok_a == ok_b, f"runcell ok={ok_a}, runc ok={ok_b}"
    assert run_a == run_b == (not ok_a), (run_a, run_b)
    if not ok_a:
        for _, _, pid, host, harness, cid in results.values():
            assert_still_counting(harness, cid, pid, host)


# ---------------------------------------------------------------------------------------
# Bad input

def test_checkpoint_unknown_container(h, workdir):
    res = h("checkpoint", "--image-path", workdir / "images", "rct-does-not-exist")
    assert res.rc != 0 and res.msg == "container does not exist", res.describe()
    assert not (workdir / "images").exists()


def test_checkpoint_created_and_stopped_container(h, bundle, workdir):
    bundle.sh("exit 0")
    cid = h.create_ok(bundle)
    res = h("checkpoint", "--image-path", workdir / "images", cid)
    assert res.rc != 0 and res.msg == "Container cannot be checkpointed in created state", \
        res.describe()
    assert h.status(cid) == "created"
    h.start_ok(cid)
    h.wait_status(cid, "stopped")
    res = h("checkpoint", "--image-path", workdir / "images", cid)
    assert res.rc != 0 and res.msg == "Container cannot be checkpointed in stopped state", \
        res.describe()
    assert not (workdir / "images").exists()


def test_checkpoint_bad_flags(h, bundle, host_dir, workdir):
    cid = counter_container(h, bundle, host_dir)
    pid = h.state(cid)["pid"]
    images = workdir / "images"
    cases = [
        (["--lazy-pages"], "checkpoint: --lazy-pages is not supported: it needs criu's "
         "lazy-pages daemon and page server, which runcell does not drive"),
        (["--status-fd", "5"], "checkpoint: --status-fd is only used with --lazy-pages, "
         "which runcell does not support"),
        (["--empty-ns", "pid"], 'namespace "pid" is not supported'),
        (["--manage-cgroups-mode", "bogus"], "Invalid manage cgroups mode"),
        (["--page-server", "nohostport"], "Use --page-server ADDRESS:PORT to specify page server"),
        (["--page-server", "host:port"], "Invalid port number"),
        (["--parent-path", "/abs"], "--parent-path must be relative"),
        (["--parent-path", "nope"],
         f"invalid --parent-path: stat {images}/nope: No such file or directory"),
    ]
    for flags, msg in cases:
        res = h("checkpoint", "--image-path", images, *flags, cid)
        assert res.rc != 0 and res.msg == msg, (flags, res.describe())
    assert_still_counting(h, cid, pid, host_dir)


def test_criu_missing(h, bundle, host_dir, workdir):
    cid = counter_container(h, bundle, host_dir)
    pid = h.state(cid)["pid"]
    missing = workdir / "no-criu-here"
    res = h("--criu", missing, "checkpoint", "--image-path", workdir / "images", cid)
    assert res.rc != 0, res.describe()
    assert res.msg == (f"CRIU version check failed: cannot run {missing}: "
                       "No such file or directory"), res.describe()
    assert_still_counting(h, cid, pid, host_dir)

    write_descriptors(workdir / "images")
    rid = h.new_id()
    res = h("--criu", missing, "restore", "--image-path", workdir / "images", "--bundle",
            bundle.path, "-d", rid)
    assert res.msg == (f"CRIU version check failed: cannot run {missing}: "
                       "No such file or directory"), res.describe()
    assert not (h.rt.root / rid).exists()


def test_restore_bad_image_path(h, bundle, workdir):
    bundle.write()
    cid = h.new_id()
    missing = workdir / "missing"
    res = h("restore", "--image-path", missing, "--bundle", bundle.path, "-d", cid)
    assert res.rc != 0 and res.msg == f"restore: image path {missing}: No such file or directory", \
        res.describe()
    assert not missing.exists(), "restore must not create the image path it restores from"
    empty = workdir / "empty"
    empty.mkdir()
    res = h("restore", "--image-path", empty, "--bundle", bundle.path, "-d", cid)
    assert res.rc != 0 and res.msg == (
        f"restore: {empty} is not a checkpoint: open {empty}/descriptors.json: "
        "No such file or directory"), res.describe()
    assert not (h.rt.root / cid).exists()


def test_restore_onto_an_existing_id(h, bundle, host_dir, workdir):
    cid = counter_container(h, bundle, host_dir)
    pid = h.state(cid)["pid"]
    write_descriptors(workdir / "images")
    res = h("restore", "--image-path", workdir / "images", "--bundle", bundle.path, "-d", cid)
    assert res.rc != 0 and res.msg == f"container with id exists: {cid}", res.describe()
    assert_still_counting(h, cid, pid, host_dir)


def test_restore_bad_flags(h, bundle, workdir):
    bundle.write()
    write_descriptors(workdir / "images")
    cid = h.new_id()
    cases = [
        (["--lazy-pages"], "restore: --lazy-pages is not supported: it needs criu's "
         "lazy-pages daemon, which runcell does not drive"),
        (["--console-socket", workdir / "sock"], "restore: --console-socket: containers with a "
         "terminal cannot be restored by runcell (the pty master is handed over only through "
         "criu's RPC mode)"),
        (["--empty-ns", "ipc"], 'namespace "ipc" is not supported'),
        (["--manage-cgroups-mode", "bogus"], "Invalid manage cgroups mode"),
    ]
    for flags, msg in cases:
        res = h("restore", "--image-path", workdir / "images", "--bundle", bundle.path, *flags,
                "-d", cid)
        assert res.rc != 0 and res.msg == msg, (flags, res.describe())
        assert not (h.rt.root / cid).exists()


def test_restore_terminal_container_is_refused(h, bundle, workdir):
    bundle.process["terminal"] = True
    bundle.write()
    write_descriptors(workdir / "images")
    cid = h.new_id()
    res = h("restore", "--image-path", workdir / "images", "--bundle", bundle.path, "-d", cid)
    assert res.rc != 0 and res.msg.startswith(
        "restore: the container has a terminal (process.terminal)"), res.describe()
    assert not (h.rt.root / cid).exists()


def test_help_lists_runc_flags(h):
    out = h("checkpoint", "--help").out
    for flag in ("--image-path", "--work-path", "--parent-path", "--leave-running",
                 "--tcp-established", "--ext-unix-sk", "--shell-job", "--lazy-pages",
                 "--status-fd", "--page-server", "--file-locks", "--pre-dump",
                 "--manage-cgroups-mode", "--empty-ns", "--auto-dedup"):
        assert flag in out, flag
    out = h("restore", "--help").out
    for flag in ("--console-socket", "--image-path", "--work-path", "--tcp-established",
                 "--ext-unix-sk", "--shell-job", "--file-locks", "--manage-cgroups-mode",
                 "--bundle", "--detach", "--pid-file", "--no-subreaper", "--no-pivot",
                 "--empty-ns", "--auto-dedup", "--lazy-pages", "--lsm-profile"):
        assert flag in out, flag


# ---------------------------------------------------------------------------------------
# runcell's side, against a stand-in for criu

STAND_IN = r"""#!/bin/sh
# A stand-in for criu: records its arguments and cgroup, then does what
# $STANDIN_MODE says. It checkpoints and restores nothing.
dir="$STANDIN_DIR"
cmd="$1"
case "$cmd" in
  -V) echo "Version: 3.17.1"; exit 0 ;;
  check) exit 0 ;;
esac
printf '%s\n' "$@" > "$dir/argv.$cmd"
cat /proc/self/cgroup > "$dir/cgroup.$cmd"
for fd in 0 1 2; do readlink /proc/self/fd/$fd; done > "$dir/stdio.$cmd"
prev=
for a in "$@"; do
  case "$prev" in
    --work-dir) work="$a" ;;
    --log-file) log="$a" ;;
    --pidfile) pidfile="$a" ;;
    --tree) tree="$a" ;;
    --action-script) script="$a" ;;
  esac
  prev="$a"
done
case "$STANDIN_MODE" in
  fail)
    echo "(00.000001) Error (criu/stand-in.c:1): stand-in failure: disk on fire" > "$work/$log"
    exit 1 ;;
  fail-after-spawn)
    sleep 1000 &
    echo "(00.000001) Error (criu/stand-in.c:2): left a task behind" > "$work/$log"
    exit 1 ;;
esac
case "$cmd" in
  dump)
    case " $* " in *" --leave-running "*) ;; *) kill -9 "$tree" ;; esac
    exit 0 ;;
  restore)
    if [ -n "$script" ]; then
      # who could have swapped the script criu is about to run as root
      stat -c '%u %a %n' "$script" "${script%/*}" > "$dir/script.stat"
      CRTOOLS_SCRIPT_ACTION=setup-namespaces CRTOOLS_INIT_PID=4242 "$script" || exit 1
    fi
    sh -c "$STANDIN_RESTORED" &
    echo $! > "$pidfile"
    exit 0 ;;
esac
exit 1
"""


@pytest.fixture
def stand_in(workdir):
    d = workdir / "stand-in"
    d.mkdir()
    path = d / "criu"
    path.write_text(STAND_IN)
    path.chmod(0o755)

    class StandIn:
        dir = d
        bin = path

        def env(self, mode="ok", restored="exec sleep 1000"):
            return dict(os.environ, STANDIN_DIR=str(d), STANDIN_MODE=mode,
                        STANDIN_RESTORED=restored)

        def argv(self, cmd):
            return (d / f"argv.{cmd}").read_text().splitlines()

        def cgroup(self, cmd):
            return (d / f"cgroup.{cmd}").read_text()

        def stdio(self, cmd):
            return (d / f"stdio.{cmd}").read_text().splitlines()

    return StandIn()


def option(argv, name):
    """The values given to option name, in order."""
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == name]


def test_stand_in_dump_gets_runc_arguments_and_the_container_is_deleted(
        h, bundle, host_dir, workdir, stand_in):
    cid = counter_container(h, bundle, host_dir)
    st = h.state(cid)
    stdio = [os.readlink(f"/proc/{st['pid']}/fd/{fd}") for fd in range(3)]
    images = workdir / "images"
    res = h("--criu", stand_in.bin, "checkpoint", "--image-path", images, "--tcp-established",
            "--file-locks", cid, env=stand_in.env())
    assert res.rc == 0, res.describe()
    argv = stand_in.argv("dump")
    assert option(argv, "--tree") == [str(st["pid"])]
    assert option(argv, "--root") == [st["rootfs"]]
    assert option(argv, "--images-dir") == [str(images)]
    assert option(argv, "--work-dir") == [str(images)]
    assert option(argv, "--log-file") == ["dump.log"]
    assert option(argv, "--empty-ns") == ["net"]
    assert "--manage-cgroups=soft" in argv and "-v4" in argv
    assert "--tcp-established" in argv and "--file-locks" in argv
    assert "--leave-running" not in argv
    externals = option(argv, "--external")
    assert "mnt[/data]:/data" in externals
    # masked files are bound over with /dev/null (directories get a tmpfs criu dumps)
    assert "mnt[/proc/keys]:/dev/null" in externals or not Path("/proc/keys").exists()
    assert not [e for e in externals if e.startswith("mnt[/proc/acpi]")]
    assert "mnt[/dev/null]:/dev/null" in externals
    freezer = option(argv, "--freeze-cgroup")
    mp, _ = controller_dir("freezer")
    if mp is None:  # cgroup v2: the container's cgroup itself
        mp, _ = controller_dir("pids")
    assert freezer == [f"{mp}/runcell/{cid}"], freezer
    assert json.loads((images / "descriptors.json").read_text()) == stdio
    # criu ended the container's processes; runcell then deletes it, as runc does
    assert h("state", cid).msg == "container does not exist"
    assert not process_alive(st["pid"])


def test_stand_in_dump_leave_running(h, bundle, host_dir, workdir, stand_in):
    cid = counter_container(h, bundle, host_dir)
    pid = h.state(cid)["pid"]
    res = h("--criu", stand_in.bin, "checkpoint", "--leave-running", "--image-path",
            workdir / "images", cid, env=stand_in.env())
    assert res.rc == 0, res.describe()
    assert "--leave-running" in stand_in.argv("dump")
    assert_still_counting(h, cid, pid, host_dir)


def test_stand_in_dump_failure_keeps_the_container(h, bundle, host_dir, workdir, stand_in):
    cid = counter_container(h, bundle, host_dir)
    pid = h.state(cid)["pid"]
    work = workdir / "work"
    res = h("--criu", stand_in.bin, "checkpoint", "--image-path", workdir / "images",
            "--work-path", work, cid, env=stand_in.env("fail"))
    assert res.rc != 0, res.describe()
    assert res.msg == f"criu failed: stand-in failure: disk on fire (log: {work}/dump.log)", \
        res.describe()
    assert_still_counting(h, cid, pid, host_dir)


def test_a_gated_cell_cannot_be_checkpointed(h, bundle, workdir, stand_in):
    """The gate's filter notifies the cell kernel, which criu can neither dump nor give
    back: checkpoint refuses before calling criu, and the cell keeps running."""
    bundle.config["annotations"].pop("run.runcell.gate")  # a cell, gate on (the default)
    bundle.args("sleep", "60")
    cid = h.run_detached(bundle)
    res = h("--criu", stand_in.bin, "checkpoint", "--image-path", workdir / "images", cid,
            env=stand_in.env())
    assert res.rc != 0
    assert res.msg == (f"checkpoint: container {cid} is a cell with its syscall gate on, which "
                       "cannot be checkpointed yet; run it with the annotation "
                       "run.runcell.gate=off (or the runcell-native handler) to checkpoint it"), \
        res.describe()
    assert not (workdir / "stand-in" / "argv.dump").exists(), "criu was called"
    assert h.status(cid) == "running"


def own_cgroup_lines(text):
    return [line.split(":", 2)[2] for line in text.splitlines() if line.split(":", 2)[1]]


def test_stand_in_restore_detached(h, workdir, stand_in, host_dir):
    bundle = h.bundle()
    bundle.bind(host_dir, "/data")
    bundle.sh("sleep 100")
    bundle.write()
    images = workdir / "images"
    write_descriptors(images, ["/dev/null", "pipe:[12345]", "/dev/null"])
    cid = h.new_id()
    pid_file = workdir / "restored.pid"
    res = h("--criu", stand_in.bin, "restore", "--image-path", images, "--bundle", bundle.path,
            "--detach", "--pid-file", pid_file, cid, env=stand_in.env())
    assert res.rc == 0, res.describe()
    pid = int(pid_file.read_text())
    h.note_pid(pid)
    st = h.state(cid)
    assert st["status"] == "running" and st["pid"] == pid, st
    assert st["bundle"] == str(bundle.path)
    # what criu gives back has no gate (a gated cell cannot be checkpointed), whatever the
    # bundle's annotations say, and the state says so
    assert st["annotations"]["run.runcell.mode"] == "cell"
    assert st["annotations"]["run.runcell.gate"] == "off"

    argv = stand_in.argv("restore")
    assert "--restore-detached" in argv and "--restore-sibling" in argv
    assert option(argv, "--cgroup-root") == [f"/runcell/{cid}"]
    assert option(argv, "--inherit-fd") == ["fd[1]:pipe:[12345]"]
    assert option(argv, "--log-file") == ["restore.log"]
    assert f"mnt[/data]:{host_dir}" in option(argv, "--external")
    (root,) = option(argv, "--root")
    assert root == str(h.rt.root / cid / "criu-root")
    # the rootfs was bound there only in runcell's own mount namespace, and is gone
    assert not [line for line in open("/proc/self/mountinfo") if "criu-root" in line]
    assert not Path(root).exists()
    # criu ran in the container's cgroup (so the tree it restores lands there)
    assert all(p == f"/runcell/{cid}" for p in own_cgroup_lines(stand_in.cgroup("restore")))
    assert f"/runcell/{cid}" in Path(f"/proc/{pid}/cgroup").read_text()

    # the restored container is an ordinary one for the other commands
    assert h("kill", cid, "KILL").rc == 0
    wait_for(lambda: not process_alive(pid), "the restored init to die")
    h.wait_status(cid, "stopped")
    assert h("delete", cid).rc == 0


def test_stand_in_restore_foreground_exits_with_the_init_status(h, workdir, stand_in):
    bundle = h.bundle()
    bundle.write()
    images = workdir / "images"
    write_descriptors(images)
    cid = h.new_id()
    res = h("--criu", stand_in.bin, "restore", "--image-path", images, "--bundle", bundle.path,
            cid, env=stand_in.env(restored="sleep 0.3; exit 7"))
    assert res.rc == 7, res.describe()
    # stdio of criu are runcell's own (the restored tree inherits them)
    assert stand_in.stdio("restore")[0] == "/dev/null"
    assert h("state", cid).msg == "container does not exist"


def test_stand_in_restore_failure_cleans_the_cgroup(h, workdir, stand_in):
    bundle = h.bundle()
    bundle.write()
    images, work = workdir / "images", workdir / "work"
    write_descriptors(images)
    cid = h.new_id()
    res = h("--criu", stand_in.bin, "restore", "--image-path", images, "--work-path", work,
            "--bundle", bundle.path, "-d", cid, env=stand_in.env("fail-after-spawn"))
    assert res.rc != 0, res.describe()
    assert res.msg == f"criu failed: left a task behind (log: {work}/restore.log)", \
        res.describe()
    assert not (h.rt.root / cid).exists()
    # the harness fails the test if the task criu left in the cgroup survived


def test_stand_in_restore_runs_prestart_hooks_from_the_action_script(h, workdir, stand_in,
                                                                      host_dir):
    bundle = h.bundle()
    bundle.config["hooks"] = {"prestart": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {host_dir}/prestart.json"]}]}
    bundle.write()
    images = workdir / "images"
    write_descriptors(images)
    cid = h.new_id()
    res = h("--criu", stand_in.bin, "restore", "--image-path", images, "--bundle", bundle.path,
            "-d", cid, env=stand_in.env())
    assert res.rc == 0, res.describe()
    h.note_pid(h.state(cid)["pid"])
    assert len(option(stand_in.argv("restore"), "--action-script")) == 1
    state = json.loads((host_dir / "prestart.json").read_text())
    assert state["id"] == cid and state["pid"] == 4242 and state["status"] == "creating", state
    # the script is removed once criu is done
    assert not (images / "runcell-criu-hook.sh").exists()


@pytest.mark.runcell_specific
def test_stand_in_restore_keeps_the_action_script_where_only_root_can_write(
        h, workdir, stand_in, host_dir):
    """criu runs the action script as root by path once runcell has written it: in a work
    path another user can write (here nobody's), that user could swap it in between. It is
    written in the container's state directory instead."""
    bundle = h.bundle()
    bundle.config["hooks"] = {"prestart": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {host_dir}/prestart.json"]}]}
    bundle.write()
    images, work = workdir / "images", workdir / "work"
    write_descriptors(images)
    work.mkdir()
    os.chown(work, 65534, 65534)
    cid = h.new_id()
    res = h("--criu", stand_in.bin, "restore", "--image-path", images, "--work-path", work,
            "--bundle", bundle.path, "-d", cid, env=stand_in.env())
    assert res.rc == 0, res.describe()
    h.note_pid(h.state(cid)["pid"])
    assert (host_dir / "prestart.json").exists(), "the hook did not run"
    (script,) = option(stand_in.argv("restore"), "--action-script")
    state_dir = (h.rt.root / cid).resolve()
    assert Path(script) == state_dir / "runcell-criu-hook.sh", script
    (script_uid, script_mode, _), (dir_uid, dir_mode, _) = (
        line.split(" ", 2) for line in (stand_in.dir / "script.stat").read_text().splitlines())
    assert (script_uid, script_mode) == ("0", "700")
    assert (dir_uid, dir_mode) == ("0", "700")
    # and no directory above it lets anyone but root replace what lies in it
    for d in state_dir.parents:
        st = d.stat()
        assert st.st_uid == 0 and (not st.st_mode & 0o022 or st.st_mode & 0o1000), d
    assert not (state_dir / "runcell-criu-hook.sh").exists()
    assert os.listdir(work) == [], "runcell wrote into the work path"


# ---------------------------------------------------------------------------------------
# restore gives back a native container: it refuses what would be anything else

RESTORE_TAIL = ("runcell restores only native containers (gate off), because criu restores "
                "the checkpointed process's own seccomp state, not the gate; restore it with "
                "the annotation run.runcell.gate=off (or the runcell-native handler)")


def restore_as(h, runcell_bin, handler, bundle, images, stand_in, cid):
    """`restore -d` by runcell invoked as handler's name (a symlink, as `cmake --install`
    makes them; "runcell" is the plain binary)."""
    link = Path(runcell_bin)
    if handler != "runcell":
        link = h.workdir / handler
        if not link.exists():
            os.symlink(runcell_bin, link)
    return run(Runtime(link, h.rt.root), "--criu", stand_in.bin, "restore", "--image-path",
               images, "--bundle", bundle.path, "-d", cid, env=stand_in.env())


def assert_restore_left_nothing(h, cid, stand_in):
    assert not (stand_in.dir / "argv.restore").exists(), "criu was called"
    assert not (h.rt.root / cid).exists()
    assert h("state", cid).msg == "container does not exist"
    # the harness checks for a cgroup, process or mount left behind


@pytest.mark.runcell_specific
@pytest.mark.parametrize("handler,annotations,message", [
    ("runcell", {}, "a cell with its gate on (chosen by default)"),
    ("runcell", {"run.runcell.gate": "on"},
     "a cell with its gate on (chosen by annotation run.runcell.gate)"),
    ("runcell-cell", {}, "a cell with its gate on (chosen by handler runcell-cell)"),
    ("runcell-native", {"run.runcell.gate": "on"},
     "a cell with its gate on (chosen by annotation run.runcell.gate)"),
])
def test_restore_refuses_what_would_be_a_gated_cell(h, workdir, stand_in, runcell_bin,
                                                    handler, annotations, message):
    """criu gives the processes back with the seccomp state the image recorded, never the
    gate (an image may come from a native container, or be crafted): a restore that the
    handler and annotations make a gated cell would be a cell without its gate, so it is
    refused before anything exists."""
    bundle = set_mode(h.bundle(), "cell")
    bundle.config["annotations"].update(annotations)
    bundle.write()
    images = workdir / "images"
    write_descriptors(images)
    cid = h.new_id()
    res = restore_as(h, runcell_bin, handler, bundle, images, stand_in, cid)
    assert res.rc != 0, res.describe()
    assert res.msg == f"restore: container {cid} would be {message}: {RESTORE_TAIL}", \
        res.describe()
    assert_restore_left_nothing(h, cid, stand_in)


@pytest.mark.runcell_specific
def test_restore_refuses_what_would_be_a_microvm(h, workdir, stand_in, runcell_bin):
    bundle = h.bundle()
    bundle.config["annotations"]["run.runcell.mode"] = "microvm"
    bundle.write()
    images = workdir / "images"
    write_descriptors(images)
    cid = h.new_id()
    res = restore_as(h, runcell_bin, "runcell", bundle, images, stand_in, cid)
    assert res.rc != 0, res.describe()
    assert res.msg == (f"restore: container {cid} would be a microVM (chosen by annotation "
                       "run.runcell.mode): runcell restores only native containers (a cell "
                       "with the gate off), because criu restores the checkpointed processes "
                       "on the host kernel, not in a guest"), res.describe()
    assert_restore_left_nothing(h, cid, stand_in)


@pytest.mark.runcell_specific
def test_restore_through_runcell_cell_refuses_a_gate_off_annotation(h, workdir, stand_in,
                                                                     runcell_bin):
    """runcell-cell is a floor for restore as for create: the annotation that switches the
    gate off is refused (the shipped `runcell` CRI handler runs runcell-cell)."""
    bundle = set_mode(h.bundle(), "native")
    bundle.write()
    images = workdir / "images"
    write_descriptors(images)
    cid = h.new_id()
    res = restore_as(h, runcell_bin, "runcell-cell", bundle, images, stand_in, cid)
    assert res.rc != 0, res.describe()
    assert res.msg == (
        "config.json: annotations: annotation run.runcell.gate asks for a cell with the gate "
        "off, less isolation than the runcell-cell handler gives (a cell with the gate on): it "
        "lets an annotation ask only for more (the runcell-native handler is the one for cells "
        "with the gate off)"), res.describe()
    assert_restore_left_nothing(h, cid, stand_in)


@pytest.mark.runcell_specific
@pytest.mark.parametrize("handler,annotations", [
    ("runcell", {"run.runcell.gate": "off"}),
    ("runcell-native", {}),
])
def test_restore_of_a_native_container_works(h, workdir, stand_in, runcell_bin, handler,
                                             annotations):
    bundle = set_mode(h.bundle(), "cell")
    bundle.config["annotations"].update(annotations)
    bundle.write()
    images = workdir / "images"
    write_descriptors(images)
    cid = h.new_id()
    res = restore_as(h, runcell_bin, handler, bundle, images, stand_in, cid)
    assert res.rc == 0, res.describe()
    st = h.state(cid)
    assert st["status"] == "running", st
    assert st["annotations"]["run.runcell.mode"] == "cell"
    assert st["annotations"]["run.runcell.gate"] == "off"
    assert "run.runcell.placement" not in st["annotations"]


# ---------------------------------------------------------------------------------------
# The real round trip (where criu works)

def spawn_with_pipes(argv):
    """Runs argv with stdin/stdout/stderr on fresh pipes (criu cannot dump a container
    whose stdio are host files); returns (rc, output so far, (stdin_w, out_r))."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    proc = subprocess.Popen(argv, stdin=in_r, stdout=out_w, stderr=out_w,
                            start_new_session=True)
    os.close(in_r)
    os.close(out_w)
    rc = proc.wait(timeout=60)
    text = b""
    while select.select([out_r], [], [], 0.2)[0]:
        chunk = os.read(out_r, 65536)
        if not chunk:
            break
        text += chunk
    return rc, text.decode(errors="replace"), (in_w, out_r)


def test_round_trip(h, bundle, host_dir, workdir):
    needs_criu_working()
    bundle.bind(host_dir, "/data")
    bundle.sh(COUNTER)
    bundle.write()
    cid = h.new_id()
    rc, out, first = spawn_with_pipes(h.rt.argv("run", "-d", "--bundle", bundle.path,
                                                "--pid-file", h.pid_file(cid), cid))
    assert rc == 0, out
    h.note_pid(h.pid_file(cid).read_text())
    wait_for(lambda: read_count(host_dir) >= 5, "the container to count")

    images, work = workdir / "images", workdir / "work"
    res = h("checkpoint", "--image-path", images, "--work-path", work, cid)
    assert res.rc == 0, res.describe() + "\n" + (work / "dump.log").read_text()[-4000:]
    assert h("state", cid).msg == "container does not exist"
    last = read_count(host_dir)
    time.sleep(0.5)
    assert read_count(host_dir) == last, "the container kept counting after checkpoint"

    pid_file = workdir / "restored.pid"
    rc, out, second = spawn_with_pipes(h.rt.argv(
        "restore", "--image-path", images, "--work-path", work, "--bundle", bundle.path,
        "--detach", "--pid-file", pid_file, cid))
    assert rc == 0, out + "\n" + (work / "restore.log").read_text()[-4000:]
    pid = int(pid_file.read_text())
    h.note_pid(pid)
    st = h.state(cid)
    assert st["status"] == "running" and st["pid"] == pid, st
    # the count goes on from the shell's memory: the next value follows the last one (a
    # fresh start would write 1 first)
    wait_for(lambda: read_count(host_dir) != last, "the restored container to count")
    assert last < read_count(host_dir) <= last + 5, (last, read_count(host_dir))
    # fd 3 still refers to the held file, and stdout is the restore's new pipe
    assert os.stat(f"/proc/{pid}/fd/3").st_ino == (host_dir / "held").stat().st_ino
    assert os.stat(f"/proc/{pid}/fd/1").st_ino == os.fstat(second[1]).st_ino
    assert f"/runcell/{cid}" in Path(f"/proc/{pid}/cgroup").read_text()
    res = h("exec", cid, "cat", "/data/count")
    assert res.rc == 0 and int(res.out) > last, res.describe()
    assert h("kill", cid, "KILL").rc == 0
    h.wait_status(cid, "stopped")
    assert h("delete", cid).rc == 0
    for fd in (*first, *second):
        os.close(fd)
    assert proc_stat(pid) is None or proc_stat(pid)[0] in ("Z", "X")


def test_stand_in_restore_takes_go_style_flags(h, workdir, stand_in):
    """containerd's shim passes `-no-subreaper` (Go's single-dash form)."""
    bundle = h.bundle()
    bundle.write()
    images = workdir / "images"
    write_descriptors(images)
    cid = h.new_id()
    res = h("--criu", stand_in.bin, "restore", "-image-path", images, "-bundle", bundle.path,
            "-work-path", workdir / "work", "-no-subreaper", "-no-pivot", "-d", cid,
            env=stand_in.env())
    assert res.rc == 0, res.describe()
    st = h.state(cid)
    h.note_pid(st["pid"])
    assert st["status"] == "running"
    assert option(stand_in.argv("restore"), "--work-dir") == [str(workdir / "work")]
