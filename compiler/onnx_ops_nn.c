// onnx_ops_nn.c: the ONNX ops of networks: MatMul, Gemm, Softmax, convolution
// and pooling.
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_importer.h"

// MatMul with numpy's rules: a 1-D left operand is a row, a 1-D right one a
// column, its dimension dropped from the result (the language's matmul does the same).
static void node_matmul(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *a = im_input(im, n, 0), *b = a ? im_input(im, n, 1) : NULL;
  if (!b || !im_is_tensor(im, n, a) || !im_is_tensor(im, n, b)) return;
  if (a->ndim < 1 || b->ndim < 1 || a->kind == V_SCALAR || b->kind == V_SCALAR || a->dtype != DT_F32 ||
      b->dtype != DT_F32) {
    im_fail(im, "node '%s' (MatMul): operands %s %s and %s %s; the importer takes float operands of rank 1 or more",
            im_node(n), onnx_dtype_word(a->dtype), onnx_shape_str(a->dims, a->ndim), onnx_dtype_word(b->dtype),
            onnx_shape_str(b->dims, b->ndim));
    return;
  }
  int64_t k1 = a->dims[a->ndim - 1], k2 = b->dims[b->ndim >= 2 ? b->ndim - 2 : 0];
  Value ba = *a, bb = *b;
  ba.ndim = a->ndim >= 2 ? a->ndim - 2 : 0;
  bb.ndim = b->ndim >= 2 ? b->ndim - 2 : 0;
  int64_t d[MAX_DIMS];
  int nd;
  if (k1 != k2 || !onnx_broadcast(&ba, &bb, d, &nd)) {
    im_fail(im, "node '%s' (MatMul): shapes %s and %s do not multiply", im_node(n), onnx_shape_str(a->dims, a->ndim),
         onnx_shape_str(b->dims, b->ndim));
    return;
  }
  if (a->ndim >= 2) d[nd++] = a->dims[a->ndim - 2];
  if (b->ndim >= 2) d[nd++] = b->dims[b->ndim - 1];
  Value *y = im_result(im, n, DT_F32, nd, d);
  if (y) im_emit(im, y, "matmul(%s, %s)", a->ident, b->ident);
}

static void node_gemm(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *a = im_input(im, n, 0), *b = a ? im_input(im, n, 1) : NULL;
  if (!b || !im_is_tensor(im, n, a) || !im_is_tensor(im, n, b)) return;
  bool ta = onnx_attr_i(n, "transA", 0), tb = onnx_attr_i(n, "transB", 0);
  double alpha = onnx_attr_f(n, "alpha", 1.0), beta = onnx_attr_f(n, "beta", 1.0);
  if (a->ndim != 2 || b->ndim != 2) {
    im_fail(im, "node '%s' (Gemm) needs 2-D operands, not %s and %s", im_node(n), onnx_shape_str(a->dims, a->ndim),
         onnx_shape_str(b->dims, b->ndim));
    return;
  }
  int64_t m = a->dims[ta ? 1 : 0], k = a->dims[ta ? 0 : 1], k2 = b->dims[tb ? 1 : 0], nn = b->dims[tb ? 0 : 1];
  if (k != k2) {
    im_fail(im, "node '%s' (Gemm): shapes %s and %s do not multiply (transA %d, transB %d)", im_node(n),
         onnx_shape_str(a->dims, a->ndim), onnx_shape_str(b->dims, b->ndim), ta, tb);
    return;
  }
  int64_t d[2] = {m, nn};
  char expr[1024];
  int len = snprintf(expr, sizeof expr, "matmul(%s, %s%s%s)", a->ident, b->ident, ta ? ", ta = true" : "",
                     tb ? ", tb = true" : "");
  if (alpha != 1.0) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%.9g * %s", alpha, expr);
    len = snprintf(expr, sizeof expr, "%.1000s", tmp);
  }
  Value *c = n->n_input > 2 && n->input[2][0] ? im_input(im, n, 2) : NULL;
  if (n->n_input > 2 && n->input[2][0] && !c) return;
  if (c && beta != 0.0) {
    if (!im_is_tensor(im, n, c)) return;
    Value mm = {.ndim = 2, .dims = {m, nn}};
    int64_t bd[MAX_DIMS];
    int bn;
    if (!onnx_broadcast(&mm, c, bd, &bn) || bn != 2 || bd[0] != m || bd[1] != nn) {
      im_fail(im, "node '%s' (Gemm): C of shape %s does not broadcast to %s", im_node(n), onnx_shape_str(c->dims, c->ndim),
           onnx_shape_str(d, 2));
      return;
    }
    if (beta == 1.0) snprintf(expr + len, sizeof expr - (size_t)len, " + %s", im_operand(im, c));
    else snprintf(expr + len, sizeof expr - (size_t)len, " + %.9g * %s", beta, im_operand(im, c));
  }
  Value *y = im_result(im, n, DT_F32, 2, d);
  if (y) im_emit(im, y, "%s", expr);
}

// Softmax and LogSoftmax: one axis from opset 13; before, the input is
// coerced to 2-D at axis (default 1) and normalized over the second part.
static void node_softmax(Importer *im, const Onnx__NodeProto *n, const char *fn) {
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  bool old = im->opset < 13;
  int axis = im_axis(im, n, onnx_attr_i(n, "axis", old ? 1 : -1), x->ndim);
  if (im->failed) return;
  Value *y = im_result(im, n, DT_F32, x->ndim, x->dims);
  if (!y) return;
  if (!old || axis == x->ndim - 1) {
    im_emit(im, y, "%s(%s, axis = %d)", fn, x->ident, old ? -1 : axis);
    return;
  }
  int64_t rows = onnx_numel(x->dims, axis), cols = onnx_numel(x->dims + axis, x->ndim - axis);
  char d[512];
  onnx_join_ints(d, sizeof d, y->dims, y->ndim);
  im_emit(im, y, "reshape(%s(reshape(%s, %lld, %lld), axis = -1), %s)", fn, x->ident, (long long)rows, (long long)cols, d);
}

// ---- windows: convolution and pooling over 1 to 3 spatial axes

#define MAXSP 3

// A window over the spatial axes of an [N, C, ...] input, its pads resolved
// from pads or auto_pad, and the output size of each axis.
typedef struct {
  int r;
  int64_t in[MAXSP], k[MAXSP], s[MAXSP], d[MAXSP], pb[MAXSP], pe[MAXSP], out[MAXSP];
} Win;

// A tensor of the model file being built: its name and shape.
typedef struct {
  const char *id;
  int nd;
  int64_t dims[MAX_DIMS];
} T;

static int64_t win_ext(const Win *w, int i) { return (w->k[i] - 1) * w->d[i] + 1; }

// The pad after axis i that the last window needs (negative: input it never reads).
static int64_t win_need(const Win *w, int i) { return (w->out[i] - 1) * w->s[i] + win_ext(w, i) - w->in[i] - w->pb[i]; }

static bool attr_str_is(const Onnx__AttributeProto *a, const char *s) {
  return a && a->has_s && a->s.len == strlen(s) && !memcmp(a->s.data, s, a->s.len);
}

