// test_fusion.c: the fusion planner's decisions, and how a user steers them.
//
// (That fused kernels compute the same bits as unfused ones is checked in
// test_codegen.c; kernels per step and arenas of the examples in
// test_memplan.c.)
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

typedef struct {
  Compilation c;
  Graph g;
  KernelPlan p;
} Planned;

static void plan(Planned *x, const char *body, FusionMode mode) {
  char src[2048];
  snprintf(src, sizeof src, "import \"nn\"\nmodel m {\n%s\n}\n", body);
  compilation_init(&x->c, stderr);
  compilation_default_search(&x->c, NULL);
  Module *m = module_load_text(&x->c, "case.smelt", src, strlen(src));
  for (int i = 0; i < x->c.nmodules; i++) resolve_module(&x->c, x->c.modules[i]);
  cr_assert_eq(x->c.diag.errors, 0);
  Entry e;
  cr_assert_eq(pipeline_entry(&x->c, m, "infer", &(EntryOptions){.last = PASS_KERNELS, .fusion = mode, .prefix = ""}, &e), 0);
  x->g = e.g;   // moved out of e: unplan frees them
  x->p = e.plan;
}

static void unplan(Planned *x) {
  kernel_plan_free(&x->p);
  graph_free(&x->g);
  compilation_free(&x->c);
}

static const Node *output(const Planned *x, const char *name) {
  for (int i = 0; i < x->g.noutputs; i++)
    if (!strcmp(x->g.outputs[i].name, name)) return x->g.outputs[i].node;
  cr_assert_fail("no output %s", name);
  return NULL;
}

static const Kernel *kernel_of(const Planned *x, const Node *n) {
  for (int k = 0; k < x->p.n; k++)
    for (int o = 0; o < x->p.kernels[k].nouts; o++)
      if (x->p.kernels[k].outs[o] == n) return &x->p.kernels[k];
  return NULL;
}

TEST(fusion, a_pointwise_chain_with_broadcasts_and_views_is_one_kernel) {
  Planned x;
  plan(&x, "input a: f32[8, 16]\ninput b: f32[16]\n"
           "output y = (exp(a * 2.0 + b) - a.T.T * b).reshape(16, 8).T.sigmoid()", FUSION_ALL);
  cr_expect_eq(x.p.n, 1, "%d kernels", x.p.n);
  unplan(&x);
  plan(&x, "input a: f32[8, 16]\ninput b: f32[16]\n"
           "output y = (exp(a * 2.0 + b) - a.T.T * b).reshape(16, 8).T.sigmoid()", FUSION_NONE);
  cr_expect_geq(x.p.n, 5, "%d kernels without fusion", x.p.n);
  unplan(&x);
}

TEST(fusion, reductions_take_prologues_and_epilogues) {
  Planned x;
  plan(&x, "input a: f32[8, 16]\noutput m = (a * a).sum(axis = -1) / 16.0 + 1.0", FUSION_ALL);
  cr_expect_eq(x.p.n, 1);
  const Kernel *k = kernel_of(&x, output(&x, "m"));
  cr_assert_not_null(k);
  cr_expect_eq(k->kind, KK_REDUCE);
  cr_expect_eq(k->root->op, OP_SUM, "the kernel's loop is the sum's");
  cr_expect_neq(k->out, k->root, "the sum's epilogue gives the output");
  unplan(&x);
  // with fusion of pointwise ops only, the epilogue is a kernel of its own
  plan(&x, "input a: f32[8, 16]\noutput m = (a * a).sum(axis = -1) / 16.0 + 1.0", FUSION_POINTWISE);
  cr_expect_eq(x.p.n, 2);
  unplan(&x);
}

TEST(fusion, matmuls_take_their_epilogue) {
  Planned x;
  plan(&x, "input a: f32[8, 16]\noutput y = relu(linear(a, 32) as l1) * 0.5", FUSION_ALL);
  const Kernel *k = kernel_of(&x, output(&x, "y"));
  cr_assert_not_null(k);
  cr_expect_eq(k->kind, KK_MATMUL);
  cr_expect(k->tiled, "the epilogue keeps the tiled kernel");
  unplan(&x);
}

TEST(fusion, siblings_reading_the_same_input_share_a_kernel) {
  Planned x;
  plan(&x, "input a: f32[8, 16]\noutput y = a * 2.0\noutput z = exp(a)\noutput w = y + z", FUSION_ALL);
  cr_expect_eq(x.p.n, 1);
  cr_expect_eq(x.p.kernels[0].nouts, 3);
  unplan(&x);
}

