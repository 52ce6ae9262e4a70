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
#include "runtime.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out) {
  fputs("usage: smelt <command> [options] FILE...\n"
        "\n"
        "commands:\n"
        "  check FILE...          parse and check model files; report every error\n"
        "      --summary          also print what each file declares\n"
        "  dump --stage=STAGE FILE\n"
        "                         print a stage: ast (syntax tree), graph (op graph\n"
        "                         of the forward pass), grad (the training step:\n"
        "                         forward, backward and optimizer), simplified, fused\n"
        "                         (kernels), plan (launches and arena), llvm (LLVM IR\n"
        "                         of the kernels), ptx, amdgcn, asm (x86-64); of\n"
        "                         --entry=E, for --target=T, --precision=P\n"
        "      --dump-after=PASS  (any command that compiles) print what a pass made:\n"
        "                         elaborate, precision, autodiff, outputs, simplify,\n"
        "                         remat, conv_gemm, matmul, kernels, memplan, codegen\n"
        "  graph --dot FILE       the op graph as Graphviz DOT, clustered by layer\n"
        "      --fused            clustered by kernel instead (of --entry=E)\n"
        "  explain FILE           every kernel of an entry point (--entry=E, default\n"
        "                         train_step, else infer) in schedule order: ops,\n"
        "                         source lines, bytes, FLOPs, and why each tensor it\n"
        "                         reads was not fused; compared with fusion off\n"
        "      --memory           the arena instead: peak against the sum of\n"
        "                         intermediates, the largest live set\n"
        "      --svg=FILE         draw the buffer lifetimes there\n"
        "  build FILE -o INGOT    compile the model's entry points into an ingot\n"
        "      --target=LIST      comma-separated targets besides the host's x86-64:\n"
        "                         NVIDIA sm_80, sm_90, ... (PTX, and a cubin when\n"
        "                         ptxas is installed), AMD gfx90a, gfx942, gfx1100\n"
        "                         (code objects, linked with ld.lld)\n"
        "      --cpu=NAME         the x86-64 CPU to compile for (default x86-64-v3;\n"
        "                         native: this machine's)\n"
        "      --fusion=MODE      all (default), pointwise or none (also for train,\n"
        "                         explain and graph; docs/fusion.md)\n"
        "      --remat            recompute cheap forward values in the backward\n"
        "                         pass instead of keeping them (also for train,\n"
        "                         explain)\n"
        "      --entry=infer      the inference entry alone: no labels, loss,\n"
        "                         gradients or optimizer state\n"
        "      --precision=P      fp32, tf32, bf16 or fp16 instead of the train\n"
        "                         block's (also for train, explain, bisect;\n"
        "                         docs/precision.md)\n"
        "  train FILE             build (a .smelt) and run its train block:\n"
        "      --epochs=N --steps=N       override the train block's length\n"
        "      --device=D                 auto (default: CUDA, else HIP, else the\n"
        "                                 CPU), cpu, cuda[:N], hip[:N]\n"
        "      --threads=N                CPU threads (default: one per core)\n"
        "      --checkpoint=PATH          save here (every --checkpoint-every=N steps\n"
        "                                 or the train block's, and at the end)\n"
        "      --resume                   continue from --checkpoint\n"
        "      --stop-after=N             end this run after N steps (resume later)\n"
        "  eval FILE              loss and accuracy on the test (or --split=) data;\n"
        "                         --checkpoint=PATH loads trained weights first\n"
        "  run FILE --inputs=T    one run of --entry= (default infer) on the tensors\n"
        "                         in file T (docs/tensors.md); --outputs=FILE\n"
        "                         writes the outputs there instead of printing\n"
        "  bisect FILE            run an entry (--entry=E) kernel by kernel on a\n"
        "                         device (--device=D) against the interpreter on\n"
        "                         random inputs; name the first kernel that\n"
        "                         diverges (FILE: .smelt, or an .ingot built from it)\n"
        "  sample FILE            text from a trained character-level model (B = 1):\n"
        "                         --checkpoint=C --prompt=TEXT --length=N (200)\n"
        "                         --temperature=X (1; 0: the most likely byte)\n"
        "                         --top-k=K (0: all) --seed=N (the same text for\n"
        "                         the same seed) --device=D\n"
        "  bench FILE             latency of whole runs of --entry=E (default infer):\n"
        "                         median, p99, mean, min over --runs=N (1000); a\n"
        "                         model file is built with B = --batch=N (and -D),\n"
        "                         inference-only for infer; --device, --threads\n"
        "  bench --profile INGOT  per-kernel times of an entry: --entry=E (default\n"
        "                         train_step), --device=D, --runs=N (default 20)\n"
        "  inspect INGOT          sections, entry points, tensors (--all: also\n"
        "                         temporaries and kernels)\n"
        "  init FILE -o WEIGHTS   write the initial parameters and optimizer state\n"
        "                         (docs/tensors.md)\n"
        "      --seed=N           the seed of the initializers (default 1)\n"
        "      --params-only      leave out the optimizer state\n"
        "  help                   this text\n"
        "\n"
        "options for every command:\n"
        "  --color=auto|always|never   colour in diagnostics (auto: on a terminal,\n"
        "                              never when NO_COLOR is set)\n"
        "  --max-errors=N              stop reporting after N errors (default 20, 0: all)\n"
        "  -D NAME=VALUE               set a model size (check, dump, graph, init,\n"
        "                              build, train)\n"
        "  --infer                     build the graph with training = false\n"
        "\n"
        "Imports are looked up in the model file's folder, then the stdlib folder,\n"
        "then each folder of SMELT_PATH. See docs/language.md.\n",
        out);
}

