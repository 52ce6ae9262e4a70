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
//     single ops (conv_transpose, upsample), outputs and gradients: 1e-6
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
  const Output *out = &g->outputs[0];   // the model's first output: logits, or e.g. a reconstruction
  const TensorEntry *want = need(&k, "output:%s", out->name);
  cr_assert(shape_eq(&out->node->shape, &want->shape));
  double e = rel_err(r.vals[out->node->id], want->data, shape_numel(&want->shape));
  cr_expect_lt(e, 1e-5, "%s: %s differs from PyTorch by %.3g", model, out->name, e);
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

// The steps of cfg (NULL: the model's own train block) on model, one batch
// each, from the golden file's weights and batches (one per "lossN"), against
// PyTorch's optimizer: each loss, then the final weights; every parameter but
// the frozen ones is written once per step (tied or not) and moved.
static void check_steps(const char *model, const Define *d, int nd, const char *file, const TrainConfig *cfg) {
  Golden k;
  golden_open(&k, model, d, nd, file, true);
  Graph *g = &k.g;
  if (!cfg) cfg = k.m->train;
  cr_assert_not_null(cfg, "%s has no train block", model);
  int steps = 0;
  for (char key[16]; snprintf(key, sizeof key, "loss%d", steps), tensorfile_find(k.gold, k.ngold, key);) steps++;
  cr_assert_gt(steps, 0, "%s has no losses", file);
  cr_assert_eq(optim_append(g, cfg, steps), 0);
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
    cr_expect_eq(writes, g->nodes[i]->frozen ? 0 : 1, "%s: %s is written %d times per step", model, g->nodes[i]->name,
                 writes);
  }
  for (int s = 0; s < steps; s++) {
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
    cr_expect_lt(e, 1e-5, "%s step %d: loss %.7f differs from PyTorch by %.3g", file, s, r.vals[g->loss->id][0], e);
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
    cr_expect_lt(e, 1e-4, "%s: after %d step%s %s differs from PyTorch's %s by %.3g", file, steps,
                 steps == 1 ? "" : "s", n->name, cfg->optimizer, e);
    double moved = rel_err(state[i], need(&k, "param:%s", n->name)->data, shape_numel(&want->shape));
    if (n->frozen) cr_expect_eq(moved, 0, "%s: frozen %s moved", file, n->name);
    else cr_expect_gt(moved, 0, "%s: %s did not move", file, n->name);
  }
  for (int i = 0; i < g->n; i++) free(state[i]);
  free(state);
  free(leaves);
  golden_close(&k);
}


TEST(golden, mlp_ten_adamw_steps) {
  TrainConfig cfg = {.optimizer = "adamw", .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                     .weight_decay = 0.01, .schedule = "constant"};
  Define d[] = {{"B", 4}, {"H", 8}};
  check_steps("mlp", d, 2, "mlp_adamw.golden", &cfg);
}

// torch.optim.AdamW with param groups and a LambdaLR: biases without weight
// decay, fc1.w at 3x the learning rate with betas of its own, fc3.w frozen
// (requires_grad = False), the linear schedule with warm-up 3 over 10 steps.
// The decay is strong (0.5) so that decaying the biases too would show.
TEST(golden, mlp_adamw_param_groups_and_linear_schedule) {
  ParamGroup groups[] = {
      {.pattern = "fc3.w", .frozen = true},
      {.pattern = "*.b", .lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0},
      {.pattern = "fc1.*", .lr = 3e-2, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0.5},
  };
  TrainConfig cfg = {.optimizer = "adamw", .lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                     .weight_decay = 0.5, .schedule = "linear", .warmup = 3, .decay_to = 0.1,
                     .groups = groups, .ngroups = 3};
  Define d[] = {{"B", 4}, {"H", 8}};
  check_steps("mlp", d, 2, "mlp_adamw_groups.golden", &cfg);
}

