/* The sealed copy's extent (CVE-2019-5736 defence, src/linux/cloned_binary.c): how much of
 * an ELF file a copy needs to run, checked on this test's own binary (built with debug
 * info, like runcell's default build) and on headers made to be wrong. */
#include <elf.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runcell/cloned_binary.h"
#include "unit.h"

static unsigned char head[1 << 16];
static size_t head_len, file_size;

static void read_own_binary(void) {
  int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  struct stat st = {0};
  CHECK(fd >= 0 && fstat(fd, &st) == 0);
  file_size = (size_t)st.st_size;
  ssize_t n = pread(fd, head, sizeof(head), 0);
  CHECK(n > 0);
  head_len = n > 0 ? (size_t)n : 0;
  close(fd);
}

static Elf64_Ehdr *ehdr(unsigned char *h) {
  return (Elf64_Ehdr *)(void *)h;
}
static Elf64_Phdr *phdr(unsigned char *h, size_t i) {
  return (Elf64_Phdr *)(void *)(h + ehdr(h)->e_phoff + i * sizeof(Elf64_Phdr));
}

static void extent_covers_every_segment_and_drops_debug_info(void) {
  read_own_binary();
  size_t extent = rc_elf_exec_extent(head, head_len, file_size);
  CHECK(extent <= file_size);
  uint64_t loads_end = 0;
  for (size_t i = 0; i < ehdr(head)->e_phnum; i++) {
    Elf64_Phdr *ph = phdr(head, i);
    CHECK(ph->p_offset + ph->p_filesz <= extent);
    if (ph->p_type == PT_LOAD && ph->p_offset + ph->p_filesz > loads_end)
      loads_end = ph->p_offset + ph->p_filesz;
  }
  CHECK(extent == loads_end); /* nothing but the segments and the program headers */
  /* the section headers (and, with -g, the debug info) are after the last segment */
  CHECK(ehdr(head)->e_shoff >= extent);
  CHECK(extent < file_size);
}

static void anything_not_understood_is_copied_whole(void) {
  read_own_binary();
  unsigned char bad[sizeof(head)];
  memcpy(bad, head, head_len);
  bad[0] = 0x7e; /* not ELF */
  CHECK(rc_elf_exec_extent(bad, head_len, file_size) == file_size);

  memcpy(bad, head, head_len);
  bad[EI_CLASS] = ELFCLASS32;
  CHECK(rc_elf_exec_extent(bad, head_len, file_size) == file_size);

  CHECK(rc_elf_exec_extent(head, sizeof(Elf64_Ehdr) - 1, file_size) == file_size);
  /* program headers beyond what was read */
  CHECK(rc_elf_exec_extent(head, ehdr(head)->e_phoff + sizeof(Elf64_Phdr), file_size) == file_size);

  memcpy(bad, head, head_len);
  ehdr(bad)->e_phoff = 8; /* overlapping the ELF header */
  CHECK(rc_elf_exec_extent(bad, head_len, file_size) == file_size);

  memcpy(bad, head, head_len);
  ehdr(bad)->e_phoff = UINT64_MAX - 8; /* table end wraps around */
  CHECK(rc_elf_exec_extent(bad, head_len, file_size) == file_size);

  memcpy(bad, head, head_len);
  phdr(bad, 0)->p_offset = file_size; /* a segment past the end of the file */
  phdr(bad, 0)->p_filesz = 1;
  CHECK(rc_elf_exec_extent(bad, head_len, file_size) == file_size);

  memcpy(bad, head, head_len);
  phdr(bad, 0)->p_offset = 16;
  phdr(bad, 0)->p_filesz = UINT64_MAX; /* offset + size wraps around */
  CHECK(rc_elf_exec_extent(bad, head_len, file_size) == file_size);
}

/* The cut copy runs: this binary, copied up to its extent into a memfd with its section
 * headers dropped, executes and exits 0 (argv[1] "--exit" makes it do so at once). */
static void a_cut_copy_runs(void) {
  read_own_binary();
  size_t extent = rc_elf_exec_extent(head, head_len, file_size);
  int exe = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  int mem = memfd_create("cut-copy", MFD_CLOEXEC);
  CHECK(exe >= 0 && mem >= 0);
  unsigned char *all = malloc(extent);
  CHECK(all && pread(exe, all, extent, 0) == (ssize_t)extent);
  ehdr(all)->e_shoff = 0;
  ehdr(all)->e_shnum = 0;
  ehdr(all)->e_shstrndx = SHN_UNDEF;
  CHECK(write(mem, all, extent) == (ssize_t)extent);
  free(all);
  close(exe);
  pid_t pid = fork();
  if (pid == 0) {
    char *argv[] = {"test_cloned_binary", "--exit", NULL};
    char *envp[] = {NULL};
    fexecve(mem, argv, envp);
    _exit(127);
  }
  close(mem);
  int status = -1;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static const struct unit_case cases[] = {
    UNIT_CASE(extent_covers_every_segment_and_drops_debug_info),
    UNIT_CASE(anything_not_understood_is_copied_whole),
    UNIT_CASE(a_cut_copy_runs),
};

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "--exit")) return 0;
  return unit_run("cloned_binary", cases, sizeof(cases) / sizeof(cases[0]));
}
