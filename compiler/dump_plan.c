// dump_plan.c: a kernel plan as text and as DOT: each kernel's ops and the
// model-file lines they came from (`smelt explain`, `smelt dump
// --stage=fused`), and the graph clustered by kernel (`smelt graph --dot
// --fused`). Below both explain.c and pipeline.c, which print plans.
#include "compiler.h"

#include <stdlib.h>
#include <string.h>

// The nodes a kernel computes: its outputs and everything fused into them.
typedef struct {
  const Node **nodes;
  int n;
} Members;

static void add_members(const KernelPlan *p, const Node *x, bool top, Members *m) {
  if (!top && p->slot[x->id] >= 0) return;
  for (int i = 0; i < m->n; i++)
    if (m->nodes[i] == x) return;
  m->nodes[m->n++] = x;
  for (int s = 0; s < x->nsrc; s++) add_members(p, x->src[s], false, m);
}

static void print_loc_list(FILE *out, const Graph *g, const Members *m) {
  int seen_file[16], seen_line[16], n = 0;
  for (int i = 0; i < m->n && n < 16; i++) {
    Span loc = m->nodes[i]->loc;
    if (loc.file < 0 || !g->diag || loc.file >= g->diag->nfiles) continue;
    int line, col;
    diag_line_col(g->diag->files[loc.file], loc.begin, &line, &col);
    bool dup = false;
    for (int k = 0; k < n; k++) dup |= seen_file[k] == loc.file && seen_line[k] == line;
    if (!dup) seen_file[n] = loc.file, seen_line[n++] = line;
  }
  for (int i = 0; i < n; i++) {   // sorted by file, then line, for reading
    for (int j = i + 1; j < n; j++)
      if (seen_file[j] < seen_file[i] || (seen_file[j] == seen_file[i] && seen_line[j] < seen_line[i])) {
        int f = seen_file[i], l = seen_line[i];
        seen_file[i] = seen_file[j], seen_line[i] = seen_line[j];
        seen_file[j] = f, seen_line[j] = l;
      }
  }
  for (int i = 0; i < n; i++) {
    const char *path = g->diag->files[seen_file[i]]->path, *base = strrchr(path, '/');
    bool same = i > 0 && seen_file[i - 1] == seen_file[i];
    if (same) fprintf(out, ",%d", seen_line[i]);
    else fprintf(out, "%s%s:%d", i ? " " : "", base ? base + 1 : path, seen_line[i]);
  }
}

static void print_ops(FILE *out, const Members *m) {
  int count[OP_COUNT] = {0};
  for (int i = 0; i < m->n; i++)
    if (!node_is_folded(m->nodes[i]) || m->n == 1) count[m->nodes[i]->op]++;
  bool first = true;
  for (int op = 0; op < OP_COUNT; op++)
    if (count[op]) {
      char name[24];
      snprintf(name, sizeof name, "%s", op_name((Op)op));
      for (char *c = name; *c; c++) *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
      fprintf(out, "%s%s", first ? "" : " ", name);
      if (count[op] > 1) fprintf(out, "x%d", count[op]);
      first = false;
    }
}

void kernel_describe(FILE *out, const Graph *g, const KernelPlan *p, const Kernel *kn) {
  Members m = {xmalloc(sizeof(Node *) * (size_t)(g->n ? g->n : 1)), 0};
  for (int o = 0; o < kn->nouts; o++) add_members(p, kn->outs[o], true, &m);
  fputs("      ops: ", out);
  print_ops(out, &m);
  fputs("\n      from: ", out);
  print_loc_list(out, g, &m);
  fputc('\n', out);
  free(m.nodes);
}

void dump_graph_dot_fused(FILE *out, const Graph *g, const KernelPlan *p) {
  fputs("digraph smelt {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n", out);
  // each node drawn once, in the first kernel that computes it
  int *home = xmalloc(sizeof(int) * (size_t)(g->n ? g->n : 1));
  for (int i = 0; i < g->n; i++) home[i] = -1;
  Members m = {xmalloc(sizeof(Node *) * (size_t)(g->n ? g->n : 1)), 0};
  for (int k = 0; k < p->n; k++) {
    m.n = 0;
    for (int o = 0; o < p->kernels[k].nouts; o++) add_members(p, p->kernels[k].outs[o], true, &m);
    for (int i = 0; i < m.n; i++)
      if (home[m.nodes[i]->id] < 0) home[m.nodes[i]->id] = k;
  }
  for (int k = -1; k < p->n; k++) {
    if (k >= 0) fprintf(out, "  subgraph cluster_k%d {\n    label=\"#%d %s\";\n    style=filled; fillcolor=\"#f4f4f4\";\n", k, k,
                        p->kernels[k].name);
    for (int i = 0; i < g->n; i++) {
      const Node *n = g->nodes[i];
      if (home[i] != k) continue;
      char ty[96];
      bool stored = p->slot[i] >= 0;
      fprintf(out, "  %sn%d [label=\"%s%s%s\\n%s\"%s];\n", k >= 0 ? "  " : "", n->id, op_name(n->op), n->name ? " " : "",
              n->name ? n->name : "", type_str(ty, sizeof ty, n->dtype, &n->shape),
              n->op == OP_PARAM || n->op == OP_STATE ? ", style=filled, fillcolor=\"#e8f0ff\""
              : n->op == OP_INPUT                    ? ", style=filled, fillcolor=\"#e8ffe8\""
              : stored                               ? ", penwidth=2"
                                                     : ", style=dashed");
    }
    if (k >= 0) fputs("  }\n", out);
  }
  for (int i = 0; i < g->n; i++)
    for (int k = 0; k < g->nodes[i]->nsrc; k++) {
      const Node *x = g->nodes[i]->src[k];
      bool crosses = p->slot[x->id] >= 0 && home[x->id] != home[i];
      fprintf(out, "  n%d -> n%d%s;\n", x->id, g->nodes[i]->id, crosses ? " [color=\"#c03030\"]" : "");
    }
  for (int i = 0; i < g->noutputs; i++)
    fprintf(out, "  out%d [label=\"%s\", shape=ellipse];\n  n%d -> out%d;\n", i, g->outputs[i].name, g->outputs[i].node->id, i);
  fputs("}\n", out);
  free(m.nodes);
  free(home);
}
