// onnx_import.c: an ONNX model (a ModelProto, read by the protobuf-c code
// generated from onnx.proto) to a model file of the language, and its float
// initializers to a safetensors file beside it (docs/onnx.md). Shapes are
// static: every dimension is a number or a dim_param bound by -D. The model
// file is written only when every node is understood; otherwise one message
// lists every unsupported op type with its nodes and the opset.
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler.h"
#include "onnx.pb-c.h"
#include "onnx_import.h"
#include "tensorfile.h"

enum { V_INPUT, V_PARAM, V_LET, V_INTS, V_SCALAR };

typedef struct {
  char *onnx;            // the ONNX value name
  char *ident;           // its name in the model file
  int kind;
  DType dtype;
  int ndim;
  int64_t dims[MAX_DIMS];
  int64_t *ints;         // V_INTS: an integer constant (shapes, axes), nints values
  int nints;
  double scalar;         // V_SCALAR: a one-element float constant, written as a number
} Value;

typedef struct {
  const char *path;
  FILE *err;
  int64_t opset;
  Value *vals;
  int nvals, cap;
  // the tensors of the safetensors file
  const char **wnames;
  uint32_t *wdtypes;
  Shape *wshapes;
  float **wdata;
  int nw;
  const Onnx__GraphProto *graph;
  char *body;            // the model's statements
  size_t blen, bcap;
  bool failed;
} Importer;

static void fail(Importer *im, const char *fmt, ...) {
  if (im->failed) return;
  im->failed = true;
  va_list ap;
  va_start(ap, fmt);
  fprintf(im->err, "smelt: error: %s: ", im->path);
  vfprintf(im->err, fmt, ap);
  fputc('\n', im->err);
  va_end(ap);
}

static void out(Importer *im, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (im->blen + (size_t)n + 1 > im->bcap) {
    im->bcap = (im->blen + (size_t)n + 1) * 2;
    im->body = xrealloc(im->body, im->bcap);
  }
  va_start(ap, fmt);
  vsnprintf(im->body + im->blen, (size_t)n + 1, fmt, ap);
  va_end(ap);
  im->blen += (size_t)n;
}

static Value *find(Importer *im, const char *name) {
  for (int i = 0; i < im->nvals; i++)
    if (!strcmp(im->vals[i].onnx, name)) return &im->vals[i];
  return NULL;
}

// Words a name must not take in the model file: keywords and the functions
// the generated file calls.
static const char *const reserved[] = {
    "import", "fn", "model", "train", "param", "input", "output", "loss", "let", "for", "in", "if", "else",
    "return", "as", "true", "false", "none", "and", "or", "not", "training", "pi", "all", "f32", "f16", "bf16",
    "i32", "i64", "u8", "bool", "int", "float", "str", "tensor", "list", "matmul", "relu", "sigmoid", "tanh",
    "exp", "log", "sqrt", "abs", "softmax", "log_softmax", "reshape", "permute", "conv", "pool_max", "pool_avg",
    "concat", "sum", "mean", "gather", "erf", "pow", "where", "cast", "zeros", "buffer", "break",
    "while", "assert",
};

// A name of the model file for an ONNX name: letters, digits and '_', not
// starting with a digit, no reserved word, unique.
static char *ident_for(Importer *im, const char *onnx) {
  size_t n = strlen(onnx);
  char *s = xmalloc(n + 16);
  size_t k = 0;
  if (!n || isdigit((unsigned char)onnx[0])) s[k++] = 'v';
  for (size_t i = 0; i < n; i++) s[k++] = isalnum((unsigned char)onnx[i]) ? onnx[i] : '_';
  s[k] = 0;
  if (s[0] == '_') {   // a leading '_' is kept out: prefix a letter
    memmove(s + 1, s, k + 1);
    s[0] = 'v';
    k++;
  }
  for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
    if (!strcmp(s, reserved[i])) {
      s[k++] = '_';
      s[k] = 0;
      break;
    }
  for (int suffix = 2;; suffix++) {
    bool taken = false;
    for (int i = 0; i < im->nvals && !taken; i++) taken = !strcmp(im->vals[i].ident, s);
    if (!taken) break;
    snprintf(s + k, 16, "_%d", suffix);
  }
  return s;
}

static Value *add_value(Importer *im, const char *onnx, int kind, DType dt, int ndim, const int64_t *dims) {
  if (im->nvals == im->cap) {
    im->cap = im->cap ? im->cap * 2 : 64;
    im->vals = xrealloc(im->vals, (size_t)im->cap * sizeof *im->vals);
  }
  Value *v = &im->vals[im->nvals];
  memset(v, 0, sizeof *v);
  v->ident = ident_for(im, onnx);
  v->onnx = xstrdup(onnx);
  im->nvals++;
  v->kind = kind;
  v->dtype = dt;
  v->ndim = ndim;
  if (ndim) memcpy(v->dims, dims, (size_t)ndim * sizeof *dims);
  return v;
}

static int64_t numel(const int64_t *dims, int ndim) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= dims[i];
  return n;
}

static const char *shape_str(const int64_t *dims, int ndim) {
  static char buf[4][256];
  static int which;
  char *b = buf[which++ & 3];
  size_t k = 0;
  b[k++] = '[';
  b[k] = 0;
  for (int i = 0; i < ndim; i++) k += (size_t)snprintf(b + k, 256 - k, "%s%lld", i ? ", " : "", (long long)dims[i]);
  snprintf(b + k, 256 - k, "]");
  return b;
}

static const char *dtype_word(DType d) {
  switch (d) {
    case DT_F32: return "f32";
    case DT_F16: return "f16";
    case DT_BF16: return "bf16";
    case DT_I32: return "i32";
    case DT_I64: return "i64";
    case DT_U8: return "u8";
    case DT_BOOL: return "bool";
    case DT_COUNT: break;
  }
  return "?";
}

static bool onnx_dtype(int32_t t, DType *d) {
  switch (t) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: *d = DT_F32; return true;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: *d = DT_I64; return true;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: *d = DT_I32; return true;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: *d = DT_BOOL; return true;
    default: return false;
  }
}

// ---- tensors

