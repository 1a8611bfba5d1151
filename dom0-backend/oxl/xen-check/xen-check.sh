#!/bin/bash
# xen-check.sh [scenario...] - run oxl on the real Xen 4.17 of ../../../../shared/reference
# (Debian's xen-hypervisor-4.17 + Linux 6.1 in QEMU) and check what it does.
#
# Scenarios (scenarios.sh): basic (create -c, list/-v/-l, vcpu-list, info, xenstore tree,
# pause, destroy, errors), restart (the monitor's on_reboot=restart / on_poweroff=destroy),
# affinity (cpus=, weight=, cap=). Default: all three.
#
# Needs a built reference cache (fetch.sh + build-rootfs.sh): REF_CACHE=<dir with
# build/{xen,Image,dom0-initrd.gz}> (default /tmp/xenref/.cache, else the reference's own).
# Builds oxl (static musl release) unless OXL=<aarch64 binary> is given. Work files go to
# $WORK (default /tmp/oxl-xen-check). Prints one `ok`/`FAILED` line per check and exits
# non-zero if any failed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
REF=${REF_DIR:-$REPO/../shared/reference}
CACHE=${REF_CACHE:-/tmp/xenref/.cache}
[ -f "$CACHE/build/dom0-initrd.gz" ] || CACHE=$REF/.cache
WORK=${WORK:-/tmp/oxl-xen-check}
SCENARIOS=${*:-basic restart affinity}

for f in xen Image dom0-initrd.gz; do
    [ -f "$CACHE/build/$f" ] || { echo "xen-check: missing $CACHE/build/$f: run the reference's fetch.sh and build-rootfs.sh (or set REF_CACHE)" >&2; exit 1; }
done
if [ -z "${OXL:-}" ]; then
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/tgt-oxl}
    (cd "$REPO" && cargo build -q -p oxl --release --target aarch64-unknown-linux-musl)
    OXL=$CARGO_TARGET_DIR/aarch64-unknown-linux-musl/release/oxl
fi

# The reference's run.sh with our scenarios allowed, and a Dom0 initramfs with oxl in it.
rm -rf "$WORK"; mkdir -p "$WORK/.cache/build" "$WORK/d0"
cp "$REF/run.sh" "$WORK/"
sed -i 's/^case \$SCEN in boot|domu|io|evtchn|shell) ;;/case $SCEN in boot|domu|io|evtchn|shell|oxl_*) ;;/' "$WORK/run.sh"
cp "$CACHE/build/xen" "$CACHE/build/Image" "$WORK/.cache/build/"
(cd "$WORK/d0" && zcat "$CACHE/build/dom0-initrd.gz" | cpio -id --quiet)
if command -v aarch64-linux-gnu-strip >/dev/null; then
    aarch64-linux-gnu-strip -o "$WORK/d0/usr/sbin/oxl" "$OXL"
else
    cp "$OXL" "$WORK/d0/usr/sbin/oxl"
fi
cp "$HERE/scenarios.sh" "$WORK/d0/etc/oxl-scenarios.sh"
sed -i 's/^case \$SCEN in$/case $SCEN in\n    oxl_*)\n        dom0_setup\n        . \/etc\/oxl-scenarios.sh\n        "run_$SCEN" || true\n        ;;/' "$WORK/d0/init"
grep -q 'oxl-scenarios' "$WORK/d0/init" || { echo "xen-check: could not hook the reference /init" >&2; exit 1; }
(cd "$WORK/d0" && find . | cpio -o -H newc --quiet | gzip -1 > "$WORK/.cache/build/dom0-initrd.gz")

FAILED=0
check() { # name pattern file
    if tr -d '\r' < "$3" | grep -a -q -- "$2"; then echo "ok      $1"; else echo "FAILED  $1 (no line matching '$2')"; FAILED=1; fi
}
check_not() { # name pattern file
    if tr -d '\r' < "$3" | grep -a -q -- "$2"; then echo "FAILED  $1 (line matching '$2')"; FAILED=1; else echo "ok      $1"; fi
}

