/* The host<->agent protocol codec (include/runcell/agent_proto.h). Shared by the VMM
 * process and the static guest agent, so it uses libc only. Both ends treat the other as
 * hostile: every length is checked against what is left before anything is copied, and
 * counts are checked against the bytes that could hold them before anything is allocated. */
#include "runcell/agent_proto.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runcell/sysctl_path.h"
#include "runcell/utf8.h"

bool agent_msg_from_guest(uint16_t type) {
  return type >= AGENT_MSG_HELLO && type <= AGENT_MSG_PIDS_LIMIT_REPLY;
}

bool agent_msg_from_host(uint16_t type) {
  return (type >= AGENT_MSG_CONFIG && type <= AGENT_MSG_PS) ||
         (type >= AGENT_MSG_NETWORK && type <= AGENT_MSG_PIDS_LIMIT);
}

const char *agent_msg_name(uint16_t type) {
  switch (type) {
    case AGENT_MSG_HELLO:
      return "HELLO";
    case AGENT_MSG_CONFIGURED:
      return "CONFIGURED";
    case AGENT_MSG_ERROR:
      return "ERROR";
    case AGENT_MSG_STARTED:
      return "STARTED";
    case AGENT_MSG_STDOUT:
      return "STDOUT";
    case AGENT_MSG_STDERR:
      return "STDERR";
    case AGENT_MSG_EXIT:
      return "EXIT";
    case AGENT_MSG_STDIN_CREDIT:
      return "STDIN_CREDIT";
    case AGENT_MSG_EXEC_STARTED:
      return "EXEC_STARTED";
    case AGENT_MSG_EXEC_ERROR:
      return "EXEC_ERROR";
    case AGENT_MSG_PS_REPLY:
      return "PS_REPLY";
    case AGENT_MSG_EXEC:
      return "EXEC";
    case AGENT_MSG_PS:
      return "PS";
    case AGENT_MSG_CONFIG:
      return "CONFIG";
    case AGENT_MSG_START:
      return "START";
    case AGENT_MSG_STDIN:
      return "STDIN";
    case AGENT_MSG_STDIN_EOF:
      return "STDIN_EOF";
    case AGENT_MSG_SIGNAL:
      return "SIGNAL";
    case AGENT_MSG_WINSIZE:
      return "WINSIZE";
    case AGENT_MSG_OUTPUT_CREDIT:
      return "OUTPUT_CREDIT";
    case AGENT_MSG_NETWORK:
      return "NETWORK";
    case AGENT_MSG_STATS:
      return "STATS";
    case AGENT_MSG_STATS_REPLY:
      return "STATS_REPLY";
    case AGENT_MSG_PIDS_LIMIT:
      return "PIDS_LIMIT";
    case AGENT_MSG_PIDS_LIMIT_REPLY:
      return "PIDS_LIMIT_REPLY";
    default:
      return "unknown";
  }
}

const char *agent_stage_name(uint32_t stage) {
  switch (stage) {
    case AGENT_STAGE_PROTOCOL:
      return "protocol";
    case AGENT_STAGE_BOOT:
      return "agent boot";
    case AGENT_STAGE_CONFIG:
      return "config";
    case AGENT_STAGE_ROOTFS:
      return "rootfs";
    case AGENT_STAGE_VOLUMES:
      return "volumes";
    case AGENT_STAGE_MOUNTS:
      return "mounts";
    case AGENT_STAGE_HOSTNAME:
      return "hostname";
    case AGENT_STAGE_EXEC:
      return "exec";
    case AGENT_STAGE_PROCESS:
      return "process setup";
    case AGENT_STAGE_RELAY:
      return "stdio relay";
    case AGENT_STAGE_NETWORK:
      return "network";
    case AGENT_STAGE_SECURITY:
      return "security settings";
    default:
      return "unknown stage";
  }
}

/* ---- Encoding ---------------------------------------------------------------------- */

static void put_le(uint8_t *p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

void agent_msg_begin(struct agent_msg *m, uint16_t type) {
  put_le(m->bytes, AGENT_PROTO_MAGIC, 4);
  put_le(m->bytes + 4, AGENT_PROTO_VERSION, 2);
  put_le(m->bytes + 6, type, 2);
  put_le(m->bytes + 8, 0, 4);
  m->len = AGENT_FRAME_HEADER_SIZE;
  m->overflow = false;
}

static uint8_t *reserve(struct agent_msg *m, size_t n) {
  if (m->overflow || n > sizeof(m->bytes) - m->len) {
    m->overflow = true;
    return NULL;
  }
  uint8_t *p = m->bytes + m->len;
  m->len += n;
  return p;
}

static void put_int(struct agent_msg *m, uint64_t v, size_t n) {
  uint8_t *p = reserve(m, n);
  if (p) put_le(p, v, n);
}

void agent_put_u8(struct agent_msg *m, uint8_t v) {
  put_int(m, v, 1);
}
void agent_put_u16(struct agent_msg *m, uint16_t v) {
  put_int(m, v, 2);
}
void agent_put_u32(struct agent_msg *m, uint32_t v) {
  put_int(m, v, 4);
}
void agent_put_u64(struct agent_msg *m, uint64_t v) {
  put_int(m, v, 8);
}

void agent_put_bytes(struct agent_msg *m, const void *data, size_t n) {
  uint8_t *p = reserve(m, n);
  if (p && n && data) memcpy(p, data, n);
}

void agent_put_str(struct agent_msg *m, const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n > UINT32_MAX) {
    m->overflow = true;
    return;
  }
  agent_put_u32(m, (uint32_t)n);
  agent_put_bytes(m, s, n);
}

int agent_msg_end(struct agent_msg *m, struct rc_error *err) {
  uint16_t type = (uint16_t)get_le(m->bytes + 6, 2);
  if (m->overflow)
    return rc_err(err, EMSGSIZE, "agent protocol: %s message larger than the %u-byte frame limit",
                  agent_msg_name(type), AGENT_FRAME_MAX_PAYLOAD);
  put_le(m->bytes + 8, m->len - AGENT_FRAME_HEADER_SIZE, 4);
  return 0;
}

int agent_msg_write(int fd, const struct agent_msg *m, struct rc_error *err) {
  size_t off = 0;
  while (off < m->len) {
    ssize_t n = write(fd, m->bytes + off, m->len - off);
    if (n > 0) {
      off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      if (poll(&p, 1, -1) < 0 && errno != EINTR) return rc_err(err, errno, "agent channel: poll");
      continue;
    }
    return rc_err(err, n < 0 ? errno : EIO, "agent channel: write %s",
                  agent_msg_name((uint16_t)get_le(m->bytes + 6, 2)));
  }
  return 0;
}

/* ---- Decoding ---------------------------------------------------------------------- */

int agent_header_decode(const uint8_t hdr[AGENT_FRAME_HEADER_SIZE], uint16_t *type,
                        uint32_t *length, struct rc_error *err) {
  uint32_t magic = (uint32_t)get_le(hdr, 4);
  uint16_t version = (uint16_t)get_le(hdr + 4, 2);
  if (magic != AGENT_PROTO_MAGIC)
    return rc_err(err, EPROTO, "agent protocol: bad frame magic 0x%08x", magic);
  if (version != AGENT_PROTO_VERSION)
    return rc_err(err, EPROTO, "agent protocol: version %u, expected %u", version,
                  AGENT_PROTO_VERSION);
  *type = (uint16_t)get_le(hdr + 6, 2);
  *length = (uint32_t)get_le(hdr + 8, 4);
  if (*length > AGENT_FRAME_MAX_PAYLOAD)
    return rc_err(err, EMSGSIZE, "agent protocol: %s frame of %u bytes (limit %u)",
                  agent_msg_name(*type), *length, AGENT_FRAME_MAX_PAYLOAD);
  return 0;
}

void agent_cursor_init(struct agent_cursor *c, const void *p, size_t len) {
  c->p = p;
  c->len = len;
  c->off = 0;
  c->bad = false;
}

static const uint8_t *take(struct agent_cursor *c, size_t n) {
  if (c->bad || n > c->len - c->off) {
    c->bad = true;
    return NULL;
  }
  const uint8_t *p = c->p + c->off;
  c->off += n;
  return p;
}

static uint64_t get_int(struct agent_cursor *c, size_t n) {
  const uint8_t *p = take(c, n);
  return p ? get_le(p, n) : 0;
}

uint8_t agent_get_u8(struct agent_cursor *c) {
  return (uint8_t)get_int(c, 1);
}
uint16_t agent_get_u16(struct agent_cursor *c) {
  return (uint16_t)get_int(c, 2);
}
uint32_t agent_get_u32(struct agent_cursor *c) {
  return (uint32_t)get_int(c, 4);
}
uint64_t agent_get_u64(struct agent_cursor *c) {
  return get_int(c, 8);
}