// The embedding table is also the output projection (embedding(table =),
// linear(weight =)): its gradient is the sum of both uses, and AdamW steps
// it once per step. Lists, stack and negative-step slices build the RNN.
TEST(golden, tied_rnn_forward_and_gradients) {
  check_model("tests/golden/tied_rnn.smelt", NULL, 0, "tied_rnn.golden");
}

TEST(golden, tied_rnn_ten_adamw_steps) {
  TrainConfig cfg = {.optimizer = "adamw", .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                     .weight_decay = 0.01, .schedule = "constant"};
  check_steps("tests/golden/tied_rnn.smelt", NULL, 0, "tied_rnn_adamw.golden", &cfg);
}

// ---- single ops: tests/golden/make_golden_upconv.py

// Case i of an op golden: a model over inputs x (and w) whose output y meets
// an input dy in the loss sum(y * dy); PyTorch's y, dx (and dw) must match.
static void check_op_case(const TensorEntry *gold, int ngold, int i, const char *call) {
  char key[64], src[1024], t[3][96];
  const TensorEntry *in[3] = {NULL};
  const char *names[3] = {"x", "w", "dy"};
  for (int k = 0; k < 3; k++) {
    snprintf(key, sizeof key, "case%d:%s", i, names[k]);
    in[k] = tensorfile_find(gold, ngold, key);
    type_str(t[k], sizeof t[k], DT_F32, in[k] ? &in[k]->shape : &(Shape){0});
  }
  cr_assert(in[0] && in[2], "case %d: no x or dy", i);
  snprintf(src, sizeof src, "model m {\n  input x: %s\n%s%s%s  output y = %s\n}\n", t[0],
           in[1] ? "  input w: " : "", in[1] ? t[1] : "", in[1] ? "\n" : "", call);
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_text(&c, "op.smelt", src, strlen(src));
  for (int k = 0; k < c.nmodules; k++) resolve_module(&c, c.modules[k]);
  cr_assert_eq(c.diag.errors, 0, "case %d does not check:\n%s", i, src);
  Graph g;
  graph_init(&g, &c.arena, &c.diag);
  cr_assert_eq(elaborate(&c, m, NULL, 0, false, &g), 0);
  Node *y = g.outputs[0].node, *dy = g_leaf(&g, OP_INPUT, DT_F32, in[2]->shape, "dy");
  cr_assert(shape_eq(&y->shape, &dy->shape), "case %d: %s has the wrong shape", i, call);
  g.loss = g_reduce(&g, OP_SUM, g_binary(&g, OP_MUL, y, dy), 15u, false);
  Node *wrt[2];
  int nwrt = 0, n0 = g.n;
  for (int k = 0; k < n0; k++)
    if (g.nodes[k]->op == OP_INPUT && g.nodes[k] != dy) wrt[nwrt++] = g.nodes[k];
  Node **grads = autodiff(&g, wrt, nwrt);
  double **leaves = calloc((size_t)g.n, sizeof *leaves);
  for (int k = 0; k < n0; k++) {
    Node *n = g.nodes[k];
    if (n->op == OP_INPUT) leaves[k] = in[n == dy ? 2 : n->name[0] == 'w' ? 1 : 0]->data;
  }
  InterpResult r;
  char err[256];
  cr_assert_eq(interp_run(&g, leaves, 1, 0, &r, err, sizeof err), 0, "%s", err);
  struct { const char *name; const Node *n; } want[3] = {{"y", y}, {"dx", NULL}, {"dw", NULL}};
  for (int k = 0; k < nwrt; k++) want[wrt[k]->name[0] == 'w' ? 2 : 1].n = grads[wrt[k]->id];
  for (int k = 0; k < 3; k++) {
    snprintf(key, sizeof key, "case%d:%s", i, want[k].name);
    const TensorEntry *w = tensorfile_find(gold, ngold, key);
    if (!w) continue;
    cr_assert_not_null(want[k].n, "case %d: no %s", i, want[k].name);
    cr_assert(shape_eq(&w->shape, &want[k].n->shape), "case %d: %s has the wrong shape", i, want[k].name);
    double e = rel_err(r.vals[want[k].n->id], w->data, shape_numel(&w->shape));
    cr_expect_lt(e, 1e-6, "case %d, %s: %s differs from PyTorch by %.3g", i, call, want[k].name, e);
  }
  interp_free(&r);
  free(leaves);
  free(grads);
  graph_free(&g);
  compilation_free(&c);
}

