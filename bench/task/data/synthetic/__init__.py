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

``lexicon`` holds the vocabulary (attributes, categories, how users ask), ``items`` the catalog,
``images`` the photos, ``conversations`` the Reddit threads and candidate lists, ``writing``
the release layout on disk and the cached copy per (seed, size).
"""

from bench.task.data.synthetic.conversations import CHITCHAT
from bench.task.data.synthetic.images import COLOUR_RGB, VIEWS
from bench.task.data.synthetic.lexicon import ATTRIBUTE_KINDS, LEXICON, requested_attributes
from bench.task.data.synthetic.writing import (
    ATTRIBUTES_FILE,
    GENERATOR_VERSION,
    MANIFEST_FILE,
    REQUESTS_FILE,
    SIZES,
    ensure_synthetic,
    synthesize,
)

__all__ = [
    "ATTRIBUTES_FILE", "ATTRIBUTE_KINDS", "CHITCHAT", "COLOUR_RGB", "GENERATOR_VERSION",
    "LEXICON", "MANIFEST_FILE", "REQUESTS_FILE", "SIZES", "VIEWS", "ensure_synthetic",
    "requested_attributes", "synthesize",
]
