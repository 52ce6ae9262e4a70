// test_data.c: the data loaders and the batcher (runtime/data.c).
//
// Loaders are fed small files written into a scratch folder, gzipped with the
// gzip command, and the real Fashion-MNIST test files where they are
// installed. Batcher tests use in-memory datasets whose values name their
// sample, so a batch shows which samples it holds and whether they stay aligned.
#include <criterion/criterion.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data.h"
#include "support.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"

static char dir[64];

static void scratch_make(void) {
  snprintf(dir, sizeof dir, "/tmp/smelt-data-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
}

static void scratch_remove(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) cr_log_warn("cannot remove %s", dir);
}

// A path in the scratch folder; a few stay valid at once.
static const char *at(const char *name) {
  static char paths[8][256];
  static int next;
  char *p = paths[next++ % 8];
  snprintf(p, sizeof paths[0], "%s/%s", dir, name);
  return p;
}

static void write_bytes(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f, "cannot write %s", path);
  cr_assert_eq(fwrite(data, 1, len, f), len);
  cr_assert_eq(fclose(f), 0);
}

static void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

// An IDX file: header for (type, dims) followed by len bytes of data.
static void write_idx(const char *path, int type, int ndim, const uint32_t *dims, const void *data,
                      size_t len) {
  unsigned char buf[4096];
  size_t n = 0;
  buf[n++] = 0;
  buf[n++] = 0;
  buf[n++] = (unsigned char)type;
  buf[n++] = (unsigned char)ndim;
  for (int i = 0; i < ndim; i++)
    for (int k = 3; k >= 0; k--) buf[n++] = (unsigned char)(dims[i] >> (8 * k));
  cr_assert_leq(n + len, sizeof buf);
  if (len) memcpy(buf + n, data, len);
  write_bytes(path, buf, n + len);
}

static void gzip_file(const char *src, const char *dst) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "gzip -c '%s' > '%s'", src, dst);
  cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

static void put_be(unsigned char *p, uint64_t v, int size) {
  for (int i = 0; i < size; i++) p[i] = (unsigned char)(v >> (8 * (size - 1 - i)));
}

// ---------------------------------------------------------------- IDX

TEST(data, idx_u8_images, .init = scratch_make, .fini = scratch_remove) {
  unsigned char px[3 * 2 * 2];
  for (int i = 0; i < 12; i++) px[i] = (unsigned char)(i * 20);
  write_idx(at("img"), 0x08, 3, (uint32_t[]){3, 2, 2}, px, sizeof px);
  Dataset d;
  char err[256] = "";
  cr_assert_eq(data_load_idx(at("img"), 0.5, &d, err, sizeof err), 0, "%s", err);
  cr_expect_eq(d.n, 3);
  cr_expect_eq(d.ndim, 2);
  cr_expect_eq(d.dims[0], 2);
  cr_expect_eq(d.dims[1], 2);
  cr_expect_eq(d.sample_size, 4);
  for (int i = 0; i < 12; i++) cr_expect_float_eq(d.values[i], i * 10.0f, 0, "value %d", i);
  data_free(&d);
  cr_expect_null(d.values);
}

TEST(data, idx_every_element_type, .init = scratch_make, .fini = scratch_remove) {
  const double want[4] = {-3, 0, 7, -128};
  struct { int type, size; } types[] = {{0x09, 1}, {0x0B, 2}, {0x0C, 4}, {0x0D, 4}, {0x0E, 8}};
  for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
    unsigned char data[4 * 8];
    for (int i = 0; i < 4; i++) {
      uint64_t bits;
      if (types[t].type == 0x0D) {
        float f = (float)want[i];
        uint32_t u;
        memcpy(&u, &f, 4);
        bits = u;
      } else if (types[t].type == 0x0E) {
        memcpy(&bits, &want[i], 8);
      } else {
        bits = (uint64_t)(int64_t)want[i];
      }
      put_be(data + i * types[t].size, bits, types[t].size);
    }
    write_idx(at("v"), types[t].type, 1, (uint32_t[]){4}, data, 4 * (size_t)types[t].size);
    Dataset d;
    char err[256] = "";
    cr_assert_eq(data_load_idx(at("v"), 2.0, &d, err, sizeof err), 0, "type %#x: %s",
                 types[t].type, err);
    cr_expect_eq(d.n, 4);
    cr_expect_eq(d.ndim, 0);
    cr_expect_eq(d.sample_size, 1);
    for (int i = 0; i < 4; i++)
      cr_expect_float_eq(d.values[i], (float)(2 * want[i]), 0, "type %#x value %d: %g",
                         types[t].type, i, d.values[i]);
    data_free(&d);
  }
}

TEST(data, idx_gzipped_equals_raw, .init = scratch_make, .fini = scratch_remove) {
  unsigned char px[5 * 3];
  for (int i = 0; i < 15; i++) px[i] = (unsigned char)(255 - i * 7);
  write_idx(at("raw"), 0x08, 2, (uint32_t[]){5, 3}, px, sizeof px);
  gzip_file(at("raw"), at("raw.gz"));
  Dataset a, b;
  char err[256] = "";
  cr_assert_eq(data_load_idx(at("raw"), 1.0 / 255, &a, err, sizeof err), 0, "%s", err);
  cr_assert_eq(data_load_idx(at("raw.gz"), 1.0 / 255, &b, err, sizeof err), 0, "%s", err);
  cr_expect_eq(b.n, 5);
  cr_expect_eq(b.sample_size, 3);
  cr_expect_eq(memcmp(a.values, b.values, sizeof(float) * 15), 0);
  cr_expect_float_eq(b.values[0], 1.0f, 1e-7);
  data_free(&a);
  data_free(&b);
}

static void expect_error(int rc, const char *err, const char *want) {
  cr_expect_eq(rc, -1, "loading succeeded where it must fail with \"%s\"", want);
  cr_expect(strstr(err, want) != NULL, "error \"%s\" does not say \"%s\"", err, want);
}

TEST(data, idx_missing_file, .init = scratch_make, .fini = scratch_remove) {
  Dataset d;
  char err[512] = "", want[512];
  int rc = data_load_idx(at("nope"), 1, &d, err, sizeof err);
  snprintf(want, sizeof want, "cannot read '%s': No such file or directory", at("nope"));
  cr_expect_eq(rc, -1);
  cr_expect_str_eq(err, want);
  cr_expect_null(d.values);
  data_free(&d);
}

TEST(data, idx_wrong_magic, .init = scratch_make, .fini = scratch_remove) {
  Dataset d;
  char err[512] = "", want[512];
  write_text(at("x.csv"), "1,2,3\n");
  snprintf(want, sizeof want, "'%s' is not an IDX file", at("x.csv"));
  expect_error(data_load_idx(at("x.csv"), 1, &d, err, sizeof err), err, want);
  // a right-looking magic with an unknown type code
  write_bytes(at("t"), (unsigned char[]){0, 0, 0x07, 1, 0, 0, 0, 1, 5}, 9);
  expect_error(data_load_idx(at("t"), 1, &d, err, sizeof err), err, "is not an IDX file");
  write_bytes(at("e"), "", 0);
  expect_error(data_load_idx(at("e"), 1, &d, err, sizeof err), err, "is not an IDX file");
  write_bytes(at("z"), (unsigned char[]){0, 0, 0x08, 0}, 4);
  expect_error(data_load_idx(at("z"), 1, &d, err, sizeof err), err, "0 dimensions");
  // a folder
  expect_error(data_load_idx(dir, 1, &d, err, sizeof err), err, "Is a directory");
}

