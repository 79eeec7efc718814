"""The synthetic world: release layout, determinism, and that vision matters.

The last point is the reason the dataset exists: an oracle that sees the true attributes must
reach (almost) every answer that is among the candidates, while a title-only method must not.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bench.core.context import BuildContext
from bench.core.errors import BenchError
from bench.core.registry import generators, load_plugins
from bench.task.data.schema import ASIN_RE, DOMAINS, SPLITS, Conversation, Item
from bench.task.data.synthetic import (
    ATTRIBUTE_KINDS,
    CHITCHAT,
    COLOUR_RGB,
    GENERATOR_VERSION,
    LEXICON,
    SIZES,
    VIEWS,
    ensure_synthetic,
    requested_attributes,
    synthesize,
)
from bench.task.data.validate import validate
from bench.task.protocols import Generator, Request

CONVERSATION_FIELDS = {
    "context",
    "context_items",
    "gt",
    "gt_items",
    "candidates_st",
    "candidates_gpt_large",
}
VALID_FIELDS = {"title", "image_name", "image", "image_description_llava_cleaned"}
MAIN_CATEGORIES = {"All Beauty", "AMAZON FASHION", "Amazon Home"}
MOJIBAKE = "\u00e2\u0080\u0099"
DESCRIBED = "image_descriptions_llava_cleaned"
# What the harness reads of seed 0, small, as generator version 1 wrote it (before items had
# several photos): the extra photos must not move any other random stream.
V1_SMALL_SEED0 = {
    "items": "4e9acf62c0a63d877bbc14e319ed61efe944211d921b30f1532f1e5a894bdb6e",
    "conversations": "041e6327ead01d231dd166d4ddeedac511c691a0f06682b8d45aed96aef9a77c",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(tmp_path_factory.mktemp("seed0"), seed=0, size="small")


@pytest.fixture(scope="module")
def other_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(tmp_path_factory.mktemp("seed1"), seed=1, size="small")


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _rows(root: Path, domain: str, split: str) -> list[dict[str, Any]]:
    lines = (root / domain / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _meta(root: Path) -> dict[str, dict[str, Any]]:
    return json.loads((root / "item2meta_train.json").read_text(encoding="utf-8"))


def _attributes(root: Path) -> dict[str, dict[str, str]]:
    return json.loads((root / "synthetic_attributes.json").read_text(encoding="utf-8"))


def _all_rows(root: Path) -> list[dict[str, Any]]:
    return [row for d in DOMAINS for s in SPLITS for row in _rows(root, d, s)]


def _distance(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))


def test_same_seed_same_bytes_other_seed_differs(
    world: Path, other_world: Path, tmp_path: Path
) -> None:
    again = _digest(synthesize(tmp_path / "again", seed=0, size="small"))
    assert again == _digest(world)
    assert any(p.endswith(".jpg") for p in again)
    different = _digest(other_world)
    for name in ("item2meta_train.json", "all_beauty/test.jsonl"):
        assert different[name] != again[name]


def test_release_layout_and_field_names(world: Path) -> None:
    spec = SIZES["small"]
    meta = _meta(world)
    attributes = _attributes(world)
    manifest = json.loads((world / "SYNTHETIC.json").read_text())
    assert manifest["generator_version"] == GENERATOR_VERSION
    assert (manifest["seed"], manifest["size"]) == (0, "small")
    assert manifest["items"] == len(meta) == spec.items_per_domain * len(DOMAINS)
    for domain in DOMAINS:
        for split, n in zip(SPLITS, spec.conversations, strict=True):
            rows = _rows(world, domain, split)
            assert len(rows) == n == manifest["counts"][domain][split]
            for row in rows:
                assert set(row) == CONVERSATION_FIELDS
                assert row["context"].startswith("<submission>")
                assert row["context"].endswith("</comment>\n") or row["context"].endswith(
                    "</submission>\n"
                )
                assert 1 <= len(row["gt_items"]) <= 3
                for asin in row["gt_items"]:
                    assert f"/dp/{asin}" in row["gt"]  # the reply quotes its answer
                for asin in row["gt_items"] + row["context_items"]:
                    assert attributes[asin]["domain"] == domain
    photos = set()
    for asin, record in meta.items():
        assert set(record) == {"title", "description", "images", DESCRIBED, "main_category",
                               "categories"}
        assert record["main_category"] in MAIN_CATEGORIES
        names = [f"{asin}_{k}.jpg" for k in range(len(record["images"]))]
        assert 2 <= len(names) <= 3
        assert record["images"] == [{"large": f"synthetic://{name}"} for name in names]
        assert list(record[DESCRIBED]) == names  # one LLaVA-style description per photo
        photos.update(names)
    assert {p.name for p in (world / "train_images").iterdir()} == photos
    valid = [json.loads(line) for line in (world / "item2meta_valid.jsonl").open()]
    assert len(valid) == spec.valid_items
    for record in valid:
        assert set(record) == VALID_FIELDS
        asin, _, k = record["image_name"].removesuffix(".jpg").rpartition("_")
        assert asin not in meta and asin in attributes and k in "012"  # held out
    assert {p.name for p in (world / "valid_images").iterdir()} == {
        r["image_name"] for r in valid}
    assert {int(r["image_name"][-5]) for r in valid} != {0}  # each photo keeps its index
    report = validate(world)
    assert report.ok and report.items["no_image"] == 0, report.render()


def _harness_view(root: Path) -> dict[str, str]:
    """Hashes of what the harness reads: item text fields and the conversation files."""
    meta = _meta(root)
    shown = {a: {k: m[k] for k in ("title", "description", "main_category", "categories")}
             for a, m in meta.items()}
    digest = hashlib.sha256()
    for domain in DOMAINS:
        for split in SPLITS:
            digest.update((root / domain / f"{split}.jsonl").read_bytes())
    return {"items": hashlib.sha256(json.dumps(shown).encode()).hexdigest(),
            "conversations": digest.hexdigest()}


def test_the_harness_reads_what_generator_v1_wrote(world: Path) -> None:
    assert _harness_view(world) == V1_SMALL_SEED0


def test_each_photo_has_its_own_description(world: Path) -> None:
    attributes = _attributes(world)
    assert all(requested_attributes(sentence) == {} for sentence in VIEWS.values())
    for asin, record in _meta(world).items():
        attrs = attributes[asin]
        texts = list(record[DESCRIBED].values())
        assert len(set(texts)) == len(texts) and record["description"] not in texts
        for text in texts:  # every photo shows the attributes; the sentence says how
            assert text.startswith(record["description"])
            assert requested_attributes(text) == {k: attrs[k]
                                                  for k in ("category", *ATTRIBUTE_KINDS)}
        with Image.open(world / "train_images" / f"{asin}_0.jpg") as front:
            for name in list(record[DESCRIBED])[1:]:
                with Image.open(world / "train_images" / name) as other:
                    assert other.size == front.size and other.tobytes() != front.tobytes()


def test_asins_are_release_like_and_unique_across_domains(world: Path) -> None:
    attributes = _attributes(world)
    assert all(ASIN_RE.match(a) for a in attributes)
    assert sum(a.startswith("B0") for a in attributes) > 0.8 * len(attributes)
    assert any(a[0].isdigit() for a in attributes)  # ISBN-10 style
    seen: dict[str, str] = {}
    for domain in DOMAINS:
        for split in SPLITS:
            for row in _rows(world, domain, split):
                for field in ("candidates_st", "candidates_gpt_large"):
                    for asin in row[field]:
                        assert seen.setdefault(asin, domain) == domain


def test_candidate_lists(world: Path) -> None:
    attributes = _attributes(world)
    rows = _all_rows(world)
    for field, low, high in (("candidates_st", 0.6, 0.88), ("candidates_gpt_large", 0.72, 0.96)):
        lists = [row[field] for row in rows]
        assert all(len(c) == 10 == len(set(c)) for c in lists)
        hit = [any(g in c for g in row["gt_items"]) for row, c in zip(rows, lists, strict=True)]
        assert low <= sum(hit) / len(rows) <= high
        # Not in score order: the answer turns up at every position.
        pairs = zip(rows, lists, strict=True)
        positions = {c.index(g) for row, c in pairs for g in row["gt_items"] if g in c}
        assert positions == set(range(10))
        same = sum(
            attributes[a]["category"] == attributes[row["gt_items"][0]]["category"]
            for row, c in zip(rows, lists, strict=True)
            for a in c
        )
        assert same > 0.6 * 10 * len(rows)  # mostly same-category, like a retriever's top-10
    multi = sum(len(row["gt_items"]) > 1 for row in rows) / len(rows)
    assert 0 < multi < 0.15


def test_quirks_mojibake_and_earlier_items(world: Path) -> None:
    rows = _all_rows(world)
    mojibake = sum(MOJIBAKE in row["context"] for row in rows) / len(rows)
    assert 0 < mojibake < 0.15
    earlier = [row for row in rows if row["context_items"]]
    assert 0 < len(earlier) < 0.3 * len(rows)
    for row in earlier:
        assert f"/dp/{row['context_items'][0]}" in row["context"]


def test_images_vary_decode_and_show_the_colour(world: Path) -> None:
    attributes = _attributes(world)
    lo, hi = SIZES["small"].image_side
    sizes = set()
    for asin in _meta(world):
        with Image.open(world / "train_images" / f"{asin}_0.jpg") as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            sizes.add(image.size)
            attrs = attributes[asin]
            if attrs["pattern"] == "solid" and attrs["finish"] == "matte":
                # The object's centre is its colour, nearer to it than to any other colour.
                pixel = image.getpixel((image.width // 2, image.height // 2))
                assert isinstance(pixel, tuple)
                nearest = min(COLOUR_RGB, key=lambda c, p=pixel: _distance(COLOUR_RGB[c], p))
                assert nearest == attrs["colour"], asin
    assert all(lo <= w <= hi and lo <= h <= hi for w, h in sizes)
    ratios = [w / h for w, h in sizes]
    assert len(sizes) > 100 and min(ratios) < 0.5 and max(ratios) > 2


def test_titles_mostly_hide_attributes_descriptions_show_them(world: Path) -> None:
    attributes = _attributes(world)
    meta = _meta(world)
    stated = 0
    for asin, record in meta.items():
        attrs = attributes[asin]
        in_title = requested_attributes(record["title"])
        assert in_title["category"] == attrs["category"]
        assert not all(k in in_title for k in ATTRIBUTE_KINDS)
        stated += in_title.get("colour") == attrs["colour"]
        described = requested_attributes(record["description"])
        assert described == {k: attrs[k] for k in ("category", *ATTRIBUTE_KINDS)}, asin
    assert 0.05 < stated / len(meta) < 0.3


def test_requested_attributes() -> None:
    assert requested_attributes("ISO a teal-ish lippie, spotted, heart-shaped please") == {
        "category": "lipstick",
        "colour": "teal",
        "pattern": "dots",
        "shape": "heart",
    }
    assert requested_attributes("a SEA GREEN vase")["colour"] == "teal"  # not "green"
    assert requested_attributes("polka-dot rug with a shiny finish") == {
        "category": "rug",
        "pattern": "dots",
        "finish": "glossy",
    }
    assert requested_attributes("pinkish") == {"colour": "pink"}
    assert requested_attributes("a tankard") == {}  # "tan" only as a whole word
    for comment in CHITCHAT:
        assert requested_attributes(comment) == {}, comment
    for kind, values in LEXICON.items():
        for value, phrasings in values.items():
            for phrase in phrasings:
                assert requested_attributes(f"I want {phrase}.") == {kind: value}


def test_requested_attributes_recovers_what_the_generator_asked(world: Path) -> None:
    asked = json.loads((world / "synthetic_requests.json").read_text())
    total = recovered = 0
    for domain in DOMAINS:
        for split in SPLITS:
            for row, want in zip(_rows(world, domain, split), asked[domain][split], strict=True):
                assert 2 <= len(want) <= 4  # the category plus 1-3 attributes
                total += 1
                recovered += requested_attributes(row["context"]) == want
    assert recovered >= 0.95 * total


def _requests(root: Path, domain: str) -> tuple[list[Request], list[dict[str, Any]]]:
    meta = _meta(root)
    items = {
        asin: Item(asin, m["title"], m["description"], root / "train_images" / f"{asin}_0.jpg")
        for asin, m in meta.items()
    }
    rows = _rows(root, domain, "test")
    requests = [
        Request(
            Conversation(f"{domain}/{i}", row["context"], tuple(row["context_items"])),
            tuple(items[a] for a in row["candidates_st"]),
        )
        for i, row in enumerate(rows)
    ]
    return requests, rows


def _built(name: str) -> Generator:
    load_plugins()
    generator = generators.build(name, BuildContext())
    assert isinstance(generator, Generator)
    return generator


@pytest.mark.parametrize("which", ["world", "other_world"])
def test_oracle_reaches_the_ceiling_lexical_does_not(which: str, request: Any) -> None:
    root: Path = request.getfixturevalue(which)
    oracle, lexical = _built("oracle"), _built("lexical")
    pairs = in_candidates = oracle_hits = lexical_hits = 0
    for domain in DOMAINS:
        requests, rows = _requests(root, domain)
        by_oracle = oracle.recommend(requests)
        by_lexical = lexical.recommend(requests)
        assert by_oracle == oracle.recommend(requests)  # deterministic
        for row, req, o, lx in zip(rows, requests, by_oracle, by_lexical, strict=True):
            presented = [c.asin for c in req.candidates]
            assert o.item_id in presented and lx.item_id in presented and o.raw
            pairs += len(row["gt_items"])
            in_candidates += sum(g in presented for g in row["gt_items"])
            oracle_hits += o.item_id in row["gt_items"]
            lexical_hits += lx.item_id in row["gt_items"]
    oracle_hr, lexical_hr = oracle_hits / pairs, lexical_hits / pairs
    assert oracle_hr >= 0.9 * in_candidates / pairs
    assert lexical_hr < 0.6 * oracle_hr


def test_generators_break_ties_by_presented_order(world: Path) -> None:
    requests, _ = _requests(world, "all_beauty")
    a, b = requests[0].candidates[:2]
    twin = Item("B0AAAAAAAA", a.title, a.description, a.image_path)
    unclear = Conversation("c", "<submission>hello there</submission>\n")  # asks for nothing
    for name, first, second in (("lexical", a, twin), ("lexical", twin, a), ("oracle", a, b)):
        for order in ((first, second), (second, first)):
            choice = _built(name).recommend([Request(unclear, order)])[0]
            assert choice.item_id == order[0].asin, name
    empty = Request(unclear, ())
    assert _built("oracle").recommend([empty])[0].item_id is None


def test_oracle_refuses_other_datasets(tmp_path: Path) -> None:
    item = Item("B000000001", "A mug", "", tmp_path / "train_images" / "B000000001_0.jpg")
    request = Request(Conversation("c", "<submission>a red mug</submission>\n"), (item,))
    with pytest.raises(BenchError) as info:
        _built("oracle").recommend([request])
    assert "synthetic" in info.value.one_line() and "\n" not in info.value.one_line()


def test_sizes() -> None:
    large = SIZES["large"]
    assert large.items_per_domain * len(DOMAINS) >= 50_000
    assert large.conversations[2] * len(DOMAINS) >= 2_000
    with pytest.raises(BenchError, match="unknown synthetic size") as info:
        ensure_synthetic(size="huge")
    assert "small, medium, large" in info.value.one_line()


def test_ensure_synthetic_generates_once(tmp_path: Path) -> None:
    root = ensure_synthetic(seed=3, size="small", cache_dir=tmp_path)
    assert root == tmp_path / "synthetic" / f"small-seed3-v{GENERATOR_VERSION}"
    stamp = (root / "SYNTHETIC.json").stat().st_mtime_ns
    assert ensure_synthetic(seed=3, size="small", cache_dir=tmp_path) == root
    assert (root / "SYNTHETIC.json").stat().st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "synthetic").iterdir()] == [root.name]  # no temp dirs
