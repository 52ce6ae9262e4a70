// options.c: the table-driven command-line parser (options.h).
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int opt_error(const OptTable *t, const CommandSpec *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: error: ", t->prog);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  if (c) fprintf(stderr, "\n(run '%s %s --help' for usage)\n", t->prog, c->name);
  else fprintf(stderr, "\n(run '%s --help' for usage)\n", t->prog);
  return 2;
}

// Whether the space-separated list holds word.
static bool list_has(const char *list, const char *word) {
  size_t n = strlen(word);
  for (const char *p = list; *p;) {
    size_t len = strcspn(p, " ");
    if (len == n && !strncmp(p, word, n)) return true;
    p += len;
    while (*p == ' ') p++;
  }
  return false;
}

static bool takes(const OptSpec *s, const CommandSpec *c) { return !strcmp(s->commands, "*") || list_has(s->commands, c->name); }

// The name closest to word among candidates, if close enough to be a typo.
static const char *nearest(const char *word, const char *const *names, int n) {
  const char *best = NULL;
  int bestd = (int)strlen(word) / 3 + 1;
  if (bestd > 3) bestd = 3;
  for (int i = 0; i < n; i++) {
    int d = str_distance(word, names[i]);
    if (d <= bestd && (!best || d < str_distance(word, best))) best = names[i];
  }
  return best;
}

static const CommandSpec *find_command(const OptTable *t, const char *name) {
  for (int i = 0; i < t->ncommands; i++)
    if (!strcmp(t->commands[i].name, name)) return &t->commands[i];
  return NULL;
}

static int find_long(const OptTable *t, const char *name, size_t len) {
  for (int i = 0; i < t->nspecs; i++)
    if (strlen(t->specs[i].name) == len && !strncmp(t->specs[i].name, name, len)) return i;
  return -1;
}

static int find_short(const OptTable *t, char c) {
  for (int i = 0; i < t->nspecs; i++)
    if (t->specs[i].short_name == c) return i;
  return -1;
}

// "--steps" or "-o" as the user would write the option.
static const char *spelled(const OptSpec *s, bool as_short, char *buf, size_t n) {
  if (as_short) snprintf(buf, n, "-%c", s->short_name);
  else snprintf(buf, n, "--%s", s->name);
  return buf;
}

// What an option accepts, in words: "a whole number from 1 up".
static void accepts(const OptSpec *s, char *buf, size_t n) {
  if (s->kind == OPT_CHOICE) {
    size_t k = 0;
    int count = 1;
    for (const char *p = s->choices; *p; p++) count += *p == '|';
    int i = 0;
    for (const char *p = s->choices; *p && k < n; i++) {
      size_t len = strcspn(p, "|");
      const char *sep = i == 0 ? "" : i == count - 1 ? " or " : ", ";
      k += (size_t)snprintf(buf + k, n - k, "%s%.*s", sep, (int)len, p);
      p += len + (p[len] == '|');
    }
    return;
  }
  if (s->kind == OPT_BYTES) {
    snprintf(buf, n, "a size in bytes, with K, M, G or T for powers of 1024 (16G)");
    return;
  }
  if (s->kind == OPT_IDENT) {
    snprintf(buf, n, "a C identifier (letters, digits and _, not first a digit; not a keyword)");
    return;
  }
  const char *what = s->kind == OPT_INT ? "a whole number" : "a number";
  if (s->max >= 1e300) snprintf(buf, n, "%s from %.15g up", what, s->min);
  else snprintf(buf, n, "%s from %.15g to %.15g", what, s->min, s->max);
}

static int set_value(const OptTable *t, const CommandSpec *c, const OptSpec *s, const char *name, const char *value,
                     OptValue *v) {
  char what[256];
  switch (s->kind) {
  case OPT_FLAG: break;
  case OPT_STRING: v->str = value; break;
  case OPT_LIST:
    if (v->nlist == OPT_MAX_LIST) return opt_error(t, c, "%s: at most %d of them", name, OPT_MAX_LIST);
    v->list[v->nlist++] = value;
    break;
  case OPT_INT:
  case OPT_REAL: {   // a whole number (no fraction, no overflow) or a real, in [min, max]
    char *end;
    long long n = 0;
    errno = 0;
    double d = s->kind == OPT_INT ? (double)(n = strtoll(value, &end, 10)) : strtod(value, &end);
    if (!*value || *end || errno == ERANGE || isnan(d) || d < s->min || d > s->max) {
      accepts(s, what, sizeof what);
      return opt_error(t, c, "%s takes %s, not '%s'", name, what, value);
    }
    v->num = n;
    v->real = d;
    v->str = value;
    break;
  }
  case OPT_BYTES: {   // digits, then at most one unit letter; no overflow
    char *end;
    errno = 0;
    unsigned long long n = *value >= '0' && *value <= '9' ? strtoull(value, &end, 10) : (end = (char *)value, 0);
    int shift = 0;
    const char *units = "KMGT", *u = *end ? strchr(units, *end & ~0x20) : NULL;
    if (u && end > value) shift = 10 * (int)(u - units + 1), end++;
    bool bad = end == value || *end || errno == ERANGE || (shift && n > (UINT64_MAX >> shift));
    double d = bad ? 0 : (double)(n << shift);
    if (bad || d < s->min || d > s->max || (n << shift) > INT64_MAX) {
      accepts(s, what, sizeof what);
      return opt_error(t, c, "%s takes %s, not '%s'", name, what, value);
    }
    v->num = (int64_t)(n << shift);
    v->str = value;
    break;
  }
  case OPT_IDENT:
    if (!opt_c_identifier(value)) {
      accepts(s, what, sizeof what);
      return opt_error(t, c, "%s takes %s, not '%s'", name, what, value);
    }
    v->str = value;
    break;
  case OPT_CHOICE: {
    bool ok = false;
    size_t n = strlen(value);
    for (const char *p = s->choices; *p && !ok;) {
      size_t len = strcspn(p, "|");
      ok = len == n && !strncmp(p, value, n);
      p += len + (p[len] == '|');
    }
    if (!ok) {
      accepts(s, what, sizeof what);
      return opt_error(t, c, "%s takes %s, not '%s'", name, what, value);
    }
    v->str = value;
    break;
  }
  }
  v->set = true;
  return 0;
}

