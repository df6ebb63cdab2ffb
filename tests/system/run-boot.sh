#!/bin/bash
# SPDX-License-Identifier: MIT
# One system test: build the dom0 image with this build's binaries, boot real
# Xen 4.17 under QEMU in configuration $1, run the dom0 script there, and assert
# its PGTEST markers on the serial log:
#   amd | intel | noiommu   dom0-scenarios.sh: the backend and the daemon, PV
#   hvm | hvm-noiommu       hvm-scenarios.sh: xl through the libxl patch and the
#                           interposer, HVM and PV guests, with an IOMMU and without
#   anchors                 anchors-scenarios.sh: two e1000s; multi-device assign and
#                           its rollback, identity, unmanaged at domain events
#   systemd                 systemd-scenarios.sh: systemd as PID 1, passguard installed
#                           by the README's install path, the service under its sandbox
# Paths come from meson: PASSGUARDD PASSGUARD_CLI LIBPASSGUARD PG_HVPROBE XC_COUNT
# XC_TRACE PASSGUARD_XC PASSGUARD_XC_INSTALLED PASSGUARD_XL SOURCE_ROOT BUILD_ROOT
# SCENARIO_DIR SYSTEM_WORKDIR. What is slow to build (the dom0 image, the patched
# libxl) is cached under $PG_CACHE (default /var/cache/passguard), keyed by its
# inputs. Never skips: no image, no pass.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CONFIG=${1:?usage: run-boot.sh amd|intel|noiommu|anchors|hvm|hvm-noiommu|systemd}
WORK=${SYSTEM_WORKDIR:?}
CACHE=${PG_CACHE:-/var/cache/passguard}
IMG=$WORK/img-$CONFIG
LOG=$WORK/serial-$CONFIG.log
mkdir -p "$WORK"

if [ "$(id -u)" != 0 ]; then
        echo "the system suite needs root (debootstrap, chroot)" >&2
        exit 1
fi

files=(
        "$PASSGUARDD=/usr/local/sbin/passguardd"
        "$PASSGUARD_CLI=/usr/local/bin/passguard"
        "$LIBPASSGUARD=/usr/local/lib/$(basename "$LIBPASSGUARD")"
        "$PG_HVPROBE=/usr/local/bin/pg-hvprobe"
        "$XC_COUNT=/usr/local/lib/xc-count.so"
        "$HERE/files/pgtest-lib.sh=/pgtest/pgtest-lib.sh"
        "$HERE/dom0-scenarios.sh=/pgtest/dom0-scenarios.sh"
        "$SCENARIO_DIR/hv-calls.txt=/pgtest/hv-calls.txt"
)
script=dom0-scenarios.sh
case "$CONFIG" in
anchors)
        script=anchors-scenarios.sh
        files+=(
                "$HERE/anchors-scenarios.sh=/pgtest/anchors-scenarios.sh"
                "$XC_TRACE=/usr/local/lib/xc-trace.so"
        )
        ;;
hvm | hvm-noiommu)
        script=hvm-scenarios.sh
        t0=$(date +%s)
        libxl=$("$SOURCE_ROOT/integrations/libxl/build-debian-libxl.sh" "$CACHE/libxl" \
                "$SOURCE_ROOT" "$BUILD_ROOT" | tail -n 1)
        [ -f "$libxl" ] || { echo "FAIL: the patched libxl could not be built" >&2; exit 1; }
        echo "patched libxl ready in $(( $(date +%s) - t0 )) s: $libxl"
        files+=(
                "$HERE/hvm-scenarios.sh=/pgtest/hvm-scenarios.sh"
                "$XC_TRACE=/usr/local/lib/xc-trace.so"
                "$PASSGUARD_XC=$PASSGUARD_XC_INSTALLED"
                "$PASSGUARD_XL=/usr/local/sbin/passguard-xl"
                "$libxl=/usr/local/lib/pg-libxl/libxenlight.so.4.17"
        )
        ;;
