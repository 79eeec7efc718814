"""Paper-style tables from hand-made results.json payloads."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from bench.core.errors import BenchError
from bench.execution.store import RESULTS_FILE, CellKey, iter_results, write_json_atomic
from bench.results.tables import render
from tests.conftest import results_payload as payload


def write(out: Path, p: dict[str, Any]) -> Path:
    key = CellKey(p["dataset"]["name"], p["domain"], p["split"], p["retriever"], p["model"])
    path = key.directory(out) / RESULTS_FILE
    write_json_atomic(path, p)
    return path


# Beauty: lavic and gpt-4o tie for best (0.1000), llava-1.6 second. Home: lavic best, gpt-4o
# second. The openai-emb group is written first, to show order comes from the layout rules.
CELLS = [
    ("openai-emb", "gpt-4o", "all_beauty", 0.1, 0.99),
    ("openai-emb", "gpt-4o", "amazon_home", 0.30, 1.0),
    ("sbert", "lavic", "all_beauty", 0.1, 0.97),
    ("sbert", "lavic", "amazon_home", 0.32, 0.98),
    ("sbert", "llava-1.6", "all_beauty", 0.08, 0.95),
    ("sbert", "llava-1.6", "amazon_home", 0.2, 0.99),
    ("sbert", "none", "all_beauty", 0.05, None),
    ("sbert", "none", "amazon_home", 0.21, None),
    ("bm25", "none", "all_beauty", 0.01, None),
    ("bm25", "none", "amazon_home", 0.04, None),
]


@pytest.fixture
def run(tmp_path: Path) -> Path:
    for cell in CELLS:
        write(tmp_path / "run", payload(*cell))
    return tmp_path / "run"


def md_cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def md_table(text: str) -> list[str]:
    """The table's lines (the legend follows a blank line)."""
    return text.split("\n\n")[0].splitlines()


def md_rows(text: str) -> dict[str, list[str]]:
    """Markdown body rows by label (first column)."""
    rows = {}
    for line in md_table(text)[2:]:
        cells = md_cells(line)
        rows[cells[0]] = cells[1:]
    return rows


def test_markdown_layout_and_marks(run: Path) -> None:
    text = render(iter_results([run]), "markdown")
    lines = md_table(text)
    assert md_cells(lines[0]) == ["Method", "Beauty HR@1", "Beauty VR", "Home HR@1", "Home VR"]
    assert set(lines[1]) == {"|", "-", ":"} and lines[1].count(":") == 5  # left, then right
    assert text == "\n".join(lines) + "\n"  # no flags, no parser: no legend
    labels = [md_cells(line)[0] for line in lines[2:]]
    assert labels == [
        "*Retrieval (item title)*",
        "bm25",
        "sbert",
        "*Generative + SBERT*",
        "llava-1.6",
        "lavic",
        "*Generative + OpenAI-emb*",
        "gpt-4o",
    ]
    rows = md_rows(text)
    assert rows["bm25"] == ["0.0100", "-", "0.0400", "-"]
    assert rows["sbert"] == ["0.0500", "-", "0.2100", "-"]
    assert rows["lavic"] == ["**0.1000**", "0.9700", "**0.3200**", "0.9800"]
    assert rows["gpt-4o"] == ["**0.1000**", "0.9900", "<u>0.3000</u>", "1.0000"]
    assert rows["llava-1.6"] == ["<u>0.0800</u>", "0.9500", "0.2000", "0.9900"]


def test_output_does_not_depend_on_input_order(run: Path) -> None:
    found = list(iter_results([run]))
    for fmt in ("markdown", "latex", "csv"):
        assert render(found, fmt) == render(reversed(found), fmt)


def test_latex(run: Path, tmp_path: Path) -> None:
    write(tmp_path / "run", payload("sbert", "my_model&co", "all_beauty", 0.0, 0.5))
    text = render(iter_results([run]), "latex")
    lines = text.splitlines()
    assert lines[:6] == [
        r"\begin{tabular}{llrrrr}",
        r"\toprule",
        r" &  & \multicolumn{2}{c}{Beauty} & \multicolumn{2}{c}{Home} \\",
        r" & Method & HR@1 & VR & HR@1 & VR \\",
        r"\midrule",
        r"\multirow[t]{2}{*}{Retrieval (item title)} & bm25 & 0.0100 & - & 0.0400 & - \\",
    ]
    assert lines[-2:] == [r"\bottomrule", r"\end{tabular}"]
    assert (r"\multirow[t]{3}{*}{Generative + SBERT} & llava-1.6 & \underline{0.0800} & 0.9500 "
            r"& 0.2000 & 0.9900 \\") in lines
    assert r" & lavic & \textbf{0.1000} & 0.9700 & \textbf{0.3200} & 0.9800 \\" in lines
    assert (r"Generative + OpenAI-emb & gpt-4o & \textbf{0.1000} & 0.9900 & \underline{0.3000} "
            r"& 1.0000 \\") in lines
    # Escaped label; no cell in Home.
    assert r" & my\_model\&co & 0.0000 & 0.5000 &  &  \\" in lines
    assert "caption" not in text  # nothing to explain


