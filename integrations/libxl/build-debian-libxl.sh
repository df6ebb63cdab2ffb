#!/bin/bash
# SPDX-License-Identifier: MIT
# Build libxenlight from Debian 12's xen source package with the passguard patch,
# against this tree's libpassguard, as a packager would, and cache the result.
#
#   build-debian-libxl.sh CACHE PASSGUARD_SRC PASSGUARD_BUILD
#
# Prints the path of the patched libxenlight.so.4.17.0 on its last line. The
# build is cached under CACHE (e.g. /var/cache/passguard/libxl), keyed by its
# inputs: the xen source version apt offers, the patch, this script, and
# libpassguard's header and symbol map. A second run with the same inputs only
# prints the path. Needs root (apt-get for the build dependencies) and Debian's
# deb-src for bookworm main, which it configures privately (the host's apt
# configuration is not touched).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 3 ] || { echo "usage: $0 CACHE PASSGUARD_SRC PASSGUARD_BUILD" >&2; exit 2; }
CACHE=$1 PGSRC=$(cd "$2" && pwd) PGBUILD=$(cd "$3" && pwd)
PATCH=$HERE/0001-libxl-ask-passguardd-for-PCI-devices.patch
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
t0=$(date +%s)
log() { echo "[build-libxl $(( $(date +%s) - t0 ))s] $*" >&2; }

exec 9>"$CACHE/.lock"
flock 9

# Debian's source package, through a private apt configuration.
APT=$CACHE/apt
mkdir -p "$APT/lists/partial" "$APT/sources"
mirror=$(grep -h -A3 '^Types: deb' /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk '/^URIs:/ {u = $2} /^Suites:/ {for (i = 2; i <= NF; i++) if ($i == "bookworm") print u}' |
        head -n 1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || { echo "no bookworm apt source found" >&2; exit 1; }
cat > "$APT/sources/src.sources" <<EOF
Types: deb-src
URIs: $mirror
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
aptopt=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$APT/sources"
        -o "Dir::State::Lists=$APT/lists" -o "APT::Sandbox::User=root")
src_version() { apt-cache "${aptopt[@]}" showsrc xen 2>/dev/null | awk '/^Version:/ {print $2; exit}' || :; }
version=$(src_version)
if [ -z "$version" ]; then
        apt-get "${aptopt[@]}" update -qq >&2
        version=$(src_version)
fi
[ -n "$version" ] || { echo "Debian's xen source package is not available" >&2; exit 1; }

key=$( { echo "$version"; cat "$PATCH" "$0" "$PGSRC/client/passguard.h" "$PGSRC/client/libpassguard.sym"; } |
        sha256sum | cut -c1-16)
OUT=$CACHE/$key
LIB=$OUT/libxenlight.so.4.17.0
if [ -f "$LIB" ]; then
        log "cached: xen $version, key $key"
        echo "$LIB"
        exit 0
fi

# Build dependencies of tools/libs (beyond a compiler and libxen-dev).
need=()
for p in dpkg-dev acpica-tools bison flex libyajl-dev libzstd-dev autoconf automake uuid-dev \
        zlib1g-dev libncurses-dev python3-dev pkg-config xz-utils; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
        log "installing build dependencies: ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

W=$CACHE/work
rm -rf "$W"
mkdir -p "$W"
log "xen $version: fetching the source"
(cd "$W" && apt-get "${aptopt[@]}" source --download-only -qq xen >&2)
dsc=$(ls "$W"/xen_*.dsc)
dpkg-source -x "$dsc" "$W/xen" >&2
cd "$W/xen"
log "applying $(basename "$PATCH")"
patch -p1 --no-backup-if-mismatch < "$PATCH" >&2
cp /usr/share/misc/config.guess /usr/share/misc/config.sub . 2>/dev/null ||
        cp /usr/share/automake-*/config.guess /usr/share/automake-*/config.sub .
log "configure"
./autogen.sh > "$W/autogen.log" 2>&1 || { tail -30 "$W/autogen.log" >&2; exit 1; }
# Debian's paths (debian/rules), so that the library finds hvmloader, QEMU and
# the rest where Debian's xen-utils put them.
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
./configure --prefix=/usr --includedir=/usr/include --libdir=/usr/lib/$multiarch \
        --with-libexec-libdir-suffix=/$multiarch --sysconfdir=/etc --localstatedir=/var \
        --with-libexec-leaf-dir=xen-4.17 \
        --disable-xen --disable-docs --disable-stubdom --disable-monitors \
        --disable-ocamltools --disable-xsmpolicy --disable-seabios --disable-golang \
        --disable-pvshim --disable-rombios --disable-qemu-traditional \
        --with-system-qemu=/usr/libexec/xen-qemu-system-i386 \
        --enable-ovmf --with-system-ovmf=/usr/share/ovmf/OVMF.fd \
        --with-system-seabios=/usr/share/seabios/bios-256k.bin > "$W/configure.log" 2>&1 ||
        { tail -30 "$W/configure.log" >&2; exit 1; }
log "make tools/include tools/libs"
# libxenlight's test programs link it too: let ld find libpassguard.so.1 there.
pgflags=(PASSGUARD_CFLAGS="-I$PGSRC/client" PASSGUARD_LIBS="-L$PGBUILD/client -lpassguard"
        APPEND_LDFLAGS="-Wl,-rpath-link,$PGBUILD/client")
{ make -C tools/include && make -j"$(nproc)" -C tools/libs "${pgflags[@]}"; } > "$W/make.log" 2>&1 ||
        { tail -40 "$W/make.log" >&2; exit 1; }
built=tools/libs/light/libxenlight.so.4.17.0
# The patched library asks passguardd and makes no assign call of its own.
objdump -p "$built" | grep -q 'NEEDED.*libpassguard.so.1' ||
        { echo "the built libxenlight does not link libpassguard" >&2; exit 1; }
if objdump -T "$built" | grep -E -q ' (xc_assign_device|xc_deassign_device|xc_test_assign_device)$'; then
        echo "the built libxenlight still calls libxenctrl's assign functions" >&2
        exit 1
fi
mkdir -p "$OUT.tmp"
cp "$built" "$OUT.tmp/"
echo "$version" > "$OUT.tmp/xen-version"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
cd /
rm -rf "$W"
# Builds for other inputs are stale now.
for d in "$CACHE"/*/; do
        d=${d%/}
        [ -f "$d/libxenlight.so.4.17.0" ] && [ "$d" != "$OUT" ] && rm -rf "$d"
done
log "built: xen $version + passguard, key $key"
echo "$LIB"
