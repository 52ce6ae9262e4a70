// safetensors.c: the safetensors header (safetensors.h), parsed strictly.
//
// The header is untrusted input: the parser accepts exactly the schema above
// (unknown keys, duplicate names, numbers that overflow, bytes that do not
// match a tensor's dtype and shape, holes or overlaps in the buffer are all
// refused with a message) and never reads past the bytes it was given.
#include "safetensors.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const st_dtypes[DT_COUNT] = {"F32", "F16", "BF16", "I32", "I64", "U8", "BOOL"};

typedef struct {
  const char *p, *end;
  char *err;
  size_t errlen;
  const char *path;
  bool failed;
} Parser;

static bool fail(Parser *q, const char *what) {
  if (!q->failed) snprintf(q->err, q->errlen, "'%s' is not a valid safetensors file: %s", q->path, what);
  q->failed = true;
  return false;
}

static void ws(Parser *q) {
  while (q->p < q->end && (*q->p == ' ' || *q->p == '\t' || *q->p == '\n' || *q->p == '\r')) q->p++;
}

static bool eat(Parser *q, char c) {
  ws(q);
  if (q->p < q->end && *q->p == c) {
    q->p++;
    return true;
  }
  return false;
}

static int hex(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static bool hex4(Parser *q, unsigned *v) {
  if (q->end - q->p < 4) return false;
  *v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hex(q->p[i]);
    if (h < 0) return false;
    *v = *v * 16 + (unsigned)h;
  }
  q->p += 4;
  return true;
}

