#!/bin/sh
# SPDX-License-Identifier: MIT
# The dynamic symbols libpassguard exports are exactly the map's, all in
# node LIBPASSGUARD_1, and every function of passguard.h is among them.
# Usage: test-symbols.sh LIBRARY MAP HEADER
set -eu
lib=$1 map=$2 header=$3
command -v nm >/dev/null || { echo "nm not found"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

nm -D --defined-only "$lib" | awk '$2 == "T" || $2 == "D" || $2 == "B" || $2 == "R" { print $3 }' \
        | sort > "$tmp/exported"
sed -n '/^LIBPASSGUARD_1/,/^}/p' "$map" | grep -E '^[[:space:]]+pg_[a-z0-9_]+;' \
        | tr -d ' \t;' | sort > "$tmp/map"
grep -oE '\bpg_[a-z0-9_]+\(' "$header" | tr -d '(' | sort -u > "$tmp/header"

status=0
if [ ! -s "$tmp/map" ]; then
        echo "no symbols found in $map"; status=1
fi
sed 's/@@LIBPASSGUARD_1$//' "$tmp/exported" | sort > "$tmp/exported-names"
if grep -v '@@LIBPASSGUARD_1$' "$tmp/exported"; then
        echo "^ exported without the LIBPASSGUARD_1 version"; status=1
fi
if ! diff -u "$tmp/map" "$tmp/exported-names"; then
        echo "exported symbols differ from $map"; status=1
fi
if ! diff -u "$tmp/header" "$tmp/map"; then
        echo "functions of $header differ from $map"; status=1
fi
if grep -E '^pg_(wire|bdf|error_name|error_lookup|errno)' "$tmp/exported-names"; then
        echo "^ internal wire-format symbols leak out of libpassguard"; status=1
fi
[ $status = 0 ] && echo "$(wc -l < "$tmp/map") symbols, all LIBPASSGUARD_1"
exit $status
