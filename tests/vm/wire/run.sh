#!/bin/sh
# Payload for tests/vm/boot.sh: the kernel engine on a Debian kernel (6.1, 6.12).
# The BPF objects must pass that kernel's verifier, and the wire must be
# byte-exact over IPv4 and IPv6, both dialects, two instances in two
# namespaces at once. /payload holds mailless, wirecheck and vm.conf
# (EXPECT_KERNEL=6.1: the kernel version the test expects), copied there by
# tests/vm/vmtest.sh.
set -u
fail=0
say() { echo "wire: $*"; }

. /payload/vm.conf
case $(uname -r) in "$EXPECT_KERNEL".*) ;; *) say "not a $EXPECT_KERNEL kernel: $(uname -r)"; exit 1;; esac

mkdir -p /run/netns
setup() {	# NS CLIENT_NS
    ip netns add "$1"; ip netns add "$2"
    ip link add "v$1" type veth peer name "v$2"
    ip link set "v$1" netns "$1"; ip link set "v$2" netns "$2"
    nsenter --net=/run/netns/"$1" ip addr add 10.61.0.1/24 dev "v$1"
    nsenter --net=/run/netns/"$1" ip addr add fd00:61::1/64 dev "v$1" nodad
    nsenter --net=/run/netns/"$2" ip addr add 10.61.0.2/24 dev "v$2"
    nsenter --net=/run/netns/"$2" ip addr add fd00:61::2/64 dev "v$2" nodad
    for n in "$1" "$2"; do
        nsenter --net=/run/netns/"$n" ip link set lo up
    done
    nsenter --net=/run/netns/"$1" ip link set "v$1" up
    nsenter --net=/run/netns/"$2" ip link set "v$2" up
}

start() {	# NS DIALECT NAME [USER] -> sets PID
    # Full path: "nsenter" is a shell function here (tests/vm/README.md), and
    # a function in the background would make $! a subshell, not mailless.
    /usr/bin/nsenter --net=/run/netns/"$1" /payload/mailless run -l 10.61.0.1:25 -l '[fd00:61::1]:25' \
        -H "$3" -d "$2" --engine kernel --pin-dir /sys/fs/bpf/"$1" --user "${4:-root}" \
        >/tmp/"$1".log 2>&1 &
    PID=$!
    i=0
    while ! grep -q 'mailless: ready' /tmp/"$1".log; do
        i=$((i + 1))
        if [ $i -gt 100 ] || ! kill -0 $PID 2>/dev/null; then
            say "$1 did not start:"; cat /tmp/"$1".log; fail=1; return 1
        fi
        sleep 0.1
    done
}

check() {	# CLIENT_NS ADDR NAME DIALECT
    if nsenter --net=/run/netns/"$1" /payload/wirecheck "$2" 25 "$3" "$4"; then
        say "ok $3 $2"
    else
        say "FAILED $3 $2"; fail=1
    fi
}

setup sa ca
setup sb cb
setup sc cc
start sa rcpt a.mx.test && PA=$PID
start sb rfc7504 b.mx.test && PB=$PID
start sc rcpt c.mx.test nobody && PC=$PID
# Both instances were started from this cgroup (each moves into a child of
# its own) and share the port and the addresses: each must answer only its
# own namespace's sessions.
for p in ${PA:-} ${PB:-}; do
    grep -qx "0::/mailless-$p" /proc/$p/cgroup ||
        { say "pid $p is not in a cgroup of its own: $(cat /proc/$p/cgroup)"; fail=1; }
done
check ca 10.61.0.1 a.mx.test rcpt
check cb 10.61.0.1 b.mx.test rfc7504
check ca fd00:61::1 a.mx.test rcpt
check cb fd00:61::1 b.mx.test rfc7504
# The third serves as nobody (user/privs.c), and its session above came
# after the drop: what it kept was enough. That is CAP_BPF (bit 39) where
# this kernel asks for it on every bpf() call (before 6.5, with
# unprivileged_bpf_disabled set, unless a backport lifted it: mailless asks
# the kernel), else nothing; never any other.
if [ -n "${PC:-}" ]; then
    st=$(grep -E '^(Uid|CapEff|NoNewPrivs|Seccomp):' /proc/$PC/status | tr -s '\t' ' ' | tr '\n' ' ')
    say "privileges: $st(unprivileged_bpf_disabled $(cat /proc/sys/kernel/unprivileged_bpf_disabled))"
    for w in "Uid: 65534 65534 65534 65534" "NoNewPrivs: 1" "Seccomp: 2"; do
        case "$st" in *"$w"*) say "ok privileges: $w";;
            *) say "privileges: want '$w'"; fail=1;; esac
    done
    case "$st" in *"CapEff: 0000000000000000"*|*"CapEff: 0000008000000000"*) say "ok privileges: CapEff none or CAP_BPF";;
        *) say "privileges: CapEff other than none or CAP_BPF"; fail=1;; esac
fi
for p in ${PA:-} ${PB:-} ${PC:-}; do
    kill -TERM $p
    i=0
    while kill -0 $p 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -0 $p 2>/dev/null && { say "pid $p ignored SIGTERM"; grep Sig /proc/$p/status; fail=1; }
done
# What nobody may not remove, as the unit's ExecStopPost=+mailless unload.
grep -q 'stay for `mailless unload`' /tmp/sc.log || { say "sc: no word of the pins left"; cat /tmp/sc.log; fail=1; }
/usr/bin/nsenter --net=/run/netns/sc /payload/mailless unload --pin-dir /sys/fs/bpf/sc >/dev/null
for f in /tmp/sa.log /tmp/sb.log /tmp/sc.log; do
    grep -q 'Error' $f && { say "error in $f:"; cat $f; fail=1; }
done
left=$(ls -d /sys/fs/cgroup/mailless-* 2>/dev/null)
[ -z "$left" ] || { say "cgroups left: $left"; fail=1; }
left=$(ls /sys/fs/bpf)
[ -z "$left" ] || { say "left pinned: $left"; ls -laR /sys/fs/bpf; cat /tmp/sa.log /tmp/sb.log /tmp/sc.log; fail=1; }
[ $fail = 0 ] && say "all ok"
exit $fail
