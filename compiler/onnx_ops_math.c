// onnx_ops_math.c: the elementwise ONNX ops: arithmetic, comparisons, logic,
// the unary functions and activations, Clip, the variadic Max/Min/Sum/Mean,
// Where, Cast and Dropout. Functions the language lacks (atan, sinh, round,
// ...) are written as short compositions of its builtins, each chosen to stay
// accurate to float32 over the whole input range (comments say how).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_importer.h"

// ---- helpers

// A number as an operand: "%.9g", parenthesized when negative.
static const char *num(double v) {
  static char buf[8][48];
  static int which;
  char *b = buf[which++ & 7];
  char t[40];
  snprintf(t, sizeof t, "%.9g", v);
  if (!strpbrk(t, ".en")) strcat(t, ".0");
  snprintf(b, 48, t[0] == '-' ? "(%s)" : "%s", t);
  return b;
}

static bool is_int(DType d) { return d == DT_I32 || d == DT_I64; }

// A one-number float constant as a tensor of its shape (a `let`), for an op
// that needs one: fill(v, dims), or a sum of one for rank 0. v itself when it
// is no such constant; NULL after a message.
static Value *scalar_tensor(Importer *im, const Onnx__NodeProto *n, Value *v) {
  if (v->kind != V_SCALAR) return v;
  char dims[512];
  onnx_join_ints(dims, sizeof dims, v->dims, v->ndim);
  if (v->ndim) return im_temp(im, n, "c", DT_F32, v->ndim, v->dims, "fill(%s, %s)", num(v->scalar), dims);
  return im_temp(im, n, "c", DT_F32, 0, NULL, "fill(%s, 1).sum()", num(v->scalar));
}

// The tensor operand of a unary node: a float, int or bool tensor (not a
// one-number constant, which a model would fold).
static Value *unary_input(Importer *im, const Onnx__NodeProto *n) {
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return NULL;
  return scalar_tensor(im, n, x);
}

static bool want_float(Importer *im, const Onnx__NodeProto *n, const Value *x) {
  if (x->dtype == DT_F32) return true;
  im_fail(im, "node '%s' (%s): a %s operand; the importer computes %s on float tensors only", im_node(n), n->op_type,
          onnx_dtype_word(x->dtype), n->op_type);
  return false;
}

static void node_refuse(Importer *im, const Onnx__NodeProto *n, const char *why) {
  im_fail(im, "node '%s' (%s): %s", im_node(n), n->op_type, why);
}

// ---- integer constants folded at import time (shapes: Shape -> Gather -> Mul)

static int64_t fold_op(const char *op, int64_t a, int64_t b, bool *ok) {
  int64_t r = 0;
  switch (op[0]) {
  case '+': *ok = !__builtin_add_overflow(a, b, &r); return r;
  case '-': *ok = !__builtin_sub_overflow(a, b, &r); return r;
  case '*': *ok = !__builtin_mul_overflow(a, b, &r); return r;
  case '/':   // ONNX integer Div truncates toward zero
    *ok = b != 0 && !(a == INT64_MIN && b == -1);
    return *ok ? a / b : 0;
  case '%':   // fmod 0: the sign of the divisor (Python); "%f": C's
    *ok = b != 0 && !(a == INT64_MIN && b == -1);
    if (!*ok) return 0;
    r = a % b;
    if (!op[1] && r != 0 && (r < 0) != (b < 0)) r += b;
    return r;
  case '<': return op[1] == '=' ? a <= b : a < b;
  case '>': return op[1] == '=' ? a >= b : a > b;
  case '=': return a == b;
  case '&': return a && b;
  case '|': return a || b;
  case '^': return !a != !b;
  case 'M': return a > b ? a : b;
  case 'm': return a < b ? a : b;
  }
  *ok = false;
  return 0;
}

// a op b over two integer constants, broadcast, as a new constant; false
// (and nothing made) when the op does not fold.
static bool fold_ints(Importer *im, const Onnx__NodeProto *n, const Value *a, const Value *b, const char *op,
                      DType dt, const int64_t *d, int nd) {
  int64_t count = onnx_numel(d, nd);
  if (count > 1 << 20) return false;
  int64_t *v = xmalloc((size_t)(count ? count : 1) * sizeof *v);
  for (int64_t i = 0; i < count; i++) {
    int64_t ia = 0, ib = 0, sa = 1, sb = 1, rest = i;
    for (int k = nd - 1; k >= 0; k--) {
      int64_t idx = rest % d[k];
      rest /= d[k];
      int ka = k - (nd - a->ndim), kb = k - (nd - b->ndim);
      if (ka >= 0) {
        ia += (a->dims[ka] == 1 ? 0 : idx) * sa;
        sa *= a->dims[ka];
      }
      if (kb >= 0) {
        ib += (b->dims[kb] == 1 ? 0 : idx) * sb;
        sb *= b->dims[kb];
      }
    }
    bool ok = true;
    v[i] = fold_op(op, a->ints[ia], b->ints[ib], &ok);
    if (dt == DT_I32 && ok) v[i] = (int32_t)v[i];   // int32 arithmetic wraps
    if (!ok) {
      im_fail(im, "node '%s' (%s): %lld %s %lld of integer constants overflows or divides by zero", im_node(n),
              n->op_type, (long long)a->ints[ia], op, (long long)b->ints[ib]);
      free(v);
      return true;
    }
  }
  if (n->n_output < 1) {
    free(v);
    return false;
  }
  Value *y = im_add_value(im, n->output[0], V_INTS, dt, nd, d);
  y->ints = v;
  y->nints = (int)count;
  return true;
}

// ---- binary ops

// Before opset 7, a binary op broadcasts only with broadcast = 1, and then B
// lines up with A at axis (default: at A's end). b is rewritten to A's rank
// (its shape padded with ones, a reshape emitted) when it lines up elsewhere.
static bool legacy_broadcast(Importer *im, const Onnx__NodeProto *n, Value *a, Value **bp) {
  Value *b = *bp;
  if (im->opset >= 7) return true;
  bool same = a->ndim == b->ndim && !memcmp(a->dims, b->dims, (size_t)a->ndim * sizeof *a->dims);
  if (!onnx_attr_i(n, "broadcast", 0)) {
    if (same || b->kind == V_SCALAR) return true;
    im_fail(im, "node '%s' (%s, opset %lld): shapes %s and %s differ and broadcast is 0", im_node(n), n->op_type,
            (long long)im->opset, onnx_shape_str(a->dims, a->ndim), onnx_shape_str(b->dims, b->ndim));
    return false;
  }
  const Onnx__AttributeProto *ax = onnx_attr(n, "axis");
  if (!ax || b->kind == V_SCALAR || b->ndim == 0) return true;
  int axis = im_axis(im, n, ax->i, a->ndim);
  if (im->failed) return false;
  if (axis + b->ndim > a->ndim) {
    im_fail(im, "node '%s' (%s): B of shape %s does not fit A of shape %s at axis %d", im_node(n), n->op_type,
            onnx_shape_str(b->dims, b->ndim), onnx_shape_str(a->dims, a->ndim), axis);
    return false;
  }
  if (axis + b->ndim == a->ndim) return true;
  int64_t d[MAX_DIMS];
  int nd = a->ndim - axis;
  for (int i = 0; i < nd; i++) d[i] = i < b->ndim ? b->dims[i] : 1;
  if (!im_is_tensor(im, n, b)) return false;
  char dims[512];
  onnx_join_ints(dims, sizeof dims, d, nd);
  *bp = im_temp(im, n, "b", b->dtype, nd, d, "reshape(%s, %s)", b->ident, dims);
  return *bp != NULL;
}

