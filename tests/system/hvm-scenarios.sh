#!/bin/sh
# SPDX-License-Identifier: MIT
# Toolstacks through passguard on real Xen 4.17, in dom0 (called by /init; output
# on the serial console). PGTEST_CONFIG is
#   hvm          an IOMMU host: xl with the passguard libxl patch, then Debian's
#                stock xl with libpassguard-xc.so (passguard-xl), each with an HVM
#                guest that drives the e1000, a second guest, the race, and PV;
#   hvm-noiommu  Xen iommu=0: both integrations refuse HVM and PV attaches before
#                anything is exposed, where stock xl leaves a PV guest holding the
#                device's I/O memory, ports and IRQ.
# xl, the QEMU it starts and passguardd all run with xc-trace.so: one timeline
# of their libxenctrl calls, libpassguard requests and QMP commands. The checks
# read it: the grant comes before QMP device_add and before every permission.
. /pgtest/pgtest-lib.sh
CONFIG=${PGTEST_CONFIG:-hvm}
SOCK=/run/passguard/passguard.sock
TRACER=/usr/local/lib/xc-trace.so
PGD_LOG=/tmp/passguardd.log

# patched xl: Debian's xl binary with the passguard-patched libxenlight
PXL() { LD_LIBRARY_PATH=/usr/local/lib/pg-libxl LD_PRELOAD=$TRACER xl "$@"; }
# stock xl with the interposer, as an admin runs it: passguard-xl
IXL() { LD_PRELOAD=$TRACER PASSGUARD_XC_DEBUG=1 passguard-xl "$@"; }
# stock xl without passguard, traced
SXL() { LD_PRELOAD=$TRACER xl "$@"; }

DEV=$(find_e1000)
say "config=$CONFIG e1000=$DEV"
[ -n "$DEV" ] || { fail e1000 "no 8086:100e device"; exit 1; }
xl info | grep -E '^(xen_version|virt_caps|xen_commandline)'
modprobe e1000
sleep 1

# ---- guests ----
hvm_cfg() { # NAME MODE [pci]
        cat >"/tmp/$1.cfg" <<EOF
name = "$1"
type = "hvm"
kernel = "/pgtest/guest/vmlinuz"
ramdisk = "/pgtest/guest/guest-hvm.cpio.gz"
cmdline = "console=ttyS0,115200 quiet pgtest.mode=$2"
memory = 256
vcpus = 1
vga = "none"
vnc = 0
sdl = 0
serial = "file:/tmp/$1-serial.log"
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
EOF
        [ -n "${3:-}" ] && echo "pci = [ '$3' ]" >>"/tmp/$1.cfg"
        [ $CONFIG = hvm ] && echo 'passthrough = "enabled"' >>"/tmp/$1.cfg"
        :
}
pv_cfg() { # NAME
        cat >"/tmp/$1.cfg" <<EOF
name = "$1"
type = "pv"
kernel = "/pgtest/guest/vmlinuz"
ramdisk = "/pgtest/guest/guest.cpio.gz"
memory = 192
vcpus = 1
EOF
        [ $CONFIG = hvm ] && echo 'passthrough = "enabled"' >>"/tmp/$1.cfg"
        :
}
serial_has() { grep -a -q -- "$2" "/tmp/$1-serial.log" 2>/dev/null; }
serial_show() { grep -a 'GUEST:' "/tmp/$1-serial.log" 2>/dev/null | sed "s/^/PGTEST: $1 serial| /"; }
no_domain() { ! xl domid "$1" >/dev/null 2>&1; }
no_grant() { ! pg list 2>/dev/null | sed '/^assignable devices:/,$d' | grep -q "^$DEV "; }
# The xl log of the last command, the lines that matter.
xl_log() { grep -a -E "passguard|PCI|pci|error|ERROR" "/tmp/$1.log" | head -n 20 | sed "s/^/PGTEST: xl[$1]| /"; }

# ---- checks on the timeline ----
# grant_first NAME DOMID hvm|pv: the grant (pg_assign ... rc=0) came before QMP
# device_add (HVM) and before every permission, and xl assigned nothing itself.
grant_first() {
        tg=$(trace_t " pg_assign d$2 $DEV rc=0")
        ta=$(trace_t "QMP device_add d$2 ")
        tp=$(trace_t " xc_(domain_(iomem|ioport|irq)_permission d$2 .*allow=1|physdev_map_pirq d$2 )")
        say "$1: grant at ${tg:-never}, device_add at ${ta:-never}, first permission at ${tp:-never} (trace line:time)"
        if [ "$3" = hvm ] && ! earlier "$tg" "$ta"; then
                fail "$1" "the grant did not come before device_add"
        elif ! earlier "$tg" "$tp"; then
                fail "$1" "the grant did not come before the first permission"
        elif trace_has " xl xc_assign_device d$2 "; then
                fail "$1" "xl made an assign call of its own"
        else
                ok "$1"
        fi
}
# exposed_nothing NAME DOMID: no device_add, permission or BAR mapping for DOMID.
exposed_nothing() {
        if trace_has "QMP device_add d$2 | xc_domain_(iomem|ioport|irq)_permission d$2 .*allow=1| xc_physdev_map_pirq d$2 | xc_domain_memory_mapping d$2 .*add=1"; then
                fail "$1" "something was exposed to d$2"
        else
                ok "$1"
        fi
}

