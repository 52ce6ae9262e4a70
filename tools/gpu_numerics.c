// gpu_numerics.c: every kernel of an ingot on a device, against the CPU device.
//
// Both sessions get the same fresh random inputs (and start from the same
// weights); every output the device is about to compute is first filled with
// 0xFF bytes (NaN for floats, -1 for integers), so an element a kernel fails
// to write shows. Each entry runs once on each device with the same seed and
// step, then each launch's output tensor is compared in launch order:
// integers and bools exactly, floats by
//     ||device - cpu|| <= tol ||cpu|| + 0.1 tol sqrt(n)
// with tol 1e-4 for f32 and 1e-2 for f16 and bf16 (as tests/test_codegen.c).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"
#include "smelt_rt.h"

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
  uint64_t n = t->bytes / (uint64_t)ingot_dtype_size(t->dtype);
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
    num += (g - w) * (g - w);
    den += w * w;
  }
  double tol = t->dtype == 0 ? 1e-4 : 1e-2;
  *rel = den > 0 ? sqrt(num / den) : sqrt(num);
  return sqrt(num) <= tol * sqrt(den) + 0.1 * tol * sqrt((double)n);
}

static const char *op_of(const char *symbol) {
  const char *k = strstr(symbol, "_k");
  const char *u = k ? strchr(k + 2, '_') : NULL;
  return u ? u + 1 : symbol;
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

// Sets the same random inputs in both sessions; poisons what the device computes.
static int prepare(smelt_session *cpu, smelt_session *dev, const smelt_ingot *ig, const IngotEntry *e) {
  const char *ename = ingot_str(ig, e->name);
  for (uint32_t k = 0; k < e->nslots; k++) {
    const IngotTensor *t = &ig->tensors[ig->slots[e->first_slot + k]];
    if (t->role != ROLE_INPUT) continue;
    char *host = malloc(t->bytes ? t->bytes : 1);
    fill_random(t->dtype, host, t->bytes / (uint64_t)ingot_dtype_size(t->dtype));
    const char *name = strchr(ingot_str(ig, t->name), '/') + 1;
    int rc = smelt_set_input(cpu, ename, name, host, t->bytes) != SMELT_OK ||
             smelt_set_input(dev, ename, name, host, t->bytes) != SMELT_OK;
    free(host);
    if (rc) return -1;
  }
  Device *d = session_device(dev);
  for (uint32_t k = 0; k < e->nlaunches; k++) {
    uint32_t out = ig->launches[e->first_launch + k].out;
    const IngotTensor *t = &ig->tensors[out];
    char *poison = malloc(t->bytes ? t->bytes : 1);
    memset(poison, 0xFF, t->bytes);
    d->copy_in(d, session_tensor(dev, e, out), poison, t->bytes);
    free(poison);
  }
  return 0;
}

int numerics_check(const char *path, const char *device) {
  smelt_ingot *ig;
  if (smelt_ingot_open(path, &ig) != SMELT_OK) {
    fprintf(stderr, "smelt-rt: error: %s\n", smelt_last_error());
    return 1;
  }
  smelt_session *cpu = NULL, *dev = NULL;
  int failures = 0, checked = 0, nops = 0;
  OpStat ops[64];
  if (smelt_session_new(ig, "cpu", 0, &cpu) != SMELT_OK || smelt_session_new(ig, device, 0, &dev) != SMELT_OK) {
    fprintf(stderr, "smelt-rt: error: %s\n", smelt_last_error());
    failures = 1;
    goto done;
  }
  for (uint32_t i = 0; i < ig->nentries; i++) {
    const IngotEntry *e = &ig->entries[i];
    const char *ename = ingot_str(ig, e->name);
    if (prepare(cpu, dev, ig, e) || smelt_run(cpu, ename, 7, 3) != SMELT_OK || smelt_run(dev, ename, 7, 3) != SMELT_OK) {
      printf("  %s: FAILED to run: %s\n", ename, smelt_last_error());
      failures++;
      continue;
    }
    Device *dd = session_device(dev), *cd = session_device(cpu);
    if (dd->sync) dd->sync(dd);
    int first_bad = -1;
    for (uint32_t k = 0; k < e->nlaunches; k++) {
      const IngotLaunch *l = &ig->launches[e->first_launch + k];
      const IngotTensor *t = &ig->tensors[l->out];
      char *got = malloc(t->bytes ? t->bytes : 1), *want = malloc(t->bytes ? t->bytes : 1);
      dd->copy_out(dd, got, session_tensor(dev, e, l->out), t->bytes);
      cd->copy_out(cd, want, session_tensor(cpu, e, l->out), t->bytes);
      double rel;
      bool ok = compare(t, got, want, &rel);
      note_op(ops, &nops, op_of(ingot_str(ig, l->symbol)), rel);
      checked++;
      if (!ok && first_bad < 0) {
        first_bad = (int)k;
        printf("  %s: kernel %s (%s) differs from the CPU: relative error %.3g\n", ename, ingot_str(ig, l->symbol),
               ingot_str(ig, t->name), rel);
      }
      free(got);
      free(want);
    }
    if (first_bad >= 0) failures++;
    printf("  %-12s %4u kernels  %s\n", ename, e->nlaunches, first_bad < 0 ? "ok" : "FAILED");
  }
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
