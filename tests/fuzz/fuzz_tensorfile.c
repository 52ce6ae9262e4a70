// fuzz_tensorfile.c: libFuzzer target for the tensor-file readers.
//
// Any byte string, written to a file, goes through tensorfile_read, which
// tells smelt's format from safetensors by the first bytes and validates
// either whole (a safetensors header is untrusted JSON). A crash, a hang, a
// sanitizer report or a leak is a bug; a refusal is the expected answer.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "tensorfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char path[64];
  if (!path[0]) snprintf(path, sizeof path, "/tmp/smelt-fuzz-tensors-%d", (int)getpid());
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  fwrite(data, 1, size, f);
  fclose(f);
  TensorEntry *t;
  int n;
  char err[512];
  if (tensorfile_read(path, &t, &n, err, sizeof err) == 0) tensorfile_free(t, n);
  unlink(path);
  return 0;
}
