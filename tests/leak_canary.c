// leak_canary.c: a test that leaks on purpose. `make test-asan` runs it and
// requires it to FAIL, which proves that the suites' leak check works.
#include <criterion/criterion.h>
#include <stdlib.h>

#include "support.h"

// Allocates, writes, and drops the only pointer, out of line so that neither
// the optimizer nor a stale register keeps the block reachable.
__attribute__((noinline)) static void leak_a_block(void) {
  char *volatile p = malloc(4096);
  p[0] = 1;
  p = NULL;
}

TEST(canary, leaks) {
#if !defined(__SANITIZE_ADDRESS__)
  cr_assert_fail("built without ASan: the leak check cannot run here");
#endif
  leak_a_block();
}
