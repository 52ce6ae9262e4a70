// autodiff.c: reverse-mode differentiation of the op graph.
//
// Walks the nodes from the loss back to the leaves and, for each node that a
// parameter can reach, applies its op's rule to the gradient flowing into it,
// appending the backward nodes to the same graph with the same builders (so
// they are shape-checked like anything else). Rules are written as the
// pattern they apply, y = op(x...), dy the incoming gradient. Broadcasting in
// the forward pass is undone by summing (g_unbroadcast); gradients of views
// are views (reshape, permute, pad, slice).
#include "compiler.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  Graph *g;
  Node **grad;     // by node id; only ids below n0 (the forward graph)
  bool *needs;     // by node id: a parameter (or wanted input) reaches it
  int n0;
} AD;

static Node *scalar(Graph *g, double v, DType t) { return g_const(g, v, t, (Shape){0}); }

static void accumulate(AD *ad, Node *x, Node *dx) {
  if (!dx || !ad->needs[x->id] || !dtype_is_float(x->dtype)) return;
  if (dx->dtype != x->dtype) dx = g_cast(ad->g, dx, x->dtype);
  ASSERT(shape_eq(&dx->shape, &x->shape));
  Node *old = ad->grad[x->id];
  ad->grad[x->id] = old ? g_binary(ad->g, OP_ADD, old, dx) : dx;
}

static Node *mul(Graph *g, Node *a, Node *b) { return g_binary(g, OP_MUL, a, b); }

// dy of a broadcasting binary op, summed back to operand x's shape.
static void acc_unb(AD *ad, Node *x, Node *dx) {
  if (!ad->needs[x->id]) return;
  accumulate(ad, x, g_unbroadcast(ad->g, dx, x->shape));
}

static Node *as_float(Graph *g, Node *mask, DType t) { return g_cast(g, mask, t); }

// The inverse of a slice: dy placed back at the sliced positions of x's shape,
// zeros elsewhere, built from views: reverse what a negative step walked
// down, interleave zeros for steps, then pad.
static Node *unslice(Graph *g, const Node *y, Node *dy) {
  const Node *x = y->src[0];
  Node *cur = dy;
  for (int d = 0; d < x->shape.ndim; d++) {
    int64_t step = y->p.slice.step[d], start = y->p.slice.start[d];
    if (step < 0) {
      // y = x[start::step] along d reads, lowest first, x[low::-step] with
      // low = start + (n - 1) * step, in reverse: flip dy, then as for -step
      int64_t n = cur->shape.d[d], fst[MAX_DIMS], fsp[MAX_DIMS], fstep[MAX_DIMS];
      for (int k = 0; k < cur->shape.ndim; k++) fst[k] = 0, fsp[k] = cur->shape.d[k], fstep[k] = 1;
      fst[d] = n - 1;
      fsp[d] = -1;
      fstep[d] = -1;
      cur = g_slice(g, cur, fst, fsp, fstep);   // n > 0: g_slice keeps empty slices at step 1
      start += (n - 1) * step;
      step = -step;
    }
    int64_t target = x->shape.d[d] - start;
    if (step > 1 && cur->shape.d[d] > 0) {
      // [.., c, ..] -> [.., c, 1, ..] -> pad to [.., c, step, ..] -> [.., c * step, ..]
      Shape s = cur->shape, merged = cur->shape;
      for (int k = s.ndim; k > d + 1; k--) s.d[k] = s.d[k - 1];
      s.d[d + 1] = 1;
      s.ndim++;
      int64_t lo[MAX_DIMS] = {0}, hi[MAX_DIMS] = {0};
      hi[d + 1] = step - 1;
      Node *spread = g_pad(g, g_reshape(g, cur, s), lo, hi, 0.0);
      merged.d[d] = cur->shape.d[d] * step;
      cur = g_reshape(g, spread, merged);
    }
    int64_t lo[MAX_DIMS] = {0}, hi[MAX_DIMS] = {0};
    if (cur->shape.d[d] > target) {   // the tail of the last step runs past x
      int64_t st[MAX_DIMS] = {0}, sp[MAX_DIMS], one[MAX_DIMS];
      for (int k = 0; k < cur->shape.ndim; k++) sp[k] = cur->shape.d[k], one[k] = 1;
      sp[d] = target;
      cur = g_slice(g, cur, st, sp, one);
    }
    lo[d] = start;
    hi[d] = target - cur->shape.d[d];
    if (lo[d] || hi[d]) cur = g_pad(g, cur, lo, hi, 0.0);
  }
  return cur;
}

