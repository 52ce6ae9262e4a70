// resolve.c: name resolution and the checks that need no shapes.
//
// Walks one module's AST with a chain of scopes and reports: unknown names
// (with a "did you mean"), duplicate definitions, calls with too many or too
// few arguments or unknown keywords, assignments to names that cannot be
// assigned, and statements in places where they mean nothing. Shapes, dtypes
// and values are elaboration's business; this pass only needs names.
#include "compiler.h"

#include <dirent.h>
#include <stdlib.h>

#include <string.h>

typedef enum {
  SYM_FN,      // a function, local or imported (file scope)
  SYM_VAR,     // let
  SYM_ARG,     // a function's parameter
  SYM_DIM,     // a dimension name bound by a parameter's type
  SYM_SIZE,    // a model's symbolic size
  SYM_LOOP,    // a for loop's variable
  SYM_PARAM,   // param
  SYM_BUFFER,  // buffer
  SYM_INPUT,   // input
  SYM_OUTPUT,  // output
} SymKind;

static const char *sym_what[] = {
    "function", "variable", "function parameter", "dimension", "model size",
    "loop variable", "parameter", "buffer", "input", "output",
};

typedef struct {
  const char *name;
  SymKind kind;
  const Ast *def;     // where it is defined (FN node for functions)
  const Module *from;  // SYM_FN: the module that defines it
} Sym;

typedef struct Scope Scope;
struct Scope {
  Scope *up;
  Sym *syms;
  int n, cap;
};

typedef struct {
  Compilation *c;
  Module *m;
  Diag *d;
  Scope globals;         // functions: this file's and its imports'
  Scope *scope;          // innermost local scope (NULL at file level)
  const Ast *fn;        // function being resolved, or NULL
  const Ast *model;     // model being resolved, or NULL
  int loop_depth;
  int block_depth;       // 1 in the body of a function or model
  bool import_failed;    // unknown functions may be in the missing module
  const Ast *loss;      // the model's first loss statement
} Resolver;

// ---- scopes

