// onnx_ops_signal.c: the ONNX signal ops DFT, STFT, HannWindow,
// HammingWindow, BlackmanWindow and MelWeightMatrix. Lengths are static, so a
// DFT along an axis is one matmul with a constant matrix of cos/sin values
// computed in double precision here: the rows are the input's (sample,
// real/imaginary) pairs, the columns the output's (bin, real/imaginary)
// pairs. Zero padding and truncation to dft_length, onesided output and the
// inverse's 1/N are all folded into that matrix. The windows and the Mel
// matrix are constants computed here (onnx/reference/ops gives the formulas).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_importer.h"

// cos and sin of 2*pi*m/N, exact at the multiples of a quarter turn (so a
// bin whose true value is 0 does not pick up rounding from sin(pi)).
static void turn(int64_t m, int64_t N, double *c, double *s) {
  m %= N;
  if ((4 * m) % N == 0) {
    static const double qc[4] = {1, 0, -1, 0}, qs[4] = {0, 1, 0, -1};
    int q = (int)(4 * m / N);
    *c = qc[q];
    *s = qs[q];
    return;
  }
  double a = 2 * M_PI * (double)m / (double)N;
  *c = cos(a);
  *s = sin(a);
}

// The [L * cin, K * 2] matrix of a forward or inverse DFT of length N over
// L input samples (samples from N on are dropped, missing ones are zeros):
// row (t, c) is input sample t's real (c = 0) or imaginary part, column
// (k, d) output bin k's real or imaginary part.
static float *dft_matrix(int64_t L, int cin, int64_t N, int64_t K, bool inverse) {
  float *w = xcalloc((size_t)(L * cin * K * 2), sizeof *w);
  double scale = inverse ? 1.0 / (double)N : 1.0, sg = inverse ? 1 : -1;   // e^{-i theta} forward, e^{+i theta} inverse
  for (int64_t t = 0; t < L && t < N; t++)
    for (int64_t k = 0; k < K; k++) {
      double c, s;
      turn(k * t, N, &c, &s);
      s *= sg;
      float *re = w + (t * cin) * K * 2 + k * 2;   // from the real part
      re[0] = (float)(c * scale);
      re[1] = (float)(s * scale);
      if (cin == 2) {   // (a + ib)(c + is) = (ac - bs) + i(as + bc)
        float *im = re + K * 2;
        im[0] = (float)(-s * scale);
        im[1] = (float)(c * scale);
      }
    }
  return w;
}

// The [L * cin, N] matrix of an inverse real DFT (numpy's irfft) of length
// N from L one-sided bins: bins from N/2 + 1 on are dropped, missing ones
// are zeros; bins 1 .. (N-1)/2 count twice (their conjugate mirrors), the
// imaginary parts of bin 0 and of bin N/2 (N even) not at all.
static float *irfft_matrix(int64_t L, int cin, int64_t N) {
  float *w = xcalloc((size_t)(L * cin * N), sizeof *w);
  for (int64_t k = 0; k < L && k <= N / 2; k++) {
    double g = (k == 0 || 2 * k == N ? 1.0 : 2.0) / (double)N;
    for (int64_t t = 0; t < N; t++) {
      double c, s;
      turn(k * t, N, &c, &s);
      w[(k * cin) * N + t] = (float)(g * c);
      if (cin == 2) w[(k * cin + 1) * N + t] = (float)(-g * s);
    }
  }
  return w;
}

// A param named after n's first output and what, holding data (taken over).
static const char *param(Importer *im, const Onnx__NodeProto *n, const char *what, int nd, const int64_t *dims,
                         float *data) {
  char name[512];
  snprintf(name, sizeof name, "%s.%s", n->output[0], what);
  return im_add_param(im, name, nd, dims, data)->ident;
}

