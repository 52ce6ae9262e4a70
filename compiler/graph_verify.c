// graph_verify.c: the invariants every pass keeps, checked on a whole graph.
//
// The pipeline (pipeline.c) calls graph_verify after each pass when
// verification is on (test builds, SMELT_VERIFY), so a pass that breaks the
// graph is named right where it did. The checks are the ones that cost one
// walk: ids and topological order, input counts per op kind (ops.def), no
// input outside the graph, outputs, updates and the loss inside it, and the
// builders' shape and dtype rules where they are local to one node.
#include "compiler.h"

#include <stdarg.h>

static bool bad(char *err, size_t errlen, const Node *n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = n ? snprintf(err, errlen, "node %%%d (%s): ", n->id, op_name(n->op)) : 0;
  if (k < 0 || (size_t)k >= errlen) k = 0;
  vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
  va_end(ap);
  return false;
}

// Whether x is the node g holds at x's id.
static bool in_graph(const Graph *g, const Node *x) { return x && x->id >= 0 && x->id < g->n && g->nodes[x->id] == x; }

// NumPy broadcasting of a and b into out, as graph.c's builders compute it.
static bool broadcast(const Shape *a, const Shape *b, Shape *out) {
  int n = a->ndim > b->ndim ? a->ndim : b->ndim;
  out->ndim = n;
  for (int i = 0; i < n; i++) {
    int ia = i - (n - a->ndim), ib = i - (n - b->ndim);
    int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
    if (da != db && da != 1 && db != 1) return false;
    out->d[i] = da == 1 ? db : da;
  }
  return true;
}

// The shape and dtype rules of one node's op against its inputs.
static bool node_types(const Node *n, char *err, size_t errlen) {
  const Node *a = n->src[0], *b = n->src[1];
  char t0[96], t1[96];
  Shape s;
  switch (op_kind(n->op)) {
  case KIND_UNARY:
    if (!shape_eq(&n->shape, &a->shape)) return bad(err, errlen, n, "shape differs from its input's %s", type_str(t0, sizeof t0, a->dtype, &a->shape));
    return true;
  case KIND_BINARY:
  case KIND_COMPARE:
    if (!broadcast(&a->shape, &b->shape, &s) || !shape_eq(&s, &n->shape))
      return bad(err, errlen, n, "shape is not the broadcast of %s and %s", type_str(t0, sizeof t0, a->dtype, &a->shape),
                 type_str(t1, sizeof t1, b->dtype, &b->shape));
    if (op_kind(n->op) == KIND_COMPARE && n->dtype != DT_BOOL) return bad(err, errlen, n, "a comparison gives %s, not bool", dtype_name(n->dtype));
    return true;
  case KIND_SELECT:
    if (n->src[0]->dtype != DT_BOOL) return bad(err, errlen, n, "the condition is %s, not bool", dtype_name(a->dtype));
    return true;
  case KIND_REDUCE:
    if (n->shape.ndim != a->shape.ndim) return bad(err, errlen, n, "a reduction keeps its input's %d dimensions", a->shape.ndim);
    for (int d = 0; d < n->shape.ndim; d++)
      if (n->shape.d[d] != ((n->p.axes >> d & 1) ? 1 : a->shape.d[d])) return bad(err, errlen, n, "dimension %d does not follow its axes", d);
    return true;
  case KIND_CONTRACT: {
    int na = a->shape.ndim, nb = b->shape.ndim, nn = n->shape.ndim;
    if (na < 2 || nb < 2 || nn < 2) return bad(err, errlen, n, "operands and result need two dimensions");
    int64_t k1 = a->shape.d[na - (n->p.matmul.ta ? 2 : 1)], k2 = b->shape.d[nb - (n->p.matmul.tb ? 1 : 2)];
    int64_t m = a->shape.d[na - (n->p.matmul.ta ? 1 : 2)], c = b->shape.d[nb - (n->p.matmul.tb ? 2 : 1)];
    if (k1 != k2 || n->shape.d[nn - 2] != m || n->shape.d[nn - 1] != c)
      return bad(err, errlen, n, "%s @ %s does not give its shape", type_str(t0, sizeof t0, a->dtype, &a->shape),
                 type_str(t1, sizeof t1, b->dtype, &b->shape));
    return true;
  }
  case KIND_MOVE:
    if (n->op == OP_RESHAPE && shape_numel(&n->shape) != shape_numel(&a->shape)) return bad(err, errlen, n, "a reshape changes the element count");
    if (n->op == OP_PERMUTE) {
      if (n->shape.ndim != a->shape.ndim) return bad(err, errlen, n, "a permutation changes the rank");
      for (int d = 0; d < n->shape.ndim; d++)
        if (n->p.perm[d] < 0 || n->p.perm[d] >= a->shape.ndim || n->shape.d[d] != a->shape.d[n->p.perm[d]])
          return bad(err, errlen, n, "dimension %d is not its input's dimension %d", d, n->p.perm[d]);
    }
    if (n->op == OP_BROADCAST && (!broadcast(&a->shape, &n->shape, &s) || !shape_eq(&s, &n->shape)))
      return bad(err, errlen, n, "%s does not broadcast to its shape", type_str(t0, sizeof t0, a->dtype, &a->shape));
    if (n->op != OP_CONCAT && n->dtype != a->dtype) return bad(err, errlen, n, "a view changes the dtype");
    return true;
  case KIND_ATTN: {
    const Node *q = n->src[0], *k = n->src[1], *v = n->src[2], *m = n->src[3];
    for (int i = 0; i < n->nsrc; i++)
      if (n->src[i]->shape.ndim != 4) return bad(err, errlen, n, "input %d does not have 4 dimensions", i);
    bool ok = n->dtype == DT_F32 && q->dtype == DT_F32 && k->dtype == DT_F32 && v->dtype == DT_F32 && m->dtype == DT_BOOL;
    for (int d = 0; d < 2; d++) ok &= k->shape.d[d] == q->shape.d[d] && v->shape.d[d] == q->shape.d[d] && m->shape.d[d] == q->shape.d[d];
    ok &= k->shape.d[3] == q->shape.d[3] && v->shape.d[2] == k->shape.d[2] && m->shape.d[2] == q->shape.d[2] && m->shape.d[3] == k->shape.d[2];
    int64_t want = n->op == OP_ATTENTION ? q->shape.d[2] : n->op == OP_ATTENTION_DQ ? q->shape.d[2] : k->shape.d[2];
    int64_t width = n->op == OP_ATTENTION ? v->shape.d[3] + 1 : n->op == OP_ATTENTION_DQ ? q->shape.d[3] : q->shape.d[3] + v->shape.d[3];
    ok &= n->shape.d[0] == q->shape.d[0] && n->shape.d[1] == q->shape.d[1] && n->shape.d[2] == want && n->shape.d[3] == width;
    if (n->op != OP_ATTENTION) ok &= n->src[5]->op == OP_ATTENTION && n->src[4]->shape.d[3] == v->shape.d[3] && n->src[6]->shape.d[3] == 1;
    if (!ok) return bad(err, errlen, n, "its inputs do not give its shape and dtype");
    return true;
  }
  case KIND_LEAF:
  case KIND_CONV:
  case KIND_POOL:
  case KIND_GATHER:
    return true;
  }
  return true;
}

