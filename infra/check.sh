#!/usr/bin/env bash
# Infra checks of the README test command (scripts/test.sh runs this with moto's server up and
# AWS_ENDPOINT_URL exported). Fails on the first problem:
#   1. cfn-lint on infra/template.yaml: no errors, no warnings (any finding fails);
#   2. the SAM template transformed offline (infra/translate.py, aws-sam-translator) and the
#      resulting CloudFormation linted too;
#   3. checkov on both: no failed check; every skip is justified inline in the template;
#   4. the transformed template deployed to moto's CloudFormation (infra/moto_deploy.py); the
#      stack's outputs go to $WABRIDGE_STACK_OUTPUTS (default infra/.build/stack-outputs.json),
#      which tests/tests/e2e/infra_*.rs read.
# Uses the tools pinned in infra/requirements.txt, installed in ./.venv (or $WABRIDGE_VENV).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${WABRIDGE_VENV:-$ROOT/.venv}"
BUILD="$ROOT/infra/.build"
TEMPLATE="$ROOT/infra/template.yaml"
CFN="$BUILD/template.cfn.json"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-$AWS_REGION}"
# checkov must not phone home (no network but the package registries on CI).
export BC_SKIP_MAPPING=TRUE CHECKOV_SKIP_DOWNLOAD=TRUE

log() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }

for tool in python cfn-lint checkov; do
    [[ -x "$VENV/bin/$tool" ]] || die "$VENV/bin/$tool missing: pip install -r infra/requirements.txt into $VENV (scripts/test.sh does)"
done
mkdir -p "$BUILD"
started=$SECONDS

step() { # name, command...
    local name="$1" t0=$SECONDS
    shift
    log "$name"
    "$@" || die "$name failed"
    log "$name: ok ($((SECONDS - t0)) s)"
}

step "cfn-lint infra/template.yaml" "$VENV/bin/cfn-lint" --format parseable -- "$TEMPLATE"
step "aws-sam-translator -> infra/.build/template.cfn.json" "$VENV/bin/python" "$ROOT/infra/translate.py" "$TEMPLATE" "$CFN"
step "cfn-lint transformed template" "$VENV/bin/cfn-lint" --format parseable -- "$CFN"

checkov() { # file
    local out="$BUILD/checkov-$(basename "$1").txt"
    if ! "$VENV/bin/checkov" -f "$1" --framework cloudformation --compact --quiet --skip-download \
        >"$out" 2>&1; then
        cat "$out" >&2
        return 1
    fi
    grep -E 'Passed checks' "$out" >&2 || { cat "$out" >&2; return 1; }
}
step "checkov infra/template.yaml" checkov "$TEMPLATE"
step "checkov transformed template" checkov "$CFN"

if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
    step "deploy to moto's CloudFormation at $AWS_ENDPOINT_URL" "$VENV/bin/python" "$ROOT/infra/moto_deploy.py" "$CFN" \
        "${WABRIDGE_STACK_OUTPUTS:-$BUILD/stack-outputs.json}"
elif [[ "${WABRIDGE_REQUIRE_SERVICES:-}" == 1 ]]; then
    die "AWS_ENDPOINT_URL is not set: moto's server is required (scripts/test.sh starts it)"
else
    log "AWS_ENDPOINT_URL not set: skipped the moto deployment (bash scripts/moto.sh -- bash infra/check.sh runs it)"
fi
log "all infra checks passed in $((SECONDS - started)) s"
