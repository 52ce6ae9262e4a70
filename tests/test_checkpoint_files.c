// test_checkpoint_files.c: checkpoints in safetensors, both ways.
//
// tests/safetensors/make_st.py wrote the files read here (committed, so no
// Python runs): a checkpoint of tests/safetensors/tiny.smelt written by the
// safetensors library, which smelt_load, `smelt eval`, `smelt run` and
// `smelt train --resume` read; and what safe_open read from the checkpoint
// smelt_save wrote (smelt.txt), which must match the session's tensors, with
// smelt writing that file again byte for byte.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime.h"
#include "smelt.h"
#include "tensorfile.h"
#include "support.h"

#define DIR "tests/safetensors/"

// The value the test files give element i of tensor name (make_st.py's
// values()): base + key / 4 - i / 16, with key a hash of the name (h = 31 h +
// byte, mod 97), distinct for each of tiny.smelt's tensors.
static float value_of(const char *name, int64_t i, double base) {
  unsigned h = 0;
  for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h * 31 + *p) % 97;
  return (float)(base + h * 0.25 - (double)i * 0.0625);
}

static void build_tiny(const char *path) {
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_file(&c, DIR "tiny.smelt");
  cr_assert_not_null(m);
  cr_assert_eq(check_modules(&c, &m, 1, NULL, 0), 0);
  cr_assert_eq(ingot_build(&c, m, NULL, 0, &(BuildTargets){.fusion = FUSION_ALL}, path), 0);
  compilation_free(&c);
}

typedef struct {
  char ingot[64];
  smelt_ingot *ig;
  smelt_session *s;
} Tiny;

static void tiny_open(Tiny *t) {
  snprintf(t->ingot, sizeof t->ingot, "build/test-stfiles-%d.ingot", (int)getpid());
  build_tiny(t->ingot);
  cr_assert_eq(smelt_ingot_open(t->ingot, &t->ig), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_session_new(t->ig, "cpu", 1, &t->s), SMELT_OK, "%s", smelt_last_error());
}

static void tiny_close(Tiny *t) {
  smelt_session_free(t->s);
  smelt_ingot_close(t->ig);
  unlink(t->ingot);
}

// Calls fn on every parameter and state tensor of the ingot.
static void each_persistent(const smelt_ingot *ig, void (*fn)(const smelt_tensor_info *, void *), void *arg) {
  smelt_role roles[2] = {SMELT_PARAM, SMELT_STATE};
  for (int r = 0; r < 2; r++)
    for (size_t i = 0; i < smelt_ingot_tensor_count(ig, NULL, roles[r]); i++) {
      smelt_tensor_info info;
      cr_assert_eq(smelt_ingot_tensor_info(ig, NULL, roles[r], i, &info), SMELT_OK);
      fn(&info, arg);
    }
}

// Gives every tensor the test's values (base 0.5) and the step counter 7.
static void set_one(const smelt_tensor_info *info, void *arg) {
  smelt_session *s = arg;
  if (info->dtype == SMELT_I64) {
    int64_t step = 7;
    cr_assert_eq(smelt_set_tensor(s, info->name, &step, sizeof step), SMELT_OK, "%s", smelt_last_error());
    return;
  }
  cr_assert_eq(info->dtype, SMELT_F32, "%s", info->name);
  size_t n = info->bytes / 4;
  float *v = malloc(info->bytes);
  for (size_t i = 0; i < n; i++) v[i] = value_of(info->name, (int64_t)i, 0.5);
  cr_assert_eq(smelt_set_tensor(s, info->name, v, info->bytes), SMELT_OK, "%s", smelt_last_error());
  free(v);
}

static void count_one(const smelt_tensor_info *info, void *arg) {
  (void)info;
  ++*(int *)arg;
}

