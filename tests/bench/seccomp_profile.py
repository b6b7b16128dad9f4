"""The default seccomp profile container engines give runc, as an OCI linux.seccomp.

Docker's default profile, as Debian's containers-common ships it for podman
(/usr/share/containers/seccomp.json), is written in the engines' own format: rules
carry includes/excludes by capability, architecture and kernel version, and the engine
turns it into the config.json runc gets. This does the same, the way containers/common's
seccomp package does, for this machine's architecture and a bundle's capabilities. The
syscall benchmark uses it for the column a cell's gate is honestly compared with: runc
as Docker or podman run it, with a filter, rather than bare runc with none.
"""
import json
import os
import platform

PROFILE_PATHS = ["/usr/share/containers/seccomp.json"]

# the profile's architecture names (Go's) and libseccomp's, per machine
ARCHES = {
    "x86_64": ("amd64", ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
    "aarch64": ("arm64", ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]),
}


def find_profile():
    """The path of the default profile on this machine, or None."""
    for path in PROFILE_PATHS:
        if os.path.isfile(path):
            return path
    return None


def _kernel_version():
    parts = platform.release().split("-")[0].split(".")
    return tuple(int(p) for p in parts[:2] if p.isdigit())


def _at_least(min_kernel):
    want = tuple(int(p) for p in str(min_kernel).split(".")[:2])
    return _kernel_version() >= want


def to_oci(profile, capabilities, machine=None):
    """linux.seccomp for a container with these (bounding) capabilities. Raises
    ValueError when the profile does not know this machine's architecture."""
    machine = machine or platform.machine()
    if machine not in ARCHES:
        raise ValueError("no architecture mapping for %s" % machine)
    goarch, scmp_arches = ARCHES[machine]
    caps = set(capabilities)
    out = {"defaultAction": profile["defaultAction"], "architectures": scmp_arches,
           "syscalls": []}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    for rule in profile.get("syscalls", []):
        inc = rule.get("includes") or {}
        exc = rule.get("excludes") or {}
        if inc.get("arches") and goarch not in inc["arches"]:
            continue
        if inc.get("caps") and not set(inc["caps"]) <= caps:
            continue
        if inc.get("minKernel") and not _at_least(inc["minKernel"]):
            continue
        if exc.get("arches") and goarch in exc["arches"]:
            continue
        if exc.get("caps") and set(exc["caps"]) & caps:
            continue
        entry = {"names": rule["names"], "action": rule["action"]}
        if rule.get("args"):
            entry["args"] = [{k: a[k] for k in ("index", "value", "valueTwo", "op") if k in a}
                             for a in rule["args"]]
        if "errnoRet" in rule:
            entry["errnoRet"] = rule["errnoRet"]
        out["syscalls"].append(entry)
    return out


def apply(cfg, path):
    """Puts the default profile at path into the config (a dict), for its capabilities."""
    with open(path) as f:
        profile = json.load(f)
    caps = cfg.get("process", {}).get("capabilities", {}).get("bounding", [])
    cfg.setdefault("linux", {})["seccomp"] = to_oci(profile, caps)
