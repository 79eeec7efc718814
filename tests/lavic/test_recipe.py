"""The recipe in lavic/README.md, run as written: bash expands the block (its variables and
loops) with ``bench`` defined as a recorder, and every recorded command then runs in-process on
a tiny model of the real architecture and a synthetic folder in the release's layout. Only
``--model-path``, sizes (``--limit``, the grid cut to 2 x 1 points) and step caps differ from
what a GPU user runs; a recipe line that stops working fails here."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.task.data.synthetic import synthesize
from tests.lavic.test_cli import bench

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[2] / "lavic" / "README.md"
MARK = "<!-- recipe"
ARG, END = "\x1f", "\x1e"
LAVIC_STAGES = {"plan", "describe", "distill", "finetune"}
CAPS = {  # the step caps and sizes each command gains (describe sees every image)
    "distill": ["--max-steps", "2", "--eval-steps", "1", "--max-length", "512"],
    "finetune": ["--max-steps", "2", "--eval-steps", "1"],
    "run": ["--limit", "2", "--no-progress"],
}
PLANNED = "all_beauty"  # the domain the recipe's plan line counts
GRID_OPTIONS = re.compile(r"^--(distill-|finetune-)?(lr|wd)$")


def recipe() -> str:
    """The shell block that follows the recipe mark."""
    text = README.read_text(encoding="utf-8")
    after = text[text.index(MARK):]
    found = re.search(r"```sh\n(.*?)```", after, re.S)
    assert found, f"{README}: no ```sh block after {MARK}"
    return found[1]


def commands(block: str, cwd: Path) -> list[list[str]]:
    """Each ``bench`` invocation of ``block``, as bash expands it, in order."""
    record = cwd / "recorded"
    script = (f'bench() {{ printf "%s{ARG}" "$@" >> "{record}"; printf "{END}" >> "{record}"; }}\n'
              + block)
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, check=True)
    return [call.split(ARG)[:-1] for call in record.read_text().split(END)[:-1]]


def shrink(argv: list[str], tiny: Path) -> list[str]:
    """``argv`` on the tiny model: ``--model-path``, the caps, a 2 x 1 grid."""
    kept: list[str] = []
    seen: dict[tuple[str | None, str], int] = {}
    i = 0
    while i < len(argv):
        found = GRID_OPTIONS.match(argv[i])
        if found and i + 1 < len(argv):
            key = (found[1], found[2])
            seen[key] = seen.get(key, 0) + 1
            if seen[key] <= (2 if found[2] == "lr" else 1):
                kept += argv[i:i + 2]
            i += 2
            continue
        kept.append(argv[i])
        i += 1
    stage = kept[1] if kept[0] == "lavic" else kept[0]
    if kept[0] == "run" or stage in LAVIC_STAGES:
        kept += ["--model-path", str(tiny)]
    if stage == "finetune" and PLANNED not in kept:  # the plan is checked on one domain
        kept += ["--limit", "3"]
    return kept + CAPS.get(stage, [])


@pytest.fixture(scope="module")
def cooked(tmp_path_factory: pytest.TempPathFactory) -> Cooked:
    """The recipe run in a folder whose ``data/`` is a small synthetic release."""
    cwd = tmp_path_factory.mktemp("recipe")
    synthesize(cwd / "data", seed=0, size="small")
    tiny = cwd / "tiny"
    assert bench("lavic", "tiny", "--out", tiny)[0] == 0
    written = commands(recipe(), cwd)
    printed = []
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        patch.setenv("BENCH_CACHE_DIR", str(cwd / "cache"))
        for argv in written:
            code, out, err = bench(*shrink(argv, tiny))
            assert code == 0, f"bench {' '.join(argv)}\n{err[-3000:]}"
            printed.append(out + err)
        plan = next(a for a in written if a[:2] == ["lavic", "plan"])
        code, out, err = bench(*shrink(plan, tiny), "--format", "json")
        assert code == 0, err
    return Cooked(cwd, written, printed, json.loads(out))


@dataclass
class Cooked:
    cwd: Path
    written: list[list[str]]  # the recipe's commands, as bash expanded them
    printed: list[str]  # each command's stdout + stderr
    plan: dict[str, Any]  # the recipe's plan line, as JSON


def test_the_recipe_covers_every_stage_and_table_7(cooked: Cooked) -> None:
    written = cooked.written
    verbs = [" ".join(a[:2]) if a[0] == "lavic" else a[0] for a in written]
    assert verbs[:3] == ["lavic plan", "lavic describe", "lavic distill"]
    assert verbs.count("lavic finetune") == 3 * 3 + 1  # 3 domains x 3 variants + entire tokens
    assert verbs.count("run") == 3 * 3 + 1 and verbs[-1] == "table"
    full_grid = next(a for a in written if a[:2] == ["lavic", "distill"])
    assert full_grid.count("--lr") == 4 and full_grid.count("--wd") == 5  # the paper's 20


def test_each_stage_took_the_release_files(cooked: Cooked) -> None:
    cwd = cooked.cwd
    described = json.loads((cwd / "described" / "descriptions.json").read_text())
    meta = json.loads((cwd / "data" / "item2meta_train.json").read_text())
    for row in described["train"]:  # text from the per-image dict, image from train_images/
        name = Path(row["image"]).name
        assert Path(row["image"]).parent == (cwd / "data" / "train_images").resolve()
        assert row["description"] == meta[row["asin"]]["image_descriptions_llava_cleaned"][name]
    assert all(Path(r["image"]).parent.name == "valid_images" for r in described["valid"])
    stage1 = json.loads((cwd / "stage1" / "result.json").read_text())
    assert len(stage1["grid"]) == 2  # the grid, cut to 2 x 1 points, ran every point
    for domain in ("all_beauty", "amazon_fashion", "amazon_home"):
        for variant in ("lavic", "lavic-no-distill", "lavic-no-images"):
            spec = json.loads((cwd / "stage2" / domain / variant / "spec.json").read_text())
            assert spec["config"]["variant"] == variant.removeprefix("lavic-") or (
                variant == "lavic" and spec["config"]["variant"] == "lavic")
            assert (spec["stage1"] != "none") == (variant == "lavic")


def test_table_7_prints_our_rows_beside_the_papers(cooked: Cooked) -> None:
    cwd, text = cooked.cwd, cooked.printed[-1]
    table = text.splitlines()
    for model in ("lavic", "lavic-no-distill", "lavic-no-images", "lavic-entire-tokens"):
        assert any(model in line for line in table), (model, text)
    results = list((cwd / "runs").rglob("results.json"))
    assert len(results) == 10
    assert "paper" in text.lower(), text


def test_plan_counts_what_the_stages_then_read(cooked: Cooked) -> None:
    """The plan's images and examples are the ones describe, distill and finetune used: each
    stage prints its own counts, and describe's file lists every image (hand count)."""
    stages = {s["stage"]: s for s in cooked.plan["stages"]}
    described = json.loads((cooked.cwd / "described" / "descriptions.json").read_text())
    meta = json.loads((cooked.cwd / "data" / "item2meta_train.json").read_text())
    by_hand = sum(len(m["image_descriptions_llava_cleaned"]) for m in meta.values())
    assert len(described["train"]) == by_hand == stages["distill"]["examples"]["train"]
    assert len(described["valid"]) == stages["distill"]["examples"]["valid"]
    said = {}
    for argv, printed in zip(cooked.written, cooked.printed, strict=True):
        if argv[:2] == ["lavic", "finetune"] and PLANNED in argv and "--variant" not in argv:
            found = re.search(r"(\d+) training, (\d+) validation examples", printed)
            assert found, printed
            said["finetune"] = [int(found[1]), int(found[2])]
        if argv[:2] == ["lavic", "distill"]:
            found = re.search(r"(\d+) training, (\d+) validation images", printed)
            assert found, printed
            said["distill"] = [int(found[1]), int(found[2])]
    for stage, counts in said.items():
        assert counts == [stages[stage]["examples"]["train"], stages[stage]["examples"]["valid"]]
    assert stages["distill"]["grid_points"] == stages["finetune"]["grid_points"] == 2
