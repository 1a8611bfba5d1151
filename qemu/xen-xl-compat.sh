#!/bin/bash
# xen-xl-compat.sh - run Debian's real Xen 4.17 toolstack (xl, libxl, oxenstored, xenconsoled,
# xen-init-dom0) in a Linux Dom0 on oxen and report, command by command, what works.
#
#   qemu/xen-xl-compat.sh              # boot build/oxen.bin, one `compat:` line per command
#   qemu/xen-xl-compat.sh --xen        # the same on real Xen 4.17 (the script's own check)
#   qemu/xen-xl-compat.sh --build-only # fetch + build only; prints the Dom0 initrd, DomU initrd
#                                      # and Xen paths, one a line
#   qemu/xen-xl-compat.sh --report DIR # the compat: lines of an earlier run's DIR/serial.log
#   qemu/xen-xl-compat.sh --help
#
# Output (stdout), one line per step:  compat: <command>: ok|FAILED (<reason>)
# The reason names what failed: the hypervisor's own lines for the step (oxen logs
# `d0: domctl N not implemented`, `sysctl N not implemented`, `hypercall N (name) not
# implemented`; N is named from hypervisor/libs/xen-abi), then the first error libxl/libxc
# printed (`xl -vvv`), a timeout, or a wrong result (e.g. the DomU still listed after destroy).
#
# The Dom0 is Debian's: Debian bookworm arm64 packages xen-utils-4.17, xen-utils-common,
# xenstore-utils and the shared-library closure of their programs (glibc, libxen*, yajl,
# libfdt, ...), busybox-static, bash, util-linux (flock) and xen-hypervisor-4.17-arm64 (for
# --xen), downloaded with `apt-get download` into $XLC_CACHE/debs and unpacked (never
# installed) into $XLC_CACHE/root. The kernel is the one `make build` put in .cache/dom0
# (Image, kver: the same for Dom0 and the DomU, as in `make bench`); its modules come from
# the linux-image package of that ABI. The Dom0 initramfs ($XLC_CACHE/dom0-initrd.gz, rebuilt
# when this script or a package changes) holds the toolstack at Debian's paths, the hotplug
# scripts as shipped, and a DomU (same kernel, busybox initramfs whose /init prints
# `DOMU-INIT uptime=<s>` first, then mounts xvda and brings eth0 up when present).
#
# Dom0 /init (written by this script) brings the toolstack up as Debian's xencommons does
# (modules, xenfs, oxenstored, xen-init-dom0, xenconsoled, bridge xenbr0), then by
# `xlc.mode=` on its command line:
#   compat  xl info, xl list, xl list -l, xl vcpu-list, xl dmesg, xl -vvv create of a minimal
#           DomU (PVH, 1 vCPU, 256 MiB, PV console) and its /init, xl list / list -l /
#           vcpu-list with it, xenstore-ls, xl destroy, xl list; then the same DomU with a
#           PV disk (loop-backed file) and a vif on xenbr0 (Debian's block / vif-bridge
#           scripts): create, DomU /init, disk + network up in the DomU, destroy
# (qemu/bench.sh boots the same Dom0 image with its own /bench-xl-init appended.)
#
# Environment (defaults in brackets): XLC_CACHE [.cache/xen-ref]  XLC_OXEN [build/oxen.bin]
#   XLC_TIMEOUT [1200] (s, whole run)  XLC_STEP_TIMEOUT [240] (s, each command in Dom0)
#   XLC_XENSTORED [oxenstored|xenstored]  XLC_OUT [.cache/xen-ref/out/<date>]
#   XLC_VERBOSE [0] (echo the console to stderr)  QEMU [qemu-system-aarch64]
#   XLC_ICOUNT [0] (1: -icount shift=0,sleep=off)
#   XLC_DEVICES [disk+vif|disk|vif|none] (the devices of the second create round; none skips it)
#   XLC_MINIMAL [1] (0: skip the first create round, the DomU without devices)
#   XLC_QEMU_ARGS (extra QEMU arguments, word-split; e.g. -monitor unix:/tmp/m.sock,server,nowait
#   to look at a hung run with `info registers -a`)
# Raw results: $XLC_OUT/serial.log (console, host-stamped), steps.txt (each step's output).
set -uo pipefail
export PATH=$PATH:/usr/sbin:/sbin

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CACHE=${XLC_CACHE:-$REPO/.cache/xen-ref}
DEBS=$CACHE/debs
ROOT=$CACHE/root
OXEN_BIN=${XLC_OXEN:-$REPO/build/oxen.bin}
KDIR=$REPO/.cache/dom0
IMAGE=$KDIR/Image
QEMU_BIN=${QEMU:-qemu-system-aarch64}
TIMEOUT=${XLC_TIMEOUT:-1200}
STEP_TIMEOUT=${XLC_STEP_TIMEOUT:-240}
XSD=${XLC_XENSTORED:-oxenstored}
DEVICES=${XLC_DEVICES:-disk+vif}
VERBOSE=${XLC_VERBOSE:-0}

