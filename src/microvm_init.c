/* A microVM's init on the host: the process `create` clones becomes the VMM. It takes
 * the container's namespaces and cgroup (the parent put it there), boots the guest up to
 * the agent waiting with the container configured, reports "created", waits for `start`,
 * then relays stdio, signals and window sizes between the container's stdio and the
 * agent until the workload exits, and exits with the workload's status, as runc's init
 * would. Everything the guest sends is checked (agent_proto.c decodes with bounds; the
 * relay holds at most one flow-control window per stream). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "container_internal.h"
#include "microvm_host.h"
#include "runcell/agent_proto.h"
#include "runcell/cgroups.h"
#include "runcell/hooks.h"
#include "runcell/log.h"
#include "runcell/microvm.h"
#include "runcell/microvm_agent_config.h"
#include "runcell/microvm_control.h"
#include "runcell/microvm_net.h"
#include "runcell/namespaces.h"
#include "runcell/process_attrs.h"
#include "runcell/procfs.h"
#include "runcell/sync.h"
#include "runcell/terminal.h"
#include "runcell/util.h"
#include "runcell/vmm/layout.h"
#include "runcell/vmm/machine.h"

/* The vCPU threads are kicked out of KVM_RUN with this signal (vmm/machine_internal.h);
 * it is the one signal the VMM does not forward to the workload. */
#define KICK_SIGNAL (SIGRTMIN + 4)
/* How long the guest may take from power-on to its agent's HELLO, and to answer CONFIG
 * and START. Software-emulated lanes are slow: RUNCELL_MICROVM_BOOT_TIMEOUT_MS raises it. */
#define DEFAULT_BOOT_TIMEOUT_MS 60000
/* After EXIT the agent reboots the guest; a guest that does not is stopped. */
#define SHUTDOWN_GRACE_MS 5000
/* How long an exiting VMM waits for its vCPU threads to leave KVM_RUN. */
#define HALT_TIMEOUT_MS 2000

static int queue_push(struct byte_queue *q, const void *p, size_t n) {
  if (q->len + n > q->cap) return -1;
  memcpy(q->data + q->len, p, n);
  q->len += n;
  return 0;
}

static void queue_drop(struct byte_queue *q, size_t n) {
  memmove(q->data, q->data + n, q->len - n);
  q->len -= n;
}

/* The machine once its vCPUs run: every way out of this process stops them first. */
static struct vmm_machine *live_machine;

/* Logs, once, every device the guest drove wrongly (each stopped itself): whoever reads
 * the log learns why. */
static void log_device_faults(void) {
  static bool logged;
  if (!live_machine || logged) return;
  logged = true;
  const char *faults[VMM_VIRTIO_MAX_DEVICES];
  size_t n = vmm_machine_device_faults(live_machine, faults, RC_ARRAY_SIZE(faults));
  for (size_t i = 0; i < n; i++) rc_warn("microVM: the guest broke a device: %s", faults[i]);
}

/* Exits, with the vCPUs out of KVM_RUN first (bounded: a vCPU that does not leave is no
 * reason to stay). */
__attribute__((noreturn)) static void halt_and_exit(int status) {
  if (live_machine && vmm_machine_halt(live_machine, HALT_TIMEOUT_MS) < 0)
    rc_warn("microVM: a vCPU did not stop within %d ms", HALT_TIMEOUT_MS);
  log_device_faults();
  _exit(status);
}

/* Reports err to the runtime, which then removes the container (this process included):
 * what is worth logging is logged first. */
__attribute__((noreturn)) static void fail(int fd, struct rc_error *err) {
  log_device_faults();
  rc_sync_send_error(fd, err);
  halt_and_exit(1);
}

/* Free page reporting is on unless RUNCELL_MICROVM_FREE_PAGE_REPORTING=0 (for measuring
 * what it saves: tests/bench/microvm_balloon.py). */
static bool free_page_reporting(void) {
  const char *e = getenv("RUNCELL_MICROVM_FREE_PAGE_REPORTING");
  return !e || strcmp(e, "0") != 0;
}

static int timeout_ms(void) {
  const char *e = getenv("RUNCELL_MICROVM_BOOT_TIMEOUT_MS");
  long v = e ? strtol(e, NULL, 10) : 0;
  return v > 0 && v < 3600000 ? (int)v : DEFAULT_BOOT_TIMEOUT_MS;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static double ms_between(uint64_t from_ns, uint64_t to_ns) {
  return to_ns > from_ns ? (double)(to_ns - from_ns) / 1e6 : 0.0;
}

/* The end of the guest's console log, for an error about a guest that did not come up:
 * its last lines, one per " | ", as much as fits in size (the end is what tells why).
 * Only printable ASCII gets through (anything else becomes '?', control characters go):
 * the text ends up in an error message and a JSON log. */
static void console_tail(const struct vm *vm, char *out, size_t size) {
  out[0] = '\0';
  if (vm->console_log < 0 || size < 8) return;
  /* read through the descriptor the guest's console writes to (open for reading too):
   * the jailed VMM has no path to the file */
  int fd = vm->console_log;
  struct stat sb;
  if (fstat(fd, &sb) < 0 || sb.st_size == 0) return;
  char buf[1024];
  off_t from = sb.st_size > (off_t)sizeof(buf) - 1 ? sb.st_size - (off_t)sizeof(buf) + 1 : 0;
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
  if (n <= 0) return;
  buf[n] = '\0';
  char *start = buf;
  if (from > 0) {
    char *nl = strchr(buf, '\n');
    if (nl) start = nl + 1;
  }
  char text[3 * sizeof(buf)];
  size_t k = 0;
  for (char *p = start; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '\n') {
      if (p[1]) k += (size_t)snprintf(text + k, sizeof(text) - k, " | ");
    } else if (c >= 0x80) {
      text[k++] = '?';
    } else if (c >= 0x20 && c != 0x7f) {
      text[k++] = (char)c;
    }
  }
  text[k] = '\0';
  /* the last size-1 characters, from a line's start where one is near */
  const char *t = text;
  if (k > size - 1) {
    t = text + (k - (size - 1));
    const char *sep = strstr(t, " | ");
    if (sep && sep - t < (ptrdiff_t)(size / 4)) t = sep + 3;
  }
  snprintf(out, size, "%s", t);
}

