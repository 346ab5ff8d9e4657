# shellcheck shell=bash
# vmtest.sh - sourced by the tests/vm/t_kernel*.sh files: boot a Debian suite's own
# kernel under qemu (tests/vm/boot.sh) with one of the payloads in tests/vm/ and
# turn what it printed into ok / not ok lines.
#
#   vm_payload DIR KEY=VALUE... -- FILE...   copy tests/vm/DIR, the FILEs and a
#                                            vm.conf of the KEY=VALUE lines to a
#                                            temporary payload dir ($payload)
#   vm_boot SUITE TIMEOUT                    boot it; sets VM_OUT (boot.sh's output),
#                                            VM_RC, VM_KERNEL ("package version"),
#                                            VM_CONSOLE (the suite's console log)
#   vm_show REGEX                            VM_OUT's lines matching REGEX, as comments
#
#   vm_wire SUITE VERSION NAME               the kernel engine's wire test (wire/)
#   vm_guard SUITE VERSION NAME [ENGINE]     the XDP guard's tests (guard/)
#   vm_fallback SUITE VERSION NAME           a kernel without bpf_loop (fallback/)
#   vm_lockdown SUITE VERSION NAME           lockdown=confidentiality (lockdown/)
#   VERSION is the kernel version expected (6.1), NAME the distribution ("Debian 12").
vm_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

vm_payload() {
	local dir=$1
	shift
	payload=$(mktemp -d "/tmp/${MLT_PREFIX:-mlt}.vm.XXXXXX")
	trap 'rm -rf "$payload"' EXIT
	cp -r "$vm_top/tests/vm/$dir/." "$payload/"
	: >"$payload/vm.conf"
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		echo "$1" >>"$payload/vm.conf"
		shift
	done
	[ "${1:-}" = -- ] && shift
	[ $# -eq 0 ] || cp "$@" "$payload/"
}

vm_boot() {
	VM_OUT=$("$vm_top"/tests/vm/boot.sh --suite "$1" "$payload" "$2" 2>&1)
	VM_RC=$?
	VM_OUT=$(printf '%s\n' "$VM_OUT" | tr -d '\r')
	VM_KERNEL=$(printf '%s\n' "$VM_OUT" | sed -n 's/^boot: kernel: \([^ ]* [^ ]*\) .*/\1/p' | tail -n1)
	VM_CONSOLE=$(printf '%s\n' "$VM_OUT" | sed -n 's/.*; console in \(.*\)$/\1/p' | tail -n1)
	VM_CONSOLE=${VM_CONSOLE:-"no console log (see above)"}
}

vm_show() {
	printf '%s\n' "$VM_OUT" | grep -E "$1" | sed 's/^/# /'
}

vm_wire() {
	local what="kernel engine on $3's $2 kernel"
	vm_payload wire EXPECT_KERNEL="$2" -- "$vm_top"/mailless "$vm_top"/.output/tests/wirecheck
	vm_boot "$1" 300
	vm_show '^(wire:|ok|not ok|VM-|boot:|mailless|libbpf)'
	case $VM_RC in
	0) echo "ok - $what ($VM_KERNEL): IPv4, IPv6, both dialects, two instances" ;;
	2) echo "not ok - $what: the VM could not be set up (see above)" ;;
	*) echo "not ok - $what ($VM_KERNEL; console: $VM_CONSOLE)" ;;
	esac
}

