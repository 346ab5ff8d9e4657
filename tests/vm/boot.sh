#!/usr/bin/env bash
# Boot a Debian suite's own kernel under qemu TCG with a small initramfs and run a payload.
#
# Usage: tests/vm/boot.sh [--suite SUITE] PAYLOAD_DIR [TIMEOUT_SECS]
#
#   SUITE                     Debian suite whose kernel to boot (default $VM_SUITE, else
#                             bookworm): bullseye (11, 5.10), bookworm (12, 6.1), trixie
#                             (13, 6.12); the kernel is what the suite's linux-image-amd64
#                             depends on, from SUITE, SUITE-updates and SUITE-security
#
#   PAYLOAD_DIR/run.sh        required; run as `sh /payload/run.sh` (cwd /payload) in the VM
#   PAYLOAD_DIR/.hostbins     optional; host binaries (absolute paths, one per line) to copy,
#                             with their shared libraries, to the same paths in the VM
#   PAYLOAD_DIR/.modules      optional; extra kernel modules (names, one per line) to insmod,
#                             in addition to veth; dependencies are resolved automatically
#
# Environment:
#   VM_SUITE       the suite when --suite is not given (default bookworm)
#   VM_CACHE       cache base dir (default /var/cache/mailless/vm as root, else
#                  ${XDG_CACHE_HOME:-~/.cache}/mailless/vm; relative: to the repo top);
#                  each suite has its own $VM_CACHE/SUITE (kernel, apt lists, console log)
#   VM_KERNEL_PKG  force a kernel package name instead of linux-image-amd64's dependency
#   VM_REFRESH=1   update the suite's apt lists and download its kernel again if
#                  linux-image-amd64 now points to another package
#   VM_CPU         qemu -cpu model (default max)
#   VM_APPEND      more kernel command line, e.g. lockdown=confidentiality
#
# Exit: 0 iff the VM printed "VM-RESULT: PASS"; 2 if the kernel, qemu or busybox is missing;
# 1 otherwise. The console is streamed to stdout and saved to $VM_CACHE/SUITE/console.log.
set -euo pipefail

prog=boot
say() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { say "error: $*"; exit 1; }
missing() { say "missing prerequisite: $*"; exit 2; }

usage() { echo "usage: $0 [--suite SUITE] PAYLOAD_DIR [TIMEOUT_SECS]" >&2; exit 1; }
suite=${VM_SUITE:-bookworm}
case ${1:-} in
    --suite) [ $# -ge 2 ] || usage; suite=$2; shift 2;;
    --suite=*) suite=${1#--suite=}; shift;;
    -h|--help) usage;;
esac
[ $# -ge 1 ] && [ $# -le 2 ] || usage
case $suite in
    ''|*[!a-z]*) die "SUITE must be a Debian suite name such as bookworm: $suite";;
esac
payload=$1
timeout_s=${2:-300}
case $timeout_s in ''|*[!0-9]*) die "TIMEOUT_SECS must be a positive integer: $timeout_s";; esac
[ "$timeout_s" -ge 10 ] || die "TIMEOUT_SECS must be at least 10"
[ -d "$payload" ] || die "payload dir not found: $payload"
[ -f "$payload/run.sh" ] || die "payload has no run.sh: $payload"
payload=$(cd "$payload" && pwd)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/../.." && pwd))
# Outside the clone by default, so that a fresh clone (or `make clean`) on a warm machine
# does not download ~60-110 MB again; one directory per suite.
if [ -n "${VM_CACHE:-}" ]; then
    base=$VM_CACHE
elif [ "$(id -u)" = 0 ]; then
    base=/var/cache/mailless/vm
else
    base=${XDG_CACHE_HOME:-$HOME/.cache}/mailless/vm
