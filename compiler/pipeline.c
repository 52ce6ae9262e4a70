// pipeline.c: the compiler's passes, in order, in one place.
//
// One entry point of a model is compiled by the flat list in
// pipeline_entry: elaborate, precision, autodiff (backward pass and
// optimizer), outputs (infer drops the loss), simplify, remat, conv_gemm,
// matmul, kernels, memplan. pipeline_build runs it for every entry of an
// ingot, then codegen for each target; ingot_write.c only serializes the
// result. Every command that compiles (check, build, explain, bisect, dump,
// graph, init, the temporary builds of train, bench and sample) comes here.
//
// After each pass the graph is verified (graph_verify) when verification is
// on, and printed when --dump-after names the pass. check_modules keeps the
// training step it builds on its module, and the build of the same sizes
// takes it as its train_step entry instead of elaborating again.
#include "compiler.h"

#include <pthread.h>
#include <sys/stat.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingot.h"
#include "sha256.h"

static const char *const pass_names[PASS_COUNT] = {
#define X(id, name) name,
    PIPELINE_PASSES(X)
#undef X
};

const char *pass_name(Pass p) { return pass_names[p]; }

int pass_parse(const char *name) {
  for (int p = 0; p < PASS_COUNT; p++)
    if (!strcmp(name, pass_names[p])) return p;
  return -1;
}

// ---- verification and dumps between passes

#ifdef SMELT_VERIFY
static int verify = 1;
#else
static int verify = -1;   // -1: SMELT_VERIFY decides, on first use
#endif

bool pipeline_verifying(void) {
  if (verify < 0) {
    const char *e = getenv("SMELT_VERIFY");
    verify = e && *e && strcmp(e, "0");
  }
  return verify;
}

void pipeline_set_verify(bool on) { verify = on; }

static void print_fused(FILE *out, const Entry *e);
static void print_plan(FILE *out, const Entry *e);

// What pass p made of entry e: checked, and printed when --dump-after names p.
static void after(Compilation *c, const Entry *e, Pass p) {
  char err[512];
  if (pipeline_verifying() && !graph_verify(&e->g, err, sizeof err)) {
    char msg[700];
    snprintf(msg, sizeof msg, "graph_verify: the %s graph after pass %s: %s", e->name, pass_name(p), err);
    internal_error(__FILE__, __LINE__, msg);
  }
  if (!c->dump_after || strcmp(c->dump_after, pass_name(p))) return;
  printf("# %s after %s\n", e->name, pass_name(p));
  if (p == PASS_KERNELS) print_fused(stdout, e);
  else if (p == PASS_MEMPLAN) print_plan(stdout, e);
  else dump_graph(stdout, &e->g);
}

// ---- the graph check_modules keeps for the build

void module_cache_free(Module *m) {
  struct EntryCache *k = m->cache;
  if (!k) return;
  entry_free(&k->e);
  for (int i = 0; i < k->ndefs; i++) free((char *)k->defs[i].name);
  free(k->defs);
  free(k);
  m->cache = NULL;
}

static void cache_put(Module *m, Entry *e, const Define *defs, int ndefs) {
  module_cache_free(m);
  struct EntryCache *k = xcalloc(1, sizeof *k);
  k->e = *e;
  k->backward = e->g.loss != NULL;
  k->defs = xmalloc(sizeof *k->defs * (size_t)(ndefs ? ndefs : 1));
  for (int i = 0; i < ndefs; i++) k->defs[i] = (Define){xstrdup(defs[i].name), defs[i].value};
  k->ndefs = ndefs;
  m->cache = k;
}

// Takes m's kept step graph into e when it is what the passes so far would
// build: the same sizes, training = true, autodiff run when wanted.
static bool cache_take(Module *m, const EntryOptions *o, bool want_backward, Entry *e) {
  struct EntryCache *k = m->cache;
  if (!k || o->training_off || k->ndefs != o->ndefs || (want_backward && !k->backward)) return false;
  for (int i = 0; i < k->ndefs; i++)
    if (strcmp(k->defs[i].name, o->defs[i].name) || k->defs[i].value != o->defs[i].value) return false;
  e->g = k->e.g;
  e->forward = k->e.forward;
  memset(&k->e.g, 0, sizeof k->e.g);
  module_cache_free(m);
  return true;
}

// ---- one entry

void entry_free(Entry *e) {
  kernel_plan_free(&e->plan);
  free(e->mem);
  free(e->in_arena);
  graph_free(&e->g);
  e->mem = NULL;
  e->in_arena = NULL;
}

const char *entry_prefix(const char *entry) {
  return !strcmp(entry, "train_step") ? "train_" : !strcmp(entry, "eval") ? "eval_" : !strcmp(entry, "train_grad") ? "grad_"
         : !strcmp(entry, "train_apply") ? "apply_" : "infer_";
}