/* The bytes of the next string, checked: at most max, no NUL inside. */
static const uint8_t *get_str_bytes(struct agent_cursor *c, size_t max, size_t *n) {
  uint32_t len = agent_get_u32(c);
  if (c->bad) return NULL;
  if (len > max) {
    c->bad = true;
    return NULL;
  }
  const uint8_t *p = take(c, len);
  if (!p) return NULL;
  if (len && memchr(p, '\0', len)) {
    c->bad = true;
    return NULL;
  }
  *n = len;
  return p;
}

char *agent_get_str(struct agent_cursor *c, size_t max) {
  size_t n = 0;
  const uint8_t *p = get_str_bytes(c, max, &n);
  if (!p) return NULL;
  char *s = malloc(n + 1);
  if (!s) {
    c->bad = true;
    return NULL;
  }
  memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

bool agent_get_str_into(struct agent_cursor *c, char *buf, size_t size) {
  size_t n = 0;
  if (size == 0) return false; /* not even room for the NUL: buf[0] is not ours */
  buf[0] = '\0';
  const uint8_t *p = get_str_bytes(c, size - 1, &n);
  if (!p) return false;
  memcpy(buf, p, n);
  buf[n] = '\0';
  return true;
}

int agent_cursor_finish(const struct agent_cursor *c, const char *what, struct rc_error *err) {
  if (c->bad) return rc_err(err, EPROTO, "agent protocol: malformed %s message", what);
  if (c->off != c->len)
    return rc_err(err, EPROTO, "agent protocol: %zu stray bytes after a %s message",
                  c->len - c->off, what);
  return 0;
}

/* ---- The incremental frame reader -------------------------------------------------- */

void agent_reader_init(struct agent_reader *r) {
  r->len = 0;
  r->consumed = 0;
}

/* Drops the frame handed out last, moving what follows it to the front. */
static void reader_compact(struct agent_reader *r) {
  if (r->consumed == 0) return;
  memmove(r->buf, r->buf + r->consumed, r->len - r->consumed);
  r->len -= r->consumed;
  r->consumed = 0;
}

size_t agent_reader_feed(struct agent_reader *r, const void *data, size_t n) {
  reader_compact(r);
  size_t room = sizeof(r->buf) - r->len;
  if (n > room) n = room;
  if (n) memcpy(r->buf + r->len, data, n);
  r->len += n;
  return n;
}

int agent_reader_fill(struct agent_reader *r, int fd, bool *eof, struct rc_error *err) {
  *eof = false;
  reader_compact(r);
  size_t room = sizeof(r->buf) - r->len;
  if (room == 0) return 0; /* a whole frame is waiting; agent_reader_next makes room */
  ssize_t n = read(fd, r->buf + r->len, room);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return 0;
    return rc_err(err, errno, "agent channel: read");
  }
  if (n == 0) *eof = true;
  r->len += (size_t)n;
  return 0;
}

int agent_reader_next(struct agent_reader *r, struct agent_frame *f, struct rc_error *err) {
  reader_compact(r);
  if (r->len < AGENT_FRAME_HEADER_SIZE) return 0;
  uint16_t type = 0;
  uint32_t length = 0;
  if (agent_header_decode(r->buf, &type, &length, err) < 0) return -1;
  /* length <= AGENT_FRAME_MAX_PAYLOAD, so the frame always fits in buf */
  if (r->len - AGENT_FRAME_HEADER_SIZE < length) return 0;
  f->type = type;
  f->length = length;
  f->payload = r->buf + AGENT_FRAME_HEADER_SIZE;
  r->consumed = AGENT_FRAME_HEADER_SIZE + (size_t)length;
  return 1;
}

/* ---- Messages ---------------------------------------------------------------------- */

static void sanitize_error(struct agent_error_msg *e);

int agent_exit_status(const struct agent_exit *e) {
  if (e->kind == AGENT_EXIT_SIGNAL) return 128 + (int)e->value;
  return (int)e->value;
}

void agent_encode_empty(struct agent_msg *m, uint16_t type) {
  agent_msg_begin(m, type);
}

void agent_encode_hello(struct agent_msg *m, const char *agent_version) {
  agent_msg_begin(m, AGENT_MSG_HELLO);
  agent_put_u32(m, AGENT_PROTO_VERSION);
  agent_put_str(m, agent_version);
}

void agent_encode_error(struct agent_msg *m, uint32_t stage, int32_t errnum, const char *message) {
  agent_msg_begin(m, AGENT_MSG_ERROR);
  agent_put_u32(m, stage);
  agent_put_u32(m, (uint32_t)errnum);
  /* cut an overlong message rather than lose the error */
  size_t n = message ? strnlen(message, AGENT_MAX_MESSAGE) : 0;
  agent_put_u32(m, (uint32_t)n);
  agent_put_bytes(m, message, n);
}

void agent_encode_started(struct agent_msg *m, uint32_t pid) {
  agent_msg_begin(m, AGENT_MSG_STARTED);
  agent_put_u32(m, pid);
}

void agent_encode_data(struct agent_msg *m, uint16_t type, uint32_t proc, const void *data,
                       size_t n) {
  agent_msg_begin(m, type);
  agent_put_u32(m, proc);
  agent_put_bytes(m, data, n);
}

void agent_encode_stdin_eof(struct agent_msg *m, uint32_t proc) {
  agent_msg_begin(m, AGENT_MSG_STDIN_EOF);
  agent_put_u32(m, proc);
}

void agent_encode_exit(struct agent_msg *m, const struct agent_exit *e) {
  agent_msg_begin(m, AGENT_MSG_EXIT);
  agent_put_u32(m, e->proc);
  agent_put_u32(m, e->kind);
  agent_put_u32(m, e->value);
}

void agent_encode_stdin_credit(struct agent_msg *m, uint32_t proc, uint32_t bytes) {
  agent_msg_begin(m, AGENT_MSG_STDIN_CREDIT);
  agent_put_u32(m, proc);
  agent_put_u32(m, bytes);
}

void agent_encode_output_credit(struct agent_msg *m, const struct agent_output_credit *c) {
  agent_msg_begin(m, AGENT_MSG_OUTPUT_CREDIT);
  agent_put_u32(m, c->proc);
  agent_put_u32(m, c->stdout_bytes);
  agent_put_u32(m, c->stderr_bytes);
}

void agent_encode_signal(struct agent_msg *m, uint32_t proc, uint32_t signo) {
  agent_msg_begin(m, AGENT_MSG_SIGNAL);
  agent_put_u32(m, proc);
  agent_put_u32(m, signo);
}

void agent_encode_winsize(struct agent_msg *m, uint32_t proc, const struct agent_winsize *w) {
  agent_msg_begin(m, AGENT_MSG_WINSIZE);
  agent_put_u32(m, proc);
  agent_put_u16(m, w->rows);
  agent_put_u16(m, w->cols);
}

static void put_privileges(struct agent_msg *m, const struct agent_privileges *p) {
  agent_put_u64(m, p->bounding);
  agent_put_u64(m, p->effective);
  agent_put_u64(m, p->permitted);
  agent_put_u64(m, p->inheritable);
  agent_put_u64(m, p->ambient);
  agent_put_u8(m, p->no_new_privs);
}

static void put_str_array(struct agent_msg *m, char *const *v, uint32_t n) {
  agent_put_u32(m, n);
  for (uint32_t i = 0; i < n; i++) agent_put_str(m, v[i]);
}

static void put_rlimits(struct agent_msg *m, const struct agent_rlimit *r, uint32_t n) {
  agent_put_u32(m, n);
  for (uint32_t i = 0; i < n; i++) {
    agent_put_u32(m, r[i].type);
    agent_put_u64(m, r[i].soft);
    agent_put_u64(m, r[i].hard);
  }
}

static void put_volume(struct agent_msg *m, const struct agent_volume *v) {
  agent_put_str(m, v->device);
  agent_put_str(m, v->fstype);
  agent_put_u8(m, v->read_only);
}

