// test_train.c: `smelt train` and `smelt eval` end to end, on real data.
//
// Small MLPs on Fashion-MNIST from dataset-fashion-mnist (skipped, saying so,
// where the data is absent): the loss falls; training N steps, stopping and
// resuming for M more gives a checkpoint identical byte for byte to N + M
// steps in one run; a missing data file is one clear error.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"

static bool have_data(void) {
  struct stat st;
  return stat("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", &st) == 0;
}

static int smelt(const char *args, char **out) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "NO_COLOR=1 %s %s", smelt_path(), args);
  return run_cmd(cmd, out);
}

// The mean of the losses on the log lines "step N/M ... loss L ...".
static void first_last_loss(const char *out, double *first, double *last) {
  *first = *last = -1;
  for (const char *p = out; (p = strstr(p, " loss ")); p++) {
    double v = atof(p + 6);
    if (*first < 0) *first = v;
    *last = v;
  }
}

TEST(train, mlp_loss_falls_and_test_accuracy_is_reported) {
  if (!have_data()) cr_skip_test("dataset-fashion-mnist is not installed");
  char *out;
  int rc = smelt("train examples/mlp.smelt -D B=64 -D H=64 --steps=300 --log-every=50 --threads=2", &out);
  cr_assert_eq(rc, 0, "%s", out);
  double first, last;
  first_last_loss(out, &first, &last);
  cr_expect_lt(last, first * 0.6, "loss went from %g to %g:\n%s", first, last, out);
  const char *acc = strstr(out, "accuracy ");
  cr_assert_not_null(acc, "%s", out);
  cr_expect_gt(atof(acc + 9), 70.0, "%s", out);
  free(out);
}

TEST(train, resume_gives_the_same_weights_as_one_run) {
  if (!have_data()) cr_skip_test("dataset-fashion-mnist is not installed");
  char ingot[64], a[64], b[64], args[512], *out;
  int pid = (int)getpid();
  snprintf(ingot, sizeof ingot, "build/test-train-%d.ingot", pid);
  snprintf(a, sizeof a, "build/test-train-%d-a.ckpt", pid);
  snprintf(b, sizeof b, "build/test-train-%d-b.ckpt", pid);
  snprintf(args, sizeof args, "build examples/mlp.smelt -D B=32 -D H=16 -o %s", ingot);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  snprintf(args, sizeof args, "train %s --steps=50 --checkpoint=%s --threads=2", ingot, a);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  snprintf(args, sizeof args, "train %s --steps=50 --stop-after=30 --checkpoint=%s --threads=1", ingot, b);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  snprintf(args, sizeof args, "train %s --steps=50 --checkpoint=%s --resume --threads=2", ingot, b);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  cr_expect(strstr(out, "resumed from") != NULL, "%s", out);
  free(out);
  size_t la, lb;
  char *da = file_read(a, &la), *db = file_read(b, &lb);
  cr_assert(da && db);
  cr_expect(la == lb && memcmp(da, db, la) == 0, "30 + 20 steps differ from 50");
  free(da);
  free(db);
  snprintf(args, sizeof args, "eval %s --checkpoint=%s", ingot, a);
  cr_expect_eq(smelt(args, &out), 0, "%s", out);
  cr_expect(strstr(out, "test: loss") != NULL, "%s", out);
  free(out);
  unlink(ingot);
  unlink(a);
  unlink(b);
}

TEST(train, missing_data_is_one_clear_error) {
  char dir[] = "/tmp/smelt-train-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char path[128], args[256], *out;
  snprintf(path, sizeof path, "%s/m.smelt", dir);
  FILE *f = fopen(path, "w");
  fputs("import \"nn\"\nmodel m(B = 4) {\n  input x: f32[B, 784]\n  input y: i32[B]\n"
        "  output logits = linear(x, 10) as fc\n  loss cross_entropy(logits, y)\n}\n"
        "train {\n  optimizer = sgd(lr = 0.1)\n  steps = 10\n"
        "  data train { x = idx(\"missing-images.gz\"); y = idx(\"missing-labels.gz\") }\n}\n", f);
  fclose(f);
  snprintf(args, sizeof args, "train %s", path);
  cr_expect_eq(smelt(args, &out), 1, "%s", out);
  cr_expect(strstr(out, "smelt: error: cannot read") != NULL && strstr(out, "missing-images.gz") != NULL &&
            strstr(out, "No such file or directory") != NULL, "%s", out);
  free(out);
  snprintf(args, sizeof args, "rm -rf %s", dir);
  cr_expect_eq(system(args), 0);
}

TEST(train, run_infers_from_a_tensor_file) {
  char ingot[64], in[64], outp[64], args[512], err[256], *out;
  int pid = (int)getpid();
  snprintf(ingot, sizeof ingot, "build/test-run-%d.ingot", pid);
  snprintf(in, sizeof in, "build/test-run-%d.in", pid);
  snprintf(outp, sizeof outp, "build/test-run-%d.out", pid);
  snprintf(args, sizeof args, "build examples/mlp.smelt -D B=2 -D H=8 -o %s", ingot);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  double x[2 * 784];
  for (int i = 0; i < 2 * 784; i++) x[i] = (i % 17) / 17.0;
  TensorEntry t = {"x", shape_of(2, (int64_t[]){2, 784}), x};
  cr_assert_eq(tensorfile_write(in, &t, 1, err, sizeof err), 0, "%s", err);
  snprintf(args, sizeof args, "run %s --inputs=%s --outputs=%s", ingot, in, outp);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  TensorEntry *o;
  int n;
  cr_assert_eq(tensorfile_read(outp, &o, &n, err, sizeof err), 0, "%s", err);
  const TensorEntry *logits = tensorfile_find(o, n, "logits");
  cr_assert_not_null(logits);
  cr_expect(shape_eq(&logits->shape, &(Shape){2, {2, 10}}));
  // the same as the printed values of a run without --outputs
  snprintf(args, sizeof args, "run %s --inputs=%s", ingot, in);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  char first[32];
  snprintf(first, sizeof first, "  %.6g ", logits->data[0]);
  cr_expect(strstr(out, "logits: f32[2, 10]") != NULL && strstr(out, first) != NULL, "%s\nwant %s", out, first);
  free(out);
  tensorfile_free(o, n);
  // an input missing from the file is named
  TensorEntry wrong = {"z", shape_of(1, (int64_t[]){3}), x};
  cr_assert_eq(tensorfile_write(in, &wrong, 1, err, sizeof err), 0);
  cr_expect_eq(smelt(args, &out), 1);
  cr_expect(strstr(out, "needs input 'x' as f32[2, 784]") != NULL, "%s", out);
  free(out);
  unlink(ingot);
  unlink(in);
  unlink(outp);
}

