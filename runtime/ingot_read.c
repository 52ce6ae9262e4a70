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
#include <strings.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "runtime.h"
#include "sha256.h"

const char *ingot_str(const smelt_ingot *ig, uint32_t offset) { return ig->strings + offset; }

const void *ingot_section(const smelt_ingot *ig, uint32_t kind, uint64_t *size) {
  const IngotSection *s = kind <= INGOT_MAX_SECTION ? ig->sec[kind] : NULL;
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

uint32_t ingot_entry_bodies(const smelt_ingot *ig, const IngotEntry *e) {
  uint32_t n = 0;
  for (uint32_t k = 0; k < e->nlaunches; k++) {
    const char *sym = ingot_str(ig, ig->launches[e->first_launch + k].symbol);
    uint32_t j = 0;
    while (j < k && strcmp(sym, ingot_str(ig, ig->launches[e->first_launch + j].symbol))) j++;
    n += j == k;
  }
  return n;
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

static smelt_status ingot_adopt(char *data, uint64_t size, const char *path, bool binding, smelt_ingot **out);
// Opens and checks the other bindings of ig, which has SEC_BINDINGS (after a
// failure, smelt_ingot_close frees what was opened); and frees them.
static smelt_status ingot_bindings_open(smelt_ingot *ig, const char *path);
static void ingot_bindings_close(smelt_ingot *ig);

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

static int by_name_cmp_ig(const smelt_ingot *ig, uint32_t a, uint32_t b) {
  return strcmp(ingot_str(ig, ig->tensors[a].name), ingot_str(ig, ig->tensors[b].name));
}

static const smelt_ingot *sort_ig;   // qsort has no context argument
static int by_name(const void *a, const void *b) { return by_name_cmp_ig(sort_ig, *(const uint32_t *)a, *(const uint32_t *)b); }

// Tensor names are how callers reach tensors: each is unique, and an input's
// or output's is "ENTRY/NAME" with a NAME.
static smelt_status check_names(const smelt_ingot *ig, const char *path) {
  for (uint32_t t = 0; t < ig->ntensors; t++) {
    const IngotTensor *tt = &ig->tensors[t];
    const char *name = ingot_str(ig, tt->name), *slash = strchr(name, '/');
    if (!name[0]) return bad(path, "a tensor has an empty name");
    if ((tt->role == ROLE_INPUT || tt->role == ROLE_OUTPUT || tt->role == ROLE_TEMP) && (!slash || !slash[1]))
      return bad(path, "an input, output or temporary is not named ENTRY/NAME");
  }
  uint32_t *order = malloc(sizeof *order * (ig->ntensors ? ig->ntensors : 1));
  if (!order) return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory reading '%s'", path);
  for (uint32_t t = 0; t < ig->ntensors; t++) order[t] = t;
  sort_ig = ig;
  qsort(order, ig->ntensors, sizeof *order, by_name);
  smelt_status st = SMELT_OK;
  for (uint32_t i = 1; i < ig->ntensors && st == SMELT_OK; i++)
    if (!by_name_cmp_ig(ig, order[i - 1], order[i])) st = bad(path, "two tensors have the same name");
  free(order);
  return st;
}

// A launch of an entry writes only tensors that entry's kernels can reach:
// each of its outputs is in one of the entry's slots.
// Each launch's buffer table: the launches' tables follow each other in
// LAUNCH_BUFS, in launch order, filling it, and each names a slot of the
// launch's entry (so the session can point it at that slot's tensor).
static smelt_status check_launch_bufs(const smelt_ingot *ig, const char *path) {
  uint64_t at = 0;
  for (uint32_t i = 0; i < ig->nentries; i++) {
    const IngotEntry *e = &ig->entries[i];
    for (uint32_t k = 0; k < e->nlaunches; k++) {
      const IngotLaunch *l = &ig->launches[e->first_launch + k];
      if (l->first_buf != at || l->nbufs > ig->nlaunch_bufs - at)
        return bad(path, "a launch's buffer table lies outside LAUNCH_BUFS or out of order");
      for (uint32_t b = 0; b < l->nbufs; b++)
        if (ig->launch_bufs[at + b] >= e->nslots) return bad(path, "a launch's buffer names no slot of its entry");
      at += l->nbufs;
    }
  }
  if (at != ig->nlaunch_bufs) return bad(path, "LAUNCH_BUFS holds buffers of no launch");
  return SMELT_OK;
}

static smelt_status check_launches(const smelt_ingot *ig, const char *path) {
  uint32_t *seen = malloc(sizeof *seen * (ig->ntensors ? ig->ntensors : 1));   // by tensor: 1 + entry index
  if (!seen) return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory reading '%s'", path);
  memset(seen, 0, sizeof *seen * ig->ntensors);
  smelt_status st = SMELT_OK;
  for (uint32_t i = 0; i < ig->nentries && st == SMELT_OK; i++) {
    const IngotEntry *e = &ig->entries[i];
    for (uint32_t s = 0; s < e->nslots; s++) seen[ig->slots[e->first_slot + s]] = i + 1;
    for (uint32_t k = 0; k < e->nlaunches && st == SMELT_OK; k++) {
      uint32_t li = e->first_launch + k;
      if (ig->launches[li].out >= ig->ntensors) return free(seen), bad(path, "a launch record is malformed");
      if (seen[ig->launches[li].out] != i + 1) st = bad(path, "a launch writes a tensor outside its entry's slots");
      const IngotOutputs *o = ig->outputs ? &ig->outputs[li] : NULL;
      for (uint32_t j = 0; o && j < o->count && j < INGOT_MAX_OUTPUTS && st == SMELT_OK; j++)
        if (o->tensor[j] >= ig->ntensors || seen[o->tensor[j]] != i + 1)
          st = bad(path, "a launch writes a tensor outside its entry's slots");
    }
    for (uint32_t u = 0; u < e->nupdates && st == SMELT_OK; u++) {
      const IngotUpdate *up = &ig->updates[e->first_update + u];
      if (up->value >= ig->ntensors || (in_arena(&ig->tensors[up->value]) && seen[up->value] != i + 1))
        st = bad(path, "an update takes a value outside its entry's arena");
    }
  }
  free(seen);
  return st;
}

// Checks the tables; returns SMELT_OK or an error naming what is wrong.
static smelt_status check_tables(smelt_ingot *ig, const char *path) {
  smelt_status st;
  for (uint32_t i = 0; i < ig->ntensors; i++) {
    const IngotTensor *t = &ig->tensors[i];
    if (!str_ok(ig, t->name) || !dtype_size(t->dtype) || t->role < ROLE_INPUT || t->role > ROLE_TEMP ||
        t->ndim > INGOT_MAX_DIMS)
      return bad(path, "a tensor record is malformed");
    for (uint32_t d = t->ndim; d < INGOT_MAX_DIMS; d++)
      if (t->dims[d]) return bad(path, "a tensor's unused dimensions are not zero");
    if (in_arena(t) && t->data_offset != 0 && t->data_offset != INGOT_ZEROS)
      return bad(path, "an input, output or temporary has initial values");
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
    const char *name = ingot_str(ig, e->name);
    if (!name[0] || strchr(name, '/')) return bad(path, "an entry's name is empty or holds a '/'");
    for (uint32_t j = 0; j < i; j++)
      if (!strcmp(name, ingot_str(ig, ig->entries[j].name))) return bad(path, "two entries have the same name");
    uint64_t top = 0;   // the end of the entry's last arena tensor
    for (uint32_t s = 0; s < e->nslots; s++) {
      uint32_t t = ig->slots[e->first_slot + s];
      if (t >= ig->ntensors) return bad(path, "a buffer slot names no tensor");
      const IngotTensor *tt = &ig->tensors[t];
      const IngotSlotType *want = &ig->slot_types[e->first_slot + s];
      if (want->dtype != tt->dtype || want->bytes != tt->bytes || want->reserved)
        return bad(path, "a buffer slot names a tensor of another type or size than its kernels read");
      if (!in_arena(tt)) continue;
      if (tt->arena_offset > e->arena_bytes || tt->bytes > e->arena_bytes - tt->arena_offset)
        return bad(path, "a tensor lies outside its entry's arena");
      if (tt->arena_offset + tt->bytes > top) top = tt->arena_offset + tt->bytes;
    }
    // the planner rounds each tensor's end up to INGOT_ALIGN; an arena any
    // larger than its tensors need is not one the compiler wrote
    if (e->arena_bytes > (top + INGOT_ALIGN - 1) / INGOT_ALIGN * INGOT_ALIGN)
      return bad(path, "an entry's arena is larger than its tensors need");
  }
  st = check_owners(ig, path);
  if (st != SMELT_OK) return st;
  st = check_names(ig, path);
  if (st != SMELT_OK) return st;
  st = check_launches(ig, path);
  if (st != SMELT_OK) return st;
  st = check_launch_bufs(ig, path);
  if (st != SMELT_OK) return st;
  for (uint32_t i = 0; i < ig->nlaunches; i++) {
    const IngotLaunch *l = &ig->launches[i];
    if (!str_ok(ig, l->symbol) || l->out >= ig->ntensors) return bad(path, "a launch record is malformed");
    const IngotTensor *t = &ig->tensors[l->out];
    // count is passed to kernels as an int64_t and split into [begin, end):
    // compare without multiplying, which could wrap
    if (l->count > t->bytes / (uint64_t)dtype_size(t->dtype)) return bad(path, "a launch's range exceeds its output");
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
    if (g->grid == 0 || g->block == 0 || g->block > 1024 || g->block % 32 || g->shared_bytes > (1u << 20) ||
        g->reserved)
      return bad(path, "a GPU launch record is out of range");
  }
  for (uint32_t i = 0; i < ig->ncodes; i++) {
    const IngotCode *k = &ig->codes[i];
    uint64_t size;
    const char *data = ingot_section(ig, SEC_GPU_CODE, &size);
    if (!str_ok(ig, k->target) || !str_ok(ig, k->report) || k->format < CODE_PTX || k->format > CODE_HSACO ||
        k->offset > size || k->size > size - k->offset || k->size == 0 || k->reserved)
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

// Reads the whole file at path into memory (the caller frees *data). The
// file's own size bounds the allocation: nothing read from it is trusted until
// the bytes are in hand, and every later check and hash is of these bytes.
static smelt_status ingot_read_file(const char *path, char **data, uint64_t *size) {
  *data = NULL;
  if (!path) return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "no ingot path given");
  // O_NONBLOCK: opening a FIFO must not wait for a writer
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return rt_fail(SMELT_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    return rt_fail(SMELT_ERR_IO, "cannot read '%s': not a regular file", path);
  }
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    close(fd);
    return rt_fail(SMELT_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
  }
  uint64_t n = (uint64_t)sb.st_size;
  if (n < sizeof(IngotHeader)) {
    fclose(f);
    return rt_fail(SMELT_ERR_FORMAT, "'%s' is not an ingot (no SMELTIGT magic)", path);
  }
  if (n > ((uint64_t)1 << 40)) {
    fclose(f);
    return bad(path, "the file is larger than 1 TiB");
  }
  char *bytes = malloc(n);
  if (!bytes) {
    fclose(f);
    return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory reading '%s' (%llu bytes)", path, (unsigned long long)n);
  }
  size_t got = fread(bytes, 1, n, f);
  bool longer = got == n && fgetc(f) != EOF;   // it grew while being read
  fclose(f);
  if (got != n || longer) {
    free(bytes);
    return rt_fail(SMELT_ERR_IO, "cannot read '%s': it changed while being read", path);
  }
  *data = bytes;
  *size = n;
  return SMELT_OK;
}

smelt_status smelt_ingot_open(const char *path, smelt_ingot **out) { return smelt_ingot_open_verified(path, NULL, out); }

smelt_status smelt_ingot_open_verified(const char *path, const char *sha256, smelt_ingot **out) {
  *out = NULL;
  if (sha256 && !sha256_hex_valid(sha256))
    return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "the expected SHA-256 of '%s' is not 64 hex digits: '%.80s'",
                   path ? path : "", sha256);
  char *data;
  uint64_t size = 0;
  smelt_status st = ingot_read_file(path, &data, &size);
  if (st != SMELT_OK) return st;
  if (sha256) {   // before any of it is parsed, let alone its code loaded
    char got[65];
    sha256_hex(data, size, got);
    if (strcasecmp(got, sha256)) {
      free(data);
      return rt_fail(SMELT_ERR_FORMAT, "'%s' is not the ingot expected: its SHA-256 is %s, not %.64s", path, got,
                     sha256);
    }
  }
  return ingot_adopt(data, size, path, false, out);
}

smelt_status smelt_ingot_open_memory(const void *data, size_t size, smelt_ingot **out) {
  if (!data && size) {
    *out = NULL;
    return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "smelt_ingot_open_memory: no data for %zu bytes", size);
  }
  return ingot_open_bytes(data, size, "<memory>", out);
}

// A copy of the bytes, adopted; binding: they are one binding of another
// ingot, which may hold no bindings itself.
static smelt_status adopt_copy(const void *bytes, size_t size, const char *name, bool binding, smelt_ingot **out) {
  *out = NULL;
  char *data = malloc(size ? size : 1);
  if (!data) return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory reading '%s'", name);
  if (size) memcpy(data, bytes, size);
  return ingot_adopt(data, size, name, binding, out);
}

smelt_status ingot_open_bytes(const void *bytes, size_t size, const char *name, smelt_ingot **out) {
  return adopt_copy(bytes, size, name, false, out);
}


static bool all_zero(const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i]) return false;
  return true;
}

