// test_memplan.c: the arena planner.
//
// On every example's training step and on random lifetimes: no two buffers
// that are live together overlap, and, replaying the schedule over the
// arena's 64-byte granules, every read finds the granules still holding what
// its producer wrote. A golden table pins each example's planned arena: a
// change to planning or to the kernels that moves it must update the table on
// purpose.
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime.h"
#include "support.h"

typedef struct {
  const KernelPlan *p;
  const MemBuf *b;
  int *owner;      // by granule: the slot whose value it holds, or -1
  const char *what;
  int at;
} Replay;

static void check_read(void *ctx, const Node *n) {
  Replay *r = ctx;
  int s = r->p->slot[n->id];
  const MemBuf *m = &r->b[s];
  if (n->op == OP_PARAM || n->op == OP_STATE) return;
  for (uint64_t g = m->offset / 64; g < (m->offset + m->bytes + 63) / 64; g++)
    cr_assert_eq(r->owner[g], s, "%s: launch %d reads slot %d, but granule %llu holds slot %d", r->what, r->at, s,
                 (unsigned long long)g, r->owner[g]);
}

// Plans a model's training step (or forward graph) and checks the plan; returns the arena size.
static uint64_t plan_model(const char *path, const Define *defs, int ndefs, FusionMode mode, uint64_t *unplanned,
                           int *kernels) {
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_file(&c, path);
  cr_assert_eq(check_modules(&c, &m, 1, defs, ndefs), 0);
  Entry e;   // as smelt build compiles it
  cr_assert_eq(pipeline_entry(&c, m, "train_step", &(EntryOptions){defs, ndefs, .last = PASS_MEMPLAN, .fusion = mode, .prefix = ""}, &e), 0);
  const Graph *g = &e.g;
  KernelPlan *p = &e.plan;
  *kernels = p->n;
  MemBuf *b = e.mem;
  bool *in = e.in_arena;
  uint64_t arena = e.arena;
  *unplanned = e.unplanned;
  char err[256];
  cr_assert(memplan_check(b, in, p->nslots, arena, err, sizeof err), "%s: %s", path, err);
  // replay: inputs hold their values from the start; each launch checks its reads, then writes
  int *owner = malloc(sizeof(int) * (size_t)(arena / 64 + 1));
  for (uint64_t i = 0; i <= arena / 64; i++) owner[i] = -1;
  Replay r = {p, b, owner, path, 0};
  for (int s = 0; s < p->nslots; s++)
    if (p->slot_node[s]->op == OP_INPUT)
      for (uint64_t gi = b[s].offset / 64; gi < (b[s].offset + b[s].bytes + 63) / 64; gi++) owner[gi] = s;
  for (int k = 0; k < p->n; k++) {
    r.at = k;
    kernel_reads(p, &p->kernels[k], check_read, &r);
    for (int j = 0; j < p->kernels[k].nouts; j++) {
      int s = p->slot[p->kernels[k].outs[j]->id];
      for (uint64_t gi = b[s].offset / 64; gi < (b[s].offset + b[s].bytes + 63) / 64; gi++) owner[gi] = s;
    }
  }
  for (int i = 0; i < g->noutputs; i++) check_read(&r, g->outputs[i].node);   // outputs survive to the end
  free(owner);
  entry_free(&e);
  compilation_free(&c);
  return arena;
}

