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

#include "dtype.h"        // DType, Shape (runtime/)
#include "tensorfile.h"   // tensor files, atomic writes (runtime/)
#include "util.h"         // allocation, files, ASSERT (tools/)

#include "smelt.h"        // SMELT_VERSION_STRING (runtime/)

#define SMELT_VERSION SMELT_VERSION_STRING

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
  X(TRAIN_GROUP) /* str: parameter-name pattern; list: TRAIN_KEYs */           \
  /* types */                                                                  \
  X(TYPE)        /* name: dtype or kind; shaped: has [...]; list: dims */      \
  X(TUPLE_TYPE)  /* list: TYPEs */                                            \
  /* statements */                                                             \
  X(BLOCK)       /* list: statements */                                       \
  X(LET)         /* list2: NAMEs; a: TYPE or NULL; b: value */                \
  X(ASSIGN)      /* list2: NAMEs; b: value */                                 \
  X(PARAM)       /* name; a: TYPE; b: initializer */                          \
  X(BUFFER)      /* name; a: TYPE; b: initializer */                          \
  X(UPDATE)      /* name (a buffer); b: its value for the next step */        \
  X(INPUT)       /* name; a: TYPE */                                           \
  X(OUTPUT)      /* name; a: TYPE or NULL; b: value */                        \
  X(LOSS)        /* b: value */                                               \
  X(RETURN)      /* list: values */                                            \
  X(FOR)         /* name; a: low, or the list; b: high (exclusive) or NULL      \
                    (for x in list); c: BLOCK */                                \
  X(IF)          /* a: condition; b: BLOCK; c: else BLOCK or IF or NULL */     \
  X(ASSERT)      /* a: condition; b: message STR or NULL */                   \
  X(EXPR_STMT)   /* a: expression */                                          \
  /* expressions */                                                            \
  X(INT)         /* ival */                                                    \
  X(FLOAT)       /* fval */                                                    \
  X(STR)         /* str */                                                     \
  X(BOOL)        /* ival: 0 or 1 */                                            \
  X(NAME)        /* name */                                                    \
  X(UNARY)       /* op: '-', '+', AOP_NOT; a */                                \
  X(BINARY)      /* op; a, b */                                               \
  X(CALL)        /* a: callee (NAME or MEMBER); list: args; c: SCOPE or NULL */\
  X(KWARG)       /* name; a: value */                                         \
  X(SCOPE)       /* name; a: index or NULL; str: explicit string or NULL */   \
  X(MEMBER)      /* a: object; name */                                         \
  X(INDEX)       /* a: object; list: NAMEs, exprs, SLICEs, ELLIPSIS */        \
  X(SLICE)       /* a: start; b: stop; c: step (each may be NULL) */          \
  X(ELLIPSIS)    /* ... in an index or a shape */                            \
  X(TUPLE)       /* list: values */                                            \
  X(LIST)        /* list: values ([a, b, ...], a compile-time list) */          \
  X(ERROR)       /* stands for what a syntax error left behind */

typedef enum {
#define X(k) N_##k,
  AST_KINDS(X)
#undef X
  N_COUNT
} AstKind;

// Operators of UNARY and BINARY nodes: the character for one-character
// operators ('+', '@', ...), these for the others.
enum {
  AOP_POW = 256, AOP_FLOORDIV, AOP_EQ, AOP_NE, AOP_LE, AOP_GE, AOP_AND, AOP_OR, AOP_NOT,
};

