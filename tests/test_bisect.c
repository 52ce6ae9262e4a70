// test_bisect.c: `smelt bisect` finds the first kernel that disagrees with
// the interpreter.
//
// An ingot is built from a model file; the file is then edited (one constant
// changed, the graph's shape kept, so the kernels keep their names) and the
// ingot bisected against it: the kernel that computes the changed line is
// the first to diverge, and is named with that line.
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

static void write_model(const char *path, const char *scale) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fprintf(f, "import \"nn\"\n"
             "model m {\n"
             "    input x: f32[4, 16]\n"
             "    input t: i32[4]\n"
             "    let h = relu(linear(x, 32) as fc1)\n"
             "    h = layernorm(h) as ln\n"
             "    h = h * %s\n"
             "    output logits = linear(h, 3) as fc2\n"
             "    loss cross_entropy(logits, t)\n"
             "}\n"
             "train {\n"
             "    optimizer = adam(lr = 1e-3)\n"
             "    steps = 1\n"
             "    data train {\n"
             "        x = csv(\"unused-x.csv\")\n"
             "        t = csv(\"unused-t.csv\")\n"
             "    }\n"
             "}\n", scale);
  fclose(f);
}

TEST(bisect, a_correct_ingot_agrees_and_a_stale_one_names_its_first_wrong_kernel) {
  char model[64], ingot[64], cmd[512], *out = NULL;
  snprintf(model, sizeof model, "build/test-bisect-%d.smelt", (int)getpid());
  snprintf(ingot, sizeof ingot, "build/test-bisect-%d.ingot", (int)getpid());
  write_model(model, "2.0");
  snprintf(cmd, sizeof cmd, "%s build %s -o %s 2>&1", smelt_path(), model, ingot);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s bisect %s --device=cpu 2>&1", smelt_path(), ingot);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect_not_null(strstr(out, "kernels agree with the interpreter"), "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s bisect %s --device=cpu --entry=infer 2>&1", smelt_path(), ingot);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  write_model(model, "3.0");   // the ingot is stale now: its kernels scale by 2
  snprintf(cmd, sizeof cmd, "%s bisect %s --device=cpu 2>&1", smelt_path(), ingot);
  cr_assert_eq(run_cmd(cmd, &out), 1, "%s", out);
  cr_expect_not_null(strstr(out, "is the first kernel that diverges"), "%s", out);
  // the first wrong kernel holds the relu of line 5 and the changed scale of line 7
  cr_expect_not_null(strstr(out, ".smelt:5,7 "), "the kernel is named with the changed line: %s", out);
  free(out);
  // a .smelt is built and checked in one go; other sizes do not match the ingot
  snprintf(cmd, sizeof cmd, "%s bisect %s --device=cpu 2>&1", smelt_path(), model);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  write_model(model, "x.sum() * 0.0 + 2.0");
  snprintf(cmd, sizeof cmd, "%s bisect %s --device=cpu 2>&1", smelt_path(), ingot);
  cr_assert_eq(run_cmd(cmd, &out), 1, "%s", out);
  cr_expect_not_null(strstr(out, "rebuild it"), "%s", out);
  free(out);
  unlink(model);
  unlink(ingot);
}
