#!/bin/bash
# run-domu.sh - check our xenstored and xenstore tool against real Xen 4.17 and Debian's
# real toolstack (libxl/xl, xenconsoled, hotplug scripts) and Linux 6.1 Dom0/DomU kernels.
#
#   dom0-backend/xenstore/xenref/run-domu.sh [SCENARIO]     (default: domu)
#
# Copies the reference harness (/work/shared/reference, or $REF_SRC) to $WORK (default
# /tmp/xenstore-xenref; never writes in the shared folder), reuses an already fetched
# package cache ($REF_CACHE_SRC/root, hard-linked) or runs its fetch.sh, builds static
# aarch64 xenstored + xenstore, installs them over Debian's C xenstored and
# /usr/bin/xenstore in the Dom0 initramfs (the tool in the DomU's too), and runs `run.sh SCENARIO` with
# ref_xenstored=xenstored (REF_SMP defaults to 1: two emulated vCPUs on a loaded 2-core
# host stall Dom0's RCU in TCG). Checks: status=completed, xl create/destroy rc 0, and
# that `xenstore-ls -fp` of the running DomU lists the same nodes with the same
# permissions as Xen's sample (oxenstored), ignoring uuids and values.
# Exit 0 if all held, 1 if a check failed, 2 if the run could not be set up.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
SRC=${REF_SRC:-/work/shared/reference}
WORK=${WORK:-/tmp/xenstore-xenref}
SCEN=${1:-domu}
TGT=${CARGO_TARGET_DIR:-$REPO/target}
die() { echo "run-domu: $*" >&2; exit 2; }

[ -d "$SRC" ] || die "$SRC: no reference harness"
mkdir -p "$WORK/.cache"
for f in build-rootfs.sh fetch.sh run.sh summary.sh; do install -m 0755 "$SRC/$f" "$WORK/$f"; done
rm -rf "$WORK/guest"; cp -r "$SRC/guest" "$WORK/guest"; chmod -R u+w "$WORK/guest"
if [ ! -d "$WORK/.cache/root" ]; then
    if [ -n "${REF_CACHE_SRC:-}" ] && [ -d "$REF_CACHE_SRC/root" ]; then
        cp -al "$REF_CACHE_SRC/root" "$WORK/.cache/root"
        cp "$REF_CACHE_SRC/kver" "$REF_CACHE_SRC/manifest.txt" "$WORK/.cache/"
    else
        (cd "$WORK" && ./fetch.sh) || die "fetch.sh failed"
    fi
fi
# Install our binaries over Debian's (same paths, so the harness's scripts run them).
grep -q OXEN_XENSTORED "$WORK/build-rootfs.sh" || sed -i '/^put "\$D0" usr\/bin\/xenstore$/a\
[ -n "${OXEN_XENSTORED:-}" ] \&\& install -m 0755 "$OXEN_XENSTORED" "$D0/$XB/xenstored"\
[ -n "${OXEN_XENSTORE_TOOL:-}" ] \&\& install -m 0755 "$OXEN_XENSTORE_TOOL" "$D0/usr/bin/xenstore"' "$WORK/build-rootfs.sh"
grep -q 'OXEN_XENSTORE_TOOL" "$DU' "$WORK/build-rootfs.sh" || sed -i '/^put "\$DU" usr\/bin\/xenstore$/a\
[ -n "${OXEN_XENSTORE_TOOL:-}" ] \&\& install -m 0755 "$OXEN_XENSTORE_TOOL" "$DU/usr/bin/xenstore"' "$WORK/build-rootfs.sh"
grep -q OXEN_XENSTORED "$WORK/build-rootfs.sh" || die "could not patch build-rootfs.sh"
grep -q 'OXEN_XENSTORE_TOOL" "$DU' "$WORK/build-rootfs.sh" || die "could not patch build-rootfs.sh (DomU)"

(cd "$REPO" && cargo build -q -p xenstore --release --target aarch64-unknown-linux-musl) || die "build failed"
BIN=$TGT/aarch64-unknown-linux-musl/release
aarch64-linux-gnu-strip -o "$WORK/xenstored" "$BIN/xenstored"
aarch64-linux-gnu-strip -o "$WORK/xenstore" "$BIN/xenstore"
(cd "$WORK" && OXEN_XENSTORED="$WORK/xenstored" OXEN_XENSTORE_TOOL="$WORK/xenstore" ./build-rootfs.sh) >/dev/null 2>&1 ||
    die "build-rootfs.sh failed"

OUT=$WORK/out/$SCEN-$(date +%Y%m%d-%H%M%S)
mkdir -p "$WORK/out"
(cd "$WORK" && REF_SMP=${REF_SMP:-1} REF_XENSTORED=xenstored REF_OUT="$OUT" ./run.sh "$SCEN") > "$OUT.txt" 2>&1 || true
grep -E '^REF: (xenstored|xl_create_rc|xl_destroy_rc|xl_create_s|xl_destroy_s|create_to_domu_ready_s|xenstore_nodes|status|domu_xenstore_read_us|dom0_xenstore_read_us)=|^REF-XS-AFTER|^REF-XL-AFTER' "$OUT.txt" || true
fail=0
check() { tr -d '\r' < "$OUT.txt" | grep -q "^REF: $1\$" || { echo "run-domu: FAIL: no 'REF: $1' (see $OUT.txt, $OUT/serial.log)"; fail=1; }; }
check status=completed
if [ "$SCEN" = evtchn ]; then
    # the DomU's xenstore-read (our tool over /dev/xen/xenbus, relative paths) worked
    tr -d '\r' < "$OUT.txt" | grep -q '^REF-DOMU: domu_xenstore_read_us=[0-9]' ||
        { echo "run-domu: FAIL: no domu_xenstore_read_us"; fail=1; }
fi
if [ "$SCEN" = domu ] || [ "$SCEN" = io ]; then
    check xl_create_rc=0
    check xl_destroy_rc=0
    norm() { grep -v '^/@' | sed -e 's/ = ".*"   / = V   /' -e 's/[0-9a-f]\{8\}-[0-9a-f-]\{27\}/UUID/'; }
    if diff <(norm < "$SRC/samples/domu/xenstore-ls-fp.txt") <(norm < "$OUT/files/xenstore-ls-fp.txt"); then
        echo "run-domu: xenstore-ls -fp: same nodes, order and permissions as Xen's sample"
    else
        echo "run-domu: FAIL: xenstore-ls -fp differs from Xen's sample (diff above)"; fail=1
    fi
fi
echo "run-domu: output $OUT.txt, serial log $OUT/serial.log"
exit $fail
