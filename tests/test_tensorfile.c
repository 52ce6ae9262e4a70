// test_tensorfile.c: tensor files in both formats (runtime/tensorfile.c,
// runtime/safetensors.c): a file the safetensors library wrote, read back
// exactly; every dtype written and read again in either format; and every
// way a hostile safetensors header can be wrong, refused with a message.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingot.h"
#include "support.h"

// The record of name in r's file, its bytes read into *data (malloc'd).
static bool find_record(const char *path, const char *want, uint32_t *dtype, Shape *shape, void **data) {
  char err[512];
  TensorReader *r = tensor_reader_open(path, err, sizeof err);
  cr_assert_not_null(r, "%s", err);
  bool found = false;
  for (uint32_t i = 0; i < tensor_reader_count(r) && !found; i++) {
    const char *name;
    cr_assert(tensor_reader_next(r, &name, dtype, shape), "%s: record %u", path, i);
    uint64_t bytes = (uint64_t)shape_numel(shape) * (uint64_t)dtype_size(*dtype);
    found = !strcmp(name, want);
    *data = found ? malloc(bytes ? bytes : 1) : NULL;
    cr_assert(tensor_reader_bytes(r, *data, bytes), "%s: bytes of %s", path, name);
  }
  tensor_reader_close(r);
  return found;
}

TEST(tensorfile, reads_what_the_safetensors_library_wrote) {
  const char *path = "tests/golden/torch.safetensors";
  uint32_t dt;
  Shape sh;
  void *d;
  cr_assert(find_record(path, "ramp", &dt, &sh, &d));
  cr_expect(dt == DT_F32 && sh.ndim == 2 && sh.d[0] == 3 && sh.d[1] == 4);
  for (int i = 0; i < 12; i++) cr_expect_eq(((float *)d)[i], (float)i * 0.5f - 1.0f);
  free(d);
  cr_assert(find_record(path, "special", &dt, &sh, &d));
  float *f = d;
  cr_expect(f[0] == 0 && !signbit(f[0]) && f[1] == 0 && signbit(f[1]) && isinf(f[2]) && f[2] > 0 && isinf(f[3]) && f[3] < 0);
  cr_expect(f[4] == 1e-45f && f[5] == 3.4028234663852886e38f);
  free(d);
  cr_assert(find_record(path, "half", &dt, &sh, &d));
  cr_expect(dt == DT_F16 && sh.d[0] == 4);
  double v[6];
  dtype_to_doubles(dt, d, v, 4);
  cr_expect(v[0] == 1.0 && v[1] == -2.5 && v[2] == 65504.0 && fabs(v[3] - 5.960464477539063e-08) < 1e-20, "%g %g %g %g",
            v[0], v[1], v[2], v[3]);
  free(d);
  cr_assert(find_record(path, "brain", &dt, &sh, &d));
  dtype_to_doubles(dt, d, v, 3);
  cr_expect(dt == DT_BF16 && v[0] == 1.0 && v[1] == -3.140625 && fabs(v[2] - 1e30) < 1e28, "%g %g %g", v[0], v[1], v[2]);
  free(d);
  cr_assert(find_record(path, "ids", &dt, &sh, &d));
  int32_t *ids = d;
  cr_expect(dt == DT_I32 && ids[0] == 0 && ids[1] == -1 && ids[2] == 2147483647 && ids[3] == INT32_MIN);
  free(d);
  cr_assert(find_record(path, "longs", &dt, &sh, &d));
  cr_expect(dt == DT_I64 && ((int64_t *)d)[0] == (int64_t)1 << 40 && ((int64_t *)d)[1] == -5);
  free(d);
  cr_assert(find_record(path, "bytes", &dt, &sh, &d));
  cr_expect(dt == DT_U8 && ((uint8_t *)d)[1] == 255 && ((uint8_t *)d)[2] == 7);
  free(d);
  cr_assert(find_record(path, "mask", &dt, &sh, &d));
  cr_expect(dt == DT_BOOL && ((uint8_t *)d)[0] == 1 && ((uint8_t *)d)[1] == 0 && ((uint8_t *)d)[2] == 1);
  free(d);
  cr_assert(find_record(path, "scalar", &dt, &sh, &d));
  cr_expect(dt == DT_F32 && sh.ndim == 0 && *(float *)d == 2.5f);
  free(d);
  cr_assert(find_record(path, "empty", &dt, &sh, &d));
  cr_expect(sh.ndim == 2 && sh.d[0] == 0 && sh.d[1] == 3);
  free(d);
  cr_assert(find_record(path, "layer.0/\"w\"\xc3\xa9", &dt, &sh, &d), "an escaped name");
  cr_expect(((float *)d)[1] == 2.0f);
  free(d);
  // and as doubles, through the reader every tool uses
  TensorEntry *t;
  int n;
  char err[512];
  cr_assert_eq(tensorfile_read(path, &t, &n, err, sizeof err), 0, "%s", err);
  cr_expect_eq(n, 11);
  cr_expect_eq(tensorfile_find(t, n, "longs")->data[0], 1099511627776.0);
  tensorfile_free(t, n);
}

