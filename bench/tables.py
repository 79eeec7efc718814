"""Paper-style result tables (markdown, LaTeX, CSV) from results.json payloads.

Layout follows the paper's Tables 3-6: rows are methods grouped by retriever (the retrievers
alone first, then one "Generative + <retriever>" group per candidate retriever), columns are
domain x {HR@1, VR}. Best HR@1 per column is bold and the second-best underlined; ties are
judged at the 4 shown decimals, tied values share the mark, and "second" is the next lower
distinct value. With ``with_paper=True`` each measured row is followed by the paper's matching
rows (label suffix " (paper)", ``source=paper`` in CSV). Reported rows do not compete for
bold/underline, so the marks describe this run; ``rank_paper=True`` lets them compete.
CSV is one long row per cell and keeps full float precision, for spreadsheets.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from bench import paper
from bench.errors import BenchError
from bench.results import RESULTS_FILE, CellKey

FORMATS = ("markdown", "latex", "csv")
RETRIEVER_ORDER = (
    "bm25",
    "sbert",
    "roberta",
    "simcse",
    "blair",
    "openai-emb",
    "dataset:st",
    "dataset:gpt_large",
)
MODEL_ORDER = (
    "vicuna",
    "llava-1.5",
    "llava-1.6",
    "gpt-3.5-turbo",
    "gpt-4o-mini",
    "gpt-4o",
    "lavic",
    "lavic-entire-tokens",
    "lavic-wo-images",
    "lavic-wo-distillation",
    "lavic-separate",
    "lavic-combined",
)
DOMAIN_LABELS = {"all_beauty": "Beauty", "amazon_fashion": "Fashion", "amazon_home": "Home"}
RETRIEVER_LABELS = {
    "bm25": "BM25",
    "sbert": "SBERT",
    "roberta": "RoBERTa",
    "simcse": "SimCSE",
    "blair": "BLaIR",
    "openai-emb": "OpenAI-emb",
}
SETTING_ORDER = {s: i for i, s in enumerate(paper.SETTINGS)}
CSV_COLUMNS = (
    "source",
    "retriever",
    "model",
    "setting",
    "table",
    "dataset",
    "split",
    "domain",
    "hr@1",
    "valid_ratio",
    "note",
    "file",
)

KEY_FIELDS = tuple(f.name for f in fields(CellKey))
Result = tuple[Path, dict[str, Any]]
#: ``iter_results`` yields (file, payload); ``Grid.run()`` returns bare payloads.
Payload = Result | Mapping[str, Any]


def _field(payload: Mapping[str, Any], name: str, file: Path) -> str:
    """A key field of a payload (``dataset`` means its name), or an error naming the file."""
    try:
        value = payload[name]
        return str(value["name"] if name == "dataset" else value)
    except (KeyError, TypeError):
        raise BenchError(f"results.json lacks {name!r}", where=str(file)) from None


def _located(item: Payload) -> Result:
    """(file, payload); a bare payload is named by its cell's path relative to the run dir."""
    if isinstance(item, tuple):
        return item
    names = (_field(item, f, Path(RESULTS_FILE)) for f in KEY_FIELDS)
    return CellKey(*names).directory(Path()) / RESULTS_FILE, dict(item)


def collect(results: Iterable[Payload], by: tuple[str, ...]) -> dict[tuple[str, ...], Result]:
    """Index payloads by ``by``; two files for one key is an error, never a silent pick."""
    seen: dict[tuple[str, ...], Result] = {}
    for file, payload in map(_located, results):
        key = tuple(_field(payload, f, file) for f in by)
        if key in seen:
            cell = ", ".join(f"{f}={v!r}" for f, v in zip(by, key, strict=True))
            raise BenchError(
                f"two results for {cell}: {seen[key][0]} and {file}",
                hint="pass one run per cell, or render the runs separately",
            )
        seen[key] = (file, payload)
    return seen


@dataclass(frozen=True)
class Cell:
    hr1: float | None
    valid_ratio: float | None
    note: str = ""
    dataset: str = ""
    split: str = ""
    file: str = ""
    table: str = ""


