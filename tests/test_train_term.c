// test_train_term.c: `smelt train` from a terminal: Ctrl-C and SIGTERM save
// the step and end with 130 / 143 (a second one quits at once, saving
// nothing); the progress line fits the terminal's width on a pseudo-terminal;
// --log-dir writes the scalars of each step; --checkpoint refuses a
// checkpoint of another model; an interrupt while building or loading data
// ends the run at once, saying what was lost.
//
// The runs are of a small model on CSV data, run as child processes whose
// output goes to a pipe (or a pseudo-terminal) that the test reads.
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support.h"
#include "util.h"

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "%s", path);
  fputs(text, f);
  fclose(f);
}

// dir/m.smelt, a classifier of 16 CSV rows in batches of 4, built into
// dir/m.ingot; hidden sets the width of its hidden layer (another width is
// another model).
static void build_model(const char *dir, int hidden) {
  char path[256], text[2048], *out;
  snprintf(path, sizeof path, "%s/x.csv", dir);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  for (int i = 0; i < 16; i++) fprintf(f, "%g,%g\n", 0.1 * i, 1 - 0.05 * i);
  fclose(f);
  snprintf(path, sizeof path, "%s/y.csv", dir);
  f = fopen(path, "w");
  for (int i = 0; i < 16; i++) fprintf(f, "%d\n", i % 3);
  fclose(f);
  snprintf(text, sizeof text,
           "import \"nn\"\nmodel m(B = 4) {\n  input x: f32[B, 2]\n  input y: i32[B]\n"
           "  let h = relu(linear(x, %d) as fc1)\n  output logits = linear(h, 3) as fc2\n"
           "  loss cross_entropy(logits, y)\n}\n"
           "train {\n  optimizer = adam(lr = 0.01)\n  steps = 100\n  data train {\n"
           "    x = csv(\"%s/x.csv\")\n    y = csv(\"%s/y.csv\")\n  }\n}\n",
           hidden, dir, dir);
  snprintf(path, sizeof path, "%s/m.smelt", dir);
  write_text(path, text);
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "NO_COLOR=1 %s build %s/m.smelt -o %s/m.ingot", smelt_path(), dir, dir);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

static char *make_dir(void) {
  char *dir = strdup("/tmp/smelt-term-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  return dir;
}

static void remove_dir(char *dir) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
  free(dir);
}

// `smelt ARGS` through sh, its stdout and stderr into the returned pipe's
// read end; *pid is the child (exec'd over sh, so signals reach smelt).
static int spawn(const char *args, pid_t *pid) {
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "NO_COLOR=1 exec %s %s", smelt_path(), args);
  *pid = fork();
  cr_assert_neq(*pid, -1);
  if (*pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  return fds[0];
}

typedef struct {
  char *text;
  size_t len, cap;
} Buf;

// Reads what fd has now (waiting up to ms); false at the end of the stream.
static bool read_some(int fd, Buf *b, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, ms) <= 0) return true;
  if (b->cap - b->len < 4097) b->text = realloc(b->text, b->cap = b->cap * 2 + 8192);
  ssize_t n = read(fd, b->text + b->len, 4096);
  if (n < 0 && errno == EIO) n = 0;   // a pseudo-terminal whose other end closed
  if (n <= 0) return false;
  b->len += (size_t)n;
  b->text[b->len] = '\0';
  return true;
}

static void read_until(int fd, Buf *b, const char *want) {
  time_t t0 = time(NULL);
  while ((!b->text || !strstr(b->text, want)) && time(NULL) - t0 < 120)
    if (!read_some(fd, b, 100)) break;
  cr_assert(b->text && strstr(b->text, want), "no '%s' in:\n%s", want, b->text ? b->text : "");
}

static int read_to_end(int fd, Buf *b, pid_t pid) {
  while (read_some(fd, b, 1000)) {}
  close(fd);
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  if (!b->text) b->text = strdup("");
  return status;
}

