// target/gpu.c: the GPU strategies, shared by every GPU target.
//
// The value of each output element comes from the shared expression layer
// (codegen_expr.c); this file decides which elements a thread computes and
// how threads cooperate. What a GPU target does its own way (thread ids,
// barriers, shuffles, kernel attributes, a matmul of its own) goes through
// the hooks of its descriptor (target/nvptx.c, target/amdgpu.c): nothing
// here names a target. Every kernel runs on a one-dimensional grid whose
// size is fixed here, at compile time, from the output's shape
// (gpu_launch_shape), so the kernels know their geometry as constants and
// every GPU target shares the launch records:
//
//   elements  one thread per output element (four consecutive f32 elements
//             per thread for pointwise kernels, which the back ends turn into
//             16-byte loads and stores), looping over the grid when the
//             output has more elements than the grid has threads;
//   rows      a reduction over its innermost axis: a group of 32 threads (a
//             warp) per row, or the whole block for long rows; each thread
//             strides over the row, then the group combines with shuffles
//             (and shared memory across the warps of a block);
//   matmul    64 x 64 output tiles per block of 256 threads (128 x 128 for
//             large products): A and B staged through shared memory 16
//             columns of K at a time, each thread accumulating a 4 x 4 (8 x 8)
//             register tile.
//
// Kernels are void NAME(bufs, count, rng, error) (runtime/ingot.h): rng
// points to the run's {seed, step} in device memory, so that a launch's
// arguments stay the same from run to run and a captured graph replays them.
#include "codegen.h"

#include <string.h>

#define GPU_BLOCK 256
#define GPU_MAX_GRID 8192
#define ROW_GROUP 32          // threads per row for short rows (one warp)
#define ROW_BLOCK_FROM 1024   // rows at least this long take a whole block
#define MM_K 16               // K columns staged per step
#define MM_PAD 4              // shared rows padded against bank conflicts
#define MM_THIN 16            // M or N below this: not tiled
#define MM_BIG 1024           // M and N at least this: 128 x 128 tiles of 8 x 8 per thread

// ---- strategies and launch shapes

typedef enum { GS_ELEMENTS, GS_ROWS, GS_MATMUL } Strategy;

// The reduced elements per output element of a reduction.
static int64_t row_length(const Node *n) {
  const Node *x = n->src[0];
  int64_t r = 1;
  for (int d = 0; d < x->shape.ndim; d++)
    if (n->p.axes & (1u << d)) r *= x->shape.d[d];
  return r;
}

static Strategy strategy_of(const Kernel *k) {
  const Node *n = k->root;
  if (k->kind == KK_MATMUL) {   // a thin product (matrix-vector) wastes most of a tile: a thread per output
    int nd = n->shape.ndim;
    return n->shape.d[nd - 2] >= MM_THIN && n->shape.d[nd - 1] >= MM_THIN ? GS_MATMUL : GS_ELEMENTS;
  }
  if (k->kind == KK_REDUCE) {
    const Node *x = n->src[0];
    // Cooperating threads read a row together only when it is contiguous;
    // otherwise one thread per output reads across rows, which coalesces.
    bool innermost = x->shape.ndim > 0 && (n->p.axes & (1u << (x->shape.ndim - 1)));
    if (innermost && row_length(n) >= ROW_GROUP) return GS_ROWS;
  }
  return GS_ELEMENTS;
}

// Elements per thread of an elementwise kernel.
static int vector_width(const Kernel *k) {
  int64_t n = shape_numel(&k->root->shape);
  bool plain = k->kind == KK_POINTWISE || k->kind == KK_COPY;
  for (int o = 0; o < k->nouts; o++) plain &= k->outs[o]->dtype == DT_F32;
  return plain && n % 4 == 0 ? 4 : 1;
}

static int row_group(const Node *n) { return row_length(n) >= ROW_BLOCK_FROM ? GPU_BLOCK : ROW_GROUP; }

