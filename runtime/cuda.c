// cuda.c: the CUDA device, through the driver API of libcuda.so.1.
//
// The driver is opened with dlopen when a session asks for it, so the runtime
// builds and runs where there is no CUDA at all; the few types and entry
// points used here are declared below from the driver's ABI instead of
// cuda.h. All work goes on one non-blocking stream of the device's primary
// context: launches and copies on the device run asynchronously in stream
// order, copies to and from the host go through a pinned buffer and wait for
// the stream, and a failure that a void entry point cannot return is kept for
// the next take_error.
#define _GNU_SOURCE
#include <ctype.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

// ---- the driver's ABI (cuda.h, CUDA 12 and 13)

typedef int CUresult;
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef unsigned long long CUdeviceptr;

enum {
  CUDA_SUCCESS = 0,
  CUDA_ERROR_OUT_OF_MEMORY = 2,
  CUDA_ERROR_STUB_LIBRARY = 34,
  CUDA_ERROR_INSUFFICIENT_DRIVER = 35,
  CUDA_ERROR_NO_DEVICE = 100,
  CUDA_ERROR_INVALID_IMAGE = 200,
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
  CU_JIT_ERROR_LOG_BUFFER = 5,
  CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6,
  CU_STREAM_NON_BLOCKING = 1,
  CU_EVENT_DEFAULT = 0,
};

