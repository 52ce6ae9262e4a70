// profile.c: kernels timed on a device: per-kernel profiles (smelt bench
// --profile, smelt-rt profile) and the GPU check's bandwidth table.
//
// Times come from the device's own per-launch timing (events on GPUs, the
// clock around each launch on the CPU); each figure is
// the median of many runs after warm-up runs. Bytes and FLOPs are the
// compiler's estimates in the ingot (IngotCost): what each kernel must move
// and compute at least.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools.h"
#include "util.h"
#include "runtime.h"
#include "tensorfile.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n ? v[n / 2] : 0;
}

static void sync_dev(Device *d) {
  if (d->sync) d->sync(d);
}

// Device-to-device copy of 1 GiB: bytes read + written per second.
static double copy_gbs(Device *d) {
  size_t bytes = (size_t)1 << 30;
  void *a = d->alloc(d, bytes), *b = a ? d->alloc(d, bytes) : NULL;
  if (!b) {
    if (a) d->free(d, a);
    return 0;
  }
  double t[10];
  for (int i = 0; i < 13; i++) {
    sync_dev(d);
    double t0 = now_ms();
    d->copy(d, b, a, bytes);
    sync_dev(d);
    if (i >= 3) t[i - 3] = now_ms() - t0;
  }
  d->free(d, a);
  d->free(d, b);
  return 2.0 * (double)bytes / (median(t, 10) * 1e6);
}

// Random floats in every float input of entry e (integers stay zero).
static void random_inputs(smelt_session *s, const smelt_ingot *ig, const IngotEntry *e) {
  uint64_t x = 12345;
  for (uint32_t k = 0; k < e->nslots; k++) {
    const IngotTensor *t = &ig->tensors[ig->slots[e->first_slot + k]];
    if (t->role != ROLE_INPUT || t->dtype != 0) continue;
    float *v = malloc(t->bytes ? t->bytes : 4);
    for (uint64_t i = 0; i < t->bytes / 4; i++) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      v[i] = (float)((double)(x >> 40) / 16777216.0 - 0.5);
    }
    smelt_set_input(s, ingot_str(ig, e->name), strchr(ingot_str(ig, t->name), '/') + 1, v, t->bytes);
    free(v);
  }
}

// Per-launch median milliseconds of `runs` runs of an entry into ms[]; each
// run's own times into raw[run * nlaunches + launch] when raw is not NULL.
static int time_launches(smelt_session *s, const smelt_ingot *ig, const IngotEntry *e, int runs, double *ms,
                         double *raw) {
  Device *d = session_device(s);
  const char *name = ingot_str(ig, e->name);
  uint32_t n = e->nlaunches;
  double *all = malloc(sizeof(double) * (size_t)runs * (n ? n : 1)), *col = malloc(sizeof(double) * (size_t)runs);
  int rc = 0;
  for (int w = 0; w < 3 && rc == 0; w++) rc = smelt_run(s, name, 1, (uint64_t)w) != SMELT_OK;
  sync_dev(d);
  for (int r = 0; r < runs && rc == 0; r++) {
    d->profile(d, true);
    rc = smelt_run(s, name, 1, (uint64_t)r) != SMELT_OK;
    d->profile(d, false);
    if (d->profile_take(d, all + (size_t)r * n, (int)n) != (int)n) rc = 1;
  }
  if (raw && rc == 0) memcpy(raw, all, sizeof(double) * (size_t)runs * n);
  for (uint32_t k = 0; k < n && rc == 0; k++) {
    for (int r = 0; r < runs; r++) col[r] = all[(size_t)r * n + k];
    ms[k] = median(col, runs);
  }
  free(all);
  free(col);
  if (rc) fprintf(stderr, "smelt: error: %s\n", smelt_last_error());
  return rc;
}

