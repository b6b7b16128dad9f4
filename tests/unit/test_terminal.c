/* Terminal plumbing against real ptys and sockets: pty pairs carry data, fds cross a
 * unix socket intact (and malformed messages are refused without leaking), and the
 * foreground proxy moves bytes both ways between pipes and a pty. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "runcell/terminal.h"
#include "runcell/util.h"
#include "unit.h"

static int lowest_free_fd(void) {
  int fd = dup(0);
  close(fd);
  return fd;
}

/* Reads from fd until `want` shows up, EOF, or timeout_ms passes; returns the bytes. */
static char *read_until(int fd, const char *want, int timeout_ms) {
  size_t cap = 4096, len = 0;
  char *buf = rc_xmalloc(cap);
  buf[0] = '\0';
  while (timeout_ms > 0) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, 50);
    timeout_ms -= 50;
    if (r <= 0) continue;
    if (len + 1024 >= cap) buf = rc_xrealloc(buf, cap *= 2);
    ssize_t n = read(fd, buf + len, cap - len - 1);
    if (n <= 0) break;
    len += (size_t)n;
    buf[len] = '\0';
    if (want && strstr(buf, want)) break;
  }
  return buf;
}

/* The fd juggling below assumes 0/1/2 are taken; a runner that closed stdin would make
 * pipe() hand out fd 0 and the dup2s clobber it. */
static void ensure_stdio(void) {
  for (int fd = 0; fd <= 2; fd++)
    if (fcntl(fd, F_GETFD) < 0) open("/dev/null", O_RDWR);
}

static void test_pty_pair_works(void) {
  ensure_stdio();
  int m = -1, s = -1;
  struct rc_error err = {0};
  CHECK(rc_pty_open(&m, &s, 120, 40, &err) == 0);
  if (m < 0 || s < 0) return;
  CHECK(isatty(s));
  CHECK(fcntl(m, F_GETFD) & FD_CLOEXEC);
  CHECK(fcntl(s, F_GETFD) & FD_CLOEXEC);
  struct winsize ws;
  CHECK(ioctl(s, TIOCGWINSZ, &ws) == 0 && ws.ws_col == 120 && ws.ws_row == 40);

  CHECK(write(s, "ping\n", 5) == 5);
  char *got = read_until(m, "ping", 2000);
  CHECK_CONTAINS(got, "ping");
  free(got);

  /* And the other way: what the master types reaches a reader of the slave. */
  struct termios t;
  tcgetattr(s, &t);
  t.c_lflag &= ~(tcflag_t)ECHO;
  tcsetattr(s, TCSANOW, &t);
  CHECK(write(m, "pong\n", 5) == 5);
  got = read_until(s, "pong", 2000);
  CHECK_CONTAINS(got, "pong");
  free(got);
  close(m);
  close(s);
}

static void test_pty_without_size(void) {
  int m = -1, s = -1;
  struct rc_error err = {0};
  CHECK(rc_pty_open(&m, &s, 0, 0, &err) == 0);
  struct winsize ws = {.ws_row = 1};
  CHECK(ioctl(s, TIOCGWINSZ, &ws) == 0 && ws.ws_col == 0 && ws.ws_row == 0);
  close(m);
  close(s);
}

static void test_send_recv_fd(void) {
  int sp[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
  int m = -1, s = -1;
  struct rc_error err = {0};
  CHECK(rc_pty_open(&m, &s, 0, 0, &err) == 0);

  CHECK(rc_send_fd(sp[0], m, "/dev/pts/7", &err) == 0);
  int got = -1;
  CHECK(rc_recv_fd(sp[1], &got, &err) == 0);
  CHECK(got >= 0 && got != m);
  struct stat a, b;
  CHECK(fstat(m, &a) == 0 && fstat(got, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev &&
        a.st_rdev == b.st_rdev);
  CHECK(fcntl(got, F_GETFD) & FD_CLOEXEC);

  /* The received fd is the same master: data written to the slave shows up on it. */
  CHECK(write(s, "via-socket\n", 11) == 11);
  char *data = read_until(got, "via-socket", 2000);
  CHECK_CONTAINS(data, "via-socket");
  free(data);

  /* The payload is the name, as runc sends it; read it with a raw recvmsg. */
  CHECK(rc_send_fd(sp[0], s, "/dev/pts/9", &err) == 0);
  char name[64] = {0};
  char control[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {.iov_base = name, .iov_len = sizeof(name) - 1};
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
  ssize_t n = recvmsg(sp[1], &msg, MSG_CMSG_CLOEXEC);
  CHECK(n == 10);
  CHECK_STR_EQ(name, "/dev/pts/9");
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  CHECK(c && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)));
  CHECK(CMSG_NXTHDR(&msg, c) == NULL);
  if (c) {
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(fd));
    close(fd);
  }

  /* An empty name cannot be sent over a stream socket with a fd. */
  CHECK(rc_send_fd(sp[0], m, "", &err) < 0);
  CHECK_CONTAINS(err.msg, "empty name");

  close(got);
  close(m);
  close(s);
  close(sp[0]);
  close(sp[1]);
}

