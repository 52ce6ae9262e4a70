// support.h: helpers shared by the test suites.
#ifndef SMELT_TEST_SUPPORT_H
#define SMELT_TEST_SUPPORT_H

#include "compiler.h"

// Checks source text as a file named `name` (imports resolve against the
// stdlib); returns the error count and, in *out, everything the diagnostics
// printed (malloc'd, caller frees).
int check_source(const char *name, const char *text, char **out);

// Checks a file on disk, with the default search path; same contract.
int check_file(const char *path, char **out);

// Parses text and returns its AST dump (malloc'd); syntax errors go to *diag
// when diag is non-NULL (malloc'd), else the test fails on any error.
char *parse_dump(const char *text, char **diag);

// Reads a whole file or fails the test.
char *slurp(const char *path);

// The smelt binary built next to the test binary (build/smelt or build-asan/smelt).
const char *smelt_path(void);

// Runs a shell command; returns its exit status and its stdout+stderr in *out.
int run_cmd(const char *cmd, char **out);

// Under ASan, fails the calling test when anything it allocated is leaked.
void leak_check(void);

// Test and ParameterizedTest with leak_check at the end of the body, where a
// failed assertion fails the test: Criterion ignores leak reports from its
// test processes, and ignores assertions that fail in a .fini hook.
#define TEST(suite, name, ...)                                                 \
  static void suite##__##name(void);                                           \
  Test(suite, name, ##__VA_ARGS__) {                                           \
    suite##__##name();                                                         \
    leak_check();                                                              \
  }                                                                            \
  static void suite##__##name(void)

#define PARAM_TEST(type, param, suite, name)                                   \
  static void suite##__##name(type param);                                     \
  ParameterizedTest(type param, suite, name) {                                 \
    suite##__##name(param);                                                    \
    leak_check();                                                              \
  }                                                                            \
  static void suite##__##name(type param)

#endif
