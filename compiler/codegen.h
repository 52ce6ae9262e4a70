// codegen.h: what the code generators share: the expression layer
// (codegen_expr.c, codegen_math.c), the targets (target/*.c) and the GPU
// entry point (codegen_gpu.c). Only those files include it; the rest of the
// compiler sees the entry points declared in compiler.h.
#ifndef SMELT_CODEGEN_H
#define SMELT_CODEGEN_H

#include "compiler.h"

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

typedef LLVMValueRef V;

typedef struct Cg Cg;

// A target: what the shared layers (codegen_expr.c, codegen_math.c,
// target/gpu.c) ask about the machine, as data, and what differs in how it
// is done, as hooks. Shared code never asks which target it is. Slots marked
// optional may be NULL; the GPU slots are NULL on the host.
typedef struct {
  const char *name;             // "x86-64", "nvptx", "amdgpu"
  const char *triple;
  const char *const *archs;     // the processors (LLVM CPU names) it emits for, NULL-ended; NULL: any
  void (*init)(void);           // registers LLVM's back end for the triple
  LLVMCodeGenFileType emit;     // what a module becomes: an object, or assembly (PTX text)
  unsigned buffer_space;        // address space of the buffers and of the table of them
  bool has_shared;              // block-shared memory, in address space shared_space
  unsigned shared_space;
  bool invariant_loads;         // loads that no store of the kernel can reach carry !invariant.load
  unsigned buffer_align;        // alignment of every buffer, promised by !align on its pointer's load; 0: none
  bool error_by_branch;         // a bad index sets the error word behind a branch (only the thread
                                // that meets one writes), not by a select on every check
  int warp;                     // threads that exchange values by shuffles; 0: none
  unsigned kernel_cc;           // calling convention of a GPU kernel (LLVMCallConv)

  // f32 math, each optional: NULL where LLVM lowers the intrinsic itself
  // (llvm.exp, llvm.log, ...). codegen_math.c has decompositions to name here.
  V (*exp)(Cg *c, V x);
  V (*log)(Cg *c, V x);
  V (*log2)(Cg *c, V x);
  V (*tanh)(Cg *c, V x);
  V (*sin)(Cg *c, V x);
  V (*cos)(Cg *c, V x);
  V (*pow)(Cg *c, V a, V b);

  // GPU threads
  V (*thread_id)(Cg *c);        // i64: the thread's index in its block
  V (*block_id)(Cg *c);         // i64: the block's index in the grid
  // All threads of the block wait here, and see each other's shared-memory writes.
  void (*barrier)(Cg *c);
  // The i32 v of the thread whose lane differs from this one's in the bits
  // of m (m < 32); tid is the thread's index in its block.
  V (*shuffle_xor)(Cg *c, V v, int m, V tid);
  // Function attributes of the kernel c->fn: blocks of block threads;
  // matmul_tile is the output tile edge of a tiled matmul kernel, else 0.
  void (*kernel_attrs)(Cg *c, int block, int matmul_tile);
  // Optional: emits matmul kernel k (output tiles of tile x tile, on a grid
  // of grid blocks) in the target's own way and returns true, or emits
  // nothing and returns false, leaving k to the shared tiled strategy.
  bool (*matmul)(Cg *c, const Kernel *k, int tile, uint32_t grid);
} Target;

struct Cg {
  const Target *target;
  TimeStage time_ir;        // TIME_HOST_IR or TIME_GPU_IR; the optimization and emission stages follow it
  double t_open;            // when cg_open began the module (time_now)
  const char *arch;         // the processor emitted for ("sm_90a", "gfx90a", "x86-64-v3"); NULL: this machine
  LLVMContextRef cx;
  LLVMModuleRef mod;
  LLVMModuleRef group_mod;          // holds access_group (parsed: the C API makes no distinct node)
  LLVMMetadataRef access_group;     // the host's parallel element loops' accesses (host.c)
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
  // Set by the host's row loop when it steps over the windows of pool
  // gradient pool (pool_row_begin): at index (pool_idx, pool_iw), pool_iw =
  // pool_ow * stride + j for some j < stride, the gradient knows its window
  // without a division, and a max pool its maximum's position pool_at,
  // found once for the window's columns.
  const Node *pool;
  V pool_idx[3], pool_ow, pool_at, pool_iw;
  LLVMTypeRef i1, i8, i16, i32, i64, f32, f64, f16, bf16;
  LLVMTypeRef ptr;          // generic pointers (the host's only kind)
  LLVMTypeRef gptr;         // pointers to buffers: global memory on a GPU
  unsigned md_invariant, md_align;
};

