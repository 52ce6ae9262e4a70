// test_distributed.c: data-parallel training (docs/distributed.md).
//
// The training step in two entries (train_grad, then train_apply on the
// gradients) must be the whole step; under mpirun, N ranks at batch B must
// train what one rank trains at batch N * B (the same losses, gradient norms
// and checkpoint, to rounding), one rank under mpirun must be plain
// `smelt train` byte for byte, an ingot without the two entries is
// refused, and a resumed run on ranks equals one uninterrupted. The mpirun
// tests are skipped, saying so, where mpirun is absent.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "smelt.h"
#include "support.h"
#include "tensorfile.h"
#include "tools.h"

// A two-layer classifier on 64 rows of CSV data (6 features, 4 classes) in
// dir (the data named relative to the model file), trained with AdamW and clipping (the clip is below the gradient norm,
// so it acts); precision is "fp32" or "fp16" (loss scaling).
static void write_model(const char *dir, const char *precision) {
  char path[512];
  snprintf(path, sizeof path, "%s/x.csv", dir);
  FILE *x = fopen(path, "w");
  snprintf(path, sizeof path, "%s/y.csv", dir);
  FILE *y = fopen(path, "w");
  cr_assert(x && y);
  for (int i = 0; i < 64; i++) {
    for (int j = 0; j < 6; j++) fprintf(x, "%s%.4f", j ? "," : "", sin(0.7 * i + 1.3 * j));
    fprintf(x, "\n");
    fprintf(y, "%d\n", (i * 5 + i / 7) % 4);
  }
  fclose(x);
  fclose(y);
  snprintf(path, sizeof path, "%s/m.smelt", dir);
  FILE *m = fopen(path, "w");
  cr_assert_not_null(m);
  fprintf(m,
          "import \"nn\"\nmodel m(B = 8, H = 16) {\n  input x: f32[B, 6]\n  input y: i32[B]\n"
          "  let h = tanh(linear(x, H) as fc1)\n  output logits = linear(h, 4) as fc2\n"
          "  loss cross_entropy(logits, y)\n}\n"
          "train {\n  optimizer = adamw(lr = 0.01, weight_decay = 0.01)\n  clip_grad_norm = 0.5\n"
          "  precision = %s\n  steps = 12\n  seed = 5\n  data train {\n"
          "    x = csv(\"x.csv\")\n    y = csv(\"y.csv\")\n  }\n}\n",
          precision);
  fclose(m);
}

static void make_dir(char *dir, size_t n, const char *what) {
  snprintf(dir, n, "build/test-dist-%s-%d", what, (int)getpid());
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
  cr_assert_eq(system(cmd), 0);
}

static void remove_dir(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
}

// Builds dir/m.smelt with both training entries at batch B into path.
static void build_split(const char *dir, int64_t batch, const char *path) {
  char src[512];
  snprintf(src, sizeof src, "%s/m.smelt", dir);
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_file(&c, src);
  Define d[] = {{"B", batch}};
  cr_assert_eq(check_modules(&c, &m, 1, d, 1), 0);
  cr_assert_eq(ingot_build(&c, m, d, 1, &(BuildTargets){.data_parallel = true}, path), 0);
  compilation_free(&c);
}

static void batch_of(int step, float *x, int32_t *y) {
  for (int i = 0; i < 8 * 6; i++) x[i] = (float)sin(0.37 * i + step);
  for (int i = 0; i < 8; i++) y[i] = (i + step) % 4;
}

// Every parameter and state tensor of a and b agrees within tol (relative
// to the larger magnitude, at least 1); returns how many were compared.
static int same_state(const smelt_ingot *ig, smelt_session *a, smelt_session *b, double tol) {
  int compared = 0;
  for (smelt_role role = SMELT_PARAM; role <= SMELT_STATE; role++)
    for (size_t i = 0; i < smelt_ingot_tensor_count(ig, NULL, role); i++) {
      smelt_tensor_info info;
      cr_assert_eq(smelt_ingot_tensor_info(ig, NULL, role, i, &info), SMELT_OK);
      void *va = malloc(info.bytes), *vb = malloc(info.bytes);
      cr_assert_eq(smelt_get_tensor(a, info.name, va, info.bytes), SMELT_OK);
      cr_assert_eq(smelt_get_tensor(b, info.name, vb, info.bytes), SMELT_OK);
      for (size_t k = 0; k < info.bytes / 4 && info.dtype == SMELT_F32; k++) {
        double p = ((float *)va)[k], q = ((float *)vb)[k];
        cr_assert_leq(fabs(p - q), tol * fmax(1, fmax(fabs(p), fabs(q))), "%s[%zu]: %.9g against %.9g", info.name, k,
                      p, q);
      }
      if (info.dtype != SMELT_F32) cr_assert_eq(memcmp(va, vb, info.bytes), 0, "%s", info.name);
      free(va);
      free(vb);
      compared++;
    }
  return compared;
}

