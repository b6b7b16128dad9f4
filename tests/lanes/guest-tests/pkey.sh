#!/bin/sh
# pkey: memory protection keys work (probes/pkey_probe.c): pkey_alloc succeeds, a write to
# a page tagged by pkey_mprotect faults with SIGSEGV/SEGV_PKUERR once PKRU write-disables
# the key, and succeeds after re-enabling it. The lane's CPU (-cpu max) has PKU, so the
# probe's "no protection keys" answer (77) is a failure here, not a skip.
if ! grep -qw pku /proc/cpuinfo; then
  echo "the guest CPU has no pku flag"
  grep -m1 '^flags' /proc/cpuinfo
  exit 1
fi
pkey_probe
status=$?
if [ "$status" -eq 77 ]; then
  echo "pkey_probe found no protection keys on a CPU that advertises pku"
  exit 1
fi
exit "$status"