// `smelt train` with a frozen layer, groups and the linear schedule, compiled
// for this CPU: the frozen weights in the final checkpoint are the initial
// ones exactly, the others moved, and the loss falls.
TEST(train, frozen_layer_keeps_its_initial_weights) {
  if (!have_data()) cr_skip_test("dataset-fashion-mnist is not installed");
  char dir[] = "/tmp/smelt-freeze-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char path[128], ckpt[128], init[128], args[512], err[256], *out;
  snprintf(path, sizeof path, "%s/m.smelt", dir);
  snprintf(ckpt, sizeof ckpt, "%s/m.ckpt", dir);
  snprintf(init, sizeof init, "%s/m.init", dir);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs("import \"nn\"\nmodel m(B = 16) {\n  input x: f32[B, 784]\n  input y: i32[B]\n"
        "  let h = relu(linear(x, 16) as fc1)\n  output logits = linear(h, 10) as fc2\n"
        "  loss cross_entropy(logits, y)\n}\n"
        "train {\n  optimizer = adamw(lr = 1e-2, weight_decay = 0.1)\n"
        "  schedule = linear(warmup = 5, decay_to = 0.1)\n  freeze = \"fc1.*\"\n"
        "  group \"*.b\" { weight_decay = 0 }\n  steps = 40\n  data train {\n"
        "    x = idx(\"/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz\", scale = 1 / 255)\n"
        "    y = idx(\"/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz\")\n  }\n}\n", f);
  fclose(f);
  snprintf(args, sizeof args, "train %s --checkpoint=%s --log-every=10 --threads=2", path, ckpt);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  double first, last;
  first_last_loss(out, &first, &last);
  cr_expect_lt(last, first, "loss went from %g to %g:\n%s", first, last, out);
  free(out);
  snprintf(args, sizeof args, "init %s -o %s", path, init);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  TensorEntry *a, *b;
  int na, nb;
  cr_assert_eq(tensorfile_read(init, &a, &na, err, sizeof err), 0, "%s", err);
  cr_assert_eq(tensorfile_read(ckpt, &b, &nb, err, sizeof err), 0, "%s", err);
  const char *names[] = {"fc1.w", "fc1.b", "fc2.w", "fc2.b"};
  for (int k = 0; k < 4; k++) {
    const TensorEntry *t0 = tensorfile_find(a, na, names[k]), *t1 = tensorfile_find(b, nb, names[k]);
    cr_assert(t0 && t1, "%s missing", names[k]);
    int64_t n = shape_numel(&t0->shape), same = 0;
    for (int64_t i = 0; i < n; i++) same += t0->data[i] == t1->data[i];
    if (k < 2) cr_expect_eq(same, n, "frozen %s changed in %lld of %lld values", names[k], (long long)(n - same), (long long)n);
    else cr_expect_lt(same, n / 2, "%s barely trained: %lld of %lld values unchanged", names[k], (long long)same, (long long)n);
  }
  cr_expect_null(tensorfile_find(b, nb, "fc1.w.m"), "a frozen parameter has optimizer state");
  cr_expect_not_null(tensorfile_find(b, nb, "fc2.w.m"));
  tensorfile_free(a, na);
  tensorfile_free(b, nb);
  snprintf(args, sizeof args, "rm -rf %s", dir);
  cr_expect_eq(system(args), 0);
}

// ---- non-finite values, labels and the step counter, on small CSV data

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "%s", path);
  fputs(text, f);
  fclose(f);
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = malloc(1 << 20);
  *len = fread(buf, 1, 1 << 20, f);
  fclose(f);
  return buf;
}

// A model on 16 rows of x (2 values) and y (a class 0..2), in a fresh folder;
// loss_expr replaces the loss, y_text the labels.
static void write_csv_model(const char *dir, const char *loss_expr, const char *y_text) {
  char path[256], text[4096];
  snprintf(path, sizeof path, "%s/x.csv", dir);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  for (int i = 0; i < 16; i++) fprintf(f, "%g,%g\n", 0.1 * i, 1 - 0.05 * i);
  fclose(f);
  snprintf(path, sizeof path, "%s/y.csv", dir);
  if (y_text) {
    write_file(path, y_text);
  } else {
    f = fopen(path, "w");
    for (int i = 0; i < 16; i++) fprintf(f, "%d\n", i % 3);
    fclose(f);
  }
  snprintf(text, sizeof text,
           "import \"nn\"\nmodel m(B = 4) {\n  input x: f32[B, 2]\n  input y: i32[B]\n"
           "  param w: f32[2] = zeros\n  output logits = linear(x, 3) as fc\n  loss %s\n}\n"
           "train {\n  optimizer = sgd(lr = 0.1)\n  steps = 6\n  checkpoint_every = 1\n  data train {\n"
           "    x = csv(\"%s/x.csv\")\n    y = csv(\"%s/y.csv\")\n  }\n}\n",
           loss_expr, dir, dir);
  snprintf(path, sizeof path, "%s/m.smelt", dir);
  write_file(path, text);
}

