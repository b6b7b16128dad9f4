"""runcell as a CRI runtime handler: containerd's CRI plugin loads the shipped handler
config (shims/containerd/runcell.toml, merged into its config as the how-to says) and a CRI
client (the kubelet's side, cri_client.py) runs pods with runtime_handler "runcell".

The pods use the host network (NamespaceMode NODE), so no CNI plugin is needed; the
sandbox ("pause") image and the workload image are the offline busybox image.
"""
import json
import os
import secrets
import time
from pathlib import Path

import pytest

from containerd_harness import Containerd, containerd_missing
from cri_client import (
    CONTAINER_EXITED,
    CONTAINER_RUNNING,
    CriClient,
    container_config,
    cri_missing,
    pod_sandbox_config,
)
from helpers import REPO, cgroup_dirs_named, mounts_under, processes_mentioning, run
from oci_image import IMAGE_REF, build_image_archive

pytestmark = pytest.mark.containerd

SHIPPED_CONFIG = REPO / "shims" / "containerd" / "runcell.toml"
SHIPPED_BINARY = 'BinaryName = "/usr/local/bin/runcell-cell"'
SHIPPED_NATIVE = 'BinaryName = "/usr/local/bin/runcell-native"'
SHIPPED_ROOT = 'Root = "/run/containerd/runcell"'
PAUSE_REF = "docker.io/runcell/pause:test"
K8S_NS = "k8s.io"


def has_cap_sys_resource():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) & (1 << 24))
    return False


def handler_config(base, runcell_bin):
    """The shipped config with the binary under test and a Root inside the test dir."""
    text = SHIPPED_CONFIG.read_text()
    for line in (SHIPPED_BINARY, SHIPPED_NATIVE, SHIPPED_ROOT):
        assert line in text, f"{SHIPPED_CONFIG} no longer has {line}; update this test"
    # The handler names are symlinks to the binary, as `cmake --install` makes them.
    (base / "bin").mkdir()
    os.symlink(runcell_bin, base / "bin" / "runcell-native")
    os.symlink(runcell_bin, base / "bin" / "runcell-cell")
    text = text.replace(SHIPPED_BINARY, f'BinaryName = "{base}/bin/runcell-cell"')
    text = text.replace(SHIPPED_NATIVE, f'BinaryName = "{base}/bin/runcell-native"')
    text = text.replace(SHIPPED_ROOT, f'Root = "{base}/runcell-root"')
    # Merged into the main config: drop the file's own `version` line.
    return "\n".join(line for line in text.splitlines() if not line.startswith("version"))


def widened_handler(base):
    """A test-only handler: the shipped runcell handler with its annotation lists widened to
    every runcell key, as an operator might (and as the shipped config itself did before
    session 17's red team): the binary's floor must hold on its own."""
    return f"""
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runcell-widened]
  runtime_type = "io.containerd.runc.v2"
  pod_annotations = ["run.runcell.*"]
  container_annotations = ["run.runcell.*"]
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runcell-widened.options]
    BinaryName = "{base}/bin/runcell-cell"
    Root = "{base}/runcell-root"
"""


def cri_settings(base):
    """containerd's CRI plugin settings for the tests: the offline pause image, no stream
    server port of its own, CNI directories under base."""
    return f"""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_REF}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # This machine withholds CAP_SYS_RESOURCE even from root, so no runtime (runc neither)
  # can lower oom_score_adj below containerd's own: the sandbox's -998 would fail. Clamp
  # it as containerd does for rootless setups.
  restrict_oom_score_adj = {"true" if not has_cap_sys_resource() else "false"}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{base}/cni/bin"
    conf_dir = "{base}/cni/conf"
"""


@pytest.fixture(scope="module")
def cri(session_dir, runcell_bin):
    why = containerd_missing() or cri_missing()
    if why:
        pytest.fail(why, pytrace=False)
    base = session_dir / f"cri-{secrets.token_hex(3)}"
    base.mkdir()
    ctd = Containerd(base, extra_config=(cri_settings(base) + handler_config(base, runcell_bin)
                                         + widened_handler(base)),
                     disable_cri=False)
    ctd.namespaces.add(K8S_NS)
    ctd.start()
    try:
        for ref, cmd in ((IMAGE_REF, ("sh",)),
                         (PAUSE_REF, ("sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"))):
            archive = base / (ref.rsplit("/", 1)[1].replace(":", "-") + ".tar")
            build_image_archive(archive, cmd=cmd, ref=ref)
            res = ctd.ctr("images", "import", archive, namespace=K8S_NS)
            assert res.rc == 0, res.describe()
        client = CriClient(ctd.socket)
        client.wait_ready()
    except BaseException:
        ctd.stop()  # a failed set-up must not leave containerd running
        raise
    ctd.cri_client = client
    # The shim appends the containerd namespace to the handler's Root.
    ctd.runcell_root = base / "runcell-root" / K8S_NS
    yield ctd
    client.close()
    problems = ctd.stop()
    assert not problems, "containerd harness left behind:\n  " + "\n  ".join(problems)


