// bench_fusion.c: what fusion buys on the CPU, fusion off against on.
//
// For the MLP and a small GPT, the training step is built twice (--fusion=none
// and --fusion=all); for each the table gives kernels per step, bytes moved per
// step (the compiler's estimate: each stored tensor a kernel reads once, its
// outputs once), the planned peak arena, and the median CPU step time. The two
// builds run alternately, step by step, so both see the same machine noise;
// the last column is the ratio of their medians.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "compiler.h"
#include "smelt.h"

typedef struct {
  const char *name, *path;
  Define defs[6];
  int ndefs;
  const char *in_f32, *in_ids, *in_ids2;   // inputs: features, and ids below `ids`
  int ids;
} Model;

typedef struct {
  int kernels;
  uint64_t moved, arena, intermediates;
  smelt_ingot *ig;
  smelt_session *s;
  double t[64];
} Run;

static int build(const Model *md, FusionMode mode, int threads, Run *b) {
  char path[96];
  snprintf(path, sizeof path, "/tmp/bench-fusion-%d-%s.ingot", (int)getpid(), fusion_mode_name(mode));
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_file(&c, md->path);
  if (check_modules(&c, &m, 1, md->defs, md->ndefs)) return -1;
  BuildTargets t = {.cpu = NULL, .fusion = mode};
  Build built;   // entries[0]: train_step
  if (pipeline_build(&c, m, md->defs, md->ndefs, &t, &built) || ingot_write(&c, m, &built, md->defs, md->ndefs, &t, NULL, path, NULL))
    return -1;
  explain_stats(&built.entries[0].g, &built.entries[0].plan, &b->kernels, &b->moved, &b->arena, &b->intermediates);
  build_free(&built);
  compilation_free(&c);
  if (smelt_ingot_open(path, &b->ig) || smelt_session_new(b->ig, "cpu", threads, &b->s)) {
    fprintf(stderr, "%s\n", smelt_last_error());
    return -1;
  }
  unlink(path);
  return 0;
}

static int feed(const Model *md, Run *b) {
  const char *names[3] = {md->in_f32, md->in_ids, md->in_ids2};
  for (int k = 0; k < 3; k++) {
    if (!names[k]) continue;
    char full[64];
    snprintf(full, sizeof full, "train_step/%s", names[k]);
    size_t bytes = smelt_tensor_bytes(b->s, full);
    char *data = malloc(bytes);
    for (size_t i = 0; i < bytes / 4; i++) {
      if (k == 0) ((float *)data)[i] = (float)(i % 251) / 251.0f;
      else ((int *)data)[i] = (int)((i * 7 + (size_t)k) % (size_t)md->ids);
    }
    int rc = smelt_set_input(b->s, "train_step", names[k], data, bytes);
    free(data);
    if (rc) return fprintf(stderr, "%s\n", smelt_last_error()), -1;
  }
  return 0;
}

static void mb(char *buf, size_t n, uint64_t bytes) { snprintf(buf, n, "%.2f MB", (double)bytes / 1e6); }

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  const Model models[] = {
      {"mlp", "examples/mlp.smelt", {{0}}, 0, "x", "y", NULL, 10},
      {"gpt", "examples/gpt.smelt", {{"B", 4}, {"T", 64}, {"C", 128}, {"L", 2}, {"H", 4}}, 5, NULL, "idx", "targets", 256},
  };
  printf("fusion on the CPU (%d threads): training step, fusion none against all, steps alternating\n\n", threads);
  printf("| model | fusion | kernels | bytes moved | peak arena | of intermediates | step (ms) |\n");
  printf("|---|---|---:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
    const Model *md = &models[i];
    Run b[2];
    memset(b, 0, sizeof b);
    if (build(md, FUSION_NONE, threads, &b[0]) || build(md, FUSION_ALL, threads, &b[1])) return 1;
    if (feed(md, &b[0]) || feed(md, &b[1])) return 1;
    enum { WARM = 3, RUNS = 31 };
    for (int r = 0; r < WARM + RUNS; r++)
      for (int k = 0; k < 2; k++) {
        int which = (r & 1) ? 1 - k : k;   // alternate which goes first
        double t0 = bench_now();
        if (smelt_run(b[which].s, "train_step", 1, (uint64_t)r)) return fprintf(stderr, "%s\n", smelt_last_error()), 1;
        if (r >= WARM) b[which].t[r - WARM] = bench_now() - t0;
      }
    double med[2];
    for (int k = 0; k < 2; k++) {
      med[k] = bench_median(b[k].t, RUNS) * 1e3;
      char moved[32], arena[32];
      mb(moved, sizeof moved, b[k].moved);
      mb(arena, sizeof arena, b[k].arena);
      printf("| %s | %s | %d | %s | %s | %.2f | %.3f |\n", md->name, k ? "all" : "none", b[k].kernels, moved, arena,
             (double)b[k].arena / (double)b[k].intermediates, med[k]);
    }
    printf("| %s | on/off | %.2fx fewer | %.2fx less | %.2fx | | %.2f |\n", md->name, (double)b[0].kernels / b[1].kernels,
           (double)b[0].moved / (double)b[1].moved, (double)b[1].arena / (double)b[0].arena, med[1] / med[0]);
    for (int k = 0; k < 2; k++) {
      smelt_session_free(b[k].s);
      smelt_ingot_close(b[k].ig);
    }
  }
  return 0;
}
