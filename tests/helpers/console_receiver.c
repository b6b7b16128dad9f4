/* A console socket for tests (what containerd's shim is to `--console-socket`): listens
 * on PATH, takes the one pty master a runtime sends, sets its window to 33 rows x 77
 * columns (so a process can see the size change arrive), writes INPUT to it if given, and
 * copies everything the terminal prints to stdout until the terminal is closed.
 * Usage: console_receiver PATH [INPUT] */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

static int die(const char *what) {
  fprintf(stderr, "console_receiver: %s: %s\n", what, strerror(errno));
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: console_receiver PATH [INPUT]\n");
    return 2;
  }
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(argv[1]) >= sizeof(sa.sun_path)) return 2;
  strcpy(sa.sun_path, argv[1]);
  int ls = socket(AF_UNIX, SOCK_STREAM, 0);
  if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 1) < 0)
    return die("listen");
  int c = accept(ls, NULL, NULL);
  if (c < 0) return die("accept");
  char name[256];
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } ctl;
  struct iovec iov = {.iov_base = name, .iov_len = sizeof(name) - 1};
  struct msghdr mh = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
  if (recvmsg(c, &mh, 0) < 0) return die("recvmsg");
  struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
  if (!h || h->cmsg_type != SCM_RIGHTS) {
    fprintf(stderr, "console_receiver: no fd in the message\n");
    return 1;
  }
  int master;
  memcpy(&master, CMSG_DATA(h), sizeof(int));
  close(c);
  close(ls);
  unlink(argv[1]);
  struct winsize ws = {.ws_row = 33, .ws_col = 77};
  if (ioctl(master, TIOCSWINSZ, &ws) < 0) return die("TIOCSWINSZ");
  if (argc == 3 && write(master, argv[2], strlen(argv[2])) < 0) return die("write");
  char buf[4096];
  for (;;) {
    ssize_t n = read(master, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break; /* EIO: nobody holds the terminal any more */
    if (write(1, buf, (size_t)n) < 0) return die("write stdout");
  }
  return 0;
}
