// codegen_expr.c: the expression layer shared by every target.
//
// emit_value turns "the value of node n at index idx" into IR: a load from
// n's buffer when n is stored, or, for a folded node, the index arithmetic of
// its view (reshape, permute, broadcast, slice, pad, concat) applied before
// loading its source, or a literal. The kernel_* functions build on it: each
// computes its node's value at one output index (with an inner loop for
// reductions, contractions, convolutions, pooling and scatter). The targets'
// strategies (target/host.c, target/gpu.c) decide which indices a thread
// computes and how threads cooperate. What differs between targets here
// (pointer address spaces, load metadata, error stores, math) is asked of
// the target's descriptor (c->target), never decided by its name.
//
// Values are computed in float (f32, f16, bf16 widen to float), int64
// (integers) or i1 (bool), and converted to the storage dtype on store.
// Contractions accumulate in float, sums in double.
#include "codegen.h"
#include "ingot.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <stdio.h>
#include <string.h>

// ---- types and constants

LLVMTypeRef storage_type(Cg *c, DType t) {
  switch (t) {
  case DT_F32: return c->f32;
  case DT_F16: return c->f16;
  case DT_BF16: return c->bf16;
  case DT_I32: return c->i32;
  case DT_I64: return c->i64;
  case DT_U8: case DT_BOOL: return c->i8;
  case DT_COUNT: break;
  }
  UNREACHABLE();
}



V const_of(Cg *c, DType t, double v) {
  if (dtype_is_float(t)) return cf(c, v);
  if (t == DT_BOOL) return LLVMConstInt(c->i1, v != 0, false);
  return ci(c, (int64_t)v);
}

// ---- conversions between compute types

V convert(Cg *c, V v, DType from, DType to) {
  LLVMBuilderRef b = c->b;
  bool ff = dtype_is_float(from), tf = dtype_is_float(to);
  if (ff && tf) return v;   // all floats compute as f32; the store rounds
  if (ff && to == DT_BOOL) return LLVMBuildFCmp(b, LLVMRealUNE, v, cf(c, 0), "");
  if (ff) {   // truncate toward zero; NaN becomes 0; out of range saturates
    V nan = LLVMBuildFCmp(b, LLVMRealUNO, v, v, "");
    V lo = LLVMBuildFCmp(b, LLVMRealOLT, v, cf(c, -9.2e18), "");
    V hi = LLVMBuildFCmp(b, LLVMRealOGT, v, cf(c, 9.2e18), "");
    V safe = LLVMBuildSelect(b, LLVMBuildOr(b, nan, LLVMBuildOr(b, lo, hi, ""), ""), cf(c, 0), v, "");
    return LLVMBuildFPToSI(b, safe, c->i64, "");
  }
  if (from == DT_BOOL && tf) return LLVMBuildUIToFP(b, v, c->f32, "");
  if (from == DT_BOOL) return to == DT_BOOL ? v : LLVMBuildZExt(b, v, c->i64, "");
  if (tf) return LLVMBuildSIToFP(b, v, c->f32, "");
  if (to == DT_BOOL) return LLVMBuildICmp(b, LLVMIntNE, v, ci(c, 0), "");
  return v;   // integers compute as i64; the store wraps
}

// ---- buffers

// The kernel's own number for n's buffer (Kernel.bufs): the body indexes the
// table of its launch, never the entry's slots, so that launches of kernels
// alike but for their slots can share it.
static int local_buffer(const Cg *c, const Node *n) {
  int slot = c->plan->slot[n->id];
  ASSERT(slot >= 0 && c->kernel);
  for (int b = 0; b < c->kernel->nbufs; b++)
    if (c->kernel->bufs[b] == slot) return b;
  UNREACHABLE();   // kernel_plan numbers every buffer a kernel reads or writes
}

V buffer_ptr(Cg *c, const Node *n) {
  V idx = ci(c, local_buffer(c, n));
  V p = LLVMBuildGEP2(c->b, c->gptr, c->bufs, &idx, 1, "");
  V buf = LLVMBuildLoad2(c->b, c->gptr, p, dtype_name(n->dtype));
  // the table does not change during a kernel
  if (c->target->invariant_loads) LLVMSetMetadata(buf, c->md_invariant, LLVMMetadataAsValue(c->cx, LLVMMDNodeInContext2(c->cx, NULL, 0)));
  if (c->target->buffer_align) {
    LLVMMetadataRef a = LLVMValueAsMetadata(LLVMConstInt(c->i64, c->target->buffer_align, false));
    LLVMSetMetadata(buf, c->md_align, LLVMMetadataAsValue(c->cx, LLVMMDNodeInContext2(c->cx, &a, 1)));
  }
  return buf;
}

// Whether the current kernel writes an output over n's bytes (in place).
static bool overwritten(const Cg *c, const Node *n) {
  if (!c->kernel || !c->plan->reuses) return false;
  int s = c->plan->slot[n->id];
  for (int o = 0; o < c->kernel->nouts; o++)
    if (c->plan->reuses[c->plan->slot[c->kernel->outs[o]->id]] == s) return true;
  return false;
}

V load_at(Cg *c, const Node *n, V lin) {
  LLVMTypeRef st = storage_type(c, n->dtype);
  V p = LLVMBuildGEP2(c->b, st, buffer_ptr(c, n), &lin, 1, "");
  V v = LLVMBuildLoad2(c->b, st, p, "");
  // A kernel never reads a buffer it writes, except one its output took over
  // in place (read at each element before that element is written): every
  // other load can take a GPU's read-only (non-coherent) cache path.
  if (c->target->invariant_loads && !overwritten(c, n)) LLVMSetMetadata(v, c->md_invariant, LLVMMetadataAsValue(c->cx, LLVMMDNodeInContext2(c->cx, NULL, 0)));
  switch (n->dtype) {
  case DT_F32: return v;
  case DT_F16: case DT_BF16: return LLVMBuildFPExt(c->b, v, c->f32, "");
  case DT_I32: return LLVMBuildSExt(c->b, v, c->i64, "");
  case DT_I64: return v;
  case DT_U8: return LLVMBuildZExt(c->b, v, c->i64, "");
  case DT_BOOL: return LLVMBuildICmp(c->b, LLVMIntNE, v, LLVMConstInt(c->i8, 0, false), "");
  case DT_COUNT: break;
  }
  UNREACHABLE();
}

// An integer constant k of type t's shape: i32, or a vector of i32 as wide as t.
static V i32_like(Cg *c, LLVMTypeRef t, uint32_t k) {
  V one = LLVMConstInt(c->i32, k, false);
  if (LLVMGetTypeKind(t) != LLVMVectorTypeKind) return one;
  V e[64];
  unsigned w = LLVMGetVectorSize(t);
  for (unsigned i = 0; i < w; i++) e[i] = one;
  return LLVMConstVector(e, w);
}

// The type of v's shape with element type e (a scalar, or a vector as wide).
static LLVMTypeRef shaped_like(V v, LLVMTypeRef e) {
  LLVMTypeRef t = LLVMTypeOf(v);
  return LLVMGetTypeKind(t) == LLVMVectorTypeKind ? LLVMVectorType(e, LLVMGetVectorSize(t)) : e;
}

// f32 (or a vector of them) -> bf16, round to nearest even, NaN kept quiet:
// done on the bits, since the C runtime may not have a conversion routine for it.
static V to_bf16(Cg *c, V f) {
  LLVMBuilderRef B = c->b;
  LLVMTypeRef it = shaped_like(f, c->i32);
  V bits = LLVMBuildBitCast(B, f, it, "");
  V lsb = LLVMBuildAnd(B, LLVMBuildLShr(B, bits, i32_like(c, it, 16), ""), i32_like(c, it, 1), "");
  V rounded = LLVMBuildAdd(B, bits, LLVMBuildAdd(B, i32_like(c, it, 0x7FFF), lsb, ""), "");
  V nan = LLVMBuildFCmp(B, LLVMRealUNO, f, f, "");
  V out = LLVMBuildSelect(B, nan, LLVMBuildOr(B, bits, i32_like(c, it, 0x00400000), ""), rounded, "");
  V half = LLVMBuildTrunc(B, LLVMBuildLShr(B, out, i32_like(c, it, 16), ""), shaped_like(f, c->i16), "");
  return LLVMBuildBitCast(B, half, shaped_like(f, c->bf16), "");
}

// f32 (or a vector of them) rounded to tf32's 10-bit mantissa, to nearest
// with ties away from zero, as the GPUs' cvt.rna.tf32.f32 rounds: add half
// of the dropped part, then clear it. The interpreter rounds the same way.
V round_tf32(Cg *c, V f) {
  LLVMBuilderRef B = c->b;
  LLVMTypeRef ft = LLVMTypeOf(f), it = shaped_like(f, c->i32);
  V bits = LLVMBuildBitCast(B, f, it, "");
  V r = LLVMBuildAnd(B, LLVMBuildAdd(B, bits, i32_like(c, it, 0x1000), ""), i32_like(c, it, ~0x1FFFu), "");
  // inf and NaN keep their bits (the addition would turn a NaN's payload into inf)
  V special = LLVMBuildFCmp(B, LLVMRealUNO, f, f, "");
  return LLVMBuildBitCast(B, LLVMBuildSelect(B, special, bits, r, ""), ft, "");
}

V narrow_float(Cg *c, DType t, V v) {
  return t == DT_BF16 ? to_bf16(c, v) : t == DT_F16 ? LLVMBuildFPTrunc(c->b, v, c->f16, "") : v;
}

