"""Per-cell outputs: ``results.json`` (versioned schema) and ``predictions.jsonl``.

Layout: ``OUT/{dataset}/{domain}/{split}/{retriever}/{model}/`` holds both files. Schema v1 of
results.json (keys always present; a metric that does not apply is ``null``)::

    schema_version      1
    dataset             {"name", "content_hash", "root"}
    domain, split       strings
    retriever, model    registered names ("none" = retriever alone)
    retriever_identity, model_identity   model names + weight fingerprints + settings
    metrics             {"hr@1", "hr@1_conv", "valid_ratio", "recall@10", "oracle",
                         "hr@1_ceiling", "retriever_hr@1"}
    n_conversations, n_pairs
    failures            generator failure breakdown {"no_id", "outside_candidates", ...}
    usage               summed token usage / cost reported by the generator
    candidate_set_hash  sha256 over every conversation's candidate list
    config, config_hash the frozen run spec and its sha256
    seed, limit, top_k
    warnings            {code: count} of data problems met while loading or running
    timings             {"load_s", "retrieval_s", "generation_s", "total_s"}
    versions            python and package versions
    git_commit          of the harness checkout, or null
    created             ISO-8601 UTC

predictions.jsonl has one line per conversation, in dataset order once a cell is complete:
``{"id", "candidates", "presented", "prediction", "gt_items", "raw", "failure", "usage"}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions.jsonl"


@dataclass(frozen=True)
class CellKey:
    dataset: str
    domain: str
    split: str
    retriever: str
    model: str

    def directory(self, out: Path) -> Path:
        safe = [p.replace(":", "-").replace("/", "_") for p in (self.retriever, self.model)]
        return out / self.dataset / self.domain / self.split / safe[0] / safe[1]


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write-then-rename, so a kill never leaves a half-written file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, sort_keys=True, ensure_ascii=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """Complete lines only: a torn last line (killed mid-write) is dropped, not an error."""
    if not path.exists():
        return []
    records = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return records


class PredictionLog:
    """Append-only, fsync'd log of finished conversations; the basis of resume.

    Under data parallelism every rank appends to its own ``predictions.rank{R}.jsonl``; what
    is done is the union of all logs in the cell directory, and rank 0 merges them into
    ``predictions.jsonl`` once every conversation is present -- no shard can be lost.
    """

    def __init__(self, path: Path, rank: int = 0, world: int = 1) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.own = path if world == 1 else path.with_name(f"predictions.rank{rank}.jsonl")
        # Rewrite without a torn tail so appends start on a clean line.
        _rewrite(self.own, read_predictions(self.own))
        self.done: dict[str, dict[str, Any]] = {}
        self.refresh()
        self._fh = self.own.open("a", encoding="utf-8")

    def shards(self) -> list[Path]:
        return [self.path, *sorted(self.path.parent.glob("predictions.rank*.jsonl"))]

    def refresh(self) -> None:
        """Re-read every log of the cell (other ranks' progress included)."""
        for shard in self.shards():
            for record in read_predictions(shard):
                self.done.setdefault(record["id"], record)

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        for r in records:
            self._fh.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")
            self.done[r["id"]] = r
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def finalize(self, order: list[str]) -> list[dict[str, Any]]:
        """Rewrite in dataset order, so resumed, sharded and uninterrupted runs match."""
        self.close()
        ordered = [self.done[i] for i in order]
        _rewrite(self.path, ordered)
        for shard in self.shards()[1:]:
            shard.unlink()
        return ordered


def _rewrite(path: Path, records: Iterable[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def iter_results(paths: Iterable[str | Path]) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every results.json under the given files/directories, schema-checked."""
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            raise BenchError(f"{root} does not exist", hint="pass a run directory or results.json")
        files = [root] if root.is_file() else sorted(root.rglob(RESULTS_FILE))
        for file in files:
            yield file, read_versioned(file, SCHEMA_VERSION, "results file",
                                       hint="re-run the cell with this version of lavic-bench")


def read_versioned(file: Path, expected: int, what: str, *, hint: str) -> dict[str, Any]:
    """A JSON object with ``schema_version == expected``; anything else is a one-line error."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchError(f"unreadable {what}: {exc}", where=str(file)) from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != expected:
        raise BenchError(f"{what} schema_version {version!r}, expected {expected}",
                         where=str(file), hint=hint)
    return data
