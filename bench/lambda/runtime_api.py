#!/usr/bin/env python3
"""A small AWS Lambda Runtime API emulator (Python 3 standard library only).

It serves the part of the Runtime API that a custom runtime (a Rust `bootstrap` built with
lambda_runtime / lambda_http) uses:

    GET  /2018-06-01/runtime/invocation/next            hands out the next event
    POST /2018-06-01/runtime/invocation/{id}/response   the function's result
    POST /2018-06-01/runtime/invocation/{id}/error      the function's error
    POST /2018-06-01/runtime/init/error                 the function failed its cold start

It also answers Secrets Manager's GetSecretValue (any POST to "/" with
`X-Amz-Target: secretsmanager.GetSecretValue`), so a function whose AWS_ENDPOINT_URL points
here can load its secrets during init without any network beyond loopback.

It records when each of these calls arrived (time.perf_counter_ns), which is what
coldstart.py needs: init duration = spawn -> first GET .../invocation/next.

Standalone, for poking at a bootstrap by hand (serves each event file once, then waits):

    python3 bench/lambda/runtime_api.py --port 9001 --event event.json
    AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001 ./bootstrap

It binds 127.0.0.1 only.
"""
import argparse
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:000000000000:function:{name}"
# How long a GET .../next waits for an event before answering 504 (the real API waits for
# ever; this emulator must end by itself).
NEXT_WAIT_S = 30.0


class RuntimeApi:
    """Emulator state: the events still to hand out and what happened, with timestamps."""

    def __init__(self, port=0, function_name="wabridge", secret=None):
        self.function_name = function_name
        self.secret = secret  # dict served by GetSecretValue, or None
        self.cond = threading.Condition()
        self.round = 0
        self.reset([])
        handler = type("Handler", (_Handler,), {"api": self})
        self.server = _Server(("127.0.0.1", port), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    def reset(self, events, function_name=None):
        """Starts a new round: `events` (bytes each) are handed out in order."""
        with self.cond:
            if function_name:
                self.function_name = function_name
            self.round += 1  # a GET .../next left over from the last round never gets these
            self.pending = list(events)
            self.closed = False
            self.next_calls = []  # perf_counter_ns of every GET .../next
            self.delivered = {}  # request id -> perf_counter_ns when the event was sent
            self.results = []  # (kind, request id, perf_counter_ns, body bytes)
            self.init_error = None  # (perf_counter_ns, body bytes)
            self.secret_calls = 0
            self.cond.notify_all()

    def close_round(self):
        """Releases any GET .../next still waiting (it gets a 504)."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wait(self, predicate, timeout_s):
        """Waits (bounded) until predicate(self) is true; returns its last value."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 0.5))
            return predicate(self)

    def _record(self, kind, request_id, body):
        now = time.perf_counter_ns()
        with self.cond:
            if kind == "init_error":
                self.init_error = (now, body)
            else:
                self.results.append((kind, request_id, now, body))
            self.cond.notify_all()

    def _next_event(self):
        """Blocks (bounded) until an event is pending; returns (request id, body) or None."""
        now = time.perf_counter_ns()
        deadline = time.monotonic() + NEXT_WAIT_S
        with self.cond:
            round_ = self.round
            self.next_calls.append(now)
            self.cond.notify_all()
            while not self.pending and not self.closed and self.round == round_:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.5))
            if not self.pending or self.closed or self.round != round_:
                return None
            request_id = str(uuid.uuid4())
            self.delivered[request_id] = time.perf_counter_ns()
            return request_id, self.pending.pop(0)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A bootstrap killed at the end of a run resets its connections: not worth a traceback.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    api = None  # set per server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _reply(self, status, body=b"", headers=None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self):
        if self.path != f"{PREFIX}/invocation/next":
            return self._reply(404, b'{"errorType":"NotFound"}')
        got = self.api._next_event()
        if got is None:
            return self._reply(504, b'{"errorType":"NoEvent"}')
        request_id, body = got
        deadline_ms = int(time.time() * 1000) + 30_000
        self._reply(
            200,
            body,
            {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": request_id,
                "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN.format(
                    name=self.api.function_name
                ),
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;"
                "Parent=0000000000000000;Sampled=0",
            },
        )

    def do_POST(self):
        body = self._body()
        path = self.path
        if path == f"{PREFIX}/init/error":
            self.api._record("init_error", None, body)
            return self._reply(202, b'{"status":"OK"}')
        if path.startswith(f"{PREFIX}/invocation/"):
            parts = path[len(PREFIX) + len("/invocation/") :].split("/")
            if len(parts) == 2 and parts[1] in ("response", "error"):
                self.api._record(parts[1], parts[0], body)
                return self._reply(202, b'{"status":"OK"}')
        if path == "/" and self.headers.get("X-Amz-Target") == "secretsmanager.GetSecretValue":
            return self._get_secret_value(body)
        return self._reply(404, b'{"errorType":"NotFound"}')

    def _get_secret_value(self, body):
        with self.api.cond:
            self.api.secret_calls += 1
        if self.api.secret is None:
            return self._reply(
                400,
                b'{"__type":"ResourceNotFoundException","message":"no secret"}',
                {"Content-Type": "application/x-amz-json-1.1"},
            )
        secret_id = json.loads(body or b"{}").get("SecretId", "wabridge")
        out = {
            "ARN": secret_id,
            "Name": "wabridge",
            "VersionId": "00000000-0000-4000-8000-000000000000",
            "SecretString": json.dumps(self.api.secret),
            "VersionStages": ["AWSCURRENT"],
            "CreatedDate": 1_700_000_000,
        }
        self._reply(
            200, json.dumps(out).encode(), {"Content-Type": "application/x-amz-json-1.1"}
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--event", action="append", default=[], help="event JSON file (repeatable)")
    parser.add_argument("--seconds", type=float, default=300, help="stop after this long")
    args = parser.parse_args()
    events = [open(path, "rb").read() for path in args.event]
    api = RuntimeApi(args.port).start()
    api.reset(events)
    print(f"Runtime API on {api.address}; AWS_LAMBDA_RUNTIME_API={api.address}", flush=True)
    try:
        done = api.wait(lambda a: len(a.results) >= len(events) or a.init_error, args.seconds)
        for kind, request_id, _, body in api.results:
            print(f"{kind} {request_id}: {body.decode(errors='replace')}")
        if api.init_error:
            print(f"init error: {api.init_error[1].decode(errors='replace')}")
        if not done:
            print(f"stopped after {args.seconds} s")
    finally:
        api.stop()


if __name__ == "__main__":
    main()