die() { echo "xen-xl-compat: error: $*" >&2; exit 1; }
log() { echo "xen-xl-compat: $*" >&2; }

HYP=oxen BUILD_ONLY=0 REPORT_DIR=
case "${1:-}" in
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    --xen) HYP=xen ;;
    --build-only) BUILD_ONLY=1 ;;
    --report) REPORT_DIR=${2:-} ;;
    "") ;;
    *) die "unknown argument '$1' (see --help)" ;;
esac
case $XSD in oxenstored|xenstored) ;; *) die "XLC_XENSTORED=$XSD: use oxenstored or xenstored" ;; esac
case $DEVICES in disk+vif|disk|vif|none) ;; *) die "XLC_DEVICES=$DEVICES: use disk+vif, disk, vif or none" ;; esac


# ---------------------------------------------------------------- report
# report OUTDIR: the compat: lines of the run whose console is OUTDIR/serial.log
report() {
    local OUT=$1
    # op names from the ABI crate: "domctl 12" -> "domctl 12 (setvcpucontext)"
    ABI=$REPO/hypervisor/libs/xen-abi/src
    names() { # prefix file
        sed -n "s/^pub const XEN_$1_\([A-Z0-9_]*\): u32 = \([0-9]*\);.*/\2 \1/p" "$2" 2>/dev/null |
            awk '!seen[$1]++ { print $1, tolower($2) }'
    }
    { names DOMCTL "$ABI/domctl.rs" | sed 's/^/domctl /'; names SYSCTL "$ABI/sysctl.rs" | sed 's/^/sysctl /'; } > "$OUT/opnames.txt"
    awk -v opn="$OUT/opnames.txt" -v steps="$OUT/steps.txt" '
    BEGIN { while ((getline l < opn) > 0) { split(l, f, " "); name[f[1] " " f[2]] = f[3] } }
    { gsub(/\r/, ""); sub(/^\[[ 0-9.]+\] /, "") }
    /XLC-BEGIN / { cur = substr($0, index($0, "XLC-BEGIN ") + 10); hv = ""; xe = ""; xo = ""; nerr = 0; chk = ""; n[cur]++; print "== " cur > steps; next }
    /XLC-CHECK / { s = substr($0, index($0, "XLC-CHECK ") + 10); p = index(s, ": "); chkr[substr(s, 1, p - 1)] = substr(s, p + 2); next }
    /XLC-END rc=/ {
        match($0, /rc=[0-9]+/); rc = substr($0, RSTART + 3, RLENGTH - 3)
        s = $0; sub(/.*XLC-END rc=[0-9]+ s=[0-9.]+ /, "", s)
        order[++k] = s
        if (rc == 0) { if (!(s in res)) res[s] = "ok" }
        else {
            why = ""
            if (rc == 124 || rc == 137 || rc == 143) why = "timed out (killed after the step timeout)"
            if (hv != "") why = why (why ? "; " : "") hv
            if (xe == "") xe = xo
            if (xe != "") why = why (why ? "; " : "") xe
            if (why == "") why = "exit status " rc
            res[s] = "FAILED (" why ")"
        }
        if (s in chkr) res[s] = "FAILED (" chkr[s] ")"
        cur = ""; next
    }
    cur != "" {
        print > steps
        line = $0
        if (line ~ /\(oxen\)/ && line ~ /not implemented|ENOSYS|EOPNOTSUPP|EPERM|EINVAL|EFAULT|ERROR|stopped/ && line !~ /physdev_op|xen_version\(0xa\)|event_channel_op\(0xb\)|grant_table_op\(0xc\)|hypercall 27 /) {
            t = line; sub(/.*\(oxen\) (debug: |info: |warn: )?/, "", t)
            if (match(t, /(domctl|sysctl) [0-9]+/)) {
                key = substr(t, RSTART, RLENGTH)
                if (key in name) t = substr(t, 1, RSTART + RLENGTH - 1) " (" name[key] ")" substr(t, RSTART + RLENGTH)
            }
            if (index(hv, t) == 0 && length(hv) < 300) hv = hv (hv ? "; " : "") t
        }
        # libxl/libxc errors first (two at most, without their file:line), else a failure line
        if (line ~ /XLC-OUT\| / && line ~ /error:/ && nerr < 2) {
            t = line; sub(/.*XLC-OUT\| /, "", t); sub(/^[a-z]+: error: ([a-z_]+\.c:[0-9]+:)?/, "", t)
            xe = (nerr ? xe "; " : "") substr(t, 1, 200); nerr++
        } else if (line ~ /XLC-OUT\| / && nerr == 0 && xo == "" && line !~ /detail:|debug:/ &&
                   line ~ /ERROR|[Ff]ailed|[Cc]annot|FAILED|no DOMU-INIT|[Nn]ot found|[Nn]o such/) {
            t = line; sub(/.*XLC-OUT\| /, "", t); xo = substr(t, 1, 200)
        }
    }
    cur != "" && $0 != "" && $0 !~ /^qemu-system/ { lastl = $0 }
    END {
        if (cur != "") { # the step the run ended in (Dom0 hung or the run timed out)
            t = lastl; sub(/^XLC-OUT\| /, "", t)
            res[cur] = "FAILED (never ended; the console went silent after: " substr(t, 1, 160) ")"; order[++k] = cur
        }
        for (s in chkr) res[s] = "FAILED (" chkr[s] ")"
        for (i = 1; i <= k; i++) { s = order[i]; if (s in done) continue; done[s] = 1; print "compat: " s ": " res[s] }
        for (s in res) if (!(s in done)) print "compat: " s ": " res[s]
    }' "$OUT/serial.log" | tee "$OUT/compat.txt"
    grep -q XLC-DONE "$OUT/serial.log" || echo "compat: run: FAILED (Dom0 did not finish: see $OUT/serial.log)" | tee -a "$OUT/compat.txt"
    log "serial log: $OUT/serial.log; each step's output: $OUT/steps.txt"
}

