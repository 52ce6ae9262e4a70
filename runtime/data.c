// data.c: the runtime's data loaders and the background batcher.
//
// Loaders read a whole source into one f32 table (Dataset), except token
// streams, which stay in their files' read-only mappings and are cast to f32
// a batch at a time (a 100 MB u16 file would otherwise cost 200 MB of floats
// on top of its bytes). Every loader checks that a
// file holds exactly what it announces, so a truncated download fails loudly
// instead of training on zeros. Gzip is decoded by zlib's inflate, opened
// with dlopen at the first gzipped file: the runtime links against libc, libm,
// pthreads and libdl only, and raw files keep working where libz.so.1 is absent.
//
// The batcher's order is a pure function of (seed, epoch, position): one
// Fisher-Yates permutation per epoch driven by splitmix64, or for token windows
// one hash per (seed, epoch, batch, row). A resumed run therefore sees the same
// batches as an uninterrupted one. One producer thread keeps two slots filled
// ahead of the consumer; a seek bumps a generation so that a batch in flight
// for the old position is dropped.
//
// Loaders return 0, or -1 with a message in err and *out zeroed, so that
// data_free on it is harmless either way; batcher_new returns NULL with a message.
#include "data.h"
#include "dtype.h"
#include "tensorfile.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <glob.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

// A dataset holds at most this many values (and a token file this many tokens).
#define MAX_VALUES ((int64_t)1 << 31)
// Token ids above this are not exact in f32.
#define MAX_EXACT_TOKEN (1u << 24)

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

// ---------------------------------------------------------------- zlib

// zlib's z_stream, whose layout has been fixed since zlib 1.0.
typedef struct {
  const unsigned char *next_in;
  unsigned avail_in;
  unsigned long total_in;
  unsigned char *next_out;
  unsigned avail_out;
  unsigned long total_out;
  const char *msg;
  void *state;
  void *zalloc, *zfree, *opaque;
  int data_type;
  unsigned long adler, reserved;
} ZStream;
#define Z_OK 0
#define Z_STREAM_END 1
#define Z_BUF_ERROR (-5)
#define Z_NO_FLUSH 0
#define Z_GZIP_ONLY (16 + 15)   // windowBits: a gzip wrapper, a 32 KiB window

// The inflate entry points of libz.so.1, loaded once; handle stays NULL and why
// says what went wrong when the library or a symbol is missing. inflate (not
// gzread) is used so that bytes after the last gzip member are seen: gzread
// ignores trailing garbage without a word.
static struct {
  void *handle;
  int (*inflateInit2_)(ZStream *z, int window_bits, const char *version, int stream_size);
  int (*inflate)(ZStream *z, int flush);
  int (*inflateReset)(ZStream *z);
  int (*inflateEnd)(ZStream *z);
  char why[256];
} zlib;
static pthread_once_t zlib_once = PTHREAD_ONCE_INIT;

static void zlib_open(void) {
  void *h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    snprintf(zlib.why, sizeof zlib.why, "libz.so.1 cannot be loaded (%s)", e ? e : "unknown error");
    return;
  }
  void *p;
#define ZLIB_LOAD(name) (p = dlsym(h, #name), memcpy(&zlib.name, &p, sizeof p), p != NULL)
  if (!ZLIB_LOAD(inflateInit2_) || !ZLIB_LOAD(inflate) || !ZLIB_LOAD(inflateReset) || !ZLIB_LOAD(inflateEnd)) {
    snprintf(zlib.why, sizeof zlib.why, "libz.so.1 lacks the inflate functions");
    dlclose(h);
    return;
  }
#undef ZLIB_LOAD
  zlib.handle = h;
}

// ---------------------------------------------------------------- reader

#define GZ_IN (1u << 17)   // compressed bytes read at a time

// A file read front to back, raw or through zlib.
typedef struct {
  const char *path;
  int fd;                   // the file, raw or compressed
  ZStream *gz;              // non-NULL for a gzipped file
  unsigned char *in;        // GZ_IN compressed bytes, gz->next_in points into it
  bool in_eof;              // the whole file has been read into in
  bool gz_done;             // the last member ended at the end of the file
  unsigned char head[2];    // bytes read to sniff the gzip magic, not yet returned
  int nhead, headpos;
} Reader;

static int read_full(int fd, void *buf, size_t n, size_t *got) {
  *got = 0;
  while (*got < n) {
    ssize_t k = read(fd, (char *)buf + *got, n - *got);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return -1;
    if (k == 0) break;
    *got += (size_t)k;
  }
  return 0;
}

static void reader_close(Reader *r);

