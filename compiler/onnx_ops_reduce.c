// onnx_ops_reduce.c: the ONNX reductions (ReduceSum, ReduceMean, ReduceMax,
// ReduceMin, ReduceProd, ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp,
// ReduceSumSquare), ArgMax and ArgMin, Hardmax, LpNormalization.
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_importer.h"

// Appends to b at *k; past cap, nothing more (the caller checks *k < cap).
static void sapp(char *b, size_t cap, size_t *k, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void sapp(char *b, size_t cap, size_t *k, const char *fmt, ...) {
  if (*k >= cap) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b + *k, cap - *k, fmt, ap);
  va_end(ap);
  *k = n < 0 ? cap : *k + (size_t)n;
}

// The largest float: a max that is infinite (or NaN) is not subtracted in
// ReduceLogSumExp, so a row of -inf gives -inf rather than NaN.
#define FLT_MAX_WORD "3.4028234663852886e38"

// The data input of a node as an expression: its name, or a fill of its
// number for a one-element float constant. False with a message.
static bool data_expr(Importer *im, const Onnx__NodeProto *n, Value *x, char *buf, size_t cap) {
  if (!im_is_tensor(im, n, x)) return false;
  if (x->kind != V_SCALAR) {
    snprintf(buf, cap, "%s", x->ident);
    return true;
  }
  char dims[512];
  onnx_join_ints(dims, sizeof dims, x->dims, x->ndim);
  snprintf(buf, cap, "fill(%s%s%s)", im_operand(im, x), x->ndim ? ", " : "", dims);
  return true;
}

// What a reduction node reduces: the axes (on), whether it keeps them, and
// the result's shape.
typedef struct {
  bool on[MAX_DIMS];
  bool keep, noop;
  char axes[256];   // "(0, 2)": the language's tuple of the reduced axes
  int64_t d[MAX_DIMS];
  int nd;
} Reduction;

// The axes of a reduction: an attribute before opset input_from, the
// optional second input from then on; none (or an empty list) reduces every
// axis unless noop_with_empty_axes (an input-axes attribute) makes it the
// identity. Negative axes count from the end. False with a message.
static bool reduction_of(Importer *im, const Onnx__NodeProto *n, const Value *x, int64_t input_from, Reduction *r) {
  memset(r, 0, sizeof *r);
  bool input_axes = im->opset >= input_from;
  int64_t axes[MAX_DIMS];
  int na = -1;
  if (input_axes) {
    if (n->n_input > 1 && n->input[1][0]) {
      const Value *a = im_ints_input(im, n, 1, "axes");
      if (!a) return false;
      if (a->nints > MAX_DIMS) {
        im_fail(im, "node '%s' (%s): %d axes for a rank-%d input", im_node(n), n->op_type, a->nints, x->ndim);
        return false;
      }
      na = a->nints;
      memcpy(axes, a->ints, (size_t)na * sizeof *axes);
    }
  } else {
    na = onnx_attr_ints(n, "axes", axes, MAX_DIMS);
  }
  r->keep = onnx_attr_i(n, "keepdims", 1) != 0;
  if (na <= 0 && input_axes && onnx_attr_i(n, "noop_with_empty_axes", 0)) {
    r->noop = true;
    r->nd = x->ndim;
    memcpy(r->d, x->dims, (size_t)x->ndim * sizeof *r->d);
    return true;
  }
  if (na <= 0) {
    na = x->ndim;
    for (int i = 0; i < na; i++) axes[i] = i;
  }
  for (int i = 0; i < na; i++) {
    int a = im_axis(im, n, axes[i], x->ndim);
    if (im->failed) return false;
    r->on[a] = true;
  }
  size_t k = 0;
  sapp(r->axes, sizeof r->axes, &k, "(");
  for (int i = 0; i < x->ndim; i++) {
    if (r->on[i]) sapp(r->axes, sizeof r->axes, &k, "%d, ", i);
    if (!r->on[i] || r->keep) r->d[r->nd++] = r->on[i] ? 1 : x->dims[i];
  }
  sapp(r->axes, sizeof r->axes, &k, ")");
  return true;
}

// Emits y from expr, which keeps the reduced axes: as it is, or reshaped to
// drop them when keepdims is 0.
static void emit_reduced(Importer *im, const Value *y, const Reduction *r, const char *expr) {
  if (r->keep) im_emit(im, y, "%s", expr);
  else im_emit_reshape(im, y, expr);
}

