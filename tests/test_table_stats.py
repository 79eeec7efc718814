"""bench table --ci (intervals) and --sig BASELINE (daggers against a baseline row)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.core.errors import BenchError
from bench.execution.store import iter_results
from bench.results.compare import significant
from tests.hits import write_hits


@pytest.fixture
def run(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    write_hits(out, "gpt-4o", [True] * 30 + [False] * 10)
    write_hits(out, "vicuna", [False] * 25 + [True] * 5 + [False] * 5 + [True] * 5)
    write_hits(out, "lavic", [True] * 31 + [False] * 9)
    write_hits(out, "llava-1.5", [True] * 40, retriever="bm25", shift=3)  # other candidates
    return out


def md_row(text: str, model: str) -> list[str]:
    line = next(x for x in text.splitlines() if x.startswith(f"| {model} "))
    return [c.strip() for c in line.strip("|").split("|")][1:]


def test_ci_prints_each_interval(run: Path) -> None:
    done = CliRunner().invoke(app, ["table", str(run), "--ci"])
    assert done.exit_code == 0, done.output
    hr, vr = md_row(done.stdout, "gpt-4o")
    low, high = (float(x) for x in hr.split("[")[1].rstrip("]").split(","))
    assert hr.startswith("0.7500 [")
    assert low < 0.75 < high and vr == "1.0000 [1.000, 1.000]"
    plain = CliRunner().invoke(app, ["table", str(run)])
    assert md_row(plain.stdout, "gpt-4o")[0] == "0.7500"
    rows = list(csv.DictReader(io.StringIO(
        CliRunner().invoke(app, ["table", str(run), "--format", "csv"]).stdout)))
    gpt = next(r for r in rows if r["model"] == "gpt-4o")
    assert float(gpt["hr@1_low"]) == pytest.approx(low, abs=5e-4) and gpt["significant"] == ""


def test_sig_daggers_rows_that_differ_from_the_baseline(run: Path) -> None:
    marked, legend = significant(list(iter_results([run])), "sbert/vicuna")
    assert marked == {("sbert", "gpt-4o", "all_beauty"), ("sbert", "lavic", "all_beauty")}
    assert "over 2 tests" in legend and "1 cells with other candidates" in legend
    against, _ = significant(list(iter_results([run])), "lavic")
    assert against == {("sbert", "vicuna", "all_beauty")}  # gpt-4o is one pair behind: noise
    md = CliRunner().invoke(app, ["table", str(run), "--sig", "vicuna"]).stdout
    assert md_row(md, "gpt-4o")[0].endswith("†") and not md_row(md, "vicuna")[0].endswith("†")
    assert "† differs from sbert/vicuna in the same domain: exact McNemar" in md
    latex = CliRunner().invoke(app, ["table", str(run), "--sig", "vicuna", "--format",
                                     "latex"]).stdout
    assert r"0.7500\textsuperscript{\dag}" in latex
    caption = next(x for x in latex.splitlines() if x.startswith(r"\caption{"))
    assert r"\textsuperscript{\dag} differs from sbert/vicuna" in caption


def test_sig_names_one_row(run: Path) -> None:
    with pytest.raises(BenchError, match="--sig gpt-5: no row of the table"):
        significant(list(iter_results([run])), "gpt-5")
    failed = CliRunner().invoke(app, ["table", str(run), "--sig", "gpt-5"])
    assert failed.exit_code == 2 and failed.stderr.count("\n") == 1
    assert "sbert/gpt-4o" in failed.stderr  # the hint lists the rows