// train_grad, its gradients given to train_apply, must update the model as
// train_step does; fp16 too (the loss scale divided out in train_grad,
// updated in train_apply).
static void split_equals_whole(const char *precision) {
  char dir[256], path[512];
  make_dir(dir, sizeof dir, precision);
  write_model(dir, precision);
  snprintf(path, sizeof path, "%s/m.ingot", dir);
  build_split(dir, 8, path);
  smelt_ingot *ig;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  smelt_session *whole, *split;
  cr_assert_eq(smelt_session_new(ig, "cpu", 1, &whole), SMELT_OK);
  cr_assert_eq(smelt_session_new(ig, "cpu", 1, &split), SMELT_OK);
  const char *grads[] = {"grad.fc1.w", "grad.fc1.b", "grad.fc2.w", "grad.fc2.b"};
  for (int step = 0; step < 5; step++) {
    float x[8 * 6], g[16 * 6];
    int32_t y[8];
    batch_of(step, x, y);
    cr_assert_eq(smelt_set_input(whole, "train_step", "x", x, sizeof x), SMELT_OK);
    cr_assert_eq(smelt_set_input(whole, "train_step", "y", y, sizeof y), SMELT_OK);
    cr_assert_eq(smelt_run(whole, "train_step", 5, (uint64_t)step), SMELT_OK, "%s", smelt_last_error());
    cr_assert_eq(smelt_set_input(split, "train_grad", "x", x, sizeof x), SMELT_OK);
    cr_assert_eq(smelt_set_input(split, "train_grad", "y", y, sizeof y), SMELT_OK);
    cr_assert_eq(smelt_run(split, "train_grad", 5, (uint64_t)step), SMELT_OK, "%s", smelt_last_error());
    const size_t bytes[] = {sizeof(float) * 16 * 6, sizeof(float) * 16, sizeof(float) * 4 * 16, sizeof(float) * 4};
    cr_assert_eq(smelt_ingot_tensor_count(ig, "train_apply", SMELT_INPUT), 4);
    for (int k = 0; k < 4; k++) {
      cr_assert_eq(smelt_get_output(split, "train_grad", grads[k], g, bytes[k]), SMELT_OK, "%s", smelt_last_error());
      cr_assert_eq(smelt_set_input(split, "train_apply", grads[k], g, bytes[k]), SMELT_OK, "%s", smelt_last_error());
    }
    cr_assert_eq(smelt_run(split, "train_apply", 5, (uint64_t)step), SMELT_OK, "%s", smelt_last_error());
    float la, lb, na = 0, nb = 0;
    smelt_get_output(whole, "train_step", "loss", &la, sizeof la);
    smelt_get_output(split, "train_grad", "loss", &lb, sizeof lb);
    cr_expect_eq(la, lb, "step %d: loss %.9g against %.9g", step, la, lb);
    smelt_get_output(whole, "train_step", "grad_norm", &na, sizeof na);
    smelt_get_output(split, "train_apply", "grad_norm", &nb, sizeof nb);
    cr_expect_float_eq(na, nb, 1e-6 * na, "step %d: gradient norm %.9g against %.9g", step, na, nb);
  }
  // the parameters, moments, step counter (and loss scale)
  cr_expect_geq(same_state(ig, whole, split, 1e-6), 9);
  smelt_session_free(whole);
  smelt_session_free(split);
  smelt_ingot_close(ig);
  remove_dir(dir);
}

TEST(distributed, split_step_equals_the_whole_step) { split_equals_whole("fp32"); }
TEST(distributed, split_step_equals_the_whole_step_fp16) { split_equals_whole("fp16"); }

// ---- under mpirun

static bool have_mpirun(void) { return system("command -v mpirun >/dev/null 2>&1") == 0; }

#if defined(__SANITIZE_ADDRESS__)
// Open MPI leaves much of what it allocates to the exit, some in plugins it
// has unloaded by then (no suppression can name those): LeakSanitizer is off
// in the ranks. The split step's tests above check the same entries for leaks
// without MPI.
#define RANK_ENV "ASAN_OPTIONS=detect_leaks=0 "
#else
#define RANK_ENV ""
#endif
#define MPIRUN RANK_ENV "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 mpirun"

