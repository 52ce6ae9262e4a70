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
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingot.h"

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

// ---- code generation, in parallel
//
// The host's kernels are cut into parts of about PART_KERNELS kernels (at
// most MAX_PARTS), each compiled as its own LLVM module and object, and the
// objects are linked in order into one shared object. Each GPU target is one
// module. These jobs run on --jobs threads, each with its own LLVM context;
// the cut depends only on the kernels, never on the number of threads, so
// the ingot is the same bytes whatever --jobs is.
enum { PART_KERNELS = 32, MAX_PARTS = 16, JOB_ERR = 2048 };

typedef struct {
  const KernelPlan *const *plans;
  int nplans, kernels, nparts, ngpus;
  const BuildTargets *t;
  Blob *objs;        // one per host part
  Blob *gpu;         // each GPU target's PTX or object, before ptxas or ld.lld
  char (*err)[JOB_ERR];
  int *rc;
  atomic_int next;   // the next job to take
} Jobs;

// Job j: the GPU targets first (each a whole module: the longest), then the host parts.
static void run_job(Jobs *J, int j) {
  if (j < J->ngpus) {
    J->rc[j] = codegen_gpu(J->plans, J->nplans, J->t->gpus[j], &J->gpu[j], J->err[j], JOB_ERR);
    return;
  }
  int p = j - J->ngpus;
  int from = (int)((int64_t)p * J->kernels / J->nparts), to = (int)((int64_t)(p + 1) * J->kernels / J->nparts);
  J->rc[j] = codegen_host_part(J->plans, J->nplans, J->t->cpu, from, to, &J->objs[p], J->err[j], JOB_ERR);
}

static void *worker(void *arg) {
  Jobs *J = arg;
  for (int j; (j = atomic_fetch_add(&J->next, 1)) < J->ngpus + J->nparts;) run_job(J, j);
  return NULL;
}

// Runs every job on up to `threads` threads (this one among them); the first failed job's message, in job order.
static int run_jobs(Jobs *J, int threads, char *err, size_t errlen) {
  int njobs = J->ngpus + J->nparts;
  if (threads > njobs) threads = njobs;
  pthread_t *tid = xcalloc((size_t)(threads > 1 ? threads - 1 : 1), sizeof *tid);
  int started = 0;
  for (; started < threads - 1; started++)
    if (pthread_create(&tid[started], NULL, worker, J)) break;   // fewer threads still finish every job
  worker(J);
  for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
  free(tid);
  for (int j = 0; j < njobs; j++)
    if (J->rc[j]) {
      snprintf(err, errlen, "%s", J->err[j]);
      return -1;
    }
  return 0;
}

int codegen_threads(int jobs) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  return jobs > 0 ? jobs : cores > 0 ? (int)cores : 1;
}

// What ptxas or ld.lld makes of GPU target i's code (moved into gc).
static int gpu_finish(GpuCode *gc, Blob code, char *err, size_t errlen) {
  double t0 = time_now();
  int rc = 0;
  if (gpu_target_is_nvidia(gc->target)) {
    gc->code = code;
    if (ptx_assemble(&code, gc->target, &gc->cubin, &gc->report, err, errlen) < 0) rc = -1;
  } else {
    int linked = amdgpu_link(&code, &gc->code, err, errlen);
    free(code.data);
    if (linked == 0) snprintf(err, errlen, "building for %s needs ld.lld (Debian: lld-22), which is not installed", gc->target);
    if (linked <= 0) rc = -1;
  }
  time_add(TIME_GPU_ASSEMBLE, t0);
  return rc;
}

// The host parts' objects linked into b->host.
static int host_link(Build *b, const Blob *objs, int n, char *err, size_t errlen) {
  char dir[4096], so[4200];
  int rc = tempdir_create(dir, sizeof dir, err, errlen);
  if (rc) return rc;
  snprintf(so, sizeof so, "%s/host.so", dir);
  double t0 = time_now();
  rc = link_shared_objects(objs, n, so, err, errlen);
  time_add(TIME_LINK, t0);
  b->host.data = rc == 0 ? file_read(so, &b->host.len) : NULL;
  tempdir_remove(dir);
  if (rc == 0 && !b->host.data) rc = -1, snprintf(err, errlen, "cannot read the linked code back");
  return rc;
}

// The host's code, linked into a shared object, and each GPU target's:
// PTX (and a cubin when ptxas is installed) or a linked AMD code object.
// The parts are cut over the distinct bodies (codegen_share_bodies), so a
// body shared by many launches is compiled once.
static int codegen(Build *b, KernelPlan *const *plans, int n, const BuildTargets *t, char *err, size_t errlen) {
  Jobs J = {(const KernelPlan *const *)plans, n, 0, 0, t->ngpus, t, NULL, NULL, NULL, NULL, 0};
  J.kernels = codegen_share_bodies(plans, n, t->cpu, t->gpus, t->ngpus, err, errlen);
  if (J.kernels < 0) return -1;
  J.nparts = (J.kernels + PART_KERNELS - 1) / PART_KERNELS;
  J.nparts = J.nparts < 1 ? 1 : J.nparts > MAX_PARTS ? MAX_PARTS : J.nparts;
  int njobs = J.ngpus + J.nparts;
  J.objs = xcalloc((size_t)J.nparts, sizeof *J.objs);
  J.gpu = xcalloc((size_t)(J.ngpus ? J.ngpus : 1), sizeof *J.gpu);
  J.err = xcalloc((size_t)njobs, sizeof *J.err);
  J.rc = xcalloc((size_t)njobs, sizeof *J.rc);
  int rc = run_jobs(&J, codegen_threads(t->jobs), err, errlen);
  for (int i = 0; i < J.ngpus; i++) {
    GpuCode *gc = &b->gpu[b->ngpus++];
    gc->target = t->gpus[i];
    if (rc == 0) rc = gpu_finish(gc, J.gpu[i], err, errlen);
    else free(J.gpu[i].data);
  }
  if (rc == 0) rc = host_link(b, J.objs, J.nparts, err, errlen);
  for (int p = 0; p < J.nparts; p++) free(J.objs[p].data);
  free(J.objs);
  free(J.gpu);
  free(J.err);
  free(J.rc);
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
