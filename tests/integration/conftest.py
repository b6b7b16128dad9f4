"""Fixtures for the integration tests.

- runcell_bin: $RUNCELL_BIN or <repo>/build/runcell; a missing binary fails every test.
- h: a Harness for runcell with its own --root in a fresh work directory; at the end of
  the test every container id it handed out is `delete --force`d and the test fails if a
  state directory, cgroup, mount or process is left behind.
- bundle: a busybox bundle (config.json from helpers.default_spec(), i.e. `runc spec`
  with terminal false) that the test edits through bundle.config before create/run.
- runc_h: the same for Debian's runc, for differential tests.
"""
import os
import secrets
import signal
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402
from helpers import (  # noqa: E402
    BUSYBOX,
    REPO,
    RUNC,
    Harness,
    safe_rmtree,
)

# A test that takes longer than this is stuck: fail it rather than the whole run.
TEST_TIME_LIMIT = int(os.environ.get("RCT_TEST_TIME_LIMIT", "120"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    def expired(signum, frame):
        raise TimeoutError(f"test exceeded {TEST_TIME_LIMIT}s (RCT_TEST_TIME_LIMIT)")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_TIME_LIMIT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _require_root():
    if os.geteuid() != 0:
        pytest.fail("the integration tests create containers and must run as root", pytrace=False)


def _require_executable(path, hint):
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"{path} is missing or not executable: {hint}", pytrace=False)


@pytest.fixture(scope="session")
def runcell_bin():
    _require_root()
    path = os.environ.get("RUNCELL_BIN") or str(REPO / "build" / "runcell")
    _require_executable(
        path,
        "build runcell with `cmake -S . -B build && make -C build` "
        "or point RUNCELL_BIN at the binary to test",
    )
    _require_executable(str(BUSYBOX), "install busybox-static (scripts/install-deps.sh)")
    return os.path.abspath(path)


@pytest.fixture(scope="session")
def runc_bin():
    _require_root()
    _require_executable(str(RUNC), "install Debian's runc (scripts/install-deps.sh)")
    return str(RUNC)


@pytest.fixture(scope="session")
def session_dir():
    # Not pytest's tmp_path: /tmp/pytest-of-root is 0700, which a container whose root
    # is mapped to another host uid (user namespace tests) could not traverse.
    path = Path(tempfile.mkdtemp(prefix="rct-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    if not os.environ.get("RCT_KEEP"):
        safe_rmtree(path)


@pytest.fixture
def workdir(session_dir, request):
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in request.node.name)[:60]
    path = session_dir / f"{name}-{secrets.token_hex(3)}"
    path.mkdir(mode=0o755)
    yield path
    if not os.environ.get("RCT_KEEP"):
        safe_rmtree(path)


MAX_HUNG_CALLS = 3


def _give_up_if_the_runtime_hangs():
    if helpers.TIMEOUTS >= MAX_HUNG_CALLS:
        pytest.fail(f"{helpers.TIMEOUTS} runtime calls have hung in this session; not "
                    "starting more containers", pytrace=False)


def _finish(harness):
    problems = harness.cleanup()
    if problems:
        pytest.fail(
            f"{harness.rt.name} left behind:\n  " + "\n  ".join(problems), pytrace=False
        )


@pytest.fixture
def h(runcell_bin, workdir):
    _give_up_if_the_runtime_hangs()
    harness = Harness(runcell_bin, workdir / "runcell", name=f"runcell ({runcell_bin})")
    yield harness
    _finish(harness)


@pytest.fixture
def runc_h(runc_bin, workdir):
    _give_up_if_the_runtime_hangs()
    harness = Harness(runc_bin, workdir / "runc", name="runc")
    yield harness
    _finish(harness)


@pytest.fixture
def bundle(h):
    return h.bundle()


@pytest.fixture
def host_dir(workdir):
    """A host directory for bind mounts and hook markers, readable from containers."""
    path = workdir / "host"
    path.mkdir(mode=0o777)
    os.chmod(path, 0o777)
    return path


@pytest.fixture
def escape_dir():
    """A unique, empty host directory under /tmp that a container must never touch."""
    path = Path(f"/tmp/rct-escape-{secrets.token_hex(6)}")
    path.mkdir()
    yield path
    safe_rmtree(path)


def pytest_report_header(config):
    binary = os.environ.get("RUNCELL_BIN") or str(REPO / "build" / "runcell")
    return [f"runcell binary: {binary}", f"reference runtime: {RUNC}"]