// Columns [from, to) of x's last dimension.
static Node *columns(Graph *g, Node *x, int64_t from, int64_t to) {
  int64_t start[MAX_DIMS] = {0}, stop[MAX_DIMS], step[MAX_DIMS];
  int nd = x->shape.ndim;
  for (int d = 0; d < nd; d++) stop[d] = x->shape.d[d], step[d] = 1;
  start[nd - 1] = from;
  stop[nd - 1] = to;
  return g_slice(g, x, start, stop, step);
}

// y = attention(q, k, v, mask) as [out, lse]: the language reads out alone,
// so lse carries no gradient. The kernels recompute the weights from lse
// (and dropout's factors from their stream); delta_i = dout_i . out_i is
// sum_j p_ij dp_ij, as dropout does not change.
static void attention_backward(AD *ad, Node *y, Node *dy) {
  Graph *g = ad->g;
  Node *q = y->src[0], *k = y->src[1], *v = y->src[2];
  int64_t Dv = v->shape.d[3], D = q->shape.d[3];
  Node *dout = columns(g, dy, 0, Dv);
  Node *delta = g_reduce(g, OP_SUM, mul(g, dout, g_attention_out(g, y)), 1u << 3, true);
  if (ad->needs[q->id]) accumulate(ad, q, g_attention_grad(g, OP_ATTENTION_DQ, y, dout, delta));
  if (!ad->needs[k->id] && !ad->needs[v->id]) return;
  Node *dkv = g_attention_grad(g, OP_ATTENTION_DKV, y, dout, delta);
  if (ad->needs[k->id]) accumulate(ad, k, columns(g, dkv, 0, D));
  if (ad->needs[v->id]) accumulate(ad, v, columns(g, dkv, D, D + Dv));
}

