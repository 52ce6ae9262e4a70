// onnx_import.c: an ONNX model (a ModelProto, read by the protobuf-c code
// generated from onnx.proto) to a model file of the language, and its float
// initializers to a safetensors file beside it (docs/onnx.md). Shapes are
// static: every dimension is a number or a dim_param bound by -D. The model
// file is written only when every node is understood; otherwise one message
// lists every unsupported op type with its nodes and the opset.
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler.h"
#include "onnx.pb-c.h"
#include "onnx_import.h"
#include "onnx_importer.h"
#include "tensorfile.h"


// The `param` lines of the weights the statements read, into f; the others
// leave the weights file (a constant consumed when importing, such as
// Resize's scales, is no parameter of the model).
static void declare_params(Importer *im, FILE *f) {
  int kept = 0;
  for (int i = 0; i < im->nw; i++) {
    const Value *v = im->wvals[i];
    if (v && !im_reads(im, v->ident)) {
      free(im->wdata[i]);
      continue;
    }
    // a stdlib layer's has no line: the call declares it; one the importer
    // computes (named ONNX-NAME \x01 TAG, im_temp_value) says what it is for
    const char *tag = v ? strchr(v->onnx, '\x01') : NULL;
    if (v)
      fprintf(f, "    param %s: f32%s = zeros   # '%.*s'%s%s\n", v->ident, onnx_shape_str(v->dims, v->ndim),
              (int)(tag ? tag - v->onnx : (ptrdiff_t)strlen(v->onnx)), v->onnx, tag ? ", computed: " : "",
              tag ? tag + 1 : "");
    im->wnames[kept] = im->wnames[i];
    im->wdtypes[kept] = im->wdtypes[i];
    im->wshapes[kept] = im->wshapes[i];
    im->wdata[kept] = im->wdata[i];
    im->wvals[kept++] = im->wvals[i];
  }
  im->nw = kept;
}

// Whether a value name can be written into a comment of the model file: no
// control character (a newline would end the comment and start a line).
static bool printable(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
  return true;
}

// False with a message when a name or op type the importer reads is absent
// (protobuf leaves an unset string NULL) or a value's name holds a control
// character.
static bool strings_present(Importer *im, const Onnx__GraphProto *g) {
  static const char bad_name[] = "value names must not hold control characters";
  for (size_t i = 0; i < g->n_node; i++) {
    const Onnx__NodeProto *n = g->node[i];
    bool ok = n->op_type != NULL, plain = true;
    for (size_t k = 0; k < n->n_input && ok; k++) ok = n->input[k] != NULL, plain &= ok && printable(n->input[k]);
    for (size_t k = 0; k < n->n_output && ok; k++) ok = n->output[k] != NULL, plain &= ok && printable(n->output[k]);
    for (size_t k = 0; k < n->n_attribute && ok; k++) ok = n->attribute[k]->name != NULL;
    if (!ok) return im_fail(im, "node %zu has no op type, or an input, output or attribute without a name", i), false;
    if (!plain) return im_fail(im, "node '%s' (%s): %s", im_node(n), n->op_type, bad_name), false;
  }
  for (size_t i = 0; i < g->n_input + g->n_output; i++) {
    const Onnx__ValueInfoProto *v = i < g->n_input ? g->input[i] : g->output[i - g->n_input];
    if (!v->name) return im_fail(im, "a graph %s has no name", i < g->n_input ? "input" : "output"), false;
    if (!printable(v->name)) return im_fail(im, "graph %s %zu: %s", i < g->n_input ? "input" : "output", i, bad_name), false;
  }
  for (size_t i = 0; i < g->n_initializer; i++) {
    if (!g->initializer[i]->name) return im_fail(im, "initializer %zu has no name", i), false;
    if (!printable(g->initializer[i]->name)) return im_fail(im, "initializer %zu: %s", i, bad_name), false;
  }
  return true;
}