// A TensorProto's values as floats (float) or int64s (integer types); NULL
// with a message for another type or external data.
static void *tensor_values(Importer *im, const Onnx__TensorProto *t, const char *what, bool *is_float, int64_t *count) {
  int64_t n = 1;
  for (size_t i = 0; i < t->n_dims; i++) {
    if (t->dims[i] < 0) {
      fail(im, "%s '%s' has a negative dimension", what, t->name);
      return NULL;
    }
    n *= t->dims[i];
  }
  *count = n;
  if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
    fail(im, "%s '%s' keeps its data in an external file, which this importer does not read yet", what, t->name);
    return NULL;
  }
  bool raw = t->has_raw_data;
  if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
    *is_float = true;
    float *v = xmalloc((size_t)(n ? n : 1) * sizeof *v);
    if (raw ? t->raw_data.len != (size_t)n * 4 : t->n_float_data != (size_t)n) {
      fail(im, "%s '%s' holds %zu values where its shape %s needs %lld", what, t->name,
           raw ? t->raw_data.len / 4 : t->n_float_data, shape_str(t->dims, (int)t->n_dims), (long long)n);
      free(v);
      return NULL;
    }
    if (raw) memcpy(v, t->raw_data.data, (size_t)n * 4);   // little-endian, as ONNX stores it
    else memcpy(v, t->float_data, (size_t)n * 4);
    return v;
  }
  if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT32) {
    *is_float = false;
    bool i64 = t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    size_t have = raw ? t->raw_data.len / (i64 ? 8 : 4) : i64 ? t->n_int64_data : t->n_int32_data;
    if (have != (size_t)n) {
      fail(im, "%s '%s' holds %zu values where its shape %s needs %lld", what, t->name, have,
           shape_str(t->dims, (int)t->n_dims), (long long)n);
      return NULL;
    }
    int64_t *v = xmalloc((size_t)(n ? n : 1) * sizeof *v);
    for (int64_t i = 0; i < n; i++) {
      if (raw && i64) memcpy(&v[i], t->raw_data.data + 8 * i, 8);
      else if (raw) {
        int32_t x;
        memcpy(&x, t->raw_data.data + 4 * i, 4);
        v[i] = x;
      } else v[i] = i64 ? t->int64_data[i] : t->int32_data[i];
    }
    return v;
  }
  fail(im, "%s '%s' has ONNX data type %d; the importer reads float, int32 and int64 tensors", what, t->name,
       t->data_type);
  return NULL;
}

// A constant tensor (an initializer or a Constant node's value) named name:
// a float of one element becomes a number, other floats a param (its values
// in the weights file), integers a compile-time list (shapes and axes).
static void add_constant(Importer *im, const char *name, const Onnx__TensorProto *t, const char *what) {
  bool is_float;
  int64_t n;
  void *data = tensor_values(im, t, what, &is_float, &n);
  if (!data) return;
  if ((int)t->n_dims > MAX_DIMS) {
    fail(im, "%s '%s' has %zu dimensions (at most %d)", what, name, t->n_dims, MAX_DIMS);
    free(data);
    return;
  }
  if (!is_float) {
    Value *v = add_value(im, name, V_INTS, DT_I64, (int)t->n_dims, t->dims);
    v->ints = data;
    v->nints = (int)n;
    return;
  }
  float *f = data;
  if (n == 1) {
    if (!isfinite(f[0])) {
      fail(im, "%s '%s' is %g, which the model language cannot write", what, name, f[0]);
      free(data);
      return;
    }
    Value *v = add_value(im, name, V_SCALAR, DT_F32, (int)t->n_dims, t->dims);
    v->scalar = f[0];
    free(data);
    return;
  }
  Value *v = add_value(im, name, V_PARAM, DT_F32, (int)t->n_dims, t->dims);
  im->wnames = xrealloc(im->wnames, (size_t)(im->nw + 1) * sizeof *im->wnames);
  im->wdtypes = xrealloc(im->wdtypes, (size_t)(im->nw + 1) * sizeof *im->wdtypes);
  im->wshapes = xrealloc(im->wshapes, (size_t)(im->nw + 1) * sizeof *im->wshapes);
  im->wdata = xrealloc(im->wdata, (size_t)(im->nw + 1) * sizeof *im->wdata);
  im->wnames[im->nw] = v->ident;
  im->wdtypes[im->nw] = DT_F32;
  im->wshapes[im->nw] = shape_of(v->ndim, v->dims);
  im->wdata[im->nw++] = f;
  out(im, "    param %s: f32%s = zeros   # '%s'\n", v->ident, shape_str(v->dims, v->ndim), name);
}

// ---- attributes

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *name) {
  for (size_t i = 0; i < n->n_attribute; i++)
    if (!strcmp(n->attribute[i]->name, name)) return n->attribute[i];
  return NULL;
}

static int64_t attr_i(const Onnx__NodeProto *n, const char *name, int64_t dflt) {
  const Onnx__AttributeProto *a = attr(n, name);
  return a && a->has_i ? a->i : dflt;
}

static double attr_f(const Onnx__NodeProto *n, const char *name, double dflt) {
  const Onnx__AttributeProto *a = attr(n, name);
  return a && a->has_f ? a->f : dflt;
}

// The ints of an attribute into v (at most max); -1 when absent.
static int attr_ints(const Onnx__NodeProto *n, const char *name, int64_t *v, int max) {
  const Onnx__AttributeProto *a = attr(n, name);
  if (!a) return -1;
  int k = (int)a->n_ints < max ? (int)a->n_ints : max;
  for (int i = 0; i < k; i++) v[i] = a->ints[i];
  return k;
}

// ---- nodes

static const char *const supported[] = {
    "Add", "Sub", "Mul", "Div", "MatMul", "Gemm", "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Neg", "Abs",
    "Softmax", "LogSoftmax", "Reshape", "Transpose", "Flatten", "Identity", "Constant", "Conv", "MaxPool",
    "AveragePool", "Concat", "ReduceMean", "ReduceSum", "Gather", "Erf", "Pow", "Where", "Equal", "Less",
    "Greater", "Cast",
};

static bool op_supported(const Onnx__NodeProto *n) {
  if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx")) return false;
  for (size_t i = 0; i < sizeof supported / sizeof *supported; i++)
    if (!strcmp(n->op_type, supported[i])) return true;
  return false;
}

// An operand as an expression: a value's name, or its number.
static const char *operand(Importer *im, const Value *v) {
  static char buf[4][64];
  static int which;
  if (v->kind != V_SCALAR) return v->ident;
  char *b = buf[which++ & 3];
  snprintf(b, 64, "%.9g", v->scalar);
  if (!strpbrk(b, ".e")) strcat(b, ".0");
  if (b[0] == '-') {
    memmove(b + 1, b, strlen(b) + 1);
    b[0] = '(';
    strcat(b, ")");
  }
  (void)im;
  return b;
}

static Value *input_of(Importer *im, const Onnx__NodeProto *n, size_t i) {
  if (i >= n->n_input || !n->input[i][0]) {
    fail(im, "node '%s' (%s) lacks its input %zu", n->name, n->op_type, i + 1);
    return NULL;
  }
  Value *v = find(im, n->input[i]);
  if (!v) fail(im, "node '%s' (%s) reads '%s', which no node, input or initializer defines", n->name, n->op_type,
               n->input[i]);
  return v;
}

static bool is_tensor(Importer *im, const Onnx__NodeProto *n, const Value *v) {
  if (v->kind == V_INTS) {
    fail(im, "node '%s' (%s) reads the integer constant '%s' as a tensor, which the importer does not support yet",
         n->name, n->op_type, v->onnx);
    return false;
  }
  return true;
}

static int norm_axis(Importer *im, const Onnx__NodeProto *n, int64_t axis, int rank) {
  if (axis < -rank || axis >= (rank ? rank : 1)) {
    fail(im, "node '%s' (%s): axis %lld is outside a rank-%d tensor", n->name, n->op_type, (long long)axis, rank);
    return 0;
  }
  return (int)(axis < 0 ? axis + rank : axis);
}

