#!/bin/sh
# SPDX-License-Identifier: MIT
# The dynamic symbols libpassguard exports are exactly the map's, each with
# the version of the node that lists it (LIBPASSGUARD_1, LIBPASSGUARD_2, ...),
# and every function of passguard.h is among them.
# Usage: test-symbols.sh LIBRARY MAP HEADER
set -eu
lib=$1 map=$2 header=$3
command -v nm >/dev/null || { echo "nm not found"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

nm -D --defined-only "$lib" | awk '$2 == "T" || $2 == "D" || $2 == "B" || $2 == "R" { print $3 }' \
        | sort > "$tmp/exported"
# "name@@NODE" for every global of every node of the map
awk '/^LIBPASSGUARD_[0-9]+ *\{/ { node = $1 }
     /^}/ { node = "" }
     node != "" && /^[[:space:]]+pg_[a-z0-9_]+;/ { gsub(/[[:space:];]/, ""); print $0 "@@" node }' \
        "$map" | sort > "$tmp/map"
sed 's/@@.*//' "$tmp/map" | sort > "$tmp/map-names"
grep -oE '\bpg_[a-z0-9_]+\(' "$header" | tr -d '(' | sort -u > "$tmp/header"

status=0
if [ ! -s "$tmp/map" ]; then
        echo "no symbols found in $map"; status=1
fi
if grep -v '@@LIBPASSGUARD_[0-9]*$' "$tmp/exported"; then
        echo "^ exported without a LIBPASSGUARD_N version"; status=1
fi
if ! diff -u "$tmp/map" "$tmp/exported"; then
        echo "exported symbols and their versions differ from $map"; status=1
fi
if ! diff -u "$tmp/header" "$tmp/map-names"; then
        echo "functions of $header differ from $map"; status=1
fi
if grep -E '^pg_(wire|bdf|error_name|error_lookup|errno)' "$tmp/map-names" "$tmp/exported"; then
        echo "^ internal wire-format symbols leak out of libpassguard"; status=1
fi
[ $status = 0 ] && echo "$(wc -l < "$tmp/map") symbols: $(sed 's/.*@@//' "$tmp/map" | sort | uniq -c | tr -s ' ' | tr '\n' ' ')"
exit $status
