// test_precision.c: the precision policy and dynamic loss scaling.
//
// The policy's types, graph by graph: matmuls take low operands, parameters
// and their gradients stay f32, softmax and the loss run in f32, results
// keep the model file's dtype, fp32(x) exempts x. The loss scaler, through
// the interpreter: a finite step updates and counts, an overflowing step
// changes nothing but halves the scale, a run of good steps doubles it.
// And end to end: the MLP trained in bf16 and fp16 follows fp32's loss.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "support.h"

static const char *tiny =
    "import \"nn\"\n"
    "model tiny(B = 4) {\n"
    "    input x: f32[B, 6]\n"
    "    input y: i32[B]\n"
    "    let h = gelu(linear(x, 8) as fc1)\n"
    "    output logits = linear(h, 3) as fc2\n"
    "    output scores = fp32(h @ h.T)\n"
    "    loss cross_entropy(logits, y)\n"
    "}\n"
    "train {\n"
    "    optimizer = sgd(lr = 0.1)\n"
    "    clip_grad_norm = 0.5\n"
    "    precision = %s\n"
    "    steps = 10\n"
    "    data train {\n"
    "        x = idx(\"absent-images.gz\")\n"
    "        y = idx(\"absent-labels.gz\")\n"
    "    }\n"
    "}\n";

typedef struct {
  Compilation c;
  Graph g;
} Built;

static void build(Built *b, const char *precision, const char *entry) {
  char src[2048];
  snprintf(src, sizeof src, tiny, precision);
  compilation_init(&b->c, stderr);
  compilation_default_search(&b->c, NULL);
  Module *m = module_load_text(&b->c, "tiny.smelt", src, strlen(src));
  for (int i = 0; i < b->c.nmodules; i++) resolve_module(&b->c, b->c.modules[i]);
  cr_assert_eq(b->c.diag.errors, 0);
  graph_init(&b->g, &b->c.arena, &b->c.diag);
  cr_assert_eq(entry_graph(&b->c, m, NULL, 0, entry, &b->g, NULL), 0);
}

static void built_free(Built *b) {
  graph_free(&b->g);
  compilation_free(&b->c);
}

static Node *output(const Graph *g, const char *name) {
  for (int i = 0; i < g->noutputs; i++)
    if (!strcmp(g->outputs[i].name, name)) return g->outputs[i].node;
  cr_assert_fail("no output %s", name);
  return NULL;
}

TEST(precision, bf16_types_of_a_training_step) {
  Built b;
  build(&b, "bf16", "train_step");
  Graph *g = &b.g;
  int low_matmuls = 0, f32_matmuls = 0;
  for (int i = 0; i < g->n; i++) {
    Node *n = g->nodes[i];
    if (n->op == OP_PARAM || n->op == OP_STATE)   // the step counter is an integer
      cr_expect_eq(n->dtype, strcmp(n->name, "step") ? DT_F32 : DT_I64, "%s is a %s", n->name, dtype_name(n->dtype));
    if (n->op == OP_MATMUL) {
      bool low = n->src[0]->dtype == DT_BF16 && n->src[1]->dtype == DT_BF16;
      // the forward and input-gradient products give bf16, the weight
      // gradients keep their f32 accumulators; fp32(h @ h.T) is all f32
      if (low) low_matmuls++;
      else f32_matmuls++;
      if (!low) cr_expect(n->src[0]->dtype == DT_F32 && n->src[1]->dtype == DT_F32 && n->dtype == DT_F32);
    }
    if (n->op == OP_EXP || n->op == OP_LOG || n->op == OP_RMAX) cr_expect_eq(n->dtype, DT_F32, "%s is not f32", op_name(n->op));
  }
  cr_expect_geq(low_matmuls, 5, "forward 2, input gradient 1, weight gradients 2");
  cr_expect_geq(f32_matmuls, 1);
  cr_expect_eq(output(g, "logits")->dtype, DT_F32, "results keep their dtype");
  cr_expect_eq(output(g, "loss")->dtype, DT_F32);
  for (int i = 0; i < g->noutputs; i++)
    if (!strncmp(g->outputs[i].name, "grad.", 5))
      cr_expect_eq(g->outputs[i].node->dtype, DT_F32, "%s", g->outputs[i].name);
  // the weight gradients come straight from f32 accumulators, not a bf16 rounding
  Node *gw = output(g, "grad.fc1.w");
  while (gw->op == OP_RESHAPE || gw->op == OP_PERMUTE) gw = gw->src[0];
  cr_expect_eq(gw->op, OP_MATMUL, "grad.fc1.w is %s", op_name(gw->op));
  cr_expect_eq(gw->src[0]->dtype, DT_BF16);
  built_free(&b);
}

