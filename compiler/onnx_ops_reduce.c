// onnx_ops_reduce.c: the ONNX reductions.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_importer.h"

// ReduceMean and ReduceSum: axes an attribute (ReduceSum before 13,
// ReduceMean before 18) or the second input; keepdims (default 1);
// noop_with_empty_axes. Several axes reduce one after the other, kept, and a
// reshape drops them when keepdims is 0.
static void node_reduce(Importer *im, const Onnx__NodeProto *n, const char *fn) {
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  bool input_axes = !strcmp(fn, "sum") ? im->opset >= 13 : im->opset >= 18;
  int64_t axes[MAX_DIMS];
  int na = -1;
  if (input_axes) {
    if (n->n_input > 1 && n->input[1][0]) {
      const Value *a = im_ints_input(im, n, 1, "axes");
      if (!a) return;
      na = a->nints < MAX_DIMS ? a->nints : MAX_DIMS;
      memcpy(axes, a->ints, (size_t)na * sizeof *axes);
    }
  } else {
    na = onnx_attr_ints(n, "axes", axes, MAX_DIMS);
  }
  bool keep = onnx_attr_i(n, "keepdims", 1);
  if (na <= 0) {
    if (input_axes && onnx_attr_i(n, "noop_with_empty_axes", 0)) {
      Value *y = im_result(im, n, x->dtype, x->ndim, x->dims);
      if (y) im_emit(im, y, "%s", x->ident);
      return;
    }
    na = x->ndim;
    for (int i = 0; i < na; i++) axes[i] = i;
  }
  bool on[MAX_DIMS] = {0};
  for (int i = 0; i < na; i++) {
    int a = im_axis(im, n, axes[i], x->ndim);
    if (im->failed) return;
    on[a] = true;
  }
  int64_t d[MAX_DIMS], kd[MAX_DIMS];
  int nd = 0;
  for (int i = 0; i < x->ndim; i++) {
    kd[i] = on[i] ? 1 : x->dims[i];
    if (!on[i] || keep) d[nd++] = kd[i];
  }
  char expr[4096];
  snprintf(expr, sizeof expr, "%s", x->ident);
  for (int i = x->ndim - 1; i >= 0; i--)
    if (on[i]) {
      char tmp[4200];
      snprintf(tmp, sizeof tmp, "%s(%s, axis = %d, keep = true)", fn, expr, i);
      memcpy(expr, tmp, sizeof expr);
    }
  Value *y = im_result(im, n, x->dtype, nd, d);
  if (!y) return;
  if (keep) {
    im_emit(im, y, "%s", expr);
  } else {
    char dims[512];
    onnx_join_ints(dims, sizeof dims, d, nd);
    im_emit(im, y, "reshape(%s%s%s)", expr, nd ? ", " : "", dims);
  }
}

const OnnxOp onnx_reduce_ops[] = {
    {"ReduceMean", node_reduce, "mean"},
    {"ReduceSum", node_reduce, "sum"},
    {NULL, NULL, NULL},
};
