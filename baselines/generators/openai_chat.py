"""OpenAI chat models (and any OpenAI-compatible server, e.g. vLLM) as generators.

The paper's GPT baselines see the Table 11 prompt as one user turn: titles only, or titles
with each candidate's image as a base64 ``image_url`` part at its ``IMAGE_SLOT``. Requests run
concurrently under client-side rpm/tpm limits and a concurrency window that adapts to the
server (``baselines.openai_client``: the openai client's own retries on 429, 5xx, timeouts and
dropped connections; malformed replies are retried here, from the same budget of
``max_retries``). A request that still fails becomes ``Choice(None, failure="error")`` whose
``raw`` holds the server's error (never cached, so a re-run asks again), and the failures of
each batch are printed on stderr; a refused key or a model the server does not serve stops
the run with one line. The API key comes from ``$OPENAI_API_KEY`` only and is never stored
on the generator, so it cannot reach an identity, a cache key, a log line or an error text.
Each request is rendered (images base64-encoded) once: ``cache_key`` and ``recommend`` share
a bounded memo.

Token and cost estimates are ``baselines.generators.openai_tokens``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import openai
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from baselines.generators.openai_tokens import (
    CONTEXT_WINDOWS,
    MESSAGE_OVERHEAD,
    base_name,
    cost_usd,
    data_url,
    image_header,
    image_tokens,
    price_of,
    text_tokens,
)
from baselines.generators.ratelimit import Clock, RateLimiter, SystemClock
from baselines.openai_client import (
    AdaptiveConcurrency,
    Endpoint,
    async_client,
    reason,
    refusal,
    tally,
)
from bench.core.context import BuildContext
from bench.core.errors import BenchError
from bench.core.options import Options, takes
from bench.task import prompt as table11
from bench.task.data.schema import Item
from bench.task.parser import PAPER, IdParser, over_budget, parse_choice
from bench.task.prompt import IMAGE_SLOT, Prompt
from bench.task.protocols import Choice, Request

#: Requests whose rendered messages (images as base64) are kept between cache_key and recommend:
#: a few runner batches, at most about 1.3 MB each with ten images.
RENDER_MEMO = 64


# --------------------------------------------------------------------------- the generator


class _Malformed(Exception):
    """A 200 reply without a usable choice."""


#: A 200 reply the client could not use: retried here (the openai client does not).
_MALFORMED = (json.JSONDecodeError, openai.APIResponseValidationError, _Malformed)


@dataclass
class _Outcome:
    response: Any = None
    text: str = ""
    error: str = ""
    retries: int = 0
    timeouts: int = 0


@dataclass(frozen=True)
class _Rendered:
    prompt: Prompt
    estimated: int
    messages: list[dict[str, Any]]


def _file_stamps(items: Sequence[Item]) -> tuple[tuple[int, int], ...]:
    """(size, mtime) of each image file; (-1, -1) for none or an unreadable one."""
    stamps = []
    for item in items:
        try:
            stat = item.image_path.stat() if item.image_path else None
        except OSError:
            stat = None
        stamps.append((stat.st_size, stat.st_mtime_ns) if stat else (-1, -1))
    return tuple(stamps)


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
    timeout: float = 60.0
    context_window: int | None = None
    id_parser: str = PAPER
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    clock: Clock = field(default_factory=SystemClock)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.rpm, self.tpm, self.clock)
        self.endpoint = Endpoint(self.base_url)
        self.host = self.endpoint.host
        #: The concurrency window; learnt once per generator, kept across batches.
        self.window = AdaptiveConcurrency(self.concurrency, self.timeout)
        self._render = functools.lru_cache(maxsize=RENDER_MEMO)(self._render_uncached)

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
        return self._prompt(request.conversation.context, request.candidates)

    def _prompt(self, context: str, candidates: tuple[Item, ...]) -> tuple[Prompt, int]:
        paths = [i.image_path for i in candidates if i.image_path] if self.images else []
        sizes = [s for s in map(image_header, paths) if s is not None]
        fixed = MESSAGE_OVERHEAD + sum(
            image_tokens(w, h, self.detail, self.model) for w, h, _ in sizes
        )

        def count(text: str) -> int:
            return text_tokens(text) + fixed

        window = self.context_window or CONTEXT_WINDOWS.get(base_name(self.model))
        prompt = table11.build(context, candidates, with_images=self.images,
                               count_tokens=count,
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
            url = data_url(path) if path is not None else None
            if url is not None:
                parts.append({"type": "image_url",
                              "image_url": {"url": url, "detail": self.detail}})
            add_text(text)
        return [{"role": "user", "content": parts}]

    def _render_uncached(self, context: str, candidates: tuple[Item, ...],
                         _images: tuple[tuple[int, int], ...]) -> _Rendered:
        prompt, estimated = self._prompt(context, candidates)
        return _Rendered(prompt, estimated, self.messages(prompt))

    def rendered(self, request: Request) -> _Rendered:
        """The prompt, its estimate and its messages, rendered once per request (memo keyed
        by the text, the candidates and their image files' size and mtime)."""
        return self._render(request.conversation.context, request.candidates,
                            _file_stamps(request.candidates) if self.images else ())

    def cache_key(self, request: Request) -> str:
        payload = {"identity": self.identity, "decoding": self.decoding,
                   "messages": self.rendered(request).messages}
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
        key = self.endpoint.api_key()
        decreases = self.window.decreases
        choices = asyncio.run(self._run(requests, key))
        report = self._report(choices, self.window.decreases - decreases)
        if report:
            print(report, file=sys.stderr)
        return choices

    async def _run(self, requests: Sequence[Request], key: str) -> list[Choice]:
        client = async_client(self.endpoint, key, timeout=self.timeout, max_retries=0,
                              control=self.window)
        try:
            async with client, asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._answer(client, r)) for r in requests]
        except* BenchError as fatal:  # the first one; the TaskGroup cancelled the rest
            raise fatal.exceptions[0] from None
        return [task.result() for task in tasks]

    def _report(self, choices: Sequence[Choice], decreases: int) -> str:
        """One console line when requests failed or timed out, else ''."""
        failed = Counter(str(c.raw).split(":", 1)[0] for c in choices if c.failure == "error")
        timeouts = sum(c.usage.get("timeouts", 0) for c in choices)
        if not failed and not timeouts:
            return ""
        kinds = ", ".join(f"{n} x {kind}" for kind, n in failed.most_common())
        return (f"warning [{self.model}@{self.host}]: {sum(failed.values())} of {len(choices)} "
                f"requests failed after retries{f' ({kinds})' if kinds else ''}; "
                f"{timeouts} attempts timed out; concurrency {self.window.allowed} of "
                f"{self.concurrency} after {decreases} back-offs")

    async def _answer(self, client: openai.AsyncOpenAI, request: Request) -> Choice:
        rendered = self.rendered(request)
        if rendered.prompt.over_budget:  # no conversation fits the context window: not worth paying
            return over_budget({"truncated": 1, "over_budget": 1})
        outcome = await self._send(client, rendered.messages, rendered.estimated)
        usage: dict[str, Any] = {"truncated": int(rendered.prompt.truncated)}
        if outcome.retries:
            usage["retries"] = outcome.retries
        if outcome.timeouts:
            usage["timeouts"] = outcome.timeouts
        if outcome.response is None:
            return Choice(None, raw=outcome.error, usage=usage, failure="error")
        usage.update(self._usage(outcome.response, rendered.estimated))
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

    async def _send(self, client: openai.AsyncOpenAI, messages: list[dict[str, Any]],
                    estimated: int) -> _Outcome:
        """One request; the openai client retries what it can, a malformed reply is retried
        here, and all attempts together are at most ``max_retries + 1``."""
        reserved = estimated + self.max_tokens
        outcome = _Outcome()
        with tally() as attempts:
            while True:
                await self.limiter.acquire(reserved)
                retries_left = self.max_retries - attempts.attempts
                try:
                    response = await client.with_options(
                        max_retries=retries_left
                    ).chat.completions.create(
                        model=self.model, messages=messages, temperature=self.temperature,
                        max_tokens=self.max_tokens,
                        seed=openai.omit if self.seed is None else self.seed,
                    )
                    outcome.text = _reply_text(response)
                except openai.APIStatusError as exc:
                    fatal = refusal(exc, self.model, self.endpoint)
                    if fatal is not None:
                        raise fatal from None
                    outcome.error = reason(exc, self.endpoint)
                except openai.APIConnectionError as exc:  # timeouts too
                    outcome.error = reason(exc, self.endpoint)
                except _MALFORMED as exc:
                    outcome.error = reason(exc, self.endpoint)
                    if attempts.attempts <= self.max_retries:
                        continue
                else:
                    self.limiter.settle(reserved, response.usage.total_tokens
                                        if response.usage else reserved)
                    outcome.response = response
                break
        outcome.retries, outcome.timeouts = attempts.retries, attempts.faults["timeout"]
        return outcome


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
