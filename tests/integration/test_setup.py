"""What the container sees: process attributes, the root filesystem, mounts, devices."""
import os
import re
import subprocess
from pathlib import Path

import pytest

from helpers import cap_mask


def status_fields(text):
    fields = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        fields[k.strip()] = v.strip()
    return fields


def test_hostname(h, bundle):
    bundle.config["hostname"] = "rct-host"
    bundle.sh("hostname; cat /proc/sys/kernel/hostname")
    host_before = os.uname().nodename
    assert h.output_of(bundle) == "rct-host\nrct-host\n"
    assert os.uname().nodename == host_before


@pytest.mark.runcell_specific  # runc 1.1.5 ignores domainname
def test_domainname(h, bundle):
    bundle.config["domainname"] = "rct.example"
    bundle.args("cat", "/proc/sys/kernel/domainname")
    assert h.output_of(bundle) == "rct.example\n"


def test_env(h, bundle):
    bundle.config["process"]["env"] = ["PATH=/bin", "FOO=bar baz", "EMPTY=", "HOME=/root"]
    bundle.args("env")
    lines = set(h.output_of(bundle).splitlines())
    assert {"PATH=/bin", "FOO=bar baz", "EMPTY=", "HOME=/root"} <= lines
    assert not any(line.startswith("RCT_") for line in lines)


def test_env_is_not_inherited_from_the_runtime(h, bundle):
    bundle.config["process"]["env"] = ["PATH=/bin"]
    bundle.args("env")
    env = dict(os.environ, RCT_LEAK="1")
    out = h.output_of(bundle, env=env)
    assert "RCT_LEAK" not in out


def test_home_defaults_from_passwd(h, bundle):
    bundle.config["process"]["env"] = ["PATH=/bin"]
    bundle.sh('echo "HOME=$HOME"')
    assert h.output_of(bundle) == "HOME=/root\n"


def test_cwd(h, bundle):
    (bundle.rootfs / "work" / "dir").mkdir(parents=True)
    bundle.config["process"]["cwd"] = "/work/dir"
    bundle.args("pwd")
    assert h.output_of(bundle) == "/work/dir\n"


def test_user_uid_gid_additional_gids(h, bundle):
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [10, 20]}
    bundle.sh("id -u; id -g; grep -E '^(Uid|Gid|Groups):' /proc/self/status")
    lines = h.output_of(bundle).splitlines()
    assert lines[0] == "1000" and lines[1] == "1001"
    st = status_fields("\n".join(lines[2:]))
    assert st["Uid"].split() == ["1000"] * 4
    assert st["Gid"].split() == ["1001"] * 4
    assert sorted(map(int, st["Groups"].split())) == [10, 20]


def test_user_without_additional_gids_has_no_groups(h, bundle):
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle.sh("grep Groups: /proc/self/status")
    assert h.output_of(bundle).split() == ["Groups:"]


def test_umask(h, bundle):
    bundle.config["process"]["user"]["umask"] = 0o077
    bundle.config["root"]["readonly"] = False
    bundle.sh("umask; touch /tmp/f; stat -c %a /tmp/f")
    assert h.output_of(bundle).split() == ["0077", "600"]


def test_rlimits(h, bundle):
    bundle.config["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1500},
        {"type": "RLIMIT_NPROC", "hard": 500, "soft": 400},
        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0},
    ]
    bundle.sh("ulimit -n; ulimit -Hn; ulimit -u; ulimit -Hu; ulimit -c")
    assert h.output_of(bundle).split() == ["1500", "2048", "400", "500", "0"]


def test_capabilities(h, bundle):
    caps = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETPCAP"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
        "effective": ["CAP_KILL", "CAP_NET_RAW"],
        "inheritable": ["CAP_KILL"],
        "ambient": ["CAP_KILL"],
    }
    bundle.config["process"]["capabilities"] = caps
    bundle.sh("grep ^Cap /proc/self/status")
    st = status_fields(h.output_of(bundle))
    # grep is exec'd by the shell: its bounding, inheritable and ambient sets are the
    # ones the runtime gave the container process.
    assert int(st["CapBnd"], 16) == cap_mask(caps["bounding"])
    assert int(st["CapInh"], 16) == cap_mask(caps["inheritable"])
    assert int(st["CapAmb"], 16) == cap_mask(caps["ambient"])