int agent_encode_config(struct agent_msg *m, const struct agent_config *cfg, struct rc_error *err) {
  if (agent_config_validate(cfg, err) < 0) return -1;
  agent_msg_begin(m, AGENT_MSG_CONFIG);
  put_str_array(m, cfg->args, cfg->n_args);
  put_str_array(m, cfg->env, cfg->n_env);
  agent_put_str(m, cfg->cwd);
  agent_put_u32(m, cfg->uid);
  agent_put_u32(m, cfg->gid);
  agent_put_u32(m, cfg->n_additional_gids);
  for (uint32_t i = 0; i < cfg->n_additional_gids; i++) agent_put_u32(m, cfg->additional_gids[i]);
  agent_put_u8(m, cfg->has_umask);
  agent_put_u32(m, cfg->umask);
  put_rlimits(m, cfg->rlimits, cfg->n_rlimits);
  agent_put_u8(m, cfg->terminal);
  agent_put_u16(m, cfg->winsize.rows);
  agent_put_u16(m, cfg->winsize.cols);
  agent_put_str(m, cfg->hostname);
  struct agent_volume root = {cfg->rootfs_device, cfg->rootfs_fstype, cfg->rootfs_read_only};
  put_volume(m, &root);
  agent_put_u32(m, cfg->n_volumes);
  for (uint32_t i = 0; i < cfg->n_volumes; i++) put_volume(m, &cfg->volumes[i]);
  agent_put_u32(m, cfg->n_mounts);
  for (uint32_t i = 0; i < cfg->n_mounts; i++) {
    const struct agent_mount *mt = &cfg->mounts[i];
    agent_put_str(m, mt->destination);
    agent_put_str(m, mt->type);
    agent_put_str(m, mt->source);
    put_str_array(m, mt->options, mt->n_options);
  }
  put_privileges(m, &cfg->privileges);
  agent_put_u64(m, cfg->pids_limit);
  const struct agent_security *sec = &cfg->security;
  put_str_array(m, sec->masked_paths, sec->n_masked_paths);
  put_str_array(m, sec->readonly_paths, sec->n_readonly_paths);
  put_str_array(m, sec->sysctls, sec->n_sysctls);
  agent_put_u8(m, sec->has_oom_score_adj);
  agent_put_u32(m, (uint32_t)sec->oom_score_adj);
  agent_put_u32(m, sec->seccomp_flags);
  agent_put_u32(m, sec->seccomp_bpf ? sec->seccomp_bpf_len : 0);
  if (sec->seccomp_bpf) agent_put_bytes(m, sec->seccomp_bpf, sec->seccomp_bpf_len);
  agent_put_u32(m, cfg->n_devices);
  for (uint32_t i = 0; i < cfg->n_devices; i++) {
    const struct agent_device *d = &cfg->devices[i];
    agent_put_str(m, d->path);
    agent_put_u8(m, d->type);
    agent_put_u32(m, d->major);
    agent_put_u32(m, d->minor);
    agent_put_u32(m, d->mode);
    agent_put_u32(m, d->uid);
    agent_put_u32(m, d->gid);
  }
  if (agent_msg_end(m, err) < 0) return rc_err_wrap(err, "container config");
  return 0;
}

static int expect_type(const struct agent_frame *f, uint16_t type, struct rc_error *err) {
  if (f->type != type)
    return rc_err(err, EPROTO, "agent protocol: expected %s, got %s (0x%04x)", agent_msg_name(type),
                  agent_msg_name(f->type), f->type);
  return 0;
}

int agent_decode_empty(const struct agent_frame *f, uint16_t type, struct rc_error *err) {
  if (expect_type(f, type, err) < 0) return -1;
  struct agent_cursor c;
  agent_cursor_init(&c, f->payload, f->length);
  return agent_cursor_finish(&c, agent_msg_name(type), err);
}

int agent_decode_hello(const struct agent_frame *f, struct agent_hello *out, struct rc_error *err) {
  if (expect_type(f, AGENT_MSG_HELLO, err) < 0) return -1;
  struct agent_cursor c;
  agent_cursor_init(&c, f->payload, f->length);
  out->proto_version = agent_get_u32(&c);
  agent_get_str_into(&c, out->agent_version, sizeof(out->agent_version));
  if (agent_cursor_finish(&c, "HELLO", err) < 0) return -1;
  agent_make_printable(out->agent_version); /* it goes into the runtime's log */
  if (out->proto_version != AGENT_PROTO_VERSION)
    return rc_err(err, EPROTO, "agent speaks protocol %u, expected %u", out->proto_version,
                  AGENT_PROTO_VERSION);
  return 0;
}

int agent_decode_error(const struct agent_frame *f, struct agent_error_msg *out,
                       struct rc_error *err) {
  if (expect_type(f, AGENT_MSG_ERROR, err) < 0) return -1;
  struct agent_cursor c;
  agent_cursor_init(&c, f->payload, f->length);
  out->stage = agent_get_u32(&c);
  out->errnum = (int32_t)agent_get_u32(&c);
  agent_get_str_into(&c, out->message, sizeof(out->message));
  if (agent_cursor_finish(&c, "ERROR", err) < 0) return -1;
  sanitize_error(out); /* the message is shown to people */
  return 0;
}

static int decode_u32(const struct agent_frame *f, uint16_t type, uint32_t *v,
                      struct rc_error *err) {
  if (expect_type(f, type, err) < 0) return -1;
  struct agent_cursor c;
  agent_cursor_init(&c, f->payload, f->length);
  *v = agent_get_u32(&c);
  return agent_cursor_finish(&c, agent_msg_name(type), err);
}

int agent_decode_started(const struct agent_frame *f, uint32_t *pid, struct rc_error *err) {
  if (decode_u32(f, AGENT_MSG_STARTED, pid, err) < 0) return -1;
  if (*pid == 0 || *pid > (1u << 22)) /* PID_MAX_LIMIT */
    return rc_err(err, EPROTO, "agent protocol: STARTED with pid %u", *pid);
  return 0;
}

int agent_decode_data(const struct agent_frame *f, struct agent_data *out, struct rc_error *err) {
  if (f->type != AGENT_MSG_STDOUT && f->type != AGENT_MSG_STDERR && f->type != AGENT_MSG_STDIN)
    return rc_err(err, EPROTO, "agent protocol: expected stdio data, got %s (0x%04x)",
                  agent_msg_name(f->type), f->type);
  if (f->length < 4)
    return rc_err(err, EPROTO, "agent protocol: malformed %s message", agent_msg_name(f->type));
  out->proc = (uint32_t)get_le(f->payload, 4);
  out->bytes = f->payload + 4;
  out->len = f->length - 4;
  return 0;
}

int agent_decode_stdin_eof(const struct agent_frame *f, uint32_t *proc, struct rc_error *err) {
  return decode_u32(f, AGENT_MSG_STDIN_EOF, proc, err);
}

int agent_decode_exit(const struct agent_frame *f, struct agent_exit *out, struct rc_error *err) {
  if (expect_type(f, AGENT_MSG_EXIT, err) < 0) return -1;
  struct agent_cursor c;
  agent_cursor_init(&c, f->payload, f->length);
  out->proc = agent_get_u32(&c);
  out->kind = agent_get_u32(&c);
  out->value = agent_get_u32(&c);
  if (agent_cursor_finish(&c, "EXIT", err) < 0) return -1;
  if (out->kind == AGENT_EXIT_CODE && out->value <= 255) return 0;
  if (out->kind == AGENT_EXIT_SIGNAL && out->value >= 1 && out->value <= 64) return 0;
  return rc_err(err, EPROTO, "agent protocol: EXIT with kind %u value %u", out->kind, out->value);
}

/* A {u32, u32} payload. */
static int decode_u32_pair(const struct agent_frame *f, uint16_t type, uint32_t *a, uint32_t *b,
                           struct rc_error *err) {
  if (expect_type(f, type, err) < 0) return -1;
  struct agent_cursor c;
  agent_cursor_init(&c, f->payload, f->length);
  *a = agent_get_u32(&c);
  *b = agent_get_u32(&c);
  return agent_cursor_finish(&c, agent_msg_name(type), err);
}

int agent_decode_stdin_credit(const struct agent_frame *f, uint32_t *proc, uint32_t *bytes,
                              struct rc_error *err) {
  if (decode_u32_pair(f, AGENT_MSG_STDIN_CREDIT, proc, bytes, err) < 0) return -1;
  if (*bytes > AGENT_STDIO_WINDOW)
    return rc_err(err, EPROTO, "agent protocol: credit of %u bytes exceeds the window", *bytes);
  return 0;
}

int agent_decode_output_credit(const struct agent_frame *f, struct agent_output_credit *out,
                               struct rc_error *err) {
  if (expect_type(f, AGENT_MSG_OUTPUT_CREDIT, err) < 0) return -1;
  struct agent_cursor c;
  agent_cursor_init(&c, f->payload, f->length);
  out->proc = agent_get_u32(&c);
  out->stdout_bytes = agent_get_u32(&c);
  out->stderr_bytes = agent_get_u32(&c);
  if (agent_cursor_finish(&c, "OUTPUT_CREDIT", err) < 0) return -1;
  if (out->stdout_bytes > AGENT_STDIO_WINDOW || out->stderr_bytes > AGENT_STDIO_WINDOW)
    return rc_err(err, EPROTO, "agent protocol: credit exceeds the window");
  return 0;
}

