// onnx_ops_control.c: control flow with static shapes, by inlining the
// subgraphs: If with a constant condition translates the branch it picks;
// Loop with a constant trip count (and a condition known at import time)
// unrolls its body; Scan unrolls its body over the scan axis. The body's
// formal inputs are bound as values of their names (outer names stay visible,
// as in ONNX); after each pass its values are hidden (their ONNX names
// emptied, which no node input names), so the next pass defines them anew.
// The nodes are translated through im->run_nodes, set by the driver.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_importer.h"

enum { MAX_UNROLL = 1024, MAX_CARRIED = 64 };

// The graph attribute name of n; NULL with a message.
static const Onnx__GraphProto *graph_attr(Importer *im, const Onnx__NodeProto *n, const char *name) {
  const Onnx__AttributeProto *a = onnx_attr(n, name);
  if (a && a->g) return a->g;
  im_fail(im, "node '%s' (%s) lacks its graph attribute %s", im_node(n), n->op_type, name);
  return NULL;
}

static bool is_graph_output(Importer *im, const char *name) {
  for (size_t i = 0; i < im->graph->n_output; i++)
    if (!strcmp(im->graph->output[i]->name, name)) return true;
  return false;
}

// A value named name equal to src: a constant stays a constant (an integer
// list, a number), unless it is a graph output; anything else is a `let`.
static Value *bind(Importer *im, const Onnx__NodeProto *n, const char *name, Value *src) {
  if ((src->kind == V_INTS || src->kind == V_SCALAR) && !is_graph_output(im, name)) {
    Value *v = im_add_value(im, name, src->kind, src->dtype, src->ndim, src->dims);
    v->scalar = src->scalar;
    v->nints = src->nints;
    v->ints = xmalloc(sizeof *v->ints * (size_t)(src->nints ? src->nints : 1));
    if (src->nints) memcpy(v->ints, src->ints, sizeof *v->ints * (size_t)src->nints);
    return v;
  }
  if (!im_is_tensor(im, n, src)) return NULL;
  Value *v = im_add_value(im, name, V_LET, src->dtype, src->ndim, src->dims);
  im_emit(im, v, "%s", im_operand(im, src));
  return v;
}

// An integer (or bool) scalar constant named name.
static Value *int_const(Importer *im, const char *name, DType dt, int64_t x) {
  Value *v = im_add_value(im, name, V_INTS, dt, 0, NULL);
  v->nints = 1;
  v->ints = xmalloc(sizeof *v->ints);
  v->ints[0] = x;
  return v;
}

// Empties the ONNX names of the values from index start on: a pass of a
// body is done, and its names are free for the next one.
static void hide_from(Importer *im, int start) {
  for (int i = start; i < im->nvals; i++) im->vals[i]->onnx[0] = 0;
}

// Runs subgraph g once with its formal inputs bound to in[0..nin), and puts
// its outputs into out (which stay valid: values are never moved). False
// with a message.
static bool run_body(Importer *im, const Onnx__NodeProto *n, const Onnx__GraphProto *g, Value **in, size_t nin,
                     Value **out) {
  if (g->n_input != nin) {
    im_fail(im, "node '%s' (%s): its subgraph has %zu inputs; the op gives it %zu", im_node(n), n->op_type,
            g->n_input, nin);
    return false;
  }
  int start = im->nvals;
  for (size_t i = 0; i < nin && !im->failed; i++) {
    if (!g->input[i]->name) return im_fail(im, "node '%s' (%s): a subgraph input has no name", im_node(n), n->op_type), false;
    if (im_find(im, g->input[i]->name))   // ONNX forbids it; the outer value would be found first
      return im_fail(im, "node '%s' (%s): the subgraph input '%s' shadows a value of the outer graph", im_node(n),
                     n->op_type, g->input[i]->name), false;
    bind(im, n, g->input[i]->name, in[i]);
  }
  for (size_t i = 0; i < g->n_initializer && !im->failed; i++)
    if (g->initializer[i]->name) im_add_constant(im, g->initializer[i]->name, g->initializer[i], "initializer");
  if (!im->failed) im->run_nodes(im, g);
  for (size_t i = 0; i < g->n_output && !im->failed; i++) {
    out[i] = g->output[i]->name ? im_find(im, g->output[i]->name) : NULL;
    if (!out[i])
      im_fail(im, "node '%s' (%s): its subgraph's output '%s' is defined by no node", im_node(n), n->op_type,
              g->output[i]->name ? g->output[i]->name : "");
  }
  hide_from(im, start);
  return !im->failed;
}

