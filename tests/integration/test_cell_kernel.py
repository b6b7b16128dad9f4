"""The cell kernel (notify placement): syscalls the gate routes to it are answered from the
cell's cgroup limits, so programs size themselves to the cell. Each view is checked in a
cell (gate on) and, to show the test can fail, natively (gate off), where the host's
numbers come back.
"""
import os
import re
import shutil
import time

import pytest

from helpers import NATIVE_ANNOTATIONS, build_static, cell_kernel_pids

pytestmark = pytest.mark.runcell_specific

HOST_CPUS = len(os.sched_getaffinity(0))


def as_cell(bundle):
    bundle.config["annotations"] = {
        k: v for k, v in bundle.config.get("annotations", {}).items() if k not in NATIVE_ANNOTATIONS
    }


def limits(bundle, memory=None, quota=None, period=100000):
    res = bundle.linux.setdefault("resources", {})
    if memory:
        res["memory"] = {"limit": memory, "swap": memory}
    if quota:
        res["cpu"] = {"quota": quota, "period": period}


def free_total_kib(output):
    """busybox free's "Mem:" total (KiB), from sysinfo(2): the first column, 15 wide.
    (Its "used" column subtracts /proc/meminfo's Cached, which still shows the host's
    page cache — the file views are not served yet — and can wrap into the next column.)"""
    m = re.search(r"^Mem:(.{15})", output, re.M)
    assert m, output
    return int(m.group(1))


def host_memtotal_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    raise AssertionError("no MemTotal")


@pytest.mark.skipif(HOST_CPUS < 2, reason="needs at least 2 CPUs to see a quota cut them down")
@pytest.mark.parametrize("cell", [True, False], ids=["cell", "native"])
def test_nproc_follows_the_cpu_quota(h, bundle, cell):
    if cell:
        as_cell(bundle)
    limits(bundle, quota=50000)  # half a CPU
    bundle.args("nproc")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    assert int(res.out) == (1 if cell else HOST_CPUS)


@pytest.mark.skipif(HOST_CPUS < 2, reason="needs at least 2 CPUs")
def test_a_fractional_quota_rounds_up(h, bundle):
    as_cell(bundle)
    limits(bundle, quota=150000)  # 1.5 CPUs
    bundle.args("nproc")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    assert int(res.out) == min(2, HOST_CPUS)


@pytest.mark.parametrize("cell", [True, False], ids=["cell", "native"])
def test_sysinfo_follows_the_memory_limit(h, bundle, cell):
    if cell:
        as_cell(bundle)
    limits(bundle, memory=256 << 20)
    bundle.args("free")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    total = free_total_kib(res.out)
    if cell:
        assert total == 256 << 10
    else:
        assert abs(total - host_memtotal_kib()) <= 1024


def test_no_limits_show_the_host(h, bundle):
    as_cell(bundle)
    bundle.sh("nproc; free")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    assert int(res.out.split()[0]) == HOST_CPUS
    assert abs(free_total_kib(res.out) - host_memtotal_kib()) <= 1024


@pytest.mark.skipif(HOST_CPUS < 2, reason="needs at least 2 CPUs")
def test_exec_is_served_too(h, bundle):
    as_cell(bundle)
    limits(bundle, memory=128 << 20, quota=50000)
    bundle.args("sleep", "60")
    cid = h.run_detached(bundle)
    res = h("exec", cid, "sh", "-c", "nproc; free")
    assert res.rc == 0, res.describe()
    assert int(res.out.split()[0]) == 1
    assert free_total_kib(res.out) == 128 << 10
    assert h.kill(cid, "KILL").rc == 0


@pytest.mark.skipif(HOST_CPUS < 2, reason="needs at least 2 CPUs")
def test_another_process_affinity_is_the_kernels(h, bundle):
    """sched_getaffinity for another pid goes on to the kernel (the pid is in the cell's
    namespace): taskset -p shows the real mask while nproc shows the cell's view. (Another
    process: `taskset -p 1` may name taskset itself, sh exec'ing its last command, and a
    caller naming itself gets the cell's view.)"""
    as_cell(bundle)
    limits(bundle, quota=50000)
    bundle.sh("sleep 30 & nproc; taskset -p $!")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    lines = res.out.split("\n")
    assert int(lines[0]) == 1
    mask = int(lines[1].rsplit(":", 1)[1].strip(), 16)
    assert bin(mask).count("1") == HOST_CPUS, res.out


# --- the file views (FUSE, served by the cell kernel) ------------------------------------

