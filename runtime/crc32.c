// crc32.c: CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), the
// checksum of every ingot section and of every tensor in a saved tensor
// file; the same values as zlib's crc32. And CRC-32C, TensorBoard's.
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ingot.h"

uint32_t smelt_crc32(const void *data, uint64_t n) { return smelt_crc32_update(0, data, n); }

// The byte table of a reflected polynomial; computing it twice concurrently
// writes the same values.
static const uint32_t *crc_table(uint32_t *table, int *ready, uint32_t poly) {
  if (!*ready) {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = c & 1 ? poly ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    *ready = 1;
  }
  return table;
}

uint32_t smelt_crc32c(const void *data, uint64_t n) {
  static uint32_t t[256];
  static int ready;
  const uint32_t *table = crc_table(t, &ready, 0x82F63B78u);
  const uint8_t *p = data;
  uint32_t c = 0xFFFFFFFFu;
  for (uint64_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// Slicing by eight: table k advances a byte through k more zero bytes, so
// eight bytes take eight lookups and no dependency from byte to byte (about
// five times the byte loop; the ingot reader checks every section with it).
static uint32_t slice[8][256];

static void slice_tables(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    slice[0][i] = c;
  }
  for (int k = 1; k < 8; k++)
    for (int i = 0; i < 256; i++) slice[k][i] = (slice[k - 1][i] >> 8) ^ slice[0][slice[k - 1][i] & 0xFF];
}

uint32_t smelt_crc32_update(uint32_t crc, const void *data, uint64_t n) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, slice_tables);
  const uint8_t *p = data;
  uint32_t c = crc ^ 0xFFFFFFFFu;
  for (; n >= 8; p += 8, n -= 8) {   // little-endian words, as the ingot is
    uint32_t lo, hi;
    memcpy(&lo, p, 4);
    memcpy(&hi, p + 4, 4);
    lo ^= c;
    c = slice[7][lo & 0xFF] ^ slice[6][(lo >> 8) & 0xFF] ^ slice[5][(lo >> 16) & 0xFF] ^ slice[4][lo >> 24] ^
        slice[3][hi & 0xFF] ^ slice[2][(hi >> 8) & 0xFF] ^ slice[1][(hi >> 16) & 0xFF] ^ slice[0][hi >> 24];
  }
  for (; n; p++, n--) c = slice[0][(c ^ *p) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}
