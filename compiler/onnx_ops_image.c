// onnx_ops_image.c: the ONNX ops that resample images: Resize, Upsample,
// GridSample, AffineGrid, RoiAlign, DeformConv and Col2Im.
//
// Resize's shapes, scales and roi are constants, so the source positions and
// weights of every output coordinate are known here: each resized axis is a
// gather of rows by constant indices and a sum weighted by constant weights,
// both computed in double precision as ONNX's reference does
// (onnx/reference/ops/op_resize.py) and stored as params.
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_importer.h"

// A string attribute's value, or dflt when absent.
static const char *attr_s(const Onnx__NodeProto *n, const char *name, const char *dflt, char *buf, size_t cap) {
  const Onnx__AttributeProto *a = onnx_attr(n, name);
  if (!a || !a->has_s) return dflt;
  snprintf(buf, cap, "%.*s", (int)a->s.len, (const char *)a->s.data);
  return buf;
}

static bool is(const char *a, const char *b) { return !strcmp(a, b); }

// ---- Resize: the plan of one axis

enum { M_NEAREST, M_LINEAR, M_CUBIC };
enum { NM_ROUND_FLOOR, NM_ROUND_CEIL, NM_FLOOR, NM_CEIL };

typedef struct {
  int mode, nearest, taps;
  char ctm[64];          // coordinate_transformation_mode
  double cubic_a;
  bool exclude_outside, antialias;
  double extrapolation;
} ResizeAttrs;

typedef struct {
  int64_t in, out;
  int taps;
  int64_t *idx;          // [out, taps], clamped into [0, in)
  double *w;             // [out, taps]
  bool *extrap;          // [out]: the output is extrapolation_value (tf_crop_and_resize)
} AxisPlan;

