// tensorfile.c: tensor files, read and written (tensorfile.h, docs/tensors.md).
//
// The runtime never exits: every allocation and every read is checked and
// reported through the caller's message buffer.
#include "tensorfile.h"

#include "ingot.h"
#include "npy.h"
#include "safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TENSORFILE_MAGIC 0x46544d53u   // "SMTF"

// ---- saving: a temporary beside the target, renamed over it
//
// The temporary is PATH.tmp-PID-RANDOM (PID in decimal, RANDOM 12 lowercase
// hex digits from getrandom), created with O_CREAT|O_EXCL|O_NOFOLLOW, so a
// file or link planted at any name is never opened, let alone followed. A
// save killed before its rename leaves its temporary behind; the next save of
// the same PATH removes those of PATH (and the PATH.tmpPID of older
// versions) that are plain files owned by this user whose process is no
// longer running.

// The folder of path ("." for a bare name), in dir.
static void path_folder(const char *path, char *dir, size_t n) {
  const char *slash = strrchr(path, '/');
  if (!slash) snprintf(dir, n, ".");
  else if (slash == path) snprintf(dir, n, "/");
  else snprintf(dir, n, "%.*s", (int)(slash - path), path);
}

// The pid in the temporary name of base (BASE.tmp-PID-HEX12 or BASE.tmpPID),
// or 0 when name is not one.
static long stale_temp_pid(const char *name, const char *base) {
  size_t bl = strlen(base);
  if (strncmp(name, base, bl) || strncmp(name + bl, ".tmp", 4)) return 0;
  const char *p = name + bl + 4;
  bool current = *p == '-';
  p += current;
  long pid = 0;
  const char *digits = p;
  while (*p >= '0' && *p <= '9' && p - digits < 10) pid = pid * 10 + (*p++ - '0');
  if (p == digits) return 0;
  if (!current) return *p ? 0 : pid;
  if (*p++ != '-') return 0;
  for (int i = 0; i < 12; i++, p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
  return *p ? 0 : pid;
}

// Removes the temporaries of path left by saves that were killed.
static void stale_temps_remove(const char *path) {
  char dir[4096];
  path_folder(path, dir, sizeof dir);
  const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
  DIR *d = opendir(dir);
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));) {
    long pid = stale_temp_pid(e->d_name, base);
    struct stat st;
    if (pid <= 0 || pid == (long)getpid() || (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) continue;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid())
      unlinkat(dirfd(d), e->d_name, 0);
  }
  closedir(d);
}

FILE *atomic_open(const char *path, char **tmp, char *err, size_t errlen) {
  size_t n = strlen(path) + 40;
  *tmp = malloc(n);
  if (!*tmp) {
    snprintf(err, errlen, "out of memory");
    errno = ENOMEM;
    return NULL;
  }
  stale_temps_remove(path);
  int fd = -1;
  for (int attempt = 0; fd < 0 && attempt < 16; attempt++) {
    unsigned char r[6];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      uint64_t x = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)attempt << 48;
      memcpy(r, &x, sizeof r);
    }
    snprintf(*tmp, n, "%s.tmp-%ld-%02x%02x%02x%02x%02x%02x", path, (long)getpid(), r[0], r[1], r[2], r[3], r[4], r[5]);
    fd = open(*tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
  if (!f) {
    snprintf(err, errlen, "cannot write '%s': %s", *tmp, strerror(errno));
    if (fd >= 0) {
      close(fd);
      unlink(*tmp);
    }
    free(*tmp);
    *tmp = NULL;
  }
  return f;
}

// fsync of path's folder, so that the rename itself survives a crash.
// Filesystems that cannot sync a folder (EINVAL) are taken as done.
static int folder_sync(const char *path) {
  char dir[4096];
  path_folder(path, dir, sizeof dir);
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = fsync(fd) == 0 || errno == EINVAL ? 0 : -1;
  close(fd);
  return rc;
}

