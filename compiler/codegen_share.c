// codegen_share.c: kernels that differ only in their buffers share one body.
//
// The L layers of a transformer and the T steps of an unrolled LSTM plan the
// same kernel again and again over other slots. A kernel's body indexes its
// own buffer numbers (Kernel.bufs), so its code does not name its slots; its
// key is the text of that code, unoptimized, on every target of the build
// (and its GPU launch shape). Kernels with equal keys compute the same
// function of their buffers: the first is compiled, the others run it with
// their own table of buffers (the ingot's per-launch slot map).
#include "codegen.h"

#include "sha256.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// FNV-1a over the key's bytes: a bucket, never a proof (keys are compared whole).
static uint64_t key_hash(const Blob *k) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < k->len; i++) h = (h ^ (unsigned char)k->data[i]) * 1099511628211ull;
  return h;
}

static void key_add_launch(Blob *k, const Kernel *kn) {
  GpuLaunch g;
  gpu_launch_shape(kn, &g);
  char line[96];
  int n = snprintf(line, sizeof line, "\n; launch %u %u %u\n", g.grid, g.block, g.shared);
  k->data = xrealloc(k->data, k->len + (size_t)n + 1);
  memcpy(k->data + k->len, line, (size_t)n + 1);
  k->len += (size_t)n;
}

// Kernel i of the plans (each plan's in turn).
static Kernel *kernel_at(KernelPlan *const *plans, int nplans, int i) {
  for (int p = 0; p < nplans; i -= plans[p++]->n)
    if (i < plans[p]->n) return &plans[p]->kernels[i];
  UNREACHABLE();
}

// Groups kernels of equal keys: Kernel.same and Kernel.body; returns the bodies.
static int group_keys(KernelPlan *const *plans, int nplans, Blob *keys, int n) {
  size_t cap = 16;
  while (cap < 2 * (size_t)n) cap *= 2;
  int *table = xmalloc(sizeof(int) * cap);   // kernel numbers, -1: empty
  for (size_t i = 0; i < cap; i++) table[i] = -1;
  int bodies = 0;
  for (int i = 0; i < n; i++) {
    Kernel *k = kernel_at(plans, nplans, i);
    size_t at = (size_t)key_hash(&keys[i]) & (cap - 1);
    for (; table[at] >= 0; at = (at + 1) & (cap - 1)) {
      const Blob *o = &keys[table[at]];
      if (o->len == keys[i].len && !memcmp(o->data, keys[i].data, o->len)) break;
    }
    if (table[at] < 0) {
      table[at] = i;
      k->same = NULL;
      k->body = bodies++;
    } else {
      const Kernel *first = kernel_at(plans, nplans, table[at]);
      k->same = first;
      k->body = first->body;
    }
  }
  free(table);
  return bodies;
}

// What a body's code depends on besides its IR: the processor (this
// machine's name and features for NULL), the LLVM and smelt versions, the
// pipeline that cg_finish runs, and the compiler's own executable (its
// size, time and inode), so a rebuilt smelt never reads what another made.
static void machine_text(const char *arch, Blob *out) {
  unsigned major, minor, patch;
  LLVMGetVersion(&major, &minor, &patch);
  struct stat st;
  long long exe[3] = {0};
  if (stat("/proc/self/exe", &st) == 0) exe[0] = (long long)st.st_size, exe[1] = (long long)st.st_mtime, exe[2] = (long long)st.st_ino;
  char *name = arch ? NULL : LLVMGetHostCPUName(), *features = arch ? NULL : LLVMGetHostCPUFeatures();
  size_t n = strlen(arch ? arch : name) + (features ? strlen(features) : 0) + 240;
  out->data = xmalloc(n);
  out->len = (size_t)snprintf(out->data, n,
                              "\n; for %s %s; LLVM %u.%u.%u; smelt %s (%lld %lld %lld); default<O3>, CodeGenLevelAggressive\n",
                              arch ? arch : name, features ? features : "", major, minor, patch, SMELT_VERSION, exe[0],
                              exe[1], exe[2]);
  if (name) LLVMDisposeMessage(name);
  if (features) LLVMDisposeMessage(features);
}

