#!/bin/bash
# build-rpi4-sd.sh OUT_DIR OXEN KERNEL [INITRD] - a Raspberry Pi 4 SD-card image that boots oxen
# with Linux as Dom0 (`make sdcard`; the rpi4 tests boot the same image in QEMU raspi4b).
#
# OUT_DIR/oxen-rpi4-sd.img: an MBR card with one FAT32 partition (type 0x0c, at 4 MiB), which is
# all the Pi 4's boot ROM and firmware read and all Debian's U-Boot needs:
#   start4.elf, fixup4.dat   the VideoCore firmware (Debian's raspi-firmware, non-free-firmware)
#   config.txt               arm_64bit, kernel=u-boot.bin, enable_uart, enable_gic, ...
#   u-boot.bin               Debian's u-boot-rpi, rpi_arm64 (the firmware's "kernel")
#   bcm2711-rpi-4-b.dtb      from the Dom0 kernel package, unmodified (the firmware edits it:
#                            memory, serial numbers; also -rpi-400 and -rpi-cm4-io when present)
#   boot.scr                 U-Boot's script image: loads the three below, moves the firmware's
#                            DT, adds Xen's /chosen boot-module nodes and command lines
#                            (shared/research/rpi4.md §5c) and `booti`s oxen
#   oxen.bin, Image, initrd.gz
# OUT_DIR/rpi4-qemu/: what QEMU needs besides the card, since it cannot run the VideoCore
# firmware: u-boot.bin (QEMU's -kernel) and qemu.dtb (the DT with the nodes QEMU does not
# model disabled: what the firmware would hand U-Boot).
#
# Env: OXEN_ARGS (hypervisor), DOM0_ARGS (Dom0 kernel), RPI4_CONSOLE=mini (default: the mini
# UART on GPIO 14/15, the DT's stdout-path) or pl011 (config.txt dtoverlay=disable-bt and
# dtuart=serial0 for oxen; the overlay file comes from RPI4_OVERLAYS=<dir>, Debian ships none),
# OXEN_CACHE. The Debian packages are fetched with `apt-get download` from the machine's apt
# sources (`make setup` enables non-free-firmware) into $OXEN_CACHE/rpi4/debs.
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${OXEN_CACHE:-$root/.cache}
out=${1:?usage: build-rpi4-sd.sh OUT_DIR OXEN KERNEL [INITRD]}
oxen=${2:?oxen image}
kernel=${3:?Dom0 kernel}
initrd=${4:-}
OXEN_ARGS=${OXEN_ARGS:-dom0_mem=512M loglvl=info}
DOM0_ARGS=${DOM0_ARGS:-console=hvc0 rdinit=/init oxen.dom0=shell}
RPI4_CONSOLE=${RPI4_CONSOLE:-mini}

log() { echo "sdcard: $*" >&2; }
die() { echo "sdcard: error: $*" >&2; exit 1; }
for t in fdtput:device-tree-compiler mkfs.vfat:dosfstools mcopy:mtools sfdisk:fdisk; do
    command -v "${t%%:*}" >/dev/null || die "${t%%:*} not found: run 'make setup' (installs ${t#*:})"
done
for f in "$oxen" "$kernel" ${initrd:+"$initrd"}; do
    [ -s "$f" ] || die "$f missing: run 'make build'"
done
case $RPI4_CONSOLE in
    mini) ;;
    pl011) OXEN_ARGS="$OXEN_ARGS dtuart=serial0" ;;
    *) die "RPI4_CONSOLE=$RPI4_CONSOLE: say mini (the default) or pl011" ;;
esac
dtbdir=$cache/dom0-root/usr/lib/linux-image-$(cat "$cache/dom0/kver" 2>/dev/null)/broadcom
[ -f "$dtbdir/bcm2711-rpi-4-b.dtb" ] || die "$dtbdir/bcm2711-rpi-4-b.dtb missing: run 'make dom0'"
mkdir -p "$out/rpi4-qemu"

