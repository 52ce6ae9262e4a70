// codegen_math.c: calls of LLVM intrinsics, and f32 transcendentals by the
// target's hooks (the layer below the expression emitter).
//
// The expression layer asks for exp, log, tanh, sin, cos and pow here; each
// is the target's hook when it has one and LLVM's intrinsic otherwise (the
// host's back end calls libm, AMDGPU's lowers most of them itself). The
// decompositions below build a function from others the target has, once,
// for every target whose back end lacks it: NVPTX has hardware
// approximations of exp2, log2 and sin and no library to call for the rest;
// AMDGPU lowers exp, log and sin but not tanh. Each is accurate to a few
// units in the last place of f32 over the ranges models use.
#include "codegen.h"

#include <string.h>

// ---- intrinsics

V call_intrinsic(Cg *c, const char *name, LLVMTypeRef t, V *args, unsigned n) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  ASSERT(id != 0);
  LLVMTypeRef tys[1] = {t};
  LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->mod, id, tys, 1);
  LLVMTypeRef ft = LLVMIntrinsicGetType(c->cx, id, tys, 1);
  return LLVMBuildCall2(c->b, ft, f, args, n, "");
}

V call_plain_intrinsic(Cg *c, const char *name, V *args, unsigned n) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  ASSERT(id != 0);
  LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->mod, id, NULL, 0);
  LLVMTypeRef ft = LLVMIntrinsicGetType(c->cx, id, NULL, 0);
  return LLVMBuildCall2(c->b, ft, f, args, n, "");
}

V math_fma(Cg *c, V a, V b, V d) {
  V args[3] = {a, b, d};
  return call_intrinsic(c, "llvm.fma", c->f32, args, 3);
}

// ---- by the target

V math_exp(Cg *c, V x) { return c->target->exp ? c->target->exp(c, x) : intrinsic1(c, "llvm.exp", x); }
V math_exp2(Cg *c, V x) { return intrinsic1(c, "llvm.exp2", x); }
V math_log(Cg *c, V x) { return c->target->log ? c->target->log(c, x) : intrinsic1(c, "llvm.log", x); }
V math_log2(Cg *c, V x) { return c->target->log2 ? c->target->log2(c, x) : intrinsic1(c, "llvm.log2", x); }
V math_tanh(Cg *c, V x) { return c->target->tanh ? c->target->tanh(c, x) : intrinsic1(c, "llvm.tanh", x); }
V math_sin(Cg *c, V x) { return c->target->sin ? c->target->sin(c, x) : intrinsic1(c, "llvm.sin", x); }
V math_cos(Cg *c, V x) { return c->target->cos ? c->target->cos(c, x) : intrinsic1(c, "llvm.cos", x); }

V math_pow(Cg *c, V a, V b) {
  if (c->target->pow) return c->target->pow(c, a, b);
  V args[2] = {a, b};
  return call_intrinsic(c, "llvm.pow", c->f32, args, 2);
}

// ---- decompositions

// exp(x) = 2^n * exp(r), n = rint(x / ln 2), r = x - n ln 2 with a two-part
// ln 2 (exact products), and 2^n as two halves so it cannot overflow early.
// x = n ln 2 + r with n = rint(x / ln 2), |r| <= ln 2 / 2: ln 2 in two parts,
// whose products with n are exact.
static V ln2_reduce(Cg *c, V x, V *n) {
  LLVMBuilderRef B = c->b;
  *n = intrinsic1(c, "llvm.rint", LLVMBuildFMul(B, x, cf(c, 1.4426950408889634), ""));
  V r = math_fma(c, LLVMBuildFNeg(B, *n, ""), cf(c, 0.693145751953125), x);
  return math_fma(c, LLVMBuildFNeg(B, *n, ""), cf(c, 1.428606765330187e-06), r);
}

V math_exp_by_exp2(Cg *c, V x) {
  LLVMBuilderRef B = c->b;
  V n, r = ln2_reduce(c, x, &n);
  V h = intrinsic1(c, "llvm.floor", LLVMBuildFMul(B, n, cf(c, 0.5), ""));
  V p = math_exp2(c, LLVMBuildFMul(B, r, cf(c, 1.4426950408889634), ""));
  p = LLVMBuildFMul(B, p, math_exp2(c, h), "");
  return LLVMBuildFMul(B, p, math_exp2(c, LLVMBuildFSub(B, n, h, "")), "");
}

V math_log_by_log2(Cg *c, V x) { return LLVMBuildFMul(c->b, math_log2(c, x), cf(c, 0.6931471805599453), ""); }