static void node_constant(Importer *im, const Onnx__NodeProto *n, const char *arg) {
  (void)arg;
  const Onnx__AttributeProto *a = onnx_attr(n, "value");
  if (n->n_output < 1) return im_fail(im, "node '%s' (Constant) has no output", im_node(n));
  if (a && a->t) return im_add_constant(im, n->output[0], a->t, "Constant");
  if ((a = onnx_attr(n, "value_float")) && a->has_f) {
    Value *v = im_add_value(im, n->output[0], V_SCALAR, DT_F32, 0, NULL);
    v->scalar = a->f;
    return;
  }
  if ((a = onnx_attr(n, "value_ints")) || (a = onnx_attr(n, "value_int"))) {
    int64_t one = a->i;
    int64_t dim = a->n_ints ? (int64_t)a->n_ints : 1;
    Value *v = im_add_value(im, n->output[0], V_INTS, DT_I64, a->n_ints ? 1 : 0, &dim);
    v->nints = (int)dim;
    v->ints = xmalloc((size_t)dim * sizeof *v->ints);
    memcpy(v->ints, a->n_ints ? a->ints : &one, (size_t)dim * sizeof *v->ints);
    return;
  }
  im_fail(im, "node '%s' (Constant): the importer reads value, value_float, value_int and value_ints", im_node(n));
}


// Every unsupported op type, with its nodes, in one message; false when there is one.
static const OnnxOp core_ops[] = {{"Constant", node_constant, NULL}, {NULL, NULL, NULL}};
static const OnnxOp *const op_tables[] = {
    core_ops,
    onnx_math_ops,
    onnx_shape_ops,
    onnx_nn_ops,
    onnx_reduce_ops,
    onnx_norm_ops,
    onnx_rnn_ops,
    onnx_loss_ops,
    onnx_attention_ops,
    onnx_image_ops,
    onnx_sequence_ops,
    onnx_signal_ops,
    onnx_misc_ops,
    onnx_control_ops,
};

// The tables of the ops of other domains than the default one.
static const struct {
  const char *domain;
  const OnnxOp *ops;
} domain_tables[] = {
    {"ai.onnx.preview", onnx_attention_preview_ops},
    {"ai.onnx.preview.training", onnx_training_ops},
    {"ai.onnx.ml", onnx_ml_ops},
};

// The row that translates n's op type in its domain, or NULL.
static const OnnxOp *op_of(const Onnx__NodeProto *n) {
  const char *dom = n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx") ? n->domain : NULL;
  for (size_t t = 0; !dom && t < sizeof op_tables / sizeof *op_tables; t++)
    for (const OnnxOp *o = op_tables[t]; o->op_type; o++)
      if (!strcmp(n->op_type, o->op_type)) return o;
  for (size_t t = 0; dom && t < sizeof domain_tables / sizeof *domain_tables; t++)
    for (const OnnxOp *o = domain_tables[t].ops; o && o->op_type; o++)
      if (!strcmp(dom, domain_tables[t].domain) && !strcmp(n->op_type, o->op_type)) return o;
  return NULL;
}

// Translates node n: its op's function, then a check that it made every
// output the graph names.
static void translate(Importer *im, const Onnx__GraphProto *g, const Onnx__NodeProto *n) {
  const OnnxOp *op = op_of(n);
  if (!op) {
    const char *dom = n->domain && n->domain[0] ? n->domain : "ai.onnx";
    im_fail(im, "node '%s' (%s, domain %s) of the subgraph '%s': the importer does not support the op", im_node(n),
            n->op_type, dom, g->name ? g->name : "");
    return;
  }
  op->fn(im, n, op->arg);
  for (size_t o = 0; o < n->n_output && !im->failed; o++)
    if (n->output[o][0] && !im_find(im, n->output[o]))
      im_fail(im, "node '%s' (%s): its output %zu ('%s') is not supported", im_node(n), n->op_type, o + 1,
              n->output[o]);
}

// Translates g's nodes in turn (the main graph's, or a subgraph's, whose
// op types check_ops has not seen: one it lacks fails here). In the main
// graph, a group of nodes that is a stdlib layer becomes one call.
static void run_nodes(Importer *im, const Onnx__GraphProto *g) {
  if (g != im->graph && !strings_present(im, g)) return;
  OnnxLayers *layers = g == im->graph ? onnx_find_layers(im, g) : NULL;
  for (size_t i = 0; i < g->n_node && !im->failed; i++) {
    if (onnx_layer_holds(layers, i)) continue;
    const size_t *held;
    int nheld;
    if (onnx_layer_at(im, layers, i, &held, &nheld)) continue;
    for (int k = 0; k < nheld && !im->failed; k++) translate(im, g, g->node[held[k]]);
    if (!im->failed) translate(im, g, g->node[i]);
  }
  onnx_layers_free(layers);
}

