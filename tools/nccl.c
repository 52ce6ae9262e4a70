// nccl.c: NCCL (CUDA) and RCCL (HIP), the GPUs' collectives, opened at run
// time (docs/distributed.md).
//
// Like Open MPI (dist.c) and the GPU drivers (runtime/cuda.c, hip.c), the
// library is opened with dlopen, not linked: one smelt binary runs on
// machines with and without it, `make` needs neither. It lives with the
// ranks, not in the runtime's GPU device: a communicator spans processes,
// its id travels over MPI (dist_broadcast), and the runtime's floor knows
// nothing of ranks. The device would only lend it device addresses and its
// stream.
//
// The few types used are declared from NCCL's ABI (nccl.h, which RCCL
// shares): results are ints (ncclSuccess 0), a communicator is an opaque
// pointer, a unique id 128 bytes passed by value.
#include "tools.h"
#include "util.h"

#include <dlfcn.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu.h"

enum { NCCL_FLOAT32 = 7, NCCL_SUM = 0, NCCL_AVG = 4 };

struct NcclLib {
  void *lib;
  char path[512];
  const char *name;   // "NCCL", "RCCL": for messages
  int (*get_version)(int *version);
  int (*get_unique_id)(NcclId *id);
  int (*comm_init_rank)(void **comm, int nranks, NcclId id, int rank);
  int (*all_reduce)(const void *send, void *recv, size_t count, int dtype, int op, void *comm, void *stream);
  int (*comm_destroy)(void *comm);
  int (*comm_get_async_error)(void *comm, int *result);
  const char *(*get_error_string)(int result);
  const char *(*get_last_error)(void *comm);   // optional (NCCL 2.13+)
};

// Where the library is looked for, in order, after SMELT_NCCL_LIBRARY: the
// loader's own search (LD_LIBRARY_PATH, the cache), then the toolkits'
// folders, which the cache often lacks.
static const char *const cuda_places[] = {"libnccl.so.2", "/usr/local/cuda/lib64/libnccl.so.2",
                                          "/usr/local/cuda/lib/libnccl.so.2", NULL};
static const char *const cuda_globs[] = {"/usr/local/cuda-*/lib64/libnccl.so.2", "/usr/local/cuda-*/lib/libnccl.so.2", NULL};
static const char *const hip_places[] = {"librccl.so.1", "librccl.so", "/opt/rocm/lib/librccl.so.1", "/opt/rocm/lib/librccl.so",
                                         NULL};
static const char *const hip_globs[] = {"/opt/rocm-*/lib/librccl.so.1", NULL};

static bool try_open(NcclLib *n, const char *path) {
  n->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (n->lib) snprintf(n->path, sizeof n->path, "%s", path);
  return n->lib != NULL;
}

// The newest toolkit first: glob sorts by name, cuda-13.0 after cuda-12.8.
static bool try_globs(NcclLib *n, const char *const *patterns) {
  for (int i = 0; patterns[i]; i++) {
    glob_t g;
    if (glob(patterns[i], 0, NULL, &g) != 0) continue;
    bool ok = false;
    for (size_t k = g.gl_pathc; k-- > 0 && !ok;) ok = try_open(n, g.gl_pathv[k]);
    globfree(&g);
    if (ok) return true;
  }
  return false;
}

static bool bind(NcclLib *n, char *err, size_t errlen) {
  struct { void **slot; const char *sym; bool optional; } syms[] = {
      {(void **)&n->get_version, "ncclGetVersion", false},
      {(void **)&n->get_unique_id, "ncclGetUniqueId", false},
      {(void **)&n->comm_init_rank, "ncclCommInitRank", false},
      {(void **)&n->all_reduce, "ncclAllReduce", false},
      {(void **)&n->comm_destroy, "ncclCommDestroy", false},
      {(void **)&n->comm_get_async_error, "ncclCommGetAsyncError", false},
      {(void **)&n->get_error_string, "ncclGetErrorString", false},
      {(void **)&n->get_last_error, "ncclGetLastError", true},
  };
  for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
    *syms[i].slot = dlsym(n->lib, syms[i].sym);
    if (!*syms[i].slot && !syms[i].optional)
      return snprintf(err, errlen, "%s has no '%s': not %s's library, or one older than 2.0", n->path, syms[i].sym,
                      n->name), false;
  }
  return true;
}

