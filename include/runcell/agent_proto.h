/* The protocol between a microVM's host side (the VMM process) and the guest agent (PID 1
 * of the guest), carried over the guest's /dev/hvc0 (one virtio-console port).
 *
 * Every frame is a fixed little-endian header {u32 magic, u16 version, u16 type,
 * u32 length} and `length` payload bytes, length <= AGENT_FRAME_MAX_PAYLOAD. A bad magic,
 * an unknown version, an oversized length, a type that does not travel in that direction,
 * or a payload that does not decode exactly is a protocol error on either side.
 *
 * Payloads are encoded field by field: integers little-endian, a string is u32 length +
 * bytes (no NUL inside, none at the end), a string array is u32 count + strings. Decoders
 * copy everything they keep out of the frame: no pointer into a frame survives decoding,
 * except agent_frame.payload itself (valid until the next agent_reader_next call).
 *
 * Conversation:
 *   guest: HELLO                                 host: CONFIG
 *   guest: CONFIGURED, or ERROR and power-off     host: START
 *   guest: STARTED, or ERROR and power-off
 *   both:  STDOUT/STDERR + CREDIT (host->guest), STDIN/STDIN_EOF + CREDIT (guest->host),
 *          SIGNAL, WINSIZE (host->guest)
 *   host:  EXEC {proc} -> guest: EXEC_STARTED {proc, pid} or EXEC_ERROR {proc, ...}
 *   host:  PS {request} -> guest: PS_REPLY {request, processes}
 *   host:  STATS {request} -> guest: STATS_REPLY {request, ...}
 *   host:  PIDS_LIMIT {request, limit} -> guest: PIDS_LIMIT_REPLY {request, errno, message}
 *   guest: EXIT {proc} for each EXEC'd process that ends
 *   guest: EXIT {proc 0}, then sync and reboot (the VMM sees the reset)
 * Processes (version 2): every stdio, credit, signal, window-size and exit message names
 * the process it is about by a u32 `proc`: 0 is the container's process (STARTED); others
 * are numbers the host gives the processes it EXECs (nonzero, not in use). When the
 * container's process exits the agent kills every other process and reports their EXITs
 * (each after its output) before the container's, so EXIT {proc 0} is always the last.
 * An EXEC that fails is answered EXEC_ERROR and the container goes on.
 * Version 3: CONFIG and EXEC end with the process's privileges (agent_privileges).
 * Version 4: CONFIG ends with the rest of the container's security settings: masked and
 * read-only paths, sysctls, oom_score_adj and the seccomp filter (agent_security).
 * Version 5: CONFIG carries the pids limit (a guest cgroup for the container's processes);
 * EXEC ends with the process's own rlimits and umask.
 * Version 6: PIDS_LIMIT changes that limit while the container runs (`runcell update
 * --pids-limit`), answered PIDS_LIMIT_REPLY; the guest cgroup exists whatever CONFIG's
 * limit (pids.max "max" without one), so that a later PIDS_LIMIT has one to set.
 * Version 7: CONFIG ends with linux.devices (agent_device), the nodes the agent binds into
 * the container's /dev beside (or, for the same path, instead of) runc's default ones.
 * Flow control: a sender of STDOUT/STDERR (guest) or STDIN (host) keeps at most
 * AGENT_STDIO_WINDOW bytes per stream and process unacknowledged; the receiver sends
 * CREDIT as it writes the data out, so neither side buffers more than a window of each.
 *
 * libc only: this file is compiled into both the core library and the static agent. */
#ifndef RUNCELL_AGENT_PROTO_H
#define RUNCELL_AGENT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runcell/error.h"

