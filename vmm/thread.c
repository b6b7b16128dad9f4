/* The VMM's threads start unprivileged (include/runcell/vmm/thread.h). */
#include "runcell/vmm/thread.h"

#include <errno.h>
#include <semaphore.h>
#include <stdbool.h>

#include "runcell/process_attrs.h"

struct thread_start {
  void *(*fn)(void *);
  void *arg;
  sem_t dropped;
  int rc;
  struct rc_error err;
};

static void *trampoline(void *p) {
  struct thread_start *s = p;
  void *(*fn)(void *) = s->fn;
  void *arg = s->arg;
  s->rc = rc_caps_drop_this_thread(&s->err);
  bool ok = s->rc == 0;
  sem_post(&s->dropped); /* s lives on the starter's stack: not touched after this */
  return ok ? fn(arg) : NULL;
}

int vmm_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg, struct rc_error *err) {
  struct thread_start s = {.fn = fn, .arg = arg};
  if (sem_init(&s.dropped, 0, 0) < 0) return rc_err(err, errno, "start a thread: semaphore");
  int e = pthread_create(thread, NULL, trampoline, &s);
  if (e != 0) {
    sem_destroy(&s.dropped);
    return rc_err(err, e, "start a thread");
  }
  while (sem_wait(&s.dropped) < 0 && errno == EINTR) {
  }
  sem_destroy(&s.dropped);
  if (s.rc < 0) {
    pthread_join(*thread, NULL);
    *err = s.err;
    return rc_err_wrap(err, "start a thread without capabilities");
  }
  return 0;
}
