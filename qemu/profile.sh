#!/usr/bin/env bash
# profile.sh - where oxen's instructions go on each guest exit (hypercall, interrupt, ...).
#
#   qemu/profile.sh            # build/oxen.bin + build/oxen.elf; report on stdout
#   qemu/profile.sh --help
#
# Boots oxen with the bench's Dom0 (`oxen.dom0=check`: Debian's kernel, the evtchn-ping
# loopback ping-pong) on the bench's QEMU command under `-icount shift=0,sleep=off`, with no
# logging until evtchn-ping runs (the console is quiet for a second after Dom0's dmesg
# lines). Then, through the QEMU monitor, it turns on `-d in_asm,exec,nochain` filtered
# (-dfilter) to the hypervisor's .text until PROFILE_EXITS guest exits were seen, and stops
# QEMU: that is every instruction executed at EL2 during that part of the ping-pong.
# qemu/profile-exits.py cuts the trace into guest exits (lower-EL vector entry to `eret`),
# names each exit's kind from the functions it ran (hypercall event_channel_op, interrupt,
# WFI, MMIO vGIC, ...; "+switch" when another vCPU was loaded, "+idle" when the CPU waited
# for an interrupt inside the exit, "+migrate" when the vCPU loaded last ran on another
# CPU) and prints per kind the exits, the mean instructions per exit and the mean
# instructions per exit of each function (the ELF's symbols; inlined functions count as
# their caller). The trace goes through a FIFO, never to disk.
#
# Environment (defaults in brackets):
#   PROFILE_OXEN [build/oxen.bin]  PROFILE_ELF [oxen.elf beside PROFILE_OXEN]
#   PROFILE_PING [1000000] evtchn-ping round trips (must outlast the tracing; QEMU is stopped then)
#   PROFILE_EXITS [20000]  guest exits traced
#   PROFILE_GIC [3]  PROFILE_SMP [2]  PROFILE_TOP [12] (functions listed per kind)
#   PROFILE_HYP_ARGS [] more hypervisor options, e.g. `dom0_max_vcpus=2` with PROFILE_SMP=1
#     (Dom0's vCPUs share one CPU: "+switch" exits) or `dom0_max_vcpus=4` (vCPUs move
#     between the CPUs: "+migrate" exits)
#   PROFILE_DETAIL [] per-address counts of the functions whose name contains this
#   PROFILE_SEQUENCE [] set: also $PROFILE_OUT/sequence.txt, every exit in trace order
#     (n, CPU, instructions, kind: what ran around one exit)
#   PROFILE_LOAD [0x40200000] (where QEMU virt loads the image)  PROFILE_TIMEOUT [600]  PROFILE_OUT [.cache/profile/<date>] (console log, report)
#   QEMU [qemu-system-aarch64]  NM [aarch64-linux-gnu-nm]  OXEN_CACHE [.cache]
#   Another Dom0 workload (qemu/bench-io.sh --profile): PROFILE_INITRD (Dom0's initramfs),
#   PROFILE_DOM0_ARGS (its command line), PROFILE_ARM and PROFILE_END (shell patterns of the
#   console lines after which the next second of console silence starts the tracing, and
#   that mean the workload ended)
# Run time: Dom0's boot (~30 s on an idle host) plus the traced exits.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${OXEN_CACHE:-$REPO/.cache}
case ${1:-} in
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    "") ;;
    *) echo "profile: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac

