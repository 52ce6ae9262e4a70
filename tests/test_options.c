// test_options.c: the command-line conventions of smelt and smelt-rt
// (tools/options.c), through the binaries: each way of writing an option,
// each bad value, options a command does not take, help and version.
#include <criterion/criterion.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

// Runs `smelt ARGS` (or smelt-rt with rt); returns the exit status and the output.
static int cli(bool rt, const char *args, char **out) {
  char cmd[PATH_MAX * 2], dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", smelt_path());
  snprintf(cmd, sizeof cmd, "NO_COLOR=1 %s/%s %s", dirname(dir), rt ? "smelt-rt" : "smelt", args);
  return run_cmd(cmd, out);
}

// Expects exit status want and text in the output.
static void expect(bool rt, const char *args, int want, const char *text) {
  char *out;
  int rc = cli(rt, args, &out);
  cr_expect_eq(rc, want, "%s: exit %d, not %d: %s", args, rc, want, out);
  if (text) cr_expect(strstr(out, text) != NULL, "%s: no '%s' in: %s", args, text, out);
  free(out);
}

TEST(options, values_with_equals_or_as_the_next_argument) {
  expect(false, "dump --stage=graph examples/mlp.smelt", 0, "MATMUL");
  expect(false, "dump --stage graph examples/mlp.smelt", 0, "MATMUL");
  expect(false, "dump --stage graph -D B=2 examples/mlp.smelt", 0, "f32[2, 784]");
  expect(false, "dump --stage graph -DB=3 examples/mlp.smelt", 0, "f32[3, 784]");
  expect(false, "dump --stage graph --define=B=5 examples/mlp.smelt", 0, "f32[5, 784]");
}

TEST(options, short_output_attached_or_apart) {
  char path[64], args[256];
  snprintf(path, sizeof path, "/tmp/smelt-options-%d.tensors", (int)getpid());
  snprintf(args, sizeof args, "init examples/mlp.smelt -o %s", path);
  expect(false, args, 0, NULL);
  cr_expect_eq(unlink(path), 0, "-o FILE wrote nothing");
  snprintf(args, sizeof args, "init examples/mlp.smelt -o%s", path);
  expect(false, args, 0, NULL);
  cr_expect_eq(unlink(path), 0, "-oFILE wrote nothing");
}

TEST(options, double_dash_ends_options) {
  // After --, "-x.smelt" is a file (that does not exist), not an option.
  expect(false, "check -- -x.smelt", 1, "-x.smelt");
}

TEST(options, numbers_are_checked) {
  expect(false, "train --epochs=abc examples/mlp.smelt", 2, "--epochs takes a whole number from 1 up, not 'abc'");
  expect(false, "train --steps=-5 examples/mlp.smelt", 2, "--steps takes a whole number from 1 up, not '-5'");
  expect(false, "train --steps=-1 examples/mlp.smelt", 2, "--steps takes a whole number from 1 up, not '-1'");
  expect(false, "train --log-every=0 examples/mlp.smelt", 2, "--log-every takes a whole number from 1 up, not '0'");
  expect(false, "train --threads=0 examples/mlp.smelt", 2, "--threads takes a whole number from 1 to 256, not '0'");
  // the CPU device runs at most 256 threads: more is refused, not quietly 256
  expect(false, "train --threads=1000 examples/mlp.smelt", 2, "--threads takes a whole number from 1 to 256, not '1000'");
  expect(true, "train --threads=257 x.ingot", 2, "--threads takes a whole number from 1 to 256, not '257'");
  expect(true, "train --log-every=0 x.ingot", 2, "--log-every takes a whole number from 1 up, not '0'");
  expect(false, "train --epochs=2x examples/mlp.smelt", 2, "not '2x'");
  expect(false, "train --epochs= examples/mlp.smelt", 2, "not ''");
  expect(false, "train --steps=99999999999999999999 examples/mlp.smelt", 2, "not '99999999999999999999'");
  expect(false, "sample --temperature=hot examples/gpt.smelt", 2, "--temperature takes a number from 0 up, not 'hot'");
  expect(false, "sample --temperature=-1 examples/gpt.smelt", 2, "--temperature takes a number from 0 up");
  expect(false, "check --max-errors=lots examples/mlp.smelt", 2, "--max-errors takes a whole number from 0 to 1000000");
  expect(true, "train --steps=abc x.ingot", 2, "--steps takes a whole number from 1 up, not 'abc'");
}

TEST(options, choices_are_checked) {
  expect(false, "build --precision=fp8 examples/mlp.smelt -o /dev/null", 2,
         "--precision takes fp32, tf32, bf16 or fp16, not 'fp8'");
  expect(false, "explain --fusion=some examples/mlp.smelt", 2, "--fusion takes none, pointwise or all, not 'some'");
  expect(false, "check --color=blue examples/mlp.smelt", 2, "--color takes auto, always or never");
}

TEST(options, an_option_the_command_does_not_take) {
  expect(false, "check --epochs=abc examples/mlp.smelt", 2, "smelt check does not take --epochs (an option of train)");
  expect(true, "check --steps=3 x.ingot", 2, "smelt-rt check does not take --steps");
}

