"""Finished runs as pandas frames, for your own analysis: one row per cell (``load``) or per
(cell, conversation, ground truth) (``pairs``), and the one hit rule every per-pair view uses.

Public as ``bench.results.load`` / ``pairs`` / ``hit``; the files they read are described in
``bench/execution/store.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import astuple
from pathlib import Path
from typing import Any

import pandas as pd

from bench.core.errors import BenchError
from bench.execution.store import (
    KEY_FIELDS,
    PREDICTIONS_FILE,
    cell_key,
    iter_results,
    read_predictions,
)
from bench.task.stats import INTERVAL_METRICS


def load(*paths: str | Path) -> pd.DataFrame:
    """One row per cell under ``paths``: the key fields, every metric, ``{metric}_low`` /
    ``{metric}_high`` of each interval (NaN when absent), counts, ``candidate_set_hash``,
    ``flags`` (a tuple), ``failures.{kind}`` and ``usage.{key}`` columns, and ``file``."""
    rows = []
    for file, payload in iter_results(paths):
        row: dict[str, Any] = dict(zip(KEY_FIELDS, astuple(cell_key(payload, file)),
                                       strict=True))
        row.update(payload.get("metrics") or {})
        intervals = payload.get("intervals") or {}
        for name in INTERVAL_METRICS:
            low, high = intervals.get(name) or (None, None)
            row[f"{name}_low"], row[f"{name}_high"] = low, high
        row.update({k: payload.get(k) for k in ("n_conversations", "n_pairs", "top_k", "seed",
                                                 "candidate_set_hash", "id_parser")})
        row["flags"] = tuple(payload.get("flags") or ())
        for group in ("failures", "usage"):
            row.update({f"{group}.{k}": v for k, v in (payload.get(group) or {}).items()})
        row["file"] = str(file)
        rows.append(row)
    if not rows:
        raise BenchError(f"no results.json under {', '.join(map(str, paths))}",
                         hint="run `bench run` first")
    frame = pd.DataFrame(rows)
    return frame.astype({f"{m}_{end}": float for m in INTERVAL_METRICS for end in ("low", "high")})


PAIR_COLUMNS = (*KEY_FIELDS, "candidate_set_hash", "conversation", "pair", "gt_item",
                "prediction", "hit", "valid", "position")


def hit(prediction: str | None, gt_item: str) -> bool:
    """The one rule for a (conversation, ground truth) pair: the prediction names that item."""
    return prediction is not None and prediction == gt_item


def pair_rows(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """One row per (conversation, ground truth): ``hit`` (prediction equals it), ``valid``
    (prediction is a candidate) and ``position`` (0-based displayed slot of the prediction)."""
    for r in records:
        pred, shown = r["prediction"], r["presented"]
        position = shown.index(pred) if pred in shown else None
        for j, gt in enumerate(r["gt_items"]):
            yield {"conversation": r["id"], "pair": j, "gt_item": gt, "prediction": pred,
                   "hit": hit(pred, gt), "valid": pred in r["candidates"],
                   "position": position}


def pairs(*paths: str | Path) -> pd.DataFrame:
    """The per-pair hits of every cell under ``paths`` as one long frame (``PAIR_COLUMNS``),
    read from each cell's predictions.jsonl."""
    rows = []
    for file, payload in iter_results(paths):
        cell = dict(zip(KEY_FIELDS, astuple(cell_key(payload, file)), strict=True))
        cell["candidate_set_hash"] = payload.get("candidate_set_hash")
        rows += [{**cell, **row} for row in pair_rows(cell_records(file))]
    return pd.DataFrame(rows, columns=list(PAIR_COLUMNS)).astype({"position": "Int64"})


def cell_records(results_file: Path) -> list[dict[str, Any]]:
    """The finished predictions beside a results.json; missing or unreadable is one line."""
    path = results_file.parent / PREDICTIONS_FILE
    records, bad = read_predictions(path)
    if bad or not records:
        raise BenchError(bad[0] if bad else "no predictions for this cell",
                         where=str(path) if not bad else None,
                         hint="per-pair hits come from predictions.jsonl: re-run the cell")
    return records
