// sample.c: `smelt sample`: text from a trained character-level model.
//
// The model's infer entry takes one integer input of shape [1, T] (byte ids)
// and gives logits over the byte vocabulary, either at every position
// ([1, T, V], a GPT: the context sits at positions 0..n-1 and the next byte
// comes from position n-1; later positions cannot see it) or after the last
// position only ([1, V], an unrolled RNN: the context is right-aligned, with
// newlines before it). Each step runs the entry on the last T bytes, divides
// the logits by the temperature, keeps the top k, and draws the next byte
// from their softmax with a generator seeded by --seed, so a seed gives the
// same text on the same device.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools.h"
#include "util.h"
#include "runtime.h"

// xorshift64*: uniform in [0, 1).
static double next_uniform(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return (double)((*s * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

// The next byte from logits[0..v) at temperature (0: the most likely) among the top k (0: all).
static int draw(const float *logits, int v, double temperature, int k, uint64_t *rng, double *p) {
  int best = 0;
  for (int i = 1; i < v; i++)
    if (logits[i] > logits[best]) best = i;
  if (temperature <= 0) return best;
  // the k-th largest logit is the cut: ties with it stay in
  double cut = -INFINITY;
  if (k > 0 && k < v) {
    for (int i = 0; i < v; i++) p[i] = logits[i];
    for (int j = 0; j < k; j++) {   // k passes of selection: v is a byte vocabulary
      int m = -1;
      for (int i = 0; i < v; i++)
        if (p[i] != -INFINITY && (m < 0 || p[i] > p[m])) m = i;
      cut = p[m];
      p[m] = -INFINITY;
    }
  }
  double sum = 0, top = logits[best] / temperature;
  for (int i = 0; i < v; i++) {
    p[i] = logits[i] >= cut ? exp(logits[i] / temperature - top) : 0;
    sum += p[i];
  }
  double u = next_uniform(rng) * sum;
  for (int i = 0; i < v; i++) {
    u -= p[i];
    if (u < 0 && p[i] > 0) return i;
  }
  return best;
}

int sample_run(const SampleOptions *o) {
  smelt_ingot *ig = NULL;
  smelt_session *s = NULL;
  int rc = 1;
  int32_t *window = NULL;
  float *logits = NULL;
  double *p = NULL;
  unsigned char *text = NULL;
  if (tools_ingot_open(o->ingot, &ig) != SMELT_OK || tools_session_new(ig, o->device, o->threads, &s) != SMELT_OK) {
    fprintf(stderr, "smelt: error: %s\n", smelt_last_error());
    goto out;
  }
  if (o->checkpoint && smelt_load(s, o->checkpoint) != SMELT_OK) {
    fprintf(stderr, "smelt: error: %s\n", smelt_last_error());
    goto out;
  }
  const IngotEntry *e = ingot_entry(ig, "infer");
  const IngotTensor *in = NULL, *out = NULL;
  for (uint32_t k = 0; e && k < e->nslots; k++) {
    const IngotTensor *t = &ig->tensors[ig->slots[e->first_slot + k]];
    if (t->role == ROLE_INPUT && !in) in = t;
    if (t->role == ROLE_OUTPUT && t->dtype == 0 && (!out || strstr(ingot_str(ig, t->name), "/logits"))) out = t;
  }
  if (!in || !out || in->dtype != 3 || in->ndim != 2 || in->dims[0] != 1 || (out->ndim != 3 && out->ndim != 2) ||
      out->dims[0] != 1 || (out->ndim == 3 && out->dims[1] != in->dims[1])) {
    fprintf(stderr, "smelt: error: %s cannot be sampled: its infer entry needs one i32 input [1, T] and f32 logits "
            "[1, T, V] or [1, V] (build the model with -D B=1)\n", o->ingot);
    goto out;
  }
  int64_t T = in->dims[1], V = out->dims[out->ndim - 1];
  if (V > 256) {
    fprintf(stderr, "smelt: error: %s has a vocabulary of %lld; smelt sample writes bytes (at most 256)\n", o->ingot,
            (long long)V);
    goto out;
  }
  bool every_position = out->ndim == 3;
  const char *in_name = strchr(ingot_str(ig, in->name), '/') + 1, *out_name = strchr(ingot_str(ig, out->name), '/') + 1;
  size_t plen = strlen(o->prompt);
  size_t cap = plen + (size_t)o->length + 1;
  text = malloc(cap);
  memcpy(text, o->prompt, plen);
  size_t n = plen;
  window = malloc(sizeof(int32_t) * (size_t)T);
  logits = malloc(out->bytes);
  p = malloc(sizeof(double) * (size_t)V);
  uint64_t rng = o->seed * 0x9E3779B97F4A7C15ull + 1;
  fwrite(text, 1, n, stdout);
  for (int64_t step = 0; step < o->length; step++) {
    // the last T bytes; a GPT's start at position 0, an RNN's end at T - 1
    size_t have = n < (size_t)T ? n : (size_t)T;
    for (int64_t i = 0; i < T; i++) window[i] = '\n';
    for (size_t i = 0; i < have; i++) window[(every_position ? 0 : (size_t)T - have) + i] = text[n - have + i];
    if (smelt_set_input(s, "infer", in_name, window, sizeof(int32_t) * (size_t)T) != SMELT_OK ||
        smelt_run(s, "infer", o->seed, (uint64_t)step) != SMELT_OK ||
        smelt_get_output(s, "infer", out_name, logits, out->bytes) != SMELT_OK) {
      fprintf(stderr, "\nsmelt: error: %s\n", smelt_last_error());
      goto out;
    }
    const float *row = every_position ? logits + (have ? have - 1 : 0) * (size_t)V : logits;
    int c = draw(row, (int)V, o->temperature, o->top_k, &rng, p);
    text[n++] = (unsigned char)c;
    putchar(c);
    fflush(stdout);
  }
  putchar('\n');
  rc = 0;
out:
  free(window);
  free(logits);
  free(p);
  free(text);
  smelt_session_free(s);
  if (ig) smelt_ingot_close(ig);
  return rc;
}
