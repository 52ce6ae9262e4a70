// explain.c: `smelt explain`: what the compiler did to an entry point.
//
// Every kernel in schedule order with its kind, its ops, the model-file lines
// they came from, bytes read and written and FLOPs; for every tensor a kernel
// reads from an earlier kernel, the rule that kept the two apart (the
// planner's StoreReason). A summary compares the chosen fusion mode with
// fusion off: kernels, bytes moved, peak arena. With --memory: the planned
// arena against the sum of all intermediates, the largest live set, and an
// SVG of buffer lifetimes (time across, arena offset down).
#include "compiler.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  int kernels;
  uint64_t moved, flops;
  uint64_t arena, intermediates;
} PlanStats;

// Lifetimes and offsets of a plan's arena (parameters and state live outside it).
// (Records in-place reuse in the plan, as the ingot writer does.)
static uint64_t plan_arena(const Graph *g, KernelPlan *p, MemBuf *b, bool *in, uint64_t *total) {
  return memplan_entry(g, p, b, in, 64, total);
}

static PlanStats plan_stats(const Graph *g, KernelPlan *p) {
  PlanStats st = {.kernels = p->n};
  for (int k = 0; k < p->n; k++) {
    uint64_t r, w, f;
    kernel_cost(p, &p->kernels[k], &r, &w, &f);
    st.moved += r + w;
    st.flops += f;
  }
  MemBuf *b = xmalloc(sizeof *b * (size_t)(p->nslots ? p->nslots : 1));
  bool *in = xcalloc((size_t)(p->nslots ? p->nslots : 1), sizeof *in);
  st.arena = plan_arena(g, p, b, in, &st.intermediates);
  free(b);
  free(in);
  return st;
}

void explain_stats(const Graph *g, KernelPlan *p, int *kernels, uint64_t *moved, uint64_t *arena,
                   uint64_t *intermediates) {
  PlanStats s = plan_stats(g, p);
  *kernels = s.kernels;
  *moved = s.moved;
  *arena = s.arena;
  *intermediates = s.intermediates;
}

static const char *kind_name(KernelKind k) {
  static const char *const names[] = {[KK_POINTWISE] = "pointwise", [KK_REDUCE] = "reduce", [KK_MATMUL] = "matmul",
                                      [KK_CONV] = "conv", [KK_POOL] = "pool", [KK_GATHER] = "gather",
                                      [KK_RANDOM] = "random", [KK_ATTN] = "attention", [KK_COPY] = "copy"};
  return (unsigned)k < sizeof names / sizeof *names && names[k] ? names[k] : "?";
}

typedef struct {
  const KernelPlan *p;
  const int *kernel_of;
  const Node *seen[64];
  int n;
  FILE *out;
  const Graph *g;
} Edges;

static void print_edge(void *ctx, const Node *x) {
  Edges *e = ctx;
  for (int i = 0; i < e->n; i++)
    if (e->seen[i] == x) return;
  if (e->n < 64) e->seen[e->n++] = x;
  int from = e->kernel_of[x->id];
  if (from < 0) return;   // a leaf: no kernel to fuse with
  char ty[96];
  fprintf(e->out, "      <- #%d %%%d %s %s: %s\n", from, x->id, op_name(x->op), type_str(ty, sizeof ty, x->dtype, &x->shape),
          store_reason_text((StoreReason)e->p->why[x->id]));
}

// What a kernel stores and how it computes: every value in f32 (rounded to
// its storage type as it would be stored), except a matmul's products,
// which take its operands' type and sum in f32.
static void print_types(FILE *out, const Kernel *kn) {
  fputs("      types: stores", out);
  for (int o = 0; o < kn->nouts; o++) {
    bool seen = false;
    for (int q = 0; q < o; q++) seen |= kn->outs[q]->dtype == kn->outs[o]->dtype;
    if (!seen) fprintf(out, "%s %s", o ? "," : "", dtype_name(kn->outs[o]->dtype));
  }
  const Node *n = kn->root;
  if (n->op == OP_MATMUL) {
    const char *t = n->tf32 ? "tf32" : dtype_name(n->src[0]->dtype);
    if (n->tf32 || n->src[0]->dtype != DT_F32)
      fprintf(out, "; computes %s x %s products, f32 sums (NVIDIA sm_80+: mma.sync %s)\n", t, t,
              n->tf32 ? "m16n8k8" : "m16n8k16");
    else
      fputs("; computes f32\n", out);
    return;
  }
  bool floats = false;
  for (int o = 0; o < kn->nouts; o++) floats |= dtype_is_float(kn->outs[o]->dtype);
  fputs(floats ? "; computes f32\n" : "; computes in integers\n", out);
}

