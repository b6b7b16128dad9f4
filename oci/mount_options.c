/* mounts[].options to mount(2) arguments, with the same vocabulary as runc (and mount(8)):
 * flag options set or clear one MS_* bit, propagation options pick the propagation
 * type, bind/rbind/idmap mark how the mount is made, and everything else is
 * filesystem-specific data passed through as "a,b,c". Later options win over earlier
 * ones, as they do for mount(8). */
#include <string.h>
#include <sys/mount.h>

#include "internal.h"
#include "runcell/util.h"

/* Newer than some libc headers; the values are kernel ABI. */
#ifndef MS_NOSYMFOLLOW
#define MS_NOSYMFOLLOW 256
#endif
#ifndef MS_LAZYTIME
#define MS_LAZYTIME (1 << 25)
#endif

enum opt_kind {
  OPT_SET,         /* sets flag */
  OPT_CLEAR,       /* clears flag */
  OPT_PROPAGATION, /* propagation = flag */
  OPT_BIND,        /* MS_BIND */
  OPT_RBIND,       /* MS_BIND | MS_REC */
  OPT_IDMAP,       /* idmapped mount requested */
  OPT_NOTHING,     /* accepted, changes nothing ("defaults") */
  OPT_RATTR_SET,   /* sets MOUNT_ATTR_* flag on the mount and every mount below it */
  OPT_RATTR_CLEAR, /* clears it there */
  OPT_RATIME,      /* the atime mode flag (MOUNT_ATTR_RELATIME is 0) there */
};

/* Sorted by name so that the features document can list it as is. The r* attributes
 * (rro, rnosuid, ...) are runc's recursive ones: mount_setattr with AT_RECURSIVE, so that
 * the submounts of an rbind get them too, which a remount cannot do. */
static const struct {
  const char *name;
  enum opt_kind kind;
  unsigned long flag;
} options[] = {
    {"acl", OPT_SET, MS_POSIXACL},
    {"async", OPT_CLEAR, MS_SYNCHRONOUS},
    {"atime", OPT_CLEAR, MS_NOATIME},
    {"bind", OPT_BIND, MS_BIND},
    {"defaults", OPT_NOTHING, 0},
    {"dev", OPT_CLEAR, MS_NODEV},
    {"diratime", OPT_CLEAR, MS_NODIRATIME},
    {"dirsync", OPT_SET, MS_DIRSYNC},
    {"exec", OPT_CLEAR, MS_NOEXEC},
    {"idmap", OPT_IDMAP, 0},
    {"iversion", OPT_SET, MS_I_VERSION},
    {"lazytime", OPT_SET, MS_LAZYTIME},
    {"loud", OPT_CLEAR, MS_SILENT},
    {"mand", OPT_SET, MS_MANDLOCK},
    {"noacl", OPT_CLEAR, MS_POSIXACL},
    {"noatime", OPT_SET, MS_NOATIME},
    {"nodev", OPT_SET, MS_NODEV},
    {"nodiratime", OPT_SET, MS_NODIRATIME},
    {"noexec", OPT_SET, MS_NOEXEC},
    {"noiversion", OPT_CLEAR, MS_I_VERSION},
    {"nolazytime", OPT_CLEAR, MS_LAZYTIME},
    {"nomand", OPT_CLEAR, MS_MANDLOCK},
    {"norelatime", OPT_CLEAR, MS_RELATIME},
    {"nostrictatime", OPT_CLEAR, MS_STRICTATIME},
    {"nosuid", OPT_SET, MS_NOSUID},
    {"nosymfollow", OPT_SET, MS_NOSYMFOLLOW},
    {"private", OPT_PROPAGATION, MS_PRIVATE},
    {"ratime", OPT_RATIME, MOUNT_ATTR_RELATIME},
    {"rbind", OPT_RBIND, MS_BIND | MS_REC},
    {"rdev", OPT_RATTR_CLEAR, MOUNT_ATTR_NODEV},
    {"rdiratime", OPT_RATTR_CLEAR, MOUNT_ATTR_NODIRATIME},
    {"relatime", OPT_SET, MS_RELATIME},
    {"remount", OPT_SET, MS_REMOUNT},
    {"rexec", OPT_RATTR_CLEAR, MOUNT_ATTR_NOEXEC},
    {"ridmap", OPT_IDMAP, 0},
    {"rnoatime", OPT_RATIME, MOUNT_ATTR_NOATIME},
    {"rnodev", OPT_RATTR_SET, MOUNT_ATTR_NODEV},
    {"rnodiratime", OPT_RATTR_SET, MOUNT_ATTR_NODIRATIME},
    {"rnoexec", OPT_RATTR_SET, MOUNT_ATTR_NOEXEC},
    {"rnorelatime", OPT_RATIME, MOUNT_ATTR_STRICTATIME},
    {"rnostrictatime", OPT_RATIME, MOUNT_ATTR_RELATIME},
    {"rnosuid", OPT_RATTR_SET, MOUNT_ATTR_NOSUID},
    {"rnosymfollow", OPT_RATTR_SET, MOUNT_ATTR_NOSYMFOLLOW},
    {"ro", OPT_SET, MS_RDONLY},
    {"rprivate", OPT_PROPAGATION, MS_PRIVATE | MS_REC},
    {"rrelatime", OPT_RATIME, MOUNT_ATTR_RELATIME},
    {"rro", OPT_RATTR_SET, MOUNT_ATTR_RDONLY},
    {"rrw", OPT_RATTR_CLEAR, MOUNT_ATTR_RDONLY},
    {"rshared", OPT_PROPAGATION, MS_SHARED | MS_REC},
    {"rslave", OPT_PROPAGATION, MS_SLAVE | MS_REC},
    {"rstrictatime", OPT_RATIME, MOUNT_ATTR_STRICTATIME},
    {"rsuid", OPT_RATTR_CLEAR, MOUNT_ATTR_NOSUID},
    {"rsymfollow", OPT_RATTR_CLEAR, MOUNT_ATTR_NOSYMFOLLOW},
    {"runbindable", OPT_PROPAGATION, MS_UNBINDABLE | MS_REC},
    {"rw", OPT_CLEAR, MS_RDONLY},
    {"shared", OPT_PROPAGATION, MS_SHARED},
    {"silent", OPT_SET, MS_SILENT},
    {"slave", OPT_PROPAGATION, MS_SLAVE},
    {"strictatime", OPT_SET, MS_STRICTATIME},
    {"suid", OPT_CLEAR, MS_NOSUID},
    {"symfollow", OPT_CLEAR, MS_NOSYMFOLLOW},
    {"sync", OPT_SET, MS_SYNCHRONOUS},
    {"unbindable", OPT_PROPAGATION, MS_UNBINDABLE},
};

