#!/bin/bash
# Kernel lockdown: boot Debian 13's 6.12 kernel with lockdown=confidentiality
# (the strictest mode; Secure Boot gives integrity). The kernel engine and
# the XDP guard must each serve there, or refuse with a message naming the
# lockdown, after which --engine auto serves with the user engine
# (tests/vm/lockdown/run.sh). On 6.1 and 6.12 both serve: lockdown forbids
# bpf_probe_read_kernel() and the like, which mailless does not use.
# mlt-timeout: 360
set -u
. "$(dirname "$0")"/vmtest.sh
vm_lockdown trixie 6.12 "Debian 13"
