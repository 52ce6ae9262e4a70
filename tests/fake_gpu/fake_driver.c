// fake_driver.c: a GPU driver over host memory, for testing the GPU device.
//
// One shared library exports the CUDA driver API's entry points and the HIP
// runtime's that runtime/cuda.c and runtime/hip.c bind, each a thin wrapper
// over one implementation: "device" memory is aligned host memory kept in a
// table, streams are synchronous, modules accept any bytes, and launches are
// recorded (fake_gpu.h) instead of run; a stream can be captured into a graph
// of launches, replayed by a graph launch. Every entry point counts its calls and
// can be made to fail (fake_gpu_fail). Like a CUDA 12 driver before 12.8, it
// exports cuEventElapsedTime without the _v2 name. Built with FAKE_GPU_OLD it
// lacks cuLaunchKernel and hipModuleLaunchKernel, as a driver too old would.
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_gpu.h"

// ---- bookkeeping

typedef struct {
  char *p;
  size_t n;   // as asked (the block behind p is rounded up to 256)
} Block;

typedef struct {
  Block *v;
  int n, cap;
} Blocks;

typedef struct {
  char name[48];
  int64_t calls;
  int64_t fail_at;   // the first call that fails (0: none)
  int64_t fail_count;   // how many calls from fail_at fail
  int result;
} Entry;

typedef struct Module Module;
typedef struct {
  uint32_t magic;
  Module *module;
  char name[96];
} Function;

struct Module {
  uint32_t magic;
  Function **fns;
  int nfns, cap;
};

typedef struct {
  uint32_t magic;
  double at;   // the fake clock when recorded, in ms
} Event;

// A launch as a graph holds it: the kernel and its parameters' values.
typedef struct {
  void *fn;
  unsigned grid, block, shared_bytes;
  void *table, *rng, *error;
  int64_t count;
} Node;

typedef struct {
  uint32_t magic;
  Node *nodes;
  int n, cap;
} Graph;

typedef struct {
  uint32_t magic;
  unsigned flags;
  Graph *capturing;   // launches go here instead of running, between begin and end capture
} Stream;

enum { MAGIC_MODULE = 0x4d4f4455, MAGIC_FUNCTION = 0x46554e43, MAGIC_EVENT = 0x45564e54, MAGIC_STREAM = 0x5354524d,
       MAGIC_GRAPH = 0x47524148, MAGIC_EXEC = 0x47455845 };
enum { MAX_ENTRIES = 96, MAX_LAUNCHES = 4096 };

#define LAUNCH_MS 0.5   // each launch moves the fake clock this far

static FakeGpuStats stats;
static Blocks device, host;
static Entry entries[MAX_ENTRIES];
static int nentries;
static FakeLaunch launches[MAX_LAUNCHES];
static size_t memory_total = (size_t)1 << 30;
static bool inited;
static int64_t kernel_error;
static double clock_ms;
static int context = 1;   // the primary context's address is the handle
static void *current;     // the context made current (CUDA)
static bool device_set;   // hipSetDevice was called (HIP)

static Entry *entry_of(const char *name) {
  for (int i = 0; i < nentries; i++)
    if (!strcmp(entries[i].name, name)) return &entries[i];
  if (nentries == MAX_ENTRIES) abort();
  Entry *e = &entries[nentries++];
  snprintf(e->name, sizeof e->name, "%s", name);
  return e;
}

// Counts a call of the entry point name; the result it must fail with, or 0.
static int call(const char *name) {
  Entry *e = entry_of(name);
  e->calls++;
  if (e->fail_at && e->calls >= e->fail_at && e->calls < e->fail_at + e->fail_count) return e->result;
  return 0;
}

static int bad(int r) {
  stats.bad_calls++;
  return r;
}

// The block of set holding [p, p + n), or NULL; a block of n bytes holds
// p == its end when n is 0.
static Block *block_of(Blocks *set, const void *p, size_t n) {
  const char *c = p;
  for (int i = 0; i < set->n; i++) {
    Block *b = &set->v[i];
    if (c >= b->p && c <= b->p + b->n && n <= (size_t)(b->p + b->n - c)) return b;
  }
  return NULL;
}

