// test_libapi.c: libsmeltrt as a C library that programs link.
//
// Only smelt_* names leave the shared and the static library, so a program's
// own rt_fail cannot take over the library's error path.
#include <criterion/criterion.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smelt.h"
#include "support.h"
#include "tensorfile.h"

static const Define mlp_sizes[] = {{"B", 4}, {"H", 8}};

// Builds examples/mlp.smelt at tiny sizes into a file named for this process.
static const char *build_mlp(void) {
  static char path[64];
  snprintf(path, sizeof path, "build/test-libapi-%d.ingot", (int)getpid());
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_file(&c, "examples/mlp.smelt");
  cr_assert_eq(check_modules(&c, &m, 1, NULL, 0), 0);
  cr_assert_eq(ingot_build(&c, m, mlp_sizes, 2, &(BuildTargets){.fusion = FUSION_ALL}, path), 0);
  compilation_free(&c);
  return path;
}

#if defined(__SANITIZE_ADDRESS__)
#define SAN_FLAGS "-fsanitize=address,undefined"   // the libraries were built so
#define SANITIZED 1
#else
#define SAN_FLAGS ""
#define SANITIZED 0
#endif

// The build folder the test binary lives in ("build", "build-asan").
static const char *build_dir(void) {
  static char dir[1024];
  char exe[PATH_MAX];
  snprintf(exe, sizeof exe, "%s", smelt_path());
  snprintf(dir, sizeof dir, "%s", dirname(exe));
  return dir;
}

// Writes text to a fresh file named for this process; returns its path.
static const char *write_temp(const char *stem, const char *ext, const char *text) {
  static char path[4][PATH_MAX];
  static int next;
  char *p = path[next++ % 4];
  snprintf(p, PATH_MAX, "%s/test-%s-%d.%s", build_dir(), stem, (int)getpid(), ext);
  FILE *f = fopen(p, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
  return p;
}

// Every defined dynamic (or global) symbol that nm lists for a library must
// start with smelt_, and the API's entry points must be there.
static void expect_only_smelt_names(const char *nm_args, const char *lib) {
  char cmd[PATH_MAX + 128], *out;
  snprintf(cmd, sizeof cmd, "nm %s %s/%s", nm_args, build_dir(), lib);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  int smelt = 0;
  for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
    char *name = strrchr(line, ' ');
    if (!name || !strchr(line, ' ') || strchr(line, ':')) continue;   // "smeltrt.o:" headers
    name++;
    cr_expect(!strncmp(name, "smelt_", 6), "%s exports '%s'", lib, name);
    smelt += !strncmp(name, "smelt_", 6);
  }
  free(out);
  cr_expect_geq(smelt, 19, "%s: only %d smelt_ names", lib, smelt);
}

TEST(libapi, the_libraries_export_only_smelt_names) {
  expect_only_smelt_names("-D --defined-only", "libsmeltrt.so");
  expect_only_smelt_names("-g --defined-only", "libsmeltrt.a");
}

// A program with its own rt_fail, data_free and ingot_entry (names the
// runtime uses inside) links against either library and still reads the
// library's own error message.
static const char *hijacker =
    "#include <stdio.h>\n"
    "#include \"smelt.h\"\n"
    "int rt_fail(int status, const char *fmt, ...) { (void)fmt; puts(\"hijacked\"); return status; }\n"
    "void data_free(void *d) { (void)d; puts(\"hijacked\"); }\n"
    "const void *ingot_entry(const void *ig, const char *n) { (void)ig; (void)n; return 0; }\n"
    "int main(void) {\n"
    "  smelt_ingot *ig;\n"
    "  if (smelt_ingot_open(\"no/such.ingot\", &ig) == SMELT_OK) return 2;\n"
    "  printf(\"error: %s\\n\", smelt_last_error());\n"
    "  return 0;\n"
    "}\n";

