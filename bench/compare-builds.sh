#!/usr/bin/env bash
# Two builds of wabridge side by side, in alternating rounds, on the same load: the durable ingest
# load test (bench/load/run.sh), the crm-sync benchmark (bench_crm_sync_against_a_50ms_crm) and
# the sender's burst (sends_burst). Written for issue 18: "throughput stays within 5 % of today's
# figures, old build against new". The machine is shared and noisy, so every round runs OLD then
# NEW back to back, and the verdict is on the medians over the rounds.
#
# Usage: bench/compare-builds.sh [OLD] [NEW]          (defaults f2876dd and HEAD)
#   ROUNDS=3         rounds; each round runs every benchmark once per build (old first)
#   COUNT=100000     unique webhooks per ingest run; CONNS=64, THREADS=2 as run.sh
#   SENDER=1         rounds that also run the sender's burst (25 s per build); 0 skips it. Its
#                    rate limiter sets its rate (80/s), so one round shows whether it still holds
#   QUIET_WAIT=60    seconds to wait, before each old/new pair, for other builds (rustc) to end
#   THRESHOLD=5      percent: exit 1 when NEW's median is more than this below OLD's
#   COMPARE_DIR=target/compare   sources and target dirs per commit, kept for fast re-runs
#   BUILD_ONLY=1     build both and stop
#   LOADGEN_BIN      the `wabridge loadgen` that writes both builds' bodies (default OLD's)
#
# Each revision is exported with `git archive` into COMPARE_DIR/<commit>/src (once: a commit never
# changes) and built there with its own CARGO_TARGET_DIR, COMPARE_DIR/<commit>/target. A re-run
# of the same commits builds nothing; a new commit's target dir starts as a copy of the newest one
# already there, so only what changed is compiled. No worktree is registered in the repository. The harness
# (bench/load/run.sh, lib.sh, load.lua) is this checkout's, the same for both builds, and both
# servers get bodies from the same generator (LOADGEN_BIN, default OLD's `wabridge loadgen`).
#
# Exit status: 0 all gated medians within THRESHOLD; 1 a gated median of NEW is below it;
# 3 a run failed (for ingest, this includes a lost or duplicated event).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OLD_REV="${1:-f2876dd}"
NEW_REV="${2:-HEAD}"
ROUNDS="${ROUNDS:-3}"
COUNT="${COUNT:-100000}"
CONNS="${CONNS:-64}"
THREADS="${THREADS:-2}"
SENDER="${SENDER:-1}"
QUIET_WAIT="${QUIET_WAIT:-60}"
THRESHOLD="${THRESHOLD:-5}"
COMPARE_DIR="${COMPARE_DIR:-$ROOT/target/compare}"
CRM_TEST=bench_crm_sync_against_a_50ms_crm

. "$ROOT/bench/load/lib.sh"
need_wrk

OLD="$(git -C "$ROOT" rev-parse --verify "$OLD_REV^{commit}")"
NEW="$(git -C "$ROOT" rev-parse --verify "$NEW_REV^{commit}")"