// One "tensor NAME DTYPE DIMS VALUES..." line of smelt.txt against the
// session's tensor of that name.
static void check_line(smelt_session *s, const smelt_ingot *ig, char *line) {
  char *save, *name = strtok_r(line, " ", &save), *dtype = strtok_r(NULL, " ", &save),
             *dims = strtok_r(NULL, " ", &save);
  cr_assert(name && dtype && dims);
  smelt_tensor_info info = {0};
  bool found = false;
  smelt_role roles[2] = {SMELT_PARAM, SMELT_STATE};
  for (int r = 0; r < 2 && !found; r++)
    for (size_t i = 0; i < smelt_ingot_tensor_count(ig, NULL, roles[r]) && !found; i++) {
      cr_assert_eq(smelt_ingot_tensor_info(ig, NULL, roles[r], i, &info), SMELT_OK);
      found = !strcmp(info.name, name);
    }
  cr_assert(found, "Python read a tensor '%s' the model does not have", name);
  char want[64] = "";
  for (int d = 0; d < info.ndim; d++)
    snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? "," : "", (long long)info.dims[d]);
  cr_expect_str_eq(dims, info.ndim ? want : "-", "%s", name);
  cr_expect_str_eq(dtype, info.dtype == SMELT_I64 ? "int64" : "float32", "%s", name);
  size_t n = info.bytes / (info.dtype == SMELT_I64 ? 8 : 4), k = 0;
  char *mem = malloc(info.bytes);
  cr_assert_eq(smelt_get_tensor(s, name, mem, info.bytes), SMELT_OK);
  for (char *tok; (tok = strtok_r(NULL, " \n", &save)); k++) {
    cr_assert_lt(k, n, "Python read more values of '%s' than it has", name);
    double got = info.dtype == SMELT_I64 ? (double)((int64_t *)mem)[k] : ((float *)mem)[k];
    cr_expect_eq(atof(tok), got, "%s[%zu]: Python read %s, the session holds %g", name, k, tok, got);
  }
  cr_expect_eq(k, n, "Python read %zu values of '%s', not %zu", k, name, n);
  free(mem);
}

TEST(stfiles, python_reads_what_smelt_writes) {
  Tiny t;
  tiny_open(&t);
  each_persistent(t.ig, set_one, t.s);
  const char *regen = getenv("SMELT_CHECKPOINT_OUT");   // make_st.py, writing smelt.safetensors
  char path[64];
  snprintf(path, sizeof path, "build/test-stfiles-%d.safetensors", (int)getpid());
  cr_assert_eq(smelt_save(t.s, regen ? regen : path), SMELT_OK, "%s", smelt_last_error());
  if (regen) {
    tiny_close(&t);
    return;
  }
  size_t la, lb;
  char *a = file_read(path, &la), *b = file_read(DIR "smelt.safetensors", &lb);
  cr_assert(a && b);
  cr_expect(la == lb && !memcmp(a, b, la), "smelt_save no longer writes the file Python read (make_st.py)");
  free(a);
  free(b);
  char *txt = slurp(DIR "smelt.txt"), *save;
  int lines = 0, tensors = 0, meta = 0;
  for (char *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (!strncmp(line, "metadata ", 9)) {
      cr_expect(!strcmp(line, "metadata smelt.model tiny") || !strcmp(line, "metadata smelt.step 7"), "%s", line);
      meta++;
    } else {
      cr_assert(!strncmp(line, "tensor ", 7), "%s", line);
      check_line(t.s, t.ig, line + 7);
      lines++;
    }
  }
  each_persistent(t.ig, count_one, &tensors);
  cr_expect_eq(meta, 2);
  cr_expect_eq(lines, tensors, "Python read %d tensors of %d", lines, tensors);
  free(txt);
  unlink(path);
  tiny_close(&t);
}

// Every tensor of the Python-written checkpoint (base -1, step 42), as the
// session holds it after smelt_load.
static void check_python(const smelt_tensor_info *info, void *arg) {
  smelt_session *s = arg;
  char *mem = malloc(info->bytes);
  cr_assert_eq(smelt_get_tensor(s, info->name, mem, info->bytes), SMELT_OK);
  if (info->dtype == SMELT_I64) {
    cr_expect_eq(*(int64_t *)mem, 42, "%s", info->name);
  } else {
    for (size_t i = 0; i < info->bytes / 4; i++)
      cr_expect_eq(((float *)mem)[i], value_of(info->name, (int64_t)i, -1.0), "%s[%zu]", info->name, i);
  }
  free(mem);
}

TEST(stfiles, smelt_loads_what_python_wrote) {
  Tiny t;
  tiny_open(&t);
  cr_assert_eq(smelt_load(t.s, DIR "python.safetensors"), SMELT_OK, "%s", smelt_last_error());
  each_persistent(t.ig, check_python, t.s);
  tiny_close(&t);
}

static int smelt(const char *args, char **out) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "NO_COLOR=1 %s %s", smelt_path(), args);
  return run_cmd(cmd, out);
}

