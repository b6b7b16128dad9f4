/* Test driver: plays the host's side of the agent protocol over the unix socket that QEMU
 * gives the guest's virtconsole, so the guest agent can be tested before runcell's own VMM
 * exists. It sends CONFIG built from its arguments, START, relays its own stdio with flow
 * control, forwards the signals it gets, and exits with the workload's status (128+N for a
 * signal). A guest ERROR is printed as "agent_drive: guest error (STAGE): MESSAGE" and
 * exits 125.
 *
 *   agent_drive SOCK [--tty] [--winsize ROWSxCOLS] [--rootfs DEV] [--fstype T] [--ro]
 *               [--hostname H] [--cwd DIR] [--env K=V]... [--uid N] [--gid N]
 *               [--umask OCTAL] [--rlimit TYPE:SOFT:HARD]...
 *               [--mount DEST:TYPE:SOURCE[:OPT,OPT...]]... [--no-default-mounts]
 *               [--volume DEV:FSTYPE[:ro]]... [--timeout SECONDS] [--eof-when-drained]
 *               -- ARGS...
 *
 * --eof-when-drained holds STDIN_EOF back until the agent has credited every stdin byte,
 * so that it arrives when the agent has nothing left to write (a case a fast host makes
 * by chance). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "runcell/agent_proto.h"

#define MAX_ITEMS 64

static struct agent_msg out;
static bool eof_when_drained;
static struct agent_reader reader;

static __attribute__((noreturn)) void die(const char *what, const struct rc_error *err) {
  fprintf(stderr, "agent_drive: %s%s%s\n", what, err ? ": " : "", err ? err->msg : "");
  exit(125);
}

static void send_msg(int fd) {
  struct rc_error err = {0};
  if (agent_msg_end(&out, &err) < 0 || agent_msg_write(fd, &out, &err) < 0) die("send", &err);
}

/* Waits for the next frame (deadline in seconds since the epoch, 0 for none). */
static void recv_frame(int fd, struct agent_frame *f, time_t deadline) {
  struct rc_error err = {0};
  for (;;) {
    int r = agent_reader_next(&reader, f, &err);
    if (r < 0) die("protocol", &err);
    if (r > 0) {
      if (!agent_msg_from_guest(f->type)) die("a host-bound message type from the guest", NULL);
      return;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int timeout = -1;
    if (deadline) {
      time_t left = deadline - time(NULL);
      if (left <= 0) die("timed out waiting for the guest", NULL);
      timeout = (int)left * 1000;
    }
    if (poll(&p, 1, timeout) < 0 && errno != EINTR) die("poll", NULL);
    bool eof = false;
    if (agent_reader_fill(&reader, fd, &eof, &err) < 0) die("read", &err);
    if (eof) die("the guest closed the channel", NULL);
  }
}

static __attribute__((noreturn)) void guest_error(const struct agent_frame *f) {
  struct agent_error_msg e;
  struct rc_error err = {0};
  if (agent_decode_error(f, &e, &err) < 0) die("bad ERROR", &err);
  /* the message already ends with the errno's text */
  fprintf(stderr, "agent_drive: guest error (%s): %s\n", agent_stage_name(e.stage), e.message);
  exit(125);
}

static int connect_socket(const char *path, time_t deadline) {
  for (;;) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket", NULL);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) return fd;
    close(fd);
    if (time(NULL) >= deadline) {
      fprintf(stderr, "agent_drive: connect %s: %s\n", path, strerror(errno));
      exit(125);
    }
    usleep(50000);
  }
}

static void add_mount(struct agent_config *cfg, const char *spec) {
  if (cfg->n_mounts >= MAX_ITEMS) die("too many mounts", NULL);
  char *s = strdup(spec);
  char *dest = strtok(s, ":"), *type = strtok(NULL, ":"), *source = strtok(NULL, ":");
  char *opts = strtok(NULL, "");
  if (!dest || !type || !source) die("--mount DEST:TYPE:SOURCE[:OPTS]", NULL);
  struct agent_mount *m = &cfg->mounts[cfg->n_mounts++];
  m->destination = strdup(dest);
  m->type = strdup(type);
  m->source = strdup(source);
  m->options = calloc(MAX_ITEMS + 1, sizeof(char *));
  for (char *o = opts ? strtok(opts, ",") : NULL; o && m->n_options < MAX_ITEMS;
       o = strtok(NULL, ","))
    m->options[m->n_options++] = strdup(o);
  free(s);
}

static void default_mounts(struct agent_config *cfg) {
  add_mount(cfg, "/proc:proc:proc:nosuid,noexec,nodev");
  add_mount(cfg, "/dev:tmpfs:tmpfs:nosuid,strictatime,mode=755,size=65536k");
  add_mount(cfg, "/dev/pts:devpts:devpts:nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5");
  add_mount(cfg, "/dev/shm:tmpfs:shm:nosuid,noexec,nodev,mode=1777,size=65536k");
  add_mount(cfg, "/sys:sysfs:sysfs:nosuid,noexec,nodev,ro");
}

