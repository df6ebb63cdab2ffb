# SPDX-License-Identifier: MIT
# Helpers of the dom0 scenario scripts (sourced). Every check prints
# "PGTEST ok NAME" or "PGTEST FAIL NAME: why"; run-boot.sh asserts them.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/xen-4.17/bin
export PATH

say() { echo "PGTEST: [$(cut -d' ' -f1 /proc/uptime)s] $*"; }
ok() { echo "PGTEST ok $1"; }
fail() { echo "PGTEST FAIL $1: $2"; }
# check NAME COMMAND...: ok when the command succeeds
check() {
        name=$1
        shift
        if "$@"; then ok "$name"; else fail "$name" "$*"; fi
}
driver_of() { basename "$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null)" 2>/dev/null; }
domid_of() { xl domid "$1" 2>/dev/null; }
# wait_for SECONDS COMMAND...: poll until the command succeeds (an event, never a delay)
wait_for() {
        n=$1
        shift
        i=0
        while [ $i -lt "$n" ]; do
                "$@" && return 0
                sleep 1
                i=$((i + 1))
        done
        return 1
}
# The daemon's CLI on $SOCK, and its log $PGD_LOG.TAG with a tag on each line.
pg() { passguard --socket $SOCK "$@"; }
pgd_log() { sed "s/^/PGD[$1]: /" "$PGD_LOG.$1"; }
# pg_expect NAME WANTED-EXIT PATTERN ARGS...: the CLI's exit status and output
# (--json); the output is left in $out.
pg_expect() {
        name=$1 want=$2 pat=$3
        shift 3
        out=$(pg --json "$@" 2>&1)
        rc=$?
        echo "$out" | sed "s/^/PGTEST: passguard $* -> /"
        if [ $rc -eq "$want" ] && echo "$out" | grep -q -- "$pat"; then
                ok "$name"
        else
                fail "$name" "exit $rc, wanted $want and /$pat/"
        fi
}
# The e1000 QEMU gives the machine (8086:100e).
find_e1000() {
        for d in /sys/bus/pci/devices/*; do
                [ "$(cat "$d/vendor")" = 0x8086 ] && [ "$(cat "$d/device")" = 0x100e ] && basename "$d"
        done | head -n 1
}

# The owner of $1 in a fresh 'Q' dump, as Xen prints it ("d0", "DomIO:8001", "d1").
# A guest's own console output (an HVM guest's "(d7) Loading ACPI ...") can
# break into the dump's line and take the owner's place: such a dump is taken again.
q_owner() {
        for _ in 1 2 3 4 5; do
                xl debug-keys Q
                o=$(xl dmesg | awk -v dev="$1" '/==== PCI devices ====/ { owner = "" }
                        $2 == dev && $3 == "-" { owner = $4 } END { print owner }')
                case "$o" in "(d"*) ;; *) break ;; esac
        done
        echo "$o"
}
quarantined() { case "$(q_owner "$1")" in DomIO*) return 0 ;; *) return 1 ;; esac; }

# The I/O memory, I/O port and interrupt rangesets Xen holds for domain $1, from a
# fresh 'q' dump: three lines, e.g. "I/O Memory { febc0-febdf }".
rangesets() {
        xl debug-keys q
        xl dmesg | awk -v d="$1" '
                /'"'"'q'"'"' pressed/ { mem = ""; ports = ""; irqs = ""; cur = 0 }
                $0 ~ ("Rangesets belonging to domain " d ":$") { cur = 1; next }
                cur && /Interrupts/ { sub(/.*Interrupts/, "Interrupts"); irqs = $0 }
                cur && /I\/O Memory/ { sub(/.*I\/O Memory/, "I/O Memory"); mem = $0 }
                cur && /I\/O Ports/ { sub(/.*I\/O Ports/, "I/O Ports"); ports = $0 }
                cur && /log-dirty|Memory pages/ { cur = 0 }
                END { print mem; print ports; print irqs }'
}
# Whether domain $1 holds no I/O memory, I/O port or interrupt at all (printing them).
holds_nothing() {
        r=$(rangesets "$1")
        echo "$r" | sed "s/^/PGTEST: rangesets d$1: /"
        [ "$(echo "$r" | grep -c '{ }$')" = 3 ]
}

# pv_guest NAME PASSTHROUGH: a paused PV domain (never run: it only has to exist),
# with or without an IOMMU context; xl's output in /tmp/xl-create.log
pv_guest() {
        cat >"/tmp/$1.cfg" <<EOF
name = "$1"
type = "pv"
kernel = "/pgtest/guest/vmlinuz"
ramdisk = "/pgtest/guest/guest.cpio.gz"
memory = 96
vcpus = 1
passthrough = "$2"
EOF
        xl create -p "/tmp/$1.cfg" >/tmp/xl-create.log 2>&1
}

# ---- the traced timeline (xc-trace.so in xl, QEMU and passguardd) ----
TRACE=${XC_TRACE_FILE:-/tmp/xc-trace.log}
export XC_TRACE_FILE=$TRACE
trace_reset() { : >"$TRACE"; }
# Where the first trace line matching the extended regex $1 stands: "LINE:TIME"
# (its line number and its time), or "". Order is judged by the line: every
# process appends each line as its call returns, and the clock of a dom0 under
# QEMU can give two calls in a row the same microsecond.
trace_t() { grep -n -E -m1 -- "$1" "$TRACE" | awk -F: '{ split($2, f, " "); print $1 ":" f[2] }'; }
trace_has() { grep -E -q -- "$1" "$TRACE"; }
# Whether trace line $1 is found and comes before trace line $2 (or $2 never came,
# when $3 = optional); both as trace_t gives them.
earlier() { awk -v a="${1%%:*}" -v b="${2%%:*}" -v opt="${3:-}" 'BEGIN { exit !(a != "" && (b == "" ? opt != "" : a + 0 < b + 0)) }'; }
# Print the timeline with a tag, BAR mapping churn left out after its first lines.
trace_print() {
        awk '/memory_mapping|ioport_mapping/ { if (++n > 2) next } { print }' "$TRACE" |
                sed "s/^/PGTEST: timeline[$1]| /"
}
