// session.c: running an ingot's entry points on a device.
//
// A session owns the persistent region (parameters and optimizer state,
// initialized from the ingot's WEIGHTS) and one arena per entry (its inputs,
// outputs and temporaries at the offsets the compiler chose). Running an entry
// launches its kernels in order with the buffer table the compiler laid out,
// then applies its updates (each persistent tensor takes its new value).
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime.h"
#include "tensorfile.h"

struct smelt_session {
  const smelt_ingot *ig;
  Device *dev;
  char **persist;       // by tensor index: PARAM and STATE storage, else NULL
  char **arena;         // by entry index
  char **bufs;          // by entry index: its launches' buffer tables one after another (device memory)
  void ***fns;          // by entry index: kernel entry points, by launch
  bool params_only;     // the last smelt_load read a file without optimizer state
  void **graphs;        // by entry index: its launches captured as a graph (devices with graphs), or NULL
  int8_t *graph_state;  // by entry index: 0 not tried yet, 1 captured, -1 not to be captured
  bool no_graphs;       // smelt_session_use_graphs(s, 0)
};

static uint32_t entry_index(const smelt_ingot *ig, const IngotEntry *e) { return (uint32_t)(e - ig->entries); }

// A tensor's storage in this session: persistent, or in its entry's arena.
static char *tensor_ptr(smelt_session *s, uint32_t t, const IngotEntry *e) {
  const IngotTensor *tt = &s->ig->tensors[t];
  if (tt->role == ROLE_PARAM || tt->role == ROLE_STATE) return s->persist[t];
  return s->arena[entry_index(s->ig, e)] + tt->arena_offset;
}

// "cuda", "cuda:N", "hip", "hip:N": the ordinal, or -1 when the text after
// the colon is not a number.
static int ordinal_of(const char *name, size_t prefix) {
  if (name[prefix] == '\0') return 0;
  char *end;
  long n = strtol(name + prefix + 1, &end, 10);
  return name[prefix] == ':' && end != name + prefix + 1 && *end == '\0' && n >= 0 && n < 1024 ? (int)n : -1;
}

// Opens the device a name asks for and loads the ingot's code on it.
static smelt_status open_one(const smelt_ingot *ig, const char *name, int threads, Device **out) {
  smelt_status st;
  *out = NULL;
  if (!strcmp(name, "cpu")) {
    st = cpu_device_new(threads, out);
  } else if (!strncmp(name, "cuda", 4) && (name[4] == '\0' || name[4] == ':')) {
    int n = ordinal_of(name, 4);
    st = n < 0 ? rt_fail(SMELT_ERR_INVALID_ARGUMENT, "bad device '%s' (cuda or cuda:N)", name) : cuda_device_new(n, out);
  } else if (!strncmp(name, "hip", 3) && (name[3] == '\0' || name[3] == ':')) {
    int n = ordinal_of(name, 3);
    st = n < 0 ? rt_fail(SMELT_ERR_INVALID_ARGUMENT, "bad device '%s' (hip or hip:N)", name) : hip_device_new(n, out);
  } else {
    return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "unknown device '%s' (cpu, cuda[:N], hip[:N] or auto)", name);
  }
  if (st == SMELT_OK) st = (*out)->load_code(*out, ig);
  if (st != SMELT_OK && *out) {
    (*out)->destroy(*out);
    *out = NULL;
  }
  return st;
}

bool device_gpu_target(const char *device, char *buf, size_t len) {
  const char *tries[2] = {device, NULL};
  if (!device || !strcmp(device, "auto")) tries[0] = "cuda", tries[1] = "hip";
  for (int i = 0; i < 2 && tries[i]; i++) {
    Device *d = NULL;
    const char *n = tries[i];
    int ord = !strncmp(n, "cuda", 4) ? ordinal_of(n, 4) : !strncmp(n, "hip", 3) ? ordinal_of(n, 3) : -1;
    if (ord < 0) continue;
    smelt_status st = !strncmp(n, "cuda", 4) ? cuda_device_new(ord, &d) : hip_device_new(ord, &d);
    if (st != SMELT_OK) continue;
    bool ok = d->arch != NULL;
    if (ok) snprintf(buf, len, "%s", d->arch);
    d->destroy(d);
    if (ok) return true;
  }
  return false;
}