fi
case $base in /*) ;; *) base=$top/$base;; esac
cache=$base/$suite
mkdir -p "$cache" || die "cannot create the cache dir $cache (set VM_CACHE)"
cache=$(cd "$cache" && pwd)
kdir=$cache/kernel
console_log=$cache/console.log

t_start=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------- prerequisites
qemu=$(command -v qemu-system-x86_64 || true)
[ -n "$qemu" ] || missing "qemu-system-x86_64 (apt-get install -y qemu-system-x86)"
busybox=""
for b in /bin/busybox /usr/bin/busybox; do
    # must be the static one (busybox-static): the VM has no libc for it otherwise
    if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then busybox=$b; break; fi
done
[ -n "$busybox" ] || missing "static busybox (apt-get install -y busybox-static)"
for t in cpio gzip timeout ldd dpkg-deb; do
    command -v "$t" >/dev/null || missing "$t"
done

# ---------------------------------------------------------------- kernel cache
work=$(mktemp -d "${TMPDIR:-/tmp}/boot-$suite.XXXXXX")
cleanup() {
    # timeout(1) runs qemu in its own process group: stop it explicitly (it forwards TERM)
    local pid
    if [ -s "$work/timeout.pid" ]; then
        pid=$(cat "$work/timeout.pid")
        if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; sleep 1; fi
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# apt with a configuration of its own for the suite whose kernel this is: the host's
# sources (whichever Debian it runs) are neither read nor changed. Lists and downloads
# stay under $cache/apt, one set per suite.
apt_dir=$cache/apt
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/parts"
          -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
          -o "Dir::Etc::Preferences=$apt_dir/preferences" -o "Dir::Etc::PreferencesParts=$apt_dir/parts")
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
apt_setup() {
    mkdir -p "$apt_dir/parts" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    {
        echo "deb [signed-by=$keyring] http://deb.debian.org/debian $suite main"
        case $suite in
            sid|unstable|experimental) ;;
            *)  # bullseye and later name the security suite SUITE-security
                echo "deb [signed-by=$keyring] http://deb.debian.org/debian $suite-updates main"
                echo "deb [signed-by=$keyring] http://deb.debian.org/debian-security $suite-security main";;
        esac
    } > "$apt_dir/sources.list"
    : > "$apt_dir/preferences"
    if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then
        chown -R _apt "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" 2>/dev/null || true
    fi
}
apt_update() {
    say "updating the $suite lists under $apt_dir"
    apt-get "${apt_opts[@]}" update -qq >&2 || true   # e.g. a suite without -updates
}

# The concrete image package the suite's linux-image-amd64 depends on (6.1.0-57-amd64 in
# bookworm, 6.12.118+deb13-amd64 in trixie, 5.10.0-46-amd64 in bullseye), signed name
# first, then its -unsigned twin as the fallback. Empty if the lists lack the metapackage.
kernel_candidates() {
    local dep
    dep=$(apt-cache "${apt_opts[@]}" depends linux-image-amd64 2>/dev/null |
          sed -nE 's/^ *Depends: (linux-image-[^ <>]+)$/\1/p' | head -1)
    [ -n "$dep" ] || return 0
    echo "$dep"
    case $dep in *-unsigned) ;; *) echo "$dep-unsigned";; esac
}

# Module dir of release $2 in the extracted package $1: /lib/modules up to bookworm,
# /usr/lib/modules from trixie on (usr-merged packages).
mod_dir() {
    if [ -d "$1/usr/lib/modules/$2" ]; then echo "$1/usr/lib/modules/$2"; else echo "$1/lib/modules/$2"; fi
}

# Download + extract the kernel package into $kdir (vmlinuz, release, module metadata).
fetch_kernel() {
    command -v apt-get >/dev/null && command -v apt-cache >/dev/null ||
        missing "no cached kernel in $kdir and no apt-get to download one"
    [ -r "$keyring" ] ||
        missing "no Debian archive keyring to check the $suite lists with (apt-get install -y debian-archive-keyring)"
    local cands pkg deb="" dl tree try
    apt_setup
    dl=$work/dl
    mkdir -p "$dl"
    # apt drops privileges to _apt for downloads; let it write here to avoid a warning
    if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then
        chmod 755 "$work"; chown _apt "$dl" 2>/dev/null || true
    fi
    # Lists are updated when they lack the metapackage, on VM_REFRESH=1, and once more if
    # the download fails (the security archive drops superseded versions).
    [ "${VM_REFRESH:-0}" = 1 ] && apt_update
    for try in 1 2; do
        if [ -n "${VM_KERNEL_PKG:-}" ]; then
            cands=$VM_KERNEL_PKG
        else
            cands=$(kernel_candidates)
            if [ -z "$cands" ] && [ "$try" = 1 ]; then
                apt_update; cands=$(kernel_candidates)
            fi
        fi
        [ -n "$cands" ] || missing "no linux-image-amd64 in Debian $suite from deb.debian.org (is $suite a suite there?)"
        if [ -s "$kdir/vmlinuz" ] && [ "$(cat "$kdir/package" 2>/dev/null)" = "$(echo "$cands" | head -1)" ]; then
            say "cached kernel $(cat "$kdir/package") $(cat "$kdir/version") is still $suite's newest"
            return 0
        fi
        for pkg in $cands; do
            say "downloading kernel package $pkg ($suite)"
            rm -f "$dl"/*.deb
            if ! (cd "$dl" && apt-get "${apt_opts[@]}" download -q "$pkg" >&2); then
                say "apt-get download $pkg failed"; continue
            fi
            deb=$(ls "$dl"/*.deb 2>/dev/null | head -1)
            [ -n "$deb" ] || continue
            if dpkg-deb -c "$deb" | grep -E '\./boot/vmlinuz-' > /dev/null; then   # no -q: SIGPIPE + pipefail
                break
            fi
            say "$pkg has no /boot/vmlinuz-*; trying the next candidate"
            deb=""
        done
        [ -n "$deb" ] && break
        [ "$try" = 1 ] && apt_update
    done
    [ -n "$deb" ] || missing "could not download $suite's kernel package ($(echo $cands)) with a vmlinuz"

    tree=$work/deb
    dpkg-deb -x "$deb" "$tree"   # extract only; never installed as the host kernel
    local new=$cache/kernel.new.$$ rel
    rm -rf "$new"; mkdir -p "$new/modules"
    cp "$tree"/boot/vmlinuz-* "$new/vmlinuz"
    rel=$(basename "$tree"/boot/vmlinuz-*); rel=${rel#vmlinuz-}
    echo "$rel" > "$new/release"
    echo "$pkg" > "$new/package"
    echo "$suite" > "$new/suite"
    dpkg-deb -f "$deb" Version > "$new/version"
    cp "$(mod_dir "$tree" "$rel")/modules.builtin" "$new/modules.builtin" 2>/dev/null || : > "$new/modules.builtin"
    # keep the .deb so extra modules can be extracted later without the network
    rm -f "$cache"/linux-image-*.deb
    mv "$deb" "$cache/"
    rm -rf "$kdir"; mv "$new" "$kdir"
    say "cached $pkg $(cat "$kdir/version") (kernel $rel) in $kdir"
}

# Extracted module tree of the cached .deb (extracted at most once per run).
module_tree() {
    if [ ! -d "$work/deb/boot" ]; then
        local deb
        deb=$(ls "$cache"/linux-image-*.deb 2>/dev/null | head -1)
        [ -n "$deb" ] || die "module not cached and no kernel .deb in $cache (delete $kdir to re-download)"
        dpkg-deb -x "$deb" "$work/deb"
    fi
    mod_dir "$work/deb" "$(cat "$kdir/release")"
}

mod_depends() {  # print the comma-separated depends= of a .ko file
    local d=""
    if command -v modinfo >/dev/null && d=$(modinfo -F depends "$1" 2>/dev/null); then
        printf '%s\n' "$d"
    else   # no kmod modinfo (busybox's needs modules.dep): read the .modinfo strings
        tr '\0' '\n' < "$1" | sed -n 's/^depends=//p' | head -1
    fi
}

# Make sure module $1 (and its deps) is cached as $kdir/modules/NAME.ko; append the load
# order (dependencies first) to $work/modorder.
resolve_module() {
    local name=${1//-/_} f tree src dep
    grep -qxF "$name" "$work/modseen" 2>/dev/null && return 0
    echo "$name" >> "$work/modseen"
    if grep -qE "/(${name}|${name//_/-})\.ko$" "$kdir/modules.builtin"; then
        return 0   # built into the kernel
    fi
    f=$kdir/modules/$name.ko
    if [ ! -f "$f" ] || [ ! -f "$kdir/modules/$name.deps" ]; then
        tree=$(module_tree)
        src=$(find "$tree" \( -name "$name.ko*" -o -name "${name//_/-}.ko*" \) -print | head -1)
        [ -n "$src" ] || die "kernel module $name not found in $(cat "$kdir/package")"
        case $src in
            *.ko)     cp "$src" "$f.tmp";;
            *.ko.xz)  command -v xz >/dev/null || missing "xz to unpack $name.ko.xz (apt-get install -y xz-utils)"
                      xz -dc "$src" > "$f.tmp";;
            *.ko.zst) command -v zstd >/dev/null || missing "zstd to unpack $name.ko.zst (apt-get install -y zstd)"
                      zstd -qdc "$src" > "$f.tmp";;
            *.ko.gz)  gzip -dc "$src" > "$f.tmp";;
            *) die "unknown module format: $src";;
        esac
        mod_depends "$f.tmp" | tr ',' '\n' | sed '/^$/d' > "$kdir/modules/$name.deps"
        mv "$f.tmp" "$f"
    fi
    while IFS= read -r dep; do resolve_module "$dep"; done < "$kdir/modules/$name.deps"
    echo "$name" >> "$work/modorder"
}

(
    flock 9
    if [ ! -s "$kdir/vmlinuz" ] || [ ! -s "$kdir/release" ] || [ "${VM_REFRESH:-0}" = 1 ] ||
       { [ -n "${VM_KERNEL_PKG:-}" ] && [ "$VM_KERNEL_PKG" != "$(cat "$kdir/package" 2>/dev/null)" ]; }; then
        fetch_kernel
    fi
    : > "$work/modseen"; : > "$work/modorder"
    mods="veth"
    if [ -f "$payload/.modules" ]; then
        mods="$mods $(sed -e 's/#.*//' "$payload/.modules" | tr -s ' \t\n' ' ')"
    fi
    for m in $mods; do resolve_module "$m"; done
) 9> "$cache/.lock"
[ -s "$kdir/vmlinuz" ] || missing "kernel not available in $kdir"
release=$(cat "$kdir/release")
say "kernel: $(cat "$kdir/package") $(cat "$kdir/version") ($release) from $suite"

