#!/bin/sh
# SPDX-License-Identifier: MIT
# passguard as a systemd service in a real dom0 (Xen 4.17 under QEMU, AMD IOMMU),
# run by pgtest.service with systemd as PID 1 and Debian's own init script
# starting xenstored and xenconsoled. passguard was installed by the README's
# install path: meson install on the build machine into this root, the rest of
# its lines (readme-install.sh) here. Then, through the socket-activated service
# under its sandbox: activation, notify and watchdog; prepare, assign, release,
# unprepare of the e1000 to a PV guest; the audit records in journald and their
# catalog entries; clients told apart by their unit; a bad reload; kill -9;
# stop and start.
. /pgtest/pgtest-lib.sh
SOCK=/run/passguard/passguard.sock
GRANT_ID=0641ab6ab8e040bca182a82730f3dc74
REFUSE_ID=381931e46c6e40d2b3871c3b75707903
GONE_ID=c7e53117662c479dbec06c691b15bf18
RELOAD_ID=aff96d8140e04f76be2d42288b660ceb

show() { systemctl show passguardd.service -p "$1" --value; }
pg_grant_of() { passguard list 2>/dev/null | sed '/^assignable devices:/,$d' | grep "^$1 "; }
# journal NAME MESSAGE_ID FIELD=VALUE...: a record with that MESSAGE_ID holds every
# FIELD=VALUE (checked on its verbose form, printed)
journal_has() {
        name=$1 id=$2
        shift 2
        journalctl --no-pager -o verbose MESSAGE_ID="$id" >/tmp/j.$name 2>&1
        sed -n '/PASSGUARD_\|MESSAGE=/p' /tmp/j.$name | sed "s/^ */PGTEST: journal[$name]| /"
        for fv in "$@"; do
                grep -q "^ *$fv\$" /tmp/j.$name || { fail "$name" "no $fv in the record"; return 1; }
        done
        ok "$name"
}
# runner UNIT ARGS...: passguard as nobody in a transient unit of that name
runner() {
        unit=$1
        shift
        systemd-run --unit="$unit" --uid=nobody --gid=nogroup -p SupplementaryGroups=passguard \
                --wait --pipe --quiet --collect passguard "$@"
}

check systemd-pid1 test "$(cat /proc/1/comm)" = systemd
say "$(systemctl --version | head -n 1); system: $(systemctl is-system-running)"
# Debian starts xenstored and xenconsoled from its init script (xen.service).
systemctl status --no-pager xen.service 2>&1 | sed 's/^/PGTEST: xen.service| /'
in_xen_service() { # NAME...: one of these processes runs in xen.service
        for p in $(pidof "$@"); do
                grep -q '/xen.service$' "/proc/$p/cgroup" 2>/dev/null && return 0
        done
        return 1
}
# Debian runs oxenstored, the OCaml xenstored, unless /etc/default/xen says otherwise.
if in_xen_service oxenstored xenstored && in_xen_service xenconsoled; then
        ok xen-from-debian
else
        fail xen-from-debian "xenstored or xenconsoled is not in xen.service"
fi
DEV=$(find_e1000)
say "e1000=$DEV driver=$(driver_of "$DEV")"

# ---- the README's install path, the lines after `meson install` ----
export EDITOR="cp /pgtest/systemd-policy.conf"
if (set -ex; . /pgtest/readme-install.sh) >/tmp/readme.log 2>&1; then
        ok readme-install
else
        fail readme-install "see the readme lines"
fi
sed 's/^/PGTEST: readme| /' /tmp/readme.log
say "xen-pciback: $(lsmod | grep -c '^xen_pciback') module(s) loaded; /sys/bus/pci/drivers/pciback: $(ls -d /sys/bus/pci/drivers/pciback 2>&1)"

# ---- socket activation, notify, watchdog ----
check socket-listening systemctl is-active -q passguardd.socket
if systemctl is-active -q passguardd.service; then fail not-started-yet "already running"; else ok not-started-yet; fi
passguard status >/tmp/status 2>&1
rc=$?
sed 's/^/PGTEST: status| /' /tmp/status
if [ $rc = 0 ] && grep -q 'backend: xen' /tmp/status; then ok socket-activation; else fail socket-activation "rc=$rc"; fi
systemctl show passguardd.service -p ActiveState -p SubState -p Type -p NotifyAccess -p WatchdogUSec \
        -p WatchdogTimestampMonotonic -p MainPID -p TriggeredBy -p NRestarts -p StatusText |
        sed 's/^/PGTEST: show| /'
journalctl --no-pager -o short-monotonic -u passguardd.socket -u passguardd.service | sed 's/^/PGTEST: socket| /'
check service-active test "$(show ActiveState)/$(show SubState)" = active/running
# Type=notify: systemd calls it active only once the daemon sent READY=1.
check service-notify-ready test "$(show Type)" = notify
if [ "$(show WatchdogUSec)" = 30s ] && [ "$(show WatchdogTimestampMonotonic)" != 0 ]; then
        ok watchdog-armed