@dataclass(frozen=True)
class Row:
    """One table line: a measured (retriever, model) or a reported paper row beside it."""

    group: str
    label: str
    source: str  # "measured" | "paper"
    retriever: str
    model: str
    setting: str
    cells: Mapping[str, Cell]


def _rank(order: tuple[str, ...], name: str) -> tuple[int, str]:
    return (order.index(name), "") if name in order else (len(order), name)


def _domain_order(domains: Iterable[str]) -> list[str]:
    return sorted(set(domains), key=lambda d: _rank(tuple(DOMAIN_LABELS), d))


def _group(retriever: str, model: str) -> tuple[tuple[int, tuple[int, str]], str]:
    """Sort key and header: retrievers alone first, then generative groups by retriever."""
    if model == "none":
        return (0, (0, "")), "Retrieval (item title)"
    name = RETRIEVER_LABELS.get(retriever, retriever)
    return (1, _rank(RETRIEVER_ORDER, retriever)), f"Generative + {name}"


def metric(payload: Mapping[str, Any], name: str, file: Path) -> float | None:
    """A metric from a payload; a missing key names the file instead of a KeyError."""
    try:
        value = payload["metrics"][name]
    except (KeyError, TypeError):
        raise BenchError(f"results.json lacks metrics[{name!r}]", where=str(file)) from None
    return None if value is None else float(value)


def _paper_rows(retriever: str, model: str, group: str, domains: list[str]) -> list[Row]:
    """Reported rows for a measured line, one per paper setting; ``retriever`` is the paper's
    (``sbert`` for ``dataset:st``), ``model`` stays the harness name they were matched on."""
    by_line: dict[tuple[str, str], dict[str, Cell]] = {}
    for r in paper.matching(retriever, model):
        if r.domain in domains:
            cell = Cell(r.hr1, r.valid_ratio, note=r.note, table=str(r.table))
            by_line.setdefault((r.setting, r.retriever), {})[r.domain] = cell
    rows = []
    for (setting, source), cells in sorted(by_line.items(), key=lambda i: SETTING_ORDER[i[0][0]]):
        name = retriever if model == "none" else model
        label = f"{name} (paper)" if setting == "retrieval" else f"{name} [{setting}] (paper)"
        rows.append(Row(group, label, "paper", source, model, setting, cells))
    return rows


def build(results: Iterable[Payload], *, with_paper: bool = False) -> tuple[list[str], list[Row]]:
    """Domains in column order and rows in display order."""
    cells = collect(results, ("retriever", "model", "domain"))
    if not cells:
        raise BenchError("no results.json found", hint="pass a run directory or results.json")
    domains = _domain_order(d for _, _, d in cells)
    lines: dict[tuple[str, str], dict[str, Cell]] = {}
    for (retriever, model, domain), (file, payload) in cells.items():
        lines.setdefault((retriever, model), {})[domain] = Cell(
            metric(payload, "hr@1", file),
            metric(payload, "valid_ratio", file),
            dataset=_field(payload, "dataset", file),
            split=_field(payload, "split", file),
            file=str(file),
        )

    def order(item: tuple[tuple[str, str], Any]) -> tuple[Any, ...]:
        retriever, model = item[0]
        within = _rank(RETRIEVER_ORDER, retriever) if model == "none" else _rank(MODEL_ORDER, model)
        return _group(retriever, model)[0], within

    rows: list[Row] = []
    for (retriever, model), line in sorted(lines.items(), key=order):
        group = _group(retriever, model)[1]
        label = retriever if model == "none" else model
        rows.append(Row(group, label, "measured", retriever, model, "", line))
        if with_paper:
            rows.extend(_paper_rows(retriever, model, group, domains))
    return domains, rows


