// cpu.c: the CPU device.
//
// Code: the ingot's host shared object is written to an anonymous in-memory
// file (memfd) and loaded with dlopen through /proc/self/fd, so nothing is
// left on disk. Launches: the output range [0, count) is cut into chunks that
// a fixed pool of worker threads and the calling thread take in turn; each
// thread has its own error word, merged after the launch.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "runtime.h"

#define MAX_THREADS 256
// A launch whose cost record puts it under the work threshold
// (CPU_INLINE_WORK) runs on the calling thread: waking a worker costs more
// than such a launch saves. Iterations are elements or whole tiles (a
// thousand times the work), so without a cost record a launch of fewer
// than INLINE_BELOW iterations runs inline, and chunks hold MIN_CHUNK
// iterations at least; with one, a chunk holds CHUNK_WORK of work at least,
// so a matmul of a few large tiles (batch-1 inference: 4 or 7) is still
// shared among the threads.
#define INLINE_BELOW 64
#define MIN_CHUNK 16
#define CHUNK_WORK 16384

typedef struct {
  const smelt_ingot *ig;  // the loaded ingot, for its launches' cost records
  int64_t inline_work;    // launches of less work (cpu_launch_work) run inline
  void *lib;
  int lib_fd;            // the memfd behind lib, open while lib is loaded
  pthread_t workers[MAX_THREADS];
  int nworkers;
  pthread_mutex_t lock;
  pthread_cond_t work, done;
  // the launch in progress, guarded by lock
  KernelFn fn;
  char **bufs;
  int64_t count, chunk, next, finished, nchunks;
  uint64_t seed, step;
  int64_t error;
  uint64_t generation;   // bumped per launch so sleeping workers see new work
  bool quit;
  // profiling: the wall time of each launch since it was switched on
  bool profiling;
  double *times;
  int ntimes, cap_times;
} Cpu;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

// Takes chunks of the current launch until none is left.
static void run_chunks(Cpu *c) {
  int64_t ctx[3] = {(int64_t)c->seed, (int64_t)c->step, 0};
  for (;;) {
    pthread_mutex_lock(&c->lock);
    int64_t k = c->next < c->nchunks ? c->next++ : -1;
    KernelFn fn = c->fn;
    char **bufs = c->bufs;
    int64_t chunk = c->chunk, count = c->count;
    pthread_mutex_unlock(&c->lock);
    if (k < 0) break;
    int64_t begin = k * chunk, end = begin + chunk < count ? begin + chunk : count;
    fn(bufs, begin, end, ctx);
    pthread_mutex_lock(&c->lock);
    if (ctx[2] && !c->error) c->error = ctx[2];
    if (++c->finished == c->nchunks) pthread_cond_broadcast(&c->done);
    pthread_mutex_unlock(&c->lock);
  }
}

// Launches come in quick succession while a step runs, so a worker spins a
// little before it sleeps: waking a sleeping thread costs more than many small
// kernels take.
#define SPIN 20000

static void *worker(void *arg) {
  Cpu *c = arg;
  uint64_t seen = 0;
  for (;;) {
    for (int i = 0; i < SPIN && __atomic_load_n(&c->generation, __ATOMIC_ACQUIRE) == seen &&
                    !__atomic_load_n(&c->quit, __ATOMIC_ACQUIRE); i++)
      __builtin_ia32_pause();
    pthread_mutex_lock(&c->lock);
    while (!c->quit && c->generation == seen) pthread_cond_wait(&c->work, &c->lock);
    if (c->quit) {
      pthread_mutex_unlock(&c->lock);
      return NULL;
    }
    seen = c->generation;
    pthread_mutex_unlock(&c->lock);
    run_chunks(c);
  }
}

static int64_t run_launch(Cpu *c, void *fn, char **bufs, int64_t count, uint64_t seed, uint64_t step, bool inl,
                          uint64_t work);