# prepare COMMIT: sources and builds for one commit; sets BIN, TESTBIN, PKGDIR for it.
prepare() {
  local commit="$1" dir="$COMPARE_DIR/${1:0:12}"
  local src="$dir/src"
  if [ ! -f "$dir/src.done" ]; then
    rm -rf "$src"
    mkdir -p "$src"
    git -C "$ROOT" archive "$commit" | tar -x -C "$src"
    touch "$dir/src.done"
  fi
  # The crm-sync benchmark moved between packages in the crate split: find its file, its package
  # (the nearest Cargo.toml with a [package]) and its test target (tests/<target>/...).
  local file pkgdir rel pkg target
  file="$(git -C "$ROOT" grep -l "fn $CRM_TEST" "$commit" -- '*.rs' | head -1)"
  file="${file#"$commit":}"
  [ -n "$file" ] || { echo "no $CRM_TEST in $commit" >&2; exit 3; }
  pkgdir="$(dirname "$src/$file")"
  until grep -qs '^\[package\]' "$pkgdir/Cargo.toml"; do pkgdir="$(dirname "$pkgdir")"; done
  rel="${src}/${file}"
  rel="${rel#"$pkgdir"/tests/}"
  target="${rel%%/*}"
  pkg="$(sed -n 's/^name = "\(.*\)"/\1/p' "$pkgdir/Cargo.toml" | head -1)"
  # A commit built for the first time starts from a copy of the newest other target dir here, so
  # only what changed is compiled (main moves; its dependencies mostly do not).
  if [ ! -d "$dir/target" ]; then
    local seed
    seed="$(ls -dt "$COMPARE_DIR"/*/target 2>/dev/null | grep -v "^$dir/" | head -1 || true)"
    if [ -n "$seed" ]; then
      echo "== ${commit:0:12}: seeding its target dir from $seed" >&2
      cp -a "$seed" "$dir/target"
    fi
  fi
  echo "== ${commit:0:12}: building wabridge and $pkg's test target $target (release) in $dir" >&2
  (
    cd "$src"
    export CARGO_TARGET_DIR="$dir/target"
    cargo build --release -p wabridge >&2
    cargo test --release -p "$pkg" --test "$target" --no-run --message-format=json 2>/dev/null \
      | python3 -c '
import json, sys
target = sys.argv[1]
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == target:
        print(m["executable"])' "$target" >"$dir/testbin"
  )
  [ -s "$dir/testbin" ] || { echo "no test binary for $pkg/$target (run the cargo test command by hand to see why)" >&2; exit 3; }
  BIN="$dir/target/release/wabridge"
  TESTBIN="$(cat "$dir/testbin")"
  PKGDIR="$pkgdir"
}

prepare "$OLD"
OLD_BIN="$BIN" OLD_TESTBIN="$TESTBIN" OLD_PKGDIR="$PKGDIR"
prepare "$NEW"
NEW_BIN="$BIN" NEW_TESTBIN="$TESTBIN" NEW_PKGDIR="$PKGDIR"
LOADGEN_BIN="${LOADGEN_BIN:-$OLD_BIN}"
[ "${BUILD_ONLY:-0}" = 1 ] && { echo "built: $OLD_BIN $NEW_BIN"; exit 0; }

LOGS="$(mktemp -d)"
RESULTS="$LOGS/results"
: >"$RESULTS"
FAILED=0

# What else was running: the 1-minute load average and how many rustc processes (other builds).
machine() {
  echo "load $(cut -d' ' -f1 /proc/loadavg) rustc $(pgrep -c -x rustc || true)"
}

# record ROUND BUILD METRIC VALUE BEFORE AFTER: one figure, with the machine before and after.
record() {
  echo "$1 $2 $3 $4 $5 $6" >>"$RESULTS"
}

ingest() {
  local round="$1" build="$2" bin="$3" log="$LOGS/ingest-$1-$2.log" before after rate p99 rss steal iowait
  before="$(machine)"
  if ! WABRIDGE_BIN="$bin" LOADGEN_BIN="$LOADGEN_BIN" bash "$ROOT/bench/load/run.sh" "$COUNT" "$CONNS" "$THREADS" >"$log" 2>&1; then
    echo "  ingest $build FAILED (log: $log)"; tail -5 "$log"; FAILED=1; return
  fi
  after="$(machine)"
  rate="$(sed -n 's/.*: \([0-9]*\) req\/s$/\1/p' "$log" | tail -1)"
  p99="$(awk '/^p99_ms/ {print $2}' "$log")"
  rss="$(sed -n 's/.*peak RSS (VmHWM): \([0-9.]*\) MiB/\1/p' "$log")"
  steal="$(sed -n 's/^== CPU seconds.* steal \([0-9.]*\).*/\1/p' "$log" | tail -1)"
  iowait="$(sed -n 's/^== CPU seconds.* iowait \([0-9.]*\).*/\1/p' "$log" | tail -1)"
  record "$round" "$build" ingest_req_s "$rate" "${before// /_}" "${after// /_}"
  record "$round" "$build" ingest_p99_ms "$p99" - -
  record "$round" "$build" ingest_rss_mib "$rss" - -
  # CPU seconds of the whole machine during wrk's window: iowait and steal show a busy disk or VM.
  printf '  ingest   %-3s %6s req/s  p99 %7s ms  RSS %5s MiB  iowait %4s s, steal %4s s  [before: %s; after: %s]\n' \
    "$build" "$rate" "$p99" "$rss" "${iowait:-0}" "${steal:-0}" "$before" "$after"
}

