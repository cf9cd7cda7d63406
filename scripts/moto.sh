#!/usr/bin/env bash
# Starts moto's server (DynamoDB, SQS, Secrets Manager, CloudFormation) on a free loopback port
# and prints the environment to point the AWS SDK at it. Ctrl-C stops it.
#
#   bash scripts/moto.sh                          # prints `export AWS_ENDPOINT_URL=...`, waits
#   bash scripts/moto.sh -- cargo test -p wabridge-tests --test e2e aws_ingest::
#                                                 # runs a command against it, then stops it
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export WABRIDGE_ROOT="$ROOT"
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"
trap 'status=$?; wabridge_stop_services; exit $status' EXIT
trap 'exit 130' INT TERM

wabridge_venv
wabridge_start_moto
if [[ "${1:-}" == "--" ]]; then
    shift
    export WABRIDGE_REQUIRE_SERVICES=1
    "$@"
    exit
fi
cat <<ENV
export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
export AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
export AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export AWS_REGION=$AWS_REGION
ENV
wabridge_log "moto_server running; Ctrl-C to stop"
wait "$MOTO_PID"