void store_at(Cg *c, const Node *n, V lin, V v) {
  LLVMTypeRef st = storage_type(c, n->dtype);
  switch (n->dtype) {
  case DT_F32: break;
  case DT_F16: v = LLVMBuildFPTrunc(c->b, v, st, ""); break;
  case DT_BF16: v = to_bf16(c, v); break;
  case DT_I32: case DT_U8: v = LLVMBuildTrunc(c->b, v, st, ""); break;
  case DT_I64: break;
  case DT_BOOL: v = LLVMBuildZExt(c->b, v, c->i8, ""); break;
  case DT_COUNT: UNREACHABLE();
  }
  V p = LLVMBuildGEP2(c->b, st, buffer_ptr(c, n), &lin, 1, "");
  LLVMBuildStore(c->b, v, p);
}

// ---- index arithmetic

V linearize(Cg *c, V *idx, const Shape *s) {
  if (c->out_lin && shape_eq(s, c->out_shape)) {
    int d = 0;
    while (d < s->ndim && idx[d] == c->out_idx[d]) d++;
    if (d == s->ndim) return c->out_lin;
  }
  V lin = ci(c, 0);
  for (int d = 0; d < s->ndim; d++) lin = LLVMBuildAdd(c->b, LLVMBuildMul(c->b, lin, ci(c, s->d[d]), ""), idx[d], "");
  return lin;
}

void delinearize(Cg *c, V lin, const Shape *s, V *idx) {
  for (int d = s->ndim - 1; d >= 0; d--) {
    if (s->d[d] == 0) {
      idx[d] = ci(c, 0);
      continue;
    }
    idx[d] = LLVMBuildURem(c->b, lin, ci(c, s->d[d]), "");
    lin = LLVMBuildUDiv(c->b, lin, ci(c, s->d[d]), "");
  }
}

// The index into a tensor of shape src that broadcasting reads for index idx
// of shape dst: right-aligned, size-1 dims read 0.
void broadcast_index(Cg *c, V *idx, const Shape *dst, const Shape *src, V *out) {
  int off = dst->ndim - src->ndim;
  for (int d = 0; d < src->ndim; d++) out[d] = src->d[d] == 1 ? ci(c, 0) : idx[d + off];
}

V clamp_index(Cg *c, V i, int64_t len) {
  V lo = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, i, ci(c, 0), ""), ci(c, 0), i, "");
  return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, lo, ci(c, len), ""), ci(c, len > 0 ? len - 1 : 0), lo, "");
}

// ---- the expression layer


static bool computes(const Kernel *k, const Node *n) {
  for (int o = 0; o < k->nouts; o++)
    if (k->outs[o] == n) return true;
  return false;
}

static bool substituted(const Cg *c, const Node *n) {
  for (int i = 0; i < c->nsubst; i++)
    if (c->subst[i] == n) return true;
  return false;
}

// Whether emit_value reads n from its buffer: stored, and not computed by
// the kernel being emitted (nor substituted).
static bool read_in_place(const Cg *c, const Node *n) {
  return !substituted(c, n) && c->plan->slot[n->id] >= 0 && !(c->kernel && computes(c->kernel, n));
}

// The value of a folded node (view, constant, iota) at idx.
V emit_folded(Cg *c, const Node *n, V *idx) {
  const Node *s = n->src[0];
  V sidx[MAX_DIMS];
  switch (n->op) {
  case OP_CONST:
    return const_of(c, n->dtype, n->p.value);
  case OP_IOTA:
    return convert(c, idx[0], DT_I64, n->dtype);
  case OP_RESHAPE: {   // the row-major linear index is the same on both sides
    V lin = linearize(c, idx, &n->shape);
    while (s->op == OP_RESHAPE && c->plan->slot[s->id] < 0 && !substituted(c, s)) s = s->src[0];   // a chain is one
    if (read_in_place(c, s)) return load_at(c, s, lin);   // no index taken apart and put together again
    delinearize(c, lin, &s->shape, sidx);
    return emit_value(c, s, sidx);
  }
  case OP_PERMUTE:
    for (int d = 0; d < n->shape.ndim; d++) sidx[n->p.perm[d]] = idx[d];
    return emit_value(c, s, sidx);
  case OP_BROADCAST:
    broadcast_index(c, idx, &n->shape, &s->shape, sidx);
    return emit_value(c, s, sidx);
  case OP_SLICE:
    for (int d = 0; d < n->shape.ndim; d++)
      sidx[d] = LLVMBuildAdd(c->b, ci(c, n->p.slice.start[d]), LLVMBuildMul(c->b, idx[d], ci(c, n->p.slice.step[d]), ""), "");
    return emit_value(c, s, sidx);
  case OP_PAD: {   // inside: the source at idx - lo; outside: the pad value
    V inside = LLVMConstInt(c->i1, 1, false);
    for (int d = 0; d < n->shape.ndim; d++) {
      V j = LLVMBuildSub(c->b, idx[d], ci(c, n->p.pad.lo[d]), "");
      V ok = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, j, ci(c, 0), ""),
                          LLVMBuildICmp(c->b, LLVMIntSLT, j, ci(c, s->shape.d[d]), ""), "");
      inside = LLVMBuildAnd(c->b, inside, ok, "");
      sidx[d] = clamp_index(c, j, s->shape.d[d]);
    }
    if (shape_numel(&s->shape) == 0) return const_of(c, n->dtype, n->p.pad.value);
    return LLVMBuildSelect(c->b, inside, emit_value(c, s, sidx), const_of(c, n->dtype, n->p.pad.value), "");
  }
  case OP_CONCAT: {
    const Node *a = n->src[0], *bn = n->src[1];
    int ax = n->p.axis;
    int64_t la = a->shape.d[ax];
    V ia[MAX_DIMS], ib[MAX_DIMS];
    for (int d = 0; d < n->shape.ndim; d++) ia[d] = ib[d] = idx[d];
    V in_a = LLVMBuildICmp(c->b, LLVMIntSLT, idx[ax], ci(c, la), "");
    if (la == 0) return emit_value(c, bn, idx);
    if (bn->shape.d[ax] == 0) return emit_value(c, a, idx);
    ia[ax] = clamp_index(c, idx[ax], la);
    ib[ax] = clamp_index(c, LLVMBuildSub(c->b, idx[ax], ci(c, la), ""), bn->shape.d[ax]);
    return LLVMBuildSelect(c->b, in_a, emit_value(c, a, ia), emit_value(c, bn, ib), "");
  }
  case OP_INPUT: case OP_PARAM: case OP_STATE: case OP_RANDOM:
#define OP(name, ...) case OP_##name:   // every kind but those emptied below
#define LEAF(...)
#define MOVE(...)
#include "ops.def"
  case OP_COUNT:
    break;
  }
  UNREACHABLE();
}

// A computed value as storing and reloading it would give: floats rounded
// to f16/bf16, integers wrapped to their width. Fused kernels then compute
// exactly what the unfused ones do.
V round_value(Cg *c, V v, DType t) {
  LLVMBuilderRef B = c->b;
  switch (t) {
  case DT_F16: return LLVMBuildFPExt(B, LLVMBuildFPTrunc(B, v, shaped_like(v, c->f16), ""), LLVMTypeOf(v), "");
  case DT_BF16: return LLVMBuildFPExt(B, to_bf16(c, v), LLVMTypeOf(v), "");
  case DT_I32: return LLVMTypeOf(v) == c->i64 ? LLVMBuildSExt(B, LLVMBuildTrunc(B, v, c->i32, ""), c->i64, "") : v;
  case DT_U8: return LLVMTypeOf(v) == c->i64 ? LLVMBuildZExt(B, LLVMBuildTrunc(B, v, c->i8, ""), c->i64, "") : v;
  default: return v;
  }
}

static V computed_value(Cg *c, const Node *n, V *idx);

V emit_value(Cg *c, const Node *n, V *idx) {
  for (int i = 0; i < c->nsubst; i++)
    if (c->subst[i] == n) return c->subst_val[i];
  if (read_in_place(c, n)) return load_at(c, n, linearize(c, idx, &n->shape));
  if (node_is_folded(n)) return emit_folded(c, n, idx);
  return round_value(c, computed_value(c, n, idx), n->dtype);   // fused into this kernel
}

// Reads operand s of node n (of shape n->shape) at n's index idx, broadcasting.
V emit_operand(Cg *c, const Node *n, const Node *s, V *idx) {
  V sidx[MAX_DIMS];
  broadcast_index(c, idx, &n->shape, &s->shape, sidx);
  return emit_value(c, s, sidx);
}

// NaN-propagating maximum and minimum, as NumPy's.
V fmax_nan(Cg *c, V a, V b, bool max) {
  V a_nan = LLVMBuildFCmp(c->b, LLVMRealUNO, a, a, "");
  V pick_a = LLVMBuildFCmp(c->b, max ? LLVMRealOGT : LLVMRealOLT, a, b, "");
  return LLVMBuildSelect(c->b, LLVMBuildOr(c->b, a_nan, pick_a, ""), a, b, "");
}

// a ** b: by multiplications for the exponents PyTorch multiplies out
// (1, 2, 3, -1, -2: the same value for zeros of either sign, infinities and
// NaN, and no call of pow), else the target's pow.
static V pow_of(Cg *c, V a, V b) {
  LLVMBuilderRef B = c->b;
  LLVMBool lost = 0;
  if (!LLVMIsAConstantFP(b)) return math_pow(c, a, b);
  double e = LLVMConstRealGetDouble(b, &lost);
  if (lost) return math_pow(c, a, b);
  if (e == 1) return a;
  if (e == 2 || e == -2) {
    V sq = LLVMBuildFMul(B, a, a, "");
    return e > 0 ? sq : LLVMBuildFDiv(B, LLVMConstReal(LLVMTypeOf(a), 1), sq, "");
  }
  if (e == 3) return LLVMBuildFMul(B, LLVMBuildFMul(B, a, a, ""), a, "");
  if (e == -1) return LLVMBuildFDiv(B, LLVMConstReal(LLVMTypeOf(a), 1), a, "");
  return math_pow(c, a, b);
}

