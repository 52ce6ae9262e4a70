// onnx_ops_shape.c: the ONNX ops that move data (Reshape, Flatten, Squeeze,
// Unsqueeze, Transpose, Concat, Split, Slice, Pad, Expand, Tile, the Gathers
// and Scatters, DepthToSpace, SpaceToDepth, Trilu, EyeLike) and the integer
// shape arithmetic (Shape, Size, ConstantOfShape, Range). Shapes are static,
// so a shape computed by nodes is a compile-time integer list (V_INTS): these
// ops fold such inputs at import time, and the shape they produce is again a
// constant that Reshape, Expand, Tile and ConstantOfShape can read.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_importer.h"

// ---- shared helpers

static bool is_graph_output(const Importer *im, const char *name) {
  for (size_t i = 0; i < im->graph->n_output; i++)
    if (!strcmp(im->graph->output[i]->name, name)) return true;
  return false;
}

// Makes v usable as a tensor: im_is_tensor for an integer constant; a
// one-element float constant (a number elsewhere) gets a `let` of its value
// and is a tensor from then on.
static bool tensor_in(Importer *im, const Onnx__NodeProto *n, Value *v) {
  if (v->kind != V_SCALAR) return im_is_tensor(im, n, v);
  char dims[512];
  onnx_join_ints(dims, sizeof dims, v->dims, v->ndim);
  if (v->ndim) im_out(im, "    let %s = fill(%s, %s)   # %s\n", v->ident, im_operand(im, v), dims,
                      onnx_shape_str(v->dims, v->ndim));
  else im_out(im, "    let %s = fill(%s, 1)[0]   # []\n", v->ident, im_operand(im, v));
  v->kind = V_LET;
  return true;
}

// Output k of n as the integer constant vals (taken over). A graph output
// must be computed by the model, so it also gets a `let` of the values.
static void ints_result(Importer *im, const Onnx__NodeProto *n, size_t k, DType dt, int nd, const int64_t *dims,
                        int64_t *vals) {
  if (k >= n->n_output || !n->output[k][0]) {
    free(vals);
    return;
  }
  if (nd > MAX_DIMS) {
    free(vals);
    im_fail(im, "node '%s' (%s) makes a tensor of %d dimensions (at most %d)", im_node(n), n->op_type, nd, MAX_DIMS);
    return;
  }
  const char *name = n->output[k];
  bool out = is_graph_output(im, name);
  Value *v = out ? im_temp_value(im, n, "const", V_INTS, dt, nd, dims) : im_add_value(im, name, V_INTS, dt, nd, dims);
  v->ints = vals;
  v->nints = (int)onnx_numel(dims, nd);
  if (!out || !tensor_in(im, n, v)) return;
  Value *y = im_result_at(im, n, k, dt, nd, dims);
  if (y) im_emit(im, y, "%s", v->ident);
}

// A copy of a constant's values.
static int64_t *ints_copy(const Value *v) {
  int64_t *c = xmalloc((size_t)(v->nints ? v->nints : 1) * sizeof *c);
  if (v->nints) memcpy(c, v->ints, (size_t)v->nints * sizeof *c);
  return c;
}

// y = reshape(x) for a tensor, or the same values in y's shape for a constant.
static void reshape_result(Importer *im, const Onnx__NodeProto *n, Value *x, int nd, const int64_t *d) {
  if (x->kind == V_INTS) return ints_result(im, n, 0, x->dtype, nd, d, ints_copy(x));
  if (!tensor_in(im, n, x)) return;
  Value *y = im_result(im, n, x->dtype, nd, d);
  if (y) im_emit_reshape(im, y, x->ident);
}

// "x[:, :, SEL]": SEL on axis of a rank-r tensor.
static void slice_on(char *b, size_t cap, const char *x, int axis, const char *sel) {
  size_t k = (size_t)snprintf(b, cap, "%s[", x);
  for (int i = 0; i < axis && k < cap; i++) k += (size_t)snprintf(b + k, cap - k, ":, ");
  if (k < cap) snprintf(b + k, cap - k, "%s]", sel);
}

// Integer list from the attribute attr (before opset `from`) or from input i
// (from then on); -1 when absent, -2 after a message.
static int ints_arg(Importer *im, const Onnx__NodeProto *n, const char *attr, size_t i, int64_t from, int64_t *v,
                    int max, const char *what) {
  if (im->opset < from) {
    const Onnx__AttributeProto *a = onnx_attr(n, attr);
    if (a && (int)a->n_ints > max) {
      im_fail(im, "node '%s' (%s): %zu %s (at most %d)", im_node(n), n->op_type, a->n_ints, what, max);
      return -2;
    }
    return onnx_attr_ints(n, attr, v, max);
  }
  if (i >= n->n_input || !n->input[i][0]) return -1;
  const Value *c = im_ints_input(im, n, i, what);
  if (!c) return -2;
  if (c->nints > max) {
    im_fail(im, "node '%s' (%s): %d %s (at most %d)", im_node(n), n->op_type, c->nints, what, max);
    return -2;
  }
  memcpy(v, c->ints, (size_t)c->nints * sizeof *v);
  return c->nints;
}

// Axes made non-negative and checked for repeats; false with a message.
static bool norm_axes(Importer *im, const Onnx__NodeProto *n, int64_t *ax, int na, int rank) {
  bool seen[MAX_DIMS] = {0};
  for (int i = 0; i < na; i++) {
    ax[i] = im_axis(im, n, ax[i], rank);
    if (im->failed) return false;
    if (seen[ax[i]]) {
      im_fail(im, "node '%s' (%s): axis %lld appears twice", im_node(n), n->op_type, (long long)ax[i]);
      return false;
    }
    seen[ax[i]] = true;
  }
  return true;
}

static bool int_dtype(DType d) { return d == DT_I64 || d == DT_I32; }

// A one-element constant's value as text (a number for `fill`, `pad`, ...).
static bool const_number(Importer *im, const Onnx__NodeProto *n, const Value *v, char *b, size_t cap) {
  im_specialize(im, n, (Value *)v, "value");
  if (v->kind == V_SCALAR) return snprintf(b, cap, "%s", im_operand(im, v)), true;
  if (v->kind == V_INTS && v->nints == 1) {
    if (v->dtype == DT_BOOL) snprintf(b, cap, "%s", v->ints[0] ? "true" : "false");
    else snprintf(b, cap, "%lld", (long long)v->ints[0]);
    return true;
  }
  im_fail(im, "node '%s' (%s): '%s' must be a constant of one element", im_node(n), n->op_type, v->onnx);
  return false;
}

// ---- Shape and Size: integer constants

static void node_shape(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x) return;
  int64_t r = x->ndim, s = onnx_attr_i(n, "start", 0), e = onnx_attr_i(n, "end", r);
  if (s < 0) s += r;
  if (e < 0) e += r;
  s = s < 0 ? 0 : s > r ? r : s;
  e = e < 0 ? 0 : e > r ? r : e;
  int64_t len = e > s ? e - s : 0;
  int64_t *v = xmalloc((size_t)(len ? len : 1) * sizeof *v);
  for (int64_t i = 0; i < len; i++) v[i] = x->dims[s + i];
  ints_result(im, n, 0, DT_I64, 1, &len, v);
}

static void node_size(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x) return;
  int64_t *v = xmalloc(sizeof *v);
  v[0] = onnx_numel(x->dims, x->ndim);
  ints_result(im, n, 0, DT_I64, 0, NULL, v);
}

// ---- shape changes

static void node_reshape(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x) return;
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
    } else if (__builtin_mul_overflow(known, d[i], &known)) known = INT64_MAX;
  }
  int64_t total = onnx_numel(x->dims, x->ndim);
  if (infer >= 0) d[infer] = known ? total / known : 0;
  if (onnx_numel(d, nd) != total) {
    im_fail(im, "node '%s' (Reshape): %s cannot take the shape %s", im_node(n), onnx_shape_str(x->dims, x->ndim),
         onnx_shape_str(d, nd));
    return;
  }
  reshape_result(im, n, x, nd, d);
}

static void node_flatten(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x) return;
  int64_t axis = onnx_attr_i(n, "axis", 1);
  int a = axis == x->ndim ? x->ndim : im_axis(im, n, axis, x->ndim);
  if (im->failed) return;
  int64_t d[2] = {onnx_numel(x->dims, a), onnx_numel(x->dims + a, x->ndim - a)};
  reshape_result(im, n, x, 2, d);
}

