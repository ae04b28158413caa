#!/usr/bin/env bash
# Runs programs nobody here wrote under LD_PRELOAD=libhotpool_malloc.so and
# checks that their output and exit status match a run without it; runs the
# project's own C test of every exported function. Needs cc, python3,
# sqlite3, sort, git. Takes well under two minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p hotpool-malloc
lib="$PWD/target/release/libhotpool_malloc.so"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=0

pass() { printf 'ok    %s\n' "$1"; }
fail() { printf 'FAIL  %s\n' "$1"; failed=1; }

# The library does not pull in libm: its pages would count in the resident
# memory of every process it is preloaded into.
needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
if [[ " $needed" == *" libm.so"* ]]; then
  fail "needed libraries: $needed(libm among them)"
else
  pass "needed libraries: $needed"
fi

# compare NAME CMD...: stdout and exit status with and without hotpool.
compare() {
  local name="$1"; shift
  local want_rc=0 got_rc=0
  "$@" >"$work/want" 2>"$work/want.err" || want_rc=$?
  LD_PRELOAD="$lib" "$@" >"$work/got" 2>"$work/got.err" || got_rc=$?
  if [[ $want_rc != "$got_rc" ]]; then
    fail "$name: exit status $got_rc under hotpool, $want_rc without"
    tail -5 "$work/got.err"
  elif ! cmp -s "$work/want" "$work/got"; then
    fail "$name: output differs under hotpool"
    diff "$work/want" "$work/got" | head -10
  else
    pass "$name ($(wc -c <"$work/got") bytes of output, exit $got_rc)"
  fi
}

# 1. The project's own test of every exported function.
cc -O2 -Wall -pthread -o "$work/exercise" hotpool-malloc/tests/c/exercise.c
if out="$(LD_PRELOAD="$lib" "$work/exercise")" && [[ $out == "exercise: ok"* ]]; then
  pass "exercise.c: $out"
else
  fail "exercise.c"
fi
# The other paths: no thread caches, one arena, purge at once, the
# background purge thread (absent in fork children).
for conf in tcache:false,narenas:1,decay_ms:0 background_thread:true,decay_ms:5; do
  if out="$(HOTPOOL_CONF=$conf LD_PRELOAD="$lib" "$work/exercise" 2>&1)" && [[ $out == "exercise: ok"* ]]; then
    pass "exercise.c with HOTPOOL_CONF=$conf"
  else
    fail "exercise.c with HOTPOOL_CONF=$conf: $out"
  fi
done
# (an inner shell reports the abort, into the file, and prints the status)
rc="$(bash -c 'LD_PRELOAD="$1" "$2" foreign; echo $?' _ "$lib" "$work/exercise" 2>"$work/foreign.err")"
if [[ $rc == 134 ]] && grep -q "pointer not allocated by hotpool" "$work/foreign.err"; then
  pass "free of a foreign pointer is reported and aborts"
else
  fail "free of a foreign pointer: exit $rc, stderr: $(cat "$work/foreign.err")"
fi

# 2. C++: operator new/delete (plain, array, aligned) reach malloc/free.
cat >"$work/cxx.cc" <<'EOF'
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>
struct alignas(256) Wide { char b[300]; };
int main() {
  std::vector<std::thread> ts;
  unsigned long sums[4] = {};
  for (int t = 0; t < 4; t++)
    ts.emplace_back([t, &sums] {
      std::map<int, std::string> m;
      for (int i = 0; i < 50000; i++) m[i % 5000] = std::string(i % 300 + 1, 'a' + t);
      for (auto &kv : m) sums[t] += kv.second.size();
      auto w = std::make_unique<Wide[]>(10);
      if ((std::uintptr_t)w.get() % 256) sums[t] = 0;
    });
  for (auto &t : ts) t.join();
  for (auto s : sums) std::printf("%lu\n", s);
}
EOF
if command -v c++ >/dev/null; then
  c++ -O2 -pthread -o "$work/cxx" "$work/cxx.cc"
  compare "C++ new/delete with threads" "$work/cxx"
fi

# 3. python3: threads allocating heavily.
cat >"$work/alloc.py" <<'EOF'
import hashlib, threading
def work(seed, out):
    d = {}
    for i in range(60000):
        k = (i * 7919 + seed) % 20000
        d[k] = [str(k)] * (i % 17) + [bytes(i % 2000)]
        if i % 3 == 0:
            d.pop((k * 31) % 20000, None)
    h = hashlib.sha256()
    for k in sorted(d):
        h.update(repr(d[k][:-1]).encode() + d[k][-1])
    out[seed] = h.hexdigest()
