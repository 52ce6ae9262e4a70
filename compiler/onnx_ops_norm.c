// onnx_ops_norm.c: the ONNX normalizations: BatchNormalization,
// LayerNormalization, RMSNormalization, GroupNormalization,
// InstanceNormalization, MeanVarianceNormalization, LRN.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_importer.h"

// The float data input i of n, of rank at least min_rank. NULL with a message.
static Value *float_input(Importer *im, const Onnx__NodeProto *n, size_t i, int min_rank) {
  Value *x = im_input(im, n, i);
  if (!x || !im_is_tensor(im, n, x)) return NULL;
  if (x->dtype != DT_F32 || x->kind == V_SCALAR || x->ndim < min_rank) {
    im_fail(im, "node '%s' (%s): input %zu is %s%s; the importer takes a float tensor of rank %d or more", im_node(n),
            n->op_type, i + 1, onnx_dtype_word(x->dtype), onnx_shape_str(x->dims, x->ndim), min_rank);
    return NULL;
  }
  return x;
}

// Input i of n, a per-channel vector of c values (or one number), as an
// operand that broadcasts along axis 1 of a rank-rank tensor: a number, or
// reshape(v, c, 1, ...). NULL with a message.
static const char *channel_operand(Importer *im, const Onnx__NodeProto *n, size_t i, int64_t c, int rank, char *b,
                                   size_t cap) {
  Value *v = im_input(im, n, i);
  if (!v || !im_is_tensor(im, n, v)) return NULL;
  if (v->dtype != DT_F32 || onnx_numel(v->dims, v->ndim) != c || v->ndim > 1) {
    im_fail(im, "node '%s' (%s): input %zu '%s' is %s%s where %lld channels need a float vector", im_node(n), n->op_type,
            i + 1, v->onnx, onnx_dtype_word(v->dtype), onnx_shape_str(v->dims, v->ndim), (long long)c);
    return NULL;
  }
  if (v->kind == V_SCALAR) return snprintf(b, cap, "%s", im_operand(im, v)), b;
  size_t k = (size_t)snprintf(b, cap, "reshape(%s, %lld", v->ident, (long long)c);
  for (int d = 2; d < rank && k < cap; d++) k += (size_t)snprintf(b + k, cap - k, ", 1");
  if (k < cap) snprintf(b + k, cap - k, ")");
  return b;
}

// "(2, 3, )": the axes from first to the last of a rank-rank tensor, and 1 (channels) when skip1 is false.
static void axes_from(char *b, size_t cap, int first, int rank, bool skip1) {
  size_t k = (size_t)snprintf(b, cap, "(");
  for (int i = first; i < rank && k < cap; i++)
    if (!(skip1 && i == 1)) k += (size_t)snprintf(b + k, cap - k, "%d, ", i);
  if (k < cap) snprintf(b + k, cap - k, ")");
}

