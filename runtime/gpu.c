// gpu.c: the GPU device, once for every vendor, over a driver table (gpu.h).
//
// The vendor's library is opened with dlopen when a session asks for a GPU,
// so the runtime builds and runs where there is none. All work goes on one
// non-blocking stream: launches and copies on the device run asynchronously
// in stream order, copies to and from the host go through a pinned buffer
// (when the driver table has one) and wait for the stream, and a failure that
// a void entry point cannot return is kept for the next take_error. Where the
// driver has graphs, the session captures an entry's launches once and
// replays them with one call per run.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu.h"

// Host copies go through a pinned buffer of at most this size, in pieces.
#define STAGE_MAX (16u << 20)
#define STAGE_MIN (64u << 10)

enum { STREAM_NON_BLOCKING = 1 };   // the same flag in both ABIs

typedef struct {
  void *start, *end;
} Timing;

typedef struct {
  GpuDriver *t;             // owned: the vendor's struct, its library open
  int ordinal;
  int dev;
  bool live;                // the device is chosen and its context retained: release undoes it
  void *ctx;                // the context made current on entry, when the driver has them
  void *stream;             // all work, in order
  void *module;             // set by load_code
  const smelt_ingot *ig;    // set by load_code: launch reads its GPU launch records
  void *error;              // the kernels' error word: 8 bytes of device memory, then rng's 16
  void *rng;                // the run's {seed, step}, which the kernels read
  uint64_t rng_host[2];     // what rng holds, when rng_set
  bool rng_set;
  bool capturing;           // launches are recorded into a graph, not queued
  void *pinned;             // staging for host copies, pinned_size bytes
  size_t pinned_size;
  Timing *timings;          // while profiling: one per launch, in order
  int ntimings, timings_cap;
  bool profiling;
  char fault[256];          // the first failure of a copy, reported by take_error
  char why[256];            // scratch for gpu_why
  char gpu[128];            // the driver's name for the GPU
  char name[192];           // "cuda:0 (NVIDIA H200, sm_90)"; "hip:0 (GPU)" until code names the arch
  char arch[32];            // "sm_90", "gfx942"; "" when unknown
} Gpu;

// "NAME: description" of a driver result, in g->why until the next call.
static const char *gpu_why(Gpu *g, int r) {
  const char *name = NULL, *text = NULL;
  g->t->describe(g->t, r, &name, &text);
  if (name && text) snprintf(g->why, sizeof g->why, "%s: %s", name, text);
  else if (text) snprintf(g->why, sizeof g->why, "%s error %d: %s", g->t->vendor, r, text);
  else snprintf(g->why, sizeof g->why, "%s error %d", g->t->vendor, r);
  return g->why;
}

// Reports a failure of an entry point that returns nothing; the first one is
// kept so that the next take_error fails too.
static void gpu_fault(Gpu *g, int r, const char *doing) {
  char msg[sizeof g->fault];
  snprintf(msg, sizeof msg, "%s error while %s: %s", g->t->vendor, doing, gpu_why(g, r));
  if (!g->fault[0]) memcpy(g->fault, msg, sizeof msg);
  rt_fail(SMELT_ERR_RUNTIME, "%s", msg);
}

// The caller may come from any thread, and the current context or device is
// per thread: each entry point makes it current there first.
static void gpu_enter(Gpu *g) {
  if (g->t->context_set) g->t->context_set(g->ctx);
  if (g->t->set_device) g->t->set_device(g->ordinal);
}

static void gpu_timings_clear(Gpu *g) {
  for (int i = 0; i < g->ntimings; i++) {
    g->t->event_destroy(g->timings[i].start);
    g->t->event_destroy(g->timings[i].end);
  }
  g->ntimings = 0;
}

// Frees whatever of g was set up, waiting for queued work first. The library
// stays mapped (RTLD_NODELETE): its threads and exit handlers outlive the
// device.
static void gpu_release(Gpu *g) {
  GpuDriver *t = g->t;
  if (g->live) {
    gpu_enter(g);
    if (g->stream) t->stream_sync(g->stream);
    gpu_timings_clear(g);
    if (g->error) t->mem_free(g->error);
    if (g->pinned) t->host_free(g->pinned);
    if (g->module) t->module_unload(g->module);
    if (g->stream) t->stream_destroy(g->stream);
    if (t->context_release) t->context_release(g->dev);
  }
  if (t->lib) dlclose(t->lib);
  free(t);
  free(g->timings);
  free(g);
}

