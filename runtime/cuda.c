// cuda.c: the CUDA driver table, over the driver API of libcuda.so.1.
//
// The device itself is gpu.c's; this file names CUDA's entry points, binds
// them in the driver opened at run time (the few types used are declared from
// the driver's ABI instead of cuda.h) and says where CUDA differs: its
// primary context, its error names, PTX and cubins chosen by compute
// capability.
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu.h"

// ---- the driver's ABI (cuda.h, CUDA 12 and 13), where gpu.h's does not fit

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;

_Static_assert(sizeof(CUdeviceptr) == sizeof(void *), "device addresses are passed as pointers");

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
  CU_EVENT_DEFAULT = 0,
};

typedef struct {
  GpuDriver t;   // first: gpu.c sees only this
  CUresult (*cuGetErrorName)(CUresult r, const char **name);
  CUresult (*cuGetErrorString)(CUresult r, const char **text);
  CUresult (*cuDeviceGetAttribute)(int *value, int attrib, CUdevice dev);
  CUresult (*cuMemsetD8Async)(CUdeviceptr p, unsigned char value, size_t n, void *stream);
  CUresult (*cuModuleLoadDataEx)(void **module, const void *image, unsigned n, int *options, void **values);
  CUresult (*cuEventCreate)(void **event, unsigned flags);
} Cuda;

static const Cuda *cuda_of(const GpuDriver *t) { return (const Cuda *)t; }

// Every entry point used: the field, the symbol the driver exports, and an
// older symbol to fall back on (or NULL).
#define CU_API(X)                                                          \
  X(t.init, "cuInit", NULL)                                                \
  X(cuGetErrorName, "cuGetErrorName", NULL)                                \
  X(cuGetErrorString, "cuGetErrorString", NULL)                            \
  X(t.device_count, "cuDeviceGetCount", NULL)                              \
  X(t.device_get, "cuDeviceGet", NULL)                                     \
  X(t.device_name, "cuDeviceGetName", NULL)                                \
  X(cuDeviceGetAttribute, "cuDeviceGetAttribute", NULL)                    \
  X(t.context_retain, "cuDevicePrimaryCtxRetain", NULL)                    \
  X(t.context_release, "cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease") \
  X(t.context_set, "cuCtxSetCurrent", NULL)                                \
  X(t.mem_info, "cuMemGetInfo_v2", NULL)                                   \
  X(t.mem_alloc, "cuMemAlloc_v2", NULL)                                    \
  X(t.mem_free, "cuMemFree_v2", NULL)                                      \
  X(t.host_alloc, "cuMemHostAlloc", NULL)                                  \
  X(t.host_free, "cuMemFreeHost", NULL)                                    \
  X(cuMemsetD8Async, "cuMemsetD8Async", NULL)                              \
  X(t.copy_to_device, "cuMemcpyHtoDAsync_v2", NULL)                        \
  X(t.copy_to_host, "cuMemcpyDtoHAsync_v2", NULL)                          \
  X(t.copy_on_device, "cuMemcpyDtoDAsync_v2", NULL)                        \
  X(cuModuleLoadDataEx, "cuModuleLoadDataEx", NULL)                        \
  X(t.module_function, "cuModuleGetFunction", NULL)                        \
  X(t.module_unload, "cuModuleUnload", NULL)                               \
  X(t.launch_kernel, "cuLaunchKernel", NULL)                               \
  X(t.stream_create, "cuStreamCreate", NULL)                               \
  X(t.stream_destroy, "cuStreamDestroy_v2", NULL)                          \
  X(t.stream_sync, "cuStreamSynchronize", NULL)                            \
  X(cuEventCreate, "cuEventCreate", NULL)                                  \
  X(t.event_record, "cuEventRecord", NULL)                                 \
  X(t.event_elapsed, "cuEventElapsedTime_v2", "cuEventElapsedTime")        \
  X(t.event_destroy, "cuEventDestroy_v2", NULL)

