// test_interp.c: the reference interpreter and the random numbers, against
// values computed by hand.
//
// Each test builds a small graph with the builders of graph.c, runs it and
// compares every element with what the op's definition (ops.def) gives: by
// hand for tiny cases, by a naive formula written here for convolutions and
// matmuls on random data, and by adjoint identities for the gradient ops.
// Philox is checked against the published Random123 known-answer vectors.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

// ---------------------------------------------------------------- helpers

#define D(...) ((double[]){__VA_ARGS__})
#define DIMS(...) ((int64_t[]){__VA_ARGS__})
#define S(...) shape_of((int)(sizeof DIMS(__VA_ARGS__) / sizeof(int64_t)), DIMS(__VA_ARGS__))
#define SCALAR shape_of(0, NULL)
#define MAX_LEAVES 256

// A graph under construction and the values of its leaves, by node id.
typedef struct {
  Arena arena;
  Diag diag;
  Graph g;
  double *leaves[MAX_LEAVES];
  InterpResult res;
} T;

static void t_init(T *t) {
  memset(t, 0, sizeof *t);
  diag_init(&t->diag, stderr);
  graph_init(&t->g, &t->arena, &t->diag);
}

static void t_free(T *t) {
  interp_free(&t->res);
  graph_free(&t->g);
  diag_free(&t->diag);
  arena_free(&t->arena);
}

// An INPUT leaf with the given values (borrowed; NULL: none).
static Node *t_input(T *t, DType dt, Shape s, double *vals) {
  static const char *names[] = {"x", "y", "z", "u", "v", "w"};
  Node *n = g_leaf(&t->g, OP_INPUT, dt, s, names[t->g.n % 6]);
  cr_assert(n->id < MAX_LEAVES);
  t->leaves[n->id] = vals;
  return n;
}

// Runs the graph; fails the test on an error.
static void t_run(T *t, uint64_t seed, uint64_t step) {
  char err[256] = "";
  cr_assert(t->g.n <= MAX_LEAVES);
  int rc = interp_run(&t->g, t->leaves, seed, step, &t->res, err, sizeof err);
  cr_assert_eq(rc, 0, "interp_run failed: %s", err);
  cr_assert_eq(t->res.n, t->g.n);
}

// Runs the graph and expects it to fail with exactly this message.
static void t_run_fails(T *t, const char *want) {
  char err[256] = "";
  int rc = interp_run(&t->g, t->leaves, 0, 0, &t->res, err, sizeof err);
  cr_assert_eq(rc, -1);
  cr_expect_str_eq(err, want);
  cr_expect_null(t->res.vals, "an error must free the partial result");
}

static const double *val(T *t, const Node *n) { return t->res.vals[n->id]; }

// Every element equal to want within tol (exact when tol is 0; NaN matches NaN).
static void expect_vals(const double *got, const double *want, int64_t n, double tol) {
  for (int64_t i = 0; i < n; i++) {
    bool ok = (isnan(got[i]) && isnan(want[i])) || got[i] == want[i] ||
              fabs(got[i] - want[i]) <= tol;
    cr_expect(ok, "element %lld: got %.17g, want %.17g", (long long)i, got[i], want[i]);
  }
}

static bool has_shape(const Node *n, Shape s) { return shape_eq(&n->shape, &s); }

static void expect_node(T *t, const Node *n, Shape s, const double *want, double tol) {
  cr_assert(has_shape(n, s), "shape of %s node differs", op_name(n->op));
  expect_vals(val(t, n), want, shape_numel(&s), tol);
}

// v rounded to f32, through a volatile: GCC 12.2's SLP vectorizer at -O2
// turns (double)(float) on a pair of doubles into a plain copy.
static double f32(double v) {
  volatile float f = (float)v;
  return f;
}

// Deterministic test data in [-1, 1), independent of the code under test.
static void fill_random(double *x, int64_t n, uint32_t seed) {
  uint64_t s = 0x9E3779B97F4A7C15ull * (seed + 1);
  for (int64_t i = 0; i < n; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    x[i] = (double)(s >> 11) / 9007199254740992.0 * 2 - 1;
    x[i] = f32(x[i]);
  }
}

