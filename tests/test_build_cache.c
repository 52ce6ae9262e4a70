// test_build_cache.c: the build cache (compiler/build_cache.c) through
// `smelt build` and directly: hits, misses, damaged entries rebuilt, two
// builds at once, --no-cache, the size bound, and ingots that are the same
// bytes however their bodies were found. Every test sets its own
// XDG_CACHE_HOME under build/.
#include "support.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char cache_home[1024];   // short, so paths under it fit PATH_MAX

// A fresh, empty XDG_CACHE_HOME for this test; the cache is cache_home/smelt.
static void private_cache(const char *name) {
  char cwd[900];
  cr_assert_not_null(getcwd(cwd, sizeof cwd));
  snprintf(cache_home, sizeof cache_home, "%s/build/test-cache-%.40s-%d", cwd, name, (int)getpid());
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache_home);
  cr_assert_eq(system(cmd), 0);
  setenv("XDG_CACHE_HOME", cache_home, 1);
}

static void private_cache_remove(void) {
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache_home);
  cr_expect_eq(system(cmd), 0);
}

static int smelt_cmd(const char *args, char **out) {
  char cmd[PATH_MAX * 2];
  snprintf(cmd, sizeof cmd, "NO_COLOR=1 %s %s", smelt_path(), args);
  return run_cmd(cmd, out);
}

// The runs --time printed for stage (0 when it is not printed: no run).
static int runs_of(const char *out, const char *stage) {
  char line[96];
  snprintf(line, sizeof line, "  %s ", stage);
  const char *p = strstr(out, line);
  int runs = 0;
  if (p) cr_assert_eq(sscanf(p + strlen(line), "%*f %d", &runs), 1, "%s", out);
  return runs;
}

#define HITS "cache: hits (reads)"
#define MISSES "cache: misses (look-ups)"

// Builds model (with extra options) into path with --time; its output in *out.
static void build(const char *model, const char *extra, const char *path, char **out) {
  char args[1024];
  snprintf(args, sizeof args, "build %s %s --time -o %s", model, extra, path);
  cr_assert_eq(smelt_cmd(args, out), 0, "%s", *out);
}

static bool same_file(const char *a, const char *b) {
  size_t na, nb;
  char *da = file_read(a, &na), *db = file_read(b, &nb);
  bool same = da && db && na == nb && !memcmp(da, db, na);
  free(da), free(db);
  return same;
}

// The entry files of the cache (not temporaries), up to max, into paths; their count.
static int entries(char paths[][PATH_MAX], int max, long long *bytes) {
  char dir[1100];
  snprintf(dir, sizeof dir, "%s/smelt", cache_home);
  int n = 0;
  *bytes = 0;
  DIR *top = opendir(dir);
  for (struct dirent *d; top && (d = readdir(top));) {
    if (d->d_name[0] == '.') continue;
    char sub[1200];
    snprintf(sub, sizeof sub, "%s/%.8s", dir, d->d_name);
    DIR *in = opendir(sub);
    for (struct dirent *e; in && (e = readdir(in));) {
      if (e->d_name[0] == '.') continue;
      char path[PATH_MAX];
      snprintf(path, sizeof path, "%s/%.200s", sub, e->d_name);
      struct stat st;
      if (stat(path, &st) || !S_ISREG(st.st_mode) || strstr(e->d_name, ".tmp-")) continue;
      *bytes += st.st_size;
      if (n < max) snprintf(paths[n], PATH_MAX, "%s", path);
      n++;
    }
    if (in) closedir(in);
  }
  if (top) closedir(top);
  return n;
}

static const char *const MLP = "examples/mlp.smelt";

