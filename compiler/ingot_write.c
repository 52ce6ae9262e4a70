// ingot_write.c: `smelt build`'s last step: a compiled model written as one
// ingot (runtime/ingot.h).
//
// Entry points (pipeline.c builds them): "infer" (the forward graph with
// training = false, its outputs only, so labels are not needed), "eval" (the
// same with the loss, when the model has one) and, for a model with a loss
// and a train block, "train_step" (forward, backward and optimizer,
// training = true). Each entry's inputs, outputs and temporaries live in its
// own arena at the offsets its memory plan gave them; parameters and
// optimizer state are shared by name across entries and start from the
// initial values in WEIGHTS. The code of every entry is one host shared
// object and, per GPU target, PTX (and a cubin) or an AMD code object.
#include "compiler.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingot.h"
#include "sha256.h"

typedef struct {
  char *data;
  size_t len, cap;
} Buf;

static void buf_put(Buf *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    b->cap = (b->len + n) * 2 + 256;
    b->data = xrealloc(b->data, b->cap);
  }
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
}

static uint32_t str_add(Buf *strings, const char *s) {
  uint32_t at = (uint32_t)strings->len;
  buf_put(strings, s, strlen(s) + 1);
  return at;
}

typedef struct {
  Compilation *c;
  Buf strings, tensors, entries, launches, launch_bufs, slots, slot_types, updates, weights, meta, costs, outputs;
  const char **tnames;   // by tensor index
  int ntensors, cap;
  uint64_t seed;
} Writer;

static int tensor_find(Writer *w, const char *name) {
  for (int i = 0; i < w->ntensors; i++)
    if (!strcmp(w->tnames[i], name)) return i;
  return -1;
}

static void meta_line(Writer *w, const char *key, const char *value);

// A parameter or state's model-file line goes to META as "at.NAME", for the
// runtime's messages about it (smelt train's non-finite checks).
static int tensor_add(Writer *w, const char *name, const Node *n, uint32_t role, uint64_t arena_offset) {
  IngotTensor t = {0};
  t.name = str_add(&w->strings, name);
  t.dtype = (uint32_t)n->dtype;
  t.role = role;
  t.ndim = (uint32_t)n->shape.ndim;
  for (int d = 0; d < n->shape.ndim; d++) t.dims[d] = n->shape.d[d];
  int64_t cnt = shape_numel(&n->shape);
  t.bytes = (uint64_t)cnt * (uint64_t)dtype_size(n->dtype);
  t.arena_offset = arena_offset;
  if ((role == ROLE_PARAM || role == ROLE_STATE) && n->p.param.init == INIT_ZEROS) {
    t.data_offset = INGOT_ZEROS;   // not stored: the runtime starts it at zero
  } else if (role == ROLE_PARAM || role == ROLE_STATE) {   // initial values, in the tensor's dtype
    while (w->weights.len % INGOT_ALIGN) buf_put(&w->weights, "", 1);
    t.data_offset = w->weights.len;
    double *v = xmalloc(sizeof(double) * (size_t)(cnt ? cnt : 1));
    init_fill(n, w->seed, v);
    size_t es = (size_t)dtype_size(n->dtype);
    if (w->weights.len + es * (size_t)cnt > w->weights.cap) {
      w->weights.cap = (w->weights.len + es * (size_t)cnt) * 2 + 256;
      w->weights.data = xrealloc(w->weights.data, w->weights.cap);
    }
    char *to = w->weights.data + w->weights.len;
    for (int64_t i = 0; i < cnt; i++, to += es) {
      switch (n->dtype) {
      case DT_F32: { float f = (float)v[i]; memcpy(to, &f, 4); break; }
      case DT_F16: { _Float16 h = (_Float16)v[i]; memcpy(to, &h, 2); break; }
      case DT_BF16: {
        float f = (float)dtype_round(DT_BF16, v[i]);
        uint32_t u;
        memcpy(&u, &f, 4);
        uint16_t hi = (uint16_t)(u >> 16);
        memcpy(to, &hi, 2);
        break;
      }
      default: UNREACHABLE();   // parameters and state are floating point
      }
    }
    w->weights.len += es * (size_t)cnt;
    free(v);
  }
  if ((role == ROLE_PARAM || role == ROLE_STATE) && n->p.param.at)
    meta_line(w, arena_printf(&w->c->arena, "at.%s", name), n->p.param.at);
  buf_put(&w->tensors, &t, sizeof t);
  if (w->ntensors == w->cap) {
    w->cap = w->cap ? 2 * w->cap : 64;
    w->tnames = xrealloc(w->tnames, sizeof *w->tnames * (size_t)w->cap);
  }
  w->tnames[w->ntensors] = name;
  return w->ntensors++;
}

