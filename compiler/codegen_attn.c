// codegen_attn.c: fused attention's kernels for the host, one output row per
// loop iteration (the GPU targets' take the same steps: target/gpu_attn.c).
//
// ATTENTION (a query row i): FlashAttention-2's forward over tiles of
// ATTN_TILE keys: the tile's logits are kept, its maximum joins the running
// maximum m, the accumulated output and the running sum l are rescaled by
// exp(m_old - m) once per tile, then the tile's weights exp(s - m) add their
// rows of v. Nothing of size Tq x Tk is stored; the row's log-sum-exp m +
// log(l) is its last column. A masked key's logit is -inf and weighs 0; a
// row with no allowed key is the mean of v, log-sum-exp +inf (interp.c).
// Dropout multiplies each weight by its factor from the Philox stream
// (keep), recomputed the same way by the backward kernels.
// ATTENTION_DQ (query row i) and ATTENTION_DKV (key row j) recompute each
// weight p = exp(s - lse) from the saved log-sum-exp, walking keys (or
// queries) one at a time, and sum their gradient in registers: each output
// row has one writer, so the result does not depend on threads.
#include "codegen.h"

#include <math.h>
#include <stdlib.h>

#define ATTN_TILE 16
// Rows are held and read as vectors of ATTN_VW floats (an AVX2 register on
// the host; GPU back ends split them), the last one zero-padded.
#define ATTN_VW 8

V attn_array(Cg *c, LLVMTypeRef t, int64_t n, const char *name) {
  LLVMBuilderRef eb = LLVMCreateBuilderInContext(c->cx);
  LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(c->fn);
  V first = LLVMGetFirstInstruction(entry);
  if (first) LLVMPositionBuilderBefore(eb, first);
  else LLVMPositionBuilderAtEnd(eb, entry);
  V a = LLVMBuildAlloca(eb, LLVMArrayType2(t, (uint64_t)(n ? n : 1)), name);
  LLVMSetAlignment(a, 32);
  LLVMDisposeBuilder(eb);
  return a;
}

static V at(Cg *c, LLVMTypeRef t, V arr, V i) { return LLVMBuildGEP2(c->b, t, arr, &i, 1, ""); }
static V get(Cg *c, V arr, V i) { return LLVMBuildLoad2(c->b, c->f32, at(c, c->f32, arr, i), ""); }
static void set(Cg *c, V arr, V i, V v) { LLVMBuildStore(c->b, v, at(c, c->f32, arr, i)); }

// Sums may be reassociated and contracted into FMAs.
static V fast(V r) {
  LLVMSetFastMathFlags(r, LLVMFastMathAllowReassoc | LLVMFastMathAllowContract);
  return r;
}
static V fadd(Cg *c, V a, V b) { return fast(LLVMBuildFAdd(c->b, a, b, "")); }
static V fmul(Cg *c, V a, V b) { return fast(LLVMBuildFMul(c->b, a, b, "")); }

static int64_t chunks(int64_t n) { return (n + ATTN_VW - 1) / ATTN_VW; }
static LLVMTypeRef vec_type(Cg *c) { return LLVMVectorType(c->f32, ATTN_VW); }
static V splat(Cg *c, V x) {
  V v = LLVMGetUndef(vec_type(c));
  for (int l = 0; l < ATTN_VW; l++) v = LLVMBuildInsertElement(c->b, v, x, LLVMConstInt(c->i32, (unsigned)l, false), "");
  return v;
}

// Element (b, h, t, col) of a [B, N, T, W] operand.
static V elem(Cg *c, const Node *x, const V *bh, V t, V col) {
  V idx[MAX_DIMS] = {bh[0], bh[1], t, col};
  return emit_value(c, x, idx);
}

