/* Build-time tool: writes the guest agent's initrd, an uncompressed newc cpio archive
 * holding /init (the agent), /dev/console (char 5,1, so the kernel can give init its
 * console) and the empty directories the agent mounts on. Writing the archive ourselves
 * means the device node needs no root and the output is byte-for-byte reproducible (every
 * time stamp is 0).
 *   make_initrd OUTPUT AGENT_BINARY */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct entry {
  const char *name;
  unsigned mode;
  unsigned rdev_major, rdev_minor;
  const unsigned char *data;
  size_t size;
};

static int pad4(FILE *out, size_t written) {
  static const char zeros[4] = {0};
  size_t pad = (4 - written % 4) % 4;
  return fwrite(zeros, 1, pad, out) == pad ? 0 : -1;
}

static int write_entry(FILE *out, unsigned ino, const struct entry *e) {
  size_t namesize = strlen(e->name) + 1;
  /* newc: magic and 13 eight-digit hex fields, then the name, both padded to 4 bytes */
  int n = fprintf(out, "070701%08X%08X%08X%08X%08X%08X%08zX%08X%08X%08X%08X%08zX%08X", ino, e->mode,
                  0u, 0u, (e->mode & S_IFMT) == S_IFDIR ? 2u : 1u, 0u, e->size, 0u, 0u,
                  e->rdev_major, e->rdev_minor, namesize, 0u);
  if (n != 110) return -1;
  if (fwrite(e->name, 1, namesize, out) != namesize || pad4(out, 110 + namesize) < 0) return -1;
  if (e->size && fwrite(e->data, 1, e->size, out) != e->size) return -1;
  return pad4(out, e->size);
}

static unsigned char *read_whole(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  unsigned char *buf = NULL;
  size_t cap = 0, len = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? cap * 2 : 1 << 20;
      unsigned char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        fclose(f);
        return NULL;
      }
      buf = nb;
    }
    size_t n = fread(buf + len, 1, cap - len, f);
    len += n;
    if (n == 0) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return NULL;
  }
  *size = len;
  return buf;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s OUTPUT AGENT_BINARY\n", argv[0]);
    return 2;
  }
  size_t agent_size = 0;
  unsigned char *agent = read_whole(argv[2], &agent_size);
  if (!agent) {
    fprintf(stderr, "make_initrd: read %s: %s\n", argv[2], strerror(errno));
    return 1;
  }
  const struct entry entries[] = {
      {"dev", S_IFDIR | 0755, 0, 0, NULL, 0},  {"dev/console", S_IFCHR | 0600, 5, 1, NULL, 0},
      {"proc", S_IFDIR | 0755, 0, 0, NULL, 0}, {"sys", S_IFDIR | 0755, 0, 0, NULL, 0},
      {"run", S_IFDIR | 0755, 0, 0, NULL, 0},  {"init", S_IFREG | 0755, 0, 0, agent, agent_size},
      {"TRAILER!!!", 0, 0, 0, NULL, 0},
  };
  char tmp[4096];
  snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]);
  FILE *out = fopen(tmp, "wb");
  if (!out) {
    fprintf(stderr, "make_initrd: create %s: %s\n", tmp, strerror(errno));
    free(agent);
    return 1;
  }
  int bad = 0;
  for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]) && !bad; i++)
    bad = write_entry(out, (unsigned)i + 1, &entries[i]) < 0;
  if (fclose(out) != 0) bad = 1;
  free(agent);
  if (bad || rename(tmp, argv[1]) < 0) {
    fprintf(stderr, "make_initrd: write %s: %s\n", argv[1], strerror(errno));
    remove(tmp);
    return 1;
  }
  return 0;
}
