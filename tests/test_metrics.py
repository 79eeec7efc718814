"""Metric formulas on hand-computed cases."""

from __future__ import annotations

import pytest

from bench.task.metrics import (
    HitRatioAt1,
    HitRatioAt1Conversation,
    HitRatioCeiling,
    OracleBound,
    RecallAtK,
    RetrieverHitRatioAt1,
    ValidRatio,
    compute_all,
)

RECORDS = [
    # two ground truths, both among candidates; predicts one of them
    {"candidates": ["a", "b", "c"], "prediction": "a", "gt_items": ["a", "b"]},
    # miss, valid
    {"candidates": ["d", "e", "f"], "prediction": "e", "gt_items": ["d"]},
    # invalid answer, ground truth outside the candidates
    {"candidates": ["g", "h", "i"], "prediction": "zzz", "gt_items": ["x"]},
    # no answer, ground truth at rank 3
    {"candidates": ["j", "k", "l"], "prediction": None, "gt_items": ["l"]},
]


def test_hr_at_1_counts_pairs() -> None:
    assert HitRatioAt1().compute(RECORDS) == pytest.approx(1 / 5)
    assert HitRatioAt1Conversation().compute(RECORDS) == pytest.approx(1 / 4)


def test_repeated_ground_truth_counts_twice_like_the_paper() -> None:
    rec = [{"candidates": ["a"], "prediction": "a", "gt_items": ["a", "a"]},
           {"candidates": ["b"], "prediction": "c", "gt_items": ["b"]}]
    assert HitRatioAt1().compute(rec) == pytest.approx(2 / 3)


def test_valid_ratio_is_over_conversations() -> None:
    assert ValidRatio().compute(RECORDS) == pytest.approx(2 / 4)


def test_recall_oracle_and_ceiling() -> None:
    assert RecallAtK(2).compute(RECORDS) == pytest.approx(3 / 5)
    assert RecallAtK(3).compute(RECORDS) == pytest.approx(4 / 5)
    assert OracleBound().compute(RECORDS) == pytest.approx(4 / 5)
    # one answer per conversation: the first conversation can give only one of its two pairs
    assert HitRatioCeiling().compute(RECORDS) == pytest.approx(3 / 5)


def test_retriever_alone_uses_the_top_item_and_refuses_unordered_lists() -> None:
    assert RetrieverHitRatioAt1().compute(RECORDS) == pytest.approx(2 / 5)
    assert RetrieverHitRatioAt1(ordered=False).compute(RECORDS) is None


def test_empty_input_is_none_not_zero() -> None:
    assert all(v is None for v in compute_all([], 10).values())
