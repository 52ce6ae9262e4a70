// test_autodiff.c: every gradient rule against central finite differences.
//
// Each case is a tiny model, written in the language, whose output y is
// reduced to a scalar loss L = sum(y * R) with a fixed random R. The backward
// pass gives dL/dx for every parameter and input x; the interpreter, run in
// exact mode (float64 throughout, no rounding to the storage dtype), gives
// (L(x + h) - L(x - h)) / 2h for every element. They must agree within
//     |analytic - numeric| <= 1e-6 * max(1, |numeric|),  h = 1e-6 * max(1, |x|).
// Inputs are drawn away from kinks (relu at 0, abs at 0, ties in max).
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

typedef struct {
  Compilation c;
  Module *m;
  Graph g;
  double **leaves;     // by node id, forward leaves only
  int nfwd;            // node count of the forward graph + loss
  Node *r;             // the random weights R
  Node **grads;
  double lo, hi;       // range of leaf values
} Case;

static uint64_t rng_state = 88172645463325252ull;
static double rnd(double lo, double hi) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return lo + (hi - lo) * (double)(rng_state >> 11) / 9007199254740992.0;
}

static bool is_var(const Node *n) {
  return (n->op == OP_PARAM || n->op == OP_INPUT) && dtype_is_float(n->dtype);
}

static double eval_loss(Case *k) {
  InterpResult r;
  char err[256];
  int rc = interp_run_ex(&k->g, k->leaves, 1, 0, true, &r, err, sizeof err);
  cr_assert_eq(rc, 0, "%s", err);
  double l = r.vals[k->g.loss->id][0];
  interp_free(&r);
  return l;
}

// Elaborates src, builds the loss from output 0 and the backward pass.
static void case_build(Case *k, const char *src, double lo, double hi) {
  memset(k, 0, sizeof *k);
  k->lo = lo;
  k->hi = hi;
  compilation_init(&k->c, stderr);
  k->c.diag.color = false;
  compilation_default_search(&k->c, NULL);
  k->m = module_load_text(&k->c, "case.smelt", src, strlen(src));
  for (int i = 0; i < k->c.nmodules; i++) resolve_module(&k->c, k->c.modules[i]);
  cr_assert_eq(k->c.diag.errors, 0, "the case does not check");
  graph_init(&k->g, &k->c.arena, &k->c.diag);
  cr_assert_eq(elaborate(&k->c, k->m, NULL, 0, true, &k->g), 0);
  cr_assert_geq(k->g.noutputs, 1);
  Graph *g = &k->g;
  Node *y = g->outputs[0].node;
  if (!dtype_is_float(y->dtype)) y = g_cast(g, y, DT_F32);
  k->r = g_leaf(g, OP_INPUT, y->dtype, y->shape, "R");
  Node *prod = g_binary(g, OP_MUL, y, k->r);
  uint32_t all = prod->shape.ndim ? (1u << prod->shape.ndim) - 1 : 0;
  g->loss = g_reduce(g, OP_SUM, prod, all, false);
  k->nfwd = g->n;
  Node *wrt[64];
  int nwrt = 0;
  for (int i = 0; i < g->n; i++)
    if (g->nodes[i]->op == OP_INPUT && is_var(g->nodes[i]) && g->nodes[i] != k->r) wrt[nwrt++] = g->nodes[i];
  k->grads = autodiff(g, wrt, nwrt);
  k->leaves = calloc((size_t)g->n, sizeof *k->leaves);
  for (int i = 0; i < k->nfwd; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_PARAM && n->op != OP_INPUT && n->op != OP_STATE) continue;   // STATE: buffers
    int64_t cnt = shape_numel(&n->shape);
    k->leaves[i] = malloc(sizeof(double) * (size_t)(cnt ? cnt : 1));
    for (int64_t j = 0; j < cnt; j++) {
      if (n == k->r) k->leaves[i][j] = rnd(-1, 1);
      else if (dtype_is_float(n->dtype)) k->leaves[i][j] = rnd(lo, hi);
      else k->leaves[i][j] = 0;
    }
  }
}

