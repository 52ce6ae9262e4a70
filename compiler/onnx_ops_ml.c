// onnx_ops_ml.c: ops of the ai.onnx.ml domain: Binarizer,
// ArrayFeatureExtractor, and TreeEnsemble, whose trees are constants: each
// node's comparison on its feature column becomes a 0/1 float, each leaf's
// "reached" the product of the comparisons (or 1 - them) on its path, and
// each target the sum of its leaves' weights times "reached".
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_importer.h"

// A new `let` value for a part of n's translation: what and k (a count of
// the node's parts, which keeps the names apart without a search).
static Value *part(Importer *im, const Onnx__NodeProto *n, const char *what, int k, int ndim, const int64_t *dims) {
  char tag[64];
  snprintf(tag, sizeof tag, "%s%d", what, k);
  return im_temp_value(im, n, tag, V_LET, DT_F32, ndim, dims);
}

// A float as an operand: in parentheses when negative, always with a point.
static const char *num(double x) {
  static char buf[8][48];
  static int which;
  char *b = buf[which++ & 7];
  snprintf(b, 48, "%.9g", x);
  if (!strpbrk(b, ".e")) strcat(b, ".0");
  if (x < 0) {
    memmove(b + 1, b, strlen(b) + 1);
    b[0] = '(';
    strcat(b, ")");
  }
  return b;
}

// Binarizer: 1 where x > threshold, else 0, in x's type.
static void node_binarizer(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  if (x->dtype != DT_F32)
    return im_fail(im, "node '%s' (Binarizer): input of type %s; the importer takes float32", im_node(n),
                   onnx_dtype_word(x->dtype));
  double t = onnx_attr_f(n, "threshold", 0);
  Value *y = im_result(im, n, DT_F32, x->ndim, x->dims);
  if (y) im_emit(im, y, "cast(%s > %s, f32)", im_operand(im, x), num(t));
}

// ArrayFeatureExtractor: the elements of x's last axis at the constant
// indices (all of them, flattened), joined along that axis; a 1-D x gives
// [1, k] (as onnxruntime and the reference).
static void node_array_feature(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  const Value *idx = x ? im_ints_input(im, n, 1, "indices") : NULL;
  if (!idx || !im_is_tensor(im, n, x)) return;
  if (x->ndim < 1 || idx->nints < 1)
    return im_fail(im, "node '%s' (ArrayFeatureExtractor): data %s and %d indices; it takes data of rank 1 or more "
                   "and at least one index", im_node(n), onnx_shape_str(x->dims, x->ndim), idx->nints);
  int64_t c = x->dims[x->ndim - 1];
  char expr[4096] = "concat(";
  size_t k = strlen(expr);
  for (int i = 0; i < idx->nints && k < sizeof expr; i++) {
    if (idx->ints[i] < 0 || idx->ints[i] >= c)
      return im_fail(im, "node '%s' (ArrayFeatureExtractor): index %lld is outside [0, %lld) of the last axis",
                     im_node(n), (long long)idx->ints[i], (long long)c);
    k += (size_t)snprintf(expr + k, sizeof expr - k, "%s%s[..., %lld:%lld]", i ? ", " : "", im_operand(im, x),
                          (long long)idx->ints[i], (long long)idx->ints[i] + 1);
  }
  if (k >= sizeof expr - 16)
    return im_fail(im, "node '%s' (ArrayFeatureExtractor): %d indices make too long an expression", im_node(n),
                   idx->nints);
  snprintf(expr + k, sizeof expr - k, ", axis = -1)");
  int64_t d[MAX_DIMS];
  int nd = x->ndim == 1 ? 2 : x->ndim;
  if (x->ndim == 1) d[0] = 1;
  else memcpy(d, x->dims, sizeof *d * (size_t)(x->ndim - 1));
  d[nd - 1] = idx->nints;
  Value *y = im_result(im, n, x->dtype, nd, d);
  if (!y) return;
  if (x->ndim == 1) {
    char dims[64];
    snprintf(dims, sizeof dims, "1, %d", idx->nints);
    im_emit(im, y, "reshape(%s, %s)", expr, dims);
  } else im_emit(im, y, "%s", expr);
}

// ---- TreeEnsemble

