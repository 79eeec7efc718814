"""OpenAI chat models (and any OpenAI-compatible server, e.g. vLLM) as generators.

The paper's GPT baselines see the Table 11 prompt as one user turn: titles only, or titles
with each candidate's image as a base64 ``image_url`` part at its ``IMAGE_SLOT``. Requests run
concurrently under client-side rpm/tpm limits and are retried with exponential backoff and
jitter on 429, 5xx, timeouts, dropped connections and malformed replies; a request that still
fails becomes ``Choice(None, failure="error")`` (never cached, so a re-run asks again) instead
of aborting the batch. The API key comes from ``$OPENAI_API_KEY`` only and is never stored on
the generator, so it cannot reach an identity, a cache key, a log line or an error text.

Token estimates (``--dry-run``, tpm limits, truncation) use about 4 characters per text token
plus OpenAI's documented image formula (see ``image_tokens``).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import math
import os
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import openai
from PIL import Image
from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
)

from baselines.generators.ratelimit import Clock, RateLimiter, SystemClock
from bench import prompt as table11
from bench.context import BuildContext
from bench.errors import BenchError
from bench.images import image_problem
from bench.options import Options, takes
from bench.parser import PAPER, IdParser, over_budget, parse_choice
from bench.prompt import IMAGE_SLOT, Prompt
from bench.protocols import Choice, Request

DEFAULT_HOST = "api.openai.com"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
#: Sent as the key to a loopback server when $OPENAI_API_KEY is unset (vLLM ignores it).
LOOPBACK_KEY = "EMPTY"
#: Tokens the chat format adds to one user message plus the reply cue (OpenAI cookbook).
MESSAGE_OVERHEAD = 7
#: Context windows (tokens) of the named models, for conversation truncation.
CONTEXT_WINDOWS = {"gpt-3.5-turbo": 16_385, "gpt-4o-mini": 128_000, "gpt-4o": 128_000}
MAX_BACKOFF_S = 60.0
_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")
_SECRET = re.compile(r"sk-[A-Za-z0-9_\-*]{4,}")


# --------------------------------------------------------------------------- token counting


@dataclass(frozen=True)
class TileCost:
    """Tokens per image of a tile-priced model: ``base`` (all of a low-detail image) plus
    ``tile`` per 512-px tile at high detail."""

    base: int
    tile: int


#: OpenAI "Images and vision" guide: GPT-4o bills 85 + 170 per tile; GPT-4o-mini bills 2833 +
#: 5667 per tile (the same dollars at its 1/33 token price). Other models get GPT-4o's numbers.
TILE_COSTS = {"gpt-4o-mini": TileCost(2833, 5667), "gpt-4o": TileCost(85, 170)}


def text_tokens(text: str) -> int:
    """About 4 characters per token for English (no tokenizer dependency)."""
    return math.ceil(len(text) / 4)


def image_tokens(width: int, height: int, detail: str, model: str) -> int:
    """OpenAI's tile formula. ``low``: ``base``. ``high`` (and ``auto``, counted as high to stay
    an upper bound): shrink to fit 2048x2048, then shrink so the short side is at most 768 px
    (images are never enlarged), then ``base + tile * number of 512-px tiles``. E.g. GPT-4o,
    1024x1024 -> 768x768 -> 4 tiles -> 765 tokens; 2048x4096 -> 768x1536 -> 6 tiles -> 1105."""
    cost = TILE_COSTS.get(_base_name(model), TILE_COSTS["gpt-4o"])
    if detail == "low":
        return cost.base
    w, h = float(width), float(height)
    for limit, shortest in ((2048, False), (768, True)):
        side = min(w, h) if shortest else max(w, h)
        if side > limit:
            w, h = w * limit / side, h * limit / side
    tiles = math.ceil(int(w) / 512) * math.ceil(int(h) / 512)
    return cost.base + cost.tile * tiles


def _base_name(model: str) -> str:
    return _DATED.sub("", model)


# --------------------------------------------------------------------------- prices


def price_of(
    prices: Mapping[str, Mapping[str, float]], *models: str
) -> Mapping[str, float] | None:
    """The first of ``models`` (and their undated names) that has a price table entry."""
    for model in models:
        for name in (model, _base_name(model)):
            if name in prices:
                return prices[name]
    return None


def cost_usd(price: Mapping[str, float], prompt_tokens: int, completion_tokens: int) -> float:
    return (
        prompt_tokens * price["input_per_mtok"] + completion_tokens * price["output_per_mtok"]
    ) / 1e6


# --------------------------------------------------------------------------- images


@functools.lru_cache(maxsize=4096)
def _image_header(path: Path) -> tuple[int, int, str] | None:
    """(width, height, MIME type) from the file header; None when
    :func:`bench.images.image_problem` finds the image unusable."""
    if image_problem(path) is not None:
        return None
    try:
        with Image.open(path) as image:
            return image.width, image.height, image.get_format_mimetype() or "image/jpeg"
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _data_url(path: Path) -> str | None:
    header = _image_header(path)
    if header is None:
        return None
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"data:{header[2]};base64,{data}"


# --------------------------------------------------------------------------- the generator


class _Malformed(Exception):
    """A 200 reply without a usable choice."""


_RETRYABLE = (openai.APITimeoutError, openai.APIConnectionError, json.JSONDecodeError,
              openai.APIResponseValidationError, _Malformed)
#: Errors that every request of the run would hit: stop with one line instead.
_FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)


@dataclass
class _Outcome:
    response: Any = None
    text: str = ""
    error: str = ""
    retries: int = 0


def _reply_text(response: Any) -> str:
    """The first choice's text; ``_Malformed`` (retried) when the reply has none."""
    try:
        return response.choices[0].message.content or ""
    except (AttributeError, IndexError, TypeError):
        raise _Malformed("reply without a choice") from None


