// hip.c: the HIP device, through the HIP runtime of ROCm (libamdhip64.so).
//
// The runtime is opened with dlopen when a session asks for it, so smelt
// builds and runs where there is no ROCm at all; the few types and entry
// points used here are declared below from HIP's C ABI instead of its
// headers, and no structure whose layout changes between ROCm releases
// (hipDeviceProp_t) is touched. All work goes on one non-blocking stream:
// launches and copies on the device run asynchronously in stream order,
// copies to and from the host wait for the stream, and a failure that a void
// entry point cannot return is kept for the next take_error.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

// ---- the runtime's ABI (hip_runtime_api.h, ROCm 5 to 7)

typedef int hipError_t;
typedef int hipDevice_t;
typedef struct ihipModule_t *hipModule_t;
typedef struct ihipModuleSymbol_t *hipFunction_t;
typedef struct ihipStream_t *hipStream_t;
typedef struct ihipEvent_t *hipEvent_t;
typedef void *hipDeviceptr_t;

enum {
  hipSuccess = 0,
  hipErrorOutOfMemory = 2,
  hipErrorNoDevice = 100,
  hipErrorInvalidImage = 200,
  hipStreamNonBlocking = 1,
};

// Every entry point used: its result type, name and parameters.
#define HIP_API(X)                                                                                          \
  X(hipError_t, hipInit, (unsigned flags))                                                                  \
  X(const char *, hipGetErrorName, (hipError_t e))                                                          \
  X(const char *, hipGetErrorString, (hipError_t e))                                                        \
  X(hipError_t, hipGetDeviceCount, (int *count))                                                            \
  X(hipError_t, hipSetDevice, (int ordinal))                                                                \
  X(hipError_t, hipDeviceGet, (hipDevice_t *dev, int ordinal))                                              \
  X(hipError_t, hipDeviceGetName, (char *name, int len, hipDevice_t dev))                                   \
  X(hipError_t, hipMemGetInfo, (size_t *free, size_t *total))                                               \
  X(hipError_t, hipMalloc, (void **p, size_t bytes))                                                        \
  X(hipError_t, hipFree, (void *p))                                                                         \
  X(hipError_t, hipMemsetAsync, (void *p, int value, size_t n, hipStream_t s))                              \
  X(hipError_t, hipMemcpyHtoDAsync, (hipDeviceptr_t dst, const void *src, size_t n, hipStream_t s))         \
  X(hipError_t, hipMemcpyDtoHAsync, (void *dst, hipDeviceptr_t src, size_t n, hipStream_t s))               \
  X(hipError_t, hipMemcpyDtoDAsync, (hipDeviceptr_t dst, hipDeviceptr_t src, size_t n, hipStream_t s))      \
  X(hipError_t, hipModuleLoadData, (hipModule_t *m, const void *image))                                     \
  X(hipError_t, hipModuleGetFunction, (hipFunction_t *f, hipModule_t m, const char *name))                  \
  X(hipError_t, hipModuleUnload, (hipModule_t m))                                                           \
  X(hipError_t, hipModuleLaunchKernel,                                                                      \
    (hipFunction_t f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,         \
     unsigned shared_bytes, hipStream_t s, void **params, void **extra))                                    \
  X(hipError_t, hipStreamCreateWithFlags, (hipStream_t *s, unsigned flags))                                 \
  X(hipError_t, hipStreamDestroy, (hipStream_t s))                                                          \
  X(hipError_t, hipStreamSynchronize, (hipStream_t s))                                                      \
  X(hipError_t, hipEventCreate, (hipEvent_t *e))                                                            \
  X(hipError_t, hipEventRecord, (hipEvent_t e, hipStream_t s))                                              \
  X(hipError_t, hipEventElapsedTime, (float *ms, hipEvent_t start, hipEvent_t end))                         \
  X(hipError_t, hipEventDestroy, (hipEvent_t e))

