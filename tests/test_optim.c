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
    int64_t numel = shape_numel(&n->shape);
    s->state[i] = calloc((size_t)(numel > 2 ? numel : 2), sizeof(double));
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

// ---- train blocks: schedules and parameter groups as train_check reads them

// The test model with a train block holding settings; its checked config.
static void step_open_train(Step *s, const char *model_text, const char *settings, int64_t total) {
  char text[2048];
  snprintf(text, sizeof text, "%strain {\n%s\n  steps = %lld\n  data train { x = csv(\"x.csv\") }\n}\n",
           model_text, settings, (long long)total);
  Compilation c;
  compilation_init(&c, stderr);
  Module *m = module_load_text(&c, "m.smelt", text, strlen(text));
  resolve_module(&c, m);
  cr_assert_eq(c.diag.errors, 0, "%s", text);
  cr_assert_not_null(m->train);
  // the config points into c's arena, which step_open_text's compilation replaces
  TrainConfig cfg = *m->train;
  step_open_text(s, text, cfg, total);
  compilation_free(&c);
}

// Each schedule at t = 1, 2, ..., 10 (t counts optimizer steps from 1) against
// its closed form here, lr = 0.5, 10 steps.
TEST(optim, schedules_linear_inverse_sqrt_and_expressions) {
  double x[2] = {0, 0};
  const double lr = 0.5, T = 10;
  const char *sched[] = {
      "linear(warmup = 3, decay_to = 0.1)",
      "linear",
      "inverse_sqrt(warmup = 4)",
      "lr * min(1, step / 4) * 0.5 ** (step / 5)",
      "lr * (1 - step / total_steps) + 1e-3",
      "where(step <= 2, lr, lr / 10) * 0.5 ** (step // 3) + (step % 4) / 100",
      "lr * sqrt(step) * exp(-step / 10) + cos(pi * step) / 100 - abs(-0.01) + floor(2.5)",
  };
  for (size_t c = 0; c < sizeof sched / sizeof *sched; c++) {
    char settings[256];
    snprintf(settings, sizeof settings, "  optimizer = sgd(lr = 0.5)\n  schedule = %s", sched[c]);
    Step s;
    step_open_train(&s, model, settings, (int64_t)T);
    for (int t = 1; t <= T; t++) {
      double want;
      switch (c) {
      case 0: want = t <= 3 ? lr * t / 3 : lr * (1 - 0.9 * (t - 3) / (T - 3)); break;
      case 1: want = lr * (1 - t / T); break;
      case 2: want = lr * fmin(t / 4.0, sqrt(4.0 / t)); break;
      case 3: want = lr * fmin(1, t / 4.0) * pow(0.5, t / 5.0); break;
      case 4: want = lr * (1 - t / T) + 1e-3; break;
      case 5: want = (t <= 2 ? lr : lr / 10) * pow(0.5, floor(t / 3.0)) + (t % 4) / 100.0; break;
      default: want = lr * sqrt(t) * exp(-t / 10.0) + cos(M_PI * t) / 100 - 0.01 + 2; break;
      }
      double got = step_run(&s, x, "lr");
      cr_expect(fabs(got - want) <= 1e-6 * fmax(1, fabs(want)), "%s at step %d: %.9g, want %.9g",
                sched[c], t, got, want);
    }
    step_close(&s);
  }
}

// The run's length is unknown when the build does not fix it (epochs): the
// schedule reads the STATE total_steps that the trainer sets.
TEST(optim, expression_schedules_read_total_steps_when_the_length_is_open) {
  Compilation c;
  compilation_init(&c, stderr);
  static const char *text =
      "model m {\n  param w: f32[2] = ones\n  input x: f32[2]\n  loss (w * x).sum()\n}\n"
      "train {\n  optimizer = sgd(lr = 1)\n  schedule = lr * step / total_steps\n  epochs = 1\n"
      "  data train { x = csv(\"x.csv\") }\n}\n";
  Module *m = module_load_text(&c, "m.smelt", text, strlen(text));
  resolve_module(&c, m);
  cr_assert_eq(c.diag.errors, 0);
  Graph g;
  graph_init(&g, &c.arena, &c.diag);
  cr_assert_eq(elaborate(&c, m, NULL, 0, true, &g), 0);
  cr_assert_eq(optim_append(&g, m->train, 0), 0);
  cr_expect_not_null(graph_find_leaf(&g, OP_STATE, "total_steps"));
  graph_free(&g);
  compilation_free(&c);
}