// Row t of x [B, N, T, W] as chunks(W) vectors into out: vector loads from
// its buffer when x is a stored f32 tensor, else element by element through
// the expression layer; lanes past W are zero.
static void load_row(Cg *c, const Node *x, V *bh, V t, V *out) {
  LLVMBuilderRef B = c->b;
  int64_t W = x->shape.d[3];
  bool direct = x->dtype == DT_F32 && c->plan->slot[x->id] >= 0;   // never this kernel's own output
  V base = NULL, buf = NULL;
  if (direct) {
    V r = LLVMBuildAdd(B, mulc(c, LLVMBuildAdd(B, mulc(c, bh[0], x->shape.d[1]), bh[1], ""), x->shape.d[2]), t, "");
    base = mulc(c, r, W);
    buf = buffer_ptr(c, x);
  }
  for (int64_t k = 0; k < chunks(W); k++) {
    int64_t lanes = W - k * ATTN_VW < ATTN_VW ? W - k * ATTN_VW : ATTN_VW;
    if (direct && lanes == ATTN_VW) {
      V off = addc(c, base, k * ATTN_VW);
      V ld = LLVMBuildLoad2(B, vec_type(c), LLVMBuildGEP2(B, c->f32, buf, &off, 1, ""), "");
      LLVMSetAlignment(ld, 4);
      out[k] = ld;
      continue;
    }
    V v = LLVMConstNull(vec_type(c));
    for (int64_t l = 0; l < lanes; l++) {
      V e = direct ? load_at(c, x, addc(c, base, k * ATTN_VW + l)) : elem(c, x, bh, t, ci(c, k * ATTN_VW + l));
      v = LLVMBuildInsertElement(B, v, e, LLVMConstInt(c->i32, (unsigned)l, false), "");
    }
    out[k] = v;
  }
}

// a . b over n chunks.
static V dot(Cg *c, const V *a, const V *b, int64_t n) {
  V s = LLVMConstNull(vec_type(c));
  for (int64_t k = 0; k < n; k++) s = fadd(c, s, fmul(c, a[k], b[k]));
  V zero = cf(c, 0), args[2] = {zero, s};
  return fast(call_intrinsic(c, "llvm.vector.reduce.fadd", vec_type(c), args, 2));
}

// A row accumulator of n chunks, held in an array of vectors (registers, once promoted).
typedef struct {
  V arr;
  int64_t n;
} Acc;

static Acc acc_new(Cg *c, int64_t width, const char *name) {
  Acc a = {attn_array(c, vec_type(c), chunks(width), name), chunks(width)};
  for (int64_t k = 0; k < a.n; k++) LLVMBuildStore(c->b, LLVMConstNull(vec_type(c)), at(c, vec_type(c), a.arr, ci(c, k)));
  return a;
}
static V acc_get(Cg *c, const Acc *a, int64_t k) { return LLVMBuildLoad2(c->b, vec_type(c), at(c, vec_type(c), a->arr, ci(c, k)), ""); }
static void acc_set(Cg *c, const Acc *a, int64_t k, V v) { LLVMBuildStore(c->b, v, at(c, vec_type(c), a->arr, ci(c, k))); }

// acc = acc * scale + w * row.
static void axpy(Cg *c, const Acc *a, V scale, V w, const V *row) {
  V ws = splat(c, w), ss = scale ? splat(c, scale) : NULL;
  for (int64_t k = 0; k < a->n; k++) {
    V old = acc_get(c, a, k);
    if (ss) old = fmul(c, old, ss);
    acc_set(c, a, k, fadd(c, old, fmul(c, ws, row[k])));
  }
}

// Stores width elements of acc times mul at [base, base + width) of n's buffer.
static void store_acc(Cg *c, const Node *n, const Acc *a, V mul, V base, int64_t width) {
  for (int64_t k = 0; k < a->n; k++) {
    V v = fmul(c, acc_get(c, a, k), splat(c, mul));
    for (int64_t l = 0; l < ATTN_VW && k * ATTN_VW + l < width; l++)
      store_at(c, n, addc(c, base, k * ATTN_VW + l), LLVMBuildExtractElement(c->b, v, LLVMConstInt(c->i32, (unsigned)l, false), ""));
  }
}

// Whether query i may attend key j: the mask, and j <= i when causal.
V attn_allowed(Cg *c, const Node *n, const V *bh, V i, V j) {
  V ok = LLVMConstInt(c->i1, 1, false);
  if (!attention_unmasked(n)) ok = elem(c, n->src[3], bh, i, j);
  if (n->p.attn.causal) ok = LLVMBuildAnd(c->b, ok, LLVMBuildICmp(c->b, LLVMIntSLE, j, i, ""), "");
  return ok;
}

