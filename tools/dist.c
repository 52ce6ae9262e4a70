// dist.c: the ranks of a data-parallel `smelt train` (docs/distributed.md).
//
// Open MPI's library is opened at run time (dlopen of libmpi.so.40), not
// linked: `make` needs no MPI headers or libraries, one smelt binary runs
// alone or under mpirun, and the runtime library keeps its dependencies
// (libc, libm, pthreads, libdl). The cost is that the few entry points and
// handles used here are declared by hand for Open MPI's ABI, in which a
// communicator, a datatype and a request are pointers (the predefined ones
// are objects the library exports: ompi_mpi_comm_world, ompi_mpi_double)
// and MPI_STATUS_IGNORE is NULL. Other MPIs (MPICH's libmpi.so.12 has
// integer handles) are not supported.
//
// The exchange is a ring of non-blocking sends and receives that every rank
// polls against a deadline, not MPI_Allreduce: a blocking collective cannot
// time out, and Open MPI's MPI_Iallreduce on 2 ranks (a reduce, then a
// broadcast) made a step of an 8.4M-parameter model about 30% slower, where
// the ring is as fast as MPI_Allreduce (docs/distributed.md).
//
// Who is missing, past a deadline: rank 0 pings the others (a rank that waits
// answers), and the others ask rank 0 whether it is there. Rank 0 answers
// while it waits and while it saves or evaluates (dist_while_busy runs that
// work on a thread of its own, the main thread answering): so a rank 0 that
// is slow is waited for, and one that is stopped or hung is found.
#include "tools.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

typedef void *MpiHandle;   // MPI_Comm, MPI_Datatype, MPI_Request: pointers in Open MPI

static struct {
  void *lib;
  int (*init_thread)(int *, char ***, int, int *);
  int (*comm_rank)(MpiHandle, int *);
  int (*comm_size)(MpiHandle, int *);
  int (*isend)(const void *, int, MpiHandle, int, int, MpiHandle, MpiHandle *);
  int (*irecv)(void *, int, MpiHandle, int, int, MpiHandle, MpiHandle *);
  int (*test)(MpiHandle *, int *, void *);
  int (*cancel)(MpiHandle *);
  int (*abort)(MpiHandle, int);
  int (*finalize)(void);
  MpiHandle world, dbl, byte;
  int rank, size;
  MpiHandle ping;       // the posted receive of rank 0's ping (ranks other than 0)
  bool ping_posted;
  MpiHandle *asks;      // rank 0: the posted receive of each other rank's ask (asks[r - 1])
  char *ask_bytes;
  double *spare;        // the segment a round of the ring receives
  int64_t spare_len;
} mpi = {.size = 1};

// Tags: each rank's step, sent to rank 0 as it enters an exchange; rank 0's
// ping of a rank and its answer; a rank's ask of rank 0 and its answer; the
// ring's segments; a broadcast.
enum { STEP_TAG = 0x736d, PING_TAG, PONG_TAG, ASK_TAG, ANSWER_TAG, RING_TAG, BCAST_TAG };
#define PING_WAIT 2.0   // seconds a rank waits for the answers to its pings or its ask
#define MPI_THREAD_FUNNELED 1   // Open MPI's value: threads, of which only the main one calls MPI

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
      {(void **)&mpi.init_thread, "MPI_Init_thread"}, {(void **)&mpi.comm_rank, "MPI_Comm_rank"},
      {(void **)&mpi.comm_size, "MPI_Comm_size"},
      {(void **)&mpi.isend, "MPI_Isend"},         {(void **)&mpi.irecv, "MPI_Irecv"},
      {(void **)&mpi.test, "MPI_Test"},           {(void **)&mpi.cancel, "MPI_Cancel"},
      {(void **)&mpi.abort, "MPI_Abort"},         {(void **)&mpi.finalize, "MPI_Finalize"},
      {&mpi.world, "ompi_mpi_comm_world"},        {&mpi.dbl, "ompi_mpi_double"},
      {&mpi.byte, "ompi_mpi_byte"},
  };
  for (size_t i = 0; i < sizeof syms / sizeof *syms; i++)
    if (!(*syms[i].slot = dlsym(mpi.lib, syms[i].name)))
      return snprintf(err, errlen, "libmpi.so.40 has no '%s': not Open MPI's library?", syms[i].name), false;
  return true;
}