static bool check_ops(Importer *im, const Onnx__GraphProto *g) {
  bool *done = xcalloc(g->n_node ? g->n_node : 1, sizeof *done);
  int types = 0;
  char *msg = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&msg, &len);
  for (size_t i = 0; i < g->n_node; i++) {
    const Onnx__NodeProto *n = g->node[i];
    if (done[i] || op_of(n)) continue;
    types++;
    const char *dom = n->domain && n->domain[0] ? n->domain : "ai.onnx";
    fprintf(m, "\n  %s (domain %s, opset %lld): ", n->op_type, dom, (long long)im_opset_of(im, dom));
    int k = 0;
    for (size_t j = i; j < g->n_node; j++) {
      const Onnx__NodeProto *o = g->node[j];
      const char *od = o->domain && o->domain[0] ? o->domain : "ai.onnx";
      if (done[j] || strcmp(o->op_type, n->op_type) || strcmp(od, dom)) continue;
      done[j] = true;
      fprintf(m, "%s'%s'", k++ ? ", " : "", im_node(o));
    }
  }
  fclose(m);
  if (types)
    fprintf(im->err, "smelt: error: %s: %d op type%s the importer does not support:%s\n", im->path, types,
            types == 1 ? "" : "s", msg);
  free(msg);
  free(done);
  return types == 0;
}

// A graph output that is a constant (a Constant node's, an initializer):
// an `output` line that builds it, the constant itself renamed when it is
// a param. Left for the caller to refuse when its name is read already.
static void constant_output(Importer *im, Value *v) {
  if (im_reads(im, v->ident) || (v->kind == V_INTS && v->tensor_written)) return;
  char *e = NULL, dims[512];
  onnx_join_ints(dims, sizeof dims, v->dims, v->ndim);
  if (v->kind == V_INTS) e = im_ints_expr(im, "an output", v);
  else if (v->kind == V_SCALAR) {
    e = xmalloc(600);
    if (v->ndim) snprintf(e, 600, "fill(%s, %s)", im_operand(im, v), dims);
    else snprintf(e, 600, "fill(%s, 1)[0]", im_operand(im, v));
  } else if (v->kind == V_PARAM && onnx_numel(v->dims, v->ndim)) {
    char *old = v->ident;
    size_t len = strlen(v->onnx) + 8;
    char *base = xmalloc(len);
    snprintf(base, len, "%s_value", v->onnx);
    v->ident = im_ident_for(im, base);   // the param's name; the output keeps the ONNX one
    free(base);
    for (int w = 0; w < im->nw; w++)
      if (im->wnames[w] == old) im->wnames[w] = v->ident;
    im_out(im, "    output %s = %s   # %s\n", old, v->ident, onnx_shape_str(v->dims, v->ndim));
    free(old);
    v->kind = V_LET;
    return;
  }
  if (!e) return;
  im_out(im, "    output %s = %s   # %s\n", v->ident, e, onnx_shape_str(v->dims, v->ndim));
  free(e);
  v->kind = V_LET;
}

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

// The integer tensors of the tensor file path (NULL: none), whose values
// im_specialize may build a model for.
static void load_known(Importer *im, const char *path) {
  if (!path) return;
  char err[512];
  TensorReader *r = tensor_reader_open(path, err, sizeof err);
  if (!r) return;   // the run reports its inputs file itself
  uint32_t n = tensor_reader_count(r);
  const char *name;
  uint32_t dtype;
  Shape shape;
  for (uint32_t i = 0; i < n && tensor_reader_next(r, &name, &dtype, &shape); i++) {
    int64_t count = shape_numel(&shape);
    bool wanted = (dtype == DT_I64 || dtype == DT_I32 || dtype == DT_BOOL || dtype == DT_F32) && count <= 4096;
    uint64_t bytes = (uint64_t)count * dtype_size(dtype);
    char *raw = wanted ? xmalloc(bytes + 1) : NULL;
    if (!tensor_reader_bytes(r, raw, bytes)) {
      free(raw);
      break;
    }
    if (!wanted) continue;
    im->known = xrealloc(im->known, sizeof *im->known * (size_t)(im->nknown + 1));
    KnownValues *kv = &im->known[im->nknown++];
    kv->name = xstrdup(name);
    kv->dtype = dtype;
    kv->shape = shape;
    kv->values = xcalloc((size_t)(count ? count : 1), sizeof *kv->values);
    kv->floats = dtype == DT_F32 ? xcalloc((size_t)(count ? count : 1), sizeof *kv->floats) : NULL;
    for (int64_t k = 0; k < count; k++) {
      if (dtype == DT_I64) memcpy(&kv->values[k], raw + 8 * k, 8);
      else if (dtype == DT_I32) {
        int32_t x;
        memcpy(&x, raw + 4 * k, 4);
        kv->values[k] = x;
      } else if (dtype == DT_BOOL) kv->values[k] = raw[k] != 0;
      else memcpy(&kv->floats[k], raw + 4 * k, 4);
    }
    free(raw);
  }
  tensor_reader_close(r);
}