// tanh(|x|) = (1 - e) / (1 + e) with e = exp(-2|x|); below 1/16 the odd
// series, where 1 - e would cancel.
V math_tanh_by_exp(Cg *c, V x) {
  LLVMBuilderRef B = c->b;
  V ax = intrinsic1(c, "llvm.fabs", x);
  V e = math_exp(c, LLVMBuildFMul(B, ax, cf(c, -2), ""));
  V big = LLVMBuildFDiv(B, LLVMBuildFSub(B, cf(c, 1), e, ""), LLVMBuildFAdd(B, cf(c, 1), e, ""), "");
  V x2 = LLVMBuildFMul(B, ax, ax, "");
  V s = math_fma(c, x2, cf(c, -17.0 / 315), cf(c, 2.0 / 15));
  s = math_fma(c, x2, s, cf(c, -1.0 / 3));
  s = math_fma(c, x2, s, cf(c, 1));
  V small = LLVMBuildFMul(B, ax, s, "");
  V t = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOLT, ax, cf(c, 0.0625), ""), small, big, "");
  V args[2] = {t, x};
  return call_intrinsic(c, "llvm.copysign", c->f32, args, 2);   // NaN stays NaN: e and t are NaN
}

// e^y for y in [0, 18.5], without a call: y = n ln 2 + r (ln2_reduce), e^r
// by its series to r^7 (the rest below 2^-28 of it), 2^n put in the
// exponent bits.
static V exp_bounded(Cg *c, V y) {
  LLVMBuilderRef B = c->b;
  V n, r = ln2_reduce(c, y, &n);
  static const double inv_fact[] = {1.0 / 5040, 1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1, 1};
  V p = cf(c, inv_fact[0]);
  for (int i = 1; i < 8; i++) p = math_fma(c, p, r, cf(c, inv_fact[i]));
  V bits = LLVMBuildShl(B, LLVMBuildAdd(B, LLVMBuildFPToSI(B, n, c->i32, ""), LLVMConstInt(c->i32, 127, false), ""),
                        LLVMConstInt(c->i32, 23, false), "");
  return LLVMBuildFMul(B, p, LLVMBuildBitCast(B, bits, c->f32, ""), "");
}

// exp(x) for every float without a call (so that a loop of them
// vectorizes): x clamped to [-104, 89], beyond which e^x is 0 or inf in
// f32; x = n ln 2 + r (ln2_reduce), e^r by its series to r^7, and 2^n as two
// powers of two put in exponent bits, so that neither overflows nor
// underflows before the last product (which rounds a subnormal once). NaN
// stays NaN. Within 2 ulps of libm's (codegen/exp_within_two_ulps_of_libm).
V math_exp_inline(Cg *c, V x) {
  LLVMBuilderRef B = c->b;
  V lo[2] = {x, cf(c, -104)}, hi[2];
  hi[0] = call_intrinsic(c, "llvm.maxnum", c->f32, lo, 2);
  hi[1] = cf(c, 89);
  V n, r = ln2_reduce(c, call_intrinsic(c, "llvm.minnum", c->f32, hi, 2), &n);
  static const double inv_fact[] = {1.0 / 5040, 1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1, 1};
  V p = cf(c, inv_fact[0]);
  for (int i = 1; i < 8; i++) p = math_fma(c, p, r, cf(c, inv_fact[i]));
  V h = intrinsic1(c, "llvm.floor", LLVMBuildFMul(B, n, cf(c, 0.5), ""));
  V e = p;
  V half[2] = {h, LLVMBuildFSub(B, n, h, "")};
  for (int i = 0; i < 2; i++) {
    V bits = LLVMBuildShl(B, LLVMBuildAdd(B, LLVMBuildFPToSI(B, half[i], c->i32, ""), LLVMConstInt(c->i32, 127, false), ""),
                          LLVMConstInt(c->i32, 23, false), "");
    e = LLVMBuildFMul(B, e, LLVMBuildBitCast(B, bits, c->f32, ""), "");
  }
  return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealUNO, x, x, ""), x, e, "");
}

// tanh(x) without a call (so that a loop of them vectorizes): below 0.55 the
// odd series to x^17 (the next term is under 0.1 ulp there), above it
// 1 - 2 / (e^(2|x|) + 1) with |x| clamped to 9, beyond which tanh is 1 in
// f32; the sign copied back (tanh(-0) = -0), NaN kept. Within 2 ulps of
// libm's (codegen/tanh_within_two_ulps_of_libm).
V math_tanh_inline(Cg *c, V x) {
  LLVMBuilderRef B = c->b;
  static const double odd[] = {6404582.0 / 10854718875, -929569.0 / 638512875, 21844.0 / 6081075, -1382.0 / 155925,
                               62.0 / 2835, -17.0 / 315, 2.0 / 15, -1.0 / 3};
  V ax = intrinsic1(c, "llvm.fabs", x), x2 = LLVMBuildFMul(B, ax, ax, "");
  V s = cf(c, odd[0]);
  for (int i = 1; i < 8; i++) s = math_fma(c, s, x2, cf(c, odd[i]));
  V small = math_fma(c, LLVMBuildFMul(B, ax, x2, ""), s, ax);
  V clamp[2] = {ax, cf(c, 9)};
  V e = exp_bounded(c, LLVMBuildFMul(B, call_intrinsic(c, "llvm.minnum", c->f32, clamp, 2), cf(c, 2), ""));
  V big = LLVMBuildFSub(B, cf(c, 1), LLVMBuildFDiv(B, cf(c, 2), LLVMBuildFAdd(B, e, cf(c, 1), ""), ""), "");
  V t = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOLT, ax, cf(c, 0.55), ""), small, big, "");
  V args[2] = {t, x};
  t = call_intrinsic(c, "llvm.copysign", c->f32, args, 2);
  return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealUNO, x, x, ""), x, t, "");
}

