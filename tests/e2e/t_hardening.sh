#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# mlt-timeout: 60
# t_hardening.sh - the built binaries carry the hardening the Makefile asks
# for (what Debian's hardening-check or checksec report), read with readelf:
#   PIE           ELF type DYN and DT_FLAGS_1 PIE (-fPIE -pie)
#   full RELRO    a GNU_RELRO segment and BIND_NOW (-Wl,-z,relro,-z,now)
#   stack guard   __stack_chk_fail imported (-fstack-protector-strong)
#   fortify       __*_chk functions imported (-D_FORTIFY_SOURCE=3, -O2)
#   CET           endbr64 code, and .note.gnu.property IBT and SHSTK in the
#                 objects and, where the C start files allow, the binary
#                 (-fcf-protection; x86 only)
# for ./mailless (or $MAILLESS) and .output/tools/loadgen, floor if built,
# and that it has no test hooks (ML_TEST_HOOKS: .output/tests/mailless-hooks).
# The sanitizer build (make SAN=1) is not checked: ASan replaces the fortify
# and stack-guard checks with its own.
. "$(dirname "$0")/lib.sh"
ml_init t_hardening

if ! command -v readelf >/dev/null; then
	skip "hardening" "readelf missing (Debian package binutils)"
	ml_finish
	exit 0
fi

# check NAME FILE FORTIFY: FORTIFY=1 wants __*_chk imports (a program that
# calls no fortifiable function with a size the compiler knows has none).
check() {
	local name=$1 f=$2 want_fortify=$3 hdr dyn syms notes chk
	hdr=$(readelf -lhW "$f" 2>&1)
	dyn=$(readelf -dW "$f" 2>&1)
	syms=$(readelf --dyn-syms -W "$f" 2>&1)
	if grep -q 'Type:[[:space:]]*DYN' <<<"$hdr" && grep -q 'FLAGS_1.*PIE' <<<"$dyn"; then
		ok "$name: PIE"
	else
		fail "$name: PIE" "$(grep 'Type:' <<<"$hdr") $(grep FLAGS_1 <<<"$dyn"); want DYN and FLAGS_1 PIE (-fPIE -pie)"
	fi
	if grep -q 'GNU_RELRO' <<<"$hdr" && grep -Eq '\(FLAGS\).*BIND_NOW|FLAGS_1.*NOW' <<<"$dyn"; then
		ok "$name: full RELRO"
	else
		fail "$name: full RELRO" "GNU_RELRO: $(grep -c GNU_RELRO <<<"$hdr"), BIND_NOW: $(grep -Ec 'BIND_NOW|FLAGS_1.* NOW' <<<"$dyn") (want both: -Wl,-z,relro,-z,now)"
	fi
	if grep -q ' __stack_chk_fail' <<<"$syms"; then
		ok "$name: stack protector"
	else
		fail "$name: stack protector" "no __stack_chk_fail import (-fstack-protector-strong)"
	fi
	chk=$(grep -o ' __[a-z0-9_]*_chk\b' <<<"$syms" | grep -v __stack_chk_fail | sort -u | tr -d ' ' | tr '\n' ' ')
	if [ "$want_fortify" = 1 ]; then
		if [ -n "$chk" ]; then
			ok "$name: fortified ($(wc -w <<<"$chk") __*_chk functions)"
			note "$name: $chk"
		else
			fail "$name: fortified" "no __*_chk import (-D_FORTIFY_SOURCE=3 with -O1 or more)"
		fi
	fi
	case $(uname -m) in
	x86_64 | i?86) cet "$name" "$f" ;;
	*) skip "$name: CET" "not x86 ($(uname -m))" ;;
	esac
}

# CET: -fcf-protection puts endbr64 at every indirect-branch target (main
# is one) and an IBT/SHSTK property into each object. ld keeps the property
# in the binary only if every linked object has it, the C start files too:
# Debian 12's glibc is built without CET, its Scrt1.o/crti.o/crtn.o have none,
# so there the binary cannot say so (forcing it with -z ibt would be a claim
# the start files do not keep): that is a counted skip, not a pass.
cet() {
	local name=$1 f=$2 notes first o lacking=""
	first=$(objdump -d --no-show-raw-insn --disassemble=main "$f" 2>/dev/null |
		sed -n '/<main>:/{n;p;q}' | awk '{print $2}')
	if [ "$first" = endbr64 ] || [ "$first" = endbr32 ]; then
		ok "$name: CET code (main starts with $first)"
	else
		fail "$name: CET code" "main starts with '${first:-?}', not endbr64 (-fcf-protection)"
	fi
	notes=$(readelf -nW "$f" 2>&1)
	if grep -Eq 'x86 feature:.*IBT' <<<"$notes" && grep -Eq 'x86 feature:.*SHSTK' <<<"$notes"; then
		ok "$name: CET property (IBT, SHSTK)"
		return
	fi
	for o in Scrt1.o crti.o crtn.o; do
		o=$(${CC:-cc} -print-file-name=$o)
		readelf -nW "$o" 2>/dev/null | grep -Eq 'x86 feature:.*IBT.*SHSTK' || lacking+=" $(basename "$o")"
	done
	if [ -n "$lacking" ]; then
		skip "$name: CET property (IBT, SHSTK)" "the C start files lack it:$lacking (glibc built without CET), so ld drops it"
	else
		fail "$name: CET property (IBT, SHSTK)" "$(grep -i 'feature' <<<"$notes" || echo 'no x86 feature property') (want IBT, SHSTK: -fcf-protection)"
	fi
}

# The controller's own objects all carry the property (-fcf-protection).
objs_cet() {
	local o bad=()
	for o in "$ML_TOP"/.output/user/*.o; do
		[ -e "$o" ] || { skip "objects: CET property" "no .output/user/*.o (make mailless)"; return; }
		readelf -nW "$o" | grep -Eq 'x86 feature:.*IBT.*SHSTK' || bad+=("$(basename "$o")")
	done
	if [ ${#bad[@]} -eq 0 ]; then
		ok "objects: CET property (IBT, SHSTK) in every .output/user/*.o"
	else
		fail "objects: CET property" "missing in ${bad[*]} (-fcf-protection)"
	fi
}

check mailless "$MAILLESS" 1
# Test hooks (ML_TEST_HOOKS) are only in .output/tests/mailless-hooks: the
# shipped binary reads no MAILLESS_TEST_* variable. The test build shows
# that the method can find one.
hooks() {
	local f=$1
	strings -a "$f" | grep -o 'MAILLESS_TEST_[A-Z_]*' | sort -u | tr '\n' ' '
}
h=$(hooks "$MAILLESS")
if [ -z "$h" ]; then
	ok "mailless: no test hooks"
else
	fail "mailless: no test hooks" "it reads $h(build it without -DML_TEST_HOOKS)"
fi
if [ -x "$ML_TOP/.output/tests/mailless-hooks" ]; then
	h=$(hooks "$ML_TOP/.output/tests/mailless-hooks")
	if [ -n "$h" ]; then
		ok "mailless-hooks: the test build has them ($h)"
	else
		fail "mailless-hooks: the test build has them" "no MAILLESS_TEST_* string: the check above cannot fail"
	fi
else
	skip "mailless-hooks" "not built (make tests-build)"
fi
case $(uname -m) in x86_64 | i?86) objs_cet ;; esac
for t in loadgen floor; do
	if [ -x "$ML_TOP/.output/tools/$t" ]; then
		check "tools/$t" "$ML_TOP/.output/tools/$t" 1
	else
		skip "tools/$t" "not built (make tools/$t)"
	fi
done
ml_finish
