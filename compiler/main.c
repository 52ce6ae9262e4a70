// main.c: the smelt command line.
//
//   smelt check [--summary] FILE...         parse and check model files
//   smelt dump --stage=STAGE FILE           print a stage of the compiler (ast ... asm)
//   smelt graph --dot [--fused] FILE        the op graph as Graphviz DOT
//   smelt explain [--memory] FILE           kernels, fusion decisions, memory
//   smelt init FILE -o WEIGHTS              the initial parameters, as a tensor file
//   smelt build FILE -o FILE.ingot          compile to an ingot
//   smelt bisect FILE.smelt|FILE.ingot      the first kernel that disagrees with the interpreter
//   smelt bench --profile FILE.ingot        per-kernel times of an entry
//   smelt inspect [--all] FILE.ingot        what an ingot holds
//   smelt train FILE.smelt|FILE.ingot       run the train block
//   smelt eval FILE.smelt|FILE.ingot        loss and accuracy on held-out data
//   smelt run FILE --inputs=TENSORS         inference on inputs from a tensor file
//   smelt --version | help
//
// Exit status: 0 when every file is clean, 1 when any has an error, 2 when the
// command line itself is wrong.
#include "compiler.h"
#include "onnx_import.h"
#include "runtime.h"
#include "sha256.h"
#include "options.h"
#include "tools.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---- the command line, as tables (tools/options.h)

static const CommandSpec commands[] = {
    {"check", "FILE...", "parse and check model files; report every error", 1, -1},
    {"dump", "--stage=STAGE FILE", "print a stage of the compiler: ast (syntax tree), graph (op graph of the\n"
                                   "forward pass), grad (the training step: forward, backward and optimizer),\n"
                                   "simplified, fused (kernels), plan (launches and arena), llvm (LLVM IR of\n"
                                   "the kernels), ptx, amdgcn, asm (x86-64); of --entry=E, for --target=T", 1, 1},
    {"graph", "--dot FILE", "the op graph as Graphviz DOT, clustered by layer (--fused: by kernel of --entry)", 1, 1},
    {"explain", "FILE", "every kernel of an entry point (--entry=E, default train_step, else infer) in\n"
                        "schedule order: ops, source lines, bytes, FLOPs, and why each tensor it reads\n"
                        "was not fused; compared with fusion off", 1, 1},
    {"build", "FILE -o INGOT", "compile the model's entry points into an ingot", 1, 1},
    {"train", "FILE.smelt|FILE.ingot", "build (a .smelt) and run its train block", 1, 1},
    {"eval", "FILE.smelt|FILE.ingot", "loss and accuracy on the test (or --split=) data", 1, 1},
    {"run", "FILE --inputs=TENSORS", "one run of --entry (default infer) on the tensors of a tensor file\n"
                                     "(docs/tensors.md); the outputs are printed, or written to --outputs", 1, 1},
    {"bisect", "FILE.smelt|FILE.ingot", "run an entry kernel by kernel on a device against the interpreter on\n"
                                        "random inputs; name the first kernel that diverges", 1, 1},
    {"sample", "FILE", "text from a trained character-level model (built with B = 1)", 1, 1},
    {"bench", "FILE", "latency of whole runs of --entry (default infer): median, p99, mean, min; a\n"
                      "model file is built with B = --batch (inference-only for infer); with\n"
                      "--profile, per-kernel times of an ingot's entry (default train_step)", 1, 1},
    {"inspect", "INGOT", "sections, entry points, tensors of an ingot (--all: also temporaries and kernels)", 1, 1},
    {"init", "FILE -o WEIGHTS", "write the initial parameters and optimizer state (docs/tensors.md)", 1, 1},
    {"import", "MODEL.onnx -o FILE.smelt", "an ONNX model to a model file, its initializers to FILE.safetensors\n"
                                          "(docs/onnx.md)", 1, 1},
    {"plot", "DIR -o FILE.svg|.png", "the loss and evaluation curves of a training run's --log-dir=DIR (its\n"
                                     "scalars.csv) as an SVG or a PNG", 1, 1},
};