else
        fail watchdog-armed "WatchdogUSec=$(show WatchdogUSec) WatchdogTimestampMonotonic=$(show WatchdogTimestampMonotonic)"
fi

# ---- prepare, assign, release, unprepare under the sandbox ----
for g in g-pv:enabled g-pv2:enabled g-noiommu:disabled; do
        pv_guest "${g%%:*}" "${g#*:}" || fail "guest-${g%%:*}" "$(cat /tmp/xl-create.log)"
done
D=$(domid_of g-pv)
if passguard prepare "$DEV" && [ "$(driver_of "$DEV")" = pciback ] && quarantined "$DEV"; then
        ok sandbox-prepare
else
        fail sandbox-prepare "driver $(driver_of "$DEV"), owner $(q_owner "$DEV")"
fi
passguard assign g-pv "$DEV" 2>&1 | sed 's/^/PGTEST: assign| /'
if pg_grant_of "$DEV" | grep -q g-pv; then ok sandbox-assign; else fail sandbox-assign "no grant"; fi
check sandbox-grant-xen test "$(q_owner "$DEV")" = "d$D"
journal_has journal-grant $GRANT_ID "PASSGUARD_DEVICE=$DEV" "PASSGUARD_DOMID=$D" PASSGUARD_DECISION=granted
journal_has journal-grant-fields $GRANT_ID "PASSGUARD_DOMAIN_NAME=g-pv" PASSGUARD_CLIENT_UID=0 \
        PASSGUARD_CLIENT_UNIT=pgtest.service PASSGUARD_RULE=root-all PASSGUARD_OP=assign \
        "PASSGUARD_DOMAIN_UUID=$(xl list -l g-pv | sed -n 's/.*"uuid": "\(.*\)".*/\1/p' | head -n 1)"
journalctl --no-pager -x MESSAGE_ID=$GRANT_ID | sed 's/^/PGTEST: journal-x| /'
if journalctl --no-pager -x MESSAGE_ID=$GRANT_ID | grep -q "Subject: passguard granted PCI device $DEV to domain $D"; then
        ok journal-catalog
else
        fail journal-catalog "journalctl -x shows no catalog entry"
fi
if passguard release g-pv "$DEV" && quarantined "$DEV" && ! pg_grant_of "$DEV" >/dev/null; then
        ok sandbox-release
else
        fail sandbox-release "owner $(q_owner "$DEV")"
fi
passguard assign g-noiommu "$DEV" 2>&1 | sed 's/^/PGTEST: refusal| /'
journal_has journal-refusal $REFUSE_ID PASSGUARD_ERROR=domain-no-iommu PASSGUARD_DECISION=refused \
        "PASSGUARD_DEVICE=$DEV"
# domain death: the daemon releases and says so
passguard assign g-pv "$DEV" >/dev/null
xl destroy g-pv
if wait_for 10 sh -c "journalctl --no-pager -o verbose MESSAGE_ID=$GONE_ID | grep -q 'PASSGUARD_DOMID=$D\$'"; then
        journal_has journal-domain-death $GONE_ID "PASSGUARD_DOMID=$D" "PASSGUARD_DEVICE=$DEV"
else
        fail journal-domain-death "no record"
fi
if passguard unprepare "$DEV" && [ "$(driver_of "$DEV")" = e1000 ] && [ "$(q_owner "$DEV")" = d0 ]; then
        ok sandbox-unprepare
else
        fail sandbox-unprepare "driver $(driver_of "$DEV"), owner $(q_owner "$DEV")"
fi
passguard prepare "$DEV" >/dev/null || fail prepare-again "-"

# ---- clients told apart by their unit ----
runner pg-runner explain g-pv2 "$DEV" >/tmp/runner 2>&1
rc=$?
sed 's/^/PGTEST: pg-runner| /' /tmp/runner
if [ $rc = 0 ] && grep -q 'decision: allow' /tmp/runner && grep -q 'runner-explains' /tmp/runner; then
        ok unit-client-allowed
else
        fail unit-client-allowed "rc=$rc"
fi
runner pg-runner-b explain g-pv2 "$DEV" >/tmp/runner-b 2>&1
rc=$?
sed 's/^/PGTEST: pg-runner-b| /' /tmp/runner-b
if [ $rc = 1 ] && grep -q 'error: denied' /tmp/runner-b; then ok unit-client-rule-refused; else fail unit-client-rule-refused "rc=$rc"; fi
runner pg-stranger status >/tmp/stranger 2>&1
rc=$?
sed 's/^/PGTEST: pg-stranger| /' /tmp/stranger
if [ $rc = 1 ] && grep -q 'not-authorized' /tmp/stranger &&
        journalctl --no-pager -o verbose MESSAGE_ID=$REFUSE_ID | grep -q 'PASSGUARD_CLIENT_UNIT=pg-stranger.service'; then
        ok unit-client-stranger
else
        fail unit-client-stranger "rc=$rc"
fi