// The output tile edge of a matmul: larger tiles reuse each staged value
// more, smaller ones give small products enough blocks.
static int matmul_tile(const Node *n) {
  int nd = n->shape.ndim;
  return n->shape.d[nd - 2] >= MM_BIG && n->shape.d[nd - 1] >= MM_BIG ? 128 : 64;
}

static int64_t matmul_tiles(const Node *n, int64_t *tm, int64_t *tn) {
  int nd = n->shape.ndim, tile = matmul_tile(n);
  int64_t M = n->shape.d[nd - 2], N = n->shape.d[nd - 1];
  *tm = (M + tile - 1) / tile;
  *tn = (N + tile - 1) / tile;
  return M && N ? shape_numel(&n->shape) / (M * N) * *tm * *tn : 0;
}

static uint32_t grid_for(int64_t units_per_block_work) {
  if (units_per_block_work < 1) return 1;
  return units_per_block_work > GPU_MAX_GRID ? GPU_MAX_GRID : (uint32_t)units_per_block_work;
}

void gpu_launch_shape(const Kernel *k, GpuLaunch *out) {
  const Node *n = k->root;
  int64_t count = k->kind == KK_ATTN ? k->count : shape_numel(&n->shape), tm, tn;
  out->block = GPU_BLOCK;
  out->shared = 0;
  switch (strategy_of(k)) {
  case GS_ELEMENTS: {
    int64_t units = count / vector_width(k);
    out->grid = grid_for((units + GPU_BLOCK - 1) / GPU_BLOCK);
    break;
  }
  case GS_ROWS: {
    int64_t rows_per_block = GPU_BLOCK / row_group(n);
    out->grid = grid_for((count + rows_per_block - 1) / rows_per_block);
    break;
  }
  case GS_MATMUL:
    out->grid = grid_for(matmul_tiles(n, &tm, &tn));
    break;
  }
}

// ---- thread geometry, barriers, shuffles

static V zext64(Cg *c, V v) { return LLVMBuildZExt(c->b, v, c->i64, ""); }

V gpu_thread_id(Cg *c) { return c->target->thread_id(c); }
V gpu_block_id(Cg *c) { return c->target->block_id(c); }
void gpu_barrier(Cg *c) { c->target->barrier(c); }

// The target's i32 shuffle for f32, i64 and i1 values.
static V shuffle_xor(Cg *c, V v, int m, V tid) {
  LLVMTypeRef t = LLVMTypeOf(v);
  LLVMBuilderRef B = c->b;
  if (t == c->f32) return LLVMBuildBitCast(B, c->target->shuffle_xor(c, LLVMBuildBitCast(B, v, c->i32, ""), m, tid), c->f32, "");
  if (t == c->i1) return LLVMBuildTrunc(B, c->target->shuffle_xor(c, LLVMBuildZExt(B, v, c->i32, ""), m, tid), c->i1, "");
  V lo = c->target->shuffle_xor(c, LLVMBuildTrunc(B, v, c->i32, ""), m, tid);
  V hi = c->target->shuffle_xor(c, LLVMBuildTrunc(B, LLVMBuildLShr(B, v, ci(c, 32), ""), c->i32, ""), m, tid);
  return LLVMBuildOr(B, zext64(c, lo), LLVMBuildShl(B, zext64(c, hi), ci(c, 32), ""), "");
}

// A block-shared array of n elements of type t.
V gpu_shared_array(Cg *c, const char *tag, LLVMTypeRef t, unsigned n) {
  char name[96];
  snprintf(name, sizeof name, "%s.%s", LLVMGetValueName(c->fn), tag);
  LLVMTypeRef at = LLVMArrayType2(t, n);
  ASSERT(c->target->has_shared);
  V g = LLVMAddGlobalInAddressSpace(c->mod, at, name, c->target->shared_space);
  LLVMSetInitializer(g, LLVMGetUndef(at));
  LLVMSetLinkage(g, LLVMInternalLinkage);
  LLVMSetAlignment(g, 16);
  return g;
}

