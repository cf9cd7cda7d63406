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
set -euo pipefail

COUNT="${1:-200000}"
CONNS="${2:-64}"
THREADS="${3:-2}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/bench/load"

if [ "$COUNT" -lt 10000 ]; then echo "COUNT must be at least 10000" >&2; exit 2; fi

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (apt-get)..." >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi

# WABRIDGE_BIN: a wabridge binary already built (skips the release build).
if [ -n "${WABRIDGE_BIN:-}" ]; then
  BIN="$WABRIDGE_BIN"
else
  cargo build --release -p wabridge --manifest-path "$ROOT/Cargo.toml" >&2
  BIN="$ROOT/target/release/wabridge"
fi

WORK="$(mktemp -d)"
DATA="$WORK/data"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Flush what earlier runs left dirty in the page cache: its writeback would compete with our fsyncs.
sync

# Start the server on a free port; it prints "listening on http://ADDR".
"$BIN" serve --addr 127.0.0.1:0 --data "$DATA" >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$WORK/server.out" 2>/dev/null && break
  sleep 0.1
done
URL="$(sed -n 's/^listening on //p' "$WORK/server.out" | head -1)"
if [ -z "$URL" ]; then echo "server did not start:" >&2; cat "$WORK/server.err" >&2; exit 1; fi

"${LOADGEN_BIN:-$BIN}" loadgen --count "$COUNT" --out "$WORK/bodies.tsv" --data "$DATA" 2>&1 | tee "$WORK/loadgen.out" >&2
CUSTOMERS="$(sed -n 's/.* from \([0-9]*\) customers .*/\1/p' "$WORK/loadgen.out")"
if [ -z "$CUSTOMERS" ]; then echo "loadgen did not say how many customers it used" >&2; exit 1; fi

echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f MiB", $2/1024}' /proc/meminfo), load avg $(cut -d' ' -f1-3 /proc/loadavg); wrk on the same cores" >&2
echo "== wrk -t$THREADS -c$CONNS, $COUNT unique signed bodies, $URL/webhook" >&2
# The machine's CPU seconds during the run, steal included (time the hypervisor gave to other
# guests), so a slow VM hour can be told apart from a slow build.
CPU_BEFORE="$(head -1 /proc/stat)"
wrk -t"$THREADS" -c"$CONNS" -d"$((COUNT / 5000 + 10))s" --latency --timeout 10s -s "$HERE/load.lua" "$URL" -- "$WORK/bodies.tsv" "$THREADS" | tee "$WORK/wrk.out"

python3 - "$CPU_BEFORE" "$(head -1 /proc/stat)" <<'PY' >&2
import sys
names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
before, after = ([int(v) for v in line.split()[1:9]] for line in sys.argv[1:3])
delta = [a - b for a, b in zip(after, before)]
# Seconds of CPU (USER_HZ = 100), not shares: wrk's window runs on past the burst, idle.
print("== CPU seconds during wrk's window: " + ", ".join(f"{n} {d / 100:.1f}" for n, d in zip(names, delta) if d))
PY
echo "(wrk stops each thread once its share is answered, but its Requests/sec divides by the whole -d window: read the server-side rate below)" >&2
PEAK_KB="$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")"

# Let the consumer drain the queue, then compare what was accepted with what was sent.
for _ in $(seq 1 600); do
  STATS="$("$BIN" stats --data "$DATA")"
  PENDING="$(python3 -c 'import json,sys; s=json.loads(sys.argv[1]); q=s["events_queue"]; print(q["visible"]+q["hidden"])' "$STATS")"
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
print(f"unique ids sent: {unique}; dedupe keys: {stats['dedupe_keys']}; activity records: {stats['records_by_kind']['activity']}; contacts: {stats['records_by_kind']['contact']}; dead letters: {stats['events_queue']['dead']}")
ok = stats["dedupe_keys"] == unique and stats["records_by_kind"]["activity"] == unique and stats["events_queue"]["dead"] == 0
# Each customer is one contact: a duplicate would mean two deliveries of one customer raced.
ok = ok and stats["records_by_kind"]["contact"] == customers
print(f"customers: {customers}")
print("no loss, no duplicates: " + ("OK" if ok else "MISMATCH"))
sys.exit(0 if ok else 1)
PY
