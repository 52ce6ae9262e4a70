// test_runtime.c: ingots through the runtime on the CPU device.
//
// An ingot built from the MLP example runs its entry points through the public
// API and must agree with the reference interpreter; training N steps, saving,
// loading into a fresh session and training M more must give the same bytes
// as N + M steps in one go; damaged or foreign files must be refused.
#include <criterion/criterion.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingot.h"
#include "runtime.h"
#include "sha256.h"
#include "smelt.h"
#include "support.h"

static const Define mlp_sizes[] = {{"B", 4}, {"H", 8}};

// Builds examples/mlp.smelt at tiny sizes into path.
static void build_mlp_fused(const char *path, FusionMode mode) {
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_file(&c, "examples/mlp.smelt");
  cr_assert_eq(check_modules(&c, &m, 1, NULL, 0), 0);
  cr_assert_eq(ingot_build(&c, m, mlp_sizes, 2, &(BuildTargets){.fusion = mode}, path), 0);
  compilation_free(&c);
}

static void build_mlp(const char *path) { build_mlp_fused(path, FUSION_ALL); }

static const char *ingot_path(void) {
  static char path[64];
  snprintf(path, sizeof path, "build/test-mlp-%d.ingot", (int)getpid());
  return path;
}

static void fill_batch(float *x, int32_t *y, int step) {
  for (int i = 0; i < 4 * 784; i++) x[i] = (float)((i * 7919 + step * 104729) % 1000) / 1000.0f;
  for (int i = 0; i < 4; i++) y[i] = (i * 3 + step) % 10;
}

// Steps from..to; batch k of the step (or batch 0 every time when same).
static void train_on(smelt_session *s, int from, int to, bool same) {
  float x[4 * 784];
  int32_t y[4];
  for (int step = from; step < to; step++) {
    fill_batch(x, y, same ? 0 : step);
    cr_assert_eq(smelt_set_input(s, "train_step", "x", x, sizeof x), SMELT_OK, "%s", smelt_last_error());
    cr_assert_eq(smelt_set_input(s, "train_step", "y", y, sizeof y), SMELT_OK, "%s", smelt_last_error());
    cr_assert_eq(smelt_run(s, "train_step", 1, (uint64_t)step), SMELT_OK, "%s", smelt_last_error());
  }
}

static void train(smelt_session *s, int from, int to) { train_on(s, from, to, false); }

TEST(runtime, eval_matches_the_interpreter) {
  const char *path = ingot_path();
  build_mlp(path);
  smelt_ingot *ig;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  cr_expect_str_eq(smelt_ingot_meta(ig, "model"), "mlp");
  smelt_session *s;
  cr_assert_eq(smelt_session_new(ig, "auto", 2, &s), SMELT_OK, "%s", smelt_last_error());
  cr_expect_str_eq(smelt_session_device(s), "cpu");
  float x[4 * 784], loss, logits[40];
  int32_t y[4];
  fill_batch(x, y, 0);
  cr_assert_eq(smelt_set_input(s, "eval", "x", x, sizeof x), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_set_input(s, "eval", "y", y, sizeof y), SMELT_OK);
  cr_assert_eq(smelt_run(s, "eval", 1, 0), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_get_output(s, "eval", "loss", &loss, sizeof loss), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_get_output(s, "eval", "logits", logits, sizeof logits), SMELT_OK);
  // the interpreter on the same graph, weights and inputs
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_file(&c, "examples/mlp.smelt");
  cr_assert_eq(check_modules(&c, &m, 1, NULL, 0), 0);
  Graph g;
  graph_init(&g, &c.arena, &c.diag);
  cr_assert_eq(elaborate(&c, m, mlp_sizes, 2, false, &g), 0);
  double **leaves = calloc((size_t)g.n, sizeof *leaves);
  for (int i = 0; i < g.n; i++) {
    Node *n = g.nodes[i];
    int64_t cnt = shape_numel(&n->shape);
    if (n->op == OP_PARAM) {
      leaves[i] = malloc(sizeof(double) * (size_t)cnt);
      init_fill(n, 1, leaves[i]);
    } else if (n->op == OP_INPUT) {
      leaves[i] = malloc(sizeof(double) * (size_t)cnt);
      for (int64_t j = 0; j < cnt; j++) leaves[i][j] = !strcmp(n->name, "x") ? x[j] : y[j];
    }
  }
  InterpResult r;
  char err[128];
  cr_assert_eq(interp_run(&g, leaves, 1, 0, &r, err, sizeof err), 0);
  cr_expect_float_eq(loss, r.vals[g.loss->id][0], 1e-5, "loss %g, interpreter %g", loss, r.vals[g.loss->id][0]);
  for (int i = 0; i < 40; i++) cr_expect_float_eq(logits[i], r.vals[g.outputs[0].node->id][i], 1e-4);
  interp_free(&r);
  for (int i = 0; i < g.n; i++) free(leaves[i]);
  free(leaves);
  graph_free(&g);
  compilation_free(&c);
  smelt_session_free(s);
  smelt_ingot_close(ig);
  unlink(path);
}

// Two ingots open in one process, each with its own host code (the kernels
// of both share names), and fusion changes no bits: training steps with
// fusion off and on give the same parameters.
TEST(runtime, two_ingots_in_one_process_and_fusion_gives_the_same_bits) {
  char path[2][64];
  smelt_ingot *ig[2];
  smelt_session *s[2];
  for (int k = 0; k < 2; k++) {
    snprintf(path[k], sizeof path[k], "build/test-mlp-%d-%d.ingot", (int)getpid(), k);
    build_mlp_fused(path[k], k ? FUSION_NONE : FUSION_ALL);
    cr_assert_eq(smelt_ingot_open(path[k], &ig[k]), SMELT_OK, "%s", smelt_last_error());
    cr_assert_eq(smelt_session_new(ig[k], "cpu", 2, &s[k]), SMELT_OK, "%s", smelt_last_error());
  }
  for (int k = 0; k < 2; k++) train(s[k], 0, 3);
  size_t bytes = smelt_tensor_bytes(s[0], "fc1.w");
  cr_assert_gt(bytes, 0);
  char *w[2] = {malloc(bytes), malloc(bytes)};
  for (int k = 0; k < 2; k++) cr_assert_eq(smelt_get_tensor(s[k], "fc1.w", w[k], bytes), SMELT_OK, "%s", smelt_last_error());
  cr_expect_eq(memcmp(w[0], w[1], bytes), 0, "fc1.w differs after three steps with fusion on and off");
  for (int k = 0; k < 2; k++) {
    free(w[k]);
    smelt_session_free(s[k]);
    smelt_ingot_close(ig[k]);
    unlink(path[k]);
  }
}

