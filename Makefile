# oxen: `make run` boots oxen in QEMU; `make test` runs every test.
# Both install what is missing first (`make setup`, idempotent).

SHELL := /bin/bash
ROOT := $(CURDIR)
BUILD := $(ROOT)/build
export CARGO_TARGET_DIR ?= $(ROOT)/target
HYP_TARGET := aarch64-unknown-none-softfloat
HYP_ELF := $(CARGO_TARGET_DIR)/$(HYP_TARGET)/release/oxen
OBJCOPY ?= aarch64-linux-gnu-objcopy

DOM0 := $(ROOT)/.cache/dom0

# QEMU knobs for `make run` (the same command line boots Xen 4.17); BOARD=rpi4 boots the same
# image on QEMU's Raspberry Pi 4 (raspi4b) instead (qemu/run-rpi4.sh; OXEN_ARGS, DOM0_ARGS apply)
GIC ?= 3
SMP ?= 2
MEM ?= 2048
OXEN_ARGS ?= dom0_mem=512M loglvl=info
DOM0_ARGS ?= console=hvc0 rdinit=/init oxen.dom0=shell
GUEST_ARGS ?= oxen.test=count oxen.count=10
QEMU ?= qemu-system-aarch64
# `make run`'s disk (virtio, Dom0's /dev/vda): Dom0 keeps the DomU disk images on it
RUN_DISK ?= $(ROOT)/.cache/run-disk.img
RUN_DISK_MB ?= 1024
QEMU_VIRT = $(QEMU) -machine virt,virtualization=on,gic-version=$(GIC) -cpu cortex-a72 \
	    -smp $(SMP) -m $(MEM) -nographic -no-reboot -nic none \
	    -kernel $(BUILD)/oxen.bin -append "$(OXEN_ARGS)"

.PHONY: all setup build hypervisor test-guest dom0 run run-domu run-test-guest sdcard test unit-test integration-test bench profile lint clean

all: build

setup:
	@bash qemu/setup.sh

build: setup hypervisor test-guest dom0

# Debian's arm64 kernel + a busybox initramfs for Dom0 with the toolstack (xl, xenstored,
# xenconsoled, xencommons) and the ready DomU /etc/xen/domu.cfg (cached in .cache/)
dom0:
	bash qemu/build-dom0.sh

hypervisor:
	cargo build -p oxen --release --target $(HYP_TARGET)
	@mkdir -p $(BUILD)
	cp $(HYP_ELF) $(BUILD)/oxen.elf
	$(OBJCOPY) -O binary $(HYP_ELF) $(BUILD)/oxen.bin
	@echo "build: $(BUILD)/oxen.bin ($$(stat -c %s $(BUILD)/oxen.bin) bytes)"

test-guest:
	bash qemu/build-test-guest.sh $(BUILD)/test-guest.bin

run: build
ifeq ($(BOARD),rpi4)
	bash qemu/run-rpi4.sh
else
	@echo "run: oxen with Debian's Linux as Dom0; 'poweroff' in the shell or Ctrl-a x quits"
	@[ -e $(RUN_DISK) ] || { mkdir -p $(dir $(RUN_DISK)) && truncate -s $(RUN_DISK_MB)M $(RUN_DISK) && \
	    echo "run: created $(RUN_DISK) ($(RUN_DISK_MB) MiB, sparse): Dom0's /dev/vda, formatted by Dom0 at its first boot"; }
	$(QEMU_VIRT) \
	    -drive file=$(RUN_DISK),if=none,format=raw,id=store -device virtio-blk-device,drive=store \
	    -device guest-loader,addr=0x50000000,kernel=$(DOM0)/Image,bootargs="$(DOM0_ARGS)" \
	    -device guest-loader,addr=$$(printf '0x%x' $$(( (0x50000000 + $$(stat -c %s $(DOM0)/Image) + 0x3fffff) & ~0x1fffff ))),initrd=$(DOM0)/dom0-initrd.gz
endif

# Linux Dom0 and a Linux boot-time DomU (dom0less, console on its emulated UART)
run-domu: build
	bash qemu/run-domu.sh

run-test-guest: setup hypervisor test-guest
	@echo "run: oxen with the bare-metal test guest as Dom0 (Ctrl-a x quits)"
	$(QEMU_VIRT) \
	    -device guest-loader,addr=0x50000000,kernel=$(BUILD)/test-guest.bin,bootargs="$(GUEST_ARGS)"

# A Raspberry Pi 4 SD-card image to flash: build/oxen-rpi4-sd.img (Pi firmware, Debian's U-Boot,
# boot.scr, oxen, Debian's Linux as Dom0; README "Raspberry Pi 4"). RPI4_CONSOLE=pl011 for the
# PL011 instead of the mini UART; OXEN_ARGS, DOM0_ARGS as for `make run`.
sdcard: setup hypervisor dom0
	OXEN_ARGS="$(OXEN_ARGS)" DOM0_ARGS="$(DOM0_ARGS)" bash qemu/build-rpi4-sd.sh $(BUILD) \
	    $(BUILD)/oxen.bin $(DOM0)/Image $(DOM0)/dom0-initrd.gz

# oxen and Xen 4.17 side by side on the same QEMU command (not a test): Dom0 boot and
# toolstack (qemu/bench.sh), then a DomU's PV disk and network (qemu/bench-io.sh)
bench: build
	bash qemu/bench.sh
	bash qemu/bench-io.sh

# Instructions oxen executes per guest exit, by exit kind and function (qemu/profile.sh)
profile: build
	bash qemu/profile.sh

test: build unit-test integration-test

unit-test:
	cargo test --workspace --exclude oxen-tests

integration-test:
	cargo test -p oxen-tests --no-fail-fast -- --test-threads=2

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p oxen --target $(HYP_TARGET) -- -D warnings
	cargo clippy -p test-guest --target aarch64-unknown-none -- -D warnings
	cargo clippy -p evtchn-ping -p xenctrl -p xenstore -p oxl -p xenconsoled -p front-hostile \
	    --all-targets --target aarch64-unknown-linux-musl -- -D warnings

clean:
	rm -rf $(BUILD)
	cargo clean
