/* A microVM's network set-up on the host kernel, in throwaway network namespaces the test
 * makes (unshare): the probe reads an interface's MAC, MTU, addresses and routes as the
 * guest must get them; setup makes the tap and the tc redirects, and frames really cross
 * them both ways (an ARP request from the far end of a veth pair arrives on the tap, a
 * frame written to the tap arrives at the far end); a second microVM is refused; tear-down
 * removes everything, also after the tap's owner vanished, and is idempotent. Needs root,
 * network namespaces, tun and iproute2's `ip`/`tc` (used to build the scene and to look at
 * it, never by the code under test); skipped with the reason otherwise. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runcell/microvm_net.h"
#include "unit.h"

static pid_t far_end = -1; /* a process holding the namespace of the veth's far end */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
  char cmd[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof(cmd), fmt, ap);
  va_end(ap);
  /* NOLINTNEXTLINE(cert-env33-c): builds the test's scene with fixed iproute2 commands */
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The output of a command, for checks on what tc or ip report. */
static char *sh_out(const char *cmd) {
  static char out[8192];
  /* NOLINTNEXTLINE(cert-env33-c): reads what fixed ip/tc commands report */
  FILE *p = popen(cmd, "r");
  size_t n = p ? fread(out, 1, sizeof(out) - 1, p) : 0;
  if (p) pclose(p);
  out[n] = '\0';
  return out;
}

static bool can_run(void) {
  static int ok = -1;
  if (ok >= 0) return ok;
  ok = 0;
  if (geteuid() != 0)
    fprintf(stderr, "SKIP: needs root\n");
  else if (access("/dev/net/tun", R_OK | W_OK) < 0)
    fprintf(stderr, "SKIP: no /dev/net/tun\n");
  else if (sh("command -v ip >/dev/null && command -v tc >/dev/null && command -v nsenter "
              ">/dev/null && command -v busybox "
              ">/dev/null") != 0)
    fprintf(stderr, "SKIP: needs iproute2 (ip, tc) and nsenter\n");
  else
    ok = 1;
  return ok;
}

static void end_far_end(void) {
  if (far_end > 0) {
    kill(far_end, SIGKILL);
    waitpid(far_end, NULL, 0);
    far_end = -1;
  }
}

/* A fresh namespace for this process, and a fresh one for the far end. */
static bool fresh_namespaces(void) {
  static bool registered;
  if (!registered) atexit(end_far_end);
  registered = true;
  end_far_end();
  if (unshare(CLONE_NEWNET) < 0) {
    fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
    return false;
  }
  int ready[2];
  if (pipe(ready) < 0) return false;
  far_end = fork();
  if (far_end == 0) {
    char c = unshare(CLONE_NEWNET) == 0 ? 'y' : 'n';
    if (write(ready[1], &c, 1) < 0) _exit(1);
    pause();
    _exit(0);
  }
  char c = 'n';
  if (read(ready[0], &c, 1) < 0) c = 'n';
  close(ready[0]);
  close(ready[1]);
  return c == 'y' && sh("ip link set lo up") == 0;
}

/* eth0 here (MTU 1400, v4 and v6 addresses, a default route and a v6 route), peer0 at the
 * far end with 10.200.0.1. */
static bool make_veth(void) {
  return sh("ip link add eth0 mtu 1400 type veth peer name peer0 netns %d", far_end) == 0 &&
         sh("ip addr add 10.200.0.2/24 dev eth0 && ip -6 addr add fd00:200::2/64 dev eth0 nodad "
            "&& ip link set eth0 up && ip route add default via 10.200.0.1 && "
            "ip -6 route add fd01::/48 via fd00:200::1") == 0 &&
         sh("nsenter -t %d -n sh -c 'ip link set lo up && ip link set peer0 up && "
            "ip addr add 10.200.0.1/24 dev peer0'",
            far_end) == 0;
}

static void test_only_loopback(void) {
  if (!can_run()) return;
  CHECK(fresh_namespaces());
  struct rc_microvm_net net;
  struct rc_error err = {0};
  CHECK(rc_microvm_net_probe(&net, &err) == 0);
  CHECK(!net.present);
  CHECK(net.tap_fd == -1);
  CHECK(rc_microvm_net_attach(&net, &err) == 0 && !net.present && net.tap_fd == -1);
  CHECK(rc_microvm_net_teardown(&err) == 0); /* nothing to remove is fine */
}

static bool has_addr(const struct agent_network *g, uint8_t family, const char *text,
                     uint8_t prefix) {
  uint8_t want[16] = {0};
  inet_pton(family == AGENT_NET_INET ? AF_INET : AF_INET6, text, want);
  for (uint32_t i = 0; i < g->n_addrs; i++)
    if (g->addrs[i].family == family && g->addrs[i].prefix == prefix &&
        !memcmp(g->addrs[i].addr, want, 16))
      return true;
  return false;
}