// The opset from which each reduction takes its axes as an input.
static int64_t axes_input_from(const char *op) { return !strcmp(op, "sum") ? 13 : 18; }

// The reductions that are one language reduction of an elementwise function
// of x and maybe a function of the result: fn names which.
static void node_reduce(Importer *im, const Onnx__NodeProto *n, const char *fn) {
  Value *x = im_input(im, n, 0);
  char xs[1024];
  if (!x || !data_expr(im, n, x, xs, sizeof xs)) return;
  Reduction r;
  if (!reduction_of(im, n, x, axes_input_from(fn), &r)) return;
  bool is_float = x->dtype == DT_F32;
  bool minmax = !strcmp(fn, "max") || !strcmp(fn, "min");
  bool needs_float = !strcmp(fn, "mean") || !strcmp(fn, "l2") || !strcmp(fn, "log_sum") || !strcmp(fn, "log_sum_exp");
  if ((needs_float && !is_float) || (x->dtype == DT_BOOL && !minmax)) {
    im_fail(im, "node '%s' (%s): a %s input; the importer takes %s", im_node(n), n->op_type, onnx_dtype_word(x->dtype),
            needs_float ? "float inputs only" : "float and integer inputs");
    return;
  }
  Value *y = im_result(im, n, x->dtype, r.nd, r.d);
  if (!y) return;
  if (r.noop) {
    im_emit(im, y, "%s", xs);
    return;
  }
  char e[4096];
  const char *ax = r.axes;
  if (!strcmp(fn, "sum") || !strcmp(fn, "mean")) im_fmt(im, n, e, sizeof e, "%s(%s, axis = %s, keep = true)", fn, xs, ax);
  else if (minmax && x->dtype == DT_BOOL)   // max is any, min is all
    im_fmt(im, n, e, sizeof e, "cast(%s(cast(%s, i32), axis = %s, keep = true), bool)", fn, xs, ax);
  else if (minmax) im_fmt(im, n, e, sizeof e, "%s(%s, axis = %s, keep = true)", fn, xs, ax);
  else if (!strcmp(fn, "l1")) im_fmt(im, n, e, sizeof e, "sum(abs(%s), axis = %s, keep = true)", xs, ax);
  else if (!strcmp(fn, "l2")) im_fmt(im, n, e, sizeof e, "sqrt(sum(%s * %s, axis = %s, keep = true))", xs, xs, ax);
  else if (!strcmp(fn, "sum_square")) im_fmt(im, n, e, sizeof e, "sum(%s * %s, axis = %s, keep = true)", xs, xs, ax);
  else if (!strcmp(fn, "log_sum")) im_fmt(im, n, e, sizeof e, "log(sum(%s, axis = %s, keep = true))", xs, ax);
  else {   // log_sum_exp: m + log(sum(exp(x - m))) with m the finite max (else 0)
    char m[1400];
    im_fmt(im, n, m, sizeof m, "where(abs(max(%s, axis = %s, keep = true)) <= %s, max(%s, axis = %s, keep = true), 0.0)", xs,
             ax, FLT_MAX_WORD, xs, ax);
    im_fmt(im, n, e, sizeof e, "log(sum(exp(%s - %s), axis = %s, keep = true)) + %s", xs, m, ax, m);
  }
  emit_reduced(im, y, &r, e);
}