static void run_hijacker(const char *src, const char *link, const char *tag) {
  char exe[PATH_MAX], cmd[5 * PATH_MAX], *out;
  snprintf(exe, sizeof exe, "%s/test-hijack-%s-%d", build_dir(), tag, (int)getpid());
  snprintf(cmd, sizeof cmd, "cc -std=c11 %s -Iruntime %s -o %s %s -lm -ldl -lpthread", SAN_FLAGS, src, exe, link);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s", exe);
  cr_expect_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect(strstr(out, "error: cannot open 'no/such.ingot'") != NULL, "%s: %s", tag, out);
  cr_expect(strstr(out, "hijacked") == NULL, "%s: %s", tag, out);
  free(out);
  unlink(exe);
}

TEST(libapi, a_program_defining_internal_names_keeps_the_library_errors) {
  const char *src = write_temp("hijack", "c", hijacker);
  char link[2 * PATH_MAX];
  snprintf(link, sizeof link, "-L%s -Wl,-rpath,%s -lsmeltrt", build_dir(), build_dir());
  run_hijacker(src, link, "shared");
  snprintf(link, sizeof link, "%s/libsmeltrt.a", build_dir());
  run_hijacker(src, link, "static");
  unlink(src);
}

// The version has one home (smelt.h): the function, the macros and the
// shared library's file name and SONAME agree.
TEST(libapi, the_shared_library_is_versioned) {
  char want[64], cmd[PATH_MAX + 128], *out;
  snprintf(want, sizeof want, "%d.%d.%d", SMELT_VERSION_MAJOR, SMELT_VERSION_MINOR, SMELT_VERSION_PATCH);
  cr_expect_str_eq(smelt_version(), want);
  cr_expect_str_eq(SMELT_VERSION_STRING, want);
  snprintf(cmd, sizeof cmd, "readelf -d %s/libsmeltrt.so", build_dir());
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  char soname[64];
  snprintf(soname, sizeof soname, "Library soname: [libsmeltrt.so.%d]", SMELT_VERSION_MAJOR);
  cr_expect(strstr(out, soname) != NULL, "%s", out);
  free(out);
  const char *links[] = {"libsmeltrt.so", "libsmeltrt.so.0"};
  for (int i = 0; i < 2; i++) {
    char path[PATH_MAX], target[256];
    snprintf(path, sizeof path, "%s/%s", build_dir(), links[i]);
    ssize_t n = readlink(path, target, sizeof target - 1);
    cr_assert_gt(n, 0, "%s is not a link", path);
    target[n] = '\0';
    char real[128];
    snprintf(real, sizeof real, "libsmeltrt.so.%s", want);
    cr_expect_str_eq(target, real, "%s -> %s", links[i], target);
  }
}

// Each key's value is its own string, owned by the ingot: two read in one
// expression differ, and both stay as they were.
TEST(libapi, meta_values_are_the_ingots_own_strings) {
  const char *path = build_mlp();
  smelt_ingot *ig;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  char both[256];
  snprintf(both, sizeof both, "%s|%s", smelt_ingot_meta(ig, "model"), smelt_ingot_meta(ig, "compiler"));
  cr_expect_str_eq(both, "mlp|smelt " SMELT_VERSION_STRING);
  const char *model = smelt_ingot_meta(ig, "model");
  cr_expect_null(smelt_ingot_meta(ig, "no.such.key"));
  cr_expect_str_eq(smelt_ingot_meta(ig, "compiler"), "smelt " SMELT_VERSION_STRING);
  cr_expect_str_eq(model, "mlp");
  smelt_ingot_close(ig);
  unlink(path);
}

