// codegen.h: what the code generators share (codegen_expr.c, codegen_host.c,
// codegen_gpu.c). Only those files include it; the rest of the compiler sees
// the entry points declared in compiler.h.
#ifndef SMELT_CODEGEN_H
#define SMELT_CODEGEN_H

#include "compiler.h"

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

typedef LLVMValueRef V;

typedef enum { CG_HOST, CG_NVPTX, CG_AMDGPU } CgTarget;

typedef struct {
  CgTarget tgt;
  LLVMContextRef cx;
  LLVMModuleRef mod;
  LLVMBuilderRef b;
  LLVMValueRef fn;
  V bufs;                   // the kernel's buffer table (pointers by slot)
  V seed, step;             // i64 values for RANDOM
  V errp;                   // i64* error word: 1 + node id of a bad index
  const KernelPlan *plan;
  // The kernel's own output index: linearize() of exactly these values in
  // this shape is out_lin, so same-shape operands load at the output's index.
  const Shape *out_shape;
  V out_idx[MAX_DIMS], out_lin;
  // Values this kernel has computed for its root and outputs at the current
  // element: reads of them (always at that element) use these, never memory.
  const Node *subst[KERNEL_MAX_OUTS + KERNEL_MAX_ROOTS];
  V subst_val[KERNEL_MAX_OUTS + KERNEL_MAX_ROOTS];
  int nsubst;
  const Kernel *kernel;     // the kernel being emitted: its own outputs are computed, never loaded
  LLVMTypeRef i1, i8, i16, i32, i64, f32, f64, f16, bf16;
  LLVMTypeRef ptr;          // generic pointers (the host's only kind)
  LLVMTypeRef gptr;         // pointers to buffers: global memory on a GPU
  unsigned md_invariant, md_align;
  int sm;                   // NVIDIA: the compute capability (80 for sm_80); else 0
} Cg;

// ---- codegen_expr.c
static inline V ci(Cg *c, int64_t v) { return LLVMConstInt(c->i64, (unsigned long long)v, true); }
static inline V cf(Cg *c, double v) { return LLVMConstReal(c->f32, v); }
static inline V mulc(Cg *c, V a, int64_t k) { return LLVMBuildMul(c->b, a, ci(c, k), ""); }
static inline V addc(Cg *c, V a, int64_t k) { return LLVMBuildAdd(c->b, a, ci(c, k), ""); }
static inline LLVMBasicBlockRef block(Cg *c, const char *name) {
  return LLVMAppendBasicBlockInContext(c->cx, c->fn, name);
}

// Types, contexts and builder for a module of target tgt; the target machine
// gives the data layout (set before any IR is built: allocas take their
// address space from it).
void cg_open(Cg *c, CgTarget tgt, const char *name, const char *triple, LLVMTargetMachineRef tm);
void cg_close(Cg *c);
// Verifies, optimizes at O3 and emits the module as kind; 0, or -1 with a message.
int cg_finish(Cg *c, LLVMTargetMachineRef tm, LLVMCodeGenFileType kind, Blob *out, char *err, size_t errlen);
int cg_fail(char *err, size_t errlen, const char *what, char *llvm_msg);
// Verifies and optimizes at O3 as cg_finish does; out: the module's LLVM IR as text.
int cg_finish_ir(Cg *c, LLVMTargetMachineRef tm, Blob *out, char *err, size_t errlen);

