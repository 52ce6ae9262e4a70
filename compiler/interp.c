// interp.c: the reference interpreter.
//
// Evaluates an op graph in plain C, node by node in id order, holding every
// tensor as row-major doubles and rounding each result to its dtype. It is the
// oracle that the backends are tested against, so it is written to be plainly
// right rather than fast: one loop nest per op, none worse than O(output x
// reduction), and broadcasting, permutes, slices, pads and concats all done by
// one strided walk (Walk) instead of per-element index arithmetic. CONV2D and
// its two adjoints share one loop nest, so the adjoints are exact by
// construction.
#include "compiler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------- strided walks

// Row-major strides of a contiguous tensor of shape s.
static void strides_of(const Shape *s, int64_t st[MAX_DIMS]) {
  int64_t acc = 1;
  for (int d = s->ndim - 1; d >= 0; d--) {
    st[d] = acc;
    acc *= s->d[d];
  }
}

// Strides that read a tensor of shape src at the indices of shape dst under
// NumPy broadcasting: src is right-aligned against dst, and its missing and
// size-1 dims read with stride 0 (repeat).
static void broadcast_strides(const Shape *src, const Shape *dst, int64_t st[MAX_DIMS]) {
  int64_t own[MAX_DIMS];
  strides_of(src, own);
  int lead = dst->ndim - src->ndim;
  ASSERT(lead >= 0);
  for (int d = 0; d < dst->ndim; d++) {
    int sd = d - lead;
    if (sd < 0 || src->d[sd] == 1) {
      st[d] = 0;
    } else {
      ASSERT(src->d[sd] == dst->d[d]);
      st[d] = own[sd];
    }
  }
}

// A row-major walk over the indices of a shape that keeps, for up to three
// operands, the offset of the element each reads or writes at the current
// index. Advancing costs O(1) amortized, so a loop over n elements is O(n).
typedef struct {
  int ndim;
  int64_t dims[MAX_DIMS];
  int64_t idx[MAX_DIMS];
  int64_t stride[3][MAX_DIMS];   // per operand and dim; 0 where it repeats
  int64_t off[3];                // per operand: offset at idx
} Walk;

// Starts at index 0 with every stride 0; callers set stride and off.
static void walk_init(Walk *w, const Shape *s) {
  memset(w, 0, sizeof *w);
  w->ndim = s->ndim;
  memcpy(w->dims, s->d, sizeof w->dims);
}

static void walk_next(Walk *w) {
  for (int d = w->ndim - 1; d >= 0; d--) {
    for (int k = 0; k < 3; k++) w->off[k] += w->stride[k][d];
    if (++w->idx[d] < w->dims[d]) return;
    for (int k = 0; k < 3; k++) w->off[k] -= w->stride[k][d] * w->dims[d];
    w->idx[d] = 0;
  }
}

// ---------------------------------------------------------------- elementwise

typedef double (*Fn1)(double);
typedef double (*Fn2)(double, double);

static double f_neg(double x) { return -x; }
static double f_rsqrt(double x) { return 1.0 / sqrt(x); }
static double f_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double f_copy(double x) { return x; }
// log(1 + exp(x)) without overflow: x + log(1 + exp(-x)) above 0; NaN stays.
static double f_softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double f_silu(double x) { return x / (1.0 + exp(-x)); }   // as PyTorch computes it

static double f_add(double a, double b) { return a + b; }
static double f_sub(double a, double b) { return a - b; }
static double f_mul(double a, double b) { return a * b; }
static double f_div(double a, double b) { return a / b; }
// Integer floor division (exact below 2^53 here); 0 for a zero divisor, as NumPy's.
static double f_idiv(double a, double b) { return b == 0 ? 0 : floor(a / b); }
// max and min propagate NaN, as NumPy's maximum and minimum do.
static double f_max(double a, double b) { return a > b || isnan(a) ? a : b; }
static double f_min(double a, double b) { return a < b || isnan(a) ? a : b; }
static double f_relu(double x) { return x <= 0 ? 0 : x; }   // NaN stays NaN, -0 becomes 0
static double f_lt(double a, double b) { return a < b; }
static double f_le(double a, double b) { return a <= b; }
static double f_gt(double a, double b) { return a > b; }
static double f_ge(double a, double b) { return a >= b; }
static double f_eq(double a, double b) { return a == b; }
static double f_ne(double a, double b) { return a != b; }

// The scalar function of each unary op.
static Fn1 unary_fn(Op op) {
  switch (op) {
  case OP_NEG: return f_neg;
  case OP_EXP: return exp;
  case OP_LOG: return log;
  case OP_SQRT: return sqrt;
  case OP_RSQRT: return f_rsqrt;
  case OP_TANH: return tanh;
  case OP_SIGMOID: return f_sigmoid;
  case OP_ABS: return fabs;
  case OP_RELU: return f_relu;
  case OP_SIN: return sin;
  case OP_COS: return cos;
  case OP_FLOOR: return floor;
  case OP_CAST: return f_copy;   // rounding converts
  case OP_ERF: return erf;
  case OP_SOFTPLUS: return f_softplus;
  case OP_SILU: return f_silu;
  case OP_STOP_GRADIENT: return f_copy;
  case OP_BITNOT: case OP_BITCAST: break;   // they need the dtype: eval_bits
#define OP(name, ...) case OP_##name:   // every other op
#define UNARY(...)
#include "ops.def"
  case OP_COUNT:
    break;
  }
  UNREACHABLE();
}