bool graph_verify(const Graph *g, char *err, size_t errlen) {
  for (int i = 0; i < g->n; i++) {
    const Node *n = g->nodes[i];
    if (!n) return bad(err, errlen, NULL, "node %d is missing", i);
    if (n->id != i) return bad(err, errlen, n, "stands at index %d", i);
    if ((unsigned)n->op >= OP_COUNT) return bad(err, errlen, NULL, "node %%%d has no op (%d)", i, (int)n->op);
    if ((unsigned)n->dtype >= DT_COUNT) return bad(err, errlen, n, "has no dtype (%d)", (int)n->dtype);
    if (n->shape.ndim < 0 || n->shape.ndim > MAX_DIMS) return bad(err, errlen, n, "has %d dimensions", n->shape.ndim);
    for (int d = 0; d < n->shape.ndim; d++)
      if (n->shape.d[d] < 0) return bad(err, errlen, n, "dimension %d is %lld", d, (long long)n->shape.d[d]);
    if (n->nsrc != op_nsrc(n->op)) return bad(err, errlen, n, "has %d inputs; ops.def gives it %d", n->nsrc, op_nsrc(n->op));
    for (int k = 0; k < NODE_MAX_SRC; k++) {
      const Node *x = n->src[k];
      if (k >= n->nsrc) {
        if (x) return bad(err, errlen, n, "input slot %d is set past its %d inputs", k, n->nsrc);
        continue;
      }
      if (!in_graph(g, x)) return bad(err, errlen, n, "input %d is not in the graph", k);
      if (x->id >= i) return bad(err, errlen, n, "input %d (%%%d) comes after it", k, x->id);
    }
    if (!node_types(n, err, errlen)) return false;
  }
  for (int i = 0; i < g->noutputs; i++)
    if (!in_graph(g, g->outputs[i].node)) return bad(err, errlen, NULL, "output '%s' is not in the graph", g->outputs[i].name);
  for (int i = 0; i < g->nupdates; i++) {
    const Update *u = &g->updates[i];
    if (!in_graph(g, u->target) || !in_graph(g, u->value)) return bad(err, errlen, NULL, "update %d is not in the graph", i);
    if (u->target->op != OP_PARAM && u->target->op != OP_STATE)
      return bad(err, errlen, u->target, "is the target of update %d, which must be a parameter or state", i);
    if (!shape_eq(&u->target->shape, &u->value->shape))
      return bad(err, errlen, u->value, "has another shape than the tensor update %d writes", i);
  }
  if (g->loss && !in_graph(g, g->loss)) return bad(err, errlen, NULL, "the loss is not in the graph");
  if (g->loss_grad && !in_graph(g, g->loss_grad)) return bad(err, errlen, NULL, "the loss's seed gradient is not in the graph");
  return true;
}