class Pods:
    """Pods run by one test; removed (and checked for leftovers) at its end."""

    def __init__(self, cri):
        self.cri = cri
        self.client = cri.cri_client
        self.pods = []
        self.containers = []
        self.logs = cri.base / "pod-logs" / secrets.token_hex(3)
        self.logs.mkdir(parents=True)

    def run_pod(self, handler, annotations=None, **config):
        """config: more pod_sandbox_config() arguments."""
        name = f"rct-{secrets.token_hex(4)}"
        cfg = pod_sandbox_config(name, secrets.token_hex(8), "default", self.logs / name,
                                 annotations=annotations, **config)
        (self.logs / name).mkdir()
        pod_id = self.client.run_pod_sandbox(cfg, handler)
        self.pods.append(pod_id)
        return pod_id, cfg

    def run_container(self, pod_id, pod_cfg, command, name="main"):
        cfg = container_config(name, IMAGE_REF, command, f"{name}.log")
        cid = self.client.create_container(pod_id, cfg, pod_cfg)
        self.containers.append(cid)
        self.client.start_container(cid)
        return cid

    def runcell(self, *args):
        return run(self.cri_binary, "--root", self.cri.runcell_root, *args)

    def finish(self):
        for cid in reversed(self.containers):
            try:
                self.client.stop_container(cid)
                self.client.remove_container(cid)
            except Exception as e:  # noqa: BLE001 - remove the rest
                print(f"removing container {cid}: {e}")
        for pod_id in reversed(self.pods):
            self.client.stop_pod_sandbox(pod_id)
            self.client.remove_pod_sandbox(pod_id)
        problems = []
        deadline = time.monotonic() + 5
        while True:
            problems = []
            root = self.cri.runcell_root
            if root.exists():
                problems += [f"runcell state {root / d}" for d in os.listdir(root)]
            for cid in self.pods + self.containers:
                problems += [f"cgroup {d}" for d in cgroup_dirs_named(cid)]
                problems += [f"process {p}" for p in processes_mentioning(cid)]
                problems += [f"mount {m}" for m in mounts_under(
                    self.cri.base / "state" / "io.containerd.runtime.v2.task" / K8S_NS / cid)]
            if not problems or time.monotonic() > deadline:
                return problems
            time.sleep(0.1)


@pytest.fixture
def pods(cri, runcell_bin):
    p = Pods(cri)
    p.cri_binary = runcell_bin
    yield p
    problems = p.finish()
    assert not problems, "pods left behind:\n  " + "\n  ".join(problems)


def test_cri_plugin_starts_with_runcells_handler(cri):
    plugins = cri.plugins()
    assert plugins.get("io.containerd.grpc.v1.cri") == "ok", plugins
    config = json.loads(cri.cri_client.status()["config"])
    runtimes = config["containerd"]["runtimes"]
    assert "runcell" in runtimes and "runcell-native" in runtimes, runtimes.keys()
    runcell = runtimes["runcell"]
    assert runcell["runtimeType"] == "io.containerd.runc.v2"
    assert runcell["options"]["BinaryName"].endswith("/runcell-cell"), runcell
    # The default handler is still runc.
    assert config["containerd"]["defaultRuntimeName"] == "runc"
    assert runtimes["runc"]["runtimeType"] == "io.containerd.runc.v2"


def test_pod_under_the_runcell_handler(cri, pods):
    pod_id, pod_cfg = pods.run_pod("runcell")
    status = cri.cri_client.pod_sandbox_status(pod_id)
    assert status["runtime_handler"] == "runcell"
    assert status["state"] == 0, status  # SANDBOX_READY
    # The sandbox (pause) container is runcell's: it is in runcell's state root.
    res = pods.runcell("state", pod_id)
    assert res.rc == 0, res.describe()
    sandbox = json.loads(res.out)
    assert sandbox["status"] == "running"
    assert sandbox["annotations"]["io.kubernetes.cri.container-type"] == "sandbox"

    cid = pods.run_container(pod_id, pod_cfg, ["sh", "-c", "echo hello from the pod; exit 7"])
    st = cri.cri_client.wait_container_state(cid, CONTAINER_EXITED)
    assert st["state"] == CONTAINER_EXITED, st
    assert st["exit_code"] == 7, st
    logs = list(pods.logs.glob("*/main.log"))
    assert logs and "hello from the pod" in logs[0].read_text(), logs