int agent_decode_signal(const struct agent_frame *f, uint32_t *proc, uint32_t *signo,
                        struct rc_error *err) {
  if (decode_u32_pair(f, AGENT_MSG_SIGNAL, proc, signo, err) < 0) return -1;
  if (*signo < 1 || *signo > 64)
    return rc_err(err, EPROTO, "agent protocol: SIGNAL %u is not a signal", *signo);
  return 0;
}

int agent_decode_winsize(const struct agent_frame *f, uint32_t *proc, struct agent_winsize *out,
                         struct rc_error *err) {
  if (expect_type(f, AGENT_MSG_WINSIZE, err) < 0) return -1;
  struct agent_cursor c;
  agent_cursor_init(&c, f->payload, f->length);
  *proc = agent_get_u32(&c);
  out->rows = agent_get_u16(&c);
  out->cols = agent_get_u16(&c);
  return agent_cursor_finish(&c, "WINSIZE", err);
}

/* A count of items each at least min_item bytes long must fit in what is left, and in
 * max; this keeps a hostile count from driving a huge allocation. */
static uint32_t get_count(struct agent_cursor *c, size_t min_item, uint32_t max) {
  uint32_t n = agent_get_u32(c);
  if (c->bad) return 0;
  if (n > max || (size_t)n > (c->len - c->off) / min_item) {
    c->bad = true;
    return 0;
  }
  return n;
}

static char **get_str_array(struct agent_cursor *c, uint32_t max, uint32_t *count) {
  uint32_t n = get_count(c, 4, max);
  *count = 0;
  if (c->bad) return NULL;
  char **v = calloc((size_t)n + 1, sizeof(*v));
  if (!v) {
    c->bad = true;
    return NULL;
  }
  for (uint32_t i = 0; i < n && !c->bad; i++) {
    v[i] = agent_get_str(c, AGENT_MAX_STRING);
    if (v[i]) *count = i + 1;
  }
  return v;
}

