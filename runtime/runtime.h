// runtime.h: libsmeltrt's internal interface: the opened ingot, devices,
// sessions.
//
// Not public (runtime/smelt.h is): the runtime's own files include it, and so
// do the floors above that look inside an ingot or a session: the tools
// (training data, profiles, the GPU numerics check) and the compiler's
// bisect. The ingot format itself is in ingot.h, element types in dtype.h.
#ifndef SMELT_RUNTIME_H
#define SMELT_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "ingot.h"
#include "smelt.h"

// ---- error.c: the per-thread message behind smelt_last_error

smelt_status rt_fail(smelt_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// ---- ingot_read.c

struct smelt_ingot {
  char *data;                    // the whole file (owned)
  uint64_t size;
  const IngotSection *sec[INGOT_MAX_SECTION + 1];   // by SEC_* kind; NULL when absent
  const char *strings;
  uint64_t strings_size;
  const IngotTensor *tensors;
  uint32_t ntensors;
  const IngotEntry *entries;
  uint32_t nentries;
  const IngotLaunch *launches;
  uint32_t nlaunches;
  const uint32_t *slots;
  uint32_t nslots;
  const uint32_t *launch_bufs;   // each launch's buffers, as slot numbers of its entry
  uint32_t nlaunch_bufs;
  const IngotSlotType *slot_types;   // one per slot
  const IngotUpdate *updates;
  uint32_t nupdates;
  const char *meta;              // a NUL-terminated copy of META (owned)
  char *meta_values;             // the same with every newline a NUL: smelt_ingot_meta's values (owned)
  const IngotGpuLaunch *gpu_launches;   // one per launch, or NULL
  const IngotCost *costs;        // one per launch, or NULL
  const IngotOutputs *outputs;   // one per launch, or NULL
  const IngotCode *codes;        // GPU code objects
  uint32_t ncodes;
  // several bindings (SEC_BINDINGS): each one's ingot in the order of the
  // records, this ingot itself among them (the others owned); 0 and NULL
  // for an ingot of one binding
  uint32_t nbindings;
  smelt_ingot **bindings;
  const IngotBinding *binding_records;
};


// Opens an ingot from size bytes in memory (copied), with the checks of
// smelt_ingot_open; name is what its messages call it.
smelt_status ingot_open_bytes(const void *bytes, size_t size, const char *name, smelt_ingot **out);
const char *ingot_str(const smelt_ingot *ig, uint32_t offset);
const void *ingot_section(const smelt_ingot *ig, uint32_t kind, uint64_t *size);
// The entry named name, or NULL.
const IngotEntry *ingot_entry(const smelt_ingot *ig, const char *name);
// The tensor named name, or -1.
int64_t ingot_tensor(const smelt_ingot *ig, const char *name);

// The distinct kernel symbols entry e's launches run (launches of kernels
// alike but for their buffers share one).
uint32_t ingot_entry_bodies(const smelt_ingot *ig, const IngotEntry *e);
// The GPU launch record of launch i, or NULL when the ingot has no GPU code.
const IngotGpuLaunch *ingot_gpu_launch(const smelt_ingot *ig, uint32_t i);
// The cost estimate of launch i, or NULL.
const IngotCost *ingot_cost(const smelt_ingot *ig, uint32_t i);
// The GPU code object for target (e.g. "sm_90") in format, or NULL.
const IngotCode *ingot_code(const smelt_ingot *ig, const char *target, uint32_t format);
// The number of GPU code objects, and the i-th.
uint32_t ingot_ncodes(const smelt_ingot *ig);
const IngotCode *ingot_code_at(const smelt_ingot *ig, uint32_t i);
const void *ingot_code_data(const smelt_ingot *ig, const IngotCode *code);

// ---- devices: a table of functions; optional slots are NULL

typedef void (*KernelFn)(char **bufs, int64_t begin, int64_t end, int64_t *ctx);

typedef struct Device Device;
struct Device {
  const char *name;         // "cpu", "cuda:0 (NVIDIA H100 80GB HBM3, sm_90)"
  const char *arch;         // the compiler target for this GPU ("sm_90", "gfx942"); NULL: unknown or a CPU
  // Loads the ingot's code for this device (host code, or the GPU code object
  // that suits it); 0, or a status after rt_fail.
  smelt_status (*load_code)(Device *d, const smelt_ingot *ig);
  void *(*symbol)(Device *d, const char *name);
  void *(*alloc)(Device *d, size_t bytes);          // zeroed; NULL when out of memory (after rt_fail)
  void (*free)(Device *d, void *p);
  void (*copy_in)(Device *d, void *dst, const void *host, size_t bytes);    // host -> device
  void (*copy_out)(Device *d, void *host, const void *src, size_t bytes);   // device -> host
  void (*copy)(Device *d, void *dst, const void *src, size_t bytes);        // on the device
  void (*sync)(Device *d);   // optional: waits for queued work (NULL: launches are synchronous)
  // Runs kernel fn, the ingot's launch number li, over [0, count); bufs is a
  // table from alloc. Returns the kernel's error word (0: none); asynchronous
  // devices return 0 and report through take_error.
  int64_t (*launch)(Device *d, void *fn, void *bufs, uint32_t li, int64_t count, uint64_t seed, uint64_t step);
  // Optional: waits, returns the error word of the launches since the last
  // call (0: none) and clears it; a failure of the device itself is -1 after
  // rt_fail.
  int64_t (*take_error)(Device *d);
  // While on, each launch is timed (device events, or the clock); profile_take
  // waits and writes the milliseconds of the launches made since profiling
  // was switched on, in order, up to max, and returns how many it wrote.
  void (*profile)(Device *d, bool on);
  int (*profile_take)(Device *d, double *ms, int max);
  // Optional (GPUs whose driver has graphs): capture_begin makes the launches
  // that follow be recorded instead of queued (1; 0: not now, while
  // profiling; -1: never, the driver cannot); capture_end stops recording and
  // returns the launches as a graph, NULL when that failed; graph_run queues a
  // graph's launches for a run of seed and step (0; 1: not now, while
  // profiling, so launch one by one; -1 after rt_fail); graph_free frees one.
  int (*capture_begin)(Device *d);
  void *(*capture_end)(Device *d);
  int (*graph_run)(Device *d, void *graph, uint64_t seed, uint64_t step);
  void (*graph_free)(Device *d, void *graph);
  void (*destroy)(Device *d);
  void *impl;
};

// cpu.c: the CPU device with `threads` workers (0: one per core).
smelt_status cpu_device_new(int threads, Device **out);
// A launch's work in byte-equivalents: the bytes it moves, plus its FLOPs at
// CPU_FLOPS_PER_BYTE to a byte (measured: docs/performance.md).
#define CPU_FLOPS_PER_BYTE 16
// Launches of less work than this run on the calling thread, without waking
// the pool (SMELT_CPU_INLINE_WORK sets another; measured: docs/performance.md).
#define CPU_INLINE_WORK 1048576
uint64_t cpu_launch_work(const IngotCost *cost);
// Whether a launch of count iterations and this cost record (NULL: none)
// runs inline on a device with workers, at the threshold inline_work.
bool cpu_runs_inline(const IngotCost *cost, int64_t count, int64_t inline_work);
// cuda.c: the CUDA device of ordinal n through libcuda.so.1, opened at run time.
smelt_status cuda_device_new(int ordinal, Device **out);
// hip.c: the HIP device of ordinal n through libamdhip64.so, opened at run time.
smelt_status hip_device_new(int ordinal, Device **out);

// ---- session.c

// The compiler target of the GPU that device ("auto", "cuda[:N]", "hip[:N]")
// would open, into buf; false when there is none (or it is the CPU).
bool device_gpu_target(const char *device, char *buf, size_t len);

// for tools that look inside a session (the GPU check)

Device *session_device(smelt_session *s);
// Makes entry's arena, which a session allocates at the entry's first use;
// SMELT_ERR_OUT_OF_MEMORY with a message when it cannot.
smelt_status session_entry_ready(smelt_session *s, const IngotEntry *entry);
// The storage of tensor t as seen from entry (device memory); NULL when the
// entry's arena cannot be made (call session_entry_ready first to know why).
void *session_tensor(smelt_session *s, const IngotEntry *entry, uint32_t t);
// Whether the last smelt_load read a parameters file (no step counter) and
// left the optimizer's state fresh, for the tools' note.
bool session_loaded_params_only(const smelt_session *s);
// Runs launch k of entry alone (no updates); the device's error word is taken.
smelt_status session_launch(smelt_session *s, const IngotEntry *entry, uint32_t k, uint64_t seed, uint64_t step);
// Copies entry e's arena and every persistent tensor of src into dst (same ingot).
smelt_status session_mirror(smelt_session *dst, smelt_session *src, const IngotEntry *e);

#endif
