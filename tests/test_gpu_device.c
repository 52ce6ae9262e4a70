// test_gpu_device.c: the GPU device (runtime/gpu.c) through both driver
// tables, on a fake driver.
//
// Every test runs once with CUDA's table and once with HIP's, each pointed
// (SMELT_CUDA_LIBRARY, SMELT_HIP_LIBRARY) at tests/fake_gpu's library, which
// keeps device memory on the host and records launches without running them.
// So these tests check bookkeeping and error paths, never numbers: every
// allocation, module, stream, event and context the device takes is given
// back; copies stay inside live allocations and round-trip bytes; each
// launch has the ingot's grid and a buffer table whose entries point into
// live memory; and each failure of the driver gives its message and status.
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_gpu/fake_gpu.h"
#include "runtime.h"
#include "smelt.h"
#include "support.h"

// What a test needs to know of a vendor: its device and the names of the
// fake's entry points that its table binds.
typedef struct {
  const char *vendor, *prefix, *env, *library;
  smelt_status (*open)(int ordinal, Device **out);
  const char *init, *count, *stream_create, *alloc, *copy_in, *module_load, *launch, *elapsed;
  bool staged;   // host copies go through a pinned buffer
  const char *begin_capture;
} Vendor;

static const Vendor cuda_vendor = {
  "CUDA", "cuda", "SMELT_CUDA_LIBRARY", "driver", cuda_device_new, "cuInit", "cuDeviceGetCount", "cuStreamCreate",
  "cuMemAlloc_v2", "cuMemcpyHtoDAsync_v2", "cuModuleLoadDataEx", "cuLaunchKernel", "cuEventElapsedTime", true,
  "cuStreamBeginCapture_v2",
};

static const Vendor hip_vendor = {
  "HIP", "hip", "SMELT_HIP_LIBRARY", "runtime", hip_device_new, "hipInit", "hipGetDeviceCount",
  "hipStreamCreateWithFlags", "hipMalloc", "hipMemcpyHtoDAsync", "hipModuleLoadData", "hipModuleLaunchKernel",
  "hipEventElapsedTime", false, "hipStreamBeginCapture",
};

// A test body run for both vendors: name_cuda and name_hip.
#define BOTH(name)                                                             \
  static void name(const Vendor *v);                                           \
  TEST(gpu_device, name##_cuda) { name(&cuda_vendor); }                        \
  TEST(gpu_device, name##_hip) { name(&hip_vendor); }                          \
  static void name(const Vendor *v)

// The fake's control functions (fake_gpu.h), found in the library the device opens.
typedef struct {
  void *lib;
  const FakeGpuStats *(*stats)(void);
  const FakeLaunch *(*launch)(int64_t i);
  int64_t (*calls)(const char *entry);
  void (*fail)(const char *entry, int64_t nth, int64_t count, int result);
  void (*set_memory)(size_t total);
  void (*kernel_error)(int64_t word);
} Fake;

// The path of file in the fake's folder next to the test binary
// (build/fake_gpu/ or build-asan/fake_gpu/).
static void fake_path(const char *file, char *buf, size_t size) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  cr_assert_gt(n, 0);
  exe[n] = '\0';
  snprintf(buf, size, "%s/fake_gpu/%s", dirname(exe), file);
}

// Points v's device at the fake library file and opens its control functions.
static Fake fake_open_file(const Vendor *v, const char *file) {
  char path[PATH_MAX];
  fake_path(file, path, sizeof path);
  cr_assert_eq(setenv(v->env, path, 1), 0);
  Fake f = {.lib = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE)};
  cr_assert_not_null(f.lib, "the fake driver is not built: %s", dlerror());
  f.stats = (const FakeGpuStats *(*)(void))dlsym(f.lib, "fake_gpu_stats");
  f.launch = (const FakeLaunch *(*)(int64_t))dlsym(f.lib, "fake_gpu_launch");
  f.calls = (int64_t(*)(const char *))dlsym(f.lib, "fake_gpu_calls");
  f.fail = (void (*)(const char *, int64_t, int64_t, int))dlsym(f.lib, "fake_gpu_fail");
  f.set_memory = (void (*)(size_t))dlsym(f.lib, "fake_gpu_set_memory");
  f.kernel_error = (void (*)(int64_t))dlsym(f.lib, "fake_gpu_kernel_error");
  cr_assert(f.stats && f.launch && f.calls && f.fail && f.set_memory && f.kernel_error);
  return f;
}