static V shared_at(Cg *c, V arr, LLVMTypeRef t, V i) {
  return LLVMBuildGEP2(c->b, t, arr, &i, 1, "");
}

// ---- elementwise

static void emit_elements(Cg *c, const Kernel *k, const GpuLaunch *g) {
  const Node *n = k->root;
  int vw = vector_width(k);
  int64_t units = k->kind == KK_ATTN ? k->count : shape_numel(&n->shape) / vw;
  V start = LLVMBuildAdd(c->b, LLVMBuildMul(c->b, gpu_block_id(c), ci(c, GPU_BLOCK), ""), gpu_thread_id(c), "");
  Loop L;
  loop_open(c, &L, start, ci(c, units), 0, NULL);
  L.step = ci(c, (int64_t)g->grid * GPU_BLOCK);
  if (k->rows) {   // short rows: a thread per row
    row_serial(c, k, L.i);
    loop_close(c, &L, NULL);
    return;
  }
  if (k->kind == KK_ATTN) {   // a thread per row of the attention's output (codegen_attn.c)
    gpu_attn_row(c, k, L.i);
    loop_close(c, &L, NULL);
    return;
  }
  for (int j = 0; j < vw; j++) {
    V lin = vw == 1 ? L.i : addc(c, mulc(c, L.i, vw), j);
    V idx[MAX_DIMS];
    delinearize(c, lin, &n->shape, idx);
    c->out_shape = &n->shape;
    memcpy(c->out_idx, idx, sizeof idx);
    c->out_lin = lin;
    kernel_store(c, k, lin, kernel_value(c, k, idx, lin));
    c->out_lin = NULL;
  }
  loop_close(c, &L, NULL);
}

// ---- rows: reductions by cooperating threads

typedef struct {
  Op op;
  bool f;          // float values
  LLVMTypeRef t;   // value type: f32 or i64
} Red;

static void red_identity(Cg *c, const Red *r, V *acc) {
  if (r->op == OP_SUM) acc[0] = r->f ? cf(c, 0) : ci(c, 0);
  else acc[0] = r->f ? cf(c, -1.0 / 0.0) : ci(c, INT64_MIN);
  acc[1] = ci(c, INT64_MAX);   // argmax: no position yet
}

// acc := combine(acc, other). Argmax keeps the larger value, NaN as the
// largest, and on ties the earlier position, so the order of combining does
// not change the answer.
static void red_combine(Cg *c, const Red *r, V *acc, const V *other) {
  LLVMBuilderRef B = c->b;
  if (r->op == OP_SUM) {
    acc[0] = r->f ? LLVMBuildFAdd(B, acc[0], other[0], "") : LLVMBuildAdd(B, acc[0], other[0], "");
    return;
  }
  if (r->op == OP_RMAX) {
    acc[0] = r->f ? fmax_nan(c, other[0], acc[0], true) : emit_op(c, OP_MAX, DT_I64, DT_I64, other[0], acc[0], NULL);
    return;
  }
  V a = acc[0], ai = acc[1], b = other[0], bi = other[1];
  V earlier = LLVMBuildICmp(B, LLVMIntSLT, bi, ai, "");
  V better;
  if (r->f) {
    V an = LLVMBuildFCmp(B, LLVMRealUNO, a, a, ""), bn = LLVMBuildFCmp(B, LLVMRealUNO, b, b, "");
    V both = LLVMBuildAnd(B, an, bn, "");
    V neither = LLVMBuildNot(B, LLVMBuildOr(B, an, bn, ""), "");
    V gt = LLVMBuildFCmp(B, LLVMRealOGT, b, a, ""), eq = LLVMBuildFCmp(B, LLVMRealOEQ, b, a, "");
    V wins = LLVMBuildOr(B, gt, LLVMBuildAnd(B, eq, earlier, ""), "");
    better = LLVMBuildOr(B, LLVMBuildAnd(B, bn, LLVMBuildNot(B, an, ""), ""),
                         LLVMBuildOr(B, LLVMBuildAnd(B, neither, wins, ""), LLVMBuildAnd(B, both, earlier, ""), ""), "");
  } else {
    V gt = LLVMBuildICmp(B, LLVMIntSGT, b, a, ""), eq = LLVMBuildICmp(B, LLVMIntEQ, b, a, "");
    better = LLVMBuildOr(B, gt, LLVMBuildAnd(B, eq, earlier, ""), "");
  }
  acc[0] = LLVMBuildSelect(B, better, b, a, "");
  acc[1] = LLVMBuildSelect(B, better, bi, ai, "");
}

