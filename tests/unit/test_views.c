/* The cell's file views, rendered from fixed host files and limits; the views server's
 * limits, driven through a socket in place of /dev/fuse. */
#include <errno.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runcell/views.h"
#include "unit.h"

static const char host_meminfo[] =
    "MemTotal:        8000000 kB\n"
    "MemFree:         4000000 kB\n"
    "MemAvailable:    6000000 kB\n"
    "Buffers:           10000 kB\n"
    "Cached:          1500000 kB\n"
    "Active(file):     700000 kB\n"
    "SwapTotal:       2000000 kB\n"
    "SwapFree:        2000000 kB\n"
    "HugePages_Total:       0\n";

static void meminfo_of_a_limited_cell(void) {
  struct rc_view_input in = {
      .limits = {.memory_limit = 256u << 20,
                 .memory_usage = 64u << 20,
                 .memory_inactive_file = 8u << 20},
      .page_cache = 16u << 20,
      .memory_stat = "total_active_file 4194304\ntotal_inactive_file 8388608\n",
      .host_meminfo = host_meminfo,
      .cpus = 1};
  char *t = rc_view_render(RC_VIEW_MEMINFO, &in);
  CHECK_CONTAINS(t, "MemTotal:         262144 kB\n");
  CHECK_CONTAINS(t, "MemFree:          196608 kB\n");
  CHECK_CONTAINS(t, "MemAvailable:     204800 kB\n"); /* free + reclaimable cache */
  CHECK_CONTAINS(t, "Buffers:               0 kB\n");
  CHECK_CONTAINS(t, "Cached:            16384 kB\n");
  CHECK_CONTAINS(t, "Active(file):       4096 kB\n");
  CHECK_CONTAINS(t, "SwapTotal:             0 kB\n");
  CHECK_CONTAINS(t, "HugePages_Total:       0\n"); /* lines about the host stay */
  free(t);
}

static void meminfo_without_a_limit_is_the_hosts(void) {
  struct rc_view_input in = {.host_meminfo = host_meminfo, .cpus = 2};
  char *t = rc_view_render(RC_VIEW_MEMINFO, &in);
  CHECK_STR_EQ(t, host_meminfo);
  free(t);
  in.limits.memory_limit = 64ull << 30; /* above the host's memory: no change */
  t = rc_view_render(RC_VIEW_MEMINFO, &in);
  CHECK_STR_EQ(t, host_meminfo);
  free(t);
}

static void cpus_are_cut_and_renumbered(void) {
  const char cpuinfo[] =
      "processor\t: 0\nmodel name\t: X\n\nprocessor\t: 1\nmodel name\t: X\n\n"
      "processor\t: 2\nmodel name\t: X\n\n";
  const char stat[] =
      "cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 1 0 2 30 0 0 0 0 0 0\n"
      "cpu1 2 0 3 30 0 0 0 0 0 0\ncpu2 7 0 5 40 0 0 0 0 0 0\nctxt 99\n";
  struct rc_view_input in = {.host_cpuinfo = cpuinfo, .host_stat = stat, .cpus = 2};
  char *t = rc_view_render(RC_VIEW_CPUINFO, &in);
  CHECK_STR_EQ(t, "processor\t: 0\nmodel name\t: X\n\nprocessor\t: 1\nmodel name\t: X\n\n");
  free(t);
  t = rc_view_render(RC_VIEW_STAT, &in);
  CHECK_STR_EQ(t,
               "cpu  3 0 5 60 0 0 0 0 0 0\ncpu0 1 0 2 30 0 0 0 0 0 0\n"
               "cpu1 2 0 3 30 0 0 0 0 0 0\nctxt 99\n");
  free(t);
  t = rc_view_render(RC_VIEW_CPU_ONLINE, &in);
  CHECK_STR_EQ(t, "0-1\n");
  free(t);
  in.cpus = 1;
  t = rc_view_render(RC_VIEW_CPU_POSSIBLE, &in);
  CHECK_STR_EQ(t, "0\n");
  free(t);
}

static void uptime_is_the_cells(void) {
  struct rc_view_input in = {.uptime = 12.345, .cpus = 1};
  char *t = rc_view_render(RC_VIEW_UPTIME, &in);
  CHECK_STR_EQ(t, "12.35 0.00\n");
  free(t);
  CHECK_STR_EQ(rc_view_target(RC_VIEW_CPU_ONLINE), "/sys/devices/system/cpu/online");
}

/* --- the server -------------------------------------------------------------------- */

/* node ids: 1 the root, then one per view */
#define NODE(v) ((uint64_t)(v) + 2)
#define PER_PROCESS (1u << 14) /* views_fuse.c's MAX_OPEN_PER_PROCESS */
#define TEXT_BUDGET (16u << 20)

struct server {
  int fd, served; /* the kernel's side, the server's */
  struct rc_views_server *s;
  uint64_t unique;
  char reply[65536];
  size_t reply_len;    /* the data after the header */
  unsigned size_hints; /* NOTIFY_STORE messages seen (store_size_hint) */
  uint64_t hint_end;   /* the size the last one left the kernel with */
};

