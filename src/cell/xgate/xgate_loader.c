/* The cell loader: the program every process of an xgate cell really executes. The
 * kernel maps runcell-xgate (at a fixed address far from where programs and their
 * libraries go); it maps the cell kernel's key, installs the gate's signal handlers, loads
 * the program's ELF and its interpreter itself (executable segments scanned like every
 * later executable mapping), builds the program's initial stack and enters it with the key
 * closed. argv: runcell-xgate[:FD] PATH ARGV0 ARGS...; FD, when given, is a descriptor the
 * path goes through (/proc/self/fd/FD) that is closed once the program is open. */
#include <asm/unistd.h>
#include <elf.h>
#include <fcntl.h>
#include <linux/mman.h>
#include <linux/prctl.h>

#include "xgate_priv.h"

#define PAGE 4096ull
#define PAGE_DOWN(x) ((x) & ~(PAGE - 1))
#define PAGE_UP(x) (((x) + PAGE - 1) & ~(PAGE - 1))
#define ERR(r) ((unsigned long)(r) > -4096ul)
#define MAX_PHDRS 64

static _Noreturn void die(const char *what, const char *path, long err) {
  xg_write_str(2, "runcell-xgate: ");
  xg_write_str(2, what);
  if (path) {
    xg_write_str(2, " ");
    xg_write_str(2, path);
  }
  if (err) {
    char num[24];
    xg_u64_to_dec((uint64_t)-err, num);
    xg_write_str(2, ": errno ");
    xg_write_str(2, num);
  }
  xg_write_str(2, "\n");
  (void)XG_SYS1(__NR_exit_group, 127);
  for (;;) {
  }
}

struct image {
  uint64_t base, entry, phdr, phnum;
  char interp[256];
};

static int prot_of(uint32_t flags) {
  return ((flags & PF_R) ? PROT_READ : 0) | ((flags & PF_W) ? PROT_WRITE : 0) |
         ((flags & PF_X) ? PROT_EXEC : 0);
}

static void load_elf(long fd, const char *path, struct image *img) {
  Elf64_Ehdr eh;
  if (XG_SYS4(__NR_pread64, fd, &eh, sizeof(eh), 0) != sizeof(eh) ||
      memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_machine != EM_X86_64 || (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) ||
      eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > MAX_PHDRS)
    die("not an x86-64 ELF program I can load:", path, 0);
  Elf64_Phdr ph[MAX_PHDRS];
  long want = (long)(eh.e_phnum * sizeof(Elf64_Phdr));
  if (XG_SYS4(__NR_pread64, fd, ph, want, eh.e_phoff) != want)
    die("cannot read the program headers of", path, 0);
  uint64_t lo = ~0ull, hi = 0;
  img->interp[0] = 0;
  img->phdr = 0;
  for (int i = 0; i < eh.e_phnum; i++) {
    if (ph[i].p_type == PT_LOAD) {
      if (PAGE_DOWN(ph[i].p_vaddr) < lo) lo = PAGE_DOWN(ph[i].p_vaddr);
      if (PAGE_UP(ph[i].p_vaddr + ph[i].p_memsz) > hi) hi = PAGE_UP(ph[i].p_vaddr + ph[i].p_memsz);
    } else if (ph[i].p_type == PT_INTERP) {
      if (ph[i].p_filesz >= sizeof(img->interp) || ph[i].p_filesz < 2)
        die("odd PT_INTERP in", path, 0);
      if (XG_SYS4(__NR_pread64, fd, img->interp, ph[i].p_filesz, ph[i].p_offset) !=
          (long)ph[i].p_filesz)
        die("cannot read PT_INTERP of", path, 0);
      img->interp[ph[i].p_filesz] = 0;
    }
  }
  if (lo >= hi) die("no loadable segment in", path, 0);
  uint64_t base = 0;
  if (eh.e_type == ET_DYN) {
    long r = XG_SYS6(__NR_mmap, 0, hi - lo, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ERR(r)) die("cannot reserve memory for", path, r);
    base = (uint64_t)r - lo;
  }
  if (!xg_user_range_ok(base + lo, hi - lo)) die("the program overlaps the cell kernel:", path, 0);
  for (int i = 0; i < eh.e_phnum; i++) {
    if (ph[i].p_type != PT_LOAD || ph[i].p_memsz == 0) continue;
    uint64_t va = base + ph[i].p_vaddr;
    uint64_t start = PAGE_DOWN(va), file_end = va + ph[i].p_filesz, mem_end = va + ph[i].p_memsz;
    int prot = prot_of(ph[i].p_flags);
    if ((ph[i].p_offset & (PAGE - 1)) != (ph[i].p_vaddr & (PAGE - 1)))
      die("misaligned segment in", path, 0);
    uint64_t off = PAGE_DOWN(ph[i].p_offset);
    if (ph[i].p_filesz) {
      uint64_t len = PAGE_UP(file_end) - start;
      long r;
      if (prot & PROT_EXEC) {
        if (prot & PROT_WRITE)
          die("a writable and executable segment (refused in a cell) in", path, 0);
        r = xg_mmap_exec(start, len, prot, MAP_PRIVATE | MAP_FIXED, fd, (long)off);
      } else {
        r = XG_SYS6(__NR_mmap, start, len, prot | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, off);
      }
      if (ERR(r)) die("cannot map a segment of", path, r);
      /* the rest of the last file page is bss: zero it */
      if (mem_end > file_end && (PAGE_UP(file_end) > file_end)) {
        if (prot & PROT_WRITE) memset((void *)file_end, 0, PAGE_UP(file_end) - file_end);
      }
      if (!(prot & PROT_EXEC) && !(prot & PROT_WRITE))
        (void)XG_SYS3(__NR_mprotect, start, len, prot);
    }
    uint64_t anon = ph[i].p_filesz ? PAGE_UP(file_end) : start;
    if (PAGE_UP(mem_end) > anon) {
      long r = XG_SYS6(__NR_mmap, anon, PAGE_UP(mem_end) - anon, prot & ~PROT_EXEC,
                       MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, -1, 0);
      if (ERR(r)) die("cannot map the bss of", path, r);
    }
    if (ph[i].p_offset <= eh.e_phoff && eh.e_phoff < ph[i].p_offset + ph[i].p_filesz)
      img->phdr = va + (eh.e_phoff - ph[i].p_offset);
  }
  for (int i = 0; i < eh.e_phnum; i++)
    if (ph[i].p_type == PT_PHDR) img->phdr = base + ph[i].p_vaddr;
  img->base = base;
  img->entry = base + eh.e_entry;
  img->phnum = eh.e_phnum;
}

