/* runcell's guest agent: PID 1 of every microVM. It mounts the guest's own filesystems,
 * greets the host on /dev/hvc0, takes the container's CONFIG, builds the container's root,
 * waits for START, runs the workload, relays its stdio, reports its exit and reboots (the
 * kernel runs with reboot=k panic=-1, so the VMM sees a reset either way).
 *
 * The host is not trusted any more than the workload: every frame is length-checked and
 * decoded by agent_proto.c, and a frame that breaks the protocol ends the VM. Any failure
 * before the workload runs is reported as ERROR {stage, errno, message} before the reboot. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"

#define CHANNEL_DEVICE "/dev/hvc0"
/* virtio devices are probed before init runs, but give a slow (emulated) boot some slack */
#define CHANNEL_WAIT_MS 5000
#define CHANNEL_HOST_WAIT_MS 60000

void agent_log(const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof(line) - 2) n = (int)sizeof(line) - 2;
  line[n++] = '\n';
  /* the console may be gone or full; the log is best effort */
  ssize_t w = write(STDERR_FILENO, "runcell-agent: ", 15);
  if (w >= 0) w = write(STDERR_FILENO, line, (size_t)n);
  (void)w;
}

/* Power-off is a reset: the VMM treats a reset as the end of the VM. Never returns. */
static __attribute__((noreturn)) void power_off(void) {
  sync();
  reboot(RB_AUTOBOOT);
  agent_log("reboot: %s", strerror(errno));
  for (;;) pause();
}

int agent_send(struct agent_channel *ch, struct rc_error *err) {
  if (agent_msg_end(&ch->out, err) < 0) return -1;
  return agent_msg_write(ch->wfd, &ch->out, err);
}

/* Tells the host why the container cannot run, then ends the VM. */
static __attribute__((noreturn)) void fail(struct agent_channel *ch,
                                           const struct agent_failure *f) {
  agent_log("%s failed: %s", agent_stage_name(f->stage), f->err.msg);
  if (ch && ch->wfd >= 0) {
    struct rc_error err = {0};
    agent_encode_error(&ch->out, f->stage, f->err.code, f->err.msg);
    if (agent_send(ch, &err) < 0) agent_log("cannot report the error: %s", err.msg);
    tcdrain(ch->wfd);
  }
  power_off();
}

static int mount_one(const char *src, const char *dst, const char *type, unsigned long flags,
                     const char *data, struct rc_error *err) {
  if (mkdir(dst, 0755) < 0 && errno != EEXIST) return rc_err(err, errno, "mkdir %s", dst);
  if (mount(src, dst, type, flags, data) < 0 && errno != EBUSY)
    return rc_err(err, errno, "mount %s on %s", type, dst);
  return 0;
}

/* The agent's own view of the guest: /proc, /sys, /dev (devtmpfs, where the kernel puts
 * hvc0 and the disks), /dev/pts for terminals, /run for the container's root. */
static int mount_guest_filesystems(struct rc_error *err) {
  const unsigned long nsd = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  if (mount_one("proc", "/proc", "proc", nsd, NULL, err) < 0) return -1;
  if (mount_one("sysfs", "/sys", "sysfs", nsd, NULL, err) < 0) return -1;
  if (mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755", err) < 0)
    return -1;
  if (mount_one("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620,gid=5", err) < 0)
    return -1;
  if (mount_one("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", err) < 0) return -1;
  return 0;
}

/* PID 1 starts with whatever the kernel gave it; make sure 0-2 are open so that nothing the
 * agent opens later lands on a standard fd by accident. */
static void ensure_std_fds(void) {
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) >= 0) continue;
    int n = open("/dev/console", O_RDWR | O_NOCTTY);
    if (n < 0) n = open("/dev/null", O_RDWR);
    if (n >= 0 && n != fd) {
      dup2(n, fd);
      close(n);
    }
  }
}

/* The channel is /dev/hvc0 (runcell's VMM: virtio-console port 0). Without one, a virtio
 * serial port named AGENT_PORT_NAME is used: QEMU drops what a virtconsole cannot hand to
 * its socket at once, but throttles a virtserialport, so tests under QEMU use that. */
#define AGENT_PORT_NAME "runcell.agent"

