// onnx_import.c: an ONNX model (a ModelProto, read by the protobuf-c code
// generated from onnx.proto) to a model file of the language, and its float
// initializers to a safetensors file beside it (docs/onnx.md). Shapes are
// static: every dimension is a number or a dim_param bound by -D. The model
// file is written only when every node is understood; otherwise one message
// lists every unsupported op type with its nodes and the opset.
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler.h"
#include "onnx.pb-c.h"
#include "onnx_import.h"
#include "onnx_importer.h"
#include "tensorfile.h"

void im_fail(Importer *im, const char *fmt, ...) {
  if (im->failed) return;
  im->failed = true;
  va_list ap;
  va_start(ap, fmt);
  fprintf(im->err, "smelt: error: %s: ", im->path);
  vfprintf(im->err, fmt, ap);
  fputc('\n', im->err);
  va_end(ap);
}

void im_out(Importer *im, const char *fmt, ...) {
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

Value *im_find(Importer *im, const char *name) {
  for (int i = 0; i < im->nvals; i++)
    if (!strcmp(im->vals[i]->onnx, name)) return im->vals[i];
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
    "while", "assert", "max", "min", "argmax", "iota", "fill", "rsqrt", "pad", "broadcast", "one_hot", "stack",
    "maximum", "minimum", "conv_transpose", "scatter_add",
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
    for (int i = 0; i < im->nvals && !taken; i++) taken = !strcmp(im->vals[i]->ident, s);
    if (!taken) break;
    snprintf(s + k, 16, "_%d", suffix);
  }
  return s;
}

Value *im_add_value(Importer *im, const char *onnx, int kind, DType dt, int ndim, const int64_t *dims) {
  if (im->nvals == im->cap) {
    im->cap = im->cap ? im->cap * 2 : 64;
    im->vals = xrealloc(im->vals, (size_t)im->cap * sizeof *im->vals);
  }
  Value *v = xcalloc(1, sizeof *v);
  im->vals[im->nvals] = v;
  v->ident = ident_for(im, onnx);
  v->onnx = xstrdup(onnx);
  im->nvals++;
  v->kind = kind;
  v->dtype = dt;
  v->ndim = ndim;
  if (ndim) memcpy(v->dims, dims, (size_t)ndim * sizeof *dims);
  return v;
}

int64_t onnx_numel(const int64_t *dims, int ndim) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= dims[i];
  return n;
}