// Every entry point used: the field, the symbol the driver exports, an older
// symbol to fall back on (or NULL), and its parameters.
#define CU_API(X)                                                                                           \
  X(cuInit, "cuInit", NULL, (unsigned flags))                                                               \
  X(cuGetErrorName, "cuGetErrorName", NULL, (CUresult r, const char **name))                                \
  X(cuGetErrorString, "cuGetErrorString", NULL, (CUresult r, const char **text))                            \
  X(cuDeviceGetCount, "cuDeviceGetCount", NULL, (int *count))                                               \
  X(cuDeviceGet, "cuDeviceGet", NULL, (CUdevice *dev, int ordinal))                                         \
  X(cuDeviceGetName, "cuDeviceGetName", NULL, (char *name, int len, CUdevice dev))                          \
  X(cuDeviceGetAttribute, "cuDeviceGetAttribute", NULL, (int *value, int attrib, CUdevice dev))             \
  X(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", NULL, (CUcontext *ctx, CUdevice dev))             \
  X(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease",                 \
    (CUdevice dev))                                                                                         \
  X(cuCtxSetCurrent, "cuCtxSetCurrent", NULL, (CUcontext ctx))                                              \
  X(cuMemGetInfo, "cuMemGetInfo_v2", NULL, (size_t *free, size_t *total))                                   \
  X(cuMemAlloc, "cuMemAlloc_v2", NULL, (CUdeviceptr *p, size_t bytes))                                      \
  X(cuMemFree, "cuMemFree_v2", NULL, (CUdeviceptr p))                                                       \
  X(cuMemHostAlloc, "cuMemHostAlloc", NULL, (void **p, size_t bytes, unsigned flags))                       \
  X(cuMemFreeHost, "cuMemFreeHost", NULL, (void *p))                                                        \
  X(cuMemsetD8Async, "cuMemsetD8Async", NULL, (CUdeviceptr p, unsigned char value, size_t n, CUstream s))   \
  X(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2", NULL,                                                        \
    (CUdeviceptr dst, const void *src, size_t n, CUstream s))                                               \
  X(cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2", NULL, (void *dst, CUdeviceptr src, size_t n, CUstream s))    \
  X(cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2", NULL,                                                        \
    (CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s))                                               \
  X(cuModuleLoadDataEx, "cuModuleLoadDataEx", NULL,                                                         \
    (CUmodule *m, const void *image, unsigned n, int *options, void **values))                              \
  X(cuModuleGetFunction, "cuModuleGetFunction", NULL, (CUfunction *f, CUmodule m, const char *name))        \
  X(cuModuleUnload, "cuModuleUnload", NULL, (CUmodule m))                                                   \
  X(cuLaunchKernel, "cuLaunchKernel", NULL,                                                                 \
    (CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,            \
     unsigned shared_bytes, CUstream s, void **params, void **extra))                                       \
  X(cuStreamCreate, "cuStreamCreate", NULL, (CUstream *s, unsigned flags))                                  \
  X(cuStreamDestroy, "cuStreamDestroy_v2", NULL, (CUstream s))                                              \
  X(cuStreamSynchronize, "cuStreamSynchronize", NULL, (CUstream s))                                         \
  X(cuEventCreate, "cuEventCreate", NULL, (CUevent *e, unsigned flags))                                     \
  X(cuEventRecord, "cuEventRecord", NULL, (CUevent e, CUstream s))                                          \
  X(cuEventElapsedTime, "cuEventElapsedTime_v2", "cuEventElapsedTime",                                      \
    (float *ms, CUevent start, CUevent end))                                                                \
  X(cuEventDestroy, "cuEventDestroy_v2", NULL, (CUevent e))

typedef struct {
#define X(fn, name, fallback, params) CUresult (*fn) params;
  CU_API(X)
#undef X
} CuApi;

// ---- the device

// Host copies go through a pinned buffer of at most this size, in pieces.
#define STAGE_MAX (16u << 20)
#define STAGE_MIN (64u << 10)

typedef struct {
  CUevent start, end;
} Timing;

typedef struct {
  CuApi api;
  void *lib;
  int ordinal;
  CUdevice dev;
  int sm;                   // compute capability as in "sm_90": 10 * major + minor
  CUcontext ctx;            // the primary context, retained; NULL until then
  CUstream stream;          // all work, in order
  CUmodule module;          // set by load_code
  const smelt_ingot *ig;    // set by load_code: launch reads its GPU launch records
  CUdeviceptr error;        // the kernels' error word: 8 bytes of device memory
  void *pinned;             // staging for host copies, pinned_size bytes
  size_t pinned_size;
  Timing *timings;          // while profiling: one per launch, in order
  int ntimings, timings_cap;
  bool profiling;
  char fault[256];          // the first failure of a copy, reported by take_error
  char why[256];            // scratch for cuda_why
  char name[192];
  char arch[16];            // "sm_90"
} Cuda;

static CUdeviceptr dptr(const void *p) { return (CUdeviceptr)(uintptr_t)p; }

// Names the results cuInit gives when the driver cannot say: the stub
// library answers every call, cuGetErrorName included, with an error.
static const char *cuda_known_error(CUresult r, const char **text) {
  switch (r) {
  case CUDA_ERROR_STUB_LIBRARY:
    *text = "CUDA driver is a stub library";
    return "CUDA_ERROR_STUB_LIBRARY";
  case CUDA_ERROR_INSUFFICIENT_DRIVER:
    *text = "CUDA driver version is insufficient for CUDA runtime version";
    return "CUDA_ERROR_INSUFFICIENT_DRIVER";
  case CUDA_ERROR_NO_DEVICE:
    *text = "no CUDA-capable device is detected";
    return "CUDA_ERROR_NO_DEVICE";
  default:
    *text = "unknown error";
    return NULL;
  }
}

// "NAME: description" of a driver result, in c->why until the next call.
static const char *cuda_why(Cuda *c, CUresult r) {
  const char *name = NULL, *text = NULL;
  if (c->api.cuGetErrorName(r, &name) != CUDA_SUCCESS || c->api.cuGetErrorString(r, &text) != CUDA_SUCCESS ||
      !name || !text)
    name = cuda_known_error(r, &text);
  if (name) snprintf(c->why, sizeof c->why, "%s: %s", name, text);
  else snprintf(c->why, sizeof c->why, "CUDA error %d: %s", r, text);
  return c->why;
}

// Reports a failure of an entry point that returns nothing; the first one is
// kept so that the next take_error fails too.
static void cuda_fault(Cuda *c, CUresult r, const char *doing) {
  char msg[sizeof c->fault];
  snprintf(msg, sizeof msg, "CUDA error while %s: %s", doing, cuda_why(c, r));
  if (!c->fault[0]) memcpy(c->fault, msg, sizeof msg);
  rt_fail(SMELT_ERR_RUNTIME, "%s", msg);
}

// The caller may come from any thread: each entry point makes the context
// current there first.
static void cuda_enter(Cuda *c) { c->api.cuCtxSetCurrent(c->ctx); }

static void cuda_timings_clear(Cuda *c) {
  for (int i = 0; i < c->ntimings; i++) {
    c->api.cuEventDestroy(c->timings[i].start);
    c->api.cuEventDestroy(c->timings[i].end);
  }
  c->ntimings = 0;
}

// Frees whatever of c was set up, waiting for queued work first.
static void cuda_release(Cuda *c) {
  if (c->ctx) {
    cuda_enter(c);
    if (c->stream) c->api.cuStreamSynchronize(c->stream);
    cuda_timings_clear(c);
    if (c->error) c->api.cuMemFree(c->error);
    if (c->pinned) c->api.cuMemFreeHost(c->pinned);
    if (c->module) c->api.cuModuleUnload(c->module);
    if (c->stream) c->api.cuStreamDestroy(c->stream);
    c->api.cuDevicePrimaryCtxRelease(c->dev);
  }
  if (c->lib) dlclose(c->lib);
  free(c->timings);
  free(c);
}

static void cuda_destroy(Device *d) {
  cuda_release(d->impl);
  free(d);
}

// ---- code

static const char *code_target(const smelt_ingot *ig, const IngotCode *code) {
  const char *t = ingot_str(ig, code->target);
  return t ? t : "?";
}

// The distinct targets of the ingot's code objects, "sm_80, sm_90", in buf.
static void code_targets(const smelt_ingot *ig, char *buf, size_t size) {
  size_t len = 0;
  buf[0] = '\0';
  for (uint32_t i = 0; i < ingot_ncodes(ig); i++) {
    const char *t = code_target(ig, ingot_code_at(ig, i));
    bool seen = false;
    for (uint32_t j = 0; j < i && !seen; j++) seen = !strcmp(t, code_target(ig, ingot_code_at(ig, j)));
    if (seen) continue;
    int n = snprintf(buf + len, size - len, "%s%s", len ? ", " : "", t);
    if (n < 0 || (size_t)n >= size - len) break;
    len += (size_t)n;
  }
}

// The number of an "sm_NN" target (90 for "sm_90" and "sm_90a"), or -1. A
// suffix letter ties the code to exactly that GPU: *exact says so.
static int sm_number(const char *target, bool *exact) {
  if (strncmp(target, "sm_", 3) != 0 || !isdigit((unsigned char)target[3])) return -1;
  char *end;
  long n = strtol(target + 3, &end, 10);
  *exact = *end != '\0';
  return n > 0 && n < 10000 ? (int)n : -1;
}

// The code object in format that suits a GPU of compute capability sm: a
// CUBIN built for it, or the PTX for the highest target not above it (the
// driver compiles PTX forward, never back); of two for the same GPU, the one
// with a suffix, which uses all of its features. NULL when none suits.
static const IngotCode *cuda_pick(const smelt_ingot *ig, int sm, uint32_t format) {
  const IngotCode *best = NULL;
  int best_rank = -1;
  for (uint32_t i = 0; i < ingot_ncodes(ig); i++) {
    const IngotCode *code = ingot_code_at(ig, i);
    bool exact = false;
    int n = code->format == format ? sm_number(code_target(ig, code), &exact) : -1;
    bool fits = n == sm || (n > 0 && n < sm && !exact && format == CODE_PTX);
    int rank = 2 * n + exact;
    if (fits && rank > best_rank) {
      best = code;
      best_rank = rank;
    }
  }
  return best;
}

// Loads one code object as the device's module; the JIT's error log, if any,
// goes to log.
static CUresult cuda_module_load(Cuda *c, const smelt_ingot *ig, const IngotCode *code, char *log, size_t size) {
  const char *image = ingot_code_data(ig, code);
  log[0] = '\0';
  // The driver reads PTX up to its NUL: make sure there is one.
  if (!image || code->size == 0 || (code->format == CODE_PTX && image[code->size - 1] != '\0')) {
    snprintf(log, size, "the code object in the ingot is malformed");
    return CUDA_ERROR_INVALID_IMAGE;
  }
  int options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *values[] = {log, (void *)(uintptr_t)size};
  return c->api.cuModuleLoadDataEx(&c->module, image, 2, options, values);
}

static smelt_status cuda_load_code(Device *d, const smelt_ingot *ig) {
  Cuda *c = d->impl;
  cuda_enter(c);
  char sm[16], targets[256];
  snprintf(sm, sizeof sm, "sm_%d", c->sm);
  if (ingot_ncodes(ig) == 0)
    return rt_fail(SMELT_ERR_NO_DEVICE, "the ingot was built for the CPU only; rebuild with --target=%s", sm);
  const IngotCode *tries[] = {cuda_pick(ig, c->sm, CODE_CUBIN), cuda_pick(ig, c->sm, CODE_PTX)};
  if (!tries[0] && !tries[1]) {
    code_targets(ig, targets, sizeof targets);
    return rt_fail(SMELT_ERR_NO_DEVICE, "the ingot has no code for %s (it was built for: %s); rebuild with --target=%s",
                   sm, targets, sm);
  }
  if (c->module) c->api.cuModuleUnload(c->module);
  c->module = NULL;
  c->ig = NULL;
  char log[768];
  CUresult r = CUDA_SUCCESS;
  const IngotCode *code = NULL;
  for (int i = 0; i < 2; i++) {   // a CUBIN the driver refuses may still have PTX to fall back on
    if (!tries[i]) continue;
    code = tries[i];
    r = cuda_module_load(c, ig, code, log, sizeof log);
    if (r == CUDA_SUCCESS) {
      c->ig = ig;
      return SMELT_OK;
    }
    c->module = NULL;
  }
  return rt_fail(SMELT_ERR_NO_DEVICE, "cannot load the ingot's %s for %s on %s: %s%s%s",
                 code->format == CODE_PTX ? "PTX" : "CUBIN", code_target(ig, code), sm, cuda_why(c, r),
                 log[0] ? "\n" : "", log);
}

static void *cuda_symbol(Device *d, const char *name) {
  Cuda *c = d->impl;
  CUfunction fn = NULL;
  if (!c->module) return NULL;
  cuda_enter(c);
  return c->api.cuModuleGetFunction(&fn, c->module, name) == CUDA_SUCCESS ? (void *)fn : NULL;
}

// ---- memory

static smelt_status cuda_out_of_memory(Cuda *c, size_t bytes) {
  size_t free_bytes = 0, total = 0;
  c->api.cuMemGetInfo(&free_bytes, &total);
  return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory on cuda:%d: %zu bytes asked, %zu of %zu bytes free",
                 c->ordinal, bytes, free_bytes, total);
}

