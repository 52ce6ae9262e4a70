// fuse_rows.c: several reductions over the same rows in one kernel.
//
// Softmax, log-softmax, layer norm and cross-entropy (and their gradients)
// reduce one row several times: a max, then a sum of exponentials that reads
// the max; a mean, then a variance that reads the mean; then a pointwise pass
// over the row that reads them all. A row kernel runs all of it for a row at
// a time: each reduction in turn (its prologue reads the earlier ones' values
// for this row), then the row-shaped results, then a pass over the row's
// elements for the row-element-shaped ones. The row's values come from memory
// once per phase instead of once per kernel, and nothing row-sized in between
// is stored unless a later kernel needs it.
//
// Kernels join a group started by a reduction over the innermost axes of some
// shape X (rows of shape Rs), scanning forward in schedule order, when they
// are: a reduction of X over the same axes; a pointwise kernel of shape X or
// Rs. A candidate joins only if everything it reads is computed before the
// group's first kernel or by the group itself at the current row (a group
// result of shape X read at its own element, of shape Rs through a broadcast
// along the row). A member's output that only members read is no longer
// stored: the kernel recomputes it where it needs it.
#include "compiler.h"

#include <stdlib.h>
#include <string.h>

#define ROW_WINDOW 24   // kernels scanned after a group's first

typedef enum { CTX_X, CTX_ROW, CTX_OTHER } Ctx;   // what index an expression is read at

typedef struct {
  const KernelPlan *p;
  const int *kernel_of;      // by node id: the kernel storing it, -1 for leaves and unstored
  const bool *member;        // by kernel index
  const bool *in_group;      // by node id: an output or root of a member
  int first;                 // the group's first kernel
  int64_t xn, rn;            // elements of X and of Rs
  const Shape *x, *rs;
} Group;

static bool is_leaf(const Node *n) { return n->op == OP_INPUT || n->op == OP_PARAM || n->op == OP_STATE; }

// Whether n, read at ctx, is available to the group: group values only at the
// current row, everything else computed before the group's first kernel.
static bool reads_ok(const Group *gr, const Node *n, Ctx ctx, int depth) {
  if (depth > 200) return false;
  if (gr->in_group[n->id]) {
    int64_t numel = shape_numel(&n->shape);
    return (ctx == CTX_X && numel == gr->xn) || (ctx == CTX_ROW && numel == gr->rn);
  }
  if (gr->p->slot[n->id] >= 0) {
    int k = gr->kernel_of[n->id];
    return is_leaf(n) || k < gr->first || (k >= 0 && gr->member[k]);
  }
  for (int s = 0; s < n->nsrc; s++) {
    const Node *x = n->src[s];
    Ctx c = CTX_OTHER;
    if (n->op == OP_RESHAPE) c = ctx;
    else if (n->op == OP_BROADCAST && ctx == CTX_X && shape_eq(&n->shape, gr->x) && shape_eq(&x->shape, gr->rs)) c = CTX_ROW;
    else if (node_is_pointwise(n) && shape_eq(&x->shape, &n->shape)) c = ctx;
    else if (node_is_pointwise(n) && ctx == CTX_X && shape_eq(&n->shape, gr->x) && shape_eq(&x->shape, gr->rs)) c = CTX_ROW;
    else if (op_kind(n->op) == KIND_REDUCE && ctx != CTX_OTHER) c = CTX_OTHER;   // an inlined reduction
    if (!reads_ok(gr, x, c, depth + 1)) return false;
  }
  return true;
}

// The reduced axes are the innermost ones, and the rows have at least two elements.
static bool row_reduction(const Node *r) {
  if (op_kind(r->op) != KIND_REDUCE || r->op == OP_ARGMAX) return false;
  const Shape *x = &r->src[0]->shape;
  if (r->shape.ndim != x->ndim || x->ndim == 0) return false;   // kept dims: Rs has X's rank
  bool inner = true;
  int64_t len = 1;
  for (int d = x->ndim - 1; d >= 0; d--) {
    bool reduced = r->p.axes & (1u << d);
    if (reduced && !inner) return false;
    if (!reduced) inner = false;
    else len *= x->d[d];
  }
  return len >= 2 && (r->p.axes & (1u << (x->ndim - 1)));
}

static bool same_rows(const Node *a, const Node *b) {
  return shape_eq(&a->src[0]->shape, &b->src[0]->shape) && a->p.axes == b->p.axes && shape_eq(&a->shape, &b->shape);
}

// Checks candidate kernel kn's reads with its outputs (and root) counted in
// the group, as they will be if it joins.
static bool joins(const Group *gr, bool *in_group, const Kernel *kn, bool red) {
  in_group[kn->root->id] = true;
  for (int o = 0; o < kn->nouts; o++) in_group[kn->outs[o]->id] = true;
  bool ok = !red || reads_ok(gr, kn->root->src[0], CTX_X, 0);
  for (int o = 0; o < kn->nouts && ok; o++) {
    const Node *out = kn->outs[o];
    if (red && out == kn->root) continue;   // its prologue is checked above
    Ctx c = shape_numel(&out->shape) == gr->xn && !red ? CTX_X : CTX_ROW;
    for (int s = 0; s < out->nsrc && ok; s++) {
      const Node *x = out->src[s];
      Ctx cs = out->op == OP_RESHAPE || shape_eq(&x->shape, &out->shape) ? c
               : c == CTX_X && shape_eq(&out->shape, gr->x) && shape_eq(&x->shape, gr->rs) ? CTX_ROW
               : out->op == OP_BROADCAST && c == CTX_X && shape_eq(&x->shape, gr->rs) ? CTX_ROW : CTX_OTHER;
      ok = reads_ok(gr, x, cs, 1);
    }
  }
  if (!ok) {
    in_group[kn->root->id] = false;
    for (int o = 0; o < kn->nouts; o++) in_group[kn->outs[o]->id] = false;
  }
  return ok;
}