uint64_t cpu_launch_work(const IngotCost *cost) {
  return cost->bytes_read + cost->bytes_written + cost->flops / CPU_FLOPS_PER_BYTE;
}

// The launch's work, or 0 for none known: a cost record of zero work says
// nothing (an ingot without estimates).
static uint64_t known_work(const IngotCost *cost) {
  return cost && cost->bytes_read + cost->bytes_written + cost->flops ? cpu_launch_work(cost) : 0;
}

bool cpu_runs_inline(const IngotCost *cost, int64_t count, int64_t inline_work) {
  uint64_t work = known_work(cost);
  if (count < 2) return true;
  return work ? work < (uint64_t)inline_work : count < INLINE_BELOW;
}

static int64_t cpu_launch(Device *d, void *fn, void *table, uint32_t li, int64_t count, uint64_t seed, uint64_t step) {
  Cpu *c = d->impl;
  const IngotCost *cost = c->ig ? ingot_cost(c->ig, li) : NULL;
  bool inl = c->nworkers == 0 || cpu_runs_inline(cost, count, c->inline_work);
  uint64_t work = known_work(cost);
  if (!c->profiling) return run_launch(c, fn, table, count, seed, step, inl, work);
  double t0 = now_ms();
  int64_t err = run_launch(c, fn, table, count, seed, step, inl, work);
  if (c->ntimes == c->cap_times) {
    int cap = c->cap_times ? 2 * c->cap_times : 256;
    double *t = realloc(c->times, sizeof *t * (size_t)cap);
    if (!t) return err;
    c->times = t, c->cap_times = cap;
  }
  c->times[c->ntimes++] = now_ms() - t0;
  return err;
}

static void cpu_profile(Device *d, bool on) { ((Cpu *)d->impl)->profiling = on; }

static int cpu_profile_take(Device *d, double *ms, int max) {
  Cpu *c = d->impl;
  int n = c->ntimes < max ? c->ntimes : max;
  memcpy(ms, c->times, sizeof *ms * (size_t)n);
  c->ntimes = 0;
  return n;
}

// Each iteration computes its own outputs whole (a row's reduction is one
// iteration), so how [0, count) is cut into chunks, or whether it is cut at
// all, changes no bits.
static int64_t run_launch(Cpu *c, void *fn, char **bufs, int64_t count, uint64_t seed, uint64_t step, bool inl,
                          uint64_t work) {
  if (count <= 0) return 0;
  if (inl) {
    int64_t ctx[3] = {(int64_t)seed, (int64_t)step, 0};
    ((KernelFn)fn)(bufs, 0, count, ctx);
    return ctx[2];
  }
  int64_t parts = (int64_t)(c->nworkers + 1) * 4;
  int64_t chunk = (count + parts - 1) / parts, least = MIN_CHUNK;
  if (work) {
    uint64_t each = work / (uint64_t)count;
    least = each >= CHUNK_WORK ? 1 : each ? (int64_t)(CHUNK_WORK / each) : count;
  }
  if (chunk < least) chunk = least;
  pthread_mutex_lock(&c->lock);
  c->fn = (KernelFn)fn;
  c->bufs = bufs;
  c->count = count;
  c->chunk = chunk;
  c->nchunks = (count + chunk - 1) / chunk;
  c->next = c->finished = 0;
  c->seed = seed;
  c->step = step;
  c->error = 0;
  __atomic_store_n(&c->generation, c->generation + 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&c->work);
  pthread_mutex_unlock(&c->lock);
  run_chunks(c);
  pthread_mutex_lock(&c->lock);
  while (c->finished < c->nchunks) pthread_cond_wait(&c->done, &c->lock);
  int64_t err = c->error;
  pthread_mutex_unlock(&c->lock);
  return err;
}

