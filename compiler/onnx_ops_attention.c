// onnx_ops_attention.c: the ONNX ops of transformer layers: Attention
// (opsets 23-25), RotaryEmbedding (23), SwiGLU, LinearAttention and
// CausalConvWithState (27), FlexAttention (ai.onnx.preview 1).
// Each is written as a short sequence of `let`s of the language (matmul,
// where, iota comparisons, reshape, permute, concat), named after the node's
// first output.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_importer.h"

// "2, 3, 4": eight buffers in turn, so one expression can show several.
static const char *dims_of(const int64_t *d, int n) {
  static char buf[8][256];
  static int which;
  char *b = buf[which++ & 7];
  onnx_join_ints(b, 256, d, n);
  return b;
}

// A number as the language writes a float: "0.5", "(-2.0)".
static const char *num(double x) {
  Value v = {.kind = V_SCALAR, .scalar = x};
  return im_operand(NULL, &v);
}

// Input i when the node gives it (NULL otherwise, or on an error: check im->failed).
static Value *opt_input(Importer *im, const Onnx__NodeProto *n, size_t i) {
  if (i >= n->n_input || !n->input[i][0]) return NULL;
  Value *v = im_input(im, n, i);
  if (v && !im_is_tensor(im, n, v)) return NULL;
  return v;
}

// A float tensor (not a number: its shape matters), else a message.
static bool float_tensor(Importer *im, const Onnx__NodeProto *n, const Value *v, const char *what) {
  if (v->dtype != DT_F32 || v->kind == V_SCALAR) {
    im_fail(im, "node '%s' (%s): %s '%s' is %s%s; the importer takes a float32 tensor", im_node(n), n->op_type, what,
            v->onnx, onnx_dtype_word(v->dtype), v->kind == V_SCALAR ? " of one element" : "");
    return false;
  }
  return true;
}

// ---- Attention

typedef struct {
  int64_t B, Hq, Hkv, Sq, Skv, P, L, D, Dv;   // P past length, L = P + Skv
  bool rank3;
} AttnDims;

// The dimensions of Q, K, V (3-D with q_num_heads / kv_num_heads, or 4-D).
static bool attn_dims(Importer *im, const Onnx__NodeProto *n, const Value *q, const Value *k, const Value *v, AttnDims *a) {
  const char *nm = im_node(n);
  if (q->ndim != k->ndim || q->ndim != v->ndim || (q->ndim != 3 && q->ndim != 4)) {
    im_fail(im, "node '%s' (Attention): Q %s, K %s and V %s must all be 3-D or all 4-D", nm, onnx_shape_str(q->dims, q->ndim),
            onnx_shape_str(k->dims, k->ndim), onnx_shape_str(v->dims, v->ndim));
    return false;
  }
  memset(a, 0, sizeof *a);
  a->rank3 = q->ndim == 3;
  a->B = q->dims[0];
  if (a->rank3) {
    a->Hq = onnx_attr_i(n, "q_num_heads", 0);
    a->Hkv = onnx_attr_i(n, "kv_num_heads", 0);
    if (a->Hq < 1 || a->Hkv < 1 || q->dims[2] % a->Hq || k->dims[2] % a->Hkv || v->dims[2] % a->Hkv) {
      im_fail(im, "node '%s' (Attention): 3-D inputs need q_num_heads and kv_num_heads that divide the hidden sizes "
              "(Q %s, K %s, V %s; q_num_heads %lld, kv_num_heads %lld)", nm, onnx_shape_str(q->dims, 3),
              onnx_shape_str(k->dims, 3), onnx_shape_str(v->dims, 3), (long long)a->Hq, (long long)a->Hkv);
      return false;
    }
    a->Sq = q->dims[1];
    a->Skv = k->dims[1];
    a->D = q->dims[2] / a->Hq;
    a->Dv = v->dims[2] / a->Hkv;
    if (k->dims[2] / a->Hkv != a->D || v->dims[1] != a->Skv || k->dims[0] != a->B || v->dims[0] != a->B) {
      im_fail(im, "node '%s' (Attention): Q %s, K %s and V %s do not agree (heads %lld and %lld)", nm,
              onnx_shape_str(q->dims, 3), onnx_shape_str(k->dims, 3), onnx_shape_str(v->dims, 3), (long long)a->Hq,
              (long long)a->Hkv);
      return false;
    }
  } else {
    // opset 25 forbids the head counts with 4-D inputs; 23 and 24 ignore them
    if (im->opset >= 25 && (onnx_attr(n, "q_num_heads") || onnx_attr(n, "kv_num_heads"))) {
      im_fail(im, "node '%s' (Attention): q_num_heads and kv_num_heads are for 3-D inputs, not 4-D ones (opset %lld)",
              nm, (long long)im->opset);
      return false;
    }
    a->Hq = q->dims[1];
    a->Sq = q->dims[2];
    a->D = q->dims[3];
    a->Hkv = k->dims[1];
    a->Skv = k->dims[2];
    a->Dv = v->dims[3];
    if (k->dims[3] != a->D || k->dims[0] != a->B || v->dims[0] != a->B || v->dims[1] != a->Hkv || v->dims[2] != a->Skv) {
      im_fail(im, "node '%s' (Attention): Q %s, K %s and V %s do not agree", nm, onnx_shape_str(q->dims, 4),
              onnx_shape_str(k->dims, 4), onnx_shape_str(v->dims, 4));
      return false;
    }
  }
  if (a->Hq % a->Hkv) {
    im_fail(im, "node '%s' (Attention): %lld query heads are not a multiple of %lld key/value heads", nm,
            (long long)a->Hq, (long long)a->Hkv);
    return false;
  }
  return true;
}

// The attributes the importer reads, with what it refuses.
typedef struct {
  bool causal;
  double sqrt_scale, softcap;
  int64_t mode, left, right;
} AttnAttrs;

static bool attn_attrs(Importer *im, const Onnx__NodeProto *n, const AttnDims *a, AttnAttrs *t) {
  const char *nm = im_node(n);
  const Onnx__AttributeProto *sa = onnx_attr(n, "scale");
  double scale = sa && sa->has_f ? sa->f : 1.0 / sqrt((double)a->D);
  // ONNX scales Q and K each by sqrt(scale), rounded to the inputs' type
  t->sqrt_scale = (float)sqrt(scale);
  t->causal = onnx_attr_i(n, "is_causal", 0) != 0;
  t->softcap = onnx_attr_f(n, "softcap", 0.0);
  t->mode = onnx_attr_i(n, "qk_matmul_output_mode", 0);
  t->left = onnx_attr_i(n, "left_window_size", -1);
  t->right = onnx_attr_i(n, "right_window_size", -1);
  int64_t prec = onnx_attr_i(n, "softmax_precision", 1);
  if (!(scale > 0) || !isfinite(scale)) {
    im_fail(im, "node '%s' (Attention): scale %g; the importer takes a positive scale", nm, scale);
    return false;
  }
  if (t->mode < 0 || t->mode > 3) {
    im_fail(im, "node '%s' (Attention): qk_matmul_output_mode %lld (0 to 3)", nm, (long long)t->mode);
    return false;
  }
  // mode 0 is the raw product in the spec, but the softcapped one in the reference
  if (t->mode == 0 && t->softcap > 0 && n->n_output > 3 && n->output[3][0]) {
    im_fail(im, "node '%s' (Attention): qk_matmul_output_mode 0 with softcap %g, where the ONNX spec (the raw product) "
            "and its reference implementation (the softcapped product) disagree", nm, t->softcap);
    return false;
  }
  // float32 and float64 softmax agree to float32's rounding; a narrower type changes the numbers
  if (prec != 1 && prec != 11) {
    im_fail(im, "node '%s' (Attention): softmax_precision %lld (a narrower type than float32) is not supported", nm,
            (long long)prec);
    return false;
  }
  if (t->left < -1 || t->right < -1) {
    im_fail(im, "node '%s' (Attention): left_window_size %lld, right_window_size %lld (-1 or more)", nm,
            (long long)t->left, (long long)t->right);
    return false;
  }
  return true;
}

// Q, K or V as [B, H, S, d]: a 3-D [B, S, H d] input split into heads.
static const Value *attn_heads(Importer *im, const Onnx__NodeProto *n, const Value *x, const char *suffix, int64_t H,
                               bool rank3) {
  if (!rank3) return x;
  int64_t S = x->dims[1], d = x->dims[2] / H;
  int64_t dd[4] = {x->dims[0], H, S, d};
  Value *y = im_temp_value(im, n, suffix, V_LET, DT_F32, 4, dd);
  im_emit(im, y, "permute(reshape(%s, %lld, %lld, %lld, %lld), 0, 2, 1, 3)", x->ident, (long long)x->dims[0],
          (long long)S, (long long)H, (long long)d);
  return y;
}

// past (or none) and the new keys or values along the sequence: output k of
// the node when it names it (present_key, present_value).
static const Value *attn_present(Importer *im, const Onnx__NodeProto *n, size_t k, const Value *past, const Value *x,
                                 const char *suffix) {
  int64_t d[4] = {x->dims[0], x->dims[1], x->dims[2] + (past ? past->dims[2] : 0), x->dims[3]};
  Value *y = im_result_at(im, n, k, DT_F32, 4, d);
  if (!y && !past) return x;
  if (!y) y = im_temp_value(im, n, suffix, V_LET, DT_F32, 4, d);
  if (past) im_emit(im, y, "concat(%s, %s, axis = 2)", past->ident, x->ident);
  else im_emit(im, y, "%s", x->ident);
  return y;
}

