// test_simplify.c: the simplification and recomputation passes change no value.
//
// Every example's training step (and small cases of every rule) is
// elaborated twice; one copy is simplified; the reference interpreter runs
// both on the same random leaves, and every output and update value must be
// the same, bit for bit. Each rule is also shown to fire where it should.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static uint64_t rng;
static double rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (double)(rng >> 11) / 9007199254740992.0;
}

typedef struct {
  Compilation c;
  Graph g;
} Built;

static void build(Built *b, const char *src, const Define *defs, int ndefs, bool training) {
  compilation_init(&b->c, stderr);
  compilation_default_search(&b->c, NULL);
  Module *m = module_load_text(&b->c, "case.smelt", src, strlen(src));
  for (int i = 0; i < b->c.nmodules; i++) resolve_module(&b->c, b->c.modules[i]);
  cr_assert_eq(b->c.diag.errors, 0);
  graph_init(&b->g, &b->c.arena, &b->c.diag);
  cr_assert_eq(elaborate(&b->c, m, defs, ndefs, training, &b->g), 0);
  if (training && b->g.loss) {
    TrainConfig cfg = {.optimizer = "adamw", .lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                       .weight_decay = 0.01, .schedule = "cosine", .warmup = 2, .clip_grad_norm = 1};
    cr_assert_eq(optim_append(&b->g, &cfg, 100), 0);
  }
}

static void built_free(Built *b) {
  graph_free(&b->g);
  compilation_free(&b->c);
}

// Leaf values by name, the same for both graphs.
static double **leaves_for(const Graph *g, int int_range) {
  double **l = calloc((size_t)g->n + 1, sizeof *l);
  for (int i = 0; i < g->n; i++) {
    const Node *n = g->nodes[i];
    if (n->op != OP_INPUT && n->op != OP_PARAM && n->op != OP_STATE) continue;
    rng = name_key(n->name) | 1;
    int64_t cnt = shape_numel(&n->shape);
    l[i] = malloc(sizeof(double) * (size_t)(cnt ? cnt : 1));
    for (int64_t k = 0; k < cnt; k++) {
      double v = dtype_is_float(n->dtype) ? 2 * rnd() - 1 : floor(rnd() * int_range);
      if (n->op == OP_STATE) v = fabs(v) * 3;
      l[i][k] = dtype_round(n->dtype, v);
    }
  }
  return l;
}

static void same_bits(const char *what, const Node *a, const double *va, const double *vb) {
  int64_t cnt = shape_numel(&a->shape);
  for (int64_t k = 0; k < cnt; k++)
    cr_assert(memcmp(&va[k], &vb[k], sizeof(double)) == 0 || (isnan(va[k]) && isnan(vb[k])),
              "%s: element %lld: %.17g before simplification, %.17g after", what, (long long)k, va[k], vb[k]);
}

// Simplifies a copy of src's graph (or, with remat set, recomputes its
// forward values) and compares the interpreter's results.
static void check_pass(const char *what, const char *src, const Define *defs, int ndefs, bool training, int *count,
                       RematStats *remat) {
  Built a, b;
  build(&a, src, defs, ndefs, training);
  build(&b, src, defs, ndefs, training);
  int before = b.g.n;
  if (remat) {
    pass_remat(&b.g, b.g.loss->id + 1, true, remat);
    cr_assert_geq(b.g.n, before);
  } else {
    pass_simplify(&b.g, count);
    cr_assert_leq(b.g.n, before + b.g.noutputs);   // at most a copy per output
  }
  double **la = leaves_for(&a.g, 4), **lb = leaves_for(&b.g, 4);
  InterpResult ra, rb;
  char err[256];
  cr_assert_eq(interp_run(&a.g, la, 5, 2, &ra, err, sizeof err), 0, "%s", err);
  cr_assert_eq(interp_run(&b.g, lb, 5, 2, &rb, err, sizeof err), 0, "%s", err);
  cr_assert_eq(a.g.noutputs, b.g.noutputs);
  for (int i = 0; i < a.g.noutputs; i++) {
    char label[160];
    snprintf(label, sizeof label, "%s: output %s", what, a.g.outputs[i].name);
    same_bits(label, a.g.outputs[i].node, ra.vals[a.g.outputs[i].node->id], rb.vals[b.g.outputs[i].node->id]);
  }
  cr_assert_eq(a.g.nupdates, b.g.nupdates);
  for (int i = 0; i < a.g.nupdates; i++) {
    char label[160];
    snprintf(label, sizeof label, "%s: update of %s", what, a.g.updates[i].target->name);
    cr_assert_str_eq(a.g.updates[i].target->name, b.g.updates[i].target->name);
    same_bits(label, a.g.updates[i].value, ra.vals[a.g.updates[i].value->id], rb.vals[b.g.updates[i].value->id]);
  }
  interp_free(&ra);
  interp_free(&rb);
  for (int i = 0; i < a.g.n; i++) free(la[i]);
  for (int i = 0; i < b.g.n; i++) free(lb[i]);
  free(la);
  free(lb);
  built_free(&a);
  built_free(&b);
}

