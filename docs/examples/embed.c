// embed.c: a program that runs a smelt ingot through libsmeltrt.
//
//   smelt build examples/mlp.smelt -o mlp.ingot
//   cc -Iruntime docs/examples/embed.c build/libsmeltrt.a -o embed -lm -ldl -lpthread
//   ./embed mlp.ingot
//
// It trains ten steps on a batch of made-up images and prints the loss after
// each, then evaluates once. Error handling is what a real program needs:
// every call's status is checked and smelt_last_error() says why.
#include <stdio.h>
#include <stdlib.h>

#include "smelt.h"

#define CHECK(call)                                                            \
  do {                                                                         \
    if ((call) != SMELT_OK) {                                                  \
      fprintf(stderr, "embed: %s\n", smelt_last_error());                     \
      return 1;                                                                \
    }                                                                          \
  } while (0)

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: embed FILE.ingot\n");
    return 2;
  }
  smelt_ingot *ig;
  smelt_session *s;
  CHECK(smelt_ingot_open(argv[1], &ig));
  CHECK(smelt_session_new(ig, "auto", 0, &s));
  printf("model %s on %s\n", smelt_ingot_meta(ig, "model"), smelt_session_device(s));

  // the batch size and image size are the input's: ask the ingot
  size_t xbytes = smelt_tensor_bytes(s, "train_step/x"), ybytes = smelt_tensor_bytes(s, "train_step/y");
  float *x = malloc(xbytes);
  int *y = malloc(ybytes);
  if (!x || !y) return 1;
  for (size_t i = 0; i < xbytes / sizeof *x; i++) x[i] = (float)(i % 255) / 255.0f;
  for (size_t i = 0; i < ybytes / sizeof *y; i++) y[i] = (int)(i % 10);

  for (int step = 0; step < 10; step++) {
    CHECK(smelt_set_input(s, "train_step", "x", x, xbytes));
    CHECK(smelt_set_input(s, "train_step", "y", y, ybytes));
    CHECK(smelt_run(s, "train_step", 1, (uint64_t)step));
    float loss;
    CHECK(smelt_get_output(s, "train_step", "loss", &loss, sizeof loss));
    printf("step %d: loss %.4f\n", step + 1, loss);
  }
  CHECK(smelt_set_input(s, "eval", "x", x, xbytes));
  CHECK(smelt_set_input(s, "eval", "y", y, ybytes));
  CHECK(smelt_run(s, "eval", 1, 0));
  float loss;
  CHECK(smelt_get_output(s, "eval", "loss", &loss, sizeof loss));
  printf("eval: loss %.4f\n", loss);

  free(x);
  free(y);
  smelt_session_free(s);
  smelt_ingot_close(ig);
  return 0;
}