static void count_read(void *ctx, const Node *n) { ((int *)ctx)[n->id]++; }

void fuse_rows(const Graph *g, KernelPlan *p, int *kernel_of, const bool *result) {
  size_t nn = (size_t)(g->n ? g->n : 1), nk = (size_t)(p->n ? p->n : 1);
  bool *member = xcalloc(nk, sizeof *member), *dead = xcalloc(nk, sizeof *dead), *grouped = xcalloc(nk, sizeof *grouped);
  bool *in_group = xcalloc(nn, sizeof *in_group);
  for (int k0 = 0; k0 < p->n; k0++) {
    Kernel *first = &p->kernels[k0];
    if (dead[k0] || first->kind != KK_REDUCE || first->nouts != 1 || !row_reduction(first->root)) continue;
    const Node *r0 = first->root;
    Group gr = {p, kernel_of, member, in_group, k0, shape_numel(&r0->src[0]->shape), shape_numel(&r0->shape),
                &r0->src[0]->shape, &r0->shape};
    if (gr.rn == 0 || !joins(&gr, in_group, first, true)) continue;
    int members[ROW_WINDOW + 1], nm = 0, nroots = 1, nouts = first->nouts;
    members[nm++] = k0;
    member[k0] = true;
    for (int k = k0 + 1; k < p->n && k <= k0 + ROW_WINDOW; k++) {
      Kernel *kn = &p->kernels[k];
      if (dead[k] || kn->nouts != 1 || kn->tiled) continue;
      bool red = kn->kind == KK_REDUCE && row_reduction(kn->root) && same_rows(kn->root, r0);
      bool elem = kn->kind == KK_POINTWISE && kn->root == kn->out &&
                  (shape_eq(&kn->out->shape, gr.x) || shape_eq(&kn->out->shape, gr.rs));
      if (!red && !elem) continue;
      if ((red && nroots == KERNEL_MAX_ROOTS) || nouts == KERNEL_MAX_OUTS) break;
      if (!joins(&gr, in_group, kn, red)) continue;
      members[nm++] = k;
      member[k] = true;
      nroots += red;
      nouts += kn->nouts;
    }
    for (int i = 0; i < nm; i++) {   // the group's marks go; its kernels stay marked as grouped
      member[members[i]] = false;
      Kernel *kn = &p->kernels[members[i]];
      in_group[kn->root->id] = false;
      for (int o = 0; o < kn->nouts; o++) in_group[kn->outs[o]->id] = false;
    }
    if (nm < 2) continue;
    // the row kernel takes the first member's place
    Kernel rk = {.kind = KK_REDUCE, .rows = true};
    for (int i = 0; i < nm; i++) {
      Kernel *kn = &p->kernels[members[i]];
      if (kn->kind == KK_REDUCE) rk.roots[rk.nroots++] = kn->root;
      for (int o = 0; o < kn->nouts; o++) rk.outs[rk.nouts++] = kn->outs[o];
      if (i) dead[members[i]] = true;
    }
    rk.root = rk.roots[0];
    rk.out = rk.outs[0];
    p->kernels[k0] = rk;
    grouped[k0] = true;
    for (int o = 0; o < rk.nouts; o++) kernel_of[rk.outs[o]->id] = k0;
  }
  // outputs of a row kernel that no other kernel reads are not stored: the
  // kernel recomputes them where it needs them
  int *readers = xcalloc(nn, sizeof *readers);
  for (int k = 0; k < p->n; k++)
    if (!dead[k]) kernel_reads(p, &p->kernels[k], count_read, readers);
  for (int k = 0; k < p->n; k++) {
    Kernel *kn = &p->kernels[k];
    if (dead[k] || !grouped[k]) continue;
    int n = 0;
    for (int o = 0; o < kn->nouts; o++) {
      Node *x = kn->outs[o];
      bool unread = readers[x->id] == 0 && !result[x->id] && x->fuse != FUSE_BOUNDARY;
      if (unread && (n > 0 || o < kn->nouts - 1)) {   // (one output always stays)
        p->slot[x->id] = -1;
        p->why[x->id] = SR_NONE;
        kernel_of[x->id] = -1;
      } else {
        kn->outs[n++] = x;
      }
    }
    kn->nouts = n;
    kn->out = kn->outs[0];
  }
  free(readers);
  // compact, renumbering kernel_of
  int *index = xmalloc(sizeof(int) * nk), n = 0;
  for (int i = 0; i < p->n; i++) {
    index[i] = dead[i] ? -1 : n;
    if (!dead[i]) p->kernels[n++] = p->kernels[i];
  }
  for (int i = 0; i < g->n; i++)
    if (kernel_of[i] >= 0) kernel_of[i] = index[kernel_of[i]];
  p->n = n;
  free(index);
  free(member);
  free(dead);
  free(grouped);
  free(in_group);
}