const char *onnx_shape_str(const int64_t *dims, int ndim) {
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

const char *onnx_dtype_word(DType d) {
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

bool onnx_dtype_of(int32_t t, DType *d) {
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
static void *decode_values(Importer *im, const Onnx__TensorProto *t, const char *what, bool raw,
                           ProtobufCBinaryData bytes, int64_t n, DType *dt);

// The bytes of a tensor kept in an external file (data_location EXTERNAL):
// its "location" relative to the model's folder, from "offset" for "length"
// bytes (default: to the end). A location that is absolute, climbs out with
// "..", or resolves (through links) outside the folder is refused. NULL with
// a message.
static uint8_t *external_bytes(Importer *im, const Onnx__TensorProto *t, const char *what, size_t *len) {
  const char *loc = NULL;
  long long offset = 0, length = -1;
  for (size_t i = 0; i < t->n_external_data; i++) {
    const Onnx__StringStringEntryProto *e = t->external_data[i];
    if (!e->key || !e->value) continue;
    char *end;
    if (!strcmp(e->key, "location")) loc = e->value;
    else if (!strcmp(e->key, "offset") || !strcmp(e->key, "length")) {
      errno = 0;
      long long x = strtoll(e->value, &end, 10);
      if (errno || end == e->value || *end || x < 0) {
        im_fail(im, "%s '%s': external data %s '%s' is not a byte count", what, t->name, e->key, e->value);
        return NULL;
      }
      if (!strcmp(e->key, "offset")) offset = x;
      else length = x;
    }
  }
  if (!loc || !loc[0]) {
    im_fail(im, "%s '%s' keeps its data in an external file but names no location", what, t->name);
    return NULL;
  }
  bool climbs = loc[0] == '/';
  for (const char *p = loc; *p && !climbs; p++)
    climbs = (p == loc || p[-1] == '/') && p[0] == '.' && p[1] == '.' && (p[2] == '/' || !p[2]);
  if (climbs) {
    im_fail(im, "%s '%s': external data location '%s' leaves the model's folder", what, t->name, loc);
    return NULL;
  }
  const char *slash = strrchr(im->path, '/');
  char dir[4096], file[8300], real_dir[PATH_MAX], real_file[PATH_MAX];
  snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - im->path) : 1, slash ? im->path : ".");
  snprintf(file, sizeof file, "%s/%s", dir, loc);
  if (!realpath(dir, real_dir) || !realpath(file, real_file)) {
    im_fail(im, "%s '%s': cannot read its external data '%s': %s", what, t->name, file, strerror(errno));
    return NULL;
  }
  size_t rl = strlen(real_dir);
  if (strncmp(real_file, real_dir, rl) || (real_file[rl] != '/' && strcmp(real_dir, "/"))) {
    im_fail(im, "%s '%s': external data location '%s' leaves the model's folder", what, t->name, loc);
    return NULL;
  }
  FILE *f = fopen(real_file, "rb");
  struct stat st;
  if (!f || fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
    im_fail(im, "%s '%s': cannot read its external data '%s'%s%s", what, t->name, file, f ? ": not a regular file" : ": ",
            f ? "" : strerror(errno));
    if (f) fclose(f);
    return NULL;
  }
  if (length < 0) length = st.st_size - offset;
  if (offset > st.st_size || length < 0 || length > st.st_size - offset) {
    im_fail(im, "%s '%s': external data '%s' is %lld bytes; offset %lld and length %lld do not fit", what, t->name,
            file, (long long)st.st_size, offset, length);
    fclose(f);
    return NULL;
  }
  uint8_t *b = xmalloc((size_t)length + 1);
  bool ok = fseeko(f, (off_t)offset, SEEK_SET) == 0 && fread(b, 1, (size_t)length, f) == (size_t)length;
  fclose(f);
  if (!ok) {
    im_fail(im, "%s '%s': cannot read %lld bytes of external data '%s'", what, t->name, length, file);
    free(b);
    return NULL;
  }
  *len = (size_t)length;
  return b;
}

static void *tensor_values(Importer *im, const Onnx__TensorProto *t, const char *what, DType *dt, int64_t *count) {
  int64_t n = 1;
  for (size_t i = 0; i < t->n_dims; i++) {
    if (t->dims[i] < 0) {
      im_fail(im, "%s '%s' has a negative dimension", what, t->name);
      return NULL;
    }
    n *= t->dims[i];
  }
  *count = n;
  ProtobufCBinaryData bytes = t->raw_data;   // raw values: in the model, or from an external file
  uint8_t *external = NULL;
  if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
    external = external_bytes(im, t, what, &bytes.len);
    if (!external) return NULL;
    bytes.data = external;
  }
  void *v = decode_values(im, t, what, external || t->has_raw_data, bytes, n, dt);
  free(external);
  return v;
}

// The values of t as floats (DT_F32) or int64s (integers and bools), from
// raw bytes (raw) or the typed fields.
static void *decode_values(Importer *im, const Onnx__TensorProto *t, const char *what, bool raw,
                           ProtobufCBinaryData bytes, int64_t n, DType *dt) {
  if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
    *dt = DT_F32;
    float *v = xmalloc((size_t)(n ? n : 1) * sizeof *v);
    if (raw ? bytes.len != (size_t)n * 4 : t->n_float_data != (size_t)n) {
      im_fail(im, "%s '%s' holds %zu values where its shape %s needs %lld", what, t->name,
           raw ? bytes.len / 4 : t->n_float_data, onnx_shape_str(t->dims, (int)t->n_dims), (long long)n);
      free(v);
      return NULL;
    }
    if (raw) memcpy(v, bytes.data, (size_t)n * 4);   // little-endian, as ONNX stores it
    else memcpy(v, t->float_data, (size_t)n * 4);
    return v;
  }
  // integers and bools: int64 in int64_data, the others in int32_data, or raw
  int width;
  switch (t->data_type) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: *dt = DT_I64; width = 8; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: *dt = DT_I32; width = 4; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: *dt = DT_BOOL; width = 1; break;
    default:
      im_fail(im, "%s '%s' has ONNX data type %d; the importer reads float, int32, int64 and bool tensors", what,
              t->name, t->data_type);
      return NULL;
  }
  size_t have = raw ? bytes.len / (size_t)width : width == 8 ? t->n_int64_data : t->n_int32_data;
  if (have != (size_t)n || (raw && bytes.len % (size_t)width)) {
    im_fail(im, "%s '%s' holds %zu values where its shape %s needs %lld", what, t->name, have,
         onnx_shape_str(t->dims, (int)t->n_dims), (long long)n);
    return NULL;
  }
  int64_t *v = xmalloc((size_t)(n ? n : 1) * sizeof *v);
  for (int64_t i = 0; i < n; i++) {
    if (!raw) v[i] = width == 8 ? t->int64_data[i] : t->int32_data[i];
    else if (width == 8) memcpy(&v[i], bytes.data + 8 * i, 8);
    else if (width == 4) {
      int32_t x;
      memcpy(&x, bytes.data + 4 * i, 4);
      v[i] = x;
    } else v[i] = bytes.data[i] != 0;
    if (width == 1) v[i] = v[i] != 0;
  }
  return v;
}