// strides, dilations and pads (or auto_pad) of n for input x, its kernel
// kernel (or kernel_shape); ceil_mode for pools.
static bool win_parse(Importer *im, const Onnx__NodeProto *n, Win *w, const Value *x, const int64_t *kernel, bool pool) {
  int r = x->ndim - 2;
  if (r < 1 || r > MAXSP) {
    im_fail(im, "node '%s' (%s): input %s; the importer takes 1 to 3 spatial axes", im_node(n), n->op_type,
            onnx_shape_str(x->dims, x->ndim));
    return false;
  }
  memset(w, 0, sizeof *w);
  w->r = r;
  int64_t v[2 * MAXSP];
  int c = onnx_attr_ints(n, "kernel_shape", v, 2 * MAXSP);
  if (kernel && c >= 0 && (c != r || memcmp(v, kernel, (size_t)r * sizeof *v))) {
    im_fail(im, "node '%s' (%s): kernel_shape disagrees with the weight's shape", im_node(n), n->op_type);
    return false;
  }
  if (!kernel && c != r) {
    im_fail(im, "node '%s' (%s) needs a kernel_shape of %d values", im_node(n), n->op_type, r);
    return false;
  }
  for (int i = 0; i < r; i++) {
    w->in[i] = x->dims[i + 2];
    w->k[i] = kernel ? kernel[i] : v[i];
    w->s[i] = w->d[i] = 1;
  }
  const char *names[3] = {"strides", "dilations", "pads"};
  int64_t *dst[3] = {w->s, w->d, w->pb};
  for (int a = 0; a < 3; a++) {
    if ((c = onnx_attr_ints(n, names[a], v, 2 * MAXSP)) < 0) continue;
    if (c != (a == 2 ? 2 * r : r)) {
      im_fail(im, "node '%s' (%s): %s must have %d values, not %d", im_node(n), n->op_type, names[a], a == 2 ? 2 * r : r, c);
      return false;
    }
    for (int i = 0; i < r; i++) dst[a][i] = v[i];
    if (a == 2)
      for (int i = 0; i < r; i++) w->pe[i] = v[r + i];
  }
  for (int i = 0; i < r; i++)
    if (w->k[i] < 1 || w->s[i] < 1 || w->d[i] < 1 || w->pb[i] < 0 || w->pe[i] < 0) {
      im_fail(im, "node '%s' (%s): a kernel, stride, dilation or pad out of range on spatial axis %d", im_node(n),
              n->op_type, i);
      return false;
    }
  const Onnx__AttributeProto *ap = onnx_attr(n, "auto_pad");
  bool same = attr_str_is(ap, "SAME_UPPER") || attr_str_is(ap, "SAME_LOWER"), valid = attr_str_is(ap, "VALID");
  if (ap && !same && !valid && !attr_str_is(ap, "NOTSET")) {
    im_fail(im, "node '%s' (%s): auto_pad %.*s is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER", im_node(n),
            n->op_type, (int)ap->s.len, (const char *)ap->s.data);
    return false;
  }
  bool ceil_mode = pool && onnx_attr_i(n, "ceil_mode", 0);
  for (int i = 0; i < r; i++) {
    int64_t ext = win_ext(w, i);
    if (same) {   // the output is ceil(in / stride); the extra pad goes after (UPPER) or before (LOWER)
      w->out[i] = (w->in[i] + w->s[i] - 1) / w->s[i];
      int64_t total = (w->out[i] - 1) * w->s[i] + ext - w->in[i];
      if (total < 0) total = 0;
      w->pb[i] = attr_str_is(ap, "SAME_UPPER") ? total / 2 : total - total / 2;
      w->pe[i] = total - w->pb[i];
      continue;
    }
    if (valid) w->pb[i] = w->pe[i] = 0;
    int64_t span = w->in[i] + w->pb[i] + w->pe[i] - ext;
    if (span < 0) {
      im_fail(im, "node '%s' (%s): the window does not fit the input %s", im_node(n), n->op_type,
              onnx_shape_str(x->dims, x->ndim));
      return false;
    }
    w->out[i] = (ceil_mode ? (span + w->s[i] - 1) : span) / w->s[i] + 1;
    // ceil_mode: a last window that starts in the padding after the input is dropped
    if (ceil_mode && (w->out[i] - 1) * w->s[i] >= w->in[i] + w->pb[i]) w->out[i]--;
  }
  return true;
}

// t becomes `let = EXPR` of shape nd, dims.
static bool t_set(Importer *im, const Onnx__NodeProto *n, T *t, int nd, const int64_t *dims, const char *expr) {
  const char *id = im_temp_id(im, n, "t", DT_F32, nd, dims, "%s", expr);
  if (!id) return false;
  t->id = id;
  t->nd = nd;
  if (dims != t->dims) memcpy(t->dims, dims, (size_t)nd * sizeof *dims);
  return true;
}

static const char *dims_of(const int64_t *d, int n) {
  static char buf[4][512];
  static int which;
  char *b = buf[which++ % 4];
  onnx_join_ints(b, sizeof buf[0], d, n);
  return b;
}

// Pads t's spatial axes explicitly with value (the pads before, and after up
// to the end of the last window), and crops the input that no window reads,
// so that each axis is exactly (out - 1) stride + extent long.
static bool win_pad(Importer *im, const Onnx__NodeProto *n, T *t, const Win *w, const char *value) {
  char e[4096];
  int len = snprintf(e, sizeof e, "pad(%s, (0, 0), (0, 0)", t->id);
  bool pad = false, crop = false;
  int64_t nd[MAX_DIMS];
  memcpy(nd, t->dims, sizeof nd);
  for (int i = 0; i < w->r; i++) {
    int64_t need = win_need(w, i), after = need > 0 ? need : 0;
    pad |= w->pb[i] || after;
    crop |= need < 0;
    nd[i + 2] = w->in[i] + w->pb[i] + after;
    len += snprintf(e + len, sizeof e - (size_t)len, ", (%lld, %lld)", (long long)w->pb[i], (long long)after);
  }
  snprintf(e + len, sizeof e - (size_t)len, ", value = %s)", value);
  if (pad && !t_set(im, n, t, t->nd, nd, e)) return false;
  if (!crop) return true;
  len = snprintf(e, sizeof e, "%s[:, :", t->id);
  for (int i = 0; i < w->r; i++) {
    nd[i + 2] = w->in[i] + w->pb[i] + win_need(w, i);
    len += snprintf(e + len, sizeof e - (size_t)len, ", 0:%lld", (long long)nd[i + 2]);
  }
  snprintf(e + len, sizeof e - (size_t)len, "]");
  return t_set(im, n, t, t->nd, nd, e);
}

// ---- pooling

// Slicing t along axis ax only: "x[:, :, a:b:c, :]".
static void slice_expr(char *e, size_t cap, const T *t, int ax, int64_t a, int64_t b, int64_t c) {
  int len = snprintf(e, cap, "%s[", t->id);
  for (int i = 0; i < t->nd; i++) {
    if (i == ax) len += snprintf(e + len, cap - (size_t)len, "%s%lld:%lld:%lld", i ? ", " : "", (long long)a, (long long)b, (long long)c);
    else len += snprintf(e + len, cap - (size_t)len, "%s:", i ? ", " : "");
  }
  snprintf(e + len, cap - (size_t)len, "]");
}