if [ -n "$REPORT_DIR" ]; then
    [ -s "$REPORT_DIR/serial.log" ] || die "--report DIR: no DIR/serial.log"
    report "$REPORT_DIR"; exit 0
fi

[ -s "$IMAGE" ] && [ -s "$KDIR/kver" ] || die "$IMAGE or $KDIR/kver missing: run make build (qemu/build-dom0.sh)"
KVER=$(cat "$KDIR/kver")
for t in apt-get dpkg dpkg-deb cpio gzip depmod readelf "$QEMU_BIN" timeout; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (make setup installs the host tools)"
done

# ---------------------------------------------------------------- packages
PKGS="xen-hypervisor-4.17-arm64 xen-utils-4.17 xen-utils-common xenstore-utils
      libxenmisc4.17 libxencall1 libxenevtchn1 libxenforeignmemory1 libxengnttab1
      libxenstore4 libxentoollog1 libxendevicemodel1 libxenhypfs1 libxentoolcore1
      libyajl2 libfdt1 libuuid1 zlib1g libtinfo6 libc6 libgcc-s1
      busybox-static bash util-linux linux-image-$KVER"
mkdir -p "$DEBS" "$ROOT/.unpacked" || die "cannot create $CACHE"
: > "$CACHE/manifest.txt.new"
for p in $PKGS; do
    deb=$(cd "$DEBS" && ls -1 "${p}"_*_arm64.deb "${p}"_*_all.deb 2>/dev/null | head -1)
    if [ -z "$deb" ]; then
        # the kernel package may already be in oxen's own cache (qemu/build-dom0.sh)
        cand=$(ls -1 "$REPO/.cache/debs/${p}"_*_arm64.deb 2>/dev/null | head -1)
        if [ -n "$cand" ]; then
            cp "$cand" "$DEBS/"
        else
            log "downloading $p:arm64"
            (cd "$DEBS" && apt-get download -q "$p:arm64" 2>&1 | grep -v unsandboxed >&2)
        fi
        deb=$(cd "$DEBS" && ls -1 "${p}"_*_arm64.deb "${p}"_*_all.deb 2>/dev/null | head -1)
        [ -n "$deb" ] || die "could not download $p:arm64 (network? arm64 apt lists? run make setup)"
    fi
    echo "$(dpkg-deb -f "$DEBS/$deb" Package)=$(dpkg-deb -f "$DEBS/$deb" Version)" >> "$CACHE/manifest.txt.new"
    if [ ! -e "$ROOT/.unpacked/$deb" ]; then
        dpkg -x "$DEBS/$deb" "$ROOT" || die "dpkg -x $deb failed"
        touch "$ROOT/.unpacked/$deb"
    fi