// The two operands of a binary node and their broadcast shape; false with a
// message.
static bool binary_operands(Importer *im, const Onnx__NodeProto *n, Value **a, Value **b, int64_t *d, int *nd) {
  *a = im_input(im, n, 0);
  *b = *a ? im_input(im, n, 1) : NULL;
  if (!*b || !legacy_broadcast(im, n, *a, b)) return false;
  if (!onnx_broadcast(*a, *b, d, nd)) {
    im_fail(im, "node '%s' (%s): shapes %s and %s do not broadcast", im_node(n), n->op_type,
            onnx_shape_str((*a)->dims, (*a)->ndim), onnx_shape_str((*b)->dims, (*b)->ndim));
    return false;
  }
  if ((*a)->kind == V_SCALAR && (*b)->kind == V_SCALAR) *a = scalar_tensor(im, n, *a);   // two numbers: one a tensor
  return true;
}

static DType operand_dtype(const Value *a, const Value *b) { return a->kind == V_SCALAR ? b->dtype : a->dtype; }

static bool same_dtypes(Importer *im, const Onnx__NodeProto *n, const Value *a, const Value *b) {
  if (a->kind == V_SCALAR || b->kind == V_SCALAR) {
    if (operand_dtype(a, b) == DT_F32) return true;
  } else if (a->dtype == b->dtype) return true;
  im_fail(im, "node '%s' (%s): %s and %s operands; ONNX needs one type", im_node(n), n->op_type,
          onnx_dtype_word(a->dtype), onnx_dtype_word(b->dtype));
  return false;
}

// Integer Div (truncating) and Mod from the language's exact floor division
// and modulo (`//`, `%`): the truncated quotient is one above the floor one
// where the remainder is not 0 and the operands' signs differ (b != 0; a
// zero divisor gives 0, and a remainder of a). fmod 0 is `%` (the divisor's
// sign), fmod 1 the remainder of the truncated quotient (the dividend's).
static void int_divide(Importer *im, const Onnx__NodeProto *n, Value *a, Value *b, bool div, bool fmod_c,
                       const int64_t *d, int nd) {
  Value shape = {.ndim = nd};
  memcpy(shape.dims, d, (size_t)nd * sizeof *d);
  const char *x1 = a->ident, *x2 = b->ident;
  DType dt = a->dtype;
  if (!div && !fmod_c) {
    Value *y = im_result(im, n, dt, nd, d);
    if (y) im_emit(im, y, "%s %% %s", x1, x2);
    return;
  }
  const char *r = im_temp_id(im, n, "t", dt, shape.ndim, shape.dims, "%s %% %s", x1, x2);
  const char *up = r ? im_temp_id(im, n, "t", DT_BOOL, shape.ndim, shape.dims,
                                  "where(%s != 0, where(%s == 0, %s != 0, (%s < 0) != (%s < 0)), %s != 0)", r, x2, x2,
                                  x1, x2, r) : NULL;
  Value *y = up ? im_result(im, n, dt, nd, d) : NULL;
  if (!y) return;
  if (div) im_emit(im, y, "where(%s, %s // %s + 1, %s // %s)", up, x1, x2, x1, x2);
  else im_emit(im, y, "where(%s, %s - %s, %s)", up, r, x2, r);
}

// An integer base to an integer power, exactly (wrapping, as numpy's): by
// squaring over every bit of the exponent; a negative exponent gives the
// integer part of x^e (1 for 1, +-1 for -1, else 0). A float exponent is
// refused: its fractional results would be truncated from float roundings.
static void int_pow(Importer *im, const Onnx__NodeProto *n, const Value *x, const Value *e, const int64_t *d, int nd) {
  if (!is_int(e->dtype) || e->kind == V_SCALAR)
    return node_refuse(im, n, "an integer base with a float exponent (the importer takes integer exponents there)");
  Value shape = {.ndim = nd};
  memcpy(shape.dims, d, (size_t)nd * sizeof *d);
  int bits = e->dtype == DT_I64 ? 63 : 31;
  const char *sq = x->ident, *r = im_temp_id(im, n, "t", x->dtype, shape.ndim, shape.dims,
                                             "where(%s %% 2 != 0, %s, 1)", e->ident, sq);
  for (int k = 1; k < bits && r; k++) {
    sq = im_temp_id(im, n, "t", x->dtype, x->ndim, x->dims, "%s * %s", sq, sq);   // x^(2^k)
    r = sq ? im_temp_id(im, n, "t", x->dtype, shape.ndim, shape.dims,
                        "where((%s // %lld) %% 2 != 0, %s * %s, %s)", e->ident, 1LL << k, r, sq, r)
           : NULL;
  }
  Value *y = r ? im_result(im, n, x->dtype, nd, d) : NULL;
  if (!y) return;
  const char *b = x->ident, *p = e->ident;
  im_emit(im, y, "where(%s < 0, where(%s == 1, 1, where(%s == -1, where(%s %% 2 != 0, -1, 1), 0)), %s)", p, b, b, p, r);
}