static bool block_add(Blocks *set, char *p, size_t n) {
  if (set->n == set->cap) {
    int cap = set->cap ? 2 * set->cap : 64;
    Block *grown = realloc(set->v, (size_t)cap * sizeof *grown);
    if (!grown) return false;
    set->v = grown;
    set->cap = cap;
  }
  set->v[set->n++] = (Block){p, n};
  return true;
}

// Removes the block that begins at p; false when there is none.
static bool block_remove(Blocks *set, const void *p) {
  for (int i = 0; i < set->n; i++) {
    if (set->v[i].p != p) continue;
    free(set->v[i].p);
    set->v[i] = set->v[--set->n];
    return true;
  }
  return false;
}

// ---- the implementation

static int fake_init(const char *name) {
  int r = call(name);
  if (r) return r;
  inited = true;
  return 0;
}

#define ENTER(name)                               \
  do {                                            \
    int r_ = call(name);                          \
    if (r_) return r_;                            \
    if (!inited) return bad(FAKE_NOT_INITIALIZED); \
  } while (0)

static int fake_count(const char *name, int *count) {
  ENTER(name);
  *count = 1;
  return 0;
}

static int fake_device_get(const char *name, int *dev, int ordinal) {
  ENTER(name);
  if (ordinal != 0) return bad(FAKE_INVALID_VALUE);
  *dev = ordinal;
  return 0;
}

static int fake_device_name(const char *name, char *buf, int len, int dev) {
  ENTER(name);
  if (dev != 0 || len <= 0) return bad(FAKE_INVALID_VALUE);
  snprintf(buf, (size_t)len, "Fake GPU");
  return 0;
}

static int fake_mem_info(const char *name, size_t *free_bytes, size_t *total) {
  ENTER(name);
  *total = memory_total;
  *free_bytes = (size_t)stats.live_bytes < memory_total ? memory_total - (size_t)stats.live_bytes : 0;
  return 0;
}

// Fresh memory holds 0xA5 bytes, not zeros, as a real driver gives no promise.
static int fake_mem_alloc(const char *name, void **p, size_t n) {
  ENTER(name);
  *p = NULL;
  if (n == 0) return bad(FAKE_INVALID_VALUE);
  if ((size_t)stats.live_bytes > memory_total || n > memory_total - (size_t)stats.live_bytes) return FAKE_OUT_OF_MEMORY;
  char *q = aligned_alloc(256, (n + 255) / 256 * 256);
  if (!q || !block_add(&device, q, n)) {
    free(q);
    return FAKE_OUT_OF_MEMORY;
  }
  memset(q, 0xA5, n);
  stats.allocs++;
  stats.live++;
  stats.live_bytes += (int64_t)n;
  *p = q;
  return 0;
}

static int fake_mem_free(const char *name, void *p) {
  ENTER(name);
  Block *b = block_of(&device, p, 0);
  if (!b || b->p != p) return bad(FAKE_INVALID_VALUE);
  stats.live_bytes -= (int64_t)b->n;
  block_remove(&device, p);
  stats.frees++;
  stats.live--;
  return 0;
}

static int fake_host_alloc(const char *name, void **p, size_t n) {
  ENTER(name);
  char *q = malloc(n ? n : 1);
  if (!q || !block_add(&host, q, n)) {
    free(q);
    return FAKE_OUT_OF_MEMORY;
  }
  stats.host_allocs++;
  stats.host_live++;
  *p = q;
  return 0;
}

static int fake_host_free(const char *name, void *p) {
  ENTER(name);
  if (!block_remove(&host, p)) return bad(FAKE_INVALID_VALUE);
  stats.host_live--;
  return 0;
}

static bool stream_ok(const void *s) { return s && ((const Stream *)s)->magic == MAGIC_STREAM; }
// A stream that takes work now: not being captured (the GPU device captures launches only).
static bool stream_runs(const void *s) { return stream_ok(s) && !((const Stream *)s)->capturing; }

