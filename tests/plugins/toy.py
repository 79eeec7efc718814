"""A third-party plug-in, loaded with ``--include``: the harness is not modified to use it."""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Sequence

from bench.data.schema import Catalog, Conversation
from bench.protocols import Choice, Request
from bench.registry import generators, retrievers


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

    identity = "toy-slow/v1"

    def __init__(self, delay: float) -> None:
        self.delay = delay

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