systemd)
        # The README's install path. Its first four lines build on this machine (a
        # dom0 has no compiler) and `meson install` installs into the dom0's root;
        # the lines after it run in dom0, under systemd, from readme-install.sh. A
        # line this does not know fails the test: the README and the test move
        # together.
        script=systemd-scenarios.sh
        bld=$WORK/readme-build stage=$WORK/readme-root
        awk '/^## Install on a dom0/ {f = 1} f && /^```sh/ {b = 1; next} b && /^```/ {exit} b' \
                "$SOURCE_ROOT/README.md" >"$WORK/readme-block"
        host=1
        : >"$WORK/readme-install.sh"
        while IFS= read -r line; do
                [ -n "$line" ] || continue
                if [ $host = 0 ]; then
                        printf '%s\n' "$line" >>"$WORK/readme-install.sh"
                        continue
                fi
                echo "README (on the build machine): $line"
                case "$line" in
                "tools/install-deps.sh build") (cd "$SOURCE_ROOT" && tools/install-deps.sh build) ;;
                "meson setup build "*)
                        rm -rf "$bld"
                        # shellcheck disable=SC2086
                        meson setup "$bld" "$SOURCE_ROOT" ${line#meson setup build } >"$bld.log" 2>&1
                        ;;
                "ninja -C build") ninja -C "$bld" >>"$bld.log" 2>&1 ;;
                "meson install -C build")
                        rm -rf "$stage"
                        DESTDIR="$stage" meson install -C "$bld" >>"$bld.log" 2>&1
                        host=0
                        ;;
                *) echo "FAIL: the README's install line '$line' is unknown to the test" >&2; exit 1 ;;
                esac || { tail -30 "$bld.log"; echo "FAIL: README line failed: $line" >&2; exit 1; }
        done <"$WORK/readme-block"
        [ $host = 0 ] || { echo "FAIL: no 'meson install -C build' in the README's install path" >&2; exit 1; }
        sed 's/^/README (in dom0): /' "$WORK/readme-install.sh"
        files=(
                "$stage=/"
                "$WORK/readme-install.sh=/pgtest/readme-install.sh"
                "$HERE/files/pgtest-lib.sh=/pgtest/pgtest-lib.sh"
                "$HERE/systemd-scenarios.sh=/pgtest/systemd-scenarios.sh"
                "$HERE/files/systemd-policy.conf=/pgtest/systemd-policy.conf"
                "$HERE/files/pgtest.service=/etc/systemd/system/pgtest.service"
        )
        ;;
esac

t0=$(date +%s)
if ! "$HERE/build-image.sh" "$CACHE/system" "$IMG" "${files[@]}"; then
        echo "FAIL: the dom0 image could not be built" >&2
        exit 1
fi
echo "image built in $(( $(date +%s) - t0 )) s"

# HVM: QEMU's passthrough refuses a host device at 00:02.0 (IGD's slot), where
# the e1000 would land next to an IOMMU, and the guests need memory.
hvm=(MEM=3072 E1000_ADDR=0x5 TIMEOUT=2700)
case "$CONFIG" in
amd) env=(IOMMU=amd TIMEOUT=900) ;;
intel) env=(IOMMU=intel AW_BITS=48 TIMEOUT=900) ;;
noiommu) env=(IOMMU=none XEN_IOMMU=0 TIMEOUT=900) ;;
anchors) env=(IOMMU=amd TIMEOUT=900 E1000_ADDR=0x5 E1000_2_ADDR=0x6) ;;
hvm) env=(IOMMU=amd "${hvm[@]}") ;;
systemd) env=(IOMMU=amd TIMEOUT=900 "DOM0_EXTRA=rdinit=/lib/systemd/systemd systemd.wants=pgtest.service") ;;
hvm-noiommu) env=(IOMMU=none XEN_IOMMU=0 "${hvm[@]}") ;;
*) echo "unknown configuration $CONFIG" >&2; exit 2 ;;
esac
env "${env[@]}" IMG="$IMG" CONFIG="$CONFIG" LOG="$LOG" SCRIPT=$script "$HERE/boot.sh"
boot_rc=$?
grep '^BOOT-TIME' "$LOG"

fail=0
# A marker ends its line, unless an HVM guest's console output ("(d7) ...")
# went on on the same line of the shared serial console.
need() { # marker...
        for m in "$@"; do
                if grep -qE "PGTEST ok $m(\$|\(d[0-9]+\) )" "$LOG"; then
                        echo "  ok   $m"
                else
                        echo "  FAIL $m"
                        fail=1
                fi
        done
}
echo "== $CONFIG: results"
[ $boot_rc = 0 ] || { echo "  FAIL dom0 did not finish its script"; fail=1; }
if grep -q 'PGTEST FAIL' "$LOG"; then
        grep 'PGTEST FAIL' "$LOG" | sed 's/^/  /'
        fail=1
fi
case "$CONFIG" in
amd | intel | noiommu)
        need e1000-bound q-unprepared-d0 hv-owner-unprepared hv-calls daemon-start
        grep -q 'HVCALLS xen host=.* mismatches=0 PASS' "$LOG" || { echo "  FAIL hv-calls summary"; fail=1; }
        ;;
hvm | hvm-noiommu)
        need daemon-start patched-libxl-loaded
        ;;