static double dot(const double *a, const double *b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

// ---------------------------------------------------------------- philox

TEST(interp, philox_known_answers) {
  // Random123's kat_vectors for philox4x32_10.
  uint32_t out[4];
  philox4x32((uint32_t[]){0, 0, 0, 0}, (uint32_t[]){0, 0}, out);
  cr_expect_eq(out[0], 0x6627e8d5u);
  cr_expect_eq(out[1], 0xe169c58du);
  cr_expect_eq(out[2], 0xbc57ac4cu);
  cr_expect_eq(out[3], 0x9b00dbd8u);
  philox4x32((uint32_t[]){~0u, ~0u, ~0u, ~0u}, (uint32_t[]){~0u, ~0u}, out);
  cr_expect_eq(out[0], 0x408f276du);
  cr_expect_eq(out[1], 0x41c83b0eu);
  cr_expect_eq(out[2], 0xa20bc7c6u);
  cr_expect_eq(out[3], 0x6d5451fdu);
  philox4x32((uint32_t[]){0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
             (uint32_t[]){0xa4093822, 0x299f31d0}, out);
  cr_expect_eq(out[0], 0xd16cfe09u);
  cr_expect_eq(out[1], 0x94fdccebu);
  cr_expect_eq(out[2], 0x5001e420u);
  cr_expect_eq(out[3], 0x24126ea1u);
}

// The mapping docs/random.md specifies, written out independently.
static void doc_block(uint64_t seed, uint64_t key, uint64_t step, uint64_t i, uint32_t out[4]) {
  uint64_t k = seed ^ (key * 0x9E3779B97F4A7C15ull);
  philox4x32((uint32_t[]){(uint32_t)i, (uint32_t)(i >> 32), (uint32_t)step, (uint32_t)(step >> 32)},
             (uint32_t[]){(uint32_t)k, (uint32_t)(k >> 32)}, out);
}

TEST(interp, philox_uniform_follows_the_documented_mapping) {
  uint64_t cases[][4] = {{0, 0, 0, 0}, {1, 2, 3, 4}, {~0ull, 0x123456789abcdefull, 1ull << 40, 1ull << 33}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    uint64_t *k = cases[c];
    uint32_t r[4];
    doc_block(k[0], k[1], k[2], k[3], r);
    cr_expect_eq(philox_uniform(k[0], k[1], k[2], k[3]), (r[0] >> 8) / 16777216.0);
    double u1 = ((r[0] >> 8) + 1) / 16777216.0, u2 = (r[1] >> 8) / 16777216.0;
    cr_expect_eq(philox_normal(k[0], k[1], k[2], k[3]), sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
  }
}

TEST(interp, philox_uniform_range_and_determinism) {
  double lo = 1, hi = 0, sum = 0;
  int n = 10000;
  for (int i = 0; i < n; i++) {
    double u = philox_uniform(7, 11, 3, (uint64_t)i);
    cr_assert(u >= 0 && u < 1, "u = %g", u);
    cr_assert_eq(u, f32(u), "24 bits fit an f32");
    cr_assert_eq(u, philox_uniform(7, 11, 3, (uint64_t)i));
    lo = fmin(lo, u), hi = fmax(hi, u), sum += u;
  }
  cr_expect(lo < 0.001 && hi > 0.999);
  cr_expect(fabs(sum / n - 0.5) < 0.01, "mean %g", sum / n);
  // Changing any of seed, key, step or index changes the bits.
  double u = philox_uniform(7, 11, 3, 5);
  cr_expect_neq(u, philox_uniform(8, 11, 3, 5));
  cr_expect_neq(u, philox_uniform(7, 12, 3, 5));
  cr_expect_neq(u, philox_uniform(7, 11, 4, 5));
  cr_expect_neq(u, philox_uniform(7, 11, 3, 6));
  cr_expect_neq(u, philox_uniform(7, 11, 3, 5 + (1ull << 32)));
  cr_expect_neq(u, philox_uniform(7, 11, 3 + (1ull << 32), 5));
}

TEST(interp, philox_normal_statistics) {
  int n = 10000;
  double sum = 0, sq = 0;
  for (int i = 0; i < n; i++) {
    double z = philox_normal(1, name_key("w"), 0, (uint64_t)i);
    cr_assert(isfinite(z));
    sum += z, sq += z * z;
  }
  double mean = sum / n, std = sqrt(sq / n - mean * mean);
  cr_expect(fabs(mean) < 0.05, "mean %g", mean);
  cr_expect(fabs(std - 1) < 0.05, "std %g", std);
}

TEST(interp, name_key_is_fnv1a) {
  cr_expect_eq(name_key(""), 0xcbf29ce484222325ull);
  cr_expect_eq(name_key("a"), 0xaf63dc4c8601ec8cull);
  cr_expect_eq(name_key("foobar"), 0x85944171f73967e8ull);
  cr_expect_neq(name_key("h.0.w"), name_key("h.1.w"));
}

// ---------------------------------------------------------------- init_fill

static Node param_node(DType dt, Shape s, const char *name, Init init, double a, double b) {
  Node n = {.op = OP_PARAM, .dtype = dt, .shape = s, .name = name};
  n.p.param.init = init, n.p.param.a = a, n.p.param.b = b;
  return n;
}

TEST(interp, init_constants) {
  double out[6];
  Node n = param_node(DT_F32, S(2, 3), "b", INIT_ZEROS, 0, 0);
  init_fill(&n, 1, out);
  expect_vals(out, D(0, 0, 0, 0, 0, 0), 6, 0);
  n.p.param.init = INIT_ONES;
  init_fill(&n, 1, out);
  expect_vals(out, D(1, 1, 1, 1, 1, 1), 6, 0);
  n.p.param.init = INIT_FULL, n.p.param.a = 0.1;
  init_fill(&n, 1, out);
  double f = (float)0.1;
  expect_vals(out, D(f, f, f, f, f, f), 6, 0);
  n.dtype = DT_I32, n.p.param.a = -2.5;   // rounded to the dtype
  init_fill(&n, 1, out);
  expect_vals(out, D(-2, -2, -2, -2, -2, -2), 6, 0);
}

TEST(interp, init_uniform_uses_the_named_stream) {
  double out[100];
  Node n = param_node(DT_F32, S(10, 10), "enc.w", INIT_UNIFORM, -3, 5);
  init_fill(&n, 42, out);
  for (int i = 0; i < 100; i++) {
    double u = philox_uniform(42, name_key("enc.w"), 0, (uint64_t)i);
    cr_expect_eq(out[i], f32(-3 + 8 * u));
    cr_expect(out[i] >= -3 && out[i] <= 5);
  }
  // Another name or seed gives other values; the same gives the same.
  double other[100], again[100];
  n.name = "dec.w";
  init_fill(&n, 42, other);
  cr_expect_neq(memcmp(out, other, sizeof out), 0);
  n.name = "enc.w";
  init_fill(&n, 43, other);
  cr_expect_neq(memcmp(out, other, sizeof out), 0);
  init_fill(&n, 42, again);
  cr_expect_eq(memcmp(out, again, sizeof out), 0);
}

// Fills n (count values) and returns mean, std, min and max.
static void fill_stats(const Node *n, double *mean, double *std, double *lo, double *hi) {
  int64_t count = shape_numel(&n->shape);
  double *v = malloc((size_t)count * sizeof *v);
  init_fill(n, 5, v);
  double s = 0, sq = 0;
  *lo = INFINITY, *hi = -INFINITY;
  for (int64_t i = 0; i < count; i++) {
    s += v[i], sq += v[i] * v[i];
    *lo = fmin(*lo, v[i]), *hi = fmax(*hi, v[i]);
  }
  *mean = s / (double)count;
  *std = sqrt(sq / (double)count - *mean * *mean);
  free(v);
}

TEST(interp, init_normal_statistics) {
  double mean, std, lo, hi;
  Node n = param_node(DT_F32, S(100, 100), "emb", INIT_NORMAL, 0.5, 0.02);
  fill_stats(&n, &mean, &std, &lo, &hi);
  cr_expect(fabs(mean - 0.5) < 0.001, "mean %g", mean);
  cr_expect(fabs(std - 0.02) < 0.001, "std %g", std);
}

TEST(interp, init_xavier_uniform_bound) {
  // [in, out] = [200, 50]: bound = gain * sqrt(6 / 250).
  double mean, std, lo, hi, bound = 2 * sqrt(6.0 / 250);
  Node n = param_node(DT_F32, S(200, 50), "fc.w", INIT_XAVIER_UNIFORM, 2, 0);
  fill_stats(&n, &mean, &std, &lo, &hi);
  cr_expect(lo >= -bound && hi <= bound, "[%g, %g] outside +-%g", lo, hi, bound);
  cr_expect(lo < -0.99 * bound && hi > 0.99 * bound, "[%g, %g] should nearly reach +-%g", lo, hi,
            bound);
  cr_expect(fabs(std - bound / sqrt(3)) < 0.02 * bound, "std %g", std);
}

TEST(interp, init_xavier_normal_std) {
  double mean, std, lo, hi;
  Node n = param_node(DT_F32, S(100, 300), "fc.w", INIT_XAVIER_NORMAL, 1, 0);
  fill_stats(&n, &mean, &std, &lo, &hi);
  double want = sqrt(2.0 / 400);
  cr_expect(fabs(mean) < 0.05 * want, "mean %g", mean);
  cr_expect(fabs(std - want) < 0.03 * want, "std %g, want %g", std, want);
}

TEST(interp, init_kaiming_uses_conv_fans) {
  // Conv weight [O, C/groups, KH, KW] = [16, 8, 3, 3]: fan_in = 8 * 9 = 72.
  double mean, std, lo, hi;
  Node n = param_node(DT_F32, S(16, 8, 3, 3), "conv.w", INIT_KAIMING_UNIFORM, sqrt(2), 0);
  fill_stats(&n, &mean, &std, &lo, &hi);
  double bound = sqrt(2) * sqrt(3.0 / 72);
  cr_expect(lo >= -bound && hi <= bound && lo < -0.95 * bound && hi > 0.95 * bound,
            "[%g, %g] vs +-%g", lo, hi, bound);
  n = param_node(DT_F32, S(64, 8, 5, 5), "conv.w", INIT_KAIMING_NORMAL, sqrt(2), 0);
  fill_stats(&n, &mean, &std, &lo, &hi);
  double want = sqrt(2) / sqrt(200);
  cr_expect(fabs(std - want) < 0.03 * want, "std %g, want %g", std, want);
  // A vector [n]: fan_in = n. A linear weight [in, out]: fan_in = in.
  n = param_node(DT_F32, S(4), "v", INIT_KAIMING_UNIFORM, 1, 0);
  double v[4];
  init_fill(&n, 3, v);
  for (int i = 0; i < 4; i++)
    cr_expect_eq(v[i], f32(-sqrt(0.75) + 2 * sqrt(0.75) *
                                                        philox_uniform(3, name_key("v"), 0, (uint64_t)i)));
  n = param_node(DT_F32, S(300, 20), "fc.w", INIT_KAIMING_NORMAL, 1, 0);
  fill_stats(&n, &mean, &std, &lo, &hi);
  cr_expect(fabs(std - 1 / sqrt(300)) < 0.03 / sqrt(300), "std %g", std);
}

TEST(interp, init_rounds_to_the_dtype) {
  double v[64];
  Node n = param_node(DT_BF16, S(64), "p", INIT_NORMAL, 0, 1);
  init_fill(&n, 9, v);
  for (int i = 0; i < 64; i++) {
    cr_expect_eq(v[i], dtype_round(DT_BF16, v[i]));
    double z = philox_normal(9, name_key("p"), 0, (uint64_t)i);
    cr_expect_eq(v[i], dtype_round(DT_BF16, z));
  }
}

// ---------------------------------------------------------------- dtype_round

TEST(interp, round_f32) {
  cr_expect_eq(dtype_round(DT_F32, 0.1), (double)(float)0.1);
  cr_expect_neq(dtype_round(DT_F32, 0.1), 0.1);
  cr_expect_eq(dtype_round(DT_F32, 1 + 0x1p-24), 1.0);          // tie to even
  cr_expect_eq(dtype_round(DT_F32, 1 + 0x1p-23), 1 + 0x1p-23);
  cr_expect_eq(dtype_round(DT_F32, 1e39), INFINITY);
  cr_expect(isnan(dtype_round(DT_F32, NAN)));
}

TEST(interp, round_bf16) {
  cr_expect_eq(dtype_round(DT_BF16, 1 + 0x1p-8), 1.0);                // tie, 1 is even
  cr_expect_eq(dtype_round(DT_BF16, 1 + 3 * 0x1p-8), 1 + 0x1p-6);     // tie, up to even
  cr_expect_eq(dtype_round(DT_BF16, 1 + 0x1p-8 + 0x1p-20), 1 + 0x1p-7);   // past the tie
  cr_expect_eq(dtype_round(DT_BF16, -1 - 0x1p-7), -1 - 0x1p-7);
  cr_expect_eq(dtype_round(DT_BF16, 0.1), 0.10009765625);
  cr_expect_eq(dtype_round(DT_BF16, 3.4e38), INFINITY);                // carries into inf
  cr_expect_eq(dtype_round(DT_BF16, -INFINITY), -INFINITY);
  cr_expect(isnan(dtype_round(DT_BF16, NAN)));
}

TEST(interp, round_f16) {
  cr_expect_eq(dtype_round(DT_F16, 65504), 65504.0);
  cr_expect_eq(dtype_round(DT_F16, 65519), 65504.0);
  cr_expect_eq(dtype_round(DT_F16, 65520), INFINITY);
  cr_expect_eq(dtype_round(DT_F16, -70000), -INFINITY);
  cr_expect_eq(dtype_round(DT_F16, 1 + 0x1p-11), 1.0);                 // tie, 1 is even
  cr_expect_eq(dtype_round(DT_F16, 1 + 3 * 0x1p-11), 1 + 0x1p-9);
  cr_expect_eq(dtype_round(DT_F16, 0.1), 0.0999755859375);
  cr_expect_eq(dtype_round(DT_F16, 0x1p-14), 0x1p-14);                 // smallest normal
  cr_expect_eq(dtype_round(DT_F16, 0x1p-24), 0x1p-24);                 // smallest subnormal
  cr_expect_eq(dtype_round(DT_F16, 3 * 0x1p-24), 3 * 0x1p-24);
  cr_expect_eq(dtype_round(DT_F16, 0x1p-25), 0.0);                     // tie to even 0
  cr_expect_eq(dtype_round(DT_F16, 3 * 0x1p-25), 0x1p-23);             // tie to even 2
  cr_expect_eq(dtype_round(DT_F16, 1.4 * 0x1p-24), 0x1p-24);
  cr_expect_eq(dtype_round(DT_F16, -5 * 0x1p-26), -0x1p-24);
  cr_expect(signbit(dtype_round(DT_F16, -0x1p-30)), "underflow keeps the sign");
  cr_expect(isnan(dtype_round(DT_F16, NAN)));
}

TEST(interp, round_integers) {
  cr_expect_eq(dtype_round(DT_I32, 2.9), 2.0);
  cr_expect_eq(dtype_round(DT_I32, -2.9), -2.0);
  cr_expect_eq(dtype_round(DT_I32, 2147483647), 2147483647.0);
  cr_expect_eq(dtype_round(DT_I32, 2147483648.0), -2147483648.0);
  cr_expect_eq(dtype_round(DT_I32, -2147483649.0), 2147483647.0);
  cr_expect_eq(dtype_round(DT_I32, 4294967296.0 + 5), 5.0);
  cr_expect_eq(dtype_round(DT_I32, -4294967296.0 * 3 - 7.5), -7.0);
  cr_expect_eq(dtype_round(DT_I32, NAN), 0.0);
  cr_expect_eq(dtype_round(DT_I64, 0x1p63), -0x1p63);
  cr_expect_eq(dtype_round(DT_I64, -0x1p63), -0x1p63);
  cr_expect_eq(dtype_round(DT_I64, 1e19), 1e19 - 0x1p64);
  cr_expect_eq(dtype_round(DT_I64, -123456789012.75), -123456789012.0);
  cr_expect_eq(dtype_round(DT_U8, 255.9), 255.0);
  cr_expect_eq(dtype_round(DT_U8, 256), 0.0);
  cr_expect_eq(dtype_round(DT_U8, 300.7), 44.0);
  cr_expect_eq(dtype_round(DT_U8, -1), 255.0);
  cr_expect_eq(dtype_round(DT_U8, -0.5), 0.0);
  cr_expect(!signbit(dtype_round(DT_U8, -0.5)), "no negative zero in an integer");
  cr_expect_eq(dtype_round(DT_BOOL, 0.5), 1.0);
  cr_expect_eq(dtype_round(DT_BOOL, -2), 1.0);
  cr_expect_eq(dtype_round(DT_BOOL, 0), 0.0);
  cr_expect_eq(dtype_round(DT_BOOL, -0.0), 0.0);
}

// ---------------------------------------------------------------- leaves

TEST(interp, leaves_copy_and_round) {
  T t;
  t_init(&t);
  Node *x = t_input(&t, DT_F32, S(3), D(0.1, -2.5, 1e40));
  Node *k = t_input(&t, DT_I32, S(3), D(-3.7, 2147483648.0, 7));
  Node *s = g_leaf(&t.g, OP_STATE, DT_BF16, SCALAR, "opt.step");
  t.leaves[s->id] = D(1 + 0x1p-8);
  t_run(&t, 0, 0);
  expect_node(&t, x, S(3), D((float)0.1, -2.5, INFINITY), 0);
  expect_node(&t, k, S(3), D(-3, -2147483648.0, 7), 0);
  expect_node(&t, s, SCALAR, D(1), 0);
  t_free(&t);
}

TEST(interp, params_without_values_are_initialized) {
  T t;
  t_init(&t);
  Node *w = g_leaf(&t.g, OP_PARAM, DT_F32, S(3, 4), "fc.w");
  w->p.param.init = INIT_XAVIER_UNIFORM, w->p.param.a = 1;
  Node *m = g_leaf(&t.g, OP_STATE, DT_F32, S(2), "opt.m");   // zeros
  Node *b = g_leaf(&t.g, OP_PARAM, DT_F32, S(2), "fc.b");
  b->p.param.init = INIT_FULL, b->p.param.a = 3;
  t.leaves[b->id] = D(7, 8);   // a given value wins over the initializer
  t_run(&t, 77, 5);
  double want[12];
  init_fill(w, 77, want);
  expect_node(&t, w, S(3, 4), want, 0);
  expect_node(&t, m, S(2), D(0, 0), 0);
  expect_node(&t, b, S(2), D(7, 8), 0);
  t_free(&t);
}

TEST(interp, no_leaves_array) {
  T t;
  t_init(&t);
  Node *w = g_leaf(&t.g, OP_PARAM, DT_F32, S(2), "w");
  w->p.param.init = INIT_ONES;
  Node *y = g_binary(&t.g, OP_MUL, w, g_const(&t.g, 3, DT_F32, SCALAR));
  char err[64];
  cr_assert_eq(interp_run(&t.g, NULL, 0, 0, &t.res, err, sizeof err), 0, "%s", err);
  expect_node(&t, y, S(2), D(3, 3), 0);
  t_free(&t);
}

TEST(interp, input_without_value_is_an_error) {
  T t;
  t_init(&t);
  Node *a = t_input(&t, DT_F32, S(2), D(1, 2));
  Node *b = g_leaf(&t.g, OP_INPUT, DT_F32, S(2), "tokens");
  g_binary(&t.g, OP_ADD, a, b);
  t_run_fails(&t, "input 'tokens' has no value");
  t_free(&t);
}

TEST(interp, const_and_iota) {
  T t;
  t_init(&t);
  Node *c = g_const(&t.g, -1.25, DT_F32, S(2, 2));
  Node *h = g_const(&t.g, 0.1, DT_F16, SCALAR);
  Node *i = g_iota(&t.g, 5, DT_I32);
  Node *e = g_iota(&t.g, 0, DT_I32);
  t_run(&t, 0, 0);
  expect_node(&t, c, S(2, 2), D(-1.25, -1.25, -1.25, -1.25), 0);
  expect_node(&t, h, SCALAR, D(0.0999755859375), 0);
  expect_node(&t, i, S(5), D(0, 1, 2, 3, 4), 0);
  cr_expect_eq(shape_numel(&e->shape), 0);
  t_free(&t);
}

TEST(interp, random_is_keyed_by_seed_step_and_name) {
  T t;
  t_init(&t);
  Node *r = g_random(&t.g, S(4, 5), "drop.0");
  Node *q = g_random(&t.g, S(4, 5), "drop.1");
  t_run(&t, 123, 9);
  double first[20];
  memcpy(first, val(&t, r), sizeof first);
  for (int i = 0; i < 20; i++) {
    cr_expect(first[i] >= 0 && first[i] < 1);
    cr_expect_eq(first[i], philox_uniform(123, name_key("drop.0"), 9, (uint64_t)i));
  }
  cr_expect_neq(memcmp(first, val(&t, q), sizeof first), 0, "another name, other bits");
  interp_free(&t.res);

  t_run(&t, 123, 9);
  cr_expect_eq(memcmp(first, val(&t, r), sizeof first), 0, "same seed and step, same bits");
  interp_free(&t.res);
  t_run(&t, 123, 10);
  cr_expect_neq(memcmp(first, val(&t, r), sizeof first), 0, "next step, other bits");
  interp_free(&t.res);
  t_run(&t, 124, 9);
  cr_expect_neq(memcmp(first, val(&t, r), sizeof first), 0, "other seed, other bits");
  t_free(&t);
}

// ---------------------------------------------------------------- elementwise

TEST(interp, unary_ops) {
  T t;
  t_init(&t);
  double in[] = {-1.5, 0.25, 2};
  Node *x = t_input(&t, DT_F32, S(3), in);
  Node *p = t_input(&t, DT_F32, S(3), D(0.25, 4, 9));
  struct { Op op; Node *src; double want[3]; } cases[] = {
      {OP_NEG, x, {1.5, -0.25, -2}},
      {OP_EXP, x, {exp(-1.5), exp(0.25), exp(2)}},
      {OP_LOG, p, {log(0.25), log(4), log(9)}},
      {OP_SQRT, p, {0.5, 2, 3}},
      {OP_RSQRT, p, {2, 0.5, 1.0 / 3}},
      {OP_TANH, x, {tanh(-1.5), tanh(0.25), tanh(2)}},
      {OP_SIGMOID, x, {1 / (1 + exp(1.5)), 1 / (1 + exp(-0.25)), 1 / (1 + exp(-2))}},
      {OP_ABS, x, {1.5, 0.25, 2}},
      {OP_RELU, x, {0, 0.25, 2}},
      {OP_SIN, x, {sin(-1.5), sin(0.25), sin(2)}},
      {OP_COS, x, {cos(-1.5), cos(0.25), cos(2)}},
      {OP_FLOOR, x, {-2, 0, 2}},
      {OP_ERF, x, {erf(-1.5), erf(0.25), erf(2)}},
      {OP_SOFTPLUS, x, {log1p(exp(-1.5)), log1p(exp(0.25)), log1p(exp(2))}},
      {OP_SILU, x, {-1.5 / (1 + exp(1.5)), 0.25 / (1 + exp(-0.25)), 2 / (1 + exp(-2))}},
      {OP_STOP_GRADIENT, x, {-1.5, 0.25, 2}},
  };
  int ncases = (int)(sizeof cases / sizeof *cases);
  Node *nodes[16];
  for (int i = 0; i < ncases; i++) nodes[i] = g_unary(&t.g, cases[i].op, cases[i].src);
  Node *lg = g_unary(&t.g, OP_LOG, x);   // log(-1.5) is NaN
  Node *rl = g_unary(&t.g, OP_RELU, lg);   // relu(NaN) is NaN, as in PyTorch
  t_run(&t, 0, 0);
  for (int i = 0; i < ncases; i++) {
    double want[3];
    for (int j = 0; j < 3; j++) want[j] = f32(cases[i].want[j]);
    cr_expect_eq(nodes[i]->dtype, DT_F32);
    expect_node(&t, nodes[i], S(3), want, 0);
  }
  cr_expect(isnan(val(&t, lg)[0]));
  cr_expect(isnan(val(&t, rl)[0]));
  t_free(&t);
}

// softplus neither overflows nor loses small results; silu and erf at the
// ends of the line; NaN passes through all three.
TEST(interp, softplus_silu_erf_at_extremes) {
  T t;
  t_init(&t);
  Node *x = t_input(&t, DT_F32, S(7), D(-INFINITY, -100, -1e-40, 0, 30, 1e30, INFINITY));
  Node *sp = g_unary(&t.g, OP_SOFTPLUS, x), *si = g_unary(&t.g, OP_SILU, x), *er = g_unary(&t.g, OP_ERF, x);
  Node *nan = g_unary(&t.g, OP_LOG, t_input(&t, DT_F32, S(1), D(-1)));
  Node *n1 = g_unary(&t.g, OP_SOFTPLUS, nan), *n2 = g_unary(&t.g, OP_SILU, nan), *n3 = g_unary(&t.g, OP_ERF, nan);
  t_run(&t, 0, 0);
  double want_sp[7] = {0, f32(exp(-100.0)), f32(log(2.0)), f32(log(2.0)), f32(30 + exp(-30.0)), f32(1e30), INFINITY};
  want_sp[2] = f32(log1p(exp((double)(float)-1e-40)));
  expect_node(&t, sp, S(7), want_sp, 0);
  cr_expect(isnan(val(&t, si)[0]), "silu(-inf) is -inf / inf, NaN as in PyTorch");
  cr_expect_eq(val(&t, si)[6], INFINITY);
  cr_expect_eq(val(&t, si)[1], f32(-100 / (1 + exp(100.0))));
  cr_expect_eq(val(&t, er)[0], -1);
  cr_expect_eq(val(&t, er)[6], 1);
  cr_expect_eq(val(&t, er)[2], f32(erf((double)(float)-1e-40)));
  cr_expect(isnan(val(&t, n1)[0]) && isnan(val(&t, n2)[0]) && isnan(val(&t, n3)[0]));
  t_free(&t);
}

TEST(interp, cast_truncates_and_wraps) {
  T t;
  t_init(&t);
  Node *x = t_input(&t, DT_F32, S(5), D(-2.7, 2.7, 300, -1, 0.5));
  Node *i = g_cast(&t.g, x, DT_I32);
  Node *u = g_cast(&t.g, x, DT_U8);
  Node *b = g_cast(&t.g, x, DT_BOOL);
  Node *h = g_cast(&t.g, g_const(&t.g, 70000, DT_F32, S(1)), DT_F16);
  Node *back = g_cast(&t.g, u, DT_F32);
  t_run(&t, 0, 0);
  expect_node(&t, i, S(5), D(-2, 2, 300, -1, 0), 0);
  expect_node(&t, u, S(5), D(254, 2, 44, 255, 0), 0);
  expect_node(&t, b, S(5), D(1, 1, 1, 1, 1), 0);
  expect_node(&t, h, S(1), D(INFINITY), 0);
  expect_node(&t, back, S(5), D(254, 2, 44, 255, 0), 0);
  t_free(&t);
}

TEST(interp, binary_ops_with_negatives) {
  T t;
  t_init(&t);
  Node *a = t_input(&t, DT_F32, S(4), D(-3, 2, -0.5, 4));
  Node *b = t_input(&t, DT_F32, S(4), D(2, -4, -0.25, 0.5));
  Node *add = g_binary(&t.g, OP_ADD, a, b);
  Node *sub = g_binary(&t.g, OP_SUB, a, b);
  Node *mul = g_binary(&t.g, OP_MUL, a, b);
  Node *div = g_binary(&t.g, OP_DIV, a, b);
  Node *pw = g_binary(&t.g, OP_POW, a, b);
  Node *mx = g_binary(&t.g, OP_MAX, a, b);
  Node *mn = g_binary(&t.g, OP_MIN, a, b);
  t_run(&t, 0, 0);
  expect_node(&t, add, S(4), D(-1, -2, -0.75, 4.5), 0);
  expect_node(&t, sub, S(4), D(-5, 6, -0.25, 3.5), 0);
  expect_node(&t, mul, S(4), D(-6, -8, 0.125, 2), 0);
  expect_node(&t, div, S(4), D(-1.5, -0.5, 2, 8), 0);
  expect_node(&t, pw, S(4), D(9, 0.0625, NAN, 2), 0);   // (-0.5)^-0.25 is NaN
  expect_node(&t, mx, S(4), D(2, 2, -0.25, 4), 0);
  expect_node(&t, mn, S(4), D(-3, -4, -0.5, 0.5), 0);
  t_free(&t);
}

// Integer floor division: toward -inf, 0 for a zero divisor (NumPy's).
TEST(interp, integer_floor_division) {
  T t;
  t_init(&t);
  Node *a = t_input(&t, DT_I64, S(6), D(7, -7, 7, -7, 5, 0));
  Node *b = t_input(&t, DT_I64, S(6), D(2, 2, -2, -2, 0, 3));
  Node *q = g_binary(&t.g, OP_IDIV, a, b);
  t_run(&t, 0, 0);
  expect_node(&t, q, S(6), D(3, -4, -4, 3, 0, 0), 0);
  t_free(&t);
}

// maximum, minimum, RMAX and ARGMAX treat NaN as the largest value (NumPy).
TEST(interp, nan_propagates_through_max) {
  T t;
  t_init(&t);
  Node *a = t_input(&t, DT_F32, S(3), D(NAN, 1, -1));
  Node *b = t_input(&t, DT_F32, S(3), D(2, NAN, -2));
  Node *mx = g_binary(&t.g, OP_MAX, a, b);
  Node *mn = g_binary(&t.g, OP_MIN, a, b);
  Node *x = t_input(&t, DT_F32, S(2, 3), D(1, NAN, NAN, 4, 5, 6));
  Node *rm = g_reduce(&t.g, OP_RMAX, x, 1u << 1, false);
  Node *am = g_reduce(&t.g, OP_ARGMAX, x, 1u << 1, false);
  t_run(&t, 0, 0);
  expect_node(&t, mx, S(3), D(NAN, NAN, -1), 0);
  expect_node(&t, mn, S(3), D(NAN, NAN, -2), 0);
  expect_node(&t, rm, S(2), D(NAN, 6), 0);
  expect_node(&t, am, S(2), D(1, 2), 0);
  t_free(&t);
}

TEST(interp, comparisons_give_bool) {
  T t;
  t_init(&t);
  Node *a = t_input(&t, DT_F32, S(3), D(-1, 2, 3));
  Node *b = t_input(&t, DT_F32, S(3), D(-1, 1, 4));
  Op ops[] = {OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE};
  double want[][3] = {{0, 0, 1}, {1, 0, 1}, {0, 1, 0}, {1, 1, 0}, {1, 0, 0}, {0, 1, 1}};
  Node *n[6];
  for (int i = 0; i < 6; i++) n[i] = g_binary(&t.g, ops[i], a, b);
  t_run(&t, 0, 0);
  for (int i = 0; i < 6; i++) {
    cr_expect_eq(n[i]->dtype, DT_BOOL);
    expect_node(&t, n[i], S(3), want[i], 0);
  }
  t_free(&t);
}

TEST(interp, broadcasting_corners) {
  T t;
  t_init(&t);
  Node *m = t_input(&t, DT_F32, S(2, 3), D(1, 2, 3, 4, 5, 6));
  Node *row = t_input(&t, DT_F32, S(3), D(10, 20, 30));
  Node *col = t_input(&t, DT_F32, S(2, 1), D(100, 200));
  Node *sc = t_input(&t, DT_F32, SCALAR, D(-1));
  Node *r1 = t_input(&t, DT_F32, S(1, 3), D(1, 0, -1));
  Node *cube = t_input(&t, DT_F32, S(2, 1, 1), D(1, -1));
  Node *m_row = g_binary(&t.g, OP_ADD, m, row);
  Node *m_col = g_binary(&t.g, OP_SUB, m, col);
  Node *col_row = g_binary(&t.g, OP_MUL, col, row);        // [2,1] x [3] -> [2,3]
  Node *sc_m = g_binary(&t.g, OP_MUL, sc, m);              // 0-d x [2,3]
  Node *sc_sc = g_binary(&t.g, OP_ADD, sc, sc);             // 0-d x 0-d
  Node *cube_r1 = g_binary(&t.g, OP_MUL, cube, r1);         // [2,1,1] x [1,3] -> [2,1,3]
  Node *cube_m = g_binary(&t.g, OP_MUL, m, cube);           // [2,3] x [2,1,1] -> [2,2,3]
  t_run(&t, 0, 0);
  expect_node(&t, m_row, S(2, 3), D(11, 22, 33, 14, 25, 36), 0);
  expect_node(&t, m_col, S(2, 3), D(-99, -98, -97, -196, -195, -194), 0);
  expect_node(&t, col_row, S(2, 3), D(1000, 2000, 3000, 2000, 4000, 6000), 0);
  expect_node(&t, sc_m, S(2, 3), D(-1, -2, -3, -4, -5, -6), 0);
  expect_node(&t, sc_sc, SCALAR, D(-2), 0);
  expect_node(&t, cube_r1, S(2, 1, 3), D(1, 0, -1, -1, 0, 1), 0);
  expect_node(&t, cube_m, S(2, 2, 3), D(1, 2, 3, 4, 5, 6, -1, -2, -3, -4, -5, -6), 0);
  t_free(&t);
}

TEST(interp, where_broadcasts_all_three) {
  T t;
  t_init(&t);
  Node *c = t_input(&t, DT_BOOL, S(2, 1), D(1, 0));
  Node *a = t_input(&t, DT_F32, S(3), D(1, 2, 3));
  Node *b = t_input(&t, DT_F32, SCALAR, D(-7));
  Node *w = g_where(&t.g, c, a, b);
  // A float condition: non-zero selects a, including negatives.
  Node *fc = t_input(&t, DT_F32, S(3), D(-0.5, 0, 2));
  Node *w2 = g_where(&t.g, fc, a, b);
  t_run(&t, 0, 0);
  expect_node(&t, w, S(2, 3), D(1, 2, 3, -7, -7, -7), 0);
  expect_node(&t, w2, S(3), D(1, -7, 3), 0);
  t_free(&t);
}

TEST(interp, integer_arithmetic_wraps) {
  T t;
  t_init(&t);
  Node *a = t_input(&t, DT_I32, S(3), D(2147483647, -2147483648.0, 65536));
  Node *b = t_input(&t, DT_I32, S(3), D(1, -1, 65536));
  Node *add = g_binary(&t.g, OP_ADD, a, b);
  Node *mul = g_binary(&t.g, OP_MUL, a, b);
  Node *u = t_input(&t, DT_U8, S(2), D(200, 3));
  Node *v = t_input(&t, DT_U8, S(2), D(100, 5));
  Node *uadd = g_binary(&t.g, OP_ADD, u, v);
  Node *usub = g_binary(&t.g, OP_SUB, u, v);
  Node *neg = g_unary(&t.g, OP_NEG, a);
  t_run(&t, 0, 0);
  expect_node(&t, add, S(3), D(-2147483648.0, 2147483647, 131072), 0);
  expect_node(&t, mul, S(3), D(2147483647, -2147483648.0, 0), 0);   // 2^32 wraps to 0
  expect_node(&t, uadd, S(2), D(44, 8), 0);
  expect_node(&t, usub, S(2), D(100, 254), 0);
  expect_node(&t, neg, S(3), D(-2147483647, -2147483648.0, -65536), 0);
  t_free(&t);
}

TEST(interp, low_precision_results_round) {
  T t;
  t_init(&t);
  Node *one = t_input(&t, DT_BF16, S(1), D(1));
  Node *eps = t_input(&t, DT_BF16, S(1), D(0x1p-8));
  Node *bsum = g_binary(&t.g, OP_ADD, one, eps);      // 1 + 2^-8 -> 1 in bf16
  Node *h = t_input(&t, DT_F16, S(2), D(300, 0.5));
  Node *hsq = g_binary(&t.g, OP_MUL, h, h);           // 90000 overflows f16
  Node *f = t_input(&t, DT_F32, S(1), D(1));
  Node *third = g_binary(&t.g, OP_DIV, f, g_const(&t.g, 3, DT_F32, S(1)));
  t_run(&t, 0, 0);
  expect_node(&t, bsum, S(1), D(1), 0);
  expect_node(&t, hsq, S(2), D(INFINITY, 0.25), 0);
  expect_node(&t, third, S(1), D((float)(1.0 / 3)), 0);
  t_free(&t);
}

TEST(interp, empty_dims) {
  T t;
  t_init(&t);
  Node *e = t_input(&t, DT_F32, S(0, 3), D(0));
  Node *row = t_input(&t, DT_F32, S(3), D(1, 2, 3));
  Node *add = g_binary(&t.g, OP_ADD, e, row);
  Node *sum0 = g_reduce(&t.g, OP_SUM, e, 1u << 0, true);   // over the empty dim: zeros
  Node *sum1 = g_reduce(&t.g, OP_SUM, e, 1u << 1, true);   // [0, 1]
  Node *a = t_input(&t, DT_F32, S(2, 0), D(0));
  Node *b = t_input(&t, DT_F32, S(0, 3), D(0));
  Node *mm = g_matmul(&t.g, a, b, false, false);           // K = 0: zeros [2, 3]
  Node *cat = g_concat(&t.g, e, t_input(&t, DT_F32, S(1, 3), D(4, 5, 6)), 0);
  t_run(&t, 0, 0);
  cr_expect_eq(shape_numel(&add->shape), 0);
  expect_node(&t, sum0, S(1, 3), D(0, 0, 0), 0);
  cr_expect(has_shape(sum1, S(0, 1)));
  expect_node(&t, mm, S(2, 3), D(0, 0, 0, 0, 0, 0), 0);
  expect_node(&t, cat, S(1, 3), D(4, 5, 6), 0);
  t_free(&t);
}

// ---------------------------------------------------------------- reductions

TEST(interp, sum_over_axes) {
  T t;
  t_init(&t);
  // x [2, 3, 2] = 1..12
  Node *x = t_input(&t, DT_F32, S(2, 3, 2), D(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12));
  Node *s0 = g_reduce(&t.g, OP_SUM, x, 1u << 0, true);
  Node *s1 = g_reduce(&t.g, OP_SUM, x, 1u << 1, true);
  Node *s2 = g_reduce(&t.g, OP_SUM, x, 1u << 2, false);
  Node *s02 = g_reduce(&t.g, OP_SUM, x, 1u << 0 | 1u << 2, true);
  Node *all = g_reduce(&t.g, OP_SUM, x, 7, false);
  t_run(&t, 0, 0);
  expect_node(&t, s0, S(1, 3, 2), D(8, 10, 12, 14, 16, 18), 0);
  expect_node(&t, s1, S(2, 1, 2), D(9, 12, 27, 30), 0);
  expect_node(&t, s2, S(2, 3), D(3, 7, 11, 15, 19, 23), 0);
  expect_node(&t, s02, S(1, 3, 1), D(1 + 2 + 7 + 8, 3 + 4 + 9 + 10, 5 + 6 + 11 + 12), 0);
  expect_node(&t, all, SCALAR, D(78), 0);
  t_free(&t);
}

TEST(interp, sum_accumulates_in_double) {
  T t;
  t_init(&t);
  // 2^24 + 1 + 1 + ... in f32 would stay at 2^24; in double it does not.
  double v[5] = {0x1p24, 1, 1, 1, 1};
  Node *x = t_input(&t, DT_F32, S(5), v);
  Node *s = g_reduce(&t.g, OP_SUM, x, 1, false);
  Node *b = t_input(&t, DT_BOOL, S(4), D(1, 0, 1, 1));
  Node *nb = g_reduce(&t.g, OP_SUM, b, 1, false);   // bool counts as i32
  t_run(&t, 0, 0);
  expect_node(&t, s, SCALAR, D(0x1p24 + 4), 0);
  expect_node(&t, nb, SCALAR, D(3), 0);
  t_free(&t);
}

TEST(interp, rmax_of_negatives) {
  T t;
  t_init(&t);
  Node *x = t_input(&t, DT_F32, S(2, 3), D(-5, -2, -9, -1, -1, -3));
  Node *r1 = g_reduce(&t.g, OP_RMAX, x, 1u << 1, true);
  Node *r0 = g_reduce(&t.g, OP_RMAX, x, 1u << 0, false);
  t_run(&t, 0, 0);
  expect_node(&t, r1, S(2, 1), D(-2, -1), 0);
  expect_node(&t, r0, S(3), D(-1, -1, -3), 0);
  t_free(&t);
}

TEST(interp, argmax_takes_the_first_maximum) {
  T t;
  t_init(&t);
  Node *x = t_input(&t, DT_F32, S(3, 4), D(1, 7, 7, 2,  -3, -3, -4, -3,  0, 0, 0, 5));
  Node *a1 = g_reduce(&t.g, OP_ARGMAX, x, 1u << 1, false);
  Node *a0 = g_reduce(&t.g, OP_ARGMAX, x, 1u << 0, true);
  t_run(&t, 0, 0);
  cr_expect_eq(a1->dtype, DT_I32);
  expect_node(&t, a1, S(3), D(1, 0, 3), 0);
  expect_node(&t, a0, S(1, 4), D(0, 0, 0, 2), 0);
  t_free(&t);
}

// ---------------------------------------------------------------- matmul

// y [M, N] = op(a) @ op(b), naive.
static void ref_matmul(const double *a, const double *b, int64_t M, int64_t K, int64_t N, bool ta,
                       bool tb, double *y) {
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = 0;
      for (int64_t k = 0; k < K; k++)
        s += (ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
      y[i * N + j] = f32(s);
    }
}

TEST(interp, matmul_by_hand) {
  T t;
  t_init(&t);
  Node *a = t_input(&t, DT_F32, S(2, 3), D(1, 2, 3, 4, 5, 6));
  Node *b = t_input(&t, DT_F32, S(3, 2), D(1, -1, 0, 2, -2, 0.5));
  Node *ab = g_matmul(&t.g, a, b, false, false);
  Node *aat = g_matmul(&t.g, a, a, false, true);   // a @ a^T [2, 2]
  Node *ata = g_matmul(&t.g, a, a, true, false);   // a^T @ a [3, 3]
  Node *btat = g_matmul(&t.g, b, a, true, true);   // b^T @ a^T = (a @ b)^T [2, 2]
  Node *v = t_input(&t, DT_F32, S(3), D(1, 0, -1));
  Node *av = g_matmul(&t.g, a, v, false, false);   // [2, 3] @ [3] -> [2]
  Node *vb = g_matmul(&t.g, v, b, false, false);   // [3] @ [3, 2] -> [2]
  t_run(&t, 0, 0);
  expect_node(&t, ab, S(2, 2), D(-5, 4.5, -8, 9), 0);
  expect_node(&t, aat, S(2, 2), D(14, 32, 32, 77), 0);
  expect_node(&t, ata, S(3, 3), D(17, 22, 27, 22, 29, 36, 27, 36, 45), 0);
  expect_node(&t, btat, S(2, 2), D(-5, -8, 4.5, 9), 0);
  expect_node(&t, av, S(2), D(-2, -2), 0);
  expect_node(&t, vb, S(2), D(3, -1.5), 0);
  t_free(&t);
}

TEST(interp, matmul_batch_broadcast_and_transposes) {
  // a [4, 1, 3, 5] (ta: stored [.., 5, 3]) @ b [2, 5, 6] (tb: stored [.., 6, 5]) -> [4, 2, 3, 6]
  for (int mode = 0; mode < 4; mode++) {
    bool ta = mode & 1, tb = mode & 2;
    T t;
    t_init(&t);
    double a[4 * 15], b[2 * 30];
    fill_random(a, 60, 1);
    fill_random(b, 60, 2);
    Node *an = t_input(&t, DT_F32, ta ? S(4, 1, 5, 3) : S(4, 1, 3, 5), a);
    Node *bn = t_input(&t, DT_F32, tb ? S(2, 6, 5) : S(2, 5, 6), b);
    Node *y = g_matmul(&t.g, an, bn, ta, tb);
    t_run(&t, 0, 0);
    cr_assert(has_shape(y, S(4, 2, 3, 6)));
    double want[4 * 2 * 18];
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 2; j++)
        ref_matmul(a + i * 15, b + j * 30, 3, 5, 6, ta, tb, want + (i * 2 + j) * 18);
    expect_vals(val(&t, y), want, 4 * 2 * 18, 1e-6);
    t_free(&t);
  }
}

// ---------------------------------------------------------------- convolution

typedef struct {
  int64_t n, c, h, w, o, kh, kw;
  int stride[2], pad[2], dil[2], groups;
} ConvCase;

// Naive conv2d straight from the definition: for each output, the sum over
// its group's channels and the kernel of the in-bounds products.
static void ref_conv(const ConvCase *k, const double *x, const double *w, int64_t oh_n,
                     int64_t ow_n, double *y) {
  int64_t cg = k->c / k->groups, og = k->o / k->groups;
  for (int64_t n = 0; n < k->n; n++)
    for (int64_t o = 0; o < k->o; o++)
      for (int64_t oh = 0; oh < oh_n; oh++)
        for (int64_t ow = 0; ow < ow_n; ow++) {
          double s = 0;
          for (int64_t j = 0; j < cg; j++) {
            int64_t c = (o / og) * cg + j;
            for (int64_t i = 0; i < k->kh; i++)
              for (int64_t l = 0; l < k->kw; l++) {
                int64_t h = oh * k->stride[0] + i * k->dil[0] - k->pad[0];
                int64_t ww = ow * k->stride[1] + l * k->dil[1] - k->pad[1];
                if (h >= 0 && h < k->h && ww >= 0 && ww < k->w)
                  s += x[((n * k->c + c) * k->h + h) * k->w + ww] *
                       w[((o * cg + j) * k->kh + i) * k->kw + l];
              }
          }
          y[((n * k->o + o) * oh_n + oh) * ow_n + ow] = f32(s);
        }
}

static const ConvCase conv_cases[] = {
    {1, 1, 4, 4, 1, 3, 3, {1, 1}, {0, 0}, {1, 1}, 1},
    {2, 3, 5, 6, 4, 3, 2, {2, 1}, {1, 0}, {1, 1}, 1},
    {1, 4, 7, 7, 6, 3, 3, {1, 2}, {2, 1}, {2, 1}, 2},
    {2, 6, 5, 4, 6, 1, 2, {1, 1}, {0, 1}, {1, 2}, 3},
    {1, 4, 6, 5, 4, 3, 3, {3, 2}, {1, 1}, {2, 2}, 4},   // depthwise
    {2, 8, 6, 5, 12, 3, 2, {2, 1}, {1, 1}, {1, 2}, 2},  // grouped, wide enough for GEMMs
};

TEST(interp, conv2d_by_hand) {
  T t;
  t_init(&t);
  // x = 1..9 as [1, 1, 3, 3]; w = [[1, 0], [0, -1]]: y[i, j] = x[i, j] - x[i+1, j+1].
  Node *x = t_input(&t, DT_F32, S(1, 1, 3, 3), D(1, 2, 3, 4, 5, 6, 7, 8, 9));
  Node *w = t_input(&t, DT_F32, S(1, 1, 2, 2), D(1, 0, 0, -1));
  Node *y = g_conv2d(&t.g, x, w, (int[]){1, 1}, (int[]){0, 0}, (int[]){1, 1}, 1);
  // Padding 1, stride 2: outputs at (-1, -1), (-1, 1), (1, -1), (1, 1).
  Node *yp = g_conv2d(&t.g, x, w, (int[]){2, 2}, (int[]){1, 1}, (int[]){1, 1}, 1);
  // Dilation 2: y = x[0, 0] - x[2, 2].
  Node *yd = g_conv2d(&t.g, x, w, (int[]){1, 1}, (int[]){0, 0}, (int[]){2, 2}, 1);
  t_run(&t, 0, 0);
  expect_node(&t, y, S(1, 1, 2, 2), D(-4, -4, -4, -4), 0);
  expect_node(&t, yp, S(1, 1, 2, 2), D(-1, -3, -7, 5 - 9), 0);
  expect_node(&t, yd, S(1, 1, 1, 1), D(-8), 0);
  t_free(&t);
}

static Shape conv_out_shape(const ConvCase *k) {
  int64_t oh = (k->h + 2 * k->pad[0] - k->dil[0] * (k->kh - 1) - 1) / k->stride[0] + 1;
  int64_t ow = (k->w + 2 * k->pad[1] - k->dil[1] * (k->kw - 1) - 1) / k->stride[1] + 1;
  return S(k->n, k->o, oh, ow);
}

TEST(interp, conv2d_matches_the_naive_formula) {
  for (size_t ci = 0; ci < sizeof conv_cases / sizeof *conv_cases; ci++) {
    const ConvCase *k = &conv_cases[ci];
    T t;
    t_init(&t);
    Shape xs = S(k->n, k->c, k->h, k->w), ws = S(k->o, k->c / k->groups, k->kh, k->kw);
    Shape ys = conv_out_shape(k);
    double *x = malloc(sizeof(double) * (size_t)shape_numel(&xs));
    double *w = malloc(sizeof(double) * (size_t)shape_numel(&ws));
    double *want = malloc(sizeof(double) * (size_t)shape_numel(&ys));
    fill_random(x, shape_numel(&xs), 10 + (uint32_t)ci);
    fill_random(w, shape_numel(&ws), 20 + (uint32_t)ci);
    Node *xn = t_input(&t, DT_F32, xs, x), *wn = t_input(&t, DT_F32, ws, w);
    Node *y = g_conv2d(&t.g, xn, wn, k->stride, k->pad, k->dil, k->groups);
    t_run(&t, 0, 0);
    cr_assert(shape_eq(&y->shape, &ys), "case %zu: output shape", ci);
    ref_conv(k, x, w, ys.d[2], ys.d[3], want);
    expect_vals(val(&t, y), want, shape_numel(&ys), 1e-6);
    free(x), free(w), free(want);
    t_free(&t);
  }
}

// <conv(x, w), dy> == <x, conv_dx(dy, w)> == <w, conv_dw(x, dy)> on random data.
TEST(interp, conv2d_adjoints) {
  for (size_t ci = 0; ci < sizeof conv_cases / sizeof *conv_cases; ci++) {
    const ConvCase *k = &conv_cases[ci];
    T t;
    t_init(&t);
    Shape xs = S(k->n, k->c, k->h, k->w), ws = S(k->o, k->c / k->groups, k->kh, k->kw);
    Shape ys = conv_out_shape(k);
    int64_t nx = shape_numel(&xs), nw = shape_numel(&ws), ny = shape_numel(&ys);
    double *x = malloc(sizeof(double) * (size_t)nx);
    double *w = malloc(sizeof(double) * (size_t)nw);
    double *dy = malloc(sizeof(double) * (size_t)ny);
    fill_random(x, nx, 30 + (uint32_t)ci);
    fill_random(w, nw, 40 + (uint32_t)ci);
    fill_random(dy, ny, 50 + (uint32_t)ci);
    Node *xn = t_input(&t, DT_F32, xs, x), *wn = t_input(&t, DT_F32, ws, w);
    Node *dyn = t_input(&t, DT_F32, ys, dy);
    Node *y = g_conv2d(&t.g, xn, wn, k->stride, k->pad, k->dil, k->groups);
    Node *dx = g_conv2d_grad(&t.g, OP_CONV2D_DX, dyn, wn, y);
    Node *dw = g_conv2d_grad(&t.g, OP_CONV2D_DW, xn, dyn, y);
    t_run(&t, 0, 0);
    cr_assert(shape_eq(&dx->shape, &xs) && shape_eq(&dw->shape, &ws));
    double p1 = dot(val(&t, y), dy, ny), p2 = dot(x, val(&t, dx), nx), p3 = dot(w, val(&t, dw), nw);
    double tol = 1e-5 * (1 + fabs(p1));
    cr_expect(fabs(p1 - p2) <= tol, "case %zu: <conv(x,w),dy> %.9g vs <x,dx> %.9g", ci, p1, p2);
    cr_expect(fabs(p1 - p3) <= tol, "case %zu: <conv(x,w),dy> %.9g vs <w,dw> %.9g", ci, p1, p3);
    free(x), free(w), free(dy);
    t_free(&t);
  }
}

// pass_conv_gemm's GEMM form of a convolution and both its gradients gives
// what the direct loops give, grouped convolutions included.
TEST(interp, conv2d_as_gemm_matches_the_loops) {
  for (size_t ci = 0; ci < sizeof conv_cases / sizeof *conv_cases; ci++) {
    const ConvCase *k = &conv_cases[ci];
    T t;
    t_init(&t);
    Shape xs = S(k->n, k->c, k->h, k->w), ws = S(k->o, k->c / k->groups, k->kh, k->kw);
    Shape ys = conv_out_shape(k);
    int64_t size[3] = {shape_numel(&ys), shape_numel(&xs), shape_numel(&ws)};
    double *x = malloc(sizeof(double) * (size_t)size[1]);
    double *w = malloc(sizeof(double) * (size_t)size[2]);
    double *dy = malloc(sizeof(double) * (size_t)size[0]);
    fill_random(x, size[1], 110 + (uint32_t)ci);
    fill_random(w, size[2], 120 + (uint32_t)ci);
    fill_random(dy, size[0], 130 + (uint32_t)ci);
    Node *xn = t_input(&t, DT_F32, xs, x), *wn = t_input(&t, DT_F32, ws, w), *dyn = t_input(&t, DT_F32, ys, dy);
    Node *y = g_conv2d(&t.g, xn, wn, k->stride, k->pad, k->dil, k->groups);
    graph_add_output(&t.g, "y", y);
    graph_add_output(&t.g, "dx", g_conv2d_grad(&t.g, OP_CONV2D_DX, dyn, wn, y));
    graph_add_output(&t.g, "dw", g_conv2d_grad(&t.g, OP_CONV2D_DW, xn, dyn, y));
    t_run(&t, 0, 0);
    double *loops[3];
    for (int o = 0; o < 3; o++) {
      loops[o] = malloc(sizeof(double) * (size_t)size[o]);
      memcpy(loops[o], val(&t, t.g.outputs[o].node), sizeof(double) * (size_t)size[o]);
    }
    interp_free(&t.res);
    bool want = conv_takes_gemm(y), gemm = false;
    cr_expect_eq(want, k->groups == 1 || ci == sizeof conv_cases / sizeof *conv_cases - 1, "case %zu", ci);
    pass_conv_gemm(&t.g);
    for (int i = 0; i < t.g.n; i++) gemm |= t.g.nodes[i]->op == OP_IM2COL;
    cr_expect_eq(gemm, want, "case %zu: convolutions that are not depthwise become GEMMs", ci);
    t_run(&t, 0, 0);
    for (int o = 0; o < 3; o++) {
      expect_vals(val(&t, t.g.outputs[o].node), loops[o], size[o], 1e-5);
      free(loops[o]);
    }
    free(x), free(w), free(dy);
    t_free(&t);
  }
}

TEST(interp, conv2d_grads_by_hand) {
  T t;
  t_init(&t);
  // x [1,1,2,2], w [1,1,1,1] = 3, stride 1: y = 3x; dx = 3 dy; dw = sum(x * dy).
  Node *x = t_input(&t, DT_F32, S(1, 1, 2, 2), D(1, -2, 3, 4));
  Node *w = t_input(&t, DT_F32, S(1, 1, 1, 1), D(3));
  Node *dy = t_input(&t, DT_F32, S(1, 1, 2, 2), D(1, 1, -1, 0.5));
  Node *y = g_conv2d(&t.g, x, w, (int[]){1, 1}, (int[]){0, 0}, (int[]){1, 1}, 1);
  Node *dx = g_conv2d_grad(&t.g, OP_CONV2D_DX, dy, w, y);
  Node *dw = g_conv2d_grad(&t.g, OP_CONV2D_DW, x, dy, y);
  t_run(&t, 0, 0);
  expect_node(&t, y, S(1, 1, 2, 2), D(3, -6, 9, 12), 0);
  expect_node(&t, dx, S(1, 1, 2, 2), D(3, 3, -3, 1.5), 0);
  expect_node(&t, dw, S(1, 1, 1, 1), D(1 - 2 - 3 + 2), 0);
  t_free(&t);
}

// Transposed convolution straight from its definition: every input value
// scatters x[n, ci, h, w] * w[ci, j, kh, kw] to output channel g * Cout/g + j at
// (h * stride - pad + kh * dil, ...); positions the scatter never reaches are 0.
typedef struct {
  int64_t n, c, h, w, o, kh, kw;   // c input channels, o output channels
  int stride[2], pad[2], out_pad[2], dil[2], groups;
} ConvTCase;

static const ConvTCase convt_cases[] = {
    {1, 1, 3, 3, 1, 2, 2, {1, 1}, {0, 0}, {0, 0}, {1, 1}, 1},
    {2, 3, 4, 5, 2, 3, 3, {2, 2}, {1, 1}, {1, 0}, {1, 1}, 1},
    {1, 4, 3, 4, 6, 3, 2, {3, 2}, {2, 0}, {2, 1}, {1, 2}, 2},
    {1, 2, 5, 3, 3, 3, 3, {1, 1}, {1, 0}, {1, 1}, {2, 2}, 1},   // output_padding >= stride, < dilation
    {2, 3, 4, 4, 3, 3, 3, {2, 2}, {1, 1}, {1, 1}, {1, 1}, 3},   // depthwise
    {1, 8, 3, 4, 10, 3, 3, {2, 2}, {1, 1}, {1, 0}, {1, 1}, 2},  // grouped, wide enough for GEMMs
};

static Shape convt_out_shape(const ConvTCase *k) {
  int64_t oh = (k->h - 1) * k->stride[0] - 2 * k->pad[0] + k->dil[0] * (k->kh - 1) + k->out_pad[0] + 1;
  int64_t ow = (k->w - 1) * k->stride[1] - 2 * k->pad[1] + k->dil[1] * (k->kw - 1) + k->out_pad[1] + 1;
  return S(k->n, k->o, oh, ow);
}

static void ref_conv_transpose(const ConvTCase *k, const double *x, const double *w, Shape ys, double *y) {
  int64_t cg = k->c / k->groups, og = k->o / k->groups, OH = ys.d[2], OW = ys.d[3];
  memset(y, 0, sizeof(double) * (size_t)shape_numel(&ys));
  for (int64_t n = 0; n < k->n; n++)
    for (int64_t c = 0; c < k->c; c++)
      for (int64_t h = 0; h < k->h; h++)
        for (int64_t ww = 0; ww < k->w; ww++)
          for (int64_t j = 0; j < og; j++)
            for (int64_t i = 0; i < k->kh; i++)
              for (int64_t l = 0; l < k->kw; l++) {
                int64_t oh = h * k->stride[0] - k->pad[0] + i * k->dil[0];
                int64_t ow = ww * k->stride[1] - k->pad[1] + l * k->dil[1];
                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                int64_t o = c / cg * og + j;
                y[((n * k->o + o) * OH + oh) * OW + ow] +=
                    x[((n * k->c + c) * k->h + h) * k->w + ww] * w[((c * og + j) * k->kh + i) * k->kw + l];
              }
  for (int64_t i = 0; i < shape_numel(&ys); i++) y[i] = f32(y[i]);
}

TEST(interp, conv_transpose_matches_the_naive_formula) {
  for (size_t ci = 0; ci < sizeof convt_cases / sizeof *convt_cases; ci++) {
    const ConvTCase *k = &convt_cases[ci];
    T t;
    t_init(&t);
    Shape xs = S(k->n, k->c, k->h, k->w), ws = S(k->c, k->o / k->groups, k->kh, k->kw);
    Shape ys = convt_out_shape(k);
    double *x = malloc(sizeof(double) * (size_t)shape_numel(&xs));
    double *w = malloc(sizeof(double) * (size_t)shape_numel(&ws));
    double *want = malloc(sizeof(double) * (size_t)shape_numel(&ys));
    fill_random(x, shape_numel(&xs), 60 + (uint32_t)ci);
    fill_random(w, shape_numel(&ws), 70 + (uint32_t)ci);
    Node *xn = t_input(&t, DT_F32, xs, x), *wn = t_input(&t, DT_F32, ws, w);
    Node *y = g_conv_transpose(&t.g, xn, wn, k->stride, k->pad, k->out_pad, k->dil, k->groups);
    t_run(&t, 0, 0);
    cr_assert(shape_eq(&y->shape, &ys), "case %zu: output shape", ci);
    ref_conv_transpose(k, x, w, ys, want);
    expect_vals(val(&t, y), want, shape_numel(&ys), 1e-6);
    free(x), free(w), free(want);
    t_free(&t);
  }
}

// pass_conv_gemm's im2col / col2im form of a transposed convolution and both
// its gradients gives what the direct loops give (output_padding at or above
// the stride included, where the window grid is not the convolution's own).
TEST(interp, conv_transpose_as_gemm_matches_the_loops) {
  for (size_t ci = 0; ci < sizeof convt_cases / sizeof *convt_cases; ci++) {
    const ConvTCase *k = &convt_cases[ci];
    T t;
    t_init(&t);
    Shape xs = S(k->n, k->c, k->h, k->w), ws = S(k->c, k->o / k->groups, k->kh, k->kw);
    Shape ys = convt_out_shape(k);
    int64_t size[3] = {shape_numel(&ys), shape_numel(&xs), shape_numel(&ws)};
    double *x = malloc(sizeof(double) * (size_t)size[1]);
    double *w = malloc(sizeof(double) * (size_t)size[2]);
    double *dy = malloc(sizeof(double) * (size_t)size[0]);
    fill_random(x, size[1], 80 + (uint32_t)ci);
    fill_random(w, size[2], 90 + (uint32_t)ci);
    fill_random(dy, size[0], 100 + (uint32_t)ci);
    Node *xn = t_input(&t, DT_F32, xs, x), *wn = t_input(&t, DT_F32, ws, w), *dyn = t_input(&t, DT_F32, ys, dy);
    Node *y = g_conv_transpose(&t.g, xn, wn, k->stride, k->pad, k->out_pad, k->dil, k->groups);
    graph_add_output(&t.g, "y", y);
    graph_add_output(&t.g, "dx", g_conv_like(&t.g, OP_CONV2D, dyn, wn, xs, y));
    graph_add_output(&t.g, "dw", g_conv_like(&t.g, OP_CONV2D_DW, dyn, xn, ws, y));
    t_run(&t, 0, 0);
    double *loops[3];
    for (int o = 0; o < 3; o++) {
      loops[o] = malloc(sizeof(double) * (size_t)size[o]);
      memcpy(loops[o], val(&t, t.g.outputs[o].node), sizeof(double) * (size_t)size[o]);
    }
    interp_free(&t.res);
    bool want = conv_takes_gemm(y), gemm = false;
    cr_expect_eq(want, k->groups == 1 || ci == sizeof convt_cases / sizeof *convt_cases - 1, "case %zu", ci);
    pass_conv_gemm(&t.g);
    for (int i = 0; i < t.g.n; i++) gemm |= t.g.nodes[i]->op == OP_COL2IM;
    cr_expect_eq(gemm, want, "case %zu: transposed convolutions that are not depthwise become GEMMs", ci);
    t_run(&t, 0, 0);
    for (int o = 0; o < 3; o++) {
      expect_vals(val(&t, t.g.outputs[o].node), loops[o], size[o], 1e-5);
      free(loops[o]);
    }
    free(x), free(w), free(dy);
    t_free(&t);
  }
}

TEST(interp, conv_transpose_by_hand) {
  T t;
  t_init(&t);
  // x = [[1, 2], [3, 4]], w = ones(2, 2), stride 2: each input becomes a 2 x 2
  // block; output_padding 1 adds a zero row and column.
  Node *x = t_input(&t, DT_F32, S(1, 1, 2, 2), D(1, 2, 3, 4));
  Node *w = t_input(&t, DT_F32, S(1, 1, 2, 2), D(1, 1, 1, 1));
  Node *y = g_conv_transpose(&t.g, x, w, (int[]){2, 2}, (int[]){0, 0}, (int[]){1, 1}, (int[]){1, 1}, 1);
  // stride 1: overlapping windows add up
  Node *y1 = g_conv_transpose(&t.g, x, w, (int[]){1, 1}, (int[]){0, 0}, (int[]){0, 0}, (int[]){1, 1}, 1);
  t_run(&t, 0, 0);
  expect_node(&t, y, S(1, 1, 5, 5), D(1, 1, 2, 2, 0, 1, 1, 2, 2, 0, 3, 3, 4, 4, 0, 3, 3, 4, 4, 0, 0, 0, 0, 0, 0), 0);
  expect_node(&t, y1, S(1, 1, 3, 3), D(1, 3, 2, 4, 10, 6, 3, 7, 4), 0);
  t_free(&t);
}

TEST(interp, upsample_by_hand) {
  T t;
  t_init(&t);
  Node *x = t_input(&t, DT_F32, S(1, 1, 2, 2), D(1, 2, 3, 4));
  Node *near = g_upsample(&t.g, x, (int[]){2, 3}, false);
  // bilinear, align_corners = False, scale 2: rows 0.25 / 0.75 between
  // neighbours, the first and last rows clamped to the edge values
  Node *lin = g_upsample(&t.g, x, (int[]){2, 2}, true);
  Node *one = g_upsample(&t.g, x, (int[]){1, 1}, true);
  t_run(&t, 0, 0);
  expect_node(&t, near, S(1, 1, 4, 6), D(1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4), 0);
  expect_node(&t, lin, S(1, 1, 4, 4),
              D(1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4), 0);
  expect_node(&t, one, S(1, 1, 2, 2), D(1, 2, 3, 4), 0);
  t_free(&t);
}

// ---------------------------------------------------------------- pooling

TEST(interp, pool_max_and_avg) {
  T t;
  t_init(&t);
  // x [1, 1, 4, 4]
  Node *x = t_input(&t, DT_F32, S(1, 1, 4, 4),
                    D(1, 2, 3, 4,  5, 6, 7, 8,  -1, -2, -3, -4,  0, 9, 0, -5));
  Node *mx = g_pool(&t.g, OP_POOL_MAX, x, (int[]){2, 2}, (int[]){2, 2}, (int[]){0, 0});
  Node *av = g_pool(&t.g, OP_POOL_AVG, x, (int[]){2, 2}, (int[]){2, 2}, (int[]){0, 0});
  // All negative, kernel 3, stride 2, pad 1: the padding must not win the max,
  // and counts as zeros in the average (divide by 9).
  Node *neg = t_input(&t, DT_F32, S(1, 1, 3, 3), D(-1, -2, -3, -4, -5, -6, -7, -8, -9));
  Node *nmx = g_pool(&t.g, OP_POOL_MAX, neg, (int[]){3, 3}, (int[]){2, 2}, (int[]){1, 1});
  Node *nav = g_pool(&t.g, OP_POOL_AVG, neg, (int[]){3, 3}, (int[]){2, 2}, (int[]){1, 1});
  t_run(&t, 0, 0);
  expect_node(&t, mx, S(1, 1, 2, 2), D(6, 8, 9, 0), 0);
  expect_node(&t, av, S(1, 1, 2, 2), D(3.5, 5.5, 1.5, -3), 0);
  expect_node(&t, nmx, S(1, 1, 2, 2), D(-1, -2, -4, -5), 0);
  expect_node(&t, nav, S(1, 1, 2, 2),
              D(f32(-12 / 9.0), f32(-16 / 9.0), f32(-24 / 9.0), f32(-28 / 9.0)), 0);
  t_free(&t);
}

TEST(interp, pool_max_dx_goes_to_the_first_maximum) {
  T t;
  t_init(&t);
  // x [1, 1, 3, 3] with ties; kernel 2, stride 1: four overlapping windows.
  Node *x = t_input(&t, DT_F32, S(1, 1, 3, 3), D(5, 5, 1,  5, 2, 7,  0, 7, 7));
  Node *fwd = g_pool(&t.g, OP_POOL_MAX, x, (int[]){2, 2}, (int[]){1, 1}, (int[]){0, 0});
  Node *dy = t_input(&t, DT_F32, S(1, 1, 2, 2), D(1, 10, 100, 1000));
  Node *dx = g_pool_grad(&t.g, OP_POOL_MAX_DX, x, dy, fwd);
  t_run(&t, 0, 0);
  // Windows: (0,0) {5,5,5,2} max at (0,0); (0,1) {5,1,2,7} at (1,2);
  // (1,0) {5,2,0,7} at (2,1); (1,1) {2,7,7,7} first at (1,2).
  expect_node(&t, fwd, S(1, 1, 2, 2), D(5, 7, 7, 7), 0);
  expect_node(&t, dx, S(1, 1, 3, 3), D(1, 0, 0,  0, 0, 1010,  0, 100, 0), 0);
  t_free(&t);
}

TEST(interp, pool_avg_dx_spreads_over_the_window) {
  T t;
  t_init(&t);
  // x [1, 1, 2, 3], kernel 2, stride 1, pad 1 -> [1, 1, 3, 4]
  Node *x = t_input(&t, DT_F32, S(1, 1, 2, 3), D(1, 2, 3, 4, 5, 6));
  Node *fwd = g_pool(&t.g, OP_POOL_AVG, x, (int[]){2, 2}, (int[]){1, 1}, (int[]){1, 1});
  Node *dy = t_input(&t, DT_F32, S(1, 1, 3, 4), D(4, 0, 0, 0,  0, 0, 8, 0,  0, 0, 0, 12));
  Node *dx = g_pool_grad(&t.g, OP_POOL_AVG_DX, x, dy, fwd);
  t_run(&t, 0, 0);
  // Window (oh, ow) covers rows oh-1..oh, cols ow-1..ow.
  expect_node(&t, fwd, S(1, 1, 3, 4),
              D(0.25, 0.75, 1.25, 0.75,  1.25, 3, 4, 2.25,  1, 2.25, 2.75, 1.5), 0);
  // dy(0,0)=4 -> x(0,0) += 1; dy(1,2)=8 -> x(0..1, 1..2) += 2; dy(2,3)=12 -> x(1,2) += 3.
  expect_node(&t, dx, S(1, 1, 2, 3), D(1, 2, 2, 0, 2, 5), 0);
  // And the adjoint identity <avg(x), dy> == <x, avg_dx(dy)>.
  double lhs = dot(val(&t, fwd), val(&t, dy), 12), rhs = dot(val(&t, x), val(&t, dx), 6);
  cr_expect(fabs(lhs - rhs) < 1e-9, "%g vs %g", lhs, rhs);
  t_free(&t);
}

// ---------------------------------------------------------------- movement

TEST(interp, reshape_and_permute) {
  T t;
  t_init(&t);
  // x [2, 3, 4] = 0..23
  double v[24];
  for (int i = 0; i < 24; i++) v[i] = i;
  Node *x = t_input(&t, DT_F32, S(2, 3, 4), v);
  Node *r = g_reshape(&t.g, x, S(4, 6));
  Node *p = g_permute(&t.g, x, (int[]){2, 0, 1});   // [4, 2, 3]: p[i, j, k] = x[j, k, i]
  Node *tr = g_permute(&t.g, g_reshape(&t.g, x, S(6, 4)), (int[]){1, 0});
  t_run(&t, 0, 0);
  expect_node(&t, r, S(4, 6), v, 0);
  double want[24], want_t[24];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 2; j++)
      for (int k = 0; k < 3; k++) want[(i * 2 + j) * 3 + k] = v[(j * 3 + k) * 4 + i];
  expect_node(&t, p, S(4, 2, 3), want, 0);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 6; j++) want_t[i * 6 + j] = v[j * 4 + i];
  expect_node(&t, tr, S(4, 6), want_t, 0);
  t_free(&t);
}

