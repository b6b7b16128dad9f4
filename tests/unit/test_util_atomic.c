/* rc_write_file_atomic in a directory someone else can write: it writes pid files in a
 * directory the caller names, and criu's images and work files. Whatever was planted
 * there must never be written through. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runcell/error.h"
#include "runcell/util.h"
#include "unit.h"

static const char victim_text[] = "not yours\n";

/* getrandom, replaced for this program (runcell_core is a static library, so its call
 * binds here): the names an attacker would have to guess can be planted ahead, which is
 * the only way to show that the open itself refuses what is there (O_EXCL|O_NOFOLLOW)
 * rather than the name being merely unlikely. Without forced values it passes through to
 * the kernel's. */
static uint64_t forced[16];
static size_t n_forced, next_forced;

ssize_t getrandom(void *buf, size_t len, unsigned int flags);
ssize_t getrandom(void *buf, size_t len, unsigned int flags) {
  if (next_forced < n_forced && len == sizeof(uint64_t)) {
    memcpy(buf, &forced[next_forced++], len);
    return (ssize_t)len;
  }
  return syscall(SYS_getrandom, buf, len, flags);
}

static void force_random(const uint64_t *values, size_t n) {
  memcpy(forced, values, n * sizeof(*values));
  n_forced = n;
  next_forced = 0;
}

struct scratch {
  char dir[32];
  char victim[64];
  int dfd;
};

/* A symlink to the victim planted at the temporary name value would give "pid". */
static void plant_at(const struct scratch *s, uint64_t value) {
  char name[64];
  snprintf(name, sizeof(name), ".pid.tmp.%016llx", (unsigned long long)value);
  CHECK(symlinkat(s->victim, s->dfd, name) == 0);
}

