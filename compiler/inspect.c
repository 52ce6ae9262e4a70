// inspect.c: `smelt inspect FILE.ingot`: what an ingot holds, read through the
// runtime's own validating reader (so what it shows is what the runtime sees).
#include "compiler.h"

#include <string.h>

#include "runtime.h"

static const char *role_name(uint32_t role) {
  static const char *names[] = {"?", "input", "output", "param", "state", "temp"};
  return role <= ROLE_TEMP ? names[role] : "?";
}

static const char *section_name(uint32_t kind) {
  static const char *names[] = {"?", "meta", "strings", "tensors", "entries", "launches", "slots",
                                "updates", "host code", "weights"};
  return kind <= SEC_WEIGHTS ? names[kind] : "?";
}

int inspect_ingot(const char *path, FILE *out, bool all) {
  smelt_ingot *ig;
  if (smelt_ingot_open(path, &ig) != SMELT_OK) {
    fprintf(stderr, "smelt: error: %s\n", smelt_last_error());
    return 1;
  }
  fprintf(out, "%s: smelt ingot, format version %d, %llu bytes\n", path, INGOT_VERSION,
          (unsigned long long)ig->size);
  fputs("\nsections:\n", out);
  for (uint32_t k = 1; k < 16; k++)
    if (ig->sec[k])
      fprintf(out, "  %-10s %10llu bytes at %10llu  crc %08x\n", section_name(k),
              (unsigned long long)ig->sec[k]->size, (unsigned long long)ig->sec[k]->offset, ig->sec[k]->crc);
  fputs("\nmeta:\n", out);
  for (const char *p = ig->meta; *p;) {
    const char *end = strchr(p, '\n');
    int len = end ? (int)(end - p) : (int)strlen(p);
    fprintf(out, "  %.*s\n", len, p);
    p += len + (end ? 1 : 0);
  }
  uint64_t params = 0, state = 0, nparams = 0;
  for (uint32_t t = 0; t < ig->ntensors; t++) {
    const IngotTensor *tt = &ig->tensors[t];
    if (tt->role == ROLE_PARAM) params += tt->bytes, nparams++;
    if (tt->role == ROLE_STATE) state += tt->bytes;
  }
  fprintf(out, "\nparameters: %llu tensors, %llu bytes; optimizer state: %llu bytes\n",
          (unsigned long long)nparams, (unsigned long long)params, (unsigned long long)state);
  fputs("\nentry points:\n", out);
  for (uint32_t i = 0; i < ig->nentries; i++) {
    const IngotEntry *e = &ig->entries[i];
    fprintf(out, "  %-12s %5u kernels, %4u updates, arena %llu bytes\n", ingot_str(ig, e->name),
            e->nlaunches, e->nupdates, (unsigned long long)e->arena_bytes);
    for (uint32_t s = 0; s < e->nslots; s++) {
      const IngotTensor *tt = &ig->tensors[ig->slots[e->first_slot + s]];
      if (tt->role != ROLE_INPUT && tt->role != ROLE_OUTPUT) continue;
      fprintf(out, "    %-6s %-24s [", role_name(tt->role), ingot_str(ig, tt->name));
      for (uint32_t d = 0; d < tt->ndim; d++) fprintf(out, "%s%lld", d ? ", " : "", (long long)tt->dims[d]);
      fputs("]\n", out);
    }
  }
  fputs("\ntensors:\n", out);
  for (uint32_t t = 0; t < ig->ntensors; t++) {
    const IngotTensor *tt = &ig->tensors[t];
    if (!all && tt->role == ROLE_TEMP) continue;
    fprintf(out, "  %-6s %-32s %s[", role_name(tt->role), ingot_str(ig, tt->name), dtype_name((DType)tt->dtype));
    for (uint32_t d = 0; d < tt->ndim; d++) fprintf(out, "%s%lld", d ? ", " : "", (long long)tt->dims[d]);
    fputs("]\n", out);
  }
  if (all) {
    fputs("\nkernels:\n", out);
    for (uint32_t k = 0; k < ig->nlaunches; k++)
      fprintf(out, "  %-32s %10llu elements -> %s\n", ingot_str(ig, ig->launches[k].symbol),
              (unsigned long long)ig->launches[k].count, ingot_str(ig, ig->tensors[ig->launches[k].out].name));
  } else {
    fputs("  (temporaries and kernels: smelt inspect --all)\n", out);
  }
  smelt_ingot_close(ig);
  return 0;
}