// A second build reads every body from the cache; both ingots equal one built without it.
TEST(cache, second_build_hits_and_is_the_same_bytes) {
  private_cache("hit");
  char a[96], b[96], c[96], *out;
  snprintf(a, sizeof a, "build/test-cache-a-%d.ingot", (int)getpid());
  snprintf(b, sizeof b, "build/test-cache-b-%d.ingot", (int)getpid());
  snprintf(c, sizeof c, "build/test-cache-c-%d.ingot", (int)getpid());
  build(MLP, "", a, &out);
  int misses = runs_of(out, MISSES);
  cr_expect_gt(misses, 1, "a cold cache misses every body: %s", out);
  cr_expect_eq(runs_of(out, HITS), 0, "%s", out);
  cr_expect_gt(runs_of(out, "host: LLVM optimization"), 0, "%s", out);
  free(out);
  long long bytes;
  cr_expect_eq(entries(NULL, 0, &bytes), misses, "one entry per body and the linked object");
  build(MLP, "", b, &out);
  cr_expect_gt(runs_of(out, HITS), 0, "%s", out);
  cr_expect_eq(runs_of(out, MISSES), 0, "%s", out);
  cr_expect_eq(runs_of(out, "host: LLVM optimization"), 0, "nothing is compiled: %s", out);
  free(out);
  build(MLP, "--no-cache", c, &out);
  free(out);
  cr_expect(same_file(a, b), "the cached build differs from the cold one");
  cr_expect(same_file(a, c), "the cached build differs from one without the cache");
  unlink(a), unlink(b), unlink(c);
  private_cache_remove();
}

// --no-cache reads nothing and writes nothing.
TEST(cache, no_cache_reads_and_writes_nothing) {
  private_cache("off");
  char a[96], *out;
  snprintf(a, sizeof a, "build/test-cache-off-%d.ingot", (int)getpid());
  build(MLP, "--no-cache", a, &out);
  cr_expect_eq(runs_of(out, HITS) + runs_of(out, MISSES) + runs_of(out, "cache: writes"), 0, "%s", out);
  free(out);
  long long bytes;
  cr_expect_eq(entries(NULL, 0, &bytes), 0);
  build(MLP, "", a, &out);   // fills it
  free(out);
  build(MLP, "--no-cache", a, &out);
  cr_expect_eq(runs_of(out, HITS), 0, "a full cache is not read: %s", out);
  cr_expect_gt(runs_of(out, "host: LLVM optimization"), 0, "%s", out);
  free(out);
  unlink(a);
  private_cache_remove();
}

// Damages every entry with edit, builds again: every entry fails its check and is
// rebuilt, the ingot is the same bytes, and a third build hits everywhere.
static void damaged_entries_are_rebuilt(const char *name, void (*edit)(const char *path, off_t size)) {
  private_cache(name);
  char a[96], b[96], *out;
  snprintf(a, sizeof a, "build/test-cache-%s-a-%d.ingot", name, (int)getpid());
  snprintf(b, sizeof b, "build/test-cache-%s-b-%d.ingot", name, (int)getpid());
  build(MLP, "", a, &out);
  free(out);
  static char paths[64][PATH_MAX];
  long long bytes;
  int n = entries(paths, 64, &bytes);
  cr_assert(n > 0 && n <= 64, "%d entries", n);
  for (int i = 0; i < n; i++) {
    struct stat st;
    cr_assert_eq(stat(paths[i], &st), 0);
    edit(paths[i], st.st_size);
  }
  build(MLP, "", b, &out);
  cr_expect_eq(runs_of(out, HITS), 0, "a damaged entry is never used: %s", out);
  cr_expect_eq(runs_of(out, MISSES), n, "%s", out);
  free(out);
  cr_expect(same_file(a, b), "the rebuilt ingot differs");
  build(MLP, "", b, &out);
  cr_expect_gt(runs_of(out, HITS), 0, "the rebuilt entries are whole again: %s", out);
  cr_expect_eq(runs_of(out, MISSES), 0, "%s", out);
  free(out);
  cr_expect(same_file(a, b), "the ingot from the rebuilt entries differs");
  unlink(a), unlink(b);
  private_cache_remove();
}