// The keywords of C11 and C++17 that a generated declaration may not use
// as its name (a C file may be included from C++).
static const char *const c_keywords[] = {
    "alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break", "case", "catch", "char",
    "char16_t", "char32_t", "class", "compl", "const", "const_cast", "constexpr", "continue", "decltype", "default",
    "delete", "do", "double", "dynamic_cast", "else", "enum", "explicit", "export", "extern", "false", "float", "for",
    "friend", "goto", "if", "inline", "int", "long", "mutable", "namespace", "new", "noexcept", "not", "not_eq",
    "nullptr", "operator", "or", "or_eq", "private", "protected", "public", "register", "reinterpret_cast", "restrict",
    "return", "short", "signed", "sizeof", "static", "static_assert", "static_cast", "struct", "switch", "template",
    "this", "thread_local", "throw", "true", "try", "typedef", "typeid", "typename", "union", "unsigned", "using",
    "virtual", "void", "volatile", "wchar_t", "while", "xor", "xor_eq", "_Alignas", "_Alignof", "_Atomic", "_Bool",
    "_Complex", "_Generic", "_Imaginary", "_Noreturn", "_Static_assert", "_Thread_local",
};

bool opt_c_identifier(const char *s) {
  if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_')) return false;
  for (const char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_')) return false;
  for (size_t i = 0; i < sizeof c_keywords / sizeof *c_keywords; i++)
    if (!strcmp(s, c_keywords[i])) return false;
  return true;
}

// An option that the table has but the command does not take.
static int not_taken(const OptTable *t, const CommandSpec *c, const OptSpec *s, const char *name) {
  char others[512] = "";
  size_t k = 0;
  for (int i = 0; i < t->ncommands && k < sizeof others; i++)
    if (list_has(s->commands, t->commands[i].name))
      k += (size_t)snprintf(others + k, sizeof others - k, "%s%s", k ? ", " : "", t->commands[i].name);
  return opt_error(t, c, "%s %s does not take %s (%s of %s)", t->prog, c->name, name,
                   k ? "an option" : "not an option", k ? others : "any command");
}

static int unknown_option(const OptTable *t, const CommandSpec *c, const char *arg) {
  size_t len = strcspn(arg + 2, "=");
  char word[128];
  snprintf(word, sizeof word, "%.*s", (int)(len < sizeof word ? len : sizeof word - 1), arg + 2);
  const char *names[256];
  int n = 0;
  // Prefer the options of this command; then any.
  for (int pass = 0; pass < 2; pass++) {
    n = 0;
    for (int i = 0; i < t->nspecs && n < 256; i++)
      if (pass == 1 || takes(&t->specs[i], c)) names[n++] = t->specs[i].name;
    const char *near = nearest(word, names, n);
    if (near) return opt_error(t, c, "unknown option '--%s' (did you mean --%s?)", word, near);
  }
  return opt_error(t, c, "unknown option '--%s'", word);
}

int options_parse(const OptTable *t, int argc, char **argv, OptResult *r) {
  memset(r, 0, sizeof *r);
  if (argc < 2) {
    options_usage(t, NULL, stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
    const CommandSpec *c = argc > 2 ? find_command(t, argv[2]) : NULL;
    options_usage(t, c, stdout);
    return -1;
  }
  if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
    printf("%s %s\n", t->prog, t->version);
    return -1;
  }
  const CommandSpec *c = find_command(t, cmd);
  if (!c) {
    const char *names[64];
    int n = 0;
    for (int i = 0; i < t->ncommands && n < 64; i++) names[n++] = t->commands[i].name;
    const char *near = cmd[0] != '-' ? nearest(cmd, names, n) : NULL;
    if (near) return opt_error(t, NULL, "unknown command '%s' (did you mean %s?)", cmd, near);
    return opt_error(t, NULL, "unknown command '%s'", cmd);
  }
  r->command = c;
  r->values = xcalloc((size_t)t->nspecs, sizeof *r->values);
  r->files = xcalloc((size_t)argc, sizeof *r->files);
  bool options_done = false;
  int rc = 0;
  for (int i = 2; i < argc && rc == 0; i++) {
    const char *a = argv[i];
    char name[160];
    if (options_done || a[0] != '-' || !a[1]) {
      r->files[r->nfiles++] = a;
      continue;
    }
    if (!strcmp(a, "--")) {
      options_done = true;
      continue;
    }
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      options_usage(t, c, stdout);
      rc = -1;
      break;
    }
    if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
      printf("%s %s\n", t->prog, t->version);
      rc = -1;
      break;
    }
    int k;
    const char *value = NULL;
    bool as_short = a[1] != '-';
    if (!as_short) {
      size_t len = strcspn(a + 2, "=");
      k = find_long(t, a + 2, len);
      if (k < 0) {
        rc = unknown_option(t, c, a);
        break;
      }
      if (a[2 + len] == '=') value = a + 3 + len;
    } else {
      k = find_short(t, a[1]);
      if (k < 0) {
        rc = opt_error(t, c, "unknown option '-%c'", a[1]);
        break;
      }
      if (a[2]) value = a + 2;
    }
    const OptSpec *s = &t->specs[k];
    spelled(s, as_short, name, sizeof name);
    if (!takes(s, c)) {
      rc = not_taken(t, c, s, name);
      break;
    }
    if (s->kind == OPT_FLAG) {
      if (value) rc = opt_error(t, c, "%s takes no value", name);
      else rc = set_value(t, c, s, name, NULL, &r->values[k]);
      continue;
    }
    if (!value) {
      if (i + 1 >= argc) {
        rc = opt_error(t, c, "%s needs a value (%s)", name, s->arg ? s->arg : "a value");
        break;
      }
      value = argv[++i];
    }
    rc = set_value(t, c, s, name, value, &r->values[k]);
  }
  if (rc == 0 && r->nfiles < c->min_files)
    rc = opt_error(t, c, "%s needs %s file (%s)", c->name, c->max_files == 1 ? "one" : "at least one", c->args);
  if (rc == 0 && c->max_files >= 0 && r->nfiles > c->max_files)
    rc = opt_error(t, c, "%s takes %s file%s, not also '%s'", c->name, c->max_files == 1 ? "one" : "fewer",
                   c->max_files == 1 ? "" : "s", r->files[c->max_files]);
  if (rc) options_result_free(r);
  return rc;
}

