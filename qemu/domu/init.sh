#!/bin/sh
# /init of the ready DomU's initramfs (busybox sh, PID 1). Installed by qemu/build-dom0.sh
# as /init of domu-initrd.gz, which Dom0 carries as /opt/domu/domu-initrd.gz for
# /etc/xen/domu.cfg (`xl create -c /etc/xen/domu.cfg`).
#
# Prints `DOMU-INIT uptime=<s>` first (as the Xen reference DomU does), mounts the pseudo
# filesystems, then runs the scenario named by `oxen.domu=` on the kernel command line
# (xl.cfg `extra=`):
#   shell (default) interactive busybox shell on hvc0 (prompt `domu:/# `); `poweroff`
#         shuts the domain down (`reboot` reboots it: xl applies on_poweroff/on_reboot)
#   check print `domu: key=value` facts the tests read (the domain's own xenstore name
#         and domid, /sys/hypervisor/type), `domu: check done`, then power off
#   facts the same facts and `domu: facts done`, then the shell (the domain stays up)
#   io    the facts, then the PV disk and network: reads the 64-byte line Dom0 put at the
#         start of /dev/xvda (`domu: disk_hello=...`), writes oxen.io_mb (4) MiB of random
#         data at 1 MiB, drops the caches, reads it back (`domu: disk_write_sha256=...`,
#         `domu: disk_read_sha256=...`), sets eth0 to 192.0.2.2/24 and pings Dom0's
#         192.0.2.1 ten times (`domu: ping_dom0=<received>/10`), `domu: io done`, then
#         the shell (the domain stays up)
#   persist the disk's mark: prints the line at 8 MiB into /dev/xvda (`domu: disk_mark=...`,
#         empty on a new disk), then writes oxen.mark's value there (when given, synced),
#         `domu: persist done`, then the shell (the domain stays up)
#   hostile run /usr/bin/xs-hostile (a hostile xenstore client: its `xs-hostile: ...` lines),
#         `domu: hostile done rc=<rc>`, then the shell (the domain stays up)
# Xen's CI smoke scenarios (automation/scripts/qemu-smoke-*), with Dom0's side in the tests:
#   ext4  mounts /dev/xvda as ext4 on /mnt (`domu: ext4_fstype=...`), prints Dom0's
#         /mnt/dom0.txt line and the sha256 of /mnt/dom0.bin (`domu: ext4_dom0_line=...`,
#         `domu: ext4_dom0_sha256=...`), writes /mnt/domu.bin (oxen.ext4_kb KiB, default
#         512, random: `domu: ext4_domu_sha256=...`) and /mnt/domu.txt (`domu-wrote-this`),
#         syncs, unmounts, `domu: ext4 done`, then powers off
#   tcp   eth0 192.0.2.2/24; oxen.tcp_mb (4) MiB of random data (`domu: tcp_tx_sha256=...`)
#         sent to 192.0.2.1:5001 with busybox nc (`domu: tcp_sent`), then it listens on
#         5002 (`domu: tcp listening`) and prints what it got (`domu: tcp_rx_sha256=...`,
#         `domu: tcp_rx_bytes=...`), `domu: tcp done`, then the shell
#   evtchn `evtchn-ping --serve 0` (oxen.evtchn_rounds, 1000): prints `evtchn-ping: serving
#         port P for domain 0`, answers Dom0's `evtchn-ping --connect <domid>:P`, then
#         `domu: evtchn done rc=<rc>`, then the shell
#   storm heavy disk and network traffic until the domain is destroyed: eth0 192.0.2.2/24;
#         sends zeros to 192.0.2.1:5003 and takes what Dom0 sends to port 5004 (`domu:
#         storm listening`); writes 1 MiB blocks 0..oxen.storm_blocks-1 (24) of /dev/xvda
#         once each (buffered, `sync` after every second one; after each sync `domu:
#         storm_block=<i> <sha256>` for the blocks it made durable and `domu:
#         storm_synced=<n>` = blocks 0..n-1 are on the disk), then rewrites the 8 blocks
#         after them over and over (syncing, nothing printed), until the end (no shell)
#   readback prints `domu: block=<i> <sha256>` of the first oxen.blocks (24) 1 MiB blocks
#         of /dev/xvda, `domu: readback done`, then powers off
# oxen.domu= may list several of the scenarios that keep the domain up, comma-separated
# (e.g. `tcp,evtchn`); they run in that order.
# oxen.ip=ADDR/LEN (/etc/xen/domu.cfg: 192.0.2.2/24): eth0 gets that address and goes up
# as soon as it appears (in the background, at most 30 s; `domu: eth0 ADDR up`).
# Failures print one `domu: ... failed` line each and never stop the script: `check`
# always ends in a power-off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=linux LANG=C

