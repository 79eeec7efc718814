"""The pooled column of the miniature's Table 7 and its pooled paired tests.

``bench table`` and ``bench compare`` work per domain (a cell is one dataset/domain/split); the
issue's bar is on the pooled test pairs, so this pools each method's three domain cells, with
the harness's own pieces: :func:`bench.stats.cell_intervals` for HR@1 / ValidRatio and their
bootstrap intervals over conversations, :func:`bench.compare.paired` (exact McNemar on per-pair
hits, paired bootstrap of the difference) and :func:`bench.stats.holm`. Pooling needs the same
pairing as the per-domain tests: each domain's cells must pass :func:`bench.compare.unpaired`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.compare import CellHits, paired, read_cells, unpaired
from bench.errors import BenchError
from bench.results import cell_records, iter_results
from bench.stats import cell_intervals, holm, per_conversation


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
