// target/nvptx_mma.c: matmuls on NVIDIA tensor cores (sm_80 and later).
//
// A matmul whose operands are both bf16, both f16, or f32 marked tf32 runs
// as warp-level mma.sync instead of per-thread FMAs. The block (256 threads,
// 8 warps) computes the same 64 x 64 or 128 x 128 output tile as the FMA
// path (so the launch records do not change); each warp owns a 2 x 4 share
// of it, (T/2) x (T/4), as a grid of 16 x 8 mma tiles whose f32 accumulators
// stay in registers. Per step of MMA_K columns of K:
//
//   1. the block stages A's tile as [m][k] and B's as [n][k] in shared
//      memory, k contiguous, in the operand type (tf32: f32 rounded to tf32
//      as the operand loads round it), reading each operand through the
//      expression layer, so views, casts and ragged edges (zeros) are
//      handled as everywhere else;
//   2. each warp loads its fragments from shared memory, two 16-bit values
//      (or one tf32) per 32-bit register, in the layout the PTX ISA gives
//      for mma.m16n8k16 (bf16, f16) and mma.m16n8k8 (tf32), and issues
//      the mma for every (row tile, column tile) pair.
//
// The accumulators are then finished through the kernel's epilogue in
// registers (kernel_store) and stored. Rows are padded in shared memory so
// that the eight groups of a warp hit distinct banks on fragment loads.
//
// The NVPTX descriptor's matmul hook (target/nvptx.c) is its only caller; it
// calls the GPU helpers of target/gpu.c, never the strategies.
//
// Not done yet (docs/performance.md): ldmatrix, cp.async multi-stage
// pipelining, vector global loads, and the sm_90 wgmma/TMA path.
#include "codegen.h"

#include <string.h>

#define MMA_K 32      // K columns staged per step
#define MMA_PAD16 8   // 16-bit elements of padding per shared row (16 bytes)
#define MMA_PAD32 4   // f32 elements of padding per shared row

bool nvptx_mma_applies(const Node *n) {
  if (n->op != OP_MATMUL) return false;
  DType a = n->src[0]->dtype, b = n->src[1]->dtype;
  if (a == b && (a == DT_BF16 || a == DT_F16)) return true;
  return n->tf32 && a == DT_F32 && b == DT_F32;
}

// One 32-bit register of a fragment: the two 16-bit values (or one 32-bit
// value) at element index e of a shared array of elements of type et.
static V frag_reg(Cg *c, V arr, LLVMTypeRef et, V e) {
  V p = LLVMBuildGEP2(c->b, et, arr, &e, 1, "");
  V v = LLVMBuildLoad2(c->b, c->i32, p, "");
  LLVMSetAlignment(v, 4);
  return v;
}