static void expect_info(const smelt_ingot *ig, const char *entry, smelt_role role, size_t i, const char *name,
                        smelt_dtype dtype, int ndim, const int64_t *dims) {
  smelt_tensor_info t;
  cr_assert_eq(smelt_ingot_tensor_info(ig, entry, role, i, &t), SMELT_OK, "%s", smelt_last_error());
  cr_expect_str_eq(t.name, name);
  cr_expect_eq(t.dtype, dtype, "%s: %s", name, smelt_dtype_name(t.dtype));
  cr_assert_eq(t.ndim, ndim, "%s", name);
  size_t numel = 1;
  for (int d = 0; d < ndim; d++) {
    cr_expect_eq(t.dims[d], dims[d], "%s dim %d", name, d);
    numel *= (size_t)dims[d];
  }
  cr_expect_eq(t.bytes, numel * 4, "%s", name);
}

// The MLP's eval entry, every entry's names, and the parameters, as an
// ingot lists them.
TEST(libapi, an_ingot_lists_its_entries_tensors_and_parameters) {
  const char *path = build_mlp();
  smelt_ingot *ig;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  char names[128] = "";
  for (size_t i = 0; i < smelt_ingot_entry_count(ig); i++)
    snprintf(names + strlen(names), sizeof names - strlen(names), "%s ", smelt_ingot_entry_name(ig, i));
  cr_expect_str_eq(names, "train_step eval infer ");   // the order the compiler wrote them
  cr_expect_null(smelt_ingot_entry_name(ig, smelt_ingot_entry_count(ig)));
  cr_expect_eq(smelt_ingot_tensor_count(ig, "eval", SMELT_INPUT), 2);
  expect_info(ig, "eval", SMELT_INPUT, 0, "x", SMELT_F32, 2, (int64_t[]){4, 784});
  expect_info(ig, "eval", SMELT_INPUT, 1, "y", SMELT_I32, 1, (int64_t[]){4});
  cr_expect_eq(smelt_ingot_tensor_count(ig, "infer", SMELT_INPUT), 1);   // no labels
  cr_expect_eq(smelt_ingot_tensor_count(ig, "eval", SMELT_OUTPUT), 2);
  expect_info(ig, "eval", SMELT_OUTPUT, 0, "logits", SMELT_F32, 2, (int64_t[]){4, 10});
  expect_info(ig, "eval", SMELT_OUTPUT, 1, "loss", SMELT_F32, 0, NULL);
  cr_expect_eq(smelt_ingot_tensor_count(ig, NULL, SMELT_PARAM), 6);
  expect_info(ig, NULL, SMELT_PARAM, 0, "fc1.w", SMELT_F32, 2, (int64_t[]){784, 8});
  expect_info(ig, NULL, SMELT_PARAM, 5, "fc3.b", SMELT_F32, 1, (int64_t[]){10});
  cr_expect_gt(smelt_ingot_tensor_count(ig, NULL, SMELT_STATE), 0);   // AdamW's moments
  cr_expect_str_eq(smelt_dtype_name(SMELT_BF16), "bf16");
  cr_expect_null(smelt_dtype_name((smelt_dtype)99));
  smelt_tensor_info t;
  cr_expect_eq(smelt_ingot_tensor_count(ig, "nope", SMELT_INPUT), 0);
  cr_expect_eq(smelt_ingot_tensor_info(ig, "nope", SMELT_INPUT, 0, &t), SMELT_ERR_INVALID_ARGUMENT);
  cr_expect(strstr(smelt_last_error(), "no entry point 'nope'") != NULL, "%s", smelt_last_error());
  cr_expect_eq(smelt_ingot_tensor_info(ig, "eval", SMELT_INPUT, 2, &t), SMELT_ERR_INVALID_ARGUMENT);
  cr_expect(strstr(smelt_last_error(), "tensor 2 asked for, of 2") != NULL, "%s", smelt_last_error());
  cr_expect_eq(smelt_ingot_tensor_info(ig, NULL, SMELT_OUTPUT, 0, &t), SMELT_ERR_INVALID_ARGUMENT);
  cr_expect_eq(smelt_ingot_tensor_info(ig, NULL, (smelt_role)9, 0, &t), SMELT_ERR_INVALID_ARGUMENT);
  smelt_ingot_close(ig);
  unlink(path);
}