static bool find_named_port(char *out, size_t size) {
  DIR *d = opendir("/sys/class/virtio-ports");
  if (!d) return false;
  const struct dirent *e;
  bool found = false;
  while (!found && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[300], name[64] = "";
    snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, name, sizeof(name) - 1);
    close(fd);
    if (n <= 0) continue;
    name[n] = '\0';
    name[strcspn(name, "\n")] = '\0';
    if (strcmp(name, AGENT_PORT_NAME) == 0) {
      snprintf(out, size, "/dev/%s", e->d_name);
      found = true;
    }
  }
  closedir(d);
  return found;
}

static int open_channel(struct agent_channel *ch, struct rc_error *err) {
  char dev[300] = CHANNEL_DEVICE;
  int fd = -1;
  for (int waited = 0; fd < 0; waited += 10) {
    if (access(CHANNEL_DEVICE, F_OK) < 0 && !find_named_port(dev, sizeof(dev)))
      snprintf(dev, sizeof(dev), "%s", CHANNEL_DEVICE);
    /* nonblocking: the relay polls it; agent_msg_write waits for room itself. One open
     * only: a virtio serial port refuses a second one */
    fd = open(dev, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0) break;
    if (errno != ENOENT && errno != ENXIO && errno != ENODEV)
      return rc_err(err, errno, "open %s", dev);
    if (waited >= CHANNEL_WAIT_MS)
      return rc_err(err, errno, "open %s (nor a port named %s)", CHANNEL_DEVICE, AGENT_PORT_NAME);
    usleep(10000);
  }
  /* raw: the bytes are frames, not text for a line discipline */
  struct termios t;
  bool tty = tcgetattr(fd, &t) == 0;
  if (tty) {
    cfmakeraw(&t);
    if (tcsetattr(fd, TCSANOW, &t) < 0) {
      close(fd);
      return rc_err(err, errno, "tcsetattr %s", dev);
    }
  } else {
    /* a serial port reports POLLHUP until the host end is connected, and drops what is
     * written before: wait for the host */
    for (int waited = 0;; waited += 10) {
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      if (poll(&p, 1, 0) >= 0 && !(p.revents & POLLHUP)) break;
      if (waited >= CHANNEL_HOST_WAIT_MS) {
        close(fd);
        return rc_err(err, ETIMEDOUT, "%s: the host never connected", dev);
      }
      usleep(10000);
    }
  }
  ch->wfd = fd;
  ch->rfd = fd;
  agent_reader_init(&ch->reader);
  return 0;
}

/* Waits for the next whole frame from the host; anything but a host->guest frame is a
 * protocol error. */
static int recv_frame(struct agent_channel *ch, struct agent_frame *f, struct rc_error *err) {
  for (;;) {
    int r = agent_reader_next(&ch->reader, f, err);
    if (r < 0) return -1;
    if (r > 0) {
      if (!agent_msg_from_host(f->type))
        return rc_err(err, EPROTO, "agent protocol: unexpected message type 0x%04x from the host",
                      f->type);
      return 0;
    }
    struct pollfd p = {.fd = ch->rfd, .events = POLLIN};
    if (poll(&p, 1, -1) < 0 && errno != EINTR) return rc_err(err, errno, "poll the channel");
    bool eof = false;
    if (agent_reader_fill(&ch->reader, ch->rfd, &eof, err) < 0) return -1;
    if (eof) return rc_err(err, EPIPE, "the host closed the agent channel");
  }
}

static void set_failure(struct agent_failure *f, uint32_t stage) {
  f->stage = stage;
}