int training_step(Compilation *c, Module *m, Graph *g) {
  return training_step_part(c, m, g, OPTIM_WHOLE);
}

int training_step_part(Compilation *c, Module *m, Graph *g, OptimPart part) {
  if (!g->loss) {
    diag_plain(&c->diag, "%s: the model has no loss, so it has no gradients", m->path);
    return -1;
  }
  int precision = entry_precision(c, m);
  if (m->train) {
    TrainConfig cfg = *m->train;
    cfg.precision = (Precision)precision;
    if (optim_append_part(g, &cfg, cfg.steps, part)) return -1;
    if (precision == PREC_TF32) pass_precision_tf32(g);
    else pass_precision_grads(g);
    return 0;
  }
  int errors = c->diag.errors;
  int n0 = g->n;
  Node **grads = autodiff(g, NULL, 0);
  for (int i = 0; i < n0; i++)
    if (grads[i] && g->nodes[i]->op == OP_PARAM)
      graph_add_output(g, arena_printf(&c->arena, "grad.%s", g->nodes[i]->name), grads[i]);
  free(grads);
  return c->diag.errors > errors ? -1 : 0;
}

// The infer entry's outputs: the model's, without the output "loss" (so no
// labels); a declared output that is the loss stays.
static void drop_loss(Graph *g) {
  int k = 0;
  for (int i = 0; i < g->noutputs; i++)
    if (g->outputs[i].node != g->loss || strcmp(g->outputs[i].name, "loss")) g->outputs[k++] = g->outputs[i];
  g->noutputs = k;
  g->loss = NULL;
  graph_prune(g);
}

static void memory_plan(Entry *e) {
  int n = e->plan.nslots ? e->plan.nslots : 1;
  e->mem = xmalloc(sizeof *e->mem * (size_t)n);
  e->in_arena = xcalloc((size_t)n, sizeof *e->in_arena);
  e->arena = memplan_entry(&e->g, &e->plan, e->mem, e->in_arena, INGOT_ALIGN, &e->unplanned);
  char err[256];
  if (!memplan_check(e->mem, e->in_arena, e->plan.nslots, e->arena, err, sizeof err)) internal_error(__FILE__, __LINE__, err);
}

// Each pass, then what it made checked (and dumped); the list ends at last.
#define DONE(pass)                                                             \
  do {                                                                         \
    after(c, e, pass);                                                         \
    if (last == (pass)) return 0;                                              \
  } while (0)

int pipeline_entry(Compilation *c, Module *m, const char *entry, const EntryOptions *o, Entry *e) {
  memset(e, 0, sizeof *e);
  graph_init(&e->g, &c->arena, &c->diag);
  bool infer = !strcmp(entry, "infer"), step = !strcmp(entry, "step");
  // the training step whole, or in the two parts of data parallelism
  OptimPart part = !strcmp(entry, "train_grad") ? OPTIM_GRADS : !strcmp(entry, "train_apply") ? OPTIM_APPLY : OPTIM_WHOLE;
  bool train = !strcmp(entry, "train_step") || part != OPTIM_WHOLE;
  if (!train && !infer && !step && strcmp(entry, "eval")) {
    diag_plain(&c->diag, "unknown entry point '%s' (train_step, eval or infer)", entry);
    return -1;
  }
  e->name = part == OPTIM_GRADS ? "train_grad" : part == OPTIM_APPLY ? "train_apply" : train ? "train_step"
            : infer ? "infer" : step ? "step" : "eval";
  Pass last = o->last ? o->last : PASS_MEMPLAN;
  Graph *g = &e->g;
  int precision = entry_precision(c, m);
  bool cached = ((train && part == OPTIM_WHOLE && m->train) || step) && last >= PASS_AUTODIFF && cache_take(m, o, train, e);
  if (!cached) {
    double t0 = time_now();
    int failed = elaborate(c, m, o->defs, o->ndefs, train || (step && !o->training_off), g);
    time_add(TIME_ELABORATE, t0);
    if (failed) return -1;
    e->forward = g->n;
    if (train && (!m->train || !g->loss)) {
      diag_plain(&c->diag, "%s: no train_step entry: the model needs a loss and a train block", m->path);
      return -1;
    }
    DONE(PASS_ELABORATE);
    pass_precision(g, precision);
    DONE(PASS_PRECISION);
    if (train || (step && g->loss)) {
      double t0 = time_now();
      failed = training_step_part(c, m, g, part);
      time_add(TIME_AUTODIFF, t0);
      if (failed) return -1;
    } else if (!step && precision == PREC_TF32) {
      pass_precision_tf32(g);
    }
  }
  DONE(PASS_AUTODIFF);
  g->differentiated = true;   // no gradient is taken after this point
  double t0 = time_now();
  if (infer) drop_loss(g);
  DONE(PASS_OUTPUTS);
  pass_simplify(g, o->simplified);
  DONE(PASS_SIMPLIFY);
  if (g->loss && (train || step)) pass_remat(g, g->loss->id + 1, o->remat, o->remat_stats);   // the backward pass follows the loss
  DONE(PASS_REMAT);
  pass_conv_gemm(g);
  DONE(PASS_CONV_GEMM);
  pass_matmul_operands(g);
  time_add(TIME_PASSES, t0);
  DONE(PASS_MATMUL);
  t0 = time_now();
  kernel_plan(g, o->prefix ? o->prefix : entry_prefix(e->name), o->tile_columns ? o->tile_columns : 16, o->fusion, &e->plan);
  time_add(TIME_KERNELS, t0);
  DONE(PASS_KERNELS);
  t0 = time_now();
  memory_plan(e);
  time_add(TIME_MEMPLAN, t0);
  DONE(PASS_MEMPLAN);
  return 0;
}

