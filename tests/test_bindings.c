// Ingots of several bindings (smelt build -D B=4,1,8): the format's checks,
// the API that lists and picks bindings, one checkpoint for all of them, and
// smelt run choosing (and padding to) a binding by the inputs' rows.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smelt.h"
#include "support.h"
#include "ingot.h"
#include "tensorfile.h"

// Builds examples/mlp.smelt (H = 8) for B = 4, 1 and 8 into a file of this
// process; the ingot's own binding is B = 4, the first listed.
static const char *build_bindings(void) {
  static char path[64];
  snprintf(path, sizeof path, "build/test-bindings-%d.ingot", (int)getpid());
  char cmd[512], *out = NULL;
  snprintf(cmd, sizeof cmd, "%s build examples/mlp.smelt -D B=4,1,8 -D H=8 -o %s", smelt_path(), path);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_assert(strstr(out, "(B=1): a session needs") && strstr(out, "(B=8): a session needs") &&
            strstr(out, "(B=4): a session needs"), "%s", out);
  free(out);
  return path;
}

static float pattern(int i) { return (float)((i * 37) % 101) / 101.0f - 0.5f; }

// The logits of infer on binding b for rows x of the pattern from row first.
static void infer_rows(const smelt_ingot *b, int64_t rows, int first, float *logits) {
  smelt_session *s;
  cr_assert_eq(smelt_session_new(b, "cpu", 1, &s), SMELT_OK, "%s", smelt_last_error());
  size_t n = (size_t)rows * 784;
  float *x = malloc(n * sizeof *x);
  for (size_t i = 0; i < n; i++) x[i] = pattern(first * 784 + (int)i);
  cr_assert_eq(smelt_set_input(s, "infer", "x", x, n * sizeof *x), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_run(s, "infer", 1, 0), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_get_output(s, "infer", "logits", logits, (size_t)rows * 10 * sizeof *logits), SMELT_OK);
  free(x);
  smelt_session_free(s);
}

TEST(bindings, listed_in_order_and_picked_for_a_batch) {
  const char *path = build_bindings();
  smelt_ingot *ig;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_ingot_binding_count(ig), 3);
  const int64_t want[] = {1, 4, 8};
  for (size_t i = 0; i < 3; i++) {
    const char *var;
    int64_t value;
    const smelt_ingot *b = smelt_ingot_binding(ig, i, &var, &value);
    cr_assert_not_null(b);
    cr_expect_str_eq(var, "B");
    cr_expect_eq(value, want[i]);
    cr_expect_eq(b == ig, value == 4, "the ingot itself is the binding listed first");
    smelt_tensor_info t;
    cr_assert_eq(smelt_ingot_tensor_info(b, "infer", SMELT_INPUT, 0, &t), SMELT_OK);
    cr_expect_eq(t.dims[0], want[i]);
  }
  cr_expect_null(smelt_ingot_binding(ig, 3, NULL, NULL));
  size_t at;
  cr_expect_eq(smelt_ingot_binding_fit(ig, 3, &at), SMELT_OK);
  cr_expect_eq(at, 1);
  cr_expect_eq(smelt_ingot_binding_fit(ig, 8, &at), SMELT_OK);
  cr_expect_eq(at, 2);
  cr_expect_eq(smelt_ingot_binding_fit(ig, 9, &at), SMELT_ERR_INVALID_ARGUMENT);
  cr_expect(strstr(smelt_last_error(), "no binding of the ingot fits B=9: the largest is B=8"), "%s",
            smelt_last_error());
  // each row computes the same logits in every binding
  float one[10], four[40], eight[80];
  infer_rows(smelt_ingot_binding(ig, 0, NULL, NULL), 1, 2, one);
  infer_rows(smelt_ingot_binding(ig, 1, NULL, NULL), 4, 0, four);
  infer_rows(smelt_ingot_binding(ig, 2, NULL, NULL), 8, 0, eight);
  for (int j = 0; j < 10; j++) {
    cr_expect_float_eq(one[j], four[20 + j], 1e-5, "logit %d: %g at B=1, %g at B=4", j, one[j], four[20 + j]);
    cr_expect_float_eq(one[j], eight[20 + j], 1e-5, "logit %d: %g at B=1, %g at B=8", j, one[j], eight[20 + j]);
  }
  smelt_ingot_close(ig);
  unlink(path);
}

