#!/bin/bash
# run-qemu.sh - check xenctrl (and the toolstack built on it) in a real Dom0 under a
# hypervisor in QEMU: against real Xen 4.17, and oxen against Xen.
#
#   dom0-backend/xenctrl/smoke/run-qemu.sh [--toolstack] [oxen|xen|PATH-TO-HYPERVISOR]
#
# oxen (default) = build/oxen.bin (run `make hypervisor` first); xen = Debian's Xen 4.17
# (xen-hypervisor-4.17-arm64, fetched with `apt-get download` into $OXEN_CACHE/xen like
# qemu/bench.sh does). Dom0 is .cache/dom0/{Image,dom0-initrd.gz} (make dom0) with an extra
# cpio appended (static musl binaries built here) whose /init loads the Xen modules, runs
# the check and powers off:
#   default      /usr/bin/xcsmoke and xcinfo (examples/); exit status = xcsmoke's
#   --toolstack  our xl, xenstored, xenstore(-*), xenconsoled and xencommons (fresh builds,
#                so an old .cache/dom0 does not matter): xencommons start, `xl create
#                /etc/xen/domu.cfg`, xl list, the DomU's console log must show its /init,
#                `xl shutdown -w domu`, the monitor must destroy it; exit 0 if all held
# Prints the Dom0 side of the run; the whole serial log is kept in $OUT (default
# /tmp/xcsmoke-<hyp>.log). Exit status 2 if the run did not get that far.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
CACHE=${OXEN_CACHE:-$REPO/.cache}
TGT=${CARGO_TARGET_DIR:-$REPO/target}
MODE=smoke
[ "${1:-}" = --toolstack ] && { MODE=toolstack; shift; }
HYP=${1:-oxen}
die() { echo "run-qemu: $*" >&2; exit 2; }

case $HYP in
oxen) BIN=$REPO/build/oxen.bin; [ -s "$BIN" ] || die "$BIN missing: run make hypervisor" ;;
xen)
    BIN=$CACHE/xen/root/boot/xen-4.17-arm64
    if [ ! -s "$BIN" ]; then
        mkdir -p "$CACHE/xen"
        (cd "$CACHE/xen" && apt-get download -q xen-hypervisor-4.17-arm64:arm64 >/dev/null 2>&1) ||
            die "could not download xen-hypervisor-4.17-arm64:arm64 (run make setup)"
        dpkg -x "$(ls "$CACHE"/xen/xen-hypervisor-4.17-arm64_*_arm64.deb | head -1)" "$CACHE/xen/root"
    fi ;;
*) BIN=$HYP; [ -s "$BIN" ] || die "$BIN: no such hypervisor binary" ;;
esac
IMAGE=$CACHE/dom0/Image
BASE=$CACHE/dom0/dom0-initrd.gz
[ -s "$IMAGE" ] && [ -s "$BASE" ] || die "$CACHE/dom0 has no Image/dom0-initrd.gz: run make dom0"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/xcsmoke.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
REL=$TGT/aarch64-unknown-linux-musl/release
I=$WORK/ird
mkdir -p "$I/usr/bin" "$I/usr/sbin" "$I/etc/init.d"
# The common start of /init: pseudo filesystems and the Xen modules.
cat > "$I/init" <<'INIT'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs /tmp
[ -e /var/run ] || ln -s ../run /var/run
mkdir -p /var/log/xen/console /var/lib/xen /var/run/xen
for m in xen-evtchn xen-privcmd xen-gntdev xen-gntalloc xenfs; do modprobe $m 2>&1 | tail -n 1; done
mount -t xenfs xenfs /proc/xen
echo XCSMOKE-BEGIN
INIT
if [ $MODE = smoke ]; then
    (cd "$REPO" && cargo build -q -p xenctrl --release --target aarch64-unknown-linux-musl \
        --example xcsmoke --example xcinfo) || die "cargo build of the examples failed"
    cp "$REL/examples/"{xcsmoke,xcinfo} "$I/usr/bin/"
    cat >> "$I/init" <<'INIT'
