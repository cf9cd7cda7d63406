#!/usr/bin/env bash
# Routing and fan-out (issue 21) on the ingest load test: the same build, the same load (bodies
# alternating between two business numbers), three setups side by side, alternating in rounds:
#   one    no registry: today's single number (every event to the one CRM)
#   two    a registry of two numbers (bench/load/numbers.toml), each routed to its own CRM target
#   relay  the same two numbers plus one relay destination (Meta's payload re-signed) to a bot:
#          the Node receiver of node.sh (RECEIVER=bare by default: node:crypto's HMAC over the
#          raw bytes; BOT_RECEIVER=library verifies with whatsapp-api-js), on the same 2 cores
# Each run is bench/load/run.sh (durable accepts, loss and duplicate checks, every queue drained);
# the relay run also checks that the bot answered 200 to exactly one delivery per webhook.
#
# Usage: [WABRIDGE_BIN=path] [ROUNDS=3] bench/load/routing.sh [COUNT] [CONNECTIONS] [THREADS]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/bench/load"
. "$HERE/lib.sh"
load_setup "$@"
ROUNDS="${ROUNDS:-3}"
command -v node >/dev/null || { echo "node is required (Debian: apt-get install nodejs npm)" >&2; exit 1; }
npm ci --prefix "$HERE/node-receiver" --no-audit --no-fund --silent >&2
wabridge_bin "$ROOT"
export WABRIDGE_BIN="$BIN"

WORK="$(mktemp -d)"
BOT_PID=""
cleanup() {
  [ -n "$BOT_PID" ] && kill "$BOT_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The numbers' tokens and the bot's secret, by the key names bench/load/numbers.toml gives.
export WHATSAPP_ACCESS_TOKEN_MX="bench-token-mx" WHATSAPP_ACCESS_TOKEN_CO="bench-token-co"
BOT_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export BOT_SECRET

# one_run MODE: prints the run's req/s (and fails the script on a failed check).
one_run() {
  local mode="$1" out="$WORK/$1.out"
  case "$mode" in
    one) env -u WABRIDGE_NUMBERS LOADGEN_NUMBERS=2 bash "$HERE/run.sh" "$COUNT" "$CONNS" "$THREADS" >"$out" 2>&1 ;;
    two) WABRIDGE_NUMBERS="$HERE/numbers.toml" LOADGEN_NUMBERS=2 bash "$HERE/run.sh" "$COUNT" "$CONNS" "$THREADS" >"$out" 2>&1 ;;
    relay)
      local bot_out="$WORK/bot.out"
      : >"$bot_out"
      RECEIVER="${BOT_RECEIVER:-bare}" WHATSAPP_APP_SECRET="$BOT_SECRET" \
        node "$HERE/node-receiver/server.mjs" 127.0.0.1:0 >"$bot_out" 2>"$WORK/bot.err" &
      BOT_PID=$!
      for _ in $(seq 1 100); do grep -q '^listening on ' "$bot_out" && break; sleep 0.1; done
      local bot_url
      bot_url="$(sed -n 's/^listening on //p' "$bot_out" | head -1)"
      [ -n "$bot_url" ] || { echo "bot did not start" >&2; cat "$WORK/bot.err" >&2; exit 3; }
      { cat "$HERE/numbers.toml"
        printf '\n[[destination]]\nname = "bot"\nkind = "relay"\nurl = "%s/webhook"\nsecret_key = "BOT_SECRET"\nevents = ["messages"]\n' "$bot_url"
      } >"$WORK/numbers-relay.toml"
      WABRIDGE_NUMBERS="$WORK/numbers-relay.toml" LOADGEN_NUMBERS=2 bash "$HERE/run.sh" "$COUNT" "$CONNS" "$THREADS" >"$out" 2>&1 || { cat "$out" >&2; exit 3; }
      sleep 0.5
      local stats
      stats="$(curl -fsS "$bot_url/stats")"
      kill "$BOT_PID" 2>/dev/null || true
      wait "$BOT_PID" 2>/dev/null || true
      BOT_PID=""
      python3 - "$stats" "$COUNT" <<'PY' >&2 || exit 3
import json, sys
s, count = json.loads(sys.argv[1]), int(sys.argv[2])
print(f"bot: {s['ok']} deliveries verified, {s['failed']} refused (of {count} webhooks)")
sys.exit(0 if s["ok"] == count and s["failed"] == 0 else 1)
PY
      ;;
  esac || { cat "$out" >&2; exit 3; }
  grep -q 'no loss, no duplicates: OK' "$out" || { cat "$out" >&2; exit 3; }
  grep -h 'server peak RSS\|^p99_ms' "$out" | sed "s/^/  $mode: /" >&2 || true
  sed -n 's/.*first to last durable accept): \([0-9]*\) req\/s.*/\1/p' "$out"
}

declare -A RESULTS=([one]="" [two]="" [relay]="")
for round in $(seq 1 "$ROUNDS"); do
  for mode in one two relay; do
    rps="$(one_run "$mode")"
    echo "round $round $mode: $rps req/s" >&2
    RESULTS[$mode]="${RESULTS[$mode]} $rps"
  done
done
python3 - "${RESULTS[one]}" "${RESULTS[two]}" "${RESULTS[relay]}" <<'PY'
import statistics, sys
one, two, relay = ([int(x) for x in a.split()] for a in sys.argv[1:4])
m = {k: statistics.median(v) for k, v in (("one", one), ("two", two), ("relay", relay))}
print(f"one number (no registry): median {m['one']:.0f} req/s {one}")
print(f"two numbers routed:       median {m['two']:.0f} req/s {two}: {100*m['two']/m['one']:.1f} % of one")
print(f"two numbers + a relay:    median {m['relay']:.0f} req/s {relay}: {100*m['relay']/m['two']:.1f} % of two numbers, {100*m['relay']/m['one']:.1f} % of one")
PY
