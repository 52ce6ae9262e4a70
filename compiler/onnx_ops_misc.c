// onnx_ops_misc.c: ONNX ops that are compositions of comparisons, sums and
// slices with no family of their own: TopK, CumProd, TensorScatter, Det,
// TfIdfVectorizer.
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_importer.h"

// The most elements an intermediate of these compositions may have (TopK's
// pairwise comparisons, TfIdfVectorizer's n-gram matches): more is refused
// rather than built.
#define MISC_MAX_ELEMS ((int64_t)1 << 24)

// Appends to b at *k; past cap, nothing more (the caller checks *k < cap).
static void sapp(char *b, size_t cap, size_t *k, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void sapp(char *b, size_t cap, size_t *k, const char *fmt, ...) {
  if (*k >= cap) return;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(b + *k, cap - *k, fmt, ap);
  va_end(ap);
  *k = m < 0 ? cap : *k + (size_t)m;
}

// Appends to the growing buffer *b (of *cap) at *k.
static void grow_app(char **b, size_t *cap, size_t *k, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void grow_app(char **b, size_t *cap, size_t *k, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(*b + *k, *cap - *k, fmt, ap);
    va_end(ap);
    if (m >= 0 && *k + (size_t)m < *cap) {
      *k += (size_t)m;
      return;
    }
    *cap = *cap * 2 + (m > 0 ? (size_t)m : 0);
    *b = xrealloc(*b, *cap);
  }
}

static void refuse(Importer *im, const Onnx__NodeProto *n, const char *why) {
  im_fail(im, "node '%s' (%s): %s", im_node(n), n->op_type, why);
}

// "d0, d1, ..." of dims with the value ins put before position at (at ==
// nd: at the end; ins < 0: nothing put).
static void dims_with(char *b, size_t cap, const int64_t *dims, int nd, int at, int64_t ins) {
  size_t k = 0;
  b[0] = 0;
  for (int i = 0; i <= nd; i++) {
    if (i == at && ins >= 0) sapp(b, cap, &k, "%s%lld", k ? ", " : "", (long long)ins);
    if (i < nd) sapp(b, cap, &k, "%s%lld", k ? ", " : "", (long long)dims[i]);
  }
}

// "1, ..., 1, len, 1, ..., 1": rank nd with len at axis `at`.
static void ones_with(char *b, size_t cap, int nd, int at, int64_t len) {
  size_t k = 0;
  b[0] = 0;
  for (int i = 0; i < nd; i++) sapp(b, cap, &k, "%s%lld", i ? ", " : "", (long long)(i == at ? len : 1));
}

// The data input i of a node as a tensor of float or integer dtype; NULL
// after a message.
static Value *data_input(Importer *im, const Onnx__NodeProto *n, size_t i) {
  Value *x = im_input(im, n, i);
  if (!x || !im_is_tensor(im, n, x)) return NULL;
  if (x->kind == V_SCALAR || x->ndim < 1) {
    refuse(im, n, "a constant or rank-0 data input; the importer takes tensors of rank 1 or more");
    return NULL;
  }
  if (x->dtype != DT_F32 && x->dtype != DT_I32 && x->dtype != DT_I64) {
    im_fail(im, "node '%s' (%s): a %s input; the importer takes f32, i32 and i64", im_node(n), n->op_type,
            onnx_dtype_word(x->dtype));
    return NULL;
  }
  return x;
}

// ---- TopK

// "a comes before b" in TopK's order of keys, as an i32 0 or 1 of two
// broadcastable operands: larger first (smaller first when !largest), with
// NaN larger than every number (the reference sorts with numpy, which puts
// NaN last), ties by the lower index (ia < ib). The language's and/or take
// compile-time bools only, so the logic is arithmetic on 0/1 terms that
// exclude each other: greater + equal * lower-index.
#define I32(c) "cast(" c ", i32)"
static bool topk_before(Importer *im, const Onnx__NodeProto *n, char *b, size_t cap, bool is_float, bool largest,
                        const char *a, const char *bb, const char *ia, const char *ib) {
  const char *hi = largest ? a : bb, *lo = largest ? bb : a;
  if (!is_float)
    return im_fmt(im, n, b, cap, "(" I32("%s > %s") " + " I32("%s == %s") " * " I32("%s < %s") ")", hi, lo, a, bb, ia, ib);
  return im_fmt(im, n, b, cap,
              "(" I32("%s > %s") " + " I32("%s != %s") " * " I32("%s == %s") " + (" I32("%s == %s") " + " I32("%s != %s")
              " * " I32("%s != %s") ") * " I32("%s < %s") ")",
              hi, lo, hi, hi, lo, lo, a, bb, a, a, bb, bb, ia, ib);
}

// TopK by ranks: rank_i = the number of elements j that come before i (a sum
// of pairwise comparisons along the axis), a permutation of 0..N-1 since the
// order is total; output r gathers the element of rank r (a sum of it
// masked by rank == r, exact: every other term is 0). The results are
// sorted whatever `sorted` says (any order is allowed when it is 0).
static void node_topk(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = data_input(im, n, 0);
  if (!x) return;
  int a = im_axis(im, n, onnx_attr_i(n, "axis", -1), x->ndim);
  if (im->failed) return;
  int64_t k;
  if (im->opset < 10) k = onnx_attr_i(n, "k", -1);
  else {
    const Value *kv = im_ints_input(im, n, 1, "k");
    if (!kv) return;
    if (kv->nints != 1) return refuse(im, n, "k must hold one integer");
    k = kv->ints[0];
  }
  bool largest = im->opset < 11 || onnx_attr_i(n, "largest", 1);
  int64_t N = x->dims[a];
  if (k < 1 || k > N) {
    im_fail(im, "node '%s' (TopK): k is %lld for an axis of %lld elements; the importer takes 1 to %lld", im_node(n),
            (long long)k, (long long)N, (long long)N);
    return;
  }
  if (onnx_numel(x->dims, x->ndim) * N > MISC_MAX_ELEMS) {
    im_fail(im, "node '%s' (TopK): %s along axis %d has %lld pairwise comparisons; the importer builds at most %lld",
            im_node(n), onnx_shape_str(x->dims, x->ndim), a, (long long)(onnx_numel(x->dims, x->ndim) * N),
            (long long)MISC_MAX_ELEMS);
    return;
  }
  int64_t yd[MAX_DIMS];
  memcpy(yd, x->dims, sizeof yd);
  yd[a] = k;
  Value *y = im_result(im, n, x->dtype, x->ndim, yd);
  Value *yi = y ? im_result_at(im, n, 1, DT_I64, x->ndim, yd) : NULL;
  if (im->failed) return;
  // i along axis a, j along a new axis a + 1
  char di[512], dj[512], oi[512], oj[512], xi[1200], xj[1200], ii[1200], jj[1200], c[8192], e[8192];
  dims_with(di, sizeof di, x->dims, x->ndim, a + 1, 1);
  dims_with(dj, sizeof dj, x->dims, x->ndim, a, 1);
  ones_with(oi, sizeof oi, x->ndim + 1, a, N);
  ones_with(oj, sizeof oj, x->ndim + 1, a + 1, N);
  if (!im_fmt(im, n, xi, sizeof xi, "reshape(%s, %s)", x->ident, di) ||
      !im_fmt(im, n, xj, sizeof xj, "reshape(%s, %s)", x->ident, dj) ||
      !im_fmt(im, n, ii, sizeof ii, "reshape(iota(%lld), %s)", (long long)N, oi) ||
      !im_fmt(im, n, jj, sizeof jj, "reshape(iota(%lld), %s)", (long long)N, oj) ||
      !topk_before(im, n, c, sizeof c, x->dtype == DT_F32, largest, xj, xi, jj, ii) ||
      !im_fmt(im, n, e, sizeof e, "sum(%s, axis = %d)", c, a + 1))
    return;
  Value *rank = im_temp(im, n, "rank", DT_I32, x->ndim, x->dims, "%s", e);
  if (!rank) return;
  // sel[..., i, r, ...] = rank_i == r, for r < k
  char dr[512], ok[512], sel[2400];
  dims_with(dr, sizeof dr, x->dims, x->ndim, a + 1, 1);
  ones_with(ok, sizeof ok, x->ndim + 1, a + 1, k);
  if (!im_fmt(im, n, sel, sizeof sel, "reshape(%s, %s) == reshape(iota(%lld), %s)", rank->ident, dr, (long long)k, ok))
    return;
  int64_t sd[MAX_DIMS + 1];
  for (int i = 0, j = 0; i <= x->ndim; i++) sd[i] = i == a + 1 ? k : x->dims[j++];
  Value *s = im_temp(im, n, "sel", DT_BOOL, x->ndim + 1, sd, "%s", sel);
  if (!s) return;
  const char *zero = x->dtype == DT_F32 ? "0.0" : "0";
  if (y) im_emit(im, y, "sum(where(%s, %s, %s), axis = %d)", s->ident, xi, zero, a);
  if (yi) im_emit(im, yi, "cast(sum(where(%s, %s, 0), axis = %d), i64)", s->ident, ii, a);
}

// ---- CumProd

// The longest axis CumProd multiplies along: one `let` per element.
#define CUMPROD_MAX 256

// x[.., i:i+1, ..] at axis a of a rank-r value.
static void slice_at(char *b, size_t cap, const char *x, int r, int a, int64_t i) {
  size_t k = 0;
  sapp(b, cap, &k, "%s[", x);
  for (int d = 0; d < r; d++)
    if (d == a) sapp(b, cap, &k, "%s%lld:%lld", d ? ", " : "", (long long)i, (long long)i + 1);
    else sapp(b, cap, &k, "%s:", d ? ", " : "");
  sapp(b, cap, &k, "]");
  if (k >= cap) b[0] = 0;   // too long: an empty text, which the caller refuses
}

// CumProd: the running product as a chain of `let`s, one slice of the axis
// each, multiplied in the order of the axis (reversed: from its end), which
// is the reference's order; exclusive starts from a slice of ones. The
// slices are concatenated back along the axis.
static void node_cumprod(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = data_input(im, n, 0);
  if (!x) return;
  const Value *ax = im_ints_input(im, n, 1, "axis");
  if (!ax) return;
  if (ax->nints != 1) return refuse(im, n, "its axis must be one integer");
  int r = x->ndim, a = im_axis(im, n, ax->ints[0], r);
  if (im->failed) return;
  bool ex = onnx_attr_i(n, "exclusive", 0), rev = onnx_attr_i(n, "reverse", 0);
  int64_t L = x->dims[a];
  if (L < 1 || L > CUMPROD_MAX) {
    im_fail(im, "node '%s' (CumProd): an axis of %lld elements; the importer multiplies axes of 1 to %d", im_node(n),
            (long long)L, CUMPROD_MAX);
    return;
  }
  Value *y = im_result(im, n, x->dtype, r, x->dims);
  if (!y) return;
  int64_t sd[MAX_DIMS];
  memcpy(sd, x->dims, sizeof sd);
  sd[a] = 1;
  char ones[600], dims[512], e[1400], tag[32];
  onnx_join_ints(dims, sizeof dims, sd, r);
  snprintf(ones, sizeof ones, "fill(1, %s, dtype = %s)", dims, onnx_dtype_word(x->dtype));
  Value **c = xcalloc((size_t)L, sizeof *c);
  const char *prev = NULL;
  for (int64_t s = 0; s < L && !im->failed; s++) {
    int64_t i = rev ? L - 1 - s : s;
    char sl[800];
    if (ex && !s) im_fmt(im, n, e, sizeof e, "%s", ones);
    else {
      slice_at(sl, sizeof sl, x->ident, r, a, ex ? (rev ? i + 1 : i - 1) : i);
      if (!sl[0]) refuse(im, n, "an expression longer than the importer's buffer");
      if (prev) im_fmt(im, n, e, sizeof e, "%s * %s", prev, sl);
      else im_fmt(im, n, e, sizeof e, "%s", sl);
    }
    snprintf(tag, sizeof tag, "p%lld", (long long)i);
    if (im->failed) break;
    c[i] = im_temp(im, n, tag, x->dtype, r, sd, "%s", e);
    prev = c[i] ? c[i]->ident : NULL;
  }
  size_t cap = 1024, k = 0;
  char *cat = xmalloc(cap);
  grow_app(&cat, &cap, &k, "concat(");
  for (int64_t i = 0; i < L && !im->failed; i++) grow_app(&cat, &cap, &k, "%s, ", c[i]->ident);
  grow_app(&cat, &cap, &k, "axis = %d)", a);
  if (!im->failed && L == 1) im_emit(im, y, "%s", c[0]->ident);
  else if (!im->failed) im_emit(im, y, "%s", cat);
  free(cat);
  free(c);
}

// ---- TensorScatter

// TensorScatter (a KV-cache update): cache position c of batch b takes
// update position s where write_indices[b] + s is c (modulo the cache length
// when circular). The positions become a one_hot over the cache axis, which
// stops the run at a linear write outside the cache (the reference fails
// there too); each position gets at most one update, so a masked sum over s
// is exact, and where none writes the past value stays.
static void node_tensor_scatter(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *p = data_input(im, n, 0), *u = p ? data_input(im, n, 1) : NULL;
  if (!u) return;
  Value *w = n->n_input > 2 && n->input[2][0] ? im_input(im, n, 2) : NULL;
  if (im->failed || (w && !im_is_tensor(im, n, w))) return;
  const Onnx__AttributeProto *ma = onnx_attr(n, "mode");
  bool circular = false;
  if (ma && ma->has_s) {
    if (ma->s.len == 8 && !memcmp(ma->s.data, "circular", 8)) circular = true;
    else if (!(ma->s.len == 6 && !memcmp(ma->s.data, "linear", 6))) return refuse(im, n, "a mode other than linear and circular");
  }
  int r = p->ndim, a = im_axis(im, n, onnx_attr_i(n, "axis", -2), r);
  if (im->failed) return;
  if (a == 0) return refuse(im, n, "axis 0: the first axis is the batch");
  bool ok = u->ndim == r && u->dtype == p->dtype && u->dims[a] <= p->dims[a];
  for (int i = 0; ok && i < r; i++) ok = i == a || u->dims[i] == p->dims[i];
  if (!ok) {
    im_fail(im, "node '%s' (TensorScatter): update %s %s does not fit past_cache %s %s along axis %d", im_node(n),
            onnx_dtype_word(u->dtype), onnx_shape_str(u->dims, u->ndim), onnx_dtype_word(p->dtype),
            onnx_shape_str(p->dims, r), a);
    return;
  }
  int64_t B = p->dims[0], M = p->dims[a], S = u->dims[a];
  if (w && (w->dtype != DT_I64 && w->dtype != DT_I32)) return refuse(im, n, "write_indices that are not integers");
  if (w && (w->ndim != 1 || w->dims[0] != B)) return refuse(im, n, "write_indices that are not one per batch");
  Value *y = im_result(im, n, p->dtype, r, p->dims);
  if (!y) return;
  char e[4096], pos[1024];
  if (w) im_fmt(im, n, pos, sizeof pos, "reshape(cast(%s, i64), %lld, 1) + reshape(iota(%lld, dtype = i64), 1, %lld)",
                  w->ident, (long long)B, (long long)S, (long long)S);
  else im_fmt(im, n, pos, sizeof pos, "broadcast(reshape(iota(%lld, dtype = i64), 1, %lld), %lld, %lld)", (long long)S,
                (long long)S, (long long)B, (long long)S);
  // a remainder in [0, M) whatever the sign convention of %
  if (circular && !im_fmt(im, n, e, sizeof e, "((%s) %% %lld + %lld) %% %lld", pos, (long long)M, (long long)M, (long long)M))
    return;
  if (im->failed) return;
  int64_t bd[2] = {B, S};
  Value *pv = im_temp(im, n, "pos", DT_I64, 2, bd, "%s", circular ? e : pos);
  if (!pv) return;
  // hit[b, 1.., c, s, 1..]: the one_hot [B, S, M] turned to [B, M, S] and
  // given the cache's other axes as ones
  char md[512];
  int64_t hd[MAX_DIMS + 1];
  for (int i = 0; i <= r; i++) hd[i] = i == 0 ? B : i == a ? M : i == a + 1 ? S : 1;
  onnx_join_ints(md, sizeof md, hd, r + 1);
  if (!im_fmt(im, n, e, sizeof e, "reshape(permute(one_hot(%s, %lld, dtype = i32), 0, 2, 1), %s) == 1", pv->ident,
            (long long)M, md))
    return;
  Value *hit = im_temp(im, n, "hit", DT_BOOL, r + 1, hd, "%s", e);
  if (!hit) return;
  char ud[512];
  dims_with(ud, sizeof ud, u->dims, r, a, 1);
  const char *zero = p->dtype == DT_F32 ? "0.0" : "0";
  im_emit(im, y, "where(sum(cast(%s, i32), axis = %d) > 0, sum(where(%s, reshape(%s, %s), %s), axis = %d), %s)",
          hit->ident, a + 1, hit->ident, u->ident, ud, zero, a + 1, p->ident);
}

// ---- Det

// The largest matrix Det expands: the cofactor expansion of an N x N
// matrix has N! products, each rounded like an elimination's steps for N <=
// 4; larger ones are refused.
#define DET_MAX 4

// The determinant of x's rows rows[0..k) and the columns in cols (a bit
// set), expanded along its first row, into b at *at: a sum of signed
// products of x[..., i, j].
static void det_expand(char *b, size_t cap, size_t *at, const char *x, const int *rows, int k, unsigned cols) {
  if (k == 1) {
    for (int j = 0; j < 32; j++)
      if (cols & (1u << j)) sapp(b, cap, at, "%s[..., %d, %d]", x, rows[0], j);
    return;
  }
  sapp(b, cap, at, "(");
  int t = 0;
  for (int j = 0; j < 32; j++) {
    if (!(cols & (1u << j))) continue;
    sapp(b, cap, at, "%s%s[..., %d, %d] * ", t ? (t % 2 ? " - " : " + ") : "", x, rows[0], j);
    det_expand(b, cap, at, x, rows + 1, k - 1, cols & ~(1u << j));
    t++;
  }
  sapp(b, cap, at, ")");
}

static void node_det(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = data_input(im, n, 0);
  if (!x) return;
  int r = x->ndim;
  if (x->dtype != DT_F32) return refuse(im, n, "an integer input; Det takes floats");
  if (r < 2 || x->dims[r - 1] != x->dims[r - 2])
    return im_fail(im, "node '%s' (Det): a %s input; it takes square matrices [..., N, N]", im_node(n),
                   onnx_shape_str(x->dims, r));
  int64_t N = x->dims[r - 1];
  if (N < 1 || N > DET_MAX)
    return im_fail(im, "node '%s' (Det): %lld x %lld matrices; the importer expands the determinants of 1 x 1 to %d x %d",
                   im_node(n), (long long)N, (long long)N, DET_MAX, DET_MAX);
  Value *y = im_result(im, n, DT_F32, r - 2, x->dims);
  if (!y) return;
  int rows[DET_MAX];
  for (int i = 0; i < N; i++) rows[i] = i;
  char e[8192];
  size_t k = 0;
  det_expand(e, sizeof e, &k, x->ident, rows, (int)N, (1u << N) - 1);
  if (k >= sizeof e) return refuse(im, n, "an expression longer than the importer's buffer");
  im_emit(im, y, "%s", e);
}

// ---- TfIdfVectorizer

// The most (n-gram, skip) pairs and output columns TfIdfVectorizer builds:
// each pair is a product of comparisons in the generated file.
#define TFIDF_MAX_TERMS 4096

// A string attribute equal to word.
static bool attr_is(const Onnx__AttributeProto *a, const char *word) {
  return a && a->has_s && a->s.len == strlen(word) && !memcmp(a->s.data, word, a->s.len);
}

// The pool's n-grams: gram g has size[g] items from pool[start[g]].
typedef struct {
  int64_t *start, *size;
  bool *dead;   // a later n-gram equal to it takes its place (the reference's map keeps the last id)
  int count;
} Grams;

// The n-grams of ngram_counts over a pool of np items, as the reference
// reads them: group i holds n-grams of i + 1 items from ngram_counts[i] to
// the next group's start. False with a message.
static bool tfidf_grams(Importer *im, const Onnx__NodeProto *n, const int64_t *pool, int np, Grams *g) {
  int64_t counts[4096];
  int nc = onnx_attr_ints(n, "ngram_counts", counts, 4096);
  if (nc < 1) {
    refuse(im, n, "no ngram_counts (or more than 4096)");
    return false;
  }
  g->start = xcalloc((size_t)np + 1, sizeof *g->start);
  g->size = xcalloc((size_t)np + 1, sizeof *g->size);
  g->dead = xcalloc((size_t)np + 1, sizeof *g->dead);
  g->count = 0;
  for (int i = 0; i < nc; i++) {
    int64_t from = counts[i], to = i + 1 < nc ? counts[i + 1] : np;
    if (from < 0 || to > np || from > to) {
      refuse(im, n, "ngram_counts that are not increasing starts within the pool");
      return false;
    }
    for (int64_t k = 0; k < (to - from) / (i + 1); k++) {
      g->start[g->count] = from + k * (i + 1);
      g->size[g->count++] = i + 1;
    }
  }
  for (int a = 0; a < g->count; a++)
    for (int b = a + 1; b < g->count && !g->dead[a]; b++)
      g->dead[a] = g->size[a] == g->size[b] &&
                   !memcmp(pool + g->start[a], pool + g->start[b], (size_t)g->size[a] * sizeof *pool);
  return true;
}

// Appends the count of n-gram gi in each row of x [B, C] (an i32 [B]): for
// each skip distance d (1 only for unigrams, which the reference counts
// once), the start positions whose items at distances d all equal the
// n-gram's, a sum of products of comparisons of shifted slices.
static void tfidf_count(char **b, size_t *cap, size_t *k, const char *x, int64_t C, const int64_t *pool,
                        const Grams *g, int gi, int64_t skips) {
  int64_t sz = g->size[gi];
  bool any = false;
  for (int64_t d = 1; d <= (sz == 1 ? 1 : skips + 1); d++) {
    int64_t L = C - (sz - 1) * d;
    if (L <= 0) break;
    grow_app(b, cap, k, "%ssum(", any ? " + " : "");
    for (int64_t t = 0; t < sz; t++)
      grow_app(b, cap, k, "%scast(%s[:, %lld:%lld] == %lld, i32)", t ? " * " : "", x, (long long)(t * d),
               (long long)(t * d + L), (long long)pool[g->start[gi] + t]);
    grow_app(b, cap, k, ", axis = 1)");
    any = true;
  }
  if (!any) grow_app(b, cap, k, "0");
}

// TfIdfVectorizer on integer inputs [C] or [B, C]: each output column is the
// sum of the counts of the pool n-grams mapped to it (ngram_indexes), with
// sizes from min_gram_length to max_gram_length, then weighted by mode.
static void node_tfidf(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  if ((x->dtype != DT_I32 && x->dtype != DT_I64) || x->kind == V_SCALAR || x->ndim < 1 || x->ndim > 2)
    return im_fail(im, "node '%s' (TfIdfVectorizer): a %s %s input; the importer takes integer [C] or [B, C]",
                   im_node(n), onnx_dtype_word(x->dtype), onnx_shape_str(x->dims, x->ndim));
  if (onnx_attr(n, "pool_strings")) return refuse(im, n, "pool_strings: string tensors are not supported");
  const Onnx__AttributeProto *pa = onnx_attr(n, "pool_int64s"), *mo = onnx_attr(n, "mode");
  if (!pa || !pa->n_ints) return refuse(im, n, "no pool_int64s");
  bool tf = attr_is(mo, "TF"), idf = attr_is(mo, "IDF"), tfidf = attr_is(mo, "TFIDF");
  if (!tf && !idf && !tfidf) return refuse(im, n, "a mode other than TF, IDF and TFIDF");
  int64_t mn = onnx_attr_i(n, "min_gram_length", -1), mx = onnx_attr_i(n, "max_gram_length", -1);
  int64_t skips = onnx_attr_i(n, "max_skip_count", -1);
  if (mn < 1 || mx < mn || skips < 0)
    return refuse(im, n, "min_gram_length, max_gram_length and max_skip_count must be given, 1 <= min <= max, skips >= 0");
  int np = (int)pa->n_ints;
  const int64_t *pool = pa->ints;
  Grams g;
  if (!tfidf_grams(im, n, pool, np, &g)) return;
  // an item an i32 input cannot hold never matches (a literal of it would
  // wrap); the smallest int64 has no literal
  for (int i = 0; i < g.count; i++)
    for (int64_t t = 0; t < g.size[i]; t++) {
      int64_t v = pool[g.start[i] + t];
      if (v == INT64_MIN) {
        refuse(im, n, "a pool_int64s item that is the smallest int64, which the model language cannot write");
        goto done;
      }
      if (x->dtype == DT_I32 && (v < INT32_MIN || v > INT32_MAX)) g.dead[i] = true;
    }
  const Onnx__AttributeProto *ia = onnx_attr(n, "ngram_indexes"), *wa = onnx_attr(n, "weights");
  if (wa && !wa->n_floats) wa = NULL;   // empty weights: as none (the reference's len(w) > 0)
  int64_t O = 0, terms = 0;
  if (!ia || (int)ia->n_ints < g.count) {
    refuse(im, n, "ngram_indexes must have an index for each n-gram of the pool");
    goto done;
  }
  for (size_t i = 0; i < ia->n_ints; i++) {   // the output has max(ngram_indexes) + 1 columns, as the reference
    if (ia->ints[i] < 0) {
      refuse(im, n, "a negative ngram_index");
      goto done;
    }
    if (ia->ints[i] + 1 > O) O = ia->ints[i] + 1;
  }
  for (int i = 0; i < g.count; i++) terms += g.size[i] == 1 ? 1 : skips + 1;
  if (O > TFIDF_MAX_TERMS || terms > TFIDF_MAX_TERMS) {
    refuse(im, n, "more than 4096 output columns or (n-gram, skip) pairs");
    goto done;
  }
  if (wa && (int64_t)wa->n_floats < O) {   // the reference scales column i by weights[i]
    refuse(im, n, "fewer weights than output columns");
    goto done;
  }
  int64_t B = x->ndim == 2 ? x->dims[0] : 1, C = x->dims[x->ndim - 1];
  int64_t yd[2] = {B, O}, xd[2] = {B, C};
  Value *y = im_result(im, n, DT_F32, x->ndim, x->ndim == 2 ? yd : yd + 1);
  if (!y) goto done;
  char e[512];
  im_fmt(im, n, e, sizeof e, "reshape(%s, %lld, %lld)", x->ident, (long long)B, (long long)C);
  if (im->failed) goto done;
  Value *x2 = im_temp(im, n, "rows", x->dtype, 2, xd, "%s", e);
  if (!x2) goto done;
  size_t cap = 4096, k = 0;
  char *b = xmalloc(cap);
  grow_app(&b, &cap, &k, "stack(");
  for (int64_t o = 0; o < O; o++) {
    grow_app(&b, &cap, &k, "%s", o ? ", " : "");
    bool any = false;
    for (int i = 0; i < g.count; i++) {
      if (ia->ints[i] != o || g.dead[i] || g.size[i] < mn || g.size[i] > mx) continue;
      grow_app(&b, &cap, &k, "%s", any ? " + " : "");
      tfidf_count(&b, &cap, &k, x2->ident, C, pool, &g, i, skips);
      any = true;
    }
    if (!any) grow_app(&b, &cap, &k, "fill(0, %lld, dtype = i32)", (long long)B);
  }
  grow_app(&b, &cap, &k, ", axis = 1)");
  Value *cnt = im_temp(im, n, "counts", DT_I32, 2, yd, "%s", b);
  free(b);
  if (!cnt) goto done;
  // the weighting: TF the counts, IDF weights[o] (or 1) where a count is
  // positive, TFIDF weights[o] (or 1) times the counts
  char w[512];
  if (wa) {
    float *data = xmalloc((size_t)O * sizeof *data);
    for (int64_t o = 0; o < O; o++) data[o] = wa->floats[o];
    int64_t od = O;
    char pn[512];
    im_temp_name(n, "weights", pn, sizeof pn);
    Value *wp = im_add_param(im, pn, 1, &od, data);
    im_fmt(im, n, w, sizeof w, "reshape(%s, 1, %lld)", wp ? wp->ident : "?", (long long)O);
    if (!wp) goto done;
  }
  char r[1400];
  if (tf || (tfidf && !wa)) im_fmt(im, n, r, sizeof r, "cast(%s, f32)", cnt->ident);
  else if (tfidf) im_fmt(im, n, r, sizeof r, "%s * cast(%s, f32)", w, cnt->ident);
  else if (wa) im_fmt(im, n, r, sizeof r, "where(%s > 0, broadcast(%s, %lld, %lld), 0.0)", cnt->ident, w, (long long)B, (long long)O);
  else im_fmt(im, n, r, sizeof r, "cast(%s > 0, f32)", cnt->ident);
  if (im->failed) goto done;
  if (x->ndim == 2) im_emit(im, y, "%s", r);
  else im_emit_reshape(im, y, r);
done:
  free(g.start);
  free(g.size);
  free(g.dead);
}

const OnnxOp onnx_misc_ops[] = {
    {"TopK", node_topk, NULL},
    {"CumProd", node_cumprod, NULL},
    {"TensorScatter", node_tensor_scatter, NULL},
    {"Det", node_det, NULL},
    {"TfIdfVectorizer", node_tfidf, NULL},
    {NULL, NULL, NULL},
};
