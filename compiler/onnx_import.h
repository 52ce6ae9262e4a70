// onnx_import.h: `smelt import`, an ONNX model to a model file (docs/onnx.md).
#ifndef SMELT_ONNX_IMPORT_H
#define SMELT_ONNX_IMPORT_H

#include <stdio.h>

#include "compiler.h"

// What an import made: the graph's inputs (that are not initializers) and
// outputs, by their ONNX names and their names in the model file, and
// whether it wrote a weights file.
typedef struct {
  char **onnx, **ident;   // the inputs, then the outputs
  int ninputs, noutputs;
  bool weights;
  char **built;           // the inputs built in for their known values
  int nbuilt;
} OnnxImport;

// Reads the ONNX model at path and writes the model file smelt_path, and its
// float initializers to the .safetensors file of the same name beside it.
// dim_param names take their sizes from defs. values (NULL: none) is a
// tensor file of the inputs of one run: an integer input that the graph
// needs as a constant (a shape, axes) is built in with its value there
// instead of staying an input. 0, or 1 with the errors on err
// (every unsupported op type in one message). info (NULL: not wanted) gets
// the names; onnx_import_free releases them.
int onnx_import(const char *path, const char *smelt_path, const Define *defs, int ndefs, const char *values,
                FILE *err, OnnxImport *info);
void onnx_import_free(OnnxImport *info);

#endif
