/* smelt.y: the grammar of the model language.
 *
 * Pure, reentrant, with locations (byte spans) and custom syntax errors that
 * list the expected tokens (computed by LAC, so they are exact). Statement
 * lists recover from errors at the next end of line, ';' or '}', so one run
 * reports several independent syntax errors. Every value is allocated in the
 * compilation's arena; nothing needs a destructor.
 *
 * Expression precedence, loosest first:
 *   or, and, not, comparisons (non-associative), + -, * / // % @,
 *   unary - +, ** (right-associative; -x ** 2 is -(x ** 2)),
 *   postfix: call f(...), index x[...], member x.name
 * 'as' binds to the call before it and names its parameter scope:
 * x + linear(x, 10) as fc1 is x + (linear(x, 10) as fc1).
 */
%code requires {
#include "compiler.h"
#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif
}

%code provides {
#define LEX_MAX_BRACKETS 256
#define LEX_MAX_IDENT 256

// The scanner's state, reached through flex's "extra" pointer.
typedef struct LexState {
  Parser *p;
  int offset;                          // byte offset of the next character
  int last;                            // last token returned, for newline insertion
  char brackets[LEX_MAX_BRACKETS];     // open brackets, innermost last
  int bracket_at[LEX_MAX_BRACKETS];    // where each was opened (byte offset)
  bool suppress_syntax_error;          // the scanner already reported this one
  int tok_end, prev_tok_end;           // ends of the last two tokens handed out
  int depth;                           // may exceed LEX_MAX_BRACKETS
  bool depth_reported;
  int misaligned_at;                   // the last '{' closed by a '}' indented unlike its line; -1: none
  char *str_buf;                       // string literal being read (malloc'd)
  int str_len, str_cap, str_begin;
  bool has_pending;                    // one token of lookahead, see yylex
  int pending;
  YYSTYPE pending_val;
  YYLTYPE pending_loc;
} LexState;

int yylex(YYSTYPE *val, YYLTYPE *loc, yyscan_t scanner);
void lex_str_append(LexState *ls, const char *s, size_t n);
struct LexState *yyget_extra(yyscan_t scanner);
}

%code {
#include <string.h>
#define P (yyget_extra(scanner)->p)
#define YYMAXDEPTH 5000

#define YYLLOC_DEFAULT(Cur, Rhs, N)                                            \
  do {                                                                         \
    if (N) {                                                                   \
      (Cur).file = YYRHSLOC(Rhs, 1).file;                                      \
      (Cur).begin = YYRHSLOC(Rhs, 1).begin;                                    \
      (Cur).end = YYRHSLOC(Rhs, N).end;                                        \
    } else {                                                                   \
      (Cur).file = YYRHSLOC(Rhs, 0).file;                                      \
      (Cur).begin = (Cur).end = YYRHSLOC(Rhs, 0).end;                          \
    }                                                                          \
  } while (0)

static void yyerror(YYLTYPE *loc, yyscan_t scanner, const char *msg);

static Ast *mk(Parser *p, AstKind k, Span at) { return ast_new(p, k, at); }
static Ast *mk1(Parser *p, AstKind k, Span at, Ast *a) {
  Ast *n = ast_new(p, k, at);
  n->a = a;
  return ast_finish(p, n);
}
static Ast *mk_bin(Parser *p, int op, Span at, Ast *a, Ast *b) {
  Ast *n = ast_new(p, N_BINARY, at);
  n->op = op;
  n->a = a;
  n->b = b;
  return ast_finish(p, n);
}
static Ast *mk_named(Parser *p, AstKind k, Span at, char *name) {
  Ast *n = ast_new(p, k, at);
  n->name = name;
  return n;
}
// `a, b` on the right of '=' or after 'return': one value, or a tuple of several.
static Ast *tuple_of(Parser *p, AstList l, Span at) {
  if (l.n == 1) return l.items[0];
  Ast *t = ast_new(p, N_TUPLE, at);
  t->list = l;
  return ast_finish(p, t);
}

static AstList list1(Parser *p, Ast *n) {
  AstList l = {0};
  if (n) astlist_push(p->arena, &l, n);
  return l;
}
static AstList list_add(Parser *p, AstList l, Ast *n) {
  if (n) astlist_push(p->arena, &l, n);
  return l;
}
}

