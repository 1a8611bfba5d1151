#!/bin/bash
# bench.sh - benchmark oxen against real Xen 4.17 booting the same Debian Linux Dom0.
#
#   qemu/bench.sh            # N runs of each hypervisor, Markdown table on stdout
#   qemu/bench.sh --help
#
# Both hypervisors boot with the SAME QEMU machine, the SAME hypervisor command line,
# the SAME Dom0 kernel (.cache/dom0/Image) and initramfs (.cache/dom0/dom0-initrd.gz,
# /init = qemu/dom0/init.sh in its `oxen.dom0=check` scenario). Only `-kernel` differs:
# build/oxen.bin or Xen 4.17's /boot/xen-4.17-arm64 (Debian package, fetched into
# .cache/xen/ on first use with `apt-get download`).
#
# Kinds of runs, BENCH_RUNS of each per hypervisor (wall and icount: the Dom0 boot above;
# xl: the toolstack, whose Dom0 images differ as described there):
#   wall    QEMU's default TCG (MTTCG, one host thread per vCPU): host wall time from QEMU
#           start to the Dom0 /init banner, and the event-channel round trip as measured
#           by Dom0 (guest clock = host clock here).
#   icount  `-icount shift=0,sleep=off`: the guest clock counts instructions (1 ns each)
#           and skips idle time, so guest-visible times do not depend on the host load.
#           QEMU runs all vCPUs on one host thread then (MTTCG cannot do icount).
#   xl      (toolstack figures; icount only by default) Dom0 runs `xl create` of a minimal PVH
#           DomU (1 vCPU, 256 MiB, PV console, same kernel), waits for the DomU's /init
#           (`DOMU-INIT` in xenconsoled's log of its console), lets the DomU time 200
#           `xenstore-read`s in one process minus one read (through its xenbus ring, event
#           channel and xenstored in Dom0), then runs `xl destroy`. Xen's side is Debian's
#           toolstack (xl, libxl, oxenstored, xenconsoled: qemu/xen-xl-compat.sh builds that
#           Dom0 into .cache/xen-ref/); oxen's side is our Dom0 image (.cache/dom0: our xl,
#           xenstored, xenconsoled started by /etc/init.d/xencommons). The same scripts run on
#           both: bench.sh appends a small initramfs to each Dom0 initramfs with /bench-xl-init
#           (Dom0, started with rdinit=) and the DomU's /bench-xl-domu. Times are the guests'
#           monotonic clocks (/proc/timer_list, ns), i.e. guest time under icount.
# Figures: median (min-max) over the runs that produced them. A run that does not reach
# Dom0's /init (timeout, panic, early QEMU exit) counts as "n/a"; the other runs of that
# hypervisor and kind are skipped then (BENCH_KEEP_GOING=1 tries them all).
#
# Raw logs: .cache/bench/<date>/ (every serial line stamped with host seconds since QEMU
# started, the QEMU command lines, the per-run figures, and the table).
#
# Environment (defaults in brackets):
#   BENCH_RUNS [3]         runs per hypervisor and kind
#   BENCH_TIMEOUT [300]    seconds before a run is stopped
#   BENCH_SILENCE [120]    stop a run after this many seconds without console output
#   BENCH_GIC [3]          2 or 3: -machine virt,gic-version=
#   BENCH_HYP_ARGS []      more hypervisor options for both (e.g. vwfi=native or vwfi=trap,
#                          which Xen and oxen both take)
#   BENCH_PING [1000]      evtchn-ping round trips (oxen.ping=)
#   BENCH_KINDS [wall icount]  which kinds of Dom0 boot runs ("" = none)
#   BENCH_XL_KINDS [icount]    which kinds of toolstack (xl) runs ("" = none; wall, icount)
#   BENCH_XL_TIMEOUT [900]     seconds before a toolstack run is stopped
#   BENCH_HYPS [oxen xen]  which hypervisors
#   BENCH_OXEN [build/oxen.bin]  BENCH_XEN [.cache/xen/root/boot/xen-4.17-arm64]
#   BENCH_SMP [2]  BENCH_MEM [2048] (MiB)  BENCH_DOM0_MEM [512] (MiB)
#   BENCH_OUT [.cache/bench/<date>]  BENCH_KEEP_GOING [0]  BENCH_VERBOSE [0] (echo consoles)
#   BENCH_PROFILE [1]      0 skips the exit profile (qemu/profile.sh) appended for oxen
#   QEMU [qemu-system-aarch64]  OXEN_CACHE [.cache]
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CACHE=${OXEN_CACHE:-$REPO/.cache}

case "${1:-}" in
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    "") ;;
    *) echo "bench: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac

RUNS=${BENCH_RUNS:-3}
TIMEOUT=${BENCH_TIMEOUT:-300}
SILENCE=${BENCH_SILENCE:-120}
GIC=${BENCH_GIC:-3}
PING=${BENCH_PING:-1000}
KINDS=${BENCH_KINDS-wall icount}
XL_KINDS=${BENCH_XL_KINDS-icount}
XL_TIMEOUT=${BENCH_XL_TIMEOUT:-900}
HYPS=${BENCH_HYPS:-oxen xen}
SMP=${BENCH_SMP:-2}
MEM=${BENCH_MEM:-2048}
DOM0_MEM=${BENCH_DOM0_MEM:-512}
OXEN_BIN=${BENCH_OXEN:-$REPO/build/oxen.bin}
XEN_DIR=$CACHE/xen
XEN_BIN=${BENCH_XEN:-$XEN_DIR/root/boot/xen-4.17-arm64}
IMAGE=$CACHE/dom0/Image
INITRD=$CACHE/dom0/dom0-initrd.gz
QEMU_BIN=${QEMU:-qemu-system-aarch64}
VERBOSE=${BENCH_VERBOSE:-0}
KEEP_GOING=${BENCH_KEEP_GOING:-0}

