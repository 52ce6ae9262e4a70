// onnx_ops_rnn.c: the ONNX recurrent layers RNN, GRU and LSTM. Shapes are
// static, so each direction becomes a `for` loop over the time steps, which
// the compiler unrolls: the input's product with W for every step first (one
// matmul), then per step the recurrence with R, the new states collected in a
// list and stacked into Y. sequence_lens, when given, masks the steps past
// each sequence's length: its state stays and its Y rows are 0 (as
// onnxruntime), and a length outside [0, seq_length] stops the run (one_hot).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_importer.h"

enum { K_RNN, K_GRU, K_LSTM };

typedef struct {
  Importer *im;
  const Onnx__NodeProto *n;
  int kind, gates, nact;          // gates: 1, 3, 4; nact: activations per direction
  int64_t T, B, I, H, D;
  bool batch_first;               // layout 1: X [B, T, I], Y [B, T, D, H], Y_h [B, D, H]
  bool lbr, input_forget, clip_on;
  double clip;
  const char *act[6];             // the activations' functions, nact per direction
  const char *x, *w, *r, *b, *h0, *c0, *p, *lens_hot;   // model-file names (x already [T, B, I])
  const char *tag;                // "", or the direction's ("fw_", "bw_") in its parts' names
} Rnn;

// A new `let` name for a part of the translation, after the direction's tag.
static const char *part(Rnn *s, const char *what, int ndim, const int64_t *dims) {
  char tag[128];
  snprintf(tag, sizeof tag, "%s%s", s->tag, what);
  return im_temp_value(s->im, s->n, tag, V_LET, DT_F32, ndim, dims)->ident;
}

// activation k of direction d applied to e, clipped first when clip is set.
static const char *act(Rnn *s, int d, int k, const char *e) {
  static char buf[8][1024];
  static int which;
  char *b = buf[which++ & 7];
  if (s->clip_on)
    snprintf(b, 1024, "%s(minimum(maximum(%s, %.9g), %.9g))", s->act[d * s->nact + k], e, -s->clip, s->clip);
  else snprintf(b, 1024, "%s(%s)", s->act[d * s->nact + k], e);
  return b;
}

// The activations attribute (Relu, Tanh and Sigmoid) into s->act, else the
// op's defaults.
static bool activations(Rnn *s) {
  static const char *const dflt[3][3] = {{"tanh"}, {"sigmoid", "tanh"}, {"sigmoid", "tanh", "tanh"}};
  const Onnx__AttributeProto *a = onnx_attr(s->n, "activations");
  for (int i = 0; i < s->nact * s->D; i++) s->act[i] = dflt[s->kind][i % s->nact];
  if (!a || !a->n_strings) return true;
  if ((int64_t)a->n_strings != s->nact * s->D) {
    im_fail(s->im, "node '%s' (%s): %zu activations where %d per direction are needed", im_node(s->n), s->n->op_type,
            a->n_strings, s->nact);
    return false;
  }
  static const char *const onnx[] = {"Relu", "Tanh", "Sigmoid"}, *const fn[] = {"relu", "tanh", "sigmoid"};
  for (size_t i = 0; i < a->n_strings; i++) {
    const ProtobufCBinaryData *w = &a->strings[i];
    int k = 0;
    while (k < 3 && !(w->len == strlen(onnx[k]) && !memcmp(w->data, onnx[k], w->len))) k++;
    if (k == 3) {
      im_fail(s->im, "node '%s' (%s): activation '%.*s' is not supported (the importer takes Relu, Tanh and Sigmoid)",
              im_node(s->n), s->n->op_type, (int)w->len, (const char *)w->data);
      return false;
    }
    s->act[i] = fn[k];
  }
  return true;
}

