/* The NETWORK message of the host<->agent protocol: a round trip keeps every field, and
 * the decoder refuses what a hostile host could send (bad names, multicast MAC, MTU out of
 * range, wrong family or prefix, counts past the limits, truncation, stray bytes). */
#include <arpa/inet.h>
#include <string.h>

#include "runcell/agent_proto.h"
#include "unit.h"

static struct agent_msg msg;

static struct agent_frame frame_of(const struct agent_msg *m) {
  return (struct agent_frame){.type = (uint16_t)(m->bytes[6] | m->bytes[7] << 8),
                              .length = (uint32_t)(m->len - AGENT_FRAME_HEADER_SIZE),
                              .payload = m->bytes + AGENT_FRAME_HEADER_SIZE};
}

static void sample(struct agent_network *n) {
  memset(n, 0, sizeof(*n));
  strcpy(n->ifname, "eth0");
  memcpy(n->mac, "\x02\x42\x0a\xc8\x00\x02", 6);
  n->mtu = 1450;
  n->n_addrs = 2;
  n->addrs[0].family = AGENT_NET_INET;
  n->addrs[0].prefix = 24;
  inet_pton(AF_INET, "10.200.0.2", n->addrs[0].addr);
  n->addrs[1].family = AGENT_NET_INET6;
  n->addrs[1].prefix = 64;
  inet_pton(AF_INET6, "fd00:200::2", n->addrs[1].addr);
  n->n_routes = 2;
  n->routes[0].family = AGENT_NET_INET;
  n->routes[0].has_gateway = true;
  inet_pton(AF_INET, "10.200.0.1", n->routes[0].gateway);
  n->routes[1].family = AGENT_NET_INET6;
  n->routes[1].dst_prefix = 48;
  inet_pton(AF_INET6, "fd01::", n->routes[1].dst);
  n->routes[1].metric = 1024;
}

static void test_round_trip(void) {
  struct agent_network in, out;
  struct rc_error err = {0};
  sample(&in);
  CHECK(agent_encode_network(&msg, &in, &err) == 0);
  struct agent_frame f = frame_of(&msg);
  CHECK(f.type == AGENT_MSG_NETWORK);
  CHECK(agent_msg_from_host(AGENT_MSG_NETWORK) && !agent_msg_from_guest(AGENT_MSG_NETWORK));
  CHECK_STR_EQ(agent_msg_name(AGENT_MSG_NETWORK), "NETWORK");
  CHECK(agent_decode_network(&f, &out, &err) == 0);
  CHECK_STR_EQ(out.ifname, "eth0");
  CHECK(memcmp(out.mac, in.mac, 6) == 0 && out.mtu == 1450);
  CHECK(out.n_addrs == 2 && out.n_routes == 2);
  CHECK(memcmp(out.addrs, in.addrs, sizeof(in.addrs[0]) * 2) == 0);
  CHECK(out.routes[0].has_gateway && !out.routes[1].has_gateway);
  CHECK(memcmp(out.routes[0].gateway, in.routes[0].gateway, 16) == 0);
  CHECK(memcmp(out.routes[1].dst, in.routes[1].dst, 16) == 0 && out.routes[1].dst_prefix == 48);
  CHECK(out.routes[1].metric == 1024);
  /* the wrong type is refused */
  f.type = AGENT_MSG_CONFIG;
  CHECK(agent_decode_network(&f, &out, &err) < 0);
}

