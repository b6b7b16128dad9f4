"""The cell's syscall gate (src/cell/gate_policy.c, gate.c; docs/cell-gate.md).

The probe (tests/helpers/syscall_probe.c, built as runcell-syscall-probe) makes raw
syscalls with harmless, deliberately invalid arguments and prints what came back. It runs
in a bundle with every capability runcell itself holds, twice: in a cell (the bundle
suite's `run.runcell.gate: off` annotation removed, so the gate is on by default) and
natively (gate off). Every syscall the policy denies must get exactly the policy's errno
in the cell and something else natively, which is what shows the test can fail.

The expectations come from gate_policy.c itself (its D(...) and C(...) entries), so a
denial added there without a probe case fails here.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import CAP_NUMBERS, NATIVE_ANNOTATIONS, REPO, Runtime, run

pytestmark = pytest.mark.runcell_specific

POLICY = REPO / "src" / "cell" / "gate_policy.c"
PROBE_SOURCE = REPO / "tests" / "helpers" / "syscall_probe.c"
PROBE_IN_ROOTFS = "/bin/probe"
# Denied syscalls that only exist for i386 programs: the probe reports them absent.
I386_ONLY = {"stime", "socketcall"}


def policy_entries(kind):
    """{syscall: errno name} of the policy's D(...) ("D") or C(...) ("C") entries."""
    text = POLICY.read_text()
    found = dict(re.findall(r'\b' + kind + r'\(\s*"(\w+)",\s*(E[A-Z0-9]+)\s*,', text))
    assert found, f"no {kind}(...) entries parsed from {POLICY}"
    return found


DENIED = policy_entries("D")
CHECKED = policy_entries("C")

# The argument-checked syscalls: per probe variant, what a cell must answer. "ok" variants
# must work in a cell (and natively); the others are refused, with the policy's errno for
# that syscall unless the gate answers a more precise one (named here, from gate.c).
VARIANTS = {
    "clone": {
        "clone:fork": "ok",
        "clone:io": "ok",  # CLONE_IO is not a namespace flag
        "clone:newns": "policy",
        "clone:newcgroup": "policy",
        "clone:newuts": "policy",
        "clone:newipc": "policy",
        "clone:newuser": "policy",
        "clone:newpid": "policy",
        "clone:newnet": "policy",
    },
    "socket": {
        "socket:unix": "ok",
        "socket:inet": "ok",
        "socket:inet6": "ok",
        "socket:netlink_route": "ok",
        "socket:packet": "policy",
        # AF_INET's old SOCK_PACKET type: the kernel makes a packet socket of it
        "socket:inet_packet": "policy",
        # a netlink protocol other than NETLINK_ROUTE: the family exists, the protocol not
        "socket:netlink_generic": "EPROTONOSUPPORT",
    },
    "socketpair": {"socketpair:unix": "ok", "socketpair:inet": "policy"},
    "ioctl": {
        "ioctl:tcgets": "ok",
        "ioctl:fionread": "ok",
        "ioctl:siocgifmap": "policy",  # not on the vetted list: ENOTTY
        "ioctl:tiocsti": "EPERM",  # refused outright
    },
    "personality": {
        "personality:query": "ok",  # personality(0xffffffff)
        "personality:linux": "ok",
        "personality:linux32": "ok",
        "personality:addr_no_randomize": "policy",
        "personality:read_implies_exec": "policy",
    },
}


# ---------------------------------------------------------------------------------------
# The probe and its bundles