typedef struct {
#define X(ret, fn, params) ret (*fn) params;
  HIP_API(X)
#undef X
} HipApi;

// ---- the device

typedef struct {
  hipEvent_t start, end;
} Timing;

typedef struct {
  HipApi api;
  void *lib;
  int ordinal;
  bool live;                // the runtime is initialized and the device chosen
  hipStream_t stream;       // all work, in order
  hipModule_t module;       // set by load_code
  const smelt_ingot *ig;    // set by load_code: launch reads its GPU launch records
  void *error;              // the kernels' error word (8 bytes)
  Timing *timings;          // while profiling: one per launch, in order
  int ntimings, timings_cap;
  bool profiling;
  char fault[256];          // the first failure of a copy, reported by take_error
  char why[256];            // scratch for hip_why
  char gpu[128];            // the runtime's name for the GPU
  char name[192];           // "hip:0 (GPU)", then "hip:0 (GPU, gfx942)" once code is loaded
  char arch[32];            // "gfx942" as the kernel driver reports it, or ""
} Hip;

// "NAME: description" of a runtime result, in h->why until the next call.
static const char *hip_why(Hip *h, hipError_t r) {
  const char *name = h->api.hipGetErrorName(r), *text = h->api.hipGetErrorString(r);
  if (name && text) snprintf(h->why, sizeof h->why, "%s: %s", name, text);
  else snprintf(h->why, sizeof h->why, "HIP error %d", r);
  return h->why;
}

// Reports a failure of an entry point that returns nothing; the first one is
// kept so that the next take_error fails too.
static void hip_fault(Hip *h, hipError_t r, const char *doing) {
  char msg[sizeof h->fault];
  snprintf(msg, sizeof msg, "HIP error while %s: %s", doing, hip_why(h, r));
  if (!h->fault[0]) memcpy(h->fault, msg, sizeof msg);
  rt_fail(SMELT_ERR_RUNTIME, "%s", msg);
}

// The current device is per thread and the caller may come from any thread:
// each entry point sets it there first.
static void hip_enter(Hip *h) { h->api.hipSetDevice(h->ordinal); }

static void hip_timings_clear(Hip *h) {
  for (int i = 0; i < h->ntimings; i++) {
    h->api.hipEventDestroy(h->timings[i].start);
    h->api.hipEventDestroy(h->timings[i].end);
  }
  h->ntimings = 0;
}

// Frees whatever of h was set up, waiting for queued work first.
static void hip_release(Hip *h) {
  if (h->live) {
    hip_enter(h);
    if (h->stream) h->api.hipStreamSynchronize(h->stream);
    hip_timings_clear(h);
    if (h->error) h->api.hipFree(h->error);
    if (h->module) h->api.hipModuleUnload(h->module);
    if (h->stream) h->api.hipStreamDestroy(h->stream);
  }
  if (h->lib) dlclose(h->lib);
  free(h->timings);
  free(h);
}

static void hip_destroy(Device *d) {
  hip_release(d->impl);
  free(d);
}

// ---- code

static const char *code_target(const smelt_ingot *ig, const IngotCode *code) {
  const char *t = ingot_str(ig, code->target);
  return t ? t : "?";
}

// The distinct targets of the ingot's code objects, "gfx90a, gfx942", in buf.
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

// The architecture of the machine's AMD GPUs ("gfx942") as the kernel driver
// lists them, when they all share one; "" otherwise. It only words messages:
// HIP has no portable query for it.
static void hip_arch_guess(char *buf, size_t size) {
  unsigned arch = 0;
  buf[0] = '\0';
  for (int node = 0; node < 256; node++) {
    char path[80], line[128];
    snprintf(path, sizeof path, "/sys/class/kfd/kfd/topology/nodes/%d/properties", node);
    FILE *f = fopen(path, "r");
    if (!f) break;
    unsigned v = 0;   // major * 10000 + minor * 100 + stepping; 0 on CPU nodes
    while (fgets(line, sizeof line, f))
      if (sscanf(line, "gfx_target_version %u", &v) == 1) break;
    fclose(f);
    if (v && arch && v != arch) return;
    if (v) arch = v;
  }
  if (arch) snprintf(buf, size, "gfx%u%x%x", arch / 10000, (arch / 100) % 100, arch % 100);
}