static void case_free(Case *k) {
  for (int i = 0; i < k->g.n; i++) free(k->leaves[i]);
  free(k->leaves);
  free(k->grads);
  graph_free(&k->g);
  compilation_free(&k->c);
}

// Compares every analytic gradient element with central differences.
static void case_check(Case *k, const char *what) {
  InterpResult r;
  char err[256];
  cr_assert_eq(interp_run_ex(&k->g, k->leaves, 1, 0, true, &r, err, sizeof err), 0, "%s", err);
  int checked = 0;
  for (int i = 0; i < k->nfwd; i++) {
    Node *n = k->g.nodes[i];
    if (!is_var(n) || n == k->r) continue;
    int64_t cnt = shape_numel(&n->shape);
    Node *gn = k->grads[i];
    for (int64_t j = 0; j < cnt; j++) {
      double analytic = gn ? r.vals[gn->id][j] : 0.0;
      double x0 = k->leaves[i][j], h = 1e-6 * fmax(1.0, fabs(x0));
      k->leaves[i][j] = x0 + h;
      double up = eval_loss(k);
      k->leaves[i][j] = x0 - h;
      double down = eval_loss(k);
      k->leaves[i][j] = x0;
      double numeric = (up - down) / (2 * h);
      cr_expect_leq(fabs(analytic - numeric), 1e-6 * fmax(1.0, fabs(numeric)),
                    "%s: d/d%s[%lld]: analytic %.10g, numeric %.10g", what, n->name, (long long)j,
                    analytic, numeric);
      checked++;
    }
  }
  cr_expect_gt(checked, 0, "%s: nothing was checked", what);
  interp_free(&r);
}

static void fd(const char *what, const char *body, double lo, double hi) {
  char src[4096];
  snprintf(src, sizeof src, "import \"nn\"\nmodel m {\n%s\n}\n", body);
  Case k;
  case_build(&k, src, lo, hi);
  case_check(&k, what);
  case_free(&k);
}

// ---- elementwise

