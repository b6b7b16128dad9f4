/* A microVM's network: the guest gets the network of the container's network namespace
 * the way Kata's tc-redirect model does it. In that namespace runcell creates a tap
 * (RC_MICROVM_TAP_NAME), whose fd the VMM's virtio-net device reads and writes, and joins it
 * to the namespace's interface (eth0 of a CNI veth pair, say) with tc: an ingress qdisc on
 * each and a u32 match-all filter with a mirred egress redirect each way, so every frame
 * arriving on the interface goes to the guest and every frame from the guest leaves by the
 * interface. The guest's NIC takes the interface's MAC, MTU, addresses and routes (the
 * agent sets them, from an AGENT_MSG_NETWORK).
 *
 * One microVM per namespace: a second one finds the tap and is refused. The tap lives as
 * long as the VMM holds its fd; the filter on the interface outlives a crashed VMM, so
 * `delete` removes it by its priority (a create that fails removes what it made itself).
 * Every call works in the calling thread's network namespace (but the _netns one); all
 * netlink messages are built with libmnl. */
#ifndef RUNCELL_MICROVM_NET_H
#define RUNCELL_MICROVM_NET_H

#include <stdbool.h>

#include "runcell/agent_proto.h"
#include "runcell/error.h"

#define RC_MICROVM_TAP_NAME "tap0_runcell"
/* The tc priority of runcell's filters: how tear-down finds its own filter on the
 * namespace's interface among others a CNI plugin may have put there. */
#define RC_MICROVM_TC_PRIO 0x5243 /* "RC" */

struct rc_microvm_net {
  bool present; /* the namespace has an interface for the guest */
  int ifindex;  /* the namespace's interface */
  int tap_ifindex;
  int tap_fd; /* -1 until set up; the caller closes it */
  struct agent_network guest;
};

/* Reads the namespace's interface: its name, MAC, MTU, addresses (link-local IPv6 left
 * out: the guest makes its own) and routes through it (those the kernel derives from the
 * addresses left out). Loopback and non-Ethernet devices (sit0, tunl0...) are not
 * candidates. No candidate: present = false. Fails with a clear message when the namespace
 * already holds runcell's tap (another microVM uses it) or has more than one interface. */
int rc_microvm_net_probe(struct rc_microvm_net *net, struct rc_error *err);

/* Creates the tap (the interface's MTU, up) and the redirects both ways; on failure
 * removes what it made. net->tap_fd is then the tap, nonblocking and close-on-exec. */
int rc_microvm_net_setup(struct rc_microvm_net *net, struct rc_error *err);

/* probe, then setup when there is an interface. */
int rc_microvm_net_attach(struct rc_microvm_net *net, struct rc_error *err);

/* Removes runcell's filter from every interface (and the ingress qdisc where it was the
 * last filter) and the tap, in the current namespace. Idempotent: what is not there is
 * not an error. */
int rc_microvm_net_teardown(struct rc_error *err);

/* For what a VMM left behind: inside the network namespace at path (a child process joins
 * it), runcell's filters and qdiscs as rc_microvm_net_teardown removes them, unless the tap
 * exists: it lives only as long as a VMM holds it, so then a live microVM (another
 * container's) owns the namespace and nothing there is stale. A namespace that no longer
 * exists is nothing to clean up. */
int rc_microvm_net_teardown_netns(const char *path, struct rc_error *err);

struct oci_config;

/* Whether the container has a network namespace of its own (new or by path): without one
 * the VMM runs in the host's, whose interfaces are never the guest's. */
bool rc_microvm_net_wanted(const struct oci_config *cfg);

/* For `delete`: rc_microvm_net_teardown_netns in the container's network namespace when
 * the config names one by path; a namespace runcell made died with the VMM. */
int rc_microvm_net_release(const struct oci_config *cfg, struct rc_error *err);

#endif
