// onnx_values.c: the ONNX importer's values and what the op families share:
// names in the model file, constants (initializers, Constant values, their
// tensors and external data), node inputs and results, and the statements
// written for them (onnx_importer.h). onnx_import.c drives the import and
// onnx_ops_*.c translate the nodes; both call down to this file only.
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "compiler.h"
#include "onnx.pb-c.h"
#include "onnx_importer.h"

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
    "maximum", "minimum", "conv_transpose", "scatter_add", "bit_and", "bit_or", "bit_xor", "bit_not", "shift_left",
    "shift_right", "bitcast", "update", "linear", "layernorm", "rms_norm", "gelu",
};

// A name of the model file for an ONNX name: letters, digits and '_', not
// starting with a digit, no reserved word, unique.
char *im_ident_for(Importer *im, const char *onnx) {
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
  v->ident = im_ident_for(im, onnx);
  v->onnx = xstrdup(onnx);
  im->nvals++;
  v->kind = kind;
  v->dtype = dt;
  v->ndim = ndim;
  if (ndim) memcpy(v->dims, dims, (size_t)ndim * sizeof *dims);
  if (onnx_numel(dims, ndim) > ONNX_MAX_ELEMENTS)
    im_fail(im, "value '%s' has the shape %s, more than 2^48 elements", onnx, onnx_shape_str(dims, ndim));
  return v;
}

// Saturates at INT64_MAX: a model's dimensions are untrusted, and a product
// that does not fit can then only compare unequal or fail a size limit.
int64_t onnx_numel(const int64_t *dims, int ndim) {
  int64_t n = 1;
  bool over = false;
  for (int i = 0; i < ndim; i++) {
    if (dims[i] == 0) return 0;
    over = over || __builtin_mul_overflow(n, dims[i], &n);
  }
  return over ? INT64_MAX : n;
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
  }
  n = onnx_numel(t->dims, (int)t->n_dims);
  if (n > ONNX_MAX_ELEMENTS) {
    im_fail(im, "%s '%s' has more than 2^48 elements", what, t->name);
    return NULL;
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
    if (n == 0) return v;   // no bytes: the source pointer may be NULL
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
// A float constant of the weights file: a param the model file declares if
// its statements read it (declare_params).
static Value *add_weight(Importer *im, const char *name, int ndim, const int64_t *dims, float *data) {
  return im_weight_of(im, im_add_value(im, name, V_PARAM, DT_F32, ndim, dims), data);
}

Value *im_weight_of(Importer *im, Value *v, float *data) {
  v->kind = V_PARAM;
  im->wnames = xrealloc(im->wnames, (size_t)(im->nw + 1) * sizeof *im->wnames);
  im->wdtypes = xrealloc(im->wdtypes, (size_t)(im->nw + 1) * sizeof *im->wdtypes);
  im->wshapes = xrealloc(im->wshapes, (size_t)(im->nw + 1) * sizeof *im->wshapes);
  im->wdata = xrealloc(im->wdata, (size_t)(im->nw + 1) * sizeof *im->wdata);
  im->wvals = xrealloc(im->wvals, (size_t)(im->nw + 1) * sizeof *im->wvals);
  im->wnames[im->nw] = v->ident;
  im->wdtypes[im->nw] = DT_F32;
  im->wshapes[im->nw] = shape_of(v->ndim, v->dims);
  im->wvals[im->nw] = v;
  im->wdata[im->nw++] = data;
  return v;
}

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
  add_weight(im, name, (int)t->n_dims, t->dims, f);
}

Value *im_add_param(Importer *im, const char *name, int ndim, const int64_t *dims, float *data) {
  return add_weight(im, name, ndim, dims, data);
}

