// pass_matmul.c: matmul operands laid out for the host's tiled matmul.
//
// The tiled kernel (target/host.c) broadcasts scalars of A and loads
// contiguous vectors of B's rows, so it needs both operands in buffers of
// their own and B not transposed. Copying a view or a transposed B once costs
// one pass over K x N values; the matmul it enables does M times more work.
//
//   matmul(a, view)            -> matmul(a, stored(view))
//   matmul(a, b, tb = true)    -> matmul(a, stored(permute(b, last two)))
#include "compiler.h"

#include <string.h>

// Moves the last k nodes of g to position `at`, shifting the rest up.
static void move_last_to(Graph *g, int k, int at) {
  Node *moved[16];
  ASSERT(k <= 16);
  memcpy(moved, &g->nodes[g->n - k], sizeof(Node *) * (size_t)k);
  memmove(&g->nodes[at + k], &g->nodes[at], sizeof(Node *) * (size_t)(g->n - k - at));
  memcpy(&g->nodes[at], moved, sizeof(Node *) * (size_t)k);
  for (int i = at; i < g->n; i++) g->nodes[i]->id = i;
}

// Points every use of old (inputs, outputs, updates, the loss) at new.
static void replace_uses(Graph *g, Node *old, Node *new) {
  for (int i = 0; i < g->n; i++)
    for (int k = 0; k < g->nodes[i]->nsrc; k++)
      if (g->nodes[i]->src[k] == old && g->nodes[i] != new) g->nodes[i]->src[k] = new;
  for (int i = 0; i < g->noutputs; i++)
    if (g->outputs[i].node == old) g->outputs[i].node = new;
  for (int i = 0; i < g->nupdates; i++)
    if (g->updates[i].value == old) g->updates[i].value = new;
  if (g->loss == old) g->loss = new;
}

// A [N, P, G * K] tensor as [N, G, P, K]: each group's columns a matrix
// (ungrouped, [N, P, K] as it is).
static Node *by_group(Graph *g, Node *t, int64_t G) {
  int64_t N = t->shape.d[0], P = t->shape.d[1], K = t->shape.d[2] / G;
  if (G == 1) return t;
  Node *r = g_reshape(g, t, shape_of(4, (int64_t[]){N, P, G, K}));
  return g_permute(g, r, (int[]){0, 2, 1, 3});
}

// An output gradient dy [N, O, OH, OW] as rows [N, G, OH * OW, O / G]
// ([N, OH * OW, O] ungrouped).
static Node *grad_rows(Graph *g, Node *dy, int64_t G) {
  int64_t N = dy->shape.d[0], O = dy->shape.d[1], P = dy->shape.d[2] * dy->shape.d[3];
  Node *t = g_permute(g, dy, (int[]){0, 2, 3, 1});
  return by_group(g, g_reshape(g, t, shape_of(3, (int64_t[]){N, P, O})), G);
}

// The weights [O, C / G, KH, KW] as G matrices [G, O / G, Q] ([O, Q] ungrouped).
static Node *weight_rows(Graph *g, Node *w, int64_t G) {
  int64_t O = w->shape.d[0], Q = w->shape.d[1] * w->shape.d[2] * w->shape.d[3];
  return G == 1 ? g_reshape(g, w, shape_of(2, (int64_t[]){O, Q})) : g_reshape(g, w, shape_of(3, (int64_t[]){G, O / G, Q}));
}

// An output gradient dy [N, O, OH, OW] as [N, O, OH * OW], a view of dy
// kept in a buffer of its own: the input gradient's GEMM reads it
// transposed and the weight gradient's through a view, both in place, and
// dy's other readers (the bias gradient) read the buffer too.
static Node *stored_grad(Graph *g, Node *dy) {
  int64_t N = dy->shape.d[0], O = dy->shape.d[1], P = dy->shape.d[2] * dy->shape.d[3];
  Node *r = g_reshape(g, dy, shape_of(3, (int64_t[]){N, O, P}));
  (r->op == OP_RESHAPE ? r->src[0] : r)->stored = true;
  return r;
}

// Whether a weight gradient's GEMM fits the host's packed kernel at any tile
// width (MATMUL_MAX_NR): a block of whole output rows of window columns, and
// a strip of dW's rows, each at most a panel.
static bool dw_fits(int64_t O, int64_t OW) {
  int64_t rows = (O + MATMUL_MR - 1) / MATMUL_MR * MATMUL_MR;
  return OW * MATMUL_MAX_NR <= MATMUL_PANEL && rows * MATMUL_MAX_NR <= MATMUL_PANEL;
}

bool matmul_conv_dw(const Node *mm, const Node **grad, const Node **cols) {
  if (mm->op != OP_MATMUL || mm->p.matmul.ta || mm->p.matmul.tb || mm->shape.ndim != 2) return false;
  const Node *a = mm->src[0], *b = mm->src[1];
  if (a->op != OP_RESHAPE || a->src[0]->op != OP_PERMUTE || b->op != OP_RESHAPE || b->src[0]->op != OP_IM2COL) return false;
  const Node *t = a->src[0], *r = t->src[0], *col = b->src[0];
  if (t->shape.ndim != 3 || t->p.perm[0] != 1 || t->p.perm[1] != 0 || t->p.perm[2] != 2) return false;
  // r [N, O, P] and the im2col [N, P, Q] of one batch and grid
  if (r->shape.d[0] != col->shape.d[0] || r->shape.d[2] != col->shape.d[1]) return false;
  if (grad) *grad = r;
  if (cols) *cols = col;
  return true;
}

