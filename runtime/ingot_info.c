// ingot_info.c: what an ingot holds, through the public API (smelt.h): its
// entries, their inputs and outputs, its parameters and state, its bindings.
#include <string.h>

#include "runtime.h"

_Static_assert((int)SMELT_F32 == (int)DT_F32 && (int)SMELT_F16 == (int)DT_F16 && (int)SMELT_BF16 == (int)DT_BF16 && (int)SMELT_I32 == (int)DT_I32 &&
                   (int)SMELT_I64 == (int)DT_I64 && (int)SMELT_U8 == (int)DT_U8 && (int)SMELT_BOOL == (int)DT_BOOL,
               "smelt_dtype is the ingot's dtype code");
_Static_assert((int)SMELT_INPUT == (int)ROLE_INPUT && (int)SMELT_OUTPUT == (int)ROLE_OUTPUT && (int)SMELT_PARAM == (int)ROLE_PARAM &&
                   (int)SMELT_STATE == (int)ROLE_STATE,
               "smelt_role is the ingot's role code");
_Static_assert(SMELT_MAX_DIMS == INGOT_MAX_DIMS, "one limit on dimensions");

size_t smelt_ingot_entry_count(const smelt_ingot *ig) { return ig->nentries; }

const char *smelt_ingot_entry_name(const smelt_ingot *ig, size_t i) {
  return i < ig->nentries ? ingot_str(ig, ig->entries[i].name) : NULL;
}

static bool per_entry(smelt_role role) { return role == SMELT_INPUT || role == SMELT_OUTPUT; }

// Whether tensor t has the role and, for inputs and outputs, is the entry's
// (its name is "entry/NAME", which the reader checked for every one).
static bool is_of(const smelt_ingot *ig, uint32_t t, const char *entry, size_t len, smelt_role role) {
  const IngotTensor *x = &ig->tensors[t];
  if (x->role != (uint32_t)role) return false;
  if (!per_entry(role)) return true;
  const char *name = ingot_str(ig, x->name);
  return !strncmp(name, entry, len) && name[len] == '/';
}

// The index of the i-th tensor of a role (and entry), or -1.
static int64_t nth(const smelt_ingot *ig, const char *entry, smelt_role role, size_t i, size_t *count) {
  size_t len = entry ? strlen(entry) : 0, n = 0;
  int64_t found = -1;
  if (per_entry(role) && (!entry || !ingot_entry(ig, entry))) return *count = 0, -1;
  for (uint32_t t = 0; t < ig->ntensors; t++)
    if (is_of(ig, t, entry, len, role) && n++ == i) found = t;
  *count = n;
  return found;
}

size_t smelt_ingot_tensor_count(const smelt_ingot *ig, const char *entry, smelt_role role) {
  size_t n;
  nth(ig, entry, role, SIZE_MAX, &n);
  return n;
}

smelt_status smelt_ingot_tensor_info(const smelt_ingot *ig, const char *entry, smelt_role role, size_t i,
                                     smelt_tensor_info *out) {
  memset(out, 0, sizeof *out);
  if (role < SMELT_INPUT || role > SMELT_STATE)
    return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "%d is not a tensor role (SMELT_INPUT .. SMELT_STATE)", (int)role);
  if (per_entry(role) && !entry)
    return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "inputs and outputs belong to an entry: name one");
  if (per_entry(role) && !ingot_entry(ig, entry))
    return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "the ingot has no entry point '%s'", entry);
  size_t n;
  int64_t t = nth(ig, entry, role, i, &n);
  if (t < 0)
    return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "tensor %zu asked for, of %zu", i, n);
  const IngotTensor *x = &ig->tensors[t];
  const char *name = ingot_str(ig, x->name);
  out->name = per_entry(role) ? name + strlen(entry) + 1 : name;
  out->dtype = (smelt_dtype)x->dtype;
  out->ndim = (int)x->ndim;
  for (uint32_t d = 0; d < x->ndim; d++) out->dims[d] = x->dims[d];
  out->bytes = (size_t)x->bytes;
  return SMELT_OK;
}

const char *smelt_dtype_name(smelt_dtype dtype) {
  return (unsigned)dtype <= SMELT_BOOL ? dtype_name((uint32_t)dtype) : NULL;
}

// ---- bindings (read by ingot_read.c)

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