/* A server whose cell is this process: its pid namespace, its /proc. */
static void server_start(struct server *c) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
  c->fd = sv[0];
  c->served = sv[1];
  c->s = rc_views_server_new(sv[1], "/nonexistent/cgroup", getpid());
  c->unique = 0;
  c->size_hints = 0;
  c->hint_end = 0;
}

static void server_stop(struct server *c) {
  rc_views_server_free(c->s);
  close(c->fd);
  close(c->served);
}

/* One request from pid, served; returns the reply's error (its data in c->reply). */
static int request(struct server *c, uint32_t opcode, uint64_t node, uint32_t pid, const void *arg,
                   size_t arg_len) {
  char buf[sizeof(struct fuse_in_header) + 128];
  struct fuse_in_header h = {.len = (uint32_t)(sizeof(h) + arg_len),
                             .opcode = opcode,
                             .unique = ++c->unique,
                             .nodeid = node,
                             .pid = pid};
  memcpy(buf, &h, sizeof(h));
  memcpy(buf + sizeof(h), arg, arg_len);
  CHECK(write(c->fd, buf, h.len) == (ssize_t)h.len);
  CHECK(rc_views_server_handle(c->s) == 0);
  char out[sizeof(struct fuse_out_header) + sizeof(c->reply)];
  ssize_t n;
  struct fuse_out_header o = {0};
  for (;;) {
    n = read(c->fd, out, sizeof(out));
    if (n >= (ssize_t)sizeof(o)) memcpy(&o, out, sizeof(o));
    if (n < (ssize_t)sizeof(o) || o.unique != 0 || o.error != FUSE_NOTIFY_STORE) break;
    /* the size hint an OPEN may send first: one byte stored for the node it opens */
    struct fuse_notify_store_out st = {0};
    CHECK(opcode == FUSE_OPEN && n == (ssize_t)(sizeof(o) + sizeof(st) + 1));
    memcpy(&st, out + sizeof(o), sizeof(st));
    CHECK(st.nodeid == node && st.size == 1);
    c->size_hints++;
    c->hint_end = st.offset + st.size;
  }
  CHECK(n >= (ssize_t)sizeof(o) && o.unique == h.unique && o.len == (uint32_t)n);
  c->reply_len = n > (ssize_t)sizeof(o) ? (size_t)n - sizeof(o) : 0;
  memcpy(c->reply, out + sizeof(o), c->reply_len);
  return o.error;
}

/* Opens view v for pid: its fh, or the negative errno. */
static int64_t view_open(struct server *c, enum rc_view v, uint32_t pid) {
  struct fuse_open_in in = {.flags = 0};
  int e = request(c, FUSE_OPEN, NODE(v), pid, &in, sizeof(in));
  struct fuse_open_out out = {0};
  if (!e) memcpy(&out, c->reply, sizeof(out));
  return e ? e : (int64_t)out.fh;
}

static void view_release(struct server *c, uint64_t fh) {
  struct fuse_release_in in = {.fh = fh};
  CHECK(request(c, FUSE_RELEASE, 2, 1, &in, sizeof(in)) == 0);
}

/* The text of handle fh, NUL-terminated in c->reply. */
static const char *view_read(struct server *c, uint64_t fh) {
  struct fuse_read_in in = {.fh = fh, .offset = 0, .size = sizeof(c->reply) - 1};
  CHECK(request(c, FUSE_READ, 2, 1, &in, sizeof(in)) == 0);
  c->reply[c->reply_len] = '\0';
  return c->reply;
}

/* A thread that waits until it is let go, so that its id stays its own. */
struct waiter {
  pthread_t thread;
  pid_t tid;
  int gate[2];
};
static void *wait_thread(void *arg) {
  struct waiter *w = arg;
  __atomic_store_n(&w->tid, gettid(), __ATOMIC_RELEASE);
  char c;
  (void)!read(w->gate[0], &c, 1);
  return NULL;
}
static void waiter_start(struct waiter *w) {
  CHECK(pipe(w->gate) == 0);
  w->tid = 0;
  CHECK(pthread_create(&w->thread, NULL, wait_thread, w) == 0);
  while (!__atomic_load_n(&w->tid, __ATOMIC_ACQUIRE)) usleep(1000);
}
static void waiter_stop(struct waiter *w) {
  close(w->gate[1]);
  pthread_join(w->thread, NULL);
  close(w->gate[0]);
}