// Whether a code object's target ("gfx90a", "gfx90a:xnack-") is for arch.
static bool target_is(const char *target, const char *arch) {
  size_t n = strlen(arch);
  return n && !strncmp(target, arch, n) && (target[n] == '\0' || target[n] == ':');
}

static hipError_t hip_module_load(Hip *h, const smelt_ingot *ig, const IngotCode *code) {
  const void *image = ingot_code_data(ig, code);
  if (!image || code->size == 0) return hipErrorInvalidImage;
  hipError_t r = h->api.hipModuleLoadData(&h->module, image);
  if (r != hipSuccess) h->module = NULL;
  return r;
}

// HIP cannot name the GPU's architecture portably, so each of the ingot's
// AMD code objects is offered in turn and the first the runtime accepts is
// kept: it refuses a code object built for another ISA.
static smelt_status hip_load_code(Device *d, const smelt_ingot *ig) {
  Hip *h = d->impl;
  hip_enter(h);
  char arch[32], targets[256];
  hip_arch_guess(arch, sizeof arch);
  const char *want = arch[0] ? arch : "gfxNNN, this GPU's architecture as rocminfo names it";
  if (ingot_ncodes(ig) == 0)
    return rt_fail(SMELT_ERR_NO_DEVICE, "the ingot was built for the CPU only; rebuild with --target=%s", want);
  if (h->module) h->api.hipModuleUnload(h->module);
  h->module = NULL;
  h->ig = NULL;
  const IngotCode *refused = NULL;   // a code object for this GPU that would not load
  hipError_t refusal = hipSuccess;
  for (uint32_t i = 0; i < ingot_ncodes(ig); i++) {
    const IngotCode *code = ingot_code_at(ig, i);
    if (code->format != CODE_HSACO) continue;
    hipError_t r = hip_module_load(h, ig, code);
    if (r == hipSuccess) {
      h->ig = ig;
      snprintf(h->name, sizeof h->name, "hip:%d (%s, %s)", h->ordinal, h->gpu, code_target(ig, code));
      return SMELT_OK;
    }
    if (target_is(code_target(ig, code), arch)) {
      refused = code;
      refusal = r;
    }
  }
  if (refused)
    return rt_fail(SMELT_ERR_NO_DEVICE, "cannot load the ingot's code for %s on hip:%d: %s", code_target(ig, refused),
                   h->ordinal, hip_why(h, refusal));
  code_targets(ig, targets, sizeof targets);
  if (arch[0])
    return rt_fail(SMELT_ERR_NO_DEVICE, "the ingot has no code for %s (it was built for: %s); rebuild with --target=%s",
                   arch, targets, arch);
  return rt_fail(SMELT_ERR_NO_DEVICE, "the ingot has no code that hip:%d (%s) accepts (it was built for: %s); "
                 "rebuild with --target=%s", h->ordinal, h->gpu, targets, want);
}

static void *hip_symbol(Device *d, const char *name) {
  Hip *h = d->impl;
  hipFunction_t fn = NULL;
  if (!h->module) return NULL;
  hip_enter(h);
  return h->api.hipModuleGetFunction(&fn, h->module, name) == hipSuccess ? (void *)fn : NULL;
}

// ---- memory

static smelt_status hip_out_of_memory(Hip *h, size_t bytes) {
  size_t free_bytes = 0, total = 0;
  h->api.hipMemGetInfo(&free_bytes, &total);
  return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory on hip:%d: %zu bytes asked, %zu of %zu bytes free",
                 h->ordinal, bytes, free_bytes, total);
}