static void check_unchanged(const char *what, const char *src, const Define *defs, int ndefs, bool training,
                            int *count) {
  check_pass(what, src, defs, ndefs, training, count, NULL);
}

static void check_example(const char *name, const Define *defs, int ndefs) {
  char path[64];
  snprintf(path, sizeof path, "examples/%s.smelt", name);
  char *src = slurp(path);
  int count[SIMP_COUNT] = {0};
  check_unchanged(name, src, defs, ndefs, true, count);
  cr_expect_gt(count[SIMP_CSE], 0, "%s: nothing in common", name);
  free(src);
}

TEST(simplify, mlp_step_is_unchanged) { check_example("mlp", (Define[]){{"B", 3}, {"H", 5}}, 2); }
TEST(simplify, cnn_step_is_unchanged) { check_example("cnn", (Define[]){{"B", 2}}, 1); }
TEST(simplify, resnet_step_is_unchanged) { check_example("resnet", (Define[]){{"B", 2}, {"C", 2}}, 2); }
TEST(simplify, gpt_step_is_unchanged) {
  check_example("gpt", (Define[]){{"B", 2}, {"T", 4}, {"V", 6}, {"C", 8}, {"L", 2}, {"H", 2}}, 6);
}
TEST(simplify, lstm_step_is_unchanged) {
  check_example("lstm", (Define[]){{"B", 2}, {"T", 3}, {"V", 5}, {"E", 3}, {"H", 4}}, 5);
}

// One case per rule: it fires, and the values stay.
static void rule(const char *what, const char *body, int which, int at_least) {
  char src[2048];
  snprintf(src, sizeof src, "model m {\n%s\n}\n", body);
  int count[SIMP_COUNT] = {0};
  check_unchanged(what, src, NULL, 0, false, count);
  cr_expect_geq(count[which], at_least, "%s: %s fired %d times, expected at least %d", what, simplify_rule_name(which),
                count[which], at_least);
}

TEST(simplify, each_rule_fires_and_keeps_the_values) {
  rule("cse", "input x: f32[3, 4]\noutput y = exp(x) * 2.0 + exp(x) * 2.0", SIMP_CSE, 2);
  rule("fold", "input x: f32[3, 4]\nlet c = fill(3.0, 3, 4)\noutput y = x + (c * c - 1.0) / 4.0", SIMP_FOLD, 2);
  rule("identities", "input x: f32[3, 4]\ninput i: i32[4]\n"
       "output y = -(-(x * 1.0 / 1.0 - 0.0))\noutput j = i + 0\noutput z = x.cast(f32)", SIMP_IDENTITY, 5);
  rule("cast of cast", "input h: f16[6]\noutput y = h.cast(f32).cast(bf16)\noutput z = (h * 3.0).cast(f32).cast(f16)",
       SIMP_CAST, 1);
  rule("movement", "input x: f32[2, 3, 4]\noutput y = x.permute(2, 0, 1).permute(1, 2, 0) * 2.0\n"
       "output w = x.T.T - 1.0", SIMP_MOVE, 2);
  rule("matmul", "input a: f32[5, 3]\ninput b: f32[4, 5]\noutput y = a.T @ b.T", SIMP_MATMUL, 2);
}