TEST(interp, broadcast_to_a_shape) {
  T t;
  t_init(&t);
  Node *row = t_input(&t, DT_F32, S(3), D(1, 2, 3));
  Node *col = t_input(&t, DT_F32, S(2, 1), D(-1, -2));
  Node *sc = t_input(&t, DT_F32, SCALAR, D(9));
  Node *br = g_broadcast(&t.g, row, S(2, 3));
  Node *bc = g_broadcast(&t.g, col, S(2, 2, 3));
  Node *bs = g_broadcast(&t.g, sc, S(2, 2));
  t_run(&t, 0, 0);
  expect_node(&t, br, S(2, 3), D(1, 2, 3, 1, 2, 3), 0);
  expect_node(&t, bc, S(2, 2, 3), D(-1, -1, -1, -2, -2, -2, -1, -1, -1, -2, -2, -2), 0);
  expect_node(&t, bs, S(2, 2), D(9, 9, 9, 9), 0);
  t_free(&t);
}

TEST(interp, slice_with_steps) {
  T t;
  t_init(&t);
  // x [4, 5] = 0..19
  double v[20];
  for (int i = 0; i < 20; i++) v[i] = i;
  Node *x = t_input(&t, DT_F32, S(4, 5), v);
  Node *s = g_slice(&t.g, x, DIMS(1, 0), DIMS(4, 5), DIMS(2, 2));   // rows 1, 3; cols 0, 2, 4
  Node *c = g_slice(&t.g, x, DIMS(0, 3), DIMS(4, 4), DIMS(1, 1));   // column 3
  Node *e = g_slice(&t.g, x, DIMS(2, 0), DIMS(2, 5), DIMS(1, 1));   // empty
  t_run(&t, 0, 0);
  expect_node(&t, s, S(2, 3), D(5, 7, 9, 15, 17, 19), 0);
  expect_node(&t, c, S(4, 1), D(3, 8, 13, 18), 0);
  cr_expect(has_shape(e, S(0, 5)));
  t_free(&t);
}

