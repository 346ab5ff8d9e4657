#!/bin/bash
# Kernel reach: boot Debian 12's own 6.1 kernel under qemu (TCG) and run the
# kernel-engine wire tests there (tests/vm/wire/run.sh). The 6.1 verifier
# rejects code 6.18 accepts and the reverse; both must stay green.
# mlt-timeout: 360
set -u
. "$(dirname "$0")"/vmtest.sh
vm_wire bookworm 6.1 "Debian 12"