%define api.pure full
%define api.location.type {Span}
%locations
%define parse.error custom
%define parse.lac full
%param {yyscan_t scanner}
%expect 0

%union {
  Ast *node;
  AstList list;
  char *str;
  int64_t ival;
  double fval;
}

%token <str> IDENT "name"
%token <str> STRING "string"
%token <ival> INT "integer"
%token <fval> FLOAT "number"
%token NEWLINE "end of line"
%token IMPORT "'import'" FN "'fn'" MODEL "'model'" TRAIN "'train'" PARAM "'param'"
%token INPUT "'input'" OUTPUT "'output'" LOSS "'loss'" LET "'let'" RETURN "'return'"
%token FOR "'for'" IN "'in'" IF "'if'" ELSE "'else'" AS "'as'" AND "'and'" OR "'or'"
%token NOT "'not'" TRUE "'true'" FALSE "'false'" ASSERT "'assert'"
%token BUFFER "'buffer'" UPDATE "'update'"
%token POW "'**'" FLOORDIV "'//'" EQ "'=='" NE "'!='" LE "'<='" GE "'>='"
%token ARROW "'->'" DOTDOT "'..'" ELLIPSIS "'...'"

/* `f(x) as blocks[i]`: the '[' belongs to the scope name, not an index. */
%precedence SCOPE_NAME
%precedence '['

%type <node> file item fn_def fn_param ret_opt type dim model_def size train_def
%type <node> train_item data_item block stmt if_stmt value scope expr or_expr
%type <node> and_expr not_expr cmp_expr add_expr mul_expr unary power postfix
%type <node> primary call arg index_item expr_opt
%type <list> items fn_params fn_params_opt type_list dims dims_opt sizes sizes_opt
%type <list> train_items data_items name_list stmts values args args_opt index_items
%type <node> item_opt train_item_opt data_item_opt stmt_opt
%type <ival> cmp_op mul_op
%type <str> data_split

%%

file
  : items                         { $$ = mk(P, N_FILE, @$); $$->list = $1; P->root = $$; }
  ;

items
  : item_opt                      { $$ = list1(P, $1); }
  | items sep item_opt            { $$ = list_add(P, $1, $3); }
  ;

item_opt
  : %empty                        { $$ = NULL; }
  | item
  | error                         { $$ = NULL; }
  ;

item
  : IMPORT STRING                 { $$ = mk(P, N_IMPORT, @$); $$->str = $2; }
  | fn_def
  | model_def
  | train_def
  ;

sep : NEWLINE | ';' ;

opt_comma : %empty | ',' ;

/* ---- functions ---- */

fn_def
  : FN IDENT '(' fn_params_opt ')' ret_opt block
      { $$ = mk_named(P, N_FN, @2, $2); $$->list = $4; $$->a = $6; $$->b = $7; }
  ;

fn_params_opt
  : %empty                        { $$ = (AstList){0}; }
  | fn_params opt_comma
  ;

fn_params
  : fn_param                      { $$ = list1(P, $1); }
  | fn_params ',' fn_param        { $$ = list_add(P, $1, $3); }
  ;

fn_param
  : IDENT                         { $$ = mk_named(P, N_FN_PARAM, @1, $1); }
  | IDENT ':' type                { $$ = mk_named(P, N_FN_PARAM, @1, $1); $$->a = $3; }
  | IDENT '=' value               { $$ = mk_named(P, N_FN_PARAM, @1, $1); $$->b = $3; }
  | IDENT ':' type '=' value      { $$ = mk_named(P, N_FN_PARAM, @1, $1); $$->a = $3; $$->b = $5; }
  ;

ret_opt
  : %empty                        { $$ = NULL; }
  | ARROW type                    { $$ = $2; }
  | ARROW '(' type_list ')'       { $$ = mk(P, N_TUPLE_TYPE, @3); $$->list = $3; }
  ;

type_list
  : type                          { $$ = list1(P, $1); }
  | type_list ',' type            { $$ = list_add(P, $1, $3); }
  ;

type
  : IDENT                         { $$ = mk_named(P, N_TYPE, @$, $1); }
  | IDENT '[' dims_opt ']'        { $$ = mk_named(P, N_TYPE, @$, $1); $$->shaped = true; $$->list = $3;
                                    $$ = ast_finish(P, $$); }
  ;

dims_opt
  : %empty                        { $$ = (AstList){0}; }
  | dims opt_comma
  ;