struct Ast {
  AstKind kind;
  Span span;
  int depth;         // 1 + deepest child; bounded by AST_MAX_DEPTH
  int op;            // UNARY, BINARY: operator ('+', AOP_POW, ...)
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

// ---------------------------------------------------------------- graph.c
// The op graph: an SSA DAG of primitive ops on statically shaped tensors.
// Nodes are appended in topological order (inputs before users), so the node
// array is a valid evaluation order. Builders check shapes and dtypes and
// report a user error at the node's span when they do not fit.

typedef enum {
#define OP(name, ...) OP_##name,
#include "ops.def"
  OP_COUNT
} Op;

typedef enum {
  KIND_LEAF, KIND_UNARY, KIND_BINARY, KIND_COMPARE, KIND_SELECT, KIND_REDUCE,
  KIND_CONTRACT, KIND_CONV, KIND_POOL, KIND_MOVE, KIND_GATHER, KIND_ATTN,
} OpKind;

// The most inputs an op takes (ATTENTION_DQ, ATTENTION_DKV).
#define NODE_MAX_SRC 7

typedef enum {
  INIT_ZEROS, INIT_ONES, INIT_FULL, INIT_NORMAL, INIT_UNIFORM,
  INIT_XAVIER_UNIFORM, INIT_XAVIER_NORMAL, INIT_KAIMING_UNIFORM, INIT_KAIMING_NORMAL,
} Init;

typedef struct Node Node;
struct Node {
  int id;                // index in Graph.nodes: inputs have smaller ids
  Op op;
  DType dtype;
  Shape shape;
  Node *src[NODE_MAX_SRC];   // inputs; unused slots are NULL
  int nsrc;
  Span loc;              // model-file span, kept through every pass
  const char *name;      // INPUT, PARAM, STATE: full dotted name; else NULL
  const char *scope;     // the call scope it was built in ("h.3.attn"); "" at model level
  bool stored;           // a view kept in a buffer of its own (pass_matmul_operands)
  unsigned char fuse;    // FUSE_*: boundary() or fused() in the model file
  bool fp32;             // fp32(x) in the model file: no precision policy lowers it
  bool tf32;             // MATMUL: operands rounded to tf32 (10-bit mantissa) before the products
  bool frozen;           // PARAM: the train block freezes it, so autodiff gives it no gradient (optim_append)
  union {
    double value;                                        // CONST
    uint32_t axes;                                       // SUM, RMAX, ARGMAX: bit i = dim i
    struct { bool ta, tb; } matmul;                      // MATMUL: operands transposed
    struct { int stride[2], pad[2], dil[2], groups, kernel[2], grid[2]; } conv;
                                                         // kernel, grid: IM2COL and COL2IM's window
                                                         // size and OH x OW grid of windows
    struct { int kernel[2], stride[2], pad[2]; } pool;
    int perm[MAX_DIMS];                                  // PERMUTE
    struct { int64_t start[MAX_DIMS], step[MAX_DIMS]; } slice;
    struct { int64_t lo[MAX_DIMS], hi[MAX_DIMS]; double value; } pad;
    int axis;                                            // CONCAT
    struct {                                             // PARAM, STATE: initial value
      Init init;
      double a, b;
      const char *at;      // "model.smelt:7": the model-file line that declares it (the
                           // param statement, or the outermost call that led to it), or NULL
    } param;
    uint64_t key;                                        // RANDOM: hash of its name
    struct {                                             // ATTENTION, ATTENTION_DQ, ATTENTION_DKV
      double scale;
      double dropout;      // each weight is zeroed with this probability, the rest scaled by 1 / (1 - dropout):
      uint64_t key;        // the Philox stream (as RANDOM's) at the weight's index in [B, N, Tq, Tk]
      bool causal;
    } attn;
    struct {                                             // LABEL: the labels of one_hot
      int64_t n, skip;     // classes [0, n); skip: the ignored label, when skips
      bool skips;
      int line;            // the model-file line of the call that led to it (1-based)
      const char *fn;      // the function whose labels these are ("cross_entropy", "one_hot")
      const char *at;      // "model.smelt:12", for messages
    } label;
  } p;
};

// How the user steers fusion at one expression (docs/fusion.md).
enum { FUSE_AUTO, FUSE_BOUNDARY, FUSE_INLINE, FUSE_REMAT };

// A write of a persistent tensor at the end of a step: target := value.
typedef struct {
  Node *target;          // PARAM or STATE
  Node *value;
} Update;

typedef struct {
  const char *name;
  Node *node;
} Output;

typedef struct {
  Arena *arena;
  Diag *diag;
  Node **nodes;
  int n, cap;
  Output *outputs;       // named results: model outputs, "loss", gradients
  int noutputs, outputs_cap;
  Update *updates;       // persistent writes of a training step
  int nupdates, updates_cap;
  Node *loss;            // the scalar loss, or NULL
  Node *loss_grad;       // what autodiff seeds the loss's gradient with (loss scaling); NULL: one
  bool differentiated;   // past the autodiff stage (pipeline.c): simplify drops stop_gradient nodes
  const char *scope;     // scope given to nodes built now
  Span loc;              // span given to nodes built now
  // Called after a user error is reported (elaboration adds the call chain
  // and unwinds); NULL: builders return NULL after reporting.
  void (*on_error)(void *ctx);
  void *on_error_ctx;
} Graph;

// The columns of ops.def.
const char *op_name(Op op);
OpKind op_kind(Op op);
int op_nsrc(Op op);
// The cost of computing one element of a pointwise op where it is read:
// arithmetic 1, division and roots 2, transcendental functions 8.
int op_cost(Op op);
bool op_takes_low(Op op);    // computes in the low type when its float inputs are low
bool op_folds(Op op);        // exact in every backend: folded over constants
bool op_keeps_ints(Op op);   // elementwise: integer operands keep their dtype
const char *op_verb(Op op);  // "add", "compare", ...; "" for ops no message names
const char *op_builtin(Op op);   // unary ops: "exp" for exp(x) and x.exp(); "" for none
// The dtype two operands meet at: bool < u8 < i32 < i64 < f16, bf16 < f32;
// f16 with bf16 meet at f32.
DType dtype_promote(DType a, DType b);

void graph_init(Graph *g, Arena *arena, Diag *diag);
void graph_free(Graph *g);    // frees the arrays, not the arena
void graph_add_output(Graph *g, const char *name, Node *n);
void graph_add_update(Graph *g, Node *target, Node *value);
Node *graph_find_leaf(const Graph *g, Op op, const char *name);
// Appends an existing node (a pass rebuilding the node array), giving it its new id.
void graph_adopt(Graph *g, Node *n);
// Removes the nodes that no output, update or loss depends on (an input the
// outputs do not need disappears too) and renumbers the rest, in order.
void graph_prune(Graph *g);

// Builders. Each checks its operands, reports a user error naming the op and
// the shapes involved (then calls g->on_error), and returns the new node.
Node *g_leaf(Graph *g, Op op, DType t, Shape s, const char *name);
Node *g_const(Graph *g, double v, DType t, Shape s);
Node *g_iota(Graph *g, int64_t n, DType t);
Node *g_random(Graph *g, Shape s, const char *name);
Node *g_unary(Graph *g, Op op, Node *x);
Node *g_cast(Graph *g, Node *x, DType t);
// x's bits as dtype t (BITCAST): f32 <-> i32, bool -> u8 (0 or 1), or x itself.
Node *g_bitcast(Graph *g, Node *x, DType t);
// BITAND, BITOR, BITXOR, SHL, SHR, BITNOT: the ops on the bits of integers.
bool op_is_bitwise(Op op);
Node *g_binary(Graph *g, Op op, Node *a, Node *b);
Node *g_where(Graph *g, Node *c, Node *a, Node *b);
Node *g_reduce(Graph *g, Op op, Node *x, uint32_t axes, bool keep);
Node *g_matmul(Graph *g, Node *a, Node *b, bool ta, bool tb);
Node *g_conv2d(Graph *g, Node *x, Node *w, const int stride[2], const int pad[2],
               const int dil[2], int groups);
Node *g_conv2d_grad(Graph *g, Op op, Node *a, Node *b, const Node *fwd);
// The transposed convolution of x [N, Cin, H, W] with w [Cin, Cout / groups, KH, KW]
// (PyTorch's layout): the input gradient of a convolution, a CONV2D_DX node of
// shape [N, Cout, (H - 1) * stride - 2 * pad + dil * (KH - 1) + out_pad + 1, ...].
Node *g_conv_transpose(Graph *g, Node *x, Node *w, const int stride[2], const int pad[2],
                       const int out_pad[2], const int dil[2], int groups);
// x [N, C, H, W] scaled up by integer factors to [N, C, H * scale0, W * scale1]
// as torch.nn.functional.interpolate does it: nearest (x[n, c, i // s0,
// j // s1], a view) or bilinear with align_corners = False (gathers).
Node *g_upsample(Graph *g, Node *x, const int scale[2], bool bilinear);
// A convolution-family node (op) of the given shape with fwd's stride,
// padding, dilation and groups: the gradients of CONV2D_DX.
Node *g_conv_like(Graph *g, Op op, Node *a, Node *b, Shape s, const Node *fwd);
// The windows that convolution `conv` multiplies, as rows: [N, OH * OW, C * KH * KW]
// (conv: a CONV2D, or the CONV2D_DW of one).
Node *g_im2col(Graph *g, Node *x, const Node *conv);
// IM2COL's transpose for the input gradient dx (a CONV2D_DX): rows
// [N, OH * OW, C * KH * KW] summed back into dx's shape.
Node *g_col2im(Graph *g, Node *rows, const Node *dx);
Node *g_pool(Graph *g, Op op, Node *x, const int kernel[2], const int stride[2], const int pad[2]);
Node *g_pool_grad(Graph *g, Op op, Node *x, Node *dy, const Node *fwd);
Node *g_reshape(Graph *g, Node *x, Shape s);
Node *g_permute(Graph *g, Node *x, const int *perm);
Node *g_broadcast(Graph *g, Node *x, Shape s);
Node *g_slice(Graph *g, Node *x, const int64_t *start, const int64_t *stop, const int64_t *step);
Node *g_pad(Graph *g, Node *x, const int64_t *lo, const int64_t *hi, double value);
Node *g_concat(Graph *g, Node *a, Node *b, int axis);
Node *g_gather(Graph *g, Node *table, Node *ids);
// LABEL: ids unchanged, each checked against [0, n) when the graph runs
// (p.label's other fields are the caller's to fill).
Node *g_label(Graph *g, Node *ids, int64_t n);
Node *g_scatter_add(Graph *g, Node *ids, Node *values, int64_t rows);
// Fused attention (ATTENTION): q [B, N, Tq, D], k [B, N, Tk, D], v [B, N, Tk, Dv]
// (float; computed in f32), mask bool broadcastable to [B, N, Tq, Tk] or NULL,
// key j <= query i only when causal; dropout on the weights with probability
// dropout in [0, 1), from the random stream called stream (NULL without).
// Returns the [B, N, Tq, Dv + 1] node: the output, then each row's
// log-sum-exp; g_attention_out is its output part.
Node *g_attention(Graph *g, Node *q, Node *k, Node *v, Node *mask, bool causal, double scale, double dropout,
                  const char *stream);
Node *g_attention_out(Graph *g, Node *fwd);
// Whether attention node n's mask is a constant true (no mask given).
bool attention_unmasked(const Node *n);
// ATTENTION_DQ or ATTENTION_DKV of fwd (an ATTENTION node) for the output's
// gradient dout [B, N, Tq, Dv] and delta = rowsum(dout * out) [B, N, Tq, 1].
Node *g_attention_grad(Graph *g, Op op, Node *fwd, Node *dout, Node *delta);
// Sums x down to shape s, undoing a broadcast (x's shape broadcasts from s).
Node *g_unbroadcast(Graph *g, Node *x, Shape s);

// ---------------------------------------------------------------- autodiff.c
// Appends the backward pass of g->loss to g. Returns gradients by node id, an
// array of the forward graph's size that the caller frees: grads[p->id] for
// every PARAM p the loss depends on, unless p->frozen, and every INPUT in wrt
// (NULL elsewhere).
Node **autodiff(Graph *g, Node *const *wrt, int nwrt);

// ---------------------------------------------------------------- optim.c
// Turns a forward graph with a loss into a training step: backward pass,
// gradient clipping, learning-rate schedule and optimizer update, all as graph
// ops. Optimizer state is STATE leaves named after their parameter
// ("fc1.w.m", "fc1.w.v", "fc1.w.momentum") plus the step counter "step" (i64);
// every write is a graph update. total_steps is the run's length (for the
// cosine schedule); 0 makes it a STATE "total_steps" for the trainer to set.
// Adds the outputs "grad.NAME" for every parameter.
// Returns 0, or -1 after reporting an error.
// A frozen parameter (train `freeze`) gets no gradient, step or state and no
// "grad.NAME" output; each parameter takes the settings of its group.
struct TrainConfig;
struct ParamGroup;
int optim_append(Graph *g, const struct TrainConfig *cfg, int64_t total_steps);
// The training step in parts, for data parallelism (docs/distributed.md):
// OPTIM_WHOLE is optim_append; OPTIM_GRADS stops after the backward pass with
// each trainable parameter's true gradient as the f32 output "grad.P" (the
// fp16 loss scale divided out, buffers still updated); OPTIM_APPLY drops the
// forward graph's outputs and updates and runs the optimizer on f32 inputs
// "grad.P" instead (clipping, loss-scale skipping and the step counter there).
typedef enum { OPTIM_WHOLE, OPTIM_GRADS, OPTIM_APPLY } OptimPart;
int optim_append_part(Graph *g, const struct TrainConfig *cfg, int64_t total_steps, OptimPart part);
// The group that decides the settings of the parameter called name: the first frozen group
// whose pattern matches, else the first group that matches, else NULL (the
// optimizer's own settings).
const struct ParamGroup *optim_group_of(const struct TrainConfig *cfg, const char *name);

// ---------------------------------------------------------------- pass_matmul.c
// Every matmul reads stored, row-major operands with B not transposed, so the
// host runs it as register tiles: an operand that is a view is stored, and a
// transposed B is copied once into B's transpose. Attention's q, k, v and
// dout are stored likewise (attention_operand). Keeps: values, topological
// order (new nodes are inserted before their matmul; ids are renumbered).
void pass_matmul_operands(Graph *g);

// pass_conv_gemm: a float convolution and its gradients become im2col /
// col2im and matmuls (which then run tiled), batched over the groups of a
// grouped one (not a depthwise one: conv_takes_gemm); ungrouped:
//   conv(x, w) -> reshape(reshape(w, [O, C*KH*KW]) @ im2col(x)^T, NCHW), x stored
//                 (C*KH*KW * MATMUL_MAX_NR at most MATMUL_PANEL), else
//   conv(x, w) -> permute(reshape(im2col(x) @ reshape(w, [O, C*KH*KW])^T), NCHW)
//   dx(dy, w)  -> col2im(g(dy)^T @ reshape(w, [O, C*KH*KW]))
//   dw(x, dy)  -> reshape(reshape(permute(g(dy), [1, 0, 2]), [O, N*OH*OW]) @ reshape(im2col(x), [N*OH*OW, C*KH*KW]))
// with g(dy) = dy as [N, O, OH*OW], dy stored (read in place by both), and x
// stored for the weight gradient; grouped (or a weight gradient too large for
// the packed kernel, matmul_conv_dw), rows(dy) = dy as [N, OH*OW, O] and
//   dx(dy, w)  -> col2im(rows(dy) @ reshape(w, [O, C*KH*KW]))
//   dw(x, dy)  -> reshape(sum over the batch of rows(dy)^T @ im2col(x))
// Run after autodiff (IM2COL and COL2IM have no gradient rule). Keeps:
// values (up to the order of sums), order.
void pass_conv_gemm(Graph *g);
// Whether mm is the weight gradient's GEMM of an ungrouped convolution
// above; *grad: g(dy) [N, O, P], *cols: the im2col [N, P, Q] (either NULL).
// pass_matmul_operands leaves its views as they are: the host packs the
// im2col's window columns block by block from the image (Kernel.packed_b).
bool matmul_conv_dw(const Node *mm, const Node **grad, const Node **cols);
// Whether mm is the forward GEMM W @ im2col(x)^T of an ungrouped
// convolution above; *cols: the im2col [N, P, Q] (NULL: not wanted). Its
// im2col is left a view too: the host packs each column tile's window values
// from the image (Kernel.packed_windows); the GPU reads them inline.
bool matmul_conv_fwd(const Node *mm, const Node **cols);
// Whether pass_conv_gemm rewrites cv: a float convolution (or gradient),
// ungrouped, or grouped with at least GEMM_MIN_GROUP output channels and
// weights per output channel in each group (not depthwise).
#define GEMM_MIN_GROUP 4
bool conv_takes_gemm(const Node *cv);

// ---------------------------------------------------------------- pass_precision.c
// The precision policy (docs/precision.md). bf16 and fp16 rewrite a forward
// graph before autodiff: matmuls and convolutions take their operands in the
// low type, accumulate in f32 and give the low type; pointwise ops on those
// values stay low; exp, log, sqrt, pow, reductions (so softmax, norms and
// losses) and everything that meets another f32 activation compute in f32.
// Parameters stay f32 (cast where a low op reads them); outputs keep their
// dtype. fp32(x) exempts x. tf32 marks every f32 matmul and convolution of a
// whole step instead (pass_precision_tf32). fp32 changes nothing.
void pass_precision(Graph *g, int precision);
void pass_precision_tf32(Graph *g);
// After autodiff: a low matmul, convolution gradient or sum whose every
// reader casts it to f32 gives f32 itself (so parameter gradients are not
// rounded to the low type on the way).
void pass_precision_grads(Graph *g);
// The low storage type of a policy: bf16, f16, or f32 for fp32 and tf32.
DType precision_low_type(int precision);
int precision_parse(const char *s);   // -1 when unknown

// ---------------------------------------------------------------- simplify.c
// Rewrites that change no value: constant folding (exact ops only),
// algebraic identities, casts of casts, movement chains collapsed into one
// view, transposes folded into matmul operands, common subexpressions, dead
// code. count (SIMP_COUNT entries, or NULL) is added to per rule.
// Afterwards every output has a node of its own that is no leaf (a copy
// where outputs alias each other, an input, a parameter or state).

enum { SIMP_CSE, SIMP_FOLD, SIMP_IDENTITY, SIMP_CAST, SIMP_MOVE, SIMP_MATMUL, SIMP_DEAD, SIMP_COUNT };

void pass_simplify(Graph *g, int *count);
const char *simplify_rule_name(int rule);

// ---------------------------------------------------------------- pass_remat.c
// Activation recomputation: a cheap forward value the backward pass reads is
// computed again (a copy of its pointwise chain) right before its first
// backward reader when that keeps nothing else alive longer; with all, every
// such value, else those remat() marks. forward_end: the first node of the
// backward pass. Values are unchanged, bit for bit.

typedef struct {
  int values;               // forward values no longer kept for the backward pass
  uint64_t bytes;           // their bytes
  uint64_t flops;           // the elementwise ops added
} RematStats;

void pass_remat(Graph *g, int forward_end, bool all, RematStats *st);

// ---------------------------------------------------------------- dump_graph.c
// 'smelt dump --stage=graph|grad': one line per node,
//   %12 = add(%10, %11) : f32[64, 256]   # h.0.attn  model.smelt:12
// and 'smelt graph --dot': Graphviz with nodes clustered by scope.
void dump_graph(FILE *out, const Graph *g);
void dump_graph_dot(FILE *out, const Graph *g);

// ---------------------------------------------------------------- interp.c
// The reference interpreter: evaluates a graph in plain C. Every value is held
// as doubles and rounded to its dtype after each op (so f32 values are exactly
// representable floats); reductions and contractions accumulate in double.

typedef struct {
  double **vals;         // per node id: numel values, row-major; owned
  int n;
} InterpResult;

// leaves[id] gives the values of INPUT, PARAM and STATE nodes (numel each,
// borrowed); RANDOM uses (seed, step). Returns 0, or -1 with a message in err
// when an index is out of range (gather, scatter).
int interp_run(const Graph *g, double *const *leaves, uint64_t seed, uint64_t step,
               InterpResult *out, char *err, size_t errlen);
// The same; with exact set, floating-point results are not rounded to their
// dtype (float64 throughout), which finite-difference checks need.
int interp_run_ex(const Graph *g, double *const *leaves, uint64_t seed, uint64_t step, bool exact,
                  InterpResult *out, char *err, size_t errlen);
void interp_free(InterpResult *r);
// The reference value of a pointwise op (unary, binary, compare, select) of
// scalars, in double, unrounded: what the interpreter computes per element.
// Operands past the op's inputs are ignored.
double interp_pointwise(Op op, double a, double b, double c);
// Rounds v to what dtype t can hold (f32, bf16, f16: nearest even; ints: truncate, wrap).
double dtype_round(DType t, double v);

// ---------------------------------------------------------------- philox.c
// Philox-4x32-10, the counter-based generator behind RANDOM and initializers.
void philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
// Uniform in [0, 1) for element i of the stream (seed, key, step): 24 random bits.
double philox_uniform(uint64_t seed, uint64_t key, uint64_t step, uint64_t i);
// A standard normal from the same stream (Box-Muller on two uniforms).
double philox_normal(uint64_t seed, uint64_t key, uint64_t step, uint64_t i);
// FNV-1a of a name: the key of a parameter's or a random op's stream.
uint64_t name_key(const char *name);
// Fills a PARAM or STATE node's initial values (numel doubles) from its
// initializer, keyed by seed and the node's name.
void init_fill(const Node *n, uint64_t seed, double *out);

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
  struct EntryCache *cache;   // the graph check_modules built, for the build (pipeline.c); owned
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
  int precision;       // a Precision from --precision, or -1: the train block's
  const char *dump_after;   // --dump-after: the pass whose result the pipeline prints, or NULL
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
  const char *source;     // idx, csv, tokens, text, npy
  const char *path;       // as written; relative paths are relative to the model file
  double scale;           // idx, csv, npy: values are multiplied by this
  const char *columns;    // csv: the columns read ("a,b", "0..3"), NULL for all
  const char *dtype;      // tokens: "u16", "u32" or "llm.c" (llm.c's .bin shards)
  double from, to;        // tokens, text: the part of the file used, as fractions
} DataSource;