// The weights of ratio in (0, 1] (the reference's get_coeffs) into c; how many.
static int coeffs(const ResizeAttrs *a, double ratio, double scale, double *c) {
  double A = a->cubic_a;
  if (a->mode == M_NEAREST) {
    bool up = ratio == floor(ratio);
    bool right = a->nearest == NM_ROUND_FLOOR ? ratio > 0.5
                 : a->nearest == NM_ROUND_CEIL ? ratio >= 0.5
                 : a->nearest == NM_CEIL;
    if (up) right = true;
    c[0] = !right, c[1] = right;
    return 2;
  }
  if (!a->antialias) {
    if (a->mode == M_LINEAR) {
      c[0] = 1 - ratio, c[1] = ratio;
      return 2;
    }
    double r1 = ratio + 1, q = 1 - ratio, q1 = q + 1;
    c[0] = ((A * r1 - 5 * A) * r1 + 8 * A) * r1 - 4 * A;
    c[1] = ((A + 2) * ratio - (A + 3)) * ratio * ratio + 1;
    c[2] = ((A + 2) * q - (A + 3)) * q * q + 1;
    c[3] = ((A * q1 - 5 * A) * q1 + 8 * A) * q1 - 4 * A;
    return 4;
  }
  // antialias: the kernel stretched by 1 / scale when downsampling, normalized
  double s = scale < 1 ? scale : 1, sum = 0;
  int k = 0;
  if (a->mode == M_LINEAR) {
    int start = (int)floor(-1 / s) + 1, foot = 2 - 2 * start;
    for (int i = start; i < start + foot; i++) {
      double v = 1 - fabs((i - ratio) * s);
      c[k++] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
  } else {
    int start = (int)floor(-2 / s) + 1, end = 2 - start;
    for (int i = start; i < end; i++) {
      double x = fabs(s * (i - ratio)), x2 = x * x, x3 = x2 * x;
      c[k++] = x <= 1 ? (A + 2) * x3 - (A + 3) * x2 + 1 : x < 2 ? A * x3 - 5 * A * x2 + 8 * A * x - 4 * A : 0;
    }
  }
  for (int i = 0; i < k; i++) sum += c[i];
  for (int i = 0; i < k; i++) c[i] /= sum;
  return k;
}

// The source coordinate of output y (the reference's _compute_x_ori).
static double source_x(const ResizeAttrs *a, double y, double scale, int64_t in, int64_t out, const double *roi,
                       bool *extrap) {
  double ow = scale * (double)in, x;
  *extrap = false;
  if (is(a->ctm, "align_corners")) x = ow == 1 ? 0 : y * (double)(in - 1) / (ow - 1);
  else if (is(a->ctm, "asymmetric")) x = y / scale;
  else if (is(a->ctm, "tf_crop_and_resize")) {
    x = ow == 1 ? (roi[1] - roi[0]) * (double)(in - 1) / 2 : y * (roi[1] - roi[0]) * (double)(in - 1) / (ow - 1);
    x = x + roi[0] * (double)(in - 1);
    *extrap = x < 0 || x > (double)(in - 1);
  } else if (is(a->ctm, "pytorch_half_pixel")) x = ow == 1 ? -0.5 : (y + 0.5) / scale - 0.5;
  else if (is(a->ctm, "half_pixel")) x = (y + 0.5) / scale - 0.5;
  else {   // half_pixel_symmetric
    double adjustment = (double)out / ow, center = (double)in / 2, offset = center * (1 - adjustment);
    x = offset + (y + 0.5) / scale - 0.5;
  }
  return x;
}

// Every output coordinate's source rows and weights along one axis.
static void axis_plan(const ResizeAttrs *a, int64_t in, int64_t out, double scale, const double *roi, AxisPlan *p) {
  double c[512];   // the taps: 4 at most, or 4 / scale + 2 with antialias (scale at least 1/64)
  p->in = in, p->out = out;
  p->taps = coeffs(a, 0.5, scale, c);
  p->idx = xmalloc((size_t)(out * p->taps) * sizeof *p->idx);
  p->w = xmalloc((size_t)(out * p->taps) * sizeof *p->w);
  p->extrap = xmalloc((size_t)(out ? out : 1) * sizeof *p->extrap);
  int n = p->taps, pad = (n + 1) / 2;
  for (int64_t y = 0; y < out; y++) {
    double x = source_x(a, (double)y, scale, in, out, roi, &p->extrap[y]);
    double fx = floor(x);
    double ratio = x == fx ? 1 : x - fx;
    coeffs(a, ratio, scale, c);
    // the n indices nearest x, ties to the smaller (the reference's _get_neighbor)
    double xp = x + pad, pp = floor(xp), frac = xp - pp;
    int64_t off = n % 2 == 0 ? (frac == 0 ? -(n / 2) : -(n / 2) + 1) : (frac <= 0.5 ? -((n - 1) / 2) : -((n - 1) / 2) + 1);
    int64_t start = (int64_t)pp + off - pad;
    double sum = 0;
    for (int j = 0; j < n; j++) {
      int64_t i = start + j;
      if (a->exclude_outside && (i < 0 || i >= in)) c[j] = 0;
      sum += c[j];
    }
    for (int j = 0; j < n; j++) {
      int64_t i = start + j;
      p->idx[y * n + j] = i < 0 ? 0 : i >= in ? in - 1 : i;
      p->w[y * n + j] = p->extrap[y] ? 0 : a->exclude_outside ? c[j] / (sum == 0 ? 1 : sum) : c[j];
    }
  }
}

static void plan_free(AxisPlan *p) {
  free(p->idx);
  free(p->w);
  free(p->extrap);
}

// A nearest plan that picks one row per output (weight 1, the others 0, no
// extrapolation) is a gather alone: into its first column.
static bool plan_is_gather(AxisPlan *p) {
  int64_t *pick = xmalloc((size_t)(p->out ? p->out : 1) * sizeof *pick);
  bool ok = true;
  for (int64_t y = 0; y < p->out && ok; y++) {
    pick[y] = -1;
    ok = !p->extrap[y];
    for (int j = 0; j < p->taps && ok; j++) {
      double w = p->w[y * p->taps + j];
      if (w == 1 && pick[y] < 0) pick[y] = p->idx[y * p->taps + j];
      else ok = w == 0;
    }
    ok = ok && pick[y] >= 0;
  }
  if (ok) {   // only now, once every row is known to pick one
    memcpy(p->idx, pick, (size_t)p->out * sizeof *pick);
    p->taps = 1;
  }
  free(pick);
  return ok;
}

// A param of n values from doubles, named after the node's output; its name
// (a Value * would not last: the values move as more are added).
static const char *const_param(Importer *im, const Onnx__NodeProto *n, const char *what, int axis, int nd,
                          const int64_t *dims, const double *v, const bool *only) {
  int64_t count = onnx_numel(dims, nd);
  float *f = xmalloc((size_t)(count ? count : 1) * sizeof *f);
  for (int64_t i = 0; i < count; i++) f[i] = only ? (only[i] ? (float)v[0] : 0.0f) : (float)v[i];
  char name[512];
  snprintf(name, sizeof name, "%s.%s%d", n->output[0], what, axis);
  return im_add_param(im, name, nd, dims, f)->ident;
}

// x resized along axis by plan p: into y when y is given (the node's result),
// else a new value. Values are passed as copies: a Value * into im->vals
// moves when a value is added.
static Value resize_axis(Importer *im, const Onnx__NodeProto *n, Value xv, int axis, AxisPlan *p,
                         const ResizeAttrs *a, const Value *y) {
  const Value *x = &xv;
  int r = x->ndim;
  int64_t rest = onnx_numel(x->dims, r) / x->dims[axis];
  char perm[256] = "", inv[256] = "", od[512] = "", name[512];
  int64_t pd[MAX_DIMS], ip[MAX_DIMS], outd[MAX_DIMS];
  pd[0] = axis;
  for (int i = 0, k = 1; i < r; i++)
    if (i != axis) pd[k++] = i;
  for (int i = 0; i < r; i++) ip[pd[i]] = i;
  for (int i = 0; i < r; i++) outd[i] = i == 0 ? p->out : x->dims[pd[i]];
  onnx_join_ints(perm, sizeof perm, pd, r);
  onnx_join_ints(inv, sizeof inv, ip, r);
  onnx_join_ints(od, sizeof od, outd, r);
  bool gather_only = a->mode == M_NEAREST && plan_is_gather(p);
  int64_t idims[2] = {p->out, p->taps};
  double *fi = xmalloc((size_t)(p->out * p->taps + 1) * sizeof *fi);
  for (int64_t i = 0; i < p->out * p->taps; i++) fi[i] = (double)p->idx[i];
  const char *ids = const_param(im, n, "rows", axis, gather_only ? 1 : 2, idims, fi, NULL);
  free(fi);
  char src[1024];
  if (axis == 0) snprintf(src, sizeof src, "reshape(%s, %lld, %lld)", x->ident, (long long)p->in, (long long)rest);
  else snprintf(src, sizeof src, "reshape(permute(%s, %s), %lld, %lld)", x->ident, perm, (long long)p->in, (long long)rest);
  int64_t sd[2] = {p->out, rest};
  snprintf(name, sizeof name, "resized%d", axis);
  Value s = *im_temp_value(im, n, name, V_LET, x->dtype, 2, sd);
  if (!gather_only && x->dtype != DT_F32) {   // weights would round integers beyond 2^24
    im_fail(im, "node '%s' (Resize): nearest of a %s tensor with outputs that are not one input element each "
            "(extrapolation_value or exclude_outside); the importer weighs float tensors only", im_node(n),
            onnx_dtype_word(x->dtype));
    return xv;
  }
  if (gather_only) {
    im_emit(im, &s, "gather(%s, cast(%s, i32))", src, ids);
  } else {
    int64_t wd[3] = {p->out, p->taps, 1}, bd[2] = {p->out, 1};
    const char *w = const_param(im, n, "weights", axis, 3, wd, p->w, NULL);
    bool any = false;
    for (int64_t i = 0; i < p->out; i++) any |= p->extrap[i];
    char bias[600] = "";
    if (any) {
      snprintf(bias, sizeof bias, " + %s", const_param(im, n, "outside", axis, 2, bd, &a->extrapolation, p->extrap));
    }
    im_emit(im, &s, "sum(gather(%s, cast(%s, i32)) * %s, axis = 1)%s", src, ids, w, bias);
  }
  int64_t yd[MAX_DIMS];
  memcpy(yd, x->dims, sizeof yd);
  yd[axis] = p->out;
  Value out;
  if (y) out = *y;
  else {
    snprintf(name, sizeof name, "axis%d", axis);
    out = *im_temp_value(im, n, name, V_LET, x->dtype, r, yd);
  }
  if (axis == 0) im_emit(im, &out, "reshape(%s, %s)", s.ident, od);
  else im_emit(im, &out, "permute(reshape(%s, %s), %s)", s.ident, od, inv);
  return out;
}

// The float values of an optional constant input (scales, roi) into v (at
// most max); -1 when absent or empty, -2 with a message.
static int float_input(Importer *im, const Onnx__NodeProto *n, size_t i, const char *what, double *v, int max) {
  if (i >= n->n_input || !n->input[i][0]) return -1;
  Value *c = im_const_input(im, n, i, what);
  if (!c) return -2;
  int64_t count;
  const float *f = im_param_data(im, c, &count);
  if (!f) {
    im_fail(im, "node '%s' (%s): its %s '%s' must be a float constant (an initializer or a Constant node)", im_node(n),
            n->op_type, what, c->onnx);
    return -2;
  }
  if (count == 0) return -1;
  if (count > max) {
    im_fail(im, "node '%s' (%s): its %s has %lld values (at most %d)", im_node(n), n->op_type, what, (long long)count, max);
    return -2;
  }
  for (int64_t k = 0; k < count; k++) v[k] = f[k];
  return (int)count;
}

// The attributes of Resize (opset 11 on); false with a message.
static bool resize_attrs(Importer *im, const Onnx__NodeProto *n, ResizeAttrs *a) {
  char b1[64], b2[64], b3[64];
  const char *mode = attr_s(n, "mode", "nearest", b1, sizeof b1);
  snprintf(a->ctm, sizeof a->ctm, "%s", attr_s(n, "coordinate_transformation_mode", "half_pixel", b2, sizeof b2));
  const char *nm = attr_s(n, "nearest_mode", "round_prefer_floor", b3, sizeof b3);
  a->mode = is(mode, "nearest") ? M_NEAREST : is(mode, "linear") ? M_LINEAR : is(mode, "cubic") ? M_CUBIC : -1;
  a->nearest = is(nm, "round_prefer_floor") ? NM_ROUND_FLOOR : is(nm, "round_prefer_ceil") ? NM_ROUND_CEIL
               : is(nm, "floor") ? NM_FLOOR : is(nm, "ceil") ? NM_CEIL : -1;
  a->cubic_a = onnx_attr_f(n, "cubic_coeff_a", -0.75);
  a->exclude_outside = onnx_attr_i(n, "exclude_outside", 0) != 0;
  a->antialias = onnx_attr_i(n, "antialias", 0) != 0;
  a->extrapolation = onnx_attr_f(n, "extrapolation_value", 0.0);
  static const char *const ctms[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                                     "tf_crop_and_resize", "half_pixel_symmetric"};
  bool ctm_ok = false;
  for (size_t i = 0; i < sizeof ctms / sizeof *ctms; i++) ctm_ok |= is(a->ctm, ctms[i]);
  if (is(a->ctm, "half_pixel_symmetric") && im->opset < 19) ctm_ok = false;
  const char *bad = a->mode < 0 ? "mode" : a->nearest < 0 ? "nearest_mode" : !ctm_ok ? "coordinate_transformation_mode" : NULL;
  if (bad) {
    im_fail(im, "node '%s' (Resize): %s '%s' is not supported (opset %lld)", im_node(n), bad,
            a->mode < 0 ? mode : a->nearest < 0 ? nm : a->ctm, (long long)im->opset);
    return false;
  }
  if (a->antialias && a->mode == M_NEAREST) {
    im_fail(im, "node '%s' (Resize): antialias applies to linear and cubic modes, not nearest", im_node(n));
    return false;
  }
  return true;
}

// The output size and scale of every axis; false with a message.
static bool resize_sizes(Importer *im, const Onnx__NodeProto *n, const Value *x, int sizes_at, int scales_at,
                         int64_t *out, double *scale) {
  int r = x->ndim;
  int64_t ax[MAX_DIMS];
  int nax = onnx_attr_ints(n, "axes", ax, MAX_DIMS);
  if (nax < 0) {
    nax = r;
    for (int i = 0; i < r; i++) ax[i] = i;
  }
  for (int i = 0; i < nax; i++) {
    ax[i] = im_axis(im, n, ax[i], r);
    for (int j = 0; j < i; j++)
      if (ax[j] == ax[i]) return im_fail(im, "node '%s' (Resize): axis %lld twice in axes", im_node(n), (long long)ax[i]), false;
  }
  if (im->failed) return false;
  for (int i = 0; i < r; i++) out[i] = x->dims[i], scale[i] = 1;
  double sc[MAX_DIMS];
  int ns = scales_at >= 0 ? float_input(im, n, (size_t)scales_at, "scales", sc, MAX_DIMS) : -1;
  if (ns == -2) return false;
  if (ns >= 0) {
    if (ns != nax)
      return im_fail(im, "node '%s' (Resize): %d scales for %d axes", im_node(n), ns, nax), false;
    for (int i = 0; i < nax; i++) {
      if (!(sc[i] > 0)) return im_fail(im, "node '%s' (Resize): scale %g", im_node(n), sc[i]), false;
      scale[ax[i]] = sc[i];
      double rows = sc[i] * (double)x->dims[ax[i]];
      if (!(rows < (1 << 24)))   // checked as a double: the cast of a larger one is undefined
        return im_fail(im, "node '%s' (Resize): output axis %lld would have %g rows (at most 2^24)", im_node(n),
                       (long long)ax[i], rows), false;
      out[ax[i]] = (int64_t)rows;
    }
    return true;
  }
  if (sizes_at < 0 || (size_t)sizes_at >= n->n_input || !n->input[sizes_at][0])
    return im_fail(im, "node '%s' (Resize) has neither scales nor sizes", im_node(n)), false;
  const Value *s = im_ints_input(im, n, (size_t)sizes_at, "sizes");
  if (!s) return false;
  if (s->nints != nax) return im_fail(im, "node '%s' (Resize): %d sizes for %d axes", im_node(n), s->nints, nax), false;
  for (int i = 0; i < nax; i++) {
    if (s->ints[i] < 1) return im_fail(im, "node '%s' (Resize): size %lld", im_node(n), (long long)s->ints[i]), false;
    out[ax[i]] = s->ints[i];
    scale[ax[i]] = (double)s->ints[i] / (double)x->dims[ax[i]];
  }
  char buf[64];
  const char *policy = attr_s(n, "keep_aspect_ratio_policy", "stretch", buf, sizeof buf);
  if (is(policy, "stretch")) return true;
  if (!is(policy, "not_larger") && !is(policy, "not_smaller"))
    return im_fail(im, "node '%s' (Resize): keep_aspect_ratio_policy '%s'", im_node(n), policy), false;
  double k = scale[ax[0]];
  for (int i = 1; i < nax; i++)
    k = is(policy, "not_larger") ? fmin(k, scale[ax[i]]) : fmax(k, scale[ax[i]]);
  for (int i = 0; i < nax; i++) {
    scale[ax[i]] = k;
    double rows = k * (double)x->dims[ax[i]] + 0.5;
    if (!(rows < (1 << 24)))
      return im_fail(im, "node '%s' (Resize): output axis %lld would have %g rows (at most 2^24)", im_node(n),
                     (long long)ax[i], rows), false;
    out[ax[i]] = (int64_t)rows;
  }
  return true;
}

// x resized to out with the given scales (roi: starts then ends, one per
// axis, or NULL), the result being the node's output.
static void resize_emit(Importer *im, const Onnx__NodeProto *n, Value *x, const ResizeAttrs *a, const int64_t *out,
                        const double *scale, const double *roi) {
  int r = x->ndim, last = -1;
  bool skip[MAX_DIMS];
  for (int i = 0; i < r; i++) {
    // the reference's identity test: the scale close to 1, the size and roi unchanged
    skip[i] = fabs(scale[i] - 1) <= 1e-9 * fmax(1, fabs(scale[i])) && out[i] == x->dims[i] &&
              (!roi || (fabs(roi[i]) <= 0 && fabs(roi[i + r] - 1) <= 1e-9));
    if (!skip[i]) last = i;
    if (out[i] < 1) {
      im_fail(im, "node '%s' (Resize): the output would be %s", im_node(n), onnx_shape_str(out, r));
      return;
    }
  }
  if (x->dtype != DT_F32 && a->mode != M_NEAREST) {
    im_fail(im, "node '%s' (Resize): %s input with mode linear or cubic; the importer interpolates float tensors",
            im_node(n), onnx_dtype_word(x->dtype));
    return;
  }
  for (int i = 0; i < r; i++)
    if (!skip[i] && x->dims[i] >= (1 << 24)) {
      im_fail(im, "node '%s' (Resize): axis %d has %lld rows (at most 2^24)", im_node(n), i, (long long)x->dims[i]);
      return;
    }
  for (int i = 0; i < r; i++)   // the plan holds taps per output row: bounded like the input
    if (!skip[i] && out[i] >= (1 << 24)) {
      im_fail(im, "node '%s' (Resize): output axis %d would have %lld rows (at most 2^24)", im_node(n), i,
              (long long)out[i]);
      return;
    }
  for (int i = 0; i < r; i++) {   // and its table of taps per output row, a param of the weights file
    double c[512];
    int taps = skip[i] ? 0 : coeffs(a, 0.5, scale[i], c);
    if ((double)out[i] * taps > (double)(1 << 24)) {
      im_fail(im, "node '%s' (Resize): output axis %d would need %lld rows of %d taps (at most 2^24 in all)", im_node(n),
              i, (long long)out[i], taps);
      return;
    }
  }
  Value X = *x, *yp = im_result(im, n, x->dtype, r, out);
  if (!yp) return;
  Value Y = *yp, cur = X;
  if (last < 0) {
    im_emit(im, &Y, "%s", X.ident);
    return;
  }
  for (int i = 0; i < r && !im->failed; i++) {
    if (skip[i]) continue;
    double rr[2] = {roi ? roi[i] : 0, roi ? roi[i + r] : 1};
    AxisPlan p;
    axis_plan(a, cur.dims[i], out[i], scale[i], rr, &p);
    cur = resize_axis(im, n, cur, i, &p, a, i == last ? &Y : NULL);
    plan_free(&p);
  }
}

static void node_resize(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  if (x->ndim < 1 || x->kind == V_SCALAR) {
    im_fail(im, "node '%s' (Resize): a scalar input", im_node(n));
    return;
  }
  int r = x->ndim;
  int64_t out[MAX_DIMS];
  double scale[MAX_DIMS];
  ResizeAttrs a;
  if (im->opset < 11) {   // opset 10: scales only, as Upsample
    if (!resize_sizes(im, n, x, -1, 1, out, scale)) return;
    a = (ResizeAttrs){.mode = -1};
    char b[64];
    const char *mode = attr_s(n, "mode", "nearest", b, sizeof b);
    for (int i = 0; i < r; i++)
      if (is(mode, "nearest") && scale[i] != floor(scale[i])) mode = "nearest with a scale that is not an integer";
    if (!is(mode, "nearest")) {
      im_fail(im, "node '%s' (Resize): opset %lld mode %s; the importer takes nearest with integer scales before opset 11",
              im_node(n), (long long)im->opset, mode);
      return;
    }
    a = (ResizeAttrs){.mode = M_NEAREST, .nearest = NM_FLOOR, .ctm = "asymmetric"};
    resize_emit(im, n, x, &a, out, scale, NULL);
    return;
  }
  if (!resize_attrs(im, n, &a) || !resize_sizes(im, n, x, 3, 2, out, scale)) return;
  for (int i = 0; i < r; i++)   // the antialias kernel grows as 1 / scale: at most 256 taps
    if (a.antialias && scale[i] < 1.0 / 64) {
      im_fail(im, "node '%s' (Resize): antialias with scale %g (at least 1/64)", im_node(n), scale[i]);
      return;
    }
  double roi[2 * MAX_DIMS];
  bool crop = is(a.ctm, "tf_crop_and_resize");
  if (crop) {
    int64_t ax[MAX_DIMS];
    int nax = onnx_attr_ints(n, "axes", ax, MAX_DIMS);
    double given[2 * MAX_DIMS];
    int nr = float_input(im, n, 1, "roi", given, 2 * MAX_DIMS);
    if (nr == -2) return;
    if (nax < 0) {
      nax = r;
      for (int i = 0; i < r; i++) ax[i] = i;
    }
    if (nr != 2 * nax) {
      im_fail(im, "node '%s' (Resize): tf_crop_and_resize needs a roi of %d values", im_node(n), 2 * nax);
      return;
    }
    for (int i = 0; i < 2 * nax; i++)   // a source coordinate must stay an integer when floored
      if (!(fabs(given[i]) <= (1 << 20))) {
        im_fail(im, "node '%s' (Resize): roi value %g (at most 2^20 in magnitude)", im_node(n), given[i]);
        return;
      }
    for (int i = 0; i < r; i++) roi[i] = 0, roi[i + r] = 1;
    for (int i = 0; i < nax; i++) {
      int d = im_axis(im, n, ax[i], r);
      roi[d] = given[i], roi[d + r] = given[nax + i];
    }
  }
  resize_emit(im, n, x, &a, out, scale, crop ? roi : NULL);
}

// Upsample (opset 7: scales attribute; 9: scales input): nearest with integer
// scales, each output taking its source's row floor(y / scale).
static void node_upsample(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  int r = x->ndim;
  double sc[MAX_DIMS];
  int ns;
  if (im->opset < 9) {
    const Onnx__AttributeProto *s = onnx_attr(n, "scales");
    ns = s ? (int)s->n_floats : -1;
    for (int i = 0; i < ns && i < MAX_DIMS; i++) sc[i] = s->floats[i];
  } else {
    ns = float_input(im, n, 1, "scales", sc, MAX_DIMS);
    if (ns == -2) return;
  }
  if (ns != r) {
    im_fail(im, "node '%s' (Upsample) needs %d scales, one per axis of %s", im_node(n), r, onnx_shape_str(x->dims, r));
    return;
  }
  char b[64];
  const char *mode = attr_s(n, "mode", "nearest", b, sizeof b);
  int64_t out[MAX_DIMS];
  for (int i = 0; i < r; i++) {
    if (!is(mode, "nearest") || sc[i] != floor(sc[i]) || sc[i] < 1) {
      im_fail(im, "node '%s' (Upsample): mode %s with scale %g; the importer takes nearest with integer scales", im_node(n),
              mode, sc[i]);
      return;
    }
    out[i] = (int64_t)sc[i] * x->dims[i];
  }
  ResizeAttrs a = {.mode = M_NEAREST, .nearest = NM_FLOOR, .ctm = "asymmetric"};
  resize_emit(im, n, x, &a, out, sc, NULL);
}

// ---- GridSample: the grid is data, so its taps are computed by the model

// A number for the model file, in parentheses when negative.
static const char *num(double v) {
  static char buf[8][48];
  static int which;
  char *b = buf[which++ & 7];
  snprintf(b, 48, v < 0 ? "(%.17g" : "%.17g", v);
  if (!strpbrk(b, ".en")) strcat(b, ".0");
  if (v < 0) strcat(b, ")");
  return b;
}

typedef struct {
  int mode;              // M_NEAREST, M_LINEAR, M_CUBIC
  int pad;               // 0 zeros, 1 border, 2 reflection
  bool align;
} GridAttrs;

// x reflected into [lo, hi] as the reference's _gs_reflect: by the nearer
// border, as many times as it takes.
static const char *gs_reflect(Importer *im, const Onnx__NodeProto *n, const char *what, const int64_t *np,
                              const char *x, double lo, double hi) {
  char nm[64];
  double rng = hi - lo;
  snprintf(nm, sizeof nm, "%s_dlo", what);
  const char *dlo = im_temp_id(im, n, nm, DT_F32, 2, np, "%s - %s", num(lo), x);
  snprintf(nm, sizeof nm, "%s_dhi", what);
  const char *dhi = im_temp_id(im, n, nm, DT_F32, 2, np, "%s - %s", x, num(hi));
  snprintf(nm, sizeof nm, "%s_klo", what);
  const char *klo = im_temp_id(im, n, nm, DT_F32, 2, np, "%s // %s", dlo, num(rng));
  snprintf(nm, sizeof nm, "%s_khi", what);
  const char *khi = im_temp_id(im, n, nm, DT_F32, 2, np, "%s // %s", dhi, num(rng));
  snprintf(nm, sizeof nm, "%s_rlo", what);
  const char *rlo = im_temp_id(im, n, nm, DT_F32, 2, np, "%s - %s * %s", dlo, klo, num(rng));
  snprintf(nm, sizeof nm, "%s_rhi", what);
  const char *rhi = im_temp_id(im, n, nm, DT_F32, 2, np, "%s - %s * %s", dhi, khi, num(rng));
  snprintf(nm, sizeof nm, "%s_refl", what);
  char lo_s[48], hi_s[48];
  snprintf(lo_s, sizeof lo_s, "%s", num(lo));
  snprintf(hi_s, sizeof hi_s, "%s", num(hi));
  return im_temp_id(im, n, nm, DT_F32, 2, np,
                    "where(%s < %s, where(%s %% 2.0 == 0.0, %s + %s, %s - %s), where(%s > %s, where(%s %% 2.0 == 0.0, %s - %s, "
                    "%s + %s), %s))",
                    x, lo_s, klo, lo_s, rlo, hi_s, rlo, x, hi_s, khi, hi_s, rhi, lo_s, rhi, x);
}

// The taps of spatial axis i (size d) from its grid coordinates g: each
// tap's row (clamped into [0, d)) and weight (0 outside with zeros padding)
// into idx and w; how many.
static int gs_axis_taps(Importer *im, const Onnx__NodeProto *n, const GridAttrs *a, int i, int64_t d, const char *g,
                        const int64_t *np, const char **idx, const char **w) {
  char nm[64];
  double lo = a->align ? 0 : -0.5, hi = a->align ? (double)d - 1 : (double)d - 0.5;
  snprintf(nm, sizeof nm, "gs_x%d", i);
  const char *x = a->align ? im_temp_id(im, n, nm, DT_F32, 2, np, "(%s + 1.0) / 2.0 * %s", g, num((double)(d - 1)))
                           : im_temp_id(im, n, nm, DT_F32, 2, np, "((%s + 1.0) * %s - 1.0) / 2.0", g, num((double)d));
  if (a->mode == M_NEAREST) {   // rint: halves to even
    snprintf(nm, sizeof nm, "gs_f%d", i);
    const char *f = im_temp_id(im, n, nm, DT_F32, 2, np, "%s // 1.0", x);
    snprintf(nm, sizeof nm, "gs_r%d", i);
    x = im_temp_id(im, n, nm, DT_F32, 2, np, "%s + where(%s - %s > 0.5, 1.0, where(%s - %s == 0.5, %s %% 2.0, 0.0))", f, x, f, x, f, f);
  }
  snprintf(nm, sizeof nm, "gs_p%d", i);
  if (a->pad == 1)
    x = im_temp_id(im, n, nm, DT_F32, 2, np, "where(%s < %s, 0.0, where(%s > %s, %s, %s))", x, num(lo), x, num(hi),
                   num((double)(d - 1)), x);
  else if (a->pad == 2) x = gs_reflect(im, n, nm, np, x, lo, hi);
  int taps = a->mode == M_NEAREST ? 1 : a->mode == M_LINEAR ? 2 : 4;
  const char *x0 = x, *t = NULL;
  if (a->mode != M_NEAREST) {
    snprintf(nm, sizeof nm, "gs_x0_%d", i);
    x0 = im_temp_id(im, n, nm, DT_F32, 2, np, "%s // 1.0", x);
    snprintf(nm, sizeof nm, "gs_t%d", i);
    t = im_temp_id(im, n, nm, DT_F32, 2, np, "%s - %s", x, x0);
  }
  const double A = -0.75;
  for (int k = 0; k < taps; k++) {
    int off = a->mode == M_CUBIC ? k - 1 : k;
    char wexpr[1024], at[600];
    if (a->mode == M_NEAREST) snprintf(wexpr, sizeof wexpr, "fill(1.0, %lld, %lld)", (long long)np[0], (long long)np[1]);
    else if (a->mode == M_LINEAR) snprintf(wexpr, sizeof wexpr, k ? "%s" : "1.0 - %s", t);
    else {
      // Keys' cubic convolution (A = -0.75) at distances t + 1, t, 1 - t, 2 - t
      const char *u = k == 0 ? "(%s + 1.0)" : k == 1 ? "%s" : k == 2 ? "(1.0 - %s)" : "(2.0 - %s)";
      char v[128];
      snprintf(v, sizeof v, u, t);
      if (k == 1 || k == 2)
        snprintf(wexpr, sizeof wexpr, "(%s * %s - %s) * %s * %s + 1.0", num(A + 2), v, num(A + 3), v, v);
      else
        snprintf(wexpr, sizeof wexpr, "((%s * %s - %s) * %s + %s) * %s - %s", num(A), v, num(5 * A), v, num(8 * A), v,
                 num(4 * A));
    }
    snprintf(at, sizeof at, off ? "%s + %s" : "%s%.0s", x0, num(off));
    snprintf(nm, sizeof nm, "gs_at%d_%d", i, k);
    const char *pos = im_temp_id(im, n, nm, DT_F32, 2, np, "%s", at);
    if (a->pad == 2) {
      snprintf(nm, sizeof nm, "gs_rf%d_%d", i, k);
      pos = gs_reflect(im, n, nm, np, pos, lo, hi);
    }
    snprintf(nm, sizeof nm, "gs_i%d_%d", i, k);
    idx[k] = im_temp_id(im, n, nm, DT_F32, 2, np, "maximum(minimum(%s, %s), 0.0)", pos, num((double)(d - 1)));
    snprintf(nm, sizeof nm, "gs_w%d_%d", i, k);
    if (a->pad == 0)
      w[k] = im_temp_id(im, n, nm, DT_F32, 2, np, "where(%s < 0.0, 0.0, where(%s > %s, 0.0, %s))", pos, pos, num((double)(d - 1)),
                        wexpr);
    else w[k] = im_temp_id(im, n, nm, DT_F32, 2, np, "%s", wexpr);
  }
  return taps;
}

static bool gs_attrs(Importer *im, const Onnx__NodeProto *n, GridAttrs *a) {
  char b1[64], b2[64];
  bool v20 = im->opset >= 20;
  const char *mode = attr_s(n, "mode", v20 ? "linear" : "bilinear", b1, sizeof b1);
  const char *pad = attr_s(n, "padding_mode", "zeros", b2, sizeof b2);
  a->mode = is(mode, "nearest") ? M_NEAREST : is(mode, v20 ? "linear" : "bilinear") ? M_LINEAR
            : is(mode, v20 ? "cubic" : "bicubic") ? M_CUBIC : -1;
  a->pad = is(pad, "zeros") ? 0 : is(pad, "border") ? 1 : is(pad, "reflection") ? 2 : -1;
  a->align = onnx_attr_i(n, "align_corners", 0) != 0;
  if (a->mode < 0 || a->pad < 0) {
    im_fail(im, "node '%s' (GridSample): %s '%s' is not one of opset %lld's", im_node(n),
            a->mode < 0 ? "mode" : "padding_mode", a->mode < 0 ? mode : pad, (long long)im->opset);
    return false;
  }
  return true;
}

// GridSample: Y[n, c, o] is X[n, c] sampled at grid[n, o]. X is made a table
// of rows [N * spatial, C]; each tap of every output point is a gather of
// one row, by an index the model computes from the grid, times its weight.
static void node_gridsample(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0), *g = x ? im_input(im, n, 1) : NULL;
  if (!g || !im_is_tensor(im, n, x) || !im_is_tensor(im, n, g)) return;
  GridAttrs a;
  if (!gs_attrs(im, n, &a)) return;
  int k = x->ndim - 2;
  if (k < 1 || (im->opset < 20 && k != 2) || g->ndim != k + 2 || g->dims[0] != x->dims[0] || g->dims[k + 1] != k ||
      x->dtype != DT_F32 || g->dtype != DT_F32 || k > 3) {
    im_fail(im, "node '%s' (GridSample): X %s %s and grid %s %s; the importer takes f32 X [N, C, D1..Dk] (k 1 to 3) "
            "and grid [N, O1..Ok, k]", im_node(n), onnx_dtype_word(x->dtype), onnx_shape_str(x->dims, x->ndim),
            onnx_dtype_word(g->dtype), onnx_shape_str(g->dims, g->ndim));
    return;
  }
  Value X = *x, G = *g;   // copies: x and g move as values are added
  x = &X, g = &G;
  int64_t N = x->dims[0], C = x->dims[1], S = onnx_numel(x->dims + 2, k), P = onnx_numel(g->dims + 1, k);
  for (int i = 0; i < k; i++)
    if (a.pad == 2 && a.align && x->dims[2 + i] == 1) {
      im_fail(im, "node '%s' (GridSample): reflection with align_corners over an axis of size 1", im_node(n));
      return;
    }
  if (N * S >= (1 << 24)) {
    im_fail(im, "node '%s' (GridSample): X has %lld points (the importer indexes fewer than 2^24)", im_node(n),
            (long long)(N * S));
    return;
  }
  int64_t np[2] = {N, P}, td[2] = {N * S, C}, gd[3] = {N, P, C};
  char perm[64] = "0";
  for (int i = 0; i < k; i++) snprintf(perm + strlen(perm), sizeof perm - strlen(perm), ", %d", i + 2);
  strcat(perm, ", 1");
  const char *tbl = im_temp_id(im, n, "gs_table", DT_F32, 2, td, "reshape(permute(%s, %s), %lld, %lld)", x->ident, perm,
                               (long long)(N * S), (long long)C);
  const char *base = im_temp_id(im, n, "gs_base", DT_F32, 2, (int64_t[]){N, 1}, "reshape(cast(iota(%lld), f32) * %s, %lld, 1)",
                                (long long)N, num((double)S), (long long)N);
  const char *idx[3][4], *w[3][4];
  int taps[3];
  int64_t stride = S;
  int64_t strides[3];
  for (int i = 0; i < k; i++) {
    stride /= x->dims[2 + i];
    strides[i] = stride;
    char nm[32];
    snprintf(nm, sizeof nm, "gs_g%d", i);
    // the grid's last axis holds the coordinates innermost first
    const char *gi = im_temp_id(im, n, nm, DT_F32, 2, np, "reshape(%s[..., %d], %lld, %lld)", g->ident, k - 1 - i, (long long)N,
                                (long long)P);
    taps[i] = gs_axis_taps(im, n, &a, i, x->dims[2 + i], gi, np, idx[i], w[i]);
  }
  int total = 1;
  for (int i = 0; i < k; i++) total *= taps[i];
  char *acc = xstrdup("");
  for (int c = 0; c < total && !im->failed; c++) {
    char ie[2048], we[1024], nm[32];
    snprintf(ie, sizeof ie, "%s", base);
    we[0] = 0;
    for (int i = 0, r = c; i < k; i++) {
      int t = r % taps[i];
      r /= taps[i];
      snprintf(ie + strlen(ie), sizeof ie - strlen(ie), " + %s * %s", idx[i][t], num((double)strides[i]));
      snprintf(we + strlen(we), sizeof we - strlen(we), "%s%s", i ? " * " : "", w[i][t]);
    }
    snprintf(nm, sizeof nm, "gs_v%d", c);
    const char *v = im_temp_id(im, n, nm, DT_F32, 3, gd, "gather(%s, cast(%s, i32)) * reshape(%s, %lld, %lld, 1)", tbl, ie, we,
                               (long long)N, (long long)P);
    snprintf(nm, sizeof nm, "gs_sum%d", c);
    const char *s = c ? im_temp_id(im, n, nm, DT_F32, 3, gd, "%s + %s", acc, v) : v;
    free(acc);
    acc = xstrdup(s);
  }
  int64_t yd[MAX_DIMS] = {N, C};
  memcpy(yd + 2, g->dims + 1, (size_t)k * sizeof *yd);
  Value *y = im_result(im, n, DT_F32, k + 2, yd);
  char od[256];
  onnx_join_ints(od, sizeof od, yd, k + 2);
  if (y && !im->failed) im_emit(im, y, "reshape(permute(%s, 0, 2, 1), %s)", acc, od);
  free(acc);
}

