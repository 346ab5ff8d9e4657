# mailless - build, run and test. `make help` lists the targets.
CLANG    ?= clang
BPFTOOL  ?= bpftool
CC       ?= cc
V        ?= 0

OUT      := .output
ARCH     := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

CFLAGS   ?= -O2 -g
CFLAGS   += -Wall -Wextra -Werror -Wno-format-truncation -std=gnu11 -Iinclude -I$(OUT) -D_GNU_SOURCE \
	    -DML_VERSION='"$(VERSION)"' -MMD -MP
LDLIBS   += -lxdp -lbpf -lelf -lz
BPF_CFLAGS := -O2 -g -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -Iinclude \
	    -I/usr/include/$(shell uname -m)-linux-gnu -Wall -Wextra -Werror \
	    -Wno-unused-parameter -MMD -MP

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

USER_SRCS := $(wildcard user/*.c)
USER_OBJS := $(patsubst user/%.c,$(OUT)/user/%.o,$(USER_SRCS))
BPF_SRCS  := $(wildcard bpf/*.bpf.c)
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(OUT)/%.bpf.o,$(BPF_SRCS))
SKELS     := $(patsubst bpf/%.bpf.c,$(OUT)/%.skel.h,$(BPF_SRCS))

# Debian packages a fresh host needs to build, run and test mailless.
DEPS_RUN  := clang llvm libbpf-dev libxdp-dev bpftool libelf-dev zlib1g-dev make gcc pkg-config
DEPS_TEST := $(DEPS_RUN) python3 swaks iproute2 util-linux strace \
	     qemu-system-x86 busybox-static cpio kmod prometheus curl xdp-tools
# make bench: the plot, and the servers a user would pick instead of mailless.
DEPS_BENCH := $(DEPS_RUN) python3 gnuplot-nox postfix ucspi-tcp

.DELETE_ON_ERROR:
.SECONDARY:
.PHONY: all clean help deps deps-test deps-bench run test unit bench soak

all: mailless tools/loadgen

help:
	@echo "make            build ./mailless (objects under $(OUT)/)"
	@echo "make run        install missing Debian packages, build, serve port 25 (root)"
	@echo "make test       install missing Debian packages, build, run the whole test suite"
	@echo "make unit       build and run the pure C unit tests only"
	@echo "make bench      install missing Debian packages, build, benchmark against"
	@echo "                user engine, floor, Postfix, rblsmtpd (docs/benchmarks.md, root);"
	@echo "                BENCH_QUICK=1 for a ~2-minute subset"
	@echo "make soak       install missing Debian packages, build, 1,000,000 mixed"
	@echo "                sessions per engine, then leaks and shutdown checked"
	@echo "                (docs/reliability.md, root); SOAK_SESSIONS=N to change"
	@echo "make tools/loadgen  build the load generator (tools/README.md)"
	@echo "make clean      remove $(OUT)/ and ./mailless"
	@echo "V=1             show the commands"

$(OUT) $(OUT)/user $(OUT)/tests:
	$(Q)mkdir -p $@

$(OUT)/%.bpf.o: bpf/%.bpf.c Makefile | $(OUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUT)/%.skel.h: $(OUT)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $* > $@

$(OUT)/user/%.o: user/%.c Makefile $(SKELS) | $(OUT)/user
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

mailless: $(USER_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# Missing packages come from Debian's archive, nothing else is downloaded.
define install_missing
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing from Debian: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

deps:
	$(call install_missing,$(DEPS_RUN))

deps-test:
	$(call install_missing,$(DEPS_TEST))

# Debian's postfix package would configure and start a system Postfix on port 25:
# preseed "No configuration" first, so none runs; the bench starts its own
# loopback-only instance (tools/bench.py).
deps-bench:
	@dpkg -s postfix >/dev/null 2>&1 || \
		echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	$(call install_missing,$(DEPS_BENCH))

bench: deps-bench
	$(MAKE) mailless tools/loadgen tools/floor
	python3 tools/bench.py

run: deps
	$(MAKE) mailless
	./mailless run $(ARGS)

test: deps-test
	$(MAKE) mailless tools/loadgen tests-build
	bash tests/run.sh

soak: deps-test
	$(MAKE) mailless tools/loadgen
	python3 tests/soak.py

unit: $(OUT)/tests/unit_proto
	$(OUT)/tests/unit_proto

clean:
	rm -rf $(OUT) mailless

-include $(wildcard $(OUT)/*.d $(OUT)/user/*.d $(OUT)/tests/*.d)

# Tools: the load generator (tools/README.md).
tools/loadgen: tools/loadgen.c Makefile
	$(call msg,CC,$@)
	$(Q)$(CC) -O2 -g -Wall -Wextra -Werror -std=gnu11 $< -o $@

# Test programs (C): built by `make test`, also copied into the 6.1 VM.
TEST_BINS := $(OUT)/tests/wirecheck $(OUT)/tests/unit_proto $(OUT)/tests/unit_bucket \
	     $(OUT)/tests/guard_table
.PHONY: tests-build
tests-build: $(TEST_BINS)
$(OUT)/tests/%: tests/c/%.c | $(OUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Wno-missing-field-initializers $< -o $@
# The guard's table test loads the real object through its skeleton. It
# writes headers through struct pointers into byte buffers, as the kernel
# does: -fno-strict-aliasing, or gcc -O2 drops those stores.
$(OUT)/tests/guard_table: tests/c/guard_table.c $(OUT)/guard.skel.h include/guard.h include/bucket.h | $(OUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -fno-strict-aliasing -Wno-missing-field-initializers $< $(LDLIBS) -o $@

# The floor server for `make bench`: the cost of TCP alone (tools/floor.c).
tools/floor: tools/floor.c Makefile
	$(call msg,CC,$@)
	$(Q)$(CC) -O2 -g -Wall -Wextra -Werror -std=gnu11 $< -o $@