done
mv "$CACHE/manifest.txt.new" "$CACHE/manifest.txt"
[ -e "$ROOT/lib/modules/$KVER/modules.dep" ] || depmod -b "$ROOT" "$KVER" || die "depmod failed"
XEN_BIN=$ROOT/boot/xen-4.17-arm64

# ---------------------------------------------------------------- the guests' /init
# Dom0 /init (bash). Conventions: `XLC-BEGIN <step>`, `XLC-OUT| <line>` (the step's
# output), `XLC-END rc=<n> s=<seconds> <step>`, `XLC-CHECK <step>: <problem>` (a command that
# exited 0 but did the wrong thing), `XLC-DONE`.
write_dom0_init() {
cat > "$1" <<'DOM0INIT'
#!/bin/bash
# Dom0 /init of qemu/xen-xl-compat.sh (Debian's Xen 4.17 toolstack). xlc.mode=compat
export PATH=/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C
/bin/busybox mount -t proc proc /proc
read -r UP _ < /proc/uptime
echo "XLC-DOM0-INIT uptime=$UP"
/bin/busybox --install -s
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
ln -sf /proc/self/fd /dev/fd; ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout; ln -sf /proc/self/fd/2 /dev/stderr
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs /tmp
hostname dom0
ip link set lo up
arg() { local a; for a in $(cat /proc/cmdline); do case $a in "$1"=*) echo "${a#*=}"; return;; esac; done; echo "$2"; }
MODE=$(arg xlc.mode compat)
XSD=$(arg xlc.xenstored oxenstored)
T=$(arg xlc.step_timeout 240)
DEVS=$(arg xlc.devices disk+vif)
mkfifo /run/.sleep; exec 9<>/run/.sleep
fsleep() { read -r -t "$1" -u 9 _ || true; }
dt() { awk -v a="$1" -v b="${2:-$EPOCHREALTIME}" 'BEGIN{printf "%.3f", b-a}'; }
finish() { echo "XLC-DONE"; sync; poweroff -f; sleep 5; echo o > /proc/sysrq-trigger; }

# step NAME CMD...: run CMD (bounded), its output and exit status on the console
LAST_OUT=/tmp/step.out LAST_RC=0
step() {
    local name=$1 t0; shift
    echo "XLC-BEGIN $name"
    t0=$EPOCHREALTIME
    timeout -k 5 "$T" "$@" > $LAST_OUT 2>&1 < /dev/null
    LAST_RC=$?
    sed 's/^/XLC-OUT| /' $LAST_OUT
    echo "XLC-END rc=$LAST_RC s=$(dt "$t0") $name"
    return $LAST_RC
}
check() { echo "XLC-CHECK $1: $2"; }

# ---- toolstack, as Debian's xencommons / launch-xenstore
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-blkback xen-netback loop bridge; do
    modprobe "$m" 2>/dev/null || echo "XLC-NOTE modprobe $m failed"
done
mount -t xenfs xenfs /proc/xen
mkdir -p /run/xen /run/xenstored /run/xen-hotplug /var/log/xen/console /var/lib/xen /var/lib/xenstored
syslogd -O /var/log/messages
echo "XLC-BEGIN start $XSD"
t0=$EPOCHREALTIME
$XSD --pid-file /run/xen/xenstored.pid > /tmp/xsd.out 2>&1
rc=$?
for _ in $(seq 3000); do [ -s /run/xen/xenstored.pid ] && break; fsleep 0.01; done
[ -s /run/xen/xenstored.pid ] || { [ $rc = 0 ] && rc=1; echo "XLC-OUT| no pid file after 30 s"; }
sed 's/^/XLC-OUT| /' /tmp/xsd.out
echo "XLC-END rc=$rc s=$(dt "$t0") start $XSD"
step xen-init-dom0 xen-init-dom0
step "start xenconsoled" xenconsoled --pid-file=/run/xen/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console
# (busybox's brctl may lack stp/setfd: a fresh bridge has STP off anyway)
brctl addbr xenbr0 && ip addr add 192.0.2.1/24 dev xenbr0 && ip link set xenbr0 up ||
    echo "XLC-NOTE bridge xenbr0 failed"
brctl stp xenbr0 off 2>/dev/null; brctl setfd xenbr0 0 2>/dev/null