#define AGENT_PROTO_MAGIC 0x4c434352u /* "RCCL" as little-endian bytes */
#define AGENT_PROTO_VERSION 7
#define AGENT_FRAME_HEADER_SIZE 12
#define AGENT_FRAME_MAX_PAYLOAD (64u * 1024u)
#define AGENT_FRAME_MAX (AGENT_FRAME_HEADER_SIZE + AGENT_FRAME_MAX_PAYLOAD)
/* Unacknowledged stdio bytes a sender may have in flight per stream. */
#define AGENT_STDIO_WINDOW (256u * 1024u)
/* The most data bytes one STDOUT/STDERR/STDIN frame carries. */
#define AGENT_STDIO_CHUNK (32u * 1024u)
/* The container's process in `proc` fields; EXEC'd processes have other numbers. */
#define AGENT_PROC_CONTAINER 0u
/* EXEC'd processes alive at once, at most (the agent refuses more). */
#define AGENT_MAX_EXECS 32u
/* PS_REPLY: at most this many processes, each command line cut to AGENT_MAX_PS_CMD bytes. */
#define AGENT_MAX_PS_ENTRIES 1024u
#define AGENT_MAX_PS_CMD 256u

/* Limits the decoders enforce on CONFIG beyond the frame size. */
#define AGENT_MAX_STRING 4096u    /* one argument, variable, path, option */
#define AGENT_MAX_MESSAGE 1024u   /* ERROR's message */
#define AGENT_MAX_HOSTNAME 64u    /* HOST_NAME_MAX */
#define AGENT_MAX_GIDS 256u       /* additional groups */
#define AGENT_MAX_RLIMIT_TYPE 16u /* RLIM_NLIMITS on Linux */
#define AGENT_MAX_VOLUMES 8u
#define AGENT_MAX_MOUNTS 256u
#define AGENT_MAX_PATHS 256u /* masked paths, read-only paths */
#define AGENT_MAX_SYSCTLS 256u
#define AGENT_MAX_BPF_INSNS 4096u /* BPF_MAXINSNS */
/* linux.devices: each listed node costs the agent a mknod and a bind mount, and a real list
 * is a handful (fuse, tun, kvm, a GPU's few nodes); 256 leaves room for a generous one and
 * keeps the guest's mount table small. A privileged pod's copy of every host node is not
 * meant for a guest: those numbers name the host's devices. */
#define AGENT_MAX_DEVICES 256u
#define AGENT_MAX_DEVICE_PATH 1024u     /* bytes, "/dev/" included */
#define AGENT_MAX_DEVICE_MAJOR 0xfffu   /* the kernel's dev_t: 12 bits of major */
#define AGENT_MAX_DEVICE_MINOR 0xfffffu /* and 20 of minor */

/* Message types: guest->host in 0x01xx, host->guest in 0x02xx, so a frame travelling the
 * wrong way is refused by its type alone. */
enum agent_msg_type {
  AGENT_MSG_HELLO = 0x0101,            /* {u32 proto version, str agent version} */
  AGENT_MSG_CONFIGURED = 0x0102,       /* {} ready, waiting for START */
  AGENT_MSG_ERROR = 0x0103,            /* {u32 stage, i32 errno, str message} */
  AGENT_MSG_STARTED = 0x0104,          /* {u32 guest pid} */
  AGENT_MSG_STDOUT = 0x0105,           /* {u32 proc, bytes (the rest of the payload)} */
  AGENT_MSG_STDERR = 0x0106,           /* {u32 proc, bytes} */
  AGENT_MSG_EXIT = 0x0107,             /* {u32 proc, u32 kind, u32 value} */
  AGENT_MSG_STDIN_CREDIT = 0x0108,     /* {u32 proc, u32 stdin bytes written to the process} */
  AGENT_MSG_EXEC_STARTED = 0x0109,     /* {u32 proc, u32 guest pid} */
  AGENT_MSG_EXEC_ERROR = 0x010a,       /* {u32 proc, u32 stage, i32 errno, str message} */
  AGENT_MSG_PS_REPLY = 0x010b,         /* see agent_ps_reply */
  AGENT_MSG_STATS_REPLY = 0x010c,      /* see agent_stats */
  AGENT_MSG_PIDS_LIMIT_REPLY = 0x010d, /* see agent_pids_limit_reply */