# ---- systemctl reload with a bad policy: the old one stays, file:line in the journal ----
before=$(passguard status | grep -E '^(rules|policy loaded):')
cp /etc/passguard/policy.conf /tmp/good-policy.conf
sed 's/^admins = /admns = /' /tmp/good-policy.conf >/etc/passguard/policy.conf
line=$(grep -n '^admns' /etc/passguard/policy.conf | cut -d: -f1)
systemctl reload passguardd.service
check reload-bad-kept test "$(passguard status | grep -E '^(rules|policy loaded):')" = "$before"
if wait_for 10 sh -c "journalctl --no-pager -u passguardd.service | grep -q '/etc/passguard/policy.conf:$line:'"; then
        ok reload-bad-logged
else
        fail reload-bad-logged "no /etc/passguard/policy.conf:$line: in the journal"
fi
journalctl --no-pager -u passguardd.service | grep 'policy.conf:' | sed 's/^/PGTEST: journal[reload]| /'
journalctl --no-pager -o verbose MESSAGE_ID=$RELOAD_ID | grep -E 'PASSGUARD_(DECISION|ERROR)' | sed 's/^/PGTEST: journal[reload]| /'
cp /tmp/good-policy.conf /etc/passguard/policy.conf
systemctl reload passguardd.service

# ---- a serial matcher the sandboxed daemon cannot honour is said, with its line ----
# (no CAP_SYS_ADMIN: the kernel shows 64 bytes of config space, no serial number)
sed 's/^rules = (/rules = (\n  { name = "no-serial"; action = "deny"; devices = ( { serial = "00-1b-*"; } ); domains = ( { name = "nobody-*"; } ); },/' \
        /tmp/good-policy.conf >/etc/passguard/policy.conf
line=$(grep -n 'serial = ' /etc/passguard/policy.conf | cut -d: -f1)
systemctl reload passguardd.service
if wait_for 10 sh -c "journalctl --no-pager -u passguardd.service | grep -q 'policy.conf:$line: serial matchers need'"; then
        ok serial-unreadable-warned
else
        fail serial-unreadable-warned "no policy.conf:$line: serial warning in the journal"
fi
journalctl --no-pager -u passguardd.service | grep 'serial matchers' | sed 's/^/PGTEST: journal[serial]| /'
cp /tmp/good-policy.conf /etc/passguard/policy.conf
systemctl reload passguardd.service

# ---- kill -9: systemd restarts the service; the grant is kept; reconciliation runs ----
D2=$(domid_of g-pv2)
passguard assign g-pv2 "$DEV" >/dev/null || fail assign-g-pv2 "-"
pid0=$(show MainPID)
restarts0=$(show NRestarts)
systemctl kill -s KILL passguardd.service
if wait_for 30 sh -c "[ \"\$(systemctl show passguardd.service -p MainPID --value)\" != $pid0 ] &&
        [ \"\$(systemctl show passguardd.service -p MainPID --value)\" != 0 ] &&
        systemctl is-active -q passguardd.service"; then
        ok kill9-restarted
else
        fail kill9-restarted "MainPID $(show MainPID), $(show ActiveState)"
fi
say "kill -9: MainPID $pid0 -> $(show MainPID), NRestarts $restarts0 -> $(show NRestarts)"
if pg_grant_of "$DEV" | grep -q g-pv2 && [ "$(q_owner "$DEV")" = "d$D2" ]; then
        ok kill9-grant-kept
else
        fail kill9-grant-kept "$(passguard list 2>&1 | head -n 3)"
fi
if journalctl --no-pager -u passguardd.service _PID="$(show MainPID)" | grep -q 'reconciled: 1 grants kept'; then
        ok kill9-reconciled
else
        fail kill9-reconciled "no reconciliation line from the new process"
fi
journalctl --no-pager -u passguardd.service _PID="$(show MainPID)" | sed 's/^/PGTEST: journal[restart]| /'

# ---- stop: the grant persists; a domain dies meanwhile; start: reconciled ----
systemctl stop passguardd.service
if grep -q "\"$DEV\"" /var/lib/passguard/grants.json 2>/dev/null; then
        ok stop-grants-persist
else
        fail stop-grants-persist "$(ls -l /var/lib/passguard 2>&1)"
fi
xl destroy g-pv2
systemctl start passguardd.service
pid=$(show MainPID)
journalctl --no-pager -u passguardd.service _PID="$pid" | sed 's/^/PGTEST: journal[start]| /'
if journalctl --no-pager -u passguardd.service _PID="$pid" | grep -q 'reconciled: 0 grants kept, 1 released' &&
        ! pg_grant_of "$DEV" >/dev/null && quarantined "$DEV"; then
        ok start-reconciled
else
        fail start-reconciled "$(passguard list 2>&1 | head -n 3)"
fi

xl destroy g-noiommu
say "passguardd's journal:"
journalctl --no-pager -o short-monotonic -u passguardd.service | tail -n 40 | sed 's/^/PGTEST: pgd| /'
exit 0
