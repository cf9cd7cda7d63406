"""Checks relayed deliveries the way a pywa bot does: pywa's own X-Hub-Signature-256 check.

Usage: python pywa_verify.py SECRET < deliveries.jsonl
Each input line is {"body": "<the POST body as received>", "signature": "<the header>"}.
Prints one line per delivery: "valid" or "invalid".
"""

import json
import sys

from pywa import utils

secret = sys.argv[1]
for line in sys.stdin:
    d = json.loads(line)
    ok = utils.webhook_updates_validator(
        app_secret=secret,
        request_body=d["body"].encode("utf-8"),
        x_hub_signature=d["signature"],
    )
    print("valid" if ok else "invalid")
