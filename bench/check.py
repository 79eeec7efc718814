"""Regression check: measured HR@1 against a committed baseline, within a tolerance.

Baseline file (JSON)::

    {"schema_version": 1,
     "cells": [{"dataset", "domain", "split", "retriever", "model", "hr@1"}, ...]}

Every baseline cell must be present in the results -- a cell that silently stopped running is
a regression too -- and its HR@1 must be at least ``baseline - tolerance``. Result cells that
the baseline does not list are ignored, so a baseline can pin a subset of a run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench.errors import BenchError
from bench.results import CellKey, iter_results, read_versioned, write_json_atomic
from bench.tables import KEY_FIELDS, collect, metric

BASELINE_VERSION = 1
#: Slack for float representation error, so a cell exactly at the threshold never flips.
_EPS = 1e-9
_REASONS = {
    "below": "HR@1 is below baseline - tolerance",
    "missing": "no results.json for this cell (did it stop running?)",
    "null": "HR@1 is null in results.json",
}


@dataclass(frozen=True)
class CellCheck:
    """One baseline cell's verdict; ``measured``/``delta`` are None when there is no number."""

    key: CellKey
    baseline: float
    measured: float | None
    delta: float | None
    status: str  # "ok" | "below" | "missing" (no results.json) | "null" (HR@1 is null)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _verdict(
    key: CellKey, baseline: float, measured: float | None, tolerance: float, present: bool
) -> CellCheck:
    if measured is None:
        return CellCheck(key, baseline, None, None, "null" if present else "missing")
    delta = measured - baseline
    return CellCheck(
        key, baseline, measured, delta, "ok" if delta >= -tolerance - _EPS else "below"
    )


@dataclass(frozen=True)
class CheckReport:
    cells: tuple[CellCheck, ...]
    tolerance: float

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.cells)

    @property
    def failures(self) -> tuple[CellCheck, ...]:
        return tuple(c for c in self.cells if not c.ok)

    def render(self) -> str:
        """A plain text table (tabulate), one line per baseline cell, then a summary line."""
        rows = []
        for c in self.cells:
            measured = "-" if c.measured is None else f"{c.measured:.4f}"
            delta = "-" if c.delta is None else f"{c.delta:+.4f}"
            status = c.status if c.ok else c.status.upper()
            rows.append(("/".join(astuple(c.key)), measured, f"{c.baseline:.4f}", delta, status))
        text = [tabulate(rows, ("cell", "measured", "baseline", "delta", "status"),
                         tablefmt="plain", disable_numparse=True,
                         colalign=("left", "right", "right", "right", "right"))]
        text += [f"{'/'.join(astuple(c.key))}: {_REASONS[c.status]}" for c in self.failures]
        bad = len(self.failures)
        verdict = "ok" if self.ok else f"{bad} of {len(self.cells)} cells failed"
        text.append(f"{verdict} (tolerance {self.tolerance:.4f})")
        return "\n".join(text) + "\n"


def _cells(results_paths: Iterable[str | Path]) -> dict[CellKey, tuple[Path, dict[str, Any]]]:
    found = collect(iter_results(results_paths), KEY_FIELDS)
    return {CellKey(*key): value for key, value in found.items()}


def read_baseline(path: str | Path) -> list[tuple[CellKey, float]]:
    """Parse and validate a baseline file; every problem names the file and cell index."""
    file = Path(path)
    data = read_versioned(file, BASELINE_VERSION, "baseline",
                          hint="recreate it with `bench check RUN --baseline FILE --write`")
    cells = data.get("cells")
    if not isinstance(cells, list):
        raise BenchError("baseline has no 'cells' list", where=str(file))
    parsed: dict[CellKey, float] = {}
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
        parsed[key] = float(hr1)
    return list(parsed.items())


def check(
    results_paths: Iterable[str | Path], baseline_file: str | Path, tolerance: float
) -> CheckReport:
    """Compare every baseline cell with the results under ``results_paths``."""
    if tolerance < 0:
        raise BenchError(f"tolerance {tolerance} is negative", hint="pass 0 or more")
    baseline = read_baseline(baseline_file)
    found = _cells(results_paths)
    checks = []
    for key, expected in baseline:
        measured = metric(found[key][1], "hr@1", found[key][0]) if key in found else None
        checks.append(_verdict(key, expected, measured, tolerance, present=key in found))
    return CheckReport(tuple(checks), tolerance)


def write_baseline(results_paths: Iterable[str | Path], path: str | Path) -> int:
    """Write (or refresh) a baseline pinning every cell of a run; returns the cell count."""
    found = _cells(results_paths)
    if not found:
        raise BenchError("no results.json found", hint="pass a run directory or results.json")
    cells = []
    for key in sorted(found, key=astuple):
        hr1 = metric(found[key][1], "hr@1", found[key][0])
        if hr1 is None:
            raise BenchError("HR@1 is null; cannot pin it", where=str(found[key][0]))
        cells.append({**dict(zip(KEY_FIELDS, astuple(key), strict=True)), "hr@1": hr1})
    write_json_atomic(Path(path), {"schema_version": BASELINE_VERSION, "cells": cells})
    return len(cells)
