"""OCI hooks: when each runs, where, the state on its stdin, failures and timeouts."""
import json
import os
import secrets
import time

import pytest

from helpers import processes_mentioning

RUNTIME_HOOKS = ["prestart", "createRuntime", "poststart", "poststop"]
CONTAINER_HOOKS = ["createContainer", "startContainer"]  # run in the container's mount ns


def hook(script, timeout=None, env=None):
    h = {"path": "/bin/sh", "args": ["sh", "-c", script]}
    if timeout is not None:
        h["timeout"] = timeout
    if env is not None:
        h["env"] = env
    return h


def recording_hooks(bundle, host_dir):
    """Every hook saves its stdin (the state) as <hook>.json; runtime hooks on the host,
    container hooks under /hooks, a bind mount of the same directory."""
    bundle.bind(host_dir, "/hooks")
    hooks = {}
    for name in RUNTIME_HOOKS:
        hooks[name] = [hook(f"cat > {host_dir}/{name}.json; "
                            f"readlink /proc/self/ns/mnt > {host_dir}/{name}.mntns")]
    for name in CONTAINER_HOOKS:
        # runc 1.1 runs createContainer before pivot_root, in the rootfs directory; the
        # spec says after it. The bind mount is /hooks or, before the pivot, ./hooks.
        hooks[name] = [hook(f"if [ -d /hooks ]; then cd /hooks; else cd hooks; fi; "
                            f"cat > {name}.json; readlink /proc/self/ns/mnt > {name}.mntns")]
    bundle.config["hooks"] = hooks


def read_state(host_dir, name):
    path = host_dir / f"{name}.json"
    assert path.exists(), f"the {name} hook did not run"
    return json.loads(path.read_text())


def test_hooks_run_at_their_stage_with_the_state(h, bundle, host_dir):
    recording_hooks(bundle, host_dir)
    bundle.args("sleep", "1")
    cid = h.create_ok(bundle)
    pid = h.state(cid)["pid"]
    ran = {p.stem for p in host_dir.glob("*.json")}
    # runc 1.1 also runs poststart here, at create (fixed in runc 1.2); see
    # test_poststart_runs_after_start.
    assert ran - {"poststart"} == {"prestart", "createRuntime", "createContainer"}, ran

    h.start_ok(cid)
    after_start = {"prestart", "createRuntime", "createContainer", "startContainer",
                   "poststart"}
    deadline = time.time() + 5
    while time.time() < deadline and {p.stem for p in host_dir.glob("*.json")} != after_start:
        time.sleep(0.05)
    ran = {p.stem for p in host_dir.glob("*.json")}
    assert ran == after_start, ran
    h.wait_status(cid, "stopped")
    assert not (host_dir / "poststop.json").exists()
    assert h.delete(cid).rc == 0
    ran = {p.stem for p in host_dir.glob("*.json")}
    assert "poststop" in ran

    expected_status = {
        "prestart": {"created", "creating"},
        "createRuntime": {"created", "creating"},
        "createContainer": {"created", "creating"},
        "startContainer": {"created"},
        "poststart": {"created", "running", "stopped"},  # runc 1.1: created
        "poststop": {"stopped"},
    }
    for name, statuses in expected_status.items():
        st = read_state(host_dir, name)
        assert st["id"] == cid, (name, st)
        assert st["status"] in statuses, (name, st)
        assert st["bundle"] == str(bundle.path), (name, st)
        assert st.get("ociVersion"), (name, st)
        if name in RUNTIME_HOOKS and name != "poststop":
            assert st["pid"] == pid, (name, st)
        elif name in CONTAINER_HOOKS:
            assert st["pid"] in (pid, 1), (name, st)  # runc gives the pid in the container

    # Where they ran: runtime hooks in the host's mount namespace, container hooks in the
    # container's.
    host_mnt = (host_dir / "createRuntime.mntns").read_text()
    assert host_mnt.strip() == os.readlink("/proc/self/ns/mnt")
    for name in CONTAINER_HOOKS:
        assert (host_dir / f"{name}.mntns").read_text() != host_mnt, name


