/* microVM plans: vCPUs and memory from the limits, and the disks made from a rootfs and
 * its bind mounts (erofs images cached by the tree's metadata; needs mkfs.erofs). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runcell/microvm.h"
#include "runcell/microvm_agent_config.h"
#include "runcell/oci.h"
#include "unit.h"

static struct oci_config *parse(const char *json) {
  struct oci_config *cfg = NULL;
  struct rc_error err = {0};
  if (oci_config_parse(json, strlen(json), &cfg, &err) < 0) {
    fprintf(stderr, "parse: %s\n", err.msg);
    return NULL;
  }
  return cfg;
}

static void size_from_limits(void) {
  struct rc_microvm_plan plan;
  struct rc_error err = {0};
  struct oci_config *cfg = parse("{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"r\"}}");
  CHECK(cfg != NULL);
  CHECK(rc_microvm_size(cfg, &plan, &err) == 0);
  CHECK(plan.vcpus == 1);
  CHECK(plan.mem_bytes == RC_MICROVM_DEFAULT_MEM);
  oci_config_free(cfg);

  /* 1.5 CPUs -> 2 vCPUs; 256 MiB -> 224 MiB of guest memory (the VMM keeps 32) */
  cfg = parse(
      "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"r\"},\"linux\":{\"resources\":"
      "{\"cpu\":{\"quota\":150000,\"period\":100000},\"memory\":{\"limit\":268435456}}}}");
  CHECK(cfg != NULL);
  CHECK(rc_microvm_size(cfg, &plan, &err) == 0);
  CHECK(plan.vcpus == 2);
  CHECK(plan.mem_bytes == 224ULL << 20);
  oci_config_free(cfg);

  /* a cpuset narrower than the quota wins; a cpuset alone counts */
  cfg = parse(
      "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"r\"},\"linux\":{\"resources\":"
      "{\"cpu\":{\"quota\":400000,\"period\":100000,\"cpus\":\"0-2\"}}}}");
  CHECK(rc_microvm_size(cfg, &plan, &err) == 0);
  CHECK(plan.vcpus == 3);
  oci_config_free(cfg);
  cfg = parse(
      "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"r\"},\"linux\":{\"resources\":"
      "{\"cpu\":{\"cpus\":\"1,3,5-6\"}}}}");
  CHECK(rc_microvm_size(cfg, &plan, &err) == 0);
  CHECK(plan.vcpus == 4);
  oci_config_free(cfg);

  /* too little memory for guest + VMM: a clear error */
  cfg = parse(
      "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"r\"},\"linux\":{\"resources\":"
      "{\"memory\":{\"limit\":67108864}}}}");
  CHECK(rc_microvm_size(cfg, &plan, &err) < 0);
  CHECK_CONTAINS(err.msg, "too small for a microVM");
  oci_config_free(cfg);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
  (void)sb;
  (void)ftw;
  return type == FTW_DP ? rmdir(path) : unlink(path);
}

/* mkfs.erofs is part of what microVM mode needs (scripts/install-deps.sh installs
 * erofs-utils): a case that builds real images fails without it rather than passing
 * having proved nothing. */
static bool need_mkfs_erofs(const char *case_name) {
  bool have = access("/usr/bin/mkfs.erofs", X_OK) == 0 || access("/sbin/mkfs.erofs", X_OK) == 0 ||
              access("/usr/sbin/mkfs.erofs", X_OK) == 0;
  if (!have)
    fprintf(stderr, "%s: mkfs.erofs is missing (install erofs-utils: scripts/install-deps.sh)\n",
            case_name);
  CHECK(have);
  return have;
}