LLVMTypeRef storage_type(Cg *c, DType t);
V const_of(Cg *c, DType t, double v);
V call_intrinsic(Cg *c, const char *name, LLVMTypeRef t, V *args, unsigned n);
// A non-overloaded intrinsic (thread ids, barriers, shuffles).
V call_plain_intrinsic(Cg *c, const char *name, V *args, unsigned n);
V convert(Cg *c, V v, DType from, DType to);
V buffer_ptr(Cg *c, const Node *n);
V load_at(Cg *c, const Node *n, V lin);
void store_at(Cg *c, const Node *n, V lin, V v);
V linearize(Cg *c, V *idx, const Shape *s);
void delinearize(Cg *c, V lin, const Shape *s, V *idx);
void broadcast_index(Cg *c, V *idx, const Shape *dst, const Shape *src, V *out);
V clamp_index(Cg *c, V i, int64_t len);
V emit_folded(Cg *c, const Node *n, V *idx);
V emit_value(Cg *c, const Node *n, V *idx);
V emit_operand(Cg *c, const Node *n, const Node *s, V *idx);
V fmax_nan(Cg *c, V a, V b, bool max);
V emit_op(Cg *c, Op op, DType t, DType out, V a, V b, V w);
// Sets the error word to 1 + n's id unless ok.
void flag_unless(Cg *c, const Node *n, V ok);

typedef struct {
  LLVMBasicBlockRef header, body, exit, pre;
  V i;
  V acc[2];   // loop-carried values (phis), or NULL
  int nacc;
  V step;     // the increment; NULL for 1 (set after loop_open)
} Loop;

// Opens `for (i = from; i < to; i++)`, carrying nacc values from init.
void loop_open(Cg *c, Loop *L, V from, V to, int nacc, V *init);
// Closes the loop with the carried values' next values; the builder is left
// after the loop, where L->acc[k] hold the final values.
void loop_close(Cg *c, Loop *L, V *next);

// The value of kernel k's root at its index idx (lin: its linear index).
V kernel_value(Cg *c, const Kernel *k, V *idx, V lin);
// Computes k's outputs at linear index lin from its root's value there
// (epilogues; outputs that read earlier ones get them in registers) and
// stores them.
void kernel_store(Cg *c, const Kernel *k, V lin, V root_val);
// A row kernel's row, by one thread: each reduction in turn, then the
// row-shaped outputs, then a loop over the row's elements.
void row_serial(Cg *c, const Kernel *k, V row);
// A row kernel's row after its reductions (their values substituted):
// row-shaped outputs by the thread with first set, then the row's elements
// from `from` in steps of `step` (on GPUs, a lane of the row's threads).
void row_outputs(Cg *c, const Kernel *k, V row, V from, int64_t step, V first);
// v (f32, or a vector of f32 for float t) rounded to what dtype t holds, as a store would round it.
V round_value(Cg *c, V v, DType t);
V reduce_value(Cg *c, const Node *n, V *oidx);
V kernel_matmul(Cg *c, const Node *n, V *idx);
// A float (or float vector) rounded to tf32, as the matmuls of the tf32 policy read operands.
V round_tf32(Cg *c, V f);
// An f32 value converted to float type t's storage type (f32, f16 or bf16).
V narrow_float(Cg *c, DType t, V v);

// ---- codegen_gpu.c: pieces the GPU strategies share
V gpu_thread_id(Cg *c);
V gpu_block_id(Cg *c);
// All threads of the block wait here, and see each other's shared-memory writes.
void gpu_barrier(Cg *c);
// A block-shared array of n elements of type t.
V gpu_shared_array(Cg *c, const char *tag, LLVMTypeRef t, unsigned n);
// Operand x of matmul n at matrix position (row, col) of x, for the output's
// batch index bidx, as f32 (rounded to tf32 for a tf32 matmul); zero outside x.
V gpu_operand_at(Cg *c, const Node *n, const Node *x, V *bidx, V row, V col);
// Element (row, col) of matmul kernel k's output in batch ti, from the f32
// at accp, through the kernel's epilogue; nothing outside the output.
void gpu_matmul_store(Cg *c, const Kernel *k, V *ti, V row, V col, V accp);

// ---- codegen_mma.c: matmuls on NVIDIA tensor cores
// Whether matmul n runs on tensor cores for this target (sm_80+; bf16, f16 or tf32).
bool mma_applies(const Cg *c, const Node *n);
// The matmul kernel k (root n, output tiles of tile x tile on a grid of grid blocks).
void emit_matmul_mma(Cg *c, const Kernel *k, int tile, uint32_t grid);

#endif
