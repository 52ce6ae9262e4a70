// runtime.h: libsmeltrt's internal header: the opened ingot, devices, sessions.
//
// Only the runtime's own files include it. The ingot format itself is in
// ingot.h, shared with the compiler.
#ifndef SMELT_RUNTIME_H
#define SMELT_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ingot.h"
#include "smelt.h"

// ---- error.c: the per-thread message behind smelt_last_error

smelt_status rt_fail(smelt_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// ---- ingot_read.c

struct smelt_ingot {
  char *data;                    // the whole file (owned)
  uint64_t size;
  const IngotSection *sec[16];   // by SEC_* kind; NULL when absent
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
  const IngotUpdate *updates;
  uint32_t nupdates;
  const char *meta;              // a NUL-terminated copy of META (owned)
};

const char *ingot_str(const smelt_ingot *ig, uint32_t offset);
const void *ingot_section(const smelt_ingot *ig, uint32_t kind, uint64_t *size);
// The entry named name, or NULL.
const IngotEntry *ingot_entry(const smelt_ingot *ig, const char *name);
// The tensor named name, or -1.
int64_t ingot_tensor(const smelt_ingot *ig, const char *name);
int ingot_dtype_size(uint32_t dtype);

// ---- devices: a table of functions; optional slots are NULL

typedef void (*KernelFn)(char **bufs, int64_t begin, int64_t end, int64_t *ctx);

typedef struct Device Device;
struct Device {
  const char *name;
  // Loads the host code object of the ingot; 0, or a status after rt_fail.
  smelt_status (*load_code)(Device *d, const void *code, size_t size);
  void *(*symbol)(Device *d, const char *name);
  void *(*alloc)(Device *d, size_t bytes);          // zeroed; NULL when out of memory
  void (*free)(Device *d, void *p);
  void (*copy_in)(Device *d, void *dst, const void *host, size_t bytes);    // host -> device
  void (*copy_out)(Device *d, void *host, const void *src, size_t bytes);   // device -> host
  void (*copy)(Device *d, void *dst, const void *src, size_t bytes);        // on the device
  void (*sync)(Device *d);   // optional: waits for queued work (NULL: launches are synchronous)
  // Runs fn over [0, count); returns the kernel's error word (0: none).
  int64_t (*launch)(Device *d, void *fn, char **bufs, int64_t count, uint64_t seed, uint64_t step);
  void (*destroy)(Device *d);
  void *impl;
};

// cpu.c: the CPU device with `threads` workers (0: one per core).
smelt_status cpu_device_new(int threads, Device **out);

#endif
