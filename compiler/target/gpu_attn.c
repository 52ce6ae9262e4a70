// target/gpu_attn.c: the attention kernels of the GPU targets (one thread
// per output row, as codegen_attn.c's for the host): the same algorithm,
// with the row's operands and sums in arrays indexed by loops, which the
// back ends keep in the thread's local memory instead of registers, so a
// row of width 64 (four such rows in the backward) never spills.
#include "codegen.h"

#include <math.h>

#define ATTN_TILE 16   // as codegen_attn.c

static V entry_array(Cg *c, int64_t n, const char *name) { return attn_array(c, c->f32, n, name); }

static V at(Cg *c, V arr, V i) { return LLVMBuildGEP2(c->b, c->f32, arr, &i, 1, ""); }
static V get(Cg *c, V arr, V i) { return LLVMBuildLoad2(c->b, c->f32, at(c, arr, i), ""); }
static void set(Cg *c, V arr, V i, V v) { LLVMBuildStore(c->b, v, at(c, arr, i)); }

// Sums may be reassociated (so the loops over a row vectorize) and contracted into FMAs.
static V fadd(Cg *c, V a, V b) {
  V r = LLVMBuildFAdd(c->b, a, b, "");
  LLVMSetFastMathFlags(r, LLVMFastMathAllowReassoc | LLVMFastMathAllowContract);
  return r;
}
static V fmul(Cg *c, V a, V b) {
  V r = LLVMBuildFMul(c->b, a, b, "");
  LLVMSetFastMathFlags(r, LLVMFastMathAllowReassoc | LLVMFastMathAllowContract);
  return r;
}

// Element (b, h, t, col) of a [B, N, T, W] operand.
static V elem(Cg *c, const Node *x, const V *bh, V t, V col) {
  V idx[MAX_DIMS] = {bh[0], bh[1], t, col};
  return emit_value(c, x, idx);
}

// arr[0, n) = row t of x.
static void load_row(Cg *c, V arr, const Node *x, V *bh, V t, int64_t n) {
  Loop L;
  loop_open(c, &L, ci(c, 0), ci(c, n), 0, NULL);
  set(c, arr, L.i, elem(c, x, bh, t, L.i));
  loop_close(c, &L, NULL);
}

static void zero_row(Cg *c, V arr, int64_t n) {
  Loop L;
  loop_open(c, &L, ci(c, 0), ci(c, n), 0, NULL);
  set(c, arr, L.i, cf(c, 0));
  loop_close(c, &L, NULL);
}

// arr . row t of x, over n columns.
static V dot(Cg *c, V arr, const Node *x, V *bh, V t, int64_t n) {
  V zero = cf(c, 0);
  Loop L;
  loop_open(c, &L, ci(c, 0), ci(c, n), 1, &zero);
  V next = fadd(c, L.acc[0], fmul(c, get(c, arr, L.i), elem(c, x, bh, t, L.i)));
  loop_close(c, &L, &next);
  return L.acc[0];
}

// arr += w * row t of x, over n columns.
static void axpy(Cg *c, V arr, V w, const Node *x, V *bh, V t, int64_t n) {
  Loop L;
  loop_open(c, &L, ci(c, 0), ci(c, n), 0, NULL);
  set(c, arr, L.i, fadd(c, get(c, arr, L.i), fmul(c, w, elem(c, x, bh, t, L.i))));
  loop_close(c, &L, NULL);
}

static V min_i64(Cg *c, V a, V b) { return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, a, b, ""), a, b, ""); }