static void check_op_golden(const char *file, void (*call)(const double *opts, char *buf, size_t len)) {
  TensorEntry *gold;
  int ngold, cases = 0;
  char err[256], path[128], key[32], buf[256];
  snprintf(path, sizeof path, "tests/golden/%s", file);
  cr_assert_eq(tensorfile_read(path, &gold, &ngold, err, sizeof err), 0, "%s", err);
  for (int i = 0;; i++, cases++) {
    snprintf(key, sizeof key, "case%d:opts", i);
    const TensorEntry *o = tensorfile_find(gold, ngold, key);
    if (!o) break;
    call(o->data, buf, sizeof buf);
    check_op_case(gold, ngold, i, buf);
  }
  cr_expect_geq(cases, 5);
  tensorfile_free(gold, ngold);
}

static void conv_transpose_call(const double *o, char *buf, size_t len) {
  snprintf(buf, len, "conv_transpose(x, w, stride = (%g, %g), padding = (%g, %g), output_padding = (%g, %g), "
           "dilation = (%g, %g), groups = %g)", o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], o[8]);
}

static void upsample_call(const double *o, char *buf, size_t len) {
  snprintf(buf, len, "upsample(x, (%g, %g), mode = \"%s\")", o[0], o[1], o[2] ? "bilinear" : "nearest");
}

TEST(golden, conv_transpose_forward_and_gradients) {
  check_op_golden("conv_transpose.golden", conv_transpose_call);
}

TEST(golden, upsample_forward_and_gradients) { check_op_golden("upsample.golden", upsample_call); }

TEST(golden, tensor_files_reject_corruption) {
  char err[256];
  TensorEntry *t;
  int n;
  cr_expect_eq(tensorfile_read("tests/golden/make_golden.py", &t, &n, err, sizeof err), -1);
  cr_expect(strstr(err, "is neither a smelt tensor file (version 1 or 2), a safetensors file, nor a NumPy .npy or .npz file") != NULL, "%s", err);
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

// ---- activations at extreme inputs (activations.golden)

// The functions of activations.golden (y_<name>), each on its own copy of x so that the
// gradient of sum(f(x_f) * r) with respect to x_f is r * f'(x).
static const char activations_model[] =
    "import \"nn\"\n"
    "model act(N = 1) {\n"
    "    input r: f32[N]\n"
    "    input x_erf: f32[N]\n    output y_erf = erf(x_erf)\n"
    "    input x_softplus: f32[N]\n    output y_softplus = softplus(x_softplus)\n"
    "    input x_softplus_beta: f32[N]\n    output y_softplus_beta = softplus(x_softplus_beta, beta = 2.0, threshold = 5.0)\n"
    "    input x_silu: f32[N]\n    output y_silu = silu(x_silu)\n"
    "    input x_gelu: f32[N]\n    output y_gelu = gelu(x_gelu)\n"
    "    input x_gelu_tanh: f32[N]\n    output y_gelu_tanh = gelu(x_gelu_tanh, approximate = \"tanh\")\n"
    "    input x_stop_gradient: f32[N]\n    output y_stop_gradient = stop_gradient(x_stop_gradient)\n"
    "    loss ((y_erf + y_softplus + y_softplus_beta + y_silu + y_gelu + y_gelu_tanh + y_stop_gradient) * r).sum()\n"
    "}\n";

// Per element, NaN where PyTorch has NaN, and otherwise
//     |smelt - torch| <= 1e-6 |torch| + 1e-7 (1 + |x|) + 1e-37
// (the middle term: gelu's 1 + erf(x / sqrt 2) cancels for negative x, where
// one ulp of erf is 6e-8 of the result's scale |x|; the last: results that
// PyTorch's f32 exp flushes to zero or leaves subnormal, e.g. silu(-95) is -0
// in PyTorch and -5e-40 in the interpreter's double).
static void expect_elementwise(const char *what, const double *got, const double *want, const double *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    if (isnan(want[i])) {
      cr_expect(isnan(got[i]), "%s at x = %.9g: %.9g, PyTorch NaN", what, x[i], got[i]);
      continue;
    }
    double tol = 1e-6 * fabs(want[i]) + 1e-7 * (1 + (isinf(x[i]) ? 0 : fabs(x[i]))) + 1e-37;
    cr_expect(fabs(got[i] - want[i]) <= tol || got[i] == want[i], "%s at x = %.9g: %.9g, PyTorch %.9g", what, x[i],
              got[i], want[i]);
  }
}