static void parse_args(int argc, char **argv, struct agent_config *cfg, int *timeout) {
  static char *args[MAX_ITEMS + 1], *env[MAX_ITEMS + 1];
  static struct agent_mount mounts[MAX_ITEMS];
  static struct agent_volume volumes[AGENT_MAX_VOLUMES];
  static struct agent_rlimit rlimits[AGENT_MAX_RLIMIT_TYPE];
  bool defaults = true;
  cfg->args = args;
  cfg->env = env;
  cfg->mounts = mounts;
  cfg->volumes = volumes;
  cfg->rlimits = rlimits;
  cfg->cwd = "/";
  cfg->hostname = "";
  cfg->rootfs_device = "/dev/vda";
  cfg->rootfs_fstype = "erofs";
  /* the agent tests run their workloads as a full root (capabilities are the runtime's
   * business: test_microvm_lane's caps scenario checks them) */
  cfg->privileges.bounding = cfg->privileges.effective = cfg->privileges.permitted = ~0ULL;
  env[cfg->n_env++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  const char *mount_specs[MAX_ITEMS];
  unsigned n_mount_specs = 0;
  int i = 2;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--tty") == 0) {
      cfg->terminal = true;
      continue;
    }
    if (strcmp(a, "--ro") == 0) {
      cfg->rootfs_read_only = true;
      continue;
    }
    if (strcmp(a, "--eof-when-drained") == 0) {
      eof_when_drained = true;
      continue;
    }
    if (strcmp(a, "--no-default-mounts") == 0) {
      defaults = false;
      continue;
    }
    if (!v) die("an option lacks its value", NULL);
    i++;
    if (strcmp(a, "--winsize") == 0) {
      unsigned r = 0, c = 0;
      if (sscanf(v, "%ux%u", &r, &c) != 2) die("--winsize ROWSxCOLS", NULL);
      cfg->winsize = (struct agent_winsize){(uint16_t)r, (uint16_t)c};
    } else if (strcmp(a, "--rootfs") == 0) {
      cfg->rootfs_device = (char *)v;
    } else if (strcmp(a, "--fstype") == 0) {
      cfg->rootfs_fstype = (char *)v;
    } else if (strcmp(a, "--hostname") == 0) {
      cfg->hostname = (char *)v;
    } else if (strcmp(a, "--cwd") == 0) {
      cfg->cwd = (char *)v;
    } else if (strcmp(a, "--env") == 0 && cfg->n_env < MAX_ITEMS) {
      env[cfg->n_env++] = (char *)v;
    } else if (strcmp(a, "--uid") == 0) {
      cfg->uid = (uint32_t)strtoul(v, NULL, 10);
    } else if (strcmp(a, "--gid") == 0) {
      cfg->gid = (uint32_t)strtoul(v, NULL, 10);
    } else if (strcmp(a, "--umask") == 0) {
      cfg->has_umask = true;
      cfg->umask = (uint32_t)strtoul(v, NULL, 8);
    } else if (strcmp(a, "--rlimit") == 0 && cfg->n_rlimits < AGENT_MAX_RLIMIT_TYPE) {
      struct agent_rlimit *r = &rlimits[cfg->n_rlimits++];
      unsigned long long s = 0, h = 0;
      if (sscanf(v, "%u:%llu:%llu", &r->type, &s, &h) != 3) die("--rlimit TYPE:SOFT:HARD", NULL);
      r->soft = s;
      r->hard = h;
    } else if (strcmp(a, "--mount") == 0 && n_mount_specs < MAX_ITEMS) {
      mount_specs[n_mount_specs++] = v;
    } else if (strcmp(a, "--volume") == 0 && cfg->n_volumes < AGENT_MAX_VOLUMES) {
      char *s = strdup(v);
      struct agent_volume *vol = &volumes[cfg->n_volumes++];
      vol->device = strtok(s, ":");
      vol->fstype = strtok(NULL, ":");
      const char *ro = strtok(NULL, ":");
      vol->read_only = ro && strcmp(ro, "ro") == 0;
    } else if (strcmp(a, "--timeout") == 0) {
      *timeout = atoi(v);
    } else {
      fprintf(stderr, "agent_drive: unknown option %s\n", a);
      exit(125);
    }
  }
  if (cfg->terminal) env[cfg->n_env++] = "TERM=xterm";
  for (i++; i < argc && cfg->n_args < MAX_ITEMS; i++) args[cfg->n_args++] = argv[i];
  if (defaults) default_mounts(cfg);
  for (unsigned k = 0; k < n_mount_specs; k++) add_mount(cfg, mount_specs[k]);
}