const char *oci_mount_option_name_at(size_t i) {
  /* idmap/ridmap are understood but idmapped mounts are refused when made, so the
   * features document does not claim them. */
  for (size_t k = 0; k < RC_ARRAY_SIZE(options); k++) {
    if (options[k].kind == OPT_IDMAP) continue;
    if (i-- == 0) return options[k].name;
  }
  return NULL;
}

static int find_option(const char *name) {
  for (size_t i = 0; i < RC_ARRAY_SIZE(options); i++)
    if (strcmp(options[i].name, name) == 0) return (int)i;
  return -1;
}

void oci_mount_apply_options(struct oci_mount *m) {
  m->flags = m->clear_flags = m->propagation = 0;
  m->bind = m->recursive = m->idmap = false;
  m->rattr_set = m->rattr_clear = 0;
  free(m->data);
  m->data = NULL;

  size_t data_len = 0;
  for (size_t i = 0; i < m->n_options; i++) data_len += strlen(m->options[i]) + 1;
  char *data = rc_xmalloc(data_len + 1);
  size_t used = 0;

  for (size_t i = 0; i < m->n_options; i++) {
    const char *o = m->options[i];
    int k = find_option(o);
    if (k < 0) {
      /* Filesystem data ("mode=755", "size=64k", "newinstance"): kept in order. */
      if (*o == '\0') continue;
      if (used) data[used++] = ',';
      size_t n = strlen(o);
      memcpy(data + used, o, n);
      used += n;
      continue;
    }
    unsigned long f = options[k].flag;
    switch (options[k].kind) {
      case OPT_SET:
        m->flags |= f;
        m->clear_flags &= ~f;
        break;
      case OPT_CLEAR:
        m->flags &= ~f;
        m->clear_flags |= f;
        break;
      case OPT_PROPAGATION:
        /* One propagation type per mount; the last one given wins. */
        m->propagation = f;
        break;
      case OPT_RBIND:
        m->recursive = true;
        /* fall through */
      case OPT_BIND:
        m->bind = true;
        m->flags |= f;
        break;
      case OPT_IDMAP:
        m->idmap = true;
        break;
      case OPT_NOTHING:
        break;
      case OPT_RATTR_SET:
        m->rattr_set |= f;
        m->rattr_clear &= ~f;
        break;
      case OPT_RATTR_CLEAR:
        m->rattr_set &= ~f;
        m->rattr_clear |= f;
        break;
      case OPT_RATIME:
        /* the kernel takes an atime mode only with the whole atime field cleared */
        m->rattr_set = (m->rattr_set & ~(uint64_t)MOUNT_ATTR__ATIME) | f;
        m->rattr_clear |= MOUNT_ATTR__ATIME;
        break;
    }
  }
  data[used] = '\0';

  /* A "bind" type without a bind option still means a bind mount; mount(2) needs the
   * flag either way. */
  if (m->type && strcmp(m->type, "bind") == 0) {
    m->bind = true;
    m->flags |= MS_BIND;
  }

  if (used)
    m->data = data;
  else
    free(data);
}
