"""Paper-style result tables (markdown, LaTeX, CSV) from results.json payloads.

Layout follows the paper's Tables 3-6: rows are methods grouped by retriever (the retrievers
alone first, then one "Generative + <retriever>" group per candidate retriever), columns are
domain x {HR@1, VR}. Best HR@1 per column is bold and the second-best underlined; ties are
judged at the 4 shown decimals, tied values share the mark, and "second" is the next lower
distinct value. With ``with_paper=True`` each measured row is followed by the paper's matching
rows (label suffix " (paper)", ``source=paper`` in CSV). Reported rows do not compete for
bold/underline, so the marks describe this run; ``rank_paper=True`` lets them compete.
A cell's results.json ``flags`` become marks after its HR@1 (explained in a legend under the
table, the LaTeX caption, or the CSV ``flags`` column); an ``all_failed`` cell never competes,
so a dead server is never a bold 0.0000. The ID parsers used are named in the legend too.
``ci=True`` prints each number's 95% bootstrap interval (results.json ``intervals``) after it;
``significant`` (``bench.results.compare.significant``) daggers the cells that differ significantly
from a baseline row, with ``sig_legend`` naming the test in the legend / caption.

pandas pivots the cells into the layout; tabulate writes markdown, pandas' Styler LaTeX (with
booktabs rules and one multirow label per group) and pandas CSV (one long row per cell, full
float precision, for spreadsheets).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from bench.core.config import NO_MODEL
from bench.core.errors import BenchError
from bench.execution.store import KEY_FIELDS, RESULTS_FILE, CellKey
from bench.results import paper

FORMATS = ("markdown", "latex", "csv")
RETRIEVER_ORDER = (
    "bm25", "sbert", "roberta", "simcse", "blair", "openai-emb", "dataset:st",
    "dataset:gpt_large",
)
MODEL_ORDER = (
    "vicuna", "llava-1.5", "llava-1.6", "gpt-3.5-turbo", "gpt-4o-mini", "gpt-4o", "lavic",
    "lavic-entire-tokens", "lavic-wo-images", "lavic-wo-distillation", "lavic-separate",
    "lavic-combined",
)
DOMAIN_LABELS = {"all_beauty": "Beauty", "amazon_fashion": "Fashion", "amazon_home": "Home"}
RETRIEVER_LABELS = {
    "bm25": "BM25", "sbert": "SBERT", "roberta": "RoBERTa", "simcse": "SimCSE", "blair": "BLaIR",
    "openai-emb": "OpenAI-emb",
}
SETTING_ORDER = {s: i for i, s in enumerate(paper.SETTINGS)}
CSV_COLUMNS = (
    "source", "retriever", "model", "setting", "table", "dataset", "split", "domain", "hr@1",
    "valid_ratio", "hr@1_low", "hr@1_high", "valid_ratio_low", "valid_ratio_high", "significant",
    "flags", "id_parser", "note", "file",
)
#: results.json flag -> (markdown mark, LaTeX mark, legend)
FLAGS = {
    "all_failed": ("¶", r"\textsuperscript{\P}",
                   "every request failed: no answer was scored (never marked best)"),
    "over_budget": ("‡", r"\textsuperscript{\ddag}",
                    "a prompt did not fit max_length even without its conversation"),
    "truncated": ("§", r"\textsuperscript{\S}", "conversations were cut to fit max_length"),
}
LATEX_STYLE = {"best": r"\textbf{{{}}}", "second": r"\underline{{{}}}"}
MARKDOWN_STYLE = {"best": "**{}**", "second": "<u>{}</u>"}

#: A cell that differs significantly from the ``--sig`` baseline row (markdown, LaTeX).
SIG_MARK = ("†", r"\textsuperscript{\dag}")
Interval = tuple[float, float] | None
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
    flags: tuple[str, ...] = ()
    id_parser: str = ""
    hr1_ci: Interval = None
    vr_ci: Interval = None
    significant: bool = False


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
    if model == NO_MODEL:
        return (0, (0, "")), "Retrieval (item title)"
    name = RETRIEVER_LABELS.get(retriever, retriever)
    return (1, _rank(RETRIEVER_ORDER, retriever)), f"Generative + {name}"


def _flags(payload: Mapping[str, Any], file: Path) -> tuple[str, ...]:
    flags = payload.get("flags") or []
    unknown = [f for f in flags if f not in FLAGS] if isinstance(flags, list) else [flags]
    if unknown:
        raise BenchError(f"results.json has unknown flags {unknown}", where=str(file),
                         hint=f"known: {', '.join(FLAGS)}; a newer lavic-bench wrote it?")
    return tuple(sorted(flags))


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
        name = retriever if model == NO_MODEL else model
        label = f"{name} (paper)" if setting == "retrieval" else f"{name} [{setting}] (paper)"
        rows.append(Row(group, label, "paper", source, model, setting, cells))
    return rows


def _interval(payload: Mapping[str, Any], name: str) -> Interval:
    found = (payload.get("intervals") or {}).get(name)
    return (float(found[0]), float(found[1])) if isinstance(found, list) and len(found) == 2 \
        else None


def build(results: Iterable[Payload], *, with_paper: bool = False,
          significant: Collection[tuple[str, str, str]] = ()) -> tuple[list[str], list[Row]]:
    """Domains in column order and rows in display order; ``significant`` holds the
    (retriever, model, domain) cells to mark."""
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
            flags=_flags(payload, file),
            id_parser=str(payload.get("id_parser") or ""),
            hr1_ci=_interval(payload, "hr@1"),
            vr_ci=_interval(payload, "valid_ratio"),
            significant=(retriever, model, domain) in significant,
        )

    def order(item: tuple[tuple[str, str], Any]) -> tuple[Any, ...]:
        retriever, model = item[0]
        within = (_rank(RETRIEVER_ORDER, retriever) if model == NO_MODEL
                  else _rank(MODEL_ORDER, model))
        return _group(retriever, model)[0], within

    rows: list[Row] = []
    for (retriever, model), line in sorted(lines.items(), key=order):
        group = _group(retriever, model)[1]
        label = retriever if model == NO_MODEL else model
        rows.append(Row(group, label, "measured", retriever, model, "", line))
        if with_paper:
            rows.extend(_paper_rows(retriever, model, group, domains))
    return domains, rows


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


def _marks(rows: list[Row], domains: list[str], rank_paper: bool) -> dict[tuple[int, str], str]:
    """(row index, domain) -> "best" | "second", on HR@1 rounded to the shown precision; an
    all-failed cell does not compete."""
    marks: dict[tuple[int, str], str] = {}
    for domain in domains:
        scores = {
            i: round(c.hr1, 4)
            for i, row in enumerate(rows)
            if (rank_paper or row.source == "measured")
            and (c := row.cells.get(domain)) is not None
            and c.hr1 is not None
            and "all_failed" not in c.flags
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


def _number(value: float | None, note: str = "", ci: Interval = None) -> str:
    text = f"{value:.4f}" if value is not None else note or "-"
    return text if ci is None else f"{text} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _cells(rows: list[Row]) -> pd.DataFrame:
    """One long row per (table row, domain) cell: the data every format is made from."""
    return pd.DataFrame(
        [
            {"row": i, "domain": domain, "hr@1": cell.hr1, "valid_ratio": cell.valid_ratio,
             "note": cell.note, "flags": cell.flags, "id_parser": cell.id_parser,
             "table": cell.table, "dataset": cell.dataset, "split": cell.split,
             "file": cell.file, "hr1_ci": cell.hr1_ci, "vr_ci": cell.vr_ci,
             "significant": cell.significant}
            for i, row in enumerate(rows)
            for domain, cell in row.cells.items()
        ],
        columns=["row", "domain", "hr@1", "valid_ratio", "note", "flags", "id_parser", "table",
                 "dataset", "split", "file", "hr1_ci", "vr_ci", "significant"],
        dtype=object,  # None stays None (no NaN), floats stay Python floats
    )


def _grid(domains: list[str], rows: list[Row], marks: dict[tuple[int, str], str],
          latex: bool, ci: bool) -> pd.DataFrame:
    """The pivot: one line per table row, columns (domain label, HR@1 | VR) of shown text."""
    cells = _cells(rows)
    style = LATEX_STYLE if latex else MARKDOWN_STYLE
    flag = 1 if latex else 0

    def hr(c: pd.Series) -> str:
        text = _number(c["hr@1"], c["note"])
        if c["note"] and latex:
            text = latex_escape(text)
        mark = marks.get((c["row"], c["domain"]))
        text = style[mark].format(text) if mark else text
        text += "".join(FLAGS[f][flag] for f in c["flags"])
        text += SIG_MARK[flag] if c["significant"] else ""
        return _number(None, text, c["hr1_ci"] if ci else None)

    cells["HR@1"] = cells.apply(hr, axis=1) if len(cells) else []
    cells["VR"] = [_number(v, ci=i if ci else None)
                   for v, i in zip(cells["valid_ratio"], cells["vr_ci"], strict=True)]
    wide = cells.pivot(index="row", columns="domain", values=["HR@1", "VR"])
    wide = wide.swaplevel(axis=1).reindex(
        columns=pd.MultiIndex.from_product([domains, ["HR@1", "VR"]]), index=range(len(rows))
    ).fillna("")
    wide.columns = pd.MultiIndex.from_tuples(
        [(DOMAIN_LABELS.get(d, d), m) for d, m in wide.columns], names=["", "Method"]
    )
    return wide


def _legend(rows: list[Row], latex: bool, sig_legend: str) -> list[str]:
    """One line per flag mark used, the significance mark, the ID parsers of the measured
    generators."""
    used = sorted({f for row in rows for c in row.cells.values() for f in c.flags},
                  key=list(FLAGS).index)
    text = latex_escape if latex else str
    lines = [f"{FLAGS[f][1 if latex else 0]} {text(f)} = {text(FLAGS[f][2])}" for f in used]
    if sig_legend:
        lines.append(f"{SIG_MARK[1 if latex else 0]} {text(sig_legend)}")
    parsers: dict[str, set[str]] = {}
    for row in rows:
        for cell in row.cells.values():
            if cell.id_parser:
                parsers.setdefault(cell.id_parser, set()).add(row.model)
    if len(parsers) == 1:
        lines.append(text(f"ID parser: {next(iter(parsers))}"))
    elif parsers:
        lines.append(text("ID parser: " + "; ".join(
            f"{name} ({', '.join(sorted(models))})" for name, models in sorted(parsers.items()))))
    return lines


def _markdown(domains: list[str], rows: list[Row], marks: dict[tuple[int, str], str],
              ci: bool, sig_legend: str) -> str:
    wide = _grid(domains, rows, marks, latex=False, ci=ci)
    body: list[list[str]] = []
    group = None
    for i, row in enumerate(rows):
        if row.group != group:
            group = row.group
            body.append([f"*{group}*"] + [""] * wide.shape[1])
        body.append([row.label.replace("|", r"\|"), *wide.loc[i]])
    heads = ["Method", *(f"{d} {m}" for d, m in wide.columns)]
    table = tabulate(body, heads, tablefmt="pipe", disable_numparse=True,
                     colalign=("left", *["right"] * wide.shape[1]))
    legend = _legend(rows, latex=False, sig_legend=sig_legend)
    return table + "\n" + ("\n" + "\n".join(f"{line}  " for line in legend) + "\n"
                            if legend else "")


def _latex(domains: list[str], rows: list[Row], marks: dict[tuple[int, str], str],
           ci: bool, sig_legend: str) -> str:
    wide = _grid(domains, rows, marks, latex=True, ci=ci)
    wide.index = pd.MultiIndex.from_tuples([(row.group, row.label) for row in rows])
    legend = _legend(rows, latex=True, sig_legend=sig_legend)
    styler = wide.style.format_index(escape="latex", axis=0).format_index(escape="latex",
                                                                          axis=1)
    return styler.to_latex(
        hrules=True, multicol_align="c", multirow_align="t", clines="skip-last;data",
        column_format="ll" + "rr" * len(domains),
        caption="; ".join(legend) if legend else None,
    )


def _csv(domains: list[str], rows: list[Row]) -> str:
    cells = _cells(rows)
    for column in ("source", "retriever", "model", "setting"):
        cells[column] = [getattr(rows[i], column) for i in cells["row"]]
    cells["flags"] = [";".join(f) for f in cells["flags"]]
    for column, source in (("hr@1", "hr1_ci"), ("valid_ratio", "vr_ci")):
        for end, name in enumerate(("low", "high")):
            cells[f"{column}_{name}"] = ["" if i is None else repr(i[end]) for i in cells[source]]
    cells["significant"] = ["1" if s else "" for s in cells["significant"]]
    for column in ("hr@1", "valid_ratio"):  # full precision, as Python writes floats
        cells[column] = ["" if v is None else repr(float(v)) for v in cells[column]]
    order = {d: k for k, d in enumerate(domains)}
    cells = cells.assign(at=cells["domain"].map(order)).sort_values(["row", "at"], kind="stable")
    return cells.to_csv(columns=list(CSV_COLUMNS), index=False, lineterminator="\n")


def render(
    results: Iterable[Payload], fmt: str, *, with_paper: bool = False, rank_paper: bool = False,
    ci: bool = False, significant: Collection[tuple[str, str, str]] = (), sig_legend: str = "",
) -> str:
    """Render ``iter_results(...)`` output as a markdown, LaTeX or CSV table (CSV always holds
    the intervals and the significance column)."""
    if fmt not in FORMATS:
        raise BenchError(f"unknown table format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    domains, rows = build(results, with_paper=with_paper, significant=significant)
    if fmt == "csv":
        return _csv(domains, rows)
    marks = _marks(rows, domains, rank_paper)
    return (_markdown if fmt == "markdown" else _latex)(domains, rows, marks, ci, sig_legend)