static void gpu_destroy(Device *d) {
  gpu_release(d->impl);
  free(d);
}

// ---- code

const char *gpu_code_target(const smelt_ingot *ig, const IngotCode *code) {
  const char *t = ingot_str(ig, code->target);
  return t ? t : "?";
}

// The distinct targets of the ingot's code objects, "sm_80, sm_90", in buf.
static void code_targets(const smelt_ingot *ig, char *buf, size_t size) {
  size_t len = 0;
  buf[0] = '\0';
  for (uint32_t i = 0; i < ingot_ncodes(ig); i++) {
    const char *t = gpu_code_target(ig, ingot_code_at(ig, i));
    bool seen = false;
    for (uint32_t j = 0; j < i && !seen; j++) seen = !strcmp(t, gpu_code_target(ig, ingot_code_at(ig, j)));
    if (seen) continue;
    int n = snprintf(buf + len, size - len, "%s%s", len ? ", " : "", t);
    if (n < 0 || (size_t)n >= size - len) break;
    len += (size_t)n;
  }
}

static const char *format_name(uint32_t format) {
  return format == CODE_PTX ? "PTX" : format == CODE_CUBIN ? "CUBIN" : "code";
}

// Loads one code object as the device's module; the JIT's error log, if any,
// goes to log.
static int gpu_module_load(Gpu *g, const smelt_ingot *ig, const IngotCode *code, char *log, size_t size) {
  const void *image = ingot_code_data(ig, code);
  log[0] = '\0';
  if (!image || code->size == 0) {
    snprintf(log, size, "the code object in the ingot is malformed");
    return g->t->result_invalid_image;
  }
  int r = g->t->module_load(g->t, &g->module, code, image, log, size);
  if (r != 0) g->module = NULL;
  return r;
}

// Offers the driver the code objects the vendor picks for this GPU, in its
// order, and keeps the first it accepts. The error names the last refusal of
// code meant for this GPU, with its JIT log; when there is none, what the
// ingot was built for.
static smelt_status gpu_load_code(Device *d, const smelt_ingot *ig) {
  Gpu *g = d->impl;
  const GpuDriver *t = g->t;
  gpu_enter(g);
  const char *want = g->arch[0] ? g->arch : t->arch_unknown;
  uint32_t ncodes = ingot_ncodes(ig);
  if (ncodes == 0)
    return rt_fail(SMELT_ERR_NO_DEVICE, "the ingot was built for the CPU only; rebuild with --target=%s", want);
  const IngotCode **tries = malloc(ncodes * sizeof *tries);
  if (!tries) return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory loading the ingot's code");
  uint32_t ntries = t->code_tries(g->arch, ig, tries);
  if (g->module) t->module_unload(g->module);
  g->module = NULL;
  g->ig = NULL;
  const IngotCode *refused = NULL;   // the last code object for this GPU that would not load
  int refusal = 0;
  char log[768], refused_log[768] = "";
  for (uint32_t i = 0; i < ntries; i++) {
    const IngotCode *code = tries[i];
    int r = gpu_module_load(g, ig, code, log, sizeof log);
    if (r == 0) {
      free(tries);
      g->ig = ig;
      if (!t->arch_from_driver)
        snprintf(g->name, sizeof g->name, "%s:%d (%s, %s)", t->prefix, g->ordinal, g->gpu, gpu_code_target(ig, code));
      return SMELT_OK;
    }
    if (!t->code_is_for || t->code_is_for(g->arch, gpu_code_target(ig, code))) {
      refused = code;
      refusal = r;
      memcpy(refused_log, log, sizeof log);
    }
  }
  free(tries);
  char targets[256], on[64];
  if (refused) {
    if (t->arch_from_driver) snprintf(on, sizeof on, "%s", g->arch);
    else snprintf(on, sizeof on, "%s:%d", t->prefix, g->ordinal);
    return rt_fail(SMELT_ERR_NO_DEVICE, "cannot load the ingot's %s for %s on %s: %s%s%s", format_name(refused->format),
                   gpu_code_target(ig, refused), on, gpu_why(g, refusal), refused_log[0] ? "\n" : "", refused_log);
  }
  code_targets(ig, targets, sizeof targets);
  if (g->arch[0])
    return rt_fail(SMELT_ERR_NO_DEVICE, "the ingot has no code for %s (it was built for: %s); rebuild with --target=%s",
                   g->arch, targets, g->arch);
  return rt_fail(SMELT_ERR_NO_DEVICE, "the ingot has no code that %s:%d (%s) accepts (it was built for: %s); "
                 "rebuild with --target=%s", t->prefix, g->ordinal, g->gpu, targets, want);
}

