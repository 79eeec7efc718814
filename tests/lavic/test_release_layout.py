"""`bench lavic describe --descriptions release` on a folder in the release's layout, built
from the real records of ``../shared/reddit-amazon/item2meta_valid.jsonl``: which (image, text)
pairs each split takes, as the authors' ``ImageDescriptionDataset`` reads them, and that the
item's marketing ``description`` never stands in for a missing LLaVA description."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from bench.cli import app
from lavic.stage1.data import read_descriptions
from tests.requires import missing

SHARED = Path(__file__).resolve().parents[3] / "shared" / "reddit-amazon"
MARKETING = "MARKETING COPY, not a picture's description"
# item -> (record of its ASIN and title, images listed, {k: record whose text describes k},
#          indices on disk); records are indices into the real validation records
TRAIN = {
    "A": (0, 3, {0: 0, 1: 1, 2: 2}, {0, 1, 2}),
    "B": (3, 3, {0: 3, 2: 4}, {0, 1, 2}),  # B_1 on disk, not described
    "C": (5, 2, {0: 5, 1: 6}, {0}),  # C_1 described, not on disk
    "D": (7, 2, {1: 7}, {0, 1}),  # D_0 on disk, not described
}
VALID = (8, 9, 10, 11)  # 11's image is not on disk


def bench(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], prog_name="bench")
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def counted(stderr: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"^warning \[(\w+)\] x(\d+):", stderr, re.M)}


def one_error(code: int, stderr: str, *fragments: str) -> None:
    lines = [x for x in stderr.splitlines() if x.startswith("error: ")]
    assert code == 2 and len(lines) == 1, stderr
    assert all(f in lines[0] for f in fragments), lines[0]
    assert "Traceback" not in stderr


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    """Real validation records of 12 distinct items."""
    file = SHARED / "item2meta_valid.jsonl"
    if not file.is_file():
        missing(f"needs the release's records at {file}")
    out: dict[str, dict[str, Any]] = {}
    for line in file.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        out.setdefault(record["image_name"].rpartition("_")[0], record)
    return list(out.values())[:12]


def asin(record: dict[str, Any]) -> str:
    return record["image_name"].rpartition("_")[0]


def text(record: dict[str, Any]) -> str:
    return record["image_description_llava_cleaned"].strip()


def jpeg(path: Path, shade: int) -> None:
    Image.new("RGB", (12, 10), (shade, 80, 160)).save(path, "JPEG")


@pytest.fixture(scope="module")
def release(records: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("release")
    (root / "train_images").mkdir()
    (root / "valid_images").mkdir()
    meta = {}
    for n, (owner, count, described, on_disk) in enumerate(TRAIN.values()):
        item = asin(records[owner])
        meta[item] = {
            "title": records[owner]["title"], "description": [MARKETING],
            "images": [{"large": f"https://example.com/{item}_{k}.jpg"} for k in range(count)],
            "image_descriptions_llava_cleaned": {f"{item}_{k}.jpg": text(records[r])
                                                 for k, r in described.items()},
        }
        for k in on_disk:
            jpeg(root / "train_images" / f"{item}_{k}.jpg", 10 * n + k)
    (root / "item2meta_train.json").write_text(json.dumps(meta), encoding="utf-8")
    lines = [json.dumps(records[r]) for r in VALID]
    (root / "item2meta_valid.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for r in VALID[:-1]:
        jpeg(root / "valid_images" / records[r]["image_name"], r)
    return root


def pairs(payload: dict[str, Any], split: str) -> list[tuple[str, str]]:
    return [(Path(row["image"]).name, row["description"]) for row in payload[split]]


def expected(records: list[dict[str, Any]], cap: int | None) -> list[tuple[str, str]]:
    """Hand-listed training pairs: described, on disk, k below the cap."""
    a, b, c, d = (asin(records[TRAIN[x][0]]) for x in "ABCD")
    every = [(f"{a}_0.jpg", 0), (f"{a}_1.jpg", 1), (f"{a}_2.jpg", 2), (f"{b}_0.jpg", 3),
             (f"{b}_2.jpg", 4), (f"{c}_0.jpg", 5), (f"{d}_1.jpg", 7)]
    return [(name, text(records[r])) for name, r in every
            if cap is None or int(name[-5]) < cap]


@pytest.mark.parametrize(("cap", "warned"), [
    (None, {"no_description": 2, "no_image": 2}),  # B_1, D_0; C_1, record 11
    (1, {"no_description": 1, "no_image": 1}),  # D_0; record 11
])
def test_describe_takes_each_described_image_on_disk(release: Path, records: list[dict[str, Any]],
                                                     tmp_path: Path, cap: int | None,
                                                     warned: dict[str, int]) -> None:
    option = [] if cap is None else ["--images-per-item", str(cap)]
    code, stdout, stderr = bench("lavic", "describe", "--data-dir", release, "--out", tmp_path,
                                 "--descriptions", "release", *option)
    assert code == 0, stderr
    assert counted(stderr) == warned
    raw = (tmp_path / "descriptions.json").read_text(encoding="utf-8")
    assert "MARKETING" not in raw
    payload = json.loads(raw)
    assert payload["images_per_item"] == cap and payload["source"] == "release"
    assert pairs(payload, "train") == expected(records, cap)
    assert all(Path(row["image"]).parent.name == "train_images" for row in payload["train"])
    assert [row["title"] for row in payload["train"]][:1] == [records[0]["title"]]
    assert pairs(payload, "valid") == [(records[r]["image_name"], text(records[r]))
                                       for r in VALID[:-1]]
    assert all(Path(row["image"]).parent.name == "valid_images" for row in payload["valid"])
    assert [row["index"] for row in payload["valid"]] == [
        int(records[r]["image_name"].rpartition("_")[2][:-4]) for r in VALID[:-1]]
    n_train = len(expected(records, cap))
    assert f"{n_train} training and 3 validation descriptions" in stdout
    # distill reads them back, capped again at read time
    train, valid, _ = read_descriptions(tmp_path, cap)
    assert [(p.image.name, p.description) for p in train] == expected(records, cap)
    assert len(valid) == 3
    if cap is None:
        capped, _, _ = read_descriptions(tmp_path, 1)
        assert [(p.image.name, p.description) for p in capped] == expected(records, 1)


def test_release_mistakes_are_one_line(release: Path, records: list[dict[str, Any]],
                                       tmp_path: Path) -> None:
    copy = shutil.copytree(release, tmp_path / "release")
    describe = ["lavic", "describe", "--data-dir", copy, "--descriptions", "release"]
    assert bench(*describe, "--out", tmp_path / "d")[0] == 0
    written = tmp_path / "d" / "descriptions.json"
    distill = ["lavic", "distill", "--descriptions", tmp_path / "d", "--out", tmp_path / "s"]
    # an image named by descriptions.json is gone
    first = copy / "train_images" / f"{asin(records[0])}_1.jpg"
    first.rename(tmp_path / "away.jpg")
    one_error(*bench(*distill)[::2], str(written), "images are gone", str(first),
              "bench lavic describe")
    # a descriptions.json of the previous layout (no format, first images only)
    payload = json.loads(written.read_text())
    del payload["format"]
    written.write_text(json.dumps({**payload, "images_per_item": 1}))
    one_error(*bench(*distill)[::2], str(written), "another layout", "bench lavic describe")
    # valid_images/ missing: named, with the crawler's layout and the option
    shutil.rmtree(copy / "valid_images")
    one_error(*bench(*describe, "--out", tmp_path / "e")[::2], str(copy / "valid_images"),
              "crawl_images.py", "--valid-images-dir")
    code, _, stderr = bench(*describe, "--out", tmp_path / "e", "--valid-images-dir",
                            release / "valid_images")
    assert code == 0, stderr
    # no training image left: the folder is named, after the counted warnings
    for image in (copy / "train_images").iterdir():
        image.unlink()
    code, _, stderr = bench(*describe, "--out", tmp_path / "f", "--valid-images-dir",
                            release / "valid_images")
    one_error(code, stderr, str(copy / "train_images"), "no usable training image")
    assert counted(stderr) == {"no_description": 2, "no_image": 9}  # 8 described + record 11
    (copy / "item2meta_valid.jsonl").unlink()
    one_error(*bench(*describe, "--out", tmp_path / "f")[::2],
              str(copy / "item2meta_valid.jsonl"), "no such file")


def test_the_model_describes_every_image_on_disk(release: Path, records: list[dict[str, Any]],
                                                 tmp_path: Path) -> None:
    assert bench("lavic", "tiny", "--out", tmp_path / "tiny")[0] == 0
    code, _, stderr = bench("lavic", "describe", "--data-dir", release, "--out", tmp_path / "d",
                            "--model-path", tmp_path / "tiny", "--batch-size", "6")
    assert code == 0, stderr
    assert counted(stderr) == {"no_image": 2}  # C_1, record 11
    payload = json.loads((tmp_path / "d" / "descriptions.json").read_text())
    a, b, c, d = (asin(records[TRAIN[x][0]]) for x in "ABCD")
    assert [Path(r["image"]).name for r in payload["train"]] == [
        f"{a}_0.jpg", f"{a}_1.jpg", f"{a}_2.jpg", f"{b}_0.jpg", f"{b}_1.jpg", f"{b}_2.jpg",
        f"{c}_0.jpg", f"{d}_0.jpg", f"{d}_1.jpg"]
    assert [Path(r["image"]).name for r in payload["valid"]] == [
        records[r]["image_name"] for r in VALID[:-1]]
    written = {r["description"] for r in payload["train"] + payload["valid"]}
    assert not written & {text(r) for r in records} and MARKETING not in written
