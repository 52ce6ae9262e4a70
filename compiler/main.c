// main.c: the smelt command line.
//
//   smelt check [--summary] FILE...     parse and check model files
//   smelt dump --stage=ast FILE         print a stage of the compiler
//   smelt --version | help
//
// Exit status: 0 when every file is clean, 1 when any has an error, 2 when the
// command line itself is wrong.
#include "compiler.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
  fputs("usage: smelt <command> [options] FILE...\n"
        "\n"
        "commands:\n"
        "  check FILE...          parse and check model files; report every error\n"
        "      --summary          also print what each file declares\n"
        "  dump --stage=ast FILE  print the parsed syntax tree\n"
        "  help                   this text\n"
        "\n"
        "options for every command:\n"
        "  --color=auto|always|never   colour in diagnostics (auto: on a terminal,\n"
        "                              never when NO_COLOR is set)\n"
        "  --max-errors=N              stop reporting after N errors (default 20, 0: all)\n"
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
  int color;        // -1 auto, 0 never, 1 always
  int max_errors;
} Options;

static int bad_usage(const char *fmt, const char *arg) {
  fprintf(stderr, "smelt: error: ");
  fprintf(stderr, fmt, arg);
  fputs("\n(run 'smelt help' for usage)\n", stderr);
  return 2;
}

static int parse_options(int argc, char **argv, Options *o) {
  *o = (Options){.command = argv[1], .color = -1, .max_errors = 20};
  o->files = xcalloc((size_t)argc, sizeof *o->files);
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--summary") == 0 && strcmp(o->command, "check") == 0) o->summary = true;
    else if (strncmp(a, "--stage=", 8) == 0 && strcmp(o->command, "dump") == 0) o->stage = a + 8;
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
  for (int i = 0; i < c->nmodules; i++) resolve_module(c, c->modules[i]);
  return c->diag.errors;
}

static int run(const Options *o, const char *argv0) {
  bool dump = strcmp(o->command, "dump") == 0;
  if (dump && (!o->stage || strcmp(o->stage, "ast") != 0))
    return bad_usage("dump needs --stage=ast (the only stage this version has), not '%s'",
                     o->stage ? o->stage : "nothing");
  if (dump && o->nfiles != 1) return bad_usage("%s takes one model file", "dump");
  Compilation c;
  compilation_init(&c, stderr);
  if (o->color >= 0) c.diag.color = o->color;
  c.diag.max_errors = o->max_errors;
  Module **mods = xcalloc((size_t)o->nfiles, sizeof *mods);
  int errors = check_files(&c, o, argv0, mods);
  if (errors == 0) {
    for (int i = 0; i < o->nfiles; i++) {
      if (dump) dump_ast(stdout, mods[i]->ast);
      else if (o->summary) summary_print(stdout, mods[i]);
    }
  } else {
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
  if (strcmp(argv[1], "check") != 0 && strcmp(argv[1], "dump") != 0)
    return bad_usage("unknown command '%s'; this version has check and dump", argv[1]);
  Options o;
  int rc = parse_options(argc, argv, &o);
  if (rc == 0) rc = run(&o, argv[0]);
  free(o.files);
  return rc;
}