// One bit of the payload's last byte flipped: the length is right, the checksum is not.
static void flip_last_byte(const char *path, off_t size) {
  int fd = open(path, O_RDWR);
  cr_assert_geq(fd, 0);
  unsigned char c;
  cr_assert_eq(pread(fd, &c, 1, size - 1), 1);
  c ^= 1;
  cr_assert_eq(pwrite(fd, &c, 1, size - 1), 1);
  close(fd);
}

static void cut_in_half(const char *path, off_t size) { cr_assert_eq(truncate(path, size / 2), 0); }

TEST(cache, corrupt_entry_is_rebuilt) { damaged_entries_are_rebuilt("corrupt", flip_last_byte); }

TEST(cache, truncated_entry_is_rebuilt) { damaged_entries_are_rebuilt("truncated", cut_in_half); }

// Two builds into one empty cache at once, each on two threads: both
// succeed with the same bytes as a build without the cache, and leave a
// cache that a third build reads whole.
TEST(cache, two_builds_at_once) {
  private_cache("concurrent");
  char ref[96], path[2][96], *out;
  snprintf(ref, sizeof ref, "build/test-cache-cc-ref-%d.ingot", (int)getpid());
  build(MLP, "--no-cache", ref, &out);
  free(out);
  pid_t pid[2];
  for (int i = 0; i < 2; i++) {
    snprintf(path[i], sizeof path[i], "build/test-cache-cc-%d-%d.ingot", i, (int)getpid());
    pid[i] = fork();
    cr_assert_geq(pid[i], 0);
    if (pid[i] == 0) {
      char cmd[PATH_MAX * 2];
      snprintf(cmd, sizeof cmd, "%s build %s --jobs=2 -o %s > /dev/null 2>&1", smelt_path(), MLP, path[i]);
      _exit(system(cmd) == 0 ? 0 : 1);
    }
  }
  for (int i = 0; i < 2; i++) {
    int status;
    cr_assert_eq(waitpid(pid[i], &status, 0), pid[i]);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "build %d failed", i);
    cr_expect(same_file(ref, path[i]), "build %d differs from the build without the cache", i);
  }
  build(MLP, "", path[0], &out);
  cr_expect_eq(runs_of(out, MISSES), 0, "%s", out);
  free(out);
  cr_expect(same_file(ref, path[0]));
  unlink(ref), unlink(path[0]), unlink(path[1]);
  private_cache_remove();
}

// The bound, directly: entries of 1000 bytes, the oldest first; reading one
// makes it the newest, and trimming keeps the newest under 9/10 of the bound.
TEST(cache, least_recently_used_entries_are_evicted) {
  private_cache("evict");
  BuildCache bc;
  char err[256];
  cr_assert_eq(build_cache_open(&bc, err, sizeof err), 0, "%s", err);
  enum { N = 10 };
  uint8_t key[N][32];
  char payload[1000];
  memset(payload, 'x', sizeof payload);
  Blob data = {payload, sizeof payload};
  for (int i = 0; i < N; i++) {
    memset(key[i], 0, 32);
    key[i][0] = (uint8_t)(i + 1), key[i][31] = 0xa5;
    build_cache_put(&bc, key[i], &data);
  }
  static char paths[N][PATH_MAX];
  long long bytes;
  cr_assert_eq(entries(paths, N, &bytes), N);
  // modification times one second apart, entry i older than entry i + 1
  for (int i = 0; i < N; i++) {
    char hex[65];
    for (int j = 0; j < 32; j++) snprintf(hex + 2 * j, 3, "%02x", key[i][j]);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/smelt/%.2s/%s", cache_home, hex, hex + 2);
    struct timespec t[2] = {{1000000 + i, 0}, {1000000 + i, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, path, t, 0), 0, "%s", path);
  }
  Blob got;
  cr_assert(build_cache_get(&bc, key[0], &got), "entry 0 is whole");
  cr_expect(got.len == sizeof payload && !memcmp(got.data, payload, got.len));
  free(got.data);
  long long per = bytes / N;   // the header and the payload
  bc.max_bytes = (uint64_t)(per * 6);
  build_cache_trim(&bc);
  long long left;
  int kept = entries(NULL, 0, &left);
  cr_expect_leq(left, per * 6 / 10 * 9, "%lld bytes left", left);
  cr_expect_eq(kept, 5, "%d entries kept", kept);
  // entry 0 was read last, so it stays; entries 1..5 were the oldest
  for (int i = 0; i < N; i++) {
    bool want = i == 0 || i > 5;
    cr_expect_eq(build_cache_get(&bc, key[i], &got), want, "entry %d", i);
    free(got.data);
  }
  build_cache_trim(&bc);   // under the bound: nothing more goes
  cr_expect_eq(entries(NULL, 0, &left), 5);
  private_cache_remove();
}