def test_csv_is_one_row_per_cell(run: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(render(iter_results([run]), "csv"))))
    assert len(rows) == len(CELLS)
    assert {r["source"] for r in rows} == {"measured"}
    lavic = [r for r in rows if r["model"] == "lavic"]
    assert [(r["domain"], r["hr@1"], r["valid_ratio"]) for r in lavic] == [
        ("all_beauty", "0.1", "0.97"),
        ("amazon_home", "0.32", "0.98"),
    ]
    bm25 = next(r for r in rows if r["retriever"] == "bm25")
    assert (bm25["valid_ratio"], bm25["dataset"], bm25["split"]) == ("", "reddit-amazon", "test")
    assert bm25["file"].endswith(RESULTS_FILE)


def test_with_paper_rows_sit_beside_measured_rows_and_do_not_compete(run: Path) -> None:
    text = render(iter_results([run]), "markdown", with_paper=True)
    labels = [line.split("|")[1].strip() for line in text.splitlines()[2:]]
    i = labels.index("lavic")
    assert labels[i + 1] == "lavic [title+image] (paper)"
    assert labels[labels.index("sbert") + 1] == "sbert (paper)"
    j = labels.index("gpt-4o")
    # a plain name is the paper's titles-only row; "gpt-4o+img" would be its title+image row
    assert labels[j + 1] == "gpt-4o [title] (paper)"
    assert "gpt-4o [title+image] (paper)" not in labels
    rows = md_rows(text)
    # Paper LaViC (0.1187) beats every measured beauty number but is not marked.
    assert rows["lavic [title+image] (paper)"] == ["0.1187", "0.9702", "0.3197", "0.9892"]
    assert rows["sbert (paper)"] == ["0.0551", "-", "0.2166", "-"]
    assert rows["lavic"][0] == "**0.1000**"
    ranked = md_rows(render(iter_results([run]), "markdown", with_paper=True, rank_paper=True))
    assert ranked["gpt-4o [title] (paper)"][0] == "**0.2005**"
    assert ranked["lavic"][0] == "0.1000"


def test_with_paper_csv_marks_source_and_table(run: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(render(iter_results([run]), "csv", with_paper=True))))
    reported = [r for r in rows if r["source"] == "paper"]
    assert {r["domain"] for r in reported} == {"all_beauty", "amazon_home"}  # same domains only
    lavic = [r for r in reported if r["model"] == "lavic"]
    assert [(r["table"], r["setting"], r["hr@1"]) for r in lavic] == [
        ("3", "title+image", "0.1187"),
        ("3", "title+image", "0.3197"),
    ]


def test_paper_alias_and_oom(tmp_path: Path) -> None:
    write(tmp_path, payload("dataset:st", "lavic", "amazon_home", 0.3, 0.99))
    write(tmp_path, payload("dataset:st", "lavic-entire-tokens", "amazon_home", 0.1, 0.9))
    rows = md_rows(render(iter_results([tmp_path]), "markdown", with_paper=True))
    assert rows["lavic [title+image] (paper)"] == ["0.3197", "0.9892"]
    assert rows["lavic-entire-tokens [ablation] (paper)"] == ["o.o.m.", "-"]
    assert "*Generative + dataset:st*" in rows
    table = render(iter_results([tmp_path]), "csv", with_paper=True)
    reported = [r for r in csv.DictReader(io.StringIO(table)) if r["source"] == "paper"]
    assert {(r["retriever"], r["model"]) for r in reported} == {
        ("sbert", "lavic"),
        ("sbert", "lavic-entire-tokens"),
    }
    assert [r["note"] for r in reported if r["hr@1"] == ""] == ["o.o.m."]


def test_unknown_domains_follow_the_known_ones_sorted(tmp_path: Path) -> None:
    for domain in ("zeta", "amazon_home", "alpha", "all_beauty"):
        write(tmp_path, payload("bm25", "none", domain, 0.1, None))
    header = md_cells(render(iter_results([tmp_path]), "markdown").splitlines()[0])
    assert header == ["Method", "Beauty HR@1", "Beauty VR", "Home HR@1", "Home VR",
                      "alpha HR@1", "alpha VR", "zeta HR@1", "zeta VR"]