// write_csv_model's model with its data block's lines replaced by data.
static void write_data_model(const char *dir, const char *name, const char *data) {
  char path[256], text[4096];
  snprintf(text, sizeof text,
           "import \"nn\"\nmodel m(B = 4) {\n  input x: f32[B, 2]\n  input y: i32[B]\n"
           "  output logits = linear(x, 3) as fc\n  loss cross_entropy(logits, y)\n}\n"
           "train {\n  optimizer = sgd(lr = 0.1)\n  steps = 6\n  data train {\n%s  }\n}\n", data);
  snprintf(path, sizeof path, "%s/%s.smelt", dir, name);
  write_file(path, text);
}

// A version-1 .npy of descr and shape (a Python tuple's text) holding len bytes.
static void write_npy(const char *path, const char *descr, const char *shape, const void *data, size_t len) {
  char head[256];
  int n = snprintf(head, sizeof head, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
  int total = (10 + n + 1 + 63) / 64 * 64;
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f, "%s", path);
  unsigned char len16[2] = {(unsigned char)(total - 10), (unsigned char)((total - 10) >> 8)};
  fwrite("\x93NUMPY\x01\x00", 1, 8, f);
  fwrite(len16, 1, 2, f);
  fwrite(head, 1, (size_t)n, f);
  for (int i = 10 + n; i < total - 1; i++) fputc(' ', f);
  fputc('\n', f);
  fwrite(data, 1, len, f);
  fclose(f);
}

// The same 16 samples from two CSV files, from columns of one CSV file and
// from two .npy files train to the same checkpoint.
TEST(train, csv_columns_and_npy_feed_the_same_samples) {
  char dir[] = "/tmp/smelt-sources-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  write_csv_model(dir, "cross_entropy(logits, y)", NULL);   // x.csv, y.csv
  char path[256];
  snprintf(path, sizeof path, "%s/all.csv", dir);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fprintf(f, "label,a,b\n");
  float x[32];
  int64_t y[16];
  for (int i = 0; i < 16; i++) {
    fprintf(f, "%d,%g,%g\n", i % 3, 0.1 * i, 1 - 0.05 * i);
    x[2 * i] = (float)(0.1 * i), x[2 * i + 1] = (float)(1 - 0.05 * i), y[i] = i % 3;
  }
  fclose(f);
  snprintf(path, sizeof path, "%s/x.npy", dir);
  write_npy(path, "<f4", "(16, 2)", x, sizeof x);
  snprintf(path, sizeof path, "%s/y.npy", dir);
  write_npy(path, "<i8", "(16,)", y, sizeof y);
  write_data_model(dir, "files", "    x = csv(\"x.csv\")\n    y = csv(\"y.csv\")\n");
  write_data_model(dir, "columns", "    x = csv(\"all.csv\", columns = [\"a\", 2])\n"
                                   "    y = csv(\"all.csv\", columns = \"label\")\n");
  write_data_model(dir, "npy", "    x = npy(\"x.npy\")\n    y = npy(\"y.npy\")\n");
  const char *names[] = {"files", "columns", "npy"};
  char *params[3];
  size_t len[3];
  for (int i = 0; i < 3; i++) {
    char args[512], *out;
    snprintf(args, sizeof args, "train %s/%s.smelt --checkpoint=%s/%s.ckpt --force --threads=1", dir, names[i],
             dir, names[i]);
    int rc = smelt(args, &out);
    cr_assert_eq(rc, 0, "%s: %s", names[i], out);
    free(out);
    snprintf(args, sizeof args, "%s/%s.ckpt", dir, names[i]);
    params[i] = read_file(args, &len[i]);
    cr_assert_not_null(params[i], "%s", args);
  }
  cr_expect(len[1] == len[0] && !memcmp(params[1], params[0], len[0]),
            "columns of one file train differently from two files");
  cr_expect(len[2] == len[0] && !memcmp(params[2], params[0], len[0]),
            ".npy files train differently from CSV files");
  for (int i = 0; i < 3; i++) free(params[i]);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
}

// A tiny language model on the token stream that source gives.
static void write_token_model(const char *dir, const char *name, const char *source) {
  char path[256], text[2048];
  snprintf(text, sizeof text,
           "import \"nn\"\nmodel m(B = 2, T = 4, V = 16, C = 4) {\n  input idx: i32[B, T]\n  input next: i32[B, T]\n"
           "  param wte: f32[V, C] = normal(0.0, 0.5)\n  output logits = gather(wte, idx) @ wte.T\n"
           "  loss cross_entropy(logits, next)\n}\n"
           "train {\n  optimizer = sgd(lr = 0.1)\n  steps = 8\n  seed = 3\n  data train {\n"
           "    idx, next = %s\n  }\n}\n", source);
  snprintf(path, sizeof path, "%s/%s.smelt", dir, name);
  write_file(path, text);
}