/* Appends "; guest console: <its last words>" to the error (once): what says how far the
 * guest got, whether the machine stopped or the boot failed with it still running. */
static int append_console_tail(struct vm *vm, struct rc_error *err) {
  if (vm->console_in_error) return -1;
  vm->console_in_error = true;
  char tail[480]; /* with the rest, within an error message */
  console_tail(vm, tail, sizeof(tail));
  size_t n = strlen(err->msg);
  if (*tail && n < sizeof(err->msg) - 1)
    snprintf(err->msg + n, sizeof(err->msg) - n, "; guest console: %s", tail);
  return -1;
}

/* The machine stopped while we waited for the agent: why, with the console's last words. */
static int guest_stopped_error(struct vm *vm, const char *while_doing, struct rc_error *err) {
  char detail[256] = "";
  enum vmm_stop_reason r = VMM_STOP_NONE;
  /* (no machine: a test's channel, with nothing behind it to ask) */
  if (vm->machine) {
    r = vmm_machine_wait(vm->machine, detail, sizeof(detail));
    /* the first device the guest broke, if any: often the reason it could not go on */
    const char *fault = NULL;
    if (vmm_machine_device_faults(vm->machine, &fault, 1) == 1 && !*detail)
      snprintf(detail, sizeof(detail), "the guest broke a device: %s", fault);
  }
  rc_err(err, 0, "microVM: the guest stopped %s (%s%s%s)", while_doing,
         r == VMM_STOP_RESET      ? "it reset or powered off"
         : r == VMM_STOP_SHUTDOWN ? "shutdown"
         : r == VMM_STOP_FAULT    ? "fault"
                                  : "stopped",
         *detail ? ": " : "", detail);
  return append_console_tail(vm, err);
}

/* Queues a frame for the agent (written as the channel takes it). */
static int send_frame(struct vm *vm, struct agent_msg *m, struct rc_error *err) {
  if (agent_msg_end(m, err) < 0) return -1;
  /* An agent that stops reading its channel (while it keeps sending, so the host keeps
   * crediting) would make the host queue without end: past two frames and a window of
   * pending bytes it is failed instead. */
  if (queue_push(&vm->to_agent, m->bytes, m->len) < 0)
    return rc_err(err, ENOBUFS,
                  "microVM: the guest agent does not read its channel (%zu bytes of host "
                  "messages pending)",
                  vm->to_agent.len);
  return 0;
}

static int flush_agent(struct vm *vm, struct rc_error *err) {
  while (vm->to_agent.len) {
    ssize_t n = send(vm->agent, vm->to_agent.data, vm->to_agent.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return 0;
      return rc_err(err, errno, "microVM: write to the agent");
    }
    queue_drop(&vm->to_agent, (size_t)n);
  }
  return 0;
}

/* Waits until the agent sends a frame (returned in *f), flushing what we queued; fails
 * when the guest stops or the deadline passes first. */
static int await_frame(struct vm *vm, struct agent_frame *f, uint64_t deadline,
                       const char *while_doing, struct rc_error *err) {
  for (;;) {
    int r = agent_reader_next(vm->reader, f, err);
    if (r < 0) return rc_err_wrap(err, "microVM: agent %s", while_doing);
    if (r > 0) return 0;
    if (flush_agent(vm, err) < 0) return -1;
    uint64_t now = (uint64_t)rc_now_ms();
    if (now >= deadline)
      return rc_err(err, ETIMEDOUT, "microVM: no answer from the guest agent %s within %d ms",
                    while_doing, timeout_ms());
    struct pollfd p[2] = {{.fd = vm->agent, .events = POLLIN | (vm->to_agent.len ? POLLOUT : 0)},
                          {.fd = vm->stopped, .events = POLLIN}};
    int n = poll(p, 2, (int)(deadline - now));
    if (n < 0 && errno != EINTR) return rc_err(err, errno, "microVM: poll");
    if (n <= 0) continue;
    if (p[1].revents) return guest_stopped_error(vm, while_doing, err);
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      bool eof = false;
      if (agent_reader_fill(vm->reader, vm->agent, &eof, err) < 0) return -1;
      if (eof) {
        /* the machine closed the channel: it is stopping */
        uint64_t v;
        (void)!read(vm->stopped, &v, sizeof(v));
        return guest_stopped_error(vm, while_doing, err);
      }
    }
  }
}

/* An ERROR from the agent as the container's error. */
static int agent_error(const struct agent_frame *f, struct rc_error *err) {
  struct agent_error_msg e;
  if (agent_decode_error(f, &e, err) < 0) return -1;
  /* the agent's message already ends with its errno's text */
  rc_err(err, 0, "microVM guest agent: %s: %s", agent_stage_name(e.stage), e.message);
  err->code = e.errnum > 0 && e.errnum < 4096 ? e.errnum : 0;
  return -1;
}