// A program that knows nothing of the model runs every entry from what the
// ingot lists: zero inputs of the listed sizes in, every output out.
TEST(libapi, every_entry_runs_from_what_the_ingot_lists) {
  const char *path = build_mlp();
  smelt_ingot *ig;
  smelt_session *s;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_session_new(ig, "cpu", 1, &s), SMELT_OK, "%s", smelt_last_error());
  for (size_t e = 0; e < smelt_ingot_entry_count(ig); e++) {
    const char *entry = smelt_ingot_entry_name(ig, e);
    smelt_tensor_info t;
    for (size_t i = 0; i < smelt_ingot_tensor_count(ig, entry, SMELT_INPUT); i++) {
      cr_assert_eq(smelt_ingot_tensor_info(ig, entry, SMELT_INPUT, i, &t), SMELT_OK);
      void *zeros = calloc(1, t.bytes);
      cr_expect_eq(smelt_set_input(s, entry, t.name, zeros, t.bytes), SMELT_OK, "%s", smelt_last_error());
      free(zeros);
    }
    cr_assert_eq(smelt_run(s, entry, 1, 0), SMELT_OK, "%s: %s", entry, smelt_last_error());
    size_t nout = smelt_ingot_tensor_count(ig, entry, SMELT_OUTPUT);
    cr_expect_gt(nout, 0, "%s", entry);
    for (size_t i = 0; i < nout; i++) {
      cr_assert_eq(smelt_ingot_tensor_info(ig, entry, SMELT_OUTPUT, i, &t), SMELT_OK);
      void *buf = malloc(t.bytes ? t.bytes : 1);
      cr_expect_eq(smelt_get_output(s, entry, t.name, buf, t.bytes), SMELT_OK, "%s", smelt_last_error());
      free(buf);
    }
  }
  for (size_t i = 0; i < smelt_ingot_tensor_count(ig, NULL, SMELT_PARAM); i++) {
    smelt_tensor_info t;
    cr_assert_eq(smelt_ingot_tensor_info(ig, NULL, SMELT_PARAM, i, &t), SMELT_OK);
    cr_expect_eq(smelt_tensor_bytes(s, t.name), t.bytes, "%s", t.name);
  }
  smelt_session_free(s);
  smelt_ingot_close(ig);
  unlink(path);
}

// Eval of batch x (a fixed pattern) on a fresh CPU session of ig.
static void eval_once(const smelt_ingot *ig, float *logits, float *loss) {
  smelt_session *s;
  cr_assert_eq(smelt_session_new(ig, "cpu", 1, &s), SMELT_OK, "%s", smelt_last_error());
  static float x[4 * 784];
  int32_t y[4] = {1, 2, 3, 4};
  for (int i = 0; i < 4 * 784; i++) x[i] = (float)(i % 97) / 97.0f;
  cr_assert_eq(smelt_set_input(s, "eval", "x", x, sizeof x), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_set_input(s, "eval", "y", y, sizeof y), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_run(s, "eval", 1, 0), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_get_output(s, "eval", "logits", logits, 40 * sizeof *logits), SMELT_OK);
  cr_assert_eq(smelt_get_output(s, "eval", "loss", loss, sizeof *loss), SMELT_OK);
  smelt_session_free(s);
}

