// onnx_importer.h: what the ONNX importer's files share (onnx_import.c reads
// the model and writes the model file; onnx_ops_*.c translate the nodes, one
// family of ops each). Not a public interface: onnx_import.h is.
#ifndef SMELT_ONNX_IMPORTER_H
#define SMELT_ONNX_IMPORTER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "compiler.h"
#include "onnx.pb-c.h"

// What an ONNX value is in the model file: a graph input, a float param (its
// values in the weights file), a node's result, an integer constant known at
// import time (a shape, axes), a one-element float constant (a number), or
// an ONNX sequence of tensors, known item by item at import time.
enum { V_INPUT, V_PARAM, V_LET, V_INTS, V_SCALAR, V_SEQ };

typedef struct Value {
  char *onnx;            // the ONNX value name
  char *ident;           // its name in the model file
  int kind;
  DType dtype;
  int ndim;
  int64_t dims[MAX_DIMS];
  int64_t *ints;         // V_INTS: an integer constant (shapes, axes), nints values
  int nints;
  double scalar;         // V_SCALAR: a one-element float constant, written as a number
  bool tensor_written;   // V_INTS: a `let` of its values exists (im_is_tensor)
  struct Value **items;  // V_SEQ: its tensors, nitems of them (borrowed)
  int nitems;
  bool graph_input;      // one of the graph's inputs
  bool specialized;      // a graph input made a constant of its known value (im_specialize)
} Value;

// The values an integer graph input has in the run being imported for.
typedef struct {
  char *name;
  uint32_t dtype;
  Shape shape;
  int64_t *values;       // integers and bools
  float *floats;         // f32 (values unused)
} KnownValues;

typedef struct Importer Importer;
struct Importer {
  const char *path;
  FILE *err;
  int64_t opset;          // the default domain's version (-1: none imported)
  const Onnx__ModelProto *model;
  Value **vals;          // each allocated once: a Value * stays valid as values are added
  int nvals, cap;
  // the tensors of the safetensors file
  const char **wnames;
  uint32_t *wdtypes;
  Shape *wshapes;
  float **wdata;
  Value **wvals;         // the param of each
  int nw;
  const Onnx__GraphProto *graph;
  KnownValues *known;
  int nknown;
  char *body;            // the model's statements
  size_t blen, bcap;
  bool failed;
  // Translates the nodes of a subgraph (If's branches, Loop's and Scan's
  // bodies) as those of the main graph, in the values so far: set by
  // onnx_import.c, so that the op files call it without calling that file.
  void (*run_nodes)(Importer *im, const Onnx__GraphProto *g);
};

// One ONNX op type and the function that translates its nodes; arg is
// passed through (the operator or function name of a family's shared code).
typedef void (*OnnxNodeFn)(Importer *im, const Onnx__NodeProto *n, const char *arg);
typedef struct {
  const char *op_type;
  OnnxNodeFn fn;
  const char *arg;
} OnnxOp;

// Each family's table, ended by a row of NULLs (onnx_import.c lists them).
extern const OnnxOp onnx_math_ops[];
extern const OnnxOp onnx_shape_ops[];
extern const OnnxOp onnx_nn_ops[];
extern const OnnxOp onnx_reduce_ops[];
extern const OnnxOp onnx_norm_ops[];
extern const OnnxOp onnx_rnn_ops[];
extern const OnnxOp onnx_loss_ops[];
extern const OnnxOp onnx_attention_ops[];
extern const OnnxOp onnx_image_ops[];
extern const OnnxOp onnx_sequence_ops[];
extern const OnnxOp onnx_signal_ops[];
extern const OnnxOp onnx_misc_ops[];
extern const OnnxOp onnx_attention_preview_ops[];
extern const OnnxOp onnx_training_ops[];
extern const OnnxOp onnx_ml_ops[];
extern const OnnxOp onnx_control_ops[];

// ---- the importer's state