// Combines acc over the ROW_GROUP threads of each warp-sized group.
static void red_group(Cg *c, const Red *r, V *acc, V tid) {
  for (int m = ROW_GROUP / 2; m >= 1; m /= 2) {
    V other[2] = {shuffle_xor(c, acc[0], m, tid), r->op == OP_ARGMAX ? shuffle_xor(c, acc[1], m, tid) : NULL};
    red_combine(c, r, acc, other);
  }
}

// One reduction n of the current row by the row's G threads: each strides
// over the row, then the group combines (shuffles, then shared memory across
// the warps of a block). Every thread of the group ends with the value.
static void group_reduce(Cg *c, const Node *n, V *oidx, V lane, V tid, V active, int G, V sv, V si, V *acc) {
  LLVMBuilderRef B = c->b;
  const Node *x = n->src[0];
  Red r = {n->op, dtype_is_float(x->dtype), NULL};
  r.t = r.f ? c->f32 : c->i64;
  int64_t R = row_length(n);
  Shape red = {0};
  for (int d = 0; d < x->shape.ndim; d++)
    if (n->p.axes & (1u << d)) red.d[red.ndim++] = x->shape.d[d];
  V init[2];
  red_identity(c, &r, init);
  Loop L;
  loop_open(c, &L, LLVMBuildSelect(B, active, lane, ci(c, R), ""), ci(c, R), r.op == OP_ARGMAX ? 2 : 1, init);
  L.step = ci(c, G);
  V ridx[MAX_DIMS], xidx[MAX_DIMS];
  delinearize(c, L.i, &red, ridx);
  for (int d = 0, j = 0; d < x->shape.ndim; d++) xidx[d] = n->p.axes & (1u << d) ? ridx[j++] : oidx[d];
  V v = emit_value(c, x, xidx);
  if (!r.f && LLVMTypeOf(v) == c->i1) v = LLVMBuildZExt(B, v, c->i64, "");
  V a[2] = {L.acc[0], r.op == OP_ARGMAX ? L.acc[1] : NULL}, item[2] = {v, L.i};
  red_combine(c, &r, a, item);
  loop_close(c, &L, a);
  acc[0] = L.acc[0];
  acc[1] = r.op == OP_ARGMAX ? L.acc[1] : NULL;
  red_group(c, &r, acc, tid);
  if (G == GPU_BLOCK) {
    V warp = LLVMBuildUDiv(B, tid, ci(c, ROW_GROUP), ""), wl = LLVMBuildURem(B, tid, ci(c, ROW_GROUP), "");
    LLVMBasicBlockRef put = block(c, "put"), after = block(c, "after");
    LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntEQ, wl, ci(c, 0), ""), put, after);
    LLVMPositionBuilderAtEnd(B, put);
    LLVMBuildStore(B, acc[0], shared_at(c, sv, r.t, warp));
    if (acc[1]) LLVMBuildStore(B, acc[1], shared_at(c, si, c->i64, warp));
    LLVMBuildBr(B, after);
    LLVMPositionBuilderAtEnd(B, after);
    gpu_barrier(c);
    V slot = LLVMBuildAnd(B, tid, ci(c, GPU_BLOCK / ROW_GROUP - 1), "");
    V has = LLVMBuildICmp(B, LLVMIntULT, tid, ci(c, GPU_BLOCK / ROW_GROUP), "");
    V id[2];
    red_identity(c, &r, id);
    acc[0] = LLVMBuildSelect(B, has, LLVMBuildLoad2(B, r.t, shared_at(c, sv, r.t, slot), ""), id[0], "");
    if (acc[1]) acc[1] = LLVMBuildSelect(B, has, LLVMBuildLoad2(B, c->i64, shared_at(c, si, c->i64, slot), ""), id[1], "");
    red_group(c, &r, acc, tid);
    gpu_barrier(c);   // the next reduction may overwrite the slots
  }
}

