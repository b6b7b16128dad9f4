"""update: new cgroup limits for a running container, from flags or a LinuxResources JSON
on stdin (what containerd sends)."""
import json

import pytest

from helpers import CGROUP_TEST_PARENT, controller_dir

MiB = 1024 * 1024


def limit_file(controller, cgroup_path, v1_name, v2_name):
    mount, version = controller_dir(controller)
    if mount is None:
        pytest.skip(f"the {controller} controller is not mounted on this host")
    return mount / cgroup_path.lstrip("/") / (v1_name if version == 1 else v2_name)


def running(h, bundle):
    cid = h.new_id()
    path = f"/{CGROUP_TEST_PARENT}/{cid}"
    bundle.linux["cgroupsPath"] = path
    bundle.args("sleep", "100")
    bundle.write()
    res = h("run", "--detach", "--bundle", bundle.path, "--pid-file", h.pid_file(cid), cid)
    assert res.rc == 0, res.describe()
    h.track_id(cid)
    h.note_pid(h.pid_file(cid).read_text())
    return cid, path


def test_update_flags(h, bundle):
    cid, path = running(h, bundle)
    mem = limit_file("memory", path, "memory.limit_in_bytes", "memory.max")
    pids = limit_file("pids", path, "pids.max", "pids.max")
    res = h("update", "--memory", "96m", "--pids-limit", "33", cid)
    assert res.rc == 0, res.describe()
    assert mem.read_text().strip() == str(96 * MiB)
    assert pids.read_text().strip() == "33"


def test_update_resources_from_stdin(h, bundle):
    cid, path = running(h, bundle)
    mem = limit_file("memory", path, "memory.limit_in_bytes", "memory.max")
    body = json.dumps({"memory": {"limit": 80 * MiB}, "pids": {"limit": 44}})
    res = h("update", "--resources", "-", cid, input=body)
    assert res.rc == 0, res.describe()
    assert mem.read_text().strip() == str(80 * MiB)


@pytest.mark.runcell_specific
def test_update_bad_input_changes_nothing(h, bundle):
    cid, path = running(h, bundle)
    pids = limit_file("pids", path, "pids.max", "pids.max")
    before = pids.read_text()
    res = h("update", "--resources", "-", cid, input='{"pids": {"limit": "many"}}')
    assert res.rc != 0 and "pids.limit" in res.msg, res.describe()
    res = h("update", "--memory", "12zz", cid)
    assert res.rc != 0 and "--memory" in res.msg, res.describe()
    assert pids.read_text() == before


def test_update_of_a_missing_container(h):
    res = h("update", "--memory", "64m", "rct-does-not-exist")
    assert res.rc != 0 and "does not exist" in res.msg, res.describe()
