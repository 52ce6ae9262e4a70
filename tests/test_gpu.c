// test_gpu.c: GPU code generation, checked without a GPU.
//
// The kernel test models (tests/gpu/*.smelt, and the GPT example's training
// step) cover every kernel kind. Their kernels are compiled for NVIDIA and
// AMD targets; the PTX must assemble with ptxas into a non-empty cubin, the
// AMD objects must link into code objects that llvm-objdump disassembles. The
// assembly is checked where it guards something real: 16-byte loads and
// stores in pointwise kernels, shuffles and barriers in reductions, no spills
// in reductions and matmuls. A test whose tool is not installed is reported
// as skipped with the reason, never as passed. Their numerics are checked on
// a GPU host by scripts/gpu-check.sh.
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime.h"
#include "smelt.h"
#include "support.h"

typedef struct {
  Compilation c;
  Graph g;
  KernelPlan plan;
} Built;

// Plans a model file's training step (its forward graph when it has no loss) as the
// pipeline compiles it: check's graph, through the graph passes and the kernel plan.
static Built *build_mode(const char *path, const Define *defs, int ndefs, FusionMode mode) {
  Built *b = calloc(1, sizeof *b);
  compilation_init(&b->c, stderr);
  compilation_default_search(&b->c, NULL);
  Module *m = module_load_file(&b->c, path);
  cr_assert_eq(check_modules(&b->c, &m, 1, defs, ndefs), 0, "%s does not check", path);
  Entry e;   // the training step check built, through the graph passes and the kernel plan
  cr_assert_eq(pipeline_entry(&b->c, m, "step", &(EntryOptions){defs, ndefs, .last = PASS_KERNELS, .fusion = mode, .prefix = ""}, &e), 0);
  b->g = e.g;   // moved out of e: built_free frees them
  b->plan = e.plan;
  return b;
}

// One kernel per op, so the tests below can find each op's kernel.
static Built *build(const char *path, const Define *defs, int ndefs) { return build_mode(path, defs, ndefs, FUSION_NONE); }

static void built_free(Built *b) {
  kernel_plan_free(&b->plan);
  graph_free(&b->g);
  compilation_free(&b->c);
  free(b);
}

static const char *const suite[] = {"tests/gpu/pointwise.smelt", "tests/gpu/reductions.smelt",
                                    "tests/gpu/matmuls.smelt", "tests/gpu/dtypes.smelt",
                                    "tests/gpu/conv.smelt", "tests/gpu/embedding.smelt",
                                    "tests/gpu/precision.smelt", "tests/gpu/attention.smelt"};
enum { NSUITE = sizeof suite / sizeof *suite, NBUILT = 2 * (NSUITE + 1) };

static const Define gpt_sizes[] = {{"B", 2}, {"T", 8}, {"V", 16}, {"C", 16}, {"L", 1}, {"H", 2}};

// Every model of the suite and the GPT training step, planned one kernel
// per op, then fused (epilogues, several outputs per kernel).
static int build_all(Built **out) {
  for (int f = 0; f < 2; f++) {
    FusionMode mode = f ? FUSION_ALL : FUSION_NONE;
    for (int i = 0; i < NSUITE; i++) out[f * (NSUITE + 1) + i] = build_mode(suite[i], NULL, 0, mode);
    out[f * (NSUITE + 1) + NSUITE] = build_mode("examples/gpt.smelt", gpt_sizes, 6, mode);
  }
  return NBUILT;
}

static const char *built_name(int i) {
  return i % (NSUITE + 1) < NSUITE ? suite[i % (NSUITE + 1)] : "gpt";
}

// The text of kernel name's body in PTX (from ".entry name(" to the closing
// brace at the start of a line), malloc'd; NULL when absent.
static char *ptx_body(const char *ptx, const char *name) {
  char head[128];
  snprintf(head, sizeof head, ".entry %s(", name);
  const char *at = strstr(ptx, head);
  if (!at) return NULL;
  const char *end = strstr(at, "\n}");
  size_t n = end ? (size_t)(end - at) : strlen(at);
  char *s = malloc(n + 1);
  memcpy(s, at, n);
  s[n] = '\0';
  return s;
}