/* Opens what an exec of path would run, following "#!" lines as the kernel does (their
 * interpreter and optional argument go before the script's path in argv). */
struct exec_plan {
  const char *path;
  const char *prefix[8]; /* argv entries before the program's argv[1..] */
  int n_prefix;
  char lines[4][256];
};

static long open_program(struct exec_plan *plan, const char *path, const char *argv0) {
  plan->n_prefix = 0;
  plan->prefix[plan->n_prefix++] = argv0;
  for (int depth = 0;; depth++) {
    long fd = XG_SYS4(__NR_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) die("cannot open", path, fd);
    char *line = plan->lines[depth < 4 ? depth : 3];
    long n = XG_SYS4(__NR_pread64, fd, line, 255, 0);
    if (n < 2 || line[0] != '#' || line[1] != '!') {
      plan->path = path;
      return fd;
    }
    (void)XG_SYS1(__NR_close, fd);
    if (depth >= 4) die("too many levels of #! interpreters for", path, 0);
    line[n] = 0;
    char *p = line + 2;
    while (*p == ' ' || *p == '\t') p++;
    char *interp = p;
    while (*p && *p != ' ' && *p != '\t' && *p != '\n') p++;
    char *arg = 0;
    if (*p == ' ' || *p == '\t') {
      *p++ = 0;
      while (*p == ' ' || *p == '\t') p++;
      if (*p && *p != '\n') {
        arg = p;
        char *e = p;
        while (*e && *e != '\n') e++;
        while (e > arg && (e[-1] == ' ' || e[-1] == '\t')) e--;
        *e = 0;
      }
    } else {
      *p = 0;
    }
    if (!*interp) die("an empty #! line in", path, 0);
    /* the script's argv[0] is replaced by: interpreter [arg] script */
    const char *script = path;
    plan->n_prefix = 0;
    plan->prefix[plan->n_prefix++] = interp;
    if (arg) plan->prefix[plan->n_prefix++] = arg;
    plan->prefix[plan->n_prefix++] = script;
    path = interp;
  }
}

/* The absolute form of path (relative to the working directory), for xg_program_path. */
static void remember_path(const char *path) {
  size_t n = 0;
  if (path[0] != '/') {
    long r = XG_SYS2(__NR_getcwd, xg_program_path, sizeof(xg_program_path) - 2);
    if (r > 0) {
      n = strlen(xg_program_path);
      if (n && xg_program_path[n - 1] != '/') xg_program_path[n++] = '/';
    }
  }
  size_t l = strlen(path);
  if (n + l + 1 > sizeof(xg_program_path)) l = sizeof(xg_program_path) - n - 1;
  memcpy(xg_program_path + n, path, l);
  xg_program_path[n + l] = 0;
}