static char *slurp_bytes(const char *path, size_t *len) {
  char *d = file_read(path, len);
  cr_assert_not_null(d, "cannot read %s", path);
  return d;
}

static void expect_same_file(const char *a, const char *b) {
  size_t la, lb;
  char *da = slurp_bytes(a, &la), *db = slurp_bytes(b, &lb);
  cr_expect(la == lb && memcmp(da, db, la) == 0, "%s and %s differ", a, b);
  free(da);
  free(db);
}

// Interrupted with sig once the run has made steps (its output fills the
// pipe the test is not reading, so it cannot end before the signal), the run
// saves its step and ends with 128 + sig; resumed to the same total, the
// checkpoint is byte for byte that of one uninterrupted run. with_checkpoint
// false: saved at the default path beside the model.
static void interrupt_and_resume(int sig, bool with_checkpoint) {
  char *dir = make_dir();
  build_model(dir, 8);
  char ref[256], ckpt[256], args[2048], *out;
  snprintf(ref, sizeof ref, "%s/ref.ckpt", dir);
  if (with_checkpoint) snprintf(ckpt, sizeof ckpt, "%s/run.ckpt", dir);
  else snprintf(ckpt, sizeof ckpt, "%s/m.interrupted.ckpt", dir);
  snprintf(args, sizeof args, "NO_COLOR=1 %s train %s/m.ingot --steps=4000 --checkpoint=%s --threads=1", smelt_path(),
           dir, ref);
  cr_assert_eq(run_cmd(args, &out), 0, "%s", out);
  free(out);

  pid_t pid;
  snprintf(args, sizeof args, "train %s/m.ingot --steps=4000 --log-every=1 --threads=1%s%s", dir,
           with_checkpoint ? " --checkpoint=" : "", with_checkpoint ? ckpt : "");
  int fd = spawn(args, &pid);
  Buf b = {0};
  read_until(fd, &b, "step 2/4000");
  cr_assert_eq(kill(pid, sig), 0);
  int status = read_to_end(fd, &b, pid);
  cr_assert(WIFEXITED(status), "ended by signal %d:\n%s", WTERMSIG(status), b.text);
  cr_expect_eq(WEXITSTATUS(status), 128 + sig, "%s", b.text);
  char want[1024];
  snprintf(want, sizeof want, "interrupted by %s after step ", sig == SIGINT ? "SIGINT" : "SIGTERM");
  const char *at = strstr(b.text, want);
  cr_assert_not_null(at, "%s", b.text);
  long step = atol(at + strlen(want));
  cr_expect(step >= 2 && step < 4000, "stopped at step %ld", step);
  snprintf(want, sizeof want, "; continue with --checkpoint=%s --resume\n", ckpt);
  cr_expect(strstr(at, want) != NULL, "no '%s' in:\n%s", want, b.text);
  snprintf(want, sizeof want, "saved %s at step %ld\n", ckpt, step);
  cr_expect(strstr(b.text, want) != NULL, "no '%s' in:\n%s", want, b.text);
  free(b.text);

  snprintf(args, sizeof args, "NO_COLOR=1 %s train %s/m.ingot --steps=4000 --checkpoint=%s --resume --threads=1",
           smelt_path(), dir, ckpt);
  cr_assert_eq(run_cmd(args, &out), 0, "%s", out);
  snprintf(want, sizeof want, "resumed from %s at step %ld\n", ckpt, step);
  cr_expect(strstr(out, want) != NULL, "no '%s' in:\n%s", want, out);
  free(out);
  expect_same_file(ref, ckpt);
  remove_dir(dir);
}

TEST(train_term, ctrl_c_saves_the_step_and_resume_continues_it) { interrupt_and_resume(SIGINT, true); }

TEST(train_term, sigterm_saves_beside_the_model_without_a_checkpoint) { interrupt_and_resume(SIGTERM, false); }

