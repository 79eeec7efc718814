"""The position-bias view of a ``bench run --permutations N`` run: each cell's
``permutations.json`` (written by ``bench/execution/permutations.py``) as a table and a frame."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from bench.execution.store import (
    KEY_FIELDS,
    PERMUTATIONS_FILE,
    cell_key,
    iter_results,
    read_json_object,
)


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
