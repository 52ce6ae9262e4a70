// ingot_read.c: opening an ingot, trusting nothing in it.
//
// The whole file is read into memory, then checked before any of it is used:
// magic, version and size; the section table's checksum; each section's
// bounds, alignment and checksum; every record's string offsets, tensor
// indices, dimensions and ranges. After smelt_ingot_open succeeds the rest of
// the runtime can index the tables without further checks.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

const char *ingot_str(const smelt_ingot *ig, uint32_t offset) { return ig->strings + offset; }

const void *ingot_section(const smelt_ingot *ig, uint32_t kind, uint64_t *size) {
  const IngotSection *s = kind < 16 ? ig->sec[kind] : NULL;
  if (size) *size = s ? s->size : 0;
  return s ? ig->data + s->offset : NULL;
}

const IngotEntry *ingot_entry(const smelt_ingot *ig, const char *name) {
  for (uint32_t i = 0; i < ig->nentries; i++)
    if (!strcmp(ingot_str(ig, ig->entries[i].name), name)) return &ig->entries[i];
  return NULL;
}

int64_t ingot_tensor(const smelt_ingot *ig, const char *name) {
  for (uint32_t i = 0; i < ig->ntensors; i++)
    if (!strcmp(ingot_str(ig, ig->tensors[i].name), name)) return i;
  return -1;
}

const IngotGpuLaunch *ingot_gpu_launch(const smelt_ingot *ig, uint32_t i) {
  return ig->gpu_launches && i < ig->nlaunches ? &ig->gpu_launches[i] : NULL;
}

const IngotCost *ingot_cost(const smelt_ingot *ig, uint32_t i) {
  return ig->costs && i < ig->nlaunches ? &ig->costs[i] : NULL;
}

uint32_t ingot_ncodes(const smelt_ingot *ig) { return ig->ncodes; }
const IngotCode *ingot_code_at(const smelt_ingot *ig, uint32_t i) { return i < ig->ncodes ? &ig->codes[i] : NULL; }
const void *ingot_code_data(const smelt_ingot *ig, const IngotCode *code) {
  return (const char *)ingot_section(ig, SEC_GPU_CODE, NULL) + code->offset;
}

const IngotCode *ingot_code(const smelt_ingot *ig, const char *target, uint32_t format) {
  for (uint32_t i = 0; i < ig->ncodes; i++)
    if (ig->codes[i].format == format && !strcmp(ingot_str(ig, ig->codes[i].target), target)) return &ig->codes[i];
  return NULL;
}

// A string offset is valid when it starts inside STRINGS and a NUL follows.
static bool str_ok(const smelt_ingot *ig, uint32_t off) {
  return off < ig->strings_size && memchr(ig->strings + off, '\0', ig->strings_size - off) != NULL;
}

static smelt_status bad(const char *path, const char *what) {
  return rt_fail(SMELT_ERR_FORMAT, "'%s' is not a valid ingot: %s", path, what);
}

static bool in_arena(const IngotTensor *t) { return t->role != ROLE_PARAM && t->role != ROLE_STATE; }

// Every input, output and temporary lies in the slots of exactly one entry,
// whose name begins its own ("eval/x"): a caller reaches it by that name in
// that entry's arena, which the slot checks bound it by.
static smelt_status check_owners(const smelt_ingot *ig, const char *path) {
  uint32_t *owner = malloc(sizeof *owner * (ig->ntensors ? ig->ntensors : 1));   // by tensor: its entry
  if (!owner) return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory reading '%s'", path);
  memset(owner, 0xff, sizeof *owner * ig->ntensors);
  smelt_status st = SMELT_OK;
  for (uint32_t i = 0; i < ig->nentries && st == SMELT_OK; i++) {
    const IngotEntry *e = &ig->entries[i];
    for (uint32_t s = 0; s < e->nslots && st == SMELT_OK; s++) {
      uint32_t t = ig->slots[e->first_slot + s];
      if (!in_arena(&ig->tensors[t])) continue;
      if (owner[t] != UINT32_MAX && owner[t] != i) st = bad(path, "a tensor lies in the slots of two entries");
      owner[t] = i;
    }
  }
  for (uint32_t t = 0; t < ig->ntensors && st == SMELT_OK; t++) {
    if (!in_arena(&ig->tensors[t])) continue;
    if (owner[t] == UINT32_MAX) {
      st = bad(path, "an input, output or temporary lies in no entry's slots");
      break;
    }
    const char *name = ingot_str(ig, ig->tensors[t].name), *entry = ingot_str(ig, ig->entries[owner[t]].name);
    size_t len = strlen(entry);
    if (strncmp(name, entry, len) || name[len] != '/') st = bad(path, "a tensor's name is not its entry's");
  }
  free(owner);
  return st;
}

