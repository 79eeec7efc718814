"""The OpenAI-family generators over real HTTP on loopback: a toy OpenAI-compatible server,
optionally behind a fault-injecting proxy. Waiting (backoff, Retry-After, rate limits) runs on
a fake clock, so only the client timeouts of the hang faults cost real time."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from baselines.generators.openai_chat import (
    OpenAIChat,
    build,
    build_gpt4o,
    build_gpt4o_mini,
    build_gpt35,
    image_tokens,
)
from baselines.generators.ratelimit import RateLimiter, TokenBucket
from baselines.openai_client import LOOPBACK_KEY
from bench.core.config import RunSpec
from bench.core.context import BuildContext
from bench.core.errors import BenchError
from bench.task.data.schema import Conversation, Item
from bench.task.parser import OVER_BUDGET
from bench.task.protocols import Request

sys.path.insert(0, str(Path(__file__).parent))
from chat_server import IMAGE_TOKENS, SNAPSHOT, ChatServer
from fault_proxy import FaultProxy

PRICES = {"gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}}
FILLER = ["blue ceramic mug", "steel water bottle", "oak picture frame", "linen table runner"]


class FakeClock:
    """Time that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


def make_requests(n: int, image_dir: Path | None = None) -> tuple[list[Request], list[str]]:
    """n conversations, each with exactly one candidate whose title matches it, at a position
    that varies; returns the requests and the matching ASINs."""
    requests, expected = [], []
    for i in range(n):
        titles = [*FILLER]
        titles.insert(i % 5, f"red wool scarf style{i}")
        items = []
        for j, title in enumerate(titles):
            path = None
            if image_dir is not None and j != 2:  # the third candidate has no image
                path = image_dir / f"{i}_{j}.jpg"
                Image.new("RGB", (40 + 8 * j, 30), (20 * j, 90, 160)).save(path, "JPEG")
            items.append(Item(asin=f"B{i:04d}{j:05d}", title=title, image_path=path))
        conversation = Conversation(
            id=f"c{i}", context=f"<submission> I need a red wool scarf style{i} for winter."
        )
        requests.append(Request(conversation, tuple(items)))
        expected.append(items[i % 5].asin)
    return requests, expected


def chat(name_builder=build_gpt4o_mini, clock: FakeClock | None = None, **options) -> OpenAIChat:
    generator = name_builder(BuildContext(options=options, prices=PRICES))
    return generator if clock is None else replace(generator, clock=clock)


@pytest.fixture
def server():
    with ChatServer() as running:
        yield running


def test_answers_in_order_with_usage_and_cost(server: ChatServer) -> None:
    requests, expected = make_requests(10)
    choices = chat(base_url=server.base_url, concurrency=4).recommend(requests)
    assert [c.item_id for c in choices] == expected
    assert len(server.received) == 10
    for choice in choices:
        usage = choice.usage
        assert choice.failure is None
        assert usage["model"] == SNAPSHOT  # the dated snapshot, priced via its undated name
        assert usage["system_fingerprint"] == "fp_loopback01"
        assert usage["truncated"] == 0 and "unpriced" not in usage
        assert usage["cost_usd"] == pytest.approx(
            (usage["prompt_tokens"] * 0.15 + usage["completion_tokens"] * 0.6) / 1e6
        )
    body = server.received[0].body
    assert body["model"] == "gpt-4o-mini"
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.0, 10, 0)
    assert isinstance(body["messages"][0]["content"], str)  # titles only by default


def test_unpriced_model_costs_nothing_and_is_flagged() -> None:
    requests, _ = make_requests(2)
    with ChatServer(snapshot="my-open-model") as server:
        generator = chat(build, model="my-open-model", base_url=server.base_url)
        choices = generator.recommend(requests)
    assert all(c.usage["cost_usd"] == 0 and c.usage["unpriced"] == 1 for c in choices)
    assert generator.estimate(requests)["cost_usd"] is None


