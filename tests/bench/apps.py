"""Application throughput over loopback: redis-server with redis-benchmark, and nginx with
wrk, Debian's packages. Server and client run in the same container (so the traffic stays
in the container's network namespace: runsc's netstack for runsc, the host kernel's
loopback for the others), in a bundle whose rootfs is the host's own /usr and /etc bound
read-only, with tmpfs on /tmp, /var and /run."""
import csv
import io
import os
import re
import resource
import shutil

from benchlib import BenchError, Benchmark, load_config, save_config

# Docker's default capability set: nginx's master switches its workers to another user
# (CAP_SETUID/SETGID) and chowns their temp directories (CAP_CHOWN).
CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
        "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]

TOOLS = {"redis": ["redis-server", "redis-benchmark", "redis-cli"], "nginx": ["nginx", "wrk"]}
PACKAGES = {"redis": "redis-server redis-tools", "nginx": "nginx-light (or nginx) and wrk"}

REDIS_SCRIPT = r"""
redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no --dir /tmp \
  --daemonize no --logfile /tmp/redis.log &
i=0
until redis-cli -p 6379 ping >/dev/null 2>&1; do
  i=$((i+1))
  [ $i -lt 400 ] || { echo "redis-server did not start:" >&2; cat /tmp/redis.log >&2; exit 1; }
  sleep 0.05
done
redis-benchmark -p 6379 -n {requests} -c {clients} -t set,get --csv
rc=$?
redis-cli -p 6379 shutdown nosave >/dev/null 2>&1 || kill $!
wait
exit $rc
"""

NGINX_SCRIPT = r"""
mkdir -p /var/lib/nginx /var/log/nginx
nginx -c /bench/nginx.conf &
i=0
until [ -s /tmp/nginx.pid ]; do
  i=$((i+1)); [ $i -lt 400 ] || { echo "nginx did not start" >&2; exit 1; }
  sleep 0.05
done
wrk -t1 -c{clients} -d{seconds}s http://127.0.0.1:8080/index.html
rc=$?
kill -QUIT $(cat /tmp/nginx.pid)
wait
exit $rc
"""

NGINX_CONF = """daemon off;
master_process on;
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr warn;
events { worker_connections 512; }
http {
  access_log off;
  default_type text/html;
  server {
    listen 127.0.0.1:8080;
    root /bench/www;
  }
}
"""


def missing_tools(app):
    return [t for t in TOOLS[app] if not shutil.which(t, path="/usr/sbin:/usr/bin")]


