// test_codegen.c: every host kernel against the reference interpreter.
//
// A model (written in the language) is elaborated, optionally into its whole
// training step; every op becomes a kernel, compiled through LLVM for this
// machine, linked into a shared object and loaded. Leaves get random values;
// the kernels run in order over their full ranges; every stored tensor is
// compared with the interpreter's: integers and bools exactly, f32 tensors by
//     ||kernel - interpreter|| <= 1e-4 ||interpreter|| + 1e-5 sqrt(n)
// (the second term for sums that cancel to about zero; 1e-2 for f16, bf16)
// (kernels compute in f32 where the interpreter rounds double results to f32).
// The first kernel that diverges is named.
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

typedef void (*KernelFn)(char **bufs, int64_t begin, int64_t end, int64_t *ctx);

// Runs kernel k over [begin, end) with the plan's buffers by slot: a kernel
// reads its own buffer numbers (Kernel.bufs), so its table is built here as
// a session builds a launch's.
static void run_kernel(KernelFn f, const Kernel *k, char **slots, int64_t begin, int64_t end, int64_t *ctx) {
  char **table = calloc((size_t)(k->nbufs ? k->nbufs : 1), sizeof *table);
  for (int b = 0; b < k->nbufs; b++) table[b] = slots[k->bufs[b]];
  f(table, begin, end, ctx);
  free(table);
}

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static double rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (double)(rng >> 11) / 9007199254740992.0;
}

// Element i of a buffer of n's dtype, as a double, and back (runtime/dtype.h).
static double get(const Node *n, const char *buf, int64_t i) {
  double v;
  dtype_to_doubles(n->dtype, buf + i * dtype_size(n->dtype), &v, 1);
  return v;
}

static void put(const Node *n, char *buf, int64_t i, double v) {
  dtype_from_doubles(n->dtype, &v, buf + i * dtype_size(n->dtype), 1);
}

typedef struct {
  int64_t int_range;    // integer leaves are drawn from [0, int_range)
  bool training;        // the whole training step (adamw), not only the forward graph
  FusionMode fusion;    // zero: all
  Precision precision;  // zero: fp32
  bool own_train;       // training with the source's train block instead
} Opts;

// Elaborates src (its training step with o.training, AdamW) into g, then
// the graph passes as smelt build runs them (recomputation with remat).
static void case_graph(Compilation *c, Graph *g, const char *what, const char *src, const Define *defs, int ndefs, Opts o,
                       bool remat) {
  compilation_init(c, stderr);
  compilation_default_search(c, NULL);
  Module *m = module_load_text(c, "case.smelt", src, strlen(src));
  for (int i = 0; i < c->nmodules; i++) resolve_module(c, c->modules[i]);
  cr_assert_eq(c->diag.errors, 0, "%s does not check", what);
  graph_init(g, &c->arena, &c->diag);
  cr_assert_eq(elaborate(c, m, defs, ndefs, true, g), 0);
  pass_precision(g, o.precision);
  if (o.training) {
    TrainConfig cfg = {.optimizer = "adamw", .lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                       .weight_decay = 0.01, .schedule = "cosine", .warmup = 2, .clip_grad_norm = 1,
                       .precision = o.precision};
    if (o.own_train) {
      cfg = *m->train;
      cfg.precision = o.precision;
    }
    cr_assert_eq(optim_append(g, &cfg, 100), 0);
    pass_precision_grads(g);
  }
  if (o.precision == PREC_TF32) pass_precision_tf32(g);
  pass_simplify(g, NULL);
  if (remat) pass_remat(g, g->loss->id + 1, true, NULL);
  pass_conv_gemm(g);
  pass_matmul_operands(g);
}

// Checks every kernel of src's graph against the interpreter.
static void check_kernels(const char *what, const char *src, const Define *defs, int ndefs, Opts o) {
  Compilation c;
  Graph g;
  case_graph(&c, &g, what, src, defs, ndefs, o, false);
  KernelPlan plan;
  kernel_plan(&g, "", codegen_tile_columns(NULL), o.fusion, &plan);
  Blob obj;
  char err[512], so[128];
  const KernelPlan *plans[1] = {&plan};
  cr_assert_eq(codegen_host(plans, 1, NULL, &obj, err, sizeof err), 0, "%s", err);
  snprintf(so, sizeof so, "build/test-kernels-%d.so", (int)getpid());
  cr_assert_eq(link_shared(&obj, so, err, sizeof err), 0, "%s", err);
  free(obj.data);
  void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
  cr_assert_not_null(lib, "%s", dlerror());
  unlink(so);
  // buffers, and the same values as doubles for the interpreter
  char **bufs = calloc((size_t)plan.nslots, sizeof *bufs);
  double **leaves = calloc((size_t)g.n, sizeof *leaves);
  for (int s = 0; s < plan.nslots; s++) {
    Node *n = plan.slot_node[s];
    int64_t cnt = shape_numel(&n->shape);
    bufs[s] = calloc((size_t)(cnt ? cnt : 1), (size_t)dtype_size(n->dtype));
    if (n->op != OP_INPUT && n->op != OP_PARAM && n->op != OP_STATE) {
      memset(bufs[s], 0xFF, (size_t)cnt * (size_t)dtype_size(n->dtype));   // poison
      continue;
    }
    leaves[n->id] = malloc(sizeof(double) * (size_t)(cnt ? cnt : 1));
    for (int64_t i = 0; i < cnt; i++) {
      double v = dtype_is_float(n->dtype) ? 2 * rnd() - 1 : floor(rnd() * (double)o.int_range);
      if (n->op == OP_STATE) v = strstr(n->name, ".v") || !strcmp(n->name, "step") ? fabs(v) * 3 : v;
      put(n, bufs[s], i, v);
      leaves[n->id][i] = get(n, bufs[s], i);
    }
  }
  InterpResult r;
  cr_assert_eq(interp_run(&g, leaves, 7, 3, &r, err, sizeof err), 0, "%s", err);
  int64_t ctx[3] = {7, 3, 0};
  for (int k = 0; k < plan.n; k++) {
    const Kernel *kn = &plan.kernels[k];
    KernelFn f = (KernelFn)(uintptr_t)dlsym(lib, kn->name);
    cr_assert_not_null(f, "no symbol %s", kn->name);
    // in three uneven pieces, as threads take them: rows begin and end anywhere
    int64_t a = kn->count / 3 + 1 < kn->count ? kn->count / 3 + 1 : kn->count;
    int64_t b = 2 * kn->count / 3 - 1 > a ? 2 * kn->count / 3 - 1 : a;
    run_kernel(f, kn, bufs, 0, a, ctx);
    run_kernel(f, kn, bufs, a, b, ctx);
    run_kernel(f, kn, bufs, b, kn->count, ctx);
    cr_assert_eq(ctx[2], 0, "%s: kernel %s flagged an error", what, kn->name);
    for (int o = 0; o < kn->nouts; o++) {
    const Node *n = kn->outs[o];
    int64_t cnt = shape_numel(&n->shape);
    const char *buf = bufs[plan.slot[n->id]];
    const double *want = r.vals[n->id];
    if (dtype_is_float(n->dtype)) {
      double num = 0, den = 0;
      for (int64_t i = 0; i < cnt; i++) {
        double d = get(n, buf, i) - want[i];
        num += isnan(d) && !(isnan(want[i]) && isnan(get(n, buf, i))) ? INFINITY : isnan(d) ? 0 : d * d;
        den += want[i] * want[i];
      }
      // relative, with an absolute floor for sums that cancel to about zero
      double tol = n->dtype == DT_F32 ? 1e-4 : 1e-2;
      double bound = tol * sqrt(den) + 0.1 * tol * sqrt((double)cnt);
      if (getenv("SMELT_DEBUG_KERNEL") && sqrt(num) > bound)
        for (int64_t i = 0; i < cnt; i++)
          if (fabs(get(n, buf, i) - want[i]) > 1e-3 * fabs(want[i]) + 1e-6)
            fprintf(stderr, "  [%lld] kernel %.9g interp %.9g\n", (long long)i, get(n, buf, i), want[i]);
      cr_assert_leq(sqrt(num), bound, "%s: kernel %s (%s at %s) differs from the interpreter by "
                    "%.3g (norm %.3g)", what, kn->name, op_name(n->op), n->scope, sqrt(num), sqrt(den));
    } else {
      for (int64_t i = 0; i < cnt; i++)
        cr_assert_eq(get(n, buf, i), want[i], "%s: kernel %s element %lld: %g, want %g", what,
                     kn->name, (long long)i, get(n, buf, i), want[i]);
    }
    }
    // later kernels read what this one wrote, as the interpreter's values
  }
  interp_free(&r);
  for (int s = 0; s < plan.nslots; s++) free(bufs[s]);
  for (int i = 0; i < g.n; i++) free(leaves[i]);
  free(bufs);
  free(leaves);
  dlclose(lib);
  kernel_plan_free(&plan);
  graph_free(&g);
  compilation_free(&c);
}

