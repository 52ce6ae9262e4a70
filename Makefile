# smelt: build, test and demo.
#
#   make            build/smelt, build/libsmeltrt.a, build/libsmeltrt.so
#   make test       install what is missing, build, fuzz smoke run, every Criterion suite
#   make test-asan  the same suites built with ASan + UBSan and graph_verify between passes; a leaking test fails
#   make demo       install, build, check every example, train the MLP for an epoch
#   make fuzz       a longer libFuzzer run over the parser (FUZZ_SECONDS=300)
#   make bench      benchmarks (bench/); results are kept in bench/results/

CC       ?= cc
FUZZ_CC  ?= clang-22
BUILD    ?= build
OPT      ?= -O2 -g
SAN      ?=
WERROR   ?= -Werror
LLVM_CONFIG ?= llvm-config-22
LLVM_INC := $(shell $(LLVM_CONFIG) --includedir 2>/dev/null)
LLVM_LIBS := $(shell $(LLVM_CONFIG) --ldflags 2>/dev/null) $(shell $(LLVM_CONFIG) --link-shared --libs 2>/dev/null)
CFLAGS_ALL = -std=c11 -D_XOPEN_SOURCE=700 $(OPT) $(SAN) -Wall -Wextra $(WERROR) -fPIC \
             -Icompiler -Iruntime -Ibench -I$(BUILD)/gen -isystem $(LLVM_INC) \
             -DSMELT_STDLIB_DIR='"$(CURDIR)/stdlib"'
LDFLAGS_ALL = $(SAN)