// A dilated window along axis ax (of a padded t): the maximum or the sum of
// its taps, each a strided slice; a `let` every 16 taps keeps lines short.
static bool pool_taps(Importer *im, const Onnx__NodeProto *n, T *t, int ax, int64_t k, int64_t s, int64_t d, int64_t out, bool max) {
  T src = *t;
  int64_t nd[MAX_DIMS];
  memcpy(nd, t->dims, sizeof nd);
  nd[ax] = out;
  char acc[4096] = "", sl[512];
  for (int64_t j = 0; j < k; j++) {
    slice_expr(sl, sizeof sl, &src, ax, j * d, j * d + (out - 1) * s + 1, s);
    char next[sizeof acc + sizeof sl + 32];
    int len = !acc[0] ? snprintf(next, sizeof next, "%s", sl)
              : max   ? snprintf(next, sizeof next, "maximum(%s, %s)", acc, sl)
                      : snprintf(next, sizeof next, "%s + %s", acc, sl);
    if (len < 0 || (size_t)len >= sizeof acc) {
      im_fail(im, "node '%s' (%s): a window of taps too long to write", im_node(n), n->op_type);
      return false;
    }
    memcpy(acc, next, (size_t)len + 1);
    if (j % 16 == 15 || j == k - 1) {
      if (!t_set(im, n, t, src.nd, nd, acc)) return false;
      snprintf(acc, sizeof acc, "%s", t->id);
    }
  }
  return true;
}

// A pool_max / pool_avg over the last two axes of t (kernel k, stride s), as
// a 4-D [P, 1, H, W] view when t is not 4-D.
static bool pool_native(Importer *im, const Onnx__NodeProto *n, T *t, const int64_t k[2], const int64_t s[2], bool max) {
  int nd = t->nd;
  int64_t oh = (t->dims[nd - 2] - k[0]) / s[0] + 1, ow = (t->dims[nd - 1] - k[1]) / s[1] + 1;
  char src[600], e[1200];
  if (nd == 4) snprintf(src, sizeof src, "%s", t->id);
  else snprintf(src, sizeof src, "reshape(%s, %lld, 1, %lld, %lld)", t->id, (long long)onnx_numel(t->dims, nd - 2),
                (long long)t->dims[nd - 2], (long long)t->dims[nd - 1]);
  snprintf(e, sizeof e, "%s(%s, (%lld, %lld), stride = (%lld, %lld))", max ? "pool_max" : "pool_avg", src, (long long)k[0],
           (long long)k[1], (long long)s[0], (long long)s[1]);
  int64_t d[MAX_DIMS];
  memcpy(d, t->dims, sizeof d);
  d[nd - 2] = oh;
  d[nd - 1] = ow;
  if (nd == 4) return t_set(im, n, t, nd, d, e);
  char r[1400];
  snprintf(r, sizeof r, "reshape(%s, %s)", e, dims_of(d, nd));
  return t_set(im, n, t, nd, d, r);
}

// A window along one axis ax with no dilation: a pool of kernel (k, 1) over
// the [P, L, Q] view of t.
static bool pool_axis(Importer *im, const Onnx__NodeProto *n, T *t, int ax, int64_t k, int64_t s, bool max) {
  T v = *t;
  int64_t q = onnx_numel(t->dims + ax + 1, t->nd - ax - 1);
  v.nd = 4;
  v.dims[0] = onnx_numel(t->dims, ax);
  v.dims[1] = 1;
  v.dims[2] = t->dims[ax];
  v.dims[3] = q;
  char e[600];
  snprintf(e, sizeof e, "reshape(%s, %s)", t->id, dims_of(v.dims, 4));
  if (!t_set(im, n, &v, 4, v.dims, e)) return false;
  int64_t kk[2] = {k, 1}, ss[2] = {s, 1};
  if (!pool_native(im, n, &v, kk, ss, max)) return false;
  int64_t d[MAX_DIMS];
  memcpy(d, t->dims, sizeof d);
  d[ax] = v.dims[2];
  snprintf(e, sizeof e, "reshape(%s, %s)", v.id, dims_of(d, t->nd));
  return t_set(im, n, t, t->nd, d, e);
}

// The number of the taps of axis i's window at output o that count for an
// average: inside the input, or also inside the pads with count_include_pad.
static int64_t win_count(const Win *w, int i, int64_t o, bool include_pad) {
  int64_t lo = include_pad ? -w->pb[i] : 0, hi = include_pad ? w->in[i] + w->pe[i] : w->in[i], c = 0;
  for (int64_t j = 0; j < w->k[i]; j++) {
    int64_t p = o * w->s[i] - w->pb[i] + j * w->d[i];
    c += p >= lo && p < hi;
  }
  return c;
}

// The counts of axis i as a tensor of shape [1, 1, .., out, .., 1]: runs of
// fill() joined by concat. NULL (with no message) when every count is k.
static const char *count_tensor(Importer *im, const Onnx__NodeProto *n, const Win *w, int i, bool include_pad, int nd) {
  bool uniform = true;
  for (int64_t o = 0; o < w->out[i]; o++) uniform &= win_count(w, i, o, include_pad) == w->k[i];
  if (uniform) return NULL;
  char e[4096];
  int len = snprintf(e, sizeof e, "concat(");
  int64_t d[MAX_DIMS];
  for (int a = 0; a < nd; a++) d[a] = 1;
  for (int64_t o = 0; o < w->out[i];) {
    int64_t c = win_count(w, i, o, include_pad), run = 1;
    while (o + run < w->out[i] && win_count(w, i, o + run, include_pad) == c) run++;
    d[i + 2] = run;
    len += snprintf(e + len, sizeof e - (size_t)len, "%sfill(%lld.0, %s)", o ? ", " : "", (long long)c, dims_of(d, nd));
    if ((size_t)len >= sizeof e - 100) {
      im_fail(im, "node '%s' (%s): too many distinct window counts", im_node(n), n->op_type);
      return NULL;
    }
    o += run;
  }
  snprintf(e + len, sizeof e - (size_t)len, ", axis = %d)", i + 2);
  d[i + 2] = w->out[i];
  if (!strstr(e, "), fill")) {   // a single run: no concat
    char *f = strstr(e, "fill");
    memmove(e, f, strlen(f) + 1);
    *strstr(e, ", axis") = 0;
  }
  return im_temp_id(im, n, "t", DT_F32, nd, d, "%s", e);
}