void im_weight_to_layer(Importer *im, Value *v, const char *name, float *data, int ndim, const int64_t *dims) {
  for (int i = 0; i < im->nw; i++)
    if (im->wvals[i] == v) {
      im->wnames[i] = xstrdup(name);
      im->wvals[i] = NULL;
      im->wshapes[i] = shape_of(ndim, dims);
      if (data) {
        free(im->wdata[i]);
        im->wdata[i] = data;
      }
      return;
    }
  free(data);
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
// The values as [n] tensors of one value joined by concat, at most 16 to a
// call (the language's limit on a call's arguments), into e at k.
static size_t concat_tree(char *e, size_t cap, size_t k, const int64_t *vals, int n, const char *dt) {
  if (n == 1) return k + (size_t)snprintf(e + k, cap - k, "fill(%lld, 1, dtype = %s)", (long long)vals[0], dt);
  int parts = n < 16 ? n : 16, done = 0;
  k += (size_t)snprintf(e + k, cap - k, "concat(");
  for (int p = 0; p < parts; p++) {
    int take = (n - done) / (parts - p);
    if (p) k += (size_t)snprintf(e + k, cap - k, ", ");
    k = concat_tree(e, cap, k, vals + done, take, dt);
    done += take;
  }
  return k + (size_t)snprintf(e + k, cap - k, ")");
}

char *im_ints_expr(Importer *im, const char *who, const Value *v) {
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
  size_t cap = 256 + (size_t)v->nints * 64, k = 0;
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
    else k = concat_tree(e, cap, k, v->ints, v->nints, dt);
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
  if (v->kind == V_SEQ) {
    im_fail(im, "node '%s' (%s) reads the sequence '%s' where a tensor goes", im_node(n), n->op_type, v->onnx);
    return false;
  }
  if (v->kind != V_INTS || v->tensor_written) return true;
  char who[512];
  snprintf(who, sizeof who, "node '%s' (%s)", im_node(n), n->op_type);
  char *e = im_ints_expr(im, who, v);
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
  if (v->kind != V_INPUT) return false;
  const KnownValues *kv = NULL;
  for (int i = 0; i < im->nknown && !kv; i++)
    if (!strcmp(im->known[i].name, v->onnx)) kv = &im->known[i];
  if (!kv || kv->dtype != v->dtype || kv->shape.ndim != v->ndim) return false;
  for (int d = 0; d < v->ndim; d++)
    if (kv->shape.d[d] != v->dims[d]) return false;
  int64_t count = shape_numel(&kv->shape);
  if (kv->floats) {
    // a number where no statement has read the input yet, else a param of the weights file
    if (count == 1 && isfinite(kv->floats[0]) && !im_reads(im, v->ident)) {
      v->kind = V_SCALAR;
      v->scalar = kv->floats[0];
    } else {
      float *data = xmalloc(sizeof *data * (size_t)(count ? count : 1));
      memcpy(data, kv->floats, sizeof *data * (size_t)count);
      im_weight_of(im, v, data);
    }
  } else {
    v->kind = V_INTS;
    v->nints = (int)count;
    v->ints = xmalloc(sizeof *v->ints * (size_t)(count ? count : 1));
    memcpy(v->ints, kv->values, sizeof *v->ints * (size_t)count);
    v->tensor_written = true;   // the model file's header builds it
  }
  v->specialized = true;
  fprintf(im->err, "smelt: note: %s: input '%s' is the %s of node '%s' (%s), which must be known when the model "
          "is built: it is built for the value these inputs give it\n", im->path, v->onnx, what, im_node(n),
          n->op_type);
  return true;
}

Value *im_const_input(Importer *im, const Onnx__NodeProto *n, size_t i, const char *what) {
  Value *v = im_input(im, n, i);
  if (v) im_specialize(im, n, v, what);
  return v;
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

bool im_reads(Importer *im, const char *ident) {
  const char *body = im->body ? im->body : "";
  size_t n = strlen(ident);
  for (const char *line = body; line && *line;) {
    const char *end = strchr(line, '\n'), *hash = strchr(line, '#');
    if (!end) end = line + strlen(line);
    if (hash && hash < end) end = hash;
    for (const char *p = line; p + n <= end; p++)
      if (!strncmp(p, ident, n) && (p == line || !(isalnum((unsigned char)p[-1]) || p[-1] == '_')) &&
          !(isalnum((unsigned char)p[n]) || p[n] == '_'))
        return true;
    line = strchr(line, '\n');
    if (line) line++;
  }
  return false;
}

int64_t im_opset_of(const Importer *im, const char *domain) {
  bool dflt = !domain || !domain[0] || !strcmp(domain, "ai.onnx");
  for (size_t i = 0; im->model && i < im->model->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *o = im->model->opset_import[i];
    bool od = !o->domain || !o->domain[0] || !strcmp(o->domain, "ai.onnx");
    if (dflt ? od : !od && !strcmp(o->domain, domain)) return o->has_version ? o->version : 1;
  }
  return -1;
}

// ---- temporaries: values of a node's own

const char *im_temp_name(const Onnx__NodeProto *n, const char *tag, char *b, size_t cap) {
  const char *base = n->n_output && n->output[0][0] ? n->output[0] : im_node(n);
  snprintf(b, cap, "%.400s\x01%s", base, tag);
  return b;
}

Value *im_temp_value(Importer *im, const Onnx__NodeProto *n, const char *tag, int kind, DType dt, int ndim,
                     const int64_t *dims) {
  char name[512];
  return im_add_value(im, im_temp_name(n, tag, name, sizeof name), kind, dt, ndim, dims);
}

// im_temp with the expression's arguments in ap.
static Value *vtemp(Importer *im, const Onnx__NodeProto *n, const char *tag, DType dt, int ndim, const int64_t *dims,
                    const char *fmt, va_list ap) {
  char expr[4096];
  int len = vsnprintf(expr, sizeof expr, fmt, ap);
  if (len < 0 || (size_t)len >= sizeof expr) {
    im_fail(im, "node '%s' (%s): an expression longer than %zu bytes", im_node(n), n->op_type, sizeof expr - 1);
    return NULL;
  }
  Value *v = im_temp_value(im, n, tag, V_LET, dt, ndim, dims);
  im_emit(im, v, "%s", expr);
  return v;
}

Value *im_temp(Importer *im, const Onnx__NodeProto *n, const char *tag, DType dt, int ndim, const int64_t *dims,
               const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  Value *v = vtemp(im, n, tag, dt, ndim, dims, fmt, ap);
  va_end(ap);
  return v;
}

const char *im_temp_id(Importer *im, const Onnx__NodeProto *n, const char *tag, DType dt, int ndim,
                       const int64_t *dims, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  Value *v = vtemp(im, n, tag, dt, ndim, dims, fmt, ap);
  va_end(ap);
  return v ? v->ident : NULL;
}

bool im_fmt(Importer *im, const Onnx__NodeProto *n, char *b, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(b, cap, fmt, ap);
  va_end(ap);
  if (k >= 0 && (size_t)k < cap) return true;
  im_fail(im, "node '%s' (%s): an expression longer than the importer's %zu bytes", im_node(n), n->op_type, cap - 1);
  return false;
}