// Every dtype, written and read back byte for byte, in both formats; the
// safetensors buffer starts at a multiple of 8.
TEST(tensorfile, every_dtype_round_trips_in_both_formats) {
  const char *names[DT_COUNT] = {"a", "b.c", "quote\"d", "e", "f", "g", "h"};
  uint32_t dtypes[DT_COUNT];
  Shape shapes[DT_COUNT];
  unsigned char *data[DT_COUNT];
  for (int i = 0; i < DT_COUNT; i++) {
    dtypes[i] = (uint32_t)i;
    shapes[i] = i == 3 ? shape_of(0, NULL) : shape_of(2, (int64_t[]){2, i + 1});
    size_t bytes = (size_t)shape_numel(&shapes[i]) * (size_t)dtype_size((uint32_t)i);
    data[i] = malloc(bytes);
    for (size_t k = 0; k < bytes; k++) data[i][k] = (unsigned char)(i == DT_BOOL ? k & 1 : k * 37 + (size_t)i);
  }
  for (int format = 0; format < 2; format++) {
    char path[64], err[512];
    snprintf(path, sizeof path, "build/tensorfile-%d.%s", (int)getpid(), format ? "safetensors" : "tensors");
    TensorWriter *w = tensor_writer_open(path, DT_COUNT, names, dtypes, shapes, err, sizeof err);
    cr_assert_not_null(w, "%s", err);
    for (int i = 0; i < DT_COUNT; i++)
      cr_assert(tensor_writer_bytes(w, data[i], (uint64_t)shape_numel(&shapes[i]) * (uint64_t)dtype_size(dtypes[i])));
    cr_assert_eq(tensor_writer_close(w, true, err, sizeof err), 0, "%s", err);
    if (format) {
      FILE *f = fopen(path, "rb");
      uint64_t hlen;
      cr_assert_eq(fread(&hlen, 8, 1, f), 1);
      fclose(f);
      cr_expect_eq((8 + hlen) % 8, 0, "the byte buffer starts at %llu", (unsigned long long)(8 + hlen));
    }
    for (int i = 0; i < DT_COUNT; i++) {
      uint32_t dt;
      Shape sh;
      void *d;
      cr_assert(find_record(path, names[i], &dt, &sh, &d), "%s: %s", path, names[i]);
      size_t bytes = (size_t)shape_numel(&shapes[i]) * (size_t)dtype_size(dtypes[i]);
      cr_expect(dt == dtypes[i] && shape_eq(&sh, &shapes[i]) && !memcmp(d, data[i], bytes), "%s: %s", path, names[i]);
      free(d);
    }
    unlink(path);
  }
  for (int i = 0; i < DT_COUNT; i++) free(data[i]);
}

// A writer that fails (a tensor left out) leaves no file behind, nor a
// temporary one, and an existing file untouched.
TEST(tensorfile, an_unfinished_write_changes_nothing) {
  char path[64], err[512];
  snprintf(path, sizeof path, "build/tensorfile-keep-%d.safetensors", (int)getpid());
  FILE *f = fopen(path, "wb");
  fputs("old", f);
  fclose(f);
  const char *names[] = {"a", "b"};
  uint32_t dtypes[] = {DT_F32, DT_F32};
  Shape shapes[] = {shape_of(1, (int64_t[]){2}), shape_of(1, (int64_t[]){2})};
  TensorWriter *w = tensor_writer_open(path, 2, names, dtypes, shapes, err, sizeof err);
  float v[2] = {1, 2};
  cr_assert(tensor_writer_bytes(w, v, sizeof v));
  cr_expect_eq(tensor_writer_close(w, true, err, sizeof err), -1, "one of two tensors written, and committed");
  size_t len;
  char *text = file_read(path, &len);
  cr_expect(text && len == 3 && !memcmp(text, "old", 3));
  free(text);
  unlink(path);
}

