#!/bin/bash
# A kernel too old for the kernel engine: Debian 11's 5.10 under qemu has no
# bpf_loop() (Linux 5.17 added it). There --engine kernel must refuse with a
# message that names what is missing, and --engine auto must fall back to the
# user engine and serve the same bytes (tests/vm/fallback/run.sh).
# mlt-timeout: 360
set -u
. "$(dirname "$0")"/vmtest.sh
vm_fallback bullseye 5.10 "Debian 11"