int gpu_bench(const char *device, int n, char **ingots) {
  int rc = 0;
  double ceiling = -1;
  printf("| kernel | time (ms) | bytes moved | GB/s | of copy | TFLOP/s |\n|---|---:|---:|---:|---:|---:|\n");
  for (int i = 0; i < n && rc == 0; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s", ingots[i]);
    smelt_ingot *ig;
    smelt_session *s = NULL;
    if (tools_ingot_open(path, &ig) != SMELT_OK || tools_session_new(ig, device, 0, &s) != SMELT_OK) {
      fprintf(stderr, "smelt: error: %s\n", smelt_last_error());
      return 1;
    }
    if (ceiling < 0) {
      ceiling = copy_gbs(session_device(s));
      printf("| device-to-device copy, 1 GiB | %.3f | %.0f MB | %.0f | 1.00 | |\n", 2.0 * 1073.741824 / ceiling,
             2 * 1073.741824, ceiling);
    }
    const IngotEntry *e = ingot_entry(ig, "infer");
    double *ms = malloc(sizeof(double) * (e && e->nlaunches ? e->nlaunches : 1));
    if (!e) rc = 1, fprintf(stderr, "smelt: error: %s has no infer entry\n", path);
    else random_inputs(s, ig, e);
    if (!rc) rc = time_launches(s, ig, e, 20, ms, NULL);
    for (uint32_t k = 0; !rc && k < e->nlaunches; k++) {
      const IngotCost *c = ingot_cost(ig, e->first_launch + k);
      double bytes = c ? (double)(c->bytes_read + c->bytes_written) : 0, flops = c ? (double)c->flops : 0;
      double gbs = bytes / (ms[k] * 1e6);
      char tf[32] = "";
      if (flops >= 1e9) snprintf(tf, sizeof tf, "%.2f", flops / (ms[k] * 1e9));
      const char *model = smelt_ingot_meta(ig, "model");
      printf("| %s: %s | %.3f | %.0f MB | %.0f | %.2f | %s |\n", model ? model : path,
             strstr(ingot_str(ig, ig->launches[e->first_launch + k].symbol), "_k") + 1, ms[k], bytes / 1e6, gbs,
             ceiling > 0 ? gbs / ceiling : 0, tf);
    }
    free(ms);
    smelt_session_free(s);
    smelt_ingot_close(ig);
  }
  return rc;
}

// s as a JSON string.
static void json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
    else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
    else fputc(ch, f);
  }
  fputc('"', f);
}

// The profile as one JSON object: what ran where, and per kernel its median
// milliseconds, share, and the compiler's bytes and FLOPs.
static void profile_json(FILE *f, const char *path, const char *entry, const char *device, const smelt_ingot *ig,
                         const IngotEntry *e, int runs, const double *ms, double total) {
  fputs("{\"ingot\": ", f);
  json_string(f, path);
  fputs(", \"entry\": ", f);
  json_string(f, entry);
  fputs(", \"device\": ", f);
  json_string(f, device);
  fprintf(f, ", \"runs\": %d, \"total_ms\": %.6f, \"kernels\": [", runs, total);
  for (uint32_t k = 0; k < e->nlaunches; k++) {
    const IngotCost *c = ingot_cost(ig, e->first_launch + k);
    fputs(k ? ",\n  {\"name\": " : "\n  {\"name\": ", f);
    json_string(f, ingot_str(ig, ig->launches[e->first_launch + k].symbol));
    fprintf(f, ", \"ms\": %.6f, \"share\": %.6f, \"bytes\": %llu, \"flops\": %llu}", ms[k],
            total > 0 ? ms[k] / total : 0, c ? (unsigned long long)(c->bytes_read + c->bytes_written) : 0ull,
            c ? (unsigned long long)c->flops : 0ull);
  }
  fputs("\n]}\n", f);
}