// MaxPool, AveragePool, LpPool: the input padded explicitly (-inf for max),
// then a window per axis (pairs of the last two axes as one 2-D pool); an
// average divides the sum by the count of each window.
static void node_pool(Importer *im, const Onnx__NodeProto *n, const char *kind) {
  bool max = !strcmp(kind, "max"), lp = !strcmp(kind, "lp");
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  if (x->dtype != DT_F32) {
    im_fail(im, "node '%s' (%s): a %s input; the importer pools float tensors", im_node(n), n->op_type, onnx_dtype_word(x->dtype));
    return;
  }
  if (n->n_output > 1 && n->output[1][0]) {
    im_fail(im, "node '%s' (%s): the Indices output is not supported", im_node(n), n->op_type);
    return;
  }
  Win w;
  if (!win_parse(im, n, &w, x, NULL, true)) return;
  bool include_pad = onnx_attr_i(n, "count_include_pad", 0) != 0 || lp;
  // LpPool's p: a float in opset 1, an integer from opset 2
  const Onnx__AttributeProto *pa = onnx_attr(n, "p");
  double p = !lp ? 1 : pa && pa->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT ? pa->f : (double)onnx_attr_i(n, "p", 2);
  if (lp && p <= 0) {
    im_fail(im, "node '%s' (LpPool): p %g must be positive", im_node(n), p);
    return;
  }
  int64_t d[MAX_DIMS] = {x->dims[0], x->dims[1]};
  for (int i = 0; i < w.r; i++) d[i + 2] = w.out[i];
  int nd = x->ndim;
  // the language's own padding: symmetric, at most half the window, no crop
  if (w.r == 2 && !lp && w.d[0] == 1 && w.d[1] == 1 && (max || include_pad)) {
    bool fits = true;
    for (int i = 0; i < 2; i++) fits &= w.pb[i] == w.pe[i] && 2 * w.pb[i] <= w.k[i] && win_need(&w, i) == w.pe[i];
    if (fits) {
      Value *y = im_result(im, n, DT_F32, nd, d);
      if (y)
        im_emit(im, y, "%s(%s, (%lld, %lld), stride = (%lld, %lld), padding = (%lld, %lld))", max ? "pool_max" : "pool_avg",
                x->ident, (long long)w.k[0], (long long)w.k[1], (long long)w.s[0], (long long)w.s[1], (long long)w.pb[0],
                (long long)w.pb[1]);
      return;
    }
  }
  T t = {.id = x->ident, .nd = nd};
  memcpy(t.dims, x->dims, sizeof t.dims);
  char e[1200];
  if (lp) {
    snprintf(e, sizeof e, "pow(abs(%s), %.17g)", t.id, p);
    if (!t_set(im, n, &t, nd, t.dims, e)) return;
  }
  if (!win_pad(im, n, &t, &w, max ? "log(0.0)" : "0.0")) return;
  // a dilation that divides the stride: every tap is on a multiple of it
  Win f = w;
  bool fold = false;
  int len = snprintf(e, sizeof e, "%s[:, :", t.id);
  for (int i = 0; i < w.r; i++) {
    bool fi = w.d[i] > 1 && w.s[i] % w.d[i] == 0;
    fold |= fi;
    len += snprintf(e + len, sizeof e - (size_t)len, fi ? ", ::%lld" : ", :", (long long)w.d[i]);
    if (fi) {
      f.s[i] = w.s[i] / w.d[i];
      f.d[i] = 1;
      t.dims[i + 2] = (t.dims[i + 2] - 1) / w.d[i] + 1;
    }
  }
  snprintf(e + len, sizeof e - (size_t)len, "]");
  if (fold && !t_set(im, n, &t, nd, t.dims, e)) return;
  int64_t divided = 1;   // the native average pools' kernel sizes: t is the sum over them
  int last = w.r;
  if (w.r >= 2 && f.d[w.r - 2] == 1 && f.d[w.r - 1] == 1) {
    if (!pool_native(im, n, &t, f.k + w.r - 2, f.s + w.r - 2, max)) return;
    divided = f.k[w.r - 2] * f.k[w.r - 1];
    last = w.r - 2;
  }
  for (int i = 0; i < last; i++) {
    if (f.k[i] == 1 && f.s[i] == 1) continue;
    if (f.d[i] == 1) {
      if (!pool_axis(im, n, &t, i + 2, f.k[i], f.s[i], max)) return;
      divided *= f.k[i];
    } else if (!pool_taps(im, n, &t, i + 2, f.k[i], f.s[i], f.d[i], f.out[i], max)) return;
  }
  if (max) {
    Value *y = im_result(im, n, DT_F32, nd, d);
    if (y) im_emit(im, y, "%s", t.id);
    return;
  }
  if (lp) {
    Value *y = im_result(im, n, DT_F32, nd, d);
    if (!y) return;
    if (divided == 1) im_emit(im, y, "pow(%s, %.17g)", t.id, 1 / p);
    else im_emit(im, y, "pow(%s * %lld.0, %.17g)", t.id, (long long)divided, 1 / p);
    return;
  }
  // the average: t * divided / (the product of the counts)
  const char *cnt[MAXSP];
  for (int i = 0; i < w.r; i++) {
    cnt[i] = count_tensor(im, n, &w, i, include_pad, nd);
    if (im->failed) return;
  }
  len = snprintf(e, sizeof e, "%s", t.id);
  int64_t num = divided, den = 1;
  for (int i = 0; i < w.r; i++) {
    if (cnt[i]) len += snprintf(e + len, sizeof e - (size_t)len, " / %s", cnt[i]);
    else den *= w.k[i];
  }
  int64_t g = num, h = den;   // num / den in lowest terms
  while (h) {
    int64_t r = g % h;
    g = h;
    h = r;
  }
  num /= g;
  den /= g;
  char sc[64] = "";
  if (num != 1) snprintf(sc, sizeof sc, " * %lld.0", (long long)num);
  if (den != 1) snprintf(sc + strlen(sc), sizeof sc - strlen(sc), " / %lld.0", (long long)den);
  Value *y = im_result(im, n, DT_F32, nd, d);
  if (y) im_emit(im, y, "%s%s", e, sc);
}

// GlobalAveragePool, GlobalMaxPool: a mean or max over the spatial axes, kept.
static void node_global_pool(Importer *im, const Onnx__NodeProto *n, const char *fn) {
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  if (x->ndim < 3 || x->dtype != DT_F32) {
    im_fail(im, "node '%s' (%s): input %s %s; the importer takes a float [N, C, ...]", im_node(n), n->op_type,
            onnx_dtype_word(x->dtype), onnx_shape_str(x->dims, x->ndim));
    return;
  }
  int64_t d[MAX_DIMS], ax[MAX_DIMS];
  for (int i = 0; i < x->ndim; i++) d[i] = i < 2 ? x->dims[i] : 1;
  for (int i = 2; i < x->ndim; i++) ax[i - 2] = i;
  Value *y = im_result(im, n, DT_F32, x->ndim, d);
  if (y) im_emit(im, y, "%s(%s, axis = (%s%s), keep = true)", fn, x->ident, dims_of(ax, x->ndim - 2), x->ndim == 3 ? "," : "");
}

// ---- convolution

// The bias input of a convolution as " + reshape(b, C, 1, ...)" into e; false with a message.
static bool conv_bias(Importer *im, const Onnx__NodeProto *n, int64_t cout, int r, char *e, size_t cap) {
  e[0] = 0;
  if (n->n_input < 3 || !n->input[2][0]) return true;
  Value *b = im_input(im, n, 2);
  if (!b || !im_is_tensor(im, n, b)) return false;
  if (b->ndim != 1 || b->dims[0] != cout) {
    im_fail(im, "node '%s' (%s): bias %s for %lld output channels", im_node(n), n->op_type, onnx_shape_str(b->dims, b->ndim),
            (long long)cout);
    return false;
  }
  if (b->kind == V_SCALAR) {
    snprintf(e, cap, " + %s", im_operand(im, b));
    return true;
  }
  int len = snprintf(e, cap, " + reshape(%s, %lld", b->ident, (long long)cout);
  for (int i = 0; i < r; i++) len += snprintf(e + len, cap - (size_t)len, ", 1");
  snprintf(e + len, cap - (size_t)len, ")");
  return true;
}

