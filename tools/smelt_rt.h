// smelt_rt.h: the commands of smelt-rt, the runtime-only tool.
#ifndef SMELT_RT_TOOL_H
#define SMELT_RT_TOOL_H

// gpu_numerics.c: every kernel of the ingot at path on device against the CPU
// device; prints a report; 0 when all agree.
int numerics_check(const char *path, const char *device);

// gpu_bench.c: the "infer" entry of each ingot (a "PATH" or "PATH:FLOPS"
// argument) timed on device, against a device-to-device copy; prints a
// Markdown table. 0, or 1 after an error.
int gpu_bench(const char *device, int n, char **ingots);
// A per-kernel table of one entry: median time, bytes, GB/s, FLOP/s.
int gpu_profile(const char *path, const char *entry, const char *device, int runs);

#endif