// One training run: under mpirun -np ranks (0: not under mpirun) at batch B,
// its log in dir/LOG/scalars.csv and its checkpoint in dir/LOG.ckpt.
static int train(const char *dir, int ranks, int batch, const char *log, char **out) {
  char cmd[2048], launch[256] = "";
  if (ranks) snprintf(launch, sizeof launch, MPIRUN " -np %d", ranks);
  snprintf(cmd, sizeof cmd, "NO_COLOR=1 %s %s train %s/m.smelt -D B=%d --threads=1 --checkpoint=%s/%s.ckpt "
           "--log-dir=%s/%s --log-every=1 </dev/null", launch, smelt_path(), dir, batch, dir, log, dir, log);
  return run_cmd(cmd, out);
}

// Column col (0: step, 1: loss, 3: gradient norm) of each row of a scalars.csv.
static int column(const char *dir, const char *log, int col, double *v, int max) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s/scalars.csv", dir, log);
  char *text = slurp(path), *line = strchr(text, '\n');
  int n = 0;
  while (line && line[1] && n < max) {
    char *f = line + 1;
    for (int k = 0; k < col && f; k++) f = strchr(f, ',') + 1;
    v[n++] = atof(f);
    line = strchr(line + 1, '\n');
  }
  free(text);
  return n;
}

// The largest difference between the tensors of two checkpoints (f32 ones;
// the others must be the same bytes); fails unless both hold the same names.
static double checkpoint_diff(const char *a, const char *b) {
  char err[512];
  TensorReader *ra = tensor_reader_open(a, err, sizeof err), *rb = tensor_reader_open(b, err, sizeof err);
  cr_assert(ra && rb, "%s", err);
  cr_assert_eq(tensor_reader_count(ra), tensor_reader_count(rb));
  double worst = 0;
  for (uint32_t i = 0; i < tensor_reader_count(ra); i++) {
    const char *na, *nb;
    uint32_t da, db;
    Shape sa, sb;
    cr_assert(tensor_reader_next(ra, &na, &da, &sa) && tensor_reader_next(rb, &nb, &db, &sb));
    cr_assert_str_eq(na, nb);
    cr_assert_eq(da, db);
    uint64_t bytes = (uint64_t)shape_numel(&sa) * (uint64_t)dtype_size(da);
    char *va = malloc(bytes + 1), *vb = malloc(bytes + 1);
    cr_assert(tensor_reader_bytes(ra, va, bytes) && tensor_reader_bytes(rb, vb, bytes));
    if (da == DT_F32)
      for (uint64_t k = 0; k < bytes / 4; k++) worst = fmax(worst, fabs((double)((float *)va)[k] - ((float *)vb)[k]));
    else
      cr_expect_eq(memcmp(va, vb, bytes), 0, "%s", na);
    free(va);
    free(vb);
  }
  tensor_reader_close(ra);
  tensor_reader_close(rb);
  return worst;
}

static int count_of(const char *text, const char *what) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, what)); p++) n++;
  return n;
}

// What each rank takes of the global batch, the mean of the gradients and
// the global norm that clipping divides by: any of them wrong and the losses
// (one per step, each the global batch's mean) part from one rank's.
TEST(distributed, ranks_train_what_one_rank_trains_at_the_global_batch) {
  if (!have_mpirun()) cr_skip_test("mpirun is not installed (Debian: openmpi-bin, libopenmpi-dev)");
  char dir[256], *out;
  make_dir(dir, sizeof dir, "ranks");
  write_model(dir, "fp32");
  cr_assert_eq(train(dir, 0, 8, "one", &out), 0, "%s", out);
  free(out);
  for (int ranks = 2; ranks <= 4; ranks += 2) {
    char log[16];
    snprintf(log, sizeof log, "r%d", ranks);
    cr_assert_eq(train(dir, ranks, 8 / ranks, log, &out), 0, "%s", out);
    char ranks_line[64];
    snprintf(ranks_line, sizeof ranks_line, "on %d ranks of %d", ranks, 8 / ranks);
    cr_expect_not_null(strstr(out, ranks_line), "%s", out);
    cr_expect_eq(count_of(out, "trained 12 steps"), 1, "rank 0 alone reports:\n%s", out);
    cr_expect_eq(count_of(out, "saved "), 1, "rank 0 alone saves:\n%s", out);
    free(out);
    double l1[16], ln[16], g1[16], gn[16];
    cr_assert_eq(column(dir, "one", 1, l1, 16), 12);
    cr_assert_eq(column(dir, log, 1, ln, 16), 12);
    column(dir, "one", 3, g1, 16);
    column(dir, log, 3, gn, 16);
    for (int s = 0; s < 12; s++) {
      cr_expect_float_eq(l1[s], ln[s], 1e-5, "%d ranks, step %d: loss %.9g, one rank's %.9g", ranks, s + 1, ln[s], l1[s]);
      cr_expect_float_eq(g1[s], gn[s], 1e-5, "%d ranks, step %d: gradient norm %.9g, one rank's %.9g", ranks, s + 1,
                         gn[s], g1[s]);
      cr_expect_gt(g1[s], 0.5, "the clip acts at step %d", s + 1);
    }
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/one.ckpt", dir);
    snprintf(b, sizeof b, "%s/%s.ckpt", dir, log);
    double d = checkpoint_diff(a, b);
    cr_expect_lt(d, 1e-5, "%d ranks: the checkpoints differ by %g", ranks, d);
  }
  remove_dir(dir);
}

