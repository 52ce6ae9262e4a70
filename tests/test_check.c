// test_check.c: whole files through the front end and the command line.
//
// The stdlib and every example check clean; imports are found where the
// language reference says; the CLI's exit statuses and outputs hold.
#include <criterion/criterion.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"

static void expect_clean(const char *path) {
  char *out;
  int errors = check_file(path, &out);
  cr_expect_eq(errors, 0, "%s has errors:\n%s", path, out);
  free(out);
}

TEST(check, stdlib_is_clean) { expect_clean("stdlib/nn.smelt"); }
TEST(check, mlp_is_clean) { expect_clean("examples/mlp.smelt"); }
TEST(check, cnn_is_clean) { expect_clean("examples/cnn.smelt"); }
TEST(check, gpt_is_clean) { expect_clean("examples/gpt.smelt"); }
TEST(check, lstm_is_clean) { expect_clean("examples/lstm.smelt"); }
TEST(check, autoencoder_is_clean) { expect_clean("examples/autoencoder.smelt"); }
TEST(check, resnet_is_clean) { expect_clean("examples/resnet.smelt"); }
TEST(check, gru_is_clean) { expect_clean("examples/gru.smelt"); }

TEST(check, stdlib_has_every_layer) {
  const char *layers[] = {"linear", "relu", "gelu", "softmax", "log_softmax", "cross_entropy",
                          "mse", "layernorm", "rms_norm", "dropout", "embedding", "conv2d",
                          "max_pool2d", "avg_pool2d", "causal_self_attention", "mlp",
                          "transformer_block", "lstm_cell", "gru_cell", "gru",
                          "self_attention", "cross_attention", "scaled_dot_product_attention", "group_norm"};
  char src[4096] = "import \"nn\"\nmodel m {\n  input x: f32[2, 4]\n";
  for (size_t i = 0; i < sizeof layers / sizeof *layers; i++) {
    char line[128];
    snprintf(line, sizeof line, "  let v%zu = %s\n", i, layers[i]);
    strcat(src, line);
  }
  strcat(src, "}\n");
  // Naming a function without calling it is an error that proves it exists;
  // an unknown name would say "unknown name" instead.
  char *out;
  int errors = check_source("layers.smelt", src, &out);
  cr_expect_eq(errors, (int)(sizeof layers / sizeof *layers), "%s", out);
  cr_expect(strstr(out, "unknown") == NULL, "%s", out);
  free(out);
  // sigmoid and tanh are primitives, usable everywhere
  cr_expect_eq(check_source("p.smelt", "fn f(x) {\n  return sigmoid(x) + tanh(x)\n}\n", NULL), 0);
}

TEST(check, train_block_is_stored) {
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_file(&c, "examples/mlp.smelt");
  for (int i = 0; i < c.nmodules; i++) resolve_module(&c, c.modules[i]);
  cr_assert_eq(c.diag.errors, 0);
  cr_assert_not_null(m->train);
  TrainConfig *t = m->train;
  cr_expect_str_eq(t->optimizer, "adamw");
  cr_expect_float_eq(t->lr, 1e-3, 1e-12);
  cr_expect_float_eq(t->weight_decay, 0.01, 1e-12);
  cr_expect_float_eq(t->beta2, 0.999, 1e-12);
  cr_expect_str_eq(t->schedule, "cosine");
  cr_expect_eq(t->warmup, 100);
  cr_expect_eq(t->epochs, 5);
  cr_expect_eq(t->batch, 128);
  cr_expect_eq(t->precision, PREC_FP32);
  cr_expect_eq(t->ndata, 4);
  cr_expect_str_eq(t->data[0].split, "train");
  cr_expect_str_eq(t->data[0].inputs[0], "x");
  cr_expect_float_eq(t->data[0].scale, 1.0 / 255, 1e-12);
  cr_expect_str_eq(t->data[3].split, "test");
  compilation_free(&c);
}

// A scratch folder under build/, removed by the caller.
static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "cannot write %s", path);
  fputs(text, f);
  fclose(f);
}