// Parameters chosen by a glob over their dotted names (`group "*.b" { ... }`
// or `freeze = ...`) and the optimizer settings they get instead of the
// optimizer's own.
typedef struct ParamGroup {
  const char *pattern;    // fnmatch(3) glob over the whole name; '*' also matches '.'
  Span span;              // the pattern in the model file, for "matches no parameter"
  bool frozen;            // from `freeze`: no gradient, no step, no optimizer state
  double lr, momentum, beta1, beta2, eps, weight_decay;   // the optimizer's unless the group sets them
  bool nesterov;
} ParamGroup;

// A learning-rate schedule written as an expression (`schedule = lr * ...`),
// checked and folded by train_check, built into the step graph by optim.c.
typedef struct SchedExpr SchedExpr;
struct SchedExpr {
  Op op;                  // CONST (value); INPUT (name: "step", "lr" or "total_steps");
                          // NEG, SQRT, EXP, LOG, SIN, COS, ABS, FLOOR (a); ADD, SUB, MUL, DIV,
                          // POW, MIN, MAX and the comparisons (a, b); WHERE (a, b, c)
  double value;
  const char *name;
  SchedExpr *a, *b, *c;
};

typedef struct TrainConfig {
  const char *optimizer;  // sgd, adam, adamw
  double lr, momentum, beta1, beta2, eps, weight_decay;
  bool nesterov;
  const char *schedule;   // constant, step, cosine, linear, inverse_sqrt, or "expression"
  int64_t warmup;         // steps of linear warm-up
  int64_t step_every;     // step schedule: decay every this many steps
  double gamma;           // step schedule: factor per decay
  double min_lr;          // cosine: the floor
  double decay_to;        // linear: the last step's learning rate, as a fraction of lr
  const SchedExpr *schedule_expr;   // "expression": the learning rate at step t
  Span schedule_span;     // "expression": as written, for summaries
  ParamGroup *groups;     // frozen ones first, then the groups in file order
  int ngroups;
  Precision precision;
  int64_t batch;          // 0: the model's size B
  int64_t epochs, steps;  // exactly one is non-zero
  double clip_grad_norm;  // 0: no clipping
  int64_t seed;           // SMELT_DEFAULT_SEED unless the block sets one
  int64_t checkpoint_every;  // 0: no checkpoints
  DataSource data[16];
  int ndata;
} TrainConfig;

