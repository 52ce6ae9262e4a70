// optim.c: the training step as one graph.
//
// forward + loss (elaborate.c), backward (autodiff.c), then here: the step
// counter, the learning rate for this step, clipping by global norm, and one
// update per parameter and per piece of optimizer state. Everything is graph
// ops, so a backend runs the whole step without a round trip to the host, and
// the interpreter checks it like any other graph.
#include "compiler.h"

#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static Node *k(Graph *g, double v) { return g_const(g, v, DT_F32, (Shape){0}); }
static Node *add(Graph *g, Node *a, Node *b) { return g_binary(g, OP_ADD, a, b); }
static Node *sub(Graph *g, Node *a, Node *b) { return g_binary(g, OP_SUB, a, b); }
static Node *mul(Graph *g, Node *a, Node *b) { return g_binary(g, OP_MUL, a, b); }
static Node *dvd(Graph *g, Node *a, Node *b) { return g_binary(g, OP_DIV, a, b); }

static Node *state(Graph *g, const char *name, Shape s) {
  Node *n = g_leaf(g, OP_STATE, DT_F32, s, name);
  n->p.param.init = INIT_ZEROS;
  return n;
}

// The run's length: a constant when known now, else the STATE "total_steps"
// that the trainer sets from the data before the first step.
static Node *run_length(Graph *g, int64_t total) {
  if (total > 0) return k(g, (double)total);
  Node *s = graph_find_leaf(g, OP_STATE, "total_steps");
  return s ? s : state(g, "total_steps", (Shape){0});
}

// The fraction of the steps after warm-up done at t: clamp((t - warmup) /
// max(total - warmup, 1), 0, 1).
static Node *progress(Graph *g, Node *t, int64_t warmup, int64_t total) {
  Node *span = total > 0 ? k(g, (double)(total > warmup ? total - warmup : 1))
                         : g_binary(g, OP_MAX, sub(g, run_length(g, 0), k(g, (double)warmup)), k(g, 1));
  Node *p = dvd(g, sub(g, t, k(g, (double)warmup)), span);
  return g_binary(g, OP_MIN, g_binary(g, OP_MAX, p, k(g, 0)), k(g, 1));
}

// A schedule expression (train_check folded its constants) at step t.
static Node *sched_node(Graph *g, const SchedExpr *x, Node *t, double lr, int64_t total) {
  Node *a = x->a ? sched_node(g, x->a, t, lr, total) : NULL;
  Node *b = x->b ? sched_node(g, x->b, t, lr, total) : NULL;
  if (x->op == OP_CONST) return k(g, x->value);
  if (x->op == OP_INPUT)
    return !strcmp(x->name, "step") ? t : !strcmp(x->name, "lr") ? k(g, lr) : run_length(g, total);
  if (x->op == OP_WHERE) return g_where(g, a, b, sched_node(g, x->c, t, lr, total));
  // the other ops train.c builds: unary with a, binary and comparisons with a and b
  return b ? g_binary(g, x->op, a, b) : g_unary(g, x->op, a);
}

