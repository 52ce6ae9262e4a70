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
    char prefix[16];
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