def test_capabilities_of_the_container_process(h, bundle):
    # After exec, a root process with no_new_privs keeps permitted = the configured
    # permitted set and effective = permitted; so configure effective == permitted.
    caps = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETPCAP"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
        "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
        "inheritable": [],
        "ambient": [],
    }
    bundle.config["process"]["capabilities"] = caps
    # `read` is a shell builtin: the status printed is that of PID 1, the process the
    # runtime exec'd.
    bundle.sh("while read -r line; do case $line in Cap*) echo $line;; esac; done "
              "< /proc/self/status")
    st = status_fields(h.output_of(bundle))
    assert int(st["CapBnd"], 16) == cap_mask(caps["bounding"])
    assert int(st["CapPrm"], 16) == cap_mask(caps["permitted"])
    assert int(st["CapEff"], 16) == cap_mask(caps["effective"])
    assert int(st["CapInh"], 16) == 0
    assert int(st["CapAmb"], 16) == 0


def test_ambient_capabilities_of_a_non_root_user(h, bundle):
    caps = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle.config["process"]["capabilities"] = {
        "bounding": caps + ["CAP_CHOWN"], "permitted": caps, "effective": caps,
        "inheritable": caps, "ambient": caps}
    bundle.sh("grep ^Cap /proc/self/status")
    st = status_fields(h.output_of(bundle))
    assert int(st["CapBnd"], 16) == cap_mask(caps + ["CAP_CHOWN"])
    for field in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(st[field], 16) == cap_mask(caps), field


def test_no_capabilities_for_non_root(h, bundle):
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle.config["process"]["capabilities"] = {"bounding": ["CAP_KILL"]}
    bundle.sh("while read -r line; do case $line in Cap*) echo $line;; esac; done "
              "< /proc/self/status")
    st = status_fields(h.output_of(bundle))
    assert int(st["CapBnd"], 16) == cap_mask(["CAP_KILL"])
    assert int(st["CapEff"], 16) == 0
    assert int(st["CapPrm"], 16) == 0


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(h, bundle, nnp):
    bundle.config["process"]["noNewPrivileges"] = nnp
    bundle.sh("grep NoNewPrivs: /proc/self/status")
    assert h.output_of(bundle).split() == ["NoNewPrivs:", "1" if nnp else "0"]


def test_oom_score_adj(h, bundle):
    bundle.config["process"]["oomScoreAdj"] = 123
    bundle.args("cat", "/proc/self/oom_score_adj")
    assert h.output_of(bundle) == "123\n"


def test_readonly_root(h, bundle):
    bundle.config["root"]["readonly"] = True
    bundle.sh("touch /should-fail 2>&1; echo rc=$?; touch /tmp/should-fail-too 2>&1; echo rc=$?")
    out = h.output_of(bundle)
    assert "Read-only file system" in out, out
    assert "rc=0" not in out, out
    assert not (bundle.rootfs / "should-fail").exists()


def test_writable_root(h, bundle):
    bundle.config["root"]["readonly"] = False
    bundle.sh("echo data > /written && cat /written")
    assert h.output_of(bundle) == "data\n"
    assert (bundle.rootfs / "written").read_text() == "data\n"


def test_masked_paths(h, bundle):
    files = [f for f in ("/proc/kcore", "/proc/keys", "/proc/timer_list") if os.path.exists(f)]
    dirs = [d for d in ("/proc/acpi", "/sys/firmware") if os.path.isdir(d)]
    if not files or not dirs:
        pytest.skip("this kernel has none of the masked /proc files or directories")
    script = "".join(f"echo {f} $(wc -c < {f}) $(stat -c '%F %t,%T' {f}); " for f in files)
    script += "".join(f"echo {d} $(ls -A {d} | wc -l) $(touch {d}/x 2>&1 || echo ro); "
                      for d in dirs)
    bundle.sh(script)
    out = h.output_of(bundle).splitlines()
    for f, line in zip(files, out):
        # /dev/null is bound over a masked file.
        assert line == f"{f} 0 character special file 1,3", out
    for d, line in zip(dirs, out[len(files):]):
        assert line.startswith(f"{d} 0 "), out
        assert "Read-only file system" in line, out


def test_masked_path_that_does_not_exist_is_ignored(h, bundle):
    bundle.linux["maskedPaths"].append("/proc/no-such-file")
    bundle.args("true")
    assert h.run_container(bundle).rc == 0


