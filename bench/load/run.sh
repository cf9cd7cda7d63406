#!/usr/bin/env bash
# Load test of `wabridge serve`: signed webhook POSTs, each with a unique message id, acknowledged
# durably (SQLite WAL, synchronous=FULL, group commit). Reports requests/s, latency percentiles,
# the server's peak RSS, and checks that every unique id was accepted exactly once (no loss) and
# that each customer became exactly one contact.
#
# Usage: [WABRIDGE_BIN=path] [LOADGEN_BIN=path] bench/load/run.sh [COUNT] [CONNECTIONS] [THREADS]
#   LOADGEN_BIN  the binary whose `loadgen` makes the bodies (default: the server's), so two
#                builds can be compared on the same kind of load
#   COUNT        unique payloads to send (default 200000, at least 10000)
#   CONNECTIONS  wrk connections (default 64)
#   THREADS      wrk threads (default 2)
#   LOADGEN_NUMBERS=2  bodies alternate between two business numbers (bench/load/routing.sh);
#                the server takes WABRIDGE_NUMBERS and the tokens from this environment
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/bench/load"
. "$HERE/lib.sh"
load_setup "$@"

# WABRIDGE_BIN: a wabridge binary already built (skips the release build).
wabridge_bin "$ROOT"

WORK="$(mktemp -d)"
DATA="$WORK/data"
cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT

# Flush what earlier runs left dirty in the page cache: its writeback would compete with our fsyncs.
sync

# Start the server on a free port; it prints "listening on http://ADDR".
start_server "$WORK/server.out" "$WORK/server.err" "$BIN" serve --addr 127.0.0.1:0 --data "$DATA"

LOADGEN_ARGS=()
[ -n "${LOADGEN_NUMBERS:-}" ] && LOADGEN_ARGS=(--numbers "$LOADGEN_NUMBERS")
"${LOADGEN_BIN:-$BIN}" loadgen --count "$COUNT" "${LOADGEN_ARGS[@]}" --out "$WORK/bodies.tsv" --data "$DATA" 2>&1 | tee "$WORK/loadgen.out" >&2
CUSTOMERS="$(sed -n 's/.* from \([0-9]*\) customers .*/\1/p' "$WORK/loadgen.out")"
if [ -z "$CUSTOMERS" ]; then echo "loadgen did not say how many customers it used" >&2; exit 1; fi

run_wrk "$WORK/bodies.tsv" "$COUNT" "$CONNS" "$THREADS" "$WORK/wrk.out"
PEAK_KB="$(peak_rss_kb "$SERVER_PID")"

# Let the consumers drain every queue (events, and destinations when there are), then compare
# what was accepted with what was sent.
for _ in $(seq 1 600); do
  STATS="$("$BIN" stats --data "$DATA")"
  PENDING="$(python3 -c 'import json,sys; s=json.loads(sys.argv[1]); qs=[s["events_queue"]]+list(s.get("queues",{}).values()); print(sum(q["visible"]+q["hidden"] for q in qs))' "$STATS")"
  [ "$PENDING" = "0" ] && break
  sleep 0.5
done
UNIQUE="$(awk '/^unique_ids_sent/ {print $2}' "$WORK/wrk.out")"
python3 - "$STATS" "$UNIQUE" "$PEAK_KB" "$CUSTOMERS" <<'PY'
import json, sys
stats, unique, peak_kb = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
customers = int(sys.argv[4])
span = stats["accept_span_ms"] / 1000
print(f"server peak RSS (VmHWM): {peak_kb/1024:.1f} MiB")
if span > 0:
    print(f"accepted {stats['dedupe_keys']} unique events in {span:.2f} s (first to last durable accept): {stats['dedupe_keys']/span:.0f} req/s")
dead = stats["events_queue"]["dead"] + sum(q["dead"] for q in stats.get("queues", {}).values())
print(f"unique ids sent: {unique}; dedupe keys: {stats['dedupe_keys']}; activity records: {stats['records_by_kind']['activity']}; contacts: {stats['records_by_kind']['contact']}; dead letters: {dead}")
ok = stats["dedupe_keys"] == unique and stats["records_by_kind"]["activity"] == unique and dead == 0
# Each customer is one contact: a duplicate would mean two deliveries of one customer raced.
ok = ok and stats["records_by_kind"]["contact"] == customers
print(f"customers: {customers}")
print("no loss, no duplicates: " + ("OK" if ok else "MISMATCH"))
sys.exit(0 if ok else 1)
PY
