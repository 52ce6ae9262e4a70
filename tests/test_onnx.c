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
  if (weights) snprintf(ckpt, sizeof ckpt, "--checkpoint=%s/%s.safetensors", dir, name);
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

TEST(onnx, unsupported_ops_in_one_message) {
  char cmd[512], *out = NULL;
  snprintf(cmd, sizeof cmd, "%s import tests/onnx/unsupported.onnx -o /tmp/smelt-onnx-never.smelt", smelt_path());
  cr_assert_neq(run_cmd(cmd, &out), 0);
  cr_assert(strstr(out, "2 op types the importer does not support"), "%s", out);
  cr_assert(strstr(out, "LeakyRelu (domain ai.onnx, opset 17): 'leaky1', 'leaky2'"), "%s", out);
  cr_assert(strstr(out, "HardSigmoid (domain ai.onnx, opset 17): 'hard'"), "%s", out);
  cr_assert(access("/tmp/smelt-onnx-never.smelt", F_OK) != 0);
  free(out);
}

TEST(onnx, free_dimension_named) {
  char cmd[512], *out = NULL;
  snprintf(cmd, sizeof cmd, "%s import tests/onnx/mlp.onnx -o /tmp/smelt-onnx-never.smelt", smelt_path());
  cr_assert_neq(run_cmd(cmd, &out), 0);
  cr_assert(strstr(out, "input 'x': dimension 0 is the free dimension 'batch'; bind it with -D batch=VALUE"), "%s",
            out);
  free(out);
}

TEST(onnx, declared_output_shape_checked) {
  char cmd[512], *out = NULL;
  snprintf(cmd, sizeof cmd, "%s import tests/onnx/bad_shape.onnx -o /tmp/smelt-onnx-never.smelt", smelt_path());
  cr_assert_neq(run_cmd(cmd, &out), 0);
  cr_assert(strstr(out, "output 'y' is declared [2, 3], but its nodes compute [3, 2]"), "%s", out);
  free(out);
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
  cr_assert(strstr(text, "    param fc1_weight: f32[7, 5] = zeros   # 'fc1.weight'\n"), "%s", text);
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