// Whether an ungrouped forward convolution with Q window values per output
// position runs as W @ im2col^T: its panel of Q x nr window values must fit
// the host's packed kernel at any tile width (MATMUL_MAX_NR).
static bool fwd_fits(int64_t Q) {
  return Q * MATMUL_MAX_NR <= MATMUL_PANEL;
}

bool matmul_conv_fwd(const Node *mm, const Node **cols) {
  if (mm->op != OP_MATMUL || mm->p.matmul.ta || !mm->p.matmul.tb || mm->shape.ndim != 3) return false;
  const Node *w = mm->src[0], *col = mm->src[1];
  if (w->shape.ndim != 2 || col->op != OP_IM2COL || col->shape.ndim != 3) return false;
  if (cols) *cols = col;
  return true;
}

// One convolution or convolution gradient as GEMMs, a batch of G per image
// for G groups (group g's input channels are im2col's g-th block of
// columns, its output channels the g-th block of O); returns the node that
// replaces it.
static Node *conv_as_gemm(Graph *g, Node *cv) {
  int64_t G = cv->p.conv.groups;
  if (cv->op == OP_CONV2D) {
    Node *x = cv->src[0], *w = cv->src[1];
    int64_t N = cv->shape.d[0], O = cv->shape.d[1], OH = cv->shape.d[2], OW = cv->shape.d[3];
    // a view in front (upsample, pad, slice) is read KH * KW times by the
    // packing, each an index computation: storing it once is cheaper
    if (op_kind(x->op) == KIND_MOVE && w->shape.d[2] * w->shape.d[3] > 1) x->stored = true;
    int64_t Q = w->shape.d[1] * w->shape.d[2] * w->shape.d[3];
    if (G == 1 && fwd_fits(Q)) {
      // y [N, O, OH*OW] = W [O, Q] @ im2col(x)^T (matmul_conv_fwd): the
      // output is NCHW as it is computed (its readers, a pool, read rows),
      // W is read as it is stored, and the host packs each tile of output
      // positions' window values from the image, which is stored for that
      x->stored = true;
      Node *y = g_matmul(g, weight_rows(g, w, 1), g_im2col(g, x, cv), false, true);   // [N, O, OH*OW]
      y->tf32 = cv->tf32;
      y->fp32 = cv->fp32;
      return g_reshape(g, y, cv->shape);
    }
    Node *cols = by_group(g, g_im2col(g, x, cv), G);                               // [N, G, OH*OW, Q]
    Node *y = g_matmul(g, cols, weight_rows(g, w, G), false, true);               // [N, G, OH*OW, O/G]
    y->tf32 = cv->tf32;
    y->fp32 = cv->fp32;
    if (G == 1) {
      y = g_reshape(g, y, shape_of(4, (int64_t[]){N, OH, OW, O}));
      return g_permute(g, y, (int[]){0, 3, 1, 2});                               // [N, O, OH, OW]
    }
    y = g_permute(g, y, (int[]){0, 1, 3, 2});                                      // [N, G, O/G, OH*OW]
    return g_reshape(g, y, cv->shape);
  }
  if (cv->op == OP_CONV2D_DX) {   // dx = col2im(dy_rows @ W): each window's share, summed back
    Node *dy = cv->src[0], *w = cv->src[1];
    int64_t N = dy->shape.d[0], P = dy->shape.d[2] * dy->shape.d[3];
    int64_t Q = w->shape.d[1] * w->shape.d[2] * w->shape.d[3];
    // ungrouped, dy [N, O, P] read transposed in place: the same products in
    // the same order as from a copy of its rows
    Node *rows = G == 1 ? g_matmul(g, stored_grad(g, dy), weight_rows(g, w, G), true, false)
                        : g_matmul(g, grad_rows(g, dy, G), weight_rows(g, w, G), false, false);   // [N, G, OH*OW, Q]
    rows->dtype = cv->dtype;   // a low-precision policy's f32 gradient keeps its f32 sums
    rows->tf32 = cv->tf32;     // a transposed convolution in the forward pass
    if (G > 1) {
      rows = g_permute(g, rows, (int[]){0, 2, 1, 3});                              // [N, OH*OW, G, Q]
      rows = g_reshape(g, rows, shape_of(3, (int64_t[]){N, P, G * Q}));
    }
    return g_col2im(g, rows, cv);
  }
  Node *x = cv->src[0], *dy = cv->src[1];
  int64_t N = x->shape.d[0], O = cv->shape.d[0], P = dy->shape.d[2] * dy->shape.d[3];
  int64_t Q = cv->shape.d[1] * cv->shape.d[2] * cv->shape.d[3];
  if (G == 1 && dw_fits(O, dy->shape.d[3])) {
    // dW = dy as [O, N * P] @ im2col(x) as [N * P, Q]: one product over the
    // batch and the grid, with the im2col packed from the stored image
    // (matmul_conv_dw)
    Node *a = g_reshape(g, g_permute(g, stored_grad(g, dy), (int[]){1, 0, 2}), shape_of(2, (int64_t[]){O, N * P}));
    Node *b = g_reshape(g, g_im2col(g, x, cv), shape_of(2, (int64_t[]){N * P, Q}));
    Node *dw = g_matmul(g, a, b, false, false);
    dw->dtype = cv->dtype;
    x->stored = true;   // a view in front (upsample, pad) is read once, at contiguous speed
    return g_reshape(g, dw, cv->shape);
  }
  // dW = sum over the batch of dy_rows^T @ im2col(x), per group
  Node *cols = by_group(g, g_im2col(g, x, cv), G);                                 // [N, G, OH*OW, Q]
  Node *per = g_matmul(g, grad_rows(g, dy, G), cols, true, false);                // [N, G, O/G, Q]
  per->dtype = cv->dtype;
  Node *dw = g_reduce(g, OP_SUM, per, 1u, false);                                 // [G, O/G, Q]
  return g_reshape(g, dw, cv->shape);
}

