// test_examples.c: every example end to end, at small sizes.
//
// The CNN, the convolutional autoencoder and the ResNet on Fashion-MNIST,
// the GPT, the LSTM and the GRU on the fortunes corpus each train a few dozen steps and their loss falls; `smelt sample` continues a
// prompt from a trained checkpoint, the same text for the same seed;
// `smelt build --entry=infer` leaves out everything training needs; `smelt
// bench` reports batch-1 latency. A test whose data is not installed is
// skipped, saying so.
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sha256.h"
#include "support.h"
#include "util.h"

static bool have(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

#define FASHION "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
#define FORTUNES "/usr/share/games/fortunes"

static int smelt(const char *args, char **out) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "NO_COLOR=1 %s %s", smelt_path(), args);
  return run_cmd(cmd, out);
}

// The first and last mean losses of the progress lines "step N/M ... loss L".
static void first_last(const char *out, double *first, double *last) {
  *first = *last = -1;
  for (const char *p = out; (p = strstr(p, "step ")); p++) {
    const char *l = strstr(p, " loss ");
    const char *eol = strchr(p, '\n');
    if (!l || (eol && l > eol)) continue;
    if (*first < 0) *first = atof(l + 6);
    *last = atof(l + 6);
  }
}

static void loss_falls(const char *args, double factor) {
  char *out;
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  double first, last;
  first_last(out, &first, &last);
  cr_expect_gt(first, 0, "%s", out);
  cr_expect_lt(last, first * factor, "the loss went from %g to %g:\n%s", first, last, out);
  free(out);
}

TEST(examples, cnn_loss_falls) {
  if (!have(FASHION)) cr_skip_test("dataset-fashion-mnist is not installed");
  loss_falls("train examples/cnn.smelt -D B=16 -D C1=8 -D C2=16 -D F=32 --steps=60 --log-every=20 --threads=2", 0.8);
}

TEST(examples, autoencoder_loss_falls) {
  if (!have(FASHION)) cr_skip_test("dataset-fashion-mnist is not installed");
  loss_falls("train examples/autoencoder.smelt -D B=16 -D C1=8 -D C2=8 --steps=60 --log-every=20 --threads=2", 0.8);
}

TEST(examples, resnet_loss_falls) {
  if (!have(FASHION)) cr_skip_test("dataset-fashion-mnist is not installed");
  loss_falls("train examples/resnet.smelt -D B=16 -D C=4 --steps=60 --log-every=20 --threads=2", 0.8);
}

TEST(examples, gpt_loss_falls) {
  if (!have(FORTUNES)) cr_skip_test("the fortunes package is not installed");
  // the train block warms the learning rate up over 200 steps: 100 steps see half of it
  loss_falls("train examples/gpt.smelt -D B=8 -D T=32 -D C=64 -D L=1 -D H=2 --steps=100 --log-every=20 --threads=2", 0.95);
}

TEST(examples, lstm_loss_falls) {
  if (!have(FORTUNES)) cr_skip_test("the fortunes package is not installed");
  loss_falls("train examples/lstm.smelt -D B=8 -D T=16 -D E=16 -D H=32 --steps=60 --log-every=20 --threads=2", 0.9);
}

TEST(examples, gru_loss_falls) {
  if (!have(FORTUNES)) cr_skip_test("the fortunes package is not installed");
  loss_falls("train examples/gru.smelt -D B=8 -D T=16 -D E=16 -D H=32 --steps=60 --log-every=20 --threads=2", 0.9);
}

// What `smelt sample` printed after the "building" line.
static char *sample(const char *ckpt, const char *opts) {
  char args[1024], *out;
  snprintf(args, sizeof args,
           "sample examples/gpt.smelt -D T=32 -D C=32 -D L=1 -D H=2 --checkpoint=%s --prompt=Th --length=40 "
           "--device=cpu --threads=1 %s", ckpt, opts);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  if (!strncmp(out, "building ", 9) && strchr(out, '\n')) {   // the build's line on stderr
    char *text = strchr(out, '\n') + 1;
    memmove(out, text, strlen(text) + 1);
  }
  return out;
}

