"""Runner behaviour: resume after a kill, batch-size independence, caching, budgets, shards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bench.core import registry
from bench.core.config import RunSpec
from bench.core.errors import BenchError
from bench.execution.runner import Grid

PLUGIN = Path(__file__).parent / "plugins" / "toy.py"
VOLATILE = {"timings", "created"}


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    registry.load_plugins()
    registry.include(PLUGIN)


def spec(release: Path, out: Path, **kw: object) -> RunSpec:
    base = RunSpec(
        dataset="reddit-amazon", domains=("all_beauty",), split="test",
        retrievers=("toy-overlap",), models=("toy-slow",), out=str(out), batch_size=2,
        dataset_tables={"reddit-amazon": {"data_dir": str(release)}},
    )
    return replace(base, **kw)


def stable(payload: dict) -> dict:
    return {k: v for k, v in payload.items() if k not in VOLATILE}


def cell(out: Path, retriever: str = "toy-overlap", model: str = "toy-slow") -> Path:
    return out / "reddit-amazon" / "all_beauty" / "test" / retriever / model


def test_grid_writes_results_and_predictions(release: Path, tmp_path: Path) -> None:
    [payload] = Grid(spec(release, tmp_path / "o"), progress=False, echo=lambda _: None).run()
    assert payload["n_conversations"] == 12 and payload["n_pairs"] == 13
    assert payload["metrics"]["valid_ratio"] == 1.0
    assert payload["usage"]["cost_usd"] == pytest.approx(0.012)
    # A text-only generator never sees images: the fixture's missing one is no problem here.
    assert payload["warnings"] == {} and payload["flags"] == []
    lines = (cell(tmp_path / "o") / "predictions.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert set(first) == {"id", "candidates", "presented", "prediction", "gt_items", "raw",
                          "failure", "usage"}
    assert sorted(first["presented"]) == sorted(first["candidates"])


def test_candidate_order_does_not_depend_on_batch_size(release: Path, tmp_path: Path) -> None:
    a = Grid(spec(release, tmp_path / "a", batch_size=1), progress=False).run()[0]
    b = Grid(spec(release, tmp_path / "b", batch_size=5), progress=False).run()[0]
    assert stable(a)["metrics"] == stable(b)["metrics"]
    pa = (cell(tmp_path / "a") / "predictions.jsonl").read_text()
    assert pa == (cell(tmp_path / "b") / "predictions.jsonl").read_text()
    kept = Grid(spec(release, tmp_path / "c", keep_order=True), progress=False).run()[0]
    assert kept["config_hash"] != a["config_hash"]


def test_killed_run_resumes_to_identical_results(release: Path, tmp_path: Path) -> None:
    args = [sys.executable, "-m", "bench.cli", "run", "--dataset", "reddit-amazon",
            "--data-dir", str(release), "--domain", "all_beauty", "--split", "test",
            "--retriever", "toy-overlap", "--model", "toy-slow", "--batch-size", "1",
            "--include", str(PLUGIN), "--no-progress"]
    env = {**os.environ, "TOY_DELAY": "0.15"}
    out = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--out", str(out)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    log = cell(out) / "predictions.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not log.exists() or
                                           len(log.read_text().splitlines()) < 4):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(log.read_text().splitlines())
    assert 4 <= partial < 12
    assert not (cell(out) / "results.json").exists()
    env["TOY_DELAY"] = "0"
    subprocess.run([*args, "--out", str(out)], env=env, check=True, capture_output=True)
    subprocess.run([*args, "--out", str(tmp_path / "whole")], env=env, check=True,
                   capture_output=True)
    resumed = json.loads((cell(out) / "results.json").read_text())
    whole = json.loads((cell(tmp_path / "whole") / "results.json").read_text())
    assert stable(resumed) == stable(whole)
    assert log.read_text() == (cell(tmp_path / "whole") / "predictions.jsonl").read_text()


def test_torn_last_line_is_dropped_on_resume(release: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    whole = Grid(spec(release, out), progress=False).run()[0]
    log = cell(out) / "predictions.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:5]) + lines[5][:20])  # killed mid-write
    (cell(out) / "results.json").unlink()
    again = Grid(spec(release, out), progress=False).run()[0]
    assert stable(again) == stable(whole)


def test_a_foreign_cell_is_refused_unless_overwritten(release: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    Grid(spec(release, out), progress=False).run()
    with pytest.raises(BenchError, match="different configuration"):
        Grid(spec(release, out, seed=7), progress=False).run()
    [p] = Grid(spec(release, out, seed=7), progress=False, overwrite=True).run()
    assert p["seed"] == 7


def test_second_run_is_served_from_the_response_cache(release: Path, tmp_path: Path) -> None:
    counter = next(m for m in list(sys.modules.values())
                   if getattr(m, "__file__", None) == str(PLUGIN))
    counter.CountingCached.calls = 0
    first = Grid(spec(release, tmp_path / "a", models=("toy-cached",)), progress=False).run()[0]
    assert counter.CountingCached.calls == 12
    second = Grid(spec(release, tmp_path / "b", models=("toy-cached",)), progress=False).run()[0]
    assert counter.CountingCached.calls == 12  # no model call
    assert second["metrics"] == first["metrics"]
    assert first["usage"]["cost_usd"] == pytest.approx(6.0)
    assert second["usage"]["cost_usd"] == 0 and second["usage"]["cached"] == 12


def test_max_cost_stops_cleanly_and_keeps_work(release: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    grid = Grid(spec(release, out, models=("toy-cached",)), progress=False, max_cost=1.2)
    with pytest.raises(BenchError, match="max-cost"):
        grid.run()
    kept = (cell(out, model="toy-cached") / "predictions.jsonl").read_text().splitlines()
    assert len(kept) == 4  # two batches of 2 at $0.5 each, then the budget is spent
    [done] = Grid(spec(release, out, models=("toy-cached",)), progress=False).run()
    assert done["n_conversations"] == 12


def test_dry_run_estimates_and_writes_nothing(release: Path, tmp_path: Path) -> None:
    grid = Grid(spec(release, tmp_path / "o", models=("toy-cached", "none")), progress=False,
                dry_run=True)
    assert grid.run() == []
    [est, none] = grid.estimates
    assert est["cost_usd"] == pytest.approx(0.12) and "cost_usd" not in none
    assert not (tmp_path / "o").exists()
