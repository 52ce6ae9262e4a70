// hip.c: the HIP driver table, over the HIP runtime of ROCm (libamdhip64.so).
//
// The device itself is gpu.c's; this file names HIP's entry points, binds
// them in the runtime opened at run time (the few types used are declared
// from HIP's C ABI instead of its headers, and no structure whose layout
// changes between ROCm releases, hipDeviceProp_t, is touched) and says where
// HIP differs: the current device is set per thread instead of a context,
// host copies are not staged, and the GPU's architecture is not queried (the
// runtime is offered each AMD code object in turn).
#include <stdio.h>
#include <string.h>

#include "gpu.h"

// ---- the runtime's ABI (hip_runtime_api.h, ROCm 5 to 7), where gpu.h's does not fit

typedef int hipError_t;

enum {
  hipSuccess = 0,
  hipErrorOutOfMemory = 2,
  hipErrorNoDevice = 100,
  hipErrorInvalidImage = 200,
};

typedef struct {
  GpuDriver t;   // first: gpu.c sees only this
  const char *(*hipGetErrorName)(hipError_t e);
  const char *(*hipGetErrorString)(hipError_t e);
  hipError_t (*hipMemsetAsync)(void *p, int value, size_t n, void *stream);
  hipError_t (*hipModuleLoadData)(void **module, const void *image);
  hipError_t (*hipEventCreate)(void **event);
} Hip;

static const Hip *hip_of(const GpuDriver *t) { return (const Hip *)t; }

// Every entry point used: the field and the symbol.
#define HIP_API(X)                                          \
  X(t.init, "hipInit")                                      \
  X(hipGetErrorName, "hipGetErrorName")                     \
  X(hipGetErrorString, "hipGetErrorString")                 \
  X(t.device_count, "hipGetDeviceCount")                    \
  X(t.set_device, "hipSetDevice")                           \
  X(t.device_get, "hipDeviceGet")                           \
  X(t.device_name, "hipDeviceGetName")                      \
  X(t.mem_info, "hipMemGetInfo")                            \
  X(t.mem_alloc, "hipMalloc")                               \
  X(t.mem_free, "hipFree")                                  \
  X(hipMemsetAsync, "hipMemsetAsync")                       \
  X(t.copy_to_device, "hipMemcpyHtoDAsync")                 \
  X(t.copy_to_host, "hipMemcpyDtoHAsync")                   \
  X(t.copy_on_device, "hipMemcpyDtoDAsync")                 \
  X(hipModuleLoadData, "hipModuleLoadData")                 \
  X(t.module_function, "hipModuleGetFunction")              \
  X(t.module_unload, "hipModuleUnload")                     \
  X(t.launch_kernel, "hipModuleLaunchKernel")               \
  X(t.stream_create, "hipStreamCreateWithFlags")            \
  X(t.stream_destroy, "hipStreamDestroy")                   \
  X(t.stream_sync, "hipStreamSynchronize")                  \
  X(hipEventCreate, "hipEventCreate")                       \
  X(t.event_record, "hipEventRecord")                       \
  X(t.event_elapsed, "hipEventElapsedTime")                 \
  X(t.event_destroy, "hipEventDestroy")

static smelt_status hip_bind(GpuDriver *t) {
  Hip *h = (Hip *)t;
#define X(field, name) GPU_BIND(h, field, name, NULL);
  HIP_API(X)
#undef X
  static const char *const graphs[6] = {"hipStreamBeginCapture", "hipStreamEndCapture", "hipGraphInstantiateWithFlags",
                                        "hipGraphLaunch", "hipGraphExecDestroy", "hipGraphDestroy"};
  gpu_bind_graphs(t, graphs);
  return SMELT_OK;
}

static void hip_describe(const GpuDriver *t, hipError_t r, const char **name, const char **text) {
  *name = hip_of(t)->hipGetErrorName(r);
  *text = hip_of(t)->hipGetErrorString(r);
  if (!*name || !*text) *name = *text = NULL;
}

static int hip_memset_zero(const GpuDriver *t, void *p, size_t bytes, void *stream) {
  return hip_of(t)->hipMemsetAsync(p, 0, bytes, stream);
}

static int hip_event_create(const GpuDriver *t, void **event) { return hip_of(t)->hipEventCreate(event); }

static int hip_module_load(const GpuDriver *t, void **module, const IngotCode *code, const void *image, char *log,
                           size_t size) {
  (void)code, (void)log, (void)size;   // the runtime keeps no log
  return hip_of(t)->hipModuleLoadData(module, image);
}

// The architecture of the machine's AMD GPUs ("gfx942") as the kernel driver
// lists them, when they all share one; "" otherwise. It only words messages:
// HIP has no portable query for it.
static int hip_arch(const GpuDriver *t, int dev, char *buf, size_t size) {
  (void)t, (void)dev;
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
    if (v && arch && v != arch) return hipSuccess;
    if (v) arch = v;
  }
  if (arch) snprintf(buf, size, "gfx%u%x%x", arch / 10000, (arch / 100) % 100, arch % 100);
  return hipSuccess;
}

// Every AMD code object, in the ingot's order: the runtime refuses one built
// for another ISA, and the first it accepts is kept.
static uint32_t hip_code_tries(const char *arch, const smelt_ingot *ig, const IngotCode **tries) {
  (void)arch;
  uint32_t n = 0;
  for (uint32_t i = 0; i < ingot_ncodes(ig); i++)
    if (ingot_code_at(ig, i)->format == CODE_HSACO) tries[n++] = ingot_code_at(ig, i);
  return n;
}

// Whether a code object's target ("gfx90a", "gfx90a:xnack-") is for arch.
static bool hip_code_is_for(const char *arch, const char *target) {
  size_t n = strlen(arch);
  return n && !strncmp(target, arch, n) && (target[n] == '\0' || target[n] == ':');
}

static const char *const hip_libraries[] = {"libamdhip64.so", "libamdhip64.so.7", "libamdhip64.so.6",
                                            "libamdhip64.so.5", NULL};

static const GpuDriver hip_driver = {
  .vendor = "HIP", .prefix = "hip", .library = "runtime", .libraries = hip_libraries,
  .library_env = "SMELT_HIP_LIBRARY", .install_hint = "is ROCm installed?", .init_symbol = "hipInit",
  .query_failed = "cannot open", .arch_unknown = "gfxNNN, this GPU's architecture as rocminfo names it",
  .result_out_of_memory = hipErrorOutOfMemory, .result_invalid_image = hipErrorInvalidImage,
  .result_count_none = hipErrorNoDevice, .bind = hip_bind, .describe = hip_describe,
  .memset_zero = hip_memset_zero, .event_create = hip_event_create, .module_load = hip_module_load,
  .arch = hip_arch, .code_tries = hip_code_tries, .code_is_for = hip_code_is_for,
};

smelt_status hip_device_new(int ordinal, Device **out) { return gpu_device_new(&hip_driver, sizeof(Hip), ordinal, out); }
