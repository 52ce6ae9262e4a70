// error.c: the message behind smelt_last_error, one per thread.
#include <stdarg.h>
#include <stdio.h>

#include "runtime.h"

static _Thread_local char last_error[1024];

smelt_status rt_fail(smelt_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  return status;
}

const char *smelt_last_error(void) { return last_error[0] ? last_error : "no error"; }
