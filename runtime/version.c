// version.c: the runtime's version and status descriptions.
#include "smelt.h"

const char *smelt_version(void) { return SMELT_VERSION_STRING; }

const char *smelt_status_string(smelt_status status) {
  switch (status) {
  case SMELT_OK: return "ok";
  case SMELT_ERR_INVALID_ARGUMENT: return "invalid argument";
  case SMELT_ERR_IO: return "input/output error";
  case SMELT_ERR_FORMAT: return "malformed or foreign file";
  case SMELT_ERR_NO_DEVICE: return "device not available";
  case SMELT_ERR_OUT_OF_MEMORY: return "out of memory";
  case SMELT_ERR_RUNTIME: return "run-time error";
  }
  return "unknown status";
}
