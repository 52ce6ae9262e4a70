// simplify.c: rewrites of the op graph that change no value.
//
// One pass in graph order; each node first reads through what its sources
// were replaced by, then:
//   constant folding   an exact op (ops.def's fold column: + - * / neg abs
//                      sqrt max min compare cast) of constants is a constant,
//                      computed by the interpreter's function; transcendental ops
//                      are left to the kernels, whose f32 results may differ
//                      in the last bit from a double computed here
//   identities         x * 1, 1 * x, x / 1, x - 0, x + (-0) (and + 0 on
//                      integers: on floats x + 0 turns -0 into +0),
//                      neg(neg(x)), a cast to x's own dtype, a reshape or
//                      broadcast to x's own shape: x; once the graph is
//                      differentiated, stop_gradient(x): x
//   cast of a cast     cast(cast(x, A), B) = cast(x, B) when x -> A is exact
//   movement chains    reshape(reshape(x)), permute(permute(x)) (identity:
//                      x), broadcast(broadcast(x)): one view
//   matmul transposes  matmul(permute(a, last two swapped), b) = matmul(a, b)
//                      with ta flipped, and the same for b and tb
//   common subexpressions  two nodes of one op, dtype, shape, sources and
//                      attributes are one node (leaves and random ops never)
// and at the end, dead-code elimination (graph_prune) and one node per
// output: an output whose node is a leaf or another output's (two names of
// one expression, an input, a parameter, a view folded away, equal
// gradients) reads it through a copy of its own, so the ingot stores it
// under its own name. Every rewrite keeps each value bit for bit
// (tests/test_simplify.c checks the interpreter's results on every example,
// before and after).
#include "compiler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *simplify_rule_name(int r) {
  static const char *names[SIMP_COUNT] = {"common subexpressions", "constants folded", "identities",
                                          "casts of casts", "movement chains", "transposes into matmuls",
                                          "dead nodes"};
  return names[r];
}

static bool is_const(const Node *n, double v) {
  return n->op == OP_CONST && n->p.value == v && signbit(n->p.value) == signbit(v);
}

static bool same_type(const Node *a, const Node *b) {
  return a->dtype == b->dtype && shape_eq(&a->shape, &b->shape);
}

// x -> A is exact: every value of x's dtype is a value of A.
static bool cast_exact(DType from, DType to) {
  if (from == to || from == DT_BOOL) return true;
  switch (from) {
  case DT_U8: return to == DT_I32 || to == DT_I64 || dtype_is_float(to);
  case DT_I32: return to == DT_I64;
  case DT_F16: case DT_BF16: return to == DT_F32;
  default: return false;
  }
}

// The value of an exact pointwise op (ops.def's fold column) of constants,
// as the interpreter computes and rounds it.
static bool fold(const Node *n, double *out) {
  if (!node_is_pointwise(n) || !op_folds(n->op)) return false;
  for (int s = 0; s < n->nsrc; s++)
    if (n->src[s]->op != OP_CONST) return false;
  double a = n->nsrc > 0 ? n->src[0]->p.value : 0, b = n->nsrc > 1 ? n->src[1]->p.value : 0;
  double c = n->nsrc > 2 ? n->src[2]->p.value : 0;
  double v = interp_pointwise(n->op, a, b, c);
  if (n->op == OP_CAST && dtype_is_float(n->src[0]->dtype) && !dtype_is_float(n->dtype)) return false;
  if (!dtype_is_float(n->dtype) && dtype_is_float(n->src[n->op == OP_WHERE ? 1 : 0]->dtype) && n->op != OP_CAST &&
      op_kind(n->op) != KIND_COMPARE)
    return false;
  *out = dtype_round(n->dtype, v);
  return true;
}

// neg(neg(x)) -> x; cast(x) -> x of x's own type; cast(cast(x, A), B) ->
// cast(x, B) when x -> A is exact.
static Node *rewrite_unary(Node *n, bool differentiated, int *count) {
  Node *a = n->src[0];
  if (n->op == OP_STOP_GRADIENT && differentiated && n->fuse == FUSE_AUTO) return count[SIMP_IDENTITY]++, a;
  if (n->op == OP_NEG && a->op == OP_NEG && same_type(a->src[0], n)) return count[SIMP_IDENTITY]++, a->src[0];
  if (n->op != OP_CAST) return n;
  if (same_type(a, n)) return count[SIMP_IDENTITY]++, a;
  if (a->op == OP_CAST && cast_exact(a->src[0]->dtype, a->dtype) && a->fuse == FUSE_AUTO && !a->stored) {
    n->src[0] = a->src[0];
    count[SIMP_CAST]++;
    if (same_type(n->src[0], n)) return n->src[0];
  }
  return n;
}