// The integer scalar of input i (dft_length, axis, frame_step, ...) into *v;
// false with a message.
static bool scalar_input(Importer *im, const Onnx__NodeProto *n, size_t i, const char *what, int64_t *v) {
  const Value *c = im_ints_input(im, n, i, what);
  if (!c) return false;
  if (c->nints != 1) {
    im_fail(im, "node '%s' (%s): %s has %d values (a scalar is needed)", im_node(n), n->op_type, what, c->nints);
    return false;
  }
  *v = c->ints[0];
  return true;
}

// The float scalar of input i (a constant, or a graph input of known value)
// into *v; false with a message.
static bool float_input(Importer *im, const Onnx__NodeProto *n, size_t i, const char *what, double *v) {
  Value *c = im_const_input(im, n, i, what);
  if (!c) return false;
  int64_t count = 0;
  const float *f = im_param_data(im, c, &count);
  if (!f || count != 1) {
    im_fail(im, "node '%s' (%s): %s must be a constant float scalar", im_node(n), n->op_type, what);
    return false;
  }
  *v = f[0];
  return true;
}

static bool has_input(const Onnx__NodeProto *n, size_t i) { return i < n->n_input && n->input[i][0]; }

// DFT (opset 17: axis an attribute, default 1; opset 20: axis input 2,
// default -2). The axis is moved next to the last (real/imaginary) one, the
// rest flattened into rows: y = x[M, L * cin] @ W, then moved back.
static void node_dft(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  int r = x->ndim;
  if (x->dtype != DT_F32 || r < 2 || (x->dims[r - 1] != 1 && x->dims[r - 1] != 2)) {
    im_fail(im, "node '%s' (DFT): input %s %s; the importer takes f32 [..., 1] (real) or [..., 2] (complex)",
            im_node(n), onnx_dtype_word(x->dtype), onnx_shape_str(x->dims, r));
    return;
  }
  int64_t axis = im->opset >= 20 ? -2 : onnx_attr_i(n, "axis", 1);
  if (im->opset >= 20 && has_input(n, 2) && !scalar_input(im, n, 2, "axis", &axis)) return;
  if (axis < 0) axis += r;
  if (axis < 0 || axis > r - 2) {
    im_fail(im, "node '%s' (DFT): axis %lld of a rank %d input (the last axis holds real/imaginary parts)",
            im_node(n), (long long)axis, r);
    return;
  }
  bool inverse = onnx_attr_i(n, "inverse", 0), onesided = onnx_attr_i(n, "onesided", 0);
  int cin = (int)x->dims[r - 1];
  int64_t L = x->dims[axis], N = inverse && onesided ? 2 * (L - 1) : L;
  if (has_input(n, 1) && !scalar_input(im, n, 1, "dft_length", &N)) return;
  if (N < 1 || L < 1) {
    im_fail(im, "node '%s' (DFT): dft_length %lld over an axis of %lld (both must be 1 or more)", im_node(n),
            (long long)N, (long long)L);
    return;
  }
  bool irfft = inverse && onesided;
  int64_t K = irfft ? N : onesided ? N / 2 + 1 : N, cout = irfft ? 1 : 2;
  int64_t wd[2] = {L * cin, K * cout};
  const char *w = param(im, n, "dft", 2, wd, irfft ? irfft_matrix(L, cin, N) : dft_matrix(L, cin, N, K, inverse));
  // perm: the other axes, then axis, then the last; td: those dims after the matmul
  int64_t perm[MAX_DIMS], inv[MAX_DIMS], td[MAX_DIMS], yd[MAX_DIMS], M = 1;
  int k = 0;
  for (int i = 0; i < r - 1; i++)
    if (i != axis) perm[k++] = i, M *= x->dims[i];
  perm[k++] = axis;
  perm[k++] = r - 1;
  for (int i = 0; i < r; i++) inv[perm[i]] = i, td[i] = x->dims[perm[i]];
  td[r - 2] = K;
  td[r - 1] = cout;
  memcpy(yd, x->dims, (size_t)r * sizeof *yd);
  yd[axis] = K;
  yd[r - 1] = cout;
  char ps[256], is[256], ts[256], src[512];
  onnx_join_ints(ps, sizeof ps, perm, r);
  onnx_join_ints(is, sizeof is, inv, r);
  onnx_join_ints(ts, sizeof ts, td, r);
  bool moved = axis != r - 2;
  if (moved) snprintf(src, sizeof src, "permute(%s, %s)", x->ident, ps);
  else snprintf(src, sizeof src, "%s", x->ident);
  Value *y = im_result(im, n, DT_F32, r, yd);
  if (!y) return;
  if (moved)
    im_emit(im, y, "permute(reshape(matmul(reshape(%s, %lld, %lld), %s), %s), %s)", src, (long long)M,
            (long long)(L * cin), w, ts, is);
  else
    im_emit(im, y, "reshape(matmul(reshape(%s, %lld, %lld), %s), %s)", src, (long long)M, (long long)(L * cin), w,
            ts);
}