// The name of a module on the import path (the stdlib folder, SMELT_PATH)
// that defines a function `name`, into module; false when none does. A plain
// text search for a line starting "fn NAME(": only to suggest the import.
static bool module_defining(const Compilation *c, const char *name, char *module, size_t len) {
  char want[160];
  snprintf(want, sizeof want, "fn %s(", name);
  for (int i = 0; i < c->nsearch; i++) {
    DIR *dir = opendir(c->search[i]);
    if (!dir) continue;
    bool found = false;
    for (struct dirent *e; !found && (e = readdir(dir));) {
      size_t n = strlen(e->d_name);
      if (n < 7 || strcmp(e->d_name + n - 6, ".smelt")) continue;
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", c->search[i], e->d_name);
      char *text = file_read(path, NULL);
      if (!text) continue;
      for (const char *p = text; p && !found; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        found = !strncmp(p, want, strlen(want));
      free(text);
      if (found) snprintf(module, len, "%.*s", (int)(n - 6), e->d_name);
    }
    closedir(dir);
    if (found) return true;
  }
  return false;
}

static void scope_add(Resolver *r, Scope *s, const char *name, SymKind kind, const Ast *def,
                      const Module *from) {
  if (s->n == s->cap) {
    int cap = s->cap ? s->cap * 2 : 8;
    Sym *syms = arena_alloc(&r->c->arena, sizeof(Sym) * (size_t)cap);
    if (s->n) memcpy(syms, s->syms, sizeof(Sym) * (size_t)s->n);
    s->syms = syms;
    s->cap = cap;
  }
  s->syms[s->n++] = (Sym){name, kind, def, from};
}

static Sym *scope_find_here(Scope *s, const char *name) {
  for (int i = s->n - 1; i >= 0; i--)
    if (strcmp(s->syms[i].name, name) == 0) return &s->syms[i];
  return NULL;
}

static Sym *lookup_local(Resolver *r, const char *name) {
  for (Scope *s = r->scope; s; s = s->up) {
    Sym *sym = scope_find_here(s, name);
    if (sym) return sym;
  }
  return NULL;
}

static Sym *lookup(Resolver *r, const char *name) {
  Sym *sym = lookup_local(r, name);
  return sym ? sym : scope_find_here(&r->globals, name);
}

static void scope_push(Resolver *r, Scope *s) {
  memset(s, 0, sizeof *s);
  s->up = r->scope;
  r->scope = s;
}

static void scope_pop(Resolver *r) { r->scope = r->scope->up; }

// Declares a local name; a second definition in the same scope is an error.
static void declare(Resolver *r, const char *name, SymKind kind, const Ast *def) {
  Sym *old = scope_find_here(r->scope, name);
  if (old) {
    diag_error(r->d, def->span, "'%s' is already defined in this scope (%s)", name,
               sym_what[old->kind]);
    diag_note(r->d, old->def->span, "'%s' was defined here", name);
    return;
  }
  scope_add(r, r->scope, name, kind, def, NULL);
}

static bool is_builtin_name(const char *name);

// ---- did you mean

typedef struct {
  const char *want;
  const char *best;
  int dist;
} Suggest;

static void suggest_consider(void *ctx, const char *name) {
  Suggest *s = ctx;
  int d = str_distance(s->want, name);
  int len = (int)strlen(s->want);
  int limit = len <= 2 ? 0 : len <= 3 ? 1 : len <= 6 ? 2 : 3;   // short names: no guesses
  if (d <= limit && d < s->dist && strcmp(s->want, name) != 0) {
    s->best = name;
    s->dist = d;
  }
}

static void suggest_scopes(Resolver *r, Suggest *s, bool locals, bool fns) {
  if (locals)
    for (Scope *sc = r->scope; sc; sc = sc->up)
      for (int i = 0; i < sc->n; i++) suggest_consider(s, sc->syms[i].name);
  if (fns)
    for (int i = 0; i < r->globals.n; i++) suggest_consider(s, r->globals.syms[i].name);
}

static const char *did_you_mean(const Suggest *s, char *buf, size_t n) {
  if (!s->best) return "";
  snprintf(buf, n, "; did you mean '%s'?", s->best);
  return buf;
}

// ---- types

static void resolve_expr(Resolver *r, const Ast *e);
static void resolve_value(Resolver *r, const Ast *e);

enum { TYPE_FN_PARAM = 1, TYPE_FN_RESULT = 2, TYPE_NEEDS_SHAPE = 4 };

static void resolve_type(Resolver *r, const Ast *t, int how) {
  if (t->kind == N_TUPLE_TYPE) {
    for (int i = 0; i < t->list.n; i++) resolve_type(r, t->list.items[i], how);
    return;
  }
  bool dtype = builtin_find(t->name, B_DTYPE) != NULL;
  bool kind = builtin_find(t->name, B_TYPE) != NULL;
  if (!dtype && !kind) {
    Suggest s = {t->name, NULL, 99};
    builtin_each(B_DTYPE, suggest_consider, &s);
    builtin_each(B_TYPE, suggest_consider, &s);
    char buf[96];
    diag_error(r->d, t->span, "unknown type '%s'%s", t->name, did_you_mean(&s, buf, sizeof buf));
    return;
  }
  if (t->shaped && !dtype) {
    diag_error(r->d, t->span, "'%s' takes no shape; a tensor type is a dtype with a shape, "
               "such as f32[B, 10]", t->name);
    return;
  }
  if ((how & TYPE_NEEDS_SHAPE) && !t->shaped) {
    diag_error(r->d, t->span, "this needs a tensor type with a shape, such as f32[B, 10]");
    return;
  }
  for (int i = 0; i < t->list.n; i++) {
    const Ast *d = t->list.items[i];
    if (d->kind == N_ELLIPSIS) {
      if (!(how & (TYPE_FN_PARAM | TYPE_FN_RESULT)))
        diag_error(r->d, d->span, "'...' is only allowed in the types of function parameters and results");
      else if (i != 0)
        diag_error(r->d, d->span, "'...' stands for the leading dimensions and must come first");
      continue;
    }
    // In a parameter's type, a new name binds the dimension it meets.
    if (d->kind == N_NAME && (how & TYPE_FN_PARAM) && !lookup(r, d->name) &&
        !builtin_find(d->name, B_CONST)) {
      declare(r, d->name, SYM_DIM, d);
      continue;
    }
    resolve_expr(r, d);
  }
}

// ---- calls

static void check_user_call(Resolver *r, const Ast *call, const Ast *fn) {
  const AstList *params = &fn->list;
  int npos = 0;
  bool seen_kw = false, bad_kw = false;
  const Ast *given[256] = {0};   // which parameter each argument fills
  int nparams = params->n < 256 ? params->n : 256;
  for (int i = 0; i < call->list.n; i++) {
    const Ast *arg = call->list.items[i];
    if (arg->kind != N_KWARG) {
      if (seen_kw) {
        diag_error(r->d, arg->span, "positional argument after a keyword argument");
        continue;
      }
      if (npos >= nparams) {
        if (npos == nparams) {
          diag_error(r->d, arg->span, "too many arguments to '%s': it takes %d, this call gives %d",
                     fn->name, params->n, npos + (call->list.n - i));
          diag_note(r->d, fn->span, "'%s' is defined here", fn->name);
        }
        npos++;
        continue;
      }
      given[npos++] = arg;
      continue;
    }
    seen_kw = true;
    int k = -1;
    for (int j = 0; j < nparams; j++)
      if (strcmp(params->items[j]->name, arg->name) == 0) k = j;
    if (k < 0) {
      Suggest s = {arg->name, NULL, 99};
      for (int j = 0; j < nparams; j++) suggest_consider(&s, params->items[j]->name);
      char buf[96];
      diag_error(r->d, arg->span, "'%s' has no parameter named '%s'%s", fn->name, arg->name,
                 did_you_mean(&s, buf, sizeof buf));
      bad_kw = true;
      diag_note(r->d, fn->span, "'%s' is defined here", fn->name);
      continue;
    }
    if (given[k]) {
      diag_error(r->d, arg->span, "parameter '%s' of '%s' is given twice", arg->name, fn->name);
      continue;
    }
    given[k] = arg;
  }
  for (int j = 0; j < nparams && !bad_kw; j++) {   // a misspelt keyword is reported already
    const Ast *p = params->items[j];
    if (!given[j] && !p->b) {
      diag_error(r->d, call->span, "missing argument '%s' in call to '%s'", p->name, fn->name);
      diag_note(r->d, fn->span, "'%s' is defined here", fn->name);
      break;
    }
  }
}

static void check_builtin_call(Resolver *r, const Ast *call, const Builtin *b, const char *how) {
  int npos = 0;
  bool seen_kw = false;
  for (int i = 0; i < call->list.n; i++) {
    const Ast *arg = call->list.items[i];
    if (arg->kind != N_KWARG) {
      if (seen_kw) diag_error(r->d, arg->span, "positional argument after a keyword argument");
      npos++;
      continue;
    }
    seen_kw = true;
    if (!builtin_has_kwarg(b, arg->name)) {
      diag_error(r->d, arg->span, "%s '%s' has no keyword '%s' (it is %s)", how, b->name,
                 arg->name, b->signature);
      continue;
    }
    for (int j = 0; j < i; j++) {
      const Ast *prev = call->list.items[j];
      if (prev->kind == N_KWARG && strcmp(prev->name, arg->name) == 0)
        diag_error(r->d, arg->span, "keyword '%s' is given twice", arg->name);
    }
  }
  if (npos < b->min_args || (b->max_args >= 0 && npos > b->max_args)) {
    char want[64];
    if (b->max_args < 0) snprintf(want, sizeof want, "at least %d", b->min_args);
    else if (b->min_args == b->max_args) snprintf(want, sizeof want, "%d", b->min_args);
    else snprintf(want, sizeof want, "%d to %d", b->min_args, b->max_args);
    diag_error(r->d, call->span, "%s '%s' takes %s positional argument%s, this call gives %d (%s)",
               how, b->name, want, strcmp(want, "1") ? "s" : "", npos, b->signature);
  }
}

static void resolve_args(Resolver *r, const Ast *call) {
  for (int i = 0; i < call->list.n; i++) {
    const Ast *arg = call->list.items[i];
    resolve_value(r, arg->kind == N_KWARG ? arg->a : arg);
  }
  if (call->c && call->c->a) resolve_expr(r, call->c->a);
}

static void no_scope_on_builtin(Resolver *r, const Ast *call, const char *name) {
  if (call->c)
    diag_error(r->d, call->c->span, "'as' names the parameter scope of a function call, and '%s' "
               "is a builtin that declares no parameters", name);
}

static void resolve_method_call(Resolver *r, const Ast *call) {
  const Ast *callee = call->a;
  resolve_expr(r, callee->a);
  const Builtin *b = builtin_find(callee->name, B_METHOD);
  if (!b) {
    if (builtin_find(callee->name, B_PROPERTY)) {
      diag_error(r->d, callee->span, "'%s' is a property, not a method; write x.%s without '()'",
                 callee->name, callee->name);
    } else {
      Suggest s = {callee->name, NULL, 99};
      builtin_each(B_METHOD, suggest_consider, &s);
      builtin_each(B_PROPERTY, suggest_consider, &s);
      char buf[96];
      diag_error(r->d, callee->span, "unknown method '%s'%s", callee->name,
                 did_you_mean(&s, buf, sizeof buf));
    }
  } else {
    check_builtin_call(r, call, b, "method");
  }
  no_scope_on_builtin(r, call, callee->name);
  resolve_args(r, call);
}

static void resolve_call(Resolver *r, const Ast *call) {
  const Ast *callee = call->a;
  if (callee->kind == N_MEMBER) {
    resolve_method_call(r, call);
    return;
  }
  if (callee->kind != N_NAME) {
    diag_error(r->d, callee->span, "this expression cannot be called; only functions can");
    resolve_expr(r, callee);
    resolve_args(r, call);
    return;
  }
  const char *name = callee->name;
  Sym *sym = lookup(r, name);
  const Builtin *b;
  if (sym && sym->kind == SYM_FN) {
    check_user_call(r, call, sym->def);
  } else if (sym) {
    const char *what = sym_what[sym->kind];
    diag_error(r->d, callee->span, "'%s' is %s %s, not a function", name, strchr("aeiou", what[0]) ? "an" : "a", what);
    diag_note(r->d, sym->def->span, "'%s' is defined here", name);
  } else if ((b = builtin_find(name, B_FUNC))) {
    check_builtin_call(r, call, b, "builtin");
    no_scope_on_builtin(r, call, name);
  } else if (builtin_find(name, B_INIT)) {
    diag_error(r->d, callee->span, "'%s' is an initializer; it can only follow "
               "'param NAME: TYPE ='", name);
  } else if (!r->import_failed) {
    char module[64];
    if (module_defining(r->c, name, module, sizeof module)) {
      diag_error(r->d, callee->span, "unknown function '%s': it is in module \"%s\"; add import \"%s\" at the top of the file",
                 name, module, module);
    } else {
      Suggest s = {name, NULL, 99};
      suggest_scopes(r, &s, false, true);
      builtin_each(B_FUNC, suggest_consider, &s);
      char buf[96];
      diag_error(r->d, callee->span, "unknown function '%s'%s", name, did_you_mean(&s, buf, sizeof buf));
    }
  }
  resolve_args(r, call);
}

// ---- expressions

static void resolve_name(Resolver *r, const Ast *e) {
  Sym *sym = lookup(r, e->name);
  if (sym) {
    if (sym->kind == SYM_FN)
      diag_error(r->d, e->span, "'%s' is a function; call it: %s(...)", e->name, e->name);
    return;
  }
  if (builtin_find(e->name, B_CONST) || builtin_find(e->name, B_DTYPE)) return;
  if (builtin_find(e->name, B_FUNC)) {
    diag_error(r->d, e->span, "'%s' is a builtin function; call it: %s(...)", e->name, e->name);
    return;
  }
  if (builtin_find(e->name, B_INIT)) {
    diag_error(r->d, e->span, "'%s' is an initializer; it can only follow 'param NAME: TYPE ='",
               e->name);
    return;
  }
  Suggest s = {e->name, NULL, 99};
  suggest_scopes(r, &s, true, false);
  builtin_each(B_CONST, suggest_consider, &s);
  builtin_each(B_DTYPE, suggest_consider, &s);
  char buf[96];
  diag_error(r->d, e->span, "unknown name '%s'%s", e->name, did_you_mean(&s, buf, sizeof buf));
}

static void resolve_expr(Resolver *r, const Ast *e) {
  if (!e) return;
  switch (e->kind) {
  case N_INT: case N_FLOAT: case N_STR: case N_BOOL: case N_ERROR: case N_ELLIPSIS:
    return;
  case N_NAME:
    resolve_name(r, e);
    return;
  case N_UNARY:
    resolve_expr(r, e->a);
    return;
  case N_BINARY:
    resolve_expr(r, e->a);
    resolve_expr(r, e->b);
    return;
  case N_CALL:
    resolve_call(r, e);
    return;
  case N_MEMBER:
    resolve_expr(r, e->a);
    if (builtin_find(e->name, B_PROPERTY)) return;
    if (builtin_find(e->name, B_METHOD)) {
      diag_error(r->d, e->span, "method '%s' must be called: x.%s(...)", e->name, e->name);
    } else {
      Suggest s = {e->name, NULL, 99};
      builtin_each(B_PROPERTY, suggest_consider, &s);
      builtin_each(B_METHOD, suggest_consider, &s);
      char buf[96];
      diag_error(r->d, e->span, "unknown property '%s'%s", e->name, did_you_mean(&s, buf, sizeof buf));
    }
    return;
  case N_INDEX: {
    resolve_expr(r, e->a);
    int ellipses = 0;
    for (int i = 0; i < e->list.n; i++) {
      const Ast *it = e->list.items[i];
      if (it->kind == N_ELLIPSIS && ++ellipses == 2)
        diag_error(r->d, it->span, "an index can have only one '...'");
      resolve_expr(r, it);
    }
    return;
  }
  case N_SLICE:
    resolve_expr(r, e->a);
    resolve_expr(r, e->b);
    resolve_expr(r, e->c);
    return;
  case N_TUPLE:
  case N_LIST:
    for (int i = 0; i < e->list.n; i++) resolve_value(r, e->list.items[i]);
    return;
  default:
    UNREACHABLE();
  }
}

// A value may carry 'as': only a call can, and the grammar has checked that.
static void resolve_value(Resolver *r, const Ast *e) { resolve_expr(r, e); }

// ---- statements

static void resolve_block(Resolver *r, const Ast *block);

// what: "a parameter's" or "a buffer's", for the message.
static void resolve_init(Resolver *r, const Ast *init, const char *what) {
  const Ast *callee = init->kind == N_CALL ? init->a : init;
  if (callee->kind != N_NAME || !builtin_find(callee->name, B_INIT)) {
    Suggest s = {callee->kind == N_NAME ? callee->name : "", NULL, 99};
    builtin_each(B_INIT, suggest_consider, &s);
    char buf[96];
    diag_error(r->d, init->span, "%s initializer must be zeros, ones, full(v), "
               "normal(mean, std), uniform(lo, hi) or a xavier_/kaiming_ variant%s",
               what, did_you_mean(&s, buf, sizeof buf));
    if (init->kind == N_CALL) resolve_args(r, init);
    return;
  }
  const Builtin *b = builtin_find(callee->name, B_INIT);
  if (init->kind == N_CALL) {
    check_builtin_call(r, init, b, "initializer");
    if (init->c) diag_error(r->d, init->c->span, "'as' cannot name an initializer's scope");
    resolve_args(r, init);
  } else if (b->min_args > 0) {
    diag_error(r->d, init->span, "initializer '%s' needs arguments: %s", b->name, b->signature);
  }
}

static bool in_model(Resolver *r, const Ast *s, const char *what) {
  if (r->model) return true;
  diag_error(r->d, s->span, "'%s' is only allowed in a model block", what);
  return false;
}

static void resolve_assign(Resolver *r, const Ast *s) {
  resolve_value(r, s->b);
  for (int i = 0; i < s->list2.n; i++) {
    const Ast *t = s->list2.items[i];
    Sym *sym = lookup_local(r, t->name);
    if (!sym) {
      if (scope_find_here(&r->globals, t->name))
        diag_error(r->d, t->span, "cannot assign to function '%s'", t->name);
      else if (is_builtin_name(t->name))
        diag_error(r->d, t->span, "cannot assign to the builtin '%s'", t->name);
      else
        diag_error(r->d, t->span, "cannot assign to '%s': it is not defined; declare it with "
                   "'let %s = ...'", t->name, t->name);
      continue;
    }
    if (sym->kind == SYM_BUFFER) {
      diag_error(r->d, t->span, "cannot assign to buffer '%s'; 'update %s = ...' sets its value "
                 "for the next training step", t->name, t->name);
      diag_note(r->d, sym->def->span, "'%s' is defined here", t->name);
    } else if (sym->kind != SYM_VAR && sym->kind != SYM_ARG) {
      diag_error(r->d, t->span, "cannot assign to %s '%s'", sym_what[sym->kind], t->name);
      diag_note(r->d, sym->def->span, "'%s' is defined here", t->name);
    }
  }
}

static void resolve_stmt(Resolver *r, const Ast *s) {
  switch (s->kind) {
  case N_LET:
    resolve_value(r, s->b);
    if (s->a) resolve_type(r, s->a, 0);
    for (int i = 0; i < s->list2.n; i++)
      declare(r, s->list2.items[i]->name, SYM_VAR, s->list2.items[i]);
    return;
  case N_ASSIGN:
    resolve_assign(r, s);
    return;
  case N_PARAM:
    if (!r->fn && !r->model) return;   // grammar keeps statements inside blocks
    resolve_type(r, s->a, TYPE_NEEDS_SHAPE);
    resolve_init(r, s->b, "a parameter's");
    if (r->loop_depth)
      diag_error(r->d, s->span, "'param' inside a loop would declare '%s' again on every "
                 "iteration; declare it in a function and call that with 'as name[i]'", s->name);
    declare(r, s->name, SYM_PARAM, s);
    return;
  case N_BUFFER:
    if (!r->fn && !r->model) return;
    resolve_type(r, s->a, TYPE_NEEDS_SHAPE);
    resolve_init(r, s->b, "a buffer's");
    if (r->loop_depth)
      diag_error(r->d, s->span, "'buffer' inside a loop would declare '%s' again on every "
                 "iteration; declare it in a function and call that with 'as name[i]'", s->name);
    declare(r, s->name, SYM_BUFFER, s);
    return;
  case N_UPDATE: {
    resolve_value(r, s->b);
    Sym *sym = lookup_local(r, s->name);
    if (!sym) {
      diag_error(r->d, s->span, "cannot update '%s': it is not defined; declare it with "
                 "'buffer %s: TYPE = INITIALIZER'", s->name, s->name);
    } else if (sym->kind != SYM_BUFFER) {
      diag_error(r->d, s->span, "cannot update %s '%s': only a buffer can be updated", sym_what[sym->kind], s->name);
      diag_note(r->d, sym->def->span, "'%s' is defined here", s->name);
    }
    return;
  }
  case N_INPUT:
    if (!in_model(r, s, "input")) return;
    if (r->block_depth != 1)
      diag_error(r->d, s->span, "'input' must be at the top level of the model block");
    resolve_type(r, s->a, TYPE_NEEDS_SHAPE);
    declare(r, s->name, SYM_INPUT, s);
    return;
  case N_OUTPUT:
    if (!in_model(r, s, "output")) return;
    if (r->block_depth != 1)
      diag_error(r->d, s->span, "'output' must be at the top level of the model block");
    resolve_value(r, s->b);
    if (s->a) resolve_type(r, s->a, TYPE_NEEDS_SHAPE);
    declare(r, s->name, SYM_OUTPUT, s);
    return;
  case N_LOSS:
    if (!in_model(r, s, "loss")) return;
    if (r->block_depth != 1)
      diag_error(r->d, s->span, "'loss' must be at the top level of the model block");
    resolve_value(r, s->b);
    if (r->loss) {
      diag_error(r->d, s->span, "a model has one loss, and this is a second one");
      diag_note(r->d, r->loss->span, "the first loss is here");
    } else {
      r->loss = s;
    }
    return;
  case N_RETURN:
    if (!r->fn) diag_error(r->d, s->span, "'return' is only allowed in a function");
    for (int i = 0; i < s->list.n; i++) resolve_value(r, s->list.items[i]);
    return;
  case N_FOR: {
    resolve_expr(r, s->a);
    resolve_expr(r, s->b);
    Scope sc;
    scope_push(r, &sc);
    declare(r, s->name, SYM_LOOP, s);
    r->loop_depth++;
    resolve_block(r, s->c);
    r->loop_depth--;
    scope_pop(r);
    return;
  }
  case N_IF:
    resolve_expr(r, s->a);
    resolve_block(r, s->b);
    if (s->c && s->c->kind == N_IF) resolve_stmt(r, s->c);
    else if (s->c) resolve_block(r, s->c);
    return;
  case N_ASSERT:
    resolve_expr(r, s->a);
    return;
  case N_EXPR_STMT:
    resolve_value(r, s->a);
    if (s->a->kind != N_ERROR)
      diag_error(r->d, s->span, "the value of this expression is unused; bind it with "
                 "'let NAME = ...'");
    return;
  default:
    UNREACHABLE();
  }
}

static void resolve_block(Resolver *r, const Ast *block) {
  Scope sc;
  scope_push(r, &sc);
  r->block_depth++;
  const Ast *ret = NULL;
  for (int i = 0; i < block->list.n; i++) {
    const Ast *s = block->list.items[i];
    if (ret) {
      diag_error(r->d, s->span, "this statement can never run: it follows 'return'");
      ret = NULL;   // say it once per block
    }
    resolve_stmt(r, s);
    if (s->kind == N_RETURN) ret = s;
  }
  r->block_depth--;
  scope_pop(r);
}

// ---- items

static void resolve_fn(Resolver *r, const Ast *fn) {
  Scope sc;
  r->scope = NULL;
  scope_push(r, &sc);
  r->fn = fn;
  bool seen_default = false;
  for (int i = 0; i < fn->list.n; i++) {
    const Ast *p = fn->list.items[i];
    if (p->a) resolve_type(r, p->a, TYPE_FN_PARAM);
    if (p->b) resolve_value(r, p->b);
    if (p->b) seen_default = true;
    else if (seen_default)
      diag_error(r->d, p->span, "parameter '%s' has no default but follows one that has", p->name);
    Sym *dim = scope_find_here(r->scope, p->name);
    if (dim && dim->kind == SYM_DIM)   // `fn f(x: f32[n], n: int)`: the int names the dim
      dim->kind = SYM_ARG;
    else
      declare(r, p->name, SYM_ARG, p);
  }
  if (fn->a) resolve_type(r, fn->a, TYPE_FN_RESULT);
  resolve_block(r, fn->b);
  r->fn = NULL;
  r->scope = NULL;
}

static void resolve_model(Resolver *r, const Ast *model) {
  Scope sc;
  r->scope = NULL;
  scope_push(r, &sc);
  r->model = model;
  r->loss = NULL;
  for (int i = 0; i < model->list.n; i++) {
    const Ast *size = model->list.items[i];
    if (size->a) resolve_expr(r, size->a);
    declare(r, size->name, SYM_SIZE, size);
  }
  resolve_block(r, model->b);
  r->model = NULL;
  r->scope = NULL;
}

static bool is_builtin_name(const char *name) {
  return builtin_find(name, B_FUNC) || builtin_find(name, B_INIT) || builtin_find(name, B_DTYPE) ||
         builtin_find(name, B_TYPE) || builtin_find(name, B_CONST);
}

// Adds a module's functions to the file scope, reporting clashes. Imports are
// added first, so a clash is reported at the later definition or import.
static void add_functions(Resolver *r, const Module *from, const Ast *import) {
  if (!from || !from->ast) return;
  for (int i = 0; i < from->ast->list.n; i++) {
    const Ast *fn = from->ast->list.items[i];
    if (fn->kind != N_FN) continue;
    Sym *old = scope_find_here(&r->globals, fn->name);
    if (old && old->def == fn) continue;   // the same module imported twice
    if (!import && is_builtin_name(fn->name)) {
      diag_error(r->d, fn->span, "'%s' is a builtin name; choose another name for this function",
                 fn->name);
      continue;
    }
    if (old) {
      if (import)
        diag_error(r->d, import->span, "this import defines function '%s' again", fn->name);
      else if (old->from != from)
        diag_error(r->d, fn->span, "function '%s' is already defined by an import", fn->name);
      else
        diag_error(r->d, fn->span, "function '%s' is defined twice", fn->name);
      diag_note(r->d, old->def->span, "'%s' was first defined here", fn->name);
      continue;
    }
    scope_add(r, &r->globals, fn->name, SYM_FN, fn, from);
  }
}

void resolve_module(Compilation *c, Module *m) {
  if (!m->ast || m->syntax_errors) return;
  Resolver r = {.c = c, .m = m, .d = &c->diag};
  int k = 0;
  for (int i = 0; i < m->ast->list.n; i++) {
    const Ast *it = m->ast->list.items[i];
    if (it->kind != N_IMPORT || k >= m->nimports) continue;
    Module *dep = m->imports[k++];
    if (!dep || !dep->ast || dep->syntax_errors) r.import_failed = true;
    add_functions(&r, dep, it);
  }
  add_functions(&r, m, NULL);
  const Ast *model = NULL, *train = NULL;
  for (int i = 0; i < m->ast->list.n; i++) {
    const Ast *it = m->ast->list.items[i];
    if (it->kind == N_FN) {
      resolve_fn(&r, it);
    } else if (it->kind == N_MODEL) {
      if (model) {
        diag_error(r.d, it->span, "a file holds one model, and '%s' is a second one", it->name);
        diag_note(r.d, model->span, "the first model is '%s'", model->name);
      } else {
        model = it;
      }
      resolve_model(&r, it);
    } else if (it->kind == N_TRAIN) {
      if (train) {
        diag_error(r.d, it->span, "a file holds one train block, and this is a second one");
        diag_note(r.d, train->span, "the first train block is here");
      } else {
        train = it;
      }
    }
  }
  m->model = model;
  if (train) train_check(c, m, train, model);
}
