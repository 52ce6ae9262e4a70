// target/host.c: the host target and its strategy: kernels for x86-64.
//
// Each kernel is a loop over its output elements [begin, end) that the CPU
// device splits over threads; the value of each element comes from the
// shared expression layer (codegen_expr.c). Matmuls on stored f32 operands
// run as register tiles instead: MATMUL_MR rows of A broadcast against
// nr-wide vectors of B's rows, accumulated in vector registers. A
// convolution's GEMM whose A, the im2col, is not stored packs those rows
// from the image into a panel on the stack first (implicit GEMM).
#include "codegen.h"

#include <pthread.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <llvm-c/DebugInfo.h>
#include <llvm-c/IRReader.h>
#include <llvm-c/Support.h>
#include <llvm-c/Target.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

// Registers the back end once, whichever codegen thread asks first. And
// keeps every select a select: X86's cmov converter turns selects in loops
// into branches where it expects a shorter path, but a kernel's selects
// depend on its data (a window's maximum, a mask), whose branches
// mispredict: a max pool's gradient took 5.5 ms as branches, 3.2 as cmovs.
// The option is LLVM's, process-wide: no function attribute sets it.
static void register_backend(void) {
  LLVMInitializeX86TargetInfo();
  LLVMInitializeX86Target();
  LLVMInitializeX86TargetMC();
  LLVMInitializeX86AsmPrinter();
  const char *argv[] = {"smelt", "-x86-cmov-converter=false"};
  LLVMParseCommandLineOptions(2, argv, NULL);
}

static void init(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, register_backend);
}

// One address space, so buffers are plain pointers; LLVM lowers every math
// intrinsic but tanh and exp (calling libm); no shared memory, no GPU hooks; a bad index is
// recorded by a select, which keeps the loop over elements branch-free.
static const Target host = {
  .name = "x86-64",
  .triple = "x86_64-pc-linux-gnu",
  .tanh = math_tanh_inline,   // libm's tanhf, called lane by lane, was 30 ns an element
  .exp = math_exp_inline,     // and expf kept softmax and cross-entropy loops scalar
  .init = init,
  .emit = LLVMObjectFile,
};

// The element address of operand x (stored, contiguous) at matrix position
// (row, col) for output batch index bidx (broadcast to x's batch dims).
static V matrix_elem(Cg *c, const Node *x, const Shape *out, V *bidx, V row, V col) {
  int xb = x->shape.ndim - 2, ob = out->ndim - 2;
  V base = ci(c, 0);
  for (int d = 0; d < xb; d++) {
    V i = x->shape.d[d] == 1 ? ci(c, 0) : bidx[d + ob - xb];
    base = LLVMBuildAdd(c->b, LLVMBuildMul(c->b, base, ci(c, x->shape.d[d]), ""), i, "");
  }
  int64_t rows = x->shape.d[xb], cols = x->shape.d[xb + 1];
  base = LLVMBuildMul(c->b, base, ci(c, rows * cols), "");
  return LLVMBuildAdd(c->b, base, LLVMBuildAdd(c->b, LLVMBuildMul(c->b, row, ci(c, cols), ""), col, ""), "");
}

// The scalar x in every lane of the vector type vt.
static V splat(Cg *c, V x, LLVMTypeRef vt) {
  V one = LLVMBuildInsertElement(c->b, LLVMGetUndef(vt), x, ci(c, 0), "");
  return LLVMBuildShuffleVector(c->b, one, LLVMGetUndef(vt), LLVMConstNull(LLVMVectorType(c->i32, LLVMGetVectorSize(vt))), "");
}

// acc + a * bv for a scalar a of A's row and a vector bv of B's: one
// register tile's row, as a fused multiply-add (matmul_fma).
static V row_fma(Cg *c, V a, V bv, V acc) {
  return matmul_fma(c, splat(c, a, LLVMTypeOf(bv)), bv, acc);
}

// The MATMUL_MR x NR register tile of C = A' B at rows m0.., columns n0..
// (A' = A or A^T; ti: the tile's batch index first), whose columns all lie
// inside C: for every k, MR scalars of A' broadcast against one NR-wide
// vector of B's row k, accumulated in MR vector registers. A' comes from its
// buffer, or from the packed panel (k * MR + r) when panel is not NULL. A
// kernel with an epilogue finishes each element of the tile through it.
// B's rows come from panel_b (k * NR) instead when it is not NULL (packed
// and rounded already); ncols, when not NULL, is how many of the tile's
// columns lie inside C (the rest are not stored).
static void tile_vector(Cg *c, const Kernel *kn, V *ti, V m0, V n0, V panel, V panel_b, V ncols) {
  LLVMBuilderRef B = c->b;
  const Node *n = kn->root;
  const int NR = c->plan->nr;
  const Node *a = n->src[0], *bm = n->src[1];
  int nd = n->shape.ndim, nb = nd - 2;
  bool ta = n->p.matmul.ta;
  int64_t M = n->shape.d[nd - 2];
  int64_t K = ta ? a->shape.d[a->shape.ndim - 2] : a->shape.d[a->shape.ndim - 1];
  // A tile whose columns are all inside C takes the vector path even when
  // some of its rows are not (M not a multiple of MR, a thin product such as
  // batch-1 inference): those rows read C's last row and are not stored.
  bool ragged_rows = M % MATMUL_MR != 0;
  LLVMTypeRef vt = LLVMVectorType(c->f32, NR);
  V init[MATMUL_MR];
  for (int r = 0; r < MATMUL_MR; r++) init[r] = LLVMConstNull(vt);
  // an operand may be a cast of a stored tensor, converted as it is loaded
  const Node *sa = panel ? NULL : matmul_operand_buffer(c->plan, a), *sb = panel_b ? NULL : matmul_operand_buffer(c->plan, bm);
  V pa = panel ? panel : buffer_ptr(c, sa), pb = panel_b ? panel_b : buffer_ptr(c, sb);
  // the accumulators are loop-carried values of a k loop
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(B), head = block(c, "k"), body = block(c, "kbody"), done = block(c, "kdone");
  LLVMBuildBr(B, head);
  LLVMPositionBuilderAtEnd(B, head);
  V k = LLVMBuildPhi(B, c->i64, "k");
  V zero = ci(c, 0);
  LLVMAddIncoming(k, &zero, &pre, 1);
  V acc[MATMUL_MR];
  for (int r = 0; r < MATMUL_MR; r++) {
    acc[r] = LLVMBuildPhi(B, vt, "acc");
    LLVMAddIncoming(acc[r], &init[r], &pre, 1);
  }
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, k, ci(c, K), ""), body, done);
  LLVMPositionBuilderAtEnd(B, body);
  // bf16 and f16 operands are widened as they are loaded: f32 products and sums
  LLVMTypeRef at = panel ? c->f32 : storage_type(c, sa->dtype);
  V bv;
  if (panel_b) {
    bv = LLVMBuildLoad2(B, vt, LLVMBuildGEP2(B, c->f32, pb, (V[]){mulc(c, k, NR)}, 1, ""), "b");
    LLVMSetAlignment(bv, 64);
  } else {
    LLVMTypeRef bt = storage_type(c, sb->dtype);
    V bidx = matrix_elem(c, bm, &n->shape, ti, k, n0);
    bv = LLVMBuildLoad2(B, LLVMVectorType(bt, NR), LLVMBuildGEP2(B, bt, pb, &bidx, 1, ""), "b");
    LLVMSetAlignment(bv, (unsigned)dtype_size(sb->dtype));
    if (bt != c->f32) bv = LLVMBuildFPExt(B, bv, vt, "");
    if (sb != bm) bv = round_value(c, bv, bm->dtype);
    if (n->tf32) bv = round_tf32(c, bv);
  }
  V next[MATMUL_MR];
  for (int r = 0; r < MATMUL_MR; r++) {
    V av;
    if (panel) {   // packed already rounded, ragged rows clamped
      V at_k = addc(c, mulc(c, k, MATMUL_MR), r);
      av = LLVMBuildLoad2(B, c->f32, LLVMBuildGEP2(B, c->f32, pa, &at_k, 1, ""), "a");
    } else {
      V row = addc(c, m0, r);
      if (ragged_rows) row = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, row, ci(c, M), ""), row, ci(c, M - 1), "");
      V aidx = ta ? matrix_elem(c, a, &n->shape, ti, k, row) : matrix_elem(c, a, &n->shape, ti, row, k);
      av = LLVMBuildLoad2(B, at, LLVMBuildGEP2(B, at, pa, &aidx, 1, ""), "a");
      if (at != c->f32) av = LLVMBuildFPExt(B, av, c->f32, "");
      if (sa != a) av = round_value(c, av, a->dtype);
      if (n->tf32) av = round_tf32(c, av);
    }
    next[r] = row_fma(c, av, bv, acc[r]);
  }
  V k1 = addc(c, k, 1);
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(B);
  LLVMAddIncoming(k, &k1, &latch, 1);
  for (int r = 0; r < MATMUL_MR; r++) LLVMAddIncoming(acc[r], &next[r], &latch, 1);
  LLVMBuildBr(B, head);
  LLVMPositionBuilderAtEnd(B, done);
  bool plain = kn->nouts == 1 && kn->out == n && n->dtype == DT_F32;   // else each element goes through the epilogue
  V pc = plain ? buffer_ptr(c, n) : NULL;
  for (int r = 0; r < MATMUL_MR; r++) {
    LLVMBasicBlockRef skip = NULL;
    if (ragged_rows && r > 0) {   // row m0 + r may lie past C (row m0 never does)
      LLVMBasicBlockRef put = block(c, "row");
      skip = block(c, "rowdone");
      LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, addc(c, m0, r), ci(c, M), ""), put, skip);
      LLVMPositionBuilderAtEnd(B, put);
    }
    V oi[MAX_DIMS];
    for (int d = 0; d < nb; d++) oi[d] = ti[d];
    oi[nd - 2] = addc(c, m0, r);
    oi[nd - 1] = n0;
    V lin = linearize(c, oi, &n->shape);
    LLVMBasicBlockRef part = NULL, stored = NULL;
    if (ncols) {   // a tile past C's last column stores those inside one by one
      LLVMBasicBlockRef whole = block(c, "whole");
      part = block(c, "part");
      stored = block(c, "stored");
      LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntEQ, ncols, ci(c, NR), ""), whole, part);
      LLVMPositionBuilderAtEnd(B, whole);
    }
    if (plain) {
      V st = LLVMBuildStore(B, acc[r], LLVMBuildGEP2(B, c->f32, pc, &lin, 1, ""));
      LLVMSetAlignment(st, 4);
    } else {
      for (int j = 0; j < NR; j++)
        kernel_store(c, kn, addc(c, lin, j), LLVMBuildExtractElement(B, acc[r], LLVMConstInt(c->i32, (unsigned)j, false), ""));
    }
    if (ncols) {
      LLVMBuildBr(B, stored);
      LLVMPositionBuilderAtEnd(B, part);
      Loop J;
      loop_open(c, &J, ci(c, 0), ncols, 0, NULL);
      kernel_store(c, kn, LLVMBuildAdd(B, lin, J.i, ""), LLVMBuildExtractElement(B, acc[r], J.i, ""));
      loop_close(c, &J, NULL);
      LLVMBuildBr(B, stored);
      LLVMPositionBuilderAtEnd(B, stored);
    }
    if (skip) {
      LLVMBuildBr(B, skip);
      LLVMPositionBuilderAtEnd(B, skip);
    }
  }
}

