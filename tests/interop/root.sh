#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# root.sh - the cached Debian root of one MTA for the interop tests: the
# host's Debian suite, with that MTA's package as Debian ships it and what it
# depends on (mmdebstrap installs no Recommends), plus:
#   busybox          a syslogd in the jail
#   passwd           useradd (Debian 13's adduser no longer pulls it in)
#   ca-certificates  on every host that sends mail; OpenSMTPD 7.6 (Debian 13)
#                    does not start without its CA file, and its package does
#                    not depend on it
#
# Usage: tests/interop/root.sh [--rebuild | --check | --path] MTA
#   MTA: postfix exim opensmtpd sendmail courier dma nullmailer
#   The options are tests/debroot.sh's.
#
# Where: MLT_INTEROP_CACHE (default /var/cache/mailless/interop) holds
# SUITE-MTA/ (tests/debroot.sh says what else lies there). The root is never
# written to once built: each run mounts an overlay over it (jail.sh).
# Suite: MLT_INTEROP_SUITE, default the host's (VERSION_CODENAME).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
opt=()
case ${1:-} in -*) opt=("$1"); shift ;; esac
mta=${1:?usage: $0 [--rebuild | --check | --path] MTA}
suite=${MLT_INTEROP_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}
[ -n "$suite" ] || { echo "root.sh: error: no VERSION_CODENAME in /etc/os-release: set MLT_INTEROP_SUITE" >&2; exit 1; }
case $mta in
postfix)	pkgs=(postfix) ;;
exim)		pkgs=(exim4-daemon-light) ;;
opensmtpd)	pkgs=(opensmtpd) ;;
sendmail)	pkgs=(sendmail) ;;
courier)	pkgs=(courier-mta) ;;
dma)		pkgs=(dma) ;;
nullmailer)	pkgs=(nullmailer) ;;
*) echo "root.sh: error: unknown MTA '$mta' (postfix exim opensmtpd sendmail courier dma nullmailer)" >&2; exit 1 ;;
esac
exec bash "$here/../debroot.sh" "${opt[@]}" "${MLT_INTEROP_CACHE:-/var/cache/mailless/interop}" \
	"$suite-$mta" "$suite" "${pkgs[@]}" busybox passwd ca-certificates