// "auto" takes the first of CUDA, HIP and the CPU that opens and can run the
// ingot's code.
static smelt_status open_device(const smelt_ingot *ig, const char *name, int threads, Device **out) {
  if (name && strcmp(name, "auto")) return open_one(ig, name, threads, out);
  if (open_one(ig, "cuda", threads, out) == SMELT_OK || open_one(ig, "hip", threads, out) == SMELT_OK) return SMELT_OK;
  return open_one(ig, "cpu", threads, out);
}

smelt_status smelt_session_new(const smelt_ingot *ig, const char *device, int threads, smelt_session **out) {
  *out = NULL;
  if (!ig) return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "no ingot");
  smelt_session *s = calloc(1, sizeof *s);
  if (!s) return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory creating a session");
  s->ig = ig;
  smelt_status st = open_device(ig, device, threads, &s->dev);
  if (st != SMELT_OK) {
    free(s);
    return st;
  }
  s->persist = calloc(ig->ntensors ? ig->ntensors : 1, sizeof *s->persist);
  s->arena = calloc(ig->nentries ? ig->nentries : 1, sizeof *s->arena);
  s->bufs = calloc(ig->nentries ? ig->nentries : 1, sizeof *s->bufs);
  s->fns = calloc(ig->nentries ? ig->nentries : 1, sizeof *s->fns);
  s->graphs = calloc(ig->nentries ? ig->nentries : 1, sizeof *s->graphs);
  s->graph_state = calloc(ig->nentries ? ig->nentries : 1, sizeof *s->graph_state);
  if (st == SMELT_OK && (!s->persist || !s->arena || !s->bufs || !s->fns || !s->graphs || !s->graph_state))
    st = rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory creating a session");
  const char *weights = ingot_section(ig, SEC_WEIGHTS, NULL);
  for (uint32_t t = 0; t < ig->ntensors && st == SMELT_OK; t++) {
    const IngotTensor *tt = &ig->tensors[t];
    if (tt->role != ROLE_PARAM && tt->role != ROLE_STATE) continue;
    s->persist[t] = s->dev->alloc(s->dev, tt->bytes);
    if (!s->persist[t]) st = rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory for '%s' (%llu bytes)",
                                     ingot_str(ig, tt->name), (unsigned long long)tt->bytes);
    else if (tt->data_offset != INGOT_ZEROS) s->dev->copy_in(s->dev, s->persist[t], weights + tt->data_offset, tt->bytes);
  }
  // arenas wait for their entry's first use (entry_ready); the kernels are
  // looked up now, so that a missing one is an error of the session
  for (uint32_t i = 0; i < ig->nentries && st == SMELT_OK; i++) {
    const IngotEntry *e = &ig->entries[i];
    s->fns[i] = calloc(e->nlaunches ? e->nlaunches : 1, sizeof(void *));
    if (!s->fns[i]) {
      st = rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory creating a session");
      break;
    }
    for (uint32_t k = 0; k < e->nlaunches && st == SMELT_OK; k++) {
      const char *sym = ingot_str(ig, ig->launches[e->first_launch + k].symbol);
      s->fns[i][k] = s->dev->symbol(s->dev, sym);
      if (!s->fns[i][k]) st = rt_fail(SMELT_ERR_FORMAT, "the ingot's code has no kernel '%s'", sym);
    }
  }
  if (st != SMELT_OK) {
    smelt_session_free(s);
    return st;
  }
  *out = s;
  return SMELT_OK;
}

// The first of entry e's launch buffers in LAUNCH_BUFS, and how many it has
// (the reader checked that each launch's follow the previous one's).
static uint32_t entry_bufs(const smelt_ingot *ig, const IngotEntry *e, uint32_t *n) {
  *n = 0;
  if (!e->nlaunches) return 0;
  const IngotLaunch *first = &ig->launches[e->first_launch], *last = first + e->nlaunches - 1;
  *n = last->first_buf + last->nbufs - first->first_buf;
  return first->first_buf;
}

