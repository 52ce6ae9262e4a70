// sha256.c: SHA-256 as FIPS 180-4 defines it, one block of 64 bytes at a
// time; tests/test_runtime.c checks it against the standard's test vectors.
// On an x86-64 with the SHA extensions the blocks go through them (about
// five times faster: an ingot's SHA-256 is over all its weights), else
// through the portable rounds below.
#include "sha256.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_SHA_NI 1
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror(uint32_t x, int n) { return x >> n | x << (32 - n); }

// One block into the state (FIPS 180-4, 6.2.2).
static void compress(uint32_t h[8], const uint8_t *p) {
  uint32_t w[64];
  for (int t = 0; t < 16; t++)
    w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 | (uint32_t)p[4 * t + 2] << 8 | p[4 * t + 3];
  for (int t = 16; t < 64; t++) {
    uint32_t s0 = ror(w[t - 15], 7) ^ ror(w[t - 15], 18) ^ w[t - 15] >> 3;
    uint32_t s1 = ror(w[t - 2], 17) ^ ror(w[t - 2], 19) ^ w[t - 2] >> 10;
    w[t] = w[t - 16] + s0 + w[t - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
  for (int t = 0; t < 64; t++) {
    uint32_t t1 = k + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
    uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    k = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

void sha256_init(Sha256 *s) {
  static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, h0, sizeof h0);
  s->bytes = 0;
}

#ifdef HAVE_SHA_NI
// The same rounds on the SHA extensions: the state as ABEF and CDGH, four
// rounds per pair of sha256rnds2, the schedule by sha256msg1 and msg2.
__attribute__((target("sha,sse4.1"))) static void compress_ni(uint32_t h[8], const uint8_t *p) {
  const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bll, 0x0405060700010203ll);
  __m128i dcba = _mm_loadu_si128((const __m128i *)&h[0]);   // a b c d, lowest lane first
  __m128i hgfe = _mm_loadu_si128((const __m128i *)&h[4]);
  __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
  __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
  __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
  __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
  __m128i abef0 = abef, cdgh0 = cdgh, w[4];
  for (int i = 0; i < 16; i++) {
    __m128i m;
    if (i < 4) {
      m = w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
    } else {   // w[i % 4] held words 4(i - 4) .. 4(i - 4) + 3
      __m128i a = w[i % 4], b = w[(i + 1) % 4], c = w[(i + 2) % 4], d = w[(i + 3) % 4];
      m = w[i % 4] = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(a, b), _mm_alignr_epi8(d, c, 4)), d);
    }
    __m128i k = _mm_add_epi32(m, _mm_loadu_si128((const __m128i *)&K[4 * i]));
    cdgh = _mm_sha256rnds2_epu32(cdgh, abef, k);
    abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(k, 0x0E));
  }
  abef = _mm_add_epi32(abef, abef0);
  cdgh = _mm_add_epi32(cdgh, cdgh0);
  __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
  __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
  _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(feba, dchg, 0xF0));
  _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(dchg, feba, 8));
}

// Chosen when the library is loaded, before any thread can ask.
static void (*block_fn)(uint32_t *, const uint8_t *) = compress;
__attribute__((constructor)) static void choose_blocks(void) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("sha") && __builtin_cpu_supports("sse4.1")) block_fn = compress_ni;
}
#define COMPRESS block_fn
#else
#define COMPRESS compress
#endif

void sha256_update(Sha256 *s, const void *data, size_t n) {
  const uint8_t *p = data;
  size_t have = (size_t)(s->bytes % 64);
  s->bytes += n;
  if (have) {   // fill the partial block first
    size_t take = 64 - have < n ? 64 - have : n;
    memcpy(s->block + have, p, take);
    p += take, n -= take, have += take;
    if (have < 64) return;
    COMPRESS(s->h, s->block);
  }
  for (; n >= 64; p += 64, n -= 64) COMPRESS(s->h, p);
  if (n) memcpy(s->block, p, n);
}

void sha256_final(Sha256 *s, uint8_t digest[32]) {
  uint64_t bits = s->bytes * 8;
  size_t have = (size_t)(s->bytes % 64);
  // 0x80, zeros up to 56 mod 64, then the length in bits, big-endian
  s->block[have++] = 0x80;
  if (have > 56) {
    memset(s->block + have, 0, 64 - have);
    COMPRESS(s->h, s->block);
    have = 0;
  }
  memset(s->block + have, 0, 56 - have);
  for (int i = 0; i < 8; i++) s->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
  COMPRESS(s->h, s->block);
  for (int i = 0; i < 8; i++)
    for (int j = 0; j < 4; j++) digest[4 * i + j] = (uint8_t)(s->h[i] >> (24 - 8 * j));
}

void sha256_hex(const void *data, size_t n, char hex[65]) {
  Sha256 s;
  uint8_t d[32];
  sha256_init(&s);
  sha256_update(&s, data, n);
  sha256_final(&s, d);
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = "0123456789abcdef"[d[i] >> 4];
    hex[2 * i + 1] = "0123456789abcdef"[d[i] & 15];
  }
  hex[64] = '\0';
}

bool sha256_hex_valid(const char *text) {
  if (!text) return false;
  for (int i = 0; i < 64; i++)
    if (!((text[i] >= '0' && text[i] <= '9') || ((text[i] | 0x20) >= 'a' && (text[i] | 0x20) <= 'f'))) return false;
  return text[64] == '\0';
}