// Input i as a tensor of the given shape (optional inputs may be absent:
// NULL without a message); a one-element constant becomes a fill.
static bool input(Rnn *s, size_t i, const char *what, int ndim, const int64_t *dims, bool optional, const char **id) {
  *id = NULL;
  if (optional && (i >= s->n->n_input || !s->n->input[i][0])) return true;
  Value *v = im_input(s->im, s->n, i);
  if (!v || !im_is_tensor(s->im, s->n, v)) return false;
  bool ok = v->ndim == ndim && v->dtype == DT_F32;
  for (int k = 0; k < ndim && ok; k++) ok = v->dims[k] == dims[k];
  if (!ok) {
    im_fail(s->im, "node '%s' (%s): %s '%s' is %s %s where float32 %s is needed", im_node(s->n), s->n->op_type, what,
            v->onnx, onnx_dtype_word(v->dtype), onnx_shape_str(v->dims, v->ndim), onnx_shape_str(dims, ndim));
    return false;
  }
  if (v->kind != V_SCALAR) {
    *id = v->ident;
    return true;
  }
  char dj[256];
  onnx_join_ints(dj, sizeof dj, dims, ndim);
  double x = v->scalar;
  *id = part(s, what, ndim, dims);
  im_out(s->im, "    let %s = fill(%.9g, %s)   # %s\n", *id, x, dj, onnx_shape_str(dims, ndim));
  return true;
}

// sequence_lens (input 4): nothing to do when absent or a constant of all
// seq_length; else lens_hot = one_hot(lens, T + 1), whose columns past t
// say which sequences are still running at step t.
static bool seq_lens(Rnn *s) {
  if (s->n->n_input <= 4 || !s->n->input[4][0]) return true;
  Value *v = im_input(s->im, s->n, 4);
  if (!v) return false;
  if (v->ndim != 1 || v->dims[0] != s->B || (v->dtype != DT_I32 && v->dtype != DT_I64)) {
    im_fail(s->im, "node '%s' (%s): sequence_lens '%s' is %s %s, not int32 [%lld]", im_node(s->n), s->n->op_type,
            v->onnx, onnx_dtype_word(v->dtype), onnx_shape_str(v->dims, v->ndim), (long long)s->B);
    return false;
  }
  bool full = v->kind == V_INTS;
  for (int i = 0; full && i < v->nints; i++) full = v->ints[i] == s->T;
  if (full) return true;
  if (!im_is_tensor(s->im, s->n, v)) return false;
  const char *id = v->ident;
  int64_t d[2] = {s->B, s->T + 1};
  s->lens_hot = part(s, "lens", 2, d);
  im_out(s->im, "    let %s = one_hot(%s, %lld)   # %s; a length outside [0, %lld] stops the run\n", s->lens_hot, id,
         (long long)s->T + 1, onnx_shape_str(d, 2), (long long)s->T);
  return true;
}