void xgate_loader_main(uint64_t *sp);
void xgate_loader_main(uint64_t *sp) {
  long argc = (long)sp[0];
  char **argv = (char **)(sp + 1);
  char **envp = argv + argc + 1;
  long envc = 0;
  while (envp[envc]) envc++;
  Elf64_auxv_t *auxv = (Elf64_auxv_t *)(envp + envc + 1);
  long auxc = 0;
  while (auxv[auxc].a_type != AT_NULL) auxc++;
  if (argc < 3 || xg_strncmp(argv[0], RC_XGATE_LOADER_ARGV0, sizeof(RC_XGATE_LOADER_ARGV0) - 1))
    die("is the cell loader of runcell's xgate placement; runcell starts it", 0, 0);

  /* the cell kernel's key must be the one the gate's constants name */
  /* (pkey_alloc sets the new key's rights in this thread's PKRU: access disabled, so that
   * the program starts with the key closed) */
  long key = XG_SYS2(__NR_pkey_alloc, 0, 1 /* PKEY_DISABLE_ACCESS */);
  if (key != RC_XGATE_PKEY)
    die("cannot allocate the cell kernel's protection key", 0, key < 0 ? key : 0);
  xg_read_xsave_layout();

  const char *path = argv[1];
  struct exec_plan plan;
  long fd = open_program(&plan, path, argv[2]);
  const char *held = argv[0] + sizeof(RC_XGATE_LOADER_ARGV0) - 1;
  if (*held == ':') {
    held++;
    (void)XG_SYS1(__NR_close, (long)xg_parse_u64(&held));
  }
  struct image prog, interp;
  load_elf(fd, plan.path, &prog);
  (void)XG_SYS1(__NR_close, fd);
  interp.base = 0;
  if (prog.interp[0]) {
    long ifd = XG_SYS4(__NR_openat, AT_FDCWD, prog.interp, O_RDONLY | O_CLOEXEC, 0);
    if (ifd < 0) die("cannot open the program's interpreter", prog.interp, ifd);
    load_elf(ifd, prog.interp, &interp);
    (void)XG_SYS1(__NR_close, ifd);
    if (interp.interp[0]) die("an interpreter that asks for an interpreter:", prog.interp, 0);
  }
  remember_path(plan.path);

  /* the program's name, as the kernel would have set it from its path */
  const char *base = plan.path;
  for (const char *p = plan.path; *p; p++)
    if (*p == '/') base = p + 1;
  (void)XG_SYS2(__NR_prctl, PR_SET_NAME, base);

  /* the initial stack: argc, argv, envp, auxv, below the loader's own frames; the strings
   * stay where the kernel put them */
  long n_args = plan.n_prefix + (argc - 3);
  long words = 1 + n_args + 1 + envc + 1 + 2 * (auxc + 1);
  uint64_t *nsp = (uint64_t *)((((uint64_t)sp - 65536) - (uint64_t)words * 8) & ~15ull);
  uint64_t *w = nsp;
  *w++ = (uint64_t)n_args;
  for (int i = 0; i < plan.n_prefix; i++) *w++ = (uint64_t)plan.prefix[i];
  for (long i = 3; i < argc; i++) *w++ = (uint64_t)argv[i];
  *w++ = 0;
  for (long i = 0; i < envc; i++) *w++ = (uint64_t)envp[i];
  *w++ = 0;
  for (long i = 0; i < auxc; i++) {
    uint64_t type = auxv[i].a_type, val = auxv[i].a_un.a_val;
    switch (type) {
      case AT_PHDR:
        val = prog.phdr;
        break;
      case AT_PHNUM:
        val = prog.phnum;
        break;
      case AT_PHENT:
        val = sizeof(Elf64_Phdr);
        break;
      case AT_ENTRY:
        val = prog.entry;
        break;
      case AT_BASE:
        val = interp.base;
        break;
      case AT_EXECFN:
        val = (uint64_t)path;
        break;
      case AT_FLAGS:
        val = 0;
        break;
      default:
        break;
    }
    *w++ = type;
    *w++ = val;
  }
  *w++ = AT_NULL;
  *w++ = 0;

  xg_install_gate_handlers();

  /* Last: the cell kernel's memory gets its key. Nothing of it is read after this (the
   * loop's values are on the stack); PKRU has been the kernel's default, with the key
   * closed, since the exec. */
  Elf64_Phdr own[16];
  uint64_t own_phdr = 0, own_phnum = 0;
  for (long i = 0; i < auxc; i++) {
    if (auxv[i].a_type == AT_PHDR) own_phdr = auxv[i].a_un.a_val;
    if (auxv[i].a_type == AT_PHNUM) own_phnum = auxv[i].a_un.a_val;
  }
  if (!own_phdr || own_phnum > 16) die("cannot find the cell kernel's own program headers", 0, 0);
  memcpy(own, (const void *)own_phdr, own_phnum * sizeof(Elf64_Phdr));
  xg_scan_key = RC_XGATE_PKEY;
  uint64_t entry = interp.base ? interp.entry : prog.entry;
  for (uint64_t i = 0; i < own_phnum; i++) {
    if (own[i].p_type != PT_LOAD) continue;
    uint64_t s = PAGE_DOWN(own[i].p_vaddr), e = PAGE_UP(own[i].p_vaddr + own[i].p_memsz);
    long r = XG_SYS4(__NR_pkey_mprotect, s, e - s, prot_of(own[i].p_flags), RC_XGATE_PKEY);
    if (r < 0) die("cannot protect the cell kernel with its key", 0, r);
  }
  xgate_enter_program(entry, nsp);
}