// A JSON string into a malloc'd UTF-8 buffer; NULL after fail().
static char *string(Parser *q) {
  if (!eat(q, '"')) return fail(q, "a name or value is not a string"), NULL;
  size_t cap = 16, n = 0;
  char *s = malloc(cap);
  if (!s) return fail(q, "out of memory"), NULL;
  for (;;) {
    if (q->p >= q->end) goto bad;
    unsigned c = (unsigned char)*q->p++;
    if (c == '"') break;
    if (c < 0x20) goto bad;
    char buf[4];
    int len = 1;
    buf[0] = (char)c;
    if (c == '\\') {
      if (q->p >= q->end) goto bad;
      char e = *q->p++;
      const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t", *k = strchr(from, e);
      if (e && k) {
        buf[0] = to[k - from];
      } else if (e == 'u') {
        unsigned u, lo;
        if (!hex4(q, &u)) goto bad;
        if (u >= 0xDC00 && u < 0xE000) goto bad;
        if (u >= 0xD800 && u < 0xDC00) {   // a surrogate pair
          if (q->end - q->p < 2 || q->p[0] != '\\' || q->p[1] != 'u') goto bad;
          q->p += 2;
          if (!hex4(q, &lo) || lo < 0xDC00 || lo >= 0xE000) goto bad;
          u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (u == 0) goto bad;   // names are C strings
        if (u < 0x80) buf[0] = (char)u;
        else if (u < 0x800) buf[0] = (char)(0xC0 | u >> 6), buf[1] = (char)(0x80 | (u & 63)), len = 2;
        else if (u < 0x10000)
          buf[0] = (char)(0xE0 | u >> 12), buf[1] = (char)(0x80 | (u >> 6 & 63)), buf[2] = (char)(0x80 | (u & 63)), len = 3;
        else
          buf[0] = (char)(0xF0 | u >> 18), buf[1] = (char)(0x80 | (u >> 12 & 63)), buf[2] = (char)(0x80 | (u >> 6 & 63)),
          buf[3] = (char)(0x80 | (u & 63)), len = 4;
      } else {
        goto bad;
      }
    }
    if (n + (size_t)len + 1 > cap) {
      char *t = realloc(s, cap *= 2);
      if (!t) {
        free(s);
        return fail(q, "out of memory"), NULL;
      }
      s = t;
    }
    memcpy(s + n, buf, (size_t)len);
    n += (size_t)len;
  }
  s[n] = '\0';
  return s;
bad:
  free(s);
  return fail(q, "a string is malformed"), NULL;
}

// A non-negative integer below 2^63.
static bool integer(Parser *q, uint64_t *v) {
  ws(q);
  if (q->p >= q->end || *q->p < '0' || *q->p > '9') return fail(q, "a number is not a non-negative integer");
  if (*q->p == '0' && q->end - q->p > 1 && q->p[1] >= '0' && q->p[1] <= '9') return fail(q, "a number has a leading zero");
  *v = 0;
  while (q->p < q->end && *q->p >= '0' && *q->p <= '9') {
    unsigned d = (unsigned)(*q->p++ - '0');
    if (*v > (UINT64_MAX / 2 - d) / 10) return fail(q, "a number is too large");
    *v = *v * 10 + d;
  }
  if (q->p < q->end && (*q->p == '.' || *q->p == 'e' || *q->p == 'E')) return fail(q, "a number is not an integer");
  return true;
}

// [n, n, ...] into v (at most max values).
static int int_list(Parser *q, uint64_t *v, int max, const char *too_many) {
  if (!eat(q, '[')) return fail(q, "a shape or offsets are not a list"), -1;
  int n = 0;
  if (eat(q, ']')) return 0;
  do {
    if (n == max) return fail(q, too_many), -1;
    if (!integer(q, &v[n++])) return -1;
  } while (eat(q, ','));
  if (!eat(q, ']')) return fail(q, "a list is not closed"), -1;
  return n;
}

// {"dtype": ..., "shape": [...], "data_offsets": [b, e]} into t.
static bool tensor_info(Parser *q, SafeTensor *t) {
  if (!eat(q, '{')) return fail(q, "a tensor's entry is not an object");
  bool have[3] = {false, false, false};
  do {
    char *key = string(q);
    if (!key) return false;
    int k = !strcmp(key, "dtype") ? 0 : !strcmp(key, "shape") ? 1 : !strcmp(key, "data_offsets") ? 2 : -1;
    free(key);
    if (k < 0) return fail(q, "a tensor's entry has a key other than dtype, shape and data_offsets");
    if (have[k]) return fail(q, "a tensor's entry has a key twice");
    have[k] = true;
    if (!eat(q, ':')) return fail(q, "a ':' is missing");
    if (k == 0) {
      char *d = string(q);
      if (!d) return false;
      t->dtype = DT_COUNT;
      for (uint32_t i = 0; i < DT_COUNT; i++)
        if (!strcmp(d, st_dtypes[i])) t->dtype = i;
      if (t->dtype == DT_COUNT) {
        char what[160];
        snprintf(what, sizeof what, "'%s' has dtype %.16s, which smelt does not have (F32, F16, BF16, I32, I64, U8, BOOL)",
                 t->name, d);
        free(d);
        return fail(q, what);
      }
      free(d);
    } else if (k == 1) {
      uint64_t dims[MAX_DIMS];
      int n = int_list(q, dims, MAX_DIMS, "a shape has too many dimensions (smelt takes at most 8)");
      if (n < 0) return false;
      t->shape.ndim = n;
      for (int i = 0; i < n; i++) t->shape.d[i] = (int64_t)dims[i];
    } else {
      uint64_t off[2];
      int n = int_list(q, off, 2, "data_offsets is not [begin, end]");
      if (n < 0) return false;
      if (n != 2) return fail(q, "data_offsets is not [begin, end]");
      t->begin = off[0];
      t->end = off[1];
    }
  } while (eat(q, ','));
  if (!eat(q, '}')) return fail(q, "a tensor's entry is not closed");
  if (!have[0] || !have[1] || !have[2]) return fail(q, "a tensor's entry lacks dtype, shape or data_offsets");
  // the bytes must be the dtype's size times the elements, without overflow
  uint64_t bytes = (uint64_t)dtype_size(t->dtype);
  for (int i = 0; i < t->shape.ndim; i++) {
    uint64_t d = (uint64_t)t->shape.d[i];
    if (d && bytes > UINT64_MAX / 2 / d) return fail(q, "a tensor is too large");
    bytes *= d;
  }
  if (t->end < t->begin || t->end - t->begin != bytes) {
    char what[160];
    snprintf(what, sizeof what, "the offsets of '%s' do not span its dtype and shape", t->name);
    return fail(q, what);
  }
  return true;
}

static int by_name(const void *a, const void *b);

// The CRC-32s that __metadata__ gives, by tensor name.
typedef struct {
  char *name;
  uint32_t crc;
} Crc;

typedef struct {
  Crc *v;
  int n, cap;
} Crcs;

static void crcs_free(Crcs *c) {
  for (int i = 0; i < c->n; i++) free(c->v[i].name);
  free(c->v);
}

// A "smelt.crc32.NAME" value: exactly 8 hex digits.
static bool crc_value(Parser *q, const char *key, const char *v, Crcs *c) {
  uint32_t crc = 0;
  bool ok = strlen(v) == 8;
  for (int i = 0; i < 8 && ok; i++) {
    int h = hex(v[i]);
    ok = h >= 0;
    crc = crc << 4 | (uint32_t)(h & 15);
  }
  if (!ok) {
    char what[160];
    snprintf(what, sizeof what, "__metadata__'s '%.100s' is not 8 hex digits", key);
    return fail(q, what);
  }
  if (c->n == c->cap) {
    Crc *g = realloc(c->v, sizeof *g * (size_t)(c->cap = c->cap ? 2 * c->cap : 16));
    if (!g) return fail(q, "out of memory");
    c->v = g;
  }
  c->v[c->n].name = strdup(key + strlen(SAFETENSORS_CRC_KEY));
  if (!c->v[c->n].name) return fail(q, "out of memory");
  c->v[c->n++].crc = crc;
  return true;
}

// "__metadata__": {"key": "value", ...}, checked; smelt's CRC-32s are kept
// in c, other keys passed over.
static bool metadata(Parser *q, Crcs *c) {
  if (!eat(q, '{')) return fail(q, "__metadata__ is not an object");
  if (eat(q, '}')) return true;
  do {
    char *k = string(q);
    if (!k) return false;
    if (!eat(q, ':')) {
      free(k);
      return fail(q, "a ':' is missing");
    }
    char *v = string(q);
    bool ok = v && (strncmp(k, SAFETENSORS_CRC_KEY, strlen(SAFETENSORS_CRC_KEY)) || crc_value(q, k, v, c));
    free(k);
    free(v);
    if (!ok) return false;
  } while (eat(q, ','));
  return eat(q, '}') || fail(q, "__metadata__ is not closed");
}

// Gives each tensor of t (sorted by name) the CRC-32 c names it with; a
// CRC-32 for a name the file does not hold is passed over.
static void crcs_assign(SafeTensor *t, int n, const Crcs *c) {
  for (int i = 0; i < c->n; i++) {
    SafeTensor key = {.name = c->v[i].name};
    SafeTensor *hit = n ? bsearch(&key, t, (size_t)n, sizeof *t, by_name) : NULL;
    if (hit) hit->has_crc = true, hit->crc = c->v[i].crc;
  }
}

static int by_offset(const void *a, const void *b) {
  const SafeTensor *x = a, *y = b;
  return x->begin != y->begin ? (x->begin < y->begin ? -1 : 1) : x->end != y->end ? (x->end < y->end ? -1 : 1) : 0;
}

static int by_name(const void *a, const void *b) { return strcmp(((const SafeTensor *)a)->name, ((const SafeTensor *)b)->name); }

int safetensors_sniff(const unsigned char head[9]) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = n << 8 | head[i];
  return n >= 2 && head[8] == '{';   // a header over the limit is refused by the reader, with its size
}