TEST(examples, sampling_is_deterministic_for_a_seed) {
  if (!have(FORTUNES)) cr_skip_test("the fortunes package is not installed");
  char ckpt[64], args[512], *out;
  snprintf(ckpt, sizeof ckpt, "build/test-sample-%d.ckpt", (int)getpid());
  snprintf(args, sizeof args,
           "train examples/gpt.smelt -D B=8 -D T=32 -D C=32 -D L=1 -D H=2 --steps=20 --threads=2 --checkpoint=%s", ckpt);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  char *a = sample(ckpt, "--seed=5 --top-k=20 --temperature=0.8");
  char *b = sample(ckpt, "--seed=5 --top-k=20 --temperature=0.8");
  char *c = sample(ckpt, "--seed=6 --top-k=20 --temperature=0.8");
  char *g1 = sample(ckpt, "--seed=1 --temperature=0");
  char *g2 = sample(ckpt, "--seed=2 --temperature=0");
  cr_expect(!strncmp(a, "Th", 2), "the sample starts with its prompt: %s", a);
  cr_expect_geq(strlen(a), 42, "%s", a);
  cr_expect_str_eq(a, b, "the same seed gave other text");
  cr_expect_str_neq(a, c, "another seed gave the same text");
  cr_expect_str_eq(g1, g2, "temperature 0 takes the most likely byte whatever the seed");
  free(a), free(b), free(c), free(g1), free(g2);
  unlink(ckpt);
}

TEST(examples, an_inference_ingot_has_no_training_state) {
  char ingot[64], args[512], *out;
  snprintf(ingot, sizeof ingot, "build/test-infer-%d.ingot", (int)getpid());
  snprintf(args, sizeof args, "build examples/cnn.smelt --entry=infer -D B=1 -o %s", ingot);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  snprintf(args, sizeof args, "inspect %s", ingot);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "optimizer state: 0 bytes"), "%s", out);
  cr_expect_not_null(strstr(out, "  infer "), "%s", out);
  cr_expect_null(strstr(out, "train_step"), "%s", out);
  cr_expect_null(strstr(out, "  eval "), "%s", out);
  free(out);
  snprintf(args, sizeof args, "build examples/cnn.smelt --entry=eval -o %s", ingot);
  cr_expect_neq(smelt(args, &out), 0);
  cr_expect_not_null(strstr(out, "build --entry takes infer"), "%s", out);
  free(out);
  unlink(ingot);
}

TEST(examples, bench_reports_batch_1_latency) {
  char *out;
  cr_assert_eq(smelt("bench examples/cnn.smelt -D C1=8 -D C2=16 -D F=32 --batch=1 --runs=30 --device=cpu --threads=1", &out), 0,
               "%s", out);
  cr_expect_not_null(strstr(out, "cnn infer, batch 1, on cpu: median "), "%s", out);
  cr_expect_not_null(strstr(out, " p99 "), "%s", out);
  cr_expect_not_null(strstr(out, "over 30 runs"), "%s", out);
  free(out);
}

// The T steps of the unrolled LSTM are kernels alike but for their buffers:
// they share bodies, and training runs the same arithmetic as with one body
// per launch. The checkpoint's SHA-256 pins that arithmetic (x86-64-v3, so
// the same on every machine): it matched the build before bodies were
// shared, and changed only when every matmul came to sum with fused
// multiply-adds (codegen_expr.c, matmul_fma) and when the host's tanh and
// exp came to be computed inline (codegen_math.c, math_tanh_inline,
// math_exp_inline).
TEST(examples, lstm_shares_kernel_bodies_and_trains_to_the_same_weights) {
  if (!have(FORTUNES)) cr_skip_test("the fortunes package is not installed");
  char *out, args[512], ckpt[64], ingot[64];
  snprintf(ingot, sizeof ingot, "build/test-share-%d.ingot", (int)getpid());
  snprintf(args, sizeof args, "build -v examples/lstm.smelt -D B=4 -D T=8 -D E=8 -D H=16 -o %s", ingot);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  int launches = 0, bodies = 0;
  const char *p = strstr(out, "train_step: ");
  cr_assert(p && sscanf(p, "train_step: %d launches, %d distinct kernel bodies", &launches, &bodies) == 2, "%s", out);
  cr_expect_lt(2 * bodies, launches, "the unrolled steps share bodies: %s", out);
  free(out);
  unlink(ingot);
  snprintf(ckpt, sizeof ckpt, "build/test-share-%d.ckpt", (int)getpid());
  snprintf(args, sizeof args,
           "train examples/lstm.smelt -D B=4 -D T=8 -D E=8 -D H=16 --steps=20 --log-every=10 --threads=1 "
           "--cpu=x86-64-v3 --checkpoint=%s",
           ckpt);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  size_t len;
  char *data = file_read(ckpt, &len), hex[65];
  cr_assert_not_null(data);
  sha256_hex(data, len, hex);
  cr_expect_str_eq(hex, "ab51e3a4116ff59d2108539b74f96da0d50283ea3fa04cba22330ff1747ac979");
  free(data);
  unlink(ckpt);
}