// The numpy broadcast of two shapes into d; false when they do not broadcast.
static bool broadcast(const Value *a, const Value *b, int64_t *d, int *nd) {
  int r = a->ndim > b->ndim ? a->ndim : b->ndim;
  for (int i = 0; i < r; i++) {
    int ia = i - (r - a->ndim), ib = i - (r - b->ndim);
    int64_t x = ia >= 0 ? a->dims[ia] : 1, y = ib >= 0 ? b->dims[ib] : 1;
    if (x != y && x != 1 && y != 1) return false;
    d[i] = x == 1 ? y : x;
  }
  *nd = r;
  return true;
}

// The result of a node: `let NAME = ...` (or `output NAME = ...`), with its shape.
static Value *result(Importer *im, const Onnx__NodeProto *n, DType dt, int ndim, const int64_t *dims) {
  if (n->n_output < 1) {
    fail(im, "node '%s' (%s) has no output", n->name, n->op_type);
    return NULL;
  }
  if (ndim > MAX_DIMS) {
    fail(im, "node '%s' (%s) makes a tensor of %d dimensions (at most %d)", n->name, n->op_type, ndim, MAX_DIMS);
    return NULL;
  }
  return add_value(im, n->output[0], V_LET, dt, ndim, dims);
}

static void emit(Importer *im, const Value *y, const char *fmt, ...) {
  char expr[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(expr, sizeof expr, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof expr) {
    fail(im, "the expression for '%s' is longer than %zu bytes", y->onnx, sizeof expr - 1);
    return;
  }
  bool is_output = false;
  for (size_t i = 0; i < im->graph->n_output; i++) is_output |= !strcmp(im->graph->output[i]->name, y->onnx);
  out(im, "    %s %s = %s   # %s\n", is_output ? "output" : "let", y->ident, expr, shape_str(y->dims, y->ndim));
}

static void join_ints(char *b, size_t cap, const int64_t *v, int n) {
  size_t k = 0;
  b[0] = 0;
  for (int i = 0; i < n; i++) k += (size_t)snprintf(b + k, cap - k, "%s%lld", i ? ", " : "", (long long)v[i]);
}

static void emit_reshape(Importer *im, const Value *y, const char *x) {
  char dims[512];
  join_ints(dims, sizeof dims, y->dims, y->ndim);
  emit(im, y, "reshape(%s%s%s)", x, y->ndim ? ", " : "", dims);
}

static void node_binary(Importer *im, const Onnx__NodeProto *n, const char *op, bool compare) {
  Value *a = input_of(im, n, 0), *b = a ? input_of(im, n, 1) : NULL;
  if (!b || !is_tensor(im, n, a) || !is_tensor(im, n, b)) return;
  int64_t d[MAX_DIMS];
  int nd;
  if (!broadcast(a, b, d, &nd)) {
    fail(im, "node '%s' (%s): shapes %s and %s do not broadcast", n->name, n->op_type, shape_str(a->dims, a->ndim),
         shape_str(b->dims, b->ndim));
    return;
  }
  if (!compare && (a->dtype != DT_F32 || b->dtype != DT_F32)) {
    fail(im, "node '%s' (%s): %s and %s operands; the importer does arithmetic on float tensors only", n->name,
         n->op_type, dtype_word(a->dtype), dtype_word(b->dtype));
    return;
  }
  if (a->kind == V_SCALAR && b->kind == V_SCALAR) {
    fail(im, "node '%s' (%s) has two constant operands; fold it before importing", n->name, n->op_type);
    return;
  }
  Value *y = result(im, n, compare ? DT_BOOL : a->kind == V_SCALAR ? b->dtype : a->dtype, nd, d);
  if (!y) return;
  if (!strcmp(op, "pow")) emit(im, y, "pow(%s, %s)", operand(im, a), operand(im, b));
  else emit(im, y, "%s %s %s", operand(im, a), op, operand(im, b));
}

static void node_unary(Importer *im, const Onnx__NodeProto *n, const char *fn) {
  Value *x = input_of(im, n, 0);
  if (!x || !is_tensor(im, n, x)) return;
  if (x->kind == V_SCALAR) {
    fail(im, "node '%s' (%s) has a constant operand; fold it before importing", n->name, n->op_type);
    return;
  }
  Value *y = result(im, n, x->dtype, x->ndim, x->dims);
  if (!y) return;
  if (!strcmp(fn, "-")) emit(im, y, "-%s", x->ident);
  else if (!fn[0]) emit(im, y, "%s", x->ident);
  else emit(im, y, "%s(%s)", fn, x->ident);
}

static void node_matmul(Importer *im, const Onnx__NodeProto *n) {
  Value *a = input_of(im, n, 0), *b = a ? input_of(im, n, 1) : NULL;
  if (!b || !is_tensor(im, n, a) || !is_tensor(im, n, b)) return;
  if (a->ndim < 2 || b->ndim < 2 || a->kind == V_SCALAR || b->kind == V_SCALAR) {
    fail(im, "node '%s' (MatMul): operands %s and %s; the importer takes operands of rank 2 or more", n->name,
         shape_str(a->dims, a->ndim), shape_str(b->dims, b->ndim));
    return;
  }
  int64_t k1 = a->dims[a->ndim - 1], k2 = b->dims[b->ndim - 2];
  Value ba = *a, bb = *b;
  ba.ndim -= 2;
  bb.ndim -= 2;
  int64_t d[MAX_DIMS];
  int nd;
  if (k1 != k2 || !broadcast(&ba, &bb, d, &nd)) {
    fail(im, "node '%s' (MatMul): shapes %s and %s do not multiply", n->name, shape_str(a->dims, a->ndim),
         shape_str(b->dims, b->ndim));
    return;
  }
  d[nd++] = a->dims[a->ndim - 2];
  d[nd++] = b->dims[b->ndim - 1];
  Value *y = result(im, n, DT_F32, nd, d);
  if (y) emit(im, y, "matmul(%s, %s)", a->ident, b->ident);
}

static void node_gemm(Importer *im, const Onnx__NodeProto *n) {
  Value *a = input_of(im, n, 0), *b = a ? input_of(im, n, 1) : NULL;
  if (!b || !is_tensor(im, n, a) || !is_tensor(im, n, b)) return;
  bool ta = attr_i(n, "transA", 0), tb = attr_i(n, "transB", 0);
  double alpha = attr_f(n, "alpha", 1.0), beta = attr_f(n, "beta", 1.0);
  if (a->ndim != 2 || b->ndim != 2) {
    fail(im, "node '%s' (Gemm) needs 2-D operands, not %s and %s", n->name, shape_str(a->dims, a->ndim),
         shape_str(b->dims, b->ndim));
    return;
  }
  int64_t m = a->dims[ta ? 1 : 0], k = a->dims[ta ? 0 : 1], k2 = b->dims[tb ? 1 : 0], nn = b->dims[tb ? 0 : 1];
  if (k != k2) {
    fail(im, "node '%s' (Gemm): shapes %s and %s do not multiply (transA %d, transB %d)", n->name,
         shape_str(a->dims, a->ndim), shape_str(b->dims, b->ndim), ta, tb);
    return;
  }
  int64_t d[2] = {m, nn};
  char expr[1024];
  int len = snprintf(expr, sizeof expr, "matmul(%s, %s%s%s)", a->ident, b->ident, ta ? ", ta = true" : "",
                     tb ? ", tb = true" : "");
  if (alpha != 1.0) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%.9g * %s", alpha, expr);
    len = snprintf(expr, sizeof expr, "%.1000s", tmp);
  }
  Value *c = n->n_input > 2 && n->input[2][0] ? input_of(im, n, 2) : NULL;
  if (n->n_input > 2 && n->input[2][0] && !c) return;
  if (c && beta != 0.0) {
    if (!is_tensor(im, n, c)) return;
    Value mm = {.ndim = 2, .dims = {m, nn}};
    int64_t bd[MAX_DIMS];
    int bn;
    if (!broadcast(&mm, c, bd, &bn) || bn != 2 || bd[0] != m || bd[1] != nn) {
      fail(im, "node '%s' (Gemm): C of shape %s does not broadcast to %s", n->name, shape_str(c->dims, c->ndim),
           shape_str(d, 2));
      return;
    }
    if (beta == 1.0) snprintf(expr + len, sizeof expr - (size_t)len, " + %s", operand(im, c));
    else snprintf(expr + len, sizeof expr - (size_t)len, " + %.9g * %s", beta, operand(im, c));
  }
  Value *y = result(im, n, DT_F32, 2, d);
  if (y) emit(im, y, "%s", expr);
}

