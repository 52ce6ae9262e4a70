// kernel.c: the graph cut into kernels, one per op that computes values.
//
// Views (reshape, permute, broadcast, slice, pad, concat), constants and iota
// are index arithmetic or literals: the emitter folds them into the loads of
// whichever kernel reads them, so they cost no kernel and no memory. Every
// other node is stored in a buffer slot of its own (memory planning comes
// later and will share slots).
#include "compiler.h"

#include <stdlib.h>
#include <string.h>

bool node_is_folded(const Node *n) {
  return op_kind(n->op) == KIND_MOVE || n->op == OP_CONST || n->op == OP_IOTA;
}

static KernelKind kind_of(Op op) {
  switch (op_kind(op)) {
  case KIND_REDUCE: return KK_REDUCE;
  case KIND_CONTRACT: return KK_MATMUL;
  case KIND_CONV: return KK_CONV;
  case KIND_POOL: return KK_POOL;
  case KIND_GATHER: return KK_GATHER;
  default: return op == OP_RANDOM ? KK_RANDOM : KK_POINTWISE;
  }
}

// A matmul whose operands are stored f32 tensors (no view between) and whose
// B is not transposed runs as register tiles: rows of A broadcast against
// vectors of B's rows. Sets *tiles to the tile count.
static bool matmul_tiles(const KernelPlan *p, const Node *n, int64_t *tiles) {
  const Node *a = n->src[0], *b = n->src[1];
  if (p->slot[a->id] < 0 || p->slot[b->id] < 0 || n->p.matmul.tb) return false;
  if (a->dtype != DT_F32 || b->dtype != DT_F32 || n->dtype != DT_F32) return false;
  int nd = n->shape.ndim;
  int64_t M = n->shape.d[nd - 2], N = n->shape.d[nd - 1];
  if (M == 0 || N == 0) return false;
  int64_t batch = shape_numel(&n->shape) / (M * N);
  *tiles = batch * ((M + MATMUL_MR - 1) / MATMUL_MR) * ((N + p->nr - 1) / p->nr);
  return true;
}

void kernel_plan(const Graph *g, const char *prefix, int nr, KernelPlan *p) {
  memset(p, 0, sizeof *p);
  p->nr = nr;
  bool *keep = xcalloc((size_t)g->n + 1, sizeof *keep);   // must be stored
  for (int i = 0; i < g->n; i++) keep[i] = g->nodes[i]->stored;
  for (int i = 0; i < g->noutputs; i++) keep[g->outputs[i].node->id] = true;
  for (int i = 0; i < g->nupdates; i++) keep[g->updates[i].value->id] = true;
  p->slot = xmalloc(sizeof(int) * (size_t)(g->n ? g->n : 1));
  p->slot_node = xmalloc(sizeof(Node *) * (size_t)(g->n ? g->n : 1));
  p->kernels = xcalloc((size_t)(g->n ? g->n : 1), sizeof(Kernel));
  for (int i = 0; i < g->n; i++) {
    Node *n = g->nodes[i];
    if (node_is_folded(n) && !keep[i]) {
      p->slot[i] = -1;
      continue;
    }
    p->slot[i] = p->nslots;
    p->slot_node[p->nslots++] = n;
    if (n->op == OP_INPUT || n->op == OP_PARAM || n->op == OP_STATE) continue;
    Kernel *k = &p->kernels[p->n++];
    k->kind = node_is_folded(n) ? KK_COPY : kind_of(n->op);
    k->out = n;
    snprintf(k->name, sizeof k->name, "%sk%d_", prefix, n->id);
    size_t len = strlen(k->name);
    for (const char *c = op_name(n->op); *c && len + 1 < sizeof k->name; c++)
      k->name[len++] = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    k->name[len] = '\0';
    k->count = shape_numel(&n->shape);
    if (k->kind == KK_MATMUL && matmul_tiles(p, n, &k->count)) k->tiled = true;
  }
  free(keep);
}

void kernel_plan_free(KernelPlan *p) {
  free(p->slot);
  free(p->slot_node);
  free(p->kernels);
  memset(p, 0, sizeof *p);
}

static void reads_of(const KernelPlan *p, const Node *n, void (*fn)(void *, const Node *), void *ctx) {
  for (int s = 0; s < n->nsrc; s++) {
    const Node *x = n->src[s];
    if (p->slot[x->id] < 0) reads_of(p, x, fn, ctx);
    else fn(ctx, x);
  }
}

void kernel_reads(const KernelPlan *p, const Kernel *k, void (*fn)(void *, const Node *), void *ctx) {
  reads_of(p, k->out, fn, ctx);   // a KK_COPY reads what its view folds
}

typedef struct {
  const Node *seen[64];
  int n;
  uint64_t bytes;
} Reads;

// Each stored node once (up to 64 distinct; a cost is an estimate).
static void add_read(void *ctx, const Node *x) {
  Reads *r = ctx;
  for (int i = 0; i < r->n; i++)
    if (r->seen[i] == x) return;
  if (r->n < 64) r->seen[r->n++] = x;
  r->bytes += (uint64_t)shape_numel(&x->shape) * (uint64_t)dtype_size(x->dtype);
}

void kernel_cost(const KernelPlan *p, const Kernel *k, uint64_t *read, uint64_t *written, uint64_t *flops) {
  const Node *n = k->out;
  Reads r = {.n = 0, .bytes = 0};
  kernel_reads(p, k, add_read, &r);
  *read = r.bytes;
  uint64_t out = (uint64_t)shape_numel(&n->shape);
  *written = out * (uint64_t)dtype_size(n->dtype);
  switch (k->kind) {
  case KK_MATMUL: {
    const Node *a = n->src[0];
    int64_t K = n->p.matmul.ta ? a->shape.d[a->shape.ndim - 2] : a->shape.d[a->shape.ndim - 1];
    *flops = 2 * out * (uint64_t)K;
    break;
  }
  case KK_REDUCE: *flops = (uint64_t)shape_numel(&n->src[0]->shape); break;
  case KK_CONV:
    *flops = n->op == OP_IM2COL ? 0 : 2 * out * (uint64_t)(shape_numel(&n->src[1]->shape) /
                                                          (n->op == OP_CONV2D_DW ? 1 : n->src[1]->shape.d[0]));
    break;
  case KK_COPY: case KK_GATHER: *flops = 0; break;
  default: *flops = out; break;
  }
}
