// onnx_ops_nn.c: the ONNX ops of networks: MatMul, Gemm, Softmax, convolution
// and pooling.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_importer.h"

static void node_matmul(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *a = im_input(im, n, 0), *b = a ? im_input(im, n, 1) : NULL;
  if (!b || !im_is_tensor(im, n, a) || !im_is_tensor(im, n, b)) return;
  if (a->ndim < 2 || b->ndim < 2 || a->kind == V_SCALAR || b->kind == V_SCALAR) {
    im_fail(im, "node '%s' (MatMul): operands %s and %s; the importer takes operands of rank 2 or more", im_node(n),
         onnx_shape_str(a->dims, a->ndim), onnx_shape_str(b->dims, b->ndim));
    return;
  }
  int64_t k1 = a->dims[a->ndim - 1], k2 = b->dims[b->ndim - 2];
  Value ba = *a, bb = *b;
  ba.ndim -= 2;
  bb.ndim -= 2;
  int64_t d[MAX_DIMS];
  int nd;
  if (k1 != k2 || !onnx_broadcast(&ba, &bb, d, &nd)) {
    im_fail(im, "node '%s' (MatMul): shapes %s and %s do not multiply", im_node(n), onnx_shape_str(a->dims, a->ndim),
         onnx_shape_str(b->dims, b->ndim));
    return;
  }
  d[nd++] = a->dims[a->ndim - 2];
  d[nd++] = b->dims[b->ndim - 1];
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

typedef struct {
  int64_t kernel[2], stride[2], pad[2], dil[2];
} Window;

static bool window(Importer *im, const Onnx__NodeProto *n, Window *w, bool kernel_attr) {
  const Onnx__AttributeProto *ap = onnx_attr(n, "auto_pad");
  if (ap && ap->has_s && !(ap->s.len == 6 && !memcmp(ap->s.data, "NOTSET", 6))) {
    im_fail(im, "node '%s' (%s): auto_pad %.*s; the importer takes explicit pads (NOTSET) only", im_node(n), n->op_type,
         (int)ap->s.len, (const char *)ap->s.data);
    return false;
  }
  if (onnx_attr_i(n, "ceil_mode", 0)) {
    im_fail(im, "node '%s' (%s): ceil_mode 1 is not supported yet", im_node(n), n->op_type);
    return false;
  }
  int64_t v[8];
  if (kernel_attr && onnx_attr_ints(n, "kernel_shape", w->kernel, 2) != 2) {
    im_fail(im, "node '%s' (%s) needs a 2-D kernel_shape", im_node(n), n->op_type);
    return false;
  }
  w->stride[0] = w->stride[1] = 1;
  w->dil[0] = w->dil[1] = 1;
  w->pad[0] = w->pad[1] = 0;
  int k = onnx_attr_ints(n, "strides", v, 8);
  if (k == 2) memcpy(w->stride, v, sizeof w->stride);
  else if (k >= 0) return im_fail(im, "node '%s' (%s): strides must have 2 values", im_node(n), n->op_type), false;
  k = onnx_attr_ints(n, "dilations", v, 8);
  if (k == 2) memcpy(w->dil, v, sizeof w->dil);
  else if (k >= 0) return im_fail(im, "node '%s' (%s): dilations must have 2 values", im_node(n), n->op_type), false;
  k = onnx_attr_ints(n, "pads", v, 8);
  if (k == 4) {
    if (v[0] != v[2] || v[1] != v[3]) {
      im_fail(im, "node '%s' (%s): pads [%lld, %lld, %lld, %lld] are not symmetric, which is not supported yet", im_node(n),
           n->op_type, (long long)v[0], (long long)v[1], (long long)v[2], (long long)v[3]);
      return false;
    }
    w->pad[0] = v[0];
    w->pad[1] = v[1];
  } else if (k >= 0) return im_fail(im, "node '%s' (%s): pads must have 4 values", im_node(n), n->op_type), false;
  return true;
}

static int64_t window_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

static void node_conv(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0), *w = x ? im_input(im, n, 1) : NULL;
  if (!w || !im_is_tensor(im, n, x) || !im_is_tensor(im, n, w)) return;
  if (x->ndim != 4 || w->ndim != 4) {
    im_fail(im, "node '%s' (Conv): the importer takes 2-D convolutions (4-D input and weight), not %s and %s", im_node(n),
         onnx_shape_str(x->dims, x->ndim), onnx_shape_str(w->dims, w->ndim));
    return;
  }
  Window win;
  if (!window(im, n, &win, false)) return;
  int64_t ks[2];
  if (onnx_attr_ints(n, "kernel_shape", ks, 2) == 2 && (ks[0] != w->dims[2] || ks[1] != w->dims[3])) {
    im_fail(im, "node '%s' (Conv): kernel_shape disagrees with the weight %s", im_node(n), onnx_shape_str(w->dims, 4));
    return;
  }
  int64_t groups = onnx_attr_i(n, "group", 1);
  if (groups < 1 || x->dims[1] % groups || w->dims[0] % groups || w->dims[1] * groups != x->dims[1]) {
    im_fail(im, "node '%s' (Conv): input %s, weight %s and group %lld do not agree", im_node(n), onnx_shape_str(x->dims, 4),
         onnx_shape_str(w->dims, 4), (long long)groups);
    return;
  }
  int64_t d[4] = {x->dims[0], w->dims[0], window_out(x->dims[2], w->dims[2], win.stride[0], win.pad[0], win.dil[0]),
                  window_out(x->dims[3], w->dims[3], win.stride[1], win.pad[1], win.dil[1])};
  if (d[2] < 1 || d[3] < 1) {
    im_fail(im, "node '%s' (Conv): the window does not fit the input %s", im_node(n), onnx_shape_str(x->dims, 4));
    return;
  }
  char expr[1024];
  int len = snprintf(expr, sizeof expr, "conv(%s, %s, stride = (%lld, %lld), padding = (%lld, %lld), dilation = (%lld, %lld), groups = %lld)",
                     x->ident, w->ident, (long long)win.stride[0], (long long)win.stride[1], (long long)win.pad[0],
                     (long long)win.pad[1], (long long)win.dil[0], (long long)win.dil[1], (long long)groups);
  if (n->n_input > 2 && n->input[2][0]) {
    Value *b = im_input(im, n, 2);
    if (!b || !im_is_tensor(im, n, b)) return;
    if (b->ndim != 1 || b->dims[0] != d[1]) {
      im_fail(im, "node '%s' (Conv): bias %s for %lld output channels", im_node(n), onnx_shape_str(b->dims, b->ndim),
           (long long)d[1]);
      return;
    }
    if (b->kind == V_SCALAR) snprintf(expr + len, sizeof expr - (size_t)len, " + %s", im_operand(im, b));
    else snprintf(expr + len, sizeof expr - (size_t)len, " + reshape(%s, %lld, 1, 1)", b->ident, (long long)d[1]);
  }
  Value *y = im_result(im, n, DT_F32, 4, d);
  if (y) im_emit(im, y, "%s", expr);
}

