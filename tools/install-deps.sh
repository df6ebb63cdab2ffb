#!/bin/bash
# Install what passguard needs on Debian 12, as root.
#   tools/install-deps.sh build   the build (daemon, library, CLI, man pages)
#   tools/install-deps.sh test    the build plus everything the whole test suite uses
set -euo pipefail

build_pkgs=(
  meson ninja-build gcc pkg-config
  libconfig-dev libjansson-dev libsystemd-dev libxen-dev
  scdoc
  python3                                  # the passguard Python package (bindings/python)
)
test_pkgs=(
  clang libclang-rt-14-dev g++ binutils   # clang build, libFuzzer, C++ header test, nm
  systemd util-linux                       # systemd-analyze; setpriv (run a client as another uid)
  qemu-system-x86 debootstrap cpio zstd gzip time bc kmod   # real Xen under QEMU (tests/system)
  # libxl from Debian's xen source with the passguard patch (integrations/libxl)
  dpkg-dev patch xz-utils acpica-tools bison flex autoconf automake pkg-config
  libyajl-dev libzstd-dev uuid-dev zlib1g-dev libncurses-dev python3-dev
  mypy                                     # type-checks the Python package (bindings/python)
)

case "${1:-build}" in
  build) pkgs=("${build_pkgs[@]}") ;;
  test) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
