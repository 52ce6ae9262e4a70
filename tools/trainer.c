// trainer.c: `smelt train` and `smelt eval`: the train block, executed.
//
// The model file is built into an ingot (or an ingot is given), the data
// sources named in its META are loaded, and the runtime runs "train_step" on
// shuffled batches, with a progress line on a terminal and plain log lines
// otherwise, an evaluation on held-out data after each epoch, and checkpoints
// every N steps (atomic: the runtime writes a temporary file and renames it).
// A resumed run loads the checkpoint, reads the step counter from it and
// continues from the same batch, so N + M steps equal N + M uninterrupted.
#include "tools.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data.h"
#include "runtime.h"
#include "sha256.h"
#include "tensorfile.h"


typedef struct {
  const char *inputs[2];   // entry input names this source feeds
  int ninputs;
  char source[16];
  double scale, from, to;
  char dtype[1024];   // tokens: u16, u32 or llm.c; csv: its columns; else "-"
  char path[4096];
} DataSpec;

// Parses META "data.SPLIT.IN[,IN]" = "SOURCE:SCALE:FROM:TO:DTYPE:PATH".
static int find_sources(const smelt_ingot *ig, const char *split, DataSpec *out, int max) {
  int n = 0;
  char prefix[64];
  snprintf(prefix, sizeof prefix, "data.%s.", split);
  for (const char *line = ig->meta; line && *line && n < max;) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    if (!strncmp(line, prefix, strlen(prefix))) {
      char buf[8192];
      snprintf(buf, sizeof buf, "%.*s", (int)len, line + strlen(prefix));
      char *eq = strchr(buf, '=');
      if (eq) {
        *eq = '\0';
        DataSpec *s = &out[n];
        memset(s, 0, sizeof *s);
        char *comma = strchr(buf, ',');
        if (comma) *comma = '\0';
        s->inputs[s->ninputs++] = xstrdup(buf);
        if (comma) s->inputs[s->ninputs++] = xstrdup(comma + 1);
        if (sscanf(eq + 1, "%15[^:]:%lf:%lf:%lf:%1023[^:]:%4095[^\n]", s->source, &s->scale, &s->from, &s->to,
                   s->dtype, s->path) == 6)
          n++;
      }
    }
    line = end ? end + 1 : NULL;
  }
  return n;
}

static void free_sources(DataSpec *s, int n) {
  for (int i = 0; i < n; i++)
    for (int k = 0; k < s[i].ninputs; k++) free((char *)s[i].inputs[k]);
}

static int load_source(const DataSpec *s, Dataset *d, char *err, size_t errlen) {
  if (!strcmp(s->source, "idx")) return data_load_idx(s->path, s->scale, d, err, errlen);
  if (!strcmp(s->source, "csv"))
    return data_load_csv_columns(s->path, s->scale, strcmp(s->dtype, "-") ? s->dtype : NULL, d, err, errlen);
  if (!strcmp(s->source, "npy")) return data_load_npy(s->path, s->scale, d, err, errlen);
  if (!strcmp(s->source, "text")) return data_load_text(s->path, s->from, s->to, d, err, errlen);
  if (!strcmp(s->dtype, "llm.c")) return data_load_llmc(s->path, s->from, s->to, d, err, errlen);
  return data_load_tokens(s->path, !strcmp(s->dtype, "u32") ? 4 : 2, s->from, s->to, d, err, errlen);
}

// One split's data, ready to batch into an entry's inputs.
typedef struct {
  DataSpec src[8];
  int nsrc;
  Dataset sets[8];
  const char *names[8];     // entry input fed by each batcher output
  const IngotTensor *ins[8];
  int nouts;
  Batcher *b;
  float *bufs[8];           // batcher outputs
  void *conv[8];            // converted to the input's dtype
  int64_t batch;            // the entry's batch: this rank's rows of each drawn batch
  int64_t window;           // a language model's window; 0: one sample per row, output k from sets[k]
} Split;

static const IngotTensor *entry_input(const smelt_ingot *ig, const char *entry, const char *name) {
  char full[512];
  snprintf(full, sizeof full, "%s/%s", entry, name);
  int64_t t = ingot_tensor(ig, full);
  return t >= 0 && ig->tensors[t].role == ROLE_INPUT ? &ig->tensors[t] : NULL;
}

static void split_free(Split *sp) {
  if (sp->b) batcher_free(sp->b);
  for (int i = 0; i < sp->nsrc; i++) data_free(&sp->sets[i]);
  for (int i = 0; i < sp->nouts; i++) free(sp->bufs[i]), free(sp->conv[i]);
  free_sources(sp->src, sp->nsrc);
  memset(sp, 0, sizeof *sp);
}

// Checks that every value of d fits the dtype of the input it feeds: a label
// must be a whole number in the integer type's range (converting NaN or 3e9 to
// i32 is undefined), a float must be finite.
static int check_values(const Dataset *d, uint32_t dtype, const char *input, char *err, size_t errlen) {
  double lo = 0, hi = 0;
  switch (dtype) {
  case DT_I32: lo = INT32_MIN, hi = INT32_MAX; break;
  case DT_I64: lo = -9007199254740992.0, hi = 9007199254740992.0; break;   // what a float holds exactly
  case DT_U8: lo = 0, hi = 255; break;
  case DT_BOOL: lo = 0, hi = 1; break;
  default: break;
  }
  bool integral = lo != hi;
  if (!d->values) {   // a token stream: whole numbers from 0 to max_token
    if (integral && d->max_token > hi)
      return snprintf(err, errlen, "input '%s' is %s, but its data holds token %u (%s takes whole numbers from %.0f to %.0f)",
                      input, dtype_name(dtype), d->max_token, dtype_name(dtype), lo, hi), -1;
    return 0;
  }
  int64_t n = d->n * d->sample_size;
  for (int64_t i = 0; i < n; i++) {
    float v = d->values[i];
    if (!isfinite(v))
      return snprintf(err, errlen, "input '%s': sample %lld holds %g, not a finite number", input,
                      (long long)(i / (d->sample_size ? d->sample_size : 1)), v), -1;
    if (integral && (v != floorf(v) || v < lo || v > hi))
      return snprintf(err, errlen, "input '%s' is %s, but sample %lld holds %.10g (%s takes whole numbers from %.0f to %.0f)",
                      input, dtype_name(dtype), (long long)(i / (d->sample_size ? d->sample_size : 1)), v,
                      dtype_name(dtype), lo, hi), -1;
  }
  return 0;
}

// Loads a split's sources and makes its batcher for entry's inputs.
// With shards > 1 the batcher draws the global batch, shards times the
// entry's, in the order one rank would (seed, epoch, position), and reads
// only rows [shard * batch, (shard + 1) * batch) of it, this rank's.
static int split_open(const smelt_ingot *ig, const char *split, const char *entry, uint64_t seed, bool shuffle,
                      int shards, int shard, Split *sp, char *err, size_t errlen) {
  memset(sp, 0, sizeof *sp);
  sp->nsrc = find_sources(ig, split, sp->src, 8);
  if (sp->nsrc == 0) return snprintf(err, errlen, "the train block has no 'data %s'", split), -1;
  int64_t window = 0;
  Dataset *ptrs[8];
  for (int i = 0; i < sp->nsrc; i++) {
    const DataSpec *s = &sp->src[i];
    if (load_source(s, &sp->sets[i], err, errlen)) return -1;
    ptrs[i] = &sp->sets[i];
    for (int k = 0; k < s->ninputs; k++) {
      const IngotTensor *t = entry_input(ig, entry, s->inputs[k]);
      if (!t) return snprintf(err, errlen, "'%s' feeds '%s', which entry '%s' does not take", s->path, s->inputs[k], entry), -1;
      sp->names[sp->nouts] = s->inputs[k];
      sp->ins[sp->nouts++] = t;
    }
    if (s->ninputs == 2) window = sp->ins[0]->ndim >= 2 ? sp->ins[0]->dims[1] : 1;
  }
  sp->batch = sp->ins[0]->ndim ? sp->ins[0]->dims[0] : 1;
  if (sp->batch < 1)   // the compiler refuses it; an ingot from elsewhere may not
    return snprintf(err, errlen, "input '%s' has a batch of %lld; it must be at least 1", sp->names[0],
                    (long long)sp->batch), -1;
  for (int k = 0; k < sp->nouts; k++) {
    int64_t per = (int64_t)(sp->ins[k]->bytes / (uint64_t)dtype_size(sp->ins[k]->dtype)) / sp->batch;
    int64_t have = window ? window : sp->sets[k].sample_size;
    if (per != have)
      return snprintf(err, errlen, "input '%s' takes %lld values per sample, but its data has %lld",
                      sp->names[k], (long long)per, (long long)have), -1;
    if (window ? check_values(&sp->sets[0], sp->ins[k]->dtype, sp->names[k], err, errlen)
               : check_values(&sp->sets[k], sp->ins[k]->dtype, sp->names[k], err, errlen))
      return -1;
    sp->bufs[k] = xmalloc(sizeof(float) * (size_t)(per * sp->batch));
    sp->conv[k] = xmalloc((size_t)sp->ins[k]->bytes);
  }
  sp->window = window;
  sp->b = batcher_new_rows(ptrs, window ? 1 : sp->nsrc, sp->batch * shards, window, seed, shuffle, sp->batch * shard,
                           sp->batch, err, errlen);
  return sp->b ? 0 : -1;
}