// Opens path; with sniff_gzip, a file starting with the gzip magic is decoded
// through zlib. Close with reader_close after a read, also a failed one; a
// failed open closes what it opened.
static int reader_open_file(Reader *r, const char *path, bool sniff_gzip, char *err, size_t errlen) {
  r->path = path;
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever
  r->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (r->fd < 0) return fail(err, errlen, "cannot read '%s': %s", path, strerror(errno));
  struct stat st;
  if (fstat(r->fd, &st) != 0) return fail(err, errlen, "cannot read '%s': %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode)) return fail(err, errlen, "cannot read '%s': %s", path, strerror(EISDIR));
  // a FIFO, socket or device may never end (/dev/zero): data is read from files only
  if (!S_ISREG(st.st_mode))
    return fail(err, errlen, "cannot read '%s': it is not a regular file (a pipe, socket or device)", path);
  int flags = fcntl(r->fd, F_GETFL);
  if (flags >= 0) fcntl(r->fd, F_SETFL, flags & ~O_NONBLOCK);
  if (!sniff_gzip) return 0;
  size_t got;
  if (read_full(r->fd, r->head, 2, &got)) return fail(err, errlen, "cannot read '%s': %s", path, strerror(errno));
  r->nhead = (int)got;
  if (got < 2 || r->head[0] != 0x1f || r->head[1] != 0x8b) return 0;
  pthread_once(&zlib_once, zlib_open);
  if (!zlib.handle) return fail(err, errlen, "cannot read '%s': it is gzipped and %s", path, zlib.why);
  r->gz = calloc(1, sizeof *r->gz);
  r->in = malloc(GZ_IN);
  if (!r->gz || !r->in || zlib.inflateInit2_(r->gz, Z_GZIP_ONLY, "1.2.0", (int)sizeof *r->gz) != Z_OK) {
    free(r->gz);   // not initialized: reader_close must not end it
    r->gz = NULL;
    return fail(err, errlen, "cannot read gzipped '%s': out of memory", path);
  }
  memcpy(r->in, r->head, 2);   // the magic is the stream's first bytes
  r->gz->next_in = r->in;
  r->gz->avail_in = 2;
  r->nhead = 0;
  return 0;
}

static int reader_open(Reader *r, const char *path, bool sniff_gzip, char *err, size_t errlen) {
  memset(r, 0, sizeof *r);
  r->fd = -1;
  if (reader_open_file(r, path, sniff_gzip, err, errlen) == 0) return 0;
  reader_close(r);
  return -1;
}

static void reader_close(Reader *r) {
  if (r->gz) {
    zlib.inflateEnd(r->gz);
    free(r->gz);
  }
  free(r->in);
  if (r->fd >= 0) close(r->fd);
  r->gz = NULL;
  r->in = NULL;
  r->fd = -1;
}

// Tops up the compressed bytes to at least want (or what the file has left),
// keeping those not yet decoded.
static int gz_fill(Reader *r, unsigned want, char *err, size_t errlen) {
  ZStream *z = r->gz;
  if (r->in_eof || z->avail_in >= want) return 0;
  memmove(r->in, z->next_in, z->avail_in);
  z->next_in = r->in;
  size_t got;
  if (read_full(r->fd, r->in + z->avail_in, GZ_IN - z->avail_in, &got))
    return fail(err, errlen, "cannot read '%s': %s", r->path, strerror(errno));
  r->in_eof = z->avail_in + got < GZ_IN;
  z->avail_in += (unsigned)got;
  return 0;
}

// At the end of a gzip member: another member follows, or nothing does;
// anything else after it is an error (gzip(1) warns of it, gzread ignores it).
static int gz_member_end(Reader *r, char *err, size_t errlen) {
  ZStream *z = r->gz;
  if (gz_fill(r, 2, err, errlen)) return -1;
  if (z->avail_in == 0) {
    r->gz_done = true;
    return 0;
  }
  if (z->avail_in >= 2 && z->next_in[0] == 0x1f && z->next_in[1] == 0x8b) return zlib.inflateReset(z) == Z_OK ? 0 : -1;
  return fail(err, errlen, "'%s' has data after its gzip stream (bytes that are not another gzip member)", r->path);
}

// Decodes up to n bytes into dst; fewer only at the end of the last member.
static int64_t gz_read(Reader *r, unsigned char *dst, size_t n, char *err, size_t errlen) {
  ZStream *z = r->gz;
  size_t done = 0;
  while (done < n && !r->gz_done) {
    if (gz_fill(r, 1, err, errlen)) return -1;
    if (z->avail_in == 0)
      return fail(err, errlen, "'%s' is truncated: its gzip stream ends early", r->path);
    size_t want = n - done < (1u << 30) ? n - done : (1u << 30);
    z->next_out = dst + done;
    z->avail_out = (unsigned)want;
    int rc = zlib.inflate(z, Z_NO_FLUSH);
    done += want - z->avail_out;
    if (rc == Z_STREAM_END) {
      if (gz_member_end(r, err, errlen)) return -1;
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return fail(err, errlen, "cannot read gzipped '%s': %s", r->path, z->msg ? z->msg : "corrupt data");
    }
  }
  return (int64_t)done;
}

// Reads up to n bytes; fewer only at the end of the data. Returns the count, or
// -1 with a message (an I/O error, corrupt gzip data, a gzip stream that ends
// early, which is reported as a truncated file, or bytes after it).
static int64_t reader_read(Reader *r, void *buf, size_t n, char *err, size_t errlen) {
  char *dst = buf;
  size_t done = 0;
  while (r->headpos < r->nhead && done < n) dst[done++] = (char)r->head[r->headpos++];
  if (r->gz) {
    int64_t k = gz_read(r, (unsigned char *)dst + done, n - done, err, errlen);
    return k < 0 ? -1 : (int64_t)done + k;
  }
  size_t got;
  if (read_full(r->fd, dst + done, n - done, &got))
    return fail(err, errlen, "cannot read '%s': %s", r->path, strerror(errno));
  return (int64_t)(done + got);
}

// Reads the rest of r into a malloc'd buffer of *len bytes plus a NUL; more
// than max bytes is an error saying the file is too large.
static int reader_slurp(Reader *r, int64_t max, char **out, size_t *len, char *err, size_t errlen) {
  *out = NULL;
  *len = 0;
  size_t cap = 1 << 16;
  struct stat st;
  if (!r->gz && fstat(r->fd, &st) == 0 && S_ISREG(st.st_mode)) {
    if (st.st_size > max)
      return fail(err, errlen, "'%s' is too large: %lld bytes (at most %lld)", r->path,
                  (long long)st.st_size, (long long)max);
    cap = (size_t)st.st_size + 2;
  }
  char *buf = malloc(cap);
  if (!buf) return fail(err, errlen, "out of memory reading '%s'", r->path);
  size_t n = 0;
  for (;;) {
    if (n + 1 == cap) {
      if ((int64_t)n > max) break;
      char *grown = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
      if (!grown) {
        free(buf);
        return fail(err, errlen, "out of memory reading '%s'", r->path);
      }
      buf = grown;
      cap *= 2;
    }
    int64_t k = reader_read(r, buf + n, cap - 1 - n, err, errlen);
    if (k < 0) {
      free(buf);
      return -1;
    }
    if (k == 0) break;
    n += (size_t)k;
  }
  if ((int64_t)n > max) {
    free(buf);
    return fail(err, errlen, "'%s' is too large: more than %lld bytes", r->path, (long long)max);
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return 0;
}

// Reads a whole file, raw or (with sniff_gzip) gzipped.
static int file_slurp(const char *path, bool sniff_gzip, int64_t max, char **out, size_t *len,
                      char *err, size_t errlen) {
  Reader r;
  *out = NULL;
  *len = 0;
  if (reader_open(&r, path, sniff_gzip, err, errlen)) return -1;
  int rc = reader_slurp(&r, max, out, len, err, errlen);
  reader_close(&r);
  return rc;
}

// ---------------------------------------------------------------- IDX

// Bytes per element of an IDX type code; 0 for an unknown code.
static int idx_elem_size(int type) {
  switch (type) {
  case 0x08: case 0x09: return 1;
  case 0x0B: return 2;
  case 0x0C: case 0x0D: return 4;
  case 0x0E: return 8;
  }
  return 0;
}

static uint64_t load_be(const unsigned char *p, int size) {
  uint64_t v = 0;
  for (int i = 0; i < size; i++) v = v << 8 | p[i];
  return v;
}

// dst[i] = scale * element i of src (count big-endian elements of type).
// Returns the index of the first value that is not a finite f32 (a NaN in the
// file, or one too large), or -1.
static int64_t idx_convert(int type, const unsigned char *src, size_t count, double scale, float *dst) {
  int64_t bad = -1;
  int size = idx_elem_size(type);
  for (size_t i = 0; i < count; i++) {
    uint64_t u = load_be(src + i * (size_t)size, size);
    double v;
    switch (type) {
    case 0x08: v = (double)(uint8_t)u; break;
    case 0x09: v = (double)(int8_t)(uint8_t)u; break;
    case 0x0B: v = (double)(int16_t)(uint16_t)u; break;
    case 0x0C: v = (double)(int32_t)(uint32_t)u; break;
    case 0x0D: {
      uint32_t bits = (uint32_t)u;
      float f;
      memcpy(&f, &bits, sizeof f);
      v = f;
      break;
    }
    default: memcpy(&v, &u, sizeof v); break;
    }
    double scaled = v * scale;
    if (bad < 0 && !(fabs(scaled) <= FLT_MAX)) bad = (int64_t)i;
    dst[i] = bad < 0 ? (float)scaled : 0;
  }
  return bad;
}

int data_load_idx(const char *path, double scale, Dataset *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  Reader r;
  if (reader_open(&r, path, true, err, errlen)) return -1;
  float *values = NULL;
  unsigned char head[4 * 9];
  int64_t got = reader_read(&r, head, 4, err, errlen);
  if (got < 0) goto fail;
  int type = head[2], size = got == 4 && head[0] == 0 && head[1] == 0 ? idx_elem_size(type) : 0;
  if (!size) {
    fail(err, errlen, "'%s' is not an IDX file", path);
    goto fail;
  }
  int ndim = head[3];
  if (ndim < 1 || ndim > 9) {
    fail(err, errlen, "'%s' is not an IDX file this runtime reads: %d dimensions (1 to 9 are)",
         path, ndim);
    goto fail;
  }
  got = reader_read(&r, head, 4 * (size_t)ndim, err, errlen);
  if (got < 0) goto fail;
  if (got < 4 * ndim) {
    fail(err, errlen, "'%s' is truncated: its header ends early", path);
    goto fail;
  }
  int64_t dims[9], total = 1;
  for (int i = 0; i < ndim; i++) {
    dims[i] = (int64_t)load_be(head + 4 * i, 4);
    if (dims[i] > 0 && total > MAX_VALUES / dims[i]) {
      fail(err, errlen, "'%s' is too large: its header announces more than %lld values", path,
           (long long)MAX_VALUES);
      goto fail;
    }
    total *= dims[i];
  }
  if (total == 0) {
    fail(err, errlen, "'%s' holds no values (a dimension is 0)", path);
    goto fail;
  }
  unsigned char chunk[1 << 16];
  const size_t per_chunk = sizeof chunk / (size_t)size;
  // values grows with the data read, so that a header announcing far more
  // than the file holds is refused as truncated before it costs that memory
  int64_t cap = 0;
  for (int64_t done = 0; done < total;) {
    size_t count = total - done < (int64_t)per_chunk ? (size_t)(total - done) : per_chunk;
    if (done + (int64_t)count > cap) {
      int64_t want = cap * 2 > done + (int64_t)count ? cap * 2 : done + (int64_t)count;
      if (want > total) want = total;
      float *grown = realloc(values, (size_t)want * sizeof *values);
      if (!grown) {
        fail(err, errlen, "out of memory loading '%s': %lld values", path, (long long)total);
        goto fail;
      }
      values = grown;
      cap = want;
    }
    got = reader_read(&r, chunk, count * (size_t)size, err, errlen);
    if (got < 0) goto fail;
    if (got < (int64_t)(count * (size_t)size)) {
      fail(err, errlen,
           "'%s' is truncated: its header announces %lld values (%lld bytes) but only %lld bytes "
           "follow",
           path, (long long)total, (long long)(total * size), (long long)(done * size + got));
      goto fail;
    }
    int64_t bad = idx_convert(type, chunk, count, scale, values + done);
    if (bad >= 0) {
      fail(err, errlen, "'%s' value %lld is not a finite f32 (NaN, infinite or too large)", path,
           (long long)(done + bad));
      goto fail;
    }
    done += (int64_t)count;
  }
  got = reader_read(&r, chunk, 1, err, errlen);
  if (got < 0) goto fail;
  if (got > 0) {
    fail(err, errlen, "'%s' has data after the %lld values its header announces", path,
         (long long)total);
    goto fail;
  }
  reader_close(&r);
  out->n = dims[0];
  out->ndim = ndim - 1;
  out->sample_size = 1;
  for (int i = 1; i < ndim; i++) {
    out->dims[i - 1] = dims[i];
    out->sample_size *= dims[i];
  }
  out->values = values;
  return 0;
fail:
  reader_close(&r);
  free(values);
  return -1;
}

// ---------------------------------------------------------------- CSV

typedef struct {
  float *v;
  int64_t n, cap;
} FloatVec;

static int floatvec_push(FloatVec *fv, float x) {
  if (fv->n == fv->cap) {
    if (fv->cap >= MAX_VALUES) return -1;
    int64_t cap = fv->cap ? fv->cap * 2 : 1024;
    float *grown = realloc(fv->v, (size_t)cap * sizeof *grown);
    if (!grown) return -2;
    fv->v = grown;
    fv->cap = cap;
  }
  fv->v[fv->n++] = x;
  return 0;
}

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The length of the decimal number at p ([+-] digits [. digits] [e [+-] digits],
// digits on at least one side of the dot), or 0. strtod alone also takes
// "nan", "inf" and hex ("0x10"), which no data file means as numbers.
static size_t decimal_length(const char *p) {
  const char *q = p;
  if (*q == '+' || *q == '-') q++;
  const char *digits = q;
  while (is_digit(*q)) q++;
  bool before = q > digits;
  if (*q == '.') {
    q++;
    const char *frac = q;
    while (is_digit(*q)) q++;
    if (!before && q == frac) return 0;
  } else if (!before) {
    return 0;
  }
  if (*q == 'e' || *q == 'E') {
    const char *e = q++;
    if (*q == '+' || *q == '-') q++;
    const char *exp = q;
    while (is_digit(*q)) q++;
    if (q == exp) q = e;   // "1e" is not a number; csv_parse_line then refuses the 'e'
  }
  return (size_t)(q - p);
}

// Parses the comma-separated numbers of line (NUL-terminated) onto fv. Returns
// the field count; or -1 when field *bad (1-based, text at *text, *textlen) is
// not a number; or -2/-3 when fv cannot grow (too large / out of memory); or
// -4 when field *bad is a number beyond f32's range (1e999). *numbers counts
// the fields that were numbers.
static int64_t csv_parse_line(char *line, double scale, FloatVec *fv, int64_t *bad,
                              const char **text, int *textlen, int64_t *numbers) {
  int64_t fields = 0, rc = 0;
  *numbers = 0;
  char *p = line;
  for (;;) {
    char *start = p, *end = strchr(p, ',');
    if (!end) end = p + strlen(p);
    fields++;
    while (is_blank(*p)) p++;
    char *num_end = p + (p < end ? decimal_length(p) : 0);
    double v = num_end > p ? strtod(p, NULL) * scale : 0;
    bool number = num_end > p;
    while (num_end < end && is_blank(*num_end)) num_end++;
    if (number && num_end == end) (*numbers)++;
    if (rc == 0 && (!number || num_end != end || !(fabs(v) <= FLT_MAX))) {
      *bad = fields;
      *text = start;
      *textlen = (int)(end - start < 40 ? end - start : 40);
      rc = number && num_end == end ? -4 : -1;
    }
    if (rc == 0) {
      int grown = floatvec_push(fv, (float)v);
      if (grown) return grown - 1;
    }
    if (!*end) return rc ? rc : fields;
    p = end + 1;
  }
}

// data_load_csv, also keeping a copy of the header line in *header (NULL when
// the file has none) where header is not NULL.
static int csv_load(const char *path, double scale, Dataset *out, char **header, char *err,
                    size_t errlen) {
  memset(out, 0, sizeof *out);
  char *text;
  size_t len;
  if (file_slurp(path, true, MAX_VALUES * 8, &text, &len, err, errlen)) return -1;
  FloatVec fv = {0};
  int64_t cols = -1, cols_line = 0, rows = 0;
  bool seen_line = false;
  char *p = text, *end = text + len;
  for (int64_t line = 1; p < end; line++) {
    char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    char *q = eol;
    if (q > p && q[-1] == '\r') q--;
    *q = '\0';
    char *next = eol < end ? eol + 1 : end;
    if (memchr(p, '\0', (size_t)(q - p))) {
      fail(err, errlen, "'%s' line %lld is not text (it holds a NUL byte)", path, (long long)line);
      goto fail;
    }
    const char *s = p;
    while (is_blank(*s)) s++;
    if (!*s) {
      p = next;
      continue;
    }
    if (line == 1 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF)
      p += 3;   // a UTF-8 byte order mark
    int64_t mark = fv.n, bad = 0, numbers;
    const char *field;
    int fieldlen;
    int64_t k = csv_parse_line(p, scale, &fv, &bad, &field, &fieldlen, &numbers);
    if (k == -1 && !seen_line && numbers == 0) {
      fv.n = mark;   // the first line, with no field a number, is a header of names
      if (header && !(*header = strdup(p))) {
        fail(err, errlen, "out of memory loading '%s'", path);
        goto fail;
      }
    } else if (k == -1) {
      fail(err, errlen, "'%s' line %lld, field %lld: '%.*s' is not a number%s", path,
           (long long)line, (long long)bad, fieldlen, field,
           seen_line ? "" : " (a header line holds only names, no numbers)");
      goto fail;
    } else if (k == -4) {
      fail(err, errlen, "'%s' line %lld, field %lld: '%.*s' is beyond f32's range", path,
           (long long)line, (long long)bad, fieldlen, field);
      goto fail;
    } else if (k == -2) {
      fail(err, errlen, "'%s' is too large: more than %lld values", path, (long long)MAX_VALUES);
      goto fail;
    } else if (k < 0) {
      fail(err, errlen, "out of memory loading '%s'", path);
      goto fail;
    } else if (cols < 0) {
      cols = k;
      cols_line = line;
      rows++;
    } else if (k != cols) {
      fail(err, errlen, "'%s' line %lld has %lld fields, but line %lld has %lld", path,
           (long long)line, (long long)k, (long long)cols_line, (long long)cols);
      goto fail;
    } else {
      rows++;
    }
    seen_line = true;
    p = next;
  }
  free(text);
  text = NULL;
  if (rows == 0) {
    fail(err, errlen, "'%s' holds no rows of numbers", path);
    goto fail;
  }
  float *shrunk = realloc(fv.v, (size_t)fv.n * sizeof *shrunk);
  out->values = shrunk ? shrunk : fv.v;
  out->n = rows;
  out->ndim = 1;
  out->dims[0] = cols;
  out->sample_size = cols;
  return 0;
fail:
  free(text);
  free(fv.v);
  return -1;
}

int data_load_csv(const char *path, double scale, Dataset *out, char *err, size_t errlen) {
  return csv_load(path, scale, out, NULL, err, errlen);
}

// The column of header (a CSV line of names) named name, or -1.
static int64_t header_find(const char *header, const char *name, size_t len) {
  int64_t k = 0;
  for (const char *p = header;; k++) {
    const char *end = strchr(p, ',');
    if (!end) end = p + strlen(p);
    const char *a = p, *b = end;
    while (a < b && is_blank(*a)) a++;
    while (b > a && is_blank(b[-1])) b--;
    if ((size_t)(b - a) == len && !memcmp(a, name, len)) return k;
    if (!*end) return -1;
    p = end + 1;
  }
}

static bool all_digits(const char *p, size_t len) {
  if (!len) return false;
  for (size_t i = 0; i < len; i++)
    if (!is_digit(p[i])) return false;
  return true;
}

// The columns of a spec ("label", "a,b", "0,3", "2..5") as indices into
// lines of cols fields: *pick (malloc'd), *npick.
static int csv_columns(const char *path, const char *spec, const char *header, int64_t cols,
                       int64_t **pick, int64_t *npick, char *err, size_t errlen) {
  int64_t n = 0, cap = 8, *list = malloc((size_t)cap * sizeof *list);
  if (!list) return fail(err, errlen, "out of memory loading '%s'", path);
  for (const char *p = spec;;) {
    const char *end = strchr(p, ',');
    if (!end) end = p + strlen(p);
    size_t len = (size_t)(end - p);
    const char *dots = NULL;
    for (const char *q = p; q + 1 < end && !dots; q++)
      if (q[0] == '.' && q[1] == '.') dots = q;
    int64_t lo, hi;
    if (dots && all_digits(p, (size_t)(dots - p)) && all_digits(dots + 2, (size_t)(end - dots - 2))) {
      lo = strtoll(p, NULL, 10), hi = strtoll(dots + 2, NULL, 10);   // a range lo..hi, hi excluded
      if (hi <= lo) {
        free(list);
        return fail(err, errlen, "'%s': the columns %.*s are none (a range lo..hi takes lo to hi - 1)",
                    path, (int)len, p);
      }
    } else if (all_digits(p, len)) {
      lo = strtoll(p, NULL, 10), hi = lo + 1;
    } else {
      lo = header ? header_find(header, p, len) : -1, hi = lo + 1;
      if (lo < 0) {
        free(list);
        if (!header)
          return fail(err, errlen, "'%s' has no header line of names, so it has no column '%.*s' "
                      "(give columns by their index, from 0)", path, (int)len, p);
        return fail(err, errlen, "'%s' has no column '%.*s' (its header is '%.200s')", path,
                    (int)len, p, header);
      }
    }
    if (hi > cols) {
      free(list);
      return fail(err, errlen, "'%s' has no column %lld: its lines have %lld fields (columns 0 to "
                  "%lld)", path, (long long)(hi - 1), (long long)cols, (long long)(cols - 1));
    }
    for (int64_t k = lo; k < hi; k++) {
      if (n == cap) {
        int64_t *grown = realloc(list, (size_t)(cap *= 2) * sizeof *list);
        if (!grown) {
          free(list);
          return fail(err, errlen, "out of memory loading '%s'", path);
        }
        list = grown;
      }
      list[n++] = k;
    }
    if (!*end) break;
    p = end + 1;
  }
  *pick = list;
  *npick = n;
  return 0;
}

int data_load_csv_columns(const char *path, double scale, const char *columns, Dataset *out,
                          char *err, size_t errlen) {
  if (!columns || !*columns) return data_load_csv(path, scale, out, err, errlen);
  char *header = NULL;
  Dataset all;
  if (csv_load(path, scale, &all, &header, err, errlen)) {
    memset(out, 0, sizeof *out);
    return -1;
  }
  int64_t *pick = NULL, k = 0;
  int rc = csv_columns(path, columns, header, all.sample_size, &pick, &k, err, errlen);
  free(header);
  memset(out, 0, sizeof *out);
  float *values = rc ? NULL : malloc((size_t)(all.n * k) * sizeof *values);
  if (!rc && !values) rc = fail(err, errlen, "out of memory loading '%s'", path);
  for (int64_t r = 0; !rc && r < all.n; r++)
    for (int64_t j = 0; j < k; j++) values[r * k + j] = all.values[r * all.sample_size + pick[j]];
  if (!rc) {
    out->n = all.n;
    out->ndim = 1;
    out->dims[0] = k;
    out->sample_size = k;
    out->values = values;
  }
  free(pick);
  data_free(&all);
  return rc;
}

// ---------------------------------------------------------------- NumPy arrays

// Converts n elements of dtype at raw into scale * value at dst. Returns the
// index of the first that is not a finite f32 or (an integer) not exact in
// f32, or -1; *inexact says which.
static int64_t npy_convert(uint32_t dtype, const unsigned char *raw, int64_t n, double scale,
                           float *dst, bool *inexact) {
  double chunk[4096];
  int size = dtype_size(dtype);
  *inexact = false;
  for (int64_t done = 0; done < n;) {
    int64_t k = n - done < 4096 ? n - done : 4096;
    dtype_to_doubles(dtype, raw + done * size, chunk, k);
    for (int64_t i = 0; i < k; i++) {
      if (dtype_is_int(dtype) && fabs(chunk[i]) > MAX_EXACT_TOKEN) {
        *inexact = true;
        return done + i;
      }
      double v = chunk[i] * scale;
      if (!(fabs(v) <= FLT_MAX)) return done + i;
      dst[done + i] = (float)v;
    }
    done += k;
  }
  return -1;
}

int data_load_npy(const char *path, double scale, Dataset *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  Reader probe;   // regular files only, as every source
  if (reader_open(&probe, path, false, err, errlen)) return -1;
  reader_close(&probe);
  TensorReader *r = tensor_reader_open(path, err, errlen);
  if (!r) return -1;
  unsigned char *raw = NULL;
  float *values = NULL;
  const char *name;
  uint32_t dtype;
  Shape shape;
  int rc = 0;
  if (tensor_reader_count(r) != 1) {
    rc = fail(err, errlen, "'%s' holds %u arrays; a data source reads a file of one", path,
              tensor_reader_count(r));
    goto done;
  }
  if (!tensor_reader_next(r, &name, &dtype, &shape)) {
    if (tensor_reader_why(r)) rc = fail(err, errlen, "%s", tensor_reader_why(r));
    else rc = fail(err, errlen, "'%s' is truncated or corrupt", path);
    goto done;
  }
  int64_t numel = shape_numel(&shape);
  if (shape.ndim < 1 || numel == 0) {
    rc = fail(err, errlen, "'%s' holds %s; a data source's first axis is its samples, and it needs "
              "at least one value", path, shape.ndim < 1 ? "a scalar" : "no values");
    goto done;
  }
  if (numel > MAX_VALUES) {
    rc = fail(err, errlen, "'%s' is too large: %lld values (at most %lld)", path, (long long)numel,
              (long long)MAX_VALUES);
    goto done;
  }
  raw = malloc((size_t)numel * (size_t)dtype_size(dtype));
  values = malloc((size_t)numel * sizeof *values);
  if (!raw || !values) {
    rc = fail(err, errlen, "out of memory loading '%s': %lld values", path, (long long)numel);
    goto done;
  }
  if (!tensor_reader_bytes(r, raw, (uint64_t)numel * (uint64_t)dtype_size(dtype))) {
    if (tensor_reader_why(r)) rc = fail(err, errlen, "%s", tensor_reader_why(r));
    else rc = fail(err, errlen, "'%s' is truncated or corrupt", path);
    goto done;
  }
  bool inexact;
  int64_t bad = npy_convert(dtype, raw, numel, scale, values, &inexact);
  if (bad >= 0) {
    rc = fail(err, errlen, inexact ? "'%s' value %lld is beyond 2^24, which f32 does not hold exactly"
                                   : "'%s' value %lld is not a finite f32 (NaN, infinite or too large)",
              path, (long long)bad);
    goto done;
  }
  out->n = shape.d[0];
  out->ndim = shape.ndim - 1;
  out->sample_size = 1;
  for (int i = 1; i < shape.ndim; i++) {
    out->dims[i - 1] = shape.d[i];
    out->sample_size *= shape.d[i];
  }
  out->values = values;
  values = NULL;
done:
  tensor_reader_close(r);
  free(raw);
  free(values);
  return rc;
}

// ---------------------------------------------------------------- token streams

// One file of a token stream: tokens [start, start + n) of the stream, at
// first in the file's mapping (or, where the file system cannot map, in a
// copy of the file's raw bytes: still 1, 2 or 4 bytes a token, not f32).
struct DataPart {
  void *map;      // what munmap (map_len > 0) or free (map_len 0) releases
  size_t map_len;
  const unsigned char *first;
  int64_t start, n;
};

// llm.c's token shards (dev/data/data_common.py): 256 little-endian int32s,
// of which [0] is the magic, [1] the version (1: u16 tokens) and [2] the
// token count; then the tokens.
#define LLMC_MAGIC 20240520u
#define LLMC_HEADER 1024

static uint32_t load_le(const unsigned char *p, int size) {
  uint32_t v = 0;
  for (int i = size - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static void part_release(DataPart *p) {
  if (p->map_len) munmap(p->map, p->map_len);
  else free(p->map);
  memset(p, 0, sizeof *p);
}

// The whole of path, mapped read-only (*len bytes at *base, NULL when empty),
// or read into memory where it cannot be mapped. *map_len: see DataPart.
static int file_map(const char *path, void **base, size_t *len, size_t *map_len, char *err,
                    size_t errlen) {
  *base = NULL;
  *len = *map_len = 0;
  Reader r;
  if (reader_open(&r, path, false, err, errlen)) return -1;
  struct stat st;
  if (fstat(r.fd, &st) != 0) {
    int e = errno;
    reader_close(&r);
    return fail(err, errlen, "cannot read '%s': %s", path, strerror(e));
  }
  if (st.st_size == 0) {
    reader_close(&r);
    return 0;
  }
  void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, r.fd, 0);
  if (m != MAP_FAILED) {
    reader_close(&r);
    *base = m;
    *len = *map_len = (size_t)st.st_size;
    return 0;
  }
  char *copy;
  int rc = reader_slurp(&r, INT64_MAX / 2, &copy, len, err, errlen);
  reader_close(&r);
  if (rc == 0) *base = copy;
  return rc;
}

// The tokens of a file of format fmt (1: bytes, 2: u16, 4: u32, LLMC: an
// llm.c shard) mapped at bytes (len): the first token and their count; or
// -1 when the file is not what fmt says.
#define LLMC (-1)
static int part_tokens(const char *path, int fmt, const unsigned char *bytes, size_t len,
                       const unsigned char **first, int64_t *n, char *err, size_t errlen) {
  bool header = len >= LLMC_HEADER && load_le(bytes, 4) == LLMC_MAGIC;
  if (fmt == LLMC) {
    if (len < LLMC_HEADER)
      return fail(err, errlen, "'%s' is truncated: %zu bytes, less than an llm.c shard's %d-byte "
                  "header", path, len, LLMC_HEADER);
    if (!header)
      return fail(err, errlen, "'%s' is not an llm.c token shard: it starts with %u, not the magic "
                  "%u", path, load_le(bytes, 4), LLMC_MAGIC);
    uint32_t version = load_le(bytes + 4, 4), count = load_le(bytes + 8, 4);
    if (version != 1)
      return fail(err, errlen, "'%s' is an llm.c shard of version %u; version 1 (u16 tokens) is "
                  "read", path, version);
    size_t have = (len - LLMC_HEADER) / 2;
    if ((len - LLMC_HEADER) % 2 || have > count)
      return fail(err, errlen, "'%s' has data after the %u tokens its header announces", path, count);
    if (have < count)
      return fail(err, errlen, "'%s' is truncated: its header announces %u tokens but only %zu "
                  "follow", path, count, have);
    *first = bytes + LLMC_HEADER;
    *n = (int64_t)count;
    return 0;
  }
  if (len % (size_t)fmt)
    return fail(err, errlen, "'%s' holds %zu bytes, not a whole number of %d-byte tokens", path, len,
                fmt);
  // 512 tokens of header read as u16 would train on garbage without a word
  if (fmt == 2 && header && load_le(bytes + 4, 4) == 1 &&
      (uint64_t)load_le(bytes + 8, 4) * 2 + LLMC_HEADER == len)
    return fail(err, errlen, "'%s' is an llm.c token shard (it starts with the magic %u): read it "
                "with dtype = \"llm.c\"", path, LLMC_MAGIC);
  *first = bytes;
  *n = (int64_t)(len / (size_t)fmt);
  return 0;
}

// The largest of n tokens of bpt bytes at p; *bad: the index of the first
// above MAX_EXACT_TOKEN, or -1.
static uint32_t tokens_max(const unsigned char *p, int64_t n, int bpt, int64_t *bad) {
  uint32_t max = 0;
  *bad = -1;
  for (int64_t i = 0; i < n; i++) {
    uint32_t v = load_le(p + i * bpt, bpt);
    if (v > MAX_EXACT_TOKEN && *bad < 0) *bad = i;
    if (v > max) max = v;
  }
  return max;
}

static bool range_ok(double from, double to) { return from >= 0 && from < to && to <= 1; }

// Keeps tokens [lo, hi) of the stream in parts (nparts, each with its start
// in the whole stream), cropping and releasing parts, and checks that every
// kept token is exact in f32. files name the parts in messages.
static int stream_crop(Dataset *d, char **files, int64_t lo, int64_t hi, char *err, size_t errlen) {
  int kept = 0;
  d->max_token = 0;
  for (int i = 0; i < d->nparts; i++) {
    DataPart p = d->parts[i];
    int64_t a = lo > p.start ? lo : p.start, b = hi < p.start + p.n ? hi : p.start + p.n;
    if (b <= a) {
      part_release(&p);
      continue;
    }
    int64_t bad;
    uint32_t max = tokens_max(p.first + (a - p.start) * d->token_bytes, b - a, d->token_bytes, &bad);
    if (bad >= 0) {
      int64_t at = a - p.start + bad;
      uint32_t v = load_le(p.first + at * d->token_bytes, d->token_bytes);
      d->parts[kept++] = p;
      for (int j = i + 1; j < d->nparts; j++) part_release(&d->parts[j]);
      d->nparts = kept;
      return fail(err, errlen, "'%s': token %u at index %lld is above %u, the largest id f32 holds "
                  "exactly", files[i], v, (long long)at, MAX_EXACT_TOKEN);
    }
    if (max > d->max_token) d->max_token = max;
    p.first += (a - p.start) * d->token_bytes;
    p.n = b - a;
    p.start = a - lo;
    d->parts[kept++] = p;
  }
  d->nparts = kept;
  d->n = hi - lo;
  return 0;
}

// The token stream of files (nfiles, in order) of format fmt, its part
// [from, to) kept; what names the source in messages.
static int stream_load(const char *what, char **files, size_t nfiles, int fmt, double from,
                       double to, Dataset *out, char *err, size_t errlen) {
  out->token_bytes = fmt == LLMC ? 2 : fmt;
  out->parts = calloc(nfiles ? nfiles : 1, sizeof *out->parts);
  if (!out->parts) return fail(err, errlen, "out of memory loading '%s'", what);
  int64_t total = 0;
  for (size_t i = 0; i < nfiles; i++) {
    DataPart *p = &out->parts[out->nparts];
    size_t len;
    if (file_map(files[i], &p->map, &len, &p->map_len, err, errlen)) return -1;
    out->nparts++;
    if (part_tokens(files[i], fmt, p->map, len, &p->first, &p->n, err, errlen)) return -1;
    p->start = total;
    total += p->n;
  }
  if (total == 0) return fail(err, errlen, "'%s' holds no tokens", what);
  int64_t lo = (int64_t)floor(from * (double)total), hi = (int64_t)floor(to * (double)total);
  if (hi > total) hi = total;
  if (hi <= lo)
    return fail(err, errlen, "'%s': from = %g, to = %g keeps none of its %lld tokens", what, from,
                to, (long long)total);
  if (stream_crop(out, files, lo, hi, err, errlen)) return -1;
  out->ndim = 0;
  out->sample_size = 1;
  return 0;
}

static int str_compare(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void paths_free(char **names, size_t n) {
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
}

// The regular files of folder whose names have no '.', as malloc'd full paths
// sorted by name (*names, *count; free with paths_free).
static int folder_list(const char *folder, char ***names, size_t *count, char *err, size_t errlen) {
  *names = NULL;
  *count = 0;
  DIR *d = opendir(folder);
  if (!d) return fail(err, errlen, "cannot read '%s': %s", folder, strerror(errno));
  char **list = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strchr(e->d_name, '.')) continue;
    size_t need = strlen(folder) + strlen(e->d_name) + 2;
    char *full = malloc(need);
    if (!full) goto oom;
    snprintf(full, need, "%s/%s", folder, e->d_name);
    struct stat st;
    if (stat(full, &st) != 0 || !S_ISREG(st.st_mode)) {
      free(full);
      continue;
    }
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      char **grown = realloc(list, ncap * sizeof *grown);
      if (!grown) {
        free(full);
        goto oom;
      }
      list = grown;
      cap = ncap;
    }
    list[n++] = full;
  }
  closedir(d);
  if (n) qsort(list, n, sizeof *list, str_compare);
  *names = list;
  *count = n;
  return 0;
oom:
  closedir(d);
  paths_free(list, n);
  return fail(err, errlen, "out of memory listing '%s'", folder);
}

// The files path names: itself when it exists (or has no wildcard), else
// the matches of the glob pattern it is, in strcmp order.
static int path_expand(const char *path, char ***names, size_t *count, char *err, size_t errlen) {
  *names = NULL;
  *count = 0;
  struct stat st;
  glob_t g = {0};
  bool pattern = strpbrk(path, "*?[") && stat(path, &st) != 0;
  if (pattern) {
    int rc = glob(path, GLOB_NOSORT | GLOB_ERR, NULL, &g);
    if (rc == GLOB_NOMATCH) return fail(err, errlen, "'%s' matches no files", path);
    if (rc != 0) {
      globfree(&g);
      return fail(err, errlen, "cannot list the files '%s' matches: %s", path,
                  rc == GLOB_NOSPACE ? "out of memory" : "a folder cannot be read");
    }
  }
  size_t n = pattern ? g.gl_pathc : 1;
  char **list = calloc(n, sizeof *list);
  for (size_t i = 0; list && i < n; i++)
    if (!(list[i] = strdup(pattern ? g.gl_pathv[i] : path))) {
      paths_free(list, i);
      list = NULL;
    }
  globfree(&g);
  if (!list) return fail(err, errlen, "out of memory listing '%s'", path);
  qsort(list, n, sizeof *list, str_compare);
  *names = list;
  *count = n;
  return 0;
}

static int tokens_load(const char *path, int fmt, double from, double to, Dataset *out, char *err,
                       size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!range_ok(from, to))
    return fail(err, errlen, "'%s': from = %g and to = %g must satisfy 0 <= from < to <= 1", path,
                from, to);
  char **files;
  size_t nfiles;
  if (path_expand(path, &files, &nfiles, err, errlen)) return -1;
  int rc = stream_load(path, files, nfiles, fmt, from, to, out, err, errlen);
  paths_free(files, nfiles);
  if (rc) data_free(out);
  return rc;
}

int data_load_tokens(const char *path, int bytes_per_token, double from, double to, Dataset *out,
                     char *err, size_t errlen) {
  if (bytes_per_token != 2 && bytes_per_token != 4) {
    memset(out, 0, sizeof *out);
    return fail(err, errlen, "'%s': tokens are 2 or 4 bytes, not %d", path, bytes_per_token);
  }
  return tokens_load(path, bytes_per_token, from, to, out, err, errlen);
}

int data_load_llmc(const char *path, double from, double to, Dataset *out, char *err, size_t errlen) {
  return tokens_load(path, LLMC, from, to, out, err, errlen);
}

int data_load_text(const char *path, double from, double to, Dataset *out, char *err,
                   size_t errlen) {
  memset(out, 0, sizeof *out);
  if (!range_ok(from, to))
    return fail(err, errlen, "'%s': from = %g and to = %g must satisfy 0 <= from < to <= 1", path,
                from, to);
  struct stat st;
  if (stat(path, &st) != 0) return fail(err, errlen, "cannot read '%s': %s", path, strerror(errno));
  if (!S_ISDIR(st.st_mode)) return tokens_load(path, 1, from, to, out, err, errlen);
  char **files;
  size_t nfiles;
  if (folder_list(path, &files, &nfiles, err, errlen)) return -1;
  int rc = nfiles == 0 ? fail(err, errlen, "'%s' holds no text files (regular files whose names "
                              "have no '.')", path)
                       : stream_load(path, files, nfiles, 1, from, to, out, err, errlen);
  paths_free(files, nfiles);
  if (rc) data_free(out);
  return rc;
}

void data_gather(const Dataset *d, int64_t first, int64_t count, float *dst) {
  if (d->values) {
    memcpy(dst, d->values + first, (size_t)count * sizeof *dst);
    return;
  }
  int lo = 0, hi = d->nparts - 1;   // the last part starting at or before first
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (d->parts[mid].start <= first) lo = mid;
    else hi = mid - 1;
  }
  int bpt = d->token_bytes;
  for (int p = lo; count > 0 && p < d->nparts; p++) {
    const DataPart *part = &d->parts[p];
    int64_t off = first - part->start, k = part->n - off < count ? part->n - off : count;
    const unsigned char *src = part->first + off * bpt;
    if (bpt == 1)
      for (int64_t i = 0; i < k; i++) dst[i] = (float)src[i];
    else if (bpt == 2)
      for (int64_t i = 0; i < k; i++) dst[i] = (float)(uint32_t)(src[2 * i] | src[2 * i + 1] << 8);
    else
      for (int64_t i = 0; i < k; i++) dst[i] = (float)load_le(src + 4 * i, 4);
    dst += k;
    first += k;
    count -= k;
  }
}

