#!/usr/bin/env bash
# Regenerates tests/fixtures/phone_numbers.json, the libphonenumber answers that shared/core's
# identity tests hold the `phonenumber` crate to. Run it after the crate moves in Cargo.lock,
# with `phonenumbers` in scripts/requirements.txt pinned to the crate's metadata release (the
# build suffix of its version, e.g. 0.3.10+9.0.33 -> phonenumbers==9.0.33; the closest release
# when PyPI lacks that one). Installs the pinned tools into ./.venv as scripts/test.sh does.
#
#   bash scripts/phone-fixture.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export WABRIDGE_ROOT="$ROOT"
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

wabridge_venv
out="$ROOT/tests/fixtures/phone_numbers.json"
mkdir -p "$(dirname "$out")"
"$WABRIDGE_VENV/bin/python" "$ROOT/scripts/phone_fixture.py" >"$out.tmp"
mv "$out.tmp" "$out"
wabridge_log "wrote ${out#"$ROOT"/} ($(grep -c '"input"' "$out") numbers)"