static void test_recv_two_fds_fails_cleanly(void) {
  int base = lowest_free_fd();
  int sp[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
  int before = lowest_free_fd();

  int fds[2] = {0, 1};
  union {
    char buf[CMSG_SPACE(sizeof(fds))];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof(control));
  struct iovec iov = {.iov_base = "x", .iov_len = 1};
  struct msghdr msg = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = control.buf,
                       .msg_controllen = sizeof(control.buf)};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(fds));
  memcpy(CMSG_DATA(c), fds, sizeof(fds));
  CHECK(sendmsg(sp[0], &msg, 0) == 1);

  int got = -1;
  struct rc_error err = {0};
  CHECK(rc_recv_fd(sp[1], &got, &err) < 0);
  CHECK(got == -1);
  CHECK_CONTAINS(err.msg, "more than one fd");
  /* Both fds that arrived were closed again. */
  CHECK(lowest_free_fd() == before);

  /* A message without any fd is refused too. */
  CHECK(send(sp[0], "y", 1, 0) == 1);
  CHECK(rc_recv_fd(sp[1], &got, &err) < 0);
  CHECK_CONTAINS(err.msg, "no fd");

  /* And a peer that hangs up. */
  close(sp[0]);
  CHECK(rc_recv_fd(sp[1], &got, &err) < 0);
  CHECK_CONTAINS(err.msg, "closed");
  close(sp[1]);
  CHECK(lowest_free_fd() == base);
}

static void test_console_socket_connect(void) {
  struct rc_error err = {0};
  char dir[] = "/tmp/runcell-term-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char *path = rc_xasprintf("%s/console.sock", dir);

  int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
  CHECK(bind(l, (struct sockaddr *)&addr, sizeof(addr)) == 0);
  CHECK(listen(l, 1) == 0);

  int c = rc_console_socket_connect(path, &err);
  CHECK(c >= 0);
  int a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  CHECK(a >= 0);
  /* The whole console-socket handshake: pty master out, received on the other end. */
  int m = -1, s = -1, got = -1;
  CHECK(rc_pty_open(&m, &s, 0, 0, &err) == 0);
  CHECK(rc_send_fd(c, m, "/dev/pts/0", &err) == 0);
  CHECK(rc_recv_fd(a, &got, &err) == 0);
  close(got);
  close(m);
  close(s);
  close(a);
  close(c);
  close(l);
  unlink(path);

  CHECK(rc_console_socket_connect(path, &err) < 0);
  CHECK_CONTAINS(err.msg, "No such file or directory");

  char longp[200];
  memset(longp, 'a', sizeof(longp) - 1);
  longp[0] = '/';
  longp[sizeof(longp) - 1] = '\0';
  CHECK(rc_console_socket_connect(longp, &err) < 0);
  CHECK_CONTAINS(err.msg, "console socket path too long");
  rmdir(dir);
  free(path);
}

/* A process on the slave side, as the container's init would be: session leader with
 * the pty as controlling terminal and stdio. Returns its pid. */
static pid_t spawn_on_slave(int slave, int master, char *const argv[], const char *say) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  close(master);
  struct rc_error err;
  if (setsid() < 0 || rc_pty_make_controlling(slave, &err) < 0) _exit(100);
  if (slave > 2) close(slave);
  if (say) {
    (void)!write(1, say, strlen(say));
    _exit(0);
  }
  execv(argv[0], argv);
  _exit(127);
}