// If: the branch the constant condition picks, its outputs bound to n's.
static void node_if(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  const Value *c = im_ints_input(im, n, 0, "condition");
  if (!c) return;
  if (c->nints != 1)
    return im_fail(im, "node '%s' (If): the condition has %d values; it is one bool", im_node(n), c->nints);
  const Onnx__GraphProto *g = graph_attr(im, n, c->ints[0] ? "then_branch" : "else_branch");
  if (!g) return;
  if (g->n_output != n->n_output)
    return im_fail(im, "node '%s' (If): the branch has %zu outputs, the node %zu", im_node(n), g->n_output,
                   n->n_output);
  Value **out = xcalloc(g->n_output + 1, sizeof *out);
  if (run_body(im, n, g, NULL, 0, out))
    for (size_t k = 0; k < n->n_output && !im->failed; k++)
      if (n->output[k][0]) bind(im, n, n->output[k], out[k]);
  free(out);
}

// `stack(v0, v1, ..., axis = a)` for y, in reverse order when reverse.
static void emit_stack(Importer *im, const Onnx__NodeProto *n, Value *y, Value **vs, int count, int axis,
                       bool reverse) {
  size_t cap = 64, len = 0;
  for (int t = 0; t < count; t++) cap += strlen(vs[t]->ident) + 2;
  char *e = xmalloc(cap);
  len += (size_t)snprintf(e, cap, "stack(");
  for (int t = 0; t < count && !im->failed; t++) {
    Value *v = vs[reverse ? count - 1 - t : t];
    if (!im_is_tensor(im, n, v)) break;
    len += (size_t)snprintf(e + len, cap - len, "%s%s", t ? ", " : "", v->ident);
  }
  snprintf(e + len, cap - len, ", axis = %d)", axis);
  if (!im->failed) {
    // a long stack is written as its own statement, not through im_emit's buffer
    bool out = is_graph_output(im, y->onnx);
    im_out(im, "    %s %s = %s   # %s\n", out ? "output" : "let", y->ident, e, onnx_shape_str(y->dims, y->ndim));
  }
  free(e);
}