static bool swaps_last_two(const Node *p) {
  int nd = p->shape.ndim;
  if (p->op != OP_PERMUTE || nd < 2 || p->p.perm[nd - 2] != nd - 1 || p->p.perm[nd - 1] != nd - 2) return false;
  for (int d = 0; d < nd - 2; d++)
    if (p->p.perm[d] != d) return false;
  return true;
}

// What n can be replaced by (an earlier node), or n itself after rewriting
// it in place; counts the rule that fired.
static Node *rewrite(Node *n, bool differentiated, int *count) {
  Node *a = n->nsrc > 0 ? n->src[0] : NULL, *b = n->nsrc > 1 ? n->src[1] : NULL;
  double v;
  if (n->op != OP_CONST && fold(n, &v)) {
    n->op = OP_CONST;
    n->nsrc = 0;
    n->src[0] = n->src[1] = n->src[2] = NULL;
    memset(&n->p, 0, sizeof n->p);
    n->p.value = v;
    count[SIMP_FOLD]++;
    return n;
  }
  bool fl = dtype_is_float(n->dtype);
  switch (n->op) {
  case OP_MUL:
    if (is_const(b, 1) && same_type(a, n)) return count[SIMP_IDENTITY]++, a;
    if (is_const(a, 1) && same_type(b, n)) return count[SIMP_IDENTITY]++, b;
    break;
  case OP_DIV:
    if (is_const(b, 1) && same_type(a, n)) return count[SIMP_IDENTITY]++, a;
    break;
  case OP_SUB:
    if (b->op == OP_CONST && b->p.value == 0 && same_type(a, n)) return count[SIMP_IDENTITY]++, a;
    break;
  case OP_ADD:
    if ((fl ? is_const(b, -0.0) : b->op == OP_CONST && b->p.value == 0) && same_type(a, n)) return count[SIMP_IDENTITY]++, a;
    if ((fl ? is_const(a, -0.0) : a->op == OP_CONST && a->p.value == 0) && same_type(b, n)) return count[SIMP_IDENTITY]++, b;
    break;
#define OP(...)
#define UNARY(name, ...) case OP_##name:   // every unary op
#include "ops.def"
    return rewrite_unary(n, differentiated, count);
  case OP_RESHAPE:
    if (same_type(a, n)) return count[SIMP_IDENTITY]++, a;
    if (a->op == OP_RESHAPE && !a->stored && a->fuse == FUSE_AUTO) {
      n->src[0] = a->src[0];
      count[SIMP_MOVE]++;
      if (same_type(n->src[0], n)) return n->src[0];
    }
    break;
  case OP_BROADCAST:
    if (same_type(a, n)) return count[SIMP_IDENTITY]++, a;
    if (a->op == OP_BROADCAST && !a->stored && a->fuse == FUSE_AUTO) {
      n->src[0] = a->src[0];
      count[SIMP_MOVE]++;
    }
    break;
  case OP_PERMUTE:
    if (a->op == OP_PERMUTE && !a->stored && a->fuse == FUSE_AUTO) {
      int q[MAX_DIMS];
      bool identity = true;
      for (int d = 0; d < n->shape.ndim; d++) identity &= (q[d] = a->p.perm[n->p.perm[d]]) == d;
      count[SIMP_MOVE]++;
      if (identity && same_type(a->src[0], n)) return a->src[0];
      memcpy(n->p.perm, q, sizeof q);
      n->src[0] = a->src[0];
    }
    break;
  case OP_MATMUL:
    if (swaps_last_two(a) && !a->stored && a->fuse == FUSE_AUTO) {
      n->src[0] = a->src[0];
      n->p.matmul.ta = !n->p.matmul.ta;
      count[SIMP_MATMUL]++;
    }
    if (swaps_last_two(b) && !b->stored && b->fuse == FUSE_AUTO) {
      n->src[1] = b->src[0];
      n->p.matmul.tb = !n->p.matmul.tb;
      count[SIMP_MATMUL]++;
    }
    break;
  case OP_POW: case OP_IDIV: case OP_MAX: case OP_MIN: case OP_BITAND: case OP_BITOR: case OP_BITXOR: case OP_SHL:
  case OP_SHR: case OP_SLICE: case OP_PAD: case OP_CONCAT:
#define OP(name, ...) case OP_##name:   // every kind but those emptied below
#define UNARY(...)
#define BINARY(...)
#define CONTRACT(...)
#define MOVE(...)
#include "ops.def"
  case OP_COUNT:
    break;
  }
  return n;
}

