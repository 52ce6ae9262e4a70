// dump_ast.c: the AST as text, for 'smelt dump --stage=ast' and for tests.
//
// Items and statements one per line, indented by block; expressions as
// S-expressions with the operator first: (+ a (* b c)), (call f x axis=1),
// (. x T), (index x (slice 1 _ _) ...). The output is deterministic.
#include "compiler.h"

#include <math.h>
#include <stdlib.h>

static void put_str(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
    else if (c == '\n') fputs("\\n", out);
    else if (c == '\t') fputs("\\t", out);
    else if (c < 0x20 || c == 0x7F) fprintf(out, "\\x%02X", c);
    else fputc(c, out);
  }
  fputc('"', out);
}

static void put_float(FILE *out, double v) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.15g", v);
  if (strtod(buf, NULL) != v) snprintf(buf, sizeof buf, "%.17g", v);
  bool plain = true;
  for (char *p = buf; *p; p++)
    if (*p == '.' || *p == 'e' || *p == 'n' || *p == 'i') plain = false;
  fprintf(out, plain ? "%s.0" : "%s", buf);
}

static void put_list(FILE *out, const AstList *l, const char *sep) {
  for (int i = 0; i < l->n; i++) {
    if (i) fputs(sep, out);
    dump_expr(out, l->items[i]);
  }
}

static void put_opt(FILE *out, const Ast *e) {
  if (e) dump_expr(out, e);
  else fputc('_', out);
}

void dump_expr(FILE *out, const Ast *e) {
  switch (e->kind) {
  case N_INT: fprintf(out, "%lld", (long long)e->ival); break;
  case N_FLOAT: put_float(out, e->fval); break;
  case N_STR: put_str(out, e->str); break;
  case N_BOOL: fputs(e->ival ? "true" : "false", out); break;
  case N_NAME: fputs(e->name, out); break;
  case N_ELLIPSIS: fputs("...", out); break;
  case N_ERROR: fputs("<error>", out); break;
  case N_UNARY:
    fprintf(out, "(%s ", ast_op_name(e->op));
    dump_expr(out, e->a);
    fputc(')', out);
    break;
  case N_BINARY:
    fprintf(out, "(%s ", ast_op_name(e->op));
    dump_expr(out, e->a);
    fputc(' ', out);
    dump_expr(out, e->b);
    fputc(')', out);
    break;
  case N_CALL:
    fputs("(call ", out);
    dump_expr(out, e->a);
    for (int i = 0; i < e->list.n; i++) {
      fputc(' ', out);
      dump_expr(out, e->list.items[i]);
    }
    if (e->c) {
      fputs(" as ", out);
      dump_expr(out, e->c);
    }
    fputc(')', out);
    break;
  case N_KWARG:
    fprintf(out, "%s=", e->name);
    dump_expr(out, e->a);
    break;
  case N_SCOPE:
    if (e->str) {
      put_str(out, e->str);
    } else {
      fputs(e->name, out);
      if (e->a) {
        fputc('[', out);
        dump_expr(out, e->a);
        fputc(']', out);
      }
    }
    break;
  case N_MEMBER:
    fputs("(. ", out);
    dump_expr(out, e->a);
    fprintf(out, " %s)", e->name);
    break;
  case N_INDEX:
    fputs("(index ", out);
    dump_expr(out, e->a);
    fputc(' ', out);
    put_list(out, &e->list, " ");
    fputc(')', out);
    break;
  case N_SLICE:
    fputs("(slice ", out);
    put_opt(out, e->a);
    fputc(' ', out);
    put_opt(out, e->b);
    fputc(' ', out);
    put_opt(out, e->c);
    fputc(')', out);
    break;
  case N_TUPLE:
    fputs("(tuple ", out);
    put_list(out, &e->list, " ");
    fputc(')', out);
    break;
  case N_LIST:
    fputs(e->list.n ? "(list " : "(list", out);
    put_list(out, &e->list, " ");
    fputc(')', out);
    break;
  case N_TYPE:
    fputs(e->name, out);
    if (e->shaped) {
      fputc('[', out);
      put_list(out, &e->list, ", ");
      fputc(']', out);
    }
    break;
  case N_TUPLE_TYPE:
    fputc('(', out);
    put_list(out, &e->list, ", ");
    fputc(')', out);
    break;
  default:
    fprintf(out, "<%s>", ast_kind_name(e->kind));
  }
}

static void indent(FILE *out, int depth) {
  for (int i = 0; i < depth; i++) fputs("  ", out);
}

static void dump_block(FILE *out, const Ast *block, int depth);