// An ingot opened from its bytes in memory runs as the file does, bit for
// bit; a damaged copy is refused as the file would be.
TEST(libapi, an_ingot_opens_from_memory) {
  const char *path = build_mlp();
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  rewind(f);
  char *bytes = malloc((size_t)size);
  cr_assert_eq(fread(bytes, 1, (size_t)size, f), (size_t)size);
  fclose(f);
  smelt_ingot *from_file, *from_memory;
  cr_assert_eq(smelt_ingot_open(path, &from_file), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_ingot_open_memory(bytes, (size_t)size, &from_memory), SMELT_OK, "%s", smelt_last_error());
  cr_expect_str_eq(smelt_ingot_meta(from_memory, "model"), "mlp");
  float a[40], b[40], la, lb;
  eval_once(from_file, a, &la);
  memset(bytes, 0, (size_t)size);   // the ingot holds its own copy
  eval_once(from_memory, b, &lb);
  cr_expect(memcmp(a, b, sizeof a) == 0 && memcmp(&la, &lb, sizeof la) == 0, "loss %g from the file, %g from memory",
            la, lb);
  smelt_ingot *bad;
  cr_expect_eq(smelt_ingot_open_memory(bytes, (size_t)size, &bad), SMELT_ERR_FORMAT);
  cr_expect(strstr(smelt_last_error(), "'<memory>' is not an ingot") != NULL, "%s", smelt_last_error());
  cr_expect_null(bad);
  cr_expect_eq(smelt_ingot_open_memory(NULL, 10, &bad), SMELT_ERR_INVALID_ARGUMENT);
  free(bytes);
  smelt_ingot_close(from_file);
  smelt_ingot_close(from_memory);
  unlink(path);
}

// ---- smelt build --emit-c: the ingot linked into a program

// A program that opens the ingot linked into it and prints infer's logits
// for the input pattern of infer_logits, as exact hex floats.
static const char *embedded_runner =
    "#include <stdio.h>\n"
    "#include \"smelt.h\"\n"
    "extern const unsigned char mlp_model[];\n"
    "extern const size_t mlp_model_size;\n"
    "int main(void) {\n"
    "  static float x[4 * 784], logits[40];\n"
    "  for (int i = 0; i < 4 * 784; i++) x[i] = (float)(i % 89) / 89.0f - 0.5f;\n"
    "  smelt_ingot *ig;\n"
    "  smelt_session *s;\n"
    "  if (((unsigned long)mlp_model) % 64) return 3;\n"
    "  if (smelt_ingot_open_memory(mlp_model, mlp_model_size, &ig) != SMELT_OK ||\n"
    "      smelt_session_new(ig, \"cpu\", 1, &s) != SMELT_OK ||\n"
    "      smelt_set_input(s, \"infer\", \"x\", x, sizeof x) != SMELT_OK || smelt_run(s, \"infer\", 1, 0) != SMELT_OK ||\n"
    "      smelt_get_output(s, \"infer\", \"logits\", logits, sizeof logits) != SMELT_OK) {\n"
    "    printf(\"error: %s\\n\", smelt_last_error());\n"
    "    return 1;\n"
    "  }\n"
    "  for (int i = 0; i < 40; i++) printf(\"%a\\n\", logits[i]);\n"
    "  smelt_session_free(s);\n"
    "  smelt_ingot_close(ig);\n"
    "  return 0;\n"
    "}\n";

// infer's logits from the ingot file at path, as embedded_runner prints them.
static void infer_logits(const char *path, char *text, size_t n) {
  static float x[4 * 784];
  float logits[40];
  for (int i = 0; i < 4 * 784; i++) x[i] = (float)(i % 89) / 89.0f - 0.5f;
  smelt_ingot *ig;
  smelt_session *s;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_session_new(ig, "cpu", 1, &s), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_set_input(s, "infer", "x", x, sizeof x), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_run(s, "infer", 1, 0), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_get_output(s, "infer", "logits", logits, sizeof logits), SMELT_OK);
  size_t k = 0;
  for (int i = 0; i < 40; i++) k += (size_t)snprintf(text + k, n - k, "%a\n", logits[i]);
  smelt_session_free(s);
  smelt_ingot_close(ig);
}