// `smelt eval` and `smelt run` read the Python-written checkpoint; `smelt
// train --resume` continues it from its step 42 and saves the model's name
// and the step in the metadata.
TEST(stfiles, the_commands_read_and_resume_a_python_checkpoint) {
  char *out, args[512], ckpt[64];
  cr_assert_eq(smelt("eval " DIR "tiny.smelt --checkpoint=" DIR "python.safetensors", &out), 0, "%s", out);
  cr_expect(strstr(out, "test: loss ") != NULL, "%s", out);
  free(out);
  snprintf(ckpt, sizeof ckpt, "build/test-stfiles-%d.safetensors", (int)getpid());
  snprintf(args, sizeof args, "cp " DIR "python.safetensors %s", ckpt);
  cr_assert_eq(system(args), 0);
  snprintf(args, sizeof args, "train " DIR "tiny.smelt --checkpoint=%s --resume --steps=44 --threads=1", ckpt);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  cr_expect(strstr(out, "resumed from") != NULL && strstr(out, "at step 44") != NULL, "%s", out);
  free(out);
  size_t len;
  char *bytes = file_read(ckpt, &len);
  cr_assert(bytes && len > 8);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | (unsigned char)bytes[i];
  cr_assert_lt(hlen, len);
  char *json = strndup(bytes + 8, hlen);
  cr_expect(strstr(json, "\"smelt.model\":\"tiny\"") && strstr(json, "\"smelt.step\":\"44\""), "%s", json);
  free(json);
  free(bytes);
  unlink(ckpt);
}

// ---- a parameters file (no step counter) loaded as a checkpoint

// After loading python-params.safetensors over a session whose every tensor
// was set (step 7): the parameters and buffers are the file's, the
// optimizer's state its initial value (zeros), the step 0.
static void check_fresh(const smelt_tensor_info *info, void *arg) {
  smelt_session *s = arg;
  char *mem = malloc(info->bytes);
  cr_assert_eq(smelt_get_tensor(s, info->name, mem, info->bytes), SMELT_OK);
  const char *dot = strrchr(info->name, '.');
  bool moment = dot && (!strcmp(dot, ".m") || !strcmp(dot, ".v"));
  if (info->dtype == SMELT_I64)
    cr_expect_eq(*(int64_t *)mem, 0, "%s", info->name);
  else
    for (size_t i = 0; i < info->bytes / 4; i++)
      cr_expect_eq(((float *)mem)[i], moment ? 0.0f : value_of(info->name, (int64_t)i, -1.0), "%s[%zu]", info->name, i);
  free(mem);
}

TEST(stfiles, a_parameters_file_loads_with_fresh_optimizer_state) {
  Tiny t;
  tiny_open(&t);
  each_persistent(t.ig, set_one, t.s);
  cr_assert_eq(smelt_load(t.s, DIR "python-params.safetensors"), SMELT_OK, "%s", smelt_last_error());
  cr_expect(session_loaded_params_only(t.s));
  each_persistent(t.ig, check_fresh, t.s);
  cr_assert_eq(smelt_load(t.s, DIR "python.safetensors"), SMELT_OK, "%s", smelt_last_error());
  cr_expect(!session_loaded_params_only(t.s));
  // a file with the step counter is a checkpoint: every tensor or nothing
  char path[64], err[256];
  snprintf(path, sizeof path, "build/test-stfiles-%d.tensors", (int)getpid());
  double w[6] = {0}, step = 3;
  TensorEntry some[2] = {{"fc.w", shape_of(2, (int64_t[]){3, 2}), w}, {"step", shape_of(0, NULL), &step}};
  cr_assert_eq(tensorfile_write(path, some, 2, err, sizeof err), 0, "%s", err);
  cr_expect_eq(smelt_load(t.s, path), SMELT_ERR_FORMAT);
  cr_expect(strstr(smelt_last_error(), "has no value for 'fc.b'") != NULL, "%s", smelt_last_error());
  // without it, every parameter is still needed
  cr_assert_eq(tensorfile_write(path, some, 1, err, sizeof err), 0, "%s", err);
  cr_expect_eq(smelt_load(t.s, path), SMELT_ERR_FORMAT);
  cr_expect(strstr(smelt_last_error(), "has no value for 'fc.b'") != NULL, "%s", smelt_last_error());
  each_persistent(t.ig, check_python, t.s);   // the refused files changed nothing
  unlink(path);
  tiny_close(&t);
}