// Integer floor division, total: a zero divisor gives 0 (NumPy's) and -1
// gives -a (wrapping), the two divisors for which sdiv traps; the truncated
// quotient steps down when the remainder's sign differs from the divisor's.
static V int_floor_div(Cg *c, V a, V b) {
  LLVMBuilderRef B = c->b;
  LLVMTypeRef ty = LLVMTypeOf(a);
  V zero = LLVMConstNull(ty), one = LLVMConstInt(ty, 1, 0), minus1 = LLVMConstAllOnes(ty);
  V bz = LLVMBuildICmp(B, LLVMIntEQ, b, zero, ""), bm1 = LLVMBuildICmp(B, LLVMIntEQ, b, minus1, "");
  V d = LLVMBuildSelect(B, LLVMBuildOr(B, bz, bm1, ""), one, b, "");
  V q = LLVMBuildSDiv(B, a, d, ""), r = LLVMBuildSRem(B, a, d, "");
  V differ = LLVMBuildICmp(B, LLVMIntSLT, LLVMBuildXor(B, r, d, ""), zero, "");
  V down = LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntNE, r, zero, ""), differ, "");
  q = LLVMBuildSub(B, q, LLVMBuildZExt(B, down, ty, ""), "");
  q = LLVMBuildSelect(B, bm1, LLVMBuildNeg(B, a, ""), q, "");
  return LLVMBuildSelect(B, bz, zero, q, "");
}

// Shifts by any count, as ONNX's BitShift: integers compute as i64 holding
// their dtype's value (sign- or zero-extended), so a count of the dtype's
// width or more shifts a left operand out once the result is wrapped (the
// callers round each value to its dtype), and fills a right one with the
// sign (i32, i64: arithmetic) or with 0 (u8: logical). A count below 0 reads
// as unsigned, so as too large; counts of 64 or more, poison to LLVM, are
// taken as 63 (right) or give 0 (left).
static V shift(Cg *c, Op op, DType t, V a, V b) {
  LLVMBuilderRef B = c->b;
  LLVMTypeRef ty = LLVMTypeOf(a);
  V w = LLVMConstInt(ty, 64, 0), in = LLVMBuildICmp(B, LLVMIntULT, b, w, "");
  if (op == OP_SHR) {
    V n = LLVMBuildSelect(B, in, b, LLVMConstInt(ty, 63, 0), "");
    return t == DT_U8 ? LLVMBuildLShr(B, a, n, "") : LLVMBuildAShr(B, a, n, "");
  }
  V r = LLVMBuildShl(B, a, LLVMBuildSelect(B, in, b, LLVMConstNull(ty), ""), "");
  return LLVMBuildSelect(B, in, r, LLVMConstNull(ty), "");
}

// BITCAST (graph.c's pairs): f32 <-> i32 through an i32, whose value an i64
// register holds sign-extended; bool -> u8 is its 0 or 1.
static V bitcast(Cg *c, V a, DType from, DType to) {
  LLVMBuilderRef B = c->b;
  if (from == DT_F32 && to == DT_I32)
    return LLVMBuildSExt(B, LLVMBuildBitCast(B, a, shaped_like(a, c->i32), ""), shaped_like(a, c->i64), "");
  if (from == DT_I32 && to == DT_F32)
    return LLVMBuildBitCast(B, LLVMBuildTrunc(B, a, shaped_like(a, c->i32), ""), shaped_like(a, c->f32), "");
  return convert(c, a, from, to);
}

// One elementwise op on computed values; t is the operands' dtype.
V emit_op(Cg *c, Op op, DType t, DType out, V a, V b, V w) {
  LLVMBuilderRef B = c->b;
  bool f = dtype_is_float(t);
  switch (op) {
  case OP_NEG: return f ? LLVMBuildFNeg(B, a, "") : LLVMBuildNeg(B, a, "");
  case OP_EXP: return math_exp(c, a);
  case OP_LOG: return math_log(c, a);
  case OP_SQRT: return intrinsic1(c, "llvm.sqrt", a);
  case OP_RSQRT: return LLVMBuildFDiv(B, cf(c, 1), intrinsic1(c, "llvm.sqrt", a), "");
  case OP_TANH: return math_tanh(c, a);
  case OP_SIGMOID:
    return LLVMBuildFDiv(B, cf(c, 1), LLVMBuildFAdd(B, cf(c, 1), math_exp(c, LLVMBuildFNeg(B, a, "")), ""), "");
  case OP_RELU: {   // x <= 0 ? 0 : x; an unordered compare is false, so NaN stays
    V zero = LLVMConstNull(LLVMTypeOf(a));   // a scalar or a vector (matmul epilogues)
    V off = f ? LLVMBuildFCmp(B, LLVMRealOLE, a, zero, "") : LLVMBuildICmp(B, LLVMIntSLE, a, zero, "");
    return LLVMBuildSelect(B, off, zero, a, "");
  }
  case OP_ABS:
    if (f) return intrinsic1(c, "llvm.fabs", a);
    return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, a, ci(c, 0), ""), LLVMBuildNeg(B, a, ""), a, "");
  case OP_SIN: return math_sin(c, a);
  case OP_COS: return math_cos(c, a);
  case OP_FLOOR: return f ? intrinsic1(c, "llvm.floor", a) : a;
  case OP_CAST: return convert(c, a, t, out);
  case OP_ERF: return math_erf(c, a);
  case OP_SOFTPLUS: return math_softplus(c, a);
  case OP_SILU:   // x / (1 + exp(-x)), as PyTorch computes it
    return LLVMBuildFDiv(B, a, LLVMBuildFAdd(B, cf(c, 1), math_exp(c, LLVMBuildFNeg(B, a, "")), ""), "");
  case OP_STOP_GRADIENT: return a;
  case OP_BITNOT: return LLVMBuildNot(B, a, "");
  case OP_BITCAST: return bitcast(c, a, t, out);
  case OP_BITAND: return LLVMBuildAnd(B, a, b, "");
  case OP_BITOR: return LLVMBuildOr(B, a, b, "");
  case OP_BITXOR: return LLVMBuildXor(B, a, b, "");
  case OP_SHL: case OP_SHR: return shift(c, op, t, a, b);
  case OP_ADD: return f ? LLVMBuildFAdd(B, a, b, "") : LLVMBuildAdd(B, a, b, "");
  case OP_SUB: return f ? LLVMBuildFSub(B, a, b, "") : LLVMBuildSub(B, a, b, "");
  case OP_MUL: return f ? LLVMBuildFMul(B, a, b, "") : LLVMBuildMul(B, a, b, "");
  case OP_DIV: return LLVMBuildFDiv(B, a, b, "");
  case OP_IDIV: return f ? intrinsic1(c, "llvm.floor", LLVMBuildFDiv(B, a, b, "")) : int_floor_div(c, a, b);
  case OP_POW: return pow_of(c, a, b);
  case OP_MAX: case OP_MIN:
    if (f) return fmax_nan(c, a, b, op == OP_MAX);
    if (t == DT_BOOL) return op == OP_MAX ? LLVMBuildOr(B, a, b, "") : LLVMBuildAnd(B, a, b, "");
    return LLVMBuildSelect(B, LLVMBuildICmp(B, op == OP_MAX ? LLVMIntSGT : LLVMIntSLT, a, b, ""), a, b, "");
  case OP_LT: case OP_LE: case OP_GT: case OP_GE: case OP_EQ: case OP_NE: {
    static const LLVMRealPredicate fp[] = {LLVMRealOLT, LLVMRealOLE, LLVMRealOGT, LLVMRealOGE, LLVMRealOEQ, LLVMRealUNE};
    static const LLVMIntPredicate ip[] = {LLVMIntSLT, LLVMIntSLE, LLVMIntSGT, LLVMIntSGE, LLVMIntEQ, LLVMIntNE};
    static const LLVMIntPredicate up[] = {LLVMIntULT, LLVMIntULE, LLVMIntUGT, LLVMIntUGE, LLVMIntEQ, LLVMIntNE};
    int k = op - OP_LT;
    if (f) return LLVMBuildFCmp(B, fp[k], a, b, "");
    return LLVMBuildICmp(B, t == DT_BOOL ? up[k] : ip[k], a, b, "");
  }
  case OP_WHERE: return LLVMBuildSelect(B, a, b, w, "");
#define OP(name, ...) case OP_##name:   // every kind but those emptied below
#define UNARY(...)
#define BINARY(...)
#define COMPARE(...)
#define SELECT(...)
#include "ops.def"
  case OP_COUNT:
    break;
  }
  UNREACHABLE();
}

// ---- loops


// Opens `for (i = from; i < to; i++)`, carrying nacc values from init.
void loop_open(Cg *c, Loop *L, V from, V to, int nacc, V *init) {
  L->pre = LLVMGetInsertBlock(c->b);
  L->header = block(c, "loop");
  L->body = block(c, "body");
  L->exit = block(c, "done");
  L->nacc = nacc;
  L->step = NULL;
  LLVMBuildBr(c->b, L->header);
  LLVMPositionBuilderAtEnd(c->b, L->header);
  L->i = LLVMBuildPhi(c->b, c->i64, "i");
  LLVMAddIncoming(L->i, &from, &L->pre, 1);
  for (int k = 0; k < nacc; k++) {
    L->acc[k] = LLVMBuildPhi(c->b, LLVMTypeOf(init[k]), "acc");
    LLVMAddIncoming(L->acc[k], &init[k], &L->pre, 1);
  }
  LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, L->i, to, ""), L->body, L->exit);
  LLVMPositionBuilderAtEnd(c->b, L->body);
}

