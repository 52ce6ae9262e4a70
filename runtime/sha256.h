// sha256.h: SHA-256 (FIPS 180-4), the hash that pins an ingot
// (smelt_ingot_open_verified, `smelt build`'s "sha256" line, --expect-sha256).
// Internal to the runtime and the floors above it.
#ifndef SMELT_SHA256_H
#define SMELT_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint32_t h[8];        // the chaining state
  uint64_t bytes;       // message length so far
  uint8_t block[64];    // the partial block; bytes % 64 of it are filled
} Sha256;

void sha256_init(Sha256 *s);
void sha256_update(Sha256 *s, const void *data, size_t n);
void sha256_final(Sha256 *s, uint8_t digest[32]);
// The digest of n bytes as 64 lowercase hex digits and a NUL.
void sha256_hex(const void *data, size_t n, char hex[65]);
// Whether text is exactly 64 hex digits (either case).
bool sha256_hex_valid(const char *text);

#endif
