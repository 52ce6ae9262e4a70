// train.c: checks a train block against its schema and stores it.
//
//   train {
//     optimizer = adamw(lr = 1e-3, weight_decay = 0.01)
//     schedule  = cosine(warmup = 100)
//     precision = bf16
//     epochs    = 5
//     data train { x = idx("images.gz", scale = 1 / 255); y = idx("labels.gz") }
//     group "*.b" { weight_decay = 0 }
//     freeze = ("enc.*",)
//   }
//
// Values are compile-time constants: literals, arithmetic on them, and the
// model's sizes. Every key, every optimizer and schedule argument and every
// data source is known here; anything else is an error with a suggestion.
// An expression schedule is the exception: a function of the step, checked
// and folded here into a SchedExpr that optim.c builds into the step graph.
// Group patterns are matched against parameter names in optim.c, where the
// names are known.
#include "compiler.h"

#include <math.h>
#include <string.h>

typedef enum { V_BAD, V_INT, V_FLOAT, V_BOOL, V_STR, V_IDENT, V_CALL } ValKind;

typedef struct {
  ValKind kind;
  int64_t i;
  double f;       // V_INT and V_FLOAT both set f
  const char *s;  // V_STR, V_IDENT, V_CALL: the text or name
} Val;

typedef struct {
  Compilation *c;
  Diag *d;
  const Ast *model;
  TrainConfig *cfg;
} Checker;

static const char *kind_name[] = {"?", "an integer", "a number", "a boolean", "a string",
                                  "a name", "a call"};

// ---- constant values

static Val eval(Checker *t, const Ast *e, int depth);

static Val size_value(Checker *t, const Ast *e, int depth) {
  if (t->model)
    for (int i = 0; i < t->model->list.n; i++) {
      const Ast *size = t->model->list.items[i];
      if (strcmp(size->name, e->name) != 0) continue;
      if (size->a && depth < 16) return eval(t, size->a, depth + 1);
      diag_error(t->d, e->span, "model size '%s' has no default to use here", e->name);
      return (Val){V_BAD};
    }
  return (Val){V_IDENT, .s = e->name};
}

static Val eval(Checker *t, const Ast *e, int depth) {
  switch (e->kind) {
  case N_INT: return (Val){V_INT, e->ival, (double)e->ival, NULL};
  case N_FLOAT: return (Val){V_FLOAT, 0, e->fval, NULL};
  case N_BOOL: return (Val){V_BOOL, e->ival, (double)e->ival, NULL};
  case N_STR: return (Val){V_STR, .s = e->str};
  case N_NAME: return size_value(t, e, depth);
  case N_CALL: return (Val){V_CALL, .s = e->a->kind == N_NAME ? e->a->name : "?"};
  case N_UNARY: {
    Val v = eval(t, e->a, depth + 1);
    if (e->op == '+' && (v.kind == V_INT || v.kind == V_FLOAT)) return v;
    if (e->op == '-' && v.kind == V_INT && v.i != INT64_MIN) return (Val){V_INT, -v.i, -v.f, NULL};
    if (e->op == '-' && v.kind == V_FLOAT) return (Val){V_FLOAT, 0, -v.f, NULL};
    break;
  }
  case N_BINARY: {
    Val a = eval(t, e->a, depth + 1), b = eval(t, e->b, depth + 1);
    bool num = (a.kind == V_INT || a.kind == V_FLOAT) && (b.kind == V_INT || b.kind == V_FLOAT);
    if (!num) break;
    bool ints = a.kind == V_INT && b.kind == V_INT;
    int64_t ri;
    switch (e->op) {
    case '+':
      if (ints && !__builtin_add_overflow(a.i, b.i, &ri)) return (Val){V_INT, ri, (double)ri, NULL};
      return (Val){V_FLOAT, 0, a.f + b.f, NULL};
    case '-':
      if (ints && !__builtin_sub_overflow(a.i, b.i, &ri)) return (Val){V_INT, ri, (double)ri, NULL};
      return (Val){V_FLOAT, 0, a.f - b.f, NULL};
    case '*':
      if (ints && !__builtin_mul_overflow(a.i, b.i, &ri)) return (Val){V_INT, ri, (double)ri, NULL};
      return (Val){V_FLOAT, 0, a.f * b.f, NULL};
    case '/':
      if (b.f == 0) break;
      return (Val){V_FLOAT, 0, a.f / b.f, NULL};
    case AOP_POW:
      if (ints && b.i >= 0) {   // exact while it fits
        int64_t p = 1;
        bool over = false;
        for (int64_t k = 0; k < b.i && !over; k++) over = __builtin_mul_overflow(p, a.i, &p);
        if (!over) return (Val){V_INT, p, (double)p, NULL};
      }
      return (Val){V_FLOAT, 0, pow(a.f, b.f), NULL};
    case AOP_FLOORDIV:
      if (b.f == 0) break;
      if (ints) {
        int64_t q = a.i / b.i;
        if (a.i % b.i != 0 && (a.i < 0) != (b.i < 0)) q--;
        return (Val){V_INT, q, (double)q, NULL};
      }
      return (Val){V_FLOAT, 0, floor(a.f / b.f), NULL};
    }
    break;
  }
  default:
    break;
  }
  diag_error(t->d, e->span, "this must be a constant: a number, a string, a name or arithmetic "
             "on numbers and model sizes");
  return (Val){V_BAD};
}

