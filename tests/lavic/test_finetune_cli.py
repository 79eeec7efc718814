"""From a clean clone on the synthetic world: `bench lavic tiny | distill | finetune`, then
`bench run --model lavic --checkpoint DIR`; stage-2 mistakes are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.data.synthetic import synthesize
from tests.lavic.test_cli import FAST, bench, one_error

STAGE2 = ["--max-steps", "2", "--eval-steps", "1", "--batch-size", "2", "--limit", "3"]


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stages")
    world = synthesize(root / "world", seed=0, size="small")
    paths = {"world": world, "tiny": root / "tiny", "s1": root / "s1", "s2": root / "s2"}
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
