// fake_gpu.h: the control interface of the fake GPU driver.
//
// tests/fake_gpu/fake_driver.c builds into a shared library that exports the
// entry points of both the CUDA driver API and the HIP runtime that the GPU
// device uses, over host memory: allocations are kept in a table, copies
// check that they stay inside live allocations, modules accept any bytes,
// and launches are recorded (grid, block, count, the buffer table checked
// against the live allocations) without running anything; launches on a
// stream being captured go into a graph, which a graph launch replays. A test opens the
// same library with dlopen and finds these functions with dlsym to read the
// bookkeeping and to make calls fail. The fake serves one thread.
#ifndef SMELT_FAKE_GPU_H
#define SMELT_FAKE_GPU_H

#include <stddef.h>
#include <stdint.h>

// Results, shared by both families (the values both ABIs give them).
enum {
  FAKE_SUCCESS = 0,
  FAKE_INVALID_VALUE = 1,
  FAKE_OUT_OF_MEMORY = 2,
  FAKE_NOT_INITIALIZED = 3,
  FAKE_STUB_LIBRARY = 34,
  FAKE_NO_DEVICE = 100,
  FAKE_INVALID_IMAGE = 200,
  FAKE_INVALID_HANDLE = 400,
  FAKE_LAUNCH_FAILED = 719,
};

typedef struct {
  char name[96];            // the kernel's name
  unsigned grid, block, shared_bytes;
  void *table;              // the buffer table (device memory)
  int64_t count;
  uint64_t seed, step;      // read where the launch's rng parameter points, when it ran
  int graph;                // 1: run by a graph launch
  int slots;                // the table's entries, from it to the end of its allocation
  int bad_slots;            // entries that point outside every live allocation
} FakeLaunch;

typedef struct {
  int64_t allocs, frees;          // device allocations made and freed
  int64_t live, live_bytes;       // device allocations alive now, and their bytes
  int64_t host_allocs, host_live; // pinned host buffers made, and alive now
  int64_t modules_loaded, modules_live, functions;
  int64_t streams_live, events_live, contexts_live;
  int64_t copies_in, staged_copies_in;    // host-to-device copies; those from a pinned buffer
  int64_t copies_out, staged_copies_out;  // device-to-host copies; those into a pinned buffer
  size_t largest_copy;            // the largest host copy in one call
  int64_t bad_calls;              // unknown handles and pointers, copies outside allocations
  int64_t launches;               // kernels run, one by one or by graph launches
  int64_t bad_slots;              // over every launch
  int64_t graphs_live;            // graphs being captured or captured, and executable graphs, alive now
  int64_t graph_launches;
} FakeGpuStats;

const FakeGpuStats *fake_gpu_stats(void);
// Launch i (from 0) since the library was loaded, for the first 4096; NULL past them.
const FakeLaunch *fake_gpu_launch(int64_t i);
// How many times the entry point named entry ("cuMemAlloc_v2") has been called.
int64_t fake_gpu_calls(const char *entry);
// Makes count calls of entry, from the nth from now (1: the next), return
// result without doing anything else.
void fake_gpu_fail(const char *entry, int64_t nth, int64_t count, int result);
// The device memory there is (1 GiB unless set).
void fake_gpu_set_memory(size_t total);
// The next launch sets its kernel error word to word.
void fake_gpu_kernel_error(int64_t word);

#endif
