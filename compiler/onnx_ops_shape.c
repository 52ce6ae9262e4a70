// onnx_ops_shape.c: the ONNX ops that move data: Reshape, Flatten, Transpose,
// Concat and Gather.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_importer.h"

static void node_reshape(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  int64_t d[MAX_DIMS];
  int nd;
  if (im->opset < 5) {
    nd = onnx_attr_ints(n, "shape", d, MAX_DIMS);
  } else {
    const Value *s = im_ints_input(im, n, 1, "shape");
    if (!s) return;
    if (s->nints > MAX_DIMS) {
      im_fail(im, "node '%s' (Reshape): a shape of %d dimensions (at most %d)", im_node(n), s->nints, MAX_DIMS);
      return;
    }
    nd = s->nints;
    memcpy(d, s->ints, (size_t)nd * sizeof *d);
  }
  bool allowzero = onnx_attr_i(n, "allowzero", 0);
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < nd; i++) {
    if (d[i] == 0 && !allowzero) {
      if (i >= x->ndim) {
        im_fail(im, "node '%s' (Reshape): 0 at dimension %d copies a dimension %s does not have", im_node(n), i,
             onnx_shape_str(x->dims, x->ndim));
        return;
      }
      d[i] = x->dims[i];
    }
    if (d[i] == -1) {
      if (infer >= 0) {
        im_fail(im, "node '%s' (Reshape): more than one -1 in the shape", im_node(n));
        return;
      }
      infer = i;
    } else if (d[i] < 0) {
      im_fail(im, "node '%s' (Reshape): dimension %lld in the shape", im_node(n), (long long)d[i]);
      return;
    } else known *= d[i];
  }
  int64_t total = onnx_numel(x->dims, x->ndim);
  if (infer >= 0) d[infer] = known ? total / known : 0;
  if (onnx_numel(d, nd) != total) {
    im_fail(im, "node '%s' (Reshape): %s cannot take the shape %s", im_node(n), onnx_shape_str(x->dims, x->ndim),
         onnx_shape_str(d, nd));
    return;
  }
  Value *y = im_result(im, n, x->dtype, nd, d);
  if (y) im_emit_reshape(im, y, x->ident);
}

static void node_flatten(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  int64_t axis = onnx_attr_i(n, "axis", 1);
  int a = axis == x->ndim ? x->ndim : im_axis(im, n, axis, x->ndim);
  if (im->failed) return;
  int64_t d[2] = {onnx_numel(x->dims, a), onnx_numel(x->dims + a, x->ndim - a)};
  Value *y = im_result(im, n, x->dtype, 2, d);
  if (y) im_emit_reshape(im, y, x->ident);
}

static void node_transpose(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  int64_t perm[MAX_DIMS];
  int np = onnx_attr_ints(n, "perm", perm, MAX_DIMS);
  if (np < 0) {
    np = x->ndim;
    for (int i = 0; i < np; i++) perm[i] = np - 1 - i;
  }
  bool seen[MAX_DIMS] = {0};
  bool ok = np == x->ndim;
  for (int i = 0; i < np && ok; i++) {
    ok = perm[i] >= 0 && perm[i] < x->ndim && !seen[perm[i]];
    if (ok) seen[perm[i]] = true;
  }
  if (!ok) {
    char p[256];
    onnx_join_ints(p, sizeof p, perm, np);
    im_fail(im, "node '%s' (Transpose): perm [%s] is not a permutation of the %d axes of %s", im_node(n), p, x->ndim,
         onnx_shape_str(x->dims, x->ndim));
    return;
  }
  int64_t d[MAX_DIMS];
  for (int i = 0; i < np; i++) d[i] = x->dims[perm[i]];
  Value *y = im_result(im, n, x->dtype, np, d);
  char p[256];
  onnx_join_ints(p, sizeof p, perm, np);
  if (y) im_emit(im, y, "permute(%s, %s)", x->ident, p);
}

static void node_concat(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  if (n->n_input < 1) {
    im_fail(im, "node '%s' (Concat) has no inputs", im_node(n));
    return;
  }
  Value *first = im_input(im, n, 0);
  if (!first || !im_is_tensor(im, n, first)) return;
  int axis = im_axis(im, n, onnx_attr_i(n, "axis", 0), first->ndim);
  if (im->failed) return;
  int64_t d[MAX_DIMS];
  memcpy(d, first->dims, sizeof d);
  char list[2048];
  size_t k = (size_t)snprintf(list, sizeof list, "%s", first->ident);
  for (size_t i = 1; i < n->n_input; i++) {
    Value *v = im_input(im, n, i);
    if (!v || !im_is_tensor(im, n, v)) return;
    bool ok = v->ndim == first->ndim && v->kind != V_SCALAR;
    for (int j = 0; j < v->ndim && ok; j++) ok = j == axis || v->dims[j] == first->dims[j];
    if (!ok) {
      im_fail(im, "node '%s' (Concat): %s and %s differ outside axis %d", im_node(n), onnx_shape_str(first->dims, first->ndim),
           onnx_shape_str(v->dims, v->ndim), axis);
      return;
    }
    d[axis] += v->dims[axis];
    k += (size_t)snprintf(list + k, sizeof list - k, ", %s", v->ident);
    if (k >= sizeof list) {
      im_fail(im, "node '%s' (Concat) has more inputs than the importer writes in one call", im_node(n));
      return;
    }
  }
  Value *y = im_result(im, n, first->dtype, first->ndim, d);
  if (y) im_emit(im, y, n->n_input == 1 ? "%s%.0d" : "concat(%s, axis = %d)", list, axis);
}

static void node_gather(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *t = im_input(im, n, 0), *ids = t ? im_input(im, n, 1) : NULL;
  if (!ids) return;
  if (t->kind != V_PARAM || t->ndim != 2 || onnx_attr_i(n, "axis", 0) != 0) {
    im_fail(im, "node '%s' (Gather): the importer takes rows (axis 0) of a 2-D float initializer; '%s' is %s, axis %lld",
         im_node(n), t->onnx, onnx_shape_str(t->dims, t->ndim), (long long)onnx_attr_i(n, "axis", 0));
    return;
  }
  if (ids->kind != V_INPUT && ids->kind != V_LET) {
    im_fail(im, "node '%s' (Gather): its indices '%s' must be an input or a node's result", im_node(n), ids->onnx);
    return;
  }
  if (ids->dtype != DT_I64 && ids->dtype != DT_I32) {
    im_fail(im, "node '%s' (Gather): its indices '%s' are %s, not integers", im_node(n), ids->onnx, onnx_dtype_word(ids->dtype));
    return;
  }
  int64_t d[MAX_DIMS];
  memcpy(d, ids->dims, (size_t)ids->ndim * sizeof *d);
  d[ids->ndim] = t->dims[1];
  Value *y = im_result(im, n, DT_F32, ids->ndim + 1, d);
  if (y) im_emit(im, y, "gather(%s, %s)", t->ident, ids->ident);
}

const OnnxOp onnx_shape_ops[] = {
    {"Reshape", node_reshape, NULL},
    {"Flatten", node_flatten, NULL},
    {"Transpose", node_transpose, NULL},
    {"Concat", node_concat, NULL},
    {"Gather", node_gather, NULL},
    {NULL, NULL, NULL},
};
