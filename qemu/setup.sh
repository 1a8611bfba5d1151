#!/bin/bash
# setup.sh - install what oxen's build, run and tests need on a Debian
# bookworm host. Idempotent: every step checks first and does nothing when
# the tool is already there. Called by `make setup` (and so by run/test).
#
# Installs: rustup targets (bare-metal EL2/EL1, musl for Dom0 tools),
# qemu-system-arm >= 10 from bookworm-backports (for raspi4b and
# guest-loader), device-tree-compiler, cpio, kmod (depmod), e2fsprogs,
# mtools, dosfstools and fdisk (sfdisk) for the Raspberry Pi 4 SD image,
# and enables the arm64 dpkg architecture so apt can fetch Dom0 packages,
# and bookworm's non-free-firmware component (the Pi firmware,
# raspi-firmware, is downloaded from it with `apt-get download`, never
# installed). Both extra sources are derived from this machine's own apt
# sources.
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin

log() { echo "setup: $*" >&2; }
die() { echo "setup: error: $*" >&2; exit 1; }

SUDO=
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: run 'make setup' as root once"
    SUDO=sudo
fi

# ---------------------------------------------------------------- rust
need_targets=()
installed=$(rustup target list --installed 2>/dev/null || true)
for t in aarch64-unknown-none-softfloat aarch64-unknown-none aarch64-unknown-linux-musl; do
    grep -qx "$t" <<<"$installed" || need_targets+=("$t")
done
if [ ${#need_targets[@]} -gt 0 ]; then
    log "adding rust targets: ${need_targets[*]}"
    rustup target add "${need_targets[@]}" >&2 || die "rustup could not add ${need_targets[*]}: check network access to the Rust toolchain server"
fi
for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || {
        log "adding rust component $c"; rustup component add "$c" >&2 || log "warning: could not add $c (only needed for 'make lint')"; }
done

# ---------------------------------------------------------------- apt
apt_changed=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "enabling the arm64 dpkg architecture (Dom0 packages are fetched with apt)"
    $SUDO dpkg --add-architecture arm64
    apt_changed=1
fi

# Derive the Debian mirror this machine already uses for bookworm.
debian_mirror() {
    local uri
    uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ {print u; exit}' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
    echo "$uri"
}

if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    uri=$(debian_mirror)
    [ -n "$uri" ] || die "no bookworm entry in /etc/apt/sources.list*: add your Debian mirror there, then rerun 'make setup'"
    log "adding bookworm-backports from $uri"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
        | $SUDO tee /etc/apt/sources.list.d/oxen-bookworm-backports.sources >/dev/null
    apt_changed=1
fi

# The Raspberry Pi firmware (raspi-firmware) is in non-free-firmware; `make
# sdcard` only downloads it.
if ! grep -rqs '^[^#]*non-free-firmware' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    uri=$(debian_mirror)
    [ -n "$uri" ] || die "no bookworm entry in /etc/apt/sources.list*: add your Debian mirror there, then rerun 'make setup'"
    log "adding bookworm non-free-firmware (Raspberry Pi firmware) from $uri"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm\nComponents: non-free-firmware\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
        | $SUDO tee /etc/apt/sources.list.d/oxen-bookworm-non-free-firmware.sources >/dev/null
    apt_changed=1
fi

stamp=/var/lib/apt/lists/.oxen-updated
if [ $apt_changed = 1 ] || [ ! -e $stamp ] || ! apt-cache show busybox-static:arm64 >/dev/null 2>&1; then
    log "apt-get update"
    $SUDO apt-get update -q >&2 || die "apt-get update failed: check /etc/apt/sources.list* and the network"
    $SUDO touch $stamp
fi

need=()
for t in cpio:cpio gzip:gzip depmod:kmod dtc:device-tree-compiler mke2fs:e2fsprogs \
         mcopy:mtools mkfs.vfat:dosfstools sfdisk:fdisk \
         aarch64-linux-gnu-objcopy:binutils-aarch64-linux-gnu; do
    command -v "${t%%:*}" >/dev/null 2>&1 || need+=("${t#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    $SUDO apt-get install -y -q "${need[@]}" >&2 || die "apt-get install ${need[*]} failed"
fi

qv=0
if command -v qemu-system-aarch64 >/dev/null 2>&1; then
    qv=$(qemu-system-aarch64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -1)
fi
if [ "${qv:-0}" -lt 10 ]; then
    log "installing qemu-system-arm 10.x from bookworm-backports"
    $SUDO apt-get install -y -q -t bookworm-backports qemu-system-arm >&2 \
        || die "could not install qemu-system-arm from bookworm-backports: check that backports is reachable"
fi
log "ok: $(qemu-system-aarch64 --version | head -1)"