// C[oi] from the packed panel (rows from m0): the sum kernel_matmul makes,
// product by product in the same order and rounding, so a packed kernel's
// edge equals an unpacked one's bit for bit.
static V panel_dot(Cg *c, const Node *n, V *oi, V m0, V panel) {
  LLVMBuilderRef B = c->b;
  const Node *bm = n->src[1];
  int nd = n->shape.ndim, bb = bm->shape.ndim - 2;
  int64_t K = bm->shape.d[bb];
  V init = cf(c, 0), bi[MAX_DIMS];
  Loop L;
  loop_open(c, &L, ci(c, 0), ci(c, K), 1, &init);
  for (int d = 0; d < bb; d++) bi[d] = bm->shape.d[d] == 1 ? ci(c, 0) : oi[d + nd - 2 - bb];
  bi[bb] = L.i;
  bi[bb + 1] = oi[nd - 1];
  V at_k = LLVMBuildAdd(B, mulc(c, L.i, MATMUL_MR), LLVMBuildSub(B, oi[nd - 2], m0, ""), "");
  V av = LLVMBuildLoad2(B, c->f32, LLVMBuildGEP2(B, c->f32, panel, &at_k, 1, ""), "a");
  V bv = emit_value(c, bm, bi);
  if (n->tf32) bv = round_tf32(c, bv);
  V next = matmul_fma(c, av, bv, L.acc[0]);
  loop_close(c, &L, &next);
  return L.acc[0];
}

// The tile at rows m0.., columns n0..: the vector path when its columns lie
// inside C, else each of its elements that lies inside C, the plain way.
static void tile_at(Cg *c, const Kernel *kn, V *ti, V m0, V n0, V panel, V panel_b) {
  LLVMBuilderRef B = c->b;
  const Node *n = kn->root;
  const int NR = c->plan->nr;
  int nd = n->shape.ndim;
  int64_t M = n->shape.d[nd - 2], N = n->shape.d[nd - 1];
  V full = LLVMBuildICmp(B, LLVMIntSLE, addc(c, n0, NR), ci(c, N), "");
  LLVMBasicBlockRef fast = block(c, "tile"), edge = block(c, "edge"), join = block(c, "tiled");
  LLVMBuildCondBr(B, full, fast, edge);
  LLVMPositionBuilderAtEnd(B, fast);
  tile_vector(c, kn, ti, m0, n0, panel, panel_b, NULL);
  LLVMBuildBr(B, join);

  LLVMPositionBuilderAtEnd(B, edge);
  Loop L;
  loop_open(c, &L, ci(c, 0), ci(c, MATMUL_MR * NR), 0, NULL);
  V row = LLVMBuildAdd(B, m0, LLVMBuildUDiv(B, L.i, ci(c, NR), ""), "");
  V col = LLVMBuildAdd(B, n0, LLVMBuildURem(B, L.i, ci(c, NR), ""), "");
  V inside = LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntSLT, row, ci(c, M), ""), LLVMBuildICmp(B, LLVMIntSLT, col, ci(c, N), ""), "");
  LLVMBasicBlockRef one = block(c, "elem"), skip = block(c, "next");
  LLVMBuildCondBr(B, inside, one, skip);
  LLVMPositionBuilderAtEnd(B, one);
  V oi[MAX_DIMS];
  for (int d = 0; d < nd - 2; d++) oi[d] = ti[d];
  oi[nd - 2] = row;
  oi[nd - 1] = col;
  kernel_store(c, kn, linearize(c, oi, &n->shape), panel ? panel_dot(c, n, oi, m0, panel) : kernel_matmul(c, n, oi));
  LLVMBuildBr(B, skip);
  LLVMPositionBuilderAtEnd(B, skip);
  loop_close(c, &L, NULL);
  LLVMBuildBr(B, join);
  LLVMPositionBuilderAtEnd(B, join);
}

// Iteration t of a tiled matmul: one register tile. Row tiles vary fastest,
// so consecutive tiles (on one thread) reuse the same K x NR panel of B from
// L1 while rows of A stream through.
// Whether tiled matmul n copies its B's column tiles (emit_tile): when a
// tile's K x nr floats fit B_PANEL_BYTES (L2, and the stack) and more than
// one row tile reads each.
#define B_PANEL_BYTES (256 * 1024)
static bool matmul_packs_b(const Node *n, int nr) {
  const Node *a = n->src[0];
  int64_t K = n->p.matmul.ta ? a->shape.d[a->shape.ndim - 2] : a->shape.d[a->shape.ndim - 1];
  return K * nr * 4 <= B_PANEL_BYTES && n->shape.d[n->shape.ndim - 2] > MATMUL_MR;
}

// Copies B's column tile at n0 (K x NR, inside B) into panel_b, k * NR,
// converted and rounded as tile_vector reads B.
static void pack_b(Cg *c, const Node *n, V *ti, V n0, V panel_b) {
  LLVMBuilderRef B = c->b;
  const int NR = c->plan->nr;
  const Node *bm = n->src[1], *sb = matmul_operand_buffer(c->plan, bm);
  int64_t K = bm->shape.d[bm->shape.ndim - 2];
  LLVMTypeRef bt = storage_type(c, sb->dtype), vt = LLVMVectorType(c->f32, NR);
  V pb = buffer_ptr(c, sb);
  Loop L;
  loop_open(c, &L, ci(c, 0), ci(c, K), 0, NULL);
  V bidx = matrix_elem(c, bm, &n->shape, ti, L.i, n0);
  V bv = LLVMBuildLoad2(B, LLVMVectorType(bt, NR), LLVMBuildGEP2(B, bt, pb, &bidx, 1, ""), "b");
  LLVMSetAlignment(bv, (unsigned)dtype_size(sb->dtype));
  if (bt != c->f32) bv = LLVMBuildFPExt(B, bv, vt, "");
  if (sb != bm) bv = round_value(c, bv, bm->dtype);
  if (n->tf32) bv = round_tf32(c, bv);
  LLVMSetAlignment(LLVMBuildStore(B, bv, LLVMBuildGEP2(B, c->f32, panel_b, (V[]){mulc(c, L.i, NR)}, 1, "")), 64);
  loop_close(c, &L, NULL);
}

