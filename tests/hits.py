"""Cells with planted per-pair hits, written straight to disk (no grid run): a results.json
and the predictions.jsonl it was computed from."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from bench.core.config import spec_hash
from bench.execution.store import PREDICTIONS_FILE, RESULTS_FILE, CellKey, write_json_atomic
from bench.task.metrics import compute_all
from bench.task.stats import cell_intervals
from tests.conftest import results_payload

CANDIDATES = [f"B00000000{k}" for k in range(10)]


def write_hits(out: Path, model: str, hits: Sequence[bool], *, retriever: str = "sbert",
               domain: str = "all_beauty", shift: int = 0, first: int = 0) -> Path:
    """One conversation per hit, one ground truth each (``CANDIDATES[k % 10]``); a hit answers
    it, a miss answers the next candidate. ``shift`` rotates the candidate lists (another
    retriever's candidate set); conversations are numbered from ``first``."""
    records = []
    for i, hit in enumerate(hits, start=first):
        cands = CANDIDATES[shift:] + CANDIDATES[:shift]
        gt = CANDIDATES[i % 10]
        pred = gt if hit else CANDIDATES[(i + 1) % 10]
        records.append({"id": f"all_beauty:test:{i}", "candidates": cands, "presented": cands,
                        "prediction": pred, "gt_items": [gt], "raw": pred, "failure": None,
                        "usage": {}})
    metrics = compute_all(records, 10)
    key = CellKey("reddit-amazon", domain, "test", retriever, model)
    cell_dir = key.directory(out)
    payload = {**results_payload(retriever, model, domain, metrics["hr@1"]),
               "metrics": metrics, "n_conversations": len(records), "n_pairs": len(records),
               "intervals": cell_intervals(records, metrics, resamples=200),
               "candidate_set_hash": spec_hash({r["id"]: r["candidates"] for r in records})}
    write_json_atomic(cell_dir / RESULTS_FILE, payload)
    (cell_dir / PREDICTIONS_FILE).write_text("".join(json.dumps(r) + "\n" for r in records),
                                             encoding="utf-8")
    return cell_dir