TEST(interp, pad_and_concat) {
  T t;
  t_init(&t);
  Node *x = t_input(&t, DT_F32, S(2, 2), D(1, 2, 3, 4));
  Node *p = g_pad(&t.g, x, DIMS(1, 0), DIMS(0, 2), -1);   // [3, 4]
  Node *y = t_input(&t, DT_F32, S(1, 2), D(5, 6));
  Node *z = t_input(&t, DT_F32, S(2, 1), D(7, 8));
  Node *c0 = g_concat(&t.g, x, y, 0);   // [3, 2]
  Node *c1 = g_concat(&t.g, x, z, 1);   // [2, 3]
  Node *c3 = g_concat(&t.g, g_reshape(&t.g, x, S(2, 1, 2)), g_reshape(&t.g, x, S(2, 1, 2)), 1);
  t_run(&t, 0, 0);
  expect_node(&t, p, S(3, 4), D(-1, -1, -1, -1,  1, 2, -1, -1,  3, 4, -1, -1), 0);
  expect_node(&t, c0, S(3, 2), D(1, 2, 3, 4, 5, 6), 0);
  expect_node(&t, c1, S(2, 3), D(1, 2, 7, 3, 4, 8), 0);
  expect_node(&t, c3, S(2, 2, 2), D(1, 2, 1, 2, 3, 4, 3, 4), 0);
  t_free(&t);
}

