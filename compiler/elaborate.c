// elaborate.c: from checked AST to op graph.
//
// An evaluator over the AST. Compile-time values (ints, floats, bools,
// strings, tuples, lists, dtypes) are computed here; tensor values are graph nodes,
// built through graph.c's builders, which check every shape. Function calls
// are inlined: each call binds its arguments (unifying named dimensions with
// the arguments' shapes), runs the body and returns a value. Loops unroll.
//
// Parameter names follow the call scopes (docs/language.md): `linear(x) as fc1`
// inside `block(...) as h[2]` declares h.2.fc1.w. A call without `as` to a
// function that declares parameters is named after the function, numbered
// from the second call in the same scope on (linear, linear_1, ...).
//
// The first user error is reported with the chain of calls that led to it and
// ends elaboration by longjmp to elaborate().
#include "compiler.h"

#include <math.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CALL_DEPTH 200

typedef enum { V_NONE, V_INT, V_FLOAT, V_BOOL, V_STR, V_TENSOR, V_TUPLE, V_DTYPE, V_LIST } VKind;

typedef struct Val Val;
struct Val {
  VKind k;
  int64_t i;          // V_INT, V_BOOL
  double f;           // V_FLOAT
  const char *s;      // V_STR
  Node *t;            // V_TENSOR
  DType dt;           // V_DTYPE
  Val *items;         // V_TUPLE, V_LIST: n values; a list is never changed in place
  int n;              // (xs + [x] makes a new one), so lists may share items
};

typedef struct Binding Binding;
struct Binding {
  const char *name;
  Val v;
  Binding *next;
};

typedef struct Env Env;
struct Env {
  Env *up;            // enclosing block of the same function; NULL at its top
  Binding *vars;
};

typedef struct {
  const char *fn;     // function name
  Span call;          // call site
  const char *scope;  // parameter scope of the call
} Frame;

typedef struct Counter Counter;
struct Counter {
  const char *scope;  // the frame's scope
  const char *what;   // function name, or "" for random streams
  int n;
  Counter *next;
};

// An `update` statement already elaborated: its buffer and where it was.
typedef struct UpdateSite UpdateSite;
struct UpdateSite {
  const Node *buffer;
  Span at;
  const char *fn;     // the function it is in, and the call that ran it; NULL in the model body
  Span call;
  UpdateSite *next;
};

typedef struct {
  Compilation *c;
  Module *m;
  Graph *g;
  Diag *d;
  jmp_buf fail;
  Frame stack[MAX_CALL_DEPTH];
  int depth;
  const char *scope;  // the current parameter scope
  Counter *counters;
  bool training;
  bool returning;     // a return statement is unwinding the current call
  Val ret;
  int64_t steps;      // statements executed, bounded by MAX_STEPS
  UpdateSite *updated;  // the buffers updated so far, each once per step
} Elab;

// Elaboration unrolls every loop; a model that runs more statements than this
// is a mistake (or hostile), not a network.
#define MAX_STEPS 1000000

// Notes the calls that led to an error, innermost first; a run of the same
// call (recursion) is said once with its count, and at most 10 are shown.
static _Noreturn void unwind(Elab *e) {
  int shown = 0;
  for (int i = e->depth - 1; i >= 0; i--) {
    int same = 0;
    while (i - same - 1 >= 0 && e->stack[i - same - 1].call.begin == e->stack[i].call.begin &&
           e->stack[i - same - 1].call.file == e->stack[i].call.file)
      same++;
    if (shown == 10) {
      diag_note(e->d, (Span){-1, 0, 0}, "and %d calls further out", i + 1);
      break;
    }
    if (same)
      diag_note(e->d, e->stack[i].call, "in this call to '%s' (%d times over)", e->stack[i].fn, same + 1);
    else
      diag_note(e->d, e->stack[i].call, "in this call to '%s'", e->stack[i].fn);
    shown++;
    i -= same;
  }
  longjmp(e->fail, 1);
}

static void unwind_cb(void *ctx) { unwind(ctx); }

