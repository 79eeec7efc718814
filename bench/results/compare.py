"""``bench compare``: paired tests between cells that ranked the same pairs from the same
candidates.

Two cells are paired when their ``candidate_set_hash`` (conversation ids and candidate lists)
and dataset content hash are equal: then every (conversation, ground truth) pair was offered to
both, and their hits can be compared pair by pair. For every two paired cells of one
dataset/domain/split the comparison has the exact McNemar test on per-pair hits and the paired
bootstrap difference of HR@1 (A - B; both cells resampled with the same conversations); the
McNemar p-values of the whole call are Holm-adjusted. Two cells of one domain that are not
paired are listed with the reason, never compared.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from tabulate import tabulate

from bench.core.config import NO_MODEL
from bench.core.errors import BenchError
from bench.execution.store import KEY_FIELDS, CellKey, cell_key, iter_results
from bench.results.frames import cell_records, hit
from bench.task.stats import (
    LEVEL,
    RESAMPLES,
    Interval,
    McNemar,
    bootstrap_ratio,
    holm,
    mcnemar_exact,
)

FORMATS = ("markdown", "latex", "csv", "json")


@dataclass(frozen=True)
class CellHits:
    """One cell's per-pair hits, conversation by conversation."""

    key: CellKey
    hr1: float | None
    candidate_set_hash: str | None
    content_hash: str | None
    #: conversation id -> (ground truths, hit per ground truth)
    pairs: dict[str, tuple[tuple[str, ...], tuple[bool, ...]]]

    @classmethod
    def read(cls, file: Path, payload: dict[str, Any]) -> CellHits:
        pairs = {}
        for r in cell_records(file):
            pred = r["prediction"]
            gts = tuple(r["gt_items"])
            pairs[r["id"]] = (gts, tuple(hit(pred, g) for g in gts))
        hr1 = (payload.get("metrics") or {}).get("hr@1")
        return cls(cell_key(payload, file), hr1, payload.get("candidate_set_hash"),
                   (payload.get("dataset") or {}).get("content_hash"), pairs)


def unpaired(a: CellHits, b: CellHits) -> str | None:
    """Why two cells cannot be compared pair by pair, or None when they can."""
    if a.hr1 is None or b.hr1 is None:
        return f"HR@1 is null in {(a if a.hr1 is None else b).key.model}"
    if not a.candidate_set_hash or not b.candidate_set_hash:
        return "no candidate_set_hash (written by an older lavic-bench; re-run the cell)"
    if a.content_hash != b.content_hash:
        return "different dataset content (content_hash differs)"
    if a.pairs.keys() != b.pairs.keys():
        shared = len(a.pairs.keys() & b.pairs.keys())
        return (f"different conversations ({len(a.pairs)} vs {len(b.pairs)}, {shared} shared; "
                "same --limit?)")
    if a.candidate_set_hash != b.candidate_set_hash:
        return f"different candidate sets (retrievers {a.key.retriever} and {b.key.retriever})"
    if any(a.pairs[c][0] != b.pairs[c][0] for c in a.pairs):
        return "different ground truths for the same conversations"
    return None