die() { echo "bench: error: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

# ---------------------------------------------------------------- checks
isnum() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
isnum "$RUNS" || die "BENCH_RUNS=$RUNS is not a positive integer"
isnum "$TIMEOUT" || die "BENCH_TIMEOUT=$TIMEOUT is not a positive integer (seconds)"
isnum "$SILENCE" || die "BENCH_SILENCE=$SILENCE is not a positive integer (seconds)"
isnum "$PING" || die "BENCH_PING=$PING is not a positive integer"
isnum "$MEM" || die "BENCH_MEM=$MEM is not a positive integer (MiB)"
isnum "$DOM0_MEM" || die "BENCH_DOM0_MEM=$DOM0_MEM is not a positive integer (MiB)"
case $GIC in 2|3) ;; *) die "BENCH_GIC=$GIC: use 2 or 3" ;; esac
for k in $KINDS; do case $k in wall|icount) ;; *) die "BENCH_KINDS: unknown kind '$k' (use wall, icount)" ;; esac; done
for k in $XL_KINDS; do case $k in wall|icount) ;; *) die "BENCH_XL_KINDS: unknown kind '$k' (use wall, icount)" ;; esac; done
isnum "$XL_TIMEOUT" || die "BENCH_XL_TIMEOUT=$XL_TIMEOUT is not a positive integer (seconds)"
for h in $HYPS; do case $h in oxen|xen) ;; *) die "BENCH_HYPS: unknown hypervisor '$h' (use oxen, xen)" ;; esac; done
command -v "$QEMU_BIN" >/dev/null 2>&1 || die "$QEMU_BIN not found: run make setup"
command -v timeout >/dev/null 2>&1 || die "timeout (coreutils) not found"
{ [ -s "$IMAGE" ] && [ -s "$INITRD" ]; } || die "$IMAGE or $INITRD missing: run qemu/build-dom0.sh"

# Xen 4.17 from Debian's package, unpacked (never installed) into .cache/xen/root.
fetch_xen() {
    [ -s "$XEN_BIN" ] && return 0
    [ -n "${BENCH_XEN:-}" ] && die "BENCH_XEN=$XEN_BIN does not exist"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: put xen-4.17-arm64 at $XEN_BIN or set BENCH_XEN"
    mkdir -p "$XEN_DIR"
    local deb
    deb=$(find "$XEN_DIR" -maxdepth 1 -name 'xen-hypervisor-4.17-arm64_*_arm64.deb' | head -1)
    if [ -z "$deb" ]; then
        log "downloading xen-hypervisor-4.17-arm64:arm64 into $XEN_DIR"
        (cd "$XEN_DIR" && apt-get download -q xen-hypervisor-4.17-arm64:arm64 2>&1 | grep -v unsandboxed >&2)
        deb=$(find "$XEN_DIR" -maxdepth 1 -name 'xen-hypervisor-4.17-arm64_*_arm64.deb' | head -1)
        [ -n "$deb" ] || die "could not download xen-hypervisor-4.17-arm64:arm64 (network? arm64 apt lists? run make setup)"
    fi
    dpkg -x "$deb" "$XEN_DIR/root" || die "dpkg -x $deb failed"
    [ -s "$XEN_BIN" ] || die "$deb has no /boot/xen-4.17-arm64"
}

declare -A BIN=() SKIP=()
for h in $HYPS; do
    case $h in
    oxen)
        BIN[oxen]=$OXEN_BIN
        if [ ! -s "$OXEN_BIN" ]; then
            SKIP[oxen]="$OXEN_BIN missing: run make build"
            log "${SKIP[oxen]} (oxen column left empty)"
        fi ;;
    xen)
        fetch_xen
        BIN[xen]=$XEN_BIN ;;
    esac
done

