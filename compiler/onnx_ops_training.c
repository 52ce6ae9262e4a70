// onnx_ops_training.c: the optimizer steps of the ai.onnx.preview.training
// domain, Adagrad, Adam and Momentum (standard and Nesterov). Each takes the
// learning rate R, the step count T, then n tensors to optimize X, their
// gradients G and the optimizer's state (H; V; V and H), and gives the
// updated X, then each updated state, n of each. T must be a constant (the
// step count of the run being imported for): the step's coefficients that
// depend on it (decay, bias correction) are numbers computed here in double.
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_importer.h"

// A number as an operand: in parentheses when negative.
static const char *num(double x) {
  static char buf[8][48];
  static int which;
  char *b = buf[which++ & 7];
  snprintf(b, 48, x < 0 ? "(%.17g)" : "%.17g", x);
  if (!strpbrk(b, ".en")) {   // a whole number: written as a float
    size_t k = strlen(b);
    if (b[k - 1] == ')') snprintf(b + k - 1, 48 - (k - 1), ".0)");
    else strcat(b, ".0");
  }
  return b;
}

// A new `let` value for a part of n's translation (what and i + 1), shaped like like.
static Value *part(Importer *im, const Onnx__NodeProto *n, const char *what, size_t i, const Value *like) {
  char tag[64];
  snprintf(tag, sizeof tag, "%s%zu", what, i + 1);
  return im_temp_value(im, n, tag, V_LET, DT_F32, like->ndim, like->dims);
}

// Output k of n, or a part when the node leaves it unnamed (it is still
// needed: a state feeds the update of X).
static Value *out_or_part(Importer *im, const Onnx__NodeProto *n, size_t k, const char *what, size_t i,
                          const Value *like) {
  Value *y = im_result_at(im, n, k, DT_F32, like->ndim, like->dims);
  return y ? y : part(im, n, what, i, like);
}

// R, T and the groups of n tensors each (groups: X, G and the states);
// false with a message. in[g * n + i] is tensor i of group g.
typedef struct {
  char r[64];
  int64_t t;
  size_t n;
  Value *in[4 * 64];
} Step;

static bool step_inputs(Importer *im, const Onnx__NodeProto *n, size_t groups, Step *s) {
  if (n->n_input < 2 + groups || (n->n_input - 2) % groups || (n->n_input - 2) / groups > 64) {
    im_fail(im, "node '%s' (%s) has %zu inputs; it takes R, T and %zu groups of the same count (at most 64 each)",
            im_node(n), n->op_type, n->n_input, groups);
    return false;
  }
  s->n = (n->n_input - 2) / groups;
  if (n->n_output > (groups - 1) * s->n) {
    im_fail(im, "node '%s' (%s) has %zu outputs; it makes %zu", im_node(n), n->op_type, n->n_output,
            (groups - 1) * s->n);
    return false;
  }
  Value *r = im_input(im, n, 0);
  if (!r || !im_is_tensor(im, n, r)) return false;
  if (onnx_numel(r->dims, r->ndim) != 1 || r->dtype != DT_F32) {
    im_fail(im, "node '%s' (%s): the learning rate R is %s %s; it must be a float32 scalar", im_node(n), n->op_type,
            onnx_dtype_word(r->dtype), onnx_shape_str(r->dims, r->ndim));
    return false;
  }
  if (r->ndim) {
    im_fail(im, "node '%s' (%s): the learning rate R is %s; the importer takes a scalar of no dimensions", im_node(n),
            n->op_type, onnx_shape_str(r->dims, r->ndim));
    return false;
  }
  snprintf(s->r, sizeof s->r, "%s", im_operand(im, r));
  const Value *t = im_ints_input(im, n, 1, "step count T");
  if (!t) return false;
  if (t->nints != 1) {
    im_fail(im, "node '%s' (%s): the step count T has %d values; it is a scalar", im_node(n), n->op_type, t->nints);
    return false;
  }
  s->t = t->ints[0];
  for (size_t k = 0; k < groups * s->n; k++) {
    Value *v = im_input(im, n, 2 + k);
    if (!v || !im_is_tensor(im, n, v)) return false;
    const Value *x = k < s->n ? v : s->in[k % s->n];
    bool same = v->ndim == x->ndim && v->dtype == DT_F32;
    for (int d = 0; d < v->ndim && same; d++) same = v->dims[d] == x->dims[d];
    if (!same) {
      im_fail(im, "node '%s' (%s): input %zu ('%s') is %s %s; it must be a float32 of the shape %s of X%zu", im_node(n),
              n->op_type, k + 3, v->onnx, onnx_dtype_word(v->dtype), onnx_shape_str(v->dims, v->ndim),
              onnx_shape_str(x->dims, x->ndim), k % s->n + 1);
      return false;
    }
    s->in[k] = v;
  }
  return true;
}

// The regularized gradient norm_coefficient * X + G of tensor i.
static Value *regularized(Importer *im, const Onnx__NodeProto *n, const Step *s, size_t i) {
  Value *x = s->in[i], *g = s->in[s->n + i];
  Value *y = part(im, n, "g", i, x);
  im_emit(im, y, "%s * %s + %s", num(onnx_attr_f(n, "norm_coefficient", 0)), im_operand(im, x), im_operand(im, g));
  return y;
}

