#!/bin/bash
# SPDX-License-Identifier: MIT
# Build the boot image for the system suite: real Xen 4.17 and a Debian 12 PV dom0
# that carries this build's passguard binaries.
#
#   build-image.sh CACHE OUT FILE...
#
# CACHE (outside the clone, e.g. /var/cache/passguard/system) keeps what is slow
# to make and never changes with the source tree: the downloaded Xen hypervisor and
# Debian kernel, the debootstrap rootfs with Xen's toolstack and device model, and a
# packed base initramfs, each rebuilt when its inputs (the package list, the kernel)
# change. OUT receives xen, vmlinuz and dom0.cpio.gz; the last is the cached base
# archive followed by a small archive holding the FILEs (this build's binaries, the
# scenario scripts and their data) and the guests' initramfs images. The kernel
# unpacks concatenated cpio archives in order, so a second run only packs the small
# one.
#
# Each FILE is SRC or SRC=DEST (DEST absolute, inside dom0); a SRC directory is
# copied whole into DEST (an installed tree: DESTDIR=SRC meson install). Needs root
# and the host's apt sources (bookworm and bookworm-security).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: $0 CACHE OUT FILE..." >&2; exit 2; }
CACHE=$1 OUT=$2
shift 2
mkdir -p "$CACHE" "$OUT"
CACHE=$(cd "$CACHE" && pwd)
OUT=$(cd "$OUT" && pwd)
t0=$(date +%s)
log() { echo "[build-image $(( $(date +%s) - t0 ))s] $*"; }

# One build at a time per cache.
exec 9>"$CACHE/.lock"
flock 9