void train_check(Compilation *c, Module *m, const Ast *train, const Ast *model);

// The one seed of a model (docs/random.md): its train block's `seed`, or
// SMELT_DEFAULT_SEED. Initial weights (build, init), data order, dropout.
#define SMELT_DEFAULT_SEED 1
uint64_t model_seed(const Module *m);
// The precision policy an entry is built under: --precision, else the train
// block's, else fp32.
int entry_precision(const Compilation *c, const Module *m);
const char *precision_name(Precision p);

// ---------------------------------------------------------------- kernel.c
// Kernels and fusion. Views, constants and iota are folded into the loads of
// the kernels that read them, so they get no kernel and no buffer. With
// fusion on, pointwise ops are folded the same way (a pointwise chain with its
// broadcasts and views is one kernel; a reduction computes its pointwise
// producers as it reads them), a reduction or contraction computes its
// pointwise consumers before it stores (an epilogue), and pointwise kernels
// of one shape that read the same tensors share one kernel (several
// outputs). Every other node is stored: leaves in buffers the caller
// provides, kernel outputs in buffers of their own. docs/fusion.md has the
// rules.

typedef enum {
  KK_POINTWISE, KK_REDUCE, KK_MATMUL, KK_CONV, KK_POOL, KK_GATHER, KK_RANDOM,
  KK_ATTN,               // fused attention: an iteration is one row of its output (codegen_attn.c)
  KK_COPY,               // a folded node that must be stored: an output, an update
} KernelKind;

typedef enum { FUSION_ALL, FUSION_POINTWISE, FUSION_NONE } FusionMode;   // zero: the default

// Why a node is stored, and so kept apart from the kernels that read it.
typedef enum {
  SR_NONE,               // not stored: folded or fused into its consumers' kernels
  SR_LEAF,               // input, parameter, state
  SR_RESULT,             // output, loss or update value
  SR_ROOT,               // reduction, contraction, conv, pool, gather, random, attention
  SR_FUSION_OFF,         // --fusion=none
  SR_OPERAND,            // a matmul or attention operand (their kernels read stored rows)
  SR_BOUNDARY,           // boundary() in the model file
  SR_RECOMPUTE,          // several readers or a broadcast read, and costly
  SR_BUDGET,             // the inlined expression would grow past the budget
  SR_REDUCE_READ,        // a root not read once at its own index by pointwise ops
  SR_EPILOGUE_TAKEN,     // its consumer's kernel has a root already
  SR_MEMORY,             // inlining would hold larger inputs alive longer
  SR_WINDOWS,            // an image a convolution's packing reads KH x KW times (pass_conv_gemm)
} StoreReason;

// Register tile of the host matmul: MATMUL_MR rows by KernelPlan.nr columns
// (16 or 32 floats: one or two vector registers of the target per row).
#define MATMUL_MR 6
// Longest K of a packed matmul (Kernel.packed): its MATMUL_MR x K panel of A,
// 48 KB at most, lives on the kernel's stack and stays in L1/L2 while every
// column tile reads it.
#define MATMUL_PANEL_K 2048
// A panel's floats, and the widest tile (KernelPlan.nr) of any host target.
#define MATMUL_PANEL (MATMUL_MR * MATMUL_PANEL_K)
#define MATMUL_MAX_NR 32
// The widest row a host scatter_rows kernel sums on its stack (floats).
#define SCATTER_ROW_MAX 4096
#define KERNEL_MAX_OUTS 8
#define KERNEL_MAX_ROOTS 6

