/* Terminals: the container's pty, passing its master over the console socket, and the
 * foreground proxy between the caller's terminal and the pty. */
#include "runcell/terminal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "runcell/util.h"

/* The longest payload we send or accept with a fd, as runc's utils.MaxNameLen. */
#define FD_NAME_MAX 4096
/* recvmsg gets room for this many fds so that a sender passing more than one does not
 * make the kernel drop them silently: we see them, close them and fail. */
#define RECV_FDS_MAX 8
/* After the stop fd fires: how long the pty must stay quiet before we stop reading it,
 * and how many reads at most, so a process still writing cannot keep us forever. */
#define STOP_QUIET_MS 100
#define STOP_DRAIN_ROUNDS 64

int rc_console_socket_connect(const char *path, struct rc_error *err) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  size_t len = strlen(path);
  if (len == 0) return rc_err(err, EINVAL, "console socket path is empty");
  if (len >= sizeof(addr.sun_path)) {
    rc_err(err, 0, "console socket path too long (%zu bytes, at most %zu): %s", len,
           sizeof(addr.sun_path) - 1, path);
    err->code = ENAMETOOLONG;
    return -1;
  }
  memcpy(addr.sun_path, path, len + 1);

  /* Non-blocking for the connect: a listener that never accepts (its backlog full) would
   * otherwise hold create, and the container's lock, forever; a unix socket answers EAGAIN
   * at once instead, as runc reports it. Blocking again after: the pty's master is sent
   * with one short message. */
  cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return rc_err(err, errno, "console socket: socket");
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
    if (errno == EAGAIN)
      return rc_err(err, EAGAIN,
                    "connect to console socket %s (its listener accepts no more connections)",
                    path);
    return rc_err(err, errno, "connect to console socket %s", path);
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
    return rc_err(err, errno, "console socket %s: make it blocking", path);
  return rc_steal_fd(&fd);
}

int rc_pty_open(int *master, int *slave, unsigned width, unsigned height, struct rc_error *err) {
  /* Opened by path rather than posix_openpt so that, after pivot_root, we get the ptmx of
   * the container's own devpts instance and the slave lives in the container. */
  cleanup_close int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0) return rc_err(err, errno, "open /dev/ptmx");

  /* unlockpt by hand. grantpt is not needed: on devpts the kernel creates the slave with
   * the owner and mode from the mount options, and glibc's grantpt only checks the fd. */
  int unlock = 0;
  if (ioctl(m, TIOCSPTLCK, &unlock) < 0) return rc_err(err, errno, "unlock pty");

  /* TIOCGPTPEER opens the slave through the master itself, so a /dev/pts that something
   * in the container swapped out cannot hand us a different file (Linux >= 4.13). */
  cleanup_close int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (s < 0) {
    if (errno != EINVAL && errno != ENOTTY) return rc_err(err, errno, "open pty peer");
    char name[64];
    int e = ptsname_r(m, name, sizeof(name));
    if (e != 0) return rc_err(err, e, "ptsname");
    s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) return rc_err(err, errno, "open %s", name);
  }

  if (width || height) {
    struct winsize ws = {.ws_row = (unsigned short)height, .ws_col = (unsigned short)width};
    if (ioctl(m, TIOCSWINSZ, &ws) < 0) return rc_err(err, errno, "set pty window size");
  }
  *master = rc_steal_fd(&m);
  *slave = rc_steal_fd(&s);
  return 0;
}

int rc_pty_make_controlling(int slave, struct rc_error *err) {
  if (ioctl(slave, TIOCSCTTY, 0) < 0) return rc_err(err, errno, "set controlling terminal");
  for (int fd = 0; fd <= 2; fd++) {
    if (slave == fd) {
      /* dup2 onto itself keeps close-on-exec; the process must keep its stdio. */
      int fl = fcntl(fd, F_GETFD);
      if (fl < 0 || fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC) < 0)
        return rc_err(err, errno, "pty fd %d", fd);
      continue;
    }
    if (dup2(slave, fd) < 0) return rc_err(err, errno, "dup pty to fd %d", fd);
  }
  return 0;
}

