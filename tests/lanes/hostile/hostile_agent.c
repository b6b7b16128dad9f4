/* A hostile guest agent, for the microVM lane (tests/lanes/microvm-tests/hostile-agent.sh):
 * PID 1 of a guest that breaks the host<->agent protocol on purpose. Built once per
 * behaviour with -DBEHAVIOUR=N (tests/integration/test_microvm_lane.py packs each into an
 * initrd of its own):
 *   1 garbage   random bytes on the channel, forever
 *   2 oversize  a frame header announcing 16 MiB, then bytes forever
 *   3 flood     a proper HELLO / CONFIGURED / STARTED, then STDOUT frames without end,
 *               never reading the host's credits
 *   4 silent    opens the channel and says nothing
 * The host must fail the container with a clear error, stay bounded in memory, and leave
 * nothing behind. */
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <termios.h>
#include <unistd.h>

#include "runcell/agent_proto.h"

#ifndef BEHAVIOUR
#error "build with -DBEHAVIOUR=1..4"
#endif

static int channel(void) {
  mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
  int fd = -1;
  for (int i = 0; i < 100 && fd < 0; i++) {
    fd = open("/dev/hvc0", O_RDWR | O_NOCTTY);
    if (fd < 0) usleep(20000);
  }
  struct termios t;
  if (fd >= 0 && tcgetattr(fd, &t) == 0) {
    cfmakeraw(&t);
    tcsetattr(fd, TCSANOW, &t);
  }
  return fd;
}

static void send_msg(int fd, struct agent_msg *m) {
  struct rc_error err;
  if (agent_msg_end(m, &err) == 0) (void)agent_msg_write(fd, m, &err);
}

/* Reads frames until one of type `type` arrives. */
static void await_type(int fd, struct agent_reader *r, uint16_t type) {
  struct rc_error err;
  for (;;) {
    struct agent_frame f;
    int n;
    while ((n = agent_reader_next(r, &f, &err)) > 0)
      if (f.type == type) return;
    if (n < 0) return;
    bool eof = false;
    if (agent_reader_fill(r, fd, &eof, &err) < 0 || eof) return;
  }
}

static struct agent_msg msg;
static struct agent_reader reader;

int main(void) {
  int fd = channel();
  if (fd < 0) return 1;
  uint8_t buf[4096];
  switch (BEHAVIOUR) {
    case 1:
      for (;;) {
        if (getrandom(buf, sizeof(buf), 0) < 0) memset(buf, 0xa5, sizeof(buf));
        if (write(fd, buf, sizeof(buf)) < 0) usleep(1000);
      }
    case 2: {
      uint8_t hdr[AGENT_FRAME_HEADER_SIZE] = {0};
      uint32_t magic = AGENT_PROTO_MAGIC, len = 16u << 20;
      uint16_t version = AGENT_PROTO_VERSION, type = AGENT_MSG_HELLO;
      memcpy(hdr, &magic, 4);
      memcpy(hdr + 4, &version, 2);
      memcpy(hdr + 6, &type, 2);
      memcpy(hdr + 8, &len, 4);
      (void)!write(fd, hdr, sizeof(hdr));
      memset(buf, 'x', sizeof(buf));
      for (;;)
        if (write(fd, buf, sizeof(buf)) < 0) usleep(1000);
    }
    case 3: {
      agent_reader_init(&reader);
      agent_encode_hello(&msg, "hostile-flood");
      send_msg(fd, &msg);
      await_type(fd, &reader, AGENT_MSG_CONFIG);
      agent_encode_empty(&msg, AGENT_MSG_CONFIGURED);
      send_msg(fd, &msg);
      await_type(fd, &reader, AGENT_MSG_START);
      agent_encode_started(&msg, 1);
      send_msg(fd, &msg);
      memset(buf, 'y', sizeof(buf));
      for (;;) {
        agent_encode_data(&msg, AGENT_MSG_STDOUT, AGENT_PROC_CONTAINER, buf, sizeof(buf));
        send_msg(fd, &msg);
      }
    }
    default:
      for (;;) pause();
  }
}