// The batch in sp->bufs into the session's inputs, in their dtypes.
static void split_set_inputs(Split *sp, smelt_session *s, const char *entry) {
  for (int k = 0; k < sp->nouts; k++) {
    const IngotTensor *t = sp->ins[k];
    int64_t n = (int64_t)(t->bytes / (uint64_t)dtype_size(t->dtype));
    for (int64_t i = 0; i < n; i++) {
      float v = sp->bufs[k][i];
      switch (t->dtype) {
      case DT_F32: ((float *)sp->conv[k])[i] = v; break;
      case DT_I32: ((int32_t *)sp->conv[k])[i] = (int32_t)v; break;
      case DT_I64: ((int64_t *)sp->conv[k])[i] = (int64_t)v; break;
      case DT_U8: case DT_BOOL: ((uint8_t *)sp->conv[k])[i] = (uint8_t)v; break;
      default: ((float *)sp->conv[k])[i] = v; break;
      }
    }
    smelt_set_input(s, entry, sp->names[k], sp->conv[k], t->bytes);
  }
}

// Fetches the next batch into the session's inputs; returns its epoch.
static int64_t split_next(Split *sp, smelt_session *s, const char *entry) {
  int64_t epoch = batcher_next(sp->b, sp->bufs);
  split_set_inputs(sp, s, entry);
  return epoch;
}

// The samples after the last whole batch of an unshuffled split (the batcher
// drops them), or 0 for a language model's windows.
static int64_t split_remainder(const Split *sp) {
  return sp->window || !sp->nouts ? 0 : sp->sets[0].n % sp->batch;
}

