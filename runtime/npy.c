// npy.c: NumPy's .npy and .npz files (npy.h).
#include "npy.h"

#include "ingot.h"

#include <stdlib.h>
#include <string.h>

static const char *const descrs[DT_COUNT] = {"<f4", "<f2", NULL, "<i4", "<i8", "|u1", "|b1"};

int npy_sniff(const unsigned char head[8]) {
  if (!memcmp(head, "\x93NUMPY", 6)) return 1;
  if (!memcmp(head, "PK\x03\x04", 4) || !memcmp(head, "PK\x05\x06", 4)) return 2;
  return 0;
}

static uint32_t le16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const unsigned char *p) { return le16(p) | le16(p + 2) << 16; }
static uint64_t le64(const unsigned char *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

static bool read_at(FILE *f, uint64_t at, void *p, size_t n) {
  return fseeko(f, (off_t)at, SEEK_SET) == 0 && fread(p, 1, n, f) == n;
}

// ---- the header dict

typedef struct {
  const char *p, *end;
} Cursor;

static void skip_space(Cursor *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n')) c->p++;
}

static bool eat(Cursor *c, char ch) {
  skip_space(c);
  if (c->p < c->end && *c->p == ch) return c->p++, true;
  return false;
}

// A quoted string ('...' or "...") into buf.
static bool quoted(Cursor *c, char *buf, size_t n) {
  skip_space(c);
  if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return false;
  char q = *c->p++;
  size_t k = 0;
  while (c->p < c->end && *c->p != q) {
    if (k + 1 >= n) return false;
    buf[k++] = *c->p++;
  }
  buf[k] = '\0';
  return c->p++ < c->end;
}

// The dict's descr, fortran_order and shape; a message when it is not one
// smelt reads.
static bool parse_dict(const char *text, size_t len, char *descr, bool *fortran, Shape *shape, char *why, size_t n) {
  Cursor c = {text, text + len};
  bool have[3] = {false, false, false};
  if (!eat(&c, '{')) return snprintf(why, n, "its header is not a dict"), false;
  while (!eat(&c, '}')) {
    char key[32];
    if (!quoted(&c, key, sizeof key) || !eat(&c, ':')) return snprintf(why, n, "its header is not a dict"), false;
    skip_space(&c);
    if (!strcmp(key, "descr")) {
      if (!quoted(&c, descr, 32)) return snprintf(why, n, "its dtype is structured, not one smelt has"), false;
      have[0] = true;
    } else if (!strcmp(key, "fortran_order")) {
      size_t left = (size_t)(c.end - c.p);
      if (left >= 4 && !strncmp(c.p, "True", 4)) *fortran = true, c.p += 4;
      else if (left >= 5 && !strncmp(c.p, "False", 5)) *fortran = false, c.p += 5;
      else return snprintf(why, n, "its fortran_order is neither True nor False"), false;
      have[1] = true;
    } else if (!strcmp(key, "shape")) {
      if (!eat(&c, '(')) return snprintf(why, n, "its shape is not a tuple"), false;
      shape->ndim = 0;
      while (!eat(&c, ')')) {
        skip_space(&c);
        int64_t v = 0;
        const char *digits = c.p;
        while (c.p < c.end && *c.p >= '0' && *c.p <= '9' && v <= (int64_t)1 << 40) v = v * 10 + (*c.p++ - '0');
        if (c.p == digits || v > (int64_t)1 << 40) return snprintf(why, n, "its shape is not a tuple of sizes"), false;
        if (shape->ndim == MAX_DIMS) return snprintf(why, n, "it has more than %d dimensions", MAX_DIMS), false;
        shape->d[shape->ndim++] = v;
        if (!eat(&c, ',') && (skip_space(&c), c.p >= c.end || *c.p != ')'))
          return snprintf(why, n, "its shape is not a tuple of sizes"), false;
      }
      have[2] = true;
    } else {
      return snprintf(why, n, "its header has the key '%s', which .npy does not", key), false;
    }
    if (!eat(&c, ',') && (skip_space(&c), c.p >= c.end || *c.p != '}')) return snprintf(why, n, "its header is not a dict"), false;
  }
  if (!have[0] || !have[1] || !have[2]) return snprintf(why, n, "its header lacks descr, fortran_order or shape"), false;
  return true;
}

// The .npy array at offset at of f, whose bytes end at end: its dtype and
// shape, and where its values begin. false with a message in why.
static bool read_array(FILE *f, uint64_t at, uint64_t end, uint32_t *dtype, Shape *shape, uint64_t *values,
                       uint32_t *head_crc, char *why, size_t n) {
  unsigned char head[12];
  if (end - at < 10 || !read_at(f, at, head, 10)) return snprintf(why, n, "it is truncated"), false;
  if (memcmp(head, "\x93NUMPY", 6)) return snprintf(why, n, "it is not a .npy array"), false;
  if (head[6] < 1 || head[6] > 3) return snprintf(why, n, "it is .npy version %d, not 1, 2 or 3", head[6]), false;
  uint64_t pre = head[6] == 1 ? 10 : 12;
  if (pre == 12 && (end - at < 12 || fread(head + 10, 1, 2, f) != 2)) return snprintf(why, n, "it is truncated"), false;
  uint64_t len = head[6] == 1 ? le16(head + 8) : le32(head + 8);
  if (len > end - at - pre || len > 1u << 20) return snprintf(why, n, "it is truncated (in its header)"), false;
  char *text = malloc(len ? len : 1);
  if (!text) return snprintf(why, n, "out of memory"), false;
  bool ok = fread(text, 1, len, f) == len;
  char descr[32];
  bool fortran = false;
  if (!ok) snprintf(why, n, "it is truncated (in its header)");
  ok = ok && parse_dict(text, len, descr, &fortran, shape, why, n);
  *head_crc = smelt_crc32_update(smelt_crc32(head, pre), text, len);
  free(text);
  if (!ok) return false;
  if (fortran) return snprintf(why, n, "it is in Fortran order (fortran_order: True); smelt reads C order (np.ascontiguousarray)"), false;
  *dtype = DT_COUNT;
  for (uint32_t t = 0; t < DT_COUNT; t++)
    if (descrs[t] && !strcmp(descr, descrs[t])) *dtype = t;
  if (*dtype == DT_COUNT) {
    bool big = descr[0] == '>' && (!strcmp(descr + 1, "f4") || !strcmp(descr + 1, "f2") || !strcmp(descr + 1, "i4") ||
                                   !strcmp(descr + 1, "i8"));
    if (big) return snprintf(why, n, "it is big-endian ('%s'); smelt reads little-endian arrays (.astype('<%s'))", descr, descr + 1), false;
    return snprintf(why, n, "its dtype '%s' is not one smelt has (<f4, <f2, <i4, <i8, |u1, |b1)", descr), false;
  }
  uint64_t numel = 1, most = (uint64_t)1 << 32;
  for (int i = 0; i < shape->ndim; i++) {   // bounded as smelt's own records are, checked before each product
    uint64_t d = (uint64_t)shape->d[i];
    if (shape->d[i] < 0 || (numel && d > most) || (d && numel > most / d))
      return snprintf(why, n, "its shape holds more than 2^32 elements"), false;
    numel *= d;
  }
  uint64_t bytes = numel * (uint64_t)dtype_size(*dtype);
  *values = at + pre + len;
  if (end - *values != bytes)
    return snprintf(why, n, "it has %llu bytes of values where its shape needs %llu (truncated or corrupt)",
                    (unsigned long long)(end - *values), (unsigned long long)bytes), false;
  return true;
}

// ---- .npz: the zip's central directory

#define ZIP_EOCD 0x06054b50u
#define ZIP_CENTRAL 0x02014b50u
#define ZIP_LOCAL 0x04034b50u

// The end-of-central-directory record: the directory's offset and count.
static bool find_directory(FILE *f, uint64_t size, uint64_t *at, uint32_t *count) {
  size_t span = size < 65557 ? (size_t)size : 65557;
  unsigned char *tail = malloc(span ? span : 1);
  bool found = false;
  if (tail && span >= 22 && read_at(f, size - span, tail, span))
    for (size_t i = span - 22 + 1; i-- > 0 && !found;)
      if (le32(tail + i) == ZIP_EOCD) {
        *count = le16(tail + i + 10);
        *at = le32(tail + i + 16);
        found = true;
      }
  free(tail);
  return found;
}

// A zip64 extra field's sizes and offset, where the directory has 0xFFFFFFFF.
static void zip64_extra(const unsigned char *x, size_t n, uint64_t *size, uint64_t *csize, uint64_t *offset) {
  for (size_t i = 0; i + 4 <= n;) {
    uint32_t id = le16(x + i), len = le16(x + i + 2);
    if (i + 4 + len > n) return;
    if (id == 1) {
      const unsigned char *p = x + i + 4, *e = p + len;
      uint64_t *fields[3] = {size, csize, offset};
      for (int k = 0; k < 3; k++)
        if (*fields[k] == 0xFFFFFFFFu && p + 8 <= e) *fields[k] = le64(p), p += 8;
      return;
    }
    i += 4 + len;
  }
}

// One member of the directory at *at into t; *at moves to the next.
static bool read_member(FILE *f, const char *path, uint64_t fsize, uint64_t *at, SafeTensor *t, char *err, size_t errlen) {
  unsigned char h[46];
  if (!read_at(f, *at, h, 46) || le32(h) != ZIP_CENTRAL) {
    snprintf(err, errlen, "'%s' is a truncated or corrupt .npz (its zip directory)", path);
    return false;
  }
  uint32_t flags = le16(h + 8), method = le16(h + 10), crc = le32(h + 16), nlen = le16(h + 28), xlen = le16(h + 30),
           clen = le16(h + 32);
  uint64_t csize = le32(h + 20), size = le32(h + 24), local = le32(h + 42);
  unsigned char *rest = malloc((size_t)nlen + xlen + 1);
  if (!rest || fread(rest, 1, (size_t)nlen + xlen, f) != (size_t)nlen + xlen) {
    free(rest);
    snprintf(err, errlen, "'%s' is a truncated or corrupt .npz (its zip directory)", path);
    return false;
  }
  zip64_extra(rest + nlen, xlen, &size, &csize, &local);
  rest[nlen] = '\0';
  char *name = (char *)rest;
  *at += 46 + (uint64_t)nlen + xlen + clen;
  bool ok = false;
  if (nlen < 5 || strcmp(name + nlen - 4, ".npy") || memchr(name, '\0', nlen))
    snprintf(err, errlen, "'%s': member '%s' of the .npz is not a .npy array", path, name);
  else if (method != 0 || (flags & 1))
    snprintf(err, errlen, "'%s': member '%s' is %s; smelt reads .npz files of stored members (np.savez, not "
             "np.savez_compressed)", path, name, flags & 1 ? "encrypted" : "compressed");
  else if (csize != size)
    snprintf(err, errlen, "'%s': member '%s' is corrupt (its sizes differ)", path, name);
  else {
    unsigned char lh[30];
    uint64_t data = local + 30;
    if (!read_at(f, local, lh, 30) || le32(lh) != ZIP_LOCAL || (data += le16(lh + 26) + (uint64_t)le16(lh + 28)) > fsize ||
        size > fsize - data) {
      snprintf(err, errlen, "'%s': member '%s' is truncated or corrupt", path, name);
    } else {
      char why[256];
      uint32_t head_crc;
      name[nlen - 4] = '\0';
      ok = read_array(f, data, data + size, &t->dtype, &t->shape, &t->begin, &head_crc, why, sizeof why);
      if (!ok) snprintf(err, errlen, "'%s': array '%s' cannot be read: %s", path, name, why);
      t->end = data + size;
      t->has_crc = true, t->crc = crc, t->crc_start = head_crc;
    }
  }
  t->name = ok ? strdup(name) : NULL;
  free(rest);
  if (ok && !t->name) snprintf(err, errlen, "out of memory reading '%s'", path), ok = false;
  return ok;
}

static int cmp_begin(const void *a, const void *b) {
  const SafeTensor *x = a, *y = b;
  return x->begin < y->begin ? -1 : x->begin > y->begin;
}

int npy_read_table(FILE *f, int kind, const char *path, uint64_t size, SafeTensor **out, int *n, char *err,
                   size_t errlen) {
  *out = NULL;
  *n = 0;
  if (kind == 1) {
    SafeTensor *t = calloc(1, sizeof *t);
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    size_t len = strlen(base);
    if (len > 4 && !strcmp(base + len - 4, ".npy")) len -= 4;
    char why[256];
    uint32_t head_crc;
    if (!t || !(t->name = strndup(base, len))) {
      free(t);
      snprintf(err, errlen, "out of memory reading '%s'", path);
      return -1;
    }
    if (!read_array(f, 0, size, &t->dtype, &t->shape, &t->begin, &head_crc, why, sizeof why)) {
      snprintf(err, errlen, "'%s' cannot be read: %s", path, why);
      safetensors_free(t, 1);
      return -1;
    }
    t->end = size;
    *out = t;
    *n = 1;
    return 0;
  }
  uint64_t at;
  uint32_t count;
  if (!find_directory(f, size, &at, &count)) {
    snprintf(err, errlen, "'%s' is a truncated or corrupt .npz (no zip directory at its end)", path);
    return -1;
  }
  SafeTensor *t = calloc(count ? count : 1, sizeof *t);
  if (!t) {
    snprintf(err, errlen, "out of memory reading '%s'", path);
    return -1;
  }
  for (uint32_t i = 0; i < count; i++)
    if (!read_member(f, path, size, &at, &t[i], err, errlen)) {
      safetensors_free(t, (int)count);
      return -1;
    }
  qsort(t, count, sizeof *t, cmp_begin);   // read in the order of their bytes
  *out = t;
  *n = (int)count;
  return 0;
}

// ---- writing

// The dict, padded with spaces and a newline so the values start at a
// multiple of 64 bytes, as NumPy writes it.
static int header_text(uint32_t dtype, const Shape *shape, char *buf, size_t n) {
  int k = snprintf(buf, n, "{'descr': '%s', 'fortran_order': False, 'shape': (", descrs[dtype]);
  for (int i = 0; i < shape->ndim; i++)
    k += snprintf(buf + k, n - (size_t)k, "%lld%s", (long long)shape->d[i], shape->ndim == 1 ? "," : i + 1 < shape->ndim ? ", " : "");
  k += snprintf(buf + k, n - (size_t)k, "), }");
  int total = (10 + k + 1 + 63) / 64 * 64;
  while (10 + k + 1 < total) buf[k++] = ' ';
  buf[k++] = '\n';
  buf[k] = '\0';
  return k;
}

uint64_t npy_header_size(uint32_t dtype, const Shape *shape) {
  char text[512];
  return 10 + (uint64_t)header_text(dtype, shape, text, sizeof text);
}

bool npy_dtype_ok(uint32_t dtype, const char *path, const char *name, char *err, size_t errlen) {
  if (dtype < DT_COUNT && descrs[dtype]) return true;
  snprintf(err, errlen, "cannot write '%s': tensor '%s' is %s, which NumPy has no dtype for (write .safetensors or "
           "smelt's own format)", path, name, dtype_name(dtype));
  return false;
}

bool npy_put_header(FILE *f, uint32_t dtype, const Shape *shape, uint32_t *crc, uint64_t *len) {
  char text[512];
  int k = header_text(dtype, shape, text, sizeof text);
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(k & 0xff), (unsigned char)(k >> 8)};
  *crc = smelt_crc32_update(smelt_crc32(pre, 10), text, (uint64_t)k);
  *len = 10 + (uint64_t)k;
  return fwrite(pre, 1, 10, f) == 10 && fwrite(text, 1, (size_t)k, f) == (size_t)k;
}

