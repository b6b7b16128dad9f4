/* A microVM's network in the container's network namespace (include/runcell/microvm_net.h):
 * reading the interface with rtnetlink dumps, the tap, and the tc redirects, every message
 * built with libmnl. */
#include "runcell/microvm_net.h"

/* glibc's net/if.h before any linux/ header, which then leaves its twins out */
// clang-format off
#include <net/if.h>
// clang-format on
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_arp.h>
#include <linux/if_ether.h>
#include <linux/if_tun.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <linux/tc_act/tc_mirred.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runcell/oci.h"
#include "runcell/util.h"

#define TUN_DEVICE "/dev/net/tun"
#define TC_INGRESS_HANDLE TC_H_MAKE(TC_H_INGRESS, 0)
/* What one recvmsg of a dump may bring: the kernel fills up to 32 KiB (libmnl >= 1.0.5
 * names it MNL_SOCKET_DUMP_SIZE; Debian 12 has 1.0.4). */
#define NL_DUMP_SIZE 32768u

/* ---- netlink plumbing ------------------------------------------------------------- */

struct nl {
  struct mnl_socket *sock;
  unsigned port;
  unsigned seq;
};

static int nl_open(struct nl *nl, struct rc_error *err) {
  nl->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (!nl->sock) return rc_err(err, errno, "netlink socket");
  if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
    rc_err(err, errno, "bind the netlink socket");
    mnl_socket_close(nl->sock);
    nl->sock = NULL;
    return -1;
  }
  nl->port = mnl_socket_get_portid(nl->sock);
  nl->seq = (unsigned)time(NULL);
  return 0;
}

static void nl_close(struct nl *nl) {
  if (nl->sock) mnl_socket_close(nl->sock);
  nl->sock = NULL;
}

static struct nlmsghdr *nl_begin(struct nl *nl, char *buf, uint16_t type, uint16_t flags) {
  struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
  h->nlmsg_type = type;
  h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
  h->nlmsg_seq = ++nl->seq;
  return h;
}

/* Sends a request and runs cb over every answer until the kernel's ack or the end of a
 * dump: 0, or -errno (the kernel's error, or the socket's). */
static int nl_talk(struct nl *nl, const struct nlmsghdr *h, mnl_cb_t cb, void *data) {
  if (mnl_socket_sendto(nl->sock, h, h->nlmsg_len) < 0) return -errno;
  char *buf = malloc(NL_DUMP_SIZE);
  if (!buf) return -ENOMEM;
  int r;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl->sock, buf, NL_DUMP_SIZE);
    if (n < 0) {
      r = -errno;
      break;
    }
    r = mnl_cb_run(buf, (size_t)n, h->nlmsg_seq, nl->port, cb, data);
    if (r <= MNL_CB_STOP) {
      r = r < 0 ? -errno : 0;
      break;
    }
  }
  free(buf);
  return r;
}

/* ---- reading the namespace's interface --------------------------------------------- */

struct link_scan {
  struct rc_microvm_net *net;
  unsigned candidates;
  char other[IFNAMSIZ]; /* a second candidate's name, for the message */
  bool tap_found;
};

static int link_cb(const struct nlmsghdr *h, void *data) {
  struct link_scan *s = data;
  const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(h);
  const char *name = NULL;
  const struct nlattr *mac = NULL;
  uint32_t mtu = 0;
  const struct nlattr *a;
  mnl_attr_for_each(a, h, sizeof(*ifi)) {
    switch (mnl_attr_get_type(a)) {
      case IFLA_IFNAME:
        if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0) name = mnl_attr_get_str(a);
        break;
      case IFLA_ADDRESS:
        mac = a;
        break;
      case IFLA_MTU:
        if (mnl_attr_validate(a, MNL_TYPE_U32) == 0) mtu = mnl_attr_get_u32(a);
        break;
      default:
        break;
    }
  }
  if (!name) return MNL_CB_OK;
  if (!strcmp(name, RC_MICROVM_TAP_NAME)) {
    s->tap_found = true;
    return MNL_CB_OK;
  }
  if ((ifi->ifi_flags & IFF_LOOPBACK) || ifi->ifi_type != ARPHRD_ETHER || !mac ||
      mnl_attr_get_payload_len(mac) != ETH_ALEN)
    return MNL_CB_OK;
  if (s->candidates++ > 0) {
    snprintf(s->other, sizeof(s->other), "%s", name);
    return MNL_CB_OK;
  }
  struct rc_microvm_net *net = s->net;
  net->present = true;
  net->ifindex = ifi->ifi_index;
  snprintf(net->guest.ifname, sizeof(net->guest.ifname), "%s", name);
  memcpy(net->guest.mac, mnl_attr_get_payload(mac), ETH_ALEN);
  net->guest.mtu = mtu;
  return MNL_CB_OK;
}