@pytest.fixture(scope="module")
def probe_bin(runcell_bin, session_dir):
    """runcell-syscall-probe from the build directory next to the binary under test, or
    built here with gcc -static."""
    built = Path(runcell_bin).resolve().parent / "runcell-syscall-probe"
    if built.is_file() and os.access(built, os.X_OK):
        return built
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip(f"no {built} and no gcc to build {PROBE_SOURCE}")
    out = session_dir / "runcell-syscall-probe"
    res = subprocess.run([gcc, "-static", "-O2", "-D_GNU_SOURCE", "-pthread", "-o", str(out),
                          str(PROBE_SOURCE)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot build the probe statically here (static glibc missing?): "
                    f"{res.stderr.strip()}")
    return out


def held_capabilities():
    """Every capability runcell itself holds (a sandboxed host may lack a few): the
    container gets them all, so native permission checks do not mask the gate."""
    with open("/proc/self/status") as f:
        bnd = int(next(line for line in f if line.startswith("CapBnd:")).split()[1], 16)
    return [f"CAP_{name}" for name, bit in CAP_NUMBERS.items() if bnd >> bit & 1]


def set_gate(bundle, gate):
    """gate True: a cell as runcell runs it by default (no annotation); False: native;
    a string: that annotation value."""
    annotations = {k: v for k, v in bundle.config.get("annotations", {}).items()
                   if k not in NATIVE_ANNOTATIONS}
    if gate is False:
        annotations.update(NATIVE_ANNOTATIONS)
    elif isinstance(gate, str):
        annotations["run.runcell.gate"] = gate
    bundle.config["annotations"] = annotations
    return bundle


def all_capabilities(bundle):
    caps = held_capabilities()
    for kind in ("bounding", "effective", "permitted", "ambient"):
        bundle.process["capabilities"][kind] = list(caps)
    return bundle


def probe_bundle(h, probe_bin, gate):
    bundle = h.bundle()
    shutil.copy2(probe_bin, bundle.rootfs / PROBE_IN_ROOTFS.lstrip("/"))
    return set_gate(all_capabilities(bundle), gate)


def parse_probe(out):
    answers = {}
    for line in out.splitlines():
        name, _, answer = line.partition(" ")
        answers[name] = answer
    return answers


def run_probe(h, probe_bin, names, gate, configure=None):
    bundle = probe_bundle(h, probe_bin, gate)
    if configure:
        configure(bundle)
    bundle.args(PROBE_IN_ROOTFS, *names)
    res = h.run_container(bundle)
    assert res.rc == 0, f"probe ({'cell' if gate else 'native'}): {res.describe()}"
    answers = parse_probe(res.out)
    unknown = [n for n in names if answers.get(n) == "unknown"]
    assert not unknown, f"tests/helpers/syscall_probe.c has no case for {unknown}"
    assert set(answers) == set(names), res.describe()
    return answers


def both(h, probe_bin, names, configure=None):
    return (run_probe(h, probe_bin, names, True, configure),
            run_probe(h, probe_bin, names, False, configure))


# ---------------------------------------------------------------------------------------
# The policy, call by call


def _modules_disabled():
    try:
        return Path("/proc/sys/kernel/modules_disabled").read_text().strip() == "1"
    except OSError:
        return False


# Syscalls this host refuses to every process, CAP_SYS_MODULE or not (kernel.modules_disabled
# = 1: EPERM natively too), so a native run cannot show that the probe tells the gate apart.
HOST_REFUSES = {"init_module", "finit_module"} if _modules_disabled() else set()


def test_every_denied_syscall_gets_the_policy_errno(h, probe_bin):
    names = sorted(DENIED)
    cell, native = both(h, probe_bin, names)
    problems = []
    for name in names:
        if name in I386_ONLY:
            if cell[name] != "absent":
                problems.append(f"{name}: expected no such syscall on this architecture, "
                                f"got {cell[name]}")
            continue
        want = DENIED[name]
        if cell[name] != want:
            problems.append(f"{name}: cell answered {cell[name]}, the policy says {want}")
        if name in HOST_REFUSES and native[name] == want:
            continue  # the host refuses it itself: only the cell's answer says anything
        if native[name] == want or native[name].startswith(("skip", "absent")):
            problems.append(f"{name}: natively {native[name]}, which does not tell the gate's "
                            f"{want} apart (pick other probe arguments)")
    assert not problems, "\n".join(problems)


def test_every_checked_syscall_has_variants():
    """Each argument-checked syscall of the policy is probed, allowed and refused."""
    assert set(VARIANTS) == set(CHECKED), (
        f"policy C(...) entries {sorted(CHECKED)} vs probed {sorted(VARIANTS)}")
    for name, cases in VARIANTS.items():
        assert "ok" in cases.values(), f"{name}: no allowed variant probed"
        assert set(cases.values()) - {"ok"}, f"{name}: no refused variant probed"


def test_argument_checked_syscalls(h, probe_bin):
    expected = {}
    for syscall, cases in VARIANTS.items():
        for variant, want in cases.items():
            expected[variant] = CHECKED[syscall] if want == "policy" else want
    names = sorted(expected)
    cell, native = both(h, probe_bin, names)
    problems = []
    for name in names:
        want = expected[name]
        if name == "socket:inet6" and native[name] != "ok":
            continue  # IPv6 is off on this host: nothing to compare
        if cell[name] != want:
            problems.append(f"{name}: cell answered {cell[name]}, expected {want}")
        if want == "ok" and native[name] != "ok":
            problems.append(f"{name}: natively {native[name]}: the probe case itself fails")
        if want != "ok" and native[name] == want:
            problems.append(f"{name}: natively {native[name]} too: the test cannot tell")
    assert not problems, "\n".join(problems)


def test_allowed_syscalls_newer_than_libseccomp(h, probe_bin):
    """mseal is on the allow-list, but Debian 12's libseccomp cannot name it: the gate adds
    it by number (before, it answered ENOSYS in a cell)."""
    cell, native = both(h, probe_bin, ["mseal"])
    if native["mseal"] == "ENOSYS":
        pytest.skip("this kernel has no mseal (Linux 6.10+)")
    assert (cell["mseal"], native["mseal"]) == ("ok", "ok")


def test_i386_socketcall_cannot_make_sockets(h, probe_bin):
    """A 64-bit program's int $0x80 socketcall, as a 32-bit one makes it: libseccomp turns
    the allowed socket rules into socketcall rules, whose family sits in memory where no
    filter reads it (before the argument filter refused them, AF_VSOCK and every netlink
    protocol got through). Making sockets through it is refused; sub-calls on sockets that
    exist are not."""
    expected = {"i386:socketcall_socket": "ENOSYS", "i386:socketcall_socketpair": "ENOSYS",
                "i386:socketcall_getsockopt": "ok"}
    names = sorted(expected)
    cell, native = both(h, probe_bin, names)
    if any(native[n] == "absent" for n in names):
        pytest.skip("this kernel takes no i386 calls (no IA32 emulation)")
    problems = []
    for name, want in expected.items():
        if cell[name] != want:
            problems.append(f"{name}: cell answered {cell[name]}, expected {want}")
        if native[name] != "ok":
            problems.append(f"{name}: natively {native[name]}: the probe case itself fails")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------
# Where the gate applies, and how it is chosen


def annotations_of(h, cid):
    return h.state(cid).get("annotations", {})


@pytest.mark.parametrize("gate", [True, False], ids=["cell", "native"])
def test_state_shows_mode_and_gate(h, bundle, gate):
    set_gate(bundle, gate).args("sleep", "30")
    cid = h.run_detached(bundle)
    annotations = annotations_of(h, cid)
    assert annotations.get("run.runcell.mode") == "cell", annotations
    assert annotations.get("run.runcell.gate") == ("on" if gate else "off"), annotations
    # the gate's two filters (names and arguments) are in place exactly in the cell
    status = h("exec", cid, "cat", "/proc/self/status")
    assert status.rc == 0, status.describe()
    filters = re.search(r"^Seccomp_filters:\s*(\d+)", status.out, re.M)
    assert filters, status.out
    assert int(filters.group(1)) == (2 if gate else 0), status.out
    assert h.kill(cid, "KILL").rc == 0
    h.wait_status(cid, "stopped")


def test_gate_annotation_on_is_a_cell(h, bundle):
    set_gate(bundle, "on").args("true")
    cid = h.create_ok(bundle)
    assert annotations_of(h, cid).get("run.runcell.gate") == "on"


def assert_nothing_left(h, cid):
    assert not (h.rt.root / cid).exists(), f"state directory of {cid} left behind"
    listed = h("list", "-q")
    assert listed.rc == 0, listed.describe()
    assert cid not in listed.out.split()
    assert h("state", cid).rc != 0


@pytest.mark.parametrize("key,value,message", [
    ("run.runcell.gate", "maybe",
     'config.json: annotations: run.runcell.gate: must be "on" or "off", got "maybe"'),
    ("run.runcell.gate", "", 'config.json: annotations: run.runcell.gate: must be "on" or '
     '"off", got ""'),
    ("run.runcell.mode", "vm",
     'config.json: annotations: run.runcell.mode: must be "cell" or "microvm", got "vm"'),
])
def test_invalid_annotation_is_refused(h, bundle, key, value, message):
    bundle.config["annotations"][key] = value
    bundle.args("true")
    cid = h.new_id()
    res = h.create(bundle, cid)
    assert res.rc != 0, res.describe()
    assert res.msg == message, res.describe()
    assert_nothing_left(h, cid)


def expected_microvm_refusal(cid, source):
    """What create says on a host whose /dev/kvm cannot boot a microVM (this one: PVM); None
    where KVM is usable (the microVM lane tests cover that mode end to end)."""
    prefix = f"container {cid}: microvm mode (chosen by {source}): "
    if Path("/sys/module/kvm_pvm").exists():
        return prefix + ("microVM mode needs hardware virtualization: /dev/kvm here is PVM "
                         "(kvm_pvm), which cannot boot a stock Linux guest kernel")
    if not Path("/dev/kvm").exists():
        return prefix
    return None


def test_microvm_annotation_on_a_host_without_usable_kvm(h, bundle):
    set_gate(bundle, True).config["annotations"]["run.runcell.mode"] = "microvm"
    bundle.args("true")
    cid = h.new_id()
    want = expected_microvm_refusal(cid, "annotation run.runcell.mode")
    if want is None:
        pytest.skip("this host's /dev/kvm is usable: microVMs run here")
    res = h.create(bundle, cid)
    assert res.rc != 0, res.describe()
    assert res.msg.startswith(want), res.describe()
    assert_nothing_left(h, cid)


def test_log_records_the_mode(h, bundle):
    log = h.workdir / "log.json"
    set_gate(bundle, True).args("true")
    bundle.write()
    cid = h.new_id()
    res = h("--log", log, "--log-format", "json", "run", "--bundle", bundle.path, cid)
    assert res.rc == 0, res.describe()
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    wanted = (f"container {cid}: cell mode (default), gate on (default),"
              " cell kernel placement notify")
    assert any(r.get("msg") == wanted and r.get("level") == "info" for r in records), records


def create_as(h, bundle, runcell_bin, handler, annotations=None):
    """`create` of a cell bundle (plus annotations) by runcell invoked as a handler's name
    (a symlink, as `cmake --install` makes them). Returns (id, result)."""
    link = h.workdir / handler
    if not link.exists():
        os.symlink(runcell_bin, link)
    set_gate(bundle, True).args("true")
    bundle.config["annotations"].update(annotations or {})
    bundle.write()
    cid = h.new_id()
    return cid, run(Runtime(link, h.rt.root), "create", "--bundle", bundle.path, cid)


@pytest.mark.parametrize("handler,gate", [
    ("runcell-native", "off"),
    ("runcell-cell", "on"),
])
def test_runtime_handler_chooses_the_gate(h, bundle, runcell_bin, handler, gate):
    cid, res = create_as(h, bundle, runcell_bin, handler)  # no annotation: the handler decides
    assert res.rc == 0, res.describe()
    annotations = annotations_of(h, cid)
    assert annotations.get("run.runcell.mode") == "cell", annotations
    assert annotations.get("run.runcell.gate") == gate, annotations


def test_runtime_handler_microvm_on_a_host_without_usable_kvm(h, bundle, runcell_bin):
    if expected_microvm_refusal("x", "y") is None:
        pytest.skip("this host's /dev/kvm is usable: microVMs run here")
    cid, res = create_as(h, bundle, runcell_bin, "runcell-microvm")
    want = expected_microvm_refusal(cid, "handler runcell-microvm")
    assert res.rc != 0, res.describe()
    assert res.msg.startswith(want), res.describe()
    assert_nothing_left(h, cid)


@pytest.mark.parametrize("annotation", ["io.kubernetes.cri.container-type",
                                        "io.kubernetes.cri-o.ContainerType"])
def test_a_kubernetes_sandbox_is_always_a_cell(h, bundle, runcell_bin, annotation):
    """Under a microVM handler a pod's sandbox (pause) container still runs as a cell."""
    cid, res = create_as(h, bundle, runcell_bin, "runcell-microvm", {annotation: "sandbox"})
    assert res.rc == 0, res.describe()
    annotations = annotations_of(h, cid)
    assert annotations.get("run.runcell.mode") == "cell", annotations
    assert annotations.get("run.runcell.gate") == "on", annotations


FLOOR_TAIL = (": it lets an annotation ask only for more (the runcell-native handler is the "
              "one for cells with the gate off)")


@pytest.mark.parametrize("handler,annotations,sandbox,message", [
    ("runcell-cell", {"run.runcell.gate": "off"}, False,
     "annotation run.runcell.gate asks for a cell with the gate off, less isolation than the "
     "runcell-cell handler gives (a cell with the gate on)"),
    ("runcell-microvm", {"run.runcell.mode": "cell"}, False,
     "annotation run.runcell.mode asks for a cell with the gate on, less isolation than the "
     "runcell-microvm handler gives (a microVM)"),
    ("runcell-microvm", {"run.runcell.mode": "cell", "run.runcell.gate": "off"}, False,
     "annotations run.runcell.mode and run.runcell.gate ask for a cell with the gate off, less "
     "isolation than the runcell-microvm handler gives (a microVM)"),
    # a sandbox is a cell under every handler, but not one without its gate
    ("runcell-microvm", {"run.runcell.gate": "off"}, True,
     "annotation run.runcell.gate asks for a cell with the gate off, less isolation than the "
     "runcell-microvm handler gives (a microVM)"),
    ("runcell-cell", {"run.runcell.gate": "off"}, True,
     "annotation run.runcell.gate asks for a cell with the gate off, less isolation than the "
     "runcell-cell handler gives (a cell with the gate on)"),
])
def test_a_handler_named_for_a_boundary_refuses_an_annotation_that_lowers_it(
        h, bundle, runcell_bin, handler, annotations, sandbox, message):
    """runcell-cell and runcell-microvm are floors: under the CRI plugin a pod's annotation
    cannot be told from the operator's, so the handler itself refuses one asking for less
    (whatever the containerd config lets through), before anything exists."""
    if sandbox:
        annotations = {**annotations, "io.kubernetes.cri.container-type": "sandbox"}
    cid, res = create_as(h, bundle, runcell_bin, handler, annotations)
    assert res.rc != 0, res.describe()
    assert res.msg == "config.json: annotations: " + message + FLOOR_TAIL, res.describe()
    assert_nothing_left(h, cid)


@pytest.mark.parametrize("handler,annotations,gate", [
    ("runcell-cell", {"run.runcell.gate": "on"}, "on"),
    ("runcell-cell", {"run.runcell.placement": "xgate"}, "on"),
    ("runcell-native", {"run.runcell.gate": "on"}, "on"),
    ("runcell", {"run.runcell.gate": "off"}, "off"),  # the command line's: the operator's
])
def test_a_handler_takes_an_annotation_that_does_not_lower_it(
        h, bundle, runcell_bin, handler, annotations, gate):
    cid, res = create_as(h, bundle, runcell_bin, handler, annotations)
    assert res.rc == 0, res.describe()
    got = annotations_of(h, cid)
    assert got.get("run.runcell.mode") == "cell", got
    assert got.get("run.runcell.gate") == gate, got


@pytest.mark.parametrize("handler", ["runcell-cell", "runcell-native"])
def test_a_handler_lets_an_annotation_ask_for_a_microvm(h, bundle, runcell_bin, handler):
    """More isolation than the handler's passes the floor (here it then meets this host's
    KVM, which cannot boot a microVM; the lane runs them)."""
    if expected_microvm_refusal("x", "y") is None:
        pytest.skip("this host's /dev/kvm is usable: microVMs run here (the lane covers it)")
    cid, res = create_as(h, bundle, runcell_bin, handler, {"run.runcell.mode": "microvm"})
    want = expected_microvm_refusal(cid, "annotation run.runcell.mode")
    assert res.rc != 0, res.describe()
    assert res.msg.startswith(want), res.describe()
    assert_nothing_left(h, cid)


@pytest.mark.parametrize("claims", [
    {"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri-o.ContainerType": "sandbox"},
    {"io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri-o.ContainerType": "container"},
])
def test_a_workload_cannot_pass_for_a_sandbox_with_the_other_cris_key(h, bundle, runcell_bin,
                                                                      claims):
    """Each CRI writes its own container-type key, but a pod's annotations pass through, so
    a workload container can carry the other CRI's key saying "sandbox" (red team, session
    18: under runcell-microvm that made it a cell). A container is a sandbox only if every
    key present says so: here it stays a microVM (refused on this host for want of KVM)."""
    if expected_microvm_refusal("x", "y") is None:
        pytest.skip("this host's /dev/kvm is usable: microVMs run here (the lane covers it)")
    cid, res = create_as(h, bundle, runcell_bin, "runcell-microvm", claims)
    assert res.rc != 0, res.describe()
    assert res.msg.startswith(expected_microvm_refusal(cid, "handler runcell-microvm")), \
        res.describe()
    assert_nothing_left(h, cid)


def test_a_name_like_a_handlers_that_is_none_warns(h, bundle, runcell_bin):
    """A renamed copy or hardlink (runcell-cell.new) is plain runcell, which takes every
    annotation: create says so, so that an operator who meant a floor finds out."""
    cid, res = create_as(h, bundle, runcell_bin, "runcell-cell.new", {"run.runcell.gate": "off"})
    assert res.rc == 0, res.describe()
    assert "invoked as runcell-cell.new, which is no runtime handler's name" in res.err, \
        res.describe()
    assert annotations_of(h, cid).get("run.runcell.gate") == "off"


# A few denials, for the checks below: each answers differently natively (see above).
SAMPLE = ["bpf", "mount", "unshare", "clone3", "clone:newuts", "socket:packet", "ioctl:tiocsti"]
SAMPLE_IN_CELL = {"bpf": "EPERM", "mount": "EPERM", "unshare": "EPERM", "clone3": "ENOSYS",
                  "clone:newuts": "EPERM", "socket:packet": "EAFNOSUPPORT",
                  "ioctl:tiocsti": "EPERM"}


@pytest.mark.parametrize("gate", [True, False], ids=["cell", "native"])
def test_exec_goes_through_the_gate(h, probe_bin, gate):
    bundle = probe_bundle(h, probe_bin, gate).args("sleep", "30")
    cid = h.run_detached(bundle)
    res = h("exec", cid, PROBE_IN_ROOTFS, *SAMPLE)
    assert res.rc == 0, res.describe()
    answers = parse_probe(res.out)
    for name in SAMPLE:
        if gate:
            assert answers[name] == SAMPLE_IN_CELL[name], (name, answers)
        else:
            assert answers[name] != SAMPLE_IN_CELL[name], (name, answers)
    assert h.kill(cid, "KILL").rc == 0
    h.wait_status(cid, "stopped")


def test_bundle_seccomp_applies_on_top_of_the_gate(h, probe_bin):
    enolink = 67  # a distinct errno no probe case gets by itself

    def add_profile(bundle):
        bundle.linux["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["getcwd", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": enolink}],
        }

    names = ["getcwd", "mkdir", "bpf", "clone:newuts", "clone:fork"]
    plain_cell = run_probe(h, probe_bin, names, True)
    cell, native = both(h, probe_bin, names, add_profile)
    # without the bundle's filter both calls work in a cell
    assert plain_cell["getcwd"] == "ok" and plain_cell["mkdir"] == "ok", plain_cell
    # with it, its errno wins in a cell as natively
    assert cell["getcwd"] == "ENOLINK" and cell["mkdir"] == "ENOLINK", cell
    assert native["getcwd"] == "ENOLINK" and native["mkdir"] == "ENOLINK", native
    # and the gate is still there underneath
    assert cell["bpf"] == "EPERM" and native["bpf"] != "EPERM", (cell, native)
    assert cell["clone:newuts"] == "EPERM" and native["clone:newuts"] == "ok", (cell, native)
    assert cell["clone:fork"] == "ok", cell