# ---------------------------------------------------------------- initramfs
root=$work/root
mkdir -p "$root"/usr/bin "$root"/usr/sbin "$root"/usr/lib "$root"/usr/lib64
ln -s usr/bin "$root/bin"; ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"; ln -s usr/lib64 "$root/lib64"
mkdir -p "$root"/{dev,proc,sys,tmp,run,etc,root,mnt,var,modules,payload}
ln -s ../run "$root/var/run"
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true   # the kernel's built-in cpio has one too
mknod -m 666 "$root/dev/null" c 1 3 2>/dev/null || true

cp "$busybox" "$root/usr/bin/busybox"
# Only sh here; /init creates the other applet symlinks with `busybox --install -s`, which
# is much faster than ~400 ln(1) calls and never replaces the host binaries copied below.
ln -s busybox "$root/usr/bin/sh"

printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$root/etc/hosts"

cp -a "$payload/." "$root/payload/"
echo '# sourced before /payload/run.sh: host binaries that shadow busybox applets' > "$root/etc/hostbins.sh"
# what was booted, for payloads that check it (sourced before run.sh too)
printf 'VM_SUITE=%s\nVM_KERNEL_PKG=%s\nVM_KERNEL_VERSION=%s\nVM_KERNEL_RELEASE=%s\n' \
    "$suite" "$(cat "$kdir/package")" "$(cat "$kdir/version")" "$release" > "$root/etc/vm.env"

