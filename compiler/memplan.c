// memplan.c: offsets in an entry's arena, with memory reused across lifetimes.
//
// Each stored tensor of an entry lives from the launch that writes it to the
// last launch that reads it; inputs, outputs and the values updates take are
// live for the whole entry (the caller writes and reads them around a run).
// Two tensors whose lifetimes share a launch never share bytes, so a kernel
// never writes over what it reads. Placement is greedy by size, largest
// first, each at the lowest aligned offset that fits between the tensors
// already placed whose lifetimes meet its own (the greedy-by-size strategy
// of TFLite's arena planner, which is within a few percent of optimal on
// network graphs).
#include "compiler.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  const KernelPlan *p;
  MemBuf *bufs;   // by slot
  int at;         // the launch being visited
} Uses;

static void note_read(void *ctx, const Node *n) {
  Uses *u = ctx;
  int s = u->p->slot[n->id];
  if (s >= 0 && u->bufs[s].last < u->at) u->bufs[s].last = u->at;
}

void memplan_lifetimes(const Graph *g, const KernelPlan *p, MemBuf *b) {
  int end = p->n;
  for (int s = 0; s < p->nslots; s++) {
    const Node *n = p->slot_node[s];
    b[s] = (MemBuf){.bytes = (uint64_t)shape_numel(&n->shape) * (uint64_t)dtype_size(n->dtype), .first = end,
                    .last = -1, .offset = 0, .reuses = -1};
    if (n->op == OP_INPUT) b[s].first = -1, b[s].last = end;
  }
  Uses u = {p, b, 0};
  for (int k = 0; k < p->n; k++) {
    for (int o = 0; o < p->kernels[k].nouts; o++) {
      int s = p->slot[p->kernels[k].outs[o]->id];
      if (b[s].first > k) b[s].first = k;
      if (b[s].last < k) b[s].last = k;
    }
    u.at = k;
    kernel_reads(p, &p->kernels[k], note_read, &u);
  }
  for (int i = 0; i < g->noutputs; i++) b[p->slot[g->outputs[i].node->id]].last = end;
  for (int i = 0; i < g->nupdates; i++) b[p->slot[g->updates[i].value->id]].last = end;
  if (g->loss && p->slot[g->loss->id] >= 0) b[p->slot[g->loss->id]].last = end;
}

static bool meet(const MemBuf *a, const MemBuf *b) { return a->first <= b->last && b->first <= a->last; }

// The buffer whose bytes b[i] ends up in.
static int owner(const MemBuf *b, int i) {
  while (b[i].reuses >= 0) i = b[i].reuses;
  return i;
}

void memplan_inplace(const KernelPlan *p, MemBuf *b, const bool *plan) {
  bool *taken = xcalloc((size_t)(p->nslots ? p->nslots : 1), sizeof *taken);
  for (int k = 0; k < p->n; k++) {
    const Kernel *kn = &p->kernels[k];
    for (int o = 0; o < kn->nouts; o++) {
      int so = p->slot[kn->outs[o]->id];
      if (!plan[so] || b[so].first != k || b[so].bytes == 0) continue;
      for (int s = 0; s < p->nslots; s++) {   // the first tensor it can take over
        const Node *x = p->slot_node[s];
        bool own = false;
        for (int j = 0; j < kn->nouts; j++) own |= kn->outs[j] == x;
        if (!plan[s] || taken[s] || own || b[s].last != k || b[s].first < 0 || b[s].bytes != b[so].bytes) continue;
        if (!kernel_reads_only_at_own_index(p, kn, x)) continue;
        b[so].reuses = s;
        taken[s] = true;
        break;
      }
    }
  }
  free(taken);
}

static const MemBuf *sorting;   // the buffers the comparisons index (qsort has no context)

static int by_size(const void *x, const void *y) {
  const MemBuf *b = sorting;
  int i = *(const int *)x, j = *(const int *)y;
  if (b[i].bytes != b[j].bytes) return b[i].bytes > b[j].bytes ? -1 : 1;
  return b[i].first != b[j].first ? b[i].first - b[j].first : i - j;   // deterministic
}