struct proxied {
  pid_t pid;
  int in_w;   /* feeds the proxy's stdin */
  int out_r;  /* the proxy's stdout */
  int stop_w; /* makes stop_fd readable */
};

/* Runs rc_pty_proxy in a child whose stdin/stdout are pipes; its exit status is 0 when
 * the proxy returned 0, and its error message follows the output otherwise. */
static struct proxied spawn_proxy_stop(int master, int stop_fd) {
  int in[2], out[2], stop[2];
  if (pipe(in) < 0 || pipe(out) < 0 || pipe(stop) < 0) abort();
  struct proxied p = {.in_w = in[1], .out_r = out[0], .stop_w = stop[1]};
  p.pid = fork();
  if (p.pid == 0) {
    alarm(10); /* a proxy that never returns fails the test instead of hanging it */
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    close(stop[1]);
    struct rc_error err = {0};
    int rc = rc_pty_proxy(master, stop_fd >= 0 ? stop_fd : stop[0], &err);
    if (rc < 0) dprintf(1, "\nPROXY ERROR: %s\n", err.msg);
    _exit(rc == 0 ? 0 : 1);
  }
  close(in[0]);
  close(out[1]);
  close(stop[0]);
  return p;
}

static struct proxied spawn_proxy(int master) {
  return spawn_proxy_stop(master, -1);
}

static int wait_status(pid_t pid) {
  int st = -1;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return st;
}