TEST(memplan, examples_plan_without_overlap_and_reads_see_their_writes) {
  // The golden table: kernels and planned arena bytes of each example's
  // training step at these sizes, with fusion off and on. A change to fusion
  // or planning that moves them must update the table on purpose. Each
  // cross_entropy checks its labels in a kernel of its own (LABEL): one
  // kernel per call, so the LSTM's eight calls add eight without fusion and
  // seven with it. The step counter is an i64 and the schedule reads it as
  // f32: the cast is one kernel more without fusion.
  static const struct {
    const char *path;
    Define defs[6];
    int ndefs;
    int kernels_none, kernels_all;
    uint64_t arena_none, arena_all;
  } cases[] = {
      {"examples/mlp.smelt", {{0}}, 0, 166, 24, 4958144, 4716608},
      {"examples/cnn.smelt", {{"B", 8}}, 1, 204, 39, 8407808, 6802176},
      {"examples/gpt.smelt", {{"B", 2}, {"T", 16}, {"C", 32}, {"L", 2}, {"H", 2}}, 5, 919, 153, 595584, 580224},
      {"examples/lstm.smelt", {{"B", 4}, {"T", 8}, {"E", 16}, {"H", 32}}, 4, 815, 197, 335552, 305792},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    uint64_t unplanned0, unplanned;
    int k0, k;
    uint64_t a0 = plan_model(cases[i].path, cases[i].defs, cases[i].ndefs, FUSION_NONE, &unplanned0, &k0);
    uint64_t a = plan_model(cases[i].path, cases[i].defs, cases[i].ndefs, FUSION_ALL, &unplanned, &k);
    cr_log_info("%s: fusion none %d kernels, arena %llu of %llu; all %d kernels, arena %llu of %llu", cases[i].path, k0,
                (unsigned long long)a0, (unsigned long long)unplanned0, k, (unsigned long long)a, (unsigned long long)unplanned);
    cr_expect_eq(k0, cases[i].kernels_none, "%s: %d kernels without fusion, the table says %d", cases[i].path, k0,
                 cases[i].kernels_none);
    cr_expect_eq(k, cases[i].kernels_all, "%s: %d kernels with fusion, the table says %d", cases[i].path, k,
                 cases[i].kernels_all);
    cr_expect_eq(a0, cases[i].arena_none, "%s: planned arena %llu bytes without fusion, the table says %llu", cases[i].path,
                 (unsigned long long)a0, (unsigned long long)cases[i].arena_none);
    cr_expect_eq(a, cases[i].arena_all, "%s: planned arena %llu bytes with fusion, the table says %llu", cases[i].path,
                 (unsigned long long)a, (unsigned long long)cases[i].arena_all);
    cr_expect_leq(a, a0, "%s: fusion raised the peak arena", cases[i].path);
  }
}

// Recomputation lowers the GPT example's peak arena at its default sizes
// (where forward activations make the peak) and the step stays within the
// planner's invariant.
TEST(memplan, remat_lowers_the_gpt_peak) {
  uint64_t a[2];
  for (int r = 0; r < 2; r++) {
    Compilation c;
    compilation_init(&c, stderr);
    compilation_default_search(&c, NULL);
    Module *m = module_load_file(&c, "examples/gpt.smelt");
    cr_assert_eq(check_modules(&c, &m, 1, NULL, 0), 0);
    RematStats st = {0};
    Entry e;
    cr_assert_eq(pipeline_entry(&c, m, "train_step", &(EntryOptions){.remat = r, .remat_stats = &st, .prefix = ""}, &e), 0);
    a[r] = e.arena;
    char err[256];
    cr_assert(memplan_check(e.mem, e.in_arena, e.plan.nslots, a[r], err, sizeof err), "%s", err);
    if (r) cr_expect_gt(st.values, 0);
    entry_free(&e);
    compilation_free(&c);
  }
  cr_log_info("GPT step: peak arena %llu bytes, %llu with recomputation", (unsigned long long)a[0], (unsigned long long)a[1]);
  cr_expect_lt(a[1] * 10, a[0] * 7, "recomputation should save at least 30%% (%llu -> %llu)", (unsigned long long)a[0],
               (unsigned long long)a[1]);
}

// The targets on the GPT example's training step: at least 3x fewer kernels
// with fusion than without, and a planned arena at most half the sum of its
// intermediates.
TEST(memplan, gpt_step_targets) {
  Define defs[] = {{"B", 2}, {"T", 16}, {"C", 32}, {"L", 2}, {"H", 2}};
  uint64_t unplanned0, unplanned;
  int k0, k;
  plan_model("examples/gpt.smelt", defs, 5, FUSION_NONE, &unplanned0, &k0);
  uint64_t a = plan_model("examples/gpt.smelt", defs, 5, FUSION_ALL, &unplanned, &k);
  cr_expect_geq(k0, 3 * k, "%d kernels without fusion, %d with", k0, k);
  cr_expect_leq(2 * a, unplanned, "arena %llu of %llu", (unsigned long long)a, (unsigned long long)unplanned);
}