// The additive bias's terms: each a `let` of 0 (attend) and -inf, or the
// float mask; their sum (ONNX adds them) is Y_bias, NULL when there is none.
typedef struct {
  const Value *terms[6];
  int nterms;
  int64_t dims[MAX_DIMS];
  int ndim;
} Bias;

static bool bias_add(Importer *im, const Onnx__NodeProto *n, Bias *b, const Value *t) {
  Value acc = {.ndim = b->ndim};
  memcpy(acc.dims, b->dims, sizeof acc.dims);
  if (!onnx_broadcast(&acc, t, b->dims, &b->ndim)) {
    im_fail(im, "node '%s' (Attention): mask terms %s and %s do not broadcast", im_node(n), onnx_shape_str(acc.dims, acc.ndim),
            onnx_shape_str(t->dims, t->ndim));
    return false;
  }
  b->terms[b->nterms++] = t;
  return true;
}

// attn_mask as a float bias [..., L]: a bool mask true -> 0, false -> -inf;
// a last axis shorter than L padded with -inf (the spec's padding).
static const Value *attn_mask_bias(Importer *im, const Onnx__NodeProto *n, const Value *m, const AttnDims *a,
                                   const Value *ninf) {
  const char *nm = im_node(n);
  if (m->kind == V_SCALAR || m->ndim < 1 || m->ndim > 4 || (m->dtype != DT_F32 && m->dtype != DT_BOOL)) {
    im_fail(im, "node '%s' (Attention): attn_mask '%s' (%s %s); the importer takes a float32 or bool tensor of rank 1 to 4",
            nm, m->onnx, onnx_dtype_word(m->dtype), onnx_shape_str(m->dims, m->ndim));
    return NULL;
  }
  int64_t full[4] = {a->B, a->Hq, a->Sq, a->L};
  int64_t last = m->dims[m->ndim - 1];
  bool ok = last <= a->L;
  for (int i = 0; i < m->ndim - 1 && ok; i++) {
    int64_t want = full[4 - m->ndim + i];
    ok = m->dims[i] == 1 || m->dims[i] == want;
  }
  if (!ok) {
    im_fail(im, "node '%s' (Attention): attn_mask %s does not broadcast to %s", nm, onnx_shape_str(m->dims, m->ndim),
            onnx_shape_str(full, 4));
    return NULL;
  }
  // the reference takes the causal rows from the mask's own query axis, so a
  // mask broadcast over the queries gets the first query's row for all
  bool window = onnx_attr_i(n, "left_window_size", -1) >= 0 || onnx_attr_i(n, "right_window_size", -1) >= 0;
  if (onnx_attr_i(n, "is_causal", 0) && !window && a->Sq > 1 && (m->ndim < 2 || m->dims[m->ndim - 2] != a->Sq)) {
    im_fail(im, "node '%s' (Attention): is_causal with attn_mask %s, broadcast over the %lld queries, where the ONNX "
            "spec (a causal row per query) and its reference implementation (the first query's row) disagree", nm,
            onnx_shape_str(m->dims, m->ndim), (long long)a->Sq);
    return NULL;
  }
  const Value *f = m;
  if (m->dtype == DT_BOOL) {
    Value *y = im_temp_value(im, n, "mask", V_LET, DT_F32, m->ndim, m->dims);
    im_emit(im, y, "where(%s, 0.0, %s)", m->ident, ninf->ident);
    f = y;
  }
  if (last == a->L) return f;
  int64_t pd[4], yd[4];
  memcpy(pd, m->dims, sizeof pd);
  memcpy(yd, m->dims, sizeof yd);
  pd[m->ndim - 1] = a->L - last;
  yd[m->ndim - 1] = a->L;
  Value *y = im_temp_value(im, n, "mask_padded", V_LET, DT_F32, m->ndim, yd);
  im_emit(im, y, "concat(%s, broadcast(%s, %s), axis = -1)", f->ident, ninf->ident, dims_of(pd, m->ndim));
  return y;
}

// A term `where(cond, 0.0, -inf)` of the bias, of shape d.
static const Value *bias_term(Importer *im, const Onnx__NodeProto *n, const char *suffix, const Value *ninf, int nd,
                              const int64_t *d, const char *cond) {
  Value *y = im_temp_value(im, n, suffix, V_LET, DT_F32, nd, d);
  im_emit(im, y, "where(%s, 0.0, %s)", cond, ninf->ident);
  return y;
}

// The causal, window and padding terms. A query's position is its index plus
// the offset: the past's length, or nonpad_kv_seqlen - Sq per batch (an
// external cache), else 0.
static bool attn_position_terms(Importer *im, const Onnx__NodeProto *n, const AttnDims *a, const AttnAttrs *t,
                                const Value *nonpad, const Value *ninf, Bias *b) {
  bool window = t->left >= 0 || t->right >= 0;
  const char *it = nonpad ? onnx_dtype_word(nonpad->dtype) : "i32";
  char cond[1024];
  if (t->causal || window) {
    // qpos [Sq, 1] or [B, 1, Sq, 1]; kpos [1, L] or [1, 1, 1, L]
    bool per_batch = nonpad != NULL;
    int nd = per_batch ? 4 : 2;
    int64_t qd[4] = {1, 1, 1, 1}, kd[4] = {1, 1, 1, 1}, cd[4];
    qd[nd - 2] = a->Sq;
    kd[nd - 1] = a->L;
    if (per_batch) qd[0] = a->B;
    for (int i = 0; i < nd; i++) cd[i] = qd[i] > kd[i] ? qd[i] : kd[i];
    Value *qp = im_temp_value(im, n, "qpos", V_LET, nonpad ? nonpad->dtype : DT_I32, nd, qd);
    Value *kp = im_temp_value(im, n, "kpos", V_LET, nonpad ? nonpad->dtype : DT_I32, nd, kd);
    if (per_batch)
      im_emit(im, qp, "reshape(iota(%lld, dtype = %s), 1, 1, %lld, 1) + reshape(%s, %lld, 1, 1, 1) - %lld",
              (long long)a->Sq, it, (long long)a->Sq, nonpad->ident, (long long)a->B, (long long)a->Sq);
    else if (a->P)
      im_emit(im, qp, "reshape(iota(%lld, dtype = %s), %lld, 1) + %lld", (long long)a->Sq, it, (long long)a->Sq,
              (long long)a->P);
    else im_emit(im, qp, "reshape(iota(%lld, dtype = %s), %lld, 1)", (long long)a->Sq, it, (long long)a->Sq);
    im_emit(im, kp, "reshape(iota(%lld, dtype = %s), %s)", (long long)a->L, it, dims_of(kd, nd));
    if (t->causal) {
      snprintf(cond, sizeof cond, "%s <= %s", kp->ident, qp->ident);
      if (!bias_add(im, n, b, bias_term(im, n, "causal", ninf, nd, cd, cond))) return false;
    }
    if (t->left >= 0) {
      snprintf(cond, sizeof cond, "%s >= %s - %lld", kp->ident, qp->ident, (long long)t->left);
      if (!bias_add(im, n, b, bias_term(im, n, "window_left", ninf, nd, cd, cond))) return false;
    }
    if (t->right >= 0) {
      snprintf(cond, sizeof cond, "%s <= %s + %lld", kp->ident, qp->ident, (long long)t->right);
      if (!bias_add(im, n, b, bias_term(im, n, "window_right", ninf, nd, cd, cond))) return false;
    }
  }
  if (nonpad) {
    int64_t pd[4] = {a->B, 1, 1, a->L};
    snprintf(cond, sizeof cond, "reshape(iota(%lld, dtype = %s), 1, 1, 1, %lld) < reshape(%s, %lld, 1, 1, 1)",
             (long long)a->L, it, (long long)a->L, nonpad->ident, (long long)a->B);
    if (!bias_add(im, n, b, bias_term(im, n, "nonpad", ninf, 4, pd, cond))) return false;
  }
  return true;
}

// The optional inputs: attn_mask, past_key/past_value, nonpad_kv_seqlen.
typedef struct {
  Value *mask, *past_k, *past_v, *nonpad;
} AttnOptional;