// Reports unless v is of the wanted kind; an integer passes where a number is wanted.
static bool want(Checker *t, const Ast *e, Val v, ValKind kind, const char *what) {
  if (v.kind == V_BAD) return false;
  if (v.kind == kind || (kind == V_FLOAT && v.kind == V_INT)) return true;
  diag_error(t->d, e->span, "%s takes %s, not %s", what, kind_name[kind], kind_name[v.kind]);
  return false;
}

static bool want_positive(Checker *t, const Ast *e, Val v, ValKind kind, const char *what) {
  if (!want(t, e, v, kind, what)) return false;
  if (v.f > 0) return true;
  diag_error(t->d, e->span, "%s must be greater than 0", what);
  return false;
}

// ---- calls with keyword arguments: optimizer, schedule, data sources

typedef struct {
  const char *name;
  const char *params[6];   // the first may also be given positionally
  int required;            // how many leading params have no default
} CallSpec;

static const CallSpec optimizers[] = {
    {"sgd", {"lr", "momentum", "nesterov", "weight_decay"}, 1},
    {"adam", {"lr", "beta1", "beta2", "eps", "weight_decay"}, 1},
    {"adamw", {"lr", "beta1", "beta2", "eps", "weight_decay"}, 1},
};
static const CallSpec schedules[] = {
    {"constant", {"warmup"}, 0},
    {"step", {"every", "gamma", "warmup"}, 1},
    {"cosine", {"warmup", "min_lr"}, 0},
    {"linear", {"warmup", "decay_to"}, 0},
    {"inverse_sqrt", {"warmup"}, 1},
};
#define NSCHEDULES (int)(sizeof schedules / sizeof *schedules)
static const CallSpec sources[] = {
    {"idx", {"path", "scale"}, 1},
    {"csv", {"path", "scale", "columns"}, 1},
    {"tokens", {"path", "dtype", "from", "to"}, 1},
    {"text", {"path", "from", "to"}, 1},
    {"npy", {"path", "scale"}, 1},
};
#define NSOURCES (int)(sizeof sources / sizeof *sources)

typedef struct {
  const CallSpec *spec;
  const Ast *args[6];   // by parameter
} Call;

static const CallSpec *find_spec(Checker *t, const Ast *at, const char *name, const CallSpec *specs,
                                 int n, const char *what) {
  char list[128] = "";
  for (int i = 0; i < n; i++) {
    if (strcmp(specs[i].name, name) == 0) return &specs[i];
    strncat(list, i == 0 ? "" : i == n - 1 ? " or " : ", ", sizeof list - strlen(list) - 1);
    strncat(list, specs[i].name, sizeof list - strlen(list) - 1);
  }
  diag_error(t->d, at->span, "unknown %s '%s' (it is %s)", what, name, list);
  return NULL;
}

// Matches a call's arguments to its spec; false when it is not such a call.
static bool match_call(Checker *t, const Ast *e, const CallSpec *specs, int n, const char *what,
                       Call *out) {
  memset(out, 0, sizeof *out);
  const Ast *callee = e->kind == N_CALL ? e->a : e;
  if (callee->kind != N_NAME) {
    diag_error(t->d, e->span, "%s must be a name or a call such as %s(...)", what, specs[0].name);
    return false;
  }
  out->spec = find_spec(t, callee, callee->name, specs, n, what);
  if (!out->spec) return false;
  if (e->kind != N_CALL) return out->spec->required == 0 ||
      (diag_error(t->d, e->span, "%s '%s' needs argument '%s'", what, callee->name,
                  out->spec->params[0]), false);
  if (e->c) diag_error(t->d, e->c->span, "'as' has no meaning here");
  int pos = 0;
  for (int i = 0; i < e->list.n; i++) {
    const Ast *arg = e->list.items[i];
    int k = -1;
    if (arg->kind != N_KWARG) {
      if (pos > 0 || i > 0) {
        diag_error(t->d, arg->span, "only the first argument of '%s' may be given without its "
                   "name ('%s')", callee->name, out->spec->params[0]);
        continue;
      }
      k = pos++;
    } else {
      for (int j = 0; j < 6 && out->spec->params[j]; j++)
        if (strcmp(out->spec->params[j], arg->name) == 0) k = j;
      if (k < 0) {
        char list[160] = "";
        for (int j = 0; j < 6 && out->spec->params[j]; j++) {
          strncat(list, j ? ", " : "", sizeof list - strlen(list) - 1);
          strncat(list, out->spec->params[j], sizeof list - strlen(list) - 1);
        }
        diag_error(t->d, arg->span, "%s '%s' has no argument '%s' (it takes %s)", what,
                   callee->name, arg->name, list);
        continue;
      }
    }
    if (out->args[k]) {
      diag_error(t->d, arg->span, "argument '%s' is given twice", out->spec->params[k]);
      continue;
    }
    out->args[k] = arg->kind == N_KWARG ? arg->a : arg;
  }
  for (int j = 0; j < out->spec->required; j++)
    if (!out->args[j]) {
      diag_error(t->d, e->span, "%s '%s' needs argument '%s'", what, callee->name,
                 out->spec->params[j]);
      return false;
    }
  return true;
}