static void *gpu_symbol(Device *d, const char *name) {
  Gpu *g = d->impl;
  void *fn = NULL;
  if (!g->module) return NULL;
  gpu_enter(g);
  return g->t->module_function(&fn, g->module, name) == 0 ? fn : NULL;
}

// ---- memory

static smelt_status gpu_out_of_memory(Gpu *g, size_t bytes) {
  size_t free_bytes = 0, total = 0;
  g->t->mem_info(&free_bytes, &total);
  return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory on %s:%d: %zu bytes asked, %zu of %zu bytes free",
                 g->t->prefix, g->ordinal, bytes, free_bytes, total);
}

// Zeroed device memory in *out, 256-byte aligned (the kernels rely on 64).
// The request is checked against free memory first, so that an arena too
// large gets a clear message.
static smelt_status gpu_mem_new(Gpu *g, size_t bytes, void **out) {
  const GpuDriver *t = g->t;
  size_t n = bytes ? bytes : 256, free_bytes = 0, total = 0;
  void *p = NULL;
  *out = NULL;
  if (t->mem_info(&free_bytes, &total) == 0 && n > free_bytes) return gpu_out_of_memory(g, bytes);
  int r = t->mem_alloc(&p, n);
  if (r == t->result_out_of_memory) return gpu_out_of_memory(g, bytes);
  if (r != 0) return rt_fail(SMELT_ERR_RUNTIME, "%s error while allocating memory: %s", t->vendor, gpu_why(g, r));
  r = t->memset_zero(t, p, n, g->stream);
  if (r == 0) r = t->stream_sync(g->stream);
  if (r != 0) {
    t->mem_free(p);
    return rt_fail(SMELT_ERR_RUNTIME, "%s error while clearing new memory: %s", t->vendor, gpu_why(g, r));
  }
  *out = p;
  return SMELT_OK;
}

static void *gpu_alloc(Device *d, size_t bytes) {
  Gpu *g = d->impl;
  void *p;
  gpu_enter(g);
  return gpu_mem_new(g, bytes, &p) == SMELT_OK ? p : NULL;
}

static void gpu_free(Device *d, void *p) {
  Gpu *g = d->impl;
  if (!p) return;
  gpu_enter(g);
  g->t->stream_sync(g->stream);   // queued kernels may still use p
  g->t->mem_free(p);
}

// The size of the pinned staging buffer for a copy of bytes, grown as needed;
// 0 when none can be pinned (copies then go straight from pageable memory).
static size_t gpu_stage(Gpu *g, size_t bytes) {
  const GpuDriver *t = g->t;
  size_t want = bytes < STAGE_MIN ? STAGE_MIN : bytes > STAGE_MAX ? STAGE_MAX : bytes;
  if (!t->host_alloc) return 0;
  if (g->pinned_size >= want) return g->pinned_size;
  if (want < 2 * g->pinned_size) want = 2 * g->pinned_size < STAGE_MAX ? 2 * g->pinned_size : STAGE_MAX;
  if (g->pinned) t->host_free(g->pinned);
  g->pinned = NULL;
  g->pinned_size = 0;
  if (t->host_alloc(&g->pinned, want, 0) != 0) {
    g->pinned = NULL;
    return 0;
  }
  g->pinned_size = want;
  return want;
}