// The values of a float or double tensor attribute into *out (owned); -1
// when it is absent or of another type.
static int attr_floats(const Onnx__NodeProto *n, const char *name, double **out) {
  const Onnx__AttributeProto *a = onnx_attr(n, name);
  const Onnx__TensorProto *t = a ? a->t : NULL;
  if (!t || (t->data_type != 1 && t->data_type != 11)) return -1;
  size_t sz = t->data_type == 1 ? 4 : 8;
  size_t cnt = t->has_raw_data ? t->raw_data.len / sz : t->data_type == 1 ? t->n_float_data : t->n_double_data;
  *out = xcalloc(cnt ? cnt : 1, sizeof **out);
  for (size_t i = 0; i < cnt; i++) {
    if (t->has_raw_data && sz == 4) {
      float f;
      memcpy(&f, t->raw_data.data + 4 * i, 4);
      (*out)[i] = f;
    } else if (t->has_raw_data) memcpy(&(*out)[i], t->raw_data.data + 8 * i, 8);
    else (*out)[i] = sz == 4 ? t->float_data[i] : t->double_data[i];
  }
  return (int)cnt;
}

// The values of an int32 tensor attribute (nodes_modes) into v; -1 when absent.
static int attr_modes(const Onnx__NodeProto *n, const char *name, int64_t *v, int max) {
  const Onnx__AttributeProto *a = onnx_attr(n, name);
  const Onnx__TensorProto *t = a ? a->t : NULL;
  if (!t || (t->data_type != 2 && t->data_type != 3 && t->data_type != 6)) return -1;   // uint8, int8, int32
  size_t sz = t->data_type == 6 ? 4 : 1;
  size_t cnt = t->has_raw_data ? t->raw_data.len / sz : t->n_int32_data;
  for (size_t i = 0; i < cnt && (int)i < max; i++) {
    int32_t x = 0;
    if (t->has_raw_data && sz == 4) memcpy(&x, t->raw_data.data + 4 * i, 4);
    else if (t->has_raw_data) x = t->data_type == 3 ? (int8_t)t->raw_data.data[i] : t->raw_data.data[i];
    else x = t->int32_data[i];
    v[i] = x;
  }
  return (int)cnt;
}

enum { MAX_TREE_NODES = 4096 };

typedef struct {
  Importer *im;
  const Onnx__NodeProto *n;
  const char *x;          // X's name
  int64_t nrows;
  int nnodes, nleaves, ntargets, nfeatures;
  int64_t feat[MAX_TREE_NODES], mode[MAX_TREE_NODES], tnode[MAX_TREE_NODES], fnode[MAX_TREE_NODES];
  int64_t tleaf[MAX_TREE_NODES], fleaf[MAX_TREE_NODES], missing[MAX_TREE_NODES];
  int64_t ltarget[MAX_TREE_NODES];
  double *splits, *weights, *members;
  int nmembers;
  int set_start[MAX_TREE_NODES];   // a MEMBER node's first member (-1: not one)
  char **acc;                      // each target's running sum (NULL: none yet)
  int parts;
} Trees;

// Fails with a message; false.
static bool tree_fail(Trees *T, const char *what, long long k) {
  im_fail(T->im, "node '%s' (TreeEnsemble): %s (%lld)", im_node(T->n), what, k);
  return false;
}

// Whether member m of node k's set repeats an earlier one of the set.
static bool repeated(const Trees *T, int k, int m) {
  for (int j = T->set_start[k]; j < m; j++)
    if (T->members[j] == T->members[m]) return true;
  return false;
}

// Node k's comparison as a 0/1 float [N], in a new `let`; its name, or NULL.
// A set's members are distinct, so the sum of their matches is 0 or 1; a
// missing value (NaN, col != col) that tracks true makes it 1.
static const char *tree_cond(Trees *T, int k) {
  static const char *const ops[] = {"<=", "<", ">=", ">", "==", "!="};
  char col[300], e[4096];
  snprintf(col, sizeof col, "%s[:, %lld]", T->x, (long long)T->feat[k]);
  size_t len = 0;
  if (T->mode[k] == 6) {
    len += (size_t)snprintf(e, sizeof e, "fill(0.0, %lld)", (long long)T->nrows);
    for (int m = T->set_start[k]; m < T->nmembers && !isnan(T->members[m]) && len < sizeof e; m++)
      if (!repeated(T, k, m)) len += (size_t)snprintf(e + len, sizeof e - len, " + cast(%s == %s, f32)", col, num(T->members[m]));
  } else len = (size_t)snprintf(e, sizeof e, "cast(%s %s %s, f32)", col, ops[T->mode[k]], num(T->splits[k]));
  if (len >= sizeof e) return tree_fail(T, "a node's comparison is too long an expression; node", k), NULL;
  Value *c = part(T->im, T->n, "cond", T->parts++, 1, &T->nrows);
  if (T->missing[k]) im_emit(T->im, c, "maximum(%s, cast(%s != %s, f32))", e, col, col);
  else im_emit(T->im, c, "%s", e);
  return c->ident;
}