// Applies the rule of node y to its gradient dy.
static void backward(AD *ad, Node *y, Node *dy) {
  Graph *g = ad->g;
  Node *a = y->src[0], *b = y->src[1];
  DType t = y->dtype;
  switch (y->op) {
  case OP_INPUT: case OP_PARAM: case OP_STATE: case OP_CONST: case OP_IOTA: case OP_RANDOM:
  case OP_FLOOR: case OP_IDIV: case OP_BITNOT: case OP_BITCAST: case OP_BITAND: case OP_BITOR: case OP_BITXOR:
  case OP_SHL: case OP_SHR: case OP_LT: case OP_LE: case OP_GT: case OP_GE: case OP_EQ: case OP_NE:
  case OP_ARGMAX:
    return;   // leaves, ops whose gradient is zero almost everywhere, and ops on integers' bits
  case OP_NEG:   // y = -x: dx = -dy
    accumulate(ad, a, g_unary(g, OP_NEG, dy));
    return;
  case OP_EXP:   // y = exp(x): dx = dy * y
    accumulate(ad, a, mul(g, dy, y));
    return;
  case OP_LOG:   // y = log(x): dx = dy / x
    accumulate(ad, a, g_binary(g, OP_DIV, dy, a));
    return;
  case OP_SQRT:  // y = sqrt(x): dx = dy * 0.5 / y
    accumulate(ad, a, g_binary(g, OP_DIV, mul(g, dy, scalar(g, 0.5, t)), y));
    return;
  case OP_RSQRT: // y = x^-1/2: dx = dy * -0.5 * y^3
    accumulate(ad, a, mul(g, mul(g, dy, scalar(g, -0.5, t)), mul(g, y, mul(g, y, y))));
    return;
  case OP_TANH:  // dx = dy * (1 - y^2)
    accumulate(ad, a, mul(g, dy, g_binary(g, OP_SUB, scalar(g, 1, t), mul(g, y, y))));
    return;
  case OP_SIGMOID: // dx = dy * y * (1 - y)
    accumulate(ad, a, mul(g, dy, mul(g, y, g_binary(g, OP_SUB, scalar(g, 1, t), y))));
    return;
  case OP_RELU: { // dx = y <= 0 ? 0 : dy: 0 at x == 0, dy through NaN (PyTorch's threshold_backward)
    Node *off = g_binary(g, OP_LE, y, scalar(g, 0, y->dtype));
    accumulate(ad, a, g_where(g, off, scalar(g, 0, t), dy));
    return;
  }
  case OP_ABS: { // dx = dy * sign(x)
    Node *zero = scalar(g, 0, a->dtype);
    Node *sign = g_binary(g, OP_SUB, as_float(g, g_binary(g, OP_GT, a, zero), t),
                          as_float(g, g_binary(g, OP_LT, a, zero), t));
    accumulate(ad, a, mul(g, dy, sign));
    return;
  }
  case OP_SIN:   // dx = dy * cos(x)
    accumulate(ad, a, mul(g, dy, g_unary(g, OP_COS, a)));
    return;
  case OP_COS:   // dx = -dy * sin(x)
    accumulate(ad, a, g_unary(g, OP_NEG, mul(g, dy, g_unary(g, OP_SIN, a))));
    return;
  case OP_ERF:   // dx = dy * 2/sqrt(pi) * exp(-x^2)
    accumulate(ad, a, mul(g, dy, mul(g, scalar(g, 1.1283791670955126, t),
                                     g_unary(g, OP_EXP, g_unary(g, OP_NEG, mul(g, a, a))))));
    return;
  case OP_SOFTPLUS: // y = log(1 + exp(x)): dx = dy * sigmoid(x)
    accumulate(ad, a, mul(g, dy, g_unary(g, OP_SIGMOID, a)));
    return;
  case OP_SILU: { // y = x * s, s = sigmoid(x): dx = dy * s * (1 + x * (1 - s)), PyTorch's silu_backward
    Node *s = g_unary(g, OP_SIGMOID, a);
    Node *inner = g_binary(g, OP_ADD, scalar(g, 1, t), mul(g, a, g_binary(g, OP_SUB, scalar(g, 1, t), s)));
    accumulate(ad, a, mul(g, dy, mul(g, s, inner)));
    return;
  }
  case OP_STOP_GRADIENT: // the value passes, the gradient does not
    return;
  case OP_CAST:  // dx = cast(dy)
    accumulate(ad, a, dy);
    return;
  case OP_ADD:
    acc_unb(ad, a, dy);
    acc_unb(ad, b, dy);
    return;
  case OP_SUB:
    acc_unb(ad, a, dy);
    if (ad->needs[b->id]) acc_unb(ad, b, g_unary(g, OP_NEG, dy));
    return;
  case OP_MUL:
    if (ad->needs[a->id]) acc_unb(ad, a, mul(g, dy, b));
    if (ad->needs[b->id]) acc_unb(ad, b, mul(g, dy, a));
    return;
  case OP_DIV:   // y = a / b: da = dy / b, db = -dy * y / b
    if (ad->needs[a->id]) acc_unb(ad, a, g_binary(g, OP_DIV, dy, b));
    if (ad->needs[b->id])
      acc_unb(ad, b, g_unary(g, OP_NEG, g_binary(g, OP_DIV, mul(g, dy, y), b)));
    return;
  case OP_POW:   // y = a^b: da = dy * b * a^(b-1), db = dy * y * log(a)
    if (ad->needs[a->id])
      acc_unb(ad, a, mul(g, dy, mul(g, b, g_binary(g, OP_POW, a, g_binary(g, OP_SUB, b, scalar(g, 1, t))))));
    if (ad->needs[b->id]) acc_unb(ad, b, mul(g, dy, mul(g, y, g_unary(g, OP_LOG, a))));
    return;
  case OP_MAX:
  case OP_MIN: { // the larger (smaller) operand takes dy; a tie splits it evenly
    Node *win = as_float(g, g_binary(g, y->op == OP_MAX ? OP_GT : OP_LT, a, b), t);
    Node *tie = mul(g, as_float(g, g_binary(g, OP_EQ, a, b), t), scalar(g, 0.5, t));
    Node *share_a = g_binary(g, OP_ADD, win, tie);
    if (ad->needs[a->id]) acc_unb(ad, a, mul(g, dy, share_a));
    if (ad->needs[b->id])
      acc_unb(ad, b, mul(g, dy, g_binary(g, OP_SUB, scalar(g, 1, t), share_a)));
    return;
  }
  case OP_WHERE: { // y = where(c, p, q): dp = where(c, dy, 0), dq = where(c, 0, dy)
    Node *zero = scalar(g, 0, t);
    if (ad->needs[b->id]) acc_unb(ad, b, g_where(g, a, dy, zero));
    if (ad->needs[y->src[2]->id]) acc_unb(ad, y->src[2], g_where(g, a, zero, dy));
    return;
  }
  case OP_SUM:   // dx = dy broadcast back over the reduced dims
    accumulate(ad, a, g_broadcast(g, dy, a->shape));
    return;
  case OP_RMAX: { // dy shared evenly among the positions that hold the maximum
    Node *mask = as_float(g, g_binary(g, OP_EQ, a, y), t);
    Node *count = g_reduce(g, OP_SUM, mask, y->p.axes, true);
    accumulate(ad, a, mul(g, mask, g_binary(g, OP_DIV, dy, count)));
    return;
  }
  case OP_MATMUL: { // Y = A'B' with A' = ta ? A^T : A, B' likewise
    bool ta = y->p.matmul.ta, tb = y->p.matmul.tb;
    if (ad->needs[a->id]) {
      Node *da = ta ? g_matmul(g, b, dy, tb, true) : g_matmul(g, dy, b, false, !tb);
      acc_unb(ad, a, da);
    }
    if (ad->needs[b->id]) {
      Node *db = tb ? g_matmul(g, dy, a, true, ta) : g_matmul(g, a, dy, !ta, false);
      acc_unb(ad, b, db);
    }
    return;
  }
  case OP_CONV2D:
    if (ad->needs[a->id]) accumulate(ad, a, g_conv2d_grad(g, OP_CONV2D_DX, dy, b, y));
    if (ad->needs[b->id]) accumulate(ad, b, g_conv2d_grad(g, OP_CONV2D_DW, a, dy, y));
    return;
  case OP_POOL_MAX:
    accumulate(ad, a, g_pool_grad(g, OP_POOL_MAX_DX, a, dy, y));
    return;
  case OP_POOL_AVG:
    accumulate(ad, a, g_pool_grad(g, OP_POOL_AVG_DX, NULL, dy, y));
    return;
  case OP_CONV2D_DX:   // a transposed convolution: y = dx(a, w) of the convolution that maps y's shape to a's
    if (ad->needs[a->id]) accumulate(ad, a, g_conv_like(g, OP_CONV2D, dy, b, a->shape, y));
    if (ad->needs[b->id]) accumulate(ad, b, g_conv_like(g, OP_CONV2D_DW, dy, a, b->shape, y));
    return;
  case OP_ATTENTION:
    attention_backward(ad, y, dy);
    return;
  case OP_CONV2D_DW: case OP_POOL_MAX_DX: case OP_POOL_AVG_DX: case OP_IM2COL: case OP_COL2IM:
  case OP_ATTENTION_DQ: case OP_ATTENTION_DKV:
    diag_error(g->diag, y->loc, "second derivatives are not supported (%s has no gradient rule)",
               op_name(y->op));
    if (g->on_error) g->on_error(g->on_error_ctx);
    return;
  case OP_RESHAPE:
    accumulate(ad, a, g_reshape(g, dy, a->shape));
    return;
  case OP_PERMUTE: { // dx = permute(dy, inverse)
    int inv[MAX_DIMS];
    for (int i = 0; i < y->shape.ndim; i++) inv[y->p.perm[i]] = i;
    accumulate(ad, a, g_permute(g, dy, inv));
    return;
  }
  case OP_BROADCAST:
    accumulate(ad, a, g_unbroadcast(g, dy, a->shape));
    return;
  case OP_SLICE:
    accumulate(ad, a, unslice(g, y, dy));
    return;
  case OP_PAD: { // dx = the middle of dy
    int64_t start[MAX_DIMS], stop[MAX_DIMS], step[MAX_DIMS];
    for (int d = 0; d < a->shape.ndim; d++) {
      start[d] = y->p.pad.lo[d];
      stop[d] = start[d] + a->shape.d[d];
      step[d] = 1;
    }
    accumulate(ad, a, g_slice(g, dy, start, stop, step));
    return;
  }
  case OP_CONCAT: { // each operand takes its part of dy
    int ax = y->p.axis;
    int64_t start[MAX_DIMS] = {0}, stop[MAX_DIMS], step[MAX_DIMS];
    for (int d = 0; d < y->shape.ndim; d++) stop[d] = y->shape.d[d], step[d] = 1;
    stop[ax] = a->shape.d[ax];
    if (ad->needs[a->id]) accumulate(ad, a, g_slice(g, dy, start, stop, step));
    start[ax] = a->shape.d[ax];
    stop[ax] = y->shape.d[ax];
    if (ad->needs[b->id]) accumulate(ad, b, g_slice(g, dy, start, stop, step));
    return;
  }
  case OP_GATHER:   // y = table[ids]: dtable = scatter_add(ids, dy)
    accumulate(ad, a, g_scatter_add(g, b, dy, a->shape.d[0]));
    return;
  case OP_SCATTER_ADD: // y = scatter_add(ids, v): dv = dy[ids]
    accumulate(ad, b, g_gather(g, dy, a));
    return;
  case OP_LABEL:       // integer labels: no gradient
    return;
  case OP_COUNT:
    break;
  }
  UNREACHABLE();
}

