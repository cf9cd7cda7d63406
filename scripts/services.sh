# Shared helpers of the test command and the service starters. Source it from bash:
#   source scripts/services.sh
#   wabridge_venv            # ./.venv with the pinned Python tools
#   wabridge_start_moto      # moto's server on a free loopback port; exports AWS_ENDPOINT_URL
#   wabridge_start_prism     # Prism mocking Meta's API (when npm deps are installed); exports PRISM_URL
#   wabridge_stop_services   # kills what the two starters started (put it in an EXIT trap)
# Every server binds 127.0.0.1 only, on a port the kernel picked as free.

WABRIDGE_ROOT="${WABRIDGE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
WABRIDGE_VENV="${WABRIDGE_VENV:-$WABRIDGE_ROOT/.venv}"
WABRIDGE_SERVICE_LOGS="${WABRIDGE_SERVICE_LOGS:-$WABRIDGE_ROOT/target/test-services}"
WABRIDGE_SERVICE_PIDS=()

# Log lines carry the seconds since the script started, so slow phases show in CI logs.
wabridge_log() { printf '[wabridge %4ss] %s\n' "$SECONDS" "$*" >&2; }
wabridge_die() { printf '[wabridge] ERROR: %s\n' "$*" >&2; exit 1; }

# A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it).
wabridge_free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Creates ./.venv and installs the pinned requirements; skips pip when they did not change.
wabridge_venv() {
    command -v python3 >/dev/null || wabridge_die "python3 is required (to run moto's server)"
    local reqs=("$WABRIDGE_ROOT/scripts/requirements.txt")
    [[ -f "$WABRIDGE_ROOT/infra/requirements.txt" ]] && reqs+=("$WABRIDGE_ROOT/infra/requirements.txt")
    if [[ ! -x "$WABRIDGE_VENV/bin/python" ]]; then
        wabridge_log "creating $WABRIDGE_VENV"
        python3 -m venv "$WABRIDGE_VENV" || wabridge_die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    fi
    local stamp="$WABRIDGE_VENV/.wabridge-requirements"
    local want
    want="$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    wabridge_log "installing Python tools: ${reqs[*]#"$WABRIDGE_ROOT"/}"
    local args=()
    for r in "${reqs[@]}"; do args+=(-r "$r"); done
    "$WABRIDGE_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}" \
        || wabridge_die "pip install failed"
    echo "$want" >"$stamp"
}

# Waits until URL answers any HTTP status (or fails after ~60 s, showing the log).
wabridge_wait_http() {
    local url="$1" pid="$2" log="$3" name="$4"
    local i
    for i in $(seq 1 240); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 40 "$log" >&2 || true
            wabridge_die "$name exited before answering (log: $log)"
        fi
        if python3 - "$url" <<'PY' 2>/dev/null; then
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass  # any HTTP answer means it is up
PY
            return 0
        fi
        sleep 0.25
    done
    tail -n 40 "$log" >&2 || true
    wabridge_die "$name did not answer on $url within 60 s (log: $log)"
}

# Starts a command in its own process group, so stopping it also stops its children.
wabridge_spawn() {
    local log="$1"
    shift
    setsid "$@" >"$log" 2>&1 </dev/null &
    WABRIDGE_LAST_PID=$!
    WABRIDGE_SERVICE_PIDS+=("$WABRIDGE_LAST_PID")
}

# moto's server on a free loopback port. Exports AWS_ENDPOINT_URL, dummy credentials and region.
wabridge_start_moto() {
    [[ -x "$WABRIDGE_VENV/bin/moto_server" ]] || wabridge_venv
    mkdir -p "$WABRIDGE_SERVICE_LOGS"
    local port log
    port="$(wabridge_free_port)"
    log="$WABRIDGE_SERVICE_LOGS/moto.log"
    wabridge_spawn "$log" "$WABRIDGE_VENV/bin/moto_server" -H 127.0.0.1 -p "$port"
    MOTO_PID="$WABRIDGE_LAST_PID"
    wabridge_wait_http "http://127.0.0.1:$port/moto-api/" "$MOTO_PID" "$log" "moto_server"
    export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
    export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
    export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
    export AWS_REGION="${AWS_REGION:-us-east-1}"
    export AWS_DEFAULT_REGION="$AWS_REGION"
    # Never pick up a developer's real profile or credentials files.
    unset AWS_PROFILE AWS_SESSION_TOKEN
    export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
    wabridge_log "moto_server at $AWS_ENDPOINT_URL (pid $MOTO_PID)"
}

# Installs the npm dependencies (Prism) when the repository declares them.
wabridge_npm() {
    [[ -f "$WABRIDGE_ROOT/package-lock.json" ]] || return 0
    command -v npm >/dev/null || wabridge_die "npm is required (package-lock.json lists Prism)"
    local stamp="$WABRIDGE_ROOT/node_modules/.wabridge-lock"
    local want
    want="$(sha256sum "$WABRIDGE_ROOT/package-lock.json" | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    wabridge_log "npm ci"
    (cd "$WABRIDGE_ROOT" && npm ci --no-audit --no-fund --loglevel=error) || wabridge_die "npm ci failed"
    echo "$want" >"$stamp"
}

# Prism mocking Meta's WhatsApp API from the OpenAPI spec, when Prism is installed.
# Exports PRISM_URL. Needs WHATSAPP_OPENAPI_SPEC.
wabridge_start_prism() {
    local prism="$WABRIDGE_ROOT/node_modules/.bin/prism"
    [[ -x "$prism" ]] || return 0
    [[ -f "${WHATSAPP_OPENAPI_SPEC:-}" ]] || wabridge_die "WHATSAPP_OPENAPI_SPEC is not a file"
    mkdir -p "$WABRIDGE_SERVICE_LOGS"
    local port log
    port="$(wabridge_free_port)"
    log="$WABRIDGE_SERVICE_LOGS/prism.log"
    wabridge_spawn "$log" "$prism" mock -h 127.0.0.1 -p "$port" "$WHATSAPP_OPENAPI_SPEC"
    PRISM_PID="$WABRIDGE_LAST_PID"
    wabridge_wait_http "http://127.0.0.1:$port/" "$PRISM_PID" "$log" "prism"
    export PRISM_URL="http://127.0.0.1:$port"
    wabridge_log "prism at $PRISM_URL (pid $PRISM_PID)"
}

wabridge_stop_services() {
    local pid
    for pid in "${WABRIDGE_SERVICE_PIDS[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${WABRIDGE_SERVICE_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    WABRIDGE_SERVICE_PIDS=()
}
