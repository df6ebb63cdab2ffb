#!/bin/sh
# SPDX-License-Identifier: MIT
# Beyond the anchors, on real Xen 4.17 (called by /init in dom0; output on the
# serial console): what touches the hypervisor of identity-bound grants,
# all-or-nothing multi-device assign and unmanaged assignments at domain
# events. The QEMU machine has two e1000s (00:05.0 and 00:06.0), each alone
# in its IOMMU group. Every check prints "PGTEST ok NAME" or "PGTEST FAIL
# NAME: why"; run-boot.sh asserts them.
#   multi-*      assign DOMAIN DEV DEV2 where Xen's assign of DEV2 fails
#                (xc-trace.so fails that one call with EIO, as a hypervisor
#                might): DEV, assigned first, is back in quarantine (DomIO in
#                Xen's own 'Q' dump), no grant stays, the reply names DEV2;
#                then both together, and each released.
#   identity-*   the device at DEV "replaced": its sysfs device id (what the
#                kernel read from the device's config space) shows another
#                model. assign is refused identity-changed, Xen's owner stays
#                DomIO and passguardd makes no assign call; a restarted
#                daemon reports the change; the real id back, assign works.
#   unmanaged-*  an assignment made behind passguard's back while it runs is
#                reported at the next domain event (xl create); under
#                --enforce, a domain event (xl destroy) deassigns it.
. /pgtest/pgtest-lib.sh
SOCK=/run/passguard/passguard.sock
STATE=/var/lib/passguard
POLICY=/tmp/policy.conf
PGD_LOG=/tmp/passguardd.log
PGD_PID=
TRACER=/usr/local/lib/xc-trace.so

