"""`bench lavic tiny | describe | distill` through the real command line (in-process): what they
write, that they resume, and that every mistake is one ``error: where: what (hint)`` line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.task.data.synthetic import SIZES, synthesize
from lavic.stage1.describe import CACHE_FILE

LIMIT = 3  # training and validation images per smoke run
FAST = ["--max-steps", "2", "--eval-steps", "1", "--batch-size", "2", "--max-length", "512"]


def bench(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], prog_name="bench")
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def one_error(code: int, stderr: str, *fragments: str) -> None:
    lines = [x for x in stderr.splitlines() if x.startswith("error: ")]
    assert code == 2 and len(lines) == 1, stderr
    assert all(f in lines[0] for f in fragments), lines[0]
    assert "Traceback" not in stderr and "╭" not in stderr


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(tmp_path_factory.mktemp("world"), seed=0, size="small")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "model"
    code, stdout, _ = bench("lavic", "tiny", "--out", out)
    assert code == 0 and "parameters" in stdout
    return out


@pytest.fixture(scope="module")
def released(world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("released")
    code, stdout, _ = bench("lavic", "describe", "--data-dir", world, "--out", out,
                            "--descriptions", "release", "--limit", LIMIT)
    assert code == 0, stdout
    return out


def test_release_descriptions_are_the_train_and_valid_files_own(released: Path,
                                                                world: Path) -> None:
    payload = json.loads((released / "descriptions.json").read_text())
    meta = json.loads((world / "item2meta_train.json").read_text())
    valid = [json.loads(x) for x in (world / "item2meta_valid.jsonl").read_text().splitlines()]
    assert payload["source"] == "release" and len(payload["train"]) == LIMIT
    first = next(iter(meta))  # every item has 2-3 photos: the first item's _0 and _1 lead
    assert [(r["asin"], r["index"]) for r in payload["train"][:2]] == [(first, 0), (first, 1)]
    for row in payload["train"]:
        image = Path(row["image"])
        assert image.name == f"{row['asin']}_{row['index']}.jpg"
        assert image.parent == (world / "train_images").resolve()
        assert row["description"] == \
            meta[row["asin"]]["image_descriptions_llava_cleaned"][image.name]
        assert row["description"] != meta[row["asin"]]["description"]
    assert [(Path(r["image"]), r["description"]) for r in payload["valid"]] == [
        ((world / "valid_images" / v["image_name"]).resolve(),
         v["image_description_llava_cleaned"]) for v in valid[:LIMIT]]


def test_describe_caches_every_answer_and_resumes(world: Path, tiny: Path,
                                                  tmp_path: Path) -> None:
    args = ["lavic", "describe", "--data-dir", world, "--model-path", tiny, "--out", tmp_path,
            "--batch-size", "2"]
    assert bench(*args, "--limit", "2")[0] == 0
    first = json.loads((tmp_path / "descriptions.json").read_text())
    cache = tmp_path / CACHE_FILE
    assert len(cache.read_text().splitlines()) == 4
    code, _, stderr = bench(*args, "--limit", "3")
    assert code == 0 and "described 2 new image(s)" in stderr  # only the two new ones
    lines = cache.read_text().splitlines()
    assert len(lines) == 6 and len({json.loads(x)["key"] for x in lines}) == 6
    again = json.loads((tmp_path / "descriptions.json").read_text())
    assert again["train"][:2] == first["train"] and again["source"].startswith("model@")
    assert all(r["description"] for r in again["train"] + again["valid"])


def test_distill_grid_keeps_the_best_point(released: Path, tiny: Path, tmp_path: Path) -> None:
    """OUT holds the adapter of the point whose evaluations, as transformers' Trainer logged
    them (each point's trainer_state.json, not our result.json), reached the lowest validation
    perplexity: the checkpoint of that evaluation, byte for byte."""
    code, stdout, stderr = bench(
        "lavic", "distill", "--descriptions", released, "--model-path", tiny, "--out", tmp_path,
        "--lr", "1e-4", "--lr", "5e-2", "--wd", "0", "--views", "1", "--lora-r", "2", *FAST)
    assert code == 0, stderr
    lowest = {}
    for point in ("lr0.0001-wd0", "lr0.05-wd0"):  # command-line order: the earlier wins a tie
        last = max((tmp_path / "grid" / point).glob("checkpoint-*"),
                   key=lambda p: int(p.name.split("-")[1]))
        history = json.loads((last / "trainer_state.json").read_text())["log_history"]
        evals = [(h["eval_perplexity"], h["step"]) for h in history if "eval_perplexity" in h]
        assert [step for _, step in evals] == [1, 2]  # --eval-steps 1, --max-steps 2
        lowest[point] = min(evals)
    best = min(lowest, key=lowest.__getitem__)
    perplexity, step = lowest[best]
    chosen = tmp_path / "grid" / best / f"checkpoint-{step}" / "adapter_model.safetensors"
    assert (tmp_path / "adapter" / "adapter_model.safetensors").read_bytes() == \
        chosen.read_bytes()
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["r"] == 2
    assert f"{perplexity:.4g}" in stdout


def test_distill_refuses_a_folder_holding_another_run(released: Path, tiny: Path,
                                                      tmp_path: Path) -> None:
    args = ["lavic", "distill", "--descriptions", released, "--model-path", tiny,
            "--out", tmp_path, *FAST]
    assert bench(*args)[0] == 0
    one_error(*bench(*args, "--seed", "7")[::2], "spec.json", "different stage-1 run",
              "new output folder")


@pytest.mark.parametrize(("extra", "fragments"), [
    (["--bogus", "1"], ("bench lavic distill", "No such option: --bogus", "--help")),
    (["--batch-size", "0"], ("bench lavic distill", "batch_size = 0", "greater than 0")),
    (["--lora-dropout", "2"], ("lora.dropout",)),
    (["--views", "3"], ("views = 3 is not supported", "1, 5, 9")),
    (["--epochs", "x"], ("bench lavic distill", "Invalid value for '--epochs'")),
])
def test_distill_option_mistakes_are_one_line(released: Path, tiny: Path, tmp_path: Path,
                                              extra: list[str], fragments: tuple[str, ...]
                                              ) -> None:
    code, _, stderr = bench("lavic", "distill", "--descriptions", released, "--model-path",
                            tiny, "--out", tmp_path, *FAST, *extra)
    one_error(code, stderr, *fragments)


def test_distill_needs_descriptions_of_every_image_it_trains_on(world: Path, tiny: Path,
                                                                tmp_path: Path) -> None:
    assert bench("lavic", "describe", "--data-dir", world, "--out", tmp_path / "d",
                 "--descriptions", "release", "--limit", LIMIT, "--images-per-item", "1")[0] == 0
    distill = ["lavic", "distill", "--descriptions", tmp_path / "d", "--model-path", tiny,
               "--out", tmp_path / "s", *FAST]
    one_error(*bench(*distill)[::2], "cover 1 image(s) per item, not every image",
              "without --images-per-item")
    one_error(*bench(*distill, "--images-per-item", "2")[::2], "not 2",
              "--images-per-item 2")


def test_input_mistakes_are_one_line(world: Path, tiny: Path, tmp_path: Path) -> None:
    describe = ["lavic", "describe", "--out", tmp_path / "d"]
    one_error(*bench(*describe, "--data-dir", tmp_path / "nowhere")[::2],
              "data directory does not exist")
    one_error(*bench(*describe, "--data-dir", world, "--descriptions", "gpt")[::2],
              "--descriptions 'gpt'", "model or release")
    one_error(*bench(*describe, "--data-dir", world, "--model-path", tmp_path / "none")[::2],
              "no such model folder", "bench lavic tiny")
    one_error(*bench(*describe, "--data-dir", world, "--model-path", world)[::2],
              "cannot load the model", str(world))
    one_error(*bench("lavic", "distill", "--descriptions", tmp_path, "--model-path", tiny,
                     "--out", tmp_path / "s")[::2], "no descriptions file", "bench lavic describe")
    one_error(*bench("lavic", "tiny", "--out", world)[::2], "not empty")


def test_missing_images_are_counted_or_refused(world: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(world, tmp_path / "world")
    meta = json.loads((copy / "item2meta_train.json").read_text())
    described = sum(len(m["image_descriptions_llava_cleaned"]) for m in meta.values())
    gone = copy / "train_images" / f"{next(iter(meta))}_1.jpg"
    gone.unlink()
    code, stdout, stderr = bench("lavic", "describe", "--data-dir", copy, "--out",
                                 tmp_path / "d", "--descriptions", "release")
    warned = [x for x in stderr.splitlines() if x.startswith("warning [no_image] x1:")]
    assert code == 0 and len(warned) == 1 and str(gone) in warned[0], stderr
    assert f"{described - 1} training and {SIZES['small'].valid_items} validation" in stdout
    shutil.rmtree(copy / "train_images")
    (copy / "train_images").mkdir()
    one_error(*bench("lavic", "describe", "--data-dir", copy, "--out", tmp_path / "d",
                     "--descriptions", "release")[::2], "no usable training image",
              str(copy / "train_images"))