_Static_assert(KERNEL_MAX_OUTS <= INGOT_MAX_OUTPUTS, "an output record holds every output of a kernel");

// Adds one entry: its tensors, launches, slots and updates.
static void add_entry(Writer *w, const Entry *en) {
  const char *entry = en->name;
  const Graph *g = &en->g;
  const KernelPlan *p = &en->plan;
  const MemBuf *mb = en->mem;
  const bool *in_arena = en->in_arena;
  uint64_t arena = en->arena, unplanned = en->unplanned;
  IngotEntry e = {0};
  e.name = str_add(&w->strings, entry);
  e.first_slot = (uint32_t)(w->slots.len / 4);
  e.first_launch = (uint32_t)(w->launches.len / sizeof(IngotLaunch));
  e.first_update = (uint32_t)(w->updates.len / sizeof(IngotUpdate));
  e.loss = UINT32_MAX;
  int *tensor_of = xmalloc(sizeof(int) * (size_t)(p->nslots ? p->nslots : 1));
  // by slot: the output stored there; pass_simplify gave every output a
  // node of its own in the arena, so each name gets a tensor record
  const char **out_name = xcalloc((size_t)(p->nslots ? p->nslots : 1), sizeof *out_name);
  for (int i = 0; i < g->noutputs; i++) {
    int s = p->slot[g->outputs[i].node->id];
    ASSERT(s >= 0 && in_arena[s] && p->slot_node[s]->op != OP_INPUT && !out_name[s]);
    out_name[s] = g->outputs[i].name;
  }
  for (int s = 0; s < p->nslots; s++) {
    Node *n = p->slot_node[s];
    int t;
    if (!in_arena[s]) {
      t = tensor_find(w, n->name);
      if (t < 0) t = tensor_add(w, n->name, n, n->op == OP_PARAM ? ROLE_PARAM : ROLE_STATE, 0);
    } else {
      const char *out = out_name[s];
      uint32_t role = n->op == OP_INPUT ? ROLE_INPUT : out ? ROLE_OUTPUT : ROLE_TEMP;
      const char *name = n->op == OP_INPUT ? n->name : out;
      name = name ? arena_printf(&w->c->arena, "%s/%s", entry, name)
                  : arena_printf(&w->c->arena, "%s/%%%d", entry, n->id);
      t = tensor_add(w, name, n, role, mb[s].offset);
      if (n == g->loss) e.loss = (uint32_t)t;
    }
    tensor_of[s] = t;
    uint32_t u = (uint32_t)t;
    buf_put(&w->slots, &u, 4);
    // what the entry's kernels were compiled to find in the slot
    const IngotTensor *rec = (const IngotTensor *)w->tensors.data + t;
    IngotSlotType st = {rec->dtype, 0, rec->bytes};
    buf_put(&w->slot_types, &st, sizeof st);
  }
  meta_line(w, arena_printf(&w->c->arena, "arena.%s", entry),
            arena_printf(&w->c->arena, "%llu of %llu", (unsigned long long)arena, (unsigned long long)unplanned));
  for (int k = 0; k < p->n; k++) {
    IngotCost cost;
    kernel_cost(p, &p->kernels[k], &cost.bytes_read, &cost.bytes_written, &cost.flops);
    buf_put(&w->costs, &cost, sizeof cost);
    // a launch of a kernel whose body another runs names that kernel's
    // symbol, with its own buffers
    const Kernel *kn = &p->kernels[k];
    const Kernel *body = kn->same ? kn->same : kn;
    IngotLaunch l = {str_add(&w->strings, body->name), (uint32_t)tensor_of[p->slot[kn->out->id]], (uint64_t)kn->count,
                     (uint32_t)(w->launch_bufs.len / 4), (uint32_t)kn->nbufs};
    buf_put(&w->launches, &l, sizeof l);
    for (int b = 0; b < kn->nbufs; b++) {
      uint32_t s = (uint32_t)kn->bufs[b];
      buf_put(&w->launch_bufs, &s, 4);
    }
    IngotOutputs outs = {(uint32_t)p->kernels[k].nouts, {0}};
    for (int o = 0; o < p->kernels[k].nouts; o++) outs.tensor[o] = (uint32_t)tensor_of[p->slot[p->kernels[k].outs[o]->id]];
    buf_put(&w->outputs, &outs, sizeof outs);
  }
  for (int u = 0; u < g->nupdates; u++) {
    IngotUpdate up = {(uint32_t)tensor_of[p->slot[g->updates[u].target->id]],
                      (uint32_t)tensor_of[p->slot[g->updates[u].value->id]]};
    buf_put(&w->updates, &up, sizeof up);
  }
  e.nslots = (uint32_t)p->nslots;
  e.nlaunches = (uint32_t)p->n;
  e.nupdates = (uint32_t)g->nupdates;
  e.arena_bytes = arena;
  buf_put(&w->entries, &e, sizeof e);
  free(out_name);
  free(tensor_of);
}