// Copies in pieces of the staging buffer; host has been read in full when it
// returns. Stream order keeps the copy after the kernels queued before it.
static void gpu_copy_in(Device *d, void *dst, const void *host, size_t bytes) {
  Gpu *g = d->impl;
  if (bytes == 0) return;
  gpu_enter(g);
  size_t piece = gpu_stage(g, bytes);
  int r = 0;
  for (size_t done = 0; done < bytes && r == 0;) {
    size_t n = bytes - done;
    if (piece && n > piece) n = piece;
    const void *from = (const char *)host + done;
    if (piece) from = memcpy(g->pinned, from, n);
    r = g->t->copy_to_device((char *)dst + done, from, n, g->stream);
    if (r == 0) r = g->t->stream_sync(g->stream);
    done += n;
  }
  if (r != 0) gpu_fault(g, r, "copying to the device");
}

// Waits for the kernels queued before it, then copies in pieces of the
// staging buffer.
static void gpu_copy_out(Device *d, void *host, const void *src, size_t bytes) {
  Gpu *g = d->impl;
  if (bytes == 0) return;
  gpu_enter(g);
  size_t piece = gpu_stage(g, bytes);
  int r = 0;
  for (size_t done = 0; done < bytes && r == 0;) {
    size_t n = bytes - done;
    if (piece && n > piece) n = piece;
    char *to = piece ? g->pinned : (char *)host + done;
    r = g->t->copy_to_host(to, (const char *)src + done, n, g->stream);
    if (r == 0) r = g->t->stream_sync(g->stream);
    if (r == 0 && piece) memcpy((char *)host + done, g->pinned, n);
    done += n;
  }
  if (r != 0) gpu_fault(g, r, "copying from the device");
}

static void gpu_copy(Device *d, void *dst, const void *src, size_t bytes) {
  Gpu *g = d->impl;
  if (bytes == 0) return;
  gpu_enter(g);
  int r = g->t->copy_on_device(dst, src, bytes, g->stream);
  if (r != 0) gpu_fault(g, r, "copying on the device");
}

static void gpu_sync(Device *d) {
  Gpu *g = d->impl;
  gpu_enter(g);
  int r = g->t->stream_sync(g->stream);
  if (r != 0) gpu_fault(g, r, "running kernels");
}

// ---- launches

// A start and an end event for one launch, with room for them in
// g->timings; false when they cannot be had (the launch then goes untimed).
static bool gpu_timing_new(Gpu *g, Timing *t) {
  if (g->ntimings == g->timings_cap) {
    int cap = g->timings_cap ? 2 * g->timings_cap : 64;
    Timing *grown = realloc(g->timings, (size_t)cap * sizeof *grown);
    if (!grown) return false;
    g->timings = grown;
    g->timings_cap = cap;
  }
  t->start = t->end = NULL;
  if (g->t->event_create(g->t, &t->start) == 0 && g->t->event_create(g->t, &t->end) == 0) return true;
  if (t->start) g->t->event_destroy(t->start);
  return false;
}

// Writes a run's seed and step where the kernels read them, in stream
// order, unless they are there already. The copy is from pageable memory,
// which the driver has read when the call returns.
static int gpu_rng_write(Gpu *g, uint64_t seed, uint64_t step) {
  if (g->rng_set && g->rng_host[0] == seed && g->rng_host[1] == step) return 0;
  g->rng_host[0] = seed, g->rng_host[1] = step;
  int r = g->t->copy_to_device(g->rng, g->rng_host, sizeof g->rng_host, g->stream);
  g->rng_set = r == 0;
  return r;
}