def aligned(a: CellHits, b: CellHits) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Both cells' per-pair hits in one pair order (A's conversation order)."""
    return (np.array([h for c in a.pairs for h in a.pairs[c][1]], dtype=bool),
            np.array([h for c in a.pairs for h in b.pairs[c][1]], dtype=bool))


@dataclass(frozen=True)
class Comparison:
    """A vs B on their shared pairs; ``diff`` is HR@1(A) - HR@1(B) with its interval."""

    a: CellKey
    b: CellKey
    hr1_a: float
    hr1_b: float
    diff: Interval
    mcnemar: McNemar
    p_holm: float = 1.0


def paired(
    a: CellHits, b: CellHits, *, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL
) -> Comparison:
    """McNemar and the paired bootstrap difference of two paired cells (see ``unpaired``)."""
    order = list(a.pairs)
    hits_a, hits_b = aligned(a, b)
    num = [sum(a.pairs[c][1]) - sum(b.pairs[c][1]) for c in order]
    den = [len(a.pairs[c][0]) for c in order]
    diff = bootstrap_ratio(num, den, resamples=resamples, seed=seed, level=level)
    if diff is None:
        raise BenchError("no ground truth to compare", where="/".join(astuple(a.key)))
    return Comparison(a.key, b.key, float(hits_a.mean()), float(hits_b.mean()), diff,
                      mcnemar_exact(hits_a, hits_b))


@dataclass(frozen=True)
class Refusal:
    a: CellKey
    b: CellKey
    reason: str


def labels(keys: Iterable[CellKey]) -> dict[CellKey, str]:
    """Each cell named by the key fields that vary in this call (all of them if none do)."""
    keys = list(keys)
    varying = [i for i, _ in enumerate(KEY_FIELDS) if len({astuple(k)[i] for k in keys}) > 1]
    return {k: "/".join(astuple(k)[i] for i in varying or range(len(KEY_FIELDS))) for k in keys}


@dataclass(frozen=True)
class CompareReport:
    comparisons: tuple[Comparison, ...]
    refused: tuple[Refusal, ...]
    level: float
    resamples: int
    seed: int

    @property
    def alpha(self) -> float:
        return 1.0 - self.level

    def names(self) -> dict[CellKey, str]:
        """Every cell of the call named by the key fields that vary across the call."""
        return labels([k for c in (*self.comparisons, *self.refused) for k in (c.a, c.b)])

    def frame(self) -> pd.DataFrame:
        """One row per comparison, full precision (CSV and JSON are made from it)."""
        names = self.names()
        rows = [{"a": names[c.a], "b": names[c.b], "hr@1_a": c.hr1_a, "hr@1_b": c.hr1_b,
                 "diff": c.diff.estimate, "diff_low": c.diff.low, "diff_high": c.diff.high,
                 "a_only": c.mcnemar.a_only, "b_only": c.mcnemar.b_only, "p": c.mcnemar.p,
                 "p_holm": c.p_holm, "significant": c.p_holm < self.alpha}
                for c in self.comparisons]
        return pd.DataFrame(rows, columns=["a", "b", "hr@1_a", "hr@1_b", "diff", "diff_low",
                                           "diff_high", "a_only", "b_only", "p", "p_holm",
                                           "significant"])

    def refusal_lines(self) -> list[str]:
        names = self.names()
        return [f"not compared: {names[r.a]} vs {names[r.b]}: {r.reason}" for r in self.refused]

    def caption(self) -> str:
        pct = f"{self.level:.0%}"
        return (f"Delta = HR@1(A) - HR@1(B) with its {pct} paired bootstrap interval over "
                f"conversations ({self.resamples} resamples, seed {self.seed}); p = exact "
                f"McNemar on per-pair hits, Holm-adjusted over {len(self.comparisons)} "
                f"comparisons; * = Holm p < {self.alpha:.2g}")

    def render(self, fmt: str) -> str:
        if fmt not in FORMATS:
            raise BenchError(f"unknown format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
        frame = self.frame()
        if fmt == "csv":
            return frame.to_csv(index=False, lineterminator="\n")
        if fmt == "json":
            return self.to_json() + "\n"
        shown = pd.DataFrame({
            "A": frame["a"], "B": frame["b"],
            "HR@1 A": frame["hr@1_a"].map("{:.4f}".format),
            "HR@1 B": frame["hr@1_b"].map("{:.4f}".format),
            "Delta": frame["diff"].map("{:+.4f}".format),
            f"{self.level:.0%} CI": [f"[{lo:+.4f}, {hi:+.4f}]"
                                     for lo, hi in zip(frame["diff_low"], frame["diff_high"],
                                                       strict=True)],
            "A only": frame["a_only"], "B only": frame["b_only"],
            "p": frame["p"].map("{:.4g}".format),
            "p (Holm)": frame["p_holm"].map("{:.4g}".format),
            "": ["*" if s else "" for s in frame["significant"]],
        })
        if fmt == "latex":
            return shown.style.hide(axis="index").format(escape="latex").format_index(
                escape="latex", axis=1).to_latex(hrules=True, caption=self.caption().replace(
                    "%", r"\%"))
        table = tabulate(shown.values.tolist(), list(shown.columns), tablefmt="pipe",
                         disable_numparse=True,
                         colalign=("left", "left", *["right"] * (shown.shape[1] - 2)))
        return "\n".join([table, "", self.caption(), *self.refusal_lines()]) + "\n"

    def to_json(self) -> str:
        """The comparisons and refusals with full cell keys, for scripts."""
        frame = self.frame().drop(columns=["a", "b"])
        return json.dumps({
            "level": self.level, "resamples": self.resamples, "seed": self.seed,
            "method": "exact McNemar on per-pair hits, Holm-adjusted; paired percentile "
                      "bootstrap over conversations",
            "comparisons": [{"a": _key(c.a), "b": _key(c.b), **row}
                            for c, row in zip(self.comparisons, frame.to_dict("records"),
                                              strict=True)],
            "refused": [{"a": _key(r.a), "b": _key(r.b), "reason": r.reason}
                        for r in self.refused],
        }, indent=2, sort_keys=True, default=_plain)


def _key(key: CellKey) -> dict[str, str]:
    return dict(zip(KEY_FIELDS, astuple(key), strict=True))


def _plain(value: Any) -> Any:
    """numpy scalars (from the frame) as Python numbers."""
    return value.item()


def read_cells(paths: Sequence[str | Path]) -> list[CellHits]:
    """Every cell under ``paths`` with its per-pair hits; a cell listed twice is an error."""
    cells: dict[CellKey, CellHits] = {}
    for file, payload in iter_results(paths):
        cell = CellHits.read(file, payload)
        if cell.key in cells:
            raise BenchError(f"two results for {'/'.join(astuple(cell.key))}", where=str(file),
                             hint="compare one run per cell")
        cells[cell.key] = cell
    if len(cells) < 2:
        raise BenchError(f"{len(cells)} cell(s) under {', '.join(map(str, paths))}",
                         hint="compare needs at least two cells")
    return [cells[k] for k in sorted(cells, key=astuple)]


def compare(
    paths: Sequence[str | Path], *, resamples: int = RESAMPLES, seed: int = 0,
    level: float = LEVEL,
) -> CompareReport:
    """Every two paired cells of one dataset/domain/split, Holm across all of them."""
    if not 0 < level < 1:
        raise BenchError(f"level {level}", hint="pass a confidence level between 0 and 1")
    if resamples < 1:
        raise BenchError(f"resamples {resamples}", hint="pass 1 or more")
    done: list[Comparison] = []
    refused: list[Refusal] = []
    for a, b in itertools.combinations(read_cells(paths), 2):
        if (a.key.dataset, a.key.domain, a.key.split) != (b.key.dataset, b.key.domain,
                                                            b.key.split):
            continue
        reason = unpaired(a, b)
        if reason:
            refused.append(Refusal(a.key, b.key, reason))
        else:
            done.append(paired(a, b, resamples=resamples, seed=seed, level=level))
    adjusted = holm([c.mcnemar.p for c in done])
    done = [replace(c, p_holm=p) for c, p in zip(done, adjusted, strict=True)]
    return CompareReport(tuple(done), tuple(refused), level, resamples, seed)


def significant(
    found: Sequence[tuple[Path, dict[str, Any]]], baseline: str, *, level: float = LEVEL
) -> tuple[set[tuple[str, str, str]], str]:
    """For ``bench table --sig``: the (retriever, model, domain) cells whose per-pair hits
    differ from the baseline row's in the same domain (exact McNemar, Holm-adjusted over every
    test of the table), and the legend line that says so. ``baseline`` names a table row as
    RETRIEVER/MODEL, as a model, or as a retriever for its retriever-alone row."""
    cells = {}
    for file, payload in found:
        key = cell_key(payload, file)
        cells[(key.retriever, key.model, key.domain)] = (file, payload)
    rows = sorted({(r, m) for r, m, _ in cells})
    named = [row for row in rows if baseline in (f"{row[0]}/{row[1]}", row[1])
             or (row[1] == NO_MODEL and row[0] == baseline)]
    if len(named) != 1:
        what = "no row" if not named else f"{len(named)} rows"
        raise BenchError(f"--sig {baseline}: {what} of the table", hint="name a row as "
                         f"RETRIEVER/MODEL, one of {', '.join(f'{r}/{m}' for r, m in rows)}")
    base = named[0]
    tested, skipped = [], 0
    for (retriever, model, domain), cell in sorted(cells.items()):
        if (retriever, model) == base or (*base, domain) not in cells:
            continue
        a, b = CellHits.read(*cells[(*base, domain)]), CellHits.read(*cell)
        if unpaired(a, b):
            skipped += 1
            continue
        tested.append(((retriever, model, domain), mcnemar_exact(*aligned(a, b)).p))
    adjusted = holm([p for _, p in tested])
    marked = {cell for (cell, _), p in zip(tested, adjusted, strict=True) if p < 1.0 - level}
    legend = (f"differs from {'/'.join(base)} in the same domain: exact McNemar on per-pair "
              f"hits, Holm-adjusted p < {1.0 - level:.2g} over {len(tested)} tests"
              + (f" ({skipped} cells with other candidates or conversations not tested)"
                 if skipped else ""))
    return marked, legend