// Launch li's table of buffer pointers: its part of its entry's tables.
static void *launch_table(const smelt_session *s, uint32_t ei, uint32_t li) {
  const smelt_ingot *ig = s->ig;
  uint32_t n, base = entry_bufs(ig, &ig->entries[ei], &n);
  return (char **)s->bufs[ei] + (ig->launches[li].first_buf - base);
}

// Entry i's arena and the tables of buffer pointers its launches' kernels
// read from device memory, made at the entry's first use: a session holds
// the arenas of the entries it runs (an inference program never the
// training step's). Launch k's table points at the slots its record names,
// so kernels alike but for their buffers run one body.
static smelt_status entry_ready(smelt_session *s, uint32_t i) {
  if (s->bufs[i]) return SMELT_OK;
  const smelt_ingot *ig = s->ig;
  const IngotEntry *e = &ig->entries[i];
  uint32_t nbufs, base = entry_bufs(ig, e, &nbufs);
  char *arena = s->dev->alloc(s->dev, e->arena_bytes);
  char **bufs = arena ? s->dev->alloc(s->dev, sizeof(char *) * (nbufs ? nbufs : 1)) : NULL;
  char **table = calloc(nbufs ? nbufs : 1, sizeof(char *));
  if (!arena || !bufs || !table) {
    free(table);
    if (bufs) s->dev->free(s->dev, bufs);
    if (arena) s->dev->free(s->dev, arena);
    return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory for the arena of '%s' (%llu bytes)",
                   ingot_str(ig, e->name), (unsigned long long)e->arena_bytes);
  }
  s->arena[i] = arena;
  for (uint32_t b = 0; b < nbufs; b++) table[b] = tensor_ptr(s, ig->slots[e->first_slot + ig->launch_bufs[base + b]], e);
  s->dev->copy_in(s->dev, bufs, table, sizeof(char *) * nbufs);
  free(table);
  s->bufs[i] = (char *)bufs;
  return SMELT_OK;
}

smelt_status session_entry_ready(smelt_session *s, const IngotEntry *e) { return entry_ready(s, entry_index(s->ig, e)); }

// Frees the graphs captured so far; entries are captured again at their next
// run unless graphs are off.
static void graphs_free(smelt_session *s) {
  for (uint32_t i = 0; s->graphs && i < s->ig->nentries; i++) {
    if (s->graphs[i]) s->dev->graph_free(s->dev, s->graphs[i]);
    s->graphs[i] = NULL;
  }
  if (s->graph_state) memset(s->graph_state, 0, s->ig->nentries);
}

smelt_status smelt_session_use_graphs(smelt_session *s, int on) {
  if (!s) return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "no session");
  if (!on) graphs_free(s);
  s->no_graphs = !on;
  return SMELT_OK;
}

int smelt_session_graphs(const smelt_session *s) {
  int n = 0;
  for (uint32_t i = 0; s->graphs && i < s->ig->nentries; i++) n += s->graphs[i] != NULL;
  return n;
}

void smelt_session_free(smelt_session *s) {
  if (!s) return;
  const smelt_ingot *ig = s->ig;
  if (s->dev) graphs_free(s);
  free(s->graphs);
  free(s->graph_state);
  for (uint32_t t = 0; s->persist && t < ig->ntensors; t++)
    if (s->persist[t]) s->dev->free(s->dev, s->persist[t]);
  for (uint32_t i = 0; i < ig->nentries; i++) {
    if (s->arena && s->arena[i]) s->dev->free(s->dev, s->arena[i]);
    if (s->bufs && s->bufs[i]) s->dev->free(s->dev, s->bufs[i]);
    if (s->fns) free(s->fns[i]);
  }
  free(s->persist);
  free(s->arena);
  free(s->bufs);
  free(s->fns);
  if (s->dev) s->dev->destroy(s->dev);
  free(s);
}

const char *smelt_session_device(const smelt_session *s) { return s->dev->name; }

Device *session_device(smelt_session *s) { return s->dev; }

void *session_tensor(smelt_session *s, const IngotEntry *entry, uint32_t t) {
  return session_entry_ready(s, entry) == SMELT_OK ? tensor_ptr(s, t, entry) : NULL;
}