// llm.c shards read by a glob are one stream: training on two of them gives
// the checkpoint that training on their tokens in one raw u16 file gives.
TEST(train, llmc_shards_train_as_one_raw_stream) {
  char dir[] = "/tmp/smelt-shards-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  unsigned char raw[2 * 200];
  for (int i = 0; i < 200; i++) raw[2 * i] = (unsigned char)(i * 7 % 16), raw[2 * i + 1] = 0;
  char path[256];
  snprintf(path, sizeof path, "%s/all.u16", dir);
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  fwrite(raw, 1, sizeof raw, f);
  fclose(f);
  for (int s = 0; s < 2; s++) {   // tokens 0..119 and 120..199
    int first = s ? 120 : 0, n = s ? 80 : 120;
    unsigned char head[1024] = {0};
    uint32_t words[3] = {20240520, 1, (uint32_t)n};
    for (int w = 0; w < 3; w++)
      for (int k = 0; k < 4; k++) head[4 * w + k] = (unsigned char)(words[w] >> (8 * k));
    snprintf(path, sizeof path, "%s/train_%06d.bin", dir, s);
    f = fopen(path, "wb");
    cr_assert_not_null(f);
    fwrite(head, 1, sizeof head, f);
    fwrite(raw + 2 * first, 1, 2 * (size_t)n, f);
    fclose(f);
  }
  write_token_model(dir, "raw", "tokens(\"all.u16\")");
  write_token_model(dir, "shards", "tokens(\"train_*.bin\", dtype = \"llm.c\")");
  write_token_model(dir, "wrong", "tokens(\"train_000000.bin\")");
  char *ckpt[2];
  size_t len[2];
  const char *names[] = {"raw", "shards"};
  for (int i = 0; i < 2; i++) {
    char args[512], *out;
    snprintf(args, sizeof args, "train %s/%s.smelt --checkpoint=%s/%s.ckpt --force --threads=1", dir, names[i],
             dir, names[i]);
    int rc = smelt(args, &out);
    cr_assert_eq(rc, 0, "%s: %s", names[i], out);
    free(out);
    snprintf(args, sizeof args, "%s/%s.ckpt", dir, names[i]);
    ckpt[i] = read_file(args, &len[i]);
    cr_assert_not_null(ckpt[i], "%s", args);
  }
  cr_expect(len[1] == len[0] && !memcmp(ckpt[1], ckpt[0], len[0]), "the shards train differently");
  free(ckpt[0]);
  free(ckpt[1]);
  // a shard read as raw u16 tokens is refused, saying how to read it
  char args[512], *out;
  snprintf(args, sizeof args, "train %s/wrong.smelt --checkpoint=%s/w.ckpt --force --threads=1", dir, dir);
  cr_expect_neq(smelt(args, &out), 0, "%s", out);
  cr_expect(strstr(out, "is an llm.c token shard") && strstr(out, "dtype = \"llm.c\""), "%s", out);
  free(out);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
}

// sqrt(w * w) at w = 0: the loss is finite (0) but its gradient is 0 * inf =
// NaN. The NaN update must not be saved over the checkpoint already there.
TEST(train, nonfinite_update_is_not_saved) {
  char dir[] = "/tmp/smelt-nan-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  write_csv_model(dir, "cross_entropy(logits, y) + sum(sqrt(w * w))", NULL);
  char ckpt[128], args[512], *out;
  snprintf(ckpt, sizeof ckpt, "%s/m.ckpt", dir);
  write_file(ckpt, "the last good checkpoint");
  snprintf(args, sizeof args, "train %s/m.smelt --checkpoint=%s --force --threads=1", dir, ckpt);
  int rc = smelt(args, &out);
  cr_expect_neq(rc, 0, "%s", out);
  char want[320];   // the tensor, its model-file line (the param statement) and the element
  snprintf(want, sizeof want, "after step 0, 'w' (%s/m.smelt:5) holds nan at [0]; nothing saved", dir);
  cr_expect(strstr(out, want) != NULL, "%s", out);
  cr_expect(strstr(out, "A non-finite update: a learning rate too high") != NULL, "%s", out);
  cr_expect(strstr(out, "holds the last good state") != NULL, "%s", out);
  free(out);
  size_t len;
  char *kept = read_file(ckpt, &len);
  cr_assert_not_null(kept);
  cr_expect(len == strlen("the last good checkpoint") && !memcmp(kept, "the last good checkpoint", len),
            "the checkpoint was replaced");
  free(kept);
  snprintf(args, sizeof args, "rm -rf %s", dir);
  cr_expect_eq(system(args), 0);
}

// Trains write_csv_model's model with loss_expr in a fresh folder, with the
// extra flags; expects a failure whose output holds want (one %s in it is
// the folder).
static void expect_train_fails(const char *loss_expr, const char *flags, const char *want) {
  char dir[] = "/tmp/smelt-nanloss-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  write_csv_model(dir, loss_expr, NULL);
  char args[512], text[512], *out;
  snprintf(args, sizeof args, "train %s/m.smelt --threads=1 %s", dir, flags);
  cr_expect_neq(smelt(args, &out), 0, "%s", out);
  snprintf(text, sizeof text, want, dir);
  cr_expect(strstr(out, text) != NULL, "no '%s' in: %s", text, out);
  free(out);
  snprintf(args, sizeof args, "rm -rf %s", dir);
  cr_expect_eq(system(args), 0);
}

// sqrt(w * w + 0.7 - mean(x)): finite for the first batch (mean(x) below 0.7),
// then the square root of a negative, whose gradient makes w NaN in the same
// step. Without --check-finite the state before the step is unknown, and the
// message says both causes are possible; with it, the state after step 0 was
// checked, so the step's own arithmetic is named.
TEST(train, nonfinite_loss_from_finite_state_is_told_apart) {
  const char *loss = "cross_entropy(logits, y) + sum(sqrt(w * w + 0.7 - mean(x)))";
  expect_train_fails(loss, "", "the loss is nan at step 1; after its update 'w' (%s/m.smelt:5) holds nan at [0]. The "
                     "state before this step was not checked: an earlier update that was not finite, or this step's "
                     "own arithmetic from finite values, made it so (train with --check-finite");
  expect_train_fails(loss, "--check-finite", "the loss is nan at step 1; the batch and the state before this step are "
                     "finite (--check-finite checked them), so the model computes it");
}

// --check-finite stops at the step whose update first goes non-finite, with a
// finite loss, before any save.
TEST(train, check_finite_stops_at_the_update) {
  expect_train_fails("cross_entropy(logits, y) + sum(sqrt(w * w))", "--check-finite",
                     "after step 0, 'w' (%s/m.smelt:5) holds nan at [0]; nothing saved");
}

