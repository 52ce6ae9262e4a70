// kernel.c: the graph cut into kernels, and fusion.
//
// Views (reshape, permute, broadcast, slice, pad, concat), constants and iota
// are index arithmetic or literals: the emitter folds them into the loads of
// whichever kernel reads them, so they cost no kernel and no memory. With
// fusion, pointwise ops are folded the same way (recomputed at each index
// their consumer reads), a reduction or contraction takes the pointwise chain
// that consumes it as its epilogue, and pointwise kernels of one shape that
// read the same tensors become one kernel with several outputs. Every
// decision not to fuse is recorded per node (plan->why) so `smelt explain`
// can say which rule kept two kernels apart. The rules: docs/fusion.md.
#include "compiler.h"

#include <stdlib.h>
#include <string.h>

// The size of what one kernel may compute inline per output element, in
// the units of op_cost: past it, a producer is stored instead (register
// pressure and code size grow with the expression).
#define EXPR_BUDGET 96
// A producer read by several kernels, or through a broadcast, is recomputed
// by each reader when it is inlined; only this cheap a one is.
#define RECOMPUTE_BUDGET 8
// A kernel whose output is a temporary moves at most this many kernels
// earlier to join a sibling (its output lives from there on).
#define SIBLING_REACH 4
// Inlining a node delays the last read of its inputs to its consumer; a
// consumer further than this many ops away may raise the peak (SR_MEMORY).
#define MEMORY_REACH 4

static bool is_leaf(const Node *n) { return n->op == OP_INPUT || n->op == OP_PARAM || n->op == OP_STATE; }

static KernelKind kind_of(Op op) {
  switch (op_kind(op)) {
  case KIND_REDUCE: return KK_REDUCE;
  case KIND_CONTRACT: return KK_MATMUL;
  case KIND_CONV: return KK_CONV;
  case KIND_POOL: return KK_POOL;
  case KIND_GATHER: return KK_GATHER;
  case KIND_ATTN: return KK_ATTN;
  case KIND_LEAF: case KIND_UNARY: case KIND_BINARY: case KIND_COMPARE: case KIND_SELECT: case KIND_MOVE:
    return op == OP_RANDOM ? KK_RANDOM : KK_POINTWISE;
  }
  UNREACHABLE();
}

const char *fusion_mode_name(FusionMode m) {
  return m == FUSION_NONE ? "none" : m == FUSION_POINTWISE ? "pointwise" : "all";
}

int fusion_mode_parse(const char *s, FusionMode *m) {
  for (int i = FUSION_ALL; i <= FUSION_NONE; i++)
    if (!strcmp(s, fusion_mode_name((FusionMode)i))) return *m = (FusionMode)i, 0;
  return -1;
}

const char *store_reason_text(StoreReason r) {
  switch (r) {
  case SR_NONE: return "fused";
  case SR_LEAF: return "an input, parameter or state tensor";
  case SR_RESULT: return "a result the caller reads (output, loss or update)";
  case SR_ROOT: return "a reduction, contraction, convolution, pool, gather, random or attention op: a kernel of its own";
  case SR_FUSION_OFF: return "fusion is off (--fusion=none)";
  case SR_OPERAND: return "a matmul operand (or attention's): tiled matmuls and attention read stored rows";
  case SR_BOUNDARY: return "boundary() in the model file";
  case SR_RECOMPUTE: return "read by several kernels or through a broadcast, and too costly to recompute";
  case SR_BUDGET: return "its inlined expression would exceed a kernel's size budget";
  case SR_REDUCE_READ: return "read by a non-pointwise op, through a broadcast or by several ops: computed once, stored";
  case SR_EPILOGUE_TAKEN: return "its consumer's kernel already has a reduction or contraction";
  case SR_MEMORY: return "fusing it would keep larger inputs alive until a distant consumer (peak memory)";
  case SR_WINDOWS: return "a convolution's image: stored once, not recomputed for each of the windows that read it";
  }
  return "?";
}

