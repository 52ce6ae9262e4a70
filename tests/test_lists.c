// test_lists.c: compile-time lists, stack, and slices with negative steps,
// by their values in the interpreter.
//
// Each case is a small model whose inputs hold x[i] = i (flat index), so an
// output's elements say which input elements it took; the expected values
// are written out by hand (the slice tables from Python's own slicing of
// range(7), whose rules NumPy's basic slicing shares). That the compiled
// kernels agree with the interpreter is test_codegen.c's part, the gradients
// test_autodiff.c's, the error messages tests/diag's.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

typedef struct {
  Compilation c;
  Graph g;
  double **leaves;
  InterpResult r;
} Run;

// Elaborates src for inference and runs it with every input element equal
// to its flat index.
static void run_source(Run *k, const char *src) {
  memset(k, 0, sizeof *k);
  compilation_init(&k->c, stderr);
  k->c.diag.color = false;
  compilation_default_search(&k->c, NULL);
  Module *m = module_load_text(&k->c, "case.smelt", src, strlen(src));
  for (int i = 0; i < k->c.nmodules; i++) resolve_module(&k->c, k->c.modules[i]);
  cr_assert_eq(k->c.diag.errors, 0, "the case does not check:\n%s", src);
  graph_init(&k->g, &k->c.arena, &k->c.diag);
  cr_assert_eq(elaborate(&k->c, m, NULL, 0, false, &k->g), 0, "the case does not elaborate:\n%s", src);
  k->leaves = calloc((size_t)k->g.n, sizeof *k->leaves);
  for (int i = 0; i < k->g.n; i++) {
    Node *n = k->g.nodes[i];
    if (n->op != OP_INPUT && n->op != OP_PARAM) continue;
    int64_t cnt = shape_numel(&n->shape);
    k->leaves[i] = malloc(sizeof(double) * (size_t)(cnt ? cnt : 1));
    for (int64_t j = 0; j < cnt; j++) k->leaves[i][j] = (double)j;
  }
  char err[256];
  cr_assert_eq(interp_run(&k->g, k->leaves, 1, 0, &k->r, err, sizeof err), 0, "%s", err);
}

// The same for `body` inside `model m { ... }`, nn imported.
static void run_model(Run *k, const char *body) {
  char src[4096];
  snprintf(src, sizeof src, "import \"nn\"\nmodel m {\n%s\n}\n", body);
  run_source(k, src);
}

static void run_free(Run *k) {
  interp_free(&k->r);
  for (int i = 0; i < k->g.n; i++) free(k->leaves[i]);
  free(k->leaves);
  graph_free(&k->g);
  compilation_free(&k->c);
}

static const Node *output(Run *k, const char *name) {
  for (int i = 0; i < k->g.noutputs; i++)
    if (!strcmp(k->g.outputs[i].name, name)) return k->g.outputs[i].node;
  cr_assert_fail("no output '%s'", name);
  return NULL;
}

// Output `name` has shape dims and exactly the values want.
static void expect_output(Run *k, const char *name, int ndim, const int64_t *dims, const double *want) {
  const Node *n = output(k, name);
  Shape s = shape_of(ndim, dims);
  char got[96], exp[96];
  cr_assert(shape_eq(&n->shape, &s), "%s: shape %s, want %s", name,
            type_str(got, sizeof got, n->dtype, &n->shape), type_str(exp, sizeof exp, n->dtype, &s));
  const double *v = k->r.vals[n->id];
  for (int64_t i = 0; i < shape_numel(&s); i++)
    cr_expect_eq(v[i], want[i], "%s[%lld]: got %g, want %g", name, (long long)i, v[i], want[i]);
}

#define DIMS(...) ((int64_t[]){__VA_ARGS__})
#define VALS(...) ((double[]){__VA_ARGS__})

TEST(lists, stack_along_each_axis) {
  Run k;
  run_model(&k, "input a: f32[2, 3]\ninput b: f32[2, 3]\n"
                "let c = b + 10.0\n"
                "output s0 = stack(a, c)\n"                    // [2, 2, 3]
                "output s1 = stack([a, c], axis = 1)\n"        // [2, 2, 3]
                "output s2 = stack((a, c), axis = -1)\n"       // [2, 3, 2]
                "output one = stack([a])\n");                  // [1, 2, 3]
  expect_output(&k, "s0", 3, DIMS(2, 2, 3), VALS(0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15));
  expect_output(&k, "s1", 3, DIMS(2, 2, 3), VALS(0, 1, 2, 10, 11, 12, 3, 4, 5, 13, 14, 15));
  expect_output(&k, "s2", 3, DIMS(2, 3, 2), VALS(0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15));
  expect_output(&k, "one", 3, DIMS(1, 2, 3), VALS(0, 1, 2, 3, 4, 5));
  run_free(&k);
}