// `smelt build --emit-c` writes C that a program compiles in; opened with
// smelt_ingot_open_memory it infers what the ingot file infers, bit for bit.
TEST(libapi, an_ingot_emitted_as_c_runs_linked_into_a_program) {
  char c_file[PATH_MAX], ingot[PATH_MAX], exe[PATH_MAX], cmd[6 * PATH_MAX], *out;
  snprintf(c_file, sizeof c_file, "%s/test-emit-%d.c", build_dir(), (int)getpid());
  snprintf(ingot, sizeof ingot, "%s/test-emit-%d.ingot", build_dir(), (int)getpid());
  snprintf(exe, sizeof exe, "%s/test-emit-%d", build_dir(), (int)getpid());
  const char *sizes = "examples/mlp.smelt -D B=4 -D H=8 --entry=infer";
  snprintf(cmd, sizeof cmd, "%s build %s --emit-c mlp_model -o %s", smelt_path(), sizes, c_file);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect(strstr(out, "mlp_model[] in ") != NULL, "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s build %s -o %s", smelt_path(), sizes, ingot);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  const char *main_c = write_temp("emit-main", "c", embedded_runner);
  snprintf(cmd, sizeof cmd, "cc -std=c11 -Wall -Wextra -Werror %s -Iruntime -o %s %s %s -L%s -Wl,-rpath,%s -lsmeltrt",
           SAN_FLAGS, exe, main_c, c_file, build_dir(), build_dir());
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  cr_assert_eq(run_cmd(exe, &out), 0, "%s", out);
  char want[40 * 32];
  infer_logits(ingot, want, sizeof want);
  cr_expect_str_eq(out, want);
  free(out);
  unlink(exe);
  unlink(main_c);
  unlink(c_file);
  unlink(ingot);
}

TEST(libapi, emit_c_takes_a_c_identifier) {
  const char *bad[] = {"9lives", "my-model", "int", ""};
  for (int i = 0; i < 4; i++) {
    char cmd[PATH_MAX + 256], *out;
    snprintf(cmd, sizeof cmd, "%s build examples/mlp.smelt --emit-c '%s' -o /nonexistent/x.c", smelt_path(), bad[i]);
    cr_expect_eq(run_cmd(cmd, &out), 2, "%s: %s", bad[i], out);
    cr_expect(strstr(out, "--emit-c takes a C identifier") != NULL, "%s: %s", bad[i], out);
    cr_expect(strstr(out, "not a keyword") != NULL, "%s", out);
    free(out);
  }
}

// ---- the usage example of smelt.h is a program that compiles and runs

// The example program in smelt.h's leading comment: from "//   #include",
// the lines indented by three spaces or more and the empty "//" lines among
// them, less their "//   ", up to the comment's next line of prose.
static char *header_example(void) {
  char *h = slurp("runtime/smelt.h");
  cr_assert_not_null(h);
  char *from = strstr(h, "\n//   #include");
  cr_assert_not_null(from, "runtime/smelt.h: no example program in its leading comment");
  char *src = calloc(1, strlen(from) + 1), *o = src;
  for (char *p = from + 1; !strncmp(p, "//   ", 5) || !strncmp(p, "//\n", 3);) {
    char *nl = strchr(p, '\n');
    p += p[2] == '\n' ? 2 : 5;
    memcpy(o, p, (size_t)(nl + 1 - p));
    o += nl + 1 - p;
    p = nl + 1;
  }
  free(h);
  cr_assert(strstr(src, "int main(void)") && strstr(src, "smelt_ingot_close(ig);"), "the example:\n%s", src);
  return src;
}

