#!/bin/sh
# Prints the C header with the addresses the runtime's filter needs from runcell-xgate.
set -eu
nm -P "$1" | awk '
  $1 == "xgate_syscall_ret" { printf "#define RC_XGATE_GATE_IP 0x%sull\n", $3 }
  $1 == "xgate_exec_syscall_ret" { printf "#define RC_XGATE_EXEC_IP 0x%sull\n", $3 }
  $1 == "__executable_start" { printf "#define RC_XGATE_IMAGE_START 0x%sull\n", $3 }
  $1 == "_end" { printf "#define RC_XGATE_IMAGE_END 0x%sull\n", $3 }'
