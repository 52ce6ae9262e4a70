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
  Value *v = im_add_value(im, "", V_LET, x->dtype, nd, d);
  im_emit(im, v, "%s[%s%lld]", x->ident, idx, (long long)t);
  return v;
}

// Scan (opset 9 and newer): the body once per element of the scan axis
// (reversed per input and output by the directions), the states threading
// through, each scan output stacked along its axis.
static void node_scan(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  if (im->opset < 9)
    return im_fail(im, "node '%s' (Scan): opset %lld's Scan (a batch axis and sequence_lens) is not supported; "
                   "opset 9 and newer are", im_node(n), (long long)im->opset);
  const Onnx__GraphProto *g = graph_attr(im, n, "body");
  if (!g) return;
  int64_t m = onnx_attr_i(n, "num_scan_inputs", -1);
  size_t nstate = n->n_input >= (size_t)(m > 0 ? m : 0) ? n->n_input - (size_t)m : 0;
  if (m < 1 || (size_t)m > n->n_input || n->n_input > MAX_CARRIED || g->n_input != n->n_input ||
      g->n_output != n->n_output || g->n_output < nstate)
    return im_fail(im, "node '%s' (Scan): num_scan_inputs %lld, %zu inputs and %zu outputs (at most %d) and a body of "
                   "%zu inputs and %zu outputs do not agree", im_node(n), (long long)m, n->n_input, n->n_output,
                   MAX_CARRIED, g->n_input, g->n_output);
  size_t nscan_out = n->n_output - nstate;
  int64_t in_dir[MAX_CARRIED] = {0}, in_axis[MAX_CARRIED] = {0}, out_dir[MAX_CARRIED] = {0},
          out_axis[MAX_CARRIED] = {0};
  if ((onnx_attr(n, "scan_input_directions") && onnx_attr_ints(n, "scan_input_directions", in_dir, MAX_CARRIED) != m) ||
      (onnx_attr(n, "scan_input_axes") && onnx_attr_ints(n, "scan_input_axes", in_axis, MAX_CARRIED) != m) ||
      (onnx_attr(n, "scan_output_directions") &&
       onnx_attr_ints(n, "scan_output_directions", out_dir, MAX_CARRIED) != (int)nscan_out) ||
      (onnx_attr(n, "scan_output_axes") && onnx_attr_ints(n, "scan_output_axes", out_axis, MAX_CARRIED) != (int)nscan_out))
    return im_fail(im, "node '%s' (Scan): a scan_*_directions or scan_*_axes attribute has another count than its "
                   "inputs or outputs", im_node(n));
  Value *in[MAX_CARRIED], *xs[MAX_CARRIED], **out = xcalloc(g->n_output + 1, sizeof *out);
  int64_t len = -1;
  for (size_t i = 0; i < n->n_input && !im->failed; i++) in[i] = im_input(im, n, i);
  for (int64_t j = 0; j < m && !im->failed; j++) {
    Value *x = in[nstate + (size_t)j];
    int a = im_axis(im, n, in_axis[j], x->ndim);
    if (a < 0) break;
    in_axis[j] = a;
    if (len >= 0 && x->dims[a] != len)
      im_fail(im, "node '%s' (Scan): scan input '%s' has %lld elements along its axis, another has %lld", im_node(n),
              x->onnx, (long long)x->dims[a], (long long)len);
    len = x->dims[a];
    xs[j] = x;
  }
  if (!im->failed && (len < 1 || len > MAX_UNROLL))
    im_fail(im, "node '%s' (Scan): a scan axis of %lld elements; the importer unrolls 1 to %d", im_node(n),
            (long long)len, MAX_UNROLL);
  Value **scans = im->failed ? NULL : xcalloc(nscan_out * (size_t)len + 1, sizeof *scans);
  for (int64_t t = 0; !im->failed && t < len; t++) {
    for (int64_t j = 0; j < m && !im->failed; j++)
      in[nstate + (size_t)j] = take(im, n, xs[j], (int)in_axis[j], in_dir[j] ? len - 1 - t : t);
    if (im->failed || !run_body(im, n, g, in, n->n_input, out)) break;
    for (size_t k = 0; k < nstate; k++) in[k] = out[k];
    for (size_t k = 0; k < nscan_out; k++) scans[k * (size_t)len + (size_t)t] = out[nstate + k];
  }
  for (size_t k = 0; k < nstate && !im->failed; k++)
    if (n->output[k][0]) bind(im, n, n->output[k], in[k]);
  for (size_t k = 0; k < nscan_out && !im->failed; k++) {
    if (!n->output[nstate + k][0]) continue;
    Value **vs = &scans[k * (size_t)len];
    int r = vs[0]->ndim;
    int a = out_axis[k] < 0 ? (int)out_axis[k] + r + 1 : (int)out_axis[k];
    if (a < 0 || a > r) {
      im_fail(im, "node '%s' (Scan): scan_output_axes %lld is outside [%d, %d]", im_node(n), (long long)out_axis[k],
              -(r + 1), r);
      break;
    }
    int64_t d[MAX_DIMS];
    for (int i = 0, s = 0; i <= r; i++) d[i] = i == a ? len : vs[0]->dims[s++];
    Value *y = im_result_at(im, n, nstate + k, vs[0]->dtype, r + 1, d);
    if (y) emit_stack(im, n, y, vs, (int)len, a, out_dir[k] != 0);
  }
  free(scans);
  free(out);
}

const OnnxOp onnx_control_ops[] = {
    {"If", node_if, NULL},
    {"Loop", node_loop, NULL},
    {"Scan", node_scan, NULL},
    {NULL, NULL, NULL},
};
