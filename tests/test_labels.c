// test_labels.c: the labels of cross_entropy and one_hot.
//
// Float labels are a type error when the model is checked; a label outside
// [0, C) is an error at run time, in the interpreter and in the host
// kernels through the runtime, naming the function, the model-file line,
// the label's position and its value; ignore_index skips a label and takes
// the mean over the others; label_smoothing mixes in the mean of -log p.
// Every loss is compared with a value computed here from its definition.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smelt.h"
#include "support.h"

// A model of logits x: f32[3, 3] and labels t: i32[3] whose loss is `loss`.
static char *model_src(const char *loss) {
  static const char head[] = "import \"nn\"\nmodel m {\n    input x: f32[3, 3]\n    input t: i32[3]\n";
  size_t n = strlen(head) + strlen(loss) + 32;
  char *s = malloc(n);
  snprintf(s, n, "%s    loss %s\n}\n", head, loss);
  return s;
}

static const double logits[9] = {1, 2, 3, 0.5, -1, 0, 2, 2, 2};

// -log softmax(row)[k] of the logits' row r.
static double nll(int r, int k) {
  const double *x = logits + 3 * r;
  return log(exp(x[0]) + exp(x[1]) + exp(x[2])) - x[k];
}

// mean over the classes of -log softmax(row r).
static double smooth(int r) { return (nll(r, 0) + nll(r, 1) + nll(r, 2)) / 3; }

// Elaborates `loss` over the logits and labels t and runs the interpreter.
// Returns 0 with the loss in *out, or -1 with the interpreter's message in err.
static int interp_loss(const char *loss, const int *t, double *out, char *err, size_t errlen) {
  Compilation c;
  compilation_init(&c, stderr);
  c.diag.color = false;
  compilation_default_search(&c, NULL);
  char *src = model_src(loss);
  Module *m = module_load_text(&c, "case.smelt", src, strlen(src));
  cr_assert_eq(check_modules(&c, &m, 1, NULL, 0), 0, "%s does not check", loss);
  Graph g;
  graph_init(&g, &c.arena, &c.diag);
  cr_assert_eq(elaborate(&c, m, NULL, 0, false, &g), 0);
  double **leaves = calloc((size_t)g.n, sizeof *leaves);
  for (int i = 0; i < g.n; i++) {
    Node *n = g.nodes[i];
    if (n->op != OP_INPUT) continue;
    leaves[i] = malloc(9 * sizeof(double));
    for (int j = 0; j < 9; j++) leaves[i][j] = !strcmp(n->name, "x") ? logits[j] : j < 3 ? t[j] : 0;
  }
  InterpResult r;
  int rc = interp_run(&g, leaves, 1, 0, &r, err, errlen);
  if (rc == 0) {
    *out = r.vals[g.loss->id][0];
    interp_free(&r);
  }
  for (int i = 0; i < g.n; i++) free(leaves[i]);
  free(leaves);
  free(src);
  graph_free(&g);
  compilation_free(&c);
  return rc;
}

static double loss_of(const char *loss, const int *t) {
  char err[256] = "";
  double v = 0;
  cr_assert_eq(interp_loss(loss, t, &v, err, sizeof err), 0, "%s: %s", loss, err);
  return v;
}

static void expect_close(double got, double want) {
  cr_expect(fabs(got - want) <= 1e-6 * fmax(1, fabs(want)), "got %.9g, want %.9g", got, want);
}

TEST(labels, cross_entropy_by_hand) {
  expect_close(loss_of("cross_entropy(x, t)", (int[]){2, 0, 1}), (nll(0, 2) + nll(1, 0) + nll(2, 1)) / 3);
}