// The tensor "entry/name" of an entry, with its expected role and size.
static smelt_status find_io(smelt_session *s, const char *entry, const char *name, uint32_t role, size_t bytes,
                            const IngotEntry **e, uint32_t *t) {
  *e = ingot_entry(s->ig, entry);
  if (!*e) return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "the ingot has no entry point '%s'", entry);
  const char *what = role == ROLE_INPUT ? "input" : "output";
  char full[512];
  snprintf(full, sizeof full, "%s/%s", entry, name);
  int64_t i = ingot_tensor(s->ig, full);
  if (i < 0 || s->ig->tensors[i].role != role)
    return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "entry '%s' has no %s named '%s'", entry, what, name);
  if (bytes != s->ig->tensors[i].bytes)
    return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "%s '%s' of '%s' %s %llu bytes, not %zu", what, name, entry,
                   role == ROLE_INPUT ? "takes" : "has", (unsigned long long)s->ig->tensors[i].bytes, bytes);
  *t = (uint32_t)i;
  return SMELT_OK;
}

smelt_status smelt_set_input(smelt_session *s, const char *entry, const char *name, const void *data, size_t bytes) {
  const IngotEntry *e;
  uint32_t t;
  smelt_status st = find_io(s, entry, name, ROLE_INPUT, bytes, &e, &t);
  if (st == SMELT_OK) st = session_entry_ready(s, e);
  if (st != SMELT_OK) return st;
  s->dev->copy_in(s->dev, tensor_ptr(s, t, e), data, bytes);
  return SMELT_OK;
}

smelt_status smelt_get_output(smelt_session *s, const char *entry, const char *name, void *data, size_t bytes) {
  const IngotEntry *e;
  uint32_t t;
  smelt_status st = find_io(s, entry, name, ROLE_OUTPUT, bytes, &e, &t);
  if (st == SMELT_OK) st = session_entry_ready(s, e);
  if (st != SMELT_OK) return st;
  if (s->dev->sync) s->dev->sync(s->dev);
  s->dev->copy_out(s->dev, data, tensor_ptr(s, t, e), bytes);
  return SMELT_OK;
}

// The message for a kernel's error word (ingot.h): a label outside its
// classes (one_hot, cross_entropy), or an index out of range.
static smelt_status bad_index(const char *kind, const char *name, int64_t err) {
  if (err & INGOT_ERR_LABEL) {
    long long line = (err >> INGOT_ERR_LINE_SHIFT) & INGOT_ERR_LINE_MAX;
    long long pos = (err >> INGOT_ERR_POS_SHIFT) & INGOT_ERR_POS_MAX;
    long long value = (err & (2 * INGOT_ERR_VALUE_BIAS - 1)) - INGOT_ERR_VALUE_BIAS;
    return rt_fail(SMELT_ERR_RUNTIME,
                   "%s '%s' met label %lld at position %lld, outside its classes "
                   "(the labels of one_hot or cross_entropy; model file line %lld)",
                   kind, name, value, pos, line);
  }
  return rt_fail(SMELT_ERR_RUNTIME, "%s '%s' met an index out of range (a gather id outside its table?)", kind, name);
}

// Records entry ei's launches as a graph, which its runs replay: a run's
// launches keep their arguments (seed and step are read from device memory),
// so one graph serves every run. The updates after the launches stay out of
// it: they are made only once the run's error word is known to be clear.
// Where the device declines now (profiling) the entry is tried again at its
// next run; where capturing fails, never.
static void capture(smelt_session *s, const IngotEntry *e, uint32_t ei, uint64_t seed, uint64_t step) {
  Device *d = s->dev;
  int began = d->capture_begin(d);
  if (began <= 0) {
    s->graph_state[ei] = (int8_t)(began < 0 ? -1 : 0);
    return;
  }
  bool ok = true;
  for (uint32_t k = 0; k < e->nlaunches && ok; k++) {
    uint32_t li = e->first_launch + k;
    ok = d->launch(d, s->fns[ei][k], launch_table(s, ei, li), li, (int64_t)s->ig->launches[li].count, seed, step) == 0;
  }
  void *graph = d->capture_end(d);
  if (ok && graph) s->graphs[ei] = graph;
  else if (graph) d->graph_free(d, graph);
  s->graph_state[ei] = (int8_t)(s->graphs[ei] ? 1 : -1);
}