// Zeroed device memory in *out, 256-byte aligned (the kernels rely on 64).
// The request is checked against free memory first, so that an arena too
// large gets a clear message.
static smelt_status cuda_mem_new(Cuda *c, size_t bytes, CUdeviceptr *out) {
  size_t n = bytes ? bytes : 256, free_bytes = 0, total = 0;
  CUdeviceptr p = 0;
  *out = 0;
  if (c->api.cuMemGetInfo(&free_bytes, &total) == CUDA_SUCCESS && n > free_bytes) return cuda_out_of_memory(c, bytes);
  CUresult r = c->api.cuMemAlloc(&p, n);
  if (r == CUDA_ERROR_OUT_OF_MEMORY) return cuda_out_of_memory(c, bytes);
  if (r != CUDA_SUCCESS) return rt_fail(SMELT_ERR_RUNTIME, "CUDA error while allocating memory: %s", cuda_why(c, r));
  r = c->api.cuMemsetD8Async(p, 0, n, c->stream);
  if (r == CUDA_SUCCESS) r = c->api.cuStreamSynchronize(c->stream);
  if (r != CUDA_SUCCESS) {
    c->api.cuMemFree(p);
    return rt_fail(SMELT_ERR_RUNTIME, "CUDA error while clearing new memory: %s", cuda_why(c, r));
  }
  *out = p;
  return SMELT_OK;
}