// The loss of one train_step on zero inputs, as the example prints it.
static void example_loss(const char *ingot, char *text, size_t n) {
  static float images[128 * 784];
  static int32_t labels[128];
  smelt_ingot *ig;
  smelt_session *s;
  cr_assert_eq(smelt_ingot_open(ingot, &ig), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_session_new(ig, "auto", 0, &s), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_set_input(s, "train_step", "x", images, sizeof images), SMELT_OK);
  cr_assert_eq(smelt_set_input(s, "train_step", "y", labels, sizeof labels), SMELT_OK);
  cr_assert_eq(smelt_run(s, "train_step", 1, 0), SMELT_OK, "%s", smelt_last_error());
  float loss;
  cr_assert_eq(smelt_get_output(s, "train_step", "loss", &loss, sizeof loss), SMELT_OK);
  snprintf(text, n, "loss %.9g\n", loss);
  smelt_session_free(s);
  smelt_ingot_close(ig);
}

// Compiles the example with compiler (a C or a C++ command line), links it
// against libsmeltrt.so and runs it in dir, beside mlp.ingot.
static void run_example(const char *compiler, const char *src, const char *dir, const char *want) {
  char exe[PATH_MAX], cmd[5 * PATH_MAX], *out;
  snprintf(exe, sizeof exe, "%s/example", dir);
  snprintf(cmd, sizeof cmd, "%s -Wall -Wextra -Werror %s -Iruntime %s -o %s -L%s -Wl,-rpath,%s -lsmeltrt",
           compiler, SAN_FLAGS, src, exe, build_dir(), build_dir());
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s:\n%s", compiler, out);
  free(out);
  snprintf(cmd, sizeof cmd, "cd %s && rm -f mlp.ckpt && ./example", dir);
  cr_expect_eq(run_cmd(cmd, &out), 0, "%s: %s", compiler, out);
  cr_expect_str_eq(out, want, "%s", compiler);
  free(out);
  char ckpt[PATH_MAX];
  snprintf(ckpt, sizeof ckpt, "%s/mlp.ckpt", dir);
  cr_expect_eq(access(ckpt, F_OK), 0, "%s: the example saved no checkpoint", compiler);
  unlink(exe);
}

TEST(libapi, the_header_example_compiles_as_c_and_cpp_and_runs) {
  char dir[PATH_MAX], ingot[PATH_MAX + 16];
  snprintf(dir, sizeof dir, "%s/test-example-%d", build_dir(), (int)getpid());
  cr_assert_eq(mkdir(dir, 0700), 0);
  snprintf(ingot, sizeof ingot, "%s/mlp.ingot", dir);
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_file(&c, "examples/mlp.smelt");
  cr_assert_eq(check_modules(&c, &m, 1, NULL, 0), 0);
  const Define sizes[] = {{"B", 128}, {"H", 8}};
  cr_assert_eq(ingot_build(&c, m, sizes, 2, &(BuildTargets){.fusion = FUSION_ALL}, ingot), 0);
  compilation_free(&c);
  char want[64];
  example_loss(ingot, want, sizeof want);
  char *text = header_example();
  const char *src = write_temp("example", "c", text);
  free(text);
  run_example("cc -x c -std=c11", src, dir, want);
  int cxx = 0;
  if (run_cmd("which g++ >/dev/null", NULL) == 0) run_example("g++ -x c++ -std=c++17", src, dir, want), cxx++;
  // a sanitizer build's library carries gcc's ASan runtime, which clang's cannot link with
  if (!SANITIZED && run_cmd("which clang++-22 >/dev/null", NULL) == 0)
    run_example("clang++-22 -x c++ -std=c++17", src, dir, want), cxx++;
  cr_expect_gt(cxx, 0, "no C++ compiler (g++ or clang++-22) to compile smelt.h's example with");
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  run_cmd(cmd, NULL);
  unlink(src);
}