// The version of a domain the model imports ("ai.onnx" or "" for the
// default one, "ai.onnx.ml", "ai.onnx.preview.training", ...); -1 when none.
int64_t im_opset_of(const Importer *im, const char *domain);

// The first error only: later ones follow from it.
void im_fail(Importer *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Appends to the model's statements.
void im_out(Importer *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
Value *im_find(Importer *im, const char *name);
// A name of the model file for an ONNX name (owned): letters, digits and
// '_', no keyword or called function, unique among the values.
char *im_ident_for(Importer *im, const char *onnx);
// The expression that builds an integer or bool constant's values (owned);
// NULL with a message naming who reads it.
char *im_ints_expr(Importer *im, const char *who, const Value *v);
Value *im_add_value(Importer *im, const char *onnx, int kind, DType dt, int ndim, const int64_t *dims);
// A constant tensor (an initializer or a Constant's value) named name.
void im_add_constant(Importer *im, const char *name, const Onnx__TensorProto *t, const char *what);
// v becomes a param of the weights file holding data (owned).
Value *im_weight_of(Importer *im, Value *v, float *data);
// Whether the statements written so far read ident (outside comments).
bool im_reads(Importer *im, const char *ident);
// A float param named name (a value the importer computes: weights, indices)
// holding data, which it takes; its values go to the weights file.
Value *im_add_param(Importer *im, const char *name, int ndim, const int64_t *dims, float *data);
// Param v's tensor of the weights file becomes the param `name` of a stdlib
// layer the model file calls (fc1.w of `linear(x, 10) as fc1`), which no
// `param` line declares: of shape dims, with the values data (owned; NULL:
// v's own). v is then no param of the file (the layer is its only reader).
void im_weight_to_layer(Importer *im, Value *v, const char *name, float *data, int ndim, const int64_t *dims);
// The values of a float constant (V_PARAM or V_SCALAR) into *count; NULL for another kind.
const float *im_param_data(Importer *im, const Value *v, int64_t *count);

// ---- a node's inputs and results

// A node's name for messages: its name, else its first output's.
const char *im_node(const Onnx__NodeProto *n);

// Input i of n; NULL with a message when it is absent or undefined.
Value *im_input(Importer *im, const Onnx__NodeProto *n, size_t i);
// Makes v usable as a tensor: an integer or bool constant (V_INTS) gets a
// `let` that builds its values, once. False with a message.
bool im_is_tensor(Importer *im, const Onnx__NodeProto *n, Value *v);
// A graph input read where a constant must be (what it is to the node:
// "axes", "shape", ...) becomes the constant of its known value, when the
// import has one (smelt run model.onnx, --inputs): integers and bools a
// V_INTS, a float a number (V_SCALAR) or a param of the weights file. True
// then, with a note.
bool im_specialize(Importer *im, const Onnx__NodeProto *n, Value *v, const char *what);
// Input i, specialized to its known value when it is a graph input that
// has one (see im_specialize): for inputs that must be constants.
Value *im_const_input(Importer *im, const Onnx__NodeProto *n, size_t i, const char *what);
// Input i as a constant list of integers (a shape, axes; an integer input
// with a known value is specialized); NULL with a message.
const Value *im_ints_input(Importer *im, const Onnx__NodeProto *n, size_t i, const char *what);
// axis in [-rank, rank) made non-negative; a message when outside.
int im_axis(Importer *im, const Onnx__NodeProto *n, int64_t axis, int rank);
// An operand as an expression: a value's name, or its number.
const char *im_operand(Importer *im, const Value *v);
// The value of n's first output, of that dtype and shape.
Value *im_result(Importer *im, const Onnx__NodeProto *n, DType dt, int ndim, const int64_t *dims);
// The value of n's output k, or NULL when the node leaves it unnamed.
Value *im_result_at(Importer *im, const Onnx__NodeProto *n, size_t k, DType dt, int ndim, const int64_t *dims);
// `let NAME = EXPR` (or `output`) for y, with its shape in a comment.
void im_emit(Importer *im, const Value *y, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
// `reshape(x, y's dims)` for y.
void im_emit_reshape(Importer *im, const Value *y, const char *x);

// ---- temporaries: values of a node's own (its intermediate results)

// The ONNX name of a value of node n's own, into b: n's first output (else
// its name), a \x01, which no model's name holds, and tag. In the model
// file it reads "Y_tag" (then "Y_tag_2", ...).
const char *im_temp_name(const Onnx__NodeProto *n, const char *tag, char *b, size_t cap);
// A new value of that kind named so (im_temp_name), for the caller to fill or emit.
Value *im_temp_value(Importer *im, const Onnx__NodeProto *n, const char *tag, int kind, DType dt, int ndim,
                     const int64_t *dims);
// A temporary `let NAME = EXPR` of n's (im_temp_value); NULL with a message
// when EXPR is too long (refused, never cut).
Value *im_temp(Importer *im, const Onnx__NodeProto *n, const char *tag, DType dt, int ndim, const int64_t *dims,
               const char *fmt, ...) __attribute__((format(printf, 7, 8)));
// im_temp's value's name, for the expressions that read it; NULL likewise.
const char *im_temp_id(Importer *im, const Onnx__NodeProto *n, const char *tag, DType dt, int ndim,
                       const int64_t *dims, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
// snprintf into b; false with a message naming n when the text does not fit
// (an expression too long is refused, never cut).
bool im_fmt(Importer *im, const Onnx__NodeProto *n, char *b, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

// ---- attributes, shapes and dtypes

const Onnx__AttributeProto *onnx_attr(const Onnx__NodeProto *n, const char *name);
int64_t onnx_attr_i(const Onnx__NodeProto *n, const char *name, int64_t dflt);
double onnx_attr_f(const Onnx__NodeProto *n, const char *name, double dflt);
// The ints of an attribute into v (at most max); -1 when absent.
int onnx_attr_ints(const Onnx__NodeProto *n, const char *name, int64_t *v, int max);
// The most elements a value may have: far beyond any device, and small enough
// that products of a few such counts stay inside int64.
#define ONNX_MAX_ELEMENTS ((int64_t)1 << 48)
int64_t onnx_numel(const int64_t *dims, int ndim);
// "[2, 3]"; four buffers in turn, so a message can show several shapes.
const char *onnx_shape_str(const int64_t *dims, int ndim);
const char *onnx_dtype_word(DType d);
// An ONNX TensorProto data type as a dtype; false for one smelt lacks.
bool onnx_dtype_of(int32_t t, DType *d);
// The numpy broadcast of two shapes into d; false when they do not broadcast.
bool onnx_broadcast(const Value *a, const Value *b, int64_t *d, int *nd);
// "1, 2, 3" into b.
void onnx_join_ints(char *b, size_t cap, const int64_t *v, int n);

// ---- stdlib layers (onnx_layers.c)

// The groups of g's nodes that are one call of a stdlib layer (a Gemm or
// MatMul by a weight param -> linear, LayerNormalization and its decomposed
// form -> layernorm, ...), matched by their structure.
typedef struct OnnxLayers OnnxLayers;
OnnxLayers *onnx_find_layers(Importer *im, const Onnx__GraphProto *g);
// Whether node i belongs to a group that ends at a later node: it is held
// back until then (NULL layers: no).
bool onnx_layer_holds(const OnnxLayers *l, size_t i);
// At node i: true when a layer ends there and its values fit it, written as
// one call. False otherwise, and the nodes held back for it, if any, are in
// *held (*nheld of them), to translate before node i.
bool onnx_layer_at(Importer *im, OnnxLayers *l, size_t i, const size_t **held, int *nheld);
void onnx_layers_free(OnnxLayers *l);

#endif