static uint8_t wire_family(int family) {
  return family == AF_INET ? AGENT_NET_INET : AGENT_NET_INET6;
}

static bool attr_addr(const struct nlattr *a, int family, uint8_t out[16]) {
  size_t want = family == AF_INET ? 4 : 16;
  if (mnl_attr_get_payload_len(a) != want) return false;
  memset(out, 0, 16);
  memcpy(out, mnl_attr_get_payload(a), want);
  return true;
}

struct addr_scan {
  struct rc_microvm_net *net;
  bool overflow;
};

static int addr_cb(const struct nlmsghdr *h, void *data) {
  struct addr_scan *s = data;
  struct agent_network *g = &s->net->guest;
  const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(h);
  if ((int)ifa->ifa_index != s->net->ifindex) return MNL_CB_OK;
  if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6) return MNL_CB_OK;
  if (ifa->ifa_scope == RT_SCOPE_LINK || ifa->ifa_scope == RT_SCOPE_HOST) return MNL_CB_OK;
  const struct nlattr *local = NULL, *address = NULL, *a;
  mnl_attr_for_each(a, h, sizeof(*ifa)) {
    if (mnl_attr_get_type(a) == IFA_LOCAL) local = a;
    if (mnl_attr_get_type(a) == IFA_ADDRESS) address = a;
  }
  /* IFA_LOCAL is the interface's own address (IFA_ADDRESS the peer's on point-to-point
   * links); IPv6 sends only IFA_ADDRESS */
  const struct nlattr *own = local ? local : address;
  if (!own) return MNL_CB_OK;
  if (g->n_addrs >= AGENT_MAX_NET_ADDRS) {
    s->overflow = true;
    return MNL_CB_OK;
  }
  struct agent_net_addr *out = &g->addrs[g->n_addrs];
  if (!attr_addr(own, ifa->ifa_family, out->addr)) return MNL_CB_OK;
  out->family = wire_family(ifa->ifa_family);
  out->prefix = ifa->ifa_prefixlen;
  g->n_addrs++;
  return MNL_CB_OK;
}

struct route_scan {
  struct rc_microvm_net *net;
  bool overflow;
};

static int route_cb(const struct nlmsghdr *h, void *data) {
  struct route_scan *s = data;
  struct agent_network *g = &s->net->guest;
  const struct rtmsg *rtm = mnl_nlmsg_get_payload(h);
  if (rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6) return MNL_CB_OK;
  /* the guest's kernel derives the prefix routes of its addresses itself */
  if (rtm->rtm_type != RTN_UNICAST || rtm->rtm_protocol == RTPROT_KERNEL) return MNL_CB_OK;
  uint32_t table = rtm->rtm_table, oif = 0, metric = 0;
  const struct nlattr *dst = NULL, *gw = NULL, *a;
  mnl_attr_for_each(a, h, sizeof(*rtm)) {
    switch (mnl_attr_get_type(a)) {
      case RTA_TABLE:
        if (mnl_attr_validate(a, MNL_TYPE_U32) == 0) table = mnl_attr_get_u32(a);
        break;
      case RTA_OIF:
        if (mnl_attr_validate(a, MNL_TYPE_U32) == 0) oif = mnl_attr_get_u32(a);
        break;
      case RTA_PRIORITY:
        if (mnl_attr_validate(a, MNL_TYPE_U32) == 0) metric = mnl_attr_get_u32(a);
        break;
      case RTA_DST:
        dst = a;
        break;
      case RTA_GATEWAY:
        gw = a;
        break;
      default:
        break;
    }
  }
  if (table != RT_TABLE_MAIN || (int)oif != s->net->ifindex) return MNL_CB_OK;
  if (g->n_routes >= AGENT_MAX_NET_ROUTES) {
    s->overflow = true;
    return MNL_CB_OK;
  }
  struct agent_net_route *r = &g->routes[g->n_routes];
  memset(r, 0, sizeof(*r));
  if (dst && !attr_addr(dst, rtm->rtm_family, r->dst)) return MNL_CB_OK;
  if (gw && !attr_addr(gw, rtm->rtm_family, r->gateway)) return MNL_CB_OK;
  r->family = wire_family(rtm->rtm_family);
  r->dst_prefix = rtm->rtm_dst_len;
  r->has_gateway = gw != NULL;
  /* IPv6 routes always carry a metric; 1024 is the kernel's default, left to the guest */
  r->metric = rtm->rtm_family == AF_INET6 && metric == 1024 ? 0 : metric;
  g->n_routes++;
  return MNL_CB_OK;
}