static void dump_stmt(FILE *out, const Ast *s, int depth) {
  indent(out, depth);
  switch (s->kind) {
  case N_LET:
  case N_ASSIGN:
    if (s->kind == N_LET) fputs("let ", out);
    put_list(out, &s->list2, ", ");
    if (s->a) {
      fputs(": ", out);
      dump_expr(out, s->a);
    }
    fputs(" = ", out);
    dump_expr(out, s->b);
    break;
  case N_PARAM:
  case N_BUFFER:
  case N_INPUT:
  case N_OUTPUT:
    fprintf(out, "%s %s", s->kind == N_PARAM ? "param" : s->kind == N_BUFFER ? "buffer" :
            s->kind == N_INPUT ? "input" : "output", s->name);
    if (s->a) {
      fputs(": ", out);
      dump_expr(out, s->a);
    }
    if (s->b) {
      fputs(" = ", out);
      dump_expr(out, s->b);
    }
    break;
  case N_UPDATE:
    fprintf(out, "update %s = ", s->name);
    dump_expr(out, s->b);
    break;
  case N_LOSS:
    fputs("loss ", out);
    dump_expr(out, s->b);
    break;
  case N_RETURN:
    fputs(s->list.n ? "return " : "return", out);
    put_list(out, &s->list, ", ");
    break;
  case N_FOR:
    fprintf(out, "for %s in ", s->name);
    dump_expr(out, s->a);
    if (s->b) {
      fputs(" .. ", out);
      dump_expr(out, s->b);
    }
    fputc('\n', out);
    dump_block(out, s->c, depth + 1);
    return;
  case N_IF:
    for (;;) {
      fputs("if ", out);
      dump_expr(out, s->a);
      fputc('\n', out);
      dump_block(out, s->b, depth + 1);
      if (!s->c) return;
      indent(out, depth);
      fputs("else", out);
      if (s->c->kind != N_IF) {
        fputc('\n', out);
        dump_block(out, s->c, depth + 1);
        return;
      }
      fputc(' ', out);
      s = s->c;
    }
  case N_ASSERT:
    fputs("assert ", out);
    dump_expr(out, s->a);
    if (s->b) {
      fputc(' ', out);
      dump_expr(out, s->b);
    }
    break;
  case N_EXPR_STMT:
    dump_expr(out, s->a);
    break;
  default:
    fprintf(out, "<%s>", ast_kind_name(s->kind));
  }
  fputc('\n', out);
}

static void dump_block(FILE *out, const Ast *block, int depth) {
  for (int i = 0; i < block->list.n; i++) dump_stmt(out, block->list.items[i], depth);
}

static void dump_fn(FILE *out, const Ast *fn) {
  fprintf(out, "fn %s(", fn->name);
  for (int i = 0; i < fn->list.n; i++) {
    const Ast *p = fn->list.items[i];
    fprintf(out, "%s%s", i ? ", " : "", p->name);
    if (p->a) {
      fputs(": ", out);
      dump_expr(out, p->a);
    }
    if (p->b) {
      fputs(" = ", out);
      dump_expr(out, p->b);
    }
  }
  fputc(')', out);
  if (fn->a) {
    fputs(" -> ", out);
    dump_expr(out, fn->a);
  }
  fputc('\n', out);
  dump_block(out, fn->b, 1);
}

static void dump_train(FILE *out, const Ast *t) {
  fputs("train\n", out);
  for (int i = 0; i < t->list.n; i++) {
    const Ast *k = t->list.items[i];
    if (k->kind == N_TRAIN_KEY) {
      fprintf(out, "  %s = ", k->name);
      dump_expr(out, k->a);
      fputc('\n', out);
      continue;
    }
    if (k->kind == N_TRAIN_GROUP) {
      fprintf(out, "  group \"%s\"\n", k->str);
      for (int j = 0; j < k->list.n; j++) {
        const Ast *s = k->list.items[j];
        if (s->kind != N_TRAIN_KEY) continue;
        fprintf(out, "    %s = ", s->name);
        dump_expr(out, s->a);
        fputc('\n', out);
      }
      continue;
    }
    fprintf(out, "  data %s\n", k->name);
    for (int j = 0; j < k->list.n; j++) {
      const Ast *b = k->list.items[j];
      fputs("    ", out);
      put_list(out, &b->list2, ", ");
      fputs(" = ", out);
      dump_expr(out, b->a);
      fputc('\n', out);
    }
  }
}

void dump_ast(FILE *out, const Ast *file) {
  for (int i = 0; i < file->list.n; i++) {
    const Ast *it = file->list.items[i];
    switch (it->kind) {
    case N_IMPORT:
      fputs("import ", out);
      put_str(out, it->str);
      fputc('\n', out);
      break;
    case N_FN:
      dump_fn(out, it);
      break;
    case N_MODEL:
      fprintf(out, "model %s(", it->name);
      for (int j = 0; j < it->list.n; j++) {
        const Ast *s = it->list.items[j];
        fprintf(out, "%s%s", j ? ", " : "", s->name);
        if (s->a) {
          fputs(" = ", out);
          dump_expr(out, s->a);
        }
      }
      fputs(")\n", out);
      dump_block(out, it->b, 1);
      break;
    case N_TRAIN:
      dump_train(out, it);
      break;
    default:
      fprintf(out, "<%s>\n", ast_kind_name(it->kind));
    }
  }
}
