"""The command line itself: --log/--log-format, spec, features, --version, --help."""
import json
import os
import re
import time

import pytest

from helpers import NATIVE_ANNOTATIONS, RFC3339, default_spec, parse_rfc3339, run

COMMANDS = ["create", "start", "run", "state", "kill", "delete", "list", "spec", "features"]


def _last_line(path):
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    assert lines, f"{path} is empty"
    return lines[-1]


def _check_error_record(record, *needles):
    assert record["level"] == "error", record
    assert isinstance(record["msg"], str) and record["msg"], record
    for needle in needles:
        assert needle in record["msg"], record
    assert RFC3339.match(record["time"]), record["time"]
    when = parse_rfc3339(record["time"])
    assert abs(when.timestamp() - time.time()) < 300, record["time"]


def test_log_json_on_failed_create(h, bundle):
    log = h.workdir / "log.json"
    bundle.args("/nonexistent")
    bundle.write()
    cid = h.new_id()
    res = h("--log", log, "--log-format", "json", "create", "--bundle", bundle.path,
            "--pid-file", h.pid_file(cid), cid)
    assert res.rc != 0
    record = json.loads(_last_line(log))
    _check_error_record(record, "/nonexistent")
    assert "no such file or directory" in record["msg"].lower()
    # Every line of the log is JSON.
    for line in log.read_text().splitlines():
        if line.strip():
            json.loads(line)


def test_log_json_on_failed_kill_and_delete(h):
    log = h.workdir / "log.json"
    cid = h.new_id()
    assert h("--log", log, "--log-format", "json", "kill", cid, "9").rc != 0
    _check_error_record(json.loads(_last_line(log)), "does not exist")
    assert h("--log", log, "--log-format", "json", "delete", cid).rc != 0
    _check_error_record(json.loads(_last_line(log)), "does not exist")


def test_log_json_appends(h, bundle):
    log = h.workdir / "log.json"
    log.write_text('{"level":"info","msg":"earlier","time":"2024-01-01T00:00:00Z"}\n')
    assert h("--log", log, "--log-format", "json", "state", h.new_id()).rc != 0
    lines = log.read_text().splitlines()
    assert json.loads(lines[0])["msg"] == "earlier"
    assert json.loads(lines[-1])["level"] == "error"


def test_log_text_format(h):
    log = h.workdir / "log.txt"
    assert h("--log", log, "state", h.new_id()).rc != 0
    line = _last_line(log)
    assert "level=error" in line, line
    assert "does not exist" in line, line
    m = re.search(r'time="([^"]+)"', line)
    assert m and RFC3339.match(m.group(1)), line


def test_log_json_keeps_an_error_that_is_not_utf8(h):
    # containerd reports the msg of the last error line; a message carrying bytes that are
    # not UTF-8 (here from the id) must still be logged, as Go's encoding/json writes it.
    log = h.workdir / "log.json"
    assert h("--log", log, "--log-format", "json", "state", "bad\udcffid").rc != 0
    _check_error_record(json.loads(_last_line(log)), "invalid container")
    for line in log.read_text().splitlines():
        if line.strip():
            json.loads(line)


_LOGRUS_LINE = re.compile(r'^time="[^"]+" level=(\w+) msg=("(?:[^"\\]|\\.)*")$')


def test_log_text_quotes_the_message_like_logrus(h, bundle):
    # The message has quotes of its own (exec: "/nonexistent": ...): logrus escapes them,
    # so that a logfmt reader gets the whole message back.
    log = h.workdir / "log.txt"
    bundle.args("/nonexistent")
    bundle.write()
    cid = h.new_id()
    assert h("--log", log, "create", "--bundle", bundle.path, cid).rc != 0
    errors = []
    for line in log.read_text().splitlines():
        m = _LOGRUS_LINE.match(line)
        assert m, f"not a logrus text line: {line!r}"
        if m.group(1) == "error":
            errors.append(json.loads(m.group(2)))
    assert errors, log.read_text()
    assert '"/nonexistent"' in errors[-1], errors


def test_successful_run_with_json_log(h, bundle):
    log = h.workdir / "log.json"
    bundle.args("true")
    bundle.write()
    res = h("--log", log, "--log-format", "json", "run", "--bundle", bundle.path, h.new_id())
    assert res.rc == 0, res.describe()
    if log.exists():
        for line in log.read_text().splitlines():
            if line.strip():
                assert json.loads(line)["level"] != "error", line


def test_invalid_log_format(h):
    res = h("--log-format", "yaml", "list")
    assert res.rc != 0


def test_a_root_that_is_not_a_directory_is_an_error(runcell_bin, workdir):
    """--root naming a file is a misconfiguration runc reports ("mkdir ROOT: not a
    directory"); read as an empty root, every container would "not exist", which
    containerd takes for one already deleted. Every state command says so, exit 1; spec
    and --help do not need the root. Runs against runc too."""
    root = workdir / "root-file"
    root.write_text("")
    for args in (["list"], ["state", "x"], ["delete", "x"], ["kill", "x", "KILL"]):
        res = run(runcell_bin, "--root", root, *args)
        assert res.rc == 1 and "not a directory" in res.err.lower(), (args, res.describe())
    assert run(runcell_bin, "--root", root, "list", "--help").rc == 0