// A 3-D convolution as a sum over the kernel's depth taps of 2-D
// convolutions of the depth slices, the depths folded into the batch.
static bool conv3d(Importer *im, const Onnx__NodeProto *n, T *t, const char *wid, const int64_t *wd, const Win *w,
                   int64_t groups) {
  int64_t nb = t->dims[0], c = t->dims[1], od = w->out[0], oc = wd[0];
  int64_t pd[5] = {nb, t->dims[2], c, t->dims[3], t->dims[4]};
  char e[2048];
  snprintf(e, sizeof e, "permute(%s, 0, 2, 1, 3, 4)", t->id);
  T q = *t;
  if (!t_set(im, n, &q, 5, pd, e)) return false;
  int64_t sd[4] = {nb * od, oc, w->out[1], w->out[2]};
  T acc = {0};
  for (int64_t j = 0; j < w->k[0]; j++) {
    int64_t a = j * w->d[0];
    int len = snprintf(e, sizeof e, "conv(reshape(%s[:, %lld:%lld:%lld], %lld, %lld, %lld, %lld), %s[:, :, %lld], stride = (%lld, %lld), "
                       "dilation = (%lld, %lld), groups = %lld)", q.id, (long long)a, (long long)(a + (od - 1) * w->s[0] + 1),
                       (long long)w->s[0], (long long)(nb * od), (long long)c, (long long)pd[3], (long long)pd[4], wid,
                       (long long)j, (long long)w->s[1], (long long)w->s[2], (long long)w->d[1], (long long)w->d[2],
                       (long long)groups);
    if (j) snprintf(e + len, sizeof e - (size_t)len, " + %s", acc.id);
    if (!t_set(im, n, &acc, 4, sd, e)) return false;
  }
  int64_t rd[5] = {nb, od, oc, w->out[1], w->out[2]};
  snprintf(e, sizeof e, "permute(reshape(%s, %s), 0, 2, 1, 3, 4)", acc.id, dims_of(rd, 5));
  int64_t yd[5] = {nb, oc, od, w->out[1], w->out[2]};
  return t_set(im, n, t, 5, yd, e);
}

static void node_conv(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0), *wv = x ? im_input(im, n, 1) : NULL;
  if (!wv || !im_is_tensor(im, n, x) || !im_is_tensor(im, n, wv)) return;
  if (x->dtype != DT_F32 || wv->dtype != DT_F32 || x->ndim != wv->ndim) {
    im_fail(im, "node '%s' (Conv): input %s %s and weight %s %s; the importer takes float tensors of one rank", im_node(n),
            onnx_dtype_word(x->dtype), onnx_shape_str(x->dims, x->ndim), onnx_dtype_word(wv->dtype),
            onnx_shape_str(wv->dims, wv->ndim));
    return;
  }
  Win w;
  if (!win_parse(im, n, &w, x, wv->dims + 2, false)) return;
  int64_t groups = onnx_attr_i(n, "group", 1);
  if (groups < 1 || x->dims[1] % groups || wv->dims[0] % groups || wv->dims[1] * groups != x->dims[1]) {
    im_fail(im, "node '%s' (Conv): input %s, weight %s and group %lld do not agree", im_node(n),
            onnx_shape_str(x->dims, x->ndim), onnx_shape_str(wv->dims, wv->ndim), (long long)groups);
    return;
  }
  int r = w.r, nd = x->ndim;
  int64_t d[MAX_DIMS] = {x->dims[0], wv->dims[0]}, wd[MAX_DIMS];
  for (int i = 0; i < r; i++) d[i + 2] = w.out[i];
  memcpy(wd, wv->dims, sizeof wd);
  const char *wid = wv->ident;
  char bias[600];
  if (!conv_bias(im, n, d[1], r, bias, sizeof bias)) return;
  T t = {.id = x->ident, .nd = nd};
  memcpy(t.dims, x->dims, sizeof t.dims);
  // asymmetric pads (and a 3-D convolution's) are explicit; symmetric ones are conv's own
  bool symmetric = r < 3;
  for (int i = 0; i < r; i++) symmetric &= w.pb[i] == w.pe[i];
  int64_t p[MAXSP] = {0};
  if (symmetric) memcpy(p, w.pb, sizeof p);
  else if (!win_pad(im, n, &t, &w, "0.0")) return;
  char e[2048];
  if (r == 3) {
    if (!conv3d(im, n, &t, wid, wd, &w, groups)) return;
    Value *y = im_result(im, n, DT_F32, nd, d);
    if (y) im_emit(im, y, "%s%s", t.id, bias);
    return;
  }
  if (r == 1) {   // a unit height
    snprintf(e, sizeof e, "reshape(conv(reshape(%s, %lld, %lld, 1, %lld), reshape(%s, %lld, %lld, 1, %lld), stride = (1, %lld), "
             "padding = (0, %lld), dilation = (1, %lld), groups = %lld), %s)%s", t.id, (long long)t.dims[0],
             (long long)t.dims[1], (long long)t.dims[2], wid, (long long)wd[0], (long long)wd[1], (long long)wd[2],
             (long long)w.s[0], (long long)p[0], (long long)w.d[0], (long long)groups, dims_of(d, 3), bias);
  } else {
    snprintf(e, sizeof e, "conv(%s, %s, stride = (%lld, %lld), padding = (%lld, %lld), dilation = (%lld, %lld), groups = %lld)%s",
             t.id, wid, (long long)w.s[0], (long long)w.s[1], (long long)p[0], (long long)p[1], (long long)w.d[0],
             (long long)w.d[1], (long long)groups, bias);
  }
  Value *y = im_result(im, n, DT_F32, nd, d);
  if (y) im_emit(im, y, "%s", e);
}

// The spatial axes of a transposed convolution's full result t cropped to
// [start, start + len); what lies past its end is zeros.
static bool ct_crop(Importer *im, const Onnx__NodeProto *n, T *t, const int64_t *start, const int64_t *len) {
  int64_t cd[MAX_DIMS], zero[MAXSP] = {0};
  memcpy(cd, t->dims, sizeof cd);
  char e[1024], z[512] = "";
  int k = snprintf(e, sizeof e, "%s[:, :", t->id), kz = 0;
  bool pad = false;
  for (int i = 0; i + 2 < t->nd; i++) {
    int64_t f = t->dims[i + 2], lo = start[i] < f ? start[i] : f, hi = start[i] + len[i];
    if (hi > f) {
      zero[i] = hi - f;
      hi = f;
      pad = true;
    }
    cd[i + 2] = hi - lo;
    k += snprintf(e + k, sizeof e - (size_t)k, ", %lld:%lld", (long long)lo, (long long)hi);
    kz += snprintf(z + kz, sizeof z - (size_t)kz, ", (0, %lld)", (long long)zero[i]);
  }
  snprintf(e + k, sizeof e - (size_t)k, "]");
  if (!t_set(im, n, t, t->nd, cd, e)) return false;
  if (!pad) return true;
  for (int i = 0; i + 2 < t->nd; i++) cd[i + 2] += zero[i];
  snprintf(e, sizeof e, "pad(%s, (0, 0), (0, 0)%s)", t->id, z);
  return t_set(im, n, t, t->nd, cd, e);
}

