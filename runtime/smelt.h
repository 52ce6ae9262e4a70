// smelt.h: the public C API of libsmeltrt, the smelt runtime.
//
// An ingot (written by `smelt build`) holds a model's compiled kernels, the
// schedule of each entry point ("eval", "train_step"), the tensor table and
// the initial weights. The runtime opens it, creates a session on a device,
// and runs entry points. This program runs one training step of
// examples/mlp.smelt built with B = 128 (`smelt build examples/mlp.smelt
// -D B=128 -o mlp.ingot`); tests/test_libapi.c takes it from this comment and
// compiles it as C11 and as C++17, then runs it (`make api-example`):
//
//   #include <stdio.h>
//   #include <stdlib.h>
//   #include "smelt.h"
//
//   static void check(smelt_status status) {
//     if (status != SMELT_OK) {
//       fprintf(stderr, "%s: %s\n", smelt_status_string(status), smelt_last_error());
//       exit(1);
//     }
//   }
//
//   int main(void) {
//     static float images[128 * 784];                // one batch, row-major
//     static int32_t labels[128];
//     smelt_ingot *ig;
//     smelt_session *s;
//     check(smelt_ingot_open("mlp.ingot", &ig));
//     check(smelt_session_new(ig, "auto", 0, &s));   // CUDA, else HIP, else the CPU
//     check(smelt_set_input(s, "train_step", "x", images, sizeof images));
//     check(smelt_set_input(s, "train_step", "y", labels, sizeof labels));
//     check(smelt_run(s, "train_step", 1, 0));       // forward, backward, update (seed 1, step 0)
//     float loss;
//     check(smelt_get_output(s, "train_step", "loss", &loss, sizeof loss));
//     printf("loss %.9g\n", loss);
//     check(smelt_save(s, "mlp.ckpt"));              // parameters and optimizer state
//     smelt_session_free(s);
//     smelt_ingot_close(ig);
//     return 0;
//   }
//
// Tensors are passed in their dtype's bytes, row-major. Every function returns
// a status; on failure smelt_last_error() says why (per thread). The runtime
// never exits and never prints. Every public symbol starts with smelt_.
#ifndef SMELT_H
#define SMELT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// The library is built with every other name hidden: a program may define
// its own rt_fail or data_free and the library still calls its own.
#if defined(__GNUC__) || defined(__clang__)
#define SMELT_API __attribute__((visibility("default")))
#else
#define SMELT_API
#endif

// The library's version: the one place it is written (the Makefile reads
// it from here to name libsmeltrt.so.MAJOR.MINOR.PATCH, SONAME
// libsmeltrt.so.MAJOR; the compiler prints it). MAJOR changes when the ABI
// breaks.
#define SMELT_VERSION_MAJOR 0
#define SMELT_VERSION_MINOR 1
#define SMELT_VERSION_PATCH 0
#define SMELT_VERSION_STR_(x) #x
#define SMELT_VERSION_STR(x) SMELT_VERSION_STR_(x)
#define SMELT_VERSION_STRING                                                   \
  SMELT_VERSION_STR(SMELT_VERSION_MAJOR) "." SMELT_VERSION_STR(SMELT_VERSION_MINOR) "." SMELT_VERSION_STR(SMELT_VERSION_PATCH)

typedef enum {
  SMELT_OK = 0,
  SMELT_ERR_INVALID_ARGUMENT,
  SMELT_ERR_IO,
  SMELT_ERR_FORMAT,
  SMELT_ERR_NO_DEVICE,
  SMELT_ERR_OUT_OF_MEMORY,
  SMELT_ERR_RUNTIME,        // a kernel met a bad index, or similar
} smelt_status;

typedef struct smelt_ingot smelt_ingot;
typedef struct smelt_session smelt_session;

// The version of the library linked, "MAJOR.MINOR.PATCH" (SMELT_VERSION_STRING
// is the version of this header).
SMELT_API const char *smelt_version(void);
// A short English description of a status ("ok", "out of memory", ...).
SMELT_API const char *smelt_status_string(smelt_status status);
// Why the last call on this thread failed.
SMELT_API const char *smelt_last_error(void);

