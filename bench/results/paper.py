"""The LaViC paper's reported HR@1 / ValidRatio (Tables 3-8), as typed rows.

The numbers live in ``bench/defaults/reported.csv`` (one row per table, method and domain; see
``bench/defaults/reported.md`` for provenance) so that tables and checks compare against data, not
against numbers copied into code. The file ships inside the package, so `bench table --with-paper`
works from a wheel install in any folder.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bench.core.config import NO_MODEL
from bench.core.errors import BenchError

REPORTED_CSV = Path(__file__).resolve().parents[1] / "defaults" / "reported.csv"
COLUMNS = ("table", "retriever", "setting", "method", "domain", "hr@1", "valid_ratio", "note")
SETTINGS = ("retrieval", "title", "title+image", "ablation", "training")

#: The release ships the paper's candidate lists (``candidates_st`` = SBERT,
#: ``candidates_gpt_large`` = OpenAI-emb large), so generative runs over them compare with the
#: paper's SBERT / OpenAI-emb rows. Not used for retrieval-alone rows: shipped lists are unordered.
CANDIDATE_ALIASES = {"dataset:st": "sbert", "dataset:gpt_large": "openai-emb"}


@dataclass(frozen=True)
class ReportedRow:
    """One reported number pair. ``hr1``/``valid_ratio`` are None for "-" and o.o.m. cells."""

    table: int
    retriever: str
    setting: str
    method: str
    domain: str
    hr1: float | None
    valid_ratio: float | None
    note: str = ""


def _number(value: str, where: str) -> float | None:
    if value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise BenchError(f"not a number: {value!r}", where=where) from None


def load(path: Path = REPORTED_CSV) -> tuple[ReportedRow, ...]:
    """Parse the CSV, failing on a malformed line rather than dropping it."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise BenchError(
                    f"columns {reader.fieldnames}, expected {list(COLUMNS)}", where=str(path)
                )
            rows = []
            for line, rec in enumerate(reader, start=2):
                where = f"{path}:{line}"
                if rec["setting"] not in SETTINGS:
                    raise BenchError(f"unknown setting {rec['setting']!r}", where=where)
                rows.append(
                    ReportedRow(
                        table=int(rec["table"]),
                        retriever=rec["retriever"],
                        setting=rec["setting"],
                        method=rec["method"],
                        domain=rec["domain"],
                        hr1=_number(rec["hr@1"], where),
                        valid_ratio=_number(rec["valid_ratio"], where),
                        note=rec["note"],
                    )
                )
    except OSError as exc:
        raise BenchError(f"cannot read the paper's numbers: {exc}", where=str(path)) from None
    return tuple(rows)


@cache
def reported() -> tuple[ReportedRow, ...]:
    """The shipped CSV, parsed once per process."""
    return load()


def unique(rows: tuple[ReportedRow, ...]) -> tuple[ReportedRow, ...]:
    """Rows repeated across tables (Table 3's retrievers in Table 5, LaViC in Tables 3/4/7)
    collapse to their first appearance, so a number is shown once."""
    seen: set[tuple[str, str, str, float | None, float | None]] = set()
    kept = []
    for row in sorted(rows, key=lambda r: r.table):
        fact = (row.retriever, row.method, row.domain, row.hr1, row.valid_ratio)
        if fact not in seen:
            seen.add(fact)
            kept.append(row)
    return tuple(kept)


def lookup(retriever: str, setting: str, method: str, domain: str) -> ReportedRow | None:
    """The reported row for a key, from the lowest-numbered table that has it."""
    key = (retriever, setting, method, domain)
    rows = (r for r in sorted(reported(), key=lambda r: r.table))
    return next((r for r in rows if (r.retriever, r.setting, r.method, r.domain) == key), None)


IMAGE_SUFFIX = "+img"  # registered image variants of generators, e.g. "llava-1.6+img"
#: Generator names whose paper rows carry another method name (Table 7's LaViC ablations).
METHOD_ALIASES = {"lavic-no-images": "lavic-wo-images",
                  "lavic-no-distill": "lavic-wo-distillation"}


def matching(retriever: str, model: str) -> tuple[ReportedRow, ...]:
    """The paper's rows for a measured (retriever, model): its own ranking when model is
    "none", else every setting of that generator over the same candidate retriever."""
    if model == NO_MODEL:
        return tuple(
            r for r in unique(reported()) if r.setting == "retrieval" and r.method == retriever
        )
    candidates = CANDIDATE_ALIASES.get(retriever, retriever)
    method, images = (model[: -len(IMAGE_SUFFIX)], True) if model.endswith(IMAGE_SUFFIX) else (
        model, False)
    method = METHOD_ALIASES.get(method, method)
    rows = [
        r
        for r in unique(reported())
        if r.setting != "retrieval" and r.retriever == candidates and r.method == method
    ]
    # "llava-1.6" is the paper's titles-only row, "llava-1.6+img" its title + image row;
    # a method the paper ran in one setting only (LaViC) matches that setting either way.
    settings = {r.setting for r in rows}
    if settings >= {"title", "title+image"}:
        wanted = "title+image" if images else "title"
        rows = [r for r in rows if r.setting == wanted]
    return tuple(rows)