// Writes the mlp's six parameters to path: fc3.b as b_count elements of
// b_dtype from b_values, the others as f32 zeros.
static void write_weights(const smelt_ingot *ig, const char *path, uint32_t b_dtype, int64_t b_count,
                          const void *b_values) {
  const char *names[6];
  uint32_t dtypes[6];
  Shape shapes[6];
  for (int i = 0; i < 6; i++) {
    smelt_tensor_info t;
    cr_assert_eq(smelt_ingot_tensor_info(ig, NULL, SMELT_PARAM, (size_t)i, &t), SMELT_OK);
    names[i] = t.name;
    dtypes[i] = DT_F32;
    shapes[i] = shape_of(t.ndim, t.dims);
  }
  cr_assert_str_eq(names[5], "fc3.b");
  dtypes[5] = b_dtype;
  shapes[5] = shape_of(1, &b_count);
  char err[256];
  TensorWriter *w = tensor_writer_open(path, 6, names, dtypes, shapes, err, sizeof err);
  cr_assert_not_null(w, "%s", err);
  for (int i = 0; i < 5; i++) {
    size_t bytes = (size_t)shape_numel(&shapes[i]) * 4;
    void *zeros = calloc(1, bytes);
    cr_assert(tensor_writer_bytes(w, zeros, bytes));
    free(zeros);
  }
  cr_assert(tensor_writer_bytes(w, b_values, (uint64_t)b_count * (uint64_t)dtype_size(b_dtype)));
  cr_assert_eq(tensor_writer_close(w, true, err, sizeof err), 0, "%s", err);
}

// Every tensor read into another dtype follows one rule (the same as smelt
// run's inputs): it loads when each value converts exactly, and is refused
// naming the element otherwise; another shape is refused naming both.
TEST(libapi, weights_of_another_dtype_convert_only_exactly) {
  const char *path = build_mlp();
  smelt_ingot *ig;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  smelt_session *s;
  cr_assert_eq(smelt_session_new(ig, "cpu", 1, &s), SMELT_OK, "%s", smelt_last_error());
  char file[64];
  snprintf(file, sizeof file, "build/test-libapi-%d.tensors", (int)getpid());
  int32_t small[10] = {0, -1, 2, -3, 4, 16777216, 6, 7, 8, 9};
  write_weights(ig, file, DT_I32, 10, small);
  cr_assert_eq(smelt_load_weights(s, file), SMELT_OK, "%s", smelt_last_error());
  float b[10];
  cr_assert_eq(smelt_get_tensor(s, "fc3.b", b, sizeof b), SMELT_OK);
  for (int i = 0; i < 10; i++) cr_expect_eq(b[i], (float)small[i], "fc3.b[%d] = %g", i, b[i]);
  int32_t unrounded[10] = {0, 0, 0, 16777217};   // 2^24 + 1: no f32
  write_weights(ig, file, DT_I32, 10, unrounded);
  cr_expect_eq(smelt_load_weights(s, file), SMELT_ERR_FORMAT);
  cr_expect(strstr(smelt_last_error(), "holds 'fc3.b' as i32, and its element 3 is 1.67772e+07, which the model's "
                                       "f32 does not hold exactly"), "%s", smelt_last_error());
  int64_t beyond[10] = {0, 0, ((int64_t)1 << 53) + 1};   // rounds in the double on the way, too
  write_weights(ig, file, DT_I64, 10, beyond);
  cr_expect_eq(smelt_load_weights(s, file), SMELT_ERR_FORMAT);
  cr_expect(strstr(smelt_last_error(), "its element 2 is 9.0072e+15, which the model's f32 does not hold exactly"),
            "%s", smelt_last_error());
  float eleven[11] = {0};
  write_weights(ig, file, DT_F32, 11, eleven);
  cr_expect_eq(smelt_load_weights(s, file), SMELT_ERR_FORMAT);
  cr_expect(strstr(smelt_last_error(), "holds 'fc3.b' as f32[11], where the model's is f32[10]"), "%s",
            smelt_last_error());
  cr_assert_eq(smelt_get_tensor(s, "fc3.b", b, sizeof b), SMELT_OK);   // a refused file changes nothing
  cr_expect_eq(b[5], 16777216.0f);
  smelt_session_free(s);
  smelt_ingot_close(ig);
  unlink(file);
  unlink(path);
}
