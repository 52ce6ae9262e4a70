// dtype.h: element types and shapes, shared by every layer.
//
// The one table of element types: their codes (written into ingots and
// tensor files, so frozen), sizes, names, the rounding a store applies, and
// conversion of stored elements to and from doubles. The compiler's DType is
// this enum; the runtime and the tools use the same codes.
#ifndef SMELT_DTYPE_H
#define SMELT_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { DT_F32, DT_F16, DT_BF16, DT_I32, DT_I64, DT_U8, DT_BOOL, DT_COUNT } DType;

// The codes are part of the ingot and tensor-file formats (docs/ingot.md).
_Static_assert(DT_F32 == 0 && DT_F16 == 1 && DT_BF16 == 2 && DT_I32 == 3 && DT_I64 == 4 && DT_U8 == 5 &&
                   DT_BOOL == 6 && DT_COUNT == 7,
               "dtype codes are frozen by the file formats");

#define MAX_DIMS 8

typedef struct {
  int ndim;
  int64_t d[MAX_DIMS];
} Shape;

// Bytes per element; 0 for a code that is not a dtype.
int dtype_size(uint32_t t);
// "f32", "bf16", ...; "?" for a code that is not a dtype.
const char *dtype_name(uint32_t t);
bool dtype_is_float(DType t);
bool dtype_is_int(DType t);
// v rounded to what dtype t holds, as a store rounds it: f32 and f16 to
// nearest even (f16 once from the double), bf16 to nearest even at bit 16,
// integers truncated toward zero and wrapped modulo 2^bits (NaN and
// infinities give 0), bool to 0 or 1.
double dtype_round(DType t, double v);
// n stored elements of dtype t to doubles, and back (rounded as dtype_round).
void dtype_to_doubles(uint32_t t, const void *src, double *dst, int64_t n);
void dtype_from_doubles(uint32_t t, const double *src, void *dst, int64_t n);
// n elements of dtype from at src as dtype to at dst, where every value is one
// that to holds exactly (NaN and infinities only into floats; an f32 2.5 or
// 3e9 is no i32). -1 when all convert; else the index of the first that does
// not (dst is then partly written), with its value in *bad. The one rule for
// every tensor read into another dtype: checkpoints, weights, run's inputs.
int64_t dtype_convert_exact(uint32_t from, const void *src, uint32_t to, void *dst, int64_t n, double *bad);

int64_t shape_numel(const Shape *s);
bool shape_eq(const Shape *a, const Shape *b);
Shape shape_of(int ndim, const int64_t *d);
// "f32[2, 3]" into buf; returns buf.
const char *type_str(char *buf, size_t n, DType t, const Shape *s);

#endif