# ---- the daemon ----
mkdir -p /run/passguard /var/lib/passguard
cat >/tmp/policy.conf <<EOF
version = 1;
require_interrupt_remapping = $([ $CONFIG = hvm ] && echo true || echo false);
clients = ( { name = "root"; uid = 0; } );
admins = [ "root" ];
rules = ( { name = "toolstacks"; action = "allow"; reset = "if-available"; managed = true; } );
EOF
LD_PRELOAD=$TRACER passguardd --backend xen --socket $SOCK --state-dir /var/lib/passguard \
        --policy /tmp/policy.conf --debug >$PGD_LOG 2>&1 &
if wait_for 20 pg status >/dev/null 2>&1; then ok daemon-start; else fail daemon-start "$(cat $PGD_LOG)"; exit 1; fi
pg status | sed 's/^/PGTEST: status: /'
if LD_LIBRARY_PATH=/usr/local/lib/pg-libxl ldd /usr/lib/xen-4.17/bin/xl | grep -q '/usr/local/lib/pg-libxl/libxenlight'; then
        ok patched-libxl-loaded
else
        fail patched-libxl-loaded "$(LD_LIBRARY_PATH=/usr/local/lib/pg-libxl ldd /usr/lib/xen-4.17/bin/xl | grep xenlight)"
fi