static int fake_memset(const char *name, void *p, int value, size_t n, void *s) {
  ENTER(name);
  if (!stream_runs(s) || !block_of(&device, p, n)) return bad(FAKE_INVALID_VALUE);
  memset(p, value, n);
  return 0;
}

// One copy; dst and src must lie in live device memory where they are on the device.
static int fake_copy(const char *name, void *dst, bool dst_device, const void *src, bool src_device, size_t n,
                     void *s) {
  ENTER(name);
  if (!stream_runs(s) || (dst_device && !block_of(&device, dst, n)) || (src_device && !block_of(&device, src, n)))
    return bad(FAKE_INVALID_VALUE);
  if (!src_device && dst_device) {
    stats.copies_in++;
    if (block_of(&host, src, n)) stats.staged_copies_in++;
  }
  if (src_device && !dst_device) {
    stats.copies_out++;
    if (block_of(&host, dst, n)) stats.staged_copies_out++;
  }
  if (src_device != dst_device && n > stats.largest_copy) stats.largest_copy = n;
  memmove(dst, src, n);
  return 0;
}

// A failed load writes a line to the JIT log, when one is given.
static int fake_module_load(const char *name, void **m, const void *image, char *log, size_t log_size) {
  int r = call(name);
  if (r && log && log_size) snprintf(log, log_size, "fake JIT: the image was refused");
  if (r) return r;
  if (!inited) return bad(FAKE_NOT_INITIALIZED);
  if (!image) return bad(FAKE_INVALID_IMAGE);
  Module *mod = calloc(1, sizeof *mod);
  if (!mod) return FAKE_OUT_OF_MEMORY;
  mod->magic = MAGIC_MODULE;
  stats.modules_loaded++;
  stats.modules_live++;
  *m = mod;
  return 0;
}

static bool module_ok(const void *m) { return m && ((const Module *)m)->magic == MAGIC_MODULE; }

static int fake_module_function(const char *name, void **fn, void *m, const char *fname) {
  ENTER(name);
  if (!module_ok(m) || !fname) return bad(FAKE_INVALID_HANDLE);
  Module *mod = m;
  for (int i = 0; i < mod->nfns; i++)
    if (!strcmp(mod->fns[i]->name, fname)) {
      *fn = mod->fns[i];
      return 0;
    }
  if (mod->nfns == mod->cap) {
    int cap = mod->cap ? 2 * mod->cap : 16;
    Function **grown = realloc(mod->fns, (size_t)cap * sizeof *grown);
    if (!grown) return FAKE_OUT_OF_MEMORY;
    mod->fns = grown;
    mod->cap = cap;
  }
  Function *f = calloc(1, sizeof *f);
  if (!f) return FAKE_OUT_OF_MEMORY;
  f->magic = MAGIC_FUNCTION;
  f->module = mod;
  snprintf(f->name, sizeof f->name, "%s", fname);
  mod->fns[mod->nfns++] = f;
  stats.functions++;
  *fn = f;
  return 0;
}

static int fake_module_unload(const char *name, void *m) {
  ENTER(name);
  if (!module_ok(m)) return bad(FAKE_INVALID_HANDLE);
  Module *mod = m;
  for (int i = 0; i < mod->nfns; i++) {
    mod->fns[i]->magic = 0;
    free(mod->fns[i]);
  }
  free(mod->fns);
  mod->magic = 0;
  free(mod);
  stats.modules_live--;
  return 0;
}