static void free_str_array(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

static void get_volume(struct agent_cursor *c, struct agent_volume *v) {
  v->device = agent_get_str(c, AGENT_MAX_STRING);
  v->fstype = agent_get_str(c, AGENT_MAX_STRING);
  uint8_t ro = agent_get_u8(c);
  if (ro > 1) c->bad = true;
  v->read_only = ro != 0;
}

static bool get_bool(struct agent_cursor *c) {
  uint8_t b = agent_get_u8(c);
  if (b > 1) c->bad = true;
  return b != 0;
}

/* The rlimits array (heap, one spare entry); false when the cursor went bad. */
static bool get_rlimits(struct agent_cursor *c, struct agent_rlimit **out, uint32_t *n_out) {
  uint32_t n = get_count(c, 20, AGENT_MAX_RLIMIT_TYPE);
  if (c->bad) return false;
  struct agent_rlimit *r = calloc((size_t)n + 1, sizeof(*r));
  if (!r) {
    c->bad = true;
    return false;
  }
  *out = r;
  *n_out = n;
  for (uint32_t i = 0; i < n; i++) {
    r[i].type = agent_get_u32(c);
    r[i].soft = agent_get_u64(c);
    r[i].hard = agent_get_u64(c);
  }
  return !c->bad;
}

static void get_privileges(struct agent_cursor *c, struct agent_privileges *p) {
  p->bounding = agent_get_u64(c);
  p->effective = agent_get_u64(c);
  p->permitted = agent_get_u64(c);
  p->inheritable = agent_get_u64(c);
  p->ambient = agent_get_u64(c);
  p->no_new_privs = get_bool(c);
}

/* linux.devices: {str path, u8 type, u32 major, u32 minor, u32 mode, u32 uid, u32 gid}
 * each, so at least 25 bytes. */
static void get_devices(struct agent_cursor *c, struct agent_config *cfg) {
  uint32_t n = get_count(c, 25, AGENT_MAX_DEVICES);
  if (c->bad) return;
  cfg->devices = calloc((size_t)n + 1, sizeof(*cfg->devices));
  if (!cfg->devices) {
    c->bad = true;
    return;
  }
  for (uint32_t i = 0; i < n && !c->bad; i++) {
    struct agent_device *d = &cfg->devices[i];
    cfg->n_devices = i + 1;
    d->path = agent_get_str(c, AGENT_MAX_DEVICE_PATH);
    d->type = agent_get_u8(c);
    d->major = agent_get_u32(c);
    d->minor = agent_get_u32(c);
    d->mode = agent_get_u32(c);
    d->uid = agent_get_u32(c);
    d->gid = agent_get_u32(c);
  }
}

/* Decodes into cfg (already zeroed); frees nothing on failure (the caller does). */
static void decode_config_fields(struct agent_cursor *c, struct agent_config *cfg) {
  cfg->args = get_str_array(c, 65536, &cfg->n_args);
  cfg->env = get_str_array(c, 65536, &cfg->n_env);
  cfg->cwd = agent_get_str(c, AGENT_MAX_STRING);
  cfg->uid = agent_get_u32(c);
  cfg->gid = agent_get_u32(c);
  uint32_t n = get_count(c, 4, AGENT_MAX_GIDS);
  if (c->bad) return;
  cfg->additional_gids = calloc((size_t)n + 1, sizeof(uint32_t));
  if (!cfg->additional_gids) {
    c->bad = true;
    return;
  }
  cfg->n_additional_gids = n;
  for (uint32_t i = 0; i < n; i++) cfg->additional_gids[i] = agent_get_u32(c);
  cfg->has_umask = get_bool(c);
  cfg->umask = agent_get_u32(c);
  if (!get_rlimits(c, &cfg->rlimits, &cfg->n_rlimits)) return;
  cfg->terminal = get_bool(c);
  cfg->winsize.rows = agent_get_u16(c);
  cfg->winsize.cols = agent_get_u16(c);
  cfg->hostname = agent_get_str(c, AGENT_MAX_HOSTNAME);
  struct agent_volume root = {0};
  get_volume(c, &root);
  cfg->rootfs_device = root.device;
  cfg->rootfs_fstype = root.fstype;
  cfg->rootfs_read_only = root.read_only;
  n = get_count(c, 9, AGENT_MAX_VOLUMES);
  if (c->bad) return;
  cfg->volumes = calloc((size_t)n + 1, sizeof(*cfg->volumes));
  if (!cfg->volumes) {
    c->bad = true;
    return;
  }
  for (uint32_t i = 0; i < n && !c->bad; i++) {
    get_volume(c, &cfg->volumes[i]);
    cfg->n_volumes = i + 1;
  }
  n = get_count(c, 16, AGENT_MAX_MOUNTS);
  if (c->bad) return;
  cfg->mounts = calloc((size_t)n + 1, sizeof(*cfg->mounts));
  if (!cfg->mounts) {
    c->bad = true;
    return;
  }
  for (uint32_t i = 0; i < n && !c->bad; i++) {
    struct agent_mount *mt = &cfg->mounts[i];
    cfg->n_mounts = i + 1;
    mt->destination = agent_get_str(c, AGENT_MAX_STRING);
    mt->type = agent_get_str(c, AGENT_MAX_STRING);
    mt->source = agent_get_str(c, AGENT_MAX_STRING);
    mt->options = get_str_array(c, 256, &mt->n_options);
  }
  get_privileges(c, &cfg->privileges);
  cfg->pids_limit = agent_get_u64(c);
  struct agent_security *sec = &cfg->security;
  sec->masked_paths = get_str_array(c, AGENT_MAX_PATHS, &sec->n_masked_paths);
  sec->readonly_paths = get_str_array(c, AGENT_MAX_PATHS, &sec->n_readonly_paths);
  sec->sysctls = get_str_array(c, AGENT_MAX_SYSCTLS, &sec->n_sysctls);
  sec->has_oom_score_adj = get_bool(c);
  sec->oom_score_adj = (int32_t)agent_get_u32(c);
  sec->seccomp_flags = agent_get_u32(c);
  n = get_count(c, 1, AGENT_MAX_BPF_INSNS * 8);
  if (c->bad) return;
  if (n > 0) {
    sec->seccomp_bpf = malloc(n);
    if (!sec->seccomp_bpf) {
      c->bad = true;
      return;
    }
    sec->seccomp_bpf_len = n;
    for (uint32_t i = 0; i < n; i++) sec->seccomp_bpf[i] = agent_get_u8(c);
  }
  get_devices(c, cfg);
}

int agent_decode_config(const struct agent_frame *f, struct agent_config **out,
                        struct rc_error *err) {
  *out = NULL;
  if (expect_type(f, AGENT_MSG_CONFIG, err) < 0) return -1;
  struct agent_config *cfg = calloc(1, sizeof(*cfg));
  if (!cfg) return rc_err(err, ENOMEM, "agent protocol: CONFIG");
  struct agent_cursor c;
  agent_cursor_init(&c, f->payload, f->length);
  decode_config_fields(&c, cfg);
  if (agent_cursor_finish(&c, "CONFIG", err) < 0 || agent_config_validate(cfg, err) < 0) {
    agent_config_free(cfg);
    return -1;
  }
  *out = cfg;
  return 0;
}

static bool is_abs_path(const char *s) {
  return s && s[0] == '/';
}

static int validate_device(const char *what, const char *dev, const char *fstype,
                           struct rc_error *err) {
  if (!dev || !fstype) return rc_err(err, EINVAL, "%s: missing device or filesystem type", what);
  const char *name = NULL;
  size_t len = strlen(dev);
  if (len > 5 && strncmp(dev, "/dev/", 5) == 0) name = dev + 5;
  if (len > 7 && strncmp(dev, "serial:", 7) == 0) name = dev + 7;
  /* one plain name (not empty: longer than its prefix): the device cannot point outside
   * /dev */
  if (!name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return rc_err(err, EINVAL, "%s: device \"%s\" is neither /dev/NAME nor serial:NAME", what, dev);
  if (fstype[0] == '\0' || strchr(fstype, ','))
    return rc_err(err, EINVAL, "%s: bad filesystem type \"%s\"", what, fstype);
  return 0;
}

int agent_sysctl_path(const char *entry, char *out, size_t size) {
  const char *eq = entry ? strchr(entry, '=') : NULL;
  if (!eq) return -1;
  return rc_sysctl_path(entry, (size_t)(eq - entry), out, size);
}

static int validate_security(const struct agent_security *sec, struct rc_error *err) {
  if (sec->n_masked_paths > AGENT_MAX_PATHS || sec->n_readonly_paths > AGENT_MAX_PATHS)
    return rc_err(err, EINVAL, "config: more than %u masked or read-only paths", AGENT_MAX_PATHS);
  for (uint32_t i = 0; i < sec->n_masked_paths; i++)
    if (!sec->masked_paths || !is_abs_path(sec->masked_paths[i]))
      return rc_err(err, EINVAL, "config: masked path %u is not absolute", i);
  for (uint32_t i = 0; i < sec->n_readonly_paths; i++)
    if (!sec->readonly_paths || !is_abs_path(sec->readonly_paths[i]))
      return rc_err(err, EINVAL, "config: read-only path %u is not absolute", i);
  if (sec->n_sysctls > AGENT_MAX_SYSCTLS)
    return rc_err(err, EINVAL, "config: more than %u sysctls", AGENT_MAX_SYSCTLS);
  for (uint32_t i = 0; i < sec->n_sysctls; i++) {
    char path[AGENT_MAX_STRING];
    if (!sec->sysctls || agent_sysctl_path(sec->sysctls[i], path, sizeof(path)) < 0)
      return rc_err(err, EINVAL, "config: sysctl %u is not name=value with a plain name", i);
  }
  if (sec->has_oom_score_adj && (sec->oom_score_adj < -1000 || sec->oom_score_adj > 1000))
    return rc_err(err, EINVAL, "config: oom_score_adj %d out of -1000..1000", sec->oom_score_adj);
  if (sec->seccomp_flags & ~(uint32_t)(AGENT_SECCOMP_FLAG_LOG | AGENT_SECCOMP_FLAG_SPEC_ALLOW))
    return rc_err(err, EINVAL, "config: seccomp flags 0x%x not supported", sec->seccomp_flags);
  if (!sec->seccomp_bpf != (sec->seccomp_bpf_len == 0) || sec->seccomp_bpf_len % 8 != 0 ||
      sec->seccomp_bpf_len > AGENT_MAX_BPF_INSNS * 8)
    return rc_err(err, EINVAL, "config: seccomp filter of %u bytes is not 1..%u instructions",
                  sec->seccomp_bpf_len, AGENT_MAX_BPF_INSNS);
  return 0;
}

static int validate_rlimits(const char *what, const struct agent_rlimit *rl, uint32_t n,
                            struct rc_error *err) {
  if (n > AGENT_MAX_RLIMIT_TYPE) return rc_err(err, EINVAL, "%s: too many rlimits", what);
  for (uint32_t i = 0; i < n; i++) {
    const struct agent_rlimit *r = &rl[i];
    if (r->type >= AGENT_MAX_RLIMIT_TYPE)
      return rc_err(err, EINVAL, "%s: rlimit type %u unknown", what, r->type);
    if (r->soft > r->hard)
      return rc_err(err, EINVAL, "%s: rlimit %u soft limit above the hard one", what, r->type);
  }
  return 0;
}

/* A device path the agent can make: "/dev/" and then plain components (none empty, "."
 * or ".."), so that it names one place in the container's /dev however it is resolved,
 * and two entries for one node cannot hide behind different spellings. */
static const char *device_path_problem(const char *path) {
  if (!path || strncmp(path, "/dev/", 5) != 0) return "is not under /dev";
  if (strlen(path) > AGENT_MAX_DEVICE_PATH) return "is too long";
  for (const char *p = path + 5;;) {
    size_t n = strcspn(p, "/");
    if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
      return "is not a normalized path (an empty, \".\" or \"..\" component)";
    if (n > 255) return "has a component longer than NAME_MAX";
    if (p[n] == '\0') return NULL;
    p += n + 1;
  }
}

static int validate_devices(const struct agent_config *cfg, struct rc_error *err) {
  if (cfg->n_devices > AGENT_MAX_DEVICES)
    return rc_err(err, EINVAL, "config: more than %u devices", AGENT_MAX_DEVICES);
  if (cfg->n_devices && !cfg->devices) return rc_err(err, EINVAL, "config: devices missing");
  for (uint32_t i = 0; i < cfg->n_devices; i++) {
    const struct agent_device *d = &cfg->devices[i];
    const char *problem = device_path_problem(d->path);
    if (problem)
      return rc_err(err, EINVAL, "config: device %u path \"%s\" %s", i, d->path ? d->path : "",
                    problem);
    if (d->type != 'c' && d->type != 'u' && d->type != 'b' && d->type != 'p')
      return rc_err(err, EINVAL, "config: device %s: unknown type 0x%02x (not c, u, b or p)",
                    d->path, d->type);
    if (d->type == 'p' && (d->major || d->minor))
      return rc_err(err, EINVAL, "config: device %s: a FIFO has no device number (%u:%u)", d->path,
                    d->major, d->minor);
    if (d->major > AGENT_MAX_DEVICE_MAJOR || d->minor > AGENT_MAX_DEVICE_MINOR)
      return rc_err(err, EINVAL, "config: device %s: number %u:%u beyond the kernel's %u:%u",
                    d->path, d->major, d->minor, AGENT_MAX_DEVICE_MAJOR, AGENT_MAX_DEVICE_MINOR);
    if (d->mode > 07777)
      return rc_err(err, EINVAL, "config: device %s: mode 0%o is more than permission bits",
                    d->path, d->mode);
    if (d->uid == UINT32_MAX || d->gid == UINT32_MAX)
      return rc_err(err, EINVAL, "config: device %s: owner %u:%u (-1 would leave it unchanged)",
                    d->path, d->uid, d->gid);
    for (uint32_t j = 0; j < i; j++)
      if (strcmp(cfg->devices[j].path, d->path) == 0)
        return rc_err(err, EINVAL, "config: device %s listed twice", d->path);
  }
  return 0;
}

int agent_config_validate(const struct agent_config *cfg, struct rc_error *err) {
  if (!cfg->args || cfg->n_args == 0 || !cfg->args[0] || cfg->args[0][0] == '\0')
    return rc_err(err, EINVAL, "config: process.args is empty");
  for (uint32_t i = 0; i < cfg->n_args; i++)
    if (!cfg->args[i]) return rc_err(err, EINVAL, "config: args[%u] missing", i);
  for (uint32_t i = 0; i < cfg->n_env; i++) {
    const char *e = cfg->env ? cfg->env[i] : NULL;
    if (!e || !strchr(e, '=') || e[0] == '=')
      return rc_err(err, EINVAL, "config: env[%u] is not NAME=value", i);
  }
  if (!is_abs_path(cfg->cwd))
    return rc_err(err, EINVAL, "config: cwd \"%s\" is not absolute", cfg->cwd ? cfg->cwd : "");
  if (cfg->n_additional_gids > AGENT_MAX_GIDS)
    return rc_err(err, EINVAL, "config: more than %u additional groups", AGENT_MAX_GIDS);
  if (cfg->has_umask && cfg->umask > 0777)
    return rc_err(err, EINVAL, "config: umask %o out of range", cfg->umask);
  if (validate_rlimits("config", cfg->rlimits, cfg->n_rlimits, err) < 0) return -1;
  if (cfg->hostname && strlen(cfg->hostname) > AGENT_MAX_HOSTNAME)
    return rc_err(err, EINVAL, "config: hostname longer than %u", AGENT_MAX_HOSTNAME);
  if (validate_device("config: rootfs", cfg->rootfs_device, cfg->rootfs_fstype, err) < 0) return -1;
  if (cfg->n_volumes > AGENT_MAX_VOLUMES)
    return rc_err(err, EINVAL, "config: more than %u volumes", AGENT_MAX_VOLUMES);
  for (uint32_t i = 0; i < cfg->n_volumes; i++) {
    char what[64];
    snprintf(what, sizeof(what), "config: volume %u", i);
    if (validate_device(what, cfg->volumes[i].device, cfg->volumes[i].fstype, err) < 0) return -1;
  }
  if (cfg->n_mounts > AGENT_MAX_MOUNTS)
    return rc_err(err, EINVAL, "config: more than %u mounts", AGENT_MAX_MOUNTS);
  for (uint32_t i = 0; i < cfg->n_mounts; i++) {
    const struct agent_mount *m = &cfg->mounts[i];
    if (!is_abs_path(m->destination))
      return rc_err(err, EINVAL, "config: mount %u destination \"%s\" is not absolute", i,
                    m->destination ? m->destination : "");
    if (!m->type || !m->source)
      return rc_err(err, EINVAL, "config: mount %u has no type or source", i);
    for (uint32_t j = 0; j < m->n_options; j++)
      if (!m->options || !m->options[j])
        return rc_err(err, EINVAL, "config: mount %u option %u missing", i, j);
  }
  if (validate_security(&cfg->security, err) < 0) return -1;
  return validate_devices(cfg, err);
}

void agent_config_free(struct agent_config *cfg) {
  if (!cfg) return;
  free_str_array(cfg->args);
  free_str_array(cfg->env);
  free(cfg->cwd);
  free(cfg->additional_gids);
  free(cfg->rlimits);
  free(cfg->hostname);
  free_str_array(cfg->security.masked_paths);
  free_str_array(cfg->security.readonly_paths);
  free_str_array(cfg->security.sysctls);
  free(cfg->security.seccomp_bpf);
  free(cfg->rootfs_device);
  free(cfg->rootfs_fstype);
  if (cfg->volumes) {
    for (uint32_t i = 0; i < cfg->n_volumes; i++) {
      free(cfg->volumes[i].device);
      free(cfg->volumes[i].fstype);
    }
    free(cfg->volumes);
  }
  if (cfg->mounts) {
    for (uint32_t i = 0; i < cfg->n_mounts; i++) {
      free(cfg->mounts[i].destination);
      free(cfg->mounts[i].type);
      free(cfg->mounts[i].source);
      free_str_array(cfg->mounts[i].options);
    }
    free(cfg->mounts);
  }
  if (cfg->devices) {
    for (uint32_t i = 0; i < cfg->n_devices; i++) free(cfg->devices[i].path);
    free(cfg->devices);
  }
  free(cfg);
}

/* ---- NETWORK ----------------------------------------------------------------------- */

static unsigned family_bits(uint8_t family) {
  return family == AGENT_NET_INET ? 32 : family == AGENT_NET_INET6 ? 128 : 0;
}

static bool valid_ifname(const char *s) {
  size_t n = strnlen(s, AGENT_NET_IFNAME_MAX + 1);
  if (n == 0 || n > AGENT_NET_IFNAME_MAX || !strcmp(s, ".") || !strcmp(s, "..")) return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] == '/' || s[i] == ':' || s[i] <= ' ' || s[i] > '~') return false;
  return true;
}

