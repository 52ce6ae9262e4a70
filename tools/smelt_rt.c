// smelt_rt.c: smelt-rt, the runtime-only tool for machines without LLVM.
//
// A GPU host needs no compiler: ingots are built elsewhere and carried. This
// tool links the tools and the runtime only (tests/test_layers.c checks it).
//
//   smelt-rt train INGOT [--device=D] [--epochs=N] [--steps=N] [--threads=N]
//                  [--checkpoint=PATH [--resume | --force] [--keep=N]]
//   smelt-rt eval INGOT [--device=D] [--checkpoint=PATH]
//   smelt-rt check INGOT... [--device=D]        every kernel against the CPU device
//   smelt-rt bench INGOT... [--device=D]        infer kernels against the copy bandwidth
//   smelt-rt profile INGOT [--entry=E] [--device=D] [--runs=N] [--json] [--trace=FILE]   per-kernel table
//   smelt-rt latency INGOT [--entry=E] [--device=D] [--runs=N] [--threads=N]   whole runs: median, p99
//
// Each takes --expect-sha256=HEX: the ingot opens only when its SHA-256 is HEX,
// and --no-graphs: GPU kernels launched one by one, not replayed from graphs.
#include <stdio.h>
#include <string.h>

#include "options.h"
#include "sha256.h"
#include "smelt.h"
#include "tools.h"

static const CommandSpec commands[] = {
    {"train", "INGOT", "run the ingot's train block", 1, 1},
    {"eval", "INGOT", "loss and accuracy on the test data", 1, 1},
    {"check", "INGOT...", "every kernel on the device against the CPU device", 1, -1},
    {"bench", "INGOT...", "the infer kernels' time, bandwidth and FLOP rate, against a\n"
                          "device-to-device copy", 1, -1},
    {"profile", "INGOT", "per-kernel times of an entry", 1, 1},
    {"latency", "INGOT", "the latency of whole runs of an entry (default infer): median, p99", 1, 1},
};

static const OptSpec specs[] = {
    {"device", 0, OPT_STRING, "*", "D", "auto (default: CUDA, else HIP, else the CPU), cpu, cuda[:N], hip[:N]", 0, 0,
     NULL},
    {"epochs", 0, OPT_INT, "train", "N", "override the train block's length", 1, 1e300, NULL},
    {"steps", 0, OPT_INT, "train", "N", "override the train block's length in steps", 1, 1e300, NULL},
    {"threads", 0, OPT_INT, "train eval latency", "N", "CPU threads, at most 256 (default: one per core)", 1, 256, NULL},
    {"checkpoint", 0, OPT_STRING, "train eval", "PATH", "train: save here; eval: load trained weights", 0, 0, NULL},
    {"resume", 0, OPT_FLAG, "train", NULL, "continue from --checkpoint (from step 0 while it does not exist yet)", 0, 0, NULL},
    {"force", 0, OPT_FLAG, "train", NULL, "start over even when --checkpoint exists, replacing it", 0, 0, NULL},
    {"keep", 0, OPT_INT, "train", "N", "keep N checkpoints: the newest, and the N - 1 before it as\nPATH.1, PATH.2, ... (1)", 1,
     1000, NULL},
    {"check-finite", 0, OPT_FLAG, "train", NULL, "check the parameters and optimizer state for NaN and infinity after\nevery step, not only before each save", 0, 0, NULL},
    {"log-every", 0, OPT_INT, "train eval", "N", "steps between progress lines when not on a terminal (100)", 1,
     1e300, NULL},
    {"log-dir", 0, OPT_STRING, "train", "DIR", "write each step's scalars to DIR/scalars.csv", 0, 0, NULL},
    {"dist-timeout", 0, OPT_REAL, "train", "S", "under mpirun: seconds a rank waits for the others in an exchange\nbefore it ends every rank (300; 0: without end)", 0, 1e300, NULL},
    {"dist-check-every", 0, OPT_INT, "train", "N", "under mpirun: every N steps, check that every rank holds the same\nparameters and optimizer state, bit for bit (a hash of each tensor)", 1, 1e300, NULL},
    {"entry", 0, OPT_STRING, "profile latency", "E", "the entry to time (default train_step; latency: infer)", 0, 0, NULL},
    {"runs", 0, OPT_INT, "profile latency", "N", "timed runs (per kernel for profile: 20; latency: 200)", 1, 1e300, NULL},
    {"json", 0, OPT_FLAG, "profile", NULL, "the per-kernel table as JSON", 0, 0, NULL},
    {"trace", 0, OPT_STRING, "profile", "FILE", "also the timed runs' kernels as a Chrome trace\n(Perfetto, chrome://tracing) in FILE", 0, 0, NULL},
    {"no-graphs", 0, OPT_FLAG, "train eval check bench profile latency", NULL, "on a GPU, launch kernels one by one instead of replaying each entry\nas a graph captured at its first run (to compare)", 0, 0, NULL},
    {"expect-sha256", 0, OPT_STRING, "train eval check bench profile latency", "HEX",
     "open the ingot only if its SHA-256 is HEX, as smelt build prints it\n(an ingot is native code: docs/ingot.md)", 0,
     0, NULL},
};

