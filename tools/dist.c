// dist.c: the ranks of a data-parallel `smelt train` (docs/distributed.md).
//
// Open MPI's library is opened at run time (dlopen of libmpi.so.40), not
// linked: `make` needs no MPI headers or libraries, one smelt binary runs
// alone or under mpirun, and the runtime library keeps its dependencies
// (libc, libm, pthreads, libdl). The cost is that the few entry points and
// handles used here are declared by hand for Open MPI's ABI, in which a
// communicator, a datatype and an operation are pointers to predefined
// objects the library exports (ompi_mpi_comm_world, ompi_mpi_double,
// ompi_mpi_op_sum) and MPI_IN_PLACE is the address 1. Other MPIs (MPICH's
// libmpi.so.12 has integer handles) are not supported.
#include "tools.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void *MpiHandle;   // MPI_Comm, MPI_Datatype, MPI_Op: pointers in Open MPI

static struct {
  void *lib;
  int (*init)(int *, char ***);
  int (*comm_rank)(MpiHandle, int *);
  int (*comm_size)(MpiHandle, int *);
  int (*allreduce)(const void *, void *, int, MpiHandle, MpiHandle, MpiHandle);
  int (*bcast)(void *, int, MpiHandle, int, MpiHandle);
  int (*abort)(MpiHandle, int);
  int (*finalize)(void);
  MpiHandle world, dbl, byte, sum;
  int rank, size;
} mpi = {.size = 1};

#define MPI_IN_PLACE_OMPI ((void *)1)

int dist_env_size(void) {
  const char *s = getenv("OMPI_COMM_WORLD_SIZE");
  long n = s ? strtol(s, NULL, 10) : 1;
  return n > 1 && n < 1 << 20 ? (int)n : 1;
}

int dist_env_rank(void) {
  const char *s = getenv("OMPI_COMM_WORLD_RANK");
  long r = s ? strtol(s, NULL, 10) : 0;
  return r > 0 && r < 1 << 20 ? (int)r : 0;
}

// Each symbol of Open MPI's library that the ranks use; false with a message
// naming the first one missing.
static bool resolve(char *err, size_t errlen) {
  struct { void **slot; const char *name; } syms[] = {
      {(void **)&mpi.init, "MPI_Init"},           {(void **)&mpi.comm_rank, "MPI_Comm_rank"},
      {(void **)&mpi.comm_size, "MPI_Comm_size"}, {(void **)&mpi.allreduce, "MPI_Allreduce"},
      {(void **)&mpi.abort, "MPI_Abort"},         {(void **)&mpi.finalize, "MPI_Finalize"},
      {(void **)&mpi.bcast, "MPI_Bcast"},         {&mpi.byte, "ompi_mpi_byte"},
      {&mpi.world, "ompi_mpi_comm_world"},        {&mpi.dbl, "ompi_mpi_double"},
      {&mpi.sum, "ompi_mpi_op_sum"},
  };
  for (size_t i = 0; i < sizeof syms / sizeof *syms; i++)
    if (!(*syms[i].slot = dlsym(mpi.lib, syms[i].name)))
      return snprintf(err, errlen, "libmpi.so.40 has no '%s': not Open MPI's library?", syms[i].name), false;
  return true;
}

int dist_init(int *rank, int *size, char *err, size_t errlen) {
  *rank = 0, *size = 1;
  int want = dist_env_size();
  if (want == 1) return 0;
  // global: Open MPI's own plugins, opened by the library, look up its symbols
  mpi.lib = dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL);
  if (!mpi.lib)
    return snprintf(err, errlen, "started by mpirun as one of %d ranks, but Open MPI's library does not open (%s); "
                    "install libopenmpi3 (Debian: libopenmpi-dev)", want, dlerror()), -1;
  if (!resolve(err, errlen)) return -1;
  int argc = 0;
  char **argv = NULL;
  if (mpi.init(&argc, &argv) != 0 || mpi.comm_rank(mpi.world, &mpi.rank) != 0 ||
      mpi.comm_size(mpi.world, &mpi.size) != 0)
    return snprintf(err, errlen, "MPI_Init failed"), -1;
  if (mpi.size != want)
    return snprintf(err, errlen, "MPI has %d ranks where mpirun said %d", mpi.size, want), -1;
  *rank = mpi.rank, *size = mpi.size;
  return 0;
}

int dist_sum(double *v, int64_t n, char *err, size_t errlen) {
  if (mpi.size == 1) return 0;
  enum { CHUNK = 1 << 28 };   // MPI counts are ints
  for (int64_t at = 0; at < n; at += CHUNK) {
    int m = (int)(n - at < CHUNK ? n - at : CHUNK);
    if (mpi.allreduce(MPI_IN_PLACE_OMPI, v + at, m, mpi.dbl, mpi.sum, mpi.world) != 0)
      return snprintf(err, errlen, "MPI_Allreduce of %d values failed", m), -1;
  }
  return 0;
}

int dist_broadcast(void *p, size_t n, int root, char *err, size_t errlen) {
  if (mpi.size == 1) return 0;
  if (n > 1u << 30) return snprintf(err, errlen, "a broadcast of %zu bytes is more than MPI counts", n), -1;
  if (mpi.bcast(p, (int)n, mpi.byte, root, mpi.world) != 0)
    return snprintf(err, errlen, "MPI_Bcast of %zu bytes failed", n), -1;
  return 0;
}

void dist_abort(int code) {
  if (mpi.size > 1) mpi.abort(mpi.world, code);
}

void dist_finalize(void) {
  if (mpi.size > 1) mpi.finalize();
  mpi.size = 1;
}