TEST(autodiff, neg) { fd("neg", "input x: f32[2, 3]\noutput y = -x", -2, 2); }
TEST(autodiff, exp) { fd("exp", "input x: f32[2, 3]\noutput y = exp(x)", -2, 2); }
TEST(autodiff, log) { fd("log", "input x: f32[2, 3]\noutput y = log(x)", 0.5, 3); }
TEST(autodiff, sqrt) { fd("sqrt", "input x: f32[2, 3]\noutput y = sqrt(x)", 0.5, 3); }
TEST(autodiff, rsqrt) { fd("rsqrt", "input x: f32[2, 3]\noutput y = rsqrt(x)", 0.5, 3); }
TEST(autodiff, tanh) { fd("tanh", "input x: f32[2, 3]\noutput y = tanh(x)", -2, 2); }
TEST(autodiff, sigmoid) { fd("sigmoid", "input x: f32[2, 3]\noutput y = sigmoid(x)", -3, 3); }
TEST(autodiff, abs) { fd("abs", "input x: f32[2, 3]\noutput y = abs(x)", 0.2, 2); }
TEST(autodiff, abs_negative) { fd("abs", "input x: f32[2, 3]\noutput y = abs(x)", -2, -0.2); }
TEST(autodiff, relu_away_from_zero) { fd("relu", "input x: f32[2, 3]\noutput y = relu(x) + x.relu()", -2, 2); }
TEST(autodiff, erf) { fd("erf", "input x: f32[2, 3]\noutput y = erf(x) + x.erf()", -2.5, 2.5); }
TEST(autodiff, softplus) {
  fd("softplus", "input x: f32[2, 3]\noutput y = softplus(x)", -4, 4);
  fd("softplus beta", "input x: f32[2, 4]\noutput y = softplus(x, beta = 2.5, threshold = 3.0)", -3, 3);
  fd("softplus linear part", "input x: f32[2, 3]\noutput y = x.softplus(threshold = 1.0)", 2, 5);
}
TEST(autodiff, silu_and_swish) { fd("silu", "input x: f32[2, 3]\noutput y = silu(x) * x.swish()", -4, 4); }
// stop_gradient(x) is x in value and passes no gradient, so finite
// differences do not apply: y = w sg(x) + detach(w x) x has dL/dx = R w x
// and dL/dw = R x (L = sum(y R)), where the whole function's would be
// R (w + 2 w x) and R (x + x^2).
TEST(autodiff, stop_gradient_and_detach) {
  Case k;
  case_build(&k, "model m {\ninput x: f32[2, 3]\ninput w: f32[2, 3]\n"
             "output y = w * stop_gradient(x) + detach(w * x) * x.detach().stop_gradient() * 0.0 + detach(w * x) * x\n}\n",
             -2, 2);
  InterpResult r;
  char err[256];
  cr_assert_eq(interp_run_ex(&k.g, k.leaves, 1, 0, true, &r, err, sizeof err), 0, "%s", err);
  Node *x = NULL, *w = NULL;
  for (int i = 0; i < k.nfwd; i++) {
    Node *n = k.g.nodes[i];
    if (n->op == OP_INPUT && !strcmp(n->name, "x")) x = n;
    if (n->op == OP_INPUT && !strcmp(n->name, "w")) w = n;
  }
  cr_assert(x && w && k.grads[x->id] && k.grads[w->id]);
  const double *xv = k.leaves[x->id], *wv = k.leaves[w->id], *rv = k.leaves[k.r->id];
  const double *y = r.vals[k.g.outputs[0].node->id];
  for (int j = 0; j < 6; j++) {
    cr_expect_float_eq(y[j], wv[j] * xv[j] + wv[j] * xv[j] * xv[j], 1e-12, "the value passes");
    cr_expect_float_eq(r.vals[k.grads[x->id]->id][j], rv[j] * wv[j] * xv[j], 1e-12, "dL/dx[%d]", j);
    cr_expect_float_eq(r.vals[k.grads[w->id]->id][j], rv[j] * xv[j], 1e-12, "dL/dw[%d]", j);
  }
  interp_free(&r);
  case_free(&k);
}

// A gradient that reaches a parameter only through stop_gradient is none.
TEST(autodiff, stop_gradient_cuts_parameters_off) {
  Case k;
  case_build(&k, "model m {\ninput x: f32[2, 3]\nparam p: f32[3] = ones\noutput y = stop_gradient(x * p) * x\n}\n", -1, 1);
  for (int i = 0; i < k.nfwd; i++)
    if (k.g.nodes[i]->op == OP_PARAM) cr_expect_null(k.grads[i], "p gets a gradient through stop_gradient");
  case_free(&k);
}
TEST(autodiff, sin_and_cos) { fd("sin", "input x: f32[2, 3]\noutput y = sin(x) * cos(x) + x.sin()", -3, 3); }

TEST(autodiff, add_broadcast) {
  fd("add", "input a: f32[2, 3]\ninput b: f32[3]\noutput y = a + b", -1, 1);
  fd("add", "input a: f32[2, 1, 4]\ninput b: f32[3, 1]\noutput y = a + b", -1, 1);
}
TEST(autodiff, sub_broadcast) { fd("sub", "input a: f32[2, 3]\ninput b: f32[2, 1]\noutput y = a - b", -1, 1); }
TEST(autodiff, mul_broadcast) { fd("mul", "input a: f32[4, 3]\ninput b: f32[1, 3]\noutput y = a * b", -1, 1); }
TEST(autodiff, div_broadcast) { fd("div", "input a: f32[2, 3]\ninput b: f32[3]\noutput y = a / b", 0.5, 2); }
TEST(autodiff, pow_both) { fd("pow", "input a: f32[2, 3]\ninput b: f32[2, 3]\noutput y = a ** b", 0.5, 2); }
TEST(autodiff, pow_constant) { fd("pow", "input a: f32[5]\noutput y = a ** 3", -2, 2); }
TEST(autodiff, scalar_constants) { fd("scalars", "input a: f32[3]\noutput y = 2.0 * a - 1 / (a + 3.0)", 0.1, 2); }
TEST(autodiff, maximum_minimum) {
  fd("maximum", "input a: f32[2, 3]\ninput b: f32[3]\noutput y = maximum(a, b)", -1, 1);
  fd("minimum", "input a: f32[2, 3]\ninput b: f32[2, 3]\noutput y = minimum(a, b)", -1, 1);
}
TEST(autodiff, where) {
  fd("where", "input a: f32[2, 3]\ninput b: f32[2, 3]\noutput y = where(a > b, a * a, b * 3.0)", -1, 1);
}