// A constant tensor (an initializer or a Constant node's value) named name:
// a float of one element becomes a number, other floats a param (its values
// in the weights file), integers a compile-time list (shapes and axes).
void im_add_constant(Importer *im, const char *name, const Onnx__TensorProto *t, const char *what) {
  DType dt;
  int64_t n;
  void *data = tensor_values(im, t, what, &dt, &n);
  if (!data) return;
  if ((int)t->n_dims > MAX_DIMS) {
    im_fail(im, "%s '%s' has %zu dimensions (at most %d)", what, name, t->n_dims, MAX_DIMS);
    free(data);
    return;
  }
  if (dt != DT_F32) {
    Value *v = im_add_value(im, name, V_INTS, dt, (int)t->n_dims, t->dims);
    v->ints = data;
    v->nints = (int)n;
    return;
  }
  float *f = data;
  if (n == 0) {   // an empty float constant (Resize's absent roi or scales): no param can hold it
    im_add_value(im, name, V_PARAM, DT_F32, (int)t->n_dims, t->dims);
    free(data);
    return;
  }
  if (n == 1) {
    if (!isfinite(f[0])) {
      im_fail(im, "%s '%s' is %g, which the model language cannot write", what, name, f[0]);
      free(data);
      return;
    }
    Value *v = im_add_value(im, name, V_SCALAR, DT_F32, (int)t->n_dims, t->dims);
    v->scalar = f[0];
    free(data);
    return;
  }
  Value *v = im_add_value(im, name, V_PARAM, DT_F32, (int)t->n_dims, t->dims);
  im->wnames = xrealloc(im->wnames, (size_t)(im->nw + 1) * sizeof *im->wnames);
  im->wdtypes = xrealloc(im->wdtypes, (size_t)(im->nw + 1) * sizeof *im->wdtypes);
  im->wshapes = xrealloc(im->wshapes, (size_t)(im->nw + 1) * sizeof *im->wshapes);
  im->wdata = xrealloc(im->wdata, (size_t)(im->nw + 1) * sizeof *im->wdata);
  im->wnames[im->nw] = v->ident;
  im->wdtypes[im->nw] = DT_F32;
  im->wshapes[im->nw] = shape_of(v->ndim, v->dims);
  im->wdata[im->nw++] = f;
  im_out(im, "    param %s: f32%s = zeros   # '%s'\n", v->ident, onnx_shape_str(v->dims, v->ndim), name);
}

Value *im_add_param(Importer *im, const char *name, int ndim, const int64_t *dims, float *data) {
  Value *v = im_add_value(im, name, V_PARAM, DT_F32, ndim, dims);
  im->wnames = xrealloc(im->wnames, (size_t)(im->nw + 1) * sizeof *im->wnames);
  im->wdtypes = xrealloc(im->wdtypes, (size_t)(im->nw + 1) * sizeof *im->wdtypes);
  im->wshapes = xrealloc(im->wshapes, (size_t)(im->nw + 1) * sizeof *im->wshapes);
  im->wdata = xrealloc(im->wdata, (size_t)(im->nw + 1) * sizeof *im->wdata);
  im->wnames[im->nw] = v->ident;
  im->wdtypes[im->nw] = DT_F32;
  im->wshapes[im->nw] = shape_of(v->ndim, v->dims);
  im->wdata[im->nw++] = data;
  im_out(im, "    param %s: f32%s = zeros\n", v->ident, onnx_shape_str(v->dims, v->ndim));
  return v;
}

const float *im_param_data(Importer *im, const Value *v, int64_t *count) {
  static float one;
  if (v->kind == V_SCALAR) {
    one = (float)v->scalar;
    *count = 1;
    return &one;
  }
  if (v->kind != V_PARAM) return NULL;
  *count = 0;
  if (onnx_numel(v->dims, v->ndim) == 0) return &one;   // empty: never declared as a param
  for (int i = 0; i < im->nw; i++)
    if (im->wnames[i] == v->ident) {
      *count = onnx_numel(v->dims, v->ndim);
      return im->wdata[i];
    }
  return NULL;
}

// ---- attributes