# Debian's U-Boot for the Pi 3/4 (arm64) and the Pi firmware, downloaded once.
debs=$cache/rpi4/debs
mkdir -p "$debs"
fetch() { # fetch <package> <deb glob>: print the .deb's path
    if ! ls "$debs"/$2 >/dev/null 2>&1; then
        log "downloading $1 (apt-get download)"
        local tmp
        tmp=$(mktemp -d "$debs/.dl.XXXXXX")
        (cd "$tmp" && apt-get download -q "$1" 2>&1 | grep -v unsandboxed >&2) || true
        mv "$tmp"/*.deb "$debs/" 2>/dev/null || true
        rm -rf "$tmp"
    fi
    ls "$debs"/$2 2>/dev/null | tail -n 1
}
deb=$(fetch u-boot-rpi:arm64 'u-boot-rpi_*_arm64.deb')
[ -n "$deb" ] || die "could not download u-boot-rpi:arm64: check the network and 'apt-get update'"
fw=$(fetch raspi-firmware 'raspi-firmware_*_all.deb')
[ -n "$fw" ] || die "could not download raspi-firmware: run 'make setup' (enables bookworm non-free-firmware), then retry"
x=$(mktemp -d); trap 'rm -rf "$x"' EXIT
dpkg-deb -x "$deb" "$x/root"
dpkg-deb -x "$fw" "$x/root"

# The boot partition's files.
p=$x/part
mkdir -p "$p"
for f in start4.elf fixup4.dat; do
    cp "$x/root/usr/lib/raspi-firmware/$f" "$p/" || die "raspi-firmware has no $f"
done
cp "$x/root/usr/lib/u-boot/rpi_arm64/u-boot.bin" "$p/u-boot.bin"
cp "$x/root/usr/lib/u-boot/rpi_arm64/u-boot.bin" "$out/rpi4-qemu/u-boot.bin"
for d in bcm2711-rpi-4-b bcm2711-rpi-400 bcm2711-rpi-cm4-io; do
    if [ -f "$dtbdir/$d.dtb" ]; then cp "$dtbdir/$d.dtb" "$p/"; fi
done
cp "$oxen" "$p/oxen.bin"
cp "$kernel" "$p/Image"
if [ -n "$initrd" ]; then cp "$initrd" "$p/initrd.gz"; fi

overlay=""
if [ "$RPI4_CONSOLE" = pl011 ]; then
    overlay="# The PL011 (UART0) on GPIO 14/15 instead of the Bluetooth module, the mini UART off
# (oxen is told with dtuart=serial0 in boot.scr). Debian ships no overlays: the file is
# overlays/disable-bt.dtbo from the Raspberry Pi firmware repository.
dtoverlay=disable-bt"
    if [ -n "${RPI4_OVERLAYS:-}" ]; then
        [ -f "$RPI4_OVERLAYS/disable-bt.dtbo" ] || die "$RPI4_OVERLAYS/disable-bt.dtbo missing"
        mkdir -p "$p/overlays"
        cp "$RPI4_OVERLAYS/disable-bt.dtbo" "$p/overlays/"
    else
        log "warning: RPI4_CONSOLE=pl011 without RPI4_OVERLAYS=<dir with disable-bt.dtbo>: a real Pi 4 keeps the mini UART on GPIO 14/15"
    fi
fi
cat > "$p/config.txt" <<EOF
# oxen on a Raspberry Pi 4 (written by oxen's qemu/build-rpi4-sd.sh).
# The firmware starts Debian's U-Boot, whose boot.scr loads oxen, Dom0's kernel
# and initramfs from this partition and starts oxen.
arm_64bit=1
kernel=u-boot.bin
# U-Boot rpi_arm64 is linked at 0x80000 and is not position independent.
kernel_address=0x80000
# Serial console on GPIO 14/15, 115200 8N1: the mini UART (this also pins the
# VPU core clock its baud rate is derived from).
enable_uart=1
# Interrupts through the GIC-400 (the Pi 4's default; oxen needs it). The
# firmware's built-in armstub8-gic enters U-Boot at EL2 with the spin table.
enable_gic=1
# Debian's kernel device trees are upstream Linux's.
upstream_kernel=1
$overlay
EOF

# boot.scr (U-Boot's legacy script image, as mkimage -T script). Addresses: the firmware's
# DT is moved first to 0x100_0000, out of the way of the loads (QEMU puts it at 0x800_0000);
# oxen at 0x20_0000 takes 10 MiB with .bss (its header's image_size; booti keeps it there,
# header flag bit 3); U-Boot runs this script from 0x240_0000; Dom0's kernel from 0x300_0000,
# its initrd 2 MiB-aligned after it.
align2m() { echo $(( ($1 + 0x1fffff) & ~0x1fffff )); }
dom0_addr=$((0x3000000))
rd_addr=$(align2m $((dom0_addr + $(stat -c %s "$kernel"))))
hexa() { printf '0x%x' "$1"; }
rd_load="" rd_node=""
if [ -n "$initrd" ]; then
    rd_load="load \${devtype} \${devnum}:\${distro_bootpart} $(hexa $rd_addr) initrd.gz
setenv rd_size 0x\${filesize}"
    rd_node="fdt mknod /chosen module@$(printf %x $rd_addr)
fdt set /chosen/module@$(printf %x $rd_addr) compatible \"multiboot,ramdisk\" \"multiboot,module\"
fdt set /chosen/module@$(printf %x $rd_addr) reg <0x0 $(hexa $rd_addr) 0x0 \${rd_size}>"
fi
cat > "$x/boot.cmd" <<CMD
echo oxen: loading from \${devtype} \${devnum}:\${distro_bootpart}
fdt addr \${fdt_addr}
fdt move \${fdt_addr} 0x01000000 0x20000
fdt addr 0x01000000
fdt resize 1024
load \${devtype} \${devnum}:\${distro_bootpart} 0x00200000 oxen.bin
load \${devtype} \${devnum}:\${distro_bootpart} $(hexa $dom0_addr) Image
setenv dom0_size 0x\${filesize}
$rd_load
fdt set /chosen \\#address-cells <0x2>
fdt set /chosen \\#size-cells <0x2>
fdt set /chosen xen,xen-bootargs "$OXEN_ARGS"
fdt set /chosen xen,dom0-bootargs "$DOM0_ARGS"
fdt mknod /chosen module@$(printf %x $dom0_addr)
fdt set /chosen/module@$(printf %x $dom0_addr) compatible "multiboot,kernel" "multiboot,module"
fdt set /chosen/module@$(printf %x $dom0_addr) reg <0x0 $(hexa $dom0_addr) 0x0 \${dom0_size}>
$rd_node
setenv fdt_high 0xffffffffffffffff
booti 0x00200000 - 0x01000000
CMD
python3 - "$x/boot.cmd" "$p/boot.scr" <<'PY'
import struct, sys, time, zlib
script = open(sys.argv[1], 'rb').read()
data = struct.pack('>II', len(script), 0) + script
name = b'oxen boot script'.ljust(32, b'\0')
def header(hcrc):
    # magic, hcrc, time, size, load, ep, dcrc, os=linux, arch=arm64, type=script, comp=none
    return struct.pack('>7I4B32s', 0x27051956, hcrc, int(time.time()), len(data), 0, 0,
                       zlib.crc32(data), 5, 22, 6, 0, name)
h = header(0)
open(sys.argv[2], 'wb').write(header(zlib.crc32(h)) + data)
PY

# The DT for QEMU: Debian's with the six nodes QEMU 10.0 does not model disabled.
cp "$dtbdir/bcm2711-rpi-4-b.dtb" "$out/rpi4-qemu/qemu.dtb"
for n in clock@7ef00000 interrupt-controller@7ef00100 hdmi@7ef00700 i2c@7ef04500 hdmi@7ef05700 i2c@7ef09500; do
    fdtput -t s "$out/rpi4-qemu/qemu.dtb" "/soc/$n" status disabled
done

# FAT32 partition at 4 MiB: the files plus a quarter (at least 32 MiB) free; the card is the
# next power of two (QEMU's SD model insists on one; dd writes only what is there).
used_kib=$(du -sk "$p" | cut -f1)
part_mib=$(( (used_kib * 5 / 4 + 1023) / 1024 + 32 ))
card_mib=64
while [ $card_mib -lt $((part_mib + 4)) ]; do card_mib=$((card_mib * 2)); done
part_mib=$((card_mib - 4))
log "writing a ${part_mib} MiB FAT32 boot partition ($((used_kib / 1024)) MiB of files)"
img=$out/oxen-rpi4-sd.img
rm -f "$x/part.img"
mkfs.vfat -F 32 -n OXENBOOT -C "$x/part.img" $((part_mib * 1024)) >/dev/null \
    || die "mkfs.vfat failed"
mcopy -s -i "$x/part.img" "$p"/* ::/ || die "mcopy failed"
rm -f "$img"
truncate -s "${card_mib}M" "$img"
printf 'label: dos\nstart=4MiB, type=c, bootable\n' | sfdisk -q "$img" >/dev/null \
    || die "sfdisk failed on $img"
dd if="$x/part.img" of="$img" bs=1M seek=4 conv=notrunc,sparse status=none
log "$img: ${card_mib} MiB card ($(ls "$p" | tr '\n' ' '))"
