"""Differential tests: the same bundle under Debian's runc and under runcell (each with its
own --root), comparing exit codes, output, state JSON and what the container sees."""
import json
import os

import pytest

pytestmark = pytest.mark.differential

RUNTIMES = ["runc", "runcell"]
HOST_ID = 100000


@pytest.fixture
def harnesses(h, runc_h):
    return {"runcell": h, "runc": runc_h}


@pytest.fixture(params=RUNTIMES)
def any_h(request, harnesses):
    """One test body, run once per runtime."""
    return harnesses[request.param]


def chown_rootfs(bundle, offset):
    for dirpath, dirnames, filenames in os.walk(bundle.rootfs):
        for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
            st = os.lstat(name)
            os.lchown(name, st.st_uid + offset, st.st_gid + offset)


def userns(bundle):
    bundle.set_namespace("user")
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["type"] != "cgroup"]
    chown_rootfs(bundle, HOST_ID)


def non_root_user(bundle):
    caps = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 20]}
    bundle.config["process"]["capabilities"] = {
        "bounding": caps + ["CAP_CHOWN"], "permitted": caps, "effective": caps,
        "inheritable": caps, "ambient": caps}


def many_caps(bundle):
    caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETUID",
            "CAP_SETGID", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE"]
    bundle.config["process"]["capabilities"] = {
        "bounding": caps, "permitted": caps, "effective": caps, "inheritable": [],
        "ambient": []}


def rlimits(bundle):
    bundle.config["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 2048},
        {"type": "RLIMIT_NPROC", "hard": 300, "soft": 200},
        {"type": "RLIMIT_STACK", "hard": 16777216, "soft": 8388608},
    ]


def rlimits_unlimited(bundle):
    # what Docker writes for --ulimit core=-1: RLIM_INFINITY as a uint64, past int64
    bundle.config["process"]["rlimits"] = [
        {"type": "RLIMIT_CORE", "hard": 2**64 - 1, "soft": 2**64 - 1},
        {"type": "RLIMIT_CPU", "hard": 2**64 - 1, "soft": 2**64 - 1},
    ]


def writable_root_no_nnp(bundle):
    bundle.config["root"]["readonly"] = False
    bundle.config["process"]["noNewPrivileges"] = False


def extra_mounts(bundle):
    bundle.add_mount("/mnt/tmp", "tmpfs", "tmpfs", ["size=1m", "nosuid", "nodev"])
    bundle.add_mount("/mnt/ro", "tmpfs", "tmpfs", ["size=1m", "ro"])


def no_namespaces_but_mount(bundle):
    bundle.linux["namespaces"] = [{"type": "mount"}, {"type": "uts"}]


def mounts(text):
    """(target, fstype) pairs of /proc/self/mounts, sorted."""
    return sorted(tuple(line.split()[1:3]) for line in text.splitlines() if line.strip())


def readonly_bin(bundle):
    bundle.config["root"]["readonly"] = False
    bundle.config["linux"]["readonlyPaths"] = ["/bin", "/proc/sys", "/proc/bus"]


def sorted_lines(text):
    return sorted(text.splitlines())


