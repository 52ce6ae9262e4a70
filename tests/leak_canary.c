// leak_canary.c: a test that leaks on purpose. `make test-asan` runs it and
// requires it to FAIL, which proves that the suites' leak check works.
#include <criterion/criterion.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

static void *leaked;

static void leak_check(void) {
#if defined(__SANITIZE_ADDRESS__)
  cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "this test leaked memory");
#else
  cr_assert_fail("built without ASan: the leak check cannot run here");
#endif
}

Test(canary, leaks, .fini = leak_check) {
  leaked = malloc(4096);
  leaked = NULL;   // drop the only pointer: a definite leak
}
