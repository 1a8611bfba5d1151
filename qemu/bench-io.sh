#!/bin/bash
# bench-io.sh - PV disk and network throughput of a DomU on oxen beside real Xen 4.17, both on
# the same QEMU command under `-icount shift=0,sleep=off` (guest time = instructions).
#
#   qemu/bench-io.sh            # BENCH_IO_RUNS runs per hypervisor, Markdown table on stdout
#   qemu/bench-io.sh --profile disk|net|evtchn  # oxen only: EL2 instructions per guest exit
#                               # while the DomU writes and reads xvda / Dom0 sends to the
#                               # DomU / Dom0 and DomU processes ping-pong an event channel
#   qemu/bench-io.sh --help
#
# What runs: qemu/bench.sh's toolstack (xl) runs, with its machinery (QEMU command, Xen 4.17
# from Debian, Dom0 images: ours for oxen, Debian's xl/libxl/oxenstored/xenconsoled and its
# block/vif-bridge hotplug scripts for Xen, built by qemu/xen-xl-compat.sh) and this
# script's scenario in place of its own (BENCH_XL_DOM0_INIT, BENCH_XL_DOMU_INIT, BENCH_XL_CFG).
# It mirrors the Xen reference harness's `io` scenario (shared/reference/run.sh io), so the
# figures compare with its samples:
#   Dom0   loads blkback/netback/loop/bridge, starts the toolstack, makes xenbr0 192.0.2.1/24,
#          a sparse 2x BENCH_IO_MB MiB image /run/io.img on tmpfs and an `nc -l` receiver
#          (port 5001, `dd of=/dev/null bs=64k`), then `xl create` of a PVH DomU (1 vCPU,
#          256 MiB, same kernel) with `disk = [ 'format=raw, vdev=xvda, access=rw,
#          target=/run/io.img' ]` and `vif = [ 'mac=00:16:3e:00:00:02, bridge=xenbr0' ]`.
#   DomU   eth0 = 192.0.2.2/24; `dd if=/dev/zero of=/dev/xvda bs=1M count=BENCH_IO_MB
#          oflag=direct` then the same read back with iflag=direct (MB/s); `ping -c 10`
#          Dom0 (after one warm-up ping; average round trip); BENCH_IO_NET_MB MiB to Dom0 with
#          `nc 192.0.2.1 5001 -e dd if=/dev/zero bs=64k` (Dom0's receiver times it); then it
#          listens on 5002 and Dom0 sends it BENCH_IO_NET_MB MiB the same way (DomU's
#          receiver times it); then the event-channel round trip between a DomU process and
#          a Dom0 process: the DomU runs `evtchn-ping BENCH_IO_EVTCHN --serve 0` (an unbound
#          port for Dom0, printed on its console), Dom0 `evtchn-ping BENCH_IO_EVTCHN
#          --connect <domid>:<port> --cpu 0` (median and mean of the round trips it times),
#          pinned: the process and its events on Dom0's vCPU 0; then again with the events
#          on vCPU 1 (`--event-cpu 1`: Linux wakes the process by an IPI). Unpinned, which
#          of the two Linux does is decided by the order of earlier bindings and wake-ups,
#          differently from run to run on either hypervisor (Xen 4.17: 52.7 or 93.0 us); `xl
#          destroy`. Before `xl create` Dom0 also times its loopback channel (`evtchn-ping
#          BENCH_IO_EVTCHN`, as bench.sh) for the ratio beside it.
#          evtchn-ping (dom0-backend/evtchn-ping, built here) and the kernel's xen-evtchn.ko
#          (for a DomU without the module, as the Xen side's) ride in both scripts as
#          base64 payloads, so both hypervisors run the same binary.
# Times: the guests' monotonic clocks in ns (/proc/timer_list, one awk fork per stamp, the
# same on both hypervisors); under icount Dom0's and the DomU's clocks are the same virtual
# clock. MB = MiB here, as dd and the reference harness count.
#
# --profile runs qemu/profile.sh (its QEMU command and exit analysis) on oxen's Dom0 image with
# this scenario (BENCH_IO_NET_MB [512] with net, BENCH_IO_EVTCHN [200000], so that the
# transfer and the ping-pong outlast the tracing): tracing starts when the DomU begins its
# disk test (disk), Dom0 starts sending (net) or pinging the DomU (evtchn), for
# PROFILE_EXITS guest exits; the report says which exits (hypercalls, interrupts, WFI, ...)
# and functions the hypervisor's instructions go to.
#
# Raw logs and per-run figures: BENCH_OUT [.cache/bench/io-<date>]/ (bench.sh's layout; its own
# table, mostly "not run", in bench-sh.md).
#
# Environment (defaults in brackets): BENCH_IO_RUNS [3]  BENCH_IO_MB [64]  BENCH_IO_NET_MB [64]
#   BENCH_IO_EVTCHN [1000] (event-channel round trips)
#   BENCH_IO_COUNTERS [0] 1: the hypervisor's exit counters (`xl debug-keys x`, oxen's key),
#     blkback's request and the vif's packet counts at the edges of each phase, for exits per
#     request and per packet; off by default, as the disk phase's first snapshot runs beside
#     the DomU's writes (~3% slower)
#   BENCH_IO_TIMEOUT [1500] (s per run)  BENCH_HYPS [oxen xen]  BENCH_GIC [3]  BENCH_OUT
#   and the rest of qemu/bench.sh's (BENCH_OXEN, BENCH_XEN, BENCH_VERBOSE, QEMU, ...).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CACHE=${OXEN_CACHE:-$REPO/.cache}