TEST(golden, activations_at_extreme_inputs) {
  TensorEntry *gold;
  int ngold;
  char err[512];
  cr_assert_eq(tensorfile_read("tests/golden/activations.golden", &gold, &ngold, err, sizeof err), 0, "%s", err);
  const TensorEntry *x = tensorfile_find(gold, ngold, "input:x"), *r = tensorfile_find(gold, ngold, "input:r");
  cr_assert(x && r);
  int64_t n = shape_numel(&x->shape);
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_text(&c, "act.smelt", activations_model, strlen(activations_model));
  for (int i = 0; i < c.nmodules; i++) resolve_module(&c, c.modules[i]);
  cr_assert_eq(c.diag.errors, 0);
  Graph g;
  graph_init(&g, &c.arena, &c.diag);
  Define d[] = {{"N", n}};
  cr_assert_eq(elaborate(&c, m, d, 1, false, &g), 0);
  Node *wrt[16];
  int nwrt = 0;
  for (int i = 0; i < g.n; i++)
    if (g.nodes[i]->op == OP_INPUT && strcmp(g.nodes[i]->name, "r")) wrt[nwrt++] = g.nodes[i];
  Node **grads = autodiff(&g, wrt, nwrt);
  double **leaves = calloc((size_t)g.n, sizeof *leaves);
  for (int k = 0; k < nwrt; k++) leaves[wrt[k]->id] = x->data;
  for (int i = 0; i < g.n; i++)
    if (g.nodes[i]->op == OP_INPUT && !strcmp(g.nodes[i]->name, "r")) leaves[i] = r->data;
  InterpResult res;
  cr_assert_eq(interp_run(&g, leaves, 1, 0, &res, err, sizeof err), 0, "%s", err);
  int checked = 0;
  for (int o = 0; o < g.noutputs; o++) {
    const char *name = g.outputs[o].name + 2;   // y_<name>
    char key[64];
    snprintf(key, sizeof key, "output:%s", name);
    const TensorEntry *want = tensorfile_find(gold, ngold, key);
    if (!want) continue;
    expect_elementwise(name, res.vals[g.outputs[o].node->id], want->data, x->data, n);
    snprintf(key, sizeof key, "grad:%s", name);
    const TensorEntry *dwant = tensorfile_find(gold, ngold, key);
    cr_assert_not_null(dwant, "no %s", key);
    char xname[64];
    snprintf(xname, sizeof xname, "x_%s", name);
    Node *xi = NULL;
    for (int k = 0; k < nwrt; k++)
      if (!strcmp(wrt[k]->name, xname)) xi = wrt[k];
    cr_assert_not_null(xi, "no input %s", xname);
    char what[80];
    snprintf(what, sizeof what, "d%s/dx", name);
    if (grads[xi->id]) {
      expect_elementwise(what, res.vals[grads[xi->id]->id], dwant->data, x->data, n);
    } else {   // no path for a gradient: PyTorch's is zero everywhere
      for (int64_t i = 0; i < n; i++) cr_expect_eq(dwant->data[i], 0.0, "%s at x = %.9g", what, x->data[i]);
    }
    checked++;
  }
  cr_expect_eq(checked, 7, "%d functions compared", checked);
  interp_free(&res);
  free(leaves);
  free(grads);
  graph_free(&g);
  compilation_free(&c);
  tensorfile_free(gold, ngold);
}