TEST(lists, list_built_in_a_loop_then_stacked) {
  Run k;
  // five items, so the balanced join has uneven halves
  run_model(&k, "input x: f32[2, 5]\n"
                "let hs = []\n"
                "for t in 0..5 {\n  hs = hs + [x[:, t] * 2.0 + 100.0 * t]\n}\n"
                "output y = stack(hs, axis = 1)\n"
                "output first = stack(hs)[0]\n"
                "output n = fill(len(hs), 1)\n");
  // x = [[0..4], [5..9]]; item t = 2 * x[:, t] + 100 t
  expect_output(&k, "y", 2, DIMS(2, 5), VALS(0, 102, 204, 306, 408, 10, 112, 214, 316, 418));
  expect_output(&k, "first", 1, DIMS(2), VALS(0, 10));
  expect_output(&k, "n", 1, DIMS(1), VALS(5));
  run_free(&k);
}

TEST(lists, indexing_slicing_and_iterating) {
  Run k;
  run_model(&k, "input x: f32[4]\n"
                "let xs = [x[0:1], x[1:2], x[2:3], x[3:4]]\n"
                "output last = xs[-1]\n"
                "output rev = concat(xs[::-1])\n"
                "output odd = concat(xs[1::2])\n"
                "output mid = concat(xs[1:3], x, axis = 0)\n"
                "let total = fill(0.0, 1)\n"
                "for v in xs[:3] {\n  total = total + v\n}\n"
                "output sum3 = total\n"
                "output empty = fill(len(xs[3:1]), 1)\n"
                "let ys = xs + []\n"
                "xs = xs + [x[0:1] * 5.0]\n"        // ys keeps its four items
                "output grown = fill(len(xs) * 10 + len(ys), 1)\n");
  expect_output(&k, "last", 1, DIMS(1), VALS(3));
  expect_output(&k, "rev", 1, DIMS(4), VALS(3, 2, 1, 0));
  expect_output(&k, "odd", 1, DIMS(2), VALS(1, 3));
  expect_output(&k, "mid", 1, DIMS(6), VALS(1, 2, 0, 1, 2, 3));
  expect_output(&k, "sum3", 1, DIMS(1), VALS(3));
  expect_output(&k, "empty", 1, DIMS(1), VALS(0));
  expect_output(&k, "grown", 1, DIMS(1), VALS(54));
  run_free(&k);
}

TEST(lists, lists_pass_through_functions) {
  Run k;
  run_source(&k, "fn doubles(x, n: int) -> list {\n  let r = []\n"
                 "  for i in 0..n {\n    r = r + [x * (2.0 ** i)]\n  }\n  return r\n}\n"
                 "fn total(xs: list) {\n  let s = xs[0]\n  for i in 1..len(xs) {\n    s = s + xs[i]\n  }\n"
                 "  return s\n}\n"
                 "model m {\n  input x: f32[3]\n  output y = total(doubles(x, 3))\n}\n");
  expect_output(&k, "y", 1, DIMS(3), VALS(0, 7, 14));   // (1 + 2 + 4) x
  run_free(&k);
}

// x[spec] over x = 0..6 against Python's range(7)[spec].
static const struct {
  const char *spec;
  int n;
  double want[7];
} slices_1d[] = {
    {"::-1", 7, {6, 5, 4, 3, 2, 1, 0}},  {"5:1:-2", 2, {5, 3}},
    {"-1:-8:-1", 7, {6, 5, 4, 3, 2, 1, 0}}, {"10:-10:-3", 3, {6, 3, 0}},
    {"2:5:-1", 0, {0}},                  {"::-3", 3, {6, 3, 0}},
    {"-2::-2", 3, {5, 3, 1}},            {":3:-1", 3, {6, 5, 4}},
    {"1::-1", 2, {1, 0}},                {"6:0:-4", 2, {6, 2}},
    {":0:-1", 6, {6, 5, 4, 3, 2, 1}},    {"-100::-1", 0, {0}},
    {"::7", 1, {0}},                     {"-3:100:2", 2, {4, 6}},
};