static int expect(struct vm *vm, uint16_t type, struct agent_frame *f, uint64_t deadline,
                  const char *while_doing, struct rc_error *err) {
  if (await_frame(vm, f, deadline, while_doing, err) < 0) return -1;
  if (f->type == AGENT_MSG_ERROR) return agent_error(f, err);
  if (f->type != type)
    return rc_err(err, EPROTO, "microVM: the guest agent sent %s %s (expected %s)",
                  agent_msg_name(f->type), while_doing, agent_msg_name(type));
  return 0;
}

/* The container's NIC: the interface of its network namespace, joined to a tap that the
 * VMM's virtio-net uses (src/microvm_net.c). net_made: this process made the tap and the
 * redirects, so a failed create removes them (after that, `delete` does). */
static struct rc_microvm_net vm_net = {.tap_fd = -1};
static bool net_made;

static void release_network(void) {
  if (!net_made) return;
  struct rc_error e = {0};
  if (rc_microvm_net_teardown(&e) < 0) rc_warn("microVM: %s", e.msg);
  net_made = false;
}

static int send_network(struct vm *vm, const struct agent_network *net, struct rc_error *err) {
  struct agent_msg *m = rc_xcalloc(1, sizeof(*m));
  int r = agent_encode_network(m, net, err);
  if (r == 0) r = send_frame(vm, m, err);
  free(m);
  return r < 0 ? rc_err_wrap(err, "microVM: the network for the guest") : 0;
}

/* Boots the VM up to the agent holding the configured, not yet started, container. */
static int boot(struct vm *vm, const struct rc_init_ctx *ctx, struct rc_error *err) {
  const struct rc_microvm_plan *plan = ctx->microvm;
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
    return rc_err(err, errno, "microVM: socketpair for the agent channel");
  vm->agent = pair[0];
  fcntl(vm->agent, F_SETFL, O_NONBLOCK);
  uint64_t t_begin = now_ns();
  struct vmm_machine_config mc = {
      .kernel_path = plan->kernel,
      .initrd_path = plan->initrd,
      .cmdline = "quiet",
      .vcpus = plan->vcpus,
      .mem_bytes = plan->mem_bytes,
      .n_disks = plan->n_disks,
      .agent_fd = pair[1],
      .console_fd = ctx->vm_console_log,
      /* the guest hands freed memory back, and the host can shrink it and read its stats */
      .balloon = true,
      .balloon_cfg = {.free_page_reporting = free_page_reporting(),
                      /* `update --memory` is a limit: the guest may not take the
                       * balloon back when it runs short (and so its MemTotal shrinks) */
                      .deflate_on_oom = false,
                      .stats = true},
  };
  for (unsigned i = 0; i < plan->n_disks; i++)
    mc.disks[i] = (struct vmm_disk){.path = plan->disks[i].path,
                                    .read_only = plan->disks[i].read_only,
                                    .serial = plan->disks[i].serial};
  /* the VMM is in the container's network namespace already: its interface, if it has
   * one, becomes the guest's (never one of the host's, when there is no such namespace) */
  if (rc_microvm_net_wanted(vm->cfg) && rc_microvm_net_attach(&vm_net, err) < 0)
    return rc_err_wrap(err, "microVM");
  if (vm_net.present) {
    net_made = true;
    mc.has_net = true;
    mc.net.tap_fd = vm_net.tap_fd;
    memcpy(mc.net.mac, vm_net.guest.mac, sizeof(mc.net.mac));
    mc.net.mtu = (uint16_t)vm_net.guest.mtu;
  }
  int created = vmm_machine_create(&mc, &vm->machine, err);
  if (vm_net.tap_fd >= 0) close(vm_net.tap_fd); /* the device holds its own */
  vm_net.tap_fd = -1;
  if (created < 0) return rc_err_wrap(err, "microVM");
  vm->stopped = vmm_machine_stopped_fd(vm->machine);
  uint64_t t_created = now_ns();
  live_machine = vm->machine;
  /* The config is encoded before the jail: compiling linux.seccomp exports through a
   * memfd, which the jailed VMM cannot make. */
  struct agent_config *ac = NULL;
  cleanup_free struct agent_msg *config = rc_xcalloc(1, sizeof(*config));
  int encoded = rc_microvm_agent_config(vm->cfg, plan, &ac, err);
  if (encoded == 0) encoded = agent_encode_config(config, ac, err);
  rc_microvm_agent_config_free(ac);
  if (encoded < 0) return rc_err_wrap(err, "microVM: the container's config for the guest");
  /* The vCPU threads start parked (a pause before the start parks each as it starts):
   * not one guest instruction runs before the VMM is jailed. The guest kernel is
   * runcell's, but it probes the disks as it boots, and those hold the container's image:
   * a kernel parser bug an image could reach must meet the jailed VMM, not this one. */
  if (vmm_machine_pause(vm->machine, err) < 0 || vmm_machine_start(vm->machine, err) < 0)
    return rc_err_wrap(err, "microVM");
  /* Every thread exists now: the VMM is jailed, then the guest runs. The network's
   * undoing passes to create's own clean-up (rc_microvm_net_release), as the jailed VMM
   * can open no netlink socket. */
  net_made = false;
  if (rc_microvm_jail_enter(err) < 0 || rc_microvm_jail_syscalls(err) < 0) return -1;
  uint64_t t_jailed = now_ns();
  vmm_machine_resume(vm->machine);

  uint64_t t_hello = 0;
  if (rc_microvm_host_configure(vm, vm_net.present ? &vm_net.guest : NULL, config,
                                (uint64_t)rc_now_ms() + (uint64_t)timeout_ms(), &t_hello, err) < 0)
    return -1;
  /* The phases the benchmark (tests/bench/microvm_phases.py) reads from the log;
   * jail-to-guest-entry is never negative (the lane's lifecycle.sh checks it): the
   * guest's first instruction comes after the jail. */
  uint64_t entry = vmm_machine_first_entry_ns(vm->machine);
  rc_info(
      "microvm phases: vmm-setup %.3f ms, vmm-start-to-guest-entry %.3f ms, "
      "guest-entry-to-agent %.3f ms, agent-config %.3f ms, jail-to-guest-entry %.3f ms",
      ms_between(t_begin, t_created), ms_between(t_begin, entry), ms_between(entry, t_hello),
      ms_between(t_hello, now_ns()), ((double)entry - (double)t_jailed) / 1e6);
  return 0;
}

