#!/bin/bash
# build-dom0.sh - build oxen's Dom0 payload from Debian bookworm arm64 packages.
#
#   qemu/build-dom0.sh           # (re)build when an input changed, else print "up to date"
#   qemu/build-dom0.sh --force   # rebuild the initramfs even when the stamp matches
#
# Outputs in $OXEN_CACHE/dom0 (default .cache/dom0 at the repo root):
#   Image           Debian's arm64 Linux kernel (its "vmlinuz" is a raw arm64 Image)
#   dom0-initrd.gz  initramfs (newc cpio, root-owned, gzip): busybox, /init
#                   (qemu/dom0/init.sh), /usr/bin/evtchn-ping, the Xen backend and virtio
#                   modules with their dependencies and a fresh depmod, Debian's e2fsprogs
#                   mke2fs (also as mkfs.ext4/mkfs.ext2) and e2fsck under /usr/sbin with
#                   the glibc libraries they need (busybox's mke2fs makes ext2 only), and
#                   the toolstack
#                   under Xen's names: /usr/sbin/{xl,xenstored,xenconsoled}, /usr/bin/xenstore
#                   and its xenstore-* links, /etc/init.d/xencommons (qemu/dom0/xencommons),
#                   /etc/xen/domu.cfg (qemu/dom0/domu.cfg: the ready DomU, with a disk and
#                   a vif), /etc/xen/domu-plain.cfg (the same DomU without devices) and the
#                   ready DomU under /opt/domu/:
#                   the same kernel Image and domu-initrd.gz
#   domu-initrd.gz  the DomU's initramfs (also inside dom0-initrd.gz): busybox, /init
#                   (qemu/domu/init.sh), the xen-blkfront, xen-netfront, ext4 (with
#                   crc32c_generic, for metadata checksums) and xen-evtchn modules,
#                   /usr/bin/evtchn-ping, /usr/bin/xenstore and its xenstore-* links,
#                   /usr/bin/xs-hostile (a hostile xenstore client; Dom0 has it too)
#   kver            kernel ABI version, e.g. 6.1.0-56-arm64
#   modules.txt     the module files put in the initramfs (dependency closure)
#   manifest.txt    package=version of the Debian packages used
#   tools.txt       the toolstack binaries installed (a missing one is listed as "missing")
#   stamp           hash of every input; outputs are rebuilt only when it changes
# Also kept in $OXEN_CACHE: debs/ (downloaded .deb files), dom0-root/ (unpacked, never
# installed). Needs: apt with the arm64 architecture (qemu/setup.sh), cargo, cpio, gzip,
# depmod. No root needed.
#
# The toolstack crates (oxl, xenstore, xenconsoled) are built as static musl release
# binaries. A crate that fails to build or has no such binary yet is skipped with a
# WARNING line (the image still builds, without that tool); evtchn-ping must build.
#
# Environment: OXEN_CACHE, OXEN_DOM0_KERNEL_PKG (force a linux-image-*-arm64 package),
# OXEN_EVTCHN_PING (use this prebuilt aarch64 evtchn-ping instead of calling cargo),
# OXEN_DOM0_TOOLS (a directory of prebuilt aarch64 oxl, xenstored, xenstore, xenconsoled:
# no cargo call for them), CARGO_TARGET_DIR (where cargo builds; default target/ at the
# repo root).
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CACHE=${OXEN_CACHE:-$REPO/.cache}
DEBS=$CACHE/debs
ROOT=$CACHE/dom0-root
OUT=$CACHE/dom0
INIT=$HERE/dom0/init.sh
DOMU_INIT=$HERE/domu/init.sh
MUSL=aarch64-unknown-linux-musl

# Modules Dom0 loads (their dependencies are added from modules.dep). Built-in drivers
# (CONFIG_...=y in Debian's config, listed in modules.builtin) need nothing and are skipped.
MODULES="xen-evtchn xen-privcmd xen-gntdev xen-gntalloc xenfs xen-blkback xen-netback
         virtio_mmio virtio_pci virtio_blk virtio_net virtio_console loop bridge crc32c_generic ext4"
# The DomU's PV disk and network frontends (Debian builds them as modules), ext4 for an
# ext4 xvda, xen-evtchn for /dev/xen/evtchn (evtchn-ping's DomU end), xen-gntalloc for
# /dev/xen/gntalloc (front-hostile grants its own pages).
DOMU_MODULES="xen-blkfront xen-netfront ext4 crc32c_generic xen-evtchn xen-gntalloc"

FORCE=0
case "${1:-}" in
    --force) FORCE=1 ;;
    "") ;;
    -h|--help) sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-dom0: unknown argument '$1' (use --force or --help)" >&2; exit 2 ;;
