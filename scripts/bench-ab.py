#!/usr/bin/env python3
"""Compares two builds of the criterion benches in one run.

Builds the bench binaries of two git revisions (each in a worktree of its
own under target/bench-ab/), then runs the chosen benchmarks of both,
interleaved round by round (A, B, A, B, ...), so a noisy spell of the
machine falls on both, and prints the median of each benchmark per build
and the ratio B/A.

    scripts/bench-ab.py REV_A REV_B [--rounds 9] [--bench pool=REGEX] ...
    scripts/bench-ab.py A B --exe-a pool=PATH --exe-a arena=PATH ...

`--exe-a` / `--exe-b` name bench binaries already built (for example by
`cargo bench --no-run` in a checkout of that revision); a revision whose
binaries are all given is not built, and REV_A / REV_B are then labels.
`--env-a` / `--env-b` set environment variables for one side only: the
same binary with and without a setting, for example

    scripts/bench-ab.py off prof --exe-a arena=EXE --exe-b arena=EXE \
        --env-b HOTPOOL_CONF=prof:true --bench 'arena=^arena/.*/hotpool$'

Default benchmarks: the pool's same-thread pair and batch rows and the
arena's churn row (issue 12's "no speed lost" rows).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

DEFAULT = [
    "pool=^(pair|batch-(lifo|fifo|random))/(64|512|4096)/hotpool$",
    "arena=^arena/churn/hotpool$",
]
TIME = re.compile(r"^(\S+)\s*\n?\s*time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", re.M)
UNIT = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}


def sh(*args, **kw):
    return subprocess.run(args, check=True, text=True, **kw)


def build(top, rev, benches):
    """The bench binaries of `rev`: {bench name: path}."""
    tree = os.path.join(top, "target", "bench-ab", rev.replace("/", "_"))
    if not os.path.isdir(tree):
        sh("git", "-C", top, "worktree", "add", "-q", "--detach", tree, rev)
    else:
        sh("git", "-C", tree, "checkout", "-q", "--detach", rev)
    # The benches moved into the hotpool-bench member; older revisions
    # keep them in the root package.
    pkg = ["-p", "hotpool-bench"] if os.path.isdir(os.path.join(tree, "hotpool-bench")) else []
    out = {}
    for b in benches:
        res = sh("cargo", "bench", *pkg, "--no-run", "--bench", b, "--message-format=json",
                 cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        for line in res.stdout.splitlines():
            if '"executable":"' in line and '"name":"%s"' % b in line:
                out[b] = re.search(r'"executable":"([^"]+)"', line).group(1)
    return out


def run(exe, regex, secs, env):
    res = sh(exe, "--bench", regex, "--noplot", "--warm-up-time", "1",
             "--measurement-time", str(secs), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
             env={**os.environ, **env})
    return {m.group(1): float(m.group(2)) * UNIT[m.group(3)] for m in TIME.finditer(res.stdout)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rev_a")
    ap.add_argument("rev_b")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--seconds", type=int, default=2, help="measurement time per benchmark")
    ap.add_argument("--bench", action="append", help="BENCH=REGEX (repeatable)")
    ap.add_argument("--exe-a", action="append", default=[], help="BENCH=PATH, a prebuilt binary of A")
    ap.add_argument("--exe-b", action="append", default=[], help="BENCH=PATH, a prebuilt binary of B")
    ap.add_argument("--env-a", action="append", default=[], help="KEY=VALUE, set for A's runs only")
    ap.add_argument("--env-b", action="append", default=[], help="KEY=VALUE, set for B's runs only")
    args = ap.parse_args()
    top = sh("git", "rev-parse", "--show-toplevel", stdout=subprocess.PIPE).stdout.strip()
    wanted = [s.split("=", 1) for s in (args.bench or DEFAULT)]
    needed = sorted({b for b, _ in wanted})
    exes = {}
    for rev, given in ((args.rev_a, args.exe_a), (args.rev_b, args.exe_b)):
        exes[rev] = dict(g.split("=", 1) for g in given)
        if any(b not in exes[rev] for b in needed):
            exes[rev] = {**build(top, rev, needed), **exes[rev]}
    envs = {args.rev_a: dict(e.split("=", 1) for e in args.env_a),
            args.rev_b: dict(e.split("=", 1) for e in args.env_b)}
    samples = {}
    for r in range(args.rounds):
        for rev in (args.rev_a, args.rev_b):
            for bench, regex in wanted:
                for name, ns in run(exes[rev][bench], regex, args.seconds, envs[rev]).items():
                    samples.setdefault(name, {}).setdefault(rev, []).append(ns)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"{'benchmark':34} {'A ns':>10} {'B ns':>10} {'B/A':>7}   (medians of {args.rounds}; A={args.rev_a}, B={args.rev_b})")
    for name in sorted(samples):
        a = statistics.median(samples[name].get(args.rev_a, [float('nan')]))
        b = statistics.median(samples[name].get(args.rev_b, [float('nan')]))
        print(f"{name:34} {a:10.2f} {b:10.2f} {b / a:7.3f}")


if __name__ == "__main__":
    main()