// Reads argument k of a matched call as a number into *dst (unchanged when absent).
static void arg_number(Checker *t, const Call *call, int k, double *dst, bool positive) {
  const Ast *e = call->args[k];
  if (!e) return;
  char what[64];
  snprintf(what, sizeof what, "'%s'", call->spec->params[k]);
  Val v = eval(t, e, 0);
  if (positive ? want_positive(t, e, v, V_FLOAT, what) : want(t, e, v, V_FLOAT, what)) *dst = v.f;
}

static void arg_int(Checker *t, const Call *call, int k, int64_t *dst) {
  const Ast *e = call->args[k];
  if (!e) return;
  char what[64];
  snprintf(what, sizeof what, "'%s'", call->spec->params[k]);
  Val v = eval(t, e, 0);
  if (want(t, e, v, V_INT, what)) {
    if (v.i < 0) diag_error(t->d, e->span, "%s cannot be negative", what);
    else *dst = v.i;
  }
}

// ---- keys

// Reads an optimizer's arguments (args, by parameter of spec) into h, whose
// fields keep their values where an argument is absent. The optimizer call
// and a group block share it, so both accept the same values.
static void optimizer_args(Checker *t, const CallSpec *spec, const Ast *const args[6], ParamGroup *h) {
  Call call = {spec, {0}};
  memcpy(call.args, args, sizeof call.args);
  arg_number(t, &call, 0, &h->lr, true);
  int wd = 4;
  if (spec == &optimizers[0]) {
    arg_number(t, &call, 1, &h->momentum, false);
    if (args[1] && (h->momentum < 0 || h->momentum >= 1))
      diag_error(t->d, args[1]->span, "'momentum' must be in [0, 1)");
    if (args[2]) {
      Val v = eval(t, args[2], 0);
      if (want(t, args[2], v, V_BOOL, "'nesterov'")) h->nesterov = v.i;
    }
    wd = 3;
  } else {
    arg_number(t, &call, 1, &h->beta1, false);
    arg_number(t, &call, 2, &h->beta2, false);
    arg_number(t, &call, 3, &h->eps, true);
    for (int k = 1; k <= 2; k++) {
      double beta = k == 1 ? h->beta1 : h->beta2;
      if (args[k] && (beta < 0 || beta >= 1))
        diag_error(t->d, args[k]->span, "'%s' must be in [0, 1)", spec->params[k]);
    }
  }
  arg_number(t, &call, wd, &h->weight_decay, false);
  if (args[wd] && h->weight_decay < 0)
    diag_error(t->d, args[wd]->span, "'weight_decay' cannot be negative");
}

static ParamGroup optimizer_settings(const TrainConfig *cfg) {
  return (ParamGroup){.lr = cfg->lr, .momentum = cfg->momentum, .beta1 = cfg->beta1, .beta2 = cfg->beta2,
                      .eps = cfg->eps, .weight_decay = cfg->weight_decay, .nesterov = cfg->nesterov};
}

static void key_optimizer(Checker *t, const Ast *e) {
  Call call;
  if (!match_call(t, e, optimizers, 3, "optimizer", &call)) return;
  TrainConfig *cfg = t->cfg;
  cfg->optimizer = call.spec->name;
  if (call.spec == &optimizers[2]) cfg->weight_decay = 0.01;
  ParamGroup h = optimizer_settings(cfg);
  optimizer_args(t, call.spec, call.args, &h);
  cfg->lr = h.lr, cfg->momentum = h.momentum, cfg->nesterov = h.nesterov;
  cfg->beta1 = h.beta1, cfg->beta2 = h.beta2, cfg->eps = h.eps, cfg->weight_decay = h.weight_decay;
}

// ---- schedules written as expressions of the step

static const struct { const char *name; Op op; int arity; } sched_fns[] = {
    {"min", OP_MIN, 2}, {"max", OP_MAX, 2}, {"sqrt", OP_SQRT, 1}, {"exp", OP_EXP, 1},
    {"log", OP_LOG, 1}, {"sin", OP_SIN, 1}, {"cos", OP_COS, 1},   {"abs", OP_ABS, 1},
    {"floor", OP_FLOOR, 1}, {"where", OP_WHERE, 3},
};
#define NSCHED_FNS (int)(sizeof sched_fns / sizeof *sched_fns)
static const char *sched_names[] = {"step", "lr", "total_steps", "pi"};

static bool sched_builtin(const Ast *e) {
  const Ast *callee = e->kind == N_CALL ? e->a : e;
  if (callee->kind != N_NAME) return false;
  for (int i = 0; i < NSCHEDULES; i++)
    if (!strcmp(callee->name, schedules[i].name)) return true;
  return false;
}

