/* The guest's NIC, set up from the host's NETWORK message with rtnetlink messages written
 * by hand (the agent is static and libc only): the virtio-net device the VMM made carries
 * the MAC of the container's interface on the host, so the agent finds it by that MAC,
 * gives it the interface's name and MTU, brings it (and lo) up, and adds the addresses and
 * then the routes, on-link ones before those through a gateway. The message was validated
 * by agent_decode_network; the kernel checks the rest and its errors are reported. */
/* glibc's net/if.h before any linux/ header, which then leaves its twins out */
// clang-format off
#include <net/if.h>
// clang-format on
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"

/* virtio devices are probed before init runs; an emulated boot gets some slack */
#define NIC_WAIT_MS 3000
#define NL_BUF 1024

struct nl_req {
  struct nlmsghdr h;
  char body[NL_BUF];
};

static void *req_begin(struct nl_req *r, uint16_t type, uint16_t flags, size_t hdr_size) {
  memset(r, 0, sizeof(*r));
  r->h.nlmsg_type = type;
  r->h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
  r->h.nlmsg_len = NLMSG_LENGTH(hdr_size);
  return NLMSG_DATA(&r->h);
}

/* Appends one attribute; the request buffer is sized for the largest message sent here. */
static void req_attr(struct nl_req *r, uint16_t type, const void *data, size_t len) {
  struct rtattr *a = (struct rtattr *)((char *)&r->h + NLMSG_ALIGN(r->h.nlmsg_len));
  a->rta_type = type;
  a->rta_len = (unsigned short)RTA_LENGTH(len);
  memcpy(RTA_DATA(a), data, len);
  r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* Sends the request and waits for its ack: 0 or -errno. */
static int req_send(int fd, struct nl_req *r, uint32_t seq) {
  r->h.nlmsg_seq = seq;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(fd, r, r->h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
    return -errno;
  char buf[4096] __attribute__((aligned(4)));
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    size_t left = (size_t)n;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR) continue;
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) return -EPROTO;
      const struct nlmsgerr *e = NLMSG_DATA(h);
      return e->error; /* 0 for the ack, -errno otherwise */
    }
  }
}

/* The NIC whose address is mac, by its sysfs entry: its index and name. */
static int find_nic(const uint8_t mac[6], int *ifindex, char *name, size_t name_size) {
  char want[18];
  snprintf(want, sizeof(want), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
           mac[4], mac[5]);
  DIR *d = opendir("/sys/class/net");
  if (!d) return -errno;
  const struct dirent *e;
  int r = -ENODEV;
  while (r < 0 && (e = readdir(d))) {
    if (e->d_name[0] == '.' || strlen(e->d_name) >= IFNAMSIZ) continue;
    char path[300], got[32] = "";
    snprintf(path, sizeof(path), "/sys/class/net/%s/address", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, got, sizeof(got) - 1);
    close(fd);
    if (n < 17 || strncmp(got, want, 17) != 0) continue;
    unsigned idx = if_nametoindex(e->d_name);
    if (idx == 0) continue;
    *ifindex = (int)idx;
    snprintf(name, name_size, "%s", e->d_name);
    r = 0;
  }
  closedir(d);
  return r;
}

static int set_link(int fd, uint32_t seq, int ifindex, const char *new_name, uint32_t mtu,
                    bool up) {
  struct nl_req r;
  struct ifinfomsg *ifi = req_begin(&r, RTM_NEWLINK, 0, sizeof(*ifi));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;
  if (up) {
    ifi->ifi_flags = IFF_UP;
    ifi->ifi_change = IFF_UP;
  }
  if (new_name) req_attr(&r, IFLA_IFNAME, new_name, strlen(new_name) + 1);
  if (mtu) req_attr(&r, IFLA_MTU, &mtu, sizeof(mtu));
  return req_send(fd, &r, seq);
}

static int sys_family(uint8_t family) {
  return family == AGENT_NET_INET ? AF_INET : AF_INET6;
}

static size_t addr_len(uint8_t family) {
  return family == AGENT_NET_INET ? 4 : 16;
}

static int add_addr(int fd, uint32_t seq, int ifindex, const struct agent_net_addr *a) {
  struct nl_req r;
  struct ifaddrmsg *ifa = req_begin(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, sizeof(*ifa));
  ifa->ifa_family = (uint8_t)sys_family(a->family);
  ifa->ifa_prefixlen = a->prefix;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = (uint32_t)ifindex;
  /* the host checked the address on its side already; waiting for duplicate address
   * detection would only delay the workload's first packets */
  if (a->family == AGENT_NET_INET6) ifa->ifa_flags = IFA_F_NODAD;
  req_attr(&r, IFA_ADDRESS, a->addr, addr_len(a->family));
  if (a->family == AGENT_NET_INET) req_attr(&r, IFA_LOCAL, a->addr, 4);
  return req_send(fd, &r, seq);
}

