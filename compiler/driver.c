// driver.c: the front end's stages run in order for one compilation.
//
// check_modules: resolve every loaded module, then elaborate each entry file's
// model into its training step (or forward graph when it has no loss) so that
// shape and dtype errors are found too. What `smelt check` and the tests run.
#include "compiler.h"

#include <stdlib.h>
#include <string.h>

int training_step(Compilation *c, Module *m, Graph *g) {
  if (!g->loss) {
    diag_plain(&c->diag, "%s: the model has no loss, so it has no gradients", m->path);
    return -1;
  }
  int precision = entry_precision(c, m);
  if (m->train) {
    TrainConfig cfg = *m->train;
    cfg.precision = (Precision)precision;
    if (optim_append(g, &cfg, cfg.steps)) return -1;
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

int check_modules(Compilation *c, Module **entries, int nentries, const Define *defs, int ndefs) {
  for (int i = 0; i < c->nmodules; i++) resolve_module(c, c->modules[i]);
  if (c->diag.errors) return c->diag.errors;
  for (int i = 0; i < nentries; i++) {
    Module *m = entries[i];
    if (!m->model) continue;
    Graph g;
    graph_init(&g, &c->arena, &c->diag);
    if (elaborate(c, m, defs, ndefs, true, &g) == 0 && g.loss) training_step(c, m, &g);
    graph_free(&g);
  }
  return c->diag.errors;
}

int entry_precision(const Compilation *c, const Module *m) {
  return c->precision >= 0 ? c->precision : m->train ? (int)m->train->precision : PREC_FP32;
}

int entry_graph(Compilation *c, Module *m, const Define *defs, int ndefs, const char *entry, Graph *g,
                const GraphOptions *o) {
  bool train = !strcmp(entry, "train_step"), infer = !strcmp(entry, "infer");
  if (!train && !infer && strcmp(entry, "eval")) {
    diag_plain(&c->diag, "unknown entry point '%s' (train_step, eval or infer)", entry);
    return -1;
  }
  if (elaborate(c, m, defs, ndefs, train, g)) return -1;
  if (train && (!m->train || !g->loss)) {
    diag_plain(&c->diag, "%s: no train_step entry: the model needs a loss and a train block", m->path);
    return -1;
  }
  int precision = entry_precision(c, m);
  pass_precision(g, precision);
  if (train && training_step(c, m, g)) return -1;
  if (!train && precision == PREC_TF32) pass_precision_tf32(g);
  if (infer) {   // the outputs without the loss, so labels are not needed
    int k = 0;
    for (int i = 0; i < g->noutputs; i++)
      if (g->outputs[i].node != g->loss) g->outputs[k++] = g->outputs[i];
    g->noutputs = k;
    g->loss = NULL;
    graph_prune(g);
  }
  pass_simplify(g, o ? o->simplified : NULL);
  if (train) pass_remat(g, g->loss->id + 1, o && o->remat, o ? o->remat_stats : NULL);   // the backward pass follows the loss
  pass_conv_gemm(g);
  pass_matmul_operands(g);
  return 0;
}

const char *entry_prefix(const char *entry) {
  return !strcmp(entry, "train_step") ? "train_" : !strcmp(entry, "eval") ? "eval_" : "infer_";
}
