#!/usr/bin/env bash
# Runs every test, on a fresh machine too: installs what the tests need (a Python venv with
# moto's server and the infra linters, Prism from npm), starts the services on free loopback
# ports, runs the infra checks and the lint gates (rustfmt, clippy -D warnings, rustdoc),
# type-checks the fuzz targets (scripts/fuzz.sh --check), then
# `cargo test --workspace --all-targets`.
# Exits non-zero on any failure; the servers are stopped on exit whatever happens.
#
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh -- -p ingest    # extra arguments go to `cargo test` (after --)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export WABRIDGE_ROOT="$ROOT"
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

cargo_args=()
if [[ "${1:-}" == "--" ]]; then
    shift
    cargo_args=("$@")
fi

started=$SECONDS
trap 'status=$?; wabridge_stop_services; exit $status' EXIT
trap 'exit 130' INT TERM

# Meta's OpenAPI spec is vendored under tests/specs (MIT); tests find it through this variable.
spec="${WHATSAPP_OPENAPI_SPEC:-$ROOT/tests/specs/whatsapp-business-messaging-api_v23.0.yaml}"
if [[ ! -f "$spec" ]]; then
    wabridge_die "Meta's OpenAPI spec not found at $spec (set WHATSAPP_OPENAPI_SPEC to another copy)"
fi
export WHATSAPP_OPENAPI_SPEC="$(cd "$(dirname "$spec")" && pwd)/$(basename "$spec")"
reference="$ROOT/../shared/specs/$(basename "$spec")"
if [[ -f "$reference" ]] && ! cmp -s "$reference" "$WHATSAPP_OPENAPI_SPEC"; then
    wabridge_log "warning: $reference differs from the vendored spec; update tests/specs/ if Meta published a new one"
fi

command -v cargo >/dev/null || wabridge_die "cargo is required (https://rustup.rs)"

wabridge_venv
export VIRTUAL_ENV="$WABRIDGE_VENV"
export PATH="$WABRIDGE_VENV/bin:$PATH"
wabridge_npm

wabridge_start_moto
wabridge_start_prism
# Tests that need moto (or Prism) fail instead of skipping when it is missing.
export WABRIDGE_REQUIRE_SERVICES=1

if [[ -f "$ROOT/infra/check.sh" ]]; then
    wabridge_log "infra checks (infra/check.sh)"
    bash "$ROOT/infra/check.sh"
fi

# Lint gates: formatting and clippy (with the workspace's lints) fail the run before any test.
wabridge_log "cargo fmt --all -- --check"
cargo fmt --all -- --check
wabridge_log "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
wabridge_log "cargo doc --no-deps --workspace (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --quiet

# The fuzz targets (fuzz/, nightly, their own target dir) are type-checked, not run, so they
# cannot rot.
wabridge_log "fuzz targets: type-check only (bash scripts/fuzz.sh --check)"
bash "$ROOT/scripts/fuzz.sh" --check

# Build first (timed apart from the run), then test.
wabridge_log "cargo test --workspace --all-targets --no-run ${cargo_args[*]}"
cargo test --workspace --all-targets --no-run "${cargo_args[@]}"
wabridge_log "cargo test --workspace --all-targets ${cargo_args[*]}"
cargo test --workspace --all-targets "${cargo_args[@]}"

wabridge_log "all tests passed in $((SECONDS - started)) s"