static bool attn_optional(Importer *im, const Onnx__NodeProto *n, const AttnDims *a, AttnOptional *o) {
  const char *nm = im_node(n);
  o->mask = opt_input(im, n, 3);
  o->past_k = opt_input(im, n, 4);
  o->past_v = opt_input(im, n, 5);
  o->nonpad = opt_input(im, n, 6);
  if (im->failed) return false;
  if (!o->past_k != !o->past_v) {
    im_fail(im, "node '%s' (Attention): past_key and past_value must be given together", nm);
    return false;
  }
  if (o->past_k) {
    const Value *pk = o->past_k, *pv = o->past_v;
    if (!float_tensor(im, n, pk, "past_key") || !float_tensor(im, n, pv, "past_value")) return false;
    if (pk->ndim != 4 || pv->ndim != 4 || pk->dims[0] != a->B || pk->dims[1] != a->Hkv || pk->dims[3] != a->D ||
        pv->dims[0] != a->B || pv->dims[1] != a->Hkv || pv->dims[2] != pk->dims[2] || pv->dims[3] != a->Dv) {
      im_fail(im, "node '%s' (Attention): past_key %s and past_value %s do not fit %lld batches of %lld heads of %lld "
              "and %lld", nm, onnx_shape_str(pk->dims, pk->ndim), onnx_shape_str(pv->dims, pv->ndim), (long long)a->B,
              (long long)a->Hkv, (long long)a->D, (long long)a->Dv);
      return false;
    }
  }
  if (o->nonpad) {
    if (o->past_k) {
      im_fail(im, "node '%s' (Attention): nonpad_kv_seqlen cannot be combined with past_key and past_value", nm);
      return false;
    }
    if ((o->nonpad->dtype != DT_I64 && o->nonpad->dtype != DT_I32) || o->nonpad->ndim != 1 ||
        o->nonpad->dims[0] != a->B) {
      im_fail(im, "node '%s' (Attention): nonpad_kv_seqlen '%s' is %s %s; it must be integers of shape [%lld]", nm,
              o->nonpad->onnx, onnx_dtype_word(o->nonpad->dtype), onnx_shape_str(o->nonpad->dims, o->nonpad->ndim),
              (long long)a->B);
      return false;
    }
  }
  return true;
}

// softmax over the last axis as the ONNX reference computes it: a row whose
// largest score is -inf takes 0 as its maximum (no NaN), a zero sum divides
// by 1, and a row whose bias is -inf everywhere (no key attended) is zeros.
static const Value *attn_softmax(Importer *im, const Onnx__NodeProto *n, const Value *x, const Value *bias) {
  int64_t rd[4];
  memcpy(rd, x->dims, sizeof rd);
  rd[3] = 1;
  Value *mx = im_temp_value(im, n, "max", V_LET, DT_F32, 4, rd);
  im_emit(im, mx, "max(%s, axis = -1, keep = true)", x->ident);
  Value *e = im_temp_value(im, n, "exp", V_LET, DT_F32, 4, x->dims);
  im_emit(im, e, "exp(%s - where(%s < -3.4028234e38, 0.0, %s))", x->ident, mx->ident, mx->ident);
  Value *z = im_temp_value(im, n, "sum", V_LET, DT_F32, 4, rd);
  im_emit(im, z, "sum(%s, axis = -1, keep = true)", e->ident);
  Value *p = im_temp_value(im, n, bias ? "softmax" : "probs", V_LET, DT_F32, 4, x->dims);
  im_emit(im, p, "%s / where(%s == 0.0, 1.0, %s)", e->ident, z->ident, z->ident);
  if (!bias) return p;
  Value *g = im_temp_value(im, n, "probs", V_LET, DT_F32, 4, x->dims);
  im_emit(im, g, "where(max(%s, axis = -1, keep = true) < -3.4028234e38, 0.0, %s)", bias->ident, p->ident);
  return g;
}

// Output 3 (qk_matmul_output) when the node names it: which intermediate is
// the mode's.
static void attn_qk_output(Importer *im, const Onnx__NodeProto *n, int64_t mode, const Value *const stage[4]) {
  Value *y = im_result_at(im, n, 3, DT_F32, 4, stage[mode]->dims);
  if (y) im_emit(im, y, "%s", stage[mode]->ident);
}

static void node_attention(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *q = im_input(im, n, 0), *k = q ? im_input(im, n, 1) : NULL, *v = k ? im_input(im, n, 2) : NULL;
  if (!v || !im_is_tensor(im, n, q) || !im_is_tensor(im, n, k) || !im_is_tensor(im, n, v)) return;
  if (!float_tensor(im, n, q, "Q") || !float_tensor(im, n, k, "K") || !float_tensor(im, n, v, "V")) return;
  AttnDims a;
  AttnAttrs t;
  AttnOptional o;
  if (!attn_dims(im, n, q, k, v, &a) || !attn_attrs(im, n, &a, &t) || !attn_optional(im, n, &a, &o)) return;
  a.P = o.past_k ? o.past_k->dims[2] : 0;
  a.L = a.P + a.Skv;
  int64_t r = a.Hq / a.Hkv;
  int64_t one = 1;
  Value *ninf = NULL;
  if (o.mask || t.causal || t.left >= 0 || t.right >= 0 || o.nonpad) {
    ninf = im_temp_value(im, n, "ninf", V_LET, DT_F32, 1, &one);
    im_emit(im, ninf, "log(fill(0.0, 1))");   // -inf, which no literal writes
  }
  Bias b = {.ndim = 0};
  if (o.mask) {
    const Value *mb = attn_mask_bias(im, n, o.mask, &a, ninf);
    if (!mb || !bias_add(im, n, &b, mb)) return;
  }
  if (!attn_position_terms(im, n, &a, &t, o.nonpad, ninf, &b)) return;

  const Value *q4 = attn_heads(im, n, q, "q", a.Hq, a.rank3);
  const Value *k4 = attn_heads(im, n, k, "k", a.Hkv, a.rank3);
  const Value *v4 = attn_heads(im, n, v, "v", a.Hkv, a.rank3);
  const Value *kall = attn_present(im, n, 1, o.past_k, k4, "keys");
  const Value *vall = attn_present(im, n, 2, o.past_v, v4, "values");
  if (im->failed) return;

  // grouped-query attention: the r query heads of a key/value head are one
  // [r Sq] block, so the product needs no repeated keys
  int64_t sd[4] = {a.B, a.Hq, a.Sq, a.L};
  Value *s = im_temp_value(im, n, "scores", V_LET, DT_F32, 4, sd);
  const char *sc = num(t.sqrt_scale);
  if (r == 1) im_emit(im, s, "matmul(%s * %s, %s * %s, tb = true)", q4->ident, sc, kall->ident, sc);
  else
    im_emit(im, s, "reshape(matmul(reshape(%s * %s, %lld, %lld, %lld, %lld), %s * %s, tb = true), %s)", q4->ident, sc,
            (long long)a.B, (long long)a.Hkv, (long long)(r * a.Sq), (long long)a.D, kall->ident, sc, dims_of(sd, 4));
  const Value *capped = s;
  if (t.softcap > 0) {
    Value *c = im_temp_value(im, n, "capped", V_LET, DT_F32, 4, sd);
    im_emit(im, c, "%s * tanh(%s / %s)", num(t.softcap), s->ident, num(t.softcap));
    capped = c;
  }
  const Value *bias = NULL, *biased = capped;
  if (b.nterms) {
    const Value *bv = b.terms[0];
    if (b.nterms > 1) {
      char sum[1024];
      size_t len = 0;
      for (int i = 0; i < b.nterms; i++)
        len += (size_t)snprintf(sum + len, sizeof sum - len, "%s%s", i ? " + " : "", b.terms[i]->ident);
      Value *t2 = im_temp_value(im, n, "bias", V_LET, DT_F32, b.ndim, b.dims);
      im_emit(im, t2, "%s", sum);
      bv = t2;
    }
    Value *sb = im_temp_value(im, n, "biased", V_LET, DT_F32, 4, sd);
    im_emit(im, sb, "%s + %s", capped->ident, bv->ident);
    bias = bv;
    biased = sb;
  }
  const Value *p = attn_softmax(im, n, biased, bias);
  const Value *stage[4] = {s, capped, biased, p};
  attn_qk_output(im, n, t.mode, stage);

  int64_t yd[4] = {a.B, a.Hq, a.Sq, a.Dv};
  Value *y = a.rank3 ? im_temp_value(im, n, "heads", V_LET, DT_F32, 4, yd) : im_result(im, n, DT_F32, 4, yd);
  if (!y) return;
  if (r == 1) im_emit(im, y, "matmul(%s, %s)", p->ident, vall->ident);
  else
    im_emit(im, y, "reshape(matmul(reshape(%s, %lld, %lld, %lld, %lld), %s), %s)", p->ident, (long long)a.B,
            (long long)a.Hkv, (long long)(r * a.Sq), (long long)a.L, vall->ident, dims_of(yd, 4));
  if (!a.rank3) return;
  int64_t y3[3] = {a.B, a.Sq, a.Hq * a.Dv};
  Value *out = im_result(im, n, DT_F32, 3, y3);
  if (out) im_emit(im, out, "reshape(permute(%s, 0, 2, 1, 3), %s)", y->ident, dims_of(y3, 3));
}

// ---- RotaryEmbedding

// cos_cache or sin_cache for each token, shaped to multiply x1 and x2:
// [B, 1, S, R/2] for a [B, H, S, D] input, [B, S, 1, R/2] for [B, S, H, D].
static const Value *rope_cache(Importer *im, const Onnx__NodeProto *n, const Value *c, const Value *pos, int64_t B,
                               int64_t S, int64_t half, bool heads_first, const char *suffix) {
  const char *nm = im_node(n);
  bool ok = pos ? c->ndim == 2 && c->dims[1] == half
                : c->ndim == 3 && c->dims[0] == B && c->dims[1] == S && c->dims[2] == half;
  if (!ok) {
    im_fail(im, "node '%s' (RotaryEmbedding): %s '%s' is %s; it must be [max_position, %lld] with position_ids, "
            "else [%lld, %lld, %lld]", nm, suffix, c->onnx, onnx_shape_str(c->dims, c->ndim), (long long)half,
            (long long)B, (long long)S, (long long)half);
    return NULL;
  }
  int64_t d[4] = {B, heads_first ? 1 : S, heads_first ? S : 1, half};
  Value *y = im_temp_value(im, n, suffix, V_LET, DT_F32, 4, d);
  if (pos) im_emit(im, y, "reshape(gather(%s, %s), %s)", c->ident, pos->ident, dims_of(d, 4));
  else im_emit(im, y, "reshape(%s, %s)", c->ident, dims_of(d, 4));
  return y;
}

