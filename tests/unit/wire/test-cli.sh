#!/bin/sh
# SPDX-License-Identifier: MIT
# The passguard CLI as a user runs it: exit codes, offline policy verbs,
# usage errors, an unreachable daemon, and `policy edit` driven by a scripted
# EDITOR. Usage: test-cli.sh PASSGUARD DATA_DIR
set -u
pg=$1 data=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0 checks=0
export PASSGUARD_SOCKET="$tmp/no-daemon.sock"

fail() { failures=$((failures + 1)); echo "FAIL: $*"; }

# expect STATUS CMD...: run CMD, keep stdout/stderr in $tmp/out, $tmp/err.
expect() {
        want=$1; shift
        checks=$((checks + 1))
        "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
        got=$?
        [ "$got" = "$want" ] || { fail "'$*' exited $got, expected $want"; sed 's/^/  err: /' "$tmp/err"; }
}
# contains out|err TEXT
contains() {
        checks=$((checks + 1))
        grep -qF -- "$2" "$tmp/$1" || { fail "std$1 lacks '$2'"; sed "s/^/  $1: /" "$tmp/$1"; }
}

# ---- help, version, usage ----
expect 0 "$pg" --help
contains out "Usage: passguard [--json] [--socket PATH] VERB"
for v in status list assign release explain owner prepare unprepare reload "policy check" \
         "policy explain" "policy edit" "policy generate"; do
        contains out "  $v"
done
expect 0 "$pg" --version
contains out "passguard "
expect 0 "$pg" assign --help
contains out "Usage: passguard [--json] [--socket PATH] assign [--rdm-relaxed] DOMAIN BDF"

expect 2 "$pg"
contains err "no verb"
expect 2 "$pg" frobnicate
contains err "unknown verb 'frobnicate'"
expect 2 "$pg" --bogus status
expect 2 "$pg" assign render-1
contains err "Usage: passguard [--json] [--socket PATH] assign"
expect 2 "$pg" assign render-1 0000:03:00.0 extra
expect 2 "$pg" assign render-1 not-a-bdf
contains err "not a PCI address"
expect 2 "$pg" owner 0000:03:20.0
expect 2 "$pg" status extra
expect 2 "$pg" release 99999999999 03:00.0
expect 2 "$pg" policy
expect 2 "$pg" policy frob
expect 2 "$pg" policy check a b
expect 2 "$pg" --socket

# ---- daemon unreachable: exit 3 with a message naming the socket ----
expect 3 "$pg" status
contains err "$tmp/no-daemon.sock"
expect 3 "$pg" --socket "$tmp/other.sock" list
contains err "$tmp/other.sock"
expect 3 "$pg" --json assign render-1 03:00.0
expect 3 "$pg" explain 5 0000:03:00.0
expect 3 "$pg" reload
: > "$tmp/not-a-socket"
expect 3 "$pg" --socket "$tmp/not-a-socket" owner 03:00.0

# ---- policy check ----
expect 0 "$pg" policy check "$data/good.conf"
contains out "$data/good.conf: OK (1 rules)"
expect 1 "$pg" policy check "$data/bad.conf"
contains err "$data/bad.conf:3:"
contains err "$data/bad.conf:9:"
expect 1 "$pg" policy check "$tmp/missing.conf"
contains err "$tmp/missing.conf"

# ---- policy explain ----
explain_args="--uid 0 --device 0000:03:00.0 --vendor 0x10de --class 0x030000 --type hvm"
expect 0 "$pg" policy explain $explain_args --domain render-1 "$data/good.conf"
contains out "decision: allow"
contains out "rule: nvidia-to-render"
contains out "max_devices_per_domain: 2"
contains out "reset: if-available"
expect 1 "$pg" policy explain $explain_args --domain office "$data/good.conf"
contains out "decision: deny"
contains out "rule: default"
contains out "nvidia-to-render:"
expect 1 "$pg" policy explain --uid 4242 --device 03:00.0 --vendor 0x10de --class 0x0300 \
        --type hvm --domain render-1 "$data/good.conf"
contains out "decision: deny"
contains out "not-authorized"
expect 2 "$pg" policy explain --device 03:00.0 --domain render-1 "$data/good.conf"
contains err "needs --uid"
expect 2 "$pg" policy explain --uid 0 --device bogus --domain render-1 "$data/good.conf"
expect 2 "$pg" policy explain --uid 0 --device 03:00.0 --domain r --type xen "$data/good.conf"
expect 1 "$pg" policy explain --uid 0 --device 03:00.0 --domain r "$data/bad.conf"
contains err "$data/bad.conf:3:"

# ---- policy edit ----
cp "$data/good.conf" "$tmp/policy.conf"
chmod 0604 "$tmp/policy.conf"
cat > "$tmp/append-comment" <<'EOS'
#!/bin/sh
echo "# edited" >> "$1"
EOS
cat > "$tmp/break-it" <<'EOS'
#!/bin/sh
echo "bogus_key = 1;" >> "$1"
EOS
# Breaks the file on the first run, repairs it on the second.
cat > "$tmp/break-then-fix" <<EOS
#!/bin/sh
if [ -e "$tmp/ran-once" ]; then
        grep -v bogus_key "\$1" > "\$1.new" && mv "\$1.new" "\$1"
        echo "# fixed" >> "\$1"
