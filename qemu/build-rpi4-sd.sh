#!/bin/bash
# build-rpi4-sd.sh OUT_DIR OXEN KERNEL [INITRD] - the Raspberry Pi 4 boot path through Debian's
# U-Boot, for QEMU raspi4b: OUT_DIR/u-boot.bin (Debian's u-boot-rpi, rpi_arm64), OUT_DIR/rpi4.dtb
# (Debian's bcm2711-rpi-4-b.dtb with the nodes QEMU does not model disabled: the DT the Pi
# firmware would hand U-Boot) and OUT_DIR/sd.img: an MBR card with one ext4 partition holding
# oxen, the Dom0 kernel (and initrd) and boot.scr. U-Boot's distro boot finds boot.scr, which
# loads the files, moves the firmware's DT, adds Xen's /chosen boot-module nodes and
# command lines (shared/research/rpi4.md §5c) and `booti`s oxen, as on a real board.
#
# Env: OXEN_ARGS (hypervisor), DOM0_ARGS (Dom0 kernel), OXEN_CACHE. u-boot-rpi:arm64 is fetched
# with `apt-get download` from the machine's apt sources into $OXEN_CACHE/rpi4/debs.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${OXEN_CACHE:-$root/.cache}
out=${1:?usage: build-rpi4-sd.sh OUT_DIR OXEN KERNEL [INITRD]}
oxen=${2:?oxen image}
kernel=${3:?Dom0 kernel}
initrd=${4:-}
OXEN_ARGS=${OXEN_ARGS:-dom0_mem=512M loglvl=info}
DOM0_ARGS=${DOM0_ARGS:-console=hvc0 rdinit=/init oxen.dom0=shell}

die() { echo "build-rpi4-sd: error: $*" >&2; exit 1; }
command -v fdtput >/dev/null || die "fdtput not found (make setup installs device-tree-compiler)"
command -v mke2fs >/dev/null || die "mke2fs not found (apt install e2fsprogs)"
src=$cache/dom0-root/usr/lib/linux-image-$(cat "$cache/dom0/kver")/broadcom/bcm2711-rpi-4-b.dtb
[ -f "$src" ] || die "$src missing: run make dom0"
mkdir -p "$out"

# Debian's U-Boot for the Pi 3/4 (arm64), downloaded once.
debs=$cache/rpi4/debs
mkdir -p "$debs"
if ! ls "$debs"/u-boot-rpi_*_arm64.deb >/dev/null 2>&1; then
    tmp=$(mktemp -d "$debs/.dl.XXXXXX")
    (cd "$tmp" && apt-get download -q u-boot-rpi:arm64 2>&1 | grep -v unsandboxed >&2) || true
    mv "$tmp"/*.deb "$debs/" 2>/dev/null || true
    rm -rf "$tmp"
fi
deb=$(ls "$debs"/u-boot-rpi_*_arm64.deb 2>/dev/null | tail -n 1)
[ -n "$deb" ] || die "could not download u-boot-rpi:arm64 (network? apt sources?)"
x=$(mktemp -d); trap 'rm -rf "$x"' EXIT
dpkg-deb -x "$deb" "$x/root"
cp "$x/root/usr/lib/u-boot/rpi_arm64/u-boot.bin" "$out/u-boot.bin"

cp "$src" "$out/rpi4.dtb"
for n in clock@7ef00000 interrupt-controller@7ef00100 hdmi@7ef00700 i2c@7ef04500 hdmi@7ef05700 i2c@7ef09500; do
    fdtput -t s "$out/rpi4.dtb" "/soc/$n" status disabled
done

# The files on the card and boot.scr (U-Boot's legacy script image, as mkimage -T script).
# Addresses: oxen at 0x20_0000 takes 10 MiB with .bss (its header's image_size; booti keeps it
# there, header flag bit 3); U-Boot's boot.scr sits at 0x240_0000; Dom0's kernel from
# 0x300_0000, its initrd from 0x520_0000, the DT moved to 0x7e0_0000 (below the firmware's).
mkdir -p "$x/part"
cp "$oxen" "$x/part/oxen.bin"
cp "$kernel" "$x/part/Image"
rd_load="" rd_node=""
if [ -n "$initrd" ]; then
    cp "$initrd" "$x/part/initrd.gz"
    rd_load='load ${devtype} ${devnum}:${distro_bootpart} ${rd_addr} initrd.gz
setenv rd_size 0x${filesize}'
    rd_node='fdt mknod /chosen module@5200000
fdt set /chosen/module@5200000 compatible "multiboot,ramdisk" "multiboot,module"
fdt set /chosen/module@5200000 reg <0x0 ${rd_addr} 0x0 ${rd_size}>'
fi
cat > "$x/part/boot.cmd" <<CMD
echo oxen: loading from \${devtype} \${devnum}:\${distro_bootpart}
setenv oxen_addr 0x00200000; setenv dom0_addr 0x03000000; setenv rd_addr 0x05200000; setenv dtb_addr 0x07e00000
load \${devtype} \${devnum}:\${distro_bootpart} \${oxen_addr} oxen.bin
load \${devtype} \${devnum}:\${distro_bootpart} \${dom0_addr} Image
setenv dom0_size 0x\${filesize}
$rd_load
fdt addr \${fdt_addr}
fdt move \${fdt_addr} \${dtb_addr} 0x20000
fdt addr \${dtb_addr}
fdt resize 1024
fdt set /chosen \\#address-cells <0x2>
fdt set /chosen \\#size-cells <0x2>
fdt set /chosen xen,xen-bootargs "$OXEN_ARGS"
fdt set /chosen xen,dom0-bootargs "$DOM0_ARGS"
fdt mknod /chosen module@3000000
fdt set /chosen/module@3000000 compatible "multiboot,kernel" "multiboot,module"
fdt set /chosen/module@3000000 reg <0x0 \${dom0_addr} 0x0 \${dom0_size}>
$rd_node
setenv fdt_high 0xffffffffffffffff
booti \${oxen_addr} - \${dtb_addr}
CMD
python3 - "$x/part/boot.cmd" "$x/part/boot.scr" <<'PY'
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

# 128 MiB card (QEMU wants a power of two): MBR, one bootable Linux partition at 1 MiB.
mke2fs -q -F -t ext4 -d "$x/part" "$x/part.img" 120M >/dev/null
python3 - "$x/part.img" "$out/sd.img" <<'PY'
import struct, sys
p = sys.argv[1]; size = 128 << 20
n = (open(p, 'rb').seek(0, 2)) // 512
m = bytearray(512)
m[446:462] = struct.pack('<B3sB3sII', 0x80, b'\0\2\0', 0x83, b'\xff\xff\xff', 2048, n)
m[510:] = b'\x55\xaa'
with open(sys.argv[2], 'wb') as f, open(p, 'rb') as src:
    f.write(m); f.seek(2048 * 512)
    while True:
        b = src.read(1 << 20)
        if not b: break
        f.write(b)
    f.truncate(size)
PY
echo "build-rpi4-sd: $out/sd.img ($(ls "$x/part" | tr '\n' ' '))"
