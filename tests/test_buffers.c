// test_buffers.c: buffer and update, and batch normalization.
//
// batchnorm2d and batchnorm1d against PyTorch's BatchNorm2d and BatchNorm1d
// (tests/golden/batchnorm.golden, written by make_batchnorm_golden.py): train
// mode's outputs, loss and gradients, the running statistics and the weights
// after one and three SGD steps, and eval mode after them, all through the
// interpreter rounding to f32 like a float32 program:
//     outputs, loss, statistics, weights:  ||smelt - torch|| / ||torch|| < 1e-5
//     gradients:                           ||smelt - torch|| / ||torch|| < 1e-4
// Then the semantics of update (old values within a step, training step
// only, no gradient, untouched by the optimizer), buffers through an ingot
// (compiled CPU code against the interpreter, checkpoints, eval reading the
// running statistics), and every error.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smelt.h"
#include "support.h"

static double rel_err(const double *got, const double *want, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    if (isnan(got[i])) return INFINITY;
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

// One model elaborated into a graph (training or not), with the golden file.
typedef struct {
  Compilation c;
  Module *m;
  Graph g;
} Model;

static void model_open_text(Model *k, const char *name, const char *text, const Define *defs, int ndefs,
                            bool training) {
  memset(k, 0, sizeof *k);
  compilation_init(&k->c, stderr);
  k->c.diag.color = false;
  compilation_default_search(&k->c, NULL);
  k->m = text ? module_load_text(&k->c, name, text, strlen(text)) : module_load_file(&k->c, name);
  for (int i = 0; i < k->c.nmodules; i++) resolve_module(&k->c, k->c.modules[i]);
  cr_assert_eq(k->c.diag.errors, 0);
  graph_init(&k->g, &k->c.arena, &k->c.diag);
  cr_assert_eq(elaborate(&k->c, k->m, defs, ndefs, training, &k->g), 0);
}

static void model_close(Model *k) {
  graph_free(&k->g);
  compilation_free(&k->c);
}

static const TensorEntry *need(const TensorEntry *gold, int ngold, const char *prefix, const char *name) {
  char key[256];
  snprintf(key, sizeof key, "%s%s", prefix, name);
  const TensorEntry *t = tensorfile_find(gold, ngold, key);
  cr_assert_not_null(t, "the golden file has no '%s'", key);
  return t;
}

static Node *output_named(const Graph *g, const char *name) {
  for (int i = 0; i < g->noutputs; i++)
    if (!strcmp(g->outputs[i].name, name)) return g->outputs[i].node;
  cr_assert_fail("no output '%s'", name);
  return NULL;
}

// Persistent values by name: every PARAM and STATE of a graph, owned here.
typedef struct {
  const char *name[64];
  double *v[64];
  int64_t n[64];
  int count;
} Store;

static double *store_get(Store *s, const Node *leaf) {
  for (int i = 0; i < s->count; i++)
    if (!strcmp(s->name[i], leaf->name)) return s->v[i];
  cr_assert_lt(s->count, 64);
  int64_t n = shape_numel(&leaf->shape);
  s->name[s->count] = leaf->name;
  s->n[s->count] = n;
  s->v[s->count] = calloc((size_t)(n ? n : 1), sizeof(double));
  return s->v[s->count++];
}

static void store_free(Store *s) {
  for (int i = 0; i < s->count; i++) free(s->v[i]);
}

// Runs g once in the interpreter with inputs "PREFIXNAME" from the golden
// file and persistent leaves from the store; applies the updates to the store
// when update is set. The result is the caller's to free.
static void run_step(const Graph *g, Store *st, const TensorEntry *gold, int ngold, const char *prefix, bool update,
                     InterpResult *r) {
  double **leaves = calloc((size_t)g->n, sizeof *leaves);
  for (int i = 0; i < g->n; i++) {
    Node *n = g->nodes[i];
    if (n->op == OP_INPUT) leaves[i] = need(gold, ngold, prefix, n->name)->data;
    else if (n->op == OP_PARAM || n->op == OP_STATE) leaves[i] = store_get(st, n);
  }
  char err[256];
  cr_assert_eq(interp_run(g, leaves, 1, 0, r, err, sizeof err), 0, "%s", err);
  if (update) {   // every value was computed from the old ones; now they all change
    for (int u = 0; u < g->nupdates; u++) {
      const Update *up = &g->updates[u];
      memcpy(store_get(st, up->target), r->vals[up->value->id], sizeof(double) * (size_t)shape_numel(&up->target->shape));
    }
  }
  free(leaves);
}

static void expect_store(Store *st, const TensorEntry *gold, int ngold, const char *prefix, const char *when) {
  int checked = 0;
  for (int i = 0; i < st->count; i++) {
    if (!strcmp(st->name[i], "step")) continue;
    const TensorEntry *want = need(gold, ngold, prefix, st->name[i]);
    cr_assert_eq(shape_numel(&want->shape), st->n[i]);
    double e = rel_err(st->v[i], want->data, st->n[i]);
    cr_expect_lt(e, 1e-5, "%s: %s differs from PyTorch by %.3g", when, st->name[i], e);
    checked++;
  }
  cr_expect_eq(checked, 18, "%s: 10 parameters and 8 buffers", when);
}

static const Define bn_sizes[] = {{"N", 3}, {"Ci", 2}, {"C", 4}, {"H", 5}, {"W", 3}, {"L", 7}};

TEST(buffers, batchnorm_matches_pytorch_in_training_and_eval) {
  TensorEntry *gold;
  int ngold;
  char err[512];
  cr_assert_eq(tensorfile_read("tests/golden/batchnorm.golden", &gold, &ngold, err, sizeof err), 0, "%s", err);
  Model k;
  model_open_text(&k, "tests/golden/batchnorm.smelt", NULL, bn_sizes, 6, true);
  Graph *g = &k.g;
  TrainConfig cfg = {.optimizer = "sgd", .lr = 0.1, .weight_decay = 0.01, .schedule = "constant"};
  cr_assert_eq(optim_append(g, &cfg, 3), 0);
  Store st = {.count = 0};
  for (int i = 0; i < g->n; i++) {   // the initial values smelt init wrote
    Node *n = g->nodes[i];
    if (n->op == OP_PARAM || (n->op == OP_STATE && strcmp(n->name, "step")))
      memcpy(store_get(&st, n), need(gold, ngold, n->op == OP_PARAM ? "param:" : "buffer:", n->name)->data,
             sizeof(double) * (size_t)shape_numel(&n->shape));
  }
  static const char *outs[] = {"y2", "y1", "y0", "yc", "loss"};
  for (int step = 0; step < 3; step++) {
    char prefix[32];
    snprintf(prefix, sizeof prefix, "batch%d:", step);
    InterpResult r;
    run_step(g, &st, gold, ngold, prefix, true, &r);
    if (step == 0) {
      for (size_t o = 0; o < sizeof outs / sizeof *outs; o++) {
        Node *y = output_named(g, outs[o]);
        const TensorEntry *want = need(gold, ngold, "train:", outs[o]);
        cr_assert_eq(shape_numel(&want->shape), shape_numel(&y->shape));
        double e = rel_err(r.vals[y->id], want->data, shape_numel(&y->shape));
        cr_expect_lt(e, 1e-5, "train mode: %s differs from PyTorch by %.3g", outs[o], e);
      }
      int grads = 0;
      for (int i = 0; i < g->noutputs; i++) {
        if (strncmp(g->outputs[i].name, "grad.", 5)) continue;
        const char *p = g->outputs[i].name + 5;
        const TensorEntry *want = need(gold, ngold, "grad:", p);
        double e = rel_err(r.vals[g->outputs[i].node->id], want->data, shape_numel(&want->shape));
        cr_expect_lt(e, 1e-4, "the gradient of %s differs from PyTorch by %.3g", p, e);
        grads++;
      }
      cr_expect_eq(grads, 10, "a gradient for each parameter and none for a buffer");
      expect_store(&st, gold, ngold, "step1:", "after one step");
    }
    interp_free(&r);
  }
  expect_store(&st, gold, ngold, "step3:", "after three steps");
  // eval: a graph of its own (training = false) reading the same store
  Model ev;
  model_open_text(&ev, "tests/golden/batchnorm.smelt", NULL, bn_sizes, 6, false);
  cr_expect_eq(ev.g.nupdates, 0, "eval updates nothing");
  InterpResult r;
  run_step(&ev.g, &st, gold, ngold, "eval:", false, &r);
  for (size_t o = 0; o < sizeof outs / sizeof *outs; o++) {
    Node *y = output_named(&ev.g, outs[o]);
    const TensorEntry *want = need(gold, ngold, "eval:", outs[o]);
    double e = rel_err(r.vals[y->id], want->data, shape_numel(&y->shape));
    cr_expect_lt(e, 1e-5, "eval mode: %s differs from PyTorch by %.3g", outs[o], e);
  }
  interp_free(&r);
  model_close(&ev);
  store_free(&st);
  model_close(&k);
  tensorfile_free(gold, ngold);
}

// ---- update's semantics, through the interpreter

static const char *counter_model =
    "model m {\n"
    "    input x: f32[2, 3]\n"
    "    param w: f32[2, 3] = full(1.5)\n"
    "    buffer count: f32[] = zeros\n"
    "    buffer ema: f32[2, 3] = zeros\n"
    "    buffer frozen: f32[3] = full(2.5)\n"
    "    buffer seen: f32[2, 3] = zeros\n"
    "    update count = count + 1\n"
    "    update ema = 0.5 * ema + 0.5 * w\n"
    "    update seen = x + count\n"
    "    output c = count * 1.0\n"
    "    loss (w * x).sum() + (ema * x).sum() + frozen.sum() * count\n"
    "}\n";

static Node *leaf_named(const Graph *g, Op op, const char *name) {
  Node *n = graph_find_leaf(g, op, name);
  cr_assert_not_null(n, "no leaf '%s'", name);
  return n;
}

TEST(buffers, update_reads_old_values_and_the_optimizer_leaves_buffers_alone) {
  Model k;
  model_open_text(&k, "m.smelt", counter_model, NULL, 0, true);
  Graph *g = &k.g;
  cr_expect_eq(g->nupdates, 3, "three updates in the forward graph");
  TrainConfig cfg = {.optimizer = "adamw", .lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                     .weight_decay = 0.5, .schedule = "constant"};
  cr_assert_eq(optim_append(g, &cfg, 2), 0);
  for (int i = 0; i < g->noutputs; i++)
    cr_expect(strncmp(g->outputs[i].name, "grad.", 5) || !strcmp(g->outputs[i].name, "grad.w"),
              "a buffer has no gradient, but there is output %s", g->outputs[i].name);
  int frozen_updates = 0;
  for (int u = 0; u < g->nupdates; u++) frozen_updates += !strcmp(g->updates[u].target->name, "frozen");
  cr_expect_eq(frozen_updates, 0, "the optimizer updates no buffer");
  static const char *states = " count ema frozen seen step w.m w.v ";   // the buffers, then AdamW's
  for (int i = 0; i < g->n; i++)
    if (g->nodes[i]->op == OP_STATE) {
      char key[64];
      snprintf(key, sizeof key, " %s ", g->nodes[i]->name);
      cr_expect(strstr(states, key), "optimizer state for a buffer: %s", g->nodes[i]->name);
    }
  Store st = {.count = 0};
  for (int i = 0; i < g->n; i++)
    if (g->nodes[i]->op == OP_PARAM || g->nodes[i]->op == OP_STATE) init_fill(g->nodes[i], 1, store_get(&st, g->nodes[i]));
  TensorEntry x = {"input:x", shape_of(2, (int64_t[]){2, 3}), (double[]){1, -2, 3, 0.5, 0, -1}};
  Node *c = output_named(g, "c");
  double w_before[6];
  memcpy(w_before, store_get(&st, leaf_named(g, OP_PARAM, "w")), sizeof w_before);
  for (int step = 0; step < 2; step++) {
    InterpResult r;
    run_step(g, &st, &x, 1, "input:", true, &r);
    cr_expect_eq(r.vals[c->id][0], (double)step, "step %d reads count %g, its old value", step, r.vals[c->id][0]);
    interp_free(&r);
    double *ema = store_get(&st, leaf_named(g, OP_STATE, "ema"));
    double *w = store_get(&st, leaf_named(g, OP_PARAM, "w"));
    if (step == 0)
      for (int i = 0; i < 6; i++) cr_expect_eq(ema[i], 0.75, "ema takes w's old value 1.5, not the stepped %g", w[i]);
    else
      for (int i = 0; i < 6; i++) {
        double want = (double)(float)(0.5 * 0.75 + (double)(float)(0.5 * w_before[i]));
        cr_expect_float_eq(ema[i], want, 1e-7, "ema[%d] %g, want %g", i, ema[i], want);
      }
    memcpy(w_before, w, sizeof w_before);
    cr_expect_neq(w[0], 1.5, "the parameter trains");
  }
  cr_expect_eq(store_get(&st, leaf_named(g, OP_STATE, "count"))[0], 2.0);
  double *seen = store_get(&st, leaf_named(g, OP_STATE, "seen"));
  for (int i = 0; i < 6; i++) cr_expect_eq(seen[i], x.data[i] + 1, "seen = x + the old count 1");
  double *frozen = store_get(&st, leaf_named(g, OP_STATE, "frozen"));
  for (int i = 0; i < 3; i++) cr_expect_eq(frozen[i], 2.5, "weight decay leaves a buffer alone");
  store_free(&st);
  model_close(&k);
  // eval and infer read buffers and update none
  model_open_text(&k, "m.smelt", counter_model, NULL, 0, false);
  cr_expect_eq(k.g.nupdates, 0);
  model_close(&k);
}

// ---- buffers through an ingot: compiled code, checkpoints, eval

// A file in build/ for this process; the caller's buffer.
static const char *scratch_path(char *buf, size_t len, const char *what) {
  snprintf(buf, len, "build/test-buffers-%s-%d", what, (int)getpid());
  return buf;
}

static void set_inputs(smelt_session *s, const char *entry, const TensorEntry *gold, int ngold, const char *prefix) {
  static const char *names[] = {"x", "s", "v", "u", "r2", "r1", "r0", "rc"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    const TensorEntry *t = need(gold, ngold, prefix, names[i]);
    int64_t n = shape_numel(&t->shape);
    float *f = malloc(sizeof(float) * (size_t)n);
    for (int64_t j = 0; j < n; j++) f[j] = (float)t->data[j];
    cr_assert_eq(smelt_set_input(s, entry, names[i], f, sizeof(float) * (size_t)n), SMELT_OK, "%s", smelt_last_error());
    free(f);
  }
}

static void train_steps(smelt_session *s, const TensorEntry *gold, int ngold, int from, int to) {
  for (int step = from; step < to; step++) {
    char prefix[32];
    snprintf(prefix, sizeof prefix, "batch%d:", step);
    set_inputs(s, "train_step", gold, ngold, prefix);
    cr_assert_eq(smelt_run(s, "train_step", 1, (uint64_t)step), SMELT_OK, "%s", smelt_last_error());
  }
}

// A persistent tensor of the session, as doubles (n of them).
static double *tensor_of(smelt_session *s, const char *name, int64_t n) {
  cr_assert_eq(smelt_tensor_bytes(s, name), sizeof(float) * (size_t)n, "%s", name);
  float *f = malloc(sizeof(float) * (size_t)n);
  cr_assert_eq(smelt_get_tensor(s, name, f, sizeof(float) * (size_t)n), SMELT_OK, "%s", smelt_last_error());
  double *d = malloc(sizeof(double) * (size_t)n);
  for (int64_t i = 0; i < n; i++) d[i] = f[i];
  free(f);
  return d;
}

static const char *bn_buffers[] = {"bn2.running_mean", "bn2.running_var", "bn1.running_mean", "bn1.running_var",
                                   "bn0.running_mean", "bn0.running_var", "bnc.running_mean", "bnc.running_var"};

TEST(buffers, an_ingot_trains_checkpoints_and_evaluates_with_its_buffers) {
  TensorEntry *gold;
  int ngold;
  char err[512];
  cr_assert_eq(tensorfile_read("tests/golden/batchnorm.golden", &gold, &ngold, err, sizeof err), 0, "%s", err);
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_file(&c, "tests/golden/batchnorm.smelt");
  cr_assert_eq(check_modules(&c, &m, 1, bn_sizes, 6), 0);
  char path_buf[96], ckpt_buf[96];
  const char *path = scratch_path(path_buf, sizeof path_buf, "ingot");
  cr_assert_eq(ingot_build(&c, m, bn_sizes, 6, &(BuildTargets){0}, path), 0);
  compilation_free(&c);
  smelt_ingot *ig;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  // three compiled training steps: the running statistics PyTorch has
  smelt_session *a, *b;
  cr_assert_eq(smelt_session_new(ig, "cpu", 2, &a), SMELT_OK, "%s", smelt_last_error());
  for (size_t i = 0; i < 8; i++) {   // buffers start at zeros and ones, as PyTorch's
    const TensorEntry *want = need(gold, ngold, "buffer:", bn_buffers[i]);
    double *got = tensor_of(a, bn_buffers[i], shape_numel(&want->shape));
    cr_expect_eq(rel_err(got, want->data, shape_numel(&want->shape)), 0.0, "%s starts wrong", bn_buffers[i]);
    free(got);
  }
  train_steps(a, gold, ngold, 0, 3);
  for (size_t i = 0; i < 8; i++) {
    const TensorEntry *want = need(gold, ngold, "step3:", bn_buffers[i]);
    double *got = tensor_of(a, bn_buffers[i], shape_numel(&want->shape));
    double e = rel_err(got, want->data, shape_numel(&want->shape));
    cr_expect_lt(e, 1e-5, "compiled: %s after three steps differs from PyTorch by %.3g", bn_buffers[i], e);
    free(got);
  }
  // eval reads the running statistics
  set_inputs(a, "eval", gold, ngold, "eval:");
  cr_assert_eq(smelt_run(a, "eval", 1, 0), SMELT_OK, "%s", smelt_last_error());
  static const char *outs[] = {"y2", "y1", "y0", "yc"};
  for (size_t o = 0; o < 4; o++) {
    const TensorEntry *want = need(gold, ngold, "eval:", outs[o]);
    int64_t n = shape_numel(&want->shape);
    float *f = malloc(sizeof(float) * (size_t)n);
    cr_assert_eq(smelt_get_output(a, "eval", outs[o], f, sizeof(float) * (size_t)n), SMELT_OK, "%s", smelt_last_error());
    double *d = malloc(sizeof(double) * (size_t)n);
    for (int64_t j = 0; j < n; j++) d[j] = f[j];
    double e = rel_err(d, want->data, n);
    cr_expect_lt(e, 1e-5, "compiled eval: %s differs from PyTorch by %.3g", outs[o], e);
    free(d);
    free(f);
  }
  // one step, a checkpoint, a fresh session, two more: the same bytes as three in one run
  const char *ckpt = scratch_path(ckpt_buf, sizeof ckpt_buf, "ckpt");
  cr_assert_eq(smelt_session_new(ig, "cpu", 1, &b), SMELT_OK);
  train_steps(b, gold, ngold, 0, 1);
  cr_assert_eq(smelt_save(b, ckpt), SMELT_OK, "%s", smelt_last_error());
  smelt_session_free(b);
  TensorEntry *saved;
  int nsaved;
  cr_assert_eq(tensorfile_read(ckpt, &saved, &nsaved, err, sizeof err), 0, "%s", err);
  for (size_t i = 0; i < 8; i++) {
    const TensorEntry *t = tensorfile_find(saved, nsaved, bn_buffers[i]);
    cr_assert_not_null(t, "the checkpoint has no %s", bn_buffers[i]);
    const TensorEntry *want = need(gold, ngold, "step1:", bn_buffers[i]);
    double e = rel_err(t->data, want->data, shape_numel(&want->shape));
    cr_expect_lt(e, 1e-5, "checkpointed %s differs from PyTorch's after one step by %.3g", bn_buffers[i], e);
  }
  tensorfile_free(saved, nsaved);
  cr_assert_eq(smelt_session_new(ig, "cpu", 2, &b), SMELT_OK);
  cr_assert_eq(smelt_load(b, ckpt), SMELT_OK, "%s", smelt_last_error());
  train_steps(b, gold, ngold, 1, 3);
  for (size_t i = 0; i < 8; i++) {
    size_t n = smelt_tensor_bytes(a, bn_buffers[i]);
    char *pa = malloc(n), *pb = malloc(n);
    smelt_get_tensor(a, bn_buffers[i], pa, n);
    smelt_get_tensor(b, bn_buffers[i], pb, n);
    cr_expect(memcmp(pa, pb, n) == 0, "%s differs after resuming", bn_buffers[i]);
    free(pa);
    free(pb);
  }
  // an inference-only ingot takes the trained buffers from the checkpoint
  cr_assert_eq(smelt_save(a, ckpt), SMELT_OK, "%s", smelt_last_error());
  smelt_session_free(a);
  smelt_session_free(b);
  smelt_ingot_close(ig);
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  m = module_load_file(&c, "tests/golden/batchnorm.smelt");
  cr_assert_eq(check_modules(&c, &m, 1, bn_sizes, 6), 0);
  cr_assert_eq(ingot_build(&c, m, bn_sizes, 6, &(BuildTargets){.infer_only = true}, path), 0);
  compilation_free(&c);
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_session_new(ig, "cpu", 2, &a), SMELT_OK);
  cr_assert_eq(smelt_load(a, ckpt), SMELT_OK, "%s", smelt_last_error());
  static const char *ins[] = {"x", "s", "v", "u"};
  for (size_t i = 0; i < 4; i++) {
    const TensorEntry *t = need(gold, ngold, "eval:", ins[i]);
    int64_t n = shape_numel(&t->shape);
    float *f = malloc(sizeof(float) * (size_t)n);
    for (int64_t j = 0; j < n; j++) f[j] = (float)t->data[j];
    cr_assert_eq(smelt_set_input(a, "infer", ins[i], f, sizeof(float) * (size_t)n), SMELT_OK, "%s", smelt_last_error());
    free(f);
  }
  cr_assert_eq(smelt_run(a, "infer", 1, 0), SMELT_OK, "%s", smelt_last_error());
  for (size_t o = 0; o < 4; o++) {
    const TensorEntry *want = need(gold, ngold, "eval:", outs[o]);
    int64_t n = shape_numel(&want->shape);
    float *f = malloc(sizeof(float) * (size_t)n);
    cr_assert_eq(smelt_get_output(a, "infer", outs[o], f, sizeof(float) * (size_t)n), SMELT_OK, "%s", smelt_last_error());
    double *d = malloc(sizeof(double) * (size_t)n);
    for (int64_t j = 0; j < n; j++) d[j] = f[j];
    double e = rel_err(d, want->data, n);
    cr_expect_lt(e, 1e-5, "inference-only ingot: %s differs from PyTorch's eval by %.3g", outs[o], e);
    free(d);
    free(f);
  }
  smelt_session_free(a);
  smelt_ingot_close(ig);
  unlink(ckpt);
  unlink(path);
  tensorfile_free(gold, ngold);
}

