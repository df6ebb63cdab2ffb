#!/bin/sh
# Check the systemd units: `systemd-analyze verify` must report nothing, and
# the service's sandbox exposure (`systemd-analyze security`) must not exceed
# the threshold. Usage: test-units.sh SERVICE SOCKET PASSGUARDD THRESHOLD
set -eu

service=$1 socket=$2 daemon=$(realpath "$3") threshold=$4

if ! command -v systemd-analyze >/dev/null 2>&1; then
        echo "systemd-analyze not found: skipping"
        exit 77
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# Verify copies whose ExecStart is the daemon just built: verify insists
# that the binary exists.
sed "s|^ExecStart=.*|ExecStart=$daemon|" "$service" >"$dir/passguardd.service"
cp "$socket" "$dir/passguardd.socket"

status=0
out=$(cd "$dir" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no \
        passguardd.socket passguardd.service 2>&1) || status=$?
if [ "$status" -ne 0 ] || [ -n "$out" ]; then
        echo "systemd-analyze verify reported problems:"
        echo "$out"
        exit 1
fi
echo "verify: no problems"

out=$(systemd-analyze security --offline=yes --no-pager "$dir/passguardd.service" 2>&1) || true
score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -z "$score" ]; then
        echo "no exposure score in systemd-analyze security output:"
        echo "$out"
        exit 1
fi
echo "exposure: $score (threshold $threshold)"
if awk -v s="$score" -v t="$threshold" 'BEGIN { exit !(s > t) }'; then
        printf '%s\n' "$out" | grep -v '^  ✓' || true
        echo "exposure $score is above $threshold"
        exit 1
fi