smelt_status smelt_run(smelt_session *s, const char *entry, uint64_t seed, uint64_t step) {
  const smelt_ingot *ig = s->ig;
  const IngotEntry *e = ingot_entry(ig, entry);
  if (!e) return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "the ingot has no entry point '%s'", entry);
  uint32_t ei = entry_index(ig, e);
  smelt_status st = entry_ready(s, ei);
  if (st != SMELT_OK) return st;
  int replayed = 1;   // 0: the entry's graph was queued
  if (s->dev->graph_run && !s->no_graphs) {
    if (s->graph_state[ei] == 0) capture(s, e, ei, seed, step);
    if (s->graphs[ei] && (replayed = s->dev->graph_run(s->dev, s->graphs[ei], seed, step)) < 0) return SMELT_ERR_RUNTIME;
  }
  for (uint32_t k = 0; replayed && k < e->nlaunches; k++) {
    uint32_t li = e->first_launch + k;
    const IngotLaunch *l = &ig->launches[li];
    int64_t err = s->dev->launch(s->dev, s->fns[ei][k], launch_table(s, ei, li), li, (int64_t)l->count, seed, step);
    if (err < 0) return SMELT_ERR_RUNTIME;   // the device said why
    if (err) return bad_index("kernel", ingot_str(ig, l->symbol), err);
  }
  if (s->dev->take_error) {
    int64_t err = s->dev->take_error(s->dev);
    if (err < 0) return SMELT_ERR_RUNTIME;
    if (err) return bad_index("a kernel of", entry, err);
  }
  for (uint32_t u = 0; u < e->nupdates; u++) {
    const IngotUpdate *up = &ig->updates[e->first_update + u];
    s->dev->copy(s->dev, tensor_ptr(s, up->target, e), tensor_ptr(s, up->value, e), ig->tensors[up->target].bytes);
  }
  return SMELT_OK;
}

smelt_status session_launch(smelt_session *s, const IngotEntry *e, uint32_t k, uint64_t seed, uint64_t step) {
  const smelt_ingot *ig = s->ig;
  uint32_t ei = entry_index(ig, e), li = e->first_launch + k;
  smelt_status st = entry_ready(s, ei);
  if (st != SMELT_OK) return st;
  int64_t err = s->dev->launch(s->dev, s->fns[ei][k], launch_table(s, ei, li), li, (int64_t)ig->launches[li].count, seed, step);
  if (err == 0 && s->dev->take_error) err = s->dev->take_error(s->dev);
  if (err < 0) return SMELT_ERR_RUNTIME;
  return err ? bad_index("kernel", ingot_str(ig, ig->launches[li].symbol), err) : SMELT_OK;
}

// Copies bytes from src's device to dst's through host memory.
static smelt_status mirror_one(smelt_session *dst, void *to, smelt_session *src, const void *from, uint64_t bytes) {
  char *host = malloc(bytes ? bytes : 1);
  if (!host) return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory");
  src->dev->copy_out(src->dev, host, from, bytes);
  dst->dev->copy_in(dst->dev, to, host, bytes);
  free(host);
  return SMELT_OK;
}

smelt_status session_mirror(smelt_session *dst, smelt_session *src, const IngotEntry *e) {
  const smelt_ingot *ig = src->ig;
  smelt_status st = SMELT_OK;
  for (uint32_t t = 0; t < ig->ntensors && st == SMELT_OK; t++)
    if (src->persist[t]) st = mirror_one(dst, dst->persist[t], src, src->persist[t], ig->tensors[t].bytes);
  uint32_t i = entry_index(ig, e);
  if (st == SMELT_OK) st = entry_ready(dst, i);
  if (st == SMELT_OK) st = entry_ready(src, i);
  return st == SMELT_OK ? mirror_one(dst, dst->arena[i], src, src->arena[i], e->arena_bytes) : st;
}

static smelt_status find_persistent(smelt_session *s, const char *name, size_t bytes, uint32_t *t) {
  int64_t i = ingot_tensor(s->ig, name);
  if (i < 0 || (s->ig->tensors[i].role != ROLE_PARAM && s->ig->tensors[i].role != ROLE_STATE))
    return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "the model has no parameter or state named '%s'", name);
  if (bytes != s->ig->tensors[i].bytes)
    return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "'%s' has %llu bytes, not %zu", name,
                   (unsigned long long)s->ig->tensors[i].bytes, bytes);
  *t = (uint32_t)i;
  return SMELT_OK;
}