// Runs every kernel of g planned in mode, on leaves drawn from a fixed seed
// in node order (the same values whatever the plan); returns the buffers by slot.
static char **run_plan(Graph *g, FusionMode mode, KernelPlan *plan, Opts o) {
  kernel_plan(g, "", codegen_tile_columns(NULL), mode, plan);
  Blob obj;
  char err[512], so[128];
  const KernelPlan *plans[1] = {plan};
  cr_assert_eq(codegen_host(plans, 1, NULL, &obj, err, sizeof err), 0, "%s", err);
  snprintf(so, sizeof so, "build/test-fusion-%d-%d.so", (int)getpid(), (int)mode);
  cr_assert_eq(link_shared(&obj, so, err, sizeof err), 0, "%s", err);
  free(obj.data);
  void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
  cr_assert_not_null(lib, "%s", dlerror());
  unlink(so);
  char **bufs = calloc((size_t)plan->nslots, sizeof *bufs);
  rng = 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < g->n; i++) {
    Node *n = g->nodes[i];
    int s = plan->slot[i];
    if (s < 0) continue;
    int64_t cnt = shape_numel(&n->shape);
    bufs[s] = calloc((size_t)(cnt ? cnt : 1), (size_t)dtype_size(n->dtype));
    if (n->op != OP_INPUT && n->op != OP_PARAM && n->op != OP_STATE) continue;
    for (int64_t k = 0; k < cnt; k++) {
      double v = dtype_is_float(n->dtype) ? 2 * rnd() - 1 : floor(rnd() * (double)o.int_range);
      if (n->op == OP_STATE) v = strstr(n->name, ".v") || !strcmp(n->name, "step") ? fabs(v) * 3 : v;
      put(n, bufs[s], k, v);
    }
  }
  int64_t ctx[3] = {7, 3, 0};
  for (int k = 0; k < plan->n; k++) {
    KernelFn f = (KernelFn)(uintptr_t)dlsym(lib, plan->kernels[k].name);
    cr_assert_not_null(f, "no symbol %s", plan->kernels[k].name);
    run_kernel(f, &plan->kernels[k], bufs, 0, plan->kernels[k].count, ctx);
  }
  cr_assert_eq(ctx[2], 0);
  dlclose(lib);
  return bufs;
}

static void free_run(KernelPlan *plan, char **bufs) {
  for (int s = 0; s < plan->nslots; s++) free(bufs[s]);
  free(bufs);
  kernel_plan_free(plan);
}

// Fusion changes no arithmetic: every output and update value of the graph
// is bit for bit the same with fusion off, pointwise and all.
static void check_fusion_bits(const char *what, const char *src, const Define *defs, int ndefs, Opts o) {
  Compilation c;
  Graph g;
  case_graph(&c, &g, what, src, defs, ndefs, o, false);
  KernelPlan p0, p;
  char **b0 = run_plan(&g, FUSION_NONE, &p0, o);
  for (FusionMode mode = FUSION_ALL; mode < FUSION_NONE; mode++) {
    char **b = run_plan(&g, mode, &p, o);
    cr_assert_lt(p.n, p0.n, "%s: fusion %s made no fewer kernels", what, fusion_mode_name(mode));
    Node *check[512];
    int n = 0;
    for (int i = 0; i < g.noutputs && n < 512; i++) check[n++] = g.outputs[i].node;
    for (int i = 0; i < g.nupdates && n < 512; i++) check[n++] = g.updates[i].value;
    for (int i = 0; i < n; i++) {
      Node *x = check[i];
      size_t bytes = (size_t)shape_numel(&x->shape) * (size_t)dtype_size(x->dtype);
      const char *a = b0[p0.slot[x->id]], *bb = b[p.slot[x->id]];
      for (size_t k = 0; k < bytes; k++)
        cr_assert_eq(a[k], bb[k], "%s: fusion %s changes byte %zu of %%%d (%s in '%s')", what, fusion_mode_name(mode), k,
                     x->id, op_name(x->op), x->scope);
    }
    free_run(&p, b);
  }
  if (o.training) {   // and with forward values recomputed in the backward pass
    Compilation c2;
    Graph g2;
    case_graph(&c2, &g2, what, src, defs, ndefs, o, true);
    char **b = run_plan(&g2, FUSION_ALL, &p, o);
    cr_assert_eq(g2.noutputs, g.noutputs);
    cr_assert_eq(g2.nupdates, g.nupdates);
    for (int i = 0; i < g.noutputs + g.nupdates; i++) {
      Node *x = i < g.noutputs ? g.outputs[i].node : g.updates[i - g.noutputs].value;
      Node *y = i < g.noutputs ? g2.outputs[i].node : g2.updates[i - g.noutputs].value;
      size_t bytes = (size_t)shape_numel(&x->shape) * (size_t)dtype_size(x->dtype);
      cr_assert(memcmp(b0[p0.slot[x->id]], b[p.slot[y->id]], bytes) == 0, "%s: recomputation changes %%%d (%s)", what, x->id,
                op_name(x->op));
    }
    free_run(&p, b);
    graph_free(&g2);
    compilation_free(&c2);
  }
  free_run(&p0, b0);
  graph_free(&g);
  compilation_free(&c);
}

static void check_example(const char *name, const Define *defs, int ndefs, Opts o) {
  char path[64];
  snprintf(path, sizeof path, "examples/%s.smelt", name);
  char *src = slurp(path);
  check_kernels(name, src, defs, ndefs, o);
  check_fusion_bits(name, src, defs, ndefs, o);
  free(src);
}

static void check(const char *what, const char *body, Opts o) {
  char src[4096];
  snprintf(src, sizeof src, "import \"nn\"\nmodel m {\n%s\n}\n", body);
  check_kernels(what, src, NULL, 0, o);
  Opts none = o;
  none.fusion = FUSION_NONE;
  check_kernels(what, src, NULL, 0, none);
}

static const Opts fwd = {.int_range = 3};
static const Opts step = {.int_range = 3, .training = true};

TEST(codegen, pointwise_and_broadcasting) {
  check("pointwise", "input a: f32[3, 4]\ninput b: f32[4]\ninput c: f32[3, 1]\n"
        "output y = where(a > b, exp(a) * b, -sqrt(abs(b)) / (a + 2.0)) + c ** 2\n"
        "output z = sigmoid(a) - tanh(c) + log(abs(a) + 1.0) * rsqrt(abs(b) + 1.0)\n"
        "output w = maximum(a, c) * minimum(b, 0.25) + pow(abs(a), 1.5) - a // 0.3 + a % 0.3", fwd);
}

// The host's scatter_add walks the ids once per result row
// (Kernel.scatter_rows): repeated ids, rows no id names, an odd row width,
// a bias fused after it, and the gradient of an embedding through it.
TEST(codegen, scatter_add_by_rows) {
  Opts o = {.int_range = 5};
  check("scatter", "input ids: i32[2, 9]\ninput v: f32[2, 9, 3]\ninput b: f32[3]\n"
        "output y = scatter_add(ids, v, 7) + b\noutput z = scatter_add(ids, v * v, 5)", o);
  o.training = true;
  check("embedding grad", "input ids: i32[2, 9]\ninput t: i32[2, 9]\n"
        "let e = embedding(ids, 5, 3) as emb\noutput logits = linear(e, 5) as head\nloss cross_entropy(logits, t)", o);
}

TEST(codegen, erf_softplus_silu_stop_gradient_and_their_gradients) {
  check("activations", "input a: f32[3, 4]\nparam w: f32[4] = ones\nlet z = a * w * 3.0\n"
        "let h = erf(z) + softplus(z, beta = 2.0, threshold = 4.0) + softplus(z) + silu(z) * stop_gradient(z) + z.swish().detach()\n"
        "output l = (h * h).mean()\nloss l", step);
}

TEST(codegen, activations_under_bf16_and_fp16) {
  for (Precision p = PREC_BF16; p <= PREC_FP16; p++)
    check("activations low", "input a: f32[3, 4]\nparam w: f32[4, 4] = ones\nlet z = a @ w\n"
          "let h = erf(z) + softplus(z, beta = 2.0) + silu(z) * stop_gradient(z) + gelu(z)\n"
          "output l = (h @ w).mean()\nloss l", (Opts){.int_range = 3, .training = true, .precision = p});
}

TEST(codegen, gru_training_step) {
  check("gru", "input x: f32[2, 4, 3]\ninput t: i32[2]\nlet y = gru(x, 5) as rnn\n"
        "output l = cross_entropy(linear(y[:, 3], 3) as head, t)\nloss l", step);
}

TEST(codegen, attention_and_group_norm_training_step) {
  check("attention", "input x: f32[2, 3, 4]\ninput kv: f32[2, 2, 4]\n"
        "let m = iota(3).reshape(3, 1) != iota(3).reshape(1, 3)\n"
        "let y = self_attention(x, 2, causal = true, mask = m.broadcast(2, 3, 3)) as sa + cross_attention(x, kv, 2) as ca\n"
        "let z = group_norm(y.transpose(1, 2), 2) as gn\n"
        "output l = (z * z).mean()\nloss l", step);
}