// Runs (records) one launch: the buffer table's entries checked against the
// live allocations, seed and step read where rng points at this moment.
static int fake_run(const Node *nd, bool from_graph) {
  const Function *f = nd->fn;
  FakeLaunch l = {.grid = nd->grid, .block = nd->block, .shared_bytes = nd->shared_bytes, .table = nd->table,
                  .count = nd->count, .graph = from_graph};
  snprintf(l.name, sizeof l.name, "%s", f->name);
  Block *tb = block_of(&device, l.table, sizeof(void *));
  if (!tb || !block_of(&device, nd->error, sizeof(int64_t)) || !block_of(&device, nd->rng, 2 * sizeof(uint64_t)))
    return bad(FAKE_INVALID_VALUE);
  memcpy(&l.seed, nd->rng, sizeof l.seed);
  memcpy(&l.step, (char *)nd->rng + sizeof l.seed, sizeof l.step);
  size_t room = (size_t)(tb->p + tb->n - (char *)l.table) / sizeof(void *);
  for (size_t i = 0; i < room; i++) {
    char *slot;
    memcpy(&slot, (char *)l.table + i * sizeof slot, sizeof slot);
    l.slots++;
    if (!block_of(&device, slot, 0)) l.bad_slots++;
  }
  if (kernel_error) {
    memcpy(nd->error, &kernel_error, sizeof kernel_error);
    kernel_error = 0;
  }
  if (stats.launches < MAX_LAUNCHES) launches[stats.launches] = l;
  stats.launches++;
  stats.bad_slots += l.bad_slots;
  clock_ms += LAUNCH_MS;
  return 0;
}

static bool graph_add(Graph *g, const Node *nd) {
  if (g->n == g->cap) {
    int cap = g->cap ? 2 * g->cap : 16;
    Node *grown = realloc(g->nodes, (size_t)cap * sizeof *grown);
    if (!grown) return false;
    g->nodes = grown;
    g->cap = cap;
  }
  g->nodes[g->n++] = *nd;
  return true;
}

#ifndef FAKE_GPU_OLD
// A launch; the parameters are the GPU device's: the buffer table, count,
// the run's {seed, step} and the error word. On a stream being captured it
// is added to the graph instead.
static int fake_launch(const char *name, void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                       unsigned bz, unsigned shared_bytes, void *s, void **params, void **extra) {
  ENTER(name);
  const Function *f = fn;
  if (!f || f->magic != MAGIC_FUNCTION || !module_ok(f->module) || !stream_ok(s) || !params || extra)
    return bad(FAKE_INVALID_HANDLE);
  if (gx == 0 || gy != 1 || gz != 1 || bx == 0 || by != 1 || bz != 1) return bad(FAKE_INVALID_VALUE);
  Node nd = {.fn = fn, .grid = gx, .block = bx, .shared_bytes = shared_bytes};
  memcpy(&nd.table, params[0], sizeof nd.table);
  memcpy(&nd.count, params[1], sizeof nd.count);
  memcpy(&nd.rng, params[2], sizeof nd.rng);
  memcpy(&nd.error, params[3], sizeof nd.error);
  Stream *st = s;
  if (st->capturing) return graph_add(st->capturing, &nd) ? 0 : FAKE_OUT_OF_MEMORY;
  return fake_run(&nd, false);
}
#endif

// ---- graphs: captured from a stream, instantiated, launched

static int fake_begin_capture(const char *name, void *s, int mode) {
  ENTER(name);
  Stream *st = s;
  if (!stream_ok(s) || st->capturing || mode < 0 || mode > 2) return bad(FAKE_INVALID_VALUE);
  if (!(st->capturing = calloc(1, sizeof *st->capturing))) return FAKE_OUT_OF_MEMORY;
  st->capturing->magic = MAGIC_GRAPH;
  stats.graphs_live++;
  return 0;
}

static int fake_end_capture(const char *name, void *s, void **graph) {
  ENTER(name);
  Stream *st = s;
  if (!stream_ok(s) || !st->capturing || !graph) return bad(FAKE_INVALID_VALUE);
  *graph = st->capturing;
  st->capturing = NULL;
  return 0;
}

static int fake_instantiate(const char *name, void **exec, void *graph, unsigned long long flags) {
  ENTER(name);
  Graph *g = graph;
  if (!g || g->magic != MAGIC_GRAPH || !exec || flags) return bad(FAKE_INVALID_VALUE);
  Graph *e = calloc(1, sizeof *e);
  if (!e) return FAKE_OUT_OF_MEMORY;
  e->magic = MAGIC_EXEC;
  for (int i = 0; i < g->n; i++)
    if (!graph_add(e, &g->nodes[i])) return FAKE_OUT_OF_MEMORY;
  stats.graphs_live++;
  *exec = e;
  return 0;
}