// Zeroed device memory in *out, 256-byte aligned (the kernels rely on 64).
// The request is checked against free memory first, so that an arena too
// large gets a clear message.
static smelt_status hip_mem_new(Hip *h, size_t bytes, void **out) {
  size_t n = bytes ? bytes : 256, free_bytes = 0, total = 0;
  void *p = NULL;
  *out = NULL;
  if (h->api.hipMemGetInfo(&free_bytes, &total) == hipSuccess && n > free_bytes) return hip_out_of_memory(h, bytes);
  hipError_t r = h->api.hipMalloc(&p, n);
  if (r == hipErrorOutOfMemory) return hip_out_of_memory(h, bytes);
  if (r != hipSuccess) return rt_fail(SMELT_ERR_RUNTIME, "HIP error while allocating memory: %s", hip_why(h, r));
  r = h->api.hipMemsetAsync(p, 0, n, h->stream);
  if (r == hipSuccess) r = h->api.hipStreamSynchronize(h->stream);
  if (r != hipSuccess) {
    h->api.hipFree(p);
    return rt_fail(SMELT_ERR_RUNTIME, "HIP error while clearing new memory: %s", hip_why(h, r));
  }
  *out = p;
  return SMELT_OK;
}

static void *hip_alloc(Device *d, size_t bytes) {
  Hip *h = d->impl;
  void *p;
  hip_enter(h);
  return hip_mem_new(h, bytes, &p) == SMELT_OK ? p : NULL;
}

static void hip_free(Device *d, void *p) {
  Hip *h = d->impl;
  if (!p) return;
  hip_enter(h);
  h->api.hipStreamSynchronize(h->stream);   // queued kernels may still use p
  h->api.hipFree(p);
}

// Stream order keeps the copy after the kernels queued before it; host has
// been read in full when it returns.
static void hip_copy_in(Device *d, void *dst, const void *host, size_t bytes) {
  Hip *h = d->impl;
  if (bytes == 0) return;
  hip_enter(h);
  hipError_t r = h->api.hipMemcpyHtoDAsync(dst, host, bytes, h->stream);
  if (r == hipSuccess) r = h->api.hipStreamSynchronize(h->stream);
  if (r != hipSuccess) hip_fault(h, r, "copying to the device");
}

static void hip_copy_out(Device *d, void *host, const void *src, size_t bytes) {
  Hip *h = d->impl;
  if (bytes == 0) return;
  hip_enter(h);
  hipError_t r = h->api.hipMemcpyDtoHAsync(host, (hipDeviceptr_t)src, bytes, h->stream);
  if (r == hipSuccess) r = h->api.hipStreamSynchronize(h->stream);
  if (r != hipSuccess) hip_fault(h, r, "copying from the device");
}

static void hip_copy(Device *d, void *dst, const void *src, size_t bytes) {
  Hip *h = d->impl;
  if (bytes == 0) return;
  hip_enter(h);
  hipError_t r = h->api.hipMemcpyDtoDAsync(dst, (hipDeviceptr_t)src, bytes, h->stream);
  if (r != hipSuccess) hip_fault(h, r, "copying on the device");
}

static void hip_sync(Device *d) {
  Hip *h = d->impl;
  hip_enter(h);
  hipError_t r = h->api.hipStreamSynchronize(h->stream);
  if (r != hipSuccess) hip_fault(h, r, "running kernels");
}

// ---- launches

// A start and an end event for one launch, with room for them in
// h->timings; false when they cannot be had (the launch then goes untimed).
static bool hip_timing_new(Hip *h, Timing *t) {
  if (h->ntimings == h->timings_cap) {
    int cap = h->timings_cap ? 2 * h->timings_cap : 64;
    Timing *grown = realloc(h->timings, (size_t)cap * sizeof *grown);
    if (!grown) return false;
    h->timings = grown;
    h->timings_cap = cap;
  }
  t->start = t->end = NULL;
  if (h->api.hipEventCreate(&t->start) == hipSuccess && h->api.hipEventCreate(&t->end) == hipSuccess) return true;
  if (t->start) h->api.hipEventDestroy(t->start);
  return false;
}

