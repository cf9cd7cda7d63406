#!/usr/bin/env python3
"""Deploys the transformed template (infra/translate.py) to moto's CloudFormation and writes the
stack's outputs to a JSON file the Rust end-to-end tests read.

    AWS_ENDPOINT_URL=http://127.0.0.1:PORT .venv/bin/python infra/moto_deploy.py \
        [CFN_JSON] [OUTPUTS_JSON]

Defaults: infra/.build/template.cfn.json -> $WABRIDGE_STACK_OUTPUTS or
infra/.build/stack-outputs.json. Fails (exit 1) unless the stack reaches CREATE_COMPLETE with
every resource moto supports.

Emulator-only substitutions (the real template is never changed):
- Lambda code: the functions' S3 code location becomes a placeholder inline ZipFile; moto never
  runs it (the tests run the handlers in-process, playing the Lambda service's part).
- Types moto's CloudFormation does not implement (Secrets Manager secrets, CloudWatch alarms,
  Function URLs, SNS subscriptions, S3 bucket policies) are taken out of the stack and created,
  where moto's service API has them, through that API with the template's own properties: the
  secret (with the same JSON keys and generated verify token), the alarms, the Function URL,
  a bucket policy (but a TLS-only one, which moto's plain HTTP could never satisfy: it is listed
  as not deployed). Bucket settings moto's CloudFormation ignores (public access block,
  lifecycle, ownership controls) are applied through the S3 API too. What cannot be created
  is listed in the outputs file under "NotDeployed". infra/check_template.py and
  tests/tests/e2e/infra_template/ check all of them from the transformed template.
- Event source mappings are created by the stack, checked, then disabled: moto would otherwise
  "invoke" the placeholder function on every SendMessage, receiving (and counting) the messages
  the tests want to receive themselves.
"""

import copy
import json
import os
import re
import secrets
import string
import sys
import time
from pathlib import Path

import logging

import boto3
from moto.cloudformation.parsing import resource_class_from_type

# moto warns once per unsupported type it is asked about; this script reports them itself.
logging.getLogger("moto").setLevel(logging.ERROR)

HERE = Path(__file__).resolve().parent
STACK_PREFIX = "wabridge"


def client(service):
    return boto3.client(
        service,
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=region(),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )


def region():
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def die(message):
    print(f"moto_deploy: {message}", file=sys.stderr)
    sys.exit(1)


