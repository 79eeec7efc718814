"""bench check against per-pair hits: a significant drop, a leak-like rise, noise, fallbacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.core.errors import BenchError
from bench.results.check import check, read_baseline, write_baseline
from tests.hits import write_hits

BASE = [True] * 30 + [False] * 10  # HR@1 0.75 on 40 conversations


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    write_hits(tmp_path / "base", "m", BASE)
    file = tmp_path / "baseline.json"
    assert write_baseline([tmp_path / "base"], file) == 1
    return file


def measured(tmp_path: Path, hits: list[bool]) -> Path:
    write_hits(tmp_path / "new", "m", hits)
    return tmp_path / "new"


def test_baseline_stores_per_pair_hits(baseline: Path) -> None:
    [(key, hr1, hits)] = read_baseline(baseline)
    assert (key.model, hr1) == ("m", 0.75)
    assert hits is not None and len(hits) == 40 and hits["all_beauty:test:0"] == "1"
    assert json.loads(baseline.read_text())["schema_version"] == 2


def test_a_significant_drop_fails_inside_the_tolerance(baseline: Path, tmp_path: Path) -> None:
    # Six pairs lost, none gained: exact McNemar p = 2 / 2**6 = 0.03125.
    report = check([measured(tmp_path, [False] * 6 + BASE[6:])], baseline, tolerance=0.2)
    [cell] = report.cells
    assert cell.status == "significant" and cell.p == pytest.approx(0.03125)
    text = report.render()
    assert "reddit-amazon/all_beauty/test/sbert/m: HR@1 dropped significantly" in text
    assert "0.7500 -> 0.6000 (-0.1500), McNemar p = 0.03125" in text
    assert check([tmp_path / "new"], baseline, tolerance=0.2, level=0.99).ok  # p > 0.01


def test_noise_passes_and_a_large_drop_fails(baseline: Path, tmp_path: Path) -> None:
    noisy = [False, False, *BASE[2:30], True, *BASE[31:]]  # two lost, one gained
    report = check([measured(tmp_path, noisy)], baseline, tolerance=0.05)
    assert report.ok and report.cells[0].p == 1.0
    assert not check([tmp_path / "new"], baseline, tolerance=0.0).ok  # beyond the minimum


def test_a_leak_like_rise_fails(baseline: Path, tmp_path: Path) -> None:
    report = check([measured(tmp_path, [True] * 40)], baseline, tolerance=0.0)
    [cell] = report.cells
    assert cell.status == "rise" and cell.high is not None and 0.75 < cell.high < 1.0
    assert "rose above the baseline's interval" in report.render()
    small = [*BASE[:30], True, *BASE[31:]]  # one more hit: inside the interval
    assert check([measured(tmp_path, small)], baseline, tolerance=0.0).ok


def test_other_conversations_are_unpaired(baseline: Path, tmp_path: Path) -> None:
    write_hits(tmp_path / "new", "m", BASE, first=100)
    assert check([tmp_path / "new"], baseline, tolerance=1.0).cells[0].status == "unpaired"


def test_old_baseline_is_a_counted_tolerance_fallback(tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"schema_version": 1, "cells": [
        {"dataset": "reddit-amazon", "domain": "all_beauty", "split": "test",
         "retriever": "sbert", "model": "m", "hr@1": 0.75}]}))
    report = check([measured(tmp_path, [False] * 6 + BASE[6:])], old, tolerance=0.2)
    assert report.ok and report.warnings is not None
    assert report.warnings.as_dict() == {"no_pair_hits": 1}
    assert "warning [no_pair_hits] x1" in report.render()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema_version": 2, "cells": [
        {**json.loads(old.read_text())["cells"][0], "hits": {"c": "2"}}]}))
    with pytest.raises(BenchError, match="strings of 0 and 1"):
        read_baseline(bad)