// The first kernel of b whose output node has op and numel elements.
static const Kernel *find_kernel(const Built *b, Op op, int64_t numel) {
  for (int i = 0; i < b->plan.n; i++)
    if (b->plan.kernels[i].out->op == op && shape_numel(&b->plan.kernels[i].out->shape) == numel)
      return &b->plan.kernels[i];
  return NULL;
}

TEST(gpu, the_suite_covers_every_kernel_kind) {
  Built *b[NBUILT];
  int n = build_all(b);
  bool seen[KK_COPY + 1] = {false};
  for (int i = 0; i < n; i++)
    for (int k = 0; k < b[i]->plan.n; k++) seen[b[i]->plan.kernels[k].kind] = true;
  static const char *names[] = {"pointwise", "reduce", "matmul", "conv", "pool", "gather", "random", "attention", "copy"};
  for (int k = 0; k <= KK_COPY; k++) cr_expect(seen[k], "no %s kernel in the GPU suite", names[k]);
  for (int i = 0; i < n; i++) built_free(b[i]);
}

static void assembles_for(const char *target) {
  if (!gpu_tool_path("ptxas")) cr_skip_test("skipped: ptxas is not installed (CUDA's /usr/local/cuda/bin)");
  Built *b[NBUILT];
  int n = build_all(b);
  for (int i = 0; i < n; i++) {
    const KernelPlan *plans[1] = {&b[i]->plan};
    Blob ptx, cubin;
    char err[2048], *report = NULL;
    cr_assert_eq(codegen_gpu(plans, 1, target, &ptx, err, sizeof err), 0, "%s", err);
    int entries = 0;
    for (const char *p = ptx.data; (p = strstr(p, ".entry ")); p++) entries++;
    cr_expect_eq(entries, b[i]->plan.n, "%s: %d kernels in the PTX, %d planned", built_name(i), entries,
                 b[i]->plan.n);
    cr_assert_eq(ptx_assemble(&ptx, target, &cubin, &report, err, sizeof err), 1, "%s: %s", target, err);
    cr_expect_gt(cubin.len, 0);
    cr_expect_not_null(strstr(report, "Compiling entry function"));
    // no kernel spills; matmuls and reductions are where it would hurt
    for (const char *p = report; (p = strstr(p, "bytes spill stores")); p++) {
      const char *num = p;
      while (num > report && num[-1] == ' ') num--;
      while (num > report && num[-1] >= '0' && num[-1] <= '9') num--;
      const char *fn = num;
      while (fn > report && strncmp(fn, "properties for ", 15)) fn--;
      cr_expect_eq(atoi(num), 0, "%s: %.60s spills: %.40s", target, fn, num);
    }
    free(report);
    free(ptx.data);
    free(cubin.data);
  }
  for (int i = 0; i < n; i++) built_free(b[i]);
}

TEST(gpu, every_kernel_assembles_for_sm_80) { assembles_for("sm_80"); }
TEST(gpu, every_kernel_assembles_for_sm_90) { assembles_for("sm_90"); }

// erf, softplus and silu are built from exp and arithmetic: the GPU code
// calls no library (NVPTX has none; AMD's would be unresolved).
TEST(gpu, math_functions_call_no_library) {
  char cmd[512], *out;
  snprintf(cmd, sizeof cmd, "%s dump --stage=ptx tests/gpu/pointwise.smelt", smelt_path());
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "erf"), "no erf kernel in the PTX");
  cr_expect_null(strstr(out, "call"), "the PTX calls a function");
  free(out);
  snprintf(cmd, sizeof cmd, "%s dump --stage=amdgcn tests/gpu/pointwise.smelt", smelt_path());
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "erf"), "no erf kernel in the AMDGCN");
  cr_expect_null(strstr(out, "s_swappc"), "the AMDGCN calls a function");
  free(out);
}