void data_free(Dataset *d) {
  if (!d) return;
  free(d->values);
  for (int i = 0; i < d->nparts; i++) part_release(&d->parts[i]);
  free(d->parts);
  memset(d, 0, sizeof *d);
}

// ---------------------------------------------------------------- random order

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
  return z ^ (z >> 31);
}

static uint64_t splitmix_next(uint64_t *state) {
  *state += 0x9E3779B97F4A7C15u;
  return mix64(*state);
}

// Uniform in [0, bound), bound > 0, without modulo bias.
static uint64_t splitmix_below(uint64_t *state, uint64_t bound) {
  uint64_t threshold = (0 - bound) % bound, r;
  do r = splitmix_next(state);
  while (r < threshold);
  return r % bound;
}

// perm = the order of epoch for seed: a pure function of (seed, epoch, n).
static void perm_fill(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch) {
  uint64_t state = mix64(mix64(seed ^ 0x243F6A8885A308D3u) ^ (uint64_t)epoch);
  for (int64_t i = 0; i < n; i++) perm[i] = i;
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)splitmix_below(&state, (uint64_t)i + 1);
    int64_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

// ---------------------------------------------------------------- batcher

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY };

struct Batcher {
  const Dataset **sets;   // nsets, borrowed: they outlive the batcher
  int nsets;
  int64_t batch, window;
  int64_t first, rows;    // the rows of each drawn batch that are filled: [first, first + rows)
  uint64_t seed;
  bool shuffle;
  int64_t n;              // samples, or tokens in window mode
  int64_t per_epoch;      // batches per epoch
  int nout;               // nsets, or 2 in window mode
  int64_t *out_size;      // floats of output k in one batch
  int64_t slot_floats;    // sum of out_size: the outputs of one batch, one after the other
  int64_t *perm;          // producer only: the order of perm_epoch; NULL unless shuffling samples
  int64_t perm_epoch;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;      // broadcast on every change of the fields below
  float *slot[2];         // written only by the producer while FILLING, read only by the consumer while READY
  int state[2];
  int64_t pos[2];         // the global batch (epoch * per_epoch + batch) of a READY slot
  int64_t want;           // the global batch batcher_next returns next
  int64_t produce;        // the global batch the producer fills next
  uint64_t gen;           // bumped by a seek: a fill started under an older gen is dropped
  bool stop;
};