int entry_graph(Compilation *c, Module *m, const Define *defs, int ndefs, const char *entry, Graph *g,
                const GraphOptions *o) {
  EntryOptions eo = {defs, ndefs, .last = PASS_MATMUL};
  if (o) eo.remat = o->remat, eo.simplified = o->simplified, eo.remat_stats = o->remat_stats;
  Entry e;
  int rc = pipeline_entry(c, m, entry, &eo, &e);
  graph_free(g);
  *g = e.g;   // the graph moves to the caller
  memset(&e.g, 0, sizeof e.g);
  entry_free(&e);
  return rc;
}

int check_modules(Compilation *c, Module **entries, int nentries, const Define *defs, int ndefs) {
  for (int i = 0; i < c->nmodules; i++) resolve_module(c, c->modules[i]);
  if (c->diag.errors) return c->diag.errors;
  for (int i = 0; i < nentries; i++) {
    Module *m = entries[i];
    if (!m->model) continue;
    Entry e;
    if (pipeline_entry(c, m, "step", &(EntryOptions){defs, ndefs, .last = PASS_AUTODIFF}, &e) == 0) cache_put(m, &e, defs, ndefs);
    else entry_free(&e);
  }
  return c->diag.errors;
}

// ---- every entry of an ingot, and its code

void build_free(Build *b) {
  for (int e = 0; e < BUILD_ENTRIES; e++) entry_free(&b->entries[e]);
  free(b->host.data);
  for (int i = 0; i < b->ngpus; i++) {
    free(b->gpu[i].code.data);
    free(b->gpu[i].cubin.data);
    free(b->gpu[i].report);
  }
  memset(b, 0, sizeof *b);
}

// ---- code generation, in parallel, through the build cache
//
// Each distinct body (codegen_share_bodies) is its own LLVM module on the
// host and on an NVIDIA target: its own object, or its own PTX, which the
// build cache keeps under the body's key (build_cache.c). The host's objects
// are linked in body order into one shared object, and an NVIDIA target's
// PTX modules joined in body order (ptx_join) for ptxas; the shared object
// and the cubin are kept too, under the keys of what they are made from. An
// AMD target stays one module (its code object is linked from one object)
// and is not cached. The jobs run on --jobs threads, each with its own LLVM
// context; nothing in a job's output depends on the thread or the order the
// jobs run in, so the ingot is the same bytes whatever --jobs is, and
// whether each body came from the cache or not.
enum { JOB_ERR = 2048 };

typedef struct {
  const KernelPlan *const *plans;
  int nplans, bodies, ngpus;
  const BuildTargets *t;
  const BodyKeys *keys;
  const char **names;     // by body: its first kernel's name, which the ingot's launches name
  char (*symbols)[40];    // [body * keys->ntargets + target]: what the body is compiled as (body_symbol)
  BuildCache *cache;
  Blob *objs;        // host: one object per body
  Blob **gpu;        // per GPU target: PTX per body (NVIDIA), or the whole module's object in [0] (AMD)
  int njobs;
  int *job_target;   // 0: the host; g + 1: GPU target g
  int *job_body;     // the body, or -1 for a whole module
  pthread_mutex_t lock;
  int failed;        // the first failed job, or njobs
  char err[JOB_ERR];
  atomic_int next;   // the next job to take
} Jobs;

// A body's cached code into out, or false; counted in --time's cache stages.
static bool kept_get(BuildCache *bc, const uint8_t *key, Blob *out) {
  if (!bc->on) return false;
  double t0 = time_now();
  bool hit = build_cache_get(bc, key, out);
  time_add(hit ? TIME_CACHE_HIT : TIME_CACHE_MISS, t0);
  return hit;
}