// The scalar function of each binary and compare op.
static Fn2 binary_fn(Op op) {
  switch (op) {
  case OP_ADD: return f_add;
  case OP_SUB: return f_sub;
  case OP_MUL: return f_mul;
  case OP_DIV: return f_div;
  case OP_IDIV: return f_idiv;
  case OP_POW: return pow;
  case OP_MAX: return f_max;
  case OP_MIN: return f_min;
  case OP_LT: return f_lt;
  case OP_LE: return f_le;
  case OP_GT: return f_gt;
  case OP_GE: return f_ge;
  case OP_EQ: return f_eq;
  case OP_NE: return f_ne;
  case OP_BITAND: case OP_BITOR: case OP_BITXOR: case OP_SHL: case OP_SHR: break;   // eval_bits
#define OP(name, ...) case OP_##name:   // every other op
#define BINARY(...)
#define COMPARE(...)
#include "ops.def"
  case OP_COUNT:
    break;
  }
  UNREACHABLE();
}

double interp_pointwise(Op op, double a, double b, double c) {
  switch (op_kind(op)) {
  case KIND_UNARY: return unary_fn(op)(a);
  case KIND_BINARY: case KIND_COMPARE: return binary_fn(op)(a, b);
  case KIND_SELECT: return a != 0 ? b : c;
  case KIND_LEAF: case KIND_REDUCE: case KIND_CONTRACT: case KIND_CONV: case KIND_POOL: case KIND_MOVE:
  case KIND_GATHER: case KIND_ATTN:
    break;
  }
  UNREACHABLE();
}

static void eval_map1(const Node *n, const double *x, double *y, Fn1 f) {
  int64_t count = shape_numel(&n->shape);
  for (int64_t i = 0; i < count; i++) y[i] = f(x[i]);
}

// y = f(a, b), both broadcast to the node's shape.
static void eval_map2(const Node *n, const double *a, const double *b, double *y, Fn2 f) {
  Walk w;
  walk_init(&w, &n->shape);
  broadcast_strides(&n->src[0]->shape, &n->shape, w.stride[0]);
  broadcast_strides(&n->src[1]->shape, &n->shape, w.stride[1]);
  int64_t count = shape_numel(&n->shape);
  for (int64_t i = 0; i < count; i++, walk_next(&w)) y[i] = f(a[w.off[0]], b[w.off[1]]);
}

// where(c, a, b): a where c is non-zero, else b; all three broadcast.
static void eval_where(const Node *n, const double *c, const double *a, const double *b,
                       double *y) {
  Walk w;
  walk_init(&w, &n->shape);
  for (int k = 0; k < 3; k++) broadcast_strides(&n->src[k]->shape, &n->shape, w.stride[k]);
  int64_t count = shape_numel(&n->shape);
  for (int64_t i = 0; i < count; i++, walk_next(&w))
    y[i] = c[w.off[0]] != 0 ? a[w.off[1]] : b[w.off[2]];
}

// ---------------------------------------------------------------- bits

// The bitwise ops, which depend on the operands' dtype t (its width, and
// whether >> is arithmetic): on int64 copies of the values, so exact for i64
// only below 2^53, as every value here. Shifts are total, as ONNX's BitShift:
// a count below 0 or from the width up leaves only the sign's fill.
static double bits2(Op op, DType t, int64_t a, int64_t b) {
  int width = 8 * dtype_size(t);
  bool out = b < 0 || b >= width;
  switch (op) {
  case OP_BITAND: return (double)(a & b);
  case OP_BITOR: return (double)(a | b);
  case OP_BITXOR: return (double)(a ^ b);
  case OP_SHL: return out ? 0 : dtype_round(t, (double)(int64_t)((uint64_t)a << b));
  case OP_SHR:
    if (t == DT_U8) return out ? 0 : (double)(a >> b);
    if (out) return a < 0 ? -1 : 0;
    return (double)(a < 0 ? ~(~a >> b) : a >> b);   // arithmetic, without C's implementation choice
  default: UNREACHABLE();
  }
}

// BITCAST: f32 <-> i32 through their bits; bool -> u8 keeps 0 or 1 (graph.c).
static double bitcast1(DType from, DType to, double x) {
  if (from == DT_F32 && to == DT_I32) {
    float f = (float)x;
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i;
  }
  if (from == DT_I32 && to == DT_F32) {
    int32_t i = (int32_t)x;
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
  }
  return x;
}

static void eval_bits(const Node *n, const double *a, const double *b, double *y) {
  DType t = n->src[0]->dtype;
  if (n->op == OP_BITNOT || n->op == OP_BITCAST) {
    int64_t count = shape_numel(&n->shape);
    for (int64_t i = 0; i < count; i++)
      y[i] = n->op == OP_BITNOT ? dtype_round(t, (double)~(int64_t)a[i]) : bitcast1(t, n->dtype, a[i]);
    return;
  }
  Walk w;
  walk_init(&w, &n->shape);
  broadcast_strides(&n->src[0]->shape, &n->shape, w.stride[0]);
  broadcast_strides(&n->src[1]->shape, &n->shape, w.stride[1]);
  int64_t count = shape_numel(&n->shape);
  for (int64_t i = 0; i < count; i++, walk_next(&w))
    y[i] = bits2(n->op, t, (int64_t)a[w.off[0]], (int64_t)b[w.off[1]]);
}

// ---------------------------------------------------------------- reductions

