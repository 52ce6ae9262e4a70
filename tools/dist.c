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
#include <time.h>

#include "util.h"

typedef void *MpiHandle;   // MPI_Comm, MPI_Datatype, MPI_Op, MPI_Request: pointers in Open MPI

static struct {
  void *lib;
  int (*init)(int *, char ***);
  int (*comm_rank)(MpiHandle, int *);
  int (*comm_size)(MpiHandle, int *);
  int (*allreduce)(const void *, void *, int, MpiHandle, MpiHandle, MpiHandle);
  int (*bcast)(void *, int, MpiHandle, int, MpiHandle);
  int (*iallreduce)(const void *, void *, int, MpiHandle, MpiHandle, MpiHandle, MpiHandle *);
  int (*isend)(const void *, int, MpiHandle, int, int, MpiHandle, MpiHandle *);
  int (*irecv)(void *, int, MpiHandle, int, int, MpiHandle, MpiHandle *);
  int (*test)(MpiHandle *, int *, void *);   // MPI_STATUS_IGNORE is NULL
  int (*cancel)(MpiHandle *);
  MpiHandle ping;     // the posted receive of rank 0's ping (ranks other than 0)
  bool ping_posted;
  int (*abort)(MpiHandle, int);
  int (*finalize)(void);
  MpiHandle world, dbl, byte, sum;
  int rank, size;
} mpi = {.size = 1};

#define MPI_IN_PLACE_OMPI ((void *)1)
// Tags of the messages beside the exchange: each rank's step, sent to rank 0
// as it enters; rank 0's ping of a rank and its answer.
enum { STEP_TAG = 0x736d, PING_TAG, PONG_TAG };
#define PING_WAIT 2.0   // seconds rank 0 waits for the answers to its pings

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
      {(void **)&mpi.iallreduce, "MPI_Iallreduce"}, {(void **)&mpi.isend, "MPI_Isend"},
      {(void **)&mpi.irecv, "MPI_Irecv"},         {(void **)&mpi.test, "MPI_Test"},
      {(void **)&mpi.cancel, "MPI_Cancel"},
      {&mpi.world, "ompi_mpi_comm_world"},        {&mpi.dbl, "ompi_mpi_double"},
      {&mpi.sum, "ompi_mpi_op_sum"},
  };
  for (size_t i = 0; i < sizeof syms / sizeof *syms; i++)
    if (!(*syms[i].slot = dlsym(mpi.lib, syms[i].name)))
      return snprintf(err, errlen, "libmpi.so.40 has no '%s': not Open MPI's library?", syms[i].name), false;
  return true;
}

static void ping_post(void);

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
  if (mpi.rank) ping_post();
  return 0;
}

static double seconds_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

// A rank other than 0 answers rank 0's ping while it waits in an exchange,
// so that rank 0, waiting in vain, can tell the ranks that wait with it from
// those that are stopped or hung. The ping's receive stays posted.
static void ping_post(void) {
  static char ping;
  mpi.ping_posted = mpi.irecv(&ping, 1, mpi.byte, 0, PING_TAG, mpi.world, &mpi.ping) == 0;
}

static void ping_answer(void) {
  static const char pong = 1;
  int flag = 0;
  if (!mpi.ping_posted || mpi.test(&mpi.ping, &flag, NULL) != 0 || !flag) return;
  MpiHandle sent;   // eager (one byte); every rank ends soon after a ping
  mpi.isend(&pong, 1, mpi.byte, 0, PONG_TAG, mpi.world, &sent);
  ping_post();
}

// Polls every request of req not yet done[] until all are, or until the
// deadline (0: none) has passed; whether they all completed.
static bool wait_all(MpiHandle *req, bool *done, int n, double deadline) {
  for (long polls = 0;; polls++) {
    bool all = true;
    for (int i = 0; i < n; i++) {
      int flag = 0;
      if (!done[i] && mpi.test(&req[i], &flag, NULL) == 0 && flag) done[i] = true;
      all &= done[i];
    }
    if (all) return true;
    if (mpi.rank) ping_answer();
    if (deadline > 0 && seconds_now() > deadline) return false;
    // spin a little (a step's exchange is usually under way), then let the
    // other ranks on this machine have the core
    if (polls > 1000) nanosleep(&(struct timespec){0, 100000}, NULL);
  }
}