def test_readonly_paths(h, bundle):
    bundle.config["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    bundle.config["process"]["capabilities"]["effective"].append("CAP_SYS_ADMIN")
    bundle.config["process"]["capabilities"]["permitted"].append("CAP_SYS_ADMIN")
    bundle.sh("(echo 1 > /proc/sys/kernel/ns_last_pid) 2>&1; echo rc=$?; "
              "grep -E ' /proc/sys ' /proc/self/mounts")
    out = h.output_of(bundle)
    assert "Read-only file system" in out, out
    assert "rc=0" not in out
    opts = re.search(r" /proc/sys \S+ (\S+)", out).group(1).split(",")
    assert "ro" in opts, out


def test_tmpfs_mount(h, bundle):
    bundle.add_mount("/mnt/scratch", "tmpfs", "tmpfs", ["size=1m", "mode=1777", "nosuid"])
    bundle.sh("grep ' /mnt/scratch ' /proc/self/mounts; echo x > /mnt/scratch/f && cat /mnt/scratch/f;"
              " stat -c %a /mnt/scratch")
    lines = h.output_of(bundle).splitlines()
    fields = lines[0].split()
    assert fields[1:3] == ["/mnt/scratch", "tmpfs"], lines
    assert "nosuid" in fields[3].split(","), lines
    assert "size=1024k" in fields[3].split(","), lines
    assert lines[1:] == ["x", "1777"]


def test_bind_mount_readonly(h, bundle, host_dir):
    (host_dir / "hello.txt").write_text("from the host\n")
    bundle.bind(host_dir, "/mnt/host", "ro")
    bundle.sh("cat /mnt/host/hello.txt; touch /mnt/host/new 2>&1; echo rc=$?")
    out = h.output_of(bundle)
    assert out.startswith("from the host\n"), out
    assert "Read-only file system" in out, out
    assert "rc=0" not in out
    assert sorted(os.listdir(host_dir)) == ["hello.txt"]
    # The host's own mount is untouched (still writable).
    (host_dir / "after").write_text("ok")


@pytest.fixture
def tree_with_submount(host_dir):
    """host_dir with a tmpfs mounted at sub/: what only the recursive attributes reach."""
    sub = host_dir / "sub"
    sub.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "rct-sub", str(sub)], check=True)
    os.chmod(sub, 0o777)
    yield host_dir
    subprocess.run(["umount", "-l", str(sub)], check=False)


@pytest.mark.parametrize("options,want", [
    # rro: the bind and its submount read-only (a plain ro reaches the top mount only)
    (["rbind", "rro"], {"/mnt/t": "ro", "/mnt/t/sub": "ro"}),
    (["rbind", "ro"], {"/mnt/t": "ro", "/mnt/t/sub": "rw"}),
    (["rbind", "rnosuid", "rnodev", "rnoexec"],
     {"/mnt/t": "rw,nosuid,nodev,noexec", "/mnt/t/sub": "rw,nosuid,nodev,noexec"}),
    # later options win
    (["rbind", "rro", "rrw"], {"/mnt/t": "rw", "/mnt/t/sub": "rw"}),
])
def test_recursive_mount_attributes(h, bundle, tree_with_submount, options, want):
    """runc's recursive attributes (mount_setattr with AT_RECURSIVE): before, runcell passed
    them to mount(2) as filesystem data, which a bind ignores, and an rro bind stayed
    writable, submount and all."""
    bundle.config["mounts"].append({"destination": "/mnt/t", "type": "bind",
                                    "source": str(tree_with_submount), "options": options})
    bundle.sh("grep -E ' /mnt/t(/sub)? ' /proc/self/mounts | cut -d' ' -f2,4; "
              "touch /mnt/t/sub/x 2>/dev/null && echo wrote; true")
    out = h.output_of(bundle).splitlines()
    flags = {}
    for line in out:
        if line.startswith("/mnt/"):
            dest, opts = line.split(" ", 1)
            keep = [o for o in opts.split(",") if o in ("ro", "rw", "nosuid", "nodev", "noexec")]
            flags[dest] = ",".join(keep)
    assert flags == want, out
    assert ("wrote" in out) == (want["/mnt/t/sub"].startswith("rw")), out
    assert (tree_with_submount / "sub" / "x").exists() == ("wrote" in out)


def test_recursive_read_only_tmpfs(h, bundle):
    """rro on a tmpfs: read-only applied last, as ro is, so mount points can be made in it,
    and on the tmpfs alone (it had nothing below it when mounted): a later mount of the
    config under it stays as mounted."""
    bundle.config["mounts"] += [
        {"destination": "/mnt/ro", "type": "tmpfs", "source": "tmpfs", "options": ["rro"]},
        {"destination": "/mnt/ro/inner", "type": "tmpfs", "source": "tmpfs", "options": []},
    ]
    bundle.sh("grep -E ' /mnt/ro(/inner)? ' /proc/self/mounts | cut -d' ' -f2,4 | cut -d, -f1")
    assert h.output_of(bundle).splitlines() == ["/mnt/ro ro", "/mnt/ro/inner rw"]