// One step's gates from g (x W + Wb, and for RNN and LSTM + rec) and rec
// (h R + Rb) as `let`s; the new hidden state's expression into h_new (and
// the LSTM cell's into c_new).
static void cell(Rnn *s, int d, const char *g, const char *rec, const char *h, const char *c, const char *rd,
                 const char *rb, char *h_new, char *c_new, size_t cap) {
  long long H = (long long)s->H;
  char e[1024];
  int64_t bh[2] = {s->B, s->H};
  if (s->kind == K_RNN) {
    snprintf(h_new, cap, "%s", act(s, d, 0, g));
    return;
  }
  if (s->kind == K_GRU) {   // gates z, r, h
    const char *z = part(s, "z", 2, bh), *r = part(s, "r", 2, bh);
    snprintf(e, sizeof e, "%s[:, 0:%lld] + %s[:, 0:%lld]", g, H, rec, H);
    im_out(s->im, "        let %s = %s\n", z, act(s, d, 0, e));
    snprintf(e, sizeof e, "%s[:, %lld:%lld] + %s[:, %lld:%lld]", g, H, 2 * H, rec, H, 2 * H);
    im_out(s->im, "        let %s = %s\n", r, act(s, d, 0, e));
    const char *hh = part(s, "hh", 2, bh);
    char bias[256] = "";
    if (rb) snprintf(bias, sizeof bias, " + %s[%lld:%lld]", rb, 2 * H, 3 * H);
    if (s->lbr)   // r * (h Rh + Rbh): that part of rec
      snprintf(e, sizeof e, "%s[:, %lld:%lld] + %s * %s[:, %lld:%lld]", g, 2 * H, 3 * H, r, rec, 2 * H, 3 * H);
    else
      snprintf(e, sizeof e, "%s[:, %lld:%lld] + matmul(%s * %s, %s[%lld:%lld], tb = true)%s", g, 2 * H, 3 * H, r, h, rd,
               2 * H, 3 * H, bias);
    im_out(s->im, "        let %s = %s\n", hh, act(s, d, 1, e));
    snprintf(h_new, cap, "(1.0 - %s) * %s + %s * %s", z, hh, z, h);
    return;
  }
  // LSTM: gates i, o, f, c; peepholes i, o, f
  const char *i = part(s, "i", 2, bh), *f = part(s, "f", 2, bh), *o = part(s, "o", 2, bh), *cn = part(s, "c_new", 2, bh);
  char peep[256] = "";
  if (s->p) snprintf(peep, sizeof peep, " + %s[%d, 0:%lld] * %s", s->p, d, H, c);
  snprintf(e, sizeof e, "%s[:, 0:%lld]%s", g, H, peep);
  im_out(s->im, "        let %s = %s\n", i, act(s, d, 0, e));
  if (s->input_forget) im_out(s->im, "        let %s = 1.0 - %s\n", f, i);
  else {
    if (s->p) snprintf(peep, sizeof peep, " + %s[%d, %lld:%lld] * %s", s->p, d, 2 * H, 3 * H, c);
    snprintf(e, sizeof e, "%s[:, %lld:%lld]%s", g, 2 * H, 3 * H, peep);
    im_out(s->im, "        let %s = %s\n", f, act(s, d, 0, e));
  }
  snprintf(e, sizeof e, "%s[:, %lld:%lld]", g, 3 * H, 4 * H);
  im_out(s->im, "        let %s = %s * %s + %s * %s\n", cn, f, c, i, act(s, d, 1, e));
  if (s->p) snprintf(peep, sizeof peep, " + %s[%d, %lld:%lld] * %s", s->p, d, H, 2 * H, cn);
  snprintf(e, sizeof e, "%s[:, %lld:%lld]%s", g, H, 2 * H, peep);
  im_out(s->im, "        let %s = %s\n", o, act(s, d, 0, e));
  snprintf(h_new, cap, "%s * %s", o, act(s, d, 2, cn));
  snprintf(c_new, cap, "%s", cn);
}

