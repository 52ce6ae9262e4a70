// test_seed.c: one seed per model (docs/random.md). The train block's
// `seed` (default 1) gives the weights of `smelt init` and of a built
// ingot, and the ingot's META names it for training; `smelt init --seed`
// overrides it.
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"
#include "runtime.h"

// examples/mlp.smelt with `extra` instead of its `seed = 1`, written to a
// temporary file (path: 64 bytes).
static void mlp_with(const char *extra, char *path) {
  char *text = slurp("examples/mlp.smelt");
  char *own = strstr(text, "    seed = 1\n");   // the example's own seed line goes
  cr_assert_not_null(own);
  memmove(own, own + 13, strlen(own + 13) + 1);
  char *train = strstr(text, "train {\n");
  cr_assert_not_null(train);
  snprintf(path, 64, "build/test-seed-%d-%zu.smelt", (int)getpid(), strlen(extra));
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fprintf(f, "%.*s    %s\n%s", (int)(train - text + 8), text, extra, train + 8);
  fclose(f);
  free(text);
}

// The first value of fc1.w in a tensor file written by `smelt init FILE ARGS`.
static double init_value(const char *file, const char *args) {
  char out[64], cmd[512], *log;
  snprintf(out, sizeof out, "build/test-seed-%d.tensors", (int)getpid());
  snprintf(cmd, sizeof cmd, "%s init %s %s -o %s", smelt_path(), file, args, out);
  cr_assert_eq(run_cmd(cmd, &log), 0, "%s", log);
  free(log);
  TensorEntry *t;
  int n;
  char err[256];
  cr_assert_eq(tensorfile_read(out, &t, &n, err, sizeof err), 0, "%s", err);
  const TensorEntry *w = tensorfile_find(t, n, "fc1.w");
  cr_assert_not_null(w);
  double v = w->data[0];
  tensorfile_free(t, n);
  unlink(out);
  return v;
}

// The first value of fc1.w and the META seed of an ingot built from file.
static double built_value(const char *file, char *seed, size_t len) {
  char ingot[64], cmd[512], *log;
  snprintf(ingot, sizeof ingot, "build/test-seed-%d.ingot", (int)getpid());
  snprintf(cmd, sizeof cmd, "%s build %s -o %s", smelt_path(), file, ingot);
  cr_assert_eq(run_cmd(cmd, &log), 0, "%s", log);
  free(log);
  smelt_ingot *ig;
  smelt_session *s;
  cr_assert_eq(smelt_ingot_open(ingot, &ig), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_session_new(ig, "cpu", 1, &s), SMELT_OK, "%s", smelt_last_error());
  size_t bytes = smelt_tensor_bytes(s, "fc1.w");
  float *w = malloc(bytes);
  cr_assert_eq(smelt_get_tensor(s, "fc1.w", w, bytes), SMELT_OK);
  double v = w[0];
  snprintf(seed, len, "%s", smelt_ingot_meta(ig, "train.seed"));
  free(w);
  smelt_session_free(s);
  smelt_ingot_close(ig);
  unlink(ingot);
  return v;
}

TEST(seed, init_and_build_use_the_train_blocks_seed) {
  char file[64], seed[32];
  mlp_with("seed = 7", file);
  double init = init_value(file, ""), built = built_value(file, seed, sizeof seed);
  cr_expect_eq((float)init, (float)built, "smelt init and smelt build drew different weights");
  cr_expect_str_eq(seed, "7");
  cr_expect_eq(init, init_value(file, "--seed=7"));
  cr_expect_neq(init, init_value(file, "--seed=8"), "--seed does not override the train block");
  unlink(file);
}

TEST(seed, the_default_seed_is_one_everywhere) {
  char file[64], seed[32];
  mlp_with("", file);
  double init = init_value(file, "");
  cr_expect_eq((float)init, (float)built_value(file, seed, sizeof seed));
  cr_expect_str_eq(seed, "1", "META train.seed %s", seed);
  cr_expect_eq(init, init_value(file, "--seed=1"));
  unlink(file);
  mlp_with("seed = 0", file);   // 0 is a seed like any other, not "unset"
  cr_expect_neq(init, init_value(file, ""));
  cr_expect_eq(init_value(file, ""), init_value(file, "--seed=0"));
  unlink(file);
}