// On 3 ranks the ring cuts the 182 values of the exchange (180 gradient
// values, the loss, the stop flag) into segments of 61, 61 and 60: the
// losses and checkpoint are one rank's at the global batch of 6.
TEST(distributed, three_ranks_cut_the_exchange_unevenly) {
  if (!have_mpirun()) cr_skip_test("mpirun is not installed (Debian: openmpi-bin, libopenmpi-dev)");
  char dir[256], *out, a[512], b[512];
  make_dir(dir, sizeof dir, "three");
  write_model(dir, "fp32");
  cr_assert_eq(train(dir, 0, 6, "one", &out), 0, "%s", out);
  free(out);
  cr_assert_eq(train(dir, 3, 2, "r3", &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "on 3 ranks of 2"), "%s", out);
  free(out);
  double l1[16], l3[16];
  cr_assert_eq(column(dir, "one", 1, l1, 16), 12);
  cr_assert_eq(column(dir, "r3", 1, l3, 16), 12);
  for (int st = 0; st < 12; st++)
    cr_expect_float_eq(l1[st], l3[st], 1e-5, "step %d: loss %.9g on 3 ranks, one rank's %.9g", st + 1, l3[st], l1[st]);
  snprintf(a, sizeof a, "%s/one.ckpt", dir);
  snprintf(b, sizeof b, "%s/r3.ckpt", dir);
  double d = checkpoint_diff(a, b);
  cr_expect_lt(d, 1e-5, "the checkpoints differ by %g", d);
  remove_dir(dir);
}

// One rank under mpirun is plain `smelt train`: the same checkpoint bytes.
TEST(distributed, one_rank_is_plain_training) {
  if (!have_mpirun()) cr_skip_test("mpirun is not installed (Debian: openmpi-bin, libopenmpi-dev)");
  char dir[256], *out;
  make_dir(dir, sizeof dir, "one");
  write_model(dir, "fp32");
  cr_assert_eq(train(dir, 0, 8, "plain", &out), 0, "%s", out);
  free(out);
  cr_assert_eq(train(dir, 1, 8, "mpi1", &out), 0, "%s", out);
  cr_expect_null(strstr(out, " ranks of "), "%s", out);
  free(out);
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "cmp %s/plain.ckpt %s/mpi1.ckpt", dir, dir);
  cr_expect_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  remove_dir(dir);
}

// An ingot built without --data-parallel has no train_grad: one clear error
// (and every rank ends); with it, the ingot trains under mpirun.
TEST(distributed, ingot_needs_the_split_step) {
  if (!have_mpirun()) cr_skip_test("mpirun is not installed (Debian: openmpi-bin, libopenmpi-dev)");
  char dir[256], cmd[2048], *out;
  make_dir(dir, sizeof dir, "ingot");
  write_model(dir, "fp32");
  snprintf(cmd, sizeof cmd, "%s build %s/m.smelt -D B=4 -o %s/plain.ingot && %s build %s/m.smelt -D B=4 --data-parallel "
           "-o %s/dp.ingot", smelt_path(), dir, dir, smelt_path(), dir, dir);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, MPIRUN " -np 2 %s train %s/plain.ingot --threads=1 </dev/null", smelt_path(), dir);
  cr_expect_neq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "has no train_grad and train_apply entries"), "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, MPIRUN " -np 2 %s train %s/dp.ingot --threads=1 </dev/null", smelt_path(), dir);
  cr_expect_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "trained 12 steps"), "%s", out);
  free(out);
  remove_dir(dir);
}