// ---- reductions

TEST(autodiff, sum_axes) {
  fd("sum", "input x: f32[2, 3, 4]\noutput y = x.sum(axis = (0, 2))", -1, 1);
  fd("sum", "input x: f32[2, 3]\noutput y = x.sum(axis = -1, keep = true) * x", -1, 1);
  fd("sum", "input x: f32[2, 3]\noutput y = x.sum()", -1, 1);
}
TEST(autodiff, mean) { fd("mean", "input x: f32[3, 5]\noutput y = x.mean(axis = 1)", -1, 1); }
TEST(autodiff, max_min_reductions) {
  fd("max", "input x: f32[3, 5]\noutput y = x.max(axis = 1)", -1, 1);
  fd("min", "input x: f32[3, 5]\noutput y = x.min(axis = 0, keep = true)", -1, 1);
}

// ---- contraction, convolution, pooling

TEST(autodiff, matmul_plain_and_batched) {
  fd("matmul", "input a: f32[3, 4]\ninput b: f32[4, 2]\noutput y = a @ b", -1, 1);
  fd("matmul", "input a: f32[2, 3, 4]\ninput b: f32[4, 5]\noutput y = a @ b", -1, 1);
  fd("matmul", "input a: f32[2, 1, 3, 4]\ninput b: f32[3, 4, 2]\noutput y = a @ b", -1, 1);
  fd("matmul", "input a: f32[4]\ninput b: f32[4, 3]\noutput y = a @ b", -1, 1);
}
TEST(autodiff, matmul_transposed) {
  fd("matmul ta", "input a: f32[4, 3]\ninput b: f32[4, 2]\noutput y = matmul(a, b, ta = true)", -1, 1);
  fd("matmul tb", "input a: f32[3, 4]\ninput b: f32[2, 4]\noutput y = matmul(a, b, tb = true)", -1, 1);
  fd("matmul ta tb", "input a: f32[2, 4, 3]\ninput b: f32[2, 4]\noutput y = matmul(a, b, ta = true, tb = true)", -1, 1);
}
TEST(autodiff, conv) {
  fd("conv", "input x: f32[2, 3, 5, 5]\ninput w: f32[4, 3, 3, 3]\noutput y = conv(x, w)", -1, 1);
  fd("conv strided padded", "input x: f32[1, 2, 6, 5]\ninput w: f32[3, 2, 3, 2]\n"
     "output y = conv(x, w, stride = 2, padding = 1)", -1, 1);
  fd("conv dilated grouped", "input x: f32[1, 4, 7, 7]\ninput w: f32[6, 2, 2, 2]\n"
     "output y = conv(x, w, dilation = 2, groups = 2)", -1, 1);
}
TEST(autodiff, conv_transpose) {
  fd("conv_transpose", "input x: f32[2, 3, 3, 4]\ninput w: f32[3, 2, 3, 3]\noutput y = conv_transpose(x, w)", -1, 1);
  fd("conv_transpose strided padded", "input x: f32[1, 2, 4, 3]\ninput w: f32[2, 3, 3, 2]\n"
     "output y = conv_transpose(x, w, stride = (2, 3), padding = 1, output_padding = (1, 2))", -1, 1);
  fd("conv_transpose dilated grouped", "input x: f32[1, 4, 3, 3]\ninput w: f32[4, 3, 2, 2]\n"
     "output y = conv_transpose(x, w, stride = 1, dilation = 2, output_padding = 1, groups = 2)", -1, 1);
  fd("conv_transpose depthwise", "input x: f32[2, 3, 3, 3]\ninput w: f32[3, 1, 3, 3]\n"
     "output y = conv_transpose(x, w, stride = 2, padding = 1, groups = 3)", -1, 1);
}
TEST(autodiff, upsample) {
  fd("upsample nearest", "input x: f32[2, 3, 3, 2]\noutput y = upsample(x, (2, 3))", -1, 1);
  fd("upsample bilinear", "input x: f32[1, 2, 3, 4]\noutput y = upsample(x, 2, mode = \"bilinear\")", -1, 1);
  fd("upsample bilinear 3x1", "input x: f32[2, 1, 1, 5]\noutput y = upsample(x, (3, 1), mode = \"bilinear\")", -1, 1);
}
TEST(autodiff, pooling) {
  fd("pool_max", "input x: f32[1, 2, 4, 6]\noutput y = pool_max(x, 2)", -1, 1);
  fd("pool_max padded", "input x: f32[1, 1, 5, 5]\noutput y = pool_max(x, 3, stride = 2, padding = 1)", -1, 1);
  fd("pool_avg", "input x: f32[2, 1, 4, 4]\noutput y = pool_avg(x, (2, 2), stride = 1)", -1, 1);
}

