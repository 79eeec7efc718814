"""A third-party plug-in, loaded with ``--include``: the harness is not modified to use it."""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Sequence

from bench import Catalog, Choice, Conversation, Request, generators, retrievers


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


class TitleOverlap:
    """Ranks items by word overlap with the conversation (ties: catalog order)."""

    identity = "toy-overlap/v1"
    ordered = True

    def index(self, catalog: Catalog) -> None:
        self.items = [(i.asin, _words(i.title)) for i in catalog]

    def search(self, conversations: Sequence[Conversation], k: int) -> list[list[str]]:
        out = []
        for conv in conversations:
            words = _words(conv.context)
            ranked = sorted(enumerate(self.items), key=lambda p: (-len(words & p[1][1]), p[0]))
            out.append([asin for _, (asin, _) in ranked[:k]])
        return out


class SlowFirst:
    """Answers the first presented candidate, slowly (so a test can kill it mid-run)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.identity = os.environ.get("TOY_IDENTITY", "toy-slow/v1")  # "new weights"

    def recommend(self, requests: Sequence[Request]) -> list[Choice]:
        time.sleep(self.delay * len(requests))
        return [Choice(r.candidates[0].asin, raw=f"{r.candidates[0].asin}",
                       usage={"prompt_tokens": 10, "cost_usd": 0.001}) for r in requests]


retrievers.register("toy-overlap", lambda ctx: TitleOverlap(), "test plug-in", origin=__file__)
generators.register(
    "toy-slow",
    lambda ctx: SlowFirst(float(ctx.option("delay", os.environ.get("TOY_DELAY", "0")))),
    "test plug-in",
    origin=__file__,
)


class CountingCached:
    """Deterministic and cacheable; counts real calls so a test can see cache hits."""

    identity = "toy-cached/v1"
    calls = 0

    def cache_key(self, request: Request) -> str:
        ids = ",".join(i.asin for i in request.candidates)
        return hashlib.sha256(f"{self.identity}|{request.conversation.context}|{ids}".encode()
                              ).hexdigest()

    def recommend(self, requests: Sequence[Request]) -> list[Choice]:
        CountingCached.calls += len(requests)
        return [Choice(r.candidates[-1].asin, raw="last", usage={"cost_usd": 0.5})
                for r in requests]

    def estimate(self, requests: Sequence[Request]) -> dict[str, float]:
        return {"prompt_tokens": 100 * len(requests), "completion_tokens": 4 * len(requests),
                "cost_usd": 0.01 * len(requests)}


generators.register("toy-cached", lambda ctx: CountingCached(), "test plug-in", origin=__file__)


generators.register(  # resolves a model name, as real generators do for their weights
    "toy-mapped",
    lambda ctx: (ctx.models.resolve("toy-weights"), SlowFirst(0.0))[1],
    "test plug-in",
    origin=__file__,
)


class Flaky:
    """Fails as ``$TOY_FLAKY`` says (not part of its identity, like a server's health):
    "error" (every request, a dead server), "error-odd" (every other one), "over_budget" (the
    first request), "truncated" (every request), "ok" (default)."""

    identity = "toy-flaky/v1"

    def recommend(self, requests: Sequence[Request]) -> list[Choice]:
        self.mode = os.environ.get("TOY_FLAKY", "ok")
        out = []
        for k, r in enumerate(requests):
            number = int(r.conversation.id.rsplit(":", 1)[1])
            if self.mode == "error" or (self.mode == "error-odd" and number % 2):
                out.append(Choice(None, "HTTP 503 no server", failure="error"))
            elif self.mode == "over_budget" and number == 1 and k == 0:
                out.append(Choice(None, "", failure="over_budget"))
            else:
                usage = {"truncated": 1} if self.mode == "truncated" else {}
                out.append(Choice(r.candidates[0].asin, r.candidates[0].asin, usage))
        return out


generators.register("toy-flaky", lambda ctx: Flaky(), "test plug-in", origin=__file__)


class Eyes:
    """Reads images: answers the first candidate and lists the ASINs shown without one."""

    identity = "toy-eyes/v1"
    reads_images = True

    def recommend(self, requests: Sequence[Request]) -> list[Choice]:
        return [Choice(r.candidates[0].asin,
                       ",".join(i.asin for i in r.candidates if i.image_path is None))
                for r in requests]


generators.register("toy-eyes", lambda ctx: Eyes(), "test plug-in", origin=__file__)
