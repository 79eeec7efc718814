"""bench compare: paired McNemar + bootstrap difference, Holm, refused unpaired cells."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.core.errors import BenchError
from bench.results.compare import compare
from bench.task.stats import holm
from tests.hits import write_hits


@pytest.fixture
def run(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    write_hits(out, "strong", [True] * 30 + [False] * 10)
    write_hits(out, "weak", [False] * 25 + [True] * 5 + [False] * 5 + [True] * 5)
    write_hits(out, "twin", [True] * 29 + [False] * 11)  # one hit fewer than strong
    write_hits(out, "other", [True] * 40, retriever="bm25", shift=3)  # other candidates
    return out


def test_planted_difference_is_significant_and_noise_is_not(run: Path) -> None:
    report = compare([run], resamples=500)
    by = {(c.a.model, c.b.model): c for c in report.comparisons}
    assert set(by) == {("strong", "twin"), ("strong", "weak"), ("twin", "weak")}
    strong_weak = by[("strong", "weak")]
    # strong hits 30 pairs alone of which weak shares 5; weak hits 5 that strong misses.
    assert (strong_weak.mcnemar.a_only, strong_weak.mcnemar.b_only) == (25, 5)
    assert strong_weak.diff.estimate == pytest.approx(0.5)
    assert 0 < strong_weak.diff.low < 0.5 < strong_weak.diff.high
    assert strong_weak.p_holm < 0.05
    twin = by[("strong", "twin")]
    assert (twin.mcnemar.a_only, twin.mcnemar.b_only, twin.mcnemar.p) == (1, 0, 1.0)
    assert twin.p_holm == 1.0 and twin.diff.low <= 0 <= twin.diff.high
    assert [c.p_holm for c in report.comparisons] == pytest.approx(
        holm([c.mcnemar.p for c in report.comparisons]))


def test_unpaired_cells_are_refused_with_the_reason(run: Path, tmp_path: Path) -> None:
    report = compare([run], resamples=100)
    assert len(report.refused) == 3  # "other" against each sbert cell
    assert all("different candidate sets (retrievers bm25 and sbert)" in r.reason
               for r in report.refused)
    text = report.render("markdown")
    assert "not compared: bm25/other vs sbert/strong: different candidate sets" in text
    write_hits(tmp_path / "short", "strong", [True] * 20)
    write_hits(tmp_path / "long", "weak", [False] * 40)
    other = compare([tmp_path / "short", tmp_path / "long"], resamples=100)
    assert other.comparisons == ()
    assert other.refused[0].reason.startswith("different conversations (20 vs 40, 20 shared")


def test_formats(run: Path) -> None:
    report = compare([run], resamples=100)
    md = report.render("markdown")
    assert "| A " in md and "p (Holm)" in md and "Holm-adjusted over 3 comparisons" in md
    strong_weak = next(line for line in md.splitlines() if "sbert/strong" in line
                       and "sbert/weak" in line)
    assert "+0.5000" in strong_weak and strong_weak.rstrip(" |").endswith("*")
    latex = report.render("latex")
    assert r"\begin{table}" in latex and r"\caption{Delta" in latex and "95\\%" in latex
    csv_lines = report.render("csv").splitlines()
    assert csv_lines[0].startswith("a,b,hr@1_a,hr@1_b,diff,diff_low,diff_high")
    assert len(csv_lines) == 4
    payload = json.loads(report.render("json"))
    assert payload["comparisons"][0]["a"]["model"] in {"strong", "twin"}
    assert {r["reason"][:24] for r in payload["refused"]} == {"different candidate sets"}


def test_cli_compare_and_its_errors(run: Path, tmp_path: Path) -> None:
    cli = CliRunner()
    done = cli.invoke(app, ["compare", str(run), "--format", "json", "--resamples", "50"])
    assert done.exit_code == 0, done.output
    assert len(json.loads(done.stdout)["comparisons"]) == 3
    write_hits(tmp_path / "one", "strong", [True])
    for args, message in ((["compare", str(tmp_path / "one")], "1 cell(s)"),
                          (["compare", str(run), "--level", "1.5"], "level 1.5"),
                          (["compare", str(run), "--format", "html"], "unknown format")):
        failed = cli.invoke(app, args)
        assert failed.exit_code == 2 and message in failed.stderr
        assert failed.stderr.count("\n") == 1 and failed.stderr.startswith("error: ")
    with pytest.raises(BenchError, match="resamples 0"):
        compare([run], resamples=0)