static void node_rotary(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  const char *nm = im_node(n);
  Value *x = im_input(im, n, 0), *c = x ? im_input(im, n, 1) : NULL, *s = c ? im_input(im, n, 2) : NULL;
  if (!s || !im_is_tensor(im, n, x) || !im_is_tensor(im, n, c) || !im_is_tensor(im, n, s)) return;
  Value *pos = opt_input(im, n, 3);
  if (im->failed) return;
  if (!float_tensor(im, n, x, "input") || !float_tensor(im, n, c, "cos_cache") || !float_tensor(im, n, s, "sin_cache"))
    return;
  if (pos && ((pos->dtype != DT_I64 && pos->dtype != DT_I32) || pos->ndim != 2)) {
    im_fail(im, "node '%s' (RotaryEmbedding): position_ids '%s' is %s %s; it must be integers [batch, sequence]", nm,
            pos->onnx, onnx_dtype_word(pos->dtype), onnx_shape_str(pos->dims, pos->ndim));
    return;
  }
  if (x->ndim != 3 && x->ndim != 4) {
    im_fail(im, "node '%s' (RotaryEmbedding): input %s must be 3-D or 4-D", nm, onnx_shape_str(x->dims, x->ndim));
    return;
  }
  bool rank4 = x->ndim == 4;
  int64_t B = x->dims[0], S = rank4 ? x->dims[2] : x->dims[1], H, D;
  if (rank4) {
    H = x->dims[1];
    D = x->dims[3];
  } else {
    H = onnx_attr_i(n, "num_heads", 0);
    if (H < 1 || x->dims[2] % H) {
      im_fail(im, "node '%s' (RotaryEmbedding): a 3-D input %s needs num_heads that divides %lld (num_heads %lld)", nm,
              onnx_shape_str(x->dims, 3), (long long)x->dims[2], (long long)H);
      return;
    }
    D = x->dims[2] / H;
  }
  int64_t R = onnx_attr_i(n, "rotary_embedding_dim", 0);
  if (R == 0) R = D;
  bool inter = onnx_attr_i(n, "interleaved", 0) != 0;
  if (R < 2 || R > D || R % 2) {
    im_fail(im, "node '%s' (RotaryEmbedding): rotary_embedding_dim %lld for heads of %lld (an even number up to it)", nm,
            (long long)R, (long long)D);
    return;
  }
  if (pos && (pos->dims[0] != B || pos->dims[1] != S)) {
    im_fail(im, "node '%s' (RotaryEmbedding): position_ids %s for an input of %lld batches of %lld tokens", nm,
            onnx_shape_str(pos->dims, 2), (long long)B, (long long)S);
    return;
  }
  // the 4-D input stays [B, H, S, D]; a 3-D one becomes [B, S, H, D]
  int64_t xd[4] = {B, rank4 ? H : S, rank4 ? S : H, D};
  const Value *x4 = x;
  if (!rank4) {
    Value *t = im_temp_value(im, n, "heads", V_LET, DT_F32, 4, xd);
    im_emit_reshape(im, t, x->ident);
    x4 = t;
  }
  const Value *cc = rope_cache(im, n, c, pos, B, S, R / 2, rank4, "cos");
  const Value *ss = cc ? rope_cache(im, n, s, pos, B, S, R / 2, rank4, "sin") : NULL;
  if (!ss) return;
  int64_t hd[4] = {xd[0], xd[1], xd[2], R / 2}, rd[4] = {xd[0], xd[1], xd[2], R};
  Value *x1 = im_temp_value(im, n, "x1", V_LET, DT_F32, 4, hd), *x2 = im_temp_value(im, n, "x2", V_LET, DT_F32, 4, hd);
  if (inter) {
    im_emit(im, x1, "%s[..., 0:%lld:2]", x4->ident, (long long)R);
    im_emit(im, x2, "%s[..., 1:%lld:2]", x4->ident, (long long)R);
  } else {
    im_emit(im, x1, "%s[..., 0:%lld]", x4->ident, (long long)(R / 2));
    im_emit(im, x2, "%s[..., %lld:%lld]", x4->ident, (long long)(R / 2), (long long)R);
  }
  Value *re = im_temp_value(im, n, "real", V_LET, DT_F32, 4, hd);
  Value *imv = im_temp_value(im, n, "imag", V_LET, DT_F32, 4, hd);
  im_emit(im, re, "%s * %s - %s * %s", cc->ident, x1->ident, ss->ident, x2->ident);
  im_emit(im, imv, "%s * %s + %s * %s", ss->ident, x1->ident, cc->ident, x2->ident);
  Value *rot = im_temp_value(im, n, "rotated", V_LET, DT_F32, 4, rd);
  if (inter) im_emit(im, rot, "reshape(stack(%s, %s, axis = -1), %s)", re->ident, imv->ident, dims_of(rd, 4));
  else im_emit(im, rot, "concat(%s, %s, axis = -1)", re->ident, imv->ident);
  Value *y = im_result(im, n, DT_F32, x->ndim, x->dims);
  if (!y) return;
  char whole[512];
  if (R < D) snprintf(whole, sizeof whole, "concat(%s, %s[..., %lld:], axis = -1)", rot->ident, x4->ident, (long long)R);
  else snprintf(whole, sizeof whole, "%s", rot->ident);
  if (rank4) im_emit(im, y, "%s", whole);
  else im_emit(im, y, "reshape(%s, %s)", whole, dims_of(x->dims, 3));
}

// ---- SwiGLU: a * sigmoid(alpha a) * b, of two inputs of one shape.
static void node_swiglu(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *a = im_input(im, n, 0), *b = a ? im_input(im, n, 1) : NULL;
  if (!b || !im_is_tensor(im, n, a) || !im_is_tensor(im, n, b)) return;
  if (!float_tensor(im, n, a, "A") || !float_tensor(im, n, b, "B")) return;
  bool same = a->ndim == b->ndim;
  for (int i = 0; i < a->ndim && same; i++) same = a->dims[i] == b->dims[i];
  if (!same) {
    im_fail(im, "node '%s' (SwiGLU): A %s and B %s must have one shape (SwiGLU does not broadcast)", im_node(n),
            onnx_shape_str(a->dims, a->ndim), onnx_shape_str(b->dims, b->ndim));
    return;
  }
  double alpha = onnx_attr_f(n, "alpha", 1.0);
  Value *y = im_result(im, n, DT_F32, a->ndim, a->dims);
  if (!y) return;
  if (alpha == 1.0) im_emit(im, y, "%s * sigmoid(%s) * %s", a->ident, a->ident, b->ident);
  else im_emit(im, y, "%s * sigmoid(%s * %s) * %s", a->ident, num(alpha), a->ident, b->ident);
}

// ---- LinearAttention (opset 27): the recurrence over the tokens unrolled,
// a state [B, Hkv, dk, dv] per step: decayed (gated), corrected by the delta
// rule, added k v^T, read by the queries of its group.

enum { LA_MAX_TOKENS = 64 };   // each token is a few `let`s of the file

// decay as [B, Hkv, T, 1 or dk], beta as [B, Hkv or 1, T, 1]; NULL with a message.
static const Value *la_gate(Importer *im, const Onnx__NodeProto *n, const Value *g, const char *what, int64_t B,
                            int64_t T, int64_t Hkv, int64_t per_head, int64_t alt) {
  if (!float_tensor(im, n, g, what)) return NULL;
  int64_t last = g->ndim == 3 ? g->dims[2] : -1;
  if (g->ndim != 3 || g->dims[0] != B || g->dims[1] != T || (last != per_head && last != alt)) {
    im_fail(im, "node '%s' (LinearAttention): %s %s must be [%lld, %lld, %lld] or [%lld, %lld, %lld]", im_node(n), what,
            onnx_shape_str(g->dims, g->ndim), (long long)B, (long long)T, (long long)per_head, (long long)B, (long long)T,
            (long long)alt);
    return NULL;
  }
  bool heads = last == per_head;   // one value per head, else per key dimension (decay) or one (beta)
  int64_t h = heads ? per_head : (!strcmp(what, "beta") ? 1 : Hkv);
  int64_t x = heads || !strcmp(what, "beta") ? 1 : last / Hkv;
  int64_t d[4] = {B, h, T, x};
  Value *y = im_temp_value(im, n, what, V_LET, DT_F32, 4, d);
  im_emit(im, y, "permute(reshape(%s, %lld, %lld, %lld, %lld), 0, 2, 1, 3)", g->ident, (long long)B, (long long)T,
          (long long)h, (long long)x);
  return y;
}

