"""Writing the synthetic world in the release layout, and the cached copy per (seed, size)."""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.env import cache_root
from bench.core.errors import BenchError
from bench.task.data.release import (
    IMAGES_DIR,
    META_TRAIN,
    META_VALID,
    TRAIN_DESCRIPTIONS,
    VALID_DESCRIPTION,
    VALID_IMAGES_DIR,
    image_name,
)
from bench.task.data.schema import DOMAINS, SPLITS
from bench.task.data.synthetic.conversations import Index, conversation
from bench.task.data.synthetic.images import photo, render, view_description, view_names
from bench.task.data.synthetic.items import Product, make_asins, make_items
from bench.task.data.synthetic.lexicon import DOMAIN_SPECS

GENERATOR_VERSION = 2
ATTRIBUTES_FILE = "synthetic_attributes.json"
REQUESTS_FILE = "synthetic_requests.json"
MANIFEST_FILE = "SYNTHETIC.json"
JPEG_QUALITY = 90


@dataclass(frozen=True)
class SizeSpec:
    items_per_domain: int
    conversations: tuple[int, int, int]  # train, valid, test (per domain)
    image_side: tuple[int, int]  # min, max side in pixels
    valid_items: int = 16  # records of item2meta_valid.jsonl (all domains together)


SIZES: dict[str, SizeSpec] = {
    "small": SizeSpec(150, (60, 30, 40), (48, 192)),
    "medium": SizeSpec(600, (400, 100, 150), (48, 192)),
    "large": SizeSpec(17_000, (2_000, 400, 700), (16, 40)),
}


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def _spec(size: str) -> SizeSpec:
    try:
        return SIZES[size]
    except KeyError:
        raise BenchError(
            f"unknown synthetic size {size!r}", hint=f"valid sizes: {', '.join(SIZES)}"
        ) from None


def synthesize(out: Path, *, seed: int, size: str) -> Path:
    """Write the synthetic world for ``(seed, size)`` into ``out`` in the release layout."""
    spec = _spec(size)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BenchError("expected a folder to write the dataset into, found a file",
                         where=str(out), hint="pass a new or existing folder to --out")
    images, valid_images = out / IMAGES_DIR, out / VALID_IMAGES_DIR
    images.mkdir(parents=True, exist_ok=True)
    valid_images.mkdir(exist_ok=True)
    master = random.Random(f"lavic-synthetic:{seed}")
    first_held_out = spec.items_per_domain * len(DOMAINS)
    asins = make_asins(master, first_held_out + spec.valid_items)

    meta: dict[str, dict[str, Any]] = {}
    attributes: dict[str, dict[str, str]] = {}
    requests: dict[str, dict[str, list[dict[str, str]]]] = {}
    counts: dict[str, dict[str, int]] = {}
    catalog: list[Product] = []
    held_out: list[Product] = []
    for d, domain in enumerate(DOMAINS):
        rng = random.Random(f"lavic-synthetic:{seed}:{domain}")
        dspec = DOMAIN_SPECS[domain]
        own = asins[d * spec.items_per_domain : (d + 1) * spec.items_per_domain]
        items = make_items(rng, domain, own, spec.image_side)
        # Held-out items for item2meta_valid.jsonl: pictured, but in no conversation or catalog,
        # like the release's validation images.
        held_out.extend(make_items(rng, domain, asins[first_held_out + d :: len(DOMAINS)],
                                   spec.image_side))
        catalog.extend(items)
        for item in items:
            views = view_names(item.asin, seed)
            names = [image_name(item.asin, k) for k in range(len(views))]
            meta[item.asin] = {
                "title": item.title,
                "description": item.description,
                "images": [{"large": f"synthetic://{name}"} for name in names],
                TRAIN_DESCRIPTIONS: {name: view_description(item, view)
                                     for name, view in zip(names, views, strict=True)},
                "main_category": dspec.main_category,
                "categories": [dspec.department, item.category.phrasings[0].title()],
            }
        index = Index.build(items)
        counts[domain] = {"items": len(items)}
        requests[domain] = {}
        (out / domain).mkdir(exist_ok=True)
        for split, n in zip(SPLITS, spec.conversations, strict=True):
            pairs = [conversation(rng, index) for _ in range(n)]
            _write_jsonl(out / domain / f"{split}.jsonl", (row for row, _ in pairs))
            requests[domain][split] = [asked for _, asked in pairs]
            counts[domain][split] = n

    for item in (*catalog, *held_out):
        kind = {"domain": item.domain, "category": item.category.name}
        attributes[item.asin] = {**kind, **item.attrs}
    for item in catalog:
        front = render(item, seed)
        for k, view in enumerate(view_names(item.asin, seed)):
            photo(item, seed, view, front).save(images / image_name(item.asin, k), "JPEG",
                                                 quality=JPEG_QUALITY)
    valid_records: list[dict[str, str]] = []
    for item in held_out:  # one photo each, in valid_images/ like the release's
        views = view_names(item.asin, seed)
        k = random.Random(f"{seed}:valid-view:{item.asin}").randrange(len(views))
        name = image_name(item.asin, k)
        photo(item, seed, views[k], render(item, seed)).save(
            valid_images / name, "JPEG", quality=JPEG_QUALITY)
        valid_records.append({"title": item.title, "image_name": name,
                              "image": f"synthetic://{name}",
                              VALID_DESCRIPTION: view_description(item, views[k])})
    _write_jsonl(out / META_VALID, valid_records)
    (out / META_TRAIN).write_text(json.dumps(meta), encoding="utf-8")
    (out / ATTRIBUTES_FILE).write_text(json.dumps(attributes), encoding="utf-8")
    (out / REQUESTS_FILE).write_text(json.dumps(requests), encoding="utf-8")
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "size": size,
        "counts": counts,
        "items": len(meta),
        "valid_items": len(held_out),
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out


def ensure_synthetic(*, seed: int = 0, size: str = "medium", cache_dir: Path | None = None) -> Path:
    """The cached world for ``(seed, size)``, generated once, atomically, on first use.

    Generation writes into a temporary sibling and renames it into place, so a killed run or a
    concurrent one never leaves a half-written dataset under the final name.
    """
    _spec(size)
    parent = (cache_dir or cache_root()) / "synthetic"
    final = parent / f"{size}-seed{seed}-v{GENERATOR_VERSION}"
    if (final / MANIFEST_FILE).is_file():
        return final
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=parent))
    try:
        synthesize(tmp, seed=seed, size=size)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        if final.exists() and not (final / MANIFEST_FILE).is_file():
            shutil.rmtree(final)  # a damaged copy, e.g. files deleted by hand
        os.replace(tmp, final)
    except OSError:
        if not (final / MANIFEST_FILE).is_file():
            raise  # not just a concurrent run that finished first
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