static void ping_post(void);
static void asks_post(void);

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
  int argc = 0, provided = 0;
  char **argv = NULL;
  // the runtime's threads never call MPI, nor does dist_while_busy's
  if (mpi.init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != 0 || mpi.comm_rank(mpi.world, &mpi.rank) != 0 ||
      mpi.comm_size(mpi.world, &mpi.size) != 0)
    return snprintf(err, errlen, "MPI_Init_thread failed"), -1;
  if (provided < MPI_THREAD_FUNNELED)
    return snprintf(err, errlen, "this Open MPI does not allow threads beside the one that calls it"), -1;
  if (mpi.size != want)
    return snprintf(err, errlen, "MPI has %d ranks where mpirun said %d", mpi.size, want), -1;
  *rank = mpi.rank, *size = mpi.size;
  if (mpi.rank) ping_post();
  else asks_post();
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

// Rank 0 posts a receive of each other rank's ask, and answers those that
// have come (that it is there), posting the receive again.
static void asks_post(void) {
  int peers = mpi.size - 1;
  mpi.asks = xcalloc((size_t)peers, sizeof *mpi.asks);
  mpi.ask_bytes = xcalloc((size_t)peers, 1);
  for (int r = 1; r <= peers; r++)
    if (mpi.irecv(&mpi.ask_bytes[r - 1], 1, mpi.byte, r, ASK_TAG, mpi.world, &mpi.asks[r - 1]) != 0) mpi.asks[r - 1] = NULL;
}

static void asks_answer(void) {
  static const char here = 1;
  for (int r = 1; r < mpi.size && mpi.asks; r++) {
    int flag = 0;
    if (!mpi.asks[r - 1] || mpi.test(&mpi.asks[r - 1], &flag, NULL) != 0 || !flag) continue;
    MpiHandle sent;   // eager (one byte), as the pong
    mpi.isend(&here, 1, mpi.byte, r, ANSWER_TAG, mpi.world, &sent);
    if (mpi.irecv(&mpi.ask_bytes[r - 1], 1, mpi.byte, r, ASK_TAG, mpi.world, &mpi.asks[r - 1]) != 0) mpi.asks[r - 1] = NULL;
  }
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
    else asks_answer();
    if (deadline > 0 && seconds_now() > deadline) return false;
    // spin a little (a step's exchange is usually under way), then let the
    // other ranks on this machine have the core
    if (polls > 1000) nanosleep(&(struct timespec){0, 100000}, NULL);
  }
}

// A rank other than 0 whose deadline has passed: whether rank 0 answers its
// ask within PING_WAIT (then rank 0 is there, and it is rank 0 that ends a
// wait that does not complete).
static bool rank0_answers(void) {
  static const char ask = 1;
  static char answer;
  MpiHandle req[2];
  bool done[2] = {false, false};
  if (mpi.irecv(&answer, 1, mpi.byte, 0, ANSWER_TAG, mpi.world, &req[0]) != 0) return false;
  if (mpi.isend(&ask, 1, mpi.byte, 0, ASK_TAG, mpi.world, &req[1]) != 0) done[1] = true;
  return wait_all(req, done, 2, seconds_now() + PING_WAIT) || done[0];
}