// Closes the loop with the carried values' next values; the builder is left
// after the loop, where L->acc[k] hold the final values.
void loop_close(Cg *c, Loop *L, V *next) {
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
  V inc = LLVMBuildAdd(c->b, L->i, L->step ? L->step : ci(c, 1), "");
  LLVMAddIncoming(L->i, &inc, &latch, 1);
  for (int k = 0; k < L->nacc; k++) LLVMAddIncoming(L->acc[k], &next[k], &latch, 1);
  LLVMBuildBr(c->b, L->header);
  LLVMPositionBuilderAtEnd(c->b, L->exit);
}

// ---- kernels: each computes the value of its node at output index idx

static V kernel_pointwise(Cg *c, const Node *n, V *idx) {
  V v[3] = {NULL, NULL, NULL};
  for (int k = 0; k < n->nsrc; k++) v[k] = emit_operand(c, n, n->src[k], idx);
  DType t = n->nsrc ? n->src[n->op == OP_WHERE ? 1 : 0]->dtype : n->dtype;
  if (n->op == OP_WHERE) return emit_op(c, OP_WHERE, t, n->dtype, v[0], v[1], v[2]);
  return emit_op(c, n->op, t, n->dtype, v[0], v[1], NULL);
}

// Philox-4x32-10 on (seed, key, step, i), the first word's top 24 bits.
static V kernel_random(Cg *c, const Node *n, V lin) { return philox_at(c, n->p.key, lin); }

V philox_at(Cg *c, uint64_t key, V lin) {
  LLVMBuilderRef B = c->b;
  V seed = c->seed, step = c->step;
  V k = LLVMBuildXor(B, seed, LLVMConstInt(c->i64, key * 0x9E3779B97F4A7C15ull, false), "");
  V k0 = LLVMBuildTrunc(B, k, c->i32, ""), k1 = LLVMBuildTrunc(B, LLVMBuildLShr(B, k, ci(c, 32), ""), c->i32, "");
  V c0 = LLVMBuildTrunc(B, lin, c->i32, ""), c1 = LLVMBuildTrunc(B, LLVMBuildLShr(B, lin, ci(c, 32), ""), c->i32, "");
  V c2 = LLVMBuildTrunc(B, step, c->i32, ""), c3 = LLVMBuildTrunc(B, LLVMBuildLShr(B, step, ci(c, 32), ""), c->i32, "");
  V m0 = LLVMConstInt(c->i64, 0xD2511F53u, false), m1 = LLVMConstInt(c->i64, 0xCD9E8D57u, false);
  for (int r = 0; r < 10; r++) {
    V p0 = LLVMBuildMul(B, m0, LLVMBuildZExt(B, c0, c->i64, ""), "");
    V p1 = LLVMBuildMul(B, m1, LLVMBuildZExt(B, c2, c->i64, ""), "");
    V n0 = LLVMBuildXor(B, LLVMBuildXor(B, LLVMBuildTrunc(B, LLVMBuildLShr(B, p1, ci(c, 32), ""), c->i32, ""), c1, ""), k0, "");
    V n1 = LLVMBuildTrunc(B, p1, c->i32, "");
    V n2 = LLVMBuildXor(B, LLVMBuildXor(B, LLVMBuildTrunc(B, LLVMBuildLShr(B, p0, ci(c, 32), ""), c->i32, ""), c3, ""), k1, "");
    V n3 = LLVMBuildTrunc(B, p0, c->i32, "");
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 = LLVMBuildAdd(B, k0, LLVMConstInt(c->i32, 0x9E3779B9u, false), "");
    k1 = LLVMBuildAdd(B, k1, LLVMConstInt(c->i32, 0xBB67AE85u, false), "");
  }
  V bits = LLVMBuildLShr(B, c0, LLVMConstInt(c->i32, 8, false), "");
  return LLVMBuildFMul(B, LLVMBuildUIToFP(B, bits, c->f32, ""), cf(c, 1.0 / 16777216.0), "");
}

// A float sum in SUM_PARTS partial sums: element e of the last reduced axis
// goes to partial e % SUM_PARTS (f64, in order along the axis and across the
// other reduced axes), and the result is (s0 + s1) + (s2 + s3). One chain of
// f64 adds waits 4 cycles an element: a convolution's bias gradient over
// 50,000 values a channel took 2.2 ms, in four chains 1.0 (eight: 2.2).
#define SUM_PARTS 4

// acc += x at the reduced index ridx with its last reduced axis at at.
static void sum_part_add(Cg *c, const Node *n, const Shape *red, V *ridx, V *oidx, V at, V *acc) {
  const Node *x = n->src[0];
  V xidx[MAX_DIMS];
  ridx[red->ndim - 1] = at;
  for (int d = 0, k = 0; d < x->shape.ndim; d++) xidx[d] = n->p.axes & (1u << d) ? ridx[k++] : oidx[d];
  *acc = LLVMBuildFAdd(c->b, *acc, LLVMBuildFPExt(c->b, emit_value(c, x, xidx), c->f64, ""), "");
}

// Sum n (of red's reduced shape, at output index oidx): a loop over the
// reduced axes but the last, and in it SUM_PARTS elements of the last axis
// an iteration, then its last % SUM_PARTS elements one to each partial.
static V sum_by_parts(Cg *c, const Node *n, const Shape *red, V *oidx) {
  int64_t last = red->d[red->ndim - 1];
  Shape outer = *red;
  outer.ndim--;
  V zero[SUM_PARTS];
  for (int t = 0; t < SUM_PARTS; t++) zero[t] = LLVMConstReal(c->f64, 0);
  Loop O, I;
  loop_open(c, &O, ci(c, 0), ci(c, shape_numel(&outer)), SUM_PARTS, zero);
  V ridx[MAX_DIMS];
  delinearize(c, O.i, &outer, ridx);
  V acc[SUM_PARTS];
  loop_open(c, &I, ci(c, 0), ci(c, last / SUM_PARTS), SUM_PARTS, O.acc);
  memcpy(acc, I.acc, sizeof acc);
  for (int t = 0; t < SUM_PARTS; t++) sum_part_add(c, n, red, ridx, oidx, addc(c, mulc(c, I.i, SUM_PARTS), t), &acc[t]);
  loop_close(c, &I, acc);
  memcpy(acc, I.acc, sizeof acc);
  for (int t = 0; t < last % SUM_PARTS; t++) sum_part_add(c, n, red, ridx, oidx, ci(c, last - last % SUM_PARTS + t), &acc[t]);
  loop_close(c, &O, acc);
  memcpy(acc, O.acc, sizeof acc);
  for (int w = 1; w < SUM_PARTS; w *= 2)   // pairwise: (s0 + s1) + (s2 + s3), ...
    for (int t = 0; t + w < SUM_PARTS; t += 2 * w) acc[t] = LLVMBuildFAdd(c->b, acc[t], acc[t + w], "");
  return LLVMBuildFPTrunc(c->b, acc[0], c->f32, "");
}

V reduce_value(Cg *c, const Node *n, V *oidx) {
  const Node *x = n->src[0];
  Shape red = {0};
  for (int d = 0; d < x->shape.ndim; d++)
    if (n->p.axes & (1u << d)) red.d[red.ndim++] = x->shape.d[d];
  bool f = dtype_is_float(x->dtype);
  if (n->op == OP_SUM && f && red.ndim > 0 && red.d[red.ndim - 1] >= 4 * SUM_PARTS) return sum_by_parts(c, n, &red, oidx);
  V init[2];
  int nacc = 1;
  if (n->op == OP_SUM) init[0] = f ? LLVMConstReal(c->f64, 0) : ci(c, 0);
  else if (n->op == OP_RMAX) init[0] = f ? cf(c, -1.0 / 0.0) : ci(c, INT64_MIN);
  else init[0] = f ? cf(c, -1.0 / 0.0) : ci(c, INT64_MIN), init[1] = ci(c, -1), nacc = 2;
  Loop L;
  loop_open(c, &L, ci(c, 0), ci(c, shape_numel(&red)), nacc, init);
  V ridx[MAX_DIMS], xidx[MAX_DIMS];
  delinearize(c, L.i, &red, ridx);
  for (int d = 0, k = 0; d < x->shape.ndim; d++) xidx[d] = n->p.axes & (1u << d) ? ridx[k++] : oidx[d];
  V v = emit_value(c, x, xidx), next[2];
  if (n->op == OP_SUM) {
    next[0] = f ? LLVMBuildFAdd(c->b, L.acc[0], LLVMBuildFPExt(c->b, v, c->f64, ""), "") : LLVMBuildAdd(c->b, L.acc[0], v, "");
  } else if (n->op == OP_RMAX) {
    next[0] = f ? fmax_nan(c, v, L.acc[0], true) : emit_op(c, OP_MAX, DT_I64, DT_I64, v, L.acc[0], NULL);
  } else {   // argmax: the first maximum; NaN counts as the largest
    V better;
    if (f) {
      V v_nan = LLVMBuildFCmp(c->b, LLVMRealUNO, v, v, "");
      V best_nan = LLVMBuildFCmp(c->b, LLVMRealUNO, L.acc[0], L.acc[0], "");
      V gt = LLVMBuildFCmp(c->b, LLVMRealOGT, v, L.acc[0], "");
      V first = LLVMBuildICmp(c->b, LLVMIntEQ, L.acc[1], ci(c, -1), "");
      better = LLVMBuildAnd(c->b, LLVMBuildNot(c->b, best_nan, ""), LLVMBuildOr(c->b, first, LLVMBuildOr(c->b, v_nan, gt, ""), ""), "");
    } else {
      better = LLVMBuildOr(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, L.acc[1], ci(c, -1), ""),
                           LLVMBuildICmp(c->b, LLVMIntSGT, v, L.acc[0], ""), "");
    }
    next[0] = LLVMBuildSelect(c->b, better, v, L.acc[0], "");
    next[1] = LLVMBuildSelect(c->b, better, L.i, L.acc[1], "");
  }
  loop_close(c, &L, next);
  if (n->op == OP_ARGMAX) return L.acc[1];
  if (n->op == OP_SUM && f) return LLVMBuildFPTrunc(c->b, L.acc[0], c->f32, "");
  return L.acc[0];
}

