// plot.c: `smelt plot DIR -o curves.svg|.png`, the curves of a training
// run's --log-dir (DIR/scalars.csv, written by the trainer) drawn as an SVG
// or a PNG.
//
// Two panels over the step: the training loss per step with the evaluation
// loss at the steps that have one, and below them the evaluation accuracy
// (or, for a run that never evaluated, the learning rate). Empty cells are
// values the run does not have at that step; a column without any is left
// out. The file is written atomically, like every other smelt output; -o
// names an SVG or a PNG (tools/canvas.c draws both).
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "canvas.h"
#include "tensorfile.h"
#include "tools.h"
#include "util.h"

enum { C_STEP, C_LOSS, C_LR, C_EVAL_LOSS, C_EVAL_ACC, NCOLS };
static const char *const col_names[NCOLS] = {"step", "loss", "lr", "eval_loss", "eval_accuracy"};

typedef struct {
  double *v[NCOLS];   // per row; NAN where the cell is empty or the column absent
  size_t n, cap;
} Scalars;

static void scalars_free(Scalars *s) {
  for (int c = 0; c < NCOLS; c++) free(s->v[c]);
}

// The cells of one CSV line (no quoting: the trainer writes numbers only).
static int split_cells(char *line, char **cells, int max) {
  int n = 0;
  for (char *p = line; n < max;) {
    cells[n++] = p;
    char *comma = strchr(p, ',');
    if (!comma) break;
    *comma = 0;
    p = comma + 1;
  }
  return n;
}

// Reads path into s; 0, or 1 with a message.
static int read_scalars(const char *path, Scalars *s) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "smelt: error: cannot read '%s': %s\n", path, strerror(errno));
    return 1;
  }
  char line[4096], *cells[64];
  int where[NCOLS];   // the CSV column of each of ours, or -1
  if (!fgets(line, sizeof line, f)) {
    fprintf(stderr, "smelt: error: '%s' is empty; a --log-dir run writes a header line first\n", path);
    fclose(f);
    return 1;
  }
  line[strcspn(line, "\r\n")] = 0;
  int ncells = split_cells(line, cells, 64);
  for (int c = 0; c < NCOLS; c++) {
    where[c] = -1;
    for (int k = 0; k < ncells; k++)
      if (!strcmp(cells[k], col_names[c])) where[c] = k;
  }
  if (where[C_STEP] < 0 || where[C_LOSS] < 0) {
    fprintf(stderr, "smelt: error: '%s' has no step and loss columns; it is not a --log-dir scalars.csv\n", path);
    fclose(f);
    return 1;
  }
  int rc = 0;
  for (size_t row = 2; fgets(line, sizeof line, f); row++) {
    line[strcspn(line, "\r\n")] = 0;
    if (!line[0]) continue;
    ncells = split_cells(line, cells, 64);
    if (s->n == s->cap) {
      s->cap = s->cap ? 2 * s->cap : 256;
      for (int c = 0; c < NCOLS; c++) s->v[c] = realloc(s->v[c], s->cap * sizeof **s->v);
    }
    for (int c = 0; c < NCOLS; c++) {
      const char *cell = where[c] >= 0 && where[c] < ncells ? cells[where[c]] : "";
      char *end;
      double x = strtod(cell, &end);
      if (!cell[0]) x = NAN;
      else if (*end || !isfinite(x)) {
        fprintf(stderr, "smelt: error: %s:%zu: the %s '%s' is not a finite number\n", path, row, col_names[c], cell);
        rc = 1;
        break;
      }
      s->v[c][s->n] = c == C_EVAL_ACC ? 100 * x : x;   // the file has a fraction
    }
    if (rc) break;
    if (isnan(s->v[C_STEP][s->n])) {
      fprintf(stderr, "smelt: error: %s:%zu: a row without a step\n", path, row);
      rc = 1;
      break;
    }
    s->n++;
  }
  fclose(f);
  if (!rc && s->n == 0) {
    fprintf(stderr, "smelt: error: '%s' has no rows yet: the run has not finished a step\n", path);
    rc = 1;
  }
  return rc;
}

// ---- drawing

typedef struct {
  double x0, x1, y0, y1;   // data range
  double left, top, width, height;   // pixels
} Panel;

static double px(const Panel *p, double x) { return p->left + (x - p->x0) / (p->x1 - p->x0) * p->width; }
static double py(const Panel *p, double y) { return p->top + p->height - (y - p->y0) / (p->y1 - p->y0) * p->height; }

// A tick step of 1, 2 or 5 times a power of ten giving about n ticks over span.
static double tick_step(double span, int n) {
  double raw = span / n, p = pow(10, floor(log10(raw)));
  return raw / p < 1.5 ? p : raw / p < 3.5 ? 2 * p : raw / p < 7.5 ? 5 * p : 10 * p;
}

// The range of the values of a column (lo > hi when it has none).
static void range_of(const Scalars *s, int c, double *lo, double *hi) {
  *lo = INFINITY, *hi = -INFINITY;
  for (size_t i = 0; i < s->n; i++)
    if (!isnan(s->v[c][i])) {
      if (s->v[c][i] < *lo) *lo = s->v[c][i];
      if (s->v[c][i] > *hi) *hi = s->v[c][i];
    }
}