// Add, Sub, Mul, Div, Mod (arg "%"), Pow: float tensors; integer tensors for
// Add, Sub and Mul (exact); two integer constants fold into a constant.
static void node_arith(Importer *im, const Onnx__NodeProto *n, const char *op) {
  Value *a, *b;
  int64_t d[MAX_DIMS];
  int nd;
  if (!binary_operands(im, n, &a, &b, d, &nd)) return;
  bool fmod_c = op[0] == '%' && onnx_attr_i(n, "fmod", 0);
  bool pw = !strcmp(op, "pow");
  if (a->kind == V_INTS && b->kind == V_INTS && !pw && a->dtype == b->dtype && is_int(a->dtype) &&
      fold_ints(im, n, a, b, fmod_c ? "%f" : op, a->dtype, d, nd))
    return;
  if (!im_is_tensor(im, n, a) || !im_is_tensor(im, n, b)) return;
  if (pw) {   // the base's type; an integer exponent is exact as a float below 2^24
    a = scalar_tensor(im, n, a);
    if (b->dtype == DT_BOOL || a->dtype == DT_BOOL) return node_refuse(im, n, "a bool operand");
    if (is_int(a->dtype)) return int_pow(im, n, a, b, d, nd);
    Value *y = im_result(im, n, DT_F32, nd, d);
    if (y && is_int(b->dtype)) im_emit(im, y, "pow(%s, cast(%s, f32))", a->ident, b->ident);
    else if (y) im_emit(im, y, "pow(%s, %s)", a->ident, im_operand(im, b));
    return;
  }
  if (!same_dtypes(im, n, a, b)) return;
  DType dt = operand_dtype(a, b);
  if (dt == DT_BOOL) return node_refuse(im, n, "bool operands");
  if (is_int(dt) && (op[0] == '/' || op[0] == '%')) return int_divide(im, n, a, b, op[0] == '/', fmod_c, d, nd);
  Value *y = im_result(im, n, dt, nd, d);
  if (!y) return;
  const char *x1 = im_operand(im, a), *x2 = im_operand(im, b);
  if (op[0] != '%') {
    im_emit(im, y, "%s %s %s", x1, op, x2);
    return;
  }
  // a - floor(a / b) b (the divisor's sign) or a - trunc(a / b) b (C's fmod);
  // an infinite divisor gives a, or for fmod 0 with the other sign b, as numpy
  char q[1024], e[2048];
  if (!fmod_c) snprintf(q, sizeof q, "%s %% %s", x1, x2);
  else snprintf(q, sizeof q, "%s - where(%s / %s < 0.0, -((-(%s / %s)) // 1.0), (%s / %s) // 1.0) * %s", x1, x1, x2, x1,
                x2, x1, x2, x2);
  if (!fmod_c) snprintf(e, sizeof e, "where(%s * %s < 0.0, %s, %s)", x1, x2, x2, x1);
  else snprintf(e, sizeof e, "%s", x1);
  im_emit(im, y, "where(%s - %s == 0.0, %s, where(%s != %s, %s, %s))", x2, x2, q, x2, x2, x2, e);
}

// Equal, Less, LessOrEqual, Greater, GreaterOrEqual: bool results.
static void node_compare(Importer *im, const Onnx__NodeProto *n, const char *op) {
  Value *a, *b;
  int64_t d[MAX_DIMS];
  int nd;
  if (!binary_operands(im, n, &a, &b, d, &nd)) return;
  if (a->kind == V_INTS && b->kind == V_INTS && fold_ints(im, n, a, b, op[0] == '=' ? "=" : op, DT_BOOL, d, nd)) return;
  if (!im_is_tensor(im, n, a) || !im_is_tensor(im, n, b) || !same_dtypes(im, n, a, b)) return;
  Value *y = im_result(im, n, DT_BOOL, nd, d);
  if (y) im_emit(im, y, "%s %s %s", im_operand(im, a), op, im_operand(im, b));
}

// And ("&"), Or ("|"), Xor ("^") of bool tensors: by where (a bool result)
// and inequality.
static void node_logic(Importer *im, const Onnx__NodeProto *n, const char *op) {
  Value *a, *b;
  int64_t d[MAX_DIMS];
  int nd;
  if (!binary_operands(im, n, &a, &b, d, &nd)) return;
  if (a->dtype != DT_BOOL || b->dtype != DT_BOOL || a->kind == V_SCALAR || b->kind == V_SCALAR) {
    im_fail(im, "node '%s' (%s): %s and %s operands; it takes bool tensors", im_node(n), n->op_type,
            onnx_dtype_word(a->dtype), onnx_dtype_word(b->dtype));
    return;
  }
  if (a->kind == V_INTS && b->kind == V_INTS && fold_ints(im, n, a, b, op, DT_BOOL, d, nd)) return;
  if (!im_is_tensor(im, n, a) || !im_is_tensor(im, n, b)) return;
  Value *y = im_result(im, n, DT_BOOL, nd, d);
  if (!y) return;
  if (op[0] == '^') im_emit(im, y, "%s != %s", a->ident, b->ident);
  else if (op[0] == '&') im_emit(im, y, "where(%s, %s, %s)", a->ident, b->ident, a->ident);
  else im_emit(im, y, "where(%s, %s, %s)", a->ident, a->ident, b->ident);
}


// ---- unary ops: a template of the language, '@' the operand, {name=default}
// a float attribute, '&' the operand's expm1 (a temporary)

// expm1(x) = exp(x) - 1 without the cancellation near 0: (u - 1) x / log u
// with u = exp(x) rounded, exact to a few ulps (Kahan's trick).
static const char *expm1_of(Importer *im, const Onnx__NodeProto *n, const Value *like, const char *x) {
  const char *u = im_temp_id(im, n, "t", DT_F32, like->ndim, like->dims, "exp(%s)", x);
  if (!u) return NULL;
  return im_temp_id(im, n, "t", DT_F32, like->ndim, like->dims,
                    "where(abs(%s) < 0.5, where(%s == 1.0, %s, (%s - 1.0) * %s / log(%s)), %s - 1.0)", x, u, x, u, x, u,
                    u);
}

// log1p(u) = log(1 + u), accurate near 0: log(w) u / (w - 1) with w = 1 + u
// rounded (Goldberg's trick).
static const char *log1p_of(Importer *im, const Onnx__NodeProto *n, const Value *like, const char *u) {
  const char *w = im_temp_id(im, n, "t", DT_F32, like->ndim, like->dims, "1.0 + %s", u);
  if (!w) return NULL;
  return im_temp_id(im, n, "t", DT_F32, like->ndim, like->dims,
                    "where(abs(%s) < 0.5, where(%s == 1.0, %s, log(%s) * %s / (%s - 1.0)), log(%s))", u, w, u, w, u, w,
                    w);
}