int rc_microvm_host_configure(struct vm *vm, const struct agent_network *net,
                              struct agent_msg *config, uint64_t deadline, uint64_t *t_hello,
                              struct rc_error *err) {
  struct agent_frame f;
  /* From here every failure is the guest's doing or shows how far it got (garbage or the
   * wrong message on the agent channel, no answer in time, a stop): the console's tail
   * goes with each (agent_failed). */
  if (expect(vm, AGENT_MSG_HELLO, &f, deadline, "while booting", err) < 0) goto agent_failed;
  struct agent_hello hello;
  if (agent_decode_hello(&f, &hello, err) < 0) {
    rc_err_wrap(err, "microVM: agent HELLO");
    goto agent_failed;
  }
  *t_hello = now_ns();
  rc_debug("microvm: agent %s (protocol %u) is up", hello.agent_version, hello.proto_version);
  if (net && send_network(vm, net, err) < 0) goto agent_failed;

  if (send_frame(vm, config, err) < 0) {
    rc_err_wrap(err, "microVM: the container's config for the guest");
    goto agent_failed;
  }
  if (expect(vm, AGENT_MSG_CONFIGURED, &f, deadline, "while setting up the container", err) < 0)
    goto agent_failed;
  return 0;
agent_failed:
  return append_console_tail(vm, err);
}

int rc_microvm_host_start(struct vm *vm, uint64_t deadline, uint32_t *guest_pid,
                          struct rc_error *err) {
  struct agent_msg *m = rc_xcalloc(1, sizeof(*m));
  agent_encode_empty(m, AGENT_MSG_START);
  int r = send_frame(vm, m, err);
  free(m);
  struct agent_frame f;
  if (r < 0 || expect(vm, AGENT_MSG_STARTED, &f, deadline, "while starting", err) < 0) return -1;
  return agent_decode_started(&f, guest_pid, err);
}

/* A terminal: the pty's master goes to the console socket (as runc does); the VMM keeps
 * the slave, raw, as the container's side and its controlling terminal, so a resize of
 * the master reaches it as SIGWINCH. */
static int setup_terminal(struct vm *vm, const struct rc_init_ctx *ctx, struct rc_error *err) {
  const struct oci_process *p = &vm->cfg->process;
  int master, slave;
  if (rc_pty_open(&master, &slave, p->has_console_size ? p->console_width : 0,
                  p->has_console_size ? p->console_height : 0, err) < 0)
    return rc_err_wrap(err, "set up terminal");
  int r = rc_send_fd(ctx->console_fd, master, "/dev/ptmx", err);
  close(master);
  close(ctx->console_fd);
  if (r < 0) {
    close(slave);
    return rc_err_wrap(err, "send pty master to the console socket");
  }
  struct termios t;
  if (tcgetattr(slave, &t) == 0) {
    cfmakeraw(&t);
    (void)tcsetattr(slave, TCSANOW, &t);
  }
  if (ioctl(slave, TIOCSCTTY, 0) < 0) {
    close(slave);
    return rc_err(err, errno, "set controlling terminal");
  }
  vm->tty = slave;
  vm->in_fd = slave;
  vm->out_fd[0] = vm->out_fd[1] = slave;
  return 0;
}

/* Pipes and sockets become nonblocking so a full one cannot stall signals and the other
 * stream; ttys and files (shared with whoever gave them) stay as they are. */
static void nonblocking_if_pipe(int fd) {
  struct stat sb;
  if (fstat(fd, &sb) == 0 && (S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode)))
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Forwarded signals are blocked and read from a signalfd. Each also gets a handler: as
 * PID 1 of a new pid namespace the VMM would otherwise never receive a signal it has
 * not asked for. */
static void noop_handler(int sig) {
  (void)sig;
}

static int forward_signals(sigset_t *set, struct rc_error *err) {
  sigfillset(set);
  int keep[] = {SIGKILL, SIGSTOP, SIGCHLD, SIGPIPE, SIGSEGV,    SIGBUS,
                SIGILL,  SIGFPE,  SIGABRT, SIGTRAP, KICK_SIGNAL};
  for (size_t i = 0; i < RC_ARRAY_SIZE(keep); i++) sigdelset(set, keep[i]);
  struct sigaction sa = {.sa_handler = noop_handler};
  for (int s = 1; s < NSIG; s++)
    if (sigismember(set, s) == 1) (void)sigaction(s, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  if (sigprocmask(SIG_BLOCK, set, NULL) < 0) return rc_err(err, errno, "block signals");
  int fd = signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) return rc_err(err, errno, "signalfd");
  return fd;
}

static int send_winsize(struct vm *vm, struct rc_error *err) {
  struct winsize ws;
  if (vm->tty < 0 || ioctl(vm->tty, TIOCGWINSZ, &ws) < 0) return 0;
  struct agent_msg m;
  agent_encode_winsize(&m, AGENT_PROC_CONTAINER,
                       &(struct agent_winsize){.rows = ws.ws_row, .cols = ws.ws_col});
  return send_frame(vm, &m, err);
}