// The learning rate at step t (1-based, f32 scalar), per the schedule:
//   warm-up:  lr * t / warmup while t < warmup (every named schedule)
//   constant: lr
//   step:     lr * gamma ^ floor((t - 1) / every)
//   cosine:   min_lr + (lr - min_lr) * (1 + cos(pi * p)) / 2
//   linear:   lr * (1 - (1 - decay_to) * p)
//   inverse_sqrt: lr * min(1, sqrt(warmup / t)), so with the warm-up
//             lr * min(t / warmup, sqrt(warmup / t))
//   expression: as written, with step = t
// where p = clamp((t - warmup) / (total - warmup), 0, 1).
static Node *learning_rate(Graph *g, const TrainConfig *c, Node *t, int64_t total) {
  Node *lr;
  if (!strcmp(c->schedule, "expression")) {
    return sched_node(g, c->schedule_expr, t, c->lr, total);
  } else if (!strcmp(c->schedule, "step")) {
    Node *decays = g_unary(g, OP_FLOOR, dvd(g, sub(g, t, k(g, 1)), k(g, (double)(c->step_every ? c->step_every : 1))));
    lr = mul(g, k(g, c->lr), g_binary(g, OP_POW, k(g, c->gamma), decays));
  } else if (!strcmp(c->schedule, "cosine")) {
    Node *p = progress(g, t, c->warmup, total);
    Node *cosine = mul(g, k(g, 0.5), add(g, k(g, 1), g_unary(g, OP_COS, mul(g, p, k(g, M_PI)))));
    lr = add(g, k(g, c->min_lr), mul(g, k(g, c->lr - c->min_lr), cosine));
  } else if (!strcmp(c->schedule, "linear")) {
    Node *p = progress(g, t, c->warmup, total);
    lr = mul(g, k(g, c->lr), sub(g, k(g, 1), mul(g, k(g, 1 - c->decay_to), p)));
  } else if (!strcmp(c->schedule, "inverse_sqrt")) {
    Node *decay = g_unary(g, OP_SQRT, dvd(g, k(g, (double)c->warmup), t));
    lr = mul(g, k(g, c->lr), g_binary(g, OP_MIN, k(g, 1), decay));
  } else {
    lr = k(g, c->lr);
  }
  if (c->warmup > 0) {
    Node *ramp = g_binary(g, OP_MIN, dvd(g, t, k(g, (double)c->warmup)), k(g, 1));
    lr = mul(g, lr, ramp);
  }
  return lr;
}

// ---- parameter groups

const ParamGroup *optim_group_of(const TrainConfig *c, const char *name) {
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < c->ngroups; i++)
      if (c->groups[i].frozen == (pass == 0) && fnmatch(c->groups[i].pattern, name, 0) == 0)
        return &c->groups[i];
  return NULL;
}

// Marks frozen parameters and reports a pattern that matches no parameter of
// the forward graph g, or a group whose parameters are all frozen or in
// earlier groups (a typo must not silently do nothing). Returns 0, or -1
// after reporting.
static int groups_assign(Graph *g, const TrainConfig *c) {
  if (!c->ngroups) return 0;
  int errors = g->diag->errors;
  int *matched = xcalloc((size_t)c->ngroups, sizeof *matched), *taken = xcalloc((size_t)c->ngroups, sizeof *taken);
  char names[200] = "";
  int nparams = 0;
  for (int i = 0; i < g->n; i++) {
    Node *p = g->nodes[i];
    if (p->op != OP_PARAM) continue;
    if (nparams++ < 8) {
      strncat(names, nparams > 1 ? ", " : "", sizeof names - strlen(names) - 1);
      strncat(names, p->name, sizeof names - strlen(names) - 1);
    } else if (nparams == 9) {
      strncat(names, ", ...", sizeof names - strlen(names) - 1);
    }
    for (int j = 0; j < c->ngroups; j++) matched[j] += fnmatch(c->groups[j].pattern, p->name, 0) == 0;
    const ParamGroup *grp = optim_group_of(c, p->name);
    if (grp) taken[grp - c->groups]++;
    p->frozen = grp && grp->frozen;
  }
  for (int j = 0; j < c->ngroups; j++) {
    const ParamGroup *grp = &c->groups[j];
    if (!matched[j])
      diag_error(g->diag, grp->span, "pattern \"%s\" matches no parameter (the parameters are %s)",
                 grp->pattern, nparams ? names : "none");
    else if (!taken[j] && !grp->frozen)   // frozen patterns may overlap: freezing twice is still frozen
      diag_error(g->diag, grp->span, "group \"%s\" gets no parameter: each one it matches is frozen or "
                 "in an earlier group", grp->pattern);
  }
  free(matched);
  free(taken);
  return g->diag->errors > errors ? -1 : 0;
}

// ---- dynamic loss scaling (fp16)
//
// The gradient is seeded with the scale S instead of 1 and every parameter
// gradient divided by S again. A step whose gradients hold an inf or a NaN
// changes no parameter or optimizer state (the step counter still counts it,
// so the data position and the schedule go on) and halves S; after
// LOSS_SCALE_INTERVAL good steps in a row S doubles.
#define LOSS_SCALE_INIT 65536.0
#define LOSS_SCALE_INTERVAL 2000