# ---- one toolstack on an IOMMU host: TAG XL-FUNCTION ----
iommu_toolstack() {
        T=$1 XL=$2
        say "==== $T: $XL"

        # pci-assignable-add goes through passguard's prepare.
        trace_reset
        $XL pci-assignable-add $DEV >/tmp/$T-aa.log 2>&1
        rc=$?
        trace_print $T-assignable-add
        if [ $rc = 0 ] && [ "$(driver_of $DEV)" = pciback ] && quarantined $DEV &&
                trace_has " pg_prepare $DEV rc=0" && ! trace_has " xl xc_assign_device "; then
                ok $T-prepare
        else
                fail $T-prepare "rc=$rc driver=$(driver_of $DEV) owner=$(q_owner $DEV)"
                xl_log $T-aa
        fi

        # An HVM guest with pci=[...]: granted before QEMU sees the device; drives it.
        G=$T-hvm
        hvm_cfg $G detach-return $DEV
        trace_reset
        t0=$(cut -d' ' -f1 /proc/uptime)
        $XL -vvv create /tmp/$G.cfg >/tmp/$G.log 2>&1
        rc=$?
        D=$(domid_of $G)
        trace_print $G-create
        if [ $rc = 0 ] && [ -n "$D" ]; then ok $T-create; else fail $T-create "rc=$rc"; xl_log $G; fi
        grant_first $T-grant-first "$D" hvm
        check $T-grant-xen test "$(q_owner $DEV)" = "d$D"
        if wait_for 900 serial_has $G "GUEST: DHCP lease"; then
                ok $T-guest-drives
        else
                fail $T-guest-drives "no DHCP lease"
        fi
        say "$G: from xl create at ${t0}s to the lease at $(cut -d' ' -f1 /proc/uptime)s"
        serial_show $G

        # pci-detach: device_del, then released into quarantine.
        trace_reset
        $XL -vvv pci-detach $G $DEV >/tmp/$G-detach.log 2>&1
        rc=$?
        trace_print $G-detach
        td=$(trace_t "QMP device_del d$D ")
        tr=$(trace_t " pg_release d$D $DEV rc=0")
        if [ $rc = 0 ] && earlier "$td" "$tr" && quarantined $DEV && no_grant; then
                ok $T-detach-released
        else
                fail $T-detach-released "rc=$rc device_del=$td release=$tr owner=$(q_owner $DEV)"
                xl_log $G-detach
        fi
        rangesets "$D" | sed "s/^/PGTEST: rangesets d$D after detach: /"
        wait_for 120 serial_has $G "GUEST: e1000 gone" && ok $T-guest-saw-detach || fail $T-guest-saw-detach "-"

        # Attached again, then a second guest asks for it: busy, nothing exposed.
        trace_reset
        $XL pci-attach $G $DEV >/tmp/$G-attach.log 2>&1
        rc=$?
        if [ $rc = 0 ] && [ "$(q_owner $DEV)" = "d$D" ]; then ok $T-reattach; else fail $T-reattach "rc=$rc"; xl_log $G-attach; fi
        G2=$T-hvm2
        hvm_cfg $G2 once $DEV
        trace_reset
        $XL create /tmp/$G2.cfg >/tmp/$G2.log 2>&1
        rc=$?
        trace_print $G2-create
        D2=$(grep -E -o " pg_assign d[0-9]+ $DEV rc=12" "$TRACE" | head -n 1 | sed -E 's/ pg_assign d([0-9]+) .*/\1/')
        if [ $rc != 0 ] && [ -n "$D2" ] && no_domain $G2 && grep -q 'busy (check: free)' /tmp/$G2.log; then
                ok $T-second-guest-busy
        else
                fail $T-second-guest-busy "rc=$rc domid=${D2:-?}"
        fi
        xl_log $G2
        if [ -n "$D2" ]; then exposed_nothing $T-second-guest-nothing-exposed "$D2"; else fail $T-second-guest-nothing-exposed "no domid"; fi
        check $T-still-first-guests test "$(q_owner $DEV)" = "d$D"

        # The guest drives the device again and powers itself off: released.
        if wait_for 900 no_domain $G; then ok $T-guest-poweroff; else fail $T-guest-poweroff "still running"; fi
        serial_show $G
        if wait_for 30 no_grant && quarantined $DEV; then
                ok $T-poweroff-released
        else
                fail $T-poweroff-released "owner $(q_owner $DEV)"
        fi
        grep -E 'op=(release|domain-death)' $PGD_LOG | tail -n 2 | sed "s/^/PGTEST: audit| /"

        # The race: a second toolstack assigns the device behind passguard's back
        # between passguardd's test-assign and its assign (xc-trace in passguardd).
        R=$T-race
        hvm_cfg $R watch
        xl create -p /tmp/$R.cfg >/tmp/$R.log 2>&1 || fail $T-race-guest "$(cat /tmp/$R.log)"
        pv_cfg $T-thief
        xl create -p /tmp/$T-thief.cfg >/tmp/$T-thief.log 2>&1 || fail $T-thief "$(cat /tmp/$T-thief.log)"
        DR=$(domid_of $R) DT=$(domid_of $T-thief)
        echo "$DT" >/tmp/xc-trace.race
        trace_reset
        $XL -vvv pci-attach $R $DEV >/tmp/$R-attach.log 2>&1
        rc=$?
        trace_print $R-attach
        if [ $rc != 0 ] && trace_has "INJECT race" && trace_has " passguardd xc_assign_device d$DR .*errno=16" &&
                grep -q 'busy' /tmp/$R-attach.log; then
                ok $T-race-loser-busy
        else
                fail $T-race-loser-busy "rc=$rc"
        fi
        xl_log $R-attach
        exposed_nothing $T-race-nothing-exposed "$DR"
        check $T-race-thief-owns test "$(q_owner $DEV)" = "d$DT"
        check $T-race-rangesets-empty holds_nothing "$DR"
        xl destroy $T-thief
        wait_for 10 quarantined $DEV || fail $T-race-cleanup "owner $(q_owner $DEV)"
        xl destroy $R

        # PV: granted before the first permission; detach releases and revokes.
        P=$T-pv
        pv_cfg $P
        xl create -p /tmp/$P.cfg >/tmp/$P.log 2>&1 || fail $T-pv-guest "$(cat /tmp/$P.log)"
        DP=$(domid_of $P)
        trace_reset
        $XL -vvv pci-attach $P $DEV >/tmp/$P-attach.log 2>&1
        rc=$?
        trace_print $P-attach
        if [ $rc = 0 ]; then ok $T-pv-attach; else fail $T-pv-attach "rc=$rc"; xl_log $P-attach; fi
        grant_first $T-pv-grant-first "$DP" pv
        check $T-pv-grant-xen test "$(q_owner $DEV)" = "d$DP"
        trace_reset
        $XL pci-detach $P $DEV >/tmp/$P-detach.log 2>&1
        rc=$?
        trace_print $P-detach
        if [ $rc = 0 ] && quarantined $DEV && no_grant && holds_nothing "$DP"; then
                ok $T-pv-detach
        else
                fail $T-pv-detach "rc=$rc owner=$(q_owner $DEV)"
                xl_log $P-detach
        fi
        xl destroy $P
}

