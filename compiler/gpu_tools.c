// gpu_tools.c: ptxas and ld.lld, run as child processes in a private
// temporary folder.
//
// LLVM emits PTX and AMDGPU objects itself; turning PTX into a cubin needs
// NVIDIA's ptxas, and an AMDGPU object becomes a loadable code object only
// through a linker. Both are optional: without ptxas the ingot carries PTX
// for the driver to compile, without ld.lld an AMD target cannot be built.
#include "compiler.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

// The first executable dir/name of the ':'-separated dirs; empty and relative
// elements are skipped, so the current folder is never searched. Per
// thread: ptxas, ld.lld and the host's linker run from several at once.
static const char *tool_find(const char *dirs, const char *name) {
  static _Thread_local char found[4096];
  for (const char *d = dirs; *d;) {
    size_t len = strcspn(d, ":");
    if (d[0] == '/' && snprintf(found, sizeof found, "%.*s/%s", (int)len, d, name) < (int)sizeof found &&
        access(found, X_OK) == 0)
      return found;
    d += len + (d[len] == ':');
  }
  return NULL;
}

const char *tool_path(const char *name) {
  const char *path = getenv("PATH");
  return tool_find(path ? path : "/usr/bin:/bin", name);
}

const char *gpu_tool_path(const char *name) {
  const char *found = tool_path(name);
  return found ? found : tool_find("/usr/local/cuda/bin:/usr/lib/llvm-22/bin", name);
}

// Runs argv with stdout and stderr into log; the exit status, or -1.
static int run(char *const argv[], const char *log) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execv(argv[0], argv);
    _exit(127);
  }
  int status;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Writes a new file; an existing name (or a link) is an error.
static int put(const char *path, const char *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
  if (!f) {
    if (fd >= 0) close(fd);
    return -1;
  }
  int ok = fwrite(data, 1, len, f) == len;
  return fclose(f) == 0 && ok ? 0 : -1;
}

static char *get(const char *path, size_t *len) { return file_read(path, len); }

typedef struct {
  char dir[4096], in[4200], out[4200], log[4200];
} Scratch;

static int scratch_open(Scratch *s, const char *in_ext, const char *out_ext, char *err, size_t errlen) {
  if (tempdir_create(s->dir, sizeof s->dir, err, errlen)) return -1;
  snprintf(s->in, sizeof s->in, "%s/in.%s", s->dir, in_ext);
  snprintf(s->out, sizeof s->out, "%s/out.%s", s->dir, out_ext);
  snprintf(s->log, sizeof s->log, "%s/log", s->dir);
  return 0;
}

static void scratch_close(Scratch *s) { tempdir_remove(s->dir); }

// The tool's log, trimmed, for an error message.
static void log_into(const Scratch *s, const char *what, char *err, size_t errlen) {
  size_t n = 0;
  char *log = get(s->log, &n);
  while (log && n && (log[n - 1] == '\n' || log[n - 1] == ' ')) log[--n] = '\0';
  snprintf(err, errlen, "%s failed%s%.1500s", what, log && n ? ":\n" : "", log && n ? log : "");
  free(log);
}

// Drops ptxas's "Compile time = N ms" lines from its report in place: the
// report goes into the ingot, whose bytes must not depend on the clock.
static void drop_compile_times(char *report) {
  char *to = report;
  for (char *line = report; *line;) {
    char *end = strchr(line, '\n');
    size_t n = end ? (size_t)(end - line) + 1 : strlen(line);
    char keep = line[n];
    line[n] = '\0';
    bool timing = strstr(line, "Compile time = ") != NULL;
    line[n] = keep;
    if (!timing) memmove(to, line, n), to += n;
    line += n;
  }
  *to = '\0';
}

int ptx_assemble(const Blob *ptx, const char *arch, Blob *cubin, char **report, char *err, size_t errlen) {
  memset(cubin, 0, sizeof *cubin);
  *report = NULL;
  const char *ptxas = gpu_tool_path("ptxas");
  if (!ptxas) return 0;
  char tool[4096], archopt[32];
  snprintf(tool, sizeof tool, "%s", ptxas);
  snprintf(archopt, sizeof archopt, "-arch=%s", arch);
  Scratch s;
  if (scratch_open(&s, "ptx", "cubin", err, errlen)) return -1;
  int rc = -1;
  char *argv[] = {tool, "-v", "-O3", archopt, "-o", s.out, s.in, NULL};
  if (put(s.in, ptx->data, ptx->len) != 0) {
    snprintf(err, errlen, "cannot write '%s': %s", s.in, strerror(errno));
  } else if (run(argv, s.log) != 0) {
    log_into(&s, "ptxas", err, errlen);
  } else if (!(cubin->data = get(s.out, &cubin->len)) || cubin->len == 0) {
    snprintf(err, errlen, "ptxas wrote no cubin");
  } else {
    size_t n;
    *report = get(s.log, &n);
    if (*report) drop_compile_times(*report);
    rc = 1;
  }
  scratch_close(&s);
  return rc;
}

int amdgpu_link(const Blob *object, Blob *hsaco, char *err, size_t errlen) {
  memset(hsaco, 0, sizeof *hsaco);
  const char *lld = gpu_tool_path("ld.lld-22");
  if (!lld) lld = gpu_tool_path("ld.lld");
  if (!lld) return 0;
  char tool[4096];
  snprintf(tool, sizeof tool, "%s", lld);
  Scratch s;
  if (scratch_open(&s, "o", "hsaco", err, errlen)) return -1;
  int rc = -1;
  char *argv[] = {tool, "-shared", "-o", s.out, s.in, NULL};
  if (put(s.in, object->data, object->len) != 0) {
    snprintf(err, errlen, "cannot write '%s': %s", s.in, strerror(errno));
  } else if (run(argv, s.log) != 0) {
    log_into(&s, "ld.lld", err, errlen);
  } else if (!(hsaco->data = get(s.out, &hsaco->len)) || hsaco->len == 0) {
    snprintf(err, errlen, "ld.lld wrote no code object");
  } else {
    rc = 1;
  }
  scratch_close(&s);
  return rc;
}
