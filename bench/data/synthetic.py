"""A synthetic, visually grounded stand-in for the Reddit-Amazon release.

The real train/test splits and product images are not redistributable, so the harness needs a
world it can generate anywhere, in exactly the release layout, where *vision matters*: users ask
for a product category plus visual attributes (colour, pattern, shape, finish) in varied
wording, titles mostly do not state those attributes, and only the pictures (and the
LLaVA-style descriptions standing in for the release's image descriptions) show them. A
text-only method over titles therefore has a visible ceiling, while an oracle that sees the
attributes does not. As in the release, every item has several photos
(``train_images/{ASIN}_{k}.jpg``; the harness shows ``_0``), each with its own description in
``image_descriptions_llava_cleaned``, and the validation records' photos are in
``valid_images/``. Everything is derived from the seed with private RNGs, so the same seed
gives byte-identical files.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from math import cos, pi, sin
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from bench.data.release import (
    IMAGES_DIR,
    META_TRAIN,
    META_VALID,
    TRAIN_DESCRIPTIONS,
    VALID_DESCRIPTION,
    VALID_IMAGES_DIR,
    image_name,
)
from bench.data.schema import DOMAINS, SPLITS
from bench.errors import BenchError
from bench.models import cache_root

GENERATOR_VERSION = 2
ATTRIBUTE_KINDS = ("colour", "pattern", "shape", "finish")
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

# Attribute kind -> canonical value -> phrasings. The first phrasing is the plain adjective
# used in descriptions and titles; the rest are the varied ways users ask for it.
LEXICON: dict[str, dict[str, tuple[str, ...]]] = {
    "colour": {
        "red": ("red", "scarlet", "crimson", "cherry red", "reddish", "fire engine red"),
        "pink": ("pink", "pinkish", "rosy", "blush pink", "bubblegum", "hot pink"),
        "orange": ("orange", "tangerine", "burnt orange", "orangey", "pumpkin coloured"),
        "yellow": ("yellow", "mustard", "lemon yellow", "canary yellow", "yellowish"),
        "green": ("green", "emerald", "forest green", "greenish", "grass green"),
        "teal": ("teal", "teal-ish", "turquoise", "sea green", "blue-green", "aqua"),
        "blue": ("blue", "navy", "cobalt", "royal blue", "bluish", "sky blue"),
        "purple": ("purple", "violet", "lavender", "plum", "purplish", "lilac"),
        "black": ("black", "jet black", "ebony", "all-black", "inky"),
        "white": ("white", "ivory", "snow white", "off-white", "cream coloured"),
        "brown": ("brown", "chocolate", "tan", "caramel", "brownish", "coffee coloured"),
        "grey": ("grey", "gray", "charcoal", "slate grey", "greyish", "ash grey"),
    },
    "pattern": {
        "solid": ("solid", "plain", "single-colour", "block colour", "patternless"),
        "stripes": ("striped", "stripes", "stripy", "pinstripe", "banded"),
        "dots": ("polka dot", "polka-dot", "dotty", "spotted", "dotted", "polka dots"),
        "checks": ("checkered", "checked", "plaid", "gingham", "tartan", "chequered"),
        "zigzag": ("zigzag", "zig-zag", "chevron", "zig zag", "chevrons"),
        "argyle": ("argyle", "diamond print", "harlequin", "diamond pattern"),
    },
    "shape": {
        "round": ("round", "circular", "circle-shaped", "disc-shaped"),
        "square": ("square", "boxy", "square-shaped", "squared-off"),
        "tall": ("tall", "tall and narrow", "slim and tall", "elongated", "lanky"),
        "wide": ("wide", "squat", "low and wide", "broad", "stubby"),
        "heart": ("heart-shaped", "heart shaped", "shaped like a heart", "love-heart"),
        "triangle": ("triangular", "triangle", "three-cornered", "pyramid-shaped"),
    },
    "finish": {
        "matte": ("matte", "matt", "non-shiny", "velvety", "flat-finish"),
        "glossy": ("glossy", "shiny", "high-shine", "lacquered", "wet-look"),
        "glitter": ("glittery", "glitter", "sparkly", "shimmery", "sparkling"),
    },
}


@dataclass(frozen=True)
class CategorySpec:
    name: str  # canonical category value
    phrasings: tuple[str, ...]  # how users ask for it; the first is the title noun
    shapes: tuple[str, ...]
    sizes: tuple[str, ...]
    features: tuple[str, ...]
    details: tuple[str, ...]  # description filler free of attribute words


@dataclass(frozen=True)
class DomainSpec:
    main_category: str
    department: str
    categories: tuple[CategorySpec, ...]


DOMAIN_SPECS: dict[str, DomainSpec] = {
    "all_beauty": DomainSpec(
        "All Beauty",
        "Beauty & Personal Care",
        (
            CategorySpec(
                "lipstick",
                ("lipstick", "lippie", "lip stick", "lip colour"),
                ("tall", "square", "round", "triangle"),
                ("3.5 g", "4 g", "0.12 oz", "Pack of 2"),
                ("Long Lasting", "Hydrating Formula", "Vegan", "Cruelty Free", "Transfer Proof"),
                ("The bullet sits in a slim twist-up case.", "A small cap protects the tip."),
            ),
            CategorySpec(
                "nail polish",
                ("nail polish", "nail varnish", "nail lacquer", "mani polish"),
                ("round", "square", "tall", "heart"),
                ("0.5 fl oz", "15 ml", "Set of 3", "10 ml"),
                ("Quick Dry", "Chip Resistant", "Salon Quality", "Non-Toxic", "Long Wear"),
                ("The bottle has a brush built into the cap.", "A short cap sits on top."),
            ),
            CategorySpec(
                "compact",
                ("compact", "powder compact", "compact mirror", "pocket compact"),
                ("round", "square", "heart", "wide"),
                ("8 g", "0.28 oz", "Refillable", "2 Pack"),
                ("Pressed Powder", "Travel Size", "Dual Sided", "With Puff", "Magnetic Clasp"),
                ("A mirror is built into the lid.", "The lid closes with a small clasp."),
            ),
            CategorySpec(
                "hairbrush",
                ("hairbrush", "hair brush", "paddle brush", "detangling brush"),
                ("wide", "round", "tall", "square"),
                ("9 inch", "Travel Size", "Full Size", "Set of 2"),
                ("Boar Bristle", "Anti-Static", "For All Hair Types", "Cushioned Base", "Vented"),
                ("Soft bristles cover the head of the brush.", "The handle is easy to hold."),
            ),
            CategorySpec(
                "makeup bag",
                ("makeup bag", "cosmetic bag", "toiletry bag", "makeup pouch"),
                ("wide", "square", "round", "heart"),
                ("Small", "Large", "9 x 6 inch", "2 Pack"),
                ("Waterproof Lining", "Zipper Closure", "Travel Organizer", "Portable", "Roomy"),
                ("A zipper runs along the top edge.", "The bag looks roomy and easy to pack."),
            ),
        ),
    ),
    "amazon_fashion": DomainSpec(
        "AMAZON FASHION",
        "Clothing, Shoes & Jewelry",
        (
            CategorySpec(
                "dress",
                ("dress", "sundress", "frock", "midi dress"),
                ("tall", "triangle", "square", "wide"),
                ("Size S", "Size M", "Size L", "Size XL"),
                ("Short Sleeve", "A-Line", "Casual Summer", "With Pockets", "Knee Length"),
                ("The fabric drapes softly.", "It looks comfortable for everyday wear."),
            ),
            CategorySpec(
                "scarf",
                ("scarf", "shawl", "neckerchief", "pashmina"),
                ("wide", "square", "tall", "triangle"),
                ("70 x 180 cm", "One Size", "27 inch", "Pack of 2"),
                ("Lightweight", "Soft Knit", "Oversized", "Warm Winter", "Cozy"),
                ("The fabric looks soft to the touch.", "The ends are neatly finished."),
            ),
            CategorySpec(
                "sneaker",
                ("sneakers", "trainers", "running shoes", "kicks"),
                ("wide", "round", "tall", "square"),
                ("US 7", "US 8", "US 9", "US 10"),
                ("Lace-Up", "Breathable Mesh", "Cushioned Sole", "Lightweight", "Everyday"),
                ("The laces are tied in a neat bow.", "A cushioned sole runs underneath."),
            ),
            CategorySpec(
                "handbag",
                ("handbag", "purse", "tote", "shoulder bag"),
                ("square", "wide", "round", "heart"),
                ("Medium", "Large", "Mini", "12 inch"),
                ("Faux Leather", "Crossbody Strap", "Top Handle", "Zip Closure", "Roomy"),
                ("A strap is attached at the top.", "The handles look sturdy."),
            ),
            CategorySpec(
                "hat",
                ("hat", "beanie", "bucket hat", "sun hat"),
                ("round", "triangle", "tall", "wide"),
                ("One Size", "Adjustable", "S/M", "L/XL"),
                ("Packable", "Sun Protection", "Soft Knit", "Unisex", "Breathable"),
                ("The brim is evenly stitched.", "It looks easy to pack for travel."),
            ),
        ),
    ),
    "amazon_home": DomainSpec(
        "Amazon Home",
        "Home & Kitchen",
        (
            CategorySpec(
                "vase",
                ("vase", "flower vase", "bud vase", "ceramic vase"),
                ("tall", "round", "square", "triangle"),
                ("8 inch", "10 inch", "Set of 2", "6 inch"),
                ("Ceramic", "Decorative", "Centerpiece", "Handmade", "Modern"),
                ("The opening at the top is small.", "It would suit fresh or dried flowers."),
            ),
            CategorySpec(
                "mug",
                ("mug", "coffee mug", "tea mug", "coffee cup"),
                ("tall", "wide", "round", "square"),
                ("12 oz", "16 oz", "Set of 2", "350 ml"),
                ("Stoneware", "Microwave Safe", "Dishwasher Safe", "Large Handle", "Gift"),
                ("A handle is attached on one side.", "It looks sturdy for daily coffee."),
            ),
            CategorySpec(
                "cushion",
                ("cushion", "throw pillow", "pillow", "cushion cover"),
                ("square", "round", "heart", "wide"),
                ("18 x 18 inch", "20 x 20 inch", "Set of 2", "45 cm"),
                ("Decorative", "Zipper Cover", "Soft Filling", "Sofa Couch", "Washable"),
                ("The edges are neatly piped.", "It looks soft and well filled."),
            ),
            CategorySpec(
                "lamp",
                ("lamp", "table lamp", "bedside lamp", "desk lamp"),
                ("tall", "round", "triangle", "wide"),
                ("15 inch", "20 inch", "LED Bulb Included", "Set of 2"),
                ("Bedside", "Dimmable", "USB Port", "Touch Control", "Modern"),
                ("A fabric shade sits on top.", "The base looks stable."),
            ),
            CategorySpec(
                "rug",
                ("rug", "area rug", "runner rug", "doormat"),
                ("wide", "round", "square", "tall"),
                ("2 x 3 ft", "3 x 5 ft", "5 x 7 ft", "4 ft"),
                ("Machine Washable", "Non-Slip Backing", "Low Pile", "Soft", "Indoor"),
                ("The edges are bound neatly.", "It looks soft underfoot."),
            ),
        ),
    ),
}

# The fill colour that pictures use for each canonical colour.
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (200, 30, 40),
    "pink": (240, 125, 170),
    "orange": (240, 130, 20),
    "yellow": (245, 215, 40),
    "green": (40, 150, 60),
    "teal": (0, 128, 128),
    "blue": (30, 70, 200),
    "purple": (120, 50, 160),
    "black": (22, 22, 22),
    "white": (248, 248, 248),
    "brown": (120, 70, 30),
    "grey": (128, 128, 128),
}

# Chit-chat comments: none of them may contain a lexicon phrasing (a test checks this).
CHITCHAT: tuple[str, ...] = (
    "What's your budget?",
    "Following, I need one too!",
    "Commenting so I can find this thread later lol",
    "Have you looked at thrift stores? Sometimes you get lucky.",
    "Any brand preference or are you open to anything?",
    "Great question, I've been wondering the same thing.",
    "Depends on what you need it for honestly.",
    "Is this a gift or for yourself?",
    "I'd avoid the cheap knockoffs, they fall apart fast.",
    "Following this, my sister has been hunting for one forever.",
    "Just check the reviews before you buy, some sellers are sketchy.",
    "Do you need it quickly or can you wait for a sale?",
    "My friend got one last year and still loves it.",
    "Ooh I love this kind of post.",
    "Not helpful but that sounds really cute.",
    "The local shops near me never have anything like this.",
    "Target used to carry a bunch of these.",
    "Honestly I gave up looking and just ordered online.",
)
_OPENERS = (
    "I'm looking for {c}",
    "I've been hunting for {c}",
    "Can't seem to find {c}",
    "I'd love to get {c}",
    "I'm on the lookout for {c}",
    "Anyone know where I'd find {c}",
)
_SUBMISSION_TITLES = (
    "{C} recommendations?",
    "Help me find {c}",
    "Searching for the perfect {n}",
    "ISO: {n}",
    "Where do you all buy {c}?",
    "{C} suggestions please",
)
_CLAUSES: dict[str, tuple[str, ...]] = {
    "colour": ("in a {p} shade", "that is {p}"),
    "pattern": ("with a {p} design", "with a {p} look"),
    "shape": ("that is {p}", "with a {p} silhouette"),
    "finish": ("with a {p} finish",),
}
_FOLLOW_UPS = (
    "Forgot to add: ideally one {x}.",
    "Oh and it should be one {x} if possible.",
    "Edit: bonus points for one {x}.",
)
_CONTEXT_ITEM_LINES = (
    "I already have [this one](https://www.amazon.com/dp/{a}) and like it, but I'm after"
    " something different this time.",
    "I've had [this](https://www.amazon.com/dp/{a}) for a while and it's time for a change.",
)
_GT_SINGLE = (
    "I have [this one]({u}) and it's exactly what you're describing.",
    "Try [{t}]({u}), got mine last month and love it.",
    "[This]({u}) is the one I'd go for.",
    "I think [this one]({u}) fits what you want. I've had mine for a year.",
)
_GT_MULTI = (
    "Either [this one]({u0}) or [this]({u1}) would work{more}.",
    "Check out [this]({u0}) and [this one]({u1}){more}, both are great.",
)
_LINES = ("Classic", "Luxe", "Everyday", "Studio", "Essentials", "Pro", "Signature", "Daily")
_SYLLABLES = ("lu", "mo", "ra", "ve", "ki", "zen", "na", "so", "ri", "dor", "fin", "bel", "mar")
_MOJIBAKE = "\u00e2\u0080\u0099"  # a UTF-8 right quote read as Latin-1, as in the release
# Each item's photos, as the release's ``images``: "front" (the harness's ``{ASIN}_0.jpg``)
# then 1-2 other renderings of the same object, with the sentence that photo's LLaVA
# description adds. No sentence may name a lexicon phrase (a test checks this).
VIEWS: dict[str, str] = {
    "front": "This is the main product photo, on a light background.",
    "close-up": "This photo is a close-up of the product, cropped around its middle.",
    "tilted": "In this photo the product is tilted at an angle.",
    "distant": "This photo shows the product from further away, with more background around it.",
    "backdrop": "This photo shows the product on a darker backdrop.",
}

def _compile_lexicon() -> tuple[dict[str, tuple[str, str]], re.Pattern[str]]:
    """Phrase -> (kind, value) for attributes and categories, and one regex finding them."""
    lookup: dict[str, tuple[str, str]] = {}
    table = {kind: dict(values) for kind, values in LEXICON.items()}
    table["category"] = {
        c.name: c.phrasings for spec in DOMAIN_SPECS.values() for c in spec.categories
    }
    for kind, values in table.items():
        for value, phrasings in values.items():
            for phrase in phrasings:
                if phrase in lookup:
                    raise AssertionError(f"lexicon phrase {phrase!r} is ambiguous")
                lookup[phrase] = (kind, value)
    # Longest first, so "sea green" wins over "green" and "teal-ish" over "teal".
    alternatives = "|".join(re.escape(p) for p in sorted(lookup, key=len, reverse=True))
    return lookup, re.compile(rf"(?<![a-z0-9])({alternatives})(?![a-z0-9])")


_PHRASE_TO_VALUE, _PHRASE_RE = _compile_lexicon()


def requested_attributes(text: str) -> dict[str, str]:
    """Canonical ``{kind: value}`` (kinds: category + ``ATTRIBUTE_KINDS``) that ``text`` names.

    The first mention of each kind wins; works on conversations, titles and descriptions.
    """
    found: dict[str, str] = {}
    for match in _PHRASE_RE.finditer(text.lower()):
        kind, value = _PHRASE_TO_VALUE[match.group(1)]
        found.setdefault(kind, value)
    return found


@dataclass(frozen=True)
class _Item:
    asin: str
    domain: str
    category: CategorySpec
    attrs: dict[str, str]  # kind -> canonical value
    title: str
    description: str
    width: int
    height: int


def _article(word: str) -> str:
    return "an" if word[0] in "aeio" else "a"


def _countable(noun: str) -> str:
    """'sneakers' -> 'pair of sneakers', so that 'a ...' and 'this ... is' read right."""
    return f"pair of {noun}" if noun.endswith("s") and not noun.endswith("ss") else noun


def _make_asins(rng: random.Random, n: int) -> list[str]:
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
    noun = _countable(cat.phrasings[0])
    templates = (
        f"The image shows {_article(shape)} {shape} {noun} in {colour}. It has {_article(pattern)}"
        f" {pattern} design and {_article(finish)} {finish} finish.",
        f"This {noun} is {colour} with {_article(pattern)} {pattern} design. Its outline is"
        f" {shape}, and the surface has {_article(finish)} {finish} finish.",
        f"{_article(colour).capitalize()} {colour} {noun} is shown on a light background. It is"
        f" {shape} and has {_article(pattern)} {pattern} design with {_article(finish)} {finish}"
        " finish.",
    )
    return f"{rng.choice(templates)} {rng.choice(cat.details)}"


def _make_items(
    rng: random.Random, domain: str, asins: Sequence[str], spec: SizeSpec
) -> list[_Item]:
    dspec = DOMAIN_SPECS[domain]
    brands = _make_brands(rng, 12)
    lo, hi = spec.image_side
    items: list[_Item] = []
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
            _Item(asin, domain, cat, attrs, title, _describe(rng, cat, attrs), width, height)
        )
    return items


# --------------------------------------------------------------------------- images


def _shape_polygon(shape: str, box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if shape == "triangle":
        return [(x0 + w / 2, y0), (x1, y1), (x0, y1)]
    if shape == "heart":
        # Two lobes and a point, traced as a polygon so it renders at any size.
        pts: list[tuple[float, float]] = []
        steps = 24
        for k in range(steps + 1):
            t = 2 * pi * k / steps
            hx = 16 * sin(t) ** 3
            hy = 13 * cos(t) - 5 * cos(2 * t) - 2 * cos(3 * t) - cos(4 * t)
            pts.append((x0 + w * (hx + 17) / 34, y0 + h * (1 - (hy + 17) / 30)))
        return pts
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _object_box(shape: str, w: int, h: int) -> tuple[float, float, float, float]:
    """The object's bounding box: centred, with proportions that show the shape."""
    avail_w, avail_h = w * 0.84, h * 0.84
    ratio = {"tall": 0.45, "wide": 2.2}.get(shape, 1.0)  # width / height
    ow = min(avail_w, avail_h * ratio)
    oh = ow / ratio
    cx, cy = w / 2, h / 2
    return (cx - ow / 2, cy - oh / 2, cx + ow / 2, cy + oh / 2)


