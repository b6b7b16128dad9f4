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

/* Sets the guest's NIC up as NETWORK says (agent_net.c): finds it by MAC, names it, sets
 * the MTU, brings it and lo up, adds the addresses, then the routes. */
int agent_setup_network(const struct agent_network *net, struct rc_error *err);

/* Mounts the root disk (overlaid with tmpfs), the volumes and the OCI mounts, leaving the
 * container's root at AGENT_ROOT_DIR. */
int agent_build_rootfs(const struct agent_config *cfg, struct agent_failure *f);

/* The security settings (agent_security.c). agent_apply_paths: read-only, then masked
 * paths inside the container's root; agent_apply_sysctls: the guest kernel's sysctls.
 * In the process itself: agent_set_oom_score_adj, and agent_load_seccomp (which needs
 * no_new_privs or CAP_SYS_ADMIN); both return -1 with errno. */
int agent_apply_paths(int rootfd, const struct agent_security *sec, struct rc_error *err);
int agent_apply_sysctls(const struct agent_security *sec, struct rc_error *err);
int agent_set_oom_score_adj(const struct agent_security *sec);

/* Writes text to a kernel file in one write (agent_files.c); flags are added to O_WRONLY.
 * -1 with errno on failure (EIO for a short write). */
int agent_write_text(const char *path, const char *text, int flags);
/* Reads up to size - 1 bytes of a kernel file in one read, NUL-terminated; -1 with errno. */
int agent_read_text(const char *path, char *buf, size_t size);

/* The pids limit (agent_cgroup.c): agent_setup_cgroup makes the guest cgroup at CONFIG,
 * with or without a limit (without one, a guest kernel that cannot make it is no error);
 * agent_join_cgroup moves the calling process into it (a child, first thing; 0 when there
 * is none); agent_set_pids_limit sets its pids.max (0: "max") for PIDS_LIMIT. */
int agent_setup_cgroup(const struct agent_config *cfg, struct rc_error *err);
int agent_join_cgroup(void);
int agent_set_pids_limit(uint64_t limit, struct rc_error *err);
/* Whether the pids cgroup exists (the container's cgroup mounts are then read-only: they
 * show it). */
bool agent_has_pids_cgroup(void);
/* The container's pids.max in the guest (0: none, or no pids cgroup), for STATS. */
uint64_t agent_pids_limit(void);
int agent_load_seccomp(const struct agent_security *sec);

/* openat2(rootfd, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): path is taken as if the
 * container's root were "/", whatever symlinks it crosses. O_CLOEXEC is added. */
int agent_open_in_root(int rootfd, const char *path, int flags);

/* /dev/console for the container's process with a terminal: the pty whose slave is open
 * at slave, bound by descriptor over a file made in the container's /dev (agent_console.c).
 * Where /dev/console cannot be made the process goes without it (logged); -1 only for a
 * bind that fails. */
int agent_make_console(int rootfd, int slave, struct rc_error *err);

/* Finds name the way execvp would, but with the process's PATH (from env) inside the
 * container's root: out gets the path to exec after chroot. */
int agent_find_executable(int rootfd, const char *name, char *const *env, uint32_t n_env,
                          const char *cwd, char *out, size_t size, struct rc_error *err);

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
/* The same for an EXEC'd process: it enters the mount namespace and root of the
 * container's process (container_pid), with the container's rlimits and umask. */
int agent_spawn_exec(const struct agent_config *cfg, const struct agent_exec *e,
                     pid_t container_pid, struct agent_stdio *io, pid_t *pid,
                     struct agent_failure *f);

/* PS: the guest's processes but the agent and kernel threads (agent_ps.c). Fills r's
 * entries (heap) and sets truncated when there were more than AGENT_MAX_PS_ENTRIES. */
int agent_list_processes(struct agent_ps_reply *r, struct rc_error *err);

/* STATS: the guest's cpu time, memory and process count (agent_stats.c); keeps
 * s->request. */
int agent_read_stats(struct agent_stats *s, struct rc_error *err);

/* Relays stdio with flow control, forwards signals and window sizes, reaps every child,
 * starts EXEC'd processes (relaying theirs too, and reporting each one's EXIT) and answers
 * PS, STATS and PIDS_LIMIT; fills *exit once the workload and every EXEC'd process are
 * gone and drained. */
int agent_relay(struct agent_channel *ch, const struct agent_config *cfg, struct agent_stdio *io,
                pid_t pid, struct agent_exit *exit, struct rc_error *err);

#endif
