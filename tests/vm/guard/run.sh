#!/bin/sh
# Payload for tests/vm/boot.sh: the XDP guard on a Debian kernel (5.10, 6.1, 6.12).
# The guard must pass that kernel's verifier (PROG_TEST_RUN table test), attach
# through libxdp with mailless, and detach on exit. Where the kernel lets libxdp
# load its dispatcher, xdp-filter must run beside it ("guard: coexist").
# /payload holds mailless, guard_table, unit_bucket and vm.conf (EXPECT_KERNEL,
# the kernel version the test expects; ENGINE, mailless's --engine: kernel, or
# user where the kernel engine cannot run), copied there by tests/vm/vmtest.sh.
set -u
fail=0
say() { echo "guard: $*"; }

. /payload/vm.conf
case $(uname -r) in "$EXPECT_KERNEL".*) ;; *) say "not a $EXPECT_KERNEL kernel: $(uname -r)"; exit 1;; esac

/payload/unit_bucket >/tmp/ub.out 2>&1 || { cat /tmp/ub.out; say "FAILED unit_bucket"; fail=1; }
if /payload/guard_table >/tmp/gt.out 2>&1; then
    say "ok table $(tail -1 /tmp/gt.out)"
else
    grep -v '^ok' /tmp/gt.out | head -40; say "FAILED guard_table"; fail=1
fi

ip netns add gs; ip netns add gc
ip link add vgs type veth peer name vgc
ip link set vgs netns gs; ip link set vgc netns gc
nsenter --net=/run/netns/gs ip addr add 10.62.0.1/24 dev vgs
nsenter --net=/run/netns/gc ip addr add 10.62.0.2/24 dev vgc
nsenter --net=/run/netns/gs ip link set vgs up
nsenter --net=/run/netns/gc ip link set vgc up
nsenter --net=/run/netns/gs ip link set lo up

# Full path: a function in the background would make $! a subshell.
/usr/bin/nsenter --net=/run/netns/gs /payload/mailless run -l 10.62.0.1:25 -H g.mx.test \
    --engine "$ENGINE" --pin-dir /sys/fs/bpf/g --xdp vgs >/tmp/g.log 2>&1 &
PID=$!
i=0
while ! grep -q 'mailless: ready' /tmp/g.log; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 $PID 2>/dev/null; then
        say "mailless did not start:"; cat /tmp/g.log; fail=1; break
    fi
    sleep 0.1
done
st=$(nsenter --net=/run/netns/gs /payload/mailless status --pin-dir /sys/fs/bpf/g 2>&1)
echo "$st" | grep -i 'xdp\|on vgs\|dispatcher'
if echo "$st" | grep -q 'on vgs (ifindex [0-9]*): attached'; then
    say "ok attached $(echo "$st" | grep 'on vgs' | sed 's/.*attached, //')"
else
    say "FAILED attach"; cat /tmp/g.log; fail=1
fi
if echo "$st" | grep -q "through libxdp's dispatcher"; then
    if nsenter --net=/run/netns/gs /usr/sbin/xdp-filter load vgs >/tmp/xf.log 2>&1; then
        ls=$(nsenter --net=/run/netns/gs /usr/sbin/xdp-loader status vgs 2>&1)
        echo "$ls"
        if echo "$ls" | grep -q ml_guard && echo "$ls" | grep -q xdpfilt; then
            say "coexist ok"
        else
            say "FAILED coexist"; fail=1
        fi
        nsenter --net=/run/netns/gs /usr/sbin/xdp-filter unload vgs
    else
        cat /tmp/xf.log; say "FAILED coexist: xdp-filter load"; fail=1
    fi
else
    say "coexist skipped: $(echo "$st" | grep -o 'dispatcher was unavailable.*')"
fi
kill -TERM $PID
i=0
while kill -0 $PID 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
grep -q 'Error' /tmp/g.log && { say "error in the log:"; cat /tmp/g.log; fail=1; }
nsenter --net=/run/netns/gs ip link show vgs | grep -q 'prog/xdp' && { say "FAILED still attached after exit"; fail=1; }
# libxdp keeps its own directory (xdp/) for dispatcher state: it must hold
# no dispatcher any more; everything else must be gone.
left=$(ls /sys/fs/bpf | grep -vx xdp; ls /sys/fs/bpf/xdp 2>/dev/null | grep dispatch)
[ -z "$left" ] || { say "left pinned: $left"; ls -laR /sys/fs/bpf; fail=1; }
[ $fail = 0 ] && say "all ok"
exit $fail
