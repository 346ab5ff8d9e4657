# SPDX-License-Identifier: GPL-2.0
# mta.sh - what each MTA of the interop matrix needs, and nothing more. Each
# MTA runs as Debian's package installs it (tests/interop/root.sh), with its
# default configuration; the only changes are the ones a run needs:
#   - its own name: sender.test (the jail's host name, /etc/mailname), so
#     that alice@sender.test, the envelope sender, is a local mailbox
#     (Postfix's myhostname, Courier's locals);
#   - that it sends mail at all: Exim's "internet site" answer;
#   - for routing, nothing but nullmailer's relay: the run's DNS gives
#     mailless.test an MX record, mx.mailless.test, at mailless's address,
#     as the Internet would.
# Sourced by jail.sh (setup, start: run as the jail's PID 1, with J set) and
# by interop.py (the rest: run from the host with J set to the jail's root
# inside its mount namespace, through jx).
#
#   NAME_setup    configure, before any daemon runs
#   NAME_start    start the daemons (they detach)
#   NAME_sink     the DSN sink, a path inside the jail: an mbox file, or a
#                 Maildir's new/ (what Sisimai reads as a Maildir)
#   NAME_version  one line: the MTA and its Debian package version
#   NAME_kick     optional: what it takes to get a queued DSN delivered
#   NAME_log      optional: its own log file, if it keeps one beside syslog
#   NAME_queue    the queue, as the MTA lists it (for the record)

IR_RCPT=bob@mailless.test	# the misaddressed recipient
IR_FROM=alice@sender.test	# the sender, a local mailbox of the MTA
IR_MX=mx.mailless.test		# mailless's name (-H), mailless.test's MX

# Run a command in the jail's root, with a clean environment.
jroot() { chroot "$J" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

pkgver() { jroot dpkg-query -W -f '${Version}' "$1" 2>/dev/null; }

# ---- Postfix: Debian's "Internet Site" (the package's default answer).
postfix_setup() {
	jroot postconf -e myhostname=sender.test
}
postfix_start() {
	# Copy resolv.conf, hosts and the rest into the chroot that Debian's
	# master.cf gives smtp(8): Postfix 3.7's init script does it first,
	# 3.10's `postfix start` itself (its post-install runs the script).
	if ! grep -q configure-instance "$J/usr/lib/postfix/sbin/post-install"; then
		jroot /usr/lib/postfix/configure-instance.sh - || return 1
	fi
	jroot postfix start
}
postfix_sink() { echo /var/mail/alice; }
postfix_version() { echo "Postfix $(pkgver postfix)"; }
postfix_queue() { jroot postqueue -p; }

# ---- Exim: Debian's exim4-config asks how mail leaves; its default answer
# is "local delivery only", which sends nothing anywhere. "internet site;
# mail is sent and received directly using SMTP" is the answer of a host
# that sends mail (update-exim4.conf.conf's dc_eximconfig_configtype).
exim_setup() {
	local f=$J/etc/exim4/update-exim4.conf.conf
	sed -i -e "s/^dc_eximconfig_configtype=.*/dc_eximconfig_configtype='internet'/" \
		-e "s/^dc_other_hostnames=.*/dc_other_hostnames='sender.test'/" "$f" &&
		jroot update-exim4.conf
}
# As Debian's init script starts it (QUEUEINTERVAL 30m).
exim_start() { jroot exim4 -bd -q30m; }
exim_sink() { echo /var/mail/alice; }
exim_version() { echo "Exim $(pkgver exim4-daemon-light)"; }
exim_queue() { jroot exim4 -bp; }
exim_log() { echo /var/log/exim4/mainlog; }

# ---- OpenSMTPD: Debian's smtpd.conf as shipped (local mail to ~/Maildir,
# everything else relayed by MX).
opensmtpd_setup() { :; }
opensmtpd_start() { jroot smtpd; }
opensmtpd_sink() { echo /home/alice/Maildir/new; }
opensmtpd_version() { echo "OpenSMTPD $(pkgver opensmtpd)"; }
opensmtpd_queue() { jroot smtpctl show queue; }

# ---- sendmail: Debian's sendmail.mc as shipped; both daemons as its init
# script starts them (the MTA listening on 127.0.0.1:25, and the MSP's queue
# runner for what submission left queued).
sendmail_setup() { :; }
sendmail_start() {
	jroot /usr/sbin/sendmail-mta -Am -L sm-mta -bd -q10m &&
		jroot /usr/sbin/sendmail-msp -Ac -L sm-msp-queue -qp10m
}
sendmail_sink() { echo /var/mail/alice; }
sendmail_version() { echo "sendmail $(pkgver sendmail-bin)"; }
# The DSN to alice is queued for local delivery: run both queues.
sendmail_kick() { jroot /usr/sbin/sendmail-mta -Am -q; jroot /usr/sbin/sendmail-msp -Ac -q; }
sendmail_queue() { jroot /usr/sbin/sendmail-mta -Am -bp; jroot /usr/sbin/sendmail-msp -Ac -bp; }

# The d (directory) lines of a package's tmpfiles.d file, as its init script
# creates them when systemd does not.
jtmpfiles() {
	local type path mode user group _
	while read -r type path mode user group _; do
		[ "$type" = d ] || continue
		mkdir -p "$J$path" && chmod "$mode" "$J$path" && jroot chown "$user:$group" "$path"
	done <"$J/usr/lib/tmpfiles.d/$1.conf"
}

# ---- Courier: courier-mta as shipped (local mail to ~/Maildir); started as
# its two init scripts do (authdaemond first: local delivery asks it who
# alice is). Debian's /etc/courier/locals names only localhost, so the host's
# own name must be added for mail to alice@sender.test to stay local.
courier_setup() {
	echo sender.test >>"$J/etc/courier/locals" &&
		jroot su alice -s /bin/sh -c 'maildirmake "$HOME/Maildir"'
}
courier_start() {
	jtmpfiles courier-authdaemon && jtmpfiles courier-mta &&
		jroot authdaemond start && jroot courier start
}
courier_sink() { echo /home/alice/Maildir/new; }
courier_version() { echo "Courier $(pkgver courier-mta)"; }
courier_queue() { jroot mailq; }

# ---- dma, the DragonFly Mail Agent: no daemon; sendmail(1) delivers (by MX)
# in a process of its own and bounces to local senders itself.
dma_setup() { :; }
dma_start() { :; }
dma_sink() { echo /var/mail/alice; }
dma_version() { echo "dma $(pkgver dma)"; }
dma_queue() { jroot mailq; }

# ---- nullmailer: a relay-only MTA, it never looks up an MX: it hands
# everything to the hosts in /etc/nullmailer/remotes (Debian asks for one and
# suggests "mail"). Routing means naming mailless's host there. Its bounce
# goes to the sender's address by that same relay; there is no local delivery.
nullmailer_setup() { echo "$IR_MX smtp" >"$J/etc/nullmailer/remotes"; }
nullmailer_start() {
	[ -p "$J/var/spool/nullmailer/trigger" ] || {
		rm -f "$J/var/spool/nullmailer/trigger" &&
			jroot mkfifo -m 622 /var/spool/nullmailer/trigger &&
			jroot chown mail:root /var/spool/nullmailer/trigger
	} || return 1
	jroot setpriv --reuid=mail --regid=mail --init-groups nullmailer-send </dev/null 2>&1 |
		jroot logger -p mail.notice -t nullmailer &
}
nullmailer_sink() { echo /var/mail/alice; }
nullmailer_version() { echo "nullmailer $(pkgver nullmailer)"; }
nullmailer_queue() { jroot mailq; }