// Waits until fd's pipe stops filling: the writer is blocked on it.
static void wait_until_full(int fd) {
  int have = -1, now = 0;
  for (int quiet = 0; quiet < 3;) {
    sleep_ms(100);
    cr_assert_eq(ioctl(fd, FIONREAD, &now), 0);
    quiet = now == have && now > 0 ? quiet + 1 : 0;
    have = now;
  }
}

// A second Ctrl-C ends the run at once, by the signal, saving nothing.
TEST(train_term, a_second_ctrl_c_quits_without_saving) {
  char *dir = make_dir();
  build_model(dir, 8);
  char ckpt[256], args[1024];
  snprintf(ckpt, sizeof ckpt, "%s/run.ckpt", dir);
  snprintf(args, sizeof args, "train %s/m.ingot --steps=100000 --log-every=1 --threads=1 --checkpoint=%s", dir, ckpt);
  pid_t pid;
  int fd = spawn(args, &pid);
  wait_until_full(fd);   // blocked writing a progress line: no step can end between the two signals
  cr_assert_eq(kill(pid, SIGINT), 0);
  sleep_ms(300);          // two signals at once would be one
  cr_assert_eq(kill(pid, SIGINT), 0);
  Buf b = {0};
  int status = read_to_end(fd, &b, pid);
  cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT, "status %#x:\n%.2000s", status,
            b.text + (b.len > 2000 ? b.len - 2000 : 0));
  cr_expect(strstr(b.text, "again to quit at once") != NULL);
  cr_expect_null(strstr(b.text, "interrupted by"));
  cr_expect_neq(access(ckpt, F_OK), 0, "a checkpoint was saved");
  free(b.text);
  remove_dir(dir);
}

// The bytes the process pid has read so far (rchar of /proc/PID/io).
static long long bytes_read_by(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/io", (int)pid);
  FILE *f = fopen(path, "r");
  long long n = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "rchar: ", 7)) n = atoll(line + 7);
  if (f) fclose(f);
  return n;
}

// An interrupt before the training loop ends the run by the signal at once,
// saying what was lost; a checkpoint being resumed is left as it was, and
// the build's temporary folder is removed.
TEST(train_term, ctrl_c_while_building_says_nothing_was_trained) {
  char *dir = make_dir();
  pid_t pid;
  setenv("TMPDIR", dir, 1);   // the build's temporary folder goes here
  int fd = spawn("train examples/lstm.smelt --steps=1 --threads=1", &pid);
  unsetenv("TMPDIR");
  Buf b = {0};
  read_until(fd, &b, "building examples/lstm.smelt");   // printed just before the build starts
  cr_assert_eq(kill(pid, SIGINT), 0);
  int status = read_to_end(fd, &b, pid);
  cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT, "status %#x:\n%s", status, b.text);
  cr_expect(strstr(b.text, "smelt: interrupted while building the model: nothing was trained or saved\n") != NULL,
            "%s", b.text);
  free(b.text);
  char cmd[300], *out;
  snprintf(cmd, sizeof cmd, "ls -A %s", dir);
  cr_assert_eq(run_cmd(cmd, &out), 0);
  cr_expect_str_eq(out, "", "left behind: %s", out);
  free(out);
  remove_dir(dir);
}