NcclLib *nccl_open(bool hip, char *err, size_t errlen) {
  NcclLib *n = xcalloc(1, sizeof *n);
  n->name = hip ? "RCCL" : "NCCL";
  const char *env = getenv("SMELT_NCCL_LIBRARY"), *ld_path = getenv("LD_LIBRARY_PATH");
  char elem[256];
  if (ld_path && gpu_search_path_unsafe(ld_path, elem, sizeof elem)) {
    snprintf(err, errlen, "%s is not loaded: LD_LIBRARY_PATH has %s%s%s, which makes the loader search the current "
             "folder (give absolute folders only)", n->name, elem[0] ? "the relative element '" : "an empty element", elem,
             elem[0] ? "'" : "");
    free(n);
    return NULL;
  }
  const char *const *places = hip ? hip_places : cuda_places;
  bool ok = env && env[0] ? try_open(n, env) : false;
  for (int i = 0; !(env && env[0]) && !ok && places[i]; i++) ok = try_open(n, places[i]);
  if (!(env && env[0]) && !ok) ok = try_globs(n, hip ? hip_globs : cuda_globs);
  if (!ok) {
    if (env && env[0])
      snprintf(err, errlen, "SMELT_NCCL_LIBRARY=%s cannot be loaded (%s)", env, dlerror());
    else
      snprintf(err, errlen, "%s is not installed: no %s in the loader's path, %s or %s", n->name, places[0],
               hip ? "/opt/rocm/lib" : "/usr/local/cuda/lib64", hip ? "/opt/rocm-*/lib" : "/usr/local/cuda-*/lib{64,}");
    free(n);
    return NULL;
  }
  if (!bind(n, err, errlen)) {
    nccl_close(n);
    return NULL;
  }
  return n;
}

void nccl_close(NcclLib *n) {
  if (!n) return;
  dlclose(n->lib);
  free(n);
}

const char *nccl_path(const NcclLib *n) { return n->path; }

// NCCL's result r as a message, with the library's last error where it has one.
static int failed(const NcclLib *n, void *comm, const char *what, int r, char *err, size_t errlen) {
  const char *why = n->get_error_string(r), *last = n->get_last_error ? n->get_last_error(comm) : NULL;
  snprintf(err, errlen, "%s: %s failed: %s%s%s%s", n->name, what, why ? why : "unknown error", last && last[0] ? " (" : "",
           last && last[0] ? last : "", last && last[0] ? ")" : "");
  return -1;
}

int nccl_version(const NcclLib *n, int *major, int *minor, int *patch, char *err, size_t errlen) {
  int v = 0, r = n->get_version(&v);
  if (r != 0) return failed(n, NULL, "ncclGetVersion", r, err, errlen);
  // 2.9 and later: major * 10000 + minor * 100 + patch; before: * 1000, * 100
  int base = v >= 10000 ? 10000 : 1000;
  *major = v / base, *minor = v % base / 100, *patch = v % 100;
  return 0;
}

int nccl_unique_id(const NcclLib *n, NcclId *id, char *err, size_t errlen) {
  int r = n->get_unique_id(id);
  return r ? failed(n, NULL, "ncclGetUniqueId", r, err, errlen) : 0;
}

int nccl_comm_join(const NcclLib *n, int rank, int size, void **comm, char *err, size_t errlen) {
  NcclId id;
  memset(&id, 0, sizeof id);
  if (rank == 0 && nccl_unique_id(n, &id, err, errlen)) return -1;
  if (dist_broadcast(&id, sizeof id, DIST_TIMEOUT_DEFAULT, err, errlen)) return -1;
  int r = n->comm_init_rank(comm, size, id, rank);
  return r ? failed(n, NULL, "ncclCommInitRank", r, err, errlen) : 0;
}

int nccl_mean_f32(const NcclLib *n, void *comm, float *values, size_t count, void *stream, char *err, size_t errlen) {
  int r = n->all_reduce(values, values, count, NCCL_FLOAT32, NCCL_AVG, comm, stream);
  return r ? failed(n, comm, "ncclAllReduce", r, err, errlen) : 0;
}

int nccl_comm_check(const NcclLib *n, void *comm, char *err, size_t errlen) {
  int async = 0, r = n->comm_get_async_error(comm, &async);
  if (r) return failed(n, comm, "ncclCommGetAsyncError", r, err, errlen);
  return async ? failed(n, comm, "a collective", async, err, errlen) : 0;
}

void nccl_comm_destroy(const NcclLib *n, void *comm) {
  if (comm) n->comm_destroy(comm);
}