// Loop: M (a constant) passes of the body, while its condition (a constant
// each pass) holds; the carried values thread through, the scan outputs are
// stacked along a new first axis.
static void node_loop(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  const Onnx__GraphProto *g = graph_attr(im, n, "body");
  if (!g) return;
  int64_t trips = -1;
  if (n->n_input > 0 && n->input[0][0]) {
    const Value *m = im_ints_input(im, n, 0, "trip count");
    if (!m) return;
    trips = m->nints == 1 ? m->ints[0] : -1;
    if (trips < 0) return im_fail(im, "node '%s' (Loop): the trip count must be one integer of at least 0", im_node(n));
  }
  bool cond = true;
  if (n->n_input > 1 && n->input[1][0]) {
    const Value *c = im_ints_input(im, n, 1, "condition");
    if (!c) return;
    cond = c->nints == 1 && c->ints[0];
  }
  if (trips < 0 && !(n->n_input > 1 && n->input[1][0]))
    return im_fail(im, "node '%s' (Loop): neither a trip count nor a condition: the loop never ends", im_node(n));
  size_t ncar = n->n_input > 2 ? n->n_input - 2 : 0;
  if (ncar > MAX_CARRIED || g->n_output < 1 + ncar || g->n_input != 2 + ncar || n->n_output != g->n_output - 1)
    return im_fail(im, "node '%s' (Loop): %zu carried values (at most %d), a body of %zu inputs and %zu outputs, and "
                   "%zu outputs of the node do not agree", im_node(n), ncar, MAX_CARRIED, g->n_input, g->n_output,
                   n->n_output);
  size_t nscan = g->n_output - 1 - ncar;
  Value *in[2 + MAX_CARRIED], **out = xcalloc(g->n_output, sizeof *out);
  Value **scans = xcalloc(nscan * MAX_UNROLL + 1, sizeof *scans);
  for (size_t k = 0; k < ncar && !im->failed; k++) in[2 + k] = im_input(im, n, 2 + k);
  int64_t it = 0;
  for (; cond && (trips < 0 || it < trips) && !im->failed; it++) {
    if (it >= MAX_UNROLL) {
      im_fail(im, "node '%s' (Loop): more than %d passes; the importer unrolls at most that many", im_node(n),
              MAX_UNROLL);
      break;
    }
    in[0] = int_const(im, "", DT_I64, it);
    in[1] = int_const(im, "", DT_BOOL, 1);
    if (!run_body(im, n, g, in, 2 + ncar, out)) break;
    if (out[0]->kind != V_INTS || out[0]->nints != 1) {
      im_fail(im, "node '%s' (Loop): the body's condition '%s' is not known at import time; the importer unrolls the "
              "loop", im_node(n), g->output[0]->name);
      break;
    }
    cond = out[0]->ints[0] != 0;
    for (size_t k = 0; k < ncar; k++) in[2 + k] = out[1 + k];
    for (size_t k = 0; k < nscan; k++) scans[k * MAX_UNROLL + (size_t)it] = out[1 + ncar + k];
  }
  for (size_t k = 0; k < ncar && !im->failed; k++)
    if (n->output[k][0]) bind(im, n, n->output[k], in[2 + k]);
  for (size_t k = 0; k < nscan && !im->failed; k++) {
    if (!n->output[ncar + k][0]) continue;
    if (it == 0) {
      im_fail(im, "node '%s' (Loop): no pass ran, so its scan output '%s' is empty, which the model language does not "
              "have", im_node(n), n->output[ncar + k]);
      break;
    }
    Value **vs = &scans[k * MAX_UNROLL];
    int64_t d[MAX_DIMS];
    d[0] = it;
    memcpy(d + 1, vs[0]->dims, sizeof *d * (size_t)vs[0]->ndim);
    for (int64_t t = 1; t < it; t++)
      if (vs[t]->ndim != vs[0]->ndim || memcmp(vs[t]->dims, vs[0]->dims, sizeof *d * (size_t)vs[0]->ndim)) {
        im_fail(im, "node '%s' (Loop): the scan output '%s' changes shape between passes", im_node(n),
                n->output[ncar + k]);
        break;
      }
    Value *y = im->failed ? NULL : im_result_at(im, n, ncar + k, vs[0]->dtype, vs[0]->ndim + 1, d);
    if (y) emit_stack(im, n, y, vs, (int)it, 0, false);
  }
  free(scans);
  free(out);
}

// Slice t of x along axis (x[:, ..., t] with axis colons), as a new value.
static Value *take(Importer *im, const Onnx__NodeProto *n, Value *x, int axis, int64_t t) {
  if (!im_is_tensor(im, n, x)) return NULL;
  int64_t d[MAX_DIMS];
  int nd = 0;
  for (int i = 0; i < x->ndim; i++)
    if (i != axis) d[nd++] = x->dims[i];
  char idx[256] = "";
  size_t k = 0;
  for (int i = 0; i < axis; i++) k += (size_t)snprintf(idx + k, sizeof idx - k, ":, ");
  return im_temp(im, n, "t", x->dtype, nd, d, "%s[%s%lld]", x->ident, idx, (long long)t);
}

// What one unrolled Scan works on: the states (in, then out), the scan
// inputs with their axes and directions, the scan outputs' axes and
// directions, and the stacked scan outputs it makes.
typedef struct {
  const Onnx__GraphProto *g;
  size_t nstate, m, nout;   // states, scan inputs, scan outputs
  int64_t in_dir[MAX_CARRIED], in_axis[MAX_CARRIED], out_dir[MAX_CARRIED], out_axis[MAX_CARRIED];
  Value *st[MAX_CARRIED], *xs[MAX_CARRIED], *res[MAX_CARRIED];
  int64_t len;              // the scan axis' length
} ScanRun;