def test_long_running_container_shares_the_pods_namespaces(cri, pods):
    pod_id, pod_cfg = pods.run_pod("runcell")
    cid = pods.run_container(pod_id, pod_cfg, ["sh", "-c", "sleep 1000"])
    st = cri.cri_client.wait_container_state(cid, CONTAINER_RUNNING)
    assert st["state"] == CONTAINER_RUNNING, st
    sandbox_pid = json.loads(pods.runcell("state", pod_id).out)["pid"]
    res = pods.runcell("state", cid)
    assert res.rc == 0, res.describe()
    pid = json.loads(res.out)["pid"]
    for ns in ("ipc", "uts", "pid"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/{sandbox_pid}/ns/{ns}"), ns
    assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink(f"/proc/{sandbox_pid}/ns/mnt")
    cri.cri_client.stop_container(cid, timeout=1)
    st = cri.cri_client.wait_container_state(cid, CONTAINER_EXITED)
    assert st["state"] == CONTAINER_EXITED, st


def test_default_handler_still_runs_runc(cri, pods):
    pod_id, pod_cfg = pods.run_pod("")
    status = cri.cri_client.pod_sandbox_status(pod_id)
    assert status["state"] == 0, status
    assert pods.runcell("state", pod_id).rc != 0  # not runcell's container
    res = run("/usr/sbin/runc", "--root", f"/run/containerd/runc/{K8S_NS}", "state", pod_id)
    assert res.rc == 0, res.describe()
    assert Path(f"/run/containerd/runc/{K8S_NS}/{pod_id}").exists()


def mode_annotations(pods, cid):
    res = pods.runcell("state", cid)
    assert res.rc == 0, res.describe()
    ann = json.loads(res.out)["annotations"]
    return ann.get("run.runcell.mode"), ann.get("run.runcell.gate")


@pytest.mark.parametrize("handler,gate", [("runcell", "on"), ("runcell-native", "off")])
def test_the_handler_alone_selects_the_mode(cri, pods, handler, gate):
    pod_id, pod_cfg = pods.run_pod(handler)
    cid = pods.run_container(pod_id, pod_cfg,
                             ["sh", "-c", "grep Seccomp: /proc/self/status; sleep 1000"])
    st = cri.cri_client.wait_container_state(cid, CONTAINER_RUNNING)
    assert st["state"] == CONTAINER_RUNNING, st
    assert mode_annotations(pods, pod_id) == ("cell", gate)
    assert mode_annotations(pods, cid) == ("cell", gate)
    deadline = time.monotonic() + 10
    logs = []
    while time.monotonic() < deadline:
        logs = list(pods.logs.glob("*/main.log"))
        if logs and "Seccomp:" in logs[0].read_text():
            break
        time.sleep(0.1)
    text = logs[0].read_text() if logs else ""
    # CRI asks for no seccomp profile here: only the gate filters a cell's syscalls.
    assert ("Seccomp:\t2" in text) == (gate == "on"), text


@pytest.mark.parametrize("handler,asked,gate", [("runcell", "off", "on"),
                                                ("runcell-native", "on", "on")])
def test_a_pod_annotation_can_only_ask_for_more_than_the_handler(cri, pods, handler, asked,
                                                                  gate):
    """The shipped runcell handler passes the mode and placement through, not the gate: a
    pod author on the runcell RuntimeClass cannot weaken the boundary the operator chose
    (red team, session 17: with "run.runcell.*" a gate-off pod ran with no gate). The
    runcell-native handler passes every runcell key: from the gate off a pod can only ask
    for more, and gets it."""
    pod_id, pod_cfg = pods.run_pod(handler, annotations={"run.runcell.gate": asked})
    cid = pods.run_container(pod_id, pod_cfg, ["sleep", "1000"])
    st = cri.cri_client.wait_container_state(cid, CONTAINER_RUNNING)
    assert st["state"] == CONTAINER_RUNNING, st
    assert mode_annotations(pods, pod_id) == ("cell", gate)
    assert mode_annotations(pods, cid) == ("cell", gate)


def test_a_pod_cannot_ask_for_an_unknown_mode(cri, pods):
    with pytest.raises(Exception) as failure:
        pods.run_pod("runcell", annotations={"run.runcell.mode": "bogus"})
    message = str(failure.value).replace('\\"', '"')
    assert 'run.runcell.mode: must be "cell" or "microvm", got "bogus"' in message, message


def test_a_widened_runcell_handler_still_keeps_the_gate(cri, pods):
    """With every runcell key let through to the runcell-cell binary, a pod asking for the
    gate off is refused by runcell itself (RunPodSandbox fails with the reason, nothing is
    left), while the same handler runs a pod that asks for nothing, or for the gate on."""
    with pytest.raises(Exception) as failure:
        pods.run_pod("runcell-widened", annotations={"run.runcell.gate": "off"})
    message = str(failure.value).replace('\\"', '"')
    assert ("annotation run.runcell.gate asks for a cell with the gate off, less isolation than "
            "the runcell-cell handler gives (a cell with the gate on)") in message, message
    for annotations in (None, {"run.runcell.gate": "on"}):
        pod_id, pod_cfg = pods.run_pod("runcell-widened", annotations=annotations)
        cid = pods.run_container(pod_id, pod_cfg, ["sleep", "1000"])
        st = cri.cri_client.wait_container_state(cid, CONTAINER_RUNNING)
        assert st["state"] == CONTAINER_RUNNING, st
        assert mode_annotations(pods, pod_id) == ("cell", "on")
        assert mode_annotations(pods, cid) == ("cell", "on")
