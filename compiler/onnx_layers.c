// onnx_layers.c: groups of ONNX nodes that are one layer of the stdlib
// (stdlib/nn.smelt), written as one call so that the imported model file
// reads like one written by hand:
//
//   Gemm with a weight param (and a bias)        linear(x, N) as fc1
//   MatMul by a weight param, then Add of a bias linear(x, N) as fc1
//   MatMul by a weight param                     linear(x, N, bias = false) as fc1
//   LayerNormalization, and the nine nodes of    layernorm(x, eps = E) as ln
//     its decomposed form (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add)
//   RMSNormalization                             rms_norm(x, eps = E) as norm
//   Div by sqrt(2), Erf, Add 1, Mul, Mul 0.5     gelu(x)
//
// The layer's params are then the call's (fc1.w, fc1.b): the weights file
// holds the ONNX values under those names (a Gemm's transposed weight
// transposed back to (in, out)), and a comment line says which ONNX
// initializer each came from. A group is taken only when it is exactly the
// layer: every attribute at the value the layer computes, the params of the
// shapes it declares and read by nothing else, the nodes in between read by
// nothing else. Otherwise its nodes are translated one by one, as always.
//
// The structure (op types, who reads what) is matched before any node is
// translated; the values (constants, shapes, params) when the group's last
// node is reached, since a Constant node feeding the group may come later
// in the graph than the group's first node. Until then the group's other
// nodes are held back: only the group reads their outputs, so translating
// them late (when the values do not fit) changes nothing.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler.h"
#include "onnx.pb-c.h"
#include "onnx_importer.h"

enum { G_LINEAR_ADD, G_LAYERNORM, G_GELU };
#define MAX_MEMBERS 8

typedef struct {
  int kind;
  size_t role[MAX_MEMBERS];      // the nodes before the last, in the order their pattern names them
  size_t members[MAX_MEMBERS];   // the same in graph order
  int nmembers;
} Group;

typedef struct {
  const char *name;
  size_t node;
} Producer;

struct OnnxLayers {
  const Onnx__GraphProto *g;
  const char **reads;    // every name a node of g (or of its subgraphs) reads, and g's outputs: sorted, repeated
  size_t nreads;
  Producer *made;        // the node computing each name, sorted by name
  size_t nmade;
  Group *groups;
  int ngroups;
  int *ends;             // per node: 1 + the group it ends, or 0
  bool *held;            // per node: a member of a group ending later
  char **scopes;         // the scope names given so far
  int nscopes;
};

// ---- who reads and who computes each name

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }
static int cmp_made(const void *a, const void *b) {
  return strcmp(((const Producer *)a)->name, ((const Producer *)b)->name);
}

static void add_read(OnnxLayers *l, size_t *cap, const char *name) {
  if (!name || !name[0]) return;
  if (l->nreads == *cap) l->reads = xrealloc(l->reads, (*cap = *cap ? *cap * 2 : 256) * sizeof *l->reads);
  l->reads[l->nreads++] = name;
}

// The names g's nodes read, those of subgraphs included (a branch may read
// an outer value; counting the subgraph's own names too only makes a group
// less likely, never wrong).
static void collect_reads(OnnxLayers *l, size_t *cap, const Onnx__GraphProto *g) {
  for (size_t i = 0; i < g->n_node; i++) {
    const Onnx__NodeProto *n = g->node[i];
    for (size_t k = 0; k < n->n_input; k++) add_read(l, cap, n->input[k]);
    for (size_t a = 0; a < n->n_attribute; a++) {
      const Onnx__AttributeProto *at = n->attribute[a];
      if (at->g) collect_reads(l, cap, at->g);
      for (size_t s = 0; s < at->n_graphs; s++) collect_reads(l, cap, at->graphs[s]);
    }
  }
  for (size_t i = 0; i < g->n_output; i++) add_read(l, cap, g->output[i]->name);
}