static void print_kernels(FILE *out, const Graph *g, const KernelPlan *p) {
  int *kernel_of = xmalloc(sizeof(int) * (size_t)(g->n ? g->n : 1));
  for (int i = 0; i < g->n; i++) kernel_of[i] = -1;
  for (int k = 0; k < p->n; k++)
    for (int o = 0; o < p->kernels[k].nouts; o++) kernel_of[p->kernels[k].outs[o]->id] = k;
  for (int k = 0; k < p->n; k++) {
    const Kernel *kn = &p->kernels[k];
    uint64_t r, w, f;
    kernel_cost(p, kn, &r, &w, &f);
    char ty[96], a[32], b[32], c[32];
    fprintf(out, "#%-4d %s\n      %s %s", k, kn->name, kind_name(kn->kind), type_str(ty, sizeof ty, kn->root->dtype, &kn->root->shape));
    if (kn->nouts > 1) fprintf(out, ", %d outputs", kn->nouts);
    fprintf(out, "; reads %s, writes %s, %s\n", human_units(a, sizeof a, (double)r, "B"), human_units(b, sizeof b, (double)w, "B"),
            human_units(c, sizeof c, (double)f, "FLOP"));
    print_types(out, kn);
    kernel_describe(out, g, p, kn);
    Edges e = {p, kernel_of, {0}, 0, out, g};
    kernel_reads(p, kn, print_edge, &e);
  }
  free(kernel_of);
}

// ---- memory

static const char *node_label(char *buf, size_t n, const Graph *g, const Node *x) {
  for (int i = 0; i < g->noutputs; i++)
    if (g->outputs[i].node == x) return snprintf(buf, n, "%s", g->outputs[i].name), buf;
  if (x->name) return snprintf(buf, n, "%s", x->name), buf;
  char ty[96];
  snprintf(buf, n, "%%%d %s %s%s%s", x->id, op_name(x->op), type_str(ty, sizeof ty, x->dtype, &x->shape), *x->scope ? " in " : "",
           x->scope);
  return buf;
}

static void print_memory(FILE *out, const Graph *g, const KernelPlan *p, const MemBuf *b, const bool *in, uint64_t arena,
                         uint64_t total) {
  char a[32], c[32];
  fprintf(out, "\nmemory: peak arena %s, sum of all intermediates %s (%.2f)\n", human_units(a, sizeof a, (double)arena, "B"),
          human_units(c, sizeof c, (double)total, "B"), total ? (double)arena / (double)total : 0.0);
  int reused = 0;
  uint64_t reused_bytes = 0;
  for (int s = 0; s < p->nslots; s++)
    if (in[s] && b[s].reuses >= 0) reused++, reused_bytes += b[s].bytes;
  fprintf(out, "in place: %d outputs take over a dead input's bytes (%s)\n", reused, human_units(a, sizeof a, (double)reused_bytes, "B"));
  int peak_at = 0;
  uint64_t peak = 0;
  for (int t = 0; t < p->n; t++) {
    uint64_t live = 0;
    for (int s = 0; s < p->nslots; s++)
      if (in[s] && b[s].first <= t && t <= b[s].last) live += b[s].bytes;
    if (live > peak) peak = live, peak_at = t;
  }
  if (!p->n) return;
  fprintf(out, "largest live set: %s at #%d %s; the largest tensors live then:\n", human_units(a, sizeof a, (double)peak, "B"), peak_at,
          p->kernels[peak_at].name);
  bool *shown = xcalloc((size_t)(p->nslots ? p->nslots : 1), sizeof *shown);
  for (int i = 0; i < 8; i++) {
    int best = -1;
    for (int s = 0; s < p->nslots; s++)
      if (in[s] && !shown[s] && b[s].first <= peak_at && peak_at <= b[s].last && (best < 0 || b[s].bytes > b[best].bytes))
        best = s;
    if (best < 0) break;
    shown[best] = true;
    char label[192];
    fprintf(out, "  %10s  %s (live #%d..#%d)\n", human_units(a, sizeof a, (double)b[best].bytes, "B"),
            node_label(label, sizeof label, g, p->slot_node[best]), b[best].first < 0 ? 0 : b[best].first,
            b[best].last >= p->n ? p->n - 1 : b[best].last);
  }
  free(shown);
}

