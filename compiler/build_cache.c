// build_cache.c: compiled kernel bodies kept between builds, by content.
//
// An entry is a file named by its key, the SHA-256 of everything its bytes
// depend on (codegen_share.c: the body's unoptimized IR on one target, its
// symbol, the processor, the LLVM and smelt versions, the pipeline). The
// file holds a header (magic, payload length, the key, the payload's
// SHA-256) and the payload; a reader checks all four and takes a file that
// fails any (truncated, corrupt, another key's) as a miss, removing it.
// Writers write a temporary file in the same folder and rename it into
// place, so concurrent builds see a whole entry or none; two builds that
// write the same key write the same bytes. No fsync: an entry lost or torn
// by a crash fails its check and is built again.
//
// Hits set the file's modification time, so the oldest files are the least
// recently used; build_cache_trim removes them until the folder fits its
// bound, and temporaries that a killed build left (older than an hour).
#include "compiler.h"

#include "sha256.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char magic[8] = {'s', 'm', 'e', 'l', 't', 'c', '1', '\n'};
enum { HEADER = 8 + 8 + 32 + 32 };

static void hex(const uint8_t *d, int n, char *out) {
  for (int i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

// mkdir -p of path (its components made 0700 where missing); 0 or -1 (errno).
static int make_folders(char *path) {
  for (char *p = path + 1;; p++) {
    if (*p != '/' && *p) continue;
    char at = *p;
    *p = '\0';
    int rc = mkdir(path, 0700);
    *p = at;
    if (rc && errno != EEXIST) return -1;
    if (!at) return 0;
  }
}

int build_cache_open(BuildCache *bc, char *err, size_t errlen) {
  memset(bc, 0, sizeof *bc);
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  int n;
  if (xdg && xdg[0] == '/') n = snprintf(bc->dir, sizeof bc->dir, "%s/smelt", xdg);
  else if (home && home[0] == '/') n = snprintf(bc->dir, sizeof bc->dir, "%s/.cache/smelt", home);
  else {
    snprintf(err, errlen, "neither XDG_CACHE_HOME nor HOME is an absolute path");
    return -1;
  }
  if (n < 0 || (size_t)n + 80 >= sizeof bc->dir) {
    snprintf(err, errlen, "the cache folder's path is too long");
    return -1;
  }
  if (make_folders(bc->dir)) {
    snprintf(err, errlen, "cannot create '%s': %s", bc->dir, strerror(errno));
    return -1;
  }
  bc->max_bytes = BUILD_CACHE_DEFAULT_BYTES;
  const char *max = getenv("SMELT_CACHE_MAX");
  if (max && *max) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(max, &end, 10);
    uint64_t unit = *end == 'K' ? 1ull << 10 : *end == 'M' ? 1ull << 20 : *end == 'G' ? 1ull << 30 : 1;
    if (unit > 1) end++;
    if (errno || end == max || *end || v > UINT64_MAX / unit) {
      snprintf(err, errlen, "SMELT_CACHE_MAX takes a size in bytes, with an optional K, M or G, not '%s'", max);
      return -1;
    }
    bc->max_bytes = v * unit;
  }
  bc->on = true;
  return 0;
}

static void entry_path(const BuildCache *bc, const uint8_t key[32], char *path, size_t n) {
  char h[65];
  hex(key, 32, h);
  snprintf(path, n, "%s/%.2s/%s", bc->dir, h, h + 2);
}

bool build_cache_get(BuildCache *bc, const uint8_t key[32], Blob *out) {
  memset(out, 0, sizeof *out);
  if (!bc->on) return false;
  char path[4200];
  entry_path(bc, key, path, sizeof path);
  size_t len;
  char *data = file_read(path, &len);
  bool ok = false;
  if (data && len >= HEADER && !memcmp(data, magic, 8) && !memcmp(data + 16, key, 32)) {
    uint64_t plen;
    memcpy(&plen, data + 8, 8);
    uint8_t sum[32];
    if (plen == len - HEADER) {
      Sha256 s;
      sha256_init(&s);
      sha256_update(&s, data + HEADER, plen);
      sha256_final(&s, sum);
      ok = !memcmp(sum, data + 48, 32);
    }
  }
  if (!ok) {
    if (data) unlink(path);   // damaged: rebuilt and written again
    free(data);
    atomic_fetch_add(&bc->misses, 1);
    return false;
  }
  utimensat(AT_FDCWD, path, NULL, 0);   // most recently used
  out->len = len - HEADER;
  out->data = xmalloc(out->len + 1);
  memcpy(out->data, data + HEADER, out->len);
  out->data[out->len] = '\0';
  free(data);
  atomic_fetch_add(&bc->hits, 1);
  return true;
}

static bool write_all(int fd, const void *p, size_t n) {
  for (const char *c = p; n;) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w, n -= (size_t)w;
  }
  return true;
}