static void *cuda_alloc(Device *d, size_t bytes) {
  Cuda *c = d->impl;
  CUdeviceptr p;
  cuda_enter(c);
  return cuda_mem_new(c, bytes, &p) == SMELT_OK ? (void *)(uintptr_t)p : NULL;
}

static void cuda_free(Device *d, void *p) {
  Cuda *c = d->impl;
  if (!p) return;
  cuda_enter(c);
  c->api.cuStreamSynchronize(c->stream);   // queued kernels may still use p
  c->api.cuMemFree(dptr(p));
}

// The size of the pinned staging buffer for a copy of bytes, grown as needed;
// 0 when none can be pinned (copies then go straight from pageable memory).
static size_t cuda_stage(Cuda *c, size_t bytes) {
  size_t want = bytes < STAGE_MIN ? STAGE_MIN : bytes > STAGE_MAX ? STAGE_MAX : bytes;
  if (c->pinned_size >= want) return c->pinned_size;
  if (want < 2 * c->pinned_size) want = 2 * c->pinned_size < STAGE_MAX ? 2 * c->pinned_size : STAGE_MAX;
  if (c->pinned) c->api.cuMemFreeHost(c->pinned);
  c->pinned = NULL;
  c->pinned_size = 0;
  if (c->api.cuMemHostAlloc(&c->pinned, want, 0) != CUDA_SUCCESS) {
    c->pinned = NULL;
    return 0;
  }
  c->pinned_size = want;
  return want;
}