else
        : > "$tmp/ran-once"
        echo "bogus_key = 1;" >> "\$1"
fi
EOS
chmod +x "$tmp/append-comment" "$tmp/break-it" "$tmp/break-then-fix"

export VISUAL=
EDITOR="$tmp/append-comment" expect 0 "$pg" policy edit --file "$tmp/policy.conf"
contains out "installed"
contains err "warning"
checks=$((checks + 1))
tail -n 1 "$tmp/policy.conf" | grep -qx "# edited" || fail "edit was not installed"
checks=$((checks + 1))
[ "$(stat -c %a "$tmp/policy.conf")" = 604 ] || fail "mode not kept: $(stat -c %a "$tmp/policy.conf")"

cp "$tmp/policy.conf" "$tmp/before"
checks=$((checks + 1))
EDITOR="$tmp/break-it" "$pg" policy edit --file "$tmp/policy.conf" >"$tmp/out" 2>"$tmp/err" <<EOS
q
EOS
[ $? = 1 ] || fail "invalid edit did not exit 1"
contains err "$tmp/policy.conf:"
contains err "(e)dit again, (q)uit without saving?"
checks=$((checks + 1))
cmp -s "$tmp/before" "$tmp/policy.conf" || fail "an invalid edit changed the policy"

checks=$((checks + 1))
EDITOR="$tmp/break-then-fix" "$pg" policy edit --file "$tmp/policy.conf" >"$tmp/out" 2>"$tmp/err" <<EOS
e
EOS
[ $? = 0 ] || { fail "edit again did not succeed"; cat "$tmp/err"; }
checks=$((checks + 1))
tail -n 1 "$tmp/policy.conf" | grep -qx "# fixed" || fail "repaired edit was not installed"
checks=$((checks + 1))
grep -q bogus_key "$tmp/policy.conf" && fail "the broken version was installed"

EDITOR=true expect 0 "$pg" policy edit --file "$tmp/policy.conf"
contains out "unchanged"
EDITOR=false expect 1 "$pg" policy edit --file "$tmp/policy.conf"
expect 2 "$pg" policy edit extra

checks=$((checks + 1))
leftover=$(ls -A "$tmp" | grep -c '\.edit-' || true)
[ "$leftover" = 0 ] || fail "temporary files left behind: $(ls -A "$tmp")"

# ---- two admins at once: one installs, the other is told, nothing is lost ----
# The first editor appends its line, says so, and waits for the go-ahead; the
# test waits on its word (a FIFO), never on time.
mkfifo "$tmp/started" "$tmp/go"
cat > "$tmp/slow-editor" <<EOS
#!/bin/sh
echo "# first admin" >> "\$1"
echo started > "$tmp/started"
read go < "$tmp/go"
EOS
chmod +x "$tmp/slow-editor"
EDITOR="$tmp/slow-editor" "$pg" policy edit --file "$tmp/policy.conf" >"$tmp/out1" 2>"$tmp/err1" </dev/null &
first=$!
read word < "$tmp/started"
EDITOR="$tmp/append-comment" expect 1 "$pg" policy edit --file "$tmp/policy.conf"
contains err "$tmp/policy.conf is being edited by another 'passguard policy edit' (pid $first)"
checks=$((checks + 1))
grep -q "# first admin" "$tmp/policy.conf" && fail "the first edit was installed before it ended"
echo go > "$tmp/go"
wait $first
checks=$((checks + 1))
[ $? = 0 ] || { fail "the first admin's edit failed"; cat "$tmp/err1"; }
checks=$((checks + 1))
tail -n 1 "$tmp/policy.conf" | grep -qx "# first admin" || fail "the first admin's edit was lost"
checks=$((checks + 1))
[ "$(grep -c '^# edited$' "$tmp/policy.conf")" = 1 ] || fail "the refused edit changed the policy"
# ... and the lock is free again once the first edit ended.
EDITOR="$tmp/append-comment" expect 0 "$pg" policy edit --file "$tmp/policy.conf"

# ---- the file changed behind the lock (another tool): not overwritten, the edit kept ----
cat > "$tmp/edit-while-changed" <<EOS
#!/bin/sh
echo "# second admin" >> "\$1"
echo "# changed by hand" >> "$tmp/policy.conf"
EOS
chmod +x "$tmp/edit-while-changed"
EDITOR="$tmp/edit-while-changed" expect 1 "$pg" policy edit --file "$tmp/policy.conf"
contains err "$tmp/policy.conf was changed by someone else while you edited it: nothing was installed; your edit is kept in $tmp/.policy.conf.edit-"
checks=$((checks + 1))
tail -n 1 "$tmp/policy.conf" | grep -qx "# changed by hand" || fail "the change by hand was overwritten"
checks=$((checks + 1))
kept=$(sed -n 's/.*your edit is kept in //p' "$tmp/err")
tail -n 1 "$kept" 2>/dev/null | grep -qx "# second admin" || fail "the refused edit was not kept in '$kept'"

