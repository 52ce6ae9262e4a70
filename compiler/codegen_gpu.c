// codegen_gpu.c: the GPU targets, and compiling plans for one of them.
//
// Each GPU target is a descriptor in its own file under target/ (data and
// hooks, codegen.h) that the shared strategies of target/gpu.c run on; the
// table below is the one place that lists them. A processor name ("sm_90",
// "gfx90a") selects the descriptor that lists it; LLVM is told the name as
// the CPU to emit for.
#define _GNU_SOURCE   // memmem
#include "codegen.h"

#include <limits.h>
#include <string.h>

// The GPU targets: adding one is its file under target/ and its name here.
extern const Target target_nvptx, target_amdgpu;
static const Target *const gpu_targets[] = {&target_nvptx, &target_amdgpu};
enum { NGPU_TARGETS = sizeof gpu_targets / sizeof *gpu_targets };

// The descriptor of processor arch, or NULL.
static const Target *gpu_target_of(const char *arch) {
  for (int t = 0; t < NGPU_TARGETS; t++)
    for (const char *const *a = gpu_targets[t]->archs; *a; a++)
      if (!strcmp(arch, *a)) return gpu_targets[t];
  return NULL;
}

bool gpu_target_known(const char *t) { return gpu_target_of(t) != NULL; }

bool gpu_target_is_nvidia(const char *t) { return gpu_target_of(t) == &target_nvptx; }

void gpu_target_list(char *buf, size_t len) {
  size_t at = 0;
  buf[0] = '\0';
  for (int t = 0; t < NGPU_TARGETS; t++)
    for (const char *const *a = gpu_targets[t]->archs; *a; a++)
      at += (size_t)snprintf(buf + at, at < len ? len - at : 0, "%s%s", at ? ", " : "", *a);
}

// The GPU module of plans for target, emitted as the target's output (ir
// false, kind < 0), as assembly (kind LLVMAssemblyFile) or as LLVM IR after
// O3 (ir true).
// The descriptor and target machine of GPU processor target, or NULL with a message.
static LLVMTargetMachineRef gpu_machine(const char *target, const Target **tg, char *err, size_t errlen) {
  *tg = gpu_target_of(target);
  if (!*tg) {
    snprintf(err, errlen, "unknown GPU target '%s'", target);
    return NULL;
  }
  llvm_errors_install();
  llvm_errors_at("the %s module", target);
  (*tg)->init();
  LLVMTargetRef t;
  char *msg = NULL;
  if (LLVMGetTargetFromTriple((*tg)->triple, &t, &msg)) {
    char what[64];
    snprintf(what, sizeof what, "this LLVM has no %s target", (*tg)->name);
    cg_fail(err, errlen, what, msg);
    return NULL;
  }
  return LLVMCreateTargetMachine(t, (*tg)->triple, target, "", LLVMCodeGenLevelAggressive, LLVMRelocPIC,
                                 LLVMCodeModelDefault);
}

// The GPU module of plans for target, emitted as the target's output (ir
// false, kind < 0), as assembly (kind LLVMAssemblyFile) or as LLVM IR after
// O3 (ir true); it holds the bodies numbered [from, to) among the kernels
// that run their own (Kernel.same NULL), in the order of plans, under their
// kernels' names or, for one body, under symbol when that is not NULL.
static int gpu_module(const KernelPlan *const *plans, int nplans, const char *target, int from, int to,
                      const char *symbol, bool ir, int kind, Blob *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  const Target *tg;
  LLVMTargetMachineRef tm = gpu_machine(target, &tg, err, errlen);
  if (!tm) return -1;
  Cg c;
  cg_open(&c, tg, "smelt_gpu", tm);
  c.time_ir = TIME_GPU_IR;
  c.arch = target;
  for (int p = 0, body = 0; p < nplans; p++) {
    c.plan = plans[p];
    for (int i = 0; i < plans[p]->n; i++) {
      if (plans[p]->kernels[i].same) continue;
      int b = body++;
      if (b < from || b >= to) continue;
      llvm_errors_at("kernel %s for %s", plans[p]->kernels[i].name, target);
      Kernel kn = plans[p]->kernels[i];
      if (symbol) snprintf(kn.name, sizeof kn.name, "%s", symbol);
      gpu_emit_kernel(&c, &kn);
    }
  }
  llvm_errors_at("the %s module (optimizing and emitting its kernels)", target);
  int rc = ir ? cg_finish_ir(&c, tm, out, err, errlen)
              : cg_finish(&c, tm, kind < 0 ? tg->emit : (LLVMCodeGenFileType)kind, out, err, errlen);
  cg_close(&c);
  LLVMDisposeTargetMachine(tm);
  return rc;
}

