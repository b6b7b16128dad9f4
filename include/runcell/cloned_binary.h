/* Running from a sealed memfd copy of the runtime binary (the CVE-2019-5736 defence). */
#ifndef RUNCELL_CLONED_BINARY_H
#define RUNCELL_CLONED_BINARY_H

#include <stdbool.h>

#include "runcell/error.h"

/* True when /proc/self/exe is a memfd with write, grow, shrink and seal seals. */
bool rc_running_from_sealed_copy(void);

/* How many leading bytes of an ELF file an exec of it needs: the end of the furthest
 * segment its program headers describe (what the kernel and the dynamic loader read);
 * what lies beyond (debug info, the section headers: three quarters of a RelWithDebInfo
 * runcell) is never read when it runs. head holds the file's first head_len bytes. Returns
 * file_size for anything it does not fully understand (not a 64-bit ELF, program headers
 * beyond head, a segment past the end of the file). */
size_t rc_elf_exec_extent(const unsigned char *head, size_t head_len, size_t file_size);

/* Unless already running from one, copies the binary into a sealed memfd and execs it
 * with the same argv and environment. Returns only on failure (or 0 if already sealed). */
int rc_reexec_from_sealed_copy(char **argv, struct rc_error *err);

#endif
