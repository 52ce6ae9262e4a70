// canvas.c: the drawing surfaces of canvas.h. The SVG surface prints one
// element per call. The raster surface draws each shape into a coverage
// mask first (a pixel's covered fraction: exact areas for rectangles, the
// distance to the shape for strokes and discs), then blends the mask's
// colour in once, so the joints of a polyline and the touching cells of a
// glyph are not blended twice.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "canvas.h"
#include "util.h"

struct Canvas {
  FILE *svg;         // the SVG surface's file; NULL for a raster
  int w, h;
  uint8_t *rgb;      // the raster's pixels
  float *mask;       // the raster's coverage of the shape being drawn
  int x0, y0, x1, y1;   // the box of the mask touched so far (x1, y1 exclusive)
};

static void svg_color(char out[8], uint32_t c) { snprintf(out, 8, "#%06x", c & 0xFFFFFF); }

Canvas *canvas_svg(FILE *f, int w, int h, uint32_t background) {
  Canvas *c = xcalloc(1, sizeof *c);
  c->svg = f, c->w = w, c->h = h;
  char bg[8];
  svg_color(bg, background);
  fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' font-family='sans-serif'>\n", w, h);
  fprintf(f, "<rect width='100%%' height='100%%' fill='%s'/>\n", bg);
  return c;
}

Canvas *canvas_raster(int w, int h, uint32_t background) {
  Canvas *c = xcalloc(1, sizeof *c);
  c->w = w, c->h = h;
  c->rgb = xmalloc((size_t)w * h * 3);
  c->mask = xcalloc((size_t)w * h, sizeof *c->mask);
  for (size_t i = 0; i < (size_t)w * h; i++)
    c->rgb[3 * i] = (uint8_t)(background >> 16), c->rgb[3 * i + 1] = (uint8_t)(background >> 8),
    c->rgb[3 * i + 2] = (uint8_t)background;
  c->x0 = w, c->y0 = h;
  return c;
}

// ---- the raster's mask

static int clampi(double v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : (int)v; }

static void touch(Canvas *c, int x0, int y0, int x1, int y1) {
  if (x0 < c->x0) c->x0 = x0;
  if (y0 < c->y0) c->y0 = y0;
  if (x1 > c->x1) c->x1 = x1;
  if (y1 > c->y1) c->y1 = y1;
}

// Adds the area of [x, x + w) x [y, y + h) that each pixel covers.
static void mask_rect(Canvas *c, double x, double y, double w, double h) {
  int px0 = clampi(floor(x), 0, c->w), px1 = clampi(ceil(x + w), 0, c->w);
  int py0 = clampi(floor(y), 0, c->h), py1 = clampi(ceil(y + h), 0, c->h);
  for (int py = py0; py < py1; py++) {
    double cy = fmin(py + 1, y + h) - fmax(py, y);
    for (int px = px0; px < px1; px++) {
      double cx = fmin(px + 1, x + w) - fmax(px, x);
      float *m = &c->mask[(size_t)py * c->w + px];
      *m = fminf(1, *m + (float)(cx * cy));
    }
  }
  touch(c, px0, py0, px1, py1);
}

// Covers the pixels whose centres are within half of width of the segment,
// with a one-pixel ramp at the edge; a pixel keeps the most any segment gives.
static void mask_segment(Canvas *c, double x1, double y1, double x2, double y2, double width) {
  double r = width / 2, dx = x2 - x1, dy = y2 - y1, len2 = dx * dx + dy * dy;
  int px0 = clampi(floor(fmin(x1, x2) - r - 1), 0, c->w), px1 = clampi(ceil(fmax(x1, x2) + r + 1), 0, c->w);
  int py0 = clampi(floor(fmin(y1, y2) - r - 1), 0, c->h), py1 = clampi(ceil(fmax(y1, y2) + r + 1), 0, c->h);
  for (int py = py0; py < py1; py++)
    for (int px = px0; px < px1; px++) {
      double qx = px + 0.5 - x1, qy = py + 0.5 - y1;
      double t = len2 > 0 ? fmax(0, fmin(1, (qx * dx + qy * dy) / len2)) : 0;
      double d = hypot(qx - t * dx, qy - t * dy);
      float cover = (float)fmax(0, fmin(1, r + 0.5 - d));
      float *m = &c->mask[(size_t)py * c->w + px];
      if (cover > *m) *m = cover;
    }
  touch(c, px0, py0, px1, py1);
}

