// memory_need.c: the bytes a session of a built model allocates, and the
// limit on them (--max-memory).
//
// A session holds the persistent tensors (parameters, buffers and optimizer
// state: one copy shared by every entry) and one arena per entry, all
// allocated when it is created (runtime/session.c). Counting them here, after
// the memory plan and before code generation, lets `check` and `build` refuse
// a model that could not be run instead of failing only at session creation.
#include "compiler.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint64_t memory_default_limit(void) {
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
  return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

// Here, below pipeline.c (which calls this file), so both read it.
const char *const build_entry_names[BUILD_ENTRIES] = {"train_step", "eval", "infer", "train_grad", "train_apply"};

void memory_need(const Build *b, MemoryNeed *need) {
  memset(need, 0, sizeof *need);
  // persistent tensors by name: every entry that reads one shares its copy
  const char **seen = NULL;
  int nseen = 0, cap = 0;
  for (int e = 0; e < BUILD_ENTRIES; e++) {
    if (!b->on[e]) continue;
    const Entry *en = &b->entries[e];
    need->arena[e] = en->arena;
    need->total += en->arena;
    for (int s = 0; s < en->plan.nslots; s++) {
      const Node *n = en->plan.slot_node[s];
      if (en->in_arena[s]) continue;
      bool dup = false;
      for (int i = 0; i < nseen && !dup; i++) dup = !strcmp(seen[i], n->name);
      if (dup) continue;
      if (nseen == cap) seen = xrealloc(seen, sizeof *seen * (size_t)(cap = cap ? 2 * cap : 64));
      seen[nseen++] = n->name;
      uint64_t bytes = (uint64_t)shape_numel(&n->shape) * (uint64_t)dtype_size(n->dtype);
      if (n->op == OP_PARAM) need->params += bytes;
      else need->state += bytes;
      need->total += bytes;
    }
  }
  free(seen);
}

void memory_need_print(FILE *out, const Build *b, const MemoryNeed *need) {
  char t[32], p[32], s[32], a[32];
  fprintf(out, "%s (parameters %s, state %s; arena", human_units(t, sizeof t, (double)need->total, "B"),
          human_units(p, sizeof p, (double)need->params, "B"), human_units(s, sizeof s, (double)need->state, "B"));
  const char *sep = " ";
  for (int e = 0; e < BUILD_ENTRIES; e++) {
    if (!b->on[e]) continue;
    fprintf(out, "%s%s %s", sep, build_entry_names[e], human_units(a, sizeof a, (double)need->arena[e], "B"));
    sep = ", ";
  }
  fputc(')', out);
}

int memory_need_check(Compilation *c, const Module *m, const Build *b, uint64_t limit) {
  MemoryNeed need;
  memory_need(b, &need);
  if (!limit || need.total <= limit) return 0;
  char *text;
  size_t len;
  FILE *f = open_memstream(&text, &len);
  memory_need_print(f, b, &need);
  fclose(f);
  char l[32];
  diag_plain(&c->diag,
             "%s: a session of model %s needs %s, more than the limit of %s (%llu bytes); raise it with "
             "--max-memory=SIZE (0: no limit) or make the model smaller",
             m->path, m->model->name, text, human_units(l, sizeof l, (double)limit, "B"), (unsigned long long)limit);
  free(text);
  return -1;
}
