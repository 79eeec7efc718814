"""``bench report DIR --out report.html``: one static page about a run, readable offline.

Everything comes from the files a run leaves: each cell's results.json (numbers, failures,
usage), its predictions.jsonl (displayed positions of the answers, ground truths) and each
retriever's ranking.jsonl (bench/execution/ranking.py, for Recall@k up to k = 50). The page
holds its figures as inline SVG (bench/results/report_plots.py) and its tables as HTML, with no
script, style sheet, font or image fetched from anywhere, so it opens from a mail attachment or
a CI artifact.
What the page cannot show (a cell without predictions, a retriever without a ranking) is listed
on it, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from bench.core.config import NO_MODEL
from bench.core.errors import BenchError
from bench.execution import ranking
from bench.execution.store import KEY_FIELDS, PREDICTIONS_FILE, read_predictions
from bench.results import frames, paper, positions, report_plots

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
#: Columns of the tokens-and-cost table, from results.json ``usage``.
USAGE = ("prompt_tokens", "completion_tokens", "cost_usd")


@dataclass
class Report:
    """What the page shows; ``cells`` has one row per results.json."""

    sources: list[str]
    cells: pd.DataFrame
    curves: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    picks: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)


def _paper(row: pd.Series) -> pd.Series:
    """The paper's reported HR@1 and ValidRatio for this cell's retriever, generator and
    domain (NaN where it reports none)."""
    rows = [r for r in paper.matching(row["retriever"], row["model"])
            if r.domain == row["domain"]]
    found = (rows[0].hr1, rows[0].valid_ratio) if rows else (None, None)
    return pd.Series(found, index=["paper_hr@1", "paper_valid_ratio"], dtype=float)


def collect(paths: Iterable[str | Path]) -> Report:
    """The page's data from run directories or results.json files (``bench.results.load``,
    whose intervals results.json carries); no cell is a one-line error."""
    paths = [Path(p) for p in paths]
    cells = frames.load(*paths)
    several = cells[["dataset", "split"]].drop_duplicates().shape[0] > 1
    cells["where"] = (cells["dataset"] + "/" + cells["domain"] + "/" + cells["split"]
                      if several else cells["domain"])
    cells["label"] = cells["retriever"] + " / " + cells["model"]
    cells["file"] = cells["file"].map(Path)
    cells["ordered"] = cells["retriever_hr@1"].notna()
    cells[["paper_hr@1", "paper_valid_ratio"]] = cells.apply(_paper, axis=1)
    failures = [c for c in cells if c.startswith("failures.")]
    cells[failures] = cells[failures].fillna(0).astype(int)
    cells["failed"] = cells[failures].sum(axis=1).astype(int)
    cells = cells.sort_values(["where", "retriever", "model"], kind="stable").reset_index(
        drop=True)
    report = Report([str(p) for p in paths], cells)
    records = _records(cells, report.notes)
    report.curves = _curves(cells, records, report.notes)
    report.picks = _picks(cells, records, paths)
    return report


def _records(cells: pd.DataFrame, notes: list[str]) -> dict[int, list[dict[str, Any]]]:
    """Each cell's prediction records (by row), when its predictions.jsonl is whole."""
    out = {}
    for index, cell in cells.iterrows():
        path = cell["file"].parent / PREDICTIONS_FILE
        records, bad = read_predictions(path)
        if bad or len(records) != cell["n_conversations"]:
            notes.append(f"{cell['where']} {cell['label']}: {path} holds {len(records)} readable "
                         f"of {cell['n_conversations']} conversations; its curve and pick rates "
                         "are left out")
            continue
        out[int(index)] = records  # type: ignore[arg-type]
    return out


