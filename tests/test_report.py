"""`bench report`: the page's numbers are the run's numbers, its Recall@k curves come from the
retrievers' longer rankings, and a real headless Chromium renders it offline with its plots."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bench.cli import app
from bench.execution import ranking
from bench.execution.store import iter_results, read_predictions
from bench.results import report
from bench.task.metrics import RecallAtK
from tests import requires
from tests.test_cli import PLUGIN

#: Never let playwright fetch a browser or the page reach the network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
GRID = """\
[run]
dataset = "synthetic"
split = "test"
retrievers = ["bm25", "toy-overlap"]
models = ["none", "lexical", "toy-slow"]
limit = 30
[datasets.synthetic]
size = "small"
"""


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=300)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small grid on the synthetic data in two candidate orders (--permutations 2): two
    ordered retrievers (bm25 and the toy plug-in), the retriever alone, a text generator and
    toy-slow, which always answers slot 1."""
    root = tmp_path_factory.mktemp("report")
    (root / "bench.toml").write_text(GRID, encoding="utf-8")
    proc = bench("run", "--config", str(root / "bench.toml"), "--include", str(PLUGIN),
                 "--out", str(root / "run"), "--no-progress", "--permutations", "2",
                 env={"BENCH_CACHE_DIR": str(root / "cache")})
    assert proc.returncode == 0, proc.stderr
    return root / "run"


@pytest.fixture(scope="module")
def page_file(run_dir: Path) -> Path:
    return report.write([run_dir], run_dir.parent / "out" / "report.html")


def _cells(run_dir: Path) -> list[dict[str, Any]]:
    return [payload for _, payload in iter_results([run_dir])]


def test_runner_keeps_a_50_deep_ranking_that_starts_with_each_cells_candidates(
    run_dir: Path,
) -> None:
    for payload in _cells(run_dir):
        cell = run_dir / "synthetic" / payload["domain"] / "test" / payload["retriever"]
        records, _ = read_predictions(cell / payload["model"] / "predictions.jsonl")
        kept = ranking.read(cell, {r["id"]: r["candidates"] for r in records})
        assert kept is not None and len(kept) == payload["n_conversations"] == 30
        assert {len(r) for r in kept.values()} == {ranking.DEPTH}


def test_recall_curve_agrees_with_recall_at_k_and_counts_repeated_ground_truths() -> None:
    records = [{"candidates": ["a", "b", "c"], "gt_items": ["b", "b"], "prediction": None},
               {"candidates": ["d", "e", "f"], "gt_items": ["f", "z"], "prediction": None}]
    curve = ranking.recall_curve([r["candidates"] for r in records],
                                 [r["gt_items"] for r in records], depth=4)
    assert curve.tolist() == [0.0, 0.5, 0.75, 0.75]
    for k in (1, 2, 3):
        assert curve[k - 1] == RecallAtK(k).compute(records)


