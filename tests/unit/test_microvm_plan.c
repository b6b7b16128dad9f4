/* microVM plans: vCPUs and memory from the limits, and the disks made from a rootfs and
 * its bind mounts (erofs images cached by the tree's metadata; needs mkfs.erofs). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "runcell/microvm.h"
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

static bool have_mkfs_erofs(void) {
  return access("/usr/bin/mkfs.erofs", X_OK) == 0 || access("/sbin/mkfs.erofs", X_OK) == 0 ||
         access("/usr/sbin/mkfs.erofs", X_OK) == 0;
}

static void disks_are_cached_images(void) {
  if (!have_mkfs_erofs()) {
    /* install-deps installs erofs-utils; without it the test would prove nothing */
    fprintf(stderr, "SKIP disks_are_cached_images: mkfs.erofs (erofs-utils) is not installed\n");
    return;
  }
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

UNIT_MAIN("microvm_plan", UNIT_CASE(size_from_limits), UNIT_CASE(disks_are_cached_images))