// `smelt eval` and `smelt run` take a parameters file as --checkpoint; `smelt
// train --resume` from one fine-tunes from step 0, saying so, to the same
// checkpoint as --weights gives.
TEST(stfiles, the_commands_fine_tune_from_a_parameters_file) {
  char *out, args[512], a[64], b[64], in[64], err[256];
  int pid = (int)getpid();
  cr_assert_eq(smelt("eval " DIR "tiny.smelt --checkpoint=" DIR "python-params.safetensors", &out), 0, "%s", out);
  cr_expect(strstr(out, "test: loss ") != NULL, "%s", out);
  free(out);
  snprintf(in, sizeof in, "build/test-stfiles-%d-x.tensors", pid);
  double x[12] = {0.5, 1, -1, 0, 2, 0.25, 1, 1, 1, -2, 0, 3};
  TensorEntry xe = {"x", shape_of(2, (int64_t[]){4, 3}), x};
  cr_assert_eq(tensorfile_write(in, &xe, 1, err, sizeof err), 0, "%s", err);
  snprintf(args, sizeof args, "run " DIR "tiny.smelt --checkpoint=" DIR "python-params.safetensors --inputs=%s", in);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  cr_expect(strstr(out, "logits: f32[4, 2]") != NULL, "%s", out);
  free(out);
  snprintf(a, sizeof a, "build/test-stfiles-%d-a.safetensors", pid);
  snprintf(b, sizeof b, "build/test-stfiles-%d-b.safetensors", pid);
  snprintf(args, sizeof args, "cp " DIR "python-params.safetensors %s", a);
  cr_assert_eq(system(args), 0);
  snprintf(args, sizeof args, "train " DIR "tiny.smelt --checkpoint=%s --resume --threads=1", a);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  char note[160];
  snprintf(note, sizeof note, "fine-tuning from parameters only (%s): optimizer state starts fresh", a);
  cr_expect(strstr(out, note) != NULL && strstr(out, "at step 3") != NULL, "%s", out);
  free(out);
  snprintf(args, sizeof args, "train " DIR "tiny.smelt --weights=" DIR "python-params.safetensors --checkpoint=%s "
           "--threads=1", b);
  cr_assert_eq(smelt(args, &out), 0, "%s", out);
  free(out);
  size_t la, lb;
  char *da = file_read(a, &la), *db = file_read(b, &lb);
  cr_assert(da && db);
  cr_expect(la == lb && !memcmp(da, db, la), "--resume from parameters differs from --weights");
  free(da);
  free(db);
  unlink(a);
  unlink(b);
  unlink(in);
}

// ---- evaluation over every sample

// tiny.smelt's test split has 10 samples, two batches of 4 and 2 more: `smelt
// eval` counts all 10, with the loss and accuracy of the model computed here
// from the checkpoint's values (eval mode: batch norm by its running
// statistics), sample by sample.
TEST(stfiles, eval_counts_the_samples_after_the_last_whole_batch) {
  char *out;
  cr_assert_eq(smelt("eval " DIR "tiny.smelt --checkpoint=" DIR "python.safetensors", &out), 0, "%s", out);
  FILE *fx = fopen(DIR "x.csv", "r"), *fy = fopen(DIR "y.csv", "r");
  cr_assert(fx && fy);
  double x[3], loss = 0;
  int y, n = 0, correct = 0;
  while (fscanf(fx, "%lf,%lf,%lf", &x[0], &x[1], &x[2]) == 3 && fscanf(fy, "%d", &y) == 1) {
    double logit[2];
    for (int c = 0; c < 2; c++) {
      double z = value_of("fc.b", c, -1.0);
      for (int i = 0; i < 3; i++) z += x[i] * value_of("fc.w", i * 2 + c, -1.0);
      double mean = value_of("bn.running_mean", c, -1.0), var = value_of("bn.running_var", c, -1.0);
      logit[c] = (z - mean) / sqrt(var + 1e-5) * value_of("bn.g", c, -1.0) + value_of("bn.b", c, -1.0);
    }
    double hi = fmax(logit[0], logit[1]);
    loss += hi + log(exp(logit[0] - hi) + exp(logit[1] - hi)) - logit[y];
    correct += (logit[1] > logit[0]) == (y == 1);
    n++;
  }
  fclose(fx);
  fclose(fy);
  cr_assert_eq(n, 10);
  char want[128];
  snprintf(want, sizeof want, "test: loss %.4f, accuracy %.2f%% (10 samples)", loss / n, 100.0 * correct / n);
  cr_expect(strstr(out, want) != NULL, "%s\nwant %s", out, want);
  free(out);
}