// Start of window row in batch k of epoch: a token position in
// [0, n - window), so that the window and its targets fit.
static int64_t window_start(const Batcher *b, int64_t epoch, int64_t k, int64_t row) {
  int64_t last = b->n - b->window;
  if (!b->shuffle) {
    int64_t s = (k * b->batch + row) * b->window;
    return s < last ? s : last - 1;
  }
  uint64_t state = mix64(mix64(b->seed ^ 0x13198A2E03707344u) ^ (uint64_t)epoch);
  state = mix64(mix64(state ^ (uint64_t)k) ^ (uint64_t)row);
  return (int64_t)splitmix_below(&state, (uint64_t)last);
}

// Writes global batch p into dst (slot_floats values). Producer thread only.
static void batcher_fill(Batcher *b, int64_t p, float *dst) {
  int64_t epoch = p / b->per_epoch, k = p % b->per_epoch;
  if (b->window > 0) {
    const Dataset *seq = b->sets[0];
    int64_t w = b->window;
    float *inputs = dst, *targets = dst + b->rows * w;   // (rows, window) each
    for (int64_t r = b->first; r < b->first + b->rows; r++) {
      int64_t s = window_start(b, epoch, k, r);
      data_gather(seq, s, w, inputs + (r - b->first) * w);
      data_gather(seq, s + 1, w, targets + (r - b->first) * w);
    }
    return;
  }
  if (b->perm && b->perm_epoch != epoch) {
    perm_fill(b->perm, b->n, b->seed, epoch);
    b->perm_epoch = epoch;
  }
  for (int64_t r = b->first; r < b->first + b->rows; r++) {
    int64_t i = k * b->batch + r, sample = b->perm ? b->perm[i] : i;
    float *o = dst;
    for (int s = 0; s < b->nsets; s++) {
      int64_t size = b->sets[s]->sample_size;
      data_gather(b->sets[s], sample * size, size, o + (r - b->first) * size);
      o += b->out_size[s];
    }
  }
}