  AGENT_MSG_CONFIG = 0x0201,        /* see agent_config */
  AGENT_MSG_START = 0x0202,         /* {} */
  AGENT_MSG_STDIN = 0x0203,         /* {u32 proc, bytes} */
  AGENT_MSG_STDIN_EOF = 0x0204,     /* {u32 proc} */
  AGENT_MSG_SIGNAL = 0x0205,        /* {u32 proc, u32 signo} */
  AGENT_MSG_WINSIZE = 0x0206,       /* {u32 proc, u16 rows, u16 cols} */
  AGENT_MSG_OUTPUT_CREDIT = 0x0207, /* {u32 proc, u32 stdout bytes, u32 stderr bytes} */
  AGENT_MSG_EXEC = 0x0208,          /* see agent_exec */
  AGENT_MSG_PS = 0x0209,            /* {u32 request} */
  AGENT_MSG_NETWORK = 0x0210,       /* see agent_network; before CONFIG, only with a NIC */
  AGENT_MSG_STATS = 0x0211,         /* {u32 request}: the guest's cpu and memory, for events */
  AGENT_MSG_PIDS_LIMIT = 0x0212,    /* {u32 request, u64 limit}: see agent_encode_pids_limit */
};

/* Is the type one that may travel guest->host (true) or host->guest (false)? */
bool agent_msg_from_guest(uint16_t type);
bool agent_msg_from_host(uint16_t type);
/* "HELLO", "CONFIG", ...; "unknown" otherwise. */
const char *agent_msg_name(uint16_t type);

/* Where the agent failed (ERROR's stage). */
enum agent_stage {
  AGENT_STAGE_PROTOCOL = 1, /* a frame from the host broke the protocol */
  AGENT_STAGE_BOOT,         /* the agent's own mounts, the channel */
  AGENT_STAGE_CONFIG,       /* CONFIG failed validation */
  AGENT_STAGE_ROOTFS,       /* finding or mounting the root disk, the overlay */
  AGENT_STAGE_VOLUMES,      /* the extra disks */
  AGENT_STAGE_MOUNTS,       /* the OCI mounts */
  AGENT_STAGE_HOSTNAME,
  AGENT_STAGE_EXEC,         /* finding the executable, exec itself */
  AGENT_STAGE_PROCESS,      /* the process's setup: terminal, ids, rlimits, cwd */
  AGENT_STAGE_RELAY,        /* after START: the stdio relay */
  AGENT_STAGE_NETWORK = 32, /* the NIC: finding it, name, MTU, addresses, routes */
  AGENT_STAGE_SECURITY,     /* masked and read-only paths, sysctls, oom_score_adj, seccomp */
};
const char *agent_stage_name(uint32_t stage);

/* ---- Encoding ---------------------------------------------------------------------- */

/* One outgoing frame being built. Writes past the limit set `overflow` instead of
 * writing; agent_msg_end then fails, so encoders need no check per field. */
struct agent_msg {
  size_t len; /* header included */
  bool overflow;
  uint8_t bytes[AGENT_FRAME_MAX];
};

void agent_msg_begin(struct agent_msg *m, uint16_t type);
void agent_put_u8(struct agent_msg *m, uint8_t v);
void agent_put_u16(struct agent_msg *m, uint16_t v);
void agent_put_u32(struct agent_msg *m, uint32_t v);
void agent_put_u64(struct agent_msg *m, uint64_t v);
void agent_put_bytes(struct agent_msg *m, const void *data, size_t n);
void agent_put_str(struct agent_msg *m, const char *s); /* NULL encodes as "" */
/* Fills in the header's length; fails (the frame is unusable) if the payload overflowed. */
int agent_msg_end(struct agent_msg *m, struct rc_error *err);
/* Writes the whole frame to fd, waiting (poll) when fd is nonblocking and full. */
int agent_msg_write(int fd, const struct agent_msg *m, struct rc_error *err);

/* ---- Decoding ---------------------------------------------------------------------- */

/* A frame as the reader hands it out; payload points into the reader's buffer. */
struct agent_frame {
  uint16_t type;
  uint32_t length;
  const uint8_t *payload;
};

/* Checks a header (magic, version, length limit). */
int agent_header_decode(const uint8_t hdr[AGENT_FRAME_HEADER_SIZE], uint16_t *type,
                        uint32_t *length, struct rc_error *err);

/* A bounds-checked read position in a payload; a read past the end sets `bad` and yields
 * zeroes, so decoders check once at the end with agent_cursor_finish. */
struct agent_cursor {
  const uint8_t *p;
  size_t len, off;
  bool bad;
};