// template t for x into out; false with a message for a long expression.
static bool expand(Importer *im, const Onnx__NodeProto *n, const Value *x, const char *t, char *out, size_t cap) {
  const char *e = NULL;
  size_t k = 0;
  for (const char *p = t; *p; p++) {
    char piece[128];
    if (*p == '{') {   // {name=default}
      const char *eq = strchr(p, '='), *end = strchr(p, '}');
      char name[64];
      snprintf(name, sizeof name, "%.*s", (int)(eq - p - 1), p + 1);
      snprintf(piece, sizeof piece, "%s", num(onnx_attr_f(n, name, atof(eq + 1))));
      p = end;
    } else if (*p == '&') {
      if (!e && !(e = expm1_of(im, n, x, x->ident))) return false;
      snprintf(piece, sizeof piece, "%s", e);
    } else if (*p == '@') snprintf(piece, sizeof piece, "%s", x->ident);
    else snprintf(piece, sizeof piece, "%c", *p);
    size_t l = strlen(piece);
    if (k + l + 1 > cap) return im_fail(im, "node '%s' (%s): an expression too long", im_node(n), n->op_type), false;
    memcpy(out + k, piece, l + 1);
    k += l;
  }
  return true;
}

// A float function by template (arg); "?" before the template: bool result.
static void node_unary(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  Value *x = unary_input(im, n);
  bool pred = arg[0] == '?';
  if (!x || !want_float(im, n, x)) return;
  char e[4096];
  if (!expand(im, n, x, arg + pred, e, sizeof e)) return;
  Value *y = im_result(im, n, pred ? DT_BOOL : DT_F32, x->ndim, x->dims);
  if (y) im_emit(im, y, "%s", e);
}

// Relu, Abs, Neg: float or integer tensors; an integer constant folds.
static void node_unary_num(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  Value *x = im_input(im, n, 0);
  if (!x) return;
  if (x->kind == V_INTS && x->dtype != DT_BOOL && arg[0] != 'r') {   // Neg and Abs of a shape
    Value *y = n->n_output ? im_add_value(im, n->output[0], V_INTS, x->dtype, x->ndim, x->dims) : NULL;
    if (!y) return;
    y->ints = xmalloc((size_t)(x->nints ? x->nints : 1) * sizeof *y->ints);
    y->nints = x->nints;
    for (int i = 0; i < x->nints; i++) {
      int64_t v = x->ints[i];
      if (v == INT64_MIN) return node_refuse(im, n, "the smallest int64 has no negation");
      y->ints[i] = arg[0] == '-' || v < 0 ? -v : v;   // Neg, or Abs
    }
    return;
  }
  if (!(x = unary_input(im, n))) return;
  if (x->dtype == DT_BOOL) return node_refuse(im, n, "a bool operand");
  Value *y = im_result(im, n, x->dtype, x->ndim, x->dims);
  if (!y) return;
  if (arg[0] == '-') im_emit(im, y, "-%s", x->ident);
  else im_emit(im, y, "%s(%s)", arg, x->ident);
}

static void node_sign(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = unary_input(im, n);
  if (!x) return;
  if (x->dtype == DT_BOOL) return node_refuse(im, n, "a bool operand");
  Value *y = im_result(im, n, x->dtype, x->ndim, x->dims);
  if (!y) return;
  const char *s = x->ident, *w = onnx_dtype_word(x->dtype);
  if (x->dtype == DT_F32) im_emit(im, y, "where(%s > 0.0, 1.0, where(%s < 0.0, -1.0, %s))", s, s, s);   // 0 and NaN stay
  else im_emit(im, y, "cast(%s > 0, %s) - cast(%s < 0, %s)", s, w, s, w);
}

static void node_isinf(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = unary_input(im, n);
  if (!x || !want_float(im, n, x)) return;
  bool pos = onnx_attr_i(n, "detect_positive", 1), neg = onnx_attr_i(n, "detect_negative", 1);
  Value *y = im_result(im, n, DT_BOOL, x->ndim, x->dims);
  if (!y) return;
  const char *s = x->ident;   // x - x is NaN for an infinity (and NaN), 0 for the rest
  if (pos && neg) im_emit(im, y, "where(%s == %s, %s - %s != 0.0, %s == %s)", s, s, s, s, s, s);
  else if (pos) im_emit(im, y, "where(%s > 0.0, %s - %s != 0.0, %s > 0.0)", s, s, s, s);
  else if (neg) im_emit(im, y, "where(%s < 0.0, %s - %s != 0.0, %s < 0.0)", s, s, s, s);
  else im_emit(im, y, "where(%s > 0.0, %s < 0.0, %s > 0.0)", s, s, s);   // false everywhere
}

// Round half to even: floor, then up past .5 and at .5 to the even one;
// |x| >= 2^23 is an integer already (its fraction is 0).
static void node_round(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = unary_input(im, n);
  if (!x || !want_float(im, n, x)) return;
  const char *f = im_temp_id(im, n, "t", DT_F32, x->ndim, x->dims, "%s // 1.0", x->ident);
  const char *d = f ? im_temp_id(im, n, "t", DT_F32, x->ndim, x->dims, "%s - %s", x->ident, f) : NULL;
  Value *y = d ? im_result(im, n, DT_F32, x->ndim, x->dims) : NULL;
  if (y)
    im_emit(im, y, "where(%s > 0.5, %s + 1.0, where(%s < 0.5, %s, where((%s * 0.5) // 1.0 * 2.0 == %s, %s, %s + 1.0)))", d,
            f, d, f, f, f, f, f);
}

// atan(x): |x| > 1 by pi/2 - atan(1/|x|); above tan(pi/12) by
// atan(t) = pi/6 + atan((t sqrt3 - 1) / (t + sqrt3)), leaving |s| <= 0.268,
// where the Taylor series to s^11 is within 1e-8 relative.
static const char *atan_of(Importer *im, const Onnx__NodeProto *n, const Value *like, const char *x) {
  const char *a = im_temp_id(im, n, "t", DT_F32, like->ndim, like->dims, "abs(%s)", x);
  const char *t = a ? im_temp_id(im, n, "t", DT_F32, like->ndim, like->dims,
                                 "where(%s > 1.0, 1.0 / %s, %s)", a, a, a) : NULL;
  const char *s = t ? im_temp_id(im, n, "t", DT_F32, like->ndim, like->dims,
                                 "where(%s > 0.267949192, (%s * 1.73205081 - 1.0) / (%s + 1.73205081), %s)", t, t, t,
                                 t) : NULL;
  const char *q = s ? im_temp_id(im, n, "t", DT_F32, like->ndim, like->dims, "%s * %s", s, s) : NULL;
  const char *p = q ? im_temp_id(im, n, "t", DT_F32, like->ndim, like->dims,
                                 "%s * (1.0 + %s * (-0.333333333 + %s * (0.2 + %s * (-0.142857143 + %s * (0.111111111 - "
                                 "%s * 0.0909090909)))))", s, q, q, q, q, q) : NULL;
  const char *r = p ? im_temp_id(im, n, "t", DT_F32, like->ndim, like->dims,
                                 "where(%s > 0.267949192, %s + 0.523598776, %s)", t, p, p) : NULL;
  const char *r2 = r ? im_temp_id(im, n, "t", DT_F32, like->ndim, like->dims,
                                  "where(%s > 1.0, 1.57079633 - %s, %s)", a, r, r) : NULL;
  return r2 ? im_temp_id(im, n, "t", DT_F32, like->ndim, like->dims, "where(%s < 0.0, -%s, %s)", x, r2, r2) : NULL;
}