TEST(data, idx_truncated_and_trailing, .init = scratch_make, .fini = scratch_remove) {
  unsigned char px[100];
  memset(px, 9, sizeof px);
  Dataset d;
  char err[512] = "";
  write_idx(at("short"), 0x08, 2, (uint32_t[]){10, 10}, px, 99);
  expect_error(data_load_idx(at("short"), 1, &d, err, sizeof err), err, "is truncated");
  cr_expect(strstr(err, "only 99 bytes follow") != NULL, "%s", err);
  cr_expect_null(d.values);
  write_idx(at("long"), 0x08, 2, (uint32_t[]){9, 10}, px, 100);
  expect_error(data_load_idx(at("long"), 1, &d, err, sizeof err), err,
               "has data after the 90 values its header announces");
  // the header itself cut short
  write_bytes(at("head"), (unsigned char[]){0, 0, 0x08, 3, 0, 0, 0, 2, 0}, 9);
  expect_error(data_load_idx(at("head"), 1, &d, err, sizeof err), err,
               "is truncated: its header ends early");
  // short data inside a whole gzip stream
  write_idx(at("short2"), 0x0B, 1, (uint32_t[]){50}, px, 99);
  gzip_file(at("short2"), at("short2.gz"));
  expect_error(data_load_idx(at("short2.gz"), 1, &d, err, sizeof err), err, "is truncated");
}

// A header announcing a billion values over a file of a few bytes is refused
// as truncated, raw or gzipped. That the loader does not first set aside
// memory for them all is checked by fuzz-data's seed idx-header-overstates.idx
// (the fuzz smoke run's memory limit is 2 GB).
TEST(data, idx_header_overstating_the_file, .init = scratch_make, .fini = scratch_remove) {
  Dataset d;
  char err[512] = "";
  write_idx(at("huge"), 0x08, 2, (uint32_t[]){1 << 15, 1 << 15}, (unsigned char[]){1, 2, 3}, 3);
  expect_error(data_load_idx(at("huge"), 1, &d, err, sizeof err), err, "is truncated");
  cr_expect(strstr(err, "only 3 bytes follow") != NULL, "%s", err);
  gzip_file(at("huge"), at("huge.gz"));
  expect_error(data_load_idx(at("huge.gz"), 1, &d, err, sizeof err), err, "is truncated");
  cr_expect(strstr(err, "only 3 bytes follow") != NULL, "%s", err);
  cr_expect_null(d.values);
}

TEST(data, idx_truncated_gzip_stream, .init = scratch_make, .fini = scratch_remove) {
  // incompressible data, so that cutting the .gz cuts the stream
  unsigned char px[2000];
  uint64_t s = 1;
  for (size_t i = 0; i < sizeof px; i++) {
    s = s * 6364136223846793005u + 1442695040888963407u;
    px[i] = (unsigned char)(s >> 56);
  }
  FILE *f = fopen(at("big"), "wb");
  cr_assert_not_null(f);
  fwrite((unsigned char[]){0, 0, 0x08, 1, 0, 0, 0x07, 0xD0}, 1, 8, f);
  fwrite(px, 1, sizeof px, f);
  fclose(f);
  gzip_file(at("big"), at("big.gz"));
  struct stat st;
  cr_assert_eq(stat(at("big.gz"), &st), 0);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "head -c %lld '%s' > '%s'", (long long)st.st_size / 2, at("big.gz"),
           at("cut.gz"));
  cr_assert_eq(system(cmd), 0);
  Dataset d;
  char err[512] = "";
  cr_assert_eq(data_load_idx(at("big.gz"), 1, &d, err, sizeof err), 0, "%s", err);
  cr_expect_eq(d.n, 2000);
  cr_expect_float_eq(d.values[1999], px[1999], 0);
  data_free(&d);
  expect_error(data_load_idx(at("cut.gz"), 1, &d, err, sizeof err), err, "is truncated");
  // gzip magic followed by garbage
  write_bytes(at("bad.gz"), (unsigned char[]){0x1f, 0x8b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 12);
  expect_error(data_load_idx(at("bad.gz"), 1, &d, err, sizeof err), err, "bad.gz");
}

TEST(data, idx_too_large, .init = scratch_make, .fini = scratch_remove) {
  write_idx(at("huge"), 0x08, 3, (uint32_t[]){65536, 256, 256}, NULL, 0);
  Dataset d;
  char err[512] = "";
  expect_error(data_load_idx(at("huge"), 1, &d, err, sizeof err), err, "is too large");
  write_idx(at("zero"), 0x08, 2, (uint32_t[]){0, 5}, NULL, 0);
  expect_error(data_load_idx(at("zero"), 1, &d, err, sizeof err), err, "holds no values");
}

TEST(data, fashion_mnist_labels) {
  if (access(FMNIST, R_OK) != 0) cr_skip_test("no Fashion-MNIST in " FMNIST);
  Dataset d;
  char err[512] = "";
  cr_assert_eq(data_load_idx(FMNIST "/t10k-labels-idx1-ubyte.gz", 1, &d, err, sizeof err), 0, "%s",
               err);
  cr_expect_eq(d.n, 10000);
  cr_expect_eq(d.ndim, 0);
  cr_expect_eq(d.sample_size, 1);
  int count[10] = {0};
  for (int64_t i = 0; i < d.n; i++) {
    float v = d.values[i];
    cr_assert(v >= 0 && v <= 9 && v == floorf(v), "label %lld is %g", (long long)i, v);
    count[(int)v]++;
  }
  for (int c = 0; c < 10; c++) cr_expect_eq(count[c], 1000, "class %d: %d", c, count[c]);
  data_free(&d);
}

TEST(data, fashion_mnist_images) {
  if (access(FMNIST, R_OK) != 0) cr_skip_test("no Fashion-MNIST in " FMNIST);
  Dataset d;
  char err[512] = "";
  cr_assert_eq(data_load_idx(FMNIST "/t10k-images-idx3-ubyte.gz", 1.0 / 255, &d, err, sizeof err),
               0, "%s", err);
  cr_expect_eq(d.n, 10000);
  cr_expect_eq(d.ndim, 2);
  cr_expect_eq(d.dims[0], 28);
  cr_expect_eq(d.dims[1], 28);
  cr_expect_eq(d.sample_size, 784);
  float lo = 1, hi = 0;
  double sum = 0;
  for (int64_t i = 0; i < d.n * d.sample_size; i++) {
    float v = d.values[i];
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
    sum += v;
  }
  cr_expect_eq(lo, 0.0f);
  cr_expect_leq(hi, 1.0f);
  cr_expect_geq(hi, 0.99f);
  double mean = sum / (double)(d.n * d.sample_size);
  cr_expect(mean > 0.2 && mean < 0.4, "mean pixel %g", mean);   // Fashion-MNIST's is about 0.286
  data_free(&d);
}

// ---------------------------------------------------------------- CSV

TEST(data, csv_with_and_without_header, .init = scratch_make, .fini = scratch_remove) {
  write_text(at("h.csv"), "a, b ,c\r\n1,2,3\r\n 4.5 ,-6,7e1\r\n\r\n");
  write_text(at("n.csv"), "1,2,3\n4.5,-6,7e1");
  const char *names[] = {"h.csv", "n.csv"};
  const float want[] = {2, 4, 6, 9, -12, 140};
  for (int f = 0; f < 2; f++) {
    Dataset d;
    char err[512] = "";
    cr_assert_eq(data_load_csv(at(names[f]), 2, &d, err, sizeof err), 0, "%s", err);
    cr_expect_eq(d.n, 2, "%s", names[f]);
    cr_expect_eq(d.ndim, 1);
    cr_expect_eq(d.dims[0], 3);
    cr_expect_eq(d.sample_size, 3);
    for (int i = 0; i < 6; i++) cr_expect_float_eq(d.values[i], want[i], 0, "%s %d", names[f], i);
    data_free(&d);
  }
}