def test_spec_writes_config_json(h, workdir):
    d = workdir / "spec"
    d.mkdir()
    res = run(h.rt.binary, "spec", cwd=d)
    assert res.rc == 0, res.describe()
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["ociVersion"]
    assert cfg["process"]["args"] == ["sh"]
    assert cfg["process"]["terminal"] is True
    assert cfg["root"]["path"] == "rootfs"
    assert {m["destination"] for m in cfg["mounts"]} >= {"/proc", "/dev", "/sys"}
    # Refuses to overwrite, like runc.
    before = (d / "config.json").read_text()
    res = run(h.rt.binary, "spec", cwd=d)
    assert res.rc != 0
    assert "File config.json exists. Remove it first" in res.msg, res.describe()
    assert (d / "config.json").read_text() == before


def test_spec_bundle_flag(h, workdir):
    d = workdir / "spec-bundle"
    d.mkdir()
    res = run(h.rt.binary, "spec", "--bundle", d, cwd=workdir)
    assert res.rc == 0, res.describe()
    assert json.loads((d / "config.json").read_text())["process"]["args"] == ["sh"]


def test_spec_is_runnable(h, workdir):
    """runcell's own spec, with terminal off, runs the busybox bundle."""
    bundle = h.bundle("spec-run")
    res = run(h.rt.binary, "spec", cwd=bundle.path)
    assert res.rc == 0, res.describe()
    bundle.config = json.loads(bundle.config_path.read_text())
    bundle.config["process"]["terminal"] = False
    bundle.sh("echo ok; exit 3")
    res = h.run_container(bundle)
    assert res.rc == 3, res.describe()
    assert res.out == "ok\n"


@pytest.mark.differential
def test_spec_matches_runc_spec(h, runc_bin, workdir):
    specs = {}
    for name, binary in (("runcell", h.rt.binary), ("runc", runc_bin)):
        d = workdir / f"spec-{name}"
        d.mkdir()
        res = run(binary, "spec", cwd=d)
        assert res.rc == 0, res.describe()
        specs[name] = json.loads((d / "config.json").read_text())
    ours, theirs = specs["runcell"], specs["runc"]
    assert set(ours) >= set(theirs) - {"ociVersion"}
    for key in ("process", "root", "linux"):
        assert set(ours[key]) >= set(theirs[key]), key
    assert ours["process"]["capabilities"] == theirs["process"]["capabilities"]
    assert ours["process"]["rlimits"] == theirs["process"]["rlimits"]
    assert ours["process"]["noNewPrivileges"] == theirs["process"]["noNewPrivileges"]
    assert ours["root"] == theirs["root"]
    assert [m["destination"] for m in ours["mounts"]] == [m["destination"] for m in theirs["mounts"]]
    assert ours["linux"]["namespaces"] == theirs["linux"]["namespaces"]
    assert ours["linux"]["maskedPaths"] == theirs["linux"]["maskedPaths"]
    assert ours["linux"]["readonlyPaths"] == theirs["linux"]["readonlyPaths"]


def test_default_spec_helper_matches_runc(runc_bin, workdir):
    """The tests' default_spec() is `runc spec` with terminal false and the gate-off
    annotation."""
    res = run(runc_bin, "spec", cwd=workdir)
    assert res.rc == 0, res.describe()
    theirs = json.loads((workdir / "config.json").read_text())
    theirs["process"]["terminal"] = False
    theirs["annotations"] = dict(NATIVE_ANNOTATIONS)
    assert default_spec() == theirs


def test_features(h):
    res = h("features")
    assert res.rc == 0, res.describe()
    doc = json.loads(res.out)
    assert re.match(r"^1\.\d+\.\d+", doc["ociVersionMin"]), doc
    assert re.match(r"^1\.\d+\.\d+", doc["ociVersionMax"]), doc
    assert set(doc.get("hooks", [])) >= {"prestart", "createRuntime", "createContainer",
                                         "startContainer", "poststart", "poststop"}
    assert "bind" in doc.get("mountOptions", [])
    linux = doc.get("linux", {})
    assert set(linux.get("namespaces", [])) >= {"pid", "network", "ipc", "uts", "mount", "user"}
    assert "CAP_SYS_ADMIN" in linux.get("capabilities", [])


def test_version(h):
    res = h("--version")
    assert res.rc == 0, res.describe()
    assert "version" in res.out.lower()
    assert re.search(r"spec: \d+\.\d+\.\d+", res.out), res.out


def test_global_help(h):
    res = h("--help")
    assert res.rc == 0, res.describe()
    for command in COMMANDS:
        assert command in res.out, command


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(h, command):
    res = h(command, "--help")
    assert res.rc == 0, res.describe()
    assert res.out.strip(), "help goes to stdout"
    assert not (h.rt.root.exists() and os.listdir(h.rt.root))


def test_list_empty_root(h):
    res = h("list", "--format", "json")
    assert res.rc == 0, res.describe()
    assert json.loads(res.out) in (None, [])
    res = h("list", "-q")
    assert res.rc == 0 and res.out.strip() == ""


def test_global_flags_accepted(h):
    for flags in (["--debug"], ["--criu", "/usr/sbin/criu"], ["--log-format", "text"]):
        res = h(*flags, "list", "-q")
        assert res.rc == 0, (flags, res.describe())