static int on_signal(struct vm *vm, int sigfd, struct rc_error *err) {
  struct signalfd_siginfo si;
  while (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
    if ((int)si.ssi_signo == SIGWINCH && vm->tty >= 0) {
      if (send_winsize(vm, err) < 0) return -1;
      continue;
    }
    struct agent_msg m;
    agent_encode_signal(&m, AGENT_PROC_CONTAINER, si.ssi_signo);
    if (send_frame(vm, &m, err) < 0) return -1;
  }
  return 0;
}

/* Container stdin -> STDIN frames, within the window the agent has credited. */
static int on_stdin(struct vm *vm, struct rc_error *err) {
  uint32_t room = AGENT_STDIO_WINDOW - vm->stdin_in_flight;
  if (room == 0) return 0;
  uint8_t buf[AGENT_STDIO_CHUNK];
  ssize_t n = read(vm->in_fd, buf, room < sizeof(buf) ? room : sizeof(buf));
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  struct agent_msg *m = rc_xcalloc(1, sizeof(*m));
  int r;
  if (n <= 0) {
    /* end of input (a hung-up terminal reads as an error: the same for the workload) */
    vm->in_eof = true;
    agent_encode_stdin_eof(m, AGENT_PROC_CONTAINER);
  } else {
    vm->stdin_in_flight += (uint32_t)n;
    agent_encode_data(m, AGENT_MSG_STDIN, AGENT_PROC_CONTAINER, buf, (size_t)n);
  }
  r = send_frame(vm, m, err);
  free(m);
  return r;
}

/* Credits the agent for output written out, a chunk at a time (or whatever is left once
 * a stream's queue is empty) — but only while the channel takes what we send: credits for
 * an agent that does not read its channel are held back, so its output stops at the
 * window (and more is a protocol violation) instead of queueing credits without end. */
static int send_credits(struct vm *vm, struct rc_error *err) {
  if (vm->to_agent.len) return 0;
  bool due = false;
  for (int s = 0; s < 2; s++)
    due |= vm->out_uncredited[s] >= AGENT_STDIO_CHUNK ||
           (vm->out[s].len == 0 && vm->out_uncredited[s]);
  if (!due) return 0;
  struct agent_msg m;
  struct agent_output_credit c = {.proc = AGENT_PROC_CONTAINER,
                                  .stdout_bytes = vm->out_uncredited[0],
                                  .stderr_bytes = vm->out_uncredited[1]};
  for (int s = 0; s < 2; s++) {
    vm->out_in_flight[s] -= vm->out_uncredited[s];
    vm->out_uncredited[s] = 0;
  }
  agent_encode_output_credit(&m, &c);
  return send_frame(vm, &m, err);
}

/* Writes queued output to the container's stdout/stderr and credits the agent. */
static int flush_output(struct vm *vm, int s, struct rc_error *err) {
  while (vm->out[s].len) {
    ssize_t n = write(vm->out_fd[s], vm->out[s].data, vm->out[s].len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      /* the reader went away (EPIPE): the workload's output is dropped, as a closed pipe
       * would drop it, and the flow keeps going */
      n = (ssize_t)vm->out[s].len;
    }
    queue_drop(&vm->out[s], (size_t)n);
    vm->out_uncredited[s] += (uint32_t)n;
  }
  return send_credits(vm, err);
}

static int on_frame(struct vm *vm, const struct agent_frame *f, struct rc_error *err) {
  /* EXIT {proc 0} is the agent's last word (agent_proto.h: it reboots next). Whatever
   * follows is a protocol violation, not something to act on: a second EXIT replaced the
   * status already taken, and output after it was written or not depending on whether it
   * came in the same read as the EXIT. */
  if (vm->exited)
    return rc_err(err, EPROTO, "microVM: the guest agent sent %s after the container's exit",
                  agent_msg_name(f->type));
  /* exec'd processes and ps answers are the control side's; the rest is process 0's */
  int mine = vm->ctl ? rc_vmctl_on_frame(vm->ctl, f, err) : 0;
  if (mine != 0) return mine < 0 ? -1 : 0;
  switch (f->type) {
    case AGENT_MSG_STDOUT:
    case AGENT_MSG_STDERR: {
      int s = f->type == AGENT_MSG_STDERR;
      struct agent_data d;
      if (agent_decode_data(f, &d, err) < 0) return -1;
      if (d.proc != AGENT_PROC_CONTAINER || d.len > AGENT_STDIO_WINDOW - vm->out_in_flight[s] ||
          queue_push(&vm->out[s], d.bytes, d.len) < 0)
        return rc_err(err, EPROTO,
                      "microVM: the guest agent sent more output than it was credited");
      vm->out_in_flight[s] += d.len;
      return flush_output(vm, s, err);
    }
    case AGENT_MSG_STDIN_CREDIT: {
      uint32_t proc, n;
      if (agent_decode_stdin_credit(f, &proc, &n, err) < 0) return -1;
      if (proc != AGENT_PROC_CONTAINER || n > vm->stdin_in_flight)
        return rc_err(err, EPROTO, "microVM: the guest agent credited stdin it was never sent");
      vm->stdin_in_flight -= n;
      return 0;
    }
    case AGENT_MSG_EXIT:
      if (agent_decode_exit(f, &vm->exit, err) < 0) return -1;
      vm->exited = true;
      return 0;
    case AGENT_MSG_ERROR:
      return agent_error(f, err);
    default:
      return rc_err(err, EPROTO, "microVM: the guest agent sent %s while the container ran",
                    agent_msg_name(f->type));
  }
}