for s in $SCENARIOS; do
    out=$WORK/out-$s
    echo "xen-check: scenario $s (serial log: $out/serial.log)"
    (cd "$WORK" && REF_CACHE=$WORK/.cache REF_OUT=$out REF_TIMEOUT=${REF_TIMEOUT:-900} ./run.sh "oxl_$s" > "$WORK/run-$s.txt" 2>&1) || true
    L=$out/serial.log
    [ -f "$L" ] || { echo "FAILED  $s: no serial log"; FAILED=1; continue; }
    case $s in
    basic)
        check "create succeeds" 'REF: oxl_create_rc=0' "$L"
        check "create -c shows the DomU console" 'REF-CONSOLE-INIT: [1-9]' "$L"
        check "DomU reaches /init" 'REF: domu_init=ok' "$L"
        check "xl list line" 'REF-LIST: domu                                         1   256     1     ' "$L"
        check "Debian's xl sees it" 'REF-XL-LIST: domu                                         1   256     1' "$L"
        check "list -l JSON" 'REF-LISTL:                 "target_memkb": 262144,' "$L"
        check "xl info" 'REF-INFO: xen_version            : 4.17' "$L"
        check "xl info <name>" 'REF-INFO1: 4.17' "$L"
        check "domid" 'REF-DOMID: 1$' "$L"
        check "domname" 'REF-DOMNAME: domu' "$L"
        check "store ring node" 'REF-XS: /local/domain/1/store/ring-ref = "233473"   (n0,r1)' "$L"
        check "console tty from xenconsoled" 'REF-XS: /local/domain/1/console/tty = "/dev/pts/' "$L"
        check "guest-owned control/shutdown" 'REF-XS: /local/domain/1/control/shutdown = ""   (n1)' "$L"
        check "pause" 'REF-PAUSED: domu .*--p---' "$L"
        check "destroy" 'REF: oxl_destroy_rc=0' "$L"
        check_not "nothing left in xenstore" 'REF-XS-LEFT:' "$L"
        check_not "nothing left in /var/lib/xen" 'REF-LIB-LEFT:' "$L"
        check "monitor saw the end" 'REF-MONITOR: Domain 1 has been destroyed.' "$L"
        check "bad key error" 'REF-ERR: /tmp/bad.cfg:1: unknown key "memroy"' "$L"
        check "memory refused" 'REF-ERR: xl: creating domain "domu": not enough free memory' "$L"
        check "missing kernel" 'REF-ERR: xl: creating domain "domu": kernel /nope: No such file or directory' "$L"
        check "unknown domain" 'REF-ERR: 7 is an invalid domain identifier (rc=-6)' "$L"
        ;;
    restart)
        check "first boot" 'REF: domu1_init=ok' "$L"
        check "reboot restarts it" 'REF-MONITOR: Action for shutdown reason code 1 is restart' "$L"
        check "second boot" 'REF: domu2_init=ok' "$L"
        check "poweroff destroys it" 'REF-MONITOR: Action for shutdown reason code 0 is destroy' "$L"
        check "monitor ends" 'REF-MONITOR: Done. Exiting now' "$L"
        check_not "domain gone" 'REF-AFTER: domu' "$L"
        check_not "nothing left in xenstore" 'REF-XS-LEFT:' "$L"
        ;;
    affinity)
        check "vCPU 0 on CPU 1" 'REF-VCPU: domu .* 0 .*  1 / all' "$L"
        check "vCPU 1 on CPU 0" 'REF-VCPU: domu .* 1 .*  0 / all' "$L"
        check "Debian's xl agrees" 'REF-XL-VCPU: domu .* 0 .*  1 / all' "$L"
        check "weight and cap" 'REF-SCHED: domu                                 1    512   50' "$L"
        check "boots" 'REF: domu_init=ok' "$L"
        check "bad CPU refused" 'REF-ERR: xl: creating domain "domu": cpus: invalid CPU list "0-5": CPU 5 does not exist' "$L"
        check "too many vCPUs refused" 'REF-ERR: xl: creating domain "domu": 3 vCPUs asked but the host has 2 CPUs' "$L"
        ;;
    esac
done
exit $FAILED
