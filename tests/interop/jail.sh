#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# jail.sh ROOT DIR MTA HOST ADDR - PID 1 of one interop run's sender: the MTA
# of Debian's package, running from a throwaway copy of its cached root.
#
# interop.py starts it in the sender's network namespace with
#   unshare --mount --uts --pid --fork --kill-child --propagation private
# so everything below is private to this run and ends with it: killing the
# unshare process kills this PID 1, and with it every process of the MTA; the
# mounts vanish with the mount namespace. Nothing of the host is configured.
#   DIR/root     the jail's /: an overlay of ROOT (read-only, never written)
#                and DIR/upper, where every file the run writes lands (the
#                harness reads the sink and the logs from there)
#   /proc        a new procfs of this PID namespace
#   hostname     HOST (UTS namespace); /etc/hosts names it at ADDR
#   /etc/resolv.conf  127.0.0.1: the run's dnsmasq in the same network
#                namespace, which serves the MX of the receiving domain
#   user alice   the envelope sender; her mailbox is the DSN sink
#   syslogd      busybox's, to /var/log/syslog: every MTA logs there
# It holds a shared lock on ROOT.lock while it lives.
# Then mta.sh's setup and start for MTA, DIR/ready, and sleep (reaping).
set -u
root=$1 dir=$2 mta=$3 host=$4 addr=$5
J=$dir/root
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "jail: $*" >"$dir/failed"; exit 1; }

# A shared lock on the root for the jail's life: tests/debroot.sh never
# replaces a root under a user.
{ exec 8<>"$root.lock" && flock -s -w 600 8; } || die "cannot lock $root.lock"
mount --make-rprivate / || die "mount --make-rprivate / failed"
mkdir -p "$dir/upper" "$dir/work" "$J" || die "cannot create $dir"
mount -t overlay overlay -o "lowerdir=$root,upperdir=$dir/upper,workdir=$dir/work" "$J" ||
	die "cannot mount an overlay of $root on $J"
mount -t proc proc "$J/proc" || die "cannot mount proc on $J/proc"
hostname "$host" || die "cannot set the host name"
echo "nameserver 127.0.0.1" >"$J/etc/resolv.conf"
printf '127.0.0.1\tlocalhost\n%s\t%s %s\n' "$addr" "$host" "${host%%.*}" >"$J/etc/hosts"
echo "$host" >"$J/etc/mailname"
chroot "$J" useradd --create-home alice || die "useradd alice failed"
chroot "$J" busybox syslogd -n -O /var/log/syslog </dev/null >/dev/null 2>&1 &
for _ in $(seq 50); do
	[ -S "$J/dev/log" ] && break
	sleep 0.1
done

# shellcheck source=tests/interop/mta.sh
. "$here/mta.sh"
# In subshells: a daemon whose parent is PID 1 may take itself to be started
# by init and stay in the foreground (Exim does).
("${mta}_setup") >"$dir/setup.log" 2>&1 </dev/null || die "$mta setup failed: $(tail -n 5 "$dir/setup.log" | tr '\n' '|')"
("${mta}_start") >"$dir/start.log" 2>&1 </dev/null || die "$mta start failed: $(tail -n 5 "$dir/start.log" | tr '\n' '|')"
touch "$dir/ready"
trap '' TERM INT HUP # only SIGKILL (unshare's --kill-child) ends the jail
while :; do
	sleep 3600 &
	wait
done
