"""A real containerd (Debian's package) for the tests, never the machine's own.

Each Containerd has its own config, root, state directory and sockets under a test
directory. start() launches it and waits until it answers on its socket; stop() removes
what the tests left (tasks, containers, snapshot mounts), ends containerd by pid and the
shims it started (by the pids they recorded in their bundle directories), and checks
nothing is still mounted under its directory.

The runc v2 shim calls the runtime with `--root /run/containerd/runc/<namespace>` (its
default), so each user of a Containerd takes its own namespace and its runtime state
directory is known.

`wrap` (optional) runs containerd inside something else: a function given containerd's
argv that returns the argv to start (e.g. systemd_harness's argv(), which enters a private
systemd's namespaces). containerd is then a descendant of the process started; stop()
signals containerd itself, found among those descendants, and leaves the host's
/run/containerd/runc alone (the shim's runtime root is then the wrapper's, not the host's).
"""
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from helpers import Result, mounts_under, process_alive, run

CONTAINERD = Path("/usr/bin/containerd")
CTR = Path("/usr/bin/ctr")
SHIM_RUNTIME_ROOT = Path("/run/containerd/runc")
RUNC_V2 = "io.containerd.runc.v2"


def containerd_missing():
    """Why containerd tests cannot run here, or None."""
    for tool in (CONTAINERD, CTR, Path("/usr/bin/containerd-shim-runc-v2")):
        if not os.access(tool, os.X_OK):
            return f"{tool} is not installed (apt-get install containerd; scripts/install-deps.sh)"
    return None


def base_config(base, disable_cri=True, imports=()):
    """containerd's config (version 2) keeping everything under base."""
    disabled = '["io.containerd.grpc.v1.cri"]' if disable_cri else "[]"
    imported = ", ".join(f'"{p}"' for p in imports)
    return f"""version = 2
imports = [{imported}]
root = "{base}/root"
state = "{base}/state"
disabled_plugins = {disabled}

[grpc]
  address = "{base}/containerd.sock"

[ttrpc]
  address = "{base}/containerd.sock.ttrpc"

[debug]
  level = "debug"

[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/opt"
"""