static void kept_put(BuildCache *bc, const uint8_t *key, const Blob *b) {
  if (!bc->on) return;
  double t0 = time_now();
  build_cache_put(bc, key, b);
  time_add(TIME_CACHE_PUT, t0);
}

static void job_fail(Jobs *J, int j, const char *msg) {
  pthread_mutex_lock(&J->lock);
  if (j < J->failed) J->failed = j, snprintf(J->err, sizeof J->err, "%s", msg);
  pthread_mutex_unlock(&J->lock);
}

static void run_job(Jobs *J, int j) {
  int t = J->job_target[j], b = J->job_body[j];
  char err[JOB_ERR];
  if (b < 0) {   // an AMD target: one module
    if (codegen_gpu(J->plans, J->nplans, J->t->gpus[t - 1], &J->gpu[t - 1][0], err, sizeof err)) job_fail(J, j, err);
    return;
  }
  Blob *out = t ? &J->gpu[t - 1][b] : &J->objs[b];
  const uint8_t *key = J->keys->key[b * J->keys->ntargets + t];
  if (kept_get(J->cache, key, out)) return;
  const char *symbol = J->symbols[b * J->keys->ntargets + t];
  int rc = t ? codegen_gpu_body(J->plans, J->nplans, J->t->gpus[t - 1], b, symbol, out, err, sizeof err)
             : codegen_host_body(J->plans, J->nplans, J->t->cpu, b, symbol, out, err, sizeof err);
  if (rc) job_fail(J, j, err);
  else kept_put(J->cache, key, out);
}

static void *worker(void *arg) {
  Jobs *J = arg;
  for (int j; (j = atomic_fetch_add(&J->next, 1)) < J->njobs;) {
    pthread_mutex_lock(&J->lock);
    bool stop = J->failed < J->njobs;
    pthread_mutex_unlock(&J->lock);
    if (!stop) run_job(J, j);
  }
  return NULL;
}

// Runs fn(arg) on up to `threads` threads (this one among them) and waits for all.
static void run_threads(void *(*fn)(void *), void *arg, int threads) {
  pthread_t *tid = xcalloc((size_t)(threads > 1 ? threads - 1 : 1), sizeof *tid);
  int started = 0;
  for (; started < threads - 1; started++)
    if (pthread_create(&tid[started], NULL, fn, arg)) break;   // fewer threads still finish every job
  fn(arg);
  for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
  free(tid);
}

int codegen_threads(int jobs) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  return jobs > 0 ? jobs : cores > 0 ? (int)cores : 1;
}

// The identity of a tool for a key: its path, size, time and inode.
static void tool_identity(Sha256 *s, const char *tool) {
  struct stat st;
  char id[4200] = "";
  if (tool && stat(tool, &st) == 0)
    snprintf(id, sizeof id, "%s %lld %lld %lld", tool, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
             (long long)st.st_ino);
  sha256_update(s, id, strlen(id) + 1);
}

// What comes after the bodies: each GPU target's ptxas or ld.lld, and the
// host's link, one job each, on their own threads.
typedef struct {
  Jobs *J;
  Build *b;
  Blob *host;           // the linked shared object
  atomic_int next;
  int rc[17];
  char err[17][JOB_ERR];
} Finish;

