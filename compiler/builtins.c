// builtins.c: names a model file can use without an import.
//
// Primitive functions and tensor methods map to the primitive ops of the op
// graph (the unary ones are ops.def's builtin column); layers (softmax,
// layer norm, attention, ...) are library code in stdlib/. Argument counts
// here are positional counts, not counting the receiver of a method; keyword
// names are listed separately.
#include "compiler.h"

#include <string.h>

#define RED "axis keep"

static const Builtin builtins[] = {
    // elementwise: the unary ops the language names, f(x), from ops.def
#define OP(...)
#define UNARY(name, nsrc, cost, low, fold, ints, verb, builtin) {builtin, B_FUNC, 1, 1, "", builtin "(x)"},
#include "ops.def"
    {"softplus", B_FUNC, 1, 1, "beta threshold", "softplus(x, beta = 1, threshold = 20)"},
    {"swish", B_FUNC, 1, 1, "", "swish(x)"},     // silu
    {"detach", B_FUNC, 1, 1, "", "detach(x)"},   // stop_gradient
    {"maximum", B_FUNC, 2, 2, "", "maximum(a, b)"},
    {"minimum", B_FUNC, 2, 2, "", "minimum(a, b)"},
    {"pow", B_FUNC, 2, 2, "", "pow(x, y)"},
    {"where", B_FUNC, 3, 3, "", "where(cond, a, b)"},
    {"cast", B_FUNC, 2, 2, "", "cast(x, dtype)"},
    // the bits of integers
    {"bit_and", B_FUNC, 2, 2, "", "bit_and(a, b)"},
    {"bit_or", B_FUNC, 2, 2, "", "bit_or(a, b)"},
    {"bit_xor", B_FUNC, 2, 2, "", "bit_xor(a, b)"},
    {"bit_not", B_FUNC, 1, 1, "", "bit_not(x)"},
    {"shift_left", B_FUNC, 2, 2, "", "shift_left(a, b)"},
    {"shift_right", B_FUNC, 2, 2, "", "shift_right(a, b)"},
    {"bitcast", B_FUNC, 2, 2, "", "bitcast(x, dtype)"},
    // reductions
    {"sum", B_FUNC, 1, 2, RED, "sum(x, axis = all, keep = false)"},
    {"mean", B_FUNC, 1, 2, RED, "mean(x, axis = all, keep = false)"},
    {"max", B_FUNC, 1, 2, RED, "max(x, axis = all, keep = false)"},
    {"min", B_FUNC, 1, 2, RED, "min(x, axis = all, keep = false)"},
    {"argmax", B_FUNC, 1, 2, RED, "argmax(x, axis = -1, keep = false)"},
    // contraction, convolution, pooling
    {"matmul", B_FUNC, 2, 2, "ta tb", "matmul(a, b, ta = false, tb = false)"},
    {"conv", B_FUNC, 2, 2, "stride padding dilation groups",
     "conv(x, w, stride = 1, padding = 0, dilation = 1, groups = 1)"},
    {"conv_transpose", B_FUNC, 2, 2, "stride padding output_padding dilation groups",
     "conv_transpose(x, w, stride = 1, padding = 0, output_padding = 0, dilation = 1, groups = 1)"},
    {"upsample", B_FUNC, 2, 2, "mode", "upsample(x, scale, mode = \"nearest\")"},
    {"pool_max", B_FUNC, 2, 2, "stride padding", "pool_max(x, kernel, stride = kernel, padding = 0)"},
    {"pool_avg", B_FUNC, 2, 2, "stride padding", "pool_avg(x, kernel, stride = kernel, padding = 0)"},
    {"attention", B_FUNC, 3, 3, "causal mask scale dropout",
     "attention(q, k, v, causal = false, mask = none, scale = 1 / sqrt(D), dropout = 0)"},
    // movement (views)
    {"reshape", B_FUNC, 2, -1, "", "reshape(x, dims...)"},
    {"permute", B_FUNC, 2, -1, "", "permute(x, axes...)"},
    {"transpose", B_FUNC, 3, 3, "", "transpose(x, axis_a, axis_b)"},
    {"broadcast", B_FUNC, 2, -1, "", "broadcast(x, dims...)"},
    {"pad", B_FUNC, 2, -1, "value", "pad(x, (before, after)..., value = 0)"},
    {"concat", B_FUNC, 1, -1, "axis", "concat(xs..., axis = 0)"},
    // lists (compile-time values)
    {"stack", B_FUNC, 1, -1, "axis", "stack(xs..., axis = 0)"},
    {"len", B_FUNC, 1, 1, "", "len(xs)"},
    // gather, scatter, constants, random
    {"gather", B_FUNC, 2, 2, "", "gather(table, indices)"},
    {"scatter_add", B_FUNC, 3, 3, "", "scatter_add(indices, values, rows)"},
    {"one_hot", B_FUNC, 2, 2, "dtype ignore", "one_hot(indices, n, dtype = f32, ignore = \"none\")"},
    {"fill", B_FUNC, 2, -1, "dtype", "fill(value, dims..., dtype = f32)"},
    {"iota", B_FUNC, 1, 1, "dtype", "iota(n, dtype = i32)"},
    {"uniform_like", B_FUNC, 1, 1, "", "uniform_like(x)"},
    // steering fusion (docs/fusion.md)
    {"boundary", B_FUNC, 1, 1, "", "boundary(x)"},
    {"fused", B_FUNC, 1, 1, "", "fused(x)"},
    {"remat", B_FUNC, 1, 1, "", "remat(x)"},
    // exempting one op from the precision policy (docs/precision.md)
    {"fp32", B_FUNC, 1, 1, "", "fp32(x)"},

    // methods: x.name(...)
    {"reshape", B_METHOD, 1, -1, "", "x.reshape(dims...)"},
    {"permute", B_METHOD, 1, -1, "", "x.permute(axes...)"},
    {"transpose", B_METHOD, 2, 2, "", "x.transpose(axis_a, axis_b)"},
    {"broadcast", B_METHOD, 1, -1, "", "x.broadcast(dims...)"},
    {"sum", B_METHOD, 0, 1, RED, "x.sum(axis = all, keep = false)"},
    {"mean", B_METHOD, 0, 1, RED, "x.mean(axis = all, keep = false)"},
    {"max", B_METHOD, 0, 1, RED, "x.max(axis = all, keep = false)"},
    {"min", B_METHOD, 0, 1, RED, "x.min(axis = all, keep = false)"},
    {"argmax", B_METHOD, 0, 1, RED, "x.argmax(axis = -1, keep = false)"},
    {"cast", B_METHOD, 1, 1, "", "x.cast(dtype)"},
    // the same unary ops as methods, x.f()
#define OP(...)
#define UNARY(name, nsrc, cost, low, fold, ints, verb, builtin) {builtin, B_METHOD, 0, 0, "", "x." builtin "()"},
#include "ops.def"
    {"softplus", B_METHOD, 0, 0, "beta threshold", "x.softplus(beta = 1, threshold = 20)"},
    {"swish", B_METHOD, 0, 0, "", "x.swish()"},
    {"detach", B_METHOD, 0, 0, "", "x.detach()"},

    // properties: x.name
    {"T", B_PROPERTY, 0, 0, "", "x.T"},
    {"shape", B_PROPERTY, 0, 0, "", "x.shape"},
    {"ndim", B_PROPERTY, 0, 0, "", "x.ndim"},
    {"dtype", B_PROPERTY, 0, 0, "", "x.dtype"},

    // initializers: param NAME: TYPE = init
    {"zeros", B_INIT, 0, 0, "", "zeros"},
    {"ones", B_INIT, 0, 0, "", "ones"},
    {"full", B_INIT, 1, 1, "", "full(value)"},
    {"normal", B_INIT, 0, 2, "mean std", "normal(mean = 0, std = 1)"},
    {"uniform", B_INIT, 0, 2, "lo hi", "uniform(lo = 0, hi = 1)"},
    {"xavier_uniform", B_INIT, 0, 1, "gain", "xavier_uniform(gain = 1)"},
    {"xavier_normal", B_INIT, 0, 1, "gain", "xavier_normal(gain = 1)"},
    {"kaiming_uniform", B_INIT, 0, 1, "gain", "kaiming_uniform(gain = sqrt(2))"},
    {"kaiming_normal", B_INIT, 0, 1, "gain", "kaiming_normal(gain = sqrt(2))"},

    // dtypes and compile-time types
    {"f32", B_DTYPE, 0, 0, "", "f32"},
    {"f16", B_DTYPE, 0, 0, "", "f16"},
    {"bf16", B_DTYPE, 0, 0, "", "bf16"},
    {"i32", B_DTYPE, 0, 0, "", "i32"},
    {"i64", B_DTYPE, 0, 0, "", "i64"},
    {"u8", B_DTYPE, 0, 0, "", "u8"},
    {"bool", B_DTYPE, 0, 0, "", "bool"},
    {"int", B_TYPE, 0, 0, "", "int"},
    {"float", B_TYPE, 0, 0, "", "float"},
    {"bool", B_TYPE, 0, 0, "", "bool"},
    {"str", B_TYPE, 0, 0, "", "str"},
    {"list", B_TYPE, 0, 0, "", "list"},
    {"tensor", B_TYPE, 0, 0, "", "tensor"},

    // constants
    {"training", B_CONST, 0, 0, "", "training"},
    {"pi", B_CONST, 0, 0, "", "pi"},
    {"none", B_CONST, 0, 0, "", "none"},
};

// Rows with an empty name are unary ops the language does not name.
const Builtin *builtin_find(const char *name, BuiltinKind kind) {
  for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++)
    if (builtins[i].kind == kind && *builtins[i].name && strcmp(builtins[i].name, name) == 0) return &builtins[i];
  return NULL;
}

void builtin_each(BuiltinKind kind, void (*fn)(void *ctx, const char *name), void *ctx) {
  for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++)
    if (builtins[i].kind == kind && *builtins[i].name) fn(ctx, builtins[i].name);
}

bool builtin_has_kwarg(const Builtin *b, const char *kw) {
  size_t n = strlen(kw);
  for (const char *p = b->kwargs; *p;) {
    const char *end = strchr(p, ' ');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && strncmp(p, kw, n) == 0) return true;
    if (!end) break;
    p = end + 1;
  }
  return false;
}
