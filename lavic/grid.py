"""The paper's learning-rate x weight-decay grid (Section 5.1: stage 1 and stage 2 alike), one
implementation for ``bench lavic distill`` and ``bench lavic finetune``.

Every point trains to the end in ``OUT/grid/lr..-wd..`` (re-running the command resumes each
point from its last checkpoint); the point with the best validation value (ties: the earlier
point of the command line) is then copied to ``OUT`` -- its ``spec.json``, ``adapter/`` and, for
stage 2, ``stage1/`` -- so that ``OUT`` reads as that one finished run (``--stage1 OUT``,
``--checkpoint OUT``), and ``OUT/result.json`` lists every point. ``OUT/grid/spec.json`` holds
the points: a folder trained on another grid, or holding a single run, is refused.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bench.core.errors import BenchError
from bench.core.options import validate
from bench.execution.store import write_json_atomic
from lavic.settings import TrainingConfig
from lavic.store.checkpoint import ADAPTER_DIR, SPEC_FILE, STAGE1_COPY
from lavic.training import RESULT_FILE, write_spec

GRID = ("learning_rate", "weight_decay")
GRID_DIR = "grid"

C = TypeVar("C", bound=TrainingConfig)


def grid_points(schema: type[C], lrs: Sequence[float], wds: Sequence[float],
                raw: dict[str, Any], where: str) -> list[C]:
    """One checked configuration per (learning rate, weight decay) point; the other options
    in ``raw`` (nested ``lora`` values completed from the schema's defaults) are shared."""
    default = schema()
    configs = []
    for lr, wd in itertools.product(lrs or [default.learning_rate],
                                    wds or [default.weight_decay]):
        values = {**raw, "learning_rate": lr, "weight_decay": wd}
        if "lora" in values:
            values["lora"] = {**vars(default.lora), **values["lora"]}
        configs.append(validate(schema, values, where))
    return configs


def point_name(config: TrainingConfig) -> str:
    return f"lr{config.learning_rate:g}-wd{config.weight_decay:g}"


def _publish(point: Path, out: Path) -> None:
    """Copy a finished point's run (adapter, stage-1 copy, spec last) into ``out``."""
    for name in (ADAPTER_DIR, STAGE1_COPY):
        if not (point / name).is_dir():
            continue
        staged = out / f".{name}.tmp"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(point / name, staged)
        shutil.rmtree(out / name, ignore_errors=True)
        staged.rename(out / name)
    staged_spec = out / f".{SPEC_FILE}.tmp"
    shutil.copyfile(point / SPEC_FILE, staged_spec)
    os.replace(staged_spec, out / SPEC_FILE)


def run_grid(out: Path, configs: Sequence[C], train: Callable[[C, Path], dict[str, Any]], *,
             metric: str, greater: bool, spec: dict[str, Any]) -> dict[str, Any]:
    """``train(config, folder)`` for one point into ``out``, or for every point of a grid
    (``spec`` names it) under ``out/grid/``; returns the result of the run ``out`` holds, a
    grid's with ``best_point`` and ``grid`` (each point's ``metric``) added."""
    grid = out / GRID_DIR
    if len(configs) == 1:
        if grid.is_dir():
            raise BenchError("the output folder holds a grid", where=str(out),
                             hint="repeat the grid's --lr / --wd, or use a new output folder")
        return train(configs[0], out)
    if (out / SPEC_FILE).is_file() and not (grid / SPEC_FILE).is_file():
        raise BenchError("the output folder holds a single run, not a grid",
                         where=str(out / SPEC_FILE), hint="use a new output folder")
    write_spec(grid, {**spec, "points": [c.model_dump(mode="json") for c in configs]},
               what="grid")
    runs = {point_name(c): train(c, grid / point_name(c)) for c in configs}
    worst = -float("inf") if greater else float("inf")
    scores = {name: worst if r[metric] is None else r[metric] for name, r in runs.items()}
    best = (max if greater else min)(scores, key=scores.__getitem__)
    _publish(grid / best, out)
    result = {**runs[best], "best_point": best,
              "grid": {name: r[metric] for name, r in runs.items()}}
    write_json_atomic(out / RESULT_FILE, result)
    return result