static void sched_unknown(Checker *t, const Ast *e, const char *name) {
  const char *best = NULL;
  int bestd = 3;
  for (int i = 0; i < 4; i++) {
    int d = str_distance(name, sched_names[i]);
    if (d < bestd) best = sched_names[i], bestd = d;
  }
  for (int i = 0; i < NSCHED_FNS + NSCHEDULES; i++) {
    const char *cand = i < NSCHED_FNS ? sched_fns[i].name : schedules[i - NSCHED_FNS].name;
    int d = str_distance(name, cand);
    if (d < bestd) best = cand, bestd = d;
  }
  if (best)
    diag_error(t->d, e->span, "unknown name '%s' in the schedule; did you mean '%s'?", name, best);
  else
    diag_error(t->d, e->span, "unknown name '%s' in the schedule (an expression schedule uses step, "
               "lr, total_steps, pi, the model's sizes, numbers and min, max, sqrt, exp, log, sin, "
               "cos, abs, floor, where; the named schedules are constant, step, cosine, linear and "
               "inverse_sqrt)", name);
}

static SchedExpr *sx_new(Checker *t, Op op, double value) {
  SchedExpr *x = arena_alloc(&t->c->arena, sizeof *x);
  *x = (SchedExpr){.op = op, .value = value};
  return x;
}

// The value of op on constants, as the graph would compute it in f64.
static double sx_fold(Op op, double a, double b, double c) {
  switch ((int)op) {
  case OP_NEG: return -a;
  case OP_SQRT: return sqrt(a);
  case OP_EXP: return exp(a);
  case OP_LOG: return log(a);
  case OP_SIN: return sin(a);
  case OP_COS: return cos(a);
  case OP_ABS: return fabs(a);
  case OP_FLOOR: return floor(a);
  case OP_ADD: return a + b;
  case OP_SUB: return a - b;
  case OP_MUL: return a * b;
  case OP_DIV: return a / b;
  case OP_POW: return pow(a, b);
  case OP_MIN: return a < b ? a : b;
  case OP_MAX: return a > b ? a : b;
  case OP_LT: return a < b;
  case OP_LE: return a <= b;
  case OP_GT: return a > b;
  case OP_GE: return a >= b;
  case OP_EQ: return a == b;
  case OP_NE: return a != b;
  case OP_WHERE: return a != 0 ? b : c;
  }
  UNREACHABLE();
}

// op(a, b, c), folded when every operand is a constant.
static SchedExpr *sx_op(Checker *t, Op op, SchedExpr *a, SchedExpr *b, SchedExpr *c) {
  if (a->op == OP_CONST && (!b || b->op == OP_CONST) && (!c || c->op == OP_CONST))
    return sx_new(t, OP_CONST, sx_fold(op, a->value, b ? b->value : 0, c ? c->value : 0));
  SchedExpr *x = sx_new(t, op, 0);
  x->a = a, x->b = b, x->c = c;
  return x;
}

