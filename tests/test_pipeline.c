// test_pipeline.c: the pass list (compiler/pipeline.c), graph_verify between
// passes, and what `smelt dump` prints at each stage.
//
// The test binary turns verification on for itself and every smelt it runs
// (tests/support.c), so each suite's graphs are checked after every pass;
// here graphs broken on purpose must be caught, a build must elaborate each
// entry once, and every stage must print what it made: the PTX assembles
// with ptxas (skipped, saying so, when it is not installed).
#include <criterion/criterion.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime.h"
#include "smelt.h"
#include "support.h"

static int smelt_cmd(const char *args, char **out) {
  char cmd[PATH_MAX * 2];
  snprintf(cmd, sizeof cmd, "NO_COLOR=1 %s %s", smelt_path(), args);
  return run_cmd(cmd, out);
}

static int count(const char *text, const char *what) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, what)); p += strlen(what)) n++;
  return n;
}

// ---- graph_verify

typedef struct {
  Compilation c;
  Graph g;
  Node *x, *w, *mm, *y;
} Small;

// x [4, 3] @ w [3, 2] + 1, output y.
static void small(Small *s) {
  compilation_init(&s->c, stderr);
  graph_init(&s->g, &s->c.arena, &s->c.diag);
  Graph *g = &s->g;
  s->x = g_leaf(g, OP_INPUT, DT_F32, shape_of(2, (int64_t[]){4, 3}), "x");
  s->w = g_leaf(g, OP_PARAM, DT_F32, shape_of(2, (int64_t[]){3, 2}), "w");
  s->mm = g_matmul(g, s->x, s->w, false, false);
  s->y = g_binary(g, OP_ADD, s->mm, g_const(g, 1, DT_F32, shape_of(0, NULL)));
  graph_add_output(g, "y", s->y);
}

static void small_free(Small *s) {
  graph_free(&s->g);
  compilation_free(&s->c);
}

static void expect_broken(Small *s, const char *what) {
  char err[512];
  cr_expect(!graph_verify(&s->g, err, sizeof err), "graph_verify did not catch: %s", what);
  cr_expect_not_null(strstr(err, what), "expected '%s' in: %s", what, err);
}

TEST(pipeline, verify_accepts_a_built_graph) {
  Small s;
  small(&s);
  char err[512] = "";
  cr_expect(graph_verify(&s.g, err, sizeof err), "%s", err);
  small_free(&s);
}

TEST(pipeline, verify_catches_an_input_after_its_user) {
  Small s;
  small(&s);
  s.mm->src[1] = s.y;   // a cycle: the matmul reads the add that reads it
  expect_broken(&s, "comes after it");
  small_free(&s);
}

TEST(pipeline, verify_catches_a_wrong_input_count) {
  Small s;
  small(&s);
  s.y->nsrc = 1;
  s.y->src[1] = NULL;
  expect_broken(&s, "has 1 inputs; ops.def gives it 2");
  small_free(&s);
}

TEST(pipeline, verify_catches_a_dangling_input) {
  Small s;
  small(&s);
  Node *stray = arena_alloc(&s.c.arena, sizeof *stray);
  *stray = *s.w;
  stray->id = 1;   // the id of a node in the graph, but not that node
  s.mm->src[1] = stray;
  expect_broken(&s, "input 1 is not in the graph");
  small_free(&s);
}

TEST(pipeline, verify_catches_an_output_outside_the_graph) {
  Small s;
  small(&s);
  s.g.n--;   // the last node (the add, which y names) dropped
  expect_broken(&s, "output 'y' is not in the graph");
  small_free(&s);
}

TEST(pipeline, verify_catches_shapes_the_builders_would_not_make) {
  Small s;
  small(&s);
  s.mm->shape.d[1] = 5;
  expect_broken(&s, "does not give its shape");
  small_free(&s);
  small(&s);
  s.y->shape = shape_of(2, (int64_t[]){4, 3});
  expect_broken(&s, "shape is not the broadcast");
  small_free(&s);
}

TEST(pipeline, verify_catches_an_update_of_an_input) {
  Small s;
  small(&s);
  graph_add_update(&s.g, s.x, s.x);
  expect_broken(&s, "must be a parameter or state");
  small_free(&s);
}