TEST(gpu, pointwise_kernels_use_16_byte_loads_and_stores) {
  Built *b = build("tests/gpu/pointwise.smelt", NULL, 0);
  const Kernel *k = find_kernel(b, OP_MUL, 4096 * 4096);   // big * 2.0
  cr_assert_not_null(k);
  const KernelPlan *plans[1] = {&b->plan};
  Blob ptx;
  char err[512];
  cr_assert_eq(codegen_gpu(plans, 1, "sm_90", &ptx, err, sizeof err), 0, "%s", err);
  char *body = ptx_body(ptx.data, k->name);
  cr_assert_not_null(body);
  cr_expect_not_null(strstr(body, "ld.global.nc.v4"), "%s has no 16-byte loads:\n%s", k->name, body);
  cr_expect_not_null(strstr(body, "st.global.v4"), "%s has no 16-byte stores:\n%s", k->name, body);
  free(body);
  free(ptx.data);
  built_free(b);
}

TEST(gpu, row_reductions_use_shuffles_and_long_rows_a_block) {
  Built *b = build("tests/gpu/reductions.smelt", NULL, 0);
  const KernelPlan *plans[1] = {&b->plan};
  Blob ptx;
  char err[512];
  cr_assert_eq(codegen_gpu(plans, 1, "sm_90", &ptx, err, sizeof err), 0, "%s", err);
  const Kernel *warp = find_kernel(b, OP_SUM, 1000), *blk = find_kernel(b, OP_SUM, 64);   // rows of 100, of 4096
  cr_assert(warp && blk);
  char *w = ptx_body(ptx.data, warp->name), *k = ptx_body(ptx.data, blk->name);
  cr_expect_not_null(strstr(w, "shfl.sync.bfly"), "%s", w);
  cr_expect_null(strstr(w, "bar.sync"), "a warp per row needs no barrier:\n%s", w);
  cr_expect_not_null(strstr(k, "shfl.sync.bfly"), "%s", k);
  cr_expect_not_null(strstr(k, "bar.sync"), "a block per row meets in shared memory:\n%s", k);
  GpuLaunch gw, gb;
  gpu_launch_shape(warp, &gw);
  gpu_launch_shape(blk, &gb);
  cr_expect_eq(gw.grid, 1000 / 8, "eight rows of 100 per block of 256");
  cr_expect_eq(gb.grid, 64, "one row of 4096 per block");
  free(w);
  free(k);
  free(ptx.data);
  built_free(b);
}