// ReduceProd: the language has no product reduction, so each reduced axis
// becomes a product of its slices, exact as a multiplication in order; an
// axis longer than PROD_MAX is refused.
#define PROD_MAX 64
static void node_reduce_prod(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  char xs[1024];
  if (!x || !data_expr(im, n, x, xs, sizeof xs)) return;
  Reduction r;
  if (!reduction_of(im, n, x, 18, &r)) return;
  if (x->dtype == DT_BOOL) {
    im_fail(im, "node '%s' (ReduceProd): a bool input; the importer takes float and integer inputs", im_node(n));
    return;
  }
  for (int i = 0; i < x->ndim && !r.noop; i++)
    if (r.on[i] && (x->dims[i] > PROD_MAX || x->dims[i] < 1)) {
      im_fail(im, "node '%s' (ReduceProd): axis %d has %lld elements; the importer multiplies the slices of axes of "
              "1 to %d elements (the model language has no product reduction)", im_node(n), i,
              (long long)x->dims[i], PROD_MAX);
      return;
    }
  Value *y = im_result(im, n, x->dtype, r.nd, r.d);
  if (!y) return;
  if (r.noop) {
    im_emit(im, y, "%s", xs);
    return;
  }
  size_t cap = 1 << 16;
  char *e = xmalloc(cap), *t = xmalloc(cap);
  snprintf(e, cap, "%s", xs);
  for (int i = 0; i < x->ndim; i++) {
    if (!r.on[i]) continue;
    size_t k = 0;
    for (int64_t j = 0; j < x->dims[i]; j++) {
      sapp(t, cap, &k, "%s(%s)[", j ? " * " : "", e);
      for (int a = 0; a < i; a++) sapp(t, cap, &k, ":, ");
      sapp(t, cap, &k, "%lld:%lld]", (long long)j, (long long)j + 1);
    }
    if (k >= cap) {
      im_fail(im, "node '%s' (ReduceProd): the product is too long an expression", im_node(n));
      break;
    }
    memcpy(e, t, k + 1);
  }
  if (!im->failed) emit_reduced(im, y, &r, e);
  free(e);
  free(t);
}

// "x[:, :, ::-1]": x reversed along axis.
static void reversed(char *b, size_t cap, const char *x, int axis) {
  size_t k = 0;
  sapp(b, cap, &k, "(%s)[", x);
  for (int a = 0; a < axis; a++) sapp(b, cap, &k, ":, ");
  sapp(b, cap, &k, "::-1]");
}

// ArgMax and ArgMin: int64 indices along axis (default 0), the first of
// equal elements, or the last with select_last_index (from opset 12; the
// first index of the reversed axis counted from the end). ArgMin is the
// first maximum of -x for floats (NaN stays the maximum, as numpy's), of
// x == min(x) for integers and bools.
static void node_arg(Importer *im, const Onnx__NodeProto *n, const char *fn) {
  Value *x = im_input(im, n, 0);
  char xs[1024];
  if (!x || !data_expr(im, n, x, xs, sizeof xs)) return;
  if (x->ndim == 0) {
    im_fail(im, "node '%s' (%s): a rank-0 input has no axis", im_node(n), n->op_type);
    return;
  }
  int axis = im_axis(im, n, onnx_attr_i(n, "axis", 0), x->ndim);
  if (im->failed) return;
  bool keep = onnx_attr_i(n, "keepdims", 1) != 0, last = im->opset >= 12 && onnx_attr_i(n, "select_last_index", 0);
  int64_t d[MAX_DIMS];
  int nd = 0;
  for (int i = 0; i < x->ndim; i++)
    if (i != axis || keep) d[nd++] = i == axis ? 1 : x->dims[i];
  Value *y = im_result(im, n, DT_I64, nd, d);
  if (!y) return;
  char src[1200], e[4096];
  if (last) reversed(src, sizeof src, xs, axis);
  else im_fmt(im, n, src, sizeof src, "%s", xs);
  bool is_min = !strcmp(fn, "min");
  char key[3000];
  if (x->dtype == DT_F32) {
    im_fmt(im, n, key, sizeof key, "%s%s", is_min ? "-" : "", src);
  } else {   // an indicator of the extreme, so that no integer is negated
    char si[1300];
    im_fmt(im, n, si, sizeof si, x->dtype == DT_BOOL ? "cast(%s, i32)" : "%s", src);
    im_fmt(im, n, key, sizeof key, "cast(%s == %s(%s, axis = %d, keep = true), i32)", si, fn, si, axis);
  }
  im_fmt(im, n, e, sizeof e, "cast(argmax(%s, axis = %d, keep = true), i64)", key, axis);
  if (last) {
    char t[4096];
    im_fmt(im, n, t, sizeof t, "%lld - %s", (long long)x->dims[axis] - 1, e);
    memcpy(e, t, sizeof e);
  }
  if (keep) im_emit(im, y, "%s", e);
  else im_emit_reshape(im, y, e);
}

// "reshape(iota(n), 1, n, 1)": the positions along axis of a rank-nd
// tensor, to compare with an argmax kept at axis.
static void positions(char *b, size_t cap, int64_t len, int axis, int nd) {
  size_t k = 0;
  sapp(b, cap, &k, "reshape(iota(%lld)", (long long)len);
  for (int i = 0; i < nd; i++) sapp(b, cap, &k, ", %lld", i == axis ? (long long)len : 1LL);
  sapp(b, cap, &k, ")");
}

