#!/usr/bin/env bash
# Runs the test suite under ThreadSanitizer, AddressSanitizer and Miri, each
# where the nightly toolchain has what it needs, and says why it skips the
# others. Exit status: non-zero if any run that did start found something.
#
#   scripts/sanitize.sh            # all three
#   scripts/sanitize.sh asan tsan  # a subset
#
# Not part of .ci/run (slow); run it by hand before a release.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
TARGET=$(rustc -vV | sed -n 's/^host: //p')
# hotpool's library and integration tests (the workspace's default member);
# not hotpool-bench, whose peers (jemalloc, mimalloc) are C code the
# sanitizers do not instrument.
TESTS=(--no-fail-fast --lib --tests)
# Tests whose assertions a sanitizer's own memory makes meaningless:
# pool_memory measures the resident set, which under ASan includes the
# shadow of every page the test touched (1/8 of it, not given back when
# the pool unmaps its chunks).
# The checks tests that run the test binary under valgrind: valgrind 3.19
# cannot read the DWARF 5 that the nightly toolchain emits ("unhandled
# dwarf2 abbrev form code 0x25 ... Giving up"), and it does not run
# ASan-instrumented programs anyway.
ASAN_SKIP=(--skip four_million_objects_cost_their_payload_and_trim_returns_the_pages
  --skip with_checks::valgrind_)
failed=()
ran=()
skipped=()

have_nightly() { rustup toolchain list 2>/dev/null | grep -q '^nightly'; }
have_component() {
  rustup +nightly component list --installed 2>/dev/null | grep -q "^$1"
}
skip() { printf '\n==> %s: SKIPPED: %s\n' "$1" "$2"; skipped+=("$1"); }
run() {
  local name=$1
  shift
  printf '\n==> %s: %s\n' "$name" "$*"
  if "$@"; then ran+=("$name"); else failed+=("$name"); fi
}

steps=("$@")
for name in tsan asan miri; do
  if [ ${#steps[@]} -gt 0 ] && [[ " ${steps[*]} " != *" $name "* ]]; then
    continue
  fi
  if ! have_nightly; then
    skip "$name" "no nightly toolchain (rustup toolchain install nightly)"
    continue
  fi
  case $name in
    tsan)
      # The standard library must be rebuilt with TSan, or every
      # synchronisation inside std (channels, Once, thread join) is
      # invisible to it and reported as a race.
      if ! have_component rust-src; then
        skip tsan "nightly has no rust-src, needed for -Zbuild-std (rustup +nightly component add rust-src)"
        continue
      fi
      run tsan env RUSTFLAGS="-Zsanitizer=thread" \
        RUSTDOCFLAGS="-Zsanitizer=thread" TSAN_OPTIONS="halt_on_error=1" \
        CARGO_TARGET_DIR=target/tsan \
        cargo +nightly test -Zbuild-std --target "$TARGET" "${TESTS[@]}"
      ;;
    asan)
      # ASan needs no rebuilt std: it intercepts malloc and instruments
      # our code. Leak detection is on: a pool that loses an object's chunk
      # or a handle segment shows up here.
      run asan env RUSTFLAGS="-Zsanitizer=address" \
        ASAN_OPTIONS="detect_leaks=1:halt_on_error=1" \
        LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp" \
        CARGO_TARGET_DIR=target/asan \
        cargo +nightly test --target "$TARGET" "${TESTS[@]}" -- "${ASAN_SKIP[@]}"
      ;;
    miri)
      if ! have_component miri; then
        skip miri "nightly has no miri component (rustup +nightly component add miri rust-src)"
        continue
      fi
      # Miri cannot call mmap with our flags or run for long; the pool,
      # handle and model tests are what it checks (Stacked Borrows, UB).
      run miri env MIRIFLAGS="-Zmiri-disable-isolation" \
        CARGO_TARGET_DIR=target/miri \
        cargo +nightly miri test --test pool --test handles
      ;;
  esac
done

printf '\nsanitize: ran: %s; skipped: %s; failed: %s\n' \
  "${ran[*]:-none}" "${skipped[*]:-none}" "${failed[*]:-none}"
[ ${#failed[@]} -eq 0 ]