typedef struct {
  int *last;         // by node id: the last direct consumer's id
  int *uses;         // by node id: consumer ops (views count their consumers)
  bool *amplified;   // by node id: some consumer reads an element more than once
  bool *operand;     // by node id: a matmul reads it
  bool *result;      // by node id: the caller reads it
} Uses;

// Folded views pass their consumers on to their source: a node read by two
// views of one kernel counts twice, which errs on the side of storing.
static void count_uses(const Graph *g, Uses *u) {
  for (int i = g->n - 1; i >= 0; i--) {
    const Node *n = g->nodes[i];
    bool view = node_is_folded(n) && !n->stored && !u->result[i];
    for (int s = 0; s < n->nsrc; s++) {
      const Node *x = n->src[s];
      if (u->last[x->id] < i) u->last[x->id] = i;
      u->uses[x->id] += view ? (u->uses[i] ? u->uses[i] : 0) : 1;
      if (view) u->amplified[x->id] |= u->amplified[i] || n->op == OP_BROADCAST;
      else if (!shape_eq(&x->shape, &n->shape) && (node_is_pointwise(n) || n->op == OP_RANDOM)) u->amplified[x->id] = true;
      else if (!node_is_pointwise(n) && op_kind(n->op) != KIND_REDUCE && !node_is_folded(n)) u->amplified[x->id] = true;
      if (n->op == OP_MATMUL || (op_kind(n->op) == KIND_ATTN && attention_operand(n, s))) u->operand[x->id] = true;
    }
  }
}

// Bytes of the arena tensors under n's inlined expression that nothing else
// keeps alive until n's last consumer: what inlining n would hold longer.
static uint64_t held_longer(const KernelPlan *p, const Uses *u, const Node *n, int until, const Node **seen, int *nseen) {
  uint64_t bytes = 0;
  for (int s = 0; s < n->nsrc; s++) {
    const Node *x = n->src[s];
    if (p->why[x->id] == SR_NONE) {
      bytes += held_longer(p, u, x, until, seen, nseen);
      continue;
    }
    if (p->why[x->id] == SR_LEAF || u->last[x->id] >= until) continue;
    bool dup = false;
    for (int i = 0; i < *nseen; i++) dup |= seen[i] == x;
    if (dup || *nseen == 64) continue;
    seen[(*nseen)++] = x;
    bytes += (uint64_t)shape_numel(&x->shape) * (uint64_t)dtype_size(x->dtype);
  }
  return bytes;
}

// Follows a root's single consumer chain through reshapes and same-shape
// pointwise ops that are inlined, to the stored node whose kernel would
// compute it; NULL when the chain breaks (a broadcast, a second consumer).
static Node *epilogue_end(const KernelPlan *p, const Uses *u, Node *r, Node **users) {
  for (Node *at = r;;) {
    Node *next = users[at->id];
    if (u->uses[at->id] != 1 || !next) return NULL;
    if (next->op != OP_RESHAPE && !(node_is_pointwise(next) && shape_eq(&next->shape, &at->shape))) return NULL;
    if (p->slot[next->id] >= 0) return node_is_pointwise(next) || next->op == OP_RESHAPE ? next : NULL;
    at = next;
  }
}

// What kernel k's output expression reads: stored nodes, each with whether
// every read is at the kernel's own (linear) index.
typedef struct {
  const Node *node[64];
  bool identity[64];
  int n;
  bool overflow;
} ReadSet;

static void add_readset(ReadSet *r, const Node *x, bool identity) {
  for (int i = 0; i < r->n; i++)
    if (r->node[i] == x) {
      r->identity[i] &= identity;
      return;
    }
  if (r->n == 64) {
    r->overflow = true;
    return;
  }
  r->node[r->n] = x;
  r->identity[r->n++] = identity;
}