Node **autodiff(Graph *g, Node *const *wrt, int nwrt) {
  ASSERT(g->loss);
  AD ad = {.g = g, .n0 = g->n};
  ad.grad = xcalloc((size_t)g->n, sizeof *ad.grad);
  ad.needs = xcalloc((size_t)g->n, sizeof *ad.needs);
  for (int i = 0; i < g->n; i++) {
    Node *n = g->nodes[i];
    if (n->op == OP_PARAM && !n->frozen) ad.needs[i] = true;
    for (int k = 0; k < n->nsrc; k++) ad.needs[i] |= ad.needs[n->src[k]->id];
    if (n->op == OP_STOP_GRADIENT) ad.needs[i] = false;   // nothing behind it gets a gradient through it
  }
  for (int k = 0; k < nwrt; k++) {   // inputs asked for: mark them and what they reach
    ad.needs[wrt[k]->id] = true;
    for (int i = wrt[k]->id + 1; i < ad.n0; i++) {
      for (int s = 0; s < g->nodes[i]->nsrc; s++) ad.needs[i] |= ad.needs[g->nodes[i]->src[s]->id];
      if (g->nodes[i]->op == OP_STOP_GRADIENT) ad.needs[i] = false;
    }
  }
  const char *scope = g->scope;
  Span loc = g->loc;
  ad.grad[g->loss->id] = g->loss_grad ? g_broadcast(g, g_cast(g, g->loss_grad, g->loss->dtype), g->loss->shape)
                                      : g_const(g, 1.0, g->loss->dtype, g->loss->shape);
  for (int i = g->loss->id; i >= 0; i--) {
    Node *y = g->nodes[i];
    Node *dy = ad.grad[i];
    if (!dy || !ad.needs[i]) continue;
    g->scope = y->scope;   // backward nodes belong to their forward node's layer
    g->loc = y->loc;
    backward(&ad, y, dy);
  }
  g->scope = scope;
  g->loc = loc;
  // keep what was asked for: parameters and the inputs in wrt
  for (int i = 0; i < ad.n0; i++) {
    bool keep = g->nodes[i]->op == OP_PARAM && !g->nodes[i]->frozen;
    for (int k = 0; k < nwrt && !keep; k++) keep = wrt[k]->id == i;
    if (!keep) ad.grad[i] = NULL;
  }
  free(ad.needs);
  return ad.grad;
}