// The scan axis' length (the same for every scan input) into s->len, the
// axes made non-negative; false with a message.
static bool scan_length(Importer *im, const Onnx__NodeProto *n, ScanRun *s) {
  s->len = -1;
  for (size_t j = 0; j < s->m; j++) {
    Value *x = s->xs[j];
    int a = im_axis(im, n, s->in_axis[j], x->ndim);
    if (a < 0) return false;
    s->in_axis[j] = a;
    if (s->len >= 0 && x->dims[a] != s->len)
      return im_fail(im, "node '%s' (Scan): scan input '%s' has %lld elements along its axis, another has %lld",
                     im_node(n), x->onnx, (long long)x->dims[a], (long long)s->len), false;
    s->len = x->dims[a];
  }
  if (s->len < 1 || s->len > MAX_UNROLL)
    return im_fail(im, "node '%s' (Scan): a scan axis of %lld elements; the importer unrolls 1 to %d", im_node(n),
                   (long long)s->len, MAX_UNROLL), false;
  return true;
}

// Runs the body once per element of the scan axis (reversed per input by
// its direction), the states threading through s->st; each scan output is
// stacked along its axis (reversed by its direction) into a new s->res[k].
static bool scan_unroll(Importer *im, const Onnx__NodeProto *n, ScanRun *s) {
  if (!scan_length(im, n, s)) return false;
  size_t nin = s->nstate + s->m;
  Value *in[MAX_CARRIED], **out = xcalloc(s->g->n_output + 1, sizeof *out);
  Value **scans = xcalloc(s->nout * (size_t)s->len + 1, sizeof *scans);
  for (size_t k = 0; k < s->nstate; k++) in[k] = s->st[k];
  for (int64_t t = 0; !im->failed && t < s->len; t++) {
    for (size_t j = 0; j < s->m && !im->failed; j++)
      in[s->nstate + j] = take(im, n, s->xs[j], (int)s->in_axis[j], s->in_dir[j] ? s->len - 1 - t : t);
    if (im->failed || !run_body(im, n, s->g, in, nin, out)) break;
    for (size_t k = 0; k < s->nstate; k++) in[k] = out[k];
    for (size_t k = 0; k < s->nout; k++) scans[k * (size_t)s->len + (size_t)t] = out[s->nstate + k];
  }
  for (size_t k = 0; k < s->nstate; k++) s->st[k] = in[k];
  for (size_t k = 0; k < s->nout && !im->failed; k++) {
    Value **vs = &scans[k * (size_t)s->len];
    int r = vs[0]->ndim;
    int a = s->out_axis[k] < 0 ? (int)s->out_axis[k] + r + 1 : (int)s->out_axis[k];
    if (a < 0 || a > r) {
      im_fail(im, "node '%s' (Scan): scan_output_axes %lld is outside [%d, %d]", im_node(n),
              (long long)s->out_axis[k], -(r + 1), r);
      break;
    }
    int64_t d[MAX_DIMS];
    for (int i = 0, q = 0; i <= r; i++) d[i] = i == a ? s->len : vs[0]->dims[q++];
    s->res[k] = im_temp_value(im, n, "scan", V_LET, vs[0]->dtype, r + 1, d);
    emit_stack(im, n, s->res[k], vs, (int)s->len, a, s->out_dir[k] != 0);
  }
  free(scans);
  free(out);
  return !im->failed;
}

// The attribute name's ints into v (count of them, all 0 when absent);
// false with a message when it has another count.
static bool scan_ints(Importer *im, const Onnx__NodeProto *n, const char *name, int64_t *v, size_t count) {
  if (!onnx_attr(n, name) || onnx_attr_ints(n, name, v, MAX_CARRIED) == (int)count) return true;
  im_fail(im, "node '%s' (Scan): %s must have %zu values, one per scan %s", im_node(n), name, count,
          strstr(name, "output") ? "output" : "input");
  return false;
}