if [ $CONFIG = hvm ]; then
        iommu_toolstack px PXL

        # The patched libxl undoes a failed add: the IRQ permission fails (injected),
        # the I/O memory and port permissions are taken back, the grant released.
        P=px-pv-undo
        pv_cfg $P
        xl create -p /tmp/$P.cfg >/tmp/$P.log 2>&1
        DP=$(domid_of $P)
        trace_reset
        XC_TRACE_FAIL=xc_domain_irq_permission PXL -vvv pci-attach $P $DEV >/tmp/$P-attach.log 2>&1
        rc=$?
        trace_print $P
        if [ $rc != 0 ] && trace_has "INJECT fail xc_domain_irq_permission d$DP" &&
                trace_has " xc_domain_iomem_permission d$DP .*allow=0" && trace_has " pg_release d$DP $DEV rc=0" &&
                quarantined $DEV && no_grant && holds_nothing "$DP"; then
                ok px-undo-failed-add
        else
                fail px-undo-failed-add "rc=$rc owner=$(q_owner $DEV)"
        fi
        xl_log $P-attach
        xl destroy $P

        # Back to dom0's driver through the patched xl, then the interposer's turn.
        trace_reset
        if PXL pci-assignable-remove -r $DEV >/tmp/px-ar.log 2>&1 && [ "$(driver_of $DEV)" = e1000 ] &&
                trace_has " pg_unprepare $DEV rc=0"; then
                ok px-unprepare
        else
                fail px-unprepare "driver $(driver_of $DEV)"
                xl_log px-ar
        fi
        iommu_toolstack ix IXL
else
        # No IOMMU: quarantine is impossible, so the device is bound to pciback by
        # hand, as an admin would; stock xl's pci-assignable-add fails to quarantine.
        SXL pci-assignable-add $DEV >/tmp/stock-aa.log 2>&1
        say "stock xl pci-assignable-add: rc=$? $(grep -a -i -E 'error|quarantine' /tmp/stock-aa.log | head -n 2 | tr '\n' ' ')"
        if [ "$(driver_of $DEV)" != pciback ]; then
                echo $DEV >/sys/bus/pci/drivers/pciback/new_slot 2>/dev/null
                echo $DEV >/sys/bus/pci/drivers/pciback/bind
        fi
        check noiommu-pciback test "$(driver_of $DEV)" = pciback
        pg status | grep -q -i 'iommu: no' && ok noiommu-status || fail noiommu-status "$(pg status)"

        N=n-hvm
        hvm_cfg $N watch
        xl create -p /tmp/$N.cfg >/tmp/$N.log 2>&1 || fail $N "$(cat /tmp/$N.log)"
        DN=$(domid_of $N)
        pv_cfg n-pv
        xl create -p /tmp/n-pv.cfg >/tmp/n-pv.log 2>&1 || fail n-pv "$(cat /tmp/n-pv.log)"
        DV=$(domid_of n-pv)
        for T in px ix; do
                XL=PXL
                [ $T = ix ] && XL=IXL
                for G in $N n-pv; do
                        D=$([ $G = $N ] && echo $DN || echo $DV)
                        kind=$([ $G = $N ] && echo hvm || echo pv)
                        trace_reset
                        $XL -vvv pci-attach $G $DEV >/tmp/$T-$G.log 2>&1
                        rc=$?
                        trace_print $T-$kind-attach
                        xl_log $T-$G
                        if [ $rc != 0 ] && grep -q 'no-iommu (check: iommu)' /tmp/$T-$G.log; then
                                ok $T-noiommu-$kind-refused
                        else
                                fail $T-noiommu-$kind-refused "rc=$rc"
                        fi
                        exposed_nothing $T-noiommu-$kind-nothing-exposed "$D"
                        check $T-noiommu-$kind-rangesets-empty holds_nothing "$D"
                done
        done
        if trace_has " passguardd xc_assign_device "; then fail noiommu-no-assign-call "-"; else ok noiommu-no-assign-call; fi

        # The contrast, and proof that the rangeset check sees a leak: stock xl
        # gives the PV guest the device's I/O memory, ports and IRQ, then fails.
        trace_reset
        SXL -vvv pci-attach n-pv $DEV >/tmp/stock-pv.log 2>&1
        say "stock xl pci-attach n-pv: rc=$?"
        trace_print stock-pv-attach
        if holds_nothing "$DV"; then fail stock-pv-leak-seen "the stock leak was not seen"; else ok stock-pv-leak-seen; fi
        xl destroy n-pv
        xl destroy $N
fi
say "passguardd log:"
sed 's/^/PGTEST: pgd| /' $PGD_LOG | tail -n 60
exit 0