// Adds leaf l, reached where `reach` (an expression; "" for always) is 1,
// to its target's sum.
static bool tree_leaf(Trees *T, int l, const char *reach) {
  if (l < 0 || l >= T->nleaves) return tree_fail(T, "a leaf index is outside the leaves", l);
  int t = (int)T->ltarget[l];
  if (t < 0 || t >= T->ntargets) return tree_fail(T, "a leaf's target id is outside [0, n_targets)", t);
  if (!isfinite(T->weights[l])) return tree_fail(T, "a leaf weight is not finite; leaf", l);
  Value *s = part(T->im, T->n, "sum", T->parts++, 1, &T->nrows);
  char term[512];
  if (reach[0]) snprintf(term, sizeof term, "%s * %s", num(T->weights[l]), reach);
  else snprintf(term, sizeof term, "fill(%s, %lld)", num(T->weights[l]), (long long)T->nrows);
  if (T->acc[t]) im_emit(T->im, s, "%s + %s", T->acc[t], term);
  else im_emit(T->im, s, "%s", term);
  free(T->acc[t]);
  T->acc[t] = xstrdup(s->ident);
  return true;
}

// Walks node k, reached where `reach` is 1 (""), to its leaves.
static bool tree_walk(Trees *T, int k, const char *reach, int depth) {
  if (k < 0 || k >= T->nnodes) return tree_fail(T, "a node index is outside the nodes", k);
  if (depth > T->nnodes) return tree_fail(T, "the trees have a cycle through node", k);
  const char *c = tree_cond(T, k);
  if (!c) return false;
  char cond[64];
  snprintf(cond, sizeof cond, "%s", c);
  for (int side = 0; side < 2; side++) {
    char r[512];
    const char *rc = side ? "(1.0 - " : "";
    snprintf(r, sizeof r, "%s%s%s%s%s", reach, reach[0] ? " * " : "", rc, cond, side ? ")" : "");
    const char *rn = r;
    int64_t child = side ? T->fnode[k] : T->tnode[k];
    bool leaf = side ? T->fleaf[k] : T->tleaf[k];
    if (leaf) {
      if (!tree_leaf(T, (int)child, rn)) return false;
      continue;
    }
    Value *v = part(T->im, T->n, "reach", T->parts++, 1, &T->nrows);
    im_emit(T->im, v, "%s", rn);
    if (!tree_walk(T, (int)child, v->ident, depth + 1)) return false;
  }
  return true;
}

// Reads and checks the per-node attributes into T; false with a message.
static bool tree_attrs(Trees *T) {
  const Onnx__NodeProto *n = T->n;
  static const char *const names[] = {"nodes_featureids", "nodes_truenodeids", "nodes_falsenodeids",
                                      "nodes_trueleafs", "nodes_falseleafs"};
  int64_t *dst[] = {T->feat, T->tnode, T->fnode, T->tleaf, T->fleaf};
  T->nnodes = attr_modes(n, "nodes_modes", T->mode, MAX_TREE_NODES);
  if (T->nnodes < 1 || T->nnodes > MAX_TREE_NODES)
    return tree_fail(T, "nodes_modes must be an integer tensor of 1 to 4096 nodes; it has", T->nnodes);
  for (int i = 0; i < 5; i++)
    if (onnx_attr_ints(n, names[i], dst[i], MAX_TREE_NODES) != T->nnodes)
      return tree_fail(T, "a nodes_* attribute lacks or has another count than nodes_modes, of", T->nnodes);
  if (onnx_attr(n, "nodes_missing_value_tracks_true") &&
      onnx_attr_ints(n, "nodes_missing_value_tracks_true", T->missing, MAX_TREE_NODES) != T->nnodes)
    return tree_fail(T, "nodes_missing_value_tracks_true has another count than the nodes", T->nnodes);
  if (attr_floats(n, "nodes_splits", &T->splits) != T->nnodes)
    return tree_fail(T, "nodes_splits must be a float tensor of one split per node, of", T->nnodes);
  T->nleaves = onnx_attr_ints(n, "leaf_targetids", T->ltarget, MAX_TREE_NODES);
  if (T->nleaves < 1 || attr_floats(n, "leaf_weights", &T->weights) != T->nleaves)
    return tree_fail(T, "leaf_targetids and leaf_weights (a float tensor) must have one value per leaf, leaves",
                     T->nleaves);
  T->nmembers = onnx_attr(n, "membership_values") ? attr_floats(n, "membership_values", &T->members) : 0;
  // the sets follow the MEMBER nodes in their order, each ended by a NaN
  int m = 0;
  for (int k = 0; k < T->nnodes; k++) {
    if (T->mode[k] < 0 || T->mode[k] > 6) return tree_fail(T, "a node's mode is not in 0..6", T->mode[k]);
    if (T->feat[k] < 0 || T->feat[k] >= T->nfeatures)
      return tree_fail(T, "a node's feature id is outside X's features", T->feat[k]);
    T->set_start[k] = -1;
    if (T->mode[k] != 6) {
      if (!isfinite(T->splits[k])) return tree_fail(T, "a split is not finite; node", k);
      continue;
    }
    if (m >= T->nmembers) return tree_fail(T, "membership_values has no set for the MEMBER node", k);
    T->set_start[k] = m;
    for (; m < T->nmembers && !isnan(T->members[m]); m++)
      if (T->members[m] == 0)   // the reference ends a set at a 0 member; onnxruntime does not
        return tree_fail(T, "a set member 0.0 is ambiguous (the reference ends the set there); node", k);
    m++;
  }
  if (m != T->nmembers) return tree_fail(T, "membership_values has more sets than MEMBER nodes; values", T->nmembers);
  return true;
}