// SUM, RMAX, ARGMAX over the input dims in p.axes. One pass over the input:
// operand 0 walks the output with stride 0 along reduced dims. The output has
// the input's layout with reduced dims at size 1, which is also the layout
// with them dropped, so either form of the node's shape works. ARGMAX gives
// the row-major position within the reduced dims (with one axis, the index
// along it) of the first maximum; NaN counts as the maximum, as in NumPy.
static void eval_reduce(const Node *n, const double *x, double *y) {
  const Shape *xs = &n->src[0]->shape;
  int64_t out_count = shape_numel(&n->shape), in_count = shape_numel(xs);
  Walk w;
  walk_init(&w, xs);
  int64_t ost = 1, rst = 1, rstride[MAX_DIMS];
  for (int d = xs->ndim - 1; d >= 0; d--) {
    if (n->p.axes & (1u << d)) {
      rstride[d] = rst;
      rst *= xs->d[d];
    } else {
      rstride[d] = 0;
      w.stride[0][d] = ost;
      ost *= xs->d[d];
    }
  }
  ASSERT(ost == out_count);

  double *best = NULL;   // ARGMAX: the maximum so far per output
  if (n->op == OP_SUM) {
    for (int64_t i = 0; i < out_count; i++) y[i] = 0;
  } else if (n->op == OP_RMAX) {
    for (int64_t i = 0; i < out_count; i++) y[i] = -INFINITY;
  } else {
    best = xmalloc((size_t)out_count * sizeof *best);
    for (int64_t i = 0; i < out_count; i++) best[i] = -INFINITY, y[i] = 0;
  }

  for (int64_t i = 0; i < in_count; i++, walk_next(&w)) {
    double v = x[i], *o = &y[w.off[0]];
    if (n->op == OP_SUM) {
      *o += v;
    } else if (n->op == OP_RMAX) {
      if (v > *o || isnan(v)) *o = v;
    } else {
      double *b = &best[w.off[0]];
      if (v > *b || (isnan(v) && !isnan(*b))) {
        *b = v;
        int64_t pos = 0;
        for (int d = 0; d < xs->ndim; d++) pos += w.idx[d] * rstride[d];
        *o = (double)pos;
      }
    }
  }
  free(best);
}

// ---------------------------------------------------------------- contractions

// MATMUL: a [..., M, K] (ta: [..., K, M]) @ b [..., K, N] (tb: [..., N, K])
// -> [..., M, N]. Each operand's batch dims broadcast, right-aligned, to the
// node's leading dims; a walk over those finds each pair of matrices.
// v (an f32 value) rounded to tf32: 10 mantissa bits, to nearest with ties
// away from zero, as a tf32 matmul reads its operands.
static double round_tf32(double v) {
  float f = (float)v;
  if (f != f) return v;
  uint32_t u;
  memcpy(&u, &f, 4);
  u = (u + 0x1000u) & ~0x1FFFu;
  memcpy(&f, &u, 4);
  return f;
}

static void eval_matmul(const Node *n, const double *a, const double *b, double *y) {
  const Shape *as = &n->src[0]->shape, *bs = &n->src[1]->shape, *ys = &n->shape;
  bool ta = n->p.matmul.ta, tb = n->p.matmul.tb;
  ASSERT(as->ndim >= 2 && bs->ndim >= 2 && ys->ndim >= 2);
  int64_t M = ys->d[ys->ndim - 2], N = ys->d[ys->ndim - 1];
  int64_t K = as->d[as->ndim - (ta ? 2 : 1)];
  ASSERT(as->d[as->ndim - (ta ? 1 : 2)] == M);
  ASSERT(bs->d[bs->ndim - (tb ? 1 : 2)] == K && bs->d[bs->ndim - (tb ? 2 : 1)] == N);
  // Element strides within one matrix.
  int64_t am = ta ? 1 : K, ak = ta ? M : 1;
  int64_t bk = tb ? 1 : N, bn = tb ? K : 1;

  Shape batch = *ys, abatch = *as, bbatch = *bs;
  batch.ndim -= 2, abatch.ndim -= 2, bbatch.ndim -= 2;
  Walk w;
  walk_init(&w, &batch);
  broadcast_strides(&abatch, &batch, w.stride[0]);   // in matrices
  broadcast_strides(&bbatch, &batch, w.stride[1]);
  int64_t nbatch = shape_numel(&batch);
  for (int64_t t = 0; t < nbatch; t++, walk_next(&w)) {
    const double *A = a + w.off[0] * M * K, *B = b + w.off[1] * K * N;
    double *Y = y + t * M * N;
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double s = 0;
        if (n->tf32)
          for (int64_t k = 0; k < K; k++) s += round_tf32(A[i * am + k * ak]) * round_tf32(B[k * bk + j * bn]);
        else
          for (int64_t k = 0; k < K; k++) s += A[i * am + k * ak] * B[k * bk + j * bn];
        Y[i * N + j] = s;
      }
  }
}

// The loop nest of CONV2D and both its adjoints, over every (n, o, oh, ow, c
// within o's group, kh, kw) whose input position is not padding, with
//   x [N, C, H, W], w [O, C/groups, KH, KW], y [N, O, OH, OW],
//   ih = oh * stride0 - pad0 + kh * dil0 (iw likewise):
//   CONV2D:    y[n, o, oh, ow]  += x[n, c, ih, iw] * w[o, c', kh, kw]
//   CONV2D_DX: x[n, c, ih, iw]  += y[n, o, oh, ow] * w[o, c', kh, kw]
//   CONV2D_DW: w[o, c', kh, kw] += x[n, c, ih, iw] * y[n, o, oh, ow]
// The two tensors the op reads are given, the one it writes is out (zeroed).
// y[n, oh * OW + ow, (c * KH + kh) * KW + kw] = x[n, c, oh s - p + kh d, ...], 0 off the image.
// The window rows of an image: IM2COL copies image values (in) into rows
// (out); with back (COL2IM, its transpose) each row entry (in) is added to the
// image position (out) it reads. image: [N, C, H, W]; rows: [N, OH * OW, C * KH * KW].
static void im2col_walk(const Node *n, const Shape *xs, const double *in, double *out, bool back) {
  int64_t N = xs->d[0], C = xs->d[1], H = xs->d[2], W = xs->d[3];
  int64_t KH = n->p.conv.kernel[0], KW = n->p.conv.kernel[1];
  int64_t P = (back ? n->src[0] : n)->shape.d[1];
  int64_t OW = n->p.conv.grid[1];
  if (back) memset(out, 0, sizeof(double) * (size_t)shape_numel(xs));
  int64_t i = 0;
  for (int64_t b = 0; b < N; b++)
    for (int64_t p = 0; p < P; p++)
      for (int64_t c = 0; c < C; c++)
        for (int64_t kh = 0; kh < KH; kh++)
          for (int64_t kw = 0; kw < KW; kw++, i++) {
            int64_t ih = p / OW * n->p.conv.stride[0] - n->p.conv.pad[0] + kh * n->p.conv.dil[0];
            int64_t iw = p % OW * n->p.conv.stride[1] - n->p.conv.pad[1] + kw * n->p.conv.dil[1];
            bool inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
            int64_t at = ((b * C + c) * H + ih) * W + iw;
            if (back) {
              if (inside) out[at] += in[i];
            } else {
              out[i] = inside ? in[at] : 0.0;
            }
          }
}