def test_faults_end_in_retried_success_or_recorded_error(server: ChatServer) -> None:
    requests, expected = make_requests(16)
    rates = {"429": 0.15, "500": 0.15, "hang": 0.08, "truncated": 0.1, "no_choices": 0.1}
    upstream = server.base_url.removesuffix("/v1")
    with FaultProxy(upstream, rates, seed=1, hang_s=0.8) as proxy:
        generator = chat(base_url=proxy.base_url, max_retries=2, timeout=0.5, concurrency=8)
        choices = generator.recommend(requests)
    assert len(choices) == len(requests)
    attempts: dict[int, list[str]] = defaultdict(list)
    for digest, _, fault in sorted(proxy.log, key=lambda row: row[1]):
        text = json.loads(proxy.bodies[digest])["messages"][0]["content"]
        index = next(i for i, r in enumerate(requests) if r.conversation.context in text)
        attempts[index].append(fault)
    outcomes = set()
    for i, choice in enumerate(choices):
        faults = attempts[i]
        if "ok" in faults:  # succeeded at its first clean attempt, and was not sent again
            assert faults.index("ok") == len(faults) - 1
            assert choice.item_id == expected[i] and choice.failure is None
            assert choice.usage.get("retries", 0) == len(faults) - 1
            outcomes.add("retried" if len(faults) > 1 else "clean")
        else:  # every allowed attempt failed: recorded, nothing raised
            assert len(faults) == 3
            assert choice.item_id is None and choice.failure == "error"
            assert choice.raw and choice.usage["retries"] == 2
            outcomes.add("error")
    assert outcomes == {"clean", "retried", "error"}
    assert {f for fs in attempts.values() for f in fs} >= {"429", "500", "hang", "truncated"}
    # The openai client honoured the 429's "Retry-After: 1" before the next attempt.
    after_429 = [proxy.arrived[d, a + 1] - proxy.arrived[d, a]
                 for d, a, fault in proxy.log if fault == "429" and (d, a + 1) in proxy.arrived]
    assert after_429 and min(after_429) >= 0.99


def test_rpm_limit_delays_requests() -> None:
    with ChatServer() as server:
        clock = FakeClock()
        requests, _ = make_requests(6)
        chat(base_url=server.base_url, clock=clock, rpm=3, concurrency=1).recommend(requests)
    # Three go at once (one minute's allowance), then one every 20 s.
    assert clock.sleeps == pytest.approx([20.0, 20.0, 20.0])


def test_token_buckets_on_a_fake_clock() -> None:
    clock = FakeClock()
    bucket = TokenBucket(600, clock)  # 10 per second
    assert bucket.reserve(600) == 0
    assert bucket.reserve(50) == pytest.approx(5.0)
    assert bucket.reserve(50) == pytest.approx(10.0)  # queued behind the first
    clock.t = 10.0
    assert bucket.reserve(2000) == pytest.approx(200.0)  # oversized: waits, never blocks
    limiter = RateLimiter(rpm=None, tpm=120, clock=clock)
    asyncio.run(limiter.acquire(120))
    asyncio.run(limiter.acquire(60))
    assert clock.sleeps == [30.0]  # 2 tokens per second
    limiter.settle(reserved=60, used=20)  # 40 unused tokens come back
    assert limiter.tokens.level == pytest.approx(40.0)


def test_images_are_data_urls_at_their_slots(server: ChatServer, tmp_path: Path) -> None:
    requests, expected = make_requests(2, image_dir=tmp_path)
    # GPT-4o prices a low-detail image at 85 tokens, as the test server does.
    generator = chat(build_gpt4o, base_url=server.base_url, images=True, detail="low")
    choices = generator.recommend(requests)
    assert [c.item_id for c in choices] == expected
    for request in requests:
        body = next(r.body for r in server.received
                    if request.conversation.context in json.dumps(r.body))
        parts = body["messages"][0]["content"]
        images = [i for i, p in enumerate(parts) if p["type"] == "image_url"]
        with_image = [item for item in request.candidates if item.image_path]
        assert len(images) == len(with_image) == 4
        for index, item in zip(images, with_image, strict=True):
            # Each image follows its own candidate's "ID: title" line.
            assert parts[index - 1]["text"].endswith(f"{item.asin}: {item.title}\n")
            url = parts[index]["image_url"]["url"]
            assert url.startswith("data:image/jpeg;base64,")
            assert base64.b64decode(url.split(",", 1)[1]) == item.image_path.read_bytes()
            assert parts[index]["image_url"]["detail"] == "low"
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        assert "<image>" not in text  # the image-less candidate's slot is dropped
    estimate = generator.estimate(requests)
    used = sum(c.usage["prompt_tokens"] for c in choices)
    assert estimate["prompt_tokens"] >= 8 * IMAGE_TOKENS
    assert estimate["prompt_tokens"] == pytest.approx(used, rel=0.25)


def test_estimate_needs_no_http_and_matches_usage(server: ChatServer) -> None:
    requests, _ = make_requests(8)
    generator = chat(base_url=server.base_url)
    estimate = generator.estimate(requests)
    assert server.received == []
    choices = generator.recommend(requests)
    used = sum(c.usage["prompt_tokens"] for c in choices)
    assert estimate["prompt_tokens"] == pytest.approx(used, rel=0.25)
    assert estimate["completion_tokens"] == 10 * 8  # max_tokens: an upper bound
    assert estimate["cost_usd"] == pytest.approx(
        (estimate["prompt_tokens"] * 0.15 + estimate["completion_tokens"] * 0.6) / 1e6
    )


