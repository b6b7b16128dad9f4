"""linux.seccomp: default action, per-syscall actions with errnoRet, argument conditions."""
import platform

import pytest

ARCHES = {"x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
          "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]}.get(platform.machine(), [])

EPERM = 1


def profile(*rules, default="SCMP_ACT_ALLOW"):
    p = {"defaultAction": default, "syscalls": list(rules)}
    if ARCHES:
        p["architectures"] = ARCHES
    return p


def test_errno_rule(h, bundle):
    bundle.linux["seccomp"] = profile(
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM})
    bundle.sh("mkdir /tmp/d 2>&1; echo rc=$?; grep ^Seccomp: /proc/self/status")
    out = h.output_of(bundle)
    assert "Operation not permitted" in out, out
    assert "rc=1" in out
    assert "Seccomp:\t2" in out or "Seccomp: 2" in out, out


def test_errno_rule_other_errno(h, bundle):
    enospc = 28
    bundle.linux["seccomp"] = profile(
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": enospc})
    bundle.sh("mkdir /tmp/d 2>&1; echo rc=$?")
    assert "No space left on device" in h.output_of(bundle)


def test_argument_condition(h, bundle):
    # kill(pid, 0) is refused; kill(pid, SIGCONT) is allowed.
    bundle.linux["seccomp"] = profile({
        "names": ["kill"],
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": EPERM,
        "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}],
    })
    bundle.sh("kill -0 $$ 2>&1; echo zero=$?; kill -CONT $$ 2>&1; echo cont=$?")
    out = h.output_of(bundle)
    assert "zero=1" in out, out
    assert "cont=0" in out, out


def test_masked_argument_condition(h, bundle):
    # Refuse open(at) with O_CREAT (0100) in flags, allow plain reads.
    o_creat = 0o100
    bundle.config["root"]["readonly"] = False
    bundle.linux["seccomp"] = profile(
        {"names": ["open"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
         "args": [{"index": 1, "value": o_creat, "valueTwo": o_creat,
                   "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["openat"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
         "args": [{"index": 2, "value": o_creat, "valueTwo": o_creat,
                   "op": "SCMP_CMP_MASKED_EQ"}]},
    )
    bundle.sh("wc -l < /etc/passwd && echo read-ok; (echo x > /tmp/new) 2>&1; "
              "echo create=$?")
    out = h.output_of(bundle)
    assert "read-ok" in out, out
    assert "create=1" in out or "create=2" in out, out
    assert "Operation not permitted" in out, out


def test_kill_action(h, bundle):
    bundle.linux["seccomp"] = profile({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"})
    bundle.sh("mkdir /tmp/d; echo rc=$?")
    out = h.output_of(bundle)
    assert "rc=159" in out, out  # 128 + SIGSYS


def test_seccomp_with_unknown_syscall_name(h, bundle):
    # Unknown names are skipped (as runc does), so profiles written for newer kernels
    # still load.
    bundle.linux["seccomp"] = profile(
        {"names": ["no_such_syscall_rct", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
         "errnoRet": EPERM})
    bundle.sh("mkdir /tmp/d 2>&1; echo rc=$?")
    assert "Operation not permitted" in h.output_of(bundle)


def test_seccomp_invalid_action(h, bundle):
    bundle.linux["seccomp"] = profile({"names": ["mkdir"], "action": "SCMP_ACT_NONSENSE"})
    bundle.args("true")
    res = h.create(bundle)
    assert res.rc != 0
    assert "SCMP_ACT_NONSENSE" in res.msg or "action" in res.msg.lower(), res.describe()


@pytest.mark.parametrize("nnp", [True, False])
def test_seccomp_with_and_without_no_new_privileges(h, bundle, nnp):
    bundle.config["process"]["noNewPrivileges"] = nnp
    bundle.linux["seccomp"] = profile(
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM})
    bundle.sh("mkdir /tmp/d 2>&1; echo rc=$?")
    assert "Operation not permitted" in h.output_of(bundle)
