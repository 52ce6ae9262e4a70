// tempdir.c: private temporary folders for build objects and temporary
// ingots, removed on every way out.
//
// A predictable name in a shared /tmp can be planted by another user before
// smelt writes it, so every temporary file lives in a folder made by
// mkdtemp (mode 0700) under $TMPDIR, or /tmp when TMPDIR is unset or empty.
// The folders are registered: tempdir_remove removes one, an atexit hook the
// rest at exit, and a handler for SIGINT, SIGTERM, SIGHUP and SIGQUIT removes
// them all and raises the signal again with the disposition it found. The handler
// uses only system calls (getdents64, unlinkat, rmdir), which are safe in a
// signal handler; a folder holds plain files only.
#define _GNU_SOURCE   // syscall, getdents64
#include "compiler.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { TEMPDIR_MAX = 8 };

static char tempdir_paths[TEMPDIR_MAX][4096];
static volatile sig_atomic_t tempdir_used[TEMPDIR_MAX];   // 1 while tempdir_paths[i] is a live folder
static pid_t tempdir_owner;                                // the process that made them; a forked child leaves them alone

// Removes every entry of the folder dir, then the folder: system calls only.
static void tempdir_clear(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    char buf[4096];
    long n;
    while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
      for (long at = 0; at < n;) {
        struct dirent64 *e = (struct dirent64 *)(buf + at);
        at += e->d_reclen;
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlinkat(fd, e->d_name, 0);
      }
    }
    close(fd);
  }
  rmdir(dir);
}

void tempdir_remove_all(void) {
  if (getpid() != tempdir_owner) return;
  for (int i = 0; i < TEMPDIR_MAX; i++)
    if (tempdir_used[i]) {
      tempdir_clear(tempdir_paths[i]);
      tempdir_used[i] = 0;
    }
}

static const int tempdir_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
enum { TEMPDIR_NSIGNALS = sizeof tempdir_signals / sizeof tempdir_signals[0] };
static struct sigaction tempdir_previous[TEMPDIR_NSIGNALS];   // what each signal did before

static void tempdir_on_signal(int sig) {
  int saved = errno;
  tempdir_remove_all();
  for (int i = 0; i < TEMPDIR_NSIGNALS; i++)
    if (tempdir_signals[i] == sig) sigaction(sig, &tempdir_previous[i], NULL);
  raise(sig);   // pending until this returns; then the previous disposition acts (the default: the end)
  errno = saved;
}

// Installs the exit hook and the signal handlers once, each over the
// disposition it finds (a tool's handler, which still runs after it); a
// signal the caller ignores (nohup's SIGHUP) stays ignored.
static void tempdir_hooks_install(void) {
  static bool installed;
  if (installed) return;
  installed = true;
  tempdir_owner = getpid();
  atexit(tempdir_remove_all);
  for (int i = 0; i < TEMPDIR_NSIGNALS; i++) {
    struct sigaction sa = {.sa_handler = tempdir_on_signal};
    sigemptyset(&sa.sa_mask);
    if (sigaction(tempdir_signals[i], NULL, &tempdir_previous[i]) == 0 && tempdir_previous[i].sa_handler != SIG_IGN)
      sigaction(tempdir_signals[i], &sa, NULL);
  }
}

// The code generators' threads make folders at once (ptxas and the host link in parallel).
static pthread_mutex_t tempdir_lock = PTHREAD_MUTEX_INITIALIZER;

static int tempdir_create_locked(char *dir, size_t n, char *err, size_t errlen) {
  tempdir_hooks_install();
  const char *base = getenv("TMPDIR");
  if (!base || !base[0]) base = "/tmp";
  int slot = 0;
  while (slot < TEMPDIR_MAX && tempdir_used[slot]) slot++;
  if (slot == TEMPDIR_MAX) {
    snprintf(err, errlen, "too many temporary folders at once");
    return -1;
  }
  char *path = tempdir_paths[slot];
  int len = snprintf(path, sizeof tempdir_paths[0], "%s/smelt-XXXXXX", base);
  if (len < 0 || (size_t)len >= sizeof tempdir_paths[0] || (size_t)len >= n) {
    snprintf(err, errlen, "TMPDIR is too long (%.200s...)", base);
    return -1;
  }
  if (!mkdtemp(path)) {
    snprintf(err, errlen, "cannot create a temporary folder in '%s' (TMPDIR): %s", base, strerror(errno));
    return -1;
  }
  tempdir_used[slot] = 1;
  memcpy(dir, tempdir_paths[slot], (size_t)len + 1);
  return 0;
}

int tempdir_create(char *dir, size_t n, char *err, size_t errlen) {
  pthread_mutex_lock(&tempdir_lock);
  int rc = tempdir_create_locked(dir, n, err, errlen);
  pthread_mutex_unlock(&tempdir_lock);
  return rc;
}

void tempdir_remove(const char *dir) {
  pthread_mutex_lock(&tempdir_lock);
  for (int i = 0; i < TEMPDIR_MAX; i++)
    if (tempdir_used[i] && !strcmp(tempdir_paths[i], dir)) {
      tempdir_clear(tempdir_paths[i]);
      tempdir_used[i] = 0;
    }
  pthread_mutex_unlock(&tempdir_lock);
}
