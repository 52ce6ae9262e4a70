// options.h: the one command-line parser of smelt and smelt-rt.
//
// A program describes its commands and its options in two tables; the parser
// follows the conventions of getopt_long: `--opt=value` and `--opt value`,
// `-o FILE` and `-oFILE`, `-D NAME=VALUE` and `-DNAME=VALUE`, `--` ends the
// options, `-h`/`--help` prints the command's usage. Values are checked
// against the option's kind (whole numbers with a range, reals, a list of
// choices) and an option is refused by a command that does not take it.
// Every error is one line on stderr naming the option and what it accepts,
// and the parse returns 2, the exit status of a bad command line.
#ifndef SMELT_OPTIONS_H
#define SMELT_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
  OPT_FLAG,     // no value
  OPT_STRING,   // any text
  OPT_INT,      // a whole number in [min, max]
  OPT_REAL,     // a real number in [min, max]
  OPT_CHOICE,   // one of `choices` ("fp32|tf32|bf16|fp16")
  OPT_LIST,     // repeatable text (-D NAME=VALUE), every value kept
  OPT_BYTES,    // a size: a whole number of bytes, or one with K, M, G or T (powers of 1024), in [min, max]
  OPT_IDENT,    // a C identifier that is not a keyword (a name for generated C source)
} OptKind;

typedef struct {
  const char *name;       // the long name, without "--"
  char short_name;        // 'o', 'D', or 0
  OptKind kind;
  const char *commands;   // the commands that take it, space-separated; "*": all
  const char *arg;        // the value's name in help ("N", "FILE"); NULL for a flag
  const char *help;       // one line
  double min, max;        // OPT_INT, OPT_REAL: the accepted range
  const char *choices;    // OPT_CHOICE
} OptSpec;

typedef struct {
  const char *name;       // "train"
  const char *args;       // what follows it in the usage line ("FILE.smelt|FILE.ingot")
  const char *help;       // what it does, one or more lines
  int min_files, max_files;   // positional arguments accepted (max -1: any number)
} CommandSpec;

#define OPT_MAX_LIST 32

typedef struct {
  bool set;
  const char *str;        // OPT_STRING, OPT_CHOICE: the text; OPT_INT, OPT_REAL: as given
  int64_t num;            // OPT_INT, OPT_BYTES (in bytes)
  double real;            // OPT_REAL
  const char *list[OPT_MAX_LIST];   // OPT_LIST
  int nlist;
} OptValue;

typedef struct {
  const char *prog;                 // "smelt"
  const OptSpec *specs;
  int nspecs;
  const CommandSpec *commands;
  int ncommands;
  const char *version;              // printed by --version / -V
} OptTable;

typedef struct {
  const CommandSpec *command;
  OptValue *values;                 // one per spec (owned)
  const char **files;               // positional arguments (owned array)
  int nfiles;
} OptResult;

// Parses argv[1] as the command and the rest as its options and files.
// Returns -1 when the run is over and successful (help or version printed),
// 0 when r holds a command to run, or 2 after printing the error.
int options_parse(const OptTable *t, int argc, char **argv, OptResult *r);
void options_result_free(OptResult *r);

// The value of the option named name (it must be in the table).
const OptValue *opt_get(const OptTable *t, const OptResult *r, const char *name);
bool opt_set(const OptTable *t, const OptResult *r, const char *name);

// Whether s is a C identifier and not a C11 or C++ keyword: generated
// source may name it.
bool opt_c_identifier(const char *s);

// The usage of one command (NULL: the program's overview), to out.
void options_usage(const OptTable *t, const CommandSpec *c, FILE *out);

// Prints "PROG: error: ..." and a pointer to --help, returns 2.
int opt_error(const OptTable *t, const CommandSpec *c, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