static void put16(unsigned char *p, uint32_t v) { p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8); }
static void put32(unsigned char *p, uint32_t v) { put16(p, v & 0xffff), put16(p + 2, v >> 16); }

// The date and time fields of every member: 1980-01-01 00:00, so the same
// tensors make the same file.
#define ZIP_DATE 0x0021u

bool npz_put_local(FILE *f, const char *name, uint64_t size, uint64_t *crc_at) {
  unsigned char h[30] = {0};
  size_t nlen = strlen(name) + 4;
  put32(h, ZIP_LOCAL);
  put16(h + 4, 20);
  put16(h + 12, ZIP_DATE);
  put32(h + 18, (uint32_t)size);
  put32(h + 22, (uint32_t)size);
  put16(h + 26, (uint32_t)nlen);
  off_t at = ftello(f);
  *crc_at = (uint64_t)at + 14;
  return at >= 0 && fwrite(h, 1, 30, f) == 30 && fputs(name, f) >= 0 && fputs(".npy", f) >= 0;
}

bool npz_put_crc(FILE *f, uint64_t crc_at, uint32_t crc) {
  unsigned char b[4];
  put32(b, crc);
  off_t back = ftello(f);
  return back >= 0 && fseeko(f, (off_t)crc_at, SEEK_SET) == 0 && fwrite(b, 1, 4, f) == 4 && fseeko(f, back, SEEK_SET) == 0;
}