static void xml_text(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '<') fputs("&lt;", f);
    else if (*s == '>') fputs("&gt;", f);
    else if (*s == '&') fputs("&amp;", f);
    else fputc(*s, f);
  }
}

// Buffer lifetimes: launches across, arena offsets down; inputs green,
// results blue, temporaries grey; each rectangle's title names its tensor.
static int write_svg(const char *path, const Graph *g, const KernelPlan *p, const MemBuf *b, const bool *in, uint64_t arena,
                     char *err, size_t errlen) {
  char *tmp;
  FILE *f = atomic_open(path, &tmp, err, errlen);
  if (!f) return -1;
  const double W = 960, H = 540, L = 60, T = 30;
  double xs = (W - L - 10) / (p->n ? p->n : 1), ys = (H - T - 30) / (double)(arena ? arena : 1);
  fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"monospace\" font-size=\"11\">\n", W, H);
  fprintf(f, "<text x=\"%.0f\" y=\"18\">arena %llu bytes over %d launches (x: launch, y: offset)</text>\n", L,
          (unsigned long long)arena, p->n);
  fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#888\"/>\n", L, T, W - L - 10,
          H - T - 30);
  for (int s = 0; s < p->nslots; s++) {
    if (!in[s]) continue;
    const Node *x = p->slot_node[s];
    int first = b[s].first < 0 ? 0 : b[s].first, last = b[s].last >= p->n ? p->n - 1 : b[s].last;
    if (last < first) last = first;
    bool result = b[s].last >= p->n;
    const char *fill = x->op == OP_INPUT ? "#9fd89f" : result ? "#8fb4e8" : "#c8c8c8";
    fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\" stroke=\"#444\" stroke-width=\"0.3\"><title>",
            L + first * xs, T + (double)b[s].offset * ys, (last - first + 1) * xs, (double)b[s].bytes * ys > 0.5 ? (double)b[s].bytes * ys : 0.5,
            fill);
    char label[192];
    xml_text(f, node_label(label, sizeof label, g, x));
    fprintf(f, ": %llu bytes at %llu, #%d..#%d</title></rect>\n", (unsigned long long)b[s].bytes,
            (unsigned long long)b[s].offset, first, last);
  }
  fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">0</text><text x=\"%.0f\" y=\"%.0f\">%d</text>\n", L, H - 12, W - 40, H - 12, p->n);
  fputs("</svg>\n", f);
  return atomic_commit(f, tmp, path, true, err, errlen);
}

// ---- data parallelism

// What a data-parallel step all-reduces, from the train_grad entry: its
// grad.P outputs and the buffers it writes, as values and as bytes at their
// dtype. 0, or -1 after an error.
typedef struct {
  int64_t grad_values, buf_values;
  uint64_t grad_bytes, buf_bytes;
} Exchange;

static int exchanged(Compilation *c, Module *m, const Define *defs, int ndefs, FusionMode fusion, Exchange *x) {
  Entry e;
  int rc = pipeline_entry(c, m, "train_grad", &(EntryOptions){defs, ndefs, .last = PASS_AUTODIFF, .fusion = fusion}, &e);
  memset(x, 0, sizeof *x);
  for (int i = 0; rc == 0 && i < e.g.noutputs; i++) {
    const Node *v = e.g.outputs[i].node;
    if (strncmp(e.g.outputs[i].name, "grad.", 5)) continue;
    x->grad_values += shape_numel(&v->shape);
    x->grad_bytes += (uint64_t)shape_numel(&v->shape) * (uint64_t)dtype_size(v->dtype);
  }
  for (int i = 0; rc == 0 && i < e.g.nupdates; i++) {
    const Node *t = e.g.updates[i].target;
    x->buf_values += shape_numel(&t->shape);
    x->buf_bytes += (uint64_t)shape_numel(&t->shape) * (uint64_t)dtype_size(t->dtype);
  }
  entry_free(&e);
  return rc;
}