// AffineGrid: grid[n, p] = theta[n] @ (x, y[, z], 1) of the base grid's
// point p, the base grid (constant for a constant size) a param.
static void node_affine_grid(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *theta = im_input(im, n, 0);
  if (!theta || !im_is_tensor(im, n, theta)) return;
  const Value *size = im_ints_input(im, n, 1, "size");
  if (!size) return;
  int k = size->nints - 2;
  bool align = onnx_attr_i(n, "align_corners", 0) != 0;
  if ((k != 2 && k != 3) || theta->ndim != 3 || theta->dtype != DT_F32 || theta->dims[0] != size->ints[0] ||
      theta->dims[1] != k || theta->dims[2] != k + 1) {
    im_fail(im, "node '%s' (AffineGrid): theta %s with size of %d values; the importer takes f32 theta [N, 2, 3] "
            "with size [N, C, H, W], or [N, 3, 4] with [N, C, D, H, W]", im_node(n),
            onnx_shape_str(theta->dims, theta->ndim), size->nints);
    return;
  }
  const int64_t *d = size->ints + 2;   // D, H, W or H, W
  Value T = *theta;   // a copy: theta moves as values are added
  theta = &T;
  for (int i = 0; i < k; i++)
    if (d[i] < 1 || (align && d[i] == 1)) {
      im_fail(im, "node '%s' (AffineGrid): spatial size %lld%s", im_node(n), (long long)d[i],
              align ? " with align_corners (the base grid needs two points an axis)" : "");
      return;
    }
  int64_t P = 1;
  for (int i = 0; i < k; i++)   // the base grid is a param of P points: bounded before it is made
    if ((P *= d[i]) > (1 << 24) || d[i] > (1 << 24)) {
      im_fail(im, "node '%s' (AffineGrid): a grid of more than 2^24 points", im_node(n));
      return;
    }
  int64_t bd[2] = {P, k + 1};
  float *base = xmalloc((size_t)(P * (k + 1)) * sizeof *base);
  for (int64_t p = 0; p < P; p++) {
    int64_t r = p;
    for (int i = k - 1; i >= 0; i--) {   // column 0 is x (the last axis), then y, z
      int64_t at = r % d[i];
      r /= d[i];
      double step = align ? 2.0 / (double)(d[i] - 1) : 2.0 / (double)d[i];
      double start = align ? -1 : -1 + step / 2;
      base[p * (k + 1) + (k - 1 - i)] = (float)(start + (double)at * step);
    }
    base[p * (k + 1) + k] = 1;
  }
  char name[512];
  snprintf(name, sizeof name, "%s.base_grid", n->output[0]);
  const char *b = im_add_param(im, name, 2, bd, base)->ident;
  int64_t yd[5] = {theta->dims[0]};
  memcpy(yd + 1, d, (size_t)k * sizeof *yd);
  yd[k + 1] = k;
  Value *y = im_result(im, n, DT_F32, k + 2, yd);
  char od[256];
  onnx_join_ints(od, sizeof od, yd, k + 2);
  if (y) im_emit(im, y, "reshape(matmul(%s, %s, tb = true), %s)", b, theta->ident, od);
}