smelt_status smelt_get_tensor(smelt_session *s, const char *name, void *data, size_t bytes) {
  uint32_t t;
  smelt_status st = find_persistent(s, name, bytes, &t);
  if (st == SMELT_OK) s->dev->copy_out(s->dev, data, s->persist[t], bytes);
  return st;
}

smelt_status smelt_set_tensor(smelt_session *s, const char *name, const void *data, size_t bytes) {
  uint32_t t;
  smelt_status st = find_persistent(s, name, bytes, &t);
  if (st == SMELT_OK) s->dev->copy_in(s->dev, s->persist[t], data, bytes);
  return st;
}

size_t smelt_tensor_bytes(const smelt_session *s, const char *name) {
  int64_t i = ingot_tensor(s->ig, name);
  return i < 0 ? 0 : (size_t)s->ig->tensors[i].bytes;
}

// ---- checkpoints: tensor files (smelt's own format, or safetensors for a
// path ending in .safetensors), with the tensors' own dtypes

// The text a safetensors checkpoint's __metadata__ holds beside the checksums
// (docs/tensors.md): "smelt.model", and "smelt.step" when the model has a step
// counter, into meta (key, value, ...); the number of pairs.
static int checkpoint_meta(smelt_session *s, const char *meta[4], char step[32]) {
  const smelt_ingot *ig = s->ig;
  int n = 0;
  const char *model = smelt_ingot_meta(ig, "model");
  if (model) meta[2 * n] = "smelt.model", meta[2 * n++ + 1] = model;
  int64_t t = ingot_tensor(ig, "step");
  const IngotTensor *tt = t >= 0 && s->persist[t] ? &ig->tensors[t] : NULL;
  if (tt && tt->bytes == (uint64_t)dtype_size(tt->dtype) && (tt->dtype == DT_I64 || tt->dtype == DT_I32)) {
    int64_t v64 = 0;
    int32_t v32 = 0;
    s->dev->copy_out(s->dev, tt->dtype == DT_I64 ? (void *)&v64 : (void *)&v32, s->persist[t], tt->bytes);
    snprintf(step, 32, "%lld", (long long)(tt->dtype == DT_I64 ? v64 : v32));
    meta[2 * n] = "smelt.step", meta[2 * n++ + 1] = step;
  }
  return n;
}

smelt_status smelt_save(smelt_session *s, const char *path) {
  const smelt_ingot *ig = s->ig;
  uint32_t n = 0;
  for (uint32_t t = 0; t < ig->ntensors; t++) n += s->persist[t] != NULL;
  const char **names = malloc(sizeof *names * (n ? n : 1));
  uint32_t *dtypes = malloc(sizeof *dtypes * (n ? n : 1)), k = 0;
  Shape *shapes = malloc(sizeof *shapes * (n ? n : 1));
  uint64_t largest = 1;
  for (uint32_t t = 0; t < ig->ntensors && names && dtypes && shapes; t++) {
    if (!s->persist[t]) continue;
    const IngotTensor *tt = &ig->tensors[t];
    names[k] = ingot_str(ig, tt->name);
    dtypes[k] = tt->dtype;
    shapes[k++] = shape_of((int)tt->ndim, tt->dims);
    if (tt->bytes > largest) largest = tt->bytes;
  }
  char *host = names && dtypes && shapes ? malloc(largest) : NULL;   // each device tensor through one host copy
  char err[512], step[32];
  const char *meta[4];
  int nmeta = checkpoint_meta(s, meta, step);
  smelt_status st = SMELT_OK;
  TensorWriter *w = host ? tensor_writer_open_meta(path, (int)n, names, dtypes, shapes, meta, nmeta, err, sizeof err)
                         : NULL;
  if (!host) st = rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory saving '%s'", path);
  else if (!w) st = rt_fail(errno == ENOMEM ? SMELT_ERR_OUT_OF_MEMORY : SMELT_ERR_IO, "%s", err);
  bool ok = true;
  for (uint32_t t = 0; w && t < ig->ntensors && ok; t++) {
    if (!s->persist[t]) continue;
    s->dev->copy_out(s->dev, host, s->persist[t], ig->tensors[t].bytes);
    ok = tensor_writer_bytes(w, host, ig->tensors[t].bytes);
  }
  if (w && tensor_writer_close(w, ok, err, sizeof err)) st = rt_fail(SMELT_ERR_IO, "%s", err);
  free(host);
  free(names);
  free(dtypes);
  free(shapes);
  return st;
}