static void eval_conv(const Node *n, const double *in0, const double *in1, double *out) {
  const Shape *xs, *ws, *ys;
  const double *x = NULL, *w = NULL, *y = NULL;
  if (n->op == OP_CONV2D) {
    xs = &n->src[0]->shape, ws = &n->src[1]->shape, ys = &n->shape;
    x = in0, w = in1;
  } else if (n->op == OP_CONV2D_DX) {
    ys = &n->src[0]->shape, ws = &n->src[1]->shape, xs = &n->shape;
    y = in0, w = in1;
  } else {
    xs = &n->src[0]->shape, ys = &n->src[1]->shape, ws = &n->shape;
    x = in0, y = in1;
  }
  ASSERT(xs->ndim == 4 && ws->ndim == 4 && ys->ndim == 4);
  int64_t N = xs->d[0], C = xs->d[1], H = xs->d[2], W = xs->d[3];
  int64_t O = ws->d[0], Cg = ws->d[1], KH = ws->d[2], KW = ws->d[3];
  int64_t OH = ys->d[2], OW = ys->d[3];
  int64_t G = n->p.conv.groups, Og = O / G;
  ASSERT(G >= 1 && O % G == 0 && Cg * G == C && ys->d[0] == N && ys->d[1] == O);
  int64_t s0 = n->p.conv.stride[0], s1 = n->p.conv.stride[1];
  int64_t p0 = n->p.conv.pad[0], p1 = n->p.conv.pad[1];
  int64_t d0 = n->p.conv.dil[0], d1 = n->p.conv.dil[1];

  memset(out, 0, (size_t)shape_numel(&n->shape) * sizeof *out);
  for (int64_t b = 0; b < N; b++)
    for (int64_t o = 0; o < O; o++)
      for (int64_t oh = 0; oh < OH; oh++)
        for (int64_t ow = 0; ow < OW; ow++) {
          int64_t yi = ((b * O + o) * OH + oh) * OW + ow;
          for (int64_t cg = 0; cg < Cg; cg++) {
            int64_t c = o / Og * Cg + cg;
            for (int64_t kh = 0; kh < KH; kh++) {
              int64_t ih = oh * s0 - p0 + kh * d0;
              if (ih < 0 || ih >= H) continue;
              for (int64_t kw = 0; kw < KW; kw++) {
                int64_t iw = ow * s1 - p1 + kw * d1;
                if (iw < 0 || iw >= W) continue;
                int64_t xi = ((b * C + c) * H + ih) * W + iw;
                int64_t wi = ((o * Cg + cg) * KH + kh) * KW + kw;
                if (n->op == OP_CONV2D) out[yi] += x[xi] * w[wi];
                else if (n->op == OP_CONV2D_DX) out[xi] += y[yi] * w[wi];
                else out[wi] += x[xi] * y[yi];
              }
            }
          }
        }
}

// ---------------------------------------------------------------- pooling

// Pooling windows: plane p (= n * C + c) of x [N, C, H, W], output position
// (oh, ow); rows oh * stride0 - pad0 + [0, kernel0), columns likewise.
typedef struct {
  int64_t H, W, OH, OW, k0, k1, s0, s1, p0, p1;
} Pool;

static Pool pool_of(const Node *n, const Shape *xs, const Shape *ys) {
  ASSERT(xs->ndim == 4 && ys->ndim == 4);
  ASSERT(xs->d[0] == ys->d[0] && xs->d[1] == ys->d[1]);
  return (Pool){
      .H = xs->d[2], .W = xs->d[3], .OH = ys->d[2], .OW = ys->d[3],
      .k0 = n->p.pool.kernel[0], .k1 = n->p.pool.kernel[1],
      .s0 = n->p.pool.stride[0], .s1 = n->p.pool.stride[1],
      .p0 = n->p.pool.pad[0], .p1 = n->p.pool.pad[1],
  };
}

// Offset in x of the window's first maximum in row-major order (NaN counts as
// the maximum), or -1 when the window lies wholly in the padding. POOL_MAX and
// POOL_MAX_DX both use it, so the gradient goes where the maximum came from.
static int64_t pool_argmax(const Pool *P, const double *x, int64_t plane, int64_t oh,
                           int64_t ow) {
  int64_t at = -1;
  for (int64_t kh = 0; kh < P->k0; kh++) {
    int64_t ih = oh * P->s0 - P->p0 + kh;
    if (ih < 0 || ih >= P->H) continue;
    for (int64_t kw = 0; kw < P->k1; kw++) {
      int64_t iw = ow * P->s1 - P->p1 + kw;
      if (iw < 0 || iw >= P->W) continue;
      int64_t xi = (plane * P->H + ih) * P->W + iw;
      if (at < 0 || x[xi] > x[at] || (isnan(x[xi]) && !isnan(x[at]))) at = xi;
    }
  }
  return at;
}