static void test_proxy_copies_output_until_hangup(void) {
  int m = -1, s = -1;
  struct rc_error err = {0};
  CHECK(rc_pty_open(&m, &s, 0, 0, &err) == 0);
  pid_t app = spawn_on_slave(s, m, NULL, "hello\n");
  close(s); /* only the app holds the slave, so its exit hangs up the pty */
  struct proxied p = spawn_proxy(m);
  close(m);
  close(p.in_w); /* stdin at EOF right away must not end the proxy early */

  char *out = read_until(p.out_r, NULL, 5000);
  CHECK_CONTAINS(out, "hello");
  CHECK(!strstr(out, "PROXY ERROR"));
  int st = wait_status(p.pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  st = wait_status(app);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  free(out);
  close(p.out_r);
  close(p.stop_w);
}

static void test_proxy_round_trip(void) {
  /* Input goes stdin -> master -> `head -n1` on the slave, which prints it and exits;
   * the pty hangs up and the proxy returns. */
  int m = -1, s = -1;
  struct rc_error err = {0};
  CHECK(rc_pty_open(&m, &s, 0, 0, &err) == 0);
  /* head is the session leader of the pty: the hang-up when its session ends can reach it
   * as SIGHUP while it is still exiting (seen under ASan's slower exit), which is not what
   * this test is about; it ignores SIGHUP so that its exit status is its own. */
  char *argv[] = {"/bin/sh", "-c", "trap '' HUP; head -n1", NULL};
  pid_t app = spawn_on_slave(s, m, argv, NULL);
  close(s);
  struct proxied p = spawn_proxy(m);
  close(m);
  CHECK(write(p.in_w, "round-trip\n", 11) == 11);
  close(p.in_w);

  char *out = read_until(p.out_r, NULL, 5000);
  /* Once as the terminal's echo, once as head's output (with the pty's \r\n). */
  const char *first = strstr(out, "round-trip");
  CHECK(first != NULL && strstr(first + 1, "round-trip") != NULL);
  CHECK(!strstr(out, "PROXY ERROR"));
  int st = wait_status(p.pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  st = wait_status(app);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  free(out);
  close(p.out_r);
  close(p.stop_w);
}

static void test_proxy_stop_fd(void) {
  /* `cat` never exits on its own (stdin EOF is not forwarded as ^D); the stop fd ends
   * the proxy, which still hands over the output that was there. */
  int m = -1, s = -1;
  struct rc_error err = {0};
  CHECK(rc_pty_open(&m, &s, 0, 0, &err) == 0);
  char *argv[] = {"/bin/cat", NULL};
  pid_t app = spawn_on_slave(s, m, argv, NULL);
  close(s);
  struct proxied p = spawn_proxy(m);
  close(m);
  CHECK(write(p.in_w, "meow\n", 5) == 5);
  char *out = read_until(p.out_r, "meow\r\nmeow", 5000);
  CHECK_CONTAINS(out, "meow\r\nmeow");
  free(out);
  CHECK(write(p.stop_w, "x", 1) == 1);
  int st = wait_status(p.pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  kill(app, SIGKILL);
  wait_status(app);
  close(p.in_w);
  close(p.out_r);
  close(p.stop_w);
}

static void test_proxy_stop_on_pidfd_keeps_last_output(void) {
  /* As `runcell run` uses it: stop_fd is the container's pidfd. The app prints and
   * exits at once; whichever fires first, hang-up or pidfd, the output must be there. */
  int m = -1, s = -1;
  struct rc_error err = {0};
  CHECK(rc_pty_open(&m, &s, 0, 0, &err) == 0);
  pid_t app = spawn_on_slave(s, m, NULL, "last words\n");
  close(s);
  int pidfd = (int)syscall(SYS_pidfd_open, app, 0);
  CHECK(pidfd >= 0);
  struct proxied p = spawn_proxy_stop(m, pidfd);
  close(m);
  char *out = read_until(p.out_r, NULL, 5000);
  CHECK_CONTAINS(out, "last words");
  int st = wait_status(p.pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  wait_status(app);
  free(out);
  close(pidfd);
  close(p.in_w);
  close(p.out_r);
  close(p.stop_w);
}

static bool inner_size_is(int fd, unsigned short cols, unsigned short rows) {
  for (int i = 0; i < 100; i++) {
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col == cols && ws.ws_row == rows) return true;
    usleep(20000);
  }
  return false;
}

static void test_proxy_tty_raw_and_winch(void) {
  /* The caller's terminal is the slave of an outer pty; the container's is an inner one. */
  int om = -1, os = -1, im = -1, is = -1;
  struct rc_error err = {0};
  CHECK(rc_pty_open(&om, &os, 100, 30, &err) == 0);
  CHECK(rc_pty_open(&im, &is, 0, 0, &err) == 0);
  if (om < 0 || im < 0) return;
  int out[2] = {-1, -1}, stop[2] = {-1, -1};
  CHECK(pipe(out) == 0 && pipe(stop) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(10);
    dup2(os, 0);
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    close(stop[1]);
    int rc = rc_pty_proxy(im, stop[0], &err);
    if (rc < 0) dprintf(1, "\nPROXY ERROR: %s\n", err.msg);
    _exit(rc == 0 ? 0 : 1);
  }
  close(out[1]);
  close(stop[0]);

  /* The caller's size reaches the container's pty when the proxy starts ... */
  CHECK(inner_size_is(is, 100, 30));
  /* ... by then the caller's terminal is raw ... */
  struct termios t;
  CHECK(tcgetattr(os, &t) == 0 && !(t.c_lflag & (ICANON | ECHO)));
  /* ... so a keystroke without a newline goes through, and comes back as the inner
   * terminal's echo. */
  CHECK(write(om, "abc", 3) == 3);
  char *got = read_until(out[0], "abc", 3000);
  CHECK_CONTAINS(got, "abc");
  free(got);

  /* A resize of the caller's terminal follows on SIGWINCH. */
  struct winsize ws = {.ws_row = 20, .ws_col = 50};
  CHECK(ioctl(om, TIOCSWINSZ, &ws) == 0);
  kill(pid, SIGWINCH);
  CHECK(inner_size_is(is, 50, 20));

  CHECK(write(stop[1], "x", 1) == 1);
  int st = wait_status(pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  /* The caller's terminal is back in its cooked mode. */
  CHECK(tcgetattr(os, &t) == 0 && (t.c_lflag & ICANON) && (t.c_lflag & ECHO));
  close(out[0]);
  close(stop[1]);
  close(om);
  close(os);
  close(im);
  close(is);
}

UNIT_MAIN("terminal", UNIT_CASE(test_pty_pair_works), UNIT_CASE(test_pty_without_size),
          UNIT_CASE(test_send_recv_fd), UNIT_CASE(test_recv_two_fds_fails_cleanly),
          UNIT_CASE(test_console_socket_connect), UNIT_CASE(test_proxy_copies_output_until_hangup),
          UNIT_CASE(test_proxy_round_trip), UNIT_CASE(test_proxy_stop_fd),
          UNIT_CASE(test_proxy_stop_on_pidfd_keeps_last_output),
          UNIT_CASE(test_proxy_tty_raw_and_winch))