const Onnx__AttributeProto *onnx_attr(const Onnx__NodeProto *n, const char *name) {
  for (size_t i = 0; i < n->n_attribute; i++)
    if (!strcmp(n->attribute[i]->name, name)) return n->attribute[i];
  return NULL;
}

int64_t onnx_attr_i(const Onnx__NodeProto *n, const char *name, int64_t dflt) {
  const Onnx__AttributeProto *a = onnx_attr(n, name);
  return a && a->has_i ? a->i : dflt;
}

double onnx_attr_f(const Onnx__NodeProto *n, const char *name, double dflt) {
  const Onnx__AttributeProto *a = onnx_attr(n, name);
  return a && a->has_f ? a->f : dflt;
}

// The ints of an attribute into v (at most max); -1 when absent.
int onnx_attr_ints(const Onnx__NodeProto *n, const char *name, int64_t *v, int max) {
  const Onnx__AttributeProto *a = onnx_attr(n, name);
  if (!a) return -1;
  int k = (int)a->n_ints < max ? (int)a->n_ints : max;
  for (int i = 0; i < k; i++) v[i] = a->ints[i];
  return k;
}

// ---- nodes

// An operand as an expression: a value's name, or its number.
const char *im_operand(Importer *im, const Value *v) {
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

const char *im_node(const Onnx__NodeProto *n) {
  if (n->name && n->name[0]) return n->name;
  return n->n_output && n->output[0] && n->output[0][0] ? n->output[0] : "(unnamed)";
}

// False with a message when a name or op type the importer reads is absent
// (protobuf leaves an unset string NULL).
static bool strings_present(Importer *im, const Onnx__GraphProto *g) {
  for (size_t i = 0; i < g->n_node; i++) {
    const Onnx__NodeProto *n = g->node[i];
    bool ok = n->op_type != NULL;
    for (size_t k = 0; k < n->n_input && ok; k++) ok = n->input[k] != NULL;
    for (size_t k = 0; k < n->n_output && ok; k++) ok = n->output[k] != NULL;
    for (size_t k = 0; k < n->n_attribute && ok; k++) ok = n->attribute[k]->name != NULL;
    if (!ok) return im_fail(im, "node %zu has no op type, or an input, output or attribute without a name", i), false;
  }
  for (size_t i = 0; i < g->n_input + g->n_output; i++) {
    const Onnx__ValueInfoProto *v = i < g->n_input ? g->input[i] : g->output[i - g->n_input];
    if (!v->name) return im_fail(im, "a graph %s has no name", i < g->n_input ? "input" : "output"), false;
  }
  for (size_t i = 0; i < g->n_initializer; i++)
    if (!g->initializer[i]->name) return im_fail(im, "initializer %zu has no name", i), false;
  return true;
}

Value *im_input(Importer *im, const Onnx__NodeProto *n, size_t i) {
  if (i >= n->n_input || !n->input[i][0]) {
    im_fail(im, "node '%s' (%s) lacks its input %zu", im_node(n), n->op_type, i + 1);
    return NULL;
  }
  Value *v = im_find(im, n->input[i]);
  if (!v) im_fail(im, "node '%s' (%s) reads '%s', which no node, input or initializer defines", im_node(n), n->op_type,
               n->input[i]);
  return v;
}

// The expression that builds an integer or bool constant's values: a fill,
// an iota for an arithmetic progression, else a stack of fills. NULL with a
// message for what the language cannot write.
static char *ints_expr(Importer *im, const char *who, const Value *v) {
  if (v->nints > 4096) {
    im_fail(im, "%s reads the integer constant '%s' of %d values as a tensor; the importer writes at most 4096", who,
            v->onnx, v->nints);
    return NULL;
  }
  for (int i = 0; i < v->nints; i++)
    if (v->ints[i] == INT64_MIN) {
      im_fail(im, "%s: the constant '%s' holds the smallest int64, which the model language cannot write", who,
              v->onnx);
      return NULL;
    }
  const char *dt = v->dtype == DT_BOOL ? "i32" : onnx_dtype_word(v->dtype);
  size_t cap = 256 + (size_t)v->nints * 48, k = 0;
  char *e = xmalloc(cap);
  char dims[512];
  onnx_join_ints(dims, sizeof dims, v->dims, v->ndim);
  bool step = v->nints > 2;   // an arithmetic progression is an iota
  for (int i = 2; i < v->nints && step; i++) step = v->ints[i] - v->ints[i - 1] == v->ints[1] - v->ints[0];
  if (v->nints == 0) {   // an empty constant (a shape of nothing)
    k += (size_t)snprintf(e + k, cap - k, "reshape(iota(0, dtype = %s)%s%s)", dt, v->ndim ? ", " : "", dims);
  } else if (v->nints == 1) {
    if (v->ndim)
      k += (size_t)snprintf(e + k, cap - k, "fill(%lld, %s, dtype = %s)", (long long)v->ints[0], dims, dt);
    else k += (size_t)snprintf(e + k, cap - k, "fill(%lld, 1, dtype = %s)[0]", (long long)v->ints[0], dt);   // a scalar
  } else {
    k += (size_t)snprintf(e + k, cap - k, "reshape(");
    if (step)
      k += (size_t)snprintf(e + k, cap - k, "iota(%d, dtype = %s) * %lld + %lld", v->nints, dt,
                            (long long)(v->ints[1] - v->ints[0]), (long long)v->ints[0]);
    else {
      k += (size_t)snprintf(e + k, cap - k, "stack(");
      for (int i = 0; i < v->nints; i++)
        k += (size_t)snprintf(e + k, cap - k, "%sfill(%lld, 1, dtype = %s)", i ? ", " : "", (long long)v->ints[i], dt);
      k += (size_t)snprintf(e + k, cap - k, ")");
    }
    k += (size_t)snprintf(e + k, cap - k, ", %s)", dims);
  }
  if (v->dtype == DT_BOOL) {
    char *b = xmalloc(k + 32);
    snprintf(b, k + 32, "cast(%s, bool)", e);
    free(e);
    e = b;
  }
  return e;
}

// An integer constant read as a tensor: a `let` that builds its values, once.
bool im_is_tensor(Importer *im, const Onnx__NodeProto *n, Value *v) {
  if (v->kind != V_INTS || v->tensor_written) return true;
  char who[512];
  snprintf(who, sizeof who, "node '%s' (%s)", im_node(n), n->op_type);
  char *e = ints_expr(im, who, v);
  if (!e) return false;
  im_out(im, "    let %s = %s   # %s\n", v->ident, e, onnx_shape_str(v->dims, v->ndim));
  free(e);
  v->tensor_written = true;
  return true;
}

// An integer graph input whose value this run gives (the known values of
// onnx_import), read where a constant must be: it becomes that constant,
// and the model file builds it in place of the input. False when v is no
// such input.
bool im_specialize(Importer *im, const Onnx__NodeProto *n, Value *v, const char *what) {
  if (v->kind != V_INPUT || (v->dtype != DT_I64 && v->dtype != DT_I32)) return false;
  for (int i = 0; i < im->nknown; i++) {
    const KnownValues *kv = &im->known[i];
    if (strcmp(kv->name, v->onnx)) continue;
    if (kv->shape.ndim != v->ndim) return false;
    for (int d = 0; d < v->ndim; d++)
      if (kv->shape.d[d] != v->dims[d]) return false;
    v->kind = V_INTS;
    v->nints = (int)shape_numel(&kv->shape);
    v->ints = xmalloc(sizeof *v->ints * (size_t)(v->nints ? v->nints : 1));
    memcpy(v->ints, kv->values, sizeof *v->ints * (size_t)v->nints);
    v->specialized = true;
    v->tensor_written = true;   // the model file's header builds it
    fprintf(im->err, "smelt: note: %s: input '%s' is the %s of node '%s' (%s), which must be known when the model "
            "is built: it is built for the value these inputs give it\n", im->path, v->onnx, what, im_node(n),
            n->op_type);
    return true;
  }
  return false;
}

int im_axis(Importer *im, const Onnx__NodeProto *n, int64_t axis, int rank) {
  if (axis < -rank || axis >= (rank ? rank : 1)) {
    im_fail(im, "node '%s' (%s): axis %lld is outside a rank-%d tensor", im_node(n), n->op_type, (long long)axis, rank);
    return 0;
  }
  return (int)(axis < 0 ? axis + rank : axis);
}

// The numpy broadcast of two shapes into d; false when they do not broadcast.
bool onnx_broadcast(const Value *a, const Value *b, int64_t *d, int *nd) {
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
Value *im_result(Importer *im, const Onnx__NodeProto *n, DType dt, int ndim, const int64_t *dims) {
  if (n->n_output < 1) {
    im_fail(im, "node '%s' (%s) has no output", im_node(n), n->op_type);
    return NULL;
  }
  if (ndim > MAX_DIMS) {
    im_fail(im, "node '%s' (%s) makes a tensor of %d dimensions (at most %d)", im_node(n), n->op_type, ndim, MAX_DIMS);
    return NULL;
  }
  return im_add_value(im, n->output[0], V_LET, dt, ndim, dims);
}

Value *im_result_at(Importer *im, const Onnx__NodeProto *n, size_t k, DType dt, int ndim, const int64_t *dims) {
  if (k >= n->n_output || !n->output[k][0]) return NULL;
  if (ndim > MAX_DIMS) {
    im_fail(im, "node '%s' (%s) makes a tensor of %d dimensions (at most %d)", im_node(n), n->op_type, ndim, MAX_DIMS);
    return NULL;
  }
  return im_add_value(im, n->output[k], V_LET, dt, ndim, dims);
}

void im_emit(Importer *im, const Value *y, const char *fmt, ...) {
  char expr[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(expr, sizeof expr, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof expr) {
    im_fail(im, "the expression for '%s' is longer than %zu bytes", y->onnx, sizeof expr - 1);
    return;
  }
  bool is_output = false;
  for (size_t i = 0; i < im->graph->n_output; i++) is_output |= !strcmp(im->graph->output[i]->name, y->onnx);
  im_out(im, "    %s %s = %s   # %s\n", is_output ? "output" : "let", y->ident, expr, onnx_shape_str(y->dims, y->ndim));
}

void onnx_join_ints(char *b, size_t cap, const int64_t *v, int n) {
  size_t k = 0;
  b[0] = 0;
  for (int i = 0; i < n; i++) k += (size_t)snprintf(b + k, cap - k, "%s%lld", i ? ", " : "", (long long)v[i]);
}

void im_emit_reshape(Importer *im, const Value *y, const char *x) {
  char dims[512];
  onnx_join_ints(dims, sizeof dims, y->dims, y->ndim);
  im_emit(im, y, "reshape(%s%s%s)", x, y->ndim ? ", " : "", dims);
}

// A constant list of integers (a shape or axes) from input i.
const Value *im_ints_input(Importer *im, const Onnx__NodeProto *n, size_t i, const char *what) {
  Value *v = im_input(im, n, i);
  if (!v) return NULL;
  if (v->kind != V_INTS && !im_specialize(im, n, v, what)) {
    im_fail(im, "node '%s' (%s): its %s '%s' must be a constant (an initializer or a Constant node)", im_node(n),
         n->op_type, what, v->onnx);
    return NULL;
  }
  return v;
}


static void node_constant(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  const Onnx__AttributeProto *a = onnx_attr(n, "value");
  if (n->n_output < 1) return im_fail(im, "node '%s' (Constant) has no output", im_node(n));
  if (a && a->t) return im_add_constant(im, n->output[0], a->t, "Constant");
  if ((a = onnx_attr(n, "value_float")) && a->has_f) {
    Value *v = im_add_value(im, n->output[0], V_SCALAR, DT_F32, 0, NULL);
    v->scalar = a->f;
    return;
  }
  if ((a = onnx_attr(n, "value_ints")) || (a = onnx_attr(n, "value_int"))) {
    int64_t one = a->i;
    int64_t dim = a->n_ints ? (int64_t)a->n_ints : 1;
    Value *v = im_add_value(im, n->output[0], V_INTS, DT_I64, a->n_ints ? 1 : 0, &dim);
    v->nints = (int)dim;
    v->ints = xmalloc((size_t)dim * sizeof *v->ints);
    memcpy(v->ints, a->n_ints ? a->ints : &one, (size_t)dim * sizeof *v->ints);
    return;
  }
  im_fail(im, "node '%s' (Constant): the importer reads value, value_float, value_int and value_ints", im_node(n));
}


// Every unsupported op type, with its nodes, in one message; false when there is one.
static const OnnxOp core_ops[] = {{"Constant", node_constant, NULL}, {NULL, NULL, NULL}};
static const OnnxOp *const op_tables[] = {
    core_ops,
    onnx_math_ops,
    onnx_shape_ops,
    onnx_nn_ops,
    onnx_reduce_ops,
    onnx_norm_ops,
    onnx_rnn_ops,
    onnx_loss_ops,
    onnx_attention_ops,
    onnx_image_ops,
};

// The row that translates n's op type, or NULL: the default domain only.
static const OnnxOp *op_of(const Onnx__NodeProto *n) {
  if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx")) return NULL;
  for (size_t t = 0; t < sizeof op_tables / sizeof *op_tables; t++)
    for (const OnnxOp *o = op_tables[t]; o->op_type; o++)
      if (!strcmp(n->op_type, o->op_type)) return o;
  return NULL;
}

static bool check_ops(Importer *im, const Onnx__GraphProto *g) {
  bool *done = xcalloc(g->n_node ? g->n_node : 1, sizeof *done);
  int types = 0;
  char *msg = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&msg, &len);
  for (size_t i = 0; i < g->n_node; i++) {
    const Onnx__NodeProto *n = g->node[i];
    if (done[i] || op_of(n)) continue;
    types++;
    const char *dom = n->domain && n->domain[0] ? n->domain : "ai.onnx";
    fprintf(m, "\n  %s (domain %s, opset %lld): ", n->op_type, dom, (long long)im->opset);
    int k = 0;
    for (size_t j = i; j < g->n_node; j++) {
      const Onnx__NodeProto *o = g->node[j];
      const char *od = o->domain && o->domain[0] ? o->domain : "ai.onnx";
      if (done[j] || strcmp(o->op_type, n->op_type) || strcmp(od, dom)) continue;
      done[j] = true;
      fprintf(m, "%s'%s'", k++ ? ", " : "", im_node(o));
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

// The integer tensors of the tensor file path (NULL: none), whose values
// im_specialize may build a model for.
static void load_known(Importer *im, const char *path) {
  if (!path) return;
  char err[512];
  TensorReader *r = tensor_reader_open(path, err, sizeof err);
  if (!r) return;   // the run reports its inputs file itself
  uint32_t n = tensor_reader_count(r);
  const char *name;
  uint32_t dtype;
  Shape shape;
  for (uint32_t i = 0; i < n && tensor_reader_next(r, &name, &dtype, &shape); i++) {
    int64_t count = shape_numel(&shape);
    bool wanted = (dtype == DT_I64 || dtype == DT_I32) && count <= 4096;
    void *bytes = wanted ? xmalloc((size_t)(count ? count : 1) * 8) : NULL;
    if (!tensor_reader_bytes(r, bytes, (uint64_t)count * dtype_size(dtype))) {
      free(bytes);
      break;
    }
    if (!wanted) continue;
    im->known = xrealloc(im->known, sizeof *im->known * (size_t)(im->nknown + 1));
    KnownValues *kv = &im->known[im->nknown++];
    kv->name = xstrdup(name);
    kv->shape = shape;
    kv->values = xmalloc(sizeof *kv->values * (size_t)(count ? count : 1));
    for (int64_t k = 0; k < count; k++) {
      if (dtype == DT_I64) memcpy(&kv->values[k], (char *)bytes + 8 * k, 8);
      else {
        int32_t x;
        memcpy(&x, (char *)bytes + 4 * k, 4);
        kv->values[k] = x;
      }
    }
    free(bytes);
  }
  tensor_reader_close(r);
}

void onnx_import_free(OnnxImport *info) {
  for (int i = 0; i < info->ninputs + info->noutputs; i++) {
    free(info->onnx[i]);
    free(info->ident[i]);
  }
  for (int i = 0; i < info->nbuilt; i++) free(info->built[i]);
  free(info->onnx);
  free(info->ident);
  free(info->built);
  memset(info, 0, sizeof *info);
}

// The names of the graph's inputs and outputs into info.
static void record_names(Importer *im, OnnxImport *info) {
  const Onnx__GraphProto *g = im->graph;
  size_t cap = g->n_input + g->n_output + 1;
  info->onnx = xcalloc(cap, sizeof *info->onnx);
  info->ident = xcalloc(cap, sizeof *info->ident);
  for (int pass = 0; pass < 2; pass++) {
    size_t n = pass ? g->n_output : g->n_input;
    for (size_t i = 0; i < n; i++) {
      const Value *v = im_find(im, (pass ? g->output : g->input)[i]->name);
      if (!v || (pass == 0 && v->kind != V_INPUT)) continue;
      int k = info->ninputs + info->noutputs;
      info->onnx[k] = xstrdup(v->onnx);
      info->ident[k] = xstrdup(v->ident);
      if (pass) info->noutputs++;
      else info->ninputs++;
    }
  }
  info->weights = im->nw > 0;
  info->built = xcalloc((size_t)im->nvals + 1, sizeof *info->built);
  for (int i = 0; i < im->nvals; i++)
    if (im->vals[i].specialized) info->built[info->nbuilt++] = xstrdup(im->vals[i].onnx);
}

int onnx_import(const char *path, const char *smelt_path, const Define *defs, int ndefs, const char *values,
                FILE *err, OnnxImport *info) {
  Importer im = {.path = path, .err = err};
  if (info) memset(info, 0, sizeof *info);
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
  if (im.opset < 0) im_fail(&im, "the model imports no version of the default operator set (ai.onnx)");
  else if (im.opset < 6) im_fail(&im, "opset %lld; the importer reads opset 6 and newer", (long long)im.opset);
  if (!im.failed && strings_present(&im, g) && !check_ops(&im, g)) im.failed = true;

  // initializers, then the inputs that are not initializers
  for (size_t i = 0; i < g->n_initializer && !im.failed; i++)
    im_add_constant(&im, g->initializer[i]->name, g->initializer[i], "initializer");
  load_known(&im, values);
  bool *used_def = xcalloc((size_t)(ndefs ? ndefs : 1), sizeof *used_def);
  for (size_t i = 0; i < g->n_input && !im.failed; i++) {
    const Onnx__ValueInfoProto *vi = g->input[i];
    if (im_find(&im, vi->name)) continue;
    if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !vi->type->tensor_type->shape) {
      im_fail(&im, "input '%s' is not a tensor of known rank", vi->name);
      break;
    }
    const Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
    DType dt;
    if (!onnx_dtype_of(tt->elem_type, &dt)) {
      im_fail(&im, "input '%s' has ONNX data type %d; inputs are float, int32, int64 or bool", vi->name, tt->elem_type);
      break;
    }
    int64_t d[MAX_DIMS];
    int nd = (int)tt->shape->n_dim;
    if (nd > MAX_DIMS) {
      im_fail(&im, "input '%s' has %d dimensions (at most %d)", vi->name, nd, MAX_DIMS);
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
          im_fail(&im, "input '%s': dimension %d is the free dimension '%s'; bind it with -D %s=VALUE", vi->name, j,
               param, param);
        else im_fail(&im, "input '%s': dimension %d has no size; the importer needs static shapes", vi->name, j);
        break;
      }
      used_def[k] = true;
      d[j] = defs[k].value;
    }
    if (im.failed) break;
    im_add_value(&im, vi->name, V_INPUT, dt, nd, d)->graph_input = true;
  }
  for (int q = 0; q < ndefs && !im.failed; q++)
    if (!used_def[q]) im_fail(&im, "-D %s: the model's inputs have no dimension named '%s'", defs[q].name, defs[q].name);
  free(used_def);

  for (size_t i = 0; i < g->n_node && !im.failed; i++) {
    const Onnx__NodeProto *n = g->node[i];
    op_of(n)->fn(&im, n, op_of(n)->arg);
    // every output the graph names must have been made
    for (size_t o = 0; o < n->n_output && !im.failed; o++)
      if (n->output[o][0] && !im_find(&im, n->output[o]))
        im_fail(&im, "node '%s' (%s): its output %zu ('%s') is not supported", im_node(n), n->op_type, o + 1,
                n->output[o]);
  }
  for (size_t i = 0; i < g->n_output && !im.failed; i++) {
    Value *v = im_find(&im, g->output[i]->name);
    if (!v || v->kind != V_LET) {
      im_fail(&im, "output '%s' is %s; the importer takes outputs that nodes compute", g->output[i]->name,
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
        im_fail(&im, "output '%s' is declared %s, but its nodes compute %s", g->output[i]->name, onnx_shape_str(d, nd),
             onnx_shape_str(v->dims, v->ndim));
      }
    }
  }
  // the inputs, and the inputs built for their known values
  char *inputs = NULL;
  size_t ilen = 0;
  FILE *in = open_memstream(&inputs, &ilen);
  for (int i = 0; i < im.nvals && !im.failed; i++) {
    Value *v = &im.vals[i];
    if (!v->graph_input) continue;
    if (!v->specialized) {
      fprintf(in, "    input %s: %s%s\n", v->ident, onnx_dtype_word(v->dtype), onnx_shape_str(v->dims, v->ndim));
      continue;
    }
    char who[512];
    snprintf(who, sizeof who, "input '%s'", v->onnx);
    char *e = ints_expr(&im, who, v);
    if (e) fprintf(in, "    let %s = %s   # input '%s', for the value of this run\n", v->ident, e, v->onnx);
    free(e);
  }
  fclose(in);
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
        fprintf(sf, "# The params' values are in %s: pass it as --weights (docs/onnx.md).\n", base_name(weights));
      fprintf(sf, "import \"nn\"\n\nmodel %s {\n%s%s}\n", mname, inputs ? inputs : "", im.body ? im.body : "");
      free(mname);
      rc = fclose(sf) ? 1 : 0;
      if (rc) fprintf(err, "smelt: error: cannot write '%s'\n", smelt_path);
    }
    if (rc == 0 && info) record_names(&im, info);
  }
  free(inputs);
  for (int i = 0; i < im.nvals; i++) {
    free(im.vals[i]->onnx);
    free(im.vals[i]->ident);
    free(im.vals[i]->ints);
    free(im.vals[i]);
  }
  for (int i = 0; i < im.nknown; i++) {
    free(im.known[i].name);
    free(im.known[i].values);
  }
  free(im.known);
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