TEST(precision, fp32_changes_nothing_and_tf32_only_marks_matmuls) {
  Built a, t;
  build(&a, "fp32", "train_step");
  build(&t, "tf32", "train_step");
  cr_assert_eq(a.g.n, t.g.n);
  int marked = 0;
  for (int i = 0; i < a.g.n; i++) {
    cr_expect_eq(a.g.nodes[i]->dtype, t.g.nodes[i]->dtype);
    cr_expect(!a.g.nodes[i]->tf32);
    if (t.g.nodes[i]->tf32) {
      marked++;
      cr_expect_eq(t.g.nodes[i]->op, OP_MATMUL);
    }
  }
  cr_expect_geq(marked, 5, "every matmul but fp32(h @ h.T) and its gradients");
  built_free(&a);
  built_free(&t);
}

// ---- the loss scaler, through the interpreter

typedef struct {
  double scale, good;      // the state before the step
  double new_scale, new_good, skipped;
  bool params_changed;
  double update[64];       // the step taken by the first parameter's first values
  int nupdate;
} ScalerRun;

static void run_scaler(double scale, double good, ScalerRun *out) {
  Built b;
  build(&b, "fp16", "train_step");
  Graph *g = &b.g;
  double **leaves = calloc((size_t)g->n, sizeof *leaves);
  uint64_t x = 12345;
  for (int i = 0; i < g->n; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_INPUT && n->op != OP_PARAM && n->op != OP_STATE) continue;
    int64_t cnt = shape_numel(&n->shape);
    leaves[i] = calloc((size_t)(cnt ? cnt : 1), sizeof(double));
    for (int64_t k = 0; k < cnt; k++) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      double r = (double)(x >> 11) / 9007199254740992.0;
      leaves[i][k] = n->dtype == DT_I32 ? floor(r * 3) : dtype_round(n->dtype, 2 * r - 1);
    }
    if (n->op == OP_STATE) leaves[i][0] = 0;
    if (n->op == OP_STATE && !strcmp(n->name, "loss_scale")) leaves[i][0] = scale;
    if (n->op == OP_STATE && !strcmp(n->name, "loss_scale_good")) leaves[i][0] = good;
  }
  InterpResult r;
  char err[256];
  cr_assert_eq(interp_run(g, leaves, 1, 0, &r, err, sizeof err), 0, "%s", err);
  out->params_changed = false;
  for (int i = 0; i < g->nupdates; i++) {
    Update *u = &g->updates[i];
    double v = r.vals[u->value->id][0];
    if (u->target->op == OP_PARAM) out->params_changed |= v != leaves[u->target->id][0];
    if (u->target->op == OP_PARAM && !strcmp(u->target->name, "fc1.w")) {
      out->nupdate = (int)shape_numel(&u->target->shape);
      if (out->nupdate > 64) out->nupdate = 64;
      for (int k = 0; k < out->nupdate; k++) out->update[k] = r.vals[u->value->id][k] - leaves[u->target->id][k];
    }
    else if (!strcmp(u->target->name, "loss_scale")) out->new_scale = v;
    else if (!strcmp(u->target->name, "loss_scale_good")) out->new_good = v;
  }
  out->skipped = r.vals[output(g, "step_skipped")->id][0];
  interp_free(&r);
  for (int i = 0; i < g->n; i++) free(leaves[i]);
  free(leaves);
  built_free(&b);
}