out = {}
ts = [threading.Thread(target=work, args=(s, out)) for s in range(8)]
for t in ts: t.start()
for t in ts: t.join()
for s in sorted(out): print(s, out[s])
print(sum(len(str(x)) for x in range(300000)))
EOF
compare "python3 threads allocating" python3 "$work/alloc.py"

# 4. sqlite3: a few thousand inserts and queries.
{
  echo "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL, blob BLOB);"
  echo "BEGIN;"
  for i in $(seq 1 4000); do
    echo "INSERT INTO t(name, v, blob) VALUES('name$((i * 37 % 1000))', $i.5, zeroblob($((i % 500))));"
  done
  echo "COMMIT;"
  echo "CREATE INDEX ti ON t(name);"
  echo "SELECT count(*), sum(v), sum(length(blob)) FROM t;"
  echo "SELECT name, count(*), max(v) FROM t GROUP BY name ORDER BY 2 DESC, 1 LIMIT 20;"
  echo "SELECT a.id, b.id FROM t a JOIN t b ON a.name = b.name AND a.id < b.id ORDER BY a.id, b.id LIMIT 50;"
  for i in $(seq 1 300); do
    echo "SELECT count(*) FROM t WHERE name = 'name$i' OR v < $i;"
  done
  echo "UPDATE t SET blob = zeroblob(5000) WHERE id % 7 = 0;"
  echo "DELETE FROM t WHERE id % 3 = 0;"
  echo "VACUUM;"
  echo "SELECT count(*), sum(length(blob)) FROM t;"
} >"$work/db.sql"
compare "sqlite3 inserts and queries" sh -c "rm -f '$work/db'; sqlite3 '$work/db' <'$work/db.sql'"

# 5. A shell pipeline with sort on a large generated file.
awk 'BEGIN { for (i = 0; i < 600000; i++) printf "%08d %s\n", (i * 2654435761) % 1000003, substr("abcdefghijklmnopqrstuvwxyz", i % 26 + 1, i % 20 + 1) }' >"$work/big.txt"
compare "sort pipeline ($(du -h "$work/big.txt" | cut -f1))" \
  sh -c "sort -k2,2 -k1,1n --parallel=2 '$work/big.txt' | uniq -c -f1 | sort -rn | head -50; sort -u '$work/big.txt' | wc -l"

# 6. HOTPOOL_CONF=stats_print:true: the report appears at exit.
compare "git --version" git --version
if HOTPOOL_CONF=stats_print:true LD_PRELOAD="$lib" git --version 2>"$work/stats.err" >/dev/null &&
  grep -q "hotpool arena statistics" "$work/stats.err" && grep -q "^allocated" "$work/stats.err"; then
  pass "HOTPOOL_CONF=stats_print:true git --version prints the report"
else
  fail "stats_print report missing: $(head -3 "$work/stats.err")"
fi

# 7. HOTPOOL_CONF=stats_signal:SIGUSR2: 20 signals to threads allocating
# in a loop, each sent after the previous report's end marker, give 20
# complete reports, and the program exits normally.
cc -O2 -Wall -pthread -o "$work/signal_loop" hotpool-malloc/tests/c/signal_loop.c
if out="$(python3 - "$lib" "$work/signal_loop" 2>&1 <<'EOF'
import os, signal, subprocess, sys
lib, prog = sys.argv[1], sys.argv[2]
env = dict(os.environ, LD_PRELOAD=lib, HOTPOOL_CONF="stats_signal:SIGUSR2")
p = subprocess.Popen([prog], env=env, stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
assert p.stdout.readline() == "ready\n", "not ready"
for n in range(20):
    p.send_signal(signal.SIGUSR2)
    report = []
    while True:
        line = p.stderr.readline()
        assert line, f"report {n}: stderr ended after {report!r}"
        if line == "___ end of hotpool statistics ___\n":
            break
        report.append(line)
    assert report[0] == "___ hotpool arena statistics ___\n", report[:3]
    assert any(l.startswith("allocated ") for l in report), report
p.stdin.close()
rest = p.stderr.read()
assert p.wait() == 0, f"exit {p.returncode}: {rest}"
assert p.stdout.read() == "done ok\n"
assert "end of hotpool statistics" not in rest, rest
print("20 reports")
EOF
)"; then
  pass "stats_signal:SIGUSR2 under LD_PRELOAD: $out, exit 0"
else
  fail "stats_signal:SIGUSR2 under LD_PRELOAD: $out"
fi