dims
  : dim                           { $$ = list1(P, $1); }
  | dims ',' dim                  { $$ = list_add(P, $1, $3); }
  ;

dim
  : expr
  | ELLIPSIS                      { $$ = mk(P, N_ELLIPSIS, @$); }
  ;

/* ---- model and train ---- */

model_def
  : MODEL IDENT '(' sizes_opt ')' block
      { $$ = mk_named(P, N_MODEL, @2, $2); $$->list = $4; $$->b = $6; }
  | MODEL IDENT block             { $$ = mk_named(P, N_MODEL, @2, $2); $$->b = $3; }
  ;

sizes_opt
  : %empty                        { $$ = (AstList){0}; }
  | sizes opt_comma
  ;

sizes
  : size                          { $$ = list1(P, $1); }
  | sizes ',' size                { $$ = list_add(P, $1, $3); }
  ;

size
  : IDENT                         { $$ = mk_named(P, N_SIZE, @1, $1); }
  | IDENT '=' expr                { $$ = mk_named(P, N_SIZE, @1, $1); $$->a = $3; }
  ;

train_def
  : TRAIN '{' train_items '}'     { $$ = mk(P, N_TRAIN, @1); $$->list = $3; }
  ;

train_items
  : train_item_opt                { $$ = list1(P, $1); }
  | train_items sep train_item_opt { $$ = list_add(P, $1, $3); }
  ;

train_item_opt
  : %empty                        { $$ = NULL; }
  | train_item
  | error                         { $$ = NULL; }
  ;

train_item
  : IDENT '=' value               { $$ = mk_named(P, N_TRAIN_KEY, @1, $1); $$->a = $3; }
  | IDENT data_split '{' data_items '}'
      {
        if (strcmp($1, "data") != 0)
          yyerror(&@1, scanner, "unknown block in 'train'; the blocks there are 'data SPLIT { ... }' "
                  "and 'group \"PATTERN\" { ... }'");
        $$ = mk_named(P, N_DATA, @2, $2); $$->list = $4;
      }
  | IDENT STRING '{' train_items '}'
      {
        if (strcmp($1, "group") != 0)
          yyerror(&@1, scanner, "unknown block in 'train'; a block named by a string is "
                  "'group \"PATTERN\" { ... }'");
        $$ = mk(P, N_TRAIN_GROUP, @2); $$->str = $2; $$->list = $4;
      }
  ;

data_split
  : IDENT
  | TRAIN                         { $$ = arena_strdup(P->arena, "train"); }
  ;

data_items
  : data_item_opt                 { $$ = list1(P, $1); }
  | data_items sep data_item_opt  { $$ = list_add(P, $1, $3); }
  ;

data_item_opt
  : %empty                        { $$ = NULL; }
  | data_item
  | error                         { $$ = NULL; }
  ;

data_item
  : name_list '=' value           { $$ = mk(P, N_DATA_BIND, @1); $$->list2 = $1; $$->a = $3; }
  ;

name_list
  : IDENT                         { $$ = list1(P, mk_named(P, N_NAME, @1, $1)); }
  | name_list ',' IDENT           { $$ = list_add(P, $1, mk_named(P, N_NAME, @3, $3)); }
  ;

/* ---- statements ---- */

block
  : '{' stmts '}'                 { $$ = mk(P, N_BLOCK, @$); $$->list = $2; }
  ;

stmts
  : stmt_opt                      { $$ = list1(P, $1); }
  | stmts sep stmt_opt            { $$ = list_add(P, $1, $3); }
  ;

stmt_opt
  : %empty                        { $$ = NULL; }
  | stmt
  | error                         { $$ = NULL; }
  ;