TEST(precision, loss_scaler_takes_a_good_step) {
  ScalerRun s;
  run_scaler(1024, 5, &s);
  cr_expect(s.params_changed);
  cr_expect_eq(s.skipped, 0);
  cr_expect_eq(s.new_scale, 1024);
  cr_expect_eq(s.new_good, 6);
}

TEST(precision, loss_scaler_skips_an_overflowing_step_and_backs_off) {
  // 1e9 overflows the f16 gradients (largest finite f16: 65504)
  ScalerRun s;
  run_scaler(1e9, 5, &s);
  cr_expect(!s.params_changed, "an overflowing step must not move the parameters");
  cr_expect_eq(s.skipped, 1);
  cr_expect_eq(s.new_scale, 5e8);
  cr_expect_eq(s.new_good, 0);
}

// The scale cancels: clipping and the update see the true gradient, so two
// scales give the same step (up to f16's rounding of the scaled gradients).
TEST(precision, loss_scale_cancels_out_of_clipping_and_the_update) {
  ScalerRun a, b;
  run_scaler(8, 0, &a);
  run_scaler(32768, 0, &b);
  cr_assert_gt(a.nupdate, 0);
  double num = 0, den = 0;
  for (int i = 0; i < a.nupdate; i++) num += (a.update[i] - b.update[i]) * (a.update[i] - b.update[i]), den += a.update[i] * a.update[i];
  cr_expect_lt(sqrt(num), 1e-3 * sqrt(den), "the step depends on the loss scale: %g of %g", sqrt(num), sqrt(den));
}

TEST(precision, loss_scaler_grows_after_a_run_of_good_steps) {
  ScalerRun s;
  run_scaler(1024, 1999, &s);
  cr_expect(s.params_changed);
  cr_expect_eq(s.new_scale, 2048);
  cr_expect_eq(s.new_good, 0);
}

// ---- end to end

static bool have_data(void) {
  struct stat st;
  return stat("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", &st) == 0;
}

// The mean loss over the last log lines of a run of examples/mlp.smelt.
static double final_loss(const char *precision, char **log) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "NO_COLOR=1 %s train examples/mlp.smelt -D B=64 -D H=64 --steps=300 --log-every=50 "
           "--threads=2 --precision=%s", smelt_path(), precision);
  cr_assert_eq(run_cmd(cmd, log), 0, "%s", *log);
  double last = -1;
  for (const char *p = *log; (p = strstr(p, " loss ")); p++)
    if (strstr(p, "samples/s") && strchr(p, '\n') > strstr(p, "samples/s")) last = atof(p + 6);
  cr_assert_gt(last, 0, "%s", *log);
  return last;
}

// docs/precision.md: the loss after 300 steps within 5% of fp32's.
TEST(precision, mlp_trains_in_bf16_and_fp16_like_fp32) {
  if (!have_data()) cr_skip_test("dataset-fashion-mnist is not installed");
  char *l32, *l16, *lb;
  double f32 = final_loss("fp32", &l32), bf16 = final_loss("bf16", &lb), fp16 = final_loss("fp16", &l16);
  cr_expect_lt(fabs(bf16 - f32), 0.05 * f32, "bf16 %g against fp32 %g", bf16, f32);
  cr_expect_lt(fabs(fp16 - f32), 0.05 * f32, "fp16 %g against fp32 %g", fp16, f32);
  cr_expect_not_null(strstr(l16, "scale "), "the fp16 progress line reports the loss scale:\n%s", l16);
  cr_expect_null(strstr(lb, "scale "), "bf16 needs no loss scale:\n%s", lb);
  free(l32);
  free(l16);
  free(lb);
}