static _Noreturn void fail(Elab *e, Span at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static _Noreturn void fail(Elab *e, Span at, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_verror(e->d, at, fmt, ap);
  va_end(ap);
  unwind(e);
}

static const char *kind_name(const Val *v) {
  static const char *names[] = {"nothing", "an int", "a float", "a bool", "a string",
                                "a tensor", "a tuple", "a dtype", "a list"};
  return names[v->k];
}

static Val v_int(int64_t i) { return (Val){.k = V_INT, .i = i}; }
static Val v_float(double f) { return (Val){.k = V_FLOAT, .f = f}; }
static Val v_bool(bool b) { return (Val){.k = V_BOOL, .i = b}; }
static Val v_tensor(Node *t) { return (Val){.k = V_TENSOR, .t = t}; }

static bool is_num(const Val *v) { return v->k == V_INT || v->k == V_FLOAT || v->k == V_BOOL; }
static double num(const Val *v) { return v->k == V_FLOAT ? v->f : (double)v->i; }

static int64_t want_int(Elab *e, const Ast *at, Val v, const char *what) {
  if (v.k != V_INT) fail(e, at->span, "%s must be an int, not %s", what, kind_name(&v));
  return v.i;
}

static bool want_bool(Elab *e, const Ast *at, Val v, const char *what) {
  if (v.k != V_BOOL)
    fail(e, at->span, "%s must be a compile-time bool, not %s", what, kind_name(&v));
  return v.i;
}

static Node *want_tensor(Elab *e, const Ast *at, Val v, const char *what) {
  if (v.k == V_LIST)
    fail(e, at->span, "%s must be a tensor, not a list of %d; stack(xs, axis = ...) or "
         "concat(xs, axis = ...) makes one tensor of a list", what, v.n);
  if (v.k != V_TENSOR) fail(e, at->span, "%s must be a tensor, not %s", what, kind_name(&v));
  return v.t;
}

// ---- environments

static Binding *env_find(Env *env, const char *name) {
  for (; env; env = env->up)
    for (Binding *b = env->vars; b; b = b->next)
      if (strcmp(b->name, name) == 0) return b;
  return NULL;
}

static void env_set(Elab *e, Env *env, const char *name, Val v) {
  Binding *b = arena_alloc(&e->c->arena, sizeof *b);
  b->name = name;
  b->v = v;
  b->next = env->vars;
  env->vars = b;
}

// ---- functions

// Functions found in the module that defines fn, so a library's functions
// call each other whatever the caller imported.
typedef struct {
  const Ast *fn;
  const Module *home;
} FnRef;

static FnRef lookup_fn(Elab *e, const Module *home, const char *name) {
  for (int i = 0; i < home->ast->list.n; i++) {
    const Ast *it = home->ast->list.items[i];
    if (it->kind == N_FN && strcmp(it->name, name) == 0) return (FnRef){it, home};
  }
  for (int k = 0; k < home->nimports; k++) {
    const Module *dep = home->imports[k];
    for (int i = 0; dep && dep->ast && i < dep->ast->list.n; i++) {
      const Ast *it = dep->ast->list.items[i];
      if (it->kind == N_FN && strcmp(it->name, name) == 0) return (FnRef){it, dep};
    }
  }
  (void)e;
  return (FnRef){NULL, NULL};
}

// Whether calling fn declares parameters, directly or through its callees.
static bool declares_params(Elab *e, const Module *home, const Ast *n, int depth);

static bool block_declares(Elab *e, const Module *home, const Ast *n, int depth) {
  if (!n || depth > 64) return false;
  if (n->kind == N_PARAM || n->kind == N_BUFFER) return true;
  if (n->kind == N_CALL && n->a->kind == N_NAME) {
    FnRef r = lookup_fn(e, home, n->a->name);
    if (r.fn && declares_params(e, r.home, r.fn, depth + 1)) return true;
  }
  if (block_declares(e, home, n->a, depth) || block_declares(e, home, n->b, depth) ||
      block_declares(e, home, n->c, depth))
    return true;
  for (int i = 0; i < n->list.n; i++)
    if (block_declares(e, home, n->list.items[i], depth)) return true;
  return false;
}

static bool declares_params(Elab *e, const Module *home, const Ast *fn, int depth) {
  return block_declares(e, home, fn->b, depth);
}

// ---- evaluation

typedef struct {
  Elab *e;
  const Module *home;   // module whose functions are visible
  Env *env;
} Ctx;

static Val eval(Ctx *x, const Ast *n);
static void exec_block(Ctx *x, const Ast *block);

static Node *const_like(Elab *e, Val v, const Node *like) {
  DType t = like ? like->dtype : DT_F32;
  if (v.k == V_FLOAT && !dtype_is_float(t)) t = DT_F32;
  if (v.k == V_BOOL && !like) t = DT_BOOL;
  return g_const(e->g, num(&v), t, (Shape){0});
}

static Node *as_tensor(Elab *e, const Ast *at, Val v, const Node *like) {
  if (v.k == V_TENSOR) return v.t;
  if (is_num(&v)) return const_like(e, v, like);
  if (v.k == V_LIST) return want_tensor(e, at, v, "an operand");
  fail(e, at->span, "expected a tensor or a number, not %s", kind_name(&v));
}

static Op binary_op(int op) {
  switch (op) {
  case '+': return OP_ADD;
  case '-': return OP_SUB;
  case '*': return OP_MUL;
  case '/': return OP_DIV;
  case AOP_POW: return OP_POW;
  case '<': return OP_LT;
  case '>': return OP_GT;
  case AOP_LE: return OP_LE;
  case AOP_GE: return OP_GE;
  case AOP_EQ: return OP_EQ;
  case AOP_NE: return OP_NE;
  }
  return OP_COUNT;
}

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static Val ct_binary(Elab *e, const Ast *n, Val a, Val b) {
  int op = n->op;
  bool ints = a.k == V_INT && b.k == V_INT;
  if ((op == AOP_EQ || op == AOP_NE) && a.k == V_STR && b.k == V_STR)
    return v_bool((strcmp(a.s, b.s) == 0) == (op == AOP_EQ));
  if ((op == AOP_EQ || op == AOP_NE) && a.k == V_DTYPE && b.k == V_DTYPE)
    return v_bool((a.dt == b.dt) == (op == AOP_EQ));
  // a string and a number are never equal (ignore_index = "none" or 3)
  if ((op == AOP_EQ || op == AOP_NE) && (a.k == V_STR) != (b.k == V_STR) && (is_num(&a) || is_num(&b)))
    return v_bool(op == AOP_NE);
  if (!is_num(&a) || !is_num(&b))
    fail(e, n->span, "cannot apply '%s' to %s and %s", ast_op_name(op), kind_name(&a), kind_name(&b));
  double x = num(&a), y = num(&b);
  int64_t r;
  switch (op) {
  case '+':
    if (ints && !__builtin_add_overflow(a.i, b.i, &r)) return v_int(r);
    return v_float(x + y);
  case '-':
    if (ints && !__builtin_sub_overflow(a.i, b.i, &r)) return v_int(r);
    return v_float(x - y);
  case '*':
    if (ints && !__builtin_mul_overflow(a.i, b.i, &r)) return v_int(r);
    return v_float(x * y);
  case '/':
    if (y == 0) fail(e, n->span, "division by zero");
    return v_float(x / y);
  case AOP_FLOORDIV:
  case '%':
    if (y == 0) fail(e, n->span, "division by zero");
    if (ints) return v_int(op == '%' ? a.i - floor_div(a.i, b.i) * b.i : floor_div(a.i, b.i));
    return v_float(op == '%' ? x - floor(x / y) * y : floor(x / y));
  case AOP_POW:
    if (ints && b.i >= 0 && b.i < 64) {
      int64_t p = 1;
      bool over = false;
      for (int64_t k = 0; k < b.i; k++) over |= __builtin_mul_overflow(p, a.i, &p);
      if (!over) return v_int(p);
    }
    return v_float(pow(x, y));
  case '<': return v_bool(x < y);
  case '>': return v_bool(x > y);
  case AOP_LE: return v_bool(x <= y);
  case AOP_GE: return v_bool(x >= y);
  case AOP_EQ: return v_bool(x == y);
  case AOP_NE: return v_bool(x != y);
  case '@': break;
  }
  fail(e, n->span, "'%s' needs tensors", ast_op_name(op));
}

// xs + ys: a new list of the items of both; lists take no other operator.
static Val list_binary(Elab *e, const Ast *n, Val a, Val b) {
  if (n->op != '+' || a.k != V_LIST || b.k != V_LIST)
    fail(e, n->span, "cannot apply '%s' to %s and %s; a list grows by xs = xs + [x]",
         ast_op_name(n->op), kind_name(&a), kind_name(&b));
  Val r = {.k = V_LIST, .n = a.n + b.n};
  r.items = arena_alloc(&e->c->arena, sizeof(Val) * (size_t)(r.n ? r.n : 1));
  for (int i = 0; i < a.n; i++) r.items[i] = a.items[i];
  for (int i = 0; i < b.n; i++) r.items[a.n + i] = b.items[i];
  return r;
}

static Val eval_binary(Ctx *x, const Ast *n) {
  Elab *e = x->e;
  if (n->op == AOP_AND || n->op == AOP_OR) {   // short-circuit, compile time only
    bool a = want_bool(e, n->a, eval(x, n->a), "the operand of 'and'/'or'");
    if (n->op == AOP_AND ? !a : a) return v_bool(a);
    return v_bool(want_bool(e, n->b, eval(x, n->b), "the operand of 'and'/'or'"));
  }
  Val a = eval(x, n->a), b = eval(x, n->b);
  // `w == none`: whether an optional argument was given, whatever it is
  if ((n->op == AOP_EQ || n->op == AOP_NE) && (a.k == V_NONE || b.k == V_NONE))
    return v_bool((a.k == b.k) == (n->op == AOP_EQ));
  if (a.k == V_LIST || b.k == V_LIST) return list_binary(e, n, a, b);
  if (a.k != V_TENSOR && b.k != V_TENSOR) return ct_binary(e, n, a, b);
  // a string and a tensor are never equal, at compile time (mask = "none" or a tensor)
  if ((n->op == AOP_EQ || n->op == AOP_NE) && (a.k == V_STR || b.k == V_STR)) return v_bool(n->op == AOP_NE);
  e->g->loc = n->span;
  Node *ta = as_tensor(e, n->a, a, b.k == V_TENSOR ? b.t : NULL);
  Node *tb = as_tensor(e, n->b, b, ta);
  if (n->op == '@') return v_tensor(g_matmul(e->g, ta, tb, false, false));
  if (n->op == AOP_FLOORDIV || n->op == '%') {   // integers: exact (IDIV); floats: floor(a / b)
    bool ints = dtype_is_int(ta->dtype) && dtype_is_int(tb->dtype) && ta->dtype != DT_BOOL && tb->dtype != DT_BOOL;
    Node *q = ints ? g_binary(e->g, OP_IDIV, ta, tb) : g_unary(e->g, OP_FLOOR, g_binary(e->g, OP_DIV, ta, tb));
    if (n->op == AOP_FLOORDIV) return v_tensor(q);
    return v_tensor(g_binary(e->g, OP_SUB, ta, g_binary(e->g, OP_MUL, q, tb)));
  }
  return v_tensor(g_binary(e->g, binary_op(n->op), ta, tb));
}

static Val eval_unary(Ctx *x, const Ast *n) {
  Elab *e = x->e;
  Val v = eval(x, n->a);
  if (n->op == AOP_NOT) return v_bool(!want_bool(e, n->a, v, "the operand of 'not'"));
  if (n->op == '+') return v;
  if (v.k == V_INT && v.i != INT64_MIN) return v_int(-v.i);
  if (v.k == V_FLOAT) return v_float(-v.f);
  e->g->loc = n->span;
  return v_tensor(g_unary(e->g, OP_NEG, want_tensor(e, n->a, v, "the operand of '-'")));
}

// Normalizes a possibly negative axis of a rank-n tensor.
static int axis_of(Elab *e, const Ast *at, int64_t a, int n) {
  if (a < -n || a >= n) fail(e, at->span, "axis %lld is out of range for %d dimensions", (long long)a, n);
  return (int)(a < 0 ? a + n : a);
}

static Shape tensor_shape_of(const Node *t) { return t->shape; }

// ---- indexing

// The bounds of slice `it` over a dimension (or sequence) of length len,
// with Python's (and NumPy's) rules: negative bounds count from the end, then
// clamp; a negative step walks down from start, which defaults to len - 1,
// to stop, which defaults to before the first element. Returns the number of
// elements taken: lo, lo + st, ... while short of hi. With st < 0, hi may be
// -1 (down to index 0 included).
static int64_t slice_bounds(Ctx *x, const Ast *it, int64_t len, int64_t *lo, int64_t *hi, int64_t *st) {
  Elab *e = x->e;
  *st = 1;
  if (it->c) *st = want_int(e, it->c, eval(x, it->c), "a slice step");
  if (*st == 0) fail(e, it->c->span, "a slice step cannot be zero");
  bool down = *st < 0;
  *lo = down ? len - 1 : 0;
  *hi = down ? -1 : len;
  if (it->a) *lo = want_int(e, it->a, eval(x, it->a), "a slice bound");
  if (it->b) *hi = want_int(e, it->b, eval(x, it->b), "a slice bound");
  int64_t *ends[2] = {lo, hi};
  for (int k = 0; k < 2; k++) {
    if (!(k == 0 ? it->a : it->b)) continue;   // the defaults are already in range
    int64_t *v = ends[k];
    if (*v < 0) *v += len;
    if (down) *v = *v < 0 ? -1 : *v > len - 1 ? len - 1 : *v;
    else *v = *v < 0 ? 0 : *v > len ? len : *v;
  }
  if (down) {
    if (*hi > *lo) *hi = *lo;
    return *lo > *hi ? (*lo - *hi - 1) / -*st + 1 : 0;
  }
  if (*hi < *lo) *hi = *lo;
  return (*hi - *lo + *st - 1) / *st;
}

// A tuple or a list indexed by a compile-time int (negative counts from the
// end) or sliced (a new one of the same kind, any step).
static Val index_seq(Ctx *x, const Ast *n, Val base) {
  Elab *e = x->e;
  const Ast *it = n->list.items[0];
  const char *kind = base.k == V_LIST ? "list" : "tuple";
  if (n->list.n != 1 || it->kind == N_ELLIPSIS)
    fail(e, n->span, "a %s takes one index or one slice", kind);
  if (it->kind == N_SLICE) {
    int64_t lo, hi, st;
    int64_t count = slice_bounds(x, it, base.n, &lo, &hi, &st);
    Val r = {.k = base.k, .n = (int)count};
    r.items = arena_alloc(&e->c->arena, sizeof(Val) * (size_t)(count ? count : 1));
    for (int64_t i = 0; i < count; i++) r.items[i] = base.items[lo + i * st];
    return r;
  }
  Val iv = eval(x, it);
  if (iv.k == V_TENSOR)
    fail(e, it->span, "a %s index must be a compile-time int, not a tensor", kind);
  int64_t i = want_int(e, it, iv, base.k == V_LIST ? "a list index" : "a tuple index");
  if (i < -base.n || i >= base.n)
    fail(e, n->span, "index %lld is out of range for a %s of %d", (long long)i, kind, base.n);
  return base.items[i < 0 ? i + base.n : i];
}

static Val eval_index(Ctx *x, const Ast *n) {
  Elab *e = x->e;
  Val base = eval(x, n->a);
  if (base.k == V_TUPLE || base.k == V_LIST) return index_seq(x, n, base);
  Node *t = want_tensor(e, n->a, base, "what is indexed");
  int nd = t->shape.ndim, given = 0;
  for (int i = 0; i < n->list.n; i++) given += n->list.items[i]->kind != N_ELLIPSIS;
  if (given > nd)
    fail(e, n->span, "%d indices for a tensor with %d dimensions", given, nd);
  int64_t start[MAX_DIMS], stop[MAX_DIMS], step[MAX_DIMS];
  bool drop[MAX_DIMS] = {0};
  for (int d = 0; d < nd; d++) {
    start[d] = 0;
    stop[d] = t->shape.d[d];
    step[d] = 1;
  }
  int d = 0;
  for (int i = 0; i < n->list.n; i++) {
    const Ast *it = n->list.items[i];
    if (it->kind == N_ELLIPSIS) {
      d += nd - given;
      continue;
    }
    int64_t len = t->shape.d[d];
    if (it->kind == N_SLICE) {
      int64_t lo, hi, st;
      slice_bounds(x, it, len, &lo, &hi, &st);
      start[d] = lo;
      stop[d] = hi;
      step[d] = st;
    } else {
      Val iv = eval(x, it);
      if (iv.k == V_TENSOR)
        fail(e, it->span, "indexing with a tensor is not supported; use gather(table, ids)");
      int64_t k = want_int(e, it, iv, "an index");
      if (k < -len || k >= len)
        fail(e, it->span, "index %lld is out of range for dimension %d of size %lld", (long long)k,
             d, (long long)len);
      if (k < 0) k += len;
      start[d] = k;
      stop[d] = k + 1;
      drop[d] = true;
    }
    d++;
  }
  e->g->loc = n->span;
  Node *r = g_slice(e->g, t, start, stop, step);
  Shape s = {0};
  for (int k = 0; k < nd; k++)
    if (!drop[k]) s.d[s.ndim++] = r->shape.d[k];
  return v_tensor(g_reshape(e->g, r, s));
}

// ---- builtins

typedef struct {
  const Ast *call;
  Val pos[16];
  const Ast *pos_at[16];
  int npos;
  const Ast *kw[8];   // KWARG nodes
  Val kwv[8];
  int nkw;
} Args;

static void eval_args(Ctx *x, const Ast *call, Args *a, const Val *receiver) {
  memset(a, 0, sizeof *a);
  a->call = call;
  if (receiver) {
    a->pos[0] = *receiver;
    a->pos_at[0] = call->a;
    a->npos = 1;
  }
  for (int i = 0; i < call->list.n; i++) {
    const Ast *arg = call->list.items[i];
    if (arg->kind == N_KWARG) {
      if (a->nkw == 8) fail(x->e, arg->span, "too many keyword arguments");
      a->kw[a->nkw] = arg;
      a->kwv[a->nkw++] = eval(x, arg->a);
    } else {
      if (a->npos == 16) fail(x->e, arg->span, "too many arguments");
      a->pos_at[a->npos] = arg;
      a->pos[a->npos++] = eval(x, arg);
    }
  }
}

static const Val *kwarg(const Args *a, const char *name) {
  for (int i = 0; i < a->nkw; i++)
    if (strcmp(a->kw[i]->name, name) == 0) return &a->kwv[i];
  return NULL;
}

// Positional argument i, or keyword `name`, or NULL.
static const Val *arg_or_kw(const Args *a, int i, const char *name) {
  if (i < a->npos) return &a->pos[i];
  return kwarg(a, name);
}

// Ints from the arguments from index `from` on, flattening tuples (x.shape).
static int flat_ints(Elab *e, const Args *a, int from, int64_t *out, int max) {
  int n = 0;
  for (int i = from; i < a->npos; i++) {
    const Val *v = &a->pos[i];
    int k = v->k == V_TUPLE ? v->n : 1;
    for (int j = 0; j < k; j++) {
      const Val *it = v->k == V_TUPLE ? &v->items[j] : v;
      if (n == max) fail(e, a->call->span, "too many dimensions (the limit is %d)", max);
      out[n++] = want_int(e, a->pos_at[i], *it, "a dimension");
    }
  }
  return n;
}

// The axes argument of a reduction: None (all), an int, or a tuple of ints.
static uint32_t reduce_axes(Elab *e, const Args *a, const Node *t) {
  const Val *ax = arg_or_kw(a, 1, "axis");
  int nd = t->shape.ndim;
  if (!ax) return nd ? (1u << nd) - 1 : 0;
  uint32_t mask = 0;
  int k = ax->k == V_TUPLE ? ax->n : 1;
  for (int j = 0; j < k; j++) {
    const Val *it = ax->k == V_TUPLE ? &ax->items[j] : ax;
    mask |= 1u << axis_of(e, a->call, want_int(e, a->call, *it, "axis"), nd);
  }
  return mask;
}

// The KWARG node of keyword name, or NULL.
static const Ast *kwarg_at(const Args *a, const char *name) {
  for (int i = 0; i < a->nkw; i++)
    if (strcmp(a->kw[i]->name, name) == 0) return a->kw[i];
  return NULL;
}

// A compile-time int or float keyword, or dflt.
static double kw_num(Elab *e, const Args *a, const char *fn, const char *name, double dflt) {
  const Val *v = kwarg(a, name);
  if (!v) return dflt;
  if (v->k != V_INT && v->k != V_FLOAT)
    fail(e, kwarg_at(a, name)->span, "%s's %s must be a compile-time number, not %s", fn, name, kind_name(v));
  return num(v);
}

static bool kw_bool(Elab *e, const Args *a, const char *name, bool dflt) {
  const Val *v = kwarg(a, name);
  return v ? want_bool(e, a->call, *v, name) : dflt;
}

static void pair_arg(Elab *e, const Args *a, const Val *v, int out[2], int dflt) {
  if (!v) {
    out[0] = out[1] = dflt;
  } else if (v->k == V_TUPLE && v->n == 2) {
    out[0] = (int)want_int(e, a->call, v->items[0], "a size");
    out[1] = (int)want_int(e, a->call, v->items[1], "a size");
  } else {
    out[0] = out[1] = (int)want_int(e, a->call, *v, "a size");
  }
}

static DType dtype_arg(Elab *e, const Args *a, const Val *v, DType dflt) {
  if (!v) return dflt;
  if (v->k != V_DTYPE) fail(e, a->call->span, "expected a dtype such as f32, not %s", kind_name(v));
  return v->dt;
}

static Node *reduce_builtin(Elab *e, const char *name, const Args *a) {
  Node *t = want_tensor(e, a->pos_at[0], a->pos[0], "the reduced value");
  uint32_t axes = reduce_axes(e, a, t);
  bool keep = kw_bool(e, a, "keep", false);
  if (!strcmp(name, "sum")) return g_reduce(e->g, OP_SUM, t, axes, keep);
  if (!strcmp(name, "max")) return g_reduce(e->g, OP_RMAX, t, axes, keep);
  if (!strcmp(name, "min"))
    return g_unary(e->g, OP_NEG, g_reduce(e->g, OP_RMAX, g_unary(e->g, OP_NEG, t), axes, keep));
  if (!strcmp(name, "argmax")) {
    if (!arg_or_kw(a, 1, "axis")) axes = 1u << (t->shape.ndim - 1);
    if (__builtin_popcount(axes) != 1) fail(e, a->call->span, "argmax takes exactly one axis");
    return g_reduce(e->g, OP_ARGMAX, t, axes, keep);
  }
  // mean
  int64_t count = 1;
  for (int i = 0; i < t->shape.ndim; i++)
    if (axes & (1u << i)) count *= t->shape.d[i];
  Node *s = g_reduce(e->g, OP_SUM, dtype_is_float(t->dtype) ? t : g_cast(e->g, t, DT_F32), axes, keep);
  return g_binary(e->g, OP_MUL, s, g_const(e->g, count ? 1.0 / (double)count : NAN, s->dtype, (Shape){0}));
}

// The unary op the language names name (ops.def's builtin column), or OP_COUNT.
static Op unary_named(const char *name) {
  for (int op = 0; op < OP_COUNT; op++)
    if (op_kind((Op)op) == KIND_UNARY && !strcmp(op_builtin((Op)op), name)) return (Op)op;
  return OP_COUNT;
}

// A unique, deterministic name for a random stream: the scope plus a count.
static const char *random_name(Elab *e) {
  Counter *c;
  for (c = e->counters; c; c = c->next)
    if (c->scope == e->scope && c->what[0] == '\0') break;
  if (!c) {
    c = arena_alloc(&e->c->arena, sizeof *c);
    *c = (Counter){e->scope, "", 0, e->counters};
    e->counters = c;
  }
  return arena_printf(&e->c->arena, "%s%srandom_%d", e->scope, *e->scope ? "." : "", c->n++);
}

// softplus(x, beta, threshold) as PyTorch defines it: x where beta x >
// threshold, else log(1 + exp(beta x)) / beta.
static Val softplus_builtin(Elab *e, const Args *a) {
  Graph *g = e->g;
  double beta = kw_num(e, a, "softplus", "beta", 1.0), threshold = kw_num(e, a, "softplus", "threshold", 20.0);
  if (!(beta > 0)) fail(e, kwarg_at(a, "beta")->span, "softplus's beta must be positive, not %g", beta);
  if (is_num(&a->pos[0])) {
    double v = num(&a->pos[0]);
    return v_float(v * beta > threshold ? v : interp_pointwise(OP_SOFTPLUS, v * beta, 0, 0) / beta);
  }
  Node *t = want_tensor(e, a->pos_at[0], a->pos[0], "the argument");
  if (!dtype_is_float(t->dtype)) t = g_cast(g, t, DT_F32);
  Node *bx = t;
  if (beta != 1.0) bx = g_binary(g, OP_MUL, t, g_const(g, beta, t->dtype, (Shape){0}));
  Node *y = g_unary(g, OP_SOFTPLUS, bx);
  if (beta != 1.0) y = g_binary(g, OP_DIV, y, g_const(g, beta, t->dtype, (Shape){0}));
  Node *linear = g_binary(g, OP_GT, bx, g_const(g, threshold, t->dtype, (Shape){0}));
  return v_tensor(g_where(g, linear, t, y));
}

// The tensors of concat or stack: the positional arguments, a list or tuple
// among them standing for its items. Owned by the arena.
static Node **tensor_args(Elab *e, const Args *a, const char *fn, int *count) {
  int n = 0;
  for (int i = 0; i < a->npos; i++)
    n += a->pos[i].k == V_LIST || a->pos[i].k == V_TUPLE ? a->pos[i].n : 1;
  if (n == 0) fail(e, a->call->span, "%s of an empty list", fn);
  Node **xs = arena_alloc(&e->c->arena, sizeof *xs * (size_t)n);
  char what[64];
  snprintf(what, sizeof what, "what %s takes", fn);
  n = 0;
  for (int i = 0; i < a->npos; i++) {
    const Val *v = &a->pos[i];
    if (v->k != V_LIST && v->k != V_TUPLE) {
      xs[n++] = want_tensor(e, a->pos_at[i], *v, what);
      continue;
    }
    for (int j = 0; j < v->n; j++) {
      if (v->items[j].k != V_TENSOR)
        fail(e, a->pos_at[i]->span, "%s: item %d of the %s is %s, not a tensor", fn, j,
             v->k == V_LIST ? "list" : "tuple", kind_name(&v->items[j]));
      xs[n++] = v->items[j].t;
    }
  }
  *count = n;
  return xs;
}

// xs[0], ..., xs[n-1] joined along axis as a balanced tree of two-input
// concats, so the index arithmetic of a load is log2(n) deep, not n.
static Node *concat_tree(Graph *g, Node **xs, int n, int axis) {
  if (n == 1) return xs[0];
  Node *lo = concat_tree(g, xs, n / 2, axis);
  return g_concat(g, lo, concat_tree(g, xs + n / 2, n - n / 2, axis), axis);
}

// stack: every item of the same dtype and shape gets a new size-1 dimension
// at axis (in [-(r + 1), r] for rank r, as torch.stack), then they are joined
// along it.
static Node *stack_tensors(Elab *e, const Args *a, Node **xs, int n, int64_t axis) {
  const Node *x0 = xs[0];
  for (int i = 1; i < n; i++)
    if (xs[i]->dtype != x0->dtype || !shape_eq(&xs[i]->shape, &x0->shape)) {
      char t0[96], ti[96];
      fail(e, a->call->span, "stack needs items of one shape and dtype, but item %d is %s and item 0 is %s",
           i, type_str(ti, sizeof ti, xs[i]->dtype, &xs[i]->shape),
           type_str(t0, sizeof t0, x0->dtype, &x0->shape));
    }
  int r = x0->shape.ndim;
  if (r == MAX_DIMS) fail(e, a->call->span, "stack of %d-dimensional tensors has too many dimensions", r);
  int ax = axis_of(e, a->call, axis, r + 1);
  Shape s = {.ndim = r + 1};
  for (int d = 0, k = 0; d <= r; d++) s.d[d] = d == ax ? 1 : x0->shape.d[k++];
  Node **ys = arena_alloc(&e->c->arena, sizeof *ys * (size_t)n);
  for (int i = 0; i < n; i++) ys[i] = g_reshape(e->g, xs[i], s);
  return concat_tree(e->g, ys, n, ax);
}

// An operand of a bitwise function: a tensor of an integer dtype (not bool;
// a number takes the other operand's dtype).
static Node *bits_operand(Elab *e, const char *name, const Args *a, int k, const Node *like) {
  Node *t = as_tensor(e, a->pos_at[k], a->pos[k], like);
  if (!dtype_is_int(t->dtype) || t->dtype == DT_BOOL)
    fail(e, a->pos_at[k]->span, "%s takes integer tensors (i32, i64, u8), not %s", name, dtype_name(t->dtype));
  return t;
}

// bit_and, bit_or, bit_xor, shift_left, shift_right (a tensor and a tensor
// or a number), bit_not, bitcast.
static Node *bits_builtin(Elab *e, const char *name, const Args *a) {
  if (!strcmp(name, "bitcast"))
    return g_bitcast(e->g, want_tensor(e, a->pos_at[0], a->pos[0], "what is bitcast"),
                     dtype_arg(e, a, &a->pos[1], DT_F32));
  if (!strcmp(name, "bit_not")) {
    want_tensor(e, a->pos_at[0], a->pos[0], "the argument of bit_not");
    return g_unary(e->g, OP_BITNOT, bits_operand(e, name, a, 0, NULL));
  }
  if (a->pos[0].k != V_TENSOR && a->pos[1].k != V_TENSOR)
    fail(e, a->call->span, "%s needs a tensor operand", name);
  Node *p = bits_operand(e, name, a, 0, a->pos[1].k == V_TENSOR ? a->pos[1].t : NULL);
  Node *q = bits_operand(e, name, a, 1, p);
  Op op = !strcmp(name, "bit_and") ? OP_BITAND : !strcmp(name, "bit_or") ? OP_BITOR : !strcmp(name, "bit_xor") ? OP_BITXOR
          : !strcmp(name, "shift_left") ? OP_SHL : OP_SHR;
  return g_binary(e->g, op, p, q);
}

// "path:line" of the model-file statement that led to here: the outermost
// call when inside one, else here (a statement of the model itself); *line
// is the line (0 without a source).
static const char *model_line(Elab *e, Span here, int *line) {
  Span at = e->depth ? e->stack[0].call : here;
  int col = 0;
  const Source *src = at.file >= 0 ? e->d->files[at.file] : NULL;
  *line = 0;
  if (src) diag_line_col(src, at.begin, line, &col);
  return arena_printf(&e->c->arena, "%s:%d", src ? src->path : "?", *line);
}

static Val call_builtin(Ctx *x, const char *name, Args *a) {
  Elab *e = x->e;
  Graph *g = e->g;
  g->loc = a->call->span;
  Op uop = unary_named(name);
  if (!strcmp(name, "swish")) uop = OP_SILU;
  if (!strcmp(name, "detach")) uop = OP_STOP_GRADIENT;
  if (!strcmp(name, "softplus")) return softplus_builtin(e, a);
  if (uop != OP_COUNT) {
    if (is_num(&a->pos[0])) return v_float(interp_pointwise(uop, num(&a->pos[0]), 0, 0));
    return v_tensor(g_unary(g, uop, want_tensor(e, a->pos_at[0], a->pos[0], "the argument")));
  }
  if (!strcmp(name, "maximum") || !strcmp(name, "minimum") || !strcmp(name, "pow")) {
    Op op = name[1] == 'a' ? OP_MAX : name[1] == 'i' ? OP_MIN : OP_POW;
    if (is_num(&a->pos[0]) && is_num(&a->pos[1])) {
      double p = num(&a->pos[0]), q = num(&a->pos[1]);
      return v_float(op == OP_MAX ? fmax(p, q) : op == OP_MIN ? fmin(p, q) : pow(p, q));
    }
    Node *p = as_tensor(e, a->pos_at[0], a->pos[0], a->pos[1].k == V_TENSOR ? a->pos[1].t : NULL);
    Node *q = as_tensor(e, a->pos_at[1], a->pos[1], p);
    return v_tensor(g_binary(g, op, p, q));
  }
  if (!strcmp(name, "attention")) {   // fused softmax(scale q k^T) v (docs/ops.md)
    Node *q = want_tensor(e, a->pos_at[0], a->pos[0], "attention's q");
    Node *k = want_tensor(e, a->pos_at[1], a->pos[1], "attention's k");
    Node *v = want_tensor(e, a->pos_at[2], a->pos[2], "attention's v");
    const Val *m = kwarg(a, "mask");
    Node *mask = NULL;
    if (m && m->k == V_TENSOR) mask = m->t;
    else if (m && m->k != V_NONE && !(m->k == V_STR && !strcmp(m->s, "none")))
      fail(e, kwarg_at(a, "mask")->span, "attention's mask must be a bool tensor or none, not %s", kind_name(m));
    double D = q->shape.ndim == 4 ? (double)q->shape.d[3] : 1;
    double scale = kw_num(e, a, "attention", "scale", D > 0 ? 1 / sqrt(D) : 1);
    double p = kw_num(e, a, "attention", "dropout", 0);   // as the stdlib's dropout: while training only
    if (!(p >= 0 && p < 1)) fail(e, kwarg_at(a, "dropout")->span, "attention's dropout must be in [0, 1), not %g", p);
    bool drop = e->training && p > 0;
    Node *y = g_attention(g, q, k, v, mask, kw_bool(e, a, "causal", false), scale, drop ? p : 0, drop ? random_name(e) : NULL);
    return v_tensor(g_attention_out(g, y));
  }
  if (!strcmp(name, "where")) {
    Node *c = want_tensor(e, a->pos_at[0], a->pos[0], "the condition of where");
    const Node *like = a->pos[1].k == V_TENSOR ? a->pos[1].t : a->pos[2].k == V_TENSOR ? a->pos[2].t : NULL;
    Node *p = as_tensor(e, a->pos_at[1], a->pos[1], like);
    Node *q = as_tensor(e, a->pos_at[2], a->pos[2], p);
    return v_tensor(g_where(g, c, p, q));
  }
  if (!strcmp(name, "boundary") || !strcmp(name, "fused") || !strcmp(name, "remat")) {   // the same value, marked
    Node *t = want_tensor(e, a->pos_at[0], a->pos[0], "the value marked");
    t->fuse = name[0] == 'b' ? FUSE_BOUNDARY : name[0] == 'f' ? FUSE_INLINE : FUSE_REMAT;
    return v_tensor(t);
  }
  if (!strcmp(name, "fp32")) {   // the op computing x stays f32 under a low precision policy
    Node *t = want_tensor(e, a->pos_at[0], a->pos[0], "the value kept in fp32");
    t->fp32 = true;
    return v_tensor(t);
  }
  if (!strncmp(name, "bit", 3) || !strncmp(name, "shift_", 6)) return v_tensor(bits_builtin(e, name, a));
  if (!strcmp(name, "cast"))
    return v_tensor(g_cast(g, want_tensor(e, a->pos_at[0], a->pos[0], "what is cast"),
                           dtype_arg(e, a, &a->pos[1], DT_F32)));
  if (!strcmp(name, "sum") || !strcmp(name, "mean") || !strcmp(name, "max") ||
      !strcmp(name, "min") || !strcmp(name, "argmax"))
    return v_tensor(reduce_builtin(e, name, a));
  if (!strcmp(name, "matmul"))
    return v_tensor(g_matmul(g, want_tensor(e, a->pos_at[0], a->pos[0], "a matmul operand"),
                             want_tensor(e, a->pos_at[1], a->pos[1], "a matmul operand"),
                             kw_bool(e, a, "ta", false), kw_bool(e, a, "tb", false)));
  if (!strcmp(name, "conv")) {
    int stride[2], pad[2], dil[2], groups[2];
    pair_arg(e, a, kwarg(a, "stride"), stride, 1);
    pair_arg(e, a, kwarg(a, "padding"), pad, 0);
    pair_arg(e, a, kwarg(a, "dilation"), dil, 1);
    pair_arg(e, a, kwarg(a, "groups"), groups, 1);
    return v_tensor(g_conv2d(g, want_tensor(e, a->pos_at[0], a->pos[0], "the conv input"),
                             want_tensor(e, a->pos_at[1], a->pos[1], "the conv kernel"), stride,
                             pad, dil, groups[0]));
  }
  if (!strcmp(name, "conv_transpose")) {
    int stride[2], pad[2], out_pad[2], dil[2], groups[2];
    pair_arg(e, a, kwarg(a, "stride"), stride, 1);
    pair_arg(e, a, kwarg(a, "padding"), pad, 0);
    pair_arg(e, a, kwarg(a, "output_padding"), out_pad, 0);
    pair_arg(e, a, kwarg(a, "dilation"), dil, 1);
    pair_arg(e, a, kwarg(a, "groups"), groups, 1);
    return v_tensor(g_conv_transpose(g, want_tensor(e, a->pos_at[0], a->pos[0], "the conv_transpose input"),
                                     want_tensor(e, a->pos_at[1], a->pos[1], "the conv_transpose kernel"),
                                     stride, pad, out_pad, dil, groups[0]));
  }
  if (!strcmp(name, "upsample")) {
    int scale[2];
    const Val *sv = &a->pos[1];
    bool pair = sv->k == V_TUPLE && sv->n == 2;
    for (int i = 0; i < 2; i++)
      scale[i] = (int)want_int(e, a->pos_at[1], pair ? sv->items[i] : *sv, "an upsample scale factor");
    const Val *mv = kwarg(a, "mode");
    bool bilinear = false;
    if (mv) {
      if (mv->k != V_STR || (strcmp(mv->s, "nearest") && strcmp(mv->s, "bilinear")))
        fail(e, a->call->span, "upsample mode must be \"nearest\" or \"bilinear\", not %s",
             mv->k == V_STR ? arena_printf(&e->c->arena, "\"%s\"", mv->s) : kind_name(mv));
      bilinear = mv->s[0] == 'b';
    }
    return v_tensor(g_upsample(g, want_tensor(e, a->pos_at[0], a->pos[0], "the upsampled value"), scale, bilinear));
  }
  if (!strcmp(name, "pool_max") || !strcmp(name, "pool_avg")) {
    int kernel[2], stride[2], pad[2];
    pair_arg(e, a, &a->pos[1], kernel, 1);
    const Val *sv = kwarg(a, "stride");
    if (sv) pair_arg(e, a, sv, stride, 1);
    else memcpy(stride, kernel, sizeof stride);
    pair_arg(e, a, kwarg(a, "padding"), pad, 0);
    return v_tensor(g_pool(g, name[5] == 'm' ? OP_POOL_MAX : OP_POOL_AVG,
                           want_tensor(e, a->pos_at[0], a->pos[0], "the pooled value"), kernel,
                           stride, pad));
  }
  if (!strcmp(name, "reshape")) {
    Node *t = want_tensor(e, a->pos_at[0], a->pos[0], "what is reshaped");
    int64_t d[MAX_DIMS];
    int nd = flat_ints(e, a, 1, d, MAX_DIMS), infer = -1;
    int64_t known = 1;
    for (int i = 0; i < nd; i++) {
      if (d[i] == -1 && infer < 0) infer = i;
      else if (d[i] < 0) fail(e, a->call->span, "reshape sizes must be at least 0 (one may be -1)");
      else known *= d[i];
    }
    if (infer >= 0) d[infer] = known ? shape_numel(&t->shape) / known : 0;
    return v_tensor(g_reshape(g, t, shape_of(nd, d)));
  }
  if (!strcmp(name, "permute") || !strcmp(name, "transpose")) {
    Node *t = want_tensor(e, a->pos_at[0], a->pos[0], "what is permuted");
    int64_t d[MAX_DIMS];
    int nd = flat_ints(e, a, 1, d, MAX_DIMS), perm[MAX_DIMS];
    int r = t->shape.ndim;
    if (name[0] == 'p') {
      if (nd != r) fail(e, a->call->span, "permute of %d dimensions needs %d axes, got %d", r, r, nd);
      for (int i = 0; i < r; i++) perm[i] = axis_of(e, a->call, d[i], r);
    } else {
      for (int i = 0; i < r; i++) perm[i] = i;
      int p = axis_of(e, a->call, d[0], r), q = axis_of(e, a->call, d[1], r);
      perm[p] = q;
      perm[q] = p;
    }
    return v_tensor(g_permute(g, t, perm));
  }
  if (!strcmp(name, "broadcast")) {
    int64_t d[MAX_DIMS];
    int nd = flat_ints(e, a, 1, d, MAX_DIMS);
    return v_tensor(g_broadcast(g, want_tensor(e, a->pos_at[0], a->pos[0], "what is broadcast"),
                                shape_of(nd, d)));
  }
  if (!strcmp(name, "pad")) {
    Node *t = want_tensor(e, a->pos_at[0], a->pos[0], "what is padded");
    int64_t lo[MAX_DIMS] = {0}, hi[MAX_DIMS] = {0};
    int k = a->npos - 1, r = t->shape.ndim;
    if (k > r) fail(e, a->call->span, "pad has %d pairs for %d dimensions", k, r);
    for (int i = 0; i < k; i++) {
      const Val *p = &a->pos[1 + i];
      if (p->k != V_TUPLE || p->n != 2) fail(e, a->pos_at[1 + i]->span, "pad takes (before, after) pairs");
      lo[r - k + i] = want_int(e, a->pos_at[1 + i], p->items[0], "padding");
      hi[r - k + i] = want_int(e, a->pos_at[1 + i], p->items[1], "padding");
    }
    const Val *v = kwarg(a, "value");
    return v_tensor(g_pad(g, t, lo, hi, v ? num(v) : 0.0));
  }
  if (!strcmp(name, "concat") || !strcmp(name, "stack")) {
    const Val *av = kwarg(a, "axis");
    int64_t axis = av ? want_int(e, a->call, *av, "axis") : 0;
    int n;
    Node **xs = tensor_args(e, a, name, &n);
    if (name[0] == 's') return v_tensor(stack_tensors(e, a, xs, n, axis));
    int ax = axis_of(e, a->call, axis, xs[0]->shape.ndim);
    for (int i = 1; i < n; i++) {   // said here about the items, not about partial joins
      bool same = xs[i]->shape.ndim == xs[0]->shape.ndim;
      for (int d = 0; same && d < xs[0]->shape.ndim; d++) same = d == ax || xs[i]->shape.d[d] == xs[0]->shape.d[d];
      if (!same) {
        char t0[96], ti[96];
        fail(e, a->call->span, "concat along axis %d needs items that agree in every other "
             "dimension, but item %d is %s and item 0 is %s", ax, i,
             type_str(ti, sizeof ti, xs[i]->dtype, &xs[i]->shape),
             type_str(t0, sizeof t0, xs[0]->dtype, &xs[0]->shape));
      }
    }
    return v_tensor(concat_tree(g, xs, n, ax));
  }
  if (!strcmp(name, "len")) {
    if (a->pos[0].k == V_LIST || a->pos[0].k == V_TUPLE) return v_int(a->pos[0].n);
    fail(e, a->pos_at[0]->span, "len takes a list or a tuple, not %s%s", kind_name(&a->pos[0]),
         a->pos[0].k == V_TENSOR ? "; the size of a tensor's first dimension is x.shape[0]" : "");
  }
  if (!strcmp(name, "gather"))
    return v_tensor(g_gather(g, want_tensor(e, a->pos_at[0], a->pos[0], "the table"),
                             want_tensor(e, a->pos_at[1], a->pos[1], "the ids")));
  if (!strcmp(name, "scatter_add"))
    return v_tensor(g_scatter_add(g, want_tensor(e, a->pos_at[0], a->pos[0], "the ids"),
                                  want_tensor(e, a->pos_at[1], a->pos[1], "the values"),
                                  want_int(e, a->pos_at[2], a->pos[2], "rows")));
  if (!strcmp(name, "one_hot")) {   // cast(reshape(label(ids), [..., 1]) == iota(n))
    Node *ids = want_tensor(e, a->pos_at[0], a->pos[0], "the ids");
    int64_t n = want_int(e, a->pos_at[1], a->pos[1], "the number of classes");
    const char *fn = e->depth ? e->stack[e->depth - 1].fn : "one_hot";
    if (!dtype_is_int(ids->dtype) || ids->dtype == DT_BOOL) {
      char t[96];
      type_str(t, sizeof t, ids->dtype, &ids->shape);
      if (e->depth) fail(e, a->pos_at[0]->span, "the labels of '%s' (one_hot) must be integers, not %s", fn, t);
      fail(e, a->pos_at[0]->span, "the labels of one_hot must be integers, not %s", t);
    }
    Shape s = ids->shape;
    if (s.ndim == MAX_DIMS) fail(e, a->call->span, "one_hot result has too many dimensions");
    s.d[s.ndim++] = 1;
    Node *checked = g_label(g, ids, n);
    const Val *ig = kwarg(a, "ignore");
    if (ig && !(ig->k == V_STR && !strcmp(ig->s, "none"))) {
      checked->p.label.skip = want_int(e, a->call, *ig, "ignore");
      checked->p.label.skips = true;
    }
    int line;
    checked->p.label.fn = fn;
    checked->p.label.at = model_line(e, a->call->span, &line);
    checked->p.label.line = line;
    Node *hot = checked;
    if (checked->p.label.skips && checked->p.label.skip >= 0 && checked->p.label.skip < n) {
      // an ignored label inside [0, n) becomes -1, which matches no class
      Node *skip = g_const(g, (double)checked->p.label.skip, ids->dtype, shape_of(0, NULL));
      hot = g_where(g, g_binary(g, OP_EQ, checked, skip), g_const(g, -1, ids->dtype, shape_of(0, NULL)), checked);
    }
    Node *eq = g_binary(g, OP_EQ, g_reshape(g, hot, s), g_iota(g, n, ids->dtype));
    return v_tensor(g_cast(g, eq, dtype_arg(e, a, kwarg(a, "dtype"), DT_F32)));
  }
  if (!strcmp(name, "fill")) {
    if (!is_num(&a->pos[0])) fail(e, a->pos_at[0]->span, "fill takes a number");
    int64_t d[MAX_DIMS];
    int nd = flat_ints(e, a, 1, d, MAX_DIMS);
    return v_tensor(g_const(g, num(&a->pos[0]), dtype_arg(e, a, kwarg(a, "dtype"), DT_F32),
                            shape_of(nd, d)));
  }
  if (!strcmp(name, "iota"))
    return v_tensor(g_iota(g, want_int(e, a->pos_at[0], a->pos[0], "the size"),
                           dtype_arg(e, a, kwarg(a, "dtype"), DT_I32)));
  if (!strcmp(name, "uniform_like")) {
    Node *t = want_tensor(e, a->pos_at[0], a->pos[0], "the argument");
    return v_tensor(g_random(g, tensor_shape_of(t), random_name(e)));
  }
  fail(e, a->call->span, "'%s' cannot be used here", name);
}

// ---- user function calls

static const char *scope_join(Elab *e, const char *scope, const char *seg) {
  return *scope ? arena_printf(&e->c->arena, "%s.%s", scope, seg) : seg;
}

static const char *auto_scope(Elab *e, const char *fn) {
  Counter *c;
  for (c = e->counters; c; c = c->next)
    if (c->scope == e->scope && strcmp(c->what, fn) == 0) break;
  if (!c) {
    c = arena_alloc(&e->c->arena, sizeof *c);
    *c = (Counter){e->scope, fn, 0, e->counters};
    e->counters = c;
  }
  int k = c->n++;
  return k ? arena_printf(&e->c->arena, "%s_%d", fn, k) : fn;
}

static void check_type(Ctx *callee, const Ast *type, Val v, const char *what, const Ast *at);

static Val call_user(Ctx *x, FnRef r, const Ast *call, Args *a) {
  Elab *e = x->e;
  const Ast *fn = r.fn;
  if (e->depth == MAX_CALL_DEPTH)
    fail(e, call->span, "calls nested more than %d deep (is '%s' recursive?)", MAX_CALL_DEPTH, fn->name);
  Env top = {0};
  Ctx inner = {e, r.home, &top};
  int np = fn->list.n;
  const Val *given[64] = {0};
  if (np > 64) fail(e, fn->span, "too many parameters");
  for (int i = 0; i < a->npos && i < np; i++) given[i] = &a->pos[i];
  for (int k = 0; k < a->nkw; k++)
    for (int i = 0; i < np; i++)
      if (!strcmp(fn->list.items[i]->name, a->kw[k]->name)) given[i] = &a->kwv[k];
  // scope of this call
  const char *scope = e->scope;
  if (call->c) {
    const Ast *sc = call->c;
    const char *seg = sc->str;
    if (!seg && sc->a)
      seg = arena_printf(&e->c->arena, "%s.%lld", sc->name,
                         (long long)want_int(e, sc->a, eval(x, sc->a), "a scope index"));
    else if (!seg)
      seg = sc->name;
    scope = scope_join(e, e->scope, seg);
  } else if (declares_params(e, r.home, fn, 0)) {
    scope = scope_join(e, e->scope, auto_scope(e, fn->name));
  }
  e->stack[e->depth++] = (Frame){fn->name, call->span, scope};
  const char *saved_scope = e->scope, *saved_gscope = e->g->scope;
  e->scope = scope;
  e->g->scope = scope;
  // bind arguments and defaults in order; check types as they are bound
  for (int i = 0; i < np; i++) {
    const Ast *p = fn->list.items[i];
    Val v;
    if (given[i]) v = *given[i];
    else if (p->b) v = eval(&inner, p->b);
    else fail(e, call->span, "missing argument '%s'", p->name);   // resolve.c reports this first
    if (p->a && v.k != V_NONE) {   // `w: f32[I, out] = none`: the type is checked when given
      char what[128];
      snprintf(what, sizeof what, "argument '%s' of '%s'", p->name, fn->name);
      check_type(&inner, p->a, v, what, i < a->npos ? a->pos_at[i] : call);
    }
    if (p->a && p->a->kind == N_TYPE && !strcmp(p->a->name, "float") && v.k == V_INT) v = v_float((double)v.i);
    Binding *dim = env_find(&top, p->name);   // `fn f(x: f32[n], n: int)`
    if (dim && dim->v.k == V_INT && v.k == V_INT && dim->v.i != v.i)
      fail(e, call->span, "argument '%s' of '%s' is %lld, but the shape of an earlier argument "
           "makes it %lld", p->name, fn->name, (long long)v.i, (long long)dim->v.i);
    env_set(e, &top, p->name, v);
  }
  e->returning = false;
  e->ret = (Val){0};
  exec_block(&inner, fn->b);
  Val ret = e->ret;
  e->returning = false;
  if (fn->a) {
    char what[128];
    snprintf(what, sizeof what, "the result of '%s'", fn->name);
    if (fn->a->kind == N_TUPLE_TYPE) {
      if (ret.k != V_TUPLE || ret.n != fn->a->list.n)
        fail(e, fn->a->span, "%s must be a tuple of %d", what, fn->a->list.n);
      for (int i = 0; i < ret.n; i++) check_type(&inner, fn->a->list.items[i], ret.items[i], what, fn->a);
    } else {
      check_type(&inner, fn->a, ret, what, fn->a);
    }
  }
  e->scope = saved_scope;
  e->g->scope = saved_gscope;
  e->depth--;
  return ret;
}

// Checks v against a type annotation, binding the names of unbound dimensions
// in the callee's environment.
static void check_type(Ctx *callee, const Ast *type, Val v, const char *what, const Ast *at) {
  Elab *e = callee->e;
  const char *tn = type->name;
  if (!type->shaped) {
    if (!strcmp(tn, "tensor")) {
      if (v.k != V_TENSOR) fail(e, at->span, "%s must be a tensor, not %s", what, kind_name(&v));
      return;
    }
    if (!strcmp(tn, "int") && v.k == V_INT) return;
    if (!strcmp(tn, "float") && (v.k == V_FLOAT || v.k == V_INT)) return;
    if (!strcmp(tn, "bool") && v.k == V_BOOL) return;
    if (!strcmp(tn, "str") && v.k == V_STR) return;
    if (!strcmp(tn, "list")) {
      if (v.k != V_LIST) fail(e, at->span, "%s must be a list, not %s", what, kind_name(&v));
      return;
    }
    if (builtin_find(tn, B_DTYPE) && strcmp(tn, "bool") && v.k == V_TENSOR) {
      if (strcmp(dtype_name(v.t->dtype), tn))
        fail(e, at->span, "%s must be %s, not %s", what, tn, dtype_name(v.t->dtype));
      return;
    }
    fail(e, at->span, "%s must be %s, not %s", what, tn, kind_name(&v));
  }
  if (v.k != V_TENSOR) fail(e, at->span, "%s must be a tensor, not %s", what, kind_name(&v));
  Node *t = v.t;
  char got[96];
  type_str(got, sizeof got, t->dtype, &t->shape);
  if (strcmp(dtype_name(t->dtype), tn))
    fail(e, at->span, "%s must have dtype %s, but it is %s", what, tn, got);
  int nd = type->list.n;
  bool ell = nd > 0 && type->list.items[0]->kind == N_ELLIPSIS;
  int fixed = ell ? nd - 1 : nd;
  if (ell ? t->shape.ndim < fixed : t->shape.ndim != fixed)
    fail(e, at->span, "%s must have %s%d dimension%s, but it is %s", what, ell ? "at least " : "",
         fixed, fixed == 1 ? "" : "s", got);
  int off = t->shape.ndim - fixed;
  for (int i = 0; i < fixed; i++) {
    const Ast *dn = type->list.items[ell ? i + 1 : i];
    int64_t actual = t->shape.d[off + i];
    if (dn->kind == N_NAME) {
      Binding *b = env_find(callee->env, dn->name);
      if (!b) {
        env_set(e, callee->env, dn->name, v_int(actual));
        continue;
      }
      if (b->v.k != V_INT || b->v.i != actual)
        fail(e, at->span, "%s is %s, but its dimension '%s' must be %lld", what, got, dn->name,
             (long long)(b->v.k == V_INT ? b->v.i : -1));
      continue;
    }
    int64_t want = want_int(e, dn, eval(callee, dn), "a dimension");
    if (want != actual)
      fail(e, at->span, "%s must have size %lld in dimension %d, but it is %s", what,
           (long long)want, off + i, got);
  }
}

// ---- calls and members

static Val eval_call(Ctx *x, const Ast *n) {
  Elab *e = x->e;
  const Ast *callee = n->a;
  Args a;
  if (callee->kind == N_MEMBER) {
    Val recv = eval(x, callee->a);
    eval_args(x, n, &a, &recv);
    return call_builtin(x, callee->name, &a);
  }
  eval_args(x, n, &a, NULL);
  FnRef r = lookup_fn(e, x->home, callee->name);
  if (r.fn) return call_user(x, r, n, &a);
  return call_builtin(x, callee->name, &a);
}

static Val eval_member(Ctx *x, const Ast *n) {
  Elab *e = x->e;
  Val v = eval(x, n->a);
  Node *t = want_tensor(e, n->a, v, "the value before '.'");
  if (!strcmp(n->name, "shape")) {
    Val r = {.k = V_TUPLE, .n = t->shape.ndim};
    r.items = arena_alloc(&e->c->arena, sizeof(Val) * (size_t)(r.n ? r.n : 1));
    for (int i = 0; i < r.n; i++) r.items[i] = v_int(t->shape.d[i]);
    return r;
  }
  if (!strcmp(n->name, "ndim")) return v_int(t->shape.ndim);
  if (!strcmp(n->name, "dtype")) return (Val){.k = V_DTYPE, .dt = t->dtype};
  // T: swap the last two dimensions
  int nd = t->shape.ndim, perm[MAX_DIMS];
  if (nd < 2) return v;
  for (int i = 0; i < nd; i++) perm[i] = i;
  perm[nd - 2] = nd - 1;
  perm[nd - 1] = nd - 2;
  e->g->loc = n->span;
  return v_tensor(g_permute(e->g, t, perm));
}

static Val eval(Ctx *x, const Ast *n) {
  Elab *e = x->e;
  switch (n->kind) {
  case N_INT: return v_int(n->ival);
  case N_FLOAT: return v_float(n->fval);
  case N_BOOL: return v_bool(n->ival);
  case N_STR: return (Val){.k = V_STR, .s = n->str};
  case N_NAME: {
    Binding *b = env_find(x->env, n->name);
    if (b) return b->v;
    if (!strcmp(n->name, "training")) return v_bool(e->training);
    if (!strcmp(n->name, "pi")) return v_float(M_PI);
    if (!strcmp(n->name, "none")) return (Val){.k = V_NONE};
    for (int t = 0; t < DT_COUNT; t++)
      if (!strcmp(dtype_name((DType)t), n->name)) return (Val){.k = V_DTYPE, .dt = (DType)t};
    fail(e, n->span, "'%s' has no value here", n->name);
  }
  case N_UNARY: return eval_unary(x, n);
  case N_BINARY: return eval_binary(x, n);
  case N_CALL: return eval_call(x, n);
  case N_MEMBER: return eval_member(x, n);
  case N_INDEX: return eval_index(x, n);
  case N_TUPLE:
  case N_LIST: {
    Val r = {.k = n->kind == N_LIST ? V_LIST : V_TUPLE, .n = n->list.n};
    r.items = arena_alloc(&e->c->arena, sizeof(Val) * (size_t)(r.n ? r.n : 1));
    for (int i = 0; i < r.n; i++) r.items[i] = eval(x, n->list.items[i]);
    return r;
  }
  default:
    fail(e, n->span, "this cannot be evaluated");
  }
}

// ---- statements

static Init init_kind(const char *name, double *a, double *b) {
  static const struct { const char *name; Init init; double a, b; } table[] = {
      {"zeros", INIT_ZEROS, 0, 0}, {"ones", INIT_ONES, 0, 0}, {"full", INIT_FULL, 0, 0},
      {"normal", INIT_NORMAL, 0, 1}, {"uniform", INIT_UNIFORM, 0, 1},
      {"xavier_uniform", INIT_XAVIER_UNIFORM, 1, 0}, {"xavier_normal", INIT_XAVIER_NORMAL, 1, 0},
      {"kaiming_uniform", INIT_KAIMING_UNIFORM, M_SQRT2, 0},
      {"kaiming_normal", INIT_KAIMING_NORMAL, M_SQRT2, 0},
  };
  *a = *b = 0;
  for (size_t i = 0; i < sizeof table / sizeof *table; i++)
    if (!strcmp(table[i].name, name)) {
      *a = table[i].a;
      *b = table[i].b;
      return table[i].init;
    }
  return INIT_ZEROS;
}

static void eval_type(Ctx *x, const Ast *type, DType *dt, Shape *s) {
  Elab *e = x->e;
  *dt = DT_F32;
  for (int t = 0; t < DT_COUNT; t++)
    if (!strcmp(dtype_name((DType)t), type->name)) *dt = (DType)t;
  s->ndim = type->list.n;
  if (s->ndim > MAX_DIMS) fail(e, type->span, "at most %d dimensions", MAX_DIMS);
  for (int i = 0; i < type->list.n; i++) {
    const Ast *dn = type->list.items[i];
    s->d[i] = want_int(e, dn, eval(x, dn), "a dimension");
    // A zero-size input, parameter or buffer has no elements to learn from or
    // batch over (a batch of 0 divides by zero in the trainer), so refuse it here.
    if (s->d[i] < 1) {
      if (dn->kind == N_NAME)
        fail(e, dn->span, "a dimension must be at least 1, but '%s' is %lld", dn->name, (long long)s->d[i]);
      fail(e, dn->span, "a dimension must be at least 1, not %lld", (long long)s->d[i]);
    }
  }
}

// The arguments of an initializer call into *pa, *pb (left as they are when absent).
static void init_args(Ctx *x, const Ast *init, Init kind, double *pa, double *pb) {
  if (init->kind != N_CALL) return;
  Args a;
  eval_args(x, init, &a, NULL);
  const char *names[2] = {"mean", "std"};
  if (kind == INIT_UNIFORM) names[0] = "lo", names[1] = "hi";
  if (kind >= INIT_XAVIER_UNIFORM) names[0] = "gain";
  if (kind == INIT_FULL) names[0] = "value";
  for (int i = 0; i < 2; i++) {
    const Val *v = arg_or_kw(&a, i, names[i]);
    if (!v) continue;
    if (!is_num(v)) fail(x->e, init->span, "initializer arguments must be numbers");
    if (i == 0) *pa = num(v); else *pb = num(v);
  }
}

// param and buffer NAME: TYPE = INIT: a persistent tensor (a PARAM leaf,
// trained, or a STATE leaf, not trained) named by scope, and shared by calls
// with the same scope. A buffer's initializer takes param's arguments.
static void exec_persistent(Ctx *x, const Ast *s, Op op) {
  Elab *e = x->e;
  bool param = op == OP_PARAM;
  const char *what = param ? "parameter" : "buffer";
  DType dt;
  Shape sh;
  eval_type(x, s->a, &dt, &sh);
  if (!dtype_is_float(dt))
    fail(e, s->a->span, param ? "a parameter is trained, so its dtype must be f32, f16 or bf16, not %s"
                              : "a buffer's dtype must be f32, f16 or bf16, not %s", dtype_name(dt));
  const Ast *init = s->b, *callee = init->kind == N_CALL ? init->a : init;
  double pa, pb;
  Init kind = init_kind(callee->name, &pa, &pb);
  init_args(x, init, kind, &pa, &pb);
  const char *full = scope_join(e, e->scope, s->name);
  e->g->loc = s->span;
  if (graph_find_leaf(e->g, param ? OP_STATE : OP_PARAM, full))
    fail(e, s->span, "%s '%s' has the full name of a %s; one name is one tensor", what, full,
         param ? "buffer" : "parameter");
  Node *p = graph_find_leaf(e->g, op, full);
  if (p) {   // the same scope again: the tensor is shared
    if (p->dtype != dt || !shape_eq(&p->shape, &sh)) {
      char was[96], now[96];
      fail(e, s->span, "%s '%s' is shared by two calls with the same scope name, but it is "
           "%s in one and %s in the other", what, full, type_str(was, sizeof was, p->dtype, &p->shape),
           type_str(now, sizeof now, dt, &sh));
    }
  } else {
    p = g_leaf(e->g, op, dt, sh, full);
    p->p.param.init = kind;
    p->p.param.a = pa;
    p->p.param.b = pb;
    int line;
    const char *at = model_line(e, s->span, &line);
    p->p.param.at = line ? at : NULL;
  }
  env_set(e, x->env, s->name, v_tensor(p));
}

// update NAME = VALUE: the buffer's value for the next step. Only the
// training step writes it (an update in eval and infer is checked, not kept);
// within the step every read of the buffer sees its old value. One update
// per buffer per step, counting calls that share a scope.
static void exec_update(Ctx *x, const Ast *s) {
  Elab *e = x->e;
  Binding *bind = env_find(x->env, s->name);
  ASSERT(bind && bind->v.k == V_TENSOR && bind->v.t->op == OP_STATE);   // resolve.c checked it
  Node *buf = bind->v.t;
  for (UpdateSite *u = e->updated; u; u = u->next)
    if (u->buffer == buf) {
      diag_error(e->d, s->span, "buffer '%s' is updated twice in one step", buf->name);
      diag_note(e->d, u->at, "its first update is here");
      if (u->fn) diag_note(e->d, u->call, "the first update was made in this call to '%s'", u->fn);
      unwind(e);
    }
  Val v = eval(x, s->b);
  e->g->loc = s->span;
  Node *t = v.k == V_TENSOR ? v.t : is_num(&v) ? g_const(e->g, num(&v), buf->dtype, buf->shape) : NULL;
  if (!t) fail(e, s->b->span, "the value of an update must be a tensor or a number, not %s", kind_name(&v));
  if (!shape_eq(&t->shape, &buf->shape)) {
    char want[96], got[96];
    fail(e, s->b->span, "update of buffer '%s' (%s) with %s: the shapes must be equal", buf->name,
         type_str(want, sizeof want, buf->dtype, &buf->shape), type_str(got, sizeof got, t->dtype, &t->shape));
  }
  if (t->dtype != buf->dtype) t = g_cast(e->g, t, buf->dtype);
  UpdateSite *site = arena_alloc(&e->c->arena, sizeof *site);
  *site = (UpdateSite){buf, s->span, NULL, {-1, 0, 0}, e->updated};
  if (e->depth) site->fn = e->stack[e->depth - 1].fn, site->call = e->stack[e->depth - 1].call;
  e->updated = site;
  if (e->training) graph_add_update(e->g, buf, t);
}

static void bind_names(Ctx *x, const Ast *s, Val v, bool declare) {
  Elab *e = x->e;
  const AstList *names = &s->list2;
  if (names->n > 1 && (v.k != V_TUPLE || v.n != names->n))
    fail(e, s->span, "%d names but %s", names->n,
         v.k == V_TUPLE ? arena_printf(&e->c->arena, "a tuple of %d", v.n) : kind_name(&v));
  for (int i = 0; i < names->n; i++) {
    Val vi = names->n > 1 ? v.items[i] : v;
    const char *name = names->items[i]->name;
    if (declare) {
      env_set(e, x->env, name, vi);
    } else {
      Binding *b = env_find(x->env, name);
      ASSERT(b);   // resolve.c checked it
      b->v = vi;
    }
  }
}

static void exec_stmt(Ctx *x, const Ast *s) {
  Elab *e = x->e;
  Graph *g = e->g;
  if (++e->steps > MAX_STEPS)
    fail(e, s->span, "elaboration ran more than %d statements (a loop too long?)", MAX_STEPS);
  switch (s->kind) {
  case N_LET: {
    Val v = eval(x, s->b);
    if (s->a) check_type(x, s->a, v, arena_printf(&e->c->arena, "'%s'", s->list2.items[0]->name), s->b);
    bind_names(x, s, v, true);
    return;
  }
  case N_ASSIGN:
    bind_names(x, s, eval(x, s->b), false);
    return;
  case N_PARAM:
    exec_persistent(x, s, OP_PARAM);
    return;
  case N_BUFFER:
    exec_persistent(x, s, OP_STATE);
    return;
  case N_UPDATE:
    exec_update(x, s);
    return;
  case N_INPUT: {
    DType dt;
    Shape sh;
    eval_type(x, s->a, &dt, &sh);
    g->loc = s->span;
    env_set(e, x->env, s->name, v_tensor(g_leaf(g, OP_INPUT, dt, sh, s->name)));
    return;
  }
  case N_OUTPUT: {
    Val v = eval(x, s->b);
    Node *t = want_tensor(e, s->b, v, "an output");
    if (s->a) check_type(x, s->a, v, arena_printf(&e->c->arena, "output '%s'", s->name), s->b);
    graph_add_output(g, s->name, t);
    env_set(e, x->env, s->name, v);
    return;
  }
  case N_LOSS: {
    Val v = eval(x, s->b);
    Node *t = want_tensor(e, s->b, v, "the loss");
    if (shape_numel(&t->shape) != 1 || !dtype_is_float(t->dtype)) {
      char ty[96];
      fail(e, s->b->span, "the loss must be a floating-point scalar, but it is %s",
           type_str(ty, sizeof ty, t->dtype, &t->shape));
    }
    g->loc = s->span;
    g->loss = g_reshape(g, t, (Shape){0});
    graph_add_output(g, "loss", g->loss);
    return;
  }
  case N_RETURN:
    if (s->list.n == 1) {
      e->ret = eval(x, s->list.items[0]);
    } else {
      Val r = {.k = s->list.n ? V_TUPLE : V_NONE, .n = s->list.n};
      r.items = arena_alloc(&e->c->arena, sizeof(Val) * (size_t)(r.n ? r.n : 1));
      for (int i = 0; i < r.n; i++) r.items[i] = eval(x, s->list.items[i]);
      e->ret = r;
    }
    e->returning = true;
    return;
  case N_FOR: {
    if (!s->b) {   // for v in xs: the items of a list or tuple as they are now
      Val seq = eval(x, s->a);
      if (seq.k != V_LIST && seq.k != V_TUPLE)
        fail(e, s->a->span, "'for %s in' takes a list, a tuple or a range lo..hi, not %s", s->name,
             kind_name(&seq));
      for (int i = 0; i < seq.n && !e->returning; i++) {
        Env env = {x->env, NULL};
        Ctx inner = {e, x->home, &env};
        env_set(e, &env, s->name, seq.items[i]);
        exec_block(&inner, s->c);
      }
      return;
    }
    int64_t lo = want_int(e, s->a, eval(x, s->a), "a loop bound");
    int64_t hi = want_int(e, s->b, eval(x, s->b), "a loop bound");
    for (int64_t i = lo; i < hi && !e->returning; i++) {
      Env env = {x->env, NULL};
      Ctx inner = {e, x->home, &env};
      env_set(e, &env, s->name, v_int(i));
      exec_block(&inner, s->c);
    }
    return;
  }
  case N_IF:
    for (const Ast *it = s; it;) {
      if (want_bool(e, it->a, eval(x, it->a), "an if condition")) {
        exec_block(x, it->b);
        return;
      }
      if (it->c && it->c->kind == N_IF) {
        it = it->c;
      } else {
        if (it->c) exec_block(x, it->c);
        return;
      }
    }
    return;
  case N_ASSERT:
    if (!want_bool(e, s->a, eval(x, s->a), "an assert condition"))
      fail(e, s->span, "assertion failed%s%s", s->b ? ": " : "", s->b ? s->b->str : "");
    return;
  default:
    fail(e, s->span, "this statement cannot run here");
  }
}

static void exec_block(Ctx *x, const Ast *block) {
  Env env = {x->env, NULL};
  Ctx inner = {x->e, x->home, &env};
  for (int i = 0; i < block->list.n && !x->e->returning; i++) exec_stmt(&inner, block->list.items[i]);
}

int elaborate(Compilation *c, Module *m, const Define *defs, int ndefs, bool training, Graph *g) {
  const Ast *model = m->model;
  if (!model) {
    diag_plain(&c->diag, "%s has no model to build", m->path);
    return -1;
  }
  Elab *e = xcalloc(1, sizeof *e);
  e->c = c;
  e->m = m;
  e->g = g;
  e->d = &c->diag;
  e->scope = "";
  e->training = training;
  g->on_error = unwind_cb;
  g->on_error_ctx = e;
  int rc = 0;
  if (setjmp(e->fail)) {
    rc = -1;
  } else {
    Env top = {0};
    Ctx x = {e, m, &top};
    for (int i = 0; i < ndefs; i++) {
      bool found = false;
      for (int k = 0; k < model->list.n; k++) found |= !strcmp(model->list.items[k]->name, defs[i].name);
      if (!found) fail(e, model->span, "model '%s' has no size '%s' to set with -D", model->name, defs[i].name);
    }
    for (int k = 0; k < model->list.n; k++) {
      const Ast *size = model->list.items[k];
      Val v = {0};
      bool set = false;
      for (int i = 0; i < ndefs; i++)
        if (!strcmp(defs[i].name, size->name)) v = v_int(defs[i].value), set = true;
      if (!set && !size->a)
        fail(e, size->span, "size '%s' has no default; set it with -D %s=VALUE", size->name, size->name);
      if (!set) v = eval(&x, size->a);
      env_set(e, &top, size->name, v);
    }
    exec_block(&x, model->b);
  }
  g->on_error = NULL;
  free(e);
  return rc;
}
