/* A sysctl key as a path under /proc/sys (see the header). */
#include "runcell/sysctl_path.h"

#include <stdbool.h>
#include <string.h>

int rc_sysctl_path(const char *key, size_t len, char *out, size_t size) {
  if (!key || len == 0 || len + 1 > size) return -1;
  bool slashed = memchr(key, '/', len) != NULL;
  for (size_t i = 0; i < len; i++) {
    char ch = key[i];
    if (ch <= ' ' || ch == 0x7f) return -1;
    out[i] = !slashed && ch == '.' ? '/' : ch;
  }
  out[len] = '\0';
  for (const char *p = out;;) { /* components: not empty, not "." or ".." */
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) return -1;
    if (!slash) break;
    p = slash + 1;
  }
  return 0;
}