// POOL_MAX, POOL_AVG: x [N, C, H, W] -> y [N, C, OH, OW]. POOL_MAX_DX (x, dy)
// and POOL_AVG_DX (dy) -> dx [N, C, H, W]: each window's dy goes to its first
// maximum, or is spread as dy / (k0 * k1) over its positions in bounds.
static void eval_pool(const Node *n, const double *in0, const double *in1, double *out) {
  bool dx = n->op == OP_POOL_MAX_DX || n->op == OP_POOL_AVG_DX;
  const Shape *xs = dx ? &n->shape : &n->src[0]->shape;
  const Shape *ys = n->op == OP_POOL_MAX_DX ? &n->src[1]->shape
                    : n->op == OP_POOL_AVG_DX ? &n->src[0]->shape : &n->shape;
  const double *dy = n->op == OP_POOL_MAX_DX ? in1 : in0;
  Pool P = pool_of(n, xs, ys);
  int64_t planes = xs->d[0] * xs->d[1];
  double area = (double)(P.k0 * P.k1);

  if (dx) memset(out, 0, (size_t)shape_numel(&n->shape) * sizeof *out);
  for (int64_t plane = 0; plane < planes; plane++)
    for (int64_t oh = 0; oh < P.OH; oh++)
      for (int64_t ow = 0; ow < P.OW; ow++) {
        int64_t yi = (plane * P.OH + oh) * P.OW + ow;
        if (n->op == OP_POOL_MAX || n->op == OP_POOL_MAX_DX) {
          int64_t at = pool_argmax(&P, in0, plane, oh, ow);
          if (n->op == OP_POOL_MAX) out[yi] = at >= 0 ? in0[at] : -INFINITY;
          else if (at >= 0) out[at] += dy[yi];
          continue;
        }
        double s = 0;
        for (int64_t kh = 0; kh < P.k0; kh++) {
          int64_t ih = oh * P.s0 - P.p0 + kh;
          if (ih < 0 || ih >= P.H) continue;
          for (int64_t kw = 0; kw < P.k1; kw++) {
            int64_t iw = ow * P.s1 - P.p1 + kw;
            if (iw < 0 || iw >= P.W) continue;
            int64_t xi = (plane * P.H + ih) * P.W + iw;
            if (dx) out[xi] += dy[yi] / area;
            else s += in0[xi];
          }
        }
        if (!dx) out[yi] = s / area;
      }
}

// ---------------------------------------------------------------- movement

// PERMUTE: output dim i is input dim p.perm[i].
static void eval_permute(const Node *n, const double *x, double *y) {
  const Shape *xs = &n->src[0]->shape;
  int64_t st[MAX_DIMS];
  strides_of(xs, st);
  Walk w;
  walk_init(&w, &n->shape);
  for (int d = 0; d < n->shape.ndim; d++) {
    int from = n->p.perm[d];
    ASSERT(from >= 0 && from < xs->ndim && xs->d[from] == n->shape.d[d]);
    w.stride[0][d] = st[from];
  }
  int64_t count = shape_numel(&n->shape);
  for (int64_t i = 0; i < count; i++, walk_next(&w)) y[i] = x[w.off[0]];
}

static void eval_broadcast(const Node *n, const double *x, double *y) {
  Walk w;
  walk_init(&w, &n->shape);
  broadcast_strides(&n->src[0]->shape, &n->shape, w.stride[0]);
  int64_t count = shape_numel(&n->shape);
  for (int64_t i = 0; i < count; i++, walk_next(&w)) y[i] = x[w.off[0]];
}

// SLICE: y[j0, j1, ...] = x[start0 + j0 * step0, start1 + j1 * step1, ...].
static void eval_slice(const Node *n, const double *x, double *y) {
  const Shape *xs = &n->src[0]->shape;
  int64_t st[MAX_DIMS];
  strides_of(xs, st);
  Walk w;
  walk_init(&w, &n->shape);
  ASSERT(xs->ndim == n->shape.ndim);
  for (int d = 0; d < xs->ndim; d++) {
    int64_t start = n->p.slice.start[d], step = n->p.slice.step[d], len = n->shape.d[d];
    if (len > 0) {   // first and last index read lie inside x
      ASSERT(start >= 0 && start < xs->d[d]);
      ASSERT(start + (len - 1) * step >= 0 && start + (len - 1) * step < xs->d[d]);
    }
    w.off[0] += start * st[d];
    w.stride[0][d] = step * st[d];
  }
  int64_t count = shape_numel(&n->shape);
  for (int64_t i = 0; i < count; i++, walk_next(&w)) y[i] = x[w.off[0]];
}

// Copies x into y, whose shape is `into`, at the offset of index `at`: the
// walk goes over x and writes through y's strides. PAD and CONCAT use it.
static void place(const Shape *xs, const double *x, const Shape *into, const int64_t *at,
                  double *y) {
  int64_t st[MAX_DIMS];
  strides_of(into, st);
  Walk w;
  walk_init(&w, xs);
  ASSERT(xs->ndim == into->ndim);
  for (int d = 0; d < xs->ndim; d++) {
    ASSERT(at[d] >= 0 && at[d] + xs->d[d] <= into->d[d]);
    w.off[0] += at[d] * st[d];
    w.stride[0][d] = st[d];
  }
  int64_t count = shape_numel(xs);
  for (int64_t i = 0; i < count; i++, walk_next(&w)) y[w.off[0]] = x[i];
}

