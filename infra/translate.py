#!/usr/bin/env python3
"""Transforms infra/template.yaml (AWS SAM) into plain CloudFormation, offline, with the same
aws-sam-translator that `sam deploy` uses on AWS's side.

    .venv/bin/python infra/translate.py [TEMPLATE] [OUT]

Defaults: infra/template.yaml -> infra/.build/template.cfn.json. The region comes from
AWS_REGION / AWS_DEFAULT_REGION (us-east-1 when unset); no AWS call is made.

`CodeUri` points at each function's crate (what `sam build` compiles with cargo-lambda). The
translator only accepts S3 locations, so, as `sam package` does after uploading the build, each
CodeUri becomes `s3://wabridge-artifacts/<LogicalId>.zip` in the copy translated here. The real
template is never changed.
"""

import copy
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARTIFACT_BUCKET = "wabridge-artifacts"


class NoManagedPolicies:
    """Managed-policy lookup for the translator. Every function has its own role with inline
    policies, so the translator never needs to resolve an AWS-managed policy ARN; if the template
    ever asks for one, translation fails here instead of calling IAM."""

    def load(self):
        return {}


def package_code_uris(template):
    """Returns a copy whose function CodeUris are S3 locations, as `sam package` writes them."""
    packaged = copy.deepcopy(template)
    for logical_id, resource in packaged.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            props = resource.setdefault("Properties", {})
            if isinstance(props.get("CodeUri"), str) and not props["CodeUri"].startswith("s3://"):
                props["CodeUri"] = {"Bucket": ARTIFACT_BUCKET, "Key": f"{logical_id}.zip"}
    return packaged


def translate(template_path, out_path):
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    os.environ["AWS_DEFAULT_REGION"] = region
    os.environ.setdefault("AWS_REGION", region)

    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    template = yaml_parse(Path(template_path).read_text())
    cfn = transform(package_code_uris(template), {}, NoManagedPolicies())
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(cfn, indent=2, sort_keys=True) + "\n")
    return cfn


def main(argv):
    template = argv[1] if len(argv) > 1 else HERE / "template.yaml"
    out = argv[2] if len(argv) > 2 else HERE / ".build" / "template.cfn.json"
    try:
        cfn = translate(template, out)
    except Exception as err:  # the translator raises several types; all mean "invalid template"
        print(f"translate: {template}: {err}", file=sys.stderr)
        return 1
    kinds = sorted({r["Type"] for r in cfn["Resources"].values()})
    print(f"translate: {len(cfn['Resources'])} resources ({', '.join(kinds)}) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