// ---------------------------------------------------------------- gather, scatter

TEST(interp, gather_rows) {
  T t;
  t_init(&t);
  Node *table = t_input(&t, DT_F32, S(4, 2), D(0, 1, 10, 11, 20, 21, -30, -31));
  Node *ids = t_input(&t, DT_I32, S(2, 2), D(3, 0, 1, 3));
  Node *g = g_gather(&t.g, table, ids);
  Node *one = t_input(&t, DT_I32, SCALAR, D(2));
  Node *g1 = g_gather(&t.g, table, one);
  t_run(&t, 0, 0);
  expect_node(&t, g, S(2, 2, 2), D(-30, -31, 0, 1, 10, 11, -30, -31), 0);
  expect_node(&t, g1, S(2), D(20, 21), 0);
  t_free(&t);
}

TEST(interp, gather_out_of_range) {
  T t;
  t_init(&t);
  double tv[20] = {0};
  Node *table = t_input(&t, DT_F32, S(10, 2), tv);
  Node *ids = t_input(&t, DT_I32, S(3), D(1, 12, 0));
  g_gather(&t.g, table, ids);
  t_run_fails(&t, "gather: index 12 is outside the table's 10 rows");
  t_free(&t);

  t_init(&t);
  table = t_input(&t, DT_F32, S(10, 2), tv);
  ids = t_input(&t, DT_I64, S(1), D(-1));
  g_gather(&t.g, table, ids);
  t_run_fails(&t, "gather: index -1 is outside the table's 10 rows");
  t_free(&t);
}