// Softmax and LogSoftmax: one axis from opset 13; before, the input is
// coerced to 2-D at axis (default 1) and normalized over the second part.
static void node_softmax(Importer *im, const Onnx__NodeProto *n, const char *fn) {
  Value *x = input_of(im, n, 0);
  if (!x || !is_tensor(im, n, x)) return;
  bool old = im->opset < 13;
  int axis = norm_axis(im, n, attr_i(n, "axis", old ? 1 : -1), x->ndim);
  if (im->failed) return;
  Value *y = result(im, n, DT_F32, x->ndim, x->dims);
  if (!y) return;
  if (!old || axis == x->ndim - 1) {
    emit(im, y, "%s(%s, axis = %d)", fn, x->ident, old ? -1 : axis);
    return;
  }
  int64_t rows = numel(x->dims, axis), cols = numel(x->dims + axis, x->ndim - axis);
  char d[512];
  join_ints(d, sizeof d, y->dims, y->ndim);
  emit(im, y, "reshape(%s(reshape(%s, %lld, %lld), axis = -1), %s)", fn, x->ident, (long long)rows, (long long)cols, d);
}

// A constant list of integers (a shape or axes) from input i.
static const Value *ints_input(Importer *im, const Onnx__NodeProto *n, size_t i, const char *what) {
  Value *v = input_of(im, n, i);
  if (!v) return NULL;
  if (v->kind != V_INTS) {
    fail(im, "node '%s' (%s): its %s '%s' must be a constant (an initializer or a Constant node)", n->name,
         n->op_type, what, v->onnx);
    return NULL;
  }
  return v;
}

static void node_reshape(Importer *im, const Onnx__NodeProto *n) {
  Value *x = input_of(im, n, 0);
  if (!x || !is_tensor(im, n, x)) return;
  int64_t d[MAX_DIMS];
  int nd;
  if (im->opset < 5) {
    nd = attr_ints(n, "shape", d, MAX_DIMS);
  } else {
    const Value *s = ints_input(im, n, 1, "shape");
    if (!s) return;
    if (s->nints > MAX_DIMS) {
      fail(im, "node '%s' (Reshape): a shape of %d dimensions (at most %d)", n->name, s->nints, MAX_DIMS);
      return;
    }
    nd = s->nints;
    memcpy(d, s->ints, (size_t)nd * sizeof *d);
  }
  bool allowzero = attr_i(n, "allowzero", 0);
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < nd; i++) {
    if (d[i] == 0 && !allowzero) {
      if (i >= x->ndim) {
        fail(im, "node '%s' (Reshape): 0 at dimension %d copies a dimension %s does not have", n->name, i,
             shape_str(x->dims, x->ndim));
        return;
      }
      d[i] = x->dims[i];
    }
    if (d[i] == -1) {
      if (infer >= 0) {
        fail(im, "node '%s' (Reshape): more than one -1 in the shape", n->name);
        return;
      }
      infer = i;
    } else if (d[i] < 0) {
      fail(im, "node '%s' (Reshape): dimension %lld in the shape", n->name, (long long)d[i]);
      return;
    } else known *= d[i];
  }
  int64_t total = numel(x->dims, x->ndim);
  if (infer >= 0) d[infer] = known ? total / known : 0;
  if (numel(d, nd) != total) {
    fail(im, "node '%s' (Reshape): %s cannot take the shape %s", n->name, shape_str(x->dims, x->ndim),
         shape_str(d, nd));
    return;
  }
  Value *y = result(im, n, x->dtype, nd, d);
  if (y) emit_reshape(im, y, x->ident);
}

static void node_flatten(Importer *im, const Onnx__NodeProto *n) {
  Value *x = input_of(im, n, 0);
  if (!x || !is_tensor(im, n, x)) return;
  int64_t axis = attr_i(n, "axis", 1);
  int a = axis == x->ndim ? x->ndim : norm_axis(im, n, axis, x->ndim);
  if (im->failed) return;
  int64_t d[2] = {numel(x->dims, a), numel(x->dims + a, x->ndim - a)};
  Value *y = result(im, n, x->dtype, 2, d);
  if (y) emit_reshape(im, y, x->ident);
}

static void node_transpose(Importer *im, const Onnx__NodeProto *n) {
  Value *x = input_of(im, n, 0);
  if (!x || !is_tensor(im, n, x)) return;
  int64_t perm[MAX_DIMS];
  int np = attr_ints(n, "perm", perm, MAX_DIMS);
  if (np < 0) {
    np = x->ndim;
    for (int i = 0; i < np; i++) perm[i] = np - 1 - i;
  }
  bool seen[MAX_DIMS] = {0};
  bool ok = np == x->ndim;
  for (int i = 0; i < np && ok; i++) {
    ok = perm[i] >= 0 && perm[i] < x->ndim && !seen[perm[i]];
    if (ok) seen[perm[i]] = true;
  }
  if (!ok) {
    char p[256];
    join_ints(p, sizeof p, perm, np);
    fail(im, "node '%s' (Transpose): perm [%s] is not a permutation of the %d axes of %s", n->name, p, x->ndim,
         shape_str(x->dims, x->ndim));
    return;
  }
  int64_t d[MAX_DIMS];
  for (int i = 0; i < np; i++) d[i] = x->dims[perm[i]];
  Value *y = result(im, n, x->dtype, np, d);
  char p[256];
  join_ints(p, sizeof p, perm, np);
  if (y) emit(im, y, "permute(%s, %s)", x->ident, p);
}