// A 3-D transposed convolution (no padding) as a sum over the kernel's depth
// taps: each a 2-D one of every depth slice (the depth folded into the
// batch), its depths spread `stride` apart (zeros between) and shifted by
// the tap's offset.
static bool ct3d(Importer *im, const Onnx__NodeProto *n, const Value *x, const Value *wv, const int64_t *s, const int64_t *dl,
                 int64_t groups, T *t) {
  int64_t nb = x->dims[0], ci = x->dims[1], dd = x->dims[2], cout = wv->dims[1] * groups;
  int64_t fh = (x->dims[3] - 1) * s[1] + (wv->dims[3] - 1) * dl[1] + 1, fw = (x->dims[4] - 1) * s[2] + (wv->dims[4] - 1) * dl[2] + 1;
  int64_t fdp = (dd - 1) * s[0] + (wv->dims[2] - 1) * dl[0] + 1, m = cout * fh * fw, spread = (dd - 1) * s[0] + 1;
  const char *wid = wv->ident;
  char e[2048];
  int64_t qd[4] = {nb * dd, ci, x->dims[3], x->dims[4]};
  snprintf(e, sizeof e, "reshape(permute(%s, 0, 2, 1, 3, 4), %s)", x->ident, dims_of(qd, 4));
  T q = {.nd = 4};
  if (!t_set(im, n, &q, 4, qd, e)) return false;
  T acc = {.nd = 3};
  for (int64_t j = 0; j < wv->dims[2]; j++) {
    T u = {.nd = 4};
    int64_t ud[4] = {nb * dd, cout, fh, fw}, sd[4] = {nb, dd, s[0], m}, od[3] = {nb, fdp, m};
    snprintf(e, sizeof e, "conv_transpose(%s, %s[:, :, %lld], stride = (%lld, %lld), dilation = (%lld, %lld), groups = %lld)",
             q.id, wid, (long long)j, (long long)s[1], (long long)s[2], (long long)dl[1], (long long)dl[2], (long long)groups);
    if (!t_set(im, n, &u, 4, ud, e)) return false;
    snprintf(e, sizeof e, "pad(reshape(%s, %lld, %lld, 1, %lld), (0, 0), (0, 0), (0, %lld), (0, 0))", u.id, (long long)nb,
             (long long)dd, (long long)m, (long long)(s[0] - 1));
    if (!t_set(im, n, &u, 4, sd, e)) return false;
    int64_t before = j * dl[0];
    int k = snprintf(e, sizeof e, "pad(reshape(%s, %lld, %lld, %lld)[:, 0:%lld], (0, 0), (%lld, %lld), (0, 0))", u.id,
                     (long long)nb, (long long)(dd * s[0]), (long long)m, (long long)spread, (long long)before,
                     (long long)(fdp - spread - before));
    if (j) snprintf(e + k, sizeof e - (size_t)k, " + %s", acc.id);
    if (!t_set(im, n, &acc, 3, od, e)) return false;
  }
  int64_t rd[5] = {nb, fdp, cout, fh, fw}, yd[5] = {nb, cout, fdp, fh, fw};
  snprintf(e, sizeof e, "permute(reshape(%s, %s), 0, 2, 1, 3, 4)", acc.id, dims_of(rd, 5));
  return t_set(im, n, t, 5, yd, e);
}