// The ingot records each parameter's model-file line for these messages: a
// param statement's own line, a layer's parameters the line of the model's
// call, and an optimizer state its parameter's.
TEST(train, the_ingot_records_each_parameters_model_file_line) {
  char dir[] = "/tmp/smelt-at-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  write_csv_model(dir, "cross_entropy(logits, y) + sum(w * w)", NULL);
  char path[160], args[512], *out;
  snprintf(path, sizeof path, "%s/m.smelt", dir);
  char *text = slurp(path);   // NUL-terminated: strstr and write_file read it as a string
  char *sgd = strstr(text, "sgd(lr = 0.1)");
  cr_assert_not_null(sgd);
  memcpy(sgd, "adam(lr=0.1) ", 13);   // with optimizer state
  write_file(path, text);
  free(text);
  snprintf(args, sizeof args, "build %s/m.smelt -o %s/m.ingot", dir, dir);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  snprintf(args, sizeof args, "inspect %s/m.ingot", dir);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  const char *want[] = {"at.w=%s/m.smelt:5", "at.fc.w=%s/m.smelt:6", "at.fc.b=%s/m.smelt:6", "at.fc.w.m=%s/m.smelt:6",
                        "at.w.v=%s/m.smelt:5"};
  for (int k = 0; k < 5; k++) {
    char line[256];
    snprintf(line, sizeof line, want[k], dir);
    cr_expect(strstr(out, line) != NULL, "no %s in:\n%s", line, out);
  }
  cr_expect(strstr(out, "at.step=") == NULL, "the step counter has no model-file line");
  free(out);
  snprintf(args, sizeof args, "rm -rf %s", dir);
  cr_expect_eq(system(args), 0);
}

// A label must be a whole number that fits i32 before it is converted.
TEST(train, labels_must_be_whole_numbers_in_range) {
  char dir[] = "/tmp/smelt-labels-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  const char *bad[] = {"0\n1\n2.5\n0\n", "0\n1\n3e9\n0\n"};
  const char *want[] = {"input 'y' is i32, but sample 2 holds 2.5", "input 'y' is i32, but sample 2 holds 3000000000"};
  for (int k = 0; k < 2; k++) {
    char y[1024] = "";
    for (int i = 0; i < 4; i++) strcat(y, bad[k]);
    write_csv_model(dir, "cross_entropy(logits, y)", y);
    char args[512], *out;
    snprintf(args, sizeof args, "train %s/m.smelt --threads=1", dir);
    cr_expect_neq(smelt(args, &out), 0, "%s", out);
    cr_expect(strstr(out, want[k]) != NULL, "%s", out);
    free(out);
  }
  char args[512];
  snprintf(args, sizeof args, "rm -rf %s", dir);
  cr_expect_eq(system(args), 0);
}

// A checkpoint from before the step counter was an i64 holds it as f32: a
// whole number converts exactly and the run resumes there; a NaN or a
// fraction is refused when loading and a negative count by the trainer, with
// a message each (converting NaN to an integer would be undefined).
TEST(train, resume_converts_an_f32_step_exactly_or_refuses_it) {
  char dir[] = "/tmp/smelt-step-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  write_csv_model(dir, "cross_entropy(logits, y)", NULL);
  char ckpt[128], args[512], err[256], *out;
  snprintf(ckpt, sizeof ckpt, "%s/m.ckpt", dir);
  snprintf(args, sizeof args, "train %s/m.smelt --checkpoint=%s --threads=1 --stop-after=2", dir, ckpt);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  const double values[] = {3, NAN, -1, 2.5};
  const char *want[] = {"resumed from %s at step 3\n",
                        "cannot resume: '%s' holds 'step' as f32, and its element 0 is nan, which the model's i64 does not hold exactly",
                        "cannot resume: the step counter in %s is -1, not a count of steps",
                        "cannot resume: '%s' holds 'step' as f32, and its element 0 is 2.5, which the model's i64 does not hold exactly"};
  for (int k = 0; k < 4; k++) {
    TensorEntry *t;
    int n;
    cr_assert_eq(tensorfile_read(ckpt, &t, &n, err, sizeof err), 0, "%s", err);
    TensorEntry *step = (TensorEntry *)tensorfile_find(t, n, "step");
    cr_assert_not_null(step);
    step->data[0] = values[k];
    char bad[160];
    snprintf(bad, sizeof bad, "%s/old%d.ckpt", dir, k);
    cr_assert_eq(tensorfile_write(bad, t, n, err, sizeof err), 0, "%s", err);   // every tensor as f32
    tensorfile_free(t, n);
    snprintf(args, sizeof args, "train %s/m.smelt --checkpoint=%s --resume --threads=1", dir, bad);
    int rc = smelt(args, &out);
    cr_expect_eq(rc != 0, k > 0, "%s", out);
    char line[320];
    snprintf(line, sizeof line, want[k], bad);
    cr_expect(strstr(out, line) != NULL, "want \"%s\" in:\n%s", line, out);
    free(out);
  }
  snprintf(args, sizeof args, "rm -rf %s", dir);
  cr_expect_eq(system(args), 0);
}

// Copies the checkpoint src to dst with the step counter (an i64) set to step.
static void copy_with_step(const char *src, const char *dst, int64_t step) {
  char err[256];
  TensorReader *r = tensor_reader_open(src, err, sizeof err);
  cr_assert_not_null(r, "%s", err);
  int n = (int)tensor_reader_count(r);
  char **names = calloc((size_t)n, sizeof *names), **bytes = calloc((size_t)n, sizeof *bytes);
  uint32_t *dtypes = calloc((size_t)n, sizeof *dtypes);
  Shape *shapes = calloc((size_t)n, sizeof *shapes);
  for (int i = 0; i < n; i++) {
    const char *name;
    cr_assert(tensor_reader_next(r, &name, &dtypes[i], &shapes[i]));
    names[i] = strdup(name);
    uint64_t size = (uint64_t)shape_numel(&shapes[i]) * (uint64_t)dtype_size(dtypes[i]);
    bytes[i] = malloc(size ? size : 1);
    cr_assert(tensor_reader_bytes(r, bytes[i], size));
    if (!strcmp(name, "step")) {
      cr_assert_eq(dtypes[i], DT_I64, "the step counter is a %s", dtype_name(dtypes[i]));
      memcpy(bytes[i], &step, sizeof step);
    }
  }
  tensor_reader_close(r);
  TensorWriter *w = tensor_writer_open(dst, n, (const char *const *)names, dtypes, shapes, err, sizeof err);
  cr_assert_not_null(w, "%s", err);
  for (int i = 0; i < n; i++)
    cr_assert(tensor_writer_bytes(w, bytes[i], (uint64_t)shape_numel(&shapes[i]) * (uint64_t)dtype_size(dtypes[i])));
  cr_assert_eq(tensor_writer_close(w, true, err, sizeof err), 0, "%s", err);
  for (int i = 0; i < n; i++) {
    free(names[i]);
    free(bytes[i]);
  }
  free(names);
  free(bytes);
  free(dtypes);
  free(shapes);
}

