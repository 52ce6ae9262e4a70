// test_diag.c: diagnostics.
//
// golden: every tests/diag/NAME.smelt is checked by the smelt binary and what
// it prints (and its exit status) must equal tests/diag/NAME.err exactly. To
// add a case, write the .smelt file and run `make diag-golden`, then read the
// new .err before committing it.
//
// The other tests cover what goldens cannot: colour, character columns, huge
// and hostile inputs, the error limit.
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

typedef struct {
  char name[128];
} DiagCase;

static int cmp_case(const void *a, const void *b) {
  return strcmp(((const DiagCase *)a)->name, ((const DiagCase *)b)->name);
}

ParameterizedTestParameters(diag, golden) {
  DIR *dir = opendir("tests/diag");
  cr_assert_not_null(dir, "tests must run from the repository root");
  int n = 0, cap = 512;
  DiagCase *cases = cr_malloc(sizeof *cases * (size_t)cap);
  struct dirent *e;
  while ((e = readdir(dir)) && n < cap) {
    size_t len = strlen(e->d_name);
    if (len < 7 || len >= 120 || strcmp(e->d_name + len - 6, ".smelt") != 0) continue;
    snprintf(cases[n].name, sizeof cases[n].name, "%.*s", (int)(len - 6), e->d_name);
    n++;
  }
  closedir(dir);
  qsort(cases, (size_t)n, sizeof *cases, cmp_case);
  return cr_make_param_array(DiagCase, cases, (size_t)n);
}

PARAM_TEST(DiagCase *, c, diag, golden) {
  char cmd[PATH_MAX * 2], want_path[256];
  snprintf(cmd, sizeof cmd, "NO_COLOR=1 SMELT_PATH= %s check tests/diag/%s.smelt", smelt_path(),
           c->name);
  char *out;
  int status = run_cmd(cmd, &out);
  size_t len = strlen(out);
  char *got = malloc(len + 32);
  snprintf(got, len + 32, "%sexit %d\n", out, status);
  snprintf(want_path, sizeof want_path, "tests/diag/%s.err", c->name);
  char *want = slurp(want_path);
  cr_expect_str_eq(got, want, "%s: diagnostics differ\n--- got:\n%s--- want:\n%s", c->name, got, want);
  free(out);
  free(got);
  free(want);
}

TEST(diag, there_are_many_golden_cases) {
  DIR *dir = opendir("tests/diag");
  int n = 0;
  for (struct dirent *e; (e = readdir(dir));) n += strstr(e->d_name, ".smelt") != NULL;
  closedir(dir);
  cr_expect_geq(n, 40, "only %d diagnostic cases", n);
}

TEST(diag, colour_only_when_asked) {
  char *out;
  char cmd[PATH_MAX * 2];
  snprintf(cmd, sizeof cmd, "%s check --color=always tests/diag/unknown_name.smelt", smelt_path());
  run_cmd(cmd, &out);
  cr_expect(strstr(out, "\033[1;31merror:") != NULL, "no colour with --color=always:\n%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s check tests/diag/unknown_name.smelt", smelt_path());
  run_cmd(cmd, &out);   // not a terminal: no colour
  cr_expect(strchr(out, '\033') == NULL, "colour on a pipe:\n%s", out);
  free(out);
}

TEST(diag, no_color_wins_over_a_terminal) {
  setenv("NO_COLOR", "1", 1);
  cr_expect_not(diag_color_default(stderr));
  setenv("NO_COLOR", "", 1);   // empty means unset, as no-color.org says
  FILE *f = tmpfile();
  cr_expect_not(diag_color_default(f));   // and a file is not a terminal
  fclose(f);
}

TEST(diag, columns_count_characters_and_tabs_line_up) {
  char *out;
  int errors = check_source("u.smelt", "fn f(x) {\n\tlet s = \"\xc3\xa9\xc3\xa9\" + zzzz\n\treturn x\n}\n", &out);
  cr_expect_eq(errors, 1);
  cr_expect(strstr(out, "u.smelt:2:17: error: unknown name 'zzzz'") != NULL, "%s", out);
  cr_expect(strstr(out, "      | \t               ^~~~\n") != NULL, "marks misaligned:\n%s", out);
  free(out);
}

TEST(diag, error_limit) {
  char src[4096] = "fn f(x) {\n";
  for (int i = 0; i < 30; i++) strcat(src, "  let a = nope\n");
  strcat(src, "  return x\n}\n");
  char *out;
  int errors = check_source("many.smelt", src, &out);
  cr_expect_geq(errors, 30);
  cr_expect(strstr(out, "too many errors (20); stopping here") != NULL, "%s", out);
  int shown = 0;
  for (char *p = out; (p = strstr(p, ": error: ")); p++) shown++;
  cr_expect_eq(shown, 20);
  free(out);
}

static double seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

// A model file whose one line is n bytes of "x + x + ..."; caller frees.
static char *long_line_source(size_t n) {
  char *src = malloc(n + 64);
  strcpy(src, "fn f(x) {\n  let a = x");
  size_t len = strlen(src);
  while (len < n) {
    memcpy(src + len, " + x", 4);
    len += 4;
  }
  strcpy(src + len, " $\n  return a\n}\n");
  return src;
}