// Queues kernel fn over [0, count) with the grid the ingot gives launch li.
// The kernel's parameters, in order: the buffer table, count, seed, step and
// the error word.
static int64_t hip_launch(Device *d, void *fn, void *bufs, uint32_t li, int64_t count, uint64_t seed, uint64_t step) {
  Hip *h = d->impl;
  const IngotGpuLaunch *g = h->ig ? ingot_gpu_launch(h->ig, li) : NULL;
  if (count <= 0) return 0;
  if (!g || !fn) {
    rt_fail(SMELT_ERR_RUNTIME, "launch %u has no GPU kernel in the ingot", li);
    return -1;
  }
  hip_enter(h);
  void *params[] = {&bufs, &count, &seed, &step, &h->error};
  Timing t;
  bool timed = h->profiling && hip_timing_new(h, &t);
  if (timed) h->api.hipEventRecord(t.start, h->stream);
  hipError_t r = h->api.hipModuleLaunchKernel((hipFunction_t)fn, g->grid, 1, 1, g->block, 1, 1, g->shared_bytes,
                                              h->stream, params, NULL);
  if (timed && r == hipSuccess && h->api.hipEventRecord(t.end, h->stream) == hipSuccess) {
    h->timings[h->ntimings++] = t;
  } else if (timed) {
    h->api.hipEventDestroy(t.start);
    h->api.hipEventDestroy(t.end);
  }
  if (r != hipSuccess) {
    rt_fail(SMELT_ERR_RUNTIME, "HIP launch failed: %s", hip_why(h, r));
    return -1;
  }
  return 0;
}

// Waits for the stream, then reads and clears the error word.
static int64_t hip_take_error(Device *d) {
  Hip *h = d->impl;
  hip_enter(h);
  hipError_t r = h->api.hipStreamSynchronize(h->stream);
  if (r != hipSuccess) {
    rt_fail(SMELT_ERR_RUNTIME, "HIP error while running kernels: %s", hip_why(h, r));
    return -1;
  }
  if (h->fault[0]) {
    rt_fail(SMELT_ERR_RUNTIME, "%s", h->fault);
    h->fault[0] = '\0';
    return -1;
  }
  int64_t word = 0;
  r = h->api.hipMemcpyDtoHAsync(&word, h->error, sizeof word, h->stream);
  if (r == hipSuccess) r = h->api.hipStreamSynchronize(h->stream);
  if (r == hipSuccess && word) r = h->api.hipMemsetAsync(h->error, 0, sizeof word, h->stream);
  if (r != hipSuccess) {
    rt_fail(SMELT_ERR_RUNTIME, "HIP error while reading the kernels' error word: %s", hip_why(h, r));
    return -1;
  }
  return word;
}

static void hip_profile(Device *d, bool on) {
  Hip *h = d->impl;
  h->profiling = on;
}

// Waits, writes the milliseconds of each timed launch (up to max), and
// forgets them all.
static int hip_profile_take(Device *d, double *ms, int max) {
  Hip *h = d->impl;
  hip_enter(h);
  hipError_t r = h->api.hipStreamSynchronize(h->stream);
  int n = 0;
  if (r != hipSuccess) hip_fault(h, r, "running kernels");
  for (int i = 0; r == hipSuccess && i < h->ntimings && n < max; i++) {
    float t = 0;
    h->api.hipEventElapsedTime(&t, h->timings[i].start, h->timings[i].end);
    ms[n++] = t;
  }
  hip_timings_clear(h);
  return n;
}

// ---- opening