int atomic_commit(FILE *f, char *tmp, const char *path, bool ok, char *err, size_t errlen) {
  errno = 0;
  ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
  ok = fclose(f) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno ? errno : EIO));
    unlink(tmp);
    free(tmp);
    return -1;
  }
  free(tmp);
  if (folder_sync(path) != 0) {
    snprintf(err, errlen, "'%s' was written but its folder could not be synced: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

// ---- records

static bool read_exact(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n; }

bool tensorfile_put_header(FILE *f, uint32_t count) {
  uint32_t head[3] = {TENSORFILE_MAGIC, TENSORFILE_VERSION, count};
  return fwrite(head, sizeof head, 1, f) == 1;
}

bool tensorfile_put_record(FILE *f, const char *name, uint32_t dtype, const Shape *shape) {
  uint32_t len = (uint32_t)strlen(name), ndim = (uint32_t)shape->ndim;
  return fwrite(&len, 4, 1, f) == 1 && fwrite(name, 1, len, f) == len && fwrite(&dtype, 4, 1, f) == 1 &&
         fwrite(&ndim, 4, 1, f) == 1 && fwrite(shape->d, 8, ndim, f) == ndim;
}

uint32_t tensorfile_record_crc(const char *name, uint32_t dtype, const Shape *shape) {
  uint32_t len = (uint32_t)strlen(name), ndim = (uint32_t)shape->ndim;
  uint32_t c = smelt_crc32_update(0, &len, 4);
  c = smelt_crc32_update(c, name, len);
  c = smelt_crc32_update(c, &dtype, 4);
  c = smelt_crc32_update(c, &ndim, 4);
  return smelt_crc32_update(c, shape->d, 8 * (uint64_t)ndim);
}

bool tensorfile_get_header(FILE *f, uint32_t *count, uint32_t *version) {
  uint32_t head[3];
  if (!read_exact(f, head, sizeof head) || head[0] != TENSORFILE_MAGIC || head[1] < 1 ||
      head[1] > TENSORFILE_VERSION || head[2] > TENSORFILE_MAX_COUNT)
    return false;
  *count = head[2];
  *version = head[1];
  return true;
}

bool tensorfile_get_record(FILE *f, char *name, uint32_t *dtype, Shape *shape) {
  uint32_t len, ndim;
  if (!read_exact(f, &len, 4) || len > TENSORFILE_MAX_NAME || !read_exact(f, name, len)) return false;
  name[len] = '\0';
  if (!read_exact(f, dtype, 4) || !dtype_size(*dtype) || !read_exact(f, &ndim, 4) || ndim > MAX_DIMS) return false;
  shape->ndim = (int)ndim;
  if (!read_exact(f, shape->d, 8 * (size_t)ndim)) return false;
  // at most 2^32 elements, checked before each product so that none overflows
  int64_t cnt = 1;
  for (uint32_t k = 0; k < ndim; k++) {
    int64_t d = shape->d[k];
    if (d < 0 || (cnt && d > (int64_t)1 << 32) || (d && cnt > ((int64_t)1 << 32) / d)) return false;
    cnt *= d;
  }
  return true;
}

// ---- either format

struct TensorReader {
  FILE *f;
  const char *path;
  uint32_t count, next;
  SafeTensor *st;            // safetensors: the records, in the order of their bytes
  uint64_t data_start;
  uint64_t size;             // of the file: no record may claim more bytes than are left
  uint32_t version;          // smelt's format: 1, or 2 with a CRC-32 after each record
  uint32_t crc;              // version 2: the CRC-32 of the current record's head
  char name[TENSORFILE_MAX_NAME + 1];
  char why[TENSORFILE_MAX_NAME + 256];   // a message more precise than "truncated or corrupt", or ""
};

// Records read from a safetensors or NumPy table carry names of any length;
// a reader's names (and smelt's own format) hold at most TENSORFILE_MAX_NAME.
static bool record_names_fit(const TensorReader *r, const char *path, char *err, size_t errlen) {
  for (uint32_t i = 0; i < r->count; i++)
    if (strlen(r->st[i].name) > TENSORFILE_MAX_NAME) {
      snprintf(err, errlen, "'%s' has a tensor name longer than %d bytes", path, TENSORFILE_MAX_NAME);
      return false;
    }
  return true;
}

TensorReader *tensor_reader_open(const char *path, char *err, size_t errlen) {
  TensorReader *r = calloc(1, sizeof *r);
  if (!r) {
    snprintf(err, errlen, "out of memory reading '%s'", path);
    errno = ENOMEM;
    return NULL;
  }
  r->path = path;
  r->f = fopen(path, "rb");
  if (!r->f) {
    snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
    free(r);
    return NULL;
  }
  struct stat st;
  if (fstat(fileno(r->f), &st) != 0) {
    snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
    goto fail;
  }
  r->size = (uint64_t)st.st_size;
  unsigned char head[12] = {0};
  size_t got = fread(head, 1, sizeof head, r->f);
  rewind(r->f);
  uint32_t magic = (uint32_t)head[0] | (uint32_t)head[1] << 8 | (uint32_t)head[2] << 16 | (uint32_t)head[3] << 24;
  if (got >= 9 && magic != TENSORFILE_MAGIC && safetensors_sniff(head)) {
    int n;
    if (safetensors_read_header(r->f, path, &r->st, &n, &r->data_start, err, errlen)) goto fail;
    r->count = (uint32_t)n;
    if (!record_names_fit(r, path, err, errlen)) goto fail;
    return r;
  }
  int npy = got >= 8 && magic != TENSORFILE_MAGIC ? npy_sniff(head) : 0;
  if (npy) {   // .npy or .npz: records as a safetensors file's, at file offsets
    int n;
    if (npy_read_table(r->f, npy, path, r->size, &r->st, &n, err, errlen)) goto fail;
    r->count = (uint32_t)n;
    if (!record_names_fit(r, path, err, errlen)) goto fail;
    return r;
  }
  if (!tensorfile_get_header(r->f, &r->count, &r->version)) {
    snprintf(err, errlen, "'%s' is neither a smelt tensor file (version 1 or 2), a safetensors file, nor a NumPy .npy "
             "or .npz file", path);
    goto fail;
  }
  return r;
fail:
  tensor_reader_close(r);
  return NULL;
}

uint32_t tensor_reader_count(const TensorReader *r) { return r->count; }

bool tensor_reader_next(TensorReader *r, const char **name, uint32_t *dtype, Shape *shape) {
  if (r->next == r->count) return false;
  if (r->st) {
    const SafeTensor *t = &r->st[r->next++];
    snprintf(r->name, sizeof r->name, "%s", t->name);
    *dtype = t->dtype;
    *shape = t->shape;
    *name = r->name;
    return fseeko(r->f, (off_t)(r->data_start + t->begin), SEEK_SET) == 0;
  }
  r->next++;
  *name = r->name;
  if (!tensorfile_get_record(r->f, r->name, dtype, shape)) return false;
  off_t at = ftello(r->f);
  uint64_t bytes = (uint64_t)shape_numel(shape) * (uint64_t)dtype_size(*dtype) + (r->version >= 2 ? 4 : 0);
  if (r->version >= 2) r->crc = tensorfile_record_crc(r->name, *dtype, shape);
  return at >= 0 && bytes <= r->size - (uint64_t)at;   // a corrupt size is refused before anything is allocated
}

bool tensor_reader_bytes(TensorReader *r, void *dst, uint64_t bytes) {
  const SafeTensor *st = r->st && r->next ? &r->st[r->next - 1] : NULL;   // the record next() gave
  if ((st && !st->has_crc) || (!st && r->version < 2)) {
    if (!dst) return fseeko(r->f, (off_t)bytes, SEEK_CUR) == 0;
    return read_exact(r->f, dst, (size_t)bytes);
  }
  // version 2: the values, then the CRC-32 of the record's head and values;
  // safetensors from smelt: the values, whose CRC-32 the header gives; an
  // .npz member: its .npy header and values, whose CRC-32 the zip gives. Checked
  // even when the values are passed over.
  uint32_t c = st ? st->crc_start : r->crc, want = st ? st->crc : 0;
  if (dst) {
    if (!read_exact(r->f, dst, (size_t)bytes)) return false;
    c = smelt_crc32_update(c, dst, bytes);
  } else {
    char buf[65536];
    for (uint64_t left = bytes; left;) {
      size_t n = left < sizeof buf ? (size_t)left : sizeof buf;
      if (!read_exact(r->f, buf, n)) return false;
      c = smelt_crc32_update(c, buf, n);
      left -= n;
    }
  }
  if (!st && !read_exact(r->f, &want, 4)) return false;
  if (c != want) {
    snprintf(r->why, sizeof r->why, "'%s' is corrupt: tensor '%s' does not match its CRC-32", r->path, r->name);
    return false;
  }
  return true;
}

const char *tensor_reader_why(const TensorReader *r) { return r->why[0] ? r->why : NULL; }

bool tensor_reader_end(TensorReader *r) {
  if (r->st) return true;   // safetensors: the header places every record; padding may follow
  off_t at = ftello(r->f);
  if (at < 0) return false;
  if ((uint64_t)at == r->size) return true;
  if ((uint64_t)at > r->size) {   // a record passed over by seeking beyond the end
    snprintf(r->why, sizeof r->why, "'%s' is truncated", r->path);
    return false;
  }
  snprintf(r->why, sizeof r->why, "'%s' has %llu bytes after its last tensor (a file that grew after its save?)",
           r->path, (unsigned long long)(r->size - (uint64_t)at));
  return false;
}

void tensor_reader_close(TensorReader *r) {
  if (!r) return;
  if (r->f) fclose(r->f);
  safetensors_free(r->st, (int)r->count);
  free(r);
}

struct TensorWriter {
  FILE *f;
  char *tmp, *path;
  bool safetensors;
  int numpy;                 // 1: .npy (one tensor), 2: .npz (a zip of .npy members); 0: neither
  uint64_t *crc_at;          // safetensors: where in the header each tensor's CRC-32 goes
  uint64_t *offsets, *sizes; // .npz: each member's local header and bytes
  uint32_t *crcs;            // .npz: each member's CRC-32
  int count, next;
  const char *const *names;
  const uint32_t *dtypes;
  const Shape *shapes;
};

static bool ends_with(const char *s, const char *tail) {
  size_t n = strlen(s), k = strlen(tail);
  return n >= k && !strcmp(s + n - k, tail);
}

static void npz_free(TensorWriter *w) {
  free(w->offsets);
  free(w->sizes);
  free(w->crcs);
}

// Whether NumPy's formats hold the tensors: one for .npy; for .npz at most
// 65535, in under 4 GiB (the zip has no zip64 records); dtypes NumPy has.
static bool numpy_fits(const TensorWriter *w, const char *path, char *err, size_t errlen) {
  if (w->numpy == 1 && w->count != 1) {
    snprintf(err, errlen, "cannot write '%s': a .npy file holds one tensor, not %d (write .npz)", path, w->count);
    return false;
  }
  uint64_t total = 22;
  for (int i = 0; i < w->count; i++) {
    if (!npy_dtype_ok(w->dtypes[i], path, w->names[i], err, errlen)) return false;
    total += 30 + 46 + 2 * (strlen(w->names[i]) + 4) + npy_header_size(w->dtypes[i], &w->shapes[i]) +
             (uint64_t)shape_numel(&w->shapes[i]) * (uint64_t)dtype_size(w->dtypes[i]);
  }
  if (w->numpy == 2 && (w->count > 65535 || total >= 0xFFFFFFFFu)) {
    snprintf(err, errlen, "cannot write '%s': too large for an .npz without zip64 (4 GiB, 65535 tensors); write "
             ".safetensors", path);
    return false;
  }
  return true;
}

TensorWriter *tensor_writer_open(const char *path, int count, const char *const *names, const uint32_t *dtypes,
                                 const Shape *shapes, char *err, size_t errlen) {
  return tensor_writer_open_meta(path, count, names, dtypes, shapes, NULL, 0, err, errlen);
}

TensorWriter *tensor_writer_open_meta(const char *path, int count, const char *const *names, const uint32_t *dtypes,
                                      const Shape *shapes, const char *const *meta, int nmeta, char *err,
                                      size_t errlen) {
  TensorWriter *w = calloc(1, sizeof *w);
  if (!w) {
    snprintf(err, errlen, "out of memory writing '%s'", path);
    errno = ENOMEM;
    return NULL;
  }
  *w = (TensorWriter){.safetensors = ends_with(path, ".safetensors"), .count = count, .names = names,
                      .dtypes = dtypes, .shapes = shapes, .numpy = ends_with(path, ".npy") ? 1 : ends_with(path, ".npz") ? 2 : 0};
  if (w->numpy && !numpy_fits(w, path, err, errlen)) {
    free(w);
    return NULL;
  }
  if (w->numpy == 2) {
    size_t k = count ? (size_t)count : 1;
    w->offsets = calloc(k, sizeof *w->offsets), w->sizes = calloc(k, sizeof *w->sizes), w->crcs = calloc(k, sizeof *w->crcs);
    if (!w->offsets || !w->sizes || !w->crcs) {
      snprintf(err, errlen, "out of memory writing '%s'", path);
      errno = ENOMEM;
      npz_free(w);
      free(w);
      return NULL;
    }
  }
  w->path = strdup(path);
  w->crc_at = w->safetensors ? calloc(count ? (size_t)count : 1, sizeof *w->crc_at) : NULL;
  w->f = w->path && (w->crc_at || !w->safetensors) ? atomic_open(path, &w->tmp, err, errlen) : NULL;
  if (!w->f) {
    if (!w->path || (w->safetensors && !w->crc_at)) {
      snprintf(err, errlen, "out of memory writing '%s'", path);
      errno = ENOMEM;
    }
    free(w->path);
    free(w->crc_at);
    npz_free(w);
    free(w);
    return NULL;
  }
  if (w->numpy) return w;   // each tensor's header goes before its values
  bool ok = w->safetensors ? safetensors_write_header(w->f, names, dtypes, shapes, count, meta, nmeta, w->crc_at) == 0
                           : tensorfile_put_header(w->f, (uint32_t)count);
  if (!ok) {
    tensor_writer_close(w, false, err, errlen);
    return NULL;
  }
  return w;
}

// An .npy array (after an .npz member's local header, its CRC-32 patched in).
static bool numpy_bytes(TensorWriter *w, int i, const void *src, uint64_t bytes) {
  uint64_t crc_at = 0, head;
  uint32_t crc;
  off_t at = ftello(w->f);
  if (w->numpy == 2) {
    w->offsets[i] = (uint64_t)at;
    w->sizes[i] = npy_header_size(w->dtypes[i], &w->shapes[i]) + bytes;
    if (at < 0 || !npz_put_local(w->f, w->names[i], w->sizes[i], &crc_at)) return false;
  }
  if (!npy_put_header(w->f, w->dtypes[i], &w->shapes[i], &crc, &head) ||
      (bytes && fwrite(src, 1, (size_t)bytes, w->f) != bytes))
    return false;
  if (w->numpy == 1) return true;
  w->crcs[i] = smelt_crc32_update(crc, src, bytes);
  return npz_put_crc(w->f, crc_at, w->crcs[i]);
}

bool tensor_writer_bytes(TensorWriter *w, const void *src, uint64_t bytes) {
  if (w->next == w->count) return false;
  int i = w->next++;
  if (w->numpy) return numpy_bytes(w, i, src, bytes);
  if (w->safetensors)
    return (bytes == 0 || fwrite(src, 1, (size_t)bytes, w->f) == bytes) &&
           safetensors_put_crc(w->f, w->crc_at[i], smelt_crc32(src, bytes));
  if (!tensorfile_put_record(w->f, w->names[i], w->dtypes[i], &w->shapes[i])) return false;
  uint32_t crc = smelt_crc32_update(tensorfile_record_crc(w->names[i], w->dtypes[i], &w->shapes[i]), src, bytes);
  return (bytes == 0 || fwrite(src, 1, (size_t)bytes, w->f) == bytes) && fwrite(&crc, 4, 1, w->f) == 1;
}

int tensor_writer_close(TensorWriter *w, bool ok, char *err, size_t errlen) {
  ok = ok && w->next == w->count;
  if (ok && w->numpy == 2) ok = npz_put_directory(w->f, w->count, w->names, w->offsets, w->sizes, w->crcs);
  int rc = atomic_commit(w->f, w->tmp, w->path, ok, err, errlen);
  free(w->path);
  free(w->crc_at);
  npz_free(w);
  free(w);
  return rc;
}

// ---- whole files of doubles

int tensorfile_write(const char *path, const TensorEntry *t, int n, char *err, size_t errlen) {
  const char **names = malloc(sizeof *names * (size_t)(n ? n : 1));
  uint32_t *dtypes = malloc(sizeof *dtypes * (size_t)(n ? n : 1));
  Shape *shapes = malloc(sizeof *shapes * (size_t)(n ? n : 1));
  TensorWriter *w = NULL;
  int rc = -1;
  if (!names || !dtypes || !shapes) {
    snprintf(err, errlen, "out of memory writing '%s'", path);
    errno = ENOMEM;
    goto out;
  }
  for (int i = 0; i < n; i++) names[i] = t[i].name, dtypes[i] = DT_F32, shapes[i] = t[i].shape;
  w = tensor_writer_open(path, n, names, dtypes, shapes, err, errlen);
  if (!w) goto out;
  bool ok = true;
  for (int i = 0; i < n && ok; i++) {
    int64_t cnt = shape_numel(&t[i].shape);
    float *v = malloc(sizeof(float) * (size_t)(cnt ? cnt : 1));
    ok = v != NULL;
    if (ok) dtype_from_doubles(DT_F32, t[i].data, v, cnt);
    ok = ok && tensor_writer_bytes(w, v, (uint64_t)cnt * 4);
    free(v);
  }
  rc = tensor_writer_close(w, ok, err, errlen);
out:
  free(names);
  free(dtypes);
  free(shapes);
  return rc;
}

int tensorfile_read(const char *path, TensorEntry **out, int *n, char *err, size_t errlen) {
  *out = NULL;
  *n = 0;
  TensorReader *r = tensor_reader_open(path, err, errlen);
  if (!r) return -1;
  uint32_t total = tensor_reader_count(r);
  TensorEntry *t = calloc(total ? total : 1, sizeof *t);
  int count = 0;
  void *raw = NULL;
  if (!t) goto oom;
  for (uint32_t i = 0; i < total; i++) {
    uint32_t dtype;
    Shape shape;
    const char *name;
    if (!tensor_reader_next(r, &name, &dtype, &shape)) goto bad;
    int64_t cnt = shape_numel(&shape);
    size_t bytes = (size_t)cnt * (size_t)dtype_size(dtype);
    t[count] = (TensorEntry){strdup(name), shape, malloc(sizeof(double) * (size_t)(cnt ? cnt : 1))};
    raw = malloc(bytes ? bytes : 1);
    count++;
    if (!t[count - 1].name || !t[count - 1].data || !raw) goto oom;
    if (!tensor_reader_bytes(r, raw, bytes)) goto bad;
    dtype_to_doubles(dtype, raw, t[count - 1].data, cnt);
    free(raw);
    raw = NULL;
  }
  if (!tensor_reader_end(r)) goto bad;
  tensor_reader_close(r);
  *out = t;
  *n = count;
  return 0;
oom:
  snprintf(err, errlen, "out of memory reading '%s'", path);
  errno = ENOMEM;
  goto fail;
bad:
  if (tensor_reader_why(r)) snprintf(err, errlen, "%s", tensor_reader_why(r));
  else snprintf(err, errlen, "'%s' is truncated or corrupt", path);
fail:
  tensor_reader_close(r);
  free(raw);
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
