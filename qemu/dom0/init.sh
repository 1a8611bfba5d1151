#!/bin/sh
# /init of oxen's Dom0 initramfs (busybox sh, PID 1). Installed by qemu/build-dom0.sh.
#
# Brings up a minimal Dom0: pseudo filesystems, the Xen backend modules, xenfs on
# /proc/xen, then runs the scenario named by `oxen.dom0=` on the kernel command line:
#   shell    (default) start the Xen services when this is Dom0 (/etc/init.d/xencommons:
#            xenstored, xenconsoled, Dom0's xenstore entries), the bridge xenbr0 with
#            192.0.2.1/24 that DomU vifs join (as the reference harness) and the DomU
#            image store (below), then an interactive busybox shell on the console;
#            `poweroff` stops the machine
# The DomU image store (shell, as Dom0): /var/lib/xen/images holds the ready DomU's disk
# image domu.img (256 MiB, sparse; /etc/xen/domu.cfg). With a virtio disk /dev/vda
# (`make run` gives one: .cache/run-disk.img) it is that disk's ext2 filesystem, made on
# first use when the disk has no ext2/3/4 filesystem (never over another filesystem or
# a partition table: then the store stays in RAM), so what a DomU writes survives its
# restart and the next boot; without one it is in RAM (rootfs) and lost at power-off.
#   check    print the facts the tests read, run `evtchn-ping`, power off
#   poweroff power off at once
# Knobs: oxen.ping=N (evtchn-ping round trips in `check`, default 10000),
#        oxen.xencommons=0 (`shell` without the Xen services and xenbr0).
# Output: `OXEN-DOM0-INIT` first, then `dom0: key=value` lines, `dom0-dmesg: ...` lines.
# Failures are reported on one line each and never stop the script: it always reaches
# the scenario, and `check`/`poweroff` always end in a power-off (QEMU exits).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=linux LANG=C

/bin/busybox mount -t proc proc /proc
echo "OXEN-DOM0-INIT"
read -r UP _ < /proc/uptime
echo "dom0: uptime_at_init_s=$UP"
/bin/busybox --install -s

mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null # may already be mounted (CONFIG_DEVTMPFS_MOUNT)
mkdir -p /dev/pts /dev/shm
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs /tmp
hostname dom0

arg() { # name default: value of `name=` on the kernel command line
    read -r cmdline < /proc/cmdline
    for a in $cmdline; do
        case $a in "$1"=*) echo "${a#*=}"; return;; esac
    done
    echo "$2"
}

off() {
    echo "dom0: powering off"
    sync
    umount /var/lib/xen/images 2>/dev/null
    poweroff -f
    echo "dom0: poweroff -f returned; trying sysrq"
    echo o > /proc/sysrq-trigger
    while :; do sleep 60; done # PID 1 must never exit
}

HV=none
[ -r /sys/hypervisor/type ] && HV=$(cat /sys/hypervisor/type)
echo "dom0: hypervisor=$HV"

# Xen backend and device modules. Without Xen the xen-* ones refuse to load (ENODEV):
# one line each, and we go on.
MODS="xen-evtchn xen-privcmd xen-gntdev xen-gntalloc xenfs xen-blkback xen-netback
      virtio_mmio virtio_pci virtio_blk virtio_net virtio_console loop bridge crc32c_generic ext4"
loaded=
for m in $MODS; do
    if err=$(modprobe "$m" 2>&1); then
        loaded="$loaded${loaded:+,}$m"
    else
        echo "dom0: modprobe $m failed: $(echo "$err" | tail -n 1)"
    fi
done
echo "dom0: modules=$loaded"

if [ -d /proc/xen ] && mount -t xenfs xenfs /proc/xen 2>/dev/null; then
    CAPS=$(cat /proc/xen/capabilities 2>/dev/null)
    echo "dom0: capabilities=${CAPS:-none}"
else
    echo "dom0: capabilities=none"
    echo "dom0: xenfs not mounted on /proc/xen (not running on Xen/oxen, or xenfs missing)"
fi