def _marks(rows: list[Row], domains: list[str], rank_paper: bool) -> dict[tuple[int, str], str]:
    """(row index, domain) -> "best" | "second", on HR@1 rounded to the shown precision."""
    marks: dict[tuple[int, str], str] = {}
    for domain in domains:
        scores = {
            i: round(c.hr1, 4)
            for i, row in enumerate(rows)
            if (rank_paper or row.source == "measured")
            and (c := row.cells.get(domain)) is not None
            and c.hr1 is not None
        }
        if not scores:
            continue
        best = max(scores.values())
        lower = [v for v in scores.values() if v < best]
        second = max(lower) if lower else None
        for i, v in scores.items():
            if v == best:
                marks[(i, domain)] = "best"
            elif v == second:
                marks[(i, domain)] = "second"
    return marks


def _number(value: float | None, cell: Cell | None) -> str:
    if value is not None:
        return f"{value:.4f}"
    return cell.note if cell is not None and cell.note else "-"


def _values(row: Row, domain: str) -> tuple[str, str]:
    cell = row.cells.get(domain)
    if cell is None:
        return "", ""
    return _number(cell.hr1, cell), _number(cell.valid_ratio, None)


def _markdown(domains: list[str], rows: list[Row], marks: dict[tuple[int, str], str]) -> str:
    style = {"best": "**{}**", "second": "<u>{}</u>"}
    heads = [f"{DOMAIN_LABELS.get(d, d)} {m}" for d in domains for m in ("HR@1", "VR")]
    out = ["| Method | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    group = None
    for i, row in enumerate(rows):
        if row.group != group:
            group = row.group
            out.append(f"| *{group}* |" + " |" * len(heads))
        values = []
        for d in domains:
            hr, vr = _values(row, d)
            values += [style[marks[(i, d)]].format(hr) if (i, d) in marks else hr, vr]
        label = row.label.replace("|", r"\|")
        out.append(f"| {label} | " + " | ".join(values) + " |")
    return "\n".join(out) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex(domains: list[str], rows: list[Row], marks: dict[tuple[int, str], str]) -> str:
    style = {"best": r"\textbf{{{}}}", "second": r"\underline{{{}}}"}
    width = 1 + 2 * len(domains)
    heads = [latex_escape(DOMAIN_LABELS.get(d, d)) for d in domains]
    out = [
        r"\begin{tabular}{l" + "rr" * len(domains) + "}",
        r"\toprule",
        "".join(rf" & \multicolumn{{2}}{{c}}{{{h}}}" for h in heads) + r" \\",
        " ".join(rf"\cmidrule(lr){{{2 + 2 * k}-{3 + 2 * k}}}" for k in range(len(domains))),
        " & ".join(["Method", *(["HR@1", "VR"] * len(domains))]) + r" \\",
    ]
    group = None
    for i, row in enumerate(rows):
        if row.group != group:
            group = row.group
            out.append(r"\midrule")
            out.append(rf"\multicolumn{{{width}}}{{l}}{{\textit{{{latex_escape(group)}}}}} \\")
        values = [latex_escape(row.label)]
        for d in domains:
            hr, vr = _values(row, d)
            values += [style[marks[(i, d)]].format(hr) if (i, d) in marks else hr, vr]
        out.append(" & ".join(values) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"


def _csv(domains: list[str], rows: list[Row]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        for d in domains:
            cell = row.cells.get(d)
            if cell is None:
                continue
            writer.writerow(
                [
                    row.source,
                    row.retriever,
                    row.model,
                    row.setting,
                    cell.table,
                    cell.dataset,
                    cell.split,
                    d,
                    "" if cell.hr1 is None else repr(cell.hr1),
                    "" if cell.valid_ratio is None else repr(cell.valid_ratio),
                    cell.note,
                    cell.file,
                ]
            )
    return buf.getvalue()


def render(
    results: Iterable[Payload], fmt: str, *, with_paper: bool = False, rank_paper: bool = False
) -> str:
    """Render ``iter_results(...)`` output as a markdown, LaTeX or CSV table."""
    if fmt not in FORMATS:
        raise BenchError(f"unknown table format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    domains, rows = build(results, with_paper=with_paper)
    if fmt == "csv":
        return _csv(domains, rows)
    marks = _marks(rows, domains, rank_paper)
    return (_markdown if fmt == "markdown" else _latex)(domains, rows, marks)