// Iteration t of a tiled matmul: the tile at row tile t % row tiles of
// column tile t / row tiles (and batch). With panel_b, the iterations of a
// column tile read B's tile from there, copied by the first of them in this
// call (*packed: the column tile it holds, -1 for none). B's rows lie N
// floats apart: at N = 2048 a tile's rows share a few cache sets and evict
// one another (a 2048^3 matmul ran at 21 GFLOP/s, with the copy at 91).
static void emit_tile(Cg *c, const Kernel *kn, V t, V panel_b, V packed) {
  LLVMBuilderRef B = c->b;
  const Node *n = kn->root;
  const int NR = c->plan->nr;
  int nd = n->shape.ndim;
  int64_t M = n->shape.d[nd - 2], N = n->shape.d[nd - 1];
  Shape tiles = n->shape;
  tiles.ndim -= 2;
  tiles.d[tiles.ndim++] = (N + NR - 1) / NR;
  tiles.d[tiles.ndim++] = (M + MATMUL_MR - 1) / MATMUL_MR;
  V ti[MAX_DIMS];
  delinearize(c, t, &tiles, ti);
  V m0 = mulc(c, ti[tiles.ndim - 1], MATMUL_MR), n0 = mulc(c, ti[tiles.ndim - 2], NR);
  if (panel_b) {
    V col = LLVMBuildUDiv(B, t, ci(c, tiles.d[tiles.ndim - 1]), "");
    V fresh = LLVMBuildICmp(B, LLVMIntNE, LLVMBuildLoad2(B, c->i64, packed, "packed"), col, "");
    V full = LLVMBuildICmp(B, LLVMIntSLE, addc(c, n0, NR), ci(c, N), "");
    LLVMBasicBlockRef copy = block(c, "pack_b"), go = block(c, "tile");
    LLVMBuildCondBr(B, LLVMBuildAnd(B, fresh, full, ""), copy, go);
    LLVMPositionBuilderAtEnd(B, copy);
    pack_b(c, n, ti, n0, panel_b);
    LLVMBuildStore(B, col, packed);
    LLVMBuildBr(B, go);
    LLVMPositionBuilderAtEnd(B, go);
  }
  tile_at(c, kn, ti, m0, n0, NULL, panel_b);
}

// Row m0 + r of a packed matmul's A, rows past M repeating the last.
static V packed_row(Cg *c, int64_t M, V m0, int r) {
  V row = addc(c, m0, r);
  if (M % MATMUL_MR == 0) return row;
  return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, row, ci(c, M), ""), row, ci(c, M - 1), "");
}

// The panel entry k * MATMUL_MR + r.
static V panel_at(Cg *c, V panel, V k, int r) {
  V at = addc(c, mulc(c, k, MATMUL_MR), r);
  return LLVMBuildGEP2(c->b, c->f32, panel, &at, 1, "");
}

// Packs the rows of A from m0 through the expression layer, element by
// element: an im2col of an image computed inline (a fused pointwise op).
static void pack_rows(Cg *c, const Node *n, V *ti, V m0, int64_t K, V panel) {
  const Node *a = n->src[0];
  int nd = n->shape.ndim, ab = a->shape.ndim - 2;
  Loop L;
  loop_open(c, &L, ci(c, 0), ci(c, K), 0, NULL);
  for (int r = 0; r < MATMUL_MR; r++) {
    V ai[MAX_DIMS];
    for (int d = 0; d < ab; d++) ai[d] = a->shape.d[d] == 1 ? ci(c, 0) : ti[d + nd - 2 - ab];
    ai[ab] = packed_row(c, n->shape.d[nd - 2], m0, r);
    ai[ab + 1] = L.i;
    V v = emit_value(c, a, ai);
    if (n->tf32) v = round_tf32(c, v);
    LLVMBuildStore(c->b, v, panel_at(c, panel, L.i, r));
  }
  loop_close(c, &L, NULL);
}

// Packs the rows of A from m0 when A is the im2col of a stored image x
// [N, C, H, W]: each row's window origin is computed once, then loops over
// (channel, kh, kw) read x with no division, zero outside the image. The
// values are those of the im2col's expression (kernel_conv), so packed and
// unpacked kernels agree bit for bit.
static void pack_image(Cg *c, const Node *n, V *ti, V m0, V panel) {
  LLVMBuilderRef B = c->b;
  const Node *a = n->src[0], *x = a->src[0];
  const int *st = a->p.conv.stride, *pd = a->p.conv.pad, *dl = a->p.conv.dil;
  int64_t M = n->shape.d[n->shape.ndim - 2], OW = a->p.conv.grid[1];
  int64_t C = x->shape.d[1], H = x->shape.d[2], W = x->shape.d[3], KH = a->p.conv.kernel[0], KW = a->p.conv.kernel[1];
  V ih0[MATMUL_MR], iw0[MATMUL_MR];
  for (int r = 0; r < MATMUL_MR; r++) {
    V row = packed_row(c, M, m0, r);
    ih0[r] = addc(c, mulc(c, LLVMBuildUDiv(B, row, ci(c, OW), ""), st[0]), -pd[0]);
    iw0[r] = addc(c, mulc(c, LLVMBuildURem(B, row, ci(c, OW), ""), st[1]), -pd[1]);
  }
  V image = mulc(c, a->shape.d[0] == 1 ? ci(c, 0) : ti[0], C * H * W);
  Loop Lc, Lh, Lw;
  loop_open(c, &Lc, ci(c, 0), ci(c, C), 0, NULL);
  V plane = LLVMBuildAdd(B, image, mulc(c, Lc.i, H * W), "");
  loop_open(c, &Lh, ci(c, 0), ci(c, KH), 0, NULL);
  V dh = mulc(c, Lh.i, dl[0]);
  loop_open(c, &Lw, ci(c, 0), ci(c, KW), 0, NULL);
  V dw = mulc(c, Lw.i, dl[1]);
  V k = LLVMBuildAdd(B, mulc(c, LLVMBuildAdd(B, mulc(c, Lc.i, KH), Lh.i, ""), KW), Lw.i, "");
  for (int r = 0; r < MATMUL_MR; r++) {
    V ih = LLVMBuildAdd(B, ih0[r], dh, ""), iw = LLVMBuildAdd(B, iw0[r], dw, "");
    V ok = LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntULT, ih, ci(c, H), ""), LLVMBuildICmp(B, LLVMIntULT, iw, ci(c, W), ""), "");
    V at = LLVMBuildAdd(B, plane, LLVMBuildAdd(B, mulc(c, ih, W), iw, ""), "");
    V v = LLVMBuildSelect(B, ok, load_at(c, x, LLVMBuildSelect(B, ok, at, ci(c, 0), "")), cf(c, 0), "");
    v = round_value(c, v, a->dtype);
    if (n->tf32) v = round_tf32(c, v);
    LLVMBuildStore(B, v, panel_at(c, panel, k, r));
  }
  loop_close(c, &Lw, NULL);
  loop_close(c, &Lh, NULL);
  loop_close(c, &Lc, NULL);
}

// Iteration t of a packed matmul (implicit GEMM): the MATMUL_MR rows of A
// from m0 are computed once, k-major into the panel (rows past M repeat the
// last), and every column tile of those rows reads them there. A is an
// im2col never stored, so the window rows come from the image as they are
// packed, and the panel is still in cache when the tiles read it.
static void emit_packed(Cg *c, const Kernel *kn, V t, V panel) {
  const Node *n = kn->root, *a = n->src[0];
  const int NR = c->plan->nr;
  int nd = n->shape.ndim, ab = a->shape.ndim - 2;
  int64_t M = n->shape.d[nd - 2], N = n->shape.d[nd - 1], K = a->shape.d[ab + 1];
  Shape tiles = n->shape;
  tiles.ndim -= 2;
  tiles.d[tiles.ndim++] = (M + MATMUL_MR - 1) / MATMUL_MR;
  V ti[MAX_DIMS];
  delinearize(c, t, &tiles, ti);
  V m0 = mulc(c, ti[tiles.ndim - 1], MATMUL_MR);
  if (c->plan->slot[a->src[0]->id] >= 0) pack_image(c, n, ti, m0, panel);
  else pack_rows(c, n, ti, m0, K, panel);
  Loop J;
  loop_open(c, &J, ci(c, 0), ci(c, (N + NR - 1) / NR), 0, NULL);
  tile_at(c, kn, ti, m0, mulc(c, J.i, NR), panel, NULL);
  loop_close(c, &J, NULL);
}

