# Scenarios of oxl on real Xen 4.17, sourced by the reference Dom0's /init (bash) after its
# toolstack bring-up (oxenstored or xenstored, xenconsoled; Debian's xl stays available for
# comparison). Each prints REF-... lines that ../xen-check.sh checks. Functions used from the
# reference /init: ref, now, dt, wait_console, CONLOG.

oxl_cfg() { # extra lines -> /etc/xen/oxl.cfg
    cat > /etc/xen/oxl.cfg <<CFG
name = "domu"
type = "pvh"
kernel = "/opt/domu/Image"
ramdisk = "/opt/domu/domu-initrd.gz"
extra = "console=hvc0 rdinit=/init ref_scenario=domu"
$1
CFG
}

# create -c (console through oxl, Ctrl-] ends it), list/-v/-l, vcpu-list, info, xenstore
# tree, pause/unpause, domid/domname, destroy, error paths.
run_oxl_basic() {
    local t0 rc=0
    oxl_cfg 'memory = 256
vcpus = 1
on_crash = "preserve"'
    t0=$(now)
    # Ctrl-] once xenconsoled's log shows the DomU's /init (so the console saw it too).
    { for _ in $(seq 300); do
          grep -q DOMU-INIT /var/log/xen/console/guest-domu.log 2>/dev/null && break; sleep 1
      done; sleep 2; printf '\035'; } | oxl -v create -c /etc/xen/oxl.cfg \
        > /var/log/xen/oxl-console.txt 2> /var/log/xen/oxl-create.log || rc=$?
    ref "oxl_create_rc=$rc"
    sed 's/^/REF-CREATE: /' /var/log/xen/oxl-create.log
    grep -a -c 'DOMU-INIT' /var/log/xen/oxl-console.txt | sed 's/^/REF-CONSOLE-INIT: /'
    wait_console DOMU-INIT 300 && ref "domu_init=ok"
    oxl list 2>&1 | sed 's/^/REF-LIST: /'
    xl list 2>&1 | sed 's/^/REF-XL-LIST: /'
    oxl list -v 2>&1 | sed 's/^/REF-LISTV: /'
    oxl list -l domu 2>&1 | sed 's/^/REF-LISTL: /'
    oxl vcpu-list 2>&1 | sed 's/^/REF-VCPU: /'
    oxl info 2>&1 | sed 's/^/REF-INFO: /'
    oxl info xen_version 2>&1 | sed 's/^/REF-INFO1: /'
    oxl domid domu 2>&1 | sed 's/^/REF-DOMID: /'
    oxl domname 1 2>&1 | sed 's/^/REF-DOMNAME: /'
    xenstore-ls -fp 2>&1 | grep '^/local/domain/1\|^/vm\|^/libxl/1\|backend/console' | sed 's/^/REF-XS: /'
    oxl pause domu; oxl list domu 2>&1 | sed 's/^/REF-PAUSED: /'
    oxl unpause domu; oxl list domu 2>&1 | sed 's/^/REF-UNPAUSED: /'
    oxl destroy domu 2>&1 | sed 's/^/REF-DESTROY: /'
    ref "oxl_destroy_rc=${PIPESTATUS[0]}"
    sleep 2
    oxl list 2>&1 | sed 's/^/REF-AFTER: /'
    xenstore-ls -f 2>&1 | grep '^/local/domain/1\|^/vm/\|^/libxl/1' | sed 's/^/REF-XS-LEFT: /'
    ls /var/lib/xen | grep -v '^userdata-d\.0\.' | sed 's/^/REF-LIB-LEFT: /'
    sed 's/^/REF-MONITOR: /' /var/log/xen/xl-domu.log
    echo "memroy = 3" > /tmp/bad.cfg
    oxl create /tmp/bad.cfg 2>&1 | sed 's/^/REF-ERR: /'
    oxl create /etc/xen/oxl.cfg memory=100000 2>&1 | sed 's/^/REF-ERR: /'
    oxl create /etc/xen/oxl.cfg 'kernel="/nope"' 2>&1 | sed 's/^/REF-ERR: /'
    oxl destroy 7 2>&1 | sed 's/^/REF-ERR: /'
}

# The monitor: a guest reboot is restarted from the saved config, a guest poweroff destroyed.
run_oxl_restart() {
    oxl_cfg 'memory = 128
vcpus = 2'
    oxl create /etc/xen/oxl.cfg 2>&1 | sed 's/^/REF-CREATE: /'
    wait_console DOMU-INIT 300 && ref "domu1_init=ok"
    xenstore-write /local/domain/1/control/sysrq b
    for _ in $(seq 120); do oxl domid domu 2>/dev/null | grep -qx 2 && break; sleep 1; done
    wait_console DOMU-INIT 300 && ref "domu2_init=ok"
    oxl list 2>&1 | sed 's/^/REF-LIST2: /'
    xenstore-write /local/domain/2/control/sysrq o
    for _ in $(seq 60); do oxl domid domu >/dev/null 2>&1 || break; sleep 1; done
    oxl list 2>&1 | sed 's/^/REF-AFTER: /'
    sed 's/^/REF-MONITOR: /' /var/log/xen/xl-domu.log
    xenstore-ls -f 2>&1 | grep '^/local/domain/[12]\|^/vm/\|^/libxl/[12]' | sed 's/^/REF-XS-LEFT: /'
}

# cpus= / weight= / cap= applied, shown by oxl and by Debian's xl alike.
run_oxl_affinity() {
    oxl_cfg 'memory = 128
vcpus = 2
cpus = ["1", "0"]
weight = 512
cap = 50'
    oxl create -p /etc/xen/oxl.cfg 2>&1 | sed 's/^/REF-CREATE: /'
    oxl vcpu-list domu 2>&1 | sed 's/^/REF-VCPU: /'
    xl vcpu-list domu 2>&1 | sed 's/^/REF-XL-VCPU: /'
    xl sched-credit2 -d domu 2>&1 | sed 's/^/REF-SCHED: /'
    oxl unpause domu
    wait_console DOMU-INIT 300 && ref "domu_init=ok"
    oxl destroy domu
    oxl create /etc/xen/oxl.cfg 'cpus="0-5"' 2>&1 | sed 's/^/REF-ERR: /'
    oxl create /etc/xen/oxl.cfg vcpus=3 2>&1 | sed 's/^/REF-ERR: /'
}
