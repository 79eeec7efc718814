"""From a clean clone on the synthetic world: `bench lavic tiny | distill | finetune`, then
`bench run --model lavic --checkpoint DIR`; the lr x wd grid (shared with distill) keeps the
best point by validation HR@1; stage-2 mistakes are one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import lavic.stage2.finetune
from bench.core.errors import BenchError
from bench.task.data.synthetic import synthesize
from lavic.grid import grid_points, point_name, run_grid
from lavic.stage2.config import FinetuneConfig
from lavic.stage2.finetune import Validator
from lavic.store.checkpoint import identity
from lavic.training import write_spec
from tests.lavic.test_cli import FAST, bench, one_error

STAGE2 = ["--max-steps", "2", "--eval-steps", "1", "--batch-size", "2", "--limit", "3"]


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stages")
    world = synthesize(root / "world", seed=0, size="small")
    paths = {"world": world, "tiny": root / "tiny", "s1": root / "s1", "s2": root / "s2",
             "described": root / "d"}
    assert bench("lavic", "tiny", "--out", paths["tiny"])[0] == 0
    code, _, err = bench("lavic", "describe", "--data-dir", world, "--out", root / "d",
                         "--descriptions", "release", "--limit", "3")
    assert code == 0, err
    code, _, err = bench("lavic", "distill", "--descriptions", root / "d", "--model-path",
                         paths["tiny"], "--out", paths["s1"], *FAST)
    assert code == 0, err
    return paths


def test_finetune_then_bench_run(stages: dict[str, Path], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    code, out, err = bench("lavic", "finetune", "--data-dir", stages["world"], "--domain",
                           "all_beauty", "--model-path", stages["tiny"], "--stage1",
                           stages["s1"], "--out", stages["s2"], "--views", "1", *STAGE2)
    assert code == 0, err
    spec = json.loads((stages["s2"] / "spec.json").read_text())
    assert spec["config"]["views"] == 1 and spec["stage1"] != "none"
    assert "best validation HR@1" in out
    code, out, err = bench("run", "--dataset", "reddit-amazon", "--data-dir", stages["world"],
                           "--domain", "all_beauty", "--retriever", "dataset:st", "--model",
                           "lavic", "--model-path", stages["tiny"], "--checkpoint",
                           stages["s2"], "--limit", "2", "--out", tmp_path / "run",
                           "--no-progress")
    assert code == 0, err
    [found] = (tmp_path / "run").rglob("results.json")
    assert json.loads(found.read_text())["n_conversations"] == 2


@pytest.mark.parametrize(("extra", "fragments"), [
    (["--variant", "lavic"], ("variant lavic needs the stage-1 output folder", "--stage1")),
    (["--variant", "bogus"], ("bench lavic finetune", "variant")),
    (["--images-per-item", "2"], ("images_per_item = 2",)),
])
def test_finetune_mistakes_are_one_line(stages: dict[str, Path], tmp_path: Path,
                                        extra: list[str], fragments: tuple[str, ...]) -> None:
    code, _, err = bench("lavic", "finetune", "--data-dir", stages["world"], "--domain",
                         "all_beauty", "--model-path", stages["tiny"], "--out", tmp_path,
                         *STAGE2, *extra)
    one_error(code, err, *fragments)


def test_finetune_grid_trains_every_point_and_keeps_the_best_by_hr1(
        stages: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    # validation HR@1 per point and evaluation, known by construction: lr 1e-3 peaks first
    table = {1e-4: [0.25, 0.5], 1e-3: [0.75, 0.25]}
    training: list[float] = []
    evaluated: list[float] = []
    real = lavic.stage2.finetune.finetune

    def finetune(*args: Any, **kwargs: Any) -> dict[str, Any]:
        training.append(args[5].learning_rate)
        return real(*args, **kwargs)

    def hit_rate(self: Validator, model: Any, device: Any) -> float:
        evaluated.append(training[-1])
        return table[training[-1]][evaluated.count(training[-1]) - 1]

    monkeypatch.setattr(lavic.stage2.finetune, "finetune", finetune)
    monkeypatch.setattr(Validator, "hit_rate", hit_rate)
    out = tmp_path / "s2"
    args = ["lavic", "finetune", "--data-dir", stages["world"], "--domain", "all_beauty",
            "--model-path", stages["tiny"], "--stage1", stages["s1"], "--out", out,
            "--views", "1", *STAGE2, "--lr", "1e-4", "--lr", "1e-3", "--wd", "0"]
    code, stdout, err = bench(*args)
    assert code == 0, err
    assert training == [1e-4, 1e-3] and evaluated == [1e-4, 1e-4, 1e-3, 1e-3]
    result = json.loads((out / "result.json").read_text())
    assert result["grid"] == {"lr0.0001-wd0": 0.5, "lr0.001-wd0": 0.75}
    assert result["best_point"] == "lr0.001-wd0" and result["best_hr@1"] == 0.75
    assert result["best_checkpoint"] == "checkpoint-1"  # the point's best epoch, not its last
    assert "best validation HR@1 0.75 (generate)" in stdout
    best = out / "grid" / "lr0.001-wd0"
    for name in ("spec.json", "adapter/adapter_model.safetensors",
                 "stage1/adapter_model.safetensors"):  # OUT reads as the best point's run
        assert (out / name).read_bytes() == (best / name).read_bytes()
    assert json.loads((out / "spec.json").read_text())["config"]["learning_rate"] == 1e-3
    assert identity(out) == identity(best)  # `bench run --checkpoint OUT` takes it
    assert bench(*args)[0] == 0  # resumed: every point had finished
    assert training == [1e-4, 1e-3] * 2 and len(evaluated) == 4
    one_error(*bench(*args, "--lr", "1e-2")[::2], "different grid run", "grid/spec.json")
    one_error(*bench(*args[:-6], "--lr", "1e-4")[::2], "holds a grid", "--lr / --wd")


def _point(values: dict[float, float | None], trained: list[str]) -> Any:
    """A stand-in for one stage run: writes a spec and an adapter, returns ``values[lr]``."""

    def train(config: FinetuneConfig, folder: Path) -> dict[str, Any]:
        trained.append(point_name(config))
        spec = {"stage": "finetune", "lr": config.learning_rate}
        write_spec(folder, spec, what="stage-2")
        (folder / "adapter").mkdir(exist_ok=True)
        (folder / "adapter" / "weights").write_text(point_name(config))
        return {**spec, "best": values[config.learning_rate]}

    return train


@pytest.mark.parametrize(("values", "greater", "best"), [
    ({1e-4: 0.5, 1e-3: 0.75, 1e-2: None}, True, "lr0.001-wd0"),  # None: never validated
    ({1e-4: 0.5, 1e-3: 0.5, 1e-2: 0.25}, True, "lr0.0001-wd0"),  # a tie: the earlier point
    ({1e-4: 3.0, 1e-3: 2.0, 1e-2: None}, False, "lr0.001-wd0"),  # perplexity: the lowest
])
def test_run_grid_copies_the_best_point_into_out(tmp_path: Path, values: dict[float, Any],
                                                 greater: bool, best: str) -> None:
    configs = grid_points(FinetuneConfig, list(values), [0], {"seed": 3}, "here")
    assert [(c.learning_rate, c.weight_decay, c.seed) for c in configs] == [
        (lr, 0, 3) for lr in values]
    trained: list[str] = []
    result = run_grid(tmp_path, configs, _point(values, trained), metric="best",
                      greater=greater, spec={"stage": "finetune-grid"})
    assert trained == ["lr0.0001-wd0", "lr0.001-wd0", "lr0.01-wd0"]
    assert result["best_point"] == best and result["lr"] == float(best[2:-4])
    assert result["grid"] == {f"lr{lr:g}-wd0": v for lr, v in values.items()}
    assert json.loads((tmp_path / "result.json").read_text()) == result
    assert (tmp_path / "adapter" / "weights").read_text() == best
    assert json.loads((tmp_path / "spec.json").read_text())["lr"] == result["lr"]


def test_run_grid_refuses_to_mix_a_grid_and_a_single_run(tmp_path: Path) -> None:
    values = {1e-4: 0.5, 1e-3: 0.75}
    grid = grid_points(FinetuneConfig, list(values), [], {}, "here")
    run_grid(tmp_path / "grid", grid, _point(values, []), metric="best", greater=True, spec={})
    with pytest.raises(BenchError, match="holds a grid"):
        run_grid(tmp_path / "grid", grid[:1], _point(values, []), metric="best",
                 greater=True, spec={})
    run_grid(tmp_path / "one", grid[:1], _point(values, []), metric="best", greater=True,
             spec={})
    assert not (tmp_path / "one" / "grid").exists()
    with pytest.raises(BenchError, match="holds a single run, not a grid"):
        run_grid(tmp_path / "one", grid, _point(values, []), metric="best", greater=True,
                 spec={})


@pytest.mark.parametrize(("command", "extra", "fragments"), [
    ("finetune", ["--candidate-lists", "bogus"],
     ("no candidates_bogus lists", "all_beauty/train.jsonl",
      "it has candidates_gpt_large, candidates_st", "--candidate-lists gpt_large")),
    ("finetune", ["--max-steps", "0"], ("bench lavic finetune", "max_steps = 0",
                                        "-1 (train for epochs) or a positive number")),
    ("finetune", ["--max-steps", "-2"], ("max_steps = -2",)),
    ("distill", ["--max-steps", "0"], ("bench lavic distill", "max_steps = 0")),
])
def test_bad_input_is_one_line(stages: dict[str, Path], tmp_path: Path, command: str,
                               extra: list[str], fragments: tuple[str, ...]) -> None:
    if command == "finetune":
        args = ["--data-dir", stages["world"], "--domain", "all_beauty", "--variant",
                "no-images", *STAGE2]
    else:
        args = ["--descriptions", stages["described"]]
    code, _, err = bench("lavic", command, *args, "--model-path", stages["tiny"], "--out",
                         tmp_path / "out", *extra)
    one_error(code, err, *fragments)
    assert not (tmp_path / "out").exists()  # refused before any work
