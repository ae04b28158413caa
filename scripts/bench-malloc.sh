#!/usr/bin/env bash
# Allocator benchmark (not part of CI): runs the C programs in
# hotpool-malloc/bench/ under glibc, jemalloc, mimalloc and hotpool
# (LD_PRELOAD), REPS rounds of one run each, and prints the median wall time, CPU time
# (user + system: steadier than wall time on a shared machine) and peak RSS
# side by side, with hotpool's ratios to the best of jemalloc and mimalloc. Installs libjemalloc2 / libmimalloc2.0 with apt-get when
# they are missing (Debian).
#
#   scripts/bench-malloc.sh [REPS [LABEL...]]
#   HOTPOOL_BASELINE=/tmp/old.so scripts/bench-malloc.sh ...   (adds a column)
#
# malloc-simple and malloc-thread have the shapes of glibc's
# benchtests/bench-malloc-simple.c and bench-malloc-thread.c, alloc-test
# that of the alloc-test mimalloc-bench runs, cfrac that of its cfrac (a
# bignum continued-fraction workload): written here from their published
# descriptions (see each file's header).
set -euo pipefail
cd "$(dirname "$0")/.."
reps="${1:-3}"

find_lib() { ls /usr/lib/*-linux-gnu/$1 /usr/lib64/$1 /usr/lib/$1 2>/dev/null | head -1 || true; }
jemalloc="$(find_lib libjemalloc.so.2)"
mimalloc="$(find_lib 'libmimalloc.so.2*')"
if [[ -z $jemalloc || -z $mimalloc ]]; then
  apt-get update -qq && apt-get install -y -qq libjemalloc2 libmimalloc2.0 >/dev/null || true
  jemalloc="$(find_lib libjemalloc.so.2)"
  mimalloc="$(find_lib 'libmimalloc.so.2*')"
fi
cargo build --release -p hotpool-malloc
hotpool="$PWD/target/release/libhotpool_malloc.so"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# label (program[/variant]) and arguments of each benchmark; a subset runs
# when labels are given on the command line after REPS
all_benches=(
  "larson 2 50 200000 10000"
  "xthread 2 8000000"
  "churn 200000 15000000"
  "strbuild 40000"
  "large 1000"
  "malloc-simple 1000"
  "malloc-thread/1 1 10000000"
  "malloc-thread/2 2 5000000"
  "alloc-test/1 1 20000000"
  "alloc-test/2 2 10000000"
  "cfrac 1000000"
)
benches=()
for spec in "${all_benches[@]}"; do
  label=${spec%% *}
  if (($# <= 1)) || [[ " ${*:2} " == *" $label "* ]]; then benches+=("$spec"); fi
done
for b in larson xthread churn strbuild large malloc-simple malloc-thread alloc-test cfrac; do
  cc -O2 -pthread -o "$work/$b" "hotpool-malloc/bench/$b.c" -lm
done

allocs=(glibc jemalloc mimalloc hotpool)
declare -A lib=([glibc]="" [jemalloc]="$jemalloc" [mimalloc]="$mimalloc" [hotpool]="$hotpool")
# HOTPOOL_BASELINE=path/to/libhotpool_malloc.so (an earlier build, copied
# away) adds it as one more contestant, for a before/after in one run.
if [[ -n ${HOTPOOL_BASELINE:-} ]]; then
  allocs+=(baseline)
  lib[baseline]="$HOTPOOL_BASELINE"
fi

# median of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

printf '%-15s' bench
for a in "${allocs[@]}"; do printf '%24s' "$a wall/cpu/rss"; done
printf '   %s\n' "hotpool / best of jemalloc, mimalloc"
for spec in "${benches[@]}"; do
  read -r label args <<<"$spec"
  name=${label%%/*}
  declare -A secs=() cpu=() kb=()
  for a in "${allocs[@]}"; do : >"$work/times.$a"; done
  # Repetitions are interleaved (one run of each allocator per round), so a
  # noisy spell of the machine falls on all of them alike.
  for _ in $(seq "$reps"); do
    for a in "${allocs[@]}"; do
      [[ $a != glibc && -z ${lib[$a]} ]] && continue
      # shellcheck disable=SC2086
      /usr/bin/time -f '%e %M %U %S' -o "$work/one" env ${lib[$a]:+LD_PRELOAD=${lib[$a]}} \
        "$work/$name" $args >"$work/out.$a"
      cat "$work/one" >>"$work/times.$a"
      if [[ $a != glibc ]] && ! cmp -s "$work/out.glibc" "$work/out.$a"; then
        echo "$name: output under $a differs from glibc's" >&2
        exit 1
      fi
    done
  done
  for a in "${allocs[@]}"; do
    if [[ $a != glibc && -z ${lib[$a]} ]]; then
      secs[$a]=nan cpu[$a]=nan kb[$a]=nan
      continue
    fi
    secs[$a]="$(cut -d' ' -f1 "$work/times.$a" | median)"
    kb[$a]="$(cut -d' ' -f2 "$work/times.$a" | median)"
    cpu[$a]="$(awk '{ print $3 + $4 }' "$work/times.$a" | median)"
  done
  printf '%-15s' "$label"
  for a in "${allocs[@]}"; do
    printf '%9ss %5ss %4sM' "${secs[$a]}" "${cpu[$a]}" "$(( ${kb[$a]%.*} / 1024 ))"
  done
  awk -v h="${secs[hotpool]}" -v j="${secs[jemalloc]}" -v m="${secs[mimalloc]}" \
    -v hc="${cpu[hotpool]}" -v jc="${cpu[jemalloc]}" -v mc="${cpu[mimalloc]}" \
    -v hk="${kb[hotpool]}" -v jk="${kb[jemalloc]}" -v mk="${kb[mimalloc]}" \
    'function lo(a, b) { return a < b ? a : b }
     BEGIN { printf "   wall %.2fx cpu %.2fx rss %.2fx\n", h / lo(j, m), hc / lo(jc, mc), hk / lo(jk, mk) }'
done
echo "(median of $reps runs; wall and cpu (user + system) in seconds, rss = peak resident MiB)"
