// onnx_ops_sequence.c: the ONNX sequence ops. A sequence's length and items
// are known when importing (positions are constants, or inputs built in for
// the run's values), so a sequence is a list of the importer's values
// (V_SEQ), and only the tensors taken out of it reach the model file.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_importer.h"

// A new sequence value for n's output of the items given (copied).
static Value *sequence(Importer *im, const Onnx__NodeProto *n, DType dt, Value **items, int count) {
  if (n->n_output < 1 || !n->output[0][0]) return NULL;
  Value *s = im_add_value(im, n->output[0], V_SEQ, dt, 0, NULL);
  s->items = xmalloc(sizeof *s->items * (size_t)(count + 1));
  if (count) memcpy(s->items, items, sizeof *items * (size_t)count);
  s->nitems = count;
  return s;
}

static Value *sequence_input(Importer *im, const Onnx__NodeProto *n, size_t i) {
  Value *s = im_input(im, n, i);
  if (s && s->kind != V_SEQ) {
    im_fail(im, "node '%s' (%s): '%s' is not a sequence", im_node(n), n->op_type, s->onnx);
    return NULL;
  }
  return s;
}

// The position input i (default dflt when absent) in [-len, len - 1], or
// [-len, len] where end is allowed (an insert); -1 with a message.
static int position(Importer *im, const Onnx__NodeProto *n, size_t i, int len, int dflt, bool end) {
  if (i >= n->n_input || !n->input[i][0]) return dflt;
  const Value *p = im_ints_input(im, n, i, "position");
  if (!p) return -1;
  if (p->nints != 1) {
    im_fail(im, "node '%s' (%s): the position holds %d values, not one", im_node(n), n->op_type, p->nints);
    return -1;
  }
  int64_t k = p->ints[0], top = end ? len : len - 1;
  if (k < -len || k > top) {
    im_fail(im, "node '%s' (%s): position %lld is outside a sequence of %d tensors", im_node(n), n->op_type,
            (long long)k, len);
    return -1;
  }
  return (int)(k < 0 ? k + len : k);
}

static void node_empty(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  DType dt = DT_F32;
  int64_t t = onnx_attr_i(n, "dtype", 1);
  if (!onnx_dtype_of((int32_t)t, &dt)) {
    im_fail(im, "node '%s' (SequenceEmpty): dtype %lld is none smelt has", im_node(n), (long long)t);
    return;
  }
  sequence(im, n, dt, NULL, 0);
}

static void node_construct(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value **items = xmalloc(sizeof *items * (n->n_input + 1));
  int k = 0;
  for (size_t i = 0; i < n->n_input; i++) {
    Value *v = im_input(im, n, i);
    if (!v || !im_is_tensor(im, n, v)) break;
    if (k && v->dtype != items[0]->dtype) {
      im_fail(im, "node '%s' (SequenceConstruct): '%s' is %s, the first tensor %s", im_node(n), v->onnx,
              onnx_dtype_word(v->dtype), onnx_dtype_word(items[0]->dtype));
      break;
    }
    items[k++] = v;
  }
  if (!im->failed) sequence(im, n, k ? items[0]->dtype : DT_F32, items, k);
  free(items);
}

static void node_insert(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *s = sequence_input(im, n, 0), *t = s ? im_input(im, n, 1) : NULL;
  if (!t || !im_is_tensor(im, n, t)) return;
  int at = position(im, n, 2, s->nitems, s->nitems, true);
  if (at < 0) return;
  Value **items = xmalloc(sizeof *items * (size_t)(s->nitems + 1));
  memcpy(items, s->items, sizeof *items * (size_t)at);
  items[at] = t;
  memcpy(items + at + 1, s->items + at, sizeof *items * (size_t)(s->nitems - at));
  sequence(im, n, t->dtype, items, s->nitems + 1);
  free(items);
}

static void node_erase(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *s = sequence_input(im, n, 0);
  if (!s) return;
  if (!s->nitems) {
    im_fail(im, "node '%s' (SequenceErase): the sequence is empty", im_node(n));
    return;
  }
  int at = position(im, n, 1, s->nitems, s->nitems - 1, false);
  if (at < 0) return;
  Value **items = xmalloc(sizeof *items * (size_t)s->nitems);
  memcpy(items, s->items, sizeof *items * (size_t)at);
  memcpy(items + at, s->items + at + 1, sizeof *items * (size_t)(s->nitems - at - 1));
  sequence(im, n, s->dtype, items, s->nitems - 1);
  free(items);
}

static void node_at(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *s = sequence_input(im, n, 0);
  if (!s) return;
  int at = position(im, n, 1, s->nitems, 0, false);
  if (at < 0) return;
  const Value *t = s->items[at];
  Value *y = im_result(im, n, t->dtype, t->ndim, t->dims);
  if (y) im_emit(im, y, "%s", im_operand(im, t));
}

static void node_length(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *s = sequence_input(im, n, 0);
  if (!s || n->n_output < 1) return;
  Value *y = im_add_value(im, n->output[0], V_INTS, DT_I64, 0, NULL);
  y->ints = xmalloc(sizeof *y->ints);
  y->ints[0] = s->nitems;
  y->nints = 1;
}

