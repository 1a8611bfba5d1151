#!/bin/bash
# run-rpi4.sh - `make run BOARD=rpi4`: oxen (build/oxen.bin, the same image as on virt) with
# Debian's Linux as Dom0 on QEMU's Raspberry Pi 4 model (-machine raspi4b: 4 Cortex-A72,
# GIC-400, spin-table CPUs, 960 MiB described), interactive on the mini UART, which the DT's
# stdout-path names as on the real board (QEMU's second serial port; the PL011, the first, is
# Dom0's and goes nowhere). Ctrl-a x quits; `poweroff` in Dom0 ends QEMU through the PM
# watchdog.
#
# RPI4_SD=<image> boots the SD-card image `make sdcard` built (build/oxen-rpi4-sd.img) the way
# the board does, through Debian's U-Boot and boot.scr, with the U-Boot and DT it left in
# <image's dir>/rpi4-qemu (QEMU cannot run the Pi firmware that would load them).
#
# The device tree is Debian's own bcm2711-rpi-4-b.dtb (from the Dom0 kernel package that
# `make dom0` unpacks in .cache/dom0-root) with the edits shared/research/rpi4.md lists:
# nodes QEMU does not model disabled, and the Xen boot-module nodes under /chosen, because
# `-device guest-loader` does not reach the DTB on raspi4b; the modules go in with
# `-device loader`. Knobs: OXEN_ARGS, DOM0_ARGS (as `make run`), QEMU.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${OXEN_CACHE:-$root/.cache}
QEMU=${QEMU:-qemu-system-aarch64}
OXEN_ARGS=${OXEN_ARGS:-dom0_mem=512M loglvl=info}
DOM0_ARGS=${DOM0_ARGS:-console=hvc0 rdinit=/init oxen.dom0=shell}
oxen=$root/build/oxen.bin
image=$cache/dom0/Image
initrd=$cache/dom0/dom0-initrd.gz

die() { echo "run-rpi4: error: $*" >&2; exit 1; }
# The mini UART (second serial port) is the console; the PL011 goes nowhere.
serial=(-serial null -serial mon:stdio)

if [ -n "${RPI4_SD:-}" ]; then
    q=$(dirname "$RPI4_SD")/rpi4-qemu
    for f in "$RPI4_SD" "$q/u-boot.bin" "$q/qemu.dtb"; do
        [ -s "$f" ] || die "$f missing: run make sdcard"
    done
    echo "run-rpi4: $RPI4_SD through U-Boot on raspi4b; 'poweroff' in Dom0's shell or Ctrl-a x quits"
    exec "$QEMU" -machine raspi4b -smp 4 -m 2048 -nographic -no-reboot \
        -kernel "$q/u-boot.bin" -dtb "$q/qemu.dtb" -drive "if=sd,format=raw,file=$RPI4_SD" \
        "${serial[@]}"
fi
for f in "$oxen" "$image" "$initrd" "$cache/dom0/kver"; do
    [ -s "$f" ] || die "$f missing: run make build"
done
command -v fdtput >/dev/null || die "fdtput not found (make setup installs device-tree-compiler)"
src=$cache/dom0-root/usr/lib/linux-image-$(cat "$cache/dom0/kver")/broadcom/bcm2711-rpi-4-b.dtb
[ -f "$src" ] || die "$src missing: run make dom0"

kernel_addr=0x10000000
kernel_size=$(stat -c %s "$image")
initrd_addr=$(( (kernel_addr + kernel_size + 0x200000 + 0x1fffff) & ~0x1fffff ))
initrd_size=$(stat -c %s "$initrd")

mkdir -p "$cache/rpi4"
dtb=$cache/rpi4/run.dtb
cp "$src" "$dtb"
for n in clock@7ef00000 interrupt-controller@7ef00100 hdmi@7ef00700 i2c@7ef04500 hdmi@7ef05700 i2c@7ef09500; do
    fdtput -t s "$dtb" "/soc/$n" status disabled
done
fdtput -t x "$dtb" /chosen '#address-cells' 2
fdtput -t x "$dtb" /chosen '#size-cells' 2
fdtput -t s "$dtb" /chosen xen,xen-bootargs "$OXEN_ARGS"
fdtput -t s "$dtb" /chosen xen,dom0-bootargs "$DOM0_ARGS"
module() { # module <addr> <size> <kind>
    local node
    node=/chosen/module@$(printf %x "$1")
    fdtput -c "$dtb" "$node"
    fdtput -t s "$dtb" "$node" compatible "$3" multiboot,module
    fdtput -t x "$dtb" "$node" reg 0 "$(printf %x "$1")" 0 "$(printf %x "$2")"
}
module "$kernel_addr" "$kernel_size" multiboot,kernel
module "$initrd_addr" "$initrd_size" multiboot,ramdisk

echo "run-rpi4: oxen on raspi4b with Debian's Linux as Dom0; 'poweroff' in the shell or Ctrl-a x quits"
exec "$QEMU" -machine raspi4b -smp 4 -m 2048 -nographic -no-reboot \
    -kernel "$oxen" -dtb "$dtb" \
    -device "loader,file=$image,addr=$(printf 0x%x $kernel_addr),force-raw=on" \
    -device "loader,file=$initrd,addr=$(printf 0x%x $initrd_addr),force-raw=on" \
    "${serial[@]}"