die() { echo "bench-io: error: $*" >&2; exit 1; }
log() { echo "bench-io: $*" >&2; }
PROFILE=
case "${1:-}" in
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    --profile) PROFILE=${2:-}; case $PROFILE in disk|net|evtchn) ;; *) die "--profile disk, net or evtchn" ;; esac ;;
    "") ;;
    *) echo "bench-io: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac

RUNS=${BENCH_IO_RUNS:-3}
IO_MB=${BENCH_IO_MB:-64}
NET_MB=${BENCH_IO_NET_MB:-$([ "$PROFILE" = net ] && echo 512 || echo 64)}
EVTCHN=${BENCH_IO_EVTCHN:-$([ -n "$PROFILE" ] && echo 200000 || echo 1000)}
for v in RUNS IO_MB NET_MB EVTCHN; do [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_IO_$v=${!v} is not a positive integer"; done
# (--profile: the loopback run stays short; only the traced ping-pong is long)
EVTCHN_LOOP=$([ -n "$PROFILE" ] && echo 1000 || echo "$EVTCHN")
COUNTERS=${BENCH_IO_COUNTERS:-0}
OUT=${BENCH_OUT:-$CACHE/bench/io-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/io" || die "cannot create $OUT"

# ---------------------------------------------------------------- Dom0 scenario
# busybox sh, the same on both Dom0 images; output `bench-xl: key=value` lines (what
# bench.sh collects), `bench-xl: done` at the end.
cat > "$OUT/io/bench-io-dom0" <<'IODOM0'
#!/bin/busybox sh
# bench-io.sh scenario (Dom0, rdinit=/bench-xl-init)
export PATH=/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C
IO_MB=@IO_MB@ NET_MB=@NET_MB@ EVTCHN=@EVTCHN@ EVTCHN_LOOP=@EVTCHN_LOOP@ COUNTERS=@COUNTERS@
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
now() { read -r NOW _ < /proc/uptime; }
stamp() { STAMP=$(awk '/^now at/ { printf "%.6f", $3 / 1e9; exit }' /proc/timer_list); }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
mkfifo /run/.nap; exec 9<>/run/.nap
nap() { read -r -t 0.01 _ <&9; }
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-blkback xen-netback loop bridge; do
    modprobe "$m" 2>/dev/null || say "error=modprobe $m failed"
done
mount -t xenfs xenfs /proc/xen 2>/dev/null
mkdir -p /run/xen /run/xenstored /var/log/xen/console /var/lib/xen /var/lib/xenstored
if [ -x /etc/init.d/xencommons ]; then          # oxen's Dom0 image
    /etc/init.d/xencommons start > /tmp/xc.out 2>&1 || { show /tmp/xc.out; say "error=xencommons start failed"; off; }
else                                             # Debian's toolstack, as its xencommons
    oxenstored --pid-file /run/xen/xenstored.pid
    i=0; while [ ! -s /run/xen/xenstored.pid ] && [ $i -lt 3000 ]; do nap; i=$((i + 1)); done
    xen-init-dom0 > /dev/null
    xenconsoled --pid-file=/run/xen/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console
fi
ip link set lo up
brctl addbr xenbr0 && echo 0 > /sys/class/net/xenbr0/bridge/forward_delay &&
    ip addr add 192.0.2.1/24 dev xenbr0 && ip link set xenbr0 up || say "error=bridge xenbr0 failed"
dd if=/dev/zero of=/run/io.img bs=1M count=0 seek=$((IO_MB * 2)) 2>/dev/null
# receiver of the DomU -> Dom0 transfer: nc -e hands the socket to dd (64 KiB reads)
payload() { # NAME DEST: the payload NAME appended to this script (base64 of gzip)
    sed -n "/^__PAYLOAD_$1__\$/,/^__END_$1__\$/p" "$0" | sed '1d;$d' | base64 -d | gunzip > "$2"
}
mkdir -p /run/evp
payload evtchn-ping /run/evp/evtchn-ping && chmod 0755 /run/evp/evtchn-ping || say "error=evtchn-ping payload failed"
# Dom0's loopback channel, beside the Dom0 <-> DomU one below
if /run/evp/evtchn-ping "$EVTCHN_LOOP" > /run/evp/loop.out 2>&1; then
    grep -a '^evtchn-ping: [0-9]' /run/evp/loop.out
    sed -n 's/^evtchn-ping: [0-9]* round trips, median \([0-9.]*\) us, mean \([0-9.]*\) us.*/evtchn_loopback_median_us=\1 evtchn_loopback_mean_us=\2/p' /run/evp/loop.out |
        tr ' ' '\n' | while read -r kv; do say "$kv"; done
else
    say "error=evtchn-ping loopback: $(tail -n 1 /run/evp/loop.out)"
fi
nc -l -p 5001 -e sh -c 'awk "/^now at/ { printf \"%.6f\n\", \$3 / 1e9; exit }" /proc/timer_list > /run/rx.a; dd of=/dev/null bs=64k iflag=fullblock 2>/run/rx.dd; awk "/^now at/ { printf \"%.6f\n\", \$3 / 1e9; exit }" /proc/timer_list > /run/rx.b' &
CONLOG=/var/log/xen/console/guest-domu.log
LOGFD=
wait_for() { # PATTERN SECONDS: follow the DomU console log; WAIT_LINE = the line
    now; end=$(( ${NOW%.*} + $2 )); buf=""
    while [ -z "$LOGFD" ]; do
        [ -f "$CONLOG" ] && { exec 8< "$CONLOG"; LOGFD=8; break; }
        nap; now; [ "${NOW%.*}" -ge "$end" ] && return 1
    done
    while :; do
        if IFS= read -r line <&8; then
            line="$buf$line"; buf=""
            case $line in *"$1"*) WAIT_LINE=$(echo "$line" | tr -d '\r'); return 0 ;; esac
        else
            buf="$buf$line"
            nap; now; [ "${NOW%.*}" -ge "$end" ] && return 1
        fi
    done
}
stamp; T0=$STAMP
xl create /etc/bench/domu.cfg > /tmp/create.out 2>&1
rc=$?
stamp; T1=$STAMP
say "xl_create_rc=$rc"
[ $rc = 0 ] || { show /tmp/create.out; off; }
say "xl_create_s=$(sub "$T0" "$T1")"
wait_for DOMU-INIT 600 || { say "error=no DOMU-INIT in $CONLOG"; off; }
# BENCH_IO_COUNTERS=1: the hypervisor's exit counters (oxen's debug key 'x', on its console),
# blkback's request and the vif's packet counts at the edges of each phase: exits per request or
# packet = deltas (the disk phase's edges are where Dom0 sees the DomU's markers, so a few
# requests fall outside)
vbd_stat() { cat /sys/bus/xen-backend/devices/vbd-*/statistics/"$1" 2>/dev/null | head -n 1; }
vif_stat() { cat /sys/class/net/vif*.0/statistics/"$1" 2>/dev/null | head -n 1; }
counters() {
    [ "$COUNTERS" = 1 ] || return 0
    echo "bench-io: counters $1 vbd $(vbd_stat rd_req) $(vbd_stat wr_req) vif $(vif_stat tx_packets) $(vif_stat rx_packets)"
    xl debug-keys x > /dev/null 2>&1
}
# markers for qemu/profile.sh (bench-io.sh --profile)
wait_for DOMU-DISK 600 && echo "bench-io: the DomU writes and reads its disk" && counters disk-start
wait_for DOMU-NET 1200 && echo "bench-io: the DomU is done with its disk" && counters disk-end
# blkback's request counts for the disk phase
for c in rd_req wr_req rd_sect wr_sect; do v=$(vbd_stat $c); say "vbd_$c=${v:-?}"; done
if wait_for DOMU-LISTEN 1200; then
    counters net-start
    echo "bench-io: Dom0 sends to the DomU"
    stamp; a=$STAMP
    nc 192.0.2.2 5002 -e dd if=/dev/zero bs=64k count=$((NET_MB * 16)) 2>/dev/null
    stamp; say "net_dom0_to_domu_sender_s=$(sub "$a" "$STAMP")"
    echo "bench-io: Dom0 has sent"
    counters net-end
else
    say "error=the DomU did not listen"
fi
# Twice, pinned (Linux would spread the ports over Dom0's vCPUs and wake the process on
# whichever it runs on: a run-to-run lottery on either hypervisor): the process and its
# events on vCPU 0, then the events on vCPU 1 (Linux wakes the process there by an IPI).
for run in "dom0_domu:--cpu 0" "dom0_domu_ipi:--cpu 0 --event-cpu 1"; do
    key=${run%%:*}; pin=${run#*:}
    if wait_for "evtchn-ping: serving port" 1200; then
        port=${WAIT_LINE#*serving port }; port=${port%% *}
        echo "bench-io: Dom0 pings the DomU's event channel ($pin)"
        counters "$key-start"
        # shellcheck disable=SC2086 # $pin is two or four words
        if /run/evp/evtchn-ping "$EVTCHN" --connect "$(xl domid domu):$port" $pin > /run/evp/inter.out 2>&1; then
            counters "$key-end"
            grep -a '^evtchn-ping: ' /run/evp/inter.out
            sed -n "s/^evtchn-ping: [0-9]* round trips, median \([0-9.]*\) us, mean \([0-9.]*\) us.*/evtchn_${key}_median_us=\1 evtchn_${key}_mean_us=\2/p" /run/evp/inter.out |
                tr ' ' '\n' | while read -r kv; do say "$kv"; done
        else
            say "error=evtchn-ping --connect $pin: $(tail -n 1 /run/evp/inter.out)"
        fi
    else
        say "error=the DomU's evtchn-ping did not serve"
    fi
done
wait_for DOMU-DONE 1200 || say "error=the DomU did not finish"
# the DomU's figures, relayed
grep -a '^DOMU-KV ' "$CONLOG" | tr -d '\r' | while read -r _ kv; do say "$kv"; done
grep -a '^DOMU-ERR' "$CONLOG" | tr -d '\r' | head -n 5 | while read -r l; do say "error=$l"; done
if [ -s /run/rx.b ]; then
    blocks=$(sed -n 's/^\([0-9]*\)+.*records in/\1/p' /run/rx.dd)
    a=$(cat /run/rx.a); b=$(cat /run/rx.b)
    say "net_domu_to_dom0_rx_mb=$((blocks / 16))"
    say "net_domu_to_dom0_rx_s=$(sub "$a" "$b")"
    say "net_domu_to_dom0_mbps=$(awk -v n="$blocks" -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", n / 16 / (b - a) }')"
else
    say "error=Dom0 received nothing from the DomU"
fi
for c in rx_packets tx_packets rx_dropped tx_dropped; do
    v=$(vif_stat $c); say "vif_$c=${v:-?}"
done
stamp; T0=$STAMP
xl destroy domu > /tmp/destroy.out 2>&1
rc=$?
stamp; T1=$STAMP
say "xl_destroy_rc=$rc"
if [ $rc = 0 ]; then say "xl_destroy_s=$(sub "$T0" "$T1")"; else show /tmp/destroy.out; fi
off
exit 0
IODOM0

# ---------------------------------------------------------------- DomU scenario
# `DOMU-KV key=value` lines (relayed by Dom0), DOMU-LISTEN, DOMU-DONE.
cat > "$OUT/io/bench-io-domu" <<'IODOMU'
#!/bin/busybox sh
# bench-io.sh scenario (DomU, rdinit=/bench-xl-domu)
IO_MB=@IO_MB@ NET_MB=@NET_MB@ EVTCHN=@EVTCHN@
/bin/busybox mount -t proc proc /proc
read UP IDLE < /proc/uptime
echo "DOMU-INIT uptime=$UP"
/bin/busybox --install -s
export PATH=/usr/bin:/usr/sbin:/bin:/sbin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
kv() { echo "DOMU-KV $*"; }
t() { awk '/^now at/ { printf "%.6f", $3 / 1e9; exit }' /proc/timer_list; }
rate() { awk -v m="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.2f", m / (b - a) }'; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
for m in xen-blkfront xen-netfront; do modprobe $m 2>/dev/null; done
i=0; while { [ ! -b /dev/xvda ] || [ ! -e /sys/class/net/eth0 ]; } && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
[ -b /dev/xvda ] || echo "DOMU-ERR no /dev/xvda"
ip link set lo up
ip addr add 192.0.2.2/24 dev eth0 && ip link set eth0 up || echo "DOMU-ERR no eth0"
# disk: sequential direct write, then read (the reference harness's dd lines)
echo "DOMU-DISK"
a=$(t); dd if=/dev/zero of=/dev/xvda bs=1M count=$IO_MB oflag=direct 2>/tmp/ddw; rc=$?; b=$(t)
if [ $rc = 0 ]; then kv "disk_write_s=$(secs $a $b)"; kv "disk_write_mbps=$(rate $IO_MB $a $b)"
else echo "DOMU-ERR disk write: $(tail -n 1 /tmp/ddw)"; fi
a=$(t); dd if=/dev/xvda of=/dev/null bs=1M count=$IO_MB iflag=direct 2>/tmp/ddr; rc=$?; b=$(t)
if [ $rc = 0 ]; then kv "disk_read_s=$(secs $a $b)"; kv "disk_read_mbps=$(rate $IO_MB $a $b)"
else echo "DOMU-ERR disk read: $(tail -n 1 /tmp/ddr)"; fi
echo "DOMU-NET"
# ping: one to learn the ARP entry and the bridge port, then 10
ping -c 1 -W 10 192.0.2.1 > /dev/null 2>&1
out=$(ping -c 10 -W 5 192.0.2.1 2>&1)
kv "ping_received=$(echo "$out" | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')"
avg=$(echo "$out" | sed -n 's|.*min/avg/max = [0-9.]*/\([0-9.]*\)/.*|\1|p')
[ -n "$avg" ] && kv "ping_rtt_us=$(awk -v m="$avg" 'BEGIN { printf "%.0f", m * 1000 }')"
mm=$(echo "$out" | sed -n 's|.*min/avg/max = \([0-9.]*\)/[0-9.]*/\([0-9.]*\).*|\1 \2|p')
[ -n "$mm" ] && kv "ping_min_us=$(echo "$mm" | awk '{ printf "%.0f", $1 * 1000 }')" &&
    kv "ping_max_us=$(echo "$mm" | awk '{ printf "%.0f", $2 * 1000 }')"
# network DomU -> Dom0 (Dom0's receiver times it; the sender's time for reference)
a=$(t); nc 192.0.2.1 5001 -e dd if=/dev/zero bs=64k count=$((NET_MB * 16)) 2>/dev/null; b=$(t)
kv "net_domu_to_dom0_sender_s=$(secs $a $b)"
# network Dom0 -> DomU: this side receives and times it
nc -l -p 5002 -e sh -c 'awk "/^now at/ { printf \"%.6f\n\", \$3 / 1e9; exit }" /proc/timer_list > /tmp/rx.a; dd of=/dev/null bs=64k iflag=fullblock 2>/tmp/rx.dd; awk "/^now at/ { printf \"%.6f\n\", \$3 / 1e9; exit }" /proc/timer_list > /tmp/rx.b' &
nl=$!
sleep 0.2
echo "DOMU-LISTEN"
wait $nl
if [ -s /tmp/rx.b ]; then
    blocks=$(sed -n 's/^\([0-9]*\)+.*records in/\1/p' /tmp/rx.dd)
    a=$(cat /tmp/rx.a); b=$(cat /tmp/rx.b)
    kv "net_dom0_to_domu_rx_mb=$((blocks / 16))"
    kv "net_dom0_to_domu_rx_s=$(secs $a $b)"
    kv "net_dom0_to_domu_mbps=$(rate $((blocks / 16)) $a $b)"
else
    echo "DOMU-ERR received nothing from Dom0"
fi
for c in rx_packets tx_packets rx_dropped tx_dropped rx_errors; do kv "eth0_$c=$(cat /sys/class/net/eth0/statistics/$c)"; done
# event channel: this process answers Dom0's evtchn-ping (see the top)
payload() { # NAME DEST: the payload NAME appended to this script (base64 of gzip)
    sed -n "/^__PAYLOAD_$1__\$/,/^__END_$1__\$/p" "$0" | sed '1d;$d' | base64 -d | gunzip > "$2"
}
mkdir -p /tmp/evp
payload evtchn-ping /tmp/evp/evtchn-ping && chmod 0755 /tmp/evp/evtchn-ping || echo "DOMU-ERR evtchn-ping payload failed"
if [ ! -e /dev/xen/evtchn ]; then
    modprobe xen-evtchn 2>/dev/null || { payload xen-evtchn /tmp/evp/xen-evtchn.ko && insmod /tmp/evp/xen-evtchn.ko; }
fi
i=0; while [ ! -e /dev/xen/evtchn ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
for run in 1 2; do # Dom0 pings twice (see the top)
    /tmp/evp/evtchn-ping "$EVTCHN" --serve 0 --wait-ms 1200000 2>&1 || echo "DOMU-ERR evtchn-ping --serve $run failed"
done
echo "DOMU-DONE"
while :; do sleep 3600; done
exit 0
IODOMU
sed -i "s/@IO_MB@/$IO_MB/; s/@NET_MB@/$NET_MB/; s/@EVTCHN@/$EVTCHN/; s/@EVTCHN_LOOP@/$EVTCHN_LOOP/; s/@COUNTERS@/$COUNTERS/" "$OUT/io/bench-io-dom0" "$OUT/io/bench-io-domu"

# ---------------------------------------------------------------- payloads
# evtchn-ping (static musl, stripped when binutils-aarch64-linux-gnu is there) and the
# kernel's xen-evtchn.ko from build-dom0.sh's unpacked tree, appended to both scripts
log "cargo build -p evtchn-ping --release --target aarch64-unknown-linux-musl"
(cd "$REPO" && cargo build -q -p evtchn-ping --release --target aarch64-unknown-linux-musl) ||
    die "building evtchn-ping failed (is the aarch64-unknown-linux-musl target installed? run 'make setup')"
PING_BIN=${CARGO_TARGET_DIR:-$REPO/target}/aarch64-unknown-linux-musl/release/evtchn-ping
KO=$(find "$CACHE/dom0-root/lib/modules/$(cat "$CACHE/dom0/kver" 2>/dev/null)" -name 'xen-evtchn.ko*' 2>/dev/null | head -n 1)
[ -n "$KO" ] || die "no xen-evtchn.ko under $CACHE/dom0-root: run qemu/build-dom0.sh"
cp "$PING_BIN" "$OUT/io/evtchn-ping" || die "no $PING_BIN"
command -v aarch64-linux-gnu-strip >/dev/null 2>&1 && aarch64-linux-gnu-strip "$OUT/io/evtchn-ping"
append_payload() { # NAME FILE SCRIPT
    { echo "__PAYLOAD_$1__"; gzip -9 -n -c "$2" | base64; echo "__END_$1__"; } >> "$3"
}
for f in "$OUT/io/bench-io-dom0" "$OUT/io/bench-io-domu"; do
    append_payload evtchn-ping "$OUT/io/evtchn-ping" "$f"
done
append_payload xen-evtchn "$KO" "$OUT/io/bench-io-domu"

# ---------------------------------------------------------------- --profile (oxen only)
if [ -n "$PROFILE" ]; then
    # oxen's Dom0 initramfs + the scenario, as bench.sh's toolstack runs assemble it
    w=$OUT/io/overlay
    mkdir -p "$w/domu" "$w/dom0/etc/bench" "$w/dom0/opt/bench" || die "mkdir failed in $w"
    install -m 0755 "$OUT/io/bench-io-domu" "$w/domu/bench-xl-domu"
    install -m 0755 "$OUT/io/bench-io-dom0" "$w/dom0/bench-xl-init"
    mkcpio() { (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6 -n > "$2"; }
    mkcpio "$w/domu" "$w/domu-overlay.gz"
    cat "$CACHE/dom0/domu-initrd.gz" "$w/domu-overlay.gz" > "$w/dom0/opt/bench/domu-initrd.gz"
    printf '%s\n' 'name = "domu"' 'type = "pvh"' 'kernel = "/opt/domu/Image"' \
        'ramdisk = "/opt/bench/domu-initrd.gz"' 'extra = "console=hvc0 rdinit=/bench-xl-domu"' \
        'memory = 256' 'vcpus = 1' "disk = [ 'format=raw, vdev=xvda, access=rw, target=/run/io.img' ]" \
        "vif = [ 'mac=00:16:3e:00:00:02, bridge=xenbr0' ]" > "$w/dom0/etc/bench/domu.cfg"
    mkcpio "$w/dom0" "$w/dom0-overlay.gz"
    cat "$CACHE/dom0/dom0-initrd.gz" "$w/dom0-overlay.gz" > "$OUT/io/oxen-dom0-initrd.gz"
    case $PROFILE in
        disk) arm="bench-io: the DomU writes and reads its disk*"; end="bench-io: the DomU is done with its disk*" ;;
        net) arm="bench-io: Dom0 sends to the DomU*"; end="bench-io: Dom0 has sent*" ;;
        evtchn) arm="bench-io: Dom0 pings the DomU's event channel*"; end="DOMU-DONE*" ;;
    esac
    log "profiling oxen: $PROFILE ($OUT)"
    PROFILE_INITRD=$OUT/io/oxen-dom0-initrd.gz PROFILE_DOM0_ARGS="console=hvc0 earlycon=xen rdinit=/bench-xl-init" \
    PROFILE_ARM=$arm PROFILE_END=$end PROFILE_OUT=${PROFILE_OUT:-$OUT/profile-$PROFILE} \
        exec bash "$HERE/profile.sh"
fi

# ---------------------------------------------------------------- the runs (bench.sh)
log "output: $OUT ($RUNS run(s) per hypervisor, disk $IO_MB MiB, network $NET_MB MiB each way)"
BENCH_KINDS="" BENCH_XL_KINDS=icount BENCH_RUNS=$RUNS BENCH_OUT=$OUT BENCH_PROFILE=0 \
BENCH_XL_TIMEOUT=${BENCH_IO_TIMEOUT:-1500} BENCH_SILENCE=${BENCH_SILENCE:-300} \
BENCH_XL_DOM0_INIT=$OUT/io/bench-io-dom0 BENCH_XL_DOMU_INIT=$OUT/io/bench-io-domu \
BENCH_XL_CFG="disk = [ 'format=raw, vdev=xvda, access=rw, target=/run/io.img' ]
vif = [ 'mac=00:16:3e:00:00:02, bridge=xenbr0' ]" \
    bash "$HERE/bench.sh" > "$OUT/bench-sh.md" || die "qemu/bench.sh failed (see $OUT)"

# ---------------------------------------------------------------- the table
HYPS=${BENCH_HYPS:-oxen xen}
vals() { cat "$OUT/$1-xlicount-"*.txt 2>/dev/null | sed -n "s/^$2=//p"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
cell() { # hyp key -> median (min-max) or why not
    local v
    case " $HYPS " in *" $1 "*) ;; *) echo "not run"; return ;; esac
    v=$(vals "$1" "$2" | sort -g | awk '{ v[NR] = $1 } END { if (!NR) exit
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        if (NR == 1 || v[1] == v[NR]) print m; else printf "%s (%s–%s)\n", m, v[1], v[NR] }')
    if [ -n "$v" ]; then echo "$v"
    else echo "n/a ($(vals "$1" status | head -n 1 | sed 's/ (see .*//; s/|/\\|/g' | cut -c1-120))"; fi
}
ratio() { local a b; a=$(vals oxen "$1" | median); b=$(vals xen "$1" | median)
    [ -n "$a" ] && [ -n "$b" ] && awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "–" }' || echo "–"; }
