// diag.c: sources and diagnostics.
//
// A diagnostic names file:line:col, says what is wrong, then shows the source
// line with the whole span underlined:
//
//   model.smelt:3:11: error: unknown name 'relux'; did you mean 'relu'?
//       3 |   let h = relux(x)
//         |           ^~~~~
//
// Columns count characters (UTF-8 code points), not bytes. Bytes that are not
// printable text show as '?', so binary input cannot garble a terminal, and a
// very long line is shown as a window around the span.
#include "compiler.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINE_WINDOW 240   // show at most about this many bytes of a line

void diag_init(Diag *d, FILE *out) {
  memset(d, 0, sizeof *d);
  d->out = out ? out : stderr;
  d->max_errors = 20;
  d->color = diag_color_default(d->out);
}

void diag_free(Diag *d) {
  for (int i = 0; i < d->nfiles; i++) {
    free(d->files[i]->path);
    free(d->files[i]->text);
    free(d->files[i]->line_start);
    free(d->files[i]);
  }
  free(d->files);
  d->files = NULL;
  d->nfiles = 0;
}

bool diag_color_default(FILE *out) {
  const char *no = getenv("NO_COLOR");
  if (no && *no) return false;
  return isatty(fileno(out));
}

int diag_add_source(Diag *d, const char *path, char *text, int len) {
  Source *s = xcalloc(1, sizeof *s);
  s->path = xstrdup(path);
  s->text = text;
  s->len = len;
  int cap = 64;
  s->line_start = xmalloc(sizeof(int) * (size_t)cap);
  s->line_start[s->nlines++] = 0;
  for (int i = 0; i < len; i++) {
    if (text[i] != '\n') continue;
    if (s->nlines == cap) s->line_start = xrealloc(s->line_start, sizeof(int) * (size_t)(cap *= 2));
    s->line_start[s->nlines++] = i + 1;
  }
  d->files = xrealloc(d->files, sizeof *d->files * (size_t)(d->nfiles + 1));
  d->files[d->nfiles] = s;
  return d->nfiles++;
}

// Length in bytes of the well-formed UTF-8 sequence at p (at most n bytes
// available), or 0 when it is not one.
static int utf8_len(const unsigned char *p, int n) {
  int len = p[0] < 0x80 ? 1 : (p[0] & 0xE0) == 0xC0 ? 2 : (p[0] & 0xF0) == 0xE0 ? 3
          : (p[0] & 0xF8) == 0xF0 ? 4 : 0;
  if (len == 0 || len > n) return 0;
  if (len == 2 && p[0] < 0xC2) return 0;   // overlong
  for (int i = 1; i < len; i++)
    if ((p[i] & 0xC0) != 0x80) return 0;
  return len;
}

// Bytes of the character at p: a UTF-8 sequence, or one byte of anything else.
static int char_len(const char *p, int n) {
  int len = utf8_len((const unsigned char *)p, n);
  return len ? len : 1;
}

void diag_line_col(const Source *s, int offset, int *line, int *col) {
  if (offset > s->len) offset = s->len;
  int lo = 0, hi = s->nlines - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (s->line_start[mid] <= offset) lo = mid; else hi = mid - 1;
  }
  int c = 1;
  for (int i = s->line_start[lo]; i < offset; i += char_len(s->text + i, s->len - i)) c++;
  *line = lo + 1;
  *col = c;
}

static const char *paint(Diag *d, const char *code) { return d->color ? code : ""; }

// Writes bytes [from, to) of a line, replacing what is not printable text.
static void put_text(Diag *d, const Source *s, int from, int to) {
  for (int i = from; i < to;) {
    int len = utf8_len((const unsigned char *)s->text + i, s->len - i);
    unsigned char ch = (unsigned char)s->text[i];
    if (len == 1 && (ch == '\t' || (ch >= 0x20 && ch < 0x7F))) fputc(ch, d->out);
    else if (len > 1) fwrite(s->text + i, 1, (size_t)len, d->out);
    else fputc('?', d->out);
    i += len ? len : 1;
  }
}

