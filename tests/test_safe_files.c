// test_safe_files.c: files written where another user could interfere.
// Saves (runtime/tensorfile.c atomic_open/atomic_commit) never follow a link
// planted at the target or at any temporary name and clean up the
// temporaries of killed saves; private temporary folders (compiler/tempdir.c)
// honour TMPDIR and disappear at exit and on signals; tools and GPU libraries
// are never looked up in the current folder through an empty search-path
// element. Each case runs in a private folder, and the planted-link case runs
// again as an unprivileged user (nobody) when the tests run as root.
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpu.h"
#include "support.h"
#include "tensorfile.h"

// A new private folder under /tmp; path in dir.
static void private_folder(char *dir, size_t n) {
  snprintf(dir, n, "/tmp/smelt-test-XXXXXX");
  cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static void put_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "%s: %s", path, strerror(errno));
  fputs(text, f);
  fclose(f);
}

// Saves text to path through atomic_open/atomic_commit; 0 or -1.
static int save(const char *path, const char *text) {
  char err[512], *tmp;
  FILE *f = atomic_open(path, &tmp, err, sizeof err);
  if (!f) return -1;
  fputs(text, f);
  return atomic_commit(f, tmp, path, true, err, sizeof err);
}

// Plants links at the target and at the temporary names older versions used
// (PATH.tmpPID, for this and nearby pids), each pointing at a victim file,
// then saves: the victim keeps its bytes, the target is a new plain file.
// Returns a bit mask of what failed, for a forked child to report.
static int planted_links_case(const char *dir) {
  char victim[4200], target[4200], link[4300];
  snprintf(victim, sizeof victim, "%s/victim", dir);
  snprintf(target, sizeof target, "%s/model.ckpt", dir);
  put_text(victim, "precious\n");
  for (long pid = getpid() - 2; pid <= getpid() + 2; pid++) {
    snprintf(link, sizeof link, "%s.tmp%ld", target, pid);
    if (symlink(victim, link) != 0) return 1;
  }
  int fails = 0;
  if (save(target, "new weights\n") != 0) fails |= 2;
  char *v = slurp(victim), *t = slurp(target);
  if (!v || strcmp(v, "precious\n")) fails |= 4;
  if (!t || strcmp(t, "new weights\n")) fails |= 8;
  free(v);
  free(t);
  // a link at the target itself is replaced, not followed
  unlink(target);
  if (symlink(victim, target) != 0) return fails | 1;
  if (save(target, "second\n") != 0) fails |= 16;
  struct stat st;
  v = slurp(victim);
  if (!v || strcmp(v, "precious\n")) fails |= 32;
  if (lstat(target, &st) != 0 || !S_ISREG(st.st_mode)) fails |= 64;
  free(v);
  return fails;
}

TEST(safe_files, planted_links_are_not_followed) {
  char dir[64];
  private_folder(dir, sizeof dir);
  int fails = planted_links_case(dir);
  cr_expect_eq(fails, 0, "planted-link case failed (mask %d) in %s", fails, dir);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
}

TEST(safe_files, planted_links_are_not_followed_as_an_unprivileged_user) {
  if (geteuid() != 0) cr_skip_test("not root: cannot switch to an unprivileged user");
  char dir[64];
  private_folder(dir, sizeof dir);
  const uid_t nobody = 65534;
  cr_assert_eq(chown(dir, nobody, nobody), 0, "%s", strerror(errno));
  pid_t pid = fork();
  if (pid == 0) {
    if (setgid(nobody) != 0 || setuid(nobody) != 0 || getuid() != nobody) _exit(100);
    _exit(planted_links_case(dir));
  }
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "as nobody: status %d", WEXITSTATUS(status));
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
}

// The pid of a process that has exited.
static pid_t dead_pid(void) {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  return pid;
}