int gpu_kernel_keys(const KernelPlan *const *plans, int nplans, const char *target, int from, int to, Blob *keys,
                    char *err, size_t errlen) {
  const Target *tg;
  LLVMTargetMachineRef tm = gpu_machine(target, &tg, err, errlen);
  if (!tm) return -1;
  Cg c;
  cg_open(&c, tg, "smelt_gpu", tm);
  c.arch = target;
  cg_kernel_keys(&c, plans, nplans, from, to, gpu_emit_kernel, keys);
  cg_close(&c);
  LLVMDisposeTargetMachine(tm);
  return 0;
}

int codegen_gpu(const KernelPlan *const *plans, int nplans, const char *target, Blob *out, char *err,
                size_t errlen) {
  return gpu_module(plans, nplans, target, 0, INT_MAX, NULL, false, -1, out, err, errlen);
}

int codegen_gpu_body(const KernelPlan *const *plans, int nplans, const char *target, int body, const char *symbol,
                     Blob *out, char *err, size_t errlen) {
  return gpu_module(plans, nplans, target, body, body + 1, symbol, false, -1, out, err, errlen);
}

// codegen_gpu's module as text: the LLVM IR after O3 (ir) or the target's
// assembly (PTX, AMDGPU assembly).
int codegen_gpu_text(const KernelPlan *const *plans, int nplans, const char *target, bool ir, Blob *text, char *err,
                     size_t errlen) {
  return gpu_module(plans, nplans, target, 0, INT_MAX, NULL, ir, LLVMAssemblyFile, text, err, errlen);
}

// The header of a PTX module: its text up to the line after ".address_size".
static size_t ptx_header(const Blob *p) {
  const char *a = strstr(p->data, "\n.address_size ");
  const char *nl = a ? strchr(a + 1, '\n') : NULL;
  return nl ? (size_t)(nl + 1 - p->data) : 0;
}

// Appends text[0, n) to out with every `from` written as `to`.
static void put_renamed(Blob *out, size_t *cap, const char *text, size_t n, const char *from, const char *to) {
  size_t fl = strlen(from), tl = strlen(to);
  for (const char *p = text, *end = text + n; p < end;) {
    const char *hit = memmem(p, (size_t)(end - p), from, fl);
    size_t plain = (size_t)((hit ? hit : end) - p), add = plain + (hit ? tl : 0);
    if (out->len + add + 1 > *cap) out->data = xrealloc(out->data, *cap = 2 * (out->len + add + 1));
    memcpy(out->data + out->len, p, plain);
    out->len += plain;
    if (hit) memcpy(out->data + out->len, to, tl), out->len += tl;
    p += plain + (hit ? fl : 0);
  }
}

int ptx_join(const Blob *parts, int n, const char *const *names, const char *const *symbols, Blob *out, char *err,
             size_t errlen) {
  memset(out, 0, sizeof *out);
  size_t head = n ? ptx_header(&parts[0]) : 0, cap = head + 1;
  for (int i = 0; i < n; i++) {
    size_t h = ptx_header(&parts[i]);
    if (!h || h != head || memcmp(parts[i].data, parts[0].data, h)) {
      snprintf(err, errlen, "internal error: the PTX of kernel body %d has another header than the first's", i);
      return -1;
    }
    cap += parts[i].len - h;
  }
  out->data = xmalloc(cap);
  if (n) memcpy(out->data, parts[0].data, head);
  out->len = head;
  for (int i = 0; i < n; i++) put_renamed(out, &cap, parts[i].data + head, parts[i].len - head, symbols[i], names[i]);
  out->data[out->len] = '\0';
  return 0;
}
