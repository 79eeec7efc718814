"""Regression gate: measured HR@1 against a committed baseline's per-pair hits.

Baseline file (JSON, schema 2; ``bench check RUN --baseline FILE --write`` makes it)::

    {"schema_version": 2,
     "cells": [{"dataset", "domain", "split", "retriever", "model", "hr@1",
                "hits": {conversation id: "10", ...}}, ...]}

``hits`` holds each conversation's per-pair hits, one character per ground truth in data order
("1" = that ground truth was the prediction). A baseline cell fails when

* it has no results.json (a cell that silently stopped running is a regression too), or its
  HR@1 is null;
* HR@1 dropped by more than ``tolerance`` (the minimum effect that always fails);
* HR@1 dropped and the exact McNemar test on the pairs both runs scored says the drop is
  significant (two-sided p < 1 - level), however small;
* HR@1 rose above the upper end of the baseline's bootstrap interval at ``level`` -- far more
  than noise, the way an answer leaking into the prompt looks.

Old baselines (schema 1, HR@1 only) and result cells without predictions.jsonl still check,
against the tolerance alone: each such cell is a counted ``no_pair_hits`` warning in the
report. A baseline whose conversations differ from the run's fails (``unpaired``): rewrite it.
Result cells that the baseline does not list are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench.core.errors import BenchError, Warnings
from bench.execution.store import (
    KEY_FIELDS,
    PREDICTIONS_FILE,
    CellKey,
    iter_results,
    read_json_object,
    write_json_atomic,
)
from bench.results.frames import cell_records, hit
from bench.results.tables import collect, metric
from bench.task.stats import LEVEL, RESAMPLES, bootstrap_ratio, mcnemar_exact

BASELINE_VERSIONS = (1, 2)
#: Slack for float representation error, so a cell exactly at the threshold never flips.
_EPS = 1e-9
_REASONS = {
    "below": "HR@1 dropped by more than the tolerance",
    "significant": "HR@1 dropped significantly (exact McNemar on the shared pairs)",
    "rise": "HR@1 rose above the baseline's interval (an answer leaking into the prompt?)",
    "unpaired": "the run's conversations differ from the baseline's (rewrite it with --write)",
    "missing": "no results.json for this cell (did it stop running?)",
    "null": "HR@1 is null in results.json",
}
Hits = dict[str, str]


@dataclass(frozen=True)
class CellCheck:
    """One baseline cell's verdict; ``measured``/``delta`` are None when there is no number,
    ``p`` (McNemar) and ``high`` (top of the baseline's interval) when there are no hits."""

    key: CellKey
    baseline: float
    measured: float | None
    delta: float | None
    status: str  # "ok" or a key of _REASONS
    p: float | None = None
    high: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def reason(self, level: float) -> str:
        text = f"{'/'.join(astuple(self.key))}: {_REASONS[self.status]}"
        if self.delta is not None:
            text += f": {self.baseline:.4f} -> {self.measured:.4f} ({self.delta:+.4f})"
        if self.p is not None and self.status in ("below", "significant", "rise"):
            text += f", McNemar p = {self.p:.4g} (level {level:.2f})"
        if self.status == "rise" and self.high is not None:
            text += f", interval top {self.high:.4f}"
        return text


@dataclass(frozen=True)
class CheckReport:
    cells: tuple[CellCheck, ...]
    tolerance: float
    level: float = LEVEL
    warnings: Warnings | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.cells)

    @property
    def failures(self) -> tuple[CellCheck, ...]:
        return tuple(c for c in self.cells if not c.ok)

    def render(self) -> str:
        """A plain text table (tabulate), one line per baseline cell, the reason of each
        failure, the counted warnings, then a summary line."""
        rows = []
        for c in self.cells:
            measured = "-" if c.measured is None else f"{c.measured:.4f}"
            delta = "-" if c.delta is None else f"{c.delta:+.4f}"
            p = "-" if c.p is None else f"{c.p:.4g}"
            status = c.status if c.ok else c.status.upper()
            rows.append(("/".join(astuple(c.key)), measured, f"{c.baseline:.4f}", delta, p,
                         status))
        text = [tabulate(rows, ("cell", "measured", "baseline", "delta", "p", "status"),
                         tablefmt="plain", disable_numparse=True,
                         colalign=("left", "right", "right", "right", "right", "right"))]
        text += [c.reason(self.level) for c in self.failures]
        text += self.warnings.lines() if self.warnings else []
        bad = len(self.failures)
        verdict = "ok" if self.ok else f"{bad} of {len(self.cells)} cells failed"
        text.append(f"{verdict} (tolerance {self.tolerance:.4f})")
        return "\n".join(text) + "\n"


def _cells(results_paths: Iterable[str | Path]) -> dict[CellKey, tuple[Path, dict[str, Any]]]:
    found = collect(iter_results(results_paths), KEY_FIELDS)
    return {CellKey(*key): value for key, value in found.items()}


def _hits(records: Iterable[dict[str, Any]]) -> Hits:
    """Per conversation, one character per ground truth: "1" where it was the prediction."""
    return {r["id"]: "".join("1" if hit(r["prediction"], g) else "0" for g in r["gt_items"])
            for r in records}


def _read_hits(cell: dict[str, Any], where: str) -> Hits | None:
    hits = cell.get("hits")
    if hits is None:
        return None
    if not isinstance(hits, dict) or not all(
            isinstance(v, str) and v and set(v) <= {"0", "1"} for v in hits.values()):
        raise BenchError("hits must map conversation ids to strings of 0 and 1", where=where)
    return hits


