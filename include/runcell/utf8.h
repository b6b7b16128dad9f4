/* UTF-8 well-formedness, shared by what turns text from elsewhere into text to show or log
 * (the guest's words: agent_proto.c; the runtime's own log: log.c). Header-only: the
 * static guest agent compiles agent_proto.c without the core library. */
#ifndef RUNCELL_UTF8_H
#define RUNCELL_UTF8_H

#include <stddef.h>

/* The length of the well-formed multi-byte UTF-8 sequence at p (2 to 4 bytes; no overlong
 * forms, surrogates or code points past U+10FFFF), or 0 (ASCII, or no sequence). p is
 * NUL-terminated: a NUL is no continuation byte, so nothing past it is read. */
static inline size_t rc_utf8_sequence(const unsigned char *p) {
  size_t n = p[0] >= 0xc2 && p[0] <= 0xdf   ? 2
             : p[0] >= 0xe0 && p[0] <= 0xef ? 3
             : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                            : 0;
  for (size_t i = 1; i < n; i++)
    if ((p[i] & 0xc0) != 0x80) return 0;
  if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
      (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
    return 0;
  return n;
}

#endif