// Every row of the inputs set to sample i: a batch of copies of one sample,
// whose mean loss is that sample's loss, so the remainder is evaluated
// sample by sample and counted exactly.
static void split_fill_one(Split *sp, smelt_session *s, const char *entry, int64_t i) {
  for (int k = 0; k < sp->nouts; k++) {
    int64_t ss = sp->sets[k].sample_size;
    for (int64_t row = 0; row < sp->batch; row++)
      memcpy(sp->bufs[k] + row * ss, sp->sets[k].values + i * ss, sizeof(float) * (size_t)ss);
  }
  split_set_inputs(sp, s, entry);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *duration(char *buf, size_t n, double s) {
  if (s < 60) snprintf(buf, n, "%.1fs", s);
  else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
  else snprintf(buf, n, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
  return buf;
}

typedef struct {
  double loss;
  double accuracy;   // < 0: not a classifier
  int64_t samples;
} EvalResult;

// Mean loss (and accuracy, for logits [B, C] against labels [B]) over a split.
static int evaluate(const smelt_ingot *ig, smelt_session *s, const char *split, uint64_t seed, EvalResult *r,
                    char *err, size_t errlen) {
  Split sp;
  memset(r, 0, sizeof *r);
  if (split_open(ig, split, "eval", seed, false, 1, 0, &sp, err, errlen)) {
    split_free(&sp);
    return -1;
  }
  int64_t t_logits = ingot_tensor(ig, "eval/logits");
  const IngotTensor *lt = t_logits >= 0 ? &ig->tensors[t_logits] : NULL;
  const IngotTensor *yt = entry_input(ig, "eval", "y");
  bool classify = lt && lt->ndim == 2 && lt->dtype == DT_F32 && yt && yt->ndim == 1;
  int64_t nb = batcher_batches_per_epoch(sp.b), rem = split_remainder(&sp), correct = 0;
  float *logits = classify ? xmalloc(lt->bytes) : NULL;
  double total = 0;   // the sum of the samples' losses
  for (int64_t k = 0; k < nb + rem; k++) {
    bool whole = k < nb;   // a batch, else the remainder's sample nb * B + (k - nb), in every row
    if (whole) split_next(&sp, s, "eval");
    else split_fill_one(&sp, s, "eval", nb * sp.batch + (k - nb));
    if (smelt_run(s, "eval", seed, 0) != SMELT_OK) {
      snprintf(err, errlen, "%s", smelt_last_error());
      free(logits);
      split_free(&sp);
      return -1;
    }
    float loss = 0;
    smelt_get_output(s, "eval", "loss", &loss, sizeof loss);
    total += whole ? (double)loss * (double)sp.batch : loss;
    if (classify) {
      smelt_get_output(s, "eval", "logits", logits, lt->bytes);
      int yk = -1;
      for (int k2 = 0; k2 < sp.nouts; k2++) yk = !strcmp(sp.names[k2], "y") ? k2 : yk;
      int64_t B = whole ? lt->dims[0] : 1, C = lt->dims[1];
      for (int64_t i = 0; i < B && yk >= 0; i++) {
        int64_t best = 0;
        for (int64_t c2 = 1; c2 < C; c2++)
          if (logits[i * C + c2] > logits[i * C + best]) best = c2;
        correct += best == (int64_t)sp.bufs[yk][i];
      }
    }
  }
  r->samples = nb * sp.batch + rem;
  r->loss = r->samples ? total / (double)r->samples : NAN;
  r->accuracy = classify && r->samples ? (double)correct / (double)r->samples : -1;
  free(logits);
  split_free(&sp);
  return 0;
}

static void print_eval(const char *split, const EvalResult *r) {
  printf("%s: loss %.4f", split, r->loss);
  if (r->accuracy >= 0) printf(", accuracy %.2f%%", 100 * r->accuracy);
  printf(" (%lld samples)\n", (long long)r->samples);
  fflush(stdout);
}

static const char *held_out_split(const smelt_ingot *ig) {
  DataSpec tmp[8];
  int n = find_sources(ig, "test", tmp, 8);
  free_sources(tmp, n);
  if (n) return "test";
  n = find_sources(ig, "val", tmp, 8);
  free_sources(tmp, n);
  return n ? "val" : NULL;
}

static int64_t meta_int(const smelt_ingot *ig, const char *key, int64_t dflt) {
  const char *v = smelt_ingot_meta(ig, key);
  return v ? strtoll(v, NULL, 10) : dflt;
}

const char *tools_expect_sha256;

smelt_status tools_ingot_open(const char *path, smelt_ingot **out) {
  return smelt_ingot_open_verified(path, tools_expect_sha256, out);
}

bool tools_no_graphs;

smelt_status tools_session_new(const smelt_ingot *ig, const char *device, int threads, smelt_session **out) {
  smelt_status st = smelt_session_new(ig, device, threads, out);
  if (st == SMELT_OK && tools_no_graphs) st = smelt_session_use_graphs(*out, 0);
  return st;
}

// Opens an ingot, or says why not; NULL on failure.
static smelt_ingot *open_ingot(const char *path) {
  smelt_ingot *ig;
  if (tools_ingot_open(path, &ig) == SMELT_OK) return ig;
  fprintf(stderr, "smelt: error: %s\n", smelt_last_error());
  return NULL;
}

// Looks for a NaN or an infinity in the parameters and optimizer state, the
// tensors a checkpoint holds; returns the first such tensor's name (and an
// element and its value) or NULL. A step with a finite loss can still write a
// non-finite update (sqrt of 0 in a gradient), so this runs before every save:
// saving it would replace the last good checkpoint.
static const char *first_nonfinite(const smelt_ingot *ig, smelt_session *s, int64_t *at, double *value) {
  enum { CHUNK = 4096 };
  double vals[CHUNK];
  for (uint32_t t = 0; t < ig->ntensors; t++) {
    const IngotTensor *tt = &ig->tensors[t];
    if ((tt->role != ROLE_PARAM && tt->role != ROLE_STATE) || !dtype_is_float((DType)tt->dtype)) continue;
    const char *name = ingot_str(ig, tt->name);
    char *host = xmalloc(tt->bytes ? (size_t)tt->bytes : 1);
    if (smelt_get_tensor(s, name, host, (size_t)tt->bytes) != SMELT_OK) {
      free(host);
      continue;
    }
    int size = dtype_size(tt->dtype);
    int64_t n = (int64_t)(tt->bytes / (uint64_t)size);
    for (int64_t i = 0; i < n; i += CHUNK) {
      int64_t m = n - i < CHUNK ? n - i : CHUNK;
      dtype_to_doubles(tt->dtype, host + i * size, vals, m);
      for (int64_t j = 0; j < m; j++)
        if (!isfinite(vals[j])) {
          *at = i + j;
          *value = vals[j];
          free(host);
          return name;
        }
    }
    free(host);
  }
  return NULL;
}

// Where the tensor name of ig comes from, as " (model.smelt:7)" (META
// "at.NAME"), or "" when the ingot does not say.
static void declared_at(const smelt_ingot *ig, const char *name, char *buf, size_t n) {
  char key[512];
  snprintf(key, sizeof key, "at.%s", name);
  const char *at = smelt_ingot_meta(ig, key);
  if (at) snprintf(buf, n, " (%s)", at);
  else if (n) buf[0] = '\0';
}

// The element flat of the tensor name as " at [3, 5]" ("" for a scalar).
static void element_index(const smelt_ingot *ig, const char *name, int64_t flat, char *buf, size_t n) {
  const IngotTensor *tt = &ig->tensors[ingot_tensor(ig, name)];
  int64_t idx[INGOT_MAX_DIMS];
  for (int d = (int)tt->ndim - 1; d >= 0; d--) {
    idx[d] = tt->dims[d] ? flat % (int64_t)tt->dims[d] : 0;
    flat = tt->dims[d] ? flat / (int64_t)tt->dims[d] : 0;
  }
  size_t len = (size_t)snprintf(buf, n, tt->ndim ? " at [" : "");
  for (uint32_t d = 0; d < tt->ndim && len < n; d++)
    len += (size_t)snprintf(buf + len, n - len, "%s%lld", d ? ", " : "", (long long)idx[d]);
  if (len < n && tt->ndim) snprintf(buf + len, n - len, "]");
}

// "'fc1.w' (model.smelt:7) holds nan at [3, 5]": the tensor, its line and
// the element, for the messages about a non-finite value.
static void describe_nonfinite(const smelt_ingot *ig, const char *name, int64_t at, double v, char *buf, size_t n) {
  char where[300], idx[200];
  declared_at(ig, name, where, sizeof where);
  element_index(ig, name, at, idx, sizeof idx);
  char value[32];   // a NaN's sign means nothing: "nan", never "-nan"
  if (isnan(v)) snprintf(value, sizeof value, "nan");
  else snprintf(value, sizeof value, "%g", v);
  snprintf(buf, n, "'%s'%s holds %s%s", name, where, value, idx);
}

// The first input of the batch now in sp with a non-finite value, or NULL.
static const char *nonfinite_input(const Split *sp) {
  for (int k = 0; k < sp->nouts; k++) {
    int64_t n = (int64_t)(sp->ins[k]->bytes / (uint64_t)dtype_size(sp->ins[k]->dtype));
    for (int64_t i = 0; i < n; i++)
      if (!isfinite(sp->bufs[k][i])) return sp->names[k];
  }
  return NULL;
}

// Refuses to go on (and to save) when step left a non-finite parameter or
// state; says which, and that the checkpoint on disk is the last good one.
static bool state_is_finite(const smelt_ingot *ig, smelt_session *s, int64_t step, const char *checkpoint) {
  int64_t at;
  double v;
  const char *bad = first_nonfinite(ig, s, &at, &v);
  if (!bad) return true;
  char what[800];
  describe_nonfinite(ig, bad, at, v, what, sizeof what);
  fprintf(stderr, "\nsmelt: error: after step %lld, %s; nothing saved", (long long)step, what);
  if (checkpoint && access(checkpoint, F_OK) == 0) fprintf(stderr, " (%s holds the last good state)", checkpoint);
  // the data loaders refuse a NaN or an infinity, so the cause is the step's arithmetic
  fprintf(stderr, ". A non-finite update: a learning rate too high, or a gradient through sqrt, log or a division at 0?\n");
  return false;
}

// Says why the loss of step is not finite, as far as the trainer can tell.
// The parameters are read after the step's update; where the state before
// the step is known to be finite (the run's first step, or --check-finite,
// which checked it after the step before), the model computed the loss from
// finite values; otherwise an earlier update may be the cause.
static void nonfinite_loss(const smelt_ingot *ig, smelt_session *s, const Split *sp, float loss, int64_t step,
                           bool first, bool checked) {
  const char *in = nonfinite_input(sp);
  int64_t at;
  double v;
  const char *p = in ? NULL : first_nonfinite(ig, s, &at, &v);
  fprintf(stderr, "\nsmelt: error: the loss is %s at step %lld; ", isnan(loss) ? "nan" : loss > 0 ? "inf" : "-inf",
          (long long)step);
  if (in) {
    fprintf(stderr, "the batch's '%s' holds a NaN or an infinity (check the data)\n", in);
    return;
  }
  if (!p) {
    fprintf(stderr, "the data and parameters are finite, so the model computes it (log of 0, a division by 0?)\n");
    return;
  }
  char what[800];
  describe_nonfinite(ig, p, at, v, what, sizeof what);
  if (first || checked)
    fprintf(stderr, "the batch and the state before this step are finite (%s), so the model computes it from them "
            "(log of 0, a division by 0, sqrt of a negative?); after its update %s\n",
            first ? "this is the run's first step" : "--check-finite checked them", what);
  else
    fprintf(stderr, "after its update %s. The state before this step was not checked: an earlier update that was "
            "not finite, or this step's own arithmetic from finite values, made it so (train with --check-finite "
            "to check the state after every step and tell which)\n", what);
}

// Keeps the checkpoint at path, about to be replaced, as path.1, shifting
// path.1 to path.2 and so on, so that keep - 1 older ones remain (keep 1:
// none). path itself stays in place (a hard link takes the old bytes to
// path.1) until the save renames the new file over it; where links are not
// possible, path is renamed. 0, or -1 after a message.
static int checkpoint_rotate(const char *path, int64_t keep) {
  if (keep <= 1 || access(path, F_OK) != 0) return 0;
  size_t n = strlen(path) + 24;
  char *from = xmalloc(n), *to = xmalloc(n);
  int rc = 0;
  for (int64_t i = keep - 1; i >= 2 && rc == 0; i--) {   // path.(i-1) -> path.i
    snprintf(from, n, "%s.%lld", path, (long long)(i - 1));
    snprintf(to, n, "%s.%lld", path, (long long)i);
    if (rename(from, to) != 0 && errno != ENOENT) {
      fprintf(stderr, "\nsmelt: error: cannot keep the older checkpoint %s as %s: %s\n", from, to, strerror(errno));
      rc = -1;
    }
  }
  snprintf(to, n, "%s.1", path);
  if (rc == 0 && (unlink(to) == 0 || errno == ENOENT) && link(path, to) != 0 && rename(path, to) != 0) {
    fprintf(stderr, "\nsmelt: error: cannot keep the checkpoint %s as %s: %s\n", path, to, strerror(errno));
    rc = -1;
  }
  free(from);
  free(to);
  return rc;
}

// Saves the session's state at path, keeping keep - 1 older ones (--keep),
// and says so: one line per save, with the step count it holds.
static bool checkpoint_save(smelt_session *s, const char *path, int64_t keep, int64_t steps, bool tty) {
  if (checkpoint_rotate(path, keep) != 0) return false;
  if (smelt_save(s, path) != SMELT_OK) {
    fprintf(stderr, "\nsmelt: error: %s\n", smelt_last_error());
    return false;
  }
  printf("%ssaved %s at step %lld\n", tty ? "\r\033[K" : "", path, (long long)steps);
  fflush(stdout);
  return true;
}

// checkpoint_save and evaluate as the work of dist_while_busy: 0 or -1.
typedef struct {
  smelt_session *s;
  const char *path;
  int64_t keep, steps;
  bool tty;
} SaveJob;

typedef struct {
  const smelt_ingot *ig;
  smelt_session *s;
  const char *split;
  uint64_t seed;
  EvalResult *r;
  char *err;
  size_t errlen;
} EvalJob;

static int save_job(void *p) {
  SaveJob *j = p;
  return checkpoint_save(j->s, j->path, j->keep, j->steps, j->tty) ? 0 : -1;
}

static int eval_job(void *p) {
  EvalJob *j = p;
  return evaluate(j->ig, j->s, j->split, j->seed, j->r, j->err, j->errlen);
}

// Whether the tensor file at path is a checkpoint of ig's model: the same
// parameters and state, by name, dtype and shape (a checkpoint records no
// more of its model than that).
static bool checkpoint_is_of(const smelt_ingot *ig, const char *path) {
  char err[512];
  TensorReader *r = tensor_reader_open(path, err, sizeof err);
  if (!r) return false;
  uint32_t want = 0, n = tensor_reader_count(r);
  for (uint32_t t = 0; t < ig->ntensors; t++)
    want += ig->tensors[t].role == ROLE_PARAM || ig->tensors[t].role == ROLE_STATE;
  bool same = n == want;
  for (uint32_t i = 0; i < n && same; i++) {
    const char *name;
    uint32_t dtype;
    Shape shape;
    int64_t t = tensor_reader_next(r, &name, &dtype, &shape) ? ingot_tensor(ig, name) : -1;
    const IngotTensor *tt = t >= 0 ? &ig->tensors[t] : NULL;
    same = tt && (tt->role == ROLE_PARAM || tt->role == ROLE_STATE) && tt->dtype == dtype &&
           (int)tt->ndim == shape.ndim;
    for (int d = 0; same && d < shape.ndim; d++) same = (int64_t)tt->dims[d] == shape.d[d];
    same = same && tensor_reader_bytes(r, NULL, tt->bytes);
  }
  tensor_reader_close(r);
  return same;
}

// ---- stopping on Ctrl-C or SIGTERM
//
// The first signal sets a flag that the training loop reads between steps:
// the step in flight finishes, the state is saved and the run ends with 128 +
// the signal's number. A second one ends the process at once, as the signal
// would have without this handler (the previous one runs: the command line's
// removes its temporary folder), saving nothing.

static volatile sig_atomic_t stop_signal;
static struct sigaction stop_previous[2];   // SIGINT's, SIGTERM's

static void on_stop_signal(int sig) {
  int saved_errno = errno;
  if (stop_signal) {
    sigaction(sig, &stop_previous[sig == SIGTERM], NULL);
    raise(sig);   // blocked until this handler returns, then the previous disposition acts
  } else {
    stop_signal = sig;
    static const char msg[] = "\nsmelt: stopping after this step to save it (again to quit at once, saving nothing)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
  }
  errno = saved_errno;
}

// Catches SIGINT and SIGTERM unless they are ignored (nohup, a background job).
static void stop_signals_catch(void) {
  static const int sigs[2] = {SIGINT, SIGTERM};
  stop_signal = 0;
  for (int i = 0; i < 2; i++) {
    struct sigaction sa = {.sa_handler = on_stop_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    if (sigaction(sigs[i], NULL, &stop_previous[i]) == 0 && stop_previous[i].sa_handler != SIG_IGN)
      sigaction(sigs[i], &sa, NULL);
  }
}

static void stop_signals_restore(void) {
  sigaction(SIGINT, &stop_previous[0], NULL);
  sigaction(SIGTERM, &stop_previous[1], NULL);
}

// Where an interrupted run saves when no --checkpoint names a place: next to
// the model file, as MODEL.interrupted.ckpt (MODEL without .smelt or .ingot),
// replacing an earlier one of the same model; where that name holds another
// model's checkpoint (or another file), MODEL.interrupted-2.ckpt, -3, ...
static char *interrupted_path(const smelt_ingot *ig, const TrainOptions *o) {
  const char *model = o->source ? o->source : o->ingot;
  size_t n = strlen(model);
  const char *slash = strrchr(model, '/'), *dot = strrchr(model, '.');
  if (dot && (!slash || dot > slash) && (!strcmp(dot, ".smelt") || !strcmp(dot, ".ingot"))) n = (size_t)(dot - model);
  size_t len = n + sizeof ".interrupted-1000.ckpt";
  char *path = xmalloc(len);
  snprintf(path, len, "%.*s.interrupted.ckpt", (int)n, model);
  for (int k = 2; k <= 1000 && access(path, F_OK) == 0 && !checkpoint_is_of(ig, path); k++)
    snprintf(path, len, "%.*s.interrupted-%d.ckpt", (int)n, model, k);
  return path;
}

// What the file at path holds, from its records alone (no model to compare
// with yet): 1 and *step for a checkpoint with a step counter, 0 for a
// tensor file without one (parameters, or another model's), -1 for a file
// that is not a tensor file.
static int checkpoint_step_of(const char *path, int64_t *step) {
  char err[512];
  TensorReader *r = tensor_reader_open(path, err, sizeof err);
  if (!r) return -1;
  int found = 0;
  uint32_t n = tensor_reader_count(r);
  for (uint32_t i = 0; i < n; i++) {
    const char *name;
    uint32_t dtype;
    Shape shape;
    if (!tensor_reader_next(r, &name, &dtype, &shape)) break;
    bool counter = !strcmp(name, "step") && shape_numel(&shape) == 1 && (dtype == DT_I64 || dtype == DT_I32);
    int64_t v64 = 0;
    int32_t v32 = 0;
    if (!tensor_reader_bytes(r, counter ? (dtype == DT_I64 ? (void *)&v64 : (void *)&v32) : NULL,
                             counter ? (uint64_t)dtype_size(dtype) : (uint64_t)shape_numel(&shape) * dtype_size(dtype)))
      break;
    if (counter) {
      *step = dtype == DT_I64 ? v64 : v32;
      found = 1;
      break;
    }
  }
  tensor_reader_close(r);
  return found;
}

int train_may_start(const TrainOptions *o) {
  struct stat sb;
  if (!o->checkpoint || o->resume || o->force || lstat(o->checkpoint, &sb) != 0) return 0;
  int64_t step = 0;
  int kind = checkpoint_step_of(o->checkpoint, &step);
  if (kind < 0)
    fprintf(stderr, "smelt: error: %s exists and is not a checkpoint: --force replaces it\n", o->checkpoint);
  else if (kind == 0)
    fprintf(stderr, "smelt: error: the tensor file %s exists (parameters, no step counter): --resume fine-tunes from "
            "it, --force starts over and replaces it\n", o->checkpoint);
  else
    fprintf(stderr, "smelt: error: the checkpoint %s exists (step %lld): --resume continues it, --force starts over "
            "and replaces it\n", o->checkpoint, (long long)step);
  return 1;
}

// ---- the progress line

typedef struct {
  int64_t step, total, epoch;
  double loss;         // the mean since the last report
  double lr;           // < 0: the ingot does not say
  double rate, eta;    // samples/s, seconds
  bool scaled;         // fp16: the loss scale and the steps it skipped
  float scale;
  int64_t skipped;
} Progress;

// The terminal's width in columns: TIOCGWINSZ on fd, else $COLUMNS, else 80.
static int terminal_width(int fd) {
  struct winsize ws;
  if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  const char *c = getenv("COLUMNS");
  long n = c ? strtol(c, NULL, 10) : 0;
  return n > 0 && n < 10000 ? (int)n : 80;
}

// The report into buf as fields two spaces apart. width > 0 (a terminal):
// the least needed fields are left out (the loss scale, the learning rate,
// samples/s, the epoch, the ETA, the loss) until the line fits in width - 1
// columns, leaving the last one free so that no terminal wraps it; a bar of
// the run's progress takes the room left, and a line still too wide is cut.
static void progress_format(const Progress *p, int width, char *buf, size_t n) {
  enum { NF = 7 };
  char f[NF][64], eta[32];
  snprintf(f[0], sizeof f[0], "step %lld/%lld", (long long)p->step, (long long)p->total);
  snprintf(f[1], sizeof f[1], "epoch %lld", (long long)p->epoch);
  snprintf(f[2], sizeof f[2], "loss %.4f", p->loss);
  f[3][0] = f[4][0] = '\0';   // empty fields are not printed
  if (p->scaled) snprintf(f[3], sizeof f[3], "scale %g (%lld skipped)", p->scale, (long long)p->skipped);
  if (p->lr >= 0) snprintf(f[4], sizeof f[4], "lr %.3g", p->lr);
  snprintf(f[5], sizeof f[5], "%.0f samples/s", p->rate);
  snprintf(f[6], sizeof f[6], "ETA %s", duration(eta, sizeof eta, p->eta));
  static const int drop_order[NF - 1] = {3, 4, 5, 1, 6, 2};   // f[0], the step, always stays
  bool keep[NF];
  size_t len = 0;
  for (int i = 0; i < NF; i++) keep[i] = f[i][0] != '\0', len += keep[i] ? strlen(f[i]) + 2 : 0;
  len -= 2;
  size_t room = width > 0 ? (size_t)width - 1 : (size_t)-1;
  for (int k = 0; k < NF - 1 && len > room; k++)
    if (keep[drop_order[k]]) keep[drop_order[k]] = false, len -= strlen(f[drop_order[k]]) + 2;
  size_t at = 0, bar = width > 0 && room >= len + 10 ? room - len - 3 : 0;
  if (bar > 30) bar = 30;
  buf[0] = '\0';
  for (int i = 0; i < NF && at < n; i++) {
    if (!keep[i]) continue;
    at += (size_t)snprintf(buf + at, n - at, "%s%s", at ? "  " : "", f[i]);
    if (i == 0 && bar && at + bar + 4 < n) {   // " [#####.....]" after the step
      size_t done = p->total ? (size_t)((double)bar * (double)p->step / (double)p->total) : 0;
      buf[at++] = ' ', buf[at++] = '[';
      for (size_t j = 0; j < bar; j++) buf[at++] = j < done ? '#' : '.';
      buf[at++] = ']', buf[at] = '\0';
    }
  }
  if (width > 0 && strlen(buf) > room) buf[room] = '\0';
}

// On a terminal the line is redrawn in place (a carriage return, the line,
// then clear to its end; spaces on a dumb terminal); elsewhere it is a line
// of its own.
static void progress_print(const Progress *p, bool tty) {
  char line[512];
  int width = tty ? terminal_width(fileno(stdout)) : 0;
  progress_format(p, width, line, sizeof line);
  if (!tty) printf("%s\n", line);
  else {
    const char *term = getenv("TERM");
    if (term && !strcmp(term, "dumb")) printf("\r%-*s", width - 1, line);
    else printf("\r%s\033[K", line);
  }
  fflush(stdout);
}

// ---- --log-dir: DIR/scalars.csv, one row per step, and TensorBoard's events

typedef struct {
  FILE *csv;
  TfEvents *events;   // tfevents.c
  bool events_failed; // a write of the event file failed
} ScalarLog;

// The folder (made when missing), the CSV with its header, appended to when
// it exists (a resumed run continues its rows), and a new event file; false
// after a message.
static bool scalars_open(const char *dir, ScalarLog *log) {
  if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
    fprintf(stderr, "smelt: error: --log-dir: cannot make %s: %s\n", dir, strerror(errno));
    return false;
  }
  size_t n = strlen(dir) + sizeof "/scalars.csv";
  char *path = xmalloc(n), err[4700];
  snprintf(path, n, "%s/scalars.csv", dir);
  struct stat st;
  bool fresh = stat(path, &st) != 0 || st.st_size == 0;
  log->csv = fopen(path, "a");
  if (!log->csv) fprintf(stderr, "smelt: error: --log-dir: cannot write %s: %s\n", path, strerror(errno));
  else if (fresh) fputs("step,loss,lr,grad_norm,samples_per_s,eval_loss,eval_accuracy\n", log->csv);
  free(path);
  if (log->csv && !(log->events = tfevents_open(dir, err, sizeof err))) fprintf(stderr, "smelt: error: %s\n", err);
  return log->csv && log->events;
}

// One row: the step's loss, its learning rate and gradient norm where the
// ingot has them, and the evaluation's where one ran (empty fields
// otherwise); the same scalars as one TensorBoard event.
static void scalars_row(ScalarLog *log, smelt_session *s, const char *entry, int64_t steps, float loss, double rate,
                        const EvalResult *ev) {
  const char *tags[6] = {"loss"};
  float values[6] = {loss}, lr, norm;
  int n = 1;
  FILE *f = log->csv;
  fprintf(f, "%lld,%.9g,", (long long)steps, loss);
  if (smelt_get_output(s, entry, "lr", &lr, sizeof lr) == SMELT_OK)
    fprintf(f, "%.9g", lr), tags[n] = "lr", values[n++] = lr;
  fputc(',', f);
  if (smelt_get_output(s, entry, "grad_norm", &norm, sizeof norm) == SMELT_OK)
    fprintf(f, "%.9g", norm), tags[n] = "grad_norm", values[n++] = norm;
  fprintf(f, ",%.6g,", rate);
  tags[n] = "samples_per_s", values[n++] = (float)rate;
  if (ev) fprintf(f, "%.9g,", ev->loss), tags[n] = "eval_loss", values[n++] = (float)ev->loss;
  else fputc(',', f);
  if (ev && ev->accuracy >= 0) fprintf(f, "%.9g", ev->accuracy), tags[n] = "eval_accuracy", values[n++] = (float)ev->accuracy;
  fputc('\n', f);
  if (!tfevents_step(log->events, steps, tags, values, n)) log->events_failed = true;
}

// Closes both files; false after a message when a write failed.
static bool scalars_close(ScalarLog *log, const char *dir) {
  bool ok = true;
  if (log->csv && fclose(log->csv) != 0) {
    fprintf(stderr, "smelt: error: --log-dir: cannot write %s/scalars.csv: %s\n", dir, strerror(errno));
    ok = false;
  }
  if (tfevents_close(log->events) != 0 || log->events_failed) {
    fprintf(stderr, "smelt: error: --log-dir: cannot write the TensorBoard event file in %s\n", dir);
    ok = false;
  }
  memset(log, 0, sizeof *log);
  return ok;
}

// The end of a run stopped by a signal after steps steps: the state saved at
// --checkpoint (or the default path), where and at which step said; 128 + the
// signal's number, or 1 when nothing could be saved.
static int train_interrupted(const smelt_ingot *ig, smelt_session *s, const TrainOptions *o, int64_t steps,
                             int64_t saved_at) {
  int sig = stop_signal;
  char *path = o->checkpoint ? xstrdup(o->checkpoint) : interrupted_path(ig, o);
  int rc = 128 + sig;
  if (saved_at != steps &&
      (!state_is_finite(ig, s, steps - 1, path) || !checkpoint_save(s, path, o->checkpoint ? o->keep : 1, steps, false)))
    rc = 1;
  if (rc != 1)
    printf("interrupted by %s after step %lld; continue with --checkpoint=%s --resume\n",
           sig == SIGINT ? "SIGINT" : "SIGTERM", (long long)steps, path);
  fflush(stdout);
  free(path);
  return rc;
}

// ---- data parallelism (docs/distributed.md)
//
// Every rank runs train_grad on its shard of the global batch; the gradients
// (and the loss, and whether a rank was asked to stop) are summed over the
// ranks in one ring all-reduce (dist.c), divided by the number of ranks, and given to
// train_apply, which every rank runs on the same values: so every rank keeps
// the same parameters, and the step is one rank's at the global batch (the
// mean loss over the batch is the mean of the shards' means, the shards
// being the same size). The buffers that train_grad writes (a batch norm's
// running statistics, from its shard's batch) are averaged the same way, so
// that they too stay the same on every rank.

typedef struct {
  int rank, size;
  int n;                 // trainable parameters with a gradient
  const char **names;    // "grad.P": train_grad's outputs, train_apply's inputs
  int64_t *count;        // f32 values of each
  int64_t total, most;   // gradient values; the most of one
  int nbuf;              // buffers train_grad writes
  const IngotTensor **buf;
  int64_t buf_total;     // their values
  void *host;            // one gradient (f32) or buffer (its dtype)
  double *sum;           // every gradient, every buffer, then the loss and the stop flag
} DataParallel;

static void dp_free(DataParallel *dp) {
  free(dp->names);
  free(dp->count);
  free(dp->buf);
  free(dp->host);
  free(dp->sum);
}

// The buffers train_grad writes, which the ranks average after each step.
static void dp_buffers(const smelt_ingot *ig, DataParallel *dp) {
  const IngotEntry *e = ingot_entry(ig, "train_grad");
  dp->buf = xcalloc(e->nupdates + 1, sizeof *dp->buf);
  for (uint32_t k = 0; k < e->nupdates; k++) {
    const IngotTensor *t = &ig->tensors[ig->updates[e->first_update + k].target];
    dp->buf[dp->nbuf++] = t;
    int64_t n = (int64_t)(t->bytes / (uint64_t)dtype_size(t->dtype));
    dp->buf_total += n;
    if ((int64_t)t->bytes > dp->most * (int64_t)sizeof(float)) dp->most = (int64_t)(t->bytes / sizeof(float)) + 1;
  }
}

// The gradients train_apply takes, each checked against train_grad's output
// of the same name; 0, or -1 with a message.
static int dp_open(const smelt_ingot *ig, DataParallel *dp, char *err, size_t errlen) {
  const IngotEntry *e = ingot_entry(ig, "train_apply");
  if (!e || !ingot_entry(ig, "train_grad"))
    return snprintf(err, errlen, "this ingot has no train_grad and train_apply entries, which data-parallel training "
                    "runs (build it with --data-parallel, or train the model file)"), -1;
  dp->names = xcalloc(e->nslots + 1, sizeof *dp->names);
  dp->count = xcalloc(e->nslots + 1, sizeof *dp->count);
  for (uint32_t k = 0; k < e->nslots; k++) {
    const IngotTensor *t = &ig->tensors[ig->slots[e->first_slot + k]];
    if (t->role != ROLE_INPUT) continue;
    const char *name = ingot_str(ig, t->name) + strlen("train_apply/");
    char full[512];
    snprintf(full, sizeof full, "train_grad/%s", name);
    int64_t g = ingot_tensor(ig, full);
    if (t->dtype != DT_F32 || g < 0 || ig->tensors[g].role != ROLE_OUTPUT || ig->tensors[g].bytes != t->bytes)
      return snprintf(err, errlen, "train_apply's input '%s' is not an f32 output of train_grad of its size", name), -1;
    dp->names[dp->n] = name;
    dp->count[dp->n] = (int64_t)(t->bytes / sizeof(float));
    dp->total += dp->count[dp->n];
    if (dp->count[dp->n] > dp->most) dp->most = dp->count[dp->n];
    dp->n++;
  }
  dp_buffers(ig, dp);
  dp->host = xmalloc(sizeof(float) * (size_t)(dp->most ? dp->most : 1));
  dp->sum = xmalloc(sizeof(double) * (size_t)(dp->total + dp->buf_total + 2));
  return 0;
}

// One data-parallel step: this rank's gradients, the ranks' mean, the update.
// The random stream of each rank's shard is its own (counter step * size +
// rank). *loss: the global batch's mean loss; *stop: whether any rank was
// asked to stop. A rank waits at most timeout seconds for the others (0:
// without end). 0, or -1 with a message.
static int dp_step(const smelt_ingot *ig, smelt_session *s, DataParallel *dp, uint64_t seed, int64_t step, double timeout,
                   float *loss, bool *stop, char *err, size_t errlen) {
  if (smelt_run(s, "train_grad", seed, (uint64_t)step * (uint64_t)dp->size + (uint64_t)dp->rank) != SMELT_OK)
    return snprintf(err, errlen, "%s", smelt_last_error()), -1;
  float *f = dp->host;
  int64_t at = 0, end = dp->total + dp->buf_total;
  for (int i = 0; i < dp->n; at += dp->count[i++]) {
    smelt_get_output(s, "train_grad", dp->names[i], f, sizeof(float) * (size_t)dp->count[i]);
    for (int64_t j = 0; j < dp->count[i]; j++) dp->sum[at + j] = f[j];
  }
  for (int i = 0; i < dp->nbuf; i++) {
    const IngotTensor *t = dp->buf[i];
    int64_t n = (int64_t)(t->bytes / (uint64_t)dtype_size(t->dtype));
    smelt_get_tensor(s, ingot_str(ig, t->name), dp->host, (size_t)t->bytes);
    dtype_to_doubles(t->dtype, dp->host, dp->sum + at, n);
    at += n;
  }
  float mine = 0;
  smelt_get_output(s, "train_grad", "loss", &mine, sizeof mine);
  dp->sum[end] = mine;
  dp->sum[end + 1] = stop_signal != 0;
  if (dist_sum(dp->sum, end + 2, step, timeout, err, errlen)) return -1;
  for (int64_t j = 0; j < end + 1; j++) dp->sum[j] /= dp->size;
  at = 0;
  for (int i = 0; i < dp->n; at += dp->count[i++]) {
    for (int64_t j = 0; j < dp->count[i]; j++) f[j] = (float)dp->sum[at + j];
    smelt_set_input(s, "train_apply", dp->names[i], f, sizeof(float) * (size_t)dp->count[i]);
  }
  for (int i = 0; i < dp->nbuf; i++) {
    const IngotTensor *t = dp->buf[i];
    int64_t n = (int64_t)(t->bytes / (uint64_t)dtype_size(t->dtype));
    dtype_from_doubles(t->dtype, dp->sum + at, dp->host, n);
    smelt_set_tensor(s, ingot_str(ig, t->name), dp->host, (size_t)t->bytes);
    at += n;
  }
  *loss = (float)dp->sum[end];
  *stop = dp->sum[end + 1] > 0;
  if (smelt_run(s, "train_apply", seed, (uint64_t)step) != SMELT_OK)
    return snprintf(err, errlen, "%s", smelt_last_error()), -1;
  return 0;
}

const char *train_interrupt_note(const TrainOptions *o, const char *when) {
  static char note[4400];
  if (o->resume) snprintf(note, sizeof note, "%s: nothing was trained; %s is as it was", when, o->checkpoint);
  else snprintf(note, sizeof note, "%s: nothing was trained or saved", when);
  return note;
}

// Whether every rank holds rank 0's parameters and optimizer state, bit for
// bit (--dist-check-every): each tensor's SHA-256 on rank 0, broadcast, is
// compared on every rank with its own, and the first tensor that differs on
// each rank is summed over the ranks, so that rank 0 can name them. A
// difference means the ranks have parted (an exchange that did not give
// every rank the same mean, a kernel that does not repeat itself). 0, or -1
// with a message; when the ranks have parted, only rank 0 fails, reports
// and ends every rank (the others' next exchange waits for it), so that no
// other rank's end cuts its message short.
static int dp_same_state(const smelt_ingot *ig, smelt_session *s, const DataParallel *dp, int64_t step, double timeout,
                         char *err, size_t errlen) {
  uint32_t n = 0;
  for (uint32_t t = 0; t < ig->ntensors; t++) n += ig->tensors[t].role == ROLE_PARAM || ig->tensors[t].role == ROLE_STATE;
  uint8_t (*mine)[32] = xcalloc(n ? n : 1, 32), (*first)[32] = xcalloc(n ? n : 1, 32);
  const char **names = xcalloc(n ? n : 1, sizeof *names);
  uint32_t k = 0;
  for (uint32_t t = 0; t < ig->ntensors; t++) {
    const IngotTensor *tt = &ig->tensors[t];
    if (tt->role != ROLE_PARAM && tt->role != ROLE_STATE) continue;
    names[k] = ingot_str(ig, tt->name);
    void *host = xmalloc(tt->bytes ? (size_t)tt->bytes : 1);
    smelt_get_tensor(s, names[k], host, (size_t)tt->bytes);
    Sha256 h;
    sha256_init(&h);
    sha256_update(&h, host, (size_t)tt->bytes);
    sha256_final(&h, mine[k]);
    free(host);
    k++;
  }
  memcpy(first, mine, (size_t)n * 32);
  double *differs = xcalloc((size_t)dp->size, sizeof *differs);   // per rank: 1 + the first tensor that differs, or 0
  int rc = dist_broadcast(first, (size_t)n * 32, timeout, err, errlen);
  for (uint32_t i = 0; rc == 0 && i < n && !differs[dp->rank]; i++)
    if (memcmp(first[i], mine[i], 32)) differs[dp->rank] = i + 1;
  if (rc == 0) rc = dist_sum(differs, dp->size, step, timeout, err, errlen);
  int parted = 0;
  for (int r = 0; rc == 0 && r < dp->size; r++) parted += differs[r] > 0;
  if (rc == 0 && parted && !dp->rank) {
    size_t at = 0;
    err[0] = 0;
    for (int r = 1; r < dp->size && at < errlen; r++)
      if (differs[r] > 0)
        at += (size_t)snprintf(err + at, errlen - at, "%srank %d's '%s'", at ? ", " : "", r, names[(int)differs[r] - 1]);
    if (at < errlen)
      snprintf(err + at, errlen - at, " differ%s from rank 0's: the ranks have parted (each rank's first tensor that "
               "differs named)", parted > 1 ? "" : "s");
    rc = -1;
  }
  free(mine);
  free(first);
  free(names);
  free(differs);
  return rc;
}

int train_run(const TrainOptions *o) {
  char err[4096];
  if (train_may_start(o)) return 1;
  interrupt_note(train_interrupt_note(o, "before training started"));
  smelt_ingot *ig = open_ingot(o->ingot);
  if (!ig) return 1;
  smelt_session *s = NULL;
  Split sp = {0};
  ScalarLog scalars = {0};
  DataParallel dp = {0};
  int rc = 1;
  if (dist_init(&dp.rank, &dp.size, err, sizeof err)) {
    fprintf(stderr, "smelt: error: %s\n", err);
    goto done;
  }
  // one rank speaks: the others' lines would repeat rank 0's
  if (dp.rank && !freopen("/dev/null", "w", stdout)) goto done;
  const char *step_entry = dp.size > 1 ? "train_grad" : "train_step";
  const char *out_entry = dp.size > 1 ? "train_apply" : "train_step";   // lr, grad_norm, step_skipped
  if (dp.size > 1 && dp_open(ig, &dp, err, sizeof err)) {
    fprintf(stderr, "smelt: error: %s\n", err);
    goto done;
  }
  if (!ingot_entry(ig, "train_step")) {
    fprintf(stderr, "smelt: error: '%s' has no train_step entry (does the model have a loss and a train block?)\n", o->ingot);
    goto done;
  }
  if (tools_session_new(ig, o->device, o->threads, &s) != SMELT_OK) {
    fprintf(stderr, "smelt: error: %s\n", smelt_last_error());
    goto done;
  }
  uint64_t seed = (uint64_t)meta_int(ig, "train.seed", 1);
  interrupt_note(train_interrupt_note(o, "while loading the data"));
  if (split_open(ig, "train", step_entry, seed, true, dp.size, dp.rank, &sp, err, sizeof err)) {
    fprintf(stderr, "smelt: error: %s\n", err);
    goto done;
  }
  int64_t per_epoch = batcher_batches_per_epoch(sp.b);
  int64_t epochs = o->epochs ? o->epochs : meta_int(ig, "train.epochs", 0);
  int64_t total = o->steps ? o->steps : epochs ? epochs * per_epoch : meta_int(ig, "train.steps", per_epoch);
  if (o->steps) epochs = 0;
  int64_t start = 0;
  // --resume before the first save starts fresh, so that one command line
  // serves a job's first run and its restarts; only a missing file does
  struct stat ck;
  bool resume = o->resume;
  if (resume && lstat(o->checkpoint, &ck) != 0 && errno == ENOENT) {
    printf("no checkpoint at %s yet: starting from step 0\n", o->checkpoint);
    resume = false;
  }
  if (o->weights && !resume && smelt_load_weights(s, o->weights) != SMELT_OK) {
    fprintf(stderr, "smelt: error: --weights: %s\n", smelt_last_error());
    goto done;
  }
  if (resume) {
    if (smelt_load(s, o->checkpoint) != SMELT_OK) {
      fprintf(stderr, "smelt: error: cannot resume: %s (--force starts over and replaces %s)\n", smelt_last_error(),
              o->checkpoint);
      goto done;
    }
    // the counter is an i64 (smelt_load converted an older checkpoint's f32
    // one exactly, or refused it); a negative one is a damaged checkpoint
    if (smelt_get_tensor(s, "step", &start, sizeof start) != SMELT_OK) {
      fprintf(stderr, "smelt: error: cannot resume: %s (an ingot from an older smelt, with an f32 step counter? "
              "rebuild it)\n", smelt_last_error());
      goto done;
    }
    if (start < 0) {
      fprintf(stderr, "smelt: error: cannot resume: the step counter in %s is %lld, not a count of steps\n",
              o->checkpoint, (long long)start);
      goto done;
    }
    batcher_seek(sp.b, start / per_epoch, start % per_epoch);
    if (session_loaded_params_only(s))   // no step counter: a parameters file (docs/runtime.md)
      printf("fine-tuning from parameters only (%s): optimizer state starts fresh\n", o->checkpoint);
    else
      printf("resumed from %s at step %lld\n", o->checkpoint, (long long)start);
  }
  float total_f = (float)total;
  smelt_set_tensor(s, "total_steps", &total_f, sizeof total_f);   // absent unless the schedule needs it
  int64_t stop = o->stop_after ? start + o->stop_after : total;
  if (stop > total) stop = total;
  const char *held = held_out_split(ig);
  int64_t every = o->checkpoint_every ? o->checkpoint_every : meta_int(ig, "train.checkpoint_every", 0);
  bool tty = isatty(fileno(stdout));
  int64_t global = sp.batch * dp.size;   // the samples of one step, over every rank
  printf("training %s on %s: %lld steps of %lld samples (%lld per epoch)", smelt_ingot_meta(ig, "model"),
         smelt_session_device(s), (long long)total, (long long)global, (long long)per_epoch);
  if (dp.size > 1) printf(", on %d ranks of %lld", dp.size, (long long)sp.batch);
  printf("\n");
  fflush(stdout);
  double t0 = now(), last_log = t0, loss_avg = 0;
  int64_t in_avg = 0, skipped = 0;
  float scale = 0;   // fp16: the loss scale for the next step, read after each step
  bool scaled = smelt_get_tensor(s, "loss_scale", &scale, sizeof scale) == SMELT_OK;
  int64_t saved_at = -1;   // the step count of the last checkpoint saved
  if (o->log_dir && !dp.rank && !scalars_open(o->log_dir, &scalars)) goto done;
  interrupt_note(NULL);   // from here on the loop's own handler speaks
  stop_signals_catch();
  for (int64_t step = start; step < stop; step++) {
    split_next(&sp, s, step_entry);
    float loss;
    bool stop_all = false;   // data parallelism: some rank was asked to stop
    if (dp.size > 1) {
      if (dp_step(ig, s, &dp, seed, step, o->dist_timeout, &loss, &stop_all, err, sizeof err)) {
        fprintf(stderr, "\nsmelt: error: step %lld: %s\n", (long long)step, err);
        goto done;
      }
    } else {
      if (smelt_run(s, "train_step", seed, (uint64_t)step) != SMELT_OK) {
        fprintf(stderr, "\nsmelt: error: step %lld: %s\n", (long long)step, smelt_last_error());
        goto done;
      }
      smelt_get_output(s, "train_step", "loss", &loss, sizeof loss);
    }
    if (!isfinite(loss)) {
      nonfinite_loss(ig, s, &sp, loss, step, step == start, o->check_finite);
      goto done;
    }
    if (o->check_finite && !state_is_finite(ig, s, step, o->checkpoint)) goto done;
    if (dp.size > 1 && o->dist_check_every && (step + 1) % o->dist_check_every == 0 &&
        dp_same_state(ig, s, &dp, step, o->dist_timeout, err, sizeof err)) {
      fprintf(stderr, "\nsmelt: error: after step %lld, %s\n", (long long)step + 1, err);
      goto done;
    }
    loss_avg += loss;
    in_avg++;
    if (scaled) {   // the scale now, and whether this step skipped its update
      float skip = 0;
      smelt_get_tensor(s, "loss_scale", &scale, sizeof scale);
      smelt_get_output(s, out_entry, "step_skipped", &skip, sizeof skip);
      skipped += skip != 0;
    }
    int64_t done_steps = step + 1 - start;
    double t = now(), rate = (double)done_steps * (double)global / (t - t0);
    bool epoch_end = (step + 1) % per_epoch == 0;
    // a line at each epoch's end only where an evaluation follows it
    if ((tty && t - last_log > 0.2) || (!tty && (step + 1) % o->log_every == 0) || (epoch_end && held) ||
        step + 1 == total) {
      Progress p = {step + 1, total, step / per_epoch + 1, loss_avg / (double)in_avg, -1, rate,
                    (double)(total - step - 1) * (double)global / rate, scaled, scale, skipped};
      float lr;
      if (smelt_get_output(s, out_entry, "lr", &lr, sizeof lr) == SMELT_OK) p.lr = lr;
      progress_print(&p, tty);
      last_log = t;
      loss_avg = 0;
      in_avg = 0;
    }
    // rank 0 saves and evaluates while the others go on to the next
    // exchange, where they wait for it: dist_while_busy tells them it is there
    if (every && (step + 1) % every == 0 && o->checkpoint) {
      if (!state_is_finite(ig, s, step, o->checkpoint)) goto done;
      SaveJob save = {s, o->checkpoint, o->keep, step + 1, tty};
      if (!dp.rank && dist_while_busy(save_job, &save)) goto done;
      saved_at = step + 1;
    }
    EvalResult r;
    bool evaluated = (epoch_end || step + 1 == total) && held && !dp.rank;   // rank 0 evaluates
    if (evaluated) {
      if (tty) putchar('\n');
      EvalJob eval = {ig, s, held, seed, &r, err, sizeof err};
      if (dist_while_busy(eval_job, &eval)) {
        fprintf(stderr, "smelt: error: %s\n", err);
        goto done;
      }
      printf("epoch %lld: ", (long long)((step + 1 + per_epoch - 1) / per_epoch));
      print_eval(held, &r);
    }
    if (scalars.csv) scalars_row(&scalars, s, out_entry, step + 1, loss, rate, evaluated ? &r : NULL);
    if (stop_all && !stop_signal) stop_signal = SIGTERM;   // the ranks stop together, at the same step
    if (stop_signal) stop = step + 1;   // the loop ends here, with this step saved below
  }
  if (tty && stop > start) putchar('\n');   // below the progress line
  if (stop_signal) {
    rc = dp.rank ? 128 + stop_signal : train_interrupted(ig, s, o, stop, saved_at);
    goto done;
  }
  if (stop > start && !state_is_finite(ig, s, stop - 1, o->checkpoint)) goto done;
  // every step skipped, the scale down to its floor: no scale makes the
  // gradients fit f16, and the parameters are as they started
  if (scaled && stop > start && skipped == stop - start && scale <= 1) {
    fprintf(stderr, "smelt: error: every one of the %lld steps skipped its update: the gradients overflow f16 "
            "even at loss scale 1, so nothing was trained (try --precision=bf16 or fp32)\n", (long long)skipped);
    goto done;
  }
  // the last step's own save stands: saving again would cost a kept checkpoint
  if (o->checkpoint && !dp.rank && saved_at != stop && !checkpoint_save(s, o->checkpoint, o->keep, stop, false)) goto done;
  char took[32];
  printf("trained %lld steps in %s%s\n", (long long)(stop - start), duration(took, sizeof took, now() - t0),
         stop < total ? " (stopped early; continue with --resume)" : "");
  rc = 0;
done:
  stop_signals_restore();
  if (o->log_dir && !dp.rank && !scalars_close(&scalars, o->log_dir)) rc = 1;
  fflush(stdout);
  if (rc == 1) dist_abort(1);   // a failed rank would leave the others waiting in the next step's sum
  dist_finalize();
  dp_free(&dp);
  split_free(&sp);
  smelt_session_free(s);
  smelt_ingot_close(ig);
  return rc;
}

int eval_run(const TrainOptions *o) {
  char err[4096];
  smelt_ingot *ig = open_ingot(o->ingot);
  if (!ig) return 1;
  smelt_session *s = NULL;
  int rc = 1;
  if (tools_session_new(ig, o->device, o->threads, &s) != SMELT_OK) {
    fprintf(stderr, "smelt: error: %s\n", smelt_last_error());
  } else if (o->checkpoint && smelt_load(s, o->checkpoint) != SMELT_OK) {
    fprintf(stderr, "smelt: error: %s\n", smelt_last_error());
  } else if (o->weights && smelt_load_weights(s, o->weights) != SMELT_OK) {
    fprintf(stderr, "smelt: error: --weights: %s\n", smelt_last_error());
  } else {
    const char *split = o->split ? o->split : held_out_split(ig);
    EvalResult r;
    if (!split) fprintf(stderr, "smelt: error: the train block has no test or val data\n");
    else if (evaluate(ig, s, split, (uint64_t)meta_int(ig, "train.seed", 1), &r, err, sizeof err))
      fprintf(stderr, "smelt: error: %s\n", err);
    else print_eval(split, &r), rc = 0;
  }
  smelt_session_free(s);
  smelt_ingot_close(ig);
  return rc;
}

// The tensors of a tensor file, each in its own dtype (run's inputs).
typedef struct {
  char *name;
  uint32_t dtype;
  Shape shape;
  void *bytes;
} RawTensor;

static int raw_tensors_read(const char *path, RawTensor **out, int *count, char *err, size_t errlen) {
  TensorReader *r = tensor_reader_open(path, err, errlen);
  if (!r) return -1;
  int n = (int)tensor_reader_count(r);
  RawTensor *t = xcalloc((size_t)n + 1, sizeof *t);
  int k = 0;
  bool ok = true;
  for (; k < n && ok; k++) {
    const char *name;
    ok = tensor_reader_next(r, &name, &t[k].dtype, &t[k].shape);
    if (!ok) break;
    t[k].name = xstrdup(name);
    uint64_t bytes = (uint64_t)dtype_size(t[k].dtype) * (uint64_t)shape_numel(&t[k].shape);
    t[k].bytes = xmalloc(bytes ? bytes : 1);
    ok = tensor_reader_bytes(r, t[k].bytes, bytes);
  }
  tensor_reader_close(r);
  *out = t;
  *count = k;
  if (!ok) snprintf(err, errlen, "'%s' is truncated or corrupt", path);
  return ok ? 0 : -1;
}

static void raw_tensors_free(RawTensor *t, int n) {
  for (int i = 0; i < n; i++) {
    free(t[i].name);
    free(t[i].bytes);
  }
  free(t);
}

// An input's bytes in the slot's dtype: as they are when the file has that
// dtype, else converted when every value converts exactly (an f32 file may
// feed an i32 input its whole numbers); NULL with a message otherwise.
static void *input_bytes(const RawTensor *v, uint32_t dtype, size_t bytes, char *err, size_t errlen) {
  void *dst = xmalloc(bytes ? bytes : 1);
  double value;
  int64_t bad = dtype_convert_exact(v->dtype, v->bytes, dtype, dst, shape_numel(&v->shape), &value);
  if (bad >= 0) {
    snprintf(err, errlen, "input '%s' is %s; its value %.17g at %lld is not one of the model's %s", v->name,
             dtype_name(v->dtype), value, (long long)bad, dtype_name(dtype));
    free(dst);
    dst = NULL;
  }
  return dst;
}

// The given input of the entry's input tensor t (named "entry/NAME"), or NULL.
static const RawTensor *given_input(const smelt_ingot *ig, const IngotTensor *t, size_t plen, const RawTensor *in,
                                    int nin) {
  for (int i = 0; i < nin; i++)
    if (!strcmp(in[i].name, ingot_str(ig, t->name) + plen)) return &in[i];
  return NULL;
}

// How the inputs fit binding b's entry e: 1 when every one has its shape; 2
// when every one has it but for fewer rows (*rows of them, axis 0, the same
// in all) and every output is one row per input row, so the run pads the
// rest with zeros and keeps the first *rows rows; else 0.
static int binding_fits(const smelt_ingot *b, const IngotEntry *e, size_t plen, const RawTensor *in, int nin,
                        int64_t *rows) {
  bool exact = true, padded = true;
  int64_t n = -1, full = -1;
  for (uint32_t k = 0; k < e->nslots; k++) {
    const IngotTensor *t = &b->tensors[b->slots[e->first_slot + k]];
    if (t->role != ROLE_INPUT && t->role != ROLE_OUTPUT) continue;
    bool rowwise = t->ndim > 0 && (full < 0 || t->dims[0] == full);
    if (rowwise) full = t->dims[0];
    padded = padded && rowwise;
    if (t->role == ROLE_OUTPUT) continue;
    const RawTensor *v = given_input(b, t, plen, in, nin);
    if (!v || v->shape.ndim != (int)t->ndim) return 0;
    for (uint32_t d = 0; d < t->ndim; d++) {
      exact = exact && v->shape.d[d] == t->dims[d];
      padded = padded && (d ? v->shape.d[d] == t->dims[d] : v->shape.d[0] <= t->dims[0] && (n < 0 || v->shape.d[0] == n));
    }
    if (t->ndim) n = v->shape.d[0];
  }
  *rows = n;
  return exact ? 1 : padded && n > 0 ? 2 : 0;
}

// The binding of ig that runs the inputs: the one whose entry takes their
// shapes, else the smallest whose rows they fit (padded); ig itself when it
// has one binding. NULL after a message when none does.
static const smelt_ingot *run_binding(const smelt_ingot *ig, const char *path, const char *entry,
                                      const RawTensor *in, int nin, int64_t *pad_rows) {
  size_t plen = strlen(entry) + 1, n = smelt_ingot_binding_count(ig);
  *pad_rows = -1;
  if (n == 1) return ig;
  const smelt_ingot *fit = NULL;
  for (size_t i = 0; i < n; i++) {
    const char *var;
    int64_t value, rows;
    const smelt_ingot *b = smelt_ingot_binding(ig, i, &var, &value);
    const IngotEntry *e = ingot_entry(b, entry);
    int how = e ? binding_fits(b, e, plen, in, nin, &rows) : 0;
    if (how == 1) return b;
    if (how == 2 && !fit) {
      fit = b;
      *pad_rows = rows;
      fprintf(stderr, "smelt: note: the %lld rows given run in the binding %s=%lld, padded with zeros; the "
              "outputs keep the first %lld rows\n", (long long)rows, var, (long long)value, (long long)rows);
    }
  }
  if (!fit) fprintf(stderr, "smelt: error: %s: no binding of %s takes these inputs, nor their rows padded; smelt "
                    "inspect lists the bindings\n", path, entry);
  return fit;
}

int run_main(const TrainOptions *o, const char *inputs, const char *outputs) {
  const char *entry = o->split ? o->split : "infer";
  smelt_ingot *file = open_ingot(o->ingot);
  if (!file) return 1;
  const smelt_ingot *ig = file;
  smelt_session *s = NULL;
  RawTensor *in = NULL;
  int nin = 0, nout = 0, rc = 1;
  int64_t pad_rows = -1;   // padded: the rows given
  char err[1024];
  // the outputs, each in its own dtype
  const char **onames = NULL;
  uint32_t *otypes = NULL;
  Shape *oshapes = NULL;
  void **odata = NULL;
  const IngotEntry *e = ingot_entry(ig, entry);
  if (!e) {
    fprintf(stderr, "smelt: error: '%s' has no entry point '%s'\n", o->ingot, entry);
    goto done;
  }
  if (raw_tensors_read(inputs, &in, &nin, err, sizeof err)) {
    fprintf(stderr, "smelt: error: %s\n", err);
    goto done;
  }
  if (!(ig = run_binding(file, o->ingot, entry, in, nin, &pad_rows))) goto done;
  e = ingot_entry(ig, entry);
  if (tools_session_new(ig, o->device, o->threads, &s) != SMELT_OK ||
      (o->checkpoint && smelt_load(s, o->checkpoint) != SMELT_OK) ||
      (o->weights && smelt_load_weights(s, o->weights) != SMELT_OK)) {
    fprintf(stderr, "smelt: error: %s\n", smelt_last_error());
    goto done;
  }
  size_t plen = strlen(entry) + 1;
  onames = xcalloc(e->nslots + 1, sizeof *onames);
  otypes = xcalloc(e->nslots + 1, sizeof *otypes);
  oshapes = xcalloc(e->nslots + 1, sizeof *oshapes);
  odata = xcalloc(e->nslots + 1, sizeof *odata);
  for (uint32_t k = 0; k < e->nslots; k++) {   // every input must be given, with its shape
    const IngotTensor *t = &ig->tensors[ig->slots[e->first_slot + k]];
    if (t->role != ROLE_INPUT && t->role != ROLE_OUTPUT) continue;
    const char *name = ingot_str(ig, t->name) + plen;
    Shape sh = {.ndim = (int)t->ndim};
    for (uint32_t d = 0; d < t->ndim; d++) sh.d[d] = t->dims[d];
    if (pad_rows >= 0) sh.d[0] = pad_rows;   // what is given, and what is kept
    if (t->role == ROLE_OUTPUT) {
      onames[nout] = name;
      otypes[nout] = t->dtype;
      oshapes[nout++] = sh;
      continue;
    }
    const RawTensor *v = NULL;
    for (int i = 0; i < nin && !v; i++)
      if (!strcmp(in[i].name, name)) v = &in[i];
    if (!v || !shape_eq(&v->shape, &sh)) {
      char want[96];
      fprintf(stderr, "smelt: error: %s needs input '%s' as %s\n", inputs, name,
              type_str(want, sizeof want, (DType)t->dtype, &sh));
      goto done;
    }
    size_t given = (size_t)shape_numel(&sh) * (size_t)dtype_size(t->dtype);
    void *bytes = input_bytes(v, t->dtype, given, err, sizeof err);
    if (!bytes) {
      fprintf(stderr, "smelt: error: %s: %s\n", inputs, err);
      goto done;
    }
    if (given < t->bytes) {   // the first rows, then zeros
      void *padded = xcalloc(1, t->bytes);
      memcpy(padded, bytes, given);
      free(bytes);
      bytes = padded;
    }
    smelt_set_input(s, entry, name, bytes, t->bytes);
    free(bytes);
  }
  if (smelt_run(s, entry, (uint64_t)meta_int(ig, "train.seed", 1), 0) != SMELT_OK) {
    fprintf(stderr, "smelt: error: %s\n", smelt_last_error());
    goto done;
  }
  for (int i = 0; i < nout; i++) {
    char full[512];
    snprintf(full, sizeof full, "%s/%s", entry, onames[i]);
    const IngotTensor *t = &ig->tensors[ingot_tensor(ig, full)];
    int64_t n = shape_numel(&oshapes[i]);
    odata[i] = xmalloc(t->bytes ? t->bytes : 1);
    smelt_get_output(s, entry, onames[i], odata[i], t->bytes);
    if (!outputs) {
      char ty[96];
      double *v = xmalloc(sizeof *v * (size_t)(n ? n : 1));
      dtype_to_doubles(t->dtype, odata[i], v, n);
      printf("%s: %s\n", onames[i], type_str(ty, sizeof ty, (DType)t->dtype, &oshapes[i]));
      int64_t cols = oshapes[i].ndim ? oshapes[i].d[oshapes[i].ndim - 1] : 1;
      for (int64_t j = 0; j < n && j < 64; j++)
        printf("%s%.6g%s", j % cols ? " " : "  ", v[j], (j + 1) % cols == 0 || j + 1 == n ? "\n" : "");
      if (n > 64) printf("  ... (%lld values; --outputs=FILE writes them all)\n", (long long)n);
      free(v);
    }
  }
  if (outputs) {   // each output in its own dtype
    TensorWriter *w = tensor_writer_open(outputs, nout, onames, otypes, oshapes, err, sizeof err);
    bool ok = w != NULL;
    for (int i = 0; ok && i < nout; i++)
      ok = tensor_writer_bytes(w, odata[i], (uint64_t)dtype_size(otypes[i]) * (uint64_t)shape_numel(&oshapes[i]));
    if (!w || tensor_writer_close(w, ok, err, sizeof err)) {
      fprintf(stderr, "smelt: error: %s\n", err);
      goto done;
    }
  }
  rc = 0;
done:
  for (int i = 0; i < nout; i++) free(odata[i]);
  free(onames);
  free(otypes);
  free(oshapes);
  free(odata);
  raw_tensors_free(in, nin);
  smelt_session_free(s);
  smelt_ingot_close(file);
  return rc;
}
