// test_golden.c: the interpreter against PyTorch on the examples.
//
// tests/golden/*.golden are written by tests/golden/make_golden.py: smelt's
// initial weights, random inputs, and what PyTorch computes for the same model
// (outputs, loss, the gradient of every parameter). Here the examples are
// elaborated at the same tiny sizes, the interpreter runs them (rounding every
// value to f32 as a float32 program would), and the results must agree:
//     forward outputs and loss:  ||smelt - torch|| / ||torch|| < 1e-5
//     gradients:                 ||smelt - torch|| / ||torch|| < 1e-4
//     ten AdamW steps (MLP):     losses 1e-5, final weights 1e-4
// (norms over a whole tensor; float32 sums in a different order differ by a
// few ulps per element, far below these bounds).
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

typedef struct {
  Compilation c;
  Module *m;
  Graph g;
  TensorEntry *gold;
  int ngold;
} Golden;

static const TensorEntry *need(const Golden *k, const char *fmt, const char *name) {
  char key[256];
  snprintf(key, sizeof key, fmt, name);
  const TensorEntry *t = tensorfile_find(k->gold, k->ngold, key);
  cr_assert_not_null(t, "the golden file has no '%s'", key);
  return t;
}

static double rel_err(const double *got, const double *want, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    if (isnan(got[i])) return INFINITY;
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void golden_open(Golden *k, const char *model, const Define *defs, int ndefs,
                        const char *file, bool training) {
  memset(k, 0, sizeof *k);
  char err[512], path[256];
  snprintf(path, sizeof path, "tests/golden/%s", file);
  cr_assert_eq(tensorfile_read(path, &k->gold, &k->ngold, err, sizeof err), 0, "%s", err);
  compilation_init(&k->c, stderr);
  compilation_default_search(&k->c, NULL);
  if (strchr(model, '/')) snprintf(path, sizeof path, "%s", model);   // a test model
  else snprintf(path, sizeof path, "examples/%s.smelt", model);
  k->m = module_load_file(&k->c, path);
  for (int i = 0; i < k->c.nmodules; i++) resolve_module(&k->c, k->c.modules[i]);
  cr_assert_eq(k->c.diag.errors, 0);
  graph_init(&k->g, &k->c.arena, &k->c.diag);
  cr_assert_eq(elaborate(&k->c, k->m, defs, ndefs, training, &k->g), 0);
}

static void golden_close(Golden *k) {
  graph_free(&k->g);
  compilation_free(&k->c);
  tensorfile_free(k->gold, k->ngold);
}

// Leaves from the golden file: "param:NAME" and "input:NAME", shapes checked.
static double **bind_leaves(Golden *k, const char *input_fmt) {
  double **leaves = calloc((size_t)k->g.n, sizeof *leaves);
  for (int i = 0; i < k->g.n; i++) {
    Node *n = k->g.nodes[i];
    if (n->op != OP_PARAM && n->op != OP_INPUT) continue;
    const TensorEntry *t = need(k, n->op == OP_PARAM ? "param:%s" : input_fmt, n->name);
    cr_assert(shape_eq(&t->shape, &n->shape), "%s: shapes differ", n->name);
    leaves[i] = t->data;
  }
  return leaves;
}

static void check_model(const char *model, const Define *defs, int ndefs, const char *file) {
  Golden k;
  golden_open(&k, model, defs, ndefs, file, false);
  Graph *g = &k.g;
  int n0 = g->n;
  Node **grads = autodiff(g, NULL, 0);
  double **leaves = bind_leaves(&k, "input:%s");
  InterpResult r;
  char err[256];
  cr_assert_eq(interp_run(g, leaves, 1, 0, &r, err, sizeof err), 0, "%s", err);
  Node *logits = g->outputs[0].node;
  const TensorEntry *want = need(&k, "output:%s", "logits");
  cr_assert(shape_eq(&logits->shape, &want->shape));
  double e = rel_err(r.vals[logits->id], want->data, shape_numel(&want->shape));
  cr_expect_lt(e, 1e-5, "%s: logits differ from PyTorch by %.3g", model, e);
  e = rel_err(r.vals[g->loss->id], need(&k, "output:%s", "loss")->data, 1);
  cr_expect_lt(e, 1e-5, "%s: loss differs from PyTorch by %.3g", model, e);
  int params = 0;
  for (int i = 0; i < n0; i++) {
    Node *p = g->nodes[i];
    if (p->op != OP_PARAM) continue;
    const TensorEntry *gw = need(&k, "grad:%s", p->name);
    cr_assert_not_null(grads[i], "%s: no gradient for %s", model, p->name);
    e = rel_err(r.vals[grads[i]->id], gw->data, shape_numel(&gw->shape));
    cr_expect_lt(e, 1e-4, "%s: gradient of %s differs from PyTorch by %.3g", model, p->name, e);
    params++;
  }
  cr_expect_gt(params, 0);
  interp_free(&r);
  free(leaves);
  free(grads);
  golden_close(&k);
}

TEST(golden, mlp_forward_and_gradients) {
  Define d[] = {{"B", 4}, {"H", 8}};
  check_model("mlp", d, 2, "mlp.golden");
}

TEST(golden, cnn_forward_and_gradients) {
  Define d[] = {{"B", 2}, {"C1", 2}, {"C2", 3}, {"F", 8}};
  check_model("cnn", d, 4, "cnn.golden");
}

TEST(golden, gpt_block_forward_and_gradients) {
  Define d[] = {{"B", 2}, {"T", 8}, {"V", 16}, {"C", 16}, {"L", 1}, {"H", 2}};
  check_model("gpt", d, 6, "gpt_block.golden");
}

// Ten AdamW steps of model, one batch each, against torch.optim.AdamW: the
// losses, then the final weights.
static void check_adamw_steps(const char *model, const Define *d, int nd, const char *file) {
  Golden k;
  golden_open(&k, model, d, nd, file, true);
  Graph *g = &k.g;
  TrainConfig cfg = {.optimizer = "adamw", .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                     .weight_decay = 0.01, .schedule = "constant"};
  cr_assert_eq(optim_append(g, &cfg, 10), 0);
  // persistent values, owned here, updated after every step
  double **state = calloc((size_t)g->n, sizeof *state);
  for (int i = 0; i < g->n; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_PARAM && n->op != OP_STATE) continue;
    int64_t cnt = shape_numel(&n->shape);
    state[i] = calloc((size_t)(cnt ? cnt : 1), sizeof(double));
    if (n->op == OP_PARAM) memcpy(state[i], need(&k, "param:%s", n->name)->data, sizeof(double) * (size_t)cnt);
  }
  double **leaves = calloc((size_t)g->n, sizeof *leaves);
  for (int i = 0; i < g->n; i++) {   // every parameter is written once per step, tied or not
    if (g->nodes[i]->op != OP_PARAM) continue;
    int writes = 0;
    for (int u = 0; u < g->nupdates; u++) writes += g->updates[u].target == g->nodes[i];
    cr_expect_eq(writes, 1, "%s: %s is written %d times per step", model, g->nodes[i]->name, writes);
  }
  for (int s = 0; s < 10; s++) {
    char fmt[32];
    snprintf(fmt, sizeof fmt, "batch%d:%%s", s);
    for (int i = 0; i < g->n; i++) {
      Node *n = g->nodes[i];
      if (n->op == OP_INPUT) leaves[i] = need(&k, fmt, n->name)->data;
      else if (state[i]) leaves[i] = state[i];
    }
    InterpResult r;
    char err[256];
    cr_assert_eq(interp_run(g, leaves, 1, (uint64_t)s, &r, err, sizeof err), 0, "%s", err);
    char lname[16];
    snprintf(lname, sizeof lname, "loss%d", s);
    double e = rel_err(r.vals[g->loss->id], need(&k, "%s", lname)->data, 1);
    cr_expect_lt(e, 1e-5, "step %d: loss %.7f differs from PyTorch by %.3g", s, r.vals[g->loss->id][0], e);
    for (int u = 0; u < g->nupdates; u++) {
      const Update *up = &g->updates[u];
      memcpy(state[up->target->id], r.vals[up->value->id],
             sizeof(double) * (size_t)shape_numel(&up->target->shape));
    }
    interp_free(&r);
  }
  for (int i = 0; i < g->n; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_PARAM) continue;
    const TensorEntry *want = need(&k, "final:%s", n->name);
    double e = rel_err(state[i], want->data, shape_numel(&want->shape));
    cr_expect_lt(e, 1e-4, "after 10 steps %s differs from PyTorch's AdamW by %.3g", n->name, e);
  }
  for (int i = 0; i < g->n; i++) free(state[i]);
  free(state);
  free(leaves);
  golden_close(&k);
}

