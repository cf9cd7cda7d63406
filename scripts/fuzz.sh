#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ one after another, each for SECONDS (default 60), on one
# core (one libFuzzer process, no -jobs), and prints per target the seconds, executions, exec/s,
# corpus size and crashes. Exits non-zero when a target crashes; the input is in
# fuzz/artifacts/<target>/. Installs the nightly toolchain and cargo-fuzz when missing.
#
#   bash scripts/fuzz.sh                     # every target, 60 s each
#   bash scripts/fuzz.sh 600 identity        # one target, 10 minutes
#   bash scripts/fuzz.sh --build             # build only
#   bash scripts/fuzz.sh --check             # type-check only (what scripts/test.sh runs)
#
# The corpora grow in fuzz/corpus/<target> (gitignored), seeded from fuzz/seeds/<target> and the
# project's samples (events/webhooks, mappings/). See docs/fuzzing.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ="$ROOT/fuzz"
TARGETS=(webhook signature mapping identity requests templates)
# The same flags for every build, so scripts/test.sh's build is the one the runs reuse:
# no sanitizer (the code under test is safe Rust; ASan would halve the executions), debug
# assertions on (integer overflow panics instead of wrapping).
BUILD_FLAGS=(--sanitizer none --debug-assertions)

log() { printf '[fuzz %4ss] %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }

ensure_tools() {
    command -v rustup >/dev/null || die "rustup is required (https://rustup.rs)"
    if ! rustup run nightly rustc --version >/dev/null 2>&1; then
        log "installing the nightly toolchain (cargo-fuzz needs it)"
        rustup toolchain install nightly --profile minimal
    fi
    if ! cargo fuzz --version >/dev/null 2>&1; then
        log "installing cargo-fuzz"
        cargo install cargo-fuzz --locked
    fi
}

build() {
    log "cargo +nightly fuzz build ${BUILD_FLAGS[*]}"
    (cd "$FUZZ" && cargo +nightly fuzz build "${BUILD_FLAGS[@]}")
}

# Copies files into a corpus, keeping what is there (`cp -n` fails on a skip in some
# coreutils releases).
add_seeds() {
    local dir=$1 f
    shift
    for f in "$@"; do
        [[ -e "$dir/$(basename "$f")" ]] || cp "$f" "$dir/"
    done
}

# Seeds a target's corpus: its checked-in seeds and the project's own samples.
seed() {
    local target=$1 corpus="$FUZZ/corpus/$1"
    mkdir -p "$corpus"
    if [[ -d "$FUZZ/seeds/$target" ]]; then
        add_seeds "$corpus" "$FUZZ/seeds/$target"/*
    fi
    case $target in
        webhook | signature)
            add_seeds "$corpus" "$ROOT"/events/webhooks/*.json
            ;;
        templates)
            add_seeds "$corpus" "$ROOT"/docs/templates/*.toml
            ;;
        mapping)
            # Each example mapping over each seed record (`<toml>\n#record\n<json>`).
            local m r
            for m in "$ROOT"/mappings/*.toml; do
                for r in "$FUZZ/seeds/mapping"/*.json; do
                    { cat "$m"; printf '\n#record\n'; cat "$r"; } \
                        >"$corpus/$(basename "$m" .toml)-$(basename "$r")"
                done
            done
            ;;
    esac
}

# Runs one target; prints its summary row and returns non-zero on a crash.
run() {
    local target=$1 seconds=$2
    local corpus="$FUZZ/corpus/$target" artifacts="$FUZZ/artifacts/$target"
    local out="$FUZZ/artifacts/$target.log"
    mkdir -p "$artifacts"
    seed "$target"
    local dict=()
    [[ -f "$FUZZ/dicts/$target.dict" ]] && dict=(-dict="$FUZZ/dicts/$target.dict")
    local before
    before=$(find "$artifacts" -type f | wc -l)
    log "$target: ${seconds}s"
    local status=0 start=$SECONDS
    # -timeout: an input that takes 10 s is a denial of service, reported like a crash.
    "$FUZZ/target/x86_64-unknown-linux-gnu/release/$target" \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="$artifacts/" "$corpus" >"$out" 2>&1 || status=$?
    local secs=$((SECONDS - start)) runs rate files kib crashes
    runs=$(grep -oE 'number_of_executed_units:[[:space:]]+[0-9]+' "$out" | grep -oE '[0-9]+$' || echo 0)
    rate=$(grep -oE 'average_exec_per_sec:[[:space:]]+[0-9]+' "$out" | grep -oE '[0-9]+$' || echo 0)
    files=$(find "$corpus" -type f | wc -l)
    kib=$(du -sk --apparent-size "$corpus" | cut -f1)
    crashes=$(($(find "$artifacts" -type f | wc -l) - before))
    if ((status != 0 && crashes == 0)); then
        crashes=1
    fi
    printf '%-10s %8s %12s %8s %8s %8s %8s\n' \
        "$target" "$secs" "$runs" "$rate" "$files" "$kib" "$crashes" >>"$FUZZ/artifacts/summary"
    if ((crashes > 0)); then
        log "$target CRASHED (exit $status): see $out and $artifacts/"
        grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$out" | head -5 >&2 || true
        return 1
    fi
}

seconds=60
if [[ "${1:-}" == "--build" || "${1:-}" == "--check" ]]; then
    ensure_tools
    # The fuzz crate is outside the workspace, so `cargo fmt --all` does not see it.
    cargo fmt --manifest-path "$FUZZ/Cargo.toml" -- --check
    if [[ "$1" == "--build" ]]; then
        build
    else
        # Type-checking is what keeps the targets from rotting, at a fraction of a build's
        # cost (no optimised code generation for the targets and their dependencies).
        log "cargo +nightly fuzz check ${BUILD_FLAGS[*]}"
        (cd "$FUZZ" && cargo +nightly fuzz check "${BUILD_FLAGS[@]}")
    fi
    exit 0
fi
if [[ $# -gt 0 ]]; then
    [[ "$1" =~ ^[0-9]+$ ]] || die "usage: bash scripts/fuzz.sh [SECONDS] [TARGET...] | --build | --check"
    seconds=$1
    shift
fi
selected=("${TARGETS[@]}")
if [[ $# -gt 0 ]]; then
    selected=("$@")
    for t in "${selected[@]}"; do
        [[ " ${TARGETS[*]} " == *" $t "* ]] || die "no target $t (targets: ${TARGETS[*]})"
    done
fi

ensure_tools
build
mkdir -p "$FUZZ/artifacts"
printf '%-10s %8s %12s %8s %8s %8s %8s\n' \
    target seconds runs exec/s corpus KiB crashes >"$FUZZ/artifacts/summary"
failed=0
for t in "${selected[@]}"; do
    run "$t" "$seconds" || failed=1
done
cat "$FUZZ/artifacts/summary"
if ((failed)); then
    die "a target crashed"
fi
log "no crashes"
