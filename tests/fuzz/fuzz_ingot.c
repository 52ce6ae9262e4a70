// fuzz_ingot.c: libFuzzer target for the ingot reader.
//
// Any byte string goes through ingot_open_bytes, which must refuse it with a
// message or open an ingot whose tables the rest of the runtime can index
// without further checks. When one opens, a CPU session is created over it
// and freed: its arenas, buffer tables and kernel symbols are laid out from
// the tables. Kernels are never run, and a session is created only when the
// HOST_CODE section is byte for byte that of a seed ingot: host code is
// native code, and a mutated shared object would run whatever it holds.
//
// The mutator recomputes every section's CRC and the section table's (and
// mostly keeps the header's file size true) after each mutation, so that
// mutations reach the checks behind the checksums.
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

#define SEED_DIR "tests/fuzz/seeds-ingots"
#define MAX_SEEDS 16

static struct { char *code; uint64_t size; } seed_code[MAX_SEEDS];
static int nseed_code;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  DIR *dir = opendir(SEED_DIR);
  for (struct dirent *de; dir && (de = readdir(dir)) && nseed_code < MAX_SEEDS;) {
    if (de->d_name[0] == '.') continue;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", SEED_DIR, de->d_name);
    smelt_ingot *ig;
    if (smelt_ingot_open(path, &ig) != SMELT_OK) continue;
    uint64_t n;
    const void *code = ingot_section(ig, SEC_HOST_CODE, &n);
    seed_code[nseed_code].code = malloc(n ? n : 1);
    memcpy(seed_code[nseed_code].code, code, n);
    seed_code[nseed_code++].size = n;
    smelt_ingot_close(ig);
  }
  if (dir) closedir(dir);
  return 0;
}

static bool seed_host_code(const smelt_ingot *ig) {
  uint64_t n;
  const void *code = ingot_section(ig, SEC_HOST_CODE, &n);
  for (int i = 0; i < nseed_code; i++)
    if (seed_code[i].size == n && !memcmp(seed_code[i].code, code, n)) return true;
  return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  smelt_ingot *ig;
  if (ingot_open_bytes(data, size, "fuzzed", &ig) != SMELT_OK) return 0;
  if (seed_host_code(ig)) {
    smelt_session *s;
    if (smelt_session_new(ig, "cpu", 1, &s) == SMELT_OK) smelt_session_free(s);
  }
  smelt_ingot_close(ig);
  return 0;
}

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

// Seals a mutated ingot again: every section's CRC that lies in the bytes,
// the section table's, and (seven times in eight) the file size.
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
  size = LLVMFuzzerMutate(data, size, max_size);
  if (size < sizeof(IngotHeader) || memcmp(data, INGOT_MAGIC, 8)) return size;
  IngotHeader *h = (IngotHeader *)data;
  if (seed % 8) h->file_size = size;
  uint32_t n = h->nsections;
  if (n > 16 || sizeof *h + (uint64_t)n * sizeof(IngotSection) > size) return size;
  IngotSection *t = (IngotSection *)(data + sizeof *h);
  for (uint32_t i = 0; i < n; i++)
    if (t[i].offset <= size && t[i].size <= size - t[i].offset) t[i].crc = smelt_crc32(data + t[i].offset, t[i].size);
  h->header_crc = smelt_crc32(t, (uint64_t)n * sizeof *t);
  return size;
}