// PAD: p.pad.value everywhere, then x at offset p.pad.lo.
static void eval_pad(const Node *n, const double *x, double *y) {
  int64_t count = shape_numel(&n->shape);
  for (int64_t i = 0; i < count; i++) y[i] = n->p.pad.value;
  place(&n->src[0]->shape, x, &n->shape, n->p.pad.lo, y);
}

// ---------------------------------------------------------------- gather

// GATHER: table [V, ...], ids [...] -> [..., ...]: row ids[i] of the table
// for each id. An id outside [0, V) is an error.
static int eval_gather(const Node *n, const double *table, const double *ids, double *y,
                       char *err, size_t errlen) {
  const Shape *ts = &n->src[0]->shape;
  ASSERT(ts->ndim >= 1);
  int64_t V = ts->d[0], row = 1;
  for (int d = 1; d < ts->ndim; d++) row *= ts->d[d];
  int64_t nids = shape_numel(&n->src[1]->shape);
  ASSERT(nids * row == shape_numel(&n->shape));
  for (int64_t i = 0; i < nids; i++) {
    double id = ids[i];
    if (!(id >= 0 && id < (double)V)) {
      snprintf(err, errlen, "gather: index %.17g is outside the table's %lld rows", id,
               (long long)V);
      return -1;
    }
    memcpy(y + i * row, table + (int64_t)id * row, (size_t)row * sizeof *y);
  }
  return 0;
}

// SCATTER_ADD: ids [...], values [..., ...] -> [V, ...] (V from the node's
// shape): zeros, then each value row added into row ids[i]. An id outside
// [0, V) is an error.
static int eval_scatter_add(const Node *n, const double *ids, const double *vals, double *y,
                            char *err, size_t errlen) {
  ASSERT(n->shape.ndim >= 1);
  int64_t V = n->shape.d[0], row = 1;
  for (int d = 1; d < n->shape.ndim; d++) row *= n->shape.d[d];
  int64_t nids = shape_numel(&n->src[0]->shape);
  ASSERT(nids * row == shape_numel(&n->src[1]->shape));
  memset(y, 0, (size_t)(V * row) * sizeof *y);
  for (int64_t i = 0; i < nids; i++) {
    double id = ids[i];
    if (!(id >= 0 && id < (double)V)) {
      snprintf(err, errlen, "scatter_add: index %.17g is outside the result's %lld rows", id,
               (long long)V);
      return -1;
    }
    double *dst = y + (int64_t)id * row;
    for (int64_t j = 0; j < row; j++) dst[j] += vals[i * row + j];
  }
  return 0;
}

// LABEL: ids [...] -> the same ids. A label outside [0, p.label.n), other
// than the skipped one, is an error naming the function, the model-file
// line, the label's position in the flattened labels and its value.
static int eval_label(const Node *n, const double *ids, double *y, char *err, size_t errlen) {
  int64_t count = shape_numel(&n->shape);
  for (int64_t i = 0; i < count; i++) {
    double id = ids[i];
    bool skipped = n->p.label.skips && id == (double)n->p.label.skip;
    if (!skipped && !(id >= 0 && id < (double)n->p.label.n)) {
      snprintf(err, errlen, "%s: label %.17g at position %lld is outside [0, %lld) (%s)",
               n->p.label.fn ? n->p.label.fn : "one_hot", id, (long long)i,
               (long long)n->p.label.n, n->p.label.at ? n->p.label.at : "?");
      return -1;
    }
    y[i] = id;
  }
  return 0;
}

// ---------------------------------------------------------------- attention
// The plain formula, row by row in double: key j of query i is allowed when
// the mask says so and (causal) j <= i; its logit is scale * q_i . k_j. An
// allowed row's weights are softmax over its allowed keys; a row with none
// weighs every key 1 / Tk (what softmax of the stdlib's -1e9 logits gives:
// the mean of v), with +inf as its log-sum-exp, and no gradient reaches q or
// k from it. With dropout p, weight (i, j) is then multiplied by
// z = u >= p ? 1 / (1 - p) : 0, u the stream's uniform at its index in
// [B, N, Tq, Tk] (what dropout(softmax(...)) gives).

typedef struct {
  int64_t B, N, Tq, Tk, D, Dv;
  const double *q, *k, *v, *mask;
  double scale, dropout;
  bool causal;
  uint64_t key, seed, step;
} Attn;

static Attn attn_of(const Node *n, const double *const *src, uint64_t seed, uint64_t step) {
  const Shape *q = &n->src[0]->shape, *v = &n->src[2]->shape;
  return (Attn){q->d[0], q->d[1], q->d[2], v->d[2], q->d[3], v->d[3], src[0], src[1], src[2], src[3],
                n->p.attn.scale, n->p.attn.dropout, n->p.attn.causal, n->p.attn.key, seed, step};
}

// Dropout's factor z of weight (bn, i, j).
static double attn_keep(const Attn *a, int64_t bn, int64_t i, int64_t j) {
  if (a->dropout == 0) return 1;
  uint64_t at = (uint64_t)((bn * a->Tq + i) * a->Tk + j);
  return philox_uniform(a->seed, a->key, a->step, at) >= a->dropout ? 1 / (1 - a->dropout) : 0;
}

// Row (bn, i)'s logits into s, whether each key is allowed into ok; returns the number allowed.
static int64_t attn_logits(const Attn *a, int64_t bn, int64_t i, double *s, bool *ok) {
  int64_t allowed = 0;
  const double *qi = a->q + (bn * a->Tq + i) * a->D;
  for (int64_t j = 0; j < a->Tk; j++) {
    const double *kj = a->k + (bn * a->Tk + j) * a->D;
    double dot = 0;
    for (int64_t d = 0; d < a->D; d++) dot += qi[d] * kj[d];
    s[j] = a->scale * dot;
    ok[j] = a->mask[(bn * a->Tq + i) * a->Tk + j] != 0 && (!a->causal || j <= i);
    allowed += ok[j];
  }
  return allowed;
}