static size_t readers(const OnnxLayers *l, const char *name) {
  size_t lo = 0, hi = l->nreads;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (strcmp(l->reads[mid], name) < 0) lo = mid + 1;
    else hi = mid;
  }
  size_t n = 0;
  while (lo + n < l->nreads && !strcmp(l->reads[lo + n], name)) n++;
  return n;
}

static long producer(const OnnxLayers *l, const char *name) {
  Producer key = {.name = name};
  const Producer *p = bsearch(&key, l->made, l->nmade, sizeof *l->made, cmp_made);
  return p ? (long)p->node : -1;
}

// The node computing input k of n, when it is an `op` node whose first
// output has exactly `count` readers and whose other outputs none; else -1.
static long feeder(const OnnxLayers *l, const Onnx__NodeProto *n, size_t k, const char *op, size_t count) {
  if (k >= n->n_input) return -1;
  long p = producer(l, n->input[k]);
  if (p < 0) return -1;
  const Onnx__NodeProto *f = l->g->node[p];
  if (strcmp(f->op_type, op) || (f->domain && f->domain[0] && strcmp(f->domain, "ai.onnx"))) return -1;
  if (strcmp(f->output[0], n->input[k]) || readers(l, f->output[0]) != count) return -1;
  for (size_t o = 1; o < f->n_output; o++)
    if (readers(l, f->output[o])) return -1;
  return p;
}

static bool is_op(const Onnx__NodeProto *n, const char *op) {
  return !strcmp(n->op_type, op) && (!n->domain || !n->domain[0] || !strcmp(n->domain, "ai.onnx"));
}

// ---- matching the structure

static bool claimed(const OnnxLayers *l, const long *nodes, int count) {
  for (int i = 0; i < count; i++)
    if (nodes[i] < 0 || l->held[nodes[i]] || l->ends[nodes[i]]) return true;
  return false;
}

static void add_group(OnnxLayers *l, int kind, size_t last, const long *nodes, int count) {
  l->groups = xrealloc(l->groups, (size_t)(l->ngroups + 1) * sizeof *l->groups);
  Group *gr = &l->groups[l->ngroups++];
  gr->kind = kind;
  gr->nmembers = count;
  for (int i = 0; i < count; i++) gr->role[i] = gr->members[i] = (size_t)nodes[i];
  // graph order, so that a fallback translates them as the graph has them
  for (int i = 1; i < count; i++)
    for (int j = i; j > 0 && gr->members[j - 1] > gr->members[j]; j--) {
      size_t t = gr->members[j];
      gr->members[j] = gr->members[j - 1];
      gr->members[j - 1] = t;
    }
  for (int i = 0; i < count; i++) l->held[nodes[i]] = true;
  l->ends[last] = l->ngroups;
}

// MatMul, then Add of a bias: Add(MatMul(x, W), b) or Add(b, MatMul(x, W)).
static void match_linear_add(OnnxLayers *l, size_t i) {
  const Onnx__NodeProto *n = l->g->node[i];
  if (!is_op(n, "Add") || n->n_input != 2) return;
  for (size_t k = 0; k < 2; k++) {
    long mm[1] = {feeder(l, n, k, "MatMul", 1)};
    if (mm[0] >= 0 && !claimed(l, mm, 1)) {
      add_group(l, G_LINEAR_ADD, i, mm, 1);
      return;
    }
  }
}

