// tfevents.c: TensorBoard event files for `smelt train --log-dir=DIR`.
//
// An event file is a sequence of TFRecords: a little-endian u64 length, the
// masked CRC-32C of those 8 bytes, the record, the masked CRC-32C of the
// record (masked: rotated right by 15 bits plus 0xa282ead8). Each record is
// a serialized tensorflow.Event protobuf, written here by hand (four fields):
//
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }
//   Value   { string tag = 1; float simple_value = 2; }
//
// The first record names the format ("brain.Event:2"); then one Event per
// step holds that step's scalars. Every record is flushed as it is written,
// so TensorBoard shows a run while it trains.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ingot.h"
#include "tools.h"

struct TfEvents {
  FILE *f;
  unsigned char *buf;   // the Event being built
  size_t len, cap;
};

static void put(TfEvents *t, const void *p, size_t n) {
  if (t->len + n > t->cap) {
    t->cap = (t->len + n) * 2 + 64;
    t->buf = realloc(t->buf, t->cap);
    if (!t->buf) {
      fprintf(stderr, "smelt: error: out of memory writing a TensorBoard event\n");
      exit(1);
    }
  }
  memcpy(t->buf + t->len, p, n);
  t->len += n;
}

static void put_varint(TfEvents *t, uint64_t v) {
  unsigned char b[10];
  int n = 0;
  do {
    b[n] = (unsigned char)(v & 0x7f);
    v >>= 7;
    if (v) b[n] |= 0x80;
    n++;
  } while (v);
  put(t, b, (size_t)n);
}

static void put_le(TfEvents *t, uint64_t v, int bytes) {
  unsigned char b[8];
  for (int i = 0; i < bytes; i++) b[i] = (unsigned char)(v >> (8 * i));
  put(t, b, (size_t)bytes);
}

static uint32_t masked_crc(const void *p, size_t n) {
  uint32_t c = smelt_crc32c(p, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

// The Event built in t->buf as one TFRecord; false when the write fails.
static bool put_record(TfEvents *t) {
  unsigned char head[12];
  uint64_t n = t->len;
  for (int i = 0; i < 8; i++) head[i] = (unsigned char)(n >> (8 * i));
  uint32_t hc = masked_crc(head, 8), dc = masked_crc(t->buf, t->len);
  for (int i = 0; i < 4; i++) head[8 + i] = (unsigned char)(hc >> (8 * i));
  unsigned char tail[4];
  for (int i = 0; i < 4; i++) tail[i] = (unsigned char)(dc >> (8 * i));
  bool ok = fwrite(head, 1, 12, t->f) == 12 && fwrite(t->buf, 1, t->len, t->f) == t->len &&
            fwrite(tail, 1, 4, t->f) == 4 && fflush(t->f) == 0;
  t->len = 0;
  return ok;
}

// An Event's wall time (field 1, fixed64) and step (field 2, varint).
static void event_head(TfEvents *t, int64_t step) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  double wall = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
  uint64_t bits;
  memcpy(&bits, &wall, sizeof bits);
  put_varint(t, 1 << 3 | 1);
  put_le(t, bits, 8);
  put_varint(t, 2 << 3 | 0);
  put_varint(t, (uint64_t)step);
}

TfEvents *tfevents_open(const char *dir, char *err, size_t errlen) {
  char host[256] = "localhost", path[4600];
  if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "localhost");
  host[sizeof host - 1] = 0;
  for (char *c = host; *c; c++)
    if (*c == '/') *c = '_';
  snprintf(path, sizeof path, "%s/events.out.tfevents.%lld.%s.%d", dir, (long long)time(NULL), host, (int)getpid());
  TfEvents *t = calloc(1, sizeof *t);
  // a new file per run (the pid in its name): TensorBoard reads every file in DIR
  t->f = t ? fopen(path, "wbx") : NULL;
  if (!t || !t->f) {
    snprintf(err, errlen, "--log-dir: cannot write %s: %s", path, strerror(errno));
    free(t);
    return NULL;
  }
  static const char version[] = "brain.Event:2";
  event_head(t, 0);
  put_varint(t, 3 << 3 | 2);
  put_varint(t, sizeof version - 1);
  put(t, version, sizeof version - 1);
  if (!put_record(t)) {
    snprintf(err, errlen, "--log-dir: cannot write %s: %s", path, strerror(errno));
    tfevents_close(t);
    return NULL;
  }
  return t;
}

bool tfevents_step(TfEvents *t, int64_t step, const char *const *tags, const float *values, int n) {
  event_head(t, step);
  // the Summary (field 5) holds one Value per scalar; sizes are known up front
  size_t summary = 0;
  for (int i = 0; i < n; i++) {
    size_t tl = strlen(tags[i]), value = 1 + (tl < 128 ? 1 : 2) + tl + 1 + 4;
    summary += 1 + (value < 128 ? 1 : 2) + value;
  }
  put_varint(t, 5 << 3 | 2);
  put_varint(t, summary);
  for (int i = 0; i < n; i++) {
    size_t tl = strlen(tags[i]);
    put_varint(t, 1 << 3 | 2);
    put_varint(t, 1 + (tl < 128 ? 1 : 2) + tl + 1 + 4);
    put_varint(t, 1 << 3 | 2);
    put_varint(t, tl);
    put(t, tags[i], tl);
    uint32_t bits;
    memcpy(&bits, &values[i], sizeof bits);
    put_varint(t, 2 << 3 | 5);
    put_le(t, bits, 4);
  }
  return put_record(t);
}

int tfevents_close(TfEvents *t) {
  if (!t) return 0;
  int rc = t->f && fclose(t->f) != 0 ? -1 : 0;
  free(t->buf);
  free(t);
  return rc;
}
