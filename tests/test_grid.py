"""A grid builds each generator once, loads its weights once and holds one model at a time;
data-parallel ranks hand their records to rank 0 over torch.distributed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from bench.core import registry
from bench.execution.runner import Grid
from bench.task.protocols import Choice, Request
from tests.test_runner import PLUGIN, cell, spec, stable

DOMAINS = ("all_beauty", "amazon_home")
RETRIEVERS = ("toy-overlap", "dataset:st")
MODELS = ("heavy-a", "none", "heavy-b")


class Heavy:
    """A generator whose "weights" load on its first call and go on ``release()``."""

    events: ClassVar[list[tuple[str, str]]] = []
    loaded: ClassVar[set[str]] = set()
    peak: ClassVar[int] = 0

    def __init__(self, name: str) -> None:
        self.name = name
        self.identity = f"{name}/v1"
        self.weights = False
        Heavy.events.append(("build", name))

    def recommend(self, requests: Sequence[Request]) -> list[Choice]:
        if not self.weights:
            self.weights = True
            Heavy.loaded.add(self.name)
            Heavy.peak = max(Heavy.peak, len(Heavy.loaded))
            Heavy.events.append(("load", self.name))
        return [Choice(r.candidates[-1].asin, raw=r.candidates[-1].asin) for r in requests]

    def release(self) -> None:
        if self.weights:
            self.weights = False
            Heavy.loaded.discard(self.name)
            Heavy.events.append(("release", self.name))


@pytest.fixture(autouse=True)
def _heavy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("heavy-a", "heavy-b"):
        if name not in registry.generators:
            registry.generators.register(name, lambda ctx, n=name: Heavy(n), "test",
                                         origin=__file__)
    Heavy.events, Heavy.loaded, Heavy.peak = [], set(), 0


def test_a_grid_loads_each_model_once_and_one_at_a_time(release: Path, tmp_path: Path) -> None:
    registry.include(PLUGIN)
    grid_spec = spec(release, tmp_path / "o", domains=DOMAINS, retrievers=RETRIEVERS,
                     models=MODELS)
    payloads = Grid(grid_spec, progress=False, echo=lambda _: None).run()
    assert [(p["domain"], p["retriever"], p["model"]) for p in payloads] == [
        (d, r, m) for d in DOMAINS for r in RETRIEVERS for m in MODELS]
    assert Heavy.events == [("build", "heavy-a"), ("build", "heavy-b"),
                            ("load", "heavy-a"), ("release", "heavy-a"),
                            ("load", "heavy-b"), ("release", "heavy-b")]
    assert Heavy.peak == 1
    Heavy.events.clear()
    again = Grid(grid_spec, progress=False, echo=lambda _: None).run()  # all cells finished
    assert [stable(p) for p in again] == [stable(p) for p in payloads]
    assert [e for e in Heavy.events if e[0] == "load"] == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_ranks_gather_to_the_single_process_result(release: Path,
                                                            tmp_path: Path) -> None:
    registry.include(PLUGIN)
    single = Grid(spec(release, tmp_path / "single"), progress=False).run()[0]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-port", str(free_port()), "-m", "bench.cli", "run", "--dataset",
         "reddit-amazon", "--data-dir", str(release), "--domain", "all_beauty", "--split",
         "test", "--retriever", "toy-overlap", "--model", "toy-slow", "--batch-size", "2",
         "--include", str(PLUGIN), "--no-progress", "--out", str(tmp_path / "dp")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    merged = json.loads((cell(tmp_path / "dp") / "results.json").read_text())
    assert stable(merged)["metrics"] == stable(single)["metrics"]
    assert not list(cell(tmp_path / "dp").glob("predictions.rank*.jsonl"))
    assert (cell(tmp_path / "dp") / "predictions.jsonl").read_text() == (
        cell(tmp_path / "single") / "predictions.jsonl").read_text()


def test_ranks_without_a_rendezvous_fail_at_once_in_one_line(release: Path,
                                                            tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cli", "run", "--dataset", "reddit-amazon", "--data-dir",
         str(release), "--retriever", "toy-overlap", "--model", "toy-slow", "--include",
         str(PLUGIN), "--no-progress", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
        env={**env, "RANK": "0", "WORLD_SIZE": "2"},
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "torch.distributed cannot start" in proc.stderr and "torchrun" in proc.stderr
    assert not (tmp_path / "o").exists()  # no work before the failure
