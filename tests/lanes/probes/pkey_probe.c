/* pkey_probe: the lane's proof that memory protection keys work (the MPK gate builds on
 * them). A page tagged with a fresh key by pkey_mprotect:
 *   - is writable while the key allows access,
 *   - is still readable but faults on a write once PKRU write-disables the key, and the
 *     fault is SIGSEGV with si_code SEGV_PKUERR naming the key and the page,
 *   - faults on a read too once PKRU access-disables the key,
 *   - is writable again after PKRU re-enables the key.
 * Prints one line per step; exits 0 when every step passed, 77 when the CPU or kernel has
 * no protection keys (pkey_alloc fails with ENOSPC, EINVAL or ENOSYS), 1 otherwise. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { EXIT_SKIP = 77 };

static sigjmp_buf fault_return;
static volatile sig_atomic_t fault_code;
static volatile sig_atomic_t fault_pkey;
static void *volatile fault_addr;

static void on_segv(int sig, siginfo_t *info, void *context) {
  (void)sig;
  (void)context;
  fault_code = info->si_code;
  fault_pkey = (sig_atomic_t)info->si_pkey;
  fault_addr = info->si_addr;
  siglongjmp(fault_return, 1);
}

enum access { ACCESS_READ, ACCESS_WRITE };

/* Touches *cell; returns 1 when that faulted (fault_* filled in), 0 when it did not. */
static int faults(volatile int *cell, enum access kind, int value) {
  fault_code = 0;
  fault_pkey = -1;
  fault_addr = NULL;
  if (sigsetjmp(fault_return, 1) != 0) return 1;
  if (kind == ACCESS_WRITE) {
    *cell = value;
  } else {
    int seen = *cell;
    (void)seen;
  }
  return 0;
}

static int expect_pku_fault(volatile int *cell, enum access kind, int pkey, const char *what) {
  if (!faults(cell, kind, 0)) {
    printf("FAIL %s: no fault\n", what);
    return 1;
  }
  if (fault_code != SEGV_PKUERR || fault_pkey != pkey || fault_addr != (void *)cell) {
    printf("FAIL %s: SIGSEGV si_code %d (wanted SEGV_PKUERR %d) pkey %d (wanted %d) addr %p\n",
           what, (int)fault_code, SEGV_PKUERR, (int)fault_pkey, pkey, fault_addr);
    return 1;
  }
  printf("%s: SIGSEGV SEGV_PKUERR pkey %d\n", what, pkey);
  return 0;
}

static int expect_no_fault(volatile int *cell, enum access kind, int value, const char *what) {
  if (faults(cell, kind, value)) {
    printf("FAIL %s: SIGSEGV si_code %d pkey %d\n", what, (int)fault_code, (int)fault_pkey);
    return 1;
  }
  if (kind == ACCESS_WRITE && *cell != value) {
    printf("FAIL %s: read back %d, wrote %d\n", what, *cell, value);
    return 1;
  }
  printf("%s: ok\n", what);
  return 0;
}

static int set_rights(int pkey, unsigned int rights) {
  if (pkey_set(pkey, rights) < 0) {
    printf("FAIL pkey_set(%d, %u): %s\n", pkey, rights, strerror(errno));
    return 1;
  }
  return 0;
}

static int probe_page(volatile int *cell, int pkey) {
  return expect_no_fault(cell, ACCESS_WRITE, 1, "write with the key open") ||
         set_rights(pkey, PKEY_DISABLE_WRITE) ||
         expect_no_fault(cell, ACCESS_READ, 0, "read with the key write-disabled") ||
         expect_pku_fault(cell, ACCESS_WRITE, pkey, "write with the key write-disabled") ||
         set_rights(pkey, PKEY_DISABLE_ACCESS) ||
         expect_pku_fault(cell, ACCESS_READ, pkey, "read with the key access-disabled") ||
         set_rights(pkey, 0) || expect_no_fault(cell, ACCESS_WRITE, 2, "write after re-enabling");
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, NULL) < 0) {
    printf("FAIL sigaction: %s\n", strerror(errno));
    return 1;
  }
  int pkey = pkey_alloc(0, 0);
  if (pkey < 0) {
    int err = errno;
    printf("pkey_alloc: %s\n", strerror(err));
    return (err == ENOSPC || err == EINVAL || err == ENOSYS) ? EXIT_SKIP : 1;
  }
  printf("pkey_alloc: key %d\n", pkey);
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  void *mem = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    printf("FAIL mmap: %s\n", strerror(errno));
    return 1;
  }
  int status = 1;
  if (pkey_mprotect(mem, page, PROT_READ | PROT_WRITE, pkey) < 0) {
    printf("FAIL pkey_mprotect: %s\n", strerror(errno));
  } else {
    status = probe_page((volatile int *)mem, pkey);
  }
  munmap(mem, page);
  if (pkey_free(pkey) < 0 && status == 0) {
    printf("FAIL pkey_free: %s\n", strerror(errno));
    status = 1;
  }
  if (status == 0) printf("PASS\n");
  return status;
}