static const char *two_params =
    "model m {\n  param w: f32[2] = ones\n  param u: f32[2] = ones\n  input x: f32[2]\n"
    "  loss (w * x).sum() + (u * x).sum()\n}\n";

static double param(Step *s, const char *name, int i) {
  Node *p = graph_find_leaf(&s->g, OP_PARAM, name);
  cr_assert_not_null(p, "no parameter %s", name);
  return s->state[p->id][i];
}

static bool has_output(const Step *s, const char *name) {
  for (int k = 0; k < s->g.noutputs; k++)
    if (!strcmp(s->g.outputs[k].name, name)) return true;
  return false;
}

// A frozen parameter keeps its value under every optimizer, even with weight
// decay and momentum; it has no gradient, no output grad.NAME and no state.
TEST(optim, frozen_parameters_are_unchanged_and_get_no_gradient) {
  const char *opts[] = {"adamw(lr = 0.1, weight_decay = 0.5)", "adam(lr = 0.1, weight_decay = 0.5)",
                        "sgd(lr = 0.1, momentum = 0.9, weight_decay = 0.5)"};
  for (size_t k = 0; k < sizeof opts / sizeof *opts; k++) {
    char settings[256];
    // as a string, and as a list of one
    snprintf(settings, sizeof settings, "  optimizer = %s\n  freeze = %s", opts[k], k == 2 ? "[\"u\"]" : "\"u\"");
    Step s;
    step_open_train(&s, two_params, settings, 10);
    double x[2] = {2, -4};
    for (int r = 0; r < 3; r++) step_run(&s, x, "loss");
    cr_expect_eq(param(&s, "u", 0), 1.0, "%s stepped a frozen parameter", opts[k]);
    cr_expect_eq(param(&s, "u", 1), 1.0, "%s stepped a frozen parameter", opts[k]);
    cr_expect_neq(param(&s, "w", 0), 1.0, "%s did not step w", opts[k]);
    cr_expect(!has_output(&s, "grad.u"), "a frozen parameter has a gradient output");
    cr_expect(has_output(&s, "grad.w"));
    for (int i = 0; i < s.g.n; i++)
      if (s.g.nodes[i]->op == OP_STATE)
        cr_expect(strncmp(s.g.nodes[i]->name, "u.", 2) != 0, "state for u: %s", s.g.nodes[i]->name);
    step_close(&s);
  }
}

// The gradient of a frozen parameter is not computed: with only the second
// layer's weight trained, the graph has no matmul that produces dW1.
TEST(optim, freezing_skips_the_frozen_gradient_ops) {
  static const char *mlp2 =
      "model m {\n  param a: f32[3, 4] = ones\n  param b: f32[4, 2] = ones\n  input x: f32[5, 3]\n"
      "  loss ((x @ a) @ b).sum()\n}\n";
  int nodes[2];
  for (int frozen = 0; frozen < 2; frozen++) {
    Step s;
    step_open_train(&s, mlp2, frozen ? "  optimizer = sgd(lr = 0.1)\n  freeze = \"a\""
                                     : "  optimizer = sgd(lr = 0.1)", 10);
    int matmuls = 0;
    for (int i = 0; i < s.g.n; i++) matmuls += s.g.nodes[i]->op == OP_MATMUL;
    // forward 2; backward: db, and dx@a's input grad plus da only when a trains
    cr_expect_eq(matmuls, frozen ? 3 : 5, "frozen %d: %d matmuls", frozen, matmuls);
    nodes[frozen] = s.g.n;
    step_close(&s);
  }
  cr_expect_lt(nodes[1], nodes[0]);
}

