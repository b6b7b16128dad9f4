"""Lifecycle latency: `run` of /bin/true (the test crun quotes for its headline claim),
`create`, `start` and `delete` timed separately, and batches of concurrent runs (the wall
time of a batch and the time of each run in it)."""
import threading
import time

from benchlib import BenchError, Benchmark


def true_bundle(session):
    return session.busybox_bundle("true", ["/bin/true"])


def time_run_true(session, bench, runtimes, runs):
    """runs sequential `run`s of /bin/true per runtime, alternated run by run."""
    bundle = true_bundle(session)
    bench.metric("run_ms", "run /bin/true (sequential)", "ms", "lower")

    def one(rt, i):
        cid = session.new_id(rt, "run")
        t0 = time.perf_counter()
        rt.call("run", "--bundle", bundle, cid)
        bench.add("run_ms", rt.name, (time.perf_counter() - t0) * 1000)

    bench.alternate(runtimes, runs, one)


def time_create_start_delete(session, bench, runtimes, cycles):
    bundle = true_bundle(session)
    bench.metric("create_ms", "create", "ms", "lower")
    bench.metric("start_ms", "start", "ms", "lower")
    bench.metric("delete_ms", "delete (stopped container)", "ms", "lower")

    def one(rt, i):
        cid = session.new_id(rt, "csd")
        t0 = time.perf_counter()
        rt.call("create", "--bundle", bundle, cid)
        t1 = time.perf_counter()
        rt.call("start", cid)
        t2 = time.perf_counter()
        if i == 0:
            session.record_mode(rt, rt.state(cid))
        rt.wait_stopped(cid)  # /bin/true exits at once; the wait is not timed
        t3 = time.perf_counter()
        rt.call("delete", cid)
        t4 = time.perf_counter()
        bench.add("create_ms", rt.name, (t1 - t0) * 1000)
        bench.add("start_ms", rt.name, (t2 - t1) * 1000)
        bench.add("delete_ms", rt.name, (t4 - t3) * 1000)

    bench.alternate(runtimes, cycles, one)


def time_concurrent(session, bench, runtimes, concurrency, batches):
    """Batches of `concurrency` runs of /bin/true started at the same moment."""
    bundle = true_bundle(session)
    bench.metric("batch_wall_ms", "%d concurrent runs: wall time of the batch" % concurrency,
                 "ms", "lower")
    bench.metric("concurrent_run_ms", "%d concurrent runs: each run" % concurrency, "ms",
                 "lower")

    def one(rt, i):
        ids = [session.new_id(rt, "conc") for _ in range(concurrency)]
        gate = threading.Barrier(concurrency)
        spans = [None] * concurrency

        def worker(k):
            gate.wait()
            t0 = time.perf_counter()
            try:
                rt.call("run", "--bundle", bundle, ids[k], timeout=300)
                spans[k] = (t0, time.perf_counter())
            except BenchError as e:
                spans[k] = e

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        failed = [s for s in spans if isinstance(s, BenchError)]
        if failed:
            raise BenchError("%d of %d concurrent runs failed; first: %s" %
                             (len(failed), concurrency, failed[0]))
        bench.add("batch_wall_ms", rt.name,
                  (max(e for _, e in spans) - min(s for s, _ in spans)) * 1000)
        for s, e in spans:
            bench.add("concurrent_run_ms", rt.name, (e - s) * 1000)

    bench.alternate(runtimes, batches, one)


def run(session, runtimes, p):
    bench = Benchmark("lifecycle", "Lifecycle latency", p)
    time_run_true(session, bench, runtimes, p["runs"])
    totals = ["%s %.2f s" % (rt, sum(v) / 1000)
              for rt, v in bench.data["metrics"]["run_ms"]["samples"].items()
              if rt not in bench.errors]
    bench.note("%d sequential runs of /bin/true take in total: %s" % (p["runs"], ", ".join(totals)))
    time_create_start_delete(session, bench, runtimes, p["cycles"])
    time_concurrent(session, bench, runtimes, p["concurrency"], p["batches"])
    return bench