static double ring_seconds(int ranks, double bytes, double gbps) {
  return 2.0 * (ranks - 1) / ranks * bytes / (gbps * 1e9);
}

// One step on o->ranks ranks: the ring all-reduce's bandwidth term against
// the compute of the plan's FLOPs at o->tflops, and the scaling efficiency
// that predicts (the latency of the ring's 2(N-1) hops is left out).
static int print_ranks(FILE *out, Compilation *c, Module *m, const Define *defs, int ndefs, const ExplainOptions *o,
                       uint64_t flops) {
  Exchange x;
  if (exchanged(c, m, defs, ndefs, o->fusion, &x)) return -1;
  int n = o->ranks;
  double t_ar = ring_seconds(n, (double)(x.grad_bytes + x.buf_bytes), o->link_gbps);
  char a[32];
  fprintf(out, "data parallelism: %d ranks, all-reduce at %g GB/s per rank\n", n, o->link_gbps);
  // train_grad's gradients are f32 whatever the precision (optim.c)
  fprintf(out, "  all-reduced per step: %lld gradient values, %s (%s)", (long long)x.grad_values,
          human_units(a, sizeof a, (double)x.grad_bytes, "B"), x.grad_bytes == 4 * (uint64_t)x.grad_values ? "f32" : "at their dtypes");
  if (x.buf_values) fprintf(out, ", and %lld buffer values, %s", (long long)x.buf_values, human_units(a, sizeof a, (double)x.buf_bytes, "B"));
  fprintf(out, "\n  ring all-reduce: 2(N-1)/N * bytes / link = %.4g ms (the bandwidth term; the 2(N-1) hops' latency left out)\n",
          t_ar * 1e3);
  fprintf(out, "  compute per rank: %s per step (the plan's kernels: 2 FLOPs per multiply-add, 1 per elementwise op)",
          human_units(a, sizeof a, (double)flops, "FLOP"));
  if (o->tflops > 0) {
    double t_c = (double)flops / (o->tflops * 1e12), t = n > 1 ? t_c + t_ar : t_c;
    double hidden = n > 1 ? t_c / (t_c > t_ar ? t_c : t_ar) : 1.0;
    fprintf(out, " at %g TFLOP/s: %.4g ms\n", o->tflops, t_c * 1e3);
    fprintf(out, "  scaling efficiency: %.3f with the all-reduce after the backward pass (as smelt runs it), %.3f were it "
            "hidden behind the backward pass\n", t_c / t, hidden);
    fprintf(out, "  so %d ranks train %.2fx as many samples per second as one\n", n, n * t_c / t);
  } else {
    fprintf(out, "\n  (--tflops=X gives the efficiency; the all-reduce takes as long as the compute at %.4g TFLOP/s)\n",
            t_ar > 0 ? (double)flops / t_ar / 1e12 : 0.0);
  }
  // tools/dist.c's host exchange: every value as a double
  double host = (double)(x.grad_values + x.buf_values) * 8;
  fprintf(out, "  smelt's MPI exchange on the host sends doubles: %s, %.4g ms at this link\n", human_units(a, sizeof a, host, "B"),
          ring_seconds(n, host, o->link_gbps) * 1e3);
  return 0;
}