// Writes the marker line: tabs where the source has tabs, so the marks line up.
static void put_marks(Diag *d, const Source *s, int from, int begin, int end) {
  int i = from;
  for (; i < begin; i += char_len(s->text + i, s->len - i)) fputc(s->text[i] == '\t' ? '\t' : ' ', d->out);
  fputs(paint(d, "\033[1;32m"), d->out);
  fputc('^', d->out);
  i += char_len(s->text + i, s->len - i);
  for (; i < end; i += char_len(s->text + i, s->len - i)) fputc('~', d->out);
  fputs(paint(d, "\033[0m"), d->out);
}

static void show_source(Diag *d, Span at) {
  const Source *s = d->files[at.file];
  int line, col;
  diag_line_col(s, at.begin, &line, &col);
  int ls = s->line_start[line - 1];
  int le = line < s->nlines ? s->line_start[line] - 1 : s->len;
  if (le > ls && s->text[le - 1] == '\r') le--;
  int begin = at.begin < le ? at.begin : le;
  int end = at.end < le ? at.end : le;
  if (end <= begin) end = begin + 1;   // at least one mark, even at end of line
  int from = ls, to = le;
  if (to - from > LINE_WINDOW) {   // a window around the span
    from = begin - LINE_WINDOW / 3 > ls ? begin - LINE_WINDOW / 3 : ls;
    while (from > ls && ((unsigned char)s->text[from] & 0xC0) == 0x80) from--;
    to = from + LINE_WINDOW < le ? from + LINE_WINDOW : le;
    while (to < le && ((unsigned char)s->text[to] & 0xC0) == 0x80) to++;
    if (end > to) end = to + 1;
  }
  const char *pre = from > ls ? "..." : "";
  fprintf(d->out, "%5d | %s", line, pre);
  put_text(d, s, from, to);
  fprintf(d->out, "%s\n      | %s", to < le ? "..." : "", from > ls ? "   " : "");
  put_marks(d, s, from, begin, end);
  fputc('\n', d->out);
}

static void report(Diag *d, const char *kind, const char *kind_color, Span at,
                   const char *fmt, va_list ap) {
  if (at.file >= 0 && at.file < d->nfiles) {
    int line, col;
    diag_line_col(d->files[at.file], at.begin, &line, &col);
    fprintf(d->out, "%s%s:%d:%d:%s ", paint(d, "\033[1m"), d->files[at.file]->path, line, col,
            paint(d, "\033[0m"));
  } else {
    fprintf(d->out, "%ssmelt:%s ", paint(d, "\033[1m"), paint(d, "\033[0m"));
  }
  fprintf(d->out, "%s%s:%s ", paint(d, kind_color), kind, paint(d, "\033[0m"));
  vfprintf(d->out, fmt, ap);
  fputc('\n', d->out);
  if (at.file >= 0 && at.file < d->nfiles) show_source(d, at);
}

void diag_verror(Diag *d, Span at, const char *fmt, va_list ap) {
  d->errors++;
  if (d->stopped) return;
  if (d->max_errors && d->errors > d->max_errors) {
    d->stopped = true;
    fprintf(d->out, "smelt: too many errors (%d); stopping here\n", d->max_errors);
    return;
  }
  report(d, "error", "\033[1;31m", at, fmt, ap);
}

void diag_error(Diag *d, Span at, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_verror(d, at, fmt, ap);
  va_end(ap);
}

void diag_note(Diag *d, Span at, const char *fmt, ...) {
  if (d->stopped) return;
  va_list ap;
  va_start(ap, fmt);
  report(d, "note", "\033[1;36m", at, fmt, ap);
  va_end(ap);
}

void diag_plain(Diag *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_verror(d, (Span){-1, 0, 0}, fmt, ap);
  va_end(ap);
}
