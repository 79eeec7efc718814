"""Which images stage 1 learns from, read as the authors read the release, and the descriptions
file that links describe to distill.

Training images are every image of an ``item2meta_train.json`` item, saved by the authors'
crawler as ``train_images/{ASIN}_{k}.jpg`` (k: its index in ``images``); ``images_per_item``
N keeps k < N (stage 2 and the generators use ``_0`` only). With the release's descriptions
an image is used when the item's ``image_descriptions_llava_cleaned`` names it and it is on
disk, as in the authors' ``ImageDescriptionDataset``; an image without one is a counted
warning, never given another field's text (the item's ``description`` is Amazon's marketing
copy, not a description of that picture). With the model's, every image on disk is described.
Validation images are the records of ``item2meta_valid.jsonl`` in ``valid_images/``, with
their ``image_description_llava_cleaned``. A missing image is a counted warning, never a silent
drop. ``describe`` writes ``descriptions.json`` once, atomically; ``distill`` reads it back as
:class:`Described` pairs. Nothing here loads a model library.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from bench.core.errors import BenchError, Warnings
from bench.execution.store import write_json_atomic
from bench.task.data.release import (
    IMAGES_DIR,
    META_TRAIN,
    META_VALID,
    TRAIN_DESCRIPTIONS,
    VALID_DESCRIPTION,
    VALID_IMAGES_DIR,
    image_name,
    load_meta,
    parse_image_name,
    read_jsonl,
)

DESCRIPTIONS_FILE = "descriptions.json"
# Layout of descriptions.json; 2: every image k of an item, validation from valid_images/.
FORMAT = 2
SPLITS = ("train", "valid")
Source = Literal["model", "release"]
RERUN = "re-run `bench lavic describe --out DIR` and pass --descriptions DIR"


@dataclass(frozen=True)
class ImageToDescribe:
    """One image to describe: ``index`` is k in ``{ASIN}_{k}.jpg``."""

    split: str
    asin: str
    index: int
    title: str
    image: Path
    release: str  # the release's LLaVA description of this image ("" when it has none)


class Described(BaseModel):
    """One stage-1 pair: an item's image and the description the full-token model wrote."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    title: str
    image: Path
    description: str


def image_hash(path: Path) -> str:
    """sha256 of the image file's bytes (its identity in specs and caches)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise BenchError(f"cannot read image: {err.strerror}", where=str(path)) from err


def data_hash(examples: Sequence[Described]) -> str:
    """One hash over titles, descriptions and image bytes, in order."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(json.dumps([ex.title, ex.description, image_hash(ex.image)]).encode())
    return digest.hexdigest()


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _described(asin: str, details: dict[str, Any], where: str,
               warnings: Warnings) -> dict[int, str]:
    """k -> the release's description of ``{asin}_{k}.jpg`` ("" when empty)."""
    value = details.get(TRAIN_DESCRIPTIONS, {})
    if not isinstance(value, dict):
        warnings.add("bad_descriptions", f"{asin}: {TRAIN_DESCRIPTIONS} is not an object "
                     "{image name: text}; none used", where=where)
        return {}
    texts: dict[int, str] = {}
    for name, text in value.items():
        parsed = parse_image_name(name)
        if parsed is None or parsed[0] != asin:
            warnings.add("bad_image_name", f"{asin}: {TRAIN_DESCRIPTIONS} names {name!r}, not "
                         f"{image_name(asin, 0)}-like; not used", where=where)
            continue
        texts[parsed[1]] = _text(text)
    return texts


def _train(root: Path, images: Path, *, source: Source, images_per_item: int | None,
           warnings: Warnings) -> list[ImageToDescribe]:
    """The training images of ``item2meta_train.json``, item by item, k ascending."""
    where = str(root / META_TRAIN)
    out: list[ImageToDescribe] = []
    for asin, details in load_meta(root).records.items():
        if "image_name" in details:  # a validation record (item2meta_valid.jsonl)
            continue
        listed = details.get("images")
        count = len(listed) if isinstance(listed, list) else 0
        texts = _described(asin, details, where, warnings) if source == "release" else {}
        indices = sorted(set(range(count)) | set(texts))
        if not indices:
            warnings.add("no_images", f"{asin} lists no images; not used", where=where)
        for k in indices:
            if images_per_item is not None and k >= images_per_item:
                break
            path = images / image_name(asin, k)
            if source == "release" and not texts.get(k):
                warnings.add("no_description", f"{asin} image {k} has no {TRAIN_DESCRIPTIONS} "
                             "entry; not used", where=str(path))
            elif not path.is_file():
                warnings.add("no_image", f"image {k} of {asin} is not on disk; skipped",
                             where=str(path))
            else:
                out.append(ImageToDescribe("train", asin, k, str(details.get("title") or ""),
                                           path, texts.get(k, "")))
    return out


def _valid(root: Path, images: Path, *, source: Source,
           warnings: Warnings) -> list[ImageToDescribe]:
    """The validation images of ``item2meta_valid.jsonl`` (unparseable lines are counted by
    :func:`~bench.task.data.release.load_meta`)."""
    out: list[ImageToDescribe] = []
    for line in read_jsonl(root / META_VALID):
        record = line.record
        if record is None:
            continue
        name = str(record.get("image_name") or "")
        parsed = parse_image_name(name)
        text = _text(record.get(VALID_DESCRIPTION))
        if parsed is None:
            warnings.add("bad_image_name", f"image_name {name!r} is not {{ASIN}}_{{k}}.jpg; "
                         "not used", where=line.where)
        elif source == "release" and not text:
            warnings.add("no_description", f"{name} has no {VALID_DESCRIPTION}; not used",
                         where=line.where)
        elif not (images / name).is_file():
            warnings.add("no_image", f"validation image {name} is not on disk; skipped",
                         where=str(images / name))
        else:
            out.append(ImageToDescribe("valid", parsed[0], parsed[1],
                                       str(record.get("title") or ""), images / name, text))
    return out