OUT=${BENCH_OUT:-$CACHE/bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" || die "cannot create $OUT"

# ---------------------------------------------------------------- toolstack (xl) runs
# Dom0 /bench-xl-init and DomU /bench-xl-domu: busybox sh (no /bin/sh before --install), the same on
# both hypervisors. Output: `bench-xl: key=value` lines, `bench-xl: done` at the end.
# BENCH_XL_DOM0_INIT, BENCH_XL_DOMU_INIT: files used instead of the two scripts below, and
# BENCH_XL_CFG: lines added to the DomU's /etc/bench/domu.cfg (qemu/bench-io.sh's scenario)
write_xl_dom0_init() {
[ -n "${BENCH_XL_DOM0_INIT:-}" ] && { cp "$BENCH_XL_DOM0_INIT" "$1"; return; }
cat > "$1" <<'XLDOM0'
#!/bin/busybox sh
# bench.sh toolstack scenario (Dom0, rdinit=/bench-xl-init): xl create / DomU /init /
# DomU xenstore-read round trip / xl destroy, timed with /proc/uptime (guest time).
export PATH=/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C
/bin/busybox mount -t proc proc /proc
echo "OXEN-DOM0-INIT"
read -r UP _ < /proc/uptime
echo "dom0: uptime_at_init_s=$UP"
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
say() { echo "bench-xl: $*"; }
off() { say "done"; sync; poweroff -f; sleep 5; echo o > /proc/sysrq-trigger; while :; do sleep 60; done; }
show() { sed "s/^/bench-xl-out: /" "$1"; }
now() { read -r NOW _ < /proc/uptime; }          # no fork, 10 ms resolution
# stamp: STAMP = a finer clock for the measured intervals: the kernel's monotonic clock in
# ns from /proc/timer_list (one awk fork, the same on both hypervisors), else /proc/uptime
if [ -r /proc/timer_list ]; then
    stamp() { STAMP=$(awk '/^now at/ { printf "%.6f", $3 / 1e9; exit }' /proc/timer_list); }; CLOCK=timer_list
else
    stamp() { now; STAMP=$NOW; }; CLOCK=uptime
fi
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
mkfifo /run/.nap; exec 9<>/run/.nap
nap() { read -r -t 0.01 _ <&9; }                  # 10 ms, no fork
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs; do modprobe "$m" 2>/dev/null; done
mount -t xenfs xenfs /proc/xen 2>/dev/null
mkdir -p /run/xen /run/xenstored /var/log/xen/console /var/lib/xen /var/lib/xenstored
now; T=$NOW
if [ -x /etc/init.d/xencommons ]; then          # oxen's Dom0 image
    /etc/init.d/xencommons start > /tmp/xc.out 2>&1 || { show /tmp/xc.out; say "error=xencommons start failed"; off; }
else                                             # Debian's toolstack, as its xencommons
    oxenstored --pid-file /run/xen/xenstored.pid
    i=0; while [ ! -s /run/xen/xenstored.pid ] && [ $i -lt 3000 ]; do nap; i=$((i + 1)); done
    xen-init-dom0 > /dev/null
    xenconsoled --pid-file=/run/xen/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console
fi
now; say "toolstack_start_s=$(sub "$T" "$NOW")"
say "clock=$CLOCK"
CONLOG=/var/log/xen/console/guest-domu.log
LOGFD=
# wait_for PATTERN SECONDS: follow the DomU console log (10 ms polls, no fork); WAIT_T is
# the uptime when the line was seen, WAIT_LINE the line
wait_for() {
    now; end=$(( ${NOW%.*} + $2 )); buf=""
    while [ -z "$LOGFD" ]; do
        [ -f "$CONLOG" ] && { exec 8< "$CONLOG"; LOGFD=8; break; }
        nap; now; [ "${NOW%.*}" -ge "$end" ] && return 1
    done
    while :; do
        if IFS= read -r line <&8; then
            line="$buf$line"; buf=""
            case $line in *"$1"*) stamp; WAIT_T=$STAMP; WAIT_LINE=$(echo "$line" | tr -d '\r'); return 0 ;; esac
        else
            buf="$buf$line"
            nap; now; [ "${NOW%.*}" -ge "$end" ] && return 1
        fi
    done
}
# a trivial hypercall (xen_version through privcmd) minus an ioctl privcmd rejects itself
if out=$(/opt/bench/hcbench 20000 2>&1); then
    case $out in *", hypercall "*" ns"*) v=${out##*, hypercall }; say "hypercall_ns=${v%% *}" ;; esac
else
    echo "$out" | sed 's/^/bench-xl-out: /'
fi
stamp; T0=$STAMP
xl create /etc/bench/domu.cfg > /tmp/create.out 2>&1
rc=$?
stamp; T1=$STAMP
say "xl_create_rc=$rc"
[ $rc = 0 ] || { show /tmp/create.out; off; }
say "xl_create_s=$(sub "$T0" "$T1")"
if wait_for DOMU-INIT 600; then
    say "create_to_domu_init_s=$(sub "$T0" "$WAIT_T")"
    say "domu_uptime_at_init_s=${WAIT_LINE##*uptime=}"
else
    say "error=no DOMU-INIT in $CONLOG"; tail -n 20 "$CONLOG" 2>/dev/null | sed 's/^/bench-xl-out: /'
    xl destroy domu; off
fi
if wait_for DOMU-XS-READ-US= 600; then
    v=${WAIT_LINE##*DOMU-XS-READ-US=}; say "domu_xenstore_read_us=${v%% *}"
else
    say "error=no xenstore-read figure from the DomU"
fi
wait_for DOMU-DONE 60
stamp; T0=$STAMP
xl destroy domu > /tmp/destroy.out 2>&1
rc=$?
stamp; T1=$STAMP
say "xl_destroy_rc=$rc"
if [ $rc = 0 ]; then say "xl_destroy_s=$(sub "$T0" "$T1")"; else show /tmp/destroy.out; fi
xl list > /tmp/list.out 2>&1
grep -q '^domu ' /tmp/list.out && { say "error=domu still listed after xl destroy"; show /tmp/list.out; }
off
XLDOM0
}
write_xl_domu_init() {
[ -n "${BENCH_XL_DOMU_INIT:-}" ] && { cp "$BENCH_XL_DOMU_INIT" "$1"; return; }
cat > "$1" <<'XLDOMU'
#!/bin/busybox sh
# bench.sh toolstack scenario (DomU, rdinit=/bench-xl-domu)
/bin/busybox mount -t proc proc /proc
read UP IDLE < /proc/uptime
echo "DOMU-INIT uptime=$UP"
/bin/busybox --install -s
export PATH=/usr/bin:/usr/sbin:/bin:/sbin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
# xenstore round trips through the xenbus ring + event channel: one process doing N
# reads minus one process doing 1 read (as the Xen reference harness's evtchn scenario)
# (clock: /proc/timer_list in ns, else /proc/uptime, 10 ms / N; the fork of the clock
# reader cancels out in the difference)
if [ -r /proc/timer_list ]; then
    t() { awk '/^now at/ { printf "%.6f", $3 / 1e9; exit }' /proc/timer_list; }
else
    t() { awk '{ print $1 }' /proc/uptime; }
fi
N=200; K=""; i=0
while [ $i -lt $N ]; do K="$K domid"; i=$((i + 1)); done
cd /
a=$(t); xenstore-read domid > /dev/null; b=$(t)
c=$(t); xenstore-read $K > /dev/null; rc=$?; d=$(t)
[ $rc = 0 ] || echo "DOMU-XS-READ failed (status $rc)"
echo "DOMU-XS-READ-US=$(awk -v a=$a -v b=$b -v c=$c -v d=$d -v n=$N 'BEGIN { printf "%.1f", ((d - c) - (b - a)) / (n - 1) * 1e6 }') n=$N"
echo "DOMU-DONE"
while :; do sleep 3600; done
XLDOMU
}
mkcpio() { (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6 -n > "$2"; }

# xl_initrd HYP: $OUT/xl/HYP-dom0-initrd.gz = the hypervisor's Dom0 initramfs + the bench
# scripts, the DomU initramfs (its own + /bench-xl-domu) and /etc/bench/domu.cfg (Linux
# unpacks concatenated initramfs archives in order)
declare -A XL_INITRD=() XL_SKIP=()
xl_initrd() {
    local hyp=$1 base domu w paths
    case $hyp in
        oxen) base=$INITRD; domu=$CACHE/dom0/domu-initrd.gz ;;
        xen)
            if ! paths=$(bash "$HERE/xen-xl-compat.sh" --build-only); then
                XL_SKIP[xen]="qemu/xen-xl-compat.sh --build-only failed"; return 1
            fi
            base=$(echo "$paths" | sed -n 1p); domu=$(echo "$paths" | sed -n 2p)
            [ -n "$base" ] || { XL_SKIP[xen]="qemu/xen-xl-compat.sh --build-only printed no paths"; return 1; } ;;
    esac
    if [ ! -s "$base" ] || [ ! -s "$domu" ]; then XL_SKIP[$hyp]="$base or $domu missing"; return 1; fi
    w=$(mktemp -d "${TMPDIR:-/tmp}/bench-xl.XXXXXX") || die "mktemp failed"
    mkdir -p "$w/domu" "$w/dom0/etc/bench" "$w/dom0/opt/bench" "$OUT/xl" || die "mkdir failed in $w"
    write_xl_domu_init "$w/domu/bench-xl-domu"; chmod 0755 "$w/domu/bench-xl-domu"
    mkcpio "$w/domu" "$w/domu-overlay.gz"
    cat "$domu" "$w/domu-overlay.gz" > "$w/dom0/opt/bench/domu-initrd.gz"
    write_xl_dom0_init "$w/dom0/bench-xl-init"; chmod 0755 "$w/dom0/bench-xl-init"
    install -m 0755 "$HCBENCH" "$w/dom0/opt/bench/hcbench"
    printf '%s\n' 'name = "domu"' 'type = "pvh"' 'kernel = "/opt/domu/Image"' \
        'ramdisk = "/opt/bench/domu-initrd.gz"' 'extra = "console=hvc0 rdinit=/bench-xl-domu"' \
        'memory = 256' 'vcpus = 1' > "$w/dom0/etc/bench/domu.cfg"
    [ -z "${BENCH_XL_CFG:-}" ] || printf '%s\n' "$BENCH_XL_CFG" >> "$w/dom0/etc/bench/domu.cfg"
    mkcpio "$w/dom0" "$w/dom0-overlay.gz"
    cat "$base" "$w/dom0-overlay.gz" > "$OUT/xl/$hyp-dom0-initrd.gz"
    rm -rf "$w"
    XL_INITRD[$hyp]=$OUT/xl/$hyp-dom0-initrd.gz
}
XL_DOM0_ARGS="console=hvc0 earlycon=xen rdinit=/bench-xl-init"
if [ -n "$XL_KINDS" ]; then
    command -v cpio >/dev/null 2>&1 || die "cpio not found: run make setup"
    # hcbench (dom0-backend/xenctrl/examples/hcbench.rs): the trivial-hypercall figure
    log "cargo build -p xenctrl --example hcbench --release --target aarch64-unknown-linux-musl"
    (cd "$REPO" && cargo build -q -p xenctrl --example hcbench --release --target aarch64-unknown-linux-musl) ||
        die "building hcbench failed (see cargo's message above)"
    HCBENCH=${CARGO_TARGET_DIR:-$REPO/target}/aarch64-unknown-linux-musl/release/examples/hcbench
    for h in $HYPS; do
        [ -n "${SKIP[$h]:-}" ] && continue
        xl_initrd "$h" || log "$h: no toolstack runs: ${XL_SKIP[$h]}"
    done