// Fused attention's kernels (codegen_attn.c) against the interpreter, forward
// and backward, on widths 1 to 65, lengths that are not multiples of the key
// tile, Tq != Tk, causal or not, masks with rows that may attend no key, and
// logits in the thousands (the online softmax must not overflow), dropout.
static void attention_case(int64_t B, int64_t N, int64_t Tq, int64_t Tk, int64_t D, int64_t Dv, const char *how,
                           double mag, Opts o) {
  char body[2048], what[160];
  snprintf(what, sizeof what, "attention %lldx%lldx%lldx%lld D=%lld Dv=%lld %s x%g", (long long)B, (long long)N,
           (long long)Tq, (long long)Tk, (long long)D, (long long)Dv, how, mag);
  snprintf(body, sizeof body,
           "input q: f32[%lld, %lld, %lld, %lld]\ninput k: f32[%lld, %lld, %lld, %lld]\ninput v: f32[%lld, %lld, %lld, %lld]\n"
           "param w: f32[%lld] = ones\nparam u: f32[%lld] = ones\n"
           "let m = (iota(%lld).reshape(1, %lld) * 7 + iota(%lld).reshape(%lld, 1) * 3) %% 5 != 0\n"
           "let none = iota(%lld).reshape(%lld, 1) != 1\n"
           "let y = attention(q * w * %g, k * %g, v * u, %s)\n"
           "output l = (y * y).mean()\nloss l",
           (long long)B, (long long)N, (long long)Tq, (long long)D, (long long)B, (long long)N, (long long)Tk, (long long)D,
           (long long)B, (long long)N, (long long)Tk, (long long)Dv, (long long)D, (long long)Dv, (long long)Tk,
           (long long)Tk, (long long)Tq, (long long)Tq, (long long)Tq, (long long)Tq, mag, mag, how);
  check(what, body, o);
}

TEST(codegen, attention_kernels_and_their_gradients) {
  attention_case(2, 2, 5, 37, 1, 3, "causal = false", 1, step);
  attention_case(1, 3, 33, 17, 17, 5, "causal = true", 1, step);
  attention_case(2, 1, 16, 16, 64, 64, "causal = true", 1, step);
  attention_case(1, 2, 7, 19, 65, 2, "mask = m", 1, step);
  attention_case(1, 2, 9, 4, 3, 3, "causal = true, mask = where(none, m, false)", 1, step);   // row 1 and others see no key
  attention_case(1, 1, 6, 20, 4, 3, "mask = where(none, m, false).broadcast(1, 1, 6, 20), scale = 1.0", 1, step);
  attention_case(1, 2, 11, 23, 8, 5, "causal = true", 40, step);   // logits up to about 1e4
  attention_case(2, 2, 13, 21, 6, 4, "causal = true, dropout = 0.25", 1, step);
  attention_case(1, 2, 9, 4, 3, 3, "causal = true, mask = where(none, m, false), dropout = 0.5", 1, step);
  attention_case(1, 1, 3, 40, 2, 2, "mask = m", 300, fwd);   // logits about 1e5: the forward alone (gradients in f32 lose digits there)
}

TEST(codegen, attention_under_bf16_and_fp16) {
  for (Precision p = PREC_BF16; p <= PREC_FP16; p++)
    check("attention low", "input x: f32[2, 5, 8]\nparam w: f32[8, 24] = ones\n"
          "let qkv = (x @ w).reshape(2, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)\n"
          "let y = attention(qkv[0], qkv[1], qkv[2], causal = true)\n"
          "output l = (y * y).mean()\nloss l", (Opts){.int_range = 3, .training = true, .precision = p});
}

TEST(codegen, views_fold_into_loads) {
  check("views", "input x: f32[2, 3, 4]\ninput v: f32[4, 6]\n"
        "output a = x.permute(2, 0, 1).reshape(4, 6) + v\n"
        "output b = x[:, 1:, ::2].T * 2.0\n"
        "output c = pad(x, (1, 2), value = 0.5) * 3.0\n"
        "output d = concat(x, x * 2.0, axis = 1).sum(axis = 1)\n"
        "output e = x.broadcast(5, 2, 3, 4)[3, 1] - x[1]\n"
        "output f = fill(2.0, 3, 4) * iota(4).cast(f32)", fwd);
}

TEST(codegen, negative_step_slices_and_stacks) {
  check("negative steps", "input x: f32[5, 6, 7]\n"
        "output a = x[::-1, 4:0:-3, -2::-2] * 2.0\n"
        "output b = x[1, ::-1].T + x[3, :, ::-1].T\n"
        "output c = x.reshape(30, 7)[29:0:-7] - 1.0\n"
        "let hs = []\n"
        "for t in 0..5 {\n  hs = hs + [x[t, ::-2] * (t + 1.0)]\n}\n"
        "output d = stack(hs, axis = 1) + stack(hs[::-1], axis = 1)\n"
        "output e = concat(hs, axis = -1).sum(axis = 0)", fwd);
  check("negative steps in a training step", "input x: f32[3, 8]\ninput t: i32[3]\n"
        "let hs = []\n"
        "for k in 0..4 {\n  hs = hs + [linear(x[:, 7 - k::-4], 5) as cell]\n}\n"
        "let h = stack(hs, axis = 1)[:, ::-1]\n"
        "output logits = linear(h.reshape(3, 20)[:, 18::-3], 4) as head\n"
        "loss cross_entropy(logits, t)", step);
}

TEST(codegen, tied_weights_training_step) {
  check("tied", "input ids: i32[2, 5]\ninput t: i32[2, 5]\n"
        "param wte: f32[3, 4] = normal(0.0, 1.0)\n"
        "let e = embedding(ids, 3, 4, table = wte)\n"
        "output logits = linear(tanh(e), 3, weight = wte.T) as head\n"
        "loss cross_entropy(logits, t)", step);
}

TEST(codegen, reductions) {
  check("reductions", "input x: f32[3, 5, 4]\ninput i: i32[3, 5]\n"
        "output a = x.sum(axis = (0, 2)) + x.mean()\n"
        "output b = x.max(axis = 1, keep = true) - x.min(axis = -1, keep = true)\n"
        "output c = x.argmax(axis = 1)\n"
        "output d = i.sum(axis = 1) + i.max()\n"
        "output e = softmax(x) * log_softmax(x, axis = 0)", fwd);
}

TEST(codegen, matmuls) {
  check("matmul", "input a: f32[2, 3, 5]\ninput b: f32[5, 4]\ninput c: f32[2, 4, 5]\ninput v: f32[5]\n"
        "output x = a @ b\n"
        "output y = matmul(a, c, tb = true)\n"
        "output z = matmul(a.transpose(1, 2), c, ta = true, tb = true)\n"
        "output u = a @ v\n"
        "output u2 = v @ b @ b.T", fwd);
}

// Under each low precision policy: low operands (stored or cast as they are
// loaded), f32 accumulation, low or f32 results, transposes, odd sizes,
// batch broadcasting, an epilogue, and the tiled host path.
TEST(codegen, matmuls_under_each_precision_policy) {
  for (Precision p = PREC_TF32; p <= PREC_FP16; p++) {
    Opts o = {.int_range = 3, .precision = p};
    check(precision_name(p), "input a: f32[2, 3, 5]\ninput b: f32[5, 4]\ninput c: f32[2, 4, 5]\n"
          "output x = a @ b\n"
          "output y = matmul(a, c, tb = true)\n"
          "output z = matmul(a.transpose(1, 2), c, ta = true, tb = true)\n"
          "output e = gelu(linear(a, 7) as fc) * 2.0\n"
          "output k = fp32(a @ b)", o);
    check(precision_name(p), "input p: f32[2, 13, 9]\ninput q: f32[9, 37]\ninput s: f32[9, 13]\n"
          "input u: f32[3, 1, 12, 7]\ninput v: f32[4, 7, 32]\n"
          "output r = p @ q\n"
          "output t = matmul(s, q, ta = true)\n"
          "output w = u @ v", o);
  }
}

// Full and edge tiles; B's column tiles copied once for the row tiles that
// read them (gh: several column tiles, each in more than one of the test's
// three pieces of the launch; w: a batch of B's).
TEST(codegen, tiled_matmul_full_and_edge_tiles) {
  check("tiled", "input p: f32[2, 13, 9]\ninput q: f32[9, 37]\ninput s: f32[9, 13]\ninput u: f32[3, 1, 12, 7]\n"
        "input v: f32[4, 7, 32]\ninput g: f32[20, 70]\ninput h: f32[70, 100]\n"
        "output r = p @ q\n"
        "output t = matmul(s, q, ta = true)\n"
        "output w = u @ v\n"
        "output gh = g @ h", fwd);
}

// ---- the f32 functions built from arithmetic (codegen_math.c), element by element

