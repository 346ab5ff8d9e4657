# mailless - build, run and test. `make help` lists the targets.
CLANG    ?= clang
BPFTOOL  ?= bpftool
CC       ?= cc
PKG_CONFIG ?= pkg-config
V        ?= 0

OUT      := .output
ARCH     := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

# Where `make install` puts things (GNU and Debian conventions; DESTDIR for
# staging). SYSCONFDIR is built into the binary as the default settings file:
# give make and make install the same values.
PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR    ?= $(or $(shell $(PKG_CONFIG) --variable=systemdsystemunitdir systemd 2>/dev/null),$(PREFIX)/lib/systemd/system)
SYSUSERSDIR ?= $(or $(shell $(PKG_CONFIG) --variable=sysusersdir systemd 2>/dev/null),$(PREFIX)/lib/sysusers.d)
BASHCOMPDIR ?= $(or $(shell $(PKG_CONFIG) --variable=completionsdir bash-completion 2>/dev/null),$(PREFIX)/share/bash-completion/completions)

# CFLAGS, CPPFLAGS, LDFLAGS are the caller's (e.g. Debian's dpkg-buildflags):
# they are added to, never replace, what mailless needs (warnings as errors,
# include paths, hardening), so `make CFLAGS=...` builds the same program.
CFLAGS   ?= -O2 -g
CPPFLAGS ?=
LDFLAGS  ?=

# Hardening (README "Development"; tests/e2e/t_hardening.py checks the result).
# _FORTIFY_SOURCE=3 needs optimisation: none with -O0 (glibc would warn, and
# -Werror stop), and the caller's own _FORTIFY_SOURCE level wins over ours.
HARDEN_CFLAGS  := -fstack-protector-strong -fstack-clash-protection -fcf-protection -fPIE
HARDEN_LDFLAGS := -pie -Wl,-z,relro,-z,now
ifneq ($(findstring _FORTIFY_SOURCE,$(CPPFLAGS)),)
FORTIFY :=
else ifneq ($(filter -O0,$(CFLAGS)),)
FORTIFY :=
else
FORTIFY := -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3
endif

# make SAN=1: the controller with AddressSanitizer and UBSan, objects under
# $(OUT)/san/, binary ./mailless-san (the normal build is left alone). ASan
# does the fortify checks' job itself: no _FORTIFY_SOURCE there.
SAN      ?= 0
FUZZ_SECONDS ?= 60
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ifeq ($(SAN),1)
BUILD    := $(OUT)/san
BIN      := mailless-san
ML_SAN   := $(SAN_FLAGS)
ML_FORTIFY :=
else
BUILD    := $(OUT)
BIN      := mailless
ML_SAN   :=
ML_FORTIFY := $(FORTIFY)
endif

WARN     := -Wall -Wextra -Werror -Wno-format-truncation
# The controller (ML_*: with the sanitizers under SAN=1), the tools and the C
# test programs (TOOL_*: always the normal, hardened build).
TOOL_CPPFLAGS = $(FORTIFY) $(CPPFLAGS)
TOOL_CFLAGS   = $(HARDEN_CFLAGS) $(CFLAGS) $(WARN) -std=gnu11
TOOL_LDFLAGS  = $(HARDEN_LDFLAGS) $(LDFLAGS)
ML_CPPFLAGS = -Iinclude -I$(OUT) $(LIBS_CFLAGS) -D_GNU_SOURCE -DML_VERSION='"$(VERSION)"' \
	      -DML_DEFAULT_CONF='"$(SYSCONFDIR)/mailless.conf"' $(ML_FORTIFY) $(CPPFLAGS)