// Opens and validates an ingot: every section's bounds and checksum and every
// index inside; a truncated, corrupt or foreign file is SMELT_ERR_FORMAT.
SMELT_API smelt_status smelt_ingot_open(const char *path, smelt_ingot **out);
// An ingot holds native code (the CPU device loads its host code as a shared
// object, running its initializers): trust it as you would a shared library.
// This opens it only when the file's SHA-256 (as `smelt build` prints it) is
// sha256, 64 hex digits in either case: the file is read once, and the bytes
// hashed are the bytes validated and loaded. A different hash is
// SMELT_ERR_FORMAT, malformed hex SMELT_ERR_INVALID_ARGUMENT; NULL pins
// nothing (smelt_ingot_open).
SMELT_API smelt_status smelt_ingot_open_verified(const char *path, const char *sha256, smelt_ingot **out);
// Opens an ingot from size bytes in memory (an ingot linked into the program,
// say), with the checks of smelt_ingot_open. The bytes are copied: data may be
// freed once this returns. The CPU device loads the host code from an
// anonymous memfd, so nothing is written to disk.
SMELT_API smelt_status smelt_ingot_open_memory(const void *data, size_t size, smelt_ingot **out);
SMELT_API void smelt_ingot_close(smelt_ingot *ig);
// A META value ("model", "train.epochs", "data.train.x", ...) or NULL. The
// string belongs to the ingot, one per key, valid until smelt_ingot_close.
SMELT_API const char *smelt_ingot_meta(const smelt_ingot *ig, const char *key);

// What an ingot holds, for a program that runs an ingot it did not build:
// its entry points, each entry's inputs and outputs, and the parameters and
// optimizer state, each with its dtype and shape. Names and the ingot's
// strings stay valid until smelt_ingot_close.
typedef enum {
  SMELT_F32 = 0,
  SMELT_F16,
  SMELT_BF16,
  SMELT_I32,
  SMELT_I64,
  SMELT_U8,
  SMELT_BOOL,
} smelt_dtype;

typedef enum {
  SMELT_INPUT = 1,    // of an entry: set before each run
  SMELT_OUTPUT = 2,   // of an entry: read after a run
  SMELT_PARAM = 3,    // trained, saved with checkpoints
  SMELT_STATE = 4,    // optimizer state and buffers, saved with checkpoints
} smelt_role;

#define SMELT_MAX_DIMS 8
typedef struct {
  const char *name;          // "x" (an entry's input or output, as smelt_set_input takes it), "fc1.w"
  smelt_dtype dtype;
  int ndim;                  // 0 for a scalar
  int64_t dims[SMELT_MAX_DIMS];
  size_t bytes;              // what smelt_set_input, smelt_get_output, smelt_get_tensor take
} smelt_tensor_info;

// The entry points ("infer", "eval", "train_step"): i from 0 to count - 1;
// NULL past the end.
SMELT_API size_t smelt_ingot_entry_count(const smelt_ingot *ig);
SMELT_API const char *smelt_ingot_entry_name(const smelt_ingot *ig, size_t i);
// The tensors of one role, in the ingot's order: an entry's inputs or outputs
// (entry names it), or the ingot's parameters or state (entry is NULL). An
// unknown entry has none; smelt_ingot_tensor_info says so (and refuses an
// index past the count) with SMELT_ERR_INVALID_ARGUMENT.
SMELT_API size_t smelt_ingot_tensor_count(const smelt_ingot *ig, const char *entry, smelt_role role);
SMELT_API smelt_status smelt_ingot_tensor_info(const smelt_ingot *ig, const char *entry, smelt_role role, size_t i,
                                               smelt_tensor_info *out);
// "f32", "i32", ...; NULL for a value outside smelt_dtype.
SMELT_API const char *smelt_dtype_name(smelt_dtype dtype);