crm() {
  local round="$1" build="$2" testbin="$3" pkgdir="$4" log="$LOGS/crm-$1-$2.log" before after
  before="$(machine)"
  if ! (cd "$pkgdir" && "$testbin" --ignored --nocapture --test-threads=1 --exact "$(crm_path "$testbin")") >"$log" 2>&1; then
    echo "  crm-sync $build FAILED (log: $log)"; tail -5 "$log"; FAILED=1; return
  fi
  after="$(machine)"
  # "BENCH hubspot workers=1x128: 3000 events in 3.58s = 837 events/s (... calls of 50 ms ...)"
  # The first BENCH line follows the test's name on the same line ("test ...bench... ... BENCH").
  sed -n 's/^.*BENCH \([a-z]*\) workers=\([0-9x]*\): .* = \([0-9]*\) events\/s ([0-9]* CRM calls of \([0-9]*\) ms.*/\1_\2_\4ms \3/p' "$log" |
    while read -r name rate; do record "$round" "$build" "crm_${name}_ev_s" "$rate" "${before// /_}" "${after// /_}"; done
  printf '  crm-sync %-3s %s  [before: %s; after: %s]\n' "$build" \
    "$(sed -n 's/^.*BENCH \([a-z]*\) workers=\([0-9x]*\): .* = \([0-9]*\) events\/s ([0-9]* CRM calls of \([0-9]*\) ms.*/\1 \2 \4ms: \3;/p' "$log" | tr '\n' ' ')" "$before" "$after"
}

# crm_path TESTBIN: the benchmark's full test name in that binary (its module moved in the split).
crm_path() {
  "$1" --ignored --list 2>/dev/null | sed -n "s/^\(.*$CRM_TEST\): test$/\1/p" | head -1
}

sender() {
  local round="$1" build="$2" testbin="$3" pkgdir="$4" log="$LOGS/sender-$1-$2.log" before after rate peak
  before="$(machine)"
  if ! (cd "$pkgdir" && "$testbin" --nocapture --test-threads=1 sends_burst::) >"$log" 2>&1; then
    echo "  sender $build FAILED (log: $log)"; tail -5 "$log"; FAILED=1; return
  fi
  after="$(machine)"
  # "burst: measured 80.00/s over 24.99 s (error +0.00%), peak 82 in any 1 s window, wall 24.99 s"
  rate="$(sed -n 's/^burst: measured \([0-9.]*\)\/s .*/\1/p' "$log")"
  peak="$(sed -n 's/.* peak \([0-9]*\) in any 1 s window.*/\1/p' "$log")"
  record "$round" "$build" sender_msg_s "$rate" "${before// /_}" "${after// /_}"
  printf '  sender   %-3s %s msg/s, peak %s in any 1 s  [before: %s; after: %s]\n' "$build" "$rate" "$peak" "$before" "$after"
}

# quiet: waits up to QUIET_WAIT seconds for no rustc to be running (other builds on the machine).
quiet() {
  local waited=0
  while [ "$waited" -lt "$QUIET_WAIT" ] && pgrep -x rustc >/dev/null; do
    sleep 5
    waited=$((waited + 5))
  done
  [ "$waited" -gt 0 ] && echo "  (waited ${waited} s for other builds; $(machine))"
  return 0
}

