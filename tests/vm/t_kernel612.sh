#!/bin/bash
# Kernel reach: boot Debian 13's own 6.12 kernel under qemu (TCG) and run the
# kernel-engine wire tests there (tests/vm/wire/run.sh), as on 6.1: the
# stable kernel of the current Debian release, between 6.1 and the host's.
# mlt-timeout: 360
set -u
. "$(dirname "$0")"/vmtest.sh
vm_wire trixie 6.12 "Debian 13"