void agent_cursor_init(struct agent_cursor *c, const void *p, size_t len);
uint8_t agent_get_u8(struct agent_cursor *c);
uint16_t agent_get_u16(struct agent_cursor *c);
uint32_t agent_get_u32(struct agent_cursor *c);
uint64_t agent_get_u64(struct agent_cursor *c);
/* A heap copy of a string of at most max bytes; NULL (and bad) when it is longer, holds a
 * NUL, or runs past the end. */
char *agent_get_str(struct agent_cursor *c, size_t max);
/* A string into a fixed buffer (size includes the NUL); false when it does not fit. */
bool agent_get_str_into(struct agent_cursor *c, char *buf, size_t size);
/* Makes a string the guest wrote safe to log or show on a terminal: C0 controls, DEL, the
 * C1 controls (as UTF-8, c2 80..c2 9f, or as raw 8-bit bytes, which terminals honouring
 * 8-bit controls take as ESC sequences: 0x9b is CSI), bytes of no well-formed UTF-8
 * sequence, and each byte of a bidirectional control, U+2028/U+2029 or U+206A..U+206F
 * (the list and why: agent_proto.c) become '?'; other well-formed UTF-8 stays. */
void agent_make_printable(char *s);
/* Fails unless every read stayed in bounds and the payload was consumed exactly. */
int agent_cursor_finish(const struct agent_cursor *c, const char *what, struct rc_error *err);

/* ---- The incremental frame reader -------------------------------------------------- */

/* Collects bytes from a stream and cuts them into frames. Holds at most one maximal frame,
 * so a peer cannot make it grow. */
struct agent_reader {
  size_t len;      /* bytes held */
  size_t consumed; /* bytes of the frame handed out last, dropped on the next call */
  uint8_t buf[AGENT_FRAME_MAX];
};

void agent_reader_init(struct agent_reader *r);
/* Copies in as much of data as there is room for (compacting first); returns the count. */
size_t agent_reader_feed(struct agent_reader *r, const void *data, size_t n);
/* One read(2) from fd into the free space. *eof is set at end of stream; EAGAIN and EINTR
 * are not errors (nothing read). */
int agent_reader_fill(struct agent_reader *r, int fd, bool *eof, struct rc_error *err);
/* 1 and the next whole frame (its payload valid until the next call), 0 if more bytes are
 * needed, <0 on a protocol error (bad header): the stream is unusable after that. */
int agent_reader_next(struct agent_reader *r, struct agent_frame *f, struct rc_error *err);

/* ---- Messages ---------------------------------------------------------------------- */

struct agent_hello {
  uint32_t proto_version;
  char agent_version[64];
};

struct agent_error_msg {
  uint32_t stage;
  int32_t errnum;
  char message[AGENT_MAX_MESSAGE + 1];
};

enum agent_exit_kind { AGENT_EXIT_CODE = 0, AGENT_EXIT_SIGNAL = 1 };
struct agent_exit {
  uint32_t proc;
  uint32_t kind;  /* agent_exit_kind */
  uint32_t value; /* exit code 0..255, or signal 1..64 */
};
/* The status a shell would report: the code, or 128 + signal. */
int agent_exit_status(const struct agent_exit *e);

struct agent_output_credit {
  uint32_t proc;
  uint32_t stdout_bytes, stderr_bytes;
};

/* A STDOUT/STDERR/STDIN frame decoded: bytes points into the frame's payload (the one
 * exception to "decoders copy out": the data is written out or copied at once). */
struct agent_data {
  uint32_t proc;
  const uint8_t *bytes;
  uint32_t len;
};

struct agent_winsize {
  uint16_t rows, cols;
};

struct agent_rlimit {
  uint32_t type; /* RLIMIT_* */
  uint64_t soft, hard;
};

/* An OCI mount as the agent makes it inside the container's root. Bind sources are guest
 * paths: a volume's contents are under /run/volumes/<index>/ (AGENT_VOLUMES_DIR). */
struct agent_mount {
  char *destination; /* absolute, resolved inside the container root */
  char *type;        /* "proc", "tmpfs", "bind", ... ("" means bind when options say so) */
  char *source;
  char **options; /* NULL-terminated */
  uint32_t n_options;
};

