#!/usr/bin/env bash
# Builds the five Lambda packages as `sam build` does (cargo lambda build --release in each
# function's folder, zipped) and checks their sizes against the goals:
#   bash scripts/lambda-package.sh [--arch arm64|x86_64|both] [--function NAME]... [--coldstart]
# --function builds only the named ones (ingest, attribution, crm-sync, sender, media).
# Zips land in target/lambda/<arch>/<function>/bootstrap.zip. Exits 1 when one is over its goal:
# ingest under 3 MB, crm-sync, sender and media under 5 MB (1 MB = 1,000,000 bytes).
# --coldstart then measures init durations against bench/lambda/runtime_api.py
# (bench/lambda/coldstart.py; COLDSTART_RUNS, default 20) for the arch this machine runs.
# cargo-lambda and Zig come from PyPI into ./.venv (bench/lambda/requirements.txt).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

FUNCTIONS=(ingest attribution crm-sync sender media)
arch=both
coldstart=0
only=()
while (($#)); do
    case "$1" in
        --arch) arch="${2:-}"; shift $(($# > 1 ? 2 : 1)) ;;
        --arch=*) arch="${1#*=}"; shift ;;
        --function) only+=("${2:-}"); shift $(($# > 1 ? 2 : 1)) ;;
        --function=*) only+=("${1#*=}"); shift ;;
        --coldstart) coldstart=1; shift ;;
        -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
        *) wabridge_die "unknown argument: $1 (see --help)" ;;
    esac
done
case "$arch" in
    arm64 | x86_64) archs=("$arch") ;;
    both) archs=(arm64 x86_64) ;;
    *) wabridge_die "--arch must be arm64, x86_64 or both" ;;
esac

if ((${#only[@]})); then
    for f in "${only[@]}"; do
        [[ " ${FUNCTIONS[*]} " == *" $f "* ]] || wabridge_die "--function: no function $f (${FUNCTIONS[*]})"
    done
    FUNCTIONS=("${only[@]}")
fi
declare -A GOAL_MB=([ingest]=3 [crm-sync]=5 [sender]=5 [media]=5)
declare -A TRIPLE=([arm64]=aarch64-unknown-linux-gnu [x86_64]=x86_64-unknown-linux-gnu)
declare -A FLAG=([arm64]=--arm64 [x86_64]=--x86-64)
OUT="${CARGO_TARGET_DIR:-$ROOT/target}/lambda"

# cargo-lambda and Zig (pinned) in the project's venv; skips pip when the pins did not change.
lambda_tools() {
    local reqs="$ROOT/bench/lambda/requirements.txt" stamp="$WABRIDGE_VENV/.wabridge-lambda"
    if [[ ! -x "$WABRIDGE_VENV/bin/python" ]]; then
        python3 -m venv "$WABRIDGE_VENV" || wabridge_die "python3 -m venv failed"
    fi
    if [[ "$(cat "$stamp" 2>/dev/null)" != "$(sha256sum <"$reqs")" ]]; then
        wabridge_log "installing cargo-lambda and Zig into ${WABRIDGE_VENV#"$ROOT"/}"
        "$WABRIDGE_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs" \
            || wabridge_die "pip install failed"
        sha256sum <"$reqs" >"$stamp"
    fi
    export PATH="$WABRIDGE_VENV/bin:$PATH"
}

# Makes the Rust standard library for $1 (a target triple) available: rustup's, else (arm64
# on Debian, where rustup cannot download it) Debian's rustc-web with its multiarch
# libstd-rust-web-dev:arm64. Prints the PATH prefix to build with ("" for rustup's toolchain).
rust_std() {
    local triple="$1"
    if [[ -d "$(rustc --print sysroot)/lib/rustlib/$triple/lib" ]] \
        || timeout 300 rustup target add "$triple" >&2; then
        echo ""
        return 0
    fi
    [[ "$triple" == aarch64-unknown-linux-gnu && $EUID -eq 0 ]] && command -v apt-get >/dev/null \
        || wabridge_die "no Rust standard library for $triple (rustup target add $triple failed)"
    if [[ ! -d /usr/lib/rustlib/$triple/lib || ! -x /usr/bin/cargo ]]; then
        wabridge_log "rustup cannot add $triple: installing Debian's rustc-web," \
            "cargo-web and libstd-rust-web-dev:arm64"
        dpkg --add-architecture arm64
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web \
            libstd-rust-web-dev:arm64 >&2 || wabridge_die "apt-get install of Debian's Rust failed"
    fi
    [[ -d /usr/lib/rustlib/$triple/lib ]] || wabridge_die "Debian's Rust has no $triple std"
    echo "/usr/bin:"
}

lambda_tools
fail=0
rows=()
for a in "${archs[@]}"; do
    prefix="$(rust_std "${TRIPLE[$a]}")"
    for f in "${FUNCTIONS[@]}"; do
        wabridge_log "functions/$f: cargo lambda build --release ${FLAG[$a]}" \
            "($(PATH="$prefix$PATH" rustc --version))"
        # From the function's folder, as sam build does: Cargo then also reads
        # functions/.cargo/config.toml (the size profile of the Lambda packages).
        (cd "$ROOT/functions/$f" && PATH="$prefix$PATH" cargo lambda build --release \
            "${FLAG[$a]}" --output-format zip --lambda-dir "$OUT/$a" --bin "$f")
    done
    for f in "${FUNCTIONS[@]}"; do
        bytes="$(stat -c %s "$OUT/$a/$f/bootstrap.zip")"
        goal="${GOAL_MB[$f]:-}"
        verdict=ok
        if [[ -z "$goal" ]]; then
            verdict="(no goal)"
        elif ((bytes >= goal * 1000000)); then
            verdict=over
            fail=1
        fi
        binary="$(python3 -c 'import sys, zipfile
print(sum(i.file_size for i in zipfile.ZipFile(sys.argv[1]).infolist()))' \
            "$OUT/$a/$f/bootstrap.zip")"
        rows+=("$(printf '%-12s %-7s %10d %6s %12d %5s  %s' "$f" "$a" "$bytes" \
            "$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1e6 }')" "$binary" \
            "${goal:+< $goal}" "$verdict")")
    done
done

printf '\n%-12s %-7s %10s %6s %12s %5s  %s\n' \
    function arch "zip bytes" MB "binary bytes" goal result
printf '%s\n' "${rows[@]}"
printf 'zips: %s/<arch>/<function>/bootstrap.zip\n' "${OUT#"$ROOT"/}"

if ((coldstart)); then
    host="$(uname -m)"
    [[ "$host" == aarch64 ]] && host=arm64
    if [[ " ${archs[*]} " == *" $host "* ]]; then
        python3 "$ROOT/bench/lambda/coldstart.py" --arch "$host" --lambda-dir "$OUT" \
            --runs "${COLDSTART_RUNS:-20}" --json "$OUT/coldstart-$host.json" || fail=1
    else
        wabridge_log "no cold starts: this machine runs $host packages only"
    fi
fi
exit "$fail"