// A schedule expression checked and folded; NULL after an error. *is_bool
// says whether it is a comparison (only where's condition may be one).
static SchedExpr *sched_expr(Checker *t, const Ast *e, bool *is_bool) {
  *is_bool = false;
  switch (e->kind) {
  case N_INT: return sx_new(t, OP_CONST, (double)e->ival);
  case N_FLOAT: return sx_new(t, OP_CONST, e->fval);
  case N_NAME: {
    for (int i = 0; i < 3; i++)
      if (!strcmp(e->name, sched_names[i])) {
        SchedExpr *x = sx_new(t, OP_INPUT, 0);
        x->name = sched_names[i];
        return x;
      }
    if (!strcmp(e->name, "pi")) return sx_new(t, OP_CONST, M_PI);
    if (t->model)
      for (int i = 0; i < t->model->list.n; i++)
        if (!strcmp(t->model->list.items[i]->name, e->name)) {
          Val v = size_value(t, e, 0);
          return v.kind == V_INT || v.kind == V_FLOAT ? sx_new(t, OP_CONST, v.f) : NULL;
        }
    sched_unknown(t, e, e->name);
    return NULL;
  }
  case N_UNARY: {
    if (e->op == AOP_NOT) break;
    bool b;
    SchedExpr *a = sched_expr(t, e->a, &b);
    if (!a) return NULL;
    if (b) break;
    return e->op == '-' ? sx_op(t, OP_NEG, a, NULL, NULL) : a;
  }
  case N_BINARY: {
    static const struct { int aop; Op op; bool cmp; } ops[] = {
        {'+', OP_ADD, 0}, {'-', OP_SUB, 0}, {'*', OP_MUL, 0}, {'/', OP_DIV, 0}, {AOP_POW, OP_POW, 0},
        {AOP_FLOORDIV, OP_DIV, 0}, {'%', OP_DIV, 0}, {'<', OP_LT, 1}, {AOP_LE, OP_LE, 1},
        {'>', OP_GT, 1}, {AOP_GE, OP_GE, 1}, {AOP_EQ, OP_EQ, 1}, {AOP_NE, OP_NE, 1},
    };
    int k = -1;
    for (int i = 0; i < (int)(sizeof ops / sizeof *ops); i++)
      if (ops[i].aop == e->op) k = i;
    if (k < 0) {
      diag_error(t->d, e->span, "'%s' has no meaning in a schedule; it is a number per step",
                 ast_op_name(e->op));
      return NULL;
    }
    bool ba, bb;
    SchedExpr *a = sched_expr(t, e->a, &ba), *b = sched_expr(t, e->b, &bb);
    if (!a || !b) return NULL;
    if (ba || bb) {
      diag_error(t->d, (ba ? e->a : e->b)->span, "a comparison is not a number; only the "
                 "condition of where(cond, a, b) may be one");
      return NULL;
    }
    if ((e->op == '/' || e->op == AOP_FLOORDIV || e->op == '%') && b->op == OP_CONST && b->value == 0) {
      diag_error(t->d, e->b->span, "division by zero in the schedule");
      return NULL;
    }
    *is_bool = ops[k].cmp;
    SchedExpr *x = sx_op(t, ops[k].op, a, b, NULL);
    if (e->op == AOP_FLOORDIV) return sx_op(t, OP_FLOOR, x, NULL, NULL);
    if (e->op == '%')   // Python's: a - floor(a / b) * b, the sign of b
      return sx_op(t, OP_SUB, a, sx_op(t, OP_MUL, sx_op(t, OP_FLOOR, x, NULL, NULL), b, NULL), NULL);
    return x;
  }
  case N_CALL: {
    const Ast *callee = e->a;
    if (callee->kind != N_NAME) break;
    int f = -1;
    for (int i = 0; i < NSCHED_FNS; i++)
      if (!strcmp(sched_fns[i].name, callee->name)) f = i;
    if (f < 0) {
      sched_unknown(t, callee, callee->name);
      return NULL;
    }
    if (e->c) diag_error(t->d, e->c->span, "'as' has no meaning here");
    if (e->list.n != sched_fns[f].arity) {
      diag_error(t->d, e->span, "'%s' in a schedule takes %d argument%s, here given %d", callee->name,
                 sched_fns[f].arity, sched_fns[f].arity == 1 ? "" : "s", e->list.n);
      return NULL;
    }
    SchedExpr *args[3] = {0};
    for (int i = 0; i < e->list.n; i++) {
      const Ast *arg = e->list.items[i];
      if (arg->kind == N_KWARG) {
        diag_error(t->d, arg->span, "'%s' in a schedule takes no keyword arguments", callee->name);
        return NULL;
      }
      bool b;
      if (!(args[i] = sched_expr(t, arg, &b))) return NULL;
      bool cond = sched_fns[f].op == OP_WHERE && i == 0;
      if (b != cond) {
        diag_error(t->d, arg->span, cond ? "the condition of where must be a comparison such as "
                   "step < 100" : "a comparison is not a number; only the condition of where(cond, a, b) "
                   "may be one");
        return NULL;
      }
    }
    return sx_op(t, sched_fns[f].op, args[0], args[1], args[2]);
  }
  case N_TUPLE:
    diag_error(t->d, e->span, "a tuple is not a scalar; the schedule is one number per step");
    return NULL;
  case N_STR:
    diag_error(t->d, e->span, "a string is not a number; the schedule is one number per step");
    return NULL;
  default:
    break;
  }
  diag_error(t->d, e->span, "the schedule is a name such as cosine, a call such as cosine(warmup = 100), "
             "or a scalar expression of step and lr; this is none of them");
  return NULL;
}

static void key_schedule(Checker *t, const Ast *e) {
  TrainConfig *cfg = t->cfg;
  if (!sched_builtin(e)) {
    bool is_bool;
    SchedExpr *x = sched_expr(t, e, &is_bool);
    if (x && is_bool)
      diag_error(t->d, e->span, "a comparison is not a number; the schedule is the learning rate at each step");
    else if (x) {
      cfg->schedule = "expression";
      cfg->schedule_expr = x;
      cfg->schedule_span = e->span;
    }
    return;
  }
  Call call;
  if (!match_call(t, e, schedules, NSCHEDULES, "schedule", &call)) return;
  cfg->schedule = call.spec->name;
  if (call.spec == &schedules[0]) {
    arg_int(t, &call, 0, &cfg->warmup);
  } else if (call.spec == &schedules[1]) {
    arg_int(t, &call, 0, &cfg->step_every);
    if (call.args[0] && cfg->step_every == 0)
      diag_error(t->d, call.args[0]->span, "'every' must be greater than 0");
    arg_number(t, &call, 1, &cfg->gamma, true);
    arg_int(t, &call, 2, &cfg->warmup);
  } else if (call.spec == &schedules[2]) {
    arg_int(t, &call, 0, &cfg->warmup);
    arg_number(t, &call, 1, &cfg->min_lr, false);
    if (cfg->min_lr < 0) diag_error(t->d, call.args[1]->span, "'min_lr' cannot be negative");
  } else if (call.spec == &schedules[3]) {
    arg_int(t, &call, 0, &cfg->warmup);
    arg_number(t, &call, 1, &cfg->decay_to, false);
    if (call.args[1] && (cfg->decay_to < 0 || cfg->decay_to > 1))
      diag_error(t->d, call.args[1]->span, "'decay_to' is a fraction of lr in [0, 1]");
  } else {
    arg_int(t, &call, 0, &cfg->warmup);
    if (call.args[0] && cfg->warmup == 0)
      diag_error(t->d, call.args[0]->span, "'warmup' of inverse_sqrt must be greater than 0");
  }
}

