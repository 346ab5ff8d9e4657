#!/usr/bin/perl
# SPDX-License-Identifier: GPL-2.0
# classify.pl SINK - what bounce-processing software makes of the DSNs in
# SINK (an mbox file, or a Maildir's new/): Sisimai (Debian's libsisimai-perl),
# the classifier that mailing-list and bulk-mail software use. One line per
# bounced recipient, tab-separated, "-" for an empty field:
#   reason softbounce deliverystatus replycode command recipient diagnosticcode
# softbounce as Sisimai 4 (Debian 12) gives it: 0 a hard bounce (the address
# is dead), 1 a soft one, -1 neither. Sisimai 5 (Debian 13) gives hardbounce
# instead: its 1 is printed as 0, its 0 as 1. Sisimai 5 also renamed make()
# to rise() and smtpcommand to command.
# Exits 1 if SINK holds no bounce Sisimai can read.
use strict;
use warnings;
use Sisimai;

my $sink = shift // die "usage: $0 SINK\n";
my $v = (Sisimai->can('rise') ? Sisimai->rise($sink) : Sisimai->make($sink)) // [];
for my $e (@$v) {
	my $soft = $e->can('hardbounce') ? ($e->hardbounce ? 0 : 1) : $e->softbounce;
	my $cmd = $e->can('command') ? $e->command : $e->smtpcommand;
	my @f = map { my $x = $_ // ""; $x =~ s/[\t\r\n]+/ /g; length $x ? $x : "-" }
		$e->reason, $soft, $e->deliverystatus, $e->replycode, $cmd, $e->recipient->address;
	(my $d = $e->diagnosticcode // '') =~ s/[\t\r\n]+/ /g;
	print join("\t", @f, $d), "\n";
}
exit(@$v ? 0 : 1);