// wait_all against a deadline of timeout seconds from now (0: none); a rank
// other than 0 past it asks rank 0, and waits another timeout while rank 0
// answers. Whether every request completed.
static bool wait_all_for(MpiHandle *req, bool *done, int n, double timeout) {
  for (;;) {
    if (wait_all(req, done, n, timeout > 0 ? seconds_now() + timeout : 0)) return true;
    if (!mpi.rank || !rank0_answers()) return false;
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

// The message of a wait for `what` that timed out: who does not answer (rank
// 0 pings the others; the others have found rank 0 silent).
static void say_missing(const char *what, double timeout, char *err, size_t errlen) {
  char who[256] = "0";
  if (!mpi.rank) silent_ranks(who, sizeof who);
  if (who[0])
    snprintf(err, errlen, "%s did not complete within %g s: rank%s %s do%s not answer (stopped, or hung)", what, timeout,
             strchr(who, ',') ? "s" : "", who, strchr(who, ',') ? "" : "es");
  else
    snprintf(err, errlen, "%s did not complete within %g s, though every rank waits in it", what, timeout);
}

// Segment k of n values cut in `parts`: its first value and length.
static void segment(int64_t n, int parts, int k, int64_t *first, int64_t *len) {
  int64_t q = n / parts, r = n % parts;
  *first = k * q + (k < r ? k : r);
  *len = q + (k < r);
}

// One round of the ring: send segment `out` of v to the next rank and
// receive segment `in` from the one before, into dst (NULL: into v), in
// pieces MPI counts hold; false with a message when it fails, or without
// one when the wait times out.
static bool ring_round(double *v, int64_t n, int out, int in, double *dst, double timeout, char *err, size_t errlen) {
  enum { PIECE = 1 << 27 };
  int64_t so, sl, ro, rl;
  segment(n, mpi.size, out, &so, &sl);
  segment(n, mpi.size, in, &ro, &rl);
  int next = (mpi.rank + 1) % mpi.size, prev = (mpi.rank + mpi.size - 1) % mpi.size;
  int pieces = (int)((sl + PIECE - 1) / PIECE + (rl + PIECE - 1) / PIECE);
  MpiHandle *req = xcalloc((size_t)pieces + 1, sizeof *req);
  bool *done = xcalloc((size_t)pieces + 1, sizeof *done), ok = true;
  int k = 0;
  double *to = dst ? dst : v + ro;
  for (int64_t at = 0; ok && at < rl; at += PIECE, k++)
    ok = mpi.irecv(to + at, (int)(rl - at < PIECE ? rl - at : PIECE), mpi.dbl, prev, RING_TAG, mpi.world, &req[k]) == 0;
  for (int64_t at = 0; ok && at < sl; at += PIECE, k++)
    ok = mpi.isend(v + so + at, (int)(sl - at < PIECE ? sl - at : PIECE), mpi.dbl, next, RING_TAG, mpi.world, &req[k]) == 0;
  if (!ok) snprintf(err, errlen, "MPI could not send to rank %d or receive from rank %d", next, prev);
  if (ok && !wait_all_for(req, done, k, timeout)) ok = false, err[0] = 0;   // the caller says who is missing
  free(req);
  free(done);
  return ok;
}

// The sum of v over the ranks, in place, as a ring: N - 1 rounds in which
// each rank adds the segment its predecessor sends to its own (after them,
// rank r holds the whole sum of segment r + 1), then N - 1 rounds passing
// the sums on. Each rank sends and receives 2 (N - 1) / N of v, and every
// value is summed once, in an order fixed by N, by one rank, so that every
// rank ends with the same bits, run after run.
static bool ring_sum(double *v, int64_t n, double timeout, char *err, size_t errlen) {
  int N = mpi.size, r = mpi.rank;
  int64_t most = n / N + 1;
  if (mpi.spare_len < most) {
    free(mpi.spare);
    mpi.spare = xmalloc(sizeof(double) * (size_t)most);
    mpi.spare_len = most;
  }
  for (int s = 0; s < N - 1; s++) {
    int out = (r - s + N) % N, in = (r - s - 1 + 2 * N) % N;
    if (!ring_round(v, n, out, in, mpi.spare, timeout, err, errlen)) return false;
    int64_t first, len;
    segment(n, N, in, &first, &len);
    for (int64_t i = 0; i < len; i++) v[first + i] += mpi.spare[i];
  }
  for (int s = 0; s < N - 1; s++)
    if (!ring_round(v, n, (r + 1 - s + N) % N, (r - s + N) % N, NULL, timeout, err, errlen)) return false;
  return true;
}

int dist_sum(double *v, int64_t n, int64_t step, double timeout, char *err, size_t errlen) {
  if (mpi.size == 1) return 0;
  int peers = mpi.rank ? 1 : mpi.size - 1;
  MpiHandle *req = xcalloc((size_t)peers, sizeof *req);
  bool *done = xcalloc((size_t)peers, sizeof *done);
  int64_t *steps = xcalloc((size_t)mpi.size, sizeof *steps);
  int rc = -1;
  if (errlen) err[0] = 0;
  steps[0] = step;
  for (int r = 1; r < mpi.size && !mpi.rank; r++)
    if (mpi.irecv(&steps[r], sizeof *steps, mpi.byte, r, STEP_TAG, mpi.world, &req[r - 1]) != 0) goto fail;
  if (mpi.rank && mpi.isend(&steps[0], sizeof *steps, mpi.byte, 0, STEP_TAG, mpi.world, &req[0]) != 0) goto fail;
  bool ok = ring_sum(v, n, timeout, err, errlen) && wait_all_for(req, done, peers, timeout);
  if (!ok && err[0]) goto done;   // MPI itself failed
  if (!ok) {
    say_missing("the exchange", timeout, err, errlen);
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

// Sends from rank 0 to each other rank, polled as the exchange is (a
// blocking MPI_Bcast would wait for ever on a stopped rank 0).
int dist_broadcast(void *p, size_t n, double timeout, char *err, size_t errlen) {
  if (mpi.size == 1) return 0;
  if (n > 1u << 30) return snprintf(err, errlen, "a broadcast of %zu bytes is more than MPI counts", n), -1;
  int peers = mpi.rank ? 1 : mpi.size - 1, rc = 0;
  MpiHandle *req = xcalloc((size_t)peers, sizeof *req);
  bool *done = xcalloc((size_t)peers, sizeof *done);
  for (int r = 1; r < mpi.size && !mpi.rank && !rc; r++)
    rc = mpi.isend(p, (int)n, mpi.byte, r, BCAST_TAG, mpi.world, &req[r - 1]);
  if (mpi.rank) rc = mpi.irecv(p, (int)n, mpi.byte, 0, BCAST_TAG, mpi.world, &req[0]);
  if (rc) snprintf(err, errlen, "MPI could not %s a broadcast of %zu bytes", mpi.rank ? "receive" : "send", n), rc = -1;
  else if (!wait_all_for(req, done, peers, timeout)) {
    say_missing("rank 0's broadcast", timeout, err, errlen);
    rc = -1;
  }
  free(req);
  free(done);
  return rc;
}

// Rank 0's work that the others wait for (a save, an evaluation): run on a
// thread of its own while this one answers the others' asks, so that they
// can tell it from a stopped rank 0.
typedef struct {
  int (*work)(void *);
  void *arg;
  int rc;
  atomic_bool finished;
} BusyWork;

static void *busy_thread(void *p) {
  BusyWork *b = p;
  b->rc = b->work(b->arg);
  atomic_store(&b->finished, true);
  return NULL;
}

int dist_while_busy(int (*work)(void *), void *arg) {
  pthread_t t;
  BusyWork b = {work, arg, 0, false};
  if (mpi.size == 1 || mpi.rank || pthread_create(&t, NULL, busy_thread, &b) != 0) return work(arg);
  while (!atomic_load(&b.finished)) {
    asks_answer();
    nanosleep(&(struct timespec){0, 1000000}, NULL);
  }
  pthread_join(t, NULL);
  return b.rc;
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
  for (int r = 1; r < mpi.size && mpi.asks; r++) {
    int flag = 0;
    if (!mpi.asks[r - 1]) continue;
    mpi.cancel(&mpi.asks[r - 1]);
    while (mpi.test(&mpi.asks[r - 1], &flag, NULL) == 0 && !flag) {}
  }
  free(mpi.asks);
  free(mpi.ask_bytes);
  mpi.asks = NULL, mpi.ask_bytes = NULL;
  free(mpi.spare);
  mpi.spare = NULL, mpi.spare_len = 0;
  if (mpi.size > 1) mpi.finalize();
  mpi.size = 1;
}
