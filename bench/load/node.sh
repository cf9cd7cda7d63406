#!/usr/bin/env bash
# The issue's reference for the load test, measured on this machine with the same load as
# run.sh: a Node receiver on whatsapp-api-js (bench/load/node-receiver) that checks the signature
# and parses each POST and stores nothing. Run it beside run.sh, alternating, to compare the two
# in the same hour of the VM. Reports requests/s (first to last answered POST), wrk's latency
# percentiles and the receiver's peak RSS, and checks that every POST got a 200.
#
# Usage: [WABRIDGE_BIN=path] [RECEIVER=bare] bench/load/node.sh [COUNT] [CONNECTIONS] [THREADS]
#   WABRIDGE_BIN  the binary whose `loadgen` makes the bodies (default: a release build)
#   RECEIVER=bare node:crypto HMAC + JSON.parse without the library (the least Node can do)
#   WORKERS=N     N receiver processes sharing the port (node:cluster), default 1
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/bench/load"
. "$HERE/lib.sh"
load_setup "$@"
command -v node >/dev/null || { echo "node is required (Debian: apt-get install nodejs npm)" >&2; exit 1; }
# The library's version is pinned in package-lock.json.
npm ci --prefix "$HERE/node-receiver" --no-audit --no-fund --silent >&2

wabridge_bin "$ROOT"

WORK="$(mktemp -d)"
cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT

# A throwaway secret for this run only: the receiver checks the signatures loadgen makes with it.
WHATSAPP_APP_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export WHATSAPP_APP_SECRET

start_server "$WORK/server.out" "$WORK/server.err" node "$HERE/node-receiver/server.mjs" 127.0.0.1:0
"$BIN" loadgen --count "$COUNT" --out "$WORK/bodies.tsv" --data "$WORK" >&2

run_wrk "$WORK/bodies.tsv" "$COUNT" "$CONNS" "$THREADS" "$WORK/wrk.out"
# Summed over the primary and its workers (each one's own peak).
PEAK_KB="$(for p in "$SERVER_PID" $(pgrep -P "$SERVER_PID"); do peak_rss_kb "$p"; done | awk '{s += $1} END {print s}')"

# The workers report their counters every 100 ms.
sleep 0.5
STATS="$(curl -fsS "$URL/stats")"
UNIQUE="$(awk '/^unique_ids_sent/ {print $2}' "$WORK/wrk.out")"
python3 - "$STATS" "$UNIQUE" "$PEAK_KB" <<'PY'
import json, sys
stats, unique, peak_kb = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
span = (stats["last_ms"] - stats["first_ms"]) / 1000
print(f"receiver peak RSS (VmHWM): {peak_kb/1024:.1f} MiB")
if span > 0:
    print(f"answered {stats['ok']} POSTs with 200 in {span:.2f} s (first to last, nothing stored): {stats['ok']/span:.0f} req/s")
print(f"unique ids sent: {unique}; 200: {stats['ok']}; refused: {stats['failed']}")
ok = stats["ok"] == unique and stats["failed"] == 0
print("every POST verified and parsed: " + ("OK" if ok else "MISMATCH"))
sys.exit(0 if ok else 1)
PY