// Queues kernel fn over [0, count) with the grid the ingot gives launch li
// (or, while capturing, records it). The kernel's parameters, in order: the
// buffer table, count, the run's {seed, step} and the error word, all the
// same from run to run but for the words rng points to.
static int64_t gpu_launch(Device *d, void *fn, void *bufs, uint32_t li, int64_t count, uint64_t seed, uint64_t step) {
  Gpu *g = d->impl;
  const GpuDriver *t = g->t;
  const IngotGpuLaunch *gl = g->ig ? ingot_gpu_launch(g->ig, li) : NULL;
  if (count <= 0) return 0;
  if (!gl || !fn) {
    rt_fail(SMELT_ERR_RUNTIME, "launch %u has no GPU kernel in the ingot", li);
    return -1;
  }
  gpu_enter(g);
  int w = g->capturing ? 0 : gpu_rng_write(g, seed, step);   // a graph's runs write theirs
  if (w != 0) {
    rt_fail(SMELT_ERR_RUNTIME, "%s error while writing the seed for a launch: %s", t->vendor, gpu_why(g, w));
    return -1;
  }
  void *params[] = {&bufs, &count, &g->rng, &g->error};
  Timing tm;
  bool timed = g->profiling && gpu_timing_new(g, &tm);
  if (timed) t->event_record(tm.start, g->stream);
  int r = t->launch_kernel(fn, gl->grid, 1, 1, gl->block, 1, 1, gl->shared_bytes, g->stream, params, NULL);
  if (timed && r == 0 && t->event_record(tm.end, g->stream) == 0) {
    g->timings[g->ntimings++] = tm;
  } else if (timed) {
    t->event_destroy(tm.start);
    t->event_destroy(tm.end);
  }
  if (r != 0) {
    rt_fail(SMELT_ERR_RUNTIME, "%s launch failed: %s", t->vendor, gpu_why(g, r));
    return -1;
  }
  return 0;
}

// Waits for the stream, then reads and clears the error word.
static int64_t gpu_take_error(Device *d) {
  Gpu *g = d->impl;
  const GpuDriver *t = g->t;
  gpu_enter(g);
  int r = t->stream_sync(g->stream);
  if (r != 0) {
    rt_fail(SMELT_ERR_RUNTIME, "%s error while running kernels: %s", t->vendor, gpu_why(g, r));
    return -1;
  }
  if (g->fault[0]) {
    rt_fail(SMELT_ERR_RUNTIME, "%s", g->fault);
    g->fault[0] = '\0';
    return -1;
  }
  int64_t word = 0;
  r = t->copy_to_host(&word, g->error, sizeof word, g->stream);
  if (r == 0) r = t->stream_sync(g->stream);
  if (r == 0 && word) r = t->memset_zero(t, g->error, sizeof word, g->stream);
  if (r != 0) {
    rt_fail(SMELT_ERR_RUNTIME, "%s error while reading the kernels' error word: %s", t->vendor, gpu_why(g, r));
    return -1;
  }
  return word;
}

// ---- graphs: an entry's launches captured once and replayed per run

enum { CAPTURE_THREAD_LOCAL = 1 };   // the same mode in both ABIs

static int gpu_capture_begin(Device *d) {
  Gpu *g = d->impl;
  const GpuDriver *t = g->t;
  if (!t->stream_begin_capture) return -1;
  if (g->profiling) return 0;   // each launch is to be timed
  gpu_enter(g);
  if (t->stream_begin_capture(g->stream, CAPTURE_THREAD_LOCAL) != 0) return -1;
  g->capturing = true;
  return 1;
}

// The captured launches as an executable graph (the graph it was made from
// is not needed once instantiated), or NULL.
static void *gpu_capture_end(Device *d) {
  Gpu *g = d->impl;
  const GpuDriver *t = g->t;
  void *graph = NULL, *exec = NULL;
  gpu_enter(g);
  g->capturing = false;
  int r = t->stream_end_capture(g->stream, &graph);
  if (r == 0 && graph) r = t->graph_instantiate(&exec, graph, 0);
  if (graph) t->graph_destroy(graph);
  return r == 0 ? exec : NULL;
}

static int gpu_graph_run(Device *d, void *graph, uint64_t seed, uint64_t step) {
  Gpu *g = d->impl;
  const GpuDriver *t = g->t;
  if (g->profiling) return 1;
  gpu_enter(g);
  int r = gpu_rng_write(g, seed, step);
  if (r == 0) r = t->graph_launch(graph, g->stream);
  if (r != 0) {
    rt_fail(SMELT_ERR_RUNTIME, "%s graph launch failed: %s", t->vendor, gpu_why(g, r));
    return -1;
  }
  return 0;
}

static void gpu_graph_free(Device *d, void *graph) {
  Gpu *g = d->impl;
  gpu_enter(g);
  g->t->stream_sync(g->stream);   // a queued replay may still run it
  g->t->graph_exec_destroy(graph);
}

