# Shared by bench/load/run.sh (wabridge) and bench/load/node.sh (the Node reference): the same
# load, the same wrk, the same figures, so the two can be compared run for run.

# load_setup [COUNT] [CONNECTIONS] [THREADS]: the scripts' shared arguments, and wrk.
load_setup() {
  COUNT="${1:-200000}"
  CONNS="${2:-64}"
  THREADS="${3:-2}"
  if [ "$COUNT" -lt 10000 ]; then echo "COUNT must be at least 10000" >&2; exit 2; fi
  need_wrk
}

# wabridge_bin ROOT: BIN is $WABRIDGE_BIN (a build to reuse) or a fresh release build.
wabridge_bin() {
  if [ -n "${WABRIDGE_BIN:-}" ]; then
    BIN="$WABRIDGE_BIN"
  else
    cargo build --release -p wabridge --manifest-path "$1/Cargo.toml" >&2
    BIN="$1/target/release/wabridge"
  fi
}

need_wrk() {
  if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk (apt-get)..." >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq wrk >/dev/null
  fi
}

# start_server OUT ERR CMD...: runs CMD in the background (SERVER_PID) and waits for its
# "listening on http://ADDR" line (URL).
start_server() {
  local out="$1" err="$2"
  shift 2
  "$@" >"$out" 2>"$err" &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    grep -q '^listening on ' "$out" 2>/dev/null && break
    sleep 0.1
  done
  URL="$(sed -n 's/^listening on //p' "$out" | head -1)"
  if [ -z "$URL" ]; then echo "server did not start:" >&2; cat "$err" >&2; exit 1; fi
}

stop_server() {
  if [ -n "${SERVER_PID:-}" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}

# run_wrk BODIES COUNT CONNS THREADS OUT: every body once to $URL/webhook, wrk's report to OUT.
run_wrk() {
  local bodies="$1" count="$2" conns="$3" threads="$4" out="$5"
  echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f MiB", $2/1024}' /proc/meminfo), load avg $(cut -d' ' -f1-3 /proc/loadavg); wrk on the same cores" >&2
  echo "== wrk -t$threads -c$conns, $count unique signed bodies, $URL/webhook" >&2
  # The machine's CPU seconds during the run, steal included (time the hypervisor gave to other
  # guests), so a slow VM hour can be told apart from a slow build.
  local cpu_before
  cpu_before="$(head -1 /proc/stat)"
  wrk -t"$threads" -c"$conns" -d"$((count / 5000 + 10))s" --latency --timeout 10s \
    -s "$(dirname "${BASH_SOURCE[0]}")/load.lua" "$URL" -- "$bodies" "$threads" | tee "$out"
  python3 - "$cpu_before" "$(head -1 /proc/stat)" <<'PY' >&2
import sys
names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
before, after = ([int(v) for v in line.split()[1:9]] for line in sys.argv[1:3])
delta = [a - b for a, b in zip(after, before)]
# Seconds of CPU (USER_HZ = 100), not shares: wrk's window runs on past the burst, idle.
print("== CPU seconds during wrk's window: " + ", ".join(f"{n} {d / 100:.1f}" for n, d in zip(names, delta) if d))
PY
  echo "(wrk stops each thread once its share is answered, but its Requests/sec divides by the whole -d window: read the server-side rate below)" >&2
}

peak_rss_kb() {
  awk '/VmHWM/ {print $2}' "/proc/$1/status"
}