// Distance in units in the last place: how many floats lie between a and b
// (0: the same value; -0 and +0 are the same; NaN only matches NaN).
static double ulps(float a, float b) {
  if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) ? 0 : INFINITY;
  int32_t ia, ib;
  memcpy(&ia, &a, 4);
  memcpy(&ib, &b, 4);
  int64_t oa = ia < 0 ? (int64_t)INT32_MIN - ia : ia, ob = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
  return fabs((double)(oa - ob));
}

// x: every 2^shift-th float of [-hi, hi] (by bit pattern), then specials.
static int64_t dense_inputs(float *x, int64_t cap, float hi, int shift) {
  static const float special[] = {0.0f, -0.0f, 1e-45f, -1e-45f, 1e-40f, -1e-40f, 1.17549435e-38f, 1e-30f, -1e-30f,
                                  1e30f, -1e30f, 3.4028235e38f, -3.4028235e38f, INFINITY, -INFINITY, NAN};
  int64_t n = 0;
  uint32_t top;
  memcpy(&top, &hi, 4);
  for (uint32_t b = 0; b <= top && n + 2 < cap; b += 1u << shift) {
    float v;
    memcpy(&v, &b, 4);
    x[n++] = v;
    x[n++] = -v;
  }
  for (size_t i = 0; i < sizeof special / sizeof *special && n < cap; i++) x[n++] = special[i];
  return n;
}

// Runs `output y = <expr of x>` on the host kernels over x[0..n) and on the
// interpreter (exact, rounded to f32); returns the largest distance in ulps
// over the x where keep(x), and where it is.
static double host_vs_interp_ulps(const char *expr, const float *x, int64_t n, bool (*keep)(float), float *at) {
  char src[256];
  snprintf(src, sizeof src, "import \"nn\"\nmodel m(N = 1) {\ninput x: f32[N]\noutput y = %s\n}\n", expr);
  Define d[] = {{"N", n}};
  Compilation c;
  Graph g;
  case_graph(&c, &g, expr, src, d, 1, fwd, false);
  KernelPlan plan;
  kernel_plan(&g, "", codegen_tile_columns(NULL), FUSION_ALL, &plan);
  Blob obj;
  char err[512], so[128];
  const KernelPlan *plans[1] = {&plan};
  cr_assert_eq(codegen_host(plans, 1, NULL, &obj, err, sizeof err), 0, "%s", err);
  snprintf(so, sizeof so, "build/test-math-%d.so", (int)getpid());
  cr_assert_eq(link_shared(&obj, so, err, sizeof err), 0, "%s", err);
  free(obj.data);
  void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
  cr_assert_not_null(lib, "%s", dlerror());
  unlink(so);
  char **bufs = calloc((size_t)plan.nslots, sizeof *bufs);
  double **leaves = calloc((size_t)g.n, sizeof *leaves);
  Node *in = NULL;
  for (int s = 0; s < plan.nslots; s++) {
    Node *nd = plan.slot_node[s];
    bufs[s] = calloc((size_t)shape_numel(&nd->shape) + 1, (size_t)dtype_size(nd->dtype));
    if (nd->op == OP_INPUT) in = nd;
  }
  cr_assert_not_null(in);
  memcpy(bufs[plan.slot[in->id]], x, sizeof(float) * (size_t)n);
  leaves[in->id] = malloc(sizeof(double) * (size_t)n);
  for (int64_t i = 0; i < n; i++) leaves[in->id][i] = x[i];
  int64_t ctx[3] = {7, 3, 0};
  for (int k = 0; k < plan.n; k++) {
    KernelFn f = (KernelFn)(uintptr_t)dlsym(lib, plan.kernels[k].name);
    cr_assert_not_null(f);
    run_kernel(f, &plan.kernels[k], bufs, 0, plan.kernels[k].count, ctx);
  }
  InterpResult r;
  cr_assert_eq(interp_run(&g, leaves, 7, 3, &r, err, sizeof err), 0, "%s", err);
  Node *y = g.outputs[0].node;
  const float *got = (const float *)bufs[plan.slot[y->id]];
  double worst = 0;
  *at = 0;
  for (int64_t i = 0; i < n; i++) {
    if (keep && !keep(x[i])) continue;
    double e = ulps(got[i], (float)r.vals[y->id][i]);
    cr_expect(e < INFINITY, "%s at x = %.9g: kernel %.9g, interpreter %.9g", expr, x[i], got[i], r.vals[y->id][i]);
    if (e > worst) worst = e, *at = x[i];
  }
  interp_free(&r);
  free(leaves[in->id]);
  free(leaves);
  for (int s = 0; s < plan.nslots; s++) free(bufs[s]);
  free(bufs);
  dlclose(lib);
  kernel_plan_free(&plan);
  graph_free(&g);
  compilation_free(&c);
  return worst;
}

enum { DENSE = 1 << 21 };

TEST(codegen, erf_within_two_ulps_of_libm) {
  float *x = malloc(sizeof(float) * DENSE), at;
  int64_t n = dense_inputs(x, DENSE, 5.0f, 10);   // about 2 million points, subnormals to 5
  double e = host_vs_interp_ulps("erf(x)", x, n, NULL, &at);
  cr_expect_leq(e, 2, "erf: %.0f ulps at %.9g", e, at);
  cr_log_info("erf: %.0f ulps at %.9g", e, at);
  free(x);
}

// A max pool's value is the maximum its window walk found (the first NaN,
// ties to the first), as the interpreter's: NaN, infinities, ties, negative
// zero and padding, fused with the relu and bias in front as a CNN has it.
TEST(codegen, max_pool_keeps_nan_infinities_and_ties) {
  static const float v[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 2.0f, 2.0f, -3.0f, 1e30f, -1e30f, 7.0f, -7.0f};
  enum { N = 96 };
  float x[N];
  for (int i = 0; i < N; i++) x[i] = v[(i * 7 + i / 5) % (int)(sizeof v / sizeof *v)];
  float at;
  const char *exprs[] = {
      "max_pool2d(x.reshape(1, 2, 6, 8), 3, stride = 1, padding = 1).reshape(N)",
      "max_pool2d(relu(x.reshape(1, 2, 6, 8) + 0.5), 3, stride = 1, padding = 1).reshape(N)",
      "max_pool2d(-x.reshape(2, 3, 4, 4), 3, stride = 1, padding = 1).reshape(N)",
  };
  for (size_t i = 0; i < sizeof exprs / sizeof *exprs; i++) {
    double e = host_vs_interp_ulps(exprs[i], x, N, NULL, &at);
    cr_expect_eq(e, 0, "%s: %.0f ulps at x = %.9g", exprs[i], e, at);
  }
}

TEST(codegen, tanh_within_two_ulps_of_libm) {
  float *x = malloc(sizeof(float) * DENSE), at;
  int64_t n = dense_inputs(x, DENSE, 12.0f, 10);   // subnormals to 12, both signs
  double e = host_vs_interp_ulps("tanh(x)", x, n, NULL, &at);
  cr_expect_leq(e, 2, "tanh: %.0f ulps at %.9g", e, at);
  cr_log_info("tanh: %.0f ulps at %.9g", e, at);
  static const float edge[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 0.55f, -0.55f, 0.5499999f, 9.0f, 9.5f, -20.0f, 1e-30f};
  float got_at;
  e = host_vs_interp_ulps("tanh(x)", edge, sizeof edge / sizeof *edge, NULL, &got_at);
  cr_expect_leq(e, 2, "tanh at an edge value: %.0f ulps at %.9g", e, got_at);
  free(x);
}

// The host's exp is computed inline (codegen_math.c math_exp_inline): every
// float from far below underflow (subnormal results, then 0) to past
// overflow (inf), against the interpreter's double exp rounded to f32.
TEST(codegen, exp_within_two_ulps_of_libm) {
  float *x = malloc(sizeof(float) * DENSE), at;
  int64_t n = dense_inputs(x, DENSE, 110.0f, 10);
  double e = host_vs_interp_ulps("exp(x)", x, n, NULL, &at);
  cr_expect_leq(e, 2, "exp: %.0f ulps at %.9g", e, at);
  cr_log_info("exp: %.0f ulps at %.9g", e, at);
  static const float edge[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 88.72283f, 88.72284f, -87.33655f, -103.27893f,
                               -103.97208f, -104.5f, 1e-30f, -1e-30f, 0.34657359f, -0.34657359f};
  float got_at;
  e = host_vs_interp_ulps("exp(x)", edge, sizeof edge / sizeof *edge, NULL, &got_at);
  cr_expect_leq(e, 2, "exp at an edge value: %.0f ulps at %.9g", e, got_at);
  free(x);
}