def meminfo_kib(text, key):
    m = re.search(rf"^{re.escape(key)}:\s+(\d+) kB", text, re.M)
    assert m, text
    return int(m.group(1))


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host")
@pytest.mark.parametrize("cell", [True, False], ids=["cell", "native"])
def test_proc_and_sys_views_follow_the_limits(h, bundle, cell):
    if cell:
        as_cell(bundle)
    limits(bundle, memory=256 << 20, quota=50000)
    bundle.sh("cat /proc/meminfo; echo ==; grep -c ^processor /proc/cpuinfo; echo ==;"
              " grep -c '^cpu[0-9]' /proc/stat; echo ==; cat /sys/devices/system/cpu/online;"
              " echo ==; cat /proc/uptime; echo ==; free")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    meminfo, processors, stat_cpus, online, uptime, free = res.out.split("==\n")
    if cell:
        assert meminfo_kib(meminfo, "MemTotal") == 256 << 10
        assert meminfo_kib(meminfo, "MemFree") <= 256 << 10
        assert meminfo_kib(meminfo, "SwapTotal") == 0
        assert int(processors) == 1 and int(stat_cpus) == 1  # half a CPU of quota
        assert online.strip() == "0"
        # the cell's uptime: seconds since its init started, not the host's
        assert float(uptime.split()[0]) < 60
        # free's columns add up: used = total - free - buff/cache is not negative
        mem = re.search(r"^Mem:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", free, re.M)
        assert mem and int(mem.group(1)) == 256 << 10 and int(mem.group(2)) < 256 << 10, free
    else:
        assert meminfo_kib(meminfo, "MemTotal") == host_memtotal_kib()
        assert int(processors) == len([ln for ln in open("/proc/cpuinfo") if ln.startswith("processor")])


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host")
def test_views_are_read_only_and_only_inside_the_cell(h, bundle, workdir):
    as_cell(bundle)
    limits(bundle, memory=128 << 20)
    bundle.sh("grep -E ' /proc/meminfo | /sys/devices/system/cpu/online ' /proc/self/mountinfo;"
              " echo x > /proc/meminfo && echo WRITABLE; true")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    assert res.out.count("fuse.runcell") == 2, res.out
    assert "WRITABLE" not in res.out
    # nothing of it is mounted on the host
    with open("/proc/self/mountinfo") as f:
        assert "fuse.runcell" not in f.read()


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host")
@pytest.mark.skipif(HOST_CPUS < 2, reason="needs two CPUs for the cpu list to grow")
def test_a_view_that_grows_is_read_whole_by_sendfile(h, bundle):
    """busybox cat copies with sendfile, which reads through the page cache up to the size
    the kernel holds, and a bound view is never looked up again: once the cell's quota went
    from half a CPU to two, cat printed "0-" for an online list of "0-1" (and "11.08 0.00"
    without its newline once the cell was 10 s old; session-19 red team). Read with cat and
    with shell redirection (read(2)), which must agree."""
    as_cell(bundle)
    limits(bundle, quota=50000)
    bundle.args("sleep", "60")
    cid = h.run_detached(bundle)
    script = ("echo \"cat=[$(cat /sys/devices/system/cpu/online)]\"; "
              "read l < /sys/devices/system/cpu/online; echo \"read=[$l]\"; "
              "echo \"lines_cat=$(cat /proc/meminfo | wc -l)\"; "
              "echo \"lines_read=$(while read -r x; do echo; done < /proc/meminfo | wc -l)\"")

    def views():
        res = h("exec", cid, "sh", "-c", script)
        assert res.rc == 0, res.describe()
        return dict(line.split("=", 1) for line in res.out.splitlines())

    before = views()
    assert before["cat"] == before["read"] == "[0]", before
    res = h("update", "--cpu-quota", "200000", "--cpu-period", "100000", cid)
    assert res.rc == 0, res.describe()
    after = views()
    assert after["cat"] == after["read"] == "[0-1]", after
    assert after["lines_cat"] == after["lines_read"], after
    assert h.kill(cid, "KILL").rc == 0


PAGE_LOCKER = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
/* Keeps the page at 4 MiB - 4096 of a view locked as often as it can (readahead of it, the
 * page cache dropped each time) while other threads open the view afresh: each open makes
 * the cell kernel store its size hint into that very page. */