static void node_concat(Importer *im, const Onnx__NodeProto *n) {
  if (n->n_input < 1) {
    fail(im, "node '%s' (Concat) has no inputs", n->name);
    return;
  }
  Value *first = input_of(im, n, 0);
  if (!first || !is_tensor(im, n, first)) return;
  int axis = norm_axis(im, n, attr_i(n, "axis", 0), first->ndim);
  if (im->failed) return;
  int64_t d[MAX_DIMS];
  memcpy(d, first->dims, sizeof d);
  char list[2048];
  size_t k = (size_t)snprintf(list, sizeof list, "%s", first->ident);
  for (size_t i = 1; i < n->n_input; i++) {
    Value *v = input_of(im, n, i);
    if (!v || !is_tensor(im, n, v)) return;
    bool ok = v->ndim == first->ndim && v->kind != V_SCALAR;
    for (int j = 0; j < v->ndim && ok; j++) ok = j == axis || v->dims[j] == first->dims[j];
    if (!ok) {
      fail(im, "node '%s' (Concat): %s and %s differ outside axis %d", n->name, shape_str(first->dims, first->ndim),
           shape_str(v->dims, v->ndim), axis);
      return;
    }
    d[axis] += v->dims[axis];
    k += (size_t)snprintf(list + k, sizeof list - k, ", %s", v->ident);
    if (k >= sizeof list) {
      fail(im, "node '%s' (Concat) has more inputs than the importer writes in one call", n->name);
      return;
    }
  }
  Value *y = result(im, n, first->dtype, first->ndim, d);
  if (y) emit(im, y, n->n_input == 1 ? "%s%.0d" : "concat(%s, axis = %d)", list, axis);
}

// ReduceMean and ReduceSum: axes an attribute (ReduceSum before 13,
// ReduceMean before 18) or the second input; keepdims (default 1);
// noop_with_empty_axes. Several axes reduce one after the other, kept, and a
// reshape drops them when keepdims is 0.
static void node_reduce(Importer *im, const Onnx__NodeProto *n, const char *fn) {
  Value *x = input_of(im, n, 0);
  if (!x || !is_tensor(im, n, x)) return;
  bool input_axes = !strcmp(fn, "sum") ? im->opset >= 13 : im->opset >= 18;
  int64_t axes[MAX_DIMS];
  int na = -1;
  if (input_axes) {
    if (n->n_input > 1 && n->input[1][0]) {
      const Value *a = ints_input(im, n, 1, "axes");
      if (!a) return;
      na = a->nints < MAX_DIMS ? a->nints : MAX_DIMS;
      memcpy(axes, a->ints, (size_t)na * sizeof *axes);
    }
  } else {
    na = attr_ints(n, "axes", axes, MAX_DIMS);
  }
  bool keep = attr_i(n, "keepdims", 1);
  if (na <= 0) {
    if (input_axes && attr_i(n, "noop_with_empty_axes", 0)) {
      Value *y = result(im, n, x->dtype, x->ndim, x->dims);
      if (y) emit(im, y, "%s", x->ident);
      return;
    }
    na = x->ndim;
    for (int i = 0; i < na; i++) axes[i] = i;
  }
  bool on[MAX_DIMS] = {0};
  for (int i = 0; i < na; i++) {
    int a = norm_axis(im, n, axes[i], x->ndim);
    if (im->failed) return;
    on[a] = true;
  }
  int64_t d[MAX_DIMS], kd[MAX_DIMS];
  int nd = 0;
  for (int i = 0; i < x->ndim; i++) {
    kd[i] = on[i] ? 1 : x->dims[i];
    if (!on[i] || keep) d[nd++] = kd[i];
  }
  char expr[4096];
  snprintf(expr, sizeof expr, "%s", x->ident);
  for (int i = x->ndim - 1; i >= 0; i--)
    if (on[i]) {
      char tmp[4200];
      snprintf(tmp, sizeof tmp, "%s(%s, axis = %d, keep = true)", fn, expr, i);
      memcpy(expr, tmp, sizeof expr);
    }
  Value *y = result(im, n, x->dtype, nd, d);
  if (!y) return;
  if (keep) {
    emit(im, y, "%s", expr);
  } else {
    char dims[512];
    join_ints(dims, sizeof dims, d, nd);
    emit(im, y, "reshape(%s%s%s)", expr, nd ? ", " : "", dims);
  }
}

static void node_gather(Importer *im, const Onnx__NodeProto *n) {
  Value *t = input_of(im, n, 0), *ids = t ? input_of(im, n, 1) : NULL;
  if (!ids) return;
  if (t->kind != V_PARAM || t->ndim != 2 || attr_i(n, "axis", 0) != 0) {
    fail(im, "node '%s' (Gather): the importer takes rows (axis 0) of a 2-D float initializer; '%s' is %s, axis %lld",
         n->name, t->onnx, shape_str(t->dims, t->ndim), (long long)attr_i(n, "axis", 0));
    return;
  }
  if (ids->kind != V_INPUT && ids->kind != V_LET) {
    fail(im, "node '%s' (Gather): its indices '%s' must be an input or a node's result", n->name, ids->onnx);
    return;
  }
  if (ids->dtype != DT_I64 && ids->dtype != DT_I32) {
    fail(im, "node '%s' (Gather): its indices '%s' are %s, not integers", n->name, ids->onnx, dtype_word(ids->dtype));
    return;
  }
  int64_t d[MAX_DIMS];
  memcpy(d, ids->dims, (size_t)ids->ndim * sizeof *d);
  d[ids->ndim] = t->dims[1];
  Value *y = result(im, n, DT_F32, ids->ndim + 1, d);
  if (y) emit(im, y, "gather(%s, %s)", t->ident, ids->ident);
}

static void node_where(Importer *im, const Onnx__NodeProto *n) {
  Value *c = input_of(im, n, 0), *a = c ? input_of(im, n, 1) : NULL, *b = a ? input_of(im, n, 2) : NULL;
  if (!b || !is_tensor(im, n, c) || !is_tensor(im, n, a) || !is_tensor(im, n, b)) return;
  int64_t d1[MAX_DIMS], d[MAX_DIMS];
  int n1, nd;
  Value tmp = {.ndim = 0};
  bool ok = broadcast(c, a, d1, &n1);
  if (ok) {
    tmp.ndim = n1;
    memcpy(tmp.dims, d1, sizeof d1);
    ok = broadcast(&tmp, b, d, &nd);
  }
  if (!ok) {
    fail(im, "node '%s' (Where): shapes %s, %s and %s do not broadcast", n->name, shape_str(c->dims, c->ndim),
         shape_str(a->dims, a->ndim), shape_str(b->dims, b->ndim));
    return;
  }
  Value *y = result(im, n, a->kind == V_SCALAR ? b->dtype : a->dtype, nd, d);
  if (y) emit(im, y, "where(%s, %s, %s)", operand(im, c), operand(im, a), operand(im, b));
}

static void node_cast(Importer *im, const Onnx__NodeProto *n) {
  Value *x = input_of(im, n, 0);
  if (!x || !is_tensor(im, n, x)) return;
  if (attr_i(n, "to", 0) != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
    fail(im, "node '%s' (Cast): to ONNX data type %lld; the importer casts to float (1) only", n->name,
         (long long)attr_i(n, "to", 0));
    return;
  }
  Value *y = result(im, n, DT_F32, x->ndim, x->dims);
  if (y) emit(im, y, "cast(%s, f32)", x->ident);
}

// The spatial attributes of a 2-D convolution or pooling: kernel, strides,
// symmetric pads, dilations. False with a message for what has no equivalent.
typedef struct {
  int64_t kernel[2], stride[2], pad[2], dil[2];
} Window;

