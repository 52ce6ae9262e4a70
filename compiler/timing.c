// timing.c: milliseconds and runs per compiler stage (smelt build --time).
//
// The counters are process-wide and atomic because the code generators may
// run in several threads at once; a stage's time is then the sum over its
// threads, which can exceed the wall time.
#include "compiler.h"

#include <stdatomic.h>
#include <time.h>

static const char *const stage_names[TIME_COUNT] = {
#define X(id, name) name,
    TIME_STAGES(X)
#undef X
};

static _Atomic long long stage_ns[TIME_COUNT];
static _Atomic int stage_runs[TIME_COUNT];

double time_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void time_add(TimeStage s, double since) {
  atomic_fetch_add(&stage_ns[s], (long long)((time_now() - since) * 1e9));
  atomic_fetch_add(&stage_runs[s], 1);
}

int time_runs(TimeStage s) { return atomic_load(&stage_runs[s]); }

double time_ms(TimeStage s) { return (double)atomic_load(&stage_ns[s]) * 1e-6; }

void time_reset(void) {
  for (int s = 0; s < TIME_COUNT; s++) atomic_store(&stage_ns[s], 0), atomic_store(&stage_runs[s], 0);
}

void time_print(FILE *out, double since) {
  fprintf(out, "time per stage (ms, summed over threads; runs):\n");
  for (int s = 0; s < TIME_COUNT; s++)
    if (time_runs((TimeStage)s)) fprintf(out, "  %-30s %10.1f  %d\n", stage_names[s], time_ms((TimeStage)s), time_runs((TimeStage)s));
  fprintf(out, "  %-30s %10.1f\n", "wall", (time_now() - since) * 1e3);
}
