#!/bin/bash
# run-domu.sh - boot oxen with Linux as Dom0 AND Linux as a boot-time DomU (Xen's dom0less
# binding), each with a busybox shell: Dom0 on hvc0, the DomU on its emulated console UART
# (vpl011) with its output shown as "(d1) ...". Type Ctrl-a three times to move the
# console input from Dom0 to d1, to oxen's debug keys ('h' lists them), back to Dom0 (under QEMU's -nographic, Ctrl-a is QEMU's escape
# key: type it twice, "Ctrl-a Ctrl-a", to send one). `poweroff` in Dom0 stops the machine.
#
#   qemu/run-domu.sh            (make run-domu builds first)
# Environment: GIC (3), SMP (2), MEM (2048), DOMU_MEM (256 MiB), DOMU_CPUS (1),
#   OXEN_ARGS, DOM0_ARGS, DOMU_ARGS, QEMU.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "run-domu: error: $*" >&2; exit 1; }

OXEN=$root/build/oxen.bin
IMAGE=$root/.cache/dom0/Image
INITRD=$root/.cache/dom0/dom0-initrd.gz
[ -f "$OXEN" ] || die "build/oxen.bin missing: run 'make build'"
[ -f "$IMAGE" ] && [ -f "$INITRD" ] || die ".cache/dom0 missing: run 'make dom0'"
command -v dtc >/dev/null || die "dtc not found: run 'make setup'"
QEMU=${QEMU:-qemu-system-aarch64}

GIC=${GIC:-3} SMP=${SMP:-2} MEM=${MEM:-2048}
DOMU_MEM=${DOMU_MEM:-256} DOMU_CPUS=${DOMU_CPUS:-1}
OXEN_ARGS=${OXEN_ARGS:-dom0_mem=512M loglvl=info}
DOM0_ARGS=${DOM0_ARGS:-console=hvc0 rdinit=/init oxen.dom0=shell}
DOMU_ARGS=${DOMU_ARGS:-console=ttyAMA0 rdinit=/init oxen.dom0=shell}

align2m() { printf '0x%x' $(( ($1 + 0x3fffff) & ~0x1fffff )); }
ksize=$(stat -c %s "$IMAGE"); isize=$(stat -c %s "$INITRD")
D0_K=0x50000000; D0_I=$(align2m $((D0_K + ksize)))
DU_K=$(align2m $((D0_I + isize + 0x1000000))); DU_I=$(align2m $((DU_K + ksize)))

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
base=("$QEMU" -machine "virt,virtualization=on,gic-version=$GIC" -cpu cortex-a72
    -smp "$SMP" -m "$MEM" -nographic -no-reboot -nic none
    -kernel "$OXEN" -append "$OXEN_ARGS"
    -device "guest-loader,addr=$D0_K,kernel=$IMAGE,bootargs=$DOM0_ARGS"
    -device "guest-loader,addr=$D0_I,initrd=$INITRD"
    -device "loader,file=$IMAGE,addr=$DU_K,force-raw=on"
    -device "loader,file=$INITRD,addr=$DU_I,force-raw=on")

# QEMU's device tree (with Dom0's modules), plus the DomU's xen,domain node under /chosen.
"${base[@]}" -machine "dumpdtb=$tmp/virt.dtb" >/dev/null 2>&1 || die "QEMU could not dump its device tree"
dtc -q -I dtb -O dts -o "$tmp/virt.dts" "$tmp/virt.dtb"
c64() { printf '0x%x 0x%x' $(( $1 >> 32 )) $(( $1 & 0xffffffff )); }
node="		domU1 {
			compatible = \"xen,domain\";
			#address-cells = <0x02>;
			#size-cells = <0x02>;
			memory = <$(c64 $((DOMU_MEM * 1024)))>;
			cpus = <$DOMU_CPUS>;
			vpl011;
			module@$(printf %x $((DU_K))) {
				compatible = \"multiboot,kernel\", \"multiboot,module\";
				reg = <$(c64 $((DU_K))) $(c64 "$ksize")>;
				bootargs = \"$DOMU_ARGS\";
			};
			module@$(printf %x $((DU_I))) {
				compatible = \"multiboot,ramdisk\", \"multiboot,module\";
				reg = <$(c64 $((DU_I))) $(c64 "$isize")>;
			};
		};"
awk -v node="$node" '/^\tchosen \{/ { in_chosen = 1 }
    in_chosen && /^\t\};/ { print node; in_chosen = 0 } { print }' \
    "$tmp/virt.dts" > "$tmp/domu.dts"
grep -q 'domU1' "$tmp/domu.dts" || die "no /chosen node in QEMU's device tree"
dtc -q -I dts -O dtb -o "$tmp/domu.dtb" "$tmp/domu.dts"

echo "run-domu: Dom0 on hvc0, d1 on its vUART; Ctrl-a Ctrl-a three times switches input; Ctrl-a x quits QEMU" >&2
"${base[@]}" -dtb "$tmp/domu.dtb"