// ---- target/host.c, codegen_gpu.c: the keys of codegen_share.c, each
// target's text of kernels [from, to) of the plans appended to keys[i]
// (kernel i in the order of plans). 0, or -1 with a message.
int host_kernel_keys(const KernelPlan *const *plans, int nplans, const char *cpu, int from, int to, Blob *keys,
                     char *err, size_t errlen);
int gpu_kernel_keys(const KernelPlan *const *plans, int nplans, const char *target, int from, int to, Blob *keys,
                    char *err, size_t errlen);

// ---- codegen_expr.c
static inline V ci(Cg *c, int64_t v) { return LLVMConstInt(c->i64, (unsigned long long)v, true); }
static inline V cf(Cg *c, double v) { return LLVMConstReal(c->f32, v); }
static inline V mulc(Cg *c, V a, int64_t k) { return LLVMBuildMul(c->b, a, ci(c, k), ""); }
static inline V addc(Cg *c, V a, int64_t k) { return LLVMBuildAdd(c->b, a, ci(c, k), ""); }
static inline LLVMBasicBlockRef block(Cg *c, const char *name) {
  return LLVMAppendBasicBlockInContext(c->cx, c->fn, name);
}

// Types, contexts and builder for a module of target t; the target machine
// gives the data layout (set before any IR is built: allocas take their
// address space from it).
void cg_open(Cg *c, const Target *t, const char *name, LLVMTargetMachineRef tm);
void cg_close(Cg *c);
// Verifies, optimizes at O3 and emits the module as kind; 0, or -1 with a message.
int cg_finish(Cg *c, LLVMTargetMachineRef tm, LLVMCodeGenFileType kind, Blob *out, char *err, size_t errlen);
int cg_fail(char *err, size_t errlen, const char *what, char *llvm_msg);

// Verifies and optimizes at O3 as cg_finish does; out: the module's LLVM IR as text.
int cg_finish_ir(Cg *c, LLVMTargetMachineRef tm, Blob *out, char *err, size_t errlen);

// Appends to keys[i] the unoptimized IR of kernel i (numbered in the order
// of plans, each plan's in turn) for i in [from, to), as emit makes it for
// c's target, alone in a module and under one name for all, so equal texts
// are equal code.
void cg_kernel_keys(Cg *c, const KernelPlan *const *plans, int nplans, int from, int to,
                    void (*emit)(Cg *, const Kernel *), Blob *keys);

LLVMTypeRef storage_type(Cg *c, DType t);
V const_of(Cg *c, DType t, double v);
V call_intrinsic(Cg *c, const char *name, LLVMTypeRef t, V *args, unsigned n);
// acc + a * b rounded once (llvm.fma), as every matmul sums (codegen_expr.c).
V matmul_fma(Cg *c, V a, V b, V acc);
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
// min(max(v, lo), hi) of i64 values.
V clamp_i64(Cg *c, V v, int64_t lo, int64_t hi);
// The stride along w of pool gradient n when its windows tile the rows of
// its result (kernel == stride >= 2 along w, no padding there, no overlap
// along h): a row loop may step over them (Cg.pool); else 0.
int pool_row_step(const Node *n);
// Sets Cg.pool for the window at column ow of the row idx (n, c, ih) of
// pool gradient n; pool_row_end clears it.
void pool_row_begin(Cg *c, const Node *n, const V *idx, V ow);
void pool_row_end(Cg *c);
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
  V acc[8];   // loop-carried values (phis), or NULL
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
// Element lin of the uniform stream key (RANDOM's Philox-4x32-10 under the kernel's seed and step), f32.
V philox_at(Cg *c, uint64_t key, V lin);
V kernel_matmul(Cg *c, const Node *n, V *idx);
// A float (or float vector) rounded to tf32, as the matmuls of the tf32 policy read operands.
V round_tf32(Cg *c, V f);
// An f32 value converted to float type t's storage type (f32, f16 or bf16).
V narrow_float(Cg *c, DType t, V v);