# store: the DomU image store on /var/lib/xen/images (see the top); one `dom0: store ...`
# line saying where it is, or `dom0: store failed: ...` (then it is in RAM).
STORE=/var/lib/xen/images
store() {
    mkdir -p "$STORE"
    where="in RAM (no virtio disk /dev/vda): DomU disks are lost at power-off"
    if [ -b /dev/vda ]; then
        # ext2/3/4 superblock magic 0xEF53 at byte 1080; anything else non-zero is left alone
        magic=$(dd if=/dev/vda bs=1 skip=1080 count=2 2>/dev/null | od -An -tx1 | tr -d ' \n')
        head=$(dd if=/dev/vda bs=4096 count=1 2>/dev/null | od -An -tx1 | tr -d ' 0\n*')
        fmt=
        if [ "$magic" != 53ef ] && [ -z "$head" ]; then
            if out=$(mke2fs -q -L oxen-store /dev/vda 2>&1); then
                fmt=", made a new ext2 filesystem"
            else
                echo "dom0: store failed: mke2fs /dev/vda: $(echo "$out" | tail -n 1)"
            fi
        fi
        if [ "$magic" != 53ef ] && [ -z "$fmt" ]; then
            [ -n "$head" ] && echo "dom0: store failed: /dev/vda holds data that is not an ext2/3/4 filesystem: left alone"
        elif out=$(mount -t ext4 /dev/vda "$STORE" 2>&1); then
            where="on /dev/vda ($(($(cat /sys/block/vda/size) / 2048)) MiB$fmt)"
        else
            echo "dom0: store failed: mount /dev/vda: $(echo "$out" | tail -n 1)"
        fi
    fi
    if [ ! -e "$STORE/domu.img" ]; then
        out=$(truncate -s 256M "$STORE/domu.img" 2>&1) ||
            echo "dom0: store failed: $STORE/domu.img: $(echo "$out" | tail -n 1)"
    fi
    echo "dom0: store $STORE $where"
}

SCEN=$(arg oxen.dom0 shell)
echo "dom0: scenario=$SCEN"

case $SCEN in
check)
    echo "dom0: nr_cpus=$(grep -c '^processor' /proc/cpuinfo)"
    echo "dom0: mem_total_kb=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)"
    devs=
    for f in /dev/xen/*; do
        [ -e "$f" ] && devs="$devs${devs:+,}${f#/dev/xen/}"
    done
    echo "dom0: dev-xen=${devs:-none}"
    dmesg | grep -i xen | grep -v 'Kernel command line' | sed 's/^/dom0-dmesg: /'
    ROUNDS=$(arg oxen.ping 10000)
    evtchn-ping "$ROUNDS" 2>&1
    echo "dom0: evtchn-ping rc=$?"
    echo "dom0: check done"
    off
    ;;
poweroff)
    off
    ;;
shell)
    echo 'export PS1="dom0:\w# "' > /etc/profile
    # The Xen services belong to Dom0 on Xen/oxen only (this image also boots as a
    # boot-time DomU, and on bare QEMU).
    if [ "$(arg oxen.xencommons 1)" != 0 ] && [ "$CAPS" = control_d ]; then
        /etc/init.d/xencommons start
        echo "dom0: xencommons rc=$?"
        ip link set lo up
        # STP stays off (a new bridge's default): ports forward at once.
        if out=$(brctl addbr xenbr0 2>&1 && echo 0 > /sys/class/net/xenbr0/bridge/forward_delay &&
            ip addr add 192.0.2.1/24 dev xenbr0 2>&1 && ip link set xenbr0 up 2>&1); then
            echo "dom0: bridge xenbr0 192.0.2.1/24 up"
        else
            echo "dom0: bridge xenbr0 failed: $(echo "$out" | tail -n 1)"
        fi
        store
    fi
    echo "dom0: starting shell ('poweroff' or 'reboot' to stop)"
    # busybox poweroff/reboot/halt signal PID 1 (USR2/TERM/USR1): as init, honour them.
    trap 'off' USR2 USR1
    trap 'echo "dom0: rebooting"; sync; umount /var/lib/xen/images 2>/dev/null; reboot -f' TERM
    # setsid + cttyhack give the shell the console as controlling tty (job control, ^C).
    # The shell runs in the background so that `wait` (unlike a foreground child)
    # lets the traps above run as soon as a signal arrives.
    while :; do
        setsid cttyhack /bin/sh -l &
        wait $!
        echo "dom0: shell exited, restarting"
        sleep 1
    done
    ;;
*)
    echo "dom0: unknown scenario '$SCEN' (use shell, check or poweroff)"
    off
    ;;
esac
