#!/usr/bin/env python3
"""Cold-start init duration of the Lambda packages, against the local Runtime API emulator.

For each function it unzips target/lambda/<arch>/<function>/bootstrap.zip (what
scripts/lambda-package.sh builds) and starts `bootstrap` RUNS times, each a fresh process,
with AWS_LAMBDA_RUNTIME_API pointing at bench/lambda/runtime_api.py on 127.0.0.1.

    init duration   = process spawn -> its first GET /2018-06-01/runtime/invocation/next
                      (what Lambda reports as "Init Duration": the function's cold start)
    first invoke    = event handed out -> POST .../response (a trivial event: GET /healthz for
                      the Function URL functions, an SQS batch with no records for the others)
    peak RSS        = the process's VmHWM after that first invocation

Runs go round-robin over the functions, so that a slow minute of a shared VM hits them all.

Secrets, two ways (--secrets):
    env             WABRIDGE_SECRETS_ARN unset, secrets in the environment (AWS_SAM_LOCAL=true,
                    as under `sam local`): init does no AWS call at all.
    secretsmanager  WABRIDGE_SECRETS_ARN set, as on AWS, and AWS_ENDPOINT_URL pointing at the
                    emulator, which answers GetSecretValue: init pays the SDK's first request
                    (client, credentials, signing, one HTTP round trip on loopback, no TLS).

The process gets only the variables Lambda sets (plus fake credentials and the function's
configuration as in infra/template.yaml), never the caller's environment.

    python3 bench/lambda/coldstart.py [--arch x86_64] [--runs 20] [--secrets both]
                                      [--env KEY=VALUE ...] [--json FILE]

Every wait is bounded (--timeout per run); only loopback is used.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_api import RuntimeApi  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ["ingest", "attribution", "crm-sync", "sender"]
ELF_MACHINE = {0x3E: "x86_64", 0xB7: "arm64"}
ACCOUNT = "000000000000"
QUEUE = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/wabridge-"
SECRET_ARN = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:wabridge-AbCdEf"

# Fake values, long enough for every check; nothing here is a real secret.
SECRETS = {
    "WHATSAPP_APP_SECRET": "coldstart-fake-app-secret-0123456789abcdef",
    "WHATSAPP_VERIFY_TOKEN": "coldstart-fake-verify-token",
    "WHATSAPP_ACCESS_TOKEN": "coldstart-fake-access-token",
    "WABRIDGE_API_KEY": "coldstart-fake-api-key-0123456789",
    "CRM_WEBHOOK_SECRET": "coldstart-fake-webhook-secret-0123456789",
    "HUBSPOT_TOKEN": "coldstart-fake-hubspot-token",
}

# Each function's configuration, as infra/template.yaml sets it (defaults for the parameters).
CONFIG = {
    "ingest": {
        "WABRIDGE_TABLE": "wabridge",
        "EVENTS_QUEUE_URL": QUEUE + "events",
        "SENDS_QUEUE_URL": QUEUE + "sends",
    },
    "attribution": {
        "WABRIDGE_TABLE": "wabridge",
        "META_DATASET_ID": "123456789012345",
    },
    "crm-sync": {
        "WABRIDGE_TABLE": "wabridge",
        "EVENTS_QUEUE_URL": QUEUE + "events",
        "EVENTS_DLQ_URL": QUEUE + "events-dlq",
        "CRM_KIND": "webhook",
        "CRM_WEBHOOK_URL": "https://crm.example.com/wabridge",
    },
    "sender": {
        "WABRIDGE_TABLE": "wabridge",
        "SENDS_QUEUE_URL": QUEUE + "sends",
        "SENDS_DLQ_URL": QUEUE + "sends-dlq",
        "EVENTS_QUEUE_URL": QUEUE + "events",
        "WHATSAPP_PHONE_NUMBER_ID": "106540352242922",
        "WHATSAPP_BUSINESS_ACCOUNT_ID": "102290129340398",
        "WABRIDGE_SENDS_PER_SECOND": "80",
        "WABRIDGE_SENDER_INSTANCES": "1",
    },
}


def healthz_event():
    """A Function URL (HTTP API payload 2.0) GET /healthz."""
    domain = "abcdefghijklmnopqrstuvwxyz123456.lambda-url.us-east-1.on.aws"
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/healthz",
        "rawQueryString": "",
        "headers": {"host": domain, "user-agent": "coldstart", "x-forwarded-proto": "https"},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": domain.split(".")[0],
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": "GET",
                "path": "/healthz",
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "coldstart",
            },
            "requestId": "coldstart",
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }


def first_event(function):
    if function in ("ingest", "attribution"):
        return json.dumps(healthz_event()).encode()
    return b'{"Records": []}'


def environment(function, api, secrets_mode, task_root):
    """The variables Lambda sets for provided.al2023, fake credentials, the function's config."""
    name = f"wabridge-{function}"
    env = {
        "PATH": "/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": str(task_root),
        "_HANDLER": "bootstrap",
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]00000000000000000000000000000000",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "ASIACOLDSTARTFAKE000",
        "AWS_SECRET_ACCESS_KEY": "coldstart/fake/secret/access/key/0000000000",
        "AWS_SESSION_TOKEN": "coldstart-fake-session-token",
    }
    env.update(CONFIG[function])
    if secrets_mode == "env":
        env["AWS_SAM_LOCAL"] = "true"  # secrets.rs: a local emulator may take them from env
        env.update(SECRETS)
    else:
        env["WABRIDGE_SECRETS_ARN"] = SECRET_ARN
        env["AWS_ENDPOINT_URL"] = f"http://{api.address}"
    return env