int rc_send_fd(int sock, int fd, const char *name, struct rc_error *err) {
  /* A stream socket cannot carry a message with no data, so the fd needs a payload;
   * receivers (containerd's shim) read it as the pty's name. */
  size_t len = name ? strlen(name) : 0;
  if (len == 0) return rc_err(err, EINVAL, "send fd: empty name");
  if (len >= FD_NAME_MAX) return rc_err(err, ENAMETOOLONG, "send fd: name too long");

  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof(control));
  struct iovec iov = {.iov_base = (void *)name, .iov_len = len};
  struct msghdr msg = {
      .msg_iov = &iov,
      .msg_iovlen = 1,
      .msg_control = control.buf,
      .msg_controllen = sizeof(control.buf),
  };
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof(int));

  /* MSG_NOSIGNAL: a peer that went away must be an error, not a SIGPIPE. */
  ssize_t n;
  do n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) return rc_err(err, errno, "send fd");

  /* The fd travelled with the first byte; a short write only leaves name bytes. */
  size_t done = (size_t)n;
  while (done < len) {
    n = send(sock, name + done, len - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return rc_err(err, errno, "send fd: name");
    }
    done += (size_t)n;
  }
  return 0;
}

int rc_recv_fd(int sock, int *fd, struct rc_error *err) {
  char name[FD_NAME_MAX];
  union {
    char buf[CMSG_SPACE(sizeof(int) * RECV_FDS_MAX)];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof(control));
  struct iovec iov = {.iov_base = name, .iov_len = sizeof(name)};
  struct msghdr msg = {
      .msg_iov = &iov,
      .msg_iovlen = 1,
      .msg_control = control.buf,
      .msg_controllen = sizeof(control.buf),
  };
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return rc_err(err, errno, "receive fd");

  /* Collect every fd that arrived, so whatever we reject is closed, not leaked. */
  int fds[RECV_FDS_MAX];
  size_t nfds = 0;
  bool foreign = false;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
      foreign = true;
      continue;
    }
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count && nfds < RECV_FDS_MAX; i++)
      memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
  }

  const char *why = NULL;
  if (msg.msg_flags & MSG_CTRUNC)
    why = "more fds than expected (control message truncated)";
  else if (nfds > 1)
    why = "more than one fd in the message";
  else if (foreign)
    why = "unexpected control message";
  else if (nfds == 0)
    why = n == 0 ? "connection closed before a fd arrived" : "message carried no fd";
  if (why) {
    for (size_t i = 0; i < nfds; i++) close(fds[i]);
    return rc_err(err, EBADMSG, "receive fd: %s", why);
  }
  *fd = fds[0];
  return 0;
}

/* ---- foreground proxy ---- */

struct proxy {
  int master;
  int stop_fd;
  int sig_fd;
  bool stdin_open;
  char to_master[4096]; /* read from stdin, not yet taken by the master */
  size_t pending, pending_off;
};

/* Gives the pty the caller's window size; a stdin that is not a terminal has none. */
static void copy_winsize(int master) {
  struct winsize ws;
  if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws);
}

/* Copies what the master has to stdout. Returns 1 when the pty hung up (EOF or EIO: no
 * slave is open any more), 0 when it would block, <0 on error. */
static int pump_master(struct proxy *p, struct rc_error *err) {
  char buf[8192];
  for (;;) {
    ssize_t n = read(p->master, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return 0;
      if (errno == EIO) return 1;
      return rc_err(err, errno, "read pty");
    }
    if (n == 0) return 1;
    if (rc_write_all(STDOUT_FILENO, buf, (size_t)n) < 0) return rc_err(err, errno, "write stdout");
  }
}

/* Writes pending stdin bytes to the master as far as it takes them. */
static int flush_to_master(struct proxy *p, struct rc_error *err) {
  while (p->pending_off < p->pending) {
    ssize_t n = write(p->master, p->to_master + p->pending_off, p->pending - p->pending_off);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return 0;
      /* The container side is gone; what it did not read does not matter any more and the
       * hang-up shows up on the read side. */
      if (errno == EIO) {
        p->pending = p->pending_off = 0;
        return 0;
      }
      return rc_err(err, errno, "write pty");
    }
    p->pending_off += (size_t)n;
  }
  p->pending = p->pending_off = 0;
  return 0;
}

/* The caller says the container is done (its pidfd became readable). Its last output
 * may still be on its way through the tty layer, so read until the pty hangs up, which
 * is at once when nothing else holds the slave, or until it has been quiet for a moment
 * (a leftover process keeps the slave open), within a bounded total. */