stmt
  : LET name_list '=' values      { $$ = mk(P, N_LET, @$); $$->list2 = $2; $$->b = tuple_of(P, $4, @4); }
  | LET IDENT ':' type '=' value
      { $$ = mk(P, N_LET, @$); $$->list2 = list1(P, mk_named(P, N_NAME, @2, $2)); $$->a = $4; $$->b = $6; }
  | name_list '=' values          { $$ = mk(P, N_ASSIGN, @$); $$->list2 = $1; $$->b = tuple_of(P, $3, @3); }
  | PARAM IDENT ':' type '=' value
      { $$ = mk_named(P, N_PARAM, @2, $2); $$->a = $4; $$->b = $6; }
  | BUFFER IDENT ':' type '=' value
      { $$ = mk_named(P, N_BUFFER, @2, $2); $$->a = $4; $$->b = $6; }
  | UPDATE IDENT '=' value        { $$ = mk_named(P, N_UPDATE, @2, $2); $$->b = $4; }
  | INPUT IDENT ':' type          { $$ = mk_named(P, N_INPUT, @2, $2); $$->a = $4; }
  | OUTPUT IDENT '=' value        { $$ = mk_named(P, N_OUTPUT, @2, $2); $$->b = $4; }
  | OUTPUT IDENT ':' type '=' value
      { $$ = mk_named(P, N_OUTPUT, @2, $2); $$->a = $4; $$->b = $6; }
  | LOSS value                    { $$ = mk(P, N_LOSS, @$); $$->b = $2; }
  | RETURN                        { $$ = mk(P, N_RETURN, @$); }
  | RETURN values                 { $$ = mk(P, N_RETURN, @$); $$->list = $2; }
  | FOR IDENT IN expr DOTDOT expr block
      { $$ = mk_named(P, N_FOR, @2, $2); $$->a = $4; $$->b = $6; $$->c = $7; }
  | FOR IDENT IN expr block       { $$ = mk_named(P, N_FOR, @2, $2); $$->a = $4; $$->c = $5; }
  | if_stmt
  | ASSERT expr                   { $$ = mk(P, N_ASSERT, @$); $$->a = $2; }
  | ASSERT expr ',' STRING
      { $$ = mk(P, N_ASSERT, @$); $$->a = $2; $$->b = mk(P, N_STR, @4); $$->b->str = $4; }
  | value                         { $$ = mk1(P, N_EXPR_STMT, @$, $1); }
  ;

if_stmt
  : IF expr block                 { $$ = mk(P, N_IF, @$); $$->a = $2; $$->b = $3; }
  | IF expr block ELSE block      { $$ = mk(P, N_IF, @$); $$->a = $2; $$->b = $3; $$->c = $5; }
  | IF expr block ELSE if_stmt    { $$ = mk(P, N_IF, @$); $$->a = $2; $$->b = $3; $$->c = $5; }
  ;

values
  : value                         { $$ = list1(P, $1); }
  | values ',' value              { $$ = list_add(P, $1, $3); }
  ;

/* ---- expressions ---- */

value : expr ;

scope
  : IDENT %prec SCOPE_NAME        { $$ = mk_named(P, N_SCOPE, @$, $1); }
  | IDENT '[' expr ']'            { $$ = mk_named(P, N_SCOPE, @$, $1); $$->a = $3; $$ = ast_finish(P, $$); }
  | STRING                        { $$ = mk(P, N_SCOPE, @$); $$->str = $1; }
  ;

expr : or_expr ;

or_expr
  : and_expr
  | or_expr OR and_expr           { $$ = mk_bin(P, AOP_OR, @$, $1, $3); }
  ;

and_expr
  : not_expr
  | and_expr AND not_expr         { $$ = mk_bin(P, AOP_AND, @$, $1, $3); }
  ;

not_expr
  : cmp_expr
  | NOT not_expr                  { $$ = mk1(P, N_UNARY, @$, $2); $$->op = AOP_NOT; }
  ;

cmp_expr
  : add_expr
  | add_expr cmp_op add_expr      { $$ = mk_bin(P, (int)$2, @$, $1, $3); }
  | add_expr cmp_op add_expr cmp_op add_expr
      {
        yyerror(&@4, scanner, "comparisons do not chain; write a < b and b < c");
        $$ = mk_bin(P, (int)$2, @$, $1, $3);
      }
  ;

cmp_op
  : '<' { $$ = '<'; } | '>' { $$ = '>'; } | LE { $$ = AOP_LE; } | GE { $$ = AOP_GE; }
  | EQ { $$ = AOP_EQ; } | NE { $$ = AOP_NE; }
  ;

add_expr
  : mul_expr
  | add_expr '+' mul_expr         { $$ = mk_bin(P, '+', @$, $1, $3); }
  | add_expr '-' mul_expr         { $$ = mk_bin(P, '-', @$, $1, $3); }
  ;

mul_expr
  : unary
  | mul_expr mul_op unary         { $$ = mk_bin(P, (int)$2, @$, $1, $3); }
  ;