#define BIG 1e300
#define SIZES "check dump graph explain init build train eval run bisect sample bench import"
static const OptSpec specs[] = {
    {"summary", 0, OPT_FLAG, "check", NULL, "also print what each file declares", 0, 0, NULL},
    {"stage", 0, OPT_CHOICE, "dump", "STAGE", "ast, graph, grad, simplified, fused, plan, llvm, ptx,\namdgcn or asm", 0, 0,
     "ast|graph|grad|simplified|fused|plan|llvm|ptx|amdgcn|asm"},
    {"dump-after", 0, OPT_STRING, "check dump graph explain init build train eval run bisect sample bench", "PASS",
     "print what a pass of the pipeline made: elaborate, precision,\nautodiff, outputs, simplify, remat, conv_gemm, matmul, kernels,\nmemplan, codegen",
     0, 0, NULL},
    {"dot", 0, OPT_FLAG, "graph", NULL, "print DOT", 0, 0, NULL},
    {"fused", 0, OPT_FLAG, "graph", NULL, "cluster by kernel instead of by layer", 0, 0, NULL},
    {"memory", 0, OPT_FLAG, "explain", NULL, "the arena instead: peak against the sum of\nintermediates, the largest live set", 0, 0, NULL},
    {"svg", 0, OPT_STRING, "explain", "FILE", "draw the buffer lifetimes there", 0, 0, NULL},
    {"ranks", 0, OPT_INT, "explain", "N", "instead of the kernels: one training step on N data-parallel\nranks, the gradients' ring all-reduce against the compute", 1, 1 << 20, NULL},
    {"link", 0, OPT_REAL, "explain", "GBPS", "with --ranks: the all-reduce's bus bandwidth per rank, GB/s", 1e-3, BIG, NULL},
    {"tflops", 0, OPT_REAL, "explain", "X", "with --ranks: one rank's sustained TFLOP/s on the step's FLOPs", 1e-6, BIG, NULL},
    {"output", 'o', OPT_STRING, "build init import plot", "FILE", "where to write the ingot, the weights, the model file or the plot", 0, 0, NULL},
    {"emit-c", 0, OPT_IDENT, "build", "NAME", "write the ingot to -o as C source: const unsigned char NAME[] and\n"
     "const size_t NAME_size, for smelt_ingot_open_memory (docs/runtime.md)", 0, 0, NULL},
    {"entry", 0, OPT_STRING, "dump build explain graph run bisect bench", "E",
     "the entry point (build: infer alone makes an inference-only ingot)", 0, 0, NULL},
    {"target", 0, OPT_STRING, "dump build train eval run bisect", "LIST",
     "comma-separated targets besides the host's x86-64: NVIDIA sm_80,\nsm_90, ... AMD gfx90a, gfx942, gfx1100", 0, 0, NULL},
    {"cpu", 0, OPT_STRING, "dump build train eval run", "NAME",
     "the x86-64 CPU to compile for (build: x86-64-v3; train: this\nmachine's; native: this machine's)", 0, 0, NULL},
    {"fusion", 0, OPT_CHOICE, "graph explain build train eval run bisect", "MODE",
     "none, pointwise or all (default; docs/fusion.md)", 0, 0, "none|pointwise|all"},
    {"remat", 0, OPT_FLAG, "explain build train eval run bisect", NULL,
     "recompute cheap forward values in the backward pass", 0, 0, NULL},
    {"precision", 0, OPT_CHOICE, "dump graph explain build train eval run bisect bench", "P",
     "instead of the train block's (docs/precision.md)", 0, 0, "fp32|tf32|bf16|fp16"},
    {"infer", 0, OPT_FLAG, "dump graph", NULL, "build the graph with training = false", 0, 0, NULL},
    {"epochs", 0, OPT_INT, "train", "N", "override the train block's length", 1, BIG, NULL},
    {"steps", 0, OPT_INT, "train", "N", "override the train block's length in steps", 1, BIG, NULL},
    {"device", 0, OPT_STRING, "train eval run bisect sample bench", "D",
     "auto (default: CUDA, else HIP, else the CPU), cpu, cuda[:N], hip[:N]", 0, 0, NULL},
    {"threads", 0, OPT_INT, "train eval run sample bench", "N", "CPU threads, at most 256 (default: one per core)", 1, 256, NULL},
    {"checkpoint", 0, OPT_STRING, "train eval run sample", "PATH",
     "train: save here; eval, run, sample: load trained weights from here", 0, 0, NULL},
    {"weights", 0, OPT_STRING, "train eval run", "FILE",
     "start from these parameters (a tensor or safetensors file of every parameter,\nsuch as smelt import's weights); train: from step 0, with fresh optimizer state", 0, 0, NULL},
    {"checkpoint-every", 0, OPT_INT, "train", "N", "save every N steps (default: the train block's)", 1, BIG, NULL},
    {"resume", 0, OPT_FLAG, "train", NULL, "continue from --checkpoint (from step 0 while it does not exist yet)", 0, 0, NULL},
    {"force", 0, OPT_FLAG, "train", NULL, "start over even when --checkpoint exists, replacing it", 0, 0, NULL},
    {"keep", 0, OPT_INT, "train", "N", "keep N checkpoints: the newest, and the N - 1 before it as\nPATH.1, PATH.2, ... (1)", 1,
     1000, NULL},
    {"check-finite", 0, OPT_FLAG, "train", NULL, "check the parameters and optimizer state for NaN and infinity after\nevery step, not only before each save", 0, 0, NULL},
    {"stop-after", 0, OPT_INT, "train", "N", "end this run after N steps (resume later)", 1, BIG, NULL},
    {"log-every", 0, OPT_INT, "train eval", "N", "steps between progress lines when not on a terminal (50)", 1, BIG, NULL},
    {"log-dir", 0, OPT_STRING, "train", "DIR", "write each step's scalars to DIR/scalars.csv", 0, 0, NULL},
    {"dist-timeout", 0, OPT_REAL, "train", "S", "under mpirun: seconds a rank waits for the others in an exchange\nbefore it ends every rank (300; 0: without end)", 0, BIG, NULL},
    {"dist-check-every", 0, OPT_INT, "train", "N", "under mpirun: every N steps, check that every rank holds the same\nparameters and optimizer state, bit for bit (a hash of each tensor)", 1, BIG, NULL},
    {"split", 0, OPT_STRING, "eval", "S", "the data to evaluate on: test (default), val or train", 0, 0, NULL},
    {"inputs", 0, OPT_STRING, "run import build check", "FILE",
     "run: the tensor file of inputs (smelt's, .safetensors, .npy, .npz); import, build, check of an ONNX model: the values of\nthe inputs its graph needs as constants (shapes, axes; docs/onnx.md)", 0, 0, NULL},
    {"outputs", 0, OPT_STRING, "run", "FILE", "write the outputs to this tensor file instead of printing\n(by its extension: .safetensors, .npy, .npz, else smelt's)", 0, 0, NULL},
    {"seed", 0, OPT_INT, "init sample", "N", "init: the initializers' seed (default: the model's, docs/random.md);\nsample: the same text for a seed (1)", 0,
     9.2e18, NULL},
    {"params-only", 0, OPT_FLAG, "init", NULL, "leave out the optimizer state", 0, 0, NULL},
    {"prompt", 0, OPT_STRING, "sample", "TEXT", "the text the sample continues", 0, 0, NULL},
    {"length", 0, OPT_INT, "sample", "N", "bytes to draw (200)", 0, BIG, NULL},
    {"temperature", 0, OPT_REAL, "sample", "X", "1 (default); 0: always the most likely byte", 0, BIG, NULL},
    {"top-k", 0, OPT_INT, "sample", "K", "draw from the K most likely bytes (0: all)", 0, 256, NULL},
    {"profile", 0, OPT_FLAG, "bench", NULL, "per-kernel times of an ingot's entry", 0, 0, NULL},
    {"json", 0, OPT_FLAG, "bench", NULL, "with --profile: the per-kernel table as JSON", 0, 0, NULL},
    {"trace", 0, OPT_STRING, "bench", "FILE", "with --profile: the timed runs' kernels as a Chrome trace\n(Perfetto, chrome://tracing) in FILE", 0, 0, NULL},
    {"runs", 0, OPT_INT, "bench", "N", "timed runs (1000; --profile: 20)", 1, BIG, NULL},
    {"batch", 0, OPT_INT, "bench", "N", "build a model file with B = N; of an ingot of bindings, time B = N", 1, BIG, NULL},
    {"all", 0, OPT_FLAG, "inspect", NULL, "also temporaries and kernels", 0, 0, NULL},
    {"data-parallel", 0, OPT_FLAG, "build", NULL, "also build train_grad and train_apply, the training step in two\nthat `mpirun -np N smelt train` runs (docs/distributed.md)", 0, 0, NULL},
    {"jobs", 0, OPT_INT, "build train eval run", "N", "threads for code generation, at most 256 (default: one per\ncore); the ingot is the same bytes whatever N is", 1, 256, NULL},
    {"no-cache", 0, OPT_FLAG, "build train eval run", NULL, "compile every kernel body, reading and writing no build cache\n($XDG_CACHE_HOME/smelt, docs/performance.md)", 0, 0, NULL},
    {"time", 0, OPT_FLAG, "check build", NULL, "print the milliseconds and runs of each compiler stage on stderr", 0, 0, NULL},
    {"verbose", 'v', OPT_FLAG, "build", NULL, "also print each entry's launches and the distinct kernel bodies they run", 0, 0,
     NULL},
    {"no-graphs", 0, OPT_FLAG, "train eval run sample bench", NULL, "on a GPU, launch kernels one by one instead of replaying each entry\nas a graph captured at its first run (to compare)", 0, 0, NULL},
    {"expect-sha256", 0, OPT_STRING, "train eval run bisect sample bench inspect", "HEX",
     "open the ingot only if its SHA-256 is HEX, as smelt build prints it\n(an ingot is native code: docs/ingot.md)", 0,
     0, NULL},
    {"max-memory", 0, OPT_BYTES, "check build train eval run bisect sample bench", "SIZE",
     "refuse a model whose session needs more bytes\n(default: this machine's memory; 0: no limit)", 0, 9.2e18, NULL},
    {"define", 'D', OPT_LIST, SIZES, "NAME=VALUE", "set a model size", 0, 0, NULL},
    {"color", 0, OPT_CHOICE, "*", "WHEN", "colour in diagnostics: auto (on a terminal, never\nwith NO_COLOR), always or never",
     0, 0, "auto|always|never"},
    {"max-errors", 0, OPT_INT, "*", "N", "stop reporting after N errors (20; 0: all)", 0, 1000000, NULL},
};

static const OptTable cli = {
    "smelt", specs, (int)(sizeof specs / sizeof *specs), commands, (int)(sizeof commands / sizeof *commands),
    SMELT_VERSION,
};