static void collect_reads(const KernelPlan *p, const Node *n, bool identity, ReadSet *r) {
  for (int s = 0; s < n->nsrc; s++) {
    const Node *x = n->src[s];
    bool id = identity && (n->op == OP_RESHAPE || (node_is_pointwise(n) && shape_eq(&x->shape, &n->shape)));
    if (p->slot[x->id] >= 0) add_readset(r, x, id);
    else collect_reads(p, x, id, r);
  }
}

static void kernel_readset(const KernelPlan *p, const Kernel *k, ReadSet *r) {
  r->n = 0;
  r->overflow = false;
  for (int o = 0; o < k->nouts; o++) collect_reads(p, k->outs[o], true, r);
}

// Sibling fusion: pointwise kernel j joins an earlier pointwise kernel of the
// same shape when everything j reads exists by then, j reads that kernel's
// outputs only at its own index, and the two share an input (or j reads the
// other's output), so the shared tensor is read once.
static void merge_siblings(KernelPlan *p, int *kernel_of) {
  bool *dead = xcalloc((size_t)(p->n ? p->n : 1), sizeof *dead);
  for (int j = 1; j < p->n; j++) {
    Kernel *kj = &p->kernels[j];
    if (kj->kind != KK_POINTWISE || kj->root != kj->out) continue;
    ReadSet rj;
    kernel_readset(p, kj, &rj);
    if (rj.overflow) continue;
    int lb = -1;
    for (int i = 0; i < rj.n; i++) {
      int kk = kernel_of[rj.node[i]->id];
      if (kk > lb) lb = kk;
    }
    for (int i = j - 1; i >= 0 && i >= lb && i >= j - 64; i--) {
      Kernel *ki = &p->kernels[i];
      if (dead[i] || ki->kind != KK_POINTWISE || ki->root != ki->out || ki->nouts == KERNEL_MAX_OUTS) continue;
      if (!shape_eq(&ki->out->shape, &kj->out->shape)) continue;
      if (j - i > SIBLING_REACH) continue;   // its output would live longer
      if (ki->out->fuse == FUSE_BOUNDARY || kj->out->fuse == FUSE_BOUNDARY) continue;
      bool ok = true, shares = false;
      ReadSet ri;
      kernel_readset(p, ki, &ri);
      for (int a = 0; a < rj.n && ok; a++) {
        if (kernel_of[rj.node[a]->id] == i) {
          ok = rj.identity[a];
          shares = true;
        }
        for (int b = 0; b < ri.n; b++) shares |= ri.node[b] == rj.node[a];
      }
      if (!ok || !shares) continue;
      ki->outs[ki->nouts++] = kj->out;
      kernel_of[kj->out->id] = i;
      dead[j] = true;
      break;
    }
  }
  int n = 0;
  for (int i = 0; i < p->n; i++)
    if (!dead[i]) p->kernels[n++] = p->kernels[i];
  p->n = n;
  free(dead);
}

// A float cast of a stored tensor: a matmul reads it by converting as it
// loads, so the cast needs no kernel (the precision policies' casts of
// parameters and inputs).
static bool cast_of_stored(const KernelPlan *p, const Node *x) {
  return x->op == OP_CAST && dtype_is_float(x->dtype) && dtype_is_float(x->src[0]->dtype) &&
         p->why[x->src[0]->id] != SR_NONE;
}

const Node *matmul_operand_buffer(const KernelPlan *p, const Node *x) {
  if (p->slot[x->id] >= 0) return x;
  // a reshape of a stored tensor has its layout: its buffer, read in place
  if (x->op == OP_RESHAPE && p->slot[x->src[0]->id] >= 0 && x->src[0]->dtype == x->dtype) return x->src[0];
  if (cast_of_stored(p, x) && p->slot[x->src[0]->id] >= 0) return x->src[0];
  return NULL;
}

