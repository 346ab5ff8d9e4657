#!/bin/bash
# Kernel reach: boot Debian 12's own 6.1 kernel under qemu (TCG) and run the
# kernel-engine wire tests there (tests/vm/wire61/run.sh). The 6.1 verifier
# rejects code 6.18 accepts and the reverse; both must stay green.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
payload=$(mktemp -d)
trap 'rm -rf "$payload"' EXIT
cp -r "$top"/tests/vm/wire61/. "$payload"/
cp "$top"/mailless "$top"/.output/tests/wirecheck "$payload"/
out=$("$top"/tests/vm/boot61.sh "$payload" 300 2>&1)
rc=$?
echo "$out" | grep -E '^(wire61|ok|not ok|#|VM-|boot61|mailless|libbpf)' | sed 's/^/# /'
case $rc in
0) echo "ok - kernel engine on Debian 12's 6.1 kernel (IPv4, IPv6, both dialects, two instances)";;
2) echo "not ok - kernel 6.1 under qemu: the VM could not be set up (see above)";;
*) echo "not ok - kernel engine on Debian 12's 6.1 kernel (console: .output/vm/last-console.log)";;
esac
