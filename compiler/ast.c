// ast.c: AST nodes, node lists and names for kinds and operators.
#include "compiler.h"

#include <string.h>

static const char *kind_names[] = {
#define X(k) #k,
    AST_KINDS(X)
#undef X
};

const char *ast_kind_name(AstKind k) {
  ASSERT(k >= 0 && k < N_COUNT);
  return kind_names[k];
}

const char *ast_op_name(int op) {
  switch (op) {
  case '+': return "+";
  case '-': return "-";
  case '*': return "*";
  case '/': return "/";
  case '%': return "%";
  case '@': return "@";
  case '<': return "<";
  case '>': return ">";
  case AOP_POW: return "**";
  case AOP_FLOORDIV: return "//";
  case AOP_EQ: return "==";
  case AOP_NE: return "!=";
  case AOP_LE: return "<=";
  case AOP_GE: return ">=";
  case AOP_AND: return "and";
  case AOP_OR: return "or";
  case AOP_NOT: return "not";
  }
  UNREACHABLE();
}

void astlist_push(Arena *a, AstList *l, Ast *n) {
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 4;
    Ast **items = arena_alloc(a, sizeof(Ast *) * (size_t)cap);
    if (l->n) memcpy(items, l->items, sizeof(Ast *) * (size_t)l->n);
    l->items = items;
    l->cap = cap;
  }
  l->items[l->n++] = n;
}

Ast *ast_new(Parser *p, AstKind k, Span at) {
  Ast *n = arena_alloc(p->arena, sizeof *n);
  n->kind = k;
  n->span = at;
  n->depth = 1;
  return n;
}

static int depth_of(const Ast *n) { return n ? n->depth : 0; }

Ast *ast_finish(Parser *p, Ast *n) {
  int d = depth_of(n->a);
  if (depth_of(n->b) > d) d = depth_of(n->b);
  if (depth_of(n->c) > d) d = depth_of(n->c);
  for (int i = 0; i < n->list.n; i++)
    if (depth_of(n->list.items[i]) > d) d = depth_of(n->list.items[i]);
  n->depth = d + 1;
  if (n->depth <= AST_MAX_DEPTH) return n;
  if (!p->depth_reported) {
    p->depth_reported = true;
    p->syntax_errors++;
    diag_error(p->diag, n->span, "expression is nested too deeply (the limit is %d levels)",
               AST_MAX_DEPTH);
  }
  return ast_new(p, N_ERROR, n->span);
}
