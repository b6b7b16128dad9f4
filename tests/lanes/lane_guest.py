"""The guest side of the lane: the /init script and the report lines it prints.

Every line /init means for the host starts with "<prefix>:", where the prefix carries a
random token chosen per run, so neither kernel messages nor a test's own output can forge
a result:
  <P>:boot SECONDS          guest uptime when /init started (kernel boot time)
  <P>:insmod-failed NAME    a module did not load
  <P>:plan N
  <P>:start I NAME          test I begins (the host names it if the run hangs)
  <P>:| TEXT                one line of the running test's stdout+stderr
  <P>:time I SECONDS        its duration in guest time
  <P>:ok I NAME | <P>:ok I NAME # SKIP REASON | <P>:not ok I NAME # exit status S
  <P>:done                  every test ran; /init powers the guest off next
"""
import re
import secrets

GUEST_PATH = "/lane/probes:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SKIP_STATUS = 77


def new_prefix():
    return f"LANE-{secrets.token_hex(4)}"


def test_name(stem):
    """A TAP-safe name: no '#' (directive), no spaces, nothing the shell would expand."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", stem) or "test"


def init_script(prefix, modules, count, interactive=False):
    """The /init for one run. interactive: after the tests, a shell on the console (with
    job control, through cttyhack) instead of powering off; leaving it powers off."""
    module_list = " ".join(modules)
    finish = "setsid cttyhack sh -l\n" if interactive else ""
    return f"""#!/bin/sh
# /init of the QEMU hardware lane, written by tests/lanes/lane.py for one run.
export PATH={GUEST_PATH}
export HOME=/root LANE_PROBES=/lane/probes
P={prefix}
mount -t proc proc /proc
read -r boot _ </proc/uptime
echo "$P:boot $boot"
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /tmp /run /root
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
# Only emergencies on the console from here on: it carries the results.
echo 1 >/proc/sys/kernel/printk
for m in {module_list}; do
  insmod /lane/modules/$m.ko || echo "$P:insmod-failed $m"
done
echo "$P:plan {count}"
n=0
for t in /lane/tests/*; do
  [ -f "$t" ] || continue
  n=$((n + 1))
  name=${{t##*/}}
  name=${{name#*-}}
  echo "$P:start $n $name"
  mkdir -p /tmp/lane-test-$n
  read -r s _ </proc/uptime
  # Relayed line by line as it comes (awk flushes each line; sed would buffer), so a
  # test that hangs still shows how far it got.
  {{ (cd /tmp/lane-test-$n && exec sh "$t" </dev/null 2>&1); echo $? >/run/lane-rc; }} |
    tee /run/lane-out | awk -v p="$P:| " '{{ print p $0; fflush() }}'
  read -r e _ </proc/uptime
  rc=$(cat /run/lane-rc)
  echo "$P:time $n $(awk "BEGIN {{ printf \\"%.2f\\", $e - $s }}")"
  case $rc in
    0) echo "$P:ok $n $name" ;;
    {SKIP_STATUS}) echo "$P:ok $n $name # SKIP $(grep . /run/lane-out | tail -n 1)" ;;
    *) echo "$P:not ok $n $name # exit status $rc" ;;
  esac
done
echo "$P:done"
{finish}poweroff -f
"""
