# SPDX-License-Identifier: GPL-2.0
# expect.sh - what each MTA must do with mailless in its default
# configuration (dialect rcpt), in both engines. Sourced by t_interop.sh.
#
# The target (issue 11): the message bounces within 2 s and Sisimai reads the
# DSN as a hard bounce, reason notaccept. Two MTAs cannot meet it, for
# reasons of their own; their rows say what they do instead, so that a change
# either way (a new version, a regression in mailless) fails the test.
#   dma         bounces at once, but its bounce is a plain-text message with
#               no message/delivery-status part, which Sisimai 4 (Debian 12)
#               does not read (reason "(none)"); Sisimai 5 (Debian 13) does,
#               and meets the target. It quotes mailless's 521 line.
#   nullmailer  relays everything to its remotes and has no local delivery:
#               its DSN to alice goes to mailless too, which rejects it (521),
#               and nullmailer logs "Not generating double bounce"
#
# expect_row MTA SISIMAI_MAJOR -> OUTCOME REASON SOFT (words)
expect_row() {
	case $1 in
	dma)		[ "$2" -ge 5 ] && echo "bounced notaccept 0" || echo "bounced (none) -" ;;
	nullmailer)	echo "relayed - -" ;;
	*)		echo "bounced notaccept 0" ;;
	esac
}

IR_MTAS="postfix exim opensmtpd sendmail courier dma nullmailer"
IR_TARGET_SECS=2