// The decomposed layer normalization that exporters write (PyTorch below
// opset 17): m = ReduceMean(x), d = Sub(x, m), v = ReduceMean(Pow(d, 2)),
// y = Add(Mul(Div(d, Sqrt(Add(v, eps))), g), b).
static void match_layernorm(OnnxLayers *l, size_t i) {
  const Onnx__NodeProto *n = l->g->node[i];
  if (!is_op(n, "Add") || n->n_input != 2) return;
  Onnx__NodeProto *const *node = l->g->node;
  for (size_t k = 0; k < 2; k++) {
    long mul = feeder(l, n, k, "Mul", 1);
    for (size_t k2 = 0; mul >= 0 && k2 < 2; k2++) {
      long div = feeder(l, node[mul], k2, "Div", 1);
      if (div < 0 || node[div]->n_input != 2) continue;
      long sub = feeder(l, node[div], 0, "Sub", 2), sqrt_ = feeder(l, node[div], 1, "Sqrt", 1);
      long add = sqrt_ < 0 ? -1 : feeder(l, node[sqrt_], 0, "Add", 1);
      if (sub < 0 || add < 0 || node[add]->n_input != 2) continue;
      for (size_t k3 = 0; k3 < 2; k3++) {
        long var = feeder(l, node[add], k3, "ReduceMean", 1);
        long pow_ = var < 0 ? -1 : feeder(l, node[var], 0, "Pow", 1);
        long mean = feeder(l, node[sub], 1, "ReduceMean", 1);
        if (pow_ < 0 || mean < 0 || node[pow_]->n_input != 2 || node[sub]->n_input != 2) continue;
        // the two readers of d are the Pow and the Div; the mean is of Sub's x
        if (strcmp(node[pow_]->input[0], node[sub]->output[0]) || strcmp(node[mean]->input[0], node[sub]->input[0]))
          continue;
        long members[] = {mean, sub, pow_, var, add, sqrt_, div, mul};
        if (claimed(l, members, 8)) continue;
        add_group(l, G_LAYERNORM, i, members, 8);
        return;
      }
    }
  }
}

// PyTorch's exact GELU below opset 20: Mul(Mul(x, Add(Erf(Div(x, sqrt 2)), 1)), 0.5).
static void match_gelu(OnnxLayers *l, size_t i) {
  const Onnx__NodeProto *n = l->g->node[i];
  if (!is_op(n, "Mul") || n->n_input != 2) return;
  Onnx__NodeProto *const *node = l->g->node;
  for (size_t k = 0; k < 2; k++) {
    long mul = feeder(l, n, k, "Mul", 1);
    for (size_t k2 = 0; mul >= 0 && node[mul]->n_input == 2 && k2 < 2; k2++) {
      long add = feeder(l, node[mul], k2, "Add", 1);
      if (add < 0 || node[add]->n_input != 2) continue;
      for (size_t k3 = 0; k3 < 2; k3++) {
        long erf = feeder(l, node[add], k3, "Erf", 1);
        long div = erf < 0 ? -1 : feeder(l, node[erf], 0, "Div", 1);
        if (div < 0 || node[div]->n_input != 2 || strcmp(node[div]->input[0], node[mul]->input[1 - k2])) continue;
        long members[] = {div, erf, add, mul};
        if (claimed(l, members, 4)) continue;
        add_group(l, G_GELU, i, members, 4);
        return;
      }
    }
  }
}

OnnxLayers *onnx_find_layers(Importer *im, const Onnx__GraphProto *g) {
  (void)im;
  OnnxLayers *l = xcalloc(1, sizeof *l);
  l->g = g;
  size_t cap = 0;
  collect_reads(l, &cap, g);
  if (l->nreads) qsort(l->reads, l->nreads, sizeof *l->reads, cmp_str);
  for (size_t i = 0; i < g->n_node; i++) l->nmade += g->node[i]->n_output;
  l->made = xcalloc(l->nmade ? l->nmade : 1, sizeof *l->made);
  size_t m = 0;
  for (size_t i = 0; i < g->n_node; i++)
    for (size_t o = 0; o < g->node[i]->n_output; o++)
      if (g->node[i]->output[o][0]) l->made[m++] = (Producer){g->node[i]->output[o], i};
  l->nmade = m;
  if (m) qsort(l->made, m, sizeof *l->made, cmp_made);
  l->ends = xcalloc(g->n_node ? g->n_node : 1, sizeof *l->ends);
  l->held = xcalloc(g->n_node ? g->n_node : 1, sizeof *l->held);
  // the larger patterns first: a layer norm's last Add is no linear's
  for (size_t i = 0; i < g->n_node; i++) match_layernorm(l, i);
  for (size_t i = 0; i < g->n_node; i++) match_gelu(l, i);
  for (size_t i = 0; i < g->n_node; i++) match_linear_add(l, i);
  return l;
}