/* The control side's way to the agent: our queue of frames for it. */
static int vm_send(void *vm, struct agent_msg *m, struct rc_error *err) {
  return send_frame(vm, m, err);
}

static size_t vm_queued(void *vm) {
  return ((struct vm *)vm)->to_agent.len;
}

/* The running container: until the workload's EXIT has arrived and its output is out,
 * or the guest stops. */
int rc_microvm_host_relay_turn(struct vm *vm, int sigfd, int wait_ms, struct rc_error *err) {
  struct pollfd *p = vm->pfd;
  struct agent_frame f;
  int r;
  while ((r = agent_reader_next(vm->reader, &f, err)) > 0)
    if (on_frame(vm, &f, err) < 0) return -1;
  if (r < 0) return -1;
  if (flush_agent(vm, err) < 0 || send_credits(vm, err) < 0 || rc_vmctl_flush(vm->ctl, err) < 0 ||
      flush_agent(vm, err) < 0)
    return -1;
  if (vm->exited && vm->out[0].len == 0 && vm->out[1].len == 0) {
    rc_vmctl_finish(vm->ctl);
    return 1;
  }

  int n = 0;
  p[n++] = (struct pollfd){.fd = vm->stopped, .events = POLLIN};
  p[n++] = (struct pollfd){.fd = sigfd, .events = POLLIN};
  p[n++] = (struct pollfd){.fd = vm->agent_eof ? -1 : vm->agent,
                           .events = POLLIN | (vm->to_agent.len ? POLLOUT : 0)};
  bool want_in = !vm->in_eof && !vm->exited && vm->stdin_in_flight < AGENT_STDIO_WINDOW &&
                 vm->to_agent.len < AGENT_FRAME_MAX;
  p[n++] = (struct pollfd){.fd = want_in ? vm->in_fd : -1, .events = POLLIN};
  p[n++] = (struct pollfd){.fd = vm->out[0].len ? vm->out_fd[0] : -1, .events = POLLOUT};
  p[n++] = (struct pollfd){.fd = vm->out[1].len ? vm->out_fd[1] : -1, .events = POLLOUT};
  size_t n_ctl = rc_vmctl_poll_fill(vm->ctl, p + n);
  /* the control side's deadlines (callers the agent never answers) bound the wait */
  int timeout = rc_vmctl_poll_timeout(vm->ctl);
  if (wait_ms >= 0 && (timeout < 0 || timeout > wait_ms)) timeout = wait_ms;
  if (poll(p, (nfds_t)n + n_ctl, timeout) < 0) {
    if (errno == EINTR) return 0;
    return rc_err(err, errno, "microVM: poll");
  }
  if (rc_vmctl_poll_handle(vm->ctl, p + n, n_ctl, err) < 0) return -1;
  if (p[1].revents && on_signal(vm, sigfd, err) < 0) return -1;
  if (p[2].revents & (POLLIN | POLLHUP | POLLERR)) {
    if (agent_reader_fill(vm->reader, vm->agent, &vm->agent_eof, err) < 0) return -1;
  }
  if (p[3].revents && on_stdin(vm, err) < 0) return -1;
  for (int s = 0; s < 2; s++)
    if (p[4 + s].revents && flush_output(vm, s, err) < 0) return -1;
  if (p[0].revents || vm->agent_eof) {
    /* the guest is gone: take the last frames it managed to send */
    bool more = true;
    while (more && !vm->agent_eof) {
      if (agent_reader_fill(vm->reader, vm->agent, &vm->agent_eof, err) < 0) break;
      while ((r = agent_reader_next(vm->reader, &f, err)) > 0)
        if (on_frame(vm, &f, err) < 0) return -1;
      more = r == 0 && !vm->agent_eof && vm->reader->len < AGENT_FRAME_MAX;
      struct pollfd q = {.fd = vm->agent, .events = POLLIN};
      if (poll(&q, 1, 0) <= 0) break;
    }
    if (vm->exited) {
      /* write what is left, blocking: nobody else needs the loop now */
      for (int s = 0; s < 2; s++) {
        fcntl(vm->out_fd[s], F_SETFL, fcntl(vm->out_fd[s], F_GETFL) & ~O_NONBLOCK);
        (void)flush_output(vm, s, err);
      }
      rc_vmctl_finish(vm->ctl);
      return 1;
    }
    return guest_stopped_error(vm, "while the container ran, without reporting its exit", err);
  }
  return 0;
}

static int relay(struct vm *vm, int sigfd, struct rc_error *err) {
  int r;
  while ((r = rc_microvm_host_relay_turn(vm, sigfd, -1, err)) == 0) {
  }
  return r < 0 ? -1 : 0;
}

void rc_microvm_host_init(struct vm *vm, const struct oci_config *cfg, int console_log) {
  *vm = (struct vm){.cfg = cfg,
                    .agent = -1,
                    .stopped = -1,
                    .tty = -1,
                    .in_fd = -1,
                    .out_fd = {-1, -1},
                    .console_log = console_log};
  vm->reader = rc_xcalloc(1, sizeof(*vm->reader));
  agent_reader_init(vm->reader);
  vm->to_agent =
      (struct byte_queue){.data = rc_xcalloc(1, 2 * AGENT_FRAME_MAX + AGENT_STDIO_WINDOW),
                          .cap = 2 * AGENT_FRAME_MAX + AGENT_STDIO_WINDOW};
  for (int s = 0; s < 2; s++)
    vm->out[s] = (struct byte_queue){.data = rc_xcalloc(1, AGENT_STDIO_WINDOW + AGENT_FRAME_MAX),
                                     .cap = AGENT_STDIO_WINDOW + AGENT_FRAME_MAX};
  vm->pfd = rc_xcalloc(6 + rc_vmctl_max_pollfds(), sizeof(*vm->pfd));
}