TEST(check, imports_search_folder_then_stdlib_then_smelt_path) {
  char dir[] = "/tmp/smelt-test-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char p[PATH_MAX + 64], lib[PATH_MAX];
  snprintf(lib, sizeof lib, "%s/lib", dir);
  mkdir(lib, 0700);
  // a local nn.smelt shadows the stdlib's
  snprintf(p, sizeof p, "%s/nn.smelt", dir);
  write_file(p, "fn only_local(x) {\n  return x\n}\n");
  snprintf(p, sizeof p, "%s/extra.smelt", lib);
  write_file(p, "fn from_path(x) {\n  return x\n}\n");
  snprintf(p, sizeof p, "%s/main.smelt", dir);
  write_file(p, "import \"nn\"\nimport \"extra\"\nfn f(x) {\n  return from_path(only_local(x))\n}\n");
  setenv("SMELT_PATH", lib, 1);
  char *out;
  cr_expect_eq(check_file(p, &out), 0, "%s", out);
  free(out);
  unsetenv("SMELT_PATH");
  cr_expect_eq(check_file(p, &out), 1, "extra.smelt found without SMELT_PATH:\n%s", out);
  cr_expect(strstr(out, "cannot find module \"extra\"") != NULL, "%s", out);
  free(out);
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
}

TEST(check, module_imported_twice_is_parsed_once) {
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  module_load_file(&c, "examples/mlp.smelt");
  module_load_file(&c, "examples/cnn.smelt");
  cr_expect_eq(c.nmodules, 3);   // mlp, nn, cnn
  for (int i = 0; i < c.nmodules; i++) resolve_module(&c, c.modules[i]);
  cr_expect_eq(c.diag.errors, 0);
  compilation_free(&c);
}

TEST(check, weight_sharing_by_repeated_scope_is_allowed) {
  cr_expect_eq(check_source("share.smelt",
                            "import \"nn\"\nmodel m {\n  input x: f32[2, 4]\n"
                            "  let a = linear(x, 4) as shared\n  let b = linear(a, 4) as shared\n"
                            "  output y = b\n}\n", NULL), 0);
}

TEST(check, shadowing_in_an_inner_block_is_allowed) {
  cr_expect_eq(check_source("shadow.smelt",
                            "fn f(x, n: int) {\n  let y = x\n  if n > 1 {\n    let y = x * 2\n"
                            "    x = y\n  }\n  return x + y\n}\n", NULL), 0);
}

TEST(check, dims_are_visible_in_the_body) {
  cr_expect_eq(check_source("dims.smelt",
                            "fn f(x: f32[..., B, C], k: int = C) -> f32[B, C] {\n"
                            "  let n = B * C * k\n  return x.sum(axis = 1)\n}\n", NULL), 0);
}

// ---- the command line

static int smelt_cli(const char *args, char **out) {
  char cmd[PATH_MAX * 2];
  snprintf(cmd, sizeof cmd, "NO_COLOR=1 %s %s", smelt_path(), args);
  return run_cmd(cmd, out);
}

TEST(cli, check_examples_exits_zero) {
  char *out;
  cr_expect_eq(smelt_cli("check examples/mlp.smelt examples/cnn.smelt examples/gpt.smelt "
                         "examples/lstm.smelt stdlib/nn.smelt", &out), 0, "%s", out);
  cr_expect_str_eq(out, "");
  free(out);
}

TEST(cli, errors_exit_one_and_count) {
  char *out;
  cr_expect_eq(smelt_cli("check tests/diag/syntax_several_errors.smelt tests/diag/unknown_name.smelt",
                         &out), 1);
  cr_expect(strstr(out, "\n4 errors\n") != NULL, "%s", out);
  free(out);
}

TEST(cli, usage_errors_exit_two) {
  char *out;
  cr_expect_eq(smelt_cli("", &out), 2);
  free(out);
  cr_expect_eq(smelt_cli("check", &out), 2);
  cr_expect(strstr(out, "check needs at least one file") != NULL, "%s", out);
  free(out);
  cr_expect_eq(smelt_cli("check --bogus examples/mlp.smelt", &out), 2);
  cr_expect(strstr(out, "unknown option '--bogus'") != NULL, "%s", out);
  free(out);
  cr_expect_eq(smelt_cli("frobnicate x", &out), 2);
  cr_expect(strstr(out, "unknown command 'frobnicate'") != NULL, "%s", out);
  free(out);
  cr_expect_eq(smelt_cli("dump --stage=cuda examples/mlp.smelt", &out), 2);
  free(out);
}

TEST(cli, version_and_help) {
  char *out;
  cr_expect_eq(smelt_cli("--version", &out), 0);
  cr_expect(strncmp(out, "smelt ", 6) == 0, "%s", out);
  free(out);
  cr_expect_eq(smelt_cli("help", &out), 0);
  cr_expect(strstr(out, "usage: smelt") != NULL);
  free(out);
}

TEST(cli, dump_ast_matches_golden) {
  char *out;
  cr_expect_eq(smelt_cli("dump --stage=ast examples/mlp.smelt", &out), 0);
  char *want = slurp("tests/golden/mlp.ast");
  cr_expect_str_eq(out, want);
  free(out);
  free(want);
}