# ---- DomU helpers
CONLOG=/var/log/xen/console/guest-domu.log
# wait_console PATTERN TIMEOUT_S: polls the DomU console log every 10 ms without forking;
# WAIT_T (epoch) and WAIT_LINE are set when the line is seen
wait_console() {
    local pat=$1 to_us=$(( $2 * 1000000 )) t0=${EPOCHREALTIME/./} line buf=""
    while [ -z "${CONFD:-}" ]; do
        [ -f "$CONLOG" ] && { exec 8< "$CONLOG"; CONFD=1; break; }
        (( ${EPOCHREALTIME/./} - t0 > to_us )) && return 1
        fsleep 0.01
    done
    while :; do
        if IFS= read -r line <&8; then
            line="$buf$line"; buf=""; line=${line%$'\r'}
            if [[ $line == *"$pat"* ]]; then WAIT_T=$EPOCHREALTIME; WAIT_LINE=$line; return 0; fi
        else
            buf="$buf$line"
            (( ${EPOCHREALTIME/./} - t0 > to_us )) && return 1
            fsleep 0.01
        fi
    done
}
reset_console() { [ -n "${CONFD:-}" ] && exec 8<&-; CONFD=; rm -f "$CONLOG"; }
domu_cfg() { # domu-scenario [full] -> /etc/xen/domu.cfg
    cat > /etc/xen/domu.cfg <<EOF
name = "domu"
type = "pvh"
kernel = "/opt/domu/Image"
ramdisk = "/opt/domu/domu-initrd.gz"
extra = "console=hvc0 rdinit=/init xlc.domu=$1"
memory = 256
vcpus = 1
on_crash = "preserve"
EOF
    if [ "${2:-}" = full ]; then
        case $DEVS in *disk*)
            echo "disk = [ 'format=raw, vdev=xvda, access=rw, target=/opt/domu/domu-disk.img' ]" >> /etc/xen/domu.cfg ;;
        esac
        case $DEVS in *vif*) echo "vif = [ 'mac=00:16:3e:00:00:02, bridge=xenbr0' ]" >> /etc/xen/domu.cfg ;; esac
    fi
}
domu_listed() { xl list 2>/dev/null | awk '$1 == "domu" { f = 1 } END { exit !f }'; }
# create_round LABEL [full]: create, DomU /init, inspect, destroy
create_round() {
    local sfx=$1 full=${2:-} t0
    domu_cfg compat $full
    reset_console
    t0=$EPOCHREALTIME
    if ! step "xl -vvv create$sfx" xl -vvv create /etc/xen/domu.cfg; then
        domu_listed && xl destroy domu > /dev/null 2>&1
        return 1
    fi
    echo "XLC-BEGIN DomU /init$sfx"
    if wait_console DOMU-INIT 180; then
        echo "XLC-OUT| $WAIT_LINE"
        echo "XLC-END rc=0 s=$(dt "$t0" "$WAIT_T") DomU /init$sfx"
    else
        echo "XLC-OUT| no DOMU-INIT in $CONLOG after 180 s; its end:"
        tail -n 20 "$CONLOG" 2>/dev/null | sed 's/^/XLC-OUT| /'
        echo "XLC-END rc=1 s=$(dt "$t0") DomU /init$sfx"
    fi
    if [ -n "$full" ]; then
        local want="" bad="" f
        case $DEVS in *disk*) want="disk" ;; esac
        case $DEVS in *vif*) want="$want eth0" ;; esac
        echo "XLC-BEGIN DomU devices up$sfx"
        if wait_console DOMU-READY 180; then
            grep -a 'DOMU-FACT' "$CONLOG" | tr -d '\r' | sed 's/^/XLC-OUT| /'
            for f in $want; do
                grep -aq "DOMU-FACT $f=ok" "$CONLOG" || bad="$bad $(grep -a "DOMU-FACT $f=" "$CONLOG" | tr -d '\r' | sed 's/DOMU-FACT //')"
            done
            if [ -z "$bad" ]; then
                echo "XLC-END rc=0 s=$(dt "$t0" "$WAIT_T") DomU devices up$sfx"
            else
                echo "XLC-CHECK DomU devices up$sfx:$bad"
                echo "XLC-END rc=1 s=$(dt "$t0" "$WAIT_T") DomU devices up$sfx"
            fi
        else
            echo "XLC-END rc=1 s=$(dt "$t0") DomU devices up$sfx"
        fi
        case $DEVS in *disk*) step "xl block-list$sfx" xl block-list domu ;; esac
        case $DEVS in *vif*) step "xl network-list$sfx" xl network-list domu ;; esac
    fi
    step "xl list, DomU running$sfx" xl list && ! grep -q '^domu ' $LAST_OUT && check "xl list, DomU running$sfx" "domu not listed"
    step "xl list -l, DomU running$sfx" xl list -l
    step "xl vcpu-list, DomU running$sfx" xl vcpu-list
    step "xenstore-ls /local/domain, DomU running$sfx" xenstore-ls -fp /local/domain
    step "xl destroy$sfx" xl destroy domu
    fsleep 0.5
    step "xl list after destroy$sfx" xl list && grep -q '^domu ' $LAST_OUT && check "xl list after destroy$sfx" "domu still listed"
    step "xenstore-ls /local/domain after destroy$sfx" xenstore-ls -f /local/domain
    case $full$DEVS in full*disk*) step "losetup -a after destroy$sfx" losetup -a ;; esac
    for f in /var/log/xen/xl-domu.log /var/log/xen/qemu-dm-domu.log; do
        [ -s "$f" ] && sed "s|^|XLC-LOG $(basename "$f")| |" "$f"
    done
    return 0
}