static void scratch_make(struct scratch *s) {
  snprintf(s->dir, sizeof(s->dir), "/tmp/runcell-unit-XXXXXX");
  CHECK(mkdtemp(s->dir) != NULL);
  s->dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CHECK(s->dfd >= 0);
  /* outside the directory, as the file an attacker aims at would be */
  snprintf(s->victim, sizeof(s->victim), "%s.victim", s->dir);
  int fd = open(s->victim, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  CHECK(fd >= 0);
  CHECK(rc_write_all(fd, victim_text, strlen(victim_text)) == (ssize_t)strlen(victim_text));
  close(fd);
}

static void scratch_remove(struct scratch *s) {
  /* the tests leave only files and symlinks in it */
  DIR *d = opendir(s->dir);
  CHECK(d != NULL);
  for (struct dirent *de; d && (de = readdir(d));)
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      CHECK(unlinkat(s->dfd, de->d_name, 0) == 0);
  if (d) closedir(d);
  CHECK(rmdir(s->dir) == 0);
  unlink(s->victim);
  close(s->dfd);
}

static void check_victim(const struct scratch *s) {
  char *text = NULL;
  struct rc_error e;
  CHECK(rc_read_file(s->victim, 100, &text, NULL, &e) == 0);
  CHECK_STR_EQ(text, victim_text);
  free(text);
}

static void check_regular(const struct scratch *s, const char *name, const char *want) {
  struct stat st;
  CHECK(fstatat(s->dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode));
  char *text = NULL;
  struct rc_error e;
  CHECK(rc_read_file_at(s->dfd, name, 100, &text, NULL, &e) == 0);
  CHECK_STR_EQ(text, want);
  free(text);
}

/* The old temporary name, .NAME.tmp.<pid>, planted as a symlink: never followed. */
static void a_planted_temporary_name_is_not_written_through(void) {
  struct scratch s;
  scratch_make(&s);
  char planted[64];
  snprintf(planted, sizeof(planted), ".pid.tmp.%d", (int)getpid());
  CHECK(symlinkat(s.victim, s.dfd, planted) == 0);
  struct rc_error e = {0};
  CHECK(rc_write_file_atomic(s.dfd, "pid", "42", 2, 0644, &e) == 0);
  check_victim(&s);
  check_regular(&s, "pid", "42");
  char target[PATH_MAX] = "";
  CHECK(readlinkat(s.dfd, planted, target, sizeof(target) - 1) > 0);
  CHECK_STR_EQ(target, s.victim);
  scratch_remove(&s);
}

/* A symlink at the final name is replaced by the rename, not opened. */
static void a_symlink_at_the_name_is_replaced(void) {
  struct scratch s;
  scratch_make(&s);
  CHECK(symlinkat(s.victim, s.dfd, "pid") == 0);
  struct rc_error e = {0};
  CHECK(rc_write_file_atomic(s.dfd, "pid", "43", 2, 0644, &e) == 0);
  check_victim(&s);
  check_regular(&s, "pid", "43");
  scratch_remove(&s);
}

/* Each write uses a fresh name that does not hang on anything another user can know (the
 * pid), and leaves nothing behind. */
static void temporary_names_are_unpredictable(void) {
  struct scratch s;
  scratch_make(&s);
  int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  CHECK(in >= 0);
  CHECK(inotify_add_watch(in, s.dir, IN_CREATE) >= 0);
  struct rc_error e = {0};
  char names[2][NAME_MAX + 1] = {"", ""};
  for (int i = 0; i < 2; i++) {
    CHECK(rc_write_file_atomic(s.dfd, "pid", "44", 2, 0644, &e) == 0);
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n = read(in, buf, sizeof(buf));
    CHECK(n > (ssize_t)sizeof(struct inotify_event));
    if (n > (ssize_t)sizeof(struct inotify_event)) {
      const struct inotify_event *ev = (const struct inotify_event *)buf;
      snprintf(names[i], sizeof(names[i]), "%s", ev->name);
    }
  }
  char pid_name[64];
  snprintf(pid_name, sizeof(pid_name), ".pid.tmp.%d", (int)getpid());
  CHECK(strncmp(names[0], ".pid.tmp.", 9) == 0);
  CHECK(strcmp(names[0], names[1]) != 0);
  CHECK(strcmp(names[0], pid_name) != 0 && strcmp(names[1], pid_name) != 0);
  CHECK(faccessat(s.dfd, names[0], F_OK, AT_SYMLINK_NOFOLLOW) < 0);
  CHECK(faccessat(s.dfd, names[1], F_OK, AT_SYMLINK_NOFOLLOW) < 0);
  close(in);
  scratch_remove(&s);
}

/* A long name still gets a temporary name within NAME_MAX. */
static void a_long_name_fits(void) {
  struct scratch s;
  scratch_make(&s);
  char name[NAME_MAX + 1];
  memset(name, 'n', NAME_MAX);
  name[NAME_MAX] = '\0';
  struct rc_error e = {0};
  CHECK(rc_write_file_atomic(s.dfd, name, "45", 2, 0644, &e) == 0);
  check_regular(&s, name, "45");
  scratch_remove(&s);
}

/* A failure names the directory and the file. */
static void a_failure_names_the_path(void) {
  struct scratch s;
  scratch_make(&s);
  char sub[64];
  snprintf(sub, sizeof(sub), "%s/gone", s.dir);
  CHECK(mkdir(sub, 0700) == 0);
  int dfd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CHECK(dfd >= 0);
  CHECK(rmdir(sub) == 0);
  struct rc_error e = {0};
  CHECK(rc_write_file_atomic(dfd, "pid", "46", 2, 0644, &e) < 0);
  char want[128];
  snprintf(want, sizeof(want), "create a temporary file for %s", sub);
  CHECK_CONTAINS(e.msg, want);
  CHECK_CONTAINS(e.msg, "/pid: No such file or directory");
  close(dfd);
  scratch_remove(&s);
}

/* The name that will be used is already taken by a link to the victim: the open refuses
 * it (O_EXCL|O_NOFOLLOW), leaves it alone, and the next random name is used. */
static void a_link_at_the_very_name_to_be_used_is_not_followed(void) {
  struct scratch s;
  scratch_make(&s);
  const uint64_t values[] = {0x1111111111111111ull, 0x2222222222222222ull};
  plant_at(&s, values[0]);
  force_random(values, 2);
  struct rc_error e = {0};
  CHECK(rc_write_file_atomic(s.dfd, "pid", "42", 2, 0644, &e) == 0);
  n_forced = 0;
  check_victim(&s);
  check_regular(&s, "pid", "42");
  struct stat st;
  CHECK(fstatat(s.dfd, ".pid.tmp.1111111111111111", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode)); /* the planted link, untouched */
  scratch_remove(&s);
}

/* Every name it tries is taken: it gives up with a reason rather than write anywhere. */
static void every_name_taken_is_an_error(void) {
  struct scratch s;
  scratch_make(&s);
  uint64_t values[8];
  for (size_t i = 0; i < 8; i++) {
    values[i] = 0xa000000000000000ull + i;
    plant_at(&s, values[i]);
  }
  force_random(values, 8);
  struct rc_error e = {0};
  CHECK(rc_write_file_atomic(s.dfd, "pid", "42", 2, 0644, &e) < 0);
  n_forced = 0;
  CHECK_CONTAINS(e.msg, "random names were all taken");
  check_victim(&s);
  CHECK(faccessat(s.dfd, "pid", F_OK, AT_SYMLINK_NOFOLLOW) != 0);
  scratch_remove(&s);
}

UNIT_MAIN("util_atomic", UNIT_CASE(a_planted_temporary_name_is_not_written_through),
          UNIT_CASE(a_symlink_at_the_name_is_replaced),
          UNIT_CASE(temporary_names_are_unpredictable), UNIT_CASE(a_long_name_fits),
          UNIT_CASE(a_failure_names_the_path),
          UNIT_CASE(a_link_at_the_very_name_to_be_used_is_not_followed),
          UNIT_CASE(every_name_taken_is_an_error))