// x (an i64) truncated to i32 in each of n lanes.
static V splat_i32(Cg *c, V x, int n) {
  return splat(c, LLVMBuildTrunc(c->b, x, c->i32, ""), LLVMVectorType(c->i32, (unsigned)n));
}

// Packs the window values of output positions p0 .. p0 + NR of image img
// into the panel, k * NR + j for window value k of position p0 + j:
// im2col^T's rows for one column tile, zero past the last position. From
// the image's buffer where it has one (a masked gather of NR lanes per
// window value, zero outside the image), else through the expression layer; the values
// are the im2col's either way, so packed and unpacked kernels agree bit for
// bit. The lanes j are the inner loop, stored contiguously.
static void pack_windows(Cg *c, const Node *n, const Node *cols, V img, V p0, V panel) {
  LLVMBuilderRef B = c->b;
  const Node *x = cols->src[0];
  const int NR = c->plan->nr;
  int64_t P = cols->shape.d[1], Q = cols->shape.d[2], OW = cols->p.conv.grid[1];
  // lanes index a plane in 32 bits
  if (c->plan->slot[x->id] < 0 || x->shape.d[2] * x->shape.d[3] > INT32_MAX || P + NR > INT32_MAX) {
    Loop Lk, Lj;
    loop_open(c, &Lk, ci(c, 0), ci(c, Q), 0, NULL);
    loop_open(c, &Lj, ci(c, 0), ci(c, NR), 0, NULL);
    V p = LLVMBuildAdd(B, p0, Lj.i, ""), inside = LLVMBuildICmp(B, LLVMIntSLT, p, ci(c, P), "");
    LLVMBasicBlockRef get = block(c, "window"), put = block(c, "put"), pre = LLVMGetInsertBlock(B);
    LLVMBuildCondBr(B, inside, get, put);
    LLVMPositionBuilderAtEnd(B, get);
    V v = emit_value(c, cols, (V[]){cols->shape.d[0] == 1 ? ci(c, 0) : img, p, Lk.i});
    if (n->tf32) v = round_tf32(c, v);
    LLVMBasicBlockRef got = LLVMGetInsertBlock(B);
    LLVMBuildBr(B, put);
    LLVMPositionBuilderAtEnd(B, put);
    V val = LLVMBuildPhi(B, c->f32, "w");
    V zero = cf(c, 0);
    LLVMAddIncoming(val, &zero, &pre, 1);
    LLVMAddIncoming(val, &v, &got, 1);
    V at = LLVMBuildAdd(B, mulc(c, Lk.i, NR), Lj.i, "");
    LLVMBuildStore(B, val, LLVMBuildGEP2(B, c->f32, panel, &at, 1, ""));
    loop_close(c, &Lj, NULL);
    loop_close(c, &Lk, NULL);
    return;
  }
  // the NR lanes as vectors: each lane's window origin once per tile, then
  // for each (channel, kh, kw) a masked gather of the image row by row
  const int *st = cols->p.conv.stride, *pd = cols->p.conv.pad, *dl = cols->p.conv.dil;
  int64_t C = x->shape.d[1], H = x->shape.d[2], W = x->shape.d[3], KH = cols->p.conv.kernel[0], KW = cols->p.conv.kernel[1];
  LLVMTypeRef et = storage_type(c, x->dtype), iv = LLVMVectorType(c->i32, NR), sv = LLVMVectorType(et, NR);
  V lane[MATMUL_MAX_NR];
  for (int j = 0; j < NR; j++) lane[j] = LLVMConstInt(c->i32, (unsigned)j, false);
  V pv = LLVMBuildAdd(B, splat_i32(c, p0, NR), LLVMConstVector(lane, (unsigned)NR), "");
  V inside = LLVMBuildICmp(B, LLVMIntSLT, pv, splat_i32(c, ci(c, P), NR), "");
  V ih0 = LLVMBuildSub(B, LLVMBuildMul(B, LLVMBuildUDiv(B, pv, splat_i32(c, ci(c, OW), NR), ""), splat_i32(c, ci(c, st[0]), NR), ""),
                       splat_i32(c, ci(c, pd[0]), NR), "");
  V iw0 = LLVMBuildSub(B, LLVMBuildMul(B, LLVMBuildURem(B, pv, splat_i32(c, ci(c, OW), NR), ""), splat_i32(c, ci(c, st[1]), NR), ""),
                       splat_i32(c, ci(c, pd[1]), NR), "");
  LLVMTypeRef gather_types[2] = {sv, LLVMVectorType(c->ptr, NR)};
  unsigned gather_id = LLVMLookupIntrinsicID("llvm.masked.gather", 18);
  LLVMValueRef gather = LLVMGetIntrinsicDeclaration(c->mod, gather_id, gather_types, 2);
  LLVMTypeRef gather_fn = LLVMIntrinsicGetType(c->cx, gather_id, gather_types, 2);
  V image = LLVMBuildGEP2(B, et, buffer_ptr(c, x), (V[]){mulc(c, cols->shape.d[0] == 1 ? ci(c, 0) : img, C * H * W)}, 1, "");
  Loop Lc, Lh, Lw;
  loop_open(c, &Lc, ci(c, 0), ci(c, C), 0, NULL);
  V plane = LLVMBuildGEP2(B, et, image, (V[]){mulc(c, Lc.i, H * W)}, 1, "");
  loop_open(c, &Lh, ci(c, 0), ci(c, KH), 0, NULL);
  V ih = LLVMBuildAdd(B, ih0, splat_i32(c, mulc(c, Lh.i, dl[0]), NR), "");
  V row_ok = LLVMBuildAnd(B, inside, LLVMBuildICmp(B, LLVMIntULT, ih, splat_i32(c, ci(c, H), NR), ""), "");
  V row = LLVMBuildMul(B, ih, splat_i32(c, ci(c, W), NR), "");
  loop_open(c, &Lw, ci(c, 0), ci(c, KW), 0, NULL);
  V iw = LLVMBuildAdd(B, iw0, splat_i32(c, mulc(c, Lw.i, dl[1]), NR), "");
  V ok = LLVMBuildAnd(B, row_ok, LLVMBuildICmp(B, LLVMIntULT, iw, splat_i32(c, ci(c, W), NR), ""), "");
  V off = LLVMBuildSelect(B, ok, LLVMBuildAdd(B, row, iw, ""), LLVMConstNull(iv), "");
  V ptrs = LLVMBuildGEP2(B, et, plane, &off, 1, "");
  V v = LLVMBuildCall2(B, gather_fn, gather, (V[]){ptrs, ok, LLVMConstNull(sv)}, 3, "");
  if (x->dtype != DT_F32) v = LLVMBuildFPExt(B, v, LLVMVectorType(c->f32, NR), "");
  v = round_value(c, v, cols->dtype);
  if (n->tf32) v = round_tf32(c, v);
  V k = LLVMBuildAdd(B, mulc(c, LLVMBuildAdd(B, mulc(c, Lc.i, KH), Lh.i, ""), KW), Lw.i, "");
  V put = LLVMBuildStore(B, v, LLVMBuildGEP2(B, c->f32, panel, (V[]){mulc(c, k, NR)}, 1, ""));
  LLVMSetAlignment(put, 64);
  loop_close(c, &Lw, NULL);
  loop_close(c, &Lh, NULL);
  loop_close(c, &Lc, NULL);
}

// Iteration t of a forward convolution's GEMM y [N, O, P] = W [O, Q] @
// im2col^T (Kernel.packed_windows): column tile t % tiles of image t / tiles.
// Its window values are packed once into the panel, then every
// MATMUL_MR-row tile of W runs against it, storing rows of NCHW output.
static void emit_packed_windows(Cg *c, const Kernel *kn, V t, V panel) {
  LLVMBuilderRef B = c->b;
  const Node *n = kn->root, *cols;
  matmul_conv_fwd(n, &cols);
  const int NR = c->plan->nr;
  int64_t O = n->shape.d[1], P = cols->shape.d[1], tiles = (P + NR - 1) / NR;
  V ti[MAX_DIMS] = {LLVMBuildUDiv(B, t, ci(c, tiles), "")};
  V p0 = mulc(c, LLVMBuildURem(B, t, ci(c, tiles), ""), NR);
  pack_windows(c, n, cols, ti[0], p0, panel);
  V left = LLVMBuildSub(B, ci(c, P), p0, "");
  V ncols = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, left, ci(c, NR), ""), left, ci(c, NR), "");
  Loop R;
  loop_open(c, &R, ci(c, 0), ci(c, (O + MATMUL_MR - 1) / MATMUL_MR), 0, NULL);
  tile_vector(c, kn, ti, mulc(c, R.i, MATMUL_MR), p0, NULL, panel, P % NR ? ncols : NULL);
  loop_close(c, &R, NULL);
}