/* A dump of one kind (RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE) of every family. */
static int dump(struct nl *nl, uint16_t type, size_t hdr_size, mnl_cb_t cb, void *data) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *h = nl_begin(nl, buf, type, NLM_F_DUMP);
  h->nlmsg_flags &= (uint16_t)~NLM_F_ACK;
  void *body = mnl_nlmsg_put_extra_header(h, hdr_size);
  memset(body, 0, hdr_size); /* family AF_UNSPEC: all of them */
  return nl_talk(nl, h, cb, data);
}

static int probe(struct nl *nl, struct rc_microvm_net *net, struct rc_error *err) {
  struct link_scan ls = {.net = net};
  int r = dump(nl, RTM_GETLINK, sizeof(struct ifinfomsg), link_cb, &ls);
  if (r < 0) return rc_err(err, -r, "network: list the interfaces");
  if (ls.tap_found)
    return rc_err(err, EEXIST,
                  "network: the network namespace already has a microVM (its tap %s exists): "
                  "one microVM per network namespace",
                  RC_MICROVM_TAP_NAME);
  if (ls.candidates > 1)
    return rc_err(err, ENOTSUP,
                  "network: the network namespace has %u interfaces (%s, %s, ...): a microVM "
                  "supports one besides lo",
                  ls.candidates, net->guest.ifname, ls.other);
  if (!net->present) return 0;
  if (net->guest.mtu < 68) net->guest.mtu = 1500;
  struct addr_scan as = {.net = net};
  r = dump(nl, RTM_GETADDR, sizeof(struct ifaddrmsg), addr_cb, &as);
  if (r < 0) return rc_err(err, -r, "network: list the addresses of %s", net->guest.ifname);
  struct route_scan rs = {.net = net};
  r = dump(nl, RTM_GETROUTE, sizeof(struct rtmsg), route_cb, &rs);
  if (r < 0) return rc_err(err, -r, "network: list the routes of %s", net->guest.ifname);
  if (as.overflow || rs.overflow)
    return rc_err(err, ENOTSUP, "network: %s has more than %u addresses or %u routes",
                  net->guest.ifname, AGENT_MAX_NET_ADDRS, AGENT_MAX_NET_ROUTES);
  return agent_network_validate(&net->guest, err);
}

int rc_microvm_net_probe(struct rc_microvm_net *net, struct rc_error *err) {
  memset(net, 0, sizeof(*net));
  net->tap_fd = -1;
  struct nl nl = {0};
  if (nl_open(&nl, err) < 0) return -1;
  int r = probe(&nl, net, err);
  nl_close(&nl);
  return r;
}

/* ---- the tap and the redirects ----------------------------------------------------- */

static int open_tap(struct rc_error *err) {
  int fd = open(TUN_DEVICE, O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return rc_err(err, errno, "network: open %s", TUN_DEVICE);
  struct ifreq ifr = {0};
  snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", RC_MICROVM_TAP_NAME);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    /* a tap of that name held by another process: EBUSY */
    return rc_err(err, e, "network: create the tap %s", RC_MICROVM_TAP_NAME);
  }
  return fd;
}

/* The tap takes the interface's MTU and goes up. */
static int link_up(struct nl *nl, int ifindex, uint32_t mtu) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *h = nl_begin(nl, buf, RTM_NEWLINK, 0);
  struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  mnl_attr_put_u32(h, IFLA_MTU, mtu);
  return nl_talk(nl, h, NULL, NULL);
}