// Matmuls with bf16, f16 or tf32 operands run on tensor cores from sm_80 on:
// mma.sync in the PTX for each operand type, every fragment from shared
// memory; sm_75 keeps the FMA path.
TEST(gpu, low_precision_matmuls_use_mma_sync_from_sm_80) {
  Built *b = build_mode("tests/gpu/precision.smelt", NULL, 0, FUSION_ALL);
  const KernelPlan *plans[1] = {&b->plan};
  Blob ptx;
  char err[512];
  cr_assert_eq(codegen_gpu(plans, 1, "sm_80", &ptx, err, sizeof err), 0, "%s", err);
  static const char *const forms[] = {"mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32",
                                      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32",
                                      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32"};
  for (int i = 0; i < 3; i++) cr_expect_not_null(strstr(ptx.data, forms[i]), "no %s in the PTX", forms[i]);
  int mm = 0;
  for (int k = 0; k < b->plan.n; k++) {
    const Kernel *kn = &b->plan.kernels[k];
    if (kn->kind != KK_MATMUL) continue;
    char *body = ptx_body(ptx.data, kn->name);
    cr_assert_not_null(body, "%s", kn->name);
    const Node *n = kn->root;
    bool low = n->src[0]->dtype != DT_F32 || n->tf32;
    int64_t M = n->shape.d[n->shape.ndim - 2], N = n->shape.d[n->shape.ndim - 1];
    if (low && M >= 16 && N >= 16) {
      cr_expect_not_null(strstr(body, "mma.sync"), "%s: no mma.sync", kn->name);
      mm++;
    } else {
      cr_expect_null(strstr(body, "mma.sync"), "%s: an f32 matmul on tensor cores", kn->name);
    }
    free(body);
  }
  cr_expect_geq(mm, 6, "forward products and the tf32 layer's gradients");
  free(ptx.data);
  cr_assert_eq(codegen_gpu(plans, 1, "sm_75", &ptx, err, sizeof err), 0, "%s", err);
  cr_expect_null(strstr(ptx.data, "mma.sync"), "sm_75 has no bf16 or tf32 mma");
  free(ptx.data);
  built_free(b);
}

// In the cubin the tensor-core matmuls are HMMA instructions (cuobjdump,
// where CUDA installs it; this machine's CUDA may have only the compilers).
TEST(gpu, low_precision_matmuls_are_hmma_in_the_cubin) {
  const char *dump = gpu_tool_path("cuobjdump");
  if (!gpu_tool_path("ptxas") || !dump) cr_skip_test("skipped: ptxas and cuobjdump are not both installed");
  Built *b = build_mode("tests/gpu/precision.smelt", NULL, 0, FUSION_ALL);
  const KernelPlan *plans[1] = {&b->plan};
  Blob ptx, cubin;
  char err[2048], *report = NULL, path[64], cmd[512], *out;
  cr_assert_eq(codegen_gpu(plans, 1, "sm_90", &ptx, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ptx_assemble(&ptx, "sm_90", &cubin, &report, err, sizeof err), 1, "%s", err);
  snprintf(path, sizeof path, "build/test-hmma-%d.cubin", (int)getpid());
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  fwrite(cubin.data, 1, cubin.len, f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "%s -sass %s", dump, path);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  unlink(path);
  cr_expect_not_null(strstr(out, "HMMA"), "no HMMA in the SASS");
  free(out);
  free(report);
  free(ptx.data);
  free(cubin.data);
  built_free(b);
}

TEST(gpu, launch_shapes_follow_the_output) {
  Built *b = build("tests/gpu/matmuls.smelt", NULL, 0);
  GpuLaunch g;
  gpu_launch_shape(find_kernel(b, OP_MATMUL, 1030 * 1100), &g);
  cr_expect_eq(g.grid, 9 * 9, "128 x 128 tiles of a 1030 x 1100 product");
  gpu_launch_shape(find_kernel(b, OP_MATMUL, 2 * 130 * 67), &g);
  cr_expect_eq(g.grid, 2 * 3 * 2, "64 x 64 tiles of two 130 x 67 products");
  cr_expect_eq(g.block, 256);
  built_free(b);
  b = build("tests/gpu/pointwise.smelt", NULL, 0);
  gpu_launch_shape(find_kernel(b, OP_MUL, 4096 * 4096), &g);
  cr_expect_eq(g.grid, 8192, "the grid is capped; the kernel loops over the rest");
  built_free(b);
}

static void links_for(const char *target) {
  if (!gpu_tool_path("ld.lld-22") && !gpu_tool_path("ld.lld")) cr_skip_test("skipped: ld.lld is not installed (lld-22)");
  const char *objdump = gpu_tool_path("llvm-objdump-22");
  if (!objdump) cr_skip_test("skipped: llvm-objdump-22 is not installed");
  char tool[4096];
  snprintf(tool, sizeof tool, "%s", objdump);
  Built *b[NBUILT];
  int n = build_all(b);
  const KernelPlan *plans[NBUILT];
  for (int i = 0; i < n; i++) plans[i] = &b[i]->plan;
  // one module for the whole suite: kernel names must not collide, so each model gets its own prefix
  for (int i = 0; i < n; i++) {
    kernel_plan_free(&b[i]->plan);
    char prefix[16];
    snprintf(prefix, sizeof prefix, "m%d_", i);
    kernel_plan(&b[i]->g, prefix, 16, i < NSUITE + 1 ? FUSION_NONE : FUSION_ALL, &b[i]->plan);
  }
  Blob obj, hsaco;
  char err[2048];
  cr_assert_eq(codegen_gpu(plans, n, target, &obj, err, sizeof err), 0, "%s", err);
  cr_assert_eq(amdgpu_link(&obj, &hsaco, err, sizeof err), 1, "%s", err);
  char path[64], cmd[4300];
  snprintf(path, sizeof path, "build/test-%s-%d.hsaco", target, (int)getpid());
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  fwrite(hsaco.data, 1, hsaco.len, f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "%s -d %s", tool, path);
  char *out = NULL;
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  unlink(path);
  int kernels = 0, total = 0;
  for (int i = 0; i < n; i++) {
    total += b[i]->plan.n;
    for (int k = 0; k < b[i]->plan.n; k++) {
      char label[112];
      snprintf(label, sizeof label, "<%s>:", b[i]->plan.kernels[k].name);
      kernels += strstr(out, label) != NULL;
    }
  }
  cr_expect_eq(kernels, total, "%s: %d of %d kernels in the disassembly", target, kernels, total);
  cr_expect_not_null(strstr(out, "s_endpgm"));
  cr_expect_not_null(strstr(out, "ds_bpermute"), "%s: row reductions shuffle with ds_bpermute", target);
  cr_expect_not_null(strstr(out, "s_barrier"), "%s: block reductions and matmuls synchronize", target);
  free(out);
  free(obj.data);
  free(hsaco.data);
  for (int i = 0; i < n; i++) built_free(b[i]);
}

TEST(gpu, amd_code_objects_link_and_disassemble_for_gfx90a) { links_for("gfx90a"); }
TEST(gpu, amd_code_objects_link_and_disassemble_for_gfx942) { links_for("gfx942"); }
TEST(gpu, amd_code_objects_link_and_disassemble_for_gfx1100) { links_for("gfx1100"); }

TEST(gpu, unknown_targets_are_refused_with_the_list) {
  char cmd[512], *out = NULL;
  snprintf(cmd, sizeof cmd, "%s build examples/mlp.smelt --target=sm_99 -o build/never.ingot 2>&1", smelt_path());
  cr_expect_eq(run_cmd(cmd, &out), 2);
  cr_expect_not_null(strstr(out, "unknown target 'sm_99'"), "%s", out);
  cr_expect_not_null(strstr(out, "sm_90"), "%s", out);
  cr_expect_not_null(strstr(out, "gfx942"), "%s", out);
  free(out);
}

// Every processor the table of GPU targets lists is known, belongs to its
// vendor, and compiles: PTX for that processor on NVIDIA, an ELF object on
// AMD. A name that no target lists is refused.
TEST(gpu, every_listed_target_compiles) {
  char list[1024];
  gpu_target_list(list, sizeof list);
  for (int i = 0; i < 4; i++) {
    static const char *const ends[] = {"sm_75", "sm_120a", "gfx900", "gfx1201"};
    cr_expect_not_null(strstr(list, ends[i]), "%s is not in %s", ends[i], list);
  }
  Built *b = build_mode("tests/gpu/embedding.smelt", NULL, 0, FUSION_ALL);
  const KernelPlan *plans[1] = {&b->plan};
  Blob out;
  char err[512];
  for (char *save = NULL, *t = strtok_r(list, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
    cr_expect(gpu_target_known(t), "%s", t);
    bool nv = !strncmp(t, "sm_", 3);
    cr_expect_eq(gpu_target_is_nvidia(t), nv, "%s", t);
    cr_assert_eq(codegen_gpu(plans, 1, t, &out, err, sizeof err), 0, "%s: %s", t, err);
    if (nv) {
      char want[32];
      snprintf(want, sizeof want, ".target %s\n", t);
      cr_expect_not_null(strstr(out.data, want), "%s: the PTX is not for it", t);
    } else {
      cr_expect(out.len > 4 && !memcmp(out.data, "\x7f" "ELF", 4), "%s: not an ELF object", t);
    }
    free(out.data);
  }
  cr_expect(!gpu_target_known("sm_99") && !gpu_target_known("gfx") && !gpu_target_known(""));
  cr_expect_eq(codegen_gpu(plans, 1, "sm_99", &out, err, sizeof err), -1);
  cr_expect_not_null(strstr(err, "unknown GPU target 'sm_99'"), "%s", err);
  built_free(b);
}

TEST(gpu, a_gpu_ingot_carries_its_code_and_runs_on_the_cpu) {
  char path[64], cmd[512], *out = NULL;
  snprintf(path, sizeof path, "build/test-gpu-%d.ingot", (int)getpid());
  snprintf(cmd, sizeof cmd, "%s build tests/gpu/dtypes.smelt --target=sm_90,gfx90a -o %s 2>&1 && %s inspect --all %s",
           smelt_path(), path, smelt_path(), path);
  int rc = run_cmd(cmd, &out);
  if (rc && strstr(out, "ld.lld")) {
    free(out);
    cr_skip_test("skipped: ld.lld is not installed (lld-22)");
  }
  cr_assert_eq(rc, 0, "%s", out);
  cr_expect_not_null(strstr(out, "gpu code:"), "%s", out);
  cr_expect_not_null(strstr(out, "sm_90    ptx"), "%s", out);
  cr_expect_not_null(strstr(out, "gfx90a   hsaco"), "%s", out);
  cr_expect_not_null(strstr(out, "(gpu: "), "%s", out);
  if (gpu_tool_path("ptxas")) cr_expect_not_null(strstr(out, "sm_90    cubin"), "%s", out);
  free(out);
  // the runtime's reader accepts it, the CPU runs it, and a GPU that is absent is named
  smelt_ingot *ig;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  cr_expect_eq(ingot_ncodes(ig), gpu_tool_path("ptxas") ? 3u : 2u);
  cr_expect_not_null(ingot_gpu_launch(ig, 0));
  smelt_session *s;
  cr_assert_eq(smelt_session_new(ig, "auto", 1, &s), SMELT_OK, "%s", smelt_last_error());
  cr_expect_str_eq(smelt_session_device(s), "cpu");
  smelt_session_free(s);
  cr_expect_eq(smelt_session_new(ig, "cuda:x", 1, &s), SMELT_ERR_INVALID_ARGUMENT);
  cr_expect_eq(smelt_session_new(ig, "cuda:1", 1, &s), SMELT_ERR_NO_DEVICE);
  smelt_ingot_close(ig);
  // smelt-rt checks every kernel of it, here on the CPU against the CPU
  snprintf(cmd, sizeof cmd, "%s-rt check %s --device=cpu", smelt_path(), path);
  cr_expect_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "all within tolerance"), "%s", out);
  free(out);
  unlink(path);
}

// A label check (cross_entropy's LABEL) sets the error word behind a branch:
// the PTX of its kernel compares, branches and stores a 64-bit word tagged
// as a label error with the model-file line (ingot.h).
TEST(gpu, label_kernels_set_the_error_word) {
  Built *b = build("examples/gpt.smelt", gpt_sizes, 6);
  const Kernel *k = NULL;
  for (int i = 0; i < b->plan.n && !k; i++)
    if (b->plan.kernels[i].out->op == OP_LABEL) k = &b->plan.kernels[i];
  cr_assert_not_null(k, "no LABEL kernel in the GPT step");
  const KernelPlan *plans[1] = {&b->plan};
  Blob ptx;
  char err[2048];
  cr_assert_eq(codegen_gpu(plans, 1, "sm_80", &ptx, err, sizeof err), 0, "%s", err);
  char *body = ptx_body(ptx.data, k->name);
  cr_assert_not_null(body, "no PTX for %s", k->name);
  cr_expect_gt(k->out->p.label.line, 0);
  char word[32];
  snprintf(word, sizeof word, "%lld", (long long)(INGOT_ERR_LABEL | (int64_t)k->out->p.label.line << INGOT_ERR_LINE_SHIFT));
  cr_expect_not_null(strstr(body, word), "no %s in %s", word, body);
  cr_expect_not_null(strstr(body, "st.global.b64"), "%s", body);
  cr_expect_not_null(strstr(body, "setp."), "%s", body);
  cr_expect_not_null(strstr(body, "bra"), "%s", body);
  free(body);
  free(ptx.data);
  built_free(b);
}