/usr/bin/xcsmoke
echo "XCSMOKE-RC=$?"
/usr/bin/xcinfo
INIT
else
    (cd "$REPO" && cargo build -q -p oxl -p xenstore -p xenconsoled --release \
        --target aarch64-unknown-linux-musl) || die "cargo build of the toolstack failed"
    cp "$REL/oxl" "$I/usr/sbin/xl"
    cp "$REL/xenstored" "$REL/xenconsoled" "$I/usr/sbin/"
    cp "$REL/xenstore" "$I/usr/bin/"
    for l in read write ls rm exists list watch chmod; do ln -s xenstore "$I/usr/bin/xenstore-$l"; done
    install -m 0755 "$REPO/qemu/dom0/xencommons" "$I/etc/init.d/xencommons"
    cat >> "$I/init" <<'INIT'
fail=0
ck() { if [ "$1" = 0 ]; then echo "toolstack: $2: ok"; else echo "toolstack: $2: FAIL"; fail=1; fi; }
/etc/init.d/xencommons start; ck $? "xencommons start"
timeout 300 xl create /etc/xen/domu.cfg; ck $? "xl create"
xl list; xl list | grep -q '^domu '; ck $? "xl list shows domu"
n=0; until grep -q DOMU-INIT /var/log/xen/console/guest-domu.log 2>/dev/null || [ $n -ge 120 ]; do sleep 1; n=$((n+1)); done
grep -q DOMU-INIT /var/log/xen/console/guest-domu.log; ck $? "DomU /init on its PV console (xenconsoled log)"
xenstore-ls -fp /local/domain/1 | head -n 40
timeout 120 xl shutdown -w domu; ck $? "xl shutdown -w domu"
n=0; while xl list | grep -q '^ *[^ ]* *1 ' && [ $n -lt 30 ]; do sleep 1; n=$((n+1)); done
xl list; ! xl list | grep -q '^ *[^ ]* *1 '; ck $? "domain 1 destroyed by the monitor"
cat /var/log/xen/xl-domu.log
echo "XCSMOKE-RC=$fail"
INIT
fi
cat >> "$I/init" <<'INIT'
sync
poweroff -f
while :; do sleep 60; done
INIT
chmod +x "$I/init"
(cd "$I" && find . | cpio -o -H newc -R 0:0 2>/dev/null | gzip -1) > "$WORK/extra.gz"
cat "$BASE" "$WORK/extra.gz" > "$WORK/initrd.gz"

OUT=${OUT:-/tmp/xcsmoke-$(basename "$HYP").log}
KADDR=$((0x50000000))
IADDR=$(( (KADDR + $(stat -c %s "$IMAGE") + 0x200000 + 0x1fffff) & ~0x1fffff ))
timeout -k 5 "${TIMEOUT:-400}" qemu-system-aarch64 -machine virt,virtualization=on,gic-version=3 \
    -cpu cortex-a72 -smp 2 -m 2048 -nographic -no-reboot -nic none -kernel "$BIN" \
    -append "dom0_mem=512M console=dtuart dtuart=/pl011@9000000 loglvl=all guest_loglvl=all" \
    -device "guest-loader,addr=$(printf '0x%x' $KADDR),kernel=$IMAGE,bootargs=console=hvc0 earlycon=xen rdinit=/init" \
    -device "guest-loader,addr=$(printf '0x%x' $IADDR),initrd=$WORK/initrd.gz" \
    < /dev/null > "$OUT" 2>&1 || true
tr -d '\r' < "$OUT" | sed -n '/^XCSMOKE-BEGIN/,$p' | grep -a -v '^\[\|^(XEN)\|^(oxen)' || true
rc=$(tr -d '\r' < "$OUT" | sed -n 's/^XCSMOKE-RC=//p' | head -n 1)
[ -n "$rc" ] || die "xcsmoke did not run (log: $OUT)"
exit "$rc"