// An entry is read under its own key only: the file of one key holding
// another key's entry is a miss, and is removed.
TEST(cache, an_entry_under_another_key_is_a_miss) {
  private_cache("key");
  BuildCache bc;
  char err[256];
  cr_assert_eq(build_cache_open(&bc, err, sizeof err), 0, "%s", err);
  uint8_t k1[32] = {1}, k2[32] = {2};
  Blob data = {"payload", 7}, got;
  build_cache_put(&bc, k1, &data);
  cr_assert(build_cache_get(&bc, k1, &got));
  free(got.data);
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "mkdir -p %s/smelt/02 && cp %s/smelt/01/%062d %s/smelt/02/%062d", cache_home, cache_home, 0,
           cache_home, 0);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
  cr_expect_not(build_cache_get(&bc, k2, &got));
  cr_expect_null(got.data);
  char moved[PATH_MAX];
  snprintf(moved, sizeof moved, "%s/smelt/02/%062d", cache_home, 0);
  cr_expect_eq(access(moved, F_OK), -1, "the foreign entry is removed");
  private_cache_remove();
}

// SMELT_CACHE_MAX takes bytes with K, M or G; anything else is named in the warning
// and the build runs without the cache.
TEST(cache, a_bad_bound_builds_without_the_cache) {
  private_cache("badmax");
  char a[96], cmd[PATH_MAX * 2], *out;
  snprintf(a, sizeof a, "build/test-cache-badmax-%d.ingot", (int)getpid());
  snprintf(cmd, sizeof cmd, "SMELT_CACHE_MAX=12X %s build %s -o %s", smelt_path(), MLP, a);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "SMELT_CACHE_MAX takes a size in bytes, with an optional K, M or G, not '12X'"), "%s", out);
  free(out);
  long long bytes;
  cr_expect_eq(entries(NULL, 0, &bytes), 0);
  unlink(a);
  private_cache_remove();
}

// The ingot is the same bytes for any --jobs with host and GPU targets,
// compiled without the cache each time (so every body is compiled by the
// threads), and the same again from the cache.
TEST(cache, jobs_and_cache_give_the_same_bytes_with_gpu_targets) {
  private_cache("jobs");
  char path[3][96], *out;
  const char *opts[3] = {"--no-cache --jobs=1", "--no-cache --jobs=2", "--jobs=2"};
  const char *model = "examples/gpt.smelt -DB=2 -DT=8 -DC=16 -DL=2 -DH=2 --target=sm_90,gfx90a";
  for (int i = 0; i < 3; i++) {
    snprintf(path[i], sizeof path[i], "build/test-cache-jobs%d-%d.ingot", i, (int)getpid());
    build(model, opts[i], path[i], &out);
    cr_expect_gt(runs_of(out, "gpu: LLVM optimization"), 1, "%s", out);
    free(out);
  }
  build(model, "--jobs=2", path[2], &out);   // from the cache this time
  cr_expect_eq(runs_of(out, MISSES), 0, "%s", out);
  free(out);
  cr_expect(same_file(path[0], path[1]), "--jobs=1 and --jobs=2 give different ingots");
  cr_expect(same_file(path[0], path[2]), "the cached build differs");
  for (int i = 0; i < 3; i++) unlink(path[i]);
  private_cache_remove();
}
