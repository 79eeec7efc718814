"""One image rule: missing, empty, truncated or not-an-image files are unusable in the runner,
in every generator and in ``bench data validate --decode-images`` alike."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from baselines.generators.hf import load_image
from baselines.generators.openai_tokens import image_header
from bench.core import registry
from bench.core.config import RunSpec
from bench.execution.runner import Grid
from bench.task.data.validate import validate
from bench.task.images import image_problem
from bench.task.prompt import MISSING_IMAGE_SIDE
from tests.conftest import ASINS

PLUGIN = Path(__file__).parent / "plugins" / "toy.py"


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, format="JPEG")
    return buf.getvalue()


BREAKERS: dict[str, Callable[[Path], None]] = {
    "missing": lambda p: p.unlink(),
    "empty": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(_jpeg()[: len(_jpeg()) // 2]),
    "not an image": lambda p: p.write_text("<html>404 not found</html>"),
}
EXPECTED = {"missing": "missing", "empty": "empty", "truncated": "truncated",
            "not an image": "not an image"}


@pytest.mark.parametrize("kind", sorted(BREAKERS))
def test_every_reader_rejects_the_same_broken_file(release: Path, kind: str) -> None:
    path = release / "train_images" / f"{ASINS[0]}_0.jpg"
    BREAKERS[kind](path)
    assert EXPECTED[kind] in (image_problem(path) or "")
    image, data = load_image(path)  # the HF generators: the white placeholder, no bytes
    assert data == b"" and image.size == (MISSING_IMAGE_SIDE, MISSING_IMAGE_SIDE)
    assert image_header(path) is None  # the OpenAI generator: the slot is dropped
    report = validate(release, decode_images=True)
    if kind == "missing":
        assert report.items["no_image"] == 2  # the fixture's own missing one, plus this
    else:
        assert report.items["corrupt_image"] == 1
        assert f"(first: {path}: " in report.render()


def test_a_good_image_passes_everywhere(release: Path) -> None:
    path = release / "train_images" / f"{ASINS[0]}_0.jpg"
    path.write_bytes(_jpeg())
    assert image_problem(path) is None
    assert load_image(path)[1] == _jpeg() and image_header(path) is not None


def test_an_image_run_counts_each_broken_image_naming_the_asin(
    release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    registry.load_plugins()
    registry.include(PLUGIN)
    broken = dict(zip(ASINS[:3], ("empty", "truncated", "not an image"), strict=True))
    for asin, kind in broken.items():
        BREAKERS[kind](release / "train_images" / f"{asin}_0.jpg")
    spec = replace(RunSpec(), dataset="reddit-amazon", domains=("all_beauty",),
                   retrievers=("dataset:st",), models=("toy-eyes", "toy-slow"),
                   out=str(tmp_path / "o"),
                   dataset_tables={"reddit-amazon": {"data_dir": str(release)}})
    said: list[str] = []
    eyes, text_only = Grid(spec, progress=False, echo=said.append).run()
    # The fixture: 12 conversations, each shipping ASINS[:10] as candidates_st.
    assert eyes["warnings"] == {"bad_image": 12 * len(broken)}
    assert text_only["warnings"] == {}  # titles only: images are not its problem
    [line] = [x for x in said if x.startswith("warning [bad_image]")]
    assert line.startswith(f"warning [bad_image] x{12 * len(broken)}: all_beauty/test:1: "
                           "candidate B00000000")
    cell = tmp_path / "o" / "reddit-amazon" / "all_beauty" / "test" / "dataset-st" / "toy-eyes"
    shown_without = {a for x in (cell / "predictions.jsonl").read_text().splitlines()
                     for a in json.loads(x)["raw"].split(",")}
    assert shown_without == set(broken)