// Several bindings of one size variable in one ingot (smelt build -D
// B=1,8,64), in increasing value: 1 for an ingot of one binding. Binding i's
// ingot belongs to ig (valid until smelt_ingot_close(ig); free its sessions
// first) and has the same parameters and state as every other, so one
// checkpoint loads into each; *var and *value (where not NULL) get its size
// variable and value (NULL and 0 for an ingot of one binding). NULL past the
// end. ig itself is the binding listed first at build time, so a program
// that knows nothing of bindings runs that one.
SMELT_API size_t smelt_ingot_binding_count(const smelt_ingot *ig);
SMELT_API const smelt_ingot *smelt_ingot_binding(const smelt_ingot *ig, size_t i, const char **var, int64_t *value);
// The binding of the smallest value at least value (a batch of value rows
// fits it, its last rows padding), or SMELT_ERR_INVALID_ARGUMENT with a
// message when none is that large or the ingot has one binding.
SMELT_API smelt_status smelt_ingot_binding_fit(const smelt_ingot *ig, int64_t value, size_t *index);

// A session on a device: "cpu", "cuda", "hip" or "auto" (CUDA, then HIP, then
// the CPU). threads: CPU worker threads, 0 for one per core.
SMELT_API smelt_status smelt_session_new(const smelt_ingot *ig, const char *device, int threads,
                               smelt_session **out);
SMELT_API void smelt_session_free(smelt_session *s);
// The device the session runs on ("cpu").
SMELT_API const char *smelt_session_device(const smelt_session *s);
// On a GPU whose driver has graphs (CUDA, HIP), each entry's launches are
// captured as a graph at its first run and replayed with one call per run
// after that (the default). on = 0 launches kernels one by one instead, and
// frees the graphs captured so far; on = 1 captures again.
SMELT_API smelt_status smelt_session_use_graphs(smelt_session *s, int on);
// How many entries run as captured graphs now (0 on the CPU).
SMELT_API int smelt_session_graphs(const smelt_session *s);

// Copies bytes into input `name` of an entry; bytes must equal its size.
SMELT_API smelt_status smelt_set_input(smelt_session *s, const char *entry, const char *name,
                             const void *data, size_t bytes);
// Runs an entry point once. seed and step key the random ops (dropout).
SMELT_API smelt_status smelt_run(smelt_session *s, const char *entry, uint64_t seed, uint64_t step);
// Copies output `name` of the last run of an entry.
SMELT_API smelt_status smelt_get_output(smelt_session *s, const char *entry, const char *name, void *data,
                              size_t bytes);
// Reads or writes a parameter or a piece of optimizer state by name.
SMELT_API smelt_status smelt_get_tensor(smelt_session *s, const char *name, void *data, size_t bytes);
SMELT_API smelt_status smelt_set_tensor(smelt_session *s, const char *name, const void *data, size_t bytes);
// Size in bytes of a tensor: a parameter or state ("fc1.w"), or an entry's
// input or output ("train_step/x"); 0 when there is none.
SMELT_API size_t smelt_tensor_bytes(const smelt_session *s, const char *name);

// Saves every parameter and piece of optimizer state (a tensor file, written
// to a temporary file, flushed and renamed over path) and loads them back.
// An inference-only ingot (no train_step) loads the parameters of a training
// checkpoint and passes over its optimizer state. A file without the step
// counter ("step") is a parameters file: smelt_load takes it as
// smelt_load_weights does and gives the optimizer's state its initial values
// (step 0), so training from it fine-tunes with a fresh optimizer.
SMELT_API smelt_status smelt_save(smelt_session *s, const char *path);
SMELT_API smelt_status smelt_load(smelt_session *s, const char *path);
// Loads a weights file (a tensor or safetensors file: `smelt init
// --params-only`, `smelt import`'s model.safetensors): every parameter must be
// in it, with its dtype and shape, and it may hold the model's buffers; the
// optimizer's state and step counter are left as they are. Nothing changes
// when the file does not fit.
SMELT_API smelt_status smelt_load_weights(smelt_session *s, const char *path);

#ifdef __cplusplus
}
#endif
#endif