OXEN_BIN=${PROFILE_OXEN:-$REPO/build/oxen.bin}
ELF=${PROFILE_ELF:-${OXEN_BIN%.bin}.elf}
PING=${PROFILE_PING:-1000000}
EXITS=${PROFILE_EXITS:-20000}
GIC=${PROFILE_GIC:-3}
LOAD=$(( ${PROFILE_LOAD:-0x40200000} ))
SMP=${PROFILE_SMP:-2}
TOP=${PROFILE_TOP:-12}
TIMEOUT=${PROFILE_TIMEOUT:-600}
QEMU_BIN=${QEMU:-qemu-system-aarch64}
NM=${NM:-aarch64-linux-gnu-nm}
IMAGE=$CACHE/dom0/Image
INITRD=${PROFILE_INITRD:-$CACHE/dom0/dom0-initrd.gz}
ARM=${PROFILE_ARM:-"dom0: dev-xen="*}
END=${PROFILE_END:-*"evtchn-ping: "*" round trips"*}
OUT=${PROFILE_OUT:-$CACHE/profile/$(date +%Y%m%d-%H%M%S)}

die() { echo "profile: error: $*" >&2; exit 1; }
log() { echo "profile: $*" >&2; }
[ -s "$OXEN_BIN" ] || die "$OXEN_BIN missing: run make hypervisor"
[ -s "$ELF" ] || die "$ELF missing (the ELF of $OXEN_BIN; set PROFILE_ELF)"
{ [ -s "$IMAGE" ] && [ -s "$INITRD" ]; } || die "$IMAGE or $INITRD missing: run qemu/build-dom0.sh"
command -v python3 >/dev/null 2>&1 || die "python3 not found"
command -v "$NM" >/dev/null 2>&1 || die "$NM not found: run make setup (binutils-aarch64-linux-gnu)"
mkdir -p "$OUT"

# The hypervisor's text and exception vectors, from the ELF.
"$NM" -C -n --defined-only "$ELF" > "$OUT/syms.txt"
read -r TEXT_START TEXT_SIZE < <(aarch64-linux-gnu-readelf -SW "$ELF" 2>/dev/null |
    awk '{ for (i = 1; i < NF; i++) if ($i == ".text") { print "0x" $(i + 2), "0x" $(i + 4); exit } }') || true
[ -n "${TEXT_START:-}" ] || die "no .text section in $ELF"
VBAR=0x$(awk '$3 == "oxen_vectors" { print $1 }' "$OUT/syms.txt")
[ "$VBAR" != 0x ] || die "no oxen_vectors symbol in $ELF"
# The image is position-independent: QEMU virt loads it at RAM + text_offset (0x4020_0000);
# the ELF's addresses are shifted by the difference (0 when it is linked there).
START=0x$(awk '$3 == "_start" { print $1 }' "$OUT/syms.txt")
[ "$START" != 0x ] || die "no _start symbol in $ELF"
BIAS=$(( LOAD - START ))
TEXT_START=$(printf '0x%x' $(( TEXT_START + BIAS )))
VBAR=$(printf '0x%x' $(( VBAR + BIAS )))
aarch64-linux-gnu-objcopy -O binary "$ELF" "$OUT/image.bin"
cmp -s "$OUT/image.bin" "$OXEN_BIN" ||
    log "warning: $OXEN_BIN is not the image of $ELF: functions may be misnamed"

# The bench's QEMU command (qemu/bench.sh), icount, its monitor on the console mux.
HYP_ARGS="dom0_mem=512M console=dtuart dtuart=/pl011@9000000 loglvl=all guest_loglvl=all${PROFILE_HYP_ARGS:+ $PROFILE_HYP_ARGS}"
DOM0_ARGS=${PROFILE_DOM0_ARGS:-"console=hvc0 earlycon=xen rdinit=/init oxen.dom0=check oxen.ping=$PING"}
KADDR=$((0x50000000))
IADDR=$(( (KADDR + $(stat -c %s "$IMAGE") + 0x200000 + 0x1fffff) & ~0x1fffff ))
FIFO=$OUT/trace.fifo
rm -f "$FIFO" "$OUT/enough"
mkfifo "$FIFO"
CMD=("$QEMU_BIN" -machine "virt,virtualization=on,gic-version=$GIC" -cpu cortex-a72
    -smp "$SMP" -m 2048 -nographic -no-reboot -nic none -icount shift=0,sleep=off
    -D "$FIFO" -dfilter "$TEXT_START+$TEXT_SIZE"
    -kernel "$OXEN_BIN" -append "$HYP_ARGS"
    -device "guest-loader,addr=$(printf '0x%x' $KADDR),kernel=$IMAGE,bootargs=$DOM0_ARGS"
    -device "guest-loader,addr=$(printf '0x%x' $IADDR),initrd=$INITRD")