// The timed runs as a Chrome trace (the Trace Event Format Perfetto and
// chrome://tracing read): one complete event per launch, each run's kernels
// laid end to end in its own times, the runs one after another. The device
// times each launch alone, so the host's time between launches is not in it.
static int profile_trace(const char *path, const smelt_ingot *ig, const IngotEntry *e, const char *device, int runs,
                         const double *raw) {
  char err[512], *tmp = NULL;
  FILE *f = atomic_open(path, &tmp, err, sizeof err);
  if (!f) {
    fprintf(stderr, "smelt: error: %s\n", err);
    return 1;
  }
  fputs("{\"displayTimeUnit\": \"ms\", \"otherData\": {\"device\": ", f);
  json_string(f, device);
  fputs("}, \"traceEvents\": [", f);
  double at_us = 0;
  for (int r = 0; r < runs; r++)
    for (uint32_t k = 0; k < e->nlaunches; k++) {
      double dur = raw[(size_t)r * e->nlaunches + k] * 1e3;
      fputs(r || k ? ",\n  {\"name\": " : "\n  {\"name\": ", f);
      json_string(f, ingot_str(ig, ig->launches[e->first_launch + k].symbol));
      fputs(", \"cat\": ", f);
      json_string(f, ingot_str(ig, e->name));
      fprintf(f, ", \"ph\": \"X\", \"pid\": 1, \"tid\": 1, \"ts\": %.3f, \"dur\": %.3f, \"args\": {\"run\": %d}}",
              at_us, dur, r);
      at_us += dur;
    }
  fputs("\n]}\n", f);
  if (atomic_commit(f, tmp, path, !ferror(f), err, sizeof err)) {
    fprintf(stderr, "smelt: error: %s\n", err);
    return 1;
  }
  return 0;
}

int gpu_profile(const char *path, const char *entry, const char *device, int runs, const ProfileOutput *out) {
  smelt_ingot *ig;
  smelt_session *s = NULL;
  if (tools_ingot_open(path, &ig) != SMELT_OK || tools_session_new(ig, device, 0, &s) != SMELT_OK) {
    fprintf(stderr, "smelt: error: %s\n", smelt_last_error());
    return 1;
  }
  const IngotEntry *e = ingot_entry(ig, entry);
  if (!e) {
    fprintf(stderr, "smelt: error: %s has no entry '%s'\n", path, entry);
    smelt_session_free(s);
    smelt_ingot_close(ig);
    return 1;
  }
  random_inputs(s, ig, e);
  double *ms = malloc(sizeof(double) * (e->nlaunches ? e->nlaunches : 1));
  double *raw = out && out->trace ? malloc(sizeof(double) * (size_t)runs * (e->nlaunches ? e->nlaunches : 1)) : NULL;
  int rc = time_launches(s, ig, e, runs, ms, raw);
  double total = 0;
  for (uint32_t k = 0; k < e->nlaunches && !rc; k++) total += ms[k];
  if (!rc && out && out->json) {
    profile_json(stdout, path, entry, smelt_session_device(s), ig, e, runs, ms, total);
  } else if (!rc) {
    printf("%s, entry %s on %s: %u kernels, %.3f ms per run (sum of medians over %d runs)\n", path, entry,
           smelt_session_device(s), e->nlaunches, total, runs);
    printf("%-36s %10s %6s %12s %9s %10s\n", "kernel", "ms", "share", "bytes", "GB/s", "GFLOP/s");
    for (uint32_t k = 0; k < e->nlaunches; k++) {
      const IngotCost *c = ingot_cost(ig, e->first_launch + k);
      double bytes = c ? (double)(c->bytes_read + c->bytes_written) : 0, flops = c ? (double)c->flops : 0;
      printf("%-36s %10.4f %5.1f%% %12.0f %9.1f %10.1f\n", ingot_str(ig, ig->launches[e->first_launch + k].symbol),
             ms[k], total > 0 ? 100 * ms[k] / total : 0, bytes, bytes / (ms[k] * 1e6), flops / (ms[k] * 1e6));
    }
  }
  if (!rc && raw) rc = profile_trace(out->trace, ig, e, smelt_session_device(s), runs, raw);
  free(raw);
  free(ms);
  smelt_session_free(s);
  smelt_ingot_close(ig);
  return rc;
}