// Stopped after 7 steps and resumed on 2 ranks, a run ends with the
// checkpoint of 12 steps in one go: the ranks continue from the same global
// batch.
TEST(distributed, resumed_ranks_continue_where_they_stopped) {
  if (!have_mpirun()) cr_skip_test("mpirun is not installed (Debian: openmpi-bin, libopenmpi-dev)");
  char dir[256], cmd[4096], *out;
  make_dir(dir, sizeof dir, "resume");
  write_model(dir, "fp32");
  snprintf(cmd, sizeof cmd, MPIRUN " -np 2 %s train %s/m.smelt -D B=4 --threads=1 --checkpoint=%s/a.ckpt --stop-after=7 "
           "</dev/null && " MPIRUN " -np 2 %s train %s/m.smelt -D B=4 --threads=1 --checkpoint=%s/a.ckpt --resume "
           "</dev/null && " MPIRUN " -np 2 %s train %s/m.smelt -D B=4 --threads=1 --checkpoint=%s/b.ckpt </dev/null && "
           "cmp %s/a.ckpt %s/b.ckpt", smelt_path(), dir, dir, smelt_path(), dir, dir, smelt_path(), dir, dir, dir, dir);
  cr_expect_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "resumed from"), "%s", out);
  free(out);
  remove_dir(dir);
}

// ---- faults

static void nap(double s) { nanosleep(&(struct timespec){(time_t)s, (long)((s - (double)(time_t)s) * 1e9)}, NULL); }

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

// cmd in the background, its own process group; its pid.
static pid_t start(const char *cmd) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    setpgid(0, 0);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  return pid;
}

// Its exit status within limit seconds, or -1 (and its group killed) when it
// did not end; *took: the seconds it took.
static int finish(pid_t pid, double limit, double *took) {
  double t0 = seconds();
  int st;
  while (waitpid(pid, &st, WNOHANG) == 0) {
    if (seconds() - t0 > limit) {
      kill(-pid, SIGKILL);
      waitpid(pid, &st, 0);
      *took = seconds() - t0;
      return -1;
    }
    nap(0.02);
  }
  *took = seconds() - t0;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// The pid of the rank of a run whose command line names dir, or -1.
static pid_t rank_pid(const char *dir, int rank) {
  char want[64];
  snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
  DIR *d = opendir("/proc");
  pid_t found = -1;
  for (struct dirent *e; d && found < 0 && (e = readdir(d));) {
    char path[300], buf[65536];
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    bool mine = false;
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1) mine |= strstr(buf + i, dir) != NULL && strstr(buf, "mpirun") == NULL;
    if (!mine) continue;
    snprintf(path, sizeof path, "/proc/%s/environ", e->d_name);
    f = fopen(path, "r");
    n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
      if (!strcmp(buf + i, want)) found = (pid_t)atoi(e->d_name);
  }
  if (d) closedir(d);
  return found;
}

// The step counter of a checkpoint.
static int64_t checkpoint_step(const char *path) {
  char err[512];
  TensorReader *r = tensor_reader_open(path, err, sizeof err);
  cr_assert_not_null(r, "%s", err);
  int64_t step = -1;
  for (uint32_t i = 0; i < tensor_reader_count(r); i++) {
    const char *name;
    uint32_t dt;
    Shape sh;
    cr_assert(tensor_reader_next(r, &name, &dt, &sh));
    uint64_t bytes = (uint64_t)shape_numel(&sh) * (uint64_t)dtype_size(dt);
    char *v = malloc(bytes + 1);
    cr_assert(tensor_reader_bytes(r, v, bytes));
    if (!strcmp(name, "step") && dt == DT_I64) memcpy(&step, v, sizeof step);
    free(v);
  }
  tensor_reader_close(r);
  return step;
}