static int fake_graph_launch(const char *name, void *exec, void *s) {
  ENTER(name);
  const Graph *e = exec;
  if (!e || e->magic != MAGIC_EXEC || !stream_runs(s)) return bad(FAKE_INVALID_HANDLE);
  stats.graph_launches++;
  for (int i = 0; i < e->n; i++) {
    int r = fake_run(&e->nodes[i], true);
    if (r) return r;
  }
  return 0;
}

static int fake_graph_free(const char *name, void *graph, uint32_t magic) {
  ENTER(name);
  Graph *g = graph;
  if (!g || g->magic != magic) return bad(FAKE_INVALID_HANDLE);
  g->magic = 0;
  free(g->nodes);
  free(g);
  stats.graphs_live--;
  return 0;
}

static int fake_stream_create(const char *name, void **s, unsigned flags) {
  ENTER(name);
  Stream *st = calloc(1, sizeof *st);
  if (!st) return FAKE_OUT_OF_MEMORY;
  *st = (Stream){.magic = MAGIC_STREAM, .flags = flags};
  stats.streams_live++;
  *s = st;
  return 0;
}

static int fake_stream_destroy(const char *name, void *s) {
  ENTER(name);
  if (!stream_ok(s)) return bad(FAKE_INVALID_HANDLE);
  ((Stream *)s)->magic = 0;
  free(s);
  stats.streams_live--;
  return 0;
}

static int fake_stream_sync(const char *name, void *s) {
  ENTER(name);
  return stream_runs(s) ? 0 : bad(FAKE_INVALID_HANDLE);
}

static bool event_ok(const void *e) { return e && ((const Event *)e)->magic == MAGIC_EVENT; }

static int fake_event_create(const char *name, void **e) {
  ENTER(name);
  Event *ev = calloc(1, sizeof *ev);
  if (!ev) return FAKE_OUT_OF_MEMORY;
  ev->magic = MAGIC_EVENT;
  stats.events_live++;
  *e = ev;
  return 0;
}

static int fake_event_record(const char *name, void *e, void *s) {
  ENTER(name);
  if (!event_ok(e) || !stream_ok(s)) return bad(FAKE_INVALID_HANDLE);
  ((Event *)e)->at = clock_ms;
  return 0;
}

static int fake_event_elapsed(const char *name, float *ms, void *start, void *end) {
  ENTER(name);
  if (!event_ok(start) || !event_ok(end)) return bad(FAKE_INVALID_HANDLE);
  *ms = (float)(((Event *)end)->at - ((Event *)start)->at);
  return 0;
}

static int fake_event_destroy(const char *name, void *e) {
  ENTER(name);
  if (!event_ok(e)) return bad(FAKE_INVALID_HANDLE);
  ((Event *)e)->magic = 0;
  free(e);
  stats.events_live--;
  return 0;
}

static const char *result_name(int r, bool hip) {
  switch (r) {
  case FAKE_SUCCESS: return hip ? "hipSuccess" : "CUDA_SUCCESS";
  case FAKE_INVALID_VALUE: return hip ? "hipErrorInvalidValue" : "CUDA_ERROR_INVALID_VALUE";
  case FAKE_OUT_OF_MEMORY: return hip ? "hipErrorOutOfMemory" : "CUDA_ERROR_OUT_OF_MEMORY";
  case FAKE_NOT_INITIALIZED: return hip ? "hipErrorNotInitialized" : "CUDA_ERROR_NOT_INITIALIZED";
  case FAKE_NO_DEVICE: return hip ? "hipErrorNoDevice" : "CUDA_ERROR_NO_DEVICE";
  case FAKE_INVALID_IMAGE: return hip ? "hipErrorInvalidImage" : "CUDA_ERROR_INVALID_IMAGE";
  case FAKE_INVALID_HANDLE: return hip ? "hipErrorInvalidHandle" : "CUDA_ERROR_INVALID_HANDLE";
  case FAKE_LAUNCH_FAILED: return hip ? "hipErrorLaunchFailure" : "CUDA_ERROR_LAUNCH_FAILED";
  default: return NULL;
  }
}

