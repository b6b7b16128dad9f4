/* The gated cell's floor (src/cell/cell_floor.c) on a privileged config and on runc's
 * default one: what it adds, that it adds each thing once, and what it leaves alone. */
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "runcell/cell_floor.h"
#include "runcell/oci.h"
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

/* containerd's privileged container: sysfs and cgroupfs read-write, nothing masked */
static void privileged_config_gets_the_floor(void) {
  struct oci_config *cfg = parse(
      "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},"
      "\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\"},"
      "\"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
      "{\"destination\":\"/sys\",\"type\":\"sysfs\",\"source\":\"sysfs\",\"options\":[\"rw\"]},"
      "{\"destination\":\"/sys/fs/cgroup\",\"type\":\"cgroup\",\"source\":\"cgroup\"},"
      "{\"destination\":\"/data\",\"type\":\"bind\",\"source\":\"/srv\",\"options\":[\"rbind\"]}],"
      "\"linux\":{\"namespaces\":[{\"type\":\"mount\"}],\"readonlyPaths\":[\"/proc/bus\"]}}");
  if (!cfg) return;
  size_t changed = rc_cell_floor_apply(cfg);
  CHECK(changed == 2 + 4 + 11); /* two mounts, four read-only paths, eleven masked */
  CHECK(cfg->mounts[1].flags & MS_RDONLY);
  CHECK(!(cfg->mounts[1].clear_flags & MS_RDONLY));
  CHECK(cfg->mounts[2].flags & MS_RDONLY);
  CHECK(!(cfg->mounts[0].flags & MS_RDONLY)); /* /proc itself: its paths are kept instead */
  CHECK(!(cfg->mounts[3].flags & MS_RDONLY)); /* a volume is the config's to decide */
  CHECK(has(cfg->linux_.readonly_paths, cfg->linux_.n_readonly_paths, "/proc/sys"));
  CHECK(has(cfg->linux_.readonly_paths, cfg->linux_.n_readonly_paths, "/proc/sysrq-trigger"));
  CHECK(cfg->linux_.n_readonly_paths == 5); /* /proc/bus was there: not twice */
  CHECK(has(cfg->linux_.masked_paths, cfg->linux_.n_masked_paths, "/proc/kcore"));
  CHECK(rc_cell_floor_apply(cfg) == 0); /* once is enough */
  oci_config_free(cfg);
}

/* runc's default spec already keeps all of it but powercap */
static void default_config_is_kept(void) {
  char *text = oci_default_spec(false, false);
  struct oci_config *cfg = parse(text);
  free(text);
  if (!cfg) return;
  size_t before = cfg->linux_.n_masked_paths;
  CHECK(rc_cell_floor_apply(cfg) == 1);
  CHECK(cfg->linux_.n_masked_paths == before + 1);
  CHECK(has(cfg->linux_.masked_paths, cfg->linux_.n_masked_paths, "/sys/devices/virtual/powercap"));
  oci_config_free(cfg);
}

UNIT_MAIN("cell_floor", UNIT_CASE(privileged_config_gets_the_floor),
          UNIT_CASE(default_config_is_kept))
