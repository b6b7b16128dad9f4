"""Namespaces: new ones per the spec, joining existing ones by path, user namespaces."""
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from helpers import NATIVE_ANNOTATIONS, host_pid_status

HOST_ID = 100000
MAPPED = 65536


def ns_inode(path):
    return os.stat(path).st_ino


def test_new_pid_namespace(h, bundle):
    bundle.sh("echo $$; ps -o pid,comm | wc -l")
    out = h.output_of(bundle).split()
    assert out[0] == "1"
    # Only sh, ps and wc are visible (plus ps's header).
    assert int(out[1]) <= 5, out


def test_without_pid_namespace_sees_host_pids(h, bundle):
    bundle.drop_namespace("pid")
    bundle.sh("echo $$")
    assert int(h.output_of(bundle)) != 1


@pytest.mark.parametrize("ns", ["pid", "net", "ipc", "uts", "mnt"])
def test_namespaces_differ_from_the_host(h, bundle, ns):
    bundle.args("readlink", f"/proc/self/ns/{ns}")
    inside = h.output_of(bundle).strip()
    assert inside != f"{ns}:[{ns_inode(f'/proc/self/ns/{ns}')}]", inside


def test_cgroup_namespace(h, bundle):
    if not os.path.exists("/proc/self/ns/cgroup"):
        pytest.skip("this kernel has no cgroup namespaces")
    bundle.set_namespace("cgroup")
    bundle.args("readlink", "/proc/self/ns/cgroup")
    inside = h.output_of(bundle).strip()
    assert inside != f"cgroup:[{ns_inode('/proc/self/ns/cgroup')}]"


def test_uts_namespace_keeps_the_host_hostname(h, bundle):
    bundle.config["hostname"] = "rct-uts"
    bundle.args("hostname")
    host = os.uname().nodename
    assert h.output_of(bundle) == "rct-uts\n"
    assert os.uname().nodename == host


def test_hostname_without_uts_namespace_is_refused(h, bundle):
    bundle.drop_namespace("uts")
    bundle.config["hostname"] = "rct-nouts"
    bundle.args("true")
    host = os.uname().nodename
    res = h.create(bundle)
    assert res.rc != 0
    assert "uts" in res.msg.lower() or "hostname" in res.msg.lower(), res.describe()
    assert os.uname().nodename == host


def test_join_network_namespace_by_path(h, bundle):
    name = h.add_netns()
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    nspath = Path("/run/netns") / name
    bundle.set_namespace("network", nspath)
    bundle.sh("readlink /proc/self/ns/net; ip -o link show lo")
    out = h.output_of(bundle).splitlines()
    assert out[0] == f"net:[{ns_inode(nspath)}]", out
    assert re.search(r"<[^>]*\bUP\b", out[1]), out  # the loopback we set up


def test_new_network_namespace_has_only_loopback(h, bundle):
    bundle.sh("ip -o link show")
    out = h.output_of(bundle).splitlines()
    assert len(out) == 1 and ": lo:" in out[0], out


def test_join_namespace_that_does_not_exist(h, bundle, workdir):
    bundle.set_namespace("network", workdir / "no-such-netns")
    bundle.args("true")
    res = h.create(bundle)
    assert res.rc != 0
    assert "no-such-netns" in res.msg, res.describe()


def test_join_pid_and_ipc_namespace_of_another_container(h, bundle):
    first = h.bundle("first")
    first.args("sleep", "60")
    cid = h.create_ok(first)
    h.start_ok(cid)
    pid = h.state(cid)["pid"]
    bundle.set_namespace("pid", f"/proc/{pid}/ns/pid")
    bundle.set_namespace("ipc", f"/proc/{pid}/ns/ipc")
    bundle.sh("readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; ps -o comm | grep -c sleep")
    out = h.output_of(bundle).splitlines()
    assert out[0] == f"pid:[{ns_inode(f'/proc/{pid}/ns/pid')}]"
    assert out[1] == f"ipc:[{ns_inode(f'/proc/{pid}/ns/ipc')}]"
    assert out[2] == "1"


