// summary.c: what a checked file declares, in a few lines (smelt check --summary).
#include "compiler.h"

#include <string.h>

static int count_kind(const Ast *block, AstKind k) {
  int n = 0;
  for (int i = 0; i < block->list.n; i++) n += block->list.items[i]->kind == k;
  return n;
}

// An expression as the user wrote it: its bytes in the source.
static void print_as_written(FILE *out, const Source *src, const Ast *e) {
  if (src && e->span.begin >= 0 && e->span.end <= src->len && e->span.begin < e->span.end)
    fprintf(out, "%.*s", e->span.end - e->span.begin, src->text + e->span.begin);
  else dump_expr(out, e);
}

static void print_model(FILE *out, const Source *src, const Ast *model) {
  fprintf(out, "  model %s(", model->name);
  for (int i = 0; i < model->list.n; i++) {
    const Ast *s = model->list.items[i];
    fprintf(out, "%s%s", i ? ", " : "", s->name);
    if (s->a) {
      fputs(" = ", out);
      print_as_written(out, src, s->a);
    }
  }
  fputs(")\n", out);
  const AstList *body = &model->b->list;
  const char *heads[] = {"inputs", "params", "buffers", "outputs"};
  const AstKind kinds[] = {N_INPUT, N_PARAM, N_BUFFER, N_OUTPUT};
  for (int h = 0; h < 4; h++) {
    if (!count_kind(model->b, kinds[h])) continue;
    fprintf(out, "  %s:", heads[h]);
    bool first = true;
    for (int i = 0; i < body->n; i++) {
      const Ast *s = body->items[i];
      if (s->kind != kinds[h]) continue;
      fprintf(out, "%s %s", first ? "" : ",", s->name);
      if (s->a) {
        fputs(": ", out);
        print_as_written(out, src, s->a);
      }
      first = false;
    }
    fputc('\n', out);
  }
  fprintf(out, "  loss: %s\n", count_kind(model->b, N_LOSS) ? "yes" : "none (inference only)");
}

static void print_train(FILE *out, const Source *src, const TrainConfig *t) {
  fprintf(out, "  train: %s(lr = %g)", t->optimizer ? t->optimizer : "?", t->lr);
  if (t->schedule_expr && src) fprintf(out, ", schedule %.*s", t->schedule_span.end - t->schedule_span.begin,
                                       src->text + t->schedule_span.begin);
  else fprintf(out, ", %s schedule", t->schedule);
  if (t->warmup) fprintf(out, " after %lld warm-up steps", (long long)t->warmup);
  fprintf(out, ", %s", precision_name(t->precision));
  if (t->epochs) fprintf(out, ", %lld epoch%s", (long long)t->epochs, t->epochs == 1 ? "" : "s");
  if (t->steps) fprintf(out, ", %lld steps", (long long)t->steps);
  if (t->batch) fprintf(out, ", batch %lld", (long long)t->batch);
  fputc('\n', out);
  for (int i = 0; i < t->ndata; i++) {
    const DataSource *d = &t->data[i];
    fprintf(out, "  data %s: %s%s%s <- %s(\"%s\"%s%s%s)\n", d->split, d->inputs[0],
            d->ninputs > 1 ? ", " : "", d->ninputs > 1 ? d->inputs[1] : "", d->source,
            d->path ? d->path : "", d->columns ? ", columns = \"" : "", d->columns ? d->columns : "",
            d->columns ? "\"" : "");
  }
}

void summary_graph(FILE *out, const Graph *g, int forward_nodes) {
  int params = 0, buffers = 0, states = 0;
  int64_t values = 0;
  for (int i = 0; i < g->n; i++) {
    const Node *n = g->nodes[i];
    if (n->op == OP_PARAM) params++, values += shape_numel(&n->shape);
    // the forward graph's state leaves are buffers; the optimizer adds the rest
    if (n->op == OP_STATE) *(i < forward_nodes ? &buffers : &states) += 1;
  }
  fprintf(out, "  graph: %d parameters (%lld values)", params, (long long)values);
  if (buffers) fprintf(out, ", %d buffers", buffers);
  fprintf(out, ", %d ops forward", forward_nodes);
  if (g->n > forward_nodes)
    fprintf(out, ", %d in the training step (%d optimizer states)", g->n, states);
  fputc('\n', out);
}

// The settings of a group that differ from the optimizer's, "(lr = 0.0001)".
static void print_group_settings(FILE *out, const ParamGroup *grp, const TrainConfig *t) {
  const char *names[] = {"lr", "momentum", "beta1", "beta2", "eps", "weight_decay"};
  const double mine[] = {grp->lr, grp->momentum, grp->beta1, grp->beta2, grp->eps, grp->weight_decay};
  const double base[] = {t->lr, t->momentum, t->beta1, t->beta2, t->eps, t->weight_decay};
  int n = 0;
  for (int i = 0; i < 6; i++)
    if (mine[i] != base[i]) fprintf(out, "%s%s = %g", n++ ? ", " : " (", names[i], mine[i]);
  if (grp->nesterov != t->nesterov) fprintf(out, "%snesterov = %s", n++ ? ", " : " (", grp->nesterov ? "true" : "false");
  fputs(n ? ")" : " (the optimizer's settings)", out);
}

void summary_groups(FILE *out, const Graph *g, const TrainConfig *t) {
  if (!t || !t->ngroups) return;
  for (int j = 0; j <= t->ngroups; j++) {
    const ParamGroup *grp = j < t->ngroups ? &t->groups[j] : NULL;
    if (!grp) fputs("  other parameters (the optimizer's settings):", out);
    else if (grp->frozen) fprintf(out, "  frozen \"%s\":", grp->pattern);
    else fprintf(out, "  group \"%s\"", grp->pattern);
    if (grp && !grp->frozen) {
      print_group_settings(out, grp, t);
      fputc(':', out);
    }
    int n = 0;
    for (int i = 0; i < g->n; i++) {
      const Node *p = g->nodes[i];
      if (p->op == OP_PARAM && optim_group_of(t, p->name) == grp) fprintf(out, "%s %s", n++ ? "," : "", p->name);
    }
    fputs(n ? "\n" : " none\n", out);
  }
}

void summary_print(FILE *out, const Module *m, const Diag *d) {
  int fns = 0, imported = 0;
  for (int i = 0; i < m->ast->list.n; i++) fns += m->ast->list.items[i]->kind == N_FN;
  for (int i = 0; i < m->nimports; i++)
    if (m->imports[i] && m->imports[i]->ast)
      for (int j = 0; j < m->imports[i]->ast->list.n; j++)
        imported += m->imports[i]->ast->list.items[j]->kind == N_FN;
  fprintf(out, "%s: ok\n", m->path);
  fprintf(out, "  functions: %d defined here, %d imported from %d module%s\n", fns, imported,
          m->nimports, m->nimports == 1 ? "" : "s");
  const Source *src = d && m->file >= 0 && m->file < d->nfiles ? d->files[m->file] : NULL;
  if (m->model) print_model(out, src, m->model);
  if (m->train) print_train(out, src, m->train);
}