// Rank 0: the ranks that do not answer a ping within a few seconds, as
// "1, 3" ("" when every one does).
static void silent_ranks(char *buf, size_t len) {
  int peers = mpi.size - 1;
  MpiHandle *req = xcalloc((size_t)peers * 2, sizeof *req);
  bool *done = xcalloc((size_t)peers * 2, sizeof *done);
  char *pong = xcalloc((size_t)peers, 1), ping = 1;
  for (int r = 1; r <= peers; r++) {
    if (mpi.irecv(&pong[r - 1], 1, mpi.byte, r, PONG_TAG, mpi.world, &req[r - 1]) != 0) done[r - 1] = true;
    if (mpi.isend(&ping, 1, mpi.byte, r, PING_TAG, mpi.world, &req[peers + r - 1]) != 0) done[peers + r - 1] = true;
  }
  wait_all(req, done, peers * 2, seconds_now() + PING_WAIT);
  size_t at = 0;
  buf[0] = 0;
  for (int r = 1; r <= peers && at < len; r++)
    if (!done[r - 1]) at += (size_t)snprintf(buf + at, len - at, "%s%d", at ? ", " : "", r);
  free(req);
  free(done);
  free(pong);
}

int dist_sum(double *v, int64_t n, int64_t step, double timeout, char *err, size_t errlen) {
  if (mpi.size == 1) return 0;
  enum { CHUNK = 1 << 28 };   // MPI counts are ints
  int chunks = (int)((n + CHUNK - 1) / CHUNK), peers = mpi.rank ? 1 : mpi.size - 1, total = peers + chunks;
  MpiHandle *req = xcalloc((size_t)total, sizeof *req);
  bool *done = xcalloc((size_t)total, sizeof *done);
  int64_t *steps = xcalloc((size_t)mpi.size, sizeof *steps);
  int rc = -1;
  steps[0] = step;
  for (int r = 1; r < mpi.size && !mpi.rank; r++)
    if (mpi.irecv(&steps[r], sizeof *steps, mpi.byte, r, STEP_TAG, mpi.world, &req[r - 1]) != 0) goto fail;
  if (mpi.rank && mpi.isend(&steps[0], sizeof *steps, mpi.byte, 0, STEP_TAG, mpi.world, &req[0]) != 0) goto fail;
  for (int c = 0; c < chunks; c++) {
    int m = (int)(n - (int64_t)c * CHUNK < CHUNK ? n - (int64_t)c * CHUNK : CHUNK);
    if (mpi.iallreduce(MPI_IN_PLACE_OMPI, v + (int64_t)c * CHUNK, m, mpi.dbl, mpi.sum, mpi.world, &req[peers + c]) != 0) {
      snprintf(err, errlen, "MPI_Iallreduce of %d values failed", m);
      goto done;
    }
  }
  // the other ranks give rank 0 the time to ask who is silent, and to say so
  double wait = timeout > 0 && mpi.rank ? timeout + 2 * PING_WAIT : timeout;
  if (!wait_all(req, done, total, wait > 0 ? seconds_now() + wait : 0)) {
    char who[256];
    if (mpi.rank) {
      snprintf(err, errlen, "the exchange did not complete within %g s, and rank 0 did not end it (is rank 0 stopped, or "
               "hung?)", timeout);
      goto done;
    }
    silent_ranks(who, sizeof who);
    if (who[0])
      snprintf(err, errlen, "the exchange did not complete within %g s: rank%s %s do%s not answer (stopped, or hung)",
               timeout, strchr(who, ',') ? "s" : "", who, strchr(who, ',') ? "" : "es");
    else
      snprintf(err, errlen, "the exchange did not complete within %g s, though every rank waits in it", timeout);
    goto done;
  }
  for (int r = 1; r < mpi.size && !mpi.rank; r++)
    if (steps[r] != step) {
      snprintf(err, errlen, "rank %d is at step %lld where rank 0 is at step %lld", r, (long long)steps[r], (long long)step);
      goto done;
    }
  rc = 0;
  goto done;
fail:
  snprintf(err, errlen, "MPI could not send a rank's step to rank 0");
done:
  free(req);
  free(done);
  free(steps);
  return rc;
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
  if (mpi.ping_posted) {   // no receive may be pending at MPI_Finalize
    int flag = 0;
    mpi.cancel(&mpi.ping);
    while (mpi.test(&mpi.ping, &flag, NULL) == 0 && !flag) {}
    mpi.ping_posted = false;
  }
  if (mpi.size > 1) mpi.finalize();
  mpi.size = 1;
}
