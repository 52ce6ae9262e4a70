// smelt plot: a --log-dir's scalars.csv drawn as an SVG, and the files it refuses.
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

static int count(const char *s, const char *what) {
  int n = 0;
  for (const char *p = s; (p = strstr(p, what)); p += strlen(what)) n++;
  return n;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fputs(text, f);
  cr_assert_eq(fclose(f), 0);
}

TEST(plot, curves_of_a_log_dir) {
  char dir[] = "/tmp/smelt-plot-XXXXXX", path[128], cmd[512], *out;
  cr_assert(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/scalars.csv", dir);
  // the trainer's columns; evaluations at steps 3 and 6 only
  write_text(path, "step,loss,lr,grad_norm,samples_per_s,eval_loss,eval_accuracy\n"
                   "1,2.3,0.001,,100,,\n2,2.1,0.001,,100,,\n3,1.9,0.001,,100,1.95,0.40\n"
                   "4,1.7,0.001,,100,,\n5,1.6,0.001,,100,,\n6,1.4,0.001,,100,1.5,0.55\n");
  snprintf(cmd, sizeof cmd, "%s plot %s -o %s/c.svg", smelt_path(), dir, dir);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  cr_expect(strstr(out, "c.svg: 6 steps from ") != NULL, "%s", out);
  free(out);
  snprintf(path, sizeof path, "%s/c.svg", dir);
  size_t len;
  char *svg = file_read(path, &len);
  cr_assert(svg);
  cr_expect(!strncmp(svg, "<svg xmlns='http://www.w3.org/2000/svg'", 39) && strstr(svg, "</svg>\n"), "%s", svg);
  // training loss, evaluation loss, evaluation accuracy; a dot per evaluation in each
  cr_expect_eq(count(svg, "<polyline"), 3, "%s", svg);
  cr_expect_eq(count(svg, "<circle"), 4, "%s", svg);
  cr_expect(strstr(svg, ">evaluation accuracy (%)<") && strstr(svg, ">40<"), "%s", svg);
  free(svg);
  // a run that never evaluated: the learning rate below
  snprintf(path, sizeof path, "%s/noeval.csv", dir);
  write_text(path, "step,loss,lr,grad_norm,samples_per_s,eval_loss,eval_accuracy\n1,2.3,0.001,,1,,\n2,2.2,0.002,,1,,\n");
  snprintf(cmd, sizeof cmd, "%s plot %s -o %s/n.svg", smelt_path(), path, dir);
  cr_assert_eq(run_cmd(cmd, &out), 0, "%s", out);
  free(out);
  snprintf(path, sizeof path, "%s/n.svg", dir);
  svg = file_read(path, &len);
  cr_assert(svg);
  cr_expect(strstr(svg, ">learning rate<") && count(svg, "<polyline") == 2 && !count(svg, "<circle"), "%s", svg);
  free(svg);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

TEST(plot, refuses_what_it_cannot_draw) {
  char dir[] = "/tmp/smelt-plot-XXXXXX", path[128], cmd[512], *out;
  cr_assert(mkdtemp(dir));
  static const struct {
    const char *csv, *message;
  } bad[] = {
      {"step,loss\n1,2.0\n2,nan\n", "bad.csv:3: the loss 'nan' is not a finite number"},
      {"step,accuracy\n1,0.5\n", "has no step and loss columns"},
      {"step,loss\n", "has no rows yet"},
      {"", "is empty"},
  };
  snprintf(path, sizeof path, "%s/bad.csv", dir);
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    write_text(path, bad[i].csv);
    snprintf(cmd, sizeof cmd, "%s plot %s -o %s/c.svg", smelt_path(), path, dir);
    cr_expect_eq(run_cmd(cmd, &out), 1, "%s", out);
    cr_expect(strstr(out, bad[i].message) != NULL, "%s", out);
    free(out);
  }
  snprintf(path, sizeof path, "%s/c.svg", dir);
  cr_expect(access(path, F_OK) != 0, "a refused plot writes nothing");
  snprintf(cmd, sizeof cmd, "%s plot %s -o %s/c.png", smelt_path(), dir, dir);
  cr_expect_eq(run_cmd(cmd, &out), 2, "%s", out);
  cr_expect(strstr(out, "plot writes SVG: -o takes a .svg file") != NULL, "%s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}