find_e1000s() {
        for d in /sys/bus/pci/devices/*; do
                [ "$(cat "$d/vendor")" = 0x8086 ] && [ "$(cat "$d/device")" = 0x100e ] && basename "$d"
        done
}
# shellcheck disable=SC2046
set -- $(find_e1000s)
DEV=${1:-} DEV2=${2:-}
say "e1000s: '$DEV' '$DEV2'"
[ -n "$DEV" ] && [ -n "$DEV2" ] || { fail two-e1000s "found '$DEV' '$DEV2'"; exit 1; }
xl info | grep -E '^(xen_version|virt_caps|xen_commandline)'
modprobe e1000
wait_for 10 test "$(driver_of "$DEV2")" = e1000 || say "e1000 not bound: $(driver_of "$DEV2")"

cat >$POLICY <<EOF
version = 1;
clients = ( { name = "root"; uid = 0; } );
admins = [ "root" ];
rules = (
  { name = "test-all"; action = "allow"; reset = "if-available"; managed = true; }
);
EOF

# pgd_start TAG [OPTION...]: passguardd on the xen backend, traced; its log in $PGD_LOG.TAG.
# XC_TRACE_FAIL in the environment reaches it.
pgd_start() {
        tag=$1
        shift
        : >"$PGD_LOG.$tag"
        LD_PRELOAD=$TRACER passguardd --backend xen --socket $SOCK --state-dir $STATE \
                --policy $POLICY --debug "$@" >"$PGD_LOG.$tag" 2>&1 &
        PGD_PID=$!
        if wait_for 15 passguard --socket $SOCK status; then
                PGD_TAG=$tag
                return 0
        fi
        say "passguardd ($tag) did not come up:"
        pgd_log "$tag"
        return 1
}
pgd_stop() { kill "$PGD_PID" 2>/dev/null; wait "$PGD_PID" 2>/dev/null; pgd_log "$PGD_TAG"; }
owner_is() { [ "$(q_owner "$1")" = "$2" ]; }
grants() { pg list 2>/dev/null | sed '/^assignable devices:/,$d' | grep -c '^0000:'; }
# log_has TAG PATTERN...: a line of the daemon's log holds every pattern.
log_has() {
        f="$PGD_LOG.$1"
        shift
        grep -F -- "$1" "$f" >/tmp/log_has 2>/dev/null || return 1
        shift
        for p in "$@"; do
                grep -F -- "$p" /tmp/log_has >/tmp/log_has.next || return 1
                mv /tmp/log_has.next /tmp/log_has
        done
}
both_quarantined() { quarantined "$1" && quarantined "$2"; }
both_owned() { owner_is "$2" "$1" && owner_is "$3" "$1"; } # OWNER DEV DEV2
out_has() { echo "$out" | grep -q -- "$1"; }
no_assign_traced() { ! trace_has 'xc_assign_device'; }

pv_guest g-a enabled || fail create-g-a "$(cat /tmp/xl-create.log)"
pv_guest g-b enabled || fail create-g-b "$(cat /tmp/xl-create.log)"
A=$(domid_of g-a)
B=$(domid_of g-b)
say "guests: g-a d$A, g-b d$B"
pg-hvprobe group "$DEV" | sed 's/^/PGTEST: group of DEV: /'
pg-hvprobe group "$DEV2" | sed 's/^/PGTEST: group of DEV2: /'

# ---- multi-device assign: the second assign fails, the first is undone ----
trace_reset
XC_TRACE_FAIL=xc_assign_device:$DEV2 pgd_start multi-fault || { fail daemon-start "see PGD lines"; exit 1; }
ok daemon-start
pg_expect prepare-dev 0 "" prepare "$DEV"
pg_expect prepare-dev2 0 "" prepare "$DEV2"
check both-quarantined both_quarantined "$DEV" "$DEV2"
pg_expect multi-second-fails 1 "hypervisor-error" assign g-a "$DEV" "$DEV2"
check multi-names-second out_has "$DEV2"
check multi-says-rolled-back out_has "back in quarantine"
trace_print multi
# Xen's order: DEV assigned to g-a, DEV2's assign failed, DEV deassigned.
t_assign=$(trace_t "xc_assign_device d$A $DEV .*rc=0")
t_inject=$(trace_t "INJECT fail xc_assign_device d$A $DEV2")
t_undo=$(trace_t "xc_deassign_device d$A $DEV .*rc=0")
say "multi timeline: assign $DEV $t_assign, $DEV2 failed $t_inject, $DEV deassigned $t_undo"
if earlier "$t_assign" "$t_inject" && earlier "$t_inject" "$t_undo"; then
        ok multi-xen-order
else
        fail multi-xen-order "assign '$t_assign' inject '$t_inject' deassign '$t_undo'"
fi
o=$(q_owner "$DEV")
say "MULTI: after the failed group assign, Xen's Q dump shows $DEV owner $o, $DEV2 owner $(q_owner "$DEV2")"
check multi-first-back-domio quarantined "$DEV"
check multi-second-domio quarantined "$DEV2"
check multi-no-grant test "$(grants)" = 0
pg_expect multi-explain-both 0 allow explain g-a "$DEV" "$DEV2"
# The device facts: how many reserved memory regions (RMRR / IVMD) Xen holds for
# it, from XENMEM_reserved_device_memory_map. An emulated e1000 has none.
facts=$(pg explain g-a "$DEV" | grep -E '^ *pass +device ')
say "RDM: explain's device facts on real Xen: $facts"
check rdm-fact-none sh -c "echo '$facts' | grep -q 'reserved memory regions: 0\$'"
pgd_stop

# Without the fault: both, in one request; then each released.
pgd_start multi || { fail daemon-restart "see PGD lines"; exit 1; }
pg_expect multi-both 0 "" assign g-a "$DEV" "$DEV2"
check multi-both-xen both_owned "d$A" "$DEV" "$DEV2"
check multi-both-granted test "$(grants)" = 2
pg_expect multi-busy-all 1 busy assign g-b "$DEV2" "$DEV"
check multi-busy-xen both_owned "d$A" "$DEV" "$DEV2"
pg_expect multi-release-1 0 "" release g-a "$DEV"
pg_expect multi-release-2 0 "" release g-a "$DEV2"
check multi-released-domio both_quarantined "$DEV" "$DEV2"

# ---- identity: another device at DEV's address ----
# The kernel's sysfs "device" file, read by passguardd for the identity, says
# another model (0x10d3, an 82574L) from now on; Xen still sees the e1000.
sysdev=$(readlink -f "/sys/bus/pci/devices/$DEV/device")
echo 0x10d3 >/tmp/fake-device-id
mount --bind /tmp/fake-device-id "$sysdev" || fail identity-mount "cannot bind over $sysdev"
say "IDENTITY: $sysdev now reads $(cat "/sys/bus/pci/devices/$DEV/device")"
trace_reset
pg_expect identity-refused 1 identity-changed assign g-b "$DEV"
check identity-names-change out_has "device id 0x100e became 0x10d3"
pg_expect identity-explain 1 '"error":"identity-changed"' explain g-b "$DEV"
check identity-no-assign-call no_assign_traced
check identity-xen-domio quarantined "$DEV"
# A device of a group is refused as a whole: nothing of DEV2 is assigned either.
pg_expect identity-group-refused 1 identity-changed assign g-b "$DEV2" "$DEV"
check identity-group-quarantined quarantined "$DEV2"
check identity-group-no-assign-call no_assign_traced
pgd_stop
# Start-up reconciliation reports it.
pgd_start identity || { fail daemon-restart-2 "see PGD lines"; exit 1; }
if log_has identity "kind=identity" "$DEV" "device id 0x100e became 0x10d3"; then
        ok identity-startup-reported
else
        fail identity-startup-reported "no identity record at start-up"
fi
umount "$sysdev"
pg_expect identity-restored 0 "" assign g-b "$DEV"
check identity-restored-xen owner_is "$DEV" "d$B"
pg_expect identity-release 0 "" release g-b "$DEV"

# ---- names: the daemon knows a domain by the name xenstore gives it now ----
pg_expect name-known 0 allow explain g-a "$DEV2"
xl rename g-a g-renamed
pg_expect name-renamed 0 allow explain g-renamed "$DEV2"
pg_expect name-old-gone 1 no-such-domain explain g-a "$DEV2"
xl rename g-renamed g-a
pg_expect name-back 0 allow explain g-a "$DEV2"

# ---- unmanaged assignments at domain events ----
# Behind passguard's back (the daemon is running): nothing is said until a domain event.
check unmanaged-behind-back pg-hvprobe assign "$B" "$DEV" strict
pv_guest g-c enabled || fail create-g-c "$(cat /tmp/xl-create.log)"
C=$(domid_of g-c)
if wait_for 10 log_has identity "kind=unmanaged" "op=domain-event" "device=$DEV" "domid=$B"; then
        ok unmanaged-domain-event
else
        fail unmanaged-domain-event "no unmanaged record after xl create g-c (d$C)"
fi
grep -F 'kind=unmanaged' "$PGD_LOG.identity" | sed 's/^/PGTEST: unmanaged-audit: /'
check unmanaged-reported-kept owner_is "$DEV" "d$B"
pgd_stop
# --enforce: the start-up pass deassigns it (as pg-unmanaged shows on the amd
# boot); assigned again behind its back, the next domain event deassigns it.
pgd_start enforce --enforce || { fail daemon-restart-3 "see PGD lines"; exit 1; }
check unmanaged-enforce-startup quarantined "$DEV"
check unmanaged-behind-back-2 pg-hvprobe assign "$B" "$DEV" strict
check unmanaged-assigned-again owner_is "$DEV" "d$B"
xl destroy g-c
if wait_for 10 log_has enforce "kind=unmanaged" "op=domain-event" "device=$DEV" "decision=deassigned"; then
        ok unmanaged-enforce-domain-event
else
        fail unmanaged-enforce-domain-event "no deassigned record after xl destroy g-c"
fi
o=$(q_owner "$DEV")
say "UNMANAGED: after xl destroy under --enforce, Xen's Q dump shows $DEV owner $o"
check unmanaged-enforce-domio quarantined "$DEV"
pgd_stop
exit 0
