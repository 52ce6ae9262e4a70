// smelt import: the ONNX models of tests/onnx (tests/onnx/make_models.py)
// imported, built and run on the CPU, against the outputs of onnx's
// reference evaluator (rtol 1e-3, atol 1e-7, as ONNX's backend tests).
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"
#include "tensorfile.h"

static void import_and_run(const char *name, const char *defines, bool weights) {
  char dir[] = "/tmp/smelt-onnx-XXXXXX";
  cr_assert(mkdtemp(dir));
  char cmd[2048], *out = NULL;
  snprintf(cmd, sizeof cmd, "%s import tests/onnx/%s.onnx -o %s/%s.smelt %s", smelt_path(), name, dir, name, defines);
  int rc = run_cmd(cmd, &out);
  cr_assert_eq(rc, 0, "%s: %s", cmd, out);
  free(out);
  // the weights are DIR/NAME.safetensors, written beside the model file
  char ckpt[256] = "";
  if (weights) snprintf(ckpt, sizeof ckpt, "--weights=%s/%s.safetensors", dir, name);
  snprintf(cmd, sizeof cmd, "%s run %s/%s.smelt --device=cpu --inputs=tests/onnx/%s.in.tensors %s --outputs=%s/got.tensors",
           smelt_path(), dir, name, name, ckpt, dir);
  rc = run_cmd(cmd, &out);
  cr_assert_eq(rc, 0, "%s: %s", cmd, out);
  free(out);
  char path[256], err[512];
  TensorEntry *want, *got;
  int nw, ng;
  snprintf(path, sizeof path, "tests/onnx/%s.out.tensors", name);
  cr_assert_eq(tensorfile_read(path, &want, &nw, err, sizeof err), 0, "%s", err);
  snprintf(path, sizeof path, "%s/got.tensors", dir);
  cr_assert_eq(tensorfile_read(path, &got, &ng, err, sizeof err), 0, "%s", err);
  for (int i = 0; i < nw; i++) {
    const TensorEntry *g = tensorfile_find(got, ng, want[i].name);
    cr_assert(g, "%s: no output '%s'", name, want[i].name);
    cr_assert_eq(shape_numel(&g->shape), shape_numel(&want[i].shape), "%s: output '%s' has another size", name,
                 want[i].name);
    for (int64_t k = 0; k < shape_numel(&g->shape); k++) {
      double w = want[i].data[k], v = g->data[k];
      cr_assert(fabs(v - w) <= 1e-7 + 1e-3 * fabs(w), "%s: %s[%lld] is %.9g, the reference %.9g", name,
                want[i].name, (long long)k, v, w);
    }
  }
  tensorfile_free(want, nw);
  tensorfile_free(got, ng);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

TEST(onnx, mlp_gemm_relu_softmax) { import_and_run("mlp", "-D batch=4", true); }
TEST(onnx, cnn_conv_pools_flatten) { import_and_run("cnn", "", true); }
TEST(onnx, elementwise_compare_where_cast) { import_and_run("elementwise", "", true); }
TEST(onnx, layout_reshape_transpose_reduce) { import_and_run("layout", "", false); }
TEST(onnx, gather_softmax_axis) { import_and_run("embed", "", true); }
TEST(onnx, softmax_opset11_coerced) { import_and_run("softmax11", "", false); }
TEST(onnx, resize_gridsample_affinegrid) { import_and_run("image", "", true); }

TEST(onnx, layers_as_stdlib_calls) { import_and_run("layers", "", true); }
TEST(onnx, layers_opset23_rms_norm) { import_and_run("layers23", "", true); }

// Which groups of nodes became stdlib calls, and the weights file under the
// layers' param names: a Gemm's weight transposed back to (in, out).
TEST(onnx, layer_groups_and_their_params) {
  char dir[] = "/tmp/smelt-onnx-XXXXXX";
  cr_assert(mkdtemp(dir));
  char cmd[512], path[256], *out = NULL;
  snprintf(cmd, sizeof cmd, "%s import tests/onnx/layers.onnx -o %s/l.smelt", smelt_path(), dir);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  snprintf(path, sizeof path, "%s/l.smelt", dir);
  char *text = slurp(path);
  cr_assert(text);
  static const char *const want[] = {
      "    # enc_fc1: linear, enc_fc1.w = 'onnx::MatMul_5', enc_fc1.b = 'enc.fc1.bias'\n"
      "    let h = linear(x, 6) as enc_fc1   # [2, 3, 6]\n",
      "    let n1 = layernorm(h, eps = 1e-05) as ln1   # [2, 3, 6]\n",
      "    let a1 = gelu(n1)   # [2, 3, 6]\n",
      "    let n2 = layernorm(a1, eps = 0.001) as ln2   # [2, 3, 6]\n",
      "    # head: linear, head.w = 'head.weight' transposed, head.b = 'head.bias'\n"
      "    output y = linear(flat, 4) as head   # [6, 4]\n",
      // what is not exactly a layer stays node by node
      "    let t1 = matmul(n2, tied)   # [2, 3, 6]\n",
      "    let z_sq = pow(z_d, 4.0)   # [2, 3, 6]\n",
      "    output s = 0.5 * matmul(flat, scaled_weight) + scaled_bias   # [6, 5]\n",
  };
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) cr_assert(strstr(text, want[i]), "no\n%s\nin\n%s", want[i], text);
  cr_assert(!strstr(text, "param ln1") && !strstr(text, "param head"), "%s", text);
  free(text);
  TensorEntry *w;
  int nw;
  char err[512];
  snprintf(path, sizeof path, "%s/l.safetensors", dir);
  cr_assert_eq(tensorfile_read(path, &w, &nw, err, sizeof err), 0, "%s", err);
  const TensorEntry *hw = tensorfile_find(w, nw, "head.w");
  cr_assert(hw && hw->shape.ndim == 2 && hw->shape.d[0] == 6 && hw->shape.d[1] == 4);
  cr_assert(tensorfile_find(w, nw, "enc_fc1.b") && tensorfile_find(w, nw, "ln2.g") && tensorfile_find(w, nw, "tied"));
  cr_assert(!tensorfile_find(w, nw, "head_weight") && !tensorfile_find(w, nw, "ln1_weight"));
  tensorfile_free(w, nw);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

// Imports model and expects a refusal: a non-zero exit and no model file
// written. Returns the output for the caller to check and free.
static char *import_refused(const char *model) {
  char cmd[512], *out = NULL;
  unlink("/tmp/smelt-onnx-never.smelt");
  snprintf(cmd, sizeof cmd, "%s import %s -o /tmp/smelt-onnx-never.smelt", smelt_path(), model);
  cr_assert_neq(run_cmd(cmd, &out), 0, "%s was imported: %s", model, out);
  cr_assert(access("/tmp/smelt-onnx-never.smelt", F_OK) != 0, "%s", model);
  return out;
}

TEST(onnx, unsupported_ops_in_one_message) {
  char *out = import_refused("tests/onnx/unsupported.onnx");
  cr_assert(strstr(out, "2 op types the importer does not support"), "%s", out);
  cr_assert(strstr(out, "Bernoulli (domain ai.onnx, opset 17): 'coin1', 'coin2'"), "%s", out);
  cr_assert(strstr(out, "Unique (domain ai.onnx, opset 17): 'unique'"), "%s", out);
  free(out);
}

TEST(onnx, free_dimension_named) {
  char *out = import_refused("tests/onnx/mlp.onnx");
  cr_assert(strstr(out, "input 'x': dimension 0 is the free dimension 'batch'; bind it with -D batch=VALUE"), "%s",
            out);
  free(out);
}

TEST(onnx, declared_output_shape_checked) {
  char *out = import_refused("tests/onnx/bad_shape.onnx");
  cr_assert(strstr(out, "output 'y' is declared [2, 3], but its nodes compute [3, 2]"), "%s", out);
  free(out);
}

// Models the fuzzer found that asked for more than the importer can hold:
// each is refused with a message naming the limit, not by running out of
// memory, running past a timeout or overflowing int64.
TEST(onnx, sizes_bounded) {
  static const struct {
    const char *seed, *message;
  } cases[] = {
      // a Resize whose sizes ask for an axis of billions of rows
      {"resize-huge-output", "(Resize): output axis"},
      // the same through scales of 10^27 (converting that to a size was undefined)
      {"resize-huge-scale", "(Resize): output axis"},
      // a tf_crop_and_resize roi of 10^21 (the source coordinate overflowed int64)
      {"resize-huge-roi", "(Resize): roi value"},
      // rows that fit, but with their taps a table of 2^26 (filling it took the whole timeout)
      {"resize-many-taps", "rows of 4 taps (at most 2^24 in all)"},
      // an AffineGrid of billions of points, refused before its base grid is made
      {"affinegrid-huge-size", "(AffineGrid): a grid of more than 2^24 points"},
      // dimensions whose product does not fit in int64
      {"initializer-huge-dims", "initializer 'w' has more than 2^48 elements"},
      {"reshape-huge-shape", "(Reshape): [2, 3] cannot take the shape [4294967296, 4294967296, 0]"},
      // Col2Im block sizes whose product overflowed
      {"col2im-huge-block", "(Col2Im): input [1, 8, 12] with image_shape and block_shape of 2 and 2 values"},
      // a decomposed layer norm whose Mul has one input (the group read past its inputs)
      {"layernorm-mul-one-input", "node 'n_mul' (Mul) lacks its input 2"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char path[256];
    snprintf(path, sizeof path, "tests/fuzz/seeds-onnx/%s.onnx", cases[i].seed);
    char *out = import_refused(path);
    cr_assert(strstr(out, cases[i].message), "%s: %s", cases[i].seed, out);
    free(out);
  }
}

TEST(onnx, model_file_names_and_params) {
  char cmd[512], *out = NULL;
  snprintf(cmd, sizeof cmd, "%s import tests/onnx/mlp.onnx -o /tmp/smelt-onnx-names-%d.smelt -D batch=4",
           smelt_path(), (int)getpid());
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  char path[128];
  snprintf(path, sizeof path, "/tmp/smelt-onnx-names-%d.smelt", (int)getpid());
  char *text = slurp(path);
  cr_assert(text);
  cr_assert(strstr(text, "    input x: f32[4, 5]\n"), "%s", text);
  // fc1 is a plain Gemm with a bias: a linear; fc2 has alpha and beta: node by node
  cr_assert(strstr(text, "    # fc1: linear, fc1.w = 'fc1.weight' transposed, fc1.b = 'fc1.bias'\n"
                         "    let h = linear(x, 7) as fc1   # [4, 7]\n"), "%s", text);
  cr_assert(strstr(text, "    param fc2_weight: f32[3, 7] = zeros   # 'fc2.weight'\n"), "%s", text);
  cr_assert(strstr(text, "    let logits = 0.5 * matmul(a, fc2_weight, tb = true) + 2 * fc2_bias   # [4, 3]\n"),
            "%s", text);
  cr_assert(strstr(text, "    output probs = softmax(logits, axis = 1)   # [4, 3]\n"), "%s", text);
  free(text);
  unlink(path);
  snprintf(path, sizeof path, "/tmp/smelt-onnx-names-%d.safetensors", (int)getpid());
  cr_assert_eq(access(path, F_OK), 0);
  unlink(path);
}

TEST(onnx, bad_files_and_defines) {
  char cmd[512], *out = NULL;
  snprintf(cmd, sizeof cmd, "%s import tests/onnx/mlp.in.tensors -o /tmp/smelt-onnx-never.smelt", smelt_path());
  cr_assert_neq(run_cmd(cmd, &out), 0);
  cr_assert(strstr(out, "is not an ONNX model (no ModelProto with a graph)"), "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s import tests/onnx/mlp.onnx -o /tmp/smelt-onnx-never.smelt -D batch=2 -D foo=3",
           smelt_path());
  cr_assert_neq(run_cmd(cmd, &out), 0);
  cr_assert(strstr(out, "-D foo: the model's inputs have no dimension named 'foo'"), "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s import tests/onnx/mlp.onnx", smelt_path());
  cr_assert_neq(run_cmd(cmd, &out), 0);
  cr_assert(strstr(out, "import needs one ONNX file and -o FILE.smelt"), "%s", out);
  free(out);
  cr_assert(access("/tmp/smelt-onnx-never.smelt", F_OK) != 0);
}

TEST(onnx, import_help) {
  char cmd[256], *out = NULL;
  snprintf(cmd, sizeof cmd, "%s import --help", smelt_path());
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_assert(strstr(out, "usage: smelt import [options] MODEL.onnx -o FILE.smelt"), "%s", out);
  cr_assert(strstr(out, "-D NAME=VALUE, --define=NAME=VALUE"), "%s", out);
  free(out);
}

// The train block the test adds to the imported MLP: what
// tests/onnx/make_trainable.py does in PyTorch (Adam, lr 1e-3, batches of
// 128, two epochs).
static const char trainable_tail[] =
    "    input y: i32[128]\n"
    "    loss cross_entropy(logits, y)\n"
    "}\n\n"
    "train {\n"
    "    optimizer = adam(lr = 1e-3)\n"
    "    batch = 128\n"
    "    epochs = 2\n"
    "    seed = 1\n"
    "    data train {\n"
    "        x = idx(\"/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz\", scale = 1 / 255)\n"
    "        y = idx(\"/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz\")\n"
    "    }\n"
    "    data test {\n"
    "        x = idx(\"/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz\", scale = 1 / 255)\n"
    "        y = idx(\"/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz\")\n"
    "    }\n"
    "}\n";

// An ONNX export of a PyTorch MLP, imported, given a loss and a train block,
// and trained from its ONNX weights on Fashion-MNIST, reaches the accuracy
// PyTorch reaches training the same model from the same weights (within a
// point: the data order differs).
TEST(onnx, imported_mlp_trains_like_pytorch) {
  char dir[] = "/tmp/smelt-onnx-train-XXXXXX";
  cr_assert(mkdtemp(dir));
  char cmd[2048], path[256], *out = NULL;
  snprintf(cmd, sizeof cmd, "%s import tests/onnx/fashion_mlp.onnx -o %s/mlp.smelt -D batch=128", smelt_path(), dir);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s: %s", cmd, out);
  free(out);
  snprintf(path, sizeof path, "%s/mlp.smelt", dir);
  char *text = slurp(path);
  cr_assert(text);
  char *end = strrchr(text, '}');   // the model's closing brace
  cr_assert(end);
  *end = 0;
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fprintf(f, "%s%s", text, trainable_tail);
  cr_assert_eq(fclose(f), 0);
  free(text);
  snprintf(cmd, sizeof cmd, "%s train %s/mlp.smelt --device=cpu --weights=%s/mlp.safetensors", smelt_path(), dir, dir);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s: %s", cmd, out);
  const char *last = NULL;
  for (const char *p = out; (p = strstr(p, "epoch 2: test:")); p++) last = p;
  cr_assert(last, "%s", out);
  double acc = 0;
  cr_assert(sscanf(strstr(last, "accuracy") ? strstr(last, "accuracy") : "", "accuracy %lf%%", &acc) == 1, "%s", out);
  free(out);
  char *want_text = slurp("tests/onnx/fashion_mlp.torch.txt");
  cr_assert(want_text);
  double want = 100 * atof(want_text);
  free(want_text);
  cr_assert(fabs(acc - want) <= 1.0, "the imported model reached %.2f%%, PyTorch %.2f%%", acc, want);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

// An ONNX file where a model file goes: run keeps the ONNX names in its
// tensor files and loads the imported weights; build writes them beside the
// ingot; train refuses (no loss).
TEST(onnx, commands_take_an_onnx_file) {
  char dir[] = "/tmp/smelt-onnx-direct-XXXXXX";
  cr_assert(mkdtemp(dir));
  char cmd[2048], *out = NULL;
  snprintf(cmd, sizeof cmd, "%s run tests/onnx/cnn.onnx --device=cpu --inputs=tests/onnx/cnn.in.tensors --outputs=%s/got.tensors",
           smelt_path(), dir);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s: %s", cmd, out);
  cr_assert(strstr(out, "building tests/onnx/cnn.onnx for this CPU"), "%s", out);
  free(out);
  char path[256], err[512];
  TensorEntry *want, *got;
  int nw, ng;
  cr_assert_eq(tensorfile_read("tests/onnx/cnn.out.tensors", &want, &nw, err, sizeof err), 0, "%s", err);
  snprintf(path, sizeof path, "%s/got.tensors", dir);
  cr_assert_eq(tensorfile_read(path, &got, &ng, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ng, nw);
  for (int i = 0; i < nw; i++) {
    const TensorEntry *g = tensorfile_find(got, ng, want[i].name);
    cr_assert(g, "no output '%s'", want[i].name);
    for (int64_t k = 0; k < shape_numel(&g->shape); k++)
      cr_assert(fabs(g->data[k] - want[i].data[k]) <= 1e-7 + 1e-3 * fabs(want[i].data[k]));
  }
  tensorfile_free(want, nw);
  tensorfile_free(got, ng);
  snprintf(cmd, sizeof cmd, "%s build tests/onnx/cnn.onnx -o %s/cnn.ingot", smelt_path(), dir);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s: %s", cmd, out);
  cr_assert(strstr(out, "the ONNX weights are in"), "%s", out);
  free(out);
  snprintf(path, sizeof path, "%s/cnn.safetensors", dir);
  cr_assert_eq(access(path, F_OK), 0);
  snprintf(cmd, sizeof cmd, "%s check --summary tests/onnx/mlp.onnx -D batch=3", smelt_path());
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s: %s", cmd, out);
  cr_assert(strstr(out, "inputs: x: f32[3, 5]"), "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s train tests/onnx/cnn.onnx", smelt_path());
  cr_assert_neq(run_cmd(cmd, &out), 0);
  cr_assert(strstr(out, "an ONNX model has no loss or training"), "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

// Initializers in an external file beside the model (data_location
// EXTERNAL, one at an offset) are read; a location outside the model's
// folder is refused, through '..' or through a link.
TEST(onnx, external_data_read_beside_the_model) {
  import_and_run("external", "", true);
  char cmd[1024], *out = NULL;
  snprintf(cmd, sizeof cmd, "%s import tests/onnx/escape.onnx -o /tmp/smelt-onnx-never.smelt", smelt_path());
  cr_assert_neq(run_cmd(cmd, &out), 0);
  cr_assert(strstr(out, "initializer 'w': external data location '../escape.weights' leaves the model's folder"), "%s",
            out);
  free(out);
  char dir[] = "/tmp/smelt-onnx-link-XXXXXX";
  cr_assert(mkdtemp(dir));
  // the model's folder holds a link named external.weights to a file elsewhere
  snprintf(cmd, sizeof cmd, "cp tests/onnx/external.onnx %s/ && ln -s %s/tests/onnx/external.weights %s/external.weights",
           dir, getcwd((char[4096]){0}, 4096), dir);
  cr_assert_eq(system(cmd), 0);
  snprintf(cmd, sizeof cmd, "%s import %s/external.onnx -o %s/m.smelt", smelt_path(), dir, dir);
  cr_assert_neq(run_cmd(cmd, &out), 0);
  cr_assert(strstr(out, "external data location 'external.weights' leaves the model's folder"), "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
  cr_assert(access("/tmp/smelt-onnx-never.smelt", F_OK) != 0);
}

// --weights takes a file of exactly the model's parameters.
TEST(onnx, weights_file_checked) {
  char cmd[1024], *out = NULL;
  snprintf(cmd, sizeof cmd, "%s run tests/onnx/cnn.onnx --device=cpu --inputs=tests/onnx/cnn.in.tensors "
           "--weights=tests/onnx/cnn.out.tensors", smelt_path());
  cr_assert_neq(run_cmd(cmd, &out), 0);
  cr_assert(strstr(out, "'tests/onnx/cnn.out.tensors' holds 'y', which this model does not have"), "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s train examples/mlp.smelt --resume --checkpoint=/tmp/x.ckpt --weights=/tmp/w.tensors",
           smelt_path());
  cr_assert_neq(run_cmd(cmd, &out), 0);
  cr_assert(strstr(out, "--resume continues from the checkpoint's parameters; --weights starts from others"), "%s", out);
  free(out);
}
