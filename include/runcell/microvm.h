/* microVM mode on the runtime's side: what a container's VM is made of (the plan: guest
 * kernel, agent initrd, vCPUs, memory, the disks that carry its rootfs and bind mounts),
 * and the VMM process that is the container's init on the host. */
#ifndef RUNCELL_MICROVM_H
#define RUNCELL_MICROVM_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "runcell/error.h"
#include "runcell/oci.h"
#include "runcell/vmm/machine.h"

/* Guest RAM is the container's memory limit less what the VMM itself needs (page
 * tables, device buffers, threads' stacks), so the VMM's cgroup never goes over the limit
 * because of the guest. Without a limit the guest gets RC_MICROVM_DEFAULT_MEM. */
#define RC_MICROVM_DEFAULT_MEM (256ULL << 20)
#define RC_MICROVM_VMM_OVERHEAD (32ULL << 20)
#define RC_MICROVM_MIN_GUEST_MEM (64ULL << 20)
#define RC_MICROVM_MAX_VCPUS 32

/* A disk the guest gets: a cached erofs image of a host directory, or a block device or
 * image file used as it is. */
struct rc_microvm_disk {
  char path[PATH_MAX];
  char fstype[16]; /* erofs, ext4 */
  bool read_only;
  char serial[21]; /* the guest finds the disk by it: "rootfs", "vol1", ... */
};

/* An OCI bind mount as the guest makes it: the disk holding its source, and where inside
 * that disk the source is ("" for the disk's root, or the file name of a file bind). */
struct rc_microvm_bind {
  size_t mount_index; /* in cfg->mounts */
  unsigned disk;      /* index in disks */
  char subpath[NAME_MAX + 1];
};

struct rc_microvm_plan {
  char kernel[PATH_MAX];
  char initrd[PATH_MAX];
  unsigned vcpus;
  uint64_t mem_bytes;
  struct rc_microvm_disk disks[VMM_MAX_DISKS]; /* disks[0] is the rootfs */
  unsigned n_disks;
  struct rc_microvm_bind binds[VMM_MAX_DISKS - 1];
  unsigned n_binds;
};

/* Finds the guest kernel and the agent's initrd: $RUNCELL_GUEST_KERNEL and
 * $RUNCELL_AGENT_INITRD (set by the operator in the runtime's environment, never by a
 * container's config), else next to the runcell binary (build tree: guest/agent.initrd)
 * or in <prefix>/lib/runcell, else in the guest kernel cache that vmm/kernel/build.sh fills. */
int rc_microvm_find_assets(struct rc_microvm_plan *plan, struct rc_error *err);

/* vCPUs and guest memory from the container's cpu and memory limits. */
int rc_microvm_size(const struct oci_config *cfg, struct rc_microvm_plan *plan,
                    struct rc_error *err);

/* The disks: the rootfs (an erofs image of the directory, cached by the tree's metadata, or
 * the block device / image file it already is) and one per bind mount. */
int rc_microvm_disks(const struct oci_config *cfg, const char *rootfs, struct rc_microvm_plan *plan,
                     struct rc_error *err);

/* Builds the erofs image of directory src at dest with mkfs.erofs, confined to the tree (a
 * mount namespace whose root holds only the tree, read-only, the output directory and the
 * tool's own files), so a link swapped into the tree while it is read cannot bring a host
 * file into the image (src/microvm_mkfs.c). */
int rc_microvm_mkfs(const char *src, const char *dest, struct rc_error *err);

/* All of the above. */
int rc_microvm_plan(const struct oci_config *cfg, const char *rootfs, struct rc_microvm_plan *plan,
                    struct rc_error *err);

/* The VMM's jail (src/microvm_jail.c). While the VMM is one thread: a private mount
 * namespace of its own, which the threads it starts share. */
int rc_microvm_jail_prepare(struct rc_error *err);
/* Once every thread of the VMM exists (each gave up its capabilities as it began) and
 * before the guest reads anything of the container's: an empty read-only root, no
 * capabilities on this thread either, no_new_privs. */
int rc_microvm_jail_enter(struct rc_error *err);
/* Then the VMM's syscall allow-list on every thread of the process; a syscall outside it
 * kills the VMM (an open fails with EACCES). */
int rc_microvm_jail_syscalls(struct rc_error *err);

/* The directory runcell caches images in: $RUNCELL_CACHE_DIR or /var/cache/runcell. */
const char *rc_microvm_cache_dir(void);

#endif