ML_CFLAGS   = $(HARDEN_CFLAGS) $(ML_SAN) $(CFLAGS) $(WARN) -std=gnu11 -MMD -MP
ML_LDFLAGS  = $(HARDEN_LDFLAGS) $(ML_SAN) $(LDFLAGS)
TEST_CPPFLAGS = -Iinclude -I$(OUT) $(LIBS_CFLAGS) -D_GNU_SOURCE $(FORTIFY) $(CPPFLAGS)
# libbpf and libxdp as pkg-config reports them (their -I and -l), so that a
# build against another prefix or version needs no edit here.
# libsystemd: sd_notify, for the unit's Type=notify (a no-op without systemd).
# libseccomp: the serving loop's allow-list (user/sandbox.c).
LIBS_CFLAGS := $(shell $(PKG_CONFIG) --cflags libbpf libxdp libsystemd libseccomp 2>/dev/null)
LDLIBS   += $(shell $(PKG_CONFIG) --libs libbpf libxdp libsystemd libseccomp 2>/dev/null || \
		echo -lxdp -lbpf -lelf -lz -lsystemd -lseccomp)
# clang -target bpf does not search the host's system include directories
# (asm/types.h is under the multiarch one): hand it the directories the
# host compiler searches, as libbpf-bootstrap does, after its own.
CLANG_BPF_SYS_INCLUDES ?= $(shell $(CLANG) -v -E - </dev/null 2>&1 | \
	sed -n '/<...> search starts here:/,/End of search list./{ s| \(/.*\)|-idirafter \1|p }')
BPF_CFLAGS := -O2 -g -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -Iinclude -Ibpf \
	    $(LIBS_CFLAGS) $(CLANG_BPF_SYS_INCLUDES) -Wall -Wextra -Werror \
	    -Wno-unused-parameter -MMD -MP

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