int agent_network_validate(const struct agent_network *net, struct rc_error *err) {
  if (!valid_ifname(net->ifname))
    return rc_err(err, EINVAL, "network: interface name \"%.16s\" is not valid", net->ifname);
  static const uint8_t zero[6];
  if ((net->mac[0] & 1) || !memcmp(net->mac, zero, 6))
    return rc_err(err, EINVAL, "network: MAC address is not a unicast address");
  if (net->mtu < 68 || net->mtu > 65535)
    return rc_err(err, EINVAL, "network: MTU %u outside 68..65535", net->mtu);
  if (net->n_addrs > AGENT_MAX_NET_ADDRS || net->n_routes > AGENT_MAX_NET_ROUTES)
    return rc_err(err, EINVAL, "network: %u addresses and %u routes (at most %u and %u)",
                  net->n_addrs, net->n_routes, AGENT_MAX_NET_ADDRS, AGENT_MAX_NET_ROUTES);
  for (uint32_t i = 0; i < net->n_addrs; i++) {
    const struct agent_net_addr *a = &net->addrs[i];
    unsigned bits = family_bits(a->family);
    if (!bits || a->prefix > bits)
      return rc_err(err, EINVAL, "network: address %u: family %u, prefix %u", i, a->family,
                    a->prefix);
  }
  for (uint32_t i = 0; i < net->n_routes; i++) {
    const struct agent_net_route *r = &net->routes[i];
    unsigned bits = family_bits(r->family);
    if (!bits || r->dst_prefix > bits)
      return rc_err(err, EINVAL, "network: route %u: family %u, prefix %u", i, r->family,
                    r->dst_prefix);
  }
  return 0;
}

int agent_encode_network(struct agent_msg *m, const struct agent_network *net,
                         struct rc_error *err) {
  if (agent_network_validate(net, err) < 0) return -1;
  agent_msg_begin(m, AGENT_MSG_NETWORK);
  agent_put_str(m, net->ifname);
  agent_put_bytes(m, net->mac, 6);
  agent_put_u32(m, net->mtu);
  agent_put_u32(m, net->n_addrs);
  for (uint32_t i = 0; i < net->n_addrs; i++) {
    agent_put_u8(m, net->addrs[i].family);
    agent_put_u8(m, net->addrs[i].prefix);
    agent_put_bytes(m, net->addrs[i].addr, 16);
  }
  agent_put_u32(m, net->n_routes);
  for (uint32_t i = 0; i < net->n_routes; i++) {
    const struct agent_net_route *r = &net->routes[i];
    agent_put_u8(m, r->family);
    agent_put_u8(m, r->dst_prefix);
    agent_put_u8(m, r->has_gateway ? 1 : 0);
    agent_put_bytes(m, r->dst, 16);
    agent_put_bytes(m, r->gateway, 16);
    agent_put_u32(m, r->metric);
  }
  return agent_msg_end(m, err);
}

static void get_bytes(struct agent_cursor *c, uint8_t *dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = agent_get_u8(c);
}

int agent_decode_network(const struct agent_frame *f, struct agent_network *out,
                         struct rc_error *err) {
  if (expect_type(f, AGENT_MSG_NETWORK, err) < 0) return -1;
  memset(out, 0, sizeof(*out));
  struct agent_cursor c;
  agent_cursor_init(&c, f->payload, f->length);
  if (!agent_get_str_into(&c, out->ifname, sizeof(out->ifname))) c.bad = true;
  get_bytes(&c, out->mac, 6);
  out->mtu = agent_get_u32(&c);
  out->n_addrs = agent_get_u32(&c);
  if (out->n_addrs > AGENT_MAX_NET_ADDRS) c.bad = true;
  for (uint32_t i = 0; !c.bad && i < out->n_addrs; i++) {
    out->addrs[i].family = agent_get_u8(&c);
    out->addrs[i].prefix = agent_get_u8(&c);
    get_bytes(&c, out->addrs[i].addr, 16);
  }
  out->n_routes = c.bad ? 0 : agent_get_u32(&c);
  if (out->n_routes > AGENT_MAX_NET_ROUTES) c.bad = true;
  for (uint32_t i = 0; !c.bad && i < out->n_routes; i++) {
    struct agent_net_route *r = &out->routes[i];
    r->family = agent_get_u8(&c);
    r->dst_prefix = agent_get_u8(&c);
    uint8_t gw = agent_get_u8(&c);
    if (gw > 1) c.bad = true;
    r->has_gateway = gw == 1;
    get_bytes(&c, r->dst, 16);
    get_bytes(&c, r->gateway, 16);
    r->metric = agent_get_u32(&c);
  }
  if (agent_cursor_finish(&c, "NETWORK", err) < 0) return -1;
  return agent_network_validate(out, err);
}

