// util.h: what every command needs and the runtime must not do: allocation
// that aborts with a message when memory runs out, whole-file reads, paths as
// diagnostics show them, edit distance for "did you mean", and internal
// assertions. The tools and the compiler include it; the runtime never does
// (it never exits).
#ifndef SMELT_UTIL_H
#define SMELT_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#define ASSERT(c)                                                              \
  do {                                                                         \
    if (!(c)) internal_error(__FILE__, __LINE__, "assertion failed: " #c);     \
  } while (0)
#define UNREACHABLE() internal_error(__FILE__, __LINE__, "unreachable")
_Noreturn void internal_error(const char *file, int line, const char *msg);

// Allocation that cannot fail (it aborts with a message when memory runs out),
// and growable arrays.

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

// Reads a whole regular file into a NUL-terminated buffer owned by the caller.
// Returns NULL and sets errno when the file cannot be read: FILE_NOT_REGULAR for
// a FIFO, socket or device, which file_error() describes like strerror() does.
char *file_read(const char *path, size_t *len);
#define FILE_NOT_REGULAR (-1000)
const char *file_error(int err);

// A path as diagnostics show it: relative to the current folder when it lies
// inside it, else absolute. Caller frees.
char *path_display(const char *path);

// v with a decimal prefix, for reports: "13.3 MB", "2.1 GFLOP", "512 B".
const char *human_units(char *buf, size_t n, double v, const char *unit);

// Edit distance with transpositions (Damerau, optimal string alignment).
int str_distance(const char *a, const char *b);

#endif
