"""Loader for the Reddit-Amazon release layout (also what the synthetic world writes).

Layout under a data directory::

    {domain}/{split}.jsonl      one conversation per line
    item2meta_train.json        ASIN -> {"title", "images", "description",
                                "image_descriptions_llava_cleaned": {"{ASIN}_{k}.jpg": text}}
    item2meta_valid.jsonl       512 images used to validate visual distillation
    train_images/{ASIN}_{k}.jpg every image of each item (k: its index in ``images``); the
                                harness shows ``{ASIN}_0.jpg``
    valid_images/{image_name}   the images of item2meta_valid.jsonl

Bad lines never abort a load and never vanish silently: each is a counted warning naming
``file:line`` (recorded in results.json), and ``bench data validate`` turns them into errors.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ftfy

from bench.core.errors import BenchError, Warnings
from bench.task.data.schema import (
    ASIN_RE,
    CANDIDATE_FIELDS,
    DOMAINS,
    SPLITS,
    Answer,
    Catalog,
    Conversation,
    Item,
    Split,
)

META_TRAIN = "item2meta_train.json"
META_VALID = "item2meta_valid.jsonl"
IMAGES_DIR = "train_images"
VALID_IMAGES_DIR = "valid_images"  # where the authors' crawler saves item2meta_valid's images
# LLaVA's per-image descriptions: a dict {"{ASIN}_{k}.jpg": text} per item2meta_train.json item,
# one text per item2meta_valid.jsonl record.
TRAIN_DESCRIPTIONS = "image_descriptions_llava_cleaned"
VALID_DESCRIPTION = "image_description_llava_cleaned"
# Amazon Reviews 2023 ``main_category`` values of the three domains.
MAIN_CATEGORY = {"All Beauty": "all_beauty", "AMAZON FASHION": "amazon_fashion",
                 "Amazon Home": "amazon_home"}
REQUIRED_FIELDS = ("context", "gt_items")
_IMAGE_NAME_RE = re.compile(r"(?P<asin>[^/\\]+)_(?P<index>\d+)\.jpg")


def image_name(asin: str, index: int) -> str:
    """The crawler's file name of image ``index`` (in ``images``) of item ``asin``."""
    return f"{asin}_{index}.jpg"


def parse_image_name(name: str) -> tuple[str, int] | None:
    """(ASIN, k) of ``{ASIN}_{k}.jpg``, or None for any other name."""
    match = _IMAGE_NAME_RE.fullmatch(name)
    return (match["asin"], int(match["index"])) if match else None


@dataclass(frozen=True)
class RawLine:
    """One parsed JSONL line with its location, or the reason it could not be parsed."""

    where: str
    record: dict[str, Any] | None
    problem: str | None = None
    non_utf8: bool = False


def read_jsonl(path: Path) -> Iterator[RawLine]:
    """Yield every non-blank line of a JSONL file; never raises on a bad line."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                text, bad_bytes = raw.decode("utf-8"), False
            except UnicodeDecodeError:
                text, bad_bytes = raw.decode("utf-8", errors="replace"), True
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RawLine(where, None, f"malformed JSON ({exc.msg})", bad_bytes)
                continue
            if not isinstance(record, dict):
                yield RawLine(where, None, "line is not a JSON object", bad_bytes)
                continue
            yield RawLine(where, record, None, bad_bytes)


# Where an item's description is, best first (LLaVA's per-image descriptions, then the text).
DESCRIPTION_KEYS = ("image_description_llava_cleaned", "image_description", "description")


def _description(details: dict[str, Any]) -> str:
    for key in DESCRIPTION_KEYS:
        value = details.get(key)
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        if isinstance(value, str) and value.strip():
            return value
    return ""


@dataclass
class ItemMeta:
    """All item metadata of a data directory, read once per process."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (code, where, message)
    digest: str = ""


