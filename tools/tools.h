// tools.h: the commands that run ingots (smelt train, eval, run, sample,
// bench, inspect; smelt-rt). They sit on libsmeltrt alone: no compiler
// object, no LLVM, so a GPU host runs them without a compiler.
#ifndef SMELT_TOOLS_H
#define SMELT_TOOLS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "smelt.h"

// The SHA-256 (64 hex digits) that every ingot a command opens must have
// (--expect-sha256), or NULL to pin nothing; set once by the command line.
extern const char *tools_expect_sha256;
// smelt_ingot_open_verified with tools_expect_sha256: every tool opens its
// ingots through it.
smelt_status tools_ingot_open(const char *path, smelt_ingot **out);
// Whether sessions launch GPU kernels one by one instead of replaying
// captured graphs (--no-graphs); set once by the command line.
extern bool tools_no_graphs;
// smelt_session_new with tools_no_graphs: every tool makes its sessions so.
smelt_status tools_session_new(const smelt_ingot *ig, const char *device, int threads, smelt_session **out);

// ---------------------------------------------------------------- trainer.c
// `smelt train` and `smelt eval` on a built ingot.

typedef struct {
  const char *ingot;
  const char *source;       // the model file named on the command line (the ingot's source), or NULL
  const char *device;       // "auto", "cpu", ...
  int threads;              // 0: one per core
  int64_t epochs, steps;    // override the train block (0: keep)
  const char *checkpoint;   // path, or NULL for none
  const char *weights;      // the parameters to start from (smelt_load_weights), or NULL
  int64_t checkpoint_every; // 0: the train block's
  bool resume;
  bool force;               // start over even when the checkpoint exists (replacing it)
  int64_t keep;             // checkpoints kept: the newest and keep - 1 older ones (PATH.1, ...); 0 or 1: the newest
  int64_t stop_after;       // end this run after this many steps (0: run to the end)
  bool check_finite;        // check the state after every step, not only before saves
  int64_t log_every;        // steps between log lines when not on a terminal
  const char *log_dir;      // a folder for scalars.csv (each step's scalars), or NULL
  const char *split;        // eval: "test", "val" or "train"
  double dist_timeout;      // data parallelism: seconds a rank waits for the others in an exchange (0: without end)
  int64_t dist_check_every; // data parallelism: check every N steps that the ranks' state is the same (0: never)
} TrainOptions;

// Whether a training run may start: not over an existing checkpoint unless
// it resumes it or is forced (a typo must not lose a trained model at the
// first save). 0, or 1 after a message.
int train_may_start(const TrainOptions *o);
// The seconds a rank waits for the others in an exchange unless told
// (--dist-timeout): far beyond the ranks' differences in a step.
#define DIST_TIMEOUT_DEFAULT 300
int train_run(const TrainOptions *o);
// What an interrupt at when (e.g. "while building the model") loses of the
// run o: the note for interrupt_note, in a buffer of its own.
const char *train_interrupt_note(const TrainOptions *o, const char *when);
int eval_run(const TrainOptions *o);
// `smelt run`: one run of an entry (o->split names it; default "infer") on the
// tensors of the file inputs; outputs go to the tensor file outputs, or are
// printed when it is NULL.
int run_main(const TrainOptions *o, const char *inputs, const char *outputs);

// ---------------------------------------------------------------- interrupt.c
// The line a SIGINT or SIGTERM prints ("smelt: interrupted NOTE") before the
// process ends as the signal ends it, for the stretches outside the training
// loop (building, loading data); NULL says nothing. The first note installs
// the handler over whatever disposition is there, which it calls after.
void interrupt_note(const char *note);

// ---------------------------------------------------------------- dist.c
// The ranks of data-parallel training (docs/distributed.md): Open MPI opened
// at run time, only when mpirun started this process as one of several.

// The ranks mpirun says it started (OMPI_COMM_WORLD_SIZE), or 1 when this
// process runs alone; asks no library.
int dist_env_size(void);
// This process's rank by mpirun's word (OMPI_COMM_WORLD_RANK), 0 when alone.
int dist_env_rank(void);
// Joins the ranks (MPI_Init) when dist_env_size() > 1; rank 0 and size 1
// otherwise. 0, or -1 with a message.
int dist_init(int *rank, int *size, char *err, size_t errlen);
// The element-wise sum of v over every rank, in place (every rank ends with
// the same values), in the exchange of a step; rank 0 checks that every rank
// is at the same step. A rank waits at most timeout seconds (0: without
// end) for the others; then it fails, rank 0 naming the ranks that did not
// arrive, the others rank 0 if it does not answer them. 0, or -1 with a
// message.
int dist_sum(double *v, int64_t n, int64_t step, double timeout, char *err, size_t errlen);
// Rank 0's n bytes at p, to every rank, waiting as dist_sum does. 0, or -1
// with a message.
int dist_broadcast(void *p, size_t n, double timeout, char *err, size_t errlen);
// work(arg), which rank 0 does while the others wait for it (a save, an
// evaluation): on rank 0 of several, on a thread of its own while this one
// tells the others that rank 0 is there. work's result.
int dist_while_busy(int (*work)(void *), void *arg);
// Ends every rank (MPI_Abort), so that no rank waits on one that failed.
void dist_abort(int code);
void dist_finalize(void);