// A long run on 2 ranks, saving every 100 steps; once it has saved, rank
// `rank` gets sig. Every rank must end within 30 s, the output must say what
// happened (expect), and the checkpoint left must be the one 2 ranks write
// when they stop at its step, byte for byte.
static void rank_fault(const char *what, int rank, int sig, const char *options, const char *expect) {
  if (!have_mpirun()) cr_skip_test("mpirun is not installed (Debian: openmpi-bin, libopenmpi-dev)");
  char dir[256], cmd[4096], log[600], ckpt[600], *out;
  make_dir(dir, sizeof dir, what);
  write_model(dir, "fp32");
  snprintf(cmd, sizeof cmd, "%s build %s/m.smelt -D B=4 --data-parallel -o %s/m.ingot", smelt_path(), dir, dir);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  snprintf(log, sizeof log, "%s/run.log", dir);
  snprintf(ckpt, sizeof ckpt, "%s/a.ckpt", dir);
  snprintf(cmd, sizeof cmd, "NO_COLOR=1 " MPIRUN " -np 2 %s train %s/m.ingot --threads=1 --steps=1000000000 --checkpoint=%s "
           "--checkpoint-every=100 --log-every=1000000 %s </dev/null >%s 2>&1", smelt_path(), dir, ckpt, options, log);
  pid_t run = start(cmd);
  struct stat st;
  for (double t0 = seconds(); stat(ckpt, &st) != 0 && seconds() - t0 < 120;) nap(0.02);
  cr_assert_eq(stat(ckpt, &st), 0, "no checkpoint within 120 s");
  nap(0.3);   // a few more saves
  pid_t victim = rank_pid(dir, rank);
  cr_assert_gt(victim, 0, "rank %d not found", rank);
  cr_assert_eq(kill(victim, sig), 0);
  double took;
  int rc = finish(run, 30, &took);
  if (sig == SIGSTOP) kill(victim, SIGKILL);   // were it left behind
  char *text = slurp(log);
  cr_expect_neq(rc, -1, "the ranks did not end within 30 s:\n%s", text);
  cr_expect_neq(rc, 0, "%s", text);
  cr_expect_not_null(strstr(text, expect), "%s", text);
  cr_log_info("%s: every rank ended %.1f s after rank %d's signal", what, took, rank);
  free(text);
  int64_t at = checkpoint_step(ckpt);
  // saved every 100 steps; a stopped rank 0 that mpirun continues and then
  // ends (SIGCONT, SIGTERM) saves where it stops, at a step boundary too
  cr_expect(at >= 100 && (at % 100 == 0 || sig == SIGSTOP), "the checkpoint is at step %lld", (long long)at);
  snprintf(cmd, sizeof cmd, MPIRUN " -np 2 %s train %s/m.ingot --threads=1 --steps=%lld --checkpoint=%s/b.ckpt </dev/null && "
           "cmp %s %s/b.ckpt", smelt_path(), dir, (long long)at, dir, ckpt, dir);
  cr_expect_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  remove_dir(dir);
}

// Killed, rank 1 ends the job: mpirun names it.
TEST(distributed, a_killed_rank_ends_every_rank) {
  rank_fault("kill", 1, SIGKILL, "", "process rank 1 with PID");
}

// Stopped, rank 1 leaves the others waiting in the exchange: past the
// timeout rank 0 finds that rank 1 does not answer, says so, and ends every
// rank.
TEST(distributed, a_stopped_rank_times_the_exchange_out) {
  rank_fault("stop", 1, SIGSTOP, "--dist-timeout=3", "the exchange did not complete within 3 s: rank 1 does not answer");
}

// Stopped, rank 0 cannot name anyone: past the deadline rank 1 asks it,
// hears nothing, and ends every rank saying so. Rank 0 saves every 100 steps
// here, so the stop often falls in a save, which the others once waited for
// without a deadline.
TEST(distributed, a_stopped_rank_0_is_found) {
  rank_fault("stop0", 0, SIGSTOP, "--dist-timeout=3", "the exchange did not complete within 3 s: rank 0 does not answer");
}

// Ranks at different steps (here rank 1 resumed from a checkpoint of step
// 6, rank 0 from nothing) are found at their first exchange, not trained on.
TEST(distributed, ranks_at_different_steps_are_refused) {
  if (!have_mpirun()) cr_skip_test("mpirun is not installed (Debian: openmpi-bin, libopenmpi-dev)");
  char dir[256], cmd[4096], *out;
  make_dir(dir, sizeof dir, "steps");
  write_model(dir, "fp32");
  snprintf(cmd, sizeof cmd, "%s build %s/m.smelt -D B=4 --data-parallel -o %s/m.ingot && " MPIRUN " -np 2 %s train "
           "%s/m.ingot --threads=1 --steps=6 --checkpoint=%s/six.ckpt </dev/null", smelt_path(), dir, dir, smelt_path(),
           dir, dir);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, MPIRUN " -np 1 %s train %s/m.ingot --threads=1 : -np 1 %s train %s/m.ingot --threads=1 "
           "--checkpoint=%s/six.ckpt --resume </dev/null", smelt_path(), dir, smelt_path(), dir, dir);
  cr_expect_neq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "step 0: rank 1 is at step 6 where rank 0 is at step 0"), "%s", out);
  free(out);
  remove_dir(dir);
}

// ---- determinism