// A graph broken between passes stops the compiler (an internal error,
// which aborts) at the next pass: here the training step check_modules keeps,
// which the build takes and verifies after autodiff.
TEST(pipeline, a_broken_graph_stops_the_pipeline, .signal = SIGABRT) {
  cr_assert(pipeline_verifying(), "the test build verifies between passes");
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_file(&c, "examples/mlp.smelt");
  static const Define sizes[] = {{"B", 4}, {"H", 8}};
  cr_assert_eq(check_modules(&c, &m, 1, sizes, 2), 0);
  cr_assert_not_null(m->cache);
  Graph *g = &m->cache->e.g;
  g->nodes[g->n - 1]->nsrc = 0;   // the last update's value loses its inputs
  Entry e;
  pipeline_entry(&c, m, "train_step", &(EntryOptions){sizes, 2, .last = PASS_MEMPLAN}, &e);
  cr_assert_fail("the broken graph passed");
}

// Each pass's name is one --dump-after takes; an unknown one is a usage error.
TEST(pipeline, pass_names) {
  for (int p = 0; p < PASS_COUNT; p++) cr_expect_eq(pass_parse(pass_name((Pass)p)), p);
  cr_expect_eq(pass_parse("fuse"), -1);
  char *out;
  cr_expect_eq(smelt_cmd("build examples/mlp.smelt --dump-after=fuse -o /dev/null", &out), 2);
  cr_expect_not_null(strstr(out, "--dump-after takes a pass of the pipeline (elaborate, "), "%s", out);
  cr_expect_not_null(strstr(out, "not 'fuse'"), "%s", out);
  free(out);
}

// ---- one elaboration per entry

// smelt build: check's training step is the train_step entry, so the
// elaborations are check's, eval's and infer's; autodiff runs once.
TEST(pipeline, build_elaborates_each_entry_once) {
  char *out, path[64], args[256];
  snprintf(path, sizeof path, "build/test-pipeline-%d.ingot", (int)getpid());
  snprintf(args, sizeof args, "build examples/mlp.smelt -DB=4 -DH=8 --dump-after=elaborate -o %s", path);
  cr_assert_eq(smelt_cmd(args, &out), 0, "%s", out);
  cr_expect_eq(count(out, " after elaborate\n"), 3, "%s", out);
  cr_expect_eq(count(out, "# step after elaborate\n"), 1, "%s", out);
  cr_expect_eq(count(out, "# eval after elaborate\n"), 1, "%s", out);
  cr_expect_eq(count(out, "# infer after elaborate\n"), 1, "%s", out);
  cr_expect_eq(count(out, "# train_step after elaborate\n"), 0, "%s", out);
  free(out);
  // the kept graph is the training step: autodiff appended the optimizer once
  snprintf(args, sizeof args, "build examples/mlp.smelt -DB=4 -DH=8 --dump-after=autodiff -o %s", path);
  cr_assert_eq(smelt_cmd(args, &out), 0, "%s", out);
  cr_expect_eq(count(out, "# train_step after autodiff\n"), 1, "%s", out);
  cr_expect_eq(count(out, "# step after autodiff\n"), 1, "%s", out);
  free(out);
  smelt_ingot *ig;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  cr_expect_not_null(ingot_entry(ig, "train_step"));
  cr_expect_not_null(ingot_entry(ig, "eval"));
  cr_expect_not_null(ingot_entry(ig, "infer"));
  smelt_ingot_close(ig);
  unlink(path);
}

// --time counts the runs of each stage: the same three elaborations and one
// autodiff, and one LLVM optimization per part of the host's code.
TEST(pipeline, build_time_counts_each_stage) {
  char *out, path[64], args[256];
  snprintf(path, sizeof path, "build/test-pipeline-time-%d.ingot", (int)getpid());
  snprintf(args, sizeof args, "build examples/mlp.smelt -DB=4 -DH=8 --time --no-cache -o %s", path);
  cr_assert_eq(smelt_cmd(args, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "time per stage (ms"), "%s", out);
  const char *e = strstr(out, "  elaborate "), *a = strstr(out, "  autodiff "), *w = strstr(out, "  wall ");
  cr_assert(e && a && w, "%s", out);
  double ms;
  int runs;
  cr_expect_eq(sscanf(e, " elaborate %lf %d", &ms, &runs), 2, "%s", out);
  cr_expect_eq(runs, 3, "%s", out);
  cr_expect_eq(sscanf(a, " autodiff %lf %d", &ms, &runs), 2, "%s", out);
  cr_expect_eq(runs, 1, "%s", out);
  cr_expect_not_null(strstr(out, "host: LLVM optimization"), "%s", out);
  cr_expect_not_null(strstr(out, "host: link"), "%s", out);
  free(out);
  unlink(path);
}