fi

# ---------------------------------------------------------------- QEMU command
# One hypervisor command line for both (oxen accepts Xen's options). Boot modules as in
# the Xen reference harness: kernel at 0x50000000 (QEMU puts the DTB at RAM + 128 MiB),
# initrd 2 MiB-aligned after it with a 2 MiB gap.
HYP_ARGS="dom0_mem=${DOM0_MEM}M console=dtuart dtuart=/pl011@9000000 loglvl=all guest_loglvl=all${BENCH_HYP_ARGS:+ $BENCH_HYP_ARGS}"
DOM0_ARGS="console=hvc0 earlycon=xen rdinit=/init oxen.dom0=check oxen.ping=$PING"
KADDR=$((0x50000000))
KSIZE=$(stat -c %s "$IMAGE")
ISIZE=$(stat -c %s "$INITRD")
IADDR=$(( (KADDR + KSIZE + 0x200000 + 0x1fffff) & ~0x1fffff ))

qemu_cmd() { # hyp kind [initrd dom0-args] -> QEMU argv in the array CMD
    local initrd=${3:-$INITRD} dargs=${4:-$DOM0_ARGS}
    CMD=("$QEMU_BIN"
        -machine "virt,virtualization=on,gic-version=$GIC"
        -cpu cortex-a72 -smp "$SMP" -m "$MEM"
        -nographic -no-reboot -nic none)
    # shellcheck disable=SC2054 # the commas are QEMU's, not array separators
    [ "$2" = icount ] && CMD+=(-icount shift=0,sleep=off)
    CMD+=(-kernel "${BIN[$1]}" -append "$HYP_ARGS"
        -device "guest-loader,addr=$(printf '0x%x' $KADDR),kernel=$IMAGE,bootargs=$dargs"
        -device "guest-loader,addr=$(printf '0x%x' $IADDR),initrd=$initrd")
}

# ---------------------------------------------------------------- one run
# Watches the console line by line (host-stamped into the log) and writes the figures
# of the run as key=value lines into $OUT/<hyp>-<kind>-<n>.txt.
#
# Xen's free memory: once Dom0's /init runs, the console sends Ctrl-a three times (each
# doubled: Ctrl-a is QEMU's -nographic escape, Ctrl-a Ctrl-a sends one) to switch the
# serial input to Xen, then the debug key `m`, which prints the free pages of every
# heap zone ("Xen heap: NkB free", "heap[NN]: NkB free").
usecs() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }
secs() { printf '%d.%03d' $(($1 / 1000000)) $(($1 / 1000 % 1000)); }