static void node_linear_attention(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  const char *nm = im_node(n);
  Value *q = im_input(im, n, 0), *k = q ? im_input(im, n, 1) : NULL, *v = k ? im_input(im, n, 2) : NULL;
  if (!v || !im_is_tensor(im, n, q) || !im_is_tensor(im, n, k) || !im_is_tensor(im, n, v)) return;
  if (!float_tensor(im, n, q, "query") || !float_tensor(im, n, k, "key") || !float_tensor(im, n, v, "value")) return;
  Value *past = opt_input(im, n, 3), *decay = opt_input(im, n, 4), *beta = opt_input(im, n, 5);
  if (im->failed) return;
  const Onnx__AttributeProto *ra = onnx_attr(n, "update_rule");
  char rule[32] = "gated_delta";
  if (ra && ra->has_s) snprintf(rule, sizeof rule, "%.*s", (int)ra->s.len, (const char *)ra->s.data);
  bool gating = !strcmp(rule, "gated") || !strcmp(rule, "gated_delta");
  bool delta = !strcmp(rule, "delta") || !strcmp(rule, "gated_delta");
  if (!gating && !delta && strcmp(rule, "linear")) {
    im_fail(im, "node '%s' (LinearAttention): update_rule '%s' (linear, gated, delta or gated_delta)", nm, rule);
    return;
  }
  if (gating != (decay != NULL) || delta != (beta != NULL)) {
    im_fail(im, "node '%s' (LinearAttention): update_rule '%s' %s decay and %s beta", nm, rule,
            gating ? "needs" : "takes no", delta ? "needs" : "takes no");
    return;
  }
  int64_t Hq = onnx_attr_i(n, "q_num_heads", 0), Hkv = onnx_attr_i(n, "kv_num_heads", 0);
  if (q->ndim != 3 || k->ndim != 3 || v->ndim != 3 || Hq < 1 || Hkv < 1 || Hq % Hkv || q->dims[2] % Hq ||
      k->dims[2] % Hkv || v->dims[2] % Hkv || k->dims[2] / Hkv != q->dims[2] / Hq || k->dims[0] != q->dims[0] ||
      v->dims[0] != q->dims[0] || k->dims[1] != q->dims[1] || v->dims[1] != q->dims[1]) {
    im_fail(im, "node '%s' (LinearAttention): query %s, key %s and value %s (3-D) do not fit q_num_heads %lld and "
            "kv_num_heads %lld", nm, onnx_shape_str(q->dims, q->ndim), onnx_shape_str(k->dims, k->ndim),
            onnx_shape_str(v->dims, v->ndim), (long long)Hq, (long long)Hkv);
    return;
  }
  int64_t B = q->dims[0], T = q->dims[1], dk = q->dims[2] / Hq, dv = v->dims[2] / Hkv, r = Hq / Hkv;
  if (T > LA_MAX_TOKENS) {
    im_fail(im, "node '%s' (LinearAttention): %lld tokens; the importer unrolls the recurrence over at most %d", nm,
            (long long)T, LA_MAX_TOKENS);
    return;
  }
  int64_t sd[4] = {B, Hkv, dk, dv};
  if (past && (!float_tensor(im, n, past, "past_state") || past->ndim != 4 || memcmp(past->dims, sd, sizeof sd))) {
    if (!im->failed)
      im_fail(im, "node '%s' (LinearAttention): past_state %s must be %s", nm, onnx_shape_str(past->dims, past->ndim),
              onnx_shape_str(sd, 4));
    return;
  }
  const Value *g4 = decay ? la_gate(im, n, decay, "decay", B, T, Hkv, Hkv, Hkv * dk) : NULL;
  const Value *b4 = beta ? la_gate(im, n, beta, "beta", B, T, Hkv, Hkv, 1) : NULL;
  if (im->failed) return;
  double scale = onnx_attr_f(n, "scale", 0.0);
  if (scale == 0.0) scale = 1.0 / sqrt((double)dk);
  const Value *q4 = attn_heads(im, n, q, "q", Hq, true), *k4 = attn_heads(im, n, k, "k", Hkv, true);
  const Value *v4 = attn_heads(im, n, v, "v", Hkv, true);
  const Value *state = past;
  if (!state) {
    Value *z = im_temp_value(im, n, "state0", V_LET, DT_F32, 4, sd);
    im_emit(im, z, "fill(0.0, %s)", dims_of(sd, 4));
    state = z;
  }
  int64_t vd[4] = {B, Hkv, 1, dv}, od[4] = {B, Hq, 1, dv};
  char list[4096], sfx[32];
  size_t len = 0;
  for (int64_t i = 0; i < T && !im->failed; i++) {
    char kt[64];
    snprintf(kt, sizeof kt, "%s[:, :, %lld:%lld, :]", k4->ident, (long long)i, (long long)i + 1);
    if (gating) {   // state * exp(g_t), g_t of one value per head or per key dimension
      snprintf(sfx, sizeof sfx, "decayed%lld", (long long)i + 1);
      Value *d = im_temp_value(im, n, sfx, V_LET, DT_F32, 4, sd);
      im_emit(im, d, "%s * permute(exp(%s[:, :, %lld:%lld, :]), 0, 1, 3, 2)", state->ident, g4->ident, (long long)i,
              (long long)i + 1);
      state = d;
    }
    snprintf(sfx, sizeof sfx, "v%lld", (long long)i + 1);
    Value *vt = im_temp_value(im, n, sfx, V_LET, DT_F32, 4, vd);
    if (delta)   // beta_t (v_t - S^T k_t)
      im_emit(im, vt, "%s[:, :, %lld:%lld, :] * (%s[:, :, %lld:%lld, :] - matmul(%s, %s))", b4->ident, (long long)i,
              (long long)i + 1, v4->ident, (long long)i, (long long)i + 1, kt, state->ident);
    else im_emit(im, vt, "%s[:, :, %lld:%lld, :]", v4->ident, (long long)i, (long long)i + 1);
    snprintf(sfx, sizeof sfx, "state%lld", (long long)i + 1);
    Value *ns = i == T - 1 ? im_result_at(im, n, 1, DT_F32, 4, sd) : NULL;
    if (!ns) ns = im_temp_value(im, n, sfx, V_LET, DT_F32, 4, sd);
    im_emit(im, ns, "%s + matmul(%s, %s, ta = true)", state->ident, kt, vt->ident);
    state = ns;
    snprintf(sfx, sizeof sfx, "out%lld", (long long)i + 1);
    Value *o = im_temp_value(im, n, sfx, V_LET, DT_F32, 4, od);
    if (r == 1)
      im_emit(im, o, "%s * matmul(%s[:, :, %lld:%lld, :], %s)", num(scale), q4->ident, (long long)i, (long long)i + 1,
              state->ident);
    else
      im_emit(im, o, "%s * reshape(matmul(reshape(%s[:, :, %lld:%lld, :], %lld, %lld, %lld, %lld), %s), %s)", num(scale),
              q4->ident, (long long)i, (long long)i + 1, (long long)B, (long long)Hkv, (long long)r, (long long)dk,
              state->ident, dims_of(od, 4));
    len += (size_t)snprintf(list + len, len < sizeof list ? sizeof list - len : 0, "%s%s", i ? ", " : "", o->ident);
  }
  if (im->failed) return;
  int64_t yd[3] = {B, T, Hq * dv};
  Value *y = im_result_at(im, n, 0, DT_F32, 3, yd);
  if (!y) return;
  if (T == 1) im_emit(im, y, "reshape(permute(%s, 0, 2, 1, 3), %s)", list, dims_of(yd, 3));
  else im_emit(im, y, "reshape(permute(concat(%s, axis = 2), 0, 2, 1, 3), %s)", list, dims_of(yd, 3));
}