# fields of /proc/self/stat after the command: nice (19), rt_priority (40), policy (41)
STAT_SCHED = "sed 's/.*) //' /proc/self/stat | cut -d' ' -f17,38,39"


@pytest.mark.parametrize("scheduler,want", [
    # (real-time policies need a cgroup with real-time runtime on hosts with RT group
    # scheduling, which the test's cgroup is not given)
    ({"policy": "SCHED_BATCH", "nice": 5}, "5 0 3"),
    ({"policy": "SCHED_IDLE"}, "0 0 5"),
    ({"policy": "SCHED_OTHER", "nice": -3}, "-3 0 0"),
    # the flags reach the kernel: the process's children (sed here) lose the negative nice
    ({"policy": "SCHED_OTHER", "nice": -3, "flags": ["SCHED_FLAG_RESET_ON_FORK"]}, "0 0 0"),
])
def test_process_scheduler_is_applied(h, bundle, scheduler, want):
    """process.scheduler reaches the process (sched_setattr before the capabilities are
    dropped, as runc 1.2); before, runcell parsed and validated it and applied nothing."""
    bundle.config["process"]["scheduler"] = scheduler
    bundle.sh(STAT_SCHED)
    assert h.output_of(bundle).strip() == want


def test_process_scheduler_the_kernel_refuses(h, bundle):
    bundle.config["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 0}
    bundle.args("true")
    res = h.run_container(bundle)
    assert res.rc != 0
    assert "set process.scheduler (SCHED_FIFO, nice 0, priority 0): Invalid argument" in res.msg


def test_process_io_priority_is_applied(h, bundle):
    bundle.config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    bundle.sh("ionice -p $$")
    assert h.output_of(bundle).strip() == "best-effort: prio 6"


def test_bind_mount_readwrite(h, bundle, host_dir):
    bundle.bind(host_dir, "/mnt/host")
    bundle.sh("echo written > /mnt/host/out")
    h.output_of(bundle)
    assert (host_dir / "out").read_text() == "written\n"


def test_bind_mount_of_a_file(h, bundle, host_dir):
    (host_dir / "file").write_text("one file\n")
    bundle.add_mount("/etc/motd", "none", host_dir / "file", ["bind", "ro"])
    bundle.args("cat", "/etc/motd")
    assert h.output_of(bundle) == "one file\n"


def test_bind_mount_missing_source(h, bundle, workdir):
    bundle.bind(workdir / "no-such-dir", "/mnt/missing")
    bundle.args("true")
    res = h.create(bundle)
    assert res.rc != 0
    assert "no-such-dir" in res.msg or "/mnt/missing" in res.msg, res.describe()


def test_mount_order(h, bundle, host_dir):
    """Mounts are made in config order: a later mount lands on top of an earlier one."""
    (host_dir / "marker").write_text("bind\n")
    bundle.add_mount("/mnt/stack", "tmpfs", "tmpfs", ["size=1m"])
    bundle.bind(host_dir, "/mnt/stack/inner", "ro")
    bundle.sh("cat /mnt/stack/inner/marker; grep -c ' /mnt/stack' /proc/self/mounts")
    assert h.output_of(bundle).split() == ["bind", "2"]


def test_linux_devices(h, bundle):
    bundle.linux["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666,
         "uid": 0, "gid": 0},
        {"path": "/dev/rct-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640,
         "uid": 0, "gid": 5},
    ]
    bundle.linux["resources"]["devices"].append(
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
    bundle.sh("stat -c '%F %t %T %a %g' /dev/fuse /dev/rct-null; echo hi > /dev/rct-null; "
              "echo rc=$?")
    lines = h.output_of(bundle).splitlines()
    assert lines[0] == "character special file a e5 666 0", lines
    assert lines[1] == "character special file 1 3 640 5", lines
    assert lines[2] == "rc=0"


def test_default_devices_and_links(h, bundle):
    bundle.sh(
        "for d in null zero full random urandom tty; do stat -c '%n %F %t,%T' /dev/$d; done; "
        "for l in fd stdin stdout stderr ptmx; do echo /dev/$l $(readlink /dev/$l); done; "
        "echo hi > /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c"
    )
    out = h.output_of(bundle)
    for line in [
        "/dev/null character special file 1,3",
        "/dev/zero character special file 1,5",
        "/dev/full character special file 1,7",
        "/dev/random character special file 1,8",
        "/dev/urandom character special file 1,9",
        "/dev/tty character special file 5,0",
        "/dev/fd /proc/self/fd",
        "/dev/stdin /proc/self/fd/0",
        "/dev/stdout /proc/self/fd/1",
        "/dev/stderr /proc/self/fd/2",
        "/dev/ptmx pts/ptmx",
        "null-ok",
    ]:
        assert line in out.splitlines(), f"{line!r} not in:\n{out}"
    assert out.splitlines()[-1].strip() == "4"


def test_host_nodes_bound_over_device_paths_are_left_alone(h, bundle, workdir):
    """A host node bound at a path where runcell makes a device (`-v /dev/urandom:/dev/random`,
    or a device-plugin node also listed in linux.devices) stays the bind, and the host's
    node keeps its mode and owner: before, create failed on the bind ("remove old: Device
    or resource busy") or chmod/chowned the host's node through it."""
    random_node = workdir / "host-urandom"
    listed_node = workdir / "host-null"
    os.mknod(random_node, 0o600 | 0o020000, os.makedev(1, 9))
    os.mknod(listed_node, 0o600 | 0o020000, os.makedev(1, 3))
    bundle.config["mounts"] += [
        {"destination": "/dev/random", "type": "bind", "source": str(random_node),
         "options": ["bind"]},
        {"destination": "/dev/mydev", "type": "bind", "source": str(listed_node),
         "options": ["bind"]},
    ]
    bundle.linux["devices"] = [{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3,
                                "fileMode": 0o666, "uid": 1234, "gid": 1234}]
    bundle.sh("stat -c '%n %t,%T %a %u:%g' /dev/random /dev/mydev")
    out = h.output_of(bundle).splitlines()
    assert out == ["/dev/random 1,9 600 0:0", "/dev/mydev 1,3 600 0:0"], out
    for node, rdev in ((random_node, os.makedev(1, 9)), (listed_node, os.makedev(1, 3))):
        st = os.stat(node)
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_rdev) == (0o600, 0, 0, rdev)