// Copies in pieces of the staging buffer; host has been read in full when it
// returns. Stream order keeps the copy after the kernels queued before it.
static void cuda_copy_in(Device *d, void *dst, const void *host, size_t bytes) {
  Cuda *c = d->impl;
  if (bytes == 0) return;
  cuda_enter(c);
  size_t piece = cuda_stage(c, bytes);
  CUresult r = CUDA_SUCCESS;
  for (size_t done = 0; done < bytes && r == CUDA_SUCCESS;) {
    size_t n = bytes - done;
    if (piece && n > piece) n = piece;
    const void *from = (const char *)host + done;
    if (piece) from = memcpy(c->pinned, from, n);
    r = c->api.cuMemcpyHtoDAsync(dptr(dst) + done, from, n, c->stream);
    if (r == CUDA_SUCCESS) r = c->api.cuStreamSynchronize(c->stream);
    done += n;
  }
  if (r != CUDA_SUCCESS) cuda_fault(c, r, "copying to the device");
}

// Waits for the kernels queued before it, then copies in pieces of the
// staging buffer.
static void cuda_copy_out(Device *d, void *host, const void *src, size_t bytes) {
  Cuda *c = d->impl;
  if (bytes == 0) return;
  cuda_enter(c);
  size_t piece = cuda_stage(c, bytes);
  CUresult r = CUDA_SUCCESS;
  for (size_t done = 0; done < bytes && r == CUDA_SUCCESS;) {
    size_t n = bytes - done;
    if (piece && n > piece) n = piece;
    char *to = piece ? c->pinned : (char *)host + done;
    r = c->api.cuMemcpyDtoHAsync(to, dptr(src) + done, n, c->stream);
    if (r == CUDA_SUCCESS) r = c->api.cuStreamSynchronize(c->stream);
    if (r == CUDA_SUCCESS && piece) memcpy((char *)host + done, c->pinned, n);
    done += n;
  }
  if (r != CUDA_SUCCESS) cuda_fault(c, r, "copying from the device");
}

static void cuda_copy(Device *d, void *dst, const void *src, size_t bytes) {
  Cuda *c = d->impl;
  if (bytes == 0) return;
  cuda_enter(c);
  CUresult r = c->api.cuMemcpyDtoDAsync(dptr(dst), dptr(src), bytes, c->stream);
  if (r != CUDA_SUCCESS) cuda_fault(c, r, "copying on the device");
}

static void cuda_sync(Device *d) {
  Cuda *c = d->impl;
  cuda_enter(c);
  CUresult r = c->api.cuStreamSynchronize(c->stream);
  if (r != CUDA_SUCCESS) cuda_fault(c, r, "running kernels");
}

// ---- launches

// A start and an end event for one launch, kept in c->timings; false when
// they cannot be had (the launch then goes untimed).
static bool cuda_timing_new(Cuda *c, Timing *t) {
  if (c->ntimings == c->timings_cap) {
    int cap = c->timings_cap ? 2 * c->timings_cap : 64;
    Timing *grown = realloc(c->timings, (size_t)cap * sizeof *grown);
    if (!grown) return false;
    c->timings = grown;
    c->timings_cap = cap;
  }
  t->start = t->end = NULL;
  if (c->api.cuEventCreate(&t->start, CU_EVENT_DEFAULT) == CUDA_SUCCESS &&
      c->api.cuEventCreate(&t->end, CU_EVENT_DEFAULT) == CUDA_SUCCESS)
    return true;
  if (t->start) c->api.cuEventDestroy(t->start);
  return false;
}

