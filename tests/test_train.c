// test_train.c: `smelt train` and `smelt eval` end to end, on real data.
//
// Small MLPs on Fashion-MNIST from dataset-fashion-mnist (skipped, saying so,
// where the data is absent): the loss falls; training N steps, stopping and
// resuming for M more gives a checkpoint identical byte for byte to N + M
// steps in one run; a missing data file is one clear error.
#include <criterion/criterion.h>
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