// The host's kernel bodies compile on --jobs threads, each its own module,
// linked in body order, so the ingot is the same bytes for any N.
TEST(pipeline, parallel_codegen_is_byte_identical) {
  char *out, path[2][64], args[256];
  size_t len[2];
  char *data[2];
  int jobs[2] = {1, 3};
  for (int i = 0; i < 2; i++) {
    snprintf(path[i], sizeof path[i], "build/test-pipeline-jobs%d-%d.ingot", jobs[i], (int)getpid());
    // gpt's distinct kernel bodies (95 at these sizes), each its own module
    snprintf(args, sizeof args, "build examples/gpt.smelt -DB=2 -DT=8 -DC=16 -DL=2 -DH=2 --jobs=%d --no-cache --time -o %s", jobs[i],
             path[i]);
    cr_assert_eq(smelt_cmd(args, &out), 0, "%s", out);
    int runs = 0;
    const char *o = strstr(out, "  host: LLVM optimization ");
    cr_assert(o && sscanf(o, " host: LLVM optimization %*f %d", &runs) == 1, "%s", out);
    cr_expect_gt(runs, 1, "gpt's kernel bodies are modules of their own: %s", out);
    free(out);
    data[i] = file_read(path[i], &len[i]);
    cr_assert_not_null(data[i]);
  }
  cr_expect_eq(len[0], len[1]);
  cr_expect(len[0] == len[1] && !memcmp(data[0], data[1], len[0]), "--jobs=1 and --jobs=3 give different ingots");
  for (int i = 0; i < 2; i++) free(data[i]), unlink(path[i]);
}

TEST(pipeline, jobs_takes_one_to_256_threads) {
  char *out;
  cr_expect_neq(smelt_cmd("build examples/mlp.smelt --jobs=0 -o build/never.ingot", &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "jobs"), "%s", out);
  free(out);
  cr_expect_eq(access("build/never.ingot", F_OK), -1);
}

// Other sizes than check's build their own training step.
TEST(pipeline, the_kept_graph_is_for_its_sizes_only) {
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_file(&c, "examples/mlp.smelt");
  static const Define four[] = {{"B", 4}, {"H", 8}}, five[] = {{"B", 5}, {"H", 8}};
  cr_assert_eq(check_modules(&c, &m, 1, four, 2), 0);
  cr_assert_not_null(m->cache);
  Entry e;
  cr_assert_eq(pipeline_entry(&c, m, "train_step", &(EntryOptions){five, 2, .last = PASS_AUTODIFF}, &e), 0);
  cr_expect_eq(e.g.nodes[0]->shape.d[0], 5);
  cr_expect_not_null(m->cache, "the graph of B = 4 is still kept");
  entry_free(&e);
  cr_assert_eq(pipeline_entry(&c, m, "train_step", &(EntryOptions){four, 2, .last = PASS_MEMPLAN}, &e), 0);
  cr_expect_null(m->cache, "the graph of B = 4 was taken");
  cr_expect_eq(e.g.nodes[0]->shape.d[0], 4);
  cr_expect_gt(e.plan.n, 0);
  cr_expect_gt(e.arena, 0);
  entry_free(&e);
  compilation_free(&c);
}

// ---- smelt dump --stage

TEST(pipeline, dump_simplified_fused_and_plan) {
  char *out;
  cr_assert_eq(smelt_cmd("dump --stage=simplified --entry=infer examples/mlp.smelt -DB=4 -DH=8", &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "= MATMUL("), "%s", out);
  cr_expect_null(strstr(out, "INPUT \"y\""), "infer needs no labels:\n%s", out);
  free(out);
  cr_assert_eq(smelt_cmd("dump --stage=fused examples/mlp.smelt -DB=4 -DH=8", &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "train_step: "), "%s", out);
  cr_expect_not_null(strstr(out, "kernels, fusion all"), "%s", out);
  cr_expect_not_null(strstr(out, "      ops: "), "%s", out);
  free(out);
  cr_assert_eq(smelt_cmd("dump --stage=plan --entry=eval examples/mlp.smelt -DB=4 -DH=8", &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "eval: "), "%s", out);
  cr_expect_not_null(strstr(out, "  launch 0: eval_k"), "%s", out);
  cr_expect_not_null(strstr(out, "outside the arena"), "%s", out);
  cr_expect_not_null(strstr(out, " bytes at 0, live "), "%s", out);
  free(out);
}