def read_baseline(path: str | Path) -> list[tuple[CellKey, float, Hits | None]]:
    """Parse and validate a baseline file; every problem names the file and cell index."""
    file = Path(path)
    hint = "recreate it with `bench check RUN --baseline FILE --write`"
    data = read_json_baseline(file, hint)
    cells = data.get("cells")
    if not isinstance(cells, list):
        raise BenchError("baseline has no 'cells' list", where=str(file))
    parsed: dict[CellKey, tuple[float, Hits | None]] = {}
    for i, cell in enumerate(cells):
        where = f"{file}: cells[{i}]"
        if not isinstance(cell, dict):
            raise BenchError("a cell must be an object", where=where)
        missing = [k for k in (*KEY_FIELDS, "hr@1") if k not in cell]
        if missing:
            raise BenchError(f"cell lacks {', '.join(missing)}", where=where)
        hr1 = cell["hr@1"]
        if isinstance(hr1, bool) or not isinstance(hr1, int | float):
            raise BenchError(f"hr@1 must be a number, got {hr1!r}", where=where)
        key = CellKey(*(str(cell[k]) for k in KEY_FIELDS))
        if key in parsed:
            raise BenchError(f"cell {'/'.join(astuple(key))} is listed twice", where=where)
        parsed[key] = (float(hr1), _read_hits(cell, where))
    return [(key, hr1, hits) for key, (hr1, hits) in parsed.items()]


def read_json_baseline(file: Path, hint: str) -> dict[str, Any]:
    """The baseline's JSON object, of a schema version this check reads."""
    data = read_json_object(file, "baseline", hint=hint)
    if data.get("schema_version") not in BASELINE_VERSIONS:
        raise BenchError(f"baseline schema_version {data.get('schema_version')!r}, expected "
                         f"one of {', '.join(map(str, BASELINE_VERSIONS))}", where=str(file),
                         hint=hint)
    return data


def _paired_verdict(key: CellKey, expected: float, measured: float, old: Hits, new: Hits,
                    tolerance: float, level: float) -> CellCheck:
    """The verdict when both sides have per-pair hits."""
    delta = measured - expected
    if old.keys() != new.keys() or any(len(old[c]) != len(new[c]) for c in old):
        return CellCheck(key, expected, measured, delta, "unpaired")
    order = list(old)
    p = mcnemar_exact([h == "1" for c in order for h in old[c]],
                      [h == "1" for c in order for h in new[c]]).p
    interval = bootstrap_ratio([old[c].count("1") for c in order], [len(old[c]) for c in order],
                               resamples=RESAMPLES, seed=0, level=level)
    high = interval.high if interval else expected
    if delta < -tolerance - _EPS:
        status = "below"
    elif delta < 0 and p < 1.0 - level:
        status = "significant"
    elif measured > high + _EPS:
        status = "rise"
    else:
        status = "ok"
    return CellCheck(key, expected, measured, delta, status, p, high)


def check(
    results_paths: Iterable[str | Path], baseline_file: str | Path, tolerance: float,
    *, level: float = LEVEL,
) -> CheckReport:
    """Compare every baseline cell with the results under ``results_paths``."""
    if tolerance < 0:
        raise BenchError(f"tolerance {tolerance} is negative", hint="pass 0 or more")
    if not 0 < level < 1:
        raise BenchError(f"level {level}", hint="pass a confidence level between 0 and 1")
    baseline = read_baseline(baseline_file)
    found = _cells(results_paths)
    warnings = Warnings()
    checks = []
    for key, expected, old in baseline:
        if key not in found:
            checks.append(CellCheck(key, expected, None, None, "missing"))
            continue
        file, payload = found[key]
        measured = metric(payload, "hr@1", file)
        new = _hits(cell_records(file)) if (file.parent / PREDICTIONS_FILE).exists() else None
        if measured is None:
            checks.append(CellCheck(key, expected, None, None, "null"))
        elif old is None or new is None:
            lacking = "the baseline" if old is None else PREDICTIONS_FILE
            warnings.add("no_pair_hits", f"{lacking} has no per-pair hits: tolerance check only",
                         where="/".join(astuple(key)))
            delta = measured - expected
            checks.append(CellCheck(key, expected, measured, delta,
                                    "ok" if delta >= -tolerance - _EPS else "below"))
        else:
            checks.append(_paired_verdict(key, expected, measured, old, new, tolerance, level))
    return CheckReport(tuple(checks), tolerance, level, warnings)


def write_baseline(results_paths: Iterable[str | Path], path: str | Path) -> int:
    """Write (or refresh) a baseline pinning every cell of a run with its per-pair hits (a
    cell without predictions.jsonl gets none); returns the cell count."""
    found = _cells(results_paths)
    if not found:
        raise BenchError("no results.json found", hint="pass a run directory or results.json")
    cells = []
    for key in sorted(found, key=astuple):
        file, payload = found[key]
        hr1 = metric(payload, "hr@1", file)
        if hr1 is None:
            raise BenchError("HR@1 is null; cannot pin it", where=str(file))
        cell = {**dict(zip(KEY_FIELDS, astuple(key), strict=True)), "hr@1": hr1}
        if (file.parent / PREDICTIONS_FILE).exists():  # else checked by tolerance alone
            cell["hits"] = _hits(cell_records(file))
        cells.append(cell)
    write_json_atomic(Path(path), {"schema_version": BASELINE_VERSIONS[-1], "cells": cells})
    return len(cells)