static void node_squeeze(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x) return;
  int64_t ax[MAX_DIMS];
  int na = ints_arg(im, n, "axes", 1, 13, ax, MAX_DIMS, "axes");
  if (na == -2 || (na > 0 && !norm_axes(im, n, ax, na, x->ndim))) return;
  bool drop[MAX_DIMS] = {0};
  for (int i = 0; i < x->ndim; i++) drop[i] = na < 0 && x->dims[i] == 1;
  for (int i = 0; i < na; i++) {
    if (x->dims[ax[i]] != 1) {
      im_fail(im, "node '%s' (Squeeze): axis %lld of %s is not 1", im_node(n), (long long)ax[i],
              onnx_shape_str(x->dims, x->ndim));
      return;
    }
    drop[ax[i]] = true;
  }
  int64_t d[MAX_DIMS];
  int nd = 0;
  for (int i = 0; i < x->ndim; i++)
    if (!drop[i]) d[nd++] = x->dims[i];
  reshape_result(im, n, x, nd, d);
}

static void node_unsqueeze(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x) return;
  int64_t ax[MAX_DIMS];
  int na = ints_arg(im, n, "axes", 1, 13, ax, MAX_DIMS, "axes");
  if (na == -2) return;
  int r = x->ndim + (na > 0 ? na : 0);
  if (na < 0 || r > MAX_DIMS) {
    im_fail(im, "node '%s' (Unsqueeze): %s", im_node(n), na < 0 ? "no axes" : "more than the dimensions smelt has");
    return;
  }
  if (!norm_axes(im, n, ax, na, r)) return;
  bool ins[MAX_DIMS] = {0};
  for (int i = 0; i < na; i++) ins[ax[i]] = true;
  int64_t d[MAX_DIMS];
  for (int i = 0, k = 0; i < r; i++) d[i] = ins[i] ? 1 : x->dims[k++];
  reshape_result(im, n, x, r, d);
}

static void node_transpose(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x || !tensor_in(im, n, x)) return;
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
  if (y) im_emit(im, y, np ? "permute(%s, %s)" : "%s%s", x->ident, p);
}

// ---- Concat and Split

// Concat of constants: each input's blocks of the axis in turn.
static void concat_fold(Importer *im, const Onnx__NodeProto *n, int axis, const int64_t *d, DType dt) {
  int64_t outer = onnx_numel(d, axis), k = 0;
  int64_t *v = xmalloc((size_t)(onnx_numel(d, im_input(im, n, 0)->ndim) + 1) * sizeof *v);
  for (int64_t o = 0; o < outer; o++)
    for (size_t i = 0; i < n->n_input; i++) {
      const Value *x = im_input(im, n, i);
      int64_t blk = onnx_numel(x->dims + axis, x->ndim - axis);
      memcpy(v + k, x->ints + o * blk, (size_t)blk * sizeof *v);
      k += blk;
    }
  ints_result(im, n, 0, dt, im_input(im, n, 0)->ndim, d, v);
}

static void node_concat(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  if (n->n_input < 1) {
    im_fail(im, "node '%s' (Concat) has no inputs", im_node(n));
    return;
  }
  Value *first = im_input(im, n, 0);
  if (!first) return;
  int axis = im_axis(im, n, onnx_attr_i(n, "axis", 0), first->ndim);
  if (im->failed) return;
  int64_t d[MAX_DIMS];
  memcpy(d, first->dims, sizeof d);
  bool all_ints = true;
  for (size_t i = 0; i < n->n_input; i++) {
    Value *v = im_input(im, n, i);
    if (!v) return;
    all_ints &= v->kind == V_INTS;
    bool ok = v->ndim == first->ndim;
    for (int j = 0; j < v->ndim && ok; j++) ok = j == axis || v->dims[j] == first->dims[j];
    if (!ok) {
      im_fail(im, "node '%s' (Concat): %s and %s differ outside axis %d", im_node(n),
              onnx_shape_str(first->dims, first->ndim), onnx_shape_str(v->dims, v->ndim), axis);
      return;
    }
    if (i) d[axis] += v->dims[axis];
  }
  if (all_ints) return concat_fold(im, n, axis, d, first->dtype);
  char list[3072];
  size_t k = 0;
  for (size_t i = 0; i < n->n_input; i++) {
    Value *v = im_input(im, n, i);
    if (!tensor_in(im, n, v)) return;
    k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", v->ident);
    if (k >= sizeof list) {
      im_fail(im, "node '%s' (Concat) has more inputs than the importer writes in one call", im_node(n));
      return;
    }
  }
  Value *y = im_result(im, n, first->dtype, first->ndim, d);
  if (y) im_emit(im, y, n->n_input == 1 ? "%s%.0d" : "concat(%s, axis = %d)", list, axis);
}

static void node_split(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x || !tensor_in(im, n, x)) return;
  int axis = im_axis(im, n, onnx_attr_i(n, "axis", 0), x->ndim);
  if (im->failed) return;
  int64_t sz[64], dim = x->dims[axis];
  int ns = ints_arg(im, n, "split", 1, 13, sz, 64, "split sizes");
  if (ns == -2) return;
  int64_t parts = onnx_attr_i(n, "num_outputs", 0);
  if (ns < 0 && parts > 0 && im->opset >= 18) {
    // num_outputs: ceil(dim / num_outputs) each, the last one smaller
    if (parts > 64 || parts != (int64_t)n->n_output) {
      im_fail(im, "node '%s' (Split): num_outputs %lld with %zu outputs", im_node(n), (long long)parts, n->n_output);
      return;
    }
    int64_t each = (dim + parts - 1) / parts;
    ns = (int)parts;
    for (int i = 0; i < ns; i++) sz[i] = dim - i * each < each ? (dim - i * each > 0 ? dim - i * each : 0) : each;
  } else if (ns < 0) {
    int64_t m = (int64_t)n->n_output;
    if (m < 1 || m > 64 || dim % m) {
      im_fail(im, "node '%s' (Split): %s cannot be split equally into %lld parts on axis %d", im_node(n),
              onnx_shape_str(x->dims, x->ndim), (long long)m, axis);
      return;
    }
    ns = (int)m;
    for (int i = 0; i < ns; i++) sz[i] = dim / m;
  }
  int64_t total = 0;
  bool neg = false;
  for (int i = 0; i < ns; i++) total += sz[i], neg |= sz[i] < 0;
  if (neg || total != dim || ns != (int)n->n_output) {
    im_fail(im, "node '%s' (Split): %d sizes adding to %lld for axis %d of %s and %zu outputs", im_node(n), ns,
            (long long)total, axis, onnx_shape_str(x->dims, x->ndim), n->n_output);
    return;
  }
  int64_t at = 0;
  for (int i = 0; i < ns; i++) {
    int64_t d[MAX_DIMS];
    memcpy(d, x->dims, sizeof d);
    d[axis] = sz[i];
    Value *y = im_result_at(im, n, (size_t)i, x->dtype, x->ndim, d);
    char sel[64], e[1024];
    snprintf(sel, sizeof sel, "%lld:%lld", (long long)at, (long long)(at + sz[i]));
    slice_on(e, sizeof e, x->ident, axis, sel);
    if (y) im_emit(im, y, "%s", e);
    at += sz[i];
  }
}

// ---- Slice

// ONNX's start, end and step of one axis into a slice "s:e:k" and its length.
static int64_t slice_axis(int64_t dim, int64_t s, int64_t e, int64_t k, char *sel, size_t cap) {
  if (s < 0) s += dim;
  if (e < 0) e = e < -dim ? -1 : e + dim;   // INT64_MIN stays below every start
  if (k > 0) {
    s = s < 0 ? 0 : s > dim ? dim : s;
    e = e < 0 ? 0 : e > dim ? dim : e;
  } else {
    s = s < 0 ? 0 : s > dim - 1 ? dim - 1 : s;
    e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
  }
  int64_t len = k > 0 ? (e - s + k - 1) / k : (s - e + (-k) - 1) / (-k);
  if (len < 0 || (k < 0 && dim == 0)) len = 0;
  // the language reads a negative stop from the end: "before the first" is an empty stop
  if (k < 0 && e < 0) snprintf(sel, cap, "%lld::%lld", (long long)s, (long long)k);
  else snprintf(sel, cap, "%lld:%lld:%lld", (long long)s, (long long)e, (long long)k);
  if (len == 0) snprintf(sel, cap, "0:0");
  return len;
}

// The source coordinates a slice "s:e:k" takes on one axis.
static void slice_coords(int64_t dim, int64_t s, int64_t k, int64_t len, int64_t *c) {
  if (s < 0) s += dim;
  s = s < 0 ? 0 : s;
  if (k > 0 && s > dim) s = dim;
  if (k < 0 && s > dim - 1) s = dim - 1;
  for (int64_t i = 0; i < len; i++) c[i] = s + i * k;
}

// Values of x at the product of per-axis coordinates (coords[a], od[a] each).
static int64_t *pick(const Value *x, int64_t *const *coords, const int64_t *od) {
  int64_t total = onnx_numel(od, x->ndim), idx[MAX_DIMS] = {0};
  int64_t *v = xmalloc((size_t)(total ? total : 1) * sizeof *v);
  for (int64_t i = 0; i < total; i++) {
    int64_t src = 0;
    for (int a = 0; a < x->ndim; a++) src = src * x->dims[a] + coords[a][idx[a]];
    v[i] = x->ints[src];
    for (int a = x->ndim - 1; a >= 0 && ++idx[a] == od[a]; a--) idx[a] = 0;
  }
  return v;
}

