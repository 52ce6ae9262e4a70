// support.c: helpers shared by the test suites.
//
// Criterion runs each test in its own process and ignores LeakSanitizer's
// report at exit, so leak_check asks LeakSanitizer directly at the end of
// every test body (see TEST in support.h) and fails the test on a leak.
#include "support.h"

#include <criterion/criterion.h>
#include <libgen.h>
#include <limits.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/lsan_interface.h>
#define HAVE_LSAN 1
#endif
#endif

// The test build verifies every graph between passes (pipeline.c), here and
// in every smelt the tests run.
__attribute__((constructor)) static void verify_between_passes(void) { setenv("SMELT_VERIFY", "1", 0); }

// Builds in the tests, and every smelt they run, keep compiled kernel bodies
// in build/test-cache, never in the user's cache (compiler/build_cache.c).
__attribute__((constructor)) static void private_build_cache(void) {
  char dir[PATH_MAX];
  if (!getcwd(dir, sizeof dir - 32)) return;
  strcat(dir, "/build/test-cache");
  setenv("XDG_CACHE_HOME", dir, 1);
}

void leak_check(void) {
#ifdef HAVE_LSAN
  cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "this test leaked memory (see above)");
#endif
}

static int check_with(const char *path, const char *name, const char *text, char **out) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  Compilation c;
  compilation_init(&c, f);
  c.diag.color = false;
  compilation_default_search(&c, NULL);
  Module *m = path ? module_load_file(&c, path) : module_load_text(&c, name, text, strlen(text));
  int errors = check_modules(&c, &m, 1, NULL, 0);
  compilation_free(&c);
  fclose(f);
  if (out) *out = buf;
  else free(buf);
  return errors;
}

int check_source(const char *name, const char *text, char **out) {
  return check_with(NULL, name, text, out);
}

int check_file(const char *path, char **out) { return check_with(path, NULL, NULL, out); }

char *parse_dump(const char *text, char **diag) {
  char *dbuf = NULL, *abuf = NULL;
  size_t dlen = 0, alen = 0;
  FILE *df = open_memstream(&dbuf, &dlen);
  Arena arena = {0};
  Diag d;
  diag_init(&d, df);
  d.color = false;
  size_t n = strlen(text);
  int file = diag_add_source(&d, "t.smelt", memcpy(xmalloc(n + 1), text, n + 1), (int)n);
  Ast *root = parse_source(&arena, &d, file);
  FILE *af = open_memstream(&abuf, &alen);
  dump_ast(af, root);
  fclose(af);
  int errors = d.errors;
  diag_free(&d);
  arena_free(&arena);
  fclose(df);
  if (diag) {
    *diag = dbuf;
  } else {
    cr_expect_eq(errors, 0, "unexpected syntax errors:\n%s", dbuf);
    free(dbuf);
  }
  return abuf;
}

char *slurp(const char *path) {
  size_t len;
  char *text = file_read(path, &len);
  cr_assert_not_null(text, "cannot read %s", path);
  return text;
}

const char *smelt_path(void) {
  static char path[PATH_MAX];
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  cr_assert_gt(n, 0);
  exe[n] = '\0';
  snprintf(path, sizeof path, "%s/smelt", dirname(exe));
  return path;
}

int run_cmd(const char *cmd, char **out) {
  char full[4096];
  snprintf(full, sizeof full, "%s 2>&1", cmd);
  FILE *p = popen(full, "r");
  cr_assert_not_null(p, "cannot run %s", cmd);
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  size_t got;
  while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
    n += got;
    if (n + 1 >= cap) buf = realloc(buf, cap *= 2);
  }
  buf[n] = '\0';
  int status = pclose(p);
  if (out) *out = buf;
  else free(buf);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
