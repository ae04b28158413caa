#!/usr/bin/env bash
# Runs hotpool's cargo-fuzz targets (fuzz/fuzz_targets/) with libFuzzer and
# AddressSanitizer, each for SECONDS (default 30), starting from the committed
# seed corpus in fuzz/corpus/<target>/. Installs the pinned nightly (with
# rust-src, for -Zbuild-std) and cargo-fuzz if they are missing.
#
#   scripts/fuzz.sh                       # every target, 30 s each
#   scripts/fuzz.sh 600 alloc_ops         # one target, 10 minutes
#   FUZZ_TOOLCHAIN=nightly scripts/fuzz.sh
#
# New inputs go to a scratch corpus (not the committed one). Exits non-zero
# if any target crashes, leaks, or hangs (-timeout); the input that did it
# is saved under fuzz/artifacts/<target>/ and the command that replays it is
# printed.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLCHAIN="${FUZZ_TOOLCHAIN:-$(cat .ci/nightly)}"
CARGO_FUZZ_VERSION="0.13.2"
SECONDS_EACH="${1:-30}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(alloc_ops pool_ops conf_parse)
fi

if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
  rustup toolchain install "$TOOLCHAIN" --profile minimal -c rust-src
elif ! rustup component list --toolchain "$TOOLCHAIN" --installed | grep -q '^rust-src'; then
  rustup component add rust-src --toolchain "$TOOLCHAIN"
fi
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

# Release with debug assertions and ASan, std rebuilt with them (-Zbuild-std).
cargo "+$TOOLCHAIN" fuzz build

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${TARGETS[@]}"; do
  mkdir -p "$scratch/$t" "fuzz/corpus/$t"
  # The operation-sequence targets decode structured input: let libFuzzer
  # use long inputs (many operations) from the start.
  extra=()
  [ "$t" = conf_parse ] || extra=(-len_control=0)
  echo "fuzz: $t for ${SECONDS_EACH}s"
  if cargo "+$TOOLCHAIN" fuzz run "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -timeout=30 -print_final_stats=1 ${extra[@]+"${extra[@]}"} \
    >"$scratch/$t.log" 2>&1; then
    grep -E '^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units' "$scratch/$t.log" || true
  else
    tail -n 60 "$scratch/$t.log"
    echo "fuzz: $t FAILED; replay with:"
    echo "  cargo +$TOOLCHAIN fuzz run $t fuzz/artifacts/$t/<crash-file>"
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: failures in ${failed[*]}"
  exit 1
fi
echo "fuzz: ${TARGETS[*]} ran ${SECONDS_EACH}s each without a finding"