static void node_slice(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x) return;
  int64_t st[MAX_DIMS], en[MAX_DIMS], ax[MAX_DIMS], sp[MAX_DIMS];
  int ns = ints_arg(im, n, "starts", 1, 10, st, MAX_DIMS, "starts");
  int ne = ns < -1 ? -2 : ints_arg(im, n, "ends", 2, 10, en, MAX_DIMS, "ends");
  int na = ne < -1 ? -2 : ints_arg(im, n, "axes", 3, 10, ax, MAX_DIMS, "axes");
  int nk = na < -1 || im->opset < 10 ? -1 : ints_arg(im, n, "steps", 4, 10, sp, MAX_DIMS, "steps");
  if (im->failed) return;
  if (ns < 0 || ne != ns || (na >= 0 && na != ns) || (nk >= 0 && nk != ns)) {
    im_fail(im, "node '%s' (Slice): starts, ends, axes and steps must be constants of one length", im_node(n));
    return;
  }
  if (na < 0)
    for (int i = 0; i < ns; i++) ax[i] = i;
  if (!norm_axes(im, n, ax, ns, x->ndim)) return;
  int64_t s[MAX_DIMS] = {0}, e[MAX_DIMS], k[MAX_DIMS], od[MAX_DIMS];
  char sel[MAX_DIMS][96];
  for (int a = 0; a < x->ndim; a++) e[a] = INT64_MAX, k[a] = 1;
  for (int i = 0; i < ns; i++) {
    s[ax[i]] = st[i], e[ax[i]] = en[i], k[ax[i]] = nk >= 0 ? sp[i] : 1;
    if (k[ax[i]] == 0) {
      im_fail(im, "node '%s' (Slice): a step of 0", im_node(n));
      return;
    }
  }
  for (int a = 0; a < x->ndim; a++) od[a] = slice_axis(x->dims[a], s[a], e[a], k[a], sel[a], sizeof sel[a]);
  if (x->kind == V_INTS) {
    int64_t *c[MAX_DIMS];
    for (int a = 0; a < x->ndim; a++) {
      c[a] = xmalloc((size_t)(od[a] + 1) * sizeof **c);
      slice_coords(x->dims[a], s[a], k[a], od[a], c[a]);
    }
    int64_t *v = pick(x, c, od);
    for (int a = 0; a < x->ndim; a++) free(c[a]);
    return ints_result(im, n, 0, x->dtype, x->ndim, od, v);
  }
  if (!tensor_in(im, n, x)) return;
  char e2[2048];
  size_t q = (size_t)snprintf(e2, sizeof e2, "%s[", x->ident);
  for (int a = 0; a < x->ndim; a++) q += (size_t)snprintf(e2 + q, sizeof e2 - q, "%s%s", a ? ", " : "", sel[a]);
  snprintf(e2 + q, sizeof e2 - q, "]");
  Value *y = im_result(im, n, x->dtype, x->ndim, od);
  if (y) im_emit(im, y, "%s", x->ndim ? e2 : x->ident);
}

// ---- Pad

// One axis of a pad by mode: the pieces before and after x along axis,
// concatenated; a negative pad crops first.
static Value *pad_axis(Importer *im, const Onnx__NodeProto *n, Value *x, int axis, int64_t b, int64_t a,
                       const char *mode, const char *value) {
  char sel[96], e[4096], tag[32];
  int64_t dim = x->dims[axis], d[MAX_DIMS];
  memcpy(d, x->dims, sizeof d);
  if (b < 0 || a < 0) {   // cropping
    int64_t lo = b < 0 ? -b : 0, hi = a < 0 ? dim + a : dim;
    if (hi < lo) {
      im_fail(im, "node '%s' (Pad): pads crop more than axis %d of %s", im_node(n), axis, onnx_shape_str(d, x->ndim));
      return NULL;
    }
    snprintf(sel, sizeof sel, "%lld:%lld", (long long)lo, (long long)hi);
    slice_on(e, sizeof e, x->ident, axis, sel);
    d[axis] = hi - lo;
    snprintf(tag, sizeof tag, "crop%d", axis);
    x = im_temp(im, n, tag, x->dtype, x->ndim, d, "%s", e);
    if (!x) return NULL;
    dim = d[axis];
    b = b < 0 ? 0 : b, a = a < 0 ? 0 : a;
  }
  if (!b && !a) return x;
  d[axis] = dim + b + a;
  snprintf(tag, sizeof tag, "pad%d", axis);
  if (!strcmp(mode, "constant")) {
    size_t k = (size_t)snprintf(e, sizeof e, "pad(%s, ", x->ident);
    for (int i = 0; i < x->ndim; i++)
      k += (size_t)snprintf(e + k, sizeof e - k, "(%lld, %lld), ", (long long)(i == axis ? b : 0),
                            (long long)(i == axis ? a : 0));
    snprintf(e + k, sizeof e - k, "value = %s)", value);
    return im_temp(im, n, tag, x->dtype, x->ndim, d, "%s", e);
  }
  bool reflect = !strcmp(mode, "reflect"), wrap = !strcmp(mode, "wrap");
  if (dim == 0 || (reflect && (b > dim - 1 || a > dim - 1)) || (wrap && (b > dim || a > dim))) {
    im_fail(im, "node '%s' (Pad): %s pads of %lld and %lld on axis %d of length %lld", im_node(n), mode,
            (long long)b, (long long)a, axis, (long long)dim);
    return NULL;
  }
  char pre[2048] = "", post[2048] = "", piece[1024], dims[512];
  int64_t bd[MAX_DIMS];
  memcpy(bd, x->dims, sizeof bd);
  bool repeat = !reflect && !wrap;   // edge: the first or last slice broadcast
  if (b) {
    if (reflect) snprintf(sel, sizeof sel, "%lld:0:-1", (long long)b);
    else if (wrap) snprintf(sel, sizeof sel, "%lld:%lld", (long long)(dim - b), (long long)dim);
    else snprintf(sel, sizeof sel, "0:1");
    slice_on(piece, sizeof piece, x->ident, axis, sel);
    bd[axis] = b;
    onnx_join_ints(dims, sizeof dims, bd, x->ndim);
    if (repeat) snprintf(pre, sizeof pre, "broadcast(%s, %s), ", piece, dims);
    else snprintf(pre, sizeof pre, "%s, ", piece);
  }
  if (a) {
    if (reflect && dim - 2 - a < 0) snprintf(sel, sizeof sel, "%lld::-1", (long long)(dim - 2));
    else if (reflect) snprintf(sel, sizeof sel, "%lld:%lld:-1", (long long)(dim - 2), (long long)(dim - 2 - a));
    else if (wrap) snprintf(sel, sizeof sel, "0:%lld", (long long)a);
    else snprintf(sel, sizeof sel, "%lld:%lld", (long long)(dim - 1), (long long)dim);
    slice_on(piece, sizeof piece, x->ident, axis, sel);
    bd[axis] = a;
    onnx_join_ints(dims, sizeof dims, bd, x->ndim);
    if (repeat) snprintf(post, sizeof post, ", broadcast(%s, %s)", piece, dims);
    else snprintf(post, sizeof post, ", %s", piece);
  }
  return im_temp(im, n, tag, x->dtype, x->ndim, d, "concat(%s%s%s, axis = %d)", pre, x->ident, post, axis);
}

