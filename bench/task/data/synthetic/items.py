"""The synthetic catalog: ASINs (about 7% ISBN-like), brands, titles that mostly do not
state an item's look, and the descriptions that do."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from bench.task.data.synthetic.lexicon import (
    ATTRIBUTE_KINDS,
    DOMAIN_SPECS,
    LEXICON,
    CategorySpec,
    requested_attributes,
)

_LINES = ("Classic", "Luxe", "Everyday", "Studio", "Essentials", "Pro", "Signature", "Daily")
_SYLLABLES = ("lu", "mo", "ra", "ve", "ki", "zen", "na", "so", "ri", "dor", "fin", "bel", "mar")


@dataclass(frozen=True)
class Product:
    asin: str
    domain: str
    category: CategorySpec
    attrs: dict[str, str]  # kind -> canonical value
    title: str
    description: str
    width: int
    height: int


def article(word: str) -> str:
    return "an" if word[0] in "aeio" else "a"


def countable(noun: str) -> str:
    """'sneakers' -> 'pair of sneakers', so that 'a ...' and 'this ... is' read right."""
    return f"pair of {noun}" if noun.endswith("s") and not noun.endswith("ss") else noun


def make_asins(rng: random.Random, n: int) -> list[str]:
    """Mostly ``B0`` + 8 alphanumerics, ~7% ISBN-10-like (digits, maybe a final X)."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        if rng.random() < 0.07:
            asin = "".join(rng.choice("0123456789") for _ in range(9)) + rng.choice("0123456789X")
        else:
            asin = "B0" + "".join(rng.choice(alphabet) for _ in range(8))
        if asin not in seen:
            seen.add(asin)
            out.append(asin)
    return out


def _make_brands(rng: random.Random, n: int) -> list[str]:
    brands: list[str] = []
    while len(brands) < n:
        name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 3)))).capitalize()
        if name not in brands and not requested_attributes(name):
            brands.append(name)
    return brands


def _describe(rng: random.Random, cat: CategorySpec, attrs: dict[str, str]) -> str:
    colour, pattern, shape, finish = (LEXICON[k][attrs[k]][0] for k in ATTRIBUTE_KINDS)
    noun = countable(cat.phrasings[0])
    templates = (
        f"The image shows {article(shape)} {shape} {noun} in {colour}. It has {article(pattern)}"
        f" {pattern} design and {article(finish)} {finish} finish.",
        f"This {noun} is {colour} with {article(pattern)} {pattern} design. Its outline is"
        f" {shape}, and the surface has {article(finish)} {finish} finish.",
        f"{article(colour).capitalize()} {colour} {noun} is shown on a light background. It is"
        f" {shape} and has {article(pattern)} {pattern} design with {article(finish)} {finish}"
        " finish.",
    )
    return f"{rng.choice(templates)} {rng.choice(cat.details)}"


def make_items(
    rng: random.Random, domain: str, asins: Sequence[str], image_side: tuple[int, int]
) -> list[Product]:
    dspec = DOMAIN_SPECS[domain]
    brands = _make_brands(rng, 12)
    lo, hi = image_side
    items: list[Product] = []
    for i, asin in enumerate(asins):
        cat = dspec.categories[i % len(dspec.categories)]
        attrs = {
            "colour": rng.choice(tuple(LEXICON["colour"])),
            "pattern": rng.choice(tuple(LEXICON["pattern"])),
            "shape": rng.choice(cat.shapes),
            "finish": rng.choice(tuple(LEXICON["finish"])),
        }
        title = (
            f"{rng.choice(brands)} {rng.choice(_LINES)} {cat.phrasings[0].title()}"
            f" {rng.choice(cat.sizes)}, {rng.choice(cat.features)}"
        )
        # A minority of titles name the colour (sometimes also the pattern); never everything.
        if rng.random() < 0.2:
            title += f" - {LEXICON['colour'][attrs['colour']][0].title()}"
            if rng.random() < 0.4:
                title += f" {LEXICON['pattern'][attrs['pattern']][0].title()}"
        width, height = rng.randint(lo, hi), rng.randint(lo, hi)
        items.append(
            Product(asin, domain, cat, attrs, title, _describe(rng, cat, attrs), width, height)
        )
    return items