static smelt_status cpu_load_code(Device *d, const smelt_ingot *ig) {
  Cpu *c = d->impl;
  uint64_t size;
  const void *code = ingot_section(ig, SEC_HOST_CODE, &size);
  int fd = memfd_create("smelt-kernels", MFD_CLOEXEC);
  if (fd < 0) return rt_fail(SMELT_ERR_IO, "cannot create an in-memory file for the kernels");
  const char *p = code;
  for (size_t done = 0; done < size;) {
    ssize_t n = write(fd, p + done, size - done);
    if (n <= 0) {
      close(fd);
      return rt_fail(SMELT_ERR_IO, "cannot write the kernels to memory");
    }
    done += (size_t)n;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  // The fd stays open while the library is loaded: the dynamic loader knows
  // a library by its path, and a second ingot's memfd must not reuse the
  // number (and so the name) of this one's.
  c->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!c->lib) close(fd);
  else c->lib_fd = fd;
  if (!c->lib) return rt_fail(SMELT_ERR_FORMAT, "cannot load the ingot's host code: %s", dlerror());
  c->ig = ig;
  return SMELT_OK;
}

static void *cpu_symbol(Device *d, const char *name) {
  Cpu *c = d->impl;
  return c->lib ? dlsym(c->lib, name) : NULL;
}

static void *cpu_alloc(Device *d, size_t bytes) {
  (void)d;
  void *p = NULL;
  if (posix_memalign(&p, 64, bytes ? bytes : 64)) return NULL;
  memset(p, 0, bytes);
  return p;
}

static void cpu_free(Device *d, void *p) {
  (void)d;
  free(p);
}

static void cpu_copy(Device *d, void *dst, const void *src, size_t bytes) {
  (void)d;
  memcpy(dst, src, bytes);
}

static void cpu_copy_out(Device *d, void *host, const void *src, size_t bytes) { cpu_copy(d, host, src, bytes); }

static void cpu_destroy(Device *d) {
  Cpu *c = d->impl;
  pthread_mutex_lock(&c->lock);
  __atomic_store_n(&c->quit, true, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&c->work);
  pthread_mutex_unlock(&c->lock);
  for (int i = 0; i < c->nworkers; i++) pthread_join(c->workers[i], NULL);
  pthread_mutex_destroy(&c->lock);
  pthread_cond_destroy(&c->work);
  pthread_cond_destroy(&c->done);
  if (c->lib) dlclose(c->lib);
  if (c->lib) close(c->lib_fd);
  free(c->times);
  free(c);
  free(d);
}

smelt_status cpu_device_new(int threads, Device **out) {
  *out = NULL;
  if (threads <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n > 0 ? (int)n : 1;
  }
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  int64_t inline_work = CPU_INLINE_WORK;
  const char *env = getenv("SMELT_CPU_INLINE_WORK");
  if (env && *env) {
    char *end;
    errno = 0;
    long long v = strtoll(env, &end, 10);
    if (*end || v < 0 || errno)
      return rt_fail(SMELT_ERR_INVALID_ARGUMENT, "SMELT_CPU_INLINE_WORK takes a whole number of bytes, not '%s'", env);
    inline_work = v;
  }
  Device *d = calloc(1, sizeof *d);
  Cpu *c = calloc(1, sizeof *c);
  if (!d || !c) {
    free(d);
    free(c);
    return rt_fail(SMELT_ERR_OUT_OF_MEMORY, "out of memory creating the CPU device");
  }
  *d = (Device){.name = "cpu", .load_code = cpu_load_code, .symbol = cpu_symbol, .alloc = cpu_alloc,
                .free = cpu_free, .copy_in = cpu_copy, .copy_out = cpu_copy_out, .copy = cpu_copy,
                .launch = cpu_launch, .profile = cpu_profile, .profile_take = cpu_profile_take,
                .destroy = cpu_destroy, .impl = c};
  c->inline_work = inline_work;
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->work, NULL);
  pthread_cond_init(&c->done, NULL);
  for (int i = 0; i < threads - 1; i++) {   // the calling thread is the last worker
    if (pthread_create(&c->workers[i], NULL, worker, c) != 0) break;
    c->nworkers++;
  }
  *out = d;
  return SMELT_OK;
}