// ---- movement, gather

TEST(autodiff, views) {
  fd("reshape", "input x: f32[2, 6]\noutput y = x.reshape(3, 4) * x.reshape(3, 4)", -1, 1);
  fd("permute", "input x: f32[2, 3, 4]\noutput y = x.permute(2, 0, 1)", -1, 1);
  fd("transpose", "input x: f32[2, 3]\noutput y = x.T @ x", -1, 1);
  fd("broadcast", "input x: f32[3, 1]\noutput y = x.broadcast(2, 3, 4)", -1, 1);
}
TEST(autodiff, slices) {
  fd("slice", "input x: f32[5, 6]\noutput y = x[1:4, 2:]", -1, 1);
  fd("slice step", "input x: f32[7, 5]\noutput y = x[::3, 1:5:2]", -1, 1);
  fd("index", "input x: f32[3, 4]\noutput y = x[1] * x[:, 2].sum()", -1, 1);
}
TEST(autodiff, negative_step_slices) {
  fd("reverse", "input x: f32[5, 4]\noutput y = x[::-1] * x[:, ::-1]", -1, 1);
  fd("negative steps", "input x: f32[7, 6]\noutput y = x[5:0:-2, -1::-4]", -1, 1);
  fd("negative step into a step", "input x: f32[9, 3]\noutput y = x[::2][::-1][1:, 2:0:-1]", -1, 1);
}
TEST(autodiff, stack_and_concat_of_lists) {
  fd("stack", "input a: f32[2, 3]\ninput b: f32[2, 3]\ninput c: f32[2, 3]\n"
     "output y = stack([a, b * b, c], axis = 1) * stack(a, b, c, axis = -1).reshape(2, 3, 3)", -1, 1);
  fd("list built in a loop", "input x: f32[3, 4]\nlet hs = []\n"
     "for t in 0..4 {\n  hs = hs + [x[:, t] * x[:, 3 - t]]\n}\n"
     "output y = stack(hs, axis = 1) + concat(hs[::-1]).reshape(3, 4)", -1, 1);
}
TEST(autodiff, pad_concat) {
  fd("pad", "input x: f32[2, 3]\noutput y = pad(x, (1, 2), value = 0.5)", -1, 1);
  fd("concat", "input a: f32[2, 3]\ninput b: f32[2, 2]\noutput y = concat(a, b, axis = 1)", -1, 1);
}
TEST(autodiff, gather) {
  fd("gather", "param t: f32[5, 3] = zeros\ninput ids: i32[4]\noutput y = gather(t, ids)", -1, 1);
}

