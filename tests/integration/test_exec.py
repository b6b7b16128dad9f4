"""exec: a new process in a running container joins its namespaces, cgroup and seccomp
filter, runs as the process it is told to, and reports its exit status."""
import json
import os

from helpers import process_alive
from test_stdio import _run_in_pty


def sleeper(h, bundle, **config):
    bundle.args("sleep", "100")
    for key, value in config.items():
        bundle.config[key] = value
    return h.run_detached(bundle)


def test_exec_output_and_exit_status(h, bundle):
    cid = sleeper(h, bundle)
    res = h("exec", cid, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert res.rc == 7, res.describe()
    assert res.out == "out\n"
    assert "err" in res.err


def test_exec_joins_every_namespace_of_the_container(h, bundle):
    cid = sleeper(h, bundle)
    names = ["mnt", "pid", "net", "ipc", "uts"]
    script = "; ".join(f"readlink /proc/1/ns/{n}; readlink /proc/self/ns/{n}" for n in names)
    res = h("exec", cid, "sh", "-c", script)
    assert res.rc == 0, res.describe()
    links = res.out.split()
    assert len(links) == 2 * len(names), res.out
    for i in range(0, len(links), 2):
        assert links[i] == links[i + 1], f"exec'd process is not in the init's {links[i]}"
    # and they are not the host's
    assert links[0] != os.readlink("/proc/self/ns/mnt")


def test_exec_joins_the_cgroup(h, bundle):
    cid = sleeper(h, bundle)
    res = h("exec", "--detach", "--pid-file", str(h.workdir / "exec.pid"), cid, "sleep", "50")
    assert res.rc == 0, res.describe()
    text = (h.workdir / "exec.pid").read_text()
    assert text.isdigit(), repr(text)  # a bare integer, no newline (containerd reads it)
    pid = int(text)
    h.note_pid(pid)
    pids = json.loads(h("ps", "--format", "json", cid).out)
    assert pid in pids
    assert process_alive(pid)


def test_exec_user_env_cwd(h, bundle):
    cid = sleeper(h, bundle)
    res = h("exec", "--user", "1000:1001", "--env", "FOO=bar", "--cwd", "/tmp", cid,
            "sh", "-c", "id -u; id -g; echo $FOO; pwd")
    assert res.rc == 0, res.describe()
    assert res.out.split() == ["1000", "1001", "bar", "/tmp"]


def test_exec_process_file(h, bundle):
    cid = sleeper(h, bundle)
    proc = {"args": ["sh", "-c", "echo $A; pwd"], "env": ["A=from-file", "PATH=/bin"],
            "cwd": "/dev", "user": {"uid": 0, "gid": 0}}
    path = h.workdir / "process.json"
    path.write_text(json.dumps(proc))
    res = h("exec", "--process", str(path), cid)
    assert res.rc == 0, res.describe()
    assert res.out.split() == ["from-file", "/dev"]


def test_exec_gets_the_containers_seccomp_filter(h, bundle):
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    cid = sleeper(h, bundle)
    res = h("exec", cid, "sh", "-c", "mkdir /tmp/x 2>&1; echo rc=$?")
    assert "rc=1" in res.out and "not permitted" in res.out, res.describe()


def test_exec_missing_binary(h, bundle):
    cid = sleeper(h, bundle)
    res = h("exec", cid, "/nonexistent")
    assert res.rc != 0
    assert "/nonexistent" in res.msg and "no such file" in res.msg.lower(), res.describe()


def test_exec_relative_cwd_is_refused_like_runc(h, bundle):
    # runc validates the process it builds: a relative --cwd is an exec failure (255), not
    # a directory resolved against the container's root.
    cid = sleeper(h, bundle)
    res = h("exec", "--cwd", "tmp", cid, "pwd")
    assert res.rc == 255, res.describe()
    assert "absolute" in res.msg, res.describe()
    assert res.out == ""


def test_exec_additional_gid_that_is_not_a_number_is_refused(h, bundle):
    # runc's flag parsing refuses it (exit status 1); it must never become group 0.
    cid = sleeper(h, bundle)
    res = h("exec", "-g", "abc", cid, "id")
    assert res.rc == 1, res.describe()
    assert "abc" in res.msg, res.describe()
    assert "uid=" not in res.out, res.describe()  # runc prints its usage there
    res = h("exec", "-g", "5", "-g", "7", cid, "id", "-G")
    assert res.rc == 0, res.describe()
    assert res.out.split() == ["0", "5", "7"], res.out


def test_exec_takes_runcs_apparmor_and_process_label_flags(h, bundle):
    # runc exec has --apparmor and --process-label (an empty value changes nothing).
    cid = sleeper(h, bundle)
    res = h("exec", "--apparmor", "", "--process-label", "", cid, "echo", "ok")
    assert res.rc == 0, res.describe()
    assert res.out == "ok\n"


def test_exec_in_the_wrong_state(h, bundle):
    cid = sleeper(h, bundle)
    assert h("pause", cid).rc == 0
    res = h("exec", cid, "true")
    assert res.rc != 0 and "paused" in res.msg, res.describe()
    assert h("resume", cid).rc == 0
    assert h("kill", cid, "KILL").rc == 0
    h.wait_status(cid, "stopped")
    res = h("exec", cid, "true")
    assert res.rc != 0 and "stopped" in res.msg, res.describe()
    res = h("exec", "rct-does-not-exist", "true")
    assert res.rc != 0 and "does not exist" in res.msg, res.describe()


def test_exec_with_a_terminal_from_a_real_tty(h, bundle):
    cid = sleeper(h, bundle)
    status, out = _run_in_pty(h.rt.argv("exec", "--tty", cid, "sh", "-c", "tty; exit 4"))
    assert status == 4, out
    assert "/dev/pts/" in out, out


def test_exec_tty_detached_without_console_socket_is_an_error(h, bundle):
    cid = sleeper(h, bundle)
    res = h("exec", "--tty", "--detach", cid, "true")
    assert res.rc != 0 and "console socket" in res.msg, res.describe()


def test_exec_in_a_user_namespace(h, bundle):
    from test_namespaces import HOST_ID, _userns_bundle, host_pid_status
    _userns_bundle(bundle)
    cid = sleeper(h, bundle)
    init = h.state(cid)["pid"]
    res = h("exec", "--detach", "--pid-file", str(h.workdir / "u.pid"), cid, "sleep", "50")
    assert res.rc == 0, res.describe()
    pid = int((h.workdir / "u.pid").read_text())
    h.note_pid(pid)
    # container root is the mapped host uid, and the process is in the init's user namespace
    assert host_pid_status(pid)["Uid"].split() == [str(HOST_ID)] * 4
    assert os.readlink(f"/proc/{pid}/ns/user") == os.readlink(f"/proc/{init}/ns/user")