TEST(train_term, ctrl_c_while_loading_data_keeps_the_checkpoint) {
  char *dir = make_dir(), path[256], text[1024], cmd[1024], *out;
  // 4 million rows: tens of megabytes of CSV, which take a while to parse
  snprintf(path, sizeof path, "%s/x.csv", dir);
  FILE *fx = fopen(path, "w");
  snprintf(path, sizeof path, "%s/y.csv", dir);
  FILE *fy = fopen(path, "w");
  cr_assert(fx && fy);
  for (int i = 0; i < 4000000; i++) fputs("0.5,0.25\n", fx), fputs("1\n", fy);
  cr_assert(fclose(fx) == 0 && fclose(fy) == 0);
  snprintf(text, sizeof text,
           "import \"nn\"\nmodel m(B = 4) {\n  input x: f32[B, 2]\n  input y: i32[B]\n"
           "  output logits = linear(x, 3) as fc\n  loss cross_entropy(logits, y)\n}\n"
           "train {\n  optimizer = adam(lr = 0.01)\n  steps = 2\n  data train {\n"
           "    x = csv(\"x.csv\")\n    y = csv(\"y.csv\")\n  }\n}\n");
  snprintf(path, sizeof path, "%s/m.smelt", dir);
  write_text(path, text);
  snprintf(cmd, sizeof cmd, "%s build %s/m.smelt -o %s/m.ingot && %s init %s/m.smelt -o %s/c.ckpt", smelt_path(),
           dir, dir, smelt_path(), dir, dir);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  snprintf(path, sizeof path, "%s/c.ckpt", dir);
  size_t before_len, after_len;
  char *before = file_read(path, &before_len);
  cr_assert(before);
  snprintf(cmd, sizeof cmd, "train %s/m.ingot --checkpoint=%s --resume --threads=1", dir, path);
  pid_t pid;
  int fd = spawn(cmd, &pid);
  // the data is being read once the process has read more than the ingot
  time_t t0 = time(NULL);
  while (bytes_read_by(pid) < 16 << 20 && time(NULL) - t0 < 60) sleep_ms(1);
  cr_assert_eq(kill(pid, SIGINT), 0);
  Buf b = {0};
  int status = read_to_end(fd, &b, pid);
  cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT, "status %#x:\n%s", status, b.text);
  char want[512];
  snprintf(want, sizeof want, "smelt: interrupted while loading the data: nothing was trained; %s is as it was\n", path);
  cr_expect(strstr(b.text, want) != NULL, "no '%s' in:\n%s", want, b.text);
  cr_expect_null(strstr(b.text, "training m on"), "%s", b.text);
  free(b.text);
  char *after = file_read(path, &after_len);
  cr_expect(after && after_len == before_len && !memcmp(before, after, before_len), "the checkpoint changed");
  free(before);
  free(after);
  remove_dir(dir);
}

// `smelt ARGS` on a new pseudo-terminal of cols columns; returns its master.
static int spawn_on_terminal(const char *args, int cols, pid_t *pid) {
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  cr_assert(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0);
  const char *name = ptsname(master);
  cr_assert_not_null(name);
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "NO_COLOR=1 TERM=xterm exec %s %s", smelt_path(), args);
  *pid = fork();
  cr_assert_neq(*pid, -1);
  if (*pid == 0) {
    setsid();
    int slave = open(name, O_RDWR);
    struct winsize ws = {.ws_row = 24, .ws_col = (unsigned short)cols};
    if (slave < 0 || ioctl(slave, TIOCSWINSZ, &ws) != 0) _exit(126);
    dup2(slave, 0);
    dup2(slave, 1);
    dup2(slave, 2);
    close(master);
    unsetenv("COLUMNS");
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  return master;
}

