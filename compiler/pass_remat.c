// pass_remat.c: activation recomputation.
//
// A training step keeps forward values alive until the backward pass reads
// them; at the peak of a step most of the arena is such values. A cheap one
// (a pointwise chain) whose inputs the backward pass keeps anyway need not be
// kept: a copy of its chain is computed again right before its first backward
// reader, which reads the copy, and the forward value dies after its forward
// readers. Fusion then computes the copy inside the backward kernels that read
// it (or stores it briefly, for a matmul operand).
//
// A value is recomputed when --remat is given (every candidate) or remat()
// marks it in the model file, and:
//   - it is read by the backward pass (a node appended after the forward graph)
//     and is not a result (output, loss, update value);
//   - the chain that makes it reaches back only through pointwise ops and
//     views to leaves, constants, and values the backward pass reads anyway
//     (their last reader is at or after the copy's place): recomputing it keeps
//     nothing alive longer;
//   - the chain costs at most REMAT_BUDGET per element (arithmetic 1, division
//     and roots 2, transcendental functions 8) over at most REMAT_NODES ops.
// The copies compute exactly what the originals do: values are unchanged, bit
// for bit.
#include "compiler.h"

#include <stdlib.h>
#include <string.h>

#define REMAT_BUDGET 24
#define REMAT_NODES 16

typedef struct {
  int *last;           // by id: the last reader's id (-1: none)
  int *first_after;    // by id: the first reader at or after the forward end (INT_MAX: none)
  bool *result;        // by id
} Readers;

static void readers(const Graph *g, int forward_end, Readers *r) {
  for (int i = 0; i < g->n; i++) r->last[i] = -1, r->first_after[i] = INT32_MAX, r->result[i] = false;
  for (int i = 0; i < g->n; i++)
    for (int s = 0; s < g->nodes[i]->nsrc; s++) {
      int x = g->nodes[i]->src[s]->id;
      if (i > r->last[x]) r->last[x] = i;
      if (i >= forward_end && i < r->first_after[x]) r->first_after[x] = i;
    }
  for (int i = 0; i < g->noutputs; i++) r->result[g->outputs[i].node->id] = true;
  for (int i = 0; i < g->nupdates; i++) r->result[g->updates[i].value->id] = true;
  if (g->loss) r->result[g->loss->id] = true;
}

static bool recomputable(const Node *n) {
  return (op_kind(n->op) == KIND_UNARY || op_kind(n->op) == KIND_BINARY || op_kind(n->op) == KIND_COMPARE ||
          op_kind(n->op) == KIND_SELECT || op_kind(n->op) == KIND_MOVE) &&
         !n->stored && n->fuse != FUSE_BOUNDARY;
}

typedef struct {
  Node *nodes[REMAT_NODES];
  int n, cost;
} Chain;

// Collects the chain that makes x, back to what is alive at `at` anyway;
// false when it would need a value that is not (or grows too large).
static bool collect(const Readers *r, Node *x, int at, bool top, Chain *c) {
  for (int i = 0; i < c->n; i++)
    if (c->nodes[i] == x) return true;
  bool free_leaf = x->op == OP_INPUT || x->op == OP_PARAM || x->op == OP_STATE || x->op == OP_CONST || x->op == OP_IOTA;
  if (!top && (free_leaf || r->last[x->id] >= at)) return true;   // alive anyway
  if (!recomputable(x) || c->n == REMAT_NODES) return false;
  c->cost += op_kind(x->op) == KIND_MOVE ? 0 : op_cost(x->op);
  if (c->cost > REMAT_BUDGET) return false;
  for (int s = 0; s < x->nsrc; s++)
    if (!collect(r, x->src[s], at, false, c)) return false;
  c->nodes[c->n++] = x;   // after its sources: topological order
  return true;
}

void pass_remat(Graph *g, int forward_end, bool all, RematStats *st) {
  size_t cap = (size_t)g->n * 2 + 64;   // copies are appended: room for them
  Readers r = {xmalloc(sizeof(int) * cap), xmalloc(sizeof(int) * cap), xmalloc(sizeof(bool) * cap)};
  readers(g, forward_end, &r);
  for (int i = 0; i < forward_end; i++) {
    Node *n = g->nodes[i];
    int at = r.first_after[i];
    if (at == INT32_MAX || r.result[i] || !(all || n->fuse == FUSE_REMAT) || op_kind(n->op) == KIND_MOVE) continue;
    Chain c = {.n = 0, .cost = 0};
    if (!collect(&r, n, at, true, &c)) continue;
    if ((size_t)(g->n + c.n) >= cap) break;
    // the copies, in order, right before the first backward reader
    Node *copy[REMAT_NODES];
    for (int k = 0; k < c.n; k++) {
      Node *x = c.nodes[k], *y = arena_alloc(g->arena, sizeof *y);
      *y = *x;
      y->fuse = FUSE_AUTO;
      for (int s = 0; s < y->nsrc; s++)
        for (int j = 0; j < k; j++)
          if (y->src[s] == c.nodes[j]) y->src[s] = copy[j];
      copy[k] = y;
    }
    if (g->n + c.n > g->cap) {
      g->cap = (g->n + c.n) * 2;
      g->nodes = xrealloc(g->nodes, sizeof(Node *) * (size_t)g->cap);
    }
    memmove(&g->nodes[at + c.n], &g->nodes[at], sizeof(Node *) * (size_t)(g->n - at));
    for (int k = 0; k < c.n; k++) g->nodes[at + k] = copy[k];
    g->n += c.n;
    for (int j = at; j < g->n; j++) g->nodes[j]->id = j;
    // the backward readers read the copy
    for (int j = at + c.n; j < g->n; j++)
      for (int s = 0; s < g->nodes[j]->nsrc; s++)
        if (g->nodes[j]->src[s] == n) g->nodes[j]->src[s] = copy[c.n - 1];
    if (st) {
      st->values++;
      st->bytes += (uint64_t)shape_numel(&n->shape) * (uint64_t)dtype_size(n->dtype);
      for (int k = 0; k < c.n; k++)
        if (op_kind(c.nodes[k]->op) != KIND_MOVE) st->flops += (uint64_t)shape_numel(&c.nodes[k]->shape);
    }
    readers(g, forward_end, &r);
  }
  free(r.last);
  free(r.first_after);
  free(r.result);
}