static Node *loss_scale_state(Graph *g) {
  Node *s = state(g, "loss_scale", (Shape){0});
  s->p.param.init = INIT_FULL;
  s->p.param.a = LOSS_SCALE_INIT;
  return s;
}

// True when every gradient is finite: x * 0 is 0 for finite x and NaN for
// inf or NaN, and a NaN anywhere makes the total NaN.
static Node *all_finite(Graph *g, Node *const *grads, int n) {
  Node *total = k(g, 0);
  for (int i = 0; i < n; i++) {
    if (!grads[i]) continue;
    Node *gi = g_cast(g, grads[i], DT_F32);
    Node *z = mul(g, gi, k(g, 0));
    total = add(g, total, g_reduce(g, OP_SUM, z, gi->shape.ndim ? (1u << gi->shape.ndim) - 1 : 0, false));
  }
  return g_binary(g, OP_EQ, total, k(g, 0));
}

static void skip_unless_finite(Graph *g, Node *scale, Node *finite, int first_update) {
  g->scope = "optimizer";
  Node *step = graph_find_leaf(g, OP_STATE, "step");
  for (int i = first_update; i < g->nupdates; i++) {
    Update *u = &g->updates[i];
    if (u->target != step) u->value = g_where(g, finite, u->value, u->target);
  }
  Node *good = state(g, "loss_scale_good", (Shape){0});
  Node *good1 = add(g, good, k(g, 1));
  Node *grow = g_binary(g, OP_GE, good1, k(g, LOSS_SCALE_INTERVAL));
  graph_add_update(g, scale, g_where(g, finite, g_where(g, grow, mul(g, scale, k(g, 2)), scale),
                                     g_binary(g, OP_MAX, mul(g, scale, k(g, 0.5)), k(g, 1))));
  graph_add_update(g, good, g_where(g, finite, g_where(g, grow, k(g, 0), good1), k(g, 0)));
  graph_add_output(g, "step_skipped", g_where(g, finite, k(g, 0), k(g, 1)));
}

// The model's buffers are the STATE leaves of the forward graph; the
// optimizer's state shares their namespace (checkpoints hold both), so a
// buffer may not take a name the optimizer gives its own: step, total_steps,
// loss_scale, loss_scale_good, P.m, P.v, P.momentum. true after reporting.
static bool buffers_clash(Graph *g) {
  static const char *const fixed[] = {"step", "total_steps", "loss_scale", "loss_scale_good"};
  static const char *const per_param[] = {"m", "v", "momentum"};
  for (int i = 0; i < g->n; i++) {
    const Node *b = g->nodes[i];
    if (b->op != OP_STATE) continue;
    const char *clash = NULL;
    for (size_t k = 0; k < sizeof fixed / sizeof *fixed; k++)
      if (!strcmp(b->name, fixed[k])) clash = b->name;
    for (int j = 0; j < g->n && !clash; j++) {
      const Node *p = g->nodes[j];
      size_t n = strlen(p->name ? p->name : "");
      if (p->op != OP_PARAM || strncmp(b->name, p->name, n) || b->name[n] != '.') continue;
      for (size_t k = 0; k < sizeof per_param / sizeof *per_param; k++)
        if (!strcmp(b->name + n + 1, per_param[k])) clash = b->name;
    }
    if (clash) {
      diag_error(g->diag, b->loc, "buffer '%s' has the name of the optimizer's state '%s'; rename the buffer",
                 b->name, clash);
      return true;
    }
  }
  return false;
}

// The gradient of each trainable parameter that the loss reaches, as the
// optimizer of train_apply reads it: an f32 input "grad.P" of P's shape. The
// backward pass built beside them only told which parameters have one; with
// nothing reading it, it is pruned.
static void grads_as_inputs(Graph *g, Node **grads, int n0) {
  for (int i = 0; i < n0; i++) {
    Node *p = g->nodes[i];
    if (!grads[i] || p->op != OP_PARAM || p->frozen) continue;
    grads[i] = g_leaf(g, OP_INPUT, DT_F32, p->shape, arena_printf(g->arena, "grad.%s", p->name));
  }
}

