#!/usr/bin/env bash
# Runs the test binaries under valgrind: memcheck on the pool, handle,
# arena and model tests (exit status non-zero on any memcheck error or
# definite leak; no suppressions are needed), and helgrind on the
# concurrency tests.
#
# helgrind only models pthread primitives. hotpool synchronises through
# atomics, parking_lot and std locks (futexes) and the arena's spin lock,
# none of which it sees, so it reports every hand-off through them as a
# possible race (hundreds of contexts per test). Its step therefore fails
# only if a test fails under it, and prints the error summary; the race
# checks that do see atomics are the loom models and ThreadSanitizer
# (scripts/sanitize.sh). See README, "Verification".
#
#   scripts/valgrind.sh              # both
#   scripts/valgrind.sh memcheck     # or: helgrind
#
# Slow (several minutes): not part of .ci/run; run it by hand.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
command -v valgrind >/dev/null || { echo "valgrind: not installed (apt-get install valgrind)"; exit 1; }
tools=("${@:-memcheck helgrind}")
tools=(${tools[*]})

# Debug builds: assertions on, frames not folded away.
declare -A BIN
while read -r name exe; do BIN[$name]=$exe; done < <(
  cargo test --no-run --test pool --test handles --test arena --test model \
    --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
')

# Concurrency tests for helgrind: threads handing objects, handles and
# blocks to each other.
HELGRIND_TESTS=(
  "pool stress_cross_thread_free_with_thread_exit"
  "pool trim_asks_other_threads_to_flush"
  "pool a_dropped_pool_is_freed_once_other_threads_flush_its_objects"
  "pool thread_exit_moves_its_list_to_the_depot_for_reuse"
  "handles stress_upgrades_race_last_drops"
  "handles stress_concurrent_create_drop_distinct_slots"
  "handles race_one_upgrade_against_the_last_drop"
  "arena threads_free_each_others_objects"
)

failed=()
log_dir=target/valgrind
mkdir -p "$log_dir"

for tool in "${tools[@]}"; do
  case $tool in
    memcheck)
      for name in pool handles arena model; do
        printf '\n==> memcheck: %s\n' "$name"
        # PROPTEST_CASES: the model tests at 8 cases each keep this run
        # within minutes.
        if PROPTEST_CASES=8 valgrind --tool=memcheck --error-exitcode=99 \
          --leak-check=full --errors-for-leak-kinds=definite \
          --log-file="$log_dir/memcheck-$name.log" \
          "${BIN[$name]}" --test-threads=1; then
          grep -h 'ERROR SUMMARY\|definitely lost' "$log_dir/memcheck-$name.log"
        else
          failed+=("memcheck:$name")
          tail -40 "$log_dir/memcheck-$name.log"
        fi
      done
      ;;
    helgrind)
      for entry in "${HELGRIND_TESTS[@]}"; do
        read -r name test <<<"$entry"
        printf '\n==> helgrind: %s %s\n' "$name" "$test"
        if valgrind --tool=helgrind --log-file="$log_dir/helgrind-$test.log" \
          "${BIN[$name]}" --test-threads=1 --exact "$test"; then
          grep -h 'ERROR SUMMARY' "$log_dir/helgrind-$test.log"
        else
          failed+=("helgrind:$test")
        fi
      done
      ;;
    *) echo "unknown tool $tool (memcheck, helgrind)"; exit 2 ;;
  esac
done
printf '\nvalgrind: logs in %s; failed: %s\n' "$log_dir" "${failed[*]:-none}"
[ ${#failed[@]} -eq 0 ]
