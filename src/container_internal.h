/* What the create path hands to the container init across clone(2). */
#ifndef RUNCELL_CONTAINER_INTERNAL_H
#define RUNCELL_CONTAINER_INTERNAL_H

#include <stdbool.h>

#include "runcell/oci.h"

struct rc_init_ctx {
  const struct oci_config *cfg;
  const char *id;
  const char *rootfs; /* absolute */
  const char *bundle; /* absolute */
  int sync_fd;        /* child end of the sync socketpair */
  int start_fd;       /* listening socket that `start` connects to */
  int console_fd;     /* connected console socket, or -1 */
  int state_dir_fd;   /* the locked state directory: the init must not keep the lock */
  int ns_fds[OCI_NS_COUNT];
  int clone_flags;
  int preserve_fds;
  bool no_pivot;
  bool no_new_keyring;
};

/* Runs in the cloned child; never returns. */
__attribute__((noreturn)) void rc_init_main(struct rc_init_ctx *ctx);

/* Looks up the program like execvp would, in the container (after pivot_root), with the
 * container's PATH. Fills path (PATH_MAX). */
int rc_find_executable(const char *arg0, char *const env[], char *path, struct rc_error *err);

#endif