TEST(options, unknown_options_suggest_the_nearest) {
  expect(false, "train --stpes=5 examples/mlp.smelt", 2, "unknown option '--stpes' (did you mean --steps?)");
  expect(false, "check --bogus examples/mlp.smelt", 2, "unknown option '--bogus'");
  expect(false, "check -q examples/mlp.smelt", 2, "unknown option '-q'");
  expect(false, "chekc examples/mlp.smelt", 2, "unknown command 'chekc' (did you mean check?)");
}

TEST(options, missing_values_and_values_for_flags) {
  expect(false, "train examples/mlp.smelt --steps", 2, "--steps needs a value (N)");
  expect(false, "train --resume=yes examples/mlp.smelt", 2, "--resume takes no value");
  expect(false, "build examples/mlp.smelt -o", 2, "-o needs a value (FILE)");
  expect(false, "check -D B examples/mlp.smelt", 2, "-D needs NAME=INTEGER, or for smelt build NAME=V1,V2,... (distinct values, at most 32, in one -D): not 'B'");
  expect(false, "check -D B=99999999999999999999 examples/mlp.smelt", 2,
         "-D needs NAME=INTEGER, or for smelt build NAME=V1,V2,... (distinct values, at most 32, in one -D): not 'B=99999999999999999999'");
  expect(false, "check -D B=0 examples/mlp.smelt", 1, "a dimension must be at least 1, but 'B' is 0");
}

TEST(options, files_are_counted) {
  expect(false, "train", 2, "train needs one file");
  expect(false, "train examples/mlp.smelt examples/cnn.smelt", 2, "train takes one file, not also 'examples/cnn.smelt'");
}

TEST(options, help_on_every_command_and_version) {
  const char *commands[] = {"check", "dump", "graph", "explain", "build", "train", "eval", "run",
                            "bisect", "sample", "bench", "inspect", "init"};
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
    char args[64], want[64];
    snprintf(args, sizeof args, "%s --help", commands[i]);
    snprintf(want, sizeof want, "usage: smelt %s ", commands[i]);
    expect(false, args, 0, want);
    snprintf(args, sizeof args, "%s -h", commands[i]);
    expect(false, args, 0, want);
  }
  expect(false, "train --help", 0, "--checkpoint-every=N");
  expect(false, "--help", 0, "commands:");
  expect(false, "--version", 0, "smelt 0.");
  expect(false, "-V", 0, "smelt 0.");
  expect(true, "profile --help", 0, "usage: smelt-rt profile ");
  expect(true, "--version", 0, "smelt-rt 0.");
}

TEST(options, cpu_names_are_checked_before_llvm_sees_them) {
  char *out;
  int rc = cli(false, "build --cpu=bogus examples/mlp.smelt -o /dev/null", &out);
  cr_expect_eq(rc, 2, "%s", out);
  cr_expect(strstr(out, "--cpu takes an x86-64 CPU that LLVM knows") != NULL, "%s", out);
  cr_expect(strstr(out, "LLVM ERROR") == NULL, "%s", out);
  cr_expect(strstr(out, "not a recognized processor") == NULL, "%s", out);
  free(out);
  expect(false, "build --cpu=help examples/mlp.smelt -o /dev/null", 0, "znver");
}

TEST(options, sizes_take_units_and_refuse_anything_else) {
  expect(false, "check --max-memory=1G examples/mlp.smelt", 0, NULL);
  expect(false, "check --max-memory=0 examples/mlp.smelt", 0, NULL);
  expect(false, "check --max-memory=64m examples/mlp.smelt", 0, NULL);
  expect(false, "check --max-memory=1k examples/mlp.smelt", 1, "more than the limit of 1.0 KB (1024 bytes)");
  expect(false, "check --max-memory=12Q examples/mlp.smelt", 2, "--max-memory takes a size in bytes, with K, M, G or T");
  expect(false, "check --max-memory=-1 examples/mlp.smelt", 2, "not '-1'");
  expect(false, "check --max-memory=G examples/mlp.smelt", 2, "not 'G'");
  expect(false, "check --max-memory=1GB examples/mlp.smelt", 2, "not '1GB'");
  expect(false, "check --max-memory=99999999999T examples/mlp.smelt", 2, "not '99999999999T'");
  expect(false, "check --max-memory=99999999999999999999 examples/mlp.smelt", 2, "not '99999999999999999999'");
}

// check and build say what a session needs; over the limit, build writes nothing.
TEST(options, check_and_build_report_and_hold_the_memory_limit) {
  expect(false, "check --summary examples/mlp.smelt", 0, "memory: a session needs 9.3 MB (parameters 1.1 MB, state 2.2 MB;");
  char path[64], args[256];
  snprintf(path, sizeof path, "/tmp/smelt-maxmem-%d.ingot", (int)getpid());
  snprintf(args, sizeof args, "build examples/mlp.smelt -o %s", path);
  expect(false, args, 0, "a session needs 9.3 MB");
  cr_expect_eq(unlink(path), 0, "build wrote no ingot");
  snprintf(args, sizeof args, "build --max-memory=4M examples/mlp.smelt -o %s", path);
  expect(false, args, 1, "a session of model mlp needs 9.3 MB");
  cr_expect_neq(access(path, F_OK), 0, "build wrote an ingot over the limit");
  expect(false, "train --max-memory=4M --steps=1 examples/mlp.smelt", 1, "more than the limit of 4.2 MB");
}