bool onnx_layer_holds(const OnnxLayers *l, size_t i) { return l && l->held[i]; }

void onnx_layers_free(OnnxLayers *l) {
  if (!l) return;
  for (int i = 0; i < l->nscopes; i++) free(l->scopes[i]);
  free(l->scopes);
  free(l->reads);
  free(l->made);
  free(l->groups);
  free(l->ends);
  free(l->held);
  free(l);
}

// ---- checking the values

// A float tensor of the model (not a number or an integer constant).
static const Value *float_tensor(Importer *im, const char *name, int min_rank) {
  const Value *v = name && name[0] ? im_find(im, name) : NULL;
  bool ok = v && v->dtype == DT_F32 && v->ndim >= min_rank && onnx_numel(v->dims, v->ndim) > 0 &&
            (v->kind == V_INPUT || v->kind == V_LET || v->kind == V_PARAM);
  return ok ? v : NULL;
}

// A param that only this layer reads, of rank 1 and size c (or rank 2 and
// size (1, c) when row is set): its values are then the layer's.
static Value *layer_param(Importer *im, const OnnxLayers *l, const char *name, int64_t c, bool row) {
  Value *v = name && name[0] ? im_find(im, name) : NULL;
  int64_t count;
  if (!v || v->kind != V_PARAM || v->graph_input || readers(l, name) != 1 || !im_param_data(im, v, &count)) return NULL;
  if (c < 0) return v->ndim == 2 ? v : NULL;   // a weight: the caller checks its shape
  bool vec = v->ndim == 1 && v->dims[0] == c;
  bool rowv = row && v->ndim == 2 && v->dims[0] == 1 && v->dims[1] == c;
  return vec || rowv ? v : NULL;
}

// A one-element float constant equal to want (within tol), or any finite
// non-negative one when want < 0, of rank at most rank (so that it does not
// add dimensions to the result); *got its value.
static bool number_is(Importer *im, const char *name, int rank, double want, double tol, double *got) {
  const Value *v = name && name[0] ? im_find(im, name) : NULL;
  if (!v || v->kind != V_SCALAR || v->ndim > rank) return false;
  if (got) *got = v->scalar;
  return want < 0 ? isfinite(v->scalar) && v->scalar >= 0 : fabs(v->scalar - want) <= tol;
}

// Whether a ReduceMean node averages over the last axis of a rank-r input, keeping it.
static bool mean_of_last(Importer *im, const Onnx__NodeProto *n, int rank) {
  if (onnx_attr_i(n, "keepdims", 1) != 1) return false;
  int64_t axes[MAX_DIMS];
  int na;
  if (im->opset >= 18) {
    const Value *a = n->n_input > 1 && n->input[1][0] ? im_find(im, n->input[1]) : NULL;
    if (!a || a->kind != V_INTS || a->nints != 1) return false;
    na = 1;
    axes[0] = a->ints[0];
  } else {
    na = onnx_attr_ints(n, "axes", axes, MAX_DIMS);
  }
  return na == 1 && (axes[0] == -1 || axes[0] == rank - 1);
}

// ---- writing the call

