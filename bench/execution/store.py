"""Storage of per-cell outputs: ``results.json`` (versioned schema), the append-only
``predictions.jsonl`` log, and the run folder's layout.

Layout: ``OUT/{dataset}/{domain}/{split}/{retriever}/{model}/`` holds both files. Schema v1 of
results.json (keys always present; a metric that does not apply is ``null``)::

    schema_version      1
    dataset             {"name", "content_hash", "root"}
    domain, split       strings
    retriever, model    registered names ("none" = retriever alone)
    retriever_identity, model_identity   model names + weight fingerprints + settings
    id_parser           how answers were read: "paper" (the authors' rule) or "robust"
                        (bench/task/parser.py); null when nothing is parsed (score mode, no model)
    metrics             {"hr@1", "hr@1_conv", "valid_ratio", "recall@10", "oracle",
                         "hr@1_ceiling", "retriever_hr@1"}
    n_conversations, n_pairs
    failures            generator failure breakdown {"no_id", "outside_candidates",
                        "several_ids", "mixed_ids", "over_budget", "error"}
    usage               summed token usage / cost reported by the generator
    candidate_set_hash  sha256 over every conversation's id and candidate list: two cells with
                        equal hashes ranked the same pairs from the same candidates (paired)
    intervals           {"level", "resamples", "seed", "method", "hr@1", "hr@1_conv",
                        "valid_ratio"}: 95% percentile bootstrap ``[low, high]`` over
                        conversations (``bench/task/stats.py``); null where the metric is null.
                        Absent in cells written before intervals existed
    config, config_hash the frozen run spec and its sha256
    seed, limit, top_k
    warnings            {code: count} of data problems met while loading or running, and of
                        the requests behind each flag
    flags               sorted subset of FLAGS: "all_failed" (every request ended in failure
                        "error", e.g. a dead server: the cell's numbers mean nothing and
                        ``bench run`` exits non-zero), "over_budget" (some request's prompt was
                        cut to nothing), "truncated" (some request's conversation was cut to fit,
                        usage.truncated > 0)
    timings             {"load_s", "retrieval_s", "generation_s", "total_s"}
    versions            python and package versions
    git_commit          of the harness checkout, or null
    created             ISO-8601 UTC

predictions.jsonl has one line per conversation, in dataset order once a cell is complete:
``{"id", "candidates", "presented", "prediction", "gt_items", "raw", "failure", "usage"}``.
A line that cannot be read is counted (warning ``bad_prediction_line``) and its conversation is
predicted again; every readable line is kept. Per-pair hits are recovered from these lines
(``bench.results.pairs``): pair j of a conversation is its j-th ground truth, hit when the
prediction equals it.

Reading them for analysis (``bench.results.load`` / ``pairs``) is ``bench/results/``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError

SCHEMA_VERSION = 1
FLAGS = ("all_failed", "over_budget", "truncated")
#: What the runner needs to reuse a finished cell's results.json (the table checks its own).
RESULT_KEYS = ("dataset", "domain", "split", "retriever", "model", "metrics",
               "n_conversations", "n_pairs", "top_k")
#: Every field of a predictions.jsonl line.
PREDICTION_KEYS = ("id", "candidates", "presented", "prediction", "gt_items", "raw", "failure",
                   "usage")
RESULTS_FILE = "results.json"
#: Where ``--permutations`` runs its other orders, inside OUT; ``iter_results`` skips it.
PERMUTATIONS_DIR = "_permutations"
PREDICTIONS_FILE = "predictions.jsonl"
#: Beside a cell's results.json after ``--permutations``: HR@1 per order and pick rates.
PERMUTATIONS_FILE = "permutations.json"


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


KEY_FIELDS = tuple(f.name for f in fields(CellKey))


def cell_key(payload: dict[str, Any], file: Path) -> CellKey:
    """The cell a payload belongs to (``dataset`` is its name); a missing field is one line."""
    try:
        return CellKey(*(str(payload[f]["name"] if f == "dataset" else payload[f])
                         for f in KEY_FIELDS))
    except (KeyError, TypeError):
        raise BenchError("results.json lacks a cell key field", where=str(file),
                         hint=f"it needs {', '.join(KEY_FIELDS)}") from None


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


def read_predictions(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every readable complete line, and ``file:line: problem`` for each unreadable one. A torn
    last line (killed mid-write) is dropped without a problem: it was never finished."""
    if not path.exists():
        return [], []
    records, bad = [], []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.endswith("\n"):
                break
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                bad.append(f"{path}:{lineno}: malformed JSON ({exc.msg})")
                continue
            if not isinstance(record, dict) or not isinstance(record.get("id"), str) or any(
                    k not in record for k in PREDICTION_KEYS):
                bad.append(f"{path}:{lineno}: not a prediction record")
                continue
            records.append(record)
    return records, bad