static void node_pad(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x || !tensor_in(im, n, x)) return;
  int r = x->ndim;
  int64_t pads[2 * MAX_DIMS], ax[MAX_DIMS];
  int np = ints_arg(im, n, "pads", 1, 11, pads, 2 * MAX_DIMS, "pads");
  if (np == -2) return;
  int na = r;
  for (int i = 0; i < r; i++) ax[i] = i;
  if (im->opset >= 18 && n->n_input > 3 && n->input[3][0]) {
    na = ints_arg(im, n, "axes", 3, 18, ax, MAX_DIMS, "axes");
    if (na < 0 || !norm_axes(im, n, ax, na, r)) return;
  }
  if (np != 2 * na) {
    im_fail(im, "node '%s' (Pad): %d pads for %d axes", im_node(n), np, na);
    return;
  }
  const Onnx__AttributeProto *ma = onnx_attr(n, "mode");
  char mode[16] = "constant";
  if (ma && ma->has_s) snprintf(mode, sizeof mode, "%.*s", (int)ma->s.len, (const char *)ma->s.data);
  if (strcmp(mode, "constant") && strcmp(mode, "reflect") && strcmp(mode, "edge") && strcmp(mode, "wrap")) {
    im_fail(im, "node '%s' (Pad): mode '%s'", im_node(n), mode);
    return;
  }
  char value[64];
  if (im->opset < 11) snprintf(value, sizeof value, "%.9g", onnx_attr_f(n, "value", 0));
  else if (n->n_input > 2 && n->input[2][0]) {
    Value *c = im_input(im, n, 2);
    if (!c || !const_number(im, n, c, value, sizeof value)) return;
  } else snprintf(value, sizeof value, "0");
  if (x->dtype == DT_F32 && !strpbrk(value, ".en")) strcat(value, ".0");
  if (x->dtype != DT_F32 && strpbrk(value, ".e")) {
    double f = strtod(value, NULL);
    if (f != floor(f)) {
      im_fail(im, "node '%s' (Pad): the value %s for a %s tensor", im_node(n), value, onnx_dtype_word(x->dtype));
      return;
    }
    snprintf(value, sizeof value, "%.0f", f);
  }
  Value *cur = x;
  for (int i = 0; i < na && cur; i++) cur = pad_axis(im, n, cur, (int)ax[i], pads[i], pads[i + na], mode, value);
  if (!cur) return;
  Value *y = im_result(im, n, x->dtype, cur->ndim, cur->dims);
  if (y) im_emit(im, y, "%s", cur->ident);
}

// ---- Expand and Tile

static void node_expand(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  const Value *s = x ? im_ints_input(im, n, 1, "shape") : NULL;
  if (!s || !tensor_in(im, n, x)) return;
  if (s->nints > MAX_DIMS) {
    im_fail(im, "node '%s' (Expand): a shape of %d dimensions", im_node(n), s->nints);
    return;
  }
  Value sv = {.ndim = s->nints};
  memcpy(sv.dims, s->ints, (size_t)s->nints * sizeof *sv.dims);
  int64_t d[MAX_DIMS];
  int nd;
  if (!onnx_broadcast(x, &sv, d, &nd)) {
    im_fail(im, "node '%s' (Expand): %s does not broadcast to %s", im_node(n), onnx_shape_str(x->dims, x->ndim),
            onnx_shape_str(sv.dims, sv.ndim));
    return;
  }
  Value *y = im_result(im, n, x->dtype, nd, d);
  char dims[512];
  onnx_join_ints(dims, sizeof dims, d, nd);
  if (y) im_emit(im, y, nd ? "broadcast(%s, %s)" : "%s%s", im_operand(im, x), dims);
}

// Tile: x as [1, d0, 1, d1, ...] broadcast to [r0, d0, r1, d1, ...], then merged.
static void node_tile(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  const Value *rp = x ? im_ints_input(im, n, 1, "repeats") : NULL;
  if (!rp || !tensor_in(im, n, x)) return;
  int r = x->ndim;
  if (rp->nints != r || 2 * r > MAX_DIMS) {
    im_fail(im, "node '%s' (Tile): %d repeats for %s (at most %d dimensions)", im_node(n), rp->nints,
            onnx_shape_str(x->dims, r), MAX_DIMS / 2);
    return;
  }
  int64_t one[MAX_DIMS], big[MAX_DIMS], d[MAX_DIMS];
  for (int i = 0; i < r; i++) {
    if (rp->ints[i] < 0) {
      im_fail(im, "node '%s' (Tile): a negative repeat", im_node(n));
      return;
    }
    one[2 * i] = 1, one[2 * i + 1] = x->dims[i];
    big[2 * i] = rp->ints[i], big[2 * i + 1] = x->dims[i];
    d[i] = rp->ints[i] * x->dims[i];
  }
  char a[512], b[512], c[512];
  onnx_join_ints(a, sizeof a, one, 2 * r);
  onnx_join_ints(b, sizeof b, big, 2 * r);
  onnx_join_ints(c, sizeof c, d, r);
  Value *y = im_result(im, n, x->dtype, r, d);
  if (y) im_emit(im, y, r ? "reshape(broadcast(reshape(%s, %s), %s), %s)" : "%s%s%s%s", x->ident, a, b, c);
}

// ---- the Gathers: rows of a 2-D table

// idx with negative entries counted from the end of an axis of length dim:
// a constant is normalized here (and checked), a tensor by a where.
static const char *norm_index(Importer *im, const Onnx__NodeProto *n, Value *idx, int64_t dim, const char *tag) {
  if (!int_dtype(idx->dtype)) {
    im_fail(im, "node '%s' (%s): its indices '%s' are %s, not integers", im_node(n), n->op_type, idx->onnx,
            onnx_dtype_word(idx->dtype));
    return NULL;
  }
  if (idx->kind == V_INTS) {
    Value *c = im_temp_value(im, n, tag, V_INTS, DT_I64, idx->ndim, idx->dims);
    c->ints = ints_copy(idx);
    c->nints = idx->nints;
    for (int i = 0; i < c->nints; i++) {
      if (c->ints[i] < -dim || c->ints[i] >= dim) {
        im_fail(im, "node '%s' (%s): index %lld is outside an axis of %lld", im_node(n), n->op_type,
                (long long)c->ints[i], (long long)dim);
        return NULL;
      }
      if (c->ints[i] < 0) c->ints[i] += dim;
    }
    return tensor_in(im, n, c) ? c->ident : NULL;
  }
  if (!tensor_in(im, n, idx)) return NULL;
  Value *v = im_temp(im, n, tag, DT_I64, idx->ndim, idx->dims, "where(%s < 0, cast(%s, i64) + %lld, cast(%s, i64))",
                     idx->ident, idx->ident, (long long)dim, idx->ident);
  return v ? v->ident : NULL;
}

// Gather of constants.
static void gather_fold(Importer *im, const Onnx__NodeProto *n, const Value *x, const Value *ids, int axis,
                        int nd, const int64_t *d) {
  int64_t outer = onnx_numel(x->dims, axis), dim = x->dims[axis];
  int64_t inner = onnx_numel(x->dims + axis + 1, x->ndim - axis - 1), k = 0;
  int64_t *v = xmalloc((size_t)(onnx_numel(d, nd) + 1) * sizeof *v);
  for (int64_t o = 0; o < outer; o++)
    for (int j = 0; j < ids->nints; j++) {
      int64_t i = ids->ints[j] < 0 ? ids->ints[j] + dim : ids->ints[j];
      if (i < 0 || i >= dim) {
        free(v);
        im_fail(im, "node '%s' (Gather): index %lld is outside an axis of %lld", im_node(n), (long long)ids->ints[j],
                (long long)dim);
        return;
      }
      memcpy(v + k, x->ints + (o * dim + i) * inner, (size_t)inner * sizeof *v);
      k += inner;
    }
  ints_result(im, n, 0, x->dtype, nd, d, v);
}

// Gather on any axis: x's axis moved first and the rest flattened into rows'
// width, gathered, and the outer axes moved back in front of the indices'.
static void node_gather(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0), *ids = x ? im_input(im, n, 1) : NULL;
  if (!ids) return;
  int axis = im_axis(im, n, onnx_attr_i(n, "axis", 0), x->ndim);
  if (im->failed) return;
  int64_t d[MAX_DIMS];
  int nd = x->ndim - 1 + ids->ndim;
  if (nd > MAX_DIMS) {
    im_fail(im, "node '%s' (Gather): a result of %d dimensions", im_node(n), nd);
    return;
  }
  memcpy(d, x->dims, (size_t)axis * sizeof *d);
  memcpy(d + axis, ids->dims, (size_t)ids->ndim * sizeof *d);
  memcpy(d + axis + ids->ndim, x->dims + axis + 1, (size_t)(x->ndim - axis - 1) * sizeof *d);
  if (x->kind == V_INTS && ids->kind == V_INTS && int_dtype(ids->dtype)) return gather_fold(im, n, x, ids, axis, nd, d);
  if (!tensor_in(im, n, x)) return;
  int64_t dim = x->dims[axis], outer = onnx_numel(x->dims, axis), K = onnx_numel(ids->dims, ids->ndim);
  int64_t inner = onnx_numel(x->dims + axis + 1, x->ndim - axis - 1);
  const char *ix = norm_index(im, n, ids, dim, "idx");
  if (!ix) return;
  char src[1024], perm[256], dims[512];
  if (axis) {
    int64_t p[MAX_DIMS];
    p[0] = axis;
    for (int i = 0, k = 1; i < x->ndim; i++)
      if (i != axis) p[k++] = i;
    onnx_join_ints(perm, sizeof perm, p, x->ndim);
    snprintf(src, sizeof src, "permute(%s, %s)", x->ident, perm);
  } else snprintf(src, sizeof src, "%s", x->ident);
  char g[2048];
  snprintf(g, sizeof g, "gather(reshape(%s, %lld, %lld), reshape(%s, %lld))", src, (long long)dim,
           (long long)(outer * inner), ix, (long long)K);
  onnx_join_ints(dims, sizeof dims, d, nd);
  Value *y = im_result(im, n, x->dtype, nd, d);
  if (!y) return;
  if (outer > 1)
    im_emit(im, y, "reshape(permute(reshape(%s, %lld, %lld, %lld), 1, 0, 2)%s%s)", g, (long long)K, (long long)outer,
            (long long)inner, nd ? ", " : "", dims);
  else im_emit(im, y, "reshape(%s%s%s)", g, nd ? ", " : "", dims);
}