// Output rows of one image in a block of a weight gradient's GEMM: as many
// as 16 KB of nr window columns hold (at least one), the image's rows cut
// evenly. Every row tile of dW reads the block, so it should stay in L1
// (a 48 KB block was 2.4 times slower per FLOP on a 32 KB L1).
#define DW_BLOCK 4096
static int64_t dw_block_rows(int64_t OH, int64_t OW, int nr) {
  int64_t most = DW_BLOCK / (OW * nr), blocks;
  if (most < 1) most = 1;
  blocks = (OH + most - 1) / most;
  return (OH + blocks - 1) / blocks;
}

// Packs window columns q0 .. q0 + NR of output rows oh0 .. oh0 + rows of
// image `image` into the panel, (row * OW + ow) * NR + j; columns past Q
// are zero. Each column is one (channel, kh, kw), so along ow it reads one
// row of the image in steps of the stride: no division inside the rows.
static void pack_columns(Cg *c, const Node *cols, V image, V q0, V oh0, V rows, V panel) {
  LLVMBuilderRef B = c->b;
  const Node *x = cols->src[0];
  const int NR = c->plan->nr;
  const int *st = cols->p.conv.stride, *pd = cols->p.conv.pad, *dl = cols->p.conv.dil;
  int64_t C = x->shape.d[1], H = x->shape.d[2], W = x->shape.d[3], KH = cols->p.conv.kernel[0], KW = cols->p.conv.kernel[1];
  int64_t OW = cols->p.conv.grid[1], Q = cols->shape.d[2];
  Loop Lj, Lr, Lw;
  loop_open(c, &Lj, ci(c, 0), ci(c, NR), 0, NULL);
  V q = LLVMBuildAdd(B, q0, Lj.i, "");
  V valid = LLVMBuildICmp(B, LLVMIntSLT, q, ci(c, Q), "");
  q = LLVMBuildSelect(B, valid, q, ci(c, 0), "");
  V ch = LLVMBuildUDiv(B, q, ci(c, KH * KW), "");
  V kh = LLVMBuildURem(B, LLVMBuildUDiv(B, q, ci(c, KW), ""), ci(c, KH), "");
  V kw = LLVMBuildURem(B, q, ci(c, KW), "");
  V plane = mulc(c, LLVMBuildAdd(B, mulc(c, image, C), ch, ""), H * W);
  V dw = addc(c, mulc(c, kw, dl[1]), -pd[1]);
  loop_open(c, &Lr, ci(c, 0), rows, 0, NULL);
  V ih = LLVMBuildAdd(B, mulc(c, LLVMBuildAdd(B, oh0, Lr.i, ""), st[0]), addc(c, mulc(c, kh, dl[0]), -pd[0]), "");
  V row_ok = LLVMBuildAnd(B, valid, LLVMBuildICmp(B, LLVMIntULT, ih, ci(c, H), ""), "");
  V base = LLVMBuildAdd(B, plane, mulc(c, ih, W), "");
  V at0 = mulc(c, Lr.i, OW);
  loop_open(c, &Lw, ci(c, 0), ci(c, OW), 0, NULL);
  V iw = LLVMBuildAdd(B, mulc(c, Lw.i, st[1]), dw, "");
  V ok = LLVMBuildAnd(B, row_ok, LLVMBuildICmp(B, LLVMIntULT, iw, ci(c, W), ""), "");
  V v = LLVMBuildSelect(B, ok, load_at(c, x, LLVMBuildSelect(B, ok, LLVMBuildAdd(B, base, iw, ""), ci(c, 0), "")), cf(c, 0), "");
  v = round_value(c, v, cols->dtype);
  if (c->kernel->root->tf32) v = round_tf32(c, v);
  V at = LLVMBuildAdd(B, mulc(c, LLVMBuildAdd(B, at0, Lw.i, ""), NR), Lj.i, "");
  LLVMBuildStore(B, v, LLVMBuildGEP2(B, c->f32, panel, &at, 1, ""));
  loop_close(c, &Lw, NULL);
  loop_close(c, &Lr, NULL);
  loop_close(c, &Lj, NULL);
}

// Iteration t of a weight gradient's GEMM (Kernel.packed_b): columns q0 ..
// q0 + NR of dW [O, Q] = g(dy) [O, N * P] @ im2col [N * P, Q]. For each block
// of output rows of each image, the block's window columns are packed from
// the image, then every MATMUL_MR-row tile of dW adds the block's products
// into its rows of the strip (dW's columns q0.., on the stack); each sum runs
// over (image, position) in order, as one long product would. The strip is
// stored at the end, element by element through the kernel's epilogue.
static void emit_packed_b(Cg *c, const Kernel *kn, V t, V panel, V strip) {
  LLVMBuilderRef B = c->b;
  const Node *n = kn->root, *grad, *cols;
  matmul_conv_dw(n, &grad, &cols);
  grad = matmul_operand_buffer(c->plan, grad);
  const int NR = c->plan->nr;
  LLVMTypeRef vt = LLVMVectorType(c->f32, NR);
  int64_t O = n->shape.d[0], Q = n->shape.d[1], N = cols->shape.d[0], P = cols->shape.d[1];
  int64_t OH = cols->p.conv.grid[0], OW = cols->p.conv.grid[1];
  int64_t R = dw_block_rows(OH, OW, NR), tiles = (O + MATMUL_MR - 1) / MATMUL_MR;
  V q0 = mulc(c, t, NR), zero = LLVMConstNull(vt);
  Loop Lz;
  loop_open(c, &Lz, ci(c, 0), ci(c, tiles * MATMUL_MR), 0, NULL);
  V zst = LLVMBuildStore(B, zero, LLVMBuildGEP2(B, c->f32, strip, (V[]){mulc(c, Lz.i, NR)}, 1, ""));
  LLVMSetAlignment(zst, 64);
  loop_close(c, &Lz, NULL);
  Loop Ln, Lb, Li;
  loop_open(c, &Ln, ci(c, 0), ci(c, N), 0, NULL);
  loop_open(c, &Lb, ci(c, 0), ci(c, (OH + R - 1) / R), 0, NULL);
  V oh0 = mulc(c, Lb.i, R), left = LLVMBuildSub(B, ci(c, OH), oh0, "");
  V rows = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, left, ci(c, R), ""), left, ci(c, R), "");
  pack_columns(c, cols, Ln.i, q0, oh0, rows, panel);
  V kc = mulc(c, rows, OW), p0 = mulc(c, oh0, OW);
  loop_open(c, &Li, ci(c, 0), ci(c, tiles), 0, NULL);
  V m0 = mulc(c, Li.i, MATMUL_MR), acc[MATMUL_MR], sp[MATMUL_MR], gbase[MATMUL_MR];
  for (int r = 0; r < MATMUL_MR; r++) {
    sp[r] = LLVMBuildGEP2(B, c->f32, strip, (V[]){mulc(c, addc(c, m0, r), NR)}, 1, "");
    acc[r] = LLVMBuildLoad2(B, vt, sp[r], "acc");
    LLVMSetAlignment(acc[r], 64);
    V row = addc(c, m0, r);   // rows past O read dy's last and land in the strip's spare rows
    if (O % MATMUL_MR) row = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, row, ci(c, O), ""), row, ci(c, O - 1), "");
    gbase[r] = LLVMBuildAdd(B, mulc(c, LLVMBuildAdd(B, mulc(c, Ln.i, O), row, ""), P), p0, "");
  }
  // the accumulators are loop-carried values of the k loop
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(B), head = block(c, "k"), body = block(c, "kbody"), done = block(c, "kdone");
  LLVMBuildBr(B, head);
  LLVMPositionBuilderAtEnd(B, head);
  V k = LLVMBuildPhi(B, c->i64, "k"), z = ci(c, 0), phi[MATMUL_MR];
  LLVMAddIncoming(k, &z, &pre, 1);
  for (int r = 0; r < MATMUL_MR; r++) {
    phi[r] = LLVMBuildPhi(B, vt, "acc");
    LLVMAddIncoming(phi[r], &acc[r], &pre, 1);
  }
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, k, kc, ""), body, done);
  LLVMPositionBuilderAtEnd(B, body);
  V bv = LLVMBuildLoad2(B, vt, LLVMBuildGEP2(B, c->f32, panel, (V[]){mulc(c, k, NR)}, 1, ""), "b");
  LLVMSetAlignment(bv, 64);
  V next[MATMUL_MR];
  for (int r = 0; r < MATMUL_MR; r++) {
    V av = load_at(c, grad, LLVMBuildAdd(B, gbase[r], k, ""));
    av = round_value(c, av, grad->dtype);
    if (n->tf32) av = round_tf32(c, av);
    next[r] = row_fma(c, av, bv, phi[r]);
  }
  V k1 = addc(c, k, 1);
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(B);
  LLVMAddIncoming(k, &k1, &latch, 1);
  for (int r = 0; r < MATMUL_MR; r++) LLVMAddIncoming(phi[r], &next[r], &latch, 1);
  LLVMBuildBr(B, head);
  LLVMPositionBuilderAtEnd(B, done);
  for (int r = 0; r < MATMUL_MR; r++) LLVMSetAlignment(LLVMBuildStore(B, phi[r], sp[r]), 64);
  loop_close(c, &Li, NULL);
  loop_close(c, &Lb, NULL);
  loop_close(c, &Ln, NULL);
  // dW's columns q0.. from the strip, those inside dW
  Loop Lo, Lj;
  loop_open(c, &Lo, ci(c, 0), ci(c, O), 0, NULL);
  loop_open(c, &Lj, ci(c, 0), ci(c, NR), 0, NULL);
  V q = LLVMBuildAdd(B, q0, Lj.i, "");
  LLVMBasicBlockRef put = block(c, "put"), skip = block(c, "skip");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, q, ci(c, Q), ""), put, skip);
  LLVMPositionBuilderAtEnd(B, put);
  V at = LLVMBuildAdd(B, mulc(c, Lo.i, NR), Lj.i, "");
  V v = LLVMBuildLoad2(B, c->f32, LLVMBuildGEP2(B, c->f32, strip, &at, 1, ""), "dw");
  kernel_store(c, kn, LLVMBuildAdd(B, mulc(c, Lo.i, Q), q, ""), v);
  LLVMBuildBr(B, skip);
  LLVMPositionBuilderAtEnd(B, skip);
  loop_close(c, &Lj, NULL);
  loop_close(c, &Lo, NULL);
}