static Fake fake_open(const Vendor *v) { return fake_open_file(v, "libfakegpu.so"); }

// Everything the device took from the driver has been given back, and the
// driver saw no call with a bad handle or pointer.
static void expect_released(const Fake *f) {
  const FakeGpuStats *st = f->stats();
  cr_expect_eq(st->live, 0, "%lld device allocations are left", (long long)st->live);
  cr_expect_eq(st->allocs, st->frees);
  cr_expect_eq(st->host_live, 0, "%lld pinned buffers are left", (long long)st->host_live);
  cr_expect_eq(st->modules_live, 0);
  cr_expect_eq(st->streams_live, 0);
  cr_expect_eq(st->events_live, 0);
  cr_expect_eq(st->contexts_live, 0);
  cr_expect_eq(st->bad_calls, 0, "the driver saw %lld bad calls", (long long)st->bad_calls);
}

static void fake_close(Fake *f) {
  expect_released(f);
  dlclose(f->lib);
}

static Device *device_open(const Vendor *v) {
  Device *d = NULL;
  cr_assert_eq(v->open(0, &d), SMELT_OK, "%s", smelt_last_error());
  cr_assert_not_null(d);
  return d;
}

static void expect_error(const char *want) {
  cr_expect(strstr(smelt_last_error(), want), "the error is \"%s\", not \"%s\"", smelt_last_error(), want);
}

// ---- ingots

static const Define mlp_sizes[] = {{"B", 4}, {"H", 8}};

// examples/mlp.smelt at tiny sizes, built for the GPU targets given (none:
// the CPU only) and opened; its path is in path, for unlink.
static smelt_ingot *mlp_ingot(const char *const *gpus, int ngpus, char *path, size_t size) {
  snprintf(path, size, "build/test-gpu-device-%d-%d.ingot", (int)getpid(), ngpus);
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_file(&c, "examples/mlp.smelt");
  cr_assert_eq(check_modules(&c, &m, 1, NULL, 0), 0);
  BuildTargets t = {.ngpus = ngpus};
  for (int i = 0; i < ngpus; i++) t.gpus[i] = gpus[i];
  cr_assert_eq(ingot_build(&c, m, mlp_sizes, 2, &t, path), 0, "the ingot does not build");
  compilation_free(&c);
  smelt_ingot *ig;
  cr_assert_eq(smelt_ingot_open(path, &ig), SMELT_OK, "%s", smelt_last_error());
  return ig;
}

static const char *const gpu_targets[] = {"sm_90", "gfx942"};

static smelt_ingot *gpu_ingot(char *path, size_t size) { return mlp_ingot(gpu_targets, 2, path, size); }

// ---- opening

BOTH(opens_names_the_gpu_and_gives_everything_back) {
  Fake f = fake_open(v);
  Device *d = device_open(v);
  char want[64];
  snprintf(want, sizeof want, "%s:0 (Fake GPU", v->prefix);
  cr_expect(!strncmp(d->name, want, strlen(want)), "%s", d->name);
  if (v == &cuda_vendor) {
    cr_expect_str_eq(d->name, "cuda:0 (Fake GPU, sm_90)");
    cr_expect_str_eq(d->arch, "sm_90");
    cr_expect_eq(f.stats()->contexts_live, 1);
  }
  cr_expect_eq(f.stats()->streams_live, 1);
  cr_expect_eq(f.stats()->live, 1, "the error word is the one allocation");
  d->destroy(d);
  fake_close(&f);
}

BOTH(a_missing_library_is_named) {
  cr_assert_eq(setenv(v->env, "build/no-such-dir/libnothing.so", 1), 0);
  Device *d = (Device *)1;
  cr_expect_eq(v->open(0, &d), SMELT_ERR_NO_DEVICE);
  cr_expect_null(d);
  char want[160];
  snprintf(want, sizeof want, "no %s %s: build/no-such-dir/libnothing.so cannot be loaded (is ", v->vendor, v->library);
  expect_error(want);
}

