// compiler.h: the smelt compiler's one internal header.
//
// It declares the whole front end (sources and diagnostics, the AST, the parser,
// modules and imports, name resolution) in sections named after the files that
// implement them. Only the compiler includes it; the runtime has its own public
// header, runtime/smelt.h.
#ifndef SMELT_COMPILER_H
#define SMELT_COMPILER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SMELT_VERSION "0.1.0"

#define ASSERT(c)                                                              \
  do {                                                                         \
    if (!(c)) internal_error(__FILE__, __LINE__, "assertion failed: " #c);     \
  } while (0)
#define UNREACHABLE() internal_error(__FILE__, __LINE__, "unreachable")
_Noreturn void internal_error(const char *file, int line, const char *msg);

// ---------------------------------------------------------------- util.c
// Allocation that cannot fail (it aborts with a message when memory runs out),
// and growable arrays.

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

// Reads a whole file into a NUL-terminated buffer owned by the caller.
// Returns NULL and sets errno when the file cannot be read.
char *file_read(const char *path, size_t *len);

// A path as diagnostics show it: relative to the current folder when it lies
// inside it, else absolute. Caller frees.
char *path_display(const char *path);

// Edit distance with transpositions (Damerau, optimal string alignment).
int str_distance(const char *a, const char *b);

// ---------------------------------------------------------------- arena.c
// Bump allocator: everything the front end builds for one compilation lives in
// one arena and is freed in one call.

typedef struct ArenaBlock ArenaBlock;
typedef struct {
  ArenaBlock *head;
} Arena;

void *arena_alloc(Arena *a, size_t n);          // zeroed, 16-byte aligned
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_strdup(Arena *a, const char *s);
char *arena_printf(Arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void arena_free(Arena *a);

// ---------------------------------------------------------------- diag.c
// Source files and diagnostics. A Span is a byte range in one source; line and
// column are computed only when a diagnostic is printed.

typedef struct {
  int file;   // index into Diag.files; -1 for "no location"
  int begin;  // byte offset of the first character
  int end;    // byte offset one past the last character
} Span;

typedef struct {
  char *path;        // as given by the user or found on the search path
  char *text;        // NUL-terminated contents (owned)
  int len;
  int *line_start;   // byte offset of each line's first character (owned)
  int nlines;
} Source;

typedef struct {
  Source **files;
  int nfiles;
  int errors;        // errors reported so far
  int max_errors;    // stop printing after this many (0: no limit)
  bool color;
  bool stopped;      // max_errors was reached and said so
  FILE *out;         // where diagnostics go (stderr by default)
} Diag;

void diag_init(Diag *d, FILE *out);
void diag_free(Diag *d);
// Registers a source; takes ownership of text. Returns its file index.
int diag_add_source(Diag *d, const char *path, char *text, int len);
// Colour when out is a terminal and NO_COLOR is unset or empty.
bool diag_color_default(FILE *out);

void diag_error(Diag *d, Span at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_note(Diag *d, Span at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_verror(Diag *d, Span at, const char *fmt, va_list ap);
// A plain error with no source location ("smelt: error: ...").
void diag_plain(Diag *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
// 1-based line and column (in characters) of a byte offset.
void diag_line_col(const Source *s, int offset, int *line, int *col);

// ---------------------------------------------------------------- ast.c
// One node type for the whole AST. Which fields a kind uses is written beside
// the kind; unused fields stay zero. Every node has a span into its source.

typedef struct Ast Ast;

typedef struct {
  Ast **items;
  int n, cap;
} AstList;

#define AST_KINDS(X)                                                           \
  /* items */                                                                  \
  X(FILE)        /* list: items */                                             \
  X(IMPORT)      /* str: module name as written */                            \
  X(FN)          /* name; list: FN_PARAMs; a: return type or NULL; b: body */ \
  X(FN_PARAM)    /* name; a: TYPE or NULL; b: default or NULL */              \
  X(MODEL)       /* name; list: SIZEs; b: body */                            \
  X(SIZE)        /* name; a: default or NULL */                              \
  X(TRAIN)       /* list: TRAIN_KEYs and DATAs */                             \
  X(TRAIN_KEY)   /* name; a: value */                                        \
  X(DATA)        /* name (split); list: DATA_BINDs */                          \
  X(DATA_BIND)   /* list2: NAMEs (inputs); a: source call */                  \
  /* types */                                                                  \
  X(TYPE)        /* name: dtype or kind; shaped: has [...]; list: dims */      \
  X(TUPLE_TYPE)  /* list: TYPEs */                                            \
  /* statements */                                                             \
  X(BLOCK)       /* list: statements */                                       \
  X(LET)         /* list2: NAMEs; a: TYPE or NULL; b: value */                \
  X(ASSIGN)      /* list2: NAMEs; b: value */                                 \
  X(PARAM)       /* name; a: TYPE; b: initializer */                          \
  X(INPUT)       /* name; a: TYPE */                                           \
  X(OUTPUT)      /* name; a: TYPE or NULL; b: value */                        \
  X(LOSS)        /* b: value */                                               \
  X(RETURN)      /* list: values */                                            \
  X(FOR)         /* name; a: low; b: high (exclusive); c: BLOCK */            \
  X(IF)          /* a: condition; b: BLOCK; c: else BLOCK or IF or NULL */     \
  X(ASSERT)      /* a: condition; b: message STR or NULL */                   \
  X(EXPR_STMT)   /* a: expression */                                          \
  /* expressions */                                                            \
  X(INT)         /* ival */                                                    \
  X(FLOAT)       /* fval */                                                    \
  X(STR)         /* str */                                                     \
  X(BOOL)        /* ival: 0 or 1 */                                            \
  X(NAME)        /* name */                                                    \
  X(UNARY)       /* op: '-', '+', TK_NOT; a */                                \
  X(BINARY)      /* op; a, b */                                               \
  X(CALL)        /* a: callee (NAME or MEMBER); list: args; c: SCOPE or NULL */\
  X(KWARG)       /* name; a: value */                                         \
  X(SCOPE)       /* name; a: index or NULL; str: explicit string or NULL */   \
  X(MEMBER)      /* a: object; name */                                         \
  X(INDEX)       /* a: object; list: NAMEs, exprs, SLICEs, ELLIPSIS */        \
  X(SLICE)       /* a: start; b: stop; c: step (each may be NULL) */          \
  X(ELLIPSIS)    /* ... in an index or a shape */                            \
  X(TUPLE)       /* list: values */                                            \
  X(ERROR)       /* stands for what a syntax error left behind */

typedef enum {
#define X(k) N_##k,
  AST_KINDS(X)
#undef X
  N_COUNT
} AstKind;

// Binary operators use the parser's token codes; these name the ones that
// are not a single character.
enum {
  OP_POW = 256, OP_FLOORDIV, OP_EQ, OP_NE, OP_LE, OP_GE, OP_AND, OP_OR, OP_NOT,
};

struct Ast {
  AstKind kind;
  Span span;
  int depth;         // 1 + deepest child; bounded by AST_MAX_DEPTH
  int op;            // UNARY, BINARY: operator ('+', OP_POW, ...)
  bool shaped;       // TYPE: written with [...]
  char *name;
  char *str;
  int64_t ival;
  double fval;
  Ast *a, *b, *c;
  AstList list;
  AstList list2;
};

// Expressions nested deeper than this are an error, so every recursive walk
// over the AST has bounded depth.
#define AST_MAX_DEPTH 256

const char *ast_kind_name(AstKind k);
const char *ast_op_name(int op);   // "+", "**", "and", ...
void astlist_push(Arena *a, AstList *l, Ast *n);

// ---------------------------------------------------------------- parse.c
// Parsing one source into an AST. Syntax errors are reported through the Diag
// and recovered from, so one call reports several; the returned FILE node holds
// what could be parsed (ERROR nodes stand in for the rest).

typedef struct {
  Arena *arena;
  Diag *diag;
  int file;              // source index in diag
  int syntax_errors;     // errors this parse reported
  Ast *root;            // the FILE node, set by the grammar
  bool depth_reported;   // "nested too deeply" said once per file
} Parser;

Ast *ast_new(Parser *p, AstKind k, Span at);
// Recomputes n->depth from its children; replaces n by an ERROR node (and
// reports once) when the depth limit is exceeded.
Ast *ast_finish(Parser *p, Ast *n);

Ast *parse_source(Arena *arena, Diag *diag, int file);

// ---------------------------------------------------------------- dump_ast.c
// Writes the AST as text: one statement per line, expressions as
// S-expressions. The format is stable; tests compare against it.
void dump_ast(FILE *out, const Ast *file);
void dump_expr(FILE *out, const Ast *e);

// ---------------------------------------------------------------- builtins.c
// The names every model file can use without an import: primitive functions,
// tensor methods and properties, parameter initializers, dtypes, constants.

typedef enum {
  B_FUNC,      // exp(x), where(c, a, b), ...
  B_METHOD,    // x.reshape(...), x.sum(axis = -1)
  B_PROPERTY,  // x.T, x.shape, x.ndim
  B_INIT,      // zeros, normal(mean, std), ... (only after 'param ... =')
  B_DTYPE,     // f32, bf16, ...
  B_TYPE,      // int, float, bool, str, tensor (only in type annotations)
  B_CONST,     // training, pi
} BuiltinKind;

typedef struct {
  const char *name;
  BuiltinKind kind;
  int min_args, max_args;   // positional; max -1: any number
  const char *kwargs;       // space-separated keyword names, "" for none
  const char *signature;    // for messages: "sum(x, axis = None, keep = false)"
} Builtin;

const Builtin *builtin_find(const char *name, BuiltinKind kind);
// Calls fn(name) for every builtin of a kind (for "did you mean").
void builtin_each(BuiltinKind kind, void (*fn)(void *ctx, const char *name), void *ctx);
bool builtin_has_kwarg(const Builtin *b, const char *kw);

// ---------------------------------------------------------------- module.c
// A compilation: the entry files and everything they import, each parsed once.

typedef struct Module Module;
struct Module {
  char *path;          // as opened
  char *dir;           // folder of path, for imports relative to it
  int file;            // source index in diag
  Ast *ast;
  Module **imports;    // one per import statement, in order; NULL where it failed
  int nimports;
  const Ast *model;   // the file's model block, set by resolve_module
  struct TrainConfig *train;   // the checked train block, set by train_check
  int state;           // 0 new, 1 loading, 2 loaded (cycle detection)
  bool failed_to_read;
  int syntax_errors;   // when non-zero, imports were not loaded nor names resolved
};

#define MAX_IMPORT_DEPTH 64

typedef struct {
  Arena arena;
  Diag diag;
  Module **modules;
  int nmodules;
  char **search;       // import search path after the importing file's folder
  int nsearch;
  bool no_filesystem_imports;   // fuzzing: every import is "not found"
  Module *loading[MAX_IMPORT_DEPTH + 1];   // files being loaded, outermost first
  int nloading;
} Compilation;

void compilation_init(Compilation *c, FILE *diag_out);
void compilation_free(Compilation *c);
// Default search path: the stdlib folder, then each entry of SMELT_PATH.
void compilation_default_search(Compilation *c, const char *argv0);
// Reads, parses and loads the imports of one file given by the user.
Module *module_load_file(Compilation *c, const char *path);
// Same, from text held in memory (tests, fuzzing); copies text.
Module *module_load_text(Compilation *c, const char *name, const char *text, size_t len);
// The stdlib folder this binary uses.
const char *stdlib_dir(const char *argv0);

// ---------------------------------------------------------------- resolve.c
// Name resolution and the checks that need no shapes: unknown or duplicate
// names, calls with wrong arity or unknown keywords, statements in the wrong
// place, the train block against its schema. Reports through c->diag.
// Does nothing for a module with syntax errors.
void resolve_module(Compilation *c, Module *m);

// ---------------------------------------------------------------- train.c
// The train block's schema: which keys exist and what each accepts. A checked
// block is stored as a TrainConfig; later stages execute it.

typedef enum { PREC_FP32, PREC_TF32, PREC_BF16, PREC_FP16 } Precision;

typedef struct {
  const char *split;      // "train", "val" or "test"
  const char *inputs[2];  // the model inputs it feeds (a source may feed two)
  int ninputs;
  const char *source;     // idx, csv, tokens, text
  const char *path;       // as written; relative paths are relative to the model file
  double scale;           // idx, csv: values are multiplied by this
  const char *dtype;      // tokens: "u16" or "u32"
  double from, to;        // tokens, text: the part of the file used, as fractions
} DataSource;

typedef struct TrainConfig {
  const char *optimizer;  // sgd, adam, adamw
  double lr, momentum, beta1, beta2, eps, weight_decay;
  bool nesterov;
  const char *schedule;   // constant, step, cosine
  int64_t warmup;         // steps of linear warm-up
  int64_t step_every;     // step schedule: decay every this many steps
  double gamma;           // step schedule: factor per decay
  double min_lr;          // cosine: the floor
  Precision precision;
  int64_t batch;          // 0: the model's size B
  int64_t epochs, steps;  // exactly one is non-zero
  double clip_grad_norm;  // 0: no clipping
  int64_t seed;
  int64_t checkpoint_every;  // 0: no checkpoints
  DataSource data[16];
  int ndata;
} TrainConfig;

void train_check(Compilation *c, Module *m, const Ast *train, const Ast *model);
const char *precision_name(Precision p);

// ---------------------------------------------------------------- summary.c
// One paragraph per checked file, for 'smelt check --summary' and the demo.
void summary_print(FILE *out, const Module *m);

#endif