// Checks the tables; returns SMELT_OK or an error naming what is wrong.
static smelt_status check_tables(smelt_ingot *ig, const char *path) {
  for (uint32_t i = 0; i < ig->ntensors; i++) {
    const IngotTensor *t = &ig->tensors[i];
    if (!str_ok(ig, t->name) || !dtype_size(t->dtype) || t->role < ROLE_INPUT || t->role > ROLE_TEMP ||
        t->ndim > INGOT_MAX_DIMS)
      return bad(path, "a tensor record is malformed");
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->ndim; d++) {
      if (t->dims[d] < 0 || (t->dims[d] && n > UINT64_MAX / 16 / (uint64_t)t->dims[d]))
        return bad(path, "a tensor's dimensions are out of range");
      n *= (uint64_t)t->dims[d];
    }
    if (n * (uint64_t)dtype_size(t->dtype) != t->bytes) return bad(path, "a tensor's size does not match its shape");
    if (t->role == ROLE_PARAM || t->role == ROLE_STATE) {
      uint64_t wsize;
      ingot_section(ig, SEC_WEIGHTS, &wsize);
      if (t->data_offset != INGOT_ZEROS && (t->data_offset > wsize || t->bytes > wsize - t->data_offset))
        return bad(path, "a tensor's initial values lie outside WEIGHTS");
    }
  }
  for (uint32_t i = 0; i < ig->nentries; i++) {
    const IngotEntry *e = &ig->entries[i];
    if (!str_ok(ig, e->name) || (uint64_t)e->first_launch + e->nlaunches > ig->nlaunches ||
        (uint64_t)e->first_slot + e->nslots > ig->nslots ||
        (uint64_t)e->first_update + e->nupdates > ig->nupdates ||
        (e->loss != UINT32_MAX && e->loss >= ig->ntensors))
      return bad(path, "an entry record is malformed");
    for (uint32_t s = 0; s < e->nslots; s++) {
      uint32_t t = ig->slots[e->first_slot + s];
      if (t >= ig->ntensors) return bad(path, "a buffer slot names no tensor");
      const IngotTensor *tt = &ig->tensors[t];
      if (in_arena(tt) &&
          (tt->arena_offset > e->arena_bytes || tt->bytes > e->arena_bytes - tt->arena_offset))
        return bad(path, "a tensor lies outside its entry's arena");
    }
  }
  smelt_status st = check_owners(ig, path);
  if (st != SMELT_OK) return st;
  for (uint32_t i = 0; i < ig->nlaunches; i++) {
    const IngotLaunch *l = &ig->launches[i];
    if (!str_ok(ig, l->symbol) || l->out >= ig->ntensors) return bad(path, "a launch record is malformed");
    const IngotTensor *t = &ig->tensors[l->out];
    if (l->count * (uint64_t)dtype_size(t->dtype) > t->bytes) return bad(path, "a launch's range exceeds its output");
  }
  for (uint32_t i = 0; ig->outputs && i < ig->nlaunches; i++) {
    const IngotOutputs *o = &ig->outputs[i];
    if (o->count == 0 || o->count > INGOT_MAX_OUTPUTS || o->tensor[0] != ig->launches[i].out)
      return bad(path, "a launch's output record is malformed");
    for (uint32_t k = 0; k < o->count; k++)
      if (o->tensor[k] >= ig->ntensors) return bad(path, "a launch's output record is malformed");
  }
  for (uint32_t i = 0; ig->gpu_launches && i < ig->nlaunches; i++) {
    const IngotGpuLaunch *g = &ig->gpu_launches[i];
    if (g->grid == 0 || g->block == 0 || g->block > 1024 || g->block % 32 || g->shared_bytes > (1u << 20))
      return bad(path, "a GPU launch record is out of range");
  }
  for (uint32_t i = 0; i < ig->ncodes; i++) {
    const IngotCode *k = &ig->codes[i];
    uint64_t size;
    const char *data = ingot_section(ig, SEC_GPU_CODE, &size);
    if (!str_ok(ig, k->target) || !str_ok(ig, k->report) || k->format < CODE_PTX || k->format > CODE_HSACO ||
        k->offset > size || k->size > size - k->offset || k->size == 0)
      return bad(path, "a GPU code record is malformed");
    if (k->format == CODE_PTX && data[k->offset + k->size - 1] != '\0') return bad(path, "a PTX code object is not terminated");
  }
  for (uint32_t i = 0; i < ig->nupdates; i++) {
    const IngotUpdate *u = &ig->updates[i];
    if (u->target >= ig->ntensors || u->value >= ig->ntensors ||
        ig->tensors[u->target].bytes != ig->tensors[u->value].bytes ||
        (ig->tensors[u->target].role != ROLE_PARAM && ig->tensors[u->target].role != ROLE_STATE))
      return bad(path, "an update record is malformed");
  }
  return SMELT_OK;
}