/* ---- EXEC and PS ------------------------------------------------------------------- */

int agent_exec_validate(const struct agent_exec *e, struct rc_error *err) {
  if (!e->args || e->n_args == 0 || !e->args[0] || e->args[0][0] == '\0')
    return rc_err(err, EINVAL, "exec: process.args is empty");
  for (uint32_t i = 0; i < e->n_args; i++)
    if (!e->args[i]) return rc_err(err, EINVAL, "exec: args[%u] missing", i);
  for (uint32_t i = 0; i < e->n_env; i++) {
    const char *v = e->env ? e->env[i] : NULL;
    if (!v || !strchr(v, '=') || v[0] == '=')
      return rc_err(err, EINVAL, "exec: env[%u] is not NAME=value", i);
  }
  if (!is_abs_path(e->cwd))
    return rc_err(err, EINVAL, "exec: cwd \"%s\" is not absolute", e->cwd ? e->cwd : "");
  if (e->n_additional_gids > AGENT_MAX_GIDS)
    return rc_err(err, EINVAL, "exec: more than %u additional groups", AGENT_MAX_GIDS);
  if (e->has_umask && e->umask > 0777)
    return rc_err(err, EINVAL, "exec: umask %o out of range", e->umask);
  return validate_rlimits("exec", e->rlimits, e->n_rlimits, err);
}

int agent_encode_exec(struct agent_msg *m, const struct agent_exec *e, struct rc_error *err) {
  if (agent_exec_validate(e, err) < 0) return -1;
  agent_msg_begin(m, AGENT_MSG_EXEC);
  agent_put_u32(m, e->proc);
  put_str_array(m, e->args, e->n_args);
  put_str_array(m, e->env, e->n_env);
  agent_put_str(m, e->cwd);
  agent_put_u32(m, e->uid);
  agent_put_u32(m, e->gid);
  agent_put_u32(m, e->n_additional_gids);
  for (uint32_t i = 0; i < e->n_additional_gids; i++) agent_put_u32(m, e->additional_gids[i]);
  agent_put_u8(m, e->terminal);
  agent_put_u16(m, e->winsize.rows);
  agent_put_u16(m, e->winsize.cols);
  put_privileges(m, &e->privileges);
  put_rlimits(m, e->rlimits, e->n_rlimits);
  agent_put_u8(m, e->has_umask);
  agent_put_u32(m, e->umask);
  if (agent_msg_end(m, err) < 0) return rc_err_wrap(err, "exec process");
  return 0;
}

int agent_decode_exec(const struct agent_frame *f, struct agent_exec **out, struct rc_error *err) {
  *out = NULL;
  if (expect_type(f, AGENT_MSG_EXEC, err) < 0) return -1;
  struct agent_exec *e = calloc(1, sizeof(*e));
  if (!e) return rc_err(err, ENOMEM, "agent protocol: EXEC");
  struct agent_cursor c;
  agent_cursor_init(&c, f->payload, f->length);
  e->proc = agent_get_u32(&c);
  e->args = get_str_array(&c, 65536, &e->n_args);
  e->env = get_str_array(&c, 65536, &e->n_env);
  e->cwd = agent_get_str(&c, AGENT_MAX_STRING);
  e->uid = agent_get_u32(&c);
  e->gid = agent_get_u32(&c);
  uint32_t n = get_count(&c, 4, AGENT_MAX_GIDS);
  if (!c.bad) {
    e->additional_gids = calloc((size_t)n + 1, sizeof(uint32_t));
    if (!e->additional_gids) c.bad = true;
  }
  if (!c.bad) {
    e->n_additional_gids = n;
    for (uint32_t i = 0; i < n; i++) e->additional_gids[i] = agent_get_u32(&c);
  }
  e->terminal = get_bool(&c);
  e->winsize.rows = agent_get_u16(&c);
  e->winsize.cols = agent_get_u16(&c);
  get_privileges(&c, &e->privileges);
  if (get_rlimits(&c, &e->rlimits, &e->n_rlimits)) {
    e->has_umask = get_bool(&c);
    e->umask = agent_get_u32(&c);
  }
  if (agent_cursor_finish(&c, "EXEC", err) < 0 || agent_exec_validate(e, err) < 0) {
    agent_exec_free(e);
    return -1;
  }
  *out = e;
  return 0;
}

void agent_exec_free(struct agent_exec *e) {
  if (!e) return;
  free_str_array(e->args);
  free_str_array(e->env);
  free(e->cwd);
  free(e->additional_gids);
  free(e->rlimits);
  free(e);
}

void agent_encode_exec_started(struct agent_msg *m, uint32_t proc, uint32_t pid) {
  agent_msg_begin(m, AGENT_MSG_EXEC_STARTED);
  agent_put_u32(m, proc);
  agent_put_u32(m, pid);
}

int agent_decode_exec_started(const struct agent_frame *f, uint32_t *proc, uint32_t *pid,
                              struct rc_error *err) {
  if (decode_u32_pair(f, AGENT_MSG_EXEC_STARTED, proc, pid, err) < 0) return -1;
  if (*pid == 0 || *pid > (1u << 22))
    return rc_err(err, EPROTO, "agent protocol: EXEC_STARTED with pid %u", *pid);
  return 0;
}

void agent_encode_exec_error(struct agent_msg *m, uint32_t proc, uint32_t stage, int32_t errnum,
                             const char *message) {
  agent_msg_begin(m, AGENT_MSG_EXEC_ERROR);
  agent_put_u32(m, proc);
  agent_put_u32(m, stage);
  agent_put_u32(m, (uint32_t)errnum);
  size_t n = message ? strnlen(message, AGENT_MAX_MESSAGE) : 0;
  agent_put_u32(m, (uint32_t)n);
  agent_put_bytes(m, message, n);
}

/* Well-formed UTF-8 stays (names in the guest may be any language's), except what would
 * let the guest's words act on the terminal or on how the text around them reads; each
 * byte of such a sequence becomes '?', as each byte of no sequence, a C0 control or DEL:
 * - the C1 controls U+0080..U+009F (c2 80..c2 9f; U+0085 NEL among them), which some
 *   terminals obey as ESC sequences;
 * - the bidirectional controls, which reorder what is shown without being shown ("Trojan
 *   Source", CVE-2021-42574), so that a process's arguments in `ps`, or the runtime's text
 *   around them, would read other than they are: the embeddings and overrides
 *   U+202A..U+202E, the isolates U+2066..U+2069 and the marks U+200E, U+200F and U+061C
 *   (which reorder the neutral characters next to them);
 * - the line and paragraph separators U+2028 and U+2029, a line break to some log readers
 *   and renderers (and to JavaScript), so a guest's one line could pose as several;
 * - U+206A..U+206F, deprecated format controls (symmetric swapping, shaping, digit shapes)
 *   no text needs, next to the isolates.
 * The invisible joiners and spaces (U+200B..U+200D, U+2060, U+FEFF) stay: ZWJ and ZWNJ
 * are part of writing Persian, Indic scripts and emoji, and invisible characters reorder
 * nothing; like look-alike letters from other scripts, which no filter of this kind
 * removes, they can make two names look alike but not make one text show as another. */
