"""runcell under podman (Debian's podman 4 with conmon), the other common front end.

podman runs with its own storage root, run root, containers.conf and events log under
the session directory, never the machine's; the busybox image is loaded from the same
offline OCI archive the containerd tests import. Each scenario runs with runcell as
`--runtime` and, as the reference, with Debian's runc.

Two settings adapt podman to this machine, for every runtime alike: rootful podman asks
for RLIMIT_NOFILE 1048576 by default, above the machine's hard limit, and root here lacks
CAP_SYS_RESOURCE to raise it (runc fails the same way), so the tests pass explicit
--ulimit values; and the cgroupfs manager is used because systemd is not PID 1.
"""
import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers import RUNC, cgroup_dirs_named, mounts_under, processes_mentioning, safe_rmtree
from oci_image import IMAGE_REF, build_image_archive

PODMAN = Path("/usr/bin/podman")
ULIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]


class Podman:
    def __init__(self, base):
        self.base = Path(base)
        self.base.mkdir(parents=True)
        (self.base / "storage.conf").write_text(
            f'[storage]\ndriver = "overlay"\ngraphroot = "{self.base}/graph"\n'
            f'runroot = "{self.base}/run"\n'
        )
        (self.base / "containers.conf").write_text(
            f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
            f'events_logfile_path = "{self.base}/events.log"\ntmp_dir = "{self.base}/tmp"\n'
            f'volume_path = "{self.base}/volumes"\nstatic_dir = "{self.base}/static"\n'
            f'[network]\nnetwork_config_dir = "{self.base}/net"\n'
        )
        self.env = dict(os.environ)
        self.env["CONTAINERS_STORAGE_CONF"] = str(self.base / "storage.conf")
        self.env["CONTAINERS_CONF"] = str(self.base / "containers.conf")

    def __call__(self, *args, runtime=None, timeout=60):
        argv = [str(PODMAN), "--root", f"{self.base}/graph", "--runroot", f"{self.base}/run",
                "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
        if runtime:
            argv += ["--runtime", str(runtime)]
        return subprocess.run(argv + [str(a) for a in args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def close(self):
        self("rm", "--all", "--force", "--time", "0")
        self("system", "reset", "--force")
        for mp in sorted(mounts_under(self.base), key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True)
        safe_rmtree(self.base)


@pytest.fixture(scope="module")
def podman(session_dir):
    if not os.access(PODMAN, os.X_OK):
        pytest.fail(f"{PODMAN} is not installed (scripts/install-deps.sh)", pytrace=False)
    pm = Podman(session_dir / f"podman-{secrets.token_hex(3)}")
    archive = session_dir / f"podman-image-{secrets.token_hex(3)}.tar"
    build_image_archive(archive)
    res = pm("load", "-i", archive)
    assert res.returncode == 0, res.stderr
    yield pm
    pm.close()


@pytest.fixture(params=["runcell", "runc"])
def runtime(request, runcell_bin):
    return runcell_bin if request.param == "runcell" else str(RUNC)


def leftovers(runtime, cid):
    problems = []
    # rootful podman keeps the runtime's state under /run/<runtime's file name>
    state = Path("/run") / Path(runtime).name / cid
    if state.exists():
        problems.append(f"runtime state {state}")
    problems += [f"cgroup {d}" for d in cgroup_dirs_named(f"libpod-{cid}")]
    problems += [f"process {p}" for p in processes_mentioning(cid)]
    return problems


def wait_clean(runtime, cid):
    deadline = time.monotonic() + 5
    while True:
        problems = leftovers(runtime, cid)
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.1)


def test_podman_run_exit_code_and_output(podman, runtime):
    name = f"rct-{secrets.token_hex(4)}"
    res = podman("run", "--rm", "--name", name, "--network", "none", *ULIMITS, IMAGE_REF,
                 "sh", "-c", "echo hello from podman; ulimit -n; exit 3", runtime=runtime)
    assert res.returncode == 3, res.stderr
    assert res.stdout.split() == ["hello", "from", "podman", "4096"], res.stdout
    assert podman("container", "exists", name).returncode == 1


def test_podman_detached_exec_stop_and_remove(podman, runtime):
    name = f"rct-{secrets.token_hex(4)}"
    res = podman("run", "-d", "--name", name, "--network", "none", *ULIMITS, IMAGE_REF,
                 "sleep", "1000", runtime=runtime)
    assert res.returncode == 0, res.stderr
    cid = res.stdout.strip()
    inspect = json.loads(podman("inspect", name).stdout)[0]
    assert inspect["State"]["Running"] is True
    assert Path(inspect["OCIRuntime"]).name == Path(runtime).name
    pid = inspect["State"]["Pid"]
    assert os.readlink(f"/proc/{pid}/exe").endswith("busybox")

    res = podman("exec", name, "sh", "-c", "echo exec in $(cat /proc/1/comm); exit 4",
                 runtime=runtime)
    assert res.returncode == 4, res.stderr
    assert res.stdout.strip() == "exec in sleep"

    res = podman("stop", "--time", "1", name, runtime=runtime)
    assert res.returncode == 0, res.stderr
    inspect = json.loads(podman("inspect", name).stdout)[0]
    assert inspect["State"]["Status"] == "exited"
    assert inspect["State"]["ExitCode"] == 137  # sleep as pid 1 ignores SIGTERM
    res = podman("rm", name, runtime=runtime)
    assert res.returncode == 0, res.stderr
    problems = wait_clean(runtime, cid)
    assert not problems, problems


def test_podman_create_error_is_the_runtimes(podman, runcell_bin):
    name = f"rct-{secrets.token_hex(4)}"
    res = podman("run", "--rm", "--name", name, "--network", "none", *ULIMITS, IMAGE_REF,
                 "/nonexistent", runtime=runcell_bin)
    assert res.returncode != 0
    assert f"{runcell_bin}: runcell: " in res.stderr and 'exec: "/nonexistent"' in res.stderr, \
        res.stderr
    podman("rm", "--force", name)