def _drop_torn_tail(path: Path) -> None:
    """Cut a half-written last line so appends start on a clean line; nothing else changes."""
    if not path.exists():
        return
    with path.open("rb+") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


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
        _drop_torn_tail(self.own)
        self.done: dict[str, dict[str, Any]] = {}
        #: ``file:line: problem`` of every unreadable line met when the log was opened.
        self.bad_lines = self.refresh()
        self._fh = self.own.open("a", encoding="utf-8")

    @staticmethod
    def files(cell_dir: Path) -> list[Path]:
        """The merged log and every rank's shard in a cell directory."""
        return [cell_dir / PREDICTIONS_FILE, *sorted(cell_dir.glob("predictions.rank*.jsonl"))]

    def shards(self) -> list[Path]:
        return self.files(self.path.parent)

    def refresh(self) -> list[str]:
        """Re-read every log of the cell (other ranks' progress included); a later line for a
        conversation (a retried failure) replaces an earlier one. Returns the unreadable lines."""
        bad: list[str] = []
        for shard in self.shards():
            records, problems = read_predictions(shard)
            bad += problems
            self.done.update((r["id"], r) for r in records)
        return bad

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
    """Every results.json under the given files/directories, schema-checked; the other
    orders of ``--permutations`` (``PERMUTATIONS_DIR``) only when asked for by path."""
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            raise BenchError(f"{root} does not exist", hint="pass a run directory or results.json")
        files = [root] if root.is_file() else sorted(
            f for f in root.rglob(RESULTS_FILE)
            if PERMUTATIONS_DIR not in f.relative_to(root).parts)
        for file in files:
            yield file, read_versioned(file, SCHEMA_VERSION, "results file",
                                       hint="re-run the cell with this version of lavic-bench")


def read_results(file: Path, *, hint: str) -> dict[str, Any]:
    """A results.json of this schema holding every key a reused cell needs; else one line."""
    data = read_versioned(file, SCHEMA_VERSION, "results file", hint=hint)
    missing = [k for k in RESULT_KEYS if k not in data]
    if missing or not isinstance(data["metrics"], dict):
        raise BenchError(f"results file lacks {', '.join(missing) or 'a metrics table'}",
                         where=str(file), hint=hint)
    return data


def read_json_object(file: Path, what: str, *, hint: str | None = None) -> dict[str, Any]:
    """A JSON object from ``file``; a directory, bad bytes or bad JSON is a one-line error."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except IsADirectoryError:
        raise BenchError(f"expected a {what}, found a directory", where=str(file),
                         hint=hint) from None
    except OSError as exc:
        raise BenchError(f"unreadable {what}: {exc.strerror}", where=str(file),
                         hint=hint) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchError(f"unreadable {what}: {exc}", where=str(file), hint=hint) from None
    if not isinstance(data, dict):
        raise BenchError(f"{what} is not a JSON object", where=str(file), hint=hint)
    return data


def read_versioned(file: Path, expected: int, what: str, *, hint: str) -> dict[str, Any]:
    """A JSON object with ``schema_version == expected``; anything else is a one-line error."""
    data = read_json_object(file, what, hint=hint)
    version = data.get("schema_version")
    if version != expected:
        raise BenchError(f"{what} schema_version {version!r}, expected {expected}",
                         where=str(file), hint=hint)
    return data