def _curves(cells: pd.DataFrame, records: dict[int, list[dict[str, Any]]],
            notes: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Recall@k per domain and ordered retriever: to k = 50 from its ranking.jsonl, else to
    k = top_k from the candidates its cells kept (said in a note)."""
    curves: dict[str, dict[str, np.ndarray]] = {}
    for (where, retriever), group in cells.groupby(["where", "retriever"], sort=False):
        index = next((int(i) for i in group.index if int(i) in records), None)
        if index is None:
            continue
        if not group["ordered"].any():
            notes.append(f"{where} {retriever}: an unordered candidate list has no Recall@k "
                         "curve")
            continue
        kept = records[index]
        lists = ranking.read(cells.at[index, "file"].parent.parent,
                             {r["id"]: r["candidates"] for r in kept})
        if lists is None:
            notes.append(f"{where} {retriever}: no {ranking.RANKING_FILE} matching its cells "
                         f"(a run before rankings were kept?); its curve stops at k = "
                         f"{cells.at[index, 'top_k']}")
        rankings = [r["candidates"] for r in kept] if lists is None else list(lists.values())
        depth = ranking.DEPTH if lists is not None else int(cells.at[index, "top_k"])
        curves.setdefault(str(where), {})[str(retriever)] = ranking.recall_curve(
            rankings, [r["gt_items"] for r in kept], depth)
    return curves


def _picks(cells: pd.DataFrame, records: dict[int, list[dict[str, Any]]],
           paths: list[Path]) -> pd.DataFrame:
    """Per generator cell and displayed position (1 = shown first): the share of its answers
    naming the candidate shown there -- over every order where the run had --permutations
    (its permutations.json, ``bench.results.positions.load``), else over the run's one order;
    an answer naming no candidate counts in no position."""
    summaries = cells.merge(positions.load(*paths), on=list(KEY_FIELDS))
    rows = [{"label": f"{s['where']}: {s['label']}", "position": s["position"],
             "rate": s["pick_rate"], "orders": s["orders"], "hr@1_mean": s["hr@1_mean"],
             "hr@1_std": s["hr@1_std"]} for _, s in summaries.iterrows()]
    summarized = set(summaries["file"])
    for index, recs in records.items():
        cell = cells.loc[index]
        if cell["model"] == NO_MODEL or cell["file"] in summarized or not recs:
            continue
        counts = np.zeros(max(len(r["presented"]) for r in recs) or 1)
        for r in recs:
            if r["prediction"] in r["presented"]:
                counts[r["presented"].index(r["prediction"])] += 1
        rows += [{"label": f"{cell['where']}: {cell['label']}", "position": p + 1,
                  "rate": n / len(recs), "orders": 1, "hr@1_mean": cell["hr@1"],
                  "hr@1_std": None} for p, n in enumerate(counts)]
    return pd.DataFrame(rows, columns=["label", "position", "rate", "orders", "hr@1_mean",
                                       "hr@1_std"])


def _number(value: Any, digits: int = 4) -> str:
    """A metric as the page prints it; missing (None / NaN) is a dash."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def render(report: Report) -> str:
    """The whole page as one HTML string."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["num"] = _number
    cells = report.cells
    codes = sorted(c.removeprefix("failures.") for c in cells if c.startswith("failures."))
    top_k = int(cells["top_k"].max())
    plots = {"hr1": report_plots.hr1_bars(cells)}
    if report.curves:
        plots["recall"] = report_plots.recall_curves(report.curves, top_k)
    if not report.picks.empty:
        plots["picks"] = report_plots.pick_rates(report.picks)
    picks = [{"label": label, "orders": group["orders"].iat[0],
              "mean": group["hr@1_mean"].iat[0], "std": group["hr@1_std"].iat[0],
              "rates": group.sort_values("position")["rate"].tolist()}
             for label, group in report.picks.groupby("label", sort=False)]
    rows = [{k: None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()}
            for row in cells.to_dict("records")]
    return env.get_template("report.html.j2").render(
        sources=report.sources, cells=rows, codes=codes, plots=plots,
        picks=picks, notes=report.notes, usage=USAGE,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        paper_csv=paper.REPORTED_CSV.name,
    )


def write(paths: Iterable[str | Path], out: str | Path) -> Path:
    """Write the page to ``out`` (a file; its folder is made); returns the path written."""
    out = Path(out)
    if out.is_dir():
        raise BenchError("--out is a folder", where=str(out),
                         hint="name the HTML file to write, e.g. --out report.html")
    page = render(collect(paths))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
