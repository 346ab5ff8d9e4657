#!/bin/sh
# Payload for tests/vm/boot.sh: mailless on a kernel too old for its kernel
# engine (Debian 11's 5.10 has no bpf_loop(), which Linux 5.17 added).
#   kernel: --engine kernel exits non-zero, naming bpf_loop and Linux 5.17
#   clean:  ... and leaves no cgroup and no pin behind
#   auto:   --engine auto falls back to the user engine ...
#   wire4, wire6: ... which serves the wire byte-exactly over IPv4, IPv6 ...
#   exit:   ... and exits 0 on SIGTERM, leaving nothing behind
# Each prints "fallback: ok NAME ..." or "fallback: FAILED NAME: why", which
# tests/vm/t_kernel510.sh turns into ok / not ok lines; mailless's own output is
# shown verbatim after "fallback: kernel> " and "fallback: auto> ".
# /payload holds mailless, wirecheck and vm.conf (EXPECT_KERNEL=5.10).
set -u
fail=0
say() { echo "fallback: $*"; }
ok() { say "ok $*"; }
bad() { say "FAILED $*"; fail=1; }

. /payload/vm.conf
case $(uname -r) in "$EXPECT_KERNEL".*) ;; *) say "not a $EXPECT_KERNEL kernel: $(uname -r)"; exit 1;; esac

mkdir -p /run/netns
ip netns add s; ip netns add c
ip link add vs type veth peer name vc
ip link set vs netns s; ip link set vc netns c
nsenter --net=/run/netns/s ip addr add 10.51.0.1/24 dev vs
nsenter --net=/run/netns/s ip addr add fd00:51::1/64 dev vs nodad
nsenter --net=/run/netns/c ip addr add 10.51.0.2/24 dev vc
nsenter --net=/run/netns/c ip addr add fd00:51::2/64 dev vc nodad
for n in s c; do nsenter --net=/run/netns/$n ip link set lo up; done
nsenter --net=/run/netns/s ip link set vs up
nsenter --net=/run/netns/c ip link set vc up

leftovers() {	# what a mailless run must not leave: its cgroup, its pins
    ls -d /sys/fs/cgroup/mailless-* 2>/dev/null
    ls /sys/fs/bpf | grep -vx xdp
}

# Full path: "nsenter" is a shell function here (tests/vm/README.md), and a
# function in the background would make $! a subshell, not mailless.
/usr/bin/nsenter --net=/run/netns/s /payload/mailless run -l 10.51.0.1:25 -H k.mx.test \
    --engine kernel --pin-dir /sys/fs/bpf/k >/tmp/k.log 2>&1 &
P=$!
i=0
while kill -0 $P 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 $P 2>/dev/null; then
    kill -TERM $P; wait $P; rc=running
else
    wait $P; rc=$?
fi
sed 's/^/fallback: kernel> /' /tmp/k.log
if [ "$rc" = running ]; then
    bad "kernel: --engine kernel was still running after 10 s"
elif [ "$rc" = 0 ]; then
    bad "kernel: --engine kernel exited 0"
elif grep -q 'bpf_loop' /tmp/k.log && grep -q '5\.17' /tmp/k.log; then
    ok "kernel (exit $rc)"
else
    miss=""
    grep -q 'bpf_loop' /tmp/k.log || miss="bpf_loop"
    grep -q '5\.17' /tmp/k.log || miss="$miss${miss:+ or }Linux 5.17"
    bad "kernel: exit $rc, but the output does not name $miss: $(grep -m1 Error /tmp/k.log)"
fi
left=$(leftovers)
if [ -z "$left" ]; then ok clean; else bad "clean: left after the refusal: $(echo $left)"; fi

/usr/bin/nsenter --net=/run/netns/s /payload/mailless run -l 10.51.0.1:25 -l '[fd00:51::1]:25' \
    -H a.mx.test --engine auto --pin-dir /sys/fs/bpf/a >/tmp/a.log 2>&1 &
P=$!
i=0
while ! grep -q 'mailless: ready' /tmp/a.log && kill -0 $P 2>/dev/null && [ $i -lt 100 ]; do
    sleep 0.1; i=$((i + 1))
done
sed 's/^/fallback: auto> /' /tmp/a.log
if ! grep -q 'mailless: ready: engine user' /tmp/a.log; then
    bad "auto: --engine auto is not serving with the user engine"
elif ! grep -q 'falling back to the user engine' /tmp/a.log; then
    bad "auto: no 'falling back to the user engine' in the log"
else
    ok auto
fi
for fa in 4:10.51.0.1 6:fd00:51::1; do
    a=${fa#?:}
    if nsenter --net=/run/netns/c /payload/wirecheck $a 25 a.mx.test rcpt >/tmp/w.out 2>&1; then
        ok "wire${fa%%:*} $a"
    else
        grep -v '^ok' /tmp/w.out | head -20; bad "wire${fa%%:*}: wirecheck $a failed"
    fi
done
if kill -TERM $P 2>/dev/null; then
    i=0
    while kill -0 $P 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 $P 2>/dev/null; then
        kill -KILL $P; bad "exit: --engine auto ignored SIGTERM for 5 s"
    else
        wait $P; rc=$?
        left=$(leftovers)
        if [ "$rc" != 0 ]; then bad "exit: exit status $rc after SIGTERM"
        elif [ -n "$left" ]; then bad "exit: left after exit: $(echo $left)"
        else ok exit; fi
    fi
else
    bad "exit: --engine auto had already exited"
fi
[ $fail = 0 ] && say "all ok"
exit $fail