# ---------------------------------------------------------------------------------------
# Ordinary programs run unchanged in a cell


def test_busybox_runs_in_a_cell(h, bundle):
    set_gate(bundle, True)
    bundle.sh("ls -l /bin/busybox >/dev/null && ps -o pid,comm | grep -c . && "
              "echo hello | sed s/hello/world/ && mkdir /dev/shm/d && rmdir /dev/shm/d && "
              "(sleep 0.1 & wait) && id -u && grep -c ^processor /proc/cpuinfo >/dev/null && "
              "grep Seccomp_filters /proc/self/status")
    out = h.output_of(bundle)
    lines = out.split()
    assert "world" in lines, out
    assert re.search(r"^Seccomp_filters:\s*2$", out, re.M), out


def test_threads_and_fork_in_a_cell(h, probe_bin):
    """pthread_create (glibc tries clone3, gets ENOSYS and falls back to clone with thread
    flags) and fork work in a cell."""
    cell = run_probe(h, probe_bin, ["threads", "fork", "clone3"], True)
    assert cell == {"threads": "ok", "fork": "ok", "clone3": "ENOSYS"}, cell


PYTHON_SCRIPT = r"""
import asyncio, hashlib, json, os, socket, subprocess, sys, tempfile, threading
import multiprocessing, ssl, sqlite3

results = []
def work(n):
    results.append(sum(range(n)))
threads = [threading.Thread(target=work, args=(10000 * i,)) for i in range(1, 5)]
for t in threads: t.start()
for t in threads: t.join()
assert len(results) == 4

out = subprocess.run(["/bin/busybox", "echo", "child"], capture_output=True, text=True)
assert out.stdout == "child\n", out

a, b = socket.socketpair()
a.sendall(b"ping"); assert b.recv(4) == b"ping"
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.bind(("127.0.0.1", 0)); srv.listen(1)
cli = socket.create_connection(srv.getsockname()); conn, _ = srv.accept()
cli.sendall(b"tcp"); assert conn.recv(3) == b"tcp"

async def main():
    await asyncio.sleep(0.01)
    return 42
assert asyncio.run(main()) == 42

with multiprocessing.Pool(2) as pool:
    assert pool.map(abs, [-1, -2, -3]) == [1, 2, 3]

with tempfile.TemporaryDirectory(dir="/dev/shm") as d:
    db = sqlite3.connect(os.path.join(d, "x.db"))
    db.execute("create table t (x)"); db.execute("insert into t values (1)")
    assert db.execute("select x from t").fetchone() == (1,)

ssl.create_default_context()
print(json.dumps({"sha": hashlib.sha256(b"cell").hexdigest()[:8], "cpus": os.cpu_count() > 0,
                  "random": len(os.urandom(8))}))
"""