@dataclass
class OpenAIChat:
    """One chat model behind an OpenAI-compatible endpoint; see the module docstring."""

    model: str
    base_url: str | None = None
    images: bool = False
    detail: str = "auto"
    temperature: float = 0.0
    max_tokens: int = 10
    seed: int | None = None
    concurrency: int = 8
    rpm: float | None = None
    tpm: float | None = None
    max_retries: int = 5
    backoff_base: float = 1.0
    timeout: float = 60.0
    context_window: int | None = None
    id_parser: str = PAPER
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    clock: Clock = field(default_factory=SystemClock)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.rpm, self.tpm, self.clock)
        self._jitter = random.Random(self.seed)
        self.host = _host(self.base_url)

    @property
    def reads_images(self) -> bool:
        return self.images

    @property
    def identity(self) -> str:
        return (f"openai-chat[model={self.model};host={self.host};images={self.images};"
                f"detail={self.detail};id_parser={self.id_parser};"
                + ";".join(f"{k}={v}" for k, v in self.decoding.items()) + "]")

    @property
    def decoding(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens,
                "seed": self.seed}

    # ----------------------------------------------------------------- prompt and messages

    def prompt(self, request: Request) -> tuple[Prompt, int]:
        """The Table 11 prompt, cut to the context window, and its estimated prompt tokens."""
        paths = [i.image_path for i in request.candidates if i.image_path] if self.images else []
        sizes = [s for s in map(_image_header, paths) if s is not None]
        fixed = MESSAGE_OVERHEAD + sum(
            image_tokens(w, h, self.detail, self.model) for w, h, _ in sizes
        )

        def count(text: str) -> int:
            return text_tokens(text) + fixed

        window = self.context_window or CONTEXT_WINDOWS.get(_base_name(self.model))
        prompt = table11.build(request.conversation.context, request.candidates,
                               with_images=self.images, count_tokens=count,
                               budget=window - self.max_tokens if window else None)
        return prompt, count(prompt.text)

    def messages(self, prompt: Prompt) -> list[dict[str, Any]]:
        """One user message; with images, text and ``image_url`` parts interleaved so that
        each image sits at its slot. An unreadable or missing image drops its slot only."""
        if not self.images:
            return [{"role": "user", "content": prompt.text}]
        # The slots are the last len(images) markers: the conversation may quote "<image>".
        pieces = prompt.text.rsplit(IMAGE_SLOT, len(prompt.images))
        parts: list[dict[str, Any]] = []

        def add_text(text: str) -> None:
            if parts and parts[-1]["type"] == "text":
                parts[-1]["text"] += text
            elif text:
                parts.append({"type": "text", "text": text})

        add_text(pieces[0])
        for path, text in zip(prompt.images, pieces[1:], strict=True):
            url = _data_url(path) if path is not None else None
            if url is not None:
                parts.append({"type": "image_url",
                              "image_url": {"url": url, "detail": self.detail}})
            add_text(text)
        return [{"role": "user", "content": parts}]

    def cache_key(self, request: Request) -> str:
        payload = {"identity": self.identity, "decoding": self.decoding,
                   "messages": self.messages(self.prompt(request)[0])}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    # ----------------------------------------------------------------- estimates

    def estimate(self, requests: Sequence[Request]) -> dict[str, Any]:
        """Tokens and US$ of answering ``requests`` (no HTTP): prompts as they would be sent,
        ``max_tokens`` per answer (an upper bound). ``cost_usd`` is None for an unpriced model."""
        prompt_tokens = sum(self.prompt(r)[1] for r in requests)
        completion_tokens = self.max_tokens * len(requests)
        price = price_of(self.prices, self.model)
        found: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cost_usd": cost_usd(price, prompt_tokens, completion_tokens) if price else None,
        }
        if price is None:
            found["unpriced"] = 1
        return found

    # ----------------------------------------------------------------- requests

    def recommend(self, requests: Sequence[Request]) -> list[Choice]:
        if not requests:
            return []
        return asyncio.run(self._run(requests, _api_key(self.base_url)))

    async def _run(self, requests: Sequence[Request], key: str) -> list[Choice]:
        gate = asyncio.Semaphore(self.concurrency)
        async with openai.AsyncOpenAI(api_key=key, base_url=self.base_url,
                                      max_retries=0, timeout=self.timeout) as client:
            tasks = [self._answer(client, gate, r, key) for r in requests]
            return list(await asyncio.gather(*tasks))

    async def _answer(self, client: openai.AsyncOpenAI, gate: asyncio.Semaphore,
                      request: Request, key: str) -> Choice:
        prompt, estimated = self.prompt(request)
        if prompt.over_budget:  # no conversation fits the context window: not worth paying
            return over_budget({"truncated": 1, "over_budget": 1})
        outcome = await self._send(client, gate, self.messages(prompt), estimated, key)
        usage: dict[str, Any] = {"truncated": int(prompt.truncated)}
        if outcome.retries:
            usage["retries"] = outcome.retries
        if outcome.response is None:
            return Choice(None, raw=outcome.error, usage=usage, failure="error")
        usage.update(self._usage(outcome.response, estimated))
        return parse_choice(outcome.text, [item.asin for item in request.candidates], usage,
                            rule=self.id_parser)

    def _usage(self, response: Any, estimated: int) -> dict[str, Any]:
        """Server-reported tokens (estimates, flagged, if the server sent none) and cost."""
        usage: dict[str, Any] = {"model": response.model}
        if response.system_fingerprint:
            usage["system_fingerprint"] = response.system_fingerprint
        if response.usage is not None:
            prompt_tokens = response.usage.prompt_tokens
            completion_tokens = response.usage.completion_tokens
        else:
            prompt_tokens, completion_tokens = estimated, self.max_tokens
            usage["usage_estimated"] = 1
        usage["prompt_tokens"] = prompt_tokens
        usage["completion_tokens"] = completion_tokens
        price = price_of(self.prices, response.model or "", self.model)
        usage["cost_usd"] = cost_usd(price, prompt_tokens, completion_tokens) if price else 0.0
        if price is None:
            usage["unpriced"] = 1
        return usage

    async def _send(self, client: openai.AsyncOpenAI, gate: asyncio.Semaphore,
                    messages: list[dict[str, Any]], estimated: int, key: str) -> _Outcome:
        reserved = estimated + self.max_tokens
        outcome = _Outcome()
        for attempt in range(self.max_retries + 1):
            retry_after = 0.0
            async with gate:
                await self.limiter.acquire(reserved)
                try:
                    response = await client.chat.completions.create(
                        model=self.model, messages=messages, temperature=self.temperature,
                        max_tokens=self.max_tokens,
                        seed=openai.omit if self.seed is None else self.seed,
                    )
                    outcome.text = _reply_text(response)
                    used = response.usage.total_tokens if response.usage else reserved
                    self.limiter.settle(reserved, used)
                    outcome.response = response
                    return outcome
                except _FATAL as exc:
                    raise BenchError(
                        f"{self.host} refused the request: {_short(exc, key)}",
                        hint="check $OPENAI_API_KEY, the model name and --base-url",
                    ) from None
                except openai.APIStatusError as exc:
                    outcome.error = _short(exc, key)
                    if not _retryable_status(exc.status_code):
                        return outcome
                    retry_after = _retry_after(exc.response.headers)
                except _RETRYABLE as exc:
                    outcome.error = _short(exc, key)
            if attempt < self.max_retries:
                outcome.retries += 1
                await self.clock.sleep(max(retry_after, self._backoff(attempt)))
        return outcome

    def _backoff(self, attempt: int) -> float:
        """Exponential with "equal jitter": half the step fixed, half random, so concurrent
        requests that failed together do not retry together."""
        step = min(MAX_BACKOFF_S, self.backoff_base * 2**attempt)
        return step / 2 + self._jitter.uniform(0, step / 2)