// x + 0 on floats is not x (-0 + 0 is +0), so it stays.
TEST(simplify, float_plus_zero_stays) {
  int count[SIMP_COUNT] = {0};
  check_unchanged("plus zero", "model m {\ninput x: f32[3]\noutput y = x + 0.0\n}\n", NULL, 0, false, count);
  cr_expect_eq(count[SIMP_IDENTITY], 0);
}

// Outputs that alias (one expression twice, an input, a parameter, a view
// folded away, the loss) keep a node of their own each, none a leaf, with
// the values they had.
TEST(simplify, every_output_keeps_a_node_of_its_own) {
  const char *src = "model m {\n  param w: f32[3] = ones\n  input x: f32[3]\n  output a = x * 2.0\n"
                    "  output b = x * 2.0\n  output c = x\n  output d = w\n  output e = a.reshape(3)\n"
                    "  output l = (w * x).sum()\n  loss l\n}\n";
  check_unchanged("aliasing outputs", src, NULL, 0, true, NULL);
  Built b;
  build(&b, src, NULL, 0, true);
  pass_simplify(&b.g, NULL);
  for (int i = 0; i < b.g.noutputs; i++) {
    const Node *n = b.g.outputs[i].node;
    cr_expect(n->op != OP_INPUT && n->op != OP_PARAM && n->op != OP_STATE, "output %s is a leaf", b.g.outputs[i].name);
    for (int j = 0; j < i; j++)
      cr_expect_neq(b.g.outputs[j].node, n, "outputs %s and %s share a node", b.g.outputs[j].name, b.g.outputs[i].name);
  }
  built_free(&b);
}

// Recomputing forward values in the backward pass changes no value either,
// and it does recompute something on every example with a backward pass.
static void check_remat(const char *name, const Define *defs, int ndefs) {
  char path[64];
  snprintf(path, sizeof path, "examples/%s.smelt", name);
  char *src = slurp(path);
  RematStats st = {0};
  check_pass(name, src, defs, ndefs, true, NULL, &st);
  cr_expect_gt(st.values, 0, "%s: nothing recomputed", name);
  free(src);
}

TEST(simplify, remat_keeps_the_values) {
  check_remat("mlp", (Define[]){{"B", 3}, {"H", 5}}, 2);
  check_remat("gpt", (Define[]){{"B", 2}, {"T", 4}, {"V", 6}, {"C", 8}, {"L", 2}, {"H", 2}}, 6);
  check_remat("lstm", (Define[]){{"B", 2}, {"T", 3}, {"V", 5}, {"E", 3}, {"H", 4}}, 5);
}

// stop_gradient stays while a gradient may still be taken (the precision
// pass simplifies before autodiff) and is gone from the compiled step.
TEST(simplify, stop_gradient_goes_only_after_autodiff) {
  const char *src = "model m {\n  param w: f32[3] = ones\n  input x: f32[3]\n"
                    "  output l = (w * stop_gradient(w * x) + x.detach()).sum()\n  loss l\n}\n";
  Built b;
  build(&b, "model m {\n  input x: f32[3]\n  output y = stop_gradient(x * 2.0)\n}\n", NULL, 0, false);
  int count[SIMP_COUNT] = {0};
  pass_simplify(&b.g, count);
  int kept = 0;
  for (int i = 0; i < b.g.n; i++) kept += b.g.nodes[i]->op == OP_STOP_GRADIENT;
  cr_expect_eq(kept, 1, "simplify removed stop_gradient before autodiff");
  built_free(&b);
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_text(&c, "case.smelt", src, strlen(src));
  for (int i = 0; i < c.nmodules; i++) resolve_module(&c, c.modules[i]);
  cr_assert_eq(c.diag.errors, 0);
  Graph g;
  graph_init(&g, &c.arena, &c.diag);
  cr_assert_eq(entry_graph(&c, m, NULL, 0, "step", &g, NULL), 0);
  cr_expect_geq(g.noutputs, 2, "no gradient output");
  for (int i = 0; i < g.n; i++) cr_expect_neq(g.nodes[i]->op, OP_STOP_GRADIENT, "a stop_gradient node is left");
  graph_free(&g);
  compilation_free(&c);
  check_unchanged("stop_gradient", src, NULL, 0, true, NULL);
}