static void gpu_profile(Device *d, bool on) {
  Gpu *g = d->impl;
  g->profiling = on;
}

// Waits, writes the milliseconds of each timed launch (up to max), and
// forgets them all.
static int gpu_profile_take(Device *d, double *ms, int max) {
  Gpu *g = d->impl;
  gpu_enter(g);
  int r = g->t->stream_sync(g->stream);
  int n = 0;
  if (r != 0) gpu_fault(g, r, "running kernels");
  for (int i = 0; r == 0 && i < g->ntimings && n < max; i++) {
    float t = 0;
    g->t->event_elapsed(&t, g->timings[i].start, g->timings[i].end);
    ms[n++] = t;
  }
  gpu_timings_clear(g);
  return n;
}

// ---- opening

void gpu_bind_graphs(GpuDriver *t, const char *const names[6]) {
  void *p[6];
  for (int i = 0; i < 6; i++)
    if (!(p[i] = dlsym(t->lib, names[i]))) return;
  *(void **)&t->stream_begin_capture = p[0];
  *(void **)&t->stream_end_capture = p[1];
  *(void **)&t->graph_instantiate = p[2];
  *(void **)&t->graph_launch = p[3];
  *(void **)&t->graph_exec_destroy = p[4];
  *(void **)&t->graph_destroy = p[5];
}

void *gpu_library_symbol(const GpuDriver *t, const char *name, const char *fallback) {
  void *p = dlsym(t->lib, name);
  if (!p && fallback) p = dlsym(t->lib, fallback);
  if (!p) rt_fail(SMELT_ERR_NO_DEVICE, "the %s %s is too old: it lacks %s", t->vendor, t->library, name);
  return p;
}

// The first element of the loader's search path ld_path (LD_LIBRARY_PATH,
// elements separated by ':' or ';') that is empty or relative, in elem; false
// when every element is absolute. The loader reads an empty element as the
// current folder, so with one a library planted there (or any library the
// GPU library needs) would be loaded.
bool gpu_search_path_unsafe(const char *ld_path, char *elem, size_t n) {
  for (const char *p = ld_path; p;) {
    size_t len = strcspn(p, ":;");
    if (len == 0 || p[0] != '/') {
      snprintf(elem, n, "%.*s", (int)len, p);
      return true;
    }
    p = p[len] ? p + len + 1 : NULL;
  }
  return false;
}

// Loads the library: the path in t->library_env when it is set, else the
// first of t->libraries that loads, by the loader's rules. Refused while
// LD_LIBRARY_PATH has an empty or relative element (gpu_search_path_unsafe).
static smelt_status gpu_library_open(GpuDriver *t) {
  const char *path = getenv(t->library_env), *ld_path = getenv("LD_LIBRARY_PATH");
  char elem[256];
  if (ld_path && gpu_search_path_unsafe(ld_path, elem, sizeof elem))
    return rt_fail(SMELT_ERR_NO_DEVICE,
                   "no %s %s: LD_LIBRARY_PATH has %s%s%s%s, which makes the loader search the current folder; smelt "
                   "loads no GPU library then (remove it, or give absolute folders only)",
                   t->vendor, t->library, elem[0] ? "the relative element '" : "an empty element", elem, elem[0] ? "'" : "",
                   elem[0] ? "" : " (a leading, trailing or doubled ':')");
  int flags = RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE;
  if (path && path[0]) t->lib = dlopen(path, flags);
  for (int i = 0; !(path && path[0]) && t->libraries[i] && !t->lib; i++) t->lib = dlopen(t->libraries[i], flags);
  if (!t->lib)
    return rt_fail(SMELT_ERR_NO_DEVICE, "no %s %s: %s cannot be loaded (%s)", t->vendor, t->library,
                   path && path[0] ? path : t->libraries[0], t->install_hint);
  return SMELT_OK;
}