echo "# compare-builds $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
echo "# old ${OLD:0:12} ($OLD_REV): $OLD_BIN"
echo "# new ${NEW:0:12} ($NEW_REV): $NEW_BIN"
echo "# ingest: bench/load/run.sh $COUNT $CONNS $THREADS, bodies from $LOADGEN_BIN; rounds: $ROUNDS; logs: $LOGS"
START=$SECONDS
for round in $(seq 1 "$ROUNDS"); do
  echo "# round $round ($(uptime | sed 's/.*load average/load average/'))"
  quiet
  ingest "$round" old "$OLD_BIN"
  ingest "$round" new "$NEW_BIN"
  quiet
  crm "$round" old "$OLD_TESTBIN" "$OLD_PKGDIR"
  crm "$round" new "$NEW_TESTBIN" "$NEW_PKGDIR"
  if [ "$round" -le "$SENDER" ]; then
    sender "$round" old "$OLD_TESTBIN" "$OLD_PKGDIR"
    sender "$round" new "$NEW_TESTBIN" "$NEW_PKGDIR"
  fi
done
echo "# $ROUNDS rounds in $(( (SECONDS - START) / 60 )) min $(( (SECONDS - START) % 60 )) s"

set +e
python3 - "$RESULTS" "$THRESHOLD" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
threshold = float(sys.argv[2])
figures, order = {}, []
heavy = []
for round_, build, metric, value, before, after in rows:
    if metric not in figures:
        order.append(metric)
    figures.setdefault(metric, {}).setdefault(build, []).append(float(value))
    run = f"round {round_} {build} {metric.split('_')[0]}"
    if before != "-" and not any(h.startswith(run + ":") for h in heavy):
        marks = []
        for when, m in (("before", before), ("after", after)):
            _, load, _, rustc = m.split("_")
            # Our own runs keep the 1-min load near 2-4 on their own: a rustc is the sure sign.
            if float(load) > 4.0 or int(rustc) > 0:
                marks.append(f"{when}: load {load}, {rustc} rustc")
        if marks:
            heavy.append(f"{run}: " + "; ".join(marks))
# Throughputs are gated (higher is better); p99 and RSS are shown only.
gated = lambda m: m.endswith("_req_s") or m.endswith("_ev_s") or m.endswith("_msg_s")
print(f"# median (range) over the rounds; new/old of the medians, gated for throughputs (at most {threshold:g} % below old); new/old in each round")
worst = None
for m in order:
    old, new = figures[m].get("old", []), figures[m].get("new", [])
    if not old or not new:
        print(f"{m}: missing runs (old {len(old)}, new {len(new)})")
        continue
    mo, mn = statistics.median(old), statistics.median(new)
    ratio = mn / mo if mo else float("nan")
    # Each round's new/old: the two ran minutes apart, so this cancels the VM's slow drifts.
    pairs = [n / o for o, n in zip(old, new) if o]
    fmt = lambda v: f"{v:,.2f}" if v < 100 else f"{v:,.0f}"
    verdict = ""
    if gated(m):
        ok = ratio >= 1 - threshold / 100
        verdict = "  within" if ok else "  BELOW"
        if not ok:
            worst = m
    paired = f"  per round {' '.join(f'{r:.2f}' for r in pairs)}" if len(pairs) > 1 else ""
    print(f"{m:<30} old {fmt(mo):>7} ({fmt(min(old))}-{fmt(max(old))})  new {fmt(mn):>7} ({fmt(min(new))}-{fmt(max(new))})  new/old {ratio:.3f}{verdict}{paired}")
if heavy:
    print("# runs with other work on the machine (a rustc running, or a 1-min load over 4):")
    for h in heavy:
        print("  " + h)
sys.exit(1 if worst else 0)
PY
STATUS=$?
[ "$FAILED" = 1 ] && { echo "# a run failed: see the logs in $LOGS"; exit 3; }
exit "$STATUS"