static void key_precision(Checker *t, const Ast *e) {
  static const char *names[] = {"fp32", "tf32", "bf16", "fp16"};
  Val v = eval(t, e, 0);
  if (v.kind == V_IDENT || v.kind == V_STR)
    for (int i = 0; i < 4; i++)
      if (strcmp(v.s, names[i]) == 0) {
        t->cfg->precision = (Precision)i;
        return;
      }
  if (v.kind != V_BAD)
    diag_error(t->d, e->span, "precision is fp32, tf32, bf16 or fp16");
}

static void key_count(Checker *t, const Ast *e, const char *key, int64_t *dst) {
  Val v = eval(t, e, 0);
  char what[64];
  snprintf(what, sizeof what, "'%s'", key);
  if (want_positive(t, e, v, V_INT, what)) *dst = v.i;
}

static void key_clip(Checker *t, const Ast *e) {
  Val v = eval(t, e, 0);
  if (want_positive(t, e, v, V_FLOAT, "'clip_grad_norm'")) t->cfg->clip_grad_norm = v.f;
}

static void key_seed(Checker *t, const Ast *e) {
  Val v = eval(t, e, 0);
  if (!want(t, e, v, V_INT, "'seed'")) return;
  if (v.i < 0) diag_error(t->d, e->span, "'seed' cannot be negative");
  else t->cfg->seed = v.i;
}

static const char *keys[] = {"optimizer", "schedule", "precision", "batch", "epochs", "steps",
                             "clip_grad_norm", "seed", "checkpoint_every", "freeze"};
enum { KEY_FREEZE = 9 };

static void check_key(Checker *t, const Ast *k) {
  const char *key = k->name;
  if (!strcmp(key, "optimizer")) key_optimizer(t, k->a);
  else if (!strcmp(key, "schedule")) key_schedule(t, k->a);
  else if (!strcmp(key, "precision")) key_precision(t, k->a);
  else if (!strcmp(key, "batch")) key_count(t, k->a, key, &t->cfg->batch);
  else if (!strcmp(key, "epochs")) key_count(t, k->a, key, &t->cfg->epochs);
  else if (!strcmp(key, "steps")) key_count(t, k->a, key, &t->cfg->steps);
  else if (!strcmp(key, "clip_grad_norm")) key_clip(t, k->a);
  else if (!strcmp(key, "seed")) key_seed(t, k->a);
  else if (!strcmp(key, "checkpoint_every")) key_count(t, k->a, key, &t->cfg->checkpoint_every);
  else if (!strcmp(key, "freeze")) return;   // with the groups, once the optimizer is known
  else {
    const char *best = NULL;
    int bestd = 3;
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
      int d = str_distance(key, keys[i]);
      if (d < bestd) best = keys[i], bestd = d;
    }
    if (best) diag_error(t->d, k->span, "unknown train setting '%s'; did you mean '%s'?", key, best);
    else diag_error(t->d, k->span, "unknown train setting '%s' (the settings are optimizer, "
                    "schedule, precision, batch, epochs, steps, clip_grad_norm, seed, "
                    "checkpoint_every, freeze, data blocks and group blocks)", key);
  }
}

// ---- data blocks

static bool is_sequence(const Ast *e) { return e->kind == N_TUPLE || e->kind == N_LIST; }

static const Ast *model_input(const Ast *model, const char *name) {
  for (int i = 0; model && i < model->b->list.n; i++) {
    const Ast *s = model->b->list.items[i];
    if (s->kind == N_INPUT && strcmp(s->name, name) == 0) return s;
  }
  return NULL;
}

// One item of csv's columns onto buf (n bytes, used *len): a name or a
// comma-separated string of them (and of indices and lo..hi ranges, which
// the runtime reads), or an index. False after reporting a bad item.
static bool csv_column_item(Checker *t, const Ast *e, char *buf, size_t n, size_t *len) {
  char item[64];
  const char *text = item;
  if (e->kind == N_INT && e->ival >= 0) {
    snprintf(item, sizeof item, "%lld", (long long)e->ival);
  } else if (e->kind == N_STR) {
    text = e->str;
    bool empty = !*text || strstr(text, ",,") || *text == ',' || text[strlen(text) - 1] == ',';
    if (empty || strpbrk(text, ":\n")) {
      diag_error(t->d, e->span, empty ? "a column name cannot be empty"
                                      : "a column name cannot hold ':' or a line break");
      return false;
    }
  } else {
    diag_error(t->d, e->span, "columns are names (strings) or indices (ints from 0)");
    return false;
  }
  size_t need = strlen(text) + (*len ? 1 : 0);
  if (*len + need + 1 > n) {
    diag_error(t->d, e->span, "too many columns (%zu bytes at most)", n - 1);
    return false;
  }
  *len += (size_t)snprintf(buf + *len, n - *len, "%s%s", *len ? "," : "", text);
  return true;
}

// csv's `columns`: "label", "a,b", 3, ["a", 3, "0..4"] as one comma-separated
// string for the runtime; NULL after reporting a bad one.
static const char *csv_columns(Checker *t, const Ast *e) {
  char buf[1024];
  size_t len = 0;
  const Ast *one[1] = {e};
  const Ast *const *items = is_sequence(e) ? (const Ast *const *)e->list.items : one;
  int n = is_sequence(e) ? e->list.n : 1;
  if (n == 0) {
    diag_error(t->d, e->span, "columns is empty: name at least one column");
    return NULL;
  }
  for (int i = 0; i < n; i++)
    if (!csv_column_item(t, items[i], buf, sizeof buf, &len)) return NULL;
  char *out = arena_alloc(&t->c->arena, len + 1);
  memcpy(out, buf, len + 1);
  return out;
}