// The scope a layer's params are named in: its weight's ONNX name less a
// "weight"-like suffix (fc1.weight -> fc1), else the node's path
// (/encoder/fc1/Gemm -> encoder_fc1), else its output's name; unique.
static char *scope_for(Importer *im, OnnxLayers *l, const Onnx__NodeProto *n, const char *param) {
  static const char *const suffix[] = {".weight", "_weight", ".w", "_w", ".gamma", ".scale", ".bias", ".b"};
  char base[512] = "";
  size_t pl = strlen(param);
  for (size_t s = 0; s < sizeof suffix / sizeof *suffix && !base[0]; s++) {
    size_t sl = strlen(suffix[s]);
    if (pl > sl && pl - sl < sizeof base && !strcmp(param + pl - sl, suffix[s]) && !strchr(param, ':'))
      snprintf(base, sizeof base, "%.*s", (int)(pl - sl), param);
  }
  const char *slash = n->name ? strrchr(n->name, '/') : NULL;
  if (!base[0] && slash && slash > n->name + 1)
    snprintf(base, sizeof base, "%.*s", (int)(slash - n->name - (n->name[0] == '/')), n->name + (n->name[0] == '/'));
  if (!base[0]) snprintf(base, sizeof base, "%s", n->output[0]);
  char *s = im_ident_for(im, base);
  size_t k = strlen(s);
  s = xrealloc(s, k + 16);
  for (int suffix_n = 2;; suffix_n++) {
    bool taken = false;
    for (int i = 0; i < l->nscopes && !taken; i++) taken = !strcmp(l->scopes[i], s);
    if (!taken) break;
    snprintf(s + k, 16, "_%d", suffix_n);
  }
  l->scopes = xrealloc(l->scopes, (size_t)(l->nscopes + 1) * sizeof *l->scopes);
  l->scopes[l->nscopes++] = s;
  return s;
}

// The shortest decimal that reads back as the same float.
static const char *number(char *b, size_t cap, double v) {
  for (int p = 1; p <= 9; p++) {
    snprintf(b, cap, "%.*g", p, v);
    if ((float)strtod(b, NULL) == (float)v) break;
  }
  if (!strpbrk(b, ".en")) snprintf(b + strlen(b), cap - strlen(b), ".0");
  return b;
}

// Param v becomes the layer's scope.field in the weights file.
static void give(Importer *im, const char *scope, const char *field, Value *v, float *data, int ndim,
                 const int64_t *dims) {
  char name[600];
  snprintf(name, sizeof name, "%s.%s", scope, field);
  im_weight_to_layer(im, v, name, data, ndim, dims);
}

// y = A W (+ b) as linear: W (in, out), or (out, in) transposed back.
static bool emit_linear(Importer *im, OnnxLayers *l, const Onnx__NodeProto *last, const Value *x, Value *w,
                        bool w_transposed, Value *b) {
  int64_t in = w->dims[w_transposed], out = w->dims[!w_transposed];
  if (x->dims[x->ndim - 1] != in) return false;
  int64_t dims[MAX_DIMS];
  memcpy(dims, x->dims, (size_t)x->ndim * sizeof *dims);
  dims[x->ndim - 1] = out;
  char *scope = scope_for(im, l, last, w->onnx[0] && !strchr(w->onnx, ':') ? w->onnx : b ? b->onnx : "");
  char bias[600] = "";
  if (b) snprintf(bias, sizeof bias, ", %s.b = '%s'", scope, b->onnx);
  im_out(im, "    # %s: linear, %s.w = '%s'%s%s\n", scope, scope, w->onnx, w_transposed ? " transposed" : "", bias);
  int64_t count;
  const float *src = im_param_data(im, w, &count);
  float *t = NULL;
  if (w_transposed) {
    t = xmalloc((size_t)(in * out) * sizeof *t);
    for (int64_t r = 0; r < out; r++)
      for (int64_t c = 0; c < in; c++) t[c * out + r] = src[r * in + c];
  }
  int64_t wd[2] = {in, out};
  give(im, scope, "w", w, t, 2, wd);
  if (b) give(im, scope, "b", b, NULL, 1, &out);
  Value *y = im_result(im, last, DT_F32, x->ndim, dims);
  if (y) im_emit(im, y, "linear(%s, %lld%s) as %s", x->ident, (long long)out, b ? "" : ", bias = false", scope);
  return true;
}

