#!/bin/bash
# SPDX-License-Identifier: MIT
# Boot Xen 4.17 and the dom0 built by build-image.sh under QEMU (TCG) and run one
# dom0 script. Every serial line is printed with the host-side elapsed time and
# saved to LOG. Exit 0 when dom0 reached the end of its script, 1 otherwise.
#
#   IMG=DIR     xen, vmlinuz, dom0.cpio.gz (from build-image.sh)
#   IOMMU=amd|intel|none   emulated IOMMU      XEN_IOMMU=1|0   Xen's iommu= option
#   SCRIPT=dom0-scenarios.sh   CONFIG=name (passed to the script)   LOG=FILE
#   CPU MEM DOM0_MEM AW_BITS TIMEOUT XEN_EXTRA
#   E1000_ADDR=0x5   the e1000's slot (default: QEMU's choice)
#   E1000_2_ADDR=0x6 a second e1000 at that slot (default: none)
#   DOM0_EXTRA="..." more dom0 kernel arguments (the systemd boot: rdinit=...)
set -uo pipefail
IMG=${IMG:?IMG= not set}
IOMMU=${IOMMU:-amd}
XEN_IOMMU=${XEN_IOMMU:-1}
CPU=${CPU:-qemu64,+svm,+npt}
MEM=${MEM:-2048}
DOM0_MEM=${DOM0_MEM:-1024M}
DOM0_EXTRA=${DOM0_EXTRA:-}
TIMEOUT=${TIMEOUT:-600}
SCRIPT=${SCRIPT:-dom0-scenarios.sh}
CONFIG=${CONFIG:-$IOMMU}
LOG=${LOG:-boot-$CONFIG.log}
XEN_EXTRA=${XEN_EXTRA:-}

case "$IOMMU" in
intel) IOMMU_DEV=(-device "intel-iommu,intremap=on,caching-mode=on,aw-bits=${AW_BITS:-48}") ;;
amd) IOMMU_DEV=(-device "amd-iommu,intremap=on") ;;
none) IOMMU_DEV=() ;;
*) echo "bad IOMMU=$IOMMU" >&2; exit 2 ;;
esac

# conring_size: the whole boot log stays in Xen's console ring, where the backend
# looks for the interrupt-remapping line.
QEMU=(qemu-system-x86_64 -nodefaults -machine q35,kernel-irqchip=split -accel tcg
        -cpu "$CPU" -smp 2 -m "$MEM" "${IOMMU_DEV[@]}"
        -kernel "$IMG/xen"
        -append "console=com1 com1=115200,8n1 dom0_mem=$DOM0_MEM,max:$DOM0_MEM iommu=$XEN_IOMMU loglvl=all guest_loglvl=all conring_size=1M $XEN_EXTRA"
        -initrd "$IMG/vmlinuz console=hvc0 earlyprintk=xen loglevel=6 pgtest.script=$SCRIPT pgtest.config=$CONFIG $DOM0_EXTRA,$IMG/dom0.cpio.gz"
        -device "e1000,netdev=n1,romfile=${E1000_ADDR:+,addr=$E1000_ADDR}" -netdev user,id=n1
        ${E1000_2_ADDR:+-device e1000,netdev=n2,romfile=,addr=$E1000_2_ADDR -netdev user,id=n2}
        -display none -serial stdio -monitor none -no-reboot)

echo "+ ${QEMU[*]}" > "$LOG"
start=$EPOCHREALTIME
timeout "$TIMEOUT" "${QEMU[@]}" </dev/null 2>&1 |
        while IFS= read -r line; do
                line=${line//$'\r'/}
                printf '[%7.2f] %s\n' "$(echo "$EPOCHREALTIME - $start" | bc)" "$line"
        done >> "$LOG"
rc=${PIPESTATUS[0]}
end=$EPOCHREALTIME
echo "BOOT-TIME config=$CONFIG qemu_rc=$rc wall=$(echo "$end - $start" | bc)s" | tee -a "$LOG"
grep -q 'PGTEST: script-end' "$LOG"