def test_a_ranking_from_another_run_is_not_used(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    stale = sorted(copy.glob(f"synthetic/*/test/*/{ranking.RANKING_FILE}"))[0]
    lines = stale.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["ranking"].reverse()
    stale.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n", encoding="utf-8")
    data = report.collect([copy])
    where, retriever = stale.parts[-4], stale.parts[-2]
    assert len(data.curves[where][retriever]) == 10  # back to the cell's own top-10
    assert any(f"{where} {retriever}: no ranking.jsonl" in note for note in data.notes)
    assert len(data.curves[where]["bm25" if retriever != "bm25" else "toy-overlap"]) == 50


def test_pick_rates_show_a_generator_that_always_takes_slot_one(run_dir: Path) -> None:
    picks = report.collect([run_dir]).picks
    toy = picks[picks["label"].str.endswith("/ toy-slow")]
    assert set(toy.loc[toy["position"] == 1, "rate"]) == {1.0}
    assert set(toy.loc[toy["position"] > 1, "rate"]) == {0.0}
    lexical = picks[picks["label"].str.endswith("/ lexical")]
    assert np.allclose(lexical.groupby("label")["rate"].sum(), 1.0)  # every answer is valid


def _report_error(*args: str) -> str:
    """The one error line of an in-process `bench report` (exit 2, no traceback)."""
    result = CliRunner().invoke(app, ["report", *args])
    assert result.exit_code == 2 and "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.splitlines()
    return line


def test_pick_rates_without_permutations_come_from_the_runs_one_order(
    run_dir: Path, tmp_path: Path,
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("permutations.json"))
    picks = report.collect([copy]).picks
    assert set(picks["orders"]) == {1}
    toy = picks[picks["label"] == "all_beauty: bm25 / toy-slow"]
    assert toy["rate"].tolist() == [1.0] + [0.0] * 9


def test_user_mistakes_are_one_line_errors(run_dir: Path, tmp_path: Path) -> None:
    assert "does not exist" in _report_error(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    assert "no results.json" in _report_error(str(tmp_path / "empty"))
    assert f"{tmp_path}: --out is a folder" in _report_error(str(run_dir), "--out",
                                                             str(tmp_path))
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out",
                                      str(tmp_path / "deep" / "r.html")])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "deep" / "r.html").read_text(encoding="utf-8").startswith("<!DOCTYPE")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by playwright; playwright never downloads a browser here."""
    chromium = requires.program("/usr/bin/chromium", "apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        requires.missing('needs playwright: pip install -e ".[test]"')
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page(browser: Any, page_file: Path) -> Iterator[tuple[Any, list[str], list[str]]]:
    """The page opened from disk, with every console error and every request it made."""
    tab = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.on("request", lambda r: requests.append(r.url))
    tab.goto(page_file.as_uri(), wait_until="load")
    yield tab, errors, requests
    tab.close()


def test_page_loads_offline_without_console_errors(page: Any, page_file: Path) -> None:
    tab, errors, requests = page
    assert errors == []
    assert requests == [page_file.as_uri()]  # nothing fetched: no script, font, image, CSS
    assert tab.title() == "lavic-bench report"


def _coloured(pixels: np.ndarray) -> np.ndarray:
    """Pixels in a saturated colour: plotted data, not black axes, grey guides or white."""
    return (pixels.max(axis=2) - pixels.min(axis=2)) > 60


def _plot_areas(svg: Any) -> dict[str, np.ndarray]:
    """Each axes' data area of a rendered figure, by the text it shows (title, tick labels), as
    RGB pixels with its legend painted white: what lies between the axes, never a legend."""
    shot = np.asarray(Image.open(io.BytesIO(svg.screenshot())).convert("RGB")).astype(int)
    origin = svg.bounding_box()

    def pixels(box: dict[str, float]) -> tuple[slice, slice]:
        x, y = box["x"] - origin["x"], box["y"] - origin["y"]
        return (slice(round(y), round(y + box["height"]) + 1),
                slice(round(x), round(x + box["width"]) + 1))

    areas = {}
    for ax in svg.locator('g[id^="axes_"]').all():
        for legend in ax.locator('g[id^="legend_"]').all():
            shot[pixels(legend.bounding_box())] = 255
        rows, cols = pixels(ax.locator(":scope > g").first.bounding_box())  # the background
        areas[ax.text_content()] = shot[rows.start + 2:rows.stop, cols.start + 2:cols.stop - 2]
    return areas


def _bar_heights(area: np.ndarray) -> list[int]:
    """Heights in pixels of the coloured bars in ``area``, left to right: a bar is a run of
    columns holding ink (its colour, its black error bar) above the x axis."""
    coloured = _coloured(area)
    ink = (coloured | (area.max(axis=2) < 100))[:-4].any(axis=0)
    heights, run = [], []
    for x, on in enumerate([*ink, False]):
        if on:
            run.append(x)
        elif run:
            heights.append(int(coloured[:, run].sum(axis=0).max()))
            run = []
    return [h for h in heights if h]  # an interval drawn around an HR@1 of 0 is no bar


@pytest.mark.parametrize("plot", ["recall", "picks"])
def test_each_line_plot_draws_its_lines_across_its_axes(page: Any, run_dir: Path,
                                                        plot: str) -> None:
    tab, _, _ = page
    svg = tab.locator(f"#plot-{plot} svg")
    box = svg.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 150
    areas = _plot_areas(svg)
    assert len(areas) == (3 if plot == "recall" else 1)  # a panel per domain; one for picks
    for area in areas.values():
        coloured = _coloured(area)
        assert coloured.mean() > 0.005
        tenth = coloured.shape[1] // 10  # the lines run from the first k (position) to the last
        assert coloured[:, :tenth].any() and coloured[:, -tenth:].any()


def test_hr1_bars_are_as_tall_as_results_json_says(page: Any, run_dir: Path) -> None:
    tab, _, _ = page
    values: dict[str, list[float]] = {}
    for payload in _cells(run_dir):
        values.setdefault(payload["domain"], []).append(payload["metrics"]["hr@1"])
    areas = _plot_areas(tab.locator("#plot-hr1 svg"))
    heights = {domain: sorted(_bar_heights(area)) for text, area in areas.items()
               for domain in values if domain in text}
    assert len(areas) == len(heights) == 3
    # the panels share their y axis: one scale, from the tallest bar
    scale = max(map(max, heights.values())) / max(map(max, values.values()))
    for domain, drawn in heights.items():
        expected = sorted(v * scale for v in values[domain] if v > 0)
        assert len(drawn) == len(expected), domain
        assert np.allclose(drawn, expected, atol=2), (domain, drawn, expected)


def _text(tab: Any, table: str, key: str, metric: str) -> str:
    cell = tab.locator(f'#{table} tr[data-key="{key}"] td[data-metric="{metric}"]')
    assert cell.count() == 1, (table, key, metric)
    return cell.inner_text()


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def test_numbers_on_the_page_are_those_of_results_json(page: Any, run_dir: Path) -> None:
    tab, _, _ = page
    cells = _cells(run_dir)
    assert tab.locator("#metrics-table tr[data-key]").count() == len(cells) == 18
    for payload in cells:
        key = f"{payload['domain']}|{payload['retriever']}|{payload['model']}"
        metrics = payload["metrics"]
        assert _text(tab, "metrics-table", key, "hr@1") == _fmt(metrics["hr@1"])
        assert _text(tab, "metrics-table", key, "valid_ratio") == _fmt(metrics["valid_ratio"])
        for name in ("hr@1", "valid_ratio"):
            interval = payload["intervals"][name]
            shown = "-" if interval is None else f"[{_fmt(interval[0])}, {_fmt(interval[1])}]"
            assert _text(tab, "metrics-table", key, f"{name}_interval") == shown
        assert _text(tab, "metrics-table", key, "oracle") == f"{_fmt(metrics['oracle'])} (k=10)"
        assert _text(tab, "metrics-table", key, "hr@1_ceiling") == _fmt(metrics["hr@1_ceiling"])
        assert _text(tab, "metrics-table", key, "n_pairs") == str(payload["n_pairs"])
        if payload["model"] != "none":
            failed = sum(payload["failures"].values())
            assert _text(tab, "failures-table", key, "failed") == str(failed)
            cost = payload["usage"].get("cost_usd")
            assert _text(tab, "usage-table", key, "cost_usd") == _fmt(cost)
    assert sum(p["intervals"]["hr@1"] is not None for p in cells) == 18  # all ordered: all drawn
    toy = next(p for p in cells if p["model"] == "toy-slow")
    assert toy["usage"]["cost_usd"] == pytest.approx(0.03)  # 30 answers at $0.001: shown


def test_page_pick_rates_are_those_of_permutations_json(page: Any, run_dir: Path) -> None:
    tab, _, _ = page
    generators = [(f, p) for f, p in iter_results([run_dir]) if p["model"] != "none"]
    assert tab.locator("#picks-table tr[data-key]").count() == len(generators) == 12
    for file, payload in generators:
        summary = json.loads((file.parent / "permutations.json").read_text(encoding="utf-8"))
        key = f"{payload['domain']}: {payload['retriever']} / {payload['model']}"
        assert _text(tab, "picks-table", key, "orders") == "2"
        assert _text(tab, "picks-table", key, "hr@1_mean") == _fmt(summary["hr@1_mean"])
        for position, rate in enumerate(summary["pick_rate"], 1):
            assert _text(tab, "picks-table", key, f"position.{position}") == f"{rate:.3f}"


def test_page_shows_the_papers_number_beside_the_measured_one(page: Any) -> None:
    tab, _, _ = page
    # Table 3 of the paper: BM25 alone on Beauty, HR@1 0.0169.
    assert _text(tab, "metrics-table", "all_beauty|bm25|none", "paper_hr@1") == "0.0169"
    assert _text(tab, "metrics-table", "all_beauty|toy-overlap|none", "paper_hr@1") == "-"