V kernel_matmul(Cg *c, const Node *n, V *idx) {
  const Node *a = n->src[0], *bm = n->src[1];
  int nd = n->shape.ndim;
  bool ta = n->p.matmul.ta, tb = n->p.matmul.tb;
  int64_t K = ta ? a->shape.d[a->shape.ndim - 2] : a->shape.d[a->shape.ndim - 1];
  V init = cf(c, 0);
  Loop L;
  loop_open(c, &L, ci(c, 0), ci(c, K), 1, &init);
  V ai[MAX_DIMS], bi[MAX_DIMS];
  int ab = a->shape.ndim - 2, bb = bm->shape.ndim - 2, ob = nd - 2;
  for (int d = 0; d < ab; d++) ai[d] = a->shape.d[d] == 1 ? ci(c, 0) : idx[d + ob - ab];
  for (int d = 0; d < bb; d++) bi[d] = bm->shape.d[d] == 1 ? ci(c, 0) : idx[d + ob - bb];
  ai[ab] = ta ? L.i : idx[nd - 2];
  ai[ab + 1] = ta ? idx[nd - 2] : L.i;
  bi[bb] = tb ? idx[nd - 1] : L.i;
  bi[bb + 1] = tb ? L.i : idx[nd - 1];
  V av = emit_value(c, a, ai), bv = emit_value(c, bm, bi);
  if (n->tf32) av = round_tf32(c, av), bv = round_tf32(c, bv);
  V next = matmul_fma(c, av, bv, L.acc[0]);
  loop_close(c, &L, &next);
  return L.acc[0];
}

// Every matmul sums its products as fused multiply-adds in the order of k,
// the register tiles (vectors), their edges and these element-wise sums
// alike: so an element's value does not depend on how its matmul was run
// (tiled or not, an operand stored or computed), and fusion changes no bit.
V matmul_fma(Cg *c, V a, V b, V acc) {
  V args[3] = {a, b, acc};
  return call_intrinsic(c, "llvm.fma", LLVMTypeOf(acc), args, 3);
}

// x[n, ch, ih, iw] with zero outside the image.
static V load_image(Cg *c, const Node *x, V nn, V ch, V ih, V iw) {
  V ok = LLVMBuildAnd(c->b,
                      LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, ih, ci(c, 0), ""),
                                   LLVMBuildICmp(c->b, LLVMIntSLT, ih, ci(c, x->shape.d[2]), ""), ""),
                      LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, iw, ci(c, 0), ""),
                                   LLVMBuildICmp(c->b, LLVMIntSLT, iw, ci(c, x->shape.d[3]), ""), ""), "");
  V xi[4] = {nn, ch, clamp_index(c, ih, x->shape.d[2]), clamp_index(c, iw, x->shape.d[3])};
  return LLVMBuildSelect(c->b, ok, emit_value(c, x, xi), cf(c, 0), "");
}


// The kernel taps a transposed window walk (COL2IM, CONV2D_DX) visits at one
// position: output position o reads position o * stride - pad + k * dil, so
// position x (t = x + pad) is read by tap k only when k * dil = t (mod
// stride). Those taps are one residue class mod step = stride / gcd(stride,
// dil), and none when gcd(stride, dil) does not divide t; the loop visits
// ceil(K / step) taps instead of K, with no division inside it.
typedef struct {
  int64_t step, count;   // taps first + j * step, j < count
  V t, first, ok;        // ok: some tap reaches t
} Taps;

static int64_t gcd64(int64_t a, int64_t b) {
  while (b) {
    int64_t r = a % b;
    a = b;
    b = r;
  }
  return a;
}

static Taps taps_of(Cg *c, V x, int stride, int pad, int dil, int64_t K) {
  LLVMBuilderRef B = c->b;
  int64_t g = gcd64(stride, dil), step = stride / g, d = (dil / g) % step, inv = 0;
  while (inv < step && (d * inv) % step != 1 % step) inv++;   // (dil / g)^-1 mod step
  Taps T = {step, (K + step - 1) / step, addc(c, x, pad), NULL, NULL};
  V q = T.t;
  T.ok = LLVMConstInt(c->i1, 1, 0);
  if (g > 1) {
    T.ok = LLVMBuildICmp(B, LLVMIntEQ, LLVMBuildURem(B, T.t, ci(c, g), ""), ci(c, 0), "");
    q = LLVMBuildUDiv(B, T.t, ci(c, g), "");
  }
  T.first = step > 1 ? LLVMBuildURem(B, mulc(c, q, inv), ci(c, step), "") : ci(c, 0);
  return T;
}

// Tap j of T: *k, and the output position *o (< O) it reads from, both
// clamped into range; returns ok and-ed with whether the tap is real.
static V tap_at(Cg *c, const Taps *T, V j, int stride, int dil, int64_t K, int64_t O, V *k, V *o, V ok) {
  LLVMBuilderRef B = c->b;
  V kk = LLVMBuildAdd(B, T->first, mulc(c, j, T->step), "");
  V rest = LLVMBuildSub(B, T->t, mulc(c, kk, dil), "");   // o * stride, exactly, for a real tap
  V oo = LLVMBuildSDiv(B, rest, ci(c, stride), "");
  ok = LLVMBuildAnd(B, ok, LLVMBuildICmp(B, LLVMIntSLT, kk, ci(c, K), ""), "");
  ok = LLVMBuildAnd(B, ok, LLVMBuildICmp(B, LLVMIntSGE, rest, ci(c, 0), ""), "");
  ok = LLVMBuildAnd(B, ok, LLVMBuildICmp(B, LLVMIntSLT, oo, ci(c, O), ""), "");
  *k = clamp_index(c, kk, K);
  *o = clamp_index(c, oo, O);
  return ok;
}

static V kernel_conv(Cg *c, const Node *n, V *o) {
  LLVMBuilderRef B = c->b;
  const int *st = n->p.conv.stride, *pd = n->p.conv.pad, *dl = n->p.conv.dil;
  if (n->op == OP_IM2COL) {   // y[n, p, q]: p = oh * OW + ow, q = (c * KH + kh) * KW + kw
    const Node *x = n->src[0];
    int64_t KH = n->p.conv.kernel[0], KW = n->p.conv.kernel[1];
    int64_t OW = n->p.conv.grid[1];
    V oh = LLVMBuildUDiv(B, o[1], ci(c, OW), ""), ow = LLVMBuildURem(B, o[1], ci(c, OW), "");
    V ch = LLVMBuildUDiv(B, o[2], ci(c, KH * KW), "");
    V kh = LLVMBuildURem(B, LLVMBuildUDiv(B, o[2], ci(c, KW), ""), ci(c, KH), ""), kw = LLVMBuildURem(B, o[2], ci(c, KW), "");
    V ih = LLVMBuildAdd(B, addc(c, mulc(c, oh, st[0]), -pd[0]), mulc(c, kh, dl[0]), "");
    V iw = LLVMBuildAdd(B, addc(c, mulc(c, ow, st[1]), -pd[1]), mulc(c, kw, dl[1]), "");
    return load_image(c, x, o[0], ch, ih, iw);
  }
  int groups = n->p.conv.groups;
  V init = cf(c, 0), acc;
  Loop L;
  if (n->op == OP_COL2IM) {   // x[n, ch, ih, iw] = sum_{kh,kw} rows[n, oh * OW + ow, (ch * KH + kh) * KW + kw]
    const Node *rows = n->src[0];
    int64_t KH = n->p.conv.kernel[0], KW = n->p.conv.kernel[1];
    int64_t OH = n->p.conv.grid[0], OW = n->p.conv.grid[1];
    Taps th = taps_of(c, o[2], st[0], pd[0], dl[0], KH), tw = taps_of(c, o[3], st[1], pd[1], dl[1], KW);
    loop_open(c, &L, ci(c, 0), ci(c, th.count * tw.count), 1, &init);
    V kh, kw, oh, ow, ok = LLVMBuildAnd(B, th.ok, tw.ok, "");
    ok = tap_at(c, &th, LLVMBuildUDiv(B, L.i, ci(c, tw.count), ""), st[0], dl[0], KH, OH, &kh, &oh, ok);
    ok = tap_at(c, &tw, LLVMBuildURem(B, L.i, ci(c, tw.count), ""), st[1], dl[1], KW, OW, &kw, &ow, ok);
    V ri[3] = {o[0], LLVMBuildAdd(B, mulc(c, oh, OW), ow, ""),
               LLVMBuildAdd(B, mulc(c, LLVMBuildAdd(B, mulc(c, o[1], KH), kh, ""), KW), kw, "")};
    acc = LLVMBuildFAdd(B, L.acc[0], LLVMBuildSelect(B, ok, emit_value(c, rows, ri), cf(c, 0), ""), "");
  } else if (n->op == OP_CONV2D) {   // y[n,o,oh,ow] = sum_{c,kh,kw} x[n, g*Cg+c, ...] w[o,c,kh,kw]
    const Node *x = n->src[0], *w = n->src[1];
    int64_t Cg_ = w->shape.d[1], KH = w->shape.d[2], KW = w->shape.d[3], Og = w->shape.d[0] / groups;
    Shape r = shape_of(3, (int64_t[]){Cg_, KH, KW});
    loop_open(c, &L, ci(c, 0), ci(c, shape_numel(&r)), 1, &init);
    V ri[3];
    delinearize(c, L.i, &r, ri);
    V ch = LLVMBuildAdd(B, mulc(c, LLVMBuildUDiv(B, o[1], ci(c, Og), ""), Cg_), ri[0], "");
    V ih = LLVMBuildAdd(B, addc(c, mulc(c, o[2], st[0]), -pd[0]), mulc(c, ri[1], dl[0]), "");
    V iw = LLVMBuildAdd(B, addc(c, mulc(c, o[3], st[1]), -pd[1]), mulc(c, ri[2], dl[1]), "");
    V wi[4] = {o[1], ri[0], ri[1], ri[2]};
    acc = LLVMBuildFAdd(B, L.acc[0], LLVMBuildFMul(B, load_image(c, x, o[0], ch, ih, iw), emit_value(c, w, wi), ""), "");
  } else if (n->op == OP_CONV2D_DX) {   // dx[n,ch,ih,iw] = sum_{o in group,kh,kw} dy[n,o,oh,ow] w[o,c,kh,kw]
    const Node *dy = n->src[0], *w = n->src[1];
    int64_t Cg_ = w->shape.d[1], KH = w->shape.d[2], KW = w->shape.d[3], Og = w->shape.d[0] / groups;
    Taps th = taps_of(c, o[2], st[0], pd[0], dl[0], KH), tw = taps_of(c, o[3], st[1], pd[1], dl[1], KW);
    Shape r = shape_of(3, (int64_t[]){Og, th.count, tw.count});
    loop_open(c, &L, ci(c, 0), ci(c, shape_numel(&r)), 1, &init);
    V ri[3];
    delinearize(c, L.i, &r, ri);
    V g = LLVMBuildUDiv(B, o[1], ci(c, Cg_), "");
    V oc = LLVMBuildAdd(B, mulc(c, g, Og), ri[0], "");
    V kh, kw, oh, ow, ok = LLVMBuildAnd(B, th.ok, tw.ok, "");
    ok = tap_at(c, &th, ri[1], st[0], dl[0], KH, dy->shape.d[2], &kh, &oh, ok);
    ok = tap_at(c, &tw, ri[2], st[1], dl[1], KW, dy->shape.d[3], &kw, &ow, ok);
    V di[4] = {o[0], oc, oh, ow};
    V wi[4] = {oc, LLVMBuildURem(B, o[1], ci(c, Cg_), ""), kh, kw};
    V term = LLVMBuildFMul(B, emit_value(c, dy, di), emit_value(c, w, wi), "");
    acc = LLVMBuildFAdd(B, L.acc[0], LLVMBuildSelect(B, ok, term, cf(c, 0), ""), "");
  } else {   // dw[o,c,kh,kw] = sum_{n,oh,ow} x[n, g*Cg+c, oh*s-p+kh*d, ...] dy[n,o,oh,ow]
    const Node *x = n->src[0], *dy = n->src[1];
    int64_t Cg_ = n->shape.d[1], Og = n->shape.d[0] / groups;
    Shape r = shape_of(3, (int64_t[]){dy->shape.d[0], dy->shape.d[2], dy->shape.d[3]});
    loop_open(c, &L, ci(c, 0), ci(c, shape_numel(&r)), 1, &init);
    V ri[3];
    delinearize(c, L.i, &r, ri);
    V ch = LLVMBuildAdd(B, mulc(c, LLVMBuildUDiv(B, o[0], ci(c, Og), ""), Cg_), o[1], "");
    V ih = LLVMBuildAdd(B, addc(c, mulc(c, ri[1], st[0]), -pd[0]), mulc(c, o[2], dl[0]), "");
    V iw = LLVMBuildAdd(B, addc(c, mulc(c, ri[2], st[1]), -pd[1]), mulc(c, o[3], dl[1]), "");
    V di[4] = {ri[0], o[0], ri[1], ri[2]};
    acc = LLVMBuildFAdd(B, L.acc[0], LLVMBuildFMul(B, load_image(c, x, ri[0], ch, ih, iw), emit_value(c, dy, di), ""), "");
  }
  loop_close(c, &L, &acc);
  return L.acc[0];
}

