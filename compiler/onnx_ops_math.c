// onnx_ops_math.c: the elementwise ONNX ops: arithmetic, comparisons, the unary
// functions, Where and Cast.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_importer.h"

static void node_binary(Importer *im, const Onnx__NodeProto *n, const char *op, bool compare) {
  Value *a = im_input(im, n, 0), *b = a ? im_input(im, n, 1) : NULL;
  if (!b || !im_is_tensor(im, n, a) || !im_is_tensor(im, n, b)) return;
  int64_t d[MAX_DIMS];
  int nd;
  if (!onnx_broadcast(a, b, d, &nd)) {
    im_fail(im, "node '%s' (%s): shapes %s and %s do not broadcast", im_node(n), n->op_type, onnx_shape_str(a->dims, a->ndim),
         onnx_shape_str(b->dims, b->ndim));
    return;
  }
  if (!compare && (a->dtype != DT_F32 || b->dtype != DT_F32)) {
    im_fail(im, "node '%s' (%s): %s and %s operands; the importer does arithmetic on float tensors only", im_node(n),
         n->op_type, onnx_dtype_word(a->dtype), onnx_dtype_word(b->dtype));
    return;
  }
  if (a->kind == V_SCALAR && b->kind == V_SCALAR) {
    im_fail(im, "node '%s' (%s) has two constant operands; fold it before importing", im_node(n), n->op_type);
    return;
  }
  Value *y = im_result(im, n, compare ? DT_BOOL : a->kind == V_SCALAR ? b->dtype : a->dtype, nd, d);
  if (!y) return;
  if (!strcmp(op, "pow")) im_emit(im, y, "pow(%s, %s)", im_operand(im, a), im_operand(im, b));
  else im_emit(im, y, "%s %s %s", im_operand(im, a), op, im_operand(im, b));
}

static void node_arith(Importer *im, const Onnx__NodeProto *n, const char *op) { node_binary(im, n, op, false); }
static void node_compare(Importer *im, const Onnx__NodeProto *n, const char *op) { node_binary(im, n, op, true); }

static void node_unary(Importer *im, const Onnx__NodeProto *n, const char *fn) {
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  if (x->kind == V_SCALAR) {
    im_fail(im, "node '%s' (%s) has a constant operand; fold it before importing", im_node(n), n->op_type);
    return;
  }
  Value *y = im_result(im, n, x->dtype, x->ndim, x->dims);
  if (!y) return;
  if (!strcmp(fn, "-")) im_emit(im, y, "-%s", x->ident);
  else if (!fn[0]) im_emit(im, y, "%s", x->ident);
  else im_emit(im, y, "%s(%s)", fn, x->ident);
}

static void node_where(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *c = im_input(im, n, 0), *a = c ? im_input(im, n, 1) : NULL, *b = a ? im_input(im, n, 2) : NULL;
  if (!b || !im_is_tensor(im, n, c) || !im_is_tensor(im, n, a) || !im_is_tensor(im, n, b)) return;
  int64_t d1[MAX_DIMS], d[MAX_DIMS];
  int n1, nd;
  Value tmp = {.ndim = 0};
  bool ok = onnx_broadcast(c, a, d1, &n1);
  if (ok) {
    tmp.ndim = n1;
    memcpy(tmp.dims, d1, sizeof d1);
    ok = onnx_broadcast(&tmp, b, d, &nd);
  }
  if (!ok) {
    im_fail(im, "node '%s' (Where): shapes %s, %s and %s do not broadcast", im_node(n), onnx_shape_str(c->dims, c->ndim),
         onnx_shape_str(a->dims, a->ndim), onnx_shape_str(b->dims, b->ndim));
    return;
  }
  Value *y = im_result(im, n, a->kind == V_SCALAR ? b->dtype : a->dtype, nd, d);
  if (y) im_emit(im, y, "where(%s, %s, %s)", im_operand(im, c), im_operand(im, a), im_operand(im, b));
}

static void node_cast(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  if (onnx_attr_i(n, "to", 0) != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
    im_fail(im, "node '%s' (Cast): to ONNX data type %lld; the importer casts to float (1) only", im_node(n),
         (long long)onnx_attr_i(n, "to", 0));
    return;
  }
  Value *y = im_result(im, n, DT_F32, x->ndim, x->dims);
  if (y) im_emit(im, y, "cast(%s, f32)", x->ident);
}

// The spatial attributes of a 2-D convolution or pooling: kernel, strides,
// symmetric pads, dilations. False with a message for what has no equivalent.

const OnnxOp onnx_math_ops[] = {
    {"Add", node_arith, "+"},
    {"Sub", node_arith, "-"},
    {"Mul", node_arith, "*"},
    {"Div", node_arith, "/"},
    {"Pow", node_arith, "pow"},
    {"Equal", node_compare, "=="},
    {"Less", node_compare, "<"},
    {"Greater", node_compare, ">"},
    {"Relu", node_unary, "relu"},
    {"Sigmoid", node_unary, "sigmoid"},
    {"Tanh", node_unary, "tanh"},
    {"Exp", node_unary, "exp"},
    {"Log", node_unary, "log"},
    {"Sqrt", node_unary, "sqrt"},
    {"Abs", node_unary, "abs"},
    {"Erf", node_unary, "erf"},
    {"Neg", node_unary, "-"},
    {"Identity", node_unary, ""},
    {"Where", node_where, NULL},
    {"Cast", node_cast, NULL},
    {NULL, NULL, NULL},
};