// "reshape(iota(d, dtype = i64), 1, .., d, .., 1)": the coordinate of axis a
// of a rank-r shape, broadcastable to it.
static void coord(char *b, size_t cap, const int64_t *dims, int r, int a) {
  int64_t s[MAX_DIMS];
  for (int i = 0; i < r; i++) s[i] = i == a ? dims[a] : 1;
  char t[256];
  onnx_join_ints(t, sizeof t, s, r);
  snprintf(b, cap, "reshape(iota(%lld, dtype = i64), %s)", (long long)dims[a], t);
}

// The flat index into x of every element of the indices ids (of x's rank):
// its index on axis, its own coordinates on the other axes. NULL with a
// message.
static Value *elements_flat(Importer *im, const Onnx__NodeProto *n, const Value *x, Value *ids, int axis) {
  int r = x->ndim;
  bool ok = ids->ndim == r && r > 0;
  for (int i = 0; i < r && ok; i++) ok = i == axis || ids->dims[i] <= x->dims[i];
  if (!ok) {
    im_fail(im, "node '%s' (%s): indices %s do not fit data %s", im_node(n), n->op_type,
            onnx_shape_str(ids->dims, ids->ndim), onnx_shape_str(x->dims, r));
    return NULL;
  }
  const char *ix = norm_index(im, n, ids, x->dims[axis], "idx");
  if (!ix) return NULL;
  char e[4096], c[512];
  size_t k = (size_t)snprintf(e, sizeof e, "%s * %lld", ix, (long long)onnx_numel(x->dims + axis + 1, r - axis - 1));
  for (int a = 0; a < r; a++) {
    if (a == axis) continue;
    coord(c, sizeof c, ids->dims, r, a);
    k += (size_t)snprintf(e + k, sizeof e - k, " + %s * %lld", c, (long long)onnx_numel(x->dims + a + 1, r - a - 1));
  }
  return im_temp(im, n, "flat", DT_I64, r, ids->dims, "%s", e);
}

// The flat row of x (its b batch axes and the k indexed axes) of each index
// tuple of ids [batch..., q..., k], as GatherND and ScatterND read it; its
// shape is ids' without the last axis. NULL with a message.
static Value *nd_rows(Importer *im, const Onnx__NodeProto *n, const Value *x, Value *ids, int64_t b) {
  int r = x->ndim, q = ids->ndim;
  int64_t k = q ? ids->dims[q - 1] : 0;
  bool ok = q >= 1 && b >= 0 && b < q && b + k <= r && int_dtype(ids->dtype);
  for (int i = 0; i < b && ok; i++) ok = ids->dims[i] == x->dims[i];
  if (!ok) {
    im_fail(im, "node '%s' (%s): indices %s (%s) with batch_dims %lld do not fit data %s", im_node(n), n->op_type,
            onnx_shape_str(ids->dims, q), onnx_dtype_word(ids->dtype), (long long)b, onnx_shape_str(x->dims, r));
    return NULL;
  }
  if (!tensor_in(im, n, ids)) return NULL;
  char e[4096], c[512], sel[64], t[1024];
  size_t w = 0;
  e[0] = 0;
  for (int a = 0; a < b; a++) {   // batch coordinates
    coord(c, sizeof c, ids->dims, q - 1, a);
    w += (size_t)snprintf(e + w, sizeof e - w, "%s%s * %lld", w ? " + " : "", c,
                          (long long)onnx_numel(x->dims + a + 1, (int)(b + k) - a - 1));
  }
  for (int j = 0; j < k; j++) {
    int64_t dim = x->dims[b + j], st = onnx_numel(x->dims + b + j + 1, (int)(k - j - 1));
    snprintf(sel, sizeof sel, "%d", j);
    slice_on(t, sizeof t, ids->ident, q - 1, sel);
    w += (size_t)snprintf(e + w, sizeof e - w, "%swhere(%s < 0, cast(%s, i64) + %lld, cast(%s, i64)) * %lld",
                          w ? " + " : "", t, t, (long long)dim, t, (long long)st);
  }
  if (!w) {   // no batch axes and k = 0: every tuple takes the one row
    char dims[512];
    onnx_join_ints(dims, sizeof dims, ids->dims, q - 1);
    if (q == 1) snprintf(e, sizeof e, "fill(0, 1, dtype = i64)[0]");
    else snprintf(e, sizeof e, "fill(0, %s, dtype = i64)", dims);
  }
  return im_temp(im, n, "row", DT_I64, q - 1, ids->dims, "%s", e);
}

// GatherElements: x as a column, gathered at every element's flat index.
static void node_gather_elements(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0), *ids = x ? im_input(im, n, 1) : NULL;
  if (!ids || !tensor_in(im, n, x)) return;
  int r = x->ndim, axis = im_axis(im, n, onnx_attr_i(n, "axis", 0), r);
  if (im->failed) return;
  Value *fi = elements_flat(im, n, x, ids, axis);
  if (!fi) return;
  char dims[512];
  onnx_join_ints(dims, sizeof dims, ids->dims, r);
  Value *y = im_result(im, n, x->dtype, r, ids->dims);
  if (y)
    im_emit(im, y, "reshape(gather(reshape(%s, %lld, 1), reshape(%s, %lld)), %s)", x->ident,
            (long long)onnx_numel(x->dims, r), fi->ident, (long long)onnx_numel(ids->dims, r), dims);
}

// GatherND: x as rows of the axes after the indexed ones, gathered.
static void node_gather_nd(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0), *ids = x ? im_input(im, n, 1) : NULL;
  if (!ids || !tensor_in(im, n, x)) return;
  int64_t b = onnx_attr_i(n, "batch_dims", 0);
  int r = x->ndim, q = ids->ndim;
  int64_t k = q ? ids->dims[q - 1] : 0;
  int nd = q - 1 + r - (int)(b + k);
  if (nd > MAX_DIMS) return im_fail(im, "node '%s' (GatherND): a result of %d dimensions", im_node(n), nd);
  Value *fi = nd_rows(im, n, x, ids, b);
  if (!fi) return;
  int64_t d[MAX_DIMS];
  memcpy(d, ids->dims, (size_t)(q - 1) * sizeof *d);
  memcpy(d + q - 1, x->dims + b + k, (size_t)(r - b - k) * sizeof *d);
  int64_t rows = onnx_numel(x->dims, (int)(b + k)), width = onnx_numel(x->dims + b + k, r - (int)(b + k));
  char dims[512];
  onnx_join_ints(dims, sizeof dims, d, nd);
  Value *y = im_result(im, n, x->dtype, nd, d);
  if (y)
    im_emit(im, y, "reshape(gather(reshape(%s, %lld, %lld), reshape(%s, %lld))%s%s)", x->ident, (long long)rows,
            (long long)width, fi->ident, (long long)onnx_numel(ids->dims, q - 1), nd ? ", " : "", dims);
}