// build -v: each entry's launches and the distinct bodies they run
// (codegen_share_bodies), and the bodies compiled for the whole build.
static void print_bodies(FILE *out, const Build *b) {
  int bodies = 0, launches = 0;
  for (int e = 0; e < 3; e++)
    for (int k = 0; b->on[e] && k < b->entries[e].plan.n; k++) {
      const Kernel *kn = &b->entries[e].plan.kernels[k];
      if (kn->body + 1 > bodies) bodies = kn->body + 1;
      launches++;
    }
  bool *seen = xcalloc((size_t)(bodies ? bodies : 1), sizeof *seen);
  for (int e = 0; e < 3; e++) {
    if (!b->on[e]) continue;
    const KernelPlan *p = &b->entries[e].plan;
    int distinct = 0;
    memset(seen, 0, sizeof *seen * (size_t)bodies);
    for (int k = 0; k < p->n; k++)
      if (!seen[p->kernels[k].body]) seen[p->kernels[k].body] = true, distinct++;
    fprintf(out, "%s: %d launches, %d distinct kernel bodies\n", b->entries[e].name, p->n, distinct);
  }
  fprintf(out, "kernel bodies compiled: %d for %d launches\n", bodies, launches);
  free(seen);
}

typedef struct {
  const char *command;
  const char *stage;
  const char **files;
  int nfiles;
  bool summary;
  bool time;   // --time: each stage's milliseconds on stderr
  bool verbose;   // build -v: launches and distinct kernel bodies per entry
  bool dot, fused;
  bool memory;
  const char *svg;
  int ranks;                      // explain --ranks, --link, --tflops
  double link_gbps, tflops;
  bool infer;
  int color;        // -1 auto, 0 never, 1 always
  int max_errors;
  Define defs[32];
  int ndefs;
  // -D NAME=V1,V2,...: build's bindings, values in the order given (the
  // first is the ingot's own); defs holds NAME with the first value
  const char *bind_var;
  int64_t bind_values[INGOT_MAX_BINDINGS];
  int nbind;
  const char *output;
  const char *emit_c;             // build --emit-c NAME: the ingot as C source
  uint64_t seed;
  bool seed_set;                  // --seed given (init: else the model's seed)
  bool params_only;
  const char *cpu;
  BuildTargets targets;
  int precision;                  // --precision, or -1: the train block's
  TrainOptions train;
  const char *inputs, *outputs;   // smelt run
  const char *onnx_source;        // the ONNX file files[0] was imported from, or NULL
  SampleOptions sample;           // smelt sample
  bool profile, all;              // smelt bench --profile, smelt inspect --all
  ProfileOutput profile_out;      // smelt bench --profile --json, --trace
  int runs;                       // smelt bench; 0: the default
  long long batch;                // smelt bench; 0: the model's
  const char *dump_after;         // --dump-after=PASS
} Options;

// One integer of a -D value, ending at a ',' or the end; false when malformed.
static bool define_value(const char **p, long long *v) {
  char *end;
  errno = 0;
  *v = strtoll(*p, &end, 10);
  if (end == *p || (*end && *end != ',') || errno == ERANGE) return false;   // beyond 2^63 - 1 was taken as 2^63 - 1
  *p = *end ? end + 1 : end;
  return true;
}

// Parses "NAME=VALUE" into o->defs, or "NAME=V1,V2,..." (a build's bindings)
// into o->bind_* and NAME=V1 into o->defs; returns false when malformed.
static bool add_define(Options *o, const char *arg) {
  const char *eq = strchr(arg, '=');
  if (!eq || eq == arg || o->ndefs == 32) return false;
  long long v;
  const char *p = eq + 1;
  if (!define_value(&p, &v)) return false;
  char *name = xmalloc((size_t)(eq - arg) + 1);
  memcpy(name, arg, (size_t)(eq - arg));
  name[eq - arg] = '\0';
  if (*p || p[-1] == ',') {   // a list: one -D may have one, of distinct values
    if (o->nbind) return free(name), false;
    o->bind_var = name;
    o->bind_values[o->nbind++] = v;
    while (p[-1] == ',') {
      if (o->nbind == INGOT_MAX_BINDINGS || !define_value(&p, &v)) return false;
      for (int i = 0; i < o->nbind; i++)
        if (o->bind_values[i] == v) return false;
      o->bind_values[o->nbind++] = v;
    }
  }
  o->defs[o->ndefs++] = (Define){name, o->nbind ? o->bind_values[0] : v};
  return true;
}

// A bad command line found after parsing: the option parser's message form.
static int bad_usage(const char *fmt, const char *arg) __attribute__((format(printf, 1, 0)));
static int bad_usage(const char *fmt, const char *arg) { return opt_error(&cli, NULL, fmt, arg); }

// "host,sm_90,gfx90a" into t; 0, or prints the error and returns 2.
static int parse_targets(const char *list, BuildTargets *t) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", list);
  for (char *save = NULL, *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
    if (!strcmp(s, "host")) continue;
    if (!gpu_target_known(s)) {
      char known[512];
      gpu_target_list(known, sizeof known);
      fprintf(stderr, "smelt: error: --target: unknown target '%s'\nknown targets: host, %s\n", s, known);
      return 2;
    }
    bool dup = false;
    for (int i = 0; i < t->ngpus; i++) dup |= !strcmp(t->gpus[i], s);
    if (dup) continue;
    if (t->ngpus == 16) return bad_usage("--target=%s: at most 16 GPU targets", list);
    t->gpus[t->ngpus++] = xstrdup(s);
  }
  return 0;
}

static bool ends_with(const char *s, const char *tail) {
  size_t n = strlen(s), m = strlen(tail);
  return n > m && !strcmp(s + n - m, tail);
}

static void options_free(Options *o) {
  for (int i = 0; i < o->ndefs; i++) free((char *)o->defs[i].name);
  for (int i = 0; i < o->targets.ngpus; i++) free((char *)o->targets.gpus[i]);
  free(o->files);
}

// A temporary ingot for a model file: path gets DIR/model.ingot in a new
// private folder (tempdir.c), dir its folder. 0, or 1 after the message.
static int temp_ingot_create(char *dir, size_t dirlen, char *path, size_t pathlen) {
  char err[512];
  if (tempdir_create(dir, dirlen, err, sizeof err)) {
    fprintf(stderr, "smelt: error: %s\n", err);
    return 1;
  }
  snprintf(path, pathlen, "%s/model.ingot", dir);
  return 0;
}

// Builds a model file into the temporary ingot tmp for a run on device:
// this CPU, and the GPU the device would take; infer_only for benchmarks.
static int build_for_device(const char *argv0, const char *file, const Define *defs, int ndefs, int precision,
                            const char *device, bool infer_only, uint64_t max_memory, const char *tmp) {
  Compilation c;
  compilation_init(&c, stderr);
  c.precision = precision;
  compilation_default_search(&c, argv0);
  Module *m = module_load_file(&c, file);
  int errors = check_modules(&c, &m, 1, defs, ndefs);
  if (!errors) {
    BuildTargets t = {.infer_only = infer_only, .max_memory = max_memory};
    char arch[32];
    if (strcmp(device, "cpu") && device_gpu_target(device, arch, sizeof arch) && gpu_target_known(arch)) t.gpus[t.ngpus++] = arch;
    fprintf(stderr, "building %s for this CPU%s%s...\n", file, t.ngpus ? " and " : "", t.ngpus ? t.gpus[0] : "");
    errors = ingot_build(&c, m, defs, ndefs, &t, tmp) ? 1 : 0;
  }
  if (errors) fprintf(stderr, "%d error%s\n", c.diag.errors, c.diag.errors == 1 ? "" : "s");
  compilation_free(&c);
  return errors ? 1 : 0;
}