TEST(labels, out_of_range_labels_are_errors_in_the_interpreter) {
  char err[256];
  double v;
  cr_assert_eq(interp_loss("cross_entropy(x, t)", (int[]){2, 3, 1}, &v, err, sizeof err), -1);
  cr_expect_str_eq(err, "cross_entropy: label 3 at position 1 is outside [0, 3) (case.smelt:5)");
  cr_assert_eq(interp_loss("cross_entropy(x, t)", (int[]){0, 1, -1}, &v, err, sizeof err), -1);
  cr_expect_str_eq(err, "cross_entropy: label -1 at position 2 is outside [0, 3) (case.smelt:5)");
  // one_hot called in the model itself names one_hot
  cr_assert_eq(interp_loss("one_hot(t, 3).sum()", (int[]){0, 7, 1}, &v, err, sizeof err), -1);
  cr_expect_str_eq(err, "one_hot: label 7 at position 1 is outside [0, 3) (case.smelt:5)");
  // an ignored label is no error; another label outside still is
  cr_assert_eq(interp_loss("cross_entropy(x, t, ignore_index = -100)", (int[]){-100, 3, 1}, &v, err, sizeof err), -1);
  cr_expect_str_eq(err, "cross_entropy: label 3 at position 1 is outside [0, 3) (case.smelt:5)");
  // -100 is a label like any other when nothing is ignored
  cr_assert_eq(interp_loss("cross_entropy(x, t)", (int[]){-100, 0, 1}, &v, err, sizeof err), -1);
  cr_expect_str_eq(err, "cross_entropy: label -100 at position 0 is outside [0, 3) (case.smelt:5)");
}

TEST(labels, ignore_index_takes_the_mean_over_the_others) {
  expect_close(loss_of("cross_entropy(x, t, ignore_index = -100)", (int[]){2, -100, 1}), (nll(0, 2) + nll(2, 1)) / 2);
  expect_close(loss_of("cross_entropy(x, t, ignore_index = -100)", (int[]){2, 0, 1}),
               (nll(0, 2) + nll(1, 0) + nll(2, 1)) / 3);
  // an index inside the classes may be ignored too
  expect_close(loss_of("cross_entropy(x, t, ignore_index = 0)", (int[]){2, 0, 1}), (nll(0, 2) + nll(2, 1)) / 2);
  // every label ignored: 0 / 0, NaN, as in PyTorch
  cr_expect(isnan(loss_of("cross_entropy(x, t, ignore_index = -100)", (int[]){-100, -100, -100})));
}

TEST(labels, label_smoothing_mixes_in_the_mean_of_minus_log_p) {
  const double e = 0.1;
  double want = 0;
  for (int r = 0; r < 3; r++) want += (1 - e) * nll(r, (int[]){2, 0, 1}[r]) + e * smooth(r);
  expect_close(loss_of("cross_entropy(x, t, label_smoothing = 0.1)", (int[]){2, 0, 1}), want / 3);
  // with an ignored label: that row adds nothing, the mean is over two
  want = (1 - e) * nll(0, 2) + e * smooth(0) + (1 - e) * nll(2, 1) + e * smooth(2);
  expect_close(loss_of("cross_entropy(x, t, ignore_index = -100, label_smoothing = 0.1)", (int[]){2, -100, 1}),
               want / 2);
  // eps = 1: only the uniform target is left
  expect_close(loss_of("cross_entropy(x, t, label_smoothing = 1.0)", (int[]){2, 0, 1}),
               (smooth(0) + smooth(1) + smooth(2)) / 3);
}

TEST(labels, float_labels_and_bad_smoothing_are_errors_at_check) {
  char *out;
  const char *src = "import \"nn\"\nmodel m {\n    input x: f32[3, 3]\n    input t: f32[3]\n"
                    "    loss cross_entropy(x, t)\n}\n";
  cr_expect_eq(check_source("m.smelt", src, &out), 1);
  cr_expect(strstr(out, "error: the labels of 'cross_entropy' (one_hot) must be integers, not f32[3]") != NULL,
            "%s", out);
  cr_expect(strstr(out, "m.smelt:5:10: note: in this call to 'cross_entropy'") != NULL, "%s", out);
  free(out);
  src = "model m {\n    input t: f32[3]\n    output y = one_hot(t, 4)\n}\n";
  cr_expect_eq(check_source("m.smelt", src, &out), 1);
  cr_expect(strstr(out, "m.smelt:3:24: error: the labels of one_hot must be integers, not f32[3]") != NULL,
            "%s", out);
  free(out);
  src = "import \"nn\"\nmodel m {\n    input x: f32[3, 3]\n    input t: i32[3]\n"
        "    loss cross_entropy(x, t, label_smoothing = 1.5)\n}\n";
  cr_expect_eq(check_source("m.smelt", src, &out), 1);
  cr_expect(strstr(out, "label_smoothing must be in [0, 1]") != NULL, "%s", out);
  free(out);
}

// ---- through the runtime: host kernels

static const char *tmp_path(const char *what) {
  static char path[2][64];
  int k = what[0] == 'm';
  snprintf(path[k], sizeof path[k], "build/test-labels-%d.%s", (int)getpid(), what);
  return path[k];
}

