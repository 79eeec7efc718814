"""The miniature's printed report: Table 7's pooled column, its pooled paired tests, and the
page that puts them beside ``bench table --ci``, ``bench compare``, the cuts and the probe.

``bench table`` and ``bench compare`` work per domain (a cell is one dataset/domain/split); the
issue's bar is on the pooled test pairs, so this pools each method's three domain cells, with
the harness's own pieces: :func:`bench.task.stats.cell_intervals` for HR@1 / ValidRatio and
their bootstrap intervals over conversations, :func:`bench.results.compare.paired` (exact
McNemar on per-pair hits, paired bootstrap of the difference) and
:func:`bench.task.stats.holm`. Pooling needs the same pairing as the per-domain tests: each
domain's cells must pass :func:`bench.results.compare.unpaired`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError
from bench.execution.store import iter_results
from bench.results.compare import CellHits, paired, read_cells, unpaired
from bench.results.frames import cell_records
from bench.task.stats import cell_intervals, holm, per_conversation
from lavic.miniature.preset import GENERATORS, PROBED, Preset


def pooled_table(runs: Path) -> tuple[str, dict[str, Any]]:
    """Markdown rows (method, pooled HR@1 [95%], pooled ValidRatio [95%], pairs) and the
    numbers, one row per (retriever, model) over every domain under ``runs``."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for file, payload in iter_results([runs]):
        records = [{**r, "id": f"{payload['domain']}/{r['id']}"} for r in cell_records(file)]
        if payload["model"] == "none":  # the retriever alone answers with its top 1
            if (payload.get("metrics") or {}).get("retriever_hr@1") is None:
                continue  # unordered lists (the release's): no top 1
            records = [{**r, "prediction": (r["candidates"] or [None])[0]} for r in records]
        grouped[(payload["retriever"], payload["model"])] += records
    lines = ["| Method | pooled HR@1 [95%] | pooled ValidRatio [95%] | pairs |",
             "|:--|--:|--:|--:|"]
    numbers: dict[str, Any] = {}
    for (retriever, model), records in sorted(grouped.items(), key=lambda kv: kv[0][1] != "none"):
        per = per_conversation(records)
        pairs = float(per["pairs"].sum())
        hr1 = per["hits"].sum() / pairs if pairs else None
        valid = None if model == "none" else per["valid"].mean()
        ci = cell_intervals(records, {"hr@1": hr1, "valid_ratio": valid})
        name = retriever if model == "none" else model
        numbers[name] = {"hr@1": hr1, "hr@1_ci": ci["hr@1"], "valid_ratio": valid,
                         "valid_ratio_ci": ci["valid_ratio"], "pairs": int(pairs),
                         "conversations": len(records)}

        def cell(value: float | None, interval: list[float] | None) -> str:
            if value is None:
                return "-"
            return f"{value:.4f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]"
                                     if interval else "")

        lines.append(f"| {name} | {cell(hr1, ci['hr@1'])} | "
                     f"{cell(valid, ci['valid_ratio'])} | {int(pairs)} |")
    return "\n".join(lines) + "\n", numbers


def pooled_cells(paths: list[Path]) -> dict[str, CellHits]:
    """Each model's domain cells merged into one (conversation ids prefixed by the domain);
    every domain's pair of cells must be comparable."""
    by_model: dict[str, list[CellHits]] = defaultdict(list)
    for cell in read_cells(paths):
        by_model[cell.key.model].append(cell)
    models = list(by_model)
    for other in models[1:]:
        for a, b in zip(by_model[models[0]], by_model[other], strict=True):
            reason = unpaired(a, b)
            if reason or a.key.domain != b.key.domain:
                raise BenchError(f"cannot pool {a.key.domain}: {reason or 'domains differ'}",
                                 where="bench lavic miniature")
    merged = {}
    for model, cells in by_model.items():
        pairs = {f"{c.key.domain}/{conv}": v for c in cells for conv, v in c.pairs.items()}
        hits = [h for _, v in pairs.values() for h in v]
        merged[model] = replace(cells[0], key=replace(cells[0].key, domain="pooled"),
                                hr1=sum(hits) / max(len(hits), 1), pairs=pairs,
                                candidate_set_hash="pooled", content_hash="pooled")
    return merged


