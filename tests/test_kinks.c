// test_kinks.c: gradients at ties and kinks follow PyTorch's conventions
// (docs/ops.md, "Ties and kinks"). Finite differences cannot check these
// points (they split a kink in half), so each case feeds inputs that sit
// exactly on one and compares with the value PyTorch's backward gives.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

// The gradient of sum(output y * dy) with respect to input x, for x and dy
// given; out gets x's size in values, y (when not NULL) the output's.
static void grad_of(const char *src, const double *x, const double *dy, double *out, double *y) {
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_text(&c, "kink.smelt", src, strlen(src));
  for (int i = 0; i < c.nmodules; i++) resolve_module(&c, c.modules[i]);
  cr_assert_eq(c.diag.errors, 0);
  Graph g;
  graph_init(&g, &c.arena, &c.diag);
  cr_assert_eq(elaborate(&c, m, NULL, 0, true, &g), 0);
  Node *in = graph_find_leaf(&g, OP_INPUT, "x"), *yn = g.outputs[0].node;
  Node *r = g_leaf(&g, OP_INPUT, yn->dtype, yn->shape, "dy");
  g.loss = g_reduce(&g, OP_SUM, g_binary(&g, OP_MUL, yn, r), yn->shape.ndim ? (1u << yn->shape.ndim) - 1 : 0, false);
  Node **grads = autodiff(&g, &in, 1);
  double **leaves = calloc((size_t)g.n, sizeof *leaves);
  leaves[in->id] = (double *)x;
  leaves[r->id] = (double *)dy;
  InterpResult res;
  char err[256];
  cr_assert_eq(interp_run_ex(&g, leaves, 1, 0, true, &res, err, sizeof err), 0, "%s", err);
  cr_assert_not_null(grads[in->id], "no gradient reaches x");
  memcpy(out, res.vals[grads[in->id]->id], sizeof(double) * (size_t)shape_numel(&in->shape));
  if (y) memcpy(y, res.vals[yn->id], sizeof(double) * (size_t)shape_numel(&yn->shape));
  interp_free(&res);
  free(leaves);
  free(grads);
  graph_free(&g);
  compilation_free(&c);
}

static void expect_grads(const char *what, const double *got, const double *want, int n) {
  for (int i = 0; i < n; i++)
    cr_expect(got[i] == want[i] || (isnan(got[i]) && isnan(want[i])), "%s: dx[%d] = %g, PyTorch gives %g", what, i,
              got[i], want[i]);
}

// torch.relu: threshold_backward passes dy where x > 0 (and where x is NaN),
// 0 at x == 0 and below; the forward keeps NaN.
TEST(kinks, relu_at_zero_gives_zero) {
  const char *src = "model m {\n  input x: f32[6]\n  output y = relu(x) + x.relu() * 0.0\n}\n";
  double x[6] = {-1, 0, -0.0, 2, NAN, -INFINITY}, dy[6] = {1, 1, 1, 1, 1, 1}, dx[6], y[6];
  grad_of(src, x, dy, dx, y);
  expect_grads("relu", dx, (double[]){0, 0, 0, 1, 1, 0}, 6);
  cr_expect(isnan(y[4]), "relu(NaN) = %g, not NaN", y[4]);
  cr_expect_eq(y[5], 0.0);
  cr_expect_eq(y[1], 0.0);
}

// torch.maximum and torch.minimum: a tie splits dy evenly between a and b.
TEST(kinks, maximum_and_minimum_split_a_tie) {
  const char *src = "model m {\n  input x: f32[3]\n  output y = maximum(x, 1.0)\n}\n";
  double x[3] = {1, 2, 0}, dy[3] = {1, 1, 1}, dx[3];
  grad_of(src, x, dy, dx, NULL);
  expect_grads("maximum", dx, (double[]){0.5, 1, 0}, 3);
  const char *src2 = "model m {\n  input x: f32[3]\n  output y = minimum(x, 1.0)\n}\n";
  grad_of(src2, x, dy, dx, NULL);
  expect_grads("minimum", dx, (double[]){0.5, 0, 1}, 3);
}

// torch.abs: sign(x) * dy, 0 at x == 0.
TEST(kinks, abs_at_zero_gives_zero) {
  const char *src = "model m {\n  input x: f32[3]\n  output y = abs(x)\n}\n";
  double x[3] = {-2, 0, 3}, dy[3] = {1, 1, 1}, dx[3];
  grad_of(src, x, dy, dx, NULL);
  expect_grads("abs", dx, (double[]){-1, 0, 1}, 3);
}

// torch.amax (x.max(axis)): dy shared evenly among the tied maxima.
TEST(kinks, reduction_max_shares_among_ties) {
  const char *src = "model m {\n  input x: f32[4]\n  output y = x.max(keep = true)\n}\n";
  double x[4] = {3, 1, 3, 3}, dy[1] = {1}, dx[4];
  grad_of(src, x, dy, dx, NULL);
  expect_grads("x.max()", dx, (double[]){1.0 / 3, 0, 1.0 / 3, 1.0 / 3}, 4);
}

// torch.where: each branch gets dy where it was chosen, even when both
// branches hold the same value.
TEST(kinks, where_with_equal_branches_goes_to_the_chosen_one) {
  const char *src = "model m {\n  input x: f32[2]\n  output y = where(x > 0.0, x, x)\n}\n";
  double x[2] = {0, 1}, dy[2] = {1, 1}, dx[2];
  grad_of(src, x, dy, dx, NULL);
  expect_grads("where(c, x, x)", dx, (double[]){1, 1}, 2);
}

// F.max_pool2d: each window's dy goes to its first maximum (row-major).
TEST(kinks, max_pool_gives_a_tied_window_to_its_first_maximum) {
  const char *src = "import \"nn\"\nmodel m {\n  input x: f32[1, 1, 2, 2]\n  output y = max_pool2d(x, 2)\n}\n";
  double x[4] = {5, 5, 5, 5}, dy[1] = {1}, dx[4];
  grad_of(src, x, dy, dx, NULL);
  expect_grads("max_pool2d", dx, (double[]){1, 0, 0, 0}, 4);
}