TEST(runtime, training_lowers_the_loss_and_resume_is_bit_identical) {
  const char *path = ingot_path();
  build_mlp(path);
  smelt_ingot *ig;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  smelt_session *a, *b;
  cr_assert_eq(smelt_session_new(ig, "cpu", 2, &a), SMELT_OK);
  float before, after;
  float x[4 * 784];
  int32_t y[4];
  fill_batch(x, y, 0);
  smelt_set_input(a, "eval", "x", x, sizeof x);
  smelt_set_input(a, "eval", "y", y, sizeof y);
  smelt_run(a, "eval", 1, 0);
  smelt_get_output(a, "eval", "loss", &before, sizeof before);
  // the schedule warms up over 100 steps; a run with total_steps unset keeps the
  // cosine at its start, so the rate climbs linearly: 150 steps on one batch
  uint64_t zero = 0;
  cr_assert_eq(smelt_set_tensor(a, "total_steps", &zero, 0) , SMELT_ERR_INVALID_ARGUMENT);
  train_on(a, 0, 150, true);
  smelt_run(a, "eval", 1, 0);
  smelt_get_output(a, "eval", "loss", &after, sizeof after);
  cr_expect_lt(after, before * 0.5, "loss %g after 150 steps on one batch, %g before", after, before);
  smelt_session_free(a);
  cr_assert_eq(smelt_session_new(ig, "cpu", 2, &a), SMELT_OK);
  train(a, 0, 20);
  // 12 steps, save, fresh session, load, 8 more == the 20 of session a; in
  // smelt's tensor files and in safetensors
  for (int format = 0; format < 2; format++) {
    char ckpt[64];
    snprintf(ckpt, sizeof ckpt, "build/test-mlp-%d.%s", (int)getpid(), format ? "safetensors" : "ckpt");
    cr_assert_eq(smelt_session_new(ig, "cpu", 1, &b), SMELT_OK);
    train(b, 0, 12);
    cr_assert_eq(smelt_save(b, ckpt), SMELT_OK, "%s", smelt_last_error());
    smelt_session_free(b);
    cr_assert_eq(smelt_session_new(ig, "cpu", 2, &b), SMELT_OK);
    cr_assert_eq(smelt_load(b, ckpt), SMELT_OK, "%s", smelt_last_error());
    train(b, 12, 20);
    const char *names[] = {"fc1.w", "fc1.b", "fc2.w", "fc3.w", "fc3.b", "fc1.w.m", "fc3.b.v", "step"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
      size_t n = smelt_tensor_bytes(a, names[i]);
      cr_assert_gt(n, 0, "%s", names[i]);
      char *pa = malloc(n), *pb = malloc(n);
      smelt_get_tensor(a, names[i], pa, n);
      smelt_get_tensor(b, names[i], pb, n);
      cr_expect(memcmp(pa, pb, n) == 0, "%s differs after resuming from %s", names[i], ckpt);
      free(pa);
      free(pb);
    }
    unlink(ckpt);
    smelt_session_free(b);
  }
  smelt_session_free(a);
  smelt_ingot_close(ig);
  unlink(path);
}

// Copies the ingot at src to dst with a change made by edit.
static void damaged_copy(const char *src, const char *dst, void (*edit)(char *data, size_t *len)) {
  size_t len;
  char *data = file_read(src, &len);
  cr_assert_not_null(data);
  edit(data, &len);
  FILE *f = fopen(dst, "wb");
  fwrite(data, 1, len, f);
  fclose(f);
  free(data);
}

static void truncate_half(char *d, size_t *len) { (void)d; *len /= 2; }
static void flip_a_byte(char *d, size_t *len) { d[*len - 100] ^= 0x40; }
static void wrong_version(char *d, size_t *len) { (void)len; d[8] = 99; }
static void foreign(char *d, size_t *len) { (void)len; memcpy(d, "\177ELF\2\1\1\0", 8); }

// Section kind of an ingot in memory (its bytes; *size set), or NULL.
static char *section_of(char *d, uint32_t kind, uint64_t *size) {
  const IngotHeader *h = (const IngotHeader *)d;
  IngotSection *table = (IngotSection *)(d + sizeof *h);
  *size = 0;
  for (uint32_t i = 0; i < h->nsections; i++)
    if (table[i].kind == kind) return *size = table[i].size, d + table[i].offset;
  cr_assert_fail("the ingot has no section %u", kind);
  return NULL;
}

// Checksums every section and the section table again, after an edit.
static void reseal(char *d) {
  IngotHeader *h = (IngotHeader *)d;
  IngotSection *table = (IngotSection *)(d + sizeof *h);
  for (uint32_t i = 0; i < h->nsections; i++) table[i].crc = smelt_crc32(d + table[i].offset, table[i].size);
  h->header_crc = smelt_crc32(table, sizeof *table * h->nsections);
}

// The index of the tensor named name, or -1.
static int tensor_named(char *d, const char *name) {
  uint64_t nt, ns;
  IngotTensor *t = (IngotTensor *)section_of(d, SEC_TENSORS, &nt);
  const char *strings = section_of(d, SEC_STRINGS, &ns);
  for (uint64_t i = 0; i < nt / sizeof *t; i++)
    if (!strcmp(strings + t[i].name, name)) return (int)i;
  return -1;
}

// eval's input x renamed infer/x: a name of one entry on a tensor of another's arena.
static void io_of_another_entry(char *d, size_t *len) {
  (void)len;
  uint64_t n;
  IngotTensor *t = (IngotTensor *)section_of(d, SEC_TENSORS, &n);
  int ex = tensor_named(d, "eval/x"), ix = tensor_named(d, "infer/x");
  cr_assert(ex >= 0 && ix >= 0);
  t[ex].name = t[ix].name;
  reseal(d);
}

// infer's slot of x given eval's x: one arena tensor in two entries.
static void slot_of_another_entry(char *d, size_t *len) {
  (void)len;
  uint64_t n;
  uint32_t *slots = (uint32_t *)section_of(d, SEC_SLOTS, &n);
  int ex = tensor_named(d, "eval/x"), ix = tensor_named(d, "infer/x");
  cr_assert(ex >= 0 && ix >= 0);
  for (uint64_t i = 0; i < n / 4; i++)
    if (slots[i] == (uint32_t)ix) slots[i] = (uint32_t)ex;
  reseal(d);
}

// The entry record named name.
static IngotEntry *entry_named(char *d, const char *name) {
  uint64_t ne, ns;
  IngotEntry *e = (IngotEntry *)section_of(d, SEC_ENTRIES, &ne);
  const char *strings = section_of(d, SEC_STRINGS, &ns);
  for (uint64_t i = 0; i < ne / sizeof *e; i++)
    if (!strcmp(strings + e[i].name, name)) return &e[i];
  cr_assert_fail("the ingot has no entry '%s'", name);
  return NULL;
}

