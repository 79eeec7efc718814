"""The two small Protocols every system implements (MTEB-style: Protocols, not base classes).

A retriever indexes a catalog and returns ranked ASINs per conversation. A generator receives a
conversation with its presented candidates and returns one choice. Plug-ins implement these
without importing anything from the harness beyond the data objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from bench.task.data.schema import Catalog, Conversation, Item


@runtime_checkable
class Retriever(Protocol):
    #: Stable description of model + settings; part of cache keys and the config hash.
    identity: str
    #: False when the returned lists are not in score order (the release's shipped lists).
    ordered: bool

    def index(self, catalog: Catalog) -> None: ...

    def search(self, conversations: Sequence[Conversation], k: int) -> list[list[str]]: ...


@dataclass(frozen=True)
class Request:
    """One conversation and the candidates in the order they are shown to the generator."""

    conversation: Conversation
    candidates: tuple[Item, ...]


@dataclass(frozen=True)
class Choice:
    """A generator's answer: the chosen ASIN (or None), the raw output and token usage.

    ``usage`` conventions (numbers are summed per cell into results.json ``usage``; strings
    are collected as sets into ``generator_info``): ``prompt_tokens``, ``completion_tokens``,
    ``cost_usd``, ``truncated`` (1 when the conversation was cut to fit), ``model`` (the dated
    snapshot that answered), ``system_fingerprint``. ``failure`` ``"error"`` marks a request
    that failed after retries: it is recorded, counted, and never cached.
    """

    item_id: str | None
    raw: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None  # e.g. "no_id", "outside_candidates", "several_ids"


@runtime_checkable
class Generator(Protocol):
    """Answers requests. An optional ``reads_images = True`` makes the runner check each
    presented image with :mod:`bench.task.images` and pass an unusable one as
    ``image_path=None``."""

    identity: str

    def recommend(self, requests: Sequence[Request]) -> list[Choice]: ...


@runtime_checkable
class CachedGenerator(Generator, Protocol):
    """A deterministic generator: the runner caches its answers on disk under
    ``cache_key(request)`` -- sha256 of model identity, the full prompt or messages including
    image bytes, and decoding settings -- so a re-run makes no model call."""

    def cache_key(self, request: Request) -> str: ...
