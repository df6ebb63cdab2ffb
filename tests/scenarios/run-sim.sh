#!/bin/sh
# SPDX-License-Identifier: MIT
# Run hv-calls.txt against the simulated host, on a copy of a host file that
# mirrors the QEMU machine of the system suite.
#   run-sim.sh PG_HVPROBE SCENARIO_DIR
set -eu
probe=$1 dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
cp "$dir/sim-host-iommu.json" "$tmp/iommu.json"
"$probe" --backend sim --sim-host "$tmp/iommu.json" run "$dir/hv-calls.txt" iommu \
        DEV=0000:00:01.0 OTHERDEV=0000:00:1f.2 NODEV=0000:00:1e.7 \
        DOM_IOMMU=1 DOM_OTHER=2 DOM_NOIOMMU=3 || fail=1
cp "$dir/sim-host-noiommu.json" "$tmp/noiommu.json"
"$probe" --backend sim --sim-host "$tmp/noiommu.json" run "$dir/hv-calls.txt" no-iommu \
        DEV=0000:00:01.0 OTHERDEV=0000:00:1f.2 NODEV=0000:00:1e.7 DOM_NOIOMMU=1 || fail=1
exit $fail
