#!/bin/sh
# Payload for tests/vm/t_kernel612_lockdown.sh: the kernel booted with
# lockdown=confidentiality (what a distribution kernel enforces at its
# strictest; Secure Boot gives integrity). Each part either serves, or
# refuses with a message that names the lockdown, and then --engine auto
# serves with the user engine. Lines "lockdown: RESULT ..." say which.
# /payload holds mailless, wirecheck and vm.conf (EXPECT_KERNEL).
set -u
fail=0
say() { echo "lockdown: $*"; }
. /payload/vm.conf
case $(uname -r) in "$EXPECT_KERNEL".*) ;; *) say "FAILED: not a $EXPECT_KERNEL kernel: $(uname -r)"; exit 1;; esac

# systemd mounts securityfs on a booted host; the VM's /init does not.
mountpoint -q /sys/kernel/security || mount -t securityfs securityfs /sys/kernel/security
mode=$(cat /sys/kernel/security/lockdown 2>/dev/null)
case $mode in
*"[confidentiality]"*) say "kernel $(uname -r), lockdown: $mode";;
*) say "FAILED: not in confidentiality mode: '$mode'"; exit 1;;
esac

ip netns add ls; ip netns add lc
ip link add vls type veth peer name vlc
ip link set vls netns ls; ip link set vlc netns lc
nsenter --net=/run/netns/ls ip addr add 10.63.0.1/24 dev vls
nsenter --net=/run/netns/lc ip addr add 10.63.0.2/24 dev vlc
for n in ls lc; do nsenter --net=/run/netns/$n ip link set lo up; done
nsenter --net=/run/netns/ls ip link set vls up
nsenter --net=/run/netns/lc ip link set vlc up

# start LOG ARGS...: mailless run in ns ls; PID, or empty if it exited
start() {
    log=$1; shift
    /usr/bin/nsenter --net=/run/netns/ls /payload/mailless run -l 10.63.0.1:25 -H l.mx.test \
        --pin-dir /sys/fs/bpf/l "$@" >"$log" 2>&1 &
    PID=$!
    i=0
    while ! grep -q 'mailless: ready' "$log"; do
        i=$((i + 1))
        if [ $i -gt 100 ] || ! kill -0 $PID 2>/dev/null; then
            wait $PID 2>/dev/null; PID=""; return 1
        fi
        sleep 0.1
    done
}
stop() {
    kill -TERM $PID
    i=0
    while kill -0 $PID 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -0 $PID 2>/dev/null && { say "FAILED: pid $PID ignored SIGTERM"; fail=1; }
}
wire() {
    nsenter --net=/run/netns/lc /payload/wirecheck 10.63.0.1 25 l.mx.test rcpt
}

# The kernel engine.
if start /tmp/k.log --engine kernel; then
    if wire; then say "RESULT kernel engine serves"; else say "FAILED kernel wire"; fail=1; fi
    stop
elif grep -q 'lockdown' /tmp/k.log; then
    say "RESULT kernel engine refuses: $(grep 'Error' /tmp/k.log | head -1)"
    if start /tmp/a.log --engine auto && grep -q 'falling back to the user engine' /tmp/a.log; then
        if wire; then say "RESULT --engine auto serves with the user engine"
        else say "FAILED auto wire"; fail=1; fi
        stop
    else
        say "FAILED: --engine auto did not fall back:"; cat /tmp/a.log; fail=1
    fi
else
    say "FAILED: the kernel engine refused without naming the lockdown:"; cat /tmp/k.log; fail=1
fi

# The XDP guard (skb mode: a veth in a VM).
if start /tmp/g.log --engine user --xdp vls; then
    st=$(nsenter --net=/run/netns/ls /payload/mailless status --pin-dir /sys/fs/bpf/l 2>&1)
    if echo "$st" | grep -q 'on vls (ifindex [0-9]*): attached' && wire; then
        say "RESULT XDP guard serves: $(echo "$st" | grep 'on vls' | sed 's/.*attached, //')"
    else
        say "FAILED guard:"; echo "$st"; cat /tmp/g.log; fail=1
    fi
    stop
elif grep -q 'lockdown' /tmp/g.log; then
    say "RESULT XDP guard refuses: $(grep 'Error' /tmp/g.log | head -1)"
else
    say "FAILED: the guard refused without naming the lockdown:"; cat /tmp/g.log; fail=1
fi
left=$(ls /sys/fs/bpf | grep -vx xdp)
[ -z "$left" ] || { say "FAILED: left pinned: $left"; fail=1; }
[ $fail = 0 ] && say "all ok"
exit $fail