esac

log() { echo "build-dom0: $*" >&2; }
die() { echo "build-dom0: error: $*" >&2; exit 1; }

for t in apt-cache apt-get dpkg-deb cpio gzip depmod sha256sum; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found: run 'make setup'"
done

# ---------------------------------------------------------------- packages
# One apt-cache call for everything (each call re-reads the package lists: ~1.5 s).
# Linux: pin the ABI the reference figures were taken with; fall back to the newest
# 6.1 ABI that linux-image-arm64 depends on (old ABIs leave the archive).
KERNEL_PKG=${OXEN_DOM0_KERNEL_PKG:-linux-image-6.1.0-56-arm64}
apt_info() { apt-cache show --no-all-versions "${@/%/:arm64}" 2>/dev/null || true; }
# Debian's mke2fs and e2fsck (ext4; busybox's mke2fs makes ext2 only) and their libraries
E2FS_PKGS="e2fsprogs libext2fs2 libcom-err2 libblkid1 libuuid1 libc6"
# shellcheck disable=SC2086
INFO=$(apt_info busybox-static "$KERNEL_PKG" linux-image-arm64 $E2FS_PKGS)
field() { # package field: that field of the package's record in $INFO
    awk -v p="$1" -v f="$2: " '/^Package: /{cur=$2} cur == p && index($0, f) == 1 {print substr($0, length(f) + 1); exit}' <<<"$INFO"
}
[ -n "$(field busybox-static Version)" ] \
    || die "apt knows no arm64 packages (busybox-static:arm64): run 'make setup'"
if [ -z "$(field "$KERNEL_PKG" Version)" ]; then
    alt=$(field linux-image-arm64 Depends | sed -n 's/^\(linux-image-6\.1\.0-[0-9]*-arm64\)\( .*\)\{0,1\}$/\1/p')
    [ -n "$alt" ] || die "no linux-image-6.1.0-*-arm64 package known to apt: run 'make setup'"
    log "WARNING: $KERNEL_PKG not available, using $alt"
    KERNEL_PKG=$alt
    INFO+=$'\n'$(apt_info "$KERNEL_PKG")