static bool window(Importer *im, const Onnx__NodeProto *n, Window *w, bool kernel_attr) {
  const Onnx__AttributeProto *ap = attr(n, "auto_pad");
  if (ap && ap->has_s && !(ap->s.len == 6 && !memcmp(ap->s.data, "NOTSET", 6))) {
    fail(im, "node '%s' (%s): auto_pad %.*s; the importer takes explicit pads (NOTSET) only", n->name, n->op_type,
         (int)ap->s.len, (const char *)ap->s.data);
    return false;
  }
  if (attr_i(n, "ceil_mode", 0)) {
    fail(im, "node '%s' (%s): ceil_mode 1 is not supported yet", n->name, n->op_type);
    return false;
  }
  int64_t v[8];
  if (kernel_attr && attr_ints(n, "kernel_shape", w->kernel, 2) != 2) {
    fail(im, "node '%s' (%s) needs a 2-D kernel_shape", n->name, n->op_type);
    return false;
  }
  w->stride[0] = w->stride[1] = 1;
  w->dil[0] = w->dil[1] = 1;
  w->pad[0] = w->pad[1] = 0;
  int k = attr_ints(n, "strides", v, 8);
  if (k == 2) memcpy(w->stride, v, sizeof w->stride);
  else if (k >= 0) return fail(im, "node '%s' (%s): strides must have 2 values", n->name, n->op_type), false;
  k = attr_ints(n, "dilations", v, 8);
  if (k == 2) memcpy(w->dil, v, sizeof w->dil);
  else if (k >= 0) return fail(im, "node '%s' (%s): dilations must have 2 values", n->name, n->op_type), false;
  k = attr_ints(n, "pads", v, 8);
  if (k == 4) {
    if (v[0] != v[2] || v[1] != v[3]) {
      fail(im, "node '%s' (%s): pads [%lld, %lld, %lld, %lld] are not symmetric, which is not supported yet", n->name,
           n->op_type, (long long)v[0], (long long)v[1], (long long)v[2], (long long)v[3]);
      return false;
    }
    w->pad[0] = v[0];
    w->pad[1] = v[1];
  } else if (k >= 0) return fail(im, "node '%s' (%s): pads must have 4 values", n->name, n->op_type), false;
  return true;
}

static int64_t window_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

static void node_conv(Importer *im, const Onnx__NodeProto *n) {
  Value *x = input_of(im, n, 0), *w = x ? input_of(im, n, 1) : NULL;
  if (!w || !is_tensor(im, n, x) || !is_tensor(im, n, w)) return;
  if (x->ndim != 4 || w->ndim != 4) {
    fail(im, "node '%s' (Conv): the importer takes 2-D convolutions (4-D input and weight), not %s and %s", n->name,
         shape_str(x->dims, x->ndim), shape_str(w->dims, w->ndim));
    return;
  }
  Window win;
  if (!window(im, n, &win, false)) return;
  int64_t ks[2];
  if (attr_ints(n, "kernel_shape", ks, 2) == 2 && (ks[0] != w->dims[2] || ks[1] != w->dims[3])) {
    fail(im, "node '%s' (Conv): kernel_shape disagrees with the weight %s", n->name, shape_str(w->dims, 4));
    return;
  }
  int64_t groups = attr_i(n, "group", 1);
  if (groups < 1 || x->dims[1] % groups || w->dims[0] % groups || w->dims[1] * groups != x->dims[1]) {
    fail(im, "node '%s' (Conv): input %s, weight %s and group %lld do not agree", n->name, shape_str(x->dims, 4),
         shape_str(w->dims, 4), (long long)groups);
    return;
  }
  int64_t d[4] = {x->dims[0], w->dims[0], window_out(x->dims[2], w->dims[2], win.stride[0], win.pad[0], win.dil[0]),
                  window_out(x->dims[3], w->dims[3], win.stride[1], win.pad[1], win.dil[1])};
  if (d[2] < 1 || d[3] < 1) {
    fail(im, "node '%s' (Conv): the window does not fit the input %s", n->name, shape_str(x->dims, 4));
    return;
  }
  char expr[1024];
  int len = snprintf(expr, sizeof expr, "conv(%s, %s, stride = (%lld, %lld), padding = (%lld, %lld), dilation = (%lld, %lld), groups = %lld)",
                     x->ident, w->ident, (long long)win.stride[0], (long long)win.stride[1], (long long)win.pad[0],
                     (long long)win.pad[1], (long long)win.dil[0], (long long)win.dil[1], (long long)groups);
  if (n->n_input > 2 && n->input[2][0]) {
    Value *b = input_of(im, n, 2);
    if (!b || !is_tensor(im, n, b)) return;
    if (b->ndim != 1 || b->dims[0] != d[1]) {
      fail(im, "node '%s' (Conv): bias %s for %lld output channels", n->name, shape_str(b->dims, b->ndim),
           (long long)d[1]);
      return;
    }
    if (b->kind == V_SCALAR) snprintf(expr + len, sizeof expr - (size_t)len, " + %s", operand(im, b));
    else snprintf(expr + len, sizeof expr - (size_t)len, " + reshape(%s, %lld, 1, 1)", b->ident, (long long)d[1]);
  }
  Value *y = result(im, n, DT_F32, 4, d);
  if (y) emit(im, y, "%s", expr);
}

static void node_pool(Importer *im, const Onnx__NodeProto *n, bool max) {
  Value *x = input_of(im, n, 0);
  if (!x || !is_tensor(im, n, x)) return;
  if (x->ndim != 4) {
    fail(im, "node '%s' (%s): the importer takes 2-D pooling (a 4-D input), not %s", n->name, n->op_type,
         shape_str(x->dims, x->ndim));
    return;
  }
  if (n->n_output > 1) {
    fail(im, "node '%s' (%s): the Indices output is not supported", n->name, n->op_type);
    return;
  }
  Window w;
  if (!window(im, n, &w, true)) return;
  if (w.dil[0] != 1 || w.dil[1] != 1) {
    fail(im, "node '%s' (%s): dilations are not supported for pooling yet", n->name, n->op_type);
    return;
  }
  if (!max && (w.pad[0] || w.pad[1]) && !attr_i(n, "count_include_pad", 0)) {
    fail(im, "node '%s' (AveragePool): pads with count_include_pad 0 are not supported yet", n->name);
    return;
  }
  if (2 * w.pad[0] > w.kernel[0] || 2 * w.pad[1] > w.kernel[1]) {
    fail(im, "node '%s' (%s): pads larger than half the window", n->name, n->op_type);
    return;
  }
  int64_t d[4] = {x->dims[0], x->dims[1], window_out(x->dims[2], w.kernel[0], w.stride[0], w.pad[0], 1),
                  window_out(x->dims[3], w.kernel[1], w.stride[1], w.pad[1], 1)};
  if (d[2] < 1 || d[3] < 1) {
    fail(im, "node '%s' (%s): the window does not fit the input %s", n->name, n->op_type, shape_str(x->dims, 4));
    return;
  }
  Value *y = result(im, n, DT_F32, 4, d);
  if (y)
    emit(im, y, "%s(%s, (%lld, %lld), stride = (%lld, %lld), padding = (%lld, %lld))", max ? "pool_max" : "pool_avg",
         x->ident, (long long)w.kernel[0], (long long)w.kernel[1], (long long)w.stride[0], (long long)w.stride[1],
         (long long)w.pad[0], (long long)w.pad[1]);
}

