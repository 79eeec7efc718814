"""Baseline regression check: tolerance, missing cells, baseline round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.core.errors import BenchError
from bench.execution.store import RESULTS_FILE, CellKey, write_json_atomic
from bench.results.check import check, read_baseline, write_baseline
from tests.conftest import results_payload


def write_cell(out: Path, retriever: str, model: str, domain: str, hr1: float | None) -> Path:
    """A schema-v1 results.json; check reads only the key fields and metrics."""
    key = CellKey("reddit-amazon", domain, "test", retriever, model)
    p = results_payload(retriever, model, domain, hr1)
    path = key.directory(out) / RESULTS_FILE
    write_json_atomic(path, p)
    return path


def cell(model: str, domain: str, hr1: float) -> dict[str, Any]:
    return {
        "dataset": "reddit-amazon",
        "domain": domain,
        "split": "test",
        "retriever": "sbert",
        "model": model,
        "hr@1": hr1,
    }


def baseline(path: Path, cells: list[dict[str, Any]]) -> Path:
    write_json_atomic(path, {"schema_version": 1, "cells": cells})
    return path


@pytest.fixture
def run(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    write_cell(out, "sbert", "lavic", "all_beauty", 0.12)
    write_cell(out, "sbert", "lavic", "amazon_home", 0.30)
    write_cell(out, "sbert", "none", "all_beauty", 0.05)
    return out


def test_passes_within_tolerance(run: Path, tmp_path: Path) -> None:
    # 0.125 - 0.12 = 0.005 below: exactly at the tolerance still passes.
    base = baseline(tmp_path / "b.json", [cell("lavic", "all_beauty", 0.125)])
    report = check([run], base, tolerance=0.005)
    assert report.ok and report.failures == ()
    (only,) = report.cells
    assert (only.measured, only.baseline, only.status) == (0.12, 0.125, "ok")
    assert only.delta == pytest.approx(-0.005)
    assert report.render().splitlines()[-1] == "ok (tolerance 0.0050)"


def test_fails_below_tolerance(run: Path, tmp_path: Path) -> None:
    base = baseline(
        tmp_path / "b.json", [cell("lavic", "all_beauty", 0.13), cell("lavic", "amazon_home", 0.3)]
    )
    report = check([run], base, tolerance=0.005)
    assert not report.ok
    assert [c.status for c in report.cells] == ["below", "ok"]
    assert [c.key.domain for c in report.failures] == ["all_beauty"]
    text = report.render()
    assert "reddit-amazon/all_beauty/test/sbert/lavic" in text
    assert "-0.0100" in text and "BELOW" in text
    assert text.splitlines()[-1] == "1 of 2 cells failed (tolerance 0.0050)"
    assert check([run], base, tolerance=0.011).ok


def test_missing_cell_fails(run: Path, tmp_path: Path) -> None:
    base = baseline(tmp_path / "b.json", [cell("gpt-4o", "all_beauty", 0.1)])
    report = check([run], base, tolerance=1.0)
    assert not report.ok
    (missing,) = report.cells
    assert (missing.status, missing.measured, missing.delta) == ("missing", None, None)
    text = report.render()
    assert "MISSING" in text
    assert "reddit-amazon/all_beauty/test/sbert/gpt-4o: no results.json for this cell" in text


def test_null_hr1_fails(tmp_path: Path) -> None:
    write_cell(tmp_path / "run", "sbert", "lavic", "all_beauty", None)
    base = baseline(tmp_path / "b.json", [cell("lavic", "all_beauty", 0.1)])
    report = check([tmp_path / "run"], base, tolerance=0.0)
    assert [c.status for c in report.cells] == ["null"]
    assert not report.ok


def test_write_baseline_round_trip(run: Path, tmp_path: Path) -> None:
    path = tmp_path / "baselines" / "b.json"
    assert write_baseline([run], path) == 3
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema_version"] == 2
    assert data["cells"][0] == cell("lavic", "all_beauty", 0.12)  # no predictions: no hits
    assert [(c["model"], c["domain"]) for c in data["cells"]] == [
        ("lavic", "all_beauty"),
        ("none", "all_beauty"),
        ("lavic", "amazon_home"),
    ]
    assert check([run], path, tolerance=0.0).ok
    # Refreshing overwrites in place.
    write_cell(run, "sbert", "lavic", "all_beauty", 0.2)
    write_baseline([run], path)
    key = CellKey("reddit-amazon", "all_beauty", "test", "sbert", "lavic")
    assert {k: hr1 for k, hr1, _ in read_baseline(path)}[key] == 0.2


def test_write_baseline_refuses_null_and_empty(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"no results\.json"):
        write_baseline([tmp_path], tmp_path / "b.json")
    path = write_cell(tmp_path, "sbert", "lavic", "all_beauty", None)
    with pytest.raises(BenchError, match="null") as err:
        write_baseline([tmp_path], tmp_path / "b.json")
    assert err.value.where == str(path)


def test_bad_baselines(run: Path, tmp_path: Path) -> None:
    bad = tmp_path / "b.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(BenchError, match="unreadable baseline"):
        check([run], bad, 0.0)
    write_json_atomic(bad, {"schema_version": 3, "cells": []})
    with pytest.raises(BenchError, match="schema_version 3"):
        check([run], bad, 0.0)
    write_json_atomic(bad, {"schema_version": 1, "cells": [{"model": "lavic", "hr@1": 0.1}]})
    with pytest.raises(BenchError, match="lacks dataset, domain, split, retriever") as err:
        check([run], bad, 0.0)
    assert err.value.where == f"{bad}: cells[0]"
    baseline(bad, [cell("lavic", "all_beauty", 0.1), cell("lavic", "all_beauty", 0.2)])
    with pytest.raises(BenchError, match="listed twice"):
        check([run], bad, 0.0)
    baseline(bad, [{**cell("lavic", "all_beauty", 0.1), "hr@1": "0.1"}])
    with pytest.raises(BenchError, match="must be a number"):
        check([run], bad, 0.0)
    with pytest.raises(BenchError, match="negative"):
        check([run], bad, -0.1)


def test_duplicate_results_are_an_error(run: Path, tmp_path: Path) -> None:
    other = write_cell(tmp_path / "run2", "sbert", "lavic", "all_beauty", 0.5)
    base = baseline(tmp_path / "b.json", [cell("lavic", "all_beauty", 0.1)])
    with pytest.raises(BenchError, match="two results") as err:
        check([run, tmp_path / "run2"], base, 0.0)
    assert str(other) in err.value.one_line()
