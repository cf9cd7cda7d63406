#!/usr/bin/env bash
# wabridge against the issue's Node reference, in alternating runs so every receiver sees the
# same hours of the VM: each round runs the Node receiver on whatsapp-api-js, the bare Node
# receiver on two processes (Node's best here), then `wabridge serve` (durable), all with the
# same load. Prints one line per run, then each receiver's range.
#
# Usage: [WABRIDGE_BIN=path] bench/load/compare.sh [ROUNDS] [COUNT]   (defaults 3, 100000)
set -euo pipefail

ROUNDS="${1:-3}"
COUNT="${2:-100000}"
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib.sh"
wabridge_bin "$(cd "$HERE/../.." && pwd)"
export WABRIDGE_BIN="$BIN"

RESULTS="$(mktemp)"
trap 'rm -f "$RESULTS"' EXIT

# run NAME CMD...: one run; appends "NAME req/s p99_ms rss_mib" to RESULTS.
run() {
  local name="$1" out
  shift
  out="$("$@" 2>&1)" || { echo "$name failed:" >&2; echo "$out" >&2; exit 1; }
  local rate p99 rss
  rate="$(echo "$out" | sed -n 's/.*: \([0-9]*\) req\/s$/\1/p' | tail -1)"
  p99="$(echo "$out" | awk '/^p99_ms/ {print $2}')"
  rss="$(echo "$out" | sed -n 's/.*peak RSS (VmHWM): \([0-9.]*\) MiB/\1/p')"
  echo "$name $rate $p99 $rss" | tee -a "$RESULTS"
}

echo "receiver req/s p99_ms peak_rss_mib"
for round in $(seq 1 "$ROUNDS"); do
  echo "# round $round"
  run node-whatsapp-api-js bash "$HERE/node.sh" "$COUNT"
  run node-bare-2-processes env RECEIVER=bare WORKERS=2 bash "$HERE/node.sh" "$COUNT"
  run wabridge-durable bash "$HERE/run.sh" "$COUNT"
done

echo "# ranges over $ROUNDS rounds"
python3 - "$RESULTS" <<'PY'
import sys
runs = {}
for line in open(sys.argv[1]):
    name, rate, p99, rss = line.split()
    runs.setdefault(name, []).append((int(rate), float(p99), float(rss)))
for name, rs in runs.items():
    rates, p99s, rsss = zip(*rs)
    print(f"{name}: {min(rates):,}-{max(rates):,} req/s, p99 {min(p99s):.1f}-{max(p99s):.1f} ms, peak RSS {min(rsss):.1f}-{max(rsss):.1f} MiB")
PY