static int drain_after_stop(struct proxy *p, struct rc_error *err) {
  for (int rounds = 0; rounds < STOP_DRAIN_ROUNDS; rounds++) {
    int r = pump_master(p, err);
    if (r < 0) return -1;
    if (r == 1) return 0;
    struct pollfd pfd = {.fd = p->master, .events = POLLIN};
    int ready = poll(&pfd, 1, STOP_QUIET_MS);
    if (ready < 0 && errno != EINTR) return rc_err(err, errno, "poll");
    if (ready == 0) return 0;
  }
  return 0;
}

static int proxy_loop(struct proxy *p, struct rc_error *err) {
  for (;;) {
    struct pollfd pfd[4];
    nfds_t n = 0;
    int in_i = -1, sig_i = -1, stop_i = -1;
    /* Read stdin only once the previous chunk is in the master: that is the
     * backpressure a full pty exerts on whoever types or pipes into us. */
    if (p->stdin_open && p->pending == 0) {
      in_i = (int)n;
      pfd[n++] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
    }
    int m_i = (int)n;
    pfd[n++] = (struct pollfd){.fd = p->master, .events = POLLIN | (p->pending ? POLLOUT : 0)};
    if (p->sig_fd >= 0) {
      sig_i = (int)n;
      pfd[n++] = (struct pollfd){.fd = p->sig_fd, .events = POLLIN};
    }
    if (p->stop_fd >= 0) {
      stop_i = (int)n;
      pfd[n++] = (struct pollfd){.fd = p->stop_fd, .events = POLLIN};
    }

    if (poll(pfd, n, -1) < 0) {
      if (errno == EINTR) continue;
      return rc_err(err, errno, "poll");
    }

    short mrev = pfd[m_i].revents;
    if (mrev & POLLNVAL) return rc_err(err, EBADF, "pty master");
    if (mrev & (POLLIN | POLLHUP | POLLERR)) {
      int r = pump_master(p, err);
      if (r < 0) return -1;
      if (r == 1) return 0;
    }
    if (p->pending && (mrev & POLLOUT) && flush_to_master(p, err) < 0) return -1;

    if (in_i >= 0 && pfd[in_i].revents) {
      /* EOF (or a stdin that is closed altogether): the container keeps running and its
       * output still matters, so only this direction ends. */
      ssize_t r = 0;
      if (!(pfd[in_i].revents & POLLNVAL))
        r = read(STDIN_FILENO, p->to_master, sizeof(p->to_master));
      if (r < 0 && errno != EINTR && errno != EAGAIN) return rc_err(err, errno, "read stdin");
      if (r == 0) p->stdin_open = false;
      if (r > 0) {
        p->pending = (size_t)r;
        p->pending_off = 0;
        if (flush_to_master(p, err) < 0) return -1;
      }
    }

    if (sig_i >= 0 && pfd[sig_i].revents) {
      struct signalfd_siginfo si;
      while (read(p->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
      }
      copy_winsize(p->master);
    }

    if (stop_i >= 0 && pfd[stop_i].revents) return drain_after_stop(p, err);
  }
}

int rc_pty_proxy(int master, int stop_fd, struct rc_error *err) {
  struct proxy p = {.master = master, .stop_fd = stop_fd, .sig_fd = -1, .stdin_open = true};

  /* Non-blocking master so a container that stops reading its terminal cannot wedge us
   * while it still has output for us; the flags are restored for the caller. */
  int master_fl = fcntl(master, F_GETFL);
  if (master_fl < 0) return rc_err(err, errno, "pty master");
  if (fcntl(master, F_SETFL, master_fl | O_NONBLOCK) < 0) return rc_err(err, errno, "pty master");

  /* SIGWINCH through a signalfd: no handler, no async state, and it wakes the poll. */
  sigset_t winch, old_mask;
  sigemptyset(&winch);
  sigaddset(&winch, SIGWINCH);
  pthread_sigmask(SIG_BLOCK, &winch, &old_mask);
  /* Without one (fd limit) only resizes are lost; SIGWINCH stays harmless while blocked. */
  p.sig_fd = signalfd(-1, &winch, SFD_CLOEXEC | SFD_NONBLOCK);

  /* Raw mode: keystrokes (^C included) go to the container's terminal untouched, which
   * does its own line discipline; ours must not interpret or echo them a second time. */
  struct termios saved;
  bool restore_tty = false;
  if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0) {
    struct termios raw = saved;
    cfmakeraw(&raw);
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) restore_tty = true;
  }
  copy_winsize(master);

  int rc = proxy_loop(&p, err);

  if (restore_tty) tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  if (p.sig_fd >= 0) close(p.sig_fd);
  pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
  fcntl(master, F_SETFL, master_fl);
  return rc;
}