TEST(interp, label_passes_ids_and_checks_their_range) {
  T t;
  t_init(&t);
  Node *ids = t_input(&t, DT_I32, S(2, 2), D(2, 0, 1, 2));
  Node *l = g_label(&t.g, ids, 3);
  Node *ids2 = t_input(&t, DT_I64, S(3), D(0, -100, 2));
  Node *l2 = g_label(&t.g, ids2, 3);
  l2->p.label.skips = true;
  l2->p.label.skip = -100;
  t_run(&t, 0, 0);
  expect_node(&t, l, S(2, 2), D(2, 0, 1, 2), 0);
  expect_node(&t, l2, S(3), D(0, -100, 2), 0);
  t_free(&t);

  t_init(&t);
  l = g_label(&t.g, t_input(&t, DT_I32, S(3), D(0, 3, 1)), 3);
  l->p.label.fn = "cross_entropy";
  l->p.label.at = "m.smelt:7";
  t_run_fails(&t, "cross_entropy: label 3 at position 1 is outside [0, 3) (m.smelt:7)");
  t_free(&t);

  t_init(&t);
  l = g_label(&t.g, t_input(&t, DT_I32, S(2), D(1, -100)), 3);
  l->p.label.skips = true;
  l->p.label.skip = -1;
  t_run_fails(&t, "one_hot: label -100 at position 1 is outside [0, 3) (?)");
  t_free(&t);
}