/* A disk the guest mounts before the OCI mounts, read-only or not. */
struct agent_volume {
  char *device; /* "/dev/vdb", or "serial:NAME" (matched against /sys/block/vd* /serial) */
  char *fstype; /* "erofs", "ext4" */
  bool read_only;
};
#define AGENT_VOLUMES_DIR "/run/volumes"

/* A process's capability sets (bit n = capability n; an absent set is empty, as the OCI
 * spec says) and no_new_privs: the agent applies them as runc does on the host. */
struct agent_privileges {
  uint64_t bounding, effective, permitted, inheritable, ambient;
  bool no_new_privs;
};

/* What runc applies on top of the process's privileges (version 4). The seccomp filter is
 * compiled on the host (libseccomp, from linux.seccomp) and travels as the classic BPF
 * program the kernel takes; the agent loads it for the container's process and every
 * EXEC'd one, as runc does for its exec'd processes. */
#define AGENT_SECCOMP_FLAG_LOG 2u        /* SECCOMP_FILTER_FLAG_LOG */
#define AGENT_SECCOMP_FLAG_SPEC_ALLOW 4u /* SECCOMP_FILTER_FLAG_SPEC_ALLOW */
struct agent_security {
  char **masked_paths; /* NULL-terminated, absolute: /dev/null or an empty tmpfs over each */
  uint32_t n_masked_paths;
  char **readonly_paths; /* NULL-terminated, absolute: bound read-only onto themselves */
  uint32_t n_readonly_paths;
  char **sysctls; /* NULL-terminated "name=value", name dotted or slashed (net.ipv4.ip_forward) */
  uint32_t n_sysctls;
  bool has_oom_score_adj;
  int32_t oom_score_adj;    /* -1000..1000 */
  uint32_t seccomp_flags;   /* SECCOMP_FILTER_FLAG_LOG and _SPEC_ALLOW only */
  uint8_t *seccomp_bpf;     /* struct sock_filter[], seccomp_bpf_len bytes; NULL: no filter */
  uint32_t seccomp_bpf_len; /* a multiple of 8, at most AGENT_MAX_BPF_INSNS instructions */
};

/* A node of linux.devices (version 7), made by the agent on its own dev-allowed tmpfs and
 * bound onto `path` in the container, as the default nodes are. Its numbers name a device
 * of the guest kernel (10:229 is /dev/fuse wherever the kernel has FUSE). */
struct agent_device {
  char *path;            /* "/dev/..." normalized: no empty, "." or ".." component */
  uint8_t type;          /* the OCI letter: 'c', 'u' (the same as 'c'), 'b', 'p' (a FIFO) */
  uint32_t major, minor; /* within AGENT_MAX_DEVICE_MAJOR/MINOR; both 0 for a FIFO */
  uint32_t mode;         /* permission bits (07777), no file type */
  uint32_t uid, gid;     /* not (uint32_t)-1, which chown reads as "unchanged" */
};

struct agent_config {
  /* process */
  char **args; /* NULL-terminated, at least one */
  uint32_t n_args;
  char **env; /* NULL-terminated, each "NAME=value" */
  uint32_t n_env;
  char *cwd; /* absolute */
  uint32_t uid, gid;
  uint32_t *additional_gids;
  uint32_t n_additional_gids;
  bool has_umask;
  uint32_t umask; /* <= 0777 */
  struct agent_rlimit *rlimits;
  uint32_t n_rlimits;
  bool terminal;
  struct agent_winsize winsize; /* initial size when terminal */
  char *hostname;               /* "" leaves the guest's */
  /* root filesystem: the disk is mounted read-only with a tmpfs overlay on top (so the
   * mount points of the OCI mounts can be made); read_only remounts the result read-only */
  char *rootfs_device; /* as agent_volume.device */
  char *rootfs_fstype;
  bool rootfs_read_only;
  struct agent_volume *volumes;
  uint32_t n_volumes;
  struct agent_mount *mounts;
  uint32_t n_mounts;
  struct agent_privileges privileges;
  /* > 0: pids.max of the guest cgroup every process of the container (its own and exec'd
   * ones) runs in, as linux.resources.pids.limit is under runc; 0: no limit (the cgroup is
   * made all the same, with pids.max "max", for PIDS_LIMIT to change later) */
  uint64_t pids_limit;
  struct agent_security security;
  /* linux.devices; a path the default devices also have replaces the default node, as
   * under runc. No two share a path. */
  struct agent_device *devices;
  uint32_t n_devices;
};