// The Scatters as x seen as N rows of W and K updates of rows at rows[K]:
// add is x + scatter_add; none takes the scattered rows where any landed
// (ONNX leaves repeated indices undefined there); max and min take the
// largest (smallest) of x and every update of a row, through a [N, K] mask
// (where the mask is off, x stands in: it cannot change the result).
static void scatter_rows(Importer *im, const Onnx__NodeProto *n, const Value *x, const Value *rows, const Value *upd,
                         int64_t N, int64_t W, int64_t K) {
  const Onnx__AttributeProto *ra = onnx_attr(n, "reduction");
  char red[16] = "none";
  if (ra && ra->has_s) snprintf(red, sizeof red, "%.*s", (int)ra->s.len, (const char *)ra->s.data);
  char dims[512];
  onnx_join_ints(dims, sizeof dims, x->dims, x->ndim);
  bool f = x->dtype == DT_F32;
  if (!strcmp(red, "add") || !strcmp(red, "none")) {
    if (!f && x->dtype != DT_I32 && x->dtype != DT_I64) {
      im_fail(im, "node '%s' (%s): %s data", im_node(n), n->op_type, onnx_dtype_word(x->dtype));
      return;
    }
    char add[1024];
    snprintf(add, sizeof add, "scatter_add(reshape(%s, %lld), reshape(%s, %lld, %lld), %lld)", rows->ident,
             (long long)K, upd->ident, (long long)K, (long long)W, (long long)N);
    Value *y = im_result(im, n, x->dtype, x->ndim, x->dims);
    if (!y) return;
    if (!strcmp(red, "add")) im_emit(im, y, "reshape(reshape(%s, %lld, %lld) + %s, %s)", x->ident, (long long)N,
                                     (long long)W, add, dims);
    else
      im_emit(im, y, "reshape(where(scatter_add(reshape(%s, %lld), fill(1.0, %lld, 1), %lld) > 0.0, %s, "
              "reshape(%s, %lld, %lld)), %s)", rows->ident, (long long)K, (long long)K, (long long)N, add, x->ident,
              (long long)N, (long long)W, dims);
    return;
  }
  if (strcmp(red, "max") && strcmp(red, "min")) {
    im_fail(im, "node '%s' (%s): reduction '%s' (the importer does none, add, max and min)", im_node(n), n->op_type, red);
    return;
  }
  Value *y = im_result(im, n, x->dtype, x->ndim, x->dims);
  if (y)
    im_emit(im, y, "reshape(%simum(reshape(%s, %lld, %lld), %s(where(reshape(reshape(iota(%lld, dtype = i64), %lld, 1) "
            "== reshape(%s, 1, %lld), %lld, %lld, 1), reshape(%s, 1, %lld, %lld), reshape(%s, %lld, 1, %lld)), axis = 1)), "
            "%s)", red, x->ident, (long long)N, (long long)W, red, (long long)N, (long long)N, rows->ident,
            (long long)K, (long long)N, (long long)K, upd->ident, (long long)K, (long long)W, x->ident, (long long)N,
            (long long)W, dims);
}

// ScatterElements (and Scatter before opset 11): every update at its
// element's flat index.
static void node_scatter_elements(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0), *ids = x ? im_input(im, n, 1) : NULL, *upd = ids ? im_input(im, n, 2) : NULL;
  if (!upd || !tensor_in(im, n, x) || !tensor_in(im, n, upd)) return;
  int r = x->ndim, axis = im_axis(im, n, onnx_attr_i(n, "axis", 0), r);
  if (im->failed) return;
  if (upd->ndim != ids->ndim || memcmp(upd->dims, ids->dims, (size_t)r * sizeof *upd->dims) || upd->dtype != x->dtype)
    return im_fail(im, "node '%s' (%s): updates %s %s for indices %s and data %s", im_node(n), n->op_type,
                   onnx_dtype_word(upd->dtype), onnx_shape_str(upd->dims, upd->ndim),
                   onnx_shape_str(ids->dims, ids->ndim), onnx_dtype_word(x->dtype));
  Value *fi = elements_flat(im, n, x, ids, axis);
  if (fi) scatter_rows(im, n, x, fi, upd, onnx_numel(x->dims, r), 1, onnx_numel(ids->dims, r));
}

static void node_scatter_nd(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0), *ids = x ? im_input(im, n, 1) : NULL, *upd = ids ? im_input(im, n, 2) : NULL;
  if (!upd || !tensor_in(im, n, x) || !tensor_in(im, n, upd)) return;
  Value *rows = nd_rows(im, n, x, ids, 0);
  if (!rows) return;
  int q = ids->ndim, r = x->ndim;
  int64_t k = ids->dims[q - 1];
  bool ok = upd->ndim == q - 1 + r - k && upd->dtype == x->dtype;
  for (int i = 0; i < q - 1 && ok; i++) ok = upd->dims[i] == ids->dims[i];
  for (int i = 0; i < r - k && ok; i++) ok = upd->dims[q - 1 + i] == x->dims[k + i];
  if (!ok)
    return im_fail(im, "node '%s' (ScatterND): updates %s %s for indices %s and data %s %s", im_node(n),
                   onnx_dtype_word(upd->dtype), onnx_shape_str(upd->dims, upd->ndim),
                   onnx_shape_str(ids->dims, q), onnx_dtype_word(x->dtype), onnx_shape_str(x->dims, r));
  scatter_rows(im, n, x, rows, upd, onnx_numel(x->dims, (int)k), onnx_numel(x->dims + k, r - (int)k),
               onnx_numel(ids->dims, q - 1));
}

// ---- rearrangements of blocks

// DepthToSpace and SpaceToDepth: a reshape into blocks, a permute, a reshape.
static void node_blocks(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  Value *x = im_input(im, n, 0);
  if (!x || !tensor_in(im, n, x)) return;
  int64_t bs = onnx_attr_i(n, "blocksize", 0);
  const Onnx__AttributeProto *ma = onnx_attr(n, "mode");
  bool crd = ma && ma->has_s && ma->s.len == 3 && !memcmp(ma->s.data, "CRD", 3);
  bool to_space = !strcmp(arg, "d2s");
  if (x->ndim != 4 || bs < 1 || (to_space ? x->dims[1] % (bs * bs) : x->dims[2] % bs || x->dims[3] % bs)) {
    im_fail(im, "node '%s' (%s): blocksize %lld for %s (a 4-D NCHW input)", im_node(n), n->op_type, (long long)bs,
            onnx_shape_str(x->dims, x->ndim));
    return;
  }
  int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3], m[6], out[4];
  const char *perm;
  if (to_space) {
    int64_t c = C / (bs * bs);
    int64_t dcr[6] = {N, bs, bs, c, H, W}, crd6[6] = {N, c, bs, bs, H, W};
    memcpy(m, crd ? crd6 : dcr, sizeof m);
    perm = crd ? "0, 1, 4, 2, 5, 3" : "0, 3, 4, 1, 5, 2";
    out[0] = N, out[1] = c, out[2] = H * bs, out[3] = W * bs;
  } else {
    int64_t s6[6] = {N, C, H / bs, bs, W / bs, bs};
    memcpy(m, s6, sizeof m);
    perm = crd ? "0, 1, 3, 5, 2, 4" : "0, 3, 5, 1, 2, 4";
    out[0] = N, out[1] = C * bs * bs, out[2] = H / bs, out[3] = W / bs;
  }
  char a[256], b[256];
  onnx_join_ints(a, sizeof a, m, 6);
  onnx_join_ints(b, sizeof b, out, 4);
  Value *y = im_result(im, n, x->dtype, 4, out);
  if (y) im_emit(im, y, "reshape(permute(reshape(%s, %s), %s), %s)", x->ident, a, perm, b);
}

// ---- masks and constants

// Trilu: x where column - row is >= k (upper) or <= k (lower), else 0.
static void node_trilu(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x || !tensor_in(im, n, x)) return;
  // k: a constant, or a tensor (it changes the values, not the shape)
  char k[128] = "0";
  if (n->n_input > 1 && n->input[1][0]) {
    Value *kv = im_input(im, n, 1);
    if (!kv) return;
    if (!int_dtype(kv->dtype) || (kv->kind == V_INTS ? kv->nints != 1 : onnx_numel(kv->dims, kv->ndim) != 1))
      return im_fail(im, "node '%s' (Trilu): k '%s' must be one integer", im_node(n), kv->onnx);
    if (kv->kind == V_INTS) snprintf(k, sizeof k, "%lld", (long long)kv->ints[0]);
    else if (!tensor_in(im, n, kv)) return;
    else snprintf(k, sizeof k, "cast(reshape(%s, 1), i64)", kv->ident);
  }
  int r = x->ndim;
  if (r < 2) return im_fail(im, "node '%s' (Trilu): a rank-%d input", im_node(n), r);
  int64_t R = x->dims[r - 2], C = x->dims[r - 1];
  Value *y = im_result(im, n, x->dtype, r, x->dims);
  if (y)
    im_emit(im, y, "where(reshape(iota(%lld, dtype = i64), 1, %lld) - reshape(iota(%lld, dtype = i64), %lld, 1) %s "
            "%s, %s, %s)", (long long)C, (long long)C, (long long)R, (long long)R,
            onnx_attr_i(n, "upper", 1) ? ">=" : "<=", k, x->ident, x->dtype == DT_F32 ? "0.0" : "0");
}

static void node_eyelike(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x) return;
  DType dt = x->dtype;
  const Onnx__AttributeProto *da = onnx_attr(n, "dtype");
  if (da && da->has_i && !onnx_dtype_of((int32_t)da->i, &dt)) {
    im_fail(im, "node '%s' (EyeLike): dtype %lld", im_node(n), (long long)da->i);
    return;
  }
  if (x->ndim != 2) return im_fail(im, "node '%s' (EyeLike): a rank-%d input", im_node(n), x->ndim);
  int64_t R = x->dims[0], C = x->dims[1], k = onnx_attr_i(n, "k", 0);
  Value *y = im_result(im, n, dt, 2, x->dims);
  char mask[512];
  snprintf(mask, sizeof mask, "reshape(iota(%lld, dtype = i64), 1, %lld) - reshape(iota(%lld, dtype = i64), %lld, 1) == %lld",
           (long long)C, (long long)C, (long long)R, (long long)R, (long long)k);
  if (y && dt == DT_BOOL) im_emit(im, y, "%s", mask);
  else if (y) im_emit(im, y, "cast(%s, %s)", mask, onnx_dtype_word(dt));
}

