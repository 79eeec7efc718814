"""A cell directory's identity and its finished payload: what a cell's output depends on,
whether a finished cell may be reused, must be refused, or is discarded (``--overwrite``), and
the results.json a finished cell's records make (its schema: ``bench/execution/store.py``).

``cell.json`` holds the run spec of the cell plus the identity of every input that can change
its predictions -- the dataset's content hash, the retriever's and generator's identities
(weights hashes, hub revisions) and the model-name mapping they resolved -- so a changed input
is a refusal naming what changed, never stale numbers.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.core.config import NO_MODEL, RunSpec, spec_hash
from bench.core.errors import BenchError, Warnings
from bench.execution.provenance import git_commit, package_versions
from bench.execution.response_cache import NEVER_CACHED
from bench.execution.store import (
    FLAGS,
    PREDICTIONS_FILE,
    RESULTS_FILE,
    SCHEMA_VERSION,
    CellKey,
    PredictionLog,
    read_json_object,
    read_results,
)
from bench.task.data.schema import Split
from bench.task.metrics import compute_all
from bench.task.protocols import Generator, Retriever
from bench.task.stats import cell_intervals

CELL_SPEC_FILE = "cell.json"


def cell_config(
    spec: RunSpec, key: CellKey, split: Split, retriever: Retriever,
    generator: Generator | None, models: dict[str, str],
) -> dict[str, Any]:
    """The run spec of one cell plus the identity of every input that can change it."""
    return {
        **spec.cell_spec(split.domain, key.retriever, key.model),
        "inputs": {
            "dataset_content_hash": split.content_hash,
            "retriever_identity": retriever.identity,
            "model_identity": generator.identity if generator else NO_MODEL,
            "models": dict(sorted(models.items())),
        },
    }


@dataclass(frozen=True)
class Reuse:
    """What a cell directory offers: a finished payload, or ``None`` when the cell must (still)
    run; ``stale`` says why an unreadable results.json will be recomputed."""

    payload: dict[str, Any] | None = None
    stale: str | None = None


def reuse(cell_dir: Path, config: dict[str, Any], *, overwrite: bool) -> Reuse:
    """A finished cell's payload when its inputs are unchanged; nothing when it must (still)
    run -- including when it holds recorded request errors to retry; raise on a foreign cell
    unless ``overwrite`` discards it."""
    spec_file = cell_dir / CELL_SPEC_FILE
    if not spec_file.exists():
        return Reuse()
    discard = "use another --out, or --overwrite to discard this cell"
    try:
        stored = read_json_object(spec_file, "cell file", hint=discard)
    except BenchError:
        if not overwrite or spec_file.is_dir():
            raise
        stored = {}  # unreadable, and the user asked to discard it
    if stored.get("config_hash") != spec_hash(config):
        if overwrite:
            for path in (spec_file, cell_dir / RESULTS_FILE, *PredictionLog.files(cell_dir)):
                path.unlink(missing_ok=True)
            return Reuse()
        raise BenchError(
            "this cell was produced by a different configuration (changed: "
            f"{', '.join(changed_inputs(stored, config))})", where=str(cell_dir), hint=discard)
    results = cell_dir / RESULTS_FILE
    if not results.exists():
        return Reuse()
    try:
        payload = read_results(results, hint=f"remove it: it is recomputed from {PREDICTIONS_FILE}")
    except BenchError as exc:
        if results.is_dir():
            raise
        return Reuse(stale=f"{exc.what}; recomputed from {PREDICTIONS_FILE}")
    return Reuse(None if set(payload.get("failures") or ()) & NEVER_CACHED else payload)


def cell_flags(records: Iterable[dict[str, Any]], warnings: Warnings) -> list[str]:
    """The cell's FLAGS; each flagged request is also a counted warning naming it."""
    records = list(records)
    for r in records:
        if r.get("failure") == "over_budget":
            warnings.add("over_budget", "prompt cut to nothing", where=r["id"])
        if (r.get("usage") or {}).get("truncated", 0) > 0:
            warnings.add("truncated", "conversation cut to fit the context", where=r["id"])
    if records and all(r.get("failure") == "error" for r in records):
        for r in records:
            warnings.add("all_failed", f"request failed: {str(r.get('raw'))[:200]}",
                         where=r["id"])
    return sorted(code for code in FLAGS if warnings.counts[code])