TEST(pipeline, dump_llvm_asm_and_amdgcn) {
  char *out;
  cr_assert_eq(smelt_cmd("dump --stage=llvm --entry=infer examples/mlp.smelt -DB=4 -DH=8", &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "target triple = \"x86_64-pc-linux-gnu\""), "%s", out);
  cr_expect_not_null(strstr(out, "define void @infer_k"), "%s", out);
  free(out);
  cr_assert_eq(smelt_cmd("dump --stage=llvm --target=sm_80 --entry=infer examples/mlp.smelt -DB=4 -DH=8", &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "target triple = \"nvptx64-nvidia-cuda\""), "%s", out);
  cr_expect_not_null(strstr(out, "ptx_kernel void @infer_k"), "%s", out);
  free(out);
  cr_assert_eq(smelt_cmd("dump --stage=asm --entry=infer examples/mlp.smelt -DB=4 -DH=8", &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "\t.type\tinfer_k"), "%.2000s", out);
  cr_expect_not_null(strstr(out, "\tretq"), "%.2000s", out);
  cr_expect_not_null(strstr(out, "%xmm"), "x86-64-v3 code uses AVX registers:\n%.2000s", out);
  free(out);
  cr_assert_eq(smelt_cmd("dump --stage=amdgcn --target=gfx942 --entry=infer examples/mlp.smelt -DB=4 -DH=8", &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, ".amdgcn_target \"amdgcn-amd-amdhsa--gfx942\""), "%.2000s", out);
  cr_expect_not_null(strstr(out, "s_endpgm"), "%.2000s", out);
  free(out);
  cr_expect_eq(smelt_cmd("dump --stage=ptx --target=gfx90a examples/mlp.smelt", &out), 1);
  cr_expect_not_null(strstr(out, "dump --stage=ptx is not for target 'gfx90a'"), "%s", out);
  free(out);
  cr_expect_eq(smelt_cmd("dump --stage=bogus examples/mlp.smelt", &out), 2);
  cr_expect_not_null(strstr(out, "--stage takes ast, graph, grad, simplified, fused, plan, llvm, ptx, amdgcn or asm, "
                                 "not 'bogus'"), "%s", out);
  free(out);
}

// The ptx stage is the PTX smelt build stores: ptxas assembles it.
TEST(pipeline, dump_ptx_assembles) {
  const char *ptxas = gpu_tool_path("ptxas");
  if (!ptxas) cr_skip_test("skipped: ptxas is not installed (CUDA's /usr/local/cuda/bin)");
  char tool[PATH_MAX];
  snprintf(tool, sizeof tool, "%s", ptxas);
  char *out, path[64], cmd[PATH_MAX * 2];
  snprintf(path, sizeof path, "build/test-pipeline-%d.ptx", (int)getpid());
  snprintf(cmd, sizeof cmd, "NO_COLOR=1 %s dump --stage=ptx --target=sm_80 examples/mlp.smelt -DB=4 -DH=8 > %s", smelt_path(), path);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  char *ptx = slurp(path);
  cr_expect_not_null(strstr(ptx, ".target sm_80"), "%.500s", ptx);
  cr_expect_not_null(strstr(ptx, ".entry train_k"), "%.500s", ptx);
  free(ptx);
  snprintf(cmd, sizeof cmd, "%s -arch=sm_80 -o %s.cubin %s", tool, path, path);
  cr_expect_eq(run_cmd(cmd, &out), 0, "ptxas: %s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s.cubin", path);
  unlink(cmd);
  unlink(path);
}

// GPT's matmuls in bf16 run on tensor cores from sm_80 on.
TEST(pipeline, dump_ptx_of_gpt_in_bf16_has_mma_sync) {
  char *out;
  cr_assert_eq(smelt_cmd("dump --stage=ptx --precision=bf16 --target=sm_80 examples/gpt.smelt", &out), 0, "%.2000s", out);
  cr_expect_not_null(strstr(out, "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"), "no bf16 mma.sync in the PTX");
  free(out);
}

// --dump-after prints what one pass made, for each entry it runs on.
TEST(pipeline, dump_after_a_pass) {
  char *out;
  cr_assert_eq(smelt_cmd("dump --stage=plan --entry=infer --dump-after=simplify examples/mlp.smelt -DB=4 -DH=8", &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "# infer after simplify\n%0 = INPUT \"x\""), "%s", out);
  free(out);
  cr_assert_eq(smelt_cmd("dump --stage=plan --entry=infer --dump-after=kernels examples/mlp.smelt -DB=4 -DH=8", &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "# infer after kernels\ninfer: "), "%s", out);
  free(out);
  char path[64], args[256];
  snprintf(path, sizeof path, "build/test-pipeline-cg-%d.ingot", (int)getpid());
  snprintf(args, sizeof args, "build examples/mlp.smelt -DB=4 -DH=8 --entry=infer --dump-after=codegen -o %s", path);
  cr_assert_eq(smelt_cmd(args, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "# after codegen\nhost x86-64-v3: "), "%s", out);
  free(out);
  unlink(path);
}