// A matmul whose operands are stored float tensors (no view between) and whose
// B is not transposed runs as register tiles: rows of A broadcast against
// vectors of B's rows. Sets *tiles to the tile count.
static bool matmul_tiles(const KernelPlan *p, const Node *n, int64_t *tiles, bool *packed, bool *packed_b,
                         bool *packed_windows) {
  const Node *a = n->src[0], *b = n->src[1], *grad, *cols;
  *packed_b = *packed_windows = false;
  if (matmul_conv_fwd(n, &cols)) {   // W stored, the im2col not
    *packed = false;
    *packed_windows = p->slot[cols->id] < 0 && matmul_operand_buffer(p, a) &&
                      dtype_is_float(n->dtype) && dtype_is_float(a->dtype) && dtype_is_float(cols->dtype);
    if (*packed_windows) *tiles = cols->shape.d[0] * ((cols->shape.d[1] + p->nr - 1) / p->nr);
    return *packed_windows;
  }
  if (matmul_conv_dw(n, &grad, &cols)) {   // the image and dy stored, the im2col not
    *packed_b = p->slot[cols->id] < 0 && p->slot[cols->src[0]->id] >= 0 && matmul_operand_buffer(p, grad) &&
                dtype_is_float(n->dtype) && dtype_is_float(grad->dtype) && dtype_is_float(cols->dtype);
    *packed = false;
    if (*packed_b) *tiles = (n->shape.d[1] + p->nr - 1) / p->nr;
    return *packed_b;
  }
  *packed = a->op == OP_IM2COL && p->slot[a->id] < 0 && !n->p.matmul.ta;
  if ((!*packed && !matmul_operand_buffer(p, a)) || !matmul_operand_buffer(p, b) || n->p.matmul.tb) return false;
  if (!dtype_is_float(a->dtype) || !dtype_is_float(b->dtype) || !dtype_is_float(n->dtype)) return false;
  int nd = n->shape.ndim;
  int64_t M = n->shape.d[nd - 2], N = n->shape.d[nd - 1];
  if (M == 0 || N == 0) return false;
  int64_t batch = shape_numel(&n->shape) / (M * N);
  *tiles = batch * ((M + MATMUL_MR - 1) / MATMUL_MR) * (*packed ? 1 : (N + p->nr - 1) / p->nr);
  return true;
}

// An im2col whose one reader is a matmul taking it as A, untransposed (a
// convolution's forward GEMM), is not stored: the host's tiled matmul packs
// each tile's rows of windows from the image as it needs them (Kernel.packed)
// and the GPU's reads them through the expression layer, so the window rows
// are never written to memory.
// So is one read only through a reshape by a weight gradient's GEMM as B
// (matmul_conv_dw) whose image is stored: the host packs its window columns
// block by block (Kernel.packed_b); and a forward GEMM's transposed B
// (matmul_conv_fwd): the host packs each column tile's window values
// (Kernel.packed_windows), from the image's buffer where it has one.
static bool im2col_packed(const KernelPlan *p, const Uses *u, Node *const *users, const Node *n) {
  if (n->op != OP_IM2COL || n->fuse != FUSE_AUTO || u->uses[n->id] != 1 || u->result[n->id]) return false;
  const Node *mm = users[n->id], *cols;
  if (mm && matmul_conv_fwd(mm, &cols) && cols == n) return dtype_is_float(n->dtype);   // a forward GEMM's B
  if (mm && mm->op == OP_RESHAPE && u->uses[mm->id] == 1 && !u->result[mm->id] && !mm->stored && mm->fuse == FUSE_AUTO) {
    const Node *r = mm;
    mm = users[r->id];
    return mm && matmul_conv_dw(mm, NULL, &cols) && cols == n && mm->src[1] == r && dtype_is_float(n->dtype) &&
           p->why[n->src[0]->id] != SR_NONE;
  }
  if (!mm || mm->op != OP_MATMUL || mm->src[0] != n || mm->src[1] == n || mm->p.matmul.ta) return false;
  return dtype_is_float(n->dtype) && n->shape.d[n->shape.ndim - 1] <= MATMUL_PANEL_K;
}

