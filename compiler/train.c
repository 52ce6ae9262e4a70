// train.c: checks a train block against its schema and stores it.
//
//   train {
//     optimizer = adamw(lr = 1e-3, weight_decay = 0.01)
//     schedule  = cosine(warmup = 100)
//     precision = bf16
//     epochs    = 5
//     data train { x = idx("images.gz", scale = 1 / 255); y = idx("labels.gz") }
//   }
//
// Values are compile-time constants: literals, arithmetic on them, and the
// model's sizes. Every key, every optimizer and schedule argument and every
// data source is known here; anything else is an error with a suggestion.
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
};
static const CallSpec sources[] = {
    {"idx", {"path", "scale"}, 1},
    {"csv", {"path", "scale"}, 1},
    {"tokens", {"path", "dtype", "from", "to"}, 1},
    {"text", {"path", "from", "to"}, 1},
};

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

static void key_optimizer(Checker *t, const Ast *e) {
  Call call;
  if (!match_call(t, e, optimizers, 3, "optimizer", &call)) return;
  TrainConfig *cfg = t->cfg;
  cfg->optimizer = call.spec->name;
  arg_number(t, &call, 0, &cfg->lr, true);
  if (call.spec == &optimizers[0]) {
    arg_number(t, &call, 1, &cfg->momentum, false);
    if (cfg->momentum < 0 || cfg->momentum >= 1)
      diag_error(t->d, call.args[1]->span, "'momentum' must be in [0, 1)");
    if (call.args[2]) {
      Val v = eval(t, call.args[2], 0);
      if (want(t, call.args[2], v, V_BOOL, "'nesterov'")) cfg->nesterov = v.i;
    }
    arg_number(t, &call, 3, &cfg->weight_decay, false);
  } else {
    if (call.spec == &optimizers[2]) cfg->weight_decay = 0.01;
    arg_number(t, &call, 1, &cfg->beta1, false);
    arg_number(t, &call, 2, &cfg->beta2, false);
    arg_number(t, &call, 3, &cfg->eps, true);
    arg_number(t, &call, 4, &cfg->weight_decay, false);
    for (int k = 1; k <= 2; k++) {
      double beta = k == 1 ? cfg->beta1 : cfg->beta2;
      if (call.args[k] && (beta < 0 || beta >= 1))
        diag_error(t->d, call.args[k]->span, "'%s' must be in [0, 1)", call.spec->params[k]);
    }
  }
  if (cfg->weight_decay < 0)
    diag_error(t->d, e->span, "'weight_decay' cannot be negative");
}

static void key_schedule(Checker *t, const Ast *e) {
  Call call;
  if (!match_call(t, e, schedules, 3, "schedule", &call)) return;
  TrainConfig *cfg = t->cfg;
  cfg->schedule = call.spec->name;
  if (call.spec == &schedules[0]) {
    arg_int(t, &call, 0, &cfg->warmup);
  } else if (call.spec == &schedules[1]) {
    arg_int(t, &call, 0, &cfg->step_every);
    if (call.args[0] && cfg->step_every == 0)
      diag_error(t->d, call.args[0]->span, "'every' must be greater than 0");
    arg_number(t, &call, 1, &cfg->gamma, true);
    arg_int(t, &call, 2, &cfg->warmup);
  } else {
    arg_int(t, &call, 0, &cfg->warmup);
    arg_number(t, &call, 1, &cfg->min_lr, false);
    if (cfg->min_lr < 0) diag_error(t->d, call.args[1]->span, "'min_lr' cannot be negative");
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
                             "clip_grad_norm", "seed", "checkpoint_every"};

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
                    "checkpoint_every and data blocks)", key);
  }
}

// ---- data blocks

static const Ast *model_input(const Ast *model, const char *name) {
  for (int i = 0; model && i < model->b->list.n; i++) {
    const Ast *s = model->b->list.items[i];
    if (s->kind == N_INPUT && strcmp(s->name, name) == 0) return s;
  }
  return NULL;
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
    if (!match_call(t, b->a, sources, 4, "data source", &call)) continue;
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
    if (call.spec == &sources[0] || call.spec == &sources[1]) arg_number(t, &call, 1, &ds.scale, true);
    if (call.spec == &sources[2]) {
      ds.dtype = "u16";
      if (call.args[1]) {
        Val v = eval(t, call.args[1], 0);
        if (want(t, call.args[1], v, V_STR, "'dtype'")) {
          if (strcmp(v.s, "u16") && strcmp(v.s, "u32"))
            diag_error(t->d, call.args[1]->span, "token files hold \"u16\" or \"u32\"");
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