static int slot_with_state(const Batcher *b, int state) {
  for (int s = 0; s < 2; s++)
    if (b->state[s] == state) return s;
  return -1;
}

static int slot_holding(const Batcher *b, int64_t p) {
  for (int s = 0; s < 2; s++)
    if (b->state[s] == SLOT_READY && b->pos[s] == p) return s;
  return -1;
}

// The producer: fills free slots with batches produce, produce + 1, ... until
// stop; sleeps on cv while both slots are taken.
static void *batcher_main(void *arg) {
  Batcher *b = arg;
  pthread_mutex_lock(&b->mu);
  for (;;) {
    int s;
    while (!b->stop && (s = slot_with_state(b, SLOT_FREE)) < 0) pthread_cond_wait(&b->cv, &b->mu);
    if (b->stop) break;
    int64_t p = b->produce++;
    uint64_t gen = b->gen;
    b->state[s] = SLOT_FILLING;
    pthread_mutex_unlock(&b->mu);
    batcher_fill(b, p, b->slot[s]);
    pthread_mutex_lock(&b->mu);
    if (gen == b->gen) {
      b->state[s] = SLOT_READY;
      b->pos[s] = p;
    } else {
      b->state[s] = SLOT_FREE;
    }
    pthread_cond_broadcast(&b->cv);
  }
  pthread_mutex_unlock(&b->mu);
  return NULL;
}