typedef struct {
  const char *command;
  const char *stage;
  const char **files;
  int nfiles;
  bool summary;
  bool dot, fused;
  bool memory;
  const char *svg;
  bool infer;
  int color;        // -1 auto, 0 never, 1 always
  int max_errors;
  Define defs[32];
  int ndefs;
  const char *output;
  uint64_t seed;
  bool params_only;
  const char *cpu;
  BuildTargets targets;
  int precision;                  // --precision, or -1: the train block's
  TrainOptions train;
  const char *inputs, *outputs;   // smelt run
  const char *dump_after;         // --dump-after=PASS
} Options;

// Parses "NAME=VALUE" into o->defs; returns false when malformed.
static bool add_define(Options *o, const char *arg) {
  const char *eq = strchr(arg, '=');
  if (!eq || eq == arg || o->ndefs == 32) return false;
  char *end;
  long long v = strtoll(eq + 1, &end, 10);
  if (*end || end == eq + 1) return false;
  char *name = xmalloc((size_t)(eq - arg) + 1);
  memcpy(name, arg, (size_t)(eq - arg));
  name[eq - arg] = '\0';
  o->defs[o->ndefs++] = (Define){name, v};
  return true;
}

static int bad_usage(const char *fmt, const char *arg) {
  fprintf(stderr, "smelt: error: ");
  fprintf(stderr, fmt, arg);
  fputs("\n(run 'smelt help' for usage)\n", stderr);
  return 2;
}

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

// Builds a model file into the temporary ingot tmp for a run on device:
// this CPU, and the GPU the device would take; infer_only for benchmarks.
static int build_for_device(const char *argv0, const char *file, const Define *defs, int ndefs, int precision,
                            const char *device, bool infer_only, const char *tmp) {
  Compilation c;
  compilation_init(&c, stderr);
  c.precision = precision;
  compilation_default_search(&c, argv0);
  Module *m = module_load_file(&c, file);
  int errors = check_modules(&c, &m, 1, defs, ndefs);
  if (!errors) {
    BuildTargets t = {.infer_only = infer_only};
    char arch[32];
    if (strcmp(device, "cpu") && device_gpu_target(device, arch, sizeof arch) && gpu_target_known(arch)) t.gpus[t.ngpus++] = arch;
    fprintf(stderr, "building %s for this CPU%s%s...\n", file, t.ngpus ? " and " : "", t.ngpus ? t.gpus[0] : "");
    errors = ingot_build(&c, m, defs, ndefs, &t, tmp) ? 1 : 0;
  }
  if (errors) fprintf(stderr, "%d error%s\n", c.diag.errors, c.diag.errors == 1 ? "" : "s");
  compilation_free(&c);
  return errors ? 1 : 0;
}