def _draw_pattern(
    draw: ImageDraw.ImageDraw,
    pattern: str,
    box: tuple[float, float, float, float],
    ink: tuple[int, int, int],
    rng: random.Random,
) -> None:
    x0, y0, x1, y1 = box
    size = max(4.0, min(x1 - x0, y1 - y0))
    step = max(3.0, size / rng.choice((4.0, 5.0, 6.0)))
    width = max(1, round(step / 3))
    if pattern == "stripes":
        x = x0 + rng.random() * step
        while x < x1:
            draw.rectangle((x, y0, x + step / 2 - 1, y1), fill=ink)
            x += step
    elif pattern == "dots":
        r = max(1.0, step / 4)
        y = y0 + step / 2
        row = 0
        while y < y1:
            x = x0 + step / 2 + (step / 2 if row % 2 else 0)
            while x < x1:
                draw.ellipse((x - r, y - r, x + r, y + r), fill=ink)
                x += step
            y += step
            row += 1
    elif pattern == "checks":
        row, y = 0, y0
        while y < y1:
            col, x = 0, x0
            while x < x1:
                if (row + col) % 2 == 0:
                    draw.rectangle((x, y, x + step - 1, y + step - 1), fill=ink)
                x += step
                col += 1
            y += step
            row += 1
    elif pattern == "zigzag":
        y = y0 + step / 2
        while y < y1 + step:
            pts = []
            x, up = x0 - step, True
            while x < x1 + step:
                pts.append((x, y - step / 3 if up else y + step / 3))
                x += step / 2
                up = not up
            draw.line(pts, fill=ink, width=width)
            y += step
    elif pattern == "argyle":
        # Separate upright diamonds, so the print cannot be mistaken for zigzag rows.
        hx, hy = step * 0.3, step * 0.45
        row, y = 0, y0 + step / 2
        while y < y1 + step:
            x = x0 + step / 2 + (step / 2 if row % 2 else 0)
            while x < x1 + step:
                draw.polygon([(x, y - hy), (x + hx, y), (x, y + hy), (x - hx, y)], fill=ink)
                x += step
            y += step
            row += 1