// On a 60-column terminal no line of the output (split at each carriage
// return and newline, less the clear-to-end escapes) is wider than 60, and
// the progress line is redrawn in place with the step, epoch and loss.
TEST(train_term, the_progress_line_fits_a_60_column_terminal) {
  char *dir = make_dir();
  build_model(dir, 8);
  char args[512];
  snprintf(args, sizeof args, "train %s/m.ingot --steps=200000 --threads=1", dir);
  pid_t pid;
  int fd = spawn_on_terminal(args, 60, &pid);
  Buf b = {0};
  int status = read_to_end(fd, &b, pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x:\n%s", status, b.text);
  int redraws = 0, widest = 0;
  for (char *line = b.text; line && *line;) {
    size_t len = strcspn(line, "\r\n");
    char *esc = strstr(line, "\033[K");
    size_t cols = esc && esc < line + len ? (size_t)(esc - line) + (len - (size_t)(esc - line) - 3) : len;
    if ((int)cols > widest) widest = (int)cols;
    redraws += !strncmp(line, "step ", 5) && line[len] != '\n' && strstr(line, " loss ") < line + len;
    line = line[len] ? line + len + 1 : NULL;
  }
  cr_expect_leq(widest, 60, "a line of %d columns:\n%s", widest, b.text);
  cr_expect_gt(redraws, 0, "no progress line redrawn in place:\n%s", b.text);
  cr_expect(strstr(b.text, "\ntrained 200000 steps") != NULL, "%s", b.text);
  free(b.text);
  remove_dir(dir);
}

// Off a terminal: one plain line per --log-every steps, each with every field.
TEST(train_term, log_lines_off_a_terminal_hold_every_field) {
  char *dir = make_dir();
  build_model(dir, 8);
  char args[512], *out;
  snprintf(args, sizeof args, "NO_COLOR=1 %s train %s/m.ingot --steps=300 --log-every=100 --threads=1", smelt_path(), dir);
  cr_assert_eq(run_cmd(args, &out), 0, "%s", out);
  cr_expect_null(strchr(out, '\r'), "%s", out);
  int lines = 0;
  for (const char *p = out; (p = strstr(p, "\nstep ")); p++) {
    long long st, total, epoch;
    double loss, lr, rate;
    char eta[16];
    int n = sscanf(p, "\nstep %lld/%lld  epoch %lld  loss %lf  lr %lf  %lf samples/s  ETA %15s", &st, &total, &epoch,
                   &loss, &lr, &rate, eta);
    cr_expect_eq(n, 7, "not a whole log line: %.100s", p + 1);
    cr_expect_eq(st, 100 * (lines + 1));
    cr_expect_eq(epoch, (st - 1) / 4 + 1);
    cr_expect(isfinite(loss) && loss > 0 && fabs(lr - 0.01) < 1e-9 && rate > 0, "%.100s", p + 1);
    lines++;
  }
  cr_expect_eq(lines, 3, "%s", out);
  free(out);
  remove_dir(dir);
}

// An interrupted run without --checkpoint replaces the default file of its own
// model, but not another model's: that one stays, and the state goes to
// MODEL.interrupted-2.ckpt. Every save is one line with its path and step.
TEST(train_term, the_default_path_keeps_another_models_checkpoint) {
  char *dir = make_dir();
  build_model(dir, 4);   // another model: its hidden layer is narrower
  char first[256], second[256], args[2048], *out;
  snprintf(first, sizeof first, "%s/m.interrupted.ckpt", dir);
  snprintf(second, sizeof second, "%s/m.interrupted-2.ckpt", dir);
  snprintf(args, sizeof args, "NO_COLOR=1 %s train %s/m.ingot --steps=10 --checkpoint=%s --checkpoint-every=5", smelt_path(),
           dir, first);
  cr_assert_eq(run_cmd(args, &out), 0, "%s", out);
  char want[600];
  snprintf(want, sizeof want, "saved %s at step 5\nstep", first);   // plain log lines: the save, then the step
  cr_expect(strstr(out, want) != NULL, "no '%s' in:\n%s", want, out);
  snprintf(want, sizeof want, "saved %s at step 10\n", first);
  cr_expect(strstr(out, want) != NULL, "no '%s' in:\n%s", want, out);
  free(out);
  size_t len;
  char *before = slurp_bytes(first, &len);
  build_model(dir, 8);
  for (int round = 0; round < 2; round++) {   // the second replaces the first's -2
    pid_t pid;
    snprintf(args, sizeof args, "train %s/m.ingot --steps=4000 --log-every=1 --threads=1", dir);
    int fd = spawn(args, &pid);
    Buf b = {0};
    read_until(fd, &b, "step 2/4000");
    cr_assert_eq(kill(pid, SIGINT), 0);
    int status = read_to_end(fd, &b, pid);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 130, "%s", b.text);
    snprintf(want, sizeof want, "continue with --checkpoint=%s --resume", second);
    cr_expect(strstr(b.text, want) != NULL, "no '%s' in:\n%s", want, b.text);
    cr_expect(strstr(b.text, "m.interrupted-3") == NULL, "%s", b.text);
    free(b.text);
  }
  size_t len2;
  char *after = slurp_bytes(first, &len2);
  cr_expect(len == len2 && !memcmp(before, after, len), "another model's checkpoint was replaced");
  free(before);
  free(after);
  remove_dir(dir);
}

