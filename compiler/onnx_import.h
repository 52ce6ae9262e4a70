// onnx_import.h: `smelt import`, an ONNX model to a model file (docs/onnx.md).
#ifndef SMELT_ONNX_IMPORT_H
#define SMELT_ONNX_IMPORT_H

#include <stdio.h>

#include "compiler.h"

// Reads the ONNX model at path and writes the model file smelt_path, and its
// float initializers to the .safetensors file of the same name beside it.
// dim_param names take their sizes from defs. 0, or 1 with the errors on err
// (every unsupported op type in one message).
int onnx_import(const char *path, const char *smelt_path, const Define *defs, int ndefs, FILE *err);

#endif
