// llvm_errors.c: LLVM's fatal errors and failed allocations as one message
// and exit status 1.
//
// LLVM ends the process itself on three paths: report_fatal_error (a reason
// such as "Cannot select"), report_bad_alloc_error (its malloc wrappers:
// "LLVM ERROR: out of memory", then abort) and operator new throwing
// std::bad_alloc, which nothing catches (terminate, abort). The C API covers
// the first only (LLVMInstallFatalErrorHandler). The other two are C++
// entry points of libLLVM without a C wrapper, so they are declared here by
// their Itanium C++ ABI names, which are fixed by their signatures:
//   llvm::install_bad_alloc_error_handler(void (*)(void *, const char *, bool), void *)
//   llvm::install_out_of_memory_new_handler()
// The second sets a std::new_handler that calls report_bad_alloc_error, so
// a failed operator new reaches the same handler. (In an LLVM built with
// exceptions it does nothing and std::bad_alloc still aborts; Debian's and
// apt.llvm.org's LLVM are built without.)
//
// The handlers print what was being compiled (llvm_errors_at), remove the
// build's temporary folders and _exit(1): LLVM may be in the middle of an
// allocation with its locks held, so neither exit's destructors nor stdio's
// allocations are safe there.
#include "compiler.h"

#include <llvm-c/ErrorHandling.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

void _ZN4llvm31install_bad_alloc_error_handlerEPFvPvPKcbES0_(void (*handler)(void *, const char *, bool),
                                                             void *user);
void _ZN4llvm33install_out_of_memory_new_handlerEv(void);

// per thread: the host's module parts and the GPU targets compile in parallel
static _Thread_local char llvm_doing[256] = "the model";   // "kernel fc1_matmul", "module smelt_host"

void llvm_errors_at(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(llvm_doing, sizeof llvm_doing, fmt, ap);
  va_end(ap);
}

// Writes the pieces to stderr without stdio, removes the temporary folders, exits 1.
static _Noreturn void llvm_die(const char *what, const char *reason) {
  const char *parts[] = {"smelt: error: ", what, " while compiling ", llvm_doing, reason ? ": " : "", reason ? reason : "",
                         "\n"};
  for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
    if (write(STDERR_FILENO, parts[i], strlen(parts[i])) < 0) break;
  tempdir_remove_all();
  _exit(1);
}

static void on_fatal_error(const char *reason) { llvm_die("LLVM failed", reason); }

static void on_bad_alloc(void *user, const char *reason, bool gen_crash_diag) {
  (void)user, (void)reason, (void)gen_crash_diag;
  llvm_die("out of memory", NULL);
}

static void install_handlers(void) {
  LLVMInstallFatalErrorHandler(on_fatal_error);
  _ZN4llvm31install_bad_alloc_error_handlerEPFvPvPKcbES0_(on_bad_alloc, NULL);
  _ZN4llvm33install_out_of_memory_new_handlerEv();
}

void llvm_errors_install(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, install_handlers);
}