TEST(interp, scatter_add_accumulates) {
  T t;
  t_init(&t);
  Node *ids = t_input(&t, DT_I32, S(2, 2), D(1, 0, 1, 1));
  Node *vals = t_input(&t, DT_F32, S(2, 2, 2), D(1, 2, 3, 4, 10, 20, -100, 0.5));
  Node *s = g_scatter_add(&t.g, ids, vals, 3);
  t_run(&t, 0, 0);
  expect_node(&t, s, S(3, 2), D(3, 4, 1 + 10 - 100, 2 + 20 + 0.5, 0, 0), 0);
  t_free(&t);
}

TEST(interp, scatter_add_out_of_range) {
  T t;
  t_init(&t);
  Node *ids = t_input(&t, DT_I32, S(2), D(0, 3));
  Node *vals = t_input(&t, DT_F32, S(2, 1), D(1, 2));
  g_scatter_add(&t.g, ids, vals, 3);
  t_run_fails(&t, "scatter_add: index 3 is outside the result's 3 rows");
  t_free(&t);
}

// gather and scatter_add are adjoint: <gather(T, ids), dy> == <T, scatter_add(ids, dy)>.
TEST(interp, gather_scatter_adjoint) {
  T t;
  t_init(&t);
  double table[5 * 3], dy[4 * 3];
  fill_random(table, 15, 7);
  fill_random(dy, 12, 8);
  Node *tn = t_input(&t, DT_F32, S(5, 3), table);
  Node *ids = t_input(&t, DT_I32, S(4), D(4, 0, 4, 2));
  Node *dyn = t_input(&t, DT_F32, S(4, 3), dy);
  Node *g = g_gather(&t.g, tn, ids);
  Node *s = g_scatter_add(&t.g, ids, dyn, 5);
  t_run(&t, 0, 0);
  double lhs = dot(val(&t, g), dy, 12), rhs = dot(table, val(&t, s), 15);
  cr_expect(fabs(lhs - rhs) < 1e-6, "%g vs %g", lhs, rhs);
  t_free(&t);
}