static struct tcmsg *tc_header(struct nlmsghdr *h, int ifindex, uint32_t parent) {
  struct tcmsg *tc = mnl_nlmsg_put_extra_header(h, sizeof(*tc));
  tc->tcm_family = AF_UNSPEC;
  tc->tcm_ifindex = ifindex;
  tc->tcm_parent = parent;
  return tc;
}

/* An ingress qdisc on ifindex; one already there (a CNI plugin's) serves as well. */
static int add_ingress(struct nl *nl, int ifindex) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *h = nl_begin(nl, buf, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL);
  struct tcmsg *tc = tc_header(h, ifindex, TC_H_INGRESS);
  tc->tcm_handle = TC_INGRESS_HANDLE;
  mnl_attr_put_strz(h, TCA_KIND, "ingress");
  int r = nl_talk(nl, h, NULL, NULL);
  return r == -EEXIST ? 0 : r;
}

/* On from's ingress: u32 matching every frame (one key, mask 0), action mirred egress
 * redirect to `to`, at runcell's priority. What `tc filter add dev FROM ingress prio P
 * protocol all u32 match u32 0 0 action mirred egress redirect dev TO` sends. */
static int add_redirect(struct nl *nl, int from, int to) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *h = nl_begin(nl, buf, RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL);
  struct tcmsg *tc = tc_header(h, from, TC_INGRESS_HANDLE);
  tc->tcm_info = TC_H_MAKE((uint32_t)RC_MICROVM_TC_PRIO << 16, htons(ETH_P_ALL));
  mnl_attr_put_strz(h, TCA_KIND, "u32");
  struct nlattr *opts = mnl_attr_nest_start(h, TCA_OPTIONS);
  /* the selector and its one key (all zero: match anything) back to back, as the kernel
   * reads them; a byte buffer, since tc_u32_sel ends in a flexible array */
  uint8_t sel[sizeof(struct tc_u32_sel) + sizeof(struct tc_u32_key)] = {0};
  const struct tc_u32_sel head = {.flags = TC_U32_TERMINAL, .nkeys = 1};
  memcpy(sel, &head, sizeof(head));
  mnl_attr_put(h, TCA_U32_SEL, sizeof(sel), sel);
  struct nlattr *acts = mnl_attr_nest_start(h, TCA_U32_ACT);
  struct nlattr *act = mnl_attr_nest_start(h, 1); /* the first action of the list */
  mnl_attr_put_strz(h, TCA_ACT_KIND, "mirred");
  struct nlattr *aopts = mnl_attr_nest_start(h, TCA_ACT_OPTIONS);
  struct tc_mirred parms = {
      .action = TC_ACT_STOLEN, .eaction = TCA_EGRESS_REDIR, .ifindex = (uint32_t)to};
  mnl_attr_put(h, TCA_MIRRED_PARMS, sizeof(parms), &parms);
  mnl_attr_nest_end(h, aopts);
  mnl_attr_nest_end(h, act);
  mnl_attr_nest_end(h, acts);
  mnl_attr_nest_end(h, opts);
  return nl_talk(nl, h, NULL, NULL);
}

/* Removes runcell's filter (by priority) from ifindex's ingress; absent is fine. */
static int del_redirect(struct nl *nl, int ifindex) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *h = nl_begin(nl, buf, RTM_DELTFILTER, 0);
  struct tcmsg *tc = tc_header(h, ifindex, TC_INGRESS_HANDLE);
  tc->tcm_info = TC_H_MAKE((uint32_t)RC_MICROVM_TC_PRIO << 16, htons(ETH_P_ALL));
  int r = nl_talk(nl, h, NULL, NULL);
  /* ENOENT: no such filter; EINVAL: no ingress qdisc at all */
  return r == -ENOENT || r == -EINVAL ? 0 : r;
}

static int count_cb(const struct nlmsghdr *h, void *data) {
  (void)h;
  (*(unsigned *)data)++;
  return MNL_CB_OK;
}

