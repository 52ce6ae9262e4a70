# smelt: build, test and demo.
#
#   make            build/smelt, build/libsmeltrt.a, build/libsmeltrt.so
#   make test       install what is missing, build, fuzz smoke run, install check, the ONNX conformance suite, every Criterion suite
#   make install    PREFIX=/usr/local DESTDIR= LIBDIR=$(PREFIX)/lib (make uninstall: the same)
#   make test-asan  the same suites built with ASan + UBSan and graph_verify between passes; a leaking test fails
#   make demo       install, build, check every example, train the MLP for an epoch
#   make fuzz       longer libFuzzer runs, FUZZ_SECONDS=300 per target (FUZZ="parse tensorfile ingot data onnx")
#   make bench      benchmarks (bench/); results are kept in bench/results/

CC       ?= cc
FUZZ_CC  ?= clang-22
BUILD    ?= build
OPT      ?= -O2 -g
SAN      ?=
WERROR   ?= -Werror
LLVM_CONFIG ?= llvm-config-22

# LLVM's flags are asked for when a recipe first needs them, not when this
# file is read: on a fresh machine `make test` and `make demo` install LLVM
# (scripts/deps.sh) before anything is compiled.
LLVM_INC  = $(eval LLVM_INC := $$(shell $(LLVM_CONFIG) --includedir 2>/dev/null))$(LLVM_INC)
LLVM_LIBS = $(eval LLVM_LIBS := $$(shell $(LLVM_CONFIG) --ldflags 2>/dev/null) \
              $$(shell $(LLVM_CONFIG) --link-shared --libs 2>/dev/null))$(LLVM_LIBS)

# Three floors, each compiled with the headers of its own floor and those
# below only: the runtime (runtime/), the tools that run ingots (tools/),
# the compiler (compiler/, the only one that sees LLVM). -MMD -MP: every
# object depends on the headers it includes (ops.def included).
CFLAGS_BASE   = -std=c11 -D_XOPEN_SOURCE=700 $(OPT) $(SAN) -Wall -Wextra $(WERROR) -fPIC -MMD -MP
# The runtime's own names are hidden: only what runtime/smelt.h marks
# SMELT_API leaves libsmeltrt.so (and libsmeltrt.a, below).
RT_CFLAGS     = $(CFLAGS_BASE) -fvisibility=hidden -Iruntime
TOOL_CFLAGS   = $(CFLAGS_BASE) -Iruntime -Itools -I$(BUILD)/gen
CFLAGS_ALL    = $(CFLAGS_BASE) -Icompiler -Iruntime -Itools -Ibench -Itests -I$(BUILD)/gen \
                -isystem $(LLVM_INC) -DSMELT_STDLIB_DIR='"$(CURDIR)/stdlib"'
LDFLAGS_ALL   = $(SAN)
SYS_LIBS      = -lm -lpthread -ldl