// ---- library layers against their PyTorch modules (tests/golden/make_golden.py)

// Elaborates the model text src at defs, binds "param:NAME" and "input:NAME"
// from golden file, and checks every output "output:NAME" (relative norm
// error 1e-5) and, for every parameter and every input with a "grad:NAME",
// the gradient of the model's loss (1e-4), as check_model does.
static void check_layer(const char *what, const char *src, const Define *defs, int ndefs, const char *file) {
  TensorEntry *gold;
  int ngold;
  char err[512], path[256];
  snprintf(path, sizeof path, "tests/golden/%s", file);
  cr_assert_eq(tensorfile_read(path, &gold, &ngold, err, sizeof err), 0, "%s", err);
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_text(&c, "layer.smelt", src, strlen(src));
  for (int i = 0; i < c.nmodules; i++) resolve_module(&c, c.modules[i]);
  cr_assert_eq(c.diag.errors, 0, "%s does not check", what);
  Graph g;
  graph_init(&g, &c.arena, &c.diag);
  cr_assert_eq(elaborate(&c, m, defs, ndefs, false, &g), 0);
  int n0 = g.n;
  Node *wrt[32];
  int nwrt = 0;
  double **leaves = calloc((size_t)n0, sizeof *leaves);
  for (int i = 0; i < n0; i++) {
    Node *n = g.nodes[i];
    if (n->op != OP_PARAM && n->op != OP_INPUT) continue;
    char key[256];
    snprintf(key, sizeof key, "%s:%s", n->op == OP_PARAM ? "param" : "input", n->name);
    const TensorEntry *t = tensorfile_find(gold, ngold, key);
    cr_assert_not_null(t, "%s: the golden file has no '%s'", what, key);
    cr_assert(shape_eq(&t->shape, &n->shape), "%s: %s: shapes differ", what, key);
    leaves[i] = t->data;
    snprintf(key, sizeof key, "grad:%s", n->name);
    if (n->op == OP_INPUT && tensorfile_find(gold, ngold, key) && nwrt < 32) wrt[nwrt++] = n;
  }
  Node **grads = autodiff(&g, wrt, nwrt);
  InterpResult r;
  cr_assert_eq(interp_run(&g, leaves, 1, 0, &r, err, sizeof err), 0, "%s", err);
  int outputs = 0, gradients = 0;
  for (int o = 0; o < g.noutputs; o++) {
    char key[256];
    snprintf(key, sizeof key, "output:%s", g.outputs[o].name);
    const TensorEntry *want = tensorfile_find(gold, ngold, key);
    if (!want) continue;
    Node *y = g.outputs[o].node;
    cr_assert(shape_eq(&y->shape, &want->shape), "%s: %s: shapes differ", what, key);
    double e = rel_err(r.vals[y->id], want->data, shape_numel(&want->shape));
    cr_expect_lt(e, 1e-5, "%s: %s differs from PyTorch by %.3g", what, g.outputs[o].name, e);
    outputs++;
  }
  for (int i = 0; i < n0; i++) {
    Node *n = g.nodes[i];
    char key[256];
    snprintf(key, sizeof key, "grad:%s", n->name);
    const TensorEntry *want = (n->op == OP_PARAM || n->op == OP_INPUT) ? tensorfile_find(gold, ngold, key) : NULL;
    if (!want) continue;
    cr_assert_not_null(grads[i], "%s: no gradient for %s", what, n->name);
    double e = rel_err(r.vals[grads[i]->id], want->data, shape_numel(&want->shape));
    cr_expect_lt(e, 1e-4, "%s: the gradient of %s differs from PyTorch by %.3g", what, n->name, e);
    gradients++;
  }
  cr_expect_gt(outputs, 0, "%s: no output compared", what);
  cr_expect_gt(gradients, 0, "%s: no gradient compared", what);
  interp_free(&r);
  free(grads);
  free(leaves);
  graph_free(&g);
  compilation_free(&c);
  tensorfile_free(gold, ngold);
}