// Row `row` of a scatter_add y [V, C] (Kernel.scatter_rows): the ids are
// walked once, each value row whose id is `row` added into the row's sums on
// the stack, in the ids' order, then the row is stored through the epilogue.
// Each element is the sum the element-wise kernel makes (which adds a zero
// for every other id, an exact no-op: a sum from +0 is never -0), and an id
// outside [0, V) sets the error word as there.
static void emit_scatter_row(Cg *c, const Kernel *k, V row) {
  LLVMBuilderRef B = c->b;
  const Node *n = k->root, *ids = n->src[0], *vals = n->src[1];
  int64_t V_ = n->shape.d[0], C = n->shape.d[1];
  V acc = attn_array(c, c->f32, C, "sums");
  Loop Z, L, J, O;
  loop_open(c, &Z, ci(c, 0), ci(c, C), 0, NULL);
  LLVMBuildStore(B, cf(c, 0), LLVMBuildGEP2(B, c->f32, acc, &Z.i, 1, ""));
  loop_close(c, &Z, NULL);
  loop_open(c, &L, ci(c, 0), ci(c, shape_numel(&ids->shape)), 0, NULL);
  V ji[MAX_DIMS + 1];
  delinearize(c, L.i, &ids->shape, ji);
  V id = emit_value(c, ids, ji);
  flag_unless(c, n, LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntSGE, id, ci(c, 0), ""), LLVMBuildICmp(B, LLVMIntSLT, id, ci(c, V_), ""), ""));
  LLVMBasicBlockRef add = block(c, "mine"), next = block(c, "notmine");
  LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntEQ, id, row, ""), add, next);
  LLVMPositionBuilderAtEnd(B, add);
  loop_open(c, &J, ci(c, 0), ci(c, C), 0, NULL);
  ji[ids->shape.ndim] = J.i;
  V at = LLVMBuildGEP2(B, c->f32, acc, &J.i, 1, "");
  LLVMBuildStore(B, LLVMBuildFAdd(B, LLVMBuildLoad2(B, c->f32, at, ""), emit_value(c, vals, ji), ""), at);
  loop_close(c, &J, NULL);
  LLVMBuildBr(B, next);
  LLVMPositionBuilderAtEnd(B, next);
  loop_close(c, &L, NULL);
  loop_open(c, &O, ci(c, 0), ci(c, C), 0, NULL);
  V sum = LLVMBuildLoad2(B, c->f32, LLVMBuildGEP2(B, c->f32, acc, &O.i, 1, ""), "");
  kernel_store(c, k, LLVMBuildAdd(B, mulc(c, row, C), O.i, ""), sum);
  loop_close(c, &O, NULL);
}

// A distinct empty metadata node of c's context, the access group of the
// element loops: parsed once (the C API has no call that makes one), in a
// module kept until cg_close. NULL if that fails (the loops stay as they are).
static LLVMMetadataRef access_group(Cg *c) {
  if (c->access_group || c->group_mod) return c->access_group;
  static const char text[] = "define void @g() {\n  ret void, !smelt.group !0\n}\n!0 = distinct !{}\n";
  LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRangeCopy(text, sizeof text - 1, "access group");
  char *msg = NULL;
  bool failed = LLVMParseIRInContext2(c->cx, buf, &c->group_mod, &msg);
  LLVMDisposeMemoryBuffer(buf);
  if (msg) LLVMDisposeMessage(msg);
  if (failed) return NULL;
  V ret = LLVMGetFirstInstruction(LLVMGetFirstBasicBlock(LLVMGetFirstFunction(c->group_mod)));
  V md = LLVMGetMetadata(ret, LLVMGetMDKindIDInContext(c->cx, "smelt.group", 11));
  c->access_group = md ? LLVMValueAsMetadata(md) : NULL;
  return c->access_group;
}

// Whether ptr is an address in one of the kernel's buffers: not on its stack
// (an alloca), not the run's context (the error word).
static bool buffer_address(Cg *c, V ptr) {
  while (LLVMIsAGetElementPtrInst(ptr)) ptr = LLVMGetOperand(ptr, 0);
  return !LLVMIsAAllocaInst(ptr) && ptr != LLVMGetParam(c->fn, 3);
}

// Declares the loop whose latch branch is br parallel (LangRef's
// llvm.loop.parallel_accesses): every load and store of a buffer in the
// function joins the access group. An element loop's iterations touch
// disjoint elements (an output reused in place is read and written at one
// element, by one iteration), so LLVM may vectorize it without the run-time
// overlap checks that fail for a buffer reused in place. A loop with any
// other access (a stack array, the error word) is not parallel by this rule,
// and LLVM treats it as before.
static void mark_parallel(Cg *c, V br) {
  LLVMMetadataRef group = access_group(c);
  if (!group) return;
  unsigned kind = LLVMGetMDKindIDInContext(c->cx, "llvm.access.group", 17);
  V gv = LLVMMetadataAsValue(c->cx, group);
  for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(c->fn); bb; bb = LLVMGetNextBasicBlock(bb))
    for (V in = LLVMGetFirstInstruction(bb); in; in = LLVMGetNextInstruction(in)) {
      bool load = LLVMIsALoadInst(in), store = LLVMIsAStoreInst(in);
      if ((load || store) && buffer_address(c, LLVMGetOperand(in, load ? 0 : 1))) LLVMSetMetadata(in, kind, gv);
    }
  LLVMMetadataRef self = LLVMTemporaryMDNode(c->cx, NULL, 0);
  LLVMMetadataRef parallel[2] = {LLVMMDStringInContext2(c->cx, "llvm.loop.parallel_accesses", 27), group};
  LLVMMetadataRef ops[2] = {self, LLVMMDNodeInContext2(c->cx, parallel, 2)};
  LLVMMetadataRef loop = LLVMMDNodeInContext2(c->cx, ops, 2);
  LLVMMetadataReplaceAllUsesWith(self, loop);   // the loop's id refers to itself, as LangRef asks
  LLVMSetMetadata(br, LLVMGetMDKindIDInContext(c->cx, "llvm.loop", 9), LLVMMetadataAsValue(c->cx, loop));
}

// The elements [begin, end) of an element-wise kernel as rows of its root's
// last axis: the outer loop takes a row's index apart once, the inner one
// runs along the axis, where contiguous operands are read at consecutive
// addresses and an operand broadcast along the rows (a bias) at the axis's
// own index. LLVM vectorizes that loop as it is; over a flat index, the
// broadcast index i mod W needed a run-time check that failed for any range
// longer than a row, and the loop ran scalar (GELU after a linear: 3 ms
// where 0.3 ms was possible). Each element's value is computed as before.
#define ROW_LOOP_MIN 8

// The kernel's element at column j of the row at base (idx: the row's index).
static void row_element(Cg *c, const Kernel *k, V *idx, V base, V j) {
  const Node *n = k->root;
  idx[n->shape.ndim - 1] = j;
  V lin = LLVMBuildAdd(c->b, base, j, "");
  c->out_shape = &n->shape;
  memcpy(c->out_idx, idx, sizeof c->out_idx);
  c->out_lin = lin;
  kernel_store(c, k, lin, kernel_value(c, k, idx, lin));
}

