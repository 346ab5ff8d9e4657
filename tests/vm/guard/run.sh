#!/bin/sh
# Payload for tests/vm/boot.sh: the XDP guard on a Debian kernel (5.10, 6.1, 6.12).
# The guard must pass that kernel's verifier (PROG_TEST_RUN table test), attach
# through libxdp with mailless, and detach on exit. Where the kernel lets libxdp
# load its dispatcher, xdp-filter must run beside it ("guard: coexist").
# /payload holds mailless, guard_table, unit_bucket, xdpresp_table, wirecheck and
# vm.conf (EXPECT_KERNEL, the kernel version the test expects; ENGINE, mailless's
# --engine: kernel, or user where the kernel engine cannot run), copied there by
# tests/vm/vmtest.sh. Where bpf_loop exists (5.17+), the XDP responder too: its
# table test on that verifier and --engine xdp byte-exact on the wire
# ("guard: ok xdp ..." / "guard: FAILED xdp ...").
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

# The XDP responder (--engine xdp): it needs bpf_loop (Linux 5.17).
case $EXPECT_KERNEL in
5.10) say "xdp skipped: the responder needs bpf_loop (Linux 5.17), $EXPECT_KERNEL lacks it" ;;
*)
    xfail=0
    if /payload/xdpresp_table >/tmp/xt.out 2>&1; then
        xtab=$(tail -1 /tmp/xt.out | sed 's/^# //')
    else
        grep -v '^ok' /tmp/xt.out | head -40; xtab="FAILED xdpresp_table"; xfail=1
    fi
    /usr/bin/nsenter --net=/run/netns/gs /payload/mailless run -l 10.62.0.1:25 -H x.mx.test \
        --engine xdp --pin-dir /sys/fs/bpf/x --xdp vgs --xdp-mode skb >/tmp/x.log 2>&1 &
    PID=$!
    i=0
    while ! grep -q 'mailless: ready' /tmp/x.log; do
        i=$((i + 1))
        if [ $i -gt 100 ] || ! kill -0 $PID 2>/dev/null; then
            cat /tmp/x.log; xfail=1; break
        fi
        sleep 0.1
    done
    if [ $xfail = 0 ]; then
        nsenter --net=/run/netns/gc /payload/wirecheck 10.62.0.1 25 x.mx.test rcpt xdp \
            >/tmp/xw.out 2>&1 || { cat /tmp/xw.out; xfail=1; }
    fi
    kill -TERM $PID
    i=0
    while kill -0 $PID 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    grep -q 'Error' /tmp/x.log && { cat /tmp/x.log; xfail=1; }
    nsenter --net=/run/netns/gs ip link show vgs | grep -q 'prog/xdp' && xfail=1
    if [ $xfail = 0 ]; then
        say "ok xdp table $xtab, wirecheck $(grep -c '^ok' /tmp/xw.out) rows byte-exact"
    else
        say "FAILED xdp: $xtab"; fail=1
    fi
    ;;
esac
[ $fail = 0 ] && say "all ok"
exit $fail
