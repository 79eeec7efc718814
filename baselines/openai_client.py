"""One way to reach an OpenAI-compatible server, shared by the chat generators and openai-emb.

- **Endpoint**: the URL goes to the client as given; identities, errors and log records only
  ever see ``bench.core.redact.mask_url`` of it (a key inside ``https://user:KEY@host`` or
  ``?api_key=KEY`` stays in the process). The key comes from ``$OPENAI_API_KEY``; a loopback
  server gets a dummy one.
- **Retries** are the openai client's own: exponential backoff with jitter, ``Retry-After``,
  408/409/429/5xx, timeouts and dropped connections. A transport under the client sees every
  attempt, so the retries and timeouts of each request are counted (``Tally``).
- **Concurrency adapts** (``AdaptiveConcurrency``): a server that serves one request at a time
  on a CPU queues concurrent requests until they time out, and the retries of the abandoned
  ones pile up behind them. So every attempt takes a slot of an AIMD window that starts at one
  request (the first request measures the server), grows while replies come back well inside
  the timeout, and halves on a timeout, 429 or 503.
- **Errors** become one masked line with the HTTP status and the server's own error body;
  a refused key or a model the server does not serve is fatal (``refusal``), not a failure
  per request.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import ModuleType
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import openai

from bench.core.errors import BenchError
from bench.core.redact import MASK, mask_text, mask_url

DEFAULT_URL = "https://api.openai.com/v1"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
#: Sent as the key to a loopback server when $OPENAI_API_KEY is unset (vLLM ignores it).
LOOPBACK_KEY = "EMPTY"
#: Statuses that mean "too much at once": the window halves, as on a timeout.
OVERLOAD_STATUSES = frozenset({429, 503})
MAX_REASON = 400


def _http_library() -> ModuleType:
    """The HTTP library this openai release is built on -- httpx2 from openai 3, httpx before
    -- so that the transports below plug into its client whichever release is installed."""
    for cls in openai.DefaultAsyncHttpxClient.__mro__:
        root = cls.__module__.partition(".")[0]
        if root in ("httpx", "httpx2"):
            return importlib.import_module(root)
    raise ImportError(f"openai {openai.__version__} is built on neither httpx nor httpx2")


HTTP = _http_library()
#: How a 400 says the model itself is the problem (and a too-long prompt does not).
_DENIAL = re.compile(r"\bnot\b|n't\b|\bunknown\b|\binvalid\b|\bunsupported\b", re.IGNORECASE)


# --------------------------------------------------------------------------- the endpoint


@dataclass(frozen=True)
class Endpoint:
    """A server URL (None: OpenAI's) and what of it may be shown."""

    url: str | None

    @property
    def public(self) -> str:
        """The URL with credentials masked: safe to print and to hash into keys."""
        return mask_url(self.url or DEFAULT_URL).rstrip("/")

    @property
    def host(self) -> str:
        """host[:port], without any credentials."""
        parts = urlsplit(self.url or DEFAULT_URL)
        host = parts.hostname or MASK
        return f"{host}:{parts.port}" if parts.port else host

    @property
    def client_url(self) -> str | None:
        """The URL for the openai client, which cannot join paths onto a query: the query
        goes to every request as ``default_query`` instead."""
        if self.url is None:
            return None
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))

    @property
    def query(self) -> dict[str, str] | None:
        pairs = parse_qsl(urlsplit(self.url or "").query, keep_blank_values=True)
        return dict(pairs) or None

    def api_key(self, where: str | None = None) -> str:
        key = os.environ.get("OPENAI_API_KEY")
        if key:
            return key
        if urlsplit(self.url or DEFAULT_URL).hostname in LOOPBACK:
            return LOOPBACK_KEY
        raise BenchError(
            f"OPENAI_API_KEY is not set for {self.host}", where=where,
            hint="export OPENAI_API_KEY=...; the key is read from the environment only",
        )

    def secrets(self) -> list[str]:
        """Every credential this endpoint could leak: the key and the URL's userinfo/query."""
        parts = urlsplit(self.url or DEFAULT_URL)
        found = [os.environ.get("OPENAI_API_KEY", ""), parts.username or "",
                 parts.password or ""]
        found += [pair.partition("=")[2] for pair in parts.query.split("&")]
        return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        """``text`` in one line, with every URL and every known credential masked."""
        text = mask_text(" ".join(text.split()))
        for secret in self.secrets():
            text = text.replace(secret, MASK)
        return text


def reason(exc: BaseException, endpoint: Endpoint) -> str:
    """Why a request failed, in one masked line: the HTTP status and the server's error body
    (its ``message`` when it sent the OpenAI error shape, else the body as sent)."""
    if isinstance(exc, openai.APIStatusError):
        body = exc.body
        if isinstance(body, dict):
            body = body.get("message") or body
        text = f"HTTP {exc.status_code} {type(exc).__name__}: {body or exc.response.text}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return endpoint.mask(text)[:MAX_REASON]


def refusal(exc: openai.APIStatusError, model: str, endpoint: Endpoint,
            where: str | None = None) -> BenchError | None:
    """A BenchError when every request would fail the same way: the key is refused, or the
    server does not serve ``model`` (404, or a 400 about the model); None otherwise."""
    why = reason(exc, endpoint)
    if exc.status_code in (401, 403):
        return BenchError(f"{endpoint.host} refused the key: {why}", where=where,
                          hint="check $OPENAI_API_KEY and --base-url")
    about_model = exc.code == "model_not_found" or exc.param == "model" or (
        model in why and _DENIAL.search(why) is not None)
    if exc.status_code == 404 or (exc.status_code == 400 and about_model):
        return BenchError(f"model {model!r} is not served by {endpoint.host}: {why}",
                          where=where,
                          hint="check --model-name (the server's model id) and --base-url")
    return None