@functools.cache
def _load_meta(root: Path, stamp: tuple[int, ...]) -> ItemMeta:
    meta = ItemMeta()
    digest = hashlib.sha256()
    train = root / META_TRAIN
    if train.exists():
        data = _read_file(train, "re-download item2meta_train.json from the release")
        digest.update(data)
        try:
            payload = json.loads(data.decode("utf-8", errors="replace"),
                                 object_pairs_hook=functools.partial(_no_repeats, meta, train))
        except json.JSONDecodeError as exc:
            raise BenchError(
                f"malformed JSON: {exc.msg}",
                where=f"{train}:{exc.lineno}",
                hint="re-download item2meta_train.json from the release",
            ) from None
        if not isinstance(payload, dict):
            raise BenchError("expected a JSON object ASIN -> metadata", where=str(train))
        for asin, details in payload.items():
            if not isinstance(details, dict):
                meta.problems.append(("bad_metadata", str(train), f"{asin}: not an object"))
                continue
            meta.records[asin] = details
    valid = root / META_VALID
    if valid.exists():
        digest.update(_read_file(valid, "re-download item2meta_valid.jsonl from the release"))
        for line in read_jsonl(valid):
            if line.record is None:
                meta.problems.append(("bad_json", line.where, line.problem or ""))
                continue
            asin = str(line.record.get("image_name", ""))[:10]
            if not ASIN_RE.match(asin):
                meta.problems.append(("bad_asin", line.where, f"image_name {asin!r}"))
            else:  # several images of one item: the first described one stands for it
                meta.records.setdefault(asin, line.record)
    meta.digest = digest.hexdigest()
    return meta


def _read_file(path: Path, hint: str) -> bytes:
    if not path.is_file():
        raise BenchError("expected a file, found a directory", where=str(path), hint=hint)
    return path.read_bytes()