static void axes(Canvas *cv, const Panel *p, const char *title) {
  canvas_stroke_rect(cv, p->left, p->top, p->width, p->height, 0x888888);
  canvas_text(cv, p->left, p->top - 6, 13, ANCHOR_START, title, 0);
  double st = tick_step(p->y1 - p->y0, 5);
  char label[64];
  for (double y = ceil(p->y0 / st) * st; y <= p->y1 + st * 1e-9; y += st) {
    canvas_line(cv, p->left, py(p, y), p->left + p->width, py(p, y), 1, 0xeeeeee);
    snprintf(label, sizeof label, "%g", fabs(y) < st * 1e-6 ? 0 : y);
    canvas_text(cv, p->left - 4, py(p, y) + 4, 11, ANCHOR_END, label, 0);
  }
  double sx = tick_step(p->x1 - p->x0, 8);
  if (sx < 1) sx = 1;   // steps are whole numbers
  for (double x = ceil(p->x0 / sx) * sx; x <= p->x1 + sx * 1e-9; x += sx) {
    snprintf(label, sizeof label, "%g", x);
    canvas_text(cv, px(p, x), p->top + p->height + 14, 11, ANCHOR_MIDDLE, label, 0);
  }
}

// Column c against the step: a line through the rows that have it, and a
// dot at each when dots is set (evaluations are few).
static void curve(Canvas *cv, const Panel *p, const Scalars *s, int c, uint32_t color, bool dots) {
  double *xy = xmalloc(2 * (s->n + 1) * sizeof *xy);
  int n = 0;
  for (size_t i = 0; i < s->n; i++)
    if (!isnan(s->v[c][i])) xy[2 * n] = px(p, s->v[C_STEP][i]), xy[2 * n + 1] = py(p, s->v[c][i]), n++;
  canvas_polyline(cv, xy, n, 1.5, color);
  for (int i = 0; dots && i < n; i++) canvas_disc(cv, xy[2 * i], xy[2 * i + 1], 3, color);
  free(xy);
}

static void legend(Canvas *cv, const Panel *p, int slot, uint32_t color, const char *what) {
  double x = p->left + p->width - 150, y = p->top + 14 + 16 * slot;
  canvas_fill_rect(cv, x, y - 4, 12, 3, color);
  canvas_text(cv, x + 18, y, 12, ANCHOR_START, what, 0);
}

// The panel over the steps for the columns a and b (b < 0: none).
static Panel panel_for(const Scalars *s, int a, int b, double top) {
  Panel p = {.left = 70, .top = top, .width = 690, .height = 180};
  range_of(s, C_STEP, &p.x0, &p.x1);
  double lo, hi, lo2, hi2;
  range_of(s, a, &lo, &hi);
  if (b >= 0) {
    range_of(s, b, &lo2, &hi2);
    if (lo2 < lo) lo = lo2;
    if (hi2 > hi) hi = hi2;
  }
  double pad = hi > lo ? 0.05 * (hi - lo) : fabs(hi) > 0 ? 0.05 * fabs(hi) : 1;
  p.y0 = lo - pad, p.y1 = hi + pad;
  if (p.x1 <= p.x0) p.x1 = p.x0 + 1;
  return p;
}

static bool has(const Scalars *s, int c) {
  double lo, hi;
  range_of(s, c, &lo, &hi);
  return lo <= hi;
}

enum { WIDTH = 800, HEIGHT = 520 };
enum { BLUE = 0x1f77b4, RED = 0xd62728, GREEN = 0x2ca02c, PURPLE = 0x9467bd };

static void draw(Canvas *cv, const Scalars *s, const char *title) {
  canvas_text(cv, 70, 22, 15, ANCHOR_START, title, 0);
  bool eval_loss = has(s, C_EVAL_LOSS);
  Panel top = panel_for(s, C_LOSS, eval_loss ? C_EVAL_LOSS : -1, 50);
  axes(cv, &top, "loss");
  curve(cv, &top, s, C_LOSS, BLUE, false);
  legend(cv, &top, 0, BLUE, "training loss");
  if (eval_loss) {
    curve(cv, &top, s, C_EVAL_LOSS, RED, true);
    legend(cv, &top, 1, RED, "evaluation loss");
  }
  int low = has(s, C_EVAL_ACC) ? C_EVAL_ACC : has(s, C_LR) ? C_LR : -1;
  if (low >= 0) {
    Panel bottom = panel_for(s, low, -1, 290);
    axes(cv, &bottom, low == C_EVAL_ACC ? "evaluation accuracy (%)" : "learning rate");
    curve(cv, &bottom, s, low, low == C_EVAL_ACC ? GREEN : PURPLE, low == C_EVAL_ACC);
  }
  canvas_text(cv, 415, 512, 12, ANCHOR_MIDDLE, "step", 0);
}

int plot_main(const char *dir, const char *output) {
  size_t len = strlen(output);
  bool png = len >= 4 && !strcmp(output + len - 4, ".png");
  if (!png && (len < 4 || strcmp(output + len - 4, ".svg"))) {
    fprintf(stderr, "smelt: error: plot writes SVG or PNG: -o takes a .svg or a .png file, not '%s'\n", output);
    return 2;
  }
  struct stat st;
  char path[4200];
  bool folder = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
  snprintf(path, sizeof path, folder ? "%s/scalars.csv" : "%s", dir);
  Scalars s = {0};
  int rc = read_scalars(path, &s);
  if (!rc) {
    char err[512], *tmp = NULL;
    FILE *f = atomic_open(output, &tmp, err, sizeof err);
    if (!f) rc = 1, fprintf(stderr, "smelt: error: %s\n", err);
    else {
      Canvas *cv = png ? canvas_raster(WIDTH, HEIGHT, 0xffffff) : canvas_svg(f, WIDTH, HEIGHT, 0xffffff);
      draw(cv, &s, dir);
      bool ok = canvas_finish(cv, f) == 0;
      if (atomic_commit(f, tmp, output, ok && !ferror(f), err, sizeof err)) rc = 1, fprintf(stderr, "smelt: error: %s\n", err);
      else printf("%s: %zu steps from %s\n", output, s.n, path);
    }
  }
  scalars_free(&s);
  return rc;
}