// train_grad's outputs: each trainable parameter's gradient, true (unscaled)
// and f32, as "grad.P"; the optimizer is left to train_apply.
static void grads_as_outputs(Graph *g, Node *const *grads, int n0) {
  for (int i = 0; i < n0; i++) {
    Node *p = g->nodes[i];
    if (!grads[i] || p->op != OP_PARAM || p->frozen) continue;
    graph_add_output(g, arena_printf(g->arena, "grad.%s", p->name), g_cast(g, grads[i], DT_F32));
  }
}

// train_apply keeps none of the forward graph's writes and outputs: the
// buffers' updates belong to train_grad, which ran the forward pass.
static void forward_drop(Graph *g) {
  g->nupdates = 0;
  g->noutputs = 0;
}

int optim_append(Graph *g, const TrainConfig *c, int64_t total_steps) {
  return optim_append_part(g, c, total_steps, OPTIM_WHOLE);
}

int optim_append_part(Graph *g, const TrainConfig *c, int64_t total_steps, OptimPart part) {
  if (!g->loss) {
    diag_plain(g->diag, "the model has no loss, so there is nothing to train");
    return -1;
  }
  if (buffers_clash(g)) return -1;
  if (groups_assign(g, c)) return -1;
  int errors = g->diag->errors;
  const char *scope = g->scope;
  g->scope = "optimizer";
  // fp16: the loss is scaled so that small gradients survive in f16
  Node *loss_scale = c->precision == PREC_FP16 ? loss_scale_state(g) : NULL;
  g->loss_grad = loss_scale;
  g->scope = scope;
  int n0 = g->n;
  Node **grads = autodiff(g, NULL, 0);
  g->loss_grad = NULL;
  if (g->diag->errors > errors) {
    free(grads);
    return -1;
  }
  g->scope = "optimizer";
  if (part == OPTIM_APPLY) {
    forward_drop(g);
    grads_as_inputs(g, grads, n0);
  }
  if (loss_scale && part != OPTIM_APPLY)   // every use below (clipping, the updates) sees the true gradient
    for (int i = 0; i < n0; i++)
      if (grads[i]) grads[i] = dvd(g, g_cast(g, grads[i], DT_F32), loss_scale);
  if (part == OPTIM_GRADS) {
    grads_as_outputs(g, grads, n0);
    g->scope = scope;
    free(grads);
    return 0;
  }
  Node *finite = loss_scale ? all_finite(g, grads, n0) : NULL;
  int first_update = g->nupdates;
  // the step counter: an i64, exact at any count (an f32 one stops at 2^24);
  // the schedule and the bias corrections compute with t = step + 1 as f32
  Node *step = g_leaf(g, OP_STATE, DT_I64, (Shape){0}, "step");
  step->p.param.init = INIT_ZEROS;
  Node *next = add(g, step, g_const(g, 1, DT_I64, (Shape){0}));
  graph_add_update(g, step, next);
  Node *t = g_cast(g, next, DT_F32);
  Node *lr = learning_rate(g, c, t, total_steps);
  graph_add_output(g, "lr", lr);
  // clipping: scale = min(1, max_norm / (||g|| + 1e-6)) over all gradients
  Node *scale = NULL;
  if (c->clip_grad_norm > 0) {
    Node *sq = NULL;
    for (int i = 0; i < n0; i++) {
      if (!grads[i]) continue;
      Node *gi = g_cast(g, grads[i], DT_F32);
      Node *s = g_reduce(g, OP_SUM, mul(g, gi, gi), gi->shape.ndim ? (1u << gi->shape.ndim) - 1 : 0, false);
      sq = sq ? add(g, sq, s) : s;
    }
    Node *norm = g_unary(g, OP_SQRT, sq ? sq : k(g, 0));
    graph_add_output(g, "grad_norm", norm);
    scale = g_binary(g, OP_MIN, k(g, 1), dvd(g, k(g, c->clip_grad_norm), add(g, norm, k(g, 1e-6))));
  }
  bool adamw = !strcmp(c->optimizer, "adamw"), adam = adamw || !strcmp(c->optimizer, "adam");
  Node *bc1 = NULL, *bc2 = NULL;
  if (adam) {   // bias corrections 1 - beta^t
    bc1 = sub(g, k(g, 1), g_binary(g, OP_POW, k(g, c->beta1), t));
    bc2 = sub(g, k(g, 1), g_binary(g, OP_POW, k(g, c->beta2), t));
  }
  for (int i = 0; i < n0; i++) {
    Node *p = g->nodes[i];
    if (p->op != OP_PARAM || p->frozen) continue;
    g->scope = p->scope;
    g->loc = p->loc;
    Node *gr = grads[i] ? g_cast(g, grads[i], DT_F32) : g_const(g, 0, DT_F32, p->shape);
    if (part == OPTIM_WHOLE) graph_add_output(g, arena_printf(g->arena, "grad.%s", p->name), gr);
    // A parameter the loss does not reach has no gradient (PyTorch: grad is
    // None): no step at all, so no weight decay, momentum or moments either.
    if (!grads[i]) continue;
    // the settings of its group; a group's lr scales the schedule by lr_group / lr
    const ParamGroup *grp = optim_group_of(c, p->name);
    double wd = grp ? grp->weight_decay : c->weight_decay, momentum = grp ? grp->momentum : c->momentum;
    double beta1 = grp ? grp->beta1 : c->beta1, beta2 = grp ? grp->beta2 : c->beta2, eps = grp ? grp->eps : c->eps;
    bool nesterov = grp ? grp->nesterov : c->nesterov;
    Node *plr = grp && grp->lr != c->lr ? mul(g, lr, k(g, grp->lr / c->lr)) : lr;
    if (scale) gr = mul(g, gr, scale);
    Node *w = g_cast(g, p, DT_F32);
    if (wd != 0 && !adamw) gr = add(g, gr, mul(g, w, k(g, wd)));   // L2
    Node *update;
    if (adam) {
      Node *pbc1 = beta1 == c->beta1 ? bc1 : sub(g, k(g, 1), g_binary(g, OP_POW, k(g, beta1), t));
      Node *pbc2 = beta2 == c->beta2 ? bc2 : sub(g, k(g, 1), g_binary(g, OP_POW, k(g, beta2), t));
      Node *m = state(g, arena_printf(g->arena, "%s.m", p->name), p->shape);
      m->p.param.at = p->p.param.at;
      Node *v = state(g, arena_printf(g->arena, "%s.v", p->name), p->shape);
      v->p.param.at = p->p.param.at;
      // 1 - beta from beta as f32 holds it, as the bias corrections' beta^t
      // reads it: the two agree, so a first step is PyTorch's to rounding
      // (1 - 0.999 in double against 1 - 0.999f made early steps 6e-6 small)
      Node *m1 = add(g, mul(g, m, k(g, beta1)), mul(g, gr, k(g, 1 - (double)(float)beta1)));
      Node *v1 = add(g, mul(g, v, k(g, beta2)), mul(g, mul(g, gr, gr), k(g, 1 - (double)(float)beta2)));
      graph_add_update(g, m, m1);
      graph_add_update(g, v, v1);
      Node *mhat = dvd(g, m1, pbc1), *vhat = dvd(g, v1, pbc2);
      update = mul(g, plr, dvd(g, mhat, add(g, g_unary(g, OP_SQRT, vhat), k(g, eps))));
      if (adamw && wd != 0)   // decoupled: p * (1 - lr * wd)
        w = mul(g, w, sub(g, k(g, 1), mul(g, plr, k(g, wd))));
    } else {
      if (momentum != 0) {
        Node *buf = state(g, arena_printf(g->arena, "%s.momentum", p->name), p->shape);
        buf->p.param.at = p->p.param.at;
        Node *b1 = add(g, mul(g, buf, k(g, momentum)), gr);
        graph_add_update(g, buf, b1);
        gr = nesterov ? add(g, gr, mul(g, b1, k(g, momentum))) : b1;
      }
      update = mul(g, plr, gr);
    }
    graph_add_update(g, p, g_cast(g, sub(g, w, update), p->dtype));
  }
  if (loss_scale) skip_unless_finite(g, loss_scale, finite, first_update);
  if (part == OPTIM_APPLY) g->loss = NULL;   // its inputs are the gradients alone
  g->scope = scope;
  free(grads);
  return 0;
}