TEST(fusion, boundary_stores_and_fused_inlines) {
  Planned x;
  plan(&x, "input a: f32[8, 16]\nlet t = boundary(a * 2.0)\noutput y = t + 1.0", FUSION_ALL);
  cr_expect_eq(x.p.n, 2, "boundary() splits the chain");
  const Node *y = output(&x, "y"), *t = y->src[0]->op == OP_MUL ? y->src[0] : y->src[1];
  cr_expect_eq(x.p.why[t->id], SR_BOUNDARY);
  unplan(&x);
  // a costly value read twice is stored; fused() recomputes it instead
  for (int f = 0; f < 2; f++) {
    char body[256];
    snprintf(body, sizeof body, "input a: f32[8, 16]\nlet e = %s(exp(exp(a)))\noutput y = e.sum(axis = -1)\noutput z = e * 3.0",
             f ? "fused" : "");
    plan(&x, body, FUSION_ALL);
    const Node *z = output(&x, "z"), *e = z->src[0]->op == OP_EXP ? z->src[0] : z->src[1];
    cr_expect_eq(x.p.why[e->id], f ? SR_NONE : SR_RECOMPUTE, "%s", store_reason_text((StoreReason)x.p.why[e->id]));
    unplan(&x);
  }
}

TEST(fusion, the_same_model_gives_the_same_kernels) {
  Planned a, b;
  const char *body = "input x: i32[2, 8]\ninput t: i32[2, 8]\n"
                     "let h = embedding(x, 16, 8) as emb\nh = layernorm(h) as ln\n"
                     "output logits = linear(h, 16) as head";
  plan(&a, body, FUSION_ALL);
  plan(&b, body, FUSION_ALL);
  cr_assert_eq(a.p.n, b.p.n);
  for (int k = 0; k < a.p.n; k++) cr_expect_str_eq(a.p.kernels[k].name, b.p.kernels[k].name);
  unplan(&a);
  unplan(&b);
}

TEST(fusion, kernel_names_say_where_they_came_from) {
  Planned x;
  plan(&x, "input a: f32[8, 16]\noutput y = relu(linear(a, 32) as fc1)", FUSION_ALL);
  bool found = false;
  for (int k = 0; k < x.p.n; k++) found |= strstr(x.p.kernels[k].name, "fc1_matmul") != NULL;
  cr_expect(found, "no kernel named after fc1 and its matmul");
  unplan(&x);
}

TEST(fusion, explain_and_its_options) {
  char *out = NULL, cmd[512];
  snprintf(cmd, sizeof cmd, "%s explain examples/mlp.smelt -DB=4 -DH=8 2>&1", smelt_path());
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "fusion none"), "%s", out);
  cr_expect_not_null(strstr(out, "a matmul operand"), "the rule that kept a kernel apart: %s", out);
  cr_expect_not_null(strstr(out, "mlp.smelt:"), "model-file lines: %s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s explain examples/mlp.smelt -DB=4 -DH=8 --memory --svg=build/test-explain-%d.svg 2>&1",
           smelt_path(), (int)getpid());
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "largest live set"), "%s", out);
  free(out);
  char svg[64];
  snprintf(svg, sizeof svg, "build/test-explain-%d.svg", (int)getpid());
  char *pic = slurp(svg);
  cr_expect_not_null(strstr(pic, "<svg"));
  cr_expect_not_null(strstr(pic, "<rect"));
  free(pic);
  unlink(svg);
  snprintf(cmd, sizeof cmd, "%s explain examples/mlp.smelt --fusion=most 2>&1", smelt_path());
  cr_expect_eq(run_cmd(cmd, &out), 2);
  cr_expect_not_null(strstr(out, "--fusion takes none, pointwise or all"), "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s graph --dot --fused examples/mlp.smelt -DB=4 -DH=8 2>&1", smelt_path());
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "subgraph cluster_k0"), "%s", out);
  free(out);
}

// remat() marks one forward value to be recomputed in the backward pass.
TEST(fusion, remat_marks_one_value) {
  const char *src = "import \"nn\"\nmodel m {\ninput x: f32[4, 8]\ninput t: i32[4]\n"
                    "let h = %s(tanh(linear(x, 8) as l1) * 2.0)\noutput logits = linear(h, 3) as l2\nloss cross_entropy(logits, t)\n}\n"
                    "train {\noptimizer = sgd(lr = 0.1)\nsteps = 1\ndata train {\nx = csv(\"a.csv\")\nt = csv(\"b.csv\")\n}\n}\n";
  int values[2];
  for (int r = 0; r < 2; r++) {
    char text[1024];
    snprintf(text, sizeof text, src, r ? "remat" : "");
    Compilation c;
    compilation_init(&c, stderr);
    compilation_default_search(&c, NULL);
    Module *m = module_load_text(&c, "case.smelt", text, strlen(text));
    cr_assert_eq(check_modules(&c, &m, 1, NULL, 0), 0);
    Graph g;
    graph_init(&g, &c.arena, &c.diag);
    RematStats st = {0};
    cr_assert_eq(entry_graph(&c, m, NULL, 0, "train_step", &g, &(GraphOptions){.remat_stats = &st}), 0);
    values[r] = st.values;
    graph_free(&g);
    compilation_free(&c);
  }
  cr_expect_eq(values[0], 0, "nothing is recomputed unless asked");
  cr_expect_eq(values[1], 1, "remat() recomputes the value it marks");
}