// TreeEnsemble (ai.onnx.ml 5): X f32 [N, F] to Y [N, n_targets], the sum (or
// average) over the trees of the weights of the leaves each row reaches.
static void node_tree_ensemble(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  if (x->ndim != 2 || x->dtype != DT_F32)
    return im_fail(im, "node '%s' (TreeEnsemble): X is %s %s; the importer takes float32 [N, F]", im_node(n),
                   onnx_dtype_word(x->dtype), onnx_shape_str(x->dims, x->ndim));
  int64_t agg = onnx_attr_i(n, "aggregate_function", 1), post = onnx_attr_i(n, "post_transform", 0);
  int64_t nt = onnx_attr_i(n, "n_targets", -1);
  if ((agg != 0 && agg != 1) || post != 0 || nt < 1 || nt > 4096)
    return im_fail(im, "node '%s' (TreeEnsemble): aggregate_function %lld, post_transform %lld, n_targets %lld; the "
                   "importer takes the sum (1) or average (0), no post transform (0), and 1 to 4096 targets",
                   im_node(n), (long long)agg, (long long)post, (long long)nt);
  int64_t roots[MAX_TREE_NODES];
  int nroots = onnx_attr_ints(n, "tree_roots", roots, MAX_TREE_NODES);
  Trees *T = xcalloc(1, sizeof *T);
  *T = (Trees){.im = im, .n = n, .x = x->ident, .nrows = x->dims[0], .ntargets = (int)nt,
               .nfeatures = (int)x->dims[1]};
  T->acc = xcalloc((size_t)nt, sizeof *T->acc);
  Value *y = NULL;
  bool ok = nroots >= 1 ? tree_attrs(T) : tree_fail(T, "tree_roots must list the trees' roots; it has", nroots);
  if (ok) y = im_result(im, n, DT_F32, 2, (int64_t[]){x->dims[0], nt});
  for (int r = 0; ok && y && r < nroots; r++) {
    int64_t k = roots[r];
    if (k < 0 || k >= T->nnodes) ok = tree_fail(T, "a tree root is outside the nodes", k);
    else if (T->tleaf[k] && T->fleaf[k] && T->tnode[k] == T->fnode[k]) ok = tree_leaf(T, (int)k, "");   // a leaf tree
    else ok = tree_walk(T, (int)k, "", 0);
  }
  size_t cap = 64 + (size_t)nt * 32;
  for (int t = 0; t < nt; t++) cap += T->acc[t] ? strlen(T->acc[t]) : 0;
  char *e = xmalloc(cap);
  size_t len = (size_t)sprintf(e, "stack(");
  for (int t = 0; ok && y && t < nt; t++) {
    if (T->acc[t]) len += (size_t)sprintf(e + len, "%s%s", t ? ", " : "", T->acc[t]);
    else len += (size_t)sprintf(e + len, "%sfill(0.0, %lld)", t ? ", " : "", (long long)T->nrows);
  }
  if (ok && y) {
    sprintf(e + len, ", axis = 1)");
    if (agg == 0) {
      Value *s = part(im, n, "total", T->parts++, 2, y->dims);
      im_emit(im, s, "%s", e);
      im_emit(im, y, "%s / %s", s->ident, num(nroots));
    } else im_emit(im, y, "%s", e);
  }
  free(e);
  for (int t = 0; t < nt; t++) free(T->acc[t]);
  free(T->acc);
  free(T->splits);
  free(T->weights);
  free(T->members);
  free(T);
}

const OnnxOp onnx_ml_ops[] = {
    {"Binarizer", node_binarizer, NULL},
    {"ArrayFeatureExtractor", node_array_feature, NULL},
    {"TreeEnsemble", node_tree_ensemble, NULL},
    {NULL, NULL, NULL},
};