// Atan, Asin (atan(x / sqrt((1 - x)(1 + x)))), Acos (2 atan(sqrt((1 - x) / (1 + x)))).
static void node_atan(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  Value *x = unary_input(im, n);
  if (!x || !want_float(im, n, x)) return;
  const char *s = x->ident, *u = s;
  if (arg[0] == 's') u = im_temp_id(im, n, "t", DT_F32, x->ndim, x->dims,
                                    "%s / sqrt((1.0 - %s) * (1.0 + %s))", s, s, s);
  if (arg[0] == 'c') u = im_temp_id(im, n, "t", DT_F32, x->ndim, x->dims, "sqrt((1.0 - %s) / (1.0 + %s))", s, s);
  const char *r = u ? atan_of(im, n, x, u) : NULL;
  Value *y = r ? im_result(im, n, DT_F32, x->ndim, x->dims) : NULL;
  if (y) im_emit(im, y, arg[0] == 'c' ? "2.0 * %s" : "%s", r);
}

// Sinh, Cosh, Asinh, Acosh, Atanh by exp, tanh and log1p, odd ones on |x|
// with the sign put back; each form chosen where it does not cancel.
static void node_hyper(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  Value *x = unary_input(im, n);
  if (!x || !want_float(im, n, x)) return;
  const char *s = x->ident, *a = im_temp_id(im, n, "t", DT_F32, x->ndim, x->dims, "abs(%s)", s), *r = NULL;
  if (!a) return;
  if (!strcmp(arg, "sinh")) {   // 2 t / (1 - t^2), t = tanh(|x| / 2), below 1; e^|x| / 2 - e^-|x| / 2 above
    const char *t = im_temp_id(im, n, "t", DT_F32, x->ndim, x->dims, "tanh(%s * 0.5)", a);
    r = t ? im_temp_id(im, n, "t", DT_F32, x->ndim, x->dims,
                       "where(%s < 1.0, 2.0 * %s / (1.0 - %s * %s), exp(%s - 0.693147181) - 0.5 * exp(-%s))", a, t, t,
                       t, a, a) : NULL;
  } else if (!strcmp(arg, "cosh")) {
    r = im_temp_id(im, n, "t", DT_F32, x->ndim, x->dims,
                   "exp(%s - 0.693147181) + 0.5 * exp(-%s)", a, a);   // no overflow before cosh's
  } else if (!strcmp(arg, "asinh")) {   // log1p(a + a^2 / (1 + sqrt(1 + a^2)))
    const char *u = im_temp_id(im, n, "t", DT_F32, x->ndim, x->dims,
                               "%s + %s * %s / (1.0 + sqrt(1.0 + %s * %s))", a, a, a, a, a);
    const char *l = u ? log1p_of(im, n, x, u) : NULL;
    r = l ? im_temp_id(im, n, "t", DT_F32, x->ndim, x->dims,
                       "where(%s > 1e18, log(%s) + 0.693147181, %s)", a, a, l) : NULL;
  } else if (!strcmp(arg, "acosh")) {   // log1p(t + sqrt(t) sqrt(t + 2)), t = x - 1: NaN below 1
    const char *t = im_temp_id(im, n, "t", DT_F32, x->ndim, x->dims, "%s - 1.0", s);
    const char *u = t ? im_temp_id(im, n, "t", DT_F32, x->ndim, x->dims,
                                   "%s + sqrt(%s) * sqrt(%s + 2.0)", t, t, t) : NULL;
    const char *l = u ? log1p_of(im, n, x, u) : NULL;
    Value *y = l ? im_result(im, n, DT_F32, x->ndim, x->dims) : NULL;
    if (y) im_emit(im, y, "where(%s > 1e18, log(%s) + 0.693147181, %s)", s, s, l);
    return;
  } else {   // atanh: log1p(2a / (1 - a)) / 2
    const char *u = im_temp_id(im, n, "t", DT_F32, x->ndim, x->dims, "2.0 * %s / (1.0 - %s)", a, a);
    const char *l = u ? log1p_of(im, n, x, u) : NULL;
    r = l ? im_temp_id(im, n, "t", DT_F32, x->ndim, x->dims, "0.5 * %s", l) : NULL;
  }
  Value *y = r ? im_result(im, n, DT_F32, x->ndim, x->dims) : NULL;
  if (!y) return;
  if (!strcmp(arg, "cosh")) im_emit(im, y, "%s", r);
  else im_emit(im, y, "where(%s < 0.0, -%s, %s)", s, r, r);
}

// Celu: max(0, x) + min(0, alpha expm1(x / alpha)).
static void node_celu(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = unary_input(im, n);
  if (!x || !want_float(im, n, x)) return;
  double alpha = onnx_attr_f(n, "alpha", 1.0);
  const char *q = im_temp_id(im, n, "t", DT_F32, x->ndim, x->dims, "%s / %s", x->ident, num(alpha));
  const char *e = q ? expm1_of(im, n, x, q) : NULL;
  Value *y = e ? im_result(im, n, DT_F32, x->ndim, x->dims) : NULL;
  if (y) im_emit(im, y, "maximum(%s, 0.0) + minimum(%s * %s, 0.0)", x->ident, num(alpha), e);
}

static void node_gelu(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = unary_input(im, n);
  if (!x || !want_float(im, n, x)) return;
  const Onnx__AttributeProto *ap = onnx_attr(n, "approximate");
  bool tanh_form = ap && ap->has_s && ap->s.len == 4 && !memcmp(ap->s.data, "tanh", 4);
  if (ap && ap->has_s && !tanh_form && !(ap->s.len == 4 && !memcmp(ap->s.data, "none", 4))) {
    im_fail(im, "node '%s' (Gelu): approximate '%.*s'; ONNX has none and tanh", im_node(n), (int)ap->s.len,
            (const char *)ap->s.data);
    return;
  }
  Value *y = im_result(im, n, DT_F32, x->ndim, x->dims);
  if (y) im_emit(im, y, "gelu(%s, approximate = \"%s\")", x->ident, tanh_form ? "tanh" : "none");
}

