// host_cpu.c: x86-64 CPU names checked against LLVM before a build starts.
//
// LLVM's C API has no query for a CPU name: a target machine made for an
// unknown one only warns on stderr ("... is not a recognized processor") and
// the build later dies in an LLVM ERROR. So the name is tried once with
// stderr sent to a temporary file, and the warning, if any, decides.
#include "compiler.h"

#include <llvm-c/Core.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static LLVMTargetMachineRef x86_machine(const char *cpu) {
  llvm_errors_install();
  llvm_errors_at("the CPU name '%s'", cpu);
  LLVMInitializeX86TargetInfo();
  LLVMInitializeX86Target();
  LLVMInitializeX86TargetMC();
  LLVMTargetRef target;
  char *err = NULL;
  if (LLVMGetTargetFromTriple("x86_64-unknown-linux-gnu", &target, &err)) {
    LLVMDisposeMessage(err);
    return NULL;
  }
  return LLVMCreateTargetMachine(target, "x86_64-unknown-linux-gnu", cpu, "", LLVMCodeGenLevelDefault, LLVMRelocPIC,
                                 LLVMCodeModelDefault);
}

bool host_cpu_known(const char *cpu) {
  if (!strcmp(cpu, "native")) return true;
  FILE *capture = tmpfile();
  if (!capture) return true;   // cannot tell: let LLVM decide later
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  dup2(fileno(capture), STDERR_FILENO);
  LLVMTargetMachineRef tm = x86_machine(cpu);
  if (tm) LLVMDisposeTargetMachine(tm);
  fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  char said[512] = "";
  rewind(capture);
  size_t n = fread(said, 1, sizeof said - 1, capture);
  said[n] = '\0';
  fclose(capture);
  return strstr(said, "not a recognized processor") == NULL;
}

void host_cpu_list(void) {
  LLVMTargetMachineRef tm = x86_machine("help");   // LLVM prints its table of CPUs to stderr
  if (tm) LLVMDisposeTargetMachine(tm);
}