// Hardmax: 1 at the first maximum along axis, 0 elsewhere. From opset 13
// one axis (default -1); before, the input is coerced to 2-D at axis
// (default 1) and the second part is the axis.
static void node_hardmax(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  char xs[1024];
  if (!x || !data_expr(im, n, x, xs, sizeof xs)) return;
  if (x->dtype != DT_F32 || x->ndim == 0) {
    im_fail(im, "node '%s' (Hardmax): the importer takes a float input of rank 1 or more, not %s%s", im_node(n),
            onnx_dtype_word(x->dtype), onnx_shape_str(x->dims, x->ndim));
    return;
  }
  bool old = im->opset < 13;
  int axis = im_axis(im, n, onnx_attr_i(n, "axis", old ? 1 : -1), x->ndim);
  if (im->failed) return;
  Value *y = im_result(im, n, DT_F32, x->ndim, x->dims);
  if (!y) return;
  char src[1200], pos[256], e[4096];
  int a = axis, nd = x->ndim;
  int64_t len = x->dims[axis];
  if (old) {   // rows = dims before axis, cols = the rest
    int64_t rows = onnx_numel(x->dims, axis);
    len = onnx_numel(x->dims + axis, x->ndim - axis);
    im_fmt(im, n, src, sizeof src, "reshape(%s, %lld, %lld)", xs, (long long)rows, (long long)len);
    a = 1;
    nd = 2;
  } else {
    im_fmt(im, n, src, sizeof src, "%s", xs);
  }
  positions(pos, sizeof pos, len, a, nd);
  im_fmt(im, n, e, sizeof e, "cast(%s == argmax(%s, axis = %d, keep = true), f32)", pos, src, a);
  if (old) im_emit_reshape(im, y, e);
  else im_emit(im, y, "%s", e);
}

// LpNormalization: x / ||x||_p along axis (default -1), p 1 or 2 (default
// 2); a zero norm gives 0, as the reference does.
static void node_lpnorm(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  char xs[1024];
  if (!x || !data_expr(im, n, x, xs, sizeof xs)) return;
  if (x->dtype != DT_F32 || x->ndim == 0) {
    im_fail(im, "node '%s' (LpNormalization): the importer takes a float input of rank 1 or more", im_node(n));
    return;
  }
  int axis = im_axis(im, n, onnx_attr_i(n, "axis", -1), x->ndim);
  int64_t p = onnx_attr_i(n, "p", 2);
  if (im->failed) return;
  if (p != 1 && p != 2) {
    im_fail(im, "node '%s' (LpNormalization): p %lld; the spec allows 1 and 2", im_node(n), (long long)p);
    return;
  }
  Value *y = im_result(im, n, DT_F32, x->ndim, x->dims);
  if (!y) return;
  char norm[2600];
  if (p == 1) im_fmt(im, n, norm, sizeof norm, "sum(abs(%s), axis = %d, keep = true)", xs, axis);
  else im_fmt(im, n, norm, sizeof norm, "sqrt(sum(%s * %s, axis = %d, keep = true))", xs, xs, axis);
  im_emit(im, y, "where(%s == 0.0, 0.0, %s / %s)", norm, xs, norm);
}

const OnnxOp onnx_reduce_ops[] = {
    {"ReduceMean", node_reduce, "mean"},
    {"ReduceSum", node_reduce, "sum"},
    {"ReduceMax", node_reduce, "max"},
    {"ReduceMin", node_reduce, "min"},
    {"ReduceL1", node_reduce, "l1"},
    {"ReduceL2", node_reduce, "l2"},
    {"ReduceSumSquare", node_reduce, "sum_square"},
    {"ReduceLogSum", node_reduce, "log_sum"},
    {"ReduceLogSumExp", node_reduce, "log_sum_exp"},
    {"ReduceProd", node_reduce_prod, NULL},
    {"ArgMax", node_arg, "max"},
    {"ArgMin", node_arg, "min"},
    {"Hardmax", node_hardmax, NULL},
    {"LpNormalization", node_lpnorm, NULL},
    {NULL, NULL, NULL},
};