run_one() { # hyp kind n -> 0 if Dom0 reached /init; kind xlicount|xlwall: toolstack run
    local hyp=$1 kind=$2 n=$3 name="$1-$2-$3"
    local logf=$OUT/$name.log res=$OUT/$name.txt dir qpid wfd rfd tmo=$TIMEOUT xl=0 xlres="" xldone=0
    case $kind in
        xl*) xl=1; tmo=$XL_TIMEOUT; qemu_cmd "$hyp" "${kind#xl}" "${XL_INITRD[$hyp]}" "$XL_DOM0_ARGS" ;;
        *) qemu_cmd "$hyp" "$kind" ;;
    esac
    printf '%q ' "${CMD[@]}" > "$OUT/$name.cmdline"; echo >> "$OUT/$name.cmdline"
    dir=$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX") || die "mktemp failed"
    mkfifo "$dir/in" "$dir/out" || die "mkfifo failed in $dir"
    exec {wfd}<>"$dir/in"   # held open: QEMU never sees EOF on its stdin
    local load; load=$(cut -d' ' -f1-3 /proc/loadavg)
    local t0; t0=$(usecs)
    timeout -k 5 "$tmo" "${CMD[@]}" < "$dir/in" > "$dir/out" 2>&1 &
    qpid=$!
    exec {rfd}<"$dir/out"

    local line buf="" firsterr="" now rel last=$t0 status=running sent=0 pre_linux=1
    local w_hyp="" w_linux="" w_init="" up="" pk="" pmed="" pmean="" pn="" memkb="" xfree=0 xseen=0 ofree="" oafter=""
    : > "$logf"
    while :; do
        if IFS= read -r -t 2 -u "$rfd" line; then
            line=$buf$line; buf=""
        else
            rc=$?
            if [ $rc -gt 128 ]; then # timed out: keep the partial line, check the clocks
                buf+=$line
                now=$(usecs)
                if [ $(( (now - last) / 1000000 )) -ge "$SILENCE" ]; then
                    status="stopped: no console output for ${SILENCE}s"; kill "$qpid" 2>/dev/null
                fi
                continue
            fi
            [ -n "$buf$line" ] || break # EOF: QEMU exited
            line=$buf$line; buf=""
        fi
        line=${line%$'\r'}
        now=$(usecs); rel=$((now - t0)); last=$now
        printf '[%4d.%06d] %s\n' $((rel / 1000000)) $((rel % 1000000)) "$line" >> "$logf"
        [ "$VERBOSE" = 1 ] && echo "$name| $line" >&2
        case $line in
            *"(XEN) Xen version"*|*"(oxen) "*) [ -n "$w_hyp" ] || w_hyp=$rel ;;&
            *"Booting Linux on physical CPU"*) [ -n "$w_linux" ] || w_linux=$rel; pre_linux=0 ;;
            *"Run /init as init process"*)
                [[ $line =~ \[\ *([0-9]+\.[0-9]+)\]\ Run\ /init ]] && pk=${BASH_REMATCH[1]} ;;
            *OXEN-DOM0-INIT*)
                [ -n "$w_init" ] || w_init=$rel
                if [ "$hyp" = xen ] && [ $sent = 0 ] && [ $xl = 0 ]; then
                    printf '\001\001\001\001\001\001m' >&"$wfd"; sent=1
                fi ;;
            *"dom0: uptime_at_init_s="*) up=${line##*=} ;;
            *"bench-xl: done"*) xldone=1 ;;
            *"bench-xl: error="*) [ -n "$firsterr" ] || firsterr=${line#*bench-xl: } ;;&
            *"bench-xl: "*=*)
                [[ $line =~ bench-xl:\ ([a-z0-9_]+)=([^[:space:]]*) ]] &&
                    xlres+="${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"$'\n' ;;
            *"bench-xl-out: "*) [ -n "$firsterr" ] || case $line in *rror*|*ailed*) firsterr=${line#*bench-xl-out: } ;; esac ;;
            *"dom0: mem_total_kb="*) memkb=${line##*=} ;;
            *"evtchn-ping: "*" round trips, median "*)
                [[ $line =~ evtchn-ping:\ ([0-9]+)\ round\ trips,\ median\ ([0-9.]+)\ us,\ mean\ ([0-9.]+)\ us ]] &&
                    { pn=${BASH_REMATCH[1]}; pmed=${BASH_REMATCH[2]}; pmean=${BASH_REMATCH[3]}; } ;;
            *"(XEN)"*"heap"*"kB free"*)
                # every zone once: "Xen heap" (zone 0) and "heap[NN]" (the others); the
                # "DMA heap"/"Dom heap" lines are partial sums of the heap[NN] ones
                if [[ $line =~ (Xen\ heap|heap\[[0-9]+\]):\ ([0-9]+)kB\ free ]]; then
                    xfree=$((xfree + BASH_REMATCH[2])); xseen=1
                fi ;;
            *"boot modules released"*"MiB free for domains"*)
                # after Dom0 is built and the boot modules are given back
                [[ $line =~ ([0-9]+)\ MiB\ free\ for\ domains ]] && oafter=${BASH_REMATCH[1]} ;;
            *"MiB free for domains"*)
                [ $pre_linux = 1 ] && [[ $line =~ ([0-9]+)\ MiB\ free\ for\ domains ]] && ofree=${BASH_REMATCH[1]} ;;
        esac
        case $line in
            *"terminating on signal"*) ;; # QEMU stopped by the timeout: not a cause
            *ERROR*|*anic*|*crashed*|*Oops*|*"Unable to"*|qemu-system*:*) [ -n "$firsterr" ] || firsterr=$line ;;
        esac
        case $line in
            *"(XEN) Panic on CPU"*|*"Kernel panic - not syncing"*|*"(oxen) ERROR: hypervisor panic"*)
                [ "$status" = running ] && status="stopped: panic ($line)"
                # let the rest of the panic message arrive, then stop QEMU
                ( sleep 3; kill "$qpid" 2>/dev/null ) & ;;
        esac
    done
    wait "$qpid"; local qrc=$?
    exec {rfd}<&- {wfd}>&-
    rm -rf "$dir"
    local total; total=$(( $(usecs) - t0 ))
    if [ "$status" = running ]; then
        case $qrc in
            124|137) status="stopped: timeout after ${tmo}s" ;;
            *) if [ -z "$w_init" ]; then
                   status="QEMU exited (status $qrc) before Dom0 /init"
               elif [ $xl = 1 ]; then
                   if [ $xldone = 0 ]; then status="QEMU exited (status $qrc) before the toolstack steps ended"
                   elif [[ $xlres != *xl_destroy_s=* ]]; then status="toolstack steps failed: ${firsterr:-see $logf}"
                   else status=completed; fi
               elif [ -z "$pmed" ]; then
                   status="QEMU exited (status $qrc) without an evtchn-ping result"
               else
                   status=completed
               fi ;;
        esac
    fi
    [ -n "$w_init" ] || status="$status; first error: ${firsterr:-none} (see $logf)"
    {
        echo "hyp=$hyp"; echo "kind=$kind"; echo "run=$n"; echo "status=$status"
        echo "host_loadavg_start=$load"; echo "host_total_s=$(secs $total)"
        [ -n "$w_hyp" ] && echo "wall_hyp_banner_s=$(secs "$w_hyp")"
        [ -n "$w_linux" ] && echo "wall_linux_s=$(secs "$w_linux")"
        [ -n "$w_init" ] && echo "wall_init_s=$(secs "$w_init")"
        [ -n "$up" ] && echo "uptime_init_s=$up"
        [ -n "$pk" ] && echo "printk_init_s=$pk"
        [ -n "$pmed" ] && { echo "ping_n=$pn"; echo "ping_median_us=$pmed"; echo "ping_mean_us=$pmean"; }
        [ -n "$memkb" ] && echo "dom0_mem_total_kb=$memkb"
        [ -n "$xlres" ] && printf '%s' "$xlres"
        if [ "$hyp" = xen ] && [ $xseen = 1 ]; then
            echo "free_mib=$(awk -v k=$xfree 'BEGIN { printf "%.1f", k / 1024 }')"
            v=$(awk -v k=$xfree -v m="$MEM" -v d="$DOM0_MEM" 'BEGIN { printf "%.1f", m - d - k / 1024 }')
            echo "hyp_mem_mib=$v"; echo "hyp_mem_excl_modules_mib=$v"
        fi
        if [ "$hyp" = oxen ] && [ -n "$oafter" ]; then
            # oxen released the boot modules: RAM − free − Dom0 is what it keeps
            echo "free_mib=$oafter"
            echo "hyp_mem_mib=$((MEM - oafter - DOM0_MEM))"
            echo "hyp_mem_excl_modules_mib=$((MEM - oafter - DOM0_MEM))"
        elif [ "$hyp" = oxen ] && [ -n "$ofree" ]; then
            echo "free_mib=$ofree"
            echo "hyp_mem_mib=$((MEM - ofree))"
            echo "hyp_mem_excl_modules_mib=$(awk -v m="$MEM" -v f="$ofree" -v b=$((KSIZE + ISIZE)) 'BEGIN { printf "%.1f", m - f - b / 1048576 }')"
        fi
    } > "$res"
    log "$name: ${status%% (see *}${w_init:+, /init after $(secs "$w_init") s}${pmed:+, evtchn median $pmed us}$([ -n "$xlres" ] && echo ", $(echo "$xlres" | grep -E '^(xl_create_s|create_to_domu_init_s|xl_destroy_s|domu_xenstore_read_us|hypercall_ns)=' | tr '\n' ' ')") (log: $logf)"
    if [ $xl = 1 ]; then [ "$status" = completed ]; else [ -n "$w_init" ]; fi
}