// ---- syntax and errors (each message also has a tests/diag golden)

TEST(buffers, buffer_and_update_parse) {
  char *got = parse_dump("fn f(x) {\n    buffer m: f32[3] = full(0.5)\n    update m = 0.9 * m + 0.1 * x\n"
                         "    return x\n}\n", NULL);
  cr_expect_str_eq(got, "fn f(x)\n  buffer m: f32[3] = (call full 0.5)\n  update m = (+ (* 0.9 m) (* 0.1 x))\n"
                        "  return x\n");
  free(got);
  char *diag = NULL;
  got = parse_dump("model m {\n    let update = 1\n}\n", &diag);
  cr_expect(diag && strstr(diag, "'update'"), "update is a keyword: %s", diag ? diag : "(no error)");
  free(got);
  free(diag);
}

static void expect_error(const char *src, const char *msg) {
  char *out;
  int errors = check_source("m.smelt", src, &out);
  cr_expect_gt(errors, 0, "no error for:\n%s", src);
  cr_expect(strstr(out, msg), "expected '%s' in:\n%s", msg, out);
  free(out);
}

TEST(buffers, errors_name_the_place) {
  expect_error("model m {\n    input x: f32[4]\n    update x = x * 2.0\n    output y = x\n}\n",
               "m.smelt:3:12: error: cannot update input 'x': only a buffer can be updated");
  expect_error("model m {\n    param w: f32[4] = ones\n    update w = w * 2.0\n    output y = w\n}\n",
               "m.smelt:3:12: error: cannot update parameter 'w'");
  expect_error("model m {\n    input x: f32[4]\n    buffer b: f32[4] = zeros\n"
               "    for i in 0..2 {\n        update b = b + x\n    }\n    output y = x\n}\n",
               "m.smelt:5:16: error: buffer 'b' is updated twice in one step");
  expect_error("model m {\n    input x: f32[4]\n    buffer b: f32[4] = zeros\n    update b = (b + x).sum() > 0.0\n"
               "    output y = x\n}\n", "update of buffer 'b' (f32[4]) with bool[]: the shapes must be equal");
  expect_error("model m {\n    input x: f32[4]\n    buffer b: f32[4] = zeros\n    update b = (1, 2)\n"
               "    output y = x\n}\n", "the value of an update must be a tensor or a number, not a tuple");
  expect_error("model m {\n    input x: f32[4]\n    buffer b: f32[4] = xavier\n    output y = x\n}\n",
               "a buffer's initializer must be zeros");
  // one value per channel has no variance to train on (PyTorch refuses it too)
  expect_error("import \"nn\"\nmodel m {\n    input x: f32[1, 4]\n    output y = batchnorm1d(x) as bn\n}\n",
               "error: assertion failed: batchnorm1d needs more than one value per channel to train");
  expect_error("import \"nn\"\nmodel m {\n    input x: f32[1, 4, 1, 1]\n    output y = batchnorm2d(x) as bn\n}\n",
               "error: assertion failed: batchnorm2d needs more than one value per channel to train");
  expect_error("import \"nn\"\nmodel m {\n    input x: f32[2, 4, 1, 1]\n    output y = batchnorm1d(x) as bn\n}\n",
               "error: assertion failed: batchnorm1d normalizes (N, C) or (N, C, L)");
  // a buffer's name may not be the optimizer's for a parameter's moments
  expect_error("fn f(x: f32[C]) {\n    param w: f32[C] = ones\n    buffer m: f32[C] = zeros\n    return x * w\n}\n"
               "model m {\n    input x: f32[4]\n    let y = f(x) as \"p\"\n    let z = f(x) as \"p.w\"\n"
               "    loss (y + z).sum()\n}\n"
               "train {\n    optimizer = adam(lr = 0.1)\n    steps = 1\n    data train {\n        x = csv(\"x.csv\")\n    }\n}\n",
               "error: buffer 'p.w.m' has the name of the optimizer's state 'p.w.m'; rename the buffer");
}