void agent_encode_empty(struct agent_msg *m, uint16_t type);
void agent_encode_hello(struct agent_msg *m, const char *agent_version);
void agent_encode_error(struct agent_msg *m, uint32_t stage, int32_t errnum, const char *message);
void agent_encode_started(struct agent_msg *m, uint32_t pid);
/* STDOUT, STDERR or STDIN; n <= AGENT_FRAME_MAX_PAYLOAD - 4. */
void agent_encode_data(struct agent_msg *m, uint16_t type, uint32_t proc, const void *data,
                       size_t n);
void agent_encode_stdin_eof(struct agent_msg *m, uint32_t proc);
void agent_encode_exit(struct agent_msg *m, const struct agent_exit *e);
void agent_encode_stdin_credit(struct agent_msg *m, uint32_t proc, uint32_t bytes);
void agent_encode_output_credit(struct agent_msg *m, const struct agent_output_credit *c);
void agent_encode_signal(struct agent_msg *m, uint32_t proc, uint32_t signo);
void agent_encode_winsize(struct agent_msg *m, uint32_t proc, const struct agent_winsize *w);
/* Validates cfg first (agent_config_validate) and fails if it does not fit in a frame. */
int agent_encode_config(struct agent_msg *m, const struct agent_config *cfg, struct rc_error *err);

/* Each decoder checks the frame's type and that the payload decodes exactly. */
int agent_decode_empty(const struct agent_frame *f, uint16_t type, struct rc_error *err);
int agent_decode_hello(const struct agent_frame *f, struct agent_hello *out, struct rc_error *err);
int agent_decode_error(const struct agent_frame *f, struct agent_error_msg *out,
                       struct rc_error *err);
int agent_decode_started(const struct agent_frame *f, uint32_t *pid, struct rc_error *err);
/* STDOUT, STDERR or STDIN (the frame's own type; anything else fails). */
int agent_decode_data(const struct agent_frame *f, struct agent_data *out, struct rc_error *err);
int agent_decode_stdin_eof(const struct agent_frame *f, uint32_t *proc, struct rc_error *err);
int agent_decode_exit(const struct agent_frame *f, struct agent_exit *out, struct rc_error *err);
int agent_decode_stdin_credit(const struct agent_frame *f, uint32_t *proc, uint32_t *bytes,
                              struct rc_error *err);
int agent_decode_output_credit(const struct agent_frame *f, struct agent_output_credit *out,
                               struct rc_error *err);
int agent_decode_signal(const struct agent_frame *f, uint32_t *proc, uint32_t *signo,
                        struct rc_error *err);
int agent_decode_winsize(const struct agent_frame *f, uint32_t *proc, struct agent_winsize *out,
                         struct rc_error *err);
/* A heap agent_config (free with agent_config_free), validated. */
int agent_decode_config(const struct agent_frame *f, struct agent_config **out,
                        struct rc_error *err);

/* The checks both sides apply: args present, absolute cwd and destinations, "NAME=value"
 * environment, umask, rlimit types and soft <= hard, hostname length, device names; the
 * security settings' paths, sysctl names, oom_score_adj range, seccomp flags and size;
 * linux.devices' count, paths (normalized, under /dev, distinct), types, numbers, modes
 * and owners. */
int agent_config_validate(const struct agent_config *cfg, struct rc_error *err);
/* A sysctl entry's name as a path relative to /proc/sys (agent_security.sysctls); -1 if it
 * is not "name=value" with a name whose every component is a plain one. */
int agent_sysctl_path(const char *entry, char *out, size_t size);
void agent_config_free(struct agent_config *cfg);

/* ---- EXEC and PS: more processes in a running container ---------------------------- */

/* A process to start in the running container (runc exec's process): it joins the
 * container's process's mount namespace and root, keeps the container's rlimits and
 * umask, and gets its own stdio (a guest pty when terminal). */
