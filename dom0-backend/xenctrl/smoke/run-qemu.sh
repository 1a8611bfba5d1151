#!/bin/bash
# run-qemu.sh - run the xenctrl smoke test (examples/xcsmoke.rs) in Dom0 under a hypervisor
# in QEMU, to check xenctrl against real Xen 4.17 and oxen against Xen.
#
#   dom0-backend/xenctrl/smoke/run-qemu.sh [oxen|xen|PATH-TO-HYPERVISOR-BINARY]
#
# oxen (default) = build/oxen.bin (run `make hypervisor` first); xen = Debian's Xen 4.17
# (xen-hypervisor-4.17-arm64, fetched with `apt-get download` into $OXEN_CACHE/xen like
# qemu/bench.sh does). Dom0 is .cache/dom0/{Image,dom0-initrd.gz} (make dom0) with an extra
# cpio appended: /usr/bin/{xcsmoke,xcinfo} (static musl, built here) and an /init that
# loads the Xen modules, runs both and powers off. Prints the xcsmoke/xcinfo lines; the
# whole serial log is kept in $OUT (default /tmp/xcsmoke-<hyp>.log). Exit status: that of
# xcsmoke (0 = every step passed), 2 if the run did not get that far.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
CACHE=${OXEN_CACHE:-$REPO/.cache}
TGT=${CARGO_TARGET_DIR:-$REPO/target}
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

(cd "$REPO" && cargo build -q -p xenctrl --release --target aarch64-unknown-linux-musl \
    --example xcsmoke --example xcinfo) || die "cargo build of the examples failed"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/xcsmoke.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/ird/usr/bin"
cp "$TGT/aarch64-unknown-linux-musl/release/examples/"{xcsmoke,xcinfo} "$WORK/ird/usr/bin/"
cat > "$WORK/ird/init" <<'INIT'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
for m in xen-evtchn xen-privcmd xen-gntdev xen-gntalloc xenfs; do modprobe $m 2>&1 | tail -n 1; done
mount -t xenfs xenfs /proc/xen
echo XCSMOKE-BEGIN
/usr/bin/xcsmoke
echo "XCSMOKE-RC=$?"
/usr/bin/xcinfo
sync
poweroff -f
while :; do sleep 60; done
INIT
chmod +x "$WORK/ird/init"
(cd "$WORK/ird" && find . | cpio -o -H newc -R 0:0 2>/dev/null | gzip -1) > "$WORK/extra.gz"
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
