# oxen: `make run` boots oxen in QEMU; `make test` runs every test.
# Both install what is missing first (`make setup`, idempotent).

SHELL := /bin/bash
ROOT := $(CURDIR)
BUILD := $(ROOT)/build
export CARGO_TARGET_DIR ?= $(ROOT)/target
HYP_TARGET := aarch64-unknown-none-softfloat
HYP_ELF := $(CARGO_TARGET_DIR)/$(HYP_TARGET)/release/oxen
OBJCOPY ?= aarch64-linux-gnu-objcopy

# QEMU knobs for `make run`
GIC ?= 3
SMP ?= 2
MEM ?= 2048
OXEN_ARGS ?= loglvl=info
GUEST_ARGS ?= oxen.test=count oxen.count=10
QEMU ?= qemu-system-aarch64

.PHONY: all setup build hypervisor test-guest run test unit-test integration-test lint clean

all: build

setup:
	@bash qemu/setup.sh

build: setup hypervisor test-guest

hypervisor:
	cargo build -p oxen --release --target $(HYP_TARGET)
	@mkdir -p $(BUILD)
	cp $(HYP_ELF) $(BUILD)/oxen.elf
	$(OBJCOPY) -O binary $(HYP_ELF) $(BUILD)/oxen.bin
	@echo "build: $(BUILD)/oxen.bin ($$(stat -c %s $(BUILD)/oxen.bin) bytes)"

test-guest:
	bash qemu/build-test-guest.sh $(BUILD)/test-guest.bin

run: build
	@echo "run: oxen with the test guest as Dom0 (quit QEMU with Ctrl-a x)"
	$(QEMU) -machine virt,virtualization=on,gic-version=$(GIC) -cpu cortex-a72 \
	    -smp $(SMP) -m $(MEM) -nographic -no-reboot -nic none \
	    -kernel $(BUILD)/oxen.bin -append "$(OXEN_ARGS)" \
	    -device guest-loader,addr=0x50000000,kernel=$(BUILD)/test-guest.bin,bootargs="$(GUEST_ARGS)"

test: build unit-test integration-test

unit-test:
	cargo test --workspace --exclude oxen-tests

integration-test:
	cargo test -p oxen-tests -- --test-threads=2

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p oxen --target $(HYP_TARGET) -- -D warnings

clean:
	rm -rf $(BUILD)
	cargo clean
