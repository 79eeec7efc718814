"""The objects the harness passes around.

``Conversation`` is the only thing prompts and retrieval queries are built from; the answer
(``gt`` text and ``gt_items``) lives in a separate ``Answer`` that only the metrics see, so the
reply that quotes the answer can never leak into a prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.errors import Warnings

ASIN_RE = re.compile(r"^[A-Za-z0-9]{10}$")
DOMAINS = ("all_beauty", "amazon_fashion", "amazon_home")
SPLITS = ("train", "valid", "test")
# Precomputed candidate lists shipped with the release: field name -> short key.
CANDIDATE_FIELDS = {"candidates_st": "st", "candidates_gpt_large": "gpt_large"}


@dataclass(frozen=True)
class Item:
    asin: str
    title: str
    description: str = ""
    image_path: Path | None = None


@dataclass(frozen=True)
class Conversation:
    """What a system may see: the dialogue, earlier-mentioned items and shipped candidates."""

    id: str
    context: str
    context_items: tuple[str, ...] = ()
    shipped_candidates: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """What only the metrics may see."""

    gt_items: tuple[str, ...]
    gt_text: str = ""


@dataclass
class Catalog:
    """ASIN -> Item for one domain, plus the order used to index it."""

    items: dict[str, Item]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items.values())

    def get(self, asin: str) -> Item | None:
        return self.items.get(asin)


@dataclass
class Split:
    """One (dataset, domain, split): conversations, their answers and the domain catalog."""

    dataset: str
    domain: str
    split: str
    conversations: list[Conversation]
    answers: dict[str, Answer]
    catalog: Catalog
    content_hash: str
    warnings: Warnings = field(default_factory=Warnings)
    root: Path | None = None

    @property
    def n_pairs(self) -> int:
        return sum(len(self.answers[c.id].gt_items) for c in self.conversations)