# copy_host FILE: put FILE (symlinks dereferenced) at the same absolute path in the VM
copy_host() {
    local dst=$root$1
    mkdir -p "$(dirname "$dst")"
    rm -f "$dst"       # may be a busybox applet symlink
    cp -L "$1" "$dst"
}
# copy_libs ELF: copy the shared libraries and the loader that ldd reports for ELF
copy_libs() {
    local out lib
    if ! out=$(ldd "$1" 2>&1); then
        case $out in *"not a dynamic executable"*|*"statically linked"*) return 0;; esac
        die "ldd $1 failed: $out"
    fi
    if printf '%s\n' "$out" | grep -q 'not found'; then
        die "missing shared libraries for $1:"$'\n'"$(printf '%s\n' "$out" | grep 'not found')"
    fi
    printf '%s\n' "$out" | sed -nE 's/.*=> (\/[^ ]+) \(0x.*/\1/p; s/^[[:space:]]*(\/[^ ]+) \(0x.*/\1/p' |
    while IFS= read -r lib; do
        [ -e "$root$lib" ] || copy_host "$lib"
    done
}
is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }

n_elf=0
while IFS= read -r -d '' f; do
    if is_elf "$f"; then copy_libs "$f"; n_elf=$((n_elf + 1)); fi
done < <(find "$payload" -type f -print0)
if [ -f "$payload/.hostbins" ]; then
    while IFS= read -r hb || [ -n "$hb" ]; do
        hb=${hb%%#*}; hb=$(echo "$hb" | tr -d '[:space:]')
        [ -n "$hb" ] || continue
        case $hb in /*) ;; *) die ".hostbins entries must be absolute paths: $hb";; esac
        [ -e "$hb" ] || die "host binary listed in .hostbins not found: $hb"
        copy_host "$hb"
        if is_elf "$hb"; then copy_libs "$hb"; fi
        # Debian's busybox-static ash runs its own applet before searching PATH
        # (FEATURE_SH_STANDALONE), so `ip` would be busybox's ip: shadow it with a function.
        if "$busybox" --list | grep -qxF "$(basename "$hb")"; then
            printf '%s() { %s "$@"; }\n' "$(basename "$hb")" "$hb" >> "$root/etc/hostbins.sh"
        fi
        n_elf=$((n_elf + 1))
    done < "$payload/.hostbins"
fi

while IFS= read -r m; do cp "$kdir/modules/$m.ko" "$root/modules/"; done < "$work/modorder"
cp "$work/modorder" "$root/modules/load.list"

# leave time after the payload's own timeout for the verdict line and poweroff
if [ "$timeout_s" -gt 60 ]; then inner=$((timeout_s - 30)); else inner=$((timeout_s * 2 / 3)); fi

cat > "$root/init" <<EOF
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
/usr/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts 2>/dev/null
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /run/netns
hostname vm-$suite
ip link set lo up
while read -r m; do
    [ -n "\$m" ] || continue
    insmod /modules/\$m.ko || echo "VM-INIT: insmod \$m failed"
done < /modules/load.list
echo; echo "VM-INIT: up after \$(cut -d' ' -f1 /proc/uptime)s, kernel \$(uname -r)"
cd /payload
# = sh /payload/run.sh, with /etc/vm.env exported and the host-binary functions of
# /etc/hostbins.sh defined first
timeout $inner sh -c 'set -a; . /etc/vm.env; set +a; . /etc/hostbins.sh; . "\$0"' /payload/run.sh
rc=\$?
cd /
sync
echo; echo "VM-INIT: payload done after \$(cut -d' ' -f1 /proc/uptime)s"
if [ \$rc -eq 0 ]; then echo "VM-RESULT: PASS"; else echo "VM-RESULT: FAIL rc=\$rc"; fi
poweroff -f
EOF
chmod 755 "$root/init"

initrd=$work/initrd.gz
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) | gzip -1 > "$initrd"
say "initramfs: $(du -k "$initrd" | cut -f1) KiB, $n_elf ELF file(s) with libraries, modules: $(tr '\n' ' ' < "$work/modorder")"
say "built in $(elapsed "$t_start")s; booting (timeout ${timeout_s}s, payload timeout ${inner}s)"

# ---------------------------------------------------------------- boot
t_boot=$(date +%s.%N)
# Run in the background and wait, so that INT/TERM traps fire at once and stop qemu.
set +e
{
    timeout -k 10 "$timeout_s" "$qemu" \
        -accel tcg -cpu "${VM_CPU:-max}" -m 1024 -smp 2 \
        -kernel "$kdir/vmlinuz" -initrd "$initrd" \
        -append "console=ttyS0 panic=-1 quiet${VM_APPEND:+ $VM_APPEND}" \
        -nographic -no-reboot -nic none \
        < /dev/null 2>&1 &
    echo $! > "$work/timeout.pid"
    wait $!
    echo $? > "$work/qemu.rc"
} | tee "$console_log" &
wait $!
set -e
qrc=$(cat "$work/qemu.rc" 2>/dev/null || echo "?")

# the verdict is the first VM-RESULT line after /init's last "payload done" line, so a
# payload that prints "VM-RESULT: PASS" itself cannot fake a pass
verdict=$(tr -d '\r' < "$console_log" |
          awk '/^VM-INIT: payload done/ { d = 1; v = ""; next }
               d && v == "" && /^VM-RESULT: / { v = $0 }
               END { print v }')
say "qemu exited rc=$qrc after $(elapsed "$t_boot")s; total $(elapsed "$t_start")s; console in $console_log"
if [ "$verdict" = "VM-RESULT: PASS" ]; then
    say "PASS"
    exit 0
fi
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    say "FAIL: timed out after ${timeout_s}s"
elif [ -n "$verdict" ]; then
    say "FAIL: payload exited with ${verdict#VM-RESULT: FAIL }"
else
    say "FAIL: no VM-RESULT line (qemu rc=$qrc)"
fi
exit 1