TEST(memplan, random_lifetimes_never_overlap) {
  uint64_t x = 88172645463325252ull;
  for (int trial = 0; trial < 200; trial++) {
    int n = 1 + (int)(x % 60);
    MemBuf b[64];
    bool in[64], taken[64] = {false};
    for (int i = 0; i < n; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      int first = (int)(x % 40), len = (int)((x >> 8) % 12);
      b[i] = (MemBuf){.bytes = (x >> 16) % 5000, .first = first, .last = first + len, .reuses = -1};
      in[i] = (x >> 40) % 8 != 0;
      int j = (int)((x >> 44) % 64);
      if (j < i && in[i] && in[j] && !taken[j] && (x >> 52) % 4 == 0) {   // takes over j's bytes where j dies
        taken[j] = true;
        b[i].reuses = j;
        b[i].bytes = b[j].bytes;
        b[i].first = b[j].last;
        b[i].last = b[i].first + len;
      }
    }
    uint64_t arena = memplan_pack(b, in, n, 64);
    char err[128];
    cr_assert(memplan_check(b, in, n, arena, err, sizeof err), "trial %d: %s", trial, err);
    for (int i = 0; i < n; i++)
      if (in[i] && b[i].reuses >= 0) cr_assert_eq(b[i].offset, b[b[i].reuses].offset, "trial %d: in place", trial);
    // never less than the largest live set
    uint64_t most = 0;
    for (int t = 0; t < 52; t++) {
      uint64_t live = 0;
      for (int i = 0; i < n; i++)
        if (in[i] && b[i].first <= t && t <= b[i].last &&   // (one taking over another's bytes counts once)
            !(b[i].reuses >= 0 && b[b[i].reuses].first <= t && t <= b[b[i].reuses].last))
          live += b[i].bytes;
      if (live > most) most = live;
    }
    cr_assert_geq(arena, most);
  }
}

// What `check` and `build` report a session needs is what the ingot asks the
// runtime to allocate: every persistent tensor once, and each entry's arena.
TEST(memplan, memory_need_is_what_a_session_allocates) {
  const char *models[] = {"examples/mlp.smelt", "examples/cnn.smelt", "examples/lstm.smelt"};
  for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
    Compilation c;
    compilation_init(&c, stderr);
    compilation_default_search(&c, NULL);
    Module *m = module_load_file(&c, models[i]);
    cr_assert_eq(check_modules(&c, &m, 1, NULL, 0), 0);
    BuildTargets t = {0};
    Build b;
    cr_assert_eq(pipeline_plan(&c, m, NULL, 0, &t, &b), 0);
    MemoryNeed need;
    memory_need(&b, &need);
    build_free(&b);
    char path[64];
    snprintf(path, sizeof path, "/tmp/smelt-memneed-%d.ingot", (int)getpid());
    cr_assert_eq(ingot_build(&c, m, NULL, 0, &t, path), 0);
    smelt_ingot *ig;
    cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK);
    uint64_t params = 0, state = 0, arenas = 0;
    for (uint32_t k = 0; k < ig->ntensors; k++) {
      if (ig->tensors[k].role == ROLE_PARAM) params += ig->tensors[k].bytes;
      if (ig->tensors[k].role == ROLE_STATE) state += ig->tensors[k].bytes;
    }
    for (uint32_t e = 0; e < ig->nentries; e++) arenas += ig->entries[e].arena_bytes;
    cr_expect_eq(need.params, params, "%s: parameters %llu, the ingot's %llu", models[i],
                 (unsigned long long)need.params, (unsigned long long)params);
    cr_expect_eq(need.state, state, "%s: state", models[i]);
    cr_expect_eq(need.total, params + state + arenas, "%s: total", models[i]);
    smelt_ingot_close(ig);
    unlink(path);
    compilation_free(&c);
  }
}

// A limit below the need refuses the model, naming it, the need and the limit.
TEST(memplan, max_memory_refuses_a_model_over_it) {
  Compilation c;
  char *text;
  size_t len;
  FILE *f = open_memstream(&text, &len);
  compilation_init(&c, f);
  compilation_default_search(&c, NULL);
  Module *m = module_load_file(&c, "examples/mlp.smelt");
  cr_assert_eq(check_modules(&c, &m, 1, NULL, 0), 0);
  Build b;
  BuildTargets t = {.max_memory = 1 << 20};
  cr_expect_eq(pipeline_plan(&c, m, NULL, 0, &t, &b), -1);
  build_free(&b);
  fflush(f);
  cr_expect(strstr(text, "a session of model mlp needs") && strstr(text, "1048576 bytes") && strstr(text, "--max-memory"),
            "%s", text);
  t.max_memory = 1ull << 40;
  cr_expect_eq(pipeline_plan(&c, m, NULL, 0, &t, &b), 0);
  build_free(&b);
  compilation_free(&c);
  fclose(f);
  free(text);
}