// Opset 8: a batch axis first on every input and output, the scan axis next
// on the scan inputs and outputs: the scan runs per batch element, its
// results stacked over the batch. sequence_lens must be absent.
static void scan_batched(Importer *im, const Onnx__NodeProto *n, ScanRun *s, Value **in) {
  if (n->input[0][0])
    return im_fail(im, "node '%s' (Scan): sequence_lens is given; the importer takes full sequences only", im_node(n));
  int64_t b = -1;
  for (size_t i = 0; i < s->nstate + s->m; i++) {
    if (in[i]->ndim < (i < s->nstate ? 1 : 2) || (b >= 0 && in[i]->dims[0] != b))
      return im_fail(im, "node '%s' (Scan): input '%s' is %s; opset 8 takes one batch axis first on every input "
                     "(and the scan axis next on scan inputs)", im_node(n), in[i]->onnx,
                     onnx_shape_str(in[i]->dims, in[i]->ndim));
    b = in[i]->dims[0];
  }
  if (b > MAX_UNROLL) return im_fail(im, "node '%s' (Scan): a batch of %lld; at most %d", im_node(n), (long long)b, MAX_UNROLL);
  size_t nres = s->nstate + s->nout;
  Value **per = xcalloc(nres * (size_t)b + 1, sizeof *per);
  for (int64_t e = 0; e < b && !im->failed; e++) {
    for (size_t k = 0; k < s->nstate && !im->failed; k++) s->st[k] = take(im, n, in[k], 0, e);
    for (size_t j = 0; j < s->m && !im->failed; j++) s->xs[j] = take(im, n, in[s->nstate + j], 0, e);
    if (im->failed || !scan_unroll(im, n, s)) break;
    for (size_t k = 0; k < nres; k++) per[k * (size_t)b + (size_t)e] = k < s->nstate ? s->st[k] : s->res[k - s->nstate];
  }
  for (size_t k = 0; k < nres && !im->failed; k++) {
    Value **vs = &per[k * (size_t)b];
    int64_t d[MAX_DIMS];
    d[0] = b;
    memcpy(d + 1, vs[0]->dims, sizeof *d * (size_t)vs[0]->ndim);
    Value *y = n->output[k][0] ? im_result_at(im, n, k, vs[0]->dtype, vs[0]->ndim + 1, d) : NULL;
    if (y) emit_stack(im, n, y, vs, (int)b, 0, false);
  }
  free(per);
}

// Scan: the body unrolled over the scan axis; opset 8's batched form runs it
// per batch element.
static void node_scan(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  const Onnx__GraphProto *g = graph_attr(im, n, "body");
  if (!g) return;
  bool v8 = im->opset < 9;
  size_t first = v8 ? 1 : 0;   // opset 8: sequence_lens first
  int64_t m = onnx_attr_i(n, "num_scan_inputs", -1);
  ScanRun *s = xcalloc(1, sizeof *s);
  s->g = g;
  if (m < 1 || n->n_input < first + (size_t)m || n->n_input - first > MAX_CARRIED ||
      g->n_input != n->n_input - first || g->n_output != n->n_output || g->n_output < n->n_input - first - (size_t)m) {
    im_fail(im, "node '%s' (Scan): num_scan_inputs %lld, %zu inputs and %zu outputs (at most %d) and a body of %zu "
            "inputs and %zu outputs do not agree", im_node(n), (long long)m, n->n_input, n->n_output, MAX_CARRIED,
            g->n_input, g->n_output);
    free(s);
    return;
  }
  s->m = (size_t)m;
  s->nstate = n->n_input - first - s->m;
  s->nout = n->n_output - s->nstate;
  Value *in[MAX_CARRIED];
  for (size_t i = 0; i < s->nstate + s->m && !im->failed; i++) in[i] = im_input(im, n, first + i);
  if (!im->failed && v8) {
    // per batch element the scan axis is the first: no axes attributes
    if (scan_ints(im, n, "directions", s->in_dir, s->m)) scan_batched(im, n, s, in);
    free(s);
    return;
  }
  if (im->failed || !scan_ints(im, n, "scan_input_directions", s->in_dir, s->m) ||
      !scan_ints(im, n, "scan_input_axes", s->in_axis, s->m) ||
      !scan_ints(im, n, "scan_output_directions", s->out_dir, s->nout) ||
      !scan_ints(im, n, "scan_output_axes", s->out_axis, s->nout)) {
    free(s);
    return;
  }
  for (size_t k = 0; k < s->nstate; k++) s->st[k] = in[k];
  for (size_t j = 0; j < s->m; j++) s->xs[j] = in[s->nstate + j];
  if (scan_unroll(im, n, s))
    for (size_t k = 0; k < s->nstate + s->nout && !im->failed; k++)
      if (n->output[k][0]) bind(im, n, n->output[k], k < s->nstate ? s->st[k] : s->res[k - s->nstate]);
  free(s);
}

const OnnxOp onnx_control_ops[] = {
    {"If", node_if, NULL},
    {"Loop", node_loop, NULL},
    {"Scan", node_scan, NULL},
    {NULL, NULL, NULL},
};