TEST(data, csv_gzipped, .init = scratch_make, .fini = scratch_remove) {
  write_text(at("x.csv"), "x\n1\n2\n3\n");
  gzip_file(at("x.csv"), at("x.csv.gz"));
  Dataset d;
  char err[512] = "";
  cr_assert_eq(data_load_csv(at("x.csv.gz"), 1, &d, err, sizeof err), 0, "%s", err);
  cr_expect_eq(d.n, 3);
  cr_expect_float_eq(d.values[2], 3, 0);
  data_free(&d);
}

// gzip(1) decodes concatenated members as one file and warns of anything
// else after a member: bytes that are not gzip after the stream are an error,
// never ignored, raw or in the middle of a pair of members.
TEST(data, gzip_trailing_garbage_is_an_error, .init = scratch_make, .fini = scratch_remove) {
  write_text(at("x.csv"), "1\n2\n3\n");
  gzip_file(at("x.csv"), at("x.csv.gz"));
  char cmd[800];
  snprintf(cmd, sizeof cmd, "cd '%s' && cat x.csv.gz x.csv.gz > two.csv.gz && cp x.csv.gz junk.csv.gz && "
           "printf 'JUNK' >> junk.csv.gz && cp x.csv.gz j1.csv.gz && printf 'J' >> j1.csv.gz", dir);
  cr_assert_eq(system(cmd), 0);
  Dataset d;
  char err[512] = "", want[512];
  cr_assert_eq(data_load_csv(at("two.csv.gz"), 1, &d, err, sizeof err), 0, "%s", err);
  cr_expect_eq(d.n, 6, "two members are one file");
  data_free(&d);
  snprintf(want, sizeof want, "'%s' has data after its gzip stream", at("junk.csv.gz"));
  expect_error(data_load_csv(at("junk.csv.gz"), 1, &d, err, sizeof err), err, want);
  snprintf(want, sizeof want, "'%s' has data after its gzip stream", at("j1.csv.gz"));
  expect_error(data_load_csv(at("j1.csv.gz"), 1, &d, err, sizeof err), err, want);
  unsigned char px[20];
  memset(px, 3, sizeof px);
  write_idx(at("i"), 0x08, 1, (uint32_t[]){20}, px, sizeof px);
  gzip_file(at("i"), at("i.gz"));
  snprintf(cmd, sizeof cmd, "printf 'JUNKJUNK' >> '%s'", at("i.gz"));
  cr_assert_eq(system(cmd), 0);
  snprintf(want, sizeof want, "'%s' has data after its gzip stream", at("i.gz"));
  expect_error(data_load_idx(at("i.gz"), 1, &d, err, sizeof err), err, want);
}

TEST(data, csv_errors, .init = scratch_make, .fini = scratch_remove) {
  Dataset d;
  char err[512] = "", want[512];
  write_text(at("ragged.csv"), "x,y\n1,2\n3,4\n5\n");
  snprintf(want, sizeof want, "'%s' line 4 has 1 fields, but line 2 has 2", at("ragged.csv"));
  expect_error(data_load_csv(at("ragged.csv"), 1, &d, err, sizeof err), err, want);
  write_text(at("bad.csv"), "1,2\n3,4\n5,x6\n");
  snprintf(want, sizeof want, "'%s' line 3, field 2: 'x6' is not a number", at("bad.csv"));
  expect_error(data_load_csv(at("bad.csv"), 1, &d, err, sizeof err), err, want);
  write_text(at("empty.csv"), "1,\n");   // a number in it: not a header
  expect_error(data_load_csv(at("empty.csv"), 1, &d, err, sizeof err), err,
               "line 1, field 2: '' is not a number (a header line holds only names, no numbers)");
  write_text(at("gap.csv"), "1,2\n3,,4\n");
  expect_error(data_load_csv(at("gap.csv"), 1, &d, err, sizeof err), err,
               "line 2, field 2: '' is not a number");
  write_text(at("only.csv"), "a,b\n");
  expect_error(data_load_csv(at("only.csv"), 1, &d, err, sizeof err), err,
               "holds no rows of numbers");
  snprintf(want, sizeof want, "cannot read '%s': No such file or directory", at("none.csv"));
  expect_error(data_load_csv(at("none.csv"), 1, &d, err, sizeof err), err, want);
  cr_expect_null(d.values);
}

