"""`bench lavic plan` against hand counts: images listed from the folders, examples counted in
the JSON lines, steps = ceil(examples / (batch x accumulation)), grid points, tokens of the
character tokenizer (one per character), parameters of the tiny and the real model."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, get_args

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.task.data.synthetic import synthesize
from lavic.cost import GPUS, Sizes, forward
from lavic.model.arch import real_config
from lavic.model.tiny import tiny_folder
from lavic.plan import PlanConfig, evenly
from lavic.stage1.prompt import describe_prompt

DOMAIN = "all_beauty"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(tmp_path_factory.mktemp("world"), seed=0, size="small")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    folder = tmp_path_factory.mktemp("tiny")
    model = tiny_folder(folder)
    return folder, sum(p.numel() for p in model.parameters())


def plan(world: Path, tiny: tuple[Path, int], *options: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["lavic", "plan", "--data-dir", str(world), "--domain",
                                      DOMAIN, "--model-path", str(tiny[0]), *options],
                                prog_name="bench")
    return result.exit_code, result.stdout, result.stderr


def stages(world: Path, tiny: tuple[Path, int], *options: str) -> dict[str, Any]:
    code, out, err = plan(world, tiny, "--format", "json", *options)
    assert code == 0, err
    payload = json.loads(out)
    return {**payload, **{st["stage"]: st for st in payload["stages"]}}


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def test_counts_steps_and_tokens_are_the_hand_counts(world: Path, tiny: tuple[Path, int]
                                                     ) -> None:
    got = stages(world, tiny, "--descriptions", "release", "--sample", "5000", "--dtype",
                 "fp32", "--distill-batch-size", "3", "--distill-grad-accum", "2",
                 "--distill-epochs", "2", "--distill-lr", "1e-4", "--distill-lr", "1e-5",
                 "--distill-wd", "0", "--distill-wd", "0.1", "--distill-wd", "0.01",
                 "--finetune-batch-size", "4", "--finetune-max-steps", "7")
    assert "describe" not in got  # the release's descriptions: nothing to generate
    meta = json.loads((world / "item2meta_train.json").read_text(encoding="utf-8"))
    described = [(item["title"], text.strip()) for item in meta.values()
                 for name, text in item["image_descriptions_llava_cleaned"].items()
                 if text.strip() and (world / "train_images" / name).is_file()]
    valid = [r for r in lines(world / "item2meta_valid.jsonl")
             if (world / "valid_images" / r["image_name"]).is_file()]
    assert len(described) == len(list((world / "train_images").glob("*.jpg")))
    distill = got["distill"]
    assert distill["examples"] == {"train": len(described), "valid": len(valid)}
    assert distill["images"] == len(described) + len(valid)
    per_epoch = math.ceil(len(described) / (3 * 2))
    assert distill["steps_per_epoch"] == per_epoch and distill["grid_points"] == 2 * 3
    assert distill["steps"] == 6 * math.ceil(2 * per_epoch)
    # <s> + the Table 10 text + 5 view slots + the description + </s>, one token a character
    tokens = [min(1 + len(describe_prompt(title, "")) + 5 + len(text) + 1, 1024)
              for title, text in described]
    assert distill["tokens"]["max"] == max(tokens)
    assert distill["tokens"]["mean"] == pytest.approx(sum(tokens) / len(tokens))
    conversations = lines(world / DOMAIN / "train.jsonl")
    pairs = sum(len(c["gt_items"]) for c in conversations if c.get("candidates_st"))
    finetune = got["finetune"]
    assert finetune["examples"] == {"train": pairs,
                                    "valid": len(lines(world / DOMAIN / "valid.jsonl"))}
    assert finetune["steps_per_epoch"] == math.ceil(pairs / 4) and finetune["steps"] == 7
    test = lines(world / DOMAIN / "test.jsonl")
    shown = {a for c in test for a in c["candidates_st"][:10]}
    run = got["bench run"]
    assert run["examples"]["train"] == len(test) and run["images"] == len(shown)
    assert got["parameters"]["total"] == tiny[1]
    assert distill["memory_gb"]["weights"] == pytest.approx(tiny[1] * 4 / 1e9)  # fp32
    # training FLOPs at 0.4 x 989 TFLOP/s (the H100 default)
    assert distill["hours"] * 3600 * 0.4 * 989e12 == pytest.approx(distill["flops"])


def test_entire_tokens_cost_exactly_their_slots_and_are_refused_over_the_limit(
        world: Path, tiny: tuple[Path, int]) -> None:
    wide = ["--finetune-max-length", "100000"]
    lavic = stages(world, tiny, *wide)
    entire = stages(world, tiny, "--finetune-variant", "entire-tokens", *wide)
    # 10 candidates x (5 views x (2 x 2 patches + [CLS]) - 5 [CLS] slots) = 200 tokens more
    for name in ("finetune", "bench run"):
        assert entire[name]["tokens"]["mean"] == pytest.approx(
            lavic[name]["tokens"]["mean"] + 200)
        assert entire[name]["tokens"]["max"] == lavic[name]["tokens"]["max"] + 200
    images = entire["finetune"]["images"]
    assert entire["finetune"]["cache_gb"] == pytest.approx(images * 25 * 32 * 2 / 1e9)  # bf16
    assert lavic["finetune"]["cache_gb"] == pytest.approx(images * 5 * 32 * 2 / 1e9)
    # the describe stage precedes stage 1 with the model's own descriptions (128 new tokens,
    # then </s>, stand in for the ones not written yet)
    assert [st["stage"] for st in lavic["stages"]] == ["describe", "distill", "finetune",
                                                       "bench run"]
    assert lavic["describe"]["images"] == lavic["distill"]["images"]
    assert lavic["describe"]["steps"] == math.ceil(lavic["describe"]["images"] / 4)
    meta = json.loads((world / "item2meta_train.json").read_text(encoding="utf-8"))
    longest = max(len(describe_prompt(item["title"], "")) for item in meta.values())
    assert lavic["distill"]["tokens"]["max"] == 1 + longest + 5 + 129
    code, out, err = plan(world, tiny, "--finetune-variant", "entire-tokens",
                          "--finetune-max-length", "1000", "--sample", "7")
    assert code == 0, err
    assert "finetune: 7 of 7 sampled prompts exceed the input limit" in out
    assert "bench run: 7 of 7 sampled prompts exceed the input limit" in out
    assert out.startswith("| stage ") and "h100 h / epoch" in out
    first = stages(world, tiny, "--distill-images-per-item", "1", "--sample", "7")
    assert first["distill"]["examples"]["train"] == len(list(
        (world / "train_images").glob("*_0.jpg")))
    assert first["distill"]["tokens"]["sampled"] == 7


def test_the_real_model_on_the_meta_device() -> None:
    sizes = Sizes.of(real_config(), 8, 8)
    assert sizes.total == 7_566_747_648 and sizes.view_tokens == 577
    # 32 x (q, o: 4096^2; k, v: 4096 x 1024; gate, up, down: 4096 x 14336; 2 norms) + norm
    assert sizes.llm == 32 * (2 * 4096 ** 2 + 2 * 4096 * 1024 + 3 * 4096 * 14336
                              + 2 * 4096) + 4096
    assert sizes.head == 32064 * 4096
    assert (sizes.stage1, sizes.stage2) == (3_645_440, 20_971_520)
    assert forward(10, 2, 4, 3) == 2 * 10 * 3 + 2 * 2 * 9 * 4
    assert forward(10, 2, 4, 3, causal=False) == 2 * 10 * 3 + 4 * 2 * 9 * 4
    assert set(get_args(PlanConfig.model_fields["gpu"].annotation)) == set(GPUS)
    assert evenly(list(range(10)), 3) == [0, 3, 6] and evenly([0, 1, 2], 5) == [0, 1, 2]


@pytest.mark.parametrize(("options", "fragments"), [
    (["--gpu", "x100"], ["gpu"]),
    (["--finetune-max-steps", "0"], ["max_steps"]),
    (["--sample", "0"], ["sample"]),
])
def test_mistakes_are_one_line(world: Path, tiny: tuple[Path, int], options: list[str],
                               fragments: list[str]) -> None:
    code, _, err = plan(world, tiny, *options)
    errors = [x for x in err.splitlines() if x.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert all(f in errors[0] for f in fragments), errors[0]


def test_a_missing_data_dir_is_one_line(tmp_path: Path, tiny: tuple[Path, int]) -> None:
    code, _, err = plan(tmp_path / "absent", tiny)
    assert code == 2 and "data directory does not exist" in err and "Traceback" not in err