static const char *result_text(int r) {
  switch (r) {
  case FAKE_SUCCESS: return "no error";
  case FAKE_INVALID_VALUE: return "invalid argument";
  case FAKE_OUT_OF_MEMORY: return "out of memory";
  case FAKE_NOT_INITIALIZED: return "initialization error";
  case FAKE_NO_DEVICE: return "no device";
  case FAKE_INVALID_IMAGE: return "device kernel image is invalid";
  case FAKE_INVALID_HANDLE: return "invalid resource handle";
  case FAKE_LAUNCH_FAILED: return "unspecified launch failure";
  default: return NULL;
  }
}

// ---- the control interface

const FakeGpuStats *fake_gpu_stats(void) { return &stats; }

const FakeLaunch *fake_gpu_launch(int64_t i) {
  return i >= 0 && i < stats.launches && i < MAX_LAUNCHES ? &launches[i] : NULL;
}

int64_t fake_gpu_calls(const char *name) { return entry_of(name)->calls; }

void fake_gpu_fail(const char *name, int64_t nth, int64_t count, int result) {
  Entry *e = entry_of(name);
  e->fail_at = e->calls + nth;
  e->fail_count = count;
  e->result = result;
}

void fake_gpu_set_memory(size_t total) { memory_total = total; }

void fake_gpu_kernel_error(int64_t word) { kernel_error = word; }

// ---- the CUDA driver API

typedef unsigned long long CUdeviceptr;

static void *dev_ptr(CUdeviceptr p) { return (void *)(uintptr_t)p; }

int cuInit(unsigned flags) { return flags ? bad(FAKE_INVALID_VALUE) : fake_init("cuInit"); }

// Like the driver, it fails for a result it does not know.
int cuGetErrorName(int r, const char **name) {
  int f = call("cuGetErrorName");
  *name = f ? NULL : result_name(r, false);
  return f ? f : *name ? 0 : FAKE_INVALID_VALUE;
}

int cuGetErrorString(int r, const char **text) {
  int f = call("cuGetErrorString");
  *text = f ? NULL : result_text(r);
  return f ? f : *text ? 0 : FAKE_INVALID_VALUE;
}

int cuDeviceGetCount(int *count) { return fake_count("cuDeviceGetCount", count); }
int cuDeviceGet(int *dev, int ordinal) { return fake_device_get("cuDeviceGet", dev, ordinal); }
int cuDeviceGetName(char *name, int len, int dev) { return fake_device_name("cuDeviceGetName", name, len, dev); }

// Compute capability 9.0.
int cuDeviceGetAttribute(int *value, int attrib, int dev) {
  ENTER("cuDeviceGetAttribute");
  if (dev != 0 || (attrib != 75 && attrib != 76)) return bad(FAKE_INVALID_VALUE);
  *value = attrib == 75 ? 9 : 0;
  return 0;
}

int cuDevicePrimaryCtxRetain(void **ctx, int dev) {
  ENTER("cuDevicePrimaryCtxRetain");
  if (dev != 0) return bad(FAKE_INVALID_VALUE);
  stats.contexts_live++;
  *ctx = &context;
  return 0;
}

int cuDevicePrimaryCtxRelease_v2(int dev) {
  ENTER("cuDevicePrimaryCtxRelease_v2");
  if (dev != 0 || stats.contexts_live == 0) return bad(FAKE_INVALID_VALUE);
  stats.contexts_live--;
  return 0;
}

int cuCtxSetCurrent(void *ctx) {
  ENTER("cuCtxSetCurrent");
  if (ctx && ctx != &context) return bad(FAKE_INVALID_HANDLE);
  current = ctx;
  return 0;
}

int cuMemGetInfo_v2(size_t *free_bytes, size_t *total) { return fake_mem_info("cuMemGetInfo_v2", free_bytes, total); }

int cuMemAlloc_v2(CUdeviceptr *p, size_t n) {
  void *q = NULL;
  int r = fake_mem_alloc("cuMemAlloc_v2", &q, n);
  *p = (CUdeviceptr)(uintptr_t)q;
  return r;
}

