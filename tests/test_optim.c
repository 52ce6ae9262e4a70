// test_optim.c: the optimizer and schedule ops against hand-computed steps.
//
// The model is loss = sum(w * x), so the gradient of w is x exactly and each
// optimizer's update can be written out by hand.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

typedef struct {
  Compilation c;
  Module *m;
  Graph g;
  double **state;
  double **leaves;
} Step;

static const char *model =
    "model m {\n  param w: f32[2] = ones\n  input x: f32[2]\n  loss (w * x).sum()\n}\n";

static void step_open_text(Step *s, const char *text, TrainConfig cfg, int64_t total) {
  memset(s, 0, sizeof *s);
  compilation_init(&s->c, stderr);
  s->m = module_load_text(&s->c, "m.smelt", text, strlen(text));
  resolve_module(&s->c, s->m);
  graph_init(&s->g, &s->c.arena, &s->c.diag);
  cr_assert_eq(elaborate(&s->c, s->m, NULL, 0, true, &s->g), 0);
  cr_assert_eq(optim_append(&s->g, &cfg, total), 0);
  s->state = calloc((size_t)s->g.n, sizeof *s->state);
  s->leaves = calloc((size_t)s->g.n, sizeof *s->leaves);
  for (int i = 0; i < s->g.n; i++) {
    Node *n = s->g.nodes[i];
    if (n->op != OP_PARAM && n->op != OP_STATE) continue;
    s->state[i] = calloc(2, sizeof(double));
    init_fill(n, 1, s->state[i]);
  }
}

static void step_open(Step *s, TrainConfig cfg, int64_t total) { step_open_text(s, model, cfg, total); }

// Runs one step with x; returns the value of output `name` (first element).
static double step_run(Step *s, const double x[2], const char *name) {
  for (int i = 0; i < s->g.n; i++) {
    Node *n = s->g.nodes[i];
    s->leaves[i] = n->op == OP_INPUT ? (double *)x : s->state[i];
  }
  InterpResult r;
  char err[128];
  cr_assert_eq(interp_run(&s->g, s->leaves, 1, 0, &r, err, sizeof err), 0, "%s", err);
  double out = NAN;
  for (int k = 0; k < s->g.noutputs; k++)
    if (!strcmp(s->g.outputs[k].name, name)) out = r.vals[s->g.outputs[k].node->id][0];
  for (int u = 0; u < s->g.nupdates; u++)
    memcpy(s->state[s->g.updates[u].target->id], r.vals[s->g.updates[u].value->id],
           sizeof(double) * (size_t)shape_numel(&s->g.updates[u].target->shape));
  interp_free(&r);
  return out;
}

static double weight(Step *s, int i) {
  Node *w = graph_find_leaf(&s->g, OP_PARAM, "w");
  return s->state[w->id][i];
}

static void step_close(Step *s) {
  for (int i = 0; i < s->g.n; i++) free(s->state[i]);
  free(s->state);
  free(s->leaves);
  graph_free(&s->g);
  compilation_free(&s->c);
}

TEST(optim, sgd_plain_and_l2) {
  Step s;
  step_open(&s, (TrainConfig){.optimizer = "sgd", .lr = 0.1, .weight_decay = 0.5, .schedule = "constant"}, 10);
  double x[2] = {2, -4};
  step_run(&s, x, "loss");
  // g = x + 0.5 w = (2.5, -3.5); w = 1 - 0.1 g
  cr_expect_float_eq(weight(&s, 0), 1 - 0.1 * 2.5, 1e-6);
  cr_expect_float_eq(weight(&s, 1), 1 + 0.1 * 3.5, 1e-6);
  step_close(&s);
}

TEST(optim, sgd_momentum_and_nesterov) {
  double x[2] = {1, 2};
  for (int nesterov = 0; nesterov < 2; nesterov++) {
    Step s;
    step_open(&s, (TrainConfig){.optimizer = "sgd", .lr = 0.1, .momentum = 0.9, .nesterov = nesterov,
                                .schedule = "constant"}, 10);
    step_run(&s, x, "loss");
    step_run(&s, x, "loss");
    // buf1 = g, buf2 = 0.9 g + g = 1.9 g; plain uses buf, Nesterov g + 0.9 buf
    double u1 = nesterov ? 1 + 0.9 : 1, u2 = nesterov ? 1 + 0.9 * 1.9 : 1.9;
    cr_expect_float_eq(weight(&s, 1), 1 - 0.1 * 2 * (u1 + u2), 1e-6, "nesterov %d", nesterov);
    step_close(&s);
  }
}

TEST(optim, adam_first_step_is_lr_times_sign) {
  Step s;
  step_open(&s, (TrainConfig){.optimizer = "adam", .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999,
                              .eps = 1e-8, .schedule = "constant"}, 10);
  double x[2] = {3, -0.5};
  step_run(&s, x, "loss");
  cr_expect_float_eq(weight(&s, 0), 1 - 0.01, 1e-6);
  cr_expect_float_eq(weight(&s, 1), 1 + 0.01, 1e-6);
  step_close(&s);
}