USER_SRCS := $(wildcard user/*.c)
USER_OBJS := $(patsubst user/%.c,$(BUILD)/user/%.o,$(USER_SRCS))
BPF_SRCS  := $(wildcard bpf/*.bpf.c)
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(OUT)/%.bpf.o,$(BPF_SRCS))
SKELS     := $(patsubst bpf/%.bpf.c,$(OUT)/%.skel.h,$(BPF_SRCS))

# Debian packages a fresh host needs to build, run and test mailless.
DEPS_RUN  := clang llvm libbpf-dev libxdp-dev bpftool libelf-dev zlib1g-dev make gcc pkg-config \
	     libsystemd-dev libseccomp-dev
# swaks needs IO::Socket::INET6 for IPv6 on Debian 12 (13's swaks does without).
# xz-utils: Debian 13's kernel modules are .ko.xz, unpacked for the VM tests (tests/vm/).
# libsisimai-perl, dnsmasq-base, tcpdump: the interop tests' bounce classifier, DNS
# and transcripts (tests/interop/; the MTAs live in roots of their own, never on the host).
DEPS_TEST := $(DEPS_RUN) python3 swaks libio-socket-inet6-perl iproute2 util-linux strace \
	     qemu-system-x86 busybox-static cpio kmod prometheus curl xdp-tools nftables binutils \
	     libclang-rt-dev xz-utils mmdebstrap debian-archive-keyring libsisimai-perl dnsmasq-base tcpdump \
	     mandoc man-db systemd build-essential debhelper dpkg-dev fakeroot lintian
# tests/e2e/t_toolchain.sh builds in a cached Debian 13 root holding these (and the
# Essential ones): the build's own, and what t_wire.py and t_lifecycle.py call.
DEPS_TOOLCHAIN := $(DEPS_RUN) python3 iproute2 util-linux strace procps hostname
# make bench: the plot, and the servers a user would pick instead of mailless.
DEPS_BENCH := $(DEPS_RUN) python3 gnuplot-nox postfix ucspi-tcp

.DELETE_ON_ERROR:
.SECONDARY:
.PHONY: all clean help deps deps-test deps-bench run test unit bench soak interop toolchain-deps man

ifeq ($(SAN),1)
all: $(BIN)
else
all: mailless $(OUT)/tools/loadgen man
endif

help:
	@echo "make            build ./mailless (objects under $(OUT)/) and the man pages"
	@echo "make man        $(OUT)/man/man8/mailless.8, man5/mailless.conf.5 (MANPATH=$(OUT)/man man mailless)"
	@echo "make install    the binary, man pages, systemd unit, bash completion and (if none is"
	@echo "                there) /etc/mailless.conf; PREFIX, DESTDIR, SBINDIR, MANDIR, SYSCONFDIR,"
	@echo "                UNITDIR, BASHCOMPDIR as GNU and Debian use them; make uninstall"
	@echo "make deb        the Debian package, $(OUT)/mailless_VERSION_ARCH.deb (debian/;"
	@echo "                make deps-deb installs what dpkg-buildpackage needs)"
	@echo "make run        install missing Debian packages, build, serve port 25 (root)"
	@echo "make test       install missing Debian packages, build, run the whole test suite;"
	@echo "                F='PATTERN...' only the files tests/LAYER/t_* whose LAYER/NAME has"
	@echo "                one (F=unit/, F=lifecycle), T=REGEX only the"
	@echo "                results that match (TAP 13 output: prove -e bash tests/run.sh)"
	@echo "make unit       build and run the pure C unit tests only (= make check;"
	@echo "                no root needed)"
	@echo "make SAN=1      build ./mailless-san with ASan+UBSan (objects in $(OUT)/san/);"
	@echo "                tests/run.sh zsan runs tests on it (make test does)"
	@echo "make fuzz       build the libFuzzer harnesses tests/fuzz/fuzz_*.c into $(OUT)/fuzz/"
	@echo "                and run each FUZZ_SECONDS (default $(FUZZ_SECONDS)); make fuzz-build: build only"
	@echo "make bench      install missing Debian packages, build, benchmark against"
	@echo "                user engine, floor, Postfix, rblsmtpd (docs/benchmarks.md, root);"
	@echo "                BENCH_QUICK=1 for a ~3-minute subset"
	@echo "make soak       install missing Debian packages, build, 1,000,000 mixed"
	@echo "                sessions per engine, then leaks and shutdown checked"
	@echo "                (docs/reliability.md, root); SOAK_SESSIONS=N to change"
	@echo "make interop    install missing Debian packages, build, send one message from"
	@echo "                each of Debian's MTAs to mailless in each dialect and engine, and"
	@echo "                write docs/interop.md and the README's dialect table (root)"
	@echo "make tools      build the load generator and the floor server into $(OUT)/tools/"
	@echo "                (tools/README.md)"
	@echo "make toolchain-deps  the Debian 13 root's packages (tests/e2e/t_toolchain.sh,"
	@echo "                tests/e2e/toolchain/root.sh --rebuild rebuilds the root)"
	@echo "make clean      remove $(OUT)/, ./mailless and ./mailless-san"
	@echo "CFLAGS= CPPFLAGS= LDFLAGS=  added to the hardened flags (e.g. dpkg-buildflags)"
	@echo "V=1             show the commands"

$(OUT) $(BUILD)/user $(OUT)/tests:
	$(Q)mkdir -p $@

$(OUT)/%.bpf.o: bpf/%.bpf.c Makefile | $(OUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUT)/%.skel.h: $(OUT)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $*_bpf > $@

$(BUILD)/user/%.o: user/%.c Makefile $(SKELS) | $(BUILD)/user
	$(call msg,CC,$@)
	$(Q)$(CC) $(ML_CPPFLAGS) $(ML_CFLAGS) -c $< -o $@

$(BIN): $(USER_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ML_CFLAGS) $(ML_LDFLAGS) $^ $(LDLIBS) -o $@

# Man pages: man/NAME.in with the lists the option table and the metrics
# renderer print (`mailless options --man...`), so that they cannot drift
# from --help. The date is the last commit's (or SOURCE_DATE_EPOCH's, as
# dpkg-buildpackage sets it): the same tree makes the same pages.
MAN_PAGES := $(OUT)/man/man8/mailless.8 $(OUT)/man/man5/mailless.conf.5
MAN_DATE  := $(shell date -u -d @$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || date +%s)} +%Y-%m-%d)
man: $(MAN_PAGES)
$(OUT)/man/man8/%: man/%.in mailless
	$(call msg,MAN,$@)
	$(Q)mkdir -p $(@D)
	$(gen_man)
$(OUT)/man/man5/%: man/%.in mailless
	$(call msg,MAN,$@)
	$(Q)mkdir -p $(@D)
	$(gen_man)
define gen_man
	$(Q)./mailless options --man >$@.options && ./mailless options --man-conf >$@.keys && \
	./mailless options --man-metrics >$@.metrics && \
	sed -e 's/@VERSION@/$(VERSION)/; s/@DATE@/$(MAN_DATE)/' \
	    -e '/^@OPTIONS@$$/{r $@.options' -e 'd;}' -e '/^@KEYS@$$/{r $@.keys' -e 'd;}' \
	    -e '/^@METRICS@$$/{r $@.metrics' -e 'd;}' $< >$@ && rm -f $@.options $@.keys $@.metrics
endef

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
	$(MAKE) mailless tools
	python3 tools/bench.py

# The Debian 13 root's package list, for tests/e2e/toolchain/root.sh.
toolchain-deps:
	@echo $(DEPS_TOOLCHAIN)

run: deps
	$(MAKE) mailless
	./mailless run $(ARGS)

test: deps-test
	$(MAKE) mailless tools tests-build man
	$(MAKE) SAN=1 mailless-san
	$(MAKE) fuzz-build
	MLT_FILTER='$(T)' bash tests/run.sh $(F)

soak: deps-test
	$(MAKE) mailless tools
	python3 tests/e2e/soak.py

interop: deps-test
	$(MAKE) mailless
	python3 tests/interop/matrix.py

# The C unit tests: no root, no kernel programs (make check is the same).
UNIT_BINS := $(OUT)/tests/unit_proto $(OUT)/tests/unit_srctab $(OUT)/tests/unit_bucket \
	     $(OUT)/tests/unit_options
.PHONY: check
unit check: $(UNIT_BINS)
	$(Q)set -e; for t in $(UNIT_BINS); do $$t; done

# The unit and the example settings file, made for where they go.
# (Always made again: SBINDIR may differ from the last run's.)
$(OUT)/systemd/mailless.service: systemd/mailless.service.in FORCE
	$(call msg,GEN,$@)
	$(Q)mkdir -p $(@D) && sed 's|@SBINDIR@|$(SBINDIR)|g' $< >$@
$(OUT)/mailless.conf: mailless
	$(call msg,GEN,$@)
	$(Q)./mailless options --conf >$@

.PHONY: install uninstall FORCE
FORCE:
install: mailless man $(OUT)/systemd/mailless.service $(OUT)/mailless.conf
	install -D -m 0755 mailless $(DESTDIR)$(SBINDIR)/mailless
	install -D -m 0644 $(OUT)/man/man8/mailless.8 $(DESTDIR)$(MANDIR)/man8/mailless.8
	install -D -m 0644 $(OUT)/man/man5/mailless.conf.5 $(DESTDIR)$(MANDIR)/man5/mailless.conf.5
	install -D -m 0644 $(OUT)/systemd/mailless.service $(DESTDIR)$(UNITDIR)/mailless.service
	install -D -m 0644 completion/mailless.bash $(DESTDIR)$(BASHCOMPDIR)/mailless
	install -D -m 0644 systemd/mailless.sysusers $(DESTDIR)$(SYSUSERSDIR)/mailless.conf
	@# The unit's User=: made now when installing onto this host (a package
	@# makes it in its postinst).
	@if [ -z "$(DESTDIR)" ] && ! getent passwd mailless >/dev/null; then \
		if command -v systemd-sysusers >/dev/null; then \
			echo "systemd-sysusers $(SYSUSERSDIR)/mailless.conf"; \
			systemd-sysusers $(SYSUSERSDIR)/mailless.conf; \
		else \
			echo "useradd --system --user-group --home-dir /nonexistent --shell /usr/sbin/nologin mailless"; \
			useradd --system --user-group --home-dir /nonexistent --shell /usr/sbin/nologin mailless; \
		fi; \
	fi
	@# Settings are the administrator's: an existing file is never replaced.
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/mailless.conf ]; then \
		echo "keeping $(DESTDIR)$(SYSCONFDIR)/mailless.conf (every key: mailless options --conf)"; \
	else \
		echo "install -D -m 0644 $(OUT)/mailless.conf $(DESTDIR)$(SYSCONFDIR)/mailless.conf"; \
		install -D -m 0644 $(OUT)/mailless.conf $(DESTDIR)$(SYSCONFDIR)/mailless.conf; \
	fi
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/mailless $(DESTDIR)$(MANDIR)/man8/mailless.8 \
	      $(DESTDIR)$(MANDIR)/man5/mailless.conf.5 $(DESTDIR)$(UNITDIR)/mailless.service \
	      $(DESTDIR)$(BASHCOMPDIR)/mailless $(DESTDIR)$(SYSUSERSDIR)/mailless.conf
	@echo "left $(DESTDIR)$(SYSCONFDIR)/mailless.conf, the administrator's, and the user mailless (remove them by hand)"

# make deb: the Debian package (debian/, debhelper), built from a copy of the
# tracked files under $(OUT)/deb/ so the tree stays clean; the .deb lands in
# $(OUT)/. dpkg-buildpackage checks the Build-Depends (make deps-deb installs them).
DEB_VERSION := $(shell dpkg-parsechangelog -S Version 2>/dev/null)
DEB_ARCH    := $(shell dpkg --print-architecture 2>/dev/null)
DEB_FILE    := $(OUT)/mailless_$(DEB_VERSION)_$(DEB_ARCH).deb
DEPS_DEB    := $(DEPS_RUN) build-essential debhelper dpkg-dev fakeroot lintian man-db systemd
.PHONY: deb deps-deb
deps-deb:
	$(call install_missing,$(DEPS_DEB))
deb:
	rm -rf $(OUT)/deb && mkdir -p $(OUT)/deb/mailless-$(VERSION)
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		git ls-files -z | xargs -0 tar -cf - | tar -C $(OUT)/deb/mailless-$(VERSION) -xf -; \
	else \
		tar --exclude=./.output --exclude=./.git -cf - . | tar -C $(OUT)/deb/mailless-$(VERSION) -xf -; \
	fi
	cd $(OUT)/deb/mailless-$(VERSION) && dpkg-buildpackage -us -uc -b
	mv $(OUT)/deb/mailless_$(DEB_VERSION)_$(DEB_ARCH).deb $(DEB_FILE)
	@echo "built $(DEB_FILE) (lintian $(DEB_FILE) checks it)"

clean:
	rm -rf $(OUT) mailless mailless-san

-include $(wildcard $(OUT)/*.d $(BUILD)/user/*.d $(OUT)/tests/*.d)

# Tools (tools/README.md), built under $(OUT)/tools/ like everything else;
# `make tools/loadgen` and `make tools/floor` still name them.
TOOLS := $(OUT)/tools/loadgen $(OUT)/tools/floor $(OUT)/tools/synflood
.PHONY: tools tools/loadgen tools/floor tools/synflood
tools: $(TOOLS)
tools/loadgen: $(OUT)/tools/loadgen
tools/floor: $(OUT)/tools/floor
tools/synflood: $(OUT)/tools/synflood
$(OUT)/tools:
	$(Q)mkdir -p $@
$(OUT)/tools/loadgen: tools/loadgen.c Makefile | $(OUT)/tools
	$(call msg,CC,$@)
	$(Q)$(CC) $(TOOL_CPPFLAGS) $(TOOL_CFLAGS) $(TOOL_LDFLAGS) $< -o $@

# Test programs (C): built by `make test`, also copied into the VMs (tests/vm/).
TEST_BINS := $(OUT)/tests/wirecheck $(OUT)/tests/unit_proto $(OUT)/tests/unit_bucket \
	     $(OUT)/tests/guard_table $(OUT)/tests/xdpresp_table $(OUT)/tests/unit_srctab $(OUT)/tests/unit_options \
	     $(OUT)/tests/mailless-reject $(OUT)/tests/xdpdrop.bpf.o \
	     $(OUT)/tests/mailless-hooks
.PHONY: tests-build
tests-build: $(TEST_BINS)
$(OUT)/tests/unit_%: tests/unit/unit_%.c | $(OUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(TEST_CPPFLAGS) $(TOOL_CFLAGS) -MMD -MP $(TOOL_LDFLAGS) -Wno-missing-field-initializers $< -o $@
$(OUT)/tests/%: tests/e2e/c/%.c | $(OUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(TEST_CPPFLAGS) $(TOOL_CFLAGS) -MMD -MP $(TOOL_LDFLAGS) -Wno-missing-field-initializers $< -o $@
# The option table's test includes user/log.c, which speaks to libbpf.
$(OUT)/tests/unit_options: tests/unit/unit_options.c | $(OUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(TEST_CPPFLAGS) $(TOOL_CFLAGS) -MMD -MP $(TOOL_LDFLAGS) -Wno-missing-field-initializers $< $(LDLIBS) -o $@
# The guard's table test loads the real object through its skeleton. It
# writes headers through struct pointers into byte buffers, as the kernel
# does: -fno-strict-aliasing, or gcc -O2 drops those stores.
$(OUT)/tests/guard_table: tests/e2e/c/guard_table.c $(OUT)/guard.skel.h include/guard.h include/bucket.h | $(OUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(TEST_CPPFLAGS) $(TOOL_CFLAGS) -MMD -MP $(TOOL_LDFLAGS) -fno-strict-aliasing -Wno-missing-field-initializers $< $(LDLIBS) -o $@

# Loss on the client's side for tests/e2e/t_xdploss.py: a test-only XDP
# program, loaded with bpftool (no skeleton).
$(OUT)/tests/xdpdrop.bpf.o: tests/e2e/bpf/xdpdrop.bpf.c | $(OUT)/tests
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# The XDP responder's table test: the guard's object (the responder is part
# of its program) through its skeleton, and the reply texts from
# user/replies.c, as the controller renders them.
$(OUT)/tests/xdpresp_table: tests/e2e/c/xdpresp_table.c user/replies.c $(OUT)/guard.skel.h include/xdpresp.h include/proto.h | $(OUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(TEST_CPPFLAGS) -Iuser $(TOOL_CFLAGS) -MMD -MP $(TOOL_LDFLAGS) -fno-strict-aliasing -Wno-missing-field-initializers tests/e2e/c/xdpresp_table.c user/replies.c $(LDLIBS) -o $@

# A controller whose sk_msg program every verifier rejects (an unchecked
# packet read, under MLT_VERIFIER_REJECT): tests/e2e/t_refuse.py checks that
# mailless names the program and the verifier's complaint. Only eng_kernel.c
# loads the skeleton; it is built again against this one.
$(OUT)/reject:
	$(Q)mkdir -p $@
$(OUT)/reject/responder.bpf.o: bpf/responder.bpf.c Makefile | $(OUT)/reject
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -DMLT_VERIFIER_REJECT -c $< -o $@
$(OUT)/reject/responder.skel.h: $(OUT)/reject/responder.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name responder_bpf > $@
$(OUT)/reject/eng_kernel.o: user/eng_kernel.c Makefile $(OUT)/reject/responder.skel.h $(SKELS)
	$(call msg,CC,$@)
	$(Q)$(CC) -I$(OUT)/reject $(ML_CPPFLAGS) $(ML_CFLAGS) -c $< -o $@
$(OUT)/tests/mailless-reject: $(filter-out $(OUT)/user/eng_kernel.o,$(patsubst user/%.c,$(OUT)/user/%.o,$(USER_SRCS))) $(OUT)/reject/eng_kernel.o | $(OUT)/tests
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ML_CFLAGS) $(ML_LDFLAGS) $^ $(LDLIBS) -o $@

# A controller with the test hooks (ML_TEST_HOOKS: MAILLESS_TEST_RING_KIB
# shrinks the event ring, tests/e2e/t_kernel.py; MAILLESS_TEST_FORBIDDEN
# makes a call outside the seccomp allow-list, tests/e2e/t_privs.py): never
# in ./mailless, which tests/e2e/t_hardening.py checks.
HOOKED := eng_kernel sandbox
$(OUT)/hooks:
	$(Q)mkdir -p $@
$(OUT)/hooks/%.o: user/%.c Makefile $(SKELS) | $(OUT)/hooks
	$(call msg,CC,$@)
	$(Q)$(CC) -DML_TEST_HOOKS $(ML_CPPFLAGS) $(ML_CFLAGS) -c $< -o $@
$(OUT)/tests/mailless-hooks: $(filter-out $(HOOKED:%=$(OUT)/user/%.o),$(patsubst user/%.c,$(OUT)/user/%.o,$(USER_SRCS))) $(HOOKED:%=$(OUT)/hooks/%.o) | $(OUT)/tests
	$(call msg,LINK,$@)
	$(Q)$(CC) $(ML_CFLAGS) $(ML_LDFLAGS) $^ $(LDLIBS) -o $@

# The SYN flooder for `make bench` (tools/synflood.c): a BPF program run in
# live-frames mode makes the SYNs, another counts the SYN-ACKs; one skeleton.
$(OUT)/tools/synflood.bpf.o: tools/synflood.bpf.c tools/synflood.h | $(OUT)/tools
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -Itools -c $< -o $@
$(OUT)/tools/synflood.skel.h: $(OUT)/tools/synflood.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name synflood_bpf > $@
$(OUT)/tools/synflood: tools/synflood.c tools/synflood.h $(OUT)/tools/synflood.skel.h Makefile
	$(call msg,CC,$@)
	$(Q)$(CC) $(TOOL_CPPFLAGS) -I$(OUT)/tools -Itools $(LIBS_CFLAGS) $(TOOL_CFLAGS) $(TOOL_LDFLAGS) $< $(LDLIBS) -o $@

# The floor server for `make bench`: the cost of TCP alone (tools/floor.c).
$(OUT)/tools/floor: tools/floor.c Makefile | $(OUT)/tools
	$(call msg,CC,$@)
	$(Q)$(CC) $(TOOL_CPPFLAGS) $(TOOL_CFLAGS) $(TOOL_LDFLAGS) $< -o $@

# Fuzzing (libFuzzer, clang; README "Development"). Every tests/fuzz/fuzz_NAME.c
# is a harness (LLVMFuzzerTestOneInput); its seeds are tests/fuzz/corpus/NAME/.
# Harnesses link what they call from $(OUT)/fuzz/libml.a: the controller's
# objects (all but main.c), built with clang, ASan, UBSan and coverage. `make
# fuzz` runs each for FUZZ_SECONDS (new inputs: $(OUT)/fuzz/corpus/NAME/,
# crashes: $(OUT)/fuzz/crash/); tests/fuzz/t_fuzz.py runs each for 10 s.

FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(OUT)/fuzz/%,$(FUZZ_SRCS))
FUZZ_OBJS := $(patsubst user/%.c,$(OUT)/fuzz/obj/%.o,$(filter-out user/main.c,$(USER_SRCS)))
FUZZ_CFLAGS := -O1 -g $(SAN_FLAGS) $(WARN) -Wno-unknown-warning-option -std=gnu11 \
	       -Iinclude -Iuser -I$(OUT) -D_GNU_SOURCE -DML_VERSION='"$(VERSION)"' -MMD -MP
.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BINS)
fuzz: fuzz-build
	bash tests/fuzz/run.sh $(FUZZ_SECONDS)
$(OUT)/fuzz/obj:
	$(Q)mkdir -p $@
$(OUT)/fuzz/obj/%.o: user/%.c Makefile $(SKELS) | $(OUT)/fuzz/obj
	$(call msg,FUZZ-CC,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(OUT)/fuzz/libml.a: $(FUZZ_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^
$(OUT)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(OUT)/fuzz/libml.a Makefile
	$(call msg,FUZZ-LD,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(OUT)/fuzz/libml.a $(LDLIBS) -o $@
-include $(wildcard $(OUT)/fuzz/*.d $(OUT)/fuzz/obj/*.d)