static void emit_rows(Cg *c, const Kernel *k, const GpuLaunch *g) {
  LLVMBuilderRef B = c->b;
  const Node *n = k->root;
  int G = row_group(n), rows_per_block = GPU_BLOCK / G;
  int64_t nrows = shape_numel(&n->shape);
  V tid = gpu_thread_id(c);
  V lane = LLVMBuildURem(B, tid, ci(c, G), ""), group = LLVMBuildUDiv(B, tid, ci(c, G), "");
  V sv = NULL, si = NULL;   // a block's warps meet in shared memory
  if (G == GPU_BLOCK) {
    sv = gpu_shared_array(c, "red", c->f32, GPU_BLOCK / ROW_GROUP);
    si = gpu_shared_array(c, "redi", c->i64, GPU_BLOCK / ROW_GROUP);
    bool ints = false;
    for (int r = 0; r < k->nroots; r++) ints |= !dtype_is_float(k->roots[r]->src[0]->dtype);
    if (ints) sv = gpu_shared_array(c, "redv", c->i64, GPU_BLOCK / ROW_GROUP);
  }
  // rows r0 .. r0 + rows_per_block - 1 per step: the same trip count for
  // every thread of the block, so the barriers inside are reached by all
  Loop rows;
  loop_open(c, &rows, LLVMBuildMul(B, gpu_block_id(c), ci(c, rows_per_block), ""), ci(c, nrows), 0, NULL);
  rows.step = ci(c, (int64_t)g->grid * rows_per_block);
  V row = LLVMBuildAdd(B, rows.i, group, "");
  V active = LLVMBuildICmp(B, LLVMIntULT, row, ci(c, nrows), "");
  V safe_row = LLVMBuildSelect(B, active, row, ci(c, 0), "");
  V oidx[MAX_DIMS];
  delinearize(c, safe_row, &n->shape, oidx);
  V first = LLVMBuildAnd(B, active, LLVMBuildICmp(B, LLVMIntEQ, lane, ci(c, 0), ""), "");
  if (k->rows) {   // each reduction in turn, every thread holding each value, then the outputs
    c->nsubst = 0;
    for (int r = 0; r < k->nroots; r++) {
      V acc[2];
      const Node *rn = k->roots[r];
      group_reduce(c, rn, oidx, lane, tid, active, G, sv, si, acc);
      c->subst[c->nsubst] = rn;
      c->subst_val[c->nsubst++] = round_value(c, acc[0], rn->dtype);
    }
    row_outputs(c, k, safe_row, LLVMBuildSelect(B, active, lane, ci(c, nrows ? shape_numel(&n->src[0]->shape) / nrows : 0), ""),
                G, first);
    c->nsubst = 0;
    loop_close(c, &rows, NULL);
    return;
  }
  V acc[2];
  group_reduce(c, n, oidx, lane, tid, active, G, sv, si, acc);
  LLVMBasicBlockRef out = block(c, "store"), next = block(c, "next");
  LLVMBuildCondBr(B, first, out, next);
  LLVMPositionBuilderAtEnd(B, out);
  V result = n->op == OP_ARGMAX ? acc[1] : acc[0];
  if (n->op == OP_ARGMAX) {   // a row of zero length has no position: 0, as the host computes
    result = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntEQ, result, ci(c, INT64_MAX), ""), ci(c, 0), result, "");
  }
  kernel_store(c, k, row, result);
  LLVMBuildBr(B, next);
  LLVMPositionBuilderAtEnd(B, next);
  loop_close(c, &rows, NULL);
}