static void check_data(Checker *t, const Ast *data, const Ast **splits) {
  if (strcmp(data->name, "train") && strcmp(data->name, "val") && strcmp(data->name, "test")) {
    diag_error(t->d, data->span, "unknown data split '%s' (the splits are train, val and test)",
               data->name);
    return;
  }
  int split = data->name[0] == 't' ? (data->name[1] == 'r' ? 0 : 2) : 1;
  if (splits[split]) {
    diag_error(t->d, data->span, "data %s is given twice", data->name);
    diag_note(t->d, splits[split]->span, "first given here");
    return;
  }
  splits[split] = data;
  const char *bound[64];
  int nbound = 0;
  for (int i = 0; i < data->list.n; i++) {
    const Ast *b = data->list.items[i];
    Call call;
    if (!match_call(t, b->a, sources, NSOURCES, "data source", &call)) continue;
    bool pair = call.spec == &sources[2] || call.spec == &sources[3];
    if (b->list2.n != (pair ? 2 : 1)) {
      diag_error(t->d, b->span, "data source '%s' feeds %s, here given %d",
                 call.spec->name, pair ? "two inputs (sequences and their next tokens): x, y = ..."
                 : "one input", b->list2.n);
      continue;
    }
    DataSource ds = {.split = data->name, .source = call.spec->name, .scale = 1.0, .to = 1.0};
    for (int j = 0; j < b->list2.n; j++) {
      const Ast *name = b->list2.items[j];
      if (t->model && !model_input(t->model, name->name)) {
        diag_error(t->d, name->span, "'%s' is not an input of model '%s'", name->name,
                   t->model->name);
        continue;
      }
      for (int k = 0; k < nbound; k++)
        if (strcmp(bound[k], name->name) == 0)
          diag_error(t->d, name->span, "input '%s' is fed twice in data %s", name->name, data->name);
      if (nbound < 64) bound[nbound++] = name->name;
      ds.inputs[ds.ninputs++] = name->name;
    }
    Val path = eval(t, call.args[0], 0);
    if (want(t, call.args[0], path, V_STR, "a data file's path")) ds.path = path.s;
    if (call.spec == &sources[0] || call.spec == &sources[1] || call.spec == &sources[4])
      arg_number(t, &call, 1, &ds.scale, true);
    if (call.spec == &sources[1] && call.args[2]) ds.columns = csv_columns(t, call.args[2]);
    if (call.spec == &sources[2]) {
      ds.dtype = "u16";
      if (call.args[1]) {
        Val v = eval(t, call.args[1], 0);
        if (want(t, call.args[1], v, V_STR, "'dtype'")) {
          if (strcmp(v.s, "u16") && strcmp(v.s, "u32") && strcmp(v.s, "llm.c"))
            diag_error(t->d, call.args[1]->span, "token files hold \"u16\" or \"u32\" tokens, or are "
                       "\"llm.c\" shards");
          else ds.dtype = v.s;
        }
      }
    }
    int from_arg = call.spec == &sources[2] ? 2 : call.spec == &sources[3] ? 1 : -1;
    if (from_arg > 0) {
      arg_number(t, &call, from_arg, &ds.from, false);
      arg_number(t, &call, from_arg + 1, &ds.to, false);
      if (!(ds.from >= 0 && ds.from < ds.to && ds.to <= 1))
        diag_error(t->d, b->a->span, "'from' and 'to' are fractions of the file with "
                   "0 <= from < to <= 1");
    }
    if (t->cfg->ndata < 16) t->cfg->data[t->cfg->ndata++] = ds;
  }
}

// ---- parameter groups and freezing

// The patterns of `freeze = "enc.*"`, `freeze = ["enc.*", "dec.*"]` or a
// tuple of them, as frozen groups appended to cfg->groups.
static void check_freeze(Checker *t, const Ast *e) {
  const Ast *one[1] = {e};
  const Ast *const *items = is_sequence(e) ? (const Ast *const *)e->list.items : one;
  int n = is_sequence(e) ? e->list.n : 1;
  for (int i = 0; i < n; i++) {
    if (items[i]->kind != N_STR) {
      diag_error(t->d, items[i]->span, "freeze takes a parameter-name pattern (a string such as "
                 "\"enc.*\") or a list of them");
      continue;
    }
    if (!items[i]->str[0]) {
      diag_error(t->d, items[i]->span, "an empty pattern matches no parameter");
      continue;
    }
    t->cfg->groups[t->cfg->ngroups++] = (ParamGroup){.pattern = items[i]->str, .span = items[i]->span,
                                                     .frozen = true};
  }
}

