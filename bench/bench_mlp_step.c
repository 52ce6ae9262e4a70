// bench_mlp_step.c: the MLP training step (batch 128) on smelt's CPU device.
//
// Builds examples/mlp.smelt for this CPU, runs train_step on random data,
// and prints the median milliseconds per step of 30 after a warm-up, as
// "smelt_ms=<value>", for bench/compare_mlp.py to set beside PyTorch.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "compiler.h"
#include "smelt.h"

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  char path[64];
  snprintf(path, sizeof path, "/tmp/bench-mlp-%d.ingot", (int)getpid());
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, argv[0]);
  Module *m = module_load_file(&c, "examples/mlp.smelt");
  if (check_modules(&c, &m, 1, NULL, 0) || ingot_build(&c, m, NULL, 0, &(BuildTargets){0}, path)) return 1;
  compilation_free(&c);
  smelt_ingot *ig;
  smelt_session *s;
  if (smelt_ingot_open(path, &ig) || smelt_session_new(ig, "cpu", threads, &s)) {
    fprintf(stderr, "%s\n", smelt_last_error());
    return 1;
  }
  unlink(path);
  size_t xb = smelt_tensor_bytes(s, "train_step/x"), yb = smelt_tensor_bytes(s, "train_step/y");
  float *x = malloc(xb);
  int *y = malloc(yb);
  for (size_t i = 0; i < xb / 4; i++) x[i] = (float)(i % 251) / 251.0f;
  for (size_t i = 0; i < yb / 4; i++) y[i] = (int)(i % 10);
  enum { WARM = 5, RUNS = 30 };
  double t[RUNS];
  for (int r = 0; r < WARM + RUNS; r++) {
    double t0 = bench_now();
    smelt_set_input(s, "train_step", "x", x, xb);
    smelt_set_input(s, "train_step", "y", y, yb);
    if (smelt_run(s, "train_step", 1, (uint64_t)r)) return fprintf(stderr, "%s\n", smelt_last_error()), 1;
    if (r >= WARM) t[r - WARM] = bench_now() - t0;
  }
  printf("smelt_ms=%.3f\n", bench_median(t, RUNS) * 1e3);
  free(x);
  free(y);
  smelt_session_free(s);
  smelt_ingot_close(ig);
  return 0;
}