static const char *path;
static void *opener(void *a) {
  for (;;) { int fd = open(path, O_RDONLY); if (fd >= 0) close(fd); }
  return a;
}
static void *locker(void *a) {
  int fd = open(path, O_RDONLY);
  for (;;) {
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    readahead(fd, (4 << 20) - 4096, 4096);
  }
  return a;
}
int main(int argc, char **argv) {
  path = argv[1];
  pthread_t t;
  for (int i = 0; i < 2; i++) {
    pthread_create(&t, NULL, opener, NULL);
    pthread_create(&t, NULL, locker, NULL);
  }
  puts("started");
  fflush(stdout);
  for (;;) pause();
}
"""


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host")
def test_a_locked_page_does_not_freeze_the_views(h, bundle, session_dir):
    """The size hint is a store into a page, and a process of the cell can hold that page's
    lock while its read waits for the cell kernel: stored from the thread that serves
    reads, it froze every view of the cell and `pause` within a second (session-19 red
    team). While such a process runs, views still open, exec and pause still work."""
    locker = build_static(session_dir, "page_locker", PAGE_LOCKER, ["-pthread"])
    as_cell(bundle)
    limits(bundle, memory=128 << 20)
    shutil.copy2(locker, bundle.rootfs / "bin" / "page_locker")
    bundle.args("/bin/page_locker", "/proc/meminfo")
    cid = h.run_detached(bundle)
    for _ in range(5):
        time.sleep(0.5)
        res = h("exec", cid, "head", "-1", "/proc/meminfo", timeout=20)
        assert res.rc == 0 and meminfo_kib(res.out, "MemTotal") == 128 << 10, res.describe()
    assert h("pause", cid).rc == 0
    assert h("resume", cid).rc == 0
    res = h("exec", cid, "cat", "/proc/uptime", timeout=20)
    assert res.rc == 0 and res.out.endswith("\n"), res.describe()
    assert h.kill(cid, "KILL").rc == 0


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host")
def test_views_of_an_exec_and_after_a_long_time(h, bundle):
    """Views are files of the container's mount namespace: an exec'd process sees them,
    and they keep being served while the cell runs."""
    as_cell(bundle)
    limits(bundle, memory=64 << 20)
    bundle.args("sleep", "60")
    cid = h.run_detached(bundle)
    for _ in range(3):
        res = h("exec", cid, "sh", "-c", "head -1 /proc/meminfo")
        assert res.rc == 0, res.describe()
        assert meminfo_kib(res.out, "MemTotal") == 64 << 10
    assert h.kill(cid, "KILL").rc == 0


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host")
def test_a_cell_with_a_user_namespace_has_its_views(h, bundle):
    """FUSE mounts only with a /dev/fuse opened in the mounting user namespace, which the
    init cannot open (device rules) nor reach by path: the runtime opens one there for
    it. The views then agree with the routed sysinfo (busybox free mixes the two: its
    "used" came out at ~1.8e16 KiB when only sysinfo was the cell's)."""
    from test_namespaces import _userns_bundle  # the user namespace suite's bundle set-up

    as_cell(bundle)
    _userns_bundle(bundle)
    limits(bundle, memory=128 << 20, quota=50000)
    bundle.sh("grep Seccomp_filters /proc/self/status; free; head -1 /proc/meminfo; echo ==;"
              " cat /sys/devices/system/cpu/online; grep -c ^processor /proc/cpuinfo;"
              " grep -c fuse.runcell /proc/self/mountinfo; id -u")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    head, tail = res.out.split("==\n")
    assert "Seccomp_filters:\t2" in head
    assert free_total_kib(head) == 128 << 10  # sysinfo is routed
    assert meminfo_kib(head, "MemTotal") == 128 << 10  # and the view agrees
    mem = re.search(r"^Mem:\s+(\d+)\s+(\d+)", head, re.M)
    assert mem and int(mem.group(2)) < 128 << 10, head  # free's "used" makes sense
    online, processors, mounts, uid = tail.split()
    assert (online, processors, uid) == ("0", "1", "0"), tail
    assert int(mounts) >= 4, tail  # the view files are mounted, not the staging mount only
    with open("/proc/self/mountinfo") as f:
        assert "fuse.runcell" not in f.read()


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host")
def test_a_user_namespace_cell_with_no_pivot_has_its_views(h, bundle):
    """--no-pivot keeps the old root, so the init detaches the staging mount itself: by
    descriptor, as the init of a user namespace cannot look the state directory up by
    path (a failed detach fails create)."""
    from test_namespaces import _userns_bundle

    as_cell(bundle)
    _userns_bundle(bundle)
    limits(bundle, memory=96 << 20)
    bundle.sh("head -1 /proc/meminfo")
    res = h.run_container(bundle, None, "--no-pivot")
    assert res.rc == 0, res.describe()
    assert meminfo_kib(res.out, "MemTotal") == 96 << 10


# --- the placement: notify (default) or xgate where the CPU has protection keys ----------

def host_has_pku():
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    return "pku" in flags and "ospke" in flags


@pytest.mark.parametrize("asked", [None, "notify", "xgate"])
def test_placement_in_state_and_log(h, bundle, workdir, asked):
    """The placement asked for is the one in force, except xgate on a CPU without
    protection keys: notify then, and the log says why. Either way the routed syscalls are
    served (free shows the limit). The xgate placement itself is tested in the MPK lane
    (test_xgate_lane.py)."""
    as_cell(bundle)
    if asked:
        bundle.config.setdefault("annotations", {})["run.runcell.placement"] = asked
    limits(bundle, memory=128 << 20)
    bundle.args("sleep", "60")
    log = workdir / "placement.log"
    cid = h.new_id()
    bundle.write()
    res = h("--log", log, "run", "--detach", "--bundle", bundle.path, h.track_id(cid))
    assert res.rc == 0, res.describe()
    want = "xgate" if asked == "xgate" and host_has_pku() else "notify"
    assert h.state(cid)["annotations"]["run.runcell.placement"] == want
    text = log.read_text()
    assert f"cell kernel placement {want}" in text, text
    if asked == "xgate" and want == "notify":
        assert "needs protection keys (PKU)" in text, text
    res = h("exec", cid, "sh", "-c", "free")
    assert res.rc == 0, res.describe()
    assert free_total_kib(res.out) == 128 << 10
    assert h.kill(cid, "KILL").rc == 0


def test_placement_without_the_gate_is_not_shown(h, bundle):
    """A container with the gate off has no cell kernel: no placement in its state."""
    bundle.args("true")
    cid = h.create_ok(bundle)
    assert "run.runcell.placement" not in h.state(cid).get("annotations", {})
    assert h("delete", "--force", cid).rc == 0


def test_unknown_placement_is_refused_and_leaves_nothing(h, bundle):
    as_cell(bundle)
    bundle.config.setdefault("annotations", {})["run.runcell.placement"] = "fast"
    bundle.args("true")
    cid = h.new_id()
    res = h.create(bundle, cid)
    assert res.rc != 0
    assert ('annotations: run.runcell.placement: must be "notify" or "xgate", got "fast"'
            in res.err), res.describe()
    assert h("state", cid).rc != 0


def test_cell_kernels_end_with_the_cell(h, bundle):
    """The init's cell kernel and an exec's one serve their listener from a thread blocked
    in NOTIF_RECV; each must still end once the processes it serves are gone, not linger
    with that thread."""

    before = cell_kernel_pids()
    as_cell(bundle)
    limits(bundle, quota=50000)
    bundle.args("sleep", "60")
    cid = h.run_detached(bundle)
    # a detached exec keeps its own cell kernel while it runs
    res = h("exec", "--detach", cid, "sh", "-c", "nproc; sleep 60")
    assert res.rc == 0, res.describe()
    mine = cell_kernel_pids(cid) - before
    assert len(mine) >= 2, f"expected the init's and the exec's cell kernels, found {mine}"
    assert h("exec", cid, "nproc").out.strip() == "1"  # and a third, served and gone
    assert h("delete", "--force", cid).rc == 0
    deadline = time.monotonic() + 10
    while mine & cell_kernel_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not mine & cell_kernel_pids(), "cell kernels outlived their cell"


def cpu_seconds(pid):
    """CPU time (user + system, every thread) the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_cell_kernel_idles_once_its_listener_hangs_up(h, bundle):
    """Without a pid namespace, a process exec'd into the cell can outlive the init: the
    init's cell kernel then still serves the views filesystem (that process has it mounted)
    while the init's gate listener has hung up. On kernels that fail RECV at once on such a
    listener, a listener thread that retried it spun a CPU until the cell ended; it must
    end instead, and the cell kernel sit idle."""

    before = cell_kernel_pids()
    as_cell(bundle)
    bundle.drop_namespace("pid")
    bundle.args("sleep", "60")
    cid = h.run_detached(bundle)
    res = h("exec", "--detach", cid, "sleep", "60")
    assert res.rc == 0, res.describe()
    mine = cell_kernel_pids() - before
    assert len(mine) == 2, f"expected the init's and the exec's cell kernels, found {mine}"
    assert h.kill(cid, "KILL").rc == 0
    h.wait_status(cid, "stopped")
    time.sleep(0.2)  # let the init's cell kernel see the hang-up
    # the exec's cell kernel serves the live process; the init's one the views it uses
    assert mine <= cell_kernel_pids(), "a cell kernel ended while its cell still runs"
    used = {pid: cpu_seconds(pid) for pid in mine}
    time.sleep(1.0)
    spent = {pid: cpu_seconds(pid) - used[pid] for pid in mine}
    assert all(s < 0.3 for s in spent.values()), f"a cell kernel kept a CPU busy: {spent}"
    assert h("delete", "--force", cid).rc == 0
    deadline = time.monotonic() + 10
    while mine & cell_kernel_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not mine & cell_kernel_pids(), "cell kernels outlived their cell"


@pytest.mark.parametrize("failing", ["before-views", "after-views"])
def test_failed_create_leaves_no_cell_kernel(h, bundle, tmp_path, failing):
    """The cell kernel starts while the init sets up. A create that fails before the init
    has mounted the views (a bind mount of a missing source) or after it handed them over
    (a failing createRuntime hook) must not leave it behind: it exits when the control
    socket closes with no views mounted, or once the init is gone and the views with it."""

    before = cell_kernel_pids()
    as_cell(bundle)
    bundle.args("true")
    if failing == "before-views":
        bundle.bind(tmp_path / "missing", "/mnt")
        reason = str(tmp_path / "missing")
    else:
        bundle.config["hooks"] = {"createRuntime": [
            {"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]}
        reason = "createRuntime"
    cid = h.new_id()
    res = h.create(bundle, cid)
    assert res.rc != 0 and reason in res.err, res.describe()  # failed where meant to
    deadline = time.monotonic() + 10
    while cell_kernel_pids() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not cell_kernel_pids() - before, "a failed create left its cell kernel"
    assert h("state", cid).rc != 0


# --- fidelity of the routed syscalls and the views, compared with the host --------------

import json  # noqa: E402

# A static probe (built here with gcc -static): each mode prints one JSON object.
PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>

static unsigned char buf[4096];
/* "ret/errno/bytes": the result, and how many bytes of a 0x5a-filled buffer were written */
static void affinity(const char *name, long pid, unsigned long len, void *mask, int comma) {
  memset(buf, 0x5a, sizeof(buf));
  long r = syscall(SYS_sched_getaffinity, pid, len, mask);
  int e = r < 0 ? errno : 0;
  int written = 0;
  for (int i = 0; i < (int)sizeof(buf); i++)
    if (buf[i] != 0x5a) written = i + 1;
  printf("\"%s\": [%ld, %d, %d]%s", name, r, e, written, comma ? ", " : "");
}

static long i386(long nr, long a, long b, long c) {
  long ret;
  __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c)
                   : "memory", "r8", "r9", "r10", "r11");
  return ret;
}

/* "threads": threads that open and map a view (a mapping holds its file after close())
 * until refused, one at a time; when the process has as many mappings as it may have, a
 * child takes them over (fork copies them) and the process unmaps its own to go on */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *maps[1 << 17];
static int nmaps;
struct opener { const char *path; int got, err; };
static void *open_all(void *arg) {
  struct opener *o = arg;
  for (;;) {
    pthread_mutex_lock(&lock);
    int fd = open(o->path, O_RDONLY | O_CLOEXEC);
    void *m = fd < 0 ? MAP_FAILED : mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED && fd >= 0 && errno == ENOMEM) {
      if (fork() == 0) for (;;) pause();
      for (int i = 0; i < nmaps; i++) munmap(maps[i], 4096);
      nmaps = 0;
      m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    }
    if (m == MAP_FAILED) o->err = errno;
    if (fd >= 0) close(fd);
    if (m != MAP_FAILED) maps[nmaps++] = m, o->got++;
    pthread_mutex_unlock(&lock);
    if (m == MAP_FAILED) return NULL;
  }
}

static int cpus(long pid) {
  cpu_set_t set;
  CPU_ZERO(&set); /* the kernel writes only its mask's size */
  if (syscall(SYS_sched_getaffinity, pid, sizeof(set), &set) < 0) return -errno;
  return CPU_COUNT(&set);
}
static void *thread_cpus(void *arg) {
  *(int *)arg = cpus(syscall(SYS_gettid));
  return NULL;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (!strcmp(mode, "lengths")) {
    printf("{");
    affinity("8", 0, 8, buf, 1);
    affinity("16", 0, 16, buf, 1);
    affinity("4", 0, 4, buf, 1);
    affinity("12", 0, 12, buf, 1);
    affinity("0", 0, 0, buf, 1);
    affinity("128", 0, 128, buf, 1);
    affinity("1<<32", 0, 1ul << 32, buf, 1);
    affinity("(1<<32)+8", 0, (1ul << 32) + 8, buf, 1);
    affinity("0xfffffff8", 0, 0xfffffff8ul, buf, 1);
    affinity("8,NULL", 0, 8, NULL, 1);
    affinity("pid 1<<32", 1l << 32, 8, buf, 0);
    printf("}\n");
  } else if (!strcmp(mode, "self")) {
    int in_thread = 0;
    pthread_t t;
    pthread_create(&t, NULL, thread_cpus, &in_thread);
    pthread_join(t, NULL);
    struct sysinfo si;
    sysinfo(&si);
    printf("{\"0\": %d, \"getpid\": %d, \"gettid\": %d, \"thread\": %d, \"other\": %d,"
           " \"sysinfo_uptime\": %ld}\n",
           cpus(0), cpus(getpid()), cpus(syscall(SYS_gettid)), in_thread, cpus(99999),
           (long)si.uptime);
  } else if (!strcmp(mode, "i386")) {
    unsigned char *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (low == MAP_FAILED || i386(20, 0, 0, 0) < 0) { printf("{\"no_ia32\": true}\n"); return 0; }
    memset(low, 0x5a, 4096);
    long r = i386(116, (long)low, 0, 0);
    int written = 0;
    for (int i = 0; i < 4096; i++)
      if (low[i] != 0x5a) written = i + 1;
    uint32_t totalram, mem_unit;
    uint16_t procs;
    memcpy(&totalram, low + 16, 4);
    memcpy(&procs, low + 40, 2);
    memcpy(&mem_unit, low + 52, 4);
    printf("{\"sysinfo\": [%ld, %d], \"totalram_bytes\": %llu, \"procs\": %u",
           r, written, (unsigned long long)totalram * mem_unit, procs);
    static const long lens[] = {4, 8, 6, 128, 1l << 32};
    for (int i = 0; i < 5; i++) {
      memset(low, 0x5a, 4096);
      r = i386(242, 0, lens[i], (long)low);
      written = 0;
      for (int j = 0; j < 4096; j++)
        if (low[j] != 0x5a) written = j + 1;
      printf(", \"affinity %ld\": [%ld, %d, %d]", lens[i], r, written,
             r > 0 ? __builtin_popcountll(low[0] | (unsigned long long)low[1] << 8) : -1);
    }
    printf("}\n");
  } else if (!strcmp(mode, "hold")) {
    /* maps a view argv[3] times (each mapping holds the file open after close), reports
     * how far it got, then holds them for argv[4] seconds */
    int n = atoi(argv[3]), got = 0, err = 0;
    for (; got < n; got++) {
      int fd = open(argv[2], O_RDONLY);
      if (fd < 0) { err = errno; break; }
      if (mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED) { err = errno; close(fd); break; }
      close(fd);
    }
    printf("{\"held\": %d, \"errno\": \"%s\"}\n", got, err ? strerrorname_np(err) : "");
    fflush(stdout);
    sleep(atoi(argv[4]));
  } else if (!strcmp(mode, "threads")) {
    /* argv[3] threads take view argv[2] until refused (open_all), then the process reports
     * how many it opened and why each thread stopped, and holds them for argv[4] seconds */
    int n = atoi(argv[3]), held = 0;
    struct opener o[64];
    pthread_t t[64];
    if (n > 64) n = 64;
    for (int i = 0; i < n; i++) {
      o[i] = (struct opener){.path = argv[2]};
      pthread_create(&t[i], NULL, open_all, &o[i]);
    }
    printf("{\"errnos\": [");
    for (int i = 0; i < n; i++) {
      pthread_join(t[i], NULL);
      held += o[i].got;
      printf("%s\"%s\"", i ? ", " : "", strerrorname_np(o[i].err));
    }
    printf("], \"held\": %d}\n", held);
    fflush(stdout);
    sleep(atoi(argv[4]));
  }
  return 0;
}
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    return build_static(tmp_path_factory.mktemp("cellk-probe"), "probe", PROBE_C, ["-pthread"])


def with_probe(bundle, probe):
    shutil.copy2(probe, bundle.path / "rootfs" / "bin" / "probe")


def run_json(h, bundle, script):
    bundle.sh(script)
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    return [json.loads(line) for line in res.out.splitlines() if line.startswith("{")]


def test_affinity_lengths_are_taken_as_the_kernel_takes_them(h, bundle, probe):
    """The length is an unsigned int; EINVAL only below nr_cpu_ids bits or off a multiple
    of a long; min(len, the kernel's mask size) bytes are written and returned. Each case
    is compared with the host's answer (gate off): without limits both masks are whole."""
    with_probe(bundle, probe)
    native = bundle.copy_config()
    as_cell(bundle)
    cell, = run_json(h, bundle, "probe lengths")
    bundle.config = native
    host, = run_json(h, bundle, "probe lengths")
    assert host["8"][0] == 8 and host["(1<<32)+8"] == [8, 0, 8], host  # the probe is right
    assert cell == host


@pytest.mark.skipif(HOST_CPUS < 2, reason="needs at least 2 CPUs")
def test_the_caller_named_by_its_pid_is_the_cell_view(h, bundle, probe):
    """sched_getaffinity of the caller's own pid or thread id is the caller: the cell's
    mask, as for pid 0; another pid is the kernel's (ESRCH for none). sysinfo's uptime is
    the cell's, as /proc/uptime shows it."""
    with open("/proc/uptime") as f:
        if float(f.read().split()[0]) < 120:
            pytest.skip("the host itself has been up for less than two minutes")
    with_probe(bundle, probe)
    as_cell(bundle)
    limits(bundle, quota=50000)
    bundle.sh("probe self; cat /proc/uptime")
    res = h.run_container(bundle)
    assert res.rc == 0, res.describe()
    out = json.loads(res.out.splitlines()[0])
    uptime = float(res.out.splitlines()[1].split()[0])
    assert (out["0"], out["getpid"], out["gettid"], out["thread"]) == (1, 1, 1, 1), out
    assert out["other"] == -3  # ESRCH, from the kernel
    assert uptime < 60 and abs(out["sysinfo_uptime"] - uptime) <= 1.5, (out, uptime)


def test_i386_routed_syscalls_get_the_32bit_layout(h, bundle, probe):
    """int 0x80 sysinfo and sched_getaffinity are served in the i386 layouts: a 64-byte
    struct sysinfo with the cell's memory, the length rules of the compat call; the answers
    are compared with the host's (gate off) where the cell has no say."""
    with_probe(bundle, probe)
    limits(bundle, memory=256 << 20)
    native = bundle.copy_config()
    as_cell(bundle)
    cell, = run_json(h, bundle, "probe i386")
    if cell.get("no_ia32"):
        pytest.skip("this kernel runs no i386 syscalls")
    bundle.config = native
    host, = run_json(h, bundle, "probe i386")
    assert host["sysinfo"] == [0, 64], host  # the probe reads the i386 layout
    assert cell["sysinfo"] == [0, 64], cell  # 64 bytes written, not the 112 of x86-64
    assert cell["totalram_bytes"] == 256 << 20, cell
    assert host["totalram_bytes"] != 256 << 20
    assert 0 < cell["procs"] < 100, cell
    for key in [k for k in host if k.startswith("affinity")]:
        assert cell[key] == host[key], (key, cell, host)


def hold_views_then_read_them(h, bundle, holder, memory, timeout):
    """Runs holder (a probe mode that takes view handles, prints what it held as JSON and
    keeps them a few seconds) in a cell with a memory limit; while it still holds them,
    another process reads /proc/meminfo and cpu/online, which must be the cell's views.
    Returns the holder's JSON."""
    limits(bundle, memory=memory)
    # the other side of the pipe reads while the probe still holds its files
    bundle.sh(f"{holder} | {{ read -r held; echo \"$held\";"
              " head -1 /proc/meminfo; cat /sys/devices/system/cpu/online; }")
    res = h.run_container(bundle, timeout=timeout)
    assert res.rc == 0, res.describe()
    lines = res.out.splitlines()
    assert len(lines) == 3, res.describe()
    assert meminfo_kib(lines[1], "MemTotal") == memory >> 10, res.out
    assert lines[2] in ("0", f"0-{HOST_CPUS - 1}"), res.out
    return json.loads(lines[0])


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host")
def test_views_held_by_one_process_do_not_deny_the_rest(h, bundle, probe):
    """A mapping keeps its file open after close(): a process holding many view files
    used to exhaust a table shared by the whole cell (ENFILE for everyone else). The
    handles now grow with need and each opener has a limit of its own (EMFILE, as its
    fd limit would answer), so the rest of the cell still reads the views."""
    with_probe(bundle, probe)
    as_cell(bundle)
    held = hold_views_then_read_them(h, bundle, "probe hold /proc/uptime 20000 3", 128 << 20, 90)
    assert held == {"held": 16384, "errno": "EMFILE"}


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host")
@pytest.mark.parametrize("pidns", [True, False], ids=["pid-namespace", "host-pids"])
def test_the_threads_of_one_process_do_not_deny_the_rest(h, bundle, probe, pidns):
    """FUSE names the thread that opens, not its process: a limit per thread let one
    process with 17 threads take all 262144 handles of the cell (held by mappings, passed
    on to children as the process runs out of them), and every other process's open of a
    view failed with ENFILE. The limit is now the opening process's (its thread group):
    its threads share 16384 handles, and the rest of the cell still reads the views. FUSE
    gives thread ids in the pid namespace of the mount: the cell's own, or the host's."""
    with_probe(bundle, probe)
    as_cell(bundle)
    if not pidns:
        bundle.drop_namespace("pid")
    held = hold_views_then_read_them(h, bundle, "probe threads /proc/uptime 17 3", 512 << 20, 100)
    assert held == {"held": 16384, "errnos": ["EMFILE"] * 17}


# What each tool gives for a view must be what it gives for a file of that content (as it
# does for the host's procfs): checked inside the cell against a snapshot taken there.
# Numbers change between reads, so texts are compared with every number replaced by 0.
VIEW_READER = r"""
import os, re, subprocess, sys, json
FILES = ["/proc/meminfo", "/proc/cpuinfo", "/proc/stat", "/proc/uptime",
         "/sys/devices/system/cpu/online", "/sys/devices/system/cpu/possible"]
norm = lambda b: re.sub(rb" +", b" ", re.sub(rb"[0-9]+", b"0", b))
def run(*argv):
    return subprocess.run(argv, capture_output=True).stdout
result = {}
for f in FILES:
    snap = open(f, "rb").read()
    lines = snap.splitlines(keepends=True)
    r = result[f] = {}
    r["python read"] = len(snap) > 0 and snap.endswith(b"\n")
    for name, tool in (("busybox", ["/bin/busybox"]), ("gnu", [])):
        t = tool + ([] if tool else ["/usr/bin/tail"]) + (["tail"] if tool else [])
        r[name + " tail -n2"] = norm(run(*t, "-n", "2", f)) == norm(b"".join(lines[-2:]))
        out = run(*t, "-c", "3", f)
        r[name + " tail -c3"] = norm(out) == norm(snap[-3:]) and len(out) == min(3, len(snap))
        wc = (["/bin/busybox", "wc"] if tool else ["/usr/bin/wc"])
        n = int(run(*wc, "-c", f).split()[0])
        r[name + " wc -c"] = abs(n - len(snap)) <= 16
        head = (["/bin/busybox", "head"] if tool else ["/usr/bin/head"])
        r[name + " head -c5"] = norm(run(*head, "-c", "5", f)) == norm(snap[:5])
        cat = (["/bin/busybox", "cat"] if tool else ["/usr/bin/cat"])
        r[name + " cat"] = norm(run(*cat, f)) == norm(snap)
    with open(f, "rb") as h:
        h.seek(2)
        r["seek+read"] = norm(h.read(3)) == norm(snap[2:5])
    fd = os.open(f, os.O_RDONLY)
    r["pread"] = norm(os.pread(fd, 3, 2)) == norm(snap[2:5])
    r["pread past the end"] = os.pread(fd, 10, 1 << 20) == b""
    os.close(fd)
print(json.dumps(result))
"""


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host")
@pytest.mark.skipif(not all(os.path.exists(p) for p in ("/usr/bin/python3", "/usr/bin/tail",
                                                          "/usr/bin/wc", "/usr/bin/head")),
                    reason="needs the host's python3 and coreutils in /usr")
@pytest.mark.parametrize("cell", [True, False], ids=["cell", "native"])
def test_tools_read_views_as_the_hosts_files(h, bundle, cell):
    """busybox and GNU tail, wc -c, head -c, cat (busybox: sendfile), python's read, seek
    and pread see each view as they see the host's procfs and sysfs files: the whole text,
    no more (the view files once claimed 1 MiB, and tail printed nothing). The host's own
    files (gate off) show what the checks expect, except busybox tail -c on sysfs, which
    the host's page-sized st_size defeats."""
    if cell:
        as_cell(bundle)
    limits(bundle, memory=256 << 20, quota=50000)
    rootfs = bundle.path / "rootfs"
    for link in ("lib", "lib64"):
        if os.path.islink(f"/{link}"):
            os.symlink(os.readlink(f"/{link}"), rootfs / link)
        elif os.path.isdir(f"/{link}"):
            bundle.bind(f"/{link}", f"/{link}", "ro")
    bundle.bind("/usr", "/usr", "ro")
    (rootfs / "reader.py").write_text(VIEW_READER)
    bundle.args("/usr/bin/python3", "-I", "/reader.py")
    res = h.run_container(bundle, timeout=60)
    assert res.rc == 0, res.describe()
    result = json.loads(res.out)
    bad = {f: [k for k, ok in r.items() if not ok] for f, r in result.items()}
    if not cell:
        for f in bad:
            if f.startswith("/sys/"):
                bad[f] = [k for k in bad[f] if k != "busybox tail -c3"]
    assert not any(bad.values()), bad
