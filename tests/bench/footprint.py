"""Footprint: host memory per running idle container (busybox `sleep`).

For each runtime, `containers` idle containers run at once (detached), each with its own
cgroupsPath (/<id>) so that its memory cgroup is known. Then, per container:

- runtime processes: the processes the runtime left running (its --root is on their
  command line: runsc's sandbox and gofer, runcell's cell kernel; runc and runcell-native
  leave none besides the container's own init), and their PSS (shared pages divided among
  the processes sharing them);
- cgroup: the memory usage of the container's cgroup (which holds whatever the runtime put
  there: the container's processes, runsc's sandbox);
- total: cgroup usage plus the PSS of the runtime processes outside the cgroup, which
  counts nothing twice;
- PSS of all its host processes: the runtime's and the container's own. This counts
  the shared file pages (a runtime's binary text) that the cgroup was not charged for
  because another cgroup read them first, and misses the kernel memory that the cgroup
  usage counts: quote both.
"""
import os
import time

from benchlib import BenchError, Benchmark, live_pids, memory_cgroup, pss_kib, cmdline
from benchlib import load_config, read_text, save_config


def _bundle_for(session, base, cid):
    """A bundle of its own for cid (its cgroupsPath), sharing base's rootfs."""
    cfg = load_config(base)
    cfg["root"]["path"] = os.path.join(base, "rootfs")
    cfg.setdefault("linux", {})["cgroupsPath"] = "/" + cid
    path = os.path.join(session.work, "fp-" + cid)
    os.makedirs(path)
    save_config(path, cfg)
    return path


def run(session, runtimes, p):
    bench = Benchmark("footprint", "Footprint of an idle container (host memory)", p)
    bench.metric("total_kib", "total per container (cgroup + runtime processes outside it)",
                 "KiB", "lower")
    bench.metric("cgroup_kib", "container cgroup memory usage", "KiB", "lower")
    bench.metric("pss_all_kib", "PSS of all its host processes (runtime's and container's)",
                 "KiB", "lower")
    bench.metric("runtime_pss_kib", "runtime processes left running: PSS", "KiB", "lower")
    bench.metric("runtime_procs", "runtime processes left running", "processes", "lower")
    base = session.busybox_bundle("sleep", ["sleep", "86400"])
    n = p["containers"]

    def one(rt, i):
        before = live_pids()
        ids = [session.new_id(rt, "idle") for _ in range(n)]
        try:
            for cid in ids:
                rt.call("run", "--detach", "--bundle", _bundle_for(session, base, cid), cid)
            time.sleep(p["settle_s"])  # let the runtimes' helpers finish starting
            for cid in ids:
                state = rt.state(cid)
                if state["status"] != "running":
                    raise BenchError("%s: idle container %s is not running" % (rt.name, cid))
                session.record_mode(rt, state)
            cg_procs, usage = set(), 0
            for cid in ids:
                d, u = memory_cgroup("/" + cid)
                if d is None:
                    raise BenchError("%s: no memory cgroup at cgroupsPath /%s" % (rt.name, cid))
                usage += u
                cg_procs |= {int(x) for x in (read_text(os.path.join(d, "cgroup.procs"), "")
                                              or "").split()}
            helpers = [pid for pid in live_pids() - before if rt.root in cmdline(pid)]
            pss = {pid: pss_kib(pid) for pid in helpers}
            outside = sum(v for pid, v in pss.items() if pid not in cg_procs)
            bench.add("cgroup_kib", rt.name, usage / 1024 / n)
            bench.add("runtime_pss_kib", rt.name, sum(pss.values()) / n)
            bench.add("runtime_procs", rt.name, len(helpers) / n)
            bench.add("total_kib", rt.name, (usage / 1024 + outside) / n)
            every = set(helpers) | cg_procs
            bench.add("pss_all_kib", rt.name, sum(pss_kib(pid) for pid in every) / n)
            if i == 0:
                names = sorted({cmdline(pid).split()[0].rsplit("/", 1)[-1] for pid in helpers
                                if cmdline(pid)})
                bench.note("%s leaves %d process(es) per container (by name: %s)" %
                           (rt.name, round(len(helpers) / n), ", ".join(names) or "none"))
        finally:
            for cid in ids:
                rt.call("delete", "--force", cid, check=False, timeout=60)

    bench.alternate(runtimes, p["reps"], one)
    return bench