// The columns [from, to) of a row, one by one.
static void row_columns(Cg *c, const Kernel *k, V *idx, V base, V from, V to) {
  Loop J;
  loop_open(c, &J, from, to, 0, NULL);
  row_element(c, k, idx, base, J.i);
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
  loop_close(c, &J, NULL);
  mark_parallel(c, LLVMGetBasicBlockTerminator(latch));
}

// A pool gradient computed in kernel k at its root's index, whose windows
// tile the rows (pool_row_step), or NULL. Its row loop can step over windows.
static const Node *row_pool_gradient(Cg *c, const Kernel *k, const Node *n, int depth) {
  const Shape *r = &k->root->shape;
  if (pool_row_step(n) && r->ndim == 4 && !memcmp(n->shape.d, r->d, sizeof r->d[0] * 4)) return n;
  if (depth == 8) return NULL;
  for (int s = 0; s < n->nsrc; s++)
    if (c->plan->slot[n->src[s]->id] < 0) {
      const Node *p = row_pool_gradient(c, k, n->src[s], depth + 1);
      if (p) return p;
    }
  return NULL;
}

static void emit_by_rows(Cg *c, const Kernel *k) {
  LLVMBuilderRef B = c->b;
  const Node *n = k->root;
  int nd = n->shape.ndim;
  int64_t W = n->shape.d[nd - 1];
  V begin = LLVMGetParam(c->fn, 1), end = LLVMGetParam(c->fn, 2);
  Shape rows = n->shape;
  rows.ndim--;
  Loop R;
  loop_open(c, &R, LLVMBuildSDiv(B, begin, ci(c, W), ""), LLVMBuildSDiv(B, addc(c, end, W - 1), ci(c, W), ""), 0, NULL);
  V base = mulc(c, R.i, W);
  V from = clamp_i64(c, LLVMBuildSub(B, begin, base, ""), 0, W), to = clamp_i64(c, LLVMBuildSub(B, end, base, ""), 0, W);
  V idx[MAX_DIMS];
  delinearize(c, R.i, &rows, idx);
  const Node *pool = NULL;
  for (int o = 0; o < k->nouts && !pool; o++) pool = row_pool_gradient(c, k, k->outs[o], 0);
  if (!pool) pool = row_pool_gradient(c, k, n, 0);
  if (!pool) {
    row_columns(c, k, idx, base, from, to);
  } else {
    // A pool gradient's columns window by window: columns ow * s + j, j < s,
    // in one iteration, which finds the window's maximum once for its s
    // columns; its loads and stores are interleaved groups the vectorizer
    // handles. The columns before the
    // first whole window and after the last run one by one.
    int s = pool_row_step(pool);
    int64_t OW = (pool->op == OP_POOL_MAX_DX ? pool->src[1] : pool->src[0])->shape.d[3];
    V first = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, to, from, ""), to, from, "");
    V a = LLVMBuildMul(B, LLVMBuildUDiv(B, addc(c, first, s - 1), ci(c, s), ""), ci(c, s), "");
    a = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, a, to, ""), to, a, "");
    V last = LLVMBuildMul(B, LLVMBuildUDiv(B, to, ci(c, s), ""), ci(c, s), "");
    last = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, last, ci(c, OW * s), ""), ci(c, OW * s), last, "");
    V b = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, last, a, ""), a, last, "");
    row_columns(c, k, idx, base, from, a);
    Loop J;
    loop_open(c, &J, LLVMBuildUDiv(B, a, ci(c, s), ""), LLVMBuildUDiv(B, b, ci(c, s), ""), 0, NULL);
    pool_row_begin(c, pool, idx, J.i);
    for (int j = 0; j < s; j++) {
      c->pool_iw = LLVMBuildAdd(B, mulc(c, J.i, s), ci(c, j), "");
      row_element(c, k, idx, base, c->pool_iw);
    }
    pool_row_end(c);
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(B);
    loop_close(c, &J, NULL);
    mark_parallel(c, LLVMGetBasicBlockTerminator(latch));
    row_columns(c, k, idx, base, b, to);
  }
  loop_close(c, &R, NULL);
  LLVMBuildRetVoid(B);
}

// One kernel: for i in [begin, end): idx = index of i in the root's shape;
// the outputs at i from the root's value at idx.
static void emit_kernel(Cg *c, const Kernel *k) {
  LLVMTypeRef params[4] = {c->ptr, c->i64, c->i64, c->ptr};
  LLVMTypeRef ft = LLVMFunctionType(LLVMVoidTypeInContext(c->cx), params, 4, false);
  c->fn = LLVMAddFunction(c->mod, k->name, ft);
  for (int i = 0; i < 4; i += 3) LLVMAddAttributeAtIndex(c->fn, (unsigned)i + 1,
      LLVMCreateEnumAttribute(c->cx, LLVMGetEnumAttributeKindForName("noalias", 7), 0));
  c->bufs = LLVMGetParam(c->fn, 0);
  LLVMPositionBuilderAtEnd(c->b, block(c, "entry"));
  V ctx = LLVMGetParam(c->fn, 3), one = ci(c, 1), two = ci(c, 2);
  c->seed = LLVMBuildLoad2(c->b, c->i64, ctx, "seed");
  c->step = LLVMBuildLoad2(c->b, c->i64, LLVMBuildGEP2(c->b, c->i64, ctx, &one, 1, ""), "step");
  c->errp = LLVMBuildGEP2(c->b, c->i64, ctx, &two, 1, "err");
  c->out_lin = NULL;
  c->kernel = k;
  const Node *n = k->root;
  V panel = NULL;   // a packed matmul's rows of A, a static alloca of the entry block
  if (k->packed) {
    const Node *a = n->src[0];
    LLVMTypeRef pt = LLVMArrayType2(c->f32, (uint64_t)(MATMUL_MR * a->shape.d[a->shape.ndim - 1]));
    panel = LLVMBuildAlloca(c->b, pt, "panel");
    LLVMSetAlignment(panel, 64);
  }
  if (k->packed_windows) {   // a column tile's window values, Q x nr
    const Node *cols;
    matmul_conv_fwd(n, &cols);
    panel = LLVMBuildAlloca(c->b, LLVMArrayType2(c->f32, (uint64_t)(cols->shape.d[2] * c->plan->nr)), "panel");
    LLVMSetAlignment(panel, 64);
  }
  V strip = NULL;   // a weight gradient's columns of dW, summed over its blocks
  if (k->packed_b) {
    const Node *cols;
    matmul_conv_dw(n, NULL, &cols);
    int64_t OH = cols->p.conv.grid[0], OW = cols->p.conv.grid[1], nr = c->plan->nr;
    int64_t rows = (n->shape.d[0] + MATMUL_MR - 1) / MATMUL_MR * MATMUL_MR;
    panel = LLVMBuildAlloca(c->b, LLVMArrayType2(c->f32, (uint64_t)(dw_block_rows(OH, OW, (int)nr) * OW * nr)), "panel");
    LLVMSetAlignment(panel, 64);
    strip = LLVMBuildAlloca(c->b, LLVMArrayType2(c->f32, (uint64_t)(rows * nr)), "strip");
    LLVMSetAlignment(strip, 64);
  }
  V packed_col = NULL;   // a plain tiled matmul's copy of a column tile of B, and which it holds
  if (k->tiled && !k->packed && !k->packed_b && !k->packed_windows && matmul_packs_b(n, c->plan->nr)) {
    const Node *bm = n->src[1];
    panel = LLVMBuildAlloca(c->b, LLVMArrayType2(c->f32, (uint64_t)(bm->shape.d[bm->shape.ndim - 2] * c->plan->nr)), "panel_b");
    LLVMSetAlignment(panel, 64);
    packed_col = LLVMBuildAlloca(c->b, c->i64, "packed");
    LLVMBuildStore(c->b, ci(c, -1), packed_col);
  }
  int nd = n->shape.ndim;
  if (k->kind != KK_ATTN && !k->scatter_rows && !k->rows && !k->tiled && nd >= 1 && n->shape.d[nd - 1] >= ROW_LOOP_MIN) {
    emit_by_rows(c, k);
    return;
  }
  Loop L;
  loop_open(c, &L, LLVMGetParam(c->fn, 1), LLVMGetParam(c->fn, 2), 0, NULL);
  if (k->kind == KK_ATTN) {   // an iteration is a row of the attention's output
    attn_row(c, k, L.i);
    loop_close(c, &L, NULL);
    LLVMBuildRetVoid(c->b);
    return;
  }
  if (k->scatter_rows) {
    emit_scatter_row(c, k, L.i);
    loop_close(c, &L, NULL);
    LLVMBuildRetVoid(c->b);
    return;
  }
  if (k->rows) {   // an iteration is a row
    row_serial(c, k, L.i);
    loop_close(c, &L, NULL);
    LLVMBuildRetVoid(c->b);
    return;
  }
  if (k->tiled) {
    if (k->packed) emit_packed(c, k, L.i, panel);
    else if (k->packed_b) emit_packed_b(c, k, L.i, panel, strip);
    else if (k->packed_windows) emit_packed_windows(c, k, L.i, panel);
    else emit_tile(c, k, L.i, panel, packed_col);
    loop_close(c, &L, NULL);
    LLVMBuildRetVoid(c->b);
    return;
  }
  V idx[MAX_DIMS];
  delinearize(c, L.i, &n->shape, idx);
  c->out_shape = &n->shape;
  memcpy(c->out_idx, idx, sizeof idx);
  c->out_lin = L.i;
  kernel_store(c, k, L.i, kernel_value(c, k, idx, L.i));
  loop_close(c, &L, NULL);
  LLVMBuildRetVoid(c->b);
}