void agent_make_printable(char *s) {
  for (unsigned char *p = (unsigned char *)s; *p;) {
    if (*p >= 0x20 && *p < 0x7f) {
      p++;
      continue;
    }
    size_t n = *p >= 0x80 ? rc_utf8_sequence(p) : 0;
    uint32_t cp = n == 2 ? (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f)
                  : n == 3
                      ? (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f)
                      : 0; /* 4 bytes: nothing past U+FFFF is refused */
    bool unsafe = (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
                  (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x206f);
    if (n && !unsafe) {
      p += n;
      continue;
    }
    /* a C0 control, DEL, a byte of no UTF-8 sequence, or each byte of a refused one */
    for (size_t i = 0; i < (n ? n : 1); i++) *p++ = '?';
  }
}

/* ERROR's fields made safe to show: printable message, a plausible errno. */
static void sanitize_error(struct agent_error_msg *e) {
  agent_make_printable(e->message);
  if (e->errnum < 0 || e->errnum > 4095) e->errnum = 0;
}

int agent_decode_exec_error(const struct agent_frame *f, uint32_t *proc,
                            struct agent_error_msg *out, struct rc_error *err) {
  if (expect_type(f, AGENT_MSG_EXEC_ERROR, err) < 0) return -1;
  struct agent_cursor c;
  agent_cursor_init(&c, f->payload, f->length);
  *proc = agent_get_u32(&c);
  out->stage = agent_get_u32(&c);
  out->errnum = (int32_t)agent_get_u32(&c);
  agent_get_str_into(&c, out->message, sizeof(out->message));
  if (agent_cursor_finish(&c, "EXEC_ERROR", err) < 0) return -1;
  sanitize_error(out);
  return 0;
}

void agent_encode_ps(struct agent_msg *m, uint32_t request) {
  agent_msg_begin(m, AGENT_MSG_PS);
  agent_put_u32(m, request);
}

int agent_decode_ps(const struct agent_frame *f, uint32_t *request, struct rc_error *err) {
  return decode_u32(f, AGENT_MSG_PS, request, err);
}

void agent_encode_stats(struct agent_msg *m, uint32_t request) {
  agent_msg_begin(m, AGENT_MSG_STATS);
  agent_put_u32(m, request);
}

int agent_decode_stats(const struct agent_frame *f, uint32_t *request, struct rc_error *err) {
  return decode_u32(f, AGENT_MSG_STATS, request, err);
}

void agent_encode_stats_reply(struct agent_msg *m, const struct agent_stats *s) {
  agent_msg_begin(m, AGENT_MSG_STATS_REPLY);
  agent_put_u32(m, s->request);
  agent_put_u32(m, s->ncpus);
  agent_put_u64(m, s->cpu_user_ns);
  agent_put_u64(m, s->cpu_system_ns);
  agent_put_u64(m, s->mem_total);
  agent_put_u64(m, s->mem_free);
  agent_put_u64(m, s->mem_available);
  agent_put_u64(m, s->mem_cached);
  agent_put_u32(m, s->nprocs);
  agent_put_u64(m, s->pids_limit);
}

int agent_decode_stats_reply(const struct agent_frame *f, struct agent_stats *out,
                             struct rc_error *err) {
  memset(out, 0, sizeof(*out));
  if (expect_type(f, AGENT_MSG_STATS_REPLY, err) < 0) return -1;
  struct agent_cursor c;
  agent_cursor_init(&c, f->payload, f->length);
  out->request = agent_get_u32(&c);
  out->ncpus = agent_get_u32(&c);
  out->cpu_user_ns = agent_get_u64(&c);
  out->cpu_system_ns = agent_get_u64(&c);
  out->mem_total = agent_get_u64(&c);
  out->mem_free = agent_get_u64(&c);
  out->mem_available = agent_get_u64(&c);
  out->mem_cached = agent_get_u64(&c);
  out->nprocs = agent_get_u32(&c);
  out->pids_limit = agent_get_u64(&c);
  if (agent_cursor_finish(&c, "STATS_REPLY", err) < 0) return -1;
  if (out->ncpus == 0 || out->ncpus > 4096 || out->mem_free > out->mem_total ||
      out->mem_available > out->mem_total || out->mem_cached > out->mem_total ||
      out->nprocs > (1u << 22))
    return rc_err(err, EPROTO, "agent protocol: STATS_REPLY with impossible numbers");
  return 0;
}

void agent_encode_pids_limit(struct agent_msg *m, uint32_t request, uint64_t limit) {
  agent_msg_begin(m, AGENT_MSG_PIDS_LIMIT);
  agent_put_u32(m, request);
  agent_put_u64(m, limit);
}

int agent_decode_pids_limit(const struct agent_frame *f, uint32_t *request, uint64_t *limit,
                            struct rc_error *err) {
  if (expect_type(f, AGENT_MSG_PIDS_LIMIT, err) < 0) return -1;
  struct agent_cursor c;
  agent_cursor_init(&c, f->payload, f->length);
  *request = agent_get_u32(&c);
  *limit = agent_get_u64(&c);
  return agent_cursor_finish(&c, "PIDS_LIMIT", err);
}

void agent_encode_pids_limit_reply(struct agent_msg *m, const struct agent_pids_limit_reply *r) {
  agent_msg_begin(m, AGENT_MSG_PIDS_LIMIT_REPLY);
  agent_put_u32(m, r->request);
  agent_put_u32(m, (uint32_t)r->errnum);
  size_t n = strnlen(r->message, AGENT_MAX_MESSAGE);
  agent_put_u32(m, (uint32_t)n);
  agent_put_bytes(m, r->message, n);
}

int agent_decode_pids_limit_reply(const struct agent_frame *f, struct agent_pids_limit_reply *out,
                                  struct rc_error *err) {
  memset(out, 0, sizeof(*out));
  if (expect_type(f, AGENT_MSG_PIDS_LIMIT_REPLY, err) < 0) return -1;
  struct agent_cursor c;
  agent_cursor_init(&c, f->payload, f->length);
  out->request = agent_get_u32(&c);
  out->errnum = (int32_t)agent_get_u32(&c);
  agent_get_str_into(&c, out->message, sizeof(out->message));
  if (agent_cursor_finish(&c, "PIDS_LIMIT_REPLY", err) < 0) return -1;
  /* Not clamped as ERROR's errno is: here 0 means success, and an errno made 0 would turn
   * a refusal into one. */
  if (out->errnum < 0 || out->errnum > 4095)
    return rc_err(err, EPROTO, "agent protocol: PIDS_LIMIT_REPLY with errno %d", out->errnum);
  if (out->errnum == 0 && out->message[0])
    return rc_err(err, EPROTO, "agent protocol: PIDS_LIMIT_REPLY of a success with a message");
  agent_make_printable(out->message);
  return 0;
}

/* pid, ppid, uid, tty_nr, cpu_ticks and the command line's length word */
#define PS_ENTRY_FIXED (4 * 4 + 8 + 4)

void agent_encode_ps_reply(struct agent_msg *m, const struct agent_ps_reply *r) {
  agent_msg_begin(m, AGENT_MSG_PS_REPLY);
  agent_put_u32(m, r->request);
  size_t truncated_at = m->len;
  agent_put_u8(m, r->truncated);
  size_t count_at = m->len;
  agent_put_u32(m, 0);
  uint32_t n = 0;
  bool cut = r->truncated;
  for (uint32_t i = 0; i < r->n && !m->overflow; i++) {
    const struct agent_ps_entry *e = &r->entries[i];
    size_t cmd = strnlen(e->cmd, AGENT_MAX_PS_CMD);
    if (n == AGENT_MAX_PS_ENTRIES || PS_ENTRY_FIXED + cmd > sizeof(m->bytes) - m->len) {
      cut = true;
      break;
    }
    agent_put_u32(m, e->pid);
    agent_put_u32(m, e->ppid);
    agent_put_u32(m, e->uid);
    agent_put_u32(m, e->tty_nr);
    agent_put_u64(m, e->cpu_ticks);
    agent_put_u32(m, (uint32_t)cmd);
    agent_put_bytes(m, e->cmd, cmd);
    n++;
  }
  if (m->overflow) return;
  m->bytes[truncated_at] = cut;
  put_le(m->bytes + count_at, n, 4);
}

int agent_decode_ps_reply(const struct agent_frame *f, struct agent_ps_reply *out,
                          struct rc_error *err) {
  memset(out, 0, sizeof(*out));
  if (expect_type(f, AGENT_MSG_PS_REPLY, err) < 0) return -1;
  struct agent_cursor c;
  agent_cursor_init(&c, f->payload, f->length);
  out->request = agent_get_u32(&c);
  out->truncated = get_bool(&c);
  uint32_t n = get_count(&c, PS_ENTRY_FIXED, AGENT_MAX_PS_ENTRIES);
  if (!c.bad) {
    out->entries = calloc((size_t)n + 1, sizeof(*out->entries));
    if (!out->entries) c.bad = true;
  }
  for (uint32_t i = 0; i < n && !c.bad; i++) {
    struct agent_ps_entry *e = &out->entries[i];
    e->pid = agent_get_u32(&c);
    e->ppid = agent_get_u32(&c);
    e->uid = agent_get_u32(&c);
    e->tty_nr = agent_get_u32(&c);
    e->cpu_ticks = agent_get_u64(&c);
    /* not made printable here (that would not encode back the same): the printer does */
    if (!agent_get_str_into(&c, e->cmd, sizeof(e->cmd))) c.bad = true;
    if (!c.bad && (e->pid == 0 || e->pid > (1u << 22))) c.bad = true;
    out->n = i + 1;
  }
  if (agent_cursor_finish(&c, "PS_REPLY", err) < 0) {
    agent_ps_reply_free(out);
    return -1;
  }
  return 0;
}

void agent_ps_reply_free(struct agent_ps_reply *r) {
  free(r->entries);
  r->entries = NULL;
  r->n = 0;
}