static void node_constant_of_shape(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  const Value *s = im_ints_input(im, n, 0, "shape");
  if (!s) return;
  if (s->nints > MAX_DIMS) return im_fail(im, "node '%s' (ConstantOfShape): %d dimensions", im_node(n), s->nints);
  int64_t d[MAX_DIMS];
  for (int i = 0; i < s->nints; i++) {
    if (s->ints[i] < 0) return im_fail(im, "node '%s' (ConstantOfShape): a negative dimension", im_node(n));
    d[i] = s->ints[i];
  }
  const Onnx__AttributeProto *va = onnx_attr(n, "value");
  double f = 0;
  DType dt = DT_F32;
  if (va && va->t) {
    const Onnx__TensorProto *t = va->t;
    if (!onnx_dtype_of(t->data_type, &dt))
      return im_fail(im, "node '%s' (ConstantOfShape): a value of ONNX data type %d", im_node(n), t->data_type);
    char name[512];
    im_temp_name(n, "value", name, sizeof name);
    im_add_constant(im, name, t, "ConstantOfShape value");
    const Value *c = im_find(im, name);
    if (!c || (c->kind == V_INTS ? c->nints != 1 : c->kind != V_SCALAR))
      return im_fail(im, "node '%s' (ConstantOfShape): its value must have one element", im_node(n));
    f = c->kind == V_SCALAR ? c->scalar : (double)c->ints[0];
    if (c->kind == V_INTS) {   // an integer constant stays one, for the shapes it may feed
      int64_t cnt = onnx_numel(d, s->nints);
      if (cnt <= 4096) {
        int64_t *v = xmalloc((size_t)(cnt ? cnt : 1) * sizeof *v);
        for (int64_t i = 0; i < cnt; i++) v[i] = c->ints[0];
        return ints_result(im, n, 0, dt, s->nints, d, v);
      }
    }
  }
  char dims[512];
  onnx_join_ints(dims, sizeof dims, d, s->nints);
  Value *y = im_result(im, n, dt, s->nints, d);
  if (!y) return;
  if (dt == DT_F32) {
    Value sc = {.kind = V_SCALAR, .scalar = f};
    im_emit(im, y, "fill(%s%s%s)", im_operand(im, &sc), s->nints ? ", " : "", dims);
  } else im_emit(im, y, "fill(%lld%s%s, dtype = %s)", (long long)f, s->nints ? ", " : "", dims, onnx_dtype_word(dt));
}

// Range of constants: integers fold; floats are start + i * delta.
static void node_range(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *v[3];
  for (int i = 0; i < 3; i++) {
    v[i] = im_const_input(im, n, (size_t)i, i == 0 ? "start" : i == 1 ? "limit" : "delta");
    if (!v[i]) return;
    if (!((v[i]->kind == V_INTS && v[i]->nints == 1) || v[i]->kind == V_SCALAR)) {
      im_fail(im, "node '%s' (Range): its %s '%s' must be a constant (the result's length depends on it)", im_node(n),
              i == 0 ? "start" : i == 1 ? "limit" : "delta", v[i]->onnx);
      return;
    }
  }
  if (v[0]->kind == V_INTS) {
    int64_t s = v[0]->ints[0], l = v[1]->kind == V_INTS ? v[1]->ints[0] : 0, dl = v[2]->kind == V_INTS ? v[2]->ints[0] : 0;
    if (dl == 0 || v[1]->kind != V_INTS) return im_fail(im, "node '%s' (Range): a delta of 0 or mixed types", im_node(n));
    int64_t cnt = dl > 0 ? (l - s + dl - 1) / dl : (s - l - dl - 1) / -dl;
    if (cnt < 0) cnt = 0;
    if (cnt > 1 << 20) return im_fail(im, "node '%s' (Range): %lld values", im_node(n), (long long)cnt);
    int64_t *o = xmalloc((size_t)(cnt ? cnt : 1) * sizeof *o);
    for (int64_t i = 0; i < cnt; i++) o[i] = s + i * dl;
    return ints_result(im, n, 0, v[0]->dtype, 1, &cnt, o);
  }
  double s = v[0]->scalar, l = v[1]->kind == V_SCALAR ? v[1]->scalar : NAN, dl = v[2]->kind == V_SCALAR ? v[2]->scalar : 0;
  if (dl == 0 || isnan(l)) return im_fail(im, "node '%s' (Range): a delta of 0 or mixed types", im_node(n));
  double c = ceil((l - s) / dl);
  int64_t cnt = c > 0 ? (int64_t)c : 0;
  Value *y = im_result(im, n, DT_F32, 1, &cnt);
  Value a = {.kind = V_SCALAR, .scalar = dl}, b = {.kind = V_SCALAR, .scalar = s};
  if (y) im_emit(im, y, "cast(iota(%lld, dtype = i32), f32) * %s + %s", (long long)cnt, im_operand(im, &a), im_operand(im, &b));
}

// ---- running sums, reversals, one-hot, centering

// dims of rank r, 1 everywhere but len at axis a, as "1, 5, 1".
static void unit_dims(char *b, size_t cap, int r, int a, int64_t len) {
  int64_t d[MAX_DIMS + 1];
  for (int i = 0; i < r; i++) d[i] = i == a ? len : 1;
  onnx_join_ints(b, cap, d, r);
}

// The running sum of x along axis a: x[.., j, ..] summed over the j <= i
// (< i exclusive, >= i / > i reversed) of each i, through an [L, L] mask.
static void cumsum_expr(char *b, size_t cap, const Value *x, int a, bool exclusive, bool reverse) {
  int r = x->ndim;
  int64_t L = x->dims[a], d[MAX_DIMS + 1] = {0};
  for (int i = 0, k = 0; i <= r; i++) d[i] = i == a ? 1 : x->dims[k++];
  char xj[512], I[256], J[256];
  onnx_join_ints(xj, sizeof xj, d, r + 1);
  unit_dims(I, sizeof I, r + 1, a, L);
  unit_dims(J, sizeof J, r + 1, a + 1, L);
  const char *op = reverse ? (exclusive ? ">" : ">=") : (exclusive ? "<" : "<=");
  snprintf(b, cap, "sum(where(reshape(iota(%lld, dtype = i64), %s) %s reshape(iota(%lld, dtype = i64), %s), "
           "reshape(%s, %s), %s), axis = %d)", (long long)L, J, op, (long long)L, I, x->ident, xj,
           x->dtype == DT_F32 ? "0.0" : "0", a + 1);
}

// CumSum; an axis given as a tensor selects among the sums of every axis.
static void node_cumsum(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0), *ax = x ? im_input(im, n, 1) : NULL;
  if (!ax || !tensor_in(im, n, x)) return;
  int r = x->ndim;
  if (r < 1 || r >= MAX_DIMS || (x->dtype != DT_F32 && !int_dtype(x->dtype)))
    return im_fail(im, "node '%s' (CumSum): a %s %s input", im_node(n), onnx_dtype_word(x->dtype),
                   onnx_shape_str(x->dims, r));
  bool ex = onnx_attr_i(n, "exclusive", 0), rev = onnx_attr_i(n, "reverse", 0);
  if (!int_dtype(ax->dtype) || (ax->kind == V_INTS ? ax->nints != 1 : onnx_numel(ax->dims, ax->ndim) != 1))
    return im_fail(im, "node '%s' (CumSum): its axis '%s' must be one integer", im_node(n), ax->onnx);
  Value *y = im_result(im, n, x->dtype, r, x->dims);
  if (!y) return;
  char e[4096];
  if (ax->kind == V_INTS) {
    int a = im_axis(im, n, ax->ints[0], r);
    if (im->failed) return;
    cumsum_expr(e, sizeof e, x, a, ex, rev);
    return im_emit(im, y, "%s", e);
  }
  if (!tensor_in(im, n, ax)) return;
  Value *sums[MAX_DIMS];
  for (int a = 0; a < r; a++) {
    char tag[16];
    snprintf(tag, sizeof tag, "sum%d", a);
    cumsum_expr(e, sizeof e, x, a, ex, rev);
    if (!(sums[a] = im_temp(im, n, tag, x->dtype, r, x->dims, "%s", e))) return;
  }
  // the last axis is the fallback, so an axis outside [-r, r) reads as r - 1
  int64_t one = 1;
  Value *an = im_temp(im, n, "axis", DT_I64, 1, &one, "where(cast(reshape(%s, 1), i64) < 0, cast(reshape(%s, 1), i64) + %d, "
                      "cast(reshape(%s, 1), i64))", ax->ident, ax->ident, r, ax->ident);
  if (!an) return;
  size_t k = 0;
  for (int a = 0; a < r - 1; a++)
    k += (size_t)snprintf(e + k, sizeof e - k, "where(%s == %d, %s, ", an->ident, a, sums[a]->ident);
  k += (size_t)snprintf(e + k, sizeof e - k, "%s", sums[r - 1]->ident);
  for (int a = 0; a < r - 1; a++) k += (size_t)snprintf(e + k, sizeof e - k, ")");
  im_emit(im, y, "%s", e);
}

