// data.h: the runtime's data loaders (internal to libsmeltrt and the smelt CLI).
//
// A Dataset is a table of samples held in memory as f32 (IDX files, MNIST and
// Fashion-MNIST, gzipped or not; CSV files of numbers), or a token stream
// mapped from its files (raw token files of u16 or u32, llm.c's .bin shards,
// and text, bytes as tokens). A Batcher draws batches from one or more
// datasets of the same length, in a seeded shuffled order, and prepares the
// next batch on a background thread while the caller uses the current one.
// Every function reports failure by return value and a message; none exits.
#ifndef SMELT_DATA_H
#define SMELT_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct DataPart DataPart;   // one file of a token stream (data.c)

typedef struct {
  int64_t n;             // number of samples
  int ndim;              // dimensions of one sample (0 for a scalar label)
  int64_t dims[8];
  int64_t sample_size;   // values per sample: product of dims
  float *values;         // n * sample_size values, row-major, already scaled (owned); NULL
                         // for a token stream
  // A token stream (tokens, llm.c shards, text): n tokens of token_bytes (1,
  // 2 or 4) little-endian bytes each, in nparts files mapped read-only, so
  // that it costs page cache rather than 4 bytes of heap a token;
  // data_gather casts them to f32 as batches are drawn.
  int token_bytes;
  int nparts;
  DataPart *parts;
  uint32_t max_token;    // a token stream's largest token
} Dataset;

// An IDX file (big-endian header: 0, 0, type code, ndim; dims; data), raw or
// gzip-compressed (detected by its magic bytes; zlib is opened with dlopen).
// Element types u8, i8, i16, i32, f32, f64. The first dimension is the sample
// count; values are multiplied by scale.
int data_load_idx(const char *path, double scale, Dataset *out, char *err, size_t errlen);

// A CSV file of numbers: one sample per line, the same number of fields on
// every line; every field a finite decimal number (no nan, inf or hex), within
// f32's range after scaling. A first line none of whose fields is a number is
// a header and is skipped; a UTF-8 byte order mark is skipped. Values are
// multiplied by scale. Every loader reads regular files only (no FIFOs or
// devices) and refuses a NaN or infinite value.
int data_load_csv(const char *path, double scale, Dataset *out, char *err, size_t errlen);
// The columns of a CSV file that columns names, in its order: comma-separated
// items, each a column's name in the header line, its index (from 0) or a
// range of indices lo..hi (hi excluded), so that several inputs can be read
// from one file. A name where the file has no header, an unknown name or an
// index past the last field is refused naming the file. NULL or "" is every
// column (data_load_csv).
int data_load_csv_columns(const char *path, double scale, const char *columns, Dataset *out,
                          char *err, size_t errlen);

// A NumPy .npy file (or any tensor file holding one array, tensorfile.h):
// its first axis is the samples, the others one sample's shape. f32, f16,
// bf16, i32, i64, u8 and bool arrays; values are multiplied by scale; a NaN,
// an infinity or an integer beyond 2^24 (not exact in f32) is refused.
int data_load_npy(const char *path, double scale, Dataset *out, char *err, size_t errlen);

// Token sequences: a raw file of little-endian u16 or u32 tokens (bytes_per_token
// 2 or 4; a u16 file that is an llm.c shard is refused, as its header would be
// read as tokens), llm.c's shards (data_load_llmc: a header of 256 int32s,
// magic 20240520, version 1, token count, then u16 tokens; a bad magic or
// version, a truncated shard or one with data past its count is refused
// naming the file), or text (every byte a token, 0..255). For tokens and
// shards, a path that names no file and holds a wildcard (* ? [) is a glob:
// its matches, in strcmp order, are one stream. For text, path may be a
// folder: its regular files whose names have no '.' are read in name order
// and joined. from and to (0 <= from < to <= 1) keep that fraction of the
// whole stream. The result is one long sequence: n = number of tokens,
// sample_size 1, values NULL (see data_gather).
int data_load_tokens(const char *path, int bytes_per_token, double from, double to, Dataset *out,
                     char *err, size_t errlen);
int data_load_llmc(const char *path, double from, double to, Dataset *out, char *err, size_t errlen);
int data_load_text(const char *path, double from, double to, Dataset *out, char *err, size_t errlen);

// Values [first, first + count) of d, counted over its n * sample_size
// values, as f32 into dst. The range must lie within d.
void data_gather(const Dataset *d, int64_t first, int64_t count, float *dst);

void data_free(Dataset *d);

typedef struct Batcher Batcher;

// Batches of `batch` samples from nsets datasets with the same n, shuffled by
// seed (a new order each epoch, the same for the same seed and epoch), the last
// partial batch dropped. For language models, window > 0 instead draws, from
// the single token sequence sets[0], `batch` windows of window + 1 tokens at
// shuffled positions (epoch = n / (batch * window) batches); the batch then has
// two outputs: tokens [0, window) and tokens [1, window + 1).
// Returns NULL with a message when the arguments cannot work.
Batcher *batcher_new(Dataset *const *sets, int nsets, int64_t batch, int64_t window, uint64_t seed,
                     bool shuffle, char *err, size_t errlen);
// Rows [first, first + rows) of each batch that batcher_new would draw, and
// only those are read from the datasets (data parallelism: each rank's
// shard of the global batch); batcher_next's outputs hold `rows` rows.
Batcher *batcher_new_rows(Dataset *const *sets, int nsets, int64_t batch, int64_t window, uint64_t seed,
                          bool shuffle, int64_t first, int64_t rows, char *err, size_t errlen);
// Batches per epoch.
int64_t batcher_batches_per_epoch(const Batcher *b);
// Fills out[k] (rows * sample_size floats, or rows * window for windows) for
// each output k with the next batch, prepared in the background; returns the
// epoch the batch belongs to (0-based). Starting at a given (epoch, batch)
// position is possible with batcher_seek, so a resumed run sees the same data.
int64_t batcher_next(Batcher *b, float *const *out);
void batcher_seek(Batcher *b, int64_t epoch, int64_t batch_in_epoch);
void batcher_free(Batcher *b);

#endif
