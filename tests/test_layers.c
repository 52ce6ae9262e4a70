// test_layers.c: the three floors (runtime, tools, compiler) call only
// downwards, checked on the built libraries' symbols: nothing a lower floor
// needs is defined by a higher one, and smelt-rt, the tool for GPU hosts,
// holds no compiler symbol and no LLVM; and no circle of calls joins
// source files.
#include <criterion/criterion.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

// The folder of the binaries under test (build/ or build-asan/).
static const char *build_dir(void) {
  static char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", smelt_path());
  return dirname(dir);
}

// Runs a pipeline that prints one symbol per line and returns its output
// (caller frees); the test fails when it cannot run.
static char *symbols(const char *cmd) {
  char *out;
  int rc = run_cmd(cmd, &out);
  cr_assert_eq(rc, 0, "%s failed: %s", cmd, out);
  return out;
}

// The symbols that `needs` leaves undefined and `defines` defines.
static char *needs_from(const char *needs, const char *defines) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "comm -12 <(nm -u %s/%s | awk '{print $NF}' | sort -u) "
           "<(nm --defined-only -g %s/%s | awk 'NF == 3 {print $3}' | sort -u) | head -20",
           build_dir(), needs, build_dir(), defines);
  char wrapped[2300];
  snprintf(wrapped, sizeof wrapped, "bash -c \"%s\"", cmd);
  return symbols(wrapped);
}

TEST(layers, runtime_needs_nothing_from_tools_or_compiler) {
  char *a = needs_from("libsmeltrt.a", "libsmelttools.a"), *b = needs_from("libsmeltrt.a", "libsmeltc.a");
  cr_expect_str_empty(a, "the runtime calls up into the tools: %s", a);
  cr_expect_str_empty(b, "the runtime calls up into the compiler: %s", b);
  free(a);
  free(b);
}

TEST(layers, tools_need_nothing_from_the_compiler) {
  char *a = needs_from("libsmelttools.a", "libsmeltc.a");
  cr_expect_str_empty(a, "the tools call up into the compiler: %s", a);
  free(a);
}

TEST(layers, smelt_rt_holds_no_compiler_symbol_and_no_llvm) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "bash -c \"comm -12 <(nm --defined-only %s/smelt-rt | awk 'NF == 3 {print $3}' | sort -u) "
           "<(nm --defined-only -g %s/libsmeltc.a | awk 'NF == 3 {print $3}' | sort -u) | head -20\"",
           build_dir(), build_dir());
  char *shared = symbols(cmd);
  cr_expect_str_empty(shared, "smelt-rt holds compiler symbols: %s", shared);
  free(shared);
  snprintf(cmd, sizeof cmd, "nm -u %s/smelt-rt | grep -c LLVM || true", build_dir());
  char *llvm = symbols(cmd);
  cr_expect_eq(atoi(llvm), 0, "smelt-rt needs LLVM symbols");
  free(llvm);
  snprintf(cmd, sizeof cmd, "ldd %s/smelt-rt | grep -c -i llvm || true", build_dir());
  llvm = symbols(cmd);
  cr_expect_eq(atoi(llvm), 0, "smelt-rt links an LLVM library");
  free(llvm);
}

// The runtime and the tools are compiled without -Icompiler (Makefile);
// their sources name no compiler header either.
TEST(layers, runtime_and_tools_include_no_compiler_header) {
  char *out = symbols("grep -l -E '#include \"(compiler|codegen)\\.h\"|ops\\.def' runtime/*.[ch] tools/*.[ch] || true");
  cr_expect_str_empty(out, "compiler headers included below the compiler: %s", out);
  free(out);
}

// Within and across the floors, no source file calls into one that calls
// back into it (tests/source_cycles.sh: tsort over the objects' symbols).
TEST(layers, no_circle_of_calls_between_source_files) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "bash tests/source_cycles.sh %s", build_dir());
  char *out = symbols(cmd);
  cr_expect_str_empty(out, "source files that call each other (a circle through these): %s", out);
  free(out);
}