# --- user namespaces


def _userns_bundle(bundle):
    bundle.set_namespace("user")
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": MAPPED}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": MAPPED}]
    # A cgroup mount needs a cgroup namespace (or the host's cgroupfs, not reachable from
    # a user namespace): drop it, as rootless configs do.
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["type"] != "cgroup"]
    # The rootfs belongs to the container's root.
    for dirpath, dirnames, filenames in os.walk(bundle.rootfs):
        for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
            st = os.lstat(name)
            os.lchown(name, st.st_uid + HOST_ID, st.st_gid + HOST_ID)
    return bundle


def test_user_namespace_mappings(h, bundle):
    _userns_bundle(bundle)
    bundle.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; "
              "cat /proc/self/setgroups")
    out = h.output_of(bundle).splitlines()
    assert out[0].split() == ["0", str(HOST_ID), str(MAPPED)]
    assert out[1].split() == ["0", str(HOST_ID), str(MAPPED)]
    assert out[2] == "0"


def test_user_namespace_host_view(h, bundle):
    _userns_bundle(bundle)
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle.args("sleep", "60")
    cid = h.run_detached(bundle)
    pid = h.state(cid)["pid"]
    # The host sees the container's uid 1000 as 100000 + 1000.
    deadline = time.time() + 5
    while time.time() < deadline and host_pid_status(pid)["Name"] != "sleep":
        time.sleep(0.05)
    st = host_pid_status(pid)
    assert st["Uid"].split() == [str(HOST_ID + 1000)] * 4
    assert st["Gid"].split() == [str(HOST_ID + 1000)] * 4
    assert Path(f"/proc/{pid}/uid_map").read_text().split() == ["0", str(HOST_ID), str(MAPPED)]
    assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")


def test_user_namespace_root_cannot_touch_host_owned_files(h, bundle, host_dir):
    _userns_bundle(bundle)
    secret = host_dir / "secret"
    secret.write_text("host only\n")
    os.chmod(secret, 0o600)
    bundle.bind(host_dir, "/mnt/host")
    bundle.sh("cat /mnt/host/secret 2>&1; echo rc=$?")
    out = h.output_of(bundle)
    assert "Permission denied" in out, out
    assert "host only" not in out


def test_user_namespace_without_mappings_is_an_error(h, bundle):
    bundle.set_namespace("user")
    bundle.args("true")
    res = h.create(bundle)
    assert res.rc != 0
    assert "mapping" in res.msg.lower() or "uidMappings" in res.msg, res.describe()


@pytest.mark.parametrize("cell", [True, False], ids=["cell", "native"])
def test_user_namespace_without_root_mapped_is_an_error(h, bundle, cell):
    """The init is the namespace's root while it sets the container up, as runc's is: a
    map without container id 0 is refused at create, saying so, before anything exists
    (a cell's views used to hide the init's own message behind "Connection reset by
    peer"; session-19 red team). runc refuses it too."""
    _userns_bundle(bundle)
    if not cell:
        bundle.config.setdefault("annotations", {}).update(NATIVE_ANNOTATIONS)
    bundle.linux["uidMappings"] = [{"containerID": 1, "hostID": HOST_ID, "size": MAPPED}]
    bundle.args("true")
    res = h.create(bundle)
    assert res.rc != 0, res.describe()
    assert "root user mapping" in res.msg or "mapping" in res.msg.lower(), res.describe()
    assert "Connection reset" not in res.msg, res.describe()


@pytest.mark.runcell_specific  # runc 1.1.5 has no time namespaces
def test_time_namespace(h, bundle):
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("this kernel has no time namespaces")
    bundle.set_namespace("time")
    bundle.args("readlink", "/proc/self/ns/time")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    assert res.out.strip() != os.readlink("/proc/self/ns/time")
