// test_oom.c: running out of memory is one message and exit status 1.
//
// smelt build runs under address-space limits (ulimit -v) from one the
// dynamic loader cannot start the program under up to one the build fits
// in, 1 MB apart: in between, allocations fail in smelt's own code, in
// LLVM's operator new and in LLVM's malloc wrappers (report_bad_alloc_error).
// Every run must succeed or end with exit status 1 and one line saying
// "out of memory", never an abort, and leave no temporary folder behind.
// Address-space limits do not apply under ASan (its shadow memory alone
// exceeds them), so the ASan build skips these.
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

// Entries of folder dir besides . and ..
static int entries(const char *dir) {
  DIR *d = opendir(dir);
  cr_assert_not_null(d, "%s: %s", dir, strerror(errno));
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
  closedir(d);
  return n;
}

static bool one_line(const char *s) {
  const char *nl = strchr(s, '\n');
  return nl && nl[1] == '\0';
}

TEST(oom, build_under_memory_limits, .timeout = 300) {
#ifdef UNDER_ASAN
  cr_skip("address-space limits do not apply under ASan");
#endif
  char base[] = "/tmp/smelt-oom-XXXXXX", tmp[64];
  cr_assert_not_null(mkdtemp(base));
  snprintf(tmp, sizeof tmp, "%s/tmp", base);
  cr_assert_eq(mkdir(tmp, 0700), 0);
  int loader = 0, oom = 0, ok = 0;
  for (long kb = 64 * 1024; kb <= 1024 * 1024 && !ok; kb += 1024) {
    char cmd[1024], *out;
    snprintf(cmd, sizeof cmd,
             "TMPDIR=%s sh -c 'ulimit -v %ld; exec %s build -DB=8 examples/mlp.smelt -o %s/m.ingot >/dev/null'",
             tmp, kb, smelt_path(), base);
    int rc = run_cmd(cmd, &out);
    if (rc == 127 && strstr(out, "error while loading shared libraries")) {
      loader++;   // the dynamic loader could not map a library: smelt never ran
    } else if (rc == 0) {
      ok = 1;
    } else {
      cr_assert_eq(rc, 1, "limit %ld KB: exit status %d (-1: a signal): %s", kb, rc, out);
      cr_assert(one_line(out) && strstr(out, "smelt: error: out of memory"), "limit %ld KB: %s", kb, out);
      oom++;
    }
    cr_assert_eq(entries(tmp), 0, "limit %ld KB left a temporary folder", kb);
    free(out);
  }
  cr_assert(ok, "the build never fitted under 1 GB");
  cr_assert_gt(loader, 0, "no limit was below what the program needs to start");
  cr_assert_gt(oom, 0, "no limit ran out of memory inside the build");
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf %s", base);
  cr_assert_eq(system(cmd), 0);
}