// ---- codegen_attn.c
// Row `row` of attention kernel k (KK_ATTN): a query row of ATTENTION or
// ATTENTION_DQ, a key row of ATTENTION_DKV, all of it by one thread.
void attn_row(Cg *c, const Kernel *k, V row);
// The same on a GPU target, with the row's arrays in local memory (target/gpu_attn.c).
void gpu_attn_row(Cg *c, const Kernel *k, V row);
// Whether query i may attend key j of heads bh (the mask, and j <= i when
// causal); dropout's factor of weight (i, j) of heads bn (1 without dropout).
V attn_allowed(Cg *c, const Node *n, const V *bh, V i, V j);
V attn_keep(Cg *c, const Node *n, V bn, V i, V j);
// An f32 array of n elements on the kernel's stack, made in its entry block
// (one frame slot, which LLVM promotes to registers when it can).
V attn_array(Cg *c, LLVMTypeRef t, int64_t n, const char *name);
// What the host and GPU kernels share of an attention row: the row's heads
// and index, and the other side's rows it walks (ATTENTION and
// ATTENTION_DQ: the keys query r sees; ATTENTION_DKV: the queries that see
// key r), with ATTENTION_DQ's log-sum-exp and delta of its query.
typedef struct {
  const Node *n, *q, *k, *v, *dout, *fwd, *delta;
  int64_t Tq, Tk, D, Dv;
  bool dq;
  V bhn, r, bh[2];     // b * H + h, the row, and (b, h)
  V from, to;          // the other side's rows, [from, to)
  V lse_row, dl_row;   // ATTENTION_DQ only
  V scale;
} AttnRow;
void attn_row_open(Cg *c, const Node *n, V row, AttnRow *a);
// One pair of a backward row's walk (`other`: a key of ATTENTION_DQ's
// query, a query of ATTENTION_DKV's key): the pair, its query's log-sum-exp
// and delta, and whether that query attends no key.
typedef struct {
  V qi, kj, lse, dl, none;
} AttnPair;
AttnPair attn_pair(Cg *c, const AttnRow *a, V other);
// The pair's weight p from its scaled score s (a query that attends no key
// weighs every key 1 / Tk); its score's gradient from p and dp, the dot of
// dout's row with v's times dropout's factor.
V attn_pair_weight(Cg *c, const AttnRow *a, const AttnPair *pr, V s);
V attn_pair_ds(Cg *c, const AttnPair *pr, V p, V dp);

// ---- codegen_math.c: f32 math by the target's hooks
// LLVM's f32 intrinsic name (llvm.sqrt, llvm.floor, ...) of x.
static inline V intrinsic1(Cg *c, const char *name, V x) { return call_intrinsic(c, name, c->f32, &x, 1); }
V math_fma(Cg *c, V a, V b, V d);
// The target's hook, or LLVM's intrinsic where the target has none.
V math_exp(Cg *c, V x);
V math_exp2(Cg *c, V x);
V math_log(Cg *c, V x);
V math_log2(Cg *c, V x);
V math_tanh(Cg *c, V x);
V math_sin(Cg *c, V x);
V math_cos(Cg *c, V x);
V math_pow(Cg *c, V a, V b);
// Decompositions, for targets whose back ends lack a function to name as
// their hook: exp from exp2; log from log2; tanh from exp; pow from exp2 and
// log2 with C's rules for negative and zero operands.
V math_exp_by_exp2(Cg *c, V x);
V math_log_by_log2(Cg *c, V x);
V math_tanh_by_exp(Cg *c, V x);
// tanh from arithmetic alone (its own bounded exp), for a host whose libm
// call would keep a loop from vectorizing.
V math_tanh_inline(Cg *c, V x);
V math_exp_inline(Cg *c, V x);
V math_pow_by_log2(Cg *c, V a, V b);
// Built from exp and arithmetic on every target, so each computes the same
// function: erf to about 1 ulp (plus the target's exp error); log(1 + exp(x))
// without overflow or cancellation.
V math_erf(Cg *c, V x);
V math_softplus(Cg *c, V x);

// ---- target/gpu.c: the GPU strategies, and pieces they share with the GPU targets
// Emits kernel k for c's GPU target.
void gpu_emit_kernel(Cg *c, const Kernel *k);
// The target's hooks (Target), for code that must not name its target.
V gpu_thread_id(Cg *c);
V gpu_block_id(Cg *c);
void gpu_barrier(Cg *c);
// Sets string attribute key of the kernel c->fn to value.
void gpu_kernel_attr(Cg *c, const char *key, const char *value);
// A block-shared array of n elements of type t.
V gpu_shared_array(Cg *c, const char *tag, LLVMTypeRef t, unsigned n);
// Operand x of matmul n at matrix position (row, col) of x, for the output's
// batch index bidx, as f32 (rounded to tf32 for a tf32 matmul); zero outside x.
V gpu_operand_at(Cg *c, const Node *n, const Node *x, V *bidx, V row, V col);
// Element (row, col) of matmul kernel k's output in batch ti, from the f32
// at accp, through the kernel's epilogue; nothing outside the output.
void gpu_matmul_store(Cg *c, const Kernel *k, V *ti, V row, V col, V accp);

// ---- target/nvptx_mma.c: matmuls on NVIDIA tensor cores, for target/nvptx.c
// Whether matmul n's operands suit mma.sync (bf16, f16, or f32 marked tf32;
// the processor must be sm_80 or later).
bool nvptx_mma_applies(const Node *n);
// The matmul kernel k (root n, output tiles of tile x tile on a grid of grid blocks).
void nvptx_mma_emit(Cg *c, const Kernel *k, int tile, uint32_t grid);

#endif
