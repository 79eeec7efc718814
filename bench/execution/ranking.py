"""Each retriever's longer ranked list, kept beside its cells for Recall@k curves (k = 1..50).

A cell keeps only its top-k candidates (k = 10 by default); ``bench report`` plots Recall@k up
to :data:`DEPTH`, so the runner asks an ordered retriever for ``max(top_k, DEPTH)`` items once
per domain and writes them to ``{retriever folder}/ranking.jsonl`` -- one ``{"id", "ranking"}``
line per conversation -- the folder that holds that retriever's cells. Retrieval is skipped when
every cell is reused, so the file written by the run that made the cells stays. A reader checks
that each list starts with its cell's candidates (:func:`read`), so a ranking left by another
run is never mixed with this one's cells.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DEPTH = 50
RANKING_FILE = "ranking.jsonl"


def write(folder: Path, ids: Sequence[str], rankings: Sequence[Sequence[str]]) -> None:
    """One line per conversation, written whole (tmp file, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{RANKING_FILE}.tmp"
    tmp.write_text("".join(json.dumps({"id": i, "ranking": list(r)}) + "\n"
                           for i, r in zip(ids, rankings, strict=True)), encoding="utf-8")
    tmp.replace(folder / RANKING_FILE)


def read(folder: Path, candidates: dict[str, list[str]]) -> dict[str, list[str]] | None:
    """The stored rankings of the conversations in ``candidates`` (id -> the cell's top-k), or
    None when there is no file, it cannot be read, it lacks a conversation, or a list does not
    start with that conversation's candidates (written by a different run)."""
    path = folder / RANKING_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        stored = {r["id"]: r["ranking"] for r in map(json.loads, lines)}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if any(stored.get(i, [])[: len(c)] != c for i, c in candidates.items()):
        return None
    return {i: stored[i] for i in candidates}


def recall_curve(rankings: Sequence[Sequence[str]], gt_items: Sequence[Sequence[str]],
                 depth: int = DEPTH) -> np.ndarray:
    """Recall@k for k = 1..depth over (conversation, ground truth) pairs, as RecallAtK counts
    them: a pair is found at k when its item is among the first k (bench/task/metrics.py)."""
    found = np.zeros(depth + 1)
    pairs = 0
    for ranking, gts in zip(rankings, gt_items, strict=True):
        position = {item: rank for rank, item in reversed(list(enumerate(ranking[:depth], 1)))}
        for gt in gts:
            pairs += 1
            if gt in position:
                found[position[gt]] += 1
    return np.cumsum(found)[1:] / pairs if pairs else np.full(depth, np.nan)
