// tensorfile.h: the one reader and writer of smelt tensor files
// (docs/tensors.md): checkpoints (smelt_save, smelt_load), initial weights
// (`smelt init`), the inputs and outputs of `smelt run`, and the PyTorch
// goldens of the tests.
//
//   "SMTF" | u32 version (1) | u32 count
//   count times: u32 name length | name bytes | u32 dtype | u32 ndim |
//                i64 dims[ndim] | numel elements of dtype
//
// Little-endian throughout. Every writer goes through atomic_open and
// atomic_commit, so a reader sees the old file or the new one, never half.
#ifndef SMELT_TENSORFILE_H
#define SMELT_TENSORFILE_H

#include <stdbool.h>
#include <stdio.h>

#include "dtype.h"

#define TENSORFILE_MAX_NAME 4096
#define TENSORFILE_MAX_COUNT 1000000

// A file written so that readers see the old one or the new one: atomic_open
// creates a temporary file next to path (*tmp, owned); write to it, then
// atomic_commit flushes it to disk and renames it over path (or removes it
// when ok is false or anything fails). Both: NULL or -1 with a message in err.
FILE *atomic_open(const char *path, char **tmp, char *err, size_t errlen);
int atomic_commit(FILE *f, char *tmp, const char *path, bool ok, char *err, size_t errlen);

// ---- records, for writers and readers that stream element bytes themselves

// The file header announcing count tensors; false when the write fails.
bool tensorfile_put_header(FILE *f, uint32_t count);
// A tensor's name, dtype and shape; its dtype_size(dtype) * numel bytes follow.
bool tensorfile_put_record(FILE *f, const char *name, uint32_t dtype, const Shape *shape);
// The header: false when f is not a version-1 tensor file.
bool tensorfile_get_header(FILE *f, uint32_t *count);
// A record's head into name (TENSORFILE_MAX_NAME + 1 bytes), dtype and shape;
// false when it is truncated or out of bounds (a dtype that is not one, more
// than MAX_DIMS dimensions, a negative or absurd size). Its bytes follow.
bool tensorfile_get_record(FILE *f, char *name, uint32_t *dtype, Shape *shape);

// ---- whole files of doubles

typedef struct {
  const char *name;      // owned by the reader; borrowed by the writer
  Shape shape;
  double *data;          // numel values
} TensorEntry;

// Writes n tensors as f32. 0, or -1 with a message.
int tensorfile_write(const char *path, const TensorEntry *t, int n, char *err, size_t errlen);
// Reads and validates a whole file, any dtype converted to doubles; free
// with tensorfile_free. 0, or -1 with a message.
int tensorfile_read(const char *path, TensorEntry **out, int *n, char *err, size_t errlen);
void tensorfile_free(TensorEntry *t, int n);
const TensorEntry *tensorfile_find(const TensorEntry *t, int n, const char *name);

#endif