def _retryable_status(status: int) -> bool:
    """The statuses OpenAI itself advises retrying: timeout, conflict, rate limit, server."""
    return status in (408, 409, 429) or status >= 500


def _retry_after(headers: Mapping[str, str]) -> float:
    """Seconds from ``Retry-After`` / ``retry-after-ms`` (0 when absent or an HTTP date)."""
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        try:
            return min(MAX_BACKOFF_S, float(headers.get(name, "")) * scale)
        except ValueError:
            continue
    return 0.0


def _short(exc: BaseException, key: str) -> str:
    """A one-line error text with the key (and anything key-shaped) masked."""
    text = f"{type(exc).__name__}: {exc}".replace(key, "***")
    return _SECRET.sub("sk-***", " ".join(text.split()))[:300]


def _host(base_url: str | None) -> str:
    """host[:port] of the endpoint, without any credentials a URL might carry."""
    if not base_url:
        return DEFAULT_HOST
    parts = urlsplit(base_url)
    host = parts.hostname or base_url
    return f"{host}:{parts.port}" if parts.port else host


def _api_key(base_url: str | None) -> str:
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    if base_url and urlsplit(base_url).hostname in LOOPBACK:
        return LOOPBACK_KEY
    raise BenchError(
        f"OPENAI_API_KEY is not set for {_host(base_url)}",
        hint="export OPENAI_API_KEY=...; the key is read from the environment only",
    )


