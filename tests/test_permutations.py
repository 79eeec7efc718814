"""bench run --permutations: seeded orders, position pick rates, the response-cache rules."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.core import registry
from bench.core.config import RunSpec
from bench.core.errors import BenchError
from bench.execution import permutations
from bench.execution.runner import Grid
from bench.execution.store import PREDICTIONS_FILE, iter_results
from bench.results import positions

PLUGIN = Path(__file__).parent / "plugins" / "toy.py"
CONTENT = Path(__file__).parent / "plugins" / "content.py"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    registry.load_plugins()
    registry.include(PLUGIN)
    registry.include(CONTENT)


def grid(release: Path, out: Path, *models: str) -> Grid:
    spec = RunSpec(dataset="reddit-amazon", domains=("all_beauty",), split="test",
                   retrievers=("toy-overlap",), models=models, out=str(out),
                   dataset_tables={"reddit-amazon": {"data_dir": str(release)}})
    return Grid(spec, progress=False, echo=lambda _: None, resamples=50)


def test_a_planted_first_slot_bias_shows_in_the_pick_rates(release: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    g = grid(release, out, "toy-slow", "toy-content", "none")
    payloads = g.run()
    permutations.run_orders(g, 3)
    found = {s["model"]: s for s in permutations.write_summaries(out, 3, payloads)}
    assert set(found) == {"toy-slow", "toy-content"}  # the retriever alone shows no order
    slow, blind = found["toy-slow"], found["toy-content"]
    assert slow["orders"] == 3 and len(slow["hr@1"]) == 3 and slow["positions"] == 10
    assert slow["pick_rate"][0] == 1.0 and sum(slow["pick_rate"][1:]) == 0  # always slot 1
    assert slow["uniform"] == pytest.approx(0.1)
    assert max(blind["pick_rate"]) < 0.4  # its answer is wherever the shuffle put it
    assert len(set(blind["hr@1"])) == 1 and blind["hr@1_std"] == pytest.approx(0.0)
    cell = Path("reddit-amazon", "all_beauty", "test", "toy-overlap", "toy-slow", PREDICTIONS_FILE)
    first = json.loads((out / cell).read_text().splitlines()[0])
    moved = json.loads((out / "_permutations" / "order-1" / cell).read_text().splitlines()[0])
    assert moved["id"] == first["id"] and moved["presented"] != first["presented"]
    assert sorted(moved["presented"]) == sorted(first["presented"])
    assert len(list(iter_results([out]))) == 3  # tables of OUT never see the other orders
    frame = positions.load(out)
    assert len(frame) == 2 * 10 and frame["position"].max() == 10
    assert frame.set_index(["model", "position"]).loc[("toy-slow", 1), "pick_rate"] == 1.0


def test_orders_are_new_requests_and_a_rerun_is_cached(release: Path, tmp_path: Path) -> None:
    counter = next(m for m in list(sys.modules.values())
                   if getattr(m, "__file__", None) == str(PLUGIN))
    counter.CountingCached.calls = 0
    g = grid(release, tmp_path / "a", "toy-cached")
    g.run()
    permutations.run_orders(g, 2)
    assert counter.CountingCached.calls == 24  # 12 conversations x 2 orders
    again = grid(release, tmp_path / "b", "toy-cached")
    again.run()
    permutations.run_orders(again, 2)
    assert counter.CountingCached.calls == 24  # the same prompts: served from the cache


def test_cli_permutations_and_errors(release: Path, tmp_path: Path) -> None:
    common = ["run", "--dataset", "reddit-amazon", "--data-dir", str(release), "--domain",
              "all_beauty", "--retriever", "toy-overlap", "--model", "toy-slow", "--include",
              str(PLUGIN), "--no-progress", "--resamples", "20"]
    cli = CliRunner()
    done = cli.invoke(app, [*common, "--out", str(tmp_path / "o"), "--permutations", "2"])
    assert done.exit_code == 0, done.output
    line = next(x for x in done.stdout.splitlines() if "toy-slow" in x and "| 2 " in x)
    cells = [c.strip() for c in line.strip("| ").split("|")]
    assert cells[3] == "2" and cells[6:9] == ["0.100", "1.000", "0.000"]  # uniform, pos 1, 2
    for extra, message in ((["--permutations", "0"], "--permutations 0"),
                           (["--permutations", "2", "--keep-order"], "--keep-order forbids")):
        failed = cli.invoke(app, [*common, "--out", str(tmp_path / "x"), *extra])
        assert failed.exit_code == 2 and message in failed.stderr, failed.output
        assert failed.stderr.startswith("error: ") and failed.stderr.count("\n") == 1
    with pytest.raises(BenchError, match="--permutations 0"):
        permutations.run_orders(replace(grid(release, tmp_path / "y", "toy-slow")), 0)
