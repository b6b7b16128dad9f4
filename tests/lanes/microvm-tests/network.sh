#!/bin/sh
# network: a microVM gets the network of the network namespace named in its config. The
# test makes that namespace (mvnet, eth0 10.200.0.2/24, default route via .1) and a peer
# namespace (mvpeer, 10.200.0.1/24) joined by a veth pair, and nothing outside them. Then:
# busybox httpd in the microVM answers an HTTP GET from the peer, the microVM fetches a page
# from a busybox httpd in the peer (both GETs by nc), its NIC has eth0's MAC, MTU, address
# and default route, a second microVM in the same namespace is refused with a clear error,
# delete leaves no tap and no tc filter behind, and so does delete --force after the VMM
# was killed with SIGKILL.
. /srv/microvm-tests/common.sh
ip=/usr/local/bin/ip # iproute2's: busybox ip cannot make veth pairs
tc=/usr/local/bin/tc

cleanup() {
  runcell delete --force mv-net >/dev/null 2>&1
  runcell delete --force mv-net2 >/dev/null 2>&1
  runcell delete --force mv-net3 >/dev/null 2>&1
  [ -n "${peer_httpd:-}" ] && kill "$peer_httpd" 2>/dev/null
  $ip netns del mvnet 2>/dev/null
  $ip netns del mvpeer 2>/dev/null
}
trap cleanup EXIT

$ip netns add mvnet || fail "ip netns add mvnet"
$ip netns add mvpeer || fail "ip netns add mvpeer"
$ip -n mvpeer link add veth-peer type veth peer name eth0 netns mvnet || fail "veth pair"
$ip -n mvpeer addr add 10.200.0.1/24 dev veth-peer
$ip -n mvpeer link set lo up
$ip -n mvpeer link set veth-peer up
$ip -n mvnet addr add 10.200.0.2/24 dev eth0
$ip -n mvnet link set eth0 mtu 1400 up
$ip -n mvnet link set lo up
$ip -n mvnet route add default via 10.200.0.1 || fail "default route"

# get NS HOST PORT: an HTTP GET of /index.html from namespace NS, the body only (busybox
# wget crashes in the lane, whose root has no /etc for static glibc's lookups)
get() {
  printf 'GET /index.html HTTP/1.0\r\n\r\n' |
    $ip netns exec "$1" busybox nc -w 5 "$2" "$3" 2>/dev/null | sed '1,/^\r*$/d'
}
mac=$($ip -n mvnet -o link show eth0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')

mkdir -p /tmp/peer-www && echo from-the-peer >/tmp/peer-www/index.html
$ip netns exec mvpeer busybox httpd -f -p 10.200.0.1:8081 -h /tmp/peer-www &
peer_httpd=$!

cd /srv/bundles/net || exit 1
runcell create mv-net </dev/null >/tmp/net-out 2>/tmp/net-err || { cat /tmp/net-err; fail "create"; }
expect_contains "tc filter on eth0" "$($tc -n mvnet filter show dev eth0 ingress)" \
  "Egress Redirect to device tap0_runcell"
runcell start mv-net || fail "start"

# in: the peer reaches the httpd in the microVM
got=""
i=0
while [ $i -lt 60 ]; do
  got=$(get mvpeer 10.200.0.2 8080)
  [ -n "$got" ] && break
  sleep 1
  i=$((i + 1))
done
expect_eq "page from the microVM" "$got" "inside-the-microvm"

# out: the microVM fetched the peer's page, and its NIC mirrors eth0
i=0
while ! grep -q '^done$' /tmp/net-out && [ $i -lt 60 ]; do
  sleep 1
  i=$((i + 1))
done
out=$(cat /tmp/net-out)
expect_contains "page from the peer, in the microVM" "$out" "fetched:from-the-peer"
expect_contains "guest NIC address" "$out" "inet 10.200.0.2/24"
expect_contains "guest NIC MAC" "$out" "link/ether $mac"
expect_contains "guest NIC MTU" "$out" "mtu 1400"
expect_contains "guest default route" "$out" "default via 10.200.0.1"

# a second microVM in the same namespace: refused, and the first keeps its network
err=$(runcell create mv-net2 </dev/null 2>&1 >/dev/null) && fail "second microVM in mvnet was created"
expect_contains "second microVM" "$err" "already has a microVM"
nothing_left mv-net2
got=$(get mvpeer 10.200.0.2 8080)
expect_eq "page after the refused second microVM" "$got" "inside-the-microvm"

# delete: no tap, no filter, no ingress qdisc left in the namespace
kill_and_delete mv-net
$ip -n mvnet link show tap0_runcell >/dev/null 2>&1 && fail "tap left after delete"
expect_eq "tc filters after delete" "$($tc -n mvnet filter show dev eth0 ingress)" ""
case $($tc -n mvnet qdisc show dev eth0) in *ingress*) fail "ingress qdisc left after delete" ;; esac

# delete --force after the VMM died by SIGKILL (nothing could clean up)
runcell create mv-net3 </dev/null >/dev/null 2>&1 || fail "create mv-net3"
pid=$(runcell state mv-net3 | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
[ -n "$pid" ] || fail "no pid for mv-net3"
kill -9 "$pid"
i=0
while [ -d "/proc/$pid" ] && [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ] && [ $i -lt 100 ]; do
  sleep 0.1
  i=$((i + 1))
done
expect_contains "filter after SIGKILL" "$($tc -n mvnet filter show dev eth0 ingress)" "mirred"
runcell delete --force mv-net3 || fail "delete --force"
nothing_left mv-net3
$ip -n mvnet link show tap0_runcell >/dev/null 2>&1 && fail "tap left after delete --force"
expect_eq "tc filters after delete --force" "$($tc -n mvnet filter show dev eth0 ingress)" ""
echo "network: ok"
