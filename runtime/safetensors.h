// safetensors.h: the header of a safetensors file, parsed and written.
//
// The format Hugging Face and PyTorch read and write:
//
//   u64 N (little-endian) | N bytes of JSON | the byte buffer
//
// The JSON is one object: each key a tensor's name, its value
// {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]} with the
// offsets into the byte buffer; the key "__metadata__" maps strings to
// strings. Elements are little-endian and row-major. The tensors must cover
// the buffer exactly, without holes or overlaps. The header may end in
// spaces (writers pad it so the buffer starts at a multiple of 8).
//
// Only tensorfile.c uses this: every reader and writer of tensors goes
// through its tensor files, which are either this or smelt's own format.
#ifndef SMELT_SAFETENSORS_H
#define SMELT_SAFETENSORS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dtype.h"

#define SAFETENSORS_MAX_HEADER (100u << 20)   // as the reference reader: a larger header is refused

typedef struct {
  char *name;            // owned
  uint32_t dtype;        // DType
  Shape shape;
  uint64_t begin, end;   // in the byte buffer
  bool has_crc;          // the header's __metadata__ gives its CRC-32 ("smelt.crc32.NAME")
  uint32_t crc;          // the CRC-32 of its bytes, when has_crc
  uint32_t crc_start;    // the CRC-32 of bytes before them that crc also covers (an .npz member's .npy header); 0
} SafeTensor;

// The __metadata__ key of a tensor's CRC-32, "smelt.crc32." then its name;
// the value is 8 lowercase hex digits. smelt's writer gives every tensor one
// and its reader checks each one present; files from other tools have none.
#define SAFETENSORS_CRC_KEY "smelt.crc32."

// Whether the first 9 bytes of a file look like a safetensors header (a
// size, then '{').
int safetensors_sniff(const unsigned char head[9]);

// Reads and validates the header of f (positioned at its start): every
// record, in the order of their bytes, and where the byte buffer starts.
// 0, or -1 with a message naming what is wrong (path names the file).
int safetensors_read_header(FILE *f, const char *path, SafeTensor **out, int *n, uint64_t *data_start, char *err,
                            size_t errlen);
void safetensors_free(SafeTensor *t, int n);

// Writes the header for n tensors whose bytes follow in this order, padded
// so the buffer starts at a multiple of 8, with nmeta key/value pairs
// (meta[2i], meta[2i + 1]) and then a placeholder CRC-32 for each tensor in
// __metadata__; crc_at[i] is where in the file tensor i's 8 hex digits are,
// for safetensors_put_crc once its bytes are written. 0, or -1 (a failed
// write).
int safetensors_write_header(FILE *f, const char *const *names, const uint32_t *dtypes, const Shape *shapes, int n,
                             const char *const *meta, int nmeta, uint64_t *crc_at);
// Writes crc as 8 hex digits at crc_at in f; the position in f is kept. false
// on a failed write.
bool safetensors_put_crc(FILE *f, uint64_t crc_at, uint32_t crc);

#endif