static void eval_attention(const Node *n, const double *const *src, uint64_t seed, uint64_t step, double *y) {
  Attn a = attn_of(n, src, seed, step);
  double *s = xmalloc(sizeof(double) * (size_t)a.Tk);
  bool *ok = xmalloc(sizeof(bool) * (size_t)a.Tk);
  for (int64_t bn = 0; bn < a.B * a.N; bn++)
    for (int64_t i = 0; i < a.Tq; i++) {
      double *out = y + (bn * a.Tq + i) * (a.Dv + 1);
      for (int64_t c = 0; c < a.Dv; c++) out[c] = 0;
      if (attn_logits(&a, bn, i, s, ok) == 0) {
        for (int64_t j = 0; j < a.Tk; j++)
          for (int64_t c = 0; c < a.Dv; c++)
            out[c] += attn_keep(&a, bn, i, j) * a.v[(bn * a.Tk + j) * a.Dv + c] / (double)a.Tk;
        out[a.Dv] = INFINITY;
        continue;
      }
      double m = -INFINITY, l = 0;
      for (int64_t j = 0; j < a.Tk; j++)
        if (ok[j] && s[j] > m) m = s[j];
      for (int64_t j = 0; j < a.Tk; j++) l += ok[j] ? exp(s[j] - m) : 0;
      for (int64_t j = 0; j < a.Tk; j++) {
        if (!ok[j]) continue;
        double p = exp(s[j] - m) / l * attn_keep(&a, bn, i, j);
        for (int64_t c = 0; c < a.Dv; c++) out[c] += p * a.v[(bn * a.Tk + j) * a.Dv + c];
      }
      out[a.Dv] = m + log(l);
    }
  free(s);
  free(ok);
}

// dq (ATTENTION_DQ) or [dk, dv] (ATTENTION_DKV) from the saved log-sum-exp:
// p = exp(s - lse), z dropout's factor, dp = z dout_i . v_j, ds = p (dp - delta_i);
// dq_i = scale sum_j ds k_j, dk_j = scale sum_i ds q_i, dv_j = sum_i p z dout_i.
// A row with no allowed key has p = 1 / Tk for every key and ds = 0.
static void eval_attention_grad(const Node *n, const double *const *src, uint64_t seed, uint64_t step, double *y) {
  Attn a = attn_of(n, src, seed, step);
  const double *dout = src[4], *fwd = src[5], *delta = src[6];
  bool dq = n->op == OP_ATTENTION_DQ;
  memset(y, 0, sizeof(double) * (size_t)shape_numel(&n->shape));
  double *s = xmalloc(sizeof(double) * (size_t)a.Tk);
  bool *ok = xmalloc(sizeof(bool) * (size_t)a.Tk);
  for (int64_t bn = 0; bn < a.B * a.N; bn++)
    for (int64_t i = 0; i < a.Tq; i++) {
      double lse = fwd[(bn * a.Tq + i) * (a.Dv + 1) + a.Dv];
      bool none = attn_logits(&a, bn, i, s, ok) == 0;   // lse is +inf: no weight depends on q or k
      const double *qi = a.q + (bn * a.Tq + i) * a.D, *gi = dout + (bn * a.Tq + i) * a.Dv;
      for (int64_t j = 0; j < a.Tk; j++) {
        if (!ok[j] && !none) continue;
        const double *kj = a.k + (bn * a.Tk + j) * a.D, *vj = a.v + (bn * a.Tk + j) * a.Dv;
        double p = none ? 1 / (double)a.Tk : exp(s[j] - lse), z = attn_keep(&a, bn, i, j), dp = 0;
        for (int64_t c = 0; c < a.Dv; c++) dp += gi[c] * vj[c];
        double ds = none ? 0 : p * (z * dp - delta[bn * a.Tq + i]);
        if (dq) {
          double *o = y + (bn * a.Tq + i) * a.D;
          for (int64_t d = 0; d < a.D; d++) o[d] += a.scale * ds * kj[d];
        } else {
          double *o = y + (bn * a.Tk + j) * (a.D + a.Dv);
          for (int64_t d = 0; d < a.D; d++) o[d] += a.scale * ds * qi[d];
          for (int64_t c = 0; c < a.Dv; c++) o[a.D + c] += p * z * gi[c];
        }
      }
    }
  free(s);
  free(ok);
}

// ---------------------------------------------------------------- driver

typedef struct {
  double *const *leaves;   // may be NULL: no leaf has a value
  uint64_t seed, step;
  double **vals;           // per node id; computed for ids below the current
  char *err;
  size_t errlen;
} Interp;