static void meta_line(Writer *w, const char *key, const char *value) {
  buf_put(&w->meta, key, strlen(key));
  buf_put(&w->meta, "=", 1);
  buf_put(&w->meta, value, strlen(value));
  buf_put(&w->meta, "\n", 1);
}

static void meta_train(Writer *w, const Module *m) {
  const TrainConfig *t = m->train;
  Arena *a = &w->c->arena;
  meta_line(w, "train.optimizer", t->optimizer);
  if (t->epochs) meta_line(w, "train.epochs", arena_printf(a, "%lld", (long long)t->epochs));
  if (t->steps) meta_line(w, "train.steps", arena_printf(a, "%lld", (long long)t->steps));
  if (t->batch) meta_line(w, "train.batch", arena_printf(a, "%lld", (long long)t->batch));
  meta_line(w, "train.seed", arena_printf(a, "%lld", (long long)t->seed));
  if (t->checkpoint_every)
    meta_line(w, "train.checkpoint_every", arena_printf(a, "%lld", (long long)t->checkpoint_every));
  // a relative path is the model file's, recorded absolute so that the ingot
  // reads the same files from whatever folder it is run in
  char *dir = realpath(m->dir, NULL);
  const char *base = dir ? arena_printf(a, "%s", dir) : m->dir;
  free(dir);
  for (int i = 0; i < t->ndata; i++) {
    const DataSource *d = &t->data[i];
    // data.<split>.<input>[,<input>] = <source>:<scale>:<from>:<to>:<dtype or columns>:<path>
    const char *path = d->path;
    if (path && path[0] != '/') path = arena_printf(a, "%s/%s", base, path);
    meta_line(w, arena_printf(a, "data.%s.%s%s%s", d->split, d->inputs[0], d->ninputs > 1 ? "," : "",
                              d->ninputs > 1 ? d->inputs[1] : ""),
              arena_printf(a, "%s:%.17g:%.17g:%.17g:%s:%s", d->source, d->scale, d->from, d->to,
                           d->dtype ? d->dtype : d->columns ? d->columns : "-", path ? path : ""));
  }
}

// Writes the bytes into f and the hash.
static bool put(FILE *f, Sha256 *hash, const void *p, size_t n) {
  sha256_update(hash, p, n);
  return n == 0 || fwrite(p, 1, n, f) == n;
}