def _no_repeats(meta: ItemMeta, path: Path, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose repeated keys are counted (json keeps the last one silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out and isinstance(value, dict):
            meta.problems.append(("duplicate_metadata", str(path),
                                  f"{key} appears twice; the last entry is used"))
        out[key] = value
    return out


def load_meta(root: Path) -> ItemMeta:
    files = (root / META_TRAIN, root / META_VALID)
    stamp = tuple(int(p.stat().st_mtime_ns) if p.exists() else -1 for p in files)
    return _load_meta(root.resolve(), stamp)


def _asins(
    values: Any, where: str, field_name: str, warnings: Warnings, *, dedupe: bool = True
) -> tuple[str, ...]:
    """Check an ASIN list. Candidate lists are de-duplicated (a repeat would waste a slot);
    ground truths are kept as written, because the paper counts a repeated ground truth as
    two (conversation, item) pairs -- 864 pairs in all_beauty valid, not 837."""
    if not isinstance(values, list):
        warnings.add("bad_field", f"{field_name} is not a list", where=where)
        return ()
    out: list[str] = []
    for v in values:
        asin = str(v)
        if not ASIN_RE.match(asin):
            warnings.add("bad_asin", f"{field_name} holds {asin!r}", where=where)
        if asin in out:
            code = "duplicate_candidate" if dedupe else "repeated_ground_truth"
            warnings.add(code, f"{asin} repeated in {field_name}", where=where)
            if dedupe:
                continue
        out.append(asin)
    return tuple(out)


@dataclass
class ReleaseDataset:
    """A data directory in the release layout; ``load`` gives one domain/split."""

    root: Path
    name: str = "reddit-amazon"
    images_dir: Path | None = None
    fix_mojibake: bool = False

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if self.root.is_file():
            raise BenchError("expected a data directory, found a file", where=str(self.root),
                             hint="pass the folder holding {domain}/{split}.jsonl")
        if not self.root.is_dir():
            raise BenchError(
                f"data directory {self.root} does not exist",
                hint="pass --data-dir DIR holding {domain}/{split}.jsonl",
            )
        if self.images_dir is not None and not Path(self.images_dir).is_dir():
            raise BenchError("the images folder is not a directory", where=str(self.images_dir),
                             hint="set images_dir to the folder holding {ASIN}_0.jpg files")
        self.images_dir = Path(self.images_dir) if self.images_dir else self.root / IMAGES_DIR

    def domains(self) -> list[str]:
        found = [
            d.name for d in sorted(self.root.iterdir()) if d.is_dir() and any(d.glob("*.jsonl"))
        ]
        known = [d for d in DOMAINS if d in found]
        return known + [d for d in found if d not in known]

    def split_path(self, domain: str, split: str) -> Path:
        path = self.root / domain / f"{split}.jsonl"
        if path.exists() and not path.is_file():
            raise BenchError("expected a split file, found a directory", where=str(path),
                             hint="move the folder away; a split is one JSON-lines file")
        if not path.exists():
            present = sorted(p.stem for p in (self.root / domain).glob("*.jsonl"))
            raise BenchError(
                f"no {split} split for domain {domain!r}",
                where=str(path),
                hint=f"splits here: {', '.join(present) or 'none'}; "
                f"domains: {', '.join(self.domains())}",
            )
        return path

    def _text(self, text: str) -> str:
        return ftfy.fix_text(text) if self.fix_mojibake else text

    def catalog(self, domain: str, warnings: Warnings) -> Catalog:
        """Items of a domain: every ASIN its conversation files mention, plus items whose
        ``main_category`` names the domain, that have metadata."""
        meta = load_meta(self.root)
        for code, where, message in meta.problems:
            warnings.add(code, message, where=where)
        wanted: dict[str, None] = {}
        for split in SPLITS:
            path = self.root / domain / f"{split}.jsonl"
            if not path.exists():
                continue
            for line in read_jsonl(path):
                if line.record is None:
                    continue
                for key in ("gt_items", "context_items", *CANDIDATE_FIELDS):
                    values = line.record.get(key)
                    if isinstance(values, list):
                        wanted.update((str(v), None) for v in values)
        for asin, details in meta.records.items():
            if MAIN_CATEGORY.get(str(details.get("main_category"))) == domain:
                wanted[asin] = None
        items: dict[str, Item] = {}
        for asin in wanted:
            details = meta.records.get(asin)
            if details is None:
                continue
            image = self.images_dir / f"{asin}_0.jpg" if self.images_dir else None
            title = details.get("title")
            if not isinstance(title, str) or not title.strip():
                warnings.add("no_title", f"{asin}: title is {title!r}; shown without a title",
                             where=str(self.root / META_TRAIN))
                title = ""
            items[asin] = Item(
                asin=asin,
                title=self._text(title),
                description=self._text(_description(details)),
                image_path=image if image is not None and image.exists() else None,
            )
        return Catalog(items)

    def load(self, domain: str, split: str, *, warnings: Warnings | None = None) -> Split:
        warnings = warnings if warnings is not None else Warnings()
        path = self.split_path(domain, split)
        digest = hashlib.sha256(_read_file(path, "a split is one JSON-lines file"))
        conversations: list[Conversation] = []
        answers: dict[str, Answer] = {}
        seen: dict[bytes, str] = {}
        for line in read_jsonl(path):
            if line.non_utf8:
                warnings.add("non_utf8", "invalid UTF-8 replaced by U+FFFD", where=line.where)
            if line.record is None:
                warnings.add("bad_json", f"{line.problem}; line skipped", where=line.where)
                continue
            rec = line.record
            missing = [f for f in REQUIRED_FIELDS if f not in rec]
            if missing:
                warnings.add("missing_field", f"no {', '.join(missing)}; line skipped",
                             where=line.where)
                continue
            context = rec["context"]
            if not isinstance(context, str):
                warnings.add("bad_context", f"context is {type(context).__name__}, not a string; "
                             "line skipped", where=line.where)
                continue
            if not context.strip():
                warnings.add("empty_context", "empty context (kept: the prompt has no "
                             "conversation)", where=line.where)
            key = json.dumps(rec, sort_keys=True).encode()
            if key in seen:
                warnings.add("repeated_conversation", f"same as line {seen[key]} (kept: the "
                             "release counts it twice)", where=line.where)
            seen.setdefault(key, line.where.rsplit(":", 1)[1])
            gt_items = _asins(rec["gt_items"], line.where, "gt_items", warnings, dedupe=False)
            if not gt_items:
                warnings.add("no_ground_truth", "empty gt_items; line skipped", where=line.where)
                continue
            shipped = {
                short: _asins(rec[field_name], line.where, field_name, warnings)
                for field_name, short in CANDIDATE_FIELDS.items()
                if field_name in rec
            }
            conv_id = f"{domain}/{split}:{line.where.rsplit(':', 1)[1]}"
            conversations.append(
                Conversation(
                    id=conv_id,
                    context=self._text(context),
                    context_items=_asins(rec.get("context_items", []), line.where,
                                          "context_items", warnings),
                    shipped_candidates=shipped,
                )
            )
            answers[conv_id] = Answer(gt_items=gt_items, gt_text=str(rec.get("gt", "")))
        catalog = self.catalog(domain, warnings)
        digest.update(load_meta(self.root).digest.encode())
        digest.update(f"fix_mojibake={self.fix_mojibake}".encode())
        return Split(
            dataset=self.name,
            domain=domain,
            split=split,
            conversations=conversations,
            answers=answers,
            catalog=catalog,
            content_hash=digest.hexdigest(),
            warnings=warnings,
            root=self.root,
        )