# --------------------------------------------------------------------------- factories


class ChatOptions(Options):
    """``[generators.NAME]`` of the OpenAI-family generators."""

    model: str | None = Field(None, description="default: the generator's own model")
    base_url: str | None = Field(None, description="default: $OPENAI_BASE_URL, else OpenAI")
    images: bool = False
    detail: Literal["auto", "low", "high"] = "auto"
    temperature: NonNegativeFloat = 0.0
    max_tokens: PositiveInt = Field(10, description="the authors' 10 new tokens by default")
    seed: int | None = Field(None, description="default: the run seed")
    concurrency: PositiveInt = 8
    rpm: PositiveFloat | None = None
    tpm: PositiveFloat | None = None
    max_retries: NonNegativeInt = 5
    backoff_base: NonNegativeFloat = 1.0
    timeout: PositiveFloat = 60.0
    context_window: PositiveInt | None = Field(
        None, description="default: the model's known window, else no truncation")
    id_parser: IdParser = Field("paper", description="paper (the authors' rule) or robust")


def _options(name: str, ctx: BuildContext, default_model: str | None) -> dict[str, Any]:
    where = ctx.where or f"[generators.{name}]"
    options = ctx.parse(ChatOptions, where).model_dump()
    options["model"] = options["model"] or default_model
    if not options["model"]:
        raise BenchError("no model name", where=where, hint='set model = "NAME"')
    if options["seed"] is None:
        options["seed"] = ctx.seed
    if options["images"] and options["model"].startswith("gpt-3.5"):
        raise BenchError(f"{options['model']} takes no images", where=where,
                         hint="set images = false")
    base_url = options["base_url"] or os.environ.get("OPENAI_BASE_URL") or None
    return {**options, "base_url": base_url, "prices": dict(ctx.prices)}


def factory(name: str, default_model: str | None) -> Callable[[BuildContext], OpenAIChat]:
    """The registry factory of ``name``: options from ``[generators.NAME]``."""

    @takes(ChatOptions)
    def make(ctx: BuildContext) -> OpenAIChat:
        return OpenAIChat(**_options(name, ctx, default_model))

    return make


build = factory("openai-chat", None)
build_gpt35 = factory("gpt-3.5-turbo", "gpt-3.5-turbo")
build_gpt4o_mini = factory("gpt-4o-mini", "gpt-4o-mini")
build_gpt4o = factory("gpt-4o", "gpt-4o")