// strtod also reads "nan", "inf", hex and overflows; none of them is data.
TEST(data, csv_values_are_finite_decimal_numbers, .init = scratch_make, .fini = scratch_remove) {
  static const struct { const char *value, *why; } cases[] = {
      {"nan", "is not a number"}, {"NaN", "is not a number"}, {"inf", "is not a number"},
      {"-infinity", "is not a number"}, {"0x10", "is not a number"}, {"1e", "is not a number"},
      {"1e999", "is beyond f32's range"}, {"-3.5e38", "is beyond f32's range"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char text[128], want[512], err[512] = "";
    snprintf(text, sizeof text, "x,y\n1,2\n3,%s\n", cases[i].value);
    write_text(at("v.csv"), text);
    Dataset d;
    snprintf(want, sizeof want, "'%s' line 3, field 2: '%s' %s", at("v.csv"), cases[i].value, cases[i].why);
    expect_error(data_load_csv(at("v.csv"), 1, &d, err, sizeof err), err, want);
  }
  // what is a number still is one, also with the scale taking it near the edge
  write_text(at("ok.csv"), "-.5,+2.,3e38,1E-3\n");
  Dataset d;
  char err[512] = "";
  cr_assert_eq(data_load_csv(at("ok.csv"), 1, &d, err, sizeof err), 0, "%s", err);
  cr_expect_float_eq(d.values[0], -0.5f, 0);
  cr_expect_float_eq(d.values[1], 2.0f, 0);
  cr_expect_float_eq(d.values[2], 3e38f, 0);
  cr_expect_float_eq(d.values[3], 1e-3f, 0);
  data_free(&d);
  expect_error(data_load_csv(at("ok.csv"), 10, &d, err, sizeof err), err, "field 3: '3e38' is beyond f32's range");
}

// A header holds names only: a first line with a typo in a number is an error,
// not a header dropped without a word; a UTF-8 byte order mark is skipped.
TEST(data, csv_header_rule_and_bom, .init = scratch_make, .fini = scratch_remove) {
  Dataset d;
  char err[512] = "", want[512];
  write_text(at("typo.csv"), "0.5,O.3\n1,2\n");
  snprintf(want, sizeof want, "'%s' line 1, field 2: 'O.3' is not a number (a header line holds only names", at("typo.csv"));
  expect_error(data_load_csv(at("typo.csv"), 1, &d, err, sizeof err), err, want);
  write_text(at("bom.csv"), "\xEF\xBB\xBF" "1,2\n3,4\n");
  cr_assert_eq(data_load_csv(at("bom.csv"), 1, &d, err, sizeof err), 0, "%s", err);
  cr_expect_eq(d.n, 2);
  cr_expect_float_eq(d.values[0], 1, 0);
  data_free(&d);
  write_text(at("bomh.csv"), "\xEF\xBB\xBF" "a,b\n3,4\n");
  cr_assert_eq(data_load_csv(at("bomh.csv"), 1, &d, err, sizeof err), 0, "%s", err);
  cr_expect_eq(d.n, 1);
  cr_expect_float_eq(d.values[0], 3, 0);
  data_free(&d);
}

// A FIFO would block forever and /dev/zero never ends: only regular files are data.
TEST(data, pipes_and_devices_are_refused, .init = scratch_make, .fini = scratch_remove) {
  Dataset d;
  char err[512] = "", want[512];
  cr_assert_eq(mkfifo(at("fifo"), 0600), 0);
  snprintf(want, sizeof want, "cannot read '%s': it is not a regular file", at("fifo"));
  expect_error(data_load_csv(at("fifo"), 1, &d, err, sizeof err), err, want);
  expect_error(data_load_idx(at("fifo"), 1, &d, err, sizeof err), err, want);
  expect_error(data_load_csv("/dev/zero", 1, &d, err, sizeof err), err,
               "cannot read '/dev/zero': it is not a regular file");
  expect_error(data_load_text("/dev/zero", 0, 1, &d, err, sizeof err), err, "it is not a regular file");
}

TEST(data, idx_floats_must_be_finite, .init = scratch_make, .fini = scratch_remove) {
  float f[3] = {1, NAN, 2};
  unsigned char data[12];
  for (int i = 0; i < 3; i++) {
    uint32_t u;
    memcpy(&u, &f[i], 4);
    put_be(data + 4 * i, u, 4);
  }
  write_idx(at("nan"), 0x0D, 1, (uint32_t[]){3}, data, sizeof data);
  Dataset d;
  char err[512] = "", want[512];
  snprintf(want, sizeof want, "'%s' value 1 is not a finite f32", at("nan"));
  expect_error(data_load_idx(at("nan"), 1, &d, err, sizeof err), err, want);
  double big[1] = {1e300};
  uint64_t bits;
  memcpy(&bits, big, 8);
  unsigned char data8[8];
  put_be(data8, bits, 8);
  write_idx(at("big"), 0x0E, 1, (uint32_t[]){1}, data8, sizeof data8);
  expect_error(data_load_idx(at("big"), 1, &d, err, sizeof err), err, "value 0 is not a finite f32");
}

// ---------------------------------------------------------------- tokens and text

// Token i of a token stream, as the batcher reads it.
static float tok(const Dataset *d, int64_t i) {
  cr_assert(i >= 0 && i < d->n, "token %lld of %lld", (long long)i, (long long)d->n);
  float v;
  data_gather(d, i, 1, &v);
  return v;
}

TEST(data, tokens_u16_and_u32, .init = scratch_make, .fini = scratch_remove) {
  unsigned char b16[20], b32[40];
  for (int i = 0; i < 10; i++) {
    unsigned v16 = 1000u * (unsigned)i + 7, v32 = 100000u * (unsigned)i + 3;
    b16[2 * i] = (unsigned char)v16;
    b16[2 * i + 1] = (unsigned char)(v16 >> 8);
    for (int k = 0; k < 4; k++) b32[4 * i + k] = (unsigned char)(v32 >> (8 * k));
  }
  write_bytes(at("t16"), b16, sizeof b16);
  write_bytes(at("t32"), b32, sizeof b32);
  Dataset d;
  char err[512] = "";
  cr_assert_eq(data_load_tokens(at("t16"), 2, 0, 1, &d, err, sizeof err), 0, "%s", err);
  cr_expect_eq(d.n, 10);
  cr_expect_eq(d.sample_size, 1);
  cr_expect_eq(d.ndim, 0);
  for (int i = 0; i < 10; i++) cr_expect_float_eq(tok(&d, i), 1000 * i + 7, 0);
  data_free(&d);
  // to = 0.7 and from = 0.7 split the file without overlap or gap
  cr_assert_eq(data_load_tokens(at("t32"), 4, 0, 0.7, &d, err, sizeof err), 0, "%s", err);
  cr_expect_eq(d.n, 7);
  cr_expect_float_eq(tok(&d, 6), 600003, 0);
  data_free(&d);
  cr_assert_eq(data_load_tokens(at("t32"), 4, 0.7, 1, &d, err, sizeof err), 0, "%s", err);
  cr_expect_eq(d.n, 3);
  cr_expect_float_eq(tok(&d, 0), 700003, 0);
  cr_expect_float_eq(tok(&d, 2), 900003, 0);
  data_free(&d);
  cr_assert_eq(data_load_tokens(at("t16"), 2, 0.25, 0.55, &d, err, sizeof err), 0, "%s", err);
  cr_expect_eq(d.n, 3);
  cr_expect_float_eq(tok(&d, 0), 2007, 0);
  data_free(&d);
}

TEST(data, tokens_errors, .init = scratch_make, .fini = scratch_remove) {
  Dataset d;
  char err[512] = "";
  write_bytes(at("odd"), "abc", 3);
  expect_error(data_load_tokens(at("odd"), 2, 0, 1, &d, err, sizeof err), err,
               "holds 3 bytes, not a whole number of 2-byte tokens");
  write_bytes(at("four"), "abcd", 4);
  expect_error(data_load_tokens(at("four"), 3, 0, 1, &d, err, sizeof err), err,
               "tokens are 2 or 4 bytes, not 3");
  expect_error(data_load_tokens(at("four"), 2, 0.5, 0.5, &d, err, sizeof err), err,
               "must satisfy 0 <= from < to <= 1");
  expect_error(data_load_tokens(at("four"), 2, 0, 1.5, &d, err, sizeof err), err,
               "must satisfy 0 <= from < to <= 1");
  expect_error(data_load_tokens(at("four"), 2, 0.1, 0.4, &d, err, sizeof err), err,
               "keeps none of its 2 tokens");
  write_bytes(at("big"), (unsigned char[]){1, 0, 0, 1}, 4);
  expect_error(data_load_tokens(at("big"), 4, 0, 1, &d, err, sizeof err), err,
               "token 16777217 at index 0");
  write_bytes(at("none"), "", 0);
  expect_error(data_load_tokens(at("none"), 2, 0, 1, &d, err, sizeof err), err, "holds no tokens");
  cr_expect_null(d.values);
}

TEST(data, text_file_and_folder, .init = scratch_make, .fini = scratch_remove) {
  write_text(at("b"), "BB");
  write_text(at("a"), "A\xff");
  write_text(at("c.txt"), "skipped: has a dot");
  write_text(at("C"), "c");
  cr_assert_eq(mkdir(at("d"), 0700), 0);
  write_text(at("d/e"), "skipped: in a subfolder");
  Dataset d;
  char err[512] = "";
  cr_assert_eq(data_load_text(dir, 0, 1, &d, err, sizeof err), 0, "%s", err);
  const char *want = "cA\xff" "BB";   // strcmp order: "C" < "a" < "b"
  cr_assert_eq(d.n, 5);
  cr_expect_eq(d.sample_size, 1);
  for (int i = 0; i < 5; i++)
    cr_expect_float_eq(tok(&d, i), (unsigned char)want[i], 0, "byte %d: %g", i, tok(&d, i));
  data_free(&d);
  cr_assert_eq(data_load_text(at("c.txt"), 0.5, 1, &d, err, sizeof err), 0, "%s", err);
  cr_expect_eq(d.n, 9);
  cr_expect_float_eq(tok(&d, 0), 'h', 0);   // "skipped: has a dot"[9]
  data_free(&d);
  cr_assert_eq(mkdir(at("empty"), 0700), 0);
  write_text(at("empty/x.y"), "dotted");
  expect_error(data_load_text(at("empty"), 0, 1, &d, err, sizeof err), err,
               "holds no text files");
  expect_error(data_load_text(at("a"), 0.1, 0.2, &d, err, sizeof err), err, "keeps none");
  expect_error(data_load_text(at("none"), 0, 1, &d, err, sizeof err), err,
               "No such file or directory");
}

// A token file costs its page cache, not a heap copy: loading 20 MB of u16
// tokens (10M tokens, 40 MB as f32) must leave the heap within 1 MB of where
// it was.
TEST(data, tokens_are_mapped_not_copied, .init = scratch_make, .fini = scratch_remove) {
  const int64_t n = 10 * 1000 * 1000;
  unsigned char *raw = malloc((size_t)n * 2);
  cr_assert_not_null(raw);
  for (int64_t i = 0; i < n; i++) raw[2 * i] = (unsigned char)i, raw[2 * i + 1] = (unsigned char)(i >> 8);
  write_bytes(at("big16"), raw, (size_t)n * 2);
  free(raw);
  Dataset d;
  char err[512] = "";
  size_t before = mallinfo2().uordblks;
  cr_assert_eq(data_load_tokens(at("big16"), 2, 0, 1, &d, err, sizeof err), 0, "%s", err);
  size_t after = mallinfo2().uordblks;
  cr_expect_null(d.values);
  cr_expect_eq(d.n, n);
  cr_expect_lt(after > before ? after - before : 0, (size_t)1 << 20, "the load took %zu bytes of heap",
               after - before);
  cr_expect_float_eq(tok(&d, n - 1), (float)((n - 1) & 0xffff), 0);
  cr_expect_eq(d.max_token, 0xffff);
  data_free(&d);
}

// Batches drawn from a mapped token stream are the batches of the same
// tokens held as f32: the cast happens at gather time and changes nothing.
TEST(data, token_stream_batches_match_f32, .init = scratch_make, .fini = scratch_remove) {
  enum { N = 5000 };
  static unsigned char raw[N * 4];
  static float f[N];
  for (int i = 0; i < N; i++) {
    uint32_t v = (uint32_t)(i * 2654435761u) % 16777216u;
    for (int k = 0; k < 4; k++) raw[4 * i + k] = (unsigned char)(v >> (8 * k));
    f[i] = (float)v;
  }
  write_bytes(at("t32"), raw, sizeof raw);
  Dataset d, ref = {.n = N, .ndim = 0, .sample_size = 1, .values = f};
  char err[512] = "";
  cr_assert_eq(data_load_tokens(at("t32"), 4, 0, 1, &d, err, sizeof err), 0, "%s", err);
  Batcher *a = batcher_new((Dataset *[]){&d}, 1, 4, 16, 7, true, err, sizeof err);
  Batcher *b = batcher_new((Dataset *[]){&ref}, 1, 4, 16, 7, true, err, sizeof err);
  cr_assert(a && b, "%s", err);
  float ia[64], ta[64], ib[64], tb[64];
  for (int k = 0; k < 100; k++) {
    batcher_next(a, (float *[]){ia, ta});
    batcher_next(b, (float *[]){ib, tb});
    cr_assert_eq(memcmp(ia, ib, sizeof ia), 0, "batch %d inputs differ", k);
    cr_assert_eq(memcmp(ta, tb, sizeof ta), 0, "batch %d targets differ", k);
  }
  batcher_free(a);
  batcher_free(b);
  data_free(&d);
}

// ---------------------------------------------------------------- llm.c shards

// An llm.c shard: the 256-int32 header (magic, version, count) and n u16
// tokens first, first + 1, ...; count is what the header announces.
static void write_shard(const char *path, uint32_t magic, uint32_t version, uint32_t count,
                        int n, int first) {
  size_t len = 1024 + 2 * (size_t)n;
  unsigned char *buf = calloc(1, len);
  cr_assert_not_null(buf);
  uint32_t head[3] = {magic, version, count};
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < 4; k++) buf[4 * i + k] = (unsigned char)(head[i] >> (8 * k));
  for (int i = 0; i < n; i++) {
    buf[1024 + 2 * i] = (unsigned char)(first + i);
    buf[1024 + 2 * i + 1] = (unsigned char)((first + i) >> 8);
  }
  write_bytes(path, buf, len);
  free(buf);
}