anchors)
        need daemon-start prepare-dev prepare-dev2 both-quarantined \
                multi-second-fails multi-names-second multi-says-rolled-back multi-xen-order \
                multi-first-back-domio multi-second-domio multi-no-grant multi-explain-both rdm-fact-none \
                multi-both multi-both-xen multi-both-granted multi-busy-all multi-busy-xen \
                multi-release-1 multi-release-2 multi-released-domio \
                identity-refused identity-names-change identity-explain identity-no-assign-call \
                identity-xen-domio identity-group-refused identity-group-quarantined \
                identity-group-no-assign-call identity-startup-reported identity-restored \
                identity-restored-xen identity-release name-known name-renamed name-old-gone name-back \
                unmanaged-behind-back unmanaged-domain-event unmanaged-reported-kept \
                unmanaged-enforce-startup unmanaged-behind-back-2 unmanaged-assigned-again \
                unmanaged-enforce-domain-event unmanaged-enforce-domio
        ;;
systemd)
        need systemd-pid1 readme-install socket-listening not-started-yet socket-activation \
                service-active service-notify-ready watchdog-armed xen-from-debian \
                sandbox-prepare sandbox-assign sandbox-grant-xen sandbox-release sandbox-unprepare \
                journal-grant journal-grant-fields journal-catalog journal-refusal \
                journal-domain-death unit-client-allowed unit-client-rule-refused \
                unit-client-stranger reload-bad-kept reload-bad-logged serial-unreadable-warned kill9-restarted \
                kill9-grant-kept kill9-reconciled stop-grants-persist start-reconciled
        ;;
esac
# Each toolstack on the IOMMU host: px = the libxl patch, ix = the interposer.
toolstack_checks() { # tag
        need $1-prepare $1-create $1-grant-first $1-grant-xen $1-guest-drives $1-detach-released \
                $1-guest-saw-detach $1-reattach $1-second-guest-busy $1-second-guest-nothing-exposed \
                $1-still-first-guests $1-guest-poweroff $1-poweroff-released $1-race-loser-busy \
                $1-race-nothing-exposed $1-race-thief-owns $1-race-rangesets-empty $1-pv-attach \
                $1-pv-grant-first $1-pv-grant-xen $1-pv-detach
}
case "$CONFIG" in
amd)
        need hv-prepare prepare-pciback q-quarantined-domio hv-owner-quarantined test-assign-blind \
                pg-prepare pg-prepare-pciback pg-prepare-quarantined pg-explain-allow \
                pg-grant pg-grant-xen pg-grant-xc-count pg-grant-test-assign pg-busy pg-explain-busy pg-busy-xen \
                pg-release pg-release-quarantined pg-domain-no-iommu pg-domain-death \
                pg-death-quarantined pg-crash-kept pg-crash-kept-xen pg-crash-released pg-unmanaged \
                pg-unmanaged-quarantined
        need q-dump-one-read pg-perf-assign pg-one-dump-per-assign pg-dump-kept pg-perf-release \
                pg-perf-dumps pg-perf-timed pg-perf-floor-timed pg-perf-ops-timed
        ;;
intel)
        need hv-prepare prepare-pciback q-quarantined-domio hv-owner-quarantined \
                pg-prepare pg-grant pg-grant-xen pg-busy pg-release pg-release-quarantined
        ;;
noiommu)
        need noiommu-create-refused status-no-iommu refuse-no-iommu explain-no-iommu \
                refuse-no-iommu-2 xc-count-works no-assign-call owner-untouched
        ;;
hvm)
        toolstack_checks px
        toolstack_checks ix
        need px-undo-failed-add px-unprepare
        ;;
hvm-noiommu)
        need noiommu-pciback noiommu-status noiommu-no-assign-call stock-pv-leak-seen
        for t in px ix; do
                for k in hvm pv; do
                        need $t-noiommu-$k-refused $t-noiommu-$k-nothing-exposed $t-noiommu-$k-rangesets-empty
                done
        done
        ;;
esac

echo "== $CONFIG: evidence from the serial log"
case "$CONFIG" in
systemd)
        grep -E 'PGTEST: (journal|show|status|socket)|PGTEST ok (socket|service|sandbox-assign|journal-grant)' "$LOG" |
                head -120
        ;;
hvm | hvm-noiommu)
        grep -E 'PGTEST: .*(grant at|from xl create)|timeline\[.*(pg_assign|pg_release|QMP|INJECT|_permission|xc_assign_device)|rangesets d|serial\| GUEST: DHCP' "$LOG" |
                head -150
        ;;
*)
        grep -E 'xen-log|Q dump:|GRANT proof|DEATH:|passguard .*(assign|release|explain) .* -> .*("error"|"ok": true)|HVCALL' "$LOG" |
                grep -v 'checks' | head -80
        ;;
esac
echo "== $CONFIG: $([ $fail = 0 ] && echo PASS || echo FAIL) (serial log: $LOG)"
exit $fail