# --------------------------------------------------------------------------- attempts


@dataclass
class Tally:
    """The attempts one logical request took, and what went wrong in them."""

    attempts: int = 0
    faults: Counter[str] = field(default_factory=Counter)

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)


_CURRENT: ContextVar[Tally | None] = ContextVar("openai_client_tally", default=None)


@contextmanager
def tally() -> Iterator[Tally]:
    """Count the attempts of the requests sent inside this block (this task only)."""
    found = Tally()
    token = _CURRENT.set(found)
    try:
        yield found
    finally:
        _CURRENT.reset(token)


def _note(fault: str | None) -> None:
    current = _CURRENT.get()
    if current is not None:
        current.attempts += 1
        if fault:
            current.faults[fault] += 1


def _fault(status: int) -> str | None:
    return None if status < 400 else f"HTTP {status}"


@dataclass
class AdaptiveConcurrency:
    """How many attempts may be in flight at one server: an AIMD window.

    Starts at one request; in slow start each reply that came back within half the timeout
    adds one slot, afterwards a full window of them does (additive increase). A reply slower
    than half the timeout stops the growth -- for a server that answers one request at a time,
    latency is the queue length times the service time, so the window settles where the queue
    still fits in the timeout. A timeout, 429 or 503 halves the window (multiplicative
    decrease). The numbers outlive one event loop, so a run learns the server once."""

    ceiling: int
    timeout: float
    limit: float = 1.0
    slow_start: bool = True
    decreases: int = 0
    peak: int = 0

    @property
    def allowed(self) -> int:
        return max(1, int(self.limit))

    def succeeded(self, latency: float) -> None:
        if latency >= self.timeout / 2:
            self.slow_start = False
            return
        step = 1.0 if self.slow_start else 1.0 / self.limit
        self.limit = min(float(self.ceiling), self.limit + step)

    def overloaded(self) -> None:
        self.limit = max(1.0, self.limit / 2)
        self.slow_start = False
        self.decreases += 1


class _Gate:
    """The window's slots inside one event loop."""

    def __init__(self, control: AdaptiveConcurrency) -> None:
        self.control = control
        self.in_flight = 0
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight < self.control.allowed)
            self.in_flight += 1
            self.control.peak = max(self.control.peak, self.in_flight)
        try:
            yield
        finally:
            async with self._changed:
                self.in_flight -= 1
                self._changed.notify_all()


class _AsyncObserved(HTTP.AsyncBaseTransport):
    """Every attempt of the openai client passes here: it waits for a window slot, and its
    latency or timeout steers the window."""

    def __init__(self, inner: HTTP.AsyncBaseTransport, gate: _Gate) -> None:
        self.inner = inner
        self.gate = gate

    async def handle_async_request(self, request: HTTP.Request) -> HTTP.Response:
        control = self.gate.control
        async with self.gate.slot():
            started = time.monotonic()
            try:
                response = await self.inner.handle_async_request(request)
            except HTTP.TimeoutException:
                control.overloaded()
                _note("timeout")
                raise
            except HTTP.TransportError:
                _note("connection")
                raise
        if response.status_code in OVERLOAD_STATUSES:
            control.overloaded()
        elif response.status_code < 400:
            control.succeeded(time.monotonic() - started)
        _note(_fault(response.status_code))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Observed(HTTP.BaseTransport):
    """The blocking client's attempts, counted (one request at a time: no window)."""

    def __init__(self, inner: HTTP.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: HTTP.Request) -> HTTP.Response:
        try:
            response = self.inner.handle_request(request)
        except HTTP.TimeoutException:
            _note("timeout")
            raise
        except HTTP.TransportError:
            _note("connection")
            raise
        _note(_fault(response.status_code))
        return response

    def close(self) -> None:
        self.inner.close()


def async_client(endpoint: Endpoint, key: str, *, timeout: float, max_retries: int,
                 control: AdaptiveConcurrency) -> openai.AsyncOpenAI:
    """An async client whose attempts share ``control``'s window; use inside one event loop."""
    transport = _AsyncObserved(HTTP.AsyncHTTPTransport(), _Gate(control))
    return openai.AsyncOpenAI(
        api_key=key, base_url=endpoint.client_url, default_query=endpoint.query,
        timeout=timeout, max_retries=max_retries,
        http_client=openai.DefaultAsyncHttpxClient(transport=transport, timeout=timeout),
    )


def sync_client(endpoint: Endpoint, key: str, *, timeout: float,
                max_retries: int) -> openai.OpenAI:
    transport = _Observed(HTTP.HTTPTransport())
    return openai.OpenAI(
        api_key=key, base_url=endpoint.client_url, default_query=endpoint.query,
        timeout=timeout, max_retries=max_retries,
        http_client=openai.DefaultHttpxClient(transport=transport, timeout=timeout),
    )


# --------------------------------------------------------------------------- logs


class _MaskURLs(logging.Filter):
    """HTTP libraries log request URLs (httpx2 at INFO); mask any credentials in them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_FILTER = _MaskURLs()
for _name in ("httpx2", "httpx", "openai._base_client", "openai._response"):
    logging.getLogger(_name).addFilter(_FILTER)
