#!/bin/bash
# Kernel reach for the XDP guard on Debian 13's 6.12 kernel under qemu
# (tests/vm/guard/run.sh): the table test on 6.12's verifier, attach, status,
# detach, and xdp-filter beside it through libxdp's dispatcher.
# mlt-timeout: 360
set -u
. "$(dirname "$0")"/vmtest.sh
vm_guard trixie 6.12 "Debian 13"