void rc_microvm_host_release(struct vm *vm) {
  rc_vmctl_free(vm->ctl);
  vm->ctl = NULL;
  free(vm->reader);
  free(vm->to_agent.data);
  for (int s = 0; s < 2; s++) free(vm->out[s].data);
  free(vm->pfd);
  vm->reader = NULL;
  vm->to_agent.data = vm->out[0].data = vm->out[1].data = NULL;
  vm->pfd = NULL;
}

void rc_microvm_host_control(struct vm *vm, int control_fd) {
  struct rc_vmctl_agent link = {
      .vm = vm, .send = vm_send, .queued = vm_queued, .machine = vm->machine};
  vm->ctl = rc_vmctl_new(control_fd, &link);
}

/* Exits as the workload did. A signal is re-raised where that gives the same wait status
 * (not as PID 1 of a pid namespace, which the kernel shields from its own signals); else
 * 128 + signal, which is what a shell and containerd's shim report anyway. */
__attribute__((noreturn)) static void exit_like(const struct agent_exit *e) {
  if (e->kind == AGENT_EXIT_SIGNAL && e->value > 0 && (int)e->value < NSIG && getpid() != 1 &&
      e->value != SIGSTOP && e->value != SIGTSTP && e->value != SIGTTIN && e->value != SIGTTOU) {
    signal((int)e->value, SIG_DFL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, (int)e->value);
    sigprocmask(SIG_UNBLOCK, &s, NULL);
    if (live_machine) (void)vmm_machine_halt(live_machine, HALT_TIMEOUT_MS);
    raise((int)e->value);
  }
  halt_and_exit(agent_exit_status(e));
}

/* The startContainer hooks run in the container's namespaces, on the host, when `start`
 * comes; by then the VMM is jailed (no capability, no path to any file). A helper forked
 * before the jail, still in the container's mount namespace and privileged, waits for the
 * VMM to ask, runs them, answers with the result and exits. It exists only when the bundle
 * has such hooks, holds none of the VMM's sockets or its console log (the container's
 * stdio it keeps, as the VMM did when it ran the hooks itself), and dies with the VMM. */
struct start_hooks_helper {
  pid_t pid;
  int ask, answer;
};

struct start_hooks_answer {
  int rc;
  int code;
  char msg[RC_ERROR_MAX];
};

static int start_hooks_helper_fork(const struct rc_init_ctx *ctx, struct start_hooks_helper *h,
                                   struct rc_error *err) {
  *h = (struct start_hooks_helper){.pid = -1, .ask = -1, .answer = -1};
  if (ctx->cfg->hooks.n_start_container == 0) return 0;
  int ask[2], answer[2];
  if (pipe2(ask, O_CLOEXEC) < 0) return rc_err(err, errno, "startContainer hooks: pipe");
  if (pipe2(answer, O_CLOEXEC) < 0) {
    close(ask[0]);
    close(ask[1]);
    return rc_err(err, errno, "startContainer hooks: pipe");
  }
  pid_t vmm = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    rc_err(err, errno, "startContainer hooks: fork");
  } else if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != vmm) _exit(0);
    /* create waits for the end of the sync socket, start connects to the VMM: this
     * process must hold neither */
    int held[] = {ctx->sync_fd,        ctx->start_fd, ctx->control_fd, ctx->console_fd,
                  ctx->vm_console_log, ask[1],        answer[0]};
    for (size_t i = 0; i < RC_ARRAY_SIZE(held); i++)
      if (held[i] >= 0) close(held[i]);
    char c;
    ssize_t n;
    while ((n = read(ask[0], &c, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1) _exit(0); /* the VMM went away before start */
    /* the state the hooks get names the container's process, the VMM, as at create */
    struct rc_init_ctx as_vmm = *ctx;
    as_vmm.hook_pid = vmm;
    struct rc_error e = {0};
    struct start_hooks_answer a = {.rc = rc_init_start_container_hooks(&as_vmm, &e),
                                   .code = e.code};
    memcpy(a.msg, e.msg, sizeof(a.msg));
    _exit(write(answer[1], &a, sizeof(a)) == (ssize_t)sizeof(a) ? 0 : 1);
  }
  close(ask[0]);
  close(answer[1]);
  if (pid < 0) {
    close(ask[1]);
    close(answer[0]);
    return -1;
  }
  *h = (struct start_hooks_helper){.pid = pid, .ask = ask[1], .answer = answer[0]};
  return 0;
}