def images_to_describe(data_dir: Path, *, source: Source = "model",
                       images_dir: Path | None = None, valid_images_dir: Path | None = None,
                       images_per_item: int | None = None, limit: int | None = None,
                       warnings: Warnings) -> list[ImageToDescribe]:
    """Training then validation images; with ``source="release"`` only those the release
    describes. A folder or file that is missing, or no image left, is one error line."""
    root = Path(data_dir)
    if not root.is_dir():
        raise BenchError("data directory does not exist", where=str(root),
                         hint="pass --data-dir DIR in the release layout (bench data synth)")
    images = Path(images_dir) if images_dir else root / IMAGES_DIR
    valid_images = Path(valid_images_dir) if valid_images_dir else root / VALID_IMAGES_DIR
    crawler = "the authors' src/crawl_images.py saves"
    if not images.is_dir():
        raise BenchError("no training images folder", where=str(images),
                         hint=f"{crawler} every item image there; pass --images-dir DIR if "
                         "they are elsewhere")
    for name in (META_TRAIN, META_VALID):
        if not (root / name).is_file():
            raise BenchError("no such file", where=str(root / name),
                             hint=f"copy {name} from the release into the data directory")
    if not valid_images.is_dir():
        raise BenchError("no validation images folder", where=str(valid_images),
                         hint=f"{crawler} the images of {META_VALID} there; pass "
                         "--valid-images-dir DIR if they are elsewhere")
    meta = load_meta(root)
    for code, where, message in meta.problems:
        warnings.add(code, message, where=where)
    train = _train(root, images, source=source, images_per_item=images_per_item,
                   warnings=warnings)
    valid = _valid(root, valid_images, source=source, warnings=warnings)
    described = f" described in {TRAIN_DESCRIPTIONS}" if source == "release" else ""
    if not train:
        raise BenchError("no usable training image", where=str(images),
                         hint=f"stage 1 needs {{ASIN}}_{{k}}.jpg images of {META_TRAIN} items"
                         f"{described}; see the warnings above")
    if not valid:
        raise BenchError("no usable validation image", where=str(valid_images),
                         hint=f"stage 1 needs the images of {META_VALID}; see the warnings "
                         "above")
    return train[:limit] + valid[:limit]


def write_descriptions(out: Path, source: str, images_per_item: int | None,
                       described: list[tuple[ImageToDescribe, str]]) -> Path:
    """``out/descriptions.json``: the pairs stage 1 trains and validates on."""
    payload: dict[str, Any] = {"format": FORMAT, "source": source,
                               "images_per_item": images_per_item}
    for split in SPLITS:
        payload[split] = [{**asdict(t), "image": str(t.image.resolve()), "description": text}
                          for t, text in described if t.split == split]
        for row in payload[split]:
            del row["release"], row["split"]
    path = out / DESCRIPTIONS_FILE
    write_json_atomic(path, payload)
    return path


def _load(file: Path) -> tuple[dict[str, list[tuple[int, Described]]], dict[str, Any]]:
    """({split: [(k, pair)]}, header) of a descriptions file in this layout."""
    try:
        payload = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError("no descriptions file", where=str(file), hint=RERUN) from None
    except (OSError, ValueError) as exc:
        raise BenchError(f"not a descriptions file ({exc})", where=str(file),
                         hint=RERUN) from None
    layout = payload.get("format") if isinstance(payload, dict) else None
    if layout != FORMAT:
        raise BenchError(f"a descriptions file of another layout (format {layout}; this "
                         f"version reads {FORMAT})", where=str(file), hint=RERUN)
    try:
        pairs = {split: [(int(r["index"]), Described(title=r["title"], image=Path(r["image"]),
                                                     description=r["description"]))
                         for r in payload[split]] for split in SPLITS}
        have = payload["images_per_item"]
        if have is not None and not isinstance(have, int):
            raise TypeError(f"images_per_item is {have!r}")
    except (KeyError, TypeError, ValueError) as exc:
        raise BenchError(f"not a descriptions file ({type(exc).__name__}: {exc})",
                         where=str(file), hint=RERUN) from None
    return pairs, {k: v for k, v in payload.items() if k not in SPLITS}


def read_descriptions(path: Path, images_per_item: int | None
                      ) -> tuple[list[Described], list[Described], dict[str, Any]]:
    """(train, valid, header) from a describe folder or its descriptions.json; training pairs
    of image k >= ``images_per_item`` are left out (None: every image)."""
    file = path / DESCRIPTIONS_FILE if path.is_dir() else path
    pairs, header = _load(file)
    have = header["images_per_item"]
    if have is not None and (images_per_item is None or images_per_item > have):
        asked = "every image" if images_per_item is None else f"{images_per_item}"
        option = ("without --images-per-item" if images_per_item is None
                  else f"with --images-per-item {images_per_item}")
        raise BenchError(f"descriptions cover {have} image(s) per item, not {asked}",
                         where=str(file), hint=f"re-run describe {option}")
    train = [d for k, d in pairs["train"] if images_per_item is None or k < images_per_item]
    valid = [d for _, d in pairs["valid"]]
    for split, rows in (("training", train), ("validation", valid)):
        if not rows:
            raise BenchError(f"no {split} descriptions", where=str(file), hint=RERUN)
    gone = [d.image for d in (*train, *valid) if not d.image.is_file()]
    if gone:
        raise BenchError(f"{len(gone)} of its images are gone, the first {gone[0]}",
                         where=str(file), hint=RERUN)
    return train, valid, header