TEST(data, llmc_shards_glob_in_order, .init = scratch_make, .fini = scratch_remove) {
  // written out of order; read as train_000000, train_000001, train_000002
  write_shard(at("train_000002.bin"), 20240520, 1, 3, 3, 300);
  write_shard(at("train_000000.bin"), 20240520, 1, 4, 4, 0);
  write_shard(at("train_000001.bin"), 20240520, 1, 2, 2, 100);
  write_shard(at("val_000000.bin"), 20240520, 1, 2, 2, 9000);
  Dataset d;
  char err[512] = "";
  cr_assert_eq(data_load_llmc(at("train_*.bin"), 0, 1, &d, err, sizeof err), 0, "%s", err);
  const float want[] = {0, 1, 2, 3, 100, 101, 300, 301, 302};
  cr_assert_eq(d.n, 9);
  cr_expect_eq(d.nparts, 3);
  for (int i = 0; i < 9; i++) cr_expect_float_eq(tok(&d, i), want[i], 0, "token %d", i);
  // a gather across the shards' boundaries
  float all[9];
  data_gather(&d, 0, 9, all);
  cr_expect_eq(memcmp(all, want, sizeof all), 0);
  data_free(&d);
  // from/to split the whole stream, not each shard
  cr_assert_eq(data_load_llmc(at("train_*.bin"), 0.5, 1, &d, err, sizeof err), 0, "%s", err);
  cr_assert_eq(d.n, 5);
  cr_expect_eq(d.nparts, 2);
  cr_expect_float_eq(tok(&d, 0), 100, 0);   // floor(0.5 * 9) = 4
  cr_expect_float_eq(tok(&d, 4), 302, 0);
  data_free(&d);
  // one shard by its name
  cr_assert_eq(data_load_llmc(at("val_000000.bin"), 0, 1, &d, err, sizeof err), 0, "%s", err);
  cr_expect_eq(d.n, 2);
  cr_expect_float_eq(tok(&d, 1), 9001, 0);
  data_free(&d);
  // raw u16 files by a glob, too
  write_bytes(at("r1"), (unsigned char[]){1, 0, 2, 0}, 4);
  write_bytes(at("r2"), (unsigned char[]){3, 0}, 2);
  cr_assert_eq(data_load_tokens(at("r?"), 2, 0, 1, &d, err, sizeof err), 0, "%s", err);
  cr_expect_eq(d.n, 3);
  cr_expect_float_eq(tok(&d, 2), 3, 0);
  data_free(&d);
}

TEST(data, llmc_bad_shards_are_named, .init = scratch_make, .fini = scratch_remove) {
  Dataset d;
  char err[512] = "", want[600];
  write_shard(at("magic.bin"), 20240521, 1, 2, 2, 0);
  snprintf(want, sizeof want, "'%s' is not an llm.c token shard: it starts with 20240521, not the "
           "magic 20240520", at("magic.bin"));
  expect_error(data_load_llmc(at("magic.bin"), 0, 1, &d, err, sizeof err), err, want);
  write_shard(at("v2.bin"), 20240520, 2, 2, 2, 0);
  expect_error(data_load_llmc(at("v2.bin"), 0, 1, &d, err, sizeof err), err,
               "is an llm.c shard of version 2; version 1 (u16 tokens) is read");
  write_shard(at("short.bin"), 20240520, 1, 5, 3, 0);
  snprintf(want, sizeof want, "'%s' is truncated: its header announces 5 tokens but only 3 follow",
           at("short.bin"));
  expect_error(data_load_llmc(at("short.bin"), 0, 1, &d, err, sizeof err), err, want);
  write_shard(at("long.bin"), 20240520, 1, 2, 3, 0);
  expect_error(data_load_llmc(at("long.bin"), 0, 1, &d, err, sizeof err), err,
               "has data after the 2 tokens its header announces");
  write_bytes(at("tiny.bin"), "\x28\xd6\x34\x01", 4);
  expect_error(data_load_llmc(at("tiny.bin"), 0, 1, &d, err, sizeof err), err,
               "is truncated: 4 bytes, less than an llm.c shard's 1024-byte header");
  // one bad shard among good ones is named
  write_shard(at("s_0.bin"), 20240520, 1, 2, 2, 0);
  write_shard(at("s_1.bin"), 20240520, 1, 9, 2, 0);
  snprintf(want, sizeof want, "'%s' is truncated", at("s_1.bin"));
  expect_error(data_load_llmc(at("s_*.bin"), 0, 1, &d, err, sizeof err), err, want);
  cr_expect_null(d.parts);
  expect_error(data_load_llmc(at("none_*.bin"), 0, 1, &d, err, sizeof err), err, "matches no files");
  // a shard read as raw u16 would train on its header
  write_shard(at("ok.bin"), 20240520, 1, 2, 2, 0);
  expect_error(data_load_tokens(at("ok.bin"), 2, 0, 1, &d, err, sizeof err), err,
               "is an llm.c token shard (it starts with the magic 20240520): read it with dtype = "
               "\"llm.c\"");
}