// ---- library layers

TEST(autodiff, stdlib_activations_and_losses) {
  fd("relu", "input x: f32[3, 4]\noutput y = relu(x)", 0.1, 1);
  fd("gelu", "input x: f32[3, 4]\noutput y = gelu(x)", -3, 3);
  fd("gelu tanh", "input x: f32[3, 4]\noutput y = gelu(x, approximate = \"tanh\")", -3, 3);
  fd("softmax", "input x: f32[3, 4]\noutput y = softmax(x)", -2, 2);
  fd("log_softmax", "input x: f32[3, 4]\noutput y = log_softmax(x)", -2, 2);
  fd("cross_entropy", "input x: f32[3, 5]\ninput t: i32[3]\noutput y = cross_entropy(x, t)", -2, 2);
  fd("cross_entropy smoothed", "input x: f32[3, 5]\ninput t: i32[3]\n"
     "output y = cross_entropy(x, t, label_smoothing = 0.1)", -2, 2);
  // labels 0, -100, 3: the second row ignored
  fd("cross_entropy smoothed, ignoring", "input x: f32[3, 5]\ninput t: i32[3]\n"
     "let u = where(iota(3) == 1, -100, where(iota(3) == 2, 3, t))\n"
     "output y = cross_entropy(x, u, ignore_index = -100, label_smoothing = 0.25)", -2, 2);
  fd("mse", "input x: f32[3, 2]\ninput t: f32[3, 2]\noutput y = mse(x, t)", -2, 2);
}
TEST(autodiff, stdlib_layers) {
  fd("linear", "input x: f32[2, 3]\noutput y = linear(x, 4) as fc", -1, 1);
  fd("layernorm", "input x: f32[2, 5]\noutput y = layernorm(x) as ln", -1, 1);
  fd("rms_norm", "input x: f32[2, 5]\noutput y = rms_norm(x) as rn", -1, 1);
  fd("embedding", "input ids: i32[2, 3]\noutput y = embedding(ids, 4, 3) as emb", -1, 1);
  fd("conv2d", "input x: f32[1, 2, 4, 4]\noutput y = conv2d(x, 3, 3, padding = 1) as c", -1, 1);
  fd("conv_transpose2d", "input x: f32[1, 2, 3, 3]\noutput y = conv_transpose2d(x, 3, 3, stride = 2, "
     "output_padding = 1) as ct", -1, 1);
  fd("pools", "input x: f32[1, 2, 4, 4]\noutput y = max_pool2d(x, 2) + avg_pool2d(x, 2)", -1, 1);
  fd("batchnorm2d", "input x: f32[3, 2, 3, 2]\noutput y = batchnorm2d(x) as bn", -1, 1);
  fd("batchnorm1d", "input x: f32[4, 3]\noutput y = batchnorm1d(x, affine = false) as bn", -1, 1);
  fd("batchnorm1d of (N, C, L)", "input x: f32[2, 3, 5]\noutput y = batchnorm1d(x) as bn", -1, 1);
}
TEST(autodiff, stdlib_attention_mlp_block) {
  fd("attention", "input x: f32[2, 3, 4]\noutput y = causal_self_attention(x, 2) as attn", -1, 1);
  fd("mlp", "input x: f32[2, 4]\noutput y = mlp(x, hidden = 6) as mlp", -1, 1);
  fd("block", "input x: f32[1, 3, 4]\noutput y = transformer_block(x, 2) as blk", -1, 1);
}
TEST(autodiff, stdlib_lstm_cell) {
  fd("lstm_cell", "input x: f32[2, 3]\ninput h: f32[2, 4]\ninput c: f32[2, 4]\n"
     "let h2, c2 = lstm_cell(x, h, c) as cell\noutput y = h2 + c2 * 0.5", -1, 1);
}