case $MODE in
compat)
    step "xl info" xl info
    step "xl list" xl list
    step "xl list -l" xl list -l
    step "xl vcpu-list" xl vcpu-list
    step "xl dmesg" xl dmesg
    step "xenstore-ls" xenstore-ls -fp
    [ "$(arg xlc.minimal 1)" = 0 ] || create_round ""
    case $DEVS in
        disk+vif|vif+disk) create_round " (disk + vif)" full ;;
        disk|vif) create_round " ($DEVS)" full ;;
    esac
    [ -f /var/log/messages ] && grep -E 'block|vif|xen' /var/log/messages | sed 's/^/XLC-SYSLOG| /'
    ;;
*) echo "XLC-NOTE unknown xlc.mode=$MODE" ;;
esac
finish
DOM0INIT
}

# DomU /init (busybox sh): DOMU-INIT first (as the reference DomU), its xenstore name, then
# mounts xvda and brings eth0 up when they exist (DOMU-FACT lines), DOMU-READY, DOMU-DONE
write_domu_init() {
cat > "$1" <<'DOMUINIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
read UP IDLE < /proc/uptime
echo "DOMU-INIT uptime=$UP"
/bin/busybox --install -s
export PATH=/usr/bin:/usr/sbin:/bin:/sbin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
wait_for() { i=0; while [ ! -e "$1" ] && [ $i -lt "$2" ]; do sleep 0.1; i=$((i+1)); done; [ -e "$1" ]; }
echo "DOMU-FACT name=$(xenstore-read name 2>&1)"
modprobe xen-blkfront; modprobe xen-netfront; modprobe crc32c_generic; modprobe ext4
if wait_for /dev/xvda 50; then
    if mount -t ext4 /dev/xvda /mnt && [ -s /mnt/hello.txt ]; then echo "DOMU-FACT disk=ok"; else echo "DOMU-FACT disk=mount-failed"; fi
else
    echo "DOMU-FACT disk=no-xvda"
fi
if wait_for /sys/class/net/eth0 50; then
    ip addr add 192.0.2.2/24 dev eth0 && ip link set eth0 up
    if ping -c 2 -W 3 192.0.2.1 > /dev/null 2>&1; then echo "DOMU-FACT eth0=ok"; else echo "DOMU-FACT eth0=no-ping"; fi
else
    echo "DOMU-FACT eth0=missing"
fi
echo "DOMU-READY"
echo "DOMU-DONE"
while :; do sleep 3600; done
DOMUINIT
}