BOTH(a_missing_entry_point_is_named) {
  Fake f = fake_open_file(v, "libfakegpu-old.so");
  Device *d = (Device *)1;
  cr_expect_eq(v->open(0, &d), SMELT_ERR_NO_DEVICE);
  cr_expect_null(d);
  char want[160];
  snprintf(want, sizeof want, "the %s %s is too old: it lacks %s", v->vendor, v->library, v->launch);
  cr_expect_str_eq(smelt_last_error(), want);
  cr_expect_eq(f.calls(v->init), 0, "nothing is called before every entry point is found");
  fake_close(&f);
}

BOTH(an_absent_ordinal_is_named) {
  Fake f = fake_open(v);
  Device *d = (Device *)1;
  cr_expect_eq(v->open(1, &d), SMELT_ERR_NO_DEVICE);
  cr_expect_null(d);
  char want[160];
  snprintf(want, sizeof want, "no %s device 1: the %s sees 1 device", v->vendor, v->library);
  cr_expect_str_eq(smelt_last_error(), want);
  fake_close(&f);
}

// Each entry point that opening calls, failing in turn: the status, and
// nothing kept.
BOTH(a_failure_while_opening_gives_everything_back) {
  Fake f = fake_open(v);
  const char *entries[] = {v->init, v->count, v->stream_create, v->alloc, "cuDevicePrimaryCtxRetain",
                           "cuMemsetD8Async", "hipMemsetAsync"};
  for (size_t i = 0; i < sizeof entries / sizeof *entries; i++) {
    int64_t before = f.calls(entries[i]);
    f.fail(entries[i], 1, 1, FAKE_INVALID_VALUE);
    Device *d = (Device *)1;
    smelt_status st = v->open(0, &d);
    if (f.calls(entries[i]) == before) {   // the other vendor's entry point
      cr_assert_eq(st, SMELT_OK, "%s", smelt_last_error());
      d->destroy(d);
      f.fail(entries[i], 1, 0, 0);
      continue;
    }
    cr_expect_neq(st, SMELT_OK, "opening succeeded although %s failed", entries[i]);
    cr_expect_null(d);
    expect_error("invalid argument");
    expect_released(&f);
  }
  f.fail(v->init, 1, 1, FAKE_NO_DEVICE);
  Device *d;
  cr_expect_eq(v->open(0, &d), SMELT_ERR_NO_DEVICE);
  char want[160];
  snprintf(want, sizeof want, "no %s device: %s failed: ", v->vendor, v->init);
  expect_error(want);
  fake_close(&f);
}

// The stub library answers every call, cuGetErrorName included, with an error.
TEST(gpu_device, the_cuda_stub_library_is_named) {
  Fake f = fake_open(&cuda_vendor);
  f.fail("cuInit", 1, 1, FAKE_STUB_LIBRARY);
  f.fail("cuGetErrorName", 1, 1, FAKE_STUB_LIBRARY);
  Device *d;
  cr_expect_eq(cuda_device_new(0, &d), SMELT_ERR_NO_DEVICE);
  cr_expect_str_eq(smelt_last_error(), "no CUDA device: cuInit failed: CUDA_ERROR_STUB_LIBRARY: CUDA driver is a stub library");
  f.fail("cuInit", 1, 1, 999);
  cr_expect_eq(cuda_device_new(0, &d), SMELT_ERR_NO_DEVICE);
  cr_expect_str_eq(smelt_last_error(), "no CUDA device: cuInit failed: CUDA error 999: unknown error");
  fake_close(&f);
}

TEST(gpu_device, a_hip_result_without_a_name_is_numbered) {
  Fake f = fake_open(&hip_vendor);
  f.fail("hipInit", 1, 1, 999);
  f.fail("hipGetErrorName", 1, 1, 1);
  Device *d;
  cr_expect_eq(hip_device_new(0, &d), SMELT_ERR_NO_DEVICE);
  cr_expect_str_eq(smelt_last_error(), "no HIP device: hipInit failed: HIP error 999");
  fake_close(&f);
}

// ---- memory

