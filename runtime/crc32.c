// crc32.c: CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), the
// checksum of every ingot section and of every tensor in a saved tensor
// file; the same values as zlib's crc32. And CRC-32C, TensorBoard's.
#include <stddef.h>
#include <stdint.h>

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

uint32_t smelt_crc32_update(uint32_t crc, const void *data, uint64_t n) {
  static uint32_t t[256];
  static int ready;
  const uint32_t *table = crc_table(t, &ready, 0xEDB88320u);
  const uint8_t *p = data;
  uint32_t c = crc ^ 0xFFFFFFFFu;
  for (uint64_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}