/bin/busybox mount -t proc proc /proc
read -r UP _ < /proc/uptime
echo "DOMU-INIT uptime=$UP"
/bin/busybox --install -s

mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null # may already be mounted (CONFIG_DEVTMPFS_MOUNT)
mkdir -p /dev/pts
ln -sf /proc/self/fd /dev/fd
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs /tmp
hostname domu

arg() { # name default: value of `name=` on the kernel command line
    read -r cmdline < /proc/cmdline
    for a in $cmdline; do
        case $a in "$1"=*) echo "${a#*=}"; return;; esac
    done
    echo "$2"
}

off() {
    echo "domu: powering off"
    sync
    poweroff -f
    echo "domu: poweroff -f returned"
    while :; do sleep 60; done # PID 1 must never exit
}

# fact KEY CMD...: `domu: KEY=<output>`, or a failure line with CMD's last message
# (xenstore calls are bounded by `timeout`: a silent xenstored must not stop the check)
fact() {
    key=$1
    shift
    if out=$("$@" 2>&1); then
        echo "domu: $key=$out"
    else
        echo "domu: $key failed: $(echo "$out" | tail -n 1)"
    fi
}

# The PV disk and network frontends (modules in Debian's kernel), ext4 (crc32c for its
# metadata checksums) and /dev/xen/evtchn; harmless without devices.
for m in xen-blkfront xen-netfront crc32c_generic ext4 xen-evtchn; do
    out=$(modprobe "$m" 2>&1) || echo "domu: $m failed: modprobe: $(echo "$out" | tail -n 1)"
done

# wait_for PATH TENTHS: wait up to TENTHS/10 s for PATH to exist
wait_for() {
    i=0
    while [ ! -e "$1" ] && [ $i -lt "$2" ]; do sleep 0.1; i=$((i + 1)); done
    [ -e "$1" ]
}

IP=$(arg oxen.ip "")
if [ -n "$IP" ]; then
    (
        if wait_for /sys/class/net/eth0 300; then
            ip link set lo up
            if out=$(ip addr add "$IP" dev eth0 2>&1 && ip link set eth0 up 2>&1); then
                echo "domu: eth0 $IP up"
            else
                echo "domu: eth0 failed: $(echo "$out" | tail -n 1)"
            fi
        else
            echo "domu: eth0 failed: no eth0 after 30 s"
        fi
    ) &
fi

SCEN=$(arg oxen.domu shell)
echo "domu: scenario=$SCEN"

facts() {
    fact hypervisor cat /sys/hypervisor/type
    fact name timeout 30 xenstore-read name
    fact domid timeout 30 xenstore-read domid
    fact nr_cpus grep -c '^processor' /proc/cpuinfo
    fact mem_total_kb sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo
}