// ---- module

// The host module of plans for cpu (NULL: this machine's), emitted as an
// object (ir false, kind LLVMObjectFile), as assembly, or as LLVM IR after O3.
// The target machine for cpu (NULL: this machine's), or NULL with a message.
static LLVMTargetMachineRef host_machine(const char *cpu, char *err, size_t errlen) {
  llvm_errors_install();
  llvm_errors_at("the host module");
  host.init();
  LLVMTargetRef target;
  char *msg = NULL;
  if (LLVMGetTargetFromTriple(host.triple, &target, &msg)) {
    cg_fail(err, errlen, "no x86-64 target", msg);
    return NULL;
  }
  char *host_cpu = cpu ? NULL : LLVMGetHostCPUName();
  char *features = cpu ? NULL : LLVMGetHostCPUFeatures();
  LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, host.triple, cpu ? cpu : host_cpu, features ? features : "",
                                                    LLVMCodeGenLevelAggressive, LLVMRelocPIC, LLVMCodeModelDefault);
  if (host_cpu) LLVMDisposeMessage(host_cpu);
  if (features) LLVMDisposeMessage(features);
  return tm;
}

// The host module of plans for cpu (NULL: this machine's), emitted as an
// object (ir false, kind LLVMObjectFile), as assembly, or as LLVM IR after O3.
// It holds the bodies numbered [from, to) among the kernels that run their
// own (Kernel.same NULL), in the order of plans, under their kernels' names
// or, for one body, under symbol when that is not NULL.
static int host_module(const KernelPlan *const *plans, int nplans, const char *cpu, int from, int to,
                       const char *symbol, bool ir, LLVMCodeGenFileType kind, Blob *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  LLVMTargetMachineRef tm = host_machine(cpu, err, errlen);
  if (!tm) return -1;
  Cg c;
  cg_open(&c, &host, "smelt_host", tm);
  c.arch = cpu;
  for (int k = 0, body = 0; k < nplans; k++) {
    c.plan = plans[k];
    for (int i = 0; i < plans[k]->n; i++) {
      if (plans[k]->kernels[i].same) continue;
      int b = body++;
      if (b < from || b >= to) continue;
      llvm_errors_at("kernel %s", plans[k]->kernels[i].name);
      Kernel kn = plans[k]->kernels[i];
      if (symbol) snprintf(kn.name, sizeof kn.name, "%s", symbol);
      emit_kernel(&c, &kn);
    }
  }
  llvm_errors_at("the host module (optimizing and emitting its kernels)");
  int rc = ir ? cg_finish_ir(&c, tm, out, err, errlen) : cg_finish(&c, tm, kind, out, err, errlen);
  cg_close(&c);
  LLVMDisposeTargetMachine(tm);
  return rc;
}

int host_kernel_keys(const KernelPlan *const *plans, int nplans, const char *cpu, int from, int to, Blob *keys,
                     char *err, size_t errlen) {
  LLVMTargetMachineRef tm = host_machine(cpu, err, errlen);
  if (!tm) return -1;
  Cg c;
  cg_open(&c, &host, "smelt_host", tm);
  c.arch = cpu;
  cg_kernel_keys(&c, plans, nplans, from, to, emit_kernel, keys);
  cg_close(&c);
  LLVMDisposeTargetMachine(tm);
  return 0;
}

int codegen_host(const KernelPlan *const *plans, int nplans, const char *cpu, Blob *object,
                 char *err, size_t errlen) {
  return host_module(plans, nplans, cpu, 0, INT_MAX, NULL, false, host.emit, object, err, errlen);
}

int codegen_host_body(const KernelPlan *const *plans, int nplans, const char *cpu, int body, const char *symbol,
                      Blob *object, char *err, size_t errlen) {
  return host_module(plans, nplans, cpu, body, body + 1, symbol, false, host.emit, object, err, errlen);
}

int codegen_tile_columns(const char *cpu) {
  if (cpu) return strcmp(cpu, "x86-64-v4") == 0 ? 32 : 16;
  char *features = LLVMGetHostCPUFeatures();
  int nr = features && strstr(features, "+avx512f") ? 32 : 16;
  LLVMDisposeMessage(features);
  return nr;
}

// Writes object as a new file at path; 0, or -1 with a message.
static int write_object(const Blob *object, const char *path, char *err, size_t errlen) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
  if (!f || fwrite(object->data, 1, object->len, f) != object->len || fclose(f) != 0) {
    snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    if (!f && fd >= 0) close(fd);
    if (fd >= 0) unlink(path);
    return -1;
  }
  return 0;
}

// Runs cc -shared -o path objs... -lm, with --defsym=names[i]=symbols[i]
// for each alias; 0, or -1 with a message.
static int run_linker(const char *path, char *const *objs, int n, const char *const *names,
                      const char *const *symbols, int naliases, char *err, size_t errlen) {
  const char *cc = tool_path("cc");
  if (!cc) {
    snprintf(err, errlen, "linking the host code needs cc, which is not on PATH");
    return -1;
  }
  char tool[4096];
  snprintf(tool, sizeof tool, "%s", cc);
  const char **argv = xcalloc((size_t)n + (size_t)naliases + 6, sizeof *argv);
  char **defs = xcalloc((size_t)(naliases ? naliases : 1), sizeof *defs);
  int nargs = 0;
  argv[nargs++] = "cc", argv[nargs++] = "-shared", argv[nargs++] = "-o", argv[nargs++] = path;
  for (int i = 0; i < n; i++) argv[nargs++] = objs[i];
  for (int i = 0; i < naliases; i++) {
    size_t len = strlen(names[i]) + strlen(symbols[i]) + 24;
    defs[i] = xmalloc(len);
    snprintf(defs[i], len, "-Wl,--defsym=%s=%s", names[i], symbols[i]);
    argv[nargs++] = defs[i];
  }
  argv[nargs++] = "-lm";
  pid_t pid = fork();
  if (pid == 0) {
    execv(tool, (char *const *)argv);
    _exit(127);
  }
  free(argv);
  for (int i = 0; i < naliases; i++) free(defs[i]);
  free(defs);
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    snprintf(err, errlen, "linking '%s' with %s failed (status %d)", path, tool, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return -1;
  }
  return 0;
}

int link_shared_objects(const Blob *objects, int n, const char *const *names, const char *const *symbols, int naliases,
                        const char *path, char *err, size_t errlen) {
  size_t room = strlen(path) + 24;
  char **objs = xcalloc((size_t)n, sizeof *objs);
  int files = 0, rc = 0;
  for (; files < n && rc == 0; files++) {
    objs[files] = xmalloc(room);
    snprintf(objs[files], room, "%s.%d.o", path, files);
    rc = write_object(&objects[files], objs[files], err, errlen);
  }
  if (rc == 0) rc = run_linker(path, objs, n, names, symbols, naliases, err, errlen);
  for (int i = 0; i < files; i++) {
    unlink(objs[i]);   // one whose write failed is gone already
    free(objs[i]);
  }
  free(objs);
  return rc;
}

int link_shared(const Blob *object, const char *path, char *err, size_t errlen) {
  return link_shared_objects(object, 1, NULL, NULL, 0, path, err, errlen);
}

// codegen_host's module as text: the LLVM IR after O3 (ir) or x86-64
// assembly; cpu as for codegen_host.
int codegen_host_text(const KernelPlan *const *plans, int nplans, const char *cpu, bool ir, Blob *text, char *err,
                      size_t errlen) {
  return host_module(plans, nplans, cpu, 0, INT_MAX, NULL, ir, LLVMAssemblyFile, text, err, errlen);
}
