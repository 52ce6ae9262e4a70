// tensorfile.h: the one reader and writer of tensor files (docs/tensors.md):
// checkpoints (smelt_save, smelt_load), initial weights (`smelt init`), the
// inputs and outputs of `smelt run`, and the PyTorch goldens of the tests.
// smelt's own format:
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
#define TENSORFILE_VERSION 2        // what the writer writes; the reader reads 1 and 2

// A file written so that readers see the old one or the new one: atomic_open
// creates a temporary file next to path (*tmp, owned); write to it, then
// atomic_commit flushes it to disk, renames it over path and syncs the
// folder (or removes it when ok is false or anything fails). Both: NULL or -1
// with a message in err. The temporary is PATH.tmp-PID-RANDOM, a new file
// (O_EXCL|O_NOFOLLOW, 0666 less the umask); atomic_open first removes the
// temporaries of path that killed saves left (plain files of this user whose
// process is gone).
FILE *atomic_open(const char *path, char **tmp, char *err, size_t errlen);
int atomic_commit(FILE *f, char *tmp, const char *path, bool ok, char *err, size_t errlen);

// ---- records, in smelt's own format (the reader and writer below use them)

// The file header announcing count tensors; false when the write fails.
bool tensorfile_put_header(FILE *f, uint32_t count);
// A tensor's name, dtype and shape; its dtype_size(dtype) * numel bytes follow.
bool tensorfile_put_record(FILE *f, const char *name, uint32_t dtype, const Shape *shape);
// The header: false when f is not a tensor file of version 1 or 2 (2 is the
// one written: each record's values are followed by a u32 CRC-32 of its head
// and values).
bool tensorfile_get_header(FILE *f, uint32_t *count, uint32_t *version);
// The CRC-32 of a record's head as tensorfile_put_record writes it; a
// version-2 record's CRC continues it over the values.
uint32_t tensorfile_record_crc(const char *name, uint32_t dtype, const Shape *shape);
// A record's head into name (TENSORFILE_MAX_NAME + 1 bytes), dtype and shape;
// false when it is truncated or out of bounds (a dtype that is not one, more
// than MAX_DIMS dimensions, a negative or absurd size). Its bytes follow.
bool tensorfile_get_record(FILE *f, char *name, uint32_t *dtype, Shape *shape);

// ---- tensor files of either format, record by record
//
// A tensor file is smelt's own (above), a safetensors file (the format
// Hugging Face and PyTorch use, safetensors.h) or NumPy's .npy or .npz
// (npy.h): readers tell them by their first bytes, writers by the path
// (".safetensors", ".npy", ".npz"; anything else is smelt's). A
// safetensors file holds the dtypes smelt has (F32, F16, BF16, I32, I64, U8,
// BOOL); its metadata is read past and not kept.

typedef struct TensorReader TensorReader;
// NULL with a message when the file cannot be read or is neither format (a
// safetensors header is validated whole here).
TensorReader *tensor_reader_open(const char *path, char *err, size_t errlen);
uint32_t tensor_reader_count(const TensorReader *r);
// The next record: its name (valid until the next call), dtype and shape;
// false when it is truncated or corrupt. Its bytes follow.
bool tensor_reader_next(TensorReader *r, const char **name, uint32_t *dtype, Shape *shape);
// Exactly bytes of the current record into dst, or passed over when dst is
// NULL; a record's checksum, where the file has one, is checked either way.
bool tensor_reader_bytes(TensorReader *r, void *dst, uint64_t bytes);
// Why the last call failed when it knows more than "truncated or corrupt"
// (a checksum that does not match, naming the file and the tensor), else NULL.
const char *tensor_reader_why(const TensorReader *r);
// After the last record: true when the file ends there (smelt's format; a
// safetensors file places its records by its header); false with a message
// for tensor_reader_why when bytes follow.
bool tensor_reader_end(TensorReader *r);
void tensor_reader_close(TensorReader *r);

typedef struct TensorWriter TensorWriter;
// A file of count tensors, whose names, dtypes and shapes the arrays give
// (borrowed until close), written atomically. NULL with a message.
TensorWriter *tensor_writer_open(const char *path, int count, const char *const *names, const uint32_t *dtypes,
                                 const Shape *shapes, char *err, size_t errlen);
// The same with nmeta text pairs (meta[2i] the key, meta[2i + 1] its value,
// borrowed for the call) for a safetensors file's __metadata__, before
// smelt's checksums (a checkpoint's "smelt.model" and "smelt.step"); smelt's
// own format and NumPy's have no place for them and write none.
TensorWriter *tensor_writer_open_meta(const char *path, int count, const char *const *names, const uint32_t *dtypes,
                                      const Shape *shapes, const char *const *meta, int nmeta, char *err,
                                      size_t errlen);
// The next tensor's bytes (dtype_size * numel of them), in the order declared.
bool tensor_writer_bytes(TensorWriter *w, const void *src, uint64_t bytes);
// Commits the file when ok and every tensor was written, else removes it.
// Frees w. 0, or -1 with a message.
int tensor_writer_close(TensorWriter *w, bool ok, char *err, size_t errlen);

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