def test_dev_shm_and_mqueue_and_pts(h, bundle):
    bundle.sh("grep -E ' /dev/(shm|mqueue|pts) ' /proc/self/mounts | cut -d' ' -f2,3")
    assert sorted(h.output_of(bundle).splitlines()) == [
        "/dev/mqueue mqueue", "/dev/pts devpts", "/dev/shm tmpfs"]


def test_sysctl(h, bundle):
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.msgmax": "4096"}
    bundle.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax")
    assert h.output_of(bundle).split() == ["1", "4096"]


def test_sysctl_slashed_spelling(h, bundle):
    """Both spellings are one sysctl, as under runc: the slashed one was classified as no
    namespace's and refused (session-19 red team: a pod's kernel/shm_rmid_forced)."""
    bundle.linux["sysctl"] = {"kernel/shm_rmid_forced": "1", "net/ipv4/ip_forward": "1"}
    bundle.sh("cat /proc/sys/kernel/shm_rmid_forced /proc/sys/net/ipv4/ip_forward")
    assert h.output_of(bundle).split() == ["1", "1"]


def test_sysctl_outside_the_containers_namespaces_is_refused(h, bundle):
    bundle.drop_namespace("network")
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    bundle.args("true")
    res = h.create(bundle)
    assert res.rc != 0
    assert "net.ipv4.ip_forward" in res.msg, res.describe()


HOST_NS_SYSCTLS = [
    pytest.param("network", "net", "net.ipv4.tcp_keepalive_probes", id="net"),
    # runc 1.1.5 checks only the network namespace's path
    pytest.param("ipc", "ipc", "kernel.msgmnb", id="ipc", marks=pytest.mark.runcell_specific),
]