class Containerd:
    def __init__(self, base, extra_config="", disable_cri=True, imports=(), wrap=None):
        self.base = Path(base)
        self.wrap = wrap
        self.base.mkdir(parents=True, exist_ok=True)
        self.socket = self.base / "containerd.sock"
        self.config_path = self.base / "config.toml"
        self.log_path = self.base / "containerd.log"
        self.config_path.write_text(base_config(self.base, disable_cri, imports) + extra_config)
        self.proc = None
        self.namespaces = set()

    # --- lifetime
    def start(self, timeout=30):
        log = open(self.log_path, "ab")
        argv = [str(CONTAINERD), "--config", str(self.config_path)]
        self.proc = subprocess.Popen(
            self.wrap(argv) if self.wrap else argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"containerd exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            if self.socket.exists() and self.ctr("version", namespace="default", timeout=10).rc == 0:
                return self
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"containerd did not answer within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def daemon_pid(self):
        """containerd's own (host) pid: the process started, or with `wrap` the first
        descendant of it whose argv[0] is containerd; None when it is gone."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        if self.wrap is None:
            return self.proc.pid
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop(0)
            try:
                argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if argv0 == str(CONTAINERD).encode() and process_alive(pid):
                return pid
            for task in Path(f"/proc/{pid}/task").glob("*"):
                try:
                    todo += [int(c) for c in (task / "children").read_text().split()]
                except OSError:
                    pass
        return None

    def shim_pids(self):
        """Pids of the shims this containerd started: containerd-shim-runc-v2 processes
        whose -address is this containerd's own socket (unique to the test)."""
        pids = []
        want = ["-address", str(self.socket)]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode().split("\0")
            except (OSError, UnicodeDecodeError):
                continue
            if not argv or not argv[0].endswith("containerd-shim-runc-v2"):
                continue
            if any(argv[i:i + 2] == want for i in range(len(argv) - 1)):
                if process_alive(int(entry)):
                    pids.append(int(entry))
        return pids

    def stop(self):
        """Stops containerd and its shims; returns a list of problems left behind."""
        problems = []
        for ns in sorted(self.namespaces):
            problems += self.remove_all(ns)
        shims = self.shim_pids()
        if self.proc is not None and self.proc.poll() is None:
            daemon = self.daemon_pid()
            if daemon is not None:
                os.kill(daemon, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                if self.wrap is not None:
                    problems.append("containerd did not end on SIGTERM")
                    daemon = self.daemon_pid()
                    if daemon is not None:
                        os.kill(daemon, signal.SIGKILL)
                    try:
                        self.proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        pass
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()
        for pid in shims:
            if process_alive(pid):
                problems.append(f"shim {pid} still running after its tasks were deleted")
                os.kill(pid, signal.SIGKILL)
        for mp in sorted(mounts_under(self.base), key=len, reverse=True):
            problems.append(f"mount {mp}")
            subprocess.run(["umount", "-l", mp], capture_output=True)
        if self.wrap is None:
            for ns in self.namespaces:
                shutil.rmtree(SHIM_RUNTIME_ROOT / ns, ignore_errors=True)
        return problems

    # --- ctr
    def ctr(self, *args, namespace, timeout=60, input=None, env=None):
        return run(
            CTR,
            "--address",
            self.socket,
            "--namespace",
            namespace,
            *args,
            timeout=timeout,
            input=input,
            env=env,
        )

    def new_namespace(self):
        ns = f"rct-{secrets.token_hex(4)}"
        self.namespaces.add(ns)
        return ns

    def remove_all(self, ns):
        """Kills and deletes every task and container left in a namespace."""
        problems = []
        tasks = self.ctr("task", "ls", "-q", namespace=ns, timeout=30)
        for tid in tasks.out.split():
            problems.append(f"task {tid} left in namespace {ns}")
            self.ctr("task", "kill", "-s", "KILL", tid, namespace=ns, timeout=30)
            self.wait_task_status(ns, tid, "STOPPED", timeout=10)
            self.ctr("task", "delete", "--force", tid, namespace=ns, timeout=30)
        conts = self.ctr("container", "ls", "-q", namespace=ns, timeout=30)
        for cid in conts.out.split():
            problems.append(f"container {cid} left in namespace {ns}")
            self.ctr("container", "rm", cid, namespace=ns, timeout=30)
        return problems

    def task_status(self, ns, tid):
        res = self.ctr("task", "ls", namespace=ns, timeout=30)
        for line in res.out.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == tid:
                return fields[2] if len(fields) > 2 else None
        return None

    def wait_task_status(self, ns, tid, status, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self.task_status(ns, tid)
            if current == status:
                return True
            time.sleep(0.05)
        return False

    def plugins(self):
        """{plugin id: status} from `ctr plugins ls`."""
        res = self.ctr("plugins", "ls", namespace="default", timeout=30)
        assert res.rc == 0, res.describe()
        result = {}
        for line in res.out.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 4:
                result[f"{fields[0]}.{fields[1]}"] = fields[-1]
        return result


def runtime_state_dirs(ns):
    """Container ids that still have runtime state under the shim's --root."""
    root = SHIM_RUNTIME_ROOT / ns
    try:
        return sorted(os.listdir(root))
    except FileNotFoundError:
        return []


def log_json_messages(path):
    """The "msg" of each JSON line of a runtime's log.json."""
    msgs = []
    try:
        for line in Path(path).read_text().splitlines():
            try:
                msgs.append(json.loads(line).get("msg", ""))
            except ValueError:
                pass
    except OSError:
        pass
    return msgs


__all__ = [
    "Containerd",
    "Result",
    "RUNC_V2",
    "containerd_missing",
    "runtime_state_dirs",
    "log_json_messages",
]