int main(int argc, char **argv) {
  const OptTable cli = {"smelt-rt", specs, (int)(sizeof specs / sizeof *specs), commands,
                        (int)(sizeof commands / sizeof *commands), smelt_version()};
  OptResult r;
  int rc = options_parse(&cli, argc, argv, &r);
  if (rc) return rc < 0 ? 0 : rc;
  const char *cmd = r.command->name;
  TrainOptions o = {.device = "auto", .log_every = 100, .dist_timeout = DIST_TIMEOUT_DEFAULT};
  if (opt_set(&cli, &r, "device")) o.device = opt_get(&cli, &r, "device")->str;
  o.epochs = opt_get(&cli, &r, "epochs")->num;
  o.steps = opt_get(&cli, &r, "steps")->num;
  o.threads = (int)opt_get(&cli, &r, "threads")->num;
  o.checkpoint = opt_get(&cli, &r, "checkpoint")->str;
  o.resume = opt_set(&cli, &r, "resume");
  o.force = opt_set(&cli, &r, "force");
  o.keep = opt_set(&cli, &r, "keep") ? opt_get(&cli, &r, "keep")->num : 1;
  o.check_finite = opt_set(&cli, &r, "check-finite");
  if ((o.resume || o.force || o.keep > 1) && !o.checkpoint)
    rc = opt_error(&cli, r.command, "%s needs --checkpoint=PATH", o.resume ? "--resume" : o.force ? "--force" : "--keep");
  else if (o.resume && o.force)
    rc = opt_error(&cli, r.command, "--resume continues the checkpoint; --force starts over and replaces it");
  if (rc) {
    options_result_free(&r);
    return rc;
  }
  if (opt_set(&cli, &r, "log-every")) o.log_every = opt_get(&cli, &r, "log-every")->num;
  o.log_dir = opt_get(&cli, &r, "log-dir")->str;
  if (opt_set(&cli, &r, "dist-timeout")) o.dist_timeout = opt_get(&cli, &r, "dist-timeout")->real;
  o.dist_check_every = opt_get(&cli, &r, "dist-check-every")->num;
  const char *entry = opt_set(&cli, &r, "entry") ? opt_get(&cli, &r, "entry")->str : "train_step";
  int runs = opt_set(&cli, &r, "runs") ? (int)opt_get(&cli, &r, "runs")->num : 20;
  o.ingot = o.source = r.files[0];
  tools_no_graphs = opt_set(&cli, &r, "no-graphs");
  if (opt_set(&cli, &r, "expect-sha256")) {
    const char *hex = opt_get(&cli, &r, "expect-sha256")->str;
    if (!sha256_hex_valid(hex))
      rc = opt_error(&cli, r.command, "--expect-sha256 takes the ingot's SHA-256, 64 hex digits as smelt build prints "
                     "it, not '%s'", hex);
    else if (r.nfiles > 1)
      rc = opt_error(&cli, r.command, "--expect-sha256 pins one ingot, not %d", r.nfiles);
    if (rc) {
      options_result_free(&r);
      return rc;
    }
    tools_expect_sha256 = hex;
  }
  if (!strcmp(cmd, "train")) rc = train_run(&o);
  else if (!strcmp(cmd, "eval")) rc = eval_run(&o);
  else if (!strcmp(cmd, "check"))
    for (int i = 0; i < r.nfiles; i++) rc |= numerics_check(r.files[i], o.device);
  else if (!strcmp(cmd, "bench")) rc = gpu_bench(o.device, r.nfiles, (char **)r.files);
  else if (!strcmp(cmd, "latency"))
    rc = latency_bench(r.files[0], opt_set(&cli, &r, "entry") ? entry : "infer", o.device, o.threads,
                       opt_set(&cli, &r, "runs") ? runs : 200, 0);
  else {
    ProfileOutput out = {opt_set(&cli, &r, "json"), opt_get(&cli, &r, "trace")->str};
    rc = gpu_profile(r.files[0], entry, o.device, runs, &out);
  }
  options_result_free(&r);
  return rc;
}
