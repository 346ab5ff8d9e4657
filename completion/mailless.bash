# SPDX-License-Identifier: GPL-2.0
# bash completion for mailless(8). The options of run and check, and the
# values of those that take one of a few words, come from `mailless options`
# (the program's own table), so this file never lists them itself.

_mailless_options() {
	# key, when, default, flag, value: one line each, "-" for none
	"${COMP_WORDS[0]}" options 2>/dev/null
}

_mailless() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	local cmd=${COMP_WORDS[1]:-} key when def flag val words="" line

	if [ "$COMP_CWORD" -eq 1 ]; then
		mapfile -t COMPREPLY < <(compgen -W "run check status stats unload options help --help --version" -- "$cur")
		return
	fi
	case $cmd in
	run | check)
		# The value of the option before, when it takes one.
		while IFS=$'\t' read -r key when def flag val; do
			if [ "$val" != - ] && { [ "$prev" = "--$key" ] ||
				{ [ "$flag" != - ] && [ "$prev" = "-$flag" ]; }; }; then
				case $val in
				FILE | PATH) mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
				DIR) mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;
				IFACE*) mapfile -t COMPREPLY < <(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur") ;;
				*"|"*) mapfile -t COMPREPLY < <(compgen -W "${val//|/ }" -- "$cur") ;;
				*) COMPREPLY=() ;;
				esac
				return
			fi
			words+=" --$key"
			[ "$flag" != - ] && words+=" -$flag"
		done < <(_mailless_options)
		;;
	status) words="--pin-dir -j --json --help" ;;
	stats) words="--pin-dir -j --json --prometheus --watch --help" ;;
	unload) words="--pin-dir --help" ;;
	options) words="--man --man-conf --man-metrics --conf --help" ;;
	*) return ;;
	esac
	if [ "$prev" = --pin-dir ]; then
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		return
	fi
	mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
}
complete -F _mailless mailless