TEST(safe_files, stale_temporaries_of_the_target_are_removed) {
  char dir[64], target[128], p[256];
  private_folder(dir, sizeof dir);
  snprintf(target, sizeof target, "%s/run.ckpt", dir);
  pid_t dead = dead_pid();
  struct { const char *fmt; long pid; bool removed; } cases[] = {
      {"%s.tmp-%ld-0123456789ab", dead, true},          // a killed save
      {"%s.tmp%ld", dead, true},                         // a killed save of an older version
      {"%s.tmp-%ld-0123456789ab", getppid(), false},    // a save still running
      {"%s.tmp-%ld-0123456789", dead, false},            // not the pattern
      {"%s.tmp-%ld-0123456789abc", dead, false},
      {"%s.tmp-%ld-0123456789AB", dead, false},
      {"%s.bak%ld", dead, false},
      {"%s.other.tmp-%ld-0123456789ab", dead, false},    // another target's
  };
  int n = sizeof cases / sizeof cases[0];
  for (int i = 0; i < n; i++) {
    snprintf(p, sizeof p, cases[i].fmt, target, cases[i].pid);
    put_text(p, "partial");
  }
  // a link with a stale name is not a file of ours: left alone
  char link[256];
  snprintf(link, sizeof link, "%s.tmp-%ld-aaaaaaaaaaaa", target, (long)dead);
  cr_assert_eq(symlink("/nonexistent", link), 0);
  // a stale file of another user is left alone
  char foreign[256] = "";
  if (geteuid() == 0) {
    snprintf(foreign, sizeof foreign, "%s.tmp-%ld-bbbbbbbbbbbb", target, (long)dead);
    put_text(foreign, "theirs");
    cr_assert_eq(chown(foreign, 65534, 65534), 0);
  }
  cr_assert_eq(save(target, "weights"), 0);
  for (int i = 0; i < n; i++) {
    snprintf(p, sizeof p, cases[i].fmt, target, cases[i].pid);
    cr_expect_eq(access(p, F_OK) != 0, cases[i].removed, "%s: %s", p, cases[i].removed ? "kept" : "removed");
  }
  struct stat st;
  cr_expect_eq(lstat(link, &st), 0, "a planted link was removed");
  if (foreign[0]) cr_expect_eq(access(foreign, F_OK), 0, "another user's file was removed");
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
}

TEST(safe_files, a_save_honours_the_umask_and_leaves_no_temporary) {
  char dir[64], target[128];
  private_folder(dir, sizeof dir);
  snprintf(target, sizeof target, "%s/out.bin", dir);
  mode_t old = umask(027);
  cr_assert_eq(save(target, "x"), 0);
  umask(old);
  struct stat st;
  cr_assert_eq(stat(target, &st), 0);
  cr_expect_eq(st.st_mode & 0777, 0640, "mode %o", st.st_mode & 0777);
  char cmd[160], *out;
  snprintf(cmd, sizeof cmd, "ls -A %s", dir);
  cr_expect_eq(run_cmd(cmd, &out), 0);
  cr_expect_str_eq(out, "out.bin\n");
  free(out);
  // a failed write removes its temporary
  char err[256], *tmp;
  FILE *f = atomic_open(target, &tmp, err, sizeof err);
  cr_assert_not_null(f, "%s", err);
  cr_expect_neq(atomic_commit(f, tmp, target, false, err, sizeof err), 0);
  cr_expect_eq(run_cmd(cmd, &out), 0);
  cr_expect_str_eq(out, "out.bin\n");
  free(out);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
}

TEST(safe_files, tempdir_is_private_and_honours_tmpdir) {
  char base[64], dir[4096], err[256];
  private_folder(base, sizeof base);
  setenv("TMPDIR", base, 1);
  cr_assert_eq(tempdir_create(dir, sizeof dir, err, sizeof err), 0, "%s", err);
  cr_expect_eq(strncmp(dir, base, strlen(base)), 0, "%s is not in %s", dir, base);
  struct stat st;
  cr_assert_eq(lstat(dir, &st), 0);
  cr_expect(S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700, "mode %o", st.st_mode & 0777);
  char file[4200];
  snprintf(file, sizeof file, "%s/host.so", dir);
  put_text(file, "x");
  tempdir_remove(dir);
  cr_expect_neq(access(dir, F_OK), 0, "%s was not removed", dir);
  setenv("TMPDIR", "/nonexistent-smelt-folder", 1);
  cr_expect_neq(tempdir_create(dir, sizeof dir, err, sizeof err), 0);
  cr_expect(strstr(err, "/nonexistent-smelt-folder") && strstr(err, "TMPDIR"), "%s", err);
  unsetenv("TMPDIR");
  rmdir(base);
}