// The first position (row-major) of the maximum of the window at (oh, ow),
// as a linear ih * W + iw; -1 when the window holds no input. *max (when
// not NULL): the maximum itself, the first NaN, or -inf for no input.
// Whether every window of pool n lies inside its image x (no padding, none
// past the last row or column), the common case: its walk needs no bounds.
static bool windows_inside(const Node *n, const Node *x, int64_t OH, int64_t OW) {
  const int *k = n->p.pool.kernel, *st = n->p.pool.stride, *pd = n->p.pool.pad;
  return pd[0] == 0 && pd[1] == 0 && (OH - 1) * st[0] + k[0] <= x->shape.d[2] && (OW - 1) * st[1] + k[1] <= x->shape.d[3];
}

static V window_argmax(Cg *c, const Node *n, const Node *x, V nn, V ch, V oh, V ow, V *max) {
  LLVMBuilderRef B = c->b;
  const int *k = n->p.pool.kernel, *st = n->p.pool.stride, *pd = n->p.pool.pad;
  const Node *y = n->op == OP_POOL_MAX_DX ? n->src[1] : n;   // the pooled shape
  bool inside = windows_inside(n, x, y->shape.d[2], y->shape.d[3]);
  V init[2] = {cf(c, -1.0 / 0.0), ci(c, -1)};
  Loop L;
  loop_open(c, &L, ci(c, 0), ci(c, (int64_t)k[0] * k[1]), 2, init);
  V ih = LLVMBuildAdd(B, addc(c, mulc(c, oh, st[0]), -pd[0]), LLVMBuildUDiv(B, L.i, ci(c, k[1]), ""), "");
  V iw = LLVMBuildAdd(B, addc(c, mulc(c, ow, st[1]), -pd[1]), LLVMBuildURem(B, L.i, ci(c, k[1]), ""), "");
  V in, v;
  if (inside) {   // the position is in the image: read it as it is, with no clamp
    in = LLVMConstInt(c->i1, 1, false);
    v = emit_value(c, x, (V[]){nn, ch, ih, iw});
  } else {
    in = LLVMBuildAnd(B, LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntSGE, ih, ci(c, 0), ""), LLVMBuildICmp(B, LLVMIntSLT, ih, ci(c, x->shape.d[2]), ""), ""),
                      LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntSGE, iw, ci(c, 0), ""), LLVMBuildICmp(B, LLVMIntSLT, iw, ci(c, x->shape.d[3]), ""), ""), "");
    v = load_image(c, x, nn, ch, ih, iw);
  }
  V first = LLVMBuildICmp(B, LLVMIntEQ, L.acc[1], ci(c, -1), "");
  V better = LLVMBuildAnd(B, in, LLVMBuildOr(B, first, LLVMBuildFCmp(B, LLVMRealUGT, v, L.acc[0], ""), ""), "");
  better = LLVMBuildAnd(B, better, LLVMBuildNot(B, LLVMBuildFCmp(B, LLVMRealUNO, L.acc[0], L.acc[0], ""), ""), "");
  V next[2] = {LLVMBuildSelect(B, better, v, L.acc[0], ""),
               LLVMBuildSelect(B, better, LLVMBuildAdd(B, mulc(c, ih, x->shape.d[3]), iw, ""), L.acc[1], "")};
  loop_close(c, &L, next);
  if (max) *max = L.acc[0];
  return L.acc[1];
}

int pool_row_step(const Node *n) {
  if (n->op != OP_POOL_MAX_DX && n->op != OP_POOL_AVG_DX) return 0;
  const int *k = n->p.pool.kernel, *st = n->p.pool.stride, *pd = n->p.pool.pad;
  const Node *dy = n->op == OP_POOL_MAX_DX ? n->src[1] : n->src[0];
  return k[1] == st[1] && st[1] >= 2 && pd[1] == 0 && k[0] <= st[0] && dy->shape.d[3] * st[1] <= n->shape.d[3] ? st[1] : 0;
}

// The window row that covers row ih of pool gradient n (k[0] <= stride:
// at most one), clamped into the output: the caller checks the cover.
static V pool_window_row(Cg *c, const Node *n, V ih) {
  const Node *dy = n->op == OP_POOL_MAX_DX ? n->src[1] : n->src[0];
  return clamp_index(c, LLVMBuildUDiv(c->b, addc(c, ih, n->p.pool.pad[0]), ci(c, n->p.pool.stride[0]), ""), dy->shape.d[2]);
}

void pool_row_begin(Cg *c, const Node *n, const V *idx, V ow) {
  c->pool = n;
  memcpy(c->pool_idx, idx, sizeof c->pool_idx);
  c->pool_ow = ow;
  c->pool_at = n->op == OP_POOL_MAX_DX ? window_argmax(c, n, n->src[0], idx[0], idx[1], pool_window_row(c, n, idx[2]), ow, NULL) : NULL;
}

void pool_row_end(Cg *c) {
  c->pool = NULL;
  c->pool_ow = c->pool_at = c->pool_iw = NULL;
}