// Validates an ingot's bytes (owned by the reader from here on, freed on failure).
static smelt_status ingot_adopt(char *data, uint64_t size, const char *path, bool binding, smelt_ingot **out) {
  smelt_ingot *ig = calloc(1, sizeof *ig);
  if (!ig) {
    free(data);
    return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory opening '%s'", path);
  }
  ig->data = data;
  ig->size = size;
  smelt_status st = SMELT_OK;
  IngotHeader h;
  if (size < sizeof h || memcmp(data, INGOT_MAGIC, 8) != 0) {
    st = rt_fail(SMELT_ERR_FORMAT, "'%s' is not an ingot (no SMELTIGT magic)", path);
  } else if (memcpy(&h, data, sizeof h), h.version != INGOT_VERSION) {
    st = h.version < INGOT_VERSION
             ? rt_fail(SMELT_ERR_FORMAT,
                       "'%s' is an ingot of format version %u, built by an older smelt; this runtime reads "
                       "version %d (build it again)",
                       path, h.version, INGOT_VERSION)
             : rt_fail(SMELT_ERR_FORMAT, "'%s' is an ingot of format version %u; this runtime reads version %d",
                       path, h.version, INGOT_VERSION);
  } else if (h.file_size < size) {
    st = bad(path, "the file is longer than its header says");
  } else if (h.file_size > size) {
    st = bad(path, "the file is shorter than its header says (truncated?)");
  } else if (h.nsections == 0 || h.nsections > 16 || !all_zero(h.reserved, sizeof h.reserved)) {
    st = bad(path, "its header is out of range (reserved bytes must be zero)");
  }
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
    if (s->kind == 0 || s->kind > INGOT_MAX_SECTION || ig->sec[s->kind] || s->offset % INGOT_ALIGN ||
        s->offset > ig->size || s->size > ig->size - s->offset || s->flags || s->reserved) {
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
  if (binding && ig->sec[SEC_BINDINGS]) {   // checked before it is read: nesting could multiply the work
    smelt_ingot_close(ig);
    return bad(path, "a binding holds bindings of its own");
  }
  static const uint32_t required[] = {SEC_META,      SEC_STRINGS, SEC_TENSORS, SEC_ENTRIES,   SEC_LAUNCHES,
                                      SEC_SLOTS,     SEC_UPDATES, SEC_HOST_CODE, SEC_WEIGHTS, SEC_SLOT_TYPES,
                                      SEC_LAUNCH_BUFS};
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
  ig->launch_bufs = ingot_section(ig, SEC_LAUNCH_BUFS, &n);
  ig->nlaunch_bufs = (uint32_t)(n / 4);
  sizes_ok &= n % 4 == 0;
  ig->slot_types = ingot_section(ig, SEC_SLOT_TYPES, &n);
  sizes_ok &= n == (uint64_t)ig->nslots * sizeof(IngotSlotType);
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
    sizes_ok &= n >= sizeof *ct && all_zero(ct->reserved, sizeof ct->reserved);
    if (sizes_ok) ig->codes = (const IngotCode *)(ct + 1), ig->ncodes = ct->count;
  }
  const char *meta = ingot_section(ig, SEC_META, &n);
  char *copy = malloc(n + 1);
  if (copy) {
    memcpy(copy, meta, n);
    copy[n] = '\0';
  }
  ig->meta = copy;
  ig->meta_values = copy ? malloc(n + 1) : NULL;
  if (ig->meta_values) {
    memcpy(ig->meta_values, copy, n + 1);
    for (char *p = ig->meta_values; (p = strchr(p, '\n')); p++) *p = '\0';
  }
  if (!ig->meta_values) st = rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory reading '%s'", path);
  else if (!sizes_ok) st = bad(path, "a table's size is not a whole number of records");
  else st = check_tables(ig, path);
  if (st == SMELT_OK && ig->sec[SEC_BINDINGS]) st = ingot_bindings_open(ig, path);
  if (st != SMELT_OK) {
    smelt_ingot_close(ig);
    return st;
  }
  *out = ig;
  return SMELT_OK;
}