// The binding of file whose size variable is batch (0: file itself), or
// NULL after a message.
static const smelt_ingot *bench_binding(const smelt_ingot *file, const char *path, long long batch) {
  size_t n = smelt_ingot_binding_count(file);
  if (!batch) return file;
  if (n == 1) {
    fprintf(stderr, "smelt: error: --batch sizes a model file or picks a binding; %s has one binding, with the sizes "
            "it was built with\n", path);
    return NULL;
  }
  char list[512] = "";
  for (size_t i = 0; i < n; i++) {
    const char *var;
    int64_t value;
    const smelt_ingot *b = smelt_ingot_binding(file, i, &var, &value);
    if (value == batch) return b;
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s=%lld", i ? ", " : "", var, (long long)value);
  }
  fprintf(stderr, "smelt: error: %s has no binding of batch %lld (it has %s)\n", path, batch, list);
  return NULL;
}

int latency_bench(const char *path, const char *entry, const char *device, int threads, int runs, long long batch) {
  smelt_ingot *file;
  smelt_session *s = NULL;
  if (tools_ingot_open(path, &file) != SMELT_OK) {
    fprintf(stderr, "smelt: error: %s\n", smelt_last_error());
    return 1;
  }
  const smelt_ingot *ig = bench_binding(file, path, batch);
  if (!ig || tools_session_new(ig, device, threads, &s) != SMELT_OK) {
    if (ig) fprintf(stderr, "smelt: error: %s\n", smelt_last_error());
    smelt_ingot_close(file);
    return 1;
  }
  const IngotEntry *e = ingot_entry(ig, entry);
  if (!e) {
    fprintf(stderr, "smelt: error: %s has no entry point '%s'\n", path, entry);
    smelt_session_free(s);
    smelt_ingot_close(file);
    return 1;
  }
  random_inputs(s, ig, e);
  Device *d = session_device(s);
  double *ms = malloc(sizeof(double) * (size_t)runs);
  int rc = 0;
  // warm-up: caches, the thread pool, the GPU's clocks
  for (int i = 0; i < 20 && rc == 0; i++) rc = smelt_run(s, entry, 1, (uint64_t)i) != SMELT_OK;
  sync_dev(d);
  double total = 0;
  for (int i = 0; i < runs && rc == 0; i++) {
    double t0 = now_ms();
    rc = smelt_run(s, entry, 1, (uint64_t)i) != SMELT_OK;
    sync_dev(d);
    ms[i] = now_ms() - t0;
    total += ms[i];
  }
  if (rc) {
    fprintf(stderr, "smelt: error: %s\n", smelt_last_error());
  } else {
    qsort(ms, (size_t)runs, sizeof *ms, cmp_double);
    int p99 = (int)((double)runs * 0.99);
    if (p99 >= runs) p99 = runs - 1;
    // META lookups share one buffer: each value is copied before the next
    const char *model = smelt_ingot_meta(ig, "model");
    char model_name[128];
    snprintf(model_name, sizeof model_name, "%s", model ? model : path);
    // the batch: the leading dimension of the entry's first input
    char batch_txt[32] = "?";
    for (uint32_t k = 0; k < e->nslots; k++) {
      const IngotTensor *t = &ig->tensors[ig->slots[e->first_slot + k]];
      if (t->role != ROLE_INPUT) continue;
      if (t->ndim) snprintf(batch_txt, sizeof batch_txt, "%lld", (long long)t->dims[0]);
      break;
    }
    printf("%s %s, batch %s, on %s: median %.3f ms, p99 %.3f ms, mean %.3f ms, min %.3f ms over %d runs\n", model_name,
           entry, batch_txt, smelt_session_device(s), ms[runs / 2], ms[p99], total / runs, ms[0], runs);
  }
  free(ms);
  smelt_session_free(s);
  smelt_ingot_close(file);
  return rc;
}

