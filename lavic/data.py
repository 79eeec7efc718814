"""Which images stage 1 learns from, and the descriptions file that links describe to distill.

Training images are the items of ``item2meta_train.json`` (``{ASIN}_{k}.jpg``, the first
``images_per_item`` of each; the paper uses the first); validation images are the held-out
records of ``item2meta_valid.jsonl``, as in the release. A missing image is a counted warning,
never a silent drop. ``describe`` writes ``descriptions.json`` once, atomically; ``distill``
reads it back as :class:`~lavic.distill.Described` pairs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.data.release import (
    DESCRIPTION_KEYS,
    IMAGES_DIR,
    META_VALID,
    load_meta,
    read_jsonl,
)
from bench.errors import BenchError, Warnings
from bench.results import write_json_atomic
from lavic.distill import Described

DESCRIPTIONS_FILE = "descriptions.json"
SPLITS = ("train", "valid")


@dataclass(frozen=True)
class Target:
    """One image to describe: ``index`` is k in ``{ASIN}_{k}.jpg``."""

    split: str
    asin: str
    index: int
    title: str
    image: Path
    release: str  # the release's own description of this image ("" when it has none)


def release_description(details: dict[str, Any], index: int) -> str:
    """The release's description of image ``index``: a list holds one per image; a string
    describes the first image only."""
    for key in DESCRIPTION_KEYS:
        value = details.get(key)
        if isinstance(value, list):
            value = value[index] if index < len(value) else None
        elif index > 0:
            value = None
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def targets(data_dir: Path, *, images_dir: Path | None = None, images_per_item: int = 1,
            limit: int | None = None, warnings: Warnings) -> list[Target]:
    """Training then validation images that exist; each missing one is a counted warning."""
    root = Path(data_dir)
    if not root.is_dir():
        raise BenchError("data directory does not exist", where=str(root),
                         hint="pass --data-dir DIR in the release layout (bench data synth)")
    images = Path(images_dir) if images_dir else root / IMAGES_DIR
    meta = load_meta(root)
    for code, where, message in meta.problems:
        warnings.add(code, message, where=where)
    train: list[Target] = []
    for asin, details in meta.records.items():
        if "image_name" in details:  # a validation record (item2meta_valid.jsonl)
            continue
        for index in range(images_per_item):
            path = images / f"{asin}_{index}.jpg"
            if not path.is_file():
                code = "no_image" if index == 0 else "fewer_images"
                warnings.add(code, f"image {index} of {asin} missing; not used", where=str(path))
                continue
            train.append(Target("train", asin, index, str(details.get("title") or ""), path,
                                release_description(details, index)))
    valid: list[Target] = []
    if (root / META_VALID).is_file():
        for line in read_jsonl(root / META_VALID):
            record = line.record or {}
            name = str(record.get("image_name", ""))
            path = images / name
            if not name or not path.is_file():
                warnings.add("no_image", f"validation image {name!r} missing; not used",
                             where=line.where)
                continue
            stem = Path(name).stem
            valid.append(Target("valid", stem.rpartition("_")[0] or stem, 0,
                                str(record.get("title") or ""), path,
                                release_description(record, 0)))
    if not train or not valid:
        raise BenchError(f"found {len(train)} training and {len(valid)} validation images",
                         where=str(images),
                         hint="stage 1 needs both: item2meta_train.json with {ASIN}_0.jpg "
                         "images and item2meta_valid.jsonl")
    return train[:limit] + valid[:limit]


def write_descriptions(out: Path, source: str, images_per_item: int,
                       described: list[tuple[Target, str]]) -> Path:
    """``out/descriptions.json``: the pairs stage 1 trains and validates on."""
    payload: dict[str, Any] = {"source": source, "images_per_item": images_per_item}
    for split in SPLITS:
        payload[split] = [{**asdict(t), "image": str(t.image.resolve()), "description": text}
                          for t, text in described if t.split == split]
        for row in payload[split]:
            del row["release"], row["split"]
    path = out / DESCRIPTIONS_FILE
    write_json_atomic(path, payload)
    return path


def read_descriptions(path: Path, images_per_item: int
                      ) -> tuple[list[Described], list[Described], dict[str, Any]]:
    """(train, valid, header) from a describe folder or its descriptions.json."""
    file = path / DESCRIPTIONS_FILE if path.is_dir() else path
    hint = "run `bench lavic describe --out DIR` and pass --descriptions DIR"
    try:
        payload = json.loads(file.read_text(encoding="utf-8"))
        rows = {split: payload[split] for split in SPLITS}
        have = int(payload["images_per_item"])
    except FileNotFoundError:
        raise BenchError("no descriptions file", where=str(file), hint=hint) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BenchError(f"not a descriptions file ({type(exc).__name__}: {exc})",
                         where=str(file), hint=hint) from None
    if images_per_item > have:
        raise BenchError(f"descriptions cover {have} image(s) per item, not {images_per_item}",
                         where=str(file),
                         hint=f"re-run describe with --images-per-item {images_per_item}")
    pairs = {split: [Described(title=r["title"], image=Path(r["image"]),
                               description=r["description"])
                     for r in rows[split] if split == "valid" or r["index"] < images_per_item]
             for split in SPLITS}
    header = {k: v for k, v in payload.items() if k not in SPLITS}
    return pairs["train"], pairs["valid"], header
