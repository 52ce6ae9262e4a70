// bisect.c: `smelt bisect`: the first kernel that disagrees with the reference
// interpreter.
//
// The entry's schedule runs on a device one kernel at a time, on random
// inputs and the ingot's initial weights; after each kernel, its outputs are
// compared with what the interpreter computes for the same nodes of the same
// graph. The first kernel whose output is out of tolerance (integers and
// bools exactly; floats by ||kernel - interp|| <= tol ||interp|| +
// 0.1 tol sqrt(n), tol 1e-4 for f32 and 1e-2 for f16 and bf16) is named with
// its ops and model-file lines. Later kernels read what the device computed,
// so an error is found where it starts, not where it grows.
#include "compiler.h"
#include "ingot.h"
#include "runtime.h"
#include "smelt.h"
#include "tools.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static double uniform(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (double)(rng >> 11) / 9007199254740992.0;
}

// Within tolerance; *rel: the relative error (or the share of wrong integers).
static bool agrees(DType t, const double *got, const double *want, int64_t n, double *rel) {
  if (!dtype_is_float(t)) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += got[i] != want[i];
    *rel = n ? (double)bad / (double)n : 0;
    return bad == 0;
  }
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double g = got[i], w = want[i];
    if (isnan(g) || isnan(w)) {
      num += isnan(g) && isnan(w) ? 0 : INFINITY;
      continue;
    }
    num += (g - w) * (g - w);
    den += w * w;
  }
  double tol = t == DT_F32 ? 1e-4 : 1e-2;
  *rel = den > 0 ? sqrt(num / den) : sqrt(num);
  return sqrt(num) <= tol * sqrt(den) + 0.1 * tol * sqrt((double)n);
}

// Whether launch l runs over kernel k's buffers and range.
static bool launch_is(const smelt_ingot *ig, const IngotLaunch *l, const Kernel *k) {
  if (l->nbufs != (uint32_t)k->nbufs || l->count != (uint64_t)k->count) return false;
  for (int b = 0; b < k->nbufs; b++)
    if (ig->launch_bufs[l->first_buf + (uint32_t)b] != (uint32_t)k->bufs[b]) return false;
  return true;
}

static int fail(Compilation *c, const char *msg) {
  diag_plain(&c->diag, "%s", msg);
  return 1;
}

int bisect_run(Compilation *c, Module *m, const Define *defs, int ndefs, const char *ingot, const BisectOptions *o) {
  Entry en;
  if (pipeline_entry(c, m, o->entry, &(EntryOptions){defs, ndefs, .last = PASS_KERNELS, .remat = o->remat, .fusion = o->fusion,
                                                      .tile_columns = o->tile_columns}, &en))
    return entry_free(&en), 1;
  Graph g = en.g;   // moved out of en: freed below
  KernelPlan p = en.plan;
  int rc = 1;
  smelt_ingot *ig = NULL;
  smelt_session *s = NULL;
  double **leaves = xcalloc((size_t)g.n + 1, sizeof *leaves);
  InterpResult r = {0};
  char err[512];
  if (tools_ingot_open(ingot, &ig) || smelt_session_new(ig, o->device, 0, &s)) {
    fail(c, smelt_last_error());
    goto done;
  }
  const IngotEntry *e = ingot_entry(ig, o->entry);
  if (!e || e->nlaunches != (uint32_t)p.n || e->nslots != (uint32_t)p.nslots) {
    fail(c, "the ingot's kernels are not those its model file gives now (rebuild it)");
    goto done;
  }
  // a launch may run a body another kernel's name gives (kernels alike but
  // for their buffers share one): its buffers and range must be the plan's
  for (int k = 0; k < p.n; k++)
    if (!launch_is(ig, &ig->launches[e->first_launch + k], &p.kernels[k])) {
      snprintf(err, sizeof err, "the ingot's kernel %d (%s) is not %s, which the model file gives now (rebuild it)", k,
               ingot_str(ig, ig->launches[e->first_launch + k].symbol), p.kernels[k].name);
      fail(c, err);
      goto done;
    }
  Device *d = session_device(s);
  if (session_entry_ready(s, e) != SMELT_OK) {
    fail(c, smelt_last_error());
    goto done;
  }
  // leaves: random inputs (floats in [-1, 1), integers 0 or 1: valid ids and
  // labels for any model), the ingot's initial parameters and state
  for (int i = 0; i < g.n; i++) {
    Node *n = g.nodes[i];
    if (n->op != OP_INPUT && n->op != OP_PARAM && n->op != OP_STATE) continue;
    int64_t cnt = shape_numel(&n->shape);
    size_t bytes = (size_t)cnt * (size_t)dtype_size(n->dtype);
    char *host = xmalloc(bytes ? bytes : 1);
    uint32_t t = ig->slots[e->first_slot + (uint32_t)p.slot[i]];
    leaves[i] = xmalloc(sizeof(double) * (size_t)(cnt ? cnt : 1));
    if (n->op == OP_INPUT) {
      for (int64_t k = 0; k < cnt; k++) leaves[i][k] = dtype_is_float(n->dtype) ? 2 * uniform() - 1 : uniform() < 0.5;
      dtype_from_doubles(n->dtype, leaves[i], host, cnt);
      d->copy_in(d, session_tensor(s, e, t), host, bytes);
    } else {
      d->copy_out(d, host, session_tensor(s, e, t), bytes);
    }
    dtype_to_doubles(n->dtype, host, leaves[i], cnt);   // the values as stored
    free(host);
  }
  if (interp_run(&g, leaves, o->seed, o->step, &r, err, sizeof err)) {
    fail(c, err);
    goto done;
  }
  printf("%s: entry %s, %d kernels on %s against the interpreter\n", m->path, o->entry, p.n, smelt_session_device(s));
  for (int k = 0; k < p.n; k++) {
    const Kernel *kn = &p.kernels[k];
    if (session_launch(s, e, (uint32_t)k, o->seed, o->step) != SMELT_OK) {
      printf("#%d %s: FAILED to run: %s\n", k, kn->name, smelt_last_error());
      kernel_describe(stdout, &g, &p, kn);
      goto done;
    }
    for (int j = 0; j < kn->nouts; j++) {
      const Node *n = kn->outs[j];
      int64_t cnt = shape_numel(&n->shape);
      size_t bytes = (size_t)cnt * (size_t)dtype_size(n->dtype);
      char *host = xmalloc(bytes ? bytes : 1);
      double *got = xmalloc(sizeof(double) * (size_t)(cnt ? cnt : 1));
      d->copy_out(d, host, session_tensor(s, e, ig->slots[e->first_slot + (uint32_t)p.slot[n->id]]), bytes);
      dtype_to_doubles(n->dtype, host, got, cnt);
      double rel;
      bool ok = agrees(n->dtype, got, r.vals[n->id], cnt, &rel);
      free(host);
      free(got);
      if (!ok) {
        char ty[96];
        printf("#%d %s is the first kernel that diverges: %%%d %s %s differs from the interpreter by %.3g (relative)\n", k,
               kn->name, n->id, op_name(n->op), type_str(ty, sizeof ty, n->dtype, &n->shape), rel);
        kernel_describe(stdout, &g, &p, kn);
        goto done;
      }
    }
  }
  printf("all %d kernels agree with the interpreter\n", p.n);
  rc = 0;
done:
  interp_free(&r);
  for (int i = 0; i < g.n; i++) free(leaves[i]);
  free(leaves);
  smelt_session_free(s);
  smelt_ingot_close(ig);
  kernel_plan_free(&p);
  graph_free(&g);
  return rc;
}