// RoiAlign with a fixed sampling_ratio: every roi's sample points (a
// constant number of them) are computed by the model from the rois; each is
// four gathers of X's rows [N * H * W, C] weighted bilinearly, as the
// reference (onnx/reference/ops/op_roi_align.py) does, max mode included
// (the largest weighted corner).
static void node_roi_align(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0), *ro = x ? im_input(im, n, 1) : NULL, *bi = ro ? im_input(im, n, 2) : NULL;
  if (!bi || !im_is_tensor(im, n, x) || !im_is_tensor(im, n, ro) || !im_is_tensor(im, n, bi)) return;
  Value X = *x, RO = *ro, BI = *bi;   // copies: values move as more are added
  char b1[64], b2[64];
  const char *mode = attr_s(n, "mode", "avg", b1, sizeof b1);
  const char *ctm = im->opset >= 16 ? attr_s(n, "coordinate_transformation_mode", "half_pixel", b2, sizeof b2)
                                    : "output_half_pixel";
  int64_t PH = onnx_attr_i(n, "output_height", 1), PW = onnx_attr_i(n, "output_width", 1);
  int64_t SR = onnx_attr_i(n, "sampling_ratio", 0);
  double ss = onnx_attr_f(n, "spatial_scale", 1.0);
  if (X.ndim != 4 || X.dtype != DT_F32 || RO.ndim != 2 || RO.dims[1] != 4 || RO.dtype != DT_F32 || BI.ndim != 1 ||
      BI.dims[0] != RO.dims[0] || (BI.dtype != DT_I64 && BI.dtype != DT_I32)) {
    im_fail(im, "node '%s' (RoiAlign): X %s, rois %s, batch_indices %s; the importer takes f32 X [N, C, H, W], f32 "
            "rois [R, 4] and integer batch_indices [R]", im_node(n), onnx_shape_str(X.dims, X.ndim),
            onnx_shape_str(RO.dims, RO.ndim), onnx_shape_str(BI.dims, BI.ndim));
    return;
  }
  if (SR < 1 || PH < 1 || PW < 1 || (!is(mode, "avg") && !is(mode, "max")) ||
      (!is(ctm, "half_pixel") && !is(ctm, "output_half_pixel"))) {
    im_fail(im, "node '%s' (RoiAlign): sampling_ratio %lld, output %lldx%lld, mode '%s', coordinate_transformation_mode "
            "'%s'; the importer takes a sampling_ratio of 1 or more (0 makes the number of samples depend on the rois)",
            im_node(n), (long long)SR, (long long)PH, (long long)PW, mode, ctm);
    return;
  }
  int64_t N = X.dims[0], C = X.dims[1], H = X.dims[2], W = X.dims[3], R = RO.dims[0], Q = PH * PW * SR * SR;
  if (N * H * W >= (1 << 24) || Q > (1 << 20)) {
    im_fail(im, "node '%s' (RoiAlign): too many points to index", im_node(n));
    return;
  }
  bool half = is(ctm, "half_pixel");
  // per sample point q = ((ph * PW + pw) * SR + iy) * SR + ix: its bin and its place in the bin
  double *cph = xmalloc((size_t)Q * sizeof *cph), *cpw = xmalloc((size_t)Q * sizeof *cpw);
  double *ciy = xmalloc((size_t)Q * sizeof *ciy), *cix = xmalloc((size_t)Q * sizeof *cix);
  for (int64_t q = 0; q < Q; q++) {
    cix[q] = (double)(q % SR) + 0.5, ciy[q] = (double)(q / SR % SR) + 0.5;
    cpw[q] = (double)(q / (SR * SR) % PW), cph[q] = (double)(q / (SR * SR * PW));
  }
  int64_t qd[1] = {Q}, rq[2] = {R, Q}, r1[2] = {R, 1}, rqc[3] = {R, Q, C};
  const char *pph = const_param(im, n, "roi_ph", 0, 1, qd, cph, NULL), *ppw = const_param(im, n, "roi_pw", 0, 1, qd, cpw, NULL);
  const char *piy = const_param(im, n, "roi_iy", 0, 1, qd, ciy, NULL), *pix = const_param(im, n, "roi_ix", 0, 1, qd, cix, NULL);
  free(cph), free(cpw), free(ciy), free(cix);
  const char *off = half ? " - 0.5" : "";
  const char *c[4];
  for (int k = 0; k < 4; k++) {
    char nm[32];
    snprintf(nm, sizeof nm, "roi_c%d", k);
    c[k] = im_temp_id(im, n, nm, DT_F32, 2, r1, "reshape(%s[:, %d], %lld, 1) * %s%s", RO.ident, k, (long long)R, num(ss), off);
  }
  const char *rw = im_temp_id(im, n, "roi_w", DT_F32, 2, r1, half ? "%s - %s" : "maximum(%s - %s, 1.0)", c[2], c[0]);
  const char *rh = im_temp_id(im, n, "roi_h", DT_F32, 2, r1, half ? "%s - %s" : "maximum(%s - %s, 1.0)", c[3], c[1]);
  const char *bw = im_temp_id(im, n, "roi_bw", DT_F32, 2, r1, "%s / %s", rw, num((double)PW));
  const char *bh = im_temp_id(im, n, "roi_bh", DT_F32, 2, r1, "%s / %s", rh, num((double)PH));
  const char *yy = im_temp_id(im, n, "roi_yy", DT_F32, 2, rq, "%s + %s * %s + %s * %s / %s", c[1], pph, bh, piy, bh, num((double)SR));
  const char *xx = im_temp_id(im, n, "roi_xx", DT_F32, 2, rq, "%s + %s * %s + %s * %s / %s", c[0], ppw, bw, pix, bw, num((double)SR));
  const char *valid = im_temp_id(im, n, "roi_in", DT_F32, 2, rq,
                                 "where(%s < (-1.0), 0.0, where(%s > %s, 0.0, where(%s < (-1.0), 0.0, where(%s > %s, 0.0, "
                                 "1.0))))", yy, yy, num((double)H), xx, xx, num((double)W));
  // per axis: the low and high rows and the weight of the high one
  const char *lo[2], *hi[2], *l[2];
  for (int a = 0; a < 2; a++) {
    const char *v = a ? xx : yy, *ax = a ? "x" : "y";
    double top = (double)((a ? W : H) - 1);
    char nm[32];
    snprintf(nm, sizeof nm, "roi_%s0", ax);
    const char *p = im_temp_id(im, n, nm, DT_F32, 2, rq, "maximum(%s, 0.0)", v);
    snprintf(nm, sizeof nm, "roi_%sf", ax);
    const char *f = im_temp_id(im, n, nm, DT_F32, 2, rq, "%s // 1.0", p);
    snprintf(nm, sizeof nm, "roi_%slo", ax);
    lo[a] = im_temp_id(im, n, nm, DT_F32, 2, rq, "minimum(%s, %s)", f, num(top));
    snprintf(nm, sizeof nm, "roi_%shi", ax);
    hi[a] = im_temp_id(im, n, nm, DT_F32, 2, rq, "where(%s >= %s, %s, %s + 1.0)", f, num(top), num(top), f);
    snprintf(nm, sizeof nm, "roi_%sl", ax);
    l[a] = im_temp_id(im, n, nm, DT_F32, 2, rq, "where(%s >= %s, 0.0, %s - %s)", f, num(top), p, f);
  }
  const char *tbl = im_temp_id(im, n, "roi_table", DT_F32, 2, (int64_t[]){N * H * W, C}, "reshape(permute(%s, 0, 2, 3, 1), %lld, %lld)",
                               X.ident, (long long)(N * H * W), (long long)C);
  const char *base = im_temp_id(im, n, "roi_base", DT_F32, 2, r1, "reshape(cast(%s, f32), %lld, 1) * %s", BI.ident, (long long)R,
                                num((double)(H * W)));
  const char *v[4];
  for (int k = 0; k < 4; k++) {
    char nm[32], wy[128], wx[128];
    const char *ry = k < 2 ? lo[0] : hi[0], *rx = k % 2 ? hi[1] : lo[1];
    snprintf(wy, sizeof wy, k < 2 ? "(1.0 - %s)" : "%s", l[0]);
    snprintf(wx, sizeof wx, k % 2 ? "%s" : "(1.0 - %s)", l[1]);
    snprintf(nm, sizeof nm, "roi_v%d", k);
    v[k] = im_temp_id(im, n, nm, DT_F32, 3, rqc, "gather(%s, cast(%s + %s * %s + %s, i32)) * reshape(%s * %s * %s, %lld, %lld, 1)",
                      tbl, base, ry, num((double)W), rx, wy, wx, valid, (long long)R, (long long)Q);
  }
  int64_t yd[4] = {R, C, PH, PW};
  Value *y = im_result(im, n, DT_F32, 4, yd);
  if (!y) return;
  char bins[128];
  snprintf(bins, sizeof bins, "%lld, %lld, %lld, %lld, %lld", (long long)R, (long long)PH, (long long)PW,
           (long long)(SR * SR), (long long)C);
  if (is(mode, "avg"))
    im_emit(im, y, "permute(sum(reshape(%s + %s + %s + %s, %s), axis = 3) / %s, 0, 3, 1, 2)", v[0], v[1], v[2], v[3], bins,
            num((double)(SR * SR)));
  else
    im_emit(im, y, "permute(max(reshape(maximum(maximum(%s, %s), maximum(%s, %s)), %s), axis = 3), 0, 3, 1, 2)", v[0],
            v[1], v[2], v[3], bins);
}

