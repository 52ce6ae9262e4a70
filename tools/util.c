// util.c: allocation that cannot fail, file reading and string distance,
// for the tools and the compiler (util.h).
#include "util.h"

#include <stdio.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <limits.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

_Noreturn void internal_error(const char *file, int line, const char *msg) {
  fprintf(stderr, "smelt: internal error at %s:%d: %s\n", file, line, msg);
  abort();
}

static _Noreturn void out_of_memory(size_t n) {
  fprintf(stderr, "smelt: error: out of memory (allocating %zu bytes)\n", n);
  exit(1);
}

void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) out_of_memory(n);
  return p;
}

void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) out_of_memory(n * size);
  return p;
}

void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) out_of_memory(n);
  return p;
}

char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  return memcpy(xmalloc(n), s, n);
}

char *file_read(const char *path, size_t *len) {
  // O_NONBLOCK: opening a FIFO would wait for a writer; only a regular file is
  // read, since a pipe or a device (/dev/zero) may never end
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return NULL;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    int e = S_ISDIR(st.st_mode) ? EISDIR : FILE_NOT_REGULAR;
    close(fd);
    errno = e;
    return NULL;
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    close(fd);
    return NULL;
  }
  size_t cap = 4096, n = 0;
  char *buf = xmalloc(cap);
  for (;;) {
    if (n + 1 >= cap) buf = xrealloc(buf, cap *= 2);
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (got == 0) break;
  }
  int err = ferror(f) ? errno : 0;
  fclose(f);
  if (err) {
    free(buf);
    errno = err;
    return NULL;
  }
  buf[n] = '\0';
  if (len) *len = n;
  return buf;
}

const char *file_error(int err) {
  return err == FILE_NOT_REGULAR ? "it is not a regular file (a pipe, socket or device)" : strerror(err);
}

char *path_display(const char *path) {
  char real[PATH_MAX], cwd[PATH_MAX];
  if (!realpath(path, real) || !getcwd(cwd, sizeof cwd)) return xstrdup(path);
  size_t n = strlen(cwd);
  if (strncmp(real, cwd, n) == 0 && real[n] == '/') return xstrdup(real + n + 1);
  return xstrdup(real);
}

int str_distance(const char *a, const char *b) {
  int n = (int)strlen(a), m = (int)strlen(b);
  if (n > 64 || m > 64) return 1 << 20;   // names this long are not typos
  int d[65][65];
  for (int i = 0; i <= n; i++) d[i][0] = i;
  for (int j = 0; j <= m; j++) d[0][j] = j;
  for (int i = 1; i <= n; i++) {
    for (int j = 1; j <= m; j++) {
      int cost = a[i - 1] != b[j - 1];
      int best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
      if (d[i - 1][j - 1] + cost < best) best = d[i - 1][j - 1] + cost;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  }
  return d[n][m];
}

const char *human_units(char *buf, size_t n, double v, const char *unit) {
  const char *pre[] = {"", "K", "M", "G", "T", "P"};
  int i = 0;
  while (v >= 1000 && i < 5) v /= 1000, i++;
  snprintf(buf, n, i ? "%.1f %s%s" : "%.0f %s%s", v, pre[i], unit);
  return buf;
}
