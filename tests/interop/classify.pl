#!/usr/bin/perl
# SPDX-License-Identifier: GPL-2.0
# classify.pl SINK - what bounce-processing software makes of the DSNs in
# SINK (an mbox file or a Maildir): Sisimai (Debian's libsisimai-perl), the
# classifier that mailing-list and bulk-mail software use. One line per
# bounced recipient, tab-separated:
#   reason softbounce deliverystatus replycode smtpcommand recipient diagnosticcode
# softbounce 0 is a hard bounce (the address is dead), 1 a soft one, -1 neither.
# Exits 1 if SINK holds no bounce Sisimai can read.
use strict;
use warnings;
use Sisimai;

my $sink = shift // die "usage: $0 SINK\n";
my $v = Sisimai->make($sink) // [];
for my $e (@$v) {
	my @f = map { my $x = $e->$_ // ""; $x =~ s/[\t\r\n]+/ /g; length $x ? $x : "-" }
		qw(reason softbounce deliverystatus replycode smtpcommand);
	push @f, $e->recipient->address;
	(my $d = $e->diagnosticcode // '') =~ s/[\t\r\n]+/ /g;
	print join("\t", @f, $d), "\n";
}
exit(@$v ? 0 : 1);