// ---- matmul

// Operand x of matmul n at matrix position (row, col) of x, for the output's
// batch index bidx; zero outside x (the tile's ragged edge).
V gpu_operand_at(Cg *c, const Node *n, const Node *x, V *bidx, V row, V col) {
  LLVMBuilderRef B = c->b;
  int xb = x->shape.ndim - 2, ob = n->shape.ndim - 2;
  int64_t rows = x->shape.d[xb], cols = x->shape.d[xb + 1];
  V xi[MAX_DIMS];
  for (int d = 0; d < xb; d++) xi[d] = x->shape.d[d] == 1 ? ci(c, 0) : bidx[d + ob - xb];
  V inside = LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntULT, row, ci(c, rows), ""),
                          LLVMBuildICmp(B, LLVMIntULT, col, ci(c, cols), ""), "");
  xi[xb] = clamp_index(c, row, rows);
  xi[xb + 1] = clamp_index(c, col, cols);
  V v = emit_value(c, x, xi);
  if (n->tf32) v = round_tf32(c, v);
  return LLVMBuildSelect(B, inside, v, cf(c, 0), "");
}

static void emit_matmul(Cg *c, const Kernel *k, const GpuLaunch *g) {
  LLVMBuilderRef B = c->b;
  const Node *n = k->root, *a = n->src[0], *bm = n->src[1];
  int nd = n->shape.ndim;
  bool ta = n->p.matmul.ta, tb = n->p.matmul.tb;
  int64_t K = ta ? a->shape.d[a->shape.ndim - 2] : a->shape.d[a->shape.ndim - 1];
  int64_t tm, tn, ntiles = matmul_tiles(n, &tm, &tn);
  const int MM_TILE = matmul_tile(n), MM_REG = MM_TILE / 16;
  const int S = MM_TILE + MM_PAD, T = MM_TILE / MM_REG;   // T x T threads, each MM_REG x MM_REG
  LLVMTypeRef row_t = LLVMArrayType2(c->f32, (unsigned)S);
  V As = gpu_shared_array(c, "a", row_t, MM_K), Bs = gpu_shared_array(c, "b", row_t, MM_K);
  V tid = gpu_thread_id(c);
  V ty = LLVMBuildUDiv(B, tid, ci(c, T), ""), tx = LLVMBuildURem(B, tid, ci(c, T), "");
  // accumulators live in allocas that SROA turns into registers
  V accp[8][8];
  for (int i = 0; i < MM_REG; i++)
    for (int j = 0; j < MM_REG; j++) accp[i][j] = LLVMBuildAlloca(B, c->f32, "acc");
  Shape tiles = n->shape;
  tiles.d[nd - 2] = tm;
  tiles.d[nd - 1] = tn;
  Loop Lt;   // output tiles: the same trip count for the whole block
  loop_open(c, &Lt, gpu_block_id(c), ci(c, ntiles), 0, NULL);
  Lt.step = ci(c, g->grid);
  V ti[MAX_DIMS];
  delinearize(c, Lt.i, &tiles, ti);
  V m0 = mulc(c, ti[nd - 2], MM_TILE), n0 = mulc(c, ti[nd - 1], MM_TILE);
  for (int i = 0; i < MM_REG; i++)
    for (int j = 0; j < MM_REG; j++) LLVMBuildStore(B, cf(c, 0), accp[i][j]);
  if (K > 0) {
    Loop Lk;
    loop_open(c, &Lk, ci(c, 0), ci(c, (K + MM_K - 1) / MM_K), 0, NULL);
    V k0 = mulc(c, Lk.i, MM_K);
    gpu_barrier(c);   // everyone is done reading the previous step's tiles
    for (int q = 0; q < MM_TILE * MM_K / GPU_BLOCK; q++) {
      V e = addc(c, tid, (int64_t)q * GPU_BLOCK);
      // the thread order follows each operand's memory order, so a warp's
      // loads are contiguous
      V am = ta ? LLVMBuildURem(B, e, ci(c, MM_TILE), "") : LLVMBuildUDiv(B, e, ci(c, MM_K), "");
      V ak = ta ? LLVMBuildUDiv(B, e, ci(c, MM_TILE), "") : LLVMBuildURem(B, e, ci(c, MM_K), "");
      V m = LLVMBuildAdd(B, m0, am, ""), kk = LLVMBuildAdd(B, k0, ak, "");
      V av = ta ? gpu_operand_at(c, n, a, ti, kk, m) : gpu_operand_at(c, n, a, ti, m, kk);
      V ap[2] = {ak, am};
      V zero = ci(c, 0);
      V ip[3] = {zero, ap[0], ap[1]};
      LLVMBuildStore(B, av, LLVMBuildGEP2(B, LLVMArrayType2(row_t, MM_K), As, ip, 3, ""));
      V bn = tb ? LLVMBuildUDiv(B, e, ci(c, MM_K), "") : LLVMBuildURem(B, e, ci(c, MM_TILE), "");
      V bk = tb ? LLVMBuildURem(B, e, ci(c, MM_K), "") : LLVMBuildUDiv(B, e, ci(c, MM_TILE), "");
      V col = LLVMBuildAdd(B, n0, bn, ""), kb = LLVMBuildAdd(B, k0, bk, "");
      V bv = tb ? gpu_operand_at(c, n, bm, ti, col, kb) : gpu_operand_at(c, n, bm, ti, kb, col);
      V jp[3] = {zero, bk, bn};
      LLVMBuildStore(B, bv, LLVMBuildGEP2(B, LLVMArrayType2(row_t, MM_K), Bs, jp, 3, ""));
    }
    gpu_barrier(c);
    V acc[8][8];
    for (int i = 0; i < MM_REG; i++)
      for (int j = 0; j < MM_REG; j++) acc[i][j] = LLVMBuildLoad2(B, c->f32, accp[i][j], "");
    for (int kk = 0; kk < MM_K; kk++) {
      V av[8], bv[8];
      for (int i = 0; i < MM_REG; i++) {
        V ip[3] = {ci(c, 0), ci(c, kk), LLVMBuildAdd(B, ty, ci(c, (int64_t)i * T), "")};
        av[i] = LLVMBuildLoad2(B, c->f32, LLVMBuildGEP2(B, LLVMArrayType2(row_t, MM_K), As, ip, 3, ""), "");
        V jp[3] = {ci(c, 0), ci(c, kk), LLVMBuildAdd(B, tx, ci(c, (int64_t)i * T), "")};
        bv[i] = LLVMBuildLoad2(B, c->f32, LLVMBuildGEP2(B, LLVMArrayType2(row_t, MM_K), Bs, jp, 3, ""), "");
      }
      for (int i = 0; i < MM_REG; i++)
        for (int j = 0; j < MM_REG; j++) acc[i][j] = matmul_fma(c, av[i], bv[j], acc[i][j]);
    }
    for (int i = 0; i < MM_REG; i++)
      for (int j = 0; j < MM_REG; j++) LLVMBuildStore(B, acc[i][j], accp[i][j]);
    loop_close(c, &Lk, NULL);
  }
  // rows ty + T i and columns tx + T j: a warp stores runs of T columns
  for (int i = 0; i < MM_REG; i++)
    for (int j = 0; j < MM_REG; j++) {
      V row = LLVMBuildAdd(B, m0, addc(c, ty, (int64_t)i * T), ""), col = LLVMBuildAdd(B, n0, addc(c, tx, (int64_t)j * T), "");
      gpu_matmul_store(c, k, ti, row, col, accp[i][j]);
    }
  loop_close(c, &Lt, NULL);
}