// Adagrad: H' = H + g^2; X' = X - R / (1 + T * decay_factor) * g / (sqrt(H') + epsilon).
static void node_adagrad(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Step s;
  if (!step_inputs(im, n, 3, &s)) return;
  double rate = 1.0 / (1.0 + (double)s.t * onnx_attr_f(n, "decay_factor", 0));
  double eps = onnx_attr_f(n, "epsilon", 1e-6f);
  for (size_t i = 0; i < s.n && !im->failed; i++) {
    Value *x = s.in[i], *h = s.in[2 * s.n + i];
    Value *xn = im_result_at(im, n, i, DT_F32, x->ndim, x->dims);
    Value *hn = out_or_part(im, n, s.n + i, "h", i, x);
    Value *g = regularized(im, n, &s, i);
    im_emit(im, hn, "%s + %s * %s", im_operand(im, h), g->ident, g->ident);
    if (xn)
      im_emit(im, xn, "%s - %s * %s * %s / (sqrt(%s) + %s)", im_operand(im, x), s.r, num(rate), g->ident, hn->ident,
              num(eps));
  }
}

// Adam: V' = alpha V + (1 - alpha) g; H' = beta H + (1 - beta) g^2;
// X' = (1 - norm_coefficient_post) (X - R c V' / (sqrt(H') + epsilon)), the bias
// correction c = sqrt(1 - beta^T) / (1 - alpha^T) when T > 0, else 1.
static void node_adam(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Step s;
  if (!step_inputs(im, n, 4, &s)) return;
  double alpha = onnx_attr_f(n, "alpha", 0.9f), beta = onnx_attr_f(n, "beta", 0.999f);
  double eps = onnx_attr_f(n, "epsilon", 1e-6f), post = onnx_attr_f(n, "norm_coefficient_post", 0);
  double c = s.t > 0 ? sqrt(1 - pow(beta, (double)s.t)) / (1 - pow(alpha, (double)s.t)) : 1.0;
  if (!isfinite(c)) {
    im_fail(im, "node '%s' (Adam): the bias correction at T = %lld is not finite (alpha %g, beta %g)", im_node(n),
            (long long)s.t, alpha, beta);
    return;
  }
  for (size_t i = 0; i < s.n && !im->failed; i++) {
    Value *x = s.in[i], *v = s.in[2 * s.n + i], *h = s.in[3 * s.n + i];
    Value *xn = im_result_at(im, n, i, DT_F32, x->ndim, x->dims);
    Value *vn = out_or_part(im, n, s.n + i, "v", i, x);
    Value *hn = out_or_part(im, n, 2 * s.n + i, "h", i, x);
    Value *g = regularized(im, n, &s, i);
    im_emit(im, vn, "%s * %s + %s * %s", num(alpha), im_operand(im, v), num(1 - alpha), g->ident);
    im_emit(im, hn, "%s * %s + %s * (%s * %s)", num(beta), im_operand(im, h), num(1 - beta), g->ident, g->ident);
    if (xn)
      im_emit(im, xn, "%s * (%s - %s * %s * (%s / (sqrt(%s) + %s)))", num(1 - post), im_operand(im, x), s.r, num(c),
              vn->ident, hn->ident, num(eps));
  }
}

// Momentum: V' = alpha V + b g, b = beta when T > 0, else 1; X' = X - R V'
// (mode "standard") or X - R (g + alpha V') (mode "nesterov").
static void node_momentum(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  const char *need[] = {"alpha", "beta", "mode", "norm_coefficient"};
  for (int k = 0; k < 4; k++)
    if (!onnx_attr(n, need[k])) return im_fail(im, "node '%s' (Momentum) lacks its attribute %s", im_node(n), need[k]);
  const Onnx__AttributeProto *m = onnx_attr(n, "mode");
  bool standard = m->has_s && m->s.len == 8 && !memcmp(m->s.data, "standard", 8);
  bool nesterov = m->has_s && m->s.len == 8 && !memcmp(m->s.data, "nesterov", 8);
  if (!standard && !nesterov)
    return im_fail(im, "node '%s' (Momentum): mode '%.*s' is not standard or nesterov", im_node(n), (int)m->s.len,
                   (const char *)m->s.data);
  Step s;
  if (!step_inputs(im, n, 3, &s)) return;
  double alpha = onnx_attr_f(n, "alpha", 0), beta = s.t > 0 ? onnx_attr_f(n, "beta", 0) : 1.0;
  for (size_t i = 0; i < s.n && !im->failed; i++) {
    Value *x = s.in[i], *v = s.in[2 * s.n + i];
    Value *xn = im_result_at(im, n, i, DT_F32, x->ndim, x->dims);
    Value *vn = out_or_part(im, n, s.n + i, "v", i, x);
    Value *g = regularized(im, n, &s, i);
    im_emit(im, vn, "%s * %s + %s * %s", num(alpha), im_operand(im, v), num(beta), g->ident);
    if (xn && standard) im_emit(im, xn, "%s - %s * %s", im_operand(im, x), s.r, vn->ident);
    else if (xn)
      im_emit(im, xn, "%s - %s * (%s + %s * %s)", im_operand(im, x), s.r, g->ident, num(alpha), vn->ident);
  }
}

const OnnxOp onnx_training_ops[] = {
    {"Adagrad", node_adagrad, NULL},
    {"Adam", node_adam, NULL},
    {"Momentum", node_momentum, NULL},
    {NULL, NULL, NULL},
};