// BatchNormalization: y = scale (x - mean) / sqrt(var + epsilon) + B per
// channel (axis 1). Inference uses the given mean and var. Training mode
// (training_mode 1 from opset 14, is_test 0 before opset 7) uses the batch's
// mean and biased variance, and from opset 14 also gives the running mean and
// var (input * momentum + batch * (1 - momentum)) as outputs 1 and 2.
static void node_batchnorm(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = float_input(im, n, 0, 2);
  if (!x) return;
  int64_t c = x->dims[1];
  double eps = onnx_attr_f(n, "epsilon", 1e-5), mom = onnx_attr_f(n, "momentum", 0.9);
  bool training = im->opset >= 14 ? onnx_attr_i(n, "training_mode", 0) != 0
                  : im->opset < 7 ? onnx_attr_i(n, "is_test", 0) == 0 : false;
  if (im->opset < 9 && onnx_attr_i(n, "spatial", 1) == 0) {
    im_fail(im, "node '%s' (BatchNormalization): spatial 0 (statistics per activation) is not supported", im_node(n));
    return;
  }
  bool extra = false;
  for (size_t k = 1; k < n->n_output; k++) extra |= n->output[k][0] != 0;
  if (extra && !(training && im->opset >= 14)) {
    im_fail(im, "node '%s' (BatchNormalization): the outputs after Y are supported in training mode from opset 14 only",
            im_node(n));
    return;
  }
  char s[600], b[600], m[600], v[600];
  if (!channel_operand(im, n, 1, c, x->ndim, s, sizeof s) || !channel_operand(im, n, 2, c, x->ndim, b, sizeof b) ||
      !channel_operand(im, n, 3, c, x->ndim, m, sizeof m) || !channel_operand(im, n, 4, c, x->ndim, v, sizeof v))
    return;
  char mean[1024], var[1024];
  if (training) {   // the batch's statistics over every axis but 1
    char ax[128];
    axes_from(ax, sizeof ax, 0, x->ndim, true);
    int64_t kd[MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) kd[i] = i == 1 ? c : 1;
    Value *bm = im_temp_value(im, n, "mean", V_LET, DT_F32, x->ndim, kd);
    Value *bv = im_temp_value(im, n, "var", V_LET, DT_F32, x->ndim, kd);
    im_emit(im, bm, "mean(%s, axis = %s, keep = true)", x->ident, ax);
    im_emit(im, bv, "mean((%s - %s) * (%s - %s), axis = %s, keep = true)", x->ident, bm->ident, x->ident, bm->ident, ax);
    snprintf(mean, sizeof mean, "%s", bm->ident);
    snprintf(var, sizeof var, "%s", bv->ident);
    Value *rm = im_result_at(im, n, 1, DT_F32, 1, &c), *rv = im_result_at(im, n, 2, DT_F32, 1, &c);
    if (rm) im_emit(im, rm, "reshape(%s * %.9g + %s * %.9g, %lld)", m, mom, bm->ident, 1.0 - mom, (long long)c);
    if (rv) im_emit(im, rv, "reshape(%s * %.9g + %s * %.9g, %lld)", v, mom, bv->ident, 1.0 - mom, (long long)c);
  } else {
    snprintf(mean, sizeof mean, "%s", m);
    snprintf(var, sizeof var, "%s", v);
  }
  Value *y = im_result(im, n, DT_F32, x->ndim, x->dims);
  if (y) im_emit(im, y, "%s * (%s - %s) / sqrt(%s + %.9g) + %s", s, x->ident, mean, var, eps, b);
}

// The scale or bias input i of a normalization over the trailing axes from
// axis: a tensor that broadcasts to x's trailing dims, as an operand. NULL
// with a message.
static const char *trailing_operand(Importer *im, const Onnx__NodeProto *n, size_t i, const Value *x) {
  Value *w = im_input(im, n, i);
  if (!w || !im_is_tensor(im, n, w)) return NULL;
  int64_t d[MAX_DIMS];
  int nd;
  if (w->dtype != DT_F32 || !onnx_broadcast(x, w, d, &nd) || nd != x->ndim || memcmp(d, x->dims, (size_t)nd * sizeof *d)) {
    im_fail(im, "node '%s' (%s): input %zu '%s' %s%s does not broadcast to the input %s", im_node(n), n->op_type, i + 1,
            w->onnx, onnx_dtype_word(w->dtype), onnx_shape_str(w->dims, w->ndim), onnx_shape_str(x->dims, x->ndim));
    return NULL;
  }
  return im_operand(im, w);
}

// stash_type: the type of the statistics; 1 (float) is what a float input
// is computed in.
static bool stash_float(Importer *im, const Onnx__NodeProto *n) {
  int64_t st = onnx_attr_i(n, "stash_type", 1);
  if (st != 1) im_fail(im, "node '%s' (%s): stash_type %lld; the importer computes in float (1)", im_node(n), n->op_type,
                       (long long)st);
  return st == 1;
}