TEST(lists, negative_step_slices_follow_python) {
  for (size_t i = 0; i < sizeof slices_1d / sizeof *slices_1d; i++) {
    char body[256];
    snprintf(body, sizeof body, "input x: f32[7]\noutput y = x[%s]", slices_1d[i].spec);
    Run k;
    run_model(&k, body);
    int64_t n = slices_1d[i].n;
    expect_output(&k, "y", 1, &n, slices_1d[i].want);
    run_free(&k);
  }
}

TEST(lists, negative_steps_in_several_dimensions) {
  Run k;
  // x[i, j, l] = 12 i + 4 j + l over [2, 3, 4]
  run_model(&k, "input x: f32[2, 3, 4]\n"
                "output a = x[::-1, 2:0:-2, ::-3]\n"
                "output b = x[1, ::-1]\n"
                "output c = x[..., -1::-2].reshape(12)\n");
  expect_output(&k, "a", 3, DIMS(2, 1, 2), VALS(23, 20, 11, 8));
  expect_output(&k, "b", 2, DIMS(3, 4), VALS(20, 21, 22, 23, 16, 17, 18, 19, 12, 13, 14, 15));
  expect_output(&k, "c", 1, DIMS(12), VALS(3, 1, 7, 5, 11, 9, 15, 13, 19, 17, 23, 21));
  run_free(&k);
}

TEST(lists, stack_of_scalars_and_of_integers) {
  Run k;
  run_model(&k, "input x: f32[2, 3]\ninput i: i32[4]\n"
                "output s = stack([x.sum(), x[1].max(), x[0, 0]])\n"
                "output t = stack(i[::-1], i, axis = -1)\n");
  expect_output(&k, "s", 1, DIMS(3), VALS(15, 5, 0));
  expect_output(&k, "t", 2, DIMS(4, 2), VALS(3, 0, 2, 1, 1, 2, 0, 3));
  cr_expect_eq(output(&k, "t")->dtype, DT_I32);
  run_free(&k);
}

TEST(lists, none_marks_an_argument_not_given) {
  Run k;
  run_source(&k, "fn pick(x, w: f32[3] = none) {\n"
                 "  if w == none {\n    return x * 0.0 + 100.0\n  }\n"
                 "  assert w != none and not (none != none) and (\"none\" != none)\n"
                 "  return x + w\n}\n"
                 "model m {\n  input x: f32[3]\n"
                 "  output given = pick(x, x * 10.0)\n"
                 "  output absent = pick(x)\n"
                 "  output explicit = pick(x, w = none)\n}\n");
  expect_output(&k, "given", 1, DIMS(3), VALS(0, 11, 22));
  expect_output(&k, "absent", 1, DIMS(3), VALS(100, 100, 100));
  expect_output(&k, "explicit", 1, DIMS(3), VALS(100, 100, 100));
  run_free(&k);
}

TEST(lists, tied_layers_declare_no_parameter_of_their_own) {
  Run k;
  run_model(&k, "input ids: i32[3]\nparam wte: f32[4, 2] = zeros\n"
                "let e = embedding(ids, 4, 2, table = wte)\n"
                "output y = linear(e, 4, weight = wte.T) as head\n"
                "output z = linear(e, 4, bias = false, weight = wte.T)");
  int params = 0;
  for (int i = 0; i < k.g.n; i++)
    if (k.g.nodes[i]->op == OP_PARAM) {
      params++;
      cr_expect(!strcmp(k.g.nodes[i]->name, "wte") || !strcmp(k.g.nodes[i]->name, "head.b"),
                "unexpected parameter %s", k.g.nodes[i]->name);
    }
  cr_expect_eq(params, 2);
  // wte[r, c] = 2 r + c and ids = 0, 1, 2, so e is wte's first three rows;
  // z = e @ wte.T, y = z + head.b with head.b[j] = j
  expect_output(&k, "z", 2, DIMS(3, 4), VALS(1, 3, 5, 7, 3, 13, 23, 33, 5, 23, 41, 59));
  expect_output(&k, "y", 2, DIMS(3, 4), VALS(1, 4, 7, 10, 3, 14, 25, 36, 5, 24, 43, 62));
  run_free(&k);
}
