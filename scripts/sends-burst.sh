#!/usr/bin/env bash
# Prints the sender's throughput figures for the README: a burst of sends from one business
# number through the real Graph client and rate limiter against a local counting HTTP server.
#   bash scripts/sends-burst.sh                                  # 2,000 sends at 80/s
#   WABRIDGE_BURST_SENDS=5000 WABRIDGE_BURST_RATE=200 bash scripts/sends-burst.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo test --release -p wabridge-tests --test core -- --nocapture sends_burst:: 2>&1 | grep -E '^burst:|test result'