// LayerNormalization (opset 17) and RMSNormalization (opset 23): over the
// axes from axis (default -1) to the last; Y = (x - mean) / sqrt(var + eps)
// * scale + B, or x / sqrt(mean(x^2) + eps) * scale. LayerNormalization's
// outputs 1 and 2 are the mean and 1 / sqrt(var + eps), of x's shape with
// the normalized axes 1.
static void node_layernorm(Importer *im, const Onnx__NodeProto *n, const char *kind) {
  bool rms = !strcmp(kind, "rms");
  Value *x = float_input(im, n, 0, 1);
  if (!x || !stash_float(im, n)) return;
  int axis = im_axis(im, n, onnx_attr_i(n, "axis", -1), x->ndim);
  double eps = onnx_attr_f(n, "epsilon", 1e-5);
  if (im->failed) return;
  char scale[600], bias[620] = "";
  const char *w = trailing_operand(im, n, 1, x);
  if (!w) return;
  snprintf(scale, sizeof scale, "%s", w);
  if (!rms && n->n_input > 2 && n->input[2][0]) {
    const char *bb = trailing_operand(im, n, 2, x);
    if (!bb) return;
    snprintf(bias, sizeof bias, " + %s", bb);
  }
  char ax[128];
  axes_from(ax, sizeof ax, axis, x->ndim, false);
  int64_t kd[MAX_DIMS];
  for (int i = 0; i < x->ndim; i++) kd[i] = i < axis ? x->dims[i] : 1;
  if (rms) {
    Value *y = im_result(im, n, DT_F32, x->ndim, x->dims);
    if (y)
      im_emit(im, y, "%s * (1.0 / sqrt(mean(%s * %s, axis = %s, keep = true) + %.9g)) * %s", x->ident, x->ident, x->ident,
              ax, eps, scale);
    return;
  }
  Value *mean = im_result_at(im, n, 1, DT_F32, x->ndim, kd);
  if (!mean) mean = im_temp_value(im, n, "mean", V_LET, DT_F32, x->ndim, kd);
  im_emit(im, mean, "mean(%s, axis = %s, keep = true)", x->ident, ax);
  Value *inv = im_result_at(im, n, 2, DT_F32, x->ndim, kd);
  if (!inv) inv = im_temp_value(im, n, "inv_std", V_LET, DT_F32, x->ndim, kd);
  im_emit(im, inv, "1.0 / sqrt(mean((%s - %s) * (%s - %s), axis = %s, keep = true) + %.9g)", x->ident, mean->ident,
          x->ident, mean->ident, ax, eps);
  Value *y = im_result(im, n, DT_F32, x->ndim, x->dims);
  if (y) im_emit(im, y, "(%s - %s) * %s * %s%s", x->ident, mean->ident, inv->ident, scale, bias);
}

// InstanceNormalization: each (n, c) plane normalized over axes 2.. with
// the biased variance, then y = scale[c] * normalized + B[c].
static void node_instancenorm(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = float_input(im, n, 0, 3);
  if (!x) return;
  double eps = onnx_attr_f(n, "epsilon", 1e-5);
  char s[600], b[600], ax[128];
  if (!channel_operand(im, n, 1, x->dims[1], x->ndim, s, sizeof s) ||
      !channel_operand(im, n, 2, x->dims[1], x->ndim, b, sizeof b))
    return;
  axes_from(ax, sizeof ax, 2, x->ndim, false);
  int64_t kd[MAX_DIMS];
  for (int i = 0; i < x->ndim; i++) kd[i] = i < 2 ? x->dims[i] : 1;
  Value *m = im_temp_value(im, n, "mean", V_LET, DT_F32, x->ndim, kd);
  Value *v = im_temp_value(im, n, "var", V_LET, DT_F32, x->ndim, kd);
  im_emit(im, m, "mean(%s, axis = %s, keep = true)", x->ident, ax);
  im_emit(im, v, "mean((%s - %s) * (%s - %s), axis = %s, keep = true)", x->ident, m->ident, x->ident, m->ident, ax);
  Value *y = im_result(im, n, DT_F32, x->ndim, x->dims);
  if (y) im_emit(im, y, "%s * (%s - %s) / sqrt(%s + %.9g) + %s", s, x->ident, m->ident, v->ident, eps, b);
}