void build_cache_put(BuildCache *bc, const uint8_t key[32], const Blob *data) {
  if (!bc->on) return;
  char path[4200], tmp[4300];
  entry_path(bc, key, path, sizeof path);
  char *slash = strrchr(path, '/');
  *slash = '\0';
  if (mkdir(path, 0700) && errno != EEXIST) return;
  *slash = '/';
  static atomic_uint serial;
  snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%u", path, (long)getpid(), atomic_fetch_add(&serial, 1));
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return;
  uint8_t head[HEADER];
  uint64_t plen = data->len;
  memcpy(head, magic, 8);
  memcpy(head + 8, &plen, 8);
  memcpy(head + 16, key, 32);
  Sha256 s;
  sha256_init(&s);
  sha256_update(&s, data->data, data->len);
  sha256_final(&s, head + 48);
  bool ok = write_all(fd, head, HEADER) && write_all(fd, data->data, data->len);
  ok = close(fd) == 0 && ok;
  if (!ok || rename(tmp, path)) unlink(tmp);
}

// ---- the bound

typedef struct {
  char *path;
  off_t size;
  struct timespec used;
} Found;

static int older(const void *a, const void *b) {
  const Found *x = a, *y = b;
  if (x->used.tv_sec != y->used.tv_sec) return x->used.tv_sec < y->used.tv_sec ? -1 : 1;
  if (x->used.tv_nsec != y->used.tv_nsec) return x->used.tv_nsec < y->used.tv_nsec ? -1 : 1;
  return strcmp(x->path, y->path);
}

void build_cache_trim(BuildCache *bc) {
  if (!bc->on) return;
  Found *f = NULL;
  size_t n = 0, cap = 0;
  uint64_t total = 0;
  time_t now = time(NULL);
  DIR *top = opendir(bc->dir);
  for (struct dirent *d; top && (d = readdir(top));) {
    if (strlen(d->d_name) != 2 || d->d_name[0] == '.') continue;
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/%.2s", bc->dir, d->d_name);   // two characters, as tested
    DIR *in = opendir(sub);
    for (struct dirent *e; in && (e = readdir(in));) {
      if (e->d_name[0] == '.') continue;
      char path[4500];
      snprintf(path, sizeof path, "%s/%s", sub, e->d_name);
      struct stat st;
      if (lstat(path, &st) || !S_ISREG(st.st_mode)) continue;
      if (strstr(e->d_name, ".tmp-")) {
        if (now - st.st_mtime > 3600) unlink(path);   // left by a build that was killed
        continue;
      }
      if (n == cap) f = xrealloc(f, (cap = cap ? 2 * cap : 256) * sizeof *f);
      f[n++] = (Found){xstrdup(path), st.st_size, st.st_mtim};
      total += (uint64_t)st.st_size;
    }
    if (in) closedir(in);
  }
  if (top) closedir(top);
  if (total > bc->max_bytes) {
    qsort(f, n, sizeof *f, older);
    // down to nine tenths of the bound, so the next builds do not trim again at once
    uint64_t goal = bc->max_bytes / 10 * 9;
    for (size_t i = 0; i < n && total > goal; i++)
      if (unlink(f[i].path) == 0) total -= (uint64_t)f[i].size, bc->evicted++;
  }
  for (size_t i = 0; i < n; i++) free(f[i].path);
  free(f);
}