// y = x g + b normalized over the last axis as layernorm, or rms_norm without b.
static void emit_norm(Importer *im, OnnxLayers *l, const Onnx__NodeProto *last, const Value *x, Value *g, Value *b,
                      double eps) {
  char *scope = scope_for(im, l, last, g->onnx);
  char bias[600] = "", e[64];
  if (b) snprintf(bias, sizeof bias, ", %s.b = '%s'", scope, b->onnx);
  im_out(im, "    # %s: %s, %s.g = '%s'%s\n", scope, b ? "layernorm" : "rms_norm", scope, g->onnx, bias);
  give(im, scope, "g", g, NULL, 1, &x->dims[x->ndim - 1]);
  if (b) give(im, scope, "b", b, NULL, 1, &x->dims[x->ndim - 1]);
  Value *y = im_result(im, last, DT_F32, x->ndim, x->dims);
  if (y) im_emit(im, y, "%s(%s, eps = %s) as %s", b ? "layernorm" : "rms_norm", x->ident, number(e, sizeof e, eps), scope);
}

// Gemm(A, B, C) with alpha = beta = 1, A not transposed, B a weight param
// and C absent or a bias param of (N) or (1, N) (broadcast = 1 before opset 7).
static bool gemm_layer(Importer *im, OnnxLayers *l, const Onnx__NodeProto *n) {
  // before opset 7 a bias of (N) needs broadcast = 1
  if (n->n_input < 2 || onnx_attr_i(n, "transA", 0) != 0 || onnx_attr_f(n, "alpha", 1.0) != 1.0 ||
      (im->opset < 7 && onnx_attr_i(n, "broadcast", 0) != 1))
    return false;
  bool tb = onnx_attr_i(n, "transB", 0) != 0;
  const Value *x = float_tensor(im, n->input[0], 2);
  Value *w = layer_param(im, l, n->input[1], -1, false);
  if (!x || x->ndim != 2 || !w) return false;
  Value *b = NULL;
  if (n->n_input > 2 && n->input[2][0]) {
    b = layer_param(im, l, n->input[2], w->dims[!tb], true);
    if (!b || onnx_attr_f(n, "beta", 1.0) != 1.0) return false;
  }
  return emit_linear(im, l, n, x, w, tb, b);
}

// The input of a two-input node n that is not the value named name, or ""
// when n has another number of inputs (a malformed model: nothing matches "").
static const char *other_input(const Onnx__NodeProto *n, const char *name) {
  if (n->n_input != 2) return "";
  return strcmp(n->input[0], name) ? n->input[0] : n->input[1];
}

// MatMul(x, W) by a weight param, x of rank 2 or more; with the Add of a bias b when add is set.
static bool matmul_layer(Importer *im, OnnxLayers *l, const Onnx__NodeProto *mm, const Onnx__NodeProto *add) {
  const Value *x = float_tensor(im, mm->input[0], 2);
  Value *w = mm->n_input == 2 ? layer_param(im, l, mm->input[1], -1, false) : NULL;
  if (!x || !w) return false;
  Value *b = NULL;
  if (add) {
    const char *other = other_input(add, mm->output[0]);
    if (!(b = layer_param(im, l, other, w->dims[1], x->ndim == 2))) return false;
  }
  return emit_linear(im, l, add ? add : mm, x, w, false, b);
}

// LayerNormalization (opset 17) over the last axis, and RMSNormalization
// (opset 23), with their params, and no other output read.
static bool norm_layer(Importer *im, OnnxLayers *l, const Onnx__NodeProto *n, bool rms) {
  const Value *x = float_tensor(im, n->input[0], 1);
  if (!x || n->n_input < (size_t)(2 + !rms)) return false;
  int64_t axis = onnx_attr_i(n, "axis", -1);
  if ((axis != -1 && axis != x->ndim - 1) || onnx_attr_i(n, "stash_type", 1) != 1) return false;
  for (size_t o = 1; o < n->n_output; o++)
    if (readers(l, n->output[o])) return false;
  int64_t c = x->dims[x->ndim - 1];
  Value *g = layer_param(im, l, n->input[1], c, false), *b = rms ? NULL : layer_param(im, l, n->input[2], c, false);
  if (!g || (!rms && !b)) return false;
  emit_norm(im, l, n, x, g, b, onnx_attr_f(n, "epsilon", 1e-5));
  return true;
}