TEST(golden, mlp_ten_adamw_steps) {
  Define d[] = {{"B", 4}, {"H", 8}};
  check_adamw_steps("mlp", d, 2, "mlp_adamw.golden");
}

// The embedding table is also the output projection (embedding(table =),
// linear(weight =)): its gradient is the sum of both uses, and AdamW steps
// it once per step. Lists, stack and negative-step slices build the RNN.
TEST(golden, tied_rnn_forward_and_gradients) {
  check_model("tests/golden/tied_rnn.smelt", NULL, 0, "tied_rnn.golden");
}

TEST(golden, tied_rnn_ten_adamw_steps) {
  check_adamw_steps("tests/golden/tied_rnn.smelt", NULL, 0, "tied_rnn_adamw.golden");
}

TEST(golden, tensor_files_reject_corruption) {
  char err[256];
  TensorEntry *t;
  int n;
  cr_expect_eq(tensorfile_read("tests/golden/make_golden.py", &t, &n, err, sizeof err), -1);
  cr_expect(strstr(err, "is not a smelt tensor file") != NULL, "%s", err);
  // a truncated copy
  size_t len;
  char *whole = file_read("tests/golden/mlp.golden", &len);
  cr_assert_not_null(whole);
  FILE *f = fopen("build/truncated.golden", "wb");
  cr_assert_not_null(f);
  fwrite(whole, 1, len / 2, f);
  fclose(f);
  free(whole);
  cr_expect_eq(tensorfile_read("build/truncated.golden", &t, &n, err, sizeof err), -1);
  cr_expect(strstr(err, "truncated or corrupt") != NULL, "%s", err);
  remove("build/truncated.golden");
  cr_expect_eq(tensorfile_read("tests/golden/none.golden", &t, &n, err, sizeof err), -1);
  cr_expect(strstr(err, "No such file") != NULL, "%s", err);
}