BOTH(allocations_are_zeroed_and_balanced) {
  Fake f = fake_open(v);
  Device *d = device_open(v);
  const FakeGpuStats *st = f.stats();
  size_t sizes[] = {0, 1, 8, 1000, 1 << 20};
  void *p[5];
  for (int i = 0; i < 5; i++) {
    p[i] = d->alloc(d, sizes[i]);
    cr_assert_not_null(p[i], "%s", smelt_last_error());
    cr_expect_eq((uintptr_t)p[i] % 256, 0);
  }
  cr_expect_eq(st->live, 6);
  unsigned char *back = malloc(1 << 20);
  for (int i = 1; i < 5; i++) {
    memset(back, 0x5A, sizes[i]);
    d->copy_out(d, back, p[i], sizes[i]);   // the fake hands out 0xA5 bytes: the device clears them
    size_t nonzero = 0;
    for (size_t k = 0; k < sizes[i]; k++) nonzero += back[k] != 0;
    cr_expect_eq(nonzero, 0, "%zu of %zu bytes are not zero", nonzero, sizes[i]);
  }
  free(back);
  for (int i = 0; i < 5; i++) d->free(d, p[i]);
  d->free(d, NULL);
  cr_expect_eq(st->live, 1);
  cr_expect_eq(st->frees, 5);
  d->destroy(d);
  fake_close(&f);
}

BOTH(out_of_memory_names_the_bytes) {
  Fake f = fake_open(v);
  Device *d = device_open(v);
  char want[160];
  // more than is free: refused before the driver is asked
  f.set_memory(1 << 20);
  int64_t asked = f.calls(v->alloc);
  cr_expect_null(d->alloc(d, 2 << 20));
  // (the device holds 24 bytes: the error word, the seed and the step)
  snprintf(want, sizeof want, "out of memory on %s:0: 2097152 bytes asked, 1048552 of 1048576 bytes free", v->prefix);
  cr_expect_str_eq(smelt_last_error(), want);
  cr_expect_eq(f.calls(v->alloc), asked);
  // the driver runs out
  f.set_memory((size_t)1 << 30);
  f.fail(v->alloc, 1, 1, FAKE_OUT_OF_MEMORY);
  cr_expect_null(d->alloc(d, 100));
  snprintf(want, sizeof want, "out of memory on %s:0: 100 bytes asked, ", v->prefix);
  expect_error(want);
  // any other failure
  f.fail(v->alloc, 1, 1, FAKE_INVALID_VALUE);
  cr_expect_null(d->alloc(d, 100));
  snprintf(want, sizeof want, "%s error while allocating memory: ", v->vendor);
  expect_error(want);
  expect_error("invalid argument");
  d->destroy(d);
  // while opening: the error word
  f.fail(v->alloc, 1, 1, FAKE_OUT_OF_MEMORY);
  d = (Device *)1;
  cr_expect_eq(v->open(0, &d), SMELT_ERR_OUT_OF_MEMORY);
  cr_expect_null(d);
  fake_close(&f);
}

// A session whose parameters do not fit fails with the status, and gives
// back what it took.
BOTH(a_session_too_large_for_the_device_is_refused) {
  Fake f = fake_open(v);
  char path[96];
  smelt_ingot *ig = gpu_ingot(path, sizeof path);
  f.set_memory(4096);
  smelt_session *s = NULL;
  cr_expect_eq(smelt_session_new(ig, v->prefix, 1, &s), SMELT_ERR_OUT_OF_MEMORY);
  cr_expect_null(s);
  expect_error("out of memory");
  smelt_ingot_close(ig);
  unlink(path);
  fake_close(&f);
}

// ---- copies

BOTH(copies_round_trip_through_the_staging_buffer) {
  Fake f = fake_open(v);
  Device *d = device_open(v);
  const FakeGpuStats *st = f.stats();
  size_t n = (33u << 20) + 3;   // three pieces of a 16 MiB staging buffer
  unsigned char *in = malloc(n), *out = malloc(n);
  for (size_t i = 0; i < n; i++) in[i] = (unsigned char)(i * 2654435761u >> 13);
  char *a = d->alloc(d, n), *b = d->alloc(d, n);
  cr_assert(a && b, "%s", smelt_last_error());
  int64_t copies = st->copies_in;
  d->copy_in(d, a, in, n);
  d->copy(d, b, a, n);
  memset(out, 0, n);
  d->copy_out(d, out, b, n);
  cr_expect_eq(memcmp(in, out, n), 0, "the bytes came back changed");
  // a piece from the middle, at an odd offset
  memset(out, 0, 100);
  d->copy_out(d, out, a + 12345, 100);
  cr_expect_eq(memcmp(in + 12345, out, 100), 0);
  d->copy_in(d, b, in, 0);
  cr_expect_eq(d->take_error(d), 0, "%s", smelt_last_error());   // one more copy out, of the error word
  if (v->staged) {
    cr_expect_eq(st->copies_in - copies, 3, "%lld pieces", (long long)(st->copies_in - copies));
    cr_expect_eq(st->staged_copies_in, st->copies_in, "every piece comes from the pinned buffer");
    cr_expect_eq(st->staged_copies_out, st->copies_out - 1, "every piece but the error word's goes to it");
    cr_expect_eq(st->largest_copy, 16u << 20);
    cr_expect_eq(st->host_live, 1);
  } else {
    cr_expect_eq(st->copies_in - copies, 1);
    cr_expect_eq(st->largest_copy, n);
    cr_expect_eq(st->host_allocs, 0);
  }
  d->free(d, a);
  d->free(d, b);
  d->destroy(d);
  free(in);
  free(out);
  fake_close(&f);
}