// Bit 62 set in a launch count: count * element size wraps around to a small number.
static void launch_count_bit_62(char *d, size_t *len) {
  (void)len;
  uint64_t n;
  IngotLaunch *l = (IngotLaunch *)section_of(d, SEC_LAUNCHES, &n);
  l[0].count |= UINT64_C(1) << 62;
  reseal(d);
}

// infer's output y named like a parameter: no "ENTRY/" before it.
static void output_without_entry(char *d, size_t *len) {
  (void)len;
  uint64_t n;
  IngotTensor *t = (IngotTensor *)section_of(d, SEC_TENSORS, &n);
  int y = tensor_named(d, "infer/logits"), w = tensor_named(d, "fc1.w");
  cr_assert(y >= 0 && w >= 0);
  t[y].name = t[w].name;
  reseal(d);
}

// eval's input x takes infer's x's name too: two tensors one name.
static void two_tensors_one_name(char *d, size_t *len) {
  (void)len;
  uint64_t n;
  IngotTensor *t = (IngotTensor *)section_of(d, SEC_TENSORS, &n);
  int a = tensor_named(d, "fc1.w"), b = tensor_named(d, "fc1.b");
  cr_assert(a >= 0 && b >= 0);
  t[b].name = t[a].name;
  reseal(d);
}

// infer with its last slot cut off: a kernel would find no buffer there.
static void fewer_slots(char *d, size_t *len) {
  (void)len;
  entry_named(d, "infer")->nslots -= 1;
  reseal(d);
}

// One bit flipped high in an arena's size: 16 GiB more than its tensors need.
static void arena_bit_34(char *d, size_t *len) {
  (void)len;
  entry_named(d, "train_step")->arena_bytes |= UINT64_C(1) << 34;
  reseal(d);
}

// A batch of 0: train_step's input x with its first dimension and size at 0,
// consistent with each other, so only what the kernels read can refuse it.
static void zero_batch(char *d, size_t *len) {
  (void)len;
  uint64_t n;
  IngotTensor *t = (IngotTensor *)section_of(d, SEC_TENSORS, &n);
  int x = tensor_named(d, "train_step/x");
  cr_assert(x >= 0);
  t[x].dims[0] = 0;
  t[x].bytes = 0;
  reseal(d);
}

// infer's slot of its output pointed at its input x, a smaller tensor than its kernel writes.
static void slot_at_smaller_tensor(char *d, size_t *len) {
  (void)len;
  uint64_t n;
  uint32_t *slots = (uint32_t *)section_of(d, SEC_SLOTS, &n);
  int y = tensor_named(d, "infer/logits"), x = tensor_named(d, "infer/%5");
  cr_assert(y >= 0 && x >= 0);
  uint32_t *slot_y = NULL, *slot_x = NULL;
  for (uint64_t i = 0; i < n / 4; i++) {
    if (slots[i] == (uint32_t)y) slot_y = &slots[i];
    if (slots[i] == (uint32_t)x) slot_x = &slots[i];
  }
  cr_assert(slot_y && slot_x);
  *slot_x = (uint32_t)y;   // the 128x256 temporary's slot now names the 128x10 output
  *slot_y = (uint32_t)x;
  reseal(d);
}

// A reserved header byte set (the header is not under any CRC).
static void header_reserved(char *d, size_t *len) {
  (void)len;
  ((IngotHeader *)d)->reserved[3] = 1;
}

// The first 100 bytes of an ingot, its header still saying the whole size.
static void first_100_bytes(char *d, size_t *len) {
  ((IngotHeader *)d)->file_size = UINT64_C(34) << 30;
  *len = 100;
}

// A version number older than this runtime's.
// A launch's buffer pointed past its entry's slots.
static void launch_buf_outside_entry(char *d, size_t *len) {
  (void)len;
  uint64_t n;
  uint32_t *b = (uint32_t *)section_of(d, SEC_LAUNCH_BUFS, &n);
  b[0] = 100000;
  reseal(d);
}

// The second launch's table starting where the first's does.
static void launch_bufs_overlap(char *d, size_t *len) {
  (void)len;
  uint64_t n;
  IngotLaunch *l = (IngotLaunch *)section_of(d, SEC_LAUNCHES, &n);
  l[1].first_buf = l[0].first_buf;
  reseal(d);
}

// Version 2, before launches had their own buffer tables.
static void version_2(char *d, size_t *len) {
  (void)len;
  ((IngotHeader *)d)->version = 2;
}

static void older_version(char *d, size_t *len) {
  (void)len;
  ((IngotHeader *)d)->version = 0;
}

TEST(runtime, damaged_and_foreign_ingots_are_refused) {
  const char *path = ingot_path();
  build_mlp(path);
  struct { void (*edit)(char *, size_t *); const char *says; } cases[] = {
      {truncate_half, "shorter than its header says"},
      {flip_a_byte, "fails its checksum"},
      {wrong_version, "format version 99"},
      {foreign, "not an ingot"},
      {io_of_another_entry, "a tensor's name is not its entry's"},
      {slot_of_another_entry, "a tensor lies in the slots of two entries"},
      {launch_count_bit_62, "a launch's range exceeds its output"},
      {output_without_entry, "a tensor's name is not its entry's"},
      {two_tensors_one_name, "two tensors have the same name"},
      {fewer_slots, "lies in no entry's slots"},
      {arena_bit_34, "arena is larger than its tensors need"},
      {slot_at_smaller_tensor, "another type or size than its kernels read"},
      {zero_batch, "another type or size than its kernels read"},
      {header_reserved, "reserved bytes must be zero"},
      {first_100_bytes, "shorter than its header says"},
      {older_version, "built by an older smelt"},
      {version_2, "format version 2, built by an older smelt"},
      {launch_buf_outside_entry, "a launch's buffer names no slot of its entry"},
      {launch_bufs_overlap, "a launch's buffer table lies outside LAUNCH_BUFS or out of order"},
  };
  char bad[64];
  snprintf(bad, sizeof bad, "build/test-bad-%d.ingot", (int)getpid());
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    damaged_copy(path, bad, cases[i].edit);
    smelt_ingot *ig = NULL;
    cr_expect_eq(smelt_ingot_open(bad, &ig), SMELT_ERR_FORMAT, "case %zu opened", i);
    cr_expect_null(ig);
    cr_expect(strstr(smelt_last_error(), cases[i].says) != NULL, "case %zu: %s", i, smelt_last_error());
  }
  unlink(bad);
  smelt_ingot *ig;
  cr_expect_eq(smelt_ingot_open("build/none.ingot", &ig), SMELT_ERR_IO);
  cr_expect(strstr(smelt_last_error(), "No such file") != NULL);
  unlink(path);
}