static void node_pool(Importer *im, const Onnx__NodeProto *n, const char *kind) {
  bool max = !strcmp(kind, "max");
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  if (x->ndim != 4) {
    im_fail(im, "node '%s' (%s): the importer takes 2-D pooling (a 4-D input), not %s", im_node(n), n->op_type,
         onnx_shape_str(x->dims, x->ndim));
    return;
  }
  if (n->n_output > 1) {
    im_fail(im, "node '%s' (%s): the Indices output is not supported", im_node(n), n->op_type);
    return;
  }
  Window w;
  if (!window(im, n, &w, true)) return;
  if (w.dil[0] != 1 || w.dil[1] != 1) {
    im_fail(im, "node '%s' (%s): dilations are not supported for pooling yet", im_node(n), n->op_type);
    return;
  }
  if (!max && (w.pad[0] || w.pad[1]) && !onnx_attr_i(n, "count_include_pad", 0)) {
    im_fail(im, "node '%s' (AveragePool): pads with count_include_pad 0 are not supported yet", im_node(n));
    return;
  }
  if (2 * w.pad[0] > w.kernel[0] || 2 * w.pad[1] > w.kernel[1]) {
    im_fail(im, "node '%s' (%s): pads larger than half the window", im_node(n), n->op_type);
    return;
  }
  int64_t d[4] = {x->dims[0], x->dims[1], window_out(x->dims[2], w.kernel[0], w.stride[0], w.pad[0], 1),
                  window_out(x->dims[3], w.kernel[1], w.stride[1], w.pad[1], 1)};
  if (d[2] < 1 || d[3] < 1) {
    im_fail(im, "node '%s' (%s): the window does not fit the input %s", im_node(n), n->op_type, onnx_shape_str(x->dims, 4));
    return;
  }
  Value *y = im_result(im, n, DT_F32, 4, d);
  if (y)
    im_emit(im, y, "%s(%s, (%lld, %lld), stride = (%lld, %lld), padding = (%lld, %lld))", max ? "pool_max" : "pool_avg",
         x->ident, (long long)w.kernel[0], (long long)w.kernel[1], (long long)w.stride[0], (long long)w.stride[1],
         (long long)w.pad[0], (long long)w.pad[1]);
}

const OnnxOp onnx_nn_ops[] = {
    {"MatMul", node_matmul, NULL},
    {"Gemm", node_gemm, NULL},
    {"Softmax", node_softmax, "softmax"},
    {"LogSoftmax", node_softmax, "log_softmax"},
    {"Conv", node_conv, NULL},
    {"MaxPool", node_pool, "max"},
    {"AveragePool", node_pool, "avg"},
    {NULL, NULL, NULL},
};
