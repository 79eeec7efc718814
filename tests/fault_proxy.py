"""A fault-injecting HTTP proxy for tests: sits between a client and ``tests/chat_server``.

Each request gets a fault from a seeded schedule keyed by (request body, how many times that
body was seen), so the outcome of every attempt is reproducible however the client's
concurrent requests interleave -- and a test can predict which requests must end in a retried
success and which in a recorded error.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from chat_server import LoopbackServer

OK = "ok"
RATE_LIMITED = "429"
SERVER_ERROR = "500"
HANG = "hang"  # holds the connection past the client's timeout, then drops it
TRUNCATED = "truncated"  # the upstream's JSON cut in half
NO_CHOICES = "no_choices"  # valid JSON without "choices"
FAULTS = (RATE_LIMITED, SERVER_ERROR, HANG, TRUNCATED, NO_CHOICES)


def body_digest(body: bytes) -> str:
    """The request's identity: its messages, however a client release serializes the rest."""
    try:
        key = json.dumps(json.loads(body).get("messages"), sort_keys=True).encode()
    except (ValueError, AttributeError):
        key = body
    return hashlib.sha256(key).hexdigest()[:16]


@dataclass
class FaultProxy:
    """Forwards ``POST`` requests to ``upstream`` (``http://host:port``) unless the schedule
    says otherwise; ``rates`` maps fault names to probabilities (the rest is ``ok``)."""

    upstream: str
    rates: Mapping[str, float]
    seed: int = 0
    hang_s: float = 1.0
    retry_after: str = "1"
    log: list[tuple[str, int, str]] = field(default_factory=list)  # (digest, attempt, fault)
    arrived: dict[tuple[str, int], float] = field(default_factory=dict)  # monotonic seconds
    bodies: dict[str, bytes] = field(default_factory=dict)  # digest -> request body

    def __post_init__(self) -> None:
        unknown = set(self.rates) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}")
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._httpd = LoopbackServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def fault(self, digest: str, attempt: int) -> str:
        """The scheduled fault of this body's ``attempt``-th arrival (0-based)."""
        draw = random.Random(f"{self.seed}:{digest}:{attempt}").random()
        for name in FAULTS:
            draw -= self.rates.get(name, 0.0)
            if draw < 0:
                return name
        return OK

    def next_fault(self, body: bytes) -> str:
        digest = body_digest(body)
        with self._lock:
            attempt = self._seen[digest]
            self._seen[digest] += 1
            fault = self.fault(digest, attempt)
            self.bodies[digest] = body
            self.log.append((digest, attempt, fault))
            self.arrived[digest, attempt] = time.monotonic()
        return fault

    def forward(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.upstream + path, data=body, method="POST",
            headers={k: v for k, v in headers.items()
                     if k.lower() in ("content-type", "authorization")},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            fault = proxy.next_fault(body)
            if fault == HANG:
                time.sleep(proxy.hang_s)
                self.close_connection = True
                return
            if fault == RATE_LIMITED:
                self._send(429, _error("rate limited"), {"Retry-After": proxy.retry_after})
                return
            if fault == SERVER_ERROR:
                self._send(500, _error("internal error"))
                return
            status, data = proxy.forward(self.path, body, dict(self.headers.items()))
            if status == 200 and fault == TRUNCATED:
                data = data[: len(data) // 2]
            elif status == 200 and fault == NO_CHOICES:
                payload = json.loads(data)
                payload.pop("choices", None)
                data = json.dumps(payload).encode()
            self._send(status, data)

        def _send(self, status: int, data: bytes, headers: Mapping[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read ``proxy.log`` instead of access logs."""

    return Handler


def _error(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "server_error"}}).encode()
