// ingot_bindings.c: an ingot of several bindings of one size variable
// (smelt build -D B=1,8,64): reading its BINDINGS section, and the public
// API that lists the bindings and picks one for a batch.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

static smelt_status bindings_bad(const char *path, const char *what) {
  return rt_fail(SMELT_ERR_FORMAT, "'%s' is not a valid ingot: its bindings table %s", path, what);
}

static bool zeros(const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i]) return false;
  return true;
}

// The records of the table, checked: one variable, values increasing, this
// ingot once (offset 0), every other ingot inside the section and aligned.
static smelt_status check_records(const smelt_ingot *ig, const IngotBindingTable *t, uint64_t n, const char *path,
                                  uint32_t *self) {
  if (n < sizeof *t || !zeros(t->reserved, sizeof t->reserved)) return bindings_bad(path, "is cut short");
  if (t->count < 2 || t->count > INGOT_MAX_BINDINGS)
    return bindings_bad(path, "does not list 2 to 32 bindings");
  uint64_t head = sizeof *t + (uint64_t)t->count * sizeof(IngotBinding);
  if (n < head) return bindings_bad(path, "is cut short");
  const IngotBinding *r = (const IngotBinding *)(t + 1);
  *self = UINT32_MAX;
  for (uint32_t i = 0; i < t->count; i++) {
    if (!memchr(r[i].var, '\0', sizeof r[i].var) || !r[i].var[0] || strcmp(r[i].var, r[0].var) || r[i].reserved)
      return bindings_bad(path, "names its size variable badly");
    if (i && r[i].value <= r[i - 1].value) return bindings_bad(path, "is not in increasing order");
    if (r[i].offset == 0 && r[i].size == 0) {
      if (*self != UINT32_MAX) return bindings_bad(path, "lists this ingot twice");
      *self = i;
    } else if (r[i].offset % INGOT_ALIGN || r[i].offset < head || r[i].offset > n || r[i].size > n - r[i].offset) {
      return bindings_bad(path, "places a binding outside the section");
    }
  }
  if (*self == UINT32_MAX) return bindings_bad(path, "does not list this ingot");
  char key[48];
  snprintf(key, sizeof key, "size.%s", r[0].var);
  const char *mine = smelt_ingot_meta(ig, key);
  char want[32];
  snprintf(want, sizeof want, "%lld", (long long)r[*self].value);
  if (!mine || strcmp(mine, want)) return bindings_bad(path, "disagrees with the ingot's own sizes");
  return SMELT_OK;
}

// Whether b has exactly the parameters and state of a (names, dtypes, shapes),
// so that a checkpoint of one loads into the other.
static bool same_persistent(const smelt_ingot *a, const smelt_ingot *b) {
  uint32_t na = 0, nb = 0;
  for (uint32_t t = 0; t < b->ntensors; t++)
    nb += b->tensors[t].role == ROLE_PARAM || b->tensors[t].role == ROLE_STATE;
  for (uint32_t t = 0; t < a->ntensors; t++) {
    const IngotTensor *x = &a->tensors[t];
    if (x->role != ROLE_PARAM && x->role != ROLE_STATE) continue;
    na++;
    int64_t k = ingot_tensor(b, ingot_str(a, x->name));
    if (k < 0) return false;
    const IngotTensor *y = &b->tensors[k];
    if (y->role != x->role || y->dtype != x->dtype || y->ndim != x->ndim ||
        memcmp(y->dims, x->dims, sizeof x->dims[0] * x->ndim))
      return false;
  }
  return na == nb;
}

smelt_status ingot_bindings_open(smelt_ingot *ig, const char *path) {
  uint64_t n;
  const IngotBindingTable *t = ingot_section(ig, SEC_BINDINGS, &n);
  uint32_t self = 0;
  smelt_status st = check_records(ig, t, n, path, &self);
  if (st != SMELT_OK) return st;
  const IngotBinding *r = (const IngotBinding *)(t + 1);
  ig->bindings = calloc(t->count, sizeof *ig->bindings);
  if (!ig->bindings) return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory opening '%s'", path);
  ig->binding_records = r;
  ig->nbindings = t->count;
  for (uint32_t i = 0; i < t->count; i++) {
    if (i == self) {
      ig->bindings[i] = ig;
      continue;
    }
    char name[600];
    snprintf(name, sizeof name, "%s (binding %s=%lld)", path, r[i].var, (long long)r[i].value);
    smelt_ingot *b;
    st = ingot_open_binding((const char *)t + r[i].offset, (size_t)r[i].size, name, &b);
    if (st != SMELT_OK) return st;
    ig->bindings[i] = b;
    char key[48], want[32];
    snprintf(key, sizeof key, "size.%s", r[i].var);
    snprintf(want, sizeof want, "%lld", (long long)r[i].value);
    const char *value = smelt_ingot_meta(b, key);
    if (!value || strcmp(value, want)) return bindings_bad(path, "disagrees with a binding's own sizes");
    if (!same_persistent(ig, b) || strcmp(smelt_ingot_meta(ig, "model"), smelt_ingot_meta(b, "model")))
      return rt_fail(SMELT_ERR_FORMAT, "'%s' is not a valid ingot: its binding %s=%lld has other parameters than "
                     "binding %s=%lld", path, r[i].var, (long long)r[i].value, r[self].var, (long long)r[self].value);
  }
  return SMELT_OK;
}

void ingot_bindings_close(smelt_ingot *ig) {
  for (uint32_t i = 0; i < ig->nbindings; i++)
    if (ig->bindings[i] != ig) smelt_ingot_close(ig->bindings[i]);
  free(ig->bindings);
  ig->bindings = NULL;
  ig->nbindings = 0;
}

size_t smelt_ingot_binding_count(const smelt_ingot *ig) { return ig->nbindings ? ig->nbindings : 1; }

const smelt_ingot *smelt_ingot_binding(const smelt_ingot *ig, size_t i, const char **var, int64_t *value) {
  if (i >= smelt_ingot_binding_count(ig)) return NULL;
  if (var) *var = ig->nbindings ? ig->binding_records[i].var : NULL;
  if (value) *value = ig->nbindings ? ig->binding_records[i].value : 0;
  return ig->nbindings ? ig->bindings[i] : ig;
}

smelt_status smelt_ingot_binding_fit(const smelt_ingot *ig, int64_t value, size_t *index) {
  if (!ig->nbindings)
    return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "the ingot has one binding: no size variable to fit %lld to",
                   (long long)value);
  for (uint32_t i = 0; i < ig->nbindings; i++)
    if (ig->binding_records[i].value >= value) {
      *index = i;
      return SMELT_OK;
    }
  const IngotBinding *last = &ig->binding_records[ig->nbindings - 1];
  return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "no binding of the ingot fits %s=%lld: the largest is %s=%lld", last->var,
                 (long long)value, last->var, (long long)last->value);
}