// Group settings by hand, one step of loss sum(w x) + sum(u x) (gradients x):
// AdamW's first step moves each weight by lr (sign of the gradient) after the
// decoupled decay p (1 - lr wd); a group's lr scales the schedule's value.
TEST(optim, groups_set_weight_decay_and_lr_per_parameter) {
  double x[2] = {3, -0.5};
  Step s;
  step_open_train(&s, two_params,
                  "  optimizer = adamw(lr = 0.01, weight_decay = 0.1)\n"
                  "  schedule = constant(warmup = 2)\n"
                  "  group \"u\" { weight_decay = 0; lr = 0.04 }", 10);
  step_run(&s, x, "loss");
  // t = 1: warm-up halves the learning rate of both groups
  double lw = 0.01 * 0.5, lu = 0.04 * 0.5;
  cr_expect_float_eq(param(&s, "w", 0), 1 * (1 - lw * 0.1) - lw, 1e-6);
  cr_expect_float_eq(param(&s, "w", 1), 1 * (1 - lw * 0.1) + lw, 1e-6);
  cr_expect_float_eq(param(&s, "u", 0), 1 - lu, 1e-6);
  cr_expect_float_eq(param(&s, "u", 1), 1 + lu, 1e-6);
  step_close(&s);
}

// SGD's momentum, Nesterov and L2 weight decay per group; the first group
// that matches a name decides, and `*` matches across dots.
TEST(optim, sgd_groups_and_first_match_wins) {
  double x[2] = {1, 2};
  Step s;
  step_open_train(&s, two_params,
                  "  optimizer = sgd(lr = 0.1, weight_decay = 0.5)\n"
                  "  group \"u\" { momentum = 0.9; nesterov = true; weight_decay = 0 }\n"
                  "  group \"*\" { lr = 0.2 }", 10);
  step_run(&s, x, "loss");
  step_run(&s, x, "loss");
  // u: buf1 = g, buf2 = 1.9 g, Nesterov updates g + 0.9 buf; lr 0.1, no decay
  double u1 = 1 + 0.9, u2 = 1 + 0.9 * 1.9;
  cr_expect_float_eq(param(&s, "u", 1), 1 - 0.1 * 2 * (u1 + u2), 1e-6);
  // w: the group "*" (lr 0.2) with the optimizer's L2 decay 0.5
  double w = 1;
  for (int r = 0; r < 2; r++) w -= 0.2 * (2 + 0.5 * w);
  cr_expect_float_eq(param(&s, "w", 1), w, 1e-6);
  cr_expect_null(graph_find_leaf(&s.g, OP_STATE, "w.momentum"));
  step_close(&s);
}

// Patterns are globs over the whole dotted name.
TEST(optim, group_patterns_are_whole_name_globs) {
  TrainConfig cfg = {.optimizer = "sgd", .lr = 1, .schedule = "constant"};
  ParamGroup groups[] = {{.pattern = "enc.*", .frozen = true}, {.pattern = "*.b"}, {.pattern = "h.?.ln[12].g"},
                         {.pattern = "enc.b"}};
  cfg.groups = groups;
  cfg.ngroups = 4;
  cr_expect_eq(optim_group_of(&cfg, "enc.b"), &groups[0]);   // freezing comes first
  cr_expect_eq(optim_group_of(&cfg, "h.0.attn.b"), &groups[1]);
  cr_expect_eq(optim_group_of(&cfg, "h.3.ln2.g"), &groups[2]);
  cr_expect_null(optim_group_of(&cfg, "h.10.ln1.g"));
  cr_expect_null(optim_group_of(&cfg, "x.enc.w"));
  cr_expect_null(optim_group_of(&cfg, "fc1.bias"));
}

// A group's lr scales the whole schedule, cosine's floor included:
// u (lr 2 against the optimizer's 1) gets twice w's learning rate each step.
TEST(optim, group_lr_scales_the_cosine_floor_too) {
  double x[2] = {1, 1};
  Step s;
  step_open_train(&s, two_params, "  optimizer = sgd(lr = 1)\n  schedule = cosine(min_lr = 0.1)\n"
                  "  group \"u\" { lr = 2 }", 2);
  double w = 1, u = 1;
  for (int t = 1; t <= 2; t++) {
    double lr = 0.1 + 0.9 * (1 + cos(M_PI * t / 2)) / 2;   // 0.55, then the floor 0.1
    step_run(&s, x, "loss");
    w -= lr, u -= 2 * lr;
    cr_expect_float_eq(param(&s, "w", 0), w, 1e-6, "step %d", t);
    cr_expect_float_eq(param(&s, "u", 0), u, 1e-6, "step %d", t);
  }
  step_close(&s);
}
