// bench_matmul.c: smelt's host matmul against OpenBLAS, side by side.
//
// A 512 x 512 x 512 f32 matmul compiled by smelt into an ingot and run by
// the runtime on the CPU (one launch per run), and cblas_sgemm from OpenBLAS (opened with dlopen,
// skipped with a note when absent), alternately, with the same thread count;
// prints the median GFLOP/s of each and their ratio. Both results are checked
// against each other first.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "compiler.h"
#include "smelt.h"

#define N 512
#define REPS 35

typedef void (*Sgemm)(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc);

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  const char *src = "model m {\n  input a: f32[512, 512]\n  input b: f32[512, 512]\n  output c = a @ b\n}\n";
  char path[64];
  snprintf(path, sizeof path, "/tmp/bench-mm-%d.ingot", (int)getpid());
  Compilation comp;
  compilation_init(&comp, stderr);
  Module *m = module_load_text(&comp, "mm.smelt", src, strlen(src));
  BuildTargets targets = {.infer_only = true};
  int failed = check_modules(&comp, &m, 1, NULL, 0) || ingot_build(&comp, m, NULL, 0, &targets, path);
  compilation_free(&comp);
  if (failed) return 1;
  smelt_ingot *ig;
  smelt_session *sess;
  if (smelt_ingot_open(path, &ig) || smelt_session_new(ig, "cpu", threads, &sess))
    return fprintf(stderr, "%s\n", smelt_last_error()), 1;
  unlink(path);
  float *a = malloc(4 * N * N), *b = malloc(4 * N * N), *c1 = malloc(4 * N * N), *c2 = malloc(4 * N * N);
  for (int i = 0; i < N * N; i++) a[i] = (float)((i * 37) % 101) / 101 - 0.5f, b[i] = (float)((i * 53) % 97) / 97 - 0.5f;
  if (smelt_set_input(sess, "infer", "a", a, 4 * N * N) || smelt_set_input(sess, "infer", "b", b, 4 * N * N))
    return fprintf(stderr, "%s\n", smelt_last_error()), 1;

  void *lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
  Sgemm sgemm = lib ? (Sgemm)(uintptr_t)dlsym(lib, "cblas_sgemm") : NULL;
  void (*set_threads)(int) = lib ? (void (*)(int))(uintptr_t)dlsym(lib, "openblas_set_num_threads") : NULL;
  char *(*corename)(void) = lib ? (char *(*)(void))(uintptr_t)dlsym(lib, "openblas_get_corename") : NULL;
  if (set_threads) set_threads(threads);

  double ts[REPS], tb[REPS];
  double flop = 2.0 * N * N * N;
  for (int w = 0; w < 3; w++) smelt_run(sess, "infer", 1, 0);   // warm-up
  if (smelt_get_output(sess, "infer", "c", c1, 4 * N * N)) return fprintf(stderr, "%s\n", smelt_last_error()), 1;
  if (sgemm) sgemm(101, 111, 111, N, N, N, 1, a, N, b, N, 0, c2, N);
  if (sgemm) {
    double e = 0, r = 0;
    for (int i = 0; i < N * N; i++) e += (c1[i] - c2[i]) * (c1[i] - c2[i]), r += c2[i] * c2[i];
    if (sqrt(e / r) > 1e-5) return fprintf(stderr, "results differ: %g\n", sqrt(e / r)), 1;
  }
  // Blocks of runs with a pause between them, so neither side's threads are
  // still busy (OpenBLAS spins its workers after a call, so do we) while the
  // other is timed.
  enum { BLOCK = 7 };
  struct timespec pause = {0, 200 * 1000 * 1000};
  for (int r = 0; r < REPS; r += BLOCK) {
    nanosleep(&pause, NULL);
    for (int i = r; i < r + BLOCK && i < REPS; i++) {
      double t0 = bench_now();
      smelt_run(sess, "infer", 1, 0);
      ts[i] = bench_now() - t0;
    }
    if (!sgemm) continue;
    nanosleep(&pause, NULL);
    for (int i = r; i < r + BLOCK && i < REPS; i++) {
      double t0 = bench_now();
      sgemm(101, 111, 111, N, N, N, 1, a, N, b, N, 0, c2, N);
      tb[i] = bench_now() - t0;
    }
  }
  double ms = bench_median(ts, REPS), mb = sgemm ? bench_median(tb, REPS) : 0;
  printf("| matmul 512^3 f32, %d threads | smelt %.1f GFLOP/s | ", threads, flop / ms / 1e9);
  if (sgemm)
    printf("OpenBLAS (%s) %.1f GFLOP/s | ratio %.2f |\n", corename ? corename() : "?", flop / mb / 1e9, mb / ms);
  else
    printf("OpenBLAS skipped: libopenblas.so.0 not found | - |\n");
  smelt_session_free(sess);
  smelt_ingot_close(ig);
  free(a), free(b), free(c1), free(c2);
  return 0;
}
