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

// Runs a shell command; returns its exit status and its stdout+stderr in *out.
int run_cmd(const char *cmd, char **out);

// Teardown for every suite: under ASan, a test that leaks fails.
void leak_check(void);

#endif