apt_uri() { # $1 = suite
        {
                grep -h -A3 '^Types: deb' /etc/apt/sources.list.d/*.sources 2>/dev/null |
                        awk -v s="$1" '/^URIs:/{u=$2} /^Suites:/{for(i=2;i<=NF;i++) if($i==s) print u}' || :
                grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | awk -v s="$1" '$3==s{print $2}' || :
        } | head -n 1
}
MIRROR=${MIRROR:-$(apt_uri bookworm)}
SECMIRROR=${SECMIRROR:-$(apt_uri bookworm-security)}
[ -n "$MIRROR" ] || { echo "no bookworm apt source found; set MIRROR=" >&2; exit 1; }
[ -n "$SECMIRROR" ] || SECMIRROR=$MIRROR-security

# Host tools (qemu is needed by boot.sh).
need=()
for p in qemu-system-x86 debootstrap cpio bc; do
        dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
        log "installing host packages: ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# 1. Xen hypervisor and the Debian kernel, extracted, not installed; fetched again
#    when the host's apt lists offer other versions.
cd "$CACHE"
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }
[ -n "$(candidate xen-hypervisor-4.17-amd64)" ] || apt-get update -qq
KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
BOOT_KEY="xen-hypervisor-4.17-amd64=$(candidate xen-hypervisor-4.17-amd64) $KPKG=$(candidate "$KPKG")"
if [ ! -f xen ] || [ ! -f vmlinuz ] || [ "$(cat boot.ok 2>/dev/null)" != "$BOOT_KEY" ]; then
        log "downloading $BOOT_KEY"
        rm -rf debs extract
        mkdir -p debs extract
        (cd debs && apt-get download xen-hypervisor-4.17-amd64 "$KPKG")
        for d in debs/*.deb; do dpkg -x "$d" extract; done
        # QEMU's multiboot loader wants the uncompressed ELF.
        zcat extract/boot/xen-4.17-amd64.gz > xen.tmp && mv xen.tmp xen
        cp extract/boot/vmlinuz-* vmlinuz
        echo "$BOOT_KEY" > boot.ok
fi
KVER=$(ls extract/lib/modules | head -1)

# 2. Debian minbase with the Xen toolstack and passguard's runtime libraries.
# qemu-system-xen is the device model of HVM guests; hvmloader comes with xen-utils.
# systemd is PID 1 of the systemd boot (the other boots run /init, a shell script),
# with D-Bus (systemd-run --wait) and procps (kill, the unit's ExecReload).
PACKAGES="xen-utils-4.17 xenstore-utils kmod pciutils busybox-static iproute2 libconfig9 libjansson4 libsystemd0 qemu-system-xen systemd systemd-sysv dbus procps"
R=$CACHE/rootfs
ROOTFS_KEY="$PACKAGES xen-utils-4.17=$(candidate xen-utils-4.17)"
if [ "$(cat "$R/.pg-packages" 2>/dev/null)" != "$ROOTFS_KEY" ]; then
        rm -f base.cpio.gz
        if [ ! -d "$R/usr" ]; then
                log "debootstrap"
                rm -rf "$R"
                debootstrap --variant=minbase bookworm "$R.tmp" "$MIRROR"
                mv "$R.tmp" "$R"
        fi
        cat > "$R/etc/apt/sources.list" <<EOS
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECMIRROR bookworm-security main
EOS
        printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"
        chmod +x "$R/usr/sbin/policy-rc.d"
        log "installing into rootfs: $PACKAGES"
        chroot "$R" apt-get update -qq
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive chroot "$R" apt-get install -y -qq --no-install-recommends $PACKAGES
        DEBIAN_FRONTEND=noninteractive chroot "$R" apt-get upgrade -y -qq
        chroot "$R" apt-get clean
        echo "$ROOTFS_KEY" > "$R/.pg-packages"
fi

# 3. The base archive: a trimmed copy of the rootfs, the kernel modules dom0 and the
#    guest need, and a busybox PV guest.
# BASE_RECIPE: bump it when what goes into the base archive changes.
BASE_RECIPE=2
BASE_KEY="$BASE_RECIPE $KVER $ROOTFS_KEY"
if [ ! -f base.cpio.gz ] || [ "$(cat base.ok 2>/dev/null)" != "$BASE_KEY" ]; then
        S=$CACHE/stage
        rm -rf "$S"
        mkdir -p "$S"
        log "staging base"
        tar -C "$R" -c \
                --exclude=./usr/share/doc --exclude=./usr/share/man --exclude=./usr/share/info \
                --exclude=./usr/share/locale --exclude=./usr/share/i18n --exclude=./usr/share/zoneinfo \
                --exclude=./var/lib/apt/lists --exclude=./var/cache/apt --exclude=./var/cache/debconf \
                --exclude='./usr/lib/python3*' --exclude='./usr/bin/python3*' --exclude=./usr/share/python3 \
                --exclude=./usr/share/bash-completion \
                --exclude=./usr/lib/x86_64-linux-gnu/gconv --exclude=./usr/share/common-licenses \
                --exclude=./usr/lib/udev/hwdb.bin --exclude=./usr/lib/udev/hwdb.d \
                --exclude='./usr/bin/perl*' --exclude=./usr/lib/x86_64-linux-gnu/perl-base \
                --exclude=./usr/share/perl5 --exclude='./proc/*' --exclude='./sys/*' \
                --exclude='./dev/*' --exclude='./run/*' --exclude='./tmp/*' --exclude=./.pg-packages \
                . | tar -C "$S" -x
        M=lib/modules/$KVER
        mkdir -p "$S/$M/kernel"
        cp extract/$M/modules.builtin extract/$M/modules.builtin.modinfo extract/$M/modules.order "$S/$M/"
        (cd extract/$M && find kernel/drivers/xen kernel/drivers/pci/xen-pcifront.ko \
                kernel/drivers/net/ethernet/intel/e1000/e1000.ko -name '*.ko' | cpio -pdm --quiet "$S/$M")
        chroot "$S" depmod "$KVER"
        # The guests: the same kernel, busybox and the two drivers they load.
        G=$CACHE/guest-root
        rm -rf "$G"
        mkdir -p "$G/bin" "$G/lib"
        cp "$R/bin/busybox" "$G/bin/busybox"
        cp "extract/$M/kernel/drivers/pci/xen-pcifront.ko" \
                "extract/$M/kernel/drivers/net/ethernet/intel/e1000/e1000.ko" "$G/lib/"
        mkdir -p "$S/pgtest/guest"
        cp vmlinuz "$S/pgtest/guest/vmlinuz"
        log "packing base archive"
        (cd "$S" && find . | cpio -o -H newc --quiet | gzip -6) > base.cpio.gz.tmp
        mv base.cpio.gz.tmp base.cpio.gz
        echo "$BASE_KEY" > base.ok
        rm -rf "$S"
fi

# 4. This build's files, in their own archive after the base one.
O=$OUT/overlay
rm -rf "$O"
mkdir -p "$O"
for spec in "$@"; do
        src=${spec%%=*}
        dest=${spec#*=}
        [ "$dest" != "$spec" ] || dest=/pgtest/$(basename "$src")
        if [ -d "$src" ]; then
                # Merged /usr: where the rootfs has /lib -> usr/lib (and bin, sbin),
                # what the tree puts in lib/ goes to usr/lib/, as on the real system.
                for e in "$src"/* "$src"/.[!.]*; do
                        [ -e "$e" ] || continue
                        to=$dest/${e##*/}
                        [ "$dest" = / ] && to=/${e##*/}
                        if [ -L "$R$to" ]; then
                                to=$(dirname "$to")/$(readlink "$R$to")
                        fi
                        if [ -d "$e" ]; then
                                mkdir -p "$O$to"
                                cp -a "$e/." "$O$to/"
                        else
                                mkdir -p "$O$(dirname "$to")"
                                cp -a "$e" "$O$to"
                        fi
                done
                continue
        fi
        [ -f "$src" ] || { echo "missing file: $src" >&2; exit 1; }
        mkdir -p "$O$(dirname "$dest")"
        cp -L "$src" "$O$dest"
        case "$dest" in */bin/* | */sbin/*) chmod 0755 "$O$dest" ;; esac
done
cp "$HERE/files/dom0-init" "$O/init"
chmod +x "$O/init"
# The guests' initramfs images: the cached skeleton and this tree's /init.
mkdir -p "$O/pgtest/guest"
for g in guest:guest-init guest-hvm:guest-hvm-init; do
        GR=$OUT/${g%%:*}-root
        rm -rf "$GR"
        cp -a "$CACHE/guest-root" "$GR"
        install -m 0755 "$HERE/files/${g#*:}" "$GR/init"
        (cd "$GR" && find . | cpio -o -H newc --quiet | gzip -6) > "$O/pgtest/guest/${g%%:*}.cpio.gz"
        rm -rf "$GR"
done
(cd "$O" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT/overlay.cpio.gz"
cat "$CACHE/base.cpio.gz" "$OUT/overlay.cpio.gz" > "$OUT/dom0.cpio.gz.tmp"
mv "$OUT/dom0.cpio.gz.tmp" "$OUT/dom0.cpio.gz"
ln -sf "$CACHE/xen" "$OUT/xen"
ln -sf "$CACHE/vmlinuz" "$OUT/vmlinuz"
log "image ready: $(du -h "$OUT/dom0.cpio.gz" | cut -f1)"