// ---- common subexpressions: a hash table of nodes by what they compute

static bool cse_candidate(const Node *n) {
  return n->op != OP_INPUT && n->op != OP_PARAM && n->op != OP_STATE && n->op != OP_RANDOM;
}

static bool same_node(const Node *a, const Node *b) {
  if (a->op != b->op || !same_type(a, b) || a->nsrc != b->nsrc || a->stored != b->stored || a->fuse != b->fuse) return false;
  for (int s = 0; s < a->nsrc; s++)
    if (a->src[s] != b->src[s]) return false;
  return memcmp(&a->p, &b->p, sizeof a->p) == 0;
}

static uint64_t node_hash(const Node *n) {
  uint64_t h = 1469598103934665603ull;
#define MIX(v) (h = (h ^ (uint64_t)(v)) * 1099511628211ull)
  MIX(n->op);
  MIX(n->dtype);
  for (int d = 0; d < n->shape.ndim; d++) MIX(n->shape.d[d]);
  for (int s = 0; s < n->nsrc; s++) MIX(n->src[s]->id);
  const unsigned char *p = (const unsigned char *)&n->p;
  for (size_t i = 0; i < sizeof n->p; i++) MIX(p[i]);
#undef MIX
  return h;
}

// Every output its own stored node: an output whose node is a leaf (kept in
// the caller's or the session's buffer, which an update may overwrite) or
// already an earlier output's gets reshape(x) to x's own shape, a view that
// the kernel planner stores with a copy kernel. Appended after every node,
// so the order stays topological.
static void outputs_own(Graph *g) {
  bool *taken = xcalloc((size_t)g->n + 1, sizeof *taken);   // by id: an earlier output's node
  for (int i = 0; i < g->noutputs; i++) {
    Node *x = g->outputs[i].node;   // a node from before the copies
    bool leaf = x->op == OP_INPUT || x->op == OP_PARAM || x->op == OP_STATE;
    if (!leaf && !taken[x->id]) {
      taken[x->id] = true;
      continue;
    }
    Node *copy = arena_alloc(g->arena, sizeof *copy);   // reshape(x): x's value in a buffer of its own
    copy->op = OP_RESHAPE;
    copy->dtype = x->dtype;
    copy->shape = x->shape;
    copy->src[0] = x;
    copy->nsrc = 1;
    copy->loc = x->loc;
    copy->scope = x->scope;
    graph_adopt(g, copy);
    g->outputs[i].node = copy;
  }
  free(taken);
}

void pass_simplify(Graph *g, int *count) {
  int local[SIMP_COUNT] = {0};
  if (!count) count = local;
  Node **repl = xcalloc((size_t)g->n + 1, sizeof *repl);   // by id: what the node became
  size_t cap = 16;
  while (cap < 2 * (size_t)g->n) cap *= 2;
  Node **table = xcalloc(cap, sizeof *table);
  for (int i = 0; i < g->n; i++) {
    Node *n = g->nodes[i];
    for (int s = 0; s < n->nsrc; s++) n->src[s] = repl[n->src[s]->id];
    Node *r = rewrite(n, g->differentiated, count);
    if (r == n && cse_candidate(n)) {
      size_t at = node_hash(n) & (cap - 1);
      while (table[at] && !same_node(table[at], n)) at = (at + 1) & (cap - 1);
      if (table[at]) {
        r = table[at];
        count[SIMP_CSE]++;
      } else {
        table[at] = n;
      }
    }
    repl[i] = r;
  }
  for (int i = 0; i < g->noutputs; i++) g->outputs[i].node = repl[g->outputs[i].node->id];
  for (int i = 0; i < g->nupdates; i++) {
    Node *v = repl[g->updates[i].value->id];
    // an update keeps a value of its own kernel: a leaf or another update's value is copied
    if (v->op == OP_PARAM || v->op == OP_STATE || v->op == OP_INPUT) v = g->updates[i].value;
    g->updates[i].value = v;
  }
  if (g->loss) g->loss = repl[g->loss->id];
  int before = g->n;
  free(table);
  free(repl);
  graph_prune(g);
  count[SIMP_DEAD] += before - g->n;
  outputs_own(g);
}