def sum_usage(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for r in records:
        for key, value in (r.get("usage") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
    return total


def failure_counts(records: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        if r.get("failure"):
            counts[r["failure"]] = counts.get(r["failure"], 0) + 1
    return dict(sorted(counts.items()))


def generator_info(records: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """Distinct string facts the generator reported (dated snapshot, system fingerprint)."""
    found: dict[str, set[str]] = {}
    for r in records:
        for key, value in (r.get("usage") or {}).items():
            if isinstance(value, str):
                found.setdefault(key, set()).add(value)
    return {k: sorted(v) for k, v in sorted(found.items())}


def summary_line(payload: dict[str, Any]) -> str:
    m = payload["metrics"]
    recall = m[f"recall@{payload['top_k']}"]

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}"

    flags = payload.get("flags") or []
    return (
        f"{payload['domain']:>15} {payload['retriever']:>12} {payload['model']:>10}  "
        f"HR@1 {fmt(m['hr@1'])}  VR {fmt(m['valid_ratio'])}  "
        f"R@{payload['top_k']} {fmt(recall)}  "
        f"n={payload['n_conversations']}/{payload['n_pairs']}"
        + (f"  FLAGGED: {', '.join(flags)}" if flags else "")
    )


def changed_inputs(stored: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """Which keys of a cell's config (its ``inputs`` one level down) differ from ``stored``."""
    old_inputs = stored.get("inputs") if isinstance(stored.get("inputs"), dict) else {}
    changed = [k for k in config if k != "inputs" and stored.get(k) != config[k]]
    changed += [k for k, v in config["inputs"].items() if old_inputs.get(k) != v]
    return changed or ["inputs"]


@dataclass(frozen=True)
class Finished:
    """What the runner knows once every conversation of a cell is predicted."""

    key: CellKey
    split: Split
    config: dict[str, Any]  # cell.json's content (``cell_config``), without its hash
    records: list[dict[str, Any]]  # predictions.jsonl, in dataset order
    candidates: dict[str, list[str]]  # conversation id -> the retriever's top-k
    generator: Generator | None
    ordered: bool  # the retriever's lists are in score order


def results_payload(cell: Finished, spec: RunSpec, *, warnings: Warnings, flags: list[str],
                    resamples: int, timings: dict[str, float], started: float
                    ) -> dict[str, Any]:
    """The cell's results.json (schema v1); ``started`` is when the cell began (perf_counter)."""
    records = cell.records
    metrics = compute_all(records, spec.top_k, ordered=cell.ordered)
    if cell.generator is None:
        metrics["valid_ratio"] = None
        if not cell.ordered:  # a shipped, unordered list has no "top" item
            metrics["hr@1"] = metrics["hr@1_conv"] = None
    conversations = cell.split.conversations
    return {
        "schema_version": SCHEMA_VERSION,
        "dataset": {"name": cell.split.dataset, "content_hash": cell.split.content_hash,
                    "root": str(cell.split.root)},
        "domain": cell.split.domain,
        "split": cell.split.split,
        "retriever": cell.key.retriever,
        "retriever_identity": cell.config["inputs"]["retriever_identity"],
        "model": cell.key.model,
        "model_identity": cell.config["inputs"]["model_identity"],
        "id_parser": getattr(cell.generator, "id_parser", None),
        "metrics": metrics,
        "intervals": cell_intervals(records, metrics, resamples=resamples, seed=spec.seed),
        "n_conversations": len(records),
        "n_pairs": sum(len(r["gt_items"]) for r in records),
        "failures": failure_counts(records),
        "usage": sum_usage(records),
        "generator_info": generator_info(records),
        "candidate_set_hash": spec_hash({c.id: cell.candidates[c.id] for c in conversations}),
        "config": cell.config,
        "config_hash": spec_hash(cell.config),
        "seed": spec.seed,
        "limit": spec.limit,
        "top_k": spec.top_k,
        "warnings": warnings.as_dict(),
        "flags": flags,
        "timings": {**timings, "total_s": timings["load_s"] + timings["retrieval_s"]
                    + time.perf_counter() - started},
        "versions": package_versions(),
        "git_commit": git_commit(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