// GPU target i's PTX, and its cubin when ptxas is installed (both kept), or its linked code object.
static int gpu_finish(Finish *F, int i, char *err, size_t errlen) {
  Jobs *J = F->J;
  GpuCode *gc = &F->b->gpu[i];
  double t0 = time_now();
  int rc = 0;
  if (gpu_target_is_nvidia(gc->target)) {
    int n = J->bodies;
    if (n) {
      const char **symbols = xcalloc((size_t)n, sizeof *symbols);
      for (int b = 0; b < n; b++) symbols[b] = J->symbols[b * J->keys->ntargets + i + 1];
      rc = ptx_join(J->gpu[i], n, J->names, symbols, &gc->code, err, errlen);
      free(symbols);
    } else {   // the one module of a plan without kernels
      gc->code = J->gpu[i][0];
      memset(&J->gpu[i][0], 0, sizeof J->gpu[i][0]);
    }
    const char *ptxas = gpu_tool_path("ptxas");
    char tool[4096];
    snprintf(tool, sizeof tool, "%s", ptxas ? ptxas : "");
    uint8_t key[32];
    Blob kept = {0};
    if (rc == 0 && ptxas && J->cache->on && n) {
      Sha256 s;   // the cubin's key: the PTX it is assembled from, and ptxas
      sha256_init(&s);
      sha256_update(&s, "cubin and ptxas report", 23);
      sha256_update(&s, gc->target, strlen(gc->target) + 1);
      tool_identity(&s, tool);
      sha256_update(&s, gc->code.data, gc->code.len);
      sha256_final(&s, key);
      if (kept_get(J->cache, key, &kept)) {
        // the cubin's length, the cubin, then ptxas's report
        size_t len = 0;
        if (kept.len >= 8) memcpy(&len, kept.data, 8);
        if (len <= kept.len - 8) {
          gc->cubin.data = xmalloc(len + 1);
          memcpy(gc->cubin.data, kept.data + 8, len);
          gc->cubin.len = len;
          gc->report = xstrdup(kept.data + 8 + len);
          free(kept.data);
          time_add(TIME_GPU_ASSEMBLE, t0);
          return 0;
        }
        free(kept.data);
      }
    }
    if (rc == 0 && ptx_assemble(&gc->code, gc->target, &gc->cubin, &gc->report, err, errlen) < 0) rc = -1;
    if (rc == 0 && gc->cubin.len && J->cache->on && n) {
      size_t rl = gc->report ? strlen(gc->report) : 0;
      kept.len = 8 + gc->cubin.len + rl;
      kept.data = xmalloc(kept.len + 1);
      memcpy(kept.data, &gc->cubin.len, 8);
      memcpy(kept.data + 8, gc->cubin.data, gc->cubin.len);
      memcpy(kept.data + 8 + gc->cubin.len, gc->report ? gc->report : "", rl + 1);
      kept_put(J->cache, key, &kept);
      free(kept.data);
    }
  } else {
    Blob object = J->gpu[i][0];
    int linked = amdgpu_link(&object, &gc->code, err, errlen);
    if (linked == 0) snprintf(err, errlen, "building for %s needs ld.lld (Debian: lld-22), which is not installed", gc->target);
    if (linked <= 0) rc = -1;
  }
  time_add(TIME_GPU_ASSEMBLE, t0);
  return rc;
}

// The host's link: one object per distinct symbol (bodies of equal host code
// share one), each body's name an alias of its symbol; and its key, those
// names and symbols in order, and the linker.
typedef struct {
  Blob *objs;
  const char **names, **symbols;
  int nobjs, naliases;
} HostLink;

static void host_link_plan(const Jobs *J, HostLink *L, uint8_t key[32]) {
  int n = J->bodies, nt = J->keys->ntargets;
  L->objs = xcalloc((size_t)(n ? n : 1), sizeof *L->objs);
  L->names = xcalloc((size_t)(n ? n : 1), sizeof *L->names);
  L->symbols = xcalloc((size_t)(n ? n : 1), sizeof *L->symbols);
  L->nobjs = L->naliases = 0;
  Sha256 s;
  sha256_init(&s);
  sha256_update(&s, "host shared object", 19);
  const char *cc = tool_path("cc");
  char tool[4096];
  snprintf(tool, sizeof tool, "%s", cc ? cc : "");
  tool_identity(&s, tool);
  for (int b = 0; b < n; b++) {
    const char *sym = J->symbols[b * nt];
    bool dup = false;
    for (int o = 0; o < b && !dup; o++) dup = !strcmp(J->symbols[o * nt], sym);
    if (!dup) L->objs[L->nobjs++] = J->objs[b];
    L->names[L->naliases] = J->names[b], L->symbols[L->naliases++] = sym;
    sha256_update(&s, J->names[b], strlen(J->names[b]) + 1);
    sha256_update(&s, J->keys->key[b * nt], 32);
  }
  if (!n) L->objs[L->nobjs++] = J->objs[0];   // the empty module of a plan without kernels
  sha256_final(&s, key);
}

static void host_link_free(HostLink *L) { free(L->objs), free(L->names), free(L->symbols); }

// The host's objects linked into F->host (kept under the key of its link),
// unless the cache had it before the bodies were compiled.
static int host_link(Finish *F, char *err, size_t errlen) {
  Jobs *J = F->J;
  if (F->host->data) return 0;
  uint8_t key[32];
  HostLink L;
  host_link_plan(J, &L, key);
  char dir[4096], so[4200];
  int rc = tempdir_create(dir, sizeof dir, err, errlen);
  if (rc) {
    host_link_free(&L);
    return rc;
  }
  snprintf(so, sizeof so, "%s/host.so", dir);
  double t0 = time_now();
  rc = link_shared_objects(L.objs, L.nobjs, L.names, L.symbols, L.naliases, so, err, errlen);
  time_add(TIME_LINK, t0);
  F->host->data = rc == 0 ? file_read(so, &F->host->len) : NULL;
  tempdir_remove(dir);
  if (rc == 0 && !F->host->data) rc = -1, snprintf(err, errlen, "cannot read the linked code back");
  if (rc == 0) kept_put(J->cache, key, F->host);
  host_link_free(&L);
  return rc;
}