static void lower(char *dst, const char *s, size_t room) {
  size_t i = 0;
  for (; s[i] && i + 1 < room; i++) dst[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
  dst[i] = '\0';
}

typedef struct {
  Op ops[4];
  int n;
} OpList;

static void ops_of(const KernelPlan *p, const Node *n, bool top, OpList *l) {
  if (!top && p->slot[n->id] >= 0) return;
  if (!node_is_folded(n) || top) {
    bool seen = false;
    for (int i = 0; i < l->n; i++) seen |= l->ops[i] == n->op;
    if (!seen && l->n < 4) l->ops[l->n++] = n->op;
  }
  for (int s = 0; s < n->nsrc; s++) ops_of(p, n->src[s], false, l);
}

// <prefix>k<id>_<scope>_<ops>: the root's scope (else the output's), dots
// become underscores, and the
// ops are the root's then the epilogue's, at most four (symbols must be
// valid PTX identifiers).
static void kernel_name(const KernelPlan *p, Kernel *k, const char *prefix) {
  char *at = k->name, *end = k->name + sizeof k->name;
  at += snprintf(at, (size_t)(end - at), "%sk%d", prefix, k->out->id);
  const char *scope = k->root->scope && *k->root->scope ? k->root->scope : k->out->scope;
  if (scope && *scope && at < end - 2) {
    *at++ = '_';
    for (const char *s = scope; *s && at < end - 24; s++)
      *at++ = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ? *s : '_';
    *at = '\0';
  }
  OpList l = {.n = 0};
  if (k->root != k->out) ops_of(p, k->root, true, &l);
  for (int o = 0; o < k->nouts; o++) ops_of(p, k->outs[o], true, &l);
  for (int i = 0; i < l.n && at < end - 12; i++) {
    *at++ = '_';
    lower(at, op_name(l.ops[i]), (size_t)(end - at) < 10 ? (size_t)(end - at) : 10);
    at += strlen(at);
  }
}

static void number_buffers(const KernelPlan *p, Kernel *k, int *local, int *order);

void kernel_plan(const Graph *g, const char *prefix, int nr, FusionMode mode, KernelPlan *p) {
  memset(p, 0, sizeof *p);
  p->nr = nr;
  p->mode = mode;
  size_t nn = (size_t)(g->n ? g->n : 1);
  Uses u = {xcalloc(nn, sizeof(int)), xcalloc(nn, sizeof(int)), xcalloc(nn, sizeof(bool)), xcalloc(nn, sizeof(bool)),
            xcalloc(nn, sizeof(bool))};
  for (int i = 0; i < g->noutputs; i++) u.result[g->outputs[i].node->id] = true;
  for (int i = 0; i < g->nupdates; i++) u.result[g->updates[i].value->id] = true;
  if (g->loss) u.result[g->loss->id] = true;
  count_uses(g, &u);
  Node **users = xcalloc(nn, sizeof *users);   // the last consumer of each node
  for (int i = 0; i < g->n; i++)
    for (int s = 0; s < g->nodes[i]->nsrc; s++) users[g->nodes[i]->src[s]->id] = g->nodes[i];
  p->slot = xmalloc(sizeof(int) * nn);
  p->why = xcalloc(nn, sizeof *p->why);
  Node **root_of = xcalloc(nn, sizeof *root_of);
  int *cost = xcalloc(nn, sizeof *cost);   // inline cost of a node's value at one index
  int *work = xcalloc(nn, sizeof *work);   // computing nodes up to each node: a distance in the schedule
  for (int i = 0, w = 0; i < g->n; i++) work[i] = w += !node_is_folded(g->nodes[i]) && !is_leaf(g->nodes[i]);
  // 1. which nodes are stored
  for (int i = 0; i < g->n; i++) {
    Node *n = g->nodes[i];
    StoreReason why = SR_NONE;
    if (is_leaf(n)) why = SR_LEAF;
    else if (u.result[i]) why = SR_RESULT;
    else if (n->fuse == FUSE_BOUNDARY) why = SR_BOUNDARY;
    else if (n->stored) why = users[i] && users[i]->op == OP_IM2COL ? SR_WINDOWS : SR_OPERAND;
    else if (node_is_folded(n)) why = SR_NONE;
    else if (op_kind(n->op) == KIND_ATTN) why = SR_ROOT;
    else if (!node_is_pointwise(n))
      why = (n->fuse == FUSE_INLINE || im2col_packed(p, &u, users, n)) && mode != FUSION_NONE ? SR_NONE : SR_ROOT;
    else if (mode == FUSION_NONE) why = SR_FUSION_OFF;
    else if (u.operand[i] && !cast_of_stored(p, n)) why = SR_OPERAND;
    p->why[i] = (unsigned char)why;
    if (why != SR_NONE) {
      cost[i] = 1;   // a load
      continue;
    }
    cost[i] = node_is_folded(n) ? 0 : op_cost(n->op);
    for (int s = 0; s < n->nsrc; s++) cost[i] += cost[n->src[s]->id];
    if (!node_is_pointwise(n) || n->fuse == FUSE_INLINE) continue;
    const Node *seen[64];
    int nseen = 0;
    if (cost[i] > EXPR_BUDGET) p->why[i] = SR_BUDGET;
    else if ((u.uses[i] > 1 || u.amplified[i]) && cost[i] > RECOMPUTE_BUDGET) p->why[i] = SR_RECOMPUTE;
    else if (work[u.last[i]] - work[i] > MEMORY_REACH &&
             held_longer(p, &u, n, u.last[i], seen, &nseen) > (uint64_t)shape_numel(&n->shape) * (uint64_t)dtype_size(n->dtype))
      p->why[i] = SR_MEMORY;
    if (p->why[i] != SR_NONE) cost[i] = 1;
  }
  for (int i = 0; i < g->n; i++) p->slot[i] = p->why[i] == SR_NONE ? -1 : 0;
  // 2. epilogues: a reduction or contraction read once, at its own index, by
  // a chain of inlined pointwise ops is computed inside their kernel
  if (mode == FUSION_ALL)
    for (int i = 0; i < g->n; i++) {
      Node *r = g->nodes[i];
      if (p->why[i] != SR_ROOT || op_kind(r->op) == KIND_ATTN) continue;   // attention stores whole rows
      Node *end = epilogue_end(p, &u, r, users);
      if (!end) {
        p->why[i] = SR_REDUCE_READ;
        continue;
      }
      if (root_of[end->id] || p->why[end->id] == SR_BUDGET) {
        p->why[i] = SR_EPILOGUE_TAKEN;
        continue;
      }
      root_of[end->id] = r;
      p->why[i] = SR_NONE;
      p->slot[i] = -1;
    }
  // 3. kernels in graph order
  p->slot_node = xmalloc(sizeof(Node *) * nn);
  p->kernels = xcalloc(nn, sizeof(Kernel));
  int *kernel_of = xmalloc(sizeof(int) * nn);
  for (int i = 0; i < g->n; i++) {
    Node *n = g->nodes[i];
    kernel_of[i] = -1;
    if (p->slot[i] < 0 || is_leaf(n)) continue;
    kernel_of[i] = p->n;
    Kernel *k = &p->kernels[p->n++];
    k->out = k->outs[0] = n;
    k->nouts = 1;
    k->root = k->roots[0] = root_of[i] ? root_of[i] : n;
    k->nroots = 1;
    k->kind = node_is_folded(k->root) ? KK_COPY : kind_of(k->root->op);
  }
  // 4. reductions over the same rows in one kernel; several outputs per pointwise kernel
  if (mode == FUSION_ALL) fuse_rows(g, p, kernel_of, u.result);
  if (mode == FUSION_ALL) merge_siblings(p, kernel_of);
  // 5. buffer slots for what is still stored, in graph order
  for (int i = 0; i < g->n; i++) {
    if (p->slot[i] < 0) continue;
    p->slot[i] = p->nslots;
    p->slot_node[p->nslots++] = g->nodes[i];
  }
  for (int i = 0; i < p->n; i++) {
    Kernel *k = &p->kernels[i];
    kernel_name(p, k, prefix);
    k->count = shape_numel(&k->root->shape);
    if (k->kind == KK_MATMUL && matmul_tiles(p, k->root, &k->count, &k->packed, &k->packed_b, &k->packed_windows))
      k->tiled = true;
    else k->packed = k->packed_b = k->packed_windows = false;
    if (k->kind == KK_ATTN) k->count = attention_rows(k->root);
    // a scatter whose every element walked every id did V times the work
    const Node *r = k->root;
    k->scatter_rows = r->op == OP_SCATTER_ADD && r->shape.ndim == 2 && r->shape.d[1] <= SCATTER_ROW_MAX && r->dtype == DT_F32;
    if (k->scatter_rows) k->count = r->shape.d[0];
  }
  int *local = xmalloc(sizeof(int) * (size_t)(p->nslots ? p->nslots : 1));
  int *order = xmalloc(sizeof(int) * (size_t)(p->nslots ? p->nslots : 1));
  for (int s = 0; s < p->nslots; s++) local[s] = -1;
  for (int i = 0; i < p->n; i++) number_buffers(p, &p->kernels[i], local, order);
  free(local);
  free(order);
  free(kernel_of);
  free(cost);
  free(work);
  free(root_of);
  free(users);
  free(u.last);
  free(u.uses);
  free(u.amplified);
  free(u.operand);
  free(u.result);
}

typedef struct {
  const KernelPlan *p;
  int *local;   // by slot: the kernel's number for it, or -1
  int *order;   // by number: the slot
  int n;
} Locals;

static void add_local(void *ctx, const Node *n) {
  Locals *l = ctx;
  int s = l->p->slot[n->id];
  if (l->local[s] >= 0) return;
  l->local[s] = l->n;
  l->order[l->n++] = s;
}

// k's own buffer numbers (Kernel.bufs): outputs first, then its reads in the
// order kernel_reads meets them, each slot once. The order depends only on
// the kernel's structure, so two kernels alike but for their slots number
// their buffers alike.
static void number_buffers(const KernelPlan *p, Kernel *k, int *local, int *order) {
  Locals l = {p, local, order, 0};
  for (int o = 0; o < k->nouts; o++) add_local(&l, k->outs[o]);
  kernel_reads(p, k, add_local, &l);
  k->nbufs = l.n;
  k->bufs = xmalloc(sizeof(int) * (size_t)(l.n ? l.n : 1));
  memcpy(k->bufs, order, sizeof(int) * (size_t)l.n);
  for (int b = 0; b < l.n; b++) local[order[b]] = -1;
}

bool kernel_reads_only_at_own_index(const KernelPlan *p, const Kernel *k, const Node *x) {
  if (k->kind == KK_COPY) return false;
  ReadSet r;
  kernel_readset(p, k, &r);
  if (k->rows || r.overflow) return false;
  for (int i = 0; i < r.n; i++)
    if (r.node[i] == x) return r.identity[i];
  return false;
}

void kernel_plan_free(KernelPlan *p) {
  free(p->reuses);
  free(p->slot);
  free(p->slot_node);
  for (int i = 0; i < p->n; i++) free(p->kernels[i].bufs);
  free(p->kernels);
  free(p->why);
  memset(p, 0, sizeof *p);
}
