// tensorfile.c: tensor files, read and written (tensorfile.h, docs/tensors.md).
//
// The runtime never exits: every allocation and every read is checked and
// reported through the caller's message buffer.
#include "tensorfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TENSORFILE_MAGIC 0x46544d53u   // "SMTF"

FILE *atomic_open(const char *path, char **tmp, char *err, size_t errlen) {
  size_t n = strlen(path) + 24;
  *tmp = malloc(n);
  if (!*tmp) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  snprintf(*tmp, n, "%s.tmp%ld", path, (long)getpid());
  FILE *f = fopen(*tmp, "wb");
  if (!f) {
    snprintf(err, errlen, "cannot write '%s': %s", *tmp, strerror(errno));
    free(*tmp);
    *tmp = NULL;
  }
  return f;
}

int atomic_commit(FILE *f, char *tmp, const char *path, bool ok, char *err, size_t errlen) {
  ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
  ok = fclose(f) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno ? errno : EIO));
    unlink(tmp);
    free(tmp);
    return -1;
  }
  free(tmp);
  return 0;
}

// ---- records

static bool read_exact(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n; }

bool tensorfile_put_header(FILE *f, uint32_t count) {
  uint32_t head[3] = {TENSORFILE_MAGIC, 1, count};
  return fwrite(head, sizeof head, 1, f) == 1;
}

bool tensorfile_put_record(FILE *f, const char *name, uint32_t dtype, const Shape *shape) {
  uint32_t len = (uint32_t)strlen(name), ndim = (uint32_t)shape->ndim;
  return fwrite(&len, 4, 1, f) == 1 && fwrite(name, 1, len, f) == len && fwrite(&dtype, 4, 1, f) == 1 &&
         fwrite(&ndim, 4, 1, f) == 1 && fwrite(shape->d, 8, ndim, f) == ndim;
}

bool tensorfile_get_header(FILE *f, uint32_t *count) {
  uint32_t head[3];
  if (!read_exact(f, head, sizeof head) || head[0] != TENSORFILE_MAGIC || head[1] != 1 ||
      head[2] > TENSORFILE_MAX_COUNT)
    return false;
  *count = head[2];
  return true;
}

bool tensorfile_get_record(FILE *f, char *name, uint32_t *dtype, Shape *shape) {
  uint32_t len, ndim;
  if (!read_exact(f, &len, 4) || len > TENSORFILE_MAX_NAME || !read_exact(f, name, len)) return false;
  name[len] = '\0';
  if (!read_exact(f, dtype, 4) || !dtype_size(*dtype) || !read_exact(f, &ndim, 4) || ndim > MAX_DIMS) return false;
  shape->ndim = (int)ndim;
  if (!read_exact(f, shape->d, 8 * (size_t)ndim)) return false;
  int64_t cnt = 1;
  for (uint32_t k = 0; k < ndim; k++) {
    if (shape->d[k] < 0 || (cnt && shape->d[k] > (int64_t)1 << 32)) return false;
    cnt *= shape->d[k];
  }
  return cnt <= (int64_t)1 << 32;
}

// ---- whole files of doubles

int tensorfile_write(const char *path, const TensorEntry *t, int n, char *err, size_t errlen) {
  char *tmp;
  FILE *f = atomic_open(path, &tmp, err, errlen);
  if (!f) return -1;
  bool ok = tensorfile_put_header(f, (uint32_t)n);
  for (int i = 0; i < n && ok; i++) {
    ok = tensorfile_put_record(f, t[i].name, DT_F32, &t[i].shape);
    int64_t cnt = shape_numel(&t[i].shape);
    for (int64_t j = 0; j < cnt && ok; j++) {
      float v = (float)t[i].data[j];
      ok = fwrite(&v, 4, 1, f) == 1;
    }
  }
  return atomic_commit(f, tmp, path, ok, err, errlen);
}

int tensorfile_read(const char *path, TensorEntry **out, int *n, char *err, size_t errlen) {
  *out = NULL;
  *n = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
    return -1;
  }
  uint32_t total;
  if (!tensorfile_get_header(f, &total)) {
    snprintf(err, errlen, "'%s' is not a smelt tensor file (version 1)", path);
    fclose(f);
    return -1;
  }
  TensorEntry *t = calloc(total ? total : 1, sizeof *t);
  int count = 0;
  char *name = malloc(TENSORFILE_MAX_NAME + 1);
  void *raw = NULL;
  if (!t || !name) goto oom;
  for (uint32_t i = 0; i < total; i++) {
    uint32_t dtype;
    Shape shape;
    if (!tensorfile_get_record(f, name, &dtype, &shape)) goto bad;
    int64_t cnt = shape_numel(&shape);
    size_t bytes = (size_t)cnt * (size_t)dtype_size(dtype);
    t[count] = (TensorEntry){strdup(name), shape, malloc(sizeof(double) * (size_t)(cnt ? cnt : 1))};
    raw = malloc(bytes ? bytes : 1);
    count++;
    if (!t[count - 1].name || !t[count - 1].data || !raw) goto oom;
    if (!read_exact(f, raw, bytes)) goto bad;
    dtype_to_doubles(dtype, raw, t[count - 1].data, cnt);
    free(raw);
    raw = NULL;
  }
  fclose(f);
  free(name);
  *out = t;
  *n = count;
  return 0;
oom:
  snprintf(err, errlen, "out of memory reading '%s'", path);
  goto fail;
bad:
  snprintf(err, errlen, "'%s' is truncated or corrupt", path);
fail:
  fclose(f);
  free(raw);
  free(name);
  tensorfile_free(t, count);
  return -1;
}

void tensorfile_free(TensorEntry *t, int n) {
  for (int i = 0; t && i < n; i++) {
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