TEST(codegen, softplus_within_four_ulps) {
  float *x = malloc(sizeof(float) * DENSE), at;
  int64_t n = dense_inputs(x, DENSE, 120.0f, 10);
  double e = host_vs_interp_ulps("softplus(x)", x, n, NULL, &at);
  cr_expect_leq(e, 4, "softplus: %.0f ulps at %.9g", e, at);
  cr_log_info("softplus: %.0f ulps at %.9g", e, at);
  e = host_vs_interp_ulps("softplus(x, beta = 2.0, threshold = 5.0)", x, n, NULL, &at);
  cr_expect_leq(e, 4, "softplus with beta 2: %.0f ulps at %.9g", e, at);
  cr_log_info("softplus with beta 2: %.0f ulps at %.9g", e, at);
  free(x);
}

// Where exp(-x) overflows f32 (x < -88.7) the kernel's x / (1 + exp(-x)) is
// -0, as PyTorch's f32 silu is; the interpreter's double gives a subnormal.
static bool above_overflow(float x) { return !(x < -88.7f); }

TEST(codegen, silu_within_three_ulps) {
  float *x = malloc(sizeof(float) * DENSE), at;
  int64_t n = dense_inputs(x, DENSE, 120.0f, 10);
  double e = host_vs_interp_ulps("silu(x)", x, n, above_overflow, &at);
  cr_expect_leq(e, 3, "silu: %.0f ulps at %.9g", e, at);
  cr_log_info("silu: %.0f ulps at %.9g", e, at);
  free(x);
}

TEST(codegen, dtypes) {
  check("dtypes", "input a: f32[6]\ninput i: i32[6]\ninput j: i64[6]\ninput u: u8[6]\n"
        "output h = (a.cast(bf16) * 3.0).cast(f16) + 1.0\n"
        "output k = i * 3 - j + u.cast(i64) * 200\n"
        "output q = (u * 100).cast(u8) + u\n"
        "output b = (a > 0.0).cast(f32) + (i == 1).cast(i32).cast(f32)\n"
        "output t = (a * 1000.0).cast(i32) + exp(i) * 0.0\n"
        "output d = i // (j.cast(i32) + 1) + j % 3 + (i - 2) // i", fwd);
}

TEST(codegen, conv_pool_and_their_gradients) {
  check("conv", "input x: f32[2, 4, 9, 8]\ninput t: i32[2]\n"
        "let h = relu(conv2d(x, 6, 3, stride = 2, padding = 1, groups = 2) as c1)\n"
        "h = max_pool2d(h, 2, stride = 1) + avg_pool2d(h, 2, stride = 1, padding = 1)[:, :, 1:-1, 1:-1]\n"
        "h = conv2d(h, 3, 2, dilation = 2) as c2\n"
        "output logits = h.reshape(2, h.shape[1] * h.shape[2] * h.shape[3])\n"
        "loss cross_entropy(logits[:, 0:3], t)", step);
}

// Pool gradients whose windows tile their rows (kernel == stride) step over
// windows (host.c emit_by_rows): rows an exact number of windows wide or with
// columns past the last window, strides 2 and 3, padding along h only, and
// overlapping windows that do not step.
TEST(codegen, pool_gradients_by_windows) {
  check("pool windows", "input x: f32[2, 3, 9, 11]\ninput t: i32[2]\nparam s: f32[1, 3, 1, 1] = ones\n"
        "let h = relu(x * s - 0.25)\n"
        "let a = max_pool2d(h, 2).reshape(2, 3 * 4 * 5)\n"
        "let b = max_pool2d(h[:, :, :, 0:10], 2).reshape(2, 3 * 4 * 5)\n"
        "let c = pool_max(h, 3, stride = 3, padding = (1, 0)).reshape(2, 3 * 3 * 3)\n"
        "let d = avg_pool2d(h[:, :, 0:8, 0:9], 3, stride = 3).reshape(2, 3 * 2 * 3)\n"
        "let e = max_pool2d(h, 3, stride = 2).reshape(2, 3 * 4 * 5)\n"
        "output logits = concat([a, b * 0.5, c, d, e], axis = 1)\n"
        "loss cross_entropy(logits[:, 0:3] + logits[:, 3:6], t)", step);
}

// Transposed convolutions, ungrouped (as GEMM and col2im) and grouped (the
// direct loops), with output_padding both below the stride and, with
// dilation, at or above it, through a whole training step.
TEST(codegen, conv_transpose_and_its_gradients) {
  check("conv_transpose", "input x: f32[2, 4, 5, 4]\ninput t: i32[2]\n"
        "let h = relu(conv_transpose2d(x, 6, 3, stride = 2, padding = 1, output_padding = 1) as u1)\n"
        "h = conv_transpose2d(h, 4, 2, dilation = 2, output_padding = 1, groups = 2) as u2\n"
        "h = conv_transpose2d(h, 4, 3, stride = 3, padding = 2, groups = 4) as u3\n"
        "h = conv_transpose2d(h, 2, 3, stride = 1, dilation = 3, output_padding = 2) as u4\n"
        "output logits = h.reshape(2, h.shape[1] * h.shape[2] * h.shape[3])\n"
        "loss cross_entropy(logits[:, 0:3], t)", step);
}

// Grouped convolutions wide enough for GEMMs: batched matmuls per group.
TEST(codegen, grouped_convolutions_as_gemms) {
  check("grouped", "input x: f32[2, 8, 7, 6]\ninput t: i32[2]\n"
        "let h = relu(conv2d(x, 8, 3, stride = 2, padding = 1, groups = 2) as c1)\n"
        "h = conv_transpose2d(h, 12, 3, stride = 2, output_padding = 1, groups = 2) as u1\n"
        "output logits = h.reshape(2, h.shape[1] * h.shape[2] * h.shape[3])\n"
        "loss cross_entropy(logits[:, 0:3], t)", step);
}

// The im2col a forward convolution's GEMM packs from the image (implicit
// GEMM): its A (Kernel.packed) or its transposed B (Kernel.packed_windows);
// NULL for any other kernel.
static const Node *packed_im2col(const Kernel *k) {
  return k->packed ? k->root->src[0] : k->packed_windows ? k->root->src[1] : NULL;
}

// Forward convolution kernels that pack their im2col, never stored, in g
// planned with fusion mode; *windows: of them, those that pack B.
static int packed_kernels(const Graph *g, FusionMode mode, int *windows) {
  KernelPlan plan;
  kernel_plan(g, "", codegen_tile_columns(NULL), mode, &plan);
  int n = 0;
  if (windows) *windows = 0;
  for (int k = 0; k < plan.n; k++) {
    n += packed_im2col(&plan.kernels[k]) != NULL;
    if (windows) *windows += plan.kernels[k].packed_windows;
  }
  kernel_plan_free(&plan);
  return n;
}

// Packed kernels whose image is a buffer (not a view or expression read
// through the expression layer as the windows are packed).
static int packed_from_buffers(const Graph *g) {
  KernelPlan plan;
  kernel_plan(g, "", codegen_tile_columns(NULL), FUSION_ALL, &plan);
  int n = 0;
  for (int k = 0; k < plan.n; k++) {
    const Node *cols = packed_im2col(&plan.kernels[k]);
    n += cols && plan.slot[cols->src[0]->id] >= 0;
  }
  kernel_plan_free(&plan);
  return n;
}