// `smelt bench FILE [--entry=E] [--batch=N] [--runs=N] [--device=D] [--threads=N] [-D N=V]`:
// the latency of whole runs of an entry (default infer; a model file is
// built with B = --batch, inference-only for infer);
// `smelt bench --profile INGOT [--entry=E] [--device=D] [--runs=N]`: per kernel.
static int bench_main(int argc, char **argv) {
  const char *file = NULL, *entry = NULL, *device = "auto";
  bool profile = false;
  int runs = 0, threads = 0, precision = -1;
  long long batch = 0;
  Options o = {.ndefs = 0};
  int rc = 2;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--profile")) profile = true;
    else if (!strncmp(a, "--entry=", 8)) entry = a + 8;
    else if (!strncmp(a, "--device=", 9)) device = a + 9;
    else if (!strncmp(a, "--runs=", 7) && atoi(a + 7) > 0) runs = atoi(a + 7);
    else if (!strncmp(a, "--threads=", 10) && atoi(a + 10) > 0) threads = atoi(a + 10);
    else if (!strncmp(a, "--batch=", 8) && atoll(a + 8) > 0) batch = atoll(a + 8);
    else if (!strncmp(a, "--precision=", 12) && (precision = precision_parse(a + 12)) >= 0) continue;
    else if (!strcmp(a, "-D") || !strncmp(a, "-D", 2)) {
      const char *def = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : "");
      if (!add_define(&o, def)) return options_free(&o), bad_usage("-D needs NAME=INTEGER, not '%s'", def);
    } else if (a[0] == '-') return options_free(&o), bad_usage("bench: unknown or bad option '%s'", a);
    else if (file) return options_free(&o), bad_usage("bench takes one file, not also '%s'", a);
    else file = a;
  }
  if (!file) {
    options_free(&o);
    return bad_usage("usage: smelt bench FILE [--entry=E] [--batch=N] [--runs=N] [--device=D] [--threads=N]\n"
                     "       smelt bench --profile INGOT [--entry=E] [--device=D] [--runs=N]%s", "");
  }
  if (profile) {
    rc = gpu_profile(file, entry ? entry : "train_step", device, runs ? runs : 20);
    options_free(&o);
    return rc;
  }
  entry = entry ? entry : "infer";
  char tmp[64] = "";
  if (!ends_with(file, ".ingot")) {
    if (batch) {
      char def[64];
      snprintf(def, sizeof def, "B=%lld", batch);
      add_define(&o, def);
    }
    snprintf(tmp, sizeof tmp, "/tmp/smelt-bench-%ld.ingot", (long)getpid());
    if (build_for_device(argv[0], file, o.defs, o.ndefs, precision, device, !strcmp(entry, "infer"), tmp)) {
      options_free(&o);
      return 1;
    }
    file = tmp;
  } else if (batch || o.ndefs) {
    options_free(&o);
    return bad_usage("--batch and -D size a model file; an ingot keeps the sizes it was built with (%s)", file);
  }
  rc = latency_bench(file, entry, device, threads, runs ? runs : 1000);
  if (tmp[0]) unlink(tmp);
  options_free(&o);
  return rc;
}

// `smelt sample FILE [--checkpoint=C] [--prompt=S] [--length=N] [--temperature=X]
// [--top-k=K] [--seed=N] [--device=D] [--threads=N] [-D N=V]`
static int sample_main(int argc, char **argv) {
  SampleOptions so = {.device = "auto", .prompt = "", .length = 200, .temperature = 1.0, .seed = 1};
  const char *file = NULL;
  Options o = {.ndefs = 0};
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    char *end = NULL;
    if (!strncmp(a, "--checkpoint=", 13)) so.checkpoint = a + 13;
    else if (!strncmp(a, "--prompt=", 9)) so.prompt = a + 9;
    else if (!strncmp(a, "--device=", 9)) so.device = a + 9;
    else if (!strncmp(a, "--length=", 9) && (so.length = strtoll(a + 9, &end, 10)) >= 0 && !*end) continue;
    else if (!strncmp(a, "--temperature=", 14) && (so.temperature = strtod(a + 14, &end)) >= 0 && !*end) continue;
    else if (!strncmp(a, "--top-k=", 8) && (so.top_k = (int)strtol(a + 8, &end, 10)) >= 0 && !*end) continue;
    else if (!strncmp(a, "--seed=", 7) && (so.seed = strtoull(a + 7, &end, 10), !*end)) continue;
    else if (!strncmp(a, "--threads=", 10) && (so.threads = atoi(a + 10)) > 0) continue;
    else if (!strcmp(a, "-D") || !strncmp(a, "-D", 2)) {
      const char *def = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : "");
      if (!add_define(&o, def)) return options_free(&o), bad_usage("-D needs NAME=INTEGER, not '%s'", def);
    } else if (a[0] == '-') return options_free(&o), bad_usage("sample: unknown or bad option '%s'", a);
    else if (file) return options_free(&o), bad_usage("sample takes one file, not also '%s'", a);
    else file = a;
  }
  if (!file) {
    options_free(&o);
    return bad_usage("usage: smelt sample FILE [--checkpoint=C] [--prompt=TEXT] [--length=N] [--temperature=X] "
                     "[--top-k=K] [--seed=N] [--device=D]%s", "");
  }
  char tmp[64] = "";
  if (!ends_with(file, ".ingot")) {   // one sequence at a time: B = 1, the infer entry alone
    add_define(&o, "B=1");
    snprintf(tmp, sizeof tmp, "/tmp/smelt-sample-%ld.ingot", (long)getpid());
    if (build_for_device(argv[0], file, o.defs, o.ndefs, -1, so.device, true, tmp)) {
      options_free(&o);
      return 1;
    }
    file = tmp;
  }
  so.ingot = file;
  int rc = sample_run(&so);
  if (tmp[0]) unlink(tmp);
  options_free(&o);
  return rc;
}