// Computes node n into y (numel of its shape). Returns 0, or -1 with a
// message in it->err.
static int eval_node(Interp *it, const Node *n, double *y) {
  const double *s0 = n->nsrc > 0 ? it->vals[n->src[0]->id] : NULL;
  const double *s1 = n->nsrc > 1 ? it->vals[n->src[1]->id] : NULL;
  const double *s2 = n->nsrc > 2 ? it->vals[n->src[2]->id] : NULL;
  int64_t count = shape_numel(&n->shape);
  if (op_is_bitwise(n->op) || n->op == OP_BITCAST) {
    eval_bits(n, s0, s1, y);
    return 0;
  }

  switch (n->op) {
  case OP_INPUT:
  case OP_PARAM:
  case OP_STATE: {
    const double *given = it->leaves ? it->leaves[n->id] : NULL;
    if (given) {
      memcpy(y, given, (size_t)count * sizeof *y);
    } else if (n->op == OP_INPUT) {
      snprintf(it->err, it->errlen, "input '%s' has no value", n->name ? n->name : "");
      return -1;
    } else {
      init_fill(n, it->seed, y);
    }
    return 0;
  }
  case OP_CONST:
    for (int64_t i = 0; i < count; i++) y[i] = n->p.value;
    return 0;
  case OP_IOTA:
    for (int64_t i = 0; i < count; i++) y[i] = (double)i;
    return 0;
  case OP_RANDOM:
    for (int64_t i = 0; i < count; i++)
      y[i] = philox_uniform(it->seed, n->p.key, it->step, (uint64_t)i);
    return 0;

#define OP(...)
#define UNARY(name, ...) case OP_##name:   // every unary op
#include "ops.def"
    eval_map1(n, s0, y, unary_fn(n->op));
    return 0;
#define OP(...)
#define BINARY(name, ...) case OP_##name:   // every binary and compare op
#define COMPARE(name, ...) case OP_##name:
#include "ops.def"
    eval_map2(n, s0, s1, y, binary_fn(n->op));
    return 0;
  case OP_WHERE: eval_where(n, s0, s1, s2, y); return 0;

  case OP_SUM:
  case OP_RMAX:
  case OP_ARGMAX: eval_reduce(n, s0, y); return 0;

  case OP_MATMUL: eval_matmul(n, s0, s1, y); return 0;
  case OP_CONV2D:
  case OP_CONV2D_DX:
  case OP_CONV2D_DW: eval_conv(n, s0, s1, y); return 0;
  case OP_IM2COL: im2col_walk(n, &n->src[0]->shape, s0, y, false); return 0;
  case OP_COL2IM: im2col_walk(n, &n->shape, s0, y, true); return 0;
  case OP_POOL_MAX:
  case OP_POOL_AVG:
  case OP_POOL_MAX_DX:
  case OP_POOL_AVG_DX: eval_pool(n, s0, s1, y); return 0;

  case OP_RESHAPE:
    ASSERT(shape_numel(&n->src[0]->shape) == count);
    memcpy(y, s0, (size_t)count * sizeof *y);
    return 0;
  case OP_PERMUTE: eval_permute(n, s0, y); return 0;
  case OP_BROADCAST: eval_broadcast(n, s0, y); return 0;
  case OP_SLICE: eval_slice(n, s0, y); return 0;
  case OP_PAD: eval_pad(n, s0, y); return 0;
  case OP_CONCAT: {   // a at offset 0, b right after it along p.axis
    const Shape *as = &n->src[0]->shape, *bs = &n->src[1]->shape;
    int axis = n->p.axis;
    ASSERT(axis >= 0 && axis < n->shape.ndim && as->d[axis] + bs->d[axis] == n->shape.d[axis]);
    int64_t at[MAX_DIMS] = {0};
    place(as, s0, &n->shape, at, y);
    at[axis] = as->d[axis];
    place(bs, s1, &n->shape, at, y);
    return 0;
  }

  case OP_GATHER: return eval_gather(n, s0, s1, y, it->err, it->errlen);
  case OP_SCATTER_ADD: return eval_scatter_add(n, s0, s1, y, it->err, it->errlen);
  case OP_LABEL: return eval_label(n, s0, y, it->err, it->errlen);

  case OP_ATTENTION:
  case OP_ATTENTION_DQ:
  case OP_ATTENTION_DKV: {
    const double *src[NODE_MAX_SRC];
    for (int k = 0; k < n->nsrc; k++) src[k] = it->vals[n->src[k]->id];
    if (n->op == OP_ATTENTION) eval_attention(n, src, it->seed, it->step, y);
    else eval_attention_grad(n, src, it->seed, it->step, y);
    return 0;
  }

  case OP_COUNT: break;
  }
  UNREACHABLE();
}

// interp_run with a choice of rounding. exact: results of float dtypes stay
// in double instead of being rounded to f32, f16 or bf16 (finite differences
// in test_autodiff.c need that); integer and bool results still truncate and
// wrap, since indices and masks mean nothing otherwise.
int interp_run_ex(const Graph *g, double *const *leaves, uint64_t seed, uint64_t step,
                  bool exact, InterpResult *out, char *err, size_t errlen) {
  Interp it = {.leaves = leaves, .seed = seed, .step = step, .err = err, .errlen = errlen};
  out->n = g->n;
  out->vals = it.vals = xcalloc((size_t)g->n, sizeof *out->vals);
  for (int id = 0; id < g->n; id++) {
    const Node *n = g->nodes[id];
    ASSERT(n->id == id);
    for (int k = 0; k < n->nsrc; k++) ASSERT(n->src[k] && n->src[k]->id < id);
    int64_t count = shape_numel(&n->shape);
    double *y = out->vals[id] = xmalloc((size_t)count * sizeof *y);
    if (eval_node(&it, n, y) != 0) {
      interp_free(out);
      return -1;
    }
    if (exact && dtype_is_float(n->dtype)) continue;
    for (int64_t i = 0; i < count; i++) y[i] = dtype_round(n->dtype, y[i]);
  }
  return 0;
}

int interp_run(const Graph *g, double *const *leaves, uint64_t seed, uint64_t step,
               InterpResult *out, char *err, size_t errlen) {
  return interp_run_ex(g, leaves, seed, step, false, out, err, errlen);
}

void interp_free(InterpResult *r) {
  if (!r->vals) return;
  for (int i = 0; i < r->n; i++) free(r->vals[i]);
  free(r->vals);
  r->vals = NULL;
  r->n = 0;
}
