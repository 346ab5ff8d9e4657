#!/bin/bash
# Kernel reach for the XDP guard: boot Debian 12's 6.1 kernel under qemu and
# run tests/vm/guard/run.sh there: the PROG_TEST_RUN table test on 6.1's
# verifier, mailless --xdp attach/status/detach, and coexistence with
# xdp-filter through libxdp's dispatcher where 6.1 allows it.
# mlt-timeout: 360
set -u
. "$(dirname "$0")"/vmtest.sh
vm_guard bookworm 6.1 "Debian 12"