typedef struct Kernel {
  KernelKind kind;       // of its root
  Node *out;             // outs[0]
  Node *outs[KERNEL_MAX_OUTS];   // stored results, computed in order at one index
  int nouts;             // (all of one element count; later ones may read earlier ones there)
  Node *root;            // what shapes the loop: a reduction, contraction, ...
                         // whose epilogue gives out; else out itself
  bool rows;             // a row kernel (fuse_rows.c): roots are reductions over the
                         // same rows, computed in turn for each row; outs have
                         // the rows' shape or their elements' (roots[0]->src[0])
  Node *roots[KERNEL_MAX_ROOTS];   // roots[0] == root
  int nroots;
  char name[96];         // symbol: <prefix>k<id>_<scope>_<ops>
  bool tiled;            // KK_MATMUL on stored f32 operands, B not transposed:
                         // iterates over MATMUL_MR x nr tiles of the output
  bool packed;           // tiled, with A an im2col computed in the kernel (implicit GEMM):
                         // an iteration packs MATMUL_MR rows of A from the image into a
                         // panel, then runs every column tile of those rows against it
  bool packed_b;         // tiled, a weight gradient's GEMM (matmul_conv_dw) with its im2col
                         // computed in the kernel: an iteration is a column tile of dW, over
                         // blocks of output rows of each image, each block's window columns
                         // packed from the image into a panel that every row tile reads
  bool packed_windows;   // tiled, a forward convolution's GEMM W @ im2col^T (matmul_conv_fwd)
                         // with its im2col computed in the kernel: an iteration is a column
                         // tile of one image's output positions, whose window values are
                         // packed from the image into a Q x nr panel that every row tile of
                         // W reads
  bool scatter_rows;     // the host's SCATTER_ADD: an iteration is a row of the result, which
                         // walks the ids once and adds the value rows of its id (the GPU's
                         // kernel stays one element per thread)
  int64_t count;         // iterations: root elements, tiles when tiled, row tiles when packed,
                         // column tiles when packed_b or packed_windows, result rows when scatter_rows
  // The kernel's own buffer numbers: its code reads and writes buffer b at
  // bufs[b] of the table it is given; bufs[b] is the plan's slot of buffer b
  // (its outputs first, then what it reads, in the order kernel_reads finds
  // them), so kernels that differ only in their slots have the same code.
  int *bufs;
  int nbufs;
  // Set by codegen_share_bodies: the earlier kernel (of this build) whose
  // code this one runs, or NULL when its own is compiled; and the number of
  // its body among the build's distinct bodies.
  const struct Kernel *same;
  int body;
} Kernel;

typedef struct {
  Kernel *kernels;       // in schedule order
  int n;
  int *slot;             // by node id: buffer slot, -1 for folded and fused nodes
  unsigned char *why;    // by node id: StoreReason
  Node **slot_node;      // by slot: the node stored there
  int nslots;
  int nr;                // columns of a matmul tile
  FusionMode mode;
  int *reuses;           // by slot: the slot whose bytes it takes over in place, or -1
                         // (set by the ingot writer's memory plan; NULL: none)
} KernelPlan;

// Plans g's kernels, named with prefix ("" or "train_"). The graph's outputs
// and update values are always stored, folded or not.
// nr: the matmul tile's columns for the target (codegen_tile_columns).
// The same graph and mode give the same kernels in the same order.
void kernel_plan(const Graph *g, const char *prefix, int nr, FusionMode mode, KernelPlan *p);
void kernel_plan_free(KernelPlan *p);
// The buffer a matmul reads operand x from: x itself when stored, the
// stored tensor x reshapes (the same layout), or the stored tensor a float
// cast x converts (converted as it is loaded); NULL when x is an expression
// computed as it is read.
const Node *matmul_operand_buffer(const KernelPlan *p, const Node *x);
// Row kernels (fuse_rows.c), during kernel_plan: kernels are made, slots only
// say stored (>= 0) or not; kernel_of maps node ids to kernel indices.
void fuse_rows(const Graph *g, KernelPlan *p, int *kernel_of, const bool *result);
const char *fusion_mode_name(FusionMode m);
int fusion_mode_parse(const char *s, FusionMode *m);   // 0, or -1 for an unknown name
const char *store_reason_text(StoreReason r);
// Whether every read kernel k makes of stored node x is at the element of
// k's output that it computes (so the output may overwrite x in place).
bool kernel_reads_only_at_own_index(const KernelPlan *p, const Kernel *k, const Node *x);

// ---------------------------------------------------------------- plan_query.c
// Views, CONST and IOTA: computed inside the loads of their consumers.
bool node_is_folded(const Node *n);
// Unary, binary, compare and select ops.
bool node_is_pointwise(const Node *n);
// The iterations of an attention kernel: the rows of its output, each a
// query (ATTENTION, ATTENTION_DQ) or a key (ATTENTION_DKV).
int64_t attention_rows(const Node *n);
// Whether input s of attention node n is a float operand read row by row many
// times (q, k, v, dout), which is stored contiguous like a matmul's.
bool attention_operand(const Node *n, int s);
// What a kernel must move and compute at least: each stored tensor it reads
// once, its outputs once; FLOPs counted as 2 per multiply-add, 1 per
// elementwise op (estimates, for profiles and roofline ratios).
void kernel_cost(const KernelPlan *p, const Kernel *k, uint64_t *read, uint64_t *written, uint64_t *flops);
// Calls fn for every stored node kernel k reads (through folded and fused
// nodes), each time it is reached; not its own outputs.
void kernel_reads(const KernelPlan *p, const Kernel *k, void (*fn)(void *ctx, const Node *n), void *ctx);

// ---------------------------------------------------------------- memplan.c
// Arena offsets with reuse: tensors whose lifetimes (launch indices, both
// ends included) meet never overlap.

typedef struct {
  uint64_t bytes;
  int first, last;       // the launches that write it and last read it (-1 .. n: the whole entry)
  uint64_t offset;       // set by memplan_pack
  int reuses;            // the buffer whose bytes it takes over in place, or -1 (memplan_inplace)
} MemBuf;

// Lifetimes of plan p's slots (b by slot): inputs, outputs, the loss and
// update values live for the whole entry.
void memplan_lifetimes(const Graph *g, const KernelPlan *p, MemBuf *b);
// In-place reuse: a kernel's output takes over the bytes of a tensor of the
// same size that the kernel reads only at the output's own index and that
// nothing reads afterwards (sets reuses; the planned buffers only).
void memplan_inplace(const KernelPlan *p, MemBuf *b, const bool *plan);
// Offsets for the buffers with plan[i] set; returns the arena size. A buffer
// that reuses another gets the other's offset.
uint64_t memplan_pack(MemBuf *b, const bool *plan, int n, uint64_t align);
// An entry's whole plan: lifetimes, in-place reuse (recorded in p->reuses),
// packing of every slot but parameters and state (in[s] says which).
// Returns the arena size; *total: the planned buffers' bytes, each aligned.
uint64_t memplan_entry(const Graph *g, KernelPlan *p, MemBuf *b, bool *in, uint64_t align, uint64_t *total);
// The planner's invariant: inside the arena, no two live-together buffers
// overlap, except a buffer and the one it reuses in place.
bool memplan_check(const MemBuf *b, const bool *plan, int n, uint64_t arena, char *err, size_t errlen);

// ---------------------------------------------------------------- target/host.c
// LLVM IR for every kernel of a plan, optimized and emitted as an x86-64
// object. Each kernel is
//   void NAME(char **bufs, int64_t begin, int64_t end, int64_t *ctx)
// and computes the output elements [begin, end) (row-major), so a caller can
// split the range over threads. bufs[b] holds the values of the kernel's
// buffer b (Kernel.bufs: the plan's slot bufs[b]) in its dtype; ctx = {seed, step, error}: a kernel that meets a bad index sets
// error to 1 + the node id. cpu: an LLVM CPU name ("x86-64-v3"), or NULL for
// this machine's.

typedef struct {
  char *data;            // owned
  size_t len;
} Blob;

// Compiles the kernels of nplans plans (one per entry point) into one object.
int codegen_host(const KernelPlan *const *plans, int nplans, const char *cpu, Blob *object,
                 char *err, size_t errlen);
// Distinct body number `body` (among the kernels that run their own, in the
// order of plans) alone in one object, under the name symbol: each body of
// a build is compiled so (pipeline.c), in parallel and through the build
// cache, and the objects are linked together (link_shared_objects) with
// each kernel's name an alias of its body's symbol.
int codegen_host_body(const KernelPlan *const *plans, int nplans, const char *cpu, int body, const char *symbol,
                      Blob *object, char *err, size_t errlen);
// The same module as NUL-terminated text: LLVM IR after O3 (ir), or x86-64 assembly.
int codegen_host_text(const KernelPlan *const *plans, int nplans, const char *cpu, bool ir, Blob *text, char *err,
                      size_t errlen);
// The matmul tile width that suits the CPU: 32 with AVX-512, else 16.
int codegen_tile_columns(const char *cpu);
// Links an object into a shared library at path with the cc found on PATH
// (tool_path). The object is written beside path as PATH.o, a new file:
// path must be in a private folder (tempdir_create).
int link_shared(const Blob *object, const char *path, char *err, size_t errlen);
// The same for n objects, linked in their order (written as PATH.0.o,
// PATH.1.o, ...), with names[i] defined as an alias of symbols[i] for each
// of the naliases.
int link_shared_objects(const Blob *objects, int n, const char *const *names, const char *const *symbols, int naliases,
                        const char *path, char *err, size_t errlen);