void gpu_matmul_store(Cg *c, const Kernel *k, V *ti, V row, V col, V accp) {
  LLVMBuilderRef B = c->b;
  const Node *n = k->root;
  int nd = n->shape.ndim;
  LLVMBasicBlockRef put = block(c, "put"), skip = block(c, "skip");
  LLVMBuildCondBr(B, LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntULT, row, ci(c, n->shape.d[nd - 2]), ""),
                                  LLVMBuildICmp(B, LLVMIntULT, col, ci(c, n->shape.d[nd - 1]), ""), ""), put, skip);
  LLVMPositionBuilderAtEnd(B, put);
  V oi[MAX_DIMS];
  for (int d = 0; d < nd - 2; d++) oi[d] = ti[d];
  oi[nd - 2] = row;
  oi[nd - 1] = col;
  kernel_store(c, k, linearize(c, oi, &n->shape), LLVMBuildLoad2(B, c->f32, accp, ""));
  LLVMBuildBr(B, skip);
  LLVMPositionBuilderAtEnd(B, skip);
}

// ---- kernels and modules

void gpu_kernel_attr(Cg *c, const char *key, const char *value) {
  LLVMAddAttributeAtIndex(c->fn, LLVMAttributeFunctionIndex,
                          LLVMCreateStringAttribute(c->cx, key, (unsigned)strlen(key), value, (unsigned)strlen(value)));
}