// Queues kernel fn over [0, count) with the grid the ingot gives launch li.
// The kernel's parameters, in order: the buffer table, count, seed, step and
// the error word.
static int64_t cuda_launch(Device *d, void *fn, void *bufs, uint32_t li, int64_t count, uint64_t seed, uint64_t step) {
  Cuda *c = d->impl;
  const IngotGpuLaunch *g = c->ig ? ingot_gpu_launch(c->ig, li) : NULL;
  if (count <= 0) return 0;
  if (!g || !fn) {
    rt_fail(SMELT_ERR_RUNTIME, "launch %u has no GPU kernel in the ingot", li);
    return -1;
  }
  cuda_enter(c);
  CUdeviceptr table = dptr(bufs);
  void *params[] = {&table, &count, &seed, &step, &c->error};
  Timing t;
  bool timed = c->profiling && cuda_timing_new(c, &t);
  if (timed) c->api.cuEventRecord(t.start, c->stream);
  CUresult r = c->api.cuLaunchKernel((CUfunction)fn, g->grid, 1, 1, g->block, 1, 1, g->shared_bytes, c->stream,
                                     params, NULL);
  if (timed && r == CUDA_SUCCESS && c->api.cuEventRecord(t.end, c->stream) == CUDA_SUCCESS) {
    c->timings[c->ntimings++] = t;
  } else if (timed) {
    c->api.cuEventDestroy(t.start);
    c->api.cuEventDestroy(t.end);
  }
  if (r != CUDA_SUCCESS) {
    rt_fail(SMELT_ERR_RUNTIME, "CUDA launch failed: %s", cuda_why(c, r));
    return -1;
  }
  return 0;
}

// Waits for the stream, then reads and clears the error word.
static int64_t cuda_take_error(Device *d) {
  Cuda *c = d->impl;
  cuda_enter(c);
  CUresult r = c->api.cuStreamSynchronize(c->stream);
  if (r != CUDA_SUCCESS) {
    rt_fail(SMELT_ERR_RUNTIME, "CUDA error while running kernels: %s", cuda_why(c, r));
    return -1;
  }
  if (c->fault[0]) {
    rt_fail(SMELT_ERR_RUNTIME, "%s", c->fault);
    c->fault[0] = '\0';
    return -1;
  }
  int64_t word = 0;
  r = c->api.cuMemcpyDtoHAsync(&word, c->error, sizeof word, c->stream);
  if (r == CUDA_SUCCESS) r = c->api.cuStreamSynchronize(c->stream);
  if (r == CUDA_SUCCESS && word) r = c->api.cuMemsetD8Async(c->error, 0, sizeof word, c->stream);
  if (r != CUDA_SUCCESS) {
    rt_fail(SMELT_ERR_RUNTIME, "CUDA error while reading the kernels' error word: %s", cuda_why(c, r));
    return -1;
  }
  return word;
}

static void cuda_profile(Device *d, bool on) {
  Cuda *c = d->impl;
  c->profiling = on;
}

// Waits, writes the milliseconds of each timed launch (up to max), and
// forgets them all.
static int cuda_profile_take(Device *d, double *ms, int max) {
  Cuda *c = d->impl;
  cuda_enter(c);
  CUresult r = c->api.cuStreamSynchronize(c->stream);
  int n = 0;
  if (r != CUDA_SUCCESS) cuda_fault(c, r, "running kernels");
  for (int i = 0; r == CUDA_SUCCESS && i < c->ntimings && n < max; i++) {
    float t = 0;
    c->api.cuEventElapsedTime(&t, c->timings[i].start, c->timings[i].end);
    ms[n++] = t;
  }
  cuda_timings_clear(c);
  return n;
}

// ---- opening

static void *cuda_sym(void *lib, const char *name, const char *fallback) {
  void *p = dlsym(lib, name);
  return p || !fallback ? p : dlsym(lib, fallback);
}

// Loads the driver and finds every entry point. RTLD_NODELETE keeps the
// driver mapped after dlclose: its threads and thread-exit handlers outlive
// the context.
static smelt_status cuda_driver_open(Cuda *c) {
  c->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!c->lib)
    return rt_fail(SMELT_ERR_NO_DEVICE,
                   "no CUDA driver: libcuda.so.1 cannot be loaded (is the NVIDIA driver installed?)");