/* Filters left on ifindex's ingress (-errno when they cannot be listed). */
static int ingress_filters(struct nl *nl, int ifindex) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *h = nl_begin(nl, buf, RTM_GETTFILTER, NLM_F_DUMP);
  h->nlmsg_flags &= (uint16_t)~NLM_F_ACK;
  tc_header(h, ifindex, TC_INGRESS_HANDLE);
  unsigned n = 0;
  int r = nl_talk(nl, h, count_cb, &n);
  return r < 0 ? r : (int)n;
}

static int del_ingress(struct nl *nl, int ifindex) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *h = nl_begin(nl, buf, RTM_DELQDISC, 0);
  struct tcmsg *tc = tc_header(h, ifindex, TC_H_INGRESS);
  tc->tcm_handle = TC_INGRESS_HANDLE;
  int r = nl_talk(nl, h, NULL, NULL);
  return r == -ENOENT || r == -EINVAL ? 0 : r;
}

static int del_link(struct nl *nl, int ifindex) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *h = nl_begin(nl, buf, RTM_DELLINK, 0);
  struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;
  int r = nl_talk(nl, h, NULL, NULL);
  return r == -ENODEV ? 0 : r;
}

/* Every Ethernet interface but the tap, for tear-down: the filter sits on one of them. */
struct ether_scan {
  int ifindex[64];
  unsigned n;
  int tap;
};

static int ether_cb(const struct nlmsghdr *h, void *data) {
  struct ether_scan *s = data;
  const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(h);
  const struct nlattr *a;
  mnl_attr_for_each(a, h, sizeof(*ifi)) {
    if (mnl_attr_get_type(a) == IFLA_IFNAME && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0 &&
        !strcmp(mnl_attr_get_str(a), RC_MICROVM_TAP_NAME))
      s->tap = ifi->ifi_index;
  }
  if (ifi->ifi_type == ARPHRD_ETHER && !(ifi->ifi_flags & IFF_LOOPBACK) &&
      s->n < RC_ARRAY_SIZE(s->ifindex))
    s->ifindex[s->n++] = ifi->ifi_index;
  return MNL_CB_OK;
}

/* stale_only: leave everything when the tap exists. Nobody makes it persistent, so it
 * exists only while a VMM holds its fd: a live microVM owns the namespace now (another
 * container's, after this one stopped), and its redirects are not stale. */
static int teardown(struct nl *nl, bool stale_only, struct rc_error *err) {
  struct ether_scan s = {.tap = 0};
  int r = dump(nl, RTM_GETLINK, sizeof(struct ifinfomsg), ether_cb, &s);
  if (r < 0) return rc_err(err, -r, "network: list the interfaces");
  if (stale_only && s.tap) return 0;
  for (unsigned i = 0; i < s.n; i++) {
    if (s.ifindex[i] == s.tap) continue;
    r = del_redirect(nl, s.ifindex[i]);
    if (r < 0) return rc_err(err, -r, "network: remove the redirect of interface %d", s.ifindex[i]);
    /* the qdisc goes too once nothing else uses it (runcell made it, or an emptied one) */
    int left = ingress_filters(nl, s.ifindex[i]);
    if (left == 0 && (r = del_ingress(nl, s.ifindex[i])) < 0)
      return rc_err(err, -r, "network: remove the ingress qdisc of interface %d", s.ifindex[i]);
  }
  if (s.tap && (r = del_link(nl, s.tap)) < 0)
    return rc_err(err, -r, "network: remove the tap %s", RC_MICROVM_TAP_NAME);
  return 0;
}

static int setup(struct nl *nl, struct rc_microvm_net *net, struct rc_error *err) {
  net->tap_fd = open_tap(err);
  if (net->tap_fd < 0) return -1;
  net->tap_ifindex = (int)if_nametoindex(RC_MICROVM_TAP_NAME);
  if (net->tap_ifindex <= 0) return rc_err(err, errno, "network: index of %s", RC_MICROVM_TAP_NAME);
  int r = link_up(nl, net->tap_ifindex, net->guest.mtu);
  if (r < 0)
    return rc_err(err, -r, "network: bring %s up (MTU %u)", RC_MICROVM_TAP_NAME, net->guest.mtu);
  /* a filter a crashed microVM left on the interface points nowhere: replace it */
  r = del_redirect(nl, net->ifindex);
  if (r == 0) r = add_ingress(nl, net->ifindex);
  if (r == 0) r = add_ingress(nl, net->tap_ifindex);
  if (r < 0)
    return rc_err(err, -r, "network: ingress qdiscs on %s and %s", net->guest.ifname,
                  RC_MICROVM_TAP_NAME);
  r = add_redirect(nl, net->ifindex, net->tap_ifindex);
  if (r == 0) r = add_redirect(nl, net->tap_ifindex, net->ifindex);
  if (r < 0)
    return rc_err(err, -r,
                  "network: tc redirects between %s and %s (modules sch_ingress, "
                  "cls_u32, act_mirred)",
                  net->guest.ifname, RC_MICROVM_TAP_NAME);
  return 0;
}