static void attn_forward(Cg *c, const Node *n, V row) {
  LLVMBuilderRef B = c->b;
  AttnRow a;
  attn_row_open(c, n, row, &a);
  const Node *q = a.q, *k = a.k, *v = a.v;
  int64_t Tk = a.Tk, D = a.D, Dv = a.Dv;
  V qrow = entry_array(c, D, "q"), acc = entry_array(c, Dv, "acc"), sc = entry_array(c, ATTN_TILE, "s");
  V bhn = a.bhn, i = a.r, *bh = a.bh, hi = a.to;
  V ninf = cf(c, -INFINITY), scale = a.scale;
  load_row(c, qrow, q, bh, i, D);
  zero_row(c, acc, Dv);
  V init[2] = {ninf, cf(c, 0)};
  Loop T;   // key tiles; carried: the running maximum m and sum l
  loop_open(c, &T, ci(c, 0), hi, 2, init);
  T.step = ci(c, ATTN_TILE);
  V m = T.acc[0], l = T.acc[1];
  V len = min_i64(c, ci(c, ATTN_TILE), LLVMBuildSub(B, hi, T.i, ""));
  Loop S;   // the tile's logits and their maximum (NaN kept)
  loop_open(c, &S, ci(c, 0), len, 1, &ninf);
  V j = LLVMBuildAdd(B, T.i, S.i, "");
  V s = LLVMBuildFMul(B, scale, dot(c, qrow, k, bh, j, D), "");
  s = LLVMBuildSelect(B, attn_allowed(c, n, bh, i, j), s, ninf, "");
  set(c, sc, S.i, s);
  V mt = fmax_nan(c, s, S.acc[0], true);
  loop_close(c, &S, &mt);
  V mn = fmax_nan(c, m, S.acc[0], true);
  V live = LLVMBuildFCmp(B, LLVMRealOGT, mn, ninf, "");
  V corr = LLVMBuildSelect(B, live, math_exp(c, LLVMBuildFSub(B, m, mn, "")), cf(c, 1), "");
  Loop R;   // rescale what the earlier tiles summed
  loop_open(c, &R, ci(c, 0), ci(c, Dv), 0, NULL);
  set(c, acc, R.i, LLVMBuildFMul(B, get(c, acc, R.i), corr, ""));
  loop_close(c, &R, NULL);
  V zero = cf(c, 0);
  Loop P;   // the tile's weights and their rows of v
  loop_open(c, &P, ci(c, 0), len, 1, &zero);
  V st = get(c, sc, P.i), jp = LLVMBuildAdd(B, T.i, P.i, "");
  V p = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealUGT, st, ninf, ""), math_exp(c, LLVMBuildFSub(B, st, mn, "")), zero, "");
  axpy(c, acc, LLVMBuildFMul(B, p, attn_keep(c, n, bhn, i, jp), ""), v, bh, jp, Dv);
  V psum = LLVMBuildFAdd(B, P.acc[0], p, "");
  loop_close(c, &P, &psum);
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
  axpy(c, acc, attn_keep(c, n, bhn, i, M.i), v, bh, M.i, Dv);
  loop_close(c, &M, NULL);
  LLVMBasicBlockRef mean_end = LLVMGetInsertBlock(B);
  LLVMBuildBr(B, join);
  LLVMPositionBuilderAtEnd(B, join);
  V inv = LLVMBuildPhi(B, c->f32, "inv"), lse = LLVMBuildPhi(B, c->f32, "lse");
  LLVMAddIncoming(inv, (V[]){inv_l, cf(c, 1.0 / (double)Tk)}, (LLVMBasicBlockRef[]){from, mean_end}, 2);
  LLVMAddIncoming(lse, (V[]){lse_l, cf(c, INFINITY)}, (LLVMBasicBlockRef[]){from, mean_end}, 2);
  V base = mulc(c, row, Dv + 1);
  Loop O;
  loop_open(c, &O, ci(c, 0), ci(c, Dv), 0, NULL);
  store_at(c, n, LLVMBuildAdd(B, base, O.i, ""), LLVMBuildFMul(B, get(c, acc, O.i), inv, ""));
  loop_close(c, &O, NULL);
  store_at(c, n, addc(c, base, Dv), lse);
}

// dq of query row (ATTENTION_DQ), or [dk, dv] of key row (ATTENTION_DKV).
static void attn_backward(Cg *c, const Node *n, V row) {
  LLVMBuilderRef B = c->b;
  AttnRow a;
  attn_row_open(c, n, row, &a);
  bool dq = a.dq;
  int64_t D = a.D, Dv = a.Dv;
  V *bh = a.bh, scale = a.scale;
  // the row's own operands, held: q and dout of the query, or k and v of the key
  V own_a = entry_array(c, D, "a"), own_b = entry_array(c, Dv, "b");
  V g0 = entry_array(c, D, "g"), g1 = dq ? NULL : entry_array(c, Dv, "gv");
  load_row(c, own_a, dq ? a.q : a.k, bh, a.r, D);
  load_row(c, own_b, dq ? a.dout : a.v, bh, a.r, Dv);
  zero_row(c, g0, D);
  if (g1) zero_row(c, g1, Dv);
  Loop L;
  loop_open(c, &L, a.from, a.to, 0, NULL);
  V other = L.i;   // the key (dq) or the query (dkv)
  AttnPair pr = attn_pair(c, &a, other);
  V p = attn_pair_weight(c, &a, &pr, LLVMBuildFMul(B, scale, dot(c, own_a, dq ? a.k : a.q, bh, other, D), ""));
  V z = attn_keep(c, n, a.bhn, pr.qi, pr.kj);
  V ds = attn_pair_ds(c, &pr, p, LLVMBuildFMul(B, z, dot(c, own_b, dq ? a.v : a.dout, bh, other, Dv), ""));
  axpy(c, g0, ds, dq ? a.k : a.q, bh, other, D);
  if (g1) axpy(c, g1, LLVMBuildFMul(B, p, z, ""), a.dout, bh, other, Dv);
  loop_close(c, &L, NULL);
  int64_t width = n->shape.d[3];
  V base = mulc(c, row, width);
  Loop O;
  loop_open(c, &O, ci(c, 0), ci(c, D), 0, NULL);
  store_at(c, n, LLVMBuildAdd(B, base, O.i, ""), LLVMBuildFMul(B, get(c, g0, O.i), scale, ""));
  loop_close(c, &O, NULL);
  if (!g1) return;
  Loop W;
  loop_open(c, &W, ci(c, 0), ci(c, Dv), 0, NULL);
  store_at(c, n, LLVMBuildAdd(B, addc(c, base, D), W.i, ""), get(c, g1, W.i));
  loop_close(c, &W, NULL);
}

void gpu_attn_row(Cg *c, const Kernel *k, V row) {
  const Node *n = k->root;
  c->nsubst = 0;
  if (n->op == OP_ATTENTION) attn_forward(c, n, row);
  else attn_backward(c, n, row);
}