def elf_arch(path):
    with open(path, "rb") as f:
        header = f.read(20)
    if header[:4] != b"\x7fELF":
        return "not ELF"
    return ELF_MACHINE.get(int.from_bytes(header[18:20], "little"), "other")


def peak_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def one_run(function, bootstrap, mode, log, timeout_s, extra_env):
    """Starts bootstrap once, against a Runtime API of its own (a fresh port: nothing a killed
    run left in flight can reach the next one); returns timings (ms) or an error."""
    api = RuntimeApi(secret=SECRETS, function_name=f"wabridge-{function}").start()
    proc = None
    try:
        env = environment(function, api, mode, bootstrap.parent)
        env.update(extra_env)
        api.reset([first_event(function)])
        t0 = time.perf_counter_ns()
        proc = subprocess.Popen(
            [str(bootstrap)],
            cwd=bootstrap.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        api.wait(lambda a: a.results or a.init_error or proc.poll() is not None, timeout_s)
        rss = peak_rss_kib(proc.pid)
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        if proc is not None:
            proc.wait(timeout=10)
        api.stop()
    with api.cond:
        next_calls, results, init_error = list(api.next_calls), list(api.results), api.init_error
        delivered = dict(api.delivered)
        secret_calls = api.secret_calls
    out = {"secret_calls": secret_calls, "peak_rss_kib": rss}
    if init_error:
        out["error"] = "init/error: " + init_error[1].decode(errors="replace")[:300]
        return out
    if not next_calls:
        out["error"] = f"no GET .../next within {timeout_s} s (exit code {proc.returncode})"
        return out
    out["init_ms"] = (next_calls[0] - t0) / 1e6
    if results:
        kind, request_id, at, body = results[0]
        out["invoke_ms"] = (at - delivered[request_id]) / 1e6
        if kind != "response":
            out["error"] = "invocation error: " + body.decode(errors="replace")[:300]
    else:
        out["error"] = "no response to the first event"
    return out


def percentile(values, p):
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(values):
    if not values:
        return None
    return {
        "min": min(values),
        "median": statistics.median(values),
        "p90": percentile(values, 90),
        "max": max(values),
    }


def fmt(stats):
    if not stats:
        return "-"
    return " / ".join(f"{stats[k]:.1f}" for k in ("min", "median", "p90", "max"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="x86_64", choices=["x86_64", "arm64"])
    parser.add_argument("--lambda-dir", default=str(ROOT / "target" / "lambda"))
    parser.add_argument("--functions", default=",".join(FUNCTIONS))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--secrets", default="both", choices=["env", "secretsmanager", "both"])
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra variable for every bootstrap (repeatable)")
    args = parser.parse_args()
    if not 1 <= args.runs <= 1000:
        parser.error("--runs must be 1..1000")
    functions = [f for f in args.functions.split(",") if f]
    extra_env = dict(kv.split("=", 1) for kv in args.env)
    modes = ["env", "secretsmanager"] if args.secrets == "both" else [args.secrets]
    host = {"x86_64": "x86_64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)

    work = Path(tempfile.mkdtemp(prefix="wabridge-coldstart-"))
    raw = {}
    failed = False
    bootstraps = {}
    try:
        for function in functions:
            package = Path(args.lambda_dir) / args.arch / function / "bootstrap.zip"
            if not package.is_file():
                sys.exit(f"{package} is missing: run scripts/lambda-package.sh --arch {args.arch}")
            task_root = work / function
            with zipfile.ZipFile(package) as z:
                z.extractall(task_root)
            bootstrap = task_root / "bootstrap"
            bootstrap.chmod(0o755)
            arch = elf_arch(bootstrap)
            if arch != host:
                sys.exit(
                    f"{package} is {arch}, this machine is {host}: it cannot be run here "
                    "(an emulator such as qemu would not give meaningful timings)"
                )
            bootstraps[function] = bootstrap
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    log_path = work / "bootstrap.log"
    print(
        f"{args.runs} cold starts per function and secrets mode, arch {args.arch}; "
        f"bootstrap output: {log_path}",
        file=sys.stderr,
    )
    with open(log_path, "wb") as log:
        for i in range(args.runs):
            for mode in modes:
                for function in functions:
                    run = one_run(
                        function, bootstraps[function], mode, log, args.timeout, extra_env
                    )
                    raw.setdefault(f"{function}/{mode}", []).append(run)
                    if "error" in run:
                        failed = True
                        print(f"run {i + 1} {function} ({mode}): {run['error']}",
                              file=sys.stderr)

    print(f"\narch {args.arch}, {args.runs} runs each; milliseconds (min / median / p90 / max)")
    print(f"{'function':<12} {'secrets':<15} {'init duration':<30} "
          f"{'first invoke':<24} {'peak RSS':>9}")
    table = {}
    for key, runs in raw.items():
        function, mode = key.split("/")
        init = summary([r["init_ms"] for r in runs if "init_ms" in r])
        invoke = summary([r["invoke_ms"] for r in runs if "invoke_ms" in r])
        rss = [r["peak_rss_kib"] for r in runs if r.get("peak_rss_kib")]
        rss_mib = statistics.median(rss) / 1024 if rss else None
        table[key] = {"init_ms": init, "invoke_ms": invoke, "peak_rss_mib": rss_mib,
                      "errors": sum("error" in r for r in runs), "runs": len(runs)}
        print(f"{function:<12} {mode:<15} {fmt(init):<30} {fmt(invoke):<24} "
              f"{(f'{rss_mib:.1f} MiB' if rss_mib else '-'):>9}")
    if args.json:
        meta = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "arch": args.arch,
            "runs": args.runs,
            "env": extra_env,
            "cpus": os.cpu_count(),
            "load": os.getloadavg(),
        }
        Path(args.json).write_text(json.dumps({"meta": meta, "summary": table, "raw": raw},
                                              indent=1))
    if failed:
        print(f"some runs failed; bootstrap output kept in {work}", file=sys.stderr)
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