// Two runs on N ranks (2 and 4) write the same checkpoint bytes, and every
// rank holds rank 0's parameters and optimizer state after every step
// (--dist-check-every=1, which fails the run otherwise).
TEST(distributed, repeated_runs_on_ranks_are_bit_identical) {
  if (!have_mpirun()) cr_skip_test("mpirun is not installed (Debian: openmpi-bin, libopenmpi-dev)");
  char dir[256], cmd[4096], *out;
  make_dir(dir, sizeof dir, "repeat");
  write_model(dir, "fp32");
  for (int ranks = 2; ranks <= 4; ranks += 2) {
    snprintf(cmd, sizeof cmd, "for run in 1 2; do " MPIRUN " -np %d %s train %s/m.smelt -D B=%d --steps=40 --dist-check-every=1 "
             "--checkpoint=%s/n%d-$run.ckpt </dev/null || exit 1; done && cmp %s/n%d-1.ckpt %s/n%d-2.ckpt", ranks,
             smelt_path(), dir, 8 / ranks, dir, ranks, dir, ranks, dir, ranks);
    cr_expect_eq(run_cmd(cmd, &out), 0, "%d ranks: %s", ranks, out);
    cr_expect_eq(count_of(out, "trained 40 steps"), 2, "%s", out);
    free(out);
  }
  remove_dir(dir);
}

// Ranks that part are found: rank 1 starting from other weights (mpirun's
// colon gives each rank its own command line) holds other parameters after
// the first check, and rank 0 names it and the first tensor that differs.
TEST(distributed, ranks_that_part_are_named) {
  if (!have_mpirun()) cr_skip_test("mpirun is not installed (Debian: openmpi-bin, libopenmpi-dev)");
  char dir[256], cmd[4096], *out;
  make_dir(dir, sizeof dir, "part");
  write_model(dir, "fp32");
  snprintf(cmd, sizeof cmd, "%s build %s/m.smelt -D B=4 --data-parallel -o %s/m.ingot && %s init %s/m.smelt -D B=4 --seed=99 "
           "-o %s/other.weights", smelt_path(), dir, dir, smelt_path(), dir, dir);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, MPIRUN " -np 1 %s train %s/m.ingot --threads=1 --dist-check-every=3 : -np 1 %s train %s/m.ingot "
           "--threads=1 --dist-check-every=3 --weights=%s/other.weights </dev/null", smelt_path(), dir, smelt_path(), dir,
           dir);
  cr_expect_neq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "after step 3, rank 1's 'fc1.w' differs from rank 0's: the ranks have parted"), "%s", out);
  free(out);
  remove_dir(dir);
}

// ---- smelt explain --ranks

// The number after key in text, or NAN.
static double number_after(const char *text, const char *key) {
  const char *p = strstr(text, key);
  return p ? atof(p + strlen(key)) : NAN;
}

// The test model's gradients: fc1 6 x 16 + 16, fc2 16 x 4 + 4, 180 f32
// values, 720 bytes; on 4 ranks at 1 MB/s the ring moves 2 * 3/4 * 720
// bytes per rank: 1.08 ms. The efficiency is the compute over the compute
// and the all-reduce, and needs --tflops.
TEST(distributed, explain_estimates_the_all_reduce) {
  char dir[256], cmd[1024], *out;
  make_dir(dir, sizeof dir, "explain");
  write_model(dir, "fp32");
  snprintf(cmd, sizeof cmd, "%s explain %s/m.smelt --ranks=4 --link=0.001 --tflops=1e-6 2>&1", smelt_path(), dir);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "all-reduced per step: 180 gradient values, 720 B (f32)"), "%s", out);
  cr_expect_float_eq(number_after(out, "bytes / link = "), 1.08, 1e-9, "%s", out);
  cr_expect_null(strstr(out, "#0 "), "the estimate replaces the kernel list:\n%s", out);
  double ms = number_after(out, "TFLOP/s: "), eff = number_after(out, "scaling efficiency: ");
  cr_expect_gt(ms, 0, "%s", out);
  cr_expect_float_eq(eff, ms / (ms + 1.08), 1e-3, "%s", out);
  cr_expect_float_eq(number_after(out, "as smelt runs it), "), ms > 1.08 ? 1.0 : ms / 1.08, 1e-3, "%s", out);
  cr_expect_not_null(strstr(out, "sends doubles: 1.4 KB"), "%s", out);
  free(out);
  // one rank exchanges nothing
  snprintf(cmd, sizeof cmd, "%s explain %s/m.smelt --ranks=1 --link=10 --tflops=1 2>&1", smelt_path(), dir);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect_float_eq(number_after(out, "bytes / link = "), 0, 1e-12, "%s", out);
  cr_expect_float_eq(number_after(out, "scaling efficiency: "), 1, 1e-12, "%s", out);
  free(out);
  // without --tflops, the rate at which the two take as long
  snprintf(cmd, sizeof cmd, "%s explain %s/m.smelt --ranks=4 --link=0.001 2>&1", smelt_path(), dir);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "--tflops=X gives the efficiency"), "%s", out);
  cr_expect_null(strstr(out, "scaling efficiency"), "%s", out);
  free(out);
  const char *bad[][2] = {
      {"--ranks=4", "--ranks needs --link=GBPS"},
      {"--link=10", "--link needs --ranks=N"},
      {"--ranks=2 --link=0", "--link takes"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    snprintf(cmd, sizeof cmd, "%s explain %s/m.smelt %s 2>&1", smelt_path(), dir, bad[i][0]);
    cr_expect_eq(run_cmd(cmd, &out), 2, "%s: %s", bad[i][0], out);
    cr_expect_not_null(strstr(out, bad[i][1]), "%s: %s", bad[i][0], out);
    free(out);
  }
  // an entry without a training step has nothing to spread over ranks
  snprintf(cmd, sizeof cmd, "%s explain %s/m.smelt --entry=infer --ranks=2 --link=10 2>&1", smelt_path(), dir);
  cr_expect_eq(run_cmd(cmd, &out), 1, "%s", out);
  cr_expect_not_null(strstr(out, "--ranks estimates a training step"), "%s", out);
  free(out);
  remove_dir(dir);
}

