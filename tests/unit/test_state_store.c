/* The state store: id validation, create/open/lock semantics, atomic state, refresh. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runcell/state_store.h"
#include "runcell/util.h"
#include "unit.h"

static void ids_are_validated(void) {
  struct rc_error e;
  CHECK(rc_state_validate_id("abc-1_2.3+x", &e) == 0);
  CHECK(rc_state_validate_id("", &e) < 0);
  CHECK_CONTAINS(e.msg, "invalid container id format");
  CHECK(rc_state_validate_id("a/b", &e) < 0);
  CHECK_STR_EQ(e.msg, "invalid container id format: a/b");
  CHECK(rc_state_validate_id("..", &e) < 0);
  CHECK(rc_state_validate_id(".", &e) < 0);
  CHECK(rc_state_validate_id("a b", &e) < 0);
  char *long_id = malloc(RC_ID_MAX + 2);
  memset(long_id, 'a', RC_ID_MAX + 1);
  long_id[RC_ID_MAX + 1] = '\0';
  CHECK(rc_state_validate_id(long_id, &e) < 0);
  CHECK_CONTAINS(e.msg, "longer than");
  long_id[RC_ID_MAX] = '\0';
  CHECK(rc_state_validate_id(long_id, &e) == 0);
  free(long_id);
}

static void create_open_save_remove(void) {
  char root[] = "/tmp/runcell-unit-root-XXXXXX";
  CHECK(mkdtemp(root) != NULL);
  struct rc_error e;
  struct rc_container_dir d;
  CHECK(rc_state_dir_open(root, "c1", &d, &e) < 0);
  CHECK_STR_EQ(e.msg, "container does not exist");
  CHECK(rc_state_dir_create(root, "c1", &d, &e) == 0);
  struct rc_container_dir d2;
  CHECK(rc_state_dir_create(root, "c1", &d2, &e) < 0);
  CHECK_STR_EQ(e.msg, "container with id exists: c1");

  struct oci_state st = {.oci_version = "1.2.0",
                         .id = "c1",
                         .status = OCI_STATUS_CREATED,
                         .pid = getpid(),
                         .pid_start_time = rc_pid_start_time(getpid()),
                         .bundle = "/b",
                         .rootfs = "/b/rootfs",
                         .created = "2026-01-01T00:00:00Z",
                         .owner = "",
                         .cgroup_path = "/runcell/c1",
                         .mode = "native"};
  CHECK(rc_state_save(&d, &st, &e) == 0);
  struct oci_state *back = NULL;
  CHECK(rc_state_load(&d, &back, &e) == 0);
  if (back) {
    CHECK_STR_EQ(back->id, "c1");
    CHECK(back->pid == getpid());
    CHECK(back->status == OCI_STATUS_CREATED);
    rc_state_refresh(back); /* we are alive: stays created */
    CHECK(back->status == OCI_STATUS_CREATED);
    back->pid_start_time += 1; /* a reused pid: stopped */
    rc_state_refresh(back);
    CHECK(back->status == OCI_STATUS_STOPPED);
    oci_state_free(back);
  }
  /* A state too large to read back is never written: the one saved above stays. */
  size_t big_len = RC_STATE_MAX + 1;
  char *big = malloc(big_len + 1);
  memset(big, 'x', big_len);
  big[big_len] = '\0';
  struct oci_key_value kv = {.key = "big", .value = big};
  struct oci_state huge = st;
  huge.annotations = &kv;
  huge.n_annotations = 1;
  CHECK(rc_state_save(&d, &huge, &e) < 0);
  CHECK(e.code == EFBIG);
  CHECK_CONTAINS(e.msg, "more than a state may be");
  free(big);
  back = NULL;
  CHECK(rc_state_load(&d, &back, &e) == 0);
  if (back) {
    CHECK(back->n_annotations == 0);
    oci_state_free(back);
  }
  /* No temp files (.state.json.tmp.<random>) are left next to state.json. */
  char *dir_path = rc_xasprintf("%s/c1", root);
  DIR *dir = opendir(dir_path);
  CHECK(dir != NULL);
  int temps = 0;
  for (struct dirent *de; dir && (de = readdir(dir));)
    temps += strncmp(de->d_name, ".state.json.tmp.", 16) == 0;
  if (dir) closedir(dir);
  CHECK(temps == 0);
  free(dir_path);

  /* A second opener blocks on the lock until the first closes; a waiter that gets the lock
   * after the directory was removed sees "does not exist". */
  pid_t child = fork();
  if (child == 0) {
    /* The inherited fd shares the parent's lock: drop it, as the container init does. */
    close(d.dirfd);
    struct rc_container_dir cd;
    struct rc_error ce;
    int r = rc_state_dir_open(root, "c1", &cd, &ce);
    _exit(r < 0 && strcmp(ce.msg, "container does not exist") == 0 ? 0 : 1);
  }
  usleep(100000);
  CHECK(rc_state_dir_remove(&d, &e) == 0);
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  struct stat sb;
  char *cdir = rc_xasprintf("%s/c1", root);
  CHECK(stat(cdir, &sb) < 0 && errno == ENOENT);
  free(cdir);
  rmdir(root);
}

static void dead_process_is_stopped(void) {
  pid_t child = fork();
  if (child == 0) _exit(0);
  int status;
  unsigned long long start = rc_pid_start_time(child);
  waitpid(child, &status, 0);
  struct oci_state st = {.status = OCI_STATUS_RUNNING, .pid = child, .pid_start_time = start};
  rc_state_refresh(&st);
  CHECK(st.status == OCI_STATUS_STOPPED);
  CHECK(rc_state_open_pidfd(&st) < 0);
}

static void zombie_is_stopped(void) {
  pid_t child = fork();
  if (child == 0) _exit(0);
  unsigned long long start = rc_pid_start_time(child);
  /* Let it become a zombie; we do not reap it yet. */
  for (int i = 0; i < 500 && rc_pid_start_time(child) != 0; i++) usleep(10000);
  struct oci_state st = {.status = OCI_STATUS_RUNNING, .pid = child, .pid_start_time = start};
  rc_state_refresh(&st);
  CHECK(st.status == OCI_STATUS_STOPPED);
  waitpid(child, NULL, 0);
}

UNIT_MAIN("state_store", UNIT_CASE(ids_are_validated), UNIT_CASE(create_open_save_remove),
          UNIT_CASE(dead_process_is_stopped), UNIT_CASE(zombie_is_stopped))
