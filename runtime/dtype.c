// dtype.c: the element-type table, rounding and conversions (dtype.h).
#include "dtype.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const int dtype_sizes[DT_COUNT] = {[DT_F32] = 4, [DT_F16] = 2, [DT_BF16] = 2, [DT_I32] = 4,
                                          [DT_I64] = 8, [DT_U8] = 1, [DT_BOOL] = 1};
static const char *const dtype_names[DT_COUNT] = {"f32", "f16", "bf16", "i32", "i64", "u8", "bool"};

int dtype_size(uint32_t t) { return t < DT_COUNT ? dtype_sizes[t] : 0; }
const char *dtype_name(uint32_t t) { return t < DT_COUNT ? dtype_names[t] : "?"; }
bool dtype_is_float(DType t) { return t == DT_F32 || t == DT_F16 || t == DT_BF16; }
bool dtype_is_int(DType t) { return !dtype_is_float(t); }

// ---- rounding

// Through a volatile float: GCC 12.2's SLP vectorizer at -O2 compiles
// (double)(float)x on a pair of doubles to a plain copy, which would skip the
// rounding where this gets inlined into a loop.
static double round_f32(double v) {
  volatile float f = (float)v;
  return f;
}

// Nearest even at a quantum of 2^exp, for |a| finite: the scalings are exact.
static double round_quantum(double a, int exp) {
  return ldexp(nearbyint(ldexp(a, -exp)), exp);
}

// IEEE binary16, rounded once from the double (no double rounding through
// f32): 11 significant bits, exponents down to -14, subnormals at 2^-24, and
// everything from 65520 (half-way to 2^16) up overflowing to infinity.
static double round_f16(double v) {
  double a = fabs(v);
  if (isnan(v) || isinf(v)) return v;
  if (a >= 65520.0) return copysign(INFINITY, v);
  int e;
  frexp(a, &e);                       // a = m * 2^e, m in [0.5, 1)
  int exp = a < 0x1p-14 ? -24 : e - 11;
  return copysign(round_quantum(a, exp), v);
}

// bfloat16 is the top half of an f32: round the f32's bits to nearest even
// at bit 16. Overflow carries into the exponent and gives infinity.
static double round_bf16(double v) {
  float f = (float)v;
  if (isnan(f)) return v;
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  u += 0x7FFFu + ((u >> 16) & 1);
  u &= 0xFFFF0000u;
  memcpy(&f, &u, sizeof f);
  return f;
}

// Truncates toward zero and wraps modulo 2^bits into the signed (or, for
// unsigned, the non-negative) range. Every step is exact in doubles; NaN and
// infinities have no integer value and give 0.
static double round_int(double v, int bits, bool is_signed) {
  if (!isfinite(v)) return 0;
  double t = trunc(v);
  double m = ldexp(1.0, bits), half = ldexp(1.0, bits - 1);
  double lo = is_signed ? -half : 0, hi = is_signed ? half : m;
  if (t >= lo && t < hi) return t + 0.0;    // + 0.0: -0 becomes 0
  double r = fmod(t, m);                    // (-m, m), exact
  if (r < lo) r += m;
  if (r >= hi) r -= m;
  return r + 0.0;
}

double dtype_round(DType t, double v) {
  switch (t) {
  case DT_F32: return round_f32(v);
  case DT_F16: return round_f16(v);
  case DT_BF16: return round_bf16(v);
  case DT_I32: return round_int(v, 32, true);
  case DT_I64: return round_int(v, 64, true);
  case DT_U8: return round_int(v, 8, false);
  case DT_BOOL: return v != 0 ? 1 : 0;
  case DT_COUNT: break;
  }
  return v;
}

// ---- stored elements

void dtype_to_doubles(uint32_t t, const void *src, double *dst, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    switch ((DType)t) {
    case DT_F32: dst[i] = ((const float *)src)[i]; break;
    case DT_I32: dst[i] = ((const int32_t *)src)[i]; break;
    case DT_I64: dst[i] = (double)((const int64_t *)src)[i]; break;
    case DT_U8: case DT_BOOL: dst[i] = ((const uint8_t *)src)[i]; break;
    case DT_F16: dst[i] = (double)((const _Float16 *)src)[i]; break;
    case DT_BF16: {
      uint32_t bits = (uint32_t)((const uint16_t *)src)[i] << 16;
      float f;
      memcpy(&f, &bits, 4);
      dst[i] = f;
      break;
    }
    case DT_COUNT: dst[i] = 0; break;
    }
  }
}

void dtype_from_doubles(uint32_t t, const double *src, void *dst, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    double v = dtype_round((DType)t, src[i]);
    switch ((DType)t) {
    case DT_F32: ((float *)dst)[i] = (float)v; break;
    case DT_I32: ((int32_t *)dst)[i] = (int32_t)v; break;
    case DT_I64: ((int64_t *)dst)[i] = (int64_t)v; break;
    case DT_U8: case DT_BOOL: ((uint8_t *)dst)[i] = (uint8_t)v; break;
    case DT_F16: ((_Float16 *)dst)[i] = (_Float16)v; break;
    case DT_BF16: {
      float f = (float)v;
      uint32_t bits;
      memcpy(&bits, &f, 4);
      ((uint16_t *)dst)[i] = (uint16_t)(bits >> 16);
      break;
    }
    case DT_COUNT: break;
    }
  }
}

int64_t dtype_convert_exact(uint32_t from, const void *src, uint32_t to, void *dst, int64_t n, double *bad) {
  int fs = dtype_size(from), ts = dtype_size(to);
  if (from == to) {
    if (n) memcpy(dst, src, (size_t)n * (size_t)fs);
    return -1;
  }
  enum { CHUNK = 1024 };
  double v[CHUNK], back[CHUNK];
  for (int64_t i = 0; i < n; i += CHUNK) {
    int64_t m = n - i < CHUNK ? n - i : CHUNK;
    const char *s = (const char *)src + i * fs;
    char *d = (char *)dst + i * ts;
    dtype_to_doubles(from, s, v, m);
    dtype_from_doubles(to, v, d, m);
    dtype_to_doubles(to, d, back, m);
    for (int64_t j = 0; j < m; j++) {
      bool same = v[j] == back[j] || (isnan(v[j]) && isnan(back[j]));
      if (same && from == DT_I64) {   // beyond 2^53 the double itself is rounded
        int64_t x;
        memcpy(&x, s + 8 * j, 8);
        same = v[j] < 9223372036854775808.0 && (int64_t)v[j] == x;
      }
      if (!same) {
        *bad = v[j];
        return i + j;
      }
    }
  }
  return -1;
}

// ---- shapes

int64_t shape_numel(const Shape *s) {
  int64_t n = 1;
  for (int i = 0; i < s->ndim; i++) n *= s->d[i];
  return n;
}

bool shape_eq(const Shape *a, const Shape *b) {
  if (a->ndim != b->ndim) return false;
  for (int i = 0; i < a->ndim; i++)
    if (a->d[i] != b->d[i]) return false;
  return true;
}

Shape shape_of(int ndim, const int64_t *d) {
  Shape s = {.ndim = ndim};
  for (int i = 0; i < ndim; i++) s.d[i] = d[i];
  return s;
}

const char *type_str(char *buf, size_t n, DType t, const Shape *s) {
  size_t k = (size_t)snprintf(buf, n, "%s[", dtype_name(t));
  for (int i = 0; i < s->ndim && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)s->d[i]);
  if (k < n) snprintf(buf + k, n - k, "]");
  return buf;
}