void onnx_import_free(OnnxImport *info) {
  for (int i = 0; i < info->ninputs + info->noutputs; i++) {
    free(info->onnx[i]);
    free(info->ident[i]);
  }
  for (int i = 0; i < info->nbuilt; i++) free(info->built[i]);
  free(info->onnx);
  free(info->ident);
  free(info->built);
  memset(info, 0, sizeof *info);
}

// The names of the graph's inputs and outputs into info.
static void record_names(Importer *im, OnnxImport *info) {
  const Onnx__GraphProto *g = im->graph;
  size_t cap = g->n_input + g->n_output + 1;
  info->onnx = xcalloc(cap, sizeof *info->onnx);
  info->ident = xcalloc(cap, sizeof *info->ident);
  for (int pass = 0; pass < 2; pass++) {
    size_t n = pass ? g->n_output : g->n_input;
    for (size_t i = 0; i < n; i++) {
      const Value *v = im_find(im, (pass ? g->output : g->input)[i]->name);
      if (!v || (pass == 0 && v->kind != V_INPUT)) continue;
      int k = info->ninputs + info->noutputs;
      info->onnx[k] = xstrdup(v->onnx);
      info->ident[k] = xstrdup(v->ident);
      if (pass) info->noutputs++;
      else info->ninputs++;
    }
  }
  info->weights = im->nw > 0;
  info->built = xcalloc((size_t)im->nvals + 1, sizeof *info->built);
  for (int i = 0; i < im->nvals; i++)
    if (im->vals[i]->specialized) info->built[info->nbuilt++] = xstrdup(im->vals[i]->onnx);
}

