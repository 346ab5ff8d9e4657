#!/bin/bash
# The XDP guard on Debian 11's 5.10 kernel under qemu (tests/vm/guard/run.sh),
# in front of the user engine (5.10 cannot run the kernel engine): the table
# test on 5.10's verifier, attach, status, detach, and xdp-filter beside it
# through libxdp's dispatcher.
# mlt-timeout: 360
set -u
. "$(dirname "$0")"/vmtest.sh
vm_guard bullseye 5.10 "Debian 11" user