// DeformConv (2-D): every kernel tap of every output point samples X at its
// place plus a learned offset, bilinearly with zeros outside (the
// reference's GridSample with align_corners); the samples [N, C, K, O],
// times the mask, are then a grouped matmul with W.
static void node_deform_conv(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *xp = im_input(im, n, 0), *wp = xp ? im_input(im, n, 1) : NULL, *op = wp ? im_input(im, n, 2) : NULL;
  if (!op || !im_is_tensor(im, n, xp) || !im_is_tensor(im, n, wp) || !im_is_tensor(im, n, op)) return;
  Value X = *xp, Wt = *wp, OF = *op, B = {0}, M = {0};
  bool has_b = n->n_input > 3 && n->input[3][0], has_m = n->n_input > 4 && n->input[4][0];
  if (has_b) {
    Value *b = im_input(im, n, 3);
    if (!b || !im_is_tensor(im, n, b)) return;
    B = *b;
  }
  if (has_m) {
    Value *m = im_input(im, n, 4);
    if (!m || !im_is_tensor(im, n, m)) return;
    M = *m;
  }
  int64_t ks[2] = {0, 0}, st[2] = {1, 1}, dl[2] = {1, 1}, pd[4] = {0, 0, 0, 0};
  int nk = onnx_attr_ints(n, "kernel_shape", ks, 2), ns = onnx_attr_ints(n, "strides", st, 2);
  int nd = onnx_attr_ints(n, "dilations", dl, 2), np_ = onnx_attr_ints(n, "pads", pd, 4);
  int64_t G = onnx_attr_i(n, "group", 1), OG = onnx_attr_i(n, "offset_group", 1);
  bool shapes = X.ndim == 4 && Wt.ndim == 4 && OF.ndim == 4 && X.dtype == DT_F32 && Wt.dtype == DT_F32 &&
                OF.dtype == DT_F32 && (nk < 0 || nk == 2) && (ns < 0 || ns == 2) && (nd < 0 || nd == 2) &&
                (np_ < 0 || np_ == 4);
  if (!shapes) {
    im_fail(im, "node '%s' (DeformConv): X %s, W %s, offset %s; the importer takes 2-D f32 deformable convolutions",
            im_node(n), onnx_shape_str(X.dims, X.ndim), onnx_shape_str(Wt.dims, Wt.ndim), onnx_shape_str(OF.dims, OF.ndim));
    return;
  }
  if (nk < 0) ks[0] = Wt.dims[2], ks[1] = Wt.dims[3];
  int64_t N = X.dims[0], C = X.dims[1], H = X.dims[2], Wd = X.dims[3], OC = Wt.dims[0], K = ks[0] * ks[1];
  int64_t OH = OF.dims[2], OW = OF.dims[3], O = OH * OW;
  int64_t eh = (ks[0] - 1) * dl[0] + 1, ew = (ks[1] - 1) * dl[1] + 1;
  bool ok = G >= 1 && OG >= 1 && C % G == 0 && OC % G == 0 && C % OG == 0 && Wt.dims[1] == C / G &&
            Wt.dims[2] == ks[0] && Wt.dims[3] == ks[1] && OF.dims[0] == N && OF.dims[1] == OG * K * 2 && st[0] > 0 &&
            st[1] > 0 && OH == (H - eh + pd[0] + pd[2]) / st[0] + 1 && OW == (Wd - ew + pd[1] + pd[3]) / st[1] + 1 &&
            H > 1 && Wd > 1 && (!has_b || (B.ndim == 1 && B.dims[0] == OC)) &&
            (!has_m || (M.ndim == 4 && M.dims[0] == N && M.dims[1] == OG * K && M.dims[2] == OH && M.dims[3] == OW));
  if (!ok || N * C * H * Wd >= (1 << 24)) {
    im_fail(im, "node '%s' (DeformConv): X %s, W %s, offset %s, group %lld, offset_group %lld do not fit together "
            "(or an axis of X has size 1, where the reference divides by zero)", im_node(n),
            onnx_shape_str(X.dims, 4), onnx_shape_str(Wt.dims, 4), onnx_shape_str(OF.dims, 4), (long long)G, (long long)OG);
    return;
  }
  int64_t Cg = C / OG;
  // each tap's place without offset: [K, O]
  double *bh = xmalloc((size_t)(K * O) * sizeof *bh), *bw = xmalloc((size_t)(K * O) * sizeof *bw);
  for (int64_t k = 0; k < K; k++)
    for (int64_t o = 0; o < O; o++) {
      bh[k * O + o] = (double)(-pd[0] + st[0] * (o / OW) + (k / ks[1]) * dl[0]);
      bw[k * O + o] = (double)(-pd[1] + st[1] * (o % OW) + (k % ks[1]) * dl[1]);
    }
  int64_t ko[2] = {K, O}, q4[4] = {N, OG, K, O}, q5[5] = {N, OG, K, O, Cg};
  const char *ph = const_param(im, n, "dc_h", 0, 2, ko, bh, NULL), *pw = const_param(im, n, "dc_w", 0, 2, ko, bw, NULL);
  free(bh), free(bw);
  const char *off = im_temp_id(im, n, "dc_off", DT_F32, 5, (int64_t[]){N, OG, K, 2, O}, "reshape(%s, %lld, %lld, %lld, 2, %lld)",
                               OF.ident, (long long)N, (long long)OG, (long long)K, (long long)O);
  const char *y = im_temp_id(im, n, "dc_y", DT_F32, 4, q4, "%s + %s[:, :, :, 0]", ph, off);
  const char *x = im_temp_id(im, n, "dc_x", DT_F32, 4, q4, "%s + %s[:, :, :, 1]", pw, off);
  const char *y0 = im_temp_id(im, n, "dc_y0", DT_F32, 4, q4, "%s // 1.0", y), *x0 = im_temp_id(im, n, "dc_x0", DT_F32, 4, q4, "%s // 1.0", x);
  const char *ly = im_temp_id(im, n, "dc_ly", DT_F32, 4, q4, "%s - %s", y, y0), *lx = im_temp_id(im, n, "dc_lx", DT_F32, 4, q4, "%s - %s", x, x0);
  const char *tbl = im_temp_id(im, n, "dc_table", DT_F32, 2, (int64_t[]){N * OG * H * Wd, Cg},
                               "reshape(permute(reshape(%s, %lld, %lld, %lld, %lld, %lld), 0, 1, 3, 4, 2), %lld, %lld)", X.ident,
                               (long long)N, (long long)OG, (long long)Cg, (long long)H, (long long)Wd,
                               (long long)(N * OG * H * Wd), (long long)Cg);
  const char *base = im_temp_id(im, n, "dc_base", DT_F32, 4, (int64_t[]){N, OG, 1, 1}, "reshape(cast(iota(%lld), f32) * %s, %lld, %lld, 1, 1)",
                                (long long)(N * OG), num((double)(H * Wd)), (long long)N, (long long)OG);
  char mask[600] = "";
  if (has_m)
    snprintf(mask, sizeof mask, " * reshape(%s, %lld, %lld, %lld, %lld)", M.ident, (long long)N, (long long)OG,
             (long long)K, (long long)O);
  char acc[1024] = "";
  for (int t = 0; t < 4; t++) {
    char nm[32];
    int dy = t / 2, dx = t % 2;
    snprintf(nm, sizeof nm, "dc_ty%d", t);
    const char *ry = im_temp_id(im, n, nm, DT_F32, 4, q4, dy ? "%s + 1.0" : "%s", y0);
    snprintf(nm, sizeof nm, "dc_tx%d", t);
    const char *rx = im_temp_id(im, n, nm, DT_F32, 4, q4, dx ? "%s + 1.0" : "%s", x0);
    // zero outside [0, H - 1] x [0, W - 1]; the row clamped so the gather stays inside
    snprintf(nm, sizeof nm, "dc_w%d", t);
    char wy[128], wx[128];
    snprintf(wy, sizeof wy, dy ? "%s" : "(1.0 - %s)", ly);
    snprintf(wx, sizeof wx, dx ? "%s" : "(1.0 - %s)", lx);
    const char *w = im_temp_id(im, n, nm, DT_F32, 4, q4,
                               "where(%s < 0.0, 0.0, where(%s > %s, 0.0, where(%s < 0.0, 0.0, where(%s > %s, 0.0, %s * %s))))%s",
                               ry, ry, num((double)(H - 1)), rx, rx, num((double)(Wd - 1)), wy, wx, mask);
    snprintf(nm, sizeof nm, "dc_v%d", t);
    const char *v = im_temp_id(im, n, nm, DT_F32, 5, q5,
                               "gather(%s, cast(%s + maximum(minimum(%s, %s), 0.0) * %s + maximum(minimum(%s, %s), 0.0), i32)) * "
                               "reshape(%s, %lld, %lld, %lld, %lld, 1)", tbl, base, ry, num((double)(H - 1)), num((double)Wd), rx,
                               num((double)(Wd - 1)), w, (long long)N, (long long)OG, (long long)K, (long long)O);
    snprintf(acc + strlen(acc), sizeof acc - strlen(acc), "%s%s", t ? " + " : "", v);
  }
  // samples [N, OG, K, O, Cg] -> [N, G, (C / G) * K, O], then W [G, OC / G, (C / G) * K] times them
  int64_t g4[4] = {N, G, C / G * K, O};
  const char *smp = im_temp_id(im, n, "dc_cols", DT_F32, 4, g4, "reshape(permute(%s, 0, 1, 4, 2, 3), %lld, %lld, %lld, %lld)", acc,
                               (long long)N, (long long)G, (long long)(C / G * K), (long long)O);
  int64_t yd[4] = {N, OC, OH, OW};
  Value *yv = im_result(im, n, DT_F32, 4, yd);
  if (!yv) return;
  char bias[600] = "";
  if (has_b) snprintf(bias, sizeof bias, " + reshape(%s, %lld, 1, 1)", B.ident, (long long)OC);
  im_emit(im, yv, "reshape(matmul(reshape(%s, %lld, %lld, %lld), %s), %lld, %lld, %lld, %lld)%s", Wt.ident, (long long)G,
          (long long)(OC / G), (long long)(C / G * K), smp, (long long)N, (long long)OC, (long long)OH, (long long)OW, bias);
}