// One direction: its loop; the names of its list of states (in time order
// once reversed by the caller) and its last states into hs, h, c.
static void direction(Rnn *s, int d, bool reverse, const char **hs, const char **h, const char **c) {
  long long T = (long long)s->T, B = (long long)s->B, G = s->gates * (long long)s->H;
  int64_t xd[3] = {s->T, s->B, G}, bh[2] = {s->B, s->H}, bg[2] = {s->B, G};
  const char *xw = part(s, "xw", 3, xd), *rd = part(s, "r_dir", 2, bg), *rb = NULL;
  im_out(s->im, "    let %s = reshape(matmul(reshape(%s, %lld, %lld), %s[%d], tb = true), %lld, %lld, %lld)", xw, s->x,
         T * B, (long long)s->I, s->w, d, T, B, G);
  if (s->b) {
    rb = part(s, "rb", 1, &xd[2]);
    im_out(s->im, " + %s[%d, 0:%lld]   # %s\n", s->b, d, G, onnx_shape_str(xd, 3));
    im_out(s->im, "    let %s = %s[%d, %lld:%lld]   # [%lld]\n", rb, s->b, d, G, 2 * G, G);
  } else im_out(s->im, "   # %s\n", onnx_shape_str(xd, 3));
  im_out(s->im, "    let %s = %s[%d]   # [%lld, %lld]\n", rd, s->r, d, G, (long long)s->H);
  const char *layout_d = s->batch_first ? ":, " : "";
  *h = part(s, "h", 2, bh);
  if (s->h0) im_out(s->im, "    let %s = %s[%s%d]   # %s\n", *h, s->h0, layout_d, d, onnx_shape_str(bh, 2));
  else im_out(s->im, "    let %s = fill(0.0, %lld, %lld)   # %s\n", *h, B, (long long)s->H, onnx_shape_str(bh, 2));
  *c = NULL;
  if (s->kind == K_LSTM) {
    *c = part(s, "c", 2, bh);
    if (s->c0) im_out(s->im, "    let %s = %s[%s%d]   # %s\n", *c, s->c0, layout_d, d, onnx_shape_str(bh, 2));
    else im_out(s->im, "    let %s = fill(0.0, %lld, %lld)   # %s\n", *c, B, (long long)s->H, onnx_shape_str(bh, 2));
  }
  *hs = part(s, "hs", 0, NULL);
  const char *t = part(s, "t", 0, NULL), *g = part(s, "g", 2, bg), *rec = part(s, "rec", 2, bg);
  char step[128];
  if (reverse) snprintf(step, sizeof step, "%lld - %s", T - 1, t);
  else snprintf(step, sizeof step, "%s", t);
  im_out(s->im, "    let %s = []\n    for %s in 0..%lld {\n", *hs, t, T);
  // the product with R: whole for the additive gates, GRU's h gate apart
  im_out(s->im, "        let %s = matmul(%s, %s, tb = true)%s%s\n", rec, *h, rd, rb ? " + " : "", rb ? rb : "");
  im_out(s->im, "        let %s = %s[%s]%s%s\n", g, xw, step, s->kind == K_GRU ? "" : " + ", s->kind == K_GRU ? "" : rec);
  char hn[2048], cn[2048] = "";
  cell(s, d, g, rec, *h, *c, rd, rb, hn, cn, sizeof hn);
  if (s->lens_hot) {   // running: the length is past this step
    const char *m = part(s, "running", 2, (int64_t[]){s->B, 1}), *hv = part(s, "h_step", 2, bh);
    im_out(s->im, "        let %s = reshape(sum(%s[:, %s + 1:], axis = -1), %lld, 1) > 0.0\n", m, s->lens_hot, step, B);
    im_out(s->im, "        let %s = %s\n", hv, hn);
    im_out(s->im, "        %s = %s + [where(%s, %s, 0.0)]\n", *hs, *hs, m, hv);
    im_out(s->im, "        %s = where(%s, %s, %s)\n", *h, m, hv, *h);
    if (*c) im_out(s->im, "        %s = where(%s, %s, %s)\n", *c, m, cn, *c);
  } else {
    im_out(s->im, "        %s = %s\n", *h, hn);
    if (*c) im_out(s->im, "        %s = %s\n", *c, cn);
    im_out(s->im, "        %s = %s + [%s]\n", *hs, *hs, *h);
  }
  im_out(s->im, "    }\n");
}

// The outputs' values, made first so that they keep their ONNX names: Y
// [T, D, B, H], Y_h and Y_c [D, B, H]; batch first (layout 1): [B, T, D, H],
// [B, D, H]. Their indices in im->vals into out (-1: not asked for).
static void output_values(Rnn *s, int *out) {
  int64_t yd[4] = {s->T, s->D, s->B, s->H}, hd[3] = {s->D, s->B, s->H};
  if (s->batch_first) {
    int64_t y1[4] = {s->B, s->T, s->D, s->H}, h1[3] = {s->B, s->D, s->H};
    memcpy(yd, y1, sizeof yd);
    memcpy(hd, h1, sizeof hd);
  }
  for (int o = 0; o < 3; o++) {
    Value *v = o == 2 && s->kind != K_LSTM ? NULL : im_result_at(s->im, s->n, (size_t)o, DT_F32, o ? 3 : 4, o ? hd : yd);
    out[o] = v ? s->im->nvals - 1 : -1;   // the value just added
  }
}