// Forward convolutions as implicit GEMMs: odd images and batches, strides,
// padding and dilation (per axis too), output channels below, at and past a
// column tile (edge tiles), window rows that are not a multiple of the row
// tile, a grouped convolution (its GEMM reads a view of the im2col, which
// stays stored), one whose windows are longer than the panel, and one
// behind an upsampled view (stored first, then packed from the buffer). Each
// against the interpreter, and the packed kernels bit for bit against the
// materialized im2col of --fusion=none, in fp32, tf32 and bf16.
TEST(codegen, convolutions_as_implicit_gemms) {
  static const struct {
    const char *body;
    int packed;    // expected packed kernels with fusion on
    int windows;   // of them, those that pack B (W @ im2col^T)
    int stored;    // of them, those that read a stored image in fp32 and tf32 (bf16 reads casts)
  } cases[] = {
      {"input x: f32[3, 3, 11, 7]\nparam w1: f32[5, 3, 3, 3] = ones\nparam w2: f32[37, 5, 2, 2] = ones\n"
       "let h = relu(conv(x, w1))\n"
       "output y = conv(h, w2, stride = 2, padding = 1, dilation = 2)", 2, 2, 2},
      {"input x: f32[2, 4, 9, 8]\n"
       "output y = relu(conv2d(x, 16, 3, stride = 2, padding = 1) as c1)\n"
       "output z = conv2d(x, 21, 2, dilation = 3, padding = 2) as c2", 2, 2, 2},
      {"input x: f32[1, 6, 10, 13]\nparam w: f32[7, 6, 3, 2] = ones\n"
       "output y = conv(x, w, stride = (2, 3), padding = (1, 0), dilation = (1, 2))", 1, 1, 1},
      {"input x: f32[2, 8, 7, 6]\n"
       "output y = conv2d(x, 8, 3, stride = 2, padding = 1, groups = 2) as g1", 0, 0, 0},
      // 230 x 9 window values: past the panel either way
      {"input x: f32[1, 230, 4, 4]\noutput y = conv2d(x, 8, 3) as wide", 0, 0, 0},
      // 50 x 9: past the panel of W @ im2col^T, within that of im2col @ W^T
      {"input x: f32[2, 50, 5, 6]\noutput y = relu(conv2d(x, 13, 3, padding = 1) as long)", 1, 0, 1},
      {"input x: f32[2, 3, 5, 4]\noutput y = conv2d(upsample(x, 2), 5, 3, padding = 1) as up", 1, 1, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    for (Precision prec = PREC_FP32; prec <= PREC_BF16; prec++) {
      char src[4096], what[64];
      snprintf(src, sizeof src, "import \"nn\"\nmodel m {\n%s\n}\n", cases[i].body);
      snprintf(what, sizeof what, "implicit gemm case %zu, precision %d", i, (int)prec);
      Opts o = {.int_range = 3, .precision = prec};
      Compilation c;
      Graph g;
      case_graph(&c, &g, what, src, NULL, 0, o, false);
      int windows;
      cr_expect_eq(packed_kernels(&g, FUSION_ALL, &windows), cases[i].packed, "%s: packed kernels (%d of W @ im2col^T)",
                   what, windows);
      cr_expect_eq(windows, cases[i].windows, "%s: packed as W @ im2col^T", what);
      cr_expect_eq(packed_kernels(&g, FUSION_NONE, NULL), 0, "%s: packed with fusion off", what);
      if (prec != PREC_BF16)
        cr_expect_eq(packed_from_buffers(&g), cases[i].stored, "%s: packed from a stored image (%d)", what,
                     packed_from_buffers(&g));
      graph_free(&g);
      compilation_free(&c);
      check_kernels(what, src, NULL, 0, o);
      if (cases[i].packed) check_fusion_bits(what, src, NULL, 0, o);
    }
}

// Weight-gradient GEMMs that pack their B, an im2col never stored, block by
// block from the image (Kernel.packed_b), in g planned with fusion mode.
static int packed_b_kernels(const Graph *g, FusionMode mode) {
  KernelPlan plan;
  kernel_plan(g, "", codegen_tile_columns(NULL), mode, &plan);
  int n = 0;
  for (int k = 0; k < plan.n; k++) n += plan.kernels[k].packed_b;
  kernel_plan_free(&plan);
  return n;
}

// Weight gradients as implicit GEMMs over one product of the batch and the
// grid, through whole training steps against the interpreter: batches of 1
// and 3, odd images, strides, padding and dilation (per axis too), output
// channels not a multiple of the row tile, window columns below, at and past
// a column tile (edge tiles, a 1-channel first layer), images cut into
// several blocks of output rows (a wide image) or one, an upsampled view in
// front (stored first), in fp32, tf32 and bf16; a grouped convolution keeps
// the batched GEMMs and their stored im2col.
TEST(codegen, weight_gradients_as_implicit_gemms) {
  static const struct {
    const char *body;
    int packed_b;   // expected weight-gradient kernels that pack, fusion on
  } cases[] = {
      {"input x: f32[3, 5, 11, 7]\nlet h = relu(conv2d(x, 7, 3, stride = 2, padding = 1) as c1)\n"
       "output y = conv2d(h, 37, 2, dilation = 2, padding = 1) as c2", 2},
      {"input x: f32[1, 6, 10, 13]\nparam w: f32[16, 6, 3, 2] = ones\n"
       "output y = conv(x, w, stride = (2, 3), padding = (1, 0), dilation = (1, 2))", 1},
      {"input x: f32[2, 1, 10, 9]\nlet h = relu(conv2d(x, 32, 3, padding = 1) as c1)\n"
       "output y = conv2d(max_pool2d(h, 2), 5, 3, padding = 1) as c2", 2},
      {"input x: f32[1, 2, 20, 110]\noutput y = conv2d(x, 3, 3, padding = 1) as wide", 1},
      {"input x: f32[2, 3, 5, 4]\nparam s: f32[1, 3, 1, 1] = ones\n"
       "output y = conv2d(upsample(x * s, 2), 4, 3, padding = 1) as up", 1},
      {"input x: f32[2, 8, 7, 6]\noutput y = conv2d(x, 8, 3, stride = 2, padding = 1, groups = 2) as g1", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    for (Precision prec = PREC_FP32; prec <= PREC_BF16; prec++) {
      char src[4096], what[64];
      snprintf(src, sizeof src, "import \"nn\"\nmodel m {\n%s\noutput l = (y * y).mean()\nloss l\n}\n", cases[i].body);
      snprintf(what, sizeof what, "weight gradient case %zu, precision %d", i, (int)prec);
      Opts o = {.int_range = 3, .training = true, .precision = prec};
      Compilation c;
      Graph g;
      case_graph(&c, &g, what, src, NULL, 0, o, false);
      cr_expect_eq(packed_b_kernels(&g, FUSION_ALL), cases[i].packed_b, "%s: packed weight gradients", what);
      cr_expect_eq(packed_b_kernels(&g, FUSION_NONE), 0, "%s: packed with fusion off", what);
      graph_free(&g);
      compilation_free(&c);
      check_kernels(what, src, NULL, 0, o);
      o.fusion = FUSION_NONE;
      check_kernels(what, src, NULL, 0, o);
    }
}

TEST(codegen, conv_transpose_in_bf16_and_tf32) {
  for (Precision p = PREC_TF32; p <= PREC_BF16; p++)
    check("conv_transpose", "input x: f32[2, 4, 5, 4]\ninput t: i32[2]\n"
          "let h = relu(conv_transpose2d(x, 6, 3, stride = 2, padding = 1, output_padding = 1) as u1)\n"
          "h = conv_transpose2d(h, 3, 2, groups = 3) as u2\n"
          "output logits = h.reshape(2, h.shape[1] * h.shape[2] * h.shape[3])\n"
          "loss cross_entropy(logits[:, 0:3], t)", (Opts){.int_range = 3, .training = true, .precision = p});
}

TEST(codegen, upsample_and_its_gradients) {
  check("upsample", "input x: f32[2, 3, 5, 4]\ninput t: i32[2]\n"
        "let h = upsample(conv2d(x, 4, 3, stride = 2) as c1, (2, 3), mode = \"bilinear\")\n"
        "h = upsample(h * h, 3) + upsample(h, 3, mode = \"bilinear\")\n"
        "output logits = h.reshape(2, h.shape[1] * h.shape[2] * h.shape[3])\n"
        "loss cross_entropy(logits[:, 0:3], t)", step);
}

TEST(codegen, gather_scatter_and_embedding_gradients) {
  check("embedding", "input ids: i32[2, 5]\ninput t: i32[2, 5]\n"
        "let e = embedding(ids, 3, 4) as emb\n"
        "output logits = linear(e * e.sum(axis = 1, keep = true), 3) as head\n"
        "loss cross_entropy(logits, t)", step);
}

TEST(codegen, mlp_training_step) {
  check_example("mlp",
                (Define[]){{"B", 3}, {"H", 5}}, 2, (Opts){.int_range = 10, .training = true});
}

TEST(codegen, gpt_training_step_with_dropout) {
  check_example("gpt",
                (Define[]){{"B", 2}, {"T", 4}, {"V", 6}, {"C", 8}, {"L", 2}, {"H", 2}}, 6,
                (Opts){.int_range = 6, .training = true});
}

TEST(codegen, lstm_training_step) {
  check_example("lstm",
                (Define[]){{"B", 2}, {"T", 3}, {"V", 5}, {"E", 3}, {"H", 4}}, 5,
                (Opts){.int_range = 5, .training = true});
}

// Parameter groups, a frozen layer and an expression schedule (where, pow,
// floor, sqrt on the step counter) in the compiled MLP step.
TEST(codegen, mlp_training_step_with_groups_and_an_expression_schedule) {
  static const char *train =
      "train {\n  optimizer = adamw(lr = 1e-2, weight_decay = 0.1)\n"
      "  schedule = where(step < 3, lr * step / 3, lr * 0.5 ** (step // 2)) * sqrt(step / total_steps)\n"
      "  freeze = \"fc2.*\"\n  group \"*.b\" { weight_decay = 0 }\n  group \"fc1.*\" { lr = 3e-2; beta2 = 0.9 }\n"
      "  steps = 20\n  data train { x = csv(\"x.csv\"); y = csv(\"y.csv\") }\n}\n";
  char *mlp = slurp("examples/mlp.smelt");
  char *cut = strstr(mlp, "\ntrain {");
  cr_assert_not_null(cut);
  cut[1] = 0;
  char *src = malloc(strlen(mlp) + strlen(train) + 1);
  strcpy(src, mlp);
  strcat(src, train);
  Opts o = {.int_range = 10, .training = true, .own_train = true};
  check_kernels("mlp with groups", src, (Define[]){{"B", 3}, {"H", 5}}, 2, o);
  check_fusion_bits("mlp with groups", src, (Define[]){{"B", 3}, {"H", 5}}, 2, o);
  free(src);
  free(mlp);
}

// Batch norm: its statistics, its gradient and the updates of its buffers.
TEST(codegen, resnet_training_step_with_batchnorm) {
  check_example("resnet", (Define[]){{"B", 2}, {"C", 2}}, 2, (Opts){.int_range = 10, .training = true});
  check_example("resnet", (Define[]){{"B", 2}, {"C", 2}}, 2, (Opts){.int_range = 10, .training = true, .precision = PREC_BF16});
}

TEST(codegen, training_steps_in_bf16_and_fp16) {
  for (Precision p = PREC_BF16; p <= PREC_FP16; p++) {
    check_example("mlp", (Define[]){{"B", 3}, {"H", 5}}, 2, (Opts){.int_range = 10, .training = true, .precision = p});
    check_example("gpt", (Define[]){{"B", 2}, {"T", 4}, {"V", 6}, {"C", 8}, {"L", 2}, {"H", 2}}, 6,
                  (Opts){.int_range = 6, .training = true, .precision = p});
  }
}

TEST(codegen, convolutions_in_bf16) {
  check("conv", "input x: f32[2, 4, 9, 8]\ninput t: i32[2]\n"
        "let h = relu(conv2d(x, 6, 3, stride = 2, padding = 1) as c1)\n"
        "h = max_pool2d(h, 2, stride = 1)\n"
        "h = conv2d(h, 3, 2, groups = 3) as c2\n"
        "output logits = h.reshape(2, h.shape[1] * h.shape[2] * h.shape[3])\n"
        "loss cross_entropy(logits[:, 0:3], t)", (Opts){.int_range = 3, .training = true, .precision = PREC_BF16});
}

TEST(codegen, bad_gather_index_sets_the_error_word) {
  const char *src = "model m {\n  param t: f32[3, 2] = ones\n  input ids: i32[4]\n  output y = gather(t, ids)\n}\n";
  Compilation c;
  compilation_init(&c, stderr);
  Module *m = module_load_text(&c, "g.smelt", src, strlen(src));
  resolve_module(&c, m);
  Graph g;
  graph_init(&g, &c.arena, &c.diag);
  cr_assert_eq(elaborate(&c, m, NULL, 0, true, &g), 0);
  KernelPlan plan;
  kernel_plan(&g, "", 16, FUSION_NONE, &plan);
  cr_assert_eq(plan.n, 1);
  Blob obj;
  char err[256], so[64];
  const KernelPlan *plans[1] = {&plan};
  cr_assert_eq(codegen_host(plans, 1, "x86-64-v3", &obj, err, sizeof err), 0, "%s", err);
  snprintf(so, sizeof so, "build/test-gather-%d.so", (int)getpid());
  cr_assert_eq(link_shared(&obj, so, err, sizeof err), 0, "%s", err);
  free(obj.data);
  void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
  cr_assert_not_null(lib);
  unlink(so);
  float table[6] = {1, 2, 3, 4, 5, 6}, out[8];
  int32_t ids[4] = {0, 2, 7, 1};
  char *bufs[3];
  bufs[plan.slot[g.nodes[0]->id]] = (char *)table;
  bufs[plan.slot[g.nodes[1]->id]] = (char *)ids;
  bufs[plan.slot[plan.kernels[0].out->id]] = (char *)out;
  int64_t ctx[3] = {1, 0, 0};
  KernelFn f = (KernelFn)(uintptr_t)dlsym(lib, plan.kernels[0].name);
  run_kernel(f, &plan.kernels[0], bufs, 0, 8, ctx);
  cr_expect_eq(ctx[2], plan.kernels[0].out->id + 1);
  cr_expect_float_eq(out[2], 5, 0);   // the rows that exist are right
  cr_expect_float_eq(out[7], 4, 0);
  dlclose(lib);
  kernel_plan_free(&plan);
  graph_free(&g);
  compilation_free(&c);
}

// Fusion on small cases of every kind: the same bits as one kernel per op.
TEST(codegen, fusion_changes_no_bits) {
  static const struct {
    const char *what, *body;
    bool training;
  } cases[] = {
      {"pointwise", "input a: f32[3, 4]\ninput b: f32[4]\ninput c: f32[3, 1]\n"
                    "output y = where(a > b, exp(a) * b, -sqrt(abs(b)) / (a + 2.0)) + c ** 2\n"
                    "output z = sigmoid(a) - tanh(c) + log(abs(a) + 1.0) * rsqrt(abs(b) + 1.0)", false},
      {"half and ints", "input a: f32[6]\ninput i: i32[6]\ninput u: u8[6]\n"
                        "output h = (a.cast(f16) * 0.1 + 0.37) * 3.1 + (a.cast(bf16) * 0.7 + 0.11).cast(f16)\n"
                        "output q = ((u * 100).cast(u8) + u) * 3 + (i * 7).cast(u8)", false},
      {"reductions", "input x: f32[3, 5, 4]\n"
                     "output e = softmax(x) * log_softmax(x, axis = 0) + x.mean(axis = -1, keep = true)\n"
                     "output n = layernorm(x) as ln", false},
      {"matmul epilogue", "input a: f32[2, 13, 9]\ninput t: i32[2, 13]\n"
                          "let h = gelu(linear(a, 37) as l1)\n"
                          "output logits = linear(h, 5) as l2\nloss cross_entropy(logits, t)", true},
      {"conv", "input x: f32[2, 4, 9, 8]\ninput t: i32[2]\n"
               "let h = relu(conv2d(x, 6, 3, stride = 2, padding = 1) as c1)\n"
               "h = max_pool2d(h, 2, stride = 1) * 0.5\n"
               "output logits = h.reshape(2, h.shape[1] * h.shape[2] * h.shape[3])\n"
               "loss cross_entropy(logits[:, 0:3], t)", true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char src[4096];
    snprintf(src, sizeof src, "import \"nn\"\nmodel m {\n%s\n}\n", cases[i].body);
    check_fusion_bits(cases[i].what, src, NULL, 0, (Opts){.int_range = 3, .training = cases[i].training});
  }
}

// C's floor division and its remainder, with the language's rules for a zero
// divisor (a // 0 = 0, so a % 0 = a) and wrapping for INT64_MIN // -1.
static int64_t c_floor_div(int64_t a, int64_t b) {
  if (b == 0) return 0;
  if (b == -1) return (int64_t)(0 - (uint64_t)a);
  int64_t q = a / b;
  return a % b != 0 && (a % b < 0) != (b < 0) ? q - 1 : q;
}

// `a // b` and `a % b` of integer tensors are exact (OP_IDIV) on the host
// kernels, for i64 values beyond 2^53 and the edge divisors 0 and -1.
TEST(codegen, integer_floor_division_is_exact) {
  static const int64_t av[] = {7, -7, 7, -7, 0, 5, -5, INT64_MIN, INT64_MIN, INT64_MAX, INT64_MAX, 9007199254740993LL,
                               -9007199254740993LL, 123456789012345678LL, 3, -3};
  static const int64_t bv[] = {2, 2, -2, -2, 3, 0, 0, -1, 7, -1, 10, 10, 10, -1000000007LL, 5, 5};
  enum { N = sizeof av / sizeof *av };
  const char *src = "model m {\ninput a: i64[16]\ninput b: i64[16]\noutput q = a // b\noutput r = a % b\n}\n";
  Compilation c;
  Graph g;
  case_graph(&c, &g, "idiv", src, NULL, 0, fwd, false);
  KernelPlan plan;
  kernel_plan(&g, "", codegen_tile_columns(NULL), FUSION_ALL, &plan);
  Blob obj;
  char err[512], so[128];
  const KernelPlan *plans[1] = {&plan};
  cr_assert_eq(codegen_host(plans, 1, NULL, &obj, err, sizeof err), 0, "%s", err);
  snprintf(so, sizeof so, "build/test-idiv-%d.so", (int)getpid());
  cr_assert_eq(link_shared(&obj, so, err, sizeof err), 0, "%s", err);
  free(obj.data);
  void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
  cr_assert_not_null(lib, "%s", dlerror());
  unlink(so);
  char **bufs = calloc((size_t)plan.nslots, sizeof *bufs);
  for (int s = 0; s < plan.nslots; s++) {
    Node *nd = plan.slot_node[s];
    bufs[s] = calloc((size_t)shape_numel(&nd->shape) + 1, (size_t)dtype_size(nd->dtype));
    if (nd->op == OP_INPUT) memcpy(bufs[s], strcmp(nd->name, "a") ? bv : av, sizeof av);
  }
  int64_t ctx[3] = {7, 3, 0};
  for (int k = 0; k < plan.n; k++) {
    KernelFn f = (KernelFn)(uintptr_t)dlsym(lib, plan.kernels[k].name);
    cr_assert_not_null(f);
    run_kernel(f, &plan.kernels[k], bufs, 0, plan.kernels[k].count, ctx);
  }
  const int64_t *q = (const int64_t *)bufs[plan.slot[g.outputs[0].node->id]];
  const int64_t *r = (const int64_t *)bufs[plan.slot[g.outputs[1].node->id]];
  for (int i = 0; i < N; i++) {
    int64_t wq = c_floor_div(av[i], bv[i]), wr = (int64_t)((uint64_t)av[i] - (uint64_t)wq * (uint64_t)bv[i]);
    cr_expect_eq(q[i], wq, "%lld // %lld: %lld, expected %lld", (long long)av[i], (long long)bv[i], (long long)q[i],
                 (long long)wq);
    cr_expect_eq(r[i], wr, "%lld %% %lld: %lld, expected %lld", (long long)av[i], (long long)bv[i], (long long)r[i],
                 (long long)wr);
  }
  for (int s = 0; s < plan.nslots; s++) free(bufs[s]);
  free(bufs);
  dlclose(lib);
  kernel_plan_free(&plan);
  graph_free(&g);
  compilation_free(&c);
}

// ---- the bits of integers (BITAND, BITOR, BITXOR, BITNOT, SHL, SHR, BITCAST)

// The value of element i of an integer buffer of dtype t, extended to int64,
// and its store.
static int64_t int_get(DType t, const char *buf, int i) {
  if (t == DT_U8) return ((const uint8_t *)buf)[i];
  if (t == DT_I32) return ((const int32_t *)buf)[i];
  return ((const int64_t *)buf)[i];
}

static void int_put(DType t, char *buf, int i, int64_t v) {
  if (t == DT_U8) ((uint8_t *)buf)[i] = (uint8_t)v;
  else if (t == DT_I32) ((int32_t *)buf)[i] = (int32_t)v;
  else ((int64_t *)buf)[i] = v;
}

// v wrapped to dtype t, as a store wraps it.
static int64_t int_wrap(DType t, int64_t v) {
  if (t == DT_U8) return (uint8_t)v;
  if (t == DT_I32) return (int32_t)(uint32_t)(uint64_t)v;
  return v;
}

// C's answer for one bitwise op of dtype t (ONNX BitShift's rules for counts
// below 0 or from the width up: the sign's fill alone).
static int64_t c_bits(const char *op, DType t, int64_t a, int64_t b) {
  int w = 8 * dtype_size(t);
  bool out = b < 0 || b >= w;
  if (!strcmp(op, "and")) return a & b;
  if (!strcmp(op, "or")) return a | b;
  if (!strcmp(op, "xor")) return a ^ b;
  if (!strcmp(op, "not")) return int_wrap(t, ~a);
  if (!strcmp(op, "shl")) return out ? 0 : int_wrap(t, (int64_t)((uint64_t)a << b));
  if (out) return a < 0 ? -1 : 0;
  return a < 0 ? ~(~a >> b) : a >> b;
}

// Every bitwise op of dtype t on the pairs (av[i], bv[i]) in compiled host
// kernels and the interpreter, against C; for i32 also its bits as f32 and back.
static void check_bits(DType t, const int64_t *av, const int64_t *bv) {
  enum { N = 8 };
  static const char *ops[] = {"and", "or", "xor", "not", "shl", "shr"};
  const char *tn = dtype_name(t);
  char src[1024];
  snprintf(src, sizeof src,
           "model m {\ninput a: %s[8]\ninput b: %s[8]\noutput o_and = bit_and(a, b)\noutput o_or = bit_or(a, b)\n"
           "output o_xor = bit_xor(a, b)\noutput o_not = bit_not(a)\noutput o_shl = shift_left(a, b)\n"
           "output o_shr = shift_right(a, b)\n%s}\n",
           tn, tn, t == DT_I32 ? "output f = bitcast(a, f32)\noutput back = bitcast(bitcast(a, f32), i32)\n" : "");
  Compilation c;
  Graph g;
  case_graph(&c, &g, "bits", src, NULL, 0, fwd, false);
  KernelPlan plan;
  kernel_plan(&g, "", codegen_tile_columns(NULL), FUSION_ALL, &plan);
  Blob obj;
  char err[512], so[128];
  const KernelPlan *plans[1] = {&plan};
  cr_assert_eq(codegen_host(plans, 1, NULL, &obj, err, sizeof err), 0, "%s", err);
  snprintf(so, sizeof so, "build/test-bits-%d.so", (int)getpid());
  cr_assert_eq(link_shared(&obj, so, err, sizeof err), 0, "%s", err);
  free(obj.data);
  void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
  cr_assert_not_null(lib, "%s", dlerror());
  unlink(so);
  char **bufs = calloc((size_t)plan.nslots, sizeof *bufs);
  double **leaves = calloc((size_t)g.n, sizeof *leaves);
  for (int s = 0; s < plan.nslots; s++) {
    Node *nd = plan.slot_node[s];
    bufs[s] = calloc((size_t)shape_numel(&nd->shape) + 1, (size_t)dtype_size(nd->dtype));
    if (nd->op != OP_INPUT) continue;
    const int64_t *v = strcmp(nd->name, "a") ? bv : av;
    leaves[nd->id] = malloc(N * sizeof(double));
    for (int i = 0; i < N; i++) {
      int_put(t, bufs[s], i, v[i]);
      leaves[nd->id][i] = (double)v[i];
    }
  }
  InterpResult r;
  cr_assert_eq(interp_run(&g, leaves, 7, 3, &r, err, sizeof err), 0, "%s", err);
  int64_t ctx[3] = {7, 3, 0};
  for (int k = 0; k < plan.n; k++) {
    KernelFn f = (KernelFn)(uintptr_t)dlsym(lib, plan.kernels[k].name);
    cr_assert_not_null(f);
    run_kernel(f, &plan.kernels[k], bufs, 0, plan.kernels[k].count, ctx);
  }
  for (int o = 0; o < 6; o++) {
    const Node *n = g.outputs[o].node;
    const char *buf = bufs[plan.slot[n->id]];
    for (int i = 0; i < N; i++) {
      int64_t want = c_bits(ops[o], t, av[i], bv[i]), got = int_get(t, buf, i);
      cr_expect_eq(got, want, "%s %s(%lld, %lld): kernel %lld, C %lld", tn, ops[o], (long long)av[i],
                   (long long)bv[i], (long long)got, (long long)want);
      // the interpreter holds doubles: exact where the operands and the result are
      bool exact = (int64_t)(double)want == want && (int64_t)(double)av[i] == av[i] && (int64_t)(double)bv[i] == bv[i];
      if (exact)
        cr_expect_eq(r.vals[n->id][i], (double)want, "%s %s(%lld, %lld): interpreter %.17g, C %lld", tn, ops[o],
                     (long long)av[i], (long long)bv[i], r.vals[n->id][i], (long long)want);
    }
  }
  if (t == DT_I32) {   // the f32 keeps a's bits, NaN payloads too; and back again
    const char *fb = bufs[plan.slot[g.outputs[6].node->id]], *back = bufs[plan.slot[g.outputs[7].node->id]];
    for (int i = 0; i < N; i++) {
      int32_t bits, want = (int32_t)av[i];
      memcpy(&bits, fb + 4 * i, 4);
      cr_expect_eq(bits, want, "bitcast(%d, f32) has the bits %d", want, bits);
      cr_expect_eq(((const int32_t *)back)[i], want, "bitcast(bitcast(%d, f32), i32)", want);
      float fw;
      memcpy(&fw, &want, 4);
      if (!isnan(fw)) cr_expect_eq(r.vals[g.outputs[6].node->id][i], (double)fw, "interpreter bitcast(%d, f32)", want);
      if (!isnan(fw)) cr_expect_eq(r.vals[g.outputs[7].node->id][i], (double)want, "interpreter round trip of %d", want);
    }
  }
  interp_free(&r);
  for (int s = 0; s < plan.nslots; s++) free(bufs[s]);
  for (int i = 0; i < g.n; i++) free(leaves[i]);
  free(bufs);
  free(leaves);
  dlclose(lib);
  kernel_plan_free(&plan);
  graph_free(&g);
  compilation_free(&c);
}

// Edge values: negative numbers, all bits set, the extremes; counts of 0,
// 1, width - 1, the width, below 0 and far past the width.
TEST(codegen, bitwise_ops_match_c) {
  check_bits(DT_I32, (const int64_t[]){-1, INT32_MIN, INT32_MAX, -8, 5, 0x55555555, 1, -2},
             (const int64_t[]){0, 1, 31, 32, -1, 3, 31, 100});
  check_bits(DT_I64, (const int64_t[]){-1, INT64_MIN, 1LL << 62, -8, 5, 0x5555555555555555LL, 1, -2},
             (const int64_t[]){0, 1, 63, 64, -1, 3, 63, 100});
  check_bits(DT_U8, (const int64_t[]){255, 128, 127, 0, 5, 0x55, 1, 254}, (const int64_t[]){0, 1, 7, 8, 255, 3, 7, 100});
}