printf '%q ' "${CMD[@]}" > "$OUT/cmdline"; echo >> "$OUT/cmdline"

monitor() { # one HMP command, through -nographic's console mux (Ctrl-a c toggles)
    printf '\001c%s\n\001c' "$1" >&"${QEMU_PROC[1]}"
}

# The analyser reads the trace as QEMU writes it (QEMU opens the log at the first `log`).
DETAIL=${PROFILE_DETAIL:-}
python3 "$REPO/qemu/profile-exits.py" "$FIFO" "$OUT/syms.txt" "$VBAR" --bias "$BIAS" --top "$TOP" \
    ${DETAIL:+--detail "$DETAIL"} ${PROFILE_SEQUENCE:+--sequence "$OUT/sequence.txt"} \
    --summary "$OUT/summary.txt" --exits "$EXITS" --enough "$OUT/enough" > "$OUT/report.txt" &
ANALYSER=$!
cleanup() {
    [ -n "${QPID:-}" ] && kill "$QPID" 2>/dev/null || true
    kill "$ANALYSER" 2>/dev/null || true
    rm -f "$FIFO"
}
trap cleanup EXIT

log "booting $OXEN_BIN (GICv$GIC, $SMP CPUs, icount); tracing $PING evtchn round trips"
START=$SECONDS
TRACING=0 ARMED=0 T0=0
partial=
coproc QEMU_PROC { exec timeout "$TIMEOUT" "${CMD[@]}" 2>&1; }
QPID=$QEMU_PROC_PID
while :; do
    if [ $TRACING = 1 ] && [ -e "$OUT/enough" ]; then
        monitor "log none"
        TRACING=2
        log "traced $EXITS exits in $((SECONDS - T0)) s; stopping QEMU"
        kill "$QPID" 2>/dev/null || true
    fi
    rc=0
    IFS= read -r -t 1 part <&"${QEMU_PROC[0]:-/dev/null}" || rc=$?
    if [ $rc -gt 128 ]; then  # a second without output: keep what came
        partial+=$part
        if [ $TRACING = 0 ] && [ $ARMED = 1 ]; then
            # evtchn-ping prints only when done: its ping-pong is what runs now
            monitor "log in_asm,exec,nochain"
            TRACING=1
            T0=$SECONDS
            log "tracing (Dom0 reached the ping-pong in $((SECONDS - START)) s)"
        fi
        continue
    fi
    [ $rc = 0 ] || break
    line=$partial$part
    partial=
    line=${line//$'\r'/}
    printf '%s\n' "$line" >> "$OUT/console.log"
    case $line in
    $ARM)
        ARMED=1 ;;
    $END)
        [ $TRACING = 1 ] && { monitor "log none"; log "the ping-pong ended before $EXITS exits were traced"; }
        TRACING=2
        log "$line" ;;
    *"evtchn-ping: error"*|*"Kernel panic"*|*"hypervisor exception"*)
        log "$line" ;;
    esac
done
wait "$QPID" 2>/dev/null || true
QPID=
[ $TRACING = 2 ] || { [ $TRACING = 1 ] && monitor "log none" 2>/dev/null; die "evtchn-ping did not finish (see $OUT/console.log)"; }
wait "$ANALYSER" || die "the analyser failed"
log "done in $((SECONDS - START)) s; report in $OUT/report.txt"
echo "oxen exit profile: $OXEN_BIN, GICv$GIC, $SMP CPUs, $PING evtchn-ping round trips in Dom0 (icount)"
cat "$OUT/report.txt"