bool npz_put_directory(FILE *f, int n, const char *const *names, const uint64_t *offsets, const uint64_t *sizes,
                       const uint32_t *crcs) {
  off_t start = ftello(f);
  bool ok = start >= 0;
  for (int i = 0; i < n && ok; i++) {
    unsigned char h[46] = {0};
    put32(h, ZIP_CENTRAL);
    put16(h + 4, 20);
    put16(h + 6, 20);
    put16(h + 14, ZIP_DATE);
    put32(h + 16, crcs[i]);
    put32(h + 20, (uint32_t)sizes[i]);
    put32(h + 24, (uint32_t)sizes[i]);
    put16(h + 28, (uint32_t)strlen(names[i]) + 4);
    put32(h + 42, (uint32_t)offsets[i]);
    ok = fwrite(h, 1, 46, f) == 46 && fputs(names[i], f) >= 0 && fputs(".npy", f) >= 0;
  }
  off_t end = ftello(f);
  unsigned char e[22] = {0};
  put32(e, ZIP_EOCD);
  put16(e + 8, (uint32_t)n);
  put16(e + 10, (uint32_t)n);
  put32(e + 12, (uint32_t)(end - start));
  put32(e + 16, (uint32_t)start);
  return ok && end >= 0 && fwrite(e, 1, 22, f) == 22;
}
