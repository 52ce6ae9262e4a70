// pass_precision.c: the precision policy (docs/precision.md).
//
// bf16 and fp16 follow the rules mixed-precision training settled on: the
// products that tensor cores run take low-precision operands and accumulate
// in f32; values that only pass through cheap pointwise ops stay low, so the
// activations a step keeps cost half; anything whose range or error grows
// (exp, log, sqrt, pow, sums and maxima, hence softmax, normalization and
// the loss) computes in f32. The rewrite runs on the forward graph, so
// autodiff gives the backward pass the same types: the gradient of a cast is
// the cast back, and parameter gradients arrive in f32.
//
// The graph is rebuilt in order: each node is copied with its sources
// replaced by their rewritten versions, a cast inserted before it where a
// source's type changed and the node does not take the low type.
#include "compiler.h"

#include <stdlib.h>
#include <string.h>

DType precision_low_type(int precision) {
  return precision == PREC_BF16 ? DT_BF16 : precision == PREC_FP16 ? DT_F16 : DT_F32;
}

int precision_parse(const char *s) {
  static const char *const names[] = {"fp32", "tf32", "bf16", "fp16"};
  for (int i = 0; i < 4; i++)
    if (!strcmp(s, names[i])) return i;
  return -1;
}

// A value made only of parameters and constants: the low op that reads it
// takes it in the low type (a linear layer's bias), where an f32 activation
// would instead pull the op up to f32.
static bool param_like(const Node *n) {
  while (op_kind(n->op) == KIND_MOVE && n->nsrc == 1) n = n->src[0];
  if (n->op == OP_CAST) n = n->src[0];
  return n->op == OP_PARAM || n->op == OP_CONST || n->op == OP_IOTA;
}

// The sources of n that carry its value type (a where's condition does not).
static bool value_source(const Node *n, int k) { return !(n->op == OP_WHERE && k == 0); }

typedef struct {
  Graph *g;
  DType low;
  Node **map;    // by old id: the rewritten node
} Rewrite;

static Node *copy_node(Rewrite *r, const Node *n, Node *const *src) {
  Node *m = arena_alloc(r->g->arena, sizeof *m);
  *m = *n;
  for (int k = 0; k < n->nsrc; k++) m->src[k] = src[k];
  graph_adopt(r->g, m);
  return m;
}

static Node *rewrite(Rewrite *r, const Node *n) {
  Graph *g = r->g;
  Node *src[NODE_MAX_SRC] = {0};
  bool changed = false;
  for (int k = 0; k < n->nsrc; k++) {
    src[k] = r->map[n->src[k]->id];
    changed |= src[k]->dtype != n->src[k]->dtype;
  }
  g->scope = n->scope;
  g->loc = n->loc;
  bool f32_op = n->dtype == DT_F32 && !n->fp32;
  if (f32_op && (n->op == OP_MATMUL || n->op == OP_CONV2D || n->op == OP_CONV2D_DX)) {
    // the casts are appended before the copy, so the order stays topological
    Node *m = copy_node(r, n, (Node *[]){g_cast(g, src[0], r->low), g_cast(g, src[1], r->low)});
    m->dtype = r->low;
    return m;
  }
  if (n->op == OP_CAST) return copy_node(r, n, src);   // casts to its own dtype from whatever comes
  bool low = false;
  if (changed && !n->fp32 && op_takes_low(n->op)) {
    low = true;
    for (int k = 0; k < n->nsrc; k++)
      if (value_source(n, k) && n->src[k]->dtype == DT_F32 && src[k]->dtype != r->low && !param_like(src[k])) low = false;
  }
  for (int k = 0; k < n->nsrc; k++) {
    if (!value_source(n, k)) continue;
    if (low && n->src[k]->dtype == DT_F32) src[k] = g_cast(g, src[k], r->low);
    else if (src[k]->dtype != n->src[k]->dtype) src[k] = g_cast(g, src[k], n->src[k]->dtype);
  }
  Node *m = copy_node(r, n, src);
  if (low && m->dtype == DT_F32) m->dtype = r->low;
  return m;
}

void pass_precision(Graph *g, int precision) {
  DType low = precision_low_type(precision);
  if (low == DT_F32) return;
  Rewrite r = {g, low, xcalloc((size_t)g->n, sizeof(Node *))};
  Node **old = g->nodes;
  int n = g->n;
  const char *scope = g->scope;
  Span loc = g->loc;
  g->nodes = NULL;
  g->n = g->cap = 0;
  for (int i = 0; i < n; i++) {
    r.map[old[i]->id] = rewrite(&r, old[i]);
  }
  g->scope = "";
  // results keep the dtype the model file gave them
  for (int i = 0; i < g->noutputs; i++) {
    Node *o = g->outputs[i].node, *m = r.map[o->id];
    g->loc = o->loc;
    g->outputs[i].node = g_cast(g, m, o->dtype);
  }
  for (int i = 0; i < g->nupdates; i++) {
    Update *u = &g->updates[i];
    g->loc = u->value->loc;
    Node *target = r.map[u->target->id];
    u->value = g_cast(g, r.map[u->value->id], target->dtype);
    u->target = target;
  }
  if (g->loss) g->loss = g_cast(g, r.map[g->loss->id], g->loss->dtype);
  g->scope = scope;
  g->loc = loc;
  free(old);
  free(r.map);
  graph_prune(g);
}

void pass_precision_tf32(Graph *g) {
  for (int i = 0; i < g->n; i++) {
    Node *n = g->nodes[i];
    // convolutions that become matmuls (pass_conv_gemm) pass the mark on
    bool gemm = n->op == OP_MATMUL || ((n->op == OP_CONV2D || n->op == OP_CONV2D_DX) && conv_takes_gemm(n));
    if (gemm && n->dtype == DT_F32 && !n->fp32)
      n->tf32 = true;
  }
}

void pass_precision_grads(Graph *g) {
  // readers[id]: how many nodes read it; casts[id]: how many of them cast it to f32
  int *readers = xcalloc((size_t)g->n, sizeof *readers), *casts = xcalloc((size_t)g->n, sizeof *casts);
  bool *pinned = xcalloc((size_t)g->n, sizeof *pinned);   // an output, update or the loss
  for (int i = 0; i < g->n; i++) {
    Node *n = g->nodes[i];
    for (int k = 0; k < n->nsrc; k++) {
      readers[n->src[k]->id]++;
      if (n->op == OP_CAST && n->dtype == DT_F32) casts[n->src[k]->id]++;
    }
  }
  for (int i = 0; i < g->noutputs; i++) pinned[g->outputs[i].node->id] = true;
  for (int i = 0; i < g->nupdates; i++) pinned[g->updates[i].value->id] = true;
  if (g->loss) pinned[g->loss->id] = true;
  bool changed = false;
  for (int i = 0; i < g->n; i++) {
    Node *n = g->nodes[i];
    if (n->op == OP_CAST && n->dtype == DT_F32) {
      Node *x = n->src[0];
      bool widen = (x->op == OP_MATMUL || x->op == OP_SUM || x->op == OP_CONV2D_DX || x->op == OP_CONV2D_DW) &&
                   (x->dtype == DT_BF16 || x->dtype == DT_F16) && !pinned[x->id] && readers[x->id] == casts[x->id];
      if (!widen) continue;
      x->dtype = DT_F32;   // the f32 accumulator is stored instead of rounded
      n->op = OP_RESHAPE;  // the cast is now a no-op view, which simplification removes
      changed = true;
    }
  }
  free(readers);
  free(casts);
  free(pinned);
  if (changed) pass_simplify(g, NULL);
}