/* Another process, single-threaded, until killed. */
static pid_t other_process(void) {
  pid_t pid = fork();
  if (pid == 0)
    for (;;) pause();
  CHECK(pid > 0);
  return pid;
}
static void end_process(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

/* FUSE names the thread that opens: the threads of one process share its limit (they
 * used to have one each, and 17 threads took every handle of the cell), while another
 * process, and requests from outside the namespace (pid 0), still open. */
static void threads_share_their_process_limit(void) {
  struct server c;
  server_start(&c);
  enum { THREADS = 3 };
  struct waiter w[THREADS];
  uint32_t tids[THREADS + 1] = {(uint32_t)gettid()};
  for (int i = 0; i < THREADS; i++) {
    waiter_start(&w[i]);
    tids[i + 1] = (uint32_t)w[i].tid;
  }
  pid_t other = other_process();
  int64_t first = -1;
  unsigned opened = 0;
  for (unsigned i = 0; i < PER_PROCESS; i++) {
    int64_t fh = view_open(&c, RC_VIEW_UPTIME, tids[i % (THREADS + 1)]);
    if (fh < 0) break;
    if (first < 0) first = fh;
    opened++;
  }
  CHECK(opened == PER_PROCESS);
  for (int i = 0; i <= THREADS; i++) CHECK(view_open(&c, RC_VIEW_UPTIME, tids[i]) == -EMFILE);
  int64_t fh = view_open(&c, RC_VIEW_MEMINFO, (uint32_t)other);
  CHECK(fh >= 0);
  if (fh >= 0) CHECK(strncmp(view_read(&c, (uint64_t)fh), "MemTotal:", 9) == 0);
  CHECK(view_open(&c, RC_VIEW_UPTIME, 0) >= 0);
  /* a handle let go is the process's again, whichever thread takes it */
  view_release(&c, (uint64_t)first);
  CHECK(view_open(&c, RC_VIEW_UPTIME, tids[THREADS]) >= 0);
  CHECK(view_open(&c, RC_VIEW_UPTIME, tids[0]) == -EMFILE);
  end_process(other);
  for (int i = 0; i < THREADS; i++) waiter_stop(&w[i]);
  server_stop(&c);
}

/* Past the text budget, the texts used longest ago are dropped and render again when
 * read: every handle still reads a whole meminfo. */
static void texts_past_the_budget_render_again(void) {
  struct server c;
  server_start(&c);
  int64_t probe = view_open(&c, RC_VIEW_MEMINFO, (uint32_t)getpid());
  size_t len = probe >= 0 ? strlen(view_read(&c, (uint64_t)probe)) : 0;
  CHECK(len > 100);
  size_t want = len ? TEXT_BUDGET / len + 2000 : 0; /* handles of the budget and more */
  uint64_t *fhs = calloc(want + 1, sizeof(*fhs));
  enum { MAX_PROCESSES = 16 };
  pid_t procs[MAX_PROCESSES];
  size_t n = 0;
  int nprocs = 0;
  while (n < want && nprocs < MAX_PROCESSES) {
    procs[nprocs] = other_process();
    for (unsigned i = 0; i < PER_PROCESS && n < want; i++) {
      int64_t fh = view_open(&c, RC_VIEW_MEMINFO, (uint32_t)procs[nprocs]);
      CHECK(fh >= 0);
      if (fh < 0) break;
      fhs[n++] = (uint64_t)fh;
      if (n % 97 == 0) view_read(&c, fhs[n / 2]); /* a use that moves an older one last */
    }
    nprocs++;
  }
  CHECK(n == want);
  for (size_t i = 0; i < n; i += 2) view_release(&c, fhs[i]);
  size_t whole = 0;
  for (size_t i = 1; i < n; i += 2) {
    const char *t = view_read(&c, fhs[i]);
    whole += strncmp(t, "MemTotal:", 9) == 0 && strstr(t, "MemAvailable:") != NULL;
  }
  CHECK(whole == n / 2);
  for (int i = 0; i < nprocs; i++) end_process(procs[i]);
  free(fhs);
  server_stop(&c);
}

/* A bound view is never looked up again, so an open that renders afresh raises the
 * kernel's size above any text (NOTIFY_STORE; the first short page read brings it down):
 * sendfile read up to a stale size before. An open that takes the rendering a lookup just
 * reported (whose length the kernel holds) sends none. */
static void an_open_raises_the_kernels_size(void) {
  struct server c;
  server_start(&c);
  int64_t fh = view_open(&c, RC_VIEW_UPTIME, (uint32_t)getpid());
  CHECK(fh >= 0);
  CHECK(c.size_hints == 1);
  CHECK(c.hint_end == 4u << 20); /* views_fuse.c's SIZE_CEILING */
  CHECK(c.hint_end > strlen(view_read(&c, (uint64_t)fh)));
  view_release(&c, (uint64_t)fh);
  static const char name[] = "uptime";
  CHECK(request(&c, FUSE_LOOKUP, 1, (uint32_t)getpid(), name, sizeof(name)) == 0);
  fh = view_open(&c, RC_VIEW_UPTIME, (uint32_t)getpid());
  CHECK(fh >= 0);
  CHECK(c.size_hints == 1);
  view_release(&c, (uint64_t)fh);
  server_stop(&c);
}

UNIT_MAIN("views", UNIT_CASE(meminfo_of_a_limited_cell), UNIT_CASE(an_open_raises_the_kernels_size),
          UNIT_CASE(meminfo_without_a_limit_is_the_hosts), UNIT_CASE(cpus_are_cut_and_renumbered),
          UNIT_CASE(uptime_is_the_cells), UNIT_CASE(threads_share_their_process_limit),
          UNIT_CASE(texts_past_the_budget_render_again))
