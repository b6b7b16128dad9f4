"""cgroup v2, runcell next to Debian's runc, in the QEMU hardware lane (tests/lanes/).

This machine's cgroups are hybrid (v1 controllers; the unified hierarchy holds only
hugetlb), so the other integration tests exercise runcell's v1 code. The lane guest mounts a
pure cgroup2 hierarchy, as Debian 12 and Kubernetes nodes run it. The lane boots once with
runcell, /usr/sbin/runc (the lane brings a dynamically linked program's shared libraries:
libseccomp, libc), a busybox rootfs, a resources.json for `update -r` and one bundle per
scenario and instance (runc, native = runcell with the gate off, cell = runcell's default
mode with the notify placement); tests/lanes/cgroupv2/cgroupv2.sh compares what each
runtime writes and reports there. Skipped when qemu-system-x86_64 is not installed.
"""
import json
import shutil
import sys
from pathlib import Path

import pytest

from helpers import default_spec, make_rootfs

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "lanes"))

import lane  # noqa: E402
from lane_kernel import LaneError  # noqa: E402

SCRIPT = REPO / "tests" / "lanes" / "cgroupv2" / "cgroupv2.sh"
MiB = 1024 * 1024
CELL = {"run.runcell.placement": "notify"}  # the gate is on by default
NATIVE = {"run.runcell.gate": "off"}
# /dev/ram0 in the guest (the brd module): io.max needs a block device
RAM0 = {"major": 1, "minor": 0}

# scenario: (resources, instances, cgroupsPath below /<scenario>-<instance>, process args)
SLEEP = ["sleep", "1000"]
SCENARIOS = {
    "main": ({
        "memory": {"limit": 256 * MiB, "reservation": 128 * MiB, "swap": 512 * MiB},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "mems": "0"},
        "pids": {"limit": 64},
        # weightDevice is left out: runc 1.1 ignores it on v2 (runcell writes it, and the
        # kernel refuses it unless the device has iocost or bfq); a throttle rate of 0 too:
        # runc 1.1 writes "wiops=0", which the kernel refuses (runcell: "max", v1's "none")
        "blockIO": {"weight": 500,
                    "throttleReadBpsDevice": [dict(RAM0, rate=MiB)],
                    "throttleWriteIOPSDevice": [dict(RAM0, rate=100)]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}],
        "unified": {"memory.high": "200000000", "cgroup.max.descendants": "10"},
    }, ("runc", "native", "cell"), "", SLEEP),
    "override": ({
        "cpu": {"shares": 512}, "pids": {"limit": 64},
        "unified": {"pids.max": "33", "cpu.weight": "77", "cgroup.max.descendants": "5"},
    }, ("runc", "native"), "", SLEEP),
    # a device weight on a disk whose scheduler weighs no cgroups (ram0: no iocost, no BFQ):
    # runc 1.1 leaves weightDevice out on v2, runcell warns that the kernel refused it
    "weightdev": ({"blockIO": {"weight": 300, "weightDevice": [dict(RAM0, weight=700)]}},
                  ("runc", "native"), "", SLEEP),
    "rdma": ({"rdma": {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 100}}},
             ("runc", "native"), "", SLEEP),
    "unified-slash": ({"unified": {"../memory.max": "1"}}, ("runc", "native"), "", SLEEP),
    "unified-nofile": ({"unified": {"memory.nonexistent": "1"}}, ("runc", "native"), "", SLEEP),
    "deep": ({"cpu": {"cpus": "0"}, "pids": {"limit": 64}}, ("runc", "native"), "/a/b", SLEEP),
    "thr": ({"pids": {"limit": 40}}, ("runc", "native", "cell"), "/c", SLEEP),
    "thrm": ({"memory": {"limit": 64 * MiB}}, ("runc", "native"), "/c", SLEEP),
    # memory+swap equal to memory: no swap can absorb the hog
    "oom": ({"memory": {"limit": 32 * MiB, "swap": 32 * MiB}}, ("runc", "native", "cell"), "",
            ["sh", "-c", "tail /dev/zero; sleep 1000"]),
    "bomb": ({"pids": {"limit": 32}, "cpu": {"quota": 20000, "period": 100000}},
             ("runc", "native", "cell"), "", SLEEP),
}
# update -r: every field runc's update reads
UPDATE_RESOURCES = {
    "memory": {"limit": 300 * MiB, "reservation": 100 * MiB, "swap": 600 * MiB},
    "cpu": {"shares": 2048, "quota": 40000, "period": 200000, "cpus": "0", "mems": "0"},
    "pids": {"limit": 50},
    "blockIO": {"weight": 700},
    "unified": {"memory.high": "300000000"},
}


def write_bundle(bundles, scenario, instance, resources, below, args):
    spec = default_spec()
    spec["root"] = {"path": "/srv/rootfs", "readonly": True}
    # the oom scenario's cell names no placement: the default's (notify) is checked
    if instance == "cell":
        spec["annotations"] = {} if scenario == "oom" else dict(CELL)
    else:
        spec["annotations"] = dict(NATIVE)
    spec["process"]["args"] = list(args)
    linux = spec["linux"]
    # runc spec's namespaces on a cgroup v2 host (this host is hybrid: default_spec has none)
    if {"type": "cgroup"} not in linux["namespaces"]:
        linux["namespaces"].append({"type": "cgroup"})
    linux["cgroupsPath"] = f"/{scenario}-{instance}{below}"
    linux["resources"].update(json.loads(json.dumps(resources)))
    name = f"{scenario}-{instance}"
    (bundles / name).mkdir(parents=True)
    (bundles / name / "config.json").write_text(json.dumps(spec, indent=1))


@pytest.fixture(scope="module")
def cgroup_v2_lane(runcell_bin, runc_bin, tmp_path_factory):
    if shutil.which(lane.lane_qemu.QEMU) is None:
        pytest.skip(f"{lane.lane_qemu.QEMU} is not installed (apt-get install qemu-system-x86)")
    work = tmp_path_factory.mktemp("cgroup-v2-lane")
    rootfs = work / "rootfs"
    make_rootfs(rootfs)
    bundles = work / "bundles"
    for scenario, (resources, instances, below, args) in SCENARIOS.items():
        for instance in instances:
            write_bundle(bundles, scenario, instance, resources, below, args)
    data = work / "data"
    data.mkdir()
    (data / "resources.json").write_text(json.dumps(UPDATE_RESOURCES))
    adds = [(Path(runcell_bin), "/usr/local/bin/runcell"), (Path(runc_bin), "/usr/local/bin/runc"),
            (rootfs, "/srv/rootfs"), (bundles, "/srv/bundles"), (data, "/srv/cgroupv2")]
    try:
        return lane.run_lane(log=lambda msg: None, tests=[SCRIPT], adds=adds,
                             modules=["fuse", "brd"], timeout=600)
    except LaneError as e:
        pytest.fail(f"the lane could not be prepared: {e}", pytrace=False)


def test_cgroup_v2_like_runc_in_the_lane(cgroup_v2_lane):
    result = cgroup_v2_lane.result(lane.lane_guest.test_name(SCRIPT.stem))
    output = "\n".join(result.output)
    if result.status == "skip":
        pytest.skip(f"cgroupv2.sh skipped in the guest: {result.reason}")
    assert result.status == "ok", (
        f"{result.tap()}\n--- guest output ---\n{output}"
        + ("" if cgroup_v2_lane.done else "\n--- lane ---\n" + cgroup_v2_lane.failure_report()))
    assert "all cgroup v2 checks passed" in output