# ------------------------------------------------------------------ intrinsic functions
class Resolver:
    """Resolves Ref / Fn::GetAtt / Fn::Sub / Fn::Join / Fn::If over known values. Unknown
    references raise KeyError, so nothing is silently left unresolved."""

    def __init__(self, template, stack_name, account):
        self.template = template
        self.values = {
            "AWS::Region": region(),
            "AWS::AccountId": account,
            "AWS::StackName": stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        for name, param in template.get("Parameters", {}).items():
            self.values[name] = param.get("Default")
        self.conditions = {}

    def set(self, key, value):
        self.values[key] = value

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self.conditions[name]

    def resolve(self, node):
        if isinstance(node, list):
            return [self.resolve(n) for n in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.values[arg]
            if key == "Fn::GetAtt":
                target = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.values[f"{target[0]}.{target[1]}"]
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                extra = {k: self.resolve(v) for k, v in extra.items()}
                return re.sub(
                    r"\$\{([^}!]+)\}",
                    lambda m: str(extra[m.group(1)] if m.group(1) in extra else self.values[m.group(1)]),
                    text,
                )
            if key == "Fn::Join":
                return arg[0].join(str(self.resolve(x)) for x in arg[1])
            if key == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(x) for x in arg)
            if key == "Fn::Or":
                return any(self.resolve(x) for x in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Equals":
                return self.resolve(arg[0]) == self.resolve(arg[1])
        return {k: self.resolve(v) for k, v in node.items()}


def references(node):
    """Logical ids (and attributes) a template fragment refers to."""
    found = set()
    if isinstance(node, list):
        for n in node:
            found |= references(n)
    elif isinstance(node, dict):
        for key, arg in node.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                target = arg if isinstance(arg, list) else arg.split(".", 1)
                found.add(target[0])
                found.add(f"{target[0]}.{target[1]}")
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                for var in re.findall(r"\$\{([^}!]+)\}", text):
                    found.add(var)
                    found.add(var.split(".", 1)[0])
                found |= references(arg if isinstance(arg, str) else arg[1])
            else:
                found |= references(arg)
    return found


def substitute(node, known):
    """Replaces references to `known` names (logical ids, or `Id.Attr`) with their values."""
    if isinstance(node, list):
        return [substitute(n, known) for n in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (key, arg), = node.items()
        if key == "Ref" and arg in known:
            return known[arg]
        if key == "Fn::GetAtt":
            target = arg if isinstance(arg, list) else arg.split(".", 1)
            name = f"{target[0]}.{target[1]}"
            if name in known:
                return known[name]
        if key == "Fn::Sub":
            text, extra = (arg, None) if isinstance(arg, str) else (arg[0], arg[1])
            text = re.sub(
                r"\$\{([^}!]+)\}",
                lambda m: str(known[m.group(1)]) if m.group(1) in known else m.group(0),
                text,
            )
            return {"Fn::Sub": text if extra is None else [text, substitute(extra, known)]}
    return {k: substitute(v, known) for k, v in node.items()}


# ------------------------------------------------------------------ emulator-only resources
def generated_secret_string(props):
    """The secret value Secrets Manager would generate from GenerateSecretString."""
    gen = props.get("GenerateSecretString")
    if not gen:
        return props.get("SecretString", "{}")
    value = json.loads(gen.get("SecretStringTemplate", "{}"))
    alphabet = string.ascii_letters + string.digits
    if not gen.get("ExcludePunctuation"):
        alphabet += "!#$%&()*+,-./:;<=>?@[]^_{|}~"
    length = int(gen.get("PasswordLength", 32))
    value[gen["GenerateStringKey"]] = "".join(secrets.choice(alphabet) for _ in range(length))
    return json.dumps(value)


def tls_only(policy):
    """Whether a bucket policy denies requests made without TLS."""
    return any(
        st.get("Effect") == "Deny"
        and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for st in policy.get("Statement", [])
    )


def apply_bucket_settings(bucket, props):
    """What moto's CloudFormation leaves out of a bucket (it applies BucketEncryption only), set
    through the S3 API from the template's own properties, so the tests see the bucket as
    deployed: public access block, lifecycle rules, ownership controls."""
    s3 = client("s3")
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
        )
    rules = props.get("LifecycleConfiguration", {}).get("Rules", [])
    if rules:
        api_rules = []
        for rule in rules:
            api = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
            if "ExpirationInDays" in rule:
                api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
            if "AbortIncompleteMultipartUpload" in rule:
                api["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
            api_rules.append(api)
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": api_rules})
    if "OwnershipControls" in props:
        s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=props["OwnershipControls"])


def main(argv):
    if "AWS_ENDPOINT_URL" not in os.environ:
        die("AWS_ENDPOINT_URL is not set (start moto's server: bash scripts/moto.sh)")
    cfn_path = Path(argv[1]) if len(argv) > 1 else HERE / ".build" / "template.cfn.json"
    out_path = Path(
        argv[2] if len(argv) > 2 else os.environ.get("WABRIDGE_STACK_OUTPUTS", HERE / ".build" / "stack-outputs.json")
    )
    template = json.loads(cfn_path.read_text())
    started = time.monotonic()

    stack_name = f"{STACK_PREFIX}-{int(time.time())}-{secrets.token_hex(3)}"
    account = client("sts").get_caller_identity()["Account"]
    resolver = Resolver(template, stack_name, account)
    moto_template = copy.deepcopy(template)
    resources = moto_template["Resources"]
    # A resource whose Condition is false does not exist, as on CloudFormation (the destination
    # slots left empty): left out here, since moto's CloudFormation lists such resources without ids.
    for lid in [lid for lid, res in resources.items() if "Condition" in res and not resolver.condition(res["Condition"])]:
        del resources[lid]

    # Lambda code: a placeholder for the emulator only.
    for logical_id, res in resources.items():
        if res["Type"] == "AWS::Lambda::Function":
            res["Properties"]["Code"] = {"ZipFile": "placeholder: moto never runs this"}

    unsupported = {lid: res for lid, res in resources.items() if resource_class_from_type(res["Type"]) is None}
    for lid in unsupported:
        del resources[lid]

    # Values of the taken-out resources that the remaining ones refer to, known before the stack.
    known = {}
    created_outside = {}
    for lid, res in unsupported.items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::SecretsManager::Secret":
            arn = client("secretsmanager").create_secret(
                Name=f"{stack_name}-{lid}",
                Description=props.get("Description", ""),
                SecretString=generated_secret_string(props),
            )["ARN"]
            known[lid] = arn
            created_outside[lid] = arn
        elif res["Type"] == "AWS::CloudWatch::Alarm":
            name = f"{stack_name}-{lid}"
            known[lid] = name
            known[f"{lid}.Arn"] = f"arn:aws:cloudwatch:{region()}:{account}:alarm:{name}"
    for key, value in known.items():
        resolver.set(key, value)

    for lid, res in list(resources.items()):
        resources[lid] = substitute(res, known)
    outputs_later = {}
    for key, output in list(moto_template.get("Outputs", {}).items()):
        output = substitute(output, known)
        if references(output["Value"]) & set(unsupported):
            outputs_later[key] = output
            del moto_template["Outputs"][key]
        else:
            moto_template["Outputs"][key] = output
    still = {lid for res in resources.values() for lid in references(res)} & set(unsupported)
    if still:
        die(f"resources refer to types moto cannot create and this script cannot stand in for: {sorted(still)}")

    cf = client("cloudformation")
    cf.create_stack(StackName=stack_name, TemplateBody=json.dumps(moto_template), Capabilities=["CAPABILITY_IAM"])
    deadline = time.monotonic() + 120
    while True:
        stack = cf.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            break
        if status.endswith("FAILED") or "ROLLBACK" in status or time.monotonic() > deadline:
            events = cf.describe_stack_events(StackName=stack_name)["StackEvents"]
            reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}" for e in events if "FAILED" in e["ResourceStatus"]]
            die(f"stack {stack_name} ended {status}: {reasons}")
        time.sleep(0.2)

    stack_resources = {r["LogicalResourceId"]: r for r in cf.describe_stack_resources(StackName=stack_name)["StackResources"]}
    missing = sorted(set(resources) - set(stack_resources))
    if missing:
        die(f"moto's stack lacks resources it should have created: {missing}")
    not_complete = sorted(lid for lid, r in stack_resources.items() if r["ResourceStatus"] != "CREATE_COMPLETE")
    if not_complete:
        die(f"resources not CREATE_COMPLETE: {not_complete}")

    # What the remaining resources resolve to, for the alarms and outputs created here.
    sqs = client("sqs")
    lam = client("lambda")
    # Each function's environment as deployed: the tests wire the handlers from it.
    function_envs = {}
    for lid, res in resources.items():
        physical = stack_resources[lid].get("PhysicalResourceId")
        kind = res["Type"]
        if kind == "AWS::SQS::Queue":
            url = physical if physical.startswith("http") else sqs.get_queue_url(QueueName=physical)["QueueUrl"]
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
            resolver.set(lid, url)
            resolver.set(f"{lid}.QueueName", url.rsplit("/", 1)[1])
            resolver.set(f"{lid}.Arn", attrs["QueueArn"])
        elif kind == "AWS::S3::Bucket":
            resolver.set(lid, physical)
            resolver.set(f"{lid}.Arn", f"arn:aws:s3:::{physical}")
            settings = dict(res.get("Properties", {}))
            # A lifecycle may name a parameter (MediaBucket's expiry is ContentRetentionDays).
            if "LifecycleConfiguration" in settings:
                settings["LifecycleConfiguration"] = resolver.resolve(settings["LifecycleConfiguration"])
            apply_bucket_settings(physical, settings)
        elif kind == "AWS::Lambda::Function":
            fn = lam.get_function(FunctionName=physical)["Configuration"]
            resolver.set(lid, fn["FunctionName"])
            resolver.set(f"{lid}.Arn", fn["FunctionArn"])
            function_envs[lid] = fn.get("Environment", {}).get("Variables", {})
        else:
            resolver.set(lid, physical)

    not_deployed = []
    cw = client("cloudwatch")
    for lid, res in unsupported.items():
        if "Condition" in res and not resolver.condition(res["Condition"]):
            continue
        props = resolver.resolve(res.get("Properties", {}))
        kind = res["Type"]
        if kind == "AWS::CloudWatch::Alarm":
            cw.put_metric_alarm(AlarmName=known[lid], **props)
            created_outside[lid] = known[f"{lid}.Arn"]
        elif kind == "AWS::S3::BucketPolicy" and tls_only(props["PolicyDocument"]):
            # moto serves plain HTTP and enforces bucket policies: a TLS-only policy would deny
            # every call. tests/tests/e2e/infra_template/ checks it in the template instead.
            not_deployed.append({"LogicalId": lid, "Type": kind, "Reason": "TLS-only policy over moto's plain HTTP"})
        elif kind == "AWS::S3::BucketPolicy":
            client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(props["PolicyDocument"]))
            created_outside[lid] = props["Bucket"]
        elif kind == "AWS::Lambda::Url":
            url = lam.create_function_url_config(
                FunctionName=props["TargetFunctionArn"], AuthType=props["AuthType"], InvokeMode=props.get("InvokeMode", "BUFFERED")
            )["FunctionUrl"]
            if not url.endswith("/"):
                url += "/"
            resolver.set(f"{lid}.FunctionUrl", url)
            created_outside[lid] = url
        elif kind != "AWS::SecretsManager::Secret":
            not_deployed.append({"LogicalId": lid, "Type": kind})

    # Event source mappings: created by the stack; the tests poll the queues themselves.
    mappings = [
        m
        for lid, res in resources.items()
        if res["Type"] == "AWS::Lambda::Function"
        for m in lam.list_event_source_mappings(FunctionName=resolver.values[lid])["EventSourceMappings"]
    ]
    for mapping in mappings:
        lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)

    outputs = {o["OutputKey"]: o["OutputValue"] for o in cf.describe_stacks(StackName=stack_name)["Stacks"][0].get("Outputs", [])}
    for key, output in outputs_later.items():
        outputs[key] = resolver.resolve(output["Value"])
    declared = template.get("Outputs", {})
    # Conditional outputs (a destination slot's queue URL) exist only when their condition holds.
    expected = {key for key, output in declared.items() if "Condition" not in output}
    if not expected <= set(outputs) or not set(outputs) <= set(declared):
        die(
            f"outputs differ from the template's: missing {sorted(expected - set(outputs))}, "
            f"undeclared {sorted(set(outputs) - set(declared))}"
        )

    report = {
        "StackName": stack_name,
        "EndpointUrl": os.environ["AWS_ENDPOINT_URL"],
        "Region": region(),
        "Outputs": outputs,
        "StackResources": {lid: {"Type": r["ResourceType"], "PhysicalResourceId": r.get("PhysicalResourceId")} for lid, r in stack_resources.items()},
        "CreatedThroughServiceApis": created_outside,
        "FunctionEnvironments": function_envs,
        "NotDeployed": not_deployed,
        "EventSourceMappings": [
            {k: m.get(k) for k in ("EventSourceArn", "FunctionArn", "BatchSize", "MaximumBatchingWindowInSeconds", "FunctionResponseTypes", "ScalingConfig")}
            for m in mappings
        ],
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(
        f"moto_deploy: {stack_name} CREATE_COMPLETE: {len(stack_resources)} stack resources, "
        f"{len(created_outside)} through service APIs ({', '.join(sorted(created_outside))}), "
        f"not deployed: {[d['LogicalId'] for d in not_deployed] or 'none'}; "
        f"outputs -> {out_path} in {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