@pytest.mark.parametrize("ns_type,proc_name,key", HOST_NS_SYSCTLS)
def test_sysctl_in_a_namespace_given_by_the_hosts_path_is_refused(h, bundle, ns_type,
                                                                   proc_name, key):
    """A namespaced sysctl with its namespace given as a path that leads to the host's
    (red team, session 18: the host's value was written). The value asked for is the host's
    current one, so that a failing run changes nothing; nothing is left behind."""
    current = Path("/proc/sys", *key.split(".")).read_text().strip()
    bundle.set_namespace(ns_type, f"/proc/{os.getpid()}/ns/{proc_name}")
    bundle.linux["sysctl"] = {key: current}
    bundle.args("true")
    cid = h.new_id()
    res = h.create(bundle, cid)
    assert res.rc != 0, res.describe()
    assert key in res.msg and "host" in res.msg, res.describe()
    assert h("state", cid).rc != 0
    assert not (h.rt.root / cid).exists()


@pytest.mark.parametrize("key", ["net/../kernel/msgmax", "net.ipv4..ip_forward", "net/ipv4/",
                                 "net.ipv4.ip forward"])
def test_sysctl_key_that_leaves_its_directory_is_refused(h, bundle, key):
    """Every component must be a plain name: ".." or an empty one would reach another
    sysctl (or, written as a path, another file) than the key names."""
    bundle.linux["sysctl"] = {key: "1"}
    bundle.args("true")
    res = h.create(bundle)
    assert res.rc != 0
    assert "invalid sysctl key" in res.msg, res.describe()


def test_proc_and_sys_are_mounted(h, bundle):
    bundle.sh("grep -E ' /(proc|sys) ' /proc/self/mounts | cut -d' ' -f2,3,4")
    lines = sorted(h.output_of(bundle).splitlines())
    assert lines[0].split()[:2] == ["/proc", "proc"]
    assert lines[1].split()[:2] == ["/sys", "sysfs"]
    assert "ro" in lines[1].split()[2].split(",")


def test_no_pivot(h, bundle):
    bundle.sh("cat /proc/self/status | grep -c ^Pid; ls /bin/busybox")
    bundle.write()
    res = h("run", "--no-pivot", "--bundle", bundle.path, h.new_id())
    assert res.rc == 0, res.describe()
    assert res.out.split() == ["1", "/bin/busybox"]


def test_rootfs_propagation_private(h, bundle):
    bundle.linux["rootfsPropagation"] = "private"
    bundle.args("true")
    assert h.run_container(bundle).rc == 0


@pytest.mark.runcell_specific  # runc 1.1.5 does not know linux.personality
def test_personality(h, bundle):
    bundle.linux["personality"] = {"domain": "LINUX32"}
    bundle.args("uname", "-m")
    assert h.output_of(bundle).strip() in ("i686", "i386", "armv8l", "armv7l")


@pytest.mark.parametrize("field, word", [("apparmorProfile", "apparmor"),
                                         ("selinuxLabel", "selinux")])
def test_security_label_that_cannot_be_applied(h, bundle, field, word):
    if field == "selinuxLabel" and os.path.exists("/sys/fs/selinux/enforce"):
        pytest.skip("SELinux is enabled here: the label might apply")
    bundle.config["process"][field] = (
        "rct-no-such-profile" if field == "apparmorProfile"
        else "system_u:system_r:rct_no_such_t:s0")
    bundle.args("true")
    res = h.create(bundle)
    assert res.rc != 0
    assert word in res.msg.lower(), res.describe()


@pytest.mark.parametrize("propagation, seen", [("rslave", True), ("rprivate", False)])
def test_bind_mount_propagation(h, bundle, host_dir, workdir, propagation, seen):
    """A mount made on the host after start reaches the container through an rslave bind
    of a shared mount, and not through an rprivate one."""
    subprocess.run(["mount", "--bind", host_dir, host_dir], check=True)
    try:
        subprocess.run(["mount", "--make-rshared", host_dir], check=True)
        bundle.bind(host_dir, "/mnt/host", propagation)
        bundle.sh("i=0; while [ $i -lt 30 ] && [ ! -e /mnt/host/sub/marker ]; do "
                  "sleep 0.1; i=$((i+1)); done; "
                  "if [ -e /mnt/host/sub/marker ]; then echo seen; else echo unseen; fi")
        out_path = workdir / "out"
        cid = h.new_id()
        with open(out_path, "wb") as out:
            res = h.create(bundle, cid, stdout=out)
        assert res.rc == 0, res.describe()
        h.start_ok(cid)
        (host_dir / "sub").mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "rct-prop", host_dir / "sub"], check=True)
        (host_dir / "sub" / "marker").write_text("x")
        h.wait_status(cid, "stopped", timeout=15)
        assert out_path.read_text() == ("seen\n" if seen else "unseen\n")
    finally:
        subprocess.run(["umount", "-R", host_dir], capture_output=True)