// The decomposed layer normalization matched by match_layernorm: its
// roles are mean, sub, pow, var, add, sqrt, div, mul.
static bool layernorm_pattern(Importer *im, OnnxLayers *l, const Group *gr, const Onnx__NodeProto *last) {
  Onnx__NodeProto *const *node = l->g->node;
  const Onnx__NodeProto *mean = node[gr->role[0]], *sub = node[gr->role[1]], *pow_ = node[gr->role[2]];
  const Onnx__NodeProto *var = node[gr->role[3]], *add = node[gr->role[4]], *div = node[gr->role[6]];
  const Onnx__NodeProto *mul = node[gr->role[7]];
  const Value *x = float_tensor(im, sub->input[0], 1);
  if (!x || !mean_of_last(im, mean, x->ndim) || !mean_of_last(im, var, x->ndim)) return false;
  double eps;
  const char *eps_name = other_input(add, var->output[0]);
  if (!number_is(im, pow_->input[1], x->ndim, 2.0, 0.0, NULL) || !number_is(im, eps_name, x->ndim, -1.0, 0.0, &eps))
    return false;
  int64_t c = x->dims[x->ndim - 1];
  Value *g = layer_param(im, l, other_input(mul, div->output[0]), c, false);
  Value *b = layer_param(im, l, other_input(last, mul->output[0]), c, false);
  if (!g || !b) return false;
  emit_norm(im, l, last, x, g, b, eps);
  return true;
}

// The GELU matched by match_gelu: roles div, erf, add, mul.
static bool gelu_pattern(Importer *im, OnnxLayers *l, const Group *gr, const Onnx__NodeProto *last) {
  Onnx__NodeProto *const *node = l->g->node;
  const Onnx__NodeProto *div = node[gr->role[0]], *add = node[gr->role[2]], *mul = node[gr->role[3]];
  const Value *x = float_tensor(im, div->input[0], 0);
  const char *one = other_input(add, node[gr->role[1]]->output[0]);
  const char *half = other_input(last, mul->output[0]);
  if (!x || !number_is(im, div->input[1], x->ndim, sqrt(2.0), 1e-6, NULL) ||
      !number_is(im, one, x->ndim, 1.0, 0.0, NULL) || !number_is(im, half, x->ndim, 0.5, 0.0, NULL))
    return false;
  Value *y = im_result(im, last, DT_F32, x->ndim, x->dims);
  if (y) im_emit(im, y, "gelu(%s)", x->ident);
  return true;
}

bool onnx_layer_at(Importer *im, OnnxLayers *l, size_t i, const size_t **held, int *nheld) {
  *nheld = 0;
  if (!l) return false;
  const Onnx__NodeProto *n = l->g->node[i];
  if (!l->ends[i]) {
    if (is_op(n, "Gemm")) return gemm_layer(im, l, n);
    if (is_op(n, "MatMul")) return matmul_layer(im, l, n, NULL);
    if (is_op(n, "LayerNormalization")) return norm_layer(im, l, n, false);
    if (is_op(n, "RMSNormalization")) return norm_layer(im, l, n, true);
    return false;
  }
  const Group *gr = &l->groups[l->ends[i] - 1];
  bool done = gr->kind == G_LINEAR_ADD ? matmul_layer(im, l, l->g->node[gr->role[0]], n)
              : gr->kind == G_LAYERNORM ? layernorm_pattern(im, l, gr, n)
                                        : gelu_pattern(im, l, gr, n);
  if (!done) {
    *held = gr->members;
    *nheld = gr->nmembers;
  }
  return done;
}
