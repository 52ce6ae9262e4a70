// gpu_numerics.c: every kernel of an ingot on a device, against the CPU device.
//
// Each kernel is checked alone, on exactly the CPU's inputs: the CPU device
// runs an entry's kernels one by one (fresh random inputs, the ingot's
// weights); before each, its memory is copied to the device, where the
// kernel runs with its output filled with 0xFF bytes first (NaN for floats,
// -1 for integers, so an element it fails to write shows), and its output is
// compared with the CPU's. Checked one by one, a kernel's error is its own:
// run end to end, rounding differences grow through a training step (Adam's
// m / sqrt(v) turns tiny gradients into +-1 either way).
// Integers and bools must match exactly, floats by
//     ||device - cpu|| <= tol ||cpu|| + 0.1 tol sqrt(n)
// with tol 1e-4 for f32 and 1e-2 for f16 and bf16 (as tests/test_codegen.c).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "runtime.h"
#include "tools.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double uniform(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (double)(rng_state >> 11) / 9007199254740992.0;
}

static double elem(uint32_t dtype, const char *p, uint64_t i) {
  switch (dtype) {
  case 0: return ((const float *)p)[i];
  case 1: return (double)((const _Float16 *)p)[i];
  case 2: {
    uint32_t bits = (uint32_t)((const uint16_t *)p)[i] << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
  }
  case 3: return ((const int32_t *)p)[i];
  case 4: return (double)((const int64_t *)p)[i];
  default: return ((const uint8_t *)p)[i];
  }
}

// Whether another tensor of the entry has exactly t's bytes: an output that
// took over an input in place, which must not be poisoned before the launch.
static bool takes_over(const smelt_ingot *ig, const IngotEntry *e, const IngotTensor *t) {
  if (t->role == ROLE_PARAM || t->role == ROLE_STATE) return false;
  for (uint32_t k = 0; k < e->nslots; k++) {
    const IngotTensor *o = &ig->tensors[ig->slots[e->first_slot + k]];
    if (o != t && o->role != ROLE_PARAM && o->role != ROLE_STATE && o->arena_offset == t->arena_offset && o->bytes == t->bytes)
      return true;
  }
  return false;
}

// Random values for an input: floats in [-1, 1), integers in {0, 1} (valid
// class labels and token ids for any model), bools 0/1.
static void fill_random(uint32_t dtype, char *p, uint64_t n) {
  for (uint64_t i = 0; i < n; i++) {
    double u = uniform();
    switch (dtype) {
    case 0: ((float *)p)[i] = (float)(2 * u - 1); break;
    case 1: ((_Float16 *)p)[i] = (_Float16)(2 * u - 1); break;
    case 2: {
      float f = (float)(2 * u - 1);
      uint32_t bits;
      memcpy(&bits, &f, 4);
      ((uint16_t *)p)[i] = (uint16_t)(bits >> 16);
      break;
    }
    case 3: ((int32_t *)p)[i] = u < 0.5 ? 0 : 1; break;
    case 4: ((int64_t *)p)[i] = u < 0.5 ? 0 : 1; break;
    default: ((uint8_t *)p)[i] = u < 0.5 ? 0 : 1; break;
    }
  }
}

// The relative error of got against want (0 when equal), and whether it passes.
static bool compare(const IngotTensor *t, const char *got, const char *want, double *rel) {
  uint64_t n = t->bytes / (uint64_t)dtype_size(t->dtype);
  bool fl = t->dtype <= 2;
  if (!fl) {
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; i++) bad += elem(t->dtype, got, i) != elem(t->dtype, want, i);
    *rel = n ? (double)bad / (double)n : 0;
    return bad == 0;
  }
  double num = 0, den = 0;
  for (uint64_t i = 0; i < n; i++) {
    double g = elem(t->dtype, got, i), w = elem(t->dtype, want, i);
    if (isnan(g) || isnan(w)) {
      num += isnan(g) && isnan(w) ? 0 : INFINITY;
      continue;
    }
    if (isinf(g) || isinf(w)) {   // an infinity must be the same one (a masked score's -inf)
      num += g == w ? 0 : INFINITY;
      continue;
    }
    num += (g - w) * (g - w);
    den += w * w;
  }
  double tol = t->dtype == 0 ? 1e-4 : 1e-2;
  *rel = den > 0 ? sqrt(num / den) : sqrt(num);
  return sqrt(num) <= tol * sqrt(den) + 0.1 * tol * sqrt((double)n);
}

// The op summary of a kernel name <prefix>k<id>[_<scope>]_<ops>: from the
// first word that names an op (the scope's words are layer names).
static const char *op_of(const char *symbol) {
  static const char *const ops[] = {
#include "op_names.h"   // generated from the compiler's op table by the Makefile
  };
  for (const char *w = strchr(symbol, '_'); w; w = strchr(w + 1, '_')) {
    size_t len = strcspn(w + 1, "_");
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
      if (strlen(ops[i]) == len && !strncasecmp(ops[i], w + 1, len)) return w + 1;
  }
  return symbol;
}

typedef struct {
  char op[32];
  int kernels;
  double worst;
} OpStat;

static void note_op(OpStat *ops, int *nops, const char *op, double rel) {
  for (int i = 0; i < *nops; i++)
    if (!strcmp(ops[i].op, op)) {
      ops[i].kernels++;
      if (rel > ops[i].worst) ops[i].worst = rel;
      return;
    }
  if (*nops == 64) return;
  snprintf(ops[*nops].op, sizeof ops[*nops].op, "%s", op);
  ops[*nops].kernels = 1;
  ops[(*nops)++].worst = rel;
}