// The step counter saved in a checkpoint, or -1 when it cannot be read.
static double saved_step(const char *path) {
  TensorEntry *t;
  int n;
  char err[256];
  if (tensorfile_read(path, &t, &n, err, sizeof err)) return -1;
  const TensorEntry *step = tensorfile_find(t, n, "step");
  double v = step ? step->data[0] : -1;
  tensorfile_free(t, n);
  return v;
}

// The step counter is an i64: a run resumed at 2^24 + 5 (where an f32
// counter no longer counts) goes on from there and saves 2^24 + 7; a
// negative one is refused.
TEST(train, the_step_counts_past_2_24) {
  char dir[] = "/tmp/smelt-step-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  write_csv_model(dir, "cross_entropy(logits, y)", NULL);
  char ckpt[128], big[160], neg[160], args[640], *out;
  snprintf(ckpt, sizeof ckpt, "%s/m.ckpt", dir);
  snprintf(big, sizeof big, "%s/big.ckpt", dir);
  snprintf(neg, sizeof neg, "%s/neg.ckpt", dir);
  snprintf(args, sizeof args, "train %s/m.smelt --checkpoint=%s --threads=1 --stop-after=1", dir, ckpt);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  const int64_t at = (INT64_C(1) << 24) + 5;
  copy_with_step(ckpt, big, at);
  copy_with_step(ckpt, neg, -1);
  snprintf(args, sizeof args, "train %s/m.smelt --checkpoint=%s --resume --steps=%lld --threads=1", dir, big,
           (long long)at + 2);
  cr_expect_eq(smelt(args, &out), 0, "%s", out);
  char want[256];
  snprintf(want, sizeof want, "resumed from %s at step %lld\n", big, (long long)at);
  cr_expect(strstr(out, want) != NULL, "%s", out);
  free(out);
  cr_expect_eq(saved_step(big), (double)(at + 2));
  snprintf(args, sizeof args, "train %s/m.smelt --checkpoint=%s --resume --threads=1", dir, neg);
  cr_expect_neq(smelt(args, &out), 0, "%s", out);
  snprintf(want, sizeof want, "the step counter in %s is -1, not a count of steps", neg);
  cr_expect(strstr(out, want) != NULL, "%s", out);
  free(out);
  snprintf(args, sizeof args, "rm -rf %s", dir);
  cr_expect_eq(system(args), 0);
}