// Builds the model of `loss` into an ingot and opens a CPU session on it.
static void open_session(const char *loss, smelt_ingot **ig, smelt_session **s) {
  const char *model = tmp_path("m.smelt"), *ingot = tmp_path("ingot");
  char *src = model_src(loss);
  FILE *f = fopen(model, "w");
  cr_assert_not_null(f);
  fputs(src, f);
  fclose(f);
  free(src);
  Compilation c;
  compilation_init(&c, stderr);
  compilation_default_search(&c, NULL);
  Module *m = module_load_file(&c, model);
  cr_assert_eq(check_modules(&c, &m, 1, NULL, 0), 0);
  cr_assert_eq(ingot_build(&c, m, NULL, 0, &(BuildTargets){.fusion = FUSION_ALL}, ingot), 0);
  compilation_free(&c);
  cr_assert_eq(smelt_ingot_open(ingot, ig), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_session_new(*ig, "cpu", 2, s), SMELT_OK, "%s", smelt_last_error());
  unlink(model);
  unlink(ingot);
}

static smelt_status eval(smelt_session *s, const int32_t *t, float *loss) {
  float x[9];
  for (int i = 0; i < 9; i++) x[i] = (float)logits[i];
  cr_assert_eq(smelt_set_input(s, "eval", "x", x, sizeof x), SMELT_OK, "%s", smelt_last_error());
  cr_assert_eq(smelt_set_input(s, "eval", "t", t, 3 * sizeof *t), SMELT_OK, "%s", smelt_last_error());
  smelt_status st = smelt_run(s, "eval", 1, 0);
  if (st == SMELT_OK)
    cr_assert_eq(smelt_get_output(s, "eval", "loss", loss, sizeof *loss), SMELT_OK, "%s", smelt_last_error());
  return st;
}

TEST(labels, host_kernels_report_a_label_outside_the_classes) {
  smelt_ingot *ig;
  smelt_session *s;
  open_session("cross_entropy(x, t)", &ig, &s);
  float loss;
  cr_assert_eq(eval(s, (int32_t[]){2, 0, 1}, &loss), SMELT_OK, "%s", smelt_last_error());
  cr_expect_float_eq(loss, (nll(0, 2) + nll(1, 0) + nll(2, 1)) / 3, 1e-5);
  cr_assert_eq(eval(s, (int32_t[]){2, 7, 1}, &loss), SMELT_ERR_RUNTIME);
  const char *msg = smelt_last_error();
  cr_expect(strstr(msg, "met label 7 at position 1, outside its classes") != NULL, "%s", msg);
  cr_expect(strstr(msg, "model file line 5") != NULL, "%s", msg);
  cr_expect(strstr(msg, "_label") != NULL, "the kernel's name names the op: %s", msg);
  cr_assert_eq(eval(s, (int32_t[]){-3, 0, 1}, &loss), SMELT_ERR_RUNTIME);
  msg = smelt_last_error();
  cr_expect(strstr(msg, "met label -3 at position 0") != NULL, "%s", msg);
  // the session runs again once the labels are good
  cr_assert_eq(eval(s, (int32_t[]){0, 0, 0}, &loss), SMELT_OK, "%s", smelt_last_error());
  cr_expect_float_eq(loss, (nll(0, 0) + nll(1, 0) + nll(2, 0)) / 3, 1e-5);
  smelt_session_free(s);
  smelt_ingot_close(ig);
}

TEST(labels, host_kernels_ignore_and_smooth) {
  smelt_ingot *ig;
  smelt_session *s;
  open_session("cross_entropy(x, t, ignore_index = -100, label_smoothing = 0.1)", &ig, &s);
  float loss;
  cr_assert_eq(eval(s, (int32_t[]){2, -100, 1}, &loss), SMELT_OK, "%s", smelt_last_error());
  double want = (0.9 * nll(0, 2) + 0.1 * smooth(0) + 0.9 * nll(2, 1) + 0.1 * smooth(2)) / 2;
  cr_expect_float_eq(loss, want, 1e-5, "loss %g, want %g", loss, want);
  cr_assert_eq(eval(s, (int32_t[]){2, -100, 3}, &loss), SMELT_ERR_RUNTIME);
  cr_expect(strstr(smelt_last_error(), "met label 3 at position 2") != NULL, "%s", smelt_last_error());
  smelt_session_free(s);
  smelt_ingot_close(ig);
}
