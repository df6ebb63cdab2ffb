#!/bin/bash
# The whole passguard test suite, on a fresh Debian 12 machine, as root.
# Installs what it needs, then runs:
#   1. gcc build: every meson suite (unit, fuzz replay, integration, system:
#      real Xen 4.17 under QEMU), and `passguard policy check` on the example;
#   2. clang build: unit and fuzz suites;
#   3. gcc with AddressSanitizer + UBSan: unit and integration suites;
#   4. release and plain builds with gcc and clang, as a distribution builds;
#   5. libFuzzer (clang): each fuzz target runs for a bounded number of inputs.
# Ends with the line "N passed, N failed, N skipped"; exits non-zero on any failure.
#
# Environment: BUILD_PREFIX (default build-ci), SUITES (default: all four for gcc),
# FUZZ_RUNS (default 20000), SKIP_SANITIZE=1, SKIP_CLANG=1, SKIP_DISTRO=1, SKIP_FUZZ=1.
# Every build has -Dwerror=true; the project default is off, for distributions.
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD

tools/install-deps.sh test || { echo "dependency installation failed"; echo "0 passed, 1 failed"; exit 1; }

prefix=${BUILD_PREFIX:-build-ci}
fuzz_runs=${FUZZ_RUNS:-20000}
passed=0 failed=0 skipped=0
failures=()

note() { printf '\n==== %s\n' "$*"; }

# Count a meson test log into the totals.
count_log() { # build-dir label
  local log=$1/meson-logs/testlog.json p f s
  [ -f "$log" ] || { failed=$((failed + 1)); failures+=("$2: no test log"); return; }
  p=$(grep -cE '"result": "(OK|EXPECTEDFAIL)"' "$log")
  f=$(grep -cE '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log")
  s=$(grep -c '"result": "SKIP"' "$log")
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
  if [ "$f" -gt 0 ]; then
    while IFS= read -r name; do failures+=("$2: $name"); done < <(
      grep -E '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" |
        sed -E 's/.*"name": "([^"]*)".*/\1/')
  fi
  echo "$2: $p passed, $f failed, $s skipped"
}

# A step outside meson that passes or fails as a whole.
step() { # label command...
  local label=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $label"
  else failed=$((failed + 1)); failures+=("$label"); echo "FAIL $label"; fi
}

build() { # dir meson-args...
  local dir=$1; shift
  rm -rf "$dir"
  meson setup "$dir" -Dwerror=true "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
  ninja -C "$dir" >"$dir.build.log" 2>&1 || { tail -60 "$dir.build.log"; return 1; }
}

build_cc() { # cc dir meson-args...
  local cc=$1; shift
  CC=$cc build "$@"
}

run_suites() { # dir label suites...
  local dir=$1 label=$2; shift 2
  local args=()
  for s in "$@"; do args+=(--suite "$s"); done
  meson test -C "$dir" --print-errorlogs --num-processes 2 "${args[@]}" >"$dir.test.log" 2>&1
  grep -E '^ *[0-9]+/[0-9]+ ' "$dir.test.log" | sed 's/^/  /'
  # --print-errorlogs put the output of each failing test at the end of the log
  grep -qE '^ *[0-9]+/[0-9]+ .*(FAIL|TIMEOUT|ERROR)' "$dir.test.log" && tail -n 300 "$dir.test.log"
  count_log "$dir" "$label"
}

# 1. gcc, every suite
note "gcc build"
if build "$prefix-gcc" -Dman-pages=enabled -Dxen=enabled; then
  step "policy check policy/examples/policy.conf" \
    "$prefix-gcc/client/cli/passguard" policy check policy/examples/policy.conf
  note "gcc: unit, fuzz, integration, system suites"
  run_suites "$prefix-gcc" gcc ${SUITES:-unit fuzz integration system}
else
  failed=$((failed + 1)); failures+=("gcc build")
fi

# 2. clang
if [ -z "${SKIP_CLANG:-}" ]; then
  note "clang build"
  if CC=clang build "$prefix-clang" -Dsystem-tests=false; then
    run_suites "$prefix-clang" clang unit fuzz
  else
    failed=$((failed + 1)); failures+=("clang build")
  fi
fi

# 3. sanitizers
if [ -z "${SKIP_SANITIZE:-}" ]; then
  note "gcc + ASan/UBSan build"
  if build "$prefix-asan" -Db_sanitize=address,undefined -Db_lundef=false -Dsystem-tests=false; then
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      run_suites "$prefix-asan" asan unit integration
  else
    failed=$((failed + 1)); failures+=("asan build")
  fi
fi

# 4. distribution builds: what a packager runs, warnings as errors
if [ -z "${SKIP_DISTRO:-}" ]; then
  note "release and plain builds (gcc, clang)"
  for cc in gcc clang; do
    for bt in release plain; do
      step "$cc --buildtype=$bt" build_cc "$cc" "$prefix-$cc-$bt" --buildtype=$bt -Dtests=false
      rm -rf "$prefix-$cc-$bt"
    done
  done
fi

# 5. libFuzzer, bounded
if [ -z "${SKIP_FUZZ:-}" ]; then
  note "libFuzzer build ($fuzz_runs runs per target)"
  if CC=clang build "$prefix-fuzz" -Dfuzz=true -Dsystem-tests=false -Db_sanitize=address,undefined \
      -Db_lundef=false; then
    for f in "$prefix-fuzz"/tests/fuzz/fuzz-*; do
      [ -f "$f" ] && [ -x "$f" ] || continue
      name=${f##*/fuzz-}
      work=$(mktemp -d)
      cp -r "tests/fuzz/corpus/$name/." "$work/" 2>/dev/null
      step "libFuzzer $name ($fuzz_runs runs)" \
        sh -c '"$1" -runs="$2" -max_len=4096 -timeout=10 "$3" >"$4.log" 2>&1 || { tail -30 "$4.log"; exit 1; }; grep -E "^#[0-9]+.*DONE" "$4.log" | tail -1' \
        _ "$f" "$fuzz_runs" "$work" "$prefix-fuzz/fuzz-$name"
      rm -rf "$work"
    done
  else
    failed=$((failed + 1)); failures+=("fuzz build")
  fi
fi

note "summary"
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