// The error shows a window of the line, and checking stays linear in its
// length: ten times the bytes take well under a hundred times the time (a
// ratio measured in one run, so the bound holds on a slow or busy machine
// and under the sanitizers).
TEST(diag, ten_megabyte_line_is_shown_as_a_window) {
  double dt[2];
  for (int k = 0; k < 2; k++) {
    char *src = long_line_source(k ? 10u << 20 : 1u << 20), *out;
    double t0 = seconds();
    int errors = check_source("long.smelt", src, &out);
    dt[k] = seconds() - t0;
    cr_expect_geq(errors, 1);
    cr_expect(strstr(out, "expression is nested too deeply") != NULL, "%.300s", out);
    cr_expect_lt(strlen(out), 4000u, "the long line was printed whole");
    free(out);
    free(src);
  }
  cr_expect_lt(dt[1], 30 * dt[0] + 1.0, "10 MB took %.2f s, 1 MB %.2f s", dt[1], dt[0]);
}

TEST(diag, binary_garbage_is_an_error_not_a_crash) {
  char src[8192];
  unsigned x = 12345;
  for (size_t i = 0; i < sizeof src - 1; i++) {
    x = x * 1103515245u + 12345u;
    src[i] = (char)(x >> 16);
    if (!src[i]) src[i] = 1;
  }
  src[sizeof src - 1] = '\0';
  char *out;
  int errors = check_source("garbage.smelt", src, &out);
  cr_expect_gt(errors, 0);
  free(out);
}

TEST(diag, nul_bytes_are_reported) {
  Compilation c;
  char *buf;
  size_t len;
  FILE *f = open_memstream(&buf, &len);
  compilation_init(&c, f);
  c.diag.color = false;
  module_load_text(&c, "nul.smelt", "fn f(x) {\n  return \0x\n}\n", 22);
  cr_expect_gt(c.diag.errors, 0);
  compilation_free(&c);
  fclose(f);
  cr_expect(strstr(buf, "unexpected byte 0x00") != NULL, "%s", buf);
  free(buf);
}

// A NUL would end the C string a name or path becomes: `import "n\0n"` must
// not import "n".
TEST(diag, nul_inside_a_string_is_an_error) {
  Compilation c;
  char *buf;
  size_t len;
  FILE *f = open_memstream(&buf, &len);
  compilation_init(&c, f);
  c.diag.color = false;
  static const char src[] = "import \"n\0n\"\n";
  module_load_text(&c, "nul.smelt", src, sizeof src - 1);
  cr_expect_gt(c.diag.errors, 0);
  compilation_free(&c);
  fclose(f);
  cr_expect(strstr(buf, "nul.smelt:1:10: error: a string cannot contain a NUL byte") != NULL, "%s", buf);
  free(buf);
}

TEST(diag, deep_unary_chain_is_an_error) {
  size_t n = 200000;
  char *src = malloc(n + 64);
  strcpy(src, "fn f(x) {\n  return ");
  size_t len = strlen(src);
  memset(src + len, '-', n);
  strcpy(src + len + n, "x\n}\n");
  char *out;
  int errors = check_source("deep.smelt", src, &out);
  cr_expect_geq(errors, 1);
  cr_expect(strstr(out, "nested too deeply") != NULL, "%.300s", out);
  free(out);
  free(src);
}

TEST(diag, deep_brackets_are_an_error) {
  size_t n = 100000;
  char *src = malloc(2 * n + 64);
  strcpy(src, "fn f(x) {\n  return ");
  size_t len = strlen(src);
  memset(src + len, '[', n);
  memset(src + len + n, ']', n);
  strcpy(src + len + 2 * n, "\n}\n");
  char *out;
  int errors = check_source("brackets.smelt", src, &out);
  cr_expect_geq(errors, 1);
  cr_expect(strstr(out, "brackets nested too deeply (the limit is 256)") != NULL, "%.300s", out);
  free(out);
  free(src);
}

TEST(diag, unterminated_string_at_end_of_file) {
  char *out;
  int errors = check_source("s.smelt", "import \"nn", &out);
  cr_expect_eq(errors, 1);
  cr_expect(strstr(out, "s.smelt:1:8: error: unterminated string") != NULL, "%s", out);
  free(out);
}

TEST(diag, missing_file) {
  char *out;
  int errors = check_file("tests/diag/does-not-exist.smelt", &out);
  cr_expect_eq(errors, 1);
  cr_expect_str_eq(out, "smelt: error: cannot read 'tests/diag/does-not-exist.smelt': No such file or directory\n");
  free(out);
}

TEST(diag, folder_instead_of_file) {
  char *out;
  int errors = check_file("tests/diag", &out);
  cr_expect_eq(errors, 1);
  cr_expect(strstr(out, "cannot read 'tests/diag': Is a directory") != NULL, "%s", out);
  free(out);
}

// A FIFO would block the read forever and /dev/zero never ends: a model file
// must be a regular file, refused otherwise with one message.
TEST(diag, pipes_and_devices_as_model_files_are_refused, .timeout = 20) {
  char fifo[64];
  snprintf(fifo, sizeof fifo, "/tmp/smelt-fifo-%d.smelt", (int)getpid());
  unlink(fifo);
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  char *out;
  int errors = check_file(fifo, &out);
  unlink(fifo);
  cr_expect_eq(errors, 1);
  cr_expect(strstr(out, "it is not a regular file (a pipe, socket or device)") != NULL, "%s", out);
  free(out);
  errors = check_file("/dev/zero", &out);
  cr_expect_eq(errors, 1);
  cr_expect(strstr(out, "cannot read '/dev/zero': it is not a regular file") != NULL, "%s", out);
  free(out);
}