// Dropout's factor of weight (i, j) of heads bn: 1 / (1 - p) where the
// stream's uniform at its index in [B, N, Tq, Tk] is at least p, else 0.
V attn_keep(Cg *c, const Node *n, V bn, V i, V j) {
  double p = n->p.attn.dropout;
  if (p == 0) return cf(c, 1);
  int64_t Tq = n->src[0]->shape.d[2], Tk = n->src[1]->shape.d[2];
  V lin = LLVMBuildAdd(c->b, mulc(c, LLVMBuildAdd(c->b, mulc(c, bn, Tq), i, ""), Tk), j, "");
  V u = philox_at(c, n->p.attn.key, lin);
  return LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGE, u, cf(c, p), ""), cf(c, 1 / (1 - p)), cf(c, 0), "");
}

static V min_i64(Cg *c, V a, V b) { return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, a, b, ""), a, b, ""); }

void attn_row_open(Cg *c, const Node *n, V row, AttnRow *a) {
  LLVMBuilderRef B = c->b;
  *a = (AttnRow){.n = n, .q = n->src[0], .k = n->src[1], .v = n->src[2], .dq = n->op == OP_ATTENTION_DQ};
  if (n->op != OP_ATTENTION) a->dout = n->src[4], a->fwd = n->src[5], a->delta = n->src[6];
  a->Tq = a->q->shape.d[2], a->Tk = a->k->shape.d[2], a->D = a->q->shape.d[3], a->Dv = a->v->shape.d[3];
  int64_t T = n->op == OP_ATTENTION_DKV ? a->Tk : a->Tq, H = a->q->shape.d[1];
  a->bhn = LLVMBuildSDiv(B, row, ci(c, T), ""), a->r = LLVMBuildSRem(B, row, ci(c, T), "");
  a->bh[0] = LLVMBuildSDiv(B, a->bhn, ci(c, H), ""), a->bh[1] = LLVMBuildSRem(B, a->bhn, ci(c, H), "");
  a->scale = cf(c, n->p.attn.scale);
  // a query's keys: those up to it when causal; a key's queries: every one,
  // or those from it on when causal and no mask may leave a query no key
  // (such a query weighs every key, 1 / Tk)
  a->from = ci(c, 0);
  if (n->op != OP_ATTENTION_DKV) a->to = n->p.attn.causal ? min_i64(c, addc(c, a->r, 1), ci(c, a->Tk)) : ci(c, a->Tk);
  else {
    a->to = ci(c, a->Tq);
    if (n->p.attn.causal && attention_unmasked(n)) a->from = a->r;
  }
  if (a->dq) {
    a->lse_row = elem(c, a->fwd, a->bh, a->r, ci(c, a->Dv));
    a->dl_row = elem(c, a->delta, a->bh, a->r, ci(c, 0));
  }
}

AttnPair attn_pair(Cg *c, const AttnRow *a, V other) {
  AttnPair p = {.qi = a->dq ? a->r : other, .kj = a->dq ? other : a->r};
  p.lse = a->dq ? a->lse_row : elem(c, a->fwd, a->bh, p.qi, ci(c, a->Dv));
  p.dl = a->dq ? a->dl_row : elem(c, a->delta, a->bh, p.qi, ci(c, 0));
  p.none = LLVMBuildFCmp(c->b, LLVMRealOEQ, p.lse, cf(c, INFINITY), "");
  return p;
}

V attn_pair_weight(Cg *c, const AttnRow *a, const AttnPair *pr, V s) {
  LLVMBuilderRef B = c->b;
  V zero = cf(c, 0);
  V p = LLVMBuildSelect(B, attn_allowed(c, a->n, a->bh, pr->qi, pr->kj), math_exp(c, LLVMBuildFSub(B, s, pr->lse, "")),
                        zero, "");
  return LLVMBuildSelect(B, pr->none, a->dq ? zero : cf(c, 1.0 / (double)a->Tk), p, "");
}

