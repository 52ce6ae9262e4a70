// parse.c: runs the flex scanner and the bison parser over one source.
//
// yylex wraps the scanner with one token of lookahead so that 'else' may start
// the line after a '}' (the newline between them is dropped).
#include "compiler.h"

#include <stdlib.h>
#include <string.h>

#include "smelt.tab.h"
#include "smelt.lex.h"

int raw_lex(YYSTYPE *val, YYLTYPE *loc, yyscan_t scanner);

void lex_str_append(LexState *ls, const char *s, size_t n) {
  if ((size_t)ls->str_len + n + 1 > (size_t)ls->str_cap) {
    size_t cap = ls->str_cap ? (size_t)ls->str_cap : 64;
    while (cap < (size_t)ls->str_len + n + 1) cap *= 2;
    if (cap > (size_t)1 << 30) return;   // the source itself is smaller than this
    ls->str_buf = xrealloc(ls->str_buf, cap);
    ls->str_cap = (int)cap;
  }
  memcpy(ls->str_buf + ls->str_len, s, n);
  ls->str_len += (int)n;
}

static int next_token(YYSTYPE *val, YYLTYPE *loc, yyscan_t scanner);

// Hands tokens to the parser, remembering where the previous one ended.
int yylex(YYSTYPE *val, YYLTYPE *loc, yyscan_t scanner) {
  LexState *ls = yyget_extra(scanner);
  int t = next_token(val, loc, scanner);
  ls->prev_tok_end = ls->tok_end;
  ls->tok_end = t == YYEOF ? ls->tok_end : loc->end;
  return t;
}

static int next_token(YYSTYPE *val, YYLTYPE *loc, yyscan_t scanner) {
  LexState *ls = yyget_extra(scanner);
  if (ls->has_pending) {
    ls->has_pending = false;
    *val = ls->pending_val;
    *loc = ls->pending_loc;
    return ls->pending;
  }
  int t = raw_lex(val, loc, scanner);
  if (t != NEWLINE) return t;
  YYSTYPE v2;
  YYLTYPE l2;
  int t2 = raw_lex(&v2, &l2, scanner);
  if (t2 == ELSE) {   // "}\nelse {": the else belongs to the if
    *val = v2;
    *loc = l2;
    return t2;
  }
  ls->has_pending = true;
  ls->pending = t2;
  ls->pending_val = v2;
  ls->pending_loc = l2;
  return t;
}

Ast *parse_source(Arena *arena, Diag *diag, int file) {
  Parser p = {.arena = arena, .diag = diag, .file = file};
  LexState ls = {.p = &p, .misaligned_at = -1};
  Source *src = diag->files[file];
  yyscan_t scanner;
  if (yylex_init_extra(&ls, &scanner) != 0) internal_error(__FILE__, __LINE__, "yylex_init");
  YY_BUFFER_STATE buf = yy_scan_bytes(src->text, src->len, scanner);
  yyparse(scanner);
  yy_delete_buffer(buf, scanner);
  yylex_destroy(scanner);
  free(ls.str_buf);
  if (!p.root) {   // the parser gave up (stack exhausted): an empty file
    p.root = ast_new(&p, N_FILE, (Span){file, 0, 0});
  }
  return p.root;
}