// `group "PATTERN" { KEY = VALUE ... }`: the optimizer's settings with the
// group's arguments in their place.
static void check_group(Checker *t, const Ast *grp, const CallSpec *spec) {
  const Ast *args[6] = {0};
  bool ok = true;
  if (!grp->str[0]) {
    diag_error(t->d, grp->span, "an empty pattern matches no parameter");
    ok = false;
  }
  for (int i = 0; i < grp->list.n; i++) {
    const Ast *k = grp->list.items[i];
    if (k->kind != N_TRAIN_KEY) {
      diag_error(t->d, k->span, "a group holds optimizer settings such as weight_decay = 0, not blocks");
      ok = false;
      continue;
    }
    int j = -1;
    for (int p = 0; p < 6 && spec->params[p]; p++)
      if (!strcmp(spec->params[p], k->name)) j = p;
    if (j < 0) {
      char list[160] = "";
      for (int p = 0; p < 6 && spec->params[p]; p++) {
        strncat(list, p ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, spec->params[p], sizeof list - strlen(list) - 1);
      }
      diag_error(t->d, k->span, "a group sets arguments of the optimizer, and %s has no '%s' "
                 "(it takes %s)", spec->name, k->name, list);
      ok = false;
      continue;
    }
    if (args[j]) {
      diag_error(t->d, k->span, "'%s' is set twice in this group", k->name);
      ok = false;
      continue;
    }
    args[j] = k->a;
  }
  ParamGroup h = optimizer_settings(t->cfg);
  optimizer_args(t, spec, args, &h);
  h.pattern = grp->str;
  h.span = grp->span;
  if (ok) t->cfg->groups[t->cfg->ngroups++] = h;
}

// Frozen patterns first, then the groups in file order (optim_group_of's
// order of precedence).
static void check_groups(Checker *t, const Ast *train, const Ast *freeze) {
  int cap = freeze ? (is_sequence(freeze->a) ? freeze->a->list.n : 1) : 0;
  for (int i = 0; i < train->list.n; i++) cap += train->list.items[i]->kind == N_TRAIN_GROUP;
  if (!cap) return;
  t->cfg->groups = arena_alloc(&t->c->arena, sizeof *t->cfg->groups * (size_t)cap);
  if (freeze) check_freeze(t, freeze->a);
  const CallSpec *spec = NULL;
  for (int i = 0; i < 3; i++)
    if (t->cfg->optimizer && !strcmp(optimizers[i].name, t->cfg->optimizer)) spec = &optimizers[i];
  for (int i = 0; spec && i < train->list.n; i++)
    if (train->list.items[i]->kind == N_TRAIN_GROUP) check_group(t, train->list.items[i], spec);
}

const char *precision_name(Precision p) {
  static const char *names[] = {"fp32", "tf32", "bf16", "fp16"};
  return names[p];
}

void train_check(Compilation *c, Module *m, const Ast *train, const Ast *model) {
  TrainConfig *cfg = arena_alloc(&c->arena, sizeof *cfg);
  *cfg = (TrainConfig){.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .gamma = 0.1,
                       .schedule = "constant", .precision = PREC_FP32, .seed = SMELT_DEFAULT_SEED};
  Checker t = {c, &c->diag, model, cfg};
  int errors_before = c->diag.errors;
  if (!model) {
    diag_error(t.d, train->span, "a train block needs a model in the same file");
  } else {
    bool has_loss = false;
    for (int i = 0; i < model->b->list.n; i++) has_loss |= model->b->list.items[i]->kind == N_LOSS;
    if (!has_loss)
      diag_error(t.d, train->span, "model '%s' has no loss, so there is nothing to train",
                 model->name);
  }
  const Ast *seen[sizeof keys / sizeof *keys] = {0};
  const Ast *splits[3] = {0};
  bool has_train_data = false;
  for (int i = 0; i < train->list.n; i++) {
    const Ast *k = train->list.items[i];
    if (k->kind == N_DATA) {
      check_data(&t, k, splits);
      has_train_data |= strcmp(k->name, "train") == 0;
      continue;
    }
    if (k->kind == N_TRAIN_GROUP) continue;   // once the optimizer is known
    for (size_t j = 0; j < sizeof keys / sizeof *keys; j++) {
      if (strcmp(k->name, keys[j]) != 0) continue;
      if (seen[j]) {
        diag_error(t.d, k->span, "train setting '%s' is set twice", k->name);
        diag_note(t.d, seen[j]->span, "first set here");
      }
      seen[j] = k;
    }
    check_key(&t, k);
  }
  check_groups(&t, train, seen[KEY_FREEZE]);
  m->train = cfg;
  if (c->diag.errors > errors_before) return;   // what is missing may be what was misspelt
  if (!seen[0]) diag_error(t.d, train->span, "the train block sets no optimizer (e.g. "
                           "optimizer = adamw(lr = 1e-3))");
  if (seen[4] && seen[5]) diag_error(t.d, seen[5]->span, "set either epochs or steps, not both");
  if (!seen[4] && !seen[5]) diag_error(t.d, train->span, "the train block sets neither epochs nor steps");
  if (!has_train_data) diag_error(t.d, train->span, "the train block has no 'data train { ... }'");
}

uint64_t model_seed(const Module *m) { return m->train ? (uint64_t)m->train->seed : SMELT_DEFAULT_SEED; }

int entry_precision(const Compilation *c, const Module *m) {
  return c->precision >= 0 ? c->precision : m->train ? (int)m->train->precision : PREC_FP32;
}
