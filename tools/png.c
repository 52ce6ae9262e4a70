// png.c: an RGB image as a PNG file (ISO/IEC 15948): the signature, IHDR,
// one IDAT holding a zlib stream (RFC 1950) of deflate (RFC 1951) with the
// fixed Huffman codes, and IEND. Matches are found through a hash of three
// bytes over a 32 KB window: a plot is mostly runs of one colour and rows
// like the row above, which such matches take at once.
#include <stdlib.h>
#include <string.h>

#include "canvas.h"
#include "ingot.h"   // smelt_crc32_update
#include "util.h"

typedef struct {
  uint8_t *b;
  size_t n, cap;
  uint64_t bits;   // pending bits, the first written in bit 0
  int nbits;
} Out;

static void out_byte(Out *o, uint8_t v) {
  if (o->n == o->cap) o->b = xrealloc(o->b, o->cap = o->cap ? 2 * o->cap : 1 << 16);
  o->b[o->n++] = v;
}

static void put_bits(Out *o, uint32_t v, int n) {
  o->bits |= (uint64_t)v << o->nbits;
  for (o->nbits += n; o->nbits >= 8; o->nbits -= 8, o->bits >>= 8) out_byte(o, (uint8_t)o->bits);
}

// A Huffman code goes out from its most significant bit.
static void put_code(Out *o, uint32_t code, int len) {
  uint32_t r = 0;
  for (int i = 0; i < len; i++) r |= ((code >> i) & 1) << (len - 1 - i);
  put_bits(o, r, len);
}

static void put_literal(Out *o, int v) {
  if (v < 144) put_code(o, 0x30 + v, 8);
  else if (v < 256) put_code(o, 0x190 + v - 144, 9);
  else if (v < 280) put_code(o, v - 256, 7);
  else put_code(o, 0xC0 + v - 280, 8);
}

static const uint16_t len_base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                      31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
                                       193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static void put_match(Out *o, int len, int dist) {
  int i = 28;
  while (len_base[i] > len) i--;
  put_literal(o, 257 + i);
  put_bits(o, len - len_base[i], len_extra[i]);
  int j = 29;
  while (dist_base[j] > dist) j--;
  put_code(o, j, 5);
  put_bits(o, dist - dist_base[j], dist_extra[j]);
}

enum { WINDOW = 32768, MAX_MATCH = 258, HASH_BITS = 15, MAX_CHAIN = 48 };

static uint32_t hash3(const uint8_t *p) {
  return ((uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]) * 2654435761u >> (32 - HASH_BITS);
}

// The zlib stream of n bytes of data.
static void zlib_stream(Out *o, const uint8_t *data, size_t n) {
  out_byte(o, 0x78), out_byte(o, 0x01);   // deflate, 32 KB window, no dictionary
  put_bits(o, 1, 1), put_bits(o, 1, 2);   // the final block, fixed codes
  int32_t *head = xmalloc(sizeof(int32_t) << HASH_BITS), *prev = xmalloc(sizeof(int32_t) * WINDOW);
  for (size_t i = 0; i < (size_t)1 << HASH_BITS; i++) head[i] = -1;
  for (size_t i = 0; i < n;) {
    int best = 0, best_dist = 0;
    if (i + 3 <= n) {
      int limit = n - i < MAX_MATCH ? (int)(n - i) : MAX_MATCH, chain = MAX_CHAIN;
      for (int32_t c = head[hash3(data + i)]; c >= 0 && i - (size_t)c <= WINDOW && chain-- > 0; c = prev[c % WINDOW]) {
        int len = 0;
        while (len < limit && data[c + len] == data[i + len]) len++;
        if (len > best) best = len, best_dist = (int)(i - (size_t)c);
        if (len == limit) break;
      }
    }
    int step = best >= 3 ? best : 1;
    if (best >= 3) put_match(o, best, best_dist);
    else put_literal(o, data[i]);
    for (int k = 0; k < step; k++, i++)   // every position passed joins its chain
      if (i + 3 <= n) {
        uint32_t h = hash3(data + i);
        prev[i % WINDOW] = head[h];
        head[h] = (int32_t)i;
      }
  }
  put_literal(o, 256);
  if (o->nbits) put_bits(o, 0, 8 - o->nbits);
  free(head);
  free(prev);
  uint32_t a = 1, b = 0;   // Adler-32, big-endian after the data
  for (size_t i = 0; i < n; i++) a = (a + data[i]) % 65521, b = (b + a) % 65521;
  uint32_t adler = b << 16 | a;
  for (int s = 24; s >= 0; s -= 8) out_byte(o, (uint8_t)(adler >> s));
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void chunk(FILE *f, const char *type, const uint8_t *data, size_t n) {
  uint8_t word[4];
  put_be32(word, (uint32_t)n);
  fwrite(word, 1, 4, f);
  fwrite(type, 1, 4, f);
  if (n) fwrite(data, 1, n, f);
  put_be32(word, smelt_crc32_update(smelt_crc32(type, 4), data, n));
  fwrite(word, 1, 4, f);
}

int png_write(FILE *f, const uint8_t *rgb, int w, int h) {
  static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  fwrite(signature, 1, 8, f);
  uint8_t ihdr[13];
  put_be32(ihdr, (uint32_t)w);
  put_be32(ihdr + 4, (uint32_t)h);
  ihdr[8] = 8, ihdr[9] = 2, ihdr[10] = ihdr[11] = ihdr[12] = 0;   // 8-bit RGB, deflate, no filter, not interlaced
  chunk(f, "IHDR", ihdr, sizeof ihdr);
  size_t stride = (size_t)w * 3 + 1, n = stride * (size_t)h;
  uint8_t *rows = xmalloc(n);
  for (int y = 0; y < h; y++) {   // each row: filter type 0, then its pixels
    rows[y * stride] = 0;
    memcpy(rows + y * stride + 1, rgb + (size_t)y * w * 3, (size_t)w * 3);
  }
  Out o = {0};
  zlib_stream(&o, rows, n);
  free(rows);
  chunk(f, "IDAT", o.b, o.n);
  free(o.b);
  chunk(f, "IEND", NULL, 0);
  return ferror(f) ? -1 : 0;
}
