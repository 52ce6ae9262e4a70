// fuzz_data.c: libFuzzer target for the data loaders (runtime/data.c).
//
// The first byte picks the loader, the second its parameters (scale, or the
// from/to fraction of the tokens kept); the rest is written to a file of this
// process's own and loaded through the entry the trainer calls for that
// source: IDX (raw or gzipped), CSV, u16 or u32 tokens, text, or a folder of
// text files (the rest split at every 0xFF byte into up to four files, one
// of them with a '.' in its name, which the loader skips). A crash, a hang,
// a sanitizer report or a leak is a bug; a refusal is the expected answer.
// The loaders hold at most what a file holds (a gzipped one decompressed), so
// -rss_limit_mb catches a loader that believes a header over the file.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data.h"

enum { F_IDX, F_CSV, F_U16, F_U32, F_TEXT, F_FOLDER, NFORMATS };

static char file_path[96], dir_path[96];

static void write_file(const char *path, const uint8_t *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f) return;
  if (size) fwrite(data, 1, size, f);
  fclose(f);
}

// The folder's files from the bytes: split at 0xFF, at most four pieces, the
// third named with a '.'. Returns how many files it wrote.
static int write_folder(const uint8_t *data, size_t size) {
  static const char *names[] = {"b", "a", "skip.txt", "c"};
  int n = 0;
  size_t start = 0;
  char path[160];
  for (size_t i = 0; i <= size && n < 4; i++) {
    if (i < size && (data[i] != 0xFF || n == 3)) continue;
    snprintf(path, sizeof path, "%s/%s", dir_path, names[n++]);
    write_file(path, data + start, i - start);
    start = i + 1;
  }
  return n;
}

static void clear_folder(int n) {
  static const char *names[] = {"b", "a", "skip.txt", "c"};
  char path[160];
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/%s", dir_path, names[i]);
    unlink(path);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!file_path[0]) {
    snprintf(file_path, sizeof file_path, "/tmp/smelt-fuzz-data-%d", (int)getpid());
    snprintf(dir_path, sizeof dir_path, "/tmp/smelt-fuzz-data-%d.d", (int)getpid());
    mkdir(dir_path, 0700);
  }
  if (size < 2) return 0;
  int format = data[0] % NFORMATS, param = data[1];
  data += 2, size -= 2;
  // scale: 1 or 1/255 (pixels); from/to: sixteenths, sometimes out of range
  double scale = param & 1 ? 1.0 / 255 : 1.0;
  double from = (param >> 4) / 16.0, to = from + ((param & 15) + 1) / 16.0;
  if (param == 0xFF) from = 0, to = 1;
  Dataset d;
  char err[512] = "";
  int nfiles = 0;
  if (format == F_FOLDER) nfiles = write_folder(data, size);
  else write_file(file_path, data, size);
  int rc;
  switch (format) {
  case F_IDX: rc = data_load_idx(file_path, scale, &d, err, sizeof err); break;
  case F_CSV: rc = data_load_csv(file_path, scale, &d, err, sizeof err); break;
  case F_U16: rc = data_load_tokens(file_path, 2, from, to, &d, err, sizeof err); break;
  case F_U32: rc = data_load_tokens(file_path, 4, from, to, &d, err, sizeof err); break;
  case F_TEXT: rc = data_load_text(file_path, from, to, &d, err, sizeof err); break;
  default: rc = data_load_text(dir_path, from, to, &d, err, sizeof err); break;
  }
  if (rc == 0) {
    // what a loaded set promises its users: n samples of sample_size finite values
    if (d.n <= 0 || d.sample_size <= 0 || (!d.values && !d.nparts)) abort();
    volatile float sum = 0;
    for (int64_t i = 0; i < d.n * d.sample_size; i++) {
      float v;
      data_gather(&d, i, 1, &v);
      sum += v * 0;
    }
    if (sum != 0) abort();
  } else if (!err[0]) {
    abort();   // a refusal always says why
  }
  data_free(&d);
  if (format == F_FOLDER) clear_folder(nfiles);
  else unlink(file_path);
  return 0;
}