struct agent_exec {
  struct agent_privileges privileges; /* the exec'd process's own (runc exec --cap adds) */
  uint32_t proc;                      /* the host's number for it: nonzero */
  char **args;                        /* NULL-terminated, at least one */
  uint32_t n_args;
  char **env; /* NULL-terminated, each "NAME=value" */
  uint32_t n_env;
  char *cwd; /* absolute */
  uint32_t uid, gid;
  uint32_t *additional_gids;
  uint32_t n_additional_gids;
  bool terminal;
  struct agent_winsize winsize; /* initial size when terminal */
  /* the process's own (runc exec applies the --process file's, else the container's) */
  struct agent_rlimit *rlimits;
  uint32_t n_rlimits;
  bool has_umask;
  uint32_t umask; /* <= 0777 */
};

/* args present, env "NAME=value", absolute cwd, groups count (proc is not checked: the
 * host fills it in). */
int agent_exec_validate(const struct agent_exec *e, struct rc_error *err);
/* Validates first; fails if it does not fit in a frame. */
int agent_encode_exec(struct agent_msg *m, const struct agent_exec *e, struct rc_error *err);
/* A heap agent_exec (free with agent_exec_free), validated. */
int agent_decode_exec(const struct agent_frame *f, struct agent_exec **out, struct rc_error *err);
void agent_exec_free(struct agent_exec *e);

void agent_encode_exec_started(struct agent_msg *m, uint32_t proc, uint32_t pid);
int agent_decode_exec_started(const struct agent_frame *f, uint32_t *proc, uint32_t *pid,
                              struct rc_error *err);
/* EXEC_ERROR: ERROR's fields for one process; message cut to AGENT_MAX_MESSAGE. */
void agent_encode_exec_error(struct agent_msg *m, uint32_t proc, uint32_t stage, int32_t errnum,
                             const char *message);
int agent_decode_exec_error(const struct agent_frame *f, uint32_t *proc,
                            struct agent_error_msg *out, struct rc_error *err);

void agent_encode_ps(struct agent_msg *m, uint32_t request);
int agent_decode_ps(const struct agent_frame *f, uint32_t *request, struct rc_error *err);

/* One guest process in PS_REPLY: what a ps table shows. Times are in clock ticks of the
 * guest (USER_HZ); the command line has its NULs as spaces, "[comm]" when it is empty. */
struct agent_ps_entry {
  uint32_t pid, ppid, uid;
  uint32_t tty_nr; /* /proc/PID/stat's tty_nr: 0 for none */
  uint64_t cpu_ticks;
  char cmd[AGENT_MAX_PS_CMD + 1];
};
/* {u32 request, u8 truncated, u32 count, count x {u32 pid, u32 ppid, u32 uid, u32 tty_nr,
 * u64 cpu_ticks, str cmd}}: the guest's processes but the agent and kernel threads. */
struct agent_ps_reply {
  uint32_t request;
  bool truncated; /* more processes than fit in a frame or AGENT_MAX_PS_ENTRIES */
  uint32_t n;
  struct agent_ps_entry *entries; /* heap, n of them (free with agent_ps_reply_free) */
};
/* Encodes the entries that fit in a frame, and sets truncated when some did not. */
void agent_encode_ps_reply(struct agent_msg *m, const struct agent_ps_reply *r);
int agent_decode_ps_reply(const struct agent_frame *f, struct agent_ps_reply *out,
                          struct rc_error *err);
void agent_ps_reply_free(struct agent_ps_reply *r);

/* ---- STATS: the guest's resource usage for `events --stats` -------------------------- */

/* {u32 request, u32 ncpus, u64 cpu_user_ns, u64 cpu_system_ns, u64 mem_total, u64 mem_free,
 * u64 mem_available, u64 mem_cached, u32 nprocs}: the whole guest's cpu time (from
 * /proc/stat, summed over its CPUs), memory in bytes (from /proc/meminfo) and process count
 * (the agent left out) — the guest is the container, so its totals are the container's. */