V attn_pair_ds(Cg *c, const AttnPair *pr, V p, V dp) {
  LLVMBuilderRef B = c->b;
  return LLVMBuildSelect(B, pr->none, cf(c, 0), LLVMBuildFMul(B, p, LLVMBuildFSub(B, dp, pr->dl, ""), ""), "");
}

static void attn_forward(Cg *c, const Node *n, V row) {
  LLVMBuilderRef B = c->b;
  AttnRow a;
  attn_row_open(c, n, row, &a);
  const Node *q = a.q, *k = a.k, *v = a.v;
  int64_t Tk = a.Tk, D = a.D, Dv = a.Dv;
  V sc = attn_array(c, c->f32, ATTN_TILE, "s");
  V bhn = a.bhn, i = a.r, *bh = a.bh, hi = a.to;
  V ninf = cf(c, -INFINITY), scale = a.scale, zero = cf(c, 0);
  V *qrow = xcalloc((size_t)chunks(D) + 1, sizeof(V)), *krow = xcalloc((size_t)chunks(D) + 1, sizeof(V));
  V *vrow = xcalloc((size_t)chunks(Dv) + 1, sizeof(V));
  load_row(c, q, bh, i, qrow);
  Acc acc = acc_new(c, Dv, "acc");
  V init[2] = {ninf, zero};
  Loop T;   // key tiles; carried: the running maximum m and sum l
  loop_open(c, &T, ci(c, 0), hi, 2, init);
  T.step = ci(c, ATTN_TILE);
  V m = T.acc[0], l = T.acc[1];
  V len = min_i64(c, ci(c, ATTN_TILE), LLVMBuildSub(B, hi, T.i, ""));
  Loop S;   // the tile's logits and their maximum (NaN kept)
  loop_open(c, &S, ci(c, 0), len, 1, &ninf);
  V j = LLVMBuildAdd(B, T.i, S.i, "");
  load_row(c, k, bh, j, krow);
  V s = LLVMBuildFMul(B, scale, dot(c, qrow, krow, chunks(D)), "");
  s = LLVMBuildSelect(B, attn_allowed(c, n, bh, i, j), s, ninf, "");
  set(c, sc, S.i, s);
  V mt = fmax_nan(c, s, S.acc[0], true);
  loop_close(c, &S, &mt);
  V mn = fmax_nan(c, m, S.acc[0], true);
  V live = LLVMBuildFCmp(B, LLVMRealOGT, mn, ninf, "");
  V corr = LLVMBuildSelect(B, live, math_exp(c, LLVMBuildFSub(B, m, mn, "")), cf(c, 1), "");
  Loop P;   // the tile's weights and their rows of v, what earlier tiles summed rescaled first
  V first = LLVMConstInt(c->i1, 1, false);
  V pinit[2] = {zero, first};
  loop_open(c, &P, ci(c, 0), len, 2, pinit);
  V st = get(c, sc, P.i), jp = LLVMBuildAdd(B, T.i, P.i, "");
  V p = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealUGT, st, ninf, ""), math_exp(c, LLVMBuildFSub(B, st, mn, "")), zero, "");
  load_row(c, v, bh, jp, vrow);
  axpy(c, &acc, LLVMBuildSelect(B, P.acc[1], corr, cf(c, 1), ""), LLVMBuildFMul(B, p, attn_keep(c, n, bhn, i, jp), ""), vrow);
  V pnext[2] = {LLVMBuildFAdd(B, P.acc[0], p, ""), LLVMConstInt(c->i1, 0, false)};
  loop_close(c, &P, pnext);
  V next[2] = {mn, LLVMBuildFAdd(B, LLVMBuildFMul(B, l, corr, ""), P.acc[0], "")};
  loop_close(c, &T, next);
  m = T.acc[0];
  l = T.acc[1];
  // no allowed key: the mean of every row of v
  V inv_l = LLVMBuildFDiv(B, cf(c, 1), l, ""), lse_l = LLVMBuildFAdd(B, m, math_log(c, l), "");
  V none = LLVMBuildFCmp(B, LLVMRealOEQ, l, zero, "");
  LLVMBasicBlockRef mean = block(c, "nokey"), join = block(c, "rowout"), from = LLVMGetInsertBlock(B);
  LLVMBuildCondBr(B, none, mean, join);
  LLVMPositionBuilderAtEnd(B, mean);
  Loop M;
  loop_open(c, &M, ci(c, 0), ci(c, Tk), 0, NULL);
  load_row(c, v, bh, M.i, vrow);
  axpy(c, &acc, NULL, attn_keep(c, n, bhn, i, M.i), vrow);
  loop_close(c, &M, NULL);
  LLVMBasicBlockRef mean_end = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, join);
  LLVMPositionBuilderAtEnd(B, join);
  V inv = LLVMBuildPhi(B, c->f32, "inv"), lse = LLVMBuildPhi(B, c->f32, "lse");
  LLVMAddIncoming(inv, (V[]){inv_l, cf(c, 1.0 / (double)Tk)}, (LLVMBasicBlockRef[]){from, mean_end}, 2);
  LLVMAddIncoming(lse, (V[]){lse_l, cf(c, INFINITY)}, (LLVMBasicBlockRef[]){from, mean_end}, 2);
  V base = mulc(c, row, Dv + 1);
  store_acc(c, n, &acc, inv, base, Dv);
  store_at(c, n, addc(c, base, Dv), lse);
  free(qrow);
  free(krow);
  free(vrow);
}

