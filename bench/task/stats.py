"""Statistics over conversations: bootstrap intervals, exact McNemar, Holm.

The unit of resampling is the conversation: a conversation with two ground truths keeps both
of its (conversation, ground truth) pairs together, because one prediction scores both. Every
ratio metric here is ``sum_c num_c / sum_c den_c`` over conversations c (HR@1: hits over
pairs; HR@1 per conversation and ValidRatio: one per conversation), so one resampling routine
serves them all, and a paired difference is the same ratio with ``num_c = hits_A - hits_B``.

Intervals are percentile bootstrap intervals: ``resamples`` draws of n conversations with
replacement from a ``numpy`` generator seeded by ``seed``, so the same seed gives the same
interval and two cells resampled with one seed are resampled *together* (paired).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import binomtest

#: The default number of bootstrap resamples: enough for a stable 95% interval at 2 decimals,
#: a few milliseconds per cell.
RESAMPLES = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile bootstrap interval."""

    estimate: float
    low: float
    high: float


def resample_counts(n: int, resamples: int, seed: int) -> NDArray[np.float64]:
    """(resamples, n) draw counts: row b says how often each conversation is in resample b
    (n draws with replacement; counted with one bincount, as floats for the products)."""
    if n < 1 or resamples < 1:
        raise ValueError(f"need n >= 1 and resamples >= 1, got {n}, {resamples}")
    drawn = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    flat = (drawn + n * np.arange(resamples)[:, None]).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(float)


def bootstrap_ratio(
    num: ArrayLike, den: ArrayLike, *, resamples: int = RESAMPLES, seed: int = 0,
    level: float = LEVEL,
) -> Interval | None:
    """``sum(num) / sum(den)`` with the interval of that ratio over conversations resampled
    with replacement; None when there is no conversation or the denominator is zero."""
    num_a, den_a = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if num_a.shape != den_a.shape or num_a.ndim != 1:
        raise ValueError("num and den must be 1-d arrays of the same length")
    if not len(num_a) or den_a.sum() == 0:
        return None
    return _interval(num_a, den_a, resample_counts(len(num_a), resamples, seed), level)


def _interval(num: NDArray[np.float64], den: NDArray[np.float64], counts: NDArray[np.float64],
              level: float) -> Interval:
    """The ratio and its percentile interval over the resamples drawn in ``counts``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = (counts @ num) / (counts @ den)
    alpha = (1.0 - level) / 2
    low, high = np.nanquantile(draws, [alpha, 1.0 - alpha])
    return Interval(float(num.sum() / den.sum()), float(low), float(high))


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar on paired binary outcomes: ``a_only`` pairs hit by A alone, ``b_only``
    by B alone; ``p`` is the two-sided binomial p-value of a_only in a_only + b_only at 1/2."""

    a_only: int
    b_only: int
    p: float


def mcnemar_exact(a: ArrayLike, b: ArrayLike) -> McNemar:
    """Exact (binomial) McNemar test of two cells' hits on the same pairs, in the same order."""
    a_b, b_b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a_b.shape != b_b.shape:
        raise ValueError("a and b must hold the hits of the same pairs")
    a_only, b_only = int((a_b & ~b_b).sum()), int((~a_b & b_b).sum())
    discordant = a_only + b_only
    p = 1.0 if discordant == 0 else float(binomtest(a_only, discordant, 0.5).pvalue)
    return McNemar(a_only, b_only, min(1.0, p))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order: the i-th smallest of m is
    multiplied by (m - i), made non-decreasing along that order, capped at 1."""
    order = np.argsort(np.asarray(pvalues, dtype=float), kind="stable")
    m = len(order)
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(pvalues[idx])))
        adjusted[idx] = running
    return adjusted.tolist()


#: The metrics that get intervals, each as (numerator, denominator) per conversation.
INTERVAL_METRICS = ("hr@1", "hr@1_conv", "valid_ratio")


def per_conversation(records: Sequence[dict[str, Any]]) -> dict[str, NDArray[np.float64]]:
    """Per-conversation counts behind the interval metrics (``bench/task/metrics.py``'s formulas):
    ``pairs``, ``hits`` (pairs scored, a repeated ground truth twice), ``conv_hit``, ``valid``."""
    preds = [r["prediction"] for r in records]
    return {
        "pairs": np.array([len(r["gt_items"]) for r in records], dtype=float),
        "hits": np.array([r["gt_items"].count(p) if p else 0 for r, p in zip(records, preds,
                                                                          strict=True)],
                         dtype=float),
        "conv_hit": np.array([p in r["gt_items"] for r, p in zip(records, preds, strict=True)],
                             dtype=float),
        "valid": np.array([p in r["candidates"] for r, p in zip(records, preds, strict=True)],
                          dtype=float),
    }


def cell_intervals(
    records: Sequence[dict[str, Any]], metrics: dict[str, float | None], *,
    resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL,
) -> dict[str, Any]:
    """results.json's ``intervals``: ``[low, high]`` per interval metric (null where the metric
    is null), with the level, resample count, seed and method that made them."""
    per = per_conversation(records)
    ones = np.ones(len(records))
    parts = {"hr@1": (per["hits"], per["pairs"]), "hr@1_conv": (per["conv_hit"], ones),
             "valid_ratio": (per["valid"], ones)}
    draws = resample_counts(len(records), resamples, seed) if records else None  # shared
    found: dict[str, Any] = {"level": level, "resamples": resamples, "seed": seed,
                             "method": "percentile bootstrap over conversations"}
    for name in INTERVAL_METRICS:
        num, den = parts[name]
        if metrics.get(name) is None or draws is None or den.sum() == 0:
            found[name] = None
        else:
            ci = _interval(num, den, draws, level)
            found[name] = [ci.low, ci.high]
    return found