def pooled_tests(paths: list[Path], reference: str, others: list[str]) -> tuple[str, list[Any]]:
    """``reference`` against each of ``others`` on the pooled pairs: exact McNemar, Holm over
    these comparisons; markdown and the comparisons."""
    cells = pooled_cells(paths)
    done = [paired(cells[reference], cells[o]) for o in others]
    done = [replace(c, p_holm=p) for c, p in zip(done, holm([c.mcnemar.p for c in done]),
                                                  strict=True)]
    lines = ["| A | B | HR@1 A | HR@1 B | Delta [95%] | A only | B only | p (exact McNemar) "
             "| p (Holm) |", "|:--|:--|--:|--:|--:|--:|--:|--:|--:|"]
    for c in done:
        lines.append(f"| {c.a.model} | {c.b.model} | {c.hr1_a:.4f} | {c.hr1_b:.4f} | "
                     f"{c.diff.estimate:+.4f} [{c.diff.low:+.3f}, {c.diff.high:+.3f}] | "
                     f"{c.mcnemar.a_only} | {c.mcnemar.b_only} | {c.mcnemar.p:.3g} | "
                     f"{c.p_holm:.3g} |")
    return "\n".join(lines) + "\n", done


def write_report(out: Path, chosen: Preset, table: str, compared: str) -> str:
    """``out/pooled.json`` and ``out/table.md``: the cuts, ``bench table --ci`` (``table``),
    the pooled column, the pooled tests and the bar's verdict, ``bench compare``
    (``compared``) and the stage-1 probe; returns the page."""
    runs = out / "runs"
    mine = [runs / g for g in GENERATORS.values()]
    pooled, pooled_numbers = pooled_table(runs)
    tests, done = pooled_tests(mine, "lavic", ["lavic-no-images", "lavic-no-distill"])
    (out / "pooled.json").write_text(json.dumps({
        "table": pooled_numbers,
        "tests": [{"a": c.a.model, "b": c.b.model, "hr1_a": c.hr1_a, "hr1_b": c.hr1_b,
                   "diff": [c.diff.estimate, c.diff.low, c.diff.high],
                   "a_only": c.mcnemar.a_only, "b_only": c.mcnemar.b_only, "p": c.mcnemar.p,
                   "p_holm": c.p_holm} for c in done]}, indent=2) + "\n", encoding="utf-8")
    bar = done[0]
    verdict = ("MET" if bar.hr1_a > bar.hr1_b and bar.p_holm < 0.01 else "NOT MET")
    curves_dir = out / "curves"
    probe = json.loads((curves_dir / "stage1-attributes.json").read_text(encoding="utf-8"))
    lines = ["## LaViC in miniature (Table 7 layout)" + (" -- SMOKE RUN" if chosen.smoke else ""),
             "", "Cuts and departures (the same for every row):",
             *[f"- {c}" for c in chosen.cuts()], "",
             "Rows: `bm25` / `sbert` alone rank the whole catalog (their top 1; the shipped "
             "lists are unordered); `lexical` (text-only) and `oracle` (true attributes) pick "
             "from the same cut lists as the LaViC rows.", "",
             table, "", "Pooled over the three domains (bootstrap over conversations):", "",
             pooled, "", "Pooled paired tests (exact McNemar on per-pair hits, Holm over "
             "these two):", "", tests, "",
             f"The bar (LaViC beats w/o images, pooled, p < 0.01): {verdict} "
             f"(HR@1 {bar.hr1_a:.4f} vs {bar.hr1_b:.4f}, Holm p {bar.p_holm:.3g})", "",
             "Per-domain paired tests (`bench compare`: exact McNemar, Holm over all):", "",
             compared, "",
             "Stage-1 probe, held-out images, attribute named correctly "
             f"({probe['items']} items): own image "
             + ", ".join(f"{a} {probe['own'][a]:.2f}" for a in PROBED)
             + "; images shuffled across items "
             + ", ".join(f"{a} {probe['shuffled'][a]:.2f}" for a in PROBED), "",
             f"Learning curves: {curves_dir}/*.csv", ""]
    report = "\n".join(lines)
    (out / "table.md").write_text(report, encoding="utf-8")
    return report