def _render(item: _Item, seed: int, background: tuple[int, int, int] | None = None
            ) -> Image.Image:
    """A product picture that shows colour (fill), pattern, shape (silhouette) and finish."""
    rng = random.Random(f"{seed}:image:{item.asin}")
    w, h = item.width, item.height
    bg = tuple(220 + rng.randint(0, 15) for _ in range(3))  # drawn even when overridden
    bg = background or bg
    fill = COLOUR_RGB[item.attrs["colour"]]
    luminance = 0.3 * fill[0] + 0.59 * fill[1] + 0.11 * fill[2]
    ink = (250, 250, 250) if luminance < 150 else (45, 45, 45)
    shape = item.attrs["shape"]
    box = _object_box(shape, w, h)

    texture = Image.new("RGB", (w, h), fill)
    tdraw = ImageDraw.Draw(texture)
    if item.attrs["pattern"] != "solid":
        _draw_pattern(tdraw, item.attrs["pattern"], box, ink, rng)
    finish = item.attrs["finish"]
    if finish == "glossy":
        x0, y0, x1, y1 = box
        highlight = Image.new("L", (w, h), 0)
        ImageDraw.Draw(highlight).ellipse(
            (
                x0 + (x1 - x0) * 0.12,
                y0 + (y1 - y0) * 0.08,
                x0 + (x1 - x0) * 0.45,
                y0 + (y1 - y0) * 0.35,
            ),
            fill=170,
        )
        texture.paste((255, 255, 255), mask=highlight)
    elif finish == "glitter":
        x0, y0, x1, y1 = box
        dot = 1 if min(w, h) < 96 else 2
        # Bright sparkles on dark fills, gold/silver ones that stay visible on light fills.
        if luminance >= 150:
            sparkles = ((185, 145, 20), (110, 110, 135))
        else:
            sparkles = ((255, 255, 255), (255, 236, 150))
        for _ in range(int((x1 - x0) * (y1 - y0) / 14)):
            px, py = int(rng.uniform(x0, x1)), int(rng.uniform(y0, y1))
            sparkle = rng.choice(sparkles)
            tdraw.rectangle((px, py, px + dot - 1, py + dot - 1), fill=sparkle)

    mask = Image.new("L", (w, h), 0)
    mdraw = ImageDraw.Draw(mask)
    image = Image.new("RGB", (w, h), bg)
    outline = (70, 70, 70)
    line = max(1, min(w, h) // 64)
    if shape == "round":
        mdraw.ellipse(box, fill=255)
        image.paste(texture, mask=mask)
        ImageDraw.Draw(image).ellipse(box, outline=outline, width=line)
    else:
        poly = _shape_polygon(shape, box)
        mdraw.polygon(poly, fill=255)
        image.paste(texture, mask=mask)
        ImageDraw.Draw(image).line([*poly, poly[0]], fill=outline, width=line)
    return image


def _views(asin: str, seed: int) -> list[str]:
    """The item's photos in ``images`` order, from an RNG of their own (no other stream moves)."""
    rng = random.Random(f"{seed}:views:{asin}")
    return ["front", *rng.sample(sorted(set(VIEWS) - {"front"}), rng.randint(1, 2))]


def _view_description(item: _Item, view: str) -> str:
    return f"{item.description} {VIEWS[view]}"


def _photo(item: _Item, seed: int, view: str, front: Image.Image) -> Image.Image:
    """Photo ``view`` of ``item``: ``front`` (its :func:`_render`) moved, scaled or re-lit."""
    rng = random.Random(f"{seed}:view:{item.asin}:{view}")
    w, h = front.size
    bg = front.getpixel((0, 0))
    if view == "backdrop":
        return _render(item, seed, background=(rng.randint(150, 185),) * 3)
    if view == "close-up":
        return front.crop((w // 10, h // 10, w - w // 10, h - h // 10)).resize((w, h))
    if view == "tilted":
        angle = rng.choice((-1, 1)) * rng.uniform(12, 25)
        return front.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=bg)
    if view == "distant":
        small = front.resize((max(1, w * 2 // 3), max(1, h * 2 // 3)))
        canvas = Image.new("RGB", (w, h), bg)
        canvas.paste(small, ((w - small.width) // 2, (h - small.height) // 2))
        return canvas
    return front


# --------------------------------------------------------------------------- conversations


@dataclass
class _Index:
    """Same-category lookups used to pick ground truths and (hard) negatives quickly."""

    by_category: dict[str, list[str]]
    by_value: dict[tuple[str, str, str], set[str]]  # (category, kind, value) -> asins
    items: dict[str, _Item]

    @classmethod
    def build(cls, items: Iterable[_Item]) -> _Index:
        by_category: dict[str, list[str]] = {}
        by_value: dict[tuple[str, str, str], set[str]] = {}
        table: dict[str, _Item] = {}
        for item in items:
            table[item.asin] = item
            by_category.setdefault(item.category.name, []).append(item.asin)
            for kind, value in item.attrs.items():
                by_value.setdefault((item.category.name, kind, value), set()).add(item.asin)
        return cls(by_category, by_value, table)

    def matching(self, category: str, request: dict[str, str], skip: str = "") -> set[str]:
        sets = [self.by_value.get((category, k, v), set()) for k, v in request.items() if k != skip]
        if not sets:
            return set(self.by_category[category])
        return set.intersection(*sets)


def _url(rng: random.Random, item: _Item) -> str:
    if rng.random() < 0.5:
        return f"https://www.amazon.com/dp/{item.asin}?ref_=cm_sw_r_cp_ud_dp"
    slug = "-".join(re.findall(r"[A-Za-z0-9]+", item.title)[:5])
    return f"https://www.amazon.com/{slug}/dp/{item.asin}/"


def _candidates(
    rng: random.Random,
    index: _Index,
    category: str,
    request: dict[str, str],
    gts: Sequence[str],
    excluded: set[str],
    p_gt: float,
) -> list[str]:
    """Ten shuffled ASINs like a retriever's top-10: mostly same-category, hard negatives."""
    chosen: list[str] = []
    if rng.random() < p_gt:
        chosen.append(gts[0])
        chosen.extend(g for g in gts[1:] if rng.random() < 0.5)
    # Hard negatives: match every requested attribute but one.
    hard: list[str] = []
    for kind in request:
        hard.extend(sorted(index.matching(category, request, skip=kind) - excluded))
    rng.shuffle(hard)
    chosen.extend(hard[: rng.randint(2, 4)])
    # A few items of other categories of the same domain.
    domain = index.items[gts[0]].domain
    others = [c.name for c in DOMAIN_SPECS[domain].categories if c.name != category]
    for _ in range(rng.randint(1, 2)):
        chosen.append(rng.choice(index.by_category[rng.choice(others)]))
    # Fill with same-category items; other categories only if the category is exhausted.
    pool, tries = index.by_category[category], 0
    while len(set(chosen)) < 10:
        tries += 1
        pick = rng.choice(pool if tries < 200 else index.by_category[rng.choice(others)])
        if pick not in excluded:
            chosen.append(pick)
    unique = list(dict.fromkeys(chosen))[:10]
    rng.shuffle(unique)
    return unique


def _conversation(rng: random.Random, index: _Index) -> tuple[dict[str, Any], dict[str, str]]:
    """One conversation record (release fields) and the attributes it asks for."""
    gt_item = index.items[rng.choice(list(index.items))]
    category = gt_item.category
    n_attrs = rng.choices((1, 2, 3), weights=(0.3, 0.45, 0.25))[0]
    kinds = ["colour"] if rng.random() < 0.8 else []
    rest = [k for k in ATTRIBUTE_KINDS if k not in kinds]
    rng.shuffle(rest)
    kinds = (kinds + rest)[:n_attrs]
    rng.shuffle(kinds)
    request = {k: gt_item.attrs[k] for k in kinds}
    matches = index.matching(category.name, request)
    n_gt = rng.choices((1, 2, 3), weights=(0.93, 0.05, 0.02))[0]
    extra = sorted(matches - {gt_item.asin})
    gts = [gt_item.asin, *rng.sample(extra, min(n_gt - 1, len(extra)))]
    # Only the chosen ground truths may be candidates among the items matching everything
    # asked; a candidate that matched everything but is not the answer would be a coin flip.
    excluded = set(matches)

    cat_phrase = rng.choice(category.phrasings)
    noun = _countable(cat_phrase)
    with_article = f"{_article(noun)} {noun}"
    clauses = []
    for kind in kinds:
        phrase = rng.choice(LEXICON[kind][request[kind]])
        clauses.append(rng.choice(_CLAUSES[kind]).format(p=phrase))
    follow_up = clauses.pop() if len(clauses) > 1 and rng.random() < 0.35 else None
    asked = clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + " and " + clauses[-1]
    body = rng.choice(_OPENERS).format(c=with_article) + f" {asked}."
    context_items: list[str] = []
    if rng.random() < 0.1:
        pool = [a for a in index.by_category[category.name] if a not in excluded]
        if pool:
            earlier = rng.choice(pool)
            context_items.append(earlier)
            excluded.add(earlier)
            body += " " + rng.choice(_CONTEXT_ITEM_LINES).format(a=earlier)
    title = rng.choice(_SUBMISSION_TITLES).format(
        c=with_article, C=cat_phrase.capitalize(), n=cat_phrase
    )
    turns = [f"<submission>{title} {body}</submission>"]
    chat = rng.sample(CHITCHAT, rng.randint(0, 3))
    if follow_up is not None:
        chat.insert(rng.randint(0, len(chat)), rng.choice(_FOLLOW_UPS).format(x=follow_up))
    turns.extend(f"<comment>{c}</comment>" for c in chat)
    context = "\n".join(turns) + "\n"

    items = [index.items[a] for a in gts]
    if len(gts) == 1:
        gt = rng.choice(_GT_SINGLE).format(u=_url(rng, items[0]), t=items[0].title)
    else:
        more = f" and so would [this]({_url(rng, items[2])})" if len(gts) > 2 else ""
        gt = rng.choice(_GT_MULTI).format(u0=_url(rng, items[0]), u1=_url(rng, items[1]), more=more)
    if rng.random() < 0.05:
        context, gt = context.replace("'", _MOJIBAKE), gt.replace("'", _MOJIBAKE)

    record = {
        "context": context,
        "context_items": context_items,
        "gt": gt,
        "gt_items": gts,
        "candidates_gpt_large": _candidates(
            rng, index, category.name, request, gts, excluded, 0.85
        ),
        "candidates_st": _candidates(rng, index, category.name, request, gts, excluded, 0.75),
    }
    return record, {"category": category.name, **request}


# --------------------------------------------------------------------------- writing


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
    asins = _make_asins(master, first_held_out + spec.valid_items)

    meta: dict[str, dict[str, Any]] = {}
    attributes: dict[str, dict[str, str]] = {}
    requests: dict[str, dict[str, list[dict[str, str]]]] = {}
    counts: dict[str, dict[str, int]] = {}
    catalog: list[_Item] = []
    held_out: list[_Item] = []
    for d, domain in enumerate(DOMAINS):
        rng = random.Random(f"lavic-synthetic:{seed}:{domain}")
        dspec = DOMAIN_SPECS[domain]
        own = asins[d * spec.items_per_domain : (d + 1) * spec.items_per_domain]
        items = _make_items(rng, domain, own, spec)
        # Held-out items for item2meta_valid.jsonl: pictured, but in no conversation or catalog,
        # like the release's validation images.
        held_out.extend(_make_items(rng, domain, asins[first_held_out + d :: len(DOMAINS)], spec))
        catalog.extend(items)
        for item in items:
            views = _views(item.asin, seed)
            names = [image_name(item.asin, k) for k in range(len(views))]
            meta[item.asin] = {
                "title": item.title,
                "description": item.description,
                "images": [{"large": f"synthetic://{name}"} for name in names],
                TRAIN_DESCRIPTIONS: {name: _view_description(item, view)
                                     for name, view in zip(names, views, strict=True)},
                "main_category": dspec.main_category,
                "categories": [dspec.department, item.category.phrasings[0].title()],
            }
        index = _Index.build(items)
        counts[domain] = {"items": len(items)}
        requests[domain] = {}
        (out / domain).mkdir(exist_ok=True)
        for split, n in zip(SPLITS, spec.conversations, strict=True):
            pairs = [_conversation(rng, index) for _ in range(n)]
            _write_jsonl(out / domain / f"{split}.jsonl", (row for row, _ in pairs))
            requests[domain][split] = [asked for _, asked in pairs]
            counts[domain][split] = n

    for item in (*catalog, *held_out):
        kind = {"domain": item.domain, "category": item.category.name}
        attributes[item.asin] = {**kind, **item.attrs}
    for item in catalog:
        front = _render(item, seed)
        for k, view in enumerate(_views(item.asin, seed)):
            _photo(item, seed, view, front).save(images / image_name(item.asin, k), "JPEG",
                                                 quality=JPEG_QUALITY)
    valid_records: list[dict[str, str]] = []
    for item in held_out:  # one photo each, in valid_images/ like the release's
        views = _views(item.asin, seed)
        k = random.Random(f"{seed}:valid-view:{item.asin}").randrange(len(views))
        name = image_name(item.asin, k)
        _photo(item, seed, views[k], _render(item, seed)).save(
            valid_images / name, "JPEG", quality=JPEG_QUALITY)
        valid_records.append({"title": item.title, "image_name": name,
                              "image": f"synthetic://{name}",
                              VALID_DESCRIPTION: _view_description(item, views[k])})
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