// ReverseSequence: each batch's first len elements along time reversed,
// gathered from x as a column at every element's flat index.
static void node_reverse_sequence(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0), *len = x ? im_input(im, n, 1) : NULL;
  if (!len || !tensor_in(im, n, x) || !tensor_in(im, n, len)) return;
  int r = x->ndim;
  int64_t ta = onnx_attr_i(n, "time_axis", 0), ba = onnx_attr_i(n, "batch_axis", 1);
  if (r < 2 || ta < 0 || ba < 0 || ta > 1 || ba > 1 || ta == ba || !int_dtype(len->dtype) || len->ndim != 1 ||
      len->dims[0] != x->dims[ba])
    return im_fail(im, "node '%s' (ReverseSequence): time_axis %lld, batch_axis %lld, sequence_lens %s %s for %s",
                   im_node(n), (long long)ta, (long long)ba, onnx_dtype_word(len->dtype),
                   onnx_shape_str(len->dims, len->ndim), onnx_shape_str(x->dims, r));
  char T[512], B[256], e[4096], c[512];
  coord(T, sizeof T, x->dims, r, (int)ta);
  unit_dims(B, sizeof B, r, (int)ba, x->dims[ba]);
  Value *src = im_temp(im, n, "src", DT_I64, r, x->dims, "where(%s < reshape(cast(%s, i64), %s), reshape(cast(%s, i64), "
                       "%s) - 1 - %s, %s)", T, len->ident, B, len->ident, B, T, T);
  if (!src) return;
  size_t k = (size_t)snprintf(e, sizeof e, "%s * %lld", src->ident,
                              (long long)onnx_numel(x->dims + ta + 1, r - (int)ta - 1));
  for (int a = 0; a < r; a++) {
    if (a == ta) continue;
    coord(c, sizeof c, x->dims, r, a);
    k += (size_t)snprintf(e + k, sizeof e - k, " + %s * %lld", c, (long long)onnx_numel(x->dims + a + 1, r - a - 1));
  }
  Value *fi = im_temp(im, n, "flat", DT_I64, r, x->dims, "%s", e);
  if (!fi) return;
  int64_t N = onnx_numel(x->dims, r);
  char dims[512];
  onnx_join_ints(dims, sizeof dims, x->dims, r);
  Value *y = im_result(im, n, x->dtype, r, x->dims);
  if (y)
    im_emit(im, y, "reshape(gather(reshape(%s, %lld, 1), reshape(%s, %lld)), %s)", x->ident, (long long)N, fi->ident,
            (long long)N, dims);
}

// OneHot of a constant depth: indices (negative ones from the end) compared
// with 0 .. depth - 1 along the new axis; an index outside is all off.
static void node_one_hot(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *idx = im_input(im, n, 0), *dv = idx ? im_const_input(im, n, 1, "depth") : NULL, *vals = dv ? im_input(im, n, 2) : NULL;
  if (!vals || !tensor_in(im, n, idx)) return;
  double depth;
  if (dv->kind == V_SCALAR) depth = dv->scalar;
  else if (dv->kind == V_INTS && dv->nints == 1) depth = (double)dv->ints[0];
  else return im_fail(im, "node '%s' (OneHot): its depth '%s' must be a constant (the result's shape depends on it)",
                      im_node(n), dv->onnx);
  int64_t D = (int64_t)floor(depth);
  int r = idx->ndim;
  if (D < 1 || r + 1 > MAX_DIMS || onnx_numel(vals->dims, vals->ndim) != 2)
    return im_fail(im, "node '%s' (OneHot): depth %g, indices %s, values %s", im_node(n), depth,
                   onnx_shape_str(idx->dims, r), onnx_shape_str(vals->dims, vals->ndim));
  int64_t axis = onnx_attr_i(n, "axis", -1);
  if (axis < -(r + 1) || axis > r) return im_fail(im, "node '%s' (OneHot): axis %lld", im_node(n), (long long)axis);
  int a = (int)(axis < 0 ? axis + r + 1 : axis);
  // the values as tensors, so that the result has their dtype
  char on[128], off[128];
  if (!tensor_in(im, n, vals)) return;
  snprintf(off, sizeof off, "reshape(%s, 2)[0:1]", vals->ident);
  snprintf(on, sizeof on, "reshape(%s, 2)[1:2]", vals->ident);
  int64_t d[MAX_DIMS], u[MAX_DIMS];
  for (int i = 0, k = 0; i <= r; i++) {
    d[i] = i == a ? D : idx->dims[k];
    u[i] = i == a ? 1 : idx->dims[k];
    if (i != a) k++;
  }
  Value *ix = im_temp(im, n, "idx", DT_I64, r, idx->dims, "where(cast(%s, i64) < 0, cast(%s, i64) + %lld, cast(%s, i64))",
                      idx->ident, idx->ident, (long long)D, idx->ident);
  if (!ix) return;
  char ud[512], it[256];
  onnx_join_ints(ud, sizeof ud, u, r + 1);
  unit_dims(it, sizeof it, r + 1, a, D);
  Value *y = im_result(im, n, vals->dtype, r + 1, d);
  if (y)
    im_emit(im, y, "where(reshape(%s, %s) == reshape(iota(%lld, dtype = i64), %s), %s, %s)", ix->ident, ud,
            (long long)D, it, on, off);
}

// CenterCropPad: each axis cropped to its centered window or padded with
// zeros around its center ((size - dim) / 2 before, the rest after).
static void node_center_crop_pad(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  const Value *s = x ? im_ints_input(im, n, 1, "shape") : NULL;
  if (!s || !tensor_in(im, n, x)) return;
  int r = x->ndim;
  int64_t ax[MAX_DIMS];
  int na = onnx_attr_ints(n, "axes", ax, MAX_DIMS);
  if (na < 0) {
    na = r;
    for (int i = 0; i < r; i++) ax[i] = i;
  }
  if (!norm_axes(im, n, ax, na, r)) return;
  if (s->nints != na) return im_fail(im, "node '%s' (CenterCropPad): %d sizes for %d axes", im_node(n), s->nints, na);
  Value *cur = x;
  for (int i = 0; i < na && cur; i++) {
    int64_t dim = x->dims[ax[i]], want = s->ints[i], b, a;
    if (want < 0) return im_fail(im, "node '%s' (CenterCropPad): a size of %lld", im_node(n), (long long)want);
    if (want <= dim) b = -((dim - want) / 2), a = -(dim - want + b);
    else b = (want - dim) / 2, a = want - dim - b;
    cur = pad_axis(im, n, cur, (int)ax[i], b, a, "constant", x->dtype == DT_F32 ? "0.0" : "0");
  }
  if (!cur) return;
  Value *y = im_result(im, n, x->dtype, cur->ndim, cur->dims);
  if (y) im_emit(im, y, "%s", cur->ident);
}

const OnnxOp onnx_shape_ops[] = {
    {"Shape", node_shape, NULL},
    {"Size", node_size, NULL},
    {"Reshape", node_reshape, NULL},
    {"Flatten", node_flatten, NULL},
    {"Squeeze", node_squeeze, NULL},
    {"Unsqueeze", node_unsqueeze, NULL},
    {"Transpose", node_transpose, NULL},
    {"Concat", node_concat, NULL},
    {"Split", node_split, NULL},
    {"Slice", node_slice, NULL},
    {"Pad", node_pad, NULL},
    {"Expand", node_expand, NULL},
    {"Tile", node_tile, NULL},
    {"Gather", node_gather, NULL},
    {"GatherElements", node_gather_elements, NULL},
    {"GatherND", node_gather_nd, NULL},
    {"ScatterElements", node_scatter_elements, NULL},
    {"Scatter", node_scatter_elements, NULL},
    {"ScatterND", node_scatter_nd, NULL},
    {"DepthToSpace", node_blocks, "d2s"},
    {"SpaceToDepth", node_blocks, "s2d"},
    {"Trilu", node_trilu, NULL},
    {"CumSum", node_cumsum, NULL},
    {"ReverseSequence", node_reverse_sequence, NULL},
    {"OneHot", node_one_hot, NULL},
    {"CenterCropPad", node_center_crop_pad, NULL},
    {"EyeLike", node_eyelike, NULL},
    {"ConstantOfShape", node_constant_of_shape, NULL},
    {"Range", node_range, NULL},
    {NULL, NULL, NULL},
};