static int add_route(int fd, uint32_t seq, int ifindex, const struct agent_net_route *rt) {
  struct nl_req r;
  struct rtmsg *rtm = req_begin(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, sizeof(*rtm));
  rtm->rtm_family = (uint8_t)sys_family(rt->family);
  rtm->rtm_dst_len = rt->dst_prefix;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_BOOT;
  rtm->rtm_scope = rt->has_gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  rtm->rtm_type = RTN_UNICAST;
  uint32_t oif = (uint32_t)ifindex;
  req_attr(&r, RTA_OIF, &oif, sizeof(oif));
  if (rt->dst_prefix > 0) req_attr(&r, RTA_DST, rt->dst, addr_len(rt->family));
  if (rt->has_gateway) req_attr(&r, RTA_GATEWAY, rt->gateway, addr_len(rt->family));
  if (rt->metric) req_attr(&r, RTA_PRIORITY, &rt->metric, sizeof(rt->metric));
  return req_send(fd, &r, seq);
}

static const char *addr_text(uint8_t family, const uint8_t *addr, char *buf, size_t size) {
  if (!inet_ntop(sys_family(family), addr, buf, (socklen_t)size)) snprintf(buf, size, "?");
  return buf;
}

static int configure(int fd, const struct agent_network *net, struct rc_error *err) {
  uint32_t seq = 1;
  int ifindex = 0, r;
  char name[IFNAMSIZ] = "";
  for (int waited = 0; (r = find_nic(net->mac, &ifindex, name, sizeof(name))) < 0; waited += 10) {
    if (waited >= NIC_WAIT_MS)
      return rc_err(err, -r, "no NIC with the MAC address %02x:%02x:%02x:%02x:%02x:%02x",
                    net->mac[0], net->mac[1], net->mac[2], net->mac[3], net->mac[4], net->mac[5]);
    usleep(10000);
  }
  if ((r = set_link(fd, seq++, 1, NULL, 0, true)) < 0) return rc_err(err, -r, "bring lo up");
  /* renaming needs the link down, which it still is */
  if (strcmp(name, net->ifname) != 0 &&
      (r = set_link(fd, seq++, ifindex, net->ifname, 0, false)) < 0)
    return rc_err(err, -r, "rename %s to %s", name, net->ifname);
  if ((r = set_link(fd, seq++, ifindex, NULL, net->mtu, true)) < 0)
    return rc_err(err, -r, "bring %s up with MTU %u", net->ifname, net->mtu);
  char text[64];
  for (uint32_t i = 0; i < net->n_addrs; i++) {
    const struct agent_net_addr *a = &net->addrs[i];
    if ((r = add_addr(fd, seq++, ifindex, a)) < 0)
      return rc_err(err, -r, "add address %s/%u to %s",
                    addr_text(a->family, a->addr, text, sizeof(text)), a->prefix, net->ifname);
  }
  /* on-link routes first: a gateway must be reachable when its route is added */
  for (int pass = 0; pass < 2; pass++) {
    for (uint32_t i = 0; i < net->n_routes; i++) {
      const struct agent_net_route *rt = &net->routes[i];
      if (rt->has_gateway != (pass == 1)) continue;
      if ((r = add_route(fd, seq++, ifindex, rt)) < 0)
        return rc_err(err, -r, "add route %s/%u%s%s on %s",
                      addr_text(rt->family, rt->dst, text, sizeof(text)), rt->dst_prefix,
                      rt->has_gateway ? " via " : "",
                      rt->has_gateway ? addr_text(rt->family, rt->gateway, (char[64]){0}, 64) : "",
                      net->ifname);
    }
  }
  agent_log("network: %s (was %s) up, MTU %u, %u addresses, %u routes", net->ifname, name, net->mtu,
            net->n_addrs, net->n_routes);
  return 0;
}

int agent_setup_network(const struct agent_network *net, struct rc_error *err) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return rc_err(err, errno, "netlink socket");
  struct sockaddr_nl self = {.nl_family = AF_NETLINK};
  int r = bind(fd, (struct sockaddr *)&self, sizeof(self)) < 0
              ? rc_err(err, errno, "bind the netlink socket")
              : configure(fd, net, err);
  close(fd);
  return r;
}
