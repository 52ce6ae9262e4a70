// dump_graph.c: the op graph as text and as Graphviz DOT.
//
// Text: one line per node in evaluation order,
//   %7 = matmul(%3, %5) : f32[128, 256]    fc1  mlp.smelt:7
// then the named outputs and the persistent updates. DOT: one box per node,
// clustered by the call scope it was built in, so a layer reads as a unit.
#include "compiler.h"

#include <stdlib.h>
#include <string.h>

static void put_dims(FILE *out, const char *label, const int64_t *v, int n) {
  fputs(label, out);
  for (int i = 0; i < n; i++) fprintf(out, "%s%lld", i ? "," : "", (long long)v[i]);
}

static void put_attrs(FILE *out, const Node *n) {
  switch (n->op) {
  case OP_CONST: fprintf(out, " %.9g", n->p.value); break;
  case OP_SUM: case OP_RMAX: case OP_ARGMAX: {
    fputs(" axes=", out);
    const char *sep = "";
    for (int i = 0; i < MAX_DIMS; i++)
      if (n->p.axes & (1u << i)) fprintf(out, "%s%d", sep, i), sep = ",";
    break;
  }
  case OP_MATMUL:
    if (n->p.matmul.ta) fputs(" ta", out);
    if (n->p.matmul.tb) fputs(" tb", out);
    break;
  case OP_IM2COL: case OP_COL2IM:
    fprintf(out, " kernel=%d,%d", n->p.conv.kernel[0], n->p.conv.kernel[1]);
    /* fall through */
  case OP_CONV2D: case OP_CONV2D_DX: case OP_CONV2D_DW:
    fprintf(out, " stride=%d,%d pad=%d,%d dil=%d,%d groups=%d", n->p.conv.stride[0],
            n->p.conv.stride[1], n->p.conv.pad[0], n->p.conv.pad[1], n->p.conv.dil[0],
            n->p.conv.dil[1], n->p.conv.groups);
    break;
  case OP_POOL_MAX: case OP_POOL_AVG: case OP_POOL_MAX_DX: case OP_POOL_AVG_DX:
    fprintf(out, " kernel=%d,%d stride=%d,%d pad=%d,%d", n->p.pool.kernel[0], n->p.pool.kernel[1],
            n->p.pool.stride[0], n->p.pool.stride[1], n->p.pool.pad[0], n->p.pool.pad[1]);
    break;
  case OP_PERMUTE:
    fputs(" perm=", out);
    for (int i = 0; i < n->shape.ndim; i++) fprintf(out, "%s%d", i ? "," : "", n->p.perm[i]);
    break;
  case OP_SLICE:
    put_dims(out, " start=", n->p.slice.start, n->shape.ndim);
    put_dims(out, " step=", n->p.slice.step, n->shape.ndim);
    break;
  case OP_PAD:
    put_dims(out, " lo=", n->p.pad.lo, n->shape.ndim);
    put_dims(out, " hi=", n->p.pad.hi, n->shape.ndim);
    if (n->p.pad.value != 0) fprintf(out, " value=%g", n->p.pad.value);
    break;
  case OP_CONCAT: fprintf(out, " axis=%d", n->p.axis); break;
  case OP_LABEL:
    fprintf(out, " classes=%lld", (long long)n->p.label.n);
    if (n->p.label.skips) fprintf(out, " ignore=%lld", (long long)n->p.label.skip);
    break;
  case OP_ATTENTION: case OP_ATTENTION_DQ: case OP_ATTENTION_DKV:
    fprintf(out, " scale=%.9g%s", n->p.attn.scale, n->p.attn.causal ? " causal" : "");
    if (n->p.attn.dropout > 0) fprintf(out, " dropout=%g", n->p.attn.dropout);
    break;
  case OP_INPUT: case OP_PARAM: case OP_STATE: case OP_IOTA: case OP_RANDOM:
  case OP_RESHAPE: case OP_BROADCAST: case OP_GATHER: case OP_SCATTER_ADD:
#define OP(...)
#define UNARY(name, ...) case OP_##name:   // every pointwise op
#define BINARY(name, ...) case OP_##name:
#define COMPARE(name, ...) case OP_##name:
#define SELECT(name, ...) case OP_##name:
#include "ops.def"
  case OP_COUNT:
    break;   // no attributes
  }
}