// --log-dir=DIR: DIR/scalars.csv, a header and one row per step with its
// loss and learning rate; a resumed run appends its rows.
TEST(train_term, log_dir_writes_a_row_of_scalars_per_step) {
  char *dir = make_dir();
  build_model(dir, 8);
  char args[2048], path[300], *out;
  snprintf(args, sizeof args, "NO_COLOR=1 %s train %s/m.ingot --steps=12 --stop-after=7 --checkpoint=%s/c.ckpt "
           "--log-dir=%s/logs", smelt_path(), dir, dir, dir);
  cr_assert_eq(run_cmd(args, &out), 0, "%s", out);
  free(out);
  snprintf(args, sizeof args, "NO_COLOR=1 %s train %s/m.ingot --steps=12 --checkpoint=%s/c.ckpt --resume "
           "--log-dir=%s/logs", smelt_path(), dir, dir, dir);
  cr_assert_eq(run_cmd(args, &out), 0, "%s", out);
  free(out);
  snprintf(path, sizeof path, "%s/logs/scalars.csv", dir);
  char *csv = slurp(path);
  const char *header = "step,loss,lr,grad_norm,samples_per_s,eval_loss,eval_accuracy\n";
  cr_assert(!strncmp(csv, header, strlen(header)), "%s", csv);
  int rows = 0;
  for (const char *p = csv + strlen(header); *p; p = strchr(p, '\n') + 1) {
    long long step;
    double loss, lr, rate;
    int used = 0;
    cr_assert_eq(sscanf(p, "%lld,%lf,%lf,,%lf,,%n", &step, &loss, &lr, &rate, &used), 4, "row %.80s", p);
    cr_expect(used > 0 && p[used] == '\n', "row %.80s", p);
    cr_expect_eq(step, ++rows);
    cr_expect(isfinite(loss) && loss > 0 && fabs(lr - 0.01) < 1e-9 && rate > 0, "row %.80s", p);
  }
  cr_expect_eq(rows, 12, "%s", csv);
  free(csv);
  remove_dir(dir);
}

// ---- TensorBoard's event files, read back by a decoder of their own

static uint32_t crc32c_bitwise(const unsigned char *p, size_t n) {   // the slow, obvious form
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

static uint32_t unmasked(uint32_t m) {
  uint32_t r = m - 0xa282ead8u;
  return (r << 15) | (r >> 17);
}

static uint32_t le32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

static uint64_t varint(const unsigned char **p, const unsigned char *end) {
  uint64_t v = 0;
  for (int shift = 0; *p < end; shift += 7) {
    unsigned char b = *(*p)++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) break;
  }
  return v;
}

typedef struct {
  long long step;
  char version[32];
  int nvalues;
  char tags[8][32];
  float values[8];
} Event;

