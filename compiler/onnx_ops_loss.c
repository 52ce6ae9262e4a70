// onnx_ops_loss.c: the ONNX losses SoftmaxCrossEntropyLoss and
// NegativeLogLikelihoodLoss. Both pick, for each target, the log-probability
// of its class out of scores [N, C, d1, ...]: one_hot of the targets times the
// log-probabilities moved to [N, d1, ..., C], summed over the last axis.
// one_hot stops the run on a target outside [0, C) (other than ignore_index),
// so an out-of-range target is an error, never a silent zero.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_importer.h"

// The reduction attribute: 0 none, 1 sum, 2 mean (the default); -1 with a message.
static int reduction(Importer *im, const Onnx__NodeProto *n) {
  const Onnx__AttributeProto *a = onnx_attr(n, "reduction");
  if (!a || !a->has_s) return 2;
  const char *words[] = {"none", "sum", "mean"};
  for (int i = 0; i < 3; i++)
    if (a->s.len == strlen(words[i]) && !memcmp(a->s.data, words[i], a->s.len)) return i;
  im_fail(im, "node '%s' (%s): reduction '%.*s' is not none, sum or mean", im_node(n), n->op_type, (int)a->s.len,
          (const char *)a->s.data);
  return -1;
}

// Checks the shapes: scores x [N, C, d...], targets t [N, d...] of integers,
// weight w [C] when given.
static bool loss_shapes(Importer *im, const Onnx__NodeProto *n, const Value *x, const Value *t, const Value *w) {
  bool ok = x->ndim >= 2 && t->ndim == x->ndim - 1 && t->dims[0] == x->dims[0];
  for (int i = 2; i < x->ndim && ok; i++) ok = t->dims[i - 1] == x->dims[i];
  if (!ok) {
    im_fail(im, "node '%s' (%s): scores %s and targets %s do not agree (scores [N, C, d1, ...], targets [N, d1, ...])",
            im_node(n), n->op_type, onnx_shape_str(x->dims, x->ndim), onnx_shape_str(t->dims, t->ndim));
    return false;
  }
  if (x->dtype != DT_F32) {
    im_fail(im, "node '%s' (%s): scores of type %s; the importer takes float32", im_node(n), n->op_type,
            onnx_dtype_word(x->dtype));
    return false;
  }
  if (t->dtype != DT_I32 && t->dtype != DT_I64) {
    im_fail(im, "node '%s' (%s): targets of type %s; they must be int32 or int64", im_node(n), n->op_type,
            onnx_dtype_word(t->dtype));
    return false;
  }
  if (w && (w->ndim != 1 || w->dims[0] != x->dims[1] || w->dtype != DT_F32)) {
    im_fail(im, "node '%s' (%s): the weight %s %s is not a float32 [C] for C = %lld", im_node(n), n->op_type,
            onnx_dtype_word(w->dtype), onnx_shape_str(w->dims, w->ndim), (long long)x->dims[1]);
    return false;
  }
  return true;
}

// arg "softmax": SoftmaxCrossEntropyLoss (log_softmax over axis 1 first, its
// result the optional second output); else NegativeLogLikelihoodLoss, whose
// input already is log-probabilities. loss = -w[t] * lp[t] per target, 0 where
// t == ignore_index; mean divides the sum by the sum of w[t] over the
// targets not ignored (their count without a weight).
static void node_loss(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  bool softmax = !strcmp(arg, "softmax");
  Value *x = im_input(im, n, 0), *t = x ? im_input(im, n, 1) : NULL, *w = NULL;
  if (!t || !im_is_tensor(im, n, x) || !im_is_tensor(im, n, t)) return;
  if (n->n_input > 2 && n->input[2][0]) {
    if (!(w = im_input(im, n, 2)) || !im_is_tensor(im, n, w)) return;
    if (w->kind == V_SCALAR) {
      im_fail(im, "node '%s' (%s): a one-element weight constant is not supported", im_node(n), n->op_type);
      return;
    }
  }
  int red = reduction(im, n);
  if (red < 0 || !loss_shapes(im, n, x, t, w)) return;
  // the Values may move as values are added: keep what is needed
  Value xs = *x, ts = *t;
  const char *wid = w ? w->ident : NULL;
  int64_t c = xs.dims[1];
  const Onnx__AttributeProto *ia = onnx_attr(n, "ignore_index");
  char ignore[64] = "";
  if (ia && ia->has_i) snprintf(ignore, sizeof ignore, ", ignore = %lld", (long long)ia->i);

  // the outputs first, so that they keep their ONNX names
  Value *y = im_result(im, n, DT_F32, red == 0 ? ts.ndim : 0, ts.dims);
  if (!y) return;
  const char *lp = xs.ident;
  if (softmax) {
    Value *out = im_result_at(im, n, 1, DT_F32, xs.ndim, xs.dims);
    if (out) im_emit(im, out, "log_softmax(%s, axis = 1)", xs.ident);
    lp = out ? out->ident : im_temp_value(im, n, "log_prob", V_LET, DT_F32, xs.ndim, xs.dims)->ident;
    if (!out) im_out(im, "    let %s = log_softmax(%s, axis = 1)   # %s\n", lp, xs.ident, onnx_shape_str(xs.dims, xs.ndim));
  }
  // [N, d..., C]: the class axis last, as one_hot makes it
  int64_t hd[MAX_DIMS];
  memcpy(hd, ts.dims, sizeof(int64_t) * (size_t)ts.ndim);
  hd[ts.ndim] = c;
  char perm[256] = "";
  if (xs.ndim > 2) {
    int k = snprintf(perm, sizeof perm, "permute(%s, 0", lp);
    for (int i = 2; i < xs.ndim; i++) k += snprintf(perm + k, sizeof perm - (size_t)k, ", %d", i);
    snprintf(perm + k, sizeof perm - (size_t)k, ", 1)");
  } else snprintf(perm, sizeof perm, "%s", lp);
  const char *hot = im_temp_value(im, n, "hot", V_LET, DT_F32, ts.ndim + 1, hd)->ident;
  im_out(im, "    let %s = one_hot(%s, %lld%s)%s%s   # %s\n", hot, ts.ident, (long long)c, ignore, wid ? " * " : "",
         wid ? wid : "", onnx_shape_str(hd, ts.ndim + 1));
  const char *each = red == 0 ? NULL : im_temp_value(im, n, "each", V_LET, DT_F32, ts.ndim, ts.dims)->ident;
  char expr[1024];
  snprintf(expr, sizeof expr, "-sum(%s * %s, axis = -1)", hot, perm);
  if (red == 0) {
    im_emit(im, y, "%s", expr);
    return;
  }
  im_out(im, "    let %s = %s   # %s\n", each, expr, onnx_shape_str(ts.dims, ts.ndim));
  if (red == 1) im_emit(im, y, "sum(%s)", each);
  else im_emit(im, y, "sum(%s) / sum(%s)", each, hot);
}

const OnnxOp onnx_loss_ops[] = {
    {"SoftmaxCrossEntropyLoss", node_loss, "softmax"},
    {"NegativeLogLikelihoodLoss", node_loss, "nll"},
    {NULL, NULL, NULL},
};
