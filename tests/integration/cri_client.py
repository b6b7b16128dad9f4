"""A minimal CRI client (the kubelet's side of the CRI gRPC API, runtime.v1) for tests.

Debian 12 packages neither crictl nor the CRI protobuf definitions, so the few messages the
tests need are encoded and decoded here by hand with the field numbers of
k8s.io/cri-api's api.proto (runtime.v1), and sent with python3-grpcio's generic unary
calls over containerd's socket.
"""
import json
import time

try:
    import grpc
except ImportError:  # reported by cri_missing()
    grpc = None

SERVICE = "/runtime.v1.RuntimeService/"

# NamespaceMode
POD, CONTAINER, NODE = 0, 1, 2
# ContainerState
CONTAINER_CREATED, CONTAINER_RUNNING, CONTAINER_EXITED, CONTAINER_UNKNOWN = 0, 1, 2, 3


def cri_missing():
    if grpc is None:
        return "python3-grpcio is not installed (scripts/install-deps.sh)"
    return None


# --- protobuf wire format -------------------------------------------------------------


def _varint(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(field, value):
    return _varint(field << 3) + _varint(int(value))


def f_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def f_map(field, mapping):
    """A map<string,string> field: one entry message (key=1, value=2) per pair."""
    return b"".join(f_bytes(field, f_bytes(1, k) + f_bytes(2, v)) for k, v in mapping.items())


def decode(data):
    """{field number: [values]}: varints as int, length-delimited as bytes."""
    fields = {}
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
        elif wire == 2:
            length, i = _read_varint(data, i)
            value = data[i:i + length]
            i += length
        elif wire == 1:
            value = data[i:i + 8]
            i += 8
        elif wire == 5:
            value = data[i:i + 4]
            i += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.setdefault(field, []).append(value)
    return fields


def _read_varint(data, i):
    shift = result = 0
    while True:
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def decode_map(entries):
    result = {}
    for entry in entries:
        kv = decode(entry)
        result[kv.get(1, [b""])[0].decode()] = kv.get(2, [b""])[0].decode()
    return result


def _first(fields, n, default=None):
    return fields.get(n, [default])[0]


# --- messages -------------------------------------------------------------------------


def pod_sandbox_config(name, uid, namespace, log_dir, annotations=None, host_network=True,
                       cgroup_parent=None, privileged=False):
    """cgroup_parent: LinuxPodSandboxConfig.cgroup_parent, e.g. the kubelet's systemd
    driver's "kubepods-besteffort-pod<uid with underscores>.slice"; privileged: the pod may
    hold privileged containers (the kubelet sets it when one of them is)."""
    metadata = f_bytes(1, name) + f_bytes(2, uid) + f_bytes(3, namespace)
    # LinuxPodSandboxConfig.security_context(2).namespace_options(1)
    ns_opts = f_varint(1, NODE if host_network else POD) + f_varint(2, POD) + f_varint(3, POD)
    security = f_bytes(1, ns_opts) + (f_varint(6, 1) if privileged else b"")
    linux = f_bytes(2, security)
    if cgroup_parent:
        linux = f_bytes(1, cgroup_parent) + linux
    msg = f_bytes(1, metadata) + f_bytes(3, str(log_dir)) + f_bytes(8, linux)
    if not host_network:
        msg += f_bytes(2, name)
    if annotations:
        msg += f_map(7, annotations)
    return msg


def linux_container_resources(cpu_period=0, cpu_quota=0, cpu_shares=0,
                              memory_limit_in_bytes=0):
    """A LinuxContainerResources message (0: not specified, as in the proto)."""
    msg = b""
    for field, value in ((1, cpu_period), (2, cpu_quota), (3, cpu_shares),
                         (4, memory_limit_in_bytes)):
        if value:
            msg += f_varint(field, value)
    return msg


# SecurityProfile.ProfileType
RUNTIME_DEFAULT, UNCONFINED, LOCALHOST = 0, 1, 2


def linux_security_context(run_as_user=None, run_as_group=None, supplemental_groups=(),
                           readonly_rootfs=False, cap_add=(), cap_drop=(), privileged=False,
                           no_new_privs=False, pid=None, seccomp=None):
    """A LinuxContainerSecurityContext message, as the kubelet fills it from a pod's
    securityContext (pid: the NamespaceMode of the container's pid namespace; seccomp: a
    ProfileType)."""
    msg = b""
    if cap_add or cap_drop:
        msg += f_bytes(1, b"".join(f_bytes(1, c) for c in cap_add)
                       + b"".join(f_bytes(2, c) for c in cap_drop))
    if privileged:
        msg += f_varint(2, 1)
    if pid is not None:
        # NamespaceOption: network and ipc POD (the pod's), pid as asked
        msg += f_bytes(3, f_varint(1, POD) + f_varint(2, pid) + f_varint(3, POD))
    if run_as_user is not None:
        msg += f_bytes(5, f_varint(1, run_as_user))  # Int64Value
    if readonly_rootfs:
        msg += f_varint(7, 1)
    msg += b"".join(f_varint(8, g) for g in supplemental_groups)
    if no_new_privs:
        msg += f_varint(11, 1)
    if run_as_group is not None:
        msg += f_bytes(12, f_varint(1, run_as_group))
    if seccomp is not None:
        msg += f_bytes(15, f_varint(1, seccomp) if seccomp else b"")
    return msg


def mount(container_path, host_path, readonly=False):
    """A Mount message (a hostPath volume)."""
    msg = f_bytes(1, container_path) + f_bytes(2, str(host_path))
    if readonly:
        msg += f_varint(3, 1)
    return msg


def container_config(name, image, command, log_path, annotations=None, resources=None,
                     security_context=None, envs=None, working_dir=None, mounts=(), attempt=0):
    """resources: a linux_container_resources() message, as
    ContainerConfig.linux(15).resources(1); security_context: a linux_security_context()
    message, as linux(15).security_context(2); envs: {name: value}; mounts: mount()
    messages."""
    metadata = f_bytes(1, name) + (f_varint(2, attempt) if attempt else b"")
    msg = f_bytes(1, metadata) + f_bytes(2, f_bytes(1, image))
    msg += b"".join(f_bytes(3, c) for c in command)
    if working_dir:
        msg += f_bytes(5, working_dir)
    for key, value in (envs or {}).items():
        msg += f_bytes(6, f_bytes(1, key) + f_bytes(2, value))
    msg += b"".join(f_bytes(7, m) for m in mounts)
    msg += f_bytes(11, log_path)
    if annotations:
        msg += f_map(10, annotations)
    linux = b""
    if resources is not None:
        linux += f_bytes(1, resources)
    if security_context is not None:
        linux += f_bytes(2, security_context)
    if linux:
        msg += f_bytes(15, linux)
    return msg


class CriClient:
    def __init__(self, socket_path, timeout=60):
        self.channel = grpc.insecure_channel(f"unix://{socket_path}")
        self.timeout = timeout

    def close(self):
        self.channel.close()

    def call(self, method, request):
        fn = self.channel.unary_unary(SERVICE + method)
        return decode(fn(request, timeout=self.timeout))

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.status()
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def status(self):
        """StatusResponse.info (verbose): containerd's CRI config as JSON under "config"."""
        resp = self.call("Status", f_varint(1, 1))
        return decode_map(resp.get(2, []))

    def run_pod_sandbox(self, config, handler):
        resp = self.call("RunPodSandbox", f_bytes(1, config) + f_bytes(2, handler))
        return _first(resp, 1).decode()

    def stop_pod_sandbox(self, pod_id):
        self.call("StopPodSandbox", f_bytes(1, pod_id))

    def remove_pod_sandbox(self, pod_id):
        self.call("RemovePodSandbox", f_bytes(1, pod_id))

    def pod_sandbox_status(self, pod_id):
        resp = self.call("PodSandboxStatus", f_bytes(1, pod_id) + f_varint(2, 1))
        status = decode(_first(resp, 1, b""))
        info = decode_map(resp.get(2, []))
        return {
            "id": _first(status, 1, b"").decode(),
            "state": _first(status, 3, 0),
            "runtime_handler": _first(status, 9, b"").decode(),
            "info": json.loads(info["info"]) if "info" in info else {},
        }

    def create_container(self, pod_id, config, sandbox_config):
        resp = self.call(
            "CreateContainer", f_bytes(1, pod_id) + f_bytes(2, config) + f_bytes(3, sandbox_config)
        )
        return _first(resp, 1).decode()

    def start_container(self, cid):
        self.call("StartContainer", f_bytes(1, cid))

    def stop_container(self, cid, timeout=0):
        self.call("StopContainer", f_bytes(1, cid) + f_varint(2, timeout))

    def remove_container(self, cid):
        self.call("RemoveContainer", f_bytes(1, cid))

    def exec_sync(self, cid, cmd, timeout=10):
        """ExecSync: (exit code, stdout, stderr) of cmd (a list) run in the container."""
        resp = self.call("ExecSync", f_bytes(1, cid) + b"".join(f_bytes(2, c) for c in cmd)
                         + f_varint(3, timeout))
        code = _first(resp, 3, 0)
        if code >= 1 << 63:
            code -= 1 << 64
        return (code, _first(resp, 1, b"").decode(errors="replace"),
                _first(resp, 2, b"").decode(errors="replace"))

    def update_container_resources(self, cid, resources):
        """UpdateContainerResources with a linux_container_resources() message."""
        self.call("UpdateContainerResources", f_bytes(1, cid) + f_bytes(2, resources))

    def container_stats(self, cid):
        """ContainerStats: cumulative CPU time (ns) and the memory working set and usage
        (bytes), None where the runtime reported none."""
        stats = decode(_first(self.call("ContainerStats", f_bytes(1, cid)), 1, b""))

        def value(usage, field):
            wrapped = _first(decode(usage), field) if usage is not None else None
            return _first(decode(wrapped), 1, 0) if wrapped is not None else None

        cpu, memory = _first(stats, 2), _first(stats, 3)
        return {"cpu_ns": value(cpu, 2), "working_set": value(memory, 2),
                "usage": value(memory, 4)}

    def container_status(self, cid):
        resp = self.call("ContainerStatus", f_bytes(1, cid) + f_varint(2, 1))
        status = decode(_first(resp, 1, b""))
        info = decode_map(resp.get(2, []))
        exit_code = _first(status, 7, 0)
        if exit_code >= 1 << 63:
            exit_code -= 1 << 64
        return {
            "id": _first(status, 1, b"").decode(),
            "state": _first(status, 3, 0),
            "exit_code": exit_code,
            "reason": _first(status, 10, b"").decode(),
            "message": _first(status, 11, b"").decode(),
            "info": json.loads(info["info"]) if "info" in info else {},
        }

    def wait_container_state(self, cid, state, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            st = self.container_status(cid)
            if st["state"] == state or time.monotonic() > deadline:
                return st
            time.sleep(0.1)