TEST(optim, clipping_scales_to_the_max_norm) {
  Step s;
  step_open(&s, (TrainConfig){.optimizer = "sgd", .lr = 1, .clip_grad_norm = 1, .schedule = "constant"}, 10);
  double x[2] = {3, 4};   // norm 5: scaled to 1
  double norm = step_run(&s, x, "grad_norm");   // the macros evaluate twice: run once
  cr_expect_float_eq(norm, 5, 1e-6, "norm %g", norm);
  cr_expect_float_eq(weight(&s, 0), 1 - 0.6, 1e-5);
  cr_expect_float_eq(weight(&s, 1), 1 - 0.8, 1e-5);
  step_close(&s);
}

TEST(optim, schedules) {
  double x[2] = {0, 0};
  struct { const char *name; int64_t warmup, every; double gamma, min_lr; double want[6]; } cases[] = {
      {"constant", 0, 0, 0, 0, {1, 1, 1, 1, 1, 1}},
      {"constant", 4, 0, 0, 0, {0.25, 0.5, 0.75, 1, 1, 1}},
      {"step", 0, 2, 0.5, 0, {1, 1, 0.5, 0.5, 0.25, 0.25}},
      // cosine over 6 steps after 2 of warm-up: p = (t - 2) / 4
      {"cosine", 2, 0, 0, 0.1, {0.5, 1, 0.1 + 0.9 * (1 + cos(M_PI * 0.25)) / 2,
                                0.1 + 0.9 * 0.5, 0.1 + 0.9 * (1 + cos(M_PI * 0.75)) / 2, 0.1}},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    Step s;
    step_open(&s, (TrainConfig){.optimizer = "sgd", .lr = 1, .schedule = cases[c].name,
                                .warmup = cases[c].warmup, .step_every = cases[c].every,
                                .gamma = cases[c].gamma, .min_lr = cases[c].min_lr}, 6);
    for (int t = 0; t < 6; t++) {
      double lr = step_run(&s, x, "lr");
      cr_expect_float_eq(lr, cases[c].want[t], 1e-6, "%s warmup %lld, step %d: %g",
                         cases[c].name, (long long)cases[c].warmup, t + 1, lr);
    }
    step_close(&s);
  }
}

TEST(optim, state_is_named_after_its_parameter) {
  Step s;
  step_open(&s, (TrainConfig){.optimizer = "adamw", .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999,
                              .eps = 1e-8, .schedule = "constant"}, 10);
  cr_expect_not_null(graph_find_leaf(&s.g, OP_STATE, "w.m"));
  cr_expect_not_null(graph_find_leaf(&s.g, OP_STATE, "w.v"));
  cr_expect_not_null(graph_find_leaf(&s.g, OP_STATE, "step"));
  cr_expect_eq(s.g.nupdates, 4);   // step, w.m, w.v, w
  step_close(&s);
}

// A parameter the loss does not reach gets no step from any optimizer, as
// in PyTorch (its grad is None): AdamW's decoupled decay, SGD's L2 term and
// momentum leave it alone, and it has no optimizer state. w reaches the loss.
TEST(optim, parameters_without_gradient_are_not_stepped) {
  static const char *two =
      "model m {\n  param w: f32[2] = ones\n  param u: f32[2] = ones\n  input x: f32[2]\n"
      "  output side = u * 2.0\n  loss (w * x).sum()\n}\n";
  const TrainConfig cfgs[] = {
      {.optimizer = "adamw", .lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.5,
       .schedule = "constant"},
      {.optimizer = "sgd", .lr = 0.1, .momentum = 0.9, .weight_decay = 0.5, .schedule = "constant"},
  };
  for (size_t k = 0; k < sizeof cfgs / sizeof *cfgs; k++) {
    Step s;
    step_open_text(&s, two, cfgs[k], 10);
    double x[2] = {2, -4};
    for (int r = 0; r < 3; r++) step_run(&s, x, "loss");
    Node *u = graph_find_leaf(&s.g, OP_PARAM, "u");
    cr_expect_eq(s.state[u->id][0], 1.0, "%s moved a parameter without a gradient", cfgs[k].optimizer);
    cr_expect_eq(s.state[u->id][1], 1.0, "%s moved a parameter without a gradient", cfgs[k].optimizer);
    cr_expect_neq(weight(&s, 0), 1.0, "%s did not step w", cfgs[k].optimizer);
    for (int i = 0; i < s.g.n; i++)
      if (s.g.nodes[i]->op == OP_STATE)
        cr_expect(strncmp(s.g.nodes[i]->name, "u.", 2) != 0, "state for u: %s", s.g.nodes[i]->name);
    step_close(&s);
  }
}