static void node_constant(Importer *im, const Onnx__NodeProto *n) {
  const Onnx__AttributeProto *a = attr(n, "value");
  if (n->n_output < 1) return fail(im, "node '%s' (Constant) has no output", n->name);
  if (a && a->t) return add_constant(im, n->output[0], a->t, "Constant");
  if ((a = attr(n, "value_float")) && a->has_f) {
    Value *v = add_value(im, n->output[0], V_SCALAR, DT_F32, 0, NULL);
    v->scalar = a->f;
    return;
  }
  if ((a = attr(n, "value_ints")) || (a = attr(n, "value_int"))) {
    int64_t one = a->i;
    int64_t dim = a->n_ints ? (int64_t)a->n_ints : 1;
    Value *v = add_value(im, n->output[0], V_INTS, DT_I64, a->n_ints ? 1 : 0, &dim);
    v->nints = (int)dim;
    v->ints = xmalloc((size_t)dim * sizeof *v->ints);
    memcpy(v->ints, a->n_ints ? a->ints : &one, (size_t)dim * sizeof *v->ints);
    return;
  }
  fail(im, "node '%s' (Constant): the importer reads value, value_float, value_int and value_ints", n->name);
}

static void node(Importer *im, const Onnx__NodeProto *n) {
  const char *op = n->op_type;
  if (!strcmp(op, "Add")) node_binary(im, n, "+", false);
  else if (!strcmp(op, "Sub")) node_binary(im, n, "-", false);
  else if (!strcmp(op, "Mul")) node_binary(im, n, "*", false);
  else if (!strcmp(op, "Div")) node_binary(im, n, "/", false);
  else if (!strcmp(op, "Pow")) node_binary(im, n, "pow", false);
  else if (!strcmp(op, "Equal")) node_binary(im, n, "==", true);
  else if (!strcmp(op, "Less")) node_binary(im, n, "<", true);
  else if (!strcmp(op, "Greater")) node_binary(im, n, ">", true);
  else if (!strcmp(op, "Relu")) node_unary(im, n, "relu");
  else if (!strcmp(op, "Sigmoid")) node_unary(im, n, "sigmoid");
  else if (!strcmp(op, "Tanh")) node_unary(im, n, "tanh");
  else if (!strcmp(op, "Exp")) node_unary(im, n, "exp");
  else if (!strcmp(op, "Log")) node_unary(im, n, "log");
  else if (!strcmp(op, "Sqrt")) node_unary(im, n, "sqrt");
  else if (!strcmp(op, "Abs")) node_unary(im, n, "abs");
  else if (!strcmp(op, "Erf")) node_unary(im, n, "erf");
  else if (!strcmp(op, "Neg")) node_unary(im, n, "-");
  else if (!strcmp(op, "Identity")) node_unary(im, n, "");
  else if (!strcmp(op, "MatMul")) node_matmul(im, n);
  else if (!strcmp(op, "Gemm")) node_gemm(im, n);
  else if (!strcmp(op, "Softmax")) node_softmax(im, n, "softmax");
  else if (!strcmp(op, "LogSoftmax")) node_softmax(im, n, "log_softmax");
  else if (!strcmp(op, "Reshape")) node_reshape(im, n);
  else if (!strcmp(op, "Flatten")) node_flatten(im, n);
  else if (!strcmp(op, "Transpose")) node_transpose(im, n);
  else if (!strcmp(op, "Concat")) node_concat(im, n);
  else if (!strcmp(op, "ReduceMean")) node_reduce(im, n, "mean");
  else if (!strcmp(op, "ReduceSum")) node_reduce(im, n, "sum");
  else if (!strcmp(op, "Gather")) node_gather(im, n);
  else if (!strcmp(op, "Where")) node_where(im, n);
  else if (!strcmp(op, "Cast")) node_cast(im, n);
  else if (!strcmp(op, "Conv")) node_conv(im, n);
  else if (!strcmp(op, "MaxPool")) node_pool(im, n, true);
  else if (!strcmp(op, "AveragePool")) node_pool(im, n, false);
  else if (!strcmp(op, "Constant")) node_constant(im, n);
  else fail(im, "node '%s': op type %s is not supported", n->name, op);
}

// Every unsupported op type, with its nodes, in one message; false when there is one.
static bool check_ops(Importer *im, const Onnx__GraphProto *g) {
  bool *done = xcalloc(g->n_node ? g->n_node : 1, sizeof *done);
  int types = 0;
  char *msg = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&msg, &len);
  for (size_t i = 0; i < g->n_node; i++) {
    const Onnx__NodeProto *n = g->node[i];
    if (done[i] || op_supported(n)) continue;
    types++;
    const char *dom = n->domain && n->domain[0] ? n->domain : "ai.onnx";
    fprintf(m, "\n  %s (domain %s, opset %lld): ", n->op_type, dom, (long long)im->opset);
    int k = 0;
    for (size_t j = i; j < g->n_node; j++) {
      const Onnx__NodeProto *o = g->node[j];
      const char *od = o->domain && o->domain[0] ? o->domain : "ai.onnx";
      if (done[j] || strcmp(o->op_type, n->op_type) || strcmp(od, dom)) continue;
      done[j] = true;
      fprintf(m, "%s'%s'", k++ ? ", " : "", o->name[0] ? o->name : o->n_output ? o->output[0] : "(unnamed)");
    }
  }
  fclose(m);
  if (types)
    fprintf(im->err, "smelt: error: %s: %d op type%s the importer does not support:%s\n", im->path, types,
            types == 1 ? "" : "s", msg);
  free(msg);
  free(done);
  return types == 0;
}

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

