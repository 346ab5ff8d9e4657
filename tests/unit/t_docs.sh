#!/bin/bash
# The documentation in step with the option table (user/options.c): README's
# table of keys names exactly the keys `mailless options` lists, and every
# command of `mailless --help` is in README. No root: it only runs the
# binary's printing commands.
# mlt-root: no
# mlt-timeout: 30
top=$(cd "$(dirname "$0")/../.." && pwd)
MAILLESS=${MAILLESS:-$top/mailless}
rc=0
ok()   { echo "ok - docs: $1"; }
fail() { echo "not ok - docs: $1: $2"; rc=1; }

if ! keys=$("$MAILLESS" options); then
	fail "mailless options runs" "$MAILLESS options failed (make mailless)"
	exit 1
fi
file_keys=$(awk -F'\t' '$2 != "cli" { print $1 }' <<<"$keys" | sort)
# README's rows: | `-l`, `listen` | ... or | `allow-file`, `deny-file` | ...
readme_keys=$(sed -n '/^| option \/ key |/,/^$/p' "$top/README.md" | sed -n '3,$p' |
	cut -d'|' -f2 | grep -o '`[a-z0-9-]*`' | tr -d '`' | grep -v '^-' | sort)
if [ "$file_keys" = "$readme_keys" ]; then
	ok "README's table of keys is the option table's ($(wc -l <<<"$file_keys") keys)"
else
	fail "README's table of keys is the option table's" \
		"$(diff <(echo "$file_keys") <(echo "$readme_keys") | grep '^[<>]' | tr '\n' ' ')(< only in the table, > only in README)"
fi
missing=""
for cmd in $("$MAILLESS" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }'); do
	grep -q "mailless $cmd" "$top/README.md" || missing+=" $cmd"
done
[ -z "$missing" ] && ok "README shows every command of mailless --help" ||
	fail "README shows every command of mailless --help" "missing:$missing"
exit $rc
