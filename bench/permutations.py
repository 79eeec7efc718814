"""``bench run --permutations N``: does a generator prefer a displayed position?

Each conversation's candidates are shown in N seeded orders. Order 0 is the run itself (the
run seed's shuffle); order i > 0 is the same grid run again with the order salt ``perm{i}``
(``presented_order`` shuffles by run seed, conversation id and salt) into
``OUT/_permutations/order-{i}/`` -- a full run of its own, so resume and the response cache
work as always: a permuted prompt is a different request, a repeated run is served from the
cache. ``iter_results`` skips ``_permutations`` folders, so tables of OUT show order 0 only.

Every cell with a generator then gets ``permutations.json`` beside its results.json::

    {"orders", "salts", "hr@1": [per order], "hr@1_mean", "hr@1_std" (sample, ddof=1),
     "positions", "pick_rate": [share of (conversation, order) answers naming the item shown
     at position 1, 2, ...], "uniform": ValidRatio / positions}

An unbiased generator picks every position at about the ``uniform`` rate; one that prefers
slot 1 shows ``pick_rate[0]`` far above it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import astuple, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench.errors import BenchError
from bench.metrics import HitRatioAt1, ValidRatio
from bench.results import (
    KEY_FIELDS,
    PERMUTATIONS_DIR,
    cell_key,
    iter_results,
    read_json_object,
    read_predictions,
    write_json_atomic,
)

if TYPE_CHECKING:
    from bench.config import RunSpec
    from bench.runner import Grid

PERMUTATIONS_FILE = "permutations.json"


def presented_order(candidates: Sequence[str], seed: int, conv_id: str, keep: bool,
                    salt: str = "") -> list[str]:
    """The order shown to a generator: a shuffle seeded by (run seed, conversation id), so it
    does not depend on batch size, on resume, or on which other conversations are run; a
    ``salt`` gives another order of the same seed (``bench/permutations.py``)."""
    order = list(candidates)
    if not keep:
        random.Random(f"{seed}:{conv_id}" + (f":{salt}" if salt else "")).shuffle(order)
    return order


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
        if payload["model"] == "none":
            continue
        key = cell_key(payload, Path(out))
        orders = []
        for folder in order_dirs(out, n):
            records, bad = read_predictions(key.directory(folder) / "predictions.jsonl")
            if bad or not records:
                raise BenchError("an order's predictions are unreadable or missing",
                                 where=str(key.directory(folder)), hint="re-run to finish it")
            orders.append(records)
        summary = {**summarize(orders), "salts": ["", *(f"perm{i}" for i in range(1, n))]}
        write_json_atomic(key.directory(out) / PERMUTATIONS_FILE, summary)
        found.append({**dict(zip(KEY_FIELDS, astuple(key), strict=True)), **summary})
    return found


def render(summaries: Sequence[dict[str, Any]]) -> str:
    """Markdown: HR@1 mean +- spread across orders and the pick rate per position."""
    if not summaries:
        return "no cell with a generator: no position pick rates\n"
    positions = max(s["positions"] for s in summaries)
    rows = []
    for s in summaries:
        spread = "-" if s["hr@1_std"] is None else f"{s['hr@1_std']:.4f}"
        mean = "-" if s["hr@1_mean"] is None else f"{s['hr@1_mean']:.4f}"
        rows.append([s["domain"], s["retriever"], s["model"], s["orders"], mean, spread,
                     f"{s['uniform']:.3f}",
                     *(f"{r:.3f}" for r in s["pick_rate"]),
                     *[""] * (positions - len(s["pick_rate"]))])
    heads = ["domain", "retriever", "model", "orders", "HR@1 mean", "HR@1 std", "uniform",
             *(f"pos {j + 1}" for j in range(positions))]
    return tabulate(rows, heads, tablefmt="pipe", disable_numparse=True) + (
        "\n\npick rate = share of answers naming the item shown at that position, over all "
        "orders; uniform = ValidRatio / positions (no position bias)\n")


def load(*paths: str | Path) -> pd.DataFrame:
    """Pick rates as a long frame: the cell's key fields, ``position`` (1-based),
    ``pick_rate``, ``uniform``, ``orders``, ``hr@1_mean``, ``hr@1_std``; one row per cell
    and position, for every cell under ``paths`` that has a permutations.json."""
    rows = []
    for file, payload in iter_results(paths):
        summary_file = file.parent / PERMUTATIONS_FILE
        if not summary_file.exists():
            continue
        summary = read_json_object(summary_file, "permutations summary")
        key = dict(zip(KEY_FIELDS, astuple(cell_key(payload, file)), strict=True))
        rows += [{**key, "position": j + 1, "pick_rate": rate, "uniform": summary["uniform"],
                  "orders": summary["orders"], "hr@1_mean": summary["hr@1_mean"],
                  "hr@1_std": summary["hr@1_std"]}
                 for j, rate in enumerate(summary["pick_rate"])]
    return pd.DataFrame(rows, columns=[*KEY_FIELDS, "position", "pick_rate", "uniform", "orders",
                                       "hr@1_mean", "hr@1_std"])



def check(n: int, spec: RunSpec) -> None:
    """Refuse a bad ``--permutations`` before any work."""
    if n < 1:
        raise BenchError(f"--permutations {n}", hint="pass 1 or more orders (1 = no extra)")
    if spec.keep_order and n > 1:
        raise BenchError("--permutations shuffles the candidates; --keep-order forbids it",
                         hint="drop --keep-order (keep_order in bench.toml)")