# ---------------------------------------------------------------- images
LIBDIRS="lib/aarch64-linux-gnu usr/lib/aarch64-linux-gnu lib usr/lib"
MODDIR=$ROOT/lib/modules/$KVER
put() { mkdir -p "$1/$(dirname "${3:-$2}")" && cp -L "$ROOT/$2" "$1/${3:-$2}" || die "missing $2 in $ROOT"; }
findlib() { local d; for d in $LIBDIRS; do [ -e "$ROOT/$d/$1" ] && { echo "$d/$1"; return 0; }; done; return 1; }
needed() { readelf -d "$1" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
put_libs() { # dest elf... (paths relative to dest): the shared-library closure
    local d=$1 todo=() seen=" " so rel f; shift
    for f in "$@"; do todo+=($(needed "$d/$f")); done
    while [ ${#todo[@]} -gt 0 ]; do
        so=${todo[0]}; todo=("${todo[@]:1}")
        case "$seen" in *" $so "*) continue ;; esac
        seen="$seen$so "
        rel=$(findlib "$so") || die "shared library $so not found in $ROOT"
        [ -e "$d/$rel" ] || put "$d" "$rel"
        todo+=($(needed "$ROOT/$rel"))
    done
    mkdir -p "$d/lib"
    ln -sf aarch64-linux-gnu/ld-linux-aarch64.so.1 "$d/lib/ld-linux-aarch64.so.1"
}
put_modules() { # dest module...: with their dependencies, then depmod
    local d=$1 todo seen=" " m rx line path deps; shift; todo=("$@")
    while [ ${#todo[@]} -gt 0 ]; do
        m=${todo[0]}; todo=("${todo[@]:1}")
        rx=$(echo "$m" | sed 's/[-_]/[-_]/g')
        line=$(grep -E "(^|/)${rx}\.ko(\.[a-z]+)?:" "$MODDIR/modules.dep" | head -1)
        if [ -z "$line" ]; then
            grep -qE "(^|/)${rx}\.ko" "$MODDIR/modules.builtin" 2>/dev/null && continue
            die "module $m not found for $KVER"
        fi
        path=${line%%:*}; deps=${line#*:}
        case "$seen" in *" $path "*) continue ;; esac
        seen="$seen$path "
        mkdir -p "$d/lib/modules/$KVER/$(dirname "$path")"
        cp "$MODDIR/$path" "$d/lib/modules/$KVER/$path"
        for dep in $deps; do todo+=("$(basename "${dep%%.ko*}")"); done
    done
    for f in modules.order modules.builtin modules.builtin.modinfo; do
        [ -e "$MODDIR/$f" ] && cp "$MODDIR/$f" "$d/lib/modules/$KVER/"
    done
    depmod -b "$d" "$KVER" || die "depmod failed"
}
skeleton() {
    mkdir -p "$1"/{bin,sbin,usr/bin,usr/sbin,lib,etc,proc,sys,dev,run,tmp,mnt,root,var/lib,var/log}
    ln -sfn ../run "$1/var/run"
    put "$1" bin/busybox
    printf 'root:x:0:0:root:/root:/bin/sh\n' > "$1/etc/passwd"
    printf 'root:x:0:\n' > "$1/etc/group"
}
mkcpio() { (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6 -n > "$2"; }

INITRD=$CACHE/dom0-initrd.gz
build_images() {
    local stamp w du d0 dd xb t lk
    # one build at a time (bench.sh and a compat run may start together)
    exec {lk}> "$CACHE/.build.lock"
    command -v flock >/dev/null 2>&1 && flock "$lk"
    stamp=$( { cat "$0" "$CACHE/manifest.txt"; stat -c '%s %Y' "$IMAGE"; } | sha256sum | cut -c1-16)
    if [ -s "$INITRD" ] && [ -s "$CACHE/domu-initrd.gz" ] &&
       [ "$(cat "$CACHE/stamp" 2>/dev/null)" = "$stamp" ]; then exec {lk}>&-; return 0; fi
    log "building the Dom0 initramfs (Debian's Xen 4.17 toolstack) into $INITRD"
    w=$(mktemp -d "$CACHE/work.XXXXXX") || die "mktemp failed"
    # DomU: busybox, front-end modules, Debian's xenstore client (glibc)
    du=$w/domu; skeleton "$du"
    put_modules "$du" xen-blkfront xen-netfront ext4 crc32c_generic
    put "$du" usr/bin/xenstore
    for t in read write ls list exists rm; do ln -sf xenstore "$du/usr/bin/xenstore-$t"; done
    put_libs "$du" usr/bin/xenstore
    write_domu_init "$du/init"; chmod 0755 "$du/init"
    mkcpio "$du" "$w/domu-initrd.gz"
    # Dom0
    d0=$w/dom0; skeleton "$d0"
    put "$d0" bin/bash; put "$d0" usr/bin/flock
    xb=usr/lib/xen-4.17/bin
    TOOLS="xl xenstored oxenstored xenconsoled xenconsole xen-init-dom0 libxl-save-helper xenstore-control"
    for t in $TOOLS; do put "$d0" "$xb/$t"; ln -sf "../lib/xen-4.17/bin/$t" "$d0/usr/sbin/$t"; done
    put "$d0" usr/bin/xenstore
    for t in read write ls list exists rm chmod watch; do ln -sf xenstore "$d0/usr/bin/xenstore-$t"; done
    put_libs "$d0" bin/bash usr/bin/flock usr/bin/xenstore $(for t in $TOOLS; do echo "$xb/$t"; done)
    put "$d0" "$(findlib libgcc_s.so.1)" # glibc dlopen()s it for pthread_cancel
    mkdir -p "$d0/etc/xen" "$d0/var/lib/xen" "$d0/var/lib/xenstored" "$d0/var/log/xen" "$d0/opt/domu"
    cp -a "$ROOT/etc/xen/scripts" "$d0/etc/xen/"
    cp "$ROOT/etc/xen/xl.conf" "$ROOT/etc/xen/oxenstored.conf" "$d0/etc/xen/"
    put_modules "$d0" xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-blkback xen-netback loop bridge
    write_dom0_init "$d0/init"; chmod 0755 "$d0/init"
    cp "$IMAGE" "$d0/opt/domu/Image"
    cp "$w/domu-initrd.gz" "$d0/opt/domu/"
    if command -v mke2fs >/dev/null 2>&1; then
        dd=$w/disk; mkdir -p "$dd"; echo "hello from the DomU disk" > "$dd/hello.txt"
        mke2fs -q -t ext4 -L domu-disk -d "$dd" -E root_owner=0:0 "$d0/opt/domu/domu-disk.img" 16M > /dev/null ||
            die "mke2fs failed"
    else
        log "WARNING: mke2fs (e2fsprogs) missing: the disk + vif round will fail"
    fi
    cp "$w/domu-initrd.gz" "$CACHE/domu-initrd.gz.$$" && mv "$CACHE/domu-initrd.gz.$$" "$CACHE/domu-initrd.gz" &&
        mkcpio "$d0" "$INITRD.$$" && mv "$INITRD.$$" "$INITRD" || die "cpio failed"
    rm -rf "$w"
    echo "$stamp" > "$CACHE/stamp"
    exec {lk}>&-
}
build_images
if [ $BUILD_ONLY = 1 ]; then
    echo "$INITRD"
    echo "$CACHE/domu-initrd.gz"
    echo "$XEN_BIN"
    exit 0
fi

# ---------------------------------------------------------------- boot
if [ $HYP = xen ]; then HBIN=$XEN_BIN; else HBIN=$OXEN_BIN; fi
[ -s "$HBIN" ] || die "$HBIN missing (oxen: make hypervisor)"
OUT=${XLC_OUT:-$CACHE/out/$HYP-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" || die "cannot create $OUT"
KADDR=$((0x50000000))
IADDR=$(( (KADDR + $(stat -L -c %s "$IMAGE") + 0x200000 + 0x1fffff) & ~0x1fffff ))
HYP_ARGS="dom0_mem=512M console=dtuart dtuart=/pl011@9000000 loglvl=all guest_loglvl=all"
DOM0_ARGS="console=hvc0 earlycon=xen rdinit=/init xlc.mode=compat xlc.xenstored=$XSD xlc.step_timeout=$STEP_TIMEOUT xlc.devices=$DEVICES xlc.minimal=${XLC_MINIMAL:-1}"
CMD=("$QEMU_BIN" -machine virt,virtualization=on,gic-version=3 -cpu cortex-a72 -smp 2 -m 2048
     -nographic -no-reboot -nic none)
# shellcheck disable=SC2054
[ "${XLC_ICOUNT:-0}" = 1 ] && CMD+=(-icount shift=0,sleep=off)
CMD+=(-kernel "$HBIN" -append "$HYP_ARGS"
     -device "guest-loader,addr=$(printf '0x%x' $KADDR),kernel=$IMAGE,bootargs=$DOM0_ARGS"
     -device "guest-loader,addr=$(printf '0x%x' $IADDR),initrd=$INITRD")
# shellcheck disable=SC2206 # word-split on purpose
CMD+=(${XLC_QEMU_ARGS:-})
printf '%q ' "${CMD[@]}" > "$OUT/qemu-cmdline.txt"; echo >> "$OUT/qemu-cmdline.txt"
log "booting $HYP ($HBIN) with Debian's xl 4.17 in Dom0; console: $OUT/serial.log"
T0=${EPOCHREALTIME/./}
timeout -k 10 "$TIMEOUT" "${CMD[@]}" < /dev/null 2>&1 | while IFS= read -r line; do
    line=${line%$'\r'}
    rel=$(( ${EPOCHREALTIME/./} - T0 ))
    printf '[%5d.%06d] %s\n' $((rel / 1000000)) $((rel % 1000000)) "$line"
    [ "$VERBOSE" = 1 ] && echo "$line" >&2
done > "$OUT/serial.log"
report "$OUT"