// Writes sections into one file at path, atomically; the file's SHA-256 into
// sha256 (64 hex digits) when it is not NULL.
static int write_file(const char *path, Buf *const *secs, const uint32_t *kinds, int n, char *sha256, char *err,
                      size_t errlen) {
  IngotHeader h = {0};
  memcpy(h.magic, INGOT_MAGIC, 8);
  h.version = INGOT_VERSION;
  h.nsections = (uint32_t)n;
  IngotSection table[16] = {{0}};
  uint64_t at = sizeof h + sizeof(IngotSection) * (uint64_t)n;
  for (int i = 0; i < n; i++) {
    at = (at + INGOT_ALIGN - 1) / INGOT_ALIGN * INGOT_ALIGN;
    table[i] = (IngotSection){kinds[i], 0, at, secs[i]->len, smelt_crc32(secs[i]->data, secs[i]->len), 0};
    at += secs[i]->len;
  }
  h.file_size = at;
  h.header_crc = smelt_crc32(table, sizeof(IngotSection) * (uint64_t)n);
  char *tmp;
  FILE *f = atomic_open(path, &tmp, err, errlen);
  if (!f) return -1;
  Sha256 hash;
  sha256_init(&hash);
  bool ok = put(f, &hash, &h, sizeof h) && put(f, &hash, table, sizeof(IngotSection) * (size_t)n);
  uint64_t pos = sizeof h + sizeof(IngotSection) * (uint64_t)n;
  for (int i = 0; i < n && ok; i++) {
    static const char zeros[INGOT_ALIGN];
    ok = put(f, &hash, zeros, (size_t)(table[i].offset - pos)) && put(f, &hash, secs[i]->data, secs[i]->len);
    pos = table[i].offset + secs[i]->len;
  }
  if (sha256) {
    uint8_t d[32];
    sha256_final(&hash, d);
    for (int i = 0; i < 32; i++) snprintf(sha256 + 2 * i, 3, "%02x", d[i]);
  }
  return atomic_commit(f, tmp, path, ok, err, errlen);
}

// GPU_LAUNCHES: one record per launch, in the order of LAUNCHES.
static void gpu_launches(Buf *out, const KernelPlan *const *plans, int n) {
  for (int p = 0; p < n; p++)
    for (int k = 0; k < plans[p]->n; k++) {
      GpuLaunch g;
      gpu_launch_shape(&plans[p]->kernels[k], &g);
      IngotGpuLaunch r = {g.grid, g.block, g.shared, 0};
      buf_put(out, &r, sizeof r);
    }
}

typedef struct {
  IngotCode rec[48];
  Blob blob[48];
  int n;
} CodeList;

static void code_add(Writer *w, CodeList *l, const char *target, uint32_t format, Blob b, const char *report) {
  l->rec[l->n] = (IngotCode){str_add(&w->strings, target), format, 0, b.len + (format == CODE_PTX), str_add(&w->strings, report ? report : ""), 0};
  l->blob[l->n++] = b;
}

// The code of every GPU target into l: PTX (its NUL stored too) and a cubin
// when ptxas made one; an AMD code object.
static void gpu_code(Writer *w, const Build *b, CodeList *l) {
  for (int i = 0; i < b->ngpus; i++) {
    const GpuCode *gc = &b->gpu[i];
    if (gpu_target_is_nvidia(gc->target)) {
      code_add(w, l, gc->target, CODE_PTX, gc->code, NULL);
      if (gc->cubin.len) code_add(w, l, gc->target, CODE_CUBIN, gc->cubin, gc->report);
    } else {
      code_add(w, l, gc->target, CODE_HSACO, gc->code, NULL);
    }
  }
}