int cuMemFree_v2(CUdeviceptr p) { return fake_mem_free("cuMemFree_v2", dev_ptr(p)); }
int cuMemHostAlloc(void **p, size_t n, unsigned flags) { return flags ? bad(FAKE_INVALID_VALUE) : fake_host_alloc("cuMemHostAlloc", p, n); }
int cuMemFreeHost(void *p) { return fake_host_free("cuMemFreeHost", p); }

int cuMemsetD8Async(CUdeviceptr p, unsigned char value, size_t n, void *s) {
  return fake_memset("cuMemsetD8Async", dev_ptr(p), value, n, s);
}

int cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, void *s) {
  return fake_copy("cuMemcpyHtoDAsync_v2", dev_ptr(dst), true, src, false, n, s);
}

int cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, void *s) {
  return fake_copy("cuMemcpyDtoHAsync_v2", dst, false, dev_ptr(src), true, n, s);
}

int cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, void *s) {
  return fake_copy("cuMemcpyDtoDAsync_v2", dev_ptr(dst), true, dev_ptr(src), true, n, s);
}

// The JIT options the device passes: the error log buffer and its size.
int cuModuleLoadDataEx(void **m, const void *image, unsigned n, int *options, void **values) {
  char *log = NULL;
  size_t size = 0;
  for (unsigned i = 0; i < n; i++) {
    if (options[i] == 5) log = values[i];
    if (options[i] == 6) size = (size_t)(uintptr_t)values[i];
  }
  if (log && size) log[0] = '\0';
  return fake_module_load("cuModuleLoadDataEx", m, image, log, size);
}

int cuModuleGetFunction(void **fn, void *m, const char *name) {
  return fake_module_function("cuModuleGetFunction", fn, m, name);
}

int cuModuleUnload(void *m) { return fake_module_unload("cuModuleUnload", m); }

#ifndef FAKE_GPU_OLD
int cuLaunchKernel(void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                          unsigned shared_bytes, void *s, void **params, void **extra) {
  if (current != &context) return bad(FAKE_INVALID_HANDLE);
  return fake_launch("cuLaunchKernel", fn, gx, gy, gz, bx, by, bz, shared_bytes, s, params, extra);
}
#endif

int cuStreamCreate(void **s, unsigned flags) { return fake_stream_create("cuStreamCreate", s, flags); }
int cuStreamBeginCapture_v2(void *s, int mode) { return fake_begin_capture("cuStreamBeginCapture_v2", s, mode); }
int cuStreamEndCapture(void *s, void **graph) { return fake_end_capture("cuStreamEndCapture", s, graph); }
int cuGraphInstantiateWithFlags(void **exec, void *graph, unsigned long long flags) {
  return fake_instantiate("cuGraphInstantiateWithFlags", exec, graph, flags);
}
int cuGraphLaunch(void *exec, void *s) { return fake_graph_launch("cuGraphLaunch", exec, s); }
int cuGraphExecDestroy(void *exec) { return fake_graph_free("cuGraphExecDestroy", exec, MAGIC_EXEC); }
int cuGraphDestroy(void *graph) { return fake_graph_free("cuGraphDestroy", graph, MAGIC_GRAPH); }
int cuStreamDestroy_v2(void *s) { return fake_stream_destroy("cuStreamDestroy_v2", s); }
int cuStreamSynchronize(void *s) { return fake_stream_sync("cuStreamSynchronize", s); }

int cuEventCreate(void **e, unsigned flags) {
  return flags ? bad(FAKE_INVALID_VALUE) : fake_event_create("cuEventCreate", e);
}

int cuEventRecord(void *e, void *s) { return fake_event_record("cuEventRecord", e, s); }
int cuEventElapsedTime(float *ms, void *start, void *end) { return fake_event_elapsed("cuEventElapsedTime", ms, start, end); }
int cuEventDestroy_v2(void *e) { return fake_event_destroy("cuEventDestroy_v2", e); }

// ---- the HIP runtime

int hipInit(unsigned flags) { return flags ? bad(FAKE_INVALID_VALUE) : fake_init("hipInit"); }

const char *hipGetErrorName(int r) {
  const char *name = result_name(r, true);
  return call("hipGetErrorName") ? NULL : name ? name : "hipErrorUnknown";
}