// Checks the arguments and fills the shape fields of b (n, per_epoch, nout, out_size).
static int batcher_plan(Batcher *b, Dataset *const *sets, int nsets, char *err, size_t errlen) {
  if (!sets || nsets < 1) return fail(err, errlen, "batcher: no datasets");
  for (int s = 0; s < nsets; s++)
    if (!sets[s] || (!sets[s]->values && !sets[s]->nparts) || sets[s]->n < 1 || sets[s]->sample_size < 1)
      return fail(err, errlen, "batcher: dataset %d is empty", s);
  if (b->batch < 1)
    return fail(err, errlen, "batcher: the batch size must be > 0, not %lld", (long long)b->batch);
  if (b->window < 0)
    return fail(err, errlen, "batcher: the window must be >= 0, not %lld", (long long)b->window);
  if (b->first < 0 || b->rows < 1 || b->rows > b->batch - b->first)
    return fail(err, errlen, "batcher: rows %lld to %lld are not rows of a batch of %lld", (long long)b->first,
                (long long)(b->first + b->rows - 1), (long long)b->batch);
  b->n = sets[0]->n;
  if (b->window > 0) {
    if (nsets != 1)
      return fail(err, errlen, "batcher: windows are drawn from one token sequence, not %d datasets",
                  nsets);
    if (sets[0]->sample_size != 1)
      return fail(err, errlen, "batcher: windows need a sequence of single tokens, not samples of %lld",
                  (long long)sets[0]->sample_size);
    if (b->n <= b->window || b->batch > b->n / b->window)
      return fail(err, errlen,
                  "batcher: %lld tokens are too few for one batch of %lld windows of %lld tokens "
                  "and their targets",
                  (long long)b->n, (long long)b->batch, (long long)b->window);
    b->per_epoch = b->n / (b->batch * b->window);
    b->nout = 2;
  } else {
    for (int s = 1; s < nsets; s++)
      if (sets[s]->n != b->n)
        return fail(err, errlen, "batcher: dataset %d has %lld samples, dataset 0 has %lld", s,
                    (long long)sets[s]->n, (long long)b->n);
    if (b->n < b->batch)
      return fail(err, errlen, "batcher: %lld samples are fewer than one batch of %lld",
                  (long long)b->n, (long long)b->batch);
    b->per_epoch = b->n / b->batch;
    b->nout = nsets;
  }
  b->out_size = calloc((size_t)b->nout, sizeof *b->out_size);
  if (!b->out_size) return fail(err, errlen, "batcher: out of memory");
  // batch <= n samples (or batch * window <= n tokens), so no size overflows
  // while every dataset holds the n * sample_size values it claims.
  b->slot_floats = 0;
  for (int k = 0; k < b->nout; k++) {
    b->out_size[k] = b->rows * (b->window > 0 ? b->window : sets[k]->sample_size);
    b->slot_floats += b->out_size[k];
  }
  return 0;
}