// Y from the lists (a reverse direction's in time order), Y_h and Y_c from
// the last states.
static void outputs(Rnn *s, const int *out, const char *const *hs, const bool *rev, const char *const *h,
                    const char *const *c) {
  int ax = s->batch_first ? 1 : 0;
  if (out[0] >= 0) {
    char e[1024];
    int k = snprintf(e, sizeof e, "stack(");
    for (int d = 0; d < s->D; d++)
      k += snprintf(e + k, sizeof e - (size_t)k, "%sstack(%s%s, axis = %d)", d ? ", " : "", hs[d], rev[d] ? "[::-1]" : "", ax);
    snprintf(e + k, sizeof e - (size_t)k, ", axis = %d)", ax + 1);
    im_emit(s->im, s->im->vals[out[0]], "%s", e);
  }
  for (int o = 1; o < 3; o++) {
    const char *const *st = o == 1 ? h : c;
    if (out[o] < 0) continue;
    if (s->D == 2) im_emit(s->im, s->im->vals[out[o]], "stack(%s, %s, axis = %d)", st[0], st[1], ax);
    else im_emit(s->im, s->im->vals[out[o]], "stack(%s, axis = %d)", st[0], ax);
  }
}

// The direction attribute: 1 forward, 2 bidirectional, -1 reverse; 0 with a message.
static int direction_attr(Rnn *s) {
  const Onnx__AttributeProto *a = onnx_attr(s->n, "direction");
  if (!a || !a->has_s) return 1;
  static const char *const words[] = {"forward", "bidirectional", "reverse"};
  static const int codes[] = {1, 2, -1};
  for (int i = 0; i < 3; i++)
    if (a->s.len == strlen(words[i]) && !memcmp(a->s.data, words[i], a->s.len)) return codes[i];
  im_fail(s->im, "node '%s' (%s): direction '%.*s' is not forward, reverse or bidirectional", im_node(s->n),
          s->n->op_type, (int)a->s.len, (const char *)a->s.data);
  return 0;
}

// The attributes and the sizes from X and R.
static bool setup(Rnn *s) {
  Importer *im = s->im;
  const Onnx__NodeProto *n = s->n;
  if (im->opset < 7) {
    im_fail(im, "node '%s' (%s): opset %lld; the importer takes the op from opset 7", im_node(n), n->op_type,
            (long long)im->opset);
    return false;
  }
  int dir = direction_attr(s);
  if (!dir) return false;
  s->D = dir == 2 ? 2 : 1;
  s->batch_first = im->opset >= 14 && onnx_attr_i(n, "layout", 0) == 1;
  if (im->opset >= 14 && onnx_attr_i(n, "layout", 0) > 1) {
    im_fail(im, "node '%s' (%s): layout %lld is not 0 or 1", im_node(n), n->op_type, (long long)onnx_attr_i(n, "layout", 0));
    return false;
  }
  Value *x = im_input(im, n, 0), *r = x ? im_input(im, n, 2) : NULL;
  if (!r) return false;
  if (x->ndim != 3 || r->ndim != 3 || x->dtype != DT_F32 || x->kind == V_SCALAR) {
    im_fail(im, "node '%s' (%s): X %s %s and R %s; the importer takes a float32 X of rank 3 and R [num_directions, "
            "gates * hidden, hidden]", im_node(n), n->op_type, onnx_dtype_word(x->dtype), onnx_shape_str(x->dims, x->ndim),
            onnx_shape_str(r->dims, r->ndim));
    return false;
  }
  s->T = x->dims[s->batch_first ? 1 : 0];
  s->B = x->dims[s->batch_first ? 0 : 1];
  s->I = x->dims[2];
  s->H = onnx_attr_i(n, "hidden_size", r->dims[2]);
  s->x = x->ident;
  s->lbr = onnx_attr_i(n, "linear_before_reset", 0) != 0;
  s->input_forget = onnx_attr_i(n, "input_forget", 0) != 0;
  const Onnx__AttributeProto *ca = onnx_attr(n, "clip");
  s->clip_on = ca && ca->has_f;
  s->clip = s->clip_on ? ca->f : 0;
  if (s->clip_on && !(s->clip > 0)) {
    im_fail(im, "node '%s' (%s): clip %g is not positive", im_node(n), n->op_type, s->clip);
    return false;
  }
  if (s->T < 1 || s->B < 1 || s->H < 1) {
    im_fail(im, "node '%s' (%s): X %s with hidden_size %lld is empty", im_node(n), n->op_type,
            onnx_shape_str(x->dims, 3), (long long)s->H);
    return false;
  }
  return activations(s);
}