// ---------------------------------------------------------------- codegen_share.c
// Kernels of the plans whose code is the same on every target of a build
// (cpu, as codegen_host takes it, and the GPU targets) share one body: each
// gets the first such kernel as Kernel.same (NULL for that one), and every
// kernel the number of its body (Kernel.body), in the order of plans. The
// code generators then compile the kernels with same NULL only. Returns the
// number of distinct bodies, or -1 with a message. The texts are made on up
// to `threads` threads (each kernel's the same on any).
//
// With digests not NULL, also each body's cache key on each target of the
// build (the host, then gpus in order): the SHA-256 of its unoptimized IR
// on that target (under one name for all kernels), the processor (this machine's name and
// features for cpu NULL), the launch shape on a GPU, the LLVM and smelt
// versions and the optimization pipeline, so equal keys are equal code.
typedef struct {
  int nbodies, ntargets;
  uint8_t (*key)[32];        // key[body * ntargets + target]; owned
} BodyKeys;
// The symbol a body is compiled under on a target, from its key there
// ("smelt_" and 32 hex digits), so its code does not depend on its
// kernels' names; the kernels' names are made aliases of it when linking.
void body_symbol(const uint8_t key[32], char out[40]);
int codegen_share_bodies(KernelPlan *const *plans, int nplans, const char *cpu, const char *const *gpus, int ngpus,
                         int threads, BodyKeys *digests, char *err, size_t errlen);

// ---------------------------------------------------------------- build_cache.c
// Compiled bodies kept between builds in $XDG_CACHE_HOME/smelt (default
// ~/.cache/smelt), by their keys (BodyKeys); every entry is checked by its
// SHA-256 when read, and the folder is kept under max_bytes by removing the
// least recently used entries (SMELT_CACHE_MAX, default 2G). Thread-safe:
// the code generators' threads read and write it at once.
#define BUILD_CACHE_DEFAULT_BYTES (2ull << 30)
typedef struct {
  bool on;
  char dir[4096];
  uint64_t max_bytes;
  _Atomic int hits, misses;
  int evicted;               // entries removed by build_cache_trim
} BuildCache;
// Finds or creates the folder; 0, or -1 with a message (the build then runs without a cache).
int build_cache_open(BuildCache *bc, char *err, size_t errlen);
// The payload stored under key into out (owned, NUL-terminated), or false: a
// miss, or an entry that fails its check (which is removed).
bool build_cache_get(BuildCache *bc, const uint8_t key[32], Blob *out);
// Stores data under key (atomically; a failure to write leaves no entry).
void build_cache_put(BuildCache *bc, const uint8_t key[32], const Blob *data);
// Removes the least recently used entries until the folder is under 9/10 of
// max_bytes, when it is over max_bytes; and temporaries older than an hour.
void build_cache_trim(BuildCache *bc);

// ---------------------------------------------------------------- host_cpu.c
// Whether LLVM knows an x86-64 CPU name ("native": this machine's); and its
// table of them, printed to stderr.
bool host_cpu_known(const char *cpu);
void host_cpu_list(void);

// ---------------------------------------------------------------- codegen_gpu.c, target/gpu.c
// The same kernels for GPUs: NVPTX (PTX text) and AMDGPU (an ELF object),
// each kernel
//   void NAME(char **bufs, int64_t count, const uint64_t *rng, int64_t *error)   (rng: {seed, step})
// run on the one-dimensional grid gpu_launch_shape gives (runtime/ingot.h).

typedef struct {
  uint32_t grid, block, shared;
} GpuLaunch;

// The grid and block kernel k is written for; the same for every GPU target.
void gpu_launch_shape(const Kernel *k, GpuLaunch *out);
// GPU architectures this compiler emits for: sm_75 ... sm_120a, gfx900 ... gfx1201.
bool gpu_target_known(const char *target);
bool gpu_target_is_nvidia(const char *target);
// "sm_75, sm_80, ..." for error messages.
void gpu_target_list(char *buf, size_t len);
// Compiles every kernel of the plans for target: PTX text (NVIDIA; out->data
// is NUL-terminated after out->len bytes) or an AMDGPU ELF object. 0, or -1
// with a message.
int codegen_gpu(const KernelPlan *const *plans, int nplans, const char *target, Blob *out, char *err,
                size_t errlen);
// Distinct body number `body` alone in one module, under the name symbol
// (pipeline.c compiles each body of an NVIDIA target so, and joins their PTX
// with ptx_join).
int codegen_gpu_body(const KernelPlan *const *plans, int nplans, const char *target, int body, const char *symbol,
                     Blob *out, char *err, size_t errlen);
// PTX modules of one target as one: the first one's header (version, target,
// address size), then every module's functions in order, with every
// symbols[i] in part i written as names[i]. 0, or -1 with a message when
// their headers differ.
int ptx_join(const Blob *parts, int n, const char *const *names, const char *const *symbols, Blob *out, char *err,
             size_t errlen);
// The same module as NUL-terminated text: LLVM IR after O3 (ir), or the
// target's assembly (PTX, AMDGPU assembly).
int codegen_gpu_text(const KernelPlan *const *plans, int nplans, const char *target, bool ir, Blob *text, char *err,
                     size_t errlen);

// ---------------------------------------------------------------- gpu_tools.c
// The external assemblers and linkers of the GPU targets, found on PATH or
// in their usual places; when one is missing the caller is told, not failed.

// Assembles PTX for arch with ptxas -v into a cubin; *report gets ptxas's
// resource report (owned). 1 when assembled, 0 when ptxas is not installed,
// -1 with a message when it failed.
int ptx_assemble(const Blob *ptx, const char *arch, Blob *cubin, char **report, char *err, size_t errlen);
// Links an AMDGPU object into a code object with ld.lld. 1, 0 (no ld.lld), -1.
int amdgpu_link(const Blob *object, Blob *hsaco, char *err, size_t errlen);
// The path of a tool (ptxas, ld.lld-22, ...) or NULL; storage of the calling thread, until its next call.
// Searches PATH's elements, then /usr/local/cuda/bin and /usr/lib/llvm-22/bin;
// empty and relative elements of PATH are skipped (they would mean the
// current folder).
const char *gpu_tool_path(const char *name);
// As gpu_tool_path, on PATH alone (cc for linking the host code).
const char *tool_path(const char *name);