static void disks_are_cached_images(void) {
  if (!need_mkfs_erofs("disks_are_cached_images")) return;
  char base[] = "/tmp/runcell-unit-microvm-XXXXXX";
  CHECK(mkdtemp(base) != NULL);
  char cache[PATH_MAX], rootfs[PATH_MAX], vol[PATH_MAX], file[PATH_MAX], sock[PATH_MAX];
  snprintf(cache, sizeof(cache), "%s/cache", base);
  snprintf(rootfs, sizeof(rootfs), "%s/rootfs", base);
  snprintf(vol, sizeof(vol), "%s/vol", base);
  snprintf(file, sizeof(file), "%s/hosts", base);
  snprintf(sock, sizeof(sock), "%s/sock", base);
  setenv("RUNCELL_CACHE_DIR", cache, 1);
  CHECK(mkdir(rootfs, 0755) == 0);
  CHECK(mkdir(vol, 0755) == 0);
  char p[PATH_MAX + 32];
  snprintf(p, sizeof(p), "%s/hello", rootfs);
  write_file(p, "hello\n");
  snprintf(p, sizeof(p), "%s/data", vol);
  write_file(p, "data\n");
  write_file(file, "127.0.0.1 localhost\n");

  char json[4 * PATH_MAX];
  snprintf(
      json, sizeof(json),
      "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},\"mounts\":["
      "{\"destination\":\"/data\",\"type\":\"bind\",\"source\":\"%s\",\"options\":[\"rbind\"]},"
      "{\"destination\":\"/etc/hosts\",\"type\":\"bind\",\"source\":\"%s\","
      "\"options\":[\"bind\",\"ro\"]},"
      "{\"destination\":\"/tmp\",\"type\":\"tmpfs\",\"source\":\"tmpfs\"}]}",
      vol, file);
  struct oci_config *cfg = parse(json);
  CHECK(cfg != NULL);
  if (!cfg) return;
  struct rc_microvm_plan plan = {0};
  struct rc_error err = {0};
  int r = rc_microvm_disks(cfg, rootfs, &plan, &err);
  if (r < 0) fprintf(stderr, "disks: %s\n", err.msg);
  CHECK(r == 0);
  CHECK(plan.n_disks == 3);
  CHECK(plan.n_binds == 2);
  CHECK_STR_EQ(plan.disks[0].serial, "rootfs");
  CHECK_STR_EQ(plan.disks[0].fstype, "erofs");
  CHECK(plan.disks[0].read_only);
  CHECK(plan.binds[0].mount_index == 0 && plan.binds[0].disk == 1);
  CHECK_STR_EQ(plan.binds[0].subpath, "");
  CHECK(plan.binds[1].mount_index == 1 && plan.binds[1].disk == 2);
  CHECK_STR_EQ(plan.binds[1].subpath, "hosts");
  CHECK(strncmp(plan.disks[0].path, cache, strlen(cache)) == 0);

  /* an erofs image: the magic at 1 KiB */
  int fd = open(plan.disks[0].path, O_RDONLY);
  unsigned char magic[4] = {0};
  CHECK(fd >= 0 && pread(fd, magic, 4, 1024) == 4);
  if (fd >= 0) close(fd);
  CHECK(magic[0] == 0xE2 && magic[1] == 0xE1 && magic[2] == 0xF5 && magic[3] == 0xE0);

  /* unchanged tree: the same image, not rebuilt */
  struct stat before, after;
  CHECK(stat(plan.disks[0].path, &before) == 0);
  char first[PATH_MAX];
  snprintf(first, sizeof(first), "%s", plan.disks[0].path);
  struct rc_microvm_plan again = {0};
  CHECK(rc_microvm_disks(cfg, rootfs, &again, &err) == 0);
  CHECK_STR_EQ(again.disks[0].path, first);
  CHECK(stat(again.disks[0].path, &after) == 0);
  CHECK(before.st_ino == after.st_ino && before.st_mtim.tv_nsec == after.st_mtim.tv_nsec);

  /* a changed file: another image */
  snprintf(p, sizeof(p), "%s/hello", rootfs);
  write_file(p, "hello, changed\n");
  CHECK(rc_microvm_disks(cfg, rootfs, &again, &err) == 0);
  CHECK(strcmp(again.disks[0].path, first) != 0);

  /* the rootfs is already an image file: used as it is, its type sniffed */
  CHECK(rc_microvm_disks(cfg, first, &again, &err) == 0);
  CHECK_STR_EQ(again.disks[0].path, first);
  CHECK_STR_EQ(again.disks[0].fstype, "erofs");
  oci_config_free(cfg);

  /* a socket cannot be bound into a guest: a clear error */
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
  CHECK(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
  snprintf(
      json, sizeof(json),
      "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},\"mounts\":["
      "{\"destination\":\"/run/s\",\"type\":\"bind\",\"source\":\"%s\",\"options\":[\"bind\"]}]}",
      sock);
  cfg = parse(json);
  CHECK(rc_microvm_disks(cfg, rootfs, &again, &err) < 0);
  CHECK_CONTAINS(err.msg, "only directories and regular files");
  oci_config_free(cfg);
  close(s);

  /* an empty file is no filesystem */
  write_file(p, "");
  cfg = parse("{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"}}");
  CHECK(rc_microvm_disks(cfg, p, &again, &err) < 0);
  CHECK_CONTAINS(err.msg, "too small to hold a filesystem");
  oci_config_free(cfg);

  CHECK(nftw(base, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0);
}

/* One case's work directory: base (removed by tree_case_done), the image cache in it (set
 * as RUNCELL_CACHE_DIR) and the tree vol, with a config whose root is vol. */
struct tree_case {
  char base[64];
  char cache[PATH_MAX], vol[PATH_MAX];
  struct oci_config *cfg;
};

/* real_mkfs: the case builds images with mkfs.erofs (else a probe stands in for it). */
static bool tree_case_init(struct tree_case *t, const char *name, bool real_mkfs) {
  memset(t, 0, sizeof(*t));
  if (real_mkfs && !need_mkfs_erofs(name)) return false;
  snprintf(t->base, sizeof(t->base), "/tmp/runcell-unit-%s-XXXXXX", name);
  CHECK(mkdtemp(t->base) != NULL);
  snprintf(t->cache, sizeof(t->cache), "%s/cache", t->base);
  snprintf(t->vol, sizeof(t->vol), "%s/vol", t->base);
  setenv("RUNCELL_CACHE_DIR", t->cache, 1);
  CHECK(mkdir(t->vol, 0755) == 0);
  t->cfg = parse("{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"vol\"}}");
  CHECK(t->cfg != NULL);
  return t->cfg != NULL;
}

static void tree_case_done(struct tree_case *t) {
  oci_config_free(t->cfg);
  CHECK(nftw(t->base, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0);
}

/* Nothing in the image cache: the images a case built were removed by it, and a refused
 * or stopped build took its staging directory with it. */
static void check_image_cache_empty(const struct tree_case *t) {
  char images[PATH_MAX + 16];
  snprintf(images, sizeof(images), "%s/images", t->cache);
  DIR *d = opendir(images);
  CHECK(d != NULL);
  for (struct dirent *e; d && (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    fprintf(stderr, "left in the image cache: %s\n", e->d_name);
    CHECK(!"an entry left in the image cache");
  }
  if (d) closedir(d);
}

/* The race of CVE-2021-30465 on the image path: a volume another container writes is
 * turned into a disk while that container swaps a file for a link to a host file.
 * mkfs.erofs lists the tree first and opens each file later by path, following links; a
 * link that appears in between must not bring the host's file into the guest's disk. A
 * child swaps vol/decoy (a regular file) with a link to a secret outside the tree
 * (RENAME_EXCHANGE, atomic), and vol/sub with a link to a host directory, as fast as it can
 * while the test builds images of vol; each build must either succeed without the secret or
 * be refused, nothing may open the host directory (inotify), and a refused build leaves
 * nothing in the cache. The window (mkfs.erofs's lstat and open of the same file) is two
 * adjacent syscalls, so an unconfined build leaks only now and then (by hand, with the
 * open delayed 50 ms by strace's fault injection: 6 of 20 builds carried the secret);
 * image_builder_sees_only_the_tree below shows deterministically that the builder cannot
 * reach the file at any moment. The directory swap guards the cache key's walk, which
 * opens each directory from its parent with O_NOFOLLOW (the nftw walk it replaced
 * followed a directory that became a link between its lstat and opendir; that window is
 * narrower still and 120 builds here did not hit it). */
static void image_build_reads_nothing_outside_the_tree(void) {
  struct tree_case t;
  if (!tree_case_init(&t, "swap", true)) return;
  const char *base = t.base, *vol = t.vol;
  char secret[PATH_MAX], other[PATH_MAX], decoy[PATH_MAX + 8];
  snprintf(secret, sizeof(secret), "%s/secret", base);
  snprintf(other, sizeof(other), "%s/other", base);
  snprintf(decoy, sizeof(decoy), "%s/decoy", vol);
  /* both 4 KiB: the builder reads as many bytes as the listing said the file had */
  char marker[64];
  snprintf(marker, sizeof(marker), "RUNCELL-HOST-SECRET-%d-", (int)getpid());
  char text[4097];
  size_t used = 0;
  while (used + strlen(marker) < sizeof(text)) used += (size_t)sprintf(text + used, "%s", marker);
  write_file(secret, text);
  memset(text, 'D', 4096);
  text[4096] = '\0';
  write_file(decoy, text);
  CHECK(symlink(secret, other) == 0);
  /* and a directory swapped with a link to a directory of the host, which nothing may open:
   * inotify reports any open of it */
  char subdir[PATH_MAX + 8], otherdir[PATH_MAX + 16], hostdir[PATH_MAX + 16], p[PATH_MAX + 32];
  snprintf(subdir, sizeof(subdir), "%s/sub", vol);
  snprintf(otherdir, sizeof(otherdir), "%s/otherdir", base);
  snprintf(hostdir, sizeof(hostdir), "%s/hostdir", base);
  CHECK(mkdir(subdir, 0755) == 0 && mkdir(hostdir, 0755) == 0);
  snprintf(p, sizeof(p), "%s/file", subdir);
  write_file(p, "in the tree");
  snprintf(p, sizeof(p), "%s/%s", hostdir, marker);
  write_file(p, marker);
  CHECK(symlink(hostdir, otherdir) == 0);
  int watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  CHECK(watch >= 0 && inotify_add_watch(watch, hostdir, IN_OPEN | IN_ACCESS) >= 0);

  pid_t swapper = fork();
  CHECK(swapper >= 0);
  if (swapper == 0) {
    for (;;) {
      renameat2(AT_FDCWD, decoy, AT_FDCWD, other, RENAME_EXCHANGE);
      renameat2(AT_FDCWD, subdir, AT_FDCWD, otherdir, RENAME_EXCHANGE);
    }
  }
  int built = 0, refused = 0, leaked = 0;
  char first_error[512] = "";
  const int rounds = 40;
  for (int i = 0; i < rounds; i++) {
    struct rc_microvm_plan plan = {0};
    struct rc_error err = {0};
    if (rc_microvm_disks(t.cfg, vol, &plan, &err) < 0) {
      /* a link the builder met where a file was listed: a refused build is correct */
      if (!refused++) snprintf(first_error, sizeof(first_error), "%s", err.msg);
      continue;
    }
    built++;
    int fd = open(plan.disks[0].path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    struct stat sb;
    if (fd >= 0 && fstat(fd, &sb) == 0) {
      char *img = malloc((size_t)sb.st_size);
      if (img && pread(fd, img, (size_t)sb.st_size, 0) == sb.st_size &&
          memmem(img, (size_t)sb.st_size, marker, strlen(marker)))
        leaked++;
      free(img);
    }
    if (fd >= 0) close(fd);
    unlink(plan.disks[0].path);
  }
  kill(swapper, SIGKILL);
  waitpid(swapper, NULL, 0);
  fprintf(stderr,
          "image builds under a swapping link: %d built, %d refused, %d with the secret%s%s\n",
          built, refused, leaked, refused ? "; first refusal: " : "", first_error);
  CHECK(leaked == 0);
  CHECK(built + refused == rounds);
  CHECK(built > 0); /* the builder works at all under a changing tree */
  CHECK(strstr(first_error, "confining") == NULL);
  char events[4096];
  ssize_t opened = watch >= 0 ? read(watch, events, sizeof(events)) : -1;
  if (opened > 0) fprintf(stderr, "the host directory was opened while images were built\n");
  CHECK(opened < 0 && errno == EAGAIN);
  if (watch >= 0) close(watch);
  check_image_cache_empty(&t);
  tree_case_done(&t);
}

/* Puts tests/helpers/image_tool_probe.c (built next to this test) first on PATH as
 * mkfs.erofs, through a link in dir; returns the old PATH to give back to restore_path
 * (NULL: the probe is missing, a failure recorded). */
static char *probe_on_path(const char *dir) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  CHECK(n > 0);
  if (n <= 0) return NULL;
  self[n] = '\0';
  char probe[PATH_MAX + 32], link[PATH_MAX + 32];
  snprintf(probe, sizeof(probe), "%.*s/runcell-image-tool-probe", (int)(strrchr(self, '/') - self),
           self);
  if (access(probe, X_OK) != 0) {
    fprintf(stderr, "%s is not built\n", probe);
    CHECK(access(probe, X_OK) == 0);
    return NULL;
  }
  snprintf(link, sizeof(link), "%s/mkfs.erofs", dir);
  CHECK(mkdir(dir, 0755) == 0 && symlink(probe, link) == 0);
  const char *old = getenv("PATH");
  char *saved = strdup(old ? old : "/usr/bin:/bin");
  char path[PATH_MAX * 2];
  snprintf(path, sizeof(path), "%s:%s", dir, saved);
  setenv("PATH", path, 1);
  return saved;
}

static void restore_path(char *saved) {
  setenv("PATH", saved, 1);
  free(saved);
}

/* What the image builder can reach, whatever the timing: tests/helpers/image_tool_probe.c
 * takes mkfs.erofs's place on PATH and reports, in the "image", what it could open, the
 * entries of its root, its capabilities, whether it could make a mount namespace and the
 * descriptors it was started with. A link swapped into the tree could name any of the
 * paths it tries. */
static void image_builder_sees_only_the_tree(void) {
  struct tree_case t;
  if (!tree_case_init(&t, "probe", false)) return;
  const char *base = t.base, *vol = t.vol;
  char secret[PATH_MAX], tools[PATH_MAX], p[PATH_MAX + 32];
  snprintf(secret, sizeof(secret), "%s/secret", base);
  snprintf(tools, sizeof(tools), "%s/tools", base);
  char marker[64];
  snprintf(marker, sizeof(marker), "RUNCELL-HOST-SECRET-%d", (int)getpid());
  write_file(secret, marker);
  snprintf(p, sizeof(p), "%s/inside", vol);
  write_file(p, "tree-file");
  char list[4 * PATH_MAX];
  snprintf(list, sizeof(list),
           "%s\n%s/inside\n/src/inside\n/etc/passwd\n/proc/1/environ\n/dev/null\n", secret, vol);
  snprintf(p, sizeof(p), "%s/.probe", vol);
  write_file(p, list);
  char *saved = probe_on_path(tools);
  if (!saved) {
    tree_case_done(&t);
    return;
  }
  struct rc_microvm_plan plan = {0};
  struct rc_error err = {0};
  /* a descriptor of a host directory runcell's caller leaked (no close-on-exec) */
  int leaked = open(base, O_RDONLY | O_DIRECTORY);
  CHECK(leaked >= 0);
  int r = rc_microvm_disks(t.cfg, vol, &plan, &err);
  if (leaked >= 0) close(leaked);
  restore_path(saved);
  if (r < 0) fprintf(stderr, "disks: %s\n", err.msg);
  CHECK(r == 0);
  char report[8192] = "";
  int fd = r == 0 ? open(plan.disks[0].path, O_RDONLY | O_CLOEXEC) : -1;
  if (fd >= 0) {
    ssize_t got = read(fd, report, sizeof(report) - 1);
    report[got > 0 ? got : 0] = '\0';
    close(fd);
  }
  fprintf(stderr, "the image builder's view:\n%s", report);
  /* the tree itself is there (the probe ran and read it) */
  CHECK_CONTAINS(report, "try /src/inside: ok 9 tree-file");
  CHECK(strstr(report, marker) == NULL);
  char want[PATH_MAX + 64];
  snprintf(want, sizeof(want), "try %s: error No such file or directory", secret);
  CHECK_CONTAINS(report, want);
  snprintf(want, sizeof(want), "try %s/inside: error No such file or directory", vol);
  CHECK_CONTAINS(report, want);
  CHECK_CONTAINS(report, "try /etc/passwd: error No such file or directory");
  CHECK_CONTAINS(report, "try /proc/1/environ: error No such file or directory");
  CHECK_CONTAINS(report, "try /dev/null: error No such file or directory");
  /* its root holds the tree, its output, /etc (ld.so.cache alone) and the system dirs */
  static const char *const allowed[] = {"src",  "out", "usr",   "etc",   "bin",
                                        "sbin", "lib", "lib32", "lib64", "libx32"};
  const char *root = strstr(report, "\nroot:");
  CHECK(root != NULL);
  char names[1024] = "";
  if (root) snprintf(names, sizeof(names), "%.*s", (int)strcspn(root + 6, "\n"), root + 6);
  for (char *save = NULL, *name = strtok_r(names, " ", &save); name;
       name = strtok_r(NULL, " ", &save)) {
    bool ok = false;
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
      ok |= !strcmp(name, allowed[i]);
    if (!ok) fprintf(stderr, "the image builder's root holds /%s\n", name);
    CHECK(ok);
  }
  char caps[64];
  snprintf(caps, sizeof(caps), "caps: %llx\n",
           (1ULL << 1) | (1ULL << 2)); /* CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH */
  CHECK_CONTAINS(report, caps);
  CHECK_CONTAINS(report, "unshare: error Operation not permitted");
  CHECK_CONTAINS(report, "\nfds:\n");
  tree_case_done(&t);
}

/* A FIFO swapped into the tree blocks the builder's open for good (nodev does not cover
 * FIFOs): the build is stopped at its deadline with the reason, the tool killed, nothing
 * left in the cache. The probe in mkfs.erofs's place opens the tree's FIFO as mkfs.erofs
 * would open a file that became one. */
static void image_build_has_a_deadline(void) {
  struct tree_case t;
  if (!tree_case_init(&t, "fifo", false)) return;
  char tools[PATH_MAX], p[PATH_MAX + 32];
  snprintf(tools, sizeof(tools), "%s/tools", t.base);
  snprintf(p, sizeof(p), "%s/fifo", t.vol);
  CHECK(mkfifo(p, 0644) == 0);
  snprintf(p, sizeof(p), "%s/.probe", t.vol);
  write_file(p, "/src/fifo\n");
  char *saved = probe_on_path(tools);
  if (!saved) {
    tree_case_done(&t);
    return;
  }
  setenv("RUNCELL_MICROVM_IMAGE_TIMEOUT_S", "2", 1);
  struct rc_microvm_plan plan = {0};
  struct rc_error err = {0};
  int r = rc_microvm_disks(t.cfg, t.vol, &plan, &err);
  unsetenv("RUNCELL_MICROVM_IMAGE_TIMEOUT_S");
  restore_path(saved);
  CHECK(r < 0);
  CHECK_CONTAINS(err.msg, "did not finish the image of");
  CHECK_CONTAINS(err.msg, "within 2 s and was stopped");
  check_image_cache_empty(&t);
  tree_case_done(&t);
}

/* A runcell killed while it built an image leaves its staging directory (and a partial
 * image, as large as the tree); the next build removes those whose runcell is gone, and
 * keeps one whose process lives. */
static void abandoned_builds_are_swept(void) {
  struct tree_case t;
  if (!tree_case_init(&t, "sweep", true)) return;
  char images[PATH_MAX + 8], p[PATH_MAX + 64];
  snprintf(images, sizeof(images), "%s/images", t.cache);
  CHECK(mkdir(t.cache, 0700) == 0 && mkdir(images, 0700) == 0);
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  CHECK(dead > 0 && waitpid(dead, NULL, 0) == dead);
  char dead_build[PATH_MAX + 64], dead_bind[PATH_MAX + 64], live[PATH_MAX + 64];
  snprintf(dead_build, sizeof(dead_build), "%s/.build.%d.aaaaaa", images, (int)dead);
  snprintf(dead_bind, sizeof(dead_bind), "%s/.bind.%d.bbbbbb", images, (int)dead);
  snprintf(live, sizeof(live), "%s/.build.%d.cccccc", images, (int)getppid());
  CHECK(mkdir(dead_build, 0700) == 0 && mkdir(dead_bind, 0700) == 0 && mkdir(live, 0700) == 0);
  snprintf(p, sizeof(p), "%s/out", dead_build);
  CHECK(mkdir(p, 0700) == 0);
  snprintf(p, sizeof(p), "%s/out/image", dead_build);
  write_file(p, "partial image");
  snprintf(p, sizeof(p), "%s/hosts", dead_bind);
  write_file(p, "a copy");
  struct rc_microvm_plan plan = {0};
  struct rc_error err = {0};
  CHECK(rc_microvm_disks(t.cfg, t.vol, &plan, &err) == 0);
  CHECK(access(dead_build, F_OK) != 0 && errno == ENOENT);
  CHECK(access(dead_bind, F_OK) != 0 && errno == ENOENT);
  CHECK(access(live, F_OK) == 0);
  tree_case_done(&t);
}

/* linux.devices in the agent's CONFIG: paths cleaned as runc joins them, runc's defaults for
 * what is absent, the first of two entries for one path, and what the guest cannot make
 * (outside /dev, a number dev_t cannot hold) refused by name when CONFIG is encoded. */
static void agent_config_devices(void) {
  static struct agent_msg m;
  struct rc_error err = {0};
  struct rc_microvm_plan plan = {.n_disks = 1};
  snprintf(plan.disks[0].fstype, sizeof(plan.disks[0].fstype), "erofs");
  struct oci_config *cfg = parse(
      "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"r\"},"
      "\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\",\"user\":{\"uid\":0,\"gid\":0}},"
      "\"linux\":{\"devices\":["
      "{\"path\":\"/dev//net/./tun\",\"type\":\"c\",\"major\":10,\"minor\":200,"
      "\"fileMode\":384,\"uid\":1000,\"gid\":1001},"
      "{\"path\":\"/dev/fuse\",\"type\":\"u\",\"major\":10,\"minor\":229},"
      "{\"path\":\"/dev/net/tun\",\"type\":\"c\",\"major\":1,\"minor\":3},"
      "{\"path\":\"/dev/pipe\",\"type\":\"p\",\"major\":4,\"minor\":5}]}}");
  CHECK(cfg != NULL);
  if (!cfg) return;
  struct agent_config *a = NULL;
  CHECK(rc_microvm_agent_config(cfg, &plan, &a, &err) == 0);
  CHECK(a != NULL && a->n_devices == 3);
  if (a && a->n_devices == 3) {
    const struct agent_device *tun = &a->devices[0], *fuse = &a->devices[1], *pipe = &a->devices[2];
    CHECK_STR_EQ(tun->path, "/dev/net/tun");
    CHECK(tun->type == 'c' && tun->major == 10 && tun->minor == 200 && tun->mode == 0600 &&
          tun->uid == 1000 && tun->gid == 1001);
    CHECK_STR_EQ(fuse->path, "/dev/fuse");
    CHECK(fuse->type == 'u' && fuse->minor == 229 && fuse->mode == 0666 && fuse->uid == 0 &&
          fuse->gid == 0);
    CHECK_STR_EQ(pipe->path, "/dev/pipe");
    CHECK(pipe->type == 'p' && pipe->major == 0 && pipe->minor == 0);
    CHECK(agent_encode_config(&m, a, &err) == 0);
  }
  rc_microvm_agent_config_free(a);
  oci_config_free(cfg);

  static const struct {
    const char *device, *why;
  } refused[] = {
      {"{\"path\":\"/tmp/fuse\",\"type\":\"c\",\"major\":10,\"minor\":229}",
       "device 0 path \"/tmp/fuse\" is not under /dev"},
      {"{\"path\":\"/dev/../etc/x\",\"type\":\"c\",\"major\":10,\"minor\":229}",
       "not a normalized path"},
      /* numbers beyond dev_t are refused by the config parser first (test_oci_config), and
       * by the CONFIG's validation (test_agent_proto) */
  };
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"r\"},"
             "\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\",\"user\":{\"uid\":0,\"gid\":0}},"
             "\"linux\":{\"devices\":[%s]}}",
             refused[i].device);
    cfg = parse(json);
    CHECK(cfg != NULL);
    if (!cfg) continue;
    a = NULL;
    CHECK(rc_microvm_agent_config(cfg, &plan, &a, &err) == 0);
    CHECK(agent_encode_config(&m, a, &err) < 0);
    CHECK_CONTAINS(err.msg, refused[i].why);
    rc_microvm_agent_config_free(a);
    oci_config_free(cfg);
  }
}

UNIT_MAIN("microvm_plan", UNIT_CASE(size_from_limits), UNIT_CASE(agent_config_devices),
          UNIT_CASE(disks_are_cached_images), UNIT_CASE(image_build_reads_nothing_outside_the_tree),
          UNIT_CASE(image_builder_sees_only_the_tree), UNIT_CASE(image_build_has_a_deadline),
          UNIT_CASE(abandoned_builds_are_swept))