void nvptx_mma_emit(Cg *c, const Kernel *k, int tile, uint32_t grid) {
  LLVMBuilderRef B = c->b;
  const Node *n = k->root, *a = n->src[0], *bm = n->src[1];
  int nd = n->shape.ndim;
  bool ta = n->p.matmul.ta, tb = n->p.matmul.tb;
  bool tf32 = a->dtype == DT_F32;
  DType op_t = a->dtype;
  int64_t M = n->shape.d[nd - 2], N = n->shape.d[nd - 1];
  int64_t K = ta ? a->shape.d[a->shape.ndim - 2] : a->shape.d[a->shape.ndim - 1];
  int64_t tm = (M + tile - 1) / tile, tn = (N + tile - 1) / tile;
  int64_t ntiles = M && N ? shape_numel(&n->shape) / (M * N) * tm * tn : 0;
  // warps: 2 along M, 4 along N; mma tiles per warp
  const int WM = tile / 2, WN = tile / 4, MT = WM / 16, NT = WN / 8;
  const int KS = tf32 ? 8 : 16;                        // K of one mma
  const int ROW = MMA_K + (tf32 ? MMA_PAD32 : MMA_PAD16);   // elements per shared row
  LLVMTypeRef et = tf32 ? c->f32 : c->i16;
  V As = gpu_shared_array(c, "ma", et, (unsigned)(tile * ROW));
  V Bs = gpu_shared_array(c, "mb", et, (unsigned)(tile * ROW));
  V tid = gpu_thread_id(c);
  V warp = LLVMBuildUDiv(B, tid, ci(c, 32), ""), lane = LLVMBuildURem(B, tid, ci(c, 32), "");
  V wm = LLVMBuildUDiv(B, warp, ci(c, 4), ""), wn = LLVMBuildURem(B, warp, ci(c, 4), "");
  V grp = LLVMBuildUDiv(B, lane, ci(c, 4), ""), tig = LLVMBuildURem(B, lane, ci(c, 4), "");
  V accp[8][4][4];
  for (int i = 0; i < MT; i++)
    for (int j = 0; j < NT; j++)
      for (int r = 0; r < 4; r++) accp[i][j][r] = LLVMBuildAlloca(B, c->f32, "acc");
  Shape tiles = n->shape;
  tiles.d[nd - 2] = tm;
  tiles.d[nd - 1] = tn;
  Loop Lt;
  loop_open(c, &Lt, gpu_block_id(c), ci(c, ntiles), 0, NULL);
  Lt.step = ci(c, grid);
  V ti[MAX_DIMS];
  delinearize(c, Lt.i, &tiles, ti);
  V m0 = mulc(c, ti[nd - 2], tile), n0 = mulc(c, ti[nd - 1], tile);
  for (int i = 0; i < MT; i++)
    for (int j = 0; j < NT; j++)
      for (int r = 0; r < 4; r++) LLVMBuildStore(B, cf(c, 0), accp[i][j][r]);
  if (K > 0) {
    Loop Lk;
    loop_open(c, &Lk, ci(c, 0), ci(c, (K + MMA_K - 1) / MMA_K), 0, NULL);
    V k0 = mulc(c, Lk.i, MMA_K);
    gpu_barrier(c);   // everyone is done reading the previous step's tiles
    for (int q = 0; q < tile * MMA_K / 256; q++) {
      V e = addc(c, tid, (int64_t)q * 256);
      // consecutive threads follow each operand's memory order
      V am = ta ? LLVMBuildURem(B, e, ci(c, tile), "") : LLVMBuildUDiv(B, e, ci(c, MMA_K), "");
      V ak = ta ? LLVMBuildUDiv(B, e, ci(c, tile), "") : LLVMBuildURem(B, e, ci(c, MMA_K), "");
      V av = ta ? gpu_operand_at(c, n, a, ti, LLVMBuildAdd(B, k0, ak, ""), LLVMBuildAdd(B, m0, am, ""))
                : gpu_operand_at(c, n, a, ti, LLVMBuildAdd(B, m0, am, ""), LLVMBuildAdd(B, k0, ak, ""));
      av = tf32 ? av : LLVMBuildBitCast(B, narrow_float(c, op_t, av), c->i16, "");
      V ai = LLVMBuildAdd(B, mulc(c, am, ROW), ak, "");
      LLVMBuildStore(B, av, LLVMBuildGEP2(B, et, As, &ai, 1, ""));
      V bn = tb ? LLVMBuildUDiv(B, e, ci(c, MMA_K), "") : LLVMBuildURem(B, e, ci(c, tile), "");
      V bk = tb ? LLVMBuildURem(B, e, ci(c, MMA_K), "") : LLVMBuildUDiv(B, e, ci(c, tile), "");
      V bv = tb ? gpu_operand_at(c, n, bm, ti, LLVMBuildAdd(B, n0, bn, ""), LLVMBuildAdd(B, k0, bk, ""))
                : gpu_operand_at(c, n, bm, ti, LLVMBuildAdd(B, k0, bk, ""), LLVMBuildAdd(B, n0, bn, ""));
      bv = tf32 ? bv : LLVMBuildBitCast(B, narrow_float(c, op_t, bv), c->i16, "");
      V bi = LLVMBuildAdd(B, mulc(c, bn, ROW), bk, "");
      LLVMBuildStore(B, bv, LLVMBuildGEP2(B, et, Bs, &bi, 1, ""));
    }
    gpu_barrier(c);
    V acc[8][4][4];
    for (int i = 0; i < MT; i++)
      for (int j = 0; j < NT; j++)
        for (int r = 0; r < 4; r++) acc[i][j][r] = LLVMBuildLoad2(B, c->f32, accp[i][j][r], "");
    V row_base = LLVMBuildAdd(B, mulc(c, wm, WM), grp, "");   // + 16 i (+ 8)
    V col_base = LLVMBuildAdd(B, mulc(c, wn, WN), grp, "");   // B's n: + 8 j
    // A's k offset of this lane's first register: 2 t (16-bit pairs) or t (tf32)
    V kl = tf32 ? tig : mulc(c, tig, 2);
    const int KH = tf32 ? 4 : 8;   // the second half of the fragment's k range
    LLVMTypeRef h2 = LLVMVectorType(c->f16, 2);
    for (int kk = 0; kk < MMA_K; kk += KS) {
      V ka = addc(c, kl, kk);
      V af[8][4], bf[4][2];
      for (int i = 0; i < MT; i++) {
        V r0 = addc(c, row_base, 16 * i), r8 = addc(c, row_base, 16 * i + 8);
        // a0: (g, k), a1: (g + 8, k), a2: (g, k + KH), a3: (g + 8, k + KH)
        af[i][0] = frag_reg(c, As, et, LLVMBuildAdd(B, mulc(c, r0, ROW), ka, ""));
        af[i][1] = frag_reg(c, As, et, LLVMBuildAdd(B, mulc(c, r8, ROW), ka, ""));
        af[i][2] = frag_reg(c, As, et, addc(c, LLVMBuildAdd(B, mulc(c, r0, ROW), ka, ""), KH));
        af[i][3] = frag_reg(c, As, et, addc(c, LLVMBuildAdd(B, mulc(c, r8, ROW), ka, ""), KH));
      }
      for (int j = 0; j < NT; j++) {
        V cn = addc(c, col_base, 8 * j);
        // b0: (k, g), b1: (k + KH, g), B staged as [n][k]
        bf[j][0] = frag_reg(c, Bs, et, LLVMBuildAdd(B, mulc(c, cn, ROW), ka, ""));
        bf[j][1] = frag_reg(c, Bs, et, addc(c, LLVMBuildAdd(B, mulc(c, cn, ROW), ka, ""), KH));
      }
      for (int i = 0; i < MT; i++)
        for (int j = 0; j < NT; j++) {
          V args[10];
          for (int r = 0; r < 4; r++) args[r] = af[i][r];
          args[4] = bf[j][0];
          args[5] = bf[j][1];
          if (op_t == DT_F16)
            for (int r = 0; r < 6; r++) args[r] = LLVMBuildBitCast(B, args[r], h2, "");
          for (int r = 0; r < 4; r++) args[6 + r] = acc[i][j][r];
          const char *name = tf32 ? "llvm.nvvm.mma.m16n8k8.row.col.tf32"
                             : op_t == DT_BF16 ? "llvm.nvvm.mma.m16n8k16.row.col.bf16"
                                               : "llvm.nvvm.mma.m16n8k16.row.col.f32.f32";
          V d = call_plain_intrinsic(c, name, args, 10);
          for (int r = 0; r < 4; r++) acc[i][j][r] = LLVMBuildExtractValue(B, d, (unsigned)r, "");
        }
    }
    for (int i = 0; i < MT; i++)
      for (int j = 0; j < NT; j++)
        for (int r = 0; r < 4; r++) LLVMBuildStore(B, acc[i][j][r], accp[i][j][r]);
    loop_close(c, &Lk, NULL);
  }
  // c0, c1: (g, 2t + 0/1); c2, c3: (g + 8, 2t + 0/1), through the epilogue
  for (int i = 0; i < MT; i++)
    for (int j = 0; j < NT; j++)
      for (int r = 0; r < 4; r++) {
        V row = LLVMBuildAdd(B, m0, addc(c, LLVMBuildAdd(B, mulc(c, wm, WM), grp, ""), 16 * i + (r >= 2 ? 8 : 0)), "");
        V col = LLVMBuildAdd(B, n0, addc(c, LLVMBuildAdd(B, mulc(c, wn, WN), mulc(c, tig, 2), ""), 8 * j + (r & 1)), "");
        gpu_matmul_store(c, k, ti, row, col, accp[i][j][r]);
      }
  loop_close(c, &Lt, NULL);
}