@pytest.mark.parametrize("gate", [True, False], ids=["cell", "native"])
def test_host_python_runs_in_a_cell(h, bundle, gate):
    python = Path("/usr/bin/python3")
    if not python.exists():
        pytest.skip("no /usr/bin/python3 on this host to bind into the container")
    set_gate(bundle, gate)
    bundle.bind("/usr", "/usr", "ro")
    for top in ("lib", "lib64"):
        host = Path("/") / top
        if host.is_symlink():  # merged /usr: the same link in the rootfs
            os.symlink(os.readlink(host), bundle.rootfs / top)
        elif host.is_dir():
            bundle.bind(host, f"/{top}", "ro")
    bundle.args("/usr/bin/python3", "-c", PYTHON_SCRIPT)
    res = h.run_container(bundle, timeout=60)
    assert res.rc == 0, res.describe()
    want = {"sha": hashlib.sha256(b"cell").hexdigest()[:8], "cpus": True, "random": 8}
    assert json.loads(res.out) == want, res.out


# --- what a gated cell keeps closed whatever its config says (src/cell/cell_floor.c) -----

FLOOR_TARGETS = [
    "/sys/kernel/mm/transparent_hugepage/enabled",   # the cell's own sysfs, asked rw
    "/hostsys/kernel/mm/transparent_hugepage/enabled",  # the host's /sys as //sys/.
    "/hostsys2/mm/transparent_hugepage/enabled",     # the host's /sys/kernel
    "/hostsys/fs/cgroup/memory/release_agent",       # a v1 hierarchy below the bind
    "/hostsys/fs/cgroup/systemd/release_agent",
    "/proc2/sys/vm/swappiness",                      # a second procfs
    "/proc/sys/vm/swappiness",
    "/proc/mtrr",
]


