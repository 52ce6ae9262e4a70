// tensorfile.c: named tensors in one file (docs/tensors.md).
//
//   "SMTF" | u32 version (1) | u32 count
//   count times: u32 name length | name bytes | u32 dtype (0: f32) | u32 ndim |
//                i64 dims[ndim] | f32 data[numel]
//
// Little-endian throughout. Used for initial weights (`smelt init`) and the
// goldens written by tests/golden/make_golden.py. Written to a temporary file,
// flushed to disk and renamed, so a reader never sees half a file.
#include "compiler.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tensorfile_write(const char *path, const TensorEntry *t, int n, char *err, size_t errlen) {
  char *tmp;
  FILE *f = atomic_open(path, &tmp, err, errlen);
  if (!f) return -1;
  uint32_t head[3] = {0x46544d53u /* "SMTF" */, 1, (uint32_t)n};
  bool ok = fwrite(head, sizeof head, 1, f) == 1;
  for (int i = 0; i < n && ok; i++) {
    uint32_t len = (uint32_t)strlen(t[i].name), dtype = 0, ndim = (uint32_t)t[i].shape.ndim;
    ok = fwrite(&len, 4, 1, f) == 1 && fwrite(t[i].name, 1, len, f) == len &&
         fwrite(&dtype, 4, 1, f) == 1 && fwrite(&ndim, 4, 1, f) == 1 &&
         fwrite(t[i].shape.d, 8, ndim, f) == ndim;
    int64_t cnt = shape_numel(&t[i].shape);
    for (int64_t j = 0; j < cnt && ok; j++) {
      float v = (float)t[i].data[j];
      ok = fwrite(&v, 4, 1, f) == 1;
    }
  }
  return atomic_commit(f, tmp, path, ok, err, errlen);
}

static bool read_exact(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n; }

int tensorfile_read(const char *path, TensorEntry **out, int *n, char *err, size_t errlen) {
  *out = NULL;
  *n = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
    return -1;
  }
  uint32_t head[3];
  if (!read_exact(f, head, sizeof head) || head[0] != 0x46544d53u || head[1] != 1 ||
      head[2] > 1000000) {
    snprintf(err, errlen, "'%s' is not a smelt tensor file (version 1)", path);
    fclose(f);
    return -1;
  }
  TensorEntry *t = xcalloc(head[2] ? head[2] : 1, sizeof *t);
  int count = 0;
  for (uint32_t i = 0; i < head[2]; i++) {
    uint32_t len, dtype, ndim;
    if (!read_exact(f, &len, 4) || len > 4096) goto bad;
    char *name = xmalloc(len + 1);
    t[count].name = name;
    count++;
    if (!read_exact(f, name, len)) goto bad;
    name[len] = '\0';
    if (!read_exact(f, &dtype, 4) || dtype != 0 || !read_exact(f, &ndim, 4) || ndim > MAX_DIMS) goto bad;
    t[count - 1].shape.ndim = (int)ndim;
    if (!read_exact(f, t[count - 1].shape.d, 8 * (size_t)ndim)) goto bad;
    int64_t cnt = 1;
    for (uint32_t k = 0; k < ndim; k++) {
      if (t[count - 1].shape.d[k] < 0 || (cnt && t[count - 1].shape.d[k] > (int64_t)1 << 32)) goto bad;
      cnt *= t[count - 1].shape.d[k];
    }
    if (cnt > (int64_t)1 << 32) goto bad;
    double *data = xmalloc(sizeof(double) * (size_t)(cnt ? cnt : 1));
    t[count - 1].data = data;
    for (int64_t j = 0; j < cnt; j++) {
      float v;
      if (!read_exact(f, &v, 4)) goto bad;
      data[j] = v;
    }
  }
  fclose(f);
  *out = t;
  *n = count;
  return 0;
bad:
  snprintf(err, errlen, "'%s' is truncated or corrupt", path);
  fclose(f);
  tensorfile_free(t, count);
  return -1;
}

void tensorfile_free(TensorEntry *t, int n) {
  for (int i = 0; i < n; i++) {
    free((char *)t[i].name);
    free(t[i].data);
  }
  free(t);
}

const TensorEntry *tensorfile_find(const TensorEntry *t, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (strcmp(t[i].name, name) == 0) return &t[i];
  return NULL;
}