COMPILER_SRC := $(filter-out compiler/main.c,$(wildcard compiler/*.c compiler/target/*.c))
RUNTIME_SRC  := $(wildcard runtime/*.c)
TOOLS_SRC    := $(filter-out tools/smelt_rt.c,$(wildcard tools/*.c))
TEST_SRC     := $(wildcard tests/test_*.c) tests/support.c
BENCH_SRC    := $(wildcard bench/bench_*.c)
GEN_C        := $(BUILD)/gen/smelt.tab.c $(BUILD)/gen/lex.yy.c $(BUILD)/gen/onnx.pb-c.c
GEN_H        := $(BUILD)/gen/smelt.tab.h $(BUILD)/gen/smelt.lex.h $(BUILD)/gen/op_names.h $(BUILD)/gen/onnx.pb-c.h
# The ONNX importer's protobuf reader is generated from Debian's onnx.proto
# (libonnx-dev) by protoc-c; only the compiler links libprotobuf-c.
ONNX_PROTO   := /usr/include/onnx/onnx.proto
ONNX_LIBS    := -lprotobuf-c

COMPILER_OBJ := $(COMPILER_SRC:%.c=$(BUILD)/obj/%.o) \
                $(BUILD)/obj/gen/smelt.tab.o $(BUILD)/obj/gen/lex.yy.o $(BUILD)/obj/gen/onnx.pb-c.o
RUNTIME_OBJ  := $(RUNTIME_SRC:%.c=$(BUILD)/obj/%.o)
TOOLS_OBJ    := $(TOOLS_SRC:%.c=$(BUILD)/obj/%.o)
TEST_OBJ     := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)

# The version is written once, in runtime/smelt.h: the real file is
# libsmeltrt.so.MAJOR.MINOR.PATCH, its SONAME libsmeltrt.so.MAJOR, and both
# that name and libsmeltrt.so (for -lsmeltrt) are links to it.
RT_VERSION := $(shell awk '/^\#define SMELT_VERSION_(MAJOR|MINOR|PATCH) /{v = v (v == "" ? "" : ".") $$3} END {print v}' runtime/smelt.h)
RT_MAJOR   := $(firstword $(subst ., ,$(RT_VERSION)))
RT_SO      := $(BUILD)/libsmeltrt.so.$(RT_VERSION)

# The libraries, from the bottom up; a program links the ones of its floor and below.
# The tools and the compiler call the runtime's internal functions, so they
# link the runtime's objects as they are (RT_LIB); libsmeltrt.a, for users,
# has only the smelt_* names global.
RT_LIB    := $(BUILD)/obj/libsmeltrt-internal.a
TOOLS_LIB := $(BUILD)/libsmelttools.a $(RT_LIB)
C_LIB     := $(BUILD)/libsmeltc.a $(TOOLS_LIB)

.PHONY: all deps test test-suites test-failalloc test-asan demo demo-run fuzz fuzz-smoke clean diag-golden bench \
        bench-programs api-example
.DELETE_ON_ERROR:

all: $(BUILD)/smelt $(BUILD)/smelt-rt $(BUILD)/libsmeltrt.a $(BUILD)/libsmeltrt.so $(BUILD)/libsmeltrt.so.$(RT_MAJOR)

deps:
	@bash scripts/deps.sh

# ---- generated front end

$(BUILD)/gen/smelt.tab.c $(BUILD)/gen/smelt.tab.h: grammar/smelt.y
	@mkdir -p $(dir $@)
	bison -Wall -Werror -d -o $(BUILD)/gen/smelt.tab.c $<

$(BUILD)/gen/lex.yy.c $(BUILD)/gen/smelt.lex.h: grammar/smelt.l $(BUILD)/gen/smelt.tab.h
	@mkdir -p $(dir $@)
	flex --header-file=$(BUILD)/gen/smelt.lex.h -o $(BUILD)/gen/lex.yy.c $<

$(BUILD)/gen/onnx.pb-c.c $(BUILD)/gen/onnx.pb-c.h: $(ONNX_PROTO)
	@mkdir -p $(dir $@)
	protoc-c --proto_path=$(dir $(ONNX_PROTO)) --c_out=$(BUILD)/gen $(ONNX_PROTO)

# The op names for tools that read kernel names (smelt-rt check), without
# the compiler's headers.
$(BUILD)/gen/op_names.h: compiler/ops.def
	@mkdir -p $(dir $@)
	printf '#define OP(name, ...) #name,\n#include "ops.def"\n' | $(CC) -E -P -Icompiler - > $@

# ---- objects

# The runtime's objects are rebuilt when its flags change (-fvisibility).
RT_FLAGS_STAMP := $(BUILD)/obj/runtime/flags
$(RT_FLAGS_STAMP): FORCE
	@mkdir -p $(dir $@)
	@echo '$(CC) $(RT_CFLAGS)' | cmp -s - $@ || echo '$(CC) $(RT_CFLAGS)' > $@

$(BUILD)/obj/runtime/%.o: runtime/%.c $(RT_FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(RT_CFLAGS) -c $< -o $@

$(BUILD)/obj/tools/%.o: tools/%.c | $(BUILD)/gen/op_names.h
	@mkdir -p $(dir $@)
	$(CC) $(TOOL_CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.c | $(GEN_H) llvm-present
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

# Generated code: its own unused helpers are not ours to fix.
$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c $(GEN_H) | llvm-present
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Wno-unused-function -Wno-sign-compare -c $< -o $@

.PHONY: llvm-present FORCE
FORCE:
llvm-present:
	@test -n "$(LLVM_INC)" || { echo "LLVM 22 not found ($(LLVM_CONFIG)): run 'make deps' (or make test / make demo, which install it)"; exit 1; }

$(RT_LIB): $(RUNTIME_OBJ)
	rm -f $@ && ar rcs $@ $^

# One relocatable object with every hidden name made local: a program that
# links libsmeltrt.a statically may define its own rt_fail or data_free.
$(BUILD)/obj/smeltrt.o: $(RUNTIME_OBJ)
	ld -r -o $@.tmp $^ && objcopy --localize-hidden $@.tmp $@ && rm -f $@.tmp

$(BUILD)/libsmeltrt.a: $(BUILD)/obj/smeltrt.o
	rm -f $@ && ar rcs $@ $^

$(RT_SO): $(RUNTIME_OBJ)
	$(CC) $(LDFLAGS_ALL) -shared -Wl,-soname,libsmeltrt.so.$(RT_MAJOR) -o $@ $^ $(SYS_LIBS)

$(BUILD)/libsmeltrt.so.$(RT_MAJOR) $(BUILD)/libsmeltrt.so: $(RT_SO)
	ln -sfn $(notdir $<) $@

$(BUILD)/libsmelttools.a: $(TOOLS_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libsmeltc.a: $(COMPILER_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/smelt: $(BUILD)/obj/compiler/main.o $(C_LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LLVM_LIBS) $(ONNX_LIBS) $(SYS_LIBS)

# The runtime-only tool for GPU hosts: the tools and the runtime, no compiler
# object and no LLVM (tests/test_layers.c checks its symbols).
$(BUILD)/smelt-rt: $(BUILD)/obj/tools/smelt_rt.o $(TOOLS_LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(SYS_LIBS)

# ---- tests

# The fake GPU driver that tests/test_gpu_device.c points the GPU device at,
# and a build of it too old to have the launch entry points.
FAKE_GPU := $(BUILD)/fake_gpu/libfakegpu.so $(BUILD)/fake_gpu/libfakegpu-old.so
FAKE_GPU_CC = $(CC) -std=c11 $(OPT) $(SAN) -Wall -Wextra $(WERROR) -fPIC -shared

$(BUILD)/fake_gpu/libfakegpu.so: tests/fake_gpu/fake_driver.c tests/fake_gpu/fake_gpu.h
	@mkdir -p $(dir $@)
	$(FAKE_GPU_CC) -o $@ $<

$(BUILD)/fake_gpu/libfakegpu-old.so: tests/fake_gpu/fake_driver.c tests/fake_gpu/fake_gpu.h
	@mkdir -p $(dir $@)
	$(FAKE_GPU_CC) -DFAKE_GPU_OLD -o $@ $<

$(BUILD)/smelt-tests: $(TEST_OBJ) $(C_LIB) | $(FAKE_GPU) $(BUILD)/libsmeltrt.a $(BUILD)/libsmeltrt.so $(BUILD)/libsmeltrt.so.$(RT_MAJOR)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LLVM_LIBS) $(ONNX_LIBS) -lcriterion $(SYS_LIBS)

$(BUILD)/leak-canary: $(BUILD)/obj/tests/leak_canary.o $(BUILD)/obj/tests/support.o $(C_LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LLVM_LIBS) $(ONNX_LIBS) -lcriterion $(SYS_LIBS)

# The usage example at the top of runtime/smelt.h, compiled and linked
# against the runtime alone, so the public header's documentation cannot rot.
# The usage example of runtime/smelt.h, taken from the header by the test
# (tests/test_libapi.c), compiled as C11 and as C++17 and run on an ingot.
api-example: all $(BUILD)/smelt-tests
	NO_COLOR=1 SMELT_PATH= $(BUILD)/smelt-tests --filter 'libapi/the_header_example*'

TEST_ENV = NO_COLOR=1 SMELT_PATH=

# Allocation-failure injection (tests/failalloc.c): the runtime linked with
# its malloc, calloc, realloc, strdup, posix_memalign and free wrapped, run
# on a tiny MLP with every allocation of a session's life failing in turn.
FAILALLOC_WRAP = $(foreach f,malloc calloc realloc strdup posix_memalign free,-Wl,--wrap=$(f))

$(BUILD)/failalloc: tests/failalloc.c $(RT_LIB)
	$(CC) $(RT_CFLAGS) $(LDFLAGS_ALL) -o $@ $< $(RT_LIB) $(FAILALLOC_WRAP) $(SYS_LIBS)

test-failalloc: $(BUILD)/failalloc $(BUILD)/smelt
	@rm -rf $(BUILD)/failalloc-run && mkdir -p $(BUILD)/failalloc-run
	$(BUILD)/smelt build -DB=2 -DH=8 examples/mlp.smelt -o $(BUILD)/failalloc-run/mlp.ingot >/dev/null
	$(BUILD)/failalloc $(BUILD)/failalloc-run/mlp.ingot $(BUILD)/failalloc-run

# The README's test command: installs what is missing first, then reads this
# file again (a fresh machine has no LLVM, flex or bison until deps ran).
test: deps
	@$(MAKE) --no-print-directory test-suites

test-suites: all $(BUILD)/smelt-tests bench-programs fuzz-smoke install-check test-failalloc
	$(TEST_ENV) SMELT=$(CURDIR)/$(BUILD)/smelt bash scripts/onnx-suite.sh
	$(TEST_ENV) $(BUILD)/smelt-tests --jobs=2

# Sanitizers: every suite under ASan + UBSan. Criterion ignores leak reports
# from its test processes, so each suite's teardown asks LeakSanitizer itself
# (TEST in tests/support.h); the canary proves that a leak does fail a test.
test-asan: deps
	$(MAKE) BUILD=build-asan CC=gcc OPT="-O1 -g -fno-omit-frame-pointer -DSMELT_VERIFY" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  build-asan/smelt-tests build-asan/leak-canary build-asan/smelt build-asan/smelt-rt
	@if ASAN_OPTIONS=detect_leaks=1 build-asan/leak-canary >/dev/null 2>&1; then \
	  echo "leak check is not working: the leaking canary test passed"; exit 1; fi
	@echo "leak check works: the leaking canary test failed as it must"
	$(TEST_ENV) ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 build-asan/smelt-tests --jobs=2

# ---- fuzzing (libFuzzer, clang-22)

FUZZ_OBJ := $(patsubst $(BUILD)/obj/%,$(BUILD)/fuzz/obj/%,$(COMPILER_OBJ) $(TOOLS_OBJ) $(RUNTIME_OBJ))
FUZZ_FLAGS = -std=c11 -D_XOPEN_SOURCE=700 -MMD -MP -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
             -fno-sanitize-recover=undefined -Icompiler -Iruntime -Itools -I$(BUILD)/gen -isystem $(LLVM_INC) \
             -DSMELT_STDLIB_DIR='"$(CURDIR)/stdlib"' -Wno-unused-function

$(BUILD)/fuzz/obj/gen/%.o: $(BUILD)/gen/%.c $(GEN_H) compiler/compiler.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -c $< -o $@

$(BUILD)/fuzz/obj/%.o: %.c compiler/compiler.h | $(GEN_H) llvm-present
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -c $< -o $@

$(BUILD)/fuzz/fuzz-parse: tests/fuzz/fuzz_parse.c $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined -o $@ $(filter %.c %.o,$^) $(LLVM_LIBS) $(ONNX_LIBS) $(SYS_LIBS)

FUZZ_RT_OBJ := $(patsubst $(BUILD)/obj/%,$(BUILD)/fuzz/obj/%,$(RUNTIME_OBJ))
$(BUILD)/fuzz/fuzz-tensorfile: tests/fuzz/fuzz_tensorfile.c $(FUZZ_RT_OBJ)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined -o $@ $(filter %.c %.o,$^) -lm -lpthread -ldl

$(BUILD)/fuzz/fuzz-ingot: tests/fuzz/fuzz_ingot.c $(FUZZ_RT_OBJ)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined -o $@ $(filter %.c %.o,$^) -lm -lpthread -ldl

$(BUILD)/fuzz/fuzz-data: tests/fuzz/fuzz_data.c $(FUZZ_RT_OBJ)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined -o $@ $(filter %.c %.o,$^) -lm -lpthread -ldl

$(BUILD)/fuzz/fuzz-onnx: tests/fuzz/fuzz_onnx.c $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined -o $@ $(filter %.c %.o,$^) $(LLVM_LIBS) $(ONNX_LIBS) $(SYS_LIBS)

FUZZ_RUNS ?= 20000
FUZZ_SECONDS ?= 300
FUZZ_SEEDS = examples stdlib tests/diag tests/fuzz/seeds

FUZZ_TARGETS = parse tensorfile ingot data onnx
FUZZ ?= $(FUZZ_TARGETS)
# each target's seed inputs, longest input, and smoke-run time cap (seconds)
FUZZ_IN_parse = $(FUZZ_SEEDS)
FUZZ_IN_tensorfile = tests/fuzz/seeds-tensors
FUZZ_IN_ingot = tests/fuzz/seeds-ingots
FUZZ_IN_data = tests/fuzz/seeds-data
FUZZ_IN_onnx = tests/fuzz/seeds-onnx
FUZZ_LEN_parse = 65536
FUZZ_LEN_tensorfile = 4096
FUZZ_LEN_ingot = 65536
FUZZ_LEN_data = 4096
FUZZ_LEN_onnx = 16384
FUZZ_SMOKE_SECONDS_parse = 60
FUZZ_SMOKE_SECONDS_tensorfile = 30
FUZZ_SMOKE_SECONDS_ingot = 30
FUZZ_SMOKE_SECONDS_data = 20
FUZZ_SMOKE_SECONDS_onnx = 30

# One smoke run of target $(1), from a fresh corpus. It takes a fixed seed
# (-seed=1), so a run explores the same inputs each time on one machine; a
# finding prints its reproducer in base64, so a CI log alone can replay it.
define fuzz_smoke_run
	@rm -rf $(BUILD)/fuzz/smoke-corpus-$(1) $(BUILD)/fuzz/smoke-$(1)-* && mkdir -p $(BUILD)/fuzz/smoke-corpus-$(1)
	$(BUILD)/fuzz/fuzz-$(1) -seed=1 -runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_SMOKE_SECONDS_$(1)) -timeout=10 \
	  -max_len=$(FUZZ_LEN_$(1)) -rss_limit_mb=2048 -print_final_stats=0 -artifact_prefix=$(BUILD)/fuzz/smoke-$(1)- \
	  $(BUILD)/fuzz/smoke-corpus-$(1) $(FUZZ_IN_$(1)) 2>$(BUILD)/fuzz/smoke-$(1).log \
	  || { tail -n 60 $(BUILD)/fuzz/smoke-$(1).log; for f in $(BUILD)/fuzz/smoke-$(1)-*; do \
	       [ -f "$$f" ] && { echo "$$f, base64:"; base64 -w 0 "$$f"; echo; }; done; exit 1; }
	@grep -E "^Done [0-9]+ runs" $(BUILD)/fuzz/smoke-$(1).log | sed "s/^/fuzz-$(1): /" || true
	@echo "fuzz-$(1): smoke run found no crash, hang or leak"

endef

# One long run of target $(1) for FUZZ_SECONDS, keeping its corpus in
# build/fuzz/corpus-long-$(1); a finding stops the run and leaves its
# reproducer (crash-*, leak-*, oom-*, timeout-*) in build/fuzz/.
define fuzz_long_run
	@mkdir -p $(BUILD)/fuzz/corpus-long-$(1)
	@echo "fuzz-$(1): $(FUZZ_SECONDS) s"
	$(BUILD)/fuzz/fuzz-$(1) -max_total_time=$(FUZZ_SECONDS) -timeout=10 -max_len=$(FUZZ_LEN_$(1)) -rss_limit_mb=2048 \
	  -artifact_prefix=$(BUILD)/fuzz/ $(BUILD)/fuzz/corpus-long-$(1) $(FUZZ_IN_$(1))

endef

fuzz-smoke: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz-%)
	$(foreach t,$(FUZZ_TARGETS),$(call fuzz_smoke_run,$(t)))

# `make fuzz`: each target of FUZZ (all by default), one after the other.
fuzz: $(FUZZ:%=$(BUILD)/fuzz/fuzz-%)
	$(foreach t,$(FUZZ),$(call fuzz_long_run,$(t)))

# ---- benchmarks (numbers, not tests: see ../shared/PERF.md and bench/results/)

# Every benchmark program is built by `make test` (bench-programs), so none
# can stop compiling unnoticed; `make bench` runs them.
define bench_rule
$(BUILD)/bench-$(subst _,-,$(1)): $(BUILD)/obj/bench/bench_$(1).o $$(C_LIB)
	$$(CC) $$(LDFLAGS_ALL) -o $$@ $$^ $$(LLVM_LIBS) $$(SYS_LIBS)
endef
BENCH_NAMES    := $(patsubst bench/bench_%.c,%,$(BENCH_SRC))
BENCH_PROGRAMS := $(foreach b,$(BENCH_NAMES),$(BUILD)/bench-$(subst _,-,$(b)))
$(foreach b,$(BENCH_NAMES),$(eval $(call bench_rule,$(b))))
bench-programs: $(BENCH_PROGRAMS)

# PyTorch for the reference column: PyPI's torch or Debian's python3-torch,
# whichever `python3` (or BENCH_PYTHON) imports; skipped, saying so, if none.
BENCH_PYTHON ?= $(shell for p in python3 /usr/bin/python3; do $$p -c "import torch" 2>/dev/null && echo $$p && break; done)

bench: all bench-programs
	@$(BUILD)/bench-elab
	@$(BUILD)/bench-fusion 2
	@$(BUILD)/bench-launch 2
	@env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BUILD)/bench-matmul 1
	@env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BUILD)/bench-matmul 2
	@env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(or $(BENCH_PYTHON),python3) bench/compare_mlp.py 2
	@env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(or $(BENCH_PYTHON),python3) bench/compare_models.py 2
	@$(or $(BENCH_PYTHON),python3) bench/compare_build.py $(BENCH_BUILD_FLAGS)

# `make bench BENCH_BUILD_FLAGS=--gpt2` adds GPT-2 small (minutes).

# ---- demo

demo: deps
	@$(MAKE) --no-print-directory demo-run

demo-run: all
	@echo "== smelt $$($(BUILD)/smelt --version | cut -d' ' -f2): checking every example"
	$(BUILD)/smelt check --summary examples/*.smelt
	@echo "== training the MLP on Fashion-MNIST for one epoch"
	$(BUILD)/smelt train examples/mlp.smelt --epochs=1 --log-every=50

clean:
	rm -rf build build-asan

# Rewrites every tests/diag/*.err from the current binary; review the diff.
diag-golden: $(BUILD)/smelt
	@for f in tests/diag/*.smelt; do \
	  NO_COLOR=1 SMELT_PATH= $(BUILD)/smelt check "$$f" > "$${f%.smelt}.err" 2>&1; \
	  echo "exit $$?" >> "$${f%.smelt}.err"; done
	@git status --short tests/diag

# Header dependencies written by the compiles (-MMD -MP).
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---- install, uninstall
#
#   make install   [PREFIX=/usr/local] [DESTDIR=] [LIBDIR=$(PREFIX)/lib]
#   make uninstall (the same variables)
#
# The installed smelt finds PREFIX/share/smelt/stdlib from its own path
# (compiler/module.c), so a DESTDIR staging tree or a moved PREFIX works as
# long as bin/ and share/ stay siblings. Every libsmeltrt.so* of the build is
# copied, symbolic links as links.
PREFIX     ?= /usr/local
DESTDIR    ?=
LIBDIR     ?= $(PREFIX)/lib
INSTALL    ?= install
# The one version, SMELT_VERSION_* in runtime/smelt.h (RT_VERSION above).
SMELT_VERSION = $(RT_VERSION)

D_BIN   = $(DESTDIR)$(PREFIX)/bin
D_LIB   = $(DESTDIR)$(LIBDIR)
D_INC   = $(DESTDIR)$(PREFIX)/include
D_SHARE = $(DESTDIR)$(PREFIX)/share

.PHONY: install uninstall install-check

# The .pc names PREFIX and LIBDIR, so install writes it in place each time.
install: all
	@test -n "$(PREFIX)" || { echo "PREFIX is empty"; exit 1; }
	@test -n "$(SMELT_VERSION)" || { echo "no version found in runtime/smelt.h"; exit 1; }
	$(INSTALL) -d $(D_BIN) $(D_LIB)/pkgconfig $(D_INC) $(D_SHARE)/smelt/stdlib $(D_SHARE)/man/man1 \
	  $(D_SHARE)/bash-completion/completions
	$(INSTALL) -m 755 $(BUILD)/smelt $(BUILD)/smelt-rt $(D_BIN)
	$(INSTALL) -m 644 $(BUILD)/libsmeltrt.a $(D_LIB)
	for f in $(BUILD)/libsmeltrt.so*; do \
	  if [ -L "$$f" ]; then cp -P "$$f" $(D_LIB)/ || exit 1; \
	  else $(INSTALL) -m 755 "$$f" $(D_LIB) || exit 1; fi; done
	$(INSTALL) -m 644 runtime/smelt.h $(D_INC)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@VERSION@|$(SMELT_VERSION)|' \
	  -e 's|@LIBS_PRIVATE@|$(SYS_LIBS)|' dist/smelt.pc.in > $(D_LIB)/pkgconfig/smelt.pc
	chmod 644 $(D_LIB)/pkgconfig/smelt.pc
	$(INSTALL) -m 644 stdlib/*.smelt $(D_SHARE)/smelt/stdlib
	$(INSTALL) -m 644 dist/smelt.1 dist/smelt-rt.1 $(D_SHARE)/man/man1
	$(INSTALL) -m 644 dist/smelt.bash $(D_SHARE)/bash-completion/completions/smelt

# Removes what install wrote; share/smelt is smelt's alone.
uninstall:
	@test -n "$(PREFIX)" || { echo "PREFIX is empty"; exit 1; }
	rm -f $(D_BIN)/smelt $(D_BIN)/smelt-rt $(D_LIB)/libsmeltrt.a $(D_LIB)/libsmeltrt.so* \
	  $(D_INC)/smelt.h $(D_LIB)/pkgconfig/smelt.pc $(D_SHARE)/man/man1/smelt.1 $(D_SHARE)/man/man1/smelt-rt.1 \
	  $(D_SHARE)/bash-completion/completions/smelt
	rm -rf $(D_SHARE)/smelt

# Installs into a temporary DESTDIR and uses the result as a user would
# (scripts/install-check.sh); part of make test.
install-check: all
	bash scripts/install-check.sh