// ---- CausalConvWithState (opset 27): a depthwise causal 1-D convolution
// over the past state (or zeros) followed by the input; the last k - 1
// positions of that sequence are the present state.
static void node_causal_conv(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  const char *nm = im_node(n);
  Value *x = im_input(im, n, 0), *w = x ? im_input(im, n, 1) : NULL;
  if (!w || !im_is_tensor(im, n, x) || !im_is_tensor(im, n, w)) return;
  Value *bias = opt_input(im, n, 2), *past = opt_input(im, n, 3);
  if (im->failed || !float_tensor(im, n, x, "input") || !float_tensor(im, n, w, "weight")) return;
  if ((bias && !float_tensor(im, n, bias, "bias")) || (past && !float_tensor(im, n, past, "past_state"))) return;
  const Onnx__AttributeProto *aa = onnx_attr(n, "activation");
  char act[32] = "none";
  if (aa && aa->has_s) snprintf(act, sizeof act, "%.*s", (int)aa->s.len, (const char *)aa->s.data);
  bool silu = !strcmp(act, "silu") || !strcmp(act, "swish");
  if (!silu && strcmp(act, "none")) {
    im_fail(im, "node '%s' (CausalConvWithState): activation '%s' (none, silu or swish)", nm, act);
    return;
  }
  if (x->ndim != 3 || w->ndim != 3 || w->dims[0] != x->dims[1] || w->dims[1] != 1 || w->dims[2] < 1) {
    im_fail(im, "node '%s' (CausalConvWithState): input %s and weight %s must be [B, C, L] and [C, 1, k]", nm,
            onnx_shape_str(x->dims, x->ndim), onnx_shape_str(w->dims, w->ndim));
    return;
  }
  int64_t B = x->dims[0], C = x->dims[1], L = x->dims[2], k = w->dims[2];
  int64_t pd[3] = {B, C, k - 1}, td[3] = {B, C, L + k - 1};
  if ((bias && (bias->ndim != 1 || bias->dims[0] != C)) || (past && (past->ndim != 3 || memcmp(past->dims, pd, sizeof pd)))) {
    im_fail(im, "node '%s' (CausalConvWithState): bias %s must be [%lld] and past_state %s %s", nm,
            bias ? onnx_shape_str(bias->dims, bias->ndim) : "(none)", (long long)C,
            past ? onnx_shape_str(past->dims, past->ndim) : "(none)", onnx_shape_str(pd, 3));
    return;
  }
  const Value *seq = x;
  if (k > 1) {
    Value *t = im_temp_value(im, n, "padded", V_LET, DT_F32, 3, td);
    if (past) im_emit(im, t, "concat(%s, %s, axis = 2)", past->ident, x->ident);
    else im_emit(im, t, "concat(fill(0.0, %s), %s, axis = 2)", dims_of(pd, 3), x->ident);
    seq = t;
  }
  int64_t yd[3] = {B, C, L};
  Value *c = im_temp_value(im, n, silu ? "conv" : "conv_out", V_LET, DT_F32, 3, yd);
  char b[512] = "";
  if (bias) snprintf(b, sizeof b, " + reshape(%s, 1, %lld, 1)", bias->ident, (long long)C);
  // the 1-D convolution as a 2-D one of height 1, a group per channel
  im_emit(im, c, "reshape(conv(reshape(%s, %lld, %lld, 1, %lld), reshape(%s, %lld, 1, 1, %lld), groups = %lld), %s)%s",
          seq->ident, (long long)B, (long long)C, (long long)(L + k - 1), w->ident, (long long)C, (long long)k,
          (long long)C, dims_of(yd, 3), b);
  Value *y = im_result(im, n, DT_F32, 3, yd);
  if (!y) return;
  if (silu) im_emit(im, y, "silu(%s)", c->ident);
  else im_emit(im, y, "%s", c->ident);
  Value *s = im_result_at(im, n, 1, DT_F32, 3, pd);
  if (s && k == 1) im_emit(im, s, "%s[:, :, 0:0]", x->ident);   // no past positions: empty
  else if (s) im_emit(im, s, "%s[:, :, %lld:]", seq->ident, (long long)L);
}

const OnnxOp onnx_attention_ops[] = {
    {"Attention", node_attention, NULL},
    {"RotaryEmbedding", node_rotary, NULL},
    {"SwiGLU", node_swiglu, NULL},
    {"LinearAttention", node_linear_attention, NULL},
    {"CausalConvWithState", node_causal_conv, NULL},
    {NULL, NULL, NULL},
};

// ---- FlexAttention (ai.onnx.preview 1): scaled dot-product attention whose
// scores (score_mod) and probabilities (prob_mod) a subgraph may modify. The
// subgraphs are inlined: their index arithmetic (Shape, Range, Gather, ...)
// is folded at import, what reads the tensor becomes `let`s.

enum { MOD_MAX_VALUES = 256 };

// A value of a modifier subgraph: a constant known at import (c, numel
// values) or a tensor of the model file (v).
typedef struct {
  const char *name;
  DType dt;
  int nd;
  int64_t dims[MAX_DIMS];
  double *c;
  const Value *v;
} ModVal;

typedef struct {
  Importer *im;
  const Onnx__NodeProto *n;   // the FlexAttention node
  const char *attr;           // score_mod or prob_mod
  ModVal vals[MOD_MAX_VALUES];
  int nvals, ntmp;
} Mod;

static bool mod_fail(Mod *m, const Onnx__NodeProto *s, const char *what) {
  im_fail(m->im, "node '%s' (FlexAttention): %s node '%s' (%s): %s", im_node(m->n), m->attr, im_node(s), s->op_type,
          what);
  return false;
}

static ModVal *mod_find(Mod *m, const char *name) {
  for (int i = m->nvals - 1; i >= 0; i--)
    if (!strcmp(m->vals[i].name, name)) return &m->vals[i];
  return NULL;
}

static ModVal *mod_add(Mod *m, const char *name, DType dt, int nd, const int64_t *d) {
  if (m->nvals == MOD_MAX_VALUES) return NULL;
  ModVal *r = &m->vals[m->nvals++];
  memset(r, 0, sizeof *r);
  r->name = name;
  r->dt = dt;
  r->nd = nd;
  if (nd) memcpy(r->dims, d, (size_t)nd * sizeof *d);
  return r;
}

// A tensor's values as doubles (float, double, int32, int64, bool); NULL for another type.
static double *tp_values(const Onnx__TensorProto *t, DType *dt, int64_t *count) {
  int64_t c = onnx_numel(t->dims, (int)t->n_dims);
  int32_t ty = t->data_type;
  size_t es = ty == 1 || ty == 6 ? 4 : ty == 7 || ty == 11 ? 8 : ty == 9 ? 1 : 0;
  if (!es || (ty != 11 && !onnx_dtype_of(ty, dt))) return NULL;
  if (ty == 11) *dt = DT_F32;   // a double constant reads as a float32 one
  double *r = calloc((size_t)(c ? c : 1), sizeof *r);
  bool raw = t->raw_data.len > 0;
  if (raw && t->raw_data.len != (size_t)c * es) { free(r); return NULL; }
  size_t have = ty == 1 ? t->n_float_data : ty == 11 ? t->n_double_data : ty == 7 ? t->n_int64_data : t->n_int32_data;
  if (!raw && have != (size_t)c) { free(r); return NULL; }
  for (int64_t i = 0; i < c; i++) {
    const uint8_t *p = raw ? t->raw_data.data + (size_t)i * es : NULL;
    float f; double d; int32_t i32; int64_t i64;
    switch (ty) {
      case 1: if (p) memcpy(&f, p, 4); else f = t->float_data[i]; r[i] = f; break;
      case 11: if (p) memcpy(&d, p, 8); else d = t->double_data[i]; r[i] = (float)d; break;
      case 7: if (p) memcpy(&i64, p, 8); else i64 = t->int64_data[i]; r[i] = (double)i64; break;
      case 6: if (p) memcpy(&i32, p, 4); else i32 = t->int32_data[i]; r[i] = i32; break;
      default: r[i] = p ? (p[0] != 0) : (t->int32_data[i] != 0); break;
    }
  }
  *count = c;
  return r;
}

static bool mod_constant(Mod *m, const Onnx__NodeProto *s, const char *name, const Onnx__TensorProto *t) {
  DType dt;
  int64_t c;
  double *v = (int)t->n_dims <= MAX_DIMS ? tp_values(t, &dt, &c) : NULL;
  if (!v) return mod_fail(m, s, "a constant of a type or layout the importer does not read");
  ModVal *r = mod_add(m, name, dt, (int)t->n_dims, t->dims);
  if (!r) return mod_fail(m, s, "too many values");
  r->c = v;
  return true;
}

// A value as an operand of the model file: a tensor's name, a number, or a
// `let` / param of a constant's values.
static const char *mod_operand(Mod *m, const Onnx__NodeProto *s, ModVal *x) {
  if (x->v) return x->v->ident;
  int64_t c = onnx_numel(x->dims, x->nd);
  char name[64];
  snprintf(name, sizeof name, "%s_const%d", m->attr, ++m->ntmp);
  if (x->dt == DT_F32 && c == 1 && isfinite(x->c[0])) return num(x->c[0]);
  if (x->dt == DT_F32 && c == 1 && isinf(x->c[0])) {   // no literal writes an infinity
    int64_t one = 1;
    Value *y = im_temp_value(m->im, m->n, name, V_LET, DT_F32, 1, &one);
    im_emit(m->im, y, "%slog(fill(0.0, 1))", x->c[0] > 0 ? "-" : "");
    x->v = y;
    return y->ident;
  }
  if (x->dt == DT_F32) {
    float *f = malloc((size_t)c * sizeof *f);
    bool finite = true;
    for (int64_t i = 0; i < c; i++) finite = finite && isfinite(f[i] = (float)x->c[i]);
    if (!finite || !c) {
      free(f);
      mod_fail(m, s, "a float constant with NaN, infinities or no elements");
      return NULL;
    }
    char full[600];
    x->v = im_add_param(m->im, im_temp_name(m->n, name, full, sizeof full), x->nd, x->dims, f);
    return x->v->ident;
  }
  Value *y = im_temp_value(m->im, m->n, name, V_INTS, x->dt, x->nd, x->dims);
  y->ints = malloc((size_t)(c ? c : 1) * sizeof *y->ints);
  y->nints = (int)c;
  for (int64_t i = 0; i < c; i++) y->ints[i] = (int64_t)x->c[i];
  if (!im_is_tensor(m->im, m->n, y)) return NULL;
  x->v = y;
  return y->ident;
}

// The flat index into a value of shape (nd, d) broadcast to (rn, rd) at flat index i.
static int64_t bcast_index(int64_t i, int rn, const int64_t *rd, int nd, const int64_t *d) {
  int64_t idx = 0, stride = 1;
  for (int k = rn - 1; k >= 0; k--) {
    int64_t coord = i % rd[k];
    i /= rd[k];
    int j = k - (rn - nd);
    if (j >= 0) {
      if (d[j] > 1) idx += coord * stride;
      stride *= d[j];
    }
  }
  return idx;
}

