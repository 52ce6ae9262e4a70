// bench_elab.c: how long the front end takes to build a training step.
//
// Parses, resolves, elaborates and differentiates examples/gpt.smelt at GPT-2
// small's sizes (12 layers, 768 wide, 12 heads, vocabulary 50257, context
// 1024) and appends the AdamW update, repeated; prints the median and the
// graph's size. The bound to meet on these machines is 200 ms.
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench.h"
#include "compiler.h"

int main(void) {
  Define defs[] = {{"B", 8}, {"T", 1024}, {"V", 50257}, {"C", 768}, {"L", 12}, {"H", 12}};
  enum { RUNS = 15 };
  double t[RUNS];
  int nodes = 0, fwd = 0, params = 0;
  for (int r = 0; r < RUNS; r++) {
    double t0 = bench_now();
    Compilation c;
    compilation_init(&c, stderr);
    compilation_default_search(&c, NULL);
    Module *m = module_load_file(&c, "examples/gpt.smelt");
    for (int i = 0; i < c.nmodules; i++) resolve_module(&c, c.modules[i]);
    Graph g;
    graph_init(&g, &c.arena, &c.diag);
    if (c.diag.errors || elaborate(&c, m, defs, 6, true, &g) || !m->train) return 1;
    fwd = g.n;
    if (optim_append(&g, m->train, 3000)) return 1;
    t[r] = bench_now() - t0;
    nodes = g.n;
    params = 0;
    for (int i = 0; i < g.n; i++) params += g.nodes[i]->op == OP_PARAM;
    graph_free(&g);
    compilation_free(&c);
  }
  double med = bench_median(t, RUNS);
  printf("| benchmark | median | bound | graph |\n|---|---|---|---|\n");
  printf("| GPT-2 small training step: parse, elaborate, differentiate, AdamW | %.1f ms | 200 ms | "
         "%d params, %d forward nodes, %d in all |\n", med * 1e3, params, fwd, nodes);
  return med < 0.2 ? 0 : 1;
}