COMPILER_SRC := $(filter-out compiler/main.c,$(wildcard compiler/*.c))
RUNTIME_SRC  := $(wildcard runtime/*.c)
TEST_SRC     := $(wildcard tests/test_*.c) tests/support.c
GEN_C        := $(BUILD)/gen/smelt.tab.c $(BUILD)/gen/lex.yy.c
GEN_H        := $(BUILD)/gen/smelt.tab.h $(BUILD)/gen/smelt.lex.h

COMPILER_OBJ := $(COMPILER_SRC:%.c=$(BUILD)/obj/%.o) \
                $(BUILD)/obj/gen/smelt.tab.o $(BUILD)/obj/gen/lex.yy.o
RUNTIME_OBJ  := $(RUNTIME_SRC:%.c=$(BUILD)/obj/%.o)
TEST_OBJ     := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)

.PHONY: all deps test test-asan demo fuzz fuzz-smoke clean diag-golden bench
.DELETE_ON_ERROR:

all: $(BUILD)/smelt $(BUILD)/smelt-rt $(BUILD)/libsmeltrt.a $(BUILD)/libsmeltrt.so

deps:
	@bash scripts/deps.sh

# ---- generated front end

$(BUILD)/gen/smelt.tab.c $(BUILD)/gen/smelt.tab.h: grammar/smelt.y
	@mkdir -p $(dir $@)
	bison -Wall -Werror -d -o $(BUILD)/gen/smelt.tab.c $<

$(BUILD)/gen/lex.yy.c $(BUILD)/gen/smelt.lex.h: grammar/smelt.l $(BUILD)/gen/smelt.tab.h
	@mkdir -p $(dir $@)
	flex --header-file=$(BUILD)/gen/smelt.lex.h -o $(BUILD)/gen/lex.yy.c $<

# ---- objects

$(BUILD)/obj/%.o: %.c compiler/compiler.h compiler/codegen.h runtime/smelt.h runtime/runtime.h runtime/ingot.h | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

# Generated code: its own unused helpers are not ours to fix.
$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c compiler/compiler.h $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Wno-unused-function -Wno-sign-compare -c $< -o $@

$(BUILD)/libsmeltc.a: $(COMPILER_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/smelt: $(BUILD)/obj/compiler/main.o $(BUILD)/libsmeltc.a $(BUILD)/libsmeltrt.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LLVM_LIBS) -lm

# The runtime-only tool for GPU hosts: no LLVM (the trainer, the tensor file
# reader and util.c are all it takes from the compiler library).
RT_TOOL_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tools/*.c))
$(BUILD)/obj/tools/%.o: tools/%.c tools/smelt_rt.h compiler/compiler.h runtime/runtime.h runtime/ingot.h | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itools -c $< -o $@

$(BUILD)/smelt-rt: $(RT_TOOL_OBJ) $(BUILD)/libsmeltc.a $(BUILD)/libsmeltrt.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ -lm -lpthread -ldl

$(BUILD)/libsmeltrt.a: $(RUNTIME_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libsmeltrt.so: $(RUNTIME_OBJ)
	$(CC) $(LDFLAGS_ALL) -shared -o $@ $^ -lm -lpthread -ldl

# ---- tests

$(BUILD)/smelt-tests: $(TEST_OBJ) $(BUILD)/libsmeltc.a $(BUILD)/libsmeltrt.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LLVM_LIBS) -lcriterion -lm -ldl

$(BUILD)/leak-canary: $(BUILD)/obj/tests/leak_canary.o $(BUILD)/obj/tests/support.o $(BUILD)/libsmeltc.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LLVM_LIBS) -lcriterion -lm

TEST_ENV = NO_COLOR=1 SMELT_PATH=

test: deps all $(BUILD)/smelt-tests fuzz-smoke
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

FUZZ_OBJ := $(COMPILER_OBJ:$(BUILD)/obj/%=$(BUILD)/fuzz/obj/%)
FUZZ_FLAGS = -std=c11 -D_XOPEN_SOURCE=700 -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
             -fno-sanitize-recover=undefined -Icompiler -Iruntime -I$(BUILD)/gen -isystem $(LLVM_INC) \
             -DSMELT_STDLIB_DIR='"$(CURDIR)/stdlib"' -Wno-unused-function

$(BUILD)/fuzz/obj/gen/%.o: $(BUILD)/gen/%.c $(GEN_H) compiler/compiler.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -c $< -o $@

$(BUILD)/fuzz/obj/%.o: %.c compiler/compiler.h | $(GEN_H)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -c $< -o $@

$(BUILD)/fuzz/fuzz-parse: tests/fuzz/fuzz_parse.c $(FUZZ_OBJ) $(RUNTIME_OBJ:$(BUILD)/obj/%=$(BUILD)/fuzz/obj/%)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LLVM_LIBS) -lm

FUZZ_RUNS ?= 20000
FUZZ_SECONDS ?= 300
FUZZ_SEEDS = examples stdlib tests/diag tests/fuzz/seeds

fuzz-smoke: $(BUILD)/fuzz/fuzz-parse
	@rm -rf $(BUILD)/fuzz/corpus && mkdir -p $(BUILD)/fuzz/corpus
	$(BUILD)/fuzz/fuzz-parse -runs=$(FUZZ_RUNS) -max_total_time=60 -timeout=10 \
	  -max_len=65536 -rss_limit_mb=2048 -print_final_stats=0 \
	  $(BUILD)/fuzz/corpus $(FUZZ_SEEDS) 2>$(BUILD)/fuzz/smoke.log \
	  || { tail -n 60 $(BUILD)/fuzz/smoke.log; exit 1; }
	@grep -E "^Done [0-9]+ runs" $(BUILD)/fuzz/smoke.log | sed "s/^/fuzz-parse: /" || true
	@echo "fuzz-parse: smoke run found no crash, hang or leak"

fuzz: $(BUILD)/fuzz/fuzz-parse
	@mkdir -p $(BUILD)/fuzz/corpus
	$(BUILD)/fuzz/fuzz-parse -max_total_time=$(FUZZ_SECONDS) -timeout=10 -max_len=65536 \
	  $(BUILD)/fuzz/corpus $(FUZZ_SEEDS)

# ---- benchmarks (numbers, not tests: see ../shared/PERF.md and bench/results/)

$(BUILD)/bench-elab: bench/bench_elab.c $(BUILD)/libsmeltc.a
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LLVM_LIBS) -lm

$(BUILD)/bench-matmul: bench/bench_matmul.c $(BUILD)/libsmeltc.a $(BUILD)/libsmeltrt.a
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LLVM_LIBS) -lm -ldl -lpthread

# The reference runs with OpenBLAS's own kernel choice for this CPU: the
# environment's OPENBLAS_CORETYPE pin is lifted for this command alone.
$(BUILD)/bench-mlp-step: bench/bench_mlp_step.c $(BUILD)/libsmeltc.a $(BUILD)/libsmeltrt.a
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LLVM_LIBS) -lm -ldl -lpthread

$(BUILD)/bench-fusion: bench/bench_fusion.c $(BUILD)/libsmeltc.a $(BUILD)/libsmeltrt.a
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LLVM_LIBS) -lm -ldl -lpthread

# PyTorch for the reference column: PyPI's torch or Debian's python3-torch,
# whichever `python3` (or BENCH_PYTHON) imports; skipped, saying so, if none.
BENCH_PYTHON ?= $(shell for p in python3 /usr/bin/python3; do $$p -c "import torch" 2>/dev/null && echo $$p && break; done)

bench: all $(BUILD)/bench-elab $(BUILD)/bench-matmul $(BUILD)/bench-mlp-step $(BUILD)/bench-fusion
	@$(BUILD)/bench-elab
	@$(BUILD)/bench-fusion 2
	@env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BUILD)/bench-matmul 1
	@env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BUILD)/bench-matmul 2
	@env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(or $(BENCH_PYTHON),python3) bench/compare_mlp.py 2
	@env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(or $(BENCH_PYTHON),python3) bench/compare_models.py 2
	@$(or $(BENCH_PYTHON),python3) bench/compare_build.py $(BENCH_BUILD_FLAGS)

# `make bench BENCH_BUILD_FLAGS=--gpt2` adds GPT-2 small (minutes).

# ---- demo

demo: deps all
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
