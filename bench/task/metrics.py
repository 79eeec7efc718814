"""Metrics, one small class each, computed from prediction records.

A record is one conversation: ``candidates`` (the retriever's top-k, in its order),
``prediction`` (the chosen ASIN or None) and ``gt_items`` (as written in the data; a repeated
ground truth counts twice, as in the paper). Notation: C = conversations, G_c = ground truths
of c, K_c = candidates of c, p_c = prediction for c, P = sum_c |G_c| (pairs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

Record = dict[str, Any]


class Metric(Protocol):
    name: str

    def compute(self, records: Sequence[Record]) -> float | None: ...


def _pairs(records: Sequence[Record]) -> int:
    return sum(len(r["gt_items"]) for r in records)


@dataclass(frozen=True)
class HitRatioAt1:
    """HR@1 (the paper's): sum_c sum_{g in G_c} [p_c = g] / P.

    Each (conversation, ground truth) pair is one example; one prediction per conversation,
    so a conversation with two ground truths can score at most one of its two pairs.
    """

    name: ClassVar[str] = "hr@1"

    def compute(self, records: Sequence[Record]) -> float | None:
        pairs = _pairs(records)
        hits = sum(r["gt_items"].count(r["prediction"]) for r in records if r["prediction"])
        return hits / pairs if pairs else None


@dataclass(frozen=True)
class HitRatioAt1Conversation:
    """HR@1 per conversation: sum_c [p_c in G_c] / |C|."""

    name: ClassVar[str] = "hr@1_conv"

    def compute(self, records: Sequence[Record]) -> float | None:
        hits = sum(1 for r in records if r["prediction"] in r["gt_items"])
        return hits / len(records) if records else None


@dataclass(frozen=True)
class ValidRatio:
    """ValidRatio: sum_c [p_c in K_c] / |C| -- the share of answers that name a candidate.

    Computed against the candidates actually presented to the generator.
    """

    name: ClassVar[str] = "valid_ratio"

    def compute(self, records: Sequence[Record]) -> float | None:
        valid = sum(1 for r in records if r["prediction"] in r["candidates"])
        return valid / len(records) if records else None


@dataclass(frozen=True)
class RecallAtK:
    """Recall@k of the candidate list: sum_c sum_{g in G_c} [g in K_c[:k]] / P."""

    k: int = 10

    @property
    def name(self) -> str:
        return f"recall@{self.k}"

    def compute(self, records: Sequence[Record]) -> float | None:
        pairs = _pairs(records)
        hits = sum(sum(g in r["candidates"][: self.k] for g in r["gt_items"]) for r in records)
        return hits / pairs if pairs else None


@dataclass(frozen=True)
class OracleBound:
    """Oracle: the share of pairs whose item is among the candidates, sum_c |G_c ∩ K_c| / P
    (with multiplicity). Equals Recall@|K|; reported so a reader sees the candidate ceiling."""

    name: ClassVar[str] = "oracle"

    def compute(self, records: Sequence[Record]) -> float | None:
        pairs = _pairs(records)
        hits = sum(sum(g in r["candidates"] for g in r["gt_items"]) for r in records)
        return hits / pairs if pairs else None


@dataclass(frozen=True)
class HitRatioCeiling:
    """The best HR@1 any generator can reach on these candidates:
    sum_c max_{k in K_c} |{g in G_c : g = k}| / P. Lower than the oracle when a conversation
    has several ground truths among its candidates but only one answer."""

    name: ClassVar[str] = "hr@1_ceiling"

    def compute(self, records: Sequence[Record]) -> float | None:
        pairs = _pairs(records)
        best = sum(
            max((r["gt_items"].count(k) for k in r["candidates"]), default=0) for r in records
        )
        return best / pairs if pairs else None


@dataclass(frozen=True)
class RetrieverHitRatioAt1:
    """HR@1 of the retriever alone: HR@1 with p_c = K_c[0]. Undefined (None) for unordered
    candidate lists, such as the release's shipped ones."""

    name: ClassVar[str] = "retriever_hr@1"
    ordered: bool = True

    def compute(self, records: Sequence[Record]) -> float | None:
        if not self.ordered:
            return None
        top = [{**r, "prediction": r["candidates"][0] if r["candidates"] else None}
               for r in records]
        return HitRatioAt1().compute(top)


def standard_metrics(top_k: int, *, ordered: bool = True) -> list[Metric]:
    return [
        HitRatioAt1(),
        HitRatioAt1Conversation(),
        ValidRatio(),
        RecallAtK(top_k),
        OracleBound(),
        HitRatioCeiling(),
        RetrieverHitRatioAt1(ordered=ordered),
    ]


def compute_all(
    records: Sequence[Record], top_k: int, *, ordered: bool = True
) -> dict[str, float | None]:
    return {m.name: m.compute(records) for m in standard_metrics(top_k, ordered=ordered)}