static smelt_status cuda_bind(GpuDriver *t) {
  Cuda *c = (Cuda *)t;
#define X(field, name, fallback) GPU_BIND(c, field, name, fallback);
  CU_API(X)
#undef X
  static const char *const graphs[6] = {"cuStreamBeginCapture_v2", "cuStreamEndCapture", "cuGraphInstantiateWithFlags",
                                        "cuGraphLaunch", "cuGraphExecDestroy", "cuGraphDestroy"};
  gpu_bind_graphs(t, graphs);
  return SMELT_OK;
}

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

static void cuda_describe(const GpuDriver *t, CUresult r, const char **name, const char **text) {
  const Cuda *c = cuda_of(t);
  if (c->cuGetErrorName(r, name) != CUDA_SUCCESS || c->cuGetErrorString(r, text) != CUDA_SUCCESS || !*name || !*text)
    *name = cuda_known_error(r, text);
}

static int cuda_memset_zero(const GpuDriver *t, void *p, size_t bytes, void *stream) {
  return cuda_of(t)->cuMemsetD8Async((CUdeviceptr)(uintptr_t)p, 0, bytes, stream);
}

static int cuda_event_create(const GpuDriver *t, void **event) {
  return cuda_of(t)->cuEventCreate(event, CU_EVENT_DEFAULT);
}

// The driver reads PTX up to its NUL: a PTX without one is refused here.
static int cuda_module_load(const GpuDriver *t, void **module, const IngotCode *code, const void *image, char *log,
                            size_t size) {
  if (code->format == CODE_PTX && ((const char *)image)[code->size - 1] != '\0') {
    snprintf(log, size, "the code object in the ingot is malformed");
    return CUDA_ERROR_INVALID_IMAGE;
  }
  int options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *values[] = {log, (void *)(uintptr_t)size};
  return cuda_of(t)->cuModuleLoadDataEx(module, image, 2, options, values);
}

// "sm_90": the compute capability, 10 * major + minor.
static int cuda_arch(const GpuDriver *t, int dev, char *buf, size_t size) {
  const Cuda *c = cuda_of(t);
  int major = 0, minor = 0;
  CUresult r = c->cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
  if (r == CUDA_SUCCESS) r = c->cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
  if (r == CUDA_SUCCESS) snprintf(buf, size, "sm_%d", 10 * major + minor);
  return r;
}

// ---- code

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
    int n = code->format == format ? sm_number(gpu_code_target(ig, code), &exact) : -1;
    bool fits = n == sm || (n > 0 && n < sm && !exact && format == CODE_PTX);
    int rank = 2 * n + exact;
    if (fits && rank > best_rank) {
      best = code;
      best_rank = rank;
    }
  }
  return best;
}

// The CUBIN for this GPU, then the PTX: a CUBIN the driver refuses may still
// have PTX to fall back on.
static uint32_t cuda_code_tries(const char *arch, const smelt_ingot *ig, const IngotCode **tries) {
  bool exact;
  int sm = sm_number(arch, &exact);
  uint32_t n = 0;
  const IngotCode *cubin = cuda_pick(ig, sm, CODE_CUBIN), *ptx = cuda_pick(ig, sm, CODE_PTX);
  if (cubin) tries[n++] = cubin;
  if (ptx) tries[n++] = ptx;
  return n;
}

static const char *const cuda_libraries[] = {"libcuda.so.1", NULL};

static const GpuDriver cuda_driver = {
  .vendor = "CUDA", .prefix = "cuda", .library = "driver", .libraries = cuda_libraries,
  .library_env = "SMELT_CUDA_LIBRARY", .install_hint = "is the NVIDIA driver installed?", .init_symbol = "cuInit",
  .query_failed = "cannot query", .arch_unknown = "sm_NN", .arch_from_driver = true,
  .result_out_of_memory = CUDA_ERROR_OUT_OF_MEMORY, .result_invalid_image = CUDA_ERROR_INVALID_IMAGE,
  .bind = cuda_bind, .describe = cuda_describe, .memset_zero = cuda_memset_zero, .event_create = cuda_event_create,
  .module_load = cuda_module_load, .arch = cuda_arch, .code_tries = cuda_code_tries,
};

smelt_status cuda_device_new(int ordinal, Device **out) { return gpu_device_new(&cuda_driver, sizeof(Cuda), ordinal, out); }