// The bindings share their parameters and state, so a checkpoint of one
// loads into every other.
TEST(bindings, one_checkpoint_serves_every_binding) {
  const char *path = build_bindings();
  smelt_ingot *ig;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  char ckpt[64];
  snprintf(ckpt, sizeof ckpt, "build/test-bindings-%d.ckpt", (int)getpid());
  smelt_session *s;
  cr_assert_eq(smelt_session_new(smelt_ingot_binding(ig, 2, NULL, NULL), "cpu", 1, &s), SMELT_OK);
  float w[10];
  for (int i = 0; i < 10; i++) w[i] = pattern(i);
  cr_assert_eq(smelt_set_tensor(s, "fc3.b", w, sizeof w), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_save(s, ckpt), SMELT_OK, "%s", smelt_last_error());
  smelt_session_free(s);
  cr_assert_eq(smelt_session_new(smelt_ingot_binding(ig, 0, NULL, NULL), "cpu", 1, &s), SMELT_OK);
  cr_assert_eq(smelt_load(s, ckpt), SMELT_OK, "%s", smelt_last_error());
  float back[10];
  cr_assert_eq(smelt_get_tensor(s, "fc3.b", back, sizeof back), SMELT_OK);
  cr_expect(memcmp(w, back, sizeof w) == 0);
  smelt_session_free(s);
  smelt_ingot_close(ig);
  unlink(ckpt);
  unlink(path);
}

// smelt run takes the binding whose inputs have the rows given, and pads to
// the smallest that holds them otherwise, keeping the first rows (saying so).
TEST(bindings, run_picks_the_binding_and_pads_rows) {
  const char *path = build_bindings();
  char in[64], outp[64], cmd[512], *out = NULL;
  snprintf(in, sizeof in, "build/test-bindings-%d.in.tensors", (int)getpid());
  snprintf(outp, sizeof outp, "build/test-bindings-%d.out.tensors", (int)getpid());
  const int64_t rows[] = {8, 3, 9};
  for (int k = 0; k < 3; k++) {
    const char *names[] = {"x"};
    uint32_t dtypes[] = {0};
    int64_t dims[] = {rows[k], 784};
    Shape shapes[] = {shape_of(2, dims)};
    char err[256];
    TensorWriter *w = tensor_writer_open(in, 1, names, dtypes, shapes, err, sizeof err);
    cr_assert_not_null(w, "%s", err);
    size_t n = (size_t)rows[k] * 784;
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = pattern((int)i);
    cr_assert(tensor_writer_bytes(w, x, n * sizeof *x));
    free(x);
    cr_assert_eq(tensor_writer_close(w, true, err, sizeof err), 0, "%s", err);
    snprintf(cmd, sizeof cmd, "%s run %s --inputs=%s --outputs=%s --threads=1", smelt_path(), path, in, outp);
    int rc = run_cmd(cmd, &out);
    if (rows[k] == 9) {
      cr_expect_neq(rc, 0, "%s", out);
      cr_expect(strstr(out, "no binding of infer takes these inputs, nor their rows padded"), "%s", out);
      free(out);
      continue;
    }
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect_eq(strstr(out, "padded with zeros") != NULL, rows[k] == 3, "%s", out);
    if (rows[k] == 3)
      cr_expect(strstr(out, "the 3 rows given run in the binding B=4, padded with zeros; the outputs keep the first 3 "
                            "rows"), "%s", out);
    free(out);
    TensorEntry *t;
    int nt;
    cr_assert_eq(tensorfile_read(outp, &t, &nt, err, sizeof err), 0, "%s", err);
    const TensorEntry *logits = tensorfile_find(t, nt, "logits");
    cr_assert_not_null(logits);
    cr_expect_eq(logits->shape.ndim, 2);
    cr_expect_eq(logits->shape.d[0], rows[k]);
    if (rows[k] == 3) {   // the rows as the B=1 binding computes each
      smelt_ingot *ig;
      cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK);
      for (int r = 0; r < 3; r++) {
        float one[10];
        infer_rows(smelt_ingot_binding(ig, 0, NULL, NULL), 1, r, one);
        for (int j = 0; j < 10; j++)
          cr_expect_float_eq(logits->data[r * 10 + j], one[j], 1e-5, "row %d logit %d", r, j);
      }
      smelt_ingot_close(ig);
    }
    tensorfile_free(t, nt);
  }
  unlink(in);
  unlink(outp);
  unlink(path);
}