TEST(cli, summary_of_an_example) {
  char *out;
  cr_expect_eq(smelt_cli("check --summary examples/mlp.smelt", &out), 0);
  cr_expect(strstr(out, "examples/mlp.smelt: ok\n") != NULL, "%s", out);
  cr_expect(strstr(out, "  model mlp(B = 128, H = 256)\n") != NULL, "%s", out);
  cr_expect(strstr(out, "  inputs: x: f32[B, 784], y: i32[B]\n") != NULL, "%s", out);
  cr_expect(strstr(out, "adamw(lr = 0.001)") != NULL, "%s", out);
  free(out);
}

// The summary prints types and sizes as the file writes them.
TEST(cli, summary_prints_types_as_written) {
  char path[64], args[128], *out;
  snprintf(path, sizeof path, "build/test-summary-%d.smelt", (int)getpid());
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs("model m(N = 4, C = 3) {\n  input x: f32[N + 1, C * 2]\n  output y = x * 2.0\n}\n", f);
  fclose(f);
  snprintf(args, sizeof args, "check --summary %s", path);
  cr_expect_eq(smelt_cli(args, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "  inputs: x: f32[N + 1, C * 2]\n"), "%s", out);
  free(out);
  unlink(path);
}

// The summary and explain list each parameter group with its settings and
// parameters, and print an expression schedule as written.
TEST(cli, summary_and_explain_show_parameter_groups) {
  char path[64], args[128], *out;
  snprintf(path, sizeof path, "build/test-groups-%d.smelt", (int)getpid());
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs("import \"nn\"\nmodel m(B = 4) {\n  input x: f32[B, 3]\n  let h = relu(linear(x, 5) as fc1)\n"
        "  loss (linear(h, 1) as fc2).sum()\n}\n"
        "train {\n  optimizer = adamw(lr = 1e-3, weight_decay = 0.01)\n"
        "  schedule = lr * min(1, step / 100)\n  freeze = \"fc1.w\"\n"
        "  group \"*.b\" { weight_decay = 0 }\n  group \"fc2.*\" { lr = 1e-4; beta2 = 0.95 }\n"
        "  steps = 10\n  data train { x = csv(\"x.csv\") }\n}\n", f);
  fclose(f);
  snprintf(args, sizeof args, "check --summary %s", path);
  cr_expect_eq(smelt_cli(args, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, ", schedule lr * min(1, step / 100),"), "%s", out);
  cr_expect_not_null(strstr(out, "  frozen \"fc1.w\": fc1.w\n"), "%s", out);
  cr_expect_not_null(strstr(out, "  group \"*.b\" (weight_decay = 0): fc1.b, fc2.b\n"), "%s", out);
  cr_expect_not_null(strstr(out, "  group \"fc2.*\" (lr = 0.0001, beta2 = 0.95): fc2.w\n"), "%s", out);
  cr_expect_not_null(strstr(out, "  other parameters (the optimizer's settings): none\n"), "%s", out);
  free(out);
  snprintf(args, sizeof args, "explain %s", path);
  cr_expect_eq(smelt_cli(args, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "  group \"*.b\" (weight_decay = 0): fc1.b, fc2.b\n"), "%s", out);
  free(out);
  unlink(path);
}

// `smelt init --params-only` writes the parameters and no optimizer state.
TEST(cli, init_params_only_leaves_out_the_optimizer_state) {
  char path[64], args[160], err[256], *out;
  snprintf(path, sizeof path, "build/test-init-%d.tensors", (int)getpid());
  for (int only = 0; only < 2; only++) {
    snprintf(args, sizeof args, "init %sexamples/mlp.smelt -D B=2 -D H=4 -o %s", only ? "--params-only " : "", path);
    cr_assert_eq(smelt_cli(args, &out), 0, "%s", out);
    free(out);
    TensorEntry *t;
    int n;
    cr_assert_eq(tensorfile_read(path, &t, &n, err, sizeof err), 0, "%s", err);
    cr_expect_not_null(tensorfile_find(t, n, "fc1.w"));
    cr_expect_eq(tensorfile_find(t, n, "step") == NULL, only, "--params-only %d", only);
    cr_expect_eq(tensorfile_find(t, n, "fc1.w.m") == NULL, only, "--params-only %d", only);
    cr_expect_eq(n, only ? 6 : 20, "%d tensors", n);
    tensorfile_free(t, n);
  }
  unlink(path);
}