// STFT: signal [B, L, cin]; the frames (F of them, frame_step apart) are
// gathered as rows of the signal moved to [L, B * cin], weighted by the
// window, and each one's DFT of length frame_length is one matmul.
static void node_stft(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  if (x->dtype != DT_F32 || x->ndim != 3 || (x->dims[2] != 1 && x->dims[2] != 2)) {
    im_fail(im, "node '%s' (STFT): signal %s %s; the importer takes f32 [batch, length, 1 or 2]", im_node(n),
            onnx_dtype_word(x->dtype), onnx_shape_str(x->dims, x->ndim));
    return;
  }
  int64_t B = x->dims[0], L = x->dims[1], cin = x->dims[2], step = 0, W = L;
  if (!scalar_input(im, n, 1, "frame_step", &step)) return;
  Value *win = has_input(n, 2) ? im_input(im, n, 2) : NULL;
  if (has_input(n, 2) && (!win || !im_is_tensor(im, n, win))) return;
  if (win && (win->ndim != 1 || win->dtype != DT_F32)) {
    im_fail(im, "node '%s' (STFT): window %s %s (f32 [frame_length] is needed)", im_node(n),
            onnx_dtype_word(win->dtype), onnx_shape_str(win->dims, win->ndim));
    return;
  }
  if (win) W = win->dims[0];
  if (has_input(n, 3)) {
    int64_t fl;
    if (!scalar_input(im, n, 3, "frame_length", &fl)) return;
    if (win && fl != W) {
      im_fail(im, "node '%s' (STFT): frame_length %lld differs from the window's length %lld", im_node(n),
              (long long)fl, (long long)W);
      return;
    }
    W = fl;
  }
  if (step < 1 || W < 1 || W > L) {
    im_fail(im, "node '%s' (STFT): frame_step %lld, frame_length %lld over a signal of %lld (a step of 1 or more "
            "and frames of 1 to the signal's length are needed)", im_node(n), (long long)step, (long long)W,
            (long long)L);
    return;
  }
  bool onesided = onnx_attr_i(n, "onesided", 1);
  int64_t F = 1 + (L - W) / step, K = onesided ? W / 2 + 1 : W;
  // the frames' sample indices: a param (exact in f32 below 2^24), cast to i32
  int64_t nidx = F * W;
  if (L >= (1 << 24)) {
    im_fail(im, "node '%s' (STFT): a signal of %lld samples (at most 2^24)", im_node(n), (long long)L);
    return;
  }
  float *iv = xmalloc((size_t)nidx * sizeof *iv);
  for (int64_t f = 0; f < F; f++)
    for (int64_t t = 0; t < W; t++) iv[f * W + t] = (float)(f * step + t);
  const char *idx = param(im, n, "frames", 1, &nidx, iv);
  int64_t wd[2] = {W * cin, K * 2};
  const char *w = param(im, n, "dft", 2, wd, dft_matrix(W, (int)cin, W, K, false));
  char frames[1024], weighted[1536];
  snprintf(frames, sizeof frames, "reshape(gather(reshape(permute(%s, 1, 0, 2), %lld, %lld), cast(%s, i32)), %lld, %lld, %lld, %lld)",
           x->ident, (long long)L, (long long)(B * cin), idx, (long long)F, (long long)W, (long long)B,
           (long long)cin);
  if (win)
    snprintf(weighted, sizeof weighted, "%s * reshape(%s, 1, %lld, 1, 1)", frames, win->ident, (long long)W);
  else
    snprintf(weighted, sizeof weighted, "%s", frames);
  int64_t yd[4] = {B, F, K, 2};
  Value *y = im_result(im, n, DT_F32, 4, yd);
  if (y)
    im_emit(im, y, "reshape(matmul(reshape(permute(%s, 2, 0, 1, 3), %lld, %lld), %s), %lld, %lld, %lld, 2)", weighted,
            (long long)(B * F), (long long)(W * cin), w, (long long)B, (long long)F, (long long)K);
}