// A child makes a private folder with a file in it, then ends by how
// (0: exit, else that signal); the folder must be gone afterwards.
static void tempdir_gone_after(int how) {
  char base[64];
  private_folder(base, sizeof base);
  setenv("TMPDIR", base, 1);
  pid_t pid = fork();
  if (pid == 0) {
    char dir[4096], err[256], file[4200];
    if (tempdir_create(dir, sizeof dir, err, sizeof err)) _exit(3);
    snprintf(file, sizeof file, "%s/model.ingot", dir);
    FILE *f = fopen(file, "w");
    if (!f) _exit(4);
    fclose(f);
    if (how) raise(how);
    exit(0);
  }
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  if (how) cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == how, "not ended by signal %d", how);
  else cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  char cmd[160], *out;
  snprintf(cmd, sizeof cmd, "ls -A %s", base);
  cr_expect_eq(run_cmd(cmd, &out), 0);
  cr_expect_str_eq(out, "", "left behind: %s", out);
  free(out);
  unsetenv("TMPDIR");
  snprintf(cmd, sizeof cmd, "rm -rf %s", base);
  cr_expect_eq(system(cmd), 0);
}

TEST(safe_files, tempdir_is_removed_at_exit) { tempdir_gone_after(0); }
TEST(safe_files, tempdir_is_removed_on_sigint) { tempdir_gone_after(SIGINT); }
TEST(safe_files, tempdir_is_removed_on_sigterm) { tempdir_gone_after(SIGTERM); }

TEST(safe_files, smelt_build_leaves_nothing_in_tmpdir) {
  char base[64], cmd[512], *out;
  private_folder(base, sizeof base);
  snprintf(cmd, sizeof cmd, "TMPDIR=%s %s build examples/mlp.smelt -o %s/m.ingot", base, smelt_path(), base);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "ls -A %s", base);
  cr_assert_eq(run_cmd(cmd, &out), 0);
  cr_expect_str_eq(out, "m.ingot\n", "left behind: %s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "rm -rf %s", base);
  cr_expect_eq(system(cmd), 0);
}

TEST(safe_files, tools_are_not_found_through_empty_path_elements) {
  char dir[64], tool[128], cwd[4096];
  private_folder(dir, sizeof dir);
  snprintf(tool, sizeof tool, "%s/smelt-test-tool", dir);
  put_text(tool, "#!/bin/sh\n");
  cr_assert_eq(chmod(tool, 0755), 0);
  cr_assert_not_null(getcwd(cwd, sizeof cwd));
  cr_assert_eq(chdir(dir), 0);
  const char *paths[] = {"", ":", "/nonexistent:", ":/nonexistent", "/a::/b", ".", "./"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    setenv("PATH", paths[i], 1);
    cr_expect_null(tool_path("smelt-test-tool"), "PATH='%s' found the current folder's tool", paths[i]);
    cr_expect_null(gpu_tool_path("smelt-test-tool"), "PATH='%s' found the current folder's tool", paths[i]);
  }
  char path[256];
  snprintf(path, sizeof path, "/nonexistent::%s", dir);
  setenv("PATH", path, 1);
  const char *found = tool_path("smelt-test-tool");
  cr_expect(found && !strcmp(found, tool), "found %s", found ? found : "nothing");
  cr_assert_eq(chdir(cwd), 0);
  unlink(tool);
  rmdir(dir);
}

