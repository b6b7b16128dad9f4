/* A fuzz input read as a script: little-endian numbers taken from the front, 0 once it
 * runs out (so every input is a complete script). Shared by the targets that drive a
 * state machine event by event (fuzz_vmctl, fuzz_agent_host). */
#ifndef RUNCELL_FUZZ_SCRIPT_H
#define RUNCELL_FUZZ_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

struct script {
  const uint8_t *p;
  size_t n;
};

static inline uint8_t u8(struct script *s) {
  if (!s->n) return 0;
  s->n--;
  return *s->p++;
}

static inline uint16_t u16(struct script *s) {
  uint16_t lo = u8(s);
  return (uint16_t)(lo | (uint16_t)u8(s) << 8);
}

static inline uint32_t u32(struct script *s) {
  uint32_t lo = u16(s);
  return lo | (uint32_t)u16(s) << 16;
}

static inline uint64_t u64(struct script *s) {
  uint64_t lo = u32(s);
  return lo | (uint64_t)u32(s) << 32;
}

#endif
