// smelt.h: the public C API of libsmeltrt, the smelt runtime.
//
// The runtime will open ingots (files written by `smelt build`) and run their
// entry points on CUDA, HIP or the CPU. Today it provides only what the rest of
// the project already relies on: the version and the status codes every later
// call will return. Opening ingots and running them are not part of this
// release; docs/runtime.md says what is planned and what exists.
//
// Every public symbol starts with smelt_. The runtime never exits the process
// and never prints on its own: functions return a status.
#ifndef SMELT_H
#define SMELT_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  SMELT_OK = 0,
  SMELT_ERR_INVALID_ARGUMENT,
  SMELT_ERR_IO,
  SMELT_ERR_FORMAT,
  SMELT_ERR_NO_DEVICE,
  SMELT_ERR_OUT_OF_MEMORY,
} smelt_status;

// The library's version, "MAJOR.MINOR.PATCH".
const char *smelt_version(void);

// A short English description of a status ("ok", "out of memory", ...).
const char *smelt_status_string(smelt_status status);

#ifdef __cplusplus
}
#endif
#endif