// A failed copy cannot return its error: it is reported, and kept for the
// next take_error.
BOTH(a_failed_copy_is_reported_again_by_take_error) {
  Fake f = fake_open(v);
  Device *d = device_open(v);
  char *a = d->alloc(d, 64), host[64] = {1, 2, 3};
  f.fail(v->copy_in, 1, 1, FAKE_INVALID_VALUE);
  d->copy_in(d, a, host, sizeof host);
  char want[160];
  snprintf(want, sizeof want, "%s error while copying to the device: ", v->vendor);
  expect_error(want);
  rt_fail(SMELT_OK, "-");
  cr_expect_eq(d->take_error(d), -1);
  expect_error(want);
  cr_expect_eq(d->take_error(d), 0, "the fault is reported once");
  d->free(d, a);
  d->destroy(d);
  fake_close(&f);
}

// ---- code and launches

BOTH(code_is_chosen_and_refusals_are_named) {
  Fake f = fake_open(v);
  char path[96], want[256];
  Device *d = device_open(v);
  // an ingot for the CPU only
  smelt_ingot *cpu = mlp_ingot(NULL, 0, path, sizeof path);
  cr_expect_eq(d->load_code(d, cpu), SMELT_ERR_NO_DEVICE);
  snprintf(want, sizeof want, "the ingot was built for the CPU only; rebuild with --target=%s",
           d->arch ? d->arch : "gfxNNN");
  expect_error(want);
  smelt_ingot_close(cpu);
  unlink(path);
  // one for sm_90 and gfx942: CUDA takes the sm_90 code, HIP the code object the runtime accepts
  smelt_ingot *ig = gpu_ingot(path, sizeof path);
  cr_assert_eq(d->load_code(d, ig), SMELT_OK, "%s", smelt_last_error());
  snprintf(want, sizeof want, "%s:0 (Fake GPU, %s)", v->prefix, v == &cuda_vendor ? "sm_90" : "gfx942");
  cr_expect_str_eq(d->name, want);
  cr_expect_not_null(d->symbol(d, ingot_str(ig, ig->launches[0].symbol)));
  cr_assert_eq(d->load_code(d, ig), SMELT_OK, "%s", smelt_last_error());
  cr_expect_eq(f.stats()->modules_live, 1, "loading again unloads the module before");
  // a CUBIN the driver refuses falls back on the PTX
  int64_t loads = f.calls(v->module_load);
  bool cubin = ingot_code(ig, "sm_90", CODE_CUBIN) != NULL;
  if (v == &cuda_vendor && cubin) {
    f.fail(v->module_load, 1, 1, FAKE_INVALID_IMAGE);
    cr_expect_eq(d->load_code(d, ig), SMELT_OK, "%s", smelt_last_error());
    cr_expect_eq(f.calls(v->module_load) - loads, 2);
  }
  // every code object refused
  f.fail(v->module_load, 1, 100, FAKE_INVALID_IMAGE);
  cr_expect_eq(d->load_code(d, ig), SMELT_ERR_NO_DEVICE);
  if (v == &cuda_vendor)
    expect_error("cannot load the ingot's PTX for sm_90 on sm_90: CUDA_ERROR_INVALID_IMAGE: device kernel image is "
                 "invalid\nfake JIT: the image was refused");
  else if (!d->arch)
    expect_error("the ingot has no code that hip:0 (Fake GPU) accepts (it was built for: ");
  else
    expect_error("cannot load the ingot's");
  cr_expect_null(d->symbol(d, ingot_str(ig, ig->launches[0].symbol)));
  cr_expect_eq(f.stats()->modules_live, 0);
  d->destroy(d);
  smelt_ingot_close(ig);
  unlink(path);
  fake_close(&f);
}