# ---- policy generate: a starting policy from a host's sysfs ----
# A fake sysfs: a SATA controller holding the root file system (its block
# device is whatever holds / on this machine), a boot VGA device, a NIC dom0
# uses, a NIC already on pciback, a bridge, a USB controller.
sys=$tmp/sys
pcidev() { # BDF VENDOR DEVICE CLASS DRIVER [BOOT_VGA]
        d=$sys/devices/pci0000:00/$1
        mkdir -p "$d" "$sys/bus/pci/devices" "$sys/bus/pci/drivers/$5"
        echo "0x$2" > "$d/vendor"; echo "0x$3" > "$d/device"; echo "0x$4" > "$d/class"
        [ "$5" = - ] || ln -s "../../../bus/pci/drivers/$5" "$d/driver"
        [ -z "${6:-}" ] || echo "$6" > "$d/boot_vga"
        ln -s "../../../devices/pci0000:00/$1" "$sys/bus/pci/devices/$1"
}
pcidev 0000:00:00.0 8086 29c0 060000 -
pcidev 0000:00:02.0 1234 1111 030000 bochs-drm 1
pcidev 0000:00:19.0 8086 10d3 020000 e1000e
pcidev 0000:03:00.0 8086 10fb 020000 pciback
pcidev 0000:00:1f.2 8086 2922 010601 ahci
pcidev 0000:00:1d.0 8086 2934 0c0300 uhci_hcd
src=$(findmnt -n -o SOURCE / 2>/dev/null)
case "$src" in /dev/*) rootdev=$(stat -L -c '%Hr:%Lr' "$src" 2>/dev/null) ;; *) rootdev= ;; esac
[ -n "$rootdev" ] || rootdev=$(stat -c '%Hd:%Ld' / | grep -v '^0:')
if [ -n "$rootdev" ]; then
        blk=$sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda1
        mkdir -p "$blk" "$sys/dev/block"
        ln -s "$blk" "$sys/dev/block/$rootdev"
fi
expect 0 "$pg" policy generate --sysfs-root "$sys"
cp "$tmp/out" "$tmp/generated.conf"
expect 0 "$pg" policy check "$tmp/generated.conf"
contains out "OK (0 rules)"
contains_gen() { checks=$((checks + 1)); grep -qF -- "$1" "$tmp/generated.conf" || fail "the generated policy lacks '$1'"; }
lacks_gen() { checks=$((checks + 1)); grep -qF -- "$1" "$tmp/generated.conf" && fail "the generated policy has '$1'"; }
contains_gen 'clients = ( { name = "admin"; uid = '"$(id -u)"'; } );'
contains_gen 'admins = [ "admin" ];'
contains_gen '{ bdf = "0000:00:02.0"; },   # 1234:1111 bochs-drm: dom0'"'"'s console (the boot VGA device)'
contains_gen '{ bdf = "0000:00:19.0"; },   # 8086:10d3 e1000e: dom0'"'"'s network'
contains_gen '{ class = "0x06"; }'
lacks_gen '{ bdf = "0000:03:00.0"; }'
lacks_gen '{ bdf = "0000:00:1d.0"; }'
contains_gen '#     0000:03:00.0  8086:10fb  class 0x020000  pciback'
contains_gen '#   0x0c serial bus controllers'
if [ -n "$rootdev" ]; then
        contains_gen '{ bdf = "0000:00:1f.2"; },   # 8086:2922 ahci: the disk holding the root file system'
else
        contains_gen 'The device holding the root file system was not found'
fi
checks=$((checks + 1))
grep -q '^rules' "$tmp/generated.conf" && fail "the generated policy has an active rule"
# --output writes the file, never over an existing one.
expect 0 "$pg" policy generate --sysfs-root "$sys" --output "$tmp/new-policy.conf"
contains err "$tmp/new-policy.conf written: 6 devices"
checks=$((checks + 1))
if diff "$tmp/generated.conf" "$tmp/new-policy.conf" | grep '^[<>]' | grep -q -v 'written by'; then
        fail "--output differs from stdout beyond its date"
fi
expect 1 "$pg" policy generate --sysfs-root "$sys" --output "$tmp/new-policy.conf"
contains err "cannot create $tmp/new-policy.conf: File exists"
expect 1 "$pg" policy generate --sysfs-root "$tmp/nowhere"
contains err "cannot list the PCI devices in $tmp/nowhere/bus/pci/devices"
expect 2 "$pg" policy generate --bogus

echo "$checks checks, $failures failed"
[ $checks -gt 0 ] || { echo "FAIL no check ran"; exit 1; }
[ $failures = 0 ]
