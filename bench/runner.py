"""Runs a grid of cells (retrievers x models x domains) and writes each cell's results.

Resume is per conversation: predictions are appended (fsync'd) batch by batch, so a run killed
at any moment and started again skips what is done and ends with the same predictions and
metrics as an uninterrupted run. Everything that can change a cell's output is in its spec
hash; a cell directory produced by a different spec is never silently mixed with this one.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import random
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench import progress, registry
from bench.config import RunSpec, spec_hash
from bench.context import BuildContext
from bench.data.release import ReleaseDataset
from bench.data.schema import Conversation, Item, Split
from bench.errors import BenchError, Warnings
from bench.metrics import compute_all
from bench.models import cache_root
from bench.protocols import Choice, Generator, Request, Retriever
from bench.response_cache import ResponseCache
from bench.results import (
    PREDICTIONS_FILE,
    RESULTS_FILE,
    SCHEMA_VERSION,
    CellKey,
    PredictionLog,
    write_json_atomic,
)

NO_MODEL = "none"
CELL_SPEC_FILE = "cell.json"
_PACKAGES = ("lavic-bench", "torch", "transformers", "sentence-transformers", "bm25s", "numpy",
             "openai", "peft", "pillow")


@functools.cache
def package_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


@functools.cache
def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def presented_order(candidates: Sequence[str], seed: int, conv_id: str, keep: bool) -> list[str]:
    """The order shown to a generator: a shuffle seeded by (run seed, conversation id), so it
    does not depend on batch size, on resume, or on which other conversations are run."""
    order = list(candidates)
    if not keep:
        random.Random(f"{seed}:{conv_id}").shuffle(order)
    return order


def _sum_usage(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for r in records:
        for key, value in (r.get("usage") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
    return total


def _failures(records: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        if r.get("failure"):
            counts[r["failure"]] = counts.get(r["failure"], 0) + 1
    return dict(sorted(counts.items()))


def world() -> tuple[int, int]:
    """(rank, world size) as set by ``accelerate launch`` / torchrun; (0, 1) otherwise."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