# ---------------------------------------------------------------- the runs
NPROC=$(nproc)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
OTHERQ=$(pgrep -c -f '^([^ ]*/)?qemu-system' 2>/dev/null); OTHERQ=${OTHERQ:-0}
overloaded() { awk -v l="${1%% *}" -v n="$NPROC" 'BEGIN { exit !(l > n) }'; }
if overloaded "$LOAD0"; then
    log "WARNING: host load average $LOAD0 > $NPROC CPUs: TCG wall times will be inflated (2-20x)"
fi
log "output: $OUT (runs: $RUNS x {$KINDS} x {$HYPS}, timeout ${TIMEOUT}s)"

for hyp in $HYPS; do
    [ -n "${SKIP[$hyp]:-}" ] && continue
    for kind in $KINDS; do
        for n in $(seq 1 "$RUNS"); do
            if ! run_one "$hyp" "$kind" "$n" && [ "$KEEP_GOING" != 1 ] && [ "$n" -lt "$RUNS" ]; then
                log "$hyp-$kind: run $n did not reach Dom0 /init: skipping the remaining $kind runs (BENCH_KEEP_GOING=1 runs them)"
                break
            fi
        done
    done
    for kind in $XL_KINDS; do
        [ -n "${XL_INITRD[$hyp]:-}" ] || continue
        for n in $(seq 1 "$RUNS"); do
            if ! run_one "$hyp" "xl$kind" "$n" && [ "$KEEP_GOING" != 1 ] && [ "$n" -lt "$RUNS" ]; then
                log "$hyp-xl$kind: run $n did not complete the toolstack steps: skipping the remaining ones (BENCH_KEEP_GOING=1 runs them)"
                break
            fi
        done
    done
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- the table
# values of KEY over the runs of HYP/KIND, one a line
vals() { cat "$OUT/$1-$2-"*.txt 2>/dev/null | sed -n "s/^$3=//p"; }
stat3() { # stdin: numbers -> "median (min-max)" or "median" for one run, "" for none
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        if (NR == 1 || v[1] == v[NR]) printf "%s", fmt(m)
        else printf "%s (%s–%s)", fmt(m), fmt(v[1]), fmt(v[NR])
    }
    function fmt(x) { return (x == int(x) || x >= 1000) ? sprintf("%.0f", x) : sprintf("%.4g", x) }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