BOTH(launches_are_recorded_and_the_error_word_read_back) {
  Fake f = fake_open(v);
  const FakeGpuStats *st = f.stats();
  char path[96];
  smelt_ingot *ig = gpu_ingot(path, sizeof path);
  Device *d = device_open(v);
  cr_assert_eq(d->load_code(d, ig), SMELT_OK, "%s", smelt_last_error());
  uint32_t li = ingot_entry(ig, "eval")->first_launch;
  const char *sym = ingot_str(ig, ig->launches[li].symbol);
  const IngotGpuLaunch *gl = ingot_gpu_launch(ig, li);
  cr_assert_not_null(gl);
  void *fn = d->symbol(d, sym);
  cr_assert_not_null(fn);
  char *buf = d->alloc(d, 256);
  void **table = d->alloc(d, 4 * sizeof(void *));
  void *slots[4] = {buf, buf + 64, buf + 128, buf + 256};
  d->copy_in(d, table, slots, sizeof slots);
  cr_assert_eq(d->launch(d, fn, table, li, 1000, 7, 3), 0, "%s", smelt_last_error());
  cr_assert_eq(st->launches, 1);
  const FakeLaunch *l = f.launch(0);
  cr_expect_str_eq(l->name, sym);
  cr_expect_eq(l->grid, gl->grid);
  cr_expect_eq(l->block, gl->block);
  cr_expect_eq(l->shared_bytes, gl->shared_bytes);
  cr_expect_eq(l->count, 1000);
  cr_expect_eq(l->seed, 7);
  cr_expect_eq(l->step, 3);
  cr_expect_eq(l->table, (void *)table);
  cr_expect_eq(l->slots, 4);
  cr_expect_eq(l->bad_slots, 0);
  cr_expect_eq(d->take_error(d), 0, "%s", smelt_last_error());
  // the kernel's error word comes back once
  f.kernel_error(5);
  cr_expect_eq(d->launch(d, fn, table, li, 1000, 7, 4), 0);
  cr_expect_eq(d->take_error(d), 5);
  cr_expect_eq(d->take_error(d), 0);
  // nothing to do is no launch; a launch without a kernel is refused
  cr_expect_eq(d->launch(d, fn, table, li, 0, 7, 5), 0);
  cr_expect_eq(st->launches, 2);
  cr_expect_eq(d->launch(d, NULL, table, li, 10, 7, 5), -1);
  expect_error("has no GPU kernel in the ingot");
  // a launch the driver refuses
  f.fail(v->launch, 1, 1, FAKE_LAUNCH_FAILED);
  cr_expect_eq(d->launch(d, fn, table, li, 1000, 7, 6), -1);
  char want[96];
  snprintf(want, sizeof want, "%s launch failed: ", v->vendor);
  expect_error(want);
  expect_error("unspecified launch failure");
  // profiling times each launch with a pair of events
  d->profile(d, true);
  for (int i = 0; i < 3; i++) cr_expect_eq(d->launch(d, fn, table, li, 1000, 7, (uint64_t)i), 0);
  cr_expect_eq(st->events_live, 6);
  double ms[8];
  cr_expect_eq(d->profile_take(d, ms, 8), 3);
  for (int i = 0; i < 3; i++) cr_expect_float_eq(ms[i], 0.5, 1e-9, "launch %d took %g ms", i, ms[i]);
  cr_expect_eq(f.calls(v->elapsed), 3);
  cr_expect_eq(st->events_live, 0);
  d->profile(d, false);
  cr_expect_eq(d->launch(d, fn, table, li, 1000, 7, 9), 0);
  cr_expect_eq(d->profile_take(d, ms, 8), 0);
  cr_expect_eq(st->bad_slots, 0);
  d->free(d, table);
  d->free(d, buf);
  d->destroy(d);
  smelt_ingot_close(ig);
  unlink(path);
  fake_close(&f);
}

static void fill_batch(float *x, int32_t *y, int step) {
  for (int i = 0; i < 4 * 784; i++) x[i] = (float)((i * 7919 + step * 104729) % 1000) / 1000.0f;
  for (int i = 0; i < 4; i++) y[i] = (i * 3 + step) % 10;
}