io() {
    mb=$(arg oxen.io_mb 4)
    if wait_for /dev/xvda 300; then
        echo "domu: disk_hello=$(dd if=/dev/xvda bs=64 count=1 2>/dev/null | tr -d '\000' | head -n 1)"
        dd if=/dev/urandom of=/tmp/pattern bs=1M count="$mb" 2>/dev/null
        echo "domu: disk_write_sha256=$(sha256sum < /tmp/pattern | cut -d' ' -f1)"
        if dd if=/tmp/pattern of=/dev/xvda bs=1M seek=1 conv=fsync 2>/tmp/dd.err; then
            sync
            echo 3 > /proc/sys/vm/drop_caches
            echo "domu: disk_read_sha256=$(dd if=/dev/xvda bs=1M skip=1 count="$mb" 2>/dev/null | sha256sum | cut -d' ' -f1)"
        else
            echo "domu: disk_write failed: $(tail -n 1 /tmp/dd.err)"
        fi
        rm -f /tmp/pattern
    else
        echo "domu: xvda failed: /dev/xvda did not appear in 30 s"
    fi
    if wait_for /sys/class/net/eth0 300; then
        ip link set lo up
        ip addr add 192.0.2.2/24 dev eth0
        ip link set eth0 up
        echo "domu: eth0_mac=$(cat /sys/class/net/eth0/address)"
        ping -c 1 -W 10 192.0.2.1 > /dev/null 2>&1 # ARP, and the bridge learning the port
        rx=$(ping -c 10 -W 5 192.0.2.1 2>&1 | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
        echo "domu: ping_dom0=${rx:-0}/10"
    else
        echo "domu: eth0 failed: no eth0 after 30 s"
    fi
}

# net_up: eth0 as 192.0.2.2/24 (unless oxen.ip= did it), then one ping to Dom0 (ARP and the
# bridge learning the port); false when eth0 does not come up
net_up() {
    if ! wait_for /sys/class/net/eth0 300; then
        echo "domu: eth0 failed: no eth0 after 30 s"
        return 1
    fi
    ip link set lo up
    ip addr show dev eth0 | grep -q 'inet 192.0.2.2/' || ip addr add 192.0.2.2/24 dev eth0
    ip link set eth0 up
    i=0
    until ping -c 1 -W 2 192.0.2.1 > /dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 15 ] || { echo "domu: eth0 failed: no answer from 192.0.2.1"; return 1; }
    done
}

# sha FILE|-: the sha256 of a file (or stdin), hex only
sha() { sha256sum "$@" | cut -d' ' -f1; }

ext4() {
    if ! wait_for /dev/xvda 300; then
        echo "domu: xvda failed: /dev/xvda did not appear in 30 s"
        return
    fi
    mkdir -p /mnt
    if ! out=$(mount -t ext4 /dev/xvda /mnt 2>&1); then
        echo "domu: ext4_mount failed: $(echo "$out" | tail -n 1)"
        return
    fi
    echo "domu: ext4_fstype=$(awk '$2 == "/mnt" {print $3}' /proc/mounts)"
    echo "domu: ext4_dom0_line=$(head -n 1 /mnt/dom0.txt)"
    echo "domu: ext4_dom0_sha256=$(sha /mnt/dom0.bin)"
    dd if=/dev/urandom of=/mnt/domu.bin bs=1k count="$(arg oxen.ext4_kb 512)" 2>/dev/null
    echo "domu: ext4_domu_sha256=$(sha /mnt/domu.bin)"
    echo "domu-wrote-this" > /mnt/domu.txt
    sync
    if ! out=$(umount /mnt 2>&1); then
        echo "domu: ext4_umount failed: $(echo "$out" | tail -n 1)"
    fi
}

tcp() {
    net_up || return
    dd if=/dev/urandom of=/tmp/tx bs=1M count="$(arg oxen.tcp_mb 4)" 2>/dev/null
    echo "domu: tcp_tx_sha256=$(sha /tmp/tx)"
    # Dom0's receiver may not listen yet: retry the connection for a minute
    i=0
    until nc 192.0.2.1 5001 -e cat /tmp/tx 2>/dev/null; do
        i=$((i + 1))
        [ $i -lt 60 ] || { echo "domu: tcp_send failed: no connection to 192.0.2.1:5001"; return; }
        sleep 1
    done
    echo "domu: tcp_sent"
    nc -l -p 5002 -e sh -c 'cat > /tmp/rx' &
    sleep 0.2
    echo "domu: tcp listening"
    wait $!
    echo "domu: tcp_rx_bytes=$(wc -c < /tmp/rx)"
    echo "domu: tcp_rx_sha256=$(sha /tmp/rx)"
}

# storm_disk N: the disk writer of `storm` (see the top)
storm_disk() {
    n=$1
    dd if=/dev/urandom of=/tmp/seed bs=1M count=1 2>/dev/null
    i=0
    pending=
    while :; do
        if [ $i -lt "$n" ]; then
            b=$i
        else
            b=$((n + (i - n) % 8))
        fi
        { printf 'oxen block %d write %d\n' $b $i; cat /tmp/seed; } | head -c 1048576 > /tmp/blk
        [ $i -lt "$n" ] && pending="$pending $b:$(sha /tmp/blk)"
        dd if=/tmp/blk of=/dev/xvda bs=1M seek=$b conv=notrunc 2>/dev/null ||
            echo "domu: storm_write failed: block $b"
        i=$((i + 1))
        if [ $((i % 2)) = 0 ]; then
            sync
            if [ -n "$pending" ]; then
                for e in $pending; do echo "domu: storm_block=${e%%:*} ${e#*:}"; done
                pending=
                echo "domu: storm_synced=$((i < n ? i : n))"
            fi
        fi
    done
}