static void batcher_release(Batcher *b) {
  free(b->slot[0]);
  free(b->slot[1]);
  free(b->perm);
  free(b->out_size);
  free(b->sets);
  free(b);
}

Batcher *batcher_new(Dataset *const *sets, int nsets, int64_t batch, int64_t window, uint64_t seed,
                     bool shuffle, char *err, size_t errlen) {
  return batcher_new_rows(sets, nsets, batch, window, seed, shuffle, 0, batch, err, errlen);
}

Batcher *batcher_new_rows(Dataset *const *sets, int nsets, int64_t batch, int64_t window, uint64_t seed,
                          bool shuffle, int64_t first, int64_t rows, char *err, size_t errlen) {
  Batcher *b = calloc(1, sizeof *b);
  if (!b) {
    fail(err, errlen, "batcher: out of memory");
    return NULL;
  }
  b->batch = batch;
  b->first = first;
  b->rows = rows;
  b->window = window;
  b->seed = seed;
  b->shuffle = shuffle;
  b->perm_epoch = -1;
  if (batcher_plan(b, sets, nsets, err, errlen)) {
    batcher_release(b);
    return NULL;
  }
  b->nsets = nsets;
  b->sets = calloc((size_t)nsets, sizeof *b->sets);
  b->slot[0] = malloc((size_t)b->slot_floats * sizeof(float));
  b->slot[1] = malloc((size_t)b->slot_floats * sizeof(float));
  if (shuffle && window == 0) b->perm = malloc((size_t)b->n * sizeof *b->perm);
  if (!b->sets || !b->slot[0] || !b->slot[1] || (shuffle && window == 0 && !b->perm)) {
    fail(err, errlen, "batcher: out of memory");
    batcher_release(b);
    return NULL;
  }
  for (int s = 0; s < nsets; s++) b->sets[s] = sets[s];
  int rc = pthread_mutex_init(&b->mu, NULL);
  if (rc) {
    fail(err, errlen, "batcher: cannot create its mutex: %s", strerror(rc));
    batcher_release(b);
    return NULL;
  }
  rc = pthread_cond_init(&b->cv, NULL);
  if (rc == 0) {
    // The producer blocks every signal, so that signals reach the caller's threads.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&b->thread, NULL, batcher_main, b);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) pthread_cond_destroy(&b->cv);
  }
  if (rc) {
    fail(err, errlen, "batcher: cannot start its thread: %s", strerror(rc));
    pthread_mutex_destroy(&b->mu);
    batcher_release(b);
    return NULL;
  }
  return b;
}