static void *finisher(void *arg) {
  Finish *F = arg;
  int n = F->J->ngpus + 1;
  for (int j; (j = atomic_fetch_add(&F->next, 1)) < n;)
    F->rc[j] = j < F->J->ngpus ? gpu_finish(F, j, F->err[j], JOB_ERR) : host_link(F, F->err[j], JOB_ERR);
  return NULL;
}

// The host's code, linked into a shared object, and each GPU target's:
// PTX (and a cubin when ptxas is installed) or a linked AMD code object.
static int codegen(Build *b, KernelPlan *const *plans, int n, const BuildTargets *t, char *err, size_t errlen) {
  BodyKeys keys = {0};
  BuildCache cache = {0};
  Jobs J = {.plans = (const KernelPlan *const *)plans, .nplans = n, .ngpus = t->ngpus, .t = t, .keys = &keys,
            .cache = &cache};
  int threads = codegen_threads(t->jobs);
  J.bodies = codegen_share_bodies(plans, n, t->cpu, t->gpus, t->ngpus, threads, &keys, err, errlen);
  if (J.bodies < 0) return -1;
  char cerr[4200];
  if (!t->no_cache && build_cache_open(&cache, cerr, sizeof cerr))
    fprintf(stderr, "smelt: warning: building without the cache: %s\n", cerr);
  int per = J.bodies ? J.bodies : 1;   // a plan of no kernels is still one (empty) module per target
  J.objs = xcalloc((size_t)per, sizeof *J.objs);
  J.gpu = xcalloc((size_t)(t->ngpus ? t->ngpus : 1), sizeof *J.gpu);
  int cap = per * (1 + t->ngpus);
  J.job_target = xcalloc((size_t)cap, sizeof *J.job_target);
  J.job_body = xcalloc((size_t)cap, sizeof *J.job_body);
  for (int g = 0; g < t->ngpus; g++) {
    bool whole = !gpu_target_is_nvidia(t->gpus[g]) || !J.bodies;
    J.gpu[g] = xcalloc((size_t)per, sizeof **J.gpu);
    for (int i = 0; i < (whole ? 1 : J.bodies); i++)
      J.job_target[J.njobs] = g + 1, J.job_body[J.njobs++] = whole ? -1 : i;
  }
  if (!J.bodies) cache.on = false;   // the host's one job compiles an empty module as body 0
  J.names = xcalloc((size_t)per, sizeof *J.names);
  J.symbols = xcalloc((size_t)per * (size_t)(1 + t->ngpus), sizeof *J.symbols);
  for (int p = 0; p < n; p++)
    for (int k = 0; k < plans[p]->n; k++)
      if (!plans[p]->kernels[k].same) J.names[plans[p]->kernels[k].body] = plans[p]->kernels[k].name;
  for (int i = 0; i < J.bodies * (1 + t->ngpus); i++) body_symbol(keys.key[i], J.symbols[i]);
  uint8_t host_key[32];
  HostLink L;
  host_link_plan(&J, &L, host_key);
  host_link_free(&L);
  if (!kept_get(&cache, host_key, &b->host))   // else the host's bodies are not needed
    for (int i = 0; i < per; i++) J.job_target[J.njobs] = 0, J.job_body[J.njobs++] = i;
  pthread_mutex_init(&J.lock, NULL);
  J.failed = J.njobs;
  run_threads(worker, &J, threads < J.njobs ? threads : J.njobs);
  int rc = 0;
  if (J.failed < J.njobs) {
    snprintf(err, errlen, "%s", J.err);
    rc = -1;
  }
  for (int i = 0; i < t->ngpus; i++) b->gpu[b->ngpus++].target = t->gpus[i];
  if (rc == 0) {
    Finish F = {.J = &J, .b = b, .host = &b->host};
    int jobs = t->ngpus + 1;
    run_threads(finisher, &F, threads < jobs ? threads : jobs);
    for (int j = 0; j < jobs && rc == 0; j++)
      if (F.rc[j]) rc = -1, snprintf(err, errlen, "%s", F.err[j]);
  }
  build_cache_trim(&cache);
  for (int i = 0; i < per; i++) free(J.objs[i].data);
  for (int g = 0; g < t->ngpus; g++) {
    for (int i = 0; i < per; i++) free(J.gpu[g][i].data);
    free(J.gpu[g]);
  }
  pthread_mutex_destroy(&J.lock);
  free(J.objs), free(J.gpu), free(J.job_target), free(J.job_body), free(keys.key), free(J.names), free(J.symbols);
  return rc;
}