static int parse_options(int argc, char **argv, Options *o) {
  *o = (Options){.command = argv[1], .color = -1, .max_errors = 20, .seed = 1, .precision = -1};
  o->train = (TrainOptions){.device = "auto", .log_every = 50};
  o->files = xcalloc((size_t)argc, sizeof *o->files);
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--summary") == 0 && strcmp(o->command, "check") == 0) o->summary = true;
    else if (strncmp(a, "--stage=", 8) == 0 && strcmp(o->command, "dump") == 0) o->stage = a + 8;
    else if (strcmp(a, "--dot") == 0 && strcmp(o->command, "graph") == 0) o->dot = true;
    else if (strcmp(a, "--fused") == 0 && strcmp(o->command, "graph") == 0) o->fused = true;
    else if (strcmp(a, "--memory") == 0 && strcmp(o->command, "explain") == 0) o->memory = true;
    else if (strncmp(a, "--svg=", 6) == 0 && strcmp(o->command, "explain") == 0) o->svg = a + 6;
    else if (strcmp(a, "--remat") == 0) o->targets.remat = true;
    else if (strncmp(a, "--dump-after=", 13) == 0) {
      if (pass_parse(o->dump_after = a + 13) < 0) return bad_usage("--dump-after takes a pass of the pipeline, not '%s'", a + 13);
    }
    else if (strncmp(a, "--precision=", 12) == 0) {
      if ((o->precision = precision_parse(a + 12)) < 0)
        return bad_usage("--precision takes fp32, tf32, bf16 or fp16, not '%s'", a + 12);
    }
    else if (strncmp(a, "--fusion=", 9) == 0) {
      if (fusion_mode_parse(a + 9, &o->targets.fusion)) return bad_usage("--fusion takes none, pointwise or all, not '%s'", a + 9);
    }
    else if (strcmp(a, "--infer") == 0) o->infer = true;
    else if (strcmp(a, "-o") == 0 && i + 1 < argc) o->output = argv[++i];
    else if (strncmp(a, "--seed=", 7) == 0) o->seed = strtoull(a + 7, NULL, 10);
    else if (strcmp(a, "--params-only") == 0) o->params_only = true;
    else if (strncmp(a, "--cpu=", 6) == 0) o->cpu = a + 6;
    else if (strncmp(a, "--target=", 9) == 0) {
      if (parse_targets(a + 9, &o->targets)) return 2;
    }
    else if (strncmp(a, "--epochs=", 9) == 0) o->train.epochs = strtoll(a + 9, NULL, 10);
    else if (strncmp(a, "--steps=", 8) == 0) o->train.steps = strtoll(a + 8, NULL, 10);
    else if (strncmp(a, "--device=", 9) == 0) o->train.device = a + 9;
    else if (strncmp(a, "--threads=", 10) == 0) o->train.threads = atoi(a + 10);
    else if (strncmp(a, "--checkpoint=", 13) == 0) o->train.checkpoint = a + 13;
    else if (strncmp(a, "--checkpoint-every=", 19) == 0) o->train.checkpoint_every = strtoll(a + 19, NULL, 10);
    else if (strcmp(a, "--resume") == 0) o->train.resume = true;
    else if (strncmp(a, "--stop-after=", 13) == 0) o->train.stop_after = strtoll(a + 13, NULL, 10);
    else if (strncmp(a, "--log-every=", 12) == 0) o->train.log_every = strtoll(a + 12, NULL, 10);
    else if (strncmp(a, "--split=", 8) == 0) o->train.split = a + 8;
    else if (strncmp(a, "--entry=", 8) == 0) o->train.split = a + 8;
    else if (strncmp(a, "--inputs=", 9) == 0) o->inputs = a + 9;
    else if (strncmp(a, "--outputs=", 10) == 0) o->outputs = a + 10;
    else if (strcmp(a, "-D") == 0 || strncmp(a, "-D", 2) == 0) {
      const char *def = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : "");
      if (!add_define(o, def)) return bad_usage("-D needs NAME=INTEGER, not '%s'", def);
    }
    else if (strcmp(a, "--color=auto") == 0) o->color = -1;
    else if (strcmp(a, "--color=always") == 0) o->color = 1;
    else if (strcmp(a, "--color=never") == 0) o->color = 0;
    else if (strncmp(a, "--max-errors=", 13) == 0) {
      char *end;
      long n = strtol(a + 13, &end, 10);
      if (*end || n < 0 || n > 1000000) return bad_usage("bad --max-errors value '%s'", a + 13);
      o->max_errors = (int)n;
    } else if (a[0] == '-' && a[1]) return bad_usage("unknown option '%s'", a);
    else o->files[o->nfiles++] = a;
  }
  if (o->nfiles == 0) return bad_usage("'%s' needs at least one model file", o->command);
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