static V kernel_pool(Cg *c, const Node *n, V *o) {
  LLVMBuilderRef B = c->b;
  const int *k = n->p.pool.kernel, *st = n->p.pool.stride, *pd = n->p.pool.pad;
  if (n->op == OP_POOL_MAX) {   // the value the walk found, not x read again at its position
    V max;
    window_argmax(c, n, n->src[0], o[0], o[1], o[2], o[3], &max);
    return max;
  }
  if (n->op == OP_POOL_AVG) {
    const Node *x = n->src[0];
    V init = cf(c, 0);
    Loop L;
    loop_open(c, &L, ci(c, 0), ci(c, (int64_t)k[0] * k[1]), 1, &init);
    V ih = LLVMBuildAdd(B, addc(c, mulc(c, o[2], st[0]), -pd[0]), LLVMBuildUDiv(B, L.i, ci(c, k[1]), ""), "");
    V iw = LLVMBuildAdd(B, addc(c, mulc(c, o[3], st[1]), -pd[1]), LLVMBuildURem(B, L.i, ci(c, k[1]), ""), "");
    V next = LLVMBuildFAdd(B, L.acc[0], load_image(c, x, o[0], o[1], ih, iw), "");
    loop_close(c, &L, &next);
    return LLVMBuildFDiv(B, L.acc[0], cf(c, (double)k[0] * k[1]), "");
  }
  // gradients: dx[n,c,ih,iw] sums over the windows (oh, ow) that contain
  // (ih, iw): oh = (ih + pad) / stride - j for j < ceil(kernel / stride),
  // kept when inside the output and when the window reaches ih
  const Node *dy = n->op == OP_POOL_MAX_DX ? n->src[1] : n->src[0];
  const Node *x = n->op == OP_POOL_MAX_DX ? n->src[0] : NULL;
  int64_t OH = dy->shape.d[2], OW = dy->shape.d[3];
  // the row loop's window (pool_row_begin): one, inside along w
  bool known = c->pool == n && o[0] == c->pool_idx[0] && o[1] == c->pool_idx[1] && o[2] == c->pool_idx[2] && o[3] == c->pool_iw;
  int64_t CH = (k[0] + st[0] - 1) / st[0], CW = known ? 1 : (k[1] + st[1] - 1) / st[1];
  V init = cf(c, 0);
  Loop L;
  loop_open(c, &L, ci(c, 0), ci(c, CH * CW), 1, &init);
  V oh = LLVMBuildSub(B, LLVMBuildUDiv(B, addc(c, o[2], pd[0]), ci(c, st[0]), ""), LLVMBuildUDiv(B, L.i, ci(c, CW), ""), "");
  V h0 = addc(c, mulc(c, oh, st[0]), -pd[0]);
  V covers = LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntSGE, oh, ci(c, 0), ""), LLVMBuildICmp(B, LLVMIntSLT, oh, ci(c, OH), ""), "");
  covers = LLVMBuildAnd(B, covers, LLVMBuildICmp(B, LLVMIntSLT, o[2], addc(c, h0, k[0]), ""), "");
  V ow = c->pool_ow;
  if (!known) {
    ow = LLVMBuildSub(B, LLVMBuildUDiv(B, addc(c, o[3], pd[1]), ci(c, st[1]), ""), LLVMBuildURem(B, L.i, ci(c, CW), ""), "");
    V w0 = addc(c, mulc(c, ow, st[1]), -pd[1]);
    covers = LLVMBuildAnd(B, covers, LLVMBuildAnd(B, LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntSGE, ow, ci(c, 0), ""), LLVMBuildICmp(B, LLVMIntSLT, ow, ci(c, OW), ""), ""),
                                                  LLVMBuildICmp(B, LLVMIntSLT, o[3], addc(c, w0, k[1]), ""), ""), "");
    ow = clamp_index(c, ow, OW);
  }
  oh = clamp_index(c, oh, OH);
  V di[4] = {o[0], o[1], oh, ow};
  V g = emit_value(c, dy, di);
  if (x) {
    V at = known ? c->pool_at : window_argmax(c, n, x, o[0], o[1], oh, ow, NULL);
    V here = LLVMBuildICmp(B, LLVMIntEQ, at, LLVMBuildAdd(B, mulc(c, o[2], x->shape.d[3]), o[3], ""), "");
    covers = LLVMBuildAnd(B, covers, here, "");
  } else {
    g = LLVMBuildFDiv(B, g, cf(c, (double)k[0] * k[1]), "");
  }
  V next = LLVMBuildFAdd(B, L.acc[0], LLVMBuildSelect(B, covers, g, cf(c, 0), ""), "");
  loop_close(c, &L, &next);
  return L.acc[0];
}

// Sets the error word to word unless ok.
static void flag_word_unless(Cg *c, V ok, V word) {
  if (!c->target->error_by_branch) {   // branch-free, so the loop around it stays simple
    V old = LLVMBuildLoad2(c->b, c->i64, c->errp, "");
    LLVMBuildStore(c->b, LLVMBuildSelect(c->b, ok, old, word, ""), c->errp);
    return;
  }
  // Only a thread that meets a bad index writes the word.
  LLVMBasicBlockRef bad = block(c, "bad"), on = block(c, "ok");
  LLVMBuildCondBr(c->b, ok, on, bad);
  LLVMPositionBuilderAtEnd(c->b, bad);
  LLVMBuildStore(c->b, word, c->errp);
  LLVMBuildBr(c->b, on);
  LLVMPositionBuilderAtEnd(c->b, on);
}

void flag_unless(Cg *c, const Node *n, V ok) { flag_word_unless(c, ok, ci(c, n->id + 1)); }

V clamp_i64(Cg *c, V v, int64_t lo, int64_t hi) {
  LLVMBuilderRef B = c->b;
  v = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, v, ci(c, lo), ""), ci(c, lo), v, "");
  return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, v, ci(c, hi), ""), ci(c, hi), v, "");
}

// LABEL: the id itself; an id outside [0, n) other than the skipped one
// sets a label error word (ingot.h): the line, the position, the value.
static V kernel_label(Cg *c, const Node *n, V *o) {
  LLVMBuilderRef B = c->b;
  V id = emit_value(c, n->src[0], o);
  V ok = LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntSGE, id, ci(c, 0), ""),
                      LLVMBuildICmp(B, LLVMIntSLT, id, ci(c, n->p.label.n), ""), "");
  if (n->p.label.skips) ok = LLVMBuildOr(B, ok, LLVMBuildICmp(B, LLVMIntEQ, id, ci(c, n->p.label.skip), ""), "");
  int64_t line = n->p.label.line < 0 ? 0 : n->p.label.line > INGOT_ERR_LINE_MAX ? INGOT_ERR_LINE_MAX : n->p.label.line;
  V pos = clamp_i64(c, linearize(c, o, &n->shape), 0, INGOT_ERR_POS_MAX);
  V val = LLVMBuildAdd(B, clamp_i64(c, id, -INGOT_ERR_VALUE_BIAS, INGOT_ERR_VALUE_BIAS - 1), ci(c, INGOT_ERR_VALUE_BIAS), "");
  V word = LLVMBuildOr(B, ci(c, INGOT_ERR_LABEL | line << INGOT_ERR_LINE_SHIFT),
                       LLVMBuildOr(B, LLVMBuildShl(B, pos, ci(c, INGOT_ERR_POS_SHIFT), ""), val, ""), "");
  flag_word_unless(c, ok, word);
  return id;
}

static V kernel_gather(Cg *c, const Node *n, V *o) {
  LLVMBuilderRef B = c->b;
  const Node *ids;
  if (n->op == OP_LABEL) return kernel_label(c, n, o);
  if (n->op == OP_GATHER) {   // y[..., c] = table[ids[...], c]
    const Node *table = n->src[0];
    ids = n->src[1];
    V id = emit_value(c, ids, o);
    int64_t V_ = table->shape.d[0];
    flag_unless(c, n, LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntSGE, id, ci(c, 0), ""), LLVMBuildICmp(B, LLVMIntSLT, id, ci(c, V_), ""), ""));
    V ti[2] = {clamp_index(c, id, V_), o[n->shape.ndim - 1]};
    return emit_value(c, table, ti);
  }
  // scatter_add: y[v, c] = sum over j with ids[j] = v of values[j, c], in order
  ids = n->src[0];
  const Node *vals = n->src[1];
  V init = cf(c, 0);
  Loop L;
  loop_open(c, &L, ci(c, 0), ci(c, shape_numel(&ids->shape)), 1, &init);
  V ji[MAX_DIMS + 1];
  delinearize(c, L.i, &ids->shape, ji);
  V id = emit_value(c, ids, ji);
  flag_unless(c, n, LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntSGE, id, ci(c, 0), ""), LLVMBuildICmp(B, LLVMIntSLT, id, ci(c, n->shape.d[0]), ""), ""));
  ji[ids->shape.ndim] = o[1];
  V v = emit_value(c, vals, ji);
  V next = LLVMBuildFAdd(B, L.acc[0], LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntEQ, id, o[0], ""), v, cf(c, 0), ""), "");
  loop_close(c, &L, &next);
  return L.acc[0];
}

// The value of a computing node (not a view) at idx, before rounding.
static V computed_value(Cg *c, const Node *n, V *idx) {
  if (node_is_folded(n)) return emit_folded(c, n, idx);
  if (node_is_pointwise(n)) return kernel_pointwise(c, n, idx);
  switch (op_kind(n->op)) {
  case KIND_REDUCE: return reduce_value(c, n, idx);
  case KIND_CONTRACT: return kernel_matmul(c, n, idx);
  case KIND_CONV: return kernel_conv(c, n, idx);
  case KIND_POOL: return kernel_pool(c, n, idx);
  case KIND_GATHER: return kernel_gather(c, n, idx);
  case KIND_ATTN: break;   // whole rows, by attn_row: never a value at one index
  case KIND_LEAF: case KIND_UNARY: case KIND_BINARY: case KIND_COMPARE: case KIND_SELECT: case KIND_MOVE:
    break;
  }
  ASSERT(n->op == OP_RANDOM);   // an attention node is always stored
  return kernel_random(c, n, linearize(c, idx, &n->shape));
}

V kernel_value(Cg *c, const Kernel *k, V *idx, V lin) {
  if (k->kind == KK_RANDOM) return kernel_random(c, k->root, lin);
  return computed_value(c, k->root, idx);
}