// pow(a, b) = 2^(b log2 |a|), with C's rules for a < 0 (integer b only),
// a = 0 and b = 0.
V math_pow_by_log2(Cg *c, V a, V b) {
  LLVMBuilderRef B = c->b;
  V r = math_exp2(c, LLVMBuildFMul(B, b, math_log2(c, intrinsic1(c, "llvm.fabs", a)), ""));
  V b_int = LLVMBuildFCmp(B, LLVMRealOEQ, intrinsic1(c, "llvm.floor", b), b, "");
  V half = LLVMBuildFMul(B, b, cf(c, 0.5), "");
  V b_odd = LLVMBuildAnd(B, b_int, LLVMBuildFCmp(B, LLVMRealUNE, intrinsic1(c, "llvm.floor", half), half, ""), "");
  V neg = LLVMBuildFCmp(B, LLVMRealOLT, a, cf(c, 0), "");
  V signed_r = LLVMBuildSelect(B, b_odd, LLVMBuildFNeg(B, r, ""), r, "");
  r = LLVMBuildSelect(B, neg, LLVMBuildSelect(B, b_int, signed_r, cf(c, 0.0 / 0.0), ""), r, "");
  return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOEQ, b, cf(c, 0), ""), cf(c, 1), r, "");
}

// erf(x), branch-free. |x| <= 0.927734375: x + x p(x^2), an odd minimax
// polynomial; above: 1 - exp(q(|x|)) with q(t) = -t - t^2 r(t), |x| clamped
// to 4 where erf is 1 in f32. Max error 0.99 ulp with a correctly rounded
// exp. NaN takes the first branch (an ordered compare is false) and stays.
V math_erf(Cg *c, V x) {
  LLVMBuilderRef B = c->b;
  V t = intrinsic1(c, "llvm.fabs", x);
  V s = LLVMBuildFMul(B, x, x, "");
  V p = math_fma(c, cf(c, -5.96761703e-4), s, cf(c, 4.99119423e-3));
  p = math_fma(c, p, s, cf(c, -2.67681349e-2));
  p = math_fma(c, p, s, cf(c, 1.12819925e-1));
  p = math_fma(c, p, s, cf(c, -3.76125336e-1));
  p = math_fma(c, p, s, cf(c, 1.28379166e-1));
  V small = math_fma(c, p, x, x);
  V args[2] = {t, cf(c, 4)};
  V u = call_intrinsic(c, "llvm.minnum", c->f32, args, 2);
  V r = math_fma(c, cf(c, -1.72853470e-5), u, cf(c, 3.83197126e-4));
  V q = math_fma(c, cf(c, -3.88396438e-3), u, cf(c, 2.42546219e-2));
  r = math_fma(c, r, LLVMBuildFMul(B, u, u, ""), q);
  r = math_fma(c, r, u, cf(c, -1.06777877e-1));
  r = math_fma(c, r, u, cf(c, -6.34846687e-1));
  r = math_fma(c, r, u, cf(c, -1.28717512e-1));
  r = math_fma(c, r, u, LLVMBuildFNeg(B, u, ""));
  V big = LLVMBuildFSub(B, cf(c, 1), math_exp(c, r), "");
  V cs[2] = {big, x};
  big = call_intrinsic(c, "llvm.copysign", c->f32, cs, 2);
  return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, t, cf(c, 0.927734375), ""), big, small, "");
}

// log(1 + exp(x)) = max(x, 0) + log1p(e), e = exp(-|x|) in (0, 1], with
// log1p(e) = 2 atanh(s) = 2 (s + s^3/3 + ... + s^15/15), s = e / (2 + e) <= 1/3:
// the series' tail is below 2^-26 of the sum, and no log is needed, so
// small results (x very negative) keep full relative precision; 2s is
// formed as 2e / (2 + e), which stays exact where e is subnormal. NaN stays
// (e is NaN); +inf gives inf, -inf gives 0.
V math_softplus(Cg *c, V x) {
  LLVMBuilderRef B = c->b;
  V e = math_exp(c, LLVMBuildFNeg(B, intrinsic1(c, "llvm.fabs", x), ""));
  V s2x = LLVMBuildFDiv(B, LLVMBuildFAdd(B, e, e, ""), LLVMBuildFAdd(B, cf(c, 2), e, ""), "");   // 2s
  V s2 = LLVMBuildFMul(B, LLVMBuildFMul(B, s2x, s2x, ""), cf(c, 0.25), "");
  V p = cf(c, 1.0 / 15);
  for (int k = 13; k >= 1; k -= 2) p = math_fma(c, p, s2, cf(c, 1.0 / k));
  V tail = LLVMBuildFMul(B, s2x, p, "");
  V pos = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, x, cf(c, 0), ""), x, cf(c, 0), "");
  return LLVMBuildFAdd(B, pos, tail, "");
}