// Whether name is one of the graph's outputs.
static bool graph_output(const Importer *im, const char *name) {
  for (size_t i = 0; i < im->graph->n_output; i++)
    if (!strcmp(im->graph->output[i]->name, name)) return true;
  return false;
}

// n's result as the constant v (count values computed in double): an f32
// param, or for an integer dtype an integer constant of the values
// truncated toward zero (numpy's astype). Takes v.
static void const_result(Importer *im, const Onnx__NodeProto *n, DType dt, int nd, const int64_t *dims, double *v) {
  int64_t count = onnx_numel(dims, nd);
  if (dt == DT_F32) {
    float *f = xmalloc((size_t)(count ? count : 1) * sizeof *f);
    for (int64_t i = 0; i < count; i++) f[i] = (float)v[i];
    free(v);
    const char *p = param(im, n, "values", nd, dims, f);
    Value *y = im_result(im, n, DT_F32, nd, dims);
    if (y) im_emit(im, y, "%s", p);
    return;
  }
  int64_t *iv = xmalloc((size_t)(count ? count : 1) * sizeof *iv);
  for (int64_t i = 0; i < count; i++) iv[i] = (int64_t)trunc(v[i]);
  free(v);
  bool out = graph_output(im, n->output[0]);
  char name[512];
  snprintf(name, sizeof name, "%s#const", n->output[0]);
  Value *c = im_add_value(im, out ? name : n->output[0], V_INTS, dt, nd, dims);
  c->ints = iv;
  c->nints = (int)count;
  if (!out || !im_is_tensor(im, n, c)) return;
  Value *y = im_result(im, n, dt, nd, dims);
  if (y) im_emit(im, y, "%s", c->ident);
}