const char *hipGetErrorString(int r) {
  const char *text = result_text(r);
  return call("hipGetErrorString") ? NULL : text ? text : "unknown error";
}

int hipGetDeviceCount(int *count) { return fake_count("hipGetDeviceCount", count); }

int hipSetDevice(int ordinal) {
  ENTER("hipSetDevice");
  if (ordinal != 0) return bad(FAKE_INVALID_VALUE);
  device_set = true;
  return 0;
}

int hipDeviceGet(int *dev, int ordinal) { return fake_device_get("hipDeviceGet", dev, ordinal); }
int hipDeviceGetName(char *name, int len, int dev) { return fake_device_name("hipDeviceGetName", name, len, dev); }
int hipMemGetInfo(size_t *free_bytes, size_t *total) { return fake_mem_info("hipMemGetInfo", free_bytes, total); }
int hipMalloc(void **p, size_t n) { return fake_mem_alloc("hipMalloc", p, n); }
int hipFree(void *p) { return fake_mem_free("hipFree", p); }
int hipMemsetAsync(void *p, int value, size_t n, void *s) { return fake_memset("hipMemsetAsync", p, value, n, s); }

int hipMemcpyHtoDAsync(void *dst, const void *src, size_t n, void *s) {
  return fake_copy("hipMemcpyHtoDAsync", dst, true, src, false, n, s);
}

int hipMemcpyDtoHAsync(void *dst, void *src, size_t n, void *s) {
  return fake_copy("hipMemcpyDtoHAsync", dst, false, src, true, n, s);
}

int hipMemcpyDtoDAsync(void *dst, void *src, size_t n, void *s) {
  return fake_copy("hipMemcpyDtoDAsync", dst, true, src, true, n, s);
}

int hipModuleLoadData(void **m, const void *image) { return fake_module_load("hipModuleLoadData", m, image, NULL, 0); }

int hipModuleGetFunction(void **fn, void *m, const char *name) {
  return fake_module_function("hipModuleGetFunction", fn, m, name);
}

int hipModuleUnload(void *m) { return fake_module_unload("hipModuleUnload", m); }

#ifndef FAKE_GPU_OLD
int hipModuleLaunchKernel(void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                 unsigned bz, unsigned shared_bytes, void *s, void **params, void **extra) {
  if (!device_set) return bad(FAKE_INVALID_HANDLE);
  return fake_launch("hipModuleLaunchKernel", fn, gx, gy, gz, bx, by, bz, shared_bytes, s, params, extra);
}
#endif

int hipStreamCreateWithFlags(void **s, unsigned flags) { return fake_stream_create("hipStreamCreateWithFlags", s, flags); }
int hipStreamBeginCapture(void *s, int mode) { return fake_begin_capture("hipStreamBeginCapture", s, mode); }
int hipStreamEndCapture(void *s, void **graph) { return fake_end_capture("hipStreamEndCapture", s, graph); }
int hipGraphInstantiateWithFlags(void **exec, void *graph, unsigned long long flags) {
  return fake_instantiate("hipGraphInstantiateWithFlags", exec, graph, flags);
}
int hipGraphLaunch(void *exec, void *s) { return fake_graph_launch("hipGraphLaunch", exec, s); }
int hipGraphExecDestroy(void *exec) { return fake_graph_free("hipGraphExecDestroy", exec, MAGIC_EXEC); }
int hipGraphDestroy(void *graph) { return fake_graph_free("hipGraphDestroy", graph, MAGIC_GRAPH); }
int hipStreamDestroy(void *s) { return fake_stream_destroy("hipStreamDestroy", s); }
int hipStreamSynchronize(void *s) { return fake_stream_sync("hipStreamSynchronize", s); }
int hipEventCreate(void **e) { return fake_event_create("hipEventCreate", e); }
int hipEventRecord(void *e, void *s) { return fake_event_record("hipEventRecord", e, s); }
int hipEventElapsedTime(float *ms, void *start, void *end) { return fake_event_elapsed("hipEventElapsedTime", ms, start, end); }
int hipEventDestroy(void *e) { return fake_event_destroy("hipEventDestroy", e); }