void safetensors_free(SafeTensor *t, int n) {
  for (int i = 0; t && i < n; i++) free(t[i].name);
  free(t);
}

int safetensors_read_header(FILE *f, const char *path, SafeTensor **out, int *count, uint64_t *data_start, char *err,
                            size_t errlen) {
  *out = NULL;
  *count = 0;
  unsigned char le[8];
  struct stat st;
  if (fread(le, 1, 8, f) != 8 || fstat(fileno(f), &st) != 0) {
    snprintf(err, errlen, "'%s' is truncated", path);
    return -1;
  }
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | le[i];
  uint64_t size = (uint64_t)st.st_size;
  if (hlen > SAFETENSORS_MAX_HEADER || hlen > size - 8) {
    snprintf(err, errlen, "'%s' is not a valid safetensors file: its header size (%llu bytes) is %s", path,
             (unsigned long long)hlen, hlen > SAFETENSORS_MAX_HEADER ? "over the limit of 100 MiB" : "past its end");
    return -1;
  }
  char *text = malloc(hlen ? hlen : 1);
  if (!text) {
    snprintf(err, errlen, "out of memory reading '%s'", path);
    return -1;
  }
  if (fread(text, 1, hlen, f) != hlen) {
    free(text);
    snprintf(err, errlen, "'%s' is truncated", path);
    return -1;
  }
  Parser q = {text, text + hlen, err, errlen, path, false};
  SafeTensor *t = NULL;
  Crcs crcs = {0};
  int n = 0, cap = 0;
  if (!eat(&q, '{')) {
    fail(&q, "the header is not a JSON object");
  } else if (!eat(&q, '}')) {
    bool seen_meta = false;
    do {
      char *name = string(&q);
      if (!name) break;
      if (!eat(&q, ':')) {
        free(name);
        fail(&q, "a ':' is missing");
        break;
      }
      if (!strcmp(name, "__metadata__")) {
        free(name);
        if (seen_meta) {
          fail(&q, "__metadata__ appears twice");
          break;
        }
        seen_meta = true;
        if (!metadata(&q, &crcs)) break;
        continue;
      }
      if (n == cap) {
        SafeTensor *g = realloc(t, sizeof *t * (size_t)(cap = cap ? 2 * cap : 16));
        if (!g) {
          free(name);
          fail(&q, "out of memory");
          break;
        }
        t = g;
      }
      t[n] = (SafeTensor){.name = name};
      if (!tensor_info(&q, &t[n++])) break;
    } while (eat(&q, ','));
    if (!q.failed && !eat(&q, '}')) fail(&q, "the header is not closed");
  }
  ws(&q);
  if (!q.failed && q.p != q.end) fail(&q, "the header has text after its object");
  free(text);
  if (!q.failed && n > 1) {   // one name once
    qsort(t, (size_t)n, sizeof *t, by_name);
    for (int i = 1; i < n && !q.failed; i++)
      if (!strcmp(t[i - 1].name, t[i].name)) fail(&q, "a tensor name appears twice");
  }
  if (!q.failed) crcs_assign(t, n, &crcs);   // t is sorted by name here
  crcs_free(&crcs);
  uint64_t buffer = size - 8 - hlen, at = 0;
  if (!q.failed) {   // the records cover the buffer in order, without holes or overlaps
    if (n > 1) qsort(t, (size_t)n, sizeof *t, by_offset);   // (t is NULL when the header names no tensor)
    for (int i = 0; i < n && !q.failed; i++) {
      if (t[i].begin != at) fail(&q, t[i].begin < at ? "two tensors' bytes overlap" : "the byte buffer has a hole");
      at = t[i].end;
    }
    if (!q.failed && at != buffer) fail(&q, at < buffer ? "the file has bytes that no tensor holds" : "the file is truncated");
  }
  if (q.failed) {
    safetensors_free(t, n);
    return -1;
  }
  *out = t;
  *count = n;
  *data_start = 8 + hlen;
  return 0;
}