row() { echo "| $1 | $(cell oxen "$2") | $(cell xen "$2") | $(ratio "$2") |"; }
XEN_VER=$(sed -n 's/.*(XEN) Xen version \([^ ]*\) .*/\1/p' "$OUT"/xen-*.log 2>/dev/null | head -1)
{
    echo "## oxen vs Xen ${XEN_VER:-4.17}: DomU PV disk and network (icount guest time)"
    echo
    echo "QEMU $(${QEMU:-qemu-system-aarch64} --version | sed -n '1s/.*version \([^ ]*\).*/\1/p'), virt GICv${BENCH_GIC:-3}, cortex-a72, 2 vCPUs, 2048 MiB, Dom0 512 MiB, \`-icount shift=0,sleep=off\`;" \
         "DomU PVH 1 vCPU 256 MiB, same kernel $(cat "$CACHE/dom0/kver" 2>/dev/null); $RUNS run(s) per hypervisor; cells: median (min–max)."
    echo
    echo "| figure | oxen | Xen 4.17 | oxen/Xen |"
    echo "| --- | --- | --- | --- |"
    row "xvda sequential write, $IO_MB MiB, 1 MiB O_DIRECT (MB/s)" disk_write_mbps
    row "xvda sequential read, $IO_MB MiB, 1 MiB O_DIRECT (MB/s)" disk_read_mbps
    row "TCP DomU → Dom0, $NET_MB MiB, at Dom0's receiver (MB/s)" net_domu_to_dom0_mbps
    row "TCP Dom0 → DomU, $NET_MB MiB, at the DomU's receiver (MB/s)" net_dom0_to_domu_mbps
    row "ping DomU → Dom0, average of 10 (µs)" ping_rtt_us
    row "… fastest of the 10 (µs)" ping_min_us
    row "… slowest of the 10 (µs)" ping_max_us
    row "ping replies received (of 10)" ping_received
    row "event-channel round trip Dom0 process ↔ DomU process, its events on its Dom0 vCPU, median of $EVTCHN (µs)" evtchn_dom0_domu_median_us
    row "… mean (µs)" evtchn_dom0_domu_mean_us
    row "… events on the other Dom0 vCPU (woken by IPI), median (µs)" evtchn_dom0_domu_ipi_median_us
    row "… mean (µs)" evtchn_dom0_domu_ipi_mean_us
    row "event-channel round trip in Dom0 (loopback), median of $EVTCHN (µs)" evtchn_loopback_median_us
    row "\`xl create\` with the disk and vif (s)" xl_create_s
    row "\`xl destroy\` (s)" xl_destroy_s
    echo
    echo "Method: qemu/bench-io.sh (see its --help): the Xen reference harness's \`io\` scenario (disk image /run/io.img on Dom0's tmpfs behind a loop device, blkback; vif on the bridge xenbr0, netback; busybox dd and nc with 64 KiB blocks; event channels: \`evtchn-ping $EVTCHN --serve 0\` in the DomU, \`evtchn-ping $EVTCHN --connect <domid>:<port> --cpu 0 [--event-cpu 1]\` in Dom0, which times the round trips, and \`evtchn-ping $EVTCHN\` (loopback) in Dom0 before \`xl create\`) on both hypervisors, Xen with Debian's toolstack and hotplug scripts, oxen with ours. Per-run figures and consoles: \`$OUT/\`."
} | tee "$OUT/summary.md"