static void test_probe(void) {
  if (!can_run()) return;
  CHECK(fresh_namespaces());
  CHECK(make_veth());
  struct rc_microvm_net net;
  struct rc_error err = {0};
  CHECK(rc_microvm_net_probe(&net, &err) == 0);
  if (!net.present) {
    fprintf(stderr, "probe: %s\n", err.msg);
    CHECK(net.present);
    return;
  }
  CHECK_STR_EQ(net.guest.ifname, "eth0");
  CHECK(net.ifindex == (int)if_nametoindex("eth0"));
  CHECK(net.guest.mtu == 1400);
  struct ifreq ifr = {0};
  strcpy(ifr.ifr_name, "eth0");
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  CHECK(s >= 0 && ioctl(s, SIOCGIFHWADDR, &ifr) == 0);
  close(s);
  CHECK(memcmp(net.guest.mac, ifr.ifr_hwaddr.sa_data, 6) == 0);
  /* the link-local v6 address is the guest's own business */
  CHECK(net.guest.n_addrs == 2);
  CHECK(has_addr(&net.guest, AGENT_NET_INET, "10.200.0.2", 24));
  CHECK(has_addr(&net.guest, AGENT_NET_INET6, "fd00:200::2", 64));
  /* the routes the kernel derives from the addresses are left out */
  CHECK(net.guest.n_routes == 2);
  bool v4_default = false, v6_route = false;
  for (uint32_t i = 0; i < net.guest.n_routes; i++) {
    const struct agent_net_route *r = &net.guest.routes[i];
    uint8_t gw4[16] = {0}, gw6[16] = {0}, dst6[16] = {0};
    inet_pton(AF_INET, "10.200.0.1", gw4);
    inet_pton(AF_INET6, "fd00:200::1", gw6);
    inet_pton(AF_INET6, "fd01::", dst6);
    if (r->family == AGENT_NET_INET && r->dst_prefix == 0 && r->has_gateway &&
        !memcmp(r->gateway, gw4, 16))
      v4_default = true;
    if (r->family == AGENT_NET_INET6 && r->dst_prefix == 48 && !memcmp(r->dst, dst6, 16) &&
        r->has_gateway && !memcmp(r->gateway, gw6, 16) && r->metric == 0)
      v6_route = true;
  }
  CHECK(v4_default);
  CHECK(v6_route);

  /* a second interface is refused by name */
  CHECK(sh("ip link add eth1 type veth peer name peer1 netns %d", far_end) == 0);
  CHECK(rc_microvm_net_probe(&net, &err) < 0);
  CHECK_CONTAINS(err.msg, "2 interfaces");
  CHECK_CONTAINS(err.msg, "eth1");
}

/* Waits for a frame on the tap: its length, or -1. */
static ssize_t tap_frame(int fd, uint8_t *buf, size_t size) {
  for (int i = 0; i < 300; i++) {
    ssize_t n = read(fd, buf, size);
    if (n >= 0) return n;
    if (errno != EAGAIN) return -1;
    poll(NULL, 0, 10);
  }
  return -1;
}

static unsigned long far_rx_packets(void) {
  char cmd[128];
  /* sysfs shows its mounter's namespace, so the counter comes from ip */
  snprintf(cmd, sizeof(cmd), "nsenter -t %d -n ip -s -o link show peer0", far_end);
  const char *out = sh_out(cmd);
  const char *rx = strstr(out, "RX:");
  if (!rx) return 0;
  rx = strchr(rx, '\\'); /* -o puts the numbers after a backslash */
  if (!rx) return 0;
  char *end;
  (void)strtoul(rx + 1, &end, 10); /* bytes, then packets */
  return strtoul(end, NULL, 10);
}