static void test_validation(void) {
  struct agent_network n;
  struct rc_error err = {0};
  const char *bad_names[] = {"", "a/b", "a b", "..", "sixteen-chars-xx", "eth0:1"};
  for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
    sample(&n);
    snprintf(n.ifname, sizeof(n.ifname), "%s", bad_names[i]);
    if (strlen(bad_names[i]) > AGENT_NET_IFNAME_MAX) {
      memset(n.ifname, 'x', sizeof(n.ifname)); /* no NUL at all */
    }
    CHECK(agent_encode_network(&msg, &n, &err) < 0);
    CHECK_CONTAINS(err.msg, "interface name");
  }
  sample(&n);
  n.mac[0] = 0x01; /* multicast */
  CHECK(agent_network_validate(&n, &err) < 0 && strstr(err.msg, "MAC"));
  sample(&n);
  memset(n.mac, 0, 6);
  CHECK(agent_network_validate(&n, &err) < 0);
  sample(&n);
  n.mtu = 67;
  CHECK(agent_network_validate(&n, &err) < 0 && strstr(err.msg, "MTU 67"));
  n.mtu = 65536;
  CHECK(agent_network_validate(&n, &err) < 0);
  sample(&n);
  n.addrs[0].prefix = 33;
  CHECK(agent_network_validate(&n, &err) < 0 && strstr(err.msg, "address 0"));
  sample(&n);
  n.addrs[1].family = 10; /* AF_INET6's number is not the wire's */
  CHECK(agent_network_validate(&n, &err) < 0);
  sample(&n);
  n.routes[1].dst_prefix = 129;
  CHECK(agent_network_validate(&n, &err) < 0 && strstr(err.msg, "route 1"));
  sample(&n);
  n.n_routes = AGENT_MAX_NET_ROUTES + 1;
  CHECK(agent_network_validate(&n, &err) < 0);
}

/* Hand-made payloads that the encoder would never write. */
static void test_hostile_payloads(void) {
  struct agent_network n, out;
  struct rc_error err = {0};
  sample(&n);
  CHECK(agent_encode_network(&msg, &n, &err) == 0);
  struct agent_frame f = frame_of(&msg);
  /* every truncation fails */
  for (uint32_t len = 0; len < f.length; len++) {
    struct agent_frame t = f;
    t.length = len;
    CHECK(agent_decode_network(&t, &out, &err) < 0);
  }
  /* a stray byte */
  msg.bytes[msg.len] = 0;
  f.length++;
  CHECK(agent_decode_network(&f, &out, &err) < 0);
  CHECK_CONTAINS(err.msg, "stray");

  /* a huge address count */
  agent_msg_begin(&msg, AGENT_MSG_NETWORK);
  agent_put_str(&msg, "eth0");
  agent_put_bytes(&msg, n.mac, 6);
  agent_put_u32(&msg, 1500);
  agent_put_u32(&msg, 0xffffffffu);
  CHECK(agent_msg_end(&msg, &err) == 0);
  f = frame_of(&msg);
  CHECK(agent_decode_network(&f, &out, &err) < 0);
  CHECK_CONTAINS(err.msg, "malformed NETWORK");

  /* a gateway flag that is neither 0 nor 1 */
  agent_msg_begin(&msg, AGENT_MSG_NETWORK);
  agent_put_str(&msg, "eth0");
  agent_put_bytes(&msg, n.mac, 6);
  agent_put_u32(&msg, 1500);
  agent_put_u32(&msg, 0);
  agent_put_u32(&msg, 1);
  agent_put_u8(&msg, AGENT_NET_INET);
  agent_put_u8(&msg, 0);
  agent_put_u8(&msg, 7);
  uint8_t zero[36] = {0};
  agent_put_bytes(&msg, zero, 36);
  CHECK(agent_msg_end(&msg, &err) == 0);
  f = frame_of(&msg);
  CHECK(agent_decode_network(&f, &out, &err) < 0);

  /* a name with a NUL inside */
  agent_msg_begin(&msg, AGENT_MSG_NETWORK);
  agent_put_u32(&msg, 4);
  agent_put_bytes(&msg, "et\0h", 4);
  agent_put_bytes(&msg, n.mac, 6);
  agent_put_u32(&msg, 1500);
  agent_put_u32(&msg, 0);
  agent_put_u32(&msg, 0);
  CHECK(agent_msg_end(&msg, &err) == 0);
  f = frame_of(&msg);
  CHECK(agent_decode_network(&f, &out, &err) < 0);
}

UNIT_MAIN("agent_net_proto", UNIT_CASE(test_round_trip), UNIT_CASE(test_validation),
          UNIT_CASE(test_hostile_payloads))