int onnx_import(const char *path, const char *smelt_path, const Define *defs, int ndefs, FILE *err) {
  Importer im = {.path = path, .err = err};
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(err, "smelt: error: cannot read '%s': %s\n", path, strerror(errno));
    return 1;
  }
  char *buf = NULL;
  size_t len = 0, cap = 0, got;
  do {
    if (len == cap) buf = xrealloc(buf, cap = cap ? cap * 2 : 1 << 16);
    got = fread(buf + len, 1, cap - len, f);
    len += got;
  } while (got);
  fclose(f);
  Onnx__ModelProto *model = onnx__model_proto__unpack(NULL, len, (const uint8_t *)buf);
  free(buf);
  if (!model || !model->graph) {
    fprintf(err, "smelt: error: '%s' is not an ONNX model (no ModelProto with a graph)\n", path);
    if (model) onnx__model_proto__free_unpacked(model, NULL);
    return 1;
  }
  const Onnx__GraphProto *g = model->graph;
  im.graph = g;
  im.opset = -1;
  for (size_t i = 0; i < model->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *o = model->opset_import[i];
    if (!o->domain || !o->domain[0] || !strcmp(o->domain, "ai.onnx")) im.opset = o->has_version ? o->version : 1;
  }
  if (im.opset < 0) fail(&im, "the model imports no version of the default operator set (ai.onnx)");
  else if (im.opset < 7) fail(&im, "opset %lld; the importer reads opset 7 and newer", (long long)im.opset);
  if (!im.failed && !check_ops(&im, g)) im.failed = true;

  // initializers, then the inputs that are not initializers
  for (size_t i = 0; i < g->n_initializer && !im.failed; i++)
    add_constant(&im, g->initializer[i]->name, g->initializer[i], "initializer");
  char *inputs = NULL;
  size_t ilen = 0;
  FILE *in = open_memstream(&inputs, &ilen);
  bool *used_def = xcalloc((size_t)(ndefs ? ndefs : 1), sizeof *used_def);
  for (size_t i = 0; i < g->n_input && !im.failed; i++) {
    const Onnx__ValueInfoProto *vi = g->input[i];
    if (find(&im, vi->name)) continue;
    if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !vi->type->tensor_type->shape) {
      fail(&im, "input '%s' is not a tensor of known rank", vi->name);
      break;
    }
    const Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
    DType dt;
    if (!onnx_dtype(tt->elem_type, &dt)) {
      fail(&im, "input '%s' has ONNX data type %d; inputs are float, int32, int64 or bool", vi->name, tt->elem_type);
      break;
    }
    int64_t d[MAX_DIMS];
    int nd = (int)tt->shape->n_dim;
    if (nd > MAX_DIMS) {
      fail(&im, "input '%s' has %d dimensions (at most %d)", vi->name, nd, MAX_DIMS);
      break;
    }
    for (int j = 0; j < nd && !im.failed; j++) {
      const Onnx__TensorShapeProto__Dimension *dm = tt->shape->dim[j];
      if (dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && dm->dim_value > 0) {
        d[j] = dm->dim_value;
        continue;
      }
      const char *param = dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ? dm->dim_param : "";
      int k = -1;
      for (int q = 0; q < ndefs && param[0]; q++)
        if (!strcmp(defs[q].name, param)) k = q;
      if (k < 0 || defs[k].value < 1) {
        if (param[0])
          fail(&im, "input '%s': dimension %d is the free dimension '%s'; bind it with -D %s=VALUE", vi->name, j,
               param, param);
        else fail(&im, "input '%s': dimension %d has no size; the importer needs static shapes", vi->name, j);
        break;
      }
      used_def[k] = true;
      d[j] = defs[k].value;
    }
    if (im.failed) break;
    Value *v = add_value(&im, vi->name, V_INPUT, dt, nd, d);
    fprintf(in, "    input %s: %s%s\n", v->ident, dtype_word(dt), shape_str(d, nd));
  }
  fclose(in);
  for (int q = 0; q < ndefs && !im.failed; q++)
    if (!used_def[q]) fail(&im, "-D %s: the model's inputs have no dimension named '%s'", defs[q].name, defs[q].name);
  free(used_def);

  for (size_t i = 0; i < g->n_node && !im.failed; i++) {
    const Onnx__NodeProto *n = g->node[i];
    if (n->n_output > 1 && strcmp(n->op_type, "MaxPool"))
      for (size_t o = 1; o < n->n_output && !im.failed; o++)
        if (n->output[o][0]) fail(&im, "node '%s' (%s): its output %zu is not supported", n->name, n->op_type, o + 1);
    if (!im.failed) node(&im, n);
  }
  for (size_t i = 0; i < g->n_output && !im.failed; i++) {
    Value *v = find(&im, g->output[i]->name);
    if (!v || v->kind != V_LET) {
      fail(&im, "output '%s' is %s; the importer takes outputs that nodes compute", g->output[i]->name,
           v ? "an input or a constant" : "defined by no node");
      break;
    }
    // a declared static shape must be the one the nodes compute
    const Onnx__TypeProto *t = g->output[i]->type;
    const Onnx__TensorShapeProto *sp =
        t && t->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ? t->tensor_type->shape : NULL;
    bool static_shape = sp != NULL;
    for (size_t j = 0; sp && j < sp->n_dim; j++)
      static_shape &= sp->dim[j]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    if (static_shape) {
      bool same = (int)sp->n_dim == v->ndim;
      for (int j = 0; j < v->ndim && same; j++) same = sp->dim[j]->dim_value == v->dims[j];
      if (!same) {
        int64_t d[MAX_DIMS];
        int nd = (int)sp->n_dim < MAX_DIMS ? (int)sp->n_dim : MAX_DIMS;
        for (int j = 0; j < nd; j++) d[j] = sp->dim[j]->dim_value;
        fail(&im, "output '%s' is declared %s, but its nodes compute %s", g->output[i]->name, shape_str(d, nd),
             shape_str(v->dims, v->ndim));
      }
    }
  }
  int rc = 1;
  if (!im.failed) {
    char weights[4096];
    snprintf(weights, sizeof weights, "%.*s.safetensors",
             (int)(strlen(smelt_path) > 6 && !strcmp(smelt_path + strlen(smelt_path) - 6, ".smelt")
                       ? strlen(smelt_path) - 6
                       : strlen(smelt_path)),
             smelt_path);
    char e[512];
    TensorWriter *w = NULL;
    bool ok = true;
    if (im.nw) {
      w = tensor_writer_open(weights, im.nw, im.wnames, im.wdtypes, im.wshapes, e, sizeof e);
      if (!w) {
        fprintf(err, "smelt: error: %s\n", e);
        ok = false;
      }
      for (int i = 0; w && i < im.nw && ok; i++)
        ok = tensor_writer_bytes(w, im.wdata[i], (uint64_t)shape_numel(&im.wshapes[i]) * 4);
      if (w && tensor_writer_close(w, ok, e, sizeof e)) {
        fprintf(err, "smelt: error: %s\n", e);
        ok = false;
      }
    }
    FILE *sf = ok ? fopen(smelt_path, "w") : NULL;
    if (ok && !sf) fprintf(err, "smelt: error: cannot write '%s': %s\n", smelt_path, strerror(errno));
    if (sf) {
      char *mname = ident_for(&im, g->name && g->name[0] ? g->name : "imported");
      fprintf(sf, "# Imported from %s (ONNX opset %lld) by smelt import.\n", base_name(path), (long long)im.opset);
      if (im.nw)
        fprintf(sf, "# The params' values are in %s: pass it as --checkpoint (docs/onnx.md).\n", base_name(weights));
      fprintf(sf, "import \"nn\"\n\nmodel %s {\n%s%s}\n", mname, inputs ? inputs : "", im.body ? im.body : "");
      free(mname);
      rc = fclose(sf) ? 1 : 0;
      if (rc) fprintf(err, "smelt: error: cannot write '%s'\n", smelt_path);
    }
  }
  free(inputs);
  for (int i = 0; i < im.nvals; i++) {
    free(im.vals[i].onnx);
    free(im.vals[i].ident);
    free(im.vals[i].ints);
  }
  for (int i = 0; i < im.nw; i++) free(im.wdata[i]);
  free(im.wnames);
  free(im.wdtypes);
  free(im.wshapes);
  free(im.wdata);
  free(im.vals);
  free(im.body);
  onnx__model_proto__free_unpacked(model, NULL);
  return rc;
}
