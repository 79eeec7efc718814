"""``bench run --permutations N``: does a generator prefer a displayed position?

Each conversation's candidates are shown in N seeded orders. Order 0 is the run itself (the
run seed's shuffle); order i > 0 is the same grid run again with the order salt ``perm{i}``
(``bench.task.prompt.presented_order`` shuffles by run seed, conversation id and salt) into
``OUT/_permutations/order-{i}/`` -- a full run of its own, so resume and the response cache
work as always: a permuted prompt is a different request, a repeated run is served from the
cache. ``iter_results`` skips ``_permutations`` folders, so tables of OUT show order 0 only.
Reading the summaries back (table, frame) is ``bench/results/positions.py``.

Every cell with a generator then gets ``permutations.json`` beside its results.json::

    {"orders", "salts", "hr@1": [per order], "hr@1_mean", "hr@1_std" (sample, ddof=1),
     "positions", "pick_rate": [share of (conversation, order) answers naming the item shown
     at position 1, 2, ...], "uniform": ValidRatio / positions}

An unbiased generator picks every position at about the ``uniform`` rate; one that prefers
slot 1 shows ``pick_rate[0]`` far above it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.config import NO_MODEL, RunSpec
from bench.core.errors import BenchError
from bench.execution.runner import Grid
from bench.execution.store import (
    KEY_FIELDS,
    PERMUTATIONS_DIR,
    PERMUTATIONS_FILE,
    PREDICTIONS_FILE,
    cell_key,
    read_predictions,
    write_json_atomic,
)
from bench.task.metrics import HitRatioAt1, ValidRatio


def order_dirs(out: Path, n: int) -> list[Path]:
    """The run folder of each order: OUT itself for order 0."""
    return [out, *(out / PERMUTATIONS_DIR / f"order-{i}" for i in range(1, n))]


def run_orders(grid: Grid, n: int) -> None:
    """Run orders 1..n-1 of ``grid`` (order 0 has run) with its generators (built once) and
    one shared cost budget."""
    check(n, grid.spec)
    for i, folder in enumerate(order_dirs(Path(grid.spec.out), n)[1:], start=1):
        grid.echo(f"order {i + 1} of {n}: {folder}")
        sub = replace(grid, spec=replace(grid.spec, out=str(folder)), order_salt=f"perm{i}")
        sub.run()
        grid.spent_usd = sub.spent_usd


def summarize(records_by_order: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
    """HR@1 per order with mean and spread, and the pick rate per displayed position."""
    hr1 = [HitRatioAt1().compute(records) for records in records_by_order]
    positions = max(len(r["presented"]) for records in records_by_order for r in records)
    picks = np.zeros(positions)
    answers = 0
    for records in records_by_order:
        for r in records:
            answers += 1
            if r["prediction"] in r["presented"]:
                picks[r["presented"].index(r["prediction"])] += 1
    valid = np.mean([ValidRatio().compute(records) or 0.0 for records in records_by_order])
    scores = np.array([h for h in hr1 if h is not None])
    return {
        "orders": len(records_by_order),
        "hr@1": hr1,
        "hr@1_mean": float(scores.mean()) if len(scores) else None,
        "hr@1_std": float(scores.std(ddof=1)) if len(scores) > 1 else None,
        "positions": positions,
        "pick_rate": (picks / answers).tolist(),
        "uniform": float(valid / positions),
    }


def write_summaries(out: Path, n: int, payloads: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """permutations.json for every cell with a generator; returns the summaries with keys."""
    found = []
    for payload in payloads:
        if payload["model"] == NO_MODEL:
            continue
        key = cell_key(payload, Path(out))
        orders = []
        for folder in order_dirs(out, n):
            records, bad = read_predictions(key.directory(folder) / PREDICTIONS_FILE)
            if bad or not records:
                raise BenchError("an order's predictions are unreadable or missing",
                                 where=str(key.directory(folder)), hint="re-run to finish it")
            orders.append(records)
        summary = {**summarize(orders), "salts": ["", *(f"perm{i}" for i in range(1, n))]}
        write_json_atomic(key.directory(out) / PERMUTATIONS_FILE, summary)
        found.append({**dict(zip(KEY_FIELDS, astuple(key), strict=True)), **summary})
    return found


def check(n: int, spec: RunSpec) -> None:
    """Refuse a bad ``--permutations`` before any work."""
    if n < 1:
        raise BenchError(f"--permutations {n}", hint="pass 1 or more orders (1 = no extra)")
    if spec.keep_order and n > 1:
        raise BenchError("--permutations shuffles the candidates; --keep-order forbids it",
                         hint="drop --keep-order (keep_order in bench.toml)")