// PRelu: x where x >= 0, slope x below; the slope broadcasts to x (before
// opset 7: a slope of x's channel dimension, axis 1).
static void node_prelu(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = unary_input(im, n), *s = x ? im_input(im, n, 1) : NULL;
  if (!s || !want_float(im, n, x) || !im_is_tensor(im, n, s)) return;
  const char *sl = im_operand(im, s);
  static char buf[600];
  char dims[300];
  if (im->opset < 7 && s->kind != V_SCALAR && s->ndim == 1 && x->ndim >= 2 && s->dims[0] == x->dims[1] &&
      s->dims[0] != 1) {
    int64_t d[MAX_DIMS];
    for (int i = 0; i < x->ndim - 1; i++) d[i] = i ? 1 : s->dims[0];
    onnx_join_ints(dims, sizeof dims, d, x->ndim - 1);
    snprintf(buf, sizeof buf, "reshape(%.250s, %s)", s->ident, dims);
    sl = buf;
  } else {
    int64_t d[MAX_DIMS];
    int nd;
    if (!onnx_broadcast(x, s, d, &nd) || nd != x->ndim || memcmp(d, x->dims, (size_t)nd * sizeof *d)) {
      im_fail(im, "node '%s' (PRelu): a slope of shape %s does not broadcast to %s", im_node(n),
              onnx_shape_str(s->dims, s->ndim), onnx_shape_str(x->dims, x->ndim));
      return;
    }
  }
  Value *y = im_result(im, n, DT_F32, x->ndim, x->dims);
  if (y) im_emit(im, y, "where(%s < 0.0, %s * %s, %s)", x->ident, sl, x->ident, x->ident);
}

// A bound of Clip given as an input: a one-element constant or tensor, as an
// operand; NULL when absent, "" after a message.
static const char *clip_bound(Importer *im, const Onnx__NodeProto *n, size_t i, const Value *x, char *buf) {
  if (i >= n->n_input || !n->input[i][0]) return NULL;
  Value *b = im_input(im, n, i);
  if (!b) return "";
  if (b->kind == V_INTS && b->nints == 1) {
    snprintf(buf, 64, b->ints[0] < 0 ? "(%lld)" : "%lld", (long long)b->ints[0]);
    return buf;
  }
  if (onnx_numel(b->dims, b->ndim) != 1 || (b->kind != V_SCALAR && b->dtype != x->dtype)) {
    im_fail(im, "node '%s' (Clip): its bound '%s' must be one %s value, not %s %s", im_node(n), b->onnx,
            onnx_dtype_word(x->dtype), onnx_dtype_word(b->dtype), onnx_shape_str(b->dims, b->ndim));
    return "";
  }
  if (b->kind == V_SCALAR) return im_operand(im, b);
  if (!im_is_tensor(im, n, b)) return "";
  return b->ident;
}

// Clip: min and max as attributes before opset 11, optional inputs after;
// min(max(x, lo), hi), so lo > hi gives hi, as ONNX's.
static void node_clip(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = unary_input(im, n);
  if (!x) return;
  if (x->dtype == DT_BOOL) return node_refuse(im, n, "a bool operand");
  char lb[640], hb[640];
  const char *lo = NULL, *hi = NULL;
  if (im->opset < 11) {
    const Onnx__AttributeProto *a = onnx_attr(n, "min"), *b = onnx_attr(n, "max");
    if (a && a->has_f && a->f > -INFINITY) lo = strcpy(lb, num(a->f));
    if (b && b->has_f && b->f < INFINITY) hi = strcpy(hb, num(b->f));
  } else {
    lo = clip_bound(im, n, 1, x, lb);
    hi = clip_bound(im, n, 2, x, hb);
    if (im->failed) return;
  }
  Value *y = im_result(im, n, x->dtype, x->ndim, x->dims);
  if (!y) return;
  // min(max(x, lo), hi), each only when given
  im_emit(im, y, "%s%s%s%s%s%s%s%s%s", hi ? "minimum(" : "", lo ? "maximum(" : "", x->ident, lo ? ", " : "",
          lo ? lo : "", lo ? ")" : "", hi ? ", " : "", hi ? hi : "", hi ? ")" : "");
}

// Max, Min, Sum, Mean of any number of tensors of one type, broadcast.
static void node_variadic(Importer *im, const Onnx__NodeProto *n, const char *fn) {
  if (n->n_input < 1) return node_refuse(im, n, "no inputs");
  Value acc = {.ndim = 0};
  char e[4096] = "";
  size_t k = 0;
  for (size_t i = 0; i < n->n_input; i++) {
    Value *v = im_input(im, n, i);
    if (!v || !im_is_tensor(im, n, v)) return;
    v = scalar_tensor(im, n, v);
    if (i && v->dtype != acc.dtype) return node_refuse(im, n, "operands of different types");
    if (v->dtype == DT_BOOL || (fn[0] == 'm' && fn[1] == 'e' && v->dtype != DT_F32))
      return node_refuse(im, n, "a bool or (for Mean) integer operand");
    int64_t d[MAX_DIMS];
    int nd;
    if (i && !onnx_broadcast(&acc, v, d, &nd)) {
      im_fail(im, "node '%s' (%s): shapes %s and %s do not broadcast", im_node(n), n->op_type,
              onnx_shape_str(acc.dims, acc.ndim), onnx_shape_str(v->dims, v->ndim));
      return;
    }
    if (!i) {
      acc = *v;
      k += (size_t)snprintf(e, sizeof e, "%s", v->ident);
      continue;
    }
    acc.ndim = nd;
    memcpy(acc.dims, d, sizeof d);
    char t[4096];
    if (fn[0] == 'm' && fn[1] == 'a') k = (size_t)snprintf(t, sizeof t, "maximum(%s, %s)", e, v->ident);
    else if (fn[0] == 'm' && fn[1] == 'i') k = (size_t)snprintf(t, sizeof t, "minimum(%s, %s)", e, v->ident);
    else k = (size_t)snprintf(t, sizeof t, "%s + %s", e, v->ident);
    if (k >= sizeof e) return node_refuse(im, n, "too many operands for one expression");
    strcpy(e, t);
  }
  Value *y = im_result(im, n, acc.dtype, acc.ndim, acc.dims);
  if (!y) return;
  if (fn[0] == 'm' && fn[1] == 'e' && n->n_input > 1) im_emit(im, y, "(%s) / %zu.0", e, n->n_input);
  else im_emit(im, y, "%s", e);
}