// SEC_GPU_CODE: the table, its records, then each code object at a 64-byte offset.
static void code_section(Buf *out, CodeList *l) {
  IngotCodeTable head = {(uint32_t)l->n, {0}};
  buf_put(out, &head, sizeof head);
  uint64_t at = sizeof head + sizeof(IngotCode) * (uint64_t)l->n;
  for (int i = 0; i < l->n; i++) {
    at = (at + INGOT_ALIGN - 1) / INGOT_ALIGN * INGOT_ALIGN;
    l->rec[i].offset = at;
    at += l->rec[i].size;
  }
  buf_put(out, l->rec, sizeof(IngotCode) * (size_t)l->n);
  for (int i = 0; i < l->n; i++) {
    static const char zeros[INGOT_ALIGN];
    buf_put(out, zeros, (size_t)(l->rec[i].offset - out->len));
    buf_put(out, l->blob[i].data, (size_t)l->rec[i].size);   // PTX: with its NUL
  }
}

// BINDINGS: the table, its records (this ingot's with offset and size 0),
// then the other bindings' ingots, each at an aligned offset.
static void bindings_section(Buf *out, const IngotBindings *bd) {
  IngotBindingTable head = {.count = (uint32_t)bd->n};
  buf_put(out, &head, sizeof head);
  IngotBinding rec[INGOT_MAX_BINDINGS];
  uint64_t at = sizeof head + sizeof *rec * (uint64_t)bd->n;
  for (int i = 0; i < bd->n; i++) {
    rec[i] = (IngotBinding){.value = bd->values[i]};
    snprintf(rec[i].var, sizeof rec[i].var, "%s", bd->var);
    if (i == bd->self) continue;
    at = (at + INGOT_ALIGN - 1) / INGOT_ALIGN * INGOT_ALIGN;
    rec[i].offset = at;
    rec[i].size = bd->sizes[i];
    at += bd->sizes[i];
  }
  buf_put(out, rec, sizeof *rec * (size_t)bd->n);
  for (int i = 0; i < bd->n; i++) {
    if (i == bd->self) continue;
    static const char pad[INGOT_ALIGN];
    buf_put(out, pad, (size_t)(rec[i].offset - out->len));
    buf_put(out, bd->images[i], bd->sizes[i]);
  }
}