// The output_datatype attribute (default float) into *dt; false with a
// message for a dtype the importer lacks or one the op cannot make.
static bool output_dtype(Importer *im, const Onnx__NodeProto *n, DType *dt) {
  int64_t t = onnx_attr_i(n, "output_datatype", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
  if (!onnx_dtype_of((int32_t)t, dt) || *dt == DT_BOOL) {
    im_fail(im, "node '%s' (%s): output_datatype %lld (the importer makes float, int32 and int64)", im_node(n),
            n->op_type, (long long)t);
    return false;
  }
  return true;
}

// HannWindow, HammingWindow, BlackmanWindow (arg names which): size values,
// periodic (default) over a period of size, else symmetric over size - 1.
// An integer output_datatype makes the sample numbers integers and the
// values truncated, as the reference does.
static void node_window(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  int64_t size;
  DType dt;
  if (!scalar_input(im, n, 0, "size", &size) || !output_dtype(im, n, &dt)) return;
  bool periodic = onnx_attr_i(n, "periodic", 1);
  int64_t N1 = periodic ? size : size - 1;
  if (size < 1 || N1 < 1) {
    im_fail(im, "node '%s' (%s): size %lld%s (a window of at least %d values is needed)", im_node(n), n->op_type,
            (long long)size, periodic ? "" : " with periodic 0", periodic ? 1 : 2);
    return;
  }
  double *v = xmalloc((size_t)size * sizeof *v);
  for (int64_t i = 0; i < size; i++) {
    double t = (double)i / (double)N1;
    if (!strcmp(arg, "hann")) v[i] = pow(sin(M_PI * t), 2);   // hann
    else if (!strcmp(arg, "hamming")) v[i] = 25.0 / 46.0 - cos(2 * M_PI * t) * (1 - 25.0 / 46.0);   // hamming
    else v[i] = -0.5 * cos(2 * M_PI * t) + 0.08 * cos(4 * M_PI * t) + 0.42;   // blackman
  }
  const_result(im, n, dt, 1, &size, v);
}

// numpy's floor division of doubles (a // b).
static double floor_div(double a, double b) {
  double mod = fmod(a, b), div = (a - mod) / b;
  if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1;
  double f = floor(div);
  return div - f > 0.5 ? f + 1 : f;
}

// MelWeightMatrix [dft_length / 2 + 1, num_mel_bins]: triangles between
// num_mel_bins + 2 points evenly spaced in mel, each rounded down to a
// spectrogram bin, as the reference computes them (the edges' mel values in
// f32, the rest in double).
static void node_mel(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  int64_t bins, len, rate;
  double lo, hi;
  DType dt;
  if (!scalar_input(im, n, 0, "num_mel_bins", &bins) || !scalar_input(im, n, 1, "dft_length", &len) ||
      !scalar_input(im, n, 2, "sample_rate", &rate) || !float_input(im, n, 3, "lower_edge_hertz", &lo) ||
      !float_input(im, n, 4, "upper_edge_hertz", &hi) || !output_dtype(im, n, &dt))
    return;
  if (bins < 1 || len < 1 || rate < 1) {
    im_fail(im, "node '%s' (MelWeightMatrix): num_mel_bins %lld, dft_length %lld, sample_rate %lld (each must be 1 "
            "or more)", im_node(n), (long long)bins, (long long)len, (long long)rate);
    return;
  }
  int64_t S = len / 2 + 1, P = bins + 2, d[2] = {S, bins};
  double lmel = (double)(2595.0f * log1pf((float)lo / 700.0f)) / log(10.0);
  double hmel = (double)(2595.0f * log1pf((float)hi / 700.0f)) / log(10.0);
  double step = (hmel - lmel) / (double)P;
  int64_t *pt = xmalloc((size_t)P * sizeof *pt);
  bool ok = true;
  for (int64_t i = 0; i < P; i++) {
    double hz = 700 * expm1(((double)i * step + lmel) / 2595 * log(10.0));
    pt[i] = (int64_t)floor_div((double)(len + 1) * hz, (double)rate);
    // a triangle's left and centre points index the bins; the last point only bounds one
    ok &= pt[i] >= 0 && pt[i] < S + (i == P - 1) && (i == 0 || pt[i] >= pt[i - 1]);
  }
  if (!ok) {
    free(pt);
    im_fail(im, "node '%s' (MelWeightMatrix): edges %g to %g Hz at sample rate %lld fall outside the %lld "
            "spectrogram bins of dft_length %lld (or are not increasing)", im_node(n), lo, hi, (long long)rate,
            (long long)S, (long long)len);
    return;
  }
  double *v = xcalloc((size_t)(S * bins), sizeof *v);
  for (int64_t i = 0; i < bins; i++) {
    int64_t a = pt[i], c = pt[i + 1], b = pt[i + 2];
    if (c == a) v[c * bins + i] = 1;
    for (int64_t j = a; c > a && j <= c; j++) v[j * bins + i] = (double)(j - a) / (double)(c - a);
    for (int64_t j = c; j < b; j++) v[j * bins + i] = (double)(b - j) / (double)(b - c);
  }
  free(pt);
  const_result(im, n, dt, 2, d, v);
}

const OnnxOp onnx_signal_ops[] = {
    {"DFT", node_dft, NULL},
    {"STFT", node_stft, NULL},
    {"HannWindow", node_window, "hann"},
    {"HammingWindow", node_window, "hamming"},
    {"BlackmanWindow", node_window, "blackman"},
    {"MelWeightMatrix", node_mel, NULL},
    {NULL, NULL, NULL},
};