mul_op
  : '*' { $$ = '*'; } | '/' { $$ = '/'; } | FLOORDIV { $$ = AOP_FLOORDIV; }
  | '%' { $$ = '%'; } | '@' { $$ = '@'; }
  ;

unary
  : power
  | '-' unary                     { $$ = mk1(P, N_UNARY, @$, $2); $$->op = '-'; }
  | '+' unary                     { $$ = mk1(P, N_UNARY, @$, $2); $$->op = '+'; }
  ;

power
  : postfix
  | postfix POW unary             { $$ = mk_bin(P, AOP_POW, @$, $1, $3); }
  ;

postfix
  : primary
  | call
  | postfix AS scope
      {
        $$ = $1;
        if ($1->kind != N_CALL)
          yyerror(&@2, scanner, "'as' names the parameter scope of a call, but this is not a call");
        else if ($1->c)
          yyerror(&@2, scanner, "this call already has a scope name");
        else {
          $$->c = $3;
          $$->span.end = @3.end;
        }
      }
  | postfix '[' index_items ']'   { $$ = mk(P, N_INDEX, @$); $$->a = $1; $$->list = $3; $$ = ast_finish(P, $$); }
  | postfix '.' IDENT             { $$ = mk1(P, N_MEMBER, @$, $1); $$->name = $3; }
  ;

call
  : postfix '(' args_opt ')'      { $$ = mk(P, N_CALL, @$); $$->a = $1; $$->list = $3; $$ = ast_finish(P, $$); }
  ;

primary
  : IDENT                         { $$ = mk_named(P, N_NAME, @$, $1); }
  | INT                           { $$ = mk(P, N_INT, @$); $$->ival = $1; }
  | FLOAT                         { $$ = mk(P, N_FLOAT, @$); $$->fval = $1; }
  | STRING                        { $$ = mk(P, N_STR, @$); $$->str = $1; }
  | TRUE                          { $$ = mk(P, N_BOOL, @$); $$->ival = 1; }
  | FALSE                         { $$ = mk(P, N_BOOL, @$); $$->ival = 0; }
  | '(' value ')'                 { $$ = $2; }
  | '(' value ',' ')'             { $$ = mk(P, N_TUPLE, @$); $$->list = list1(P, $2); $$ = ast_finish(P, $$); }
  | '(' value ',' values opt_comma ')'
      { $$ = mk(P, N_TUPLE, @$); $$->list = list1(P, $2);
        for (int i = 0; i < $4.n; i++) astlist_push(P->arena, &$$->list, $4.items[i]);
        $$ = ast_finish(P, $$); }
  | '[' ']'                       { $$ = mk(P, N_LIST, @$); }
  | '[' values opt_comma ']'      { $$ = mk(P, N_LIST, @$); $$->list = $2; $$ = ast_finish(P, $$); }
  ;

args_opt
  : %empty                        { $$ = (AstList){0}; }
  | args opt_comma
  ;

args
  : arg                           { $$ = list1(P, $1); }
  | args ',' arg                  { $$ = list_add(P, $1, $3); }
  ;

arg
  : value
  | IDENT '=' value               { $$ = mk1(P, N_KWARG, @$, $3); $$->name = $1; }
  ;

index_items
  : index_item                    { $$ = list1(P, $1); }
  | index_items ',' index_item    { $$ = list_add(P, $1, $3); }
  ;

index_item
  : expr
  | ELLIPSIS                      { $$ = mk(P, N_ELLIPSIS, @$); }
  | expr_opt ':' expr_opt         { $$ = mk(P, N_SLICE, @$); $$->a = $1; $$->b = $3; $$ = ast_finish(P, $$); }
  | expr_opt ':' expr_opt ':' expr_opt
      { $$ = mk(P, N_SLICE, @$); $$->a = $1; $$->b = $3; $$->c = $5; $$ = ast_finish(P, $$); }
  ;

expr_opt
  : %empty                        { $$ = NULL; }
  | expr
  ;

%%

static void yyerror(YYLTYPE *loc, yyscan_t scanner, const char *msg) {
  Parser *p = P;
  p->syntax_errors++;
  if (strcmp(msg, "memory exhausted") == 0)
    msg = "the program is nested too deeply to parse";
  diag_error(p->diag, *loc, "%s", msg);
}