// ---- NCCL

// Opened where installed (here or in a CUDA toolkit's folder): its version,
// two unique ids (distinct, not empty), and a one-rank communicator, which
// needs a GPU: without one, NCCL's own reason. Skipped, saying why, where
// the library is absent.
TEST(distributed, nccl_opens_where_present) {
  char err[1024];
  NcclLib *n = nccl_open(false, err, sizeof err);
  if (!n) {
    cr_expect_not_null(strstr(err, "NCCL is not installed: no libnccl.so.2"), "%s", err);
    cr_skip_test("%s", err);
  }
  int major = 0, minor = -1, patch = -1;
  cr_assert_eq(nccl_version(n, &major, &minor, &patch, err, sizeof err), 0, "%s", err);
  cr_expect_eq(major, 2, "%s: NCCL %d.%d.%d", nccl_path(n), major, minor, patch);
  cr_expect(minor >= 0 && minor < 100 && patch >= 0 && patch < 100, "NCCL %d.%d.%d", major, minor, patch);
  cr_log_info("%s: NCCL %d.%d.%d", nccl_path(n), major, minor, patch);
  NcclId a, b, zero;
  memset(&zero, 0, sizeof zero);
  cr_assert_eq(nccl_unique_id(n, &a, err, sizeof err), 0, "%s", err);
  cr_assert_eq(nccl_unique_id(n, &b, err, sizeof err), 0, "%s", err);
  cr_expect_neq(memcmp(&a, &zero, sizeof a), 0, "an empty unique id");
  cr_expect_neq(memcmp(&a, &b, sizeof a), 0, "two unique ids alike");
  void *comm = NULL;
  if (nccl_comm_join(n, 0, 1, &comm, err, sizeof err)) {
    cr_expect_not_null(strstr(err, "NCCL: ncclCommInitRank failed: "), "%s", err);
    cr_log_info("one rank's communicator: %s", err);
  } else {
    cr_expect_eq(nccl_comm_check(n, comm, err, sizeof err), 0, "%s", err);
    nccl_comm_destroy(n, comm);
  }
  nccl_close(n);
}

// A library named by SMELT_NCCL_LIBRARY that does not load is named; a
// relative element of LD_LIBRARY_PATH opens nothing.
TEST(distributed, nccl_refuses_what_it_cannot_open) {
  char err[1024];
  setenv("SMELT_NCCL_LIBRARY", "/nonexistent/libnccl.so.2", 1);
  cr_expect_null(nccl_open(false, err, sizeof err));
  cr_expect_not_null(strstr(err, "SMELT_NCCL_LIBRARY=/nonexistent/libnccl.so.2 cannot be loaded"), "%s", err);
  unsetenv("SMELT_NCCL_LIBRARY");
  setenv("LD_LIBRARY_PATH", "/usr/lib:lib", 1);
  cr_expect_null(nccl_open(true, err, sizeof err));
  cr_expect_not_null(strstr(err, "RCCL is not loaded: LD_LIBRARY_PATH has the relative element 'lib'"), "%s", err);
}