int pipeline_plan(Compilation *c, Module *m, const Define *defs, int ndefs, const BuildTargets *t, Build *b) {
  memset(b, 0, sizeof *b);
  enum { TRAIN = BUILD_TRAIN, EVAL = BUILD_EVAL, INFER = BUILD_INFER };
  EntryOptions o = {defs, ndefs, .fusion = t->fusion, .tile_columns = codegen_tile_columns(t->cpu)};
  int rc = 0;
  b->on[EVAL] = !t->infer_only;
  b->on[INFER] = true;
  if (b->on[EVAL]) {
    rc = pipeline_entry(c, m, "eval", &o, &b->entries[EVAL]);
    b->on[TRAIN] = rc == 0 && m->train && b->entries[EVAL].g.loss;
  }
  if (rc == 0) rc = pipeline_entry(c, m, "infer", &o, &b->entries[INFER]);
  o.remat = t->remat;
  if (rc == 0 && b->on[TRAIN]) rc = pipeline_entry(c, m, "train_step", &o, &b->entries[TRAIN]);
  for (int e = BUILD_GRAD; e <= BUILD_APPLY && rc == 0 && b->on[TRAIN] && t->data_parallel; e++) {
    b->on[e] = true;
    rc = pipeline_entry(c, m, build_entry_names[e], &o, &b->entries[e]);
  }
  if (rc == 0) rc = memory_need_check(c, m, b, t->max_memory);
  return rc ? -1 : 0;
}

int pipeline_build(Compilation *c, Module *m, const Define *defs, int ndefs, const BuildTargets *t, Build *b) {
  if (pipeline_plan(c, m, defs, ndefs, t, b)) return -1;
  KernelPlan *plans[BUILD_ENTRIES];
  int n = 0, kernels = 0;
  for (int e = 0; e < BUILD_ENTRIES; e++)
    if (b->on[e]) plans[n++] = &b->entries[e].plan, kernels += b->entries[e].plan.n;
  char err[2048];
  if (codegen(b, plans, n, t, err, sizeof err)) {
    diag_plain(&c->diag, "%s", err);
    return -1;
  }
  if (c->dump_after && !strcmp(c->dump_after, pass_name(PASS_CODEGEN))) {
    printf("# after codegen\nhost %s: %zu bytes of shared object, %d kernels\n", t->cpu ? t->cpu : "native", b->host.len,
           kernels);
    for (int i = 0; i < b->ngpus; i++)
      printf("%s: %zu bytes of %s%s\n", b->gpu[i].target, b->gpu[i].code.len,
             gpu_target_is_nvidia(b->gpu[i].target) ? "PTX" : "code object", b->gpu[i].cubin.len ? ", and a cubin" : "");
  }
  return 0;
}

int ingot_build(Compilation *c, Module *m, const Define *defs, int ndefs, const BuildTargets *t, const char *path) {
  Build b;
  int rc = pipeline_build(c, m, defs, ndefs, t, &b);
  double t0 = time_now();
  if (rc == 0) rc = ingot_write(c, m, &b, defs, ndefs, t, NULL, path, NULL);
  time_add(TIME_WRITE, t0);
  build_free(&b);
  return rc;
}

// ---- what a stage made

static const char *const stages[] = {"ast", "graph", "grad", "simplified", "fused", "plan", "llvm", "ptx", "amdgcn", "asm"};

bool dump_stage_known(const char *stage) {
  for (size_t i = 0; i < sizeof stages / sizeof *stages; i++)
    if (!strcmp(stage, stages[i])) return true;
  return false;
}

// fused: each kernel in schedule order with the ops it computes and where they came from.
static void print_fused(FILE *out, const Entry *e) {
  const KernelPlan *p = &e->plan;
  fprintf(out, "%s: %d kernels, fusion %s\n", e->name, p->n, fusion_mode_name(p->mode));
  for (int k = 0; k < p->n; k++) {
    const Kernel *kn = &p->kernels[k];
    char ty[96];
    fprintf(out, "  #%d %s: %s over %lld%s, stores", k, kn->name, op_name(kn->root->op), (long long)kn->count,
            kn->tiled ? " tiles" : kn->rows ? " rows" : "");
    for (int o = 0; o < kn->nouts; o++)
      fprintf(out, " %%%d %s", kn->outs[o]->id, type_str(ty, sizeof ty, kn->outs[o]->dtype, &kn->outs[o]->shape));
    fputc('\n', out);
    kernel_describe(out, &e->g, p, kn);
  }
}