TEST(golden, gru_and_gru_cell_as_torch_nn_gru) {
  const char *src = "import \"nn\"\n"
                    "model m(B = 1, T = 1, I = 1, H = 1) {\n"
                    "    input x: f32[B, T, I]\n    input h0: f32[B, H]\n"
                    "    input r: f32[B, T, H]\n    input rc: f32[B, H]\n"
                    "    output y = gru(x, H) as rnn\n"
                    "    output c = gru_cell(x[:, 2], h0) as cell\n"
                    "    loss (y * r).sum() + (c * rc).sum()\n"
                    "}\n";
  Define d[] = {{"B", 3}, {"T", 5}, {"I", 4}, {"H", 6}};
  check_layer("gru", src, d, 4, "gru.golden");
}

TEST(golden, self_and_cross_attention_with_masks) {
  const char *src = "import \"nn\"\n"
                    "model m(B = 1, T = 1, S = 1, C = 1, E = 1) {\n"
                    "    input x: f32[B, T, C]\n    input kv: f32[B, S, E]\n"
                    "    input m3: bool[B, T, T]\n    input m4: bool[B, 1, T, T]\n    input mc: bool[B, T, S]\n"
                    "    input r_a: f32[B, T, C]\n    input r_b: f32[B, T, C]\n    input r_c: f32[B, T, C]\n"
                    "    input r_d: f32[B, T, C]\n    input r_e: f32[B, T, C]\n    input r_f: f32[B, T, C]\n"
                    "    output a = self_attention(x, 2) as plain\n"
                    "    output b = self_attention(x, 2, causal = true) as causal\n"
                    "    output c = self_attention(x, 2, mask = m3) as masked3\n"
                    "    output d = self_attention(x, 2, causal = true, mask = m4) as masked4\n"
                    "    output e = cross_attention(x, kv, 2) as cross\n"
                    "    output f = cross_attention(x, kv, 2, mask = mc) as crossm\n"
                    "    loss (a * r_a).sum() + (b * r_b).sum() + (c * r_c).sum() + (d * r_d).sum()"
                    " + (e * r_e).sum() + (f * r_f).sum()\n"
                    "}\n";
  Define d[] = {{"B", 2}, {"T", 5}, {"S", 3}, {"C", 8}, {"E", 6}};
  check_layer("attention", src, d, 5, "attention.golden");
}

TEST(golden, group_norm_as_torch_nn_group_norm) {
  const char *src = "import \"nn\"\n"
                    "model m {\n"
                    "    input x_a: f32[2, 6, 3, 4]\n    input r_a: f32[2, 6, 3, 4]\n"
                    "    input x_b: f32[3, 4]\n    input r_b: f32[3, 4]\n"
                    "    input x_c: f32[2, 4, 5]\n    input r_c: f32[2, 4, 5]\n"
                    "    output a = group_norm(x_a, 3) as gn\n"
                    "    output b = group_norm(x_b, 2, eps = 1e-3) as gn2\n"
                    "    output c = group_norm(x_c, 1) as gn3\n"
                    "    input x_d: f32[2, 4, 3]\n    input r_d: f32[2, 4, 3]\n"
                    "    output d = group_norm(x_d, 2, affine = false) as gn4\n"
                    "    loss (a * r_a).sum() + (b * r_b).sum() + (c * r_c).sum() + (d * r_d).sum()\n"
                    "}\n";
  check_layer("group_norm", src, NULL, 0, "group_norm.golden");
}

// ---- resnet: batch norm in training mode and one SGD step (tests/golden/make_golden_resnet.py)

