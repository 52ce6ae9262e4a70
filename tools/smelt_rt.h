// smelt_rt.h: the commands of smelt-rt, the runtime-only tool.
#ifndef SMELT_RT_TOOL_H
#define SMELT_RT_TOOL_H

// gpu_numerics.c: every kernel of the ingot at path on device against the CPU
// device; prints a report; 0 when all agree.
int numerics_check(const char *path, const char *device);

// gpu_bench and gpu_profile are in the compiler library (compiler/profile.c).

#endif
