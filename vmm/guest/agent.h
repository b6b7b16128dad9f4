/* The guest agent's parts: PID 1 of a runcell microVM. agent_main.c boots and talks to the
 * host, agent_mounts.c builds the container's root, agent_process.c starts the workload,
 * agent_relay.c relays its stdio and reaps. Internal to the static agent binary. */
#ifndef RUNCELL_GUEST_AGENT_H
#define RUNCELL_GUEST_AGENT_H

#include <stdbool.h>
#include <sys/types.h>

#include "runcell/agent_proto.h"
#include "runcell/error.h"

#define AGENT_VERSION "runcell-agent 0.1"
/* Where the container's root is assembled. */
#define AGENT_ROOT_DIR "/run/rootfs"

/* An error together with the stage it happened in, for the host's ERROR message. */
struct agent_failure {
  uint32_t stage;
  struct rc_error err;
};

/* A line on the guest's console (the kernel's serial console), for whoever debugs a boot. */
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The channel to the host (one nonblocking fd, both ways: a virtio serial port can be
 * opened only once). */
struct agent_channel {
  int rfd, wfd;
  struct agent_reader reader;
  struct agent_msg out;
};
int agent_send(struct agent_channel *ch, struct rc_error *err);

/* Mounts the root disk (overlaid with tmpfs), the volumes and the OCI mounts, leaving the
 * container's root at AGENT_ROOT_DIR. */
int agent_build_rootfs(const struct agent_config *cfg, struct agent_failure *f);

/* openat2(rootfd, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): path is taken as if the
 * container's root were "/", whatever symlinks it crosses. O_CLOEXEC is added. */
int agent_open_in_root(int rootfd, const char *path, int flags);

/* Finds args[0] the way execvp would, but with the container's PATH inside the container's
 * root: out gets the path to exec after chroot. */
int agent_find_executable(int rootfd, const struct agent_config *cfg, char *out, size_t size,
                          struct rc_error *err);

/* The workload's stdio as the agent sees it: a pty master, or three pipe ends. */
struct agent_stdio {
  int pty_master;     /* -1 without a terminal */
  int in_fd;          /* where stdin goes (pty master or a pipe's write end) */
  int out_fd, err_fd; /* where output comes from; err_fd -1 with a terminal */
};

/* Forks the workload: chroots into AGENT_ROOT_DIR, sets up its session, terminal or pipes,
 * rlimits, ids and cwd, and execs. Returns once exec succeeded (the child's exec-error pipe
 * closed), or fails with the child's reason. */
int agent_spawn(const struct agent_config *cfg, struct agent_stdio *io, pid_t *pid,
                struct agent_failure *f);

/* Relays stdio with flow control, forwards signals and window sizes, reaps every child,
 * and fills *exit once the workload is gone and its output drained. */
int agent_relay(struct agent_channel *ch, const struct agent_config *cfg, struct agent_stdio *io,
                pid_t pid, struct agent_exit *exit, struct rc_error *err);

#endif