static void write_out(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return; /* our reader went away: the bytes are dropped, the credit still goes */
    p += w;
    n -= (size_t)w;
  }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: agent_drive SOCK [OPTIONS] -- ARGS...\n");
    return 125;
  }
  struct agent_config cfg = {0};
  int timeout = 120;
  parse_args(argc, argv, &cfg, &timeout);
  struct rc_error err = {0};
  time_t deadline = time(NULL) + timeout;

  sigset_t fwd;
  sigemptyset(&fwd);
  int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
  for (size_t k = 0; k < sizeof(forwarded) / sizeof(forwarded[0]); k++)
    sigaddset(&fwd, forwarded[k]);
  sigprocmask(SIG_BLOCK, &fwd, NULL);
  signal(SIGPIPE, SIG_IGN);
  int sfd = signalfd(-1, &fwd, SFD_CLOEXEC | SFD_NONBLOCK);

  int sock = connect_socket(argv[1], deadline);
  agent_reader_init(&reader);
  struct agent_frame f;
  recv_frame(sock, &f, deadline);
  struct agent_hello hello;
  if (agent_decode_hello(&f, &hello, &err) < 0) die("HELLO", &err);
  if (agent_encode_config(&out, &cfg, &err) < 0) die("CONFIG", &err);
  if (agent_msg_write(sock, &out, &err) < 0) die("send CONFIG", &err);
  recv_frame(sock, &f, deadline);
  if (f.type == AGENT_MSG_ERROR) guest_error(&f);
  if (agent_decode_empty(&f, AGENT_MSG_CONFIGURED, &err) < 0) die("CONFIGURED", &err);
  agent_encode_empty(&out, AGENT_MSG_START);
  send_msg(sock);
  recv_frame(sock, &f, deadline);
  if (f.type == AGENT_MSG_ERROR) guest_error(&f);
  uint32_t pid = 0;
  if (agent_decode_started(&f, &pid, &err) < 0) die("STARTED", &err);

  /* the relay: our stdin to STDIN within the window, STDOUT/STDERR to our stdout/stderr */
  uint32_t stdin_window = AGENT_STDIO_WINDOW;
  bool stdin_open = true, eof_pending = false;
  static uint8_t buf[AGENT_STDIO_CHUNK];
  int flags = fcntl(sock, F_GETFL);
  fcntl(sock, F_SETFL, flags | O_NONBLOCK);
  for (;;) {
    if (eof_pending && (!eof_when_drained || stdin_window == AGENT_STDIO_WINDOW)) {
      eof_pending = false;
      agent_encode_stdin_eof(&out, AGENT_PROC_CONTAINER);
      send_msg(sock);
    }
    struct pollfd p[3] = {{.fd = sock, .events = POLLIN},
                          {.fd = stdin_open && stdin_window ? 0 : -1, .events = POLLIN},
                          {.fd = sfd, .events = POLLIN}};
    if (poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll", NULL);
    }
    if (p[2].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        agent_encode_signal(&out, AGENT_PROC_CONTAINER, si.ssi_signo);
        send_msg(sock);
      }
    }
    if (p[1].revents) {
      size_t want = stdin_window < sizeof(buf) ? stdin_window : sizeof(buf);
      ssize_t n = read(0, buf, want);
      if (n > 0) {
        stdin_window -= (uint32_t)n;
        agent_encode_data(&out, AGENT_MSG_STDIN, AGENT_PROC_CONTAINER, buf, (size_t)n);
        send_msg(sock);
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        stdin_open = false;
        eof_pending = true;
      }
    }
    if (!p[0].revents) continue;
    bool eof = false;
    if (agent_reader_fill(&reader, sock, &eof, &err) < 0) die("read", &err);
    for (;;) {
      int r = agent_reader_next(&reader, &f, &err);
      if (r < 0) die("protocol", &err);
      if (r == 0) break;
      if (f.type == AGENT_MSG_STDOUT || f.type == AGENT_MSG_STDERR) {
        struct agent_data d;
        if (agent_decode_data(&f, &d, &err) < 0) die("STDOUT/STDERR", &err);
        write_out(f.type == AGENT_MSG_STDOUT ? 1 : 2, d.bytes, d.len);
        struct agent_output_credit c = {.proc = d.proc};
        if (f.type == AGENT_MSG_STDOUT)
          c.stdout_bytes = d.len;
        else
          c.stderr_bytes = d.len;
        agent_encode_output_credit(&out, &c);
        send_msg(sock);
      } else if (f.type == AGENT_MSG_STDIN_CREDIT) {
        uint32_t proc = 0, n = 0;
        if (agent_decode_stdin_credit(&f, &proc, &n, &err) < 0) die("STDIN_CREDIT", &err);
        if (n > AGENT_STDIO_WINDOW - stdin_window) die("credit for stdin never sent", NULL);
        stdin_window += n;
      } else if (f.type == AGENT_MSG_EXIT) {
        struct agent_exit ex;
        if (agent_decode_exit(&f, &ex, &err) < 0) die("EXIT", &err);
        return agent_exit_status(&ex);
      } else if (f.type == AGENT_MSG_ERROR) {
        guest_error(&f);
      } else {
        fprintf(stderr, "agent_drive: unexpected %s\n", agent_msg_name(f.type));
        return 125;
      }
    }
    if (eof) die("the guest closed the channel before EXIT", NULL);
  }
}