# A signal the program ignores is left alone, with one warning; a fork
# child (no printing thread there) that gets the signal is not killed.
if bash -c "trap '' USR2; HOTPOOL_CONF=stats_signal:USR2 LD_PRELOAD='$lib' ls / >/dev/null" 2>"$work/ign.err" &&
  [[ $(cat "$work/ign.err") == "hotpool: HOTPOOL_CONF: stats_signal: signal 12 already has a handler (or is ignored): left alone, no report on it" ]]; then
  pass "stats_signal on an ignored signal: one warning, left alone"
else
  fail "stats_signal on an ignored signal: $(cat "$work/ign.err")"
fi
if out="$(HOTPOOL_CONF=stats_signal:USR2 LD_PRELOAD="$lib" python3 -c '
import os, signal
pid = os.fork()
if pid == 0:
    os.kill(os.getpid(), signal.SIGUSR2)
    x = [bytes(100) for _ in range(10000)]
    os._exit(7)
print("child exit", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
' 2>/dev/null)" && [[ $out == "child exit 7" ]]; then
  pass "stats_signal in a fork child: the signal does not kill it"
else
  fail "stats_signal in a fork child: $out"
fi

# 8. Memory returns while the program is idle, with default settings: a
# C program frees 4 Mi blocks of 64 B and sleeps decay_ms + 2 s (12 s)
# without calling the allocator; resident memory must come back within
# max(10%, 4 MiB) + 256 KiB of where it was before the burst. glibc's
# figure is printed for comparison (it keeps the burst).
cc -O2 -Wall -o "$work/idle_return" hotpool-malloc/tests/c/idle_return.c
"$work/idle_return" >"$work/idle.glibc" &
glibc_pid=$!
read -r _ before _ peak _ after < <(LD_PRELOAD="$lib" "$work/idle_return")
wait "$glibc_pid"
read -r _ gb _ gp _ ga <"$work/idle.glibc"
allowed=$(( (before / 10 > 4096 ? before / 10 : 4096) + 256 ))
if (( after - before <= allowed )); then
  pass "idle return: RSS ${before} KiB, peak ${peak}, 12 s after the frees ${after} (+$((after - before)) KiB, allowed +${allowed}); glibc: +$((ga - gb)) KiB"
else
  fail "idle return: RSS ${before} KiB, peak ${peak}, 12 s after the frees ${after} (+$((after - before)) KiB, allowed +${allowed})"
fi

# 9. HOTPOOL_CONF=prof:true: a C program built with default flags keeps
# 80 MiB live from three functions (60/30/10 of the bytes); the heap profile
# written at exit (prof_final) gives each its share within 5 points, read
# back with jemalloc's jeprof (Debian: libjemalloc-dev).
cc -O2 -Wall -o "$work/prof_split" hotpool-malloc/tests/c/prof_split.c
if ! command -v jeprof >/dev/null; then
  printf 'skip  prof_split.c: jeprof not found (apt-get install libjemalloc-dev)\n'
elif ! HOTPOOL_CONF="prof:true,lg_prof_sample:14,prof_final:true,prof_prefix:$work/cprof" \
    LD_PRELOAD="$lib" "$work/prof_split" >/dev/null; then
  fail "prof_split.c under prof:true did not run"
else
  dumps=("$work"/cprof.*.heap)
  if [[ ${#dumps[@]} != 1 || ! -s ${dumps[0]} ]]; then
    fail "prof_final: want one dump, got: ${dumps[*]}"
  elif ! jeprof --text --nodefraction=0 "$work/prof_split" "${dumps[0]}" >"$work/jeprof.txt" 2>"$work/jeprof.err"; then
    fail "jeprof --text failed: $(tail -3 "$work/jeprof.err")"
  elif shares="$(awk '
      $6 ~ /sixty_percent_site/ { s = $5 } $6 ~ /thirty_percent_site/ { t = $5 }
      $6 ~ /ten_percent_site/ { e = $5 }
      END { gsub("%", "", s); gsub("%", "", t); gsub("%", "", e)
            ok = (s != "" && t != "" && e != "" && (s-60)^2 <= 25 && (t-30)^2 <= 25 && (e-10)^2 <= 25)
            printf "%s/%s/%s%%", s, t, e; exit !ok }' "$work/jeprof.txt")"; then
    pass "prof_split.c: jeprof attributes live bytes $shares (want 60/30/10 +- 5)"
  else
    fail "prof_split.c: jeprof shares $shares, want 60/30/10 +- 5:"
    head -20 "$work/jeprof.txt"
  fi
fi

if [[ $failed != 0 ]]; then
  echo "preload-test: FAILED"
  exit 1
fi
echo "preload-test: all passed"