// Random inputs in the CPU session.
static int set_inputs(smelt_session *cpu, const smelt_ingot *ig, const IngotEntry *e) {
  const char *ename = ingot_str(ig, e->name);
  for (uint32_t k = 0; k < e->nslots; k++) {
    const IngotTensor *t = &ig->tensors[ig->slots[e->first_slot + k]];
    if (t->role != ROLE_INPUT) continue;
    char *host = malloc(t->bytes ? t->bytes : 1);
    fill_random(t->dtype, host, t->bytes / (uint64_t)dtype_size(t->dtype));
    const char *name = strchr(ingot_str(ig, t->name), '/') + 1;
    int rc = smelt_set_input(cpu, ename, name, host, t->bytes) != SMELT_OK;
    free(host);
    if (rc) return -1;
  }
  return 0;
}

// Runs e's kernels in step on both devices: before each kernel the CPU's
// memory is copied to the device and the kernel's outputs there (all of them:
// a fused kernel may write several) are filled with 0xFF bytes; after it, the
// outputs are compared. (Arenas reuse memory,
// so the CPU's state is only right for the kernel about to run.) Prints the
// kernels that differ; returns 1 if any.
static int check_entry(smelt_session *cpu, smelt_session *dev, const smelt_ingot *ig, const IngotEntry *e,
                       OpStat *ops, int *nops, int *checked) {
  const char *ename = ingot_str(ig, e->name);
  bool ok = set_inputs(cpu, ig, e) == 0;
  Device *dd = session_device(dev), *cd = session_device(cpu);
  int bad = 0;
  for (uint32_t k = 0; k < e->nlaunches && ok; k++) {
    uint32_t li = e->first_launch + k;
    const IngotLaunch *l = &ig->launches[li];
    // every tensor the launch writes (several for a fused kernel)
    uint32_t outs[INGOT_MAX_OUTPUTS], nouts = 1;
    outs[0] = l->out;
    if (ig->outputs) {
      nouts = ig->outputs[li].count;
      memcpy(outs, ig->outputs[li].tensor, sizeof(uint32_t) * nouts);
    }
    ok = session_mirror(dev, cpu, e) == SMELT_OK;
    for (uint32_t j = 0; j < nouts && ok; j++) {
      const IngotTensor *t = &ig->tensors[outs[j]];
      if (takes_over(ig, e, t)) continue;   // its bytes are an input's until the kernel writes them
      char *poison = malloc(t->bytes ? t->bytes : 1);
      memset(poison, 0xFF, t->bytes);
      dd->copy_in(dd, session_tensor(dev, e, outs[j]), poison, t->bytes);
      free(poison);
    }
    ok = ok && session_launch(dev, e, k, 7, 3) == SMELT_OK && session_launch(cpu, e, k, 7, 3) == SMELT_OK;
    double worst = 0;
    bool same = ok;
    const IngotTensor *bad_t = NULL;
    for (uint32_t j = 0; j < nouts && ok; j++) {
      const IngotTensor *t = &ig->tensors[outs[j]];
      char *got = malloc(t->bytes ? t->bytes : 1), *want = malloc(t->bytes ? t->bytes : 1);
      dd->copy_out(dd, got, session_tensor(dev, e, outs[j]), t->bytes);
      cd->copy_out(cd, want, session_tensor(cpu, e, outs[j]), t->bytes);
      double rel;
      if (!compare(t, got, want, &rel) && same) same = false, bad_t = t;
      if (rel > worst) worst = rel;
      free(got);
      free(want);
    }
    if (ok) note_op(ops, nops, op_of(ingot_str(ig, l->symbol)), worst);
    (*checked)++;
    if (ok && !same && bad++ < 5)
      printf("  %s: kernel %s (%s) differs from the CPU: relative error %.3g\n", ename, ingot_str(ig, l->symbol),
             ingot_str(ig, bad_t->name), worst);
  }
  if (!ok) {
    printf("  %s: FAILED to run: %s\n", ename, smelt_last_error());
    return 1;
  }
  printf("  %-12s %4u kernels  %s\n", ename, e->nlaunches, bad ? "FAILED" : "ok");
  return bad ? 1 : 0;
}

int numerics_check(const char *path, const char *device) {
  smelt_ingot *ig;
  if (tools_ingot_open(path, &ig) != SMELT_OK) {
    fprintf(stderr, "smelt-rt: error: %s\n", smelt_last_error());
    return 1;
  }
  smelt_session *cpu = NULL, *dev = NULL;
  int failures = 0, checked = 0, nops = 0;
  OpStat ops[64];
  if (tools_session_new(ig, "cpu", 0, &cpu) != SMELT_OK || tools_session_new(ig, device, 0, &dev) != SMELT_OK) {
    fprintf(stderr, "smelt-rt: error: %s\n", smelt_last_error());
    failures = 1;
    goto done;
  }
  for (uint32_t i = 0; i < ig->nentries; i++) failures += check_entry(cpu, dev, ig, &ig->entries[i], ops, &nops, &checked);
  printf("  by op (kernels, worst relative error):");
  for (int i = 0; i < nops; i++) printf("%s %s %d %.1e", i ? "," : "", ops[i].op, ops[i].kernels, ops[i].worst);
  printf("\n%s: %d kernels checked on %s, %s\n", path, checked, smelt_session_device(dev),
         failures ? "FAILED" : "all within tolerance");
done:
  smelt_session_free(cpu);
  smelt_session_free(dev);
  smelt_ingot_close(ig);
  return failures ? 1 : 0;
}