// A run without --resume does not start over an existing checkpoint: it
// would replace it at the first save. --force does; --resume continues it.
TEST(train, a_fresh_run_refuses_an_existing_checkpoint) {
  char dir[] = "/tmp/smelt-exists-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  write_csv_model(dir, "cross_entropy(logits, y)", NULL);
  char ckpt[128], args[512], want[512], *out;
  snprintf(ckpt, sizeof ckpt, "%s/m.ckpt", dir);
  snprintf(args, sizeof args, "train %s/m.smelt --checkpoint=%s --threads=1 --stop-after=2", dir, ckpt);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  cr_expect_eq(saved_step(ckpt), 2);
  cr_expect_eq(smelt(args, &out), 1, "%s", out);
  snprintf(want, sizeof want,
           "smelt: error: the checkpoint %s exists (step 2): --resume continues it, --force starts over and replaces it",
           ckpt);
  cr_expect(strstr(out, want) != NULL, "%s", out);
  cr_expect(strstr(out, "building") == NULL, "refused only after a build: %s", out);
  free(out);
  cr_expect_eq(saved_step(ckpt), 2, "the refused run touched the checkpoint");
  snprintf(args, sizeof args, "train %s/m.smelt --checkpoint=%s --threads=1 --resume --force", dir, ckpt);
  cr_expect_eq(smelt(args, &out), 2, "%s", out);
  cr_expect(strstr(out, "--resume continues the checkpoint; --force starts over") != NULL, "%s", out);
  free(out);
  snprintf(args, sizeof args, "train %s/m.smelt --threads=1 --force", dir);
  cr_expect_eq(smelt(args, &out), 2, "%s", out);
  cr_expect(strstr(out, "--force needs --checkpoint=PATH") != NULL, "%s", out);
  free(out);
  snprintf(args, sizeof args, "train %s/m.smelt --checkpoint=%s --threads=1 --stop-after=1 --force", dir, ckpt);
  cr_expect_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  cr_expect_eq(saved_step(ckpt), 1, "--force did not start over");
  // a file that is not a tensor file is named as such
  char junk[160];
  snprintf(junk, sizeof junk, "%s/junk.ckpt", dir);
  write_file(junk, "not tensors\n");
  snprintf(args, sizeof args, "train %s/m.smelt --checkpoint=%s --threads=1", dir, junk);
  cr_expect_eq(smelt(args, &out), 1, "%s", out);
  snprintf(want, sizeof want, "smelt: error: %s exists and is not a checkpoint: --force replaces it", junk);
  cr_expect(strstr(out, want) != NULL, "%s", out);
  free(out);
  // another model's checkpoint does not resume, and the message says how to replace it
  char other[160];
  snprintf(other, sizeof other, "%s/other.smelt", dir);
  write_file(other, "import \"nn\"\nmodel m(B = 4) {\n  input x: f32[B, 2]\n  input y: i32[B]\n"
             "  output logits = linear(relu(linear(x, 5) as h), 3) as fc\n  loss cross_entropy(logits, y)\n}\n"
             "train {\n  optimizer = sgd(lr = 0.1)\n  steps = 6\n  data train {\n"
             "    x = csv(\"x.csv\")\n    y = csv(\"y.csv\")\n  }\n}\n");
  snprintf(other, sizeof other, "%s/other.ckpt", dir);
  snprintf(args, sizeof args, "train %s/other.smelt --checkpoint=%s --threads=1 --stop-after=1", dir, other);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  snprintf(args, sizeof args, "train %s/m.smelt --checkpoint=%s --threads=1 --resume", dir, other);
  cr_expect_eq(smelt(args, &out), 1, "%s", out);
  snprintf(want, sizeof want, "(--force starts over and replaces %s)", other);
  cr_expect(strstr(out, "smelt: error: cannot resume: ") && strstr(out, want), "%s", out);
  free(out);
  cr_expect_eq(saved_step(other), 1, "a refused resume touched the other model's checkpoint");
  snprintf(want, sizeof want,
           "smelt: error: the checkpoint %s exists (step 1): --resume continues it, --force starts over and replaces it",
           ckpt);
  // an ingot refuses the same way, in smelt-rt too
  char ingot[160];
  snprintf(ingot, sizeof ingot, "%s/m.ingot", dir);
  snprintf(args, sizeof args, "build %s/m.smelt -o %s", dir, ingot);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  snprintf(args, sizeof args, "%s-rt train %s --checkpoint=%s --device=cpu --threads=1", smelt_path(), ingot, ckpt);
  cr_expect_eq(run_cmd(args, &out), 1, "%s", out);
  cr_expect(strstr(out, want) != NULL, "%s", out);
  free(out);
  snprintf(args, sizeof args, "%s-rt train %s --checkpoint=%s --device=cpu --threads=1 --resume", smelt_path(), ingot,
           ckpt);
  cr_expect_eq(run_cmd(args, &out), 0, "%s", out);
  cr_expect(strstr(out, "resumed from") != NULL, "%s", out);
  free(out);
  cr_expect_eq(saved_step(ckpt), 6);
  snprintf(args, sizeof args, "rm -rf %s", dir);
  cr_expect_eq(system(args), 0);
}

// --resume before the first checkpoint exists starts from step 0 and says so,
// so that a job restarted with the same command line works from its first run;
// a checkpoint that exists but cannot be loaded is still an error.
TEST(train, resume_without_a_checkpoint_yet_starts_fresh) {
  char dir[] = "/tmp/smelt-resume0-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  write_csv_model(dir, "cross_entropy(logits, y)", NULL);
  char ckpt[128], args[512], want[512], *out;
  snprintf(ckpt, sizeof ckpt, "%s/m.ckpt", dir);
  snprintf(args, sizeof args, "train %s/m.smelt --checkpoint=%s --threads=1 --stop-after=2 --resume", dir, ckpt);
  cr_expect_eq(smelt(args, &out), 0, "%s", out);
  snprintf(want, sizeof want, "no checkpoint at %s yet: starting from step 0", ckpt);
  cr_expect(strstr(out, want) != NULL, "%s", out);
  free(out);
  cr_expect_eq(saved_step(ckpt), 2);
  cr_expect_eq(smelt(args, &out), 0, "%s", out);   // the same command continues
  cr_expect(strstr(out, "at step 2") != NULL, "%s", out);
  free(out);
  cr_expect_eq(saved_step(ckpt), 4);
  FILE *f = fopen(ckpt, "wb");   // present but not a checkpoint
  cr_assert_not_null(f);
  fputs("junk", f);
  fclose(f);
  cr_expect_eq(smelt(args, &out), 1, "%s", out);
  cr_expect(strstr(out, "smelt: error: cannot resume:") != NULL, "%s", out);
  free(out);
  snprintf(args, sizeof args, "rm -rf %s", dir);
  cr_expect_eq(system(args), 0);
}

// A relative data path is relative to the model file, and the ingot records
// it as an absolute path: the ingot then reads the same files from any folder,
// never a same-named file in whatever folder it is run from.
TEST(train, relative_data_paths_are_the_model_files_and_absolute_in_the_ingot) {
  char dir[] = "/tmp/smelt-rel-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char path[256], args[1024], want[512], *out;
  snprintf(path, sizeof path, "%s/proj", dir);
  cr_assert_eq(mkdir(path, 0700), 0);
  snprintf(path, sizeof path, "%s/proj/x.csv", dir);
  write_file(path, "1,2\n3,4\n5,6\n7,8\n");
  snprintf(path, sizeof path, "%s/proj/y.csv", dir);
  write_file(path, "0\n1\n0\n1\n");
  snprintf(path, sizeof path, "%s/proj/m.smelt", dir);
  write_file(path, "import \"nn\"\nmodel m(B = 2) {\n  input x: f32[B, 2]\n  input y: i32[B]\n"
                   "  output logits = linear(x, 2) as fc\n  loss cross_entropy(logits, y)\n}\n"
                   "train {\n  optimizer = sgd(lr = 0.1)\n  steps = 2\n  data train {\n"
                   "    x = csv(\"x.csv\")\n    y = csv(\"y.csv\")\n  }\n}\n");
  snprintf(args, sizeof args, "cd %s && %s build proj/m.smelt -o m.ingot && %s inspect --all m.ingot", dir, smelt_path(),
           smelt_path());
  cr_assert_eq(run_cmd(args, &out), 0, "%s", out);
  snprintf(want, sizeof want, "data.train.x=csv:1:0:1:-:%s/proj/x.csv\n", dir);
  cr_expect(strstr(out, want) != NULL, "%s", out);
  free(out);
  snprintf(args, sizeof args, "cd / && %s-rt train %s/m.ingot --device=cpu --threads=1", smelt_path(), dir);
  cr_expect_eq(run_cmd(args, &out), 0, "%s", out);
  cr_expect(strstr(out, "trained 2 steps") != NULL, "%s", out);
  free(out);
  snprintf(args, sizeof args, "rm -rf %s", dir);
  cr_expect_eq(system(args), 0);
}