static double fold2(const char *op, double a, double b, DType dt) {
  bool ints = dt != DT_F32;
  double r = !strcmp(op, "+") ? a + b : !strcmp(op, "-") ? a - b : !strcmp(op, "*") ? a * b
           : !strcmp(op, "/") ? (ints ? trunc(a / b) : a / b) : !strcmp(op, "==") ? a == b
           : !strcmp(op, ">") ? a > b : !strcmp(op, ">=") ? a >= b : !strcmp(op, "<") ? a < b : a <= b;
  return ints ? r : (float)r;
}

// The elementwise ops of a subgraph: Add ... LessOrEqual, Where (arg: the
// operator; "?" for Where), folded when every input is a constant.
static bool mod_elementwise(Mod *m, const Onnx__NodeProto *s, const char *op, ModVal **in, int nin) {
  Value acc = {.ndim = 0};
  for (int i = 0; i < nin; i++) {
    Value t = {.ndim = in[i]->nd};
    memcpy(t.dims, in[i]->dims, sizeof t.dims);
    if (!onnx_broadcast(&acc, &t, acc.dims, &acc.ndim)) return mod_fail(m, s, "inputs that do not broadcast");
  }
  bool cmp = strchr("=<>", op[0]) != NULL;
  bool where = !strcmp(op, "?");
  if (where && in[0]->dt != DT_BOOL) return mod_fail(m, s, "a condition that is not bool");
  DType dt = cmp ? DT_BOOL : in[where ? 1 : 0]->dt;
  if (!cmp && in[where ? 1 : 0]->dt != in[where ? 2 : 1]->dt) return mod_fail(m, s, "inputs of two types");
  if (!cmp && !where && dt == DT_BOOL) return mod_fail(m, s, "arithmetic on bools");
  ModVal *r = mod_add(m, s->output[0], dt, acc.ndim, acc.dims);
  if (!r) return mod_fail(m, s, "too many values");
  bool all_const = true;
  for (int i = 0; i < nin; i++) all_const = all_const && in[i]->c;
  int64_t c = onnx_numel(acc.dims, acc.ndim);
  if (all_const && c <= (1 << 20)) {
    r->c = malloc((size_t)(c ? c : 1) * sizeof *r->c);
    for (int64_t i = 0; i < c; i++) {
      double x[3];
      for (int k = 0; k < nin; k++) x[k] = in[k]->c[bcast_index(i, acc.ndim, acc.dims, in[k]->nd, in[k]->dims)];
      r->c[i] = where ? (x[0] != 0 ? x[1] : x[2]) : fold2(op, x[0], x[1], in[0]->dt);
    }
    return true;
  }
  const char *o[3];
  for (int i = 0; i < nin; i++)
    if (!(o[i] = mod_operand(m, s, in[i]))) return false;
  char name[64];
  snprintf(name, sizeof name, "%s%d", m->attr, ++m->ntmp);
  Value *y = im_temp_value(m->im, m->n, name, V_LET, dt, acc.ndim, acc.dims);
  if (where) im_emit(m->im, y, "where(%s, %s, %s)", o[0], o[1], o[2]);
  else im_emit(m->im, y, "%s %s %s", o[0], op, o[1]);
  r->v = y;
  return true;
}

// Shape, Gather (of a constant list), Range and Reshape, on shapes known at import.
static bool mod_index_op(Mod *m, const Onnx__NodeProto *s, ModVal **in) {
  const char *t = s->op_type;
  if (!strcmp(t, "Shape")) {
    if (s->n_attribute) return mod_fail(m, s, "start and end are not supported");
    int64_t nd = in[0]->nd;
    ModVal *r = mod_add(m, s->output[0], DT_I64, 1, &nd);
    if (!r) return mod_fail(m, s, "too many values");
    r->c = malloc((size_t)(nd ? nd : 1) * sizeof *r->c);
    for (int i = 0; i < nd; i++) r->c[i] = (double)in[0]->dims[i];
    return true;
  }
  for (size_t i = 0; i < s->n_input; i++)
    if (!in[i]->c && !(i == 0 && !strcmp(t, "Reshape")))
      return mod_fail(m, s, "an input that is not known at import");
  if (!strcmp(t, "Gather")) {
    int64_t len = in[0]->nd == 1 ? in[0]->dims[0] : -1, c = onnx_numel(in[1]->dims, in[1]->nd);
    if (len < 0 || onnx_attr_i(s, "axis", 0) != 0) return mod_fail(m, s, "only a 1-D list along axis 0 is supported");
    ModVal *r = mod_add(m, s->output[0], in[0]->dt, in[1]->nd, in[1]->dims);
    if (!r) return mod_fail(m, s, "too many values");
    r->c = malloc((size_t)(c ? c : 1) * sizeof *r->c);
    for (int64_t i = 0; i < c; i++) {
      int64_t j = (int64_t)in[1]->c[i];
      if (j < 0) j += len;
      if (j < 0 || j >= len) return mod_fail(m, s, "an index out of range");
      r->c[i] = in[0]->c[j];
    }
    return true;
  }
  if (!strcmp(t, "Range")) {
    double a = in[0]->c[0], b = in[1]->c[0], d = in[2]->c[0];
    int64_t c = d != 0 ? (int64_t)fmax(ceil((b - a) / d), 0) : -1;
    if (c < 0 || c > (1 << 20)) return mod_fail(m, s, "a zero delta or a range too long");
    ModVal *r = mod_add(m, s->output[0], in[0]->dt, 1, &c);
    if (!r) return mod_fail(m, s, "too many values");
    r->c = malloc((size_t)(c ? c : 1) * sizeof *r->c);
    for (int64_t i = 0; i < c; i++) r->c[i] = in[0]->dt == DT_F32 ? (float)(a + (double)i * d) : a + (double)i * d;
    return true;
  }
  // Reshape: 0 copies a dimension (allowzero 0), -1 takes the rest
  int64_t nd = onnx_numel(in[1]->dims, in[1]->nd), d[MAX_DIMS], total = onnx_numel(in[0]->dims, in[0]->nd), known = 1;
  int minus = -1;
  if (nd > MAX_DIMS || onnx_attr_i(s, "allowzero", 0)) return mod_fail(m, s, "a shape the importer does not take");
  for (int i = 0; i < nd; i++) {
    d[i] = (int64_t)in[1]->c[i];
    if (d[i] == 0 && i < in[0]->nd) d[i] = in[0]->dims[i];
    if (d[i] == -1) minus = i;
    else if (__builtin_mul_overflow(known, d[i], &known)) known = INT64_MAX;
  }
  if (minus >= 0 && known > 0) d[minus] = total / known;
  if (onnx_numel(d, (int)nd) != total) return mod_fail(m, s, "a shape of another number of elements");
  ModVal *r = mod_add(m, s->output[0], in[0]->dt, (int)nd, d);
  if (!r) return mod_fail(m, s, "too many values");
  if (in[0]->c) {
    r->c = malloc((size_t)(total ? total : 1) * sizeof *r->c);
    memcpy(r->c, in[0]->c, (size_t)total * sizeof *r->c);
    return true;
  }
  char name[64];
  snprintf(name, sizeof name, "%s%d", m->attr, ++m->ntmp);
  Value *y = im_temp_value(m->im, m->n, name, V_LET, in[0]->dt, (int)nd, d);
  im_emit_reshape(m->im, y, in[0]->v->ident);
  r->v = y;
  return true;
}

static const struct { const char *onnx, *op; } mod_binary[] = {
    {"Add", "+"}, {"Sub", "-"}, {"Mul", "*"}, {"Div", "/"}, {"Equal", "=="}, {"Greater", ">"},
    {"GreaterOrEqual", ">="}, {"Less", "<"}, {"LessOrEqual", "<="}, {"Where", "?"},
};
static const struct { const char *onnx, *fn; } mod_unary[] = {
    {"Tanh", "tanh"}, {"Exp", "exp"}, {"Log", "log"}, {"Sigmoid", "sigmoid"}, {"Abs", "abs"}, {"Sqrt", "sqrt"},
    {"Neg", "-"}, {"Identity", ""},
};

// Cast: a constant's values converted at import; a tensor by cast().
static bool mod_cast(Mod *m, const Onnx__NodeProto *s, ModVal *x) {
  DType to;
  if (!onnx_dtype_of((int32_t)onnx_attr_i(s, "to", 0), &to) || (to != DT_F32 && to != DT_I32 && to != DT_I64 && to != DT_BOOL))
    return mod_fail(m, s, "a type other than float, int32, int64 or bool");
  ModVal *r = mod_add(m, s->output[0], to, x->nd, x->dims);
  if (!r) return mod_fail(m, s, "too many values");
  int64_t c = onnx_numel(x->dims, x->nd);
  if (x->c) {
    r->c = malloc((size_t)(c ? c : 1) * sizeof *r->c);
    for (int64_t i = 0; i < c; i++) {
      double v = x->c[i];
      r->c[i] = to == DT_F32 ? (float)v : to == DT_BOOL ? v != 0 : x->dt == DT_F32 ? trunc(v) : v;
    }
    return true;
  }
  if (to == x->dt) {
    r->v = x->v;
    return true;
  }
  char name[64];
  snprintf(name, sizeof name, "%s%d", m->attr, ++m->ntmp);
  Value *y = im_temp_value(m->im, m->n, name, V_LET, to, x->nd, x->dims);
  im_emit(m->im, y, "cast(%s, %s)", x->v->ident, onnx_dtype_word(to));
  r->v = y;
  return true;
}

