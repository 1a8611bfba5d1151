#!/bin/bash
# build-test-guest.sh [out] - build oxen's bare-metal test guest and turn it
# into a flat arm64 Image (default: build/test-guest.bin).
#
# The guest is a static PIE linked at 0 (linker/test-guest.ld) that applies
# its own R_AARCH64_RELATIVE relocations at entry, so the flat image must
# contain .rela.dyn; this script checks that and that no other relocation
# type slipped in. Honours CARGO_TARGET_DIR.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/test-guest.bin}
target=aarch64-unknown-none
tdir=${CARGO_TARGET_DIR:-$root/target}
elf=$tdir/$target/release/test-guest

die() { echo "build-test-guest: error: $*" >&2; exit 1; }

OBJCOPY=${OBJCOPY:-aarch64-linux-gnu-objcopy}
READELF=${READELF:-aarch64-linux-gnu-readelf}
command -v "$OBJCOPY" >/dev/null || die "$OBJCOPY not found (apt install binutils-aarch64-linux-gnu)"
command -v "$READELF" >/dev/null || die "$READELF not found (apt install binutils-aarch64-linux-gnu)"

(cd "$root" && cargo build -p test-guest --release --target "$target")
[ -f "$elf" ] || die "no ELF at $elf"

# Only R_AARCH64_RELATIVE can be applied by the entry code.
bad=$("$READELF" -rW "$elf" | awk '/^[0-9a-f]+ +[0-9a-f]+ +R_AARCH64_/ && $3 != "R_AARCH64_RELATIVE" {print $3}' | sort -u)
[ -z "$bad" ] || die "unsupported dynamic relocations in $elf: $bad"

mkdir -p "$(dirname "$out")"
"$OBJCOPY" -O binary "$elf" "$out"

# The flat image must reach the end of .rela.dyn (its entries are read from
# the image at run time) and carry the arm64 magic at 0x38.
read -r rela_addr rela_size < <("$READELF" -SW "$elf" | sed 's/^ *\[ *[0-9]*\]//' | awk '$1 == ".rela.dyn" {print $3, $5}') \
    || die "no .rela.dyn section in $elf"
rela_end=$((0x$rela_addr + 0x$rela_size))
size=$(stat -c %s "$out")
[ "$size" -ge "$rela_end" ] || die "$out ($size bytes) ends before .rela.dyn ($rela_end)"
[ "$(dd if="$out" bs=1 skip=56 count=4 2>/dev/null)" = $'ARM\x64' ] || die "$out lacks the arm64 Image magic"

echo "build-test-guest: $out ($size bytes)" >&2