def host_bundle(session, name, script):
    """A bundle running `sh -c script` in a rootfs made of the host's /usr and /etc
    (read-only binds; /bin, /lib, /lib64 and /sbin are usr-merged symlinks on Debian 12),
    tmpfs on /tmp, /var and /run, and /bench (nginx's config and page) read-only."""
    path = os.path.join(session.work, "bundle-" + name)
    bench_dir = os.path.join(session.work, "bench-files")
    if not os.path.isdir(bench_dir):
        os.makedirs(os.path.join(bench_dir, "www"))
        with open(os.path.join(bench_dir, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF)
        with open(os.path.join(bench_dir, "www", "index.html"), "w") as f:
            f.write("<html><body>" + "runcell bench " * 40 + "</body></html>\n")
        for dirpath, dirnames, filenames in os.walk(bench_dir):
            for n in dirnames:
                os.chmod(os.path.join(dirpath, n), 0o755)
            for n in filenames:
                os.chmod(os.path.join(dirpath, n), 0o644)
        os.chmod(bench_dir, 0o755)
    rootfs = os.path.join(path, "rootfs")
    os.makedirs(rootfs)
    for d in ("usr", "etc", "tmp", "var", "run", "proc", "sys", "dev", "bench", "root"):
        os.mkdir(os.path.join(rootfs, d))
    for link in ("bin", "lib", "lib64", "sbin"):
        target = os.path.realpath("/" + link)
        if target.startswith("/usr/"):
            os.symlink(target.lstrip("/"), os.path.join(rootfs, link))
        else:
            raise BenchError("apps: host /%s is not a symlink into /usr (not usr-merged); "
                             "the host-files bundle needs a usr-merged host" % link)
    base = session.busybox_bundle("true", ["/bin/true"])  # for `runcell spec`'s config
    cfg = load_config(base)
    proc = cfg["process"]
    proc["args"] = ["/bin/sh", "-c", script]
    proc["env"] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "HOME=/root", "LANG=C"]
    for kind in ("bounding", "effective", "permitted"):
        proc["capabilities"][kind] = list(CAPS)
    proc["capabilities"].pop("ambient", None)
    # redis wants 10032 descriptors; a container cannot go above the runtime's hard limit
    nofile = min(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    proc["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}]
    cfg["root"] = {"path": "rootfs", "readonly": True}
    ro_bind = ["rbind", "ro", "nosuid", "nodev"]
    cfg["mounts"] += [
        {"destination": "/usr", "type": "bind", "source": "/usr", "options": ro_bind},
        {"destination": "/etc", "type": "bind", "source": "/etc", "options": ro_bind},
        {"destination": "/bench", "type": "bind", "source": bench_dir, "options": ro_bind},
    ] + [{"destination": d, "type": "tmpfs", "source": "tmpfs",
          "options": ["nosuid", "nodev", "mode=1777", "size=256m"]}
         for d in ("/tmp", "/var", "/run")]
    save_config(path, cfg)
    return path


def parse_redis(out, who):
    rows = {row["test"]: float(row["rps"]) for row in csv.DictReader(io.StringIO(out))
            if row.get("test") and row.get("rps")}
    if "SET" not in rows or "GET" not in rows:
        raise BenchError("%s: redis-benchmark printed no SET/GET results: %r" % (who, out[-400:]))
    return rows["SET"], rows["GET"]


def parse_wrk(out, who):
    m = re.search(r"Requests/sec:\s*([0-9.]+)", out)
    if not m:
        raise BenchError("%s: wrk printed no result: %r" % (who, out[-400:]))
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    if bad:
        raise BenchError("%s: nginx answered %s requests with an error status" %
                         (who, bad.group(1)))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out)
    if errors and int(errors.group(1)):
        raise BenchError("%s: wrk could not connect to nginx: %s" % (who, errors.group(0)))
    return float(m.group(1))


def run(session, runtimes, p):
    bench = Benchmark("apps", "Application throughput over loopback", p)
    apps = []
    for app in ("redis", "nginx"):
        missing = missing_tools(app)
        if missing:
            bench.note("%s skipped: %s not installed (apt-get install %s, or "
                       "RUNCELL_DEPS_OPTIONAL=1 scripts/install-deps.sh)" %
                       (app, ", ".join(missing), PACKAGES[app]))
            bench.data.setdefault("skipped", {})[app] = "not installed: " + ", ".join(missing)
        else:
            apps.append(app)
    if "redis" in apps:
        for op in ("set", "get"):
            bench.metric("redis_%s_rps" % op, "redis %s (redis-benchmark, %d clients)" %
                         (op.upper(), p["redis_clients"]), "req/s", "higher")
        redis = host_bundle(session, "redis", REDIS_SCRIPT.replace(
            "{requests}", str(p["redis_requests"])).replace("{clients}", str(p["redis_clients"])))
    if "nginx" in apps:
        bench.metric("nginx_rps", "nginx static page (wrk, %d connections)" % p["wrk_connections"],
                     "req/s", "higher")
        nginx = host_bundle(session, "nginx", NGINX_SCRIPT.replace(
            "{clients}", str(p["wrk_connections"])).replace("{seconds}", str(p["wrk_seconds"])))

    def one(rt, i):
        if "redis" in apps:
            out = rt.call("run", "--bundle", redis, session.new_id(rt, "redis"), capture=True,
                          timeout=600)[1]
            set_rps, get_rps = parse_redis(out, rt.name)
            bench.add("redis_set_rps", rt.name, set_rps)
            bench.add("redis_get_rps", rt.name, get_rps)
        if "nginx" in apps:
            out = rt.call("run", "--bundle", nginx, session.new_id(rt, "nginx"), capture=True,
                          timeout=600)[1]
            bench.add("nginx_rps", rt.name, parse_wrk(out, rt.name))

    bench.alternate(runtimes, p["reps"], one)
    return bench