TEST(autodiff, stdlib_self_and_cross_attention) {
  fd("self_attention", "input x: f32[2, 3, 4]\nlet m = iota(3).reshape(3, 1) != iota(3).reshape(1, 3)\n"
     "output y = self_attention(x, 2, causal = true, mask = m.broadcast(2, 3, 3)) as attn", -1, 1);
  fd("cross_attention", "input x: f32[2, 3, 4]\ninput kv: f32[2, 2, 3]\n"
     "output y = cross_attention(x, kv, 2) as attn", -1, 1);
}

TEST(autodiff, stdlib_group_norm) {
  fd("group_norm", "input x: f32[2, 4, 3]\noutput y = group_norm(x, 2) as gn", -1, 1);
}

TEST(autodiff, stdlib_gru) {
  fd("gru_cell", "input x: f32[2, 3]\ninput h: f32[2, 4]\noutput y = gru_cell(x, h) as cell", -1, 1);
  fd("gru", "input x: f32[2, 3, 2]\noutput y = gru(x, 3) as rnn", -1, 1);
}

// The rules for ops with no surface syntax, through the builders.
TEST(autodiff, sin_cos_cast_with_builders) {
  Arena a = {0};
  Diag d;
  diag_init(&d, stderr);
  Graph g;
  graph_init(&g, &a, &d);
  Node *x = g_leaf(&g, OP_PARAM, DT_F32, shape_of(1, (int64_t[]){3}), "x");
  Node *y = g_binary(&g, OP_MUL, g_unary(&g, OP_SIN, x), g_unary(&g, OP_COS, x));
  g.loss = g_reduce(&g, OP_SUM, y, 1, false);
  Node **grads = autodiff(&g, NULL, 0);
  double xv[3] = {0.3, -1.2, 2.0};
  double *leaves[64] = {xv};
  InterpResult r;
  char err[128];
  cr_assert_eq(interp_run_ex(&g, leaves, 1, 0, true, &r, err, sizeof err), 0);
  for (int i = 0; i < 3; i++)   // d/dx sin x cos x = cos 2x
    cr_expect_float_eq(r.vals[grads[x->id]->id][i], cos(2 * xv[i]), 1e-12);
  interp_free(&r);
  free(grads);
  graph_free(&g);
  diag_free(&d);
  arena_free(&a);
}

TEST(autodiff, gradient_names_and_count_in_training_step) {
  char *out;
  cr_assert_eq(check_file("examples/mlp.smelt", &out), 0, "%s", out);
  free(out);
}

// ---- fused attention: the primitive's rule (ATTENTION_DQ and ATTENTION_DKV
// from the saved log-sum-exp) against finite differences, and against the
// gradient of the unfused formula softmax(where(mask, s q k^T, -1e9)) v.

#define UNFUSED(q, k, v, m, s) "softmax(where(" m ", (" q " @ " k ".transpose(2, 3)) * " s ", -1e9)) @ " v

