// fuzz_parse.c: libFuzzer target for the front end.
//
// Any byte string goes through the lexer, the parser, name resolution,
// elaboration and autodiff (when it gets that far) and the AST dump, with
// diagnostics written to a throwaway stream. Imports never touch
// the file system here. A crash, a hang, a sanitizer report or a leak is a bug.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "compiler.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FILE *sink = fopen("/dev/null", "w");
  if (!sink) return 0;
  Compilation c;
  compilation_init(&c, sink);
  c.diag.color = false;
  c.diag.max_errors = 0;   // print every diagnostic: exercise the printer too
  c.no_filesystem_imports = true;
  Module *m = module_load_text(&c, "fuzz.smelt", (const char *)data, size);
  check_modules(&c, &m, 1, NULL, 0);   // resolve, elaborate, differentiate
  if (m->ast) dump_ast(sink, m->ast);
  compilation_free(&c);
  fclose(sink);
  return 0;
}