// A size that shapes a parameter cannot take several values (one checkpoint
// could not serve the bindings); a list of values is for build alone, and
// each binding must be a new value.
TEST(bindings, refused_where_they_cannot_share) {
  char dir[] = "/tmp/smelt-bind-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char model[128], cmd[512], *out = NULL;
  snprintf(model, sizeof model, "%s/m.smelt", dir);
  FILE *f = fopen(model, "w");
  cr_assert_not_null(f);
  fputs("model m(B = 2) {\n  input x: f32[B, 3]\n  param p: f32[B, 3] = zeros\n  output y = x + p\n}\n", f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "%s build %s -D B=2,4 -o %s/m.ingot", smelt_path(), model, dir);
  cr_expect_neq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect(strstr(out, "its binding B=4 has other parameters than binding B=2"), "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s/m.ingot", dir);
  cr_expect_neq(access(cmd, F_OK), 0, "a refused ingot was left behind");
  snprintf(cmd, sizeof cmd, "%s run %s -D B=2,4 --inputs=x.tensors", smelt_path(), model);
  cr_expect_neq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect(strstr(out, "-D B=2,...: a list of values builds an ingot of several bindings, for smelt build alone"),
            "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s build %s -D B=2,4,2 -o %s/m.ingot", smelt_path(), model, dir);
  cr_expect_neq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect(strstr(out, "distinct values, at most 32, in one -D): not 'B=2,4,2'"), "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
}

// A damaged bindings table is refused with a message, as any damage is.
TEST(bindings, a_damaged_table_is_refused) {
  const char *path = build_bindings();
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  rewind(f);
  unsigned char *bytes = malloc((size_t)size);
  cr_assert_eq(fread(bytes, 1, (size_t)size, f), (size_t)size);
  fclose(f);
  smelt_ingot *ig;
  cr_assert_eq(smelt_ingot_open_memory(bytes, (size_t)size, &ig), SMELT_OK, "%s", smelt_last_error());
  smelt_ingot_close(ig);
  // the section table's last record is BINDINGS; swap two values and fix the CRCs
  uint32_t nsec;
  memcpy(&nsec, bytes + 12, 4);
  unsigned char *rec = bytes + 64 + 32 * (nsec - 1);
  uint32_t kind;
  uint64_t off;
  memcpy(&kind, rec, 4);
  memcpy(&off, rec + 8, 8);
  cr_assert_eq(kind, SEC_BINDINGS);
  int64_t v0, v1;
  memcpy(&v0, bytes + off + 32 + 32, 8);
  memcpy(&v1, bytes + off + 32 + 64 + 32, 8);
  memcpy(bytes + off + 32 + 32, &v1, 8);
  memcpy(bytes + off + 32 + 64 + 32, &v0, 8);
  uint64_t secsize;
  memcpy(&secsize, rec + 16, 8);
  uint32_t crc = smelt_crc32(bytes + off, secsize);
  memcpy(rec + 24, &crc, 4);
  crc = smelt_crc32(bytes + 64, 32 * (uint64_t)nsec);
  memcpy(bytes + 24, &crc, 4);
  cr_expect_eq(smelt_ingot_open_memory(bytes, (size_t)size, &ig), SMELT_ERR_FORMAT);
  cr_expect(strstr(smelt_last_error(), "its bindings table is not in increasing order"), "%s", smelt_last_error());
  free(bytes);
  unlink(path);
}

// smelt bench --batch=N times the binding of that batch.
TEST(bindings, bench_takes_the_binding_of_its_batch) {
  const char *path = build_bindings();
  char cmd[512], *out = NULL;
  snprintf(cmd, sizeof cmd, "%s bench %s --batch=8 --runs=3 --threads=1", smelt_path(), path);
  cr_expect_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect(strstr(out, "mlp infer, batch 8, on cpu") != NULL, "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s bench %s --batch=5 --runs=3", smelt_path(), path);
  cr_expect_neq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect(strstr(out, "has no binding of batch 5 (it has B=1, B=4, B=8)") != NULL, "%s", out);
  free(out);
  unlink(path);
}
