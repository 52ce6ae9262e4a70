// pass_matmul.c: matmul operands laid out for the host's tiled matmul.
//
// The tiled kernel (codegen_host.c) broadcasts scalars of A and loads
// contiguous vectors of B's rows, so it needs both operands in buffers of
// their own and B not transposed. Copying a view or a transposed B once costs
// one pass over K x N values; the matmul it enables does M times more work.
//
//   matmul(a, view)            -> matmul(a, stored(view))
//   matmul(a, b, tb = true)    -> matmul(a, stored(permute(b, last two)))
#include "compiler.h"

#include <string.h>

// Moves the node at the end of g to position `at`, shifting the rest up.
static void move_last_to(Graph *g, int at) {
  Node *n = g->nodes[g->n - 1];
  memmove(&g->nodes[at + 1], &g->nodes[at], sizeof(Node *) * (size_t)(g->n - 1 - at));
  g->nodes[at] = n;
  for (int i = at; i < g->n; i++) g->nodes[i]->id = i;
}

void pass_matmul_operands(Graph *g) {
  const char *scope = g->scope;
  Span loc = g->loc;
  for (int i = 0; i < g->n; i++) {
    Node *mm = g->nodes[i];
    if (mm->op != OP_MATMUL || mm->dtype != DT_F32) continue;
    g->scope = mm->scope;
    g->loc = mm->loc;
    Node *a = mm->src[0], *b = mm->src[1];
    if (node_is_folded(a)) a->stored = true;
    if (mm->p.matmul.tb) {
      int nd = b->shape.ndim, perm[MAX_DIMS];
      for (int d = 0; d < nd; d++) perm[d] = d;
      perm[nd - 2] = nd - 1;
      perm[nd - 1] = nd - 2;
      Node *t = g_permute(g, b, perm);   // appended at the end
      move_last_to(g, mm->id);
      t->stored = true;
      mm->src[1] = t;
      mm->p.matmul.tb = false;
      i = mm->id;   // the matmul moved up by one
    } else if (node_is_folded(b)) {
      b->stored = true;
    }
  }
  g->scope = scope;
  g->loc = loc;
}