// ConvTranspose (1-D via a unit height, 2-D): pads from pads, auto_pad or
// output_shape (the spec's total padding, split before/after). Symmetric pads
// with a small output_padding are conv_transpose's own; otherwise the full
// result (no padding) is cropped to [pads before, + out) and zeros go after it.
static void node_conv_transpose(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0), *wv = x ? im_input(im, n, 1) : NULL;
  if (!wv || !im_is_tensor(im, n, x) || !im_is_tensor(im, n, wv)) return;
  int r = x->ndim - 2, nd = x->ndim;
  if (r < 1 || r > 3 || wv->ndim != x->ndim || x->dtype != DT_F32 || wv->dtype != DT_F32) {
    im_fail(im, "node '%s' (ConvTranspose): input %s %s and weight %s; the importer takes float transposed "
            "convolutions of 1 to 3 spatial axes", im_node(n), onnx_dtype_word(x->dtype),
            onnx_shape_str(x->dims, x->ndim), onnx_shape_str(wv->dims, wv->ndim));
    return;
  }
  int64_t groups = onnx_attr_i(n, "group", 1);
  if (groups < 1 || wv->dims[0] != x->dims[1] || x->dims[1] % groups) {
    im_fail(im, "node '%s' (ConvTranspose): input %s, weight %s and group %lld do not agree", im_node(n),
            onnx_shape_str(x->dims, nd), onnx_shape_str(wv->dims, nd), (long long)groups);
    return;
  }
  int64_t k[3], s[3] = {1, 1, 1}, dl[3] = {1, 1, 1}, pb[3] = {0}, pe[3] = {0}, op[3] = {0}, out[3], full[3], v[6];
  memcpy(k, wv->dims + 2, (size_t)r * sizeof *k);
  int c = onnx_attr_ints(n, "kernel_shape", v, 6);
  if (c >= 0 && (c != r || memcmp(v, k, (size_t)r * sizeof *v))) {
    im_fail(im, "node '%s' (ConvTranspose): kernel_shape disagrees with the weight %s", im_node(n), onnx_shape_str(wv->dims, nd));
    return;
  }
  const char *names[4] = {"strides", "dilations", "pads", "output_padding"};
  int64_t *dst[4] = {s, dl, pb, op};
  for (int a = 0; a < 4; a++) {
    if ((c = onnx_attr_ints(n, names[a], v, 6)) < 0) continue;
    if (c != (a == 2 ? 2 * r : r)) {
      im_fail(im, "node '%s' (ConvTranspose): %s must have %d values, not %d", im_node(n), names[a], a == 2 ? 2 * r : r, c);
      return;
    }
    for (int i = 0; i < r; i++) dst[a][i] = v[i];
    if (a == 2)
      for (int i = 0; i < r; i++) pe[i] = v[r + i];
  }
  const Onnx__AttributeProto *ap = onnx_attr(n, "auto_pad");
  bool upper = attr_str_is(ap, "SAME_UPPER"), same = upper || attr_str_is(ap, "SAME_LOWER");
  if (ap && !same && !attr_str_is(ap, "VALID") && !attr_str_is(ap, "NOTSET")) {
    im_fail(im, "node '%s' (ConvTranspose): auto_pad %.*s is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER", im_node(n),
            (int)ap->s.len, (const char *)ap->s.data);
    return;
  }
  int64_t os[MAX_DIMS];
  int nos = onnx_attr_ints(n, "output_shape", os, MAX_DIMS);
  if (nos >= 0 && nos != r && nos != nd) {
    im_fail(im, "node '%s' (ConvTranspose): output_shape has %d values for %d spatial axes", im_node(n), nos, r);
    return;
  }
  bool native = r < 3;
  for (int i = 0; i < r; i++) {
    int64_t in = x->dims[i + 2], ext = (k[i] - 1) * dl[i] + 1;
    if (k[i] < 1 || s[i] < 1 || dl[i] < 1 || op[i] < 0) {
      im_fail(im, "node '%s' (ConvTranspose): a kernel, stride, dilation or output_padding out of range", im_node(n));
      return;
    }
    full[i] = (in - 1) * s[i] + ext;
    if (nos >= 0 || same) {   // the spec's total padding, split as auto_pad says
      out[i] = nos >= 0 ? os[nos - r + i] : in * s[i];
      int64_t total = full[i] + op[i] - out[i];
      int64_t half = total >= 0 ? total / 2 : -((1 - total) / 2);   // floor(total / 2), as the spec's //
      pb[i] = upper ? half : total - half;
      pe[i] = total - pb[i];
    } else {
      if (attr_str_is(ap, "VALID")) pb[i] = pe[i] = 0;
      out[i] = full[i] + op[i] - pb[i] - pe[i];
    }
    if (pb[i] < 0 || out[i] < 1) {
      im_fail(im, "node '%s' (ConvTranspose): pads %lld before spatial axis %d, output size %lld", im_node(n),
              (long long)pb[i], i, (long long)out[i]);
      return;
    }
    native &= pb[i] == pe[i] && (op[i] == 0 || op[i] < s[i] || op[i] < dl[i]);
  }
  int64_t cout = wv->dims[1] * groups, d[MAX_DIMS] = {x->dims[0], cout};
  for (int i = 0; i < r; i++) d[i + 2] = out[i];
  char bias[600], xs[600], ws[600], e[4096];
  if (!conv_bias(im, n, cout, r, bias, sizeof bias)) return;
  if (r == 3) {
    T t;
    if (!ct3d(im, n, x, wv, s, dl, groups, &t) || !ct_crop(im, n, &t, pb, out)) return;
    Value *y = im_result(im, n, DT_F32, nd, d);
    if (y) im_emit(im, y, "%s%s", t.id, bias);
    return;
  }
  // 1-D: a unit height, its stride, padding and dilation 1
  int64_t S[2] = {1, 1}, D[2] = {1, 1}, P[2] = {0, 0}, OP[2] = {0, 0}, F[2] = {1, 1};
  for (int i = 0; i < r; i++) {
    S[2 - r + i] = s[i];
    D[2 - r + i] = dl[i];
    F[2 - r + i] = full[i];
    if (native) {
      P[2 - r + i] = pb[i];
      OP[2 - r + i] = op[i];
    }
  }
  if (r == 1) {
    snprintf(xs, sizeof xs, "reshape(%s, %lld, %lld, 1, %lld)", x->ident, (long long)x->dims[0], (long long)x->dims[1],
             (long long)x->dims[2]);
    snprintf(ws, sizeof ws, "reshape(%s, %lld, %lld, 1, %lld)", wv->ident, (long long)wv->dims[0], (long long)wv->dims[1],
             (long long)wv->dims[2]);
  } else {
    snprintf(xs, sizeof xs, "%s", x->ident);
    snprintf(ws, sizeof ws, "%s", wv->ident);
  }
  snprintf(e, sizeof e, "conv_transpose(%s, %s, stride = (%lld, %lld), padding = (%lld, %lld), output_padding = (%lld, %lld), "
           "dilation = (%lld, %lld), groups = %lld)", xs, ws, (long long)S[0], (long long)S[1], (long long)P[0], (long long)P[1],
           (long long)OP[0], (long long)OP[1], (long long)D[0], (long long)D[1], (long long)groups);
  if (native) {
    Value *y = im_result(im, n, DT_F32, nd, d);
    if (!y) return;
    if (r == 1) im_emit(im, y, "reshape(%s, %s)%s", e, dims_of(d, nd), bias);
    else im_emit(im, y, "%s%s", e, bias);
    return;
  }
  int64_t fd[4] = {x->dims[0], cout, F[0], F[1]};
  T t = {.nd = 4};
  if (!t_set(im, n, &t, 4, fd, e)) return;
  int64_t st[2] = {0, 0}, ln[2] = {1, 1};
  for (int i = 0; i < r; i++) {
    st[2 - r + i] = pb[i];
    ln[2 - r + i] = out[i];
  }
  if (!ct_crop(im, n, &t, st, ln)) return;
  Value *y = im_result(im, n, DT_F32, nd, d);
  if (!y) return;
  if (r == 1) im_emit(im, y, "reshape(%s, %s)%s", t.id, dims_of(d, nd), bias);
  else im_emit(im, y, "%s%s", t.id, bias);
}

// ---- Einsum

// The letters of an Einsum term: a tensor of the model file and, per axis, its letter.
typedef struct {
  T t;
  char l[MAX_DIMS + 1];
} Term;

// t permuted so that its letters read as order (the same letters).
static bool term_permute(Importer *im, const Onnx__NodeProto *n, Term *a, const char *order) {
  if (!strcmp(a->l, order)) return true;
  int64_t perm[MAX_DIMS], d[MAX_DIMS];
  for (int i = 0; order[i]; i++) {
    perm[i] = strchr(a->l, order[i]) - a->l;
    d[i] = a->t.dims[perm[i]];
  }
  char e[1024];
  snprintf(e, sizeof e, "permute(%s, %s)", a->t.id, dims_of(perm, a->t.nd));
  snprintf(a->l, sizeof a->l, "%s", order);
  return t_set(im, n, &a->t, a->t.nd, d, e);
}

// t summed over its letters that keep does not hold.
static bool term_sum(Importer *im, const Onnx__NodeProto *n, Term *a, const char *keep) {
  int64_t ax[MAX_DIMS], d[MAX_DIMS];
  int na = 0, nd = 0;
  char l[MAX_DIMS + 1];
  for (int i = 0; i < a->t.nd; i++) {
    if (strchr(keep, a->l[i])) {
      l[nd] = a->l[i];
      d[nd++] = a->t.dims[i];
    } else ax[na++] = i;
  }
  l[nd] = 0;
  if (!na) return true;
  char e[1024];
  if (nd) snprintf(e, sizeof e, "sum(%s, axis = (%s,))", a->t.id, dims_of(ax, na));
  else snprintf(e, sizeof e, "sum(%s)", a->t.id);
  snprintf(a->l, sizeof a->l, "%s", l);
  return t_set(im, n, &a->t, nd, d, e);
}

// t reshaped to dims (nd of them, with the letters l).
static bool term_reshape(Importer *im, const Onnx__NodeProto *n, Term *a, int nd, const int64_t *dims, const char *l) {
  char e[1024];
  snprintf(e, sizeof e, "reshape(%s, %s)", a->t.id, dims_of(dims, nd));
  snprintf(a->l, sizeof a->l, "%s", l);
  return t_set(im, n, &a->t, nd, dims, e);
}

// The letters of s (of a and b) in the classes: in b, in out.
static void letters(const char *s, const char *b, const char *out, bool in_b, bool in_out, char *dst) {
  int k = 0;
  for (int i = 0; s[i]; i++)
    if ((strchr(b, s[i]) != NULL) == in_b && (strchr(out, s[i]) != NULL) == in_out) dst[k++] = s[i];
  dst[k] = 0;
}