// A number as an update fills the buffer; a value of another dtype is cast.
TEST(buffers, update_with_a_number_or_another_dtype) {
  Model k;
  model_open_text(&k, "m.smelt",
                  "model m {\n    input x: f32[3]\n    buffer a: f32[3] = ones\n    buffer h: bf16[3] = zeros\n"
                  "    update a = 4\n    update h = x\n    output y = x + a + h\n}\n",
                  NULL, 0, true);
  cr_assert_eq(k.g.nupdates, 2);
  Store st = {.count = 0};
  TensorEntry x = {"input:x", shape_of(1, (int64_t[]){3}), (double[]){1.00390625, -2, 0.5}};
  InterpResult r;
  run_step(&k.g, &st, &x, 1, "input:", true, &r);
  interp_free(&r);
  double *a = store_get(&st, graph_find_leaf(&k.g, OP_STATE, "a"));
  double *h = store_get(&st, graph_find_leaf(&k.g, OP_STATE, "h"));
  for (int i = 0; i < 3; i++) cr_expect_eq(a[i], 4.0);
  cr_expect_eq(h[0], 1.0, "bf16 rounds 1.00390625 to 1");
  cr_expect_eq(h[1], -2.0);
  store_free(&st);
  model_close(&k);
}

// The average of weights of docs/language.md 4.4.1: trained with the
// weights, evaluated with their bias-corrected average over the steps.
TEST(buffers, the_documented_weight_average) {
  static const char *src =
      "fn linear_ema(x: f32[..., I], out: int, decay: float = 0.999) -> f32[..., out] {\n"
      "    param w: f32[I, out] = xavier_uniform\n"
      "    buffer w_avg: f32[I, out] = zeros\n"
      "    buffer t: f32[] = zeros\n"
      "    update w_avg = decay * w_avg + (1.0 - decay) * w\n"
      "    update t = t + 1\n"
      "    if training {\n        return x @ w\n    }\n"
      "    return x @ (w_avg / (1.0 - pow(decay, maximum(t, 1.0))))\n"
      "}\n"
      "model m {\n    input x: f32[4, 3]\n    input y: f32[4, 2]\n"
      "    output p = linear_ema(x, 2, decay = 0.5) as fc\n    loss ((p - y) ** 2).mean()\n}\n";
  Model k;
  model_open_text(&k, "m.smelt", src, NULL, 0, true);
  TrainConfig cfg = {.optimizer = "sgd", .lr = 0.5, .schedule = "constant"};
  cr_assert_eq(optim_append(&k.g, &cfg, 3), 0);
  Store st = {.count = 0};
  for (int i = 0; i < k.g.n; i++)
    if (k.g.nodes[i]->op == OP_PARAM || k.g.nodes[i]->op == OP_STATE) init_fill(k.g.nodes[i], 1, store_get(&st, k.g.nodes[i]));
  double xs[12], ys[8];
  for (int i = 0; i < 12; i++) xs[i] = (double)(float)(0.25 * (i % 5) - 0.5);
  for (int i = 0; i < 8; i++) ys[i] = (double)(float)(0.1 * i);
  TensorEntry in[2] = {{"x", shape_of(2, (int64_t[]){4, 3}), xs}, {"y", shape_of(2, (int64_t[]){4, 2}), ys}};
  double want[6] = {0}, weight = 0.5;   // (1 - decay) decay^(2 - s) w_s over the steps s = 0, 1, 2
  double *w = store_get(&st, graph_find_leaf(&k.g, OP_PARAM, "fc.w"));
  for (int s = 0; s < 3; s++) {
    for (int i = 0; i < 6; i++) want[i] = 0.5 * want[i] + weight * w[i];
    InterpResult r;
    run_step(&k.g, &st, in, 2, "", true, &r);
    interp_free(&r);
  }
  for (int i = 0; i < 6; i++) want[i] /= 1.0 - 0.125;
  Model ev;
  model_open_text(&ev, "m.smelt", src, NULL, 0, false);
  InterpResult r;
  run_step(&ev.g, &st, in, 2, "", false, &r);
  Node *p = output_named(&ev.g, "p");
  for (int row = 0; row < 4; row++)
    for (int j = 0; j < 2; j++) {
      double expect = 0;
      for (int i = 0; i < 3; i++) expect += xs[row * 3 + i] * want[i * 2 + j];
      cr_expect_float_eq(r.vals[p->id][row * 2 + j], expect, 1e-5, "p[%d, %d] %g, want %g", row, j,
                         r.vals[p->id][row * 2 + j], expect);
    }
  interp_free(&r);
  model_close(&ev);
  store_free(&st);
  model_close(&k);
}