void kernel_store(Cg *c, const Kernel *k, V lin, V root_val) {
  V vals[KERNEL_MAX_OUTS];
  c->nsubst = 0;
  if (k->root != k->out) {
    c->subst[0] = k->root;
    c->subst_val[c->nsubst++] = round_value(c, root_val, k->root->dtype);
  }
  for (int o = 0; o < k->nouts; o++) {
    const Node *n = k->outs[o];
    if (n == k->root) {
      vals[o] = root_val;
    } else {
      V idx[MAX_DIMS];
      if (c->out_lin == lin && shape_eq(&n->shape, c->out_shape)) memcpy(idx, c->out_idx, sizeof idx);
      else delinearize(c, lin, &n->shape, idx);
      vals[o] = computed_value(c, n, idx);
    }
    c->subst[c->nsubst] = n;
    c->subst_val[c->nsubst++] = round_value(c, vals[o], n->dtype);
  }
  c->nsubst = 0;
  for (int o = 0; o < k->nouts; o++) store_at(c, k->outs[o], lin, vals[o]);
}

static bool is_root(const Kernel *k, const Node *n) {
  for (int r = 0; r < k->nroots; r++)
    if (k->roots[r] == n) return true;
  return false;
}

void row_outputs(Cg *c, const Kernel *k, V row, V from, int64_t step, V first) {
  const Node *r0 = k->root, *x = r0->src[0];
  int64_t rn = shape_numel(&r0->shape), xn = shape_numel(&x->shape);
  int base = c->nsubst;
  // the row's own outputs: the reductions' values, their epilogues
  LLVMBasicBlockRef put = block(c, "rowput"), after = block(c, "rowdone");
  LLVMBuildCondBr(c->b, first, put, after);
  LLVMPositionBuilderAtEnd(c->b, put);
  for (int o = 0; o < k->nouts; o++) {
    const Node *n = k->outs[o];
    if (shape_numel(&n->shape) != rn) continue;
    V v = NULL;
    for (int i = 0; i < base && !v; i++)
      if (c->subst[i] == n) v = c->subst_val[i];
    if (!is_root(k, n)) {
      V idx[MAX_DIMS];
      delinearize(c, row, &n->shape, idx);
      v = computed_value(c, n, idx);
    }
    store_at(c, n, row, v);
  }
  LLVMBuildBr(c->b, after);
  LLVMPositionBuilderAtEnd(c->b, after);
  // the row's elements: X is the rows (Rs) times the reduced inner block
  int64_t len = rn ? xn / rn : 0;
  bool any = false;
  for (int o = 0; o < k->nouts; o++) any |= shape_numel(&k->outs[o]->shape) == xn && !is_root(k, k->outs[o]);
  if (!any) return;
  Loop L;
  loop_open(c, &L, from, ci(c, len), 0, NULL);
  if (step != 1) L.step = ci(c, step);
  V lin = LLVMBuildAdd(c->b, mulc(c, row, len), L.i, "");
  V vals[KERNEL_MAX_OUTS];
  for (int o = 0; o < k->nouts; o++) {
    const Node *n = k->outs[o];
    vals[o] = NULL;
    if (shape_numel(&n->shape) != xn || is_root(k, n)) continue;
    V idx[MAX_DIMS];
    delinearize(c, lin, &n->shape, idx);
    vals[o] = computed_value(c, n, idx);
    c->subst[c->nsubst] = n;
    c->subst_val[c->nsubst++] = round_value(c, vals[o], n->dtype);
  }
  for (int o = 0; o < k->nouts; o++)
    if (vals[o]) store_at(c, k->outs[o], lin, vals[o]);
  c->nsubst = base;
  loop_close(c, &L, NULL);
}

void row_serial(Cg *c, const Kernel *k, V row) {
  V ridx[MAX_DIMS];
  delinearize(c, row, &k->root->shape, ridx);
  c->nsubst = 0;
  for (int r = 0; r < k->nroots; r++) {
    V v = reduce_value(c, k->roots[r], ridx);
    c->subst[c->nsubst] = k->roots[r];
    c->subst_val[c->nsubst++] = round_value(c, v, k->roots[r]->dtype);
  }
  row_outputs(c, k, row, ci(c, 0), 1, LLVMConstInt(c->i1, 1, false));
  c->nsubst = 0;
}

// ---- modules

void cg_open(Cg *c, const Target *t, const char *name, LLVMTargetMachineRef tm) {
  memset(c, 0, sizeof *c);
  c->target = t;
  c->time_ir = TIME_HOST_IR;   // a GPU module sets TIME_GPU_IR
  c->t_open = time_now();
  c->cx = LLVMContextCreate();
  c->mod = LLVMModuleCreateWithNameInContext(name, c->cx);
  LLVMSetTarget(c->mod, t->triple);
  LLVMTargetDataRef layout = LLVMCreateTargetDataLayout(tm);
  char *dl = LLVMCopyStringRepOfTargetData(layout);
  LLVMSetDataLayout(c->mod, dl);
  LLVMDisposeMessage(dl);
  LLVMDisposeTargetData(layout);
  c->b = LLVMCreateBuilderInContext(c->cx);
  c->i1 = LLVMInt1TypeInContext(c->cx);
  c->i8 = LLVMInt8TypeInContext(c->cx);
  c->i16 = LLVMInt16TypeInContext(c->cx);
  c->i32 = LLVMInt32TypeInContext(c->cx);
  c->i64 = LLVMInt64TypeInContext(c->cx);
  c->f32 = LLVMFloatTypeInContext(c->cx);
  c->f64 = LLVMDoubleTypeInContext(c->cx);
  c->f16 = LLVMHalfTypeInContext(c->cx);
  c->bf16 = LLVMBFloatTypeInContext(c->cx);
  c->ptr = LLVMPointerTypeInContext(c->cx, 0);
  c->gptr = LLVMPointerTypeInContext(c->cx, t->buffer_space);
  c->md_invariant = LLVMGetMDKindIDInContext(c->cx, "invariant.load", 14);
  c->md_align = LLVMGetMDKindIDInContext(c->cx, "align", 5);
}

void cg_close(Cg *c) {
  LLVMDisposeBuilder(c->b);
  LLVMDisposeModule(c->mod);
  if (c->group_mod) LLVMDisposeModule(c->group_mod);
  LLVMContextDispose(c->cx);
}

// Each kernel alone in a module of its own, named "body", printed before any
// optimization: the text holds everything the kernel's code depends on
// (attributes, metadata, shared arrays), and no slot, since bodies index
// their own buffer numbers.
void cg_kernel_keys(Cg *c, const KernelPlan *const *plans, int nplans, int from, int to,
                    void (*emit)(Cg *, const Kernel *), Blob *keys) {
  LLVMModuleRef main = c->mod;
  const char *dl = LLVMGetDataLayoutStr(main);
  for (int p = 0, first = 0; p < nplans; first += plans[p++]->n) {
    c->plan = plans[p];
    for (int i = 0; i < plans[p]->n; i++) {
      if (first + i < from || first + i >= to) continue;
      Kernel k = plans[p]->kernels[i];
      snprintf(k.name, sizeof k.name, "body");
      c->mod = LLVMModuleCreateWithNameInContext("key", c->cx);
      LLVMSetTarget(c->mod, c->target->triple);
      LLVMSetDataLayout(c->mod, dl);
      llvm_errors_at("kernel %s", plans[p]->kernels[i].name);
      emit(c, &k);
      c->kernel = NULL;
      char *text = LLVMPrintModuleToString(c->mod);
      size_t n = strlen(text);
      Blob *b = &keys[first + i];
      b->data = xrealloc(b->data, b->len + n + 1);
      memcpy(b->data + b->len, text, n + 1);
      b->len += n;
      LLVMDisposeMessage(text);
      LLVMDisposeModule(c->mod);
    }
  }
  c->mod = main;
}

int cg_fail(char *err, size_t errlen, const char *what, char *llvm_msg) {
  snprintf(err, errlen, "%s: %s", what, llvm_msg ? llvm_msg : "unknown LLVM error");
  if (llvm_msg) LLVMDisposeMessage(llvm_msg);
  return -1;
}

// Verifies the module and optimizes it at O3; 0, or -1 with a message.
static int cg_optimize(Cg *c, LLVMTargetMachineRef tm, char *err, size_t errlen) {
  char *msg = NULL;
  if (LLVMVerifyModule(c->mod, LLVMReturnStatusAction, &msg))
    return cg_fail(err, errlen, "internal error: invalid LLVM IR", msg);
  LLVMDisposeMessage(msg);
  double t0 = time_now();
  LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
  LLVMErrorRef e = LLVMRunPasses(c->mod, "default<O3>", tm, opts);
  LLVMDisposePassBuilderOptions(opts);
  time_add(c->time_ir + 1, t0);
  if (e) return cg_fail(err, errlen, "LLVM optimization failed", LLVMGetErrorMessage(e));
  return 0;
}

int cg_finish(Cg *c, LLVMTargetMachineRef tm, LLVMCodeGenFileType kind, Blob *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  time_add(c->time_ir, c->t_open);
  if (cg_optimize(c, tm, err, errlen)) return -1;
  char *msg = NULL;
  LLVMMemoryBufferRef buf;
  double t0 = time_now();
  bool failed = LLVMTargetMachineEmitToMemoryBuffer(tm, c->mod, kind, &msg, &buf);
  time_add(c->time_ir + 2, t0);
  if (failed) return cg_fail(err, errlen, "LLVM could not emit code", msg);
  out->len = LLVMGetBufferSize(buf);
  out->data = xmalloc(out->len + 1);
  memcpy(out->data, LLVMGetBufferStart(buf), out->len);
  out->data[out->len] = '\0';   // PTX is text
  LLVMDisposeMemoryBuffer(buf);
  return 0;
}

int cg_finish_ir(Cg *c, LLVMTargetMachineRef tm, Blob *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  time_add(c->time_ir, c->t_open);
  if (cg_optimize(c, tm, err, errlen)) return -1;
  char *text = LLVMPrintModuleToString(c->mod);
  out->len = strlen(text);
  out->data = xstrdup(text);
  LLVMDisposeMessage(text);
  return 0;
}