@dataclass
class Grid:
    """One invocation of ``bench run``."""

    spec: RunSpec
    progress: bool = True
    overwrite: bool = False
    echo: Callable[[str], None] = print
    dry_run: bool = False
    max_cost: float | None = None
    gather_timeout_s: float = 3600.0
    spent_usd: float = 0.0
    estimates: list[dict[str, Any]] = field(default_factory=list)

    @functools.cached_property
    def responses(self) -> ResponseCache:
        """One per run, so shards already read stay in memory across batches and cells."""
        return ResponseCache(cache_root() / "responses")

    def _context(self, options: Any) -> BuildContext:
        return BuildContext(options=options, models=self.spec.models_table, seed=self.spec.seed)

    def _generator(self, name: str) -> Generator:
        options = {**self.spec.generator_options.get(name, {}), "prices": self.spec.prices}
        return registry.generators.build(name, self._context(options))

    def build_dataset(self) -> ReleaseDataset:
        return registry.datasets.build(self.spec.dataset, self.spec.dataset_options)

    def run(self) -> list[dict[str, Any]]:
        registry.load_plugins()
        for name in self.spec.retrievers:
            registry.retrievers.entry(name)  # fail on a typo before any work
        for name in self.spec.models:
            if name != NO_MODEL:
                registry.generators.entry(name)
        dataset = self.build_dataset()
        payloads = []
        for domain in self.spec.domains or dataset.domains():
            payloads.extend(self._run_domain(dataset, domain))
        return payloads

    def _run_domain(self, dataset: ReleaseDataset, domain: str) -> list[dict[str, Any]]:
        started = time.perf_counter()
        warnings = Warnings()
        split = dataset.load(domain, self.spec.split, warnings=warnings)
        if self.spec.limit is not None:
            split.conversations = split.conversations[: self.spec.limit]
        if self.spec.strict and warnings.counts:
            raise BenchError(
                f"{sum(warnings.counts.values())} data problems in {domain}/{self.spec.split} "
                f"({', '.join(warnings.as_dict())})",
                hint="fix the data, or drop --strict to count them as warnings",
            )
        load_s = time.perf_counter() - started
        payloads = []
        for retriever_name in self.spec.retrievers:
            cells = {
                model: CellKey(split.dataset, domain, split.split, retriever_name, model)
                for model in self.spec.models
            }
            done = {m: self._finished(k, domain) for m, k in cells.items()}
            if all(done.values()):
                payloads.extend(p for p in done.values() if p)
                continue
            retriever, candidates, retrieval_s = self._retrieve(retriever_name, split, warnings)
            for model, key in cells.items():
                if done[model]:
                    payloads.append(done[model])
                    continue
                payload = self._run_cell(
                    key, split, retriever, candidates, warnings,
                    timings={"load_s": load_s, "retrieval_s": retrieval_s},
                )
                if payload is not None:
                    payloads.append(payload)
                    self.echo(_summary(payload))
        return payloads

    def _cell_hash(self, key: CellKey, domain: str) -> str:
        return spec_hash(self.spec.cell_spec(domain, key.retriever, key.model))

    def _finished(self, key: CellKey, domain: str) -> dict[str, Any] | None:
        """A finished cell's payload when its spec hash matches; raise on a foreign one."""
        cell_dir = key.directory(Path(self.spec.out))
        spec_file = cell_dir / CELL_SPEC_FILE
        if not spec_file.exists():
            return None
        stored = json.loads(spec_file.read_text(encoding="utf-8"))
        if stored.get("config_hash") != self._cell_hash(key, domain):
            if self.overwrite:
                for name in (CELL_SPEC_FILE, RESULTS_FILE, PREDICTIONS_FILE):
                    (cell_dir / name).unlink(missing_ok=True)
                return None
            raise BenchError(
                "this cell was produced by a different configuration",
                where=str(cell_dir),
                hint="use another --out, or --overwrite to discard it",
            )
        results = cell_dir / RESULTS_FILE
        return json.loads(results.read_text(encoding="utf-8")) if results.exists() else None

    def _retrieve(
        self, name: str, split: Split, warnings: Warnings
    ) -> tuple[Retriever, list[list[str]], float]:
        started = time.perf_counter()
        retriever: Retriever = registry.retrievers.build(
            name, self._context(self.spec.retriever_options.get(name, {}))
        )
        if retriever.ordered and not len(split.catalog):
            raise BenchError(
                f"no item metadata for domain {split.domain}: retriever {name!r} has no titles "
                "to index",
                where=str(split.root),
                hint="add item2meta_train.json from the release, or use dataset:st / "
                "dataset:gpt_large",
            )
        retriever.index(split.catalog)
        candidates = retriever.search(split.conversations, self.spec.top_k)
        for conv, cands in zip(split.conversations, candidates, strict=True):
            if not cands:
                warnings.add("empty_candidates", f"{name} returned no candidates", where=conv.id)
        return retriever, candidates, time.perf_counter() - started

    def _items(self, split: Split, asins: Sequence[str], warnings: Warnings) -> tuple[Item, ...]:
        items = []
        for asin in asins:
            item = split.catalog.get(asin)
            if item is None:
                warnings.add("missing_metadata", f"candidate {asin} has no title or image")
                item = Item(asin=asin, title="")
            elif item.image_path is None:
                warnings.add("missing_image", f"candidate {asin} has no image file")
            items.append(item)
        return tuple(items)

    def _run_cell(
        self,
        key: CellKey,
        split: Split,
        retriever: Retriever,
        candidates: list[list[str]],
        split_warnings: Warnings,
        timings: dict[str, float],
    ) -> dict[str, Any] | None:
        """Run (or resume) one cell; None when nothing is written (dry run, non-zero rank)."""
        started = time.perf_counter()
        cell_dir = key.directory(Path(self.spec.out))
        cell_spec = self.spec.cell_spec(split.domain, key.retriever, key.model)
        config_hash = spec_hash(cell_spec)
        warnings = Warnings(echo=False)
        warnings.merge(split_warnings)
        by_id = dict(zip((c.id for c in split.conversations), candidates, strict=True))
        presented = {
            c.id: presented_order(by_id[c.id], self.spec.seed, c.id, self.spec.keep_order)
            for c in split.conversations
        }
        generator = None if key.model == NO_MODEL else self._generator(key.model)
        # Built (and their problems counted) for every conversation, so resume cannot change
        # the warning counts.
        shown = {} if generator is None else {
            c.id: self._items(split, presented[c.id], warnings) for c in split.conversations
        }
        if self.dry_run:
            self._estimate(key, split, generator, shown)
            return None
        write_json_atomic(cell_dir / CELL_SPEC_FILE, {"config_hash": config_hash, **cell_spec})
        rank, size = world()
        log = PredictionLog(cell_dir / PREDICTIONS_FILE, rank, size)
        mine = [c for i, c in enumerate(split.conversations) if i % size == rank]
        pending = [c for c in mine if c.id not in log.done]
        gen_started = time.perf_counter()
        bar = progress.bar(total=len(mine), initial=len(mine) - len(pending),
                           desc=f"{split.domain} {key.retriever}/{key.model}", unit="conv",
                           quiet=not self.progress, leave=False)
        try:
            step = max(1, self.spec.batch_size)
            for start in range(0, len(pending), step):
                self._check_budget(len(log.done))
                batch = pending[start : start + step]
                records = self._predict(batch, by_id, presented, shown, split, generator,
                                        retriever)
                log.append(records)
                self.spent_usd += sum((r["usage"] or {}).get("cost_usd", 0.0) for r in records)
                bar.update(len(batch))
        finally:
            bar.close()
        if rank != 0:
            log.close()
            return None
        self._gather(log, split, cell_dir)
        records = log.finalize([c.id for c in split.conversations])
        generation_s = time.perf_counter() - gen_started
        metrics = compute_all(records, self.spec.top_k, ordered=retriever.ordered)
        if generator is None:
            metrics["valid_ratio"] = None
            if not retriever.ordered:  # a shipped, unordered list has no "top" item
                metrics["hr@1"] = metrics["hr@1_conv"] = None
        candidate_hash = spec_hash({c.id: by_id[c.id] for c in split.conversations})
        payload = {
            "schema_version": SCHEMA_VERSION,
            "dataset": {"name": split.dataset, "content_hash": split.content_hash,
                        "root": str(split.root)},
            "domain": split.domain,
            "split": split.split,
            "retriever": key.retriever,
            "retriever_identity": retriever.identity,
            "model": key.model,
            "model_identity": generator.identity if generator else NO_MODEL,
            "metrics": metrics,
            "n_conversations": len(records),
            "n_pairs": sum(len(r["gt_items"]) for r in records),
            "failures": _failures(records),
            "usage": _sum_usage(records),
            "generator_info": _info(records),
            "candidate_set_hash": candidate_hash,
            "config": cell_spec,
            "config_hash": config_hash,
            "seed": self.spec.seed,
            "limit": self.spec.limit,
            "top_k": self.spec.top_k,
            "warnings": warnings.as_dict(),
            "timings": {**timings, "generation_s": generation_s,
                        "total_s": timings["load_s"] + timings["retrieval_s"]
                        + time.perf_counter() - started},
            "versions": package_versions(),
            "git_commit": git_commit(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_json_atomic(cell_dir / RESULTS_FILE, payload)
        return payload

    def _check_budget(self, done: int) -> None:
        if self.max_cost is not None and self.spent_usd >= self.max_cost:
            raise BenchError(
                f"spent ${self.spent_usd:.4f}, the --max-cost budget of ${self.max_cost:.4f}, "
                f"after {done} conversations of this cell",
                hint="finished conversations are saved; raise --max-cost and re-run to resume",
            )

    def _gather(self, log: PredictionLog, split: Split, cell_dir: Path) -> None:
        """Rank 0 waits until every rank's shard holds its conversations."""
        deadline = time.monotonic() + self.gather_timeout_s
        while True:
            log.refresh()
            missing = [c.id for c in split.conversations if c.id not in log.done]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{len(missing)} conversations never arrived from the other ranks "
                    f"(first: {missing[0]})",
                    where=str(cell_dir),
                    hint="their shards are kept; re-run to finish them",
                )
            time.sleep(1.0)

    def _estimate(
        self,
        key: CellKey,
        split: Split,
        generator: Generator | None,
        shown: dict[str, tuple[Item, ...]],
    ) -> None:
        row: dict[str, Any] = {"domain": split.domain, "retriever": key.retriever,
                               "model": key.model, "conversations": len(split.conversations)}
        estimate = getattr(generator, "estimate", None)
        if estimate is not None:
            row.update(estimate([Request(c, shown[c.id]) for c in split.conversations]))
        self.estimates.append(row)

    def _predict(
        self,
        batch: Sequence[Conversation],
        by_id: dict[str, list[str]],
        presented: dict[str, list[str]],
        shown: dict[str, tuple[Item, ...]],
        split: Split,
        generator: Generator | None,
        retriever: Retriever,
    ) -> list[dict[str, Any]]:
        if generator is None:
            choices = [
                (by_id[c.id][0] if by_id[c.id] and retriever.ordered else None, "", {}, None)
                for c in batch
            ]
        else:
            answers = self._answer(generator, [Request(c, shown[c.id]) for c in batch])
            choices = [(a.item_id, a.raw, a.usage, a.failure) for a in answers]
        return [
            {
                "id": c.id,
                "candidates": by_id[c.id],
                "presented": presented[c.id] if generator else by_id[c.id],
                "prediction": pred,
                "gt_items": list(split.answers[c.id].gt_items),
                "raw": raw,
                "failure": failure,
                "usage": usage,
            }
            for c, (pred, raw, usage, failure) in zip(batch, choices, strict=True)
        ]


    def _answer(self, generator: Generator, requests: list[Request]) -> list[Choice]:
        """Answers from the response cache where possible, from the generator otherwise."""
        keyer = getattr(generator, "cache_key", None)
        keys = [keyer(r) for r in requests] if keyer else []
        answers: list[Choice | None] = (
            [self.responses.get(k) for k in keys] if keys else [None] * len(requests)
        )
        missing = [i for i, a in enumerate(answers) if a is None]
        if missing:
            fresh = generator.recommend([requests[i] for i in missing])
            if len(fresh) != len(missing):
                raise BenchError(
                    f"generator returned {len(fresh)} choices for {len(missing)} requests",
                    hint="a generator must answer every request, in order",
                )
            for i, choice in zip(missing, fresh, strict=True):
                answers[i] = choice
            if keys:
                self.responses.put_many((keys[i], answers[i]) for i in missing)
        return [a for a in answers if a is not None]


def _info(records: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """Distinct string facts the generator reported (dated snapshot, system fingerprint)."""
    found: dict[str, set[str]] = {}
    for r in records:
        for key, value in (r.get("usage") or {}).items():
            if isinstance(value, str):
                found.setdefault(key, set()).add(value)
    return {k: sorted(v) for k, v in sorted(found.items())}


def _summary(payload: dict[str, Any]) -> str:
    m = payload["metrics"]
    recall = m[f"recall@{payload['top_k']}"]

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}"

    return (
        f"{payload['domain']:>15} {payload['retriever']:>12} {payload['model']:>10}  "
        f"HR@1 {fmt(m['hr@1'])}  VR {fmt(m['valid_ratio'])}  "
        f"R@{payload['top_k']} {fmt(recall)}  "
        f"n={payload['n_conversations']}/{payload['n_pairs']}"
    )
