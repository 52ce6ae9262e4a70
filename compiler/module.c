// module.c: loading model files and their imports.
//
// `import "nn"` looks for nn.smelt in the importing file's folder, then in the
// stdlib folder, then in each folder of SMELT_PATH (colon-separated). Each file
// is parsed once per compilation however often it is imported; a cycle of
// imports is an error at the import that closes it.
#include "compiler.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SMELT_STDLIB_DIR
#define SMELT_STDLIB_DIR "stdlib"
#endif

void compilation_init(Compilation *c, FILE *diag_out) {
  memset(c, 0, sizeof *c);
  diag_init(&c->diag, diag_out);
  c->precision = -1;
}

void compilation_free(Compilation *c) {
  for (int i = 0; i < c->nmodules; i++) {
    module_cache_free(c->modules[i]);
    free(c->modules[i]->imports);
  }
  free(c->modules);
  for (int i = 0; i < c->nsearch; i++) free(c->search[i]);
  free(c->search);
  diag_free(&c->diag);
  arena_free(&c->arena);
}

static bool is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

// The standard library folder, first found of: $SMELT_STDLIB; the installed
// layout next to the binary (PREFIX/bin/smelt -> PREFIX/share/smelt/stdlib),
// found from the binary's own path so that a DESTDIR or relocated install
// works; the source tree's (build/smelt -> stdlib); the source folder the
// compiler was built from.
const char *stdlib_dir(const char *argv0) {
  static char found[PATH_MAX];
  const char *env = getenv("SMELT_STDLIB");
  if (env && *env) return env;
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0 && argv0) n = (ssize_t)strlen(strncpy(exe, argv0, sizeof exe - 1));
  if (n > 0) {
    exe[n] = '\0';
    char *dir = dirname(exe);
    const char *rel[] = {"/../share/smelt/stdlib", "/../stdlib"};
    for (int i = 0; i < 2; i++) {
      snprintf(found, sizeof found, "%s%s", dir, rel[i]);
      if (is_dir(found)) return found;
    }
  }
  return SMELT_STDLIB_DIR;
}

static void add_search(Compilation *c, const char *dir) {
  c->search = xrealloc(c->search, sizeof *c->search * (size_t)(c->nsearch + 1));
  c->search[c->nsearch++] = path_display(dir);
}

void compilation_default_search(Compilation *c, const char *argv0) {
  add_search(c, stdlib_dir(argv0));
  const char *path = getenv("SMELT_PATH");
  if (!path) return;
  char *copy = xstrdup(path), *save = NULL;
  for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save))
    if (*dir) add_search(c, dir);
  free(copy);
}

static Module *find_loaded(Compilation *c, const char *path) {
  char real[PATH_MAX];
  if (!realpath(path, real)) return NULL;
  for (int i = 0; i < c->nmodules; i++) {
    char other[PATH_MAX];
    if (realpath(c->modules[i]->path, other) && strcmp(real, other) == 0) return c->modules[i];
  }
  return NULL;
}

static Module *module_new(Compilation *c, const char *path) {
  Module *m = arena_alloc(&c->arena, sizeof *m);
  m->path = arena_strdup(&c->arena, path);
  char *tmp = xstrdup(path);
  m->dir = arena_strdup(&c->arena, dirname(tmp));
  free(tmp);
  m->file = -1;
  c->modules = xrealloc(c->modules, sizeof *c->modules * (size_t)(c->nmodules + 1));
  c->modules[c->nmodules++] = m;
  return m;
}

static void load_imports(Compilation *c, Module *m);

// Parses text (owned by the Diag afterwards) as module m and loads its imports.
static void module_parse(Compilation *c, Module *m, char *text, size_t len) {
  if (len > (size_t)INT_MAX / 2) {
    free(text);
    diag_plain(&c->diag, "%s: file is too large (%zu bytes)", m->path, len);
    m->failed_to_read = true;
    m->state = 2;
    return;
  }
  m->file = diag_add_source(&c->diag, m->path, text, (int)len);
  int before = c->diag.errors;
  double t0 = time_now();
  m->ast = parse_source(&c->arena, &c->diag, m->file);
  time_add(TIME_PARSE, t0);
  // A file with syntax errors is not looked into further: what recovery
  // skipped would only show up again as unknown names.
  m->syntax_errors = c->diag.errors - before;
  m->state = 2;
  if (m->syntax_errors) return;
  m->state = 1;
  c->loading[c->nloading++] = m;
  load_imports(c, m);
  c->nloading--;
  m->state = 2;
}