cell() { # hyp kind key -> table cell
    local hyp=$1 kind=$2 s
    if [ -n "${SKIP[$hyp]:-}" ]; then echo "n/a (${SKIP[$hyp]})"; return; fi
    case " $HYPS " in *" $hyp "*) ;; *) echo "not run"; return ;; esac
    case " $KINDS $(for k in $XL_KINDS; do printf 'xl%s ' "$k"; done)" in *" $kind "*) ;; *) echo "not run"; return ;; esac
    case $kind in xl*) [ -n "${XL_INITRD[$hyp]:-}" ] || { echo "n/a (${XL_SKIP[$hyp]:-no toolstack image})"; return; } ;; esac
    s=$(vals "$hyp" "$kind" "$3" | stat3)
    if [ -n "$s" ]; then
        local ok all
        ok=$(vals "$hyp" "$kind" "$3" | wc -l); all=$(find "$OUT" -maxdepth 1 -name "$hyp-$kind-*.txt" | wc -l)
        [ "$ok" -lt "$all" ] && s="$s [$ok/$all runs]"
        echo "$s"
    elif [ -z "$(vals "$hyp" "$kind" wall_init_s)" ]; then
        echo "n/a (did not reach /init)"
    elif [[ $kind == xl* ]]; then # why the toolstack steps did not give it (the first run's status)
        local st; st=$(vals "$hyp" "$kind" status | head -n 1 | sed 's/ (see .*//; s/|/\\|/g')
        echo "n/a (${st:0:160})"
    else
        echo "n/a"
    fi
}
ratio() { # hyp kind key -> oxen/xen of the medians
    local a b
    a=$(vals oxen "$1" "$2" | median); b=$(vals xen "$1" "$2" | median)
    [ -n "$a" ] && [ -n "$b" ] && awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "–" }' || echo "–"
}
row() { # label kind key
    echo "| $1 | $(cell oxen "$2" "$3") | $(cell xen "$2" "$3") | $(ratio "$2" "$3") |"
}
size_of() { if [ -s "$1" ]; then stat -c %s "$1"; else echo "n/a (missing)"; fi; }
mem_kind() { case " $KINDS " in *" wall "*) echo wall ;; *) echo icount ;; esac; }