// `smelt bench FILE`: the latency of whole runs of an entry (default infer;
// a model file is built with B = --batch, inference-only for infer);
// `smelt bench --profile INGOT`: per kernel.
static int bench_main(Options *o, const char *argv0) {
  const char *file = o->files[0], *entry = o->train.split, *device = o->train.device;
  bool profile = o->profile;
  int runs = o->runs, threads = o->train.threads, rc = 2;
  long long batch = o->batch;
  if (profile) return gpu_profile(file, entry ? entry : "train_step", device, runs ? runs : 20, &o->profile_out);
  entry = entry ? entry : "infer";
  char dir[4096] = "", tmp[4200] = "";
  if (!ends_with(file, ".ingot")) {
    if (batch) {
      char def[64];
      snprintf(def, sizeof def, "B=%lld", batch);
      add_define(o, def);
    }
    if (temp_ingot_create(dir, sizeof dir, tmp, sizeof tmp)) return 1;
    if (build_for_device(argv0, file, o->defs, o->ndefs, o->precision, device, !strcmp(entry, "infer"), o->targets.max_memory, tmp)) {
      tempdir_remove(dir);
      return 1;
    }
    file = tmp;
  } else if (o->ndefs) {
    return bad_usage("-D sizes a model file; an ingot keeps the sizes it was built with (%s)", file);
  }
  rc = latency_bench(file, entry, device, threads, runs ? runs : 1000, dir[0] ? 0 : batch);
  if (dir[0]) tempdir_remove(dir);
  return rc;
}

// `smelt sample FILE`: a model file is built with B = 1, its infer entry alone.
static int sample_main(Options *o, const char *argv0) {
  SampleOptions so = o->sample;
  so.device = o->train.device;
  so.threads = o->train.threads;
  so.checkpoint = o->train.checkpoint;
  const char *file = o->files[0];
  char dir[4096] = "", tmp[4200] = "";
  if (!ends_with(file, ".ingot")) {   // one sequence at a time: B = 1, the infer entry alone
    add_define(o, "B=1");
    if (temp_ingot_create(dir, sizeof dir, tmp, sizeof tmp)) return 1;
    if (build_for_device(argv0, file, o->defs, o->ndefs, -1, so.device, true, o->targets.max_memory, tmp)) {
      tempdir_remove(dir);
      return 1;
    }
    file = tmp;
  }
  so.ingot = file;
  int rc = sample_run(&so);
  if (dir[0]) tempdir_remove(dir);
  return rc;
}


// The parsed command line into o; 0, -1 when the run is over (a list was
// printed), or 2 after the error.
static int options_from(const OptResult *r, Options *o) {
  *o = (Options){.command = r->command->name, .color = -1, .max_errors = 20, .seed = 1, .precision = -1};
  o->train = (TrainOptions){.device = "auto", .log_every = 50, .dist_timeout = DIST_TIMEOUT_DEFAULT};
  o->sample = (SampleOptions){.prompt = "", .length = 200, .temperature = 1.0, .seed = 1};
  o->files = xcalloc((size_t)r->nfiles + 1, sizeof *o->files);
  for (int i = 0; i < r->nfiles; i++) o->files[o->nfiles++] = r->files[i];
#define V(name) opt_get(&cli, r, name)
#define IF_SET(name) if (V(name)->set)
  o->summary = V("summary")->set;
  o->time = V("time")->set;
  o->verbose = V("verbose")->set;
  o->stage = V("stage")->str;
  o->dot = V("dot")->set;
  o->fused = V("fused")->set;
  o->memory = V("memory")->set;
  o->svg = V("svg")->str;
  o->output = V("output")->str;
  o->emit_c = V("emit-c")->str;
  o->train.split = V("entry")->str;
  IF_SET("split") o->train.split = V("split")->str;
  IF_SET("target") if (parse_targets(V("target")->str, &o->targets)) return 2;
  o->cpu = V("cpu")->str;
  o->dump_after = V("dump-after")->str;
  if (o->dump_after && pass_parse(o->dump_after) < 0)
    return opt_error(&cli, r->command, "--dump-after takes a pass of the pipeline (elaborate, precision, autodiff, outputs, "
                     "simplify, remat, conv_gemm, matmul, kernels, memplan, codegen), not '%s'", o->dump_after);
  if (o->cpu && !strcmp(o->cpu, "help")) {
    host_cpu_list();
    return -1;
  }
  if (o->cpu && !host_cpu_known(o->cpu))
    return opt_error(&cli, r->command, "--cpu takes an x86-64 CPU that LLVM knows (x86-64-v3, znver4, native, ...), "
                     "not '%s'; --cpu=help lists them", o->cpu);
  IF_SET("fusion") fusion_mode_parse(V("fusion")->str, &o->targets.fusion);
  o->targets.remat = V("remat")->set;
  o->targets.jobs = (int)V("jobs")->num;
  o->targets.data_parallel = V("data-parallel")->set;
  o->targets.no_cache = V("no-cache")->set;
  o->targets.max_memory = V("max-memory")->set ? (uint64_t)V("max-memory")->num : memory_default_limit();
  IF_SET("precision") o->precision = precision_parse(V("precision")->str);
  o->infer = V("infer")->set;
  o->train.epochs = V("epochs")->num;
  o->train.steps = V("steps")->num;
  IF_SET("device") o->train.device = V("device")->str;
  o->train.threads = (int)V("threads")->num;
  o->train.checkpoint = V("checkpoint")->str;
  o->train.weights = V("weights")->str;
  o->train.checkpoint_every = V("checkpoint-every")->num;
  o->train.resume = V("resume")->set;
  o->train.force = V("force")->set;
  o->train.keep = V("keep")->set ? V("keep")->num : 1;
  o->train.stop_after = V("stop-after")->num;
  o->train.check_finite = V("check-finite")->set;
  IF_SET("log-every") o->train.log_every = V("log-every")->num;
  o->train.log_dir = V("log-dir")->str;
  IF_SET("dist-timeout") o->train.dist_timeout = V("dist-timeout")->real;
  o->train.dist_check_every = V("dist-check-every")->num;
  o->inputs = V("inputs")->str;
  o->outputs = V("outputs")->str;
  IF_SET("seed") o->seed = o->sample.seed = (uint64_t)V("seed")->num, o->seed_set = true;
  o->params_only = V("params-only")->set;
  IF_SET("prompt") o->sample.prompt = V("prompt")->str;
  IF_SET("length") o->sample.length = V("length")->num;
  IF_SET("temperature") o->sample.temperature = V("temperature")->real;
  o->sample.top_k = (int)V("top-k")->num;
  o->ranks = (int)V("ranks")->num;
  o->link_gbps = V("link")->real;
  o->tflops = V("tflops")->real;
  if (o->ranks && !V("link")->set)
    return opt_error(&cli, r->command, "--ranks needs --link=GBPS, the bandwidth the gradients are all-reduced at");
  if (!o->ranks && (V("link")->set || V("tflops")->set))
    return opt_error(&cli, r->command, "--%s needs --ranks=N (it sizes the data-parallel estimate)",
                     V("link")->set ? "link" : "tflops");
  o->profile = V("profile")->set;
  o->profile_out.json = V("json")->set;
  o->profile_out.trace = V("trace")->str;
  if ((o->profile_out.json || o->profile_out.trace) && !o->profile)
    return opt_error(&cli, r->command, "--%s needs --profile (it writes the per-kernel profile)",
                     o->profile_out.json ? "json" : "trace");
  o->runs = (int)V("runs")->num;
  o->batch = V("batch")->num;
  o->all = V("all")->set;
  IF_SET("expect-sha256") {
    const char *hex = V("expect-sha256")->str;
    if (!sha256_hex_valid(hex))
      return opt_error(&cli, r->command, "--expect-sha256 takes the ingot's SHA-256, 64 hex digits as smelt build "
                       "prints it, not '%s'", hex);
    bool ingot_file = !strcmp(o->command, "inspect") || o->profile || ends_with(o->files[0], ".ingot");
    if (!ingot_file)
      return opt_error(&cli, r->command, "--expect-sha256 pins an ingot; '%s' is a model file (build it, then pin the "
                       "ingot)", o->files[0]);
    tools_expect_sha256 = hex;
  }
  tools_no_graphs = V("no-graphs")->set;
  IF_SET("color") o->color = !strcmp(V("color")->str, "always") ? 1 : !strcmp(V("color")->str, "never") ? 0 : -1;
  IF_SET("max-errors") o->max_errors = (int)V("max-errors")->num;
  const OptValue *d = V("define");
  for (int i = 0; i < d->nlist; i++)
    if (!add_define(o, d->list[i]))
      return bad_usage("-D needs NAME=INTEGER, or for smelt build NAME=V1,V2,... (distinct values, at most 32, in "
                       "one -D): not '%s'", d->list[i]);
  if (o->nbind && strcmp(r->command->name, "build"))
    return opt_error(&cli, r->command, "-D %s=%lld,...: a list of values builds an ingot of several bindings, for "
                     "smelt build alone", o->bind_var, (long long)o->bind_values[0]);
#undef IF_SET
#undef V
  return 0;
}