// plan: the launches and every buffer's place, bytes and lifetime.
static void print_plan(FILE *out, const Entry *e) {
  const KernelPlan *p = &e->plan;
  fprintf(out, "%s: %d launches, %d buffers, arena %llu bytes (%llu without reuse)\n", e->name, p->n, p->nslots,
          (unsigned long long)e->arena, (unsigned long long)e->unplanned);
  for (int k = 0; k < p->n; k++) {
    GpuLaunch gl;
    gpu_launch_shape(&p->kernels[k], &gl);
    fprintf(out, "  launch %d: %s, %lld iterations (GPU: grid %u, block %u, %u bytes shared)\n", k, p->kernels[k].name,
            (long long)p->kernels[k].count, gl.grid, gl.block, gl.shared);
  }
  for (int s = 0; s < p->nslots; s++) {
    const Node *n = p->slot_node[s];
    char ty[96];
    fprintf(out, "  slot %d: %%%d %s %s", s, n->id, n->name ? n->name : op_name(n->op), type_str(ty, sizeof ty, n->dtype, &n->shape));
    if (!e->in_arena[s]) {
      fputs(", outside the arena\n", out);
      continue;
    }
    fprintf(out, ", %llu bytes at %llu, live %d..%d", (unsigned long long)e->mem[s].bytes, (unsigned long long)e->mem[s].offset,
            e->mem[s].first, e->mem[s].last);
    if (e->mem[s].reuses >= 0) fprintf(out, ", in place of slot %d", e->mem[s].reuses);
    fputc('\n', out);
  }
}

// llvm, ptx, amdgcn, asm: the entry's kernels as the target's compiler gives them.
static int print_code(Compilation *c, const DumpOptions *o, const Entry *e, FILE *out) {
  const KernelPlan *plans[1] = {&e->plan};
  const char *cpu = !o->cpu ? "x86-64-v3" : !strcmp(o->cpu, "native") ? NULL : o->cpu;
  const char *gpu = o->target ? o->target : !strcmp(o->stage, "ptx") ? "sm_80" : !strcmp(o->stage, "amdgcn") ? "gfx90a" : NULL;
  bool nv = gpu && gpu_target_is_nvidia(gpu);
  if ((!strcmp(o->stage, "ptx") && !nv) || (!strcmp(o->stage, "amdgcn") && (!gpu || nv)) || (!strcmp(o->stage, "asm") && gpu)) {
    diag_plain(&c->diag, "dump --stage=%s is not for target '%s' (ptx: NVIDIA sm_*, amdgcn: AMD gfx*, asm: the host)", o->stage,
               gpu ? gpu : "host");
    return -1;
  }
  Blob text = {0};
  char err[2048];
  bool ir = !strcmp(o->stage, "llvm");
  int rc = !gpu ? codegen_host_text(plans, 1, cpu, ir, &text, err, sizeof err)
           : nv && !ir ? codegen_gpu(plans, 1, gpu, &text, err, sizeof err)
                       : codegen_gpu_text(plans, 1, gpu, ir, &text, err, sizeof err);
  if (rc) diag_plain(&c->diag, "%s", err);
  else fwrite(text.data, 1, text.len, out);
  free(text.data);
  return rc;
}

int pipeline_dump(Compilation *c, Module *m, const DumpOptions *o, FILE *out) {
  const char *st = o->stage;
  if (!strcmp(st, "ast")) {
    dump_ast(out, m->ast);
    return 0;
  }
  bool graph = !strcmp(st, "graph"), grad = !strcmp(st, "grad");
  const char *entry = graph || grad ? "step" : o->entry ? o->entry : m->train && !o->infer ? "train_step" : "infer";
  EntryOptions eo = {o->defs, o->ndefs, .training_off = o->infer, .remat = o->remat, .fusion = o->fusion};
  bool code = !strcmp(st, "llvm") || !strcmp(st, "ptx") || !strcmp(st, "amdgcn") || !strcmp(st, "asm");
  eo.last = graph ? PASS_PRECISION : grad ? PASS_AUTODIFF : !strcmp(st, "simplified") ? PASS_SIMPLIFY
            : !strcmp(st, "fused") ? PASS_KERNELS : PASS_MEMPLAN;
  if (code) eo.tile_columns = codegen_tile_columns(!o->cpu ? "x86-64-v3" : !strcmp(o->cpu, "native") ? NULL : o->cpu);   // as smelt build plans them
  Entry e;
  int rc = pipeline_entry(c, m, entry, &eo, &e);
  if (rc == 0 && grad && !e.g.loss) rc = training_step(c, m, &e.g);   // reports that there is no loss
  if (rc == 0) {
    if (code) rc = print_code(c, o, &e, out);
    else if (!strcmp(st, "plan")) print_plan(out, &e);
    else if (!strcmp(st, "fused") && o->dot) dump_graph_dot_fused(out, &e.g, &e.plan);
    else if (!strcmp(st, "fused")) print_fused(out, &e);
    else if (o->dot) dump_graph_dot(out, &e.g);
    else dump_graph(out, &e.g);
  }
  entry_free(&e);
  return rc;
}
