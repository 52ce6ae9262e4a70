// smelt_rt.c: smelt-rt, the runtime-only tool for machines without LLVM.
//
// A GPU host needs no compiler: ingots are built elsewhere and carried. This
// tool links the runtime and the trainer only.
//
//   smelt-rt train INGOT [--device=D] [--epochs=N] [--steps=N] [--threads=N]
//   smelt-rt eval INGOT [--device=D] [--checkpoint=PATH]
//   smelt-rt check INGOT... [--device=D]        every kernel against the CPU device
//   smelt-rt bench INGOT[...] [--device=D]      infer kernels against the copy bandwidth
//   smelt-rt profile INGOT [--entry=E] [--device=D] [--runs=N]   per-kernel table
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler.h"
#include "smelt_rt.h"

static int usage(void) {
  fputs("usage: smelt-rt train|eval|check|bench|profile INGOT... [--device=D] [options]\n"
        "  train INGOT     run the train block (--epochs=N --steps=N --threads=N --checkpoint=PATH)\n"
        "  eval INGOT      loss and accuracy on the test data (--checkpoint=PATH)\n"
        "  check INGOT...  every kernel on the device against the CPU device\n"
        "  bench INGOT...  the infer kernels' time, bandwidth and FLOP rate, against a\n"
        "                  device-to-device copy\n"
        "  profile INGOT   per-kernel times of --entry=E (default train_step), --runs=N\n"
        "--device=D: auto (default), cpu, cuda[:N], hip[:N]\n",
        stderr);
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 3) return usage();
  const char *cmd = argv[1], *entry = "train_step";
  TrainOptions o = {.device = "auto", .log_every = 100};
  char **files = calloc((size_t)argc, sizeof *files);
  int nfiles = 0, runs = 20;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (!strncmp(a, "--device=", 9)) o.device = a + 9;
    else if (!strncmp(a, "--epochs=", 9)) o.epochs = strtoll(a + 9, NULL, 10);
    else if (!strncmp(a, "--steps=", 8)) o.steps = strtoll(a + 8, NULL, 10);
    else if (!strncmp(a, "--threads=", 10)) o.threads = atoi(a + 10);
    else if (!strncmp(a, "--checkpoint=", 13)) o.checkpoint = a + 13;
    else if (!strncmp(a, "--entry=", 8)) entry = a + 8;
    else if (!strncmp(a, "--runs=", 7)) runs = atoi(a + 7);
    else if (a[0] == '-') {
      fprintf(stderr, "smelt-rt: error: unknown option '%s'\n", a);
      free(files);
      return usage();
    } else files[nfiles++] = argv[i];
  }
  int rc = 2;
  if (nfiles == 0) rc = usage();
  else if (!strcmp(cmd, "train") || !strcmp(cmd, "eval")) {
    o.ingot = files[0];
    rc = !strcmp(cmd, "train") ? train_run(&o) : eval_run(&o);
  } else if (!strcmp(cmd, "check")) {
    rc = 0;
    for (int i = 0; i < nfiles; i++) rc |= numerics_check(files[i], o.device);
  } else if (!strcmp(cmd, "bench")) {
    rc = gpu_bench(o.device, nfiles, files);
  } else if (!strcmp(cmd, "profile")) {
    rc = gpu_profile(files[0], entry, o.device, runs > 0 ? runs : 20);
  } else {
    rc = usage();
  }
  free(files);
  return rc;
}