// Loads and checks every file; returns the number of errors.
static int check_files(Compilation *c, const Options *o, const char *argv0, Module **mods) {
  compilation_default_search(c, argv0);
  for (int i = 0; i < o->nfiles; i++) mods[i] = module_load_file(c, o->files[i]);
  if (o->stage && !strcmp(o->stage, "ast")) {   // the tree of a file that resolves
    for (int i = 0; i < c->nmodules; i++) resolve_module(c, c->modules[i]);
    return c->diag.errors;
  }
  return check_modules(c, mods, o->nfiles, o->defs, o->ndefs);
}

// Writes the initial value of every parameter and buffer of m's model and, when the file
// has a train block, of the optimizer's state (moments and step, all zero).
static int write_init(Compilation *c, Module *m, const Options *o) {
  Entry e;   // the training step, whose optimizer adds state (forward alone with --params-only; PASS_ELABORATE is 0, which EntryOptions reads as "every pass")
  int rc = pipeline_entry(c, m, "step", &(EntryOptions){o->defs, o->ndefs, .last = o->params_only ? PASS_PRECISION : PASS_AUTODIFF}, &e);
  Graph g = e.g;
  if (rc == 0) {
    TensorEntry *t = xcalloc((size_t)g.n + 1, sizeof *t);
    int n = 0;
    for (int i = 0; i < g.n; i++) {
      Node *p = g.nodes[i];
      if (p->op != OP_PARAM && p->op != OP_STATE) continue;
      int64_t cnt = shape_numel(&p->shape);
      t[n] = (TensorEntry){p->name, p->shape, xmalloc(sizeof(double) * (size_t)(cnt ? cnt : 1))};
      init_fill(p, o->seed_set ? o->seed : model_seed(m), t[n].data);
      n++;
    }
    char err[512];
    rc = tensorfile_write(o->output, t, n, err, sizeof err);
    if (rc) diag_plain(&c->diag, "%s", err);
    for (int i = 0; i < n; i++) free(t[i].data);
    free(t);
  }
  entry_free(&e);
  return rc;
}

// The file's summary, with its model's graph when it has one.
static void print_summary(Compilation *c, Module *m, const Options *o) {
  summary_print(stdout, m, &c->diag);
  if (!m->model) return;
  Entry e;
  if (pipeline_entry(c, m, "step", &(EntryOptions){o->defs, o->ndefs, .last = PASS_AUTODIFF}, &e) == 0) {
    summary_graph(stdout, &e.g, e.forward);
    summary_groups(stdout, &e.g, m->train);
  }
  entry_free(&e);
}

// "OUT: a session needs ..." for the build b written to out (tag: its
// binding, or "").
static void print_session_need(const Build *b, const char *out, const char *tag) {
  MemoryNeed need;
  memory_need(b, &need);
  printf("%s%s: a session needs ", out, tag);
  memory_need_print(stdout, b, &need);
  putchar('\n');
}

// The bindings other than the first listed (-D VAR=V1,V2,...), each built
// and written to dir, its bytes read into images[]; bd describes them, its
// values in increasing order. 0, or -1 after a diagnostic.
static int build_bindings(Compilation *c, Module *m, const Options *o, const BuildTargets *t, const char *dir,
                          IngotBindings *bd, int64_t *values, char **images, size_t *sizes) {
  int n = o->nbind;
  memcpy(values, o->bind_values, sizeof *values * (size_t)n);
  for (int i = 1; i < n; i++)   // insertion sort: at most 32 values
    for (int k = i; k > 0 && values[k - 1] > values[k]; k--) {
      int64_t v = values[k];
      values[k] = values[k - 1];
      values[k - 1] = v;
    }
  *bd = (IngotBindings){o->bind_var, n, 0, values, images, sizes};
  Define defs[32];
  memcpy(defs, o->defs, sizeof *defs * (size_t)o->ndefs);
  for (int i = 0; i < n; i++) {
    if (values[i] == o->bind_values[0]) {   // the ingot written last
      bd->self = i;
      continue;
    }
    for (int d = 0; d < o->ndefs; d++)
      if (!strcmp(defs[d].name, o->bind_var)) defs[d].value = values[i];
    char path[4200], tag[64];
    snprintf(path, sizeof path, "%s/binding-%d.ingot", dir, i);
    snprintf(tag, sizeof tag, " (%s=%lld)", o->bind_var, (long long)values[i]);
    Build b;
    bool ok = pipeline_build(c, m, defs, o->ndefs, t, &b) == 0 &&
              ingot_write(c, m, &b, defs, o->ndefs, t, NULL, path, NULL) == 0;
    if (ok) print_session_need(&b, o->output, tag);
    build_free(&b);
    if (!ok) return -1;
    if (!(images[i] = file_read(path, &sizes[i]))) {
      diag_plain(&c->diag, "cannot read '%s': %s", path, strerror(errno));
      return -1;
    }
  }
  return 0;
}

// The written ingot opened as a runtime would: an ingot of bindings whose
// parameters differ is refused here, before anything runs it. 0, or -1
// after a diagnostic (the file is removed).
static int check_written(Compilation *c, const char *path) {
  smelt_ingot *ig;
  if (smelt_ingot_open(path, &ig) == SMELT_OK) {
    smelt_ingot_close(ig);
    return 0;
  }
  diag_plain(&c->diag, "%s", smelt_last_error());
  unlink(path);
  return -1;
}

