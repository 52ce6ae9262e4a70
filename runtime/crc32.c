// crc32.c: CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), the
// checksum of every ingot section and of every tensor in a saved tensor
// file; the same values as zlib's crc32.
#include <stddef.h>
#include <stdint.h>

#include "ingot.h"

uint32_t smelt_crc32(const void *data, uint64_t n) { return smelt_crc32_update(0, data, n); }

uint32_t smelt_crc32_update(uint32_t crc, const void *data, uint64_t n) {
  static uint32_t table[256];
  static int ready;   // computing the table twice concurrently writes the same values
  if (!ready) {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    ready = 1;
  }
  const uint8_t *p = data;
  uint32_t c = crc ^ 0xFFFFFFFFu;
  for (uint64_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}
