// plan_query.c: what a kernel plan says about its nodes and kernels: which
// nodes are folded or pointwise, what a kernel reads, what it costs. Both the
// planner (kernel.c, fuse_rows.c) and the passes after it (memory planning,
// explain, the ingot writer) ask these, so they live below the planner.
#include "compiler.h"

bool node_is_folded(const Node *n) {
  return op_kind(n->op) == KIND_MOVE || n->op == OP_CONST || n->op == OP_IOTA;
}

bool node_is_pointwise(const Node *n) {
  OpKind k = op_kind(n->op);
  return k == KIND_UNARY || k == KIND_BINARY || k == KIND_COMPARE || k == KIND_SELECT;
}

bool attention_operand(const Node *n, int s) { return op_kind(n->op) == KIND_ATTN && (s <= 2 || s == 4); }

int64_t attention_rows(const Node *n) {
  return n->shape.d[3] ? shape_numel(&n->shape) / n->shape.d[3] : n->shape.d[0] * n->shape.d[1] * n->shape.d[2];
}

static bool is_out(const Kernel *k, const Node *x) {
  for (int o = 0; o < k->nouts; o++)
    if (k->outs[o] == x) return true;
  return false;
}

static void reads_of(const KernelPlan *p, const Kernel *k, const Node *n, void (*fn)(void *, const Node *), void *ctx) {
  for (int s = 0; s < n->nsrc; s++) {
    const Node *x = n->src[s];
    if (p->slot[x->id] < 0) reads_of(p, k, x, fn, ctx);
    else if (!is_out(k, x)) fn(ctx, x);   // an earlier output of the kernel is in registers
  }
}

void kernel_reads(const KernelPlan *p, const Kernel *k, void (*fn)(void *, const Node *), void *ctx) {
  for (int r = 0; r < k->nroots; r++)   // a row kernel's stored reductions are outputs: their reads still count
    if (k->roots[r] != k->out || k->rows) reads_of(p, k, k->roots[r], fn, ctx);
  for (int o = 0; o < k->nouts; o++) reads_of(p, k, k->outs[o], fn, ctx);   // a KK_COPY reads what its view folds
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

// Elementwise FLOPs of the inlined ops under n (n itself included unless stored elsewhere).
// (A row kernel's reductions are computed once per row: not counted again
// where later phases read them.)
static uint64_t inline_flops(const KernelPlan *p, const Kernel *k, const Node *n, bool top) {
  if (!top && p->slot[n->id] >= 0) return 0;
  if (!top && k->rows)
    for (int r = 0; r < k->nroots; r++)
      if (k->roots[r] == n) return 0;
  uint64_t f = node_is_pointwise(n) ? (uint64_t)shape_numel(&n->shape) : 0;
  for (int s = 0; s < n->nsrc; s++) f += inline_flops(p, k, n->src[s], false);
  return f;
}

void kernel_cost(const KernelPlan *p, const Kernel *k, uint64_t *read, uint64_t *written, uint64_t *flops) {
  const Node *n = k->root;
  Reads r = {.n = 0, .bytes = 0};
  kernel_reads(p, k, add_read, &r);
  *read = r.bytes;
  *written = 0;
  for (int o = 0; o < k->nouts; o++)
    *written += (uint64_t)shape_numel(&k->outs[o]->shape) * (uint64_t)dtype_size(k->outs[o]->dtype);
  uint64_t out = (uint64_t)shape_numel(&n->shape);
  switch (k->kind) {
  case KK_MATMUL: {
    const Node *a = n->src[0];
    int64_t K = n->p.matmul.ta ? a->shape.d[a->shape.ndim - 2] : a->shape.d[a->shape.ndim - 1];
    *flops = 2 * out * (uint64_t)K;
    break;
  }
  case KK_REDUCE:
    *flops = 0;
    for (int r = 0; r < k->nroots; r++) *flops += (uint64_t)shape_numel(&k->roots[r]->src[0]->shape);
    break;
  case KK_CONV:
    *flops = n->op == OP_IM2COL ? 0 : n->op == OP_COL2IM ? out * (uint64_t)(n->p.conv.kernel[0] * n->p.conv.kernel[1]) : 2 * out * (uint64_t)(shape_numel(&n->src[1]->shape) /
                                                          (n->op == OP_CONV2D_DW ? 1 : n->src[1]->shape.d[0]));
    break;
  case KK_ATTN: {   // two products of every (query, key) pair, four with the backward's recomputation
    const Node *q = n->src[0], *v = n->src[2];
    uint64_t pairs = (uint64_t)shape_numel(&n->src[3]->shape);
    if (n->p.attn.causal) pairs = pairs / 2 + (uint64_t)(q->shape.d[0] * q->shape.d[1] * q->shape.d[2]) / 2;
    uint64_t per = (uint64_t)(q->shape.d[3] + v->shape.d[3]);
    *flops = 2 * pairs * per * (n->op == OP_ATTENTION ? 1 : 2);
    break;
  }
  default: *flops = 0; break;
  }
  // the pointwise ops computed inline: the outputs, their prologues and epilogues
  for (int o = 0; o < k->nouts; o++) *flops += inline_flops(p, k, k->outs[o], true);
  if (k->rows)
    for (int r = 0; r < k->nroots; r++) *flops += inline_flops(p, k, k->roots[r]->src[0], false);
}