int64_t batcher_batches_per_epoch(const Batcher *b) { return b->per_epoch; }

// Waits for the slot holding batch want, copies it out and frees the slot.
// One consumer thread at a time (batcher_next and batcher_seek are not
// meant to be called concurrently).
int64_t batcher_next(Batcher *b, float *const *out) {
  pthread_mutex_lock(&b->mu);
  int s;
  while ((s = slot_holding(b, b->want)) < 0) pthread_cond_wait(&b->cv, &b->mu);
  int64_t p = b->want;
  pthread_mutex_unlock(&b->mu);
  const float *src = b->slot[s];
  for (int k = 0; k < b->nout; k++) {
    memcpy(out[k], src, (size_t)b->out_size[k] * sizeof *src);
    src += b->out_size[k];
  }
  pthread_mutex_lock(&b->mu);
  b->state[s] = SLOT_FREE;
  b->want++;
  pthread_cond_broadcast(&b->cv);
  pthread_mutex_unlock(&b->mu);
  return p / b->per_epoch;
}

// Drops the batches prepared so far and restarts at (epoch, batch_in_epoch);
// a batch_in_epoch past the epoch's end carries into the following epochs,
// and negative positions count as 0.
void batcher_seek(Batcher *b, int64_t epoch, int64_t batch_in_epoch) {
  if (epoch < 0) epoch = 0;
  if (batch_in_epoch < 0) batch_in_epoch = 0;
  int64_t limit = INT64_MAX / 2;
  if (epoch > limit / b->per_epoch) epoch = limit / b->per_epoch;
  if (batch_in_epoch > limit) batch_in_epoch = limit;
  int64_t p = epoch * b->per_epoch + batch_in_epoch;
  pthread_mutex_lock(&b->mu);
  b->gen++;
  b->want = b->produce = p;
  for (int s = 0; s < 2; s++)
    if (b->state[s] == SLOT_READY) b->state[s] = SLOT_FREE;
  pthread_cond_broadcast(&b->cv);
  pthread_mutex_unlock(&b->mu);
}

// Stops the producer (it finishes a batch in progress, then exits) and joins it.
void batcher_free(Batcher *b) {
  if (!b) return;
  pthread_mutex_lock(&b->mu);
  b->stop = true;
  pthread_cond_broadcast(&b->cv);
  pthread_mutex_unlock(&b->mu);
  pthread_join(b->thread, NULL);
  pthread_cond_destroy(&b->cv);
  pthread_mutex_destroy(&b->mu);
  batcher_release(b);
}