// ---------------------------------------------------------------- llvm_errors.c
// LLVM's fatal errors and failed allocations end the process
// with "smelt: error: out of memory while compiling WHAT" (or "LLVM failed
// while compiling WHAT: REASON") and exit status 1, after removing the
// temporary folders. Installed once, before LLVM is first used.
void llvm_errors_install(void);
// Names what LLVM is working on now, printf-style: "kernel fc1_matmul".
void llvm_errors_at(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// ---------------------------------------------------------------- tempdir.c
// Private temporary folders (mkdtemp, mode 0700, under $TMPDIR or /tmp),
// removed by tempdir_remove, at exit, and on SIGINT, SIGTERM, SIGHUP and
// SIGQUIT (the handler removes them and re-raises the signal).

// Creates a folder; dir (n bytes) receives its path. 0, or -1 with a message.
int tempdir_create(char *dir, size_t n, char *err, size_t errlen);
// Removes the folder made by tempdir_create and the files in it.
void tempdir_remove(const char *dir);
// Removes every folder made by tempdir_create: system calls only, so safe
// where the process is about to _exit (llvm_errors.c) or in a signal handler.
void tempdir_remove_all(void);

// ---------------------------------------------------------------- elaborate.c
// AST to op graph: evaluates compile-time values, inlines function calls,
// unrolls loops, binds the model's sizes (defaults, overridden by -D), creates
// parameters under their scoped names, and checks every shape and dtype.
// The first user error is reported with the call chain and ends elaboration.

typedef struct {
  const char *name;
  int64_t value;
} Define;

// Builds the forward graph of module m's model into g (graph_init'ed by the
// caller). training selects the value of the constant `training`. Returns 0,
// or -1 after reporting an error.
int elaborate(Compilation *c, Module *m, const Define *defs, int ndefs, bool training, Graph *g);

// ---------------------------------------------------------------- ingot_write.c
// `smelt build`'s last step: a compiled model (pipeline_build) written as one
// ingot (runtime/ingot.h) at path, atomically: its entries' tensors,
// launches, slots and updates, the code for each target and the initial
// weights. 0, or -1 after reporting.

typedef struct {
  const char *cpu;          // LLVM CPU name ("x86-64-v3"), or NULL for this machine's
  const char *gpus[16];     // GPU targets ("sm_90", "gfx90a")
  int ngpus;
  FusionMode fusion;        // FUSION_ALL (zero) unless asked otherwise
  bool remat;               // --remat (pass_remat.c)
  bool infer_only;          // --entry=infer: the infer entry alone (no labels, no optimizer state)
  uint64_t max_memory;      // refuse a model whose session needs more bytes (memory_need.c); 0: no limit
  int jobs;                 // threads for code generation (--jobs); 0: one per core
  bool data_parallel;       // also train_grad and train_apply, the step in two (docs/distributed.md)
  bool no_cache;            // --no-cache: compile every body, read and write no cache (build_cache.c)
} BuildTargets;
// The threads a build's code generation runs on for --jobs=jobs (0: one per online core).
int codegen_threads(int jobs);

struct Build;
// The other bindings an ingot carries (smelt build -D B=1,8,64): n values of
// var in increasing order, self the one being written, images[i] and
// sizes[i] the others' whole ingot files (without bindings of their own).
typedef struct {
  const char *var;
  int n, self;
  const int64_t *values;
  char *const *images;
  const size_t *sizes;
} IngotBindings;
// Writes the ingot at path (atomically), with bindings unless that is NULL;
// its SHA-256, as 64 hex digits, into sha256 (65 bytes) unless that is NULL.
// 0, or -1 after a diagnostic.
int ingot_write(Compilation *c, Module *m, const struct Build *b, const Define *defs, int ndefs, const BuildTargets *t,
                const IngotBindings *bindings, const char *path, char *sha256);
// `smelt build --emit-c NAME`: the ingot at ingot_path as C source at path
// (atomically), defining `const unsigned char NAME[]` (64-byte aligned) and
// `const size_t NAME_size`, for smelt_ingot_open_memory. name is a C
// identifier (opt_c_identifier). 0, or -1 with a message in err.
int ingot_write_c(const char *ingot_path, const char *name, const char *path, char *err, size_t errlen);

// ---------------------------------------------------------------- dump_plan.c
// Two lines on kernel k: the ops it computes and the model-file lines they came from.
void kernel_describe(FILE *out, const Graph *g, const KernelPlan *p, const Kernel *k);
// 'smelt graph --dot --fused': the op graph with each kernel a cluster.
void dump_graph_dot_fused(FILE *out, const Graph *g, const KernelPlan *p);

// ---------------------------------------------------------------- explain.c
// `smelt explain`: an entry point's kernels in schedule order (kind, ops,
// model-file lines, bytes, FLOPs, and for every tensor read from an earlier
// kernel the rule that kept them apart), against fusion off; with memory,
// the arena against the sum of intermediates and the largest live set; with
// svg, a picture of buffer lifetimes written there.

typedef struct {
  const char *entry;        // "train_step", "eval", "infer"
  FusionMode fusion;
  bool remat;
  bool memory;
  const char *svg;          // or NULL
  // data parallelism (docs/distributed.md): ranks > 0 prints the estimate
  // of one step on that many ranks instead of the kernel list
  int ranks;
  double link_gbps;         // the all-reduce's bus bandwidth, GB/s
  double tflops;            // one rank's sustained TFLOP/s; 0: not given
} ExplainOptions;

int explain_model(Compilation *c, Module *m, const Define *defs, int ndefs, const ExplainOptions *o, FILE *out);
// Kernels, bytes moved, planned arena and the sum of the arena's tensors of a plan.
void explain_stats(const Graph *g, KernelPlan *p, int *kernels, uint64_t *moved, uint64_t *arena,
                   uint64_t *intermediates);

// ---------------------------------------------------------------- bisect.c
// `smelt bisect`: ingot's entry run kernel by kernel on a device against the
// reference interpreter on random inputs; reports the first kernel whose
// output diverges beyond its dtype's tolerance, with its model-file lines.
// The ingot must be the one m (with defs and fusion) compiles to. Returns
// the exit status: 0 when every kernel agrees, 1 otherwise.

typedef struct {
  const char *entry;
  const char *device;
  FusionMode fusion;
  bool remat;
  uint64_t seed, step;
  int tile_columns;   // the ingot's host matmul tiles (codegen_tile_columns of its CPU)
} BisectOptions;

int bisect_run(Compilation *c, Module *m, const Define *defs, int ndefs, const char *ingot, const BisectOptions *o);

// ---------------------------------------------------------------- graph_verify.c
// The invariants every pass keeps: node ids are indices and inputs come
// first, input counts as ops.def gives them, no input, output, update or
// loss outside the graph, and the builders' shape and dtype rules that one
// node shows (broadcasts, reductions, matmul sizes, views). true, or false
// with the first violation in err.
bool graph_verify(const Graph *g, char *err, size_t errlen);

// ---------------------------------------------------------------- pipeline.c
// The compiler's passes, in order, in one place. An entry point is compiled
// by one flat list of passes (PASS_*); pipeline_build compiles every entry
// of a model and its code for each target, which ingot_write serializes.
// Between passes the graph is verified when verification is on (a test
// build, -DSMELT_VERIFY, or SMELT_VERIFY set and not "0"); the pass that
// --dump-after (Compilation.dump_after) names prints what it made to stdout.

#define PIPELINE_PASSES(X)                                                     \
  X(ELABORATE, "elaborate")   /* the AST to the forward graph */              \
  X(PRECISION, "precision")   /* the precision policy on the forward graph */ \
  X(AUTODIFF, "autodiff")     /* backward pass, optimizer, gradient precision */ \
  X(OUTPUTS, "outputs")       /* infer: the loss and what only it reads dropped */ \
  X(SIMPLIFY, "simplify")     /* simplify.c */                                \
  X(REMAT, "remat")           /* pass_remat.c */                              \
  X(CONV_GEMM, "conv_gemm")   /* convolutions as im2col and matmuls */        \
  X(MATMUL, "matmul")         /* matmul operands stored for register tiles */ \
  X(KERNELS, "kernels")       /* the kernel plan, with fusion */              \
  X(MEMPLAN, "memplan")       /* the arena's offsets */                       \
  X(CODEGEN, "codegen")       /* machine code for every target */

typedef enum {
#define X(id, name) PASS_##id,
  PIPELINE_PASSES(X)
#undef X
  PASS_COUNT
} Pass;

const char *pass_name(Pass p);
int pass_parse(const char *name);   // a Pass, or -1 when no pass has that name
// Whether graph_verify runs between passes.
bool pipeline_verifying(void);
void pipeline_set_verify(bool on);

// An entry point: "train_step" (training = true: forward, backward and
// optimizer; needs a loss and a train block), "eval" (training = false,
// outputs and loss), "infer" (eval without the loss), or "step": the
// training step as `smelt check` builds it (training = true; backward, and
// the optimizer with a train block, when the model has a loss).
typedef struct {
  const char *name;
  Graph g;
  int forward;              // nodes after elaboration
  KernelPlan plan;          // PASS_KERNELS (zero before)
  MemBuf *mem;              // by slot, PASS_MEMPLAN: lifetimes and offsets; owned
  bool *in_arena;           // by slot: placed in the arena (not a parameter or state); owned
  uint64_t arena;           // the arena's bytes
  uint64_t unplanned;       // the planned buffers' bytes, each aligned, without reuse
} Entry;

typedef struct {
  const Define *defs;
  int ndefs;
  Pass last;                // the last pass to run; 0 (ELABORATE) means MEMPLAN
  bool training_off;        // "step": elaborate with training = false (--infer)
  bool remat;               // recompute every cheap forward value the backward pass reads (--remat)
  FusionMode fusion;
  int tile_columns;         // matmul tile columns of the kernel plan; 0: 16
  const char *prefix;       // of kernel names; NULL: entry_prefix(entry)
  int *simplified;          // out: per-rule counts of pass_simplify (SIMP_COUNT entries), or NULL
  RematStats *remat_stats;  // out, or NULL
} EntryOptions;

// Runs entry `entry` of m's model through o->last into e (which it
// initializes; entry_free frees it, also after a failure). 0, or -1 after
// reporting (also when the model has no such entry).
int pipeline_entry(Compilation *c, Module *m, const char *entry, const EntryOptions *o, Entry *e);
void entry_free(Entry *e);

// What an ingot holds: its entries compiled, and their code for each target.
typedef struct {
  const char *target;       // "sm_90", "gfx90a"
  Blob code;                // PTX text (NVIDIA; NUL after len) or a linked code object (AMD)
  Blob cubin;               // NVIDIA, when ptxas is installed; else empty
  char *report;             // ptxas's resource report (owned), or NULL
} GpuCode;

// The entries a build may hold, in the ingot's order; train_grad and
// train_apply (the training step in two, for data parallelism) only when
// BuildTargets.data_parallel asks for them.
enum { BUILD_TRAIN, BUILD_EVAL, BUILD_INFER, BUILD_GRAD, BUILD_APPLY, BUILD_ENTRIES };
extern const char *const build_entry_names[BUILD_ENTRIES];

typedef struct Build {
  Entry entries[BUILD_ENTRIES];   // in the ingot's order: train_step, eval, infer, train_grad, train_apply
  bool on[BUILD_ENTRIES];         // built: train_step with a loss and a train block, eval unless infer_only, infer
  Blob host;                // every entry's kernels, linked into one shared object
  GpuCode gpu[16];          // one per BuildTargets.gpus
  int ngpus;
} Build;

// Compiles m's entries through the memory plan, without code, and checks
// them against t->max_memory. 0, or -1 after reporting; build_free frees b.
int pipeline_plan(Compilation *c, Module *m, const Define *defs, int ndefs, const BuildTargets *t, Build *b);
// Compiles m's entries for the host CPU and each GPU target of t. 0, or -1
// after reporting. build_free frees b, also after a failure.
int pipeline_build(Compilation *c, Module *m, const Define *defs, int ndefs, const BuildTargets *t, Build *b);
void build_free(Build *b);
// pipeline_build, then ingot_write at path.
int ingot_build(Compilation *c, Module *m, const Define *defs, int ndefs, const BuildTargets *t,
                const char *path);

// ---------------------------------------------------------------- memory_need.c
// What a session of a built model allocates: the persistent tensors, once
// (parameters; state: buffers and optimizer moments) and each entry's arena.

typedef struct {
  uint64_t params, state;   // persistent bytes
  uint64_t arena[BUILD_ENTRIES];   // by Build entry; 0 when not built
  uint64_t total;           // everything a session allocates for tensors
} MemoryNeed;

void memory_need(const Build *b, MemoryNeed *need);
// "17.0 MB (parameters 1.1 MB, state 2.2 MB; arena train_step 13.3 MB, ...)"
void memory_need_print(FILE *out, const Build *b, const MemoryNeed *need);
// An error naming m, every part and the limit when the total exceeds limit
// (0: none); 0, or -1 after reporting.
int memory_need_check(Compilation *c, const Module *m, const Build *b, uint64_t limit);
// --max-memory's default: this machine's physical memory (0 when unknown).
uint64_t memory_default_limit(void);

// `smelt dump --stage=S` and `smelt graph --dot`: what one stage made, on out.
typedef struct {
  const char *stage;        // ast, graph, grad, simplified, fused, plan, llvm, ptx, amdgcn, asm
  const char *entry;        // or NULL: train_step for a model with a train block (unless infer), else infer
  const char *target;       // a GPU target for llvm, or NULL; ptx: default sm_80; amdgcn: default gfx90a
  const char *cpu;          // asm and host llvm: the x86-64 CPU (NULL: x86-64-v3)
  bool infer;               // graph, grad: elaborate with training = false
  bool dot;                 // graph, fused: as Graphviz DOT
  FusionMode fusion;
  bool remat;
  const Define *defs;
  int ndefs;
} DumpOptions;

bool dump_stage_known(const char *stage);
// 0, or -1 after reporting.
int pipeline_dump(Compilation *c, Module *m, const DumpOptions *o, FILE *out);

// Resolves every module, then runs each entry file's model through the
// "step" entry's first passes (elaborate, precision, autodiff) so that
// shape and dtype errors are found too; each graph is kept on its module
// for a pipeline_build with the same sizes. Returns the error count.
int check_modules(Compilation *c, Module **entries, int nentries, const Define *defs, int ndefs);
// What check_modules keeps on a module (Module.cache) for the build.
struct EntryCache {
  Entry e;                  // a "step" entry through PASS_AUTODIFF
  bool backward;            // autodiff ran (the model has a loss)
  Define *defs;             // the sizes it was built with (owned copies of the names)
  int ndefs;
};
// Frees what check_modules kept on m (compilation_free calls it).
void module_cache_free(Module *m);
// Appends backward and (with a train block) optimizer to a forward graph.
int training_step(Compilation *c, Module *m, Graph *g);
// training_step, or one of its data-parallel parts (optim_append_part).
int training_step_part(Compilation *c, Module *m, Graph *g, OptimPart part);
// The graph of one entry point ("train_step", "eval" or "infer") as an ingot
// compiles it: pipeline_entry through PASS_MATMUL into g (graph_init'ed by
// the caller, who frees it). 0, or -1 after reporting.
// o: NULL for the defaults.
typedef struct {
  bool remat;               // recompute every cheap forward value the backward pass reads (--remat)
  int *simplified;          // out: per-rule counts of pass_simplify (SIMP_COUNT entries), or NULL
  RematStats *remat_stats;  // out, or NULL
} GraphOptions;
int entry_graph(Compilation *c, Module *m, const Define *defs, int ndefs, const char *entry, Graph *g,
                const GraphOptions *o);
// The prefix of an entry's kernel names: "train_", "eval_", "infer_".
const char *entry_prefix(const char *entry);

// ---------------------------------------------------------------- summary.c
// One paragraph per checked file, for 'smelt check --summary' and the demo.
void summary_print(FILE *out, const Module *m, const Diag *d);
// One line on a model's graph: parameters, forward ops, training-step ops.
void summary_graph(FILE *out, const Graph *g, int forward_nodes);
// With parameter groups or `freeze`: each group and frozen pattern, its
// settings that differ from the optimizer's and the parameters of g it takes.
void summary_groups(FILE *out, const Graph *g, const struct TrainConfig *t);

// ---------------------------------------------------------------- timing.c
// Where a compile spends its time (smelt build --time): milliseconds and
// runs of each stage, summed over the process (over the threads of a
// parallel codegen too). Counting is always on; it costs a clock read per
// stage run.
#define TIME_STAGES(X)                                                         \
  X(TIME_PARSE, "parse")                                                       \
  X(TIME_ELABORATE, "elaborate")                                               \
  X(TIME_AUTODIFF, "autodiff")                                                 \
  X(TIME_PASSES, "graph passes")                                               \
  X(TIME_KERNELS, "kernels")                                                   \
  X(TIME_MEMPLAN, "memplan")                                                   \
  X(TIME_SHARE, "kernel bodies (keys)")                                       \
  X(TIME_CACHE_HIT, "cache: hits (reads)")                                     \
  X(TIME_CACHE_MISS, "cache: misses (look-ups)")                               \
  X(TIME_CACHE_PUT, "cache: writes")                                           \
  X(TIME_HOST_IR, "host: LLVM IR")                                             \
  X(TIME_HOST_OPT, "host: LLVM optimization")                                  \
  X(TIME_HOST_EMIT, "host: object emission")                                   \
  X(TIME_LINK, "host: link")                                                   \
  X(TIME_GPU_IR, "gpu: LLVM IR")                                               \
  X(TIME_GPU_OPT, "gpu: LLVM optimization")                                    \
  X(TIME_GPU_EMIT, "gpu: PTX/code object emission")                            \
  X(TIME_GPU_ASSEMBLE, "gpu: ptxas/ld.lld")                                    \
  X(TIME_WRITE, "ingot write")
typedef enum {
#define X(id, name) id,
  TIME_STAGES(X)
#undef X
  TIME_COUNT
} TimeStage;
double time_now(void);                      // a monotonic clock, in seconds
void time_add(TimeStage s, double since);   // one run of s, from since (time_now) until now
int time_runs(TimeStage s);
double time_ms(TimeStage s);
void time_reset(void);
// Every stage that ran: name, milliseconds, runs; then the wall time since since.
void time_print(FILE *out, double since);

#endif
