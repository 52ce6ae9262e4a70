// bench_matmul.c: smelt's host matmul against OpenBLAS, side by side.
//
// 512^3 and 2048^3 f32 matmuls compiled by smelt for this machine's CPU into
// an ingot and run by the runtime on the CPU (one launch per run), and
// cblas_sgemm from OpenBLAS (opened with dlopen, skipped with a note when
// absent), alternately, with the same thread count; prints the CPU, the
// median GFLOP/s of each and their ratio. Both results are checked against
// each other first.
//
// OpenBLAS picks its kernels by the CPU it detects, and on a CPU it does not
// know (or in a VM that hides the model) it falls back to Prescott's SSE3
// code, a third of its speed: a ratio against that flatters smelt. Unless
// OPENBLAS_CORETYPE is set, the bench names the core for the CPU's vector
// ISA (SkylakeX for AVX-512, Haswell for AVX2) before loading the library.
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

typedef void (*Sgemm)(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc);

// /proc/cpuinfo's model name, or "unknown CPU".
static void cpu_model(char *out, size_t n) {
  snprintf(out, n, "unknown CPU");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    char *colon = strchr(line, ':');
    if (strncmp(line, "model name", 10) || !colon) continue;
    colon += 1 + (colon[1] == ' ');
    colon[strcspn(colon, "\n")] = 0;
    snprintf(out, n, "%s", colon);
    break;
  }
  fclose(f);
}

// One size: smelt's ingot and sgemm, alternating blocks of runs; 0 or 1.
static int bench_size(int n, int reps, int threads, Sgemm sgemm, const char *blas) {
  char src[256], path[64];
  snprintf(src, sizeof src, "model m {\n  input a: f32[%d, %d]\n  input b: f32[%d, %d]\n  output c = a @ b\n}\n", n, n, n, n);
  snprintf(path, sizeof path, "/tmp/bench-mm-%d.ingot", (int)getpid());
  Compilation comp;
  compilation_init(&comp, stderr);
  Module *m = module_load_text(&comp, "mm.smelt", src, strlen(src));
  BuildTargets targets = {.infer_only = true};   // cpu NULL: this machine's
  int failed = check_modules(&comp, &m, 1, NULL, 0) || ingot_build(&comp, m, NULL, 0, &targets, path);
  compilation_free(&comp);
  if (failed) return 1;
  smelt_ingot *ig;
  smelt_session *sess;
  if (smelt_ingot_open(path, &ig) || smelt_session_new(ig, "cpu", threads, &sess))
    return fprintf(stderr, "%s\n", smelt_last_error()), 1;
  unlink(path);
  size_t bytes = 4 * (size_t)n * (size_t)n;
  float *a = malloc(bytes), *b = malloc(bytes), *c1 = malloc(bytes), *c2 = malloc(bytes);
  for (size_t i = 0; i < (size_t)n * (size_t)n; i++)
    a[i] = (float)((i * 37) % 101) / 101 - 0.5f, b[i] = (float)((i * 53) % 97) / 97 - 0.5f;
  if (smelt_set_input(sess, "infer", "a", a, bytes) || smelt_set_input(sess, "infer", "b", b, bytes))
    return fprintf(stderr, "%s\n", smelt_last_error()), 1;
  double *ts = malloc(sizeof(double) * (size_t)reps), *tb = malloc(sizeof(double) * (size_t)reps);
  double flop = 2.0 * n * n * n;
  for (int w = 0; w < 3; w++) smelt_run(sess, "infer", 1, 0);   // warm-up
  if (smelt_get_output(sess, "infer", "c", c1, bytes)) return fprintf(stderr, "%s\n", smelt_last_error()), 1;
  if (sgemm) {
    sgemm(101, 111, 111, n, n, n, 1, a, n, b, n, 0, c2, n);
    double e = 0, r = 0;
    for (size_t i = 0; i < (size_t)n * (size_t)n; i++) e += (c1[i] - c2[i]) * (c1[i] - c2[i]), r += c2[i] * c2[i];
    if (sqrt(e / r) > 1e-5) return fprintf(stderr, "results differ: %g\n", sqrt(e / r)), 1;
  }
  // Blocks of runs with a pause between them, so neither side's threads are
  // still busy (OpenBLAS spins its workers after a call, so do we) while the
  // other is timed.
  enum { BLOCK = 7 };
  struct timespec pause = {0, 200 * 1000 * 1000};
  for (int r = 0; r < reps; r += BLOCK) {
    nanosleep(&pause, NULL);
    for (int i = r; i < r + BLOCK && i < reps; i++) {
      double t0 = bench_now();
      smelt_run(sess, "infer", 1, 0);
      ts[i] = bench_now() - t0;
    }
    if (!sgemm) continue;
    nanosleep(&pause, NULL);
    for (int i = r; i < r + BLOCK && i < reps; i++) {
      double t0 = bench_now();
      sgemm(101, 111, 111, n, n, n, 1, a, n, b, n, 0, c2, n);
      tb[i] = bench_now() - t0;
    }
  }
  double ms = bench_median(ts, reps), mb = sgemm ? bench_median(tb, reps) : 0;
  printf("| matmul %d^3 f32, %d threads | smelt %.1f GFLOP/s | ", n, threads, flop / ms / 1e9);
  if (sgemm)
    printf("OpenBLAS (%s) %.1f GFLOP/s | ratio %.2f |\n", blas, flop / mb / 1e9, mb / ms);
  else
    printf("OpenBLAS skipped: libopenblas.so.0 not found | - |\n");
  smelt_session_free(sess);
  smelt_ingot_close(ig);
  free(a), free(b), free(c1), free(c2), free(ts), free(tb);
  return 0;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  __builtin_cpu_init();
  const char *isa = __builtin_cpu_supports("avx512f") ? "AVX-512" : __builtin_cpu_supports("avx2") ? "AVX2" : "SSE";
  if (!getenv("OPENBLAS_CORETYPE") && strcmp(isa, "SSE")) setenv("OPENBLAS_CORETYPE", strcmp(isa, "AVX2") ? "SkylakeX" : "Haswell", 1);
  char model[256];
  cpu_model(model, sizeof model);
  void *lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
  Sgemm sgemm = lib ? (Sgemm)(uintptr_t)dlsym(lib, "cblas_sgemm") : NULL;
  void (*set_threads)(int) = lib ? (void (*)(int))(uintptr_t)dlsym(lib, "openblas_set_num_threads") : NULL;
  char *(*corename)(void) = lib ? (char *(*)(void))(uintptr_t)dlsym(lib, "openblas_get_corename") : NULL;
  if (set_threads) set_threads(threads);
  const char *blas = corename ? corename() : "?";
  printf("matmul on %s (%s; smelt compiled for this CPU, OpenBLAS core %s)\n", model, isa, sgemm ? blas : "none");
  static const int sizes[][2] = {{512, 35}, {2048, 7}};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
    if (bench_size(sizes[i][0], sizes[i][1], threads, sgemm, blas)) return 1;
  return 0;
}