int rc_microvm_net_setup(struct rc_microvm_net *net, struct rc_error *err) {
  struct nl nl = {0};
  if (nl_open(&nl, err) < 0) return -1;
  int r = setup(&nl, net, err);
  if (r < 0) {
    struct rc_error ignore;
    (void)teardown(&nl, false, &ignore);
    if (net->tap_fd >= 0) close(net->tap_fd);
    net->tap_fd = -1;
  }
  nl_close(&nl);
  return r;
}

int rc_microvm_net_attach(struct rc_microvm_net *net, struct rc_error *err) {
  if (rc_microvm_net_probe(net, err) < 0) return -1;
  if (!net->present) return 0;
  return rc_microvm_net_setup(net, err);
}

static int teardown_here(bool stale_only, struct rc_error *err) {
  struct nl nl = {0};
  if (nl_open(&nl, err) < 0) return -1;
  int r = teardown(&nl, stale_only, err);
  nl_close(&nl);
  return r;
}

int rc_microvm_net_teardown(struct rc_error *err) {
  return teardown_here(false, err);
}

int rc_microvm_net_teardown_netns(const char *path, struct rc_error *err) {
  int nsfd = open(path, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) {
    if (errno == ENOENT) return 0; /* the namespace is gone, and everything in it */
    return rc_err(err, errno, "network: open the network namespace %s", path);
  }
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0) {
    close(nsfd);
    return rc_err(err, errno, "network: pipe");
  }
  pid_t pid = fork();
  if (pid < 0) {
    rc_err(err, errno, "network: fork");
    close(nsfd);
    close(pipefd[0]);
    close(pipefd[1]);
    return -1;
  }
  if (pid == 0) {
    /* the child joins the namespace, so the caller's own stays as it was */
    struct rc_error cerr = {0};
    close(pipefd[0]);
    int r = setns(nsfd, CLONE_NEWNET) < 0
                ? rc_err(&cerr, errno, "network: join the network namespace %s", path)
                : teardown_here(true, &cerr);
    if (r < 0 && write(pipefd[1], cerr.msg, strnlen(cerr.msg, sizeof(cerr.msg))) < 0) _exit(2);
    _exit(r < 0 ? 1 : 0);
  }
  close(nsfd);
  close(pipefd[1]);
  char msg[sizeof(err->msg)];
  ssize_t n, got = 0;
  while (got < (ssize_t)sizeof(msg) - 1 &&
         ((n = read(pipefd[0], msg + got, sizeof(msg) - 1 - (size_t)got)) > 0 ||
          (n < 0 && errno == EINTR)))
    if (n > 0) got += n;
  close(pipefd[0]);
  msg[got] = '\0';
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  return rc_err(err, 0, "%s", got > 0 ? msg : "network: tear-down in the namespace failed");
}

bool rc_microvm_net_wanted(const struct oci_config *cfg) {
  for (size_t i = 0; i < cfg->linux_.n_namespaces; i++)
    if (cfg->linux_.namespaces[i].type == OCI_NS_NETWORK) return true;
  return false;
}

int rc_microvm_net_release(const struct oci_config *cfg, struct rc_error *err) {
  for (size_t i = 0; i < cfg->linux_.n_namespaces; i++) {
    const struct oci_namespace *ns = &cfg->linux_.namespaces[i];
    if (ns->type == OCI_NS_NETWORK && ns->path && *ns->path)
      return rc_microvm_net_teardown_netns(ns->path, err);
  }
  return 0;
}