// The launches of entry e with work to do, in order, must be the next of
// the fake's records, from *next on.
static void expect_launches(const Fake *f, const smelt_ingot *ig, const IngotEntry *e, uint64_t step, int64_t *next) {
  for (uint32_t k = 0; k < e->nlaunches; k++) {
    uint32_t li = e->first_launch + k;
    const IngotLaunch *il = &ig->launches[li];
    if (il->count == 0) continue;
    const FakeLaunch *l = f->launch((*next)++);
    cr_assert_not_null(l, "launch %u of %s was not made", k, ingot_str(ig, e->name));
    cr_expect_str_eq(l->name, ingot_str(ig, il->symbol));
    cr_expect_eq(l->grid, ingot_gpu_launch(ig, li)->grid);
    cr_expect_eq(l->block, ingot_gpu_launch(ig, li)->block);
    cr_expect_eq(l->count, (int64_t)il->count);
    cr_expect_eq(l->step, step);
    // the launch's table is its part of the entry's tables, one after another:
    // the fake sees from there to the end of the entry's
    const IngotLaunch *last = &ig->launches[e->first_launch + e->nlaunches - 1];
    cr_expect_eq(l->slots, (int)(last->first_buf + last->nbufs - il->first_buf),
                 "a launch's buffer table is its part of its entry's tables");
    cr_expect_eq(l->bad_slots, 0, "%s: %d entries of its buffer table point outside device memory", l->name,
                 l->bad_slots);
  }
}

BOTH(a_training_session_runs_through_the_fake) {
  Fake f = fake_open(v);
  const FakeGpuStats *st = f.stats();
  char path[96], want[64];
  smelt_ingot *ig = gpu_ingot(path, sizeof path);
  smelt_session *s;
  cr_assert_eq(smelt_session_new(ig, v->prefix, 1, &s), SMELT_OK, "%s", smelt_last_error());
  snprintf(want, sizeof want, "%s:0 (Fake GPU, %s)", v->prefix, v == &cuda_vendor ? "sm_90" : "gfx942");
  cr_expect_str_eq(smelt_session_device(s), want);
  cr_expect_gt(st->copies_in, 0, "the weights were copied in");
  float x[4 * 784], loss = 1;
  int32_t y[4];
  int64_t next = 0;
  const IngotEntry *train = ingot_entry(ig, "train_step"), *eval = ingot_entry(ig, "eval");
  cr_assert(train && eval);
  for (int step = 1; step <= 2; step++) {
    fill_batch(x, y, step);
    cr_assert_eq(smelt_set_input(s, "train_step", "x", x, sizeof x), SMELT_OK, "%s", smelt_last_error());
    cr_assert_eq(smelt_set_input(s, "train_step", "y", y, sizeof y), SMELT_OK, "%s", smelt_last_error());
    cr_assert_eq(smelt_run(s, "train_step", 1, (uint64_t)step), SMELT_OK, "%s", smelt_last_error());
    expect_launches(&f, ig, train, (uint64_t)step, &next);
  }
  cr_assert_eq(smelt_set_input(s, "eval", "x", x, sizeof x), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_set_input(s, "eval", "y", y, sizeof y), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_run(s, "eval", 1, 0), SMELT_OK, "%s", smelt_last_error());
  expect_launches(&f, ig, eval, 0, &next);
  cr_expect_eq(st->launches, next);
  // nothing ran, so the loss is the arena's zeros
  cr_assert_eq(smelt_get_output(s, "eval", "loss", &loss, sizeof loss), SMELT_OK, "%s", smelt_last_error());
  cr_expect_eq(loss, 0.0f);
  // a kernel that sets the error word fails the run, once
  f.kernel_error(1);
  cr_expect_eq(smelt_run(s, "eval", 1, 0), SMELT_ERR_RUNTIME);
  expect_error("a kernel of 'eval' met an index out of range");
  cr_expect_eq(smelt_run(s, "eval", 1, 0), SMELT_OK, "%s", smelt_last_error());
  cr_expect_eq(st->bad_slots, 0);
  smelt_session_free(s);
  smelt_ingot_close(ig);
  unlink(path);
  fake_close(&f);
}

