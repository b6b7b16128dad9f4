/* The gated cell's floor (src/cell/cell_floor.c) on a privileged config and on runc's
 * default one: what it adds, that it adds each thing once, and what it leaves alone. */
#include <linux/mount.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "runcell/cell_floor.h"
#include "runcell/oci.h"
#include "runcell/util.h"
#include "unit.h"

static bool has(char *const *v, size_t n, const char *s) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(v[i], s)) return true;
  return false;
}

static struct oci_config *parse(const char *text) {
  struct oci_config *cfg = NULL;
  struct rc_error err = {0};
  CHECK(oci_config_parse(text, strlen(text), &cfg, &err) == 0);
  return cfg;
}

/* containerd's privileged container: sysfs and cgroupfs read-write, nothing masked; and
 * what a config could add: binds of the host's /sys however spelled, a second procfs */
static void privileged_config_gets_the_floor(void) {
  struct oci_config *cfg = parse(
      "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},"
      "\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\"},"
      "\"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
      "{\"destination\":\"/sys\",\"type\":\"sysfs\",\"source\":\"sysfs\",\"options\":[\"rw\"]},"
      "{\"destination\":\"/sys/fs/cgroup\",\"type\":\"cgroup\",\"source\":\"cgroup\"},"
      "{\"destination\":\"/data\",\"type\":\"bind\",\"source\":\"/tmp\",\"options\":[\"rbind\"]},"
      "{\"destination\":\"/h1\",\"type\":\"bind\",\"source\":\"//sys/.\",\"options\":[\"rbind\"]},"
      "{\"destination\":\"/h2\",\"type\":\"bind\",\"source\":\"/sys/"
      "kernel\",\"options\":[\"rbind\"]},"
      "{\"destination\":\"/h3\",\"type\":\"bind\",\"source\":\"/proc/"
      "sys\",\"options\":[\"rbind\"]},"
      "{\"destination\":\"/proc2\",\"type\":\"proc\",\"source\":\"proc\"}],"
      "\"linux\":{\"namespaces\":[{\"type\":\"mount\"}],\"readonlyPaths\":[\"/proc/bus\"]}}");
  if (!cfg) return;
  size_t changed = rc_cell_floor_apply(cfg);
  /* five mounts; five read-only paths and fifteen masked under /proc and /sys; six and
   * thirteen under /proc2 */
  CHECK(changed == 5 + 5 + 15 + 6 + 13);
  static const int settings[] = {1, 2, 4, 5, 6};
  for (size_t i = 0; i < RC_ARRAY_SIZE(settings); i++) {
    const struct oci_mount *m = &cfg->mounts[settings[i]];
    CHECK(m->flags & MS_RDONLY);
    CHECK(m->rattr_set & MOUNT_ATTR_RDONLY); /* and every mount below it */
    CHECK(!(m->clear_flags & MS_RDONLY));
  }
  CHECK(!(cfg->mounts[0].flags & MS_RDONLY)); /* /proc itself: its paths are kept instead */
  CHECK(!(cfg->mounts[3].flags & MS_RDONLY)); /* a volume of ordinary files is the config's */
  CHECK(has(cfg->linux_.readonly_paths, cfg->linux_.n_readonly_paths, "/proc/sys"));
  CHECK(has(cfg->linux_.readonly_paths, cfg->linux_.n_readonly_paths, "/proc/sysrq-trigger"));
  CHECK(has(cfg->linux_.readonly_paths, cfg->linux_.n_readonly_paths, "/proc/mtrr"));
  CHECK(has(cfg->linux_.readonly_paths, cfg->linux_.n_readonly_paths, "/proc2/sys"));
  CHECK(has(cfg->linux_.masked_paths, cfg->linux_.n_masked_paths, "/proc2/kcore"));
  CHECK(has(cfg->linux_.masked_paths, cfg->linux_.n_masked_paths, "/proc/kmsg"));
  CHECK(cfg->linux_.n_readonly_paths == 12); /* /proc/bus was there: not twice */
  CHECK(has(cfg->linux_.masked_paths, cfg->linux_.n_masked_paths, "/proc/kcore"));
  CHECK(rc_cell_floor_apply(cfg) == 0); /* once is enough */
  oci_config_free(cfg);
}

/* runc's default spec keeps most of it already: its sysfs and cgroupfs are read-only (they
 * get read-only below them too, not counted), and the floor adds /proc/mtrr, /proc/kmsg, the
 * kpage files and powercap */
static void default_config_is_kept(void) {
  char *text = oci_default_spec(false, false);
  struct oci_config *cfg = parse(text);
  free(text);
  if (!cfg) return;
  size_t before = cfg->linux_.n_masked_paths;
  CHECK(rc_cell_floor_apply(cfg) == 1 + 5);
  CHECK(cfg->linux_.n_masked_paths == before + 5);
  CHECK(has(cfg->linux_.masked_paths, cfg->linux_.n_masked_paths, "/sys/devices/virtual/powercap"));
  oci_config_free(cfg);
}

UNIT_MAIN("cell_floor", UNIT_CASE(privileged_config_gets_the_floor),
          UNIT_CASE(default_config_is_kept))