SCENARIOS = {
    # name: (configure, script, normalize)
    "exit-code-and-output": (None, "echo hello; echo oops >&2; exit 5", None),
    "capabilities-default": (None, "grep ^Cap /proc/self/status", None),
    "capabilities-many": (many_caps, "grep ^Cap /proc/self/status", None),
    "capabilities-non-root": (non_root_user, "grep ^Cap /proc/self/status", None),
    "ids-non-root": (non_root_user, "id; grep -E '^(Uid|Gid|Groups):' /proc/self/status", None),
    "id-root": (None, "id", None),
    "uid-map": (None, "cat /proc/self/uid_map /proc/self/gid_map", None),
    "uid-map-userns": (userns, "cat /proc/self/uid_map /proc/self/gid_map; id", None),
    "mounts": (None, "cat /proc/self/mounts", mounts),
    "mounts-extra": (extra_mounts, "cat /proc/self/mounts", mounts),
    "mounts-userns": (userns, "cat /proc/self/mounts", mounts),
    "mount-options": (None, "grep -E ' /(proc|sys|dev|dev/pts|dev/shm|dev/mqueue) ' "
                            "/proc/self/mounts | cut -d' ' -f2,3", sorted_lines),
    # read-only paths keep the flags their mount has (no noexec added: /bin still runs)
    "readonly-paths-flags": (readonly_bin, "grep -E ' /(bin|proc/sys|proc/bus) ' "
                             "/proc/self/mounts | cut -d' ' -f2,4; /bin/busybox true && "
                             "echo ran", sorted_lines),
    "ulimit": (None, "ulimit -a", None),
    "ulimit-configured": (rlimits, "ulimit -a", None),
    "ulimit-unlimited": (rlimits_unlimited, "ulimit -a; grep -E 'core|cpu time' /proc/self/limits",
                         None),
    "hostname": (None, "hostname", None),
    "hostname-empty": (lambda b: b.config.__setitem__("hostname", ""), "hostname", None),
    "env": (None, "env", sorted_lines),
    "env-non-root": (non_root_user, "env", sorted_lines),
    "cwd-and-umask": (None, "pwd; umask", None),
    "status-flags": (None, "grep -E '^(NoNewPrivs|Seccomp|SigBlk|SigIgn):' /proc/self/status",
                     None),
    "status-flags-no-nnp": (writable_root_no_nnp,
                            "grep -E '^(NoNewPrivs|Seccomp|SigBlk|SigIgn):' /proc/self/status",
                            None),
    "dev-listing": (None, "cd /dev && for f in * .*; do [ \"$f\" = . ] || [ \"$f\" = .. ] || "
                          "stat -c '%n %F %a %u:%g %t,%T' \"$f\"; done", sorted_lines),
    "dev-links": (None, "for f in /dev/*; do [ -L $f ] && echo $f $(readlink $f); done; true",
                  sorted_lines),
    "network": (None, "ip -o link | cut -d' ' -f2,3", None),
    "processes": (None, "ps -o pid,user,comm", None),
    "open-fds": (None, "ls /proc/self/fd | wc -l", None),
    "oom-score-adj": (None, "cat /proc/self/oom_score_adj", None),
    "readonly-root": (None, "touch /x 2>&1; echo rc=$?", None),
    "writable-root": (writable_root_no_nnp, "touch /x 2>&1; echo rc=$?", None),
    "masked-and-readonly": (None, "ls /proc/acpi 2>&1 | wc -l; (echo 1 > /proc/sys/kernel/"
                                  "ns_last_pid) 2>&1; wc -c < /proc/keys", None),
    "no-pid-or-net-namespace": (no_namespaces_but_mount, "[ $$ != 1 ] && echo not-init; "
                                "ip -o link | grep -c 'lo:'; ip -o link | wc -l | "
                                "grep -qv '^1$' && echo host-links", None),
    "sysfs-and-cgroupfs": (None, "ls /sys/fs/cgroup | sort", None),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_same_as_runc(harnesses, scenario):
    configure, script, normalize = SCENARIOS[scenario]
    results = {}
    for name in RUNTIMES:
        hh = harnesses[name]
        bundle = hh.bundle()
        if configure:
            configure(bundle)
        bundle.sh(script)
        res = hh.run_container(bundle)
        out = normalize(res.out) if normalize else res.out
        results[name] = (res.rc, out)
        if name == "runc":
            # runc is the reference: if it fails here the scenario itself is wrong.
            assert res.rc == 0 or scenario == "exit-code-and-output", res.describe()
    assert results["runcell"] == results["runc"], (
        f"runcell differs from runc for {scenario!r}:\n"
        f"  runc:    {results['runc']!r}\n  runcell: {results['runcell']!r}")


def test_stderr_is_passed_through_like_runc(harnesses):
    errs = {}
    for name in RUNTIMES:
        hh = harnesses[name]
        bundle = hh.bundle()
        bundle.sh("echo to-stderr >&2")
        errs[name] = hh.run_container(bundle).err
    assert errs["runcell"] == errs["runc"]


def test_state_json_like_runc(harnesses):
    states = {}
    for name in RUNTIMES:
        hh = harnesses[name]
        bundle = hh.bundle()
        bundle.args("sleep", "60")
        cid = hh.create_ok(bundle)
        created = hh.state(cid)
        hh.start_ok(cid)
        running = hh.state(cid)
        hh.kill(cid, "KILL")
        hh.wait_status(cid, "stopped")
        stopped = hh.state(cid)
        listed = json.loads(hh("list", "--format", "json").out)
        states[name] = {
            "created keys": sorted(created),
            "running keys": sorted(running),
            "stopped keys": sorted(stopped),
            "statuses": [created["status"], running["status"], stopped["status"]],
            "owner": created["owner"],
            "list keys": sorted(listed[0]),
            # runc's list names the state directory's owner; its state says ""
            "listed owner": listed[0]["owner"],
            "bundle is the bundle": created["bundle"] == str(bundle.path),
            "rootfs is the rootfs": created["rootfs"] == str(bundle.rootfs),
        }
        assert hh.delete(cid).rc == 0
    assert states["runcell"] == states["runc"]


def test_list_table_like_runc(harnesses):
    headers = {}
    for name in RUNTIMES:
        hh = harnesses[name]
        bundle = hh.bundle()
        bundle.args("sleep", "60")
        cid = hh.create_ok(bundle)
        lines = hh("list").out.splitlines()
        headers[name] = (lines[0].split(), len(lines), lines[1].split()[2])
        hh.delete(cid, force=True)
    assert headers["runcell"] == headers["runc"]


@pytest.mark.parametrize("command", ["state", "kill", "delete", "start"])
def test_error_for_missing_container_like_runc(harnesses, command):
    msgs = {}
    for name in RUNTIMES:
        hh = harnesses[name]
        res = hh(command, hh.new_id())
        msgs[name] = (res.rc != 0, res.msg)
    assert msgs["runcell"] == msgs["runc"]


def test_exit_codes_like_runc(harnesses):
    codes = {}
    for name in RUNTIMES:
        hh = harnesses[name]
        got = []
        for script in ("exit 0", "exit 1", "exit 42", "exit 255", "kill -9 $$"):
            bundle = hh.bundle()
            bundle.sh(script)
            bundle.drop_namespace("pid")
            got.append(hh.run_container(bundle).rc)
        codes[name] = got
    assert codes["runcell"] == codes["runc"]


def test_basic_bundle_runs(any_h):
    bundle = any_h.bundle()
    bundle.sh("echo ok")
    res = any_h.run_container(bundle)
    assert (res.rc, res.out) == (0, "ok\n"), res.describe()


def running_sleeper(hh):
    """A started container whose process sleeps: somewhere to exec into."""
    bundle = hh.bundle()
    bundle.args("sleep", "60")
    cid = hh.create_ok(bundle)
    hh.start_ok(cid)
    return cid


def test_exec_cap_like_runc(harnesses):
    """exec --cap adds to the bounding, effective and permitted sets, never to inheritable
    (runc's CVE-2022-29162) nor ambient, so a non-root --user gets nothing of it."""
    caps = {}
    for name in RUNTIMES:
        hh = harnesses[name]
        cid = running_sleeper(hh)
        got = []
        for extra in ([], ["--user", "1000:1000"]):
            res = hh("exec", *extra, "--cap", "CAP_SYS_ADMIN", cid, "grep", "^Cap",
                     "/proc/self/status")
            got.append((res.rc, res.out))
        caps[name] = got
        hh.delete(cid, force=True)
    assert caps["runcell"] == caps["runc"]
    inh = [line for line in caps["runcell"][0][1].splitlines() if line.startswith("CapInh")]
    assert inh == ["CapInh:\t0000000000000000"], caps["runcell"]


def test_unknown_capabilities_are_ignored_like_runc(harnesses):
    """Capability names runcell does not know (newer than its table, or misspelt) are left
    out with a warning, as runc does: Docker and containerd build "all capabilities" lists
    from their own tables."""
    results = {}
    for name in RUNTIMES:
        hh = harnesses[name]
        bundle = hh.bundle()
        for key in ("bounding", "effective", "permitted"):
            bundle.config["process"]["capabilities"][key] += ["CAP_FOO", "cap_kill"]
        bundle.sh("grep ^Cap /proc/self/status")
        res = hh.run_container(bundle)
        results[name] = (res.rc, res.out)
        assert "CAP_FOO" in res.err, res.describe()
    assert results["runcell"] == results["runc"]


def test_exec_failure_exit_status_like_runc(harnesses):
    """A failed exec ends with 255 (runc's "exec failed"), which no process's own exit status
    can be mistaken for; a bad command line stays 1."""
    codes = {}
    for name in RUNTIMES:
        hh = harnesses[name]
        cid = running_sleeper(hh)
        codes[name] = [
            hh("exec", cid, "/no/such/program").rc,
            hh("exec", "--cwd", "/no/such/dir", cid, "true").rc,
            hh("exec", "--env", "NOEQUALS", cid, "true").rc,
            hh("exec", hh.new_id(), "true").rc,
            hh("exec", cid, "sh", "-c", "exit 7").rc,
            hh("exec", cid).rc,
            hh("exec").rc,
            hh("exec", "--no-such-flag", cid, "true").rc,
        ]
        hh.delete(cid, force=True)
    assert codes["runcell"] == codes["runc"]
    assert codes["runcell"][:4] == [255] * 4 and codes["runcell"][-2:] == [1, 1], codes