// GroupNormalization: the channels in num_groups groups, each normalized
// over its channels and the spatial axes (biased variance), then scaled and
// shifted: per channel (C values) from opset 21, per group (num_groups
// values) in opset 18.
static void node_groupnorm(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = float_input(im, n, 0, 2);
  if (!x || (im->opset >= 21 && !stash_float(im, n))) return;
  int64_t g = onnx_attr_i(n, "num_groups", 0), c = x->dims[1], nb = x->dims[0];
  double eps = onnx_attr_f(n, "epsilon", 1e-5);
  if (g < 1 || c % g) {
    im_fail(im, "node '%s' (GroupNormalization): num_groups %lld does not divide %lld channels", im_node(n), (long long)g,
            (long long)c);
    return;
  }
  bool per_group = im->opset < 21;
  int64_t k = onnx_numel(x->dims, x->ndim) / (nb * g);
  char s[600], b[600];
  if (per_group ? !channel_operand(im, n, 1, g, 3, s, sizeof s) || !channel_operand(im, n, 2, g, 3, b, sizeof b)
                : !channel_operand(im, n, 1, c, x->ndim, s, sizeof s) || !channel_operand(im, n, 2, c, x->ndim, b, sizeof b))
    return;
  int64_t gd[3] = {nb, g, k}, kd[3] = {nb, g, 1};
  Value *xg = im_temp_value(im, n, "grouped", V_LET, DT_F32, 3, gd);
  Value *m = im_temp_value(im, n, "mean", V_LET, DT_F32, 3, kd);
  Value *v = im_temp_value(im, n, "var", V_LET, DT_F32, 3, kd);
  Value *z = im_temp_value(im, n, "normalized", V_LET, DT_F32, 3, gd);
  im_emit(im, xg, "reshape(%s, %lld, %lld, %lld)", x->ident, (long long)nb, (long long)g, (long long)k);
  im_emit(im, m, "mean(%s, axis = 2, keep = true)", xg->ident);
  im_emit(im, v, "mean((%s - %s) * (%s - %s), axis = 2, keep = true)", xg->ident, m->ident, xg->ident, m->ident);
  im_emit(im, z, "(%s - %s) / sqrt(%s + %.9g)", xg->ident, m->ident, v->ident, eps);
  Value *y = im_result(im, n, DT_F32, x->ndim, x->dims);
  if (!y) return;
  char e[2048];
  if (per_group) {
    im_fmt(im, n, e, sizeof e, "%s * %s + %s", s, z->ident, b);
    im_emit_reshape(im, y, e);
  } else {
    char dims[512];
    onnx_join_ints(dims, sizeof dims, x->dims, x->ndim);
    im_emit(im, y, "%s * reshape(%s, %s) + %s", s, z->ident, dims, b);
  }
}