// dq of query row (ATTENTION_DQ), or [dk, dv] of key row (ATTENTION_DKV).
static void attn_backward(Cg *c, const Node *n, V row) {
  LLVMBuilderRef B = c->b;
  AttnRow a;
  attn_row_open(c, n, row, &a);
  bool dq = a.dq;
  int64_t D = a.D, Dv = a.Dv;
  // the row's own operands, held: q and dout of the query, or k and v of the key;
  // the other side's rows are read in turn
  V *own_a = xcalloc((size_t)chunks(D) + 1, sizeof(V)), *own_b = xcalloc((size_t)chunks(Dv) + 1, sizeof(V));
  V *oth_a = xcalloc((size_t)chunks(D) + 1, sizeof(V)), *oth_b = xcalloc((size_t)chunks(Dv) + 1, sizeof(V));
  load_row(c, dq ? a.q : a.k, a.bh, a.r, own_a);
  load_row(c, dq ? a.dout : a.v, a.bh, a.r, own_b);
  Acc g0 = acc_new(c, D, "g"), g1 = {0};
  if (!dq) g1 = acc_new(c, Dv, "gv");
  Loop L;
  loop_open(c, &L, a.from, a.to, 0, NULL);
  AttnPair pr = attn_pair(c, &a, L.i);   // L.i: the key (dq) or the query (dkv)
  load_row(c, dq ? a.k : a.q, a.bh, L.i, oth_a);
  load_row(c, dq ? a.v : a.dout, a.bh, L.i, oth_b);
  V p = attn_pair_weight(c, &a, &pr, LLVMBuildFMul(B, a.scale, dot(c, own_a, oth_a, chunks(D)), ""));
  V z = attn_keep(c, n, a.bhn, pr.qi, pr.kj);
  V ds = attn_pair_ds(c, &pr, p, LLVMBuildFMul(B, z, dot(c, own_b, oth_b, chunks(Dv)), ""));
  axpy(c, &g0, NULL, ds, oth_a);
  if (!dq) axpy(c, &g1, NULL, LLVMBuildFMul(B, p, z, ""), oth_b);
  loop_close(c, &L, NULL);
  V base = mulc(c, row, n->shape.d[3]);
  store_acc(c, n, &g0, a.scale, base, D);
  if (!dq) store_acc(c, n, &g1, cf(c, 1), addc(c, base, D), Dv);
  free(own_a);
  free(own_b);
  free(oth_a);
  free(oth_b);
}

void attn_row(Cg *c, const Kernel *k, V row) {
  const Node *n = k->root;
  c->nsubst = 0;
  if (n->op == OP_ATTENTION) attn_forward(c, n, row);
  else attn_backward(c, n, row);
}
