// npy.h: NumPy's .npy and .npz files, read and written for tensorfile.c.
//
// A .npy file is one array:
//
//   "\x93NUMPY" | u8 major (1, 2 or 3) | u8 minor | header length (u16 for
//   version 1, u32 after) | the header, a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with
//   spaces and a newline | the elements
//
// An .npz file is a zip of .npy files, one per array, named NAME.npy
// (np.savez). smelt reads the dtypes it has in little-endian byte order
// (<f4, <f2, <i4, <i8, |u1, |b1) in C order; a Fortran-order, big-endian,
// structured or other array is refused naming it. An .npz's members must be
// stored (np.savez), not deflated (np.savez_compressed): the runtime links
// no zlib. Its members' CRC-32s are checked as their values are read.
//
// Only tensorfile.c uses this, as it uses safetensors.h.
#ifndef SMELT_NPY_H
#define SMELT_NPY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "safetensors.h"

// 1 when the first 8 bytes are a .npy file's, 2 when they are a zip's, else 0.
int npy_sniff(const unsigned char head[8]);

// The arrays of a .npy (kind 1: one, named by the file's name less its
// folder and ".npy") or an .npz (kind 2: one per member, named by the
// member less ".npy"), as records whose begin and end are file offsets; the
// CRC-32 of an .npz member's bytes before its values is in crc_start.
// 0, or -1 with a message naming the file and what is wrong.
int npy_read_table(FILE *f, int kind, const char *path, uint64_t size, SafeTensor **out, int *n, char *err,
                   size_t errlen);

// The .npy header of one array; false when the write fails. *len: its bytes.
bool npy_put_header(FILE *f, uint32_t dtype, const Shape *shape, uint32_t *crc, uint64_t *len);
// The bytes npy_put_header writes for dtype and shape.
uint64_t npy_header_size(uint32_t dtype, const Shape *shape);
// Whether NumPy has dtype (bf16 it has not); false with a message naming path.
bool npy_dtype_ok(uint32_t dtype, const char *path, const char *name, char *err, size_t errlen);

// .npz writing: a member's local header (its CRC-32 written later by
// npz_put_crc at *crc_at), and at the end the central directory of n
// members whose local headers are at offsets[i]. false when a write fails.
bool npz_put_local(FILE *f, const char *name, uint64_t size, uint64_t *crc_at);
bool npz_put_crc(FILE *f, uint64_t crc_at, uint32_t crc);
bool npz_put_directory(FILE *f, int n, const char *const *names, const uint64_t *offsets, const uint64_t *sizes,
                       const uint32_t *crcs);

#endif
