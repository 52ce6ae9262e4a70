// target/amdgpu.c: AMD GPUs (AMDGPU, emitted as an ELF object for ld.lld).
//
// The descriptor the GPU strategies (target/gpu.c) run on: buffers in the
// global address space, read-only loads marked invariant, LDS as shared
// memory. Thread ids and barriers are AMDGCN intrinsics; shuffles are
// ds_bpermute within groups of 32 lanes, so wave32 and wave64 processors run
// the same code. The back end lowers exp, log, log2, sin and cos itself;
// tanh and pow come from codegen_math.c's decompositions.
#include "codegen.h"

#include <pthread.h>

#include <llvm-c/Target.h>

static const char *const archs[] = {"gfx900",  "gfx906",  "gfx908",  "gfx90a",  "gfx942",  "gfx950",  "gfx1030",
                                    "gfx1100", "gfx1101", "gfx1102", "gfx1200", "gfx1201", NULL};

// Registers the back end once, whichever codegen thread asks first.
static void register_backend(void) {
  LLVMInitializeAMDGPUTargetInfo();
  LLVMInitializeAMDGPUTarget();
  LLVMInitializeAMDGPUTargetMC();
  LLVMInitializeAMDGPUAsmPrinter();
}

static void init(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, register_backend);
}

static V thread_id(Cg *c) {
  return LLVMBuildZExt(c->b, call_plain_intrinsic(c, "llvm.amdgcn.workitem.id.x", NULL, 0), c->i64, "");
}

static V block_id(Cg *c) {
  return LLVMBuildZExt(c->b, call_plain_intrinsic(c, "llvm.amdgcn.workgroup.id.x", NULL, 0), c->i64, "");
}

// s_barrier between a release and an acquire fence of the workgroup, so LDS
// writes before it are seen after it.
static void barrier(Cg *c) {
  unsigned wg = LLVMGetSyncScopeID(c->cx, "workgroup", 9);
  LLVMBuildFenceSyncScope(c->b, LLVMAtomicOrderingRelease, wg, "");
  call_plain_intrinsic(c, "llvm.amdgcn.s.barrier", NULL, 0);
  LLVMBuildFenceSyncScope(c->b, LLVMAtomicOrderingAcquire, wg, "");
}

// ds_bpermute addresses a lane of the wave in bytes; m < 32 keeps the
// partner inside the same group of 32 for wave32 and wave64 alike.
static V shuffle_xor(Cg *c, V v, int m, V tid) {
  V lane = LLVMBuildTrunc(c->b, tid, c->i32, "");
  V wave_mask = LLVMConstInt(c->i32, 63, false);
  V i32m = LLVMConstInt(c->i32, (unsigned)m, false);
  V addr = LLVMBuildShl(c->b, LLVMBuildAnd(c->b, LLVMBuildXor(c->b, lane, i32m, ""), wave_mask, ""),
                        LLVMConstInt(c->i32, 2, false), "");
  V args[2] = {addr, v};
  return call_plain_intrinsic(c, "llvm.amdgcn.ds.bpermute", args, 2);
}

static void kernel_attrs(Cg *c, int block, int matmul_tile) {
  (void)matmul_tile;
  char range[32];
  snprintf(range, sizeof range, "1,%d", block);
  gpu_kernel_attr(c, "amdgpu-flat-work-group-size", range);
}

const Target target_amdgpu = {
  .name = "amdgpu",
  .triple = "amdgcn-amd-amdhsa",
  .archs = archs,
  .init = init,
  .emit = LLVMObjectFile,
  .buffer_space = 1,
  .has_shared = true,
  .shared_space = 3,
  .invariant_loads = true,
  .buffer_align = 64,
  .error_by_branch = true,
  .warp = 32,
  .kernel_cc = LLVMAMDGPUKERNELCallConv,
  .tanh = math_tanh_by_exp,
  .pow = math_pow_by_log2,
  .thread_id = thread_id,
  .block_id = block_id,
  .barrier = barrier,
  .shuffle_xor = shuffle_xor,
  .kernel_attrs = kernel_attrs,
};