int ingot_write(Compilation *c, Module *m, const Build *b, const Define *defs, int ndefs, const BuildTargets *t,
                const IngotBindings *bindings, const char *path, char *sha256) {
  const char *cpu = t->cpu;
  Writer w = {.c = c, .seed = model_seed(m)};
  // the entries, in the order their tensors are added: parameters first, in
  // the train graph's order, so every entry shares them
  const KernelPlan *plans[BUILD_ENTRIES];
  int nplans = 0;
  for (int e = 0; e < BUILD_ENTRIES; e++) {
    if (!b->on[e]) continue;
    add_entry(&w, &b->entries[e]);
    plans[nplans++] = &b->entries[e].plan;
  }
  Buf code = {0}, glaunch = {0}, gcode = {0};
  buf_put(&code, b->host.data, b->host.len);
  CodeList codes = {.n = 0};
  if (t->ngpus) {
    gpu_launches(&glaunch, plans, nplans);
    gpu_code(&w, b, &codes);
    code_section(&gcode, &codes);
  }
  Arena *a = &c->arena;
  meta_line(&w, "model", m->model->name);
  meta_line(&w, "source", m->path);
  meta_line(&w, "compiler", "smelt " SMELT_VERSION);
  meta_line(&w, "target", arena_printf(a, "host:%s", cpu ? cpu : "native"));
  meta_line(&w, "fusion", fusion_mode_name(t->fusion));
  if (t->remat) meta_line(&w, "remat", "on");
  if (t->infer_only) meta_line(&w, "entries", "infer");
  meta_line(&w, "precision", precision_name((Precision)entry_precision(c, m)));
  if (t->ngpus) {
    char list[512] = "";
    for (int i = 0; i < t->ngpus; i++)
      snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "," : "", t->gpus[i]);
    meta_line(&w, "gpu_targets", list);
  }
  for (int i = 0; i < ndefs; i++) meta_line(&w, arena_printf(a, "size.%s", defs[i].name), arena_printf(a, "%lld", (long long)defs[i].value));
  if (b->on[0]) meta_train(&w, m);
  Buf *secs[] = {&w.meta, &w.strings, &w.tensors, &w.entries, &w.launches, &w.slots, &w.updates, &code, &w.weights,
                 &w.costs, &w.outputs, &w.slot_types, &w.launch_bufs, &glaunch, &gcode};
  uint32_t kinds[] = {SEC_META, SEC_STRINGS, SEC_TENSORS, SEC_ENTRIES, SEC_LAUNCHES, SEC_SLOTS, SEC_UPDATES, SEC_HOST_CODE, SEC_WEIGHTS,
                      SEC_COSTS, SEC_OUTPUTS, SEC_SLOT_TYPES, SEC_LAUNCH_BUFS, SEC_GPU_LAUNCHES, SEC_GPU_CODE};
  int nsecs = t->ngpus ? 15 : 13;
  Buf bind = {0};
  Buf *all_secs[16];
  uint32_t all_kinds[16];
  memcpy(all_secs, secs, sizeof(Buf *) * (size_t)nsecs);
  memcpy(all_kinds, kinds, sizeof(uint32_t) * (size_t)nsecs);
  if (bindings) {
    bindings_section(&bind, bindings);
    all_secs[nsecs] = &bind;
    all_kinds[nsecs++] = SEC_BINDINGS;
  }
  char err[2048];
  int rc = write_file(path, all_secs, all_kinds, nsecs, sha256, err, sizeof err);
  free(bind.data);
  if (rc) diag_plain(&c->diag, "%s", err);
  free(code.data);
  free(glaunch.data);
  free(gcode.data);
  Buf *all[] = {&w.strings, &w.tensors, &w.entries, &w.launches, &w.launch_bufs, &w.slots, &w.updates, &w.weights,
                &w.meta, &w.costs, &w.outputs, &w.slot_types};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]->data);
  free(w.tnames);
  return rc;
}

// The bytes as decimal numbers, 20 to a line: compilers take arrays of any
// length, where long string literals meet limits (C11 asks for 4095 bytes).
static bool put_c_bytes(FILE *f, const unsigned char *p, size_t n) {
  bool ok = true;
  for (size_t i = 0; i < n && ok; i++) ok = fprintf(f, "%s%u,", i % 20 ? "" : "\n  ", p[i]) > 0;
  return ok;
}

int ingot_write_c(const char *ingot_path, const char *name, const char *path, char *err, size_t errlen) {
  size_t n;
  char *bytes = file_read(ingot_path, &n);
  if (!bytes) {
    snprintf(err, errlen, "cannot read '%s': %s", ingot_path, strerror(errno));
    return -1;
  }
  char *tmp;
  FILE *f = atomic_open(path, &tmp, err, errlen);
  if (!f) {
    free(bytes);
    return -1;
  }
  // The declarations a program writes to use it are in the leading comment.
  bool ok = fprintf(f,
                    "// An ingot written by smelt " SMELT_VERSION " (smelt build --emit-c %s); open it with\n"
                    "// smelt_ingot_open_memory(%s, %s_size, &ingot). Declarations for other files\n"
                    "// (in C++, inside extern \"C\" { }):\n"
                    "//   extern const unsigned char %s[];\n"
                    "//   extern const size_t %s_size;\n"
                    "#include <stddef.h>\n\n"
                    "extern const unsigned char %s[];\n"
                    "extern const size_t %s_size;\n"
                    "_Alignas(64) const unsigned char %s[%zu] = {",
                    name, name, name, name, name, name, name, name, n ? n : 1) > 0;
  ok = ok && put_c_bytes(f, (const unsigned char *)bytes, n) &&
       fprintf(f, "\n};\nconst size_t %s_size = %zu;\n", name, n) > 0;
  free(bytes);
  return atomic_commit(f, tmp, path, ok, err, errlen);
}
