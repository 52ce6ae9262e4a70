// bench_launch.c: what handing a launch to the CPU device's thread pool costs,
// against running it on the calling thread, and where the pool starts to win.
//
// Three kernels of known work: an empty one (the hand-off alone), a stream
// (out = a + b, 12 bytes an element) and an arithmetic one (64 multiply-adds
// an element on a value in a register: 128 FLOPs, 8 bytes). Each runs at a
// ladder of sizes on a one-thread device (always inline) and on a device with
// the given threads, launch by launch alternately, median of many launches.
// The sizes where the pool is faster say where the CPU device's inline
// threshold belongs (CPU_INLINE_WORK in runtime/runtime.h; the numbers are in
// docs/performance.md). Usage: bench-launch [THREADS]
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "runtime.h"

static void k_empty(char **bufs, int64_t begin, int64_t end, int64_t *ctx) {
  (void)bufs, (void)begin, (void)end, (void)ctx;
}

static void k_stream(char **bufs, int64_t begin, int64_t end, int64_t *ctx) {
  (void)ctx;
  float *o = (float *)bufs[0];
  const float *a = (const float *)bufs[1], *b = (const float *)bufs[2];
  for (int64_t i = begin; i < end; i++) o[i] = a[i] + b[i];
}

static void k_arith(char **bufs, int64_t begin, int64_t end, int64_t *ctx) {
  (void)ctx;
  float *o = (float *)bufs[0];
  const float *a = (const float *)bufs[1];
  for (int64_t i = begin; i < end; i++) {
    float x = a[i], y = 0.5f;
    for (int k = 0; k < 64; k++) y = y * x + 0.25f;
    o[i] = y;
  }
}

// Median microseconds of one launch of fn over count on d, interleaved with
// the same on e so that both see the same machine.
static void time_pair(Device *d, Device *e, KernelFn fn, char **bufs, int64_t count, double *td, double *te) {
  enum { MAXRUNS = 1001 };
  static double a[MAXRUNS], b[MAXRUNS];
  // fewer runs of the larger launches: about a second each
  int runs = count <= 4096 ? MAXRUNS : (int)(MAXRUNS * 4096 / count) | 1;
  if (runs < 51) runs = 51;
  for (int r = 0; r < runs; r++) {
    double t0 = bench_now();
    d->launch(d, (void *)fn, bufs, 0, count, 0, 0);
    double t1 = bench_now();
    e->launch(e, (void *)fn, bufs, 0, count, 0, 0);
    double t2 = bench_now();
    a[r] = (t1 - t0) * 1e6, b[r] = (t2 - t1) * 1e6;
  }
  *td = bench_median(a, runs), *te = bench_median(b, runs);
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  if (threads < 2 || threads > 256) {
    fprintf(stderr, "bench-launch: THREADS is a whole number from 2 to 256\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  Device *one, *pool;
  if (cpu_device_new(1, &one) || cpu_device_new(threads, &pool)) {
    fprintf(stderr, "bench-launch: %s\n", smelt_last_error());
    return 1;
  }
  enum { MAX = 1 << 18 };
  char *bufs[3];
  for (int i = 0; i < 3; i++) bufs[i] = calloc(MAX, sizeof(float));
  for (int i = 0; i < MAX; i++) ((float *)bufs[1])[i] = (float)(i % 7) * 0.125f;
  double ti, tp;
  // 1024 elements: above the count floor, so the pool takes it
  time_pair(one, pool, k_empty, bufs, 1024, &ti, &tp);
  printf("hand-off, %d threads: empty launch %.2f us inline, %.2f us through the pool\n", threads, ti, tp);
  struct { const char *name; KernelFn fn; double bytes, flops; } ks[] = {
      {"stream (12 B/elem)", k_stream, 12, 1},
      {"arith (128 FLOP/elem)", k_arith, 8, 128},
  };
  for (size_t k = 0; k < sizeof ks / sizeof *ks; k++) {
    printf("%-22s %9s %12s %12s %10s %10s\n", ks[k].name, "elements", "bytes", "FLOPs", "inline us", "pool us");
    for (int64_t n = 64; n <= MAX; n *= 2) {
      time_pair(one, pool, ks[k].fn, bufs, n, &ti, &tp);
      printf("%-22s %9lld %12.0f %12.0f %10.2f %10.2f%s\n", "", (long long)n, ks[k].bytes * (double)n,
             ks[k].flops * (double)n, ti, tp, tp < ti ? "  pool faster" : "");
    }
  }
  for (int i = 0; i < 3; i++) free(bufs[i]);
  one->destroy(one);
  pool->destroy(pool);
  return 0;
}