// Writes the initial value of every parameter of m's model and, when the file
// has a train block, of the optimizer's state (moments and step, all zero).
static int write_init(Compilation *c, Module *m, const Options *o) {
  Entry e;   // the training step, whose optimizer adds state (elaborated alone with --params-only)
  int rc = pipeline_entry(c, m, "step", &(EntryOptions){o->defs, o->ndefs, .last = o->params_only ? PASS_ELABORATE : PASS_AUTODIFF}, &e);
  Graph g = e.g;
  if (rc == 0) {
    TensorEntry *t = xcalloc((size_t)g.n + 1, sizeof *t);
    int n = 0;
    for (int i = 0; i < g.n; i++) {
      Node *p = g.nodes[i];
      if (p->op != OP_PARAM && p->op != OP_STATE) continue;
      int64_t cnt = shape_numel(&p->shape);
      t[n] = (TensorEntry){p->name, p->shape, xmalloc(sizeof(double) * (size_t)(cnt ? cnt : 1))};
      init_fill(p, o->seed, t[n].data);
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
  summary_print(stdout, m);
  if (!m->model) return;
  Entry e;
  if (pipeline_entry(c, m, "step", &(EntryOptions){o->defs, o->ndefs, .last = PASS_AUTODIFF}, &e) == 0)
    summary_graph(stdout, &e.g, e.forward);
  entry_free(&e);
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
  ingot_build(c, m, o->defs, o->ndefs, &t, o->output);
}

static void explain_file(Compilation *c, Module *m, const Options *o) {
  if (!m->model) {
    diag_plain(&c->diag, "%s has no model to explain", m->path);
    return;
  }
  const char *entry = o->train.split ? o->train.split : m->train ? "train_step" : "infer";
  ExplainOptions e = {entry, o->targets.fusion, o->targets.remat, o->memory, o->svg};
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
  char tmp[64] = "";
  const char *ingot = file, *source = file;
  BisectOptions b = {o->train.split, o->train.device, o->targets.fusion, o->targets.remat, 1, 0};
  smelt_ingot *ig = NULL;
  int rc = 1;
  if (ends_with(file, ".ingot")) {   // the model, sizes and fusion mode it was built with
    if (smelt_ingot_open(file, &ig)) {
      fprintf(stderr, "smelt: error: %s\n", smelt_last_error());
      compilation_free(&c);
      return 1;
    }
    source = smelt_ingot_meta(ig, "source");   // (one buffer per ingot: copied before the next lookup)
    source = source ? arena_strdup(&c.arena, source) : NULL;
    const char *fusion = smelt_ingot_meta(ig, "fusion");
    if (fusion && fusion_mode_parse(fusion, &b.fusion)) fusion = NULL;
    b.remat = smelt_ingot_meta(ig, "remat") != NULL;
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
      snprintf(tmp, sizeof tmp, "/tmp/smelt-bisect-%ld.ingot", (long)getpid());
      BuildTargets t = o->targets;
      char arch[32];
      if (!t.ngpus && strcmp(b.device, "cpu") && device_gpu_target(b.device, arch, sizeof arch) && gpu_target_known(arch))
        t.gpus[t.ngpus++] = arch;
      ingot = tmp;
      if (ingot_build(&c, m, o->defs, o->ndefs, &t, tmp)) goto out;
    }
    rc = bisect_run(&c, m, o->defs, o->ndefs, ingot, &b);
  }
out:
  if (c.diag.errors) fprintf(stderr, "%d error%s\n", c.diag.errors, c.diag.errors == 1 ? "" : "s");
  if (tmp[0]) unlink(tmp);
  smelt_ingot_close(ig);
  compilation_free(&c);
  return rc ? 1 : 0;
}

// `smelt train` / `smelt eval`: a .smelt file is built first (for this CPU)
// into a temporary ingot; an .ingot runs as it is.
static int train_or_eval(Options *o, const char *argv0) {
  if (o->nfiles != 1) return bad_usage("%s takes one model or ingot file", o->command);
  if (o->train.resume && !o->train.checkpoint) return bad_usage("%s needs --checkpoint=PATH", "--resume");
  if (!strcmp(o->command, "run") && !o->inputs) return bad_usage("%s needs --inputs=FILE (a tensor file)", "run");
  const char *file = o->files[0];
  size_t n = strlen(file);
  bool is_ingot = n > 6 && !strcmp(file + n - 6, ".ingot");
  char tmp[64] = "";
  if (!is_ingot) {
    snprintf(tmp, sizeof tmp, "/tmp/smelt-%ld.ingot", (long)getpid());
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
      // with no --target, also build for the GPU the device would take
      char arch[32];
      if (!t.ngpus && strcmp(o->train.device, "cpu") && device_gpu_target(o->train.device, arch, sizeof arch) &&
          gpu_target_known(arch))
        t.gpus[t.ngpus++] = arch;
      fprintf(stderr, "building %s for this CPU%s%s...\n", file, t.ngpus ? " and " : "", t.ngpus ? t.gpus[0] : "");
      errors = ingot_build(&c, m, o->defs, o->ndefs, &t, tmp) ? 1 : 0;
    }
    if (errors) fprintf(stderr, "%d error%s\n", c.diag.errors, c.diag.errors == 1 ? "" : "s");
    compilation_free(&c);
    if (errors) return 1;
    o->train.ingot = tmp;
  } else {
    o->train.ingot = file;
  }
  int rc = !strcmp(o->command, "train") ? train_run(&o->train)
           : !strcmp(o->command, "eval") ? eval_run(&o->train)
           : run_main(&o->train, o->inputs, o->outputs);
  if (tmp[0]) unlink(tmp);
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
      else if (o->summary) print_summary(&c, mods[i], o);
    }
    errors = c.diag.errors;
  }
  if (errors) {
    fprintf(stderr, "%d error%s\n", errors, errors == 1 ? "" : "s");
  }
  free(mods);
  compilation_free(&c);
  return errors ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
      strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("smelt %s\n", SMELT_VERSION);
    return 0;
  }
  if (!strcmp(argv[1], "train") || !strcmp(argv[1], "eval") || !strcmp(argv[1], "run")) {
    Options o;
    int rc = parse_options(argc, argv, &o);
    if (rc == 0) rc = train_or_eval(&o, argv[0]);
    options_free(&o);
    return rc;
  }
  if (strcmp(argv[1], "bench") == 0) return bench_main(argc, argv);
  if (strcmp(argv[1], "sample") == 0) return sample_main(argc, argv);
  if (strcmp(argv[1], "bisect") == 0) {
    Options o;
    int rc = parse_options(argc, argv, &o);
    if (rc == 0) rc = bisect_main(&o, argv[0]);
    options_free(&o);
    return rc;
  }
  if (strcmp(argv[1], "inspect") == 0) {
    bool all = argc > 2 && !strcmp(argv[2], "--all");
    if (argc != 3 + all) return bad_usage("%s takes one ingot file (and optionally --all)", "inspect");
    return inspect_ingot(argv[2 + all], stdout, all);
  }
  if (strcmp(argv[1], "check") != 0 && strcmp(argv[1], "dump") != 0 &&
      strcmp(argv[1], "graph") != 0 && strcmp(argv[1], "init") != 0 && strcmp(argv[1], "build") != 0 &&
      strcmp(argv[1], "explain") != 0)
    return bad_usage("unknown command '%s' (the commands are check, dump, graph, explain, build, train, eval, "
                     "run, bisect, bench, inspect and init)", argv[1]);
  Options o;
  int rc = parse_options(argc, argv, &o);
  if (rc == 0) rc = run(&o, argv[0]);
  options_free(&o);
  return rc;
}
