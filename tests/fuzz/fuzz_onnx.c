// fuzz_onnx.c: libFuzzer target for the ONNX importer (`smelt import`).
//
// Any byte string is written as model.onnx into a private folder of this
// process (tempdir_create: mode 0700, removed at exit) and imported to
// model.smelt and model.safetensors beside it; the written files are removed
// after every input, so the folder never holds more than one import's output.
// External data can name only files of that folder. When an import succeeds,
// the model file it wrote is parsed (not built): a model the importer writes
// must be valid syntax. A crash, a hang, a sanitizer report, a leak, or a
// written model that does not parse is a bug; a refusal is the expected
// answer.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "compiler.h"
#include "onnx_import.h"

static char dir[4096], onnx_path[4200], smelt_path[4200], weights_path[4200];
static FILE *sink;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  char err[512];
  if (tempdir_create(dir, sizeof dir, err, sizeof err)) {
    fprintf(stderr, "fuzz-onnx: %s\n", err);
    exit(1);
  }
  snprintf(onnx_path, sizeof onnx_path, "%s/model.onnx", dir);
  snprintf(smelt_path, sizeof smelt_path, "%s/model.smelt", dir);
  snprintf(weights_path, sizeof weights_path, "%s/model.safetensors", dir);
  sink = fopen("/dev/null", "w");
  if (!sink) exit(1);
  return 0;
}

// Parses the written model file; a syntax error in it is the importer's bug.
static void parse_written(void) {
  FILE *f = fopen(smelt_path, "rb");
  if (!f) abort();   // the import said it wrote it
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  char buf[8192];
  for (size_t k; (k = fread(buf, 1, sizeof buf, f)) > 0;) fwrite(buf, 1, k, mem);
  fclose(f);
  fclose(mem);
  Compilation c;
  compilation_init(&c, sink);
  c.diag.color = false;
  c.no_filesystem_imports = true;
  Module *m = module_load_text(&c, "model.smelt", text, len);
  if (m->syntax_errors) {
    fprintf(stderr, "fuzz-onnx: the imported model does not parse:\n%s\n", text);
    abort();
  }
  compilation_free(&c);
  free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FILE *f = fopen(onnx_path, "wb");
  if (!f) return 0;
  fwrite(data, 1, size, f);
  fclose(f);
  OnnxImport info;
  if (onnx_import(onnx_path, smelt_path, NULL, 0, NULL, sink, &info) == 0) {
    parse_written();
    onnx_import_free(&info);
  }
  unlink(smelt_path);
  unlink(weights_path);
  return 0;
}
