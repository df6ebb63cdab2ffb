#!/bin/bash
# SPDX-License-Identifier: MIT
# One system test: build the dom0 image with this build's binaries, boot real
# Xen 4.17 under QEMU in configuration $1 (amd | intel | noiommu), run
# dom0-scenarios.sh there, and assert its PGTEST markers on the serial log.
# Paths come from meson: PASSGUARDD PASSGUARD_CLI LIBPASSGUARD PG_HVPROBE
# SCENARIO_DIR SYSTEM_WORKDIR. Never skips: no image, no pass.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CONFIG=${1:?usage: run-boot.sh amd|intel|noiommu}
WORK=${SYSTEM_WORKDIR:?}
IMG=$WORK/img-$CONFIG
LOG=$WORK/serial-$CONFIG.log
mkdir -p "$WORK"

if [ "$(id -u)" != 0 ]; then
        echo "the system suite needs root (debootstrap, chroot)" >&2
        exit 1
fi

t0=$(date +%s)
if ! "$HERE/build-image.sh" "$WORK/cache" "$IMG" \
        "$PASSGUARDD=/usr/local/sbin/passguardd" \
        "$PASSGUARD_CLI=/usr/local/bin/passguard" \
        "$LIBPASSGUARD=/usr/local/lib/$(basename "$LIBPASSGUARD")" \
        "$PG_HVPROBE=/usr/local/bin/pg-hvprobe" \
        "$XC_COUNT=/usr/local/lib/xc-count.so" \
        "$HERE/dom0-scenarios.sh=/pgtest/dom0-scenarios.sh" \
        "$SCENARIO_DIR/hv-calls.txt=/pgtest/hv-calls.txt"; then
        echo "FAIL: the dom0 image could not be built" >&2
        exit 1
fi
echo "image built in $(( $(date +%s) - t0 )) s"

case "$CONFIG" in
amd) env=(IOMMU=amd) ;;
intel) env=(IOMMU=intel AW_BITS=48) ;;
noiommu) env=(IOMMU=none XEN_IOMMU=0) ;;
*) echo "unknown configuration $CONFIG" >&2; exit 2 ;;
esac
env "${env[@]}" IMG="$IMG" CONFIG="$CONFIG" LOG="$LOG" TIMEOUT=900 "$HERE/boot.sh"
boot_rc=$?
grep '^BOOT-TIME' "$LOG"

fail=0
need() { # marker...
        for m in "$@"; do
                if grep -q "PGTEST ok $m\$" "$LOG"; then
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
need e1000-bound q-unprepared-d0 hv-owner-unprepared hv-calls daemon-start
grep -q 'HVCALLS xen host=.* mismatches=0 PASS' "$LOG" || { echo "  FAIL hv-calls summary"; fail=1; }
case "$CONFIG" in
amd)
        need hv-prepare prepare-pciback q-quarantined-domio hv-owner-quarantined test-assign-blind \
                pg-prepare pg-prepare-pciback pg-prepare-quarantined pg-explain-allow \
                pg-grant pg-grant-xen pg-grant-xc-count pg-grant-test-assign pg-busy pg-explain-busy pg-busy-xen \
                pg-release pg-release-quarantined pg-domain-no-iommu pg-domain-death \
                pg-death-quarantined pg-crash-kept pg-crash-kept-xen pg-crash-released pg-unmanaged \
                pg-unmanaged-quarantined
        need q-dump-one-read pg-perf-assign pg-one-dump-per-assign pg-dump-kept pg-perf-release \
                pg-perf-dumps pg-perf-timed
        ;;
intel)
        need hv-prepare prepare-pciback q-quarantined-domio hv-owner-quarantined \
                pg-prepare pg-grant pg-grant-xen pg-busy pg-release pg-release-quarantined
        ;;
noiommu)
        need noiommu-create-refused status-no-iommu refuse-no-iommu explain-no-iommu \
                refuse-no-iommu-2 xc-count-works no-assign-call owner-untouched
        ;;
esac

echo "== $CONFIG: evidence from the serial log"
grep -E 'xen-log|Q dump:|GRANT proof|DEATH:|passguard .*(assign|release|explain) .* -> .*("error"|"ok": true)|HVCALL' "$LOG" |
        grep -v 'checks' | head -80
echo "== $CONFIG: $([ $fail = 0 ] && echo PASS || echo FAIL) (serial log: $LOG)"
exit $fail