TEST(autodiff, attention_primitive) {
  fd("attention", "input q: f32[2, 2, 3, 4]\ninput k: f32[2, 2, 5, 4]\ninput v: f32[2, 2, 5, 3]\n"
     "output y = attention(q, k, v)", -1, 1);
  fd("attention causal, Tq > Tk", "input q: f32[1, 2, 4, 3]\ninput k: f32[1, 2, 3, 3]\ninput v: f32[1, 2, 3, 2]\n"
     "output y = attention(q, k, v, causal = true, scale = 0.7)", -1, 1);
  fd("attention width 1", "input q: f32[1, 1, 3, 1]\ninput k: f32[1, 1, 2, 1]\ninput v: f32[1, 1, 2, 1]\n"
     "output y = attention(q, k, v, scale = 2.0)", -2, 2);
  // row 0 may attend no key: the mean of v, and only v has a gradient from it
  fd("attention masked rows", "input q: f32[2, 1, 3, 2]\ninput k: f32[2, 1, 4, 2]\ninput v: f32[2, 1, 4, 3]\n"
     "let m = iota(4).reshape(1, 4) < iota(3).reshape(3, 1)\noutput y = attention(q, k, v, mask = m)", -1, 1);
  fd("attention causal and mask", "input q: f32[1, 2, 3, 2]\ninput k: f32[1, 2, 3, 2]\ninput v: f32[1, 2, 3, 2]\n"
     "let m = iota(3).reshape(1, 3) != 0\noutput y = attention(q, k, v, causal = true, mask = m.broadcast(1, 2, 3, 3))",
     -1, 1);
  // dropout's factors are fixed for a seed and step, so the function is smooth between them
  fd("attention dropout", "input q: f32[2, 2, 4, 3]\ninput k: f32[2, 2, 5, 3]\ninput v: f32[2, 2, 5, 2]\n"
     "output y = attention(q, k, v, dropout = 0.4)", -1, 1);
  fd("attention dropout, causal and masked rows", "input q: f32[1, 2, 4, 3]\ninput k: f32[1, 2, 4, 3]\n"
     "input v: f32[1, 2, 4, 2]\nlet m = (iota(4).reshape(4, 1) != 1).broadcast(4, 4)\n"
     "output y = attention(q, k, v, causal = true, mask = m, dropout = 0.3)", -1, 1);
}

// y = attention - the unfused formula: its value and every gradient vanish.
static void same_as_unfused(const char *what, const char *body) {
  char src[4096];
  snprintf(src, sizeof src, "import \"nn\"\nmodel m {\n%s\n}\n", body);
  Case k;
  case_build(&k, src, -1.5, 1.5);
  InterpResult r;
  char err[256];
  cr_assert_eq(interp_run_ex(&k.g, k.leaves, 1, 0, true, &r, err, sizeof err), 0, "%s", err);
  const Node *y = k.g.outputs[0].node;
  for (int64_t j = 0; j < shape_numel(&y->shape); j++)
    cr_expect_leq(fabs(r.vals[y->id][j]), 1e-12, "%s: value [%lld] differs by %g", what, (long long)j, r.vals[y->id][j]);
  int checked = 0;
  for (int i = 0; i < k.nfwd; i++) {
    const Node *n = k.g.nodes[i];
    if (!is_var(n) || n == k.r) continue;
    cr_assert(k.grads[i], "%s: %s has no gradient", what, n->name);
    for (int64_t j = 0; j < shape_numel(&n->shape); j++, checked++)
      cr_expect_leq(fabs(r.vals[k.grads[i]->id][j]), 1e-12, "%s: d/d%s[%lld] differs by %g", what, n->name,
                    (long long)j, r.vals[k.grads[i]->id][j]);
  }
  cr_expect_gt(checked, 0);
  interp_free(&r);
  case_free(&k);
}

TEST(autodiff, attention_matches_unfused) {
  same_as_unfused("plain", "input q: f32[2, 3, 4, 5]\ninput k: f32[2, 3, 6, 5]\ninput v: f32[2, 3, 6, 7]\n"
                  "let m = fill(true, 4, 6, dtype = bool)\n"
                  "output y = attention(q, k, v, scale = 0.25) - " UNFUSED("q", "k", "v", "m", "0.25"));
  same_as_unfused("causal", "input q: f32[1, 2, 5, 3]\ninput k: f32[1, 2, 4, 3]\ninput v: f32[1, 2, 4, 2]\n"
                  "let m = iota(4).reshape(1, 4) <= iota(5).reshape(5, 1)\n"
                  "output y = attention(q, k, v, causal = true, scale = 0.5) - " UNFUSED("q", "k", "v", "m", "0.5"));
  same_as_unfused("masked rows", "input q: f32[2, 1, 3, 2]\ninput k: f32[2, 1, 4, 2]\ninput v: f32[2, 1, 4, 3]\n"
                  "let m = iota(4).reshape(1, 4) < iota(3).reshape(3, 1)\n"
                  "output y = attention(q, k, v, mask = m, scale = 2.0) - " UNFUSED("q", "k", "v", "m", "2.0"));
}