static void build_ingot(Compilation *c, Module *m, const Options *o) {
  if (!m->model) {
    diag_plain(&c->diag, "%s has no model to build", m->path);
    return;
  }
  BuildTargets t = o->targets;
  t.cpu = !o->cpu ? "x86-64-v3" : !strcmp(o->cpu, "native") ? NULL : o->cpu;
  if (o->train.split) {   // --entry=: only infer narrows a build
    if (strcmp(o->train.split, "infer")) {
      diag_plain(&c->diag, "build --entry takes infer (an inference-only ingot), not '%s'; without it every entry is built",
                 o->train.split);
      return;
    }
    t.infer_only = true;
  }
  char sha256[65], dir[4096] = "", tmp[4200];
  const char *path = o->output;   // --emit-c: the ingot goes to a temporary first
  if (o->emit_c || o->nbind) {    // and the other bindings' ingots
    char err[512];
    if (tempdir_create(dir, sizeof dir, err, sizeof err)) {
      diag_plain(&c->diag, "%s", err);
      return;
    }
    snprintf(tmp, sizeof tmp, "%s/model.ingot", dir);
    if (o->emit_c) path = tmp;
  }
  IngotBindings bd;
  int64_t values[INGOT_MAX_BINDINGS];
  char *images[INGOT_MAX_BINDINGS] = {0};
  size_t sizes[INGOT_MAX_BINDINGS] = {0};
  Build b = {0};   // freed whether or not it was built
  bool built = (!o->nbind || build_bindings(c, m, o, &t, dir, &bd, values, images, sizes) == 0) &&
               pipeline_build(c, m, o->defs, o->ndefs, &t, &b) == 0;
  double t0 = time_now();
  if (built && ingot_write(c, m, &b, o->defs, o->ndefs, &t, o->nbind ? &bd : NULL, path, sha256) == 0 &&
      (!o->nbind || check_written(c, path) == 0)) {
    time_add(TIME_WRITE, t0);
    char err[4400], tag[64] = "";
    if (o->nbind) snprintf(tag, sizeof tag, " (%s=%lld)", o->bind_var, (long long)o->bind_values[0]);
    if (o->emit_c && ingot_write_c(path, o->emit_c, o->output, err, sizeof err)) {
      diag_plain(&c->diag, "%s", err);
    } else {
      print_session_need(&b, o->output, tag);
      if (o->emit_c) printf("sha256 %s  %s[] in %s\n", sha256, o->emit_c, o->output);   // of the ingot's bytes
      else printf("sha256 %s  %s\n", sha256, o->output);   // pin it: --expect-sha256=HEX
      if (o->verbose) print_bodies(stdout, &b);
    }
  }
  build_free(&b);
  for (int i = 0; i < INGOT_MAX_BINDINGS; i++) free(images[i]);
  if (dir[0]) tempdir_remove(dir);
}

// `smelt check`: a model's entries planned (no code) and held to
// --max-memory; with --summary, what a session of it needs.
static void check_memory(Compilation *c, Module *m, const Options *o) {
  if (!m->model) return;
  Build b;
  if (pipeline_plan(c, m, o->defs, o->ndefs, &o->targets, &b) == 0 && o->summary) {
    MemoryNeed need;
    memory_need(&b, &need);
    printf("  memory: a session needs ");
    memory_need_print(stdout, &b, &need);
    putchar('\n');
  }
  build_free(&b);
}

static void explain_file(Compilation *c, Module *m, const Options *o) {
  if (!m->model) {
    diag_plain(&c->diag, "%s has no model to explain", m->path);
    return;
  }
  const char *entry = o->train.split ? o->train.split : m->train ? "train_step" : "infer";
  ExplainOptions e = {entry, o->targets.fusion, o->targets.remat, o->memory, o->svg, o->ranks, o->link_gbps, o->tflops};
  explain_model(c, m, o->defs, o->ndefs, &e, stdout);
}