Module *module_load_file(Compilation *c, const char *path) {
  Module *seen = find_loaded(c, path);
  if (seen) return seen;
  Module *m = module_new(c, path);
  size_t len = 0;
  char *text = file_read(path, &len);
  if (!text) {
    diag_plain(&c->diag, "cannot read '%s': %s", path, file_error(errno));
    m->failed_to_read = true;
    m->state = 2;
    return m;
  }
  module_parse(c, m, text, len);
  return m;
}

Module *module_load_text(Compilation *c, const char *name, const char *text, size_t len) {
  Module *m = module_new(c, name);
  char *copy = xmalloc(len + 1);
  memcpy(copy, text, len);
  copy[len] = '\0';
  module_parse(c, m, copy, len);
  return m;
}

// Where an import names a file: "nn" -> nn.smelt; a name with ".smelt" as is.
static char *import_candidate(const char *dir, const char *name) {
  size_t n = strlen(name);
  bool has_ext = n > 6 && strcmp(name + n - 6, ".smelt") == 0;
  size_t len = strlen(dir) + n + 8;
  char *p = xmalloc(len);
  snprintf(p, len, "%s/%s%s", dir, name, has_ext ? "" : ".smelt");
  return p;
}

static void push_import(Module *m, Module *dep) {
  m->imports = xrealloc(m->imports, sizeof *m->imports * (size_t)(m->nimports + 1));
  m->imports[m->nimports++] = dep;
}

// Resolves one import; m->imports gets one entry per import, NULL when it failed.
static void import_one(Compilation *c, Module *m, const Ast *imp) {
  const char *name = imp->str;
  if (!*name) {
    diag_error(&c->diag, imp->span, "empty module name in import");
    return;
  }
  char *path = NULL;
  if (!c->no_filesystem_imports) {
    int ndirs = c->nsearch + 1;
    for (int i = 0; i < ndirs && !path; i++) {
      char *cand = import_candidate(i == 0 ? m->dir : c->search[i - 1], name);
      if (is_file(cand)) path = path_display(cand);
      free(cand);
    }
  }
  if (!path) {
    diag_error(&c->diag, imp->span, "cannot find module \"%s\" (looked for %s%s in %s%s%s)",
               name, name, strstr(name, ".smelt") ? "" : ".smelt", m->dir,
               c->nsearch ? ", " : "", c->nsearch ? c->search[0] : "");
    if (c->nsearch > 1) diag_note(&c->diag, imp->span, "and in the %d folder(s) of SMELT_PATH", c->nsearch - 1);
    return;
  }
  Module *dep = find_loaded(c, path);
  if (dep && dep->state == 1) {   // dep is on the loading stack: a cycle
    char chain[1024] = "";
    bool on = false;
    for (int i = 0; i < c->nloading; i++) {
      on = on || c->loading[i] == dep;
      if (!on) continue;
      strncat(chain, c->loading[i]->path, sizeof chain - strlen(chain) - 1);
      strncat(chain, " -> ", sizeof chain - strlen(chain) - 1);
    }
    strncat(chain, dep->path, sizeof chain - strlen(chain) - 1);
    diag_error(&c->diag, imp->span, "import cycle: %s", chain);
    free(path);
    return;
  }
  if (!dep && c->nloading == MAX_IMPORT_DEPTH) {
    diag_error(&c->diag, imp->span, "imports nested too deeply (the limit is %d)", MAX_IMPORT_DEPTH);
    free(path);
    return;
  }
  if (!dep) dep = module_load_file(c, path);
  free(path);
  push_import(m, dep);
}

static void load_imports(Compilation *c, Module *m) {
  for (int i = 0; i < m->ast->list.n; i++) {
    const Ast *it = m->ast->list.items[i];
    if (it->kind != N_IMPORT) continue;
    int before = m->nimports;
    import_one(c, m, it);
    if (m->nimports == before) push_import(m, NULL);
  }
}
