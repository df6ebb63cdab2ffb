#!/bin/sh
# The libvirt drop-in must load cleanly into a libvirtd.service and a
# virtxend.service (`systemd-analyze verify` reports nothing, so every line of it
# is understood), and preload the interposer from where meson installs it.
# Usage: test-dropin.sh DROPIN INSTALLED-INTERPOSER-PATH
set -eu
dropin=$1 interposer=$2

if ! command -v systemd-analyze >/dev/null 2>&1; then
        echo "systemd-analyze not found: skipping"
        exit 77
fi
grep -qx "Environment=LD_PRELOAD=$interposer" "$dropin" ||
        { echo "the drop-in does not preload $interposer:"; cat "$dropin"; exit 1; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
printf '[Socket]\nListenStream=/run/passguard/passguard.sock\n' >"$dir/passguardd.socket"
for unit in libvirtd.service virtxend.service; do
        # A stand-in for libvirt's unit: only the drop-in is under test.
        printf '[Unit]\nDescription=stand-in for %s\n[Service]\nExecStart=/bin/true\n' "$unit" \
                >"$dir/$unit"
        mkdir -p "$dir/$unit.d"
        cp "$dropin" "$dir/$unit.d/passguard.conf"
        out=$(cd "$dir" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$unit" 2>&1) || {
                echo "$unit: systemd-analyze verify failed:"
                echo "$out"
                exit 1
        }
        if [ -n "$out" ]; then
                echo "$unit with the drop-in: systemd-analyze verify reported:"
                echo "$out"
                exit 1
        fi
        echo "$unit with the drop-in: verify reports nothing"
done