// One step of cfg on model in training mode from the golden file's "param:"
// and "buffer:" values (the optimizer's own state starts at zero) and its
// batch "input:": the logits and the loss against PyTorch's (1e-5), the
// gradient of every parameter (1e-4), then every parameter (1e-4) and every
// buffer (1e-5) after the step against "step1:", and each parameter's step
// (new - old, 1e-4); each has to have moved.
static void check_train_step(const char *model, const Define *d, int nd, const char *file, const TrainConfig *cfg,
                             int nparams, int nbuffers) {
  Golden k;
  golden_open(&k, model, d, nd, file, true);
  Graph *g = &k.g;
  int n0 = g->n;   // the model's leaves; the optimizer's state comes after
  cr_assert_eq(optim_append(g, cfg, 1), 0);
  double **state = calloc((size_t)g->n, sizeof *state), **leaves = calloc((size_t)g->n, sizeof *leaves);
  for (int i = 0; i < g->n; i++) {
    Node *n = g->nodes[i];
    int64_t cnt = shape_numel(&n->shape);
    if (n->op == OP_INPUT) leaves[i] = need(&k, "input:%s", n->name)->data;
    if (n->op != OP_PARAM && n->op != OP_STATE) continue;
    state[i] = calloc((size_t)(cnt ? cnt : 1), sizeof(double));
    if (n->op == OP_PARAM || i < n0)
      memcpy(state[i], need(&k, n->op == OP_PARAM ? "param:%s" : "buffer:%s", n->name)->data,
             sizeof(double) * (size_t)cnt);
    leaves[i] = state[i];
  }
  InterpResult r;
  char err[256];
  cr_assert_eq(interp_run(g, leaves, 1, 0, &r, err, sizeof err), 0, "%s", err);
  Node *logits = g->outputs[0].node;
  const TensorEntry *want = need(&k, "output:%s", "logits");
  cr_assert(shape_eq(&logits->shape, &want->shape));
  double e = rel_err(r.vals[logits->id], want->data, shape_numel(&want->shape));
  cr_expect_lt(e, 1e-5, "%s: logits differ from PyTorch by %.3g", file, e);
  e = rel_err(r.vals[g->loss->id], need(&k, "output:%s", "loss")->data, 1);
  cr_expect_lt(e, 1e-5, "%s: loss differs from PyTorch by %.3g", file, e);
  int grads = 0;
  for (int o = 0; o < g->noutputs; o++) {
    if (strncmp(g->outputs[o].name, "grad.", 5)) continue;
    const TensorEntry *gw = need(&k, "grad:%s", g->outputs[o].name + 5);
    cr_assert(shape_eq(&g->outputs[o].node->shape, &gw->shape));
    e = rel_err(r.vals[g->outputs[o].node->id], gw->data, shape_numel(&gw->shape));
    cr_expect_lt(e, 1e-4, "%s: the gradient of %s differs from PyTorch by %.3g", file, g->outputs[o].name + 5, e);
    grads++;
  }
  cr_expect_eq(grads, nparams, "%s: %d gradients compared", file, grads);
  for (int u = 0; u < g->nupdates; u++) {   // every new value was computed from the old ones
    const Update *up = &g->updates[u];
    memcpy(state[up->target->id], r.vals[up->value->id], sizeof(double) * (size_t)shape_numel(&up->target->shape));
  }
  int params = 0, buffers = 0;
  for (int i = 0; i < n0; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_PARAM && n->op != OP_STATE) continue;
    bool buffer = n->op == OP_STATE;
    want = need(&k, "step1:%s", n->name);
    cr_assert(shape_eq(&n->shape, &want->shape));
    int64_t cnt = shape_numel(&want->shape);
    e = rel_err(state[i], want->data, cnt);
    cr_expect_lt(e, buffer ? 1e-5 : 1e-4, "%s: after the step %s differs from PyTorch by %.3g", file, n->name, e);
    const double *before = need(&k, buffer ? "buffer:%s" : "param:%s", n->name)->data;
    double moved = rel_err(state[i], before, cnt);
    cr_expect_gt(moved, 0, "%s: %s did not move", file, n->name);
    if (!buffer) {   // the step itself, where weight decay is seen (lr * wd is 5e-5 of the weight)
      double *got = malloc(sizeof(double) * (size_t)cnt), *wstep = malloc(sizeof(double) * (size_t)cnt);
      for (int64_t j = 0; j < cnt; j++) got[j] = state[i][j] - before[j], wstep[j] = want->data[j] - before[j];
      e = rel_err(got, wstep, cnt);
      cr_expect_lt(e, 1e-4, "%s: the step of %s differs from PyTorch's by %.3g", file, n->name, e);
      free(got);
      free(wstep);
    }
    buffer ? buffers++ : params++;
  }
  cr_expect_eq(params, nparams, "%s: %d parameters compared", file, params);
  cr_expect_eq(buffers, nbuffers, "%s: %d buffers compared", file, buffers);
  interp_free(&r);
  for (int i = 0; i < g->n; i++) free(state[i]);
  free(state);
  free(leaves);
  golden_close(&k);
}

