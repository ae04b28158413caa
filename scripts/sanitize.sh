#!/usr/bin/env bash
# Runs hotpool's tests under ThreadSanitizer, AddressSanitizer and Miri
# (Stacked Borrows and Tree Borrows), with the nightly pinned in
# .ci/nightly. .ci/run calls each mode as a step; by hand:
#
#   scripts/sanitize.sh                  # all four
#   scripts/sanitize.sh tsan miri-tb     # a subset
#
# Modes: tsan, asan, miri-sb, miri-tb (CI's), miri-all (by hand). A missing toolchain or component is
# an error, with the command that installs it. Exit status: non-zero if a
# mode failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
NIGHTLY=$(cat .ci/nightly)
TARGET=$(rustc -vV | sed -n 's/^host: //p')

# TSan: every test binary that starts threads (pools, handles, the arena,
# the property-based models, panic safety, fault injection, pool caps, the
# Prometheus exposition and its server), and the unit tests. The loom
# models are loom's own (no OS threads); the soak test is ignored by
# default (minutes of work; run it with --ignored).
TSAN_TESTS=(--features fault-injection --lib --test pool --test handles
  --test global_hotalloc --test arena --test arena_global --test arena_unsized
  --test model --test panic_safety --test faults --test pool_aliasing
  --test handle_parity --test pooled_unsized --test pool_caps --test prometheus
  --test quiet_thread --test depot_nudge)
# Under TSan a child process that aborts takes over ten seconds to die
# (TSan's handling of the deadly signal); pool_caps' abort test starts one
# and has no threads of its own, so TSan skips it.
TSAN_SKIP=(--skip alloc_past_the_cap_aborts_like_an_allocation_failure)
# ASan: hotpool's library and every integration test (the workspace's
# default member); not hotpool-bench, whose peers (jemalloc, mimalloc) are
# C code ASan does not instrument.
ASAN_TESTS=(--lib --tests)
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
# Miri: the unit tests, the pool, handle and arena tests, the models and
# the doc tests, with their heavy loops scaled down under cfg(miri). Tests
# that fork, start processes or read the resident set are
# #[cfg_attr(miri, ignore)] with the reason at the test.
#
# CI's subset, each file's time known: the unit tests (the arena's among
# them), the pool tests (whose chunks come from the arena, so its huge path
# runs), the aliasing regressions, the handle tests and the unsized and
# arena_unsized tests. tests/arena.rs, arena_global.rs and model.rs are
# left out of CI's Miri run: single tests there take minutes under Miri
# (a_thread_that_only_frees_gets_a_working_cache about 3), and the whole
# files have not been timed to the end; `scripts/sanitize.sh miri-all`
# runs them by hand (Stacked Borrows).
MIRI_TESTS=(--lib --test pool --test pool_aliasing --test handles
  --test handle_parity --test pooled_unsized --test arena_unsized --test huge_reuse)
MIRI_ALL=("${MIRI_TESTS[@]}" --test arena --test arena_global --test model)
# Miri's isolation stays on: nothing it checks reads the host's files or
# clock (sys.rs under cfg(miri) answers the resident set itself).
# Permissive provenance: the arena computes addresses as integers (chunk
# bases, headers, huge mappings) and casts them back, which Miri supports
# with a warning per site; the flag acknowledges it and keeps the log
# readable.
MIRI_COMMON=-Zmiri-permissive-provenance

# Doc examples Miri cannot run in CI (the rest run): Pool::trim's allocates
# 100,000 objects to fill six chunks.
# arena::set_background_thread's example starts the purge thread, which
# runs until the process exits: Miri refuses a main thread that ends before
# its other threads.
MIRI_DOC_SKIP=(--skip "Pool<T>::trim" --skip "arena::set_background_thread")

failed=()
ran=()

need() {
  if ! rustup toolchain list 2>/dev/null | grep -q "^$NIGHTLY"; then
    echo "sanitize: $NIGHTLY missing: rustup toolchain install $NIGHTLY --profile minimal -c miri,rust-src" >&2
    return 1
  fi
  if ! rustup +"$NIGHTLY" component list --installed 2>/dev/null | grep -q "^$1"; then
    echo "sanitize: $NIGHTLY has no $1: rustup component add $1 --toolchain $NIGHTLY" >&2
    return 1
  fi
}
run() {
  local name=$1
  shift
  printf '\n==> %s: %s\n' "$name" "$*"
  local t0=$SECONDS
  if "$@"; then ran+=("$name"); else failed+=("$name"); fi
  printf '==> %s: %ss\n' "$name" $((SECONDS - t0))
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(tsan asan miri-sb miri-tb)
for name in "${steps[@]}"; do
  case $name in
    tsan)
      # The standard library is rebuilt with TSan (-Zbuild-std, needs
      # rust-src), or every synchronisation inside std (channels, Once,
      # thread join) is invisible to it and reported as a race.
      need rust-src || { failed+=(tsan); continue; }
      run tsan env RUSTFLAGS="-Zsanitizer=thread" \
        RUSTDOCFLAGS="-Zsanitizer=thread" TSAN_OPTIONS="halt_on_error=1" \
        CARGO_TARGET_DIR=target/tsan \
        cargo +"$NIGHTLY" test -Zbuild-std --target "$TARGET" --no-fail-fast "${TSAN_TESTS[@]}" -- "${TSAN_SKIP[@]}"
      ;;
    asan)
      # ASan needs no rebuilt std: it intercepts malloc and instruments
      # our code. Leak detection is on: a pool that loses an object's chunk
      # or a handle segment shows up here.
      need rust-std || { failed+=(asan); continue; }
      run asan env RUSTFLAGS="-Zsanitizer=address" \
        ASAN_OPTIONS="detect_leaks=1:halt_on_error=1" \
        LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp" \
        CARGO_TARGET_DIR=target/asan \
        cargo +"$NIGHTLY" test --target "$TARGET" --no-fail-fast "${ASAN_TESTS[@]}" -- "${ASAN_SKIP[@]}"
      ;;
    miri-all)
      need miri || { failed+=("$name"); continue; }
      need rust-src || { failed+=("$name"); continue; }
      run "$name" env MIRIFLAGS="$MIRI_COMMON" CARGO_TARGET_DIR=target/miri \
        cargo +"$NIGHTLY" miri test --no-fail-fast "${MIRI_ALL[@]}"
      ;;
    miri-sb | miri-tb)
      need miri || { failed+=("$name"); continue; }
      need rust-src || { failed+=("$name"); continue; }
      flags=$MIRI_COMMON
      [ "$name" = miri-tb ] && flags="$flags -Zmiri-tree-borrows"
      # A target directory per model: cargo holds its directory's lock
      # while the tests run, and CI runs the two models side by side.
      run "$name" env MIRIFLAGS="$flags" CARGO_TARGET_DIR="target/$name" \
        cargo +"$NIGHTLY" miri test --no-fail-fast "${MIRI_TESTS[@]}"
      # cargo runs the doc tests only alone.
      run "$name-doc" env MIRIFLAGS="$flags" CARGO_TARGET_DIR="target/$name" \
        cargo +"$NIGHTLY" miri test --doc -- "${MIRI_DOC_SKIP[@]}"
      ;;
    *)
      echo "sanitize: unknown mode $name (tsan, asan, miri-sb, miri-tb, miri-all)" >&2
      failed+=("$name")
      ;;
  esac
done

printf '\nsanitize: ran: %s; failed: %s\n' "${ran[*]:-none}" "${failed[*]:-none}"
[ ${#failed[@]} -eq 0 ]