// The weights and optional inputs by their spec shapes.
static bool weights(Rnn *s) {
  int64_t G = s->gates * s->H, w[3] = {s->D, G, s->I}, r[3] = {s->D, G, s->H}, b[2] = {s->D, 2 * G};
  int64_t h0[3] = {s->D, s->B, s->H}, p[2] = {s->D, 3 * s->H};
  if (s->batch_first) h0[0] = s->B, h0[1] = s->D;
  if (!input(s, 1, "W", 3, w, false, &s->w) || !input(s, 2, "R", 3, r, false, &s->r) ||
      !input(s, 3, "B", 2, b, true, &s->b) || !input(s, 5, "initial_h", 3, h0, true, &s->h0))
    return false;
  if (s->kind == K_LSTM && (!input(s, 6, "initial_c", 3, h0, true, &s->c0) || !input(s, 7, "P", 2, p, true, &s->p)))
    return false;
  return seq_lens(s);
}

// arg: "rnn", "gru" or "lstm".
static void node_rnn(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  Rnn s = {.im = im, .n = n, .tag = ""};
  s.kind = !strcmp(arg, "rnn") ? K_RNN : !strcmp(arg, "gru") ? K_GRU : K_LSTM;
  s.gates = s.kind == K_RNN ? 1 : s.kind == K_GRU ? 3 : 4;
  s.nact = s.kind == K_RNN ? 1 : s.kind == K_GRU ? 2 : 3;
  if (!setup(&s)) return;
  int out[3];
  output_values(&s, out);
  if (im->failed) return;
  if (s.batch_first) {   // X [B, T, I] -> [T, B, I]
    int64_t d[3] = {s.T, s.B, s.I};
    const char *xt = part(&s, "x_seq", 3, d);
    im_out(im, "    let %s = permute(%s, 1, 0, 2)   # %s\n", xt, s.x, onnx_shape_str(d, 3));
    s.x = xt;
  }
  if (!weights(&s)) return;
  int dir = direction_attr(&s);
  const char *hs[2], *h[2], *c[2];
  bool rev[2];
  for (int d = 0; d < s.D; d++) {
    rev[d] = dir == -1 || d == 1;
    s.tag = s.D == 1 ? "" : d ? "bw_" : "fw_";
    direction(&s, d, rev[d], &hs[d], &h[d], &c[d]);
  }
  outputs(&s, out, hs, rev, h, c);
}

const OnnxOp onnx_rnn_ops[] = {
    {"RNN", node_rnn, "rnn"},
    {"GRU", node_rnn, "gru"},
    {"LSTM", node_rnn, "lstm"},
    {NULL, NULL, NULL},
};