// MeanVarianceNormalization, as the spec's function: (x - E[x]) /
// (sqrt(E[x^2] - E[x]^2) + 1e-9) over axes (default 0, 2, 3).
static void node_mvn(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = float_input(im, n, 0, 1);
  if (!x) return;
  int64_t axes[MAX_DIMS] = {0, 2, 3};
  int na = onnx_attr_ints(n, "axes", axes, MAX_DIMS);
  if (na < 0) na = 3;
  bool on[MAX_DIMS] = {0};
  for (int i = 0; i < na; i++) {
    int a = im_axis(im, n, axes[i], x->ndim);
    if (im->failed) return;
    on[a] = true;
  }
  char ax[128];
  size_t k = (size_t)snprintf(ax, sizeof ax, "(");
  for (int i = 0; i < x->ndim; i++)
    if (on[i]) k += (size_t)snprintf(ax + k, sizeof ax - k, "%d, ", i);
  snprintf(ax + k, sizeof ax - k, ")");
  int64_t kd[MAX_DIMS];
  for (int i = 0; i < x->ndim; i++) kd[i] = on[i] ? 1 : x->dims[i];
  Value *m = im_temp_value(im, n, "mean", V_LET, DT_F32, x->ndim, kd);
  im_emit(im, m, "mean(%s, axis = %s, keep = true)", x->ident, ax);
  Value *y = im_result(im, n, DT_F32, x->ndim, x->dims);
  if (y)
    im_emit(im, y, "(%s - %s) / (sqrt(mean(%s * %s, axis = %s, keep = true) - %s * %s) + 1e-9)", x->ident, m->ident,
            x->ident, x->ident, ax, m->ident, m->ident);
}

// LRN: y = x / (bias + alpha / size * sum of x^2 over the channels c -
// floor((size - 1) / 2) .. c + ceil((size - 1) / 2))^beta, the sum a sum of
// size slices of the squares padded with zeros along axis 1.
#define LRN_MAX 64
static void node_lrn(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = float_input(im, n, 0, 2);
  if (!x) return;
  int64_t size = onnx_attr_i(n, "size", 0), c = x->dims[1];
  double alpha = onnx_attr_f(n, "alpha", 1e-4), beta = onnx_attr_f(n, "beta", 0.75), bias = onnx_attr_f(n, "bias", 1.0);
  if (size < 1 || size > LRN_MAX) {
    im_fail(im, "node '%s' (LRN): size %lld; the importer takes 1 to %d", im_node(n), (long long)size, LRN_MAX);
    return;
  }
  int64_t lo = (size - 1) / 2, hi = size - 1 - lo;
  int64_t pd[MAX_DIMS];
  memcpy(pd, x->dims, (size_t)x->ndim * sizeof *pd);
  pd[1] = c + size - 1;
  Value *sq = im_temp_value(im, n, "squares", V_LET, DT_F32, x->ndim, pd);
  Value *ss = im_temp_value(im, n, "square_sum", V_LET, DT_F32, x->ndim, x->dims);
  char e[8192];
  size_t k = (size_t)snprintf(e, sizeof e, "pad(%s * %s", x->ident, x->ident);
  for (int i = 0; i < x->ndim && k < sizeof e; i++)
    k += (size_t)snprintf(e + k, sizeof e - k, ", (%lld, %lld)", i == 1 ? (long long)lo : 0LL, i == 1 ? (long long)hi : 0LL);
  if (k < sizeof e) snprintf(e + k, sizeof e - k, ")");
  im_emit(im, sq, "%s", e);
  k = 0;
  e[0] = 0;
  for (int64_t j = 0; j < size && k < sizeof e; j++)
    k += (size_t)snprintf(e + k, sizeof e - k, "%s%s[:, %lld:%lld]", j ? " + " : "", sq->ident, (long long)j,
                          (long long)(j + c));
  if (k >= sizeof e) return im_fail(im, "node '%s' (LRN): the sum is too long an expression", im_node(n));
  im_emit(im, ss, "%s", e);
  Value *y = im_result(im, n, DT_F32, x->ndim, x->dims);
  if (y) im_emit(im, y, "%s / pow(%.9g + %.9g * %s, %.9g)", x->ident, bias, alpha / (double)size, ss->ident, beta);
}

const OnnxOp onnx_norm_ops[] = {
    {"BatchNormalization", node_batchnorm, NULL},
    {"LayerNormalization", node_layernorm, "layer"},
    {"RMSNormalization", node_layernorm, "rms"},
    {"InstanceNormalization", node_instancenorm, NULL},
    {"GroupNormalization", node_groupnorm, NULL},
    {"MeanVarianceNormalization", node_mvn, NULL},
    {"LRN", node_lrn, NULL},
    {NULL, NULL, NULL},
};