vm_guard() {
	local engine=${4:-kernel} what="XDP guard on $3's $2 kernel" table
	vm_payload guard EXPECT_KERNEL="$2" ENGINE="$engine" -- "$vm_top"/mailless \
		"$vm_top"/.output/tests/guard_table "$vm_top"/.output/tests/unit_bucket \
		"$vm_top"/.output/tests/xdpresp_table "$vm_top"/.output/tests/wirecheck
	vm_boot "$1" 300
	vm_show '^(guard:|ok|not ok|#|VM-|boot:|mailless|libbpf|libxdp|xdp|Interface|vgs| )'
	case $VM_RC in
	0)
		table=$(printf '%s\n' "$VM_OUT" | sed -n 's/^guard: ok table # //p')
		echo "ok - $what ($VM_KERNEL, --engine $engine): $table, attach and detach"
		if printf '%s\n' "$VM_OUT" | grep -q '^guard: coexist ok'; then
			echo "ok - XDP guard beside xdp-filter through libxdp's dispatcher on $2"
		else
			echo "skip - XDP guard beside xdp-filter on $2: $(printf '%s\n' "$VM_OUT" |
				grep -o 'coexist skipped: .*')"
		fi
		if printf '%s\n' "$VM_OUT" | grep -q '^guard: ok xdp '; then
			echo "ok - XDP responder (--engine xdp) on $2: $(printf '%s\n' "$VM_OUT" |
				sed -n 's/^guard: ok xdp //p')"
		else
			echo "skip - XDP responder on $2: $(printf '%s\n' "$VM_OUT" |
				grep -o 'xdp skipped: .*' | sed 's/^xdp skipped: //')"
		fi
		;;
	2) echo "not ok - $what: the VM could not be set up (see above)" ;;
	*) echo "not ok - $what ($VM_KERNEL; console: $VM_CONSOLE)" ;;
	esac
}

# One ok / not ok line per "fallback: ok NAME" / "fallback: FAILED NAME: why".
vm_item() {
	local line
	if printf '%s\n' "$VM_OUT" | grep -Eq "^fallback: ok $1( |\$)"; then
		echo "ok - $2"
	elif line=$(printf '%s\n' "$VM_OUT" | grep -m1 "^fallback: FAILED $1: "); then
		echo "not ok - $2: ${line#"fallback: FAILED $1: "}"
		vm_failed=1
	else
		echo "not ok - $2: no result from the VM (boot.sh exit $VM_RC; console: $VM_CONSOLE)"
		vm_failed=1
	fi
}

vm_fallback() {
	local on="on $3's $2 kernel"
	vm_payload fallback EXPECT_KERNEL="$2" -- "$vm_top"/mailless "$vm_top"/.output/tests/wirecheck
	vm_boot "$1" 300
	vm_show '^(fallback:|VM-|boot:)'
	if [ "$VM_RC" = 2 ]; then
		echo "not ok - mailless $on: the VM could not be set up (see above)"
		return
	fi
	vm_failed=0
	vm_item kernel "--engine kernel $on ($VM_KERNEL) exits non-zero, naming bpf_loop and Linux 5.17"
	vm_item clean "--engine kernel $on leaves no cgroup and no pin after refusing"
	vm_item auto "--engine auto $on falls back to the user engine"
	vm_item wire4 "--engine auto $on serves the wire byte-exactly over IPv4 (wirecheck)"
	vm_item wire6 "--engine auto $on serves the wire byte-exactly over IPv6 (wirecheck)"
	vm_item exit "--engine auto $on exits 0 on SIGTERM and leaves nothing behind"
	if [ "$VM_RC" != 0 ] && [ $vm_failed = 0 ]; then
		echo "not ok - mailless $on: the VM run failed (console: $VM_CONSOLE)"
	fi
}

# Kernel lockdown at its strictest: every part serves, or refuses naming the
# lockdown (and --engine auto then serves with the user engine).
vm_lockdown() {
	local on="on $3's $2 kernel with lockdown=confidentiality" line
	vm_payload lockdown EXPECT_KERNEL="$2" -- "$vm_top"/mailless "$vm_top"/.output/tests/wirecheck
	VM_APPEND=lockdown=confidentiality vm_boot "$1" 300
	vm_show '^(lockdown:|VM-|boot:)'
	if [ "$VM_RC" = 2 ]; then
		echo "not ok - mailless $on: the VM could not be set up (see above)"
		return
	fi
	if [ "$VM_RC" = 0 ] && printf '%s\n' "$VM_OUT" | grep -q '^lockdown: RESULT'; then
		printf '%s\n' "$VM_OUT" | sed -n 's/^lockdown: RESULT \(.*\)/\1/p' |
			while IFS= read -r line; do echo "ok - $line $on"; done
	else
		line=$(printf '%s\n' "$VM_OUT" | grep -m1 '^lockdown: FAILED' || true)
		echo "not ok - mailless $on: ${line:-the VM run failed} (console: $VM_CONSOLE)"
	fi
}