// Cast (and CastLike: the type of input 1) between float, int32, int64 and
// bool: float to int truncates toward zero, to bool is x != 0; an integer
// constant cast to an integer type stays a constant.
static void cast_to(Importer *im, const Onnx__NodeProto *n, DType to) {
  Value *x = im_input(im, n, 0);
  if (!x) return;
  if (x->kind == V_INTS && to != DT_F32 && n->n_output) {
    Value *y = im_add_value(im, n->output[0], V_INTS, to, x->ndim, x->dims);
    y->ints = xmalloc((size_t)(x->nints ? x->nints : 1) * sizeof *y->ints);
    y->nints = x->nints;
    for (int i = 0; i < x->nints; i++)
      y->ints[i] = to == DT_BOOL ? x->ints[i] != 0 : to == DT_I32 ? (int32_t)x->ints[i] : x->ints[i];
    return;
  }
  if (x->kind == V_SCALAR && to == DT_F32 && n->n_output) {   // a float constant stays one
    im_add_value(im, n->output[0], V_SCALAR, DT_F32, x->ndim, x->dims)->scalar = x->scalar;
    return;
  }
  if (!(x = unary_input(im, n))) return;
  Value *y = im_result(im, n, to, x->ndim, x->dims);
  if (!y) return;
  if (x->dtype == to) im_emit(im, y, "%s", x->ident);
  else if (to == DT_BOOL) im_emit(im, y, "%s != %s", x->ident, x->dtype == DT_F32 ? "0.0" : "0");
  else im_emit(im, y, "cast(%s, %s)", x->ident, onnx_dtype_word(to));
}

static void node_cast(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  int64_t t = onnx_attr_i(n, "to", 0);
  DType to;
  if (!onnx_dtype_of((int32_t)t, &to)) {
    im_fail(im, "node '%s' (Cast): to ONNX data type %lld; the importer casts to float (1), int32 (6), int64 (7) "
            "and bool (9)", im_node(n), (long long)t);
    return;
  }
  cast_to(im, n, to);
}

static void node_castlike(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *like = im_input(im, n, 1);
  if (like) cast_to(im, n, like->dtype);
}

// Identity: an integer constant stays one (a shape passed along).
static void node_identity(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x) return;
  if ((x->kind == V_INTS || x->kind == V_SCALAR) && n->n_output) {
    bool out = false;
    for (size_t i = 0; i < im->graph->n_output; i++) out |= !strcmp(im->graph->output[i]->name, n->output[0]);
    if (!out) {
      Value *y = im_add_value(im, n->output[0], x->kind, x->dtype, x->ndim, x->dims);
      y->scalar = x->scalar;
      y->nints = x->nints;
      y->ints = xmalloc((size_t)(x->nints ? x->nints : 1) * sizeof *y->ints);
      if (x->nints) memcpy(y->ints, x->ints, (size_t)x->nints * sizeof *y->ints);
      return;
    }
  }
  if (!im_is_tensor(im, n, x)) return;
  Value *y = im_result(im, n, x->dtype, x->ndim, x->dims);
  if (!y) return;
  if (x->kind == V_SCALAR) {
    char d[512];
    onnx_join_ints(d, sizeof d, x->dims, x->ndim);
    im_emit(im, y, "fill(%s%s%s)", im_operand(im, x), x->ndim ? ", " : "", d);
  } else im_emit(im, y, "%s", x->ident);
}

// Dropout in inference: the input, and a mask of all true when asked for.
// A training_mode input that is true (or not a constant) is refused.
static void node_dropout(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = unary_input(im, n);
  if (!x) return;
  if (n->n_input > 2 && n->input[2][0]) {
    Value *t = im_const_input(im, n, 2, "training_mode");
    if (!t) return;
    if (t->kind != V_INTS || t->nints != 1)
      return node_refuse(im, n, "training_mode must be a constant; the importer runs inference only");
    // training with a ratio of 0 drops nothing: the identity, as in inference
    Value *r = t->ints[0] && n->n_input > 1 && n->input[1][0] ? im_const_input(im, n, 1, "ratio") : NULL;
    if (t->ints[0] && (!r || r->kind != V_SCALAR || r->scalar != 0))
      return node_refuse(im, n, "training_mode true with a ratio that is not a constant 0; the importer runs "
                         "training-mode dropout only when it drops nothing");
  }
  if (im->opset < 7 && !onnx_attr_i(n, "is_test", 0) && n->n_output > 1 && n->output[1][0])
    return node_refuse(im, n, "is_test 0 with a mask: training-mode dropout, which the importer does not run");
  Value *y = im_result(im, n, x->dtype, x->ndim, x->dims);
  if (!y) return;
  im_emit(im, y, "%s", x->ident);
  Value *m = im_result_at(im, n, 1, DT_BOOL, x->ndim, x->dims);
  if (!m) return;
  char d[512];
  onnx_join_ints(d, sizeof d, x->dims, x->ndim);
  im_emit(im, m, "fill(true%s%s, dtype = bool)", x->ndim ? ", " : "", d);
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
  if (c->dtype != DT_BOOL) return node_refuse(im, n, "a condition that is not bool");
  if (a->kind == V_SCALAR && b->kind == V_SCALAR) a = scalar_tensor(im, n, a);
  if (!same_dtypes(im, n, a, b)) return;
  Value *y = im_result(im, n, operand_dtype(a, b), nd, d);
  if (y) im_emit(im, y, "where(%s, %s, %s)", im_operand(im, c), im_operand(im, a), im_operand(im, b));
}

static void node_not(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = unary_input(im, n);
  if (!x) return;
  if (x->dtype != DT_BOOL) return node_refuse(im, n, "a operand that is not bool");
  Value *y = im_result(im, n, DT_BOOL, x->ndim, x->dims);
  if (y) im_emit(im, y, "%s == false", x->ident);
}

// ---- the bits of integers

// BitwiseAnd, BitwiseOr, BitwiseXor (arg: the language's function) and
// BitShift (arg NULL: attribute direction, LEFT or RIGHT): tensors of one
// integer dtype (int32, int64, uint8), broadcast. The language's shifts are
// ONNX's: arithmetic right shifts of signed values, logical of unsigned,
// and a count below 0 or from the width up leaves only the sign's fill.
static void node_bits(Importer *im, const Onnx__NodeProto *n, const char *fn) {
  if (!fn) {
    const Onnx__AttributeProto *dir = onnx_attr(n, "direction");
    bool left = dir && dir->s.len == 4 && !memcmp(dir->s.data, "LEFT", 4);
    bool right = dir && dir->s.len == 5 && !memcmp(dir->s.data, "RIGHT", 5);
    if (!left && !right) return node_refuse(im, n, "attribute direction must be LEFT or RIGHT");
    fn = left ? "shift_left" : "shift_right";
  }
  Value *a, *b;
  int64_t d[MAX_DIMS];
  int nd;
  if (!binary_operands(im, n, &a, &b, d, &nd)) return;
  if (a->kind == V_SCALAR || b->kind == V_SCALAR) return node_refuse(im, n, "a float operand");
  if (!im_is_tensor(im, n, a) || !im_is_tensor(im, n, b) || !same_dtypes(im, n, a, b)) return;
  if (!is_int(a->dtype) || a->dtype == DT_BOOL) return node_refuse(im, n, "operands that are not integers");
  Value *y = im_result(im, n, a->dtype, nd, d);
  if (y) im_emit(im, y, "%s(%s, %s)", fn, im_operand(im, a), im_operand(im, b));
}

