// inspect.c: `smelt inspect FILE.ingot`: what an ingot holds, read through the
// runtime's own validating reader (so what it shows is what the runtime sees).
#include "tools.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#include "runtime.h"
#include "sha256.h"

static const char *role_name(uint32_t role) {
  static const char *names[] = {"?", "input", "output", "param", "state", "temp"};
  return role <= ROLE_TEMP ? names[role] : "?";
}

static const char *section_name(uint32_t kind) {
  static const char *names[] = {"?", "meta", "strings", "tensors", "entries", "launches", "slots",
                                "updates", "host code", "weights", "gpu launch", "gpu code", "costs", "outputs", "slot types",
                                "launch bufs", "bindings"};
  return kind <= SEC_BINDINGS ? names[kind] : "?";
}

static const char *format_name(uint32_t f) {
  static const char *names[] = {"?", "ptx", "cubin", "hsaco"};
  return f <= CODE_HSACO ? names[f] : "?";
}

// One kernel's resources from ptxas -v.
typedef struct {
  char name[96];
  int regs, spill_stores, spill_loads, smem, stack;
} PtxasKernel;

// Reads the per-kernel lines of a ptxas -v report; returns the count (up to max).
static int ptxas_kernels(const char *report, PtxasKernel *k, int max) {
  int n = -1;
  for (const char *line = report; line && *line;) {
    const char *p;
    if ((p = strstr(line, "Compiling entry function '")) && p < strchr(line, '\n') && n + 1 < max) {
      n++;
      memset(&k[n], 0, sizeof k[n]);
      sscanf(p, "Compiling entry function '%95[^']'", k[n].name);
    } else if (n >= 0 && strstr(line, "bytes spill stores") && strstr(line, "bytes spill stores") < strchr(line, '\n')) {
      sscanf(line, " %d bytes stack frame, %d bytes spill stores, %d bytes spill loads", &k[n].stack,
             &k[n].spill_stores, &k[n].spill_loads);
    } else if (n >= 0 && (p = strstr(line, "Used ")) && p < strchr(line, '\n')) {
      sscanf(p, "Used %d registers", &k[n].regs);
      const char *s = strstr(p, "bytes smem");
      if (s && s < strchr(line, '\n')) {
        while (s > p && s[-1] == ' ') s--;
        while (s > p && s[-1] >= '0' && s[-1] <= '9') s--;
        k[n].smem = atoi(s);
      }
    }
    line = strchr(line, '\n');
    if (line) line++;
  }
  return n + 1;
}

// The GPU code objects, with ptxas's resource summary for cubins (per kernel with all).
static void inspect_gpu(const smelt_ingot *ig, FILE *out, bool all) {
  if (!ingot_ncodes(ig)) return;
  fputs("\ngpu code:\n", out);
  enum { MAXK = 20000 };
  PtxasKernel *k = malloc(sizeof *k * MAXK);
  for (uint32_t i = 0; i < ingot_ncodes(ig); i++) {
    const IngotCode *c = ingot_code_at(ig, i);
    fprintf(out, "  %-8s %-6s %10llu bytes", ingot_str(ig, c->target), format_name(c->format), (unsigned long long)c->size);
    int n = k ? ptxas_kernels(ingot_str(ig, c->report), k, MAXK) : 0;
    if (n) {
      int regs = 0, smem = 0, spills = 0, spilling = 0;
      for (int j = 0; j < n; j++) {
        regs = k[j].regs > regs ? k[j].regs : regs;
        smem = k[j].smem > smem ? k[j].smem : smem;
        spills += k[j].spill_stores + k[j].spill_loads;
        spilling += k[j].spill_stores + k[j].spill_loads > 0;
      }
      fprintf(out, "  %d kernels, at most %d registers and %d bytes shared, %d spilling (%d bytes)", n, regs, smem,
              spilling, spills);
    }
    fputc('\n', out);
    for (int j = 0; all && j < n; j++)
      fprintf(out, "    %-40s %3d registers %6d bytes shared %5d bytes spilled\n", k[j].name, k[j].regs, k[j].smem,
              k[j].spill_stores + k[j].spill_loads);
  }
  free(k);
}

// An ingot of several bindings: each, with its entries' arenas; the rest of
// the listing is the ingot's own binding (marked "this one").
static void inspect_bindings(const smelt_ingot *ig, FILE *out) {
  size_t n = smelt_ingot_binding_count(ig);
  if (n < 2) return;
  fprintf(out, "\nbindings: %zu (one checkpoint serves every one)\n", n);
  for (size_t i = 0; i < n; i++) {
    const char *var;
    int64_t value;
    const smelt_ingot *b = smelt_ingot_binding(ig, i, &var, &value);
    fprintf(out, "  %s=%-8lld %10llu bytes", var, (long long)value, (unsigned long long)b->size);
    for (uint32_t e = 0; e < b->nentries; e++)
      fprintf(out, "%s %s arena %llu", e ? "," : "", ingot_str(b, b->entries[e].name),
              (unsigned long long)b->entries[e].arena_bytes);
    fputs(b == ig ? "  (this one, listed below)\n" : "\n", out);
  }
}

int inspect_ingot(const char *path, FILE *out, bool all) {
  smelt_ingot *ig;
  if (tools_ingot_open(path, &ig) != SMELT_OK) {
    fprintf(stderr, "smelt: error: %s\n", smelt_last_error());
    return 1;
  }
  IngotHeader h;
  memcpy(&h, ig->data, sizeof h);
  fprintf(out, "%s: smelt ingot, format version %u, %llu bytes\n", path, h.version, (unsigned long long)ig->size);
  char sha256[65];
  sha256_hex(ig->data, (size_t)ig->size, sha256);
  fprintf(out, "sha256 %s  %s\n", sha256, path);
  fputs("\nsections:\n", out);
  for (uint32_t k = 1; k <= INGOT_MAX_SECTION; k++)
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
  inspect_bindings(ig, out);
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
    fprintf(out, "  %-12s %5u kernels of %u distinct bodies, %4u updates, arena %llu bytes\n", ingot_str(ig, e->name),
            e->nlaunches, ingot_entry_bodies(ig, e), e->nupdates, (unsigned long long)e->arena_bytes);
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
    for (uint32_t k = 0; k < ig->nlaunches; k++) {
      fprintf(out, "  %-32s %10llu elements -> %s", ingot_str(ig, ig->launches[k].symbol),
              (unsigned long long)ig->launches[k].count, ingot_str(ig, ig->tensors[ig->launches[k].out].name));
      const IngotGpuLaunch *g = ingot_gpu_launch(ig, k);
      if (g) fprintf(out, "  (gpu: %u x %u)", g->grid, g->block);
      fputc('\n', out);
    }
  } else {
    fputs("  (temporaries and kernels: smelt inspect --all)\n", out);
  }
  inspect_gpu(ig, out, all);
  smelt_ingot_close(ig);
  return 0;
}