storm() {
    wait_for /dev/xvda 300 || { echo "domu: xvda failed: /dev/xvda did not appear in 30 s"; return; }
    net_up || return
    nc -l -p 5004 -e dd of=/dev/null bs=64k 2>/dev/null &
    (
        i=0
        until nc 192.0.2.1 5003 -e dd if=/dev/zero bs=64k 2>/dev/null; do
            i=$((i + 1))
            [ $i -lt 60 ] || { echo "domu: storm_send failed: no connection to 192.0.2.1:5003"; exit; }
            sleep 1
        done
    ) &
    sleep 0.2
    echo "domu: storm listening"
    # in the foreground, for good: a shell's prompt would share the console lines
    storm_disk "$(arg oxen.storm_blocks 24)"
}

readback() {
    wait_for /dev/xvda 300 || { echo "domu: xvda failed: /dev/xvda did not appear in 30 s"; return; }
    i=0
    n=$(arg oxen.blocks 24)
    while [ $i -lt "$n" ]; do
        echo "domu: block=$i $(dd if=/dev/xvda bs=1M skip=$i count=1 2>/dev/null | sha)"
        i=$((i + 1))
    done
}

evtchn() {
    timeout 900 evtchn-ping "$(arg oxen.evtchn_rounds 1000)" --serve 0 2>&1
    echo "domu: evtchn done rc=$?"
}

case $SCEN in
check)
    facts
    echo "domu: check done"
    off
    ;;
ext4 | readback)
    $SCEN
    echo "domu: $SCEN done"
    off
    ;;
facts | shell | hostile | io | persist | tcp | evtchn | storm | *,*)
    if [ "$SCEN" = persist ]; then
        if wait_for /dev/xvda 300; then
            echo "domu: disk_mark=$(dd if=/dev/xvda bs=1M skip=8 count=1 2>/dev/null | head -c 64 | tr -d '\000' | head -n 1)"
            mark=$(arg oxen.mark "")
            if [ -n "$mark" ] && ! out=$(printf '%s\n' "$mark" | dd of=/dev/xvda bs=1M seek=8 conv=notrunc,fsync 2>&1); then
                echo "domu: disk_mark_write failed: $(echo "$out" | tail -n 1)"
            fi
        else
            echo "domu: xvda failed: /dev/xvda did not appear in 30 s"
        fi
        echo "domu: persist done"
    fi
    if [ "$SCEN" = io ]; then
        facts
        io
        echo "domu: io done"
    fi
    if [ "$SCEN" = facts ]; then
        facts
        echo "domu: facts done"
    fi
    if [ "$SCEN" = hostile ]; then
        timeout 900 xs-hostile 2>&1
        echo "domu: hostile done rc=$?"
    fi
    for s in $(echo "$SCEN" | tr , ' '); do
        case $s in
        tcp) tcp; echo "domu: tcp done" ;;
        evtchn) evtchn ;;
        storm) storm ;;
        shell | facts | hostile | io | persist) ;;
        *) echo "domu: scenario $s failed: unknown (use tcp, evtchn, storm)" ;;
        esac
    done
    echo 'export PS1="domu:\w# "' > /etc/profile
    echo "domu: starting shell ('poweroff' to shut the domain down)"
    # busybox poweroff/reboot/halt signal PID 1 (USR2/TERM/USR1): as init, honour them.
    trap 'off' USR2 USR1
    trap 'echo "domu: rebooting"; sync; reboot -f' TERM
    # setsid + cttyhack give the shell hvc0 as controlling tty (job control, ^C); in the
    # background so that `wait` lets the traps run as soon as a signal arrives.
    while :; do
        setsid cttyhack /bin/sh -l &
        wait $!
        echo "domu: shell exited, restarting"
        sleep 1
    done
    ;;
*)
    echo "domu: unknown scenario '$SCEN' (use shell, facts, check, io, persist, hostile, ext4, tcp, evtchn, storm or readback)"
    off
    ;;
esac
