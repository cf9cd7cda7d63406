#!/usr/bin/env python3
"""Regenerates events/lambda/*.json: Lambda test events for `cargo lambda invoke` and
`sam local invoke`, built from the sample webhooks in events/webhooks/.

Function URL events (payload format 2.0) are signed with the SAMPLE app secret below, which
exists only for these files (never use it anywhere real). The tests in
tests/tests/aws_lambda_ingest.rs run every file through the ingest handler.

    python3 scripts/lambda_events.py
"""
import base64
import hashlib
import hmac
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "events" / "lambda"
SAMPLE_APP_SECRET = "wabridge-sample-app-secret-not-for-production"
SAMPLE_VERIFY_TOKEN = "wabridge-sample-verify-token"
DOMAIN = "abcdefghijklmnopqrstuvwxyz123456.lambda-url.us-east-1.on.aws"


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SAMPLE_APP_SECRET.encode(), body, hashlib.sha256).hexdigest()


def function_url_event(method, body=None, *, query="", headers=None, base64_body=False, request_id):
    hdrs = {
        "host": DOMAIN,
        "user-agent": "facebookexternalua",
        "x-forwarded-for": "173.252.127.7",
        "x-forwarded-proto": "https",
        "x-forwarded-port": "443",
        "x-amzn-trace-id": "Root=1-673ff0a0-0123456789abcdef01234567",
    }
    hdrs.update(headers or {})
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/webhook",
        "rawQueryString": query,
        "headers": hdrs,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": DOMAIN.split(".")[0],
            "domainName": DOMAIN,
            "domainPrefix": DOMAIN.split(".")[0],
            "http": {
                "method": method,
                "path": "/webhook",
                "protocol": "HTTP/1.1",
                "sourceIp": "173.252.127.7",
                "userAgent": "facebookexternalua",
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": "22/Nov/2026:03:00:00 +0000",
            "timeEpoch": 1795402800000,
        },
        "isBase64Encoded": base64_body,
    }
    if query:
        event["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&"))
    if body is not None:
        event["body"] = base64.b64encode(body).decode() if base64_body else body.decode()
    return event


def webhook(name: str) -> bytes:
    return (ROOT / "events" / "webhooks" / name).read_bytes()


def queue_event(key, item, contact=None):
    """An events-queue message body (wabridge_core::event::Event, v1)."""
    event = {
        "v": 1,
        "key": key,
        "kind": "message",
        "field": "messages",
        "waba_id": "102290129340398",
        "phone_number_id": "106540352242922",
        "display_phone_number": "525550001111",
        "item": item,
        "received_at": 1795402800123,
    }
    if contact is not None:
        event["contact"] = contact
    return event


def sqs_record(n, body, receive_count=1):
    return {
        "messageId": f"0f3c5b1e-8a44-4c1d-9d55-00000000000{n}",
        "receiptHandle": f"AQEBsample{n}receipt/handle==",
        "body": json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1795402800200",
            "SenderId": "AROAEXAMPLE:ingest",
            "ApproximateFirstReceiveTimestamp": "1795402800300",
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:wabridge-events",
        "awsRegion": "us-east-1",
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    text = webhook("text_es_mx.json")
    batched = webhook("batched_multi_entry.json")
    files = {
        "function-url-webhook-post.json": function_url_event(
            "POST", text, request_id="11111111-1111-4111-8111-111111111111",
            headers={"content-type": "application/json", "x-hub-signature-256": sign(text)},
        ),
        "function-url-webhook-post-base64.json": function_url_event(
            "POST", batched, base64_body=True, request_id="22222222-2222-4222-8222-222222222222",
            headers={"content-type": "application/json", "x-hub-signature-256": sign(batched)},
        ),
        "function-url-webhook-post-bad-signature.json": function_url_event(
            "POST", text, request_id="33333333-3333-4333-8333-333333333333",
            headers={"content-type": "application/json", "x-hub-signature-256": sign(text + b" ")},
        ),
        "function-url-handshake.json": function_url_event(
            "GET", None, request_id="44444444-4444-4444-8444-444444444444",
            query=f"hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={SAMPLE_VERIFY_TOKEN}",
        ),
        "sqs-events-batch.json": {
            "Records": [
                sqs_record(1, queue_event(
                    "m:wamid.HBgNNjI4QjQ5RDk2RENERTk3QTQzMERENEY1",
                    {"from": "5215512345678", "id": "wamid.HBgNNjI4QjQ5RDk2RENERTk3QTQzMERENEY1",
                     "timestamp": "1763700000", "type": "text",
                     "text": {"body": "Hola, ¿tienen envío a Guadalajara? Quiero 2 cajas 🙌"}},
                    {"profile": {"name": "María Fernanda López"}, "wa_id": "5215512345678"})),
                sqs_record(2, queue_event(
                    "m:wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjBDMEE4",
                    {"from": "5511987654321", "id": "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjBDMEE4",
                     "timestamp": "1763700042", "type": "text",
                     "text": {"body": "Oi! Vocês entregam em Campinas?"}},
                    {"profile": {"name": "João Pedro Souza"}, "wa_id": "5511987654321"}), receive_count=2),
            ]
        },
        # What the sender's hourly schedule sends (infra/template.yaml, TemplateSync).
        "sender-template-sync.json": {"wabridge": "template_sync"},
    }
    for name, event in files.items():
        (OUT / name).write_text(json.dumps(event, ensure_ascii=False, indent=2) + "\n")
        print(f"wrote events/lambda/{name}")


if __name__ == "__main__":
    main()