// Runs train_step at the given steps (seed 5) and checks that each run made
// the entry's launches with its own seed and step, from a graph or not.
static void run_steps(const Fake *f, smelt_session *s, const smelt_ingot *ig, int from, int to, bool graph,
                      int64_t *next) {
  const IngotEntry *train = ingot_entry(ig, "train_step");
  float x[4 * 784];
  int32_t y[4];
  for (int step = from; step <= to; step++) {
    fill_batch(x, y, step);
    cr_assert_eq(smelt_set_input(s, "train_step", "x", x, sizeof x), SMELT_OK, "%s", smelt_last_error());
    cr_assert_eq(smelt_set_input(s, "train_step", "y", y, sizeof y), SMELT_OK, "%s", smelt_last_error());
    cr_assert_eq(smelt_run(s, "train_step", 5, (uint64_t)step), SMELT_OK, "%s", smelt_last_error());
    int64_t first = *next;
    expect_launches(f, ig, train, (uint64_t)step, next);
    for (int64_t i = first; i < *next; i++) {
      cr_expect_eq(f->launch(i)->seed, 5);
      cr_expect_eq(f->launch(i)->graph, graph, "step %d: launch %lld %s a graph", step, (long long)i,
                   graph ? "not from" : "from");
    }
  }
}

// An entry's launches are captured at its first run and replayed by one
// graph launch per run, each run's seed and step read from device memory;
// off, while profiling, or where capturing fails, kernels go one by one.
BOTH(graphs_replay_each_run_with_its_seed_and_step) {
  Fake f = fake_open(v);
  const FakeGpuStats *st = f.stats();
  char path[96];
  smelt_ingot *ig = gpu_ingot(path, sizeof path);
  smelt_session *s;
  cr_assert_eq(smelt_session_new(ig, v->prefix, 1, &s), SMELT_OK, "%s", smelt_last_error());
  int64_t next = 0;
  run_steps(&f, s, ig, 1, 3, true, &next);
  cr_expect_eq(f.calls(v->begin_capture), 1, "captured once");
  cr_expect_eq(st->graph_launches, 3);
  cr_expect_eq(smelt_session_graphs(s), 1);
  cr_expect_eq(st->graphs_live, 1, "the executable graph alone is kept");
  // while profiling, each launch is timed: one by one
  Device *d = session_device(s);
  d->profile(d, true);
  run_steps(&f, s, ig, 4, 4, false, &next);
  double ms[256];
  cr_expect_gt(d->profile_take(d, ms, 256), 0);
  d->profile(d, false);
  run_steps(&f, s, ig, 5, 5, true, &next);
  // off: one by one, the graph freed; on again: captured again
  cr_assert_eq(smelt_session_use_graphs(s, 0), SMELT_OK);
  cr_expect_eq(st->graphs_live, 0);
  cr_expect_eq(smelt_session_graphs(s), 0);
  run_steps(&f, s, ig, 6, 7, false, &next);
  cr_assert_eq(smelt_session_use_graphs(s, 1), SMELT_OK);
  run_steps(&f, s, ig, 8, 8, true, &next);
  cr_expect_eq(f.calls(v->begin_capture), 2);
  cr_expect_eq(st->launches, next);
  cr_expect_eq(st->bad_slots, 0);
  cr_expect_eq(st->bad_calls, 0, "no copy, memset or wait was issued into a capture");
  smelt_session_free(s);
  cr_expect_eq(st->graphs_live, 0);
  // a driver that cannot capture: the entry runs one by one, and is not tried again
  cr_assert_eq(smelt_session_new(ig, v->prefix, 1, &s), SMELT_OK, "%s", smelt_last_error());
  f.fail(v->begin_capture, 1, 1, FAKE_INVALID_VALUE);
  run_steps(&f, s, ig, 1, 3, false, &next);
  cr_expect_eq(f.calls(v->begin_capture), 3);
  cr_expect_eq(smelt_session_graphs(s), 0);
  smelt_session_free(s);
  smelt_ingot_close(ig);
  unlink(path);
  fake_close(&f);
}

// With a CUDA driver present, auto takes it.
TEST(gpu_device, auto_takes_the_cuda_device) {
  Fake f = fake_open(&cuda_vendor);
  char path[96];
  smelt_ingot *ig = gpu_ingot(path, sizeof path);
  smelt_session *s;
  cr_assert_eq(smelt_session_new(ig, "auto", 1, &s), SMELT_OK, "%s", smelt_last_error());
  cr_expect_str_eq(smelt_session_device(s), "cuda:0 (Fake GPU, sm_90)");
  smelt_session_free(s);
  smelt_ingot_close(ig);
  unlink(path);
  fake_close(&f);
}
