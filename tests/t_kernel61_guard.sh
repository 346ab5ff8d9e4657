#!/bin/bash
# Kernel reach for the XDP guard: boot Debian 12's 6.1 kernel under qemu and
# run tests/vm/guard61/run.sh there: the PROG_TEST_RUN table test on 6.1's
# verifier, mailless --xdp attach/status/detach, and coexistence with
# xdp-filter through libxdp's dispatcher where 6.1 allows it.
# mlt-timeout: 300
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
payload=$(mktemp -d)
trap 'rm -rf "$payload"' EXIT
cp -r "$top"/tests/vm/guard61/. "$payload"/
cp "$top"/mailless "$top"/.output/tests/guard_table "$top"/.output/tests/unit_bucket "$payload"/
out=$("$top"/tests/vm/boot61.sh "$payload" 300 2>&1)
rc=$?
echo "$out" | grep -E '^(guard61|ok|not ok|#|VM-|boot61|mailless|libbpf|libxdp|xdp|Interface|vgs| )' | sed 's/^/# /'
case $rc in
0)	echo "ok - XDP guard on Debian 12's 6.1 kernel: $(echo "$out" | grep -o 'guard61: ok table.*' | sed 's/guard61: ok table # //'), attach and detach"
	if echo "$out" | grep -q 'guard61: coexist ok'; then
		echo "ok - XDP guard beside xdp-filter through libxdp's dispatcher on 6.1"
	else
		echo "skip - XDP guard beside xdp-filter on 6.1: $(echo "$out" | grep -o 'coexist skipped: .*' | tr -d '\r')"
	fi;;
2)	echo "not ok - XDP guard on 6.1 under qemu: the VM could not be set up (see above)";;
*)	echo "not ok - XDP guard on Debian 12's 6.1 kernel (console: .output/vm/last-console.log)";;
esac