// ---- an ingot of several bindings (SEC_BINDINGS)

static smelt_status bindings_bad(const char *path, const char *what) {
  return rt_fail(SMELT_ERR_FORMAT, "'%s' is not a valid ingot: its bindings table %s", path, what);
}

// The records of the table, checked: one variable, values increasing, this
// ingot once (offset 0), every other ingot inside the section and aligned.
static smelt_status check_records(const smelt_ingot *ig, const IngotBindingTable *t, uint64_t n, const char *path,
                                  uint32_t *self) {
  if (n < sizeof *t || !all_zero(t->reserved, sizeof t->reserved)) return bindings_bad(path, "is cut short");
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

static smelt_status ingot_bindings_open(smelt_ingot *ig, const char *path) {
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
    st = adopt_copy((const char *)t + r[i].offset, (size_t)r[i].size, name, true, &b);
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

static void ingot_bindings_close(smelt_ingot *ig) {
  for (uint32_t i = 0; i < ig->nbindings; i++)
    if (ig->bindings[i] != ig) smelt_ingot_close(ig->bindings[i]);
  free(ig->bindings);
  ig->bindings = NULL;
  ig->nbindings = 0;
}

void smelt_ingot_close(smelt_ingot *ig) {
  if (!ig) return;
  ingot_bindings_close(ig);
  free(ig->data);
  free((char *)ig->meta);
  free(ig->meta_values);
  free(ig);
}

// Values point into the ingot's own copy of META with its newlines made
// NULs, so each stays valid, and distinct, until smelt_ingot_close.
const char *smelt_ingot_meta(const smelt_ingot *ig, const char *key) {
  size_t klen = strlen(key);
  for (const char *line = ig->meta; line && *line;) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    if (len > klen && !strncmp(line, key, klen) && line[klen] == '=')
      return ig->meta_values + (line + klen + 1 - ig->meta);
    line = end ? end + 1 : NULL;
  }
  return NULL;
}