static int by_offset(const void *x, const void *y) {
  const MemBuf *b = sorting;
  int i = *(const int *)x, j = *(const int *)y;
  return b[i].offset < b[j].offset ? -1 : b[i].offset > b[j].offset ? 1 : i - j;
}

static uint64_t round_up(uint64_t v, uint64_t align) { return (v + align - 1) / align * align; }

uint64_t memplan_pack(MemBuf *b, const bool *plan, int n, uint64_t align) {
  int *order = xmalloc(sizeof(int) * (size_t)(n ? n : 1)), *placed = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
  int norder = 0, nplaced = 0;
  // a buffer and those that reuse it are placed as one, over their lifetimes together
  int *span_last = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
  for (int i = 0; i < n; i++) span_last[i] = b[i].last;
  for (int i = 0; i < n; i++)
    if (plan[i] && b[i].reuses >= 0) {
      int r = owner(b, i);
      if (b[i].last > span_last[r]) span_last[r] = b[i].last;
    }
  for (int i = 0; i < n; i++) {
    int t = span_last[i];
    span_last[i] = b[i].last;
    b[i].last = t;
  }
  for (int i = 0; i < n; i++)
    if (plan[i] && b[i].reuses < 0) order[norder++] = i;
  sorting = b;
  qsort(order, (size_t)norder, sizeof *order, by_size);
  int *near = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
  uint64_t top = 0;
  for (int o = 0; o < norder; o++) {
    MemBuf *x = &b[order[o]];
    int nnear = 0;   // placed buffers whose lifetimes meet x's, by offset
    for (int i = 0; i < nplaced; i++)
      if (meet(&b[placed[i]], x)) near[nnear++] = placed[i];
    qsort(near, (size_t)nnear, sizeof *near, by_offset);
    uint64_t at = 0, best = UINT64_MAX, best_gap = UINT64_MAX;
    for (int i = 0; i < nnear; i++) {   // the smallest gap below each neighbour that fits
      const MemBuf *y = &b[near[i]];
      if (y->offset >= at + x->bytes && y->offset - at < best_gap) best = at, best_gap = y->offset - at;
      uint64_t end = round_up(y->offset + y->bytes, align);
      if (end > at) at = end;
    }
    x->offset = best != UINT64_MAX ? best : at;
    if (round_up(x->offset + x->bytes, align) > top) top = round_up(x->offset + x->bytes, align);
    placed[nplaced++] = order[o];
  }
  for (int i = 0; i < n; i++) {   // each its own lifetime again; reusers at their owner's offset
    b[i].last = span_last[i];
    if (plan[i] && b[i].reuses >= 0) b[i].offset = b[owner(b, i)].offset;
  }
  free(span_last);
  free(order);
  free(placed);
  free(near);
  return top;
}

bool memplan_check(const MemBuf *b, const bool *plan, int n, uint64_t arena, char *err, size_t errlen) {
  for (int i = 0; i < n; i++) {
    if (!plan[i]) continue;
    if (b[i].offset + b[i].bytes > arena) {
      snprintf(err, errlen, "buffer %d lies outside the arena", i);
      return false;
    }
    for (int j = i + 1; j < n; j++)
      if (plan[j] && b[i].bytes && b[j].bytes && meet(&b[i], &b[j]) && owner(b, i) != owner(b, j) &&
          b[i].offset < b[j].offset + b[j].bytes && b[j].offset < b[i].offset + b[i].bytes) {
        snprintf(err, errlen, "buffers %d and %d are live together and overlap", i, j);
        return false;
      }
  }
  return true;
}

uint64_t memplan_entry(const Graph *g, KernelPlan *p, MemBuf *b, bool *in, uint64_t align, uint64_t *total) {
  memplan_lifetimes(g, p, b);
  *total = 0;
  for (int s = 0; s < p->nslots; s++) {
    in[s] = p->slot_node[s]->op != OP_PARAM && p->slot_node[s]->op != OP_STATE;
    if (in[s]) *total += (b[s].bytes + align - 1) / align * align;
  }
  memplan_inplace(p, b, in);
  free(p->reuses);
  p->reuses = xmalloc(sizeof(int) * (size_t)(p->nslots ? p->nslots : 1));
  for (int s = 0; s < p->nslots; s++) p->reuses[s] = b[s].reuses;
  return memplan_pack(b, in, p->nslots, align);
}
