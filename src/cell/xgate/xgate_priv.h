/* runcell-xgate's own declarations: a freestanding program (no C library: the cell kernel
 * runs inside other programs, with their thread pointer, so it must not touch TLS, errno
 * or a libc's locks). Every syscall goes through xg_syscall, the gate's one syscall
 * instruction. */
#ifndef XGATE_PRIV_H
#define XGATE_PRIV_H

#include <stddef.h>
#include <stdint.h>

#define RC_XGATE_FREESTANDING
#include "runcell/xgate.h"
#include "xgate_layout_consts.h"

/* One static program: every symbol is local to it, so code refers to them PC-relatively
 * (the image lives above 4 GiB, out of reach of 32-bit absolute addresses). */
#pragma GCC visibility push(hidden)

long xg_syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6);
#define XG_SYS0(nr) xg_syscall((nr), 0, 0, 0, 0, 0, 0)
#define XG_SYS1(nr, a) xg_syscall((nr), (long)(a), 0, 0, 0, 0, 0)
#define XG_SYS2(nr, a, b) xg_syscall((nr), (long)(a), (long)(b), 0, 0, 0, 0)
#define XG_SYS3(nr, a, b, c) xg_syscall((nr), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define XG_SYS4(nr, a, b, c, d) xg_syscall((nr), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define XG_SYS5(nr, a, b, c, d, e) \
  xg_syscall((nr), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)
#define XG_SYS6(nr, a, b, c, d, e, f) \
  xg_syscall((nr), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

void xgate_signal_entry(int sig, void *info, void *uc);
extern int xgate_stack_busy[];
void xgate_restorer(void);
void xgate_abort(void);
_Noreturn void xgate_enter_program(uint64_t entry, uint64_t *sp);

/* xgate_exec_and_leave's request: the layout xgate_entry.S reads (offsets 0..56). */
struct xg_exec_request {
  long dirfd;
  const char *path;
  const void *argv;
  const void *envp;
  long flags;
  uint64_t slot; /* the cell kernel stack to give back */
  void *uc;      /* the signal frame's ucontext: where a failure returns */
  uint64_t stack_top;
};
_Noreturn void xgate_exec_and_leave(struct xg_exec_request *req);
extern unsigned char xgate_stacks[];

/* The cell kernel's image: everything from the ELF header to the end of bss. */
extern char __executable_start[];
extern char _end[];

/* freestanding helpers (xgate_lib.c) */
void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int xg_strncmp(const char *a, const char *b, size_t n);
void xg_write_str(int fd, const char *s);
void xg_u64_to_dec(uint64_t v, char *out); /* at least 21 bytes */
uint64_t xg_parse_u64(const char **p);
int xg_read_small_file(const char *path, char *buf, size_t size); /* bytes read or -errno */

/* Is [addr, addr+len) clear of the cell kernel's memory (and not wrapping)? */
int xg_user_range_ok(uint64_t addr, uint64_t len);

/* The CPU's XSAVE layout, read by the loader (CPUID leaf 0xD). */
struct xg_xsave_layout {
  uint64_t xcr0;
  uint32_t offset[64]; /* standard-format offset of component i */
  uint32_t size[64];
  uint8_t align64[64]; /* aligned to 64 bytes in the compacted format */
};
extern struct xg_xsave_layout xg_xsave;
void xg_read_xsave_layout(void);

/* The program this process runs, as execve named it (absolute): what an execve of
 * /proc/self/exe means (that link names runcell-xgate's memfd). */
extern char xg_program_path[4096];

/* The key the scan works under: 0 in the loader, the cell kernel's once the program runs. */
extern int xg_scan_key;

/* Maps or re-protects memory as executable after scanning it (xgate_scan.c). */
long xg_mmap_exec(uint64_t addr, uint64_t len, long prot, long flags, long fd, long off);
long xg_mprotect_exec(uint64_t addr, uint64_t len, long prot);
/* Was the UD2 at addr put there by the scan, and what did it replace (1 WRPKRU, 2 XRSTOR)? */
int xg_neutralized_at(uint64_t addr);

/* The signal handlers of the program for the signals the gate uses itself. */
void xg_install_gate_handlers(void);

#pragma GCC visibility pop
#endif