smelt_status smelt_ingot_open(const char *path, smelt_ingot **out) {
  *out = NULL;
  if (!path) return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "no ingot path given");
  FILE *f = fopen(path, "rb");
  if (!f) return rt_fail(SMELT_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
  smelt_ingot *ig = calloc(1, sizeof *ig);
  if (!ig) {
    fclose(f);
    return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory opening '%s'", path);
  }
  smelt_status st = SMELT_OK;
  IngotHeader h;
  if (fread(&h, sizeof h, 1, f) != 1 || memcmp(h.magic, INGOT_MAGIC, 8) != 0) {
    st = rt_fail(SMELT_ERR_FORMAT, "'%s' is not an ingot (no SMELTIGT magic)", path);
  } else if (h.version != INGOT_VERSION) {
    st = rt_fail(SMELT_ERR_FORMAT, "'%s' is an ingot of format version %u; this runtime reads version %d",
                 path, h.version, INGOT_VERSION);
  } else if (h.nsections == 0 || h.nsections > 16 || h.file_size > ((uint64_t)1 << 40)) {
    st = bad(path, "its header is out of range");
  } else {
    ig->data = malloc(h.file_size ? h.file_size : 1);
    ig->size = h.file_size;
    if (!ig->data) st = rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory reading '%s'", path);
    rewind(f);
    if (st == SMELT_OK && fread(ig->data, 1, h.file_size, f) != h.file_size)
      st = bad(path, "the file is shorter than its header says (truncated?)");
    if (st == SMELT_OK && fgetc(f) != EOF) st = bad(path, "the file is longer than its header says");
  }
  fclose(f);
  if (st != SMELT_OK) {
    smelt_ingot_close(ig);
    return st;
  }
  const IngotSection *table = (const IngotSection *)(ig->data + sizeof h);
  if (sizeof h + (uint64_t)h.nsections * sizeof *table > ig->size ||
      smelt_crc32(table, (uint64_t)h.nsections * sizeof *table) != h.header_crc) {
    smelt_ingot_close(ig);
    return bad(path, "its section table is corrupt");
  }
  for (uint32_t i = 0; i < h.nsections; i++) {
    const IngotSection *s = &table[i];
    if (s->kind == 0 || s->kind >= 16 || ig->sec[s->kind] || s->offset % INGOT_ALIGN ||
        s->offset > ig->size || s->size > ig->size - s->offset) {
      smelt_ingot_close(ig);
      return bad(path, "a section lies outside the file or is repeated");
    }
    if (smelt_crc32(ig->data + s->offset, s->size) != s->crc) {
      uint32_t kind = s->kind;   // s points into the data about to be freed
      smelt_ingot_close(ig);
      return rt_fail(SMELT_ERR_FORMAT, "'%s' is corrupt: section %u fails its checksum", path, kind);
    }
    ig->sec[s->kind] = s;
  }
  static const uint32_t required[] = {SEC_META, SEC_STRINGS, SEC_TENSORS, SEC_ENTRIES, SEC_LAUNCHES,
                                      SEC_SLOTS, SEC_UPDATES, SEC_HOST_CODE, SEC_WEIGHTS};
  for (size_t i = 0; i < sizeof required / sizeof *required; i++)
    if (!ig->sec[required[i]]) {
      smelt_ingot_close(ig);
      return bad(path, "a required section is missing");
    }
  uint64_t n;
  ig->strings = ingot_section(ig, SEC_STRINGS, &ig->strings_size);
  ig->tensors = ingot_section(ig, SEC_TENSORS, &n);
  ig->ntensors = (uint32_t)(n / sizeof(IngotTensor));
  bool sizes_ok = n % sizeof(IngotTensor) == 0;
  ig->entries = ingot_section(ig, SEC_ENTRIES, &n);
  ig->nentries = (uint32_t)(n / sizeof(IngotEntry));
  sizes_ok &= n % sizeof(IngotEntry) == 0;
  ig->launches = ingot_section(ig, SEC_LAUNCHES, &n);
  ig->nlaunches = (uint32_t)(n / sizeof(IngotLaunch));
  sizes_ok &= n % sizeof(IngotLaunch) == 0;
  ig->slots = ingot_section(ig, SEC_SLOTS, &n);
  ig->nslots = (uint32_t)(n / 4);
  sizes_ok &= n % 4 == 0;
  ig->updates = ingot_section(ig, SEC_UPDATES, &n);
  ig->nupdates = (uint32_t)(n / sizeof(IngotUpdate));
  sizes_ok &= n % sizeof(IngotUpdate) == 0;
  ig->gpu_launches = ingot_section(ig, SEC_GPU_LAUNCHES, &n);
  sizes_ok &= !ig->gpu_launches || n == (uint64_t)ig->nlaunches * sizeof(IngotGpuLaunch);
  ig->costs = ingot_section(ig, SEC_COSTS, &n);
  sizes_ok &= !ig->costs || n == (uint64_t)ig->nlaunches * sizeof(IngotCost);
  ig->outputs = ingot_section(ig, SEC_OUTPUTS, &n);
  sizes_ok &= !ig->outputs || n == (uint64_t)ig->nlaunches * sizeof(IngotOutputs);
  const IngotCodeTable *ct = ingot_section(ig, SEC_GPU_CODE, &n);
  if (ct) {
    sizes_ok &= n >= sizeof *ct && (n - sizeof *ct) / sizeof(IngotCode) >= ct->count;
    if (sizes_ok) ig->codes = (const IngotCode *)(ct + 1), ig->ncodes = ct->count;
  }
  const char *meta = ingot_section(ig, SEC_META, &n);
  char *copy = malloc(n + 1);
  if (copy) {
    memcpy(copy, meta, n);
    copy[n] = '\0';
  }
  ig->meta = copy;
  if (!copy) st = rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory reading '%s'", path);
  else if (!sizes_ok) st = bad(path, "a table's size is not a whole number of records");
  else st = check_tables(ig, path);
  if (st != SMELT_OK) {
    smelt_ingot_close(ig);
    return st;
  }
  *out = ig;
  return SMELT_OK;
}

void smelt_ingot_close(smelt_ingot *ig) {
  if (!ig) return;
  free(ig->data);
  free((char *)ig->meta);
  free(ig);
}

const char *smelt_ingot_meta(const smelt_ingot *ig, const char *key) {
  static _Thread_local char value[4096];
  size_t klen = strlen(key);
  for (const char *line = ig->meta; line && *line;) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    if (len > klen && !strncmp(line, key, klen) && line[klen] == '=') {
      size_t vlen = len - klen - 1 < sizeof value - 1 ? len - klen - 1 : sizeof value - 1;
      memcpy(value, line + klen + 1, vlen);
      value[vlen] = '\0';
      return value;
    }
    line = end ? end + 1 : NULL;
  }
  return NULL;
}