def floor_bundle(h, gate):
    """A privileged config (every capability, sysfs asked rw, nothing masked or read-only)
    plus what a config could add: binds of the host's /sys however spelled, a second
    procfs. The script only opens the files for writing (no write)."""
    bundle = set_gate(all_capabilities(h.bundle()), gate)
    for m in bundle.config["mounts"]:
        if m["type"] in ("sysfs", "cgroup"):
            m["options"] = [o for o in m.get("options", []) if o != "ro"] + ["rw"]
    bundle.linux["maskedPaths"] = []
    bundle.linux["readonlyPaths"] = []
    bundle.bind("//sys/.", "/hostsys")
    bundle.bind("/sys/kernel", "/hostsys2")
    bundle.add_mount("/proc2", "proc", "proc", [])
    existing = [t for t in FLOOR_TARGETS
                if os.path.exists(t.replace("/hostsys2", "/sys/kernel").replace("/hostsys", "/sys")
                                  .replace("/proc2", "/proc"))]
    checks = "".join(f'if ( : 1<>"{t}" ) 2>/dev/null; then echo "open {t}"; fi; ' for t in existing)
    bundle.sh(checks + "[ -c /proc/kmsg ] && echo kmsg=masked; true")
    return bundle, existing


def test_a_gated_cell_keeps_the_kernels_settings_closed(h):
    """Gate off, the privileged config opens every target for writing (the test can
    fail); gate on, none of them, and /proc/kmsg is masked (session-19 red team: binds of
    the host's /sys kept their writable submounts — the v1 hierarchies' release_agent —,
    a bind of /sys spelled otherwise or of /sys/kernel was not seen, a second procfs had
    no read-only paths, /proc/mtrr and /proc/kmsg were in no list)."""
    bundle, targets = floor_bundle(h, False)
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    opened = {line.split(" ", 1)[1] for line in res.out.splitlines() if line.startswith("open ")}
    assert opened == set(targets), res.out
    bundle, _ = floor_bundle(h, True)
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    assert not [line for line in res.out.splitlines() if line.startswith("open ")], res.out
    assert "kmsg=masked" in res.out, res.out