static bool put_json_string(FILE *f, const char *s) {
  bool ok = fputc('"', f) != EOF;
  for (const unsigned char *p = (const unsigned char *)s; *p && ok; p++) {
    if (*p == '"' || *p == '\\') ok = fputc('\\', f) != EOF && fputc(*p, f) != EOF;
    else if (*p < 0x20) ok = fprintf(f, "\\u%04x", *p) > 0;
    else ok = fputc(*p, f) != EOF;
  }
  return ok && fputc('"', f) != EOF;
}

// "__metadata__":{"KEY":"VALUE",...,"smelt.crc32.NAME":"00000000",...}: the
// caller's pairs, then a placeholder per tensor, with where each
// placeholder's digits are (from the start of the JSON) in crc_at.
static bool put_metadata(FILE *m, const char *const *names, int n, const char *const *meta, int nmeta,
                         uint64_t *crc_at) {
  bool ok = fputs("\"__metadata__\":{", m) != EOF;
  for (int i = 0; i < nmeta && ok; i++)
    ok = (i == 0 || fputc(',', m) != EOF) && put_json_string(m, meta[2 * i]) && fputc(':', m) != EOF &&
         put_json_string(m, meta[2 * i + 1]);
  for (int i = 0; i < n && ok; i++) {
    size_t len = strlen(SAFETENSORS_CRC_KEY) + strlen(names[i]) + 1;
    char *key = malloc(len);
    ok = key && snprintf(key, len, "%s%s", SAFETENSORS_CRC_KEY, names[i]) >= 0 &&
         (i + nmeta == 0 || fputc(',', m) != EOF) && put_json_string(m, key) && fputs(":\"", m) != EOF;
    free(key);
    long pos = ok ? ftell(m) : -1;
    ok = ok && pos >= 0 && fputs("00000000\"", m) != EOF;
    crc_at[i] = (uint64_t)pos;
  }
  return ok && fputc('}', m) != EOF;
}