def test_two_runs_of_one_cell_name_both_files(tmp_path: Path) -> None:
    first = write(tmp_path, payload("sbert", "lavic", "all_beauty", 0.1, 0.9, split="test"))
    second = write(tmp_path, payload("sbert", "lavic", "all_beauty", 0.2, 0.9, split="valid"))
    with pytest.raises(BenchError) as err:
        render(iter_results([tmp_path]), "markdown")
    line = err.value.one_line()
    assert str(first) in line and str(second) in line and "\n" not in line


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="unknown table format"):
        render([], "html")
    with pytest.raises(BenchError, match=r"no results\.json"):
        render([], "markdown")
    broken = payload("bm25", "none", "all_beauty", 0.1, None)
    del broken["metrics"]["valid_ratio"]
    path = write(tmp_path, broken)
    with pytest.raises(BenchError, match="valid_ratio") as err:
        render(iter_results([tmp_path]), "csv")
    assert err.value.where == str(path)
    broken["metrics"]["valid_ratio"] = None
    del broken["split"]
    write_json_atomic(path, broken)
    with pytest.raises(BenchError, match="lacks 'split'"):
        render(iter_results([path]), "csv")


def test_bare_payloads_as_the_cli_passes_them(run: Path) -> None:
    """``bench table`` and ``Grid.run()`` hand over payloads without their files."""
    found = list(iter_results([run]))
    bare = [p for _, p in found]
    assert render(bare, "markdown", with_paper=True) == render(found, "markdown", with_paper=True)
    with pytest.raises(BenchError) as err:
        render([*bare, bare[0]], "latex")
    cell = "reddit-amazon/all_beauty/test/bm25/none/results.json"  # bare[0], named twice
    assert err.value.one_line().count(cell) == 2


def test_flags_are_marked_in_every_format_and_all_failed_never_wins(tmp_path: Path) -> None:
    cells = [("sbert", "lavic", "all_beauty", 0.2, 0.9),
             ("sbert", "vicuna", "all_beauty", 0.1, 1.0),
             ("sbert", "gpt-4o", "all_beauty", 0.5, 0.0),
             ("sbert", "none", "all_beauty", 0.05)]
    flags = {"lavic": ["truncated"], "gpt-4o": ["all_failed"], "vicuna": ["over_budget"]}
    for cell in cells:
        p = payload(*cell)
        p["flags"] = flags.get(cell[1], [])
        p["id_parser"] = {"none": None, "gpt-4o": "robust"}.get(cell[1], "paper")
        write(tmp_path, p)
    md = render(iter_results([tmp_path]), "markdown")
    rows = md_rows(md)
    assert rows["lavic"][0] == "**0.2000**§" and rows["vicuna"][0] == "<u>0.1000</u>‡"
    assert rows["gpt-4o"][0] == "0.5000¶" and rows["sbert"][0] == "0.0500"
    legend = md.split("\n\n")[1].splitlines()
    assert [line.split()[0] for line in legend[:3]] == ["¶", "‡", "§"]
    assert legend[3].strip() == "ID parser: paper (lavic, vicuna); robust (gpt-4o)"
    # a dead server's cell is never bold, even as the only generator
    dead = payload("sbert", "gpt-4o", "all_beauty", 0.0, 0.0) | {"flags": ["all_failed"]}
    assert md_rows(render([dead], "markdown"))["gpt-4o"][0] == "0.0000¶"

    latex = render(iter_results([tmp_path]), "latex")
    assert r"\textbf{0.2000}\textsuperscript{\S}" in latex
    assert r" & gpt-4o & 0.5000\textsuperscript{\P} & " in latex
    caption = next(line for line in latex.splitlines() if line.startswith(r"\caption{"))
    assert r"\textsuperscript{\P} all\_failed = every request failed" in caption
    assert "ID parser: paper (lavic, vicuna); robust (gpt-4o)" in caption

    rows_csv = list(csv.DictReader(io.StringIO(render(iter_results([tmp_path]), "csv"))))
    by_model = {r["model"]: r for r in rows_csv}
    assert by_model["gpt-4o"]["flags"] == "all_failed" and by_model["none"]["flags"] == ""
    assert (by_model["lavic"]["id_parser"], by_model["none"]["id_parser"]) == ("paper", "")


def test_unknown_flag_names_the_file(tmp_path: Path) -> None:
    p = payload("sbert", "lavic", "all_beauty", 0.2, 0.9)
    p["flags"] = ["melted"]
    path = write(tmp_path, p)
    with pytest.raises(BenchError, match="unknown flags") as err:
        render(iter_results([tmp_path]), "markdown")
    assert err.value.where == str(path)