// Loads the runtime, by its development name first, then by each major
// release's soname, and finds every entry point. RTLD_NODELETE keeps it
// mapped after dlclose: its threads and exit handlers outlive the device.
static smelt_status hip_runtime_open(Hip *h) {
  static const char *const names[] = {"libamdhip64.so", "libamdhip64.so.7", "libamdhip64.so.6", "libamdhip64.so.5"};
  for (size_t i = 0; i < sizeof names / sizeof *names && !h->lib; i++)
    h->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!h->lib)
    return rt_fail(SMELT_ERR_NO_DEVICE, "no HIP runtime: libamdhip64.so cannot be loaded (is ROCm installed?)");
#define X(ret, fn, params)                                                 \
  if (!(h->api.fn = (ret(*) params)dlsym(h->lib, #fn)))                    \
    return rt_fail(SMELT_ERR_NO_DEVICE, "the HIP runtime is too old: it lacks %s", #fn);
  HIP_API(X)
#undef X
  return SMELT_OK;
}

// Initializes the runtime and chooses the device of h->ordinal.
static smelt_status hip_device_find(Hip *h) {
  hipError_t r = h->api.hipInit(0);
  if (r != hipSuccess) return rt_fail(SMELT_ERR_NO_DEVICE, "no HIP device: hipInit failed: %s", hip_why(h, r));
  int count = 0;
  r = h->api.hipGetDeviceCount(&count);
  if (r == hipErrorNoDevice) count = 0;
  else if (r != hipSuccess) return rt_fail(SMELT_ERR_NO_DEVICE, "no HIP device: %s", hip_why(h, r));
  if (h->ordinal < 0 || h->ordinal >= count)
    return rt_fail(SMELT_ERR_NO_DEVICE, "no HIP device %d: the runtime sees %d device%s", h->ordinal, count,
                   count == 1 ? "" : "s");
  hipDevice_t dev = 0;
  r = h->api.hipSetDevice(h->ordinal);
  if (r == hipSuccess) r = h->api.hipDeviceGet(&dev, h->ordinal);
  if (r == hipSuccess) r = h->api.hipDeviceGetName(h->gpu, sizeof h->gpu, dev);
  if (r != hipSuccess) return rt_fail(SMELT_ERR_NO_DEVICE, "cannot open hip:%d: %s", h->ordinal, hip_why(h, r));
  h->live = true;
  snprintf(h->name, sizeof h->name, "hip:%d (%s)", h->ordinal, h->gpu);
  return SMELT_OK;
}

// The stream and the error word.
static smelt_status hip_stream_open(Hip *h) {
  hipError_t r = h->api.hipStreamCreateWithFlags(&h->stream, hipStreamNonBlocking);
  if (r != hipSuccess) {
    h->stream = NULL;
    return rt_fail(SMELT_ERR_NO_DEVICE, "cannot create a stream on hip:%d: %s", h->ordinal, hip_why(h, r));
  }
  return hip_mem_new(h, sizeof(int64_t), &h->error);
}

smelt_status hip_device_new(int ordinal, Device **out) {
  *out = NULL;
  Device *d = calloc(1, sizeof *d);
  Hip *h = calloc(1, sizeof *h);
  if (!d || !h) {
    free(d);
    free(h);
    return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory creating the HIP device");
  }
  h->ordinal = ordinal;
  smelt_status st = hip_runtime_open(h);
  if (st == SMELT_OK) st = hip_device_find(h);
  if (st == SMELT_OK) st = hip_stream_open(h);
  if (st != SMELT_OK) {
    hip_release(h);
    free(d);
    return st;
  }
  hip_arch_guess(h->arch, sizeof h->arch);
  *d = (Device){.name = h->name, .arch = h->arch[0] ? h->arch : NULL, .load_code = hip_load_code, .symbol = hip_symbol, .alloc = hip_alloc,
                .free = hip_free, .copy_in = hip_copy_in, .copy_out = hip_copy_out, .copy = hip_copy,
                .sync = hip_sync, .launch = hip_launch, .take_error = hip_take_error, .profile = hip_profile,
                .profile_take = hip_profile_take, .destroy = hip_destroy, .impl = h};
  *out = d;
  return SMELT_OK;
}