bool safetensors_put_crc(FILE *f, uint64_t crc_at, uint32_t crc) {
  char digits[9];
  snprintf(digits, sizeof digits, "%08x", (unsigned)crc);
  off_t here = ftello(f);
  return here >= 0 && fseeko(f, (off_t)crc_at, SEEK_SET) == 0 && fwrite(digits, 1, 8, f) == 8 &&
         fseeko(f, here, SEEK_SET) == 0;
}

int safetensors_write_header(FILE *f, const char *const *names, const uint32_t *dtypes, const Shape *shapes, int n,
                             const char *const *meta, int nmeta, uint64_t *crc_at) {
  // the JSON goes to memory first: its length leads the file
  char *json = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&json, &len);
  if (!m) return -1;
  bool ok = fputc('{', m) != EOF && put_metadata(m, names, n, meta, nmeta, crc_at);
  uint64_t at = 0;
  for (int i = 0; i < n && ok; i++) {
    uint64_t bytes = (uint64_t)shape_numel(&shapes[i]) * (uint64_t)dtype_size(dtypes[i]);
    ok = fputc(',', m) != EOF && put_json_string(m, names[i]) &&
         fprintf(m, ":{\"dtype\":\"%s\",\"shape\":[", st_dtypes[dtypes[i]]) > 0;
    for (int d = 0; d < shapes[i].ndim && ok; d++) ok = fprintf(m, "%s%lld", d ? "," : "", (long long)shapes[i].d[d]) > 0;
    ok = ok && fprintf(m, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)at, (unsigned long long)(at + bytes)) > 0;
    at += bytes;
  }
  ok = ok && fputc('}', m) != EOF;
  while (ok && (8 + ftell(m)) % 8) ok = fputc(' ', m) != EOF;
  ok = fclose(m) == 0 && ok;
  unsigned char le[8];
  for (int i = 0; i < 8; i++) le[i] = (unsigned char)((uint64_t)len >> (8 * i));
  ok = ok && fwrite(le, 1, 8, f) == 8 && fwrite(json, 1, len, f) == len;
  for (int i = 0; i < n; i++) crc_at[i] += 8;   // the JSON starts after its length
  free(json);
  return ok ? 0 : -1;
}
