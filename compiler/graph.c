// graph.c: the op graph and its builders.
//
// Every node is made by a builder that knows the op's shape rule: it checks
// the operands, computes the result's shape and dtype, and reports a user
// error naming the op and the shapes when they do not fit. Nodes are appended,
// so the node array is always in topological order.
#include "compiler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// The rows of ops.def, indexed by op; the columns are described there.
static const struct {
  const char *name;
  OpKind kind;
  int nsrc, cost;
  bool low, fold, ints;
  const char *verb, *builtin;
} op_info[] = {
#define OP(name, kind, nsrc, cost, low, fold, ints, verb, builtin) \
  {#name, KIND_##kind, nsrc, cost, low, fold, ints, verb, builtin},
#include "ops.def"
};
_Static_assert(sizeof op_info / sizeof *op_info == OP_COUNT, "op_info: one row per op");

const char *op_name(Op op) { return op_info[op].name; }
OpKind op_kind(Op op) { return op_info[op].kind; }
int op_nsrc(Op op) { return op_info[op].nsrc; }
int op_cost(Op op) { return op_info[op].cost; }
bool op_takes_low(Op op) { return op_info[op].low; }
bool op_folds(Op op) { return op_info[op].fold; }
bool op_keeps_ints(Op op) { return op_info[op].ints; }
const char *op_verb(Op op) { return op_info[op].verb; }
const char *op_builtin(Op op) { return op_info[op].builtin; }


DType dtype_promote(DType a, DType b) {
  static const int rank[] = {[DT_BOOL] = 0, [DT_U8] = 1, [DT_I32] = 2, [DT_I64] = 3,
                             [DT_F16] = 4, [DT_BF16] = 4, [DT_F32] = 5};
  if (a == b) return a;
  if ((a == DT_F16 && b == DT_BF16) || (a == DT_BF16 && b == DT_F16)) return DT_F32;
  return rank[a] >= rank[b] ? a : b;
}

void graph_init(Graph *g, Arena *arena, Diag *diag) {
  memset(g, 0, sizeof *g);
  g->arena = arena;
  g->diag = diag;
  g->scope = "";
  g->loc = (Span){-1, 0, 0};
}

void graph_free(Graph *g) {
  free(g->nodes);
  free(g->outputs);
  free(g->updates);
  memset(g, 0, sizeof *g);
}

void graph_add_output(Graph *g, const char *name, Node *n) {
  if (g->noutputs == g->outputs_cap) {
    g->outputs_cap = g->outputs_cap ? 2 * g->outputs_cap : 8;
    g->outputs = xrealloc(g->outputs, sizeof *g->outputs * (size_t)g->outputs_cap);
  }
  g->outputs[g->noutputs++] = (Output){name, n};
}

void graph_add_update(Graph *g, Node *target, Node *value) {
  if (g->nupdates == g->updates_cap) {
    g->updates_cap = g->updates_cap ? 2 * g->updates_cap : 16;
    g->updates = xrealloc(g->updates, sizeof *g->updates * (size_t)g->updates_cap);
  }
  g->updates[g->nupdates++] = (Update){target, value};
}

Node *graph_find_leaf(const Graph *g, Op op, const char *name) {
  for (int i = 0; i < g->n; i++) {
    Node *n = g->nodes[i];
    if (n->op == op && n->name && strcmp(n->name, name) == 0) return n;
  }
  return NULL;
}

// ---- errors

static Node *fail(Graph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static Node *fail(Graph *g, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_verror(g->diag, g->loc, fmt, ap);
  va_end(ap);
  if (g->on_error) g->on_error(g->on_error_ctx);
  return NULL;
}

#define TYPE(n) type_str((char[96]){0}, 96, (n)->dtype, &(n)->shape)

// ---- nodes

// Largest tensor a graph may describe: 2^48 elements (far beyond any device).
#define MAX_NUMEL ((int64_t)1 << 48)
#define MAX_NODES 4000000

static Node *node_new(Graph *g, Op op, DType t, Shape s) {
  int64_t numel = 1;
  for (int i = 0; i < s.ndim; i++)
    if (s.d[i] < 0 || __builtin_mul_overflow(numel, s.d[i], &numel) || numel > MAX_NUMEL) {
      char ty[96];
      fail(g, "tensor %s is too large (the limit is 2^48 elements)", type_str(ty, sizeof ty, t, &s));
      break;
    }
  if (g->n >= MAX_NODES) fail(g, "the graph has more than %d ops", MAX_NODES);
  Node *n = arena_alloc(g->arena, sizeof *n);
  n->op = op;
  n->dtype = t;
  n->shape = s;
  n->loc = g->loc;
  n->scope = g->scope;
  graph_adopt(g, n);
  return n;
}

void graph_adopt(Graph *g, Node *n) {
  if (g->n == g->cap) {
    g->cap = g->cap ? 2 * g->cap : 256;
    g->nodes = xrealloc(g->nodes, sizeof *g->nodes * (size_t)g->cap);
  }
  n->id = g->n;
  g->nodes[g->n++] = n;
}

static Node *node1(Graph *g, Op op, DType t, Shape s, Node *a) {
  Node *n = node_new(g, op, t, s);
  n->src[0] = a;
  n->nsrc = 1;
  return n;
}

static Node *node2(Graph *g, Op op, DType t, Shape s, Node *a, Node *b) {
  Node *n = node1(g, op, t, s, a);
  n->src[1] = b;
  n->nsrc = 2;
  return n;
}

Node *g_leaf(Graph *g, Op op, DType t, Shape s, const char *name) {
  ASSERT(op_kind(op) == KIND_LEAF);
  Node *n = node_new(g, op, t, s);
  n->name = name;
  return n;
}

Node *g_const(Graph *g, double v, DType t, Shape s) {
  Node *n = node_new(g, OP_CONST, t, s);
  n->p.value = dtype_round(t, v);
  return n;
}

Node *g_iota(Graph *g, int64_t n, DType t) {
  if (n < 0) return fail(g, "iota needs a size of at least 0, not %lld", (long long)n);
  return node_new(g, OP_IOTA, t, shape_of(1, &n));
}

Node *g_random(Graph *g, Shape s, const char *name) {
  Node *n = node_new(g, OP_RANDOM, DT_F32, s);
  n->name = name;
  n->p.key = name_key(name);
  return n;
}

// The dtypes the bitwise ops take: the integers, not bool.
static bool bits_dtype(DType t) { return dtype_is_int(t) && t != DT_BOOL; }

// Integer operands keep their dtype where ops.def's ints column says so (neg,
// abs, floor); exp, log, ... compute them in f32.
Node *g_unary(Graph *g, Op op, Node *x) {
  ASSERT(op_kind(op) == KIND_UNARY && op != OP_CAST && op != OP_BITCAST);
  DType t = x->dtype;
  if (t == DT_BOOL && op == OP_NEG) return fail(g, "cannot negate %s", TYPE(x));
  if (op == OP_BITNOT && !bits_dtype(t)) return fail(g, "cannot invert the bits of %s: it is not an integer", TYPE(x));
  if (!op_keeps_ints(op) && !dtype_is_float(t)) {   // exp of an integer computes in f32
    t = DT_F32;
    x = g_cast(g, x, t);
  }
  return node1(g, op, t, x->shape, x);
}

Node *g_cast(Graph *g, Node *x, DType t) {
  if (x->dtype == t) return x;
  return node1(g, OP_CAST, t, x->shape, x);
}

// The pairs of one width whose registers can trade bits: floats compute as
// f32 and integers as i64 (codegen_expr.c), so f16 and bf16 have no bits of
// their own in a register; a bool's byte is 0 or 1, so it reads as a u8 but a
// u8 need not be a bool.
Node *g_bitcast(Graph *g, Node *x, DType t) {
  DType s = x->dtype;
  if (s == t) return x;
  if ((s == DT_F32 && t == DT_I32) || (s == DT_I32 && t == DT_F32) || (s == DT_BOOL && t == DT_U8))
    return node1(g, OP_BITCAST, t, x->shape, x);
  return fail(g, "cannot bitcast %s to %s: bitcast takes f32 to i32, i32 to f32 and bool to u8", TYPE(x),
              dtype_name(t));
}

bool op_is_bitwise(Op op) {
  return op == OP_BITAND || op == OP_BITOR || op == OP_BITXOR || op == OP_SHL || op == OP_SHR || op == OP_BITNOT;
}

// NumPy broadcasting: right-align, size-1 dims stretch. Returns false on a clash
// and reports which dimension.
static bool broadcast_shapes(const Shape *a, const Shape *b, Shape *out, int *bad_dim) {
  int n = a->ndim > b->ndim ? a->ndim : b->ndim;
  out->ndim = n;
  for (int i = 0; i < n; i++) {
    int ia = i - (n - a->ndim), ib = i - (n - b->ndim);
    int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
    if (da != db && da != 1 && db != 1) {
      *bad_dim = i;
      return false;
    }
    out->d[i] = da == 1 ? db : da;
  }
  return true;
}

Node *g_binary(Graph *g, Op op, Node *a, Node *b) {
  OpKind k = op_kind(op);
  ASSERT(k == KIND_BINARY || k == KIND_COMPARE);
  Shape s;
  int bad;
  if (!broadcast_shapes(&a->shape, &b->shape, &s, &bad))
    return fail(g, "cannot %s %s and %s: their shapes do not broadcast", op_verb(op), TYPE(a), TYPE(b));
  DType t = dtype_promote(a->dtype, b->dtype);
  if (op_is_bitwise(op) && !bits_dtype(t))
    return fail(g, "cannot %s %s and %s: they are not integers", op_verb(op), TYPE(a), TYPE(b));
  if (!op_keeps_ints(op) && !dtype_is_float(t)) t = DT_F32;   // pow; '/' is true division
  if (t == DT_BOOL && (op == OP_ADD || op == OP_SUB || op == OP_MUL))
    return fail(g, "cannot %s %s and %s: arithmetic on bool", op_verb(op), TYPE(a), TYPE(b));
  if (a->dtype != t && k == KIND_BINARY) a = g_cast(g, a, t);
  if (b->dtype != t && k == KIND_BINARY) b = g_cast(g, b, t);
  if (k == KIND_COMPARE) {   // compare in the common type
    if (a->dtype != t) a = g_cast(g, a, t);
    if (b->dtype != t) b = g_cast(g, b, t);
  }
  return node2(g, op, k == KIND_COMPARE ? DT_BOOL : t, s, a, b);
}

Node *g_where(Graph *g, Node *c, Node *a, Node *b) {
  Shape s1, s;
  int bad;
  if (!broadcast_shapes(&a->shape, &b->shape, &s1, &bad) ||
      !broadcast_shapes(&c->shape, &s1, &s, &bad))
    return fail(g, "cannot select between %s and %s with a condition %s: their shapes do not "
                "broadcast", TYPE(a), TYPE(b), TYPE(c));
  if (c->dtype != DT_BOOL) c = g_cast(g, c, DT_BOOL);
  DType t = dtype_promote(a->dtype, b->dtype);
  a = g_cast(g, a, t);
  b = g_cast(g, b, t);
  Node *n = node2(g, OP_WHERE, t, s, c, a);
  n->src[2] = b;
  n->nsrc = 3;
  return n;
}

Node *g_reduce(Graph *g, Op op, Node *x, uint32_t axes, bool keep) {
  ASSERT(op_kind(op) == KIND_REDUCE);
  Shape s = x->shape, dropped = {0};
  for (int i = 0; i < x->shape.ndim; i++) {
    if (axes & (1u << i)) {
      if (x->shape.d[i] == 0 && op != OP_SUM)
        return fail(g, "cannot take the %s over an empty dimension of %s",
                    op == OP_RMAX ? "maximum" : "argmax", TYPE(x));
      s.d[i] = 1;
    } else {
      dropped.d[dropped.ndim++] = x->shape.d[i];
    }
  }
  DType t = op == OP_ARGMAX ? DT_I32 : op == OP_SUM && x->dtype == DT_BOOL ? DT_I32 : x->dtype;
  Node *src = x;
  if (op == OP_SUM && x->dtype == DT_BOOL) src = g_cast(g, x, DT_I32);
  Node *n = axes ? node1(g, op, t, s, src) : src;
  if (axes) n->p.axes = axes;
  return keep || !axes ? n : g_reshape(g, n, dropped);
}

// Matrix dims of an operand after its optional transpose: rows, cols.
static void mat_dims(const Node *x, bool t, int64_t *rows, int64_t *cols) {
  int64_t r = x->shape.d[x->shape.ndim - 2], c = x->shape.d[x->shape.ndim - 1];
  *rows = t ? c : r;
  *cols = t ? r : c;
}

Node *g_matmul(Graph *g, Node *a, Node *b, bool ta, bool tb) {
  if (a->shape.ndim < 1 || b->shape.ndim < 1)
    return fail(g, "cannot multiply %s and %s as matrices: both need at least one dimension",
                TYPE(a), TYPE(b));
  // Vectors become matrices ([K] @ [K, N] is [1, K] @ [K, N]) and lose that dim after.
  bool a_vec = a->shape.ndim == 1, b_vec = b->shape.ndim == 1;
  if (a_vec) a = g_reshape(g, a, shape_of(2, (int64_t[]){1, a->shape.d[0]}));
  if (b_vec) b = g_reshape(g, b, shape_of(2, (int64_t[]){b->shape.d[0], 1}));
  int64_t m, k1, k2, n;
  mat_dims(a, ta, &m, &k1);
  mat_dims(b, tb, &k2, &n);
  if (k1 != k2)
    return fail(g, "cannot multiply %s and %s as matrices: the inner sizes %lld and %lld differ",
                TYPE(a), TYPE(b), (long long)k1, (long long)k2);
  Shape ba = a->shape, bb = b->shape, batch;
  ba.ndim -= 2;
  bb.ndim -= 2;
  int bad;
  if (!broadcast_shapes(&ba, &bb, &batch, &bad))
    return fail(g, "cannot multiply %s and %s as matrices: their batch dimensions do not "
                "broadcast", TYPE(a), TYPE(b));
  if (batch.ndim + 2 > MAX_DIMS) return fail(g, "matmul result has too many dimensions");
  Shape s = batch;
  s.d[s.ndim++] = m;
  s.d[s.ndim++] = n;
  DType t = dtype_promote(a->dtype, b->dtype);
  if (!dtype_is_float(t)) t = DT_F32;
  Node *r = node2(g, OP_MATMUL, t, s, g_cast(g, a, t), g_cast(g, b, t));
  r->p.matmul.ta = ta;
  r->p.matmul.tb = tb;
  if (a_vec || b_vec) {
    Shape out = batch;
    if (!a_vec) out.d[out.ndim++] = m;
    if (!b_vec) out.d[out.ndim++] = n;
    r = g_reshape(g, r, out);
  }
  return r;
}

static int64_t conv_out(int64_t in, int k, int stride, int pad, int dil) {
  return (in + 2 * pad - (int64_t)dil * (k - 1) - 1) / stride + 1;
}

// A convolution node's window: stride, padding and dilation per axis, groups.
static Node *conv_params(Node *n, const int stride[2], const int pad[2], const int dil[2], int groups) {
  for (int i = 0; i < 2; i++) {
    n->p.conv.stride[i] = stride[i];
    n->p.conv.pad[i] = pad[i];
    n->p.conv.dil[i] = dil[i];
  }
  n->p.conv.groups = groups;
  return n;
}

Node *g_conv2d(Graph *g, Node *x, Node *w, const int stride[2], const int pad[2],
               const int dil[2], int groups) {
  if (x->shape.ndim != 4 || w->shape.ndim != 4)
    return fail(g, "conv needs an input [N, C, H, W] and a kernel [O, C / groups, KH, KW], "
                "not %s and %s", TYPE(x), TYPE(w));
  for (int i = 0; i < 2; i++)
    if (stride[i] < 1 || pad[i] < 0 || dil[i] < 1)
      return fail(g, "conv needs stride >= 1, padding >= 0 and dilation >= 1");
  int64_t c = x->shape.d[1], o = w->shape.d[0];
  if (groups < 1 || c % groups || o % groups || w->shape.d[1] != c / groups)
    return fail(g, "cannot convolve %s with kernel %s in %d group%s: the kernel needs "
                "%lld input channels", TYPE(x), TYPE(w), groups, groups == 1 ? "" : "s",
                groups >= 1 ? (long long)(c / groups) : 0LL);
  int64_t oh = conv_out(x->shape.d[2], (int)w->shape.d[2], stride[0], pad[0], dil[0]);
  int64_t ow = conv_out(x->shape.d[3], (int)w->shape.d[3], stride[1], pad[1], dil[1]);
  if (oh < 1 || ow < 1)
    return fail(g, "cannot convolve %s with kernel %s: the kernel is larger than the padded "
                "input", TYPE(x), TYPE(w));
  DType t = dtype_promote(x->dtype, w->dtype);
  if (!dtype_is_float(t)) t = DT_F32;
  Node *n = node2(g, OP_CONV2D, t, shape_of(4, (int64_t[]){x->shape.d[0], o, oh, ow}),
                  g_cast(g, x, t), g_cast(g, w, t));
  return conv_params(n, stride, pad, dil, groups);
}

// The gradients of a convolution `fwd`: CONV2D_DX (dy, w) has fwd's input's
// shape, CONV2D_DW (x, dy) has fwd's kernel's shape.
Node *g_conv2d_grad(Graph *g, Op op, Node *a, Node *b, const Node *fwd) {
  ASSERT(op == OP_CONV2D_DX || op == OP_CONV2D_DW);
  const Node *like = op == OP_CONV2D_DX ? fwd->src[0] : fwd->src[1];
  Node *n = node2(g, op, fwd->dtype, like->shape, a, b);
  n->p.conv = fwd->p.conv;
  return n;
}

Node *g_conv_like(Graph *g, Op op, Node *a, Node *b, Shape s, const Node *fwd) {
  ASSERT(op == OP_CONV2D || op == OP_CONV2D_DX || op == OP_CONV2D_DW);
  Node *n = node2(g, op, fwd->dtype, s, a, b);
  n->p.conv = fwd->p.conv;
  return n;
}

Node *g_conv_transpose(Graph *g, Node *x, Node *w, const int stride[2], const int pad[2],
                       const int out_pad[2], const int dil[2], int groups) {
  if (x->shape.ndim != 4 || w->shape.ndim != 4)
    return fail(g, "conv_transpose needs an input [N, Cin, H, W] and a kernel [Cin, Cout / groups, KH, KW], "
                "not %s and %s", TYPE(x), TYPE(w));
  for (int i = 0; i < 2; i++) {
    if (stride[i] < 1 || pad[i] < 0 || dil[i] < 1 || out_pad[i] < 0)
      return fail(g, "conv_transpose needs stride >= 1, padding >= 0, output_padding >= 0 and dilation >= 1");
    if (out_pad[i] >= stride[i] && out_pad[i] >= dil[i])
      return fail(g, "conv_transpose output_padding must be smaller than the stride or the dilation, "
                  "not output_padding (%d, %d) with stride (%d, %d) and dilation (%d, %d)",
                  out_pad[0], out_pad[1], stride[0], stride[1], dil[0], dil[1]);
  }
  int64_t c = x->shape.d[1];
  if (groups < 1) return fail(g, "conv_transpose needs groups >= 1, not %d", groups);
  if (w->shape.d[0] != c)
    return fail(g, "cannot conv_transpose %s with kernel %s: the kernel's first dimension must be the "
                "input's %lld channels", TYPE(x), TYPE(w), (long long)c);
  if (c % groups)
    return fail(g, "cannot conv_transpose %s with kernel %s in %d groups: %lld input channels do not "
                "divide into %d groups", TYPE(x), TYPE(w), groups, (long long)c, groups);
  int64_t out[2];
  for (int i = 0; i < 2; i++)
    out[i] = (x->shape.d[2 + i] - 1) * stride[i] - 2 * (int64_t)pad[i] +
             (int64_t)dil[i] * (w->shape.d[2 + i] - 1) + out_pad[i] + 1;
  if (out[0] < 1 || out[1] < 1)
    return fail(g, "cannot conv_transpose %s with kernel %s: the padding leaves a %lldx%lld output",
                TYPE(x), TYPE(w), (long long)out[0], (long long)out[1]);
  DType t = dtype_promote(x->dtype, w->dtype);
  if (!dtype_is_float(t)) t = DT_F32;
  Shape s = shape_of(4, (int64_t[]){x->shape.d[0], w->shape.d[1] * groups, out[0], out[1]});
  Node *n = node2(g, OP_CONV2D_DX, t, s, g_cast(g, x, t), g_cast(g, w, t));
  return conv_params(n, stride, pad, dil, groups);
}

// Linear interpolation along the first axis of t [in, M] to [in * s, M],
// PyTorch's bilinear with align_corners = False one axis at a time, rounded
// as PyTorch rounds it: output row o reads the source position
//   src = max(scale * (o + 0.5) - 0.5, 0),  scale = f32(1 / s),
// exactly (PyTorch computes it in double), that is rows i0 = floor(src) and
// i1 = min(i0 + 1, in - 1) with weights l = f32(src - i0) and 1 - l. With
// scale = M / 2^K (M an integer), src is the integer num = M (2o + 1) - 2^K
// over 2^(K + 1), so i0 and the remainder are i64 arithmetic and l's one
// rounding is the remainder's conversion to f32. Gathers, so a row's value
// and gradient touch only its two source rows.
static Node *lerp_rows(Graph *g, Node *t, int64_t in, int s) {
  int e;
  double m = frexp((double)(float)(1.0 / s), &e);   // scale = m * 2^e, m in [0.5, 1)
  int64_t M = (int64_t)ldexp(m, 24), K = 24 - e;
  Shape one = {0};
#define I64(v) g_const(g, (double)(v), DT_I64, one)
  Node *o = g_iota(g, in * s, DT_I64);
  Node *num = g_binary(g, OP_SUB, g_binary(g, OP_MUL, g_binary(g, OP_ADD, g_binary(g, OP_MUL, o, I64(2)), I64(1)), I64(M)),
                       I64(ldexp(1, (int)K)));
  num = g_binary(g, OP_MAX, num, I64(0));
  Node *den = I64(ldexp(1, (int)K + 1));
  // i0 from the f32 quotient, which can round up to the next integer; the
  // exact remainder says when it did
  Node *q = g_binary(g, OP_MUL, g_cast(g, num, DT_F32), g_const(g, ldexp(1, -(int)K - 1), DT_F32, one));
  Node *i0 = g_cast(g, g_unary(g, OP_FLOOR, q), DT_I64);
  Node *rem = g_binary(g, OP_SUB, num, g_binary(g, OP_MUL, i0, den));
  Node *over = g_binary(g, OP_LT, rem, I64(0));
  i0 = g_where(g, over, g_binary(g, OP_SUB, i0, I64(1)), i0);
  rem = g_where(g, over, g_binary(g, OP_ADD, rem, den), rem);
  Node *l1 = g_binary(g, OP_MUL, g_cast(g, rem, DT_F32), g_const(g, ldexp(1, -(int)K - 1), DT_F32, one));
  Node *l0 = g_binary(g, OP_SUB, g_const(g, 1, DT_F32, one), l1);
  Node *i1 = g_binary(g, OP_MIN, g_binary(g, OP_ADD, i0, I64(1)), I64(in - 1));
#undef I64
  Shape col = shape_of(2, (int64_t[]){in * s, 1});
  Node *a = g_binary(g, OP_MUL, g_reshape(g, g_cast(g, l0, t->dtype), col), g_gather(g, t, i0));
  Node *b = g_binary(g, OP_MUL, g_reshape(g, g_cast(g, l1, t->dtype), col), g_gather(g, t, i1));
  return g_binary(g, OP_ADD, a, b);
}

Node *g_upsample(Graph *g, Node *x, const int scale[2], bool bilinear) {
  if (x->shape.ndim != 4) return fail(g, "upsample needs an input [N, C, H, W], not %s", TYPE(x));
  if (scale[0] < 1 || scale[1] < 1)
    return fail(g, "upsample needs integer scale factors >= 1, not (%d, %d)", scale[0], scale[1]);
  int64_t N = x->shape.d[0], C = x->shape.d[1], H = x->shape.d[2], W = x->shape.d[3];
  int64_t OH = H * scale[0], OW = W * scale[1];
  if (!bilinear) {   // x[n, c, i // sh, j // sw]: each value repeated, a view
    Node *t = g_reshape(g, x, shape_of(6, (int64_t[]){N, C, H, 1, W, 1}));
    t = g_broadcast(g, t, shape_of(6, (int64_t[]){N, C, H, scale[0], W, scale[1]}));
    return g_reshape(g, t, shape_of(4, (int64_t[]){N, C, OH, OW}));
  }
  if (!dtype_is_float(x->dtype)) x = g_cast(g, x, DT_F32);
  // along W first, then H, as PyTorch nests the two interpolations
  Node *t = g_reshape(g, g_permute(g, x, (int[]){3, 0, 1, 2}), shape_of(2, (int64_t[]){W, N * C * H}));
  t = g_reshape(g, lerp_rows(g, t, W, scale[1]), shape_of(4, (int64_t[]){OW, N, C, H}));
  t = g_reshape(g, g_permute(g, t, (int[]){3, 0, 1, 2}), shape_of(2, (int64_t[]){H, OW * N * C}));
  t = g_reshape(g, lerp_rows(g, t, H, scale[0]), shape_of(4, (int64_t[]){OH, OW, N, C}));
  return g_permute(g, t, (int[]){2, 3, 0, 1});
}

Node *g_im2col(Graph *g, Node *x, const Node *conv) {
  // the kernel's size from the weights, the output's from the result (or,
  // for a weight gradient, from its output gradient)
  const Node *w = conv->op == OP_CONV2D_DW ? conv : conv->src[1];
  const Node *y = conv->op == OP_CONV2D_DW ? conv->src[1] : conv;
  int64_t N = x->shape.d[0], C = x->shape.d[1], KH = w->shape.d[2], KW = w->shape.d[3];
  int64_t OH = y->shape.d[2], OW = y->shape.d[3];
  Node *n = node1(g, OP_IM2COL, x->dtype, shape_of(3, (int64_t[]){N, OH * OW, C * KH * KW}), x);
  n->p.conv = conv->p.conv;
  n->p.conv.kernel[0] = (int)KH;
  n->p.conv.kernel[1] = (int)KW;
  n->p.conv.grid[0] = (int)OH;
  n->p.conv.grid[1] = (int)OW;
  return n;
}

Node *g_col2im(Graph *g, Node *rows, const Node *dx) {
  const Node *dy = dx->src[0], *w = dx->src[1];
  Node *n = node1(g, OP_COL2IM, rows->dtype, dx->shape, rows);
  n->p.conv = dx->p.conv;
  n->p.conv.kernel[0] = (int)w->shape.d[2];
  n->p.conv.kernel[1] = (int)w->shape.d[3];
  n->p.conv.grid[0] = (int)dy->shape.d[2];
  n->p.conv.grid[1] = (int)dy->shape.d[3];
  return n;
}

Node *g_pool(Graph *g, Op op, Node *x, const int kernel[2], const int stride[2], const int pad[2]) {
  ASSERT(op == OP_POOL_MAX || op == OP_POOL_AVG);
  if (x->shape.ndim != 4) return fail(g, "pooling needs an input [N, C, H, W], not %s", TYPE(x));
  for (int i = 0; i < 2; i++) {
    if (kernel[i] < 1 || stride[i] < 1 || pad[i] < 0)
      return fail(g, "pooling needs kernel >= 1, stride >= 1 and padding >= 0");
    if (2 * pad[i] > kernel[i])
      return fail(g, "pooling padding %d is more than half the kernel %d", pad[i], kernel[i]);
  }
  int64_t oh = conv_out(x->shape.d[2], kernel[0], stride[0], pad[0], 1);
  int64_t ow = conv_out(x->shape.d[3], kernel[1], stride[1], pad[1], 1);
  if (oh < 1 || ow < 1)
    return fail(g, "cannot pool %s with a %dx%d window: the window is larger than the input",
                TYPE(x), kernel[0], kernel[1]);
  DType t = dtype_is_float(x->dtype) ? x->dtype : DT_F32;
  Node *n = node1(g, op, t, shape_of(4, (int64_t[]){x->shape.d[0], x->shape.d[1], oh, ow}),
                  g_cast(g, x, t));
  for (int i = 0; i < 2; i++) {
    n->p.pool.kernel[i] = kernel[i];
    n->p.pool.stride[i] = stride[i];
    n->p.pool.pad[i] = pad[i];
  }
  return n;
}

Node *g_pool_grad(Graph *g, Op op, Node *x, Node *dy, const Node *fwd) {
  Node *n = op == OP_POOL_MAX_DX ? node2(g, op, fwd->dtype, fwd->src[0]->shape, x, dy)
                                 : node1(g, OP_POOL_AVG_DX, fwd->dtype, fwd->src[0]->shape, dy);
  n->p.pool = fwd->p.pool;
  return n;
}

// ---- movement

Node *g_reshape(Graph *g, Node *x, Shape s) {
  if (shape_numel(&s) != shape_numel(&x->shape)) {
    char want[96];
    return fail(g, "cannot reshape %s to %s: they hold %lld and %lld elements", TYPE(x),
                type_str(want, sizeof want, x->dtype, &s), (long long)shape_numel(&x->shape),
                (long long)shape_numel(&s));
  }
  if (shape_eq(&s, &x->shape)) return x;
  if (x->op == OP_RESHAPE) x = x->src[0];   // reshape(reshape(x)) -> reshape(x)
  if (shape_eq(&s, &x->shape)) return x;
  return node1(g, OP_RESHAPE, x->dtype, s, x);
}

Node *g_permute(Graph *g, Node *x, const int *perm) {
  int n = x->shape.ndim;
  bool seen[MAX_DIMS] = {0}, identity = true;
  Shape s = {.ndim = n};
  for (int i = 0; i < n; i++) {
    if (perm[i] < 0 || perm[i] >= n || seen[perm[i]])
      return fail(g, "permute of %s needs each of its %d axes exactly once", TYPE(x), n);
    seen[perm[i]] = true;
    s.d[i] = x->shape.d[perm[i]];
    identity &= perm[i] == i;
  }
  if (identity) return x;
  Node *r = node1(g, OP_PERMUTE, x->dtype, s, x);
  memcpy(r->p.perm, perm, sizeof(int) * (size_t)n);
  return r;
}

Node *g_broadcast(Graph *g, Node *x, Shape s) {
  Shape got;
  int bad;
  if (!broadcast_shapes(&x->shape, &s, &got, &bad) || !shape_eq(&got, &s) || s.ndim < x->shape.ndim) {
    char want[96];
    return fail(g, "cannot broadcast %s to %s", TYPE(x), type_str(want, sizeof want, x->dtype, &s));
  }
  if (shape_eq(&s, &x->shape)) return x;
  return node1(g, OP_BROADCAST, x->dtype, s, x);
}

Node *g_slice(Graph *g, Node *x, const int64_t *start, const int64_t *stop, const int64_t *step) {
  Shape s = x->shape;
  bool whole = true;
  for (int i = 0; i < s.ndim; i++) {
    int64_t len = x->shape.d[i];
    if (step[i] == 0) return fail(g, "slice step cannot be zero");
    if (step[i] > 0 ? start[i] < 0 || stop[i] > len || start[i] > stop[i]
                    : stop[i] < -1 || start[i] >= len || start[i] < stop[i])
      return fail(g, "slice %lld:%lld:%lld is outside dimension %d of %s", (long long)start[i],
                  (long long)stop[i], (long long)step[i], i, TYPE(x));
    s.d[i] = step[i] > 0 ? (stop[i] - start[i] + step[i] - 1) / step[i]
                         : (start[i] - stop[i] - step[i] - 1) / -step[i];
    whole &= s.d[i] == len && (len <= 1 || (start[i] == 0 && step[i] == 1));
  }
  if (whole) return x;
  Node *n = node1(g, OP_SLICE, x->dtype, s, x);
  for (int i = 0; i < s.ndim; i++) {   // an empty dimension reads nothing: start 0, step 1
    n->p.slice.start[i] = s.d[i] ? start[i] : 0;
    n->p.slice.step[i] = s.d[i] ? step[i] : 1;
  }
  return n;
}

Node *g_pad(Graph *g, Node *x, const int64_t *lo, const int64_t *hi, double value) {
  Shape s = x->shape;
  for (int i = 0; i < s.ndim; i++) {
    if (lo[i] < 0 || hi[i] < 0) return fail(g, "padding cannot be negative");
    s.d[i] += lo[i] + hi[i];
  }
  Node *n = node1(g, OP_PAD, x->dtype, s, x);
  for (int i = 0; i < s.ndim; i++) {
    n->p.pad.lo[i] = lo[i];
    n->p.pad.hi[i] = hi[i];
  }
  n->p.pad.value = value;
  return n;
}

Node *g_concat(Graph *g, Node *a, Node *b, int axis) {
  if (a->shape.ndim != b->shape.ndim || axis < 0 || axis >= a->shape.ndim)
    return fail(g, "cannot concatenate %s and %s along axis %d", TYPE(a), TYPE(b), axis);
  Shape s = a->shape;
  for (int i = 0; i < s.ndim; i++)
    if (i != axis && a->shape.d[i] != b->shape.d[i])
      return fail(g, "cannot concatenate %s and %s along axis %d: dimension %d differs", TYPE(a),
                  TYPE(b), axis, i);
  s.d[axis] += b->shape.d[axis];
  DType t = dtype_promote(a->dtype, b->dtype);
  Node *n = node2(g, OP_CONCAT, t, s, g_cast(g, a, t), g_cast(g, b, t));
  n->p.axis = axis;
  return n;
}

Node *g_gather(Graph *g, Node *table, Node *ids) {
  if (table->shape.ndim != 2)
    return fail(g, "gather needs a table [rows, width], not %s", TYPE(table));
  if (!dtype_is_int(ids->dtype) || ids->dtype == DT_BOOL)
    return fail(g, "gather needs integer ids, not %s", TYPE(ids));
  if (ids->shape.ndim + 1 > MAX_DIMS) return fail(g, "gather result has too many dimensions");
  Shape s = ids->shape;
  s.d[s.ndim++] = table->shape.d[1];
  return node2(g, OP_GATHER, table->dtype, s, table, ids);
}

Node *g_label(Graph *g, Node *ids, int64_t n) {
  if (!dtype_is_int(ids->dtype) || ids->dtype == DT_BOOL)
    return fail(g, "labels must be integers, not %s", TYPE(ids));
  if (n < 0) return fail(g, "a label check needs a number of classes, not %lld", (long long)n);
  Node *y = node1(g, OP_LABEL, ids->dtype, ids->shape, ids);
  y->p.label.n = n;
  return y;
}

Node *g_scatter_add(Graph *g, Node *ids, Node *values, int64_t rows) {
  if (ids->shape.ndim + 1 > MAX_DIMS || values->shape.ndim < 1 || rows < 0 ||
      !dtype_is_int(ids->dtype) || ids->dtype == DT_BOOL)
    return fail(g, "cannot scatter %s by ids %s into %lld rows", TYPE(values), TYPE(ids), (long long)rows);
  Shape want = ids->shape;
  want.d[want.ndim++] = values->shape.d[values->shape.ndim - 1];
  if (!shape_eq(&want, &values->shape) || !dtype_is_int(ids->dtype))
    return fail(g, "cannot scatter %s by ids %s", TYPE(values), TYPE(ids));
  return node2(g, OP_SCATTER_ADD, values->dtype,
               shape_of(2, (int64_t[]){rows, values->shape.d[values->shape.ndim - 1]}), ids,
               values);
}

// ---- attention

static Shape shape4(int64_t a, int64_t b, int64_t c, int64_t d) { return shape_of(4, (int64_t[]){a, b, c, d}); }

Node *g_attention(Graph *g, Node *q, Node *k, Node *v, Node *mask, bool causal, double scale, double dropout,
                  const char *stream) {
  const Node *ops[3] = {q, k, v};
  for (int i = 0; i < 3; i++) {
    if (ops[i]->shape.ndim != 4)
      return fail(g, "attention needs q, k and v of 4 dimensions (batch, heads, length, width), not %s as %s",
                  TYPE(ops[i]), i == 0 ? "q" : i == 1 ? "k" : "v");
    if (!dtype_is_float(ops[i]->dtype))
      return fail(g, "attention needs float q, k and v, not %s as %s", TYPE(ops[i]), i == 0 ? "q" : i == 1 ? "k" : "v");
  }
  const int64_t *qd = q->shape.d, *kd = k->shape.d, *vd = v->shape.d;
  if (qd[0] != kd[0] || qd[1] != kd[1] || qd[3] != kd[3])
    return fail(g, "cannot attend with q %s over k %s: the batch, heads and width must be the same", TYPE(q), TYPE(k));
  if (vd[0] != kd[0] || vd[1] != kd[1] || vd[2] != kd[2])
    return fail(g, "cannot attend with k %s and v %s: the batch, heads and length must be the same", TYPE(k), TYPE(v));
  if (kd[2] < 1) return fail(g, "cannot attend over k %s: there is no key", TYPE(k));
  if (!isfinite(scale)) return fail(g, "attention's scale must be finite, not %g", scale);
  if (!(dropout >= 0 && dropout < 1)) return fail(g, "attention's dropout must be in [0, 1), not %g", dropout);
  Shape scores = shape4(qd[0], qd[1], qd[2], kd[2]);
  if (mask) {
    Shape got;
    int bad;
    if (mask->dtype != DT_BOOL)
      return fail(g, "attention's mask must be bool (true: attend), not %s", TYPE(mask));
    if (mask->shape.ndim > 4 || !broadcast_shapes(&mask->shape, &scores, &got, &bad) || !shape_eq(&got, &scores)) {
      char st[96];
      return fail(g, "cannot attend with the mask %s: it does not broadcast to the scores %s", TYPE(mask),
                  type_str(st, sizeof st, DT_BOOL, &scores));
    }
    mask = g_broadcast(g, mask, scores);
  } else {
    mask = g_broadcast(g, g_const(g, 1, DT_BOOL, (Shape){0}), scores);
  }
  Node *n = node_new(g, OP_ATTENTION, DT_F32, shape4(qd[0], qd[1], qd[2], vd[3] + 1));
  n->src[0] = g_cast(g, q, DT_F32);
  n->src[1] = g_cast(g, k, DT_F32);
  n->src[2] = g_cast(g, v, DT_F32);
  n->src[3] = mask;
  n->nsrc = 4;
  n->p.attn.scale = scale;
  n->p.attn.causal = causal;
  if (dropout > 0) {
    ASSERT(stream);
    n->p.attn.dropout = dropout;
    n->p.attn.key = name_key(stream);
  }
  return n;
}

bool attention_unmasked(const Node *n) {
  const Node *m = n->src[3];
  while (op_kind(m->op) == KIND_MOVE && m->nsrc == 1) m = m->src[0];
  return m->op == OP_CONST && m->p.value != 0;
}

Node *g_attention_out(Graph *g, Node *fwd) {
  ASSERT(fwd->op == OP_ATTENTION);
  int64_t start[4] = {0}, stop[4], step[4] = {1, 1, 1, 1};
  for (int d = 0; d < 4; d++) stop[d] = fwd->shape.d[d];
  stop[3]--;
  return g_slice(g, fwd, start, stop, step);
}

Node *g_attention_grad(Graph *g, Op op, Node *fwd, Node *dout, Node *delta) {
  ASSERT(fwd->op == OP_ATTENTION && (op == OP_ATTENTION_DQ || op == OP_ATTENTION_DKV));
  const Node *q = fwd->src[0], *k = fwd->src[1];
  int64_t B = q->shape.d[0], N = q->shape.d[1], Tq = q->shape.d[2], D = q->shape.d[3];
  int64_t Dv = fwd->shape.d[3] - 1;
  Shape ds = shape4(B, N, Tq, Dv), es = shape4(B, N, Tq, 1);
  if (!shape_eq(&dout->shape, &ds) || !shape_eq(&delta->shape, &es)) {
    char a[96], b[96];
    return fail(g, "attention's gradient needs dout %s and delta %s, not %s and %s", type_str(a, sizeof a, DT_F32, &ds),
                type_str(b, sizeof b, DT_F32, &es), TYPE(dout), TYPE(delta));
  }
  Shape s = op == OP_ATTENTION_DQ ? shape4(B, N, Tq, D) : shape4(B, N, k->shape.d[2], D + Dv);
  Node *n = node_new(g, op, DT_F32, s);
  for (int i = 0; i < 4; i++) n->src[i] = fwd->src[i];
  n->src[4] = g_cast(g, dout, DT_F32);
  n->src[5] = fwd;
  n->src[6] = g_cast(g, delta, DT_F32);
  n->nsrc = 7;
  n->p.attn = fwd->p.attn;
  return n;
}

Node *g_unbroadcast(Graph *g, Node *x, Shape s) {
  if (shape_eq(&x->shape, &s)) return x;
  int lead = x->shape.ndim - s.ndim;
  ASSERT(lead >= 0);
  uint32_t axes = 0;
  for (int i = 0; i < x->shape.ndim; i++)
    if (i < lead || (s.d[i - lead] == 1 && x->shape.d[i] != 1)) axes |= 1u << i;
  Node *r = axes ? g_reduce(g, OP_SUM, x, axes, true) : x;
  return g_reshape(g, r, s);
}

void graph_prune(Graph *g) {
  bool *live = xcalloc((size_t)g->n + 1, sizeof *live);
  for (int i = 0; i < g->noutputs; i++) live[g->outputs[i].node->id] = true;
  for (int i = 0; i < g->nupdates; i++) live[g->updates[i].value->id] = live[g->updates[i].target->id] = true;
  if (g->loss) live[g->loss->id] = true;
  for (int i = g->n - 1; i >= 0; i--)
    if (live[i])
      for (int k = 0; k < g->nodes[i]->nsrc; k++) live[g->nodes[i]->src[k]->id] = true;
  int n = 0;
  for (int i = 0; i < g->n; i++)
    if (live[i]) {
      g->nodes[n] = g->nodes[i];
      g->nodes[n]->id = n;
      n++;
    }
  g->n = n;
  free(live);
}