int explain_model(Compilation *c, Module *m, const Define *defs, int ndefs, const ExplainOptions *o, FILE *out) {
  int simplified[SIMP_COUNT] = {0};
  RematStats remat = {0};
  Entry en;
  EntryOptions eo = {defs, ndefs, .last = PASS_KERNELS, .remat = o->remat, .fusion = o->fusion, .simplified = simplified,
                     .remat_stats = &remat};
  int rc = pipeline_entry(c, m, o->entry, &eo, &en);
  if (rc) {
    entry_free(&en);
    return rc;
  }
  Graph g = en.g;   // moved out of en: freed below
  KernelPlan p = en.plan, none;
  kernel_plan(&g, entry_prefix(o->entry), 16, FUSION_NONE, &none);   // what fusion saves
  PlanStats s = plan_stats(&g, &p), s0 = plan_stats(&g, &none);
  char a[32], b[32], d[32], e[32];
  fprintf(out, "%s: entry %s, fusion %s, precision %s\n", m->path, o->entry, fusion_mode_name(o->fusion),
          precision_name((Precision)entry_precision(c, m)));
  fprintf(out, "  %-15s %8s %14s %14s %14s\n", "", "kernels", "bytes moved", "FLOPs", "peak arena");
  fprintf(out, "  fusion %-8s %8d %14s %14s %14s\n", fusion_mode_name(o->fusion), s.kernels, human_units(a, sizeof a, (double)s.moved, "B"),
          human_units(b, sizeof b, (double)s.flops, "FLOP"), human_units(d, sizeof d, (double)s.arena, "B"));
  fprintf(out, "  fusion %-8s %8d %14s %14s %14s\n", "none", s0.kernels, human_units(a, sizeof a, (double)s0.moved, "B"),
          human_units(b, sizeof b, (double)s0.flops, "FLOP"), human_units(e, sizeof e, (double)s0.arena, "B"));
  if (!strcmp(o->entry, "train_step")) summary_groups(out, &g, m->train);
  fputs("  simplified:", out);
  int any = 0;
  for (int r = 0; r < SIMP_COUNT; r++)
    if (simplified[r]) fprintf(out, "%s %d %s", any++ ? "," : "", simplified[r], simplify_rule_name(r));
  fprintf(out, "%s\n", any ? "" : " nothing");
  if (remat.values) {   // against the same entry without recomputation
    Entry e0;
    if (pipeline_entry(c, m, o->entry, &(EntryOptions){defs, ndefs, .last = PASS_KERNELS, .fusion = o->fusion}, &e0) == 0) {
      PlanStats s1 = plan_stats(&e0.g, &e0.plan);
      fprintf(out, "  recomputed: %d forward values (%s) in the backward pass, %s added; peak arena %s without\n",
              remat.values, human_units(a, sizeof a, (double)remat.bytes, "B"), human_units(b, sizeof b, (double)remat.flops, "FLOP"),
              human_units(d, sizeof d, (double)s1.arena, "B"));
    }
    entry_free(&e0);
  }
  fprintf(out, "  (%.2fx fewer kernels, %.2fx fewer bytes moved; intermediates sum to %s)\n\n",
          s.kernels ? (double)s0.kernels / s.kernels : 0.0, s.moved ? (double)s0.moved / (double)s.moved : 0.0,
          human_units(a, sizeof a, (double)s.intermediates, "B"));
  if (o->ranks && strcmp(o->entry, "train_step")) {
    diag_plain(&c->diag, "--ranks estimates a training step on several ranks, not the %s entry", o->entry);
    rc = -1;
  } else if (o->ranks && print_ranks(out, c, m, defs, ndefs, o, s.flops)) {
    rc = -1;
  }
  if (!o->memory && !o->ranks) print_kernels(out, &g, &p);
  if (o->memory || o->svg) {
    MemBuf *mb = xmalloc(sizeof *mb * (size_t)(p.nslots ? p.nslots : 1));
    bool *in = xcalloc((size_t)(p.nslots ? p.nslots : 1), sizeof *in);
    uint64_t total, arena = plan_arena(&g, &p, mb, in, &total);
    if (o->memory) print_memory(out, &g, &p, mb, in, arena, total);
    char err[512];
    if (o->svg && write_svg(o->svg, &g, &p, mb, in, arena, err, sizeof err)) {
      diag_plain(&c->diag, "%s", err);
      rc = -1;
    } else if (o->svg) {
      fprintf(out, "buffer lifetimes drawn in %s\n", o->svg);
    }
    free(mb);
    free(in);
  }
  kernel_plan_free(&p);
  kernel_plan_free(&none);
  graph_free(&g);
  return rc;
}
