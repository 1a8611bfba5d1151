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
# oxen.ip=ADDR/LEN (/etc/xen/domu-io.cfg: 192.0.2.2/24): eth0 gets that address and goes up
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

# The PV disk and network frontends (modules in Debian's kernel); harmless without devices.
for m in xen-blkfront xen-netfront; do
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

case $SCEN in
check)
    facts
    echo "domu: check done"
    off
    ;;
facts | shell | hostile | io | persist)
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
    echo "domu: unknown scenario '$SCEN' (use shell, facts, check, io, persist or hostile)"
    off
    ;;
esac