// im2col of a 1 x 1 x 3 x 3 image with a 2 x 2 window, stride 1, padding 1:
// 4 x 4 positions, each row the window's 4 values (zeros off the image).
TEST(interp, im2col_rows_are_windows) {
  T t;
  t_init(&t);
  double img[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  Node *x = t_input(&t, DT_F32, shape_of(4, (int64_t[]){1, 1, 3, 3}), img);
  Node *w = g_leaf(&t.g, OP_PARAM, DT_F32, shape_of(4, (int64_t[]){1, 1, 2, 2}), "w");
  Node *conv = g_conv2d(&t.g, x, w, (int[]){1, 1}, (int[]){1, 1}, (int[]){1, 1}, 1);
  Node *cols = g_im2col(&t.g, x, conv);
  double ones[4] = {1, 1, 1, 1};
  t.leaves[w->id] = ones;
  t_run(&t, 0, 0);
  double want[16 * 4] = {
      0, 0, 0, 1,  0, 0, 1, 2,  0, 0, 2, 3,  0, 0, 3, 0,
      0, 1, 0, 4,  1, 2, 4, 5,  2, 3, 5, 6,  3, 0, 6, 0,
      0, 4, 0, 7,  4, 5, 7, 8,  5, 6, 8, 9,  6, 0, 9, 0,
      0, 7, 0, 0,  7, 8, 0, 0,  8, 9, 0, 0,  9, 0, 0, 0,
  };
  expect_node(&t, cols, shape_of(3, (int64_t[]){1, 16, 4}), want, 0);
  t_free(&t);
}

// col2im is im2col's transpose: <im2col(x), r> = <x, col2im(r)>; with rows
// of ones each pixel counts the windows that read it: four with stride 1,
// one with stride 2 (the windows tile the padded image).
TEST(interp, col2im_is_the_transpose_of_im2col) {
  for (int stride = 1; stride <= 2; stride++) {
    T t;
    t_init(&t);
    double img[9] = {1, -2, 3, 4, 5, -6, 7, 8, 9};
    Node *x = t_input(&t, DT_F32, shape_of(4, (int64_t[]){1, 1, 3, 3}), img);
    Node *w = g_leaf(&t.g, OP_PARAM, DT_F32, shape_of(4, (int64_t[]){1, 1, 2, 2}), "w");
    Node *conv = g_conv2d(&t.g, x, w, (int[]){stride, stride}, (int[]){1, 1}, (int[]){1, 1}, 1);
    Node *dy = g_leaf(&t.g, OP_INPUT, DT_F32, conv->shape, "dy");
    Node *dx = g_conv2d_grad(&t.g, OP_CONV2D_DX, dy, w, conv);
    Node *cols = g_im2col(&t.g, x, conv);
    int64_t n = shape_numel(&cols->shape);
    double r[64], ones[64], wv[4] = {1, 1, 1, 1}, dyv[16] = {0};
    for (int64_t i = 0; i < n; i++) r[i] = (double)((i * 7) % 11) - 5, ones[i] = 1;
    Node *rn = t_input(&t, DT_F32, cols->shape, r), *on = t_input(&t, DT_F32, cols->shape, ones);
    Node *back = g_col2im(&t.g, rn, dx), *count = g_col2im(&t.g, on, dx);
    t.leaves[w->id] = wv;
    t.leaves[dy->id] = dyv;
    t_run(&t, 0, 0);
    double lhs = dot(val(&t, cols), r, (int)n), rhs = dot(img, val(&t, back), 9);
    cr_expect(fabs(lhs - rhs) < 1e-9, "stride %d: %g vs %g", stride, lhs, rhs);
    double want1[9] = {4, 4, 4, 4, 4, 4, 4, 4, 4}, want2[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    expect_node(&t, count, shape_of(4, (int64_t[]){1, 1, 3, 3}), stride == 1 ? want1 : want2, 0);
    t_free(&t);
  }
}

// Every op in ops.def appears in some test above; this catches a new op
// added without one (update the list with the test that covers it).
// attention by hand: q rows [1, 0], [0, 2], [1, 1] over keys [1, 0], [0, 1]
// with values [1, 2], [3, 4]; the last row may attend no key (the mean of v,
// log-sum-exp +inf); causal, row 0 sees key 0 alone. The gradients for
// dout = [1, 0] on row 0: p = (a, b), delta = 3 - 2a, ds = (-2ab, 2ab).
TEST(interp, attention_by_hand) {
  T t;
  t_init(&t);
  Node *q = t_input(&t, DT_F32, S(1, 1, 3, 2), D(1, 0, 0, 2, 1, 1));
  Node *k = t_input(&t, DT_F32, S(1, 1, 2, 2), D(1, 0, 0, 1));
  Node *v = t_input(&t, DT_F32, S(1, 1, 2, 2), D(1, 2, 3, 4));
  Node *m = t_input(&t, DT_BOOL, S(3, 2), D(1, 1, 1, 1, 0, 0));
  Node *y = g_attention(&t.g, q, k, v, m, false, 1.0, 0, NULL);
  Node *yc = g_attention(&t.g, q, k, v, NULL, true, 1.0, 0, NULL);
  Node *q0 = t_input(&t, DT_F32, S(1, 1, 1, 2), D(1, 0));
  Node *y0 = g_attention(&t.g, q0, k, v, NULL, false, 1.0, 0, NULL);
  Node *dout = t_input(&t, DT_F32, S(1, 1, 1, 2), D(1, 0));
  Node *delta = g_reduce(&t.g, OP_SUM, g_binary(&t.g, OP_MUL, dout, g_attention_out(&t.g, y0)), 1u << 3, true);
  Node *dq = g_attention_grad(&t.g, OP_ATTENTION_DQ, y0, dout, delta);
  Node *dkv = g_attention_grad(&t.g, OP_ATTENTION_DKV, y0, dout, delta);
  t_run(&t, 0, 0);
  double a = exp(1) / (exp(1) + 1), b = 1 - a, c = 1 / (1 + exp(2));
  expect_node(&t, y, S(1, 1, 3, 3), D(3 - 2 * a, 4 - 2 * a, log(exp(1) + 1), 3 - 2 * c, 4 - 2 * c, log(1 + exp(2)), 2, 3, INFINITY), 1e-6);
  expect_node(&t, yc, S(1, 1, 3, 3), D(1, 2, 1, 3 - 2 * c, 4 - 2 * c, log(1 + exp(2)), 2, 3, log(2 * exp(1))), 1e-6);
  expect_node(&t, dq, S(1, 1, 1, 2), D(-2 * a * b, 2 * a * b), 1e-6);
  expect_node(&t, dkv, S(1, 1, 2, 4), D(-2 * a * b, 0, a, 0, 2 * a * b, 0, b, 0), 1e-6);
  t_free(&t);
}

TEST(interp, every_op_is_tested) {
  static const Op tested[] = {
      OP_INPUT, OP_PARAM, OP_STATE, OP_CONST, OP_IOTA, OP_RANDOM, OP_NEG, OP_EXP, OP_LOG,
      OP_SQRT, OP_RSQRT, OP_TANH, OP_SIGMOID, OP_ABS, OP_RELU, OP_SIN, OP_COS, OP_FLOOR, OP_CAST,
      OP_ERF, OP_SOFTPLUS, OP_SILU, OP_STOP_GRADIENT, OP_BITNOT, OP_BITCAST,   // BIT*, SH*: test_codegen.c
      OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW, OP_IDIV, OP_MAX, OP_MIN, OP_BITAND, OP_BITOR, OP_BITXOR, OP_SHL, OP_SHR, OP_LT, OP_LE, OP_GT, OP_GE,
      OP_EQ, OP_NE, OP_WHERE, OP_SUM, OP_RMAX, OP_ARGMAX, OP_MATMUL, OP_CONV2D, OP_CONV2D_DX,
      OP_CONV2D_DW, OP_IM2COL, OP_COL2IM, OP_POOL_MAX, OP_POOL_AVG, OP_POOL_MAX_DX, OP_POOL_AVG_DX, OP_RESHAPE,
      OP_PERMUTE, OP_BROADCAST, OP_SLICE, OP_PAD, OP_CONCAT, OP_GATHER, OP_SCATTER_ADD, OP_LABEL,
      OP_ATTENTION, OP_ATTENTION_DQ, OP_ATTENTION_DKV,   // and test_autodiff.c, test_codegen.c
  };
  cr_expect_eq(sizeof tested / sizeof *tested, (size_t)OP_COUNT);
}
