// gpu.h: the GPU device's driver table, for gpu.c and the vendor files.
//
// gpu.c implements the Device of runtime.h once, over a GpuDriver: the entry
// points of a vendor's library that the device calls, and the data and hooks
// where the vendors differ (the words of messages, the libraries to open, how
// the GPU's architecture is named, which of the ingot's code objects to offer
// the driver). cuda.c and hip.c each describe one and bind it to the library
// they open; only they know a vendor's entry points by name.
//
// The entry points are declared with the C ABI the two vendors share: results
// are ints (0: success), devices are ordinals, contexts, modules, functions,
// streams and events are opaque pointers, and device addresses are declared
// as pointers (CUdeviceptr is a 64-bit integer, hipDeviceptr_t a pointer:
// both are passed as one pointer-sized argument). An entry point whose
// parameters differ between the vendors is a hook instead, which the vendor
// file writes over its own entry point.
#ifndef SMELT_GPU_H
#define SMELT_GPU_H

#include "runtime.h"

typedef struct GpuDriver GpuDriver;
struct GpuDriver {
  // ---- data: the vendor's words and quirks
  const char *vendor;           // "CUDA": "CUDA error while ...", "no CUDA device"
  const char *prefix;           // "cuda": device names, "cuda:0"
  const char *library;          // "driver" or "runtime": "the CUDA driver is too old"
  const char *const *libraries; // the names dlopen tries, in order; NULL-terminated
  const char *library_env;      // "SMELT_CUDA_LIBRARY": when set, the one path opened instead
  const char *install_hint;     // "is the NVIDIA driver installed?"
  const char *init_symbol;      // "cuInit": named when initialization fails
  const char *query_failed;     // how a failed device query begins: "cannot query"
  const char *arch_unknown;     // the --target advice when the architecture is unknown
  bool arch_from_driver;        // the driver names the architecture (code is chosen for it);
                                // otherwise the device is named after the code that loads
  int result_out_of_memory;     // what mem_alloc returns when memory runs out
  int result_invalid_image;     // what a malformed code object is reported as
  int result_count_none;        // a device_count result that means no device (0: none such)

  void *lib;                    // set by gpu_device_new: the opened library

  // ---- entry points, bound by the vendor's bind; optional ones may stay NULL
  int (*init)(unsigned flags);
  int (*device_count)(int *count);
  int (*device_get)(int *dev, int ordinal);
  int (*device_name)(char *name, int len, int dev);
  int (*set_device)(int ordinal);                 // optional: makes the device current on this thread
  int (*context_retain)(void **ctx, int dev);     // optional, with the next two: a context to make current
  int (*context_release)(int dev);
  int (*context_set)(void *ctx);
  int (*mem_info)(size_t *free_bytes, size_t *total);
  int (*mem_alloc)(void **p, size_t bytes);
  int (*mem_free)(void *p);
  int (*host_alloc)(void **p, size_t bytes, unsigned flags);   // optional, with host_free: pinned
  int (*host_free)(void *p);                                   // staging for host copies
  int (*copy_to_device)(void *dst, const void *host, size_t bytes, void *stream);
  int (*copy_to_host)(void *host, const void *src, size_t bytes, void *stream);
  int (*copy_on_device)(void *dst, const void *src, size_t bytes, void *stream);
  int (*module_function)(void **fn, void *module, const char *name);
  int (*module_unload)(void *module);
  int (*launch_kernel)(void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                       unsigned shared_bytes, void *stream, void **params, void **extra);
  int (*stream_create)(void **stream, unsigned flags);
  int (*stream_destroy)(void *stream);
  int (*stream_sync)(void *stream);
  int (*event_record)(void *event, void *stream);
  int (*event_elapsed)(float *ms, void *start, void *end);
  int (*event_destroy)(void *event);
  // optional, all six or none: graphs captured from the stream and replayed
  int (*stream_begin_capture)(void *stream, int mode);
  int (*stream_end_capture)(void *stream, void **graph);
  int (*graph_instantiate)(void **exec, void *graph, unsigned long long flags);
  int (*graph_launch)(void *exec, void *stream);
  int (*graph_exec_destroy)(void *exec);
  int (*graph_destroy)(void *graph);

  // ---- hooks, written by the vendor file
  // Opens every entry point of t->lib (GPU_BIND); 0, or a status after rt_fail.
  smelt_status (*bind)(GpuDriver *t);
  // The name and description of result r; *name NULL when the driver cannot
  // name it, *text NULL when it cannot describe it either.
  void (*describe)(const GpuDriver *t, int r, const char **name, const char **text);
  // Fills bytes of device memory at p with zeros, in stream order.
  int (*memset_zero)(const GpuDriver *t, void *p, size_t bytes, void *stream);
  int (*event_create)(const GpuDriver *t, void **event);
  // Loads code (its bytes at image, at least one) as a module; a JIT log,
  // when the driver writes one, goes to log.
  int (*module_load)(const GpuDriver *t, void **module, const IngotCode *code, const void *image, char *log,
                     size_t size);
  // The compiler's name of device dev's architecture ("sm_90") in buf, ""
  // when it cannot be told; a driver result.
  int (*arch)(const GpuDriver *t, int dev, char *buf, size_t size);
  // The code objects of ig to offer a GPU of architecture arch ("" when
  // unknown), in the order to try them, into tries (room for every code
  // object of ig); returns how many.
  uint32_t (*code_tries)(const char *arch, const smelt_ingot *ig, const IngotCode **tries);
  // Optional: whether a code object for target was meant for arch, so that
  // its refusal is what the error reports (NULL: every one tried was).
  bool (*code_is_for)(const char *arch, const char *target);
};

// gpu.c

// The GPU device of ordinal on the vendor that t describes: copies t into a
// zeroed allocation of size bytes (the vendor's own struct, which begins with
// a GpuDriver), opens the library, binds it and opens the device; 0 and *out,
// or a status after rt_fail.
smelt_status gpu_device_new(const GpuDriver *t, size_t size, int ordinal, Device **out);

// The entry point name of t->lib, else fallback (when non-NULL); NULL, after
// rt_fail with SMELT_ERR_NO_DEVICE, when it has neither.
void *gpu_library_symbol(const GpuDriver *t, const char *name, const char *fallback);
// True when the loader search path ld_path has an empty or relative element
// (the first one in elem): GPU libraries are not loaded then.
bool gpu_search_path_unsafe(const char *ld_path, char *elem, size_t n);

// Binds the six graph entry points of t (gpu.h) to the names given, or none
// of them when the library lacks one (graphs are then not used).
void gpu_bind_graphs(GpuDriver *t, const char *const names[6]);

// Binds field (an entry point of the vendor's struct v) to name, else to
// fallback; returns from the enclosing bind hook when it is missing.
#define GPU_BIND(v, field, name, fallback)                                                          \
  do {                                                                                              \
    if (!((v)->field = (__typeof__((v)->field))gpu_library_symbol(&(v)->t, name, fallback)))       \
      return SMELT_ERR_NO_DEVICE;                                                                   \
  } while (0)

// The target a code object was built for ("sm_90", "gfx942"), or "?".
const char *gpu_code_target(const smelt_ingot *ig, const IngotCode *code);

#endif
