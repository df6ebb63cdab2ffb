#!/bin/sh
# The journald catalog explains every MESSAGE_ID passguardd's audit records use,
# and journalctl accepts it: --update-catalog builds a database holding each;
# passguardd(8) lists each too.
# Usage: test-catalog.sh CATALOG AUDIT_C MANPAGE_SCD
set -eu
catalog=$1 audit=$2 manpage=$3

if ! command -v journalctl >/dev/null 2>&1; then
        echo "journalctl not found: skipping"
        exit 77
fi
ids=$(grep -o '"[0-9a-f]\{32\}"' "$audit" | tr -d '"')
[ -n "$ids" ] || { echo "no MESSAGE_ID found in $audit"; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/lib/systemd/catalog"
cp "$catalog" "$root/usr/lib/systemd/catalog/passguard.catalog"
journalctl --root="$root" --update-catalog
listed=$(journalctl --root="$root" --list-catalog)
fail=0
for id in $ids; do
        if printf '%s\n' "$listed" | grep -q "^$id passguard: "; then
                echo "ok   $id $(printf '%s\n' "$listed" | grep "^$id" | cut -d' ' -f2-)"
        else
                echo "FAIL $id has no catalog entry"
                fail=1
        fi
done
for id in $ids; do
        grep -q "$id" "$manpage" || { echo "FAIL $id is not in $manpage"; fail=1; }
done
n=$(printf '%s\n' "$listed" | grep -c ' passguard: ' || :)
[ "$n" -eq "$(echo "$ids" | wc -l)" ] || { echo "FAIL the catalog has $n entries for $(echo "$ids" | wc -l) MESSAGE_IDs"; fail=1; }
exit $fail