// A float record where the model has an integer tensor (an older
// checkpoint's f32 step counter): read and converted when every value is a
// whole number in range, so the conversion is exact; else refused, naming the
// tensor and the value. The file's bytes are read into dst's place either way.
static smelt_status load_converted(TensorReader *f, const char *path, const char *name, uint32_t from,
                                   const IngotTensor *tt, char *dst) {
  int64_t n = (int64_t)(tt->bytes / (uint64_t)dtype_size(tt->dtype));
  char *raw = malloc(n ? (size_t)n * (size_t)dtype_size(from) : 1);
  smelt_status st = SMELT_OK;
  if (!raw) st = rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory loading '%s'", path);
  else if (!tensor_reader_bytes(f, raw, (uint64_t)n * (uint64_t)dtype_size(from)))
    st = rt_fail(SMELT_ERR_FORMAT, "%s", tensor_reader_why(f) ? tensor_reader_why(f) : "truncated or corrupt");
  double v;
  int64_t bad = st == SMELT_OK ? dtype_convert_exact(from, raw, tt->dtype, dst, n, &v) : -1;
  if (bad >= 0)
    st = rt_fail(SMELT_ERR_FORMAT, "'%s' holds '%s' as %s, and its element %lld is %g, which the model's %s does not "
                 "hold exactly", path, name, dtype_name(from), (long long)bad, v, dtype_name(tt->dtype));
  free(raw);
  return st;
}

// A persistent tensor's value in a fresh session (the ingot's WEIGHTS, or
// zeros), staged for the copy at the end of load_tensors; NULL when out of memory.
static char *initial_value(const smelt_ingot *ig, uint32_t t) {
  const IngotTensor *tt = &ig->tensors[t];
  char *v = calloc(1, tt->bytes ? tt->bytes : 1);
  if (v && tt->data_offset != INGOT_ZEROS) memcpy(v, ingot_section(ig, SEC_WEIGHTS, NULL) + tt->data_offset, tt->bytes);
  return v;
}

