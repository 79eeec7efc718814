"""Runs a grid of cells (retrievers x models x domains) and writes each cell's results.

Resume is per conversation: predictions are appended (fsync'd) batch by batch, so a run killed
at any moment and started again skips what is done and ends with the same predictions and
metrics as an uninterrupted run. Everything that can change a cell's output is in its config
hash -- the run spec, the dataset's content hash, the retriever's and generator's identities
(weights hashes, hub revisions) and the model-name mapping they resolved -- so a cell directory
produced by different inputs is refused, never silently reused or mixed with this one.

A grid first retrieves every cell's candidates, then runs the cells model by model: each
generator is built once and its weights loaded at most once per run, one model at a time.
Under data parallelism each rank runs a shard of every cell and rank 0 gathers the records
over torch.distributed (``bench/execution/parallel.py``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.core import config, registry
from bench.core.config import NO_MODEL, RunSpec, spec_hash
from bench.core.context import BuildContext
from bench.core.env import cache_root, rank_and_size
from bench.core.errors import BenchError, Warnings
from bench.execution import parallel, progress, ranking
from bench.execution.cells import (
    CELL_SPEC_FILE,
    Finished,
    cell_config,
    cell_flags,
    results_payload,
    reuse,
    summary_line,
)
from bench.execution.response_cache import NEVER_CACHED, ResponseCache
from bench.execution.store import (
    PREDICTIONS_FILE,
    RESULTS_FILE,
    CellKey,
    PredictionLog,
    write_json_atomic,
)
from bench.task.data.release import ReleaseDataset
from bench.task.data.schema import Conversation, Item, Split
from bench.task.images import image_problem
from bench.task.prompt import presented_order
from bench.task.protocols import Generator, Request, Retriever
from bench.task.stats import RESAMPLES


@dataclass(frozen=True)
class _Retrieved:
    """What a cell needs of its retriever once the candidates exist (the index is let go)."""

    identity: str
    ordered: bool


@dataclass(frozen=True, eq=False)
class _Job:
    """A cell still to run, with everything the retrieval stage produced for it."""

    key: CellKey
    config: dict[str, Any]
    split: Split
    retrieved: _Retrieved
    generator: Generator | None
    candidates: list[list[str]]
    warnings: Warnings
    timings: dict[str, float]


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
    resamples: int = RESAMPLES  # bootstrap resamples behind results.json's intervals
    order_salt: str = ""  # another seeded candidate order (``--permutations``)
    spent_usd: float = 0.0
    estimates: list[dict[str, Any]] = field(default_factory=list)
    _generators: dict[str, tuple[Generator, dict[str, str]]] = field(default_factory=dict)
    _image_problems: dict[Path | None, str | None] = field(default_factory=dict)
    _stale: dict[CellKey, str] = field(default_factory=dict)  # unreadable results.json, why

    @functools.cached_property
    def responses(self) -> ResponseCache:
        """One per run, so shards already read stay in memory across batches and cells."""
        return ResponseCache(cache_root() / "responses")

    def _context(self, kind: str, name: str) -> BuildContext:
        return BuildContext(options=self.spec.table(kind, name), models=self.spec.models_table,
                            seed=self.spec.seed, where=self.spec.where(kind, name),
                            prices=config.thaw(self.spec.prices))

    def _generator(self, name: str) -> tuple[Generator, dict[str, str]]:
        """Built once per grid (loading stays lazy), with the model names it resolved."""
        if name not in self._generators:
            ctx = self._context("generators", name)
            self._generators[name] = (registry.generators.build(name, ctx), ctx.models.resolved)
        return self._generators[name]

    def _retriever(self, name: str) -> tuple[Retriever, dict[str, str]]:
        ctx = self._context("retrievers", name)
        return registry.retrievers.build(name, ctx), ctx.models.resolved

    def build_dataset(self) -> ReleaseDataset:
        return registry.datasets.build(self.spec.dataset, self.spec.dataset_options)

    def run(self) -> list[dict[str, Any]]:
        out = Path(self.spec.out)
        if out.exists() and not out.is_dir():
            raise BenchError("the output folder is a file", where=str(out),
                             hint="pass a folder (new or from an earlier run) to --out")
        registry.load_plugins()
        config.check_entries(self.spec)
        if rank_and_size()[1] > 1:
            parallel.connect(self.gather_timeout_s)
        dataset = self.build_dataset()
        domains = self.spec.domains or dataset.domains()
        if not domains:
            raise BenchError("no {domain}/{split}.jsonl files here", where=str(dataset.root),
                             hint="pass the release's data/ folder to --data-dir")
        planned: list[dict[str, Any] | _Job] = []
        for domain in domains:
            planned.extend(self._plan_domain(dataset, domain))
        ran = self._run_jobs([p for p in planned if isinstance(p, _Job)])
        payloads = [ran.get(id(p)) if isinstance(p, _Job) else p for p in planned]
        if "responses" in self.__dict__:  # only when a cache was used
            for line in self.responses.warnings.lines():
                self.echo(line)
        return [p for p in payloads if p is not None]

    def _run_jobs(self, jobs: list[_Job]) -> dict[int, dict[str, Any]]:
        """The cells to run, model by model: a generator is built once per grid, its weights
        load on its first uncached request and are let go (``release()``, if it has one) after
        its last cell, so a grid of several models holds one model's weights at a time."""
        ran: dict[int, dict[str, Any]] = {}
        for model in dict.fromkeys(job.key.model for job in jobs):
            mine = [job for job in jobs if job.key.model == model]
            for job in mine:
                payload = self._run_cell(job.key, job.config, job.split, job.retrieved,
                                         job.generator, job.candidates, job.warnings,
                                         timings=job.timings)
                if payload is not None:
                    ran[id(job)] = payload
                    self.echo(summary_line(payload))
            release = getattr(mine[0].generator, "release", None)
            if callable(release):
                release()
        return ran

    def _plan_domain(self, dataset: ReleaseDataset, domain: str) -> list[dict[str, Any] | _Job]:
        """This domain's finished cells (payloads) and the cells still to run (jobs, with their
        candidates retrieved), in retriever x model order."""
        started = time.perf_counter()
        warnings = Warnings()
        split = dataset.load(domain, self.spec.split, warnings=warnings)
        if self.spec.limit is not None:
            split.conversations = split.conversations[: self.spec.limit]
        if not split.conversations:
            raise BenchError(
                f"no usable conversation in {domain}/{self.spec.split}"
                + (f" ({', '.join(f'{k} x{n}' for k, n in warnings.as_dict().items())})"
                   if warnings.counts else ""),
                where=str(dataset.split_path(domain, self.spec.split)),
                hint="a split file holds one JSON conversation per line; "
                "`bench data validate` shows what is wrong",
            )
        if self.spec.strict and warnings.counts:
            raise BenchError(
                f"{sum(warnings.counts.values())} data problems in {domain}/{self.spec.split} "
                f"({', '.join(warnings.as_dict())})",
                hint="fix the data, or drop --strict to count them as warnings",
            )
        load_s = time.perf_counter() - started
        for line in warnings.lines():  # once per domain, not once per cell
            self.echo(line)
        planned: list[dict[str, Any] | _Job] = []
        for retriever_name in self.spec.retrievers:
            started = time.perf_counter()
            retriever, retriever_models = self._retriever(retriever_name)
            cells = []
            for model in self.spec.models:
                key = CellKey(split.dataset, domain, split.split, retriever_name, model)
                generator, models = (None, {}) if model == NO_MODEL else self._generator(model)
                config = cell_config(self.spec, key, split, retriever, generator,
                                     {**retriever_models, **models})
                if self.order_salt:  # a permuted order is another cell's output
                    config = {**config, "order_salt": self.order_salt}
                cells.append((key, generator, config, self._reuse(key, config)))
            if all(done for *_, done in cells):
                planned.extend(done for *_, done in cells)
                continue
            retrieval = Warnings()
            candidates = self._retrieve(retriever_name, retriever, split, retrieval)
            for line in retrieval.lines():
                self.echo(line)
            retrieval.merge(warnings)
            retrieval_s = time.perf_counter() - started
            retrieved = _Retrieved(retriever.identity, retriever.ordered)  # the index goes
            timings = {"load_s": load_s, "retrieval_s": retrieval_s}
            planned.extend(
                done or _Job(key, config, split, retrieved, generator, candidates, retrieval,
                             timings)
                for key, generator, config, done in cells
            )
        return planned

    def _reuse(self, key: CellKey, config: dict[str, Any]) -> dict[str, Any] | None:
        """A finished cell's payload (``bench/execution/cells.py``); remembers why an unreadable
        results.json is recomputed, for that cell's warnings."""
        found = reuse(key.directory(Path(self.spec.out)), config, overwrite=self.overwrite)
        if found.stale:
            self._stale[key] = found.stale
        return found.payload

    def _retrieve(
        self, name: str, retriever: Retriever, split: Split, warnings: Warnings
    ) -> list[list[str]]:
        if retriever.ordered and not len(split.catalog):
            raise BenchError(
                f"no item metadata for domain {split.domain}: retriever {name!r} has no titles "
                "to index",
                where=str(split.root),
                hint="add item2meta_train.json from the release, or use dataset:st / "
                "dataset:gpt_large",
            )
        retriever.index(split.catalog)
        # An ordered retriever's longer list is kept for the report's Recall@k curves.
        depth = max(self.spec.top_k, ranking.DEPTH) if retriever.ordered else self.spec.top_k
        ranked = retriever.search(split.conversations, depth)
        if retriever.ordered and not self.dry_run and rank_and_size()[0] == 0:
            key = CellKey(split.dataset, split.domain, split.split, name, NO_MODEL)
            ranking.write(key.directory(Path(self.spec.out)).parent,
                          [c.id for c in split.conversations], ranked)
        candidates = [list(r[: self.spec.top_k]) for r in ranked]
        for conv, cands in zip(split.conversations, candidates, strict=True):
            if not cands:
                warnings.add("empty_candidates", f"{name} returned no candidates", where=conv.id)
        return candidates

    def _items(self, conv_id: str, split: Split, asins: Sequence[str], warnings: Warnings,
               images: bool) -> tuple[Item, ...]:
        """The presented items; with ``images``, one the shared image rule rejects is shown
        as missing (``image_path=None``) in every generator alike, and counted."""
        items = []
        for asin in asins:
            item = split.catalog.get(asin)
            if item is None:
                warnings.add("missing_metadata", f"candidate {asin} has no title or image",
                             where=conv_id)
                item = Item(asin=asin, title="")
            if images:
                if item.image_path not in self._image_problems:
                    self._image_problems[item.image_path] = image_problem(item.image_path)
                problem = self._image_problems[item.image_path]
                if problem:
                    warnings.add("bad_image", f"candidate {asin}: {problem}", where=conv_id)
                    item = replace(item, image_path=None)
            items.append(item)
        return tuple(items)

    def _run_cell(
        self,
        key: CellKey,
        cell_spec: dict[str, Any],
        split: Split,
        retriever: _Retrieved,
        generator: Generator | None,
        candidates: list[list[str]],
        split_warnings: Warnings,
        timings: dict[str, float],
    ) -> dict[str, Any] | None:
        """Run (or resume) one cell; None when nothing is written (dry run, non-zero rank)."""
        started = time.perf_counter()
        cell_dir = key.directory(Path(self.spec.out))
        config_hash = spec_hash(cell_spec)
        warnings = Warnings()  # this cell's own; printed at its end
        if key in self._stale:
            warnings.add("stale_results", self._stale.pop(key), where=str(cell_dir / RESULTS_FILE))
        by_id = dict(zip((c.id for c in split.conversations), candidates, strict=True))
        presented = {
            c.id: presented_order(by_id[c.id], self.spec.seed, c.id, self.spec.keep_order,
                                  self.order_salt)
            for c in split.conversations
        }
        # Built (and their problems counted) for every conversation, so resume cannot change
        # the warning counts.
        images = bool(getattr(generator, "reads_images", False))
        shown = {} if generator is None else {
            c.id: self._items(c.id, split, presented[c.id], warnings, images)
            for c in split.conversations
        }
        if self.dry_run:
            self._estimate(key, split, generator, shown)
            return None
        write_json_atomic(cell_dir / CELL_SPEC_FILE, {"config_hash": config_hash, **cell_spec})
        rank, size = rank_and_size()
        log = PredictionLog(cell_dir / PREDICTIONS_FILE, rank, size)
        for line in log.bad_lines:
            where, _, problem = line.rpartition(": ")
            warnings.add("bad_prediction_line", f"{problem}; predicted again", where=where)
        mine = [c for i, c in enumerate(split.conversations) if i % size == rank]
        pending = [c for c in mine if c.id not in log.done
                   or log.done[c.id].get("failure") in NEVER_CACHED]
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
        parallel.gather_records(log.done, [c.id for c in mine],
                                [c.id for c in split.conversations], str(cell_dir),
                                self.gather_timeout_s)
        if rank != 0:
            log.close()
            return None
        records = log.finalize([c.id for c in split.conversations])
        timings = {**timings, "generation_s": time.perf_counter() - gen_started}
        flags = cell_flags(records, warnings)
        for line in warnings.lines():
            self.echo(line)
        warnings.merge(split_warnings)
        finished = Finished(key, split, cell_spec, records, by_id, generator, retriever.ordered)
        payload = results_payload(finished, self.spec, warnings=warnings, flags=flags,
                                  resamples=self.resamples, timings=timings, started=started)
        write_json_atomic(cell_dir / RESULTS_FILE, payload)
        return payload

    def _check_budget(self, done: int) -> None:
        if self.max_cost is not None and self.spent_usd >= self.max_cost:
            raise BenchError(
                f"spent ${self.spent_usd:.4f}, the --max-cost budget of ${self.max_cost:.4f}, "
                f"after {done} conversations of this cell",
                hint="finished conversations are saved; raise --max-cost and re-run to resume",
            )

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
        retriever: _Retrieved,
    ) -> list[dict[str, Any]]:
        if generator is None:
            choices = [
                (by_id[c.id][0] if by_id[c.id] and retriever.ordered else None, "", {}, None)
                for c in batch
            ]
        else:
            answers = self.responses.answer(generator, [Request(c, shown[c.id]) for c in batch])
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