int onnx_import(const char *path, const char *smelt_path, const Define *defs, int ndefs, const char *values,
                FILE *err, OnnxImport *info) {
  Importer im = {.path = path, .err = err};
  if (info) memset(info, 0, sizeof *info);
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(err, "smelt: error: cannot read '%s': %s\n", path, strerror(errno));
    return 1;
  }
  char *buf = NULL;
  size_t len = 0, cap = 0, got;
  do {
    if (len == cap) buf = xrealloc(buf, cap = cap ? cap * 2 : 1 << 16);
    got = fread(buf + len, 1, cap - len, f);
    len += got;
  } while (got);
  fclose(f);
  Onnx__ModelProto *model = onnx__model_proto__unpack(NULL, len, (const uint8_t *)buf);
  free(buf);
  if (!model || !model->graph) {
    fprintf(err, "smelt: error: '%s' is not an ONNX model (no ModelProto with a graph)\n", path);
    if (model) onnx__model_proto__free_unpacked(model, NULL);
    return 1;
  }
  const Onnx__GraphProto *g = model->graph;
  im.graph = g;
  im.opset = -1;
  im.model = model;
  for (size_t i = 0; i < model->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *o = model->opset_import[i];
    if (!o->domain || !o->domain[0] || !strcmp(o->domain, "ai.onnx")) im.opset = o->has_version ? o->version : 1;
  }
  // a node of a domain the model imports no version of is a broken model
  for (size_t i = 0; i < g->n_node && !im.failed; i++) {
    const Onnx__NodeProto *n = g->node[i];
    const char *dom = n->domain && n->domain[0] ? n->domain : "ai.onnx";
    if (im_opset_of(&im, dom) < 0)
      im_fail(&im, "node '%s' (%s) is of the domain %s, of which the model imports no version", im_node(n), n->op_type,
              dom);
  }
  if (!im.failed && strings_present(&im, g) && !check_ops(&im, g)) im.failed = true;

  // initializers, then the inputs that are not initializers
  for (size_t i = 0; i < g->n_initializer && !im.failed; i++)
    im_add_constant(&im, g->initializer[i]->name, g->initializer[i], "initializer");
  load_known(&im, values);
  bool *used_def = xcalloc((size_t)(ndefs ? ndefs : 1), sizeof *used_def);
  for (size_t i = 0; i < g->n_input && !im.failed; i++) {
    const Onnx__ValueInfoProto *vi = g->input[i];
    if (im_find(&im, vi->name)) continue;
    if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !vi->type->tensor_type->shape) {
      im_fail(&im, "input '%s' is not a tensor of known rank", vi->name);
      break;
    }
    const Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
    DType dt;
    if (!onnx_dtype_of(tt->elem_type, &dt)) {
      im_fail(&im, "input '%s' has ONNX data type %d; inputs are float, int32, int64 or bool", vi->name, tt->elem_type);
      break;
    }
    int64_t d[MAX_DIMS];
    int nd = (int)tt->shape->n_dim;
    if (nd > MAX_DIMS) {
      im_fail(&im, "input '%s' has %d dimensions (at most %d)", vi->name, nd, MAX_DIMS);
      break;
    }
    for (int j = 0; j < nd && !im.failed; j++) {
      const Onnx__TensorShapeProto__Dimension *dm = tt->shape->dim[j];
      // a size of 0 is kept: an empty input built in for its value (axes of none) is fine
      if (dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && dm->dim_value >= 0) {
        d[j] = dm->dim_value;
        continue;
      }
      const char *param = dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ? dm->dim_param : "";
      int k = -1;
      for (int q = 0; q < ndefs && param[0]; q++)
        if (!strcmp(defs[q].name, param)) k = q;
      if (k < 0 || defs[k].value < 1) {
        if (param[0])
          im_fail(&im, "input '%s': dimension %d is the free dimension '%s'; bind it with -D %s=VALUE", vi->name, j,
               param, param);
        else im_fail(&im, "input '%s': dimension %d has no size; the importer needs static shapes", vi->name, j);
        break;
      }
      used_def[k] = true;
      d[j] = defs[k].value;
    }
    if (im.failed) break;
    im_add_value(&im, vi->name, V_INPUT, dt, nd, d)->graph_input = true;
  }
  for (int q = 0; q < ndefs && !im.failed; q++)
    if (!used_def[q]) im_fail(&im, "-D %s: the model's inputs have no dimension named '%s'", defs[q].name, defs[q].name);
  free(used_def);

  im.run_nodes = run_nodes;
  if (!im.failed) run_nodes(&im, g);
  for (size_t i = 0; i < g->n_output && !im.failed; i++) {
    Value *v = im_find(&im, g->output[i]->name);
    if (v && v->kind != V_LET && v->kind != V_INPUT && !v->graph_input) constant_output(&im, v);
    if (!v || v->kind != V_LET) {
      im_fail(&im, "output '%s' is %s; the importer takes outputs that nodes compute", g->output[i]->name,
           v ? "an input or a constant" : "defined by no node");
      break;
    }
    // a declared static shape must be the one the nodes compute
    const Onnx__TypeProto *t = g->output[i]->type;
    const Onnx__TensorShapeProto *sp =
        t && t->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ? t->tensor_type->shape : NULL;
    bool static_shape = sp != NULL;
    for (size_t j = 0; sp && j < sp->n_dim; j++)
      static_shape &= sp->dim[j]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    if (static_shape) {
      bool same = (int)sp->n_dim == v->ndim;
      for (int j = 0; j < v->ndim && same; j++) same = sp->dim[j]->dim_value == v->dims[j];
      if (!same) {
        int64_t d[MAX_DIMS];
        int nd = (int)sp->n_dim < MAX_DIMS ? (int)sp->n_dim : MAX_DIMS;
        for (int j = 0; j < nd; j++) d[j] = sp->dim[j]->dim_value;
        im_fail(&im, "output '%s' is declared %s, but its nodes compute %s", g->output[i]->name, onnx_shape_str(d, nd),
             onnx_shape_str(v->dims, v->ndim));
      }
    }
  }
  // the inputs, and the inputs built for their known values
  char *inputs = NULL;
  size_t ilen = 0;
  FILE *in = open_memstream(&inputs, &ilen);
  for (int i = 0; i < im.nvals && !im.failed; i++) {
    Value *v = im.vals[i];
    if (!v->graph_input) continue;
    if (v->specialized && v->kind != V_INTS) continue;   // a float: a param or a number
    if (!v->specialized && onnx_numel(v->dims, v->ndim) == 0) {
      im_fail(&im, "input '%s' is %s, an empty tensor, which the model language does not have", v->onnx,
              onnx_shape_str(v->dims, v->ndim));
      break;
    }
    if (!v->specialized) {
      fprintf(in, "    input %s: %s%s\n", v->ident, onnx_dtype_word(v->dtype), onnx_shape_str(v->dims, v->ndim));
      continue;
    }
    char who[512];
    snprintf(who, sizeof who, "input '%s'", v->onnx);
    char *e = im_ints_expr(&im, who, v);
    if (e) fprintf(in, "    let %s = %s   # input '%s', for the value of this run\n", v->ident, e, v->onnx);
    free(e);
  }
  if (!im.failed) declare_params(&im, in);
  fclose(in);
  int rc = 1;
  if (!im.failed) {
    char weights[4096];
    snprintf(weights, sizeof weights, "%.*s.safetensors",
             (int)(strlen(smelt_path) > 6 && !strcmp(smelt_path + strlen(smelt_path) - 6, ".smelt")
                       ? strlen(smelt_path) - 6
                       : strlen(smelt_path)),
             smelt_path);
    char e[512];
    TensorWriter *w = NULL;
    bool ok = true;
    if (im.nw) {
      w = tensor_writer_open(weights, im.nw, im.wnames, im.wdtypes, im.wshapes, e, sizeof e);
      if (!w) {
        fprintf(err, "smelt: error: %s\n", e);
        ok = false;
      }
      for (int i = 0; w && i < im.nw && ok; i++)
        ok = tensor_writer_bytes(w, im.wdata[i], (uint64_t)shape_numel(&im.wshapes[i]) * 4);
      if (w && tensor_writer_close(w, ok, e, sizeof e)) {
        fprintf(err, "smelt: error: %s\n", e);
        ok = false;
      }
    }
    FILE *sf = ok ? fopen(smelt_path, "w") : NULL;
    if (ok && !sf) fprintf(err, "smelt: error: cannot write '%s': %s\n", smelt_path, strerror(errno));
    if (sf) {
      char *mname = im_ident_for(&im, g->name && g->name[0] ? g->name : "imported");
      fprintf(sf, "# Imported from %s (ONNX opset %lld) by smelt import.\n", base_name(path), (long long)im.opset);
      if (im.nw)
        fprintf(sf, "# The params' values are in %s: pass it as --weights (docs/onnx.md).\n", base_name(weights));
      fprintf(sf, "import \"nn\"\n\nmodel %s {\n%s%s}\n", mname, inputs ? inputs : "", im.body ? im.body : "");
      free(mname);
      rc = fclose(sf) ? 1 : 0;
      if (rc) fprintf(err, "smelt: error: cannot write '%s'\n", smelt_path);
    }
    if (rc == 0 && info) record_names(&im, info);
  }
  free(inputs);
  for (int i = 0; i < im.nvals; i++) {
    free(im.vals[i]->onnx);
    free(im.vals[i]->ident);
    free(im.vals[i]->ints);
    free(im.vals[i]->items);
    free(im.vals[i]);
  }
  for (int i = 0; i < im.nknown; i++) {
    free(im.known[i].name);
    free(im.known[i].values);
    free(im.known[i].floats);
  }
  free(im.known);
  for (int i = 0; i < im.nw; i++) {
    free(im.wdata[i]);
    if (!im.wvals[i]) free((char *)im.wnames[i]);   // a layer's name, owned
  }
  free(im.wnames);
  free(im.wdtypes);
  free(im.wshapes);
  free(im.wdata);
  free(im.wvals);
  free(im.vals);
  free(im.body);
  onnx__model_proto__free_unpacked(model, NULL);
  return rc;
}