// A safetensors file of header text json and a buffer of nbuf zero bytes.
static void write_st(const char *path, const char *json, size_t nbuf, uint64_t claimed) {
  FILE *f = fopen(path, "wb");
  uint64_t n = claimed ? claimed : strlen(json);
  fwrite(&n, 8, 1, f);
  fwrite(json, 1, strlen(json), f);
  for (size_t i = 0; i < nbuf; i++) fputc(0, f);
  fclose(f);
}

static void refused(const char *json, size_t nbuf, uint64_t claimed, const char *want) {
  char path[64], err[512];
  snprintf(path, sizeof path, "build/hostile-%d.safetensors", (int)getpid());
  write_st(path, json, nbuf, claimed);
  TensorReader *r = tensor_reader_open(path, err, sizeof err);
  cr_expect_null(r, "accepted: %s", json);
  if (r) tensor_reader_close(r);
  else cr_expect(strstr(err, want) != NULL, "%s: '%s', not '%s'", json, err, want);
  unlink(path);
}

#define T1 "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

TEST(tensorfile, hostile_safetensors_headers_are_refused) {
  refused("{" T1 "}", 8, 1ull << 40, "over the limit of 100 MiB");
  refused("{" T1 "}", 8, 4000, "past its end");
  refused("{" T1 "}", 4, 0, "the file is truncated");
  refused("{" T1 "}", 12, 0, "bytes that no tensor holds");
  refused("{" T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, 0, "overlap");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, 0, "hole");
  refused("{" T1 "," T1 "}", 16, 0, "appears twice");
  refused("{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, 0, "dtype F64, which smelt does not have");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, 0, "do not span its dtype and shape");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, 0,
          "too large");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8, 0, "a key other than");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", 8, 0, "not [begin, end]");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, 0, "non-negative integer");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", 8, 0, "leading zero");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, 0, "not an integer");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", 8, 0, "too large");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8, 0, "at most 8");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, 0, "lacks dtype, shape or data_offsets");
  refused("{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0, "malformed");
  refused("{\"a\\ud800\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0, "malformed");
  refused("{\"a\\q\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0, "malformed");
  refused("{\"a", 0, 0, "malformed");
  refused("{" T1 "} x", 8, 0, "text after its object");
  refused("{" T1, 8, 0, "not closed");
  refused("{\"__metadata__\":{\"k\":1}," T1 "}", 8, 0, "not a string");
  refused("[1]        ", 0, 0, "neither a smelt tensor file");
  // a file too short for any header, and one that is not a file
  refused("{", 0, 0, "neither");
}

TEST(tensorfile, metadata_and_padding_are_accepted) {
  char path[64], err[512];
  snprintf(path, sizeof path, "build/meta-%d.safetensors", (int)getpid());
  write_st(path, "{\"__metadata__\":{\"format\":\"pt\",\"k\\n\":\"v\\u00e9\"}, " T1 "}     ", 8, 0);
  TensorReader *r = tensor_reader_open(path, err, sizeof err);
  cr_assert_not_null(r, "%s", err);
  cr_expect_eq(tensor_reader_count(r), 1);
  tensor_reader_close(r);
  write_st(path, "{}", 0, 0);
  r = tensor_reader_open(path, err, sizeof err);
  cr_assert_not_null(r, "%s", err);
  cr_expect_eq(tensor_reader_count(r), 0);
  tensor_reader_close(r);
  unlink(path);
}

// A record that claims more bytes than the file has left is refused before
// anything is allocated for it (4 Gi elements here, in a 40-byte file).
TEST(tensorfile, a_record_larger_than_its_file_is_refused_before_allocating) {
  char path[64], err[512];
  snprintf(path, sizeof path, "build/huge-%d.tensors", (int)getpid());
  FILE *f = fopen(path, "wb");
  uint32_t head[3] = {0x46544d53u, 1, 1}, len = 1, dtype = DT_F32, ndim = 2;
  int64_t dims[2] = {65536, 65536};
  fwrite(head, sizeof head, 1, f);
  fwrite(&len, 4, 1, f);
  fputc('a', f);
  fwrite(&dtype, 4, 1, f);
  fwrite(&ndim, 4, 1, f);
  fwrite(dims, 8, 2, f);
  fclose(f);
  TensorEntry *t;
  int n;
  cr_expect_eq(tensorfile_read(path, &t, &n, err, sizeof err), -1);
  cr_expect(strstr(err, "truncated or corrupt") != NULL, "%s", err);
  unlink(path);
}

// Flips one bit of the byte at offset from the end of the file at path.
static void flip_from_end(const char *path, long offset) {
  FILE *f = fopen(path, "r+b");
  cr_assert_not_null(f, "%s", path);
  cr_assert_eq(fseek(f, -offset, SEEK_END), 0);
  int c = fgetc(f);
  cr_assert_eq(fseek(f, -offset, SEEK_END), 0);
  fputc(c ^ 0x10, f);
  fclose(f);
}

// Version 2 follows each record with the CRC-32 of its head and values: one
// flipped bit in the values is refused, naming the file and the tensor.
TEST(tensorfile, a_flipped_value_fails_its_record_crc) {
  char path[64], err[512];
  snprintf(path, sizeof path, "build/crc-%d.tensors", (int)getpid());
  double a[3] = {1, 2, 3}, b[2] = {-1, 0.5};
  TensorEntry t[2] = {{"fc1.w", {1, {3}}, a}, {"fc1.b", {1, {2}}, b}};
  cr_assert_eq(tensorfile_write(path, t, 2, err, sizeof err), 0, "%s", err);
  size_t len;
  char *bytes = file_read(path, &len);
  uint32_t version, crc;
  memcpy(&version, bytes + 4, 4);
  memcpy(&crc, bytes + len - 4, 4);
  cr_expect_eq(version, 2);
  cr_expect_eq(crc, smelt_crc32(bytes + len - 4 - (4 + 5 + 4 + 4 + 8 + 8), 4 + 5 + 4 + 4 + 8 + 8),
               "the last record's CRC covers its head and values");
  free(bytes);
  TensorEntry *got;
  int n;
  cr_assert_eq(tensorfile_read(path, &got, &n, err, sizeof err), 0, "%s", err);
  cr_expect(n == 2 && got[1].data[1] == 0.5);
  tensorfile_free(got, n);
  for (int k = 0; k < 2; k++) {   // the last value of fc1.b; the first of fc1.w
    cr_assert_eq(tensorfile_write(path, t, 2, err, sizeof err), 0, "%s", err);
    flip_from_end(path, k == 0 ? 5 : 4 + 8 + 4 + 8 + 4 + 4 + 5 + 4 + 12);
    cr_expect_eq(tensorfile_read(path, &got, &n, err, sizeof err), -1);
    char want[200];
    snprintf(want, sizeof want, "'%s' is corrupt: tensor '%s' does not match its CRC-32", path, k == 0 ? "fc1.b" : "fc1.w");
    cr_expect(strstr(err, want) != NULL, "%s", err);
  }
  unlink(path);
}

// smelt's safetensors files give each tensor's CRC-32 in __metadata__
// ("smelt.crc32.NAME", 8 hex digits): the reader checks it, so a flipped
// value byte is refused naming the tensor, in the first tensor and the last.
TEST(tensorfile, a_flipped_value_in_a_safetensors_file_fails_its_crc) {
  char path[64], err[512];
  snprintf(path, sizeof path, "build/crc-%d.safetensors", (int)getpid());
  double a[3] = {1, 2, 3}, b[2] = {-1, 0.5};
  TensorEntry t[2] = {{"fc1.w", {1, {3}}, a}, {"fc1.b", {1, {2}}, b}};
  cr_assert_eq(tensorfile_write(path, t, 2, err, sizeof err), 0, "%s", err);
  size_t len;
  char *bytes = file_read(path, &len);
  uint64_t hlen;
  memcpy(&hlen, bytes, 8);
  float fb[2] = {-1, 0.5f};
  char want[200];
  snprintf(want, sizeof want, "\"smelt.crc32.fc1.b\":\"%08x\"", (unsigned)smelt_crc32(fb, sizeof fb));
  char *header = strndup(bytes + 8, (size_t)hlen);
  cr_expect(strstr(header, want) != NULL, "%s", header);
  free(header);
  free(bytes);
  TensorEntry *got;
  int n;
  cr_assert_eq(tensorfile_read(path, &got, &n, err, sizeof err), 0, "%s", err);
  cr_expect(n == 2 && got[0].data[2] == 3 && got[1].data[1] == 0.5);
  tensorfile_free(got, n);
  for (int k = 0; k < 2; k++) {   // the last value byte of fc1.b; the first of fc1.w
    cr_assert_eq(tensorfile_write(path, t, 2, err, sizeof err), 0, "%s", err);
    flip_from_end(path, k == 0 ? 1 : 2 * 4 + 3 * 4);
    cr_expect_eq(tensorfile_read(path, &got, &n, err, sizeof err), -1);
    snprintf(want, sizeof want, "'%s' is corrupt: tensor '%s' does not match its CRC-32", path, k == 0 ? "fc1.b" : "fc1.w");
    cr_expect(strstr(err, want) != NULL, "%s", err);
  }
  unlink(path);
}

// A CRC-32 in another writer's file is checked too; one that is not 8 hex
// digits is refused, and one for a tensor the file does not hold passed over.
TEST(tensorfile, safetensors_crc_metadata_is_checked) {
  char path[64], err[512];
  snprintf(path, sizeof path, "build/crcmeta-%d.safetensors", (int)getpid());
  char json[256];
  float zeros[2] = {0, 0};
  for (int k = 0; k < 3; k++) {   // the right CRC-32, a wrong one, one for another name
    snprintf(json, sizeof json, "{\"__metadata__\":{\"smelt.crc32.%s\":\"%08x\"}," T1 "}", k == 2 ? "b" : "a",
             (unsigned)smelt_crc32(zeros, sizeof zeros) ^ (k == 1));
    write_st(path, json, 8, 0);
    TensorEntry *got;
    int n;
    int rc = tensorfile_read(path, &got, &n, err, sizeof err);
    cr_expect_eq(rc, k == 1 ? -1 : 0, "%s: %s", json, err);
    if (rc == 0) tensorfile_free(got, n);
    else cr_expect(strstr(err, "tensor 'a' does not match its CRC-32") != NULL, "%s", err);
  }
  unlink(path);
  refused("{\"__metadata__\":{\"smelt.crc32.a\":\"1234567\"}," T1 "}", 8, 0, "'smelt.crc32.a' is not 8 hex digits");
  refused("{\"__metadata__\":{\"smelt.crc32.a\":\"1234567g\"}," T1 "}", 8, 0, "not 8 hex digits");
}

// Files of version 1 (no checksums: the goldens, older checkpoints) still read.
TEST(tensorfile, version_1_files_still_read) {
  char path[64], err[512];
  snprintf(path, sizeof path, "build/v1-%d.tensors", (int)getpid());
  FILE *f = fopen(path, "wb");
  uint32_t head[3] = {0x46544d53u, 1, 1}, len = 1, dtype = DT_F32, ndim = 1;
  int64_t dim = 2;
  float v[2] = {1.5f, -2};
  fwrite(head, sizeof head, 1, f);
  fwrite(&len, 4, 1, f);
  fputc('w', f);
  fwrite(&dtype, 4, 1, f);
  fwrite(&ndim, 4, 1, f);
  fwrite(&dim, 8, 1, f);
  fwrite(v, 4, 2, f);
  fclose(f);
  TensorEntry *t;
  int n;
  cr_assert_eq(tensorfile_read(path, &t, &n, err, sizeof err), 0, "%s", err);
  cr_expect(n == 1 && !strcmp(t[0].name, "w") && t[0].data[0] == 1.5 && t[0].data[1] == -2);
  tensorfile_free(t, n);
  unlink(path);
  cr_assert_eq(tensorfile_read("tests/golden/mlp.golden", &t, &n, err, sizeof err), 0, "%s", err);
  tensorfile_free(t, n);
}

// ---- NumPy's .npy and .npz (runtime/npy.c), as numpy wrote them (tests/npy/make_npy.py)

// The values of every array make_npy.py writes, as doubles.
static void expect_numpy_arrays(const char *path, const TensorEntry *t, int n, bool all) {
  const TensorEntry *f32 = tensorfile_find(t, n, "f32");
  cr_assert_not_null(f32, "%s", path);
  cr_expect(f32->shape.ndim == 2 && f32->shape.d[0] == 2 && f32->shape.d[1] == 3, "%s", path);
  for (int i = 0; i < 6; i++) cr_expect_eq(f32->data[i], i - 2.5, "%s", path);
  if (!all) return;
  cr_assert_eq(n, 7);
  const char *order[] = {"f32", "f16", "i32", "i64", "u8", "b1", "scalar"};   // as savez wrote them
  for (int i = 0; i < 7; i++) cr_expect_str_eq(t[i].name, order[i]);
  const double f16[] = {0.5, -1.25, 65504}, i32[] = {1, -2, 3, 2147483647}, i64[] = {-1099511627776.0, 7},
               u8[] = {0, 255, 7}, b1[] = {1, 0, 1};
  cr_expect(!memcmp(tensorfile_find(t, n, "f16")->data, f16, sizeof f16));
  cr_expect(!memcmp(tensorfile_find(t, n, "i32")->data, i32, sizeof i32));
  cr_expect(!memcmp(tensorfile_find(t, n, "i64")->data, i64, sizeof i64));
  cr_expect(!memcmp(tensorfile_find(t, n, "u8")->data, u8, sizeof u8));
  cr_expect(!memcmp(tensorfile_find(t, n, "b1")->data, b1, sizeof b1));
  const TensorEntry *s = tensorfile_find(t, n, "scalar");
  cr_expect(s->shape.ndim == 0 && s->data[0] == 3.5);
}

TEST(tensorfile, reads_npy_and_npz_as_numpy_wrote_them) {
  const char *files[] = {"tests/npy/f32.npy", "tests/npy/v2.npy", "tests/npy/v3.npy", "tests/npy/all.npz"};
  for (int f = 0; f < 4; f++) {
    TensorEntry *t;
    int n;
    char err[512];
    cr_assert_eq(tensorfile_read(files[f], &t, &n, err, sizeof err), 0, "%s", err);
    if (f == 1 || f == 2) {   // named by the file: "v2", "v3"
      cr_assert_eq(n, 1);
      free((char *)t[0].name);
      t[0].name = strdup("f32");
    }
    expect_numpy_arrays(files[f], t, n, f == 3);
    tensorfile_free(t, n);
  }
  uint32_t dt;
  Shape sh;
  void *d;
  const char *one[] = {"f16", "i32", "i64", "u8", "b1"};
  const uint32_t dts[] = {DT_F16, DT_I32, DT_I64, DT_U8, DT_BOOL};
  for (int i = 0; i < 5; i++) {
    char path[64];
    snprintf(path, sizeof path, "tests/npy/%s.npy", one[i]);
    cr_assert(find_record(path, one[i], &dt, &sh, &d), "%s", path);
    cr_expect_eq(dt, dts[i], "%s", path);
    free(d);
  }
}

static void expect_refused(const char *path, const char *why) {
  TensorEntry *t;
  int n;
  char err[512] = "";
  cr_expect_eq(tensorfile_read(path, &t, &n, err, sizeof err), -1, "%s was read", path);
  cr_expect(strstr(err, why) != NULL, "%s: %s", path, err);
}

TEST(tensorfile, refuses_npy_files_it_cannot_read_exactly) {
  expect_refused("tests/npy/fortran.npy", "it is in Fortran order (fortran_order: True)");
  expect_refused("tests/npy/bigendian.npy", "it is big-endian ('>f4')");
  expect_refused("tests/npy/truncated.npy", "it has 21 bytes of values where its shape needs 24");
  expect_refused("tests/npy/f64.npy", "its dtype '<f8' is not one smelt has");
  expect_refused("tests/npy/compressed.npz", "member 'x.npy' is compressed; smelt reads .npz files of stored members");
}

// Copies src to a fresh file with byte at flipped (at < 0: cut to -at bytes).
static const char *damaged_copy(const char *src, long at) {
  static char path[64];
  snprintf(path, sizeof path, "build/test-npy-%d.npz", (int)getpid());
  char *data = slurp(src);
  FILE *in = fopen(src, "rb");
  fseek(in, 0, SEEK_END);
  long size = ftell(in);
  fclose(in);
  if (at >= 0) data[at] ^= 0x40;
  FILE *f = fopen(path, "wb");
  fwrite(data, 1, (size_t)(at < 0 ? -at : size), f);
  fclose(f);
  free(data);
  return path;
}

TEST(tensorfile, an_npz_member_is_checked_against_its_crc) {
  // f32.npy's first value: the member's local header, its name, the 128-byte .npy header
  const char *path = damaged_copy("tests/npy/all.npz", 30 + 7 + 20 + 128);
  expect_refused(path, "tensor 'f32' does not match its CRC-32");
  path = damaged_copy("tests/npy/all.npz", -1000);   // the directory at its end is gone
  expect_refused(path, "no zip directory at its end");
  unlink(path);
}

// What smelt writes as .npy is byte for byte what numpy writes; an .npz
// of every dtype NumPy has reads back as written.
TEST(tensorfile, writes_npy_as_numpy_does_and_npz_that_reads_back) {
  char npy[64], npz[64], err[512];
  snprintf(npy, sizeof npy, "build/test-w-%d.npy", (int)getpid());
  snprintf(npz, sizeof npz, "build/test-w-%d.npz", (int)getpid());
  double v[6] = {-2.5, -1.5, -0.5, 0.5, 1.5, 2.5};
  TensorEntry e = {"f32", {2, {2, 3}}, v};
  cr_assert_eq(tensorfile_write(npy, &e, 1, err, sizeof err), 0, "%s", err);
  char *mine = slurp(npy), *theirs = slurp("tests/npy/f32.npy");
  cr_expect(!memcmp(mine, theirs, 152), "smelt's .npy differs from numpy's");
  free(mine);
  free(theirs);
  TensorEntry two[2] = {e, {"g", {0, {0}}, v}};
  cr_expect_eq(tensorfile_write(npy, two, 2, err, sizeof err), -1);
  cr_expect(strstr(err, "a .npy file holds one tensor, not 2 (write .npz)") != NULL, "%s", err);
  const char *names[] = {"a", "b", "c", "d", "e", "f"};
  const uint32_t dts[] = {DT_F32, DT_F16, DT_I32, DT_I64, DT_U8, DT_BOOL};
  Shape shapes[6];
  for (int i = 0; i < 6; i++) shapes[i] = (Shape){i % 3, {2, 2}};
  TensorWriter *w = tensor_writer_open(npz, 6, names, dts, shapes, err, sizeof err);
  cr_assert_not_null(w, "%s", err);
  unsigned char bytes[64];
  for (int i = 0; i < 64; i++) bytes[i] = (unsigned char)(i & 1);   // 0 and 1: a bool too
  for (int i = 0; i < 6; i++)
    cr_assert(tensor_writer_bytes(w, bytes, (uint64_t)shape_numel(&shapes[i]) * (uint64_t)dtype_size(dts[i])));
  cr_assert_eq(tensor_writer_close(w, true, err, sizeof err), 0, "%s", err);
  for (int i = 0; i < 6; i++) {
    uint32_t dt;
    Shape sh;
    void *d;
    cr_assert(find_record(npz, names[i], &dt, &sh, &d), "%s", names[i]);
    cr_expect(dt == dts[i] && sh.ndim == shapes[i].ndim, "%s", names[i]);
    cr_expect(!memcmp(d, bytes, (size_t)shape_numel(&sh) * (size_t)dtype_size(dt)), "%s", names[i]);
    free(d);
  }
  const uint32_t bf16 = DT_BF16;
  cr_expect_null(tensor_writer_open(npz, 1, names, &bf16, shapes, err, sizeof err));
  cr_expect(strstr(err, "is bf16, which NumPy has no dtype for") != NULL, "%s", err);
  unlink(npy);
  unlink(npz);
}

// A record whose dimensions each fit but whose product does not (2^32 x
// 2^32 elements) is refused before the product is formed: no overflow.
TEST(tensorfile, a_shape_whose_product_overflows_is_refused) {
  char path[64];
  snprintf(path, sizeof path, "/tmp/smelt-dims-%d.tensors", (int)getpid());
  FILE *f = fopen(path, "wb");
  cr_assert(f);
  const uint32_t head[3] = {0x46544d53u, 1, 1}, name_len = 1, dtype = 0, ndim = 2;   // "SMTF", version 1, one record
  const int64_t dims[2] = {(int64_t)1 << 32, (int64_t)1 << 32};
  fwrite(head, 4, 3, f);
  fwrite(&name_len, 4, 1, f);
  fputc('x', f);
  fwrite(&dtype, 4, 1, f);
  fwrite(&ndim, 4, 1, f);
  fwrite(dims, 8, 2, f);
  cr_assert_eq(fclose(f), 0);
  TensorEntry *t;
  int n;
  char err[512];
  cr_expect_neq(tensorfile_read(path, &t, &n, err, sizeof err), 0);
  cr_expect(strstr(err, "truncated or corrupt") != NULL, "%s", err);
  unlink(path);
}