// ---------------------------------------------------------------- CSV columns

TEST(data, csv_columns_by_name_index_and_range, .init = scratch_make, .fini = scratch_remove) {
  write_text(at("d.csv"), "a, b ,c,label\n1,2,3,0\n4,5,6,1\n");
  Dataset d;
  char err[512] = "";
  cr_assert_eq(data_load_csv_columns(at("d.csv"), 1, "c,a", &d, err, sizeof err), 0, "%s", err);
  cr_expect_eq(d.n, 2);
  cr_expect_eq(d.sample_size, 2);
  const float ca[] = {3, 1, 6, 4};
  cr_expect_eq(memcmp(d.values, ca, sizeof ca), 0);
  data_free(&d);
  cr_assert_eq(data_load_csv_columns(at("d.csv"), 1, "label", &d, err, sizeof err), 0, "%s", err);
  cr_expect_eq(d.sample_size, 1);
  cr_expect_float_eq(d.values[1], 1, 0);
  data_free(&d);
  cr_assert_eq(data_load_csv_columns(at("d.csv"), 2, "0..3", &d, err, sizeof err), 0, "%s", err);
  const float r[] = {2, 4, 6, 8, 10, 12};
  cr_expect_eq(d.sample_size, 3);
  cr_expect_eq(memcmp(d.values, r, sizeof r), 0);
  data_free(&d);
  // a name (" b " trimmed) and an index together; no header needed for indices
  cr_assert_eq(data_load_csv_columns(at("d.csv"), 1, "b,3", &d, err, sizeof err), 0, "%s", err);
  cr_expect_float_eq(d.values[2], 5, 0);
  cr_expect_float_eq(d.values[3], 1, 0);
  data_free(&d);
  write_text(at("n.csv"), "1,2\n3,4\n");
  cr_assert_eq(data_load_csv_columns(at("n.csv"), 1, "1", &d, err, sizeof err), 0, "%s", err);
  cr_expect_float_eq(d.values[1], 4, 0);
  data_free(&d);
}

TEST(data, csv_columns_errors, .init = scratch_make, .fini = scratch_remove) {
  write_text(at("d.csv"), "a,b\n1,2\n");
  write_text(at("n.csv"), "1,2\n");
  Dataset d;
  char err[512] = "", want[600];
  snprintf(want, sizeof want, "'%s' has no column 'z' (its header is 'a,b')", at("d.csv"));
  expect_error(data_load_csv_columns(at("d.csv"), 1, "a,z", &d, err, sizeof err), err, want);
  expect_error(data_load_csv_columns(at("d.csv"), 1, "2", &d, err, sizeof err), err,
               "has no column 2: its lines have 2 fields (columns 0 to 1)");
  expect_error(data_load_csv_columns(at("d.csv"), 1, "1..3", &d, err, sizeof err), err,
               "has no column 2");
  expect_error(data_load_csv_columns(at("d.csv"), 1, "1..1", &d, err, sizeof err), err,
               "the columns 1..1 are none");
  expect_error(data_load_csv_columns(at("n.csv"), 1, "a", &d, err, sizeof err), err,
               "has no header line of names, so it has no column 'a'");
  cr_expect_null(d.values);
}

// ---------------------------------------------------------------- NumPy arrays

// A version-1 .npy of descr and shape (a Python tuple's text) and its bytes.
static void write_npy(const char *path, const char *descr, const char *shape, const void *data,
                      size_t len) {
  char head[256];
  int n = snprintf(head, sizeof head, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                   descr, shape);
  int total = (10 + n + 1 + 63) / 64 * 64;
  unsigned char buf[4096];
  cr_assert_leq((size_t)total + len, sizeof buf);
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (unsigned char)(total - 10), buf[9] = (unsigned char)((total - 10) >> 8);
  memcpy(buf + 10, head, (size_t)n);
  memset(buf + 10 + n, ' ', (size_t)(total - 10 - n));
  buf[total - 1] = '\n';
  memcpy(buf + total, data, len);
  write_bytes(path, buf, (size_t)total + len);
}

TEST(data, npy_first_axis_is_samples, .init = scratch_make, .fini = scratch_remove) {
  float x[2 * 3 * 2];
  for (int i = 0; i < 12; i++) x[i] = (float)i;
  write_npy(at("x.npy"), "<f4", "(2, 3, 2)", x, sizeof x);
  Dataset d;
  char err[512] = "";
  cr_assert_eq(data_load_npy(at("x.npy"), 0.5, &d, err, sizeof err), 0, "%s", err);
  cr_expect_eq(d.n, 2);
  cr_expect_eq(d.ndim, 2);
  cr_expect_eq(d.dims[0], 3);
  cr_expect_eq(d.dims[1], 2);
  cr_expect_eq(d.sample_size, 6);
  for (int i = 0; i < 12; i++) cr_expect_float_eq(d.values[i], i * 0.5f, 0);
  data_free(&d);
  int64_t y[3] = {2, 0, 7};
  write_npy(at("y.npy"), "<i8", "(3,)", y, sizeof y);
  cr_assert_eq(data_load_npy(at("y.npy"), 1, &d, err, sizeof err), 0, "%s", err);
  cr_expect_eq(d.n, 3);
  cr_expect_eq(d.ndim, 0);
  cr_expect_eq(d.sample_size, 1);
  cr_expect_float_eq(d.values[2], 7, 0);
  data_free(&d);
}

TEST(data, npy_errors, .init = scratch_make, .fini = scratch_remove) {
  Dataset d;
  char err[512] = "";
  float s = 1;
  write_npy(at("s.npy"), "<f4", "()", &s, sizeof s);
  expect_error(data_load_npy(at("s.npy"), 1, &d, err, sizeof err), err, "holds a scalar");
  float nan[2] = {1, NAN};
  write_npy(at("nan.npy"), "<f4", "(2,)", nan, sizeof nan);
  expect_error(data_load_npy(at("nan.npy"), 1, &d, err, sizeof err), err,
               "value 1 is not a finite f32");
  int64_t big[1] = {16777217};
  write_npy(at("big.npy"), "<i8", "(1,)", big, sizeof big);
  expect_error(data_load_npy(at("big.npy"), 1, &d, err, sizeof err), err,
               "value 0 is beyond 2^24");
  write_npy(at("short.npy"), "<f4", "(4,)", nan, sizeof nan);
  expect_error(data_load_npy(at("short.npy"), 1, &d, err, sizeof err), err, "short.npy");
  write_text(at("x.csv"), "1,2\n");
  expect_error(data_load_npy(at("x.csv"), 1, &d, err, sizeof err), err, "x.csv");
  cr_assert_eq(mkfifo(at("fifo"), 0600), 0);
  expect_error(data_load_npy(at("fifo"), 1, &d, err, sizeof err), err, "it is not a regular file");
  cr_expect_null(d.values);
}

// ---------------------------------------------------------------- batcher

// x: sample i is (i, 1000 + i, 2000 + i); y: sample i is i.
typedef struct {
  float xv[64 * 3], yv[64];
  Dataset x, y;
  Dataset *sets[2];
} Pair;

static void pair_init(Pair *p, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    for (int k = 0; k < 3; k++) p->xv[i * 3 + k] = (float)(1000 * k + i);
    p->yv[i] = (float)i;
  }
  p->x = (Dataset){.n = n, .ndim = 1, .dims = {3}, .sample_size = 3, .values = p->xv};
  p->y = (Dataset){.n = n, .ndim = 0, .sample_size = 1, .values = p->yv};
  p->sets[0] = &p->x;
  p->sets[1] = &p->y;
}