// Blends color into the pixels by the mask, and clears it.
static void paint(Canvas *c, uint32_t color) {
  const double rgb[3] = {(color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF};
  for (int y = c->y0; y < c->y1; y++)
    for (int x = c->x0; x < c->x1; x++) {
      float *m = &c->mask[(size_t)y * c->w + x];
      if (*m <= 0) continue;
      uint8_t *p = &c->rgb[((size_t)y * c->w + x) * 3];
      for (int k = 0; k < 3; k++) p[k] = (uint8_t)lround(p[k] + (rgb[k] - p[k]) * *m);
      *m = 0;
    }
  c->x0 = c->w, c->y0 = c->h, c->x1 = c->y1 = 0;
}

// ---- the drawing calls

void canvas_fill_rect(Canvas *c, double x, double y, double w, double h, uint32_t color) {
  if (c->svg) {
    char col[8];
    svg_color(col, color);
    fprintf(c->svg, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='%s'/>\n", x, y, w, h, col);
    return;
  }
  mask_rect(c, x, y, w, h);
  paint(c, color);
}

void canvas_stroke_rect(Canvas *c, double x, double y, double w, double h, uint32_t color) {
  if (c->svg) {
    char col[8];
    svg_color(col, color);
    fprintf(c->svg, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='none' stroke='%s'/>\n", x, y, w, h, col);
    return;
  }
  // as SVG strokes it: one pixel centred on the outline
  mask_rect(c, x - 0.5, y - 0.5, w + 1, 1);
  mask_rect(c, x - 0.5, y + h - 0.5, w + 1, 1);
  mask_rect(c, x - 0.5, y + 0.5, 1, h - 1);
  mask_rect(c, x + w - 0.5, y + 0.5, 1, h - 1);
  paint(c, color);
}

void canvas_line(Canvas *c, double x1, double y1, double x2, double y2, double width, uint32_t color) {
  if (c->svg) {
    char col[8];
    svg_color(col, color);
    fprintf(c->svg, "<line x1='%.1f' x2='%.1f' y1='%.1f' y2='%.1f' stroke='%s' stroke-width='%g'/>\n", x1, x2, y1, y2,
            col, width);
    return;
  }
  mask_segment(c, x1, y1, x2, y2, width);
  paint(c, color);
}

void canvas_polyline(Canvas *c, const double *xy, int n, double width, uint32_t color) {
  if (n < 2) return;
  if (c->svg) {
    char col[8];
    svg_color(col, color);
    fprintf(c->svg, "<polyline fill='none' stroke-width='%g' points='", width);
    for (int i = 0; i < n; i++) fprintf(c->svg, "%s%.1f,%.1f", i ? " " : "", xy[2 * i], xy[2 * i + 1]);
    fprintf(c->svg, "' stroke='%s'/>\n", col);
    return;
  }
  for (int i = 0; i + 1 < n; i++) mask_segment(c, xy[2 * i], xy[2 * i + 1], xy[2 * i + 2], xy[2 * i + 3], width);
  paint(c, color);
}

void canvas_disc(Canvas *c, double cx, double cy, double r, uint32_t color) {
  if (c->svg) {
    char col[8];
    svg_color(col, color);
    fprintf(c->svg, "<circle cx='%.1f' cy='%.1f' r='%g' fill='%s'/>\n", cx, cy, r, col);
    return;
  }
  mask_segment(c, cx, cy, cx, cy, 2 * r);
  paint(c, color);
}

// The raster font's cell (one of a glyph's 5 x 7 squares) at a font size, so
// that capitals are about 0.73 of the size tall, as a sans-serif's are.
static double cell_of(double size) { return size * 0.105; }

void canvas_text(Canvas *c, double x, double y, double size, TextAnchor anchor, const char *text, uint32_t color) {
  if (c->svg) {
    char col[8];
    svg_color(col, color);
    static const char *const anchors[] = {"start", "middle", "end"};
    fprintf(c->svg, "<text x='%.1f' y='%.1f' font-size='%g'", x, y, size);
    if (anchor != ANCHOR_START) fprintf(c->svg, " text-anchor='%s'", anchors[anchor]);
    if ((color & 0xFFFFFF) != 0) fprintf(c->svg, " fill='%s'", col);
    fputc('>', c->svg);
    for (const char *p = text; *p; p++)   // escaped for XML; control bytes left out
      if (*p == '<') fputs("&lt;", c->svg);
      else if (*p == '&') fputs("&amp;", c->svg);
      else if (*p == '\'') fputs("&apos;", c->svg);
      else if ((unsigned char)*p >= 0x20) fputc(*p, c->svg);
    fputs("</text>\n", c->svg);
    return;
  }
  double cell = cell_of(size), advance = 6 * cell, width = strlen(text) * advance - cell;
  if (anchor == ANCHOR_MIDDLE) x -= width / 2;
  else if (anchor == ANCHOR_END) x -= width;
  for (const unsigned char *p = (const unsigned char *)text; *p; p++, x += advance) {
    const uint8_t *g = font_glyph(*p);
    static const uint8_t box[7] = {0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F};
    if (!g) g = box;
    // letters with a descender go below the baseline
    double top = y - (7 - (strchr("gpqy", *p) ? 2 : strchr(",;", *p) ? 1 : 0)) * cell;
    for (int row = 0; row < 7; row++)
      for (int col = 0; col < 5; col++)
        if (g[row] >> (4 - col) & 1) mask_rect(c, x + col * cell, top + row * cell, cell, cell);
  }
  paint(c, color);
}

int canvas_finish(Canvas *c, FILE *f) {
  int rc = 0;
  if (c->svg) fputs("</svg>\n", c->svg);
  else rc = png_write(f, c->rgb, c->w, c->h);
  free(c->rgb);
  free(c->mask);
  free(c);
  return rc;
}