TEST(safe_files, gpu_search_path_with_empty_or_relative_elements_is_unsafe) {
  char elem[64];
  const char *unsafe[] = {"", ":", "/usr/lib:", ":/usr/lib", "/a::/b", "lib", "/a:./b", "/a;;/b"};
  for (size_t i = 0; i < sizeof unsafe / sizeof unsafe[0]; i++)
    cr_expect(gpu_search_path_unsafe(unsafe[i], elem, sizeof elem), "'%s' taken as safe", unsafe[i]);
  const char *safe[] = {"/usr/lib", "/opt/rocm/lib:/usr/local/cuda/lib64", "/a;/b"};
  for (size_t i = 0; i < sizeof safe / sizeof safe[0]; i++)
    cr_expect(!gpu_search_path_unsafe(safe[i], elem, sizeof elem), "'%s' taken as unsafe", safe[i]);
  cr_expect(gpu_search_path_unsafe("/a:lib64", elem, sizeof elem) && !strcmp(elem, "lib64"), "%s", elem);
}

TEST(safe_files, no_gpu_library_is_loaded_with_an_empty_search_path_element) {
  setenv("LD_LIBRARY_PATH", "/usr/lib:", 1);
  Device *d = NULL;
  cr_expect_neq(cuda_device_new(0, &d), SMELT_OK);
  cr_expect(strstr(smelt_last_error(), "LD_LIBRARY_PATH has an empty element"), "%s", smelt_last_error());
  cr_expect_neq(hip_device_new(0, &d), SMELT_OK);
  cr_expect(strstr(smelt_last_error(), "current folder"), "%s", smelt_last_error());
  unsetenv("LD_LIBRARY_PATH");
}

// The order that makes a save survive a power cut: the temporary is fsynced,
// renamed over the target, then the target's folder is fsynced so that the
// rename itself is on disk. Read from the system calls strace records.
static void expect_synced_save(const char *what, const char *args, const char *dir, const char *target) {
  char cmd[2048], *out;
  snprintf(cmd, sizeof cmd, "strace -f -qq -e trace=openat,fsync,rename %s %s", smelt_path(), args);
  int rc = run_cmd(cmd, &out);
  if (rc != 0 && strstr(out, "ptrace") != NULL) cr_skip_test("strace cannot trace here: %.200s", out);
  cr_assert_eq(rc, 0, "%s: %s", what, out);
  char renamed[600], folder[600];
  snprintf(renamed, sizeof renamed, "\", \"%s\") = 0", target);
  snprintf(folder, sizeof folder, "openat(AT_FDCWD, \"%s\", O_RDONLY|O_CLOEXEC|O_DIRECTORY) = ", dir);
  const char *r = strstr(out, renamed);
  cr_expect_not_null(r, "%s: no rename onto %s:\n%s", what, target, out);
  if (r) {
    const char *before = r;
    while (before > out && strncmp(before, "rename(", 7) != 0) before--;
    const char *sync_tmp = NULL;   // the last fsync before the rename
    for (const char *p = strstr(out, "fsync("); p && p < before; p = strstr(p + 1, "fsync(")) sync_tmp = p;
    cr_expect_not_null(sync_tmp, "%s: the temporary is not fsynced before its rename:\n%s", what, out);
    const char *f = strstr(r, folder);
    cr_expect_not_null(f, "%s: the folder is not opened after the rename:\n%s", what, out);
    if (f) cr_expect_not_null(strstr(f, "fsync("), "%s: the folder is not fsynced:\n%s", what, out);
  }
  free(out);
}

TEST(safe_files, saves_fsync_the_file_then_rename_then_fsync_the_folder) {
  if (system("strace -V >/dev/null 2>&1") != 0) cr_skip_test("no strace");
  char dir[] = "/tmp/smelt-sync-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char args[512], target[128];
  snprintf(target, sizeof target, "%s/p.tensors", dir);
  snprintf(args, sizeof args, "init examples/mlp.smelt -o %s", target);
  expect_synced_save("init", args, dir, target);
  snprintf(target, sizeof target, "%s/m.ingot", dir);
  snprintf(args, sizeof args, "build examples/mlp.smelt -o %s", target);
  expect_synced_save("build", args, dir, target);
  snprintf(args, sizeof args, "rm -rf %s", dir);
  cr_expect_eq(system(args), 0);
}