fi
KVER=${KERNEL_PKG#linux-image-}
# shellcheck disable=SC2206
PKGS=("$KERNEL_PKG" busybox-static $E2FS_PKGS)

# the .deb of PKG at VERSION in $DEBS, if present
have_deb() {
    local f
    for f in "$DEBS/$1"_*_arm64.deb; do
        [ -e "$f" ] || continue
        [ "$(dpkg-deb -f "$f" Version)" = "$2" ] && { echo "$f"; return 0; }
    done
    return 1
}

mkdir -p "$DEBS" "$ROOT" "$OUT"
MANIFEST=""
NEW_DEBS=0
for p in "${PKGS[@]}"; do
    v=$(field "$p" Version)
    [ -n "$v" ] || die "apt has no candidate for $p:arm64: run 'make setup'"
    if ! deb=$(have_deb "$p" "$v"); then
        log "downloading $p:arm64=$v"
        tmp=$(mktemp -d "$DEBS/.dl.XXXXXX")
        # apt-get warns that it downloads unsandboxed as root: harmless, filter it
        (cd "$tmp" && apt-get download -q "$p:arm64=$v" 2>&1 | grep -v 'unsandboxed' >&2) || true
        mv "$tmp"/*.deb "$DEBS/" 2>/dev/null || true
        rm -rf "$tmp"
        deb=$(have_deb "$p" "$v") || die "could not download $p:arm64=$v (network? run 'make setup')"
        NEW_DEBS=1
    fi
    MANIFEST+="$p=$v"$'\n'
    stamp="$ROOT/.unpacked/$(basename "$deb")"
    if [ ! -e "$stamp" ]; then
        log "unpacking $(basename "$deb")"
        dpkg-deb -x "$deb" "$ROOT"
        mkdir -p "$ROOT/.unpacked"; touch "$stamp"
        NEW_DEBS=1
    fi
done

MODDIR=$ROOT/lib/modules/$KVER
[ -f "$ROOT/boot/vmlinuz-$KVER" ] || die "$ROOT/boot/vmlinuz-$KVER missing after unpacking $KERNEL_PKG"
[ -x "$ROOT/bin/busybox" ] || die "$ROOT/bin/busybox missing after unpacking busybox-static"
[ -x "$ROOT/sbin/mke2fs" ] || die "$ROOT/sbin/mke2fs missing after unpacking e2fsprogs"
if [ $NEW_DEBS = 1 ] || [ ! -s "$MODDIR/modules.dep" ]; then
    log "depmod $KVER (unpacked tree)"
    depmod -b "$ROOT" "$KVER"
fi

# ---------------------------------------------------------------- Dom0 programs
TDIR=${CARGO_TARGET_DIR:-$REPO/target}/$MUSL/release
if [ -n "${OXEN_EVTCHN_PING:-}" ]; then
    PING=$OXEN_EVTCHN_PING
    [ -f "$PING" ] || die "OXEN_EVTCHN_PING=$PING does not exist"
else
    command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust, then 'make setup')"
    log "cargo build -p evtchn-ping --release --target $MUSL"
    (cd "$REPO" && cargo build -q -p evtchn-ping --release --target "$MUSL") \
        || die "building evtchn-ping failed (is the $MUSL target installed? run 'make setup')"
    PING=$TDIR/evtchn-ping
    [ -f "$PING" ] || die "cargo did not produce $PING"
fi

# The toolstack: "crate binary installed-path" (Xen's names). A crate that does not build
# (or has no such binary yet) is skipped with a warning: the image builds without it.
TOOLS="oxl oxl /usr/sbin/xl
xenstore xenstored /usr/sbin/xenstored
xenstore xenstore /usr/bin/xenstore
xenstore xs-hostile /usr/bin/xs-hostile
front-hostile front-hostile /usr/bin/front-hostile
xenconsoled xenconsoled /usr/sbin/xenconsoled"
# Links to /usr/bin/xenstore (it acts by argv[0]), in Dom0 and in the DomU.
XS_LINKS="xenstore-read xenstore-write xenstore-ls xenstore-rm xenstore-exists xenstore-list
          xenstore-watch xenstore-chmod"
if [ -n "${OXEN_DOM0_TOOLS:-}" ]; then
    [ -d "$OXEN_DOM0_TOOLS" ] || die "OXEN_DOM0_TOOLS=$OXEN_DOM0_TOOLS is not a directory"
    BINDIR=$OXEN_DOM0_TOOLS
else
    BINDIR=$TDIR
    for crate in $(echo "$TOOLS" | cut -d' ' -f1 | sort -u); do
        log "cargo build -p $crate --release --target $MUSL"
        if ! out=$(cd "$REPO" && cargo build -q -p "$crate" --release --target "$MUSL" 2>&1); then
            log "WARNING: building $crate failed, its tools are left out of the image: $(echo "$out" | grep -m1 -E '^error' || echo "$out" | tail -n 1)"
            # a binary from an earlier build would not match the sources: never use it
            BROKEN="${BROKEN:-} $crate"
        fi
    done
fi
TOOL_LIST="" # "binary-path installed-path" of each tool that exists
TOOLS_TXT=""
while read -r crate bin dest; do
    src=$BINDIR/$bin
    case " ${BROKEN:-} " in *" $crate "*) src=;; esac
    if [ -n "$src" ] && [ -f "$src" ]; then
        TOOL_LIST+="$src $dest"$'\n'
        TOOLS_TXT+="$dest $bin"$'\n'
    else
        log "WARNING: no $bin binary (crate $crate): $dest left out of the image"
        TOOLS_TXT+="$dest missing"$'\n'
    fi
done <<<"$TOOLS"

# ---------------------------------------------------------------- module closure
# Resolve names to module files and their dependencies via modules.dep, depth first.
# Prints one path (relative to $MODDIR) per line; built-in modules print nothing.
resolve_modules() {
    local todo=("$@") seen=" " m rx line path dep
    while [ ${#todo[@]} -gt 0 ]; do
        m=${todo[0]}; todo=("${todo[@]:1}")
        rx=${m//[-_]/[-_]}
        line=$(grep -E "(^|/)${rx}\.ko(\.[a-z]+)?:" "$MODDIR/modules.dep" | head -1 || true)
        if [ -z "$line" ]; then
            if grep -qE "(^|/)${rx}\.ko$" "$MODDIR/modules.builtin"; then
                log "module $m is built into the kernel"
                continue
            fi
            die "module $m not found in $KVER (neither in modules.dep nor modules.builtin)"
        fi
        path=${line%%:*}
        case "$seen" in *" $path "*) continue;; esac
        seen="$seen$path "
        echo "$path"
        for dep in ${line#*:}; do todo+=("$(basename "${dep%%.ko*}")"); done
    done
}
# shellcheck disable=SC2086 # word splitting of the module list is intended
MODFILES=$(resolve_modules $MODULES)
# shellcheck disable=SC2086
DOMU_MODFILES=$(resolve_modules $DOMU_MODULES)

# ---------------------------------------------------------------- up to date?
STAMP=$(
    {
        echo "kver=$KVER"
        printf '%s' "$MANIFEST"
        echo "modules=$MODULES"
        echo "$MODFILES"
        echo "domu-modules=$DOMU_MODULES"
        echo "$DOMU_MODFILES"
        sha256sum "$0" "$INIT" "$PING" | cut -d' ' -f1
        printf '%s' "$TOOLS_TXT"
        printf '%s' "$TOOL_LIST" | while read -r src _; do sha256sum "$src" | cut -d' ' -f1; done
        find "$HERE/dom0" "$HERE/domu" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | cut -d' ' -f1
    } | sha256sum | cut -d' ' -f1
)
if [ $FORCE = 0 ] && [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$STAMP" ] &&
   [ -s "$OUT/Image" ] && [ -s "$OUT/dom0-initrd.gz" ] && [ -s "$OUT/domu-initrd.gz" ] &&
   [ -s "$OUT/kver" ]; then
    log "up to date: $OUT (kernel $KVER)"
    exit 0
fi

# ---------------------------------------------------------------- initramfs
WORK=$(mktemp -d "$OUT/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# install_bin SRC DEST: an aarch64 binary without its debug info (the release profile
# keeps it for the host), mode 0755
if command -v aarch64-linux-gnu-objcopy >/dev/null 2>&1; then
    install_bin() { aarch64-linux-gnu-objcopy --strip-all "$1" "$2" && chmod 0755 "$2"; }
else
    log "aarch64-linux-gnu-objcopy not found (binutils-aarch64-linux-gnu): binaries kept unstripped"
    install_bin() { install -m 0755 "$1" "$2"; }
fi

# busybox_root DIR INIT: the skeleton both initramfs share: busybox (the rest of the
# applets: `busybox --install -s` in /init), /init, root's passwd entry
busybox_root() {
    mkdir -p "$1"/{bin,sbin,usr/bin,usr/sbin,lib,etc,proc,sys,dev,run,tmp,mnt,root,var/log}
    ln -s ../run "$1/var/run"
    cp "$ROOT/bin/busybox" "$1/bin/busybox"
    ln -s busybox "$1/bin/sh"
    printf 'root:x:0:0:root:/root:/bin/sh\n' > "$1/etc/passwd"
    printf 'root:x:0:\n' > "$1/etc/group"
    install -m 0755 "$2" "$1/init"
}

# xenstore_links DIR: the xenstore-* names of DIR/usr/bin/xenstore, if that exists
xenstore_links() {
    [ -e "$1/usr/bin/xenstore" ] || return 0
    local l
    for l in $XS_LINKS; do ln -s xenstore "$1/usr/bin/$l"; done
}

# cpio_gz DIR OUT: DIR as a root-owned newc cpio, gzipped reproducibly
cpio_gz() {
    (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
        | gzip -9 -n > "$2"
}

# The DomU: busybox, /init, the xenstore tool. Its kernel is the same Image (Xen's
# drivers DomU needs -- hvc0, xenbus, /dev/xen/xenbus -- are built into Debian's kernel).
U=$WORK/domu
busybox_root "$U" "$DOMU_INIT"
XS_SRC=$(printf '%s' "$TOOL_LIST" | awk '$2 == "/usr/bin/xenstore" {print $1}')
[ -z "$XS_SRC" ] || install_bin "$XS_SRC" "$U/usr/bin/xenstore"
# xs-hostile: the hostile xenstore client the DomU's `hostile` scenario runs
XSH_SRC=$(printf '%s' "$TOOL_LIST" | awk '$2 == "/usr/bin/xs-hostile" {print $1}')
[ -z "$XSH_SRC" ] || install_bin "$XSH_SRC" "$U/usr/bin/xs-hostile"
# front-hostile: a hostile blkif/netif frontend (dom0-backend/front-hostile), DomU only
FH_SRC=$(printf '%s' "$TOOL_LIST" | awk '$2 == "/usr/bin/front-hostile" {print $1}')
[ -z "$FH_SRC" ] || install_bin "$FH_SRC" "$U/usr/bin/front-hostile"
xenstore_links "$U"
# evtchn-ping: the DomU end of the Dom0<->DomU event-channel round trip (--serve)
install_bin "$PING" "$U/usr/bin/evtchn-ping"
# copy_modules ROOT FILES...: the module files (paths relative to $MODDIR) and a fresh depmod
copy_modules() {
    local r=$1 path
    shift
    for path in "$@"; do
        mkdir -p "$r/lib/modules/$KVER/$(dirname "$path")"
        cp "$MODDIR/$path" "$r/lib/modules/$KVER/$path"
    done
    for f in modules.order modules.builtin modules.builtin.modinfo; do
        [ -e "$MODDIR/$f" ] && cp "$MODDIR/$f" "$r/lib/modules/$KVER/"
    done
    depmod -b "$r" "$KVER"
}
# shellcheck disable=SC2086
copy_modules "$U" $DOMU_MODFILES
cpio_gz "$U" "$WORK/domu-initrd.gz"

# Dom0
D=$WORK/root
busybox_root "$D" "$INIT"
install_bin "$PING" "$D/usr/bin/evtchn-ping"
# Debian's mke2fs/e2fsck (dynamic, glibc) with their libraries and the loader; glibc finds
# them in its default /lib/aarch64-linux-gnu without an ld.so.cache. /usr/sbin comes before
# busybox's /sbin applets in both PATHs.
for b in mke2fs e2fsck; do cp -a "$ROOT/sbin/$b" "$D/usr/sbin/$b"; done
ln -s mke2fs "$D/usr/sbin/mkfs.ext4"
ln -s mke2fs "$D/usr/sbin/mkfs.ext2"
[ -e "$ROOT/etc/mke2fs.conf" ] && cp "$ROOT/etc/mke2fs.conf" "$D/etc/mke2fs.conf"
mkdir -p "$D/lib/aarch64-linux-gnu"
for l in ld-linux-aarch64.so.1 libc.so.6 libext2fs.so.2 libe2p.so.2 libcom_err.so.2 \
         libblkid.so.1 libuuid.so.1; do
    f=$ROOT/lib/aarch64-linux-gnu/$l
    [ -e "$f" ] || f=$ROOT/usr/lib/aarch64-linux-gnu/$l
    [ -e "$f" ] || die "$l not found in the unpacked e2fsprogs/libc6 packages"
    cp -L "$f" "$D/lib/aarch64-linux-gnu/$l"
done
ln -s aarch64-linux-gnu/ld-linux-aarch64.so.1 "$D/lib/ld-linux-aarch64.so.1"
if command -v aarch64-linux-gnu-objdump >/dev/null 2>&1; then
    for b in mke2fs e2fsck; do
        for n in $(aarch64-linux-gnu-objdump -p "$D/usr/sbin/$b" | awk '$1 == "NEEDED" {print $2}'); do
            [ -e "$D/lib/aarch64-linux-gnu/$n" ] || die "$b needs $n, which build-dom0.sh does not copy: add it to the library list"
        done
    done
fi
printf '%s' "$TOOL_LIST" | while read -r src dest; do install_bin "$src" "$D$dest"; done
xenstore_links "$D"
mkdir -p "$D"/etc/{init.d,xen} "$D"/var/lib/xen "$D"/var/log/xen/console "$D"/opt/domu
install -m 0755 "$HERE/dom0/xencommons" "$D/etc/init.d/xencommons"
install -m 0644 "$HERE/dom0/domu.cfg" "$D/etc/xen/domu.cfg"
install -m 0644 "$HERE/dom0/domu-plain.cfg" "$D/etc/xen/domu-plain.cfg"
cp "$ROOT/boot/vmlinuz-$KVER" "$D/opt/domu/Image"
cp "$WORK/domu-initrd.gz" "$D/opt/domu/domu-initrd.gz"

# shellcheck disable=SC2086
copy_modules "$D" $MODFILES

cpio_gz "$D" "$WORK/dom0-initrd.gz"
cp "$ROOT/boot/vmlinuz-$KVER" "$WORK/Image"
echo "$KVER" > "$WORK/kver"
echo "$MODFILES" > "$WORK/modules.txt"
printf '%s' "$MANIFEST" > "$WORK/manifest.txt"
printf '%s' "$TOOLS_TXT" > "$WORK/tools.txt"

# publish: outputs first, the stamp last (an interrupted build is redone next time)
rm -f "$OUT/stamp"
for f in Image dom0-initrd.gz domu-initrd.gz kver modules.txt manifest.txt tools.txt; do
    mv -f "$WORK/$f" "$OUT/$f"
done
echo "$STAMP" > "$OUT/stamp"
log "built $OUT: Image $(stat -c %s "$OUT/Image") bytes, dom0-initrd.gz $(stat -c %s "$OUT/dom0-initrd.gz") bytes, domu-initrd.gz $(stat -c %s "$OUT/domu-initrd.gz") bytes, kernel $KVER, $(echo "$MODFILES" | wc -l) modules, tools: $(printf '%s' "$TOOLS_TXT" | awk '$2 != "missing" {printf "%s%s", s, $1; s=" "}')"