static void node_bitwise_not(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  if (!is_int(x->dtype) || x->dtype == DT_BOOL) return node_refuse(im, n, "an operand that is not an integer");
  Value *y = im_result(im, n, x->dtype, x->ndim, x->dims);
  if (y) im_emit(im, y, "bit_not(%s)", x->ident);
}

// BitCast: the same bits as dtype `to`. Floats compute as f32 and integers
// as i64, so the language trades the bits of f32 and i32 (and of a bool,
// 0 or 1, for a uint8); float64 and the 16-bit types are dtypes smelt lacks
// or keeps no bits of.
static void node_bitcast(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  int64_t t = onnx_attr_i(n, "to", 0);
  DType to;
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  if (!onnx_dtype_of((int32_t)t, &to)) {
    im_fail(im, "node '%s' (BitCast): to ONNX data type %lld, a dtype smelt lacks", im_node(n), (long long)t);
    return;
  }
  DType from = x->dtype;
  bool ok = from == to || (from == DT_F32 && to == DT_I32) || (from == DT_I32 && to == DT_F32) ||
            (from == DT_BOOL && to == DT_U8);
  if (!ok) {
    im_fail(im, "node '%s' (BitCast): %s to %s; the importer bitcasts float and int32 either way, and bool to "
            "uint8", im_node(n), onnx_dtype_word(from), onnx_dtype_word(to));
    return;
  }
  Value *y = im_result(im, n, to, x->ndim, x->dims);
  if (y && from == to) im_emit(im, y, "%s", x->ident);
  else if (y) im_emit(im, y, "bitcast(%s, %s)", x->ident, onnx_dtype_word(to));
}

const OnnxOp onnx_math_ops[] = {
    {"Add", node_arith, "+"},
    {"Sub", node_arith, "-"},
    {"Mul", node_arith, "*"},
    {"Div", node_arith, "/"},
    {"Mod", node_arith, "%"},
    {"Pow", node_arith, "pow"},
    {"Equal", node_compare, "=="},
    {"Less", node_compare, "<"},
    {"LessOrEqual", node_compare, "<="},
    {"Greater", node_compare, ">"},
    {"GreaterOrEqual", node_compare, ">="},
    {"And", node_logic, "&"},
    {"Or", node_logic, "|"},
    {"Xor", node_logic, "^"},
    {"Not", node_not, NULL},
    {"BitShift", node_bits, NULL},
    {"BitwiseAnd", node_bits, "bit_and"},
    {"BitwiseOr", node_bits, "bit_or"},
    {"BitwiseXor", node_bits, "bit_xor"},
    {"BitwiseNot", node_bitwise_not, NULL},
    {"BitCast", node_bitcast, NULL},
    {"Relu", node_unary_num, "relu"},
    {"Abs", node_unary_num, "abs"},
    {"Neg", node_unary_num, "-"},
    {"Sign", node_sign, NULL},
    {"Sigmoid", node_unary, "sigmoid(@)"},
    {"Tanh", node_unary, "tanh(@)"},
    {"Exp", node_unary, "exp(@)"},
    {"Log", node_unary, "log(@)"},
    {"Sqrt", node_unary, "sqrt(@)"},
    {"Erf", node_unary, "erf(@)"},
    {"Sin", node_unary, "sin(@)"},
    {"Cos", node_unary, "cos(@)"},
    {"Tan", node_unary, "sin(@) / cos(@)"},
    {"Floor", node_unary, "@ // 1.0"},
    {"Ceil", node_unary, "-((-@) // 1.0)"},
    {"Reciprocal", node_unary, "1.0 / @"},
    {"Softsign", node_unary, "@ / (1.0 + abs(@))"},
    {"Softplus", node_unary, "softplus(@)"},   // x past 20: log(1 + e^x) - x < 3e-9
    {"Mish", node_unary, "@ * tanh(softplus(@))"},
    {"IsNaN", node_unary, "?@ != @"},
    {"LeakyRelu", node_unary, "where(@ < 0.0, {alpha=0.01} * @, @)"},
    {"ThresholdedRelu", node_unary, "where(@ > {alpha=1}, @, 0.0)"},
    {"HardSigmoid", node_unary, "maximum(minimum({alpha=0.2} * @ + {beta=0.5}, 1.0), 0.0)"},
    {"HardSwish", node_unary, "@ * maximum(minimum(@ / 6.0 + 0.5, 1.0), 0.0)"},
    {"Shrink", node_unary, "where(@ < -{lambd=0.5}, @ + {bias=0}, where(@ > {lambd=0.5}, @ - {bias=0}, 0.0))"},
    {"Swish", node_unary, "@ * sigmoid({alpha=1} * @)"},
    {"Elu", node_unary, "where(@ > 0.0, @, {alpha=1} * &)"},
    {"Selu", node_unary, "{gamma=1.05070102214813232421875} * where(@ > 0.0, @, {alpha=1.67326319217681884765625} * &)"},
    {"Celu", node_celu, NULL},
    {"Gelu", node_gelu, NULL},
    {"PRelu", node_prelu, NULL},
    {"IsInf", node_isinf, NULL},
    {"Round", node_round, NULL},
    {"Atan", node_atan, "t"},
    {"Asin", node_atan, "s"},
    {"Acos", node_atan, "c"},
    {"Sinh", node_hyper, "sinh"},
    {"Cosh", node_hyper, "cosh"},
    {"Asinh", node_hyper, "asinh"},
    {"Acosh", node_hyper, "acosh"},
    {"Atanh", node_hyper, "atanh"},
    {"Clip", node_clip, NULL},
    {"Max", node_variadic, "max"},
    {"Min", node_variadic, "min"},
    {"Sum", node_variadic, "sum"},
    {"Mean", node_variadic, "mean"},
    {"Identity", node_identity, NULL},
    {"Where", node_where, NULL},
    {"Cast", node_cast, NULL},
    {"CastLike", node_castlike, NULL},
    {"Dropout", node_dropout, NULL},
    {NULL, NULL, NULL},
};
