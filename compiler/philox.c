// philox.c: the counter-based random numbers behind RANDOM and parameter
// initializers.
//
// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC 2011) maps a 128-bit counter and a 64-bit key to 128 random bits with no
// state in between, so element i of a tensor can be drawn by any thread of any
// backend, in any order, and come out the same. docs/random.md specifies how
// (seed, key, step, i) become counter and key words, so that every backend can
// reproduce these bits exactly.
#include "compiler.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

// The standard Random123 constants: round multipliers and the Weyl sequence
// the key advances by between rounds (2^32 / golden ratio, 2^32 * (sqrt(3) - 1)).
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

// Odd multiplier (2^64 / golden ratio) that spreads a stream key over all 64
// key bits before the seed is mixed in.
#define KEY_MIX 0x9E3779B97F4A7C15ull

// 2^-24: a 24-bit integer times this is an exact float in [0, 1).
#define TWO_M24 (1.0 / 16777216.0)

void philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; round++) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
    uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
    uint32_t n1 = (uint32_t)p1;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    uint32_t n3 = (uint32_t)p0;
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

// The 128 bits of element i of the stream (seed, key, step):
//   key     = { lo32(seed ^ key * KEY_MIX), hi32(seed ^ key * KEY_MIX) }
//   counter = { lo32(i), hi32(i), lo32(step), hi32(step) }
static void philox_block(uint64_t seed, uint64_t key, uint64_t step, uint64_t i,
                         uint32_t out[4]) {
  uint64_t k = seed ^ (key * KEY_MIX);
  uint32_t kw[2] = {(uint32_t)k, (uint32_t)(k >> 32)};
  uint32_t ctr[4] = {(uint32_t)i, (uint32_t)(i >> 32), (uint32_t)step, (uint32_t)(step >> 32)};
  philox4x32(ctr, kw, out);
}

double philox_uniform(uint64_t seed, uint64_t key, uint64_t step, uint64_t i) {
  uint32_t r[4];
  philox_block(seed, key, step, i, r);
  return (double)(r[0] >> 8) * TWO_M24;
}

// Box-Muller on the block's first two words: u1 in (0, 1] so that log(u1) is
// finite, u2 in [0, 1). Computed in double; the caller rounds to its dtype.
double philox_normal(uint64_t seed, uint64_t key, uint64_t step, uint64_t i) {
  uint32_t r[4];
  philox_block(seed, key, step, i, r);
  double u1 = (double)((r[0] >> 8) + 1) * TWO_M24;
  double u2 = (double)(r[1] >> 8) * TWO_M24;
  return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

uint64_t name_key(const char *name) {
  uint64_t h = 0xcbf29ce484222325ull;   // FNV-1a 64-bit offset basis
  for (const unsigned char *p = (const unsigned char *)(name ? name : ""); *p; p++) {
    h ^= *p;
    h *= 0x100000001b3ull;              // FNV 64-bit prime
  }
  return h;
}

// Fan-in and fan-out of a weight of shape s, as Glorot and He define them:
// [n]: n and n; [I, O] (smelt's linear weight is [in, out]): I and O;
// [O, C/groups, KH, KW, ...] (a convolution): C/groups and O, each times the
// receptive field KH * KW * ...; a scalar: 1 and 1.
static void shape_fans(const Shape *s, double *fan_in, double *fan_out) {
  if (s->ndim == 0) {
    *fan_in = *fan_out = 1;
  } else if (s->ndim == 1) {
    *fan_in = *fan_out = (double)s->d[0];
  } else if (s->ndim == 2) {
    *fan_in = (double)s->d[0];
    *fan_out = (double)s->d[1];
  } else {
    double field = 1;
    for (int d = 2; d < s->ndim; d++) field *= (double)s->d[d];
    *fan_in = (double)s->d[1] * field;
    *fan_out = (double)s->d[0] * field;
  }
}

// A tensor's values in chunks of FILL_CHUNK elements, taken by threads in
// turn: each element's value depends on its index only, so the values are
// the same for any number of threads.
enum { FILL_CHUNK = 1 << 18 };
enum { FIXED, UNIFORM, NORMAL };   // every initializer is one of these

typedef struct {
  DType dtype;
  int kind;                 // FIXED, UNIFORM or NORMAL
  double lo, hi, mean, std;
  uint64_t seed, key;
  double *out;
  int64_t count;
  atomic_llong next;        // the next chunk's first element
} Fill;

static void *fill_chunks(void *arg) {
  Fill *f = arg;
  for (int64_t from; (from = atomic_fetch_add(&f->next, FILL_CHUNK)) < f->count;) {
    int64_t to = from + FILL_CHUNK < f->count ? from + FILL_CHUNK : f->count;
    for (int64_t i = from; i < to; i++) {
      double v = f->lo;
      if (f->kind == UNIFORM) v = f->lo + (f->hi - f->lo) * philox_uniform(f->seed, f->key, 0, (uint64_t)i);
      else if (f->kind == NORMAL) v = f->mean + f->std * philox_normal(f->seed, f->key, 0, (uint64_t)i);
      f->out[i] = dtype_round(f->dtype, v);
    }
  }
  return NULL;
}

// Element i draws from the stream (seed, name_key(name), step 0, i), so a
// parameter's initial value depends only on the seed, its name and its shape,
// not on which other parameters the model declares.
void init_fill(const Node *n, uint64_t seed, double *out) {
  int64_t count = shape_numel(&n->shape);
  if (count == 0) return;   // and so every fan below is at least 1
  uint64_t key = name_key(n->name);
  double a = n->p.param.a, b = n->p.param.b;
  double fan_in, fan_out;
  shape_fans(&n->shape, &fan_in, &fan_out);

  // Every initializer is a constant, lo + (hi - lo) * uniform or
  // mean + std * normal (docs/random.md); constants draw nothing.
  int kind = UNIFORM;
  double lo = 0, hi = 0, mean = 0, std = 0;
  switch (n->p.param.init) {
  case INIT_ZEROS: kind = FIXED, lo = 0; break;
  case INIT_ONES: kind = FIXED, lo = 1; break;
  case INIT_FULL: kind = FIXED, lo = a; break;
  case INIT_UNIFORM: lo = a, hi = b; break;
  case INIT_NORMAL: kind = NORMAL, mean = a, std = b; break;
  case INIT_XAVIER_UNIFORM: hi = a * sqrt(6.0 / (fan_in + fan_out)), lo = -hi; break;
  case INIT_XAVIER_NORMAL: kind = NORMAL, std = a * sqrt(2.0 / (fan_in + fan_out)); break;
  case INIT_KAIMING_UNIFORM: hi = a * sqrt(3.0 / fan_in), lo = -hi; break;
  case INIT_KAIMING_NORMAL: kind = NORMAL, std = a / sqrt(fan_in); break;
  }

  Fill f = {n->dtype, kind, lo, hi, mean, std, seed, key, out, count, 0};
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  int threads = count < FILL_CHUNK ? 1 : cores > 1 ? (int)(cores < 64 ? cores : 64) : 1;
  pthread_t tid[64];
  int started = 0;
  for (; started < threads - 1; started++)
    if (pthread_create(&tid[started], NULL, fill_chunks, &f)) break;   // fewer threads fill it all the same
  fill_chunks(&f);
  for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
}