// keys->key of every body from the text of its first kernel, cut by ends:
// target t's text of kernel i is keys[i] from ends[t - 1][i] (0 for t = 0) to ends[t][i].
static void body_keys(KernelPlan *const *plans, int nplans, const char *cpu, const char *const *gpus, int ngpus,
                      const Blob *keys, size_t *const *ends, int n, int bodies, BodyKeys *out) {
  int nt = 1 + ngpus;
  out->nbodies = bodies, out->ntargets = nt;
  out->key = xcalloc((size_t)(bodies ? bodies : 1) * (size_t)nt, sizeof *out->key);
  Blob *machine = xcalloc((size_t)nt, sizeof *machine);
  for (int t = 0; t < nt; t++) machine_text(t ? gpus[t - 1] : cpu, &machine[t]);
  for (int i = 0; i < n; i++) {
    const Kernel *k = kernel_at(plans, nplans, i);
    if (k->same) continue;
    for (int t = 0; t < nt; t++) {
      size_t from = t ? ends[t - 1][i] : 0, to = ends[t][i];
      Sha256 s;
      sha256_init(&s);
      sha256_update(&s, machine[t].data, machine[t].len);
      sha256_update(&s, keys[i].data + from, to - from);
      if (t) sha256_update(&s, keys[i].data + ends[nt - 1][i], keys[i].len - ends[nt - 1][i]);   // the launch shape
      sha256_final(&s, out->key[k->body * nt + t]);
    }
  }
  for (int t = 0; t < nt; t++) free(machine[t].data);
  free(machine);
}

// The keys of kernels [from, to) on every target in turn (so each kernel's
// text is the host's, then each GPU target's), in chunks that threads take.
enum { KEY_CHUNK = 64 };

typedef struct {
  const KernelPlan *const *plans;
  int nplans, n, ngpus;
  const char *cpu;
  const char *const *gpus;
  Blob *keys;
  size_t **ends;          // ends[t][i]: where target t's text of kernel i ends in keys[i]
  atomic_int next;        // the next chunk's first kernel
  atomic_int failed;      // a chunk failed: its message in err
  pthread_mutex_t lock;
  char err[2048];
} KeyJobs;

static void *key_worker(void *arg) {
  KeyJobs *K = arg;
  char err[2048];
  for (int from; !atomic_load(&K->failed) && (from = atomic_fetch_add(&K->next, KEY_CHUNK)) < K->n;) {
    int to = from + KEY_CHUNK < K->n ? from + KEY_CHUNK : K->n;
    for (int t = 0; t <= K->ngpus; t++) {
      int rc = t ? gpu_kernel_keys(K->plans, K->nplans, K->gpus[t - 1], from, to, K->keys, err, sizeof err)
                 : host_kernel_keys(K->plans, K->nplans, K->cpu, from, to, K->keys, err, sizeof err);
      if (rc) {
        pthread_mutex_lock(&K->lock);
        if (!atomic_exchange(&K->failed, 1)) snprintf(K->err, sizeof K->err, "%s", err);
        pthread_mutex_unlock(&K->lock);
        return NULL;
      }
      for (int i = from; i < to; i++) K->ends[t][i] = K->keys[i].len;
    }
  }
  return NULL;
}

void body_symbol(const uint8_t key[32], char out[40]) {
  memcpy(out, "smelt_", 6);
  for (int i = 0; i < 16; i++) {
    out[6 + 2 * i] = "0123456789abcdef"[key[i] >> 4];
    out[7 + 2 * i] = "0123456789abcdef"[key[i] & 15];
  }
  out[38] = '\0';
}

int codegen_share_bodies(KernelPlan *const *plans, int nplans, const char *cpu, const char *const *gpus, int ngpus,
                         int threads, BodyKeys *digests, char *err, size_t errlen) {
  double t0 = time_now();
  int n = 0;
  for (int p = 0; p < nplans; p++) n += plans[p]->n;
  Blob *keys = xcalloc((size_t)(n ? n : 1), sizeof *keys);
  size_t **ends = xcalloc((size_t)(1 + ngpus), sizeof *ends);
  for (int g = 0; g <= ngpus; g++) ends[g] = xcalloc((size_t)(n ? n : 1), sizeof **ends);
  KeyJobs K = {(const KernelPlan *const *)plans, nplans, n, ngpus, cpu, gpus, keys, ends, 0, 0,
               PTHREAD_MUTEX_INITIALIZER, ""};
  int chunks = (n + KEY_CHUNK - 1) / KEY_CHUNK;
  if (threads > chunks) threads = chunks > 0 ? chunks : 1;
  pthread_t tid[256];
  int started = 0;
  for (; started < threads - 1 && started < 256; started++)
    if (pthread_create(&tid[started], NULL, key_worker, &K)) break;   // fewer threads make every key all the same
  key_worker(&K);
  for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
  int rc = atomic_load(&K.failed) ? -1 : 0;
  if (rc) snprintf(err, errlen, "%s", K.err);
  if (rc == 0 && ngpus)
    for (int i = 0; i < n; i++) key_add_launch(&keys[i], kernel_at(plans, nplans, i));
  int bodies = rc == 0 ? group_keys(plans, nplans, keys, n) : -1;
  if (bodies >= 0 && digests) body_keys(plans, nplans, cpu, gpus, ngpus, keys, ends, n, bodies, digests);
  for (int i = 0; i < n; i++) free(keys[i].data);
  for (int g = 0; g <= ngpus; g++) free(ends[g]);
  free(ends);
  free(keys);
  time_add(TIME_SHARE, t0);
  return bodies;
}