// One Event message: step, file_version, and the summary's tag/simple_value pairs.
static void decode_event(const unsigned char *p, const unsigned char *end, Event *e) {
  memset(e, 0, sizeof *e);
  while (p < end) {
    uint64_t key = varint(&p, end);
    int field = (int)(key >> 3), wire = (int)(key & 7);
    if (wire == 1) p += 8;   // wall_time
    else if (wire == 0) {
      uint64_t v = varint(&p, end);
      if (field == 2) e->step = (long long)v;
    } else if (wire == 2) {
      uint64_t len = varint(&p, end);
      const unsigned char *sub = p, *sub_end = p + len;
      p += len;
      if (field == 3) snprintf(e->version, sizeof e->version, "%.*s", (int)len, (const char *)sub);
      if (field != 5) continue;
      while (sub < sub_end) {   // Summary: repeated Value (field 1)
        cr_assert_eq(varint(&sub, sub_end), (uint64_t)(1 << 3 | 2));
        uint64_t vl = varint(&sub, sub_end);
        const unsigned char *v = sub, *v_end = sub + vl;
        sub += vl;
        int k = e->nvalues++;
        while (v < v_end) {
          uint64_t vk = varint(&v, v_end);
          if (vk == (1 << 3 | 2)) {
            uint64_t tl = varint(&v, v_end);
            snprintf(e->tags[k], sizeof e->tags[k], "%.*s", (int)tl, (const char *)v);
            v += tl;
          } else {
            cr_assert_eq(vk, (uint64_t)(2 << 3 | 5));
            uint32_t bits = le32(v);
            memcpy(&e->values[k], &bits, 4);
            v += 4;
          }
        }
      }
    } else {
      cr_assert_fail("wire type %d", wire);
    }
  }
}

TEST(train_term, log_dir_writes_tensorboard_events) {
  char *dir = make_dir();
  build_model(dir, 8);
  char args[2048], path[600], *out;
  snprintf(args, sizeof args, "NO_COLOR=1 %s train %s/m.ingot --steps=5 --log-dir=%s/logs", smelt_path(), dir, dir);
  cr_assert_eq(run_cmd(args, &out), 0, "%s", out);
  free(out);
  snprintf(args, sizeof args, "ls %s/logs | grep '^events.out.tfevents.'", dir);
  cr_assert_eq(run_cmd(args, &out), 0, "%s", out);
  out[strcspn(out, "\n")] = 0;
  snprintf(path, sizeof path, "%s/logs/%s", dir, out);
  free(out);
  size_t len;
  unsigned char *data = (unsigned char *)file_read(path, &len);
  cr_assert(data, "%s", path);
  snprintf(path, sizeof path, "%s/logs/scalars.csv", dir);
  char *csv = slurp(path), *row = strchr(csv, '\n') + 1;
  int records = 0;
  for (size_t at = 0; at < len; records++) {
    cr_assert(at + 12 <= len);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)data[at + i] << (8 * i);
    cr_expect_eq(unmasked(le32(data + at + 8)), crc32c_bitwise(data + at, 8), "record %d: length CRC", records);
    cr_assert(at + 12 + n + 4 <= len);
    cr_expect_eq(unmasked(le32(data + at + 12 + n)), crc32c_bitwise(data + at + 12, n), "record %d: data CRC", records);
    Event e;
    decode_event(data + at + 12, data + at + 12 + n, &e);
    if (records == 0) {
      cr_expect_str_eq(e.version, "brain.Event:2");
    } else {
      // the step's scalars, as its CSV row has them
      long long step;
      double loss, lr;
      cr_assert_eq(sscanf(row, "%lld,%lf,%lf", &step, &loss, &lr), 3, "%s", row);
      row = strchr(row, '\n') + 1;
      cr_expect_eq(e.step, step);
      cr_expect(e.nvalues >= 3 && !strcmp(e.tags[0], "loss") && !strcmp(e.tags[1], "lr") &&
                !strcmp(e.tags[e.nvalues - 1], "samples_per_s"), "step %lld: %d values", step, e.nvalues);
      cr_expect_float_eq(e.values[0], (float)loss, 1e-6 * fabs(loss));
      cr_expect_float_eq(e.values[1], (float)lr, 1e-9);
    }
    at += 12 + n + 4;
  }
  cr_expect_eq(records, 6, "the version record and one per step");
  free(csv);
  free(data);
  remove_dir(dir);
}