XEN_VER=$(sed -n 's/.*(XEN) Xen version \([^ ]*\) .*/\1/p' "$OUT"/xen-*.log 2>/dev/null | head -1)
OXEN_SZ=$(size_of "$OXEN_BIN"); XEN_SZ=$(size_of "$XEN_BIN")
SZ_RATIO=$([[ $OXEN_SZ =~ ^[0-9]+$ && $XEN_SZ =~ ^[0-9]+$ ]] && awk -v a="$OXEN_SZ" -v b="$XEN_SZ" 'BEGIN { printf "%.2f", a / b }' || echo "–")
MK=$(mem_kind)
{
    echo "## oxen vs Xen ${XEN_VER:-4.17}: Linux Dom0 boot benchmark"
    echo
    echo "QEMU $("$QEMU_BIN" --version | sed -n '1s/.*version \([^ ]*\).*/\1/p'), virt GICv$GIC, cortex-a72, $SMP vCPUs, $MEM MiB, Dom0 $DOM0_MEM MiB," \
         "Linux $(cat "$CACHE/dom0/kver" 2>/dev/null || echo '?'), evtchn-ping $PING round trips; $RUNS run(s) per hypervisor and kind;" \
         "cells: median (min–max). Host: $NPROC CPUs, load average $LOAD0 at start, $LOAD1 at end, $OTHERQ other QEMU process(es) at start."
    overloaded "$LOAD0" && { echo; echo "**WARNING: host load average ${LOAD0%% *} > $NPROC CPUs: wall-clock figures are inflated and noisy (TCG varies 2–20× with host load); compare the icount rows.**"; }
    echo
    echo "| figure | oxen | Xen 4.17 | oxen/Xen |"
    echo "| --- | --- | --- | --- |"
    row "QEMU start → Dom0 /init, host wall clock (s), MTTCG" wall wall_init_s
    row "QEMU start → Dom0 \"Booting Linux\", host wall clock (s), MTTCG" wall wall_linux_s
    row "Dom0 uptime when /init starts, icount guest time (s)" icount uptime_init_s
    row "Dom0 printk \"Run /init\" timestamp, icount guest time (s)" icount printk_init_s
    row "QEMU start → Dom0 /init, host wall clock (s), icount" icount wall_init_s
    row "evtchn round trip, median (µs), MTTCG guest clock" wall ping_median_us
    row "evtchn round trip, mean (µs), MTTCG guest clock" wall ping_mean_us
    row "evtchn round trip, median (µs), icount guest time" icount ping_median_us
    row "evtchn round trip, mean (µs), icount guest time" icount ping_mean_us
    echo "| hypervisor image, bytes of the -kernel file | $OXEN_SZ | $XEN_SZ | $SZ_RATIO |"
    for k in $XL_KINDS; do
        case $k in icount) kt="icount guest time" ;; *) kt="MTTCG guest clock" ;; esac
        row "\`xl create\` → DomU /init (DOMU-INIT), $kt (s)" "xl$k" create_to_domu_init_s
        row "\`xl create\` command alone, $kt (s)" "xl$k" xl_create_s
        row "\`xl destroy\`, $kt (s)" "xl$k" xl_destroy_s
        row "\`xenstore-read\` round trip from the DomU, $kt (µs)" "xl$k" domu_xenstore_read_us
        row "trivial hypercall from Dom0 userspace, above a null ioctl, $kt (ns)" "xl$k" hypercall_ns
        row "DomU kernel uptime when its /init starts, $kt (s)" "xl$k" domu_uptime_at_init_s
    done
    row "memory kept by the hypervisor (MiB)" "$MK" hyp_mem_mib
    row "… not counting the boot modules (MiB)" "$MK" hyp_mem_excl_modules_mib
    echo
    echo "Method:"
    echo "- Same QEMU options, hypervisor command line (\`$HYP_ARGS\`) and Dom0 (\`$DOM0_ARGS\`) for both; only \`-kernel\` differs. Exact commands: \`$OUT/*.cmdline\`."
    echo "- *wall* runs use QEMU's default TCG (MTTCG, one host thread per vCPU): host-load dependent. *icount* runs add \`-icount shift=0,sleep=off\` (guest clock = instruction count, 1 ns per instruction, idle time skipped; QEMU then runs all vCPUs on one host thread, MTTCG cannot do icount): their guest times do not depend on the host."
    echo "- /init time: host time from QEMU start to the \`OXEN-DOM0-INIT\` console line; guest time: \`/proc/uptime\` read by /init (10 ms resolution) and the kernel's printk stamp of \`Run /init as init process\`; both count from the Dom0 kernel's own start (its timekeeping starts at 0), so the hypervisor's boot is not in them."
    echo "- evtchn round trip: \`evtchn-ping $PING\` in Dom0 (two /dev/xen/evtchn handles bound by a loopback interdomain channel), its median and mean."
    [ -n "$XL_KINDS" ] && echo "- Toolstack rows: Dom0 booted with \`$XL_DOM0_ARGS\` from its initramfs + the bench overlay (\`$OUT/xl/\`). Xen: Debian's xl/libxl/oxenstored/xenconsoled 4.17 ($(sed -n 's/^xen-utils-4.17=//p' "$CACHE/xen-ref/manifest.txt" 2>/dev/null)); oxen: our xl, xenstored, xenconsoled (/etc/init.d/xencommons). DomU: PVH, 1 vCPU, 256 MiB, PV console only, same kernel. \`xl create\` → DomU /init: from the start of \`xl create\` to the DomU's first /init line in xenconsoled's log (polled every 10 ms). \`xenstore-read\` round trip: measured in the DomU, one process doing 200 reads of \`domid\` (one transaction) minus a 1-read process, per read. Clock: the guest kernel's monotonic clock in ns from /proc/timer_list (an awk fork per stamp, the same on both); the DomU /init line is looked for every 10 ms."
    [ -n "$XL_KINDS" ] && echo "- Trivial hypercall: \`hcbench 20000\` in the toolstack runs' Dom0 before \`xl create\` (dom0-backend/xenctrl/examples/hcbench.rs): the mean time of \`xen_version(XENVER_version)\` through \`IOCTL_PRIVCMD_HYPERCALL\` minus that of an ioctl privcmd answers ENOTTY without leaving Dom0 (under icount: instructions)."
    echo "- Hypervisor memory = RAM − memory free for domains − Dom0's memory. Xen: free = sum over its heap zones from the \`m\` debug key (memory info), sent on the serial console once Dom0's /init runs (what \`xl info\` free_memory reports: 1504 MiB in the reference run); Xen has freed the boot modules by then, so both rows are equal. oxen: ${MEM} MiB − Dom0's ${DOM0_MEM} MiB − the \`MiB free for domains\` figure of its \`boot modules released\` line (printed after Dom0 is built and the boot modules are given back). Older oxen builds printed only the figure from before Dom0 is built, which still counts the boot modules (Dom0 Image + initrd, $(awk -v b=$((KSIZE + ISIZE)) 'BEGIN { printf "%.1f", b / 1048576 }') MiB), which the second row leaves out."
    echo "- n/a (did not reach /init): Dom0 never printed \`OXEN-DOM0-INIT\` (timeout ${TIMEOUT} s, ${SILENCE} s of console silence, panic or QEMU exit); see the run's log. [k/N runs]: only k runs gave the figure."
    echo "- Raw logs (console stamped with host seconds since QEMU start) and per-run figures: \`$OUT/\`."
} | tee "$OUT/summary.md"

# ---------------------------------------------------------------- exits by kind (oxen)
# qemu/profile.sh on the same Dom0 evtchn-ping workload: EL2 instructions per guest exit
# by exit kind (Xen's image has no symbols to attribute its instructions, so oxen only).
if [ "${BENCH_PROFILE:-1}" != 0 ] && [[ " $HYPS " == *" oxen "* ]] && [ -z "${SKIP[oxen]:-}" ]; then
    log "exit profile: qemu/profile.sh (BENCH_PROFILE=0 skips it)"
    if PROFILE_OXEN=$OXEN_BIN PROFILE_OUT=$OUT/profile PROFILE_GIC=$GIC PROFILE_SMP=$SMP \
        bash "$HERE/profile.sh" > "$OUT/profile.log" 2>&1; then
        {
            echo
            echo "### oxen: EL2 instructions per guest exit, by kind"
            echo
            echo "\`qemu/profile.sh\`: Dom0's evtchn-ping ping-pong under icount, every EL2 instruction of $(sed -n 's/^\([0-9]*\) guest exits.*/\1/p' "$OUT/profile/report.txt") exits traced (per function: \`$OUT/profile/report.txt\`)."
            echo
            echo "| exit kind | exits | instructions per exit |"
            echo "| --- | --- | --- |"
            awk '/^exit kind/ { t = 1; next } t && NF == 0 { exit } t { n = NF; printf "| %s | %s | %s |\n", substr($0, 1, index($0, $(n - 2)) - 1), $(n - 2), $(n - 1) }' "$OUT/profile/report.txt" | sed 's/  *|/ |/'
            sed -n 's/^\([0-9]*\) guest exits, \([0-9]*\) instructions at EL2, \([0-9]*\) per exit$/| all | \1 | \3 |/p' "$OUT/profile/report.txt"
        } | tee -a "$OUT/summary.md"
    else
        log "exit profile failed (see $OUT/profile.log)"
    fi
fi