bool conv_takes_gemm(const Node *cv) {
  bool conv = cv->op == OP_CONV2D || cv->op == OP_CONV2D_DX || cv->op == OP_CONV2D_DW;
  if (!conv || !dtype_is_float(cv->dtype)) return false;
  // the weights (for CONV2D_DW its result) are [O, C / groups, KH, KW]
  const Node *w = cv->op == OP_CONV2D_DW ? cv : cv->src[1];
  int64_t G = cv->p.conv.groups, og = w->shape.d[0] / G, q = w->shape.d[1] * w->shape.d[2] * w->shape.d[3];
  // a depthwise convolution's per-group matrices are a column wide: the
  // direct loops do the same work without the copies
  return G == 1 || (og >= GEMM_MIN_GROUP && q >= GEMM_MIN_GROUP);
}

void pass_conv_gemm(Graph *g) {
  const char *scope = g->scope;
  Span loc = g->loc;
  bool changed = false;
  for (int i = 0; i < g->n; i++) {
    Node *cv = g->nodes[i];
    if (!conv_takes_gemm(cv)) continue;
    g->scope = cv->scope;
    g->loc = cv->loc;
    int before = g->n;
    Node *y = conv_as_gemm(g, cv);
    if (y->dtype != cv->dtype) y = g_cast(g, y, cv->dtype);
    move_last_to(g, g->n - before, cv->id);
    replace_uses(g, cv, y);
    changed = true;
    i = cv->id;
  }
  g->scope = scope;
  g->loc = loc;
  if (changed) graph_prune(g);   // the convolutions themselves are no longer used
}

// A view the tiled matmul cannot read in place: anything but a reshape of a
// tensor stored already, or of an input, parameter or state (a buffer
// always; matmul_operand_buffer reads that one's buffer).
static bool needs_copy(const Node *x) {
  if (!node_is_folded(x)) return false;
  if (x->op != OP_RESHAPE || x->src[0]->dtype != x->dtype) return true;
  Op op = x->src[0]->op;
  return !(x->src[0]->stored || op == OP_INPUT || op == OP_PARAM || op == OP_STATE);
}

void pass_matmul_operands(Graph *g) {
  const char *scope = g->scope;
  Span loc = g->loc;
  for (int i = 0; i < g->n; i++) {
    Node *mm = g->nodes[i];
    if (op_kind(mm->op) == KIND_ATTN) {   // attention reads each row of q, k, v, dout many times
      for (int s = 0; s < mm->nsrc; s++)
        if (attention_operand(mm, s) && node_is_folded(mm->src[s])) mm->src[s]->stored = true;
      continue;
    }
    if (mm->op != OP_MATMUL || !dtype_is_float(mm->src[0]->dtype) || !dtype_is_float(mm->src[1]->dtype)) continue;
    g->scope = mm->scope;
    g->loc = mm->loc;
    Node *a = mm->src[0], *b = mm->src[1];
    if (matmul_conv_dw(mm, NULL, NULL)) continue;   // the host packs its operands' views itself
    if (needs_copy(a)) a->stored = true;
    if (matmul_conv_fwd(mm, NULL)) continue;   // the host packs a forward convolution's im2col itself
    if (mm->p.matmul.tb) {
      int nd = b->shape.ndim, perm[MAX_DIMS];
      for (int d = 0; d < nd; d++) perm[d] = d;
      perm[nd - 2] = nd - 1;
      perm[nd - 1] = nd - 2;
      Node *t = g_permute(g, b, perm);   // appended at the end
      move_last_to(g, 1, mm->id);
      t->stored = true;
      mm->src[1] = t;
      mm->p.matmul.tb = false;
      i = mm->id;   // the matmul moved up by one
    } else if (needs_copy(b)) {
      b->stored = true;
    }
  }
  g->scope = scope;
  g->loc = loc;
}