// ConcatFromSequence: the items joined along axis, or stacked on a new one.
static void node_concat(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *s = sequence_input(im, n, 0);
  if (!s) return;
  if (!s->nitems) {
    im_fail(im, "node '%s' (ConcatFromSequence): the sequence is empty", im_node(n));
    return;
  }
  bool stack = onnx_attr_i(n, "new_axis", 0) != 0;
  const Value *first = s->items[0];
  int rank = first->ndim + (stack ? 1 : 0);
  int axis = im_axis(im, n, onnx_attr_i(n, "axis", 0), rank);
  if (im->failed) return;
  int64_t d[MAX_DIMS];
  size_t cap = 64 + (size_t)s->nitems * 80, k = 0;
  char *list = xmalloc(cap);
  for (int i = 0; i < s->nitems; i++) {
    const Value *v = s->items[i];
    bool ok = v->ndim == first->ndim;
    for (int j = 0; j < v->ndim && ok; j++) ok = (!stack && j == axis) || v->dims[j] == first->dims[j];
    if (!ok) {
      im_fail(im, "node '%s' (ConcatFromSequence): %s and %s differ %s", im_node(n), onnx_shape_str(first->dims, first->ndim),
              onnx_shape_str(v->dims, v->ndim), stack ? "(stacking needs one shape)" : "outside the axis");
      free(list);
      return;
    }
    k += (size_t)snprintf(list + k, cap - k, "%s%s", i ? ", " : "", im_operand(im, v));
  }
  if (stack) {
    for (int j = 0, src = 0; j < rank; j++) d[j] = j == axis ? s->nitems : first->dims[src++];
  } else {
    memcpy(d, first->dims, sizeof(int64_t) * (size_t)first->ndim);
    d[axis] = 0;
    for (int i = 0; i < s->nitems; i++) d[axis] += s->items[i]->dims[axis];
  }
  Value *y = im_result(im, n, first->dtype, rank, d);
  if (y) im_emit(im, y, "%s(%s, axis = %d)", stack ? "stack" : "concat", list, axis);
  free(list);
}

// SplitToSequence: slices of the input along axis (sizes from split, a
// scalar chunk size, or 1 each with keepdims deciding whether the axis stays).
static void node_split(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  Value *x = im_input(im, n, 0);
  if (!x || !im_is_tensor(im, n, x)) return;
  int axis = im_axis(im, n, onnx_attr_i(n, "axis", 0), x->ndim);
  if (im->failed) return;
  int64_t len = x->dims[axis], sizes[4096];
  int count = 0;
  bool squeeze = false;
  if (n->n_input > 1 && n->input[1][0]) {
    const Value *sp = im_ints_input(im, n, 1, "split");
    if (!sp) return;
    if (sp->ndim == 0) {   // a chunk size: the last chunk the rest
      if (sp->ints[0] < 1) return im_fail(im, "node '%s' (SplitToSequence): split %lld", im_node(n), (long long)sp->ints[0]);
      for (int64_t at = 0; at < len && count < 4096; at += sp->ints[0])
        sizes[count++] = at + sp->ints[0] <= len ? sp->ints[0] : len - at;
    } else {
      int64_t total = 0;
      for (int i = 0; i < sp->nints && count < 4096; i++) total += sizes[count++] = sp->ints[i];
      if (total != len)
        return im_fail(im, "node '%s' (SplitToSequence): the sizes add up to %lld, the axis is %lld", im_node(n),
                       (long long)total, (long long)len);
    }
  } else {
    squeeze = onnx_attr_i(n, "keepdims", 1) == 0;
    for (int64_t i = 0; i < len && count < 4096; i++) sizes[count++] = 1;
  }
  if (count >= 4096) return im_fail(im, "node '%s' (SplitToSequence): more than 4096 parts", im_node(n));
  for (int i = 0; i < count; i++)
    if (sizes[i] < 1) return im_fail(im, "node '%s' (SplitToSequence): an empty part", im_node(n));
  Value **items = xmalloc(sizeof *items * (size_t)(count + 1));
  int64_t at = 0;
  for (int i = 0; i < count && !im->failed; i++) {
    char tag[32], index[1024];
    snprintf(tag, sizeof tag, "%d", i);
    int64_t d[MAX_DIMS];
    int nd = 0;
    size_t k = 0;
    for (int j = 0; j < x->ndim; j++) {
      if (j == axis) k += (size_t)snprintf(index + k, sizeof index - k, "%s%lld:%lld", j ? ", " : "", (long long)at,
                                           (long long)(at + sizes[i]));
      else k += (size_t)snprintf(index + k, sizeof index - k, "%s:", j ? ", " : "");
      if (j != axis || !squeeze) d[nd++] = j == axis ? sizes[i] : x->dims[j];
    }
    Value *v;
    if (squeeze) {
      char dims[512];
      onnx_join_ints(dims, sizeof dims, d, nd);
      v = im_temp(im, n, tag, x->dtype, nd, d, "reshape(%s[%s]%s%s)", x->ident, index, nd ? ", " : "", dims);
    } else v = im_temp(im, n, tag, x->dtype, nd, d, "%s[%s]", x->ident, index);
    items[i] = v;
    at += sizes[i];
  }
  if (!im->failed) sequence(im, n, x->dtype, items, count);
  free(items);
}

const OnnxOp onnx_sequence_ops[] = {
    {"SequenceEmpty", node_empty, NULL},
    {"SequenceConstruct", node_construct, NULL},
    {"SequenceInsert", node_insert, NULL},
    {"SequenceErase", node_erase, NULL},
    {"SequenceAt", node_at, NULL},
    {"SequenceLength", node_length, NULL},
    {"ConcatFromSequence", node_concat, NULL},
    {"SplitToSequence", node_split, NULL},
    {NULL, NULL, NULL},
};