// Bytes the heap has handed out and not had back: glibc's count, or the
// sanitizer allocator's where one replaces it (ASan builds).
size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));
static size_t heap_in_use(void) {
  if (__sanitizer_get_current_allocated_bytes) return __sanitizer_get_current_allocated_bytes();
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

// A session holds the arenas of the entries it has used, not of all of them:
// an inference program never pays for the training step's temporaries.
TEST(runtime, a_session_allocates_an_entrys_arena_at_its_first_use) {
  const char *path = ingot_path();
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_file(&c, "examples/mlp.smelt");
  cr_assert_eq(check_modules(&c, &m, 1, NULL, 0), 0);
  cr_assert_eq(ingot_build(&c, m, (Define[]){{"B", 4096}, {"H", 16}}, 2, &(BuildTargets){.fusion = FUSION_ALL}, path), 0);
  compilation_free(&c);
  smelt_ingot *ig;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  uint64_t train = ingot_entry(ig, "train_step")->arena_bytes, infer = ingot_entry(ig, "infer")->arena_bytes,
           eval = ingot_entry(ig, "eval")->arena_bytes, persist = 0;
  for (uint32_t t = 0; t < ig->ntensors; t++)
    if (ig->tensors[t].role == ROLE_PARAM || ig->tensors[t].role == ROLE_STATE) persist += ig->tensors[t].bytes;
  cr_assert_gt(train, 4 * persist, "the model should be mostly arena (%llu, %llu)", (unsigned long long)train,
               (unsigned long long)persist);
  const uint64_t slack = 1 << 20;
  size_t probe_base = heap_in_use();
  char *probe = malloc(8 << 20);
  memset(probe, 1, 8 << 20);
  bool counted = heap_in_use() - probe_base >= (8 << 20);
  free(probe);
  if (!counted) cr_skip_test("this heap does not count what it hands out");
  size_t xb = 4096 * 784 * sizeof(float);
  float *x = calloc(1, xb);
  int32_t *y = calloc(4096, sizeof *y);
  size_t base = heap_in_use();
  smelt_session *s;
  cr_assert_eq(smelt_session_new(ig, "cpu", 1, &s), SMELT_OK, "%s", smelt_last_error());
  size_t fresh = heap_in_use() - base;
  cr_expect_lt(fresh, persist + slack, "a new session holds %zu bytes", fresh);
  cr_assert_eq(smelt_set_input(s, "infer", "x", x, xb), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_run(s, "infer", 1, 0), SMELT_OK, "%s", smelt_last_error());
  size_t used = heap_in_use() - base;
  cr_expect_geq(used, infer, "infer ran without its arena (%zu)", used);
  cr_expect_lt(used, persist + infer + slack, "infer's session holds %zu bytes", used);
  cr_assert_eq(smelt_set_input(s, "train_step", "x", x, xb), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_set_input(s, "train_step", "y", y, 4096 * sizeof *y), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_run(s, "train_step", 1, 0), SMELT_OK, "%s", smelt_last_error());
  used = heap_in_use() - base;
  cr_expect_geq(used, infer + train, "%zu", used);
  cr_expect_lt(used, persist + infer + train + slack, "eval's arena is held unused (%zu, eval %llu)", used,
               (unsigned long long)eval);
  free(x);
  free(y);
  smelt_session_free(s);
  smelt_ingot_close(ig);
  unlink(path);
}

// A FIFO as the ingot would block a plain open forever; /dev/zero never ends.
TEST(runtime, pipes_and_devices_as_ingots_are_refused, .timeout = 20) {
  char fifo[64];
  snprintf(fifo, sizeof fifo, "/tmp/smelt-fifo-%d.ingot", (int)getpid());
  unlink(fifo);
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  smelt_ingot *ig = NULL;
  cr_expect_eq(smelt_ingot_open(fifo, &ig), SMELT_ERR_IO);
  cr_expect(strstr(smelt_last_error(), "not a regular file") != NULL, "%s", smelt_last_error());
  unlink(fifo);
  cr_expect_eq(smelt_ingot_open("/dev/zero", &ig), SMELT_ERR_IO);
  cr_expect(strstr(smelt_last_error(), "not a regular file") != NULL, "%s", smelt_last_error());
  cr_expect_null(ig);
}

// CRC-32 by eight bytes at a time equals the byte-at-a-time definition at
// every length and alignment, and the check value of "123456789".
TEST(runtime, crc32_by_slices_matches_the_definition) {
  cr_expect_eq(smelt_crc32("123456789", 9), 0xCBF43926u);
  unsigned char buf[300];
  for (int i = 0; i < 300; i++) buf[i] = (unsigned char)(i * 167 + 13);
  for (int at = 0; at < 9; at++)
    for (int n = 0; at + n <= 300; n++) {
      uint32_t c = 0xFFFFFFFFu;
      for (int i = 0; i < n; i++) {
        c ^= buf[at + i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      }
      cr_assert_eq(smelt_crc32(buf + at, (uint64_t)n), c ^ 0xFFFFFFFFu, "at %d, %d bytes", at, n);
    }
  // and in pieces
  uint32_t whole = smelt_crc32(buf, 300), pieces = smelt_crc32_update(smelt_crc32(buf, 7), buf + 7, 293);
  cr_expect_eq(whole, pieces);
}

// FIPS 180-4's examples (and NIST's long message), whole and fed in pieces
// that straddle block boundaries.
TEST(runtime, sha256_matches_the_fips_180_4_vectors) {
  static const struct {
    const char *text;
    const char *hex;
  } cases[] = {
      {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
  };
  char hex[65];
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    sha256_hex(cases[i].text, strlen(cases[i].text), hex);
    cr_expect_str_eq(hex, cases[i].hex, "case %zu", i);
  }
  char *a = malloc(1000000);
  memset(a, 'a', 1000000);
  sha256_hex(a, 1000000, hex);
  cr_expect_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  Sha256 h;
  uint8_t d[32];
  sha256_init(&h);
  for (size_t at = 0, step = 1; at < 1000000; at += step, step = step % 97 + 13)
    sha256_update(&h, a + at, at + step > 1000000 ? 1000000 - at : step);
  sha256_final(&h, d);
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
  cr_expect_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", "in pieces");
  free(a);
  cr_expect(sha256_hex_valid(cases[0].hex));
  cr_expect(sha256_hex_valid("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
  cr_expect(!sha256_hex_valid("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a"));
  cr_expect(!sha256_hex_valid("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0"));
  cr_expect(!sha256_hex_valid("ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
}

// An ingot pinned by its SHA-256 opens only when the file has that hash,
// checked before anything in it is parsed.
TEST(runtime, a_pinned_ingot_opens_only_with_its_hash) {
  const char *path = ingot_path();
  build_mlp(path);
  size_t len;
  char *bytes = file_read(path, &len), hex[65], upper[65];
  cr_assert_not_null(bytes);
  sha256_hex(bytes, len, hex);
  free(bytes);
  for (int i = 0; i < 65; i++) upper[i] = hex[i] >= 'a' && hex[i] <= 'f' ? (char)(hex[i] - 32) : hex[i];
  smelt_ingot *ig;
  cr_assert_eq(smelt_ingot_open_verified(path, hex, &ig), SMELT_OK, "%s", smelt_last_error());
  smelt_ingot_close(ig);
  cr_assert_eq(smelt_ingot_open_verified(path, upper, &ig), SMELT_OK, "%s", smelt_last_error());
  smelt_ingot_close(ig);
  cr_assert_eq(smelt_ingot_open_verified(path, NULL, &ig), SMELT_OK, "%s", smelt_last_error());
  smelt_ingot_close(ig);
  char other[65];
  memcpy(other, hex, 65);
  other[10] = other[10] == '0' ? '1' : '0';
  cr_expect_eq(smelt_ingot_open_verified(path, other, &ig), SMELT_ERR_FORMAT);
  cr_expect_null(ig);
  char want[200];
  snprintf(want, sizeof want, "is not the ingot expected: its SHA-256 is %s, not %s", hex, other);
  cr_expect(strstr(smelt_last_error(), want) && strstr(smelt_last_error(), path), "%s", smelt_last_error());
  // a file that would not even parse is refused by its hash first
  char bad[64];
  snprintf(bad, sizeof bad, "build/test-pin-%d.ingot", (int)getpid());
  FILE *f = fopen(bad, "wb");
  for (int i = 0; i < 100; i++) fputc(i, f);
  fclose(f);
  cr_expect_eq(smelt_ingot_open_verified(bad, hex, &ig), SMELT_ERR_FORMAT);
  cr_expect(strstr(smelt_last_error(), "SHA-256") != NULL, "%s", smelt_last_error());
  unlink(bad);
  cr_expect_eq(smelt_ingot_open_verified(path, "abc", &ig), SMELT_ERR_INVALID_ARGUMENT);
  cr_expect(strstr(smelt_last_error(), "not 64 hex digits") != NULL, "%s", smelt_last_error());
  cr_expect_null(ig);
  unlink(path);
}

// smelt build prints the hash, inspect shows it, and --expect-sha256 pins
// the ingot of every command that opens one, in smelt and in smelt-rt.
TEST(runtime, build_prints_the_hash_that_commands_pin) {
  char ingot[64], cmd[1024], *out;
  snprintf(ingot, sizeof ingot, "build/test-pin-%d.ingot", (int)getpid());
  snprintf(cmd, sizeof cmd, "%s build examples/mlp.smelt -D B=4 -D H=8 -o %s", smelt_path(), ingot);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  size_t len;
  char *bytes = file_read(ingot, &len), hex[65], line[200];
  cr_assert_not_null(bytes);
  sha256_hex(bytes, len, hex);
  free(bytes);
  snprintf(line, sizeof line, "sha256 %s  %s\n", hex, ingot);
  cr_expect(strstr(out, line) != NULL, "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s inspect %s --expect-sha256=%s", smelt_path(), ingot, hex);
  cr_expect_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect(strstr(out, line) != NULL, "%s", out);
  free(out);
  char other[65];
  memcpy(other, hex, 65);
  other[0] = other[0] == 'f' ? 'e' : 'f';
  const char *tools[] = {"inspect %s", "bench %s --runs=1", "bench --profile %s --runs=1", "run %s --inputs=x.tensors",
                         "eval %s", "train %s", "sample %s", "bisect %s", "-rt check %s", "-rt bench %s",
                         "-rt profile %s", "-rt train %s", "-rt eval %s"};
  for (size_t i = 0; i < sizeof tools / sizeof *tools; i++) {
    char args[256];
    snprintf(args, sizeof args, tools[i], ingot);
    snprintf(cmd, sizeof cmd, "%s%s%s --device=cpu --expect-sha256=%s", smelt_path(), args[0] == '-' ? "" : " ",
             args, other);
    if (!strncmp(args, "inspect", 7)) snprintf(cmd, sizeof cmd, "%s %s --expect-sha256=%s", smelt_path(), args, other);
    cr_expect_eq(run_cmd(cmd, &out), 1, "%s: %s", cmd, out);
    cr_expect(strstr(out, "is not the ingot expected") != NULL, "%s: %s", cmd, out);
    free(out);
  }
  snprintf(cmd, sizeof cmd, "%s-rt check %s --device=cpu --expect-sha256=%s", smelt_path(), ingot, hex);
  cr_expect_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  const char *bad[] = {"%s inspect %s --expect-sha256=12ab", "%s-rt check %s --expect-sha256=zz"};
  for (int i = 0; i < 2; i++) {
    snprintf(cmd, sizeof cmd, bad[i], smelt_path(), ingot);
    cr_expect_eq(run_cmd(cmd, &out), 2, "%s", out);
    cr_expect(strstr(out, "--expect-sha256 takes the ingot's SHA-256, 64 hex digits") != NULL, "%s", out);
    free(out);
  }
  snprintf(cmd, sizeof cmd, "%s eval examples/mlp.smelt --expect-sha256=%s", smelt_path(), hex);
  cr_expect_eq(run_cmd(cmd, &out), 2, "%s", out);
  cr_expect(strstr(out, "--expect-sha256 pins an ingot; 'examples/mlp.smelt' is a model file") != NULL, "%s", out);
  free(out);
  unlink(ingot);
}

// A checkpoint with one flipped bit in its values is refused by smelt_load,
// naming the file and the tensor, and changes nothing.
TEST(runtime, a_flipped_checkpoint_value_is_refused) {
  const char *path = ingot_path();
  build_mlp(path);
  smelt_ingot *ig;
  smelt_session *s;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_session_new(ig, "cpu", 1, &s), SMELT_OK, "%s", smelt_last_error());
  char ckpt[64];
  snprintf(ckpt, sizeof ckpt, "build/test-flip-%d.ckpt", (int)getpid());
  cr_assert_eq(smelt_save(s, ckpt), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_load(s, ckpt), SMELT_OK, "%s", smelt_last_error());
  char err[512];
  TensorReader *r = tensor_reader_open(ckpt, err, sizeof err);   // the last record's name
  cr_assert_not_null(r, "%s", err);
  char last[256] = "";
  for (uint32_t i = 0; i < tensor_reader_count(r); i++) {
    const char *name;
    uint32_t dtype;
    Shape shape;
    cr_assert(tensor_reader_next(r, &name, &dtype, &shape));
    snprintf(last, sizeof last, "%s", name);
    cr_assert(tensor_reader_bytes(r, NULL, (uint64_t)shape_numel(&shape) * dtype_size(dtype)));
  }
  tensor_reader_close(r);
  FILE *f = fopen(ckpt, "r+b");
  fseek(f, -5, SEEK_END);   // its last value byte, before the CRC
  int c = fgetc(f);
  fseek(f, -5, SEEK_END);
  fputc(c ^ 1, f);
  fclose(f);
  cr_expect_eq(smelt_load(s, ckpt), SMELT_ERR_FORMAT);
  char want[400];
  snprintf(want, sizeof want, "'%s' is corrupt: tensor '%s' does not match its CRC-32", ckpt, last);
  cr_expect(strstr(smelt_last_error(), want) != NULL, "%s", smelt_last_error());
  smelt_session_free(s);
  smelt_ingot_close(ig);
  unlink(ckpt);
  unlink(path);
}

// Bytes after a checkpoint's last record belong to no tensor: a file that
// grew (two saves interleaved, a copy appended to) is refused, not half-read.
TEST(runtime, a_checkpoint_with_bytes_after_its_last_tensor_is_refused) {
  const char *path = ingot_path();
  build_mlp(path);
  smelt_ingot *ig;
  smelt_session *s;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_session_new(ig, "cpu", 1, &s), SMELT_OK, "%s", smelt_last_error());
  char ckpt[64], want[400];
  snprintf(ckpt, sizeof ckpt, "build/test-tail-%d.ckpt", (int)getpid());
  cr_assert_eq(smelt_save(s, ckpt), SMELT_OK, "%s", smelt_last_error());
  FILE *f = fopen(ckpt, "ab");
  fputs("JUNK", f);
  fclose(f);
  cr_expect_eq(smelt_load(s, ckpt), SMELT_ERR_FORMAT);
  snprintf(want, sizeof want, "'%s' has 4 bytes after its last tensor", ckpt);
  cr_expect(strstr(smelt_last_error(), want) != NULL, "%s", smelt_last_error());
  cr_expect_eq(smelt_load_weights(s, ckpt), SMELT_ERR_FORMAT);
  TensorEntry *t;
  int n;
  char err[512];
  cr_expect_eq(tensorfile_read(ckpt, &t, &n, err, sizeof err), -1);
  cr_expect(strstr(err, want) != NULL, "%s", err);
  smelt_session_free(s);
  smelt_ingot_close(ig);
  unlink(ckpt);
  unlink(path);
}

TEST(runtime, absent_gpus_and_bad_arguments_say_so) {
  const char *path = ingot_path();
  build_mlp(path);
  smelt_ingot *ig;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK);
  smelt_session *s = NULL;
  cr_expect_eq(smelt_session_new(ig, "cuda", 1, &s), SMELT_ERR_NO_DEVICE);
  cr_expect(strstr(smelt_last_error(), "libcuda.so.1") != NULL || strstr(smelt_last_error(), "CUDA") != NULL,
            "%s", smelt_last_error());
  cr_expect_eq(smelt_session_new(ig, "hip", 1, &s), SMELT_ERR_NO_DEVICE);
  cr_expect_eq(smelt_session_new(ig, "tpu", 1, &s), SMELT_ERR_INVALID_ARGUMENT);
  cr_assert_eq(smelt_session_new(ig, "cpu", 1, &s), SMELT_OK);
  float small[3];
  cr_expect_eq(smelt_set_input(s, "eval", "x", small, sizeof small), SMELT_ERR_INVALID_ARGUMENT);
  cr_expect(strstr(smelt_last_error(), "takes 12544 bytes") != NULL, "%s", smelt_last_error());
  cr_expect_eq(smelt_set_input(s, "eval", "z", small, sizeof small), SMELT_ERR_INVALID_ARGUMENT);
  cr_expect_eq(smelt_run(s, "nope", 1, 0), SMELT_ERR_INVALID_ARGUMENT);
  cr_expect_eq(smelt_load(s, "build/none.ckpt"), SMELT_ERR_IO);
  smelt_session_free(s);
  smelt_ingot_close(ig);
  unlink(path);
}

TEST(runtime, the_documented_embedding_example_builds_and_runs) {
  const char *path = ingot_path();
  build_mlp(path);
  char exe[64], cmd[PATH_MAX + 256], *out;
  snprintf(exe, sizeof exe, "build/test-embed-%d", (int)getpid());
  char lib[PATH_MAX];
  snprintf(lib, sizeof lib, "%s", smelt_path());
  char *slash = strrchr(lib, '/');
  cr_assert_not_null(slash);
  strcpy(slash + 1, "libsmeltrt.a");
#if defined(__SANITIZE_ADDRESS__)
  const char *san = "-fsanitize=address,undefined";   // the library it links was built so
#else
  const char *san = "";
#endif
  snprintf(cmd, sizeof cmd, "cc -std=c11 %s -Iruntime docs/examples/embed.c %s -o %s -lm -ldl -lpthread", san, lib, exe);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "./%s %s", exe, path);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect(strstr(out, "model mlp on cpu") != NULL && strstr(out, "step 10: loss") != NULL &&
            strstr(out, "eval: loss") != NULL, "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "./%s build/none.ingot", exe);
  cr_expect_eq(run_cmd(cmd, &out), 1, "%s", out);
  cr_expect(strstr(out, "embed: cannot open 'build/none.ingot'") != NULL, "%s", out);
  free(out);
  unlink(exe);
  unlink(path);
}

// Outputs that alias: two of one expression (a, b), an input (c, h: a
// transpose of a transpose), a parameter the step updates (d), views of an
// output (e, g: a reshape to its own shape) and of an input (f), an output
// that is the loss (l); two parameters with equal gradients (grad.w1 and
// grad.w2 are both x) and two the loss does not reach (grad.p and grad.q are
// both zeros). Every name keeps its own output with its own value.
static const char *aliasing_model =
    "model m {\n"
    "    param w1: f32[2, 3] = ones\n"
    "    param w2: f32[2, 3] = ones\n"
    "    param p: f32[2, 3] = ones\n"
    "    param q: f32[2, 3] = ones\n"
    "    input x: f32[2, 3]\n"
    "    output a = x * 2.0\n"
    "    output b = x * 2.0\n"
    "    output c = x\n"
    "    output d = w1\n"
    "    output e = a.reshape(3, 2)\n"
    "    output f = x.transpose(0, 1)\n"
    "    output g = a.reshape(2, 3)\n"
    "    output h = x.transpose(0, 1).transpose(0, 1)\n"
    "    output u = p * q\n"
    "    output l = (w1 * x).sum() + (w2 * x).sum()\n"
    "    loss l\n"
    "}\n"
    "\n"
    "train {\n"
    "    optimizer = sgd(lr = 0.5)\n"
    "    steps = 2\n"
    "    data train {\n"
    "        x = csv(\"x.csv\")\n"
    "    }\n"
    "}\n";

static void build_text(const char *text, const char *path, const BuildTargets *t) {
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_text(&c, "m.smelt", text, strlen(text));
  cr_assert_eq(check_modules(&c, &m, 1, NULL, 0), 0);
  cr_assert_eq(ingot_build(&c, m, NULL, 0, t, path), 0);
  compilation_free(&c);
}

// Reads output name of entry (n floats) and compares it with want.
static void expect_output(smelt_session *s, const char *entry, const char *name, const float *want, int n) {
  float got[6];
  cr_assert_eq(smelt_get_output(s, entry, name, got, sizeof(float) * (size_t)n), SMELT_OK, "%s: %s", entry,
               smelt_last_error());
  for (int i = 0; i < n; i++)
    cr_expect_eq(got[i], want[i], "%s/%s[%d] is %g, not %g", entry, name, i, got[i], want[i]);
}

// Builds the aliasing model with t and checks every output of every entry.
static void check_aliasing_outputs(const BuildTargets *t) {
  const char *path = ingot_path();
  build_text(aliasing_model, path, t);
  smelt_ingot *ig;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  smelt_session *s;
  cr_assert_eq(smelt_session_new(ig, "cpu", 1, &s), SMELT_OK, "%s", smelt_last_error());
  const float x[6] = {1, -2, 3, 0.5f, 4, -1};   // (2, 3)
  float twice[6], xt[6], ones[6], zeros[6] = {0}, sum = 0;
  for (int i = 0; i < 6; i++) twice[i] = 2 * x[i], ones[i] = 1, sum += 2 * x[i];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 3; j++) xt[j * 2 + i] = x[i * 3 + j];   // (3, 2)
  const char *entries[] = {"infer", "eval", "train_step", "train_step"};
  for (int k = 0; k < 4; k++) {
    const char *en = entries[k];
    float w1[6];   // d is w1 as the step reads it, before its update
    cr_assert_eq(smelt_get_tensor(s, "w1", w1, sizeof w1), SMELT_OK, "%s", smelt_last_error());
    cr_assert_eq(smelt_set_input(s, en, "x", x, sizeof x), SMELT_OK, "%s", smelt_last_error());
    cr_assert_eq(smelt_run(s, en, 1, (uint64_t)k), SMELT_OK, "%s", smelt_last_error());
    expect_output(s, en, "a", twice, 6);
    expect_output(s, en, "b", twice, 6);
    expect_output(s, en, "c", x, 6);
    expect_output(s, en, "d", w1, 6);
    expect_output(s, en, "e", twice, 6);
    expect_output(s, en, "f", xt, 6);
    expect_output(s, en, "g", twice, 6);
    expect_output(s, en, "h", x, 6);
    expect_output(s, en, "u", ones, 6);
    if (k < 3) expect_output(s, en, "l", &sum, 1);   // w1 and w2 are still ones
    if (k == 1 || k == 2) expect_output(s, en, "loss", &sum, 1);
    if (k < 2) continue;
    expect_output(s, en, "grad.w1", x, 6);
    expect_output(s, en, "grad.w2", x, 6);
    expect_output(s, en, "grad.p", zeros, 6);
    expect_output(s, en, "grad.q", zeros, 6);
  }
  float w1[6];
  cr_assert_eq(smelt_get_tensor(s, "w1", w1, sizeof w1), SMELT_OK);
  cr_expect_neq(w1[0], 1.0f, "the training step did not update w1");
  smelt_session_free(s);
  smelt_ingot_close(ig);
  // smelt inspect lists every one of them
  char cmd[PATH_MAX + 64], *out;
  snprintf(cmd, sizeof cmd, "%s inspect %s", smelt_path(), path);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  static const char *listed[] = {
      "infer/a ", "infer/b ", "infer/c ", "infer/d ", "infer/e ", "infer/f ", "infer/g ", "infer/h ", "infer/u ",
      "infer/l ", "eval/b ", "eval/c ", "eval/l ", "eval/loss ", "train_step/loss ", "train_step/grad.w1 ",
      "train_step/grad.w2 ", "train_step/grad.p ", "train_step/grad.q ", "train_step/d ", "train_step/h "};
  for (size_t i = 0; i < sizeof listed / sizeof *listed; i++) {
    char line[64];
    snprintf(line, sizeof line, "output %s", listed[i]);
    cr_expect(strstr(out, line) != NULL, "smelt inspect does not list '%s':\n%s", line, out);
  }
  free(out);
  unlink(path);
}

TEST(runtime, every_declared_output_keeps_its_name_whatever_it_aliases) {
  check_aliasing_outputs(&(BuildTargets){.fusion = FUSION_ALL});
  check_aliasing_outputs(&(BuildTargets){.fusion = FUSION_NONE});
  check_aliasing_outputs(&(BuildTargets){.fusion = FUSION_ALL, .remat = true});
}

static int occurrences(const char *s, const char *what) {
  int n = 0;
  for (const char *p = s; (p = strstr(p, what)); p += strlen(what)) n++;
  return n;
}

// bench --profile --json prints one JSON object with a row per kernel, and
// --trace writes a Chrome trace with an event per launch of every timed run
// (smelt-rt profile takes both too); neither goes without --profile.
TEST(runtime, profile_as_json_and_as_a_chrome_trace) {
  char ingot[64], trace[64], cmd[1024], *out;
  snprintf(ingot, sizeof ingot, "build/test-profile-%d.ingot", (int)getpid());
  snprintf(trace, sizeof trace, "build/test-profile-%d.trace.json", (int)getpid());
  snprintf(cmd, sizeof cmd, "%s build examples/mlp.smelt -D B=4 -D H=8 --entry=infer -o %s", smelt_path(), ingot);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s bench --profile %s --entry=infer --runs=3 --json --trace=%s --device=cpu", smelt_path(),
           ingot, trace);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  int kernels = occurrences(out, "\"name\": \"infer_k");
  cr_expect(!strncmp(out, "{\"ingot\": \"", 11) && strstr(out, "\"entry\": \"infer\", \"device\": \"cpu\", \"runs\": 3"),
            "%s", out);
  cr_expect(kernels >= 2 && occurrences(out, "\"ms\": ") == kernels && strstr(out, "\n]}\n"), "%s", out);
  free(out);
  size_t len;
  char *t = file_read(trace, &len);
  cr_assert_not_null(t);
  cr_expect(!strncmp(t, "{\"displayTimeUnit\": \"ms\"", 24), "%s", t);
  cr_expect_eq(occurrences(t, "\"ph\": \"X\""), 3 * kernels, "%s", t);
  cr_expect_eq(occurrences(t, "\"args\": {\"run\": 2}"), kernels, "%s", t);
  free(t);
  snprintf(cmd, sizeof cmd, "%s-rt profile %s --entry=infer --runs=2 --json --device=cpu", smelt_path(), ingot);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect_eq(occurrences(out, "\"name\": \"infer_k"), kernels, "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s bench %s --trace=%s", smelt_path(), ingot, trace);
  cr_expect_eq(run_cmd(cmd, &out), 2, "%s", out);
  cr_expect(strstr(out, "--trace needs --profile") != NULL, "%s", out);
  free(out);
  unlink(trace);
  unlink(ingot);
}

// Builds examples/cnn.smelt at small sizes into path.
static void build_small_cnn(const char *path) {
  static const Define sizes[] = {{"B", 2}, {"C1", 4}, {"C2", 8}, {"F", 16}};
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_file(&c, "examples/cnn.smelt");
  cr_assert_eq(check_modules(&c, &m, 1, NULL, 0), 0);
  cr_assert_eq(ingot_build(&c, m, sizes, 4, &(BuildTargets){.fusion = FUSION_ALL}, path), 0);
  compilation_free(&c);
}

// Three training steps, then conv1.w and the logits of one inference.
static void cnn_steps(const smelt_ingot *ig, int threads, float *w, size_t wbytes, float *logits) {
  smelt_session *s;
  cr_assert_eq(smelt_session_new(ig, "cpu", threads, &s), SMELT_OK, "%s", smelt_last_error());
  float x[2 * 784];
  int32_t y[2];
  for (int step = 0; step < 3; step++) {
    for (int i = 0; i < 2 * 784; i++) x[i] = (float)((i * 7919 + step * 104729) % 1000) / 1000.0f;
    y[0] = step % 10, y[1] = (step + 3) % 10;
    cr_assert_eq(smelt_set_input(s, "train_step", "x", x, sizeof x), SMELT_OK, "%s", smelt_last_error());
    cr_assert_eq(smelt_set_input(s, "train_step", "y", y, sizeof y), SMELT_OK, "%s", smelt_last_error());
    cr_assert_eq(smelt_run(s, "train_step", 1, (uint64_t)step), SMELT_OK, "%s", smelt_last_error());
  }
  cr_assert_eq(smelt_get_tensor(s, "conv1.w", w, wbytes), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_set_input(s, "infer", "x", x, sizeof x), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_run(s, "infer", 1, 0), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_get_output(s, "infer", "logits", logits, 2 * 10 * sizeof *logits), SMELT_OK, "%s",
               smelt_last_error());
  smelt_session_free(s);
}

// The CPU device runs a launch of little estimated work on the calling thread
// and a larger one in chunks on its workers; neither way changes a bit. With
// the threshold at the median launch's work, the training step has launches
// on both sides, and one thread (all inline), two threads at that threshold
// and two threads at threshold 0 (every launch of two or more iterations on
// the pool, in chunks of at least CHUNK_WORK) agree exactly.
TEST(runtime, inline_and_pooled_launches_give_the_same_bits) {
  char path[64];
  snprintf(path, sizeof path, "build/test-cnn-inline-%d.ingot", (int)getpid());
  build_small_cnn(path);
  smelt_ingot *ig;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  const IngotEntry *e = ingot_entry(ig, "train_step");
  cr_assert(e && e->nlaunches > 4 && ig->costs);
  uint64_t *work = calloc(e->nlaunches, sizeof *work);
  for (uint32_t k = 0; k < e->nlaunches; k++) work[k] = cpu_launch_work(&ig->costs[e->first_launch + k]);
  uint64_t mid = work[e->nlaunches / 2];
  int below = 0, above = 0;
  for (uint32_t k = 0; k < e->nlaunches; k++) {
    const IngotLaunch *l = &ig->launches[e->first_launch + k];
    bool inl = cpu_runs_inline(&ig->costs[e->first_launch + k], (int64_t)l->count, (int64_t)mid);
    below += inl && l->count >= 2;   // inline by its work, not by its count
    above += !inl;
  }
  free(work);
  cr_assert(below > 0 && above > 0, "%d launches inline by their work, %d on the pool", below, above);
  size_t wbytes;
  smelt_session *probe;
  cr_assert_eq(smelt_session_new(ig, "cpu", 1, &probe), SMELT_OK, "%s", smelt_last_error());
  wbytes = smelt_tensor_bytes(probe, "conv1.w");
  smelt_session_free(probe);
  cr_assert_gt(wbytes, 0);
  float *w[3], logits[3][20];
  char value[32];
  snprintf(value, sizeof value, "%llu", (unsigned long long)mid);
  const char *thresholds[3] = {NULL, value, "0"};
  for (int k = 0; k < 3; k++) {
    w[k] = malloc(wbytes);
    if (thresholds[k]) setenv("SMELT_CPU_INLINE_WORK", thresholds[k], 1);
    cnn_steps(ig, k ? 2 : 1, w[k], wbytes, logits[k]);
    unsetenv("SMELT_CPU_INLINE_WORK");
  }
  for (int k = 1; k < 3; k++) {
    cr_expect_eq(memcmp(w[0], w[k], wbytes), 0, "conv1.w differs between one thread and two (threshold %s)", thresholds[k]);
    cr_expect_eq(memcmp(logits[0], logits[k], sizeof logits[0]), 0, "logits differ between one thread and two (threshold %s)",
                 thresholds[k]);
  }
  for (int k = 0; k < 3; k++) free(w[k]);
  smelt_ingot_close(ig);
  unlink(path);
}

TEST(runtime, a_bad_inline_threshold_is_refused) {
  const char *path = ingot_path();
  build_mlp(path);
  smelt_ingot *ig;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  smelt_session *s = NULL;
  setenv("SMELT_CPU_INLINE_WORK", "12k", 1);
  cr_expect_eq(smelt_session_new(ig, "cpu", 2, &s), SMELT_ERR_INVALID_ARGUMENT);
  cr_expect_str_eq(smelt_last_error(), "SMELT_CPU_INLINE_WORK takes a whole number of bytes, not '12k'");
  unsetenv("SMELT_CPU_INLINE_WORK");
  smelt_ingot_close(ig);
  unlink(path);
}