static void put_loc(FILE *out, const Graph *g, Span loc) {
  if (loc.file < 0 || !g->diag || loc.file >= g->diag->nfiles) return;
  const Source *s = g->diag->files[loc.file];
  int line, col;
  diag_line_col(s, loc.begin, &line, &col);
  const char *base = strrchr(s->path, '/');
  fprintf(out, "  %s:%d", base ? base + 1 : s->path, line);
}

void dump_graph(FILE *out, const Graph *g) {
  for (int i = 0; i < g->n; i++) {
    const Node *n = g->nodes[i];
    char ty[96];
    fprintf(out, "%%%d = %s", n->id, op_name(n->op));
    if (n->name) fprintf(out, " \"%s\"", n->name);
    if (n->nsrc) {
      fputc('(', out);
      for (int k = 0; k < n->nsrc; k++) fprintf(out, "%s%%%d", k ? ", " : "", n->src[k]->id);
      fputc(')', out);
    }
    put_attrs(out, n);
    fprintf(out, " : %s", type_str(ty, sizeof ty, n->dtype, &n->shape));
    if (*n->scope) fprintf(out, "  %s", n->scope);
    put_loc(out, g, n->loc);
    fputc('\n', out);
  }
  for (int i = 0; i < g->noutputs; i++)
    fprintf(out, "output %s = %%%d\n", g->outputs[i].name, g->outputs[i].node->id);
  for (int i = 0; i < g->nupdates; i++)
    fprintf(out, "update %s = %%%d\n", g->updates[i].target->name, g->updates[i].value->id);
}

// DOT identifiers for clusters: scope names with dots are quoted.
void dump_graph_dot(FILE *out, const Graph *g) {
  fputs("digraph smelt {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n", out);
  // scopes in first-seen order; nodes of one scope in one cluster
  const char **scopes = xcalloc((size_t)g->n + 1, sizeof *scopes);
  int nscopes = 0;
  for (int i = 0; i < g->n; i++) {
    const char *s = g->nodes[i]->scope;
    bool seen = false;
    for (int k = 0; k < nscopes && !seen; k++) seen = !strcmp(scopes[k], s);
    if (!seen) scopes[nscopes++] = s;
  }
  for (int k = 0; k < nscopes; k++) {
    bool cluster = *scopes[k] != '\0';
    if (cluster) fprintf(out, "  subgraph \"cluster_%s\" {\n    label=\"%s\";\n", scopes[k], scopes[k]);
    for (int i = 0; i < g->n; i++) {
      const Node *n = g->nodes[i];
      if (strcmp(n->scope, scopes[k])) continue;
      char ty[96];
      fprintf(out, "%s  n%d [label=\"%s%s%s\\n%s\"%s];\n", cluster ? "  " : "", n->id,
              op_name(n->op), n->name ? " " : "", n->name ? n->name : "",
              type_str(ty, sizeof ty, n->dtype, &n->shape),
              n->op == OP_PARAM ? ", style=filled, fillcolor=\"#e8f0ff\"" :
              n->op == OP_INPUT ? ", style=filled, fillcolor=\"#e8ffe8\"" : "");
    }
    if (cluster) fputs("  }\n", out);
  }
  for (int i = 0; i < g->n; i++)
    for (int k = 0; k < g->nodes[i]->nsrc; k++)
      fprintf(out, "  n%d -> n%d;\n", g->nodes[i]->src[k]->id, g->nodes[i]->id);
  for (int i = 0; i < g->noutputs; i++)
    fprintf(out, "  out%d [label=\"%s\", shape=ellipse];\n  n%d -> out%d;\n", i,
            g->outputs[i].name, g->outputs[i].node->id, i);
  fputs("}\n", out);
  free(scopes);
}