static int start_hooks_helper_run(struct start_hooks_helper *h, struct rc_error *err) {
  if (h->pid < 0) return 0;
  char c = 's';
  struct start_hooks_answer a = {0};
  size_t got = 0;
  if (write(h->ask, &c, 1) == 1) {
    while (got < sizeof(a)) {
      ssize_t n = read(h->answer, (char *)&a + got, sizeof(a) - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += (size_t)n;
    }
  }
  close(h->ask);
  close(h->answer);
  int status = 0;
  while (waitpid(h->pid, &status, 0) < 0 && errno == EINTR) {
  }
  h->pid = -1;
  if (got != sizeof(a)) {
    if (WIFSIGNALED(status))
      return rc_err(err, 0, "startContainer hooks: their runner was killed by signal %d",
                    WTERMSIG(status));
    return rc_err(err, 0, "startContainer hooks: their runner exited %d without an answer",
                  WEXITSTATUS(status));
  }
  if (a.rc < 0) {
    /* the runner's error as it was made (its text already ends with the errno's) */
    err->code = a.code;
    memcpy(err->msg, a.msg, sizeof(err->msg));
    err->msg[sizeof(err->msg) - 1] = '\0';
    return -1;
  }
  return 0;
}

void rc_microvm_init_main(struct rc_init_ctx *ctx) {
  struct rc_error err = {0};
  const struct oci_config *cfg = ctx->cfg;
  int sync = ctx->sync_fd;
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  close(ctx->state_dir_fd); /* the container's lock stays with the runtime */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) _exit(1);
  /* Guest memory and the agent channel live in this process: nothing else may read them
   * through /proc (the same rule Firecracker's jailer applies). */
  prctl(PR_SET_DUMPABLE, 0);
  /* The runtime's procfs handle (runcell/procfs.h) is no business of the VMM's and would
   * be a way out of its jail's empty root; dropped before the fds are sorted out below. */
  rc_procfs_release();

  struct vm vm;
  rc_microvm_host_init(&vm, cfg, ctx->vm_console_log);

  if (rc_sync_expect(sync, RC_SYNC_GO, "wait for parent", &err) < 0) _exit(1);
  /* The VMM's cgroup; first, as the container init does it. */
  if (ctx->cgroup_join && rc_cgroup_join_self(ctx->cgroup_join, &err) < 0) fail(sync, &err);
  if (rc_init_enter_namespaces(ctx, &err) < 0) fail(sync, &err);
  /* The VMM never execs, so close-on-exec protects nothing here: whatever the runtime held
   * when it cloned (its own pid and time namespaces, kept to restore them; the far end of
   * a console pair; --preserve-fds is refused for a microVM) goes now, leaving a guest
   * that took the VMM over only what the VMM needs. */
  const int needed[] = {
      sync, ctx->start_fd, ctx->control_fd, ctx->console_fd, ctx->vm_console_log, rc_log_fd()};
  rc_close_fds_except(needed, RC_ARRAY_SIZE(needed));

  if (rc_sync_send(sync, RC_SYNC_HOOKS, &err) < 0) _exit(1);
  if (rc_sync_expect(sync, RC_SYNC_GO, "wait for createRuntime hooks", &err) < 0) _exit(1);
  /* In the container's (the VMM's) namespaces on the host, as for a cell. */
  if (rc_init_create_container_hooks(ctx, &err) < 0) fail(sync, &err);
  if (chdir("/") < 0) {
    rc_err(&err, errno, "chdir /");
    fail(sync, &err);
  }
  /* The startContainer hooks need the container's namespaces as they are and privilege
   * when `start` comes, after the VMM is jailed: a helper forked now runs them then. */
  struct start_hooks_helper hooks_helper;
  if (start_hooks_helper_fork(ctx, &hooks_helper, &err) < 0) fail(sync, &err);
  /* still one thread: the mount namespace made here is every later thread's */
  if (rc_microvm_jail_prepare(&err) < 0) fail(sync, &err);

  sigset_t forwarded;
  int sigfd = forward_signals(&forwarded, &err);
  if (sigfd < 0) fail(sync, &err);
  if (cfg->process.terminal) {
    if (setup_terminal(&vm, ctx, &err) < 0) fail(sync, &err);
  } else {
    vm.in_fd = 0;
    vm.out_fd[0] = 1;
    vm.out_fd[1] = 2;
    for (int fd = 0; fd <= 2; fd++) nonblocking_if_pipe(fd);
  }
  if (boot(&vm, ctx, &err) < 0) {
    release_network();
    fail(sync, &err);
  }

  prctl(PR_SET_PDEATHSIG, 0);
  if (rc_sync_send(sync, RC_SYNC_CREATED, &err) < 0) halt_and_exit(1);
  close(sync);

  /* Created: wait for `start`, or for the guest to go away (then the container is
   * stopped, and start reports that). */
  for (;;) {
    struct pollfd p[2] = {{.fd = ctx->start_fd, .events = POLLIN},
                          {.fd = vm.stopped, .events = POLLIN}};
    if (poll(p, 2, -1) < 0 && errno != EINTR) halt_and_exit(1);
    if (p[1].revents) {
      (void)guest_stopped_error(&vm, "before start", &err);
      rc_warn("%s", err.msg);
      halt_and_exit(255);
    }
    if (p[0].revents) break;
  }
  int conn = -1;
  if (rc_wait_for_start(ctx->start_fd, &conn, &err) < 0) halt_and_exit(1);
  close(ctx->start_fd);
  if (start_hooks_helper_run(&hooks_helper, &err) < 0) fail(conn, &err);
  uint64_t t_start = now_ns();
  uint32_t guest_pid = 0;
  if (rc_microvm_host_start(&vm, (uint64_t)rc_now_ms() + (uint64_t)timeout_ms(), &guest_pid, &err) <
      0)
    fail(conn, &err);
  rc_info("microvm phases: start-to-workload %.3f ms (guest pid %u)", ms_between(t_start, now_ns()),
          guest_pid);
  close(conn); /* start returns: the container runs */
  if (vm.tty >= 0) (void)send_winsize(&vm, &err);
  rc_microvm_host_control(&vm, ctx->control_fd);

  if (relay(&vm, sigfd, &err) < 0) {
    rc_log(RC_LOG_ERROR, "container %s: %s", ctx->id, err.msg);
    halt_and_exit(255);
  }
  /* the agent reboots the guest after EXIT; give it a moment, then stop it ourselves */
  struct pollfd p = {.fd = vm.stopped, .events = POLLIN};
  if (poll(&p, 1, SHUTDOWN_GRACE_MS) <= 0) vmm_machine_stop(vm.machine);
  exit_like(&vm.exit);
}
