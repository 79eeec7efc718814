"""A cell directory's identity: what a cell's output depends on, and whether a finished cell
may be reused, must be refused, or is discarded (``--overwrite``).

``cell.json`` holds the run spec of the cell plus the identity of every input that can change
its predictions -- the dataset's content hash, the retriever's and generator's identities
(weights hashes, hub revisions) and the model-name mapping they resolved -- so a changed input
is a refusal naming what changed, never stale numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import RunSpec, spec_hash
from bench.data.schema import Split
from bench.errors import BenchError
from bench.protocols import Generator, Retriever
from bench.response_cache import NEVER_CACHED
from bench.results import (
    PREDICTIONS_FILE,
    RESULTS_FILE,
    CellKey,
    PredictionLog,
    changed_inputs,
    read_json_object,
    read_results,
)

NO_MODEL = "none"
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