// Reads nbatches batches of `batch` samples; order[i] is the sample at
// position i, checked to be the same in both outputs.
static void read_order(Batcher *b, int64_t batch, int64_t nbatches, int64_t *order,
                       int64_t *epochs) {
  float x[64 * 3], y[64];
  float *out[2] = {x, y};
  for (int64_t k = 0; k < nbatches; k++) {
    int64_t e = batcher_next(b, out);
    if (epochs) epochs[k] = e;
    for (int64_t r = 0; r < batch; r++) {
      cr_assert_eq(x[r * 3], y[r], "batch %lld row %lld: x is sample %g, y is sample %g",
                   (long long)k, (long long)r, x[r * 3], y[r]);
      cr_assert_eq(x[r * 3 + 1], 1000 + y[r]);
      cr_assert_eq(x[r * 3 + 2], 2000 + y[r]);
      order[k * batch + r] = (int64_t)y[r];
    }
  }
}

TEST(data, batcher_every_sample_once_per_epoch) {
  Pair p;
  pair_init(&p, 12);
  char err[256] = "";
  Batcher *b = batcher_new(p.sets, 2, 3, 0, 42, true, err, sizeof err);
  cr_assert_not_null(b, "%s", err);
  cr_assert_eq(batcher_batches_per_epoch(b), 4);
  int64_t order[36], epochs[12];
  read_order(b, 3, 12, order, epochs);
  for (int e = 0; e < 3; e++) {
    int seen[12] = {0};
    for (int i = 0; i < 12; i++) seen[order[e * 12 + i]]++;
    for (int i = 0; i < 12; i++) cr_expect_eq(seen[i], 1, "epoch %d: sample %d seen %d times", e, i, seen[i]);
    for (int k = 0; k < 4; k++) cr_expect_eq(epochs[e * 4 + k], e);
  }
  cr_expect(memcmp(order, order + 12, 12 * sizeof *order) != 0, "epochs 0 and 1 in the same order");
  cr_expect(memcmp(order + 12, order + 24, 12 * sizeof *order) != 0,
            "epochs 1 and 2 in the same order");
  batcher_free(b);
}

TEST(data, batcher_drops_the_partial_batch) {
  Pair p;
  pair_init(&p, 11);
  char err[256] = "";
  Batcher *b = batcher_new(p.sets, 2, 4, 0, 7, true, err, sizeof err);
  cr_assert_not_null(b, "%s", err);
  cr_assert_eq(batcher_batches_per_epoch(b), 2);
  int64_t order[16];
  read_order(b, 4, 4, order, NULL);
  for (int e = 0; e < 2; e++) {
    int seen[11] = {0};
    for (int i = 0; i < 8; i++) seen[order[e * 8 + i]]++;
    for (int i = 0; i < 11; i++) cr_expect_leq(seen[i], 1, "epoch %d: sample %d repeated", e, i);
  }
  batcher_free(b);
}

TEST(data, batcher_order_depends_only_on_seed_and_epoch) {
  Pair p;
  pair_init(&p, 40);
  char err[256] = "";
  int64_t a[80], b[80], c[80];
  Batcher *ba = batcher_new(p.sets, 2, 8, 0, 1234, true, err, sizeof err);
  Batcher *bb = batcher_new(p.sets, 2, 8, 0, 1234, true, err, sizeof err);
  Batcher *bc = batcher_new(p.sets, 2, 8, 0, 1235, true, err, sizeof err);
  cr_assert(ba && bb && bc, "%s", err);
  read_order(ba, 8, 10, a, NULL);
  read_order(bb, 8, 10, b, NULL);
  read_order(bc, 8, 10, c, NULL);
  cr_expect_eq(memcmp(a, b, sizeof a), 0, "same seed, different order");
  cr_expect(memcmp(a, c, sizeof a) != 0, "different seeds, same order");
  batcher_free(ba);
  batcher_free(bb);
  batcher_free(bc);
}

TEST(data, batcher_without_shuffle_is_in_order) {
  Pair p;
  pair_init(&p, 10);
  char err[256] = "";
  Batcher *b = batcher_new(p.sets, 2, 5, 0, 99, false, err, sizeof err);
  cr_assert_not_null(b, "%s", err);
  int64_t order[30];
  read_order(b, 5, 6, order, NULL);
  for (int i = 0; i < 30; i++) cr_expect_eq(order[i], i % 10);
  batcher_free(b);
}

TEST(data, batcher_seek_reproduces_the_continuation) {
  Pair p;
  pair_init(&p, 30);
  char err[256] = "";
  Batcher *run = batcher_new(p.sets, 2, 4, 0, 5, true, err, sizeof err);
  cr_assert_not_null(run, "%s", err);
  const int64_t per = batcher_batches_per_epoch(run);   // 7
  int64_t full[4 * 7 * 4], full_epochs[7 * 4];
  read_order(run, 4, 4 * per, full, full_epochs);
  // a fresh batcher resumed at epoch 1, batch 3
  Batcher *resumed = batcher_new(p.sets, 2, 4, 0, 5, true, err, sizeof err);
  cr_assert_not_null(resumed, "%s", err);
  float x[12], y[4];
  batcher_next(resumed, (float *[]){x, y});   // a batch of epoch 0, prepared and dropped
  batcher_seek(resumed, 1, 3);
  int64_t rest[4 * 7 * 4], rest_epochs[7 * 4];
  int64_t left = 4 * per - (per + 3);
  read_order(resumed, 4, left, rest, rest_epochs);
  cr_expect_eq(memcmp(rest, full + 4 * (per + 3), (size_t)left * 4 * sizeof *rest), 0);
  cr_expect_eq(memcmp(rest_epochs, full_epochs + per + 3, (size_t)left * sizeof *rest), 0);
  // backwards on a warm batcher, and a batch index that carries into the next epoch
  batcher_seek(run, 0, per + 2);
  read_order(run, 4, 2, rest, rest_epochs);
  cr_expect_eq(memcmp(rest, full + 4 * (per + 2), 8 * sizeof *rest), 0);
  cr_expect_eq(rest_epochs[0], 1);
  batcher_seek(run, 0, 0);
  read_order(run, 4, 1, rest, rest_epochs);
  cr_expect_eq(memcmp(rest, full, 4 * sizeof *rest), 0);
  cr_expect_eq(rest_epochs[0], 0);
  batcher_free(run);
  batcher_free(resumed);
}

// A token sequence whose token i is i, so a window shows where it starts.
static float seq_values[1000];
static Dataset seq_dataset(int64_t n) {
  for (int64_t i = 0; i < n; i++) seq_values[i] = (float)i;
  return (Dataset){.n = n, .ndim = 0, .sample_size = 1, .values = seq_values};
}

// Reads one window batch; start[r] is the position of row r, checked to lie
// in the sequence with room for the targets.
static int64_t read_windows(Batcher *b, int64_t batch, int64_t w, int64_t n, int64_t *start) {
  float in[8 * 16], next[8 * 16];
  int64_t e = batcher_next(b, (float *[]){in, next});
  for (int64_t r = 0; r < batch; r++) {
    const float *row = in + r * w, *tgt = next + r * w;
    int64_t s = (int64_t)row[0];
    cr_assert(s >= 0 && s + w < n, "row %lld starts at %lld", (long long)r, (long long)s);
    for (int64_t j = 0; j < w; j++) {
      cr_assert_eq(row[j], seq_values[s + j]);
      cr_assert_eq(tgt[j], seq_values[s + j + 1]);
      if (j + 1 < w) cr_assert_eq(tgt[j], row[j + 1], "targets are not the inputs shifted by one");
    }
    start[r] = s;
  }
  return e;
}

