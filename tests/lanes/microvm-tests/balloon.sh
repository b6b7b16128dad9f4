#!/bin/sh
# balloon: free page reporting hands a microVM's freed memory back to the host. The
# workload (tests/lanes/workloads/memhog.c, 1 GiB memory limit) touches 512 MiB and frees
# it; the VMM's RSS and its guest-RAM memfd (the memory the host really holds for the
# guest) must rise by more than 400 MiB and fall back below baseline + 128 MiB. Prints
# every sample.
# BALLOON_OBSERVE_S=N: watch N seconds after the free and assert nothing about the fall:
# tests/bench/microvm_balloon.py runs it so, with and without
# RUNCELL_MICROVM_FREE_PAGE_REPORTING=0, for the two curves.
. /srv/microvm-tests/common.sh
id=mv-balloon
observe=${BALLOON_OBSERVE_S:-}
give_up_s=120 # after the free, with reporting: the guest reports within seconds
cd /srv/bundles/balloon || exit 1
runcell create "$id" </dev/null >/tmp/balloon-out 2>/tmp/balloon-err || {
  cat /tmp/balloon-err
  fail "create"
}
pid=$(runcell state "$id" | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
[ -n "$pid" ] && [ -d "/proc/$pid" ] || fail "no VMM process for pid '$pid'"
memfd=
for f in /proc/"$pid"/fd/*; do
  case $(readlink "$f") in *runcell-guest-ram*) memfd=$f ;; esac
done
[ -n "$memfd" ] || fail "no guest-RAM memfd among the VMM's descriptors"

rss_mib() { sed -n 's/^VmRSS:[^0-9]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null | awk '{print int($1 / 1024)}'; }
# what the memfd has allocated: the guest memory the host holds, whatever is mapped
memfd_mib() { stat -L -c '%b %B' "$memfd" 2>/dev/null | awk '{print int($1 * $2 / 1048576)}'; }
now_ds() { awk '{print int($1 * 10)}' /proc/uptime; } # tenths of a second

runcell start "$id" || fail "start"
t0=$(now_ds)
base_rss=
base_memfd=
peak_rss=0
peak_memfd=0
freed_at=
last_rss=
last_memfd=
result=
while :; do
  out=$(cat /tmp/balloon-out)
  case $out in
    *done*) phase=done ;;
    *freed*) phase=freed ;;
    *touched*) phase=touched ;;
    *start*) phase=start ;;
    *) phase=boot ;;
  esac
  r=$(rss_mib)
  m=$(memfd_mib)
  [ -n "$r" ] && [ -n "$m" ] || break # the VMM is gone
  t=$(($(now_ds) - t0))
  echo "sample t=$((t / 10)).$((t % 10))s phase=$phase rss=${r}MiB memfd=${m}MiB"
  last_rss=$r
  last_memfd=$m
  # the baseline: the booted guest with the workload started, before it allocates (the
  # lowest sample of that phase: its end already counts touched pages)
  if [ "$phase" = start ]; then
    [ -z "$base_rss" ] || [ "$r" -lt "$base_rss" ] && base_rss=$r
    [ -z "$base_memfd" ] || [ "$m" -lt "$base_memfd" ] && base_memfd=$m
  fi
  [ "$r" -gt "$peak_rss" ] && peak_rss=$r
  [ "$m" -gt "$peak_memfd" ] && peak_memfd=$m
  if [ "$phase" = freed ] || [ "$phase" = done ]; then
    [ -n "$freed_at" ] || freed_at=$t
    since=$(((t - freed_at) / 10))
    if [ -n "$observe" ]; then
      [ "$since" -ge "$observe" ] && break
    else
      if [ "$r" -lt $((base_rss + 128)) ] && [ "$m" -lt $((base_memfd + 128)) ]; then
        result="back to baseline ${since}s after the free"
        break
      fi
      [ "$since" -ge "$give_up_s" ] && break
    fi
  fi
  sleep 0.5
done
cat /tmp/balloon-err
runcell kill "$id" KILL 2>/dev/null
i=0
while [ -d "/proc/$pid" ] && [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ] && [ $i -lt 300 ]; do
  sleep 0.1
  i=$((i + 1))
done
runcell delete --force "$id" || fail "delete"
nothing_left "$id"

[ -n "$base_rss" ] || fail "no sample while the workload waited to allocate (output: $(cat /tmp/balloon-out))"
[ -n "$freed_at" ] || fail "the workload never freed its memory (output: $(cat /tmp/balloon-out))"
echo "baseline rss=${base_rss}MiB memfd=${base_memfd}MiB; peak rss=${peak_rss}MiB memfd=${peak_memfd}MiB; last rss=${last_rss}MiB memfd=${last_memfd}MiB"
[ "$peak_rss" -gt $((base_rss + 400)) ] || fail "RSS peaked at ${peak_rss} MiB, not 400 MiB over the baseline ${base_rss} MiB"
[ "$peak_memfd" -gt $((base_memfd + 400)) ] || fail "the memfd peaked at ${peak_memfd} MiB, not 400 MiB over ${base_memfd} MiB"
[ -n "$observe" ] && exit 0
[ -n "$result" ] || fail "after ${give_up_s}s the VMM still holds rss=${last_rss}MiB memfd=${last_memfd}MiB (baseline ${base_rss}/${base_memfd} MiB)"
echo "$result"