static void test_setup_and_teardown(void) {
  if (!can_run()) return;
  CHECK(fresh_namespaces());
  CHECK(make_veth());
  struct rc_microvm_net net;
  struct rc_error err = {0};
  if (rc_microvm_net_attach(&net, &err) < 0) {
    fprintf(stderr, "attach: %s\n", err.msg);
    CHECK(!"attach failed");
    return;
  }
  CHECK(net.present && net.tap_fd >= 0);
  CHECK(net.tap_ifindex == (int)if_nametoindex(RC_MICROVM_TAP_NAME));
  CHECK_CONTAINS(sh_out("ip -o link show " RC_MICROVM_TAP_NAME), "mtu 1400");
  CHECK_CONTAINS(sh_out("tc filter show dev eth0 ingress"),
                 "Egress Redirect to device " RC_MICROVM_TAP_NAME);
  CHECK_CONTAINS(sh_out("tc filter show dev " RC_MICROVM_TAP_NAME " ingress"),
                 "Egress Redirect to device eth0");
  CHECK_CONTAINS(sh_out("tc filter show dev eth0 ingress"), "pref 21059"); /* 0x5243 */

  /* in: the far end asks for 10.200.0.2; the ARP request lands on the tap, not in this
   * namespace's stack */
  sh("nsenter -t %d -n busybox ping -c1 -W1 10.200.0.2 >/dev/null 2>&1 &", far_end);
  uint8_t frame[2048];
  static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  bool arp = false;
  for (int i = 0; i < 20 && !arp; i++) { /* IPv6 chatter of the far end may come first */
    ssize_t n = tap_frame(net.tap_fd, frame, sizeof(frame));
    if (n < 0) break;
    arp = n >= 42 && !memcmp(frame, bcast, 6) && frame[12] == 0x08 && frame[13] == 0x06;
  }
  CHECK(arp);

  /* out: a frame written to the tap leaves by eth0 and reaches the far end */
  unsigned long before = far_rx_packets();
  uint8_t out[60] = {0};
  memcpy(out, bcast, 6);
  memcpy(out + 6, net.guest.mac, 6);
  out[12] = 0x88; /* local experimental ethertype */
  out[13] = 0xb5;
  CHECK(write(net.tap_fd, out, sizeof(out)) == (ssize_t)sizeof(out));
  bool arrived = false;
  for (int i = 0; i < 100 && !arrived; i++) {
    arrived = far_rx_packets() > before;
    if (!arrived) poll(NULL, 0, 10);
  }
  CHECK(arrived);

  /* a second microVM in this namespace is refused, and leaves the first one's set-up */
  struct rc_microvm_net second;
  CHECK(rc_microvm_net_attach(&second, &err) < 0);
  CHECK_CONTAINS(err.msg, "already has a microVM");
  CHECK(if_nametoindex(RC_MICROVM_TAP_NAME) > 0);
  CHECK_CONTAINS(sh_out("tc filter show dev eth0 ingress"), "mirred");

  /* tear-down with the tap still open (delete while a VMM lingers) */
  CHECK(rc_microvm_net_teardown(&err) == 0);
  CHECK(if_nametoindex(RC_MICROVM_TAP_NAME) == 0);
  CHECK_STR_EQ(sh_out("tc filter show dev eth0 ingress"), "");
  CHECK(strstr(sh_out("tc qdisc show dev eth0"), "ingress") == NULL);
  CHECK(rc_microvm_net_teardown(&err) == 0); /* again: nothing left, no error */
  close(net.tap_fd);
}

/* A VMM killed with SIGKILL: its tap goes with its fd, its filter on eth0 stays until
 * tear-down, which runs from another process through the namespace's path. A CNI
 * plugin's own ingress filter survives it. */
static void test_teardown_after_crash(void) {
  if (!can_run()) return;
  CHECK(fresh_namespaces());
  CHECK(make_veth());
  CHECK(sh("tc qdisc add dev eth0 ingress && tc filter add dev eth0 ingress prio 7 protocol "
           "ip u32 match ip dst 10.9.9.9/32 flowid 1:1") == 0);
  struct rc_microvm_net net;
  struct rc_error err = {0};
  CHECK(rc_microvm_net_attach(&net, &err) == 0);
  /* while the VMM lives, the cleanup of another (stopped) container leaves it alone */
  CHECK(rc_microvm_net_teardown_netns("/proc/self/ns/net", &err) == 0);
  CHECK(if_nametoindex(RC_MICROVM_TAP_NAME) > 0);
  CHECK_CONTAINS(sh_out("tc filter show dev eth0 ingress"), "mirred");
  close(net.tap_fd); /* what the kernel does when the VMM dies */
  for (int i = 0; i < 100 && if_nametoindex(RC_MICROVM_TAP_NAME); i++) poll(NULL, 0, 10);
  CHECK(if_nametoindex(RC_MICROVM_TAP_NAME) == 0);
  CHECK_CONTAINS(sh_out("tc filter show dev eth0 ingress"), "mirred");

  CHECK(rc_microvm_net_teardown_netns("/proc/self/ns/net", &err) == 0);
  const char *left = sh_out("tc filter show dev eth0 ingress");
  CHECK(strstr(left, "mirred") == NULL);
  CHECK_CONTAINS(left, "pref 7"); /* not ours: kept, and so is the qdisc */
  CHECK_CONTAINS(sh_out("tc qdisc show dev eth0"), "ingress");

  /* a new microVM can use the namespace again */
  CHECK(rc_microvm_net_attach(&net, &err) == 0);
  close(net.tap_fd);
  CHECK(rc_microvm_net_teardown(&err) == 0);
  /* a namespace that is gone is nothing to clean */
  CHECK(rc_microvm_net_teardown_netns("/proc/999999999/ns/net", &err) == 0);
}

UNIT_MAIN("microvm_net", UNIT_CASE(test_only_loopback), UNIT_CASE(test_probe),
          UNIT_CASE(test_setup_and_teardown), UNIT_CASE(test_teardown_after_crash))