/* From CONFIG to CONFIGURED: everything that can fail before the workload exists. */
static int configure(struct agent_channel *ch, struct agent_config **cfgp,
                     struct agent_failure *f) {
  struct agent_frame fr;
  set_failure(f, AGENT_STAGE_PROTOCOL);
  if (recv_frame(ch, &fr, &f->err) < 0) return -1;
  if (fr.type == AGENT_MSG_NETWORK) { /* the container has a NIC: it comes first */
    struct agent_network net;
    set_failure(f, AGENT_STAGE_NETWORK);
    if (agent_decode_network(&fr, &net, &f->err) < 0) return -1;
    if (agent_setup_network(&net, &f->err) < 0) return -1;
    set_failure(f, AGENT_STAGE_PROTOCOL);
    if (recv_frame(ch, &fr, &f->err) < 0) return -1;
  }
  if (fr.type != AGENT_MSG_CONFIG)
    return rc_err(&f->err, EPROTO, "agent protocol: expected CONFIG, got %s",
                  agent_msg_name(fr.type));
  set_failure(f, AGENT_STAGE_CONFIG);
  if (agent_decode_config(&fr, cfgp, &f->err) < 0) return -1;
  const struct agent_config *cfg = *cfgp;
  /* before the container's own cgroup mount, which is read-only: cgroup2 has one
   * superblock, and a read-only first mount would make the agent's read-only too */
  if (agent_setup_cgroup(cfg, &f->err) < 0) return -1;
  if (agent_build_rootfs(cfg, f) < 0) return -1;
  if (cfg->hostname && cfg->hostname[0] && sethostname(cfg->hostname, strlen(cfg->hostname)) < 0) {
    set_failure(f, AGENT_STAGE_HOSTNAME);
    return rc_err(&f->err, errno, "sethostname \"%s\"", cfg->hostname);
  }
  /* runc refuses a missing executable at create time; so does the agent, before
   * CONFIGURED, with the same words */
  int rootfd = open(AGENT_ROOT_DIR, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) {
    set_failure(f, AGENT_STAGE_ROOTFS);
    return rc_err(&f->err, errno, "open %s", AGENT_ROOT_DIR);
  }
  char path[4096];
  set_failure(f, AGENT_STAGE_EXEC);
  int r = agent_find_executable(rootfd, cfg->args[0], cfg->env, cfg->n_env, cfg->cwd, path,
                                sizeof(path), &f->err);
  close(rootfd);
  return r;
}

/* Before the reset: hvc0 hands bytes to the host synchronously, so draining it is enough; a
 * serial port may still hold the last frames, so wait (a little) for the host to hang up. */
static void wait_for_host(struct agent_channel *ch) {
  if (tcdrain(ch->wfd) == 0) return;
  for (int waited = 0; waited < 2000; waited += 10) {
    struct pollfd p = {.fd = ch->rfd, .events = POLLIN};
    if (poll(&p, 1, 10) > 0) {
      if (p.revents & (POLLHUP | POLLERR)) return;
      bool eof = false;
      struct rc_error err = {0};
      if (agent_reader_fill(&ch->reader, ch->rfd, &eof, &err) < 0 || eof) return;
      agent_reader_init(&ch->reader); /* late credits: nothing to do with them now */
    }
  }
}

int main(void) {
  static struct agent_channel ch = {.rfd = -1, .wfd = -1};
  static struct agent_failure f;
  struct agent_config *cfg = NULL;

  /* signals are taken through a signalfd by the relay; nothing else may interrupt PID 1 */
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, NULL);
  umask(022);
  ensure_std_fds();
  set_failure(&f, AGENT_STAGE_BOOT);
  if (mount_guest_filesystems(&f.err) < 0) fail(NULL, &f);
  ensure_std_fds();
  if (open_channel(&ch, &f.err) < 0) fail(NULL, &f);

  agent_encode_hello(&ch.out, AGENT_VERSION);
  if (agent_send(&ch, &f.err) < 0) fail(NULL, &f);

  if (configure(&ch, &cfg, &f) < 0) fail(&ch, &f);
  agent_encode_empty(&ch.out, AGENT_MSG_CONFIGURED);
  if (agent_send(&ch, &f.err) < 0) fail(NULL, &f);

  struct agent_frame fr;
  set_failure(&f, AGENT_STAGE_PROTOCOL);
  if (recv_frame(&ch, &fr, &f.err) < 0) fail(&ch, &f);
  if (agent_decode_empty(&fr, AGENT_MSG_START, &f.err) < 0) fail(&ch, &f);

  struct agent_stdio io;
  pid_t pid = -1;
  if (agent_spawn(cfg, &io, &pid, &f) < 0) fail(&ch, &f);
  agent_encode_started(&ch.out, (uint32_t)pid);
  if (agent_send(&ch, &f.err) < 0) fail(NULL, &f);

  struct agent_exit ex = {0};
  set_failure(&f, AGENT_STAGE_RELAY);
  if (agent_relay(&ch, cfg, &io, pid, &ex, &f.err) < 0) fail(&ch, &f);
  agent_encode_exit(&ch.out, &ex);
  if (agent_send(&ch, &f.err) < 0) fail(NULL, &f);
  wait_for_host(&ch);
  agent_config_free(cfg);
  power_off();
}
