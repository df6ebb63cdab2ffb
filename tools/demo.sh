#!/bin/bash
# A short walk through passguard on a simulated host, for a fresh Debian 12
# machine, as root: build, start passguardd on tools/demo-host.json with the
# policy policy/examples/demo.conf, then ask for devices through the CLI:
# a grant, refusals for four different reasons, `explain`, `list`, a release.
# Nothing outside a temporary directory is touched; the daemon stops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

tools/install-deps.sh build
B=${BUILD_DIR:-build-demo}
[ -d "$B" ] || meson setup "$B" -Dtests=false >/dev/null
ninja -C "$B" >/dev/null

work=$(mktemp -d /tmp/passguard-demo.XXXXXX)
cp tools/demo-host.json "$work/host.json"
cp policy/examples/demo.conf "$work/policy.conf"
mkdir -p "$work/state"
sock=$work/passguard.sock

"$B/daemon/passguardd" --backend sim --sim-host "$work/host.json" --policy "$work/policy.conf" \
  --state-dir "$work/state" --socket "$sock" --debug 2>"$work/passguardd.log" &
daemon=$!
cleanup() { kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { cat "$work/passguardd.log"; echo "passguardd did not start"; exit 1; }

pg() {
  printf '\n$ passguard %s\n' "$*"
  set +e
  "$B/client/cli/passguard" --socket "$sock" "$@"
  local rc=$?
  set -e
  echo "(exit status $rc)"
}

echo "passguardd is running on a simulated host ($work/host.json)."
pg status
pg list
echo; echo "# Grant: an NVIDIA GPU to an HVM render domain (rule gpus-to-render)."
pg assign render-1 0000:03:00.0
echo; echo "# Refused, busy: the same GPU to a second domain."
pg assign render-2 0000:03:00.0
echo; echo "# Refused, denied: no rule gives a GPU to web-1."
pg assign web-1 0000:05:00.0
echo; echo "# Refused, protected-device: the SATA controller is never assignable."
pg assign render-1 0000:00:1f.2
echo; echo "# Prepare the NIC (unbind igb, bind pciback, quarantine), then try a domain"
echo "# that was created without an IOMMU context: refused, domain-no-iommu."
pg prepare 0000:04:00.0
pg assign net-1 0000:04:00.0
echo; echo "# explain runs the same checks as assign and changes nothing."
pg explain web-1 0000:05:00.0
pg list
pg release render-1 0000:03:00.0
pg owner 0000:03:00.0
echo; echo "# One audit record per decision (sent to journald; --debug also prints them):"
grep 'audit:' "$work/passguardd.log" | sed 's/^/  /'