// examples/resnet.smelt's optimizer, at a constant learning rate: the cosine
// schedule's first step (warm-up over 100) would be a hundredth of it. Nine
// batch norms in training mode (batch statistics, running statistics
// updated); 29 parameters, 18 buffers.
TEST(golden, resnet_train_forward_gradients_and_nesterov_sgd_step) {
  TrainConfig cfg = {.optimizer = "sgd", .lr = 0.1, .momentum = 0.9, .nesterov = true, .weight_decay = 5e-4,
                     .schedule = "constant"};
  Define d[] = {{"B", 4}, {"C", 4}};
  check_train_step("resnet", d, 2, "resnet.golden", &cfg, 29, 18);
}

// ---- examples/autoencoder.smelt: tests/golden/make_golden_autoencoder.py

// Strided convolutions down, transposed convolutions with output_padding up,
// a sigmoid and the mean squared error against the input itself. Zero biases
// and all-zero image borders put relu's input at exactly 0 in both encoders.
TEST(golden, autoencoder_forward_and_gradients) {
  Define d[] = {{"B", 2}, {"C1", 2}, {"C2", 3}};
  check_model("autoencoder", d, 3, "autoencoder.golden");
}

// One step of the example's own train block (adam(lr = 2e-3), default betas
// and eps, constant schedule) against torch.optim.Adam.
TEST(golden, autoencoder_one_adam_step) {
  Define d[] = {{"B", 2}, {"C1", 2}, {"C2", 3}};
  check_steps("autoencoder", d, 3, "autoencoder_adam.golden", NULL);
}

// ---- the character-level GRU language model (tests/golden/make_golden_gru.py)

// examples/gru.smelt against a twin on torch.nn.GRU with smelt's weights:
// the ids include 0 and V - 1 and repeat, some never occur.
TEST(golden, gru_lm_forward_and_gradients) {
  Define d[] = {{"B", 2}, {"T", 6}, {"V", 11}, {"E", 4}, {"H", 5}};
  check_model("gru", d, 5, "gru_lm.golden");
}

// Ten steps of the example's own train block (Adam, lr 2e-3, clip_grad_norm
// 5.0, constant schedule) against torch.optim.Adam after
// torch.nn.utils.clip_grad_norm_; the gradient norms stay below 5.
TEST(golden, gru_lm_ten_adam_steps_of_its_train_block) {
  Define d[] = {{"B", 2}, {"T", 6}, {"V", 11}, {"E", 4}, {"H", 5}};
  check_steps("gru", d, 5, "gru_lm_adam.golden", NULL);
}

// The same with the norm clipped at 0.05, below every step's gradient norm
// (0.2 to 0.6), so that each step is scaled by a different factor.
TEST(golden, gru_lm_ten_adam_steps_clipped) {
  TrainConfig cfg = {.optimizer = "adam", .lr = 2e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                     .schedule = "constant", .clip_grad_norm = 0.05};
  Define d[] = {{"B", 2}, {"T", 6}, {"V", 11}, {"E", 4}, {"H", 5}};
  check_steps("gru", d, 5, "gru_lm_adam_clipped.golden", &cfg);
}