@pytest.mark.runcell_specific  # runc 1.1.5 runs poststart hooks during create
def test_poststart_runs_after_start(h, bundle, host_dir):
    recording_hooks(bundle, host_dir)
    bundle.args("sleep", "60")
    cid = h.create_ok(bundle)
    assert not (host_dir / "poststart.json").exists(), "poststart ran before start"
    h.start_ok(cid)
    st = read_state(host_dir, "poststart")
    assert st["status"] == "running", st


def test_hook_env_and_args(h, bundle, host_dir):
    bundle.config["hooks"] = {"createRuntime": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", f'echo "$0 $1 $RCT_HOOK_VAR" > {host_dir}/out', "first", "second"],
        "env": ["RCT_HOOK_VAR=hello", "PATH=/usr/bin:/bin"],
    }]}
    bundle.args("true")
    h.create_ok(bundle)
    assert (host_dir / "out").read_text() == "first second hello\n"


@pytest.mark.parametrize("stage", ["prestart", "createRuntime", "createContainer"])
def test_failing_hook_fails_create(h, bundle, host_dir, stage):
    if stage == "createContainer":
        bundle.bind(host_dir, "/hooks")
    bundle.config["hooks"] = {stage: [hook("echo rct-hook-broke >&2; exit 3")]}
    bundle.args("true")
    cid = h.new_id()
    res = h.create(bundle, cid)
    assert res.rc != 0
    assert "rct-hook-broke" in res.err or "exit status 3" in res.err, res.describe()
    assert "does not exist" in h("state", cid).msg


@pytest.mark.runcell_specific
def test_failing_hook_message_carries_its_output(h, bundle):
    bundle.config["hooks"] = {"createRuntime": [hook("echo rct-hook-broke >&2; exit 3")]}
    bundle.args("true")
    res = h.create(bundle)
    assert res.rc != 0
    assert "rct-hook-broke" in res.msg, res.describe()
    assert "createRuntime" in res.msg, res.describe()


def test_failing_start_hook_stops_the_container(h, bundle, host_dir):
    bundle.bind(host_dir, "/hooks")
    bundle.config["hooks"] = {"startContainer": [hook("exit 4")]}
    bundle.sh("echo ran > /hooks/ran")
    cid = h.create_ok(bundle)
    h.start(cid)  # runc reports success and the container dies; an error is also fine
    h.wait_status(cid, "stopped")
    assert not (host_dir / "ran").exists(), "the program ran although startContainer failed"


def test_failing_poststop_hook_still_deletes(h, bundle):
    bundle.config["hooks"] = {"poststop": [hook("exit 5")]}
    bundle.args("true")
    cid = h.create_ok(bundle)
    h.start_ok(cid)
    h.wait_status(cid, "stopped")
    h.delete(cid)  # a poststop failure is logged; the container is deleted all the same
    assert "does not exist" in h("state", cid).msg


def test_hook_timeout(h, bundle):
    # exec: the hook process itself must be what the timeout kills (runc waits for the
    # hook's output pipe to close, which a surviving grandchild would hold open).
    marker = f"29.{secrets.randbelow(10**6):06d}"
    bundle.config["hooks"] = {"createRuntime": [hook(f"exec sleep {marker}", timeout=1)]}
    bundle.args("true")
    t0 = time.monotonic()
    res = h.create(bundle)
    elapsed = time.monotonic() - t0
    assert res.rc != 0
    assert elapsed < 10, f"the hook timeout was not applied ({elapsed:.1f}s)"
    assert "time" in res.err.lower() or "killed" in res.err.lower(), res.describe()
    deadline = time.time() + 5
    while processes_mentioning(marker) and time.time() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(marker) == [], "the timed-out hook is still running"


def test_hooks_run_in_order(h, bundle, host_dir):
    bundle.config["hooks"] = {"createRuntime": [
        hook(f"echo one >> {host_dir}/order"),
        hook(f"echo two >> {host_dir}/order"),
        hook(f"echo three >> {host_dir}/order"),
    ]}
    bundle.args("true")
    h.create_ok(bundle)
    assert (host_dir / "order").read_text() == "one\ntwo\nthree\n"
