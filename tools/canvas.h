// canvas.h: the few drawing calls of `smelt plot`, on two surfaces: SVG text
// written as it is drawn, or an RGB raster (anti-aliased, with a built-in
// 5x7 font) that is encoded as a PNG at the end. Coordinates are pixels
// from the top left; colours are 0xRRGGBB.
#ifndef SMELT_CANVAS_H
#define SMELT_CANVAS_H

#include <stdint.h>
#include <stdio.h>

typedef struct Canvas Canvas;

typedef enum { ANCHOR_START, ANCHOR_MIDDLE, ANCHOR_END } TextAnchor;

// An SVG of w x h pixels written to f as it is drawn, or a raster of w x h
// pixels kept in memory; both start filled with background.
Canvas *canvas_svg(FILE *f, int w, int h, uint32_t background);
Canvas *canvas_raster(int w, int h, uint32_t background);

void canvas_fill_rect(Canvas *c, double x, double y, double w, double h, uint32_t color);
// A one-pixel outline of the rectangle.
void canvas_stroke_rect(Canvas *c, double x, double y, double w, double h, uint32_t color);
void canvas_line(Canvas *c, double x1, double y1, double x2, double y2, double width, uint32_t color);
// A line through n points (xy holds x0, y0, x1, y1, ...); nothing for n < 2.
void canvas_polyline(Canvas *c, const double *xy, int n, double width, uint32_t color);
void canvas_disc(Canvas *c, double cx, double cy, double r, uint32_t color);
// Text with its baseline at y, anchored at x; size is the font size in
// pixels. The raster draws printable ASCII and a box for any other byte.
void canvas_text(Canvas *c, double x, double y, double size, TextAnchor anchor, const char *text, uint32_t color);

// Ends the drawing and frees c: the SVG's closing tag, or the raster as a
// PNG written to f. 0, or -1 when writing failed.
int canvas_finish(Canvas *c, FILE *f);

// A PNG of w x h RGB pixels (3 bytes each, rows top to bottom) written to f,
// compressed with deflate (fixed Huffman codes). 0, or -1 on a write error.
int png_write(FILE *f, const uint8_t *rgb, int w, int h);

// The 5x7 glyph of printable ASCII byte ch (32 to 126): 7 rows from the top,
// bit 4 of each the leftmost column; NULL for any other byte.
const uint8_t *font_glyph(unsigned char ch);

#endif
