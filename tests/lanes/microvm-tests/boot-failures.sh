#!/bin/sh
# boot-failures: a guest kernel that is not there, a file that is not a kernel, and a
# guest that panics (its initrd is garbage: no init) each fail create with a clear error
# and leave nothing behind.
. /srv/microvm-tests/common.sh
cd /srv/bundles/echo || exit 1
err=$(RUNCELL_GUEST_KERNEL=/nonexistent/vmlinux runcell run mv-nokernel 2>&1)
[ $? -ne 0 ] || fail "a missing kernel did not fail"
expect_contains "missing kernel" "$err" "/nonexistent/vmlinux"
nothing_left mv-nokernel
err=$(RUNCELL_GUEST_KERNEL=/srv/bundles/echo/config.json runcell run mv-notkernel 2>&1)
[ $? -ne 0 ] || fail "a non-kernel did not fail"
echo "not a kernel: $err"
expect_contains "not a kernel" "$err" "kernel"
nothing_left mv-notkernel
err=$(RUNCELL_AGENT_INITRD=/srv/bundles/echo/config.json runcell run mv-panic 2>&1)
[ $? -ne 0 ] || fail "a panicking guest did not fail"
echo "panic: $err"
expect_contains "panicking guest" "$err" "the guest stopped while booting"
expect_contains "panicking guest" "$err" "Kernel panic"
nothing_left mv-panic