static bool mod_node(Mod *m, const Onnx__NodeProto *s) {
  const char *t = s->op_type;
  if (s->domain && s->domain[0] && strcmp(s->domain, "ai.onnx")) return mod_fail(m, s, "an op of another domain");
  if (!strcmp(t, "Constant")) {
    const Onnx__AttributeProto *v = onnx_attr(s, "value");
    if (!v || !v->t || s->n_output != 1) return mod_fail(m, s, "only a tensor 'value' is supported");
    return mod_constant(m, s, s->output[0], v->t);
  }
  ModVal *in[3];
  if (s->n_input > 3 || s->n_output != 1) return mod_fail(m, s, "more inputs or outputs than the importer takes");
  for (size_t i = 0; i < s->n_input; i++)
    if (!s->input[i][0] || !(in[i] = mod_find(m, s->input[i])))
      return mod_fail(m, s, "an absent input or one from outside the subgraph");
  for (size_t i = 0; i < sizeof mod_binary / sizeof *mod_binary; i++)
    if (!strcmp(t, mod_binary[i].onnx)) {
      int want = mod_binary[i].op[0] == '?' ? 3 : 2;
      if ((int)s->n_input != want) return mod_fail(m, s, "a wrong number of inputs");
      return mod_elementwise(m, s, mod_binary[i].op, in, want);
    }
  for (size_t i = 0; i < sizeof mod_unary / sizeof *mod_unary; i++)
    if (!strcmp(t, mod_unary[i].onnx)) {
      if (s->n_input != 1 || in[0]->dt != DT_F32) return mod_fail(m, s, "one float input is supported");
      const char *o = mod_operand(m, s, in[0]);
      ModVal *r = o ? mod_add(m, s->output[0], DT_F32, in[0]->nd, in[0]->dims) : NULL;
      if (!r) return o ? mod_fail(m, s, "too many values") : false;
      char name[64];
      snprintf(name, sizeof name, "%s%d", m->attr, ++m->ntmp);
      Value *y = im_temp_value(m->im, m->n, name, V_LET, DT_F32, in[0]->nd, in[0]->dims);
      if (mod_unary[i].fn[0] == '-') im_emit(m->im, y, "-%s", o);
      else im_emit(m->im, y, "%s(%s)", mod_unary[i].fn, o);
      r->v = y;
      return true;
    }
  if (!strcmp(t, "Cast") && s->n_input == 1) return mod_cast(m, s, in[0]);
  if ((!strcmp(t, "Shape") && s->n_input == 1) || (!strcmp(t, "Gather") && s->n_input == 2) ||
      (!strcmp(t, "Range") && s->n_input == 3) || (!strcmp(t, "Reshape") && s->n_input == 2))
    return mod_index_op(m, s, in);
  return mod_fail(m, s, "an op the importer does not inline in a modifier subgraph");
}

// x through the subgraph of attribute attr (x itself when there is none); NULL with a message.
static const Value *flex_mod(Importer *im, const Onnx__NodeProto *n, const char *attr, const Value *x) {
  const Onnx__AttributeProto *a = onnx_attr(n, attr);
  if (!a) return x;
  const Onnx__GraphProto *g = a->g;
  if (!g || g->n_input != 1 || g->n_output != 1) {
    im_fail(im, "node '%s' (FlexAttention): %s must be a graph of one input and one output", im_node(n), attr);
    return NULL;
  }
  Mod *m = calloc(1, sizeof *m);
  m->im = im;
  m->n = n;
  m->attr = attr;
  ModVal *in = mod_add(m, g->input[0]->name, DT_F32, x->ndim, x->dims);
  in->v = x;
  bool ok = true;
  for (size_t i = 0; i < g->n_initializer && ok; i++) ok = mod_constant(m, n, g->initializer[i]->name, g->initializer[i]);
  for (size_t i = 0; i < g->n_node && ok; i++) ok = mod_node(m, g->node[i]);
  const Value *r = NULL;
  ModVal *out = ok ? mod_find(m, g->output[0]->name) : NULL;
  if (ok && (!out || out->dt != DT_F32 || out->nd != x->ndim || memcmp(out->dims, x->dims, (size_t)x->ndim * sizeof *x->dims)))
    im_fail(im, "node '%s' (FlexAttention): %s must give a float tensor %s", im_node(n), attr,
            onnx_shape_str(x->dims, x->ndim));
  else if (ok) {
    const char *o = out->v ? out->v->ident : NULL;
    if (!o) {   // a constant: its values broadcast to the shape
      o = mod_operand(m, n, out);
      Value *y = o ? im_temp_value(im, n, attr, V_LET, DT_F32, x->ndim, x->dims) : NULL;
      if (y) im_emit(im, y, "%s", o);
      r = y;
    } else r = out->v;
  }
  for (int i = 0; i < m->nvals; i++) free(m->vals[i].c);
  free(m);
  return r;
}

static void node_flex_attention(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  const char *nm = im_node(n);
  Value *q = im_input(im, n, 0), *k = q ? im_input(im, n, 1) : NULL, *v = k ? im_input(im, n, 2) : NULL;
  if (!v || !im_is_tensor(im, n, q) || !im_is_tensor(im, n, k) || !im_is_tensor(im, n, v)) return;
  if (!float_tensor(im, n, q, "Q") || !float_tensor(im, n, k, "K") || !float_tensor(im, n, v, "V")) return;
  if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4 || k->dims[0] != q->dims[0] || v->dims[0] != q->dims[0] ||
      k->dims[3] != q->dims[3] || v->dims[1] != k->dims[1] || v->dims[2] != k->dims[2] || q->dims[1] % k->dims[1]) {
    im_fail(im, "node '%s' (FlexAttention): Q %s, K %s and V %s must be 4-D [B, H, S, d] that agree, with query "
            "heads a multiple of key/value heads", nm, onnx_shape_str(q->dims, q->ndim), onnx_shape_str(k->dims, k->ndim),
            onnx_shape_str(v->dims, v->ndim));
    return;
  }
  // float32 and float64 softmax agree to float32's rounding; a narrower type changes the numbers
  int64_t prec = onnx_attr_i(n, "softmax_precision", 1);
  if (prec != 1 && prec != 11) {
    im_fail(im, "node '%s' (FlexAttention): softmax_precision %lld (a narrower type than float32) is not supported", nm,
            (long long)prec);
    return;
  }
  int64_t B = q->dims[0], Hq = q->dims[1], Sq = q->dims[2], D = q->dims[3], Hkv = k->dims[1], L = k->dims[2];
  int64_t Dv = v->dims[3], r = Hq / Hkv;
  const Onnx__AttributeProto *sa = onnx_attr(n, "scale");
  double scale = sa && sa->has_f ? sa->f : 1.0 / sqrt((double)D);
  const char *sc = num((float)sqrt((float)scale));   // Q and K are each scaled by sqrt(scale) in float32
  int64_t sd[4] = {B, Hq, Sq, L};
  Value *s = im_temp_value(im, n, "scores", V_LET, DT_F32, 4, sd);
  // grouped queries: the r query heads of a key/value head are one [r Sq] block
  if (r == 1) im_emit(im, s, "matmul(%s * %s, %s * %s, tb = true)", q->ident, sc, k->ident, sc);
  else
    im_emit(im, s, "reshape(matmul(reshape(%s * %s, %lld, %lld, %lld, %lld), %s * %s, tb = true), %s)", q->ident, sc,
            (long long)B, (long long)Hkv, (long long)(r * Sq), (long long)D, k->ident, sc, dims_of(sd, 4));
  const Value *ms = flex_mod(im, n, "score_mod", s);
  if (!ms) return;
  // the reference's softmax: a row of -inf only is NaN, as there
  int64_t rd[4] = {B, Hq, Sq, 1};
  Value *mx = im_temp_value(im, n, "max", V_LET, DT_F32, 4, rd), *e = im_temp_value(im, n, "exp", V_LET, DT_F32, 4, sd);
  im_emit(im, mx, "max(%s, axis = -1, keep = true)", ms->ident);
  im_emit(im, e, "exp(%s - %s)", ms->ident, mx->ident);
  Value *p = im_temp_value(im, n, "probs", V_LET, DT_F32, 4, sd);
  im_emit(im, p, "%s / sum(%s, axis = -1, keep = true)", e->ident, e->ident);
  const Value *mp = flex_mod(im, n, "prob_mod", p);
  if (!mp) return;
  int64_t yd[4] = {B, Hq, Sq, Dv};
  Value *y = im_result(im, n, DT_F32, 4, yd);
  if (!y) return;
  if (r == 1) im_emit(im, y, "matmul(%s, %s)", mp->ident, v->ident);
  else
    im_emit(im, y, "reshape(matmul(reshape(%s, %lld, %lld, %lld, %lld), %s), %s)", mp->ident, (long long)B,
            (long long)Hkv, (long long)(r * Sq), (long long)L, v->ident, dims_of(yd, 4));
}

// The ops of the ai.onnx.preview domain.
const OnnxOp onnx_attention_preview_ops[] = {
    {"FlexAttention", node_flex_attention, NULL},
    {NULL, NULL, NULL},
};