#define X(fn, name, fallback, params)                                                     \
  if (!(c->api.fn = (CUresult(*) params)cuda_sym(c->lib, name, fallback)))                \
    return rt_fail(SMELT_ERR_NO_DEVICE, "the CUDA driver is too old: it lacks %s", name);
  CU_API(X)
#undef X
  return SMELT_OK;
}

// Initializes the driver and finds the device of c->ordinal: its name and
// compute capability.
static smelt_status cuda_device_find(Cuda *c) {
  CUresult r = c->api.cuInit(0);
  if (r != CUDA_SUCCESS) return rt_fail(SMELT_ERR_NO_DEVICE, "no CUDA device: cuInit failed: %s", cuda_why(c, r));
  int count = 0;
  r = c->api.cuDeviceGetCount(&count);
  if (r != CUDA_SUCCESS) return rt_fail(SMELT_ERR_NO_DEVICE, "no CUDA device: %s", cuda_why(c, r));
  if (c->ordinal < 0 || c->ordinal >= count)
    return rt_fail(SMELT_ERR_NO_DEVICE, "no CUDA device %d: the driver sees %d device%s", c->ordinal, count,
                   count == 1 ? "" : "s");
  char name[128] = "";
  int major = 0, minor = 0;
  r = c->api.cuDeviceGet(&c->dev, c->ordinal);
  if (r == CUDA_SUCCESS) r = c->api.cuDeviceGetName(name, sizeof name, c->dev);
  if (r == CUDA_SUCCESS) r = c->api.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, c->dev);
  if (r == CUDA_SUCCESS) r = c->api.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, c->dev);
  if (r != CUDA_SUCCESS) return rt_fail(SMELT_ERR_NO_DEVICE, "cannot query cuda:%d: %s", c->ordinal, cuda_why(c, r));
  c->sm = 10 * major + minor;
  snprintf(c->name, sizeof c->name, "cuda:%d (%s, sm_%d)", c->ordinal, name, c->sm);
  snprintf(c->arch, sizeof c->arch, "sm_%d", c->sm);
  return SMELT_OK;
}

// The primary context (shared with any CUDA runtime code in the process),
// the stream, and the error word.
static smelt_status cuda_context_open(Cuda *c) {
  CUcontext ctx = NULL;
  CUresult r = c->api.cuDevicePrimaryCtxRetain(&ctx, c->dev);
  if (r != CUDA_SUCCESS)
    return rt_fail(SMELT_ERR_NO_DEVICE, "cannot open a context on cuda:%d: %s", c->ordinal, cuda_why(c, r));
  c->ctx = ctx;
  cuda_enter(c);
  r = c->api.cuStreamCreate(&c->stream, CU_STREAM_NON_BLOCKING);
  if (r != CUDA_SUCCESS) {
    c->stream = NULL;
    return rt_fail(SMELT_ERR_NO_DEVICE, "cannot create a stream on cuda:%d: %s", c->ordinal, cuda_why(c, r));
  }
  return cuda_mem_new(c, sizeof(int64_t), &c->error);
}

smelt_status cuda_device_new(int ordinal, Device **out) {
  *out = NULL;
  Device *d = calloc(1, sizeof *d);
  Cuda *c = calloc(1, sizeof *c);
  if (!d || !c) {
    free(d);
    free(c);
    return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory creating the CUDA device");
  }
  c->ordinal = ordinal;
  smelt_status st = cuda_driver_open(c);
  if (st == SMELT_OK) st = cuda_device_find(c);
  if (st == SMELT_OK) st = cuda_context_open(c);
  if (st != SMELT_OK) {
    cuda_release(c);
    free(d);
    return st;
  }
  *d = (Device){.name = c->name, .arch = c->arch, .load_code = cuda_load_code, .symbol = cuda_symbol, .alloc = cuda_alloc,
                .free = cuda_free, .copy_in = cuda_copy_in, .copy_out = cuda_copy_out, .copy = cuda_copy,
                .sync = cuda_sync, .launch = cuda_launch, .take_error = cuda_take_error, .profile = cuda_profile,
                .profile_take = cuda_profile_take, .destroy = cuda_destroy, .impl = c};
  *out = d;
  return SMELT_OK;
}