struct agent_stats {
  uint32_t request;
  uint32_t ncpus;
  uint64_t cpu_user_ns, cpu_system_ns;
  uint64_t mem_total, mem_free, mem_available, mem_cached;
  uint32_t nprocs;
  uint64_t pids_limit; /* the container's pids.max in the guest, 0: none */
};
void agent_encode_stats(struct agent_msg *m, uint32_t request);
int agent_decode_stats(const struct agent_frame *f, uint32_t *request, struct rc_error *err);
void agent_encode_stats_reply(struct agent_msg *m, const struct agent_stats *s);
/* Also checks the numbers hang together (free <= total, available <= total, cpus > 0). */
int agent_decode_stats_reply(const struct agent_frame *f, struct agent_stats *out,
                             struct rc_error *err);

/* ---- PIDS_LIMIT: `update --pids-limit` of a running container ------------------------ */

/* PIDS_LIMIT {u32 request, u64 limit}: the new pids.max of the guest cgroup the container's
 * processes run in; 0 lifts the limit ("max"). Any other number travels as it is: the
 * guest kernel is the judge of what pids.max takes (it refuses more than PID_MAX_LIMIT),
 * and its refusal comes back in the reply, as the host's cgroup write would fail. */
void agent_encode_pids_limit(struct agent_msg *m, uint32_t request, uint64_t limit);
int agent_decode_pids_limit(const struct agent_frame *f, uint32_t *request, uint64_t *limit,
                            struct rc_error *err);

/* PIDS_LIMIT_REPLY {u32 request, i32 errno, str message}: errno 0 and "" when pids.max took
 * the limit; else the guest's errno (1..4095) and its words. */
struct agent_pids_limit_reply {
  uint32_t request;
  int32_t errnum;
  char message[AGENT_MAX_MESSAGE + 1];
};
/* The message is cut to AGENT_MAX_MESSAGE bytes. */
void agent_encode_pids_limit_reply(struct agent_msg *m, const struct agent_pids_limit_reply *r);
/* Refuses an errno outside 0..4095 and a message with errno 0 (the reply then could not
 * say whether it failed); the message is made printable (it is shown to people). */
int agent_decode_pids_limit_reply(const struct agent_frame *f, struct agent_pids_limit_reply *out,
                                  struct rc_error *err);

/* ---- NETWORK: the container's interface as the guest must set it up ----------------- */

/* The guest's NIC mirrors the interface of the container's network namespace (the host
 * joins a tap to it): the agent finds the NIC by MAC, names it `ifname`, sets the MTU,
 * brings it up, adds the addresses and then the routes. Sent after HELLO and before
 * CONFIG, and only when the container has a NIC. Families are AGENT_NET_INET(6), not AF_*
 * (the wire does not depend on libc's numbers). */
#define AGENT_NET_INET 4
#define AGENT_NET_INET6 6
#define AGENT_MAX_NET_ADDRS 16u
#define AGENT_MAX_NET_ROUTES 32u
#define AGENT_NET_IFNAME_MAX 15u /* IFNAMSIZ - 1 */

struct agent_net_addr {
  uint8_t family;   /* AGENT_NET_INET or AGENT_NET_INET6 */
  uint8_t prefix;   /* <= 32 or <= 128 */
  uint8_t addr[16]; /* network byte order; an IPv4 address uses the first 4 bytes */
};

struct agent_net_route {
  uint8_t family;
  uint8_t dst_prefix; /* 0: the default route */
  bool has_gateway;   /* else a route on the link */
  uint8_t dst[16];
  uint8_t gateway[16];
  uint32_t metric; /* 0: the kernel's default */
};

struct agent_network {
  char ifname[AGENT_NET_IFNAME_MAX + 1];
  uint8_t mac[6]; /* unicast */
  uint32_t mtu;   /* 68..65535 */
  uint32_t n_addrs;
  struct agent_net_addr addrs[AGENT_MAX_NET_ADDRS];
  uint32_t n_routes;
  struct agent_net_route routes[AGENT_MAX_NET_ROUTES];
};

/* Name, MAC, MTU, families, prefixes, counts; the checks both sides apply. */
int agent_network_validate(const struct agent_network *net, struct rc_error *err);
/* Validates net first. */
int agent_encode_network(struct agent_msg *m, const struct agent_network *net,
                         struct rc_error *err);
/* Decodes exactly and validates. */
int agent_decode_network(const struct agent_frame *f, struct agent_network *out,
                         struct rc_error *err);

#endif