// Initializes the driver and finds the device of g->ordinal: its name and
// architecture.
static smelt_status gpu_device_find(Gpu *g) {
  const GpuDriver *t = g->t;
  int r = t->init(0);
  if (r != 0) return rt_fail(SMELT_ERR_NO_DEVICE, "no %s device: %s failed: %s", t->vendor, t->init_symbol,
                                gpu_why(g, r));
  int count = 0;
  r = t->device_count(&count);
  if (r != 0 && r == t->result_count_none) count = 0;
  else if (r != 0) return rt_fail(SMELT_ERR_NO_DEVICE, "no %s device: %s", t->vendor, gpu_why(g, r));
  if (g->ordinal < 0 || g->ordinal >= count)
    return rt_fail(SMELT_ERR_NO_DEVICE, "no %s device %d: the %s sees %d device%s", t->vendor, g->ordinal, t->library,
                   count, count == 1 ? "" : "s");
  r = t->set_device ? t->set_device(g->ordinal) : 0;
  if (r == 0) r = t->device_get(&g->dev, g->ordinal);
  if (r == 0) r = t->device_name(g->gpu, sizeof g->gpu, g->dev);
  if (r == 0) r = t->arch(t, g->dev, g->arch, sizeof g->arch);
  if (r != 0)
    return rt_fail(SMELT_ERR_NO_DEVICE, "%s %s:%d: %s", t->query_failed, t->prefix, g->ordinal, gpu_why(g, r));
  if (t->arch_from_driver) snprintf(g->name, sizeof g->name, "%s:%d (%s, %s)", t->prefix, g->ordinal, g->gpu, g->arch);
  else snprintf(g->name, sizeof g->name, "%s:%d (%s)", t->prefix, g->ordinal, g->gpu);
  return SMELT_OK;
}

// The context (CUDA's primary context, shared with any CUDA runtime code in
// the process), the stream, and the error word (with the seed and step after it).
static smelt_status gpu_context_open(Gpu *g) {
  const GpuDriver *t = g->t;
  if (t->context_retain) {
    void *ctx = NULL;
    int r = t->context_retain(&ctx, g->dev);
    if (r != 0)
      return rt_fail(SMELT_ERR_NO_DEVICE, "cannot open a context on %s:%d: %s", t->prefix, g->ordinal, gpu_why(g, r));
    g->ctx = ctx;
  }
  g->live = true;
  gpu_enter(g);
  int r = t->stream_create(&g->stream, STREAM_NON_BLOCKING);
  if (r != 0) {
    g->stream = NULL;
    return rt_fail(SMELT_ERR_NO_DEVICE, "cannot create a stream on %s:%d: %s", t->prefix, g->ordinal, gpu_why(g, r));
  }
  smelt_status st = gpu_mem_new(g, sizeof(int64_t) + sizeof g->rng_host, &g->error);
  if (st == SMELT_OK) g->rng = (char *)g->error + sizeof(int64_t);
  return st;
}

smelt_status gpu_device_new(const GpuDriver *table, size_t size, int ordinal, Device **out) {
  *out = NULL;
  Device *d = calloc(1, sizeof *d);
  Gpu *g = calloc(1, sizeof *g);
  GpuDriver *t = calloc(1, size);
  if (!d || !g || !t) {
    free(d);
    free(g);
    free(t);
    return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory creating the %s device", table->vendor);
  }
  *t = *table;
  g->t = t;
  g->ordinal = ordinal;
  smelt_status st = gpu_library_open(t);
  if (st == SMELT_OK) st = t->bind(t);
  if (st == SMELT_OK) st = gpu_device_find(g);
  if (st == SMELT_OK) st = gpu_context_open(g);
  if (st != SMELT_OK) {
    gpu_release(g);
    free(d);
    return st;
  }
  *d = (Device){.name = g->name, .arch = g->arch[0] ? g->arch : NULL, .load_code = gpu_load_code,
                .symbol = gpu_symbol, .alloc = gpu_alloc, .free = gpu_free, .copy_in = gpu_copy_in,
                .copy_out = gpu_copy_out, .copy = gpu_copy, .sync = gpu_sync, .launch = gpu_launch,
                .take_error = gpu_take_error, .profile = gpu_profile, .profile_take = gpu_profile_take,
                .destroy = gpu_destroy, .impl = g};
  if (t->stream_begin_capture)
    d->capture_begin = gpu_capture_begin, d->capture_end = gpu_capture_end, d->graph_run = gpu_graph_run,
    d->graph_free = gpu_graph_free;
  *out = d;
  return SMELT_OK;
}