static int64_t letters_numel(const char *l, const int64_t *size) {
  int64_t p = 1;
  for (int i = 0; l[i]; i++) p *= size[(unsigned char)l[i]];
  return p;
}

// Einsum of one or two float operands with letters only (no "...", no
// letter twice in a term): each operand summed over the letters only it
// has, then a batched matmul [batch, M, K] @ [batch, K, N], reshaped and
// permuted to the output's letters.
static void node_einsum(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  const Onnx__AttributeProto *ea = onnx_attr(n, "equation");
  char eq[256], out[MAX_DIMS + 2] = "", terms[2][MAX_DIMS + 2];
  int k = 0, nt = 1, len = 0;
  if (!ea || !ea->has_s || ea->s.len >= sizeof eq) {
    im_fail(im, "node '%s' (Einsum) needs an equation", im_node(n));
    return;
  }
  for (size_t i = 0; i < ea->s.len; i++)
    if (ea->s.data[i] != ' ') eq[k++] = (char)ea->s.data[i];
  eq[k] = 0;
  char *arrow = strstr(eq, "->"), *p = eq;
  bool bad = strchr(eq, '.') != NULL;
  terms[0][0] = terms[1][0] = 0;
  for (; *p && (!arrow || p < arrow) && !bad; p++) {
    if (*p == ',') {
      bad |= nt == 2;
      nt++;
      len = 0;
    } else if (isalpha((unsigned char)*p) && len <= MAX_DIMS && !strchr(terms[nt - 1], *p)) {
      terms[nt - 1][len++] = *p;
      terms[nt - 1][len] = 0;
    } else bad = true;
  }
  if (arrow)
    for (p = arrow + 2, len = 0; *p && !bad; p++) {
      bad |= !isalpha((unsigned char)*p) || len > MAX_DIMS || strchr(out, *p) || (!strchr(terms[0], *p) && !strchr(terms[1], *p));
      out[len++] = *p;
      out[len] = 0;
    }
  else   // implicit: the letters seen once, in alphabetical order
    for (int c = 1, m = 0; c < 128; c++) {
      bool a = strchr(terms[0], c) != NULL, b = nt == 2 && strchr(terms[1], c) != NULL;
      if (a != b) out[m++] = (char)c, out[m] = 0;
    }
  if (bad || (int)n->n_input != nt) {
    im_fail(im, "node '%s' (Einsum): equation '%s' on %zu inputs; the importer takes one or two terms of distinct letters "
            "(no '...', no letter twice in a term)", im_node(n), eq, n->n_input);
    return;
  }
  int64_t size[128] = {0};
  Term a[2];
  for (int i = 0; i < nt; i++) {
    Value *v = im_input(im, n, (size_t)i);
    if (!v || !im_is_tensor(im, n, v)) return;
    bool ok = v->dtype == DT_F32 && v->ndim == (int)strlen(terms[i]);
    for (int j = 0; ok && j < v->ndim; j++) {
      int64_t *s = &size[(unsigned char)terms[i][j]];
      ok = !*s || *s == v->dims[j];
      *s = v->dims[j];
    }
    if (!ok) {
      im_fail(im, "node '%s' (Einsum): input %d, %s %s, does not fit '%s' of '%s' (float tensors, one size per letter)",
              im_node(n), i, onnx_dtype_word(v->dtype), onnx_shape_str(v->dims, v->ndim), terms[i], eq);
      return;
    }
    a[i].t.id = v->ident;
    a[i].t.nd = v->ndim;
    memcpy(a[i].t.dims, v->dims, sizeof a[i].t.dims);
    snprintf(a[i].l, sizeof a[i].l, "%s", terms[i]);
  }
  int od = (int)strlen(out);
  int64_t d[MAX_DIMS];
  for (int i = 0; i < od; i++) d[i] = size[(unsigned char)out[i]];
  if (nt == 1) {
    if (!term_sum(im, n, &a[0], out) || !term_permute(im, n, &a[0], out)) return;
  } else {
    // letters an operand alone has and the output lacks are summed first
    char keep0[2 * MAX_DIMS + 2], keep1[2 * MAX_DIMS + 2];
    snprintf(keep0, sizeof keep0, "%s%s", out, a[1].l);
    snprintf(keep1, sizeof keep1, "%s%s", out, a[0].l);
    if (!term_sum(im, n, &a[0], keep0) || !term_sum(im, n, &a[1], keep1)) return;
    char batch[MAX_DIMS + 1], kk[MAX_DIMS + 1], m[MAX_DIMS + 1], nn[MAX_DIMS + 1], o0[3 * MAX_DIMS + 3], o1[3 * MAX_DIMS + 3];
    letters(a[0].l, a[1].l, out, true, true, batch);
    letters(a[0].l, a[1].l, out, true, false, kk);
    letters(a[0].l, a[1].l, out, false, true, m);
    letters(a[1].l, a[0].l, out, false, true, nn);
    snprintf(o0, sizeof o0, "%s%s%s", batch, m, kk);
    snprintf(o1, sizeof o1, "%s%s%s", batch, kk, nn);
    int64_t bt = letters_numel(batch, size), mt = letters_numel(m, size), kt = letters_numel(kk, size),
            nt2 = letters_numel(nn, size);
    int64_t d0[3] = {bt, mt, kt}, d1[3] = {bt, kt, nt2};
    if (!term_permute(im, n, &a[0], o0) || !term_permute(im, n, &a[1], o1) || !term_reshape(im, n, &a[0], 3, d0, "") ||
        !term_reshape(im, n, &a[1], 3, d1, ""))
      return;
    char e[1024], l[3 * MAX_DIMS + 3];
    snprintf(e, sizeof e, "matmul(%s, %s)", a[0].t.id, a[1].t.id);
    int64_t d2[3] = {bt, mt, nt2}, rd[MAX_DIMS];
    if (!t_set(im, n, &a[0].t, 3, d2, e)) return;
    snprintf(l, sizeof l, "%s%s%s", batch, m, nn);
    int rn = (int)strlen(l);
    for (int i = 0; i < rn; i++) rd[i] = size[(unsigned char)l[i]];
    if (rn && (!term_reshape(im, n, &a[0], rn, rd, l) || !term_permute(im, n, &a[0], out))) return;
    if (!rn) {   // a scalar: the one element of [1, 1, 1]
      snprintf(e, sizeof e, "sum(%s)", a[0].t.id);
      if (!t_set(im, n, &a[0].t, 0, rd, e)) return;
    }
  }
  Value *y = im_result(im, n, DT_F32, od, d);
  if (y) im_emit(im, y, "%s", a[0].t.id);
}

const OnnxOp onnx_nn_ops[] = {
    {"MatMul", node_matmul, NULL},
    {"Gemm", node_gemm, NULL},
    {"Softmax", node_softmax, "softmax"},
    {"LogSoftmax", node_softmax, "log_softmax"},
    {"Conv", node_conv, NULL},
    {"ConvTranspose", node_conv_transpose, NULL},
    {"Einsum", node_einsum, NULL},
    {"MaxPool", node_pool, "max"},
    {"AveragePool", node_pool, "avg"},
    {"LpPool", node_pool, "lp"},
    {"GlobalAveragePool", node_global_pool, "mean"},
    {"GlobalMaxPool", node_global_pool, "max"},
    {NULL, NULL, NULL},
};