// ---------------------------------------------------------------- nccl.c
// NCCL (CUDA) or RCCL (HIP), the GPUs' collectives, opened at run time. The
// training exchange does not use them yet (docs/distributed.md): the GPU
// device lends no device addresses or stream to the tools.

typedef struct NcclLib NcclLib;
typedef struct {
  char bytes[128];   // NCCL_UNIQUE_ID_BYTES
} NcclId;

// Opens the library: SMELT_NCCL_LIBRARY when set, else libnccl.so.2 (hip:
// librccl.so) by the loader's rules, else in the CUDA (ROCm) toolkits'
// folders; NULL with a message naming what was looked for.
NcclLib *nccl_open(bool hip, char *err, size_t errlen);
void nccl_close(NcclLib *n);
const char *nccl_path(const NcclLib *n);   // the file opened
// Each of these returns 0, or -1 with NCCL's message for its result.
int nccl_version(const NcclLib *n, int *major, int *minor, int *patch, char *err, size_t errlen);
int nccl_unique_id(const NcclLib *n, NcclId *id, char *err, size_t errlen);
// The communicator of the MPI ranks: rank 0's unique id, broadcast over
// MPI, and every rank's ncclCommInitRank (which needs its GPU current).
int nccl_comm_join(const NcclLib *n, int rank, int size, void **comm, char *err, size_t errlen);
// The mean over the ranks of count f32 values in device memory, in place,
// queued on stream.
int nccl_mean_f32(const NcclLib *n, void *comm, float *values, size_t count, void *stream, char *err, size_t errlen);
// A collective's failure reported since (ncclCommGetAsyncError).
int nccl_comm_check(const NcclLib *n, void *comm, char *err, size_t errlen);
void nccl_comm_destroy(const NcclLib *n, void *comm);

// ---------------------------------------------------------------- profile.c
// Kernels timed on a device (events on GPUs, the clock on the CPU), each the
// median of many runs after warm-up, with the bytes and FLOPs the compiler
// recorded per launch.

// What a profile writes besides the table: the table as JSON instead
// (json), and a Chrome trace of the timed runs' kernels to the file trace.
typedef struct {
  bool json;
  const char *trace;     // NULL: none
} ProfileOutput;
// A per-kernel table of one entry: time, share, bytes, GB/s, GFLOP/s; out
// (NULL: the table alone) adds JSON or a trace.
int gpu_profile(const char *path, const char *entry, const char *device, int runs, const ProfileOutput *out);
// The "infer" entry of each ingot timed on device against a 1 GiB
// device-to-device copy; prints a Markdown table. 0, or 1 after an error.
int gpu_bench(const char *device, int n, char **ingots);
// `smelt bench --entry=E`: the latency of whole runs of entry E (random float
// inputs, 20 warm-up runs): median, p99, mean and min over `runs` runs.
// batch: the binding of that batch of an ingot of several bindings (0: the
// ingot's own).
int latency_bench(const char *path, const char *entry, const char *device, int threads, int runs, long long batch);

// ---------------------------------------------------------------- sample.c
// `smelt sample`: bytes drawn one at a time from a character-level model's
// infer entry (built with B = 1), printed as they come.
typedef struct {
  const char *ingot, *checkpoint;   // checkpoint: trained weights, or NULL
  const char *device;
  int threads;
  const char *prompt;               // the text the sample continues
  int64_t length;                   // bytes to draw
  double temperature;               // 0: always the most likely byte
  int top_k;                        // 0: every byte
  uint64_t seed;
} SampleOptions;
int sample_run(const SampleOptions *o);

// ---------------------------------------------------------------- inspect.c
// Prints what an ingot holds (sections, meta, entries, tensors; with all,
// temporaries and kernels too). Returns the exit status.
int inspect_ingot(const char *path, FILE *out, bool all);

// ---------------------------------------------------------------- tfevents.c
// TensorBoard event files of --log-dir: a new DIR/events.out.tfevents.TIME.
// HOST.PID per run (NULL with a message in err when it cannot be made), one
// event of n scalars (tags[i] = values[i]) per step; false or -1 when a
// write fails.
typedef struct TfEvents TfEvents;
TfEvents *tfevents_open(const char *dir, char *err, size_t errlen);
bool tfevents_step(TfEvents *t, int64_t step, const char *const *tags, const float *values, int n);
int tfevents_close(TfEvents *t);

// ---------------------------------------------------------------- plot.c
// `smelt plot DIR -o FILE.svg`: the loss (and evaluation) curves of the
// --log-dir DIR (or of a scalars.csv named directly) as an SVG; 0, 1 after an
// error, 2 for a bad -o.
int plot_main(const char *dir, const char *output);

// ---------------------------------------------------------------- gpu_numerics.c
// Every kernel of the ingot at path on device against the CPU device; prints
// a report; 0 when all agree.
int numerics_check(const char *path, const char *device);

#endif