// `smelt bisect FILE.smelt|FILE.ingot`: an .ingot is checked against the
// model file, sizes and fusion mode its META names; a .smelt is built first
// (for this CPU and the GPU the device would take).
static int bisect_main(Options *o, const char *argv0) {
  if (o->nfiles != 1) return bad_usage("%s takes one model or ingot file", "bisect");
  const char *file = o->files[0];
  Compilation c;
  compilation_init(&c, stderr);
  c.precision = o->precision;
  c.dump_after = o->dump_after;
  c.diag.color = o->color >= 0 ? o->color : c.diag.color;
  compilation_default_search(&c, argv0);
  char dir[4096] = "", tmp[4200] = "";
  const char *ingot = file, *source = file;
  BisectOptions b = {o->train.split, o->train.device, o->targets.fusion, o->targets.remat, 1, 0, 0};
  smelt_ingot *ig = NULL;
  int rc = 1;
  if (ends_with(file, ".ingot")) {   // the model, sizes and fusion mode it was built with
    if (tools_ingot_open(file, &ig)) {
      fprintf(stderr, "smelt: error: %s\n", smelt_last_error());
      compilation_free(&c);
      return 1;
    }
    source = smelt_ingot_meta(ig, "source");   // (one buffer per ingot: copied before the next lookup)
    source = source ? arena_strdup(&c.arena, source) : NULL;
    const char *fusion = smelt_ingot_meta(ig, "fusion");
    if (fusion && fusion_mode_parse(fusion, &b.fusion)) fusion = NULL;
    b.remat = smelt_ingot_meta(ig, "remat") != NULL;
    // its matmul tiles are its CPU's ("host:native": this machine's, as where it was built)
    const char *target = smelt_ingot_meta(ig, "target");
    b.tile_columns = codegen_tile_columns(target && !strncmp(target, "host:", 5) && strcmp(target, "host:native") ? target + 5 : NULL);
    const char *precision = smelt_ingot_meta(ig, "precision");
    if (precision && c.precision < 0) c.precision = precision_parse(precision);
    if (!source) {
      fprintf(stderr, "smelt: error: %s does not name its model file\n", file);
      goto out;
    }
    for (const char *l = ig->meta; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
      if (!strncmp(l, "size.", 5)) {
        char def[128];
        size_t len = strcspn(l + 5, "\n");
        snprintf(def, sizeof def, "%.*s", (int)len, l + 5);
        if (!add_define(o, def)) goto out;
      }
  }
  Module *m = module_load_file(&c, source);
  if (check_modules(&c, &m, 1, o->defs, o->ndefs) == 0 && !m->model) diag_plain(&c.diag, "%s has no model", source);
  if (c.diag.errors == 0) {
    if (!b.entry) b.entry = m->train ? "train_step" : "infer";
    if (!ig) {
      if (temp_ingot_create(dir, sizeof dir, tmp, sizeof tmp)) goto out;
      BuildTargets t = o->targets;
      char arch[32];
      if (!t.ngpus && strcmp(b.device, "cpu") && device_gpu_target(b.device, arch, sizeof arch) && gpu_target_known(arch))
        t.gpus[t.ngpus++] = arch;
      ingot = tmp;
      b.tile_columns = codegen_tile_columns(t.cpu);
      if (ingot_build(&c, m, o->defs, o->ndefs, &t, tmp)) goto out;
    }
    rc = bisect_run(&c, m, o->defs, o->ndefs, ingot, &b);
  }
out:
  if (c.diag.errors) fprintf(stderr, "%d error%s\n", c.diag.errors, c.diag.errors == 1 ? "" : "s");
  if (dir[0]) tempdir_remove(dir);
  smelt_ingot_close(ig);
  compilation_free(&c);
  return rc ? 1 : 0;
}

// `smelt train` / `smelt eval`: a .smelt file is built first (for this CPU)
// into a temporary ingot; an .ingot runs as it is.
// ---- an ONNX model where a model file goes

// The ONNX file of a check, build, explain, dump, graph, run, eval or bench
// command, imported into a private folder; the command then reads the model
// file written there, and run and eval load the imported weights unless
// --checkpoint names others. run's tensor files keep the ONNX names: the
// inputs are renamed to the model file's names, the outputs back.
typedef struct {
  char dir[4096];
  char model[4200], weights[4200], inputs[4200], outputs[4200];
  const char *user_outputs;
  const char *ingot;     // build: the ingot, beside which the weights go
  OnnxImport names;
} OnnxStage;

// The tensors of src written to dst with every name found in from[] renamed
// to the to[] of the same index, and those named in drop[] left out. 0, or
// 1 after the message.
static int rename_tensors(const char *src, const char *dst, char *const *from, char *const *to, int n,
                          char *const *drop, int ndrop) {
  char err[512];
  TensorReader *r = tensor_reader_open(src, err, sizeof err);
  if (!r) {
    fprintf(stderr, "smelt: error: %s\n", err);
    return 1;
  }
  int count = (int)tensor_reader_count(r);
  const char **names = xcalloc((size_t)count + 1, sizeof *names);
  uint32_t *dtypes = xcalloc((size_t)count + 1, sizeof *dtypes);
  Shape *shapes = xcalloc((size_t)count + 1, sizeof *shapes);
  void **data = xcalloc((size_t)count + 1, sizeof *data);
  bool ok = true;
  for (int i = 0; i < count && ok; i++) {
    const char *name;
    ok = tensor_reader_next(r, &name, &dtypes[i], &shapes[i]);
    if (!ok) break;
    bool dropped = false;
    for (int k = 0; k < ndrop && !dropped; k++) dropped = !strcmp(name, drop[k]);
    if (dropped) {   // read past, and the slot used again
      ok = tensor_reader_bytes(r, NULL, (uint64_t)dtype_size(dtypes[i]) * (uint64_t)shape_numel(&shapes[i]));
      i--;
      count--;
      continue;
    }
    names[i] = xstrdup(name);
    for (int k = 0; k < n; k++)
      if (!strcmp(name, from[k])) {
        free((char *)names[i]);
        names[i] = xstrdup(to[k]);
      }
    uint64_t bytes = (uint64_t)dtype_size(dtypes[i]) * (uint64_t)shape_numel(&shapes[i]);
    data[i] = xmalloc(bytes ? bytes : 1);
    ok = tensor_reader_bytes(r, data[i], bytes);
  }
  tensor_reader_close(r);
  if (!ok) fprintf(stderr, "smelt: error: '%s' is truncated or corrupt\n", src);
  TensorWriter *w = ok ? tensor_writer_open(dst, count, names, dtypes, shapes, err, sizeof err) : NULL;
  if (ok && !w) fprintf(stderr, "smelt: error: %s\n", err);
  for (int i = 0; w && i < count && ok; i++)
    ok = tensor_writer_bytes(w, data[i], (uint64_t)dtype_size(dtypes[i]) * (uint64_t)shape_numel(&shapes[i]));
  if (w && tensor_writer_close(w, ok, err, sizeof err)) {
    fprintf(stderr, "smelt: error: %s\n", err);
    ok = false;
  }
  for (int i = 0; i < count; i++) {
    free((char *)names[i]);
    free(data[i]);
  }
  free(names);
  free(dtypes);
  free(shapes);
  free(data);
  return ok && w ? 0 : 1;
}

// Imports o's ONNX file, if it names one, and points o at the result. The
// -D definitions bind the ONNX dim_params and are used up. 0, or 1.
static int onnx_stage_open(Options *o, OnnxStage *s) {
  memset(s, 0, sizeof *s);
  bool onnx = o->nfiles == 1 && ends_with(o->files[0], ".onnx");
  if (!onnx && o->inputs && strcmp(o->command, "run"))
    return bad_usage("%s --inputs gives the values of an ONNX model's inputs, and takes an .onnx file", o->command);
  if (!onnx) return 0;
  if (!strcmp(o->command, "train") || !strcmp(o->command, "sample") || !strcmp(o->command, "bisect") ||
      !strcmp(o->command, "init"))
    return bad_usage("%s takes a model file; an ONNX model has no loss or training: 'smelt import' it into one "
                     "and add them (docs/onnx.md)", o->command);
  char err[512];
  if (tempdir_create(s->dir, sizeof s->dir, err, sizeof err)) {
    fprintf(stderr, "smelt: error: %s\n", err);
    return 1;
  }
  snprintf(s->model, sizeof s->model, "%s/model.smelt", s->dir);
  snprintf(s->weights, sizeof s->weights, "%s/model.safetensors", s->dir);
  if (onnx_import(o->files[0], s->model, o->defs, o->ndefs, o->inputs, stderr, &s->names)) return 1;
  for (int i = 0; i < o->ndefs; i++) free((char *)o->defs[i].name);
  o->ndefs = 0;
  o->onnx_source = o->files[0];
  o->files[0] = s->model;
  if (s->names.weights && !o->train.checkpoint && !o->train.weights) o->train.weights = s->weights;
  if (!strcmp(o->command, "build") && s->names.weights) s->ingot = o->output;
  if (!strcmp(o->command, "run") && o->inputs) {
    snprintf(s->inputs, sizeof s->inputs, "%s/inputs.tensors", s->dir);
    if (rename_tensors(o->inputs, s->inputs, s->names.onnx, s->names.ident, s->names.ninputs, s->names.built,
                       s->names.nbuilt))
      return 1;
    o->inputs = s->inputs;
    if (o->outputs) {
      s->user_outputs = o->outputs;
      snprintf(s->outputs, sizeof s->outputs, "%s/outputs.tensors", s->dir);
      o->outputs = s->outputs;
    }
  }
  return 0;
}

// After the command: run's outputs under their ONNX names; the folder removed.
static int onnx_stage_close(OnnxStage *s, int rc) {
  if (rc == 0 && s->user_outputs) {
    int k = s->names.ninputs;
    rc = rename_tensors(s->outputs, s->user_outputs, s->names.ident + k, s->names.onnx + k, s->names.noutputs, NULL, 0);
  }
  if (rc == 0 && s->ingot) {   // the weights beside the ingot: IngotName.safetensors
    char path[4200];
    size_t n = strlen(s->ingot);
    snprintf(path, sizeof path, "%.*s.safetensors", (int)(ends_with(s->ingot, ".ingot") ? n - 6 : n), s->ingot);
    rc = rename_tensors(s->weights, path, NULL, NULL, 0, NULL, 0);
    if (rc == 0) fprintf(stderr, "the ONNX weights are in %s: run the ingot with --checkpoint=%s\n", path, path);
  }
  if (s->dir[0]) tempdir_remove(s->dir);
  onnx_import_free(&s->names);
  return rc;
}

static int train_or_eval(Options *o, const char *argv0) {
  if (o->nfiles != 1) return bad_usage("%s takes one model or ingot file", o->command);
  if (o->train.resume && !o->train.checkpoint) return bad_usage("%s needs --checkpoint=PATH", "--resume");
  if (o->train.resume && o->train.force)
    return bad_usage("%s continues the checkpoint; --force starts over and replaces it", "--resume");
  if ((o->train.force || o->train.keep > 1) && !o->train.checkpoint)
    return bad_usage("%s needs --checkpoint=PATH", o->train.force ? "--force" : "--keep");
  if (o->train.resume && o->train.weights)
    return bad_usage("%s continues from the checkpoint's parameters; --weights starts from others", "--resume");
  if (!strcmp(o->command, "run") && !o->inputs) return bad_usage("%s needs --inputs=FILE (a tensor file)", "run");
  if (!strcmp(o->command, "train") && train_may_start(&o->train)) return 1;   // before a build
  const char *file = o->files[0];
  o->train.source = o->onnx_source ? o->onnx_source : file;
  size_t n = strlen(file);
  bool is_ingot = n > 6 && !strcmp(file + n - 6, ".ingot");
  char dir[4096] = "", tmp[4200] = "";
  if (!is_ingot) {
    if (!strcmp(o->command, "train")) interrupt_note(train_interrupt_note(&o->train, "while building the model"));
    if (temp_ingot_create(dir, sizeof dir, tmp, sizeof tmp)) return 1;
    Compilation c;
    compilation_init(&c, stderr);
    c.precision = o->precision;
    c.dump_after = o->dump_after;
    c.diag.color = o->color >= 0 ? o->color : c.diag.color;
    compilation_default_search(&c, argv0);
    Module *m = module_load_file(&c, file);
    int errors = check_modules(&c, &m, 1, o->defs, o->ndefs);
    if (!errors) {
      BuildTargets t = o->targets;
      t.cpu = !o->cpu || !strcmp(o->cpu, "native") ? NULL : o->cpu;
      // started by mpirun as one of several ranks: the step in two (docs/distributed.md)
      t.data_parallel = !strcmp(o->command, "train") && dist_env_size() > 1;
      // with no --target, also build for the GPU the device would take
      char arch[32];
      if (!t.ngpus && strcmp(o->train.device, "cpu") && device_gpu_target(o->train.device, arch, sizeof arch) &&
          gpu_target_known(arch))
        t.gpus[t.ngpus++] = arch;
      if (!dist_env_rank())   // every rank builds; rank 0 says so
        fprintf(stderr, "building %s for this CPU%s%s...\n", o->onnx_source ? o->onnx_source : file,
                t.ngpus ? " and " : "", t.ngpus ? t.gpus[0] : "");
      errors = ingot_build(&c, m, o->defs, o->ndefs, &t, tmp) ? 1 : 0;
    }
    if (errors) fprintf(stderr, "%d error%s\n", c.diag.errors, c.diag.errors == 1 ? "" : "s");
    compilation_free(&c);
    if (errors) {
      tempdir_remove(dir);
      return 1;
    }
    o->train.ingot = tmp;
  } else {
    o->train.ingot = file;
  }
  int rc = !strcmp(o->command, "train") ? train_run(&o->train)
           : !strcmp(o->command, "eval") ? eval_run(&o->train)
           : run_main(&o->train, o->inputs, o->outputs);
  if (dir[0]) tempdir_remove(dir);
  return rc;
}

// What one stage of the compiler made of m (dump --stage, graph --dot).
static int print_graph(Compilation *c, Module *m, const Options *o) {
  const char *stage = o->stage ? o->stage : o->fused ? "fused" : "graph";
  DumpOptions d = {stage, o->train.split, o->targets.ngpus ? o->targets.gpus[0] : NULL, o->cpu, o->infer, o->dot,
                   o->targets.fusion, o->targets.remat, o->defs, o->ndefs};
  return pipeline_dump(c, m, &d, stdout);
}

static int run(const Options *o, const char *argv0) {
  double start = time_now();
  bool dump = strcmp(o->command, "dump") == 0, graph = strcmp(o->command, "graph") == 0;
  bool ast = dump && o->stage && !strcmp(o->stage, "ast");
  bool gstage = (dump && o->stage && !ast && dump_stage_known(o->stage)) || graph;
  if (dump && !ast && !gstage)
    return bad_usage("dump needs --stage=ast, graph, grad, simplified, fused, plan, llvm, ptx, amdgcn or asm, not '%s'",
                     o->stage ? o->stage : "nothing");
  if (graph && !o->dot) return bad_usage("%s needs --dot", "graph");
  bool explain = strcmp(o->command, "explain") == 0;
  if (explain && o->nfiles != 1) return bad_usage("%s takes one model file", "explain");
  bool init = strcmp(o->command, "init") == 0, build = strcmp(o->command, "build") == 0;
  if (init && (!o->output || o->nfiles != 1)) return bad_usage("%s needs one model file and -o WEIGHTS", "init");
  if (build && (!o->output || o->nfiles != 1)) return bad_usage("%s needs one model file and -o FILE.ingot", "build");
  if ((dump || graph) && o->nfiles != 1) return bad_usage("%s takes one model file", o->command);
  static char note[4200];   // the ingot is written whole or not at all
  if (build) snprintf(note, sizeof note, "while building: %s was not written", o->output), interrupt_note(note);
  Compilation c;
  compilation_init(&c, stderr);
  c.precision = o->precision;
  c.dump_after = o->dump_after;
  if (o->color >= 0) c.diag.color = o->color;
  c.diag.max_errors = o->max_errors;
  Module **mods = xcalloc((size_t)o->nfiles, sizeof *mods);
  int errors = check_files(&c, o, argv0, mods);
  if (errors == 0) {
    for (int i = 0; i < o->nfiles; i++) {
      if (ast || gstage) print_graph(&c, mods[i], o);
      else if (init) write_init(&c, mods[i], o);
      else if (build) build_ingot(&c, mods[i], o);
      else if (explain) explain_file(&c, mods[i], o);
      else if (!strcmp(o->command, "check")) {
        if (o->summary) print_summary(&c, mods[i], o);
        check_memory(&c, mods[i], o);
      }
    }
    errors = c.diag.errors;
  }
  if (errors) {
    fprintf(stderr, "%d error%s\n", errors, errors == 1 ? "" : "s");
  }
  if (o->time) time_print(stderr, start);
  free(mods);
  compilation_free(&c);
  return errors ? 1 : 0;
}

int main(int argc, char **argv) {
  OptResult r;
  int rc = options_parse(&cli, argc, argv, &r);
  if (rc) return rc < 0 ? 0 : rc;
  Options o;
  rc = options_from(&r, &o);
  options_result_free(&r);
  OnnxStage onnx;
  if (rc == 0 && strcmp(o.command, "import") && strcmp(o.command, "plot")) rc = onnx_stage_open(&o, &onnx);
  else memset(&onnx, 0, sizeof onnx);
  if (rc < 0) rc = 0;   // asked for a list, and got it
  else if (rc == 0) {
    const char *cmd = o.command;
    if (!strcmp(cmd, "train") || !strcmp(cmd, "eval") || !strcmp(cmd, "run")) rc = train_or_eval(&o, argv[0]);
    else if (!strcmp(cmd, "bench")) rc = bench_main(&o, argv[0]);
    else if (!strcmp(cmd, "sample")) rc = sample_main(&o, argv[0]);
    else if (!strcmp(cmd, "bisect")) rc = bisect_main(&o, argv[0]);
    else if (!strcmp(cmd, "inspect")) rc = inspect_ingot(o.files[0], stdout, o.all);
    else if (!strcmp(cmd, "plot"))
      rc = o.output ? plot_main(o.files[0], o.output) : bad_usage("%s needs a --log-dir folder and -o FILE.svg or FILE.png", "plot");
    else if (!strcmp(cmd, "import"))
      rc = !o.output || o.nfiles != 1 ? bad_usage("%s needs one ONNX file and -o FILE.smelt", "import")
                                      : onnx_import(o.files[0], o.output, o.defs, o.ndefs, o.inputs, stderr, NULL);
    else rc = run(&o, argv[0]);
  }
  rc = onnx_stage_close(&onnx, rc);
  options_free(&o);
  return rc;
}
