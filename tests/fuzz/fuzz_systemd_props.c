/* libFuzzer target: the systemd cgroup driver's parsers of what a bundle gives
 * (src/linux/cgroups_systemd.c): an org.systemd.property.* annotation (name and GVariant
 * text) through rc_systemd_parse_property, a cpuset list through rc_systemd_cpuset_mask,
 * and a cgroupsPath through rc_systemd_resolve. Input: name, value, cpuset list and
 * cgroupsPath separated by NUL bytes (missing parts are empty). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runcell/cgroups_systemd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next NUL-separated part of the input, as its own string. */
static char *next_part(const uint8_t **p, const uint8_t *end) {
  const uint8_t *start = *p, *nul = start < end ? memchr(start, 0, (size_t)(end - start)) : NULL;
  size_t n = nul ? (size_t)(nul - start) : (size_t)(end - start);
  char *s = malloc(n + 1);
  if (!s) abort();
  memcpy(s, start, n);
  s[n] = '\0';
  *p = nul ? nul + 1 : end;
  return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *p = data, *end = data + size;
  char *name = next_part(&p, end), *text = next_part(&p, end), *list = next_part(&p, end),
       *path = next_part(&p, end);
  struct rc_error err = {0};

  struct rc_systemd_value v;
  if (rc_systemd_parse_property(name, text, &v, &err) == 0) {
    if (!v.name || !v.type || !strchr("bsyqutnixd", v.type) || (v.type == 's' && !v.s)) abort();
    rc_systemd_value_free(&v);
  }

  unsigned char *mask = NULL;
  size_t len = 0;
  if (rc_systemd_cpuset_mask(list, &mask, &len, &err) == 0) {
    if ((mask == NULL) != (len == 0)) abort();
    free(mask);
  }

  struct rc_systemd_unit u;
  if (rc_systemd_resolve(path, "c1", &u, &err) == 0) {
    /* update and delete find the unit from the cgroup path alone */
    if (strcmp(rc_systemd_unit_of(u.path), u.unit) != 0 || u.path[0] != '/') abort();
    rc_systemd_unit_free(&u);
  }
  free(name);
  free(text);
  free(list);
  free(path);
  return 0;
}
