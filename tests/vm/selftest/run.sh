#!/bin/sh
# Smoke payload for tests/vm/boot.sh: kernel, mounts, netns + veth, ping across.
set -eu

fail() { echo "selftest: FAIL: $*"; exit 1; }

rel=$(uname -r)
echo "selftest: uname -r = $rel; $VM_SUITE's $VM_KERNEL_PKG $VM_KERNEL_VERSION (/etc/vm.env)"
[ "$rel" = "$VM_KERNEL_RELEASE" ] || fail "booted $rel, not the cached $VM_KERNEL_RELEASE"

grep -q ' /sys/fs/bpf bpf ' /proc/mounts || fail "/sys/fs/bpf is not a bpf mount"
grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts || fail "/sys/fs/cgroup is not a cgroup2 mount"
echo "selftest: bpffs and cgroup2 mounted"

# the host binaries from .hostbins must be the real ones, not busybox applets
ip -V | grep -q iproute2 || fail "/usr/sbin/ip is not iproute2"
nsenter --version | grep -q util-linux || fail "/usr/bin/nsenter is not util-linux"
echo "selftest: $(ip -V); $(nsenter --version)"

mkdir -p /run/netns
ip netns add a
ip netns add b
ip link add va type veth peer name vb
ip link set va netns a
ip link set vb netns b
nsenter --net=/run/netns/a ip addr add 10.99.0.1/24 dev va
nsenter --net=/run/netns/b ip addr add 10.99.0.2/24 dev vb
for ns in a b; do
    nsenter --net=/run/netns/$ns ip link set lo up
done
nsenter --net=/run/netns/a ip link set va up
nsenter --net=/run/netns/b ip link set vb up
nsenter --net=/run/netns/a ip -br addr
nsenter --net=/run/netns/b ip -br addr

nsenter --net=/run/netns/a ping -c 3 -W 5 10.99.0.2 || fail "ping a -> b failed"
nsenter --net=/run/netns/b ping -c 1 -W 5 10.99.0.1 || fail "ping b -> a failed"

ip netns del a
ip netns del b
echo "selftest: ok"