void gpu_emit_kernel(Cg *c, const Kernel *k) {
  const Target *t = c->target;
  // The launch shapes are the same for every GPU target: each must
  // exchange values within groups of ROW_GROUP threads.
  ASSERT(t->warp == ROW_GROUP);
  LLVMTypeRef params[4] = {c->gptr, c->i64, c->gptr, c->gptr};
  LLVMTypeRef ft = LLVMFunctionType(LLVMVoidTypeInContext(c->cx), params, 4, false);
  c->fn = LLVMAddFunction(c->mod, k->name, ft);
  LLVMSetFunctionCallConv(c->fn, t->kernel_cc);
  t->kernel_attrs(c, GPU_BLOCK, strategy_of(k) == GS_MATMUL ? matmul_tile(k->root) : 0);
  unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
  LLVMAddAttributeAtIndex(c->fn, 1, LLVMCreateEnumAttribute(c->cx, noalias, 0));
  LLVMAddAttributeAtIndex(c->fn, 3, LLVMCreateEnumAttribute(c->cx, noalias, 0));
  LLVMAddAttributeAtIndex(c->fn, 4, LLVMCreateEnumAttribute(c->cx, noalias, 0));
  c->bufs = LLVMGetParam(c->fn, 0);
  c->errp = LLVMGetParam(c->fn, 3);
  c->out_lin = NULL;
  c->kernel = k;
  LLVMPositionBuilderAtEnd(c->b, block(c, "entry"));
  // the run's seed and step: loaded once, and dropped by LLVM where unused
  LLVMValueRef rng = LLVMGetParam(c->fn, 2), one = LLVMConstInt(c->i64, 1, false);
  c->seed = LLVMBuildLoad2(c->b, c->i64, rng, "seed");
  c->step = LLVMBuildLoad2(c->b, c->i64, LLVMBuildGEP2(c->b, c->i64, rng, &one, 1, ""), "step");
  GpuLaunch g;
  gpu_launch_shape(k, &g);
  switch (strategy_of(k)) {
  case GS_ELEMENTS: emit_elements(c, k, &g); break;
  case GS_ROWS: emit_rows(c, k, &g); break;
  case GS_MATMUL:
    if (!t->matmul || !t->matmul(c, k, matmul_tile(k->root), g.grid)) emit_matmul(c, k, &g);
    break;
  }
  LLVMBuildRetVoid(c->b);
}