void options_result_free(OptResult *r) {
  free(r->values);
  free(r->files);
  r->values = NULL;
  r->files = NULL;
}

const OptValue *opt_get(const OptTable *t, const OptResult *r, const char *name) {
  int k = find_long(t, name, strlen(name));
  ASSERT(k >= 0);
  return &r->values[k];
}

bool opt_set(const OptTable *t, const OptResult *r, const char *name) { return opt_get(t, r, name)->set; }

// Prints text with every line after the first indented by indent columns.
static void print_indented(FILE *out, const char *text, int indent) {
  for (const char *p = text; *p;) {
    size_t len = strcspn(p, "\n");
    fprintf(out, "%.*s\n", (int)len, p);
    p += len;
    if (*p == '\n') p++;
    if (*p) fprintf(out, "%*s", indent, "");
  }
}

void options_usage(const OptTable *t, const CommandSpec *c, FILE *out) {
  if (!c) {
    fprintf(out, "usage: %s <command> [options] FILE...\n\ncommands:\n", t->prog);
    for (int i = 0; i < t->ncommands; i++) {
      fprintf(out, "  %-10s ", t->commands[i].name);
      size_t len = strcspn(t->commands[i].help, "\n");
      fprintf(out, "%.*s\n", (int)len, t->commands[i].help);
    }
    fprintf(out, "\n'%s COMMAND --help' shows a command's options; '%s --version' the version.\n", t->prog, t->prog);
    return;
  }
  fprintf(out, "usage: %s %s [options] %s\n\n", t->prog, c->name, c->args);
  print_indented(out, c->help, 0);
  fprintf(out, "\noptions:\n");
  for (int i = 0; i < t->nspecs; i++) {
    const OptSpec *s = &t->specs[i];
    if (!takes(s, c)) continue;
    char left[96];
    if (s->short_name && s->kind != OPT_FLAG)
      snprintf(left, sizeof left, "-%c %s, --%s=%s", s->short_name, s->arg, s->name, s->arg);
    else snprintf(left, sizeof left, "--%s%s%s", s->name, s->arg ? "=" : "", s->arg ? s->arg : "");
    fprintf(out, "  %-28s ", left);
    if (strlen(left) > 28) fprintf(out, "\n  %-28s ", "");
    print_indented(out, s->help, 31);
  }
  fprintf(out, "  %-28s %s\n", "-h, --help", "this text");
}