// The tokens that can begin an expression; listed as one item, "an expression".
static bool starts_expr(yysymbol_kind_t s) {
  switch (s) {
  case YYSYMBOL_IDENT: case YYSYMBOL_STRING: case YYSYMBOL_INT: case YYSYMBOL_FLOAT:
  case YYSYMBOL_TRUE: case YYSYMBOL_FALSE: case YYSYMBOL_NOT:
    return true;
  default: {   /* character tokens have generated kinds; match them by name */
    const char *name = yysymbol_name(s);
    return !strcmp(name, "'-'") || !strcmp(name, "'+'") || !strcmp(name, "'('") || !strcmp(name, "'['");
  }
  }
}

// At the end of the file, points at the bracket still open: the innermost
// one, or, when a '}' was indented unlike the line of the '{' it closed
// (`for ... {` left open, then the model's '}' taken as the loop's), that
// '{', which is the one the writer left open.
static void note_unclosed(Parser *p, const LexState *ls, yysymbol_kind_t got) {
  if (got != YYSYMBOL_YYEOF || ls->depth == 0 || ls->depth > LEX_MAX_BRACKETS) return;
  int at = ls->bracket_at[ls->depth - 1];
  if (ls->brackets[ls->depth - 1] == '{' && ls->misaligned_at >= 0) at = ls->misaligned_at;
  diag_note(p->diag, (Span){p->file, at, at + 1}, "the '%c' opened here is not closed",
            ls->brackets[ls->depth - 1]);
}

static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner) {
  Parser *p = P;
  p->syntax_errors++;
  LexState *ls = yyget_extra(scanner);
  if (ls->suppress_syntax_error) {
    ls->suppress_syntax_error = false;
    return 0;
  }
  yysymbol_kind_t got = yypcontext_token(ctx);
  const YYLTYPE *loc = yypcontext_location(ctx);
  Span at = *loc;
  const Source *src = p->diag->files[p->file];
  if (got == YYSYMBOL_YYEOF) at = (Span){p->file, src->len, src->len};
  // A token on a later line than the one before it: the statement was cut
  // short at the end of that earlier line, so say so there.
  int l1, c1, l2, c2;
  diag_line_col(src, ls->prev_tok_end, &l1, &c1);
  diag_line_col(src, at.begin, &l2, &c2);
  // (Not inside (...) or [...], where a newline ends nothing.)
  bool in_parens = ls->depth > 0 && ls->depth <= LEX_MAX_BRACKETS && ls->brackets[ls->depth - 1] != '{';
  bool cut = l2 > l1 && ls->prev_tok_end > 0 && !in_parens;
  if (cut) at = (Span){p->file, ls->prev_tok_end, ls->prev_tok_end};

  char what[160];
  const char *text = src->text;
  int len = at.end - at.begin;
  if (cut)
    snprintf(what, sizeof what, "%s", got == YYSYMBOL_YYEOF ? "end of file" : "end of line");
  else if ((got == YYSYMBOL_IDENT || got == YYSYMBOL_INT || got == YYSYMBOL_FLOAT) && len <= 40)
    snprintf(what, sizeof what, "%s '%.*s'", yysymbol_name(got), len, text + at.begin);
  else
    snprintf(what, sizeof what, "%s", yysymbol_name(got));

  yysymbol_kind_t exp[64];
  int n = yypcontext_expected_tokens(ctx, exp, 64);
  bool any_expr = false;
  const char *names[64];
  int k = 0;
  for (int i = 0; i < n; i++) {
    if (starts_expr(exp[i])) {
      bool is_expr_set = false;
      for (int j = 0; j < n; j++) if (exp[j] == YYSYMBOL_INT) is_expr_set = true;
      if (is_expr_set) { any_expr = true; continue; }
    }
    names[k++] = yysymbol_name(exp[i]);
  }
  if (any_expr) names[k++] = "an expression";
  if (n <= 0 || k > 6) {
    diag_error(p->diag, at, "unexpected %s", what);
    note_unclosed(p, ls, got);
    return 0;
  }
  char list[512] = "";
  for (int i = 0; i < k; i++) {
    const char *joint = i == 0 ? "" : i == k - 1 ? " or " : ", ";
    strncat(list, joint, sizeof list - strlen(list) - 1);
    strncat(list, names[i], sizeof list - strlen(list) - 1);
  }
  diag_error(p->diag, at, "unexpected %s, expected %s", what, list);
  note_unclosed(p, ls, got);
  return 0;
}
