"""The synthetic world's vocabulary: attribute kinds and values with the ways users ask for
them (``LEXICON``), each domain's categories (``DOMAIN_SPECS``), and the inverse lookup
(``requested_attributes``) that the attribute oracle and the tests use."""

from __future__ import annotations

import re
from dataclasses import dataclass

ATTRIBUTE_KINDS = ("colour", "pattern", "shape", "finish")

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