// Col2Im: every element of a column (channel c, block offset k, block l)
// lands on one pixel of the image or off it (in the padding). With constant
// shapes that pixel is known here: a scatter_add of the columns' rows by
// constant pixel indices, the last row collecting what falls off.
static void node_col2im(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *xp = im_input(im, n, 0);
  if (!xp || !im_is_tensor(im, n, xp)) return;
  Value X = *xp;
  const Value *is = im_ints_input(im, n, 1, "image_shape"), *bs = is ? im_ints_input(im, n, 2, "block_shape") : NULL;
  if (!bs) return;
  int k = is->nints;
  int64_t dl[MAX_DIMS], pd[2 * MAX_DIMS], st[MAX_DIMS], nb[MAX_DIMS];
  for (int i = 0; i < MAX_DIMS; i++) dl[i] = st[i] = 1, pd[i] = pd[i + MAX_DIMS] = 0;
  int nd = onnx_attr_ints(n, "dilations", dl, MAX_DIMS), ns = onnx_attr_ints(n, "strides", st, MAX_DIMS);
  int np_ = onnx_attr_ints(n, "pads", pd, 2 * MAX_DIMS);
  bool ok = k >= 1 && k + 2 <= MAX_DIMS && bs->nints == k && (nd < 0 || nd == k) && (ns < 0 || ns == k) &&
            (np_ < 0 || np_ == 2 * k) && X.ndim == 3 && X.dtype == DT_F32;
  // every size below 2^24, so that the arithmetic here stays far inside int64
  const int64_t lim = (int64_t)1 << 24;
  int64_t K = 1, L = 1, P = 1;
  for (int i = 0; i < k && ok; i++) {
    int64_t img = is->ints[i], blk = bs->ints[i];
    ok = img >= 1 && img < lim && blk >= 1 && blk < lim && dl[i] >= 1 && dl[i] < lim && st[i] >= 1 &&
         st[i] < lim && pd[i] >= 0 && pd[i] < lim && pd[i + k] >= 0 && pd[i + k] < lim;
    int64_t span = ok ? dl[i] * (blk - 1) + 1 : 0;
    nb[i] = ok ? (img + pd[i] + pd[i + k] - span) / st[i] + 1 : 0;
    ok = ok && nb[i] >= 1;
    if (ok) K *= blk, L *= nb[i], P *= img;
    ok = ok && K < lim && L < lim && P < lim;
  }
  if (!ok || X.dims[1] % K || X.dims[2] != L || K * L > (1 << 24) || P >= (1 << 24)) {
    im_fail(im, "node '%s' (Col2Im): input %s with image_shape and block_shape of %d and %d values; they do not fit "
            "together (the input is f32 [N, C * prod(block_shape), blocks])", im_node(n), onnx_shape_str(X.dims, X.ndim),
            is->nints, bs->nints);
    return;
  }
  int64_t N = X.dims[0], C = X.dims[1] / K;
  // the pixel of each (k, l), or P when it falls in the padding
  double *pix = xmalloc((size_t)(K * L) * sizeof *pix);
  for (int64_t kk = 0; kk < K; kk++)
    for (int64_t l = 0; l < L; l++) {
      int64_t at = 0, rk = kk, rl = l;
      bool in = true;
      for (int i = k - 1, stride = 1; i >= 0; i--) {
        int64_t off = rk % bs->ints[i], blk = rl % nb[i];
        rk /= bs->ints[i], rl /= nb[i];
        int64_t q = blk * st[i] - pd[i] + off * dl[i];
        in = in && q >= 0 && q < is->ints[i];
        at += q * stride;
        stride *= (int)is->ints[i];
      }
      pix[kk * L + l] = in ? (double)at : (double)P;
    }
  int64_t kl[1] = {K * L};
  const char *ids = const_param(im, n, "pixels", 0, 1, kl, pix, NULL);
  free(pix);
  int64_t cd[2] = {K * L, N * C}, sd[2] = {P + 1, N * C};
  const char *cols = im_temp_id(im, n, "c2i_cols", DT_F32, 2, cd, "reshape(permute(reshape(%s, %lld, %lld, %lld, %lld), 2, 3, 0, 1), %lld, %lld)",
                                X.ident, (long long)N, (long long)C, (long long)K, (long long)L, (long long)(K * L),
                                (long long)(N * C));
  const char *sum = im_temp_id(im, n, "c2i_sum", DT_F32, 2, sd, "scatter_add(cast(%s, i32), %s, %lld)", ids, cols, (long long)(P + 1));
  int64_t yd[MAX_DIMS] = {N, C};
  memcpy(yd + 2, is->ints, (size_t)k * sizeof *yd);
  Value *y = im_result(im, n, DT_F32, k + 2, yd);
  char od[256];
  onnx_join_ints(od, sizeof od, yd, k + 2);
  if (y)
    im_emit(im, y, "reshape(permute(reshape(%s[0:%lld], %lld, %lld, %lld), 1, 2, 0), %s)", sum, (long long)P, (long long)P,
            (long long)N, (long long)C, od);
}

const OnnxOp onnx_image_ops[] = {
    {"Resize", node_resize, NULL},
    {"Upsample", node_upsample, NULL},
    {"GridSample", node_gridsample, NULL},
    {"AffineGrid", node_affine_grid, NULL},
    {"RoiAlign", node_roi_align, NULL},
    {"DeformConv", node_deform_conv, NULL},
    {"Col2Im", node_col2im, NULL},
    {NULL, NULL, NULL},
};