def test_image_tokens_follow_openai_tile_formula() -> None:
    assert image_tokens(1024, 1024, "high", "gpt-4o") == 765  # documented example
    assert image_tokens(2048, 4096, "high", "gpt-4o") == 1105  # documented example
    assert image_tokens(4096, 8192, "low", "gpt-4o") == 85
    assert image_tokens(4096, 8192, "auto", "gpt-4o") == 1105  # auto counted as high
    assert image_tokens(128, 64, "high", "gpt-4o-2024-08-06") == 85 + 170  # never enlarged
    assert image_tokens(128, 64, "high", "gpt-4o-mini") == 2833 + 5667
    assert image_tokens(500, 500, "low", "some-vllm-model") == 85


def test_conversation_is_truncated_to_the_context_window(server: ChatServer) -> None:
    requests, _ = make_requests(1)
    long = Conversation("long", "<submission> " + "words " * 2000 + "red wool scarf style0")
    request = Request(long, requests[0].candidates)
    generator = chat(base_url=server.base_url, context_window=400)
    [choice] = generator.recommend([request])
    assert choice.usage["truncated"] == 1
    assert generator.prompt(request)[1] <= 400 - 10
    assert "red wool scarf style0" in server.received[0].body["messages"][0]["content"]
    [none_left] = chat(base_url=server.base_url, context_window=100).recommend([request])
    assert (none_left.item_id, none_left.failure) == (None, OVER_BUDGET)
    assert len(server.received) == 1  # not sent


def test_identity_and_cache_key(server: ChatServer, tmp_path: Path) -> None:
    requests, _ = make_requests(1, image_dir=tmp_path)
    generator = chat(base_url=server.base_url, images=True)
    identity = generator.identity
    assert f"127.0.0.1:{server.port}" in identity and "gpt-4o-mini" in identity
    assert "images=True" in identity and "temperature=0.0" in identity
    key = generator.cache_key(requests[0])
    assert key == chat(base_url=server.base_url, images=True).cache_key(requests[0])
    assert key != chat(base_url=server.base_url, images=True, temperature=0.5).cache_key(
        requests[0])
    assert key != chat(base_url=server.base_url).cache_key(requests[0])
    Image.new("RGB", (40, 30), (255, 0, 0)).save(requests[0].candidates[0].image_path, "JPEG")
    assert generator.cache_key(requests[0]) != key  # the image bytes are in the key


def test_options_are_checked() -> None:
    with pytest.raises(BenchError, match="unknown key 'temprature'"):
        chat(temprature=0)
    with pytest.raises(BenchError, match="no model name"):
        chat(build)
    with pytest.raises(BenchError, match="takes no images"):
        chat(build_gpt35, images=True)
    with pytest.raises(BenchError, match="detail"):
        chat(detail="medium")


def test_missing_key_for_a_remote_server_is_one_clear_error(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    requests, _ = make_requests(1)
    with pytest.raises(BenchError, match=r"OPENAI_API_KEY is not set for api\.example\.com"):
        chat(base_url="https://api.example.com/v1").recommend(requests)


def test_loopback_needs_no_key(server: ChatServer, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    requests, expected = make_requests(1)
    assert [c.item_id for c in chat(base_url=server.base_url).recommend(requests)] == expected
    assert server.received[0].headers["authorization"] == f"Bearer {LOOPBACK_KEY}"


def test_api_key_is_never_written_or_logged(tmp_path: Path, monkeypatch, caplog, capfd) -> None:
    secret = "sk-test-Zq9SecretKeyNeverWritten"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    caplog.set_level(logging.DEBUG)
    from bench.execution.runner import Grid

    with ChatServer(api_key=secret) as server:
        spec = RunSpec(
            dataset="synthetic", dataset_tables={"synthetic": {"size": "small", "seed": 0}},
            domains=("all_beauty",), retrievers=("bm25",), models=("gpt-4o-mini",), limit=3,
            out=str(tmp_path / "runs"), prices=PRICES,
            generator_options={"gpt-4o-mini": {"base_url": server.base_url, "images": True}},
        )
        [payload] = Grid(spec, progress=False).run()
        assert server.received[0].headers["authorization"] == f"Bearer {secret}"
    assert payload["usage"]["cost_usd"] > 0 and payload["failures"] == {}
    assert payload["id_parser"] == "paper"  # the authors' rule by default, recorded
    # A server that rejects the key (and echoes it, as OpenAI does) -> one masked error line.
    with ChatServer(api_key="sk-other") as server, pytest.raises(BenchError) as refused:
        chat(base_url=server.base_url).recommend(make_requests(1)[0])
    assert "401" in str(refused.value) and secret not in refused.value.one_line()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "results.json" for p in written)
    for path in written:
        assert secret.encode() not in path.read_bytes(), path
    captured = capfd.readouterr()
    assert secret not in caplog.text + captured.out + captured.err


def test_the_four_names_are_registered() -> None:
    from bench.core import registry

    registry.load_plugins()
    for name in ("gpt-3.5-turbo", "gpt-4o-mini", "gpt-4o", "openai-chat"):
        assert name in registry.generators
