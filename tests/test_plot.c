// smelt plot: a --log-dir's scalars.csv drawn as an SVG or a PNG, the PNG
// encoder against zlib's decoder, and the files plot refuses.
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "canvas.h"
#include "ingot.h"
#include "support.h"

static int count(const char *s, const char *what) {
  int n = 0;
  for (const char *p = s; (p = strstr(p, what)); p += strlen(what)) n++;
  return n;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fputs(text, f);
  cr_assert_eq(fclose(f), 0);
}

TEST(plot, curves_of_a_log_dir) {
  char dir[] = "/tmp/smelt-plot-XXXXXX", path[128], cmd[512], *out;
  cr_assert(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/scalars.csv", dir);
  // the trainer's columns; evaluations at steps 3 and 6 only
  write_text(path, "step,loss,lr,grad_norm,samples_per_s,eval_loss,eval_accuracy\n"
                   "1,2.3,0.001,,100,,\n2,2.1,0.001,,100,,\n3,1.9,0.001,,100,1.95,0.40\n"
                   "4,1.7,0.001,,100,,\n5,1.6,0.001,,100,,\n6,1.4,0.001,,100,1.5,0.55\n");
  snprintf(cmd, sizeof cmd, "%s plot %s -o %s/c.svg", smelt_path(), dir, dir);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect(strstr(out, "c.svg: 6 steps from ") != NULL, "%s", out);
  free(out);
  snprintf(path, sizeof path, "%s/c.svg", dir);
  size_t len;
  char *svg = file_read(path, &len);
  cr_assert(svg);
  cr_expect(!strncmp(svg, "<svg xmlns='http://www.w3.org/2000/svg'", 39) && strstr(svg, "</svg>\n"), "%s", svg);
  // training loss, evaluation loss, evaluation accuracy; a dot per evaluation in each
  cr_expect_eq(count(svg, "<polyline"), 3, "%s", svg);
  cr_expect_eq(count(svg, "<circle"), 4, "%s", svg);
  cr_expect(strstr(svg, ">evaluation accuracy (%)<") && strstr(svg, ">40<"), "%s", svg);
  free(svg);
  // a run that never evaluated: the learning rate below
  snprintf(path, sizeof path, "%s/noeval.csv", dir);
  write_text(path, "step,loss,lr,grad_norm,samples_per_s,eval_loss,eval_accuracy\n1,2.3,0.001,,1,,\n2,2.2,0.002,,1,,\n");
  snprintf(cmd, sizeof cmd, "%s plot %s -o %s/n.svg", smelt_path(), path, dir);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  snprintf(path, sizeof path, "%s/n.svg", dir);
  svg = file_read(path, &len);
  cr_assert(svg);
  cr_expect(strstr(svg, ">learning rate<") && count(svg, "<polyline") == 2 && !count(svg, "<circle"), "%s", svg);
  free(svg);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

TEST(plot, refuses_what_it_cannot_draw) {
  char dir[] = "/tmp/smelt-plot-XXXXXX", path[128], cmd[512], *out;
  cr_assert(mkdtemp(dir));
  static const struct {
    const char *csv, *message;
  } bad[] = {
      {"step,loss\n1,2.0\n2,nan\n", "bad.csv:3: the loss 'nan' is not a finite number"},
      {"step,accuracy\n1,0.5\n", "has no step and loss columns"},
      {"step,loss\n", "has no rows yet"},
      {"", "is empty"},
  };
  snprintf(path, sizeof path, "%s/bad.csv", dir);
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    write_text(path, bad[i].csv);
    snprintf(cmd, sizeof cmd, "%s plot %s -o %s/c.svg", smelt_path(), path, dir);
    cr_expect_eq(run_cmd(cmd, &out), 1, "%s", out);
    cr_expect(strstr(out, bad[i].message) != NULL, "%s", out);
    free(out);
  }
  snprintf(path, sizeof path, "%s/c.svg", dir);
  cr_expect(access(path, F_OK) != 0, "a refused plot writes nothing");
  snprintf(cmd, sizeof cmd, "%s plot %s -o %s/c.jpg", smelt_path(), dir, dir);
  cr_expect_eq(run_cmd(cmd, &out), 2, "%s", out);
  cr_expect(strstr(out, "plot writes SVG or PNG: -o takes a .svg or a .png file, not") != NULL, "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

// ---- PNG

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

// The pixels of a PNG that smelt writes (8-bit RGB, filter type 0 on every
// row), its chunks' CRCs checked and its stream inflated by zlib itself, so
// the encoder is checked by a decoder it shares nothing with. NULL where the
// machine has no libz.so.1 (the test then says so).
static uint8_t *png_decode(const uint8_t *png, size_t n, int *w, int *h) {
  static int (*uncompress)(uint8_t *, unsigned long *, const uint8_t *, unsigned long);
  if (!uncompress) {
    void *z = dlopen("libz.so.1", RTLD_NOW);
    if (!z) return NULL;
    *(void **)&uncompress = dlsym(z, "uncompress");
    cr_assert(uncompress);
  }
  static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  cr_assert(n > 8 && !memcmp(png, signature, 8));
  uint8_t *idat = NULL, *rgb = NULL;
  size_t nidat = 0;
  bool end = false;
  for (size_t i = 8; i < n;) {
    cr_assert(i + 12 <= n, "a chunk runs past the end");
    uint32_t len = be32(png + i);
    cr_assert(i + 12 + len <= n);
    const uint8_t *type = png + i + 4;
    cr_expect_eq(be32(png + i + 8 + len), smelt_crc32(type, 4 + (uint64_t)len), "the CRC of chunk %.4s", type);
    if (!memcmp(type, "IHDR", 4)) {
      cr_assert_eq(len, 13);
      *w = (int)be32(type + 4), *h = (int)be32(type + 8);
      cr_expect(!memcmp(type + 12, "\x08\x02\x00\x00\x00", 5), "8-bit RGB, deflate, no interlace");
    } else if (!memcmp(type, "IDAT", 4)) {
      idat = realloc(idat, nidat + len);
      memcpy(idat + nidat, type + 4, len);
      nidat += len;
    } else if (!memcmp(type, "IEND", 4))
      end = true;
    i += 12 + len;
  }
  cr_assert(end && idat, "IEND and IDAT");
  size_t stride = (size_t)*w * 3 + 1;
  unsigned long raw_n = stride * *h + 1;   // one byte more, to see that the stream holds no more
  uint8_t *raw = malloc(raw_n);
  cr_assert_eq(uncompress(raw, &raw_n, idat, nidat), 0, "zlib inflates the stream");
  cr_assert_eq(raw_n, stride * *h);
  rgb = malloc(stride * *h);
  for (int y = 0; y < *h; y++) {
    cr_assert_eq(raw[y * stride], 0, "row %d's filter type", y);
    memcpy(rgb + (size_t)y * *w * 3, raw + y * stride + 1, (size_t)*w * 3);
  }
  free(raw);
  free(idat);
  return rgb;
}

TEST(plot, png_encoder_round_trips_through_zlib) {
  // noise (literals), one colour (runs past the longest match), stripes
  // (matches at many distances), and rows wider than deflate's window
  static const struct { int w, h, kind; } images[] = {{1, 1, 0}, {37, 23, 0}, {64, 64, 1}, {301, 17, 2}, {12000, 3, 2}, {257, 130, 3}};
  for (size_t k = 0; k < sizeof images / sizeof *images; k++) {
    int w = images[k].w, h = images[k].h;
    size_t n = (size_t)w * h * 3;
    uint8_t *rgb = malloc(n);
    uint32_t state = 12345 + (uint32_t)k;
    for (size_t i = 0; i < n; i++) {
      state = state * 1664525u + 1013904223u;
      int x = (int)(i / 3 % w), y = (int)(i / 3 / w);
      rgb[i] = images[k].kind == 0 ? (uint8_t)(state >> 24)
               : images[k].kind == 1 ? 0xAB
               : images[k].kind == 2 ? (uint8_t)((x / 7 + y) * 40 + i % 3)
                                     : (uint8_t)(state >> 28 == 0 ? state >> 16 : (uint32_t)(x * y) >> 4);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(png_write(f, rgb, w, h), 0);
    cr_assert_eq(fclose(f), 0);
    int dw = 0, dh = 0;
    uint8_t *back = png_decode((const uint8_t *)buf, len, &dw, &dh);
    if (!back) cr_skip_test("skipped: no libz.so.1 on this machine to decode with");
    cr_expect(dw == w && dh == h, "%dx%d back as %dx%d", w, h, dw, dh);
    cr_expect(!memcmp(back, rgb, n), "image %zu (%dx%d) decodes to its own pixels", k, w, h);
    if (images[k].kind == 1) cr_expect_lt(len, n / 50, "one colour compresses: %zu bytes for %zu", len, n);
    free(back);
    free(buf);
    free(rgb);
  }
}

// The pixels of exactly color in the box [x0, x1) x [y0, y1); or, for
// color DARK, those of every channel below 128 (text is anti-aliased).
enum { DARK = 0x1000000 };
static int pixels_of(const uint8_t *rgb, int w, int x0, int y0, int x1, int y1, uint32_t color) {
  int n = 0;
  for (int y = y0; y < y1; y++)
    for (int x = x0; x < x1; x++) {
      const uint8_t *p = rgb + ((size_t)y * w + x) * 3;
      n += color == DARK ? p[0] < 128 && p[1] < 128 && p[2] < 128
                         : p[0] == (uint8_t)(color >> 16) && p[1] == (uint8_t)(color >> 8) && p[2] == (uint8_t)color;
    }
  return n;
}

TEST(plot, png_of_a_log_dir) {
  char dir[] = "/tmp/smelt-plot-XXXXXX", path[128], cmd[512], *out;
  cr_assert(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/scalars.csv", dir);
  write_text(path, "step,loss,lr,grad_norm,samples_per_s,eval_loss,eval_accuracy\n"
                   "1,2.3,0.001,,100,,\n2,2.1,0.001,,100,,\n3,1.9,0.001,,100,1.95,0.40\n"
                   "4,1.7,0.001,,100,,\n5,1.6,0.001,,100,,\n6,1.4,0.001,,100,1.5,0.55\n");
  snprintf(cmd, sizeof cmd, "%s plot %s -o %s/c.png", smelt_path(), dir, dir);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect(strstr(out, "c.png: 6 steps from ") != NULL, "%s", out);
  free(out);
  snprintf(path, sizeof path, "%s/c.png", dir);
  size_t len;
  uint8_t *png = (uint8_t *)file_read(path, &len);
  cr_assert(png);
  int w, h;
  uint8_t *rgb = png_decode(png, len, &w, &h);
  if (!rgb) cr_skip_test("skipped: no libz.so.1 on this machine to decode with");
  cr_assert(w == 800 && h == 520, "%dx%d", w, h);
  cr_expect_eq(pixels_of(rgb, w, 0, 0, 10, 10, 0xffffff), 100, "a white background");
  // the upper panel (y 50 to 230) has the training loss in blue and the
  // evaluation loss in red; the lower (290 to 470) the accuracy in green
  cr_expect_gt(pixels_of(rgb, w, 70, 50, 760, 230, 0x1f77b4), 250);
  cr_expect_gt(pixels_of(rgb, w, 70, 50, 760, 230, 0xd62728), 150);
  cr_expect_eq(pixels_of(rgb, w, 70, 50, 760, 230, 0x2ca02c), 0);
  cr_expect_gt(pixels_of(rgb, w, 70, 290, 760, 470, 0x2ca02c), 150);
  cr_expect_eq(pixels_of(rgb, w, 70, 290, 760, 470, 0x1f77b4), 0);
  // text: the title's and the axis labels' black pixels
  cr_expect_gt(pixels_of(rgb, w, 70, 10, 300, 24, DARK), 40, "the title");
  cr_expect_gt(pixels_of(rgb, w, 0, 50, 66, 230, DARK), 40, "the loss axis's labels");
  cr_expect_eq(pixels_of(rgb, w, 0, 50, 30, 230, DARK), 0, "labels end at the axis");
  free(rgb);
  free(png);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}
