/* Capability names as config.json spells them ("CAP_CHOWN"), indexed by number. The
 * table is ours rather than libcap's cap_from_name because libcap also accepts lowercase
 * and numeric spellings that the spec does not, and its list depends on the libcap
 * version installed rather than on what this build was tested with. */
#include <string.h>

#include "runcell/oci.h"
#include "runcell/util.h"

static const char *const cap_names[] = {
    "CAP_CHOWN",              /* 0 */
    "CAP_DAC_OVERRIDE",       /* 1 */
    "CAP_DAC_READ_SEARCH",    /* 2 */
    "CAP_FOWNER",             /* 3 */
    "CAP_FSETID",             /* 4 */
    "CAP_KILL",               /* 5 */
    "CAP_SETGID",             /* 6 */
    "CAP_SETUID",             /* 7 */
    "CAP_SETPCAP",            /* 8 */
    "CAP_LINUX_IMMUTABLE",    /* 9 */
    "CAP_NET_BIND_SERVICE",   /* 10 */
    "CAP_NET_BROADCAST",      /* 11 */
    "CAP_NET_ADMIN",          /* 12 */
    "CAP_NET_RAW",            /* 13 */
    "CAP_IPC_LOCK",           /* 14 */
    "CAP_IPC_OWNER",          /* 15 */
    "CAP_SYS_MODULE",         /* 16 */
    "CAP_SYS_RAWIO",          /* 17 */
    "CAP_SYS_CHROOT",         /* 18 */
    "CAP_SYS_PTRACE",         /* 19 */
    "CAP_SYS_PACCT",          /* 20 */
    "CAP_SYS_ADMIN",          /* 21 */
    "CAP_SYS_BOOT",           /* 22 */
    "CAP_SYS_NICE",           /* 23 */
    "CAP_SYS_RESOURCE",       /* 24 */
    "CAP_SYS_TIME",           /* 25 */
    "CAP_SYS_TTY_CONFIG",     /* 26 */
    "CAP_MKNOD",              /* 27 */
    "CAP_LEASE",              /* 28 */
    "CAP_AUDIT_WRITE",        /* 29 */
    "CAP_AUDIT_CONTROL",      /* 30 */
    "CAP_SETFCAP",            /* 31 */
    "CAP_MAC_OVERRIDE",       /* 32 */
    "CAP_MAC_ADMIN",          /* 33 */
    "CAP_SYSLOG",             /* 34 */
    "CAP_WAKE_ALARM",         /* 35 */
    "CAP_BLOCK_SUSPEND",      /* 36 */
    "CAP_AUDIT_READ",         /* 37 */
    "CAP_PERFMON",            /* 38 */
    "CAP_BPF",                /* 39 */
    "CAP_CHECKPOINT_RESTORE", /* 40 */
};

/* The sets are 64-bit masks (struct oci_capabilities). */
_Static_assert(RC_ARRAY_SIZE(cap_names) <= 64, "capability masks hold 64 bits");

int oci_cap_from_name(const char *name) {
  if (!name) return -1;
  for (size_t i = 0; i < RC_ARRAY_SIZE(cap_names); i++)
    if (strcmp(cap_names[i], name) == 0) return (int)i;
  return -1;
}

const char *oci_cap_name(int cap) {
  if (cap < 0 || (size_t)cap >= RC_ARRAY_SIZE(cap_names)) return NULL;
  return cap_names[cap];
}

int oci_cap_last(void) {
  return (int)RC_ARRAY_SIZE(cap_names) - 1;
}