// fp16 skips a step whose scaled gradients overflow and halves the scale, to
// 1 at least. A run in which every step skipped, down to scale 1, trained
// nothing: that is an error, not a run that exits 0 with its parameters as
// they started.
TEST(train, a_run_in_which_every_fp16_step_skipped_is_an_error) {
  char dir[] = "/tmp/smelt-skip-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char path[256], args[1024], *out;
  snprintf(path, sizeof path, "%s/x.csv", dir);
  write_file(path, "0.1,0.2\n0.3,0.4\n0.5,0.6\n0.7,0.8\n");
  snprintf(path, sizeof path, "%s/m.smelt", dir);
  // d(loss)/d(out) = 1e6 / 4 overflows f16 (65504) at every scale
  write_file(path, "import \"nn\"\nmodel m(B = 4) {\n  input x: f32[B, 2]\n"
                   "  loss mean(linear(x, 1) as fc) * 1000000\n}\n"
                   "train {\n  optimizer = sgd(lr = 0.1)\n  precision = fp16\n  steps = 20\n  data train {\n"
                   "    x = csv(\"x.csv\")\n  }\n}\n");
  snprintf(args, sizeof args, "train %s/m.smelt --threads=1", dir);
  cr_expect_eq(smelt(args, &out), 1, "%s", out);
  cr_expect(strstr(out, "smelt: error: every one of the 20 steps skipped its update") != NULL, "%s", out);
  free(out);
  // fewer steps than it takes the scale to reach 1: still backing off, not an error
  snprintf(args, sizeof args, "train %s/m.smelt --threads=1 --steps=5", dir);
  cr_expect_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  snprintf(args, sizeof args, "rm -rf %s", dir);
  cr_expect_eq(system(args), 0);
}

// A loss that is not finite while the batch and the parameters are says so
// (log of 0), instead of blaming the learning rate, and saves nothing.
TEST(train, a_loss_the_model_makes_infinite_is_named_as_the_models) {
  char dir[] = "/tmp/smelt-log0-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char path[256], args[1024], *out;
  snprintf(path, sizeof path, "%s/x.csv", dir);
  write_file(path, "0.1,0.2\n0.3,0.4\n0.5,0.6\n0.7,0.8\n");
  snprintf(path, sizeof path, "%s/m.smelt", dir);
  write_file(path, "import \"nn\"\nmodel m(B = 4) {\n  input x: f32[B, 2]\n  let h = linear(x, 1) as fc\n"
                   "  loss mean(log(h * 0))\n}\n"
                   "train {\n  optimizer = sgd(lr = 0.1)\n  steps = 3\n  checkpoint_every = 1\n  data train {\n"
                   "    x = csv(\"x.csv\")\n  }\n}\n");
  snprintf(args, sizeof args, "train %s/m.smelt --threads=1 --checkpoint=%s/m.ckpt", dir, dir);
  cr_expect_eq(smelt(args, &out), 1, "%s", out);
  cr_expect(strstr(out, "smelt: error: the loss is -inf at step 0; the batch and the state before this step are "
                        "finite (this is the run's first step), so the model computes it from them (log of 0") != NULL,
            "%s", out);
  cr_expect(strstr(out, "learning rate") == NULL, "%s", out);
  free(out);
  snprintf(path, sizeof path, "%s/m.ckpt", dir);
  cr_expect_neq(access(path, F_OK), 0, "a checkpoint was saved");
  snprintf(args, sizeof args, "rm -rf %s", dir);
  cr_expect_eq(system(args), 0);
}

// --keep=N keeps the N - 1 checkpoints before the newest as PATH.1, PATH.2,
// ..., newest first; the default keeps none.
TEST(train, keep_rotates_older_checkpoints) {
  char dir[] = "/tmp/smelt-keep-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  write_csv_model(dir, "cross_entropy(logits, y)", NULL);   // 6 steps, a checkpoint after each
  char ckpt[128], older[160], args[512], *out;
  snprintf(ckpt, sizeof ckpt, "%s/m.ckpt", dir);
  snprintf(args, sizeof args, "train %s/m.smelt --checkpoint=%s --threads=1", dir, ckpt);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  snprintf(older, sizeof older, "%s.1", ckpt);
  cr_expect_neq(access(older, F_OK), 0, "--keep=1 kept %s", older);
  snprintf(args, sizeof args, "train %s/m.smelt --checkpoint=%s --threads=1 --force --keep=3", dir, ckpt);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  cr_expect_eq(saved_step(ckpt), 6);
  for (int i = 1; i <= 3; i++) {
    snprintf(older, sizeof older, "%s.%d", ckpt, i);
    if (i < 3) cr_expect_eq(saved_step(older), 6 - i, "%s", older);
    else cr_expect_neq(access(older, F_OK), 0, "%s is kept too", older);
  }
  snprintf(args, sizeof args, "train %s/m.smelt --checkpoint=%s --threads=1 --keep=2", dir, ckpt);
  cr_expect_eq(smelt(args, &out), 1, "%s", out);   // keeping older ones is no licence to start over
  cr_expect(strstr(out, "exists (step 6): --resume continues it") != NULL, "%s", out);
  free(out);
  snprintf(args, sizeof args, "rm -rf %s", dir);
  cr_expect_eq(system(args), 0);
}