// fp16's loss scaling skips the optimizer's updates on a step whose
// gradients overflow, not the buffers': the forward pass happened.
TEST(buffers, a_skipped_fp16_step_still_updates_buffers) {
  Model k;
  model_open_text(&k, "m.smelt", counter_model, NULL, 0, true);
  int n = k.g.nupdates;
  Node *values[8];
  for (int u = 0; u < n; u++) values[u] = k.g.updates[u].value;
  TrainConfig cfg = {.optimizer = "sgd", .lr = 0.1, .schedule = "constant", .precision = PREC_FP16};
  cr_assert_eq(optim_append(&k.g, &cfg, 2), 0);
  cr_assert_not_null(graph_find_leaf(&k.g, OP_STATE, "loss_scale"));
  for (int u = 0; u < n; u++)
    cr_expect_eq(k.g.updates[u].value, values[u], "the update of %s is made conditional", k.g.updates[u].target->name);
  int guarded = 0;
  for (int u = n; u < k.g.nupdates; u++) guarded += k.g.updates[u].value->op == OP_WHERE;
  cr_expect_gt(guarded, 0, "the optimizer's updates are guarded");
  model_close(&k);
}

// Inference needs no batch statistics: batch norm builds at batch 1 for infer.
TEST(buffers, batchnorm_infers_one_sample_at_a_time) {
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_file(&c, "examples/resnet.smelt");
  for (int i = 0; i < c.nmodules; i++) resolve_module(&c, c.modules[i]);
  cr_assert_eq(c.diag.errors, 0);
  Entry e;
  Define b1[] = {{"B", 1}};
  cr_expect_eq(pipeline_entry(&c, m, "infer", &(EntryOptions){b1, 1, .last = PASS_SIMPLIFY}, &e), 0);
  int buffers = 0;
  for (int i = 0; i < e.g.n; i++) buffers += e.g.nodes[i]->op == OP_STATE;
  cr_expect_eq(buffers, 18, "infer reads the running statistics of 9 batch norms");
  cr_expect_eq(e.g.nupdates, 0);
  entry_free(&e);
  compilation_free(&c);
}