// Loads a checkpoint (weights_only false: every persistent tensor) or a
// weights file (true: every parameter, and the state tensors it names, such
// as a batch norm's running statistics; the optimizer's state is left as it
// is). A checkpoint without the step counter, for a training ingot, is a
// parameters file: loaded as weights, the state tensors it does not name
// taking their initial values (fine-tuning from step 0), and *params_only set.
static smelt_status load_tensors(smelt_session *s, const char *path, bool weights_only, bool *params_only) {
  char err[512];
  TensorReader *f = tensor_reader_open(path, err, sizeof err);
  if (!f)
    return rt_fail(errno == ENOMEM   ? SMELT_ERR_OUT_OF_MEMORY
                   : errno == ENOENT ? SMELT_ERR_IO
                                     : SMELT_ERR_FORMAT,
                   "%s", err);
  const smelt_ingot *ig = s->ig;
  uint32_t count = tensor_reader_count(f);
  smelt_status st = SMELT_OK;
  // an ingot without a training step takes the parameters it has from a
  // training checkpoint and passes over the rest (optimizer state)
  bool inference_only = ingot_entry(ig, "train_step") == NULL;
  // read everything first, then copy: a bad file changes nothing
  char **staged = calloc(ig->ntensors ? ig->ntensors : 1, sizeof *staged);
  if (!staged) {
    tensor_reader_close(f);
    return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory loading '%s'", path);
  }
  for (uint32_t i = 0; i < count && st == SMELT_OK; i++) {
    uint32_t dtype;
    Shape shape;
    const char *name;
    if (!tensor_reader_next(f, &name, &dtype, &shape)) {
      st = rt_fail(SMELT_ERR_FORMAT, "'%s' is truncated or corrupt", path);
      break;
    }
    uint32_t ndim = (uint32_t)shape.ndim;
    const int64_t *dims = shape.d;
    int64_t t = ingot_tensor(ig, name);
    if (t < 0 && inference_only && !weights_only) {
      // a training checkpoint's optimizer state: an inference-only ingot has none
      if (tensor_reader_bytes(f, NULL, (uint64_t)shape_numel(&shape) * (uint64_t)dtype_size(dtype))) continue;
      st = tensor_reader_why(f) ? rt_fail(SMELT_ERR_FORMAT, "%s", tensor_reader_why(f))
                                : rt_fail(SMELT_ERR_FORMAT, "'%s' is truncated or corrupt", path);
      break;
    }
    if (t < 0 || !s->persist[t]) {
      st = rt_fail(SMELT_ERR_FORMAT, "'%s' holds '%s', which this model does not have", path, name);
      break;
    }
    const IngotTensor *tt = &ig->tensors[t];
    bool same_shape = ndim == tt->ndim;
    for (uint32_t d = 0; d < ndim && same_shape; d++) same_shape = dims[d] == tt->dims[d];
    if (!same_shape) {
      char have[160], want[160];
      Shape ms = shape_of((int)tt->ndim, tt->dims);
      st = rt_fail(SMELT_ERR_FORMAT, "'%s' holds '%s' as %s, where the model's is %s", path, name,
                   type_str(have, sizeof have, (DType)dtype, &shape), type_str(want, sizeof want, (DType)tt->dtype, &ms));
      break;
    }
    free(staged[t]);
    staged[t] = malloc(tt->bytes ? tt->bytes : 1);
    if (!staged[t]) {
      st = rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory loading '%s'", path);
      break;
    }
    if (dtype != tt->dtype) {
      if ((st = load_converted(f, path, name, dtype, tt, staged[t])) != SMELT_OK) break;
    } else if (!tensor_reader_bytes(f, staged[t], tt->bytes)) {
      st = tensor_reader_why(f) ? rt_fail(SMELT_ERR_FORMAT, "%s", tensor_reader_why(f))
                                : rt_fail(SMELT_ERR_FORMAT, "'%s' is truncated or corrupt", path);
      break;
    }
  }
  if (st == SMELT_OK && !tensor_reader_end(f)) st = rt_fail(SMELT_ERR_FORMAT, "%s", tensor_reader_why(f));
  tensor_reader_close(f);
  int64_t step = ingot_tensor(ig, "step");
  bool fresh = !weights_only && !inference_only && step >= 0 && s->persist[step] && !staged[step];
  weights_only = weights_only || fresh;
  for (uint32_t t = 0; t < ig->ntensors && st == SMELT_OK; t++) {
    if (!s->persist[t] || staged[t]) continue;
    if (!weights_only || ig->tensors[t].role == ROLE_PARAM)
      st = rt_fail(SMELT_ERR_FORMAT, "'%s' has no value for '%s'", path, ingot_str(ig, ig->tensors[t].name));
    else if (fresh && !(staged[t] = initial_value(ig, t)))
      st = rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory loading '%s'", path);
  }
  for (uint32_t t = 0; t < ig->ntensors; t++) {
    if (st == SMELT_OK && staged[t]) s->dev->copy_in(s->dev, s->persist[t], staged[t], ig->tensors[t].bytes);
    free(staged[t]);
  }
  free(staged);
  if (st == SMELT_OK && params_only) *params_only = fresh;
  return st;
}

// A file without the step counter, for a model that has one, is a
// parameters file (`smelt init --params-only`, `smelt import`, one written by
// another tool): its parameters and buffers are loaded and the optimizer
// starts fresh, at step 0. A file with the counter is a checkpoint and must
// hold every persistent tensor.
smelt_status smelt_load(smelt_session *s, const char *path) { return load_tensors(s, path, false, &s->params_only); }

smelt_status smelt_load_weights(smelt_session *s, const char *path) { return load_tensors(s, path, true, NULL); }

bool session_loaded_params_only(const smelt_session *s) { return s->params_only; }
