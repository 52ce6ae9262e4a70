// failalloc.c: every allocation of the runtime fails in turn.
//
// Linked against libsmeltrt.a with -Wl,--wrap for malloc, calloc, realloc,
// strdup, posix_memalign and free, so every allocation the runtime's own code
// makes goes through the wrappers below (libc's and zlib's internal ones do
// not). A session's life — smelt_ingot_open, smelt_session_new on the CPU,
// smelt_set_input, smelt_run of infer, smelt_save, smelt_load — runs once
// counting allocations, then once for each N with the Nth allocation failing.
// Each run must either succeed (the failure was recovered from) or end with
// SMELT_ERR_OUT_OF_MEMORY and a message; and after smelt_session_free and
// smelt_ingot_close nothing the wrappers handed out may still be live.
//
//   usage: failalloc INGOT FOLDER   (FOLDER: where checkpoints are written)
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smelt.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);
void __real_free(void *p);

static long alloc_count;   // allocations so far in this run
static long fail_at;       // the allocation that fails (1-based); 0: none
static bool failed;        // whether it did

// The live allocations: an open-addressed set of pointers (tombstones on free).
enum { LIVE_CAP = 1 << 16 };
static void *live[LIVE_CAP];
static long nlive;
#define TOMB ((void *)1)

static size_t slot_of(void *p) { return ((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15u >> 48 & (LIVE_CAP - 1); }

static void live_add(void *p) {
  if (!p) return;
  size_t i = slot_of(p);
  while (live[i] && live[i] != TOMB) i = (i + 1) & (LIVE_CAP - 1);
  live[i] = p;
  nlive++;
}

// Removes p; false when the wrappers never handed it out (libc's getline, open_memstream).
static bool live_remove(void *p) {
  for (size_t i = slot_of(p); live[i]; i = (i + 1) & (LIVE_CAP - 1))
    if (live[i] == p) {
      live[i] = TOMB;
      nlive--;
      return true;
    }
  return false;
}

// Whether this allocation is the one that fails.
static bool inject(void) {
  if (++alloc_count != fail_at) return false;
  failed = true;
  errno = ENOMEM;   // as malloc does
  return true;
}

void *__wrap_malloc(size_t n) {
  void *p = inject() ? NULL : __real_malloc(n);
  live_add(p);
  return p;
}

void *__wrap_calloc(size_t n, size_t size) {
  void *p = inject() ? NULL : __real_calloc(n, size);
  live_add(p);
  return p;
}

void *__wrap_realloc(void *old, size_t n) {
  if (inject()) return NULL;   // old stays valid and live
  void *p = __real_realloc(old, n);
  if (p && old) live_remove(old);
  live_add(p);
  return p;
}

int __wrap_posix_memalign(void **out, size_t align, size_t n) {
  if (inject()) return ENOMEM;
  int rc = __real_posix_memalign(out, align, n);
  if (!rc) live_add(*out);
  return rc;
}

char *__wrap_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = __wrap_malloc(n);
  return p ? memcpy(p, s, n) : NULL;
}

void __wrap_free(void *p) {
  if (p) live_remove(p);
  __real_free(p);
}

static const char *ingot_path, *folder;

// One session's life; SMELT_OK or the first failure's status.
static smelt_status life(void) {
  smelt_ingot *ig;
  smelt_session *s;
  smelt_status st = smelt_ingot_open(ingot_path, &ig);
  if (st) return st;
  st = smelt_session_new(ig, "cpu", 1, &s);
  if (st) {
    smelt_ingot_close(ig);
    return st;
  }
  size_t bytes = smelt_tensor_bytes(s, "infer/x");
  static float x[1 << 16];
  char ckpt[4096];
  snprintf(ckpt, sizeof ckpt, "%s/m.ckpt", folder);
  if (bytes == 0 || bytes > sizeof x) st = SMELT_ERR_INVALID_ARGUMENT;
  if (!st) st = smelt_set_input(s, "infer", "x", x, bytes);
  if (!st) st = smelt_run(s, "infer", 1, 0);
  if (!st) st = smelt_save(s, ckpt);
  if (!st) st = smelt_load(s, ckpt);
  smelt_session_free(s);
  smelt_ingot_close(ig);
  return st;
}

// Runs life() with allocation n failing (0: none); 0 when it behaved.
static int trial(long n, long *allocs) {
  alloc_count = 0, fail_at = n, failed = false;
  long live_before = nlive;
  smelt_status st = life();
  fail_at = 0;
  *allocs = alloc_count;
  if (st && !(failed && st == SMELT_ERR_OUT_OF_MEMORY && smelt_last_error()[0])) {
    fprintf(stderr, "failalloc: allocation %ld failing: status %d (%s): %s\n", n, st, smelt_status_string(st),
            smelt_last_error());
    return 1;
  }
  if (nlive != live_before) {
    fprintf(stderr, "failalloc: allocation %ld failing: %ld allocations leaked\n", n, nlive - live_before);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: failalloc INGOT FOLDER\n");
    return 2;
  }
  ingot_path = argv[1], folder = argv[2];
  long total, allocs;
  if (trial(0, &total)) return 1;
  int bad = 0;
  for (long n = 1; n <= total; n++) {
    bad += trial(n, &allocs);
  }
  printf("failalloc: %ld allocations, each failed in turn: %d misbehaved\n", total, bad);
  return bad != 0;
}
