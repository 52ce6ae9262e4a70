// target/nvptx.c: NVIDIA GPUs (NVPTX, emitted as PTX text).
//
// The descriptor the GPU strategies (target/gpu.c) run on: buffers in the
// global address space, read-only loads on the non-coherent path, shared
// memory, warps of 32 threads. Thread ids, barriers and shuffles are NVVM
// intrinsics. NVPTX has no math library to call: exp, log, sin and cos come
// from its hardware approximations of exp2, log2 and sin (after reducing the
// argument), tanh and pow from codegen_math.c's decompositions. From sm_80,
// low-precision matmuls run on tensor cores (target/nvptx_mma.c).
#include "codegen.h"

#include <pthread.h>

#include <llvm-c/Target.h>
#include <stdlib.h>
#include <string.h>

static const char *const archs[] = {"sm_75", "sm_80",  "sm_86",   "sm_87",  "sm_89", "sm_90",
                                    "sm_90a", "sm_100", "sm_100a", "sm_120", "sm_120a", NULL};

// Registers the back end once, whichever codegen thread asks first.
static void register_backend(void) {
  LLVMInitializeNVPTXTargetInfo();
  LLVMInitializeNVPTXTarget();
  LLVMInitializeNVPTXTargetMC();
  LLVMInitializeNVPTXAsmPrinter();
}

static void init(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, register_backend);
}

// The compute capability of the processor: "sm_90a" -> 90.
static int sm(const Cg *c) { return atoi(c->arch + 3); }

// ---- threads

static V sreg(Cg *c, const char *name) { return LLVMBuildZExt(c->b, call_plain_intrinsic(c, name, NULL, 0), c->i64, ""); }
static V thread_id(Cg *c) { return sreg(c, "llvm.nvvm.read.ptx.sreg.tid.x"); }
static V block_id(Cg *c) { return sreg(c, "llvm.nvvm.read.ptx.sreg.ctaid.x"); }

// bar.sync 0, by the name this LLVM knows it under.
static void barrier(Cg *c) {
  const char *name = "llvm.nvvm.barrier0";
  if (LLVMLookupIntrinsicID(name, strlen(name))) {
    call_plain_intrinsic(c, name, NULL, 0);
  } else {
    V zero = LLVMConstInt(c->i32, 0, false);
    call_plain_intrinsic(c, "llvm.nvvm.barrier.cta.sync.aligned.all", &zero, 1);
  }
}

// shfl.sync.bfly over the whole warp.
static V shuffle_xor(Cg *c, V v, int m, V tid) {
  (void)tid;
  V args[4] = {LLVMConstInt(c->i32, 0xFFFFFFFFu, false), v, LLVMConstInt(c->i32, (unsigned)m, false),
               LLVMConstInt(c->i32, 31, false)};
  return call_plain_intrinsic(c, "llvm.nvvm.shfl.sync.bfly.i32", args, 4);
}

// Without a register bound ptxas was seen to spill a 64-tile matmul at 40
// registers on sm_80 (and a 64-tile mma matmul at 64 on sm_90); most take
// under 128, a batch-broadcast one with a short K 144. Other kernels are
// left to ptxas (the 128-tile matmul spreads to 220 registers under a loose
// bound).
static void kernel_attrs(Cg *c, int block, int matmul_tile) {
  char threads[16];
  snprintf(threads, sizeof threads, "%d", block);
  gpu_kernel_attr(c, "nvvm.maxntid", threads);
  if (matmul_tile == 64) gpu_kernel_attr(c, "nvvm.maxnreg", "168");
}

// ---- math

static V log2_approx(Cg *c, V x) { return call_plain_intrinsic(c, "llvm.nvvm.lg2.approx.f", &x, 1); }

// sin or cos: the hardware approximation after reducing x to [-pi, pi] with
// a two-part 2 pi.
static V sincos(Cg *c, const char *name, V x) {
  LLVMBuilderRef B = c->b;
  V k = intrinsic1(c, "llvm.rint", LLVMBuildFMul(B, x, cf(c, 0.15915494309189535), ""));
  V r = math_fma(c, LLVMBuildFNeg(B, k, ""), cf(c, 6.28125), x);
  r = math_fma(c, LLVMBuildFNeg(B, k, ""), cf(c, 1.9353071795864769e-03), r);
  V v = intrinsic1(c, name, r);
  LLVMSetFastMathFlags(v, LLVMFastMathApproxFunc);
  return v;
}

static V sin_approx(Cg *c, V x) { return sincos(c, "llvm.sin", x); }
static V cos_approx(Cg *c, V x) { return sincos(c, "llvm.cos", x); }

// ---- matmul on tensor cores

static bool matmul(Cg *c, const Kernel *k, int tile, uint32_t grid) {
  if (sm(c) < 80 || !nvptx_mma_applies(k->root)) return false;
  nvptx_mma_emit(c, k, tile, grid);
  return true;
}

const Target target_nvptx = {
  .name = "nvptx",
  .triple = "nvptx64-nvidia-cuda",
  .archs = archs,
  .init = init,
  .emit = LLVMAssemblyFile,
  .buffer_space = 1,
  .has_shared = true,
  .shared_space = 3,
  .invariant_loads = true,
  .buffer_align = 64,
  .error_by_branch = true,
  .warp = 32,
  .kernel_cc = LLVMPTXKernelCallConv,
  .exp = math_exp_by_exp2,
  .log = math_log_by_log2,
  .log2 = log2_approx,
  .tanh = math_tanh_by_exp,
  .sin = sin_approx,
  .cos = cos_approx,
  .pow = math_pow_by_log2,
  .thread_id = thread_id,
  .block_id = block_id,
  .barrier = barrier,
  .shuffle_xor = shuffle_xor,
  .kernel_attrs = kernel_attrs,
  .matmul = matmul,
};