TEST(data, batcher_windows) {
  Dataset seq = seq_dataset(1000);
  Dataset *sets[] = {&seq};
  char err[256] = "";
  Batcher *a = batcher_new(sets, 1, 4, 16, 3, true, err, sizeof err);
  Batcher *b = batcher_new(sets, 1, 4, 16, 3, true, err, sizeof err);
  cr_assert(a && b, "%s", err);
  cr_assert_eq(batcher_batches_per_epoch(a), 1000 / 64);
  int64_t per = batcher_batches_per_epoch(a);
  int64_t sa[40][4], sb[4];
  for (int64_t k = 0; k < 2 * per; k++) cr_expect_eq(read_windows(a, 4, 16, 1000, sa[k]), k / per);
  cr_expect(memcmp(sa[0], sa[per], sizeof sa[0]) != 0, "epochs 0 and 1 start alike");
  batcher_seek(b, 1, 2);
  read_windows(b, 4, 16, 1000, sb);
  cr_expect_eq(memcmp(sb, sa[per + 2], sizeof sb), 0, "seek does not reproduce the windows");
  batcher_free(a);
  batcher_free(b);
}

TEST(data, batcher_windows_in_order_stay_inside) {
  Dataset seq = seq_dataset(64);
  Dataset *sets[] = {&seq};
  char err[256] = "";
  Batcher *b = batcher_new(sets, 1, 2, 8, 0, false, err, sizeof err);
  cr_assert_not_null(b, "%s", err);
  cr_assert_eq(batcher_batches_per_epoch(b), 4);
  int64_t s[2];
  for (int k = 0; k < 4; k++) {
    read_windows(b, 2, 8, 64, s);
    cr_expect_eq(s[0], 16 * k);
    cr_expect_eq(s[1], k < 3 ? 16 * k + 8 : 55);   // the last window ends at the last token
  }
  batcher_free(b);
}

TEST(data, batcher_free_mid_epoch) {
  Pair p;
  pair_init(&p, 64);
  char err[256] = "";
  Batcher *b = batcher_new(p.sets, 2, 8, 0, 1, true, err, sizeof err);
  cr_assert_not_null(b, "%s", err);
  batcher_free(b);   // before any batch
  b = batcher_new(p.sets, 2, 8, 0, 1, true, err, sizeof err);
  cr_assert_not_null(b, "%s", err);
  int64_t order[24];
  read_order(b, 8, 3, order, NULL);
  batcher_seek(b, 5, 1);
  batcher_free(b);   // right after a seek, with batches in flight
  batcher_free(NULL);
}

// A batcher of rows [first, first + rows) of each batch gives those rows of
// the whole batcher's batches, in every epoch and after a seek: samples
// (4 shards of 2 rows of a batch of 8, 3 batches an epoch) and windows (an
// uneven cut: rows 1 and 2 of 4).
TEST(data, batcher_rows_are_those_of_the_whole_batch) {
  Pair p;
  pair_init(&p, 24);
  char err[256] = "";
  Batcher *whole = batcher_new(p.sets, 2, 8, 0, 3, true, err, sizeof err), *part[4];
  cr_assert_not_null(whole, "%s", err);
  for (int r = 0; r < 4; r++) {
    part[r] = batcher_new_rows(p.sets, 2, 8, 0, 3, true, 2 * r, 2, err, sizeof err);
    cr_assert_not_null(part[r], "%s", err);
    cr_expect_eq(batcher_batches_per_epoch(part[r]), 3);
  }
  for (int k = 0; k < 9; k++) {
    if (k == 7) {   // back to epoch 1, batch 1, on every batcher
      batcher_seek(whole, 1, 1);
      for (int r = 0; r < 4; r++) batcher_seek(part[r], 1, 1);
    }
    float wx[8 * 3], wy[8], px[2 * 3], py[2];
    int64_t e = batcher_next(whole, (float *[]){wx, wy});
    for (int r = 0; r < 4; r++) {
      cr_expect_eq(batcher_next(part[r], (float *[]){px, py}), e);
      cr_expect_eq(memcmp(px, wx + 2 * r * 3, sizeof px), 0, "batch %d, shard %d: x differs", k, r);
      cr_expect_eq(memcmp(py, wy + 2 * r, sizeof py), 0, "batch %d, shard %d: y differs (%g against %g)", k, r, py[0],
                   wy[2 * r]);
    }
  }
  batcher_free(whole);
  for (int r = 0; r < 4; r++) batcher_free(part[r]);
  Dataset seq = seq_dataset(1000);
  Dataset *one[] = {&seq};
  Batcher *w = batcher_new(one, 1, 4, 16, 5, true, err, sizeof err);
  Batcher *mid = batcher_new_rows(one, 1, 4, 16, 5, true, 1, 2, err, sizeof err);
  cr_assert(w && mid, "%s", err);
  for (int k = 0; k < 20; k++) {
    float wi[4 * 16], wt[4 * 16], mi[2 * 16], mt[2 * 16];
    batcher_next(w, (float *[]){wi, wt});
    batcher_next(mid, (float *[]){mi, mt});
    cr_expect_eq(memcmp(mi, wi + 16, sizeof mi), 0, "batch %d: windows differ", k);
    cr_expect_eq(memcmp(mt, wt + 16, sizeof mt), 0, "batch %d: targets differ", k);
  }
  batcher_free(w);
  batcher_free(mid);
  cr_expect_null(batcher_new_rows(p.sets, 2, 8, 0, 3, true, 6, 3, err, sizeof err));
  cr_expect(strstr(err, "rows 6 to 8 are not rows of a batch of 8"), "%s", err);
  cr_expect_null(batcher_new_rows(p.sets, 2, 8, 0, 3, true, 0, 0, err, sizeof err));
  cr_expect(strstr(err, "are not rows of a batch of 8"), "%s", err);
}

TEST(data, batcher_rejects_what_cannot_work) {
  Pair p;
  pair_init(&p, 10);
  Dataset seq = seq_dataset(100);
  Dataset *one[] = {&seq};
  char err[256] = "";
  cr_expect_null(batcher_new(p.sets, 2, 11, 0, 0, true, err, sizeof err));
  cr_expect(strstr(err, "10 samples are fewer than one batch of 11"), "%s", err);
  cr_expect_null(batcher_new(p.sets, 2, 0, 0, 0, true, err, sizeof err));
  cr_expect(strstr(err, "batch size must be > 0"), "%s", err);
  cr_expect_null(batcher_new(p.sets, 0, 2, 0, 0, true, err, sizeof err));
  cr_expect(strstr(err, "no datasets"), "%s", err);
  p.y.n = 9;
  cr_expect_null(batcher_new(p.sets, 2, 2, 0, 0, true, err, sizeof err));
  cr_expect(strstr(err, "dataset 1 has 9 samples, dataset 0 has 10"), "%s", err);
  cr_expect_null(batcher_new(p.sets, 2, 2, 4, 0, true, err, sizeof err));
  cr_expect(strstr(err, "one token sequence, not 2 datasets"), "%s", err);
  cr_expect_null(batcher_new((Dataset *[]){&p.x}, 1, 2, 4, 0, true, err, sizeof err));
  cr_expect(strstr(err, "single tokens"), "%s", err);
  cr_expect_null(batcher_new(one, 1, 4, 26, 0, true, err, sizeof err));
  cr_expect(strstr(err, "100 tokens are too few"), "%s", err);
  cr_expect_null(batcher_new(one, 1, 1, 100, 0, true, err, sizeof err));
  cr_expect(strstr(err, "100 tokens are too few"), "%s", err);
  cr_expect_null(batcher_new(one, 1, 1, -1, 0, true, err, sizeof err));
  cr_expect(strstr(err, "window must be >= 0"), "%s", err);
}
