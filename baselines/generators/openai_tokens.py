"""What an OpenAI chat request costs before it is sent: tokens, images and US$.

Token estimates (``--dry-run``, tpm limits, truncation) use about 4 characters per text token
plus OpenAI's documented image formula (see ``image_tokens``); prices come from bench.toml's
``[prices]`` table, matched by the dated snapshot a server reports or its undated name.
"""

from __future__ import annotations

import base64
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from bench.task.images import image_problem

#: Tokens the chat format adds to one user message plus the reply cue (OpenAI cookbook).
MESSAGE_OVERHEAD = 7
#: Context windows (tokens) of the named models, for conversation truncation.
CONTEXT_WINDOWS = {"gpt-3.5-turbo": 16_385, "gpt-4o-mini": 128_000, "gpt-4o": 128_000}
_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


# --------------------------------------------------------------------------- token counting


@dataclass(frozen=True)
class TileCost:
    """Tokens per image of a tile-priced model: ``base`` (all of a low-detail image) plus
    ``tile`` per 512-px tile at high detail."""

    base: int
    tile: int


#: OpenAI "Images and vision" guide: GPT-4o bills 85 + 170 per tile; GPT-4o-mini bills 2833 +
#: 5667 per tile (the same dollars at its 1/33 token price). Other models get GPT-4o's numbers.
TILE_COSTS = {"gpt-4o-mini": TileCost(2833, 5667), "gpt-4o": TileCost(85, 170)}


def text_tokens(text: str) -> int:
    """About 4 characters per token for English (no tokenizer dependency)."""
    return math.ceil(len(text) / 4)


def image_tokens(width: int, height: int, detail: str, model: str) -> int:
    """OpenAI's tile formula. ``low``: ``base``. ``high`` (and ``auto``, counted as high to stay
    an upper bound): shrink to fit 2048x2048, then shrink so the short side is at most 768 px
    (images are never enlarged), then ``base + tile * number of 512-px tiles``. E.g. GPT-4o,
    1024x1024 -> 768x768 -> 4 tiles -> 765 tokens; 2048x4096 -> 768x1536 -> 6 tiles -> 1105."""
    cost = TILE_COSTS.get(base_name(model), TILE_COSTS["gpt-4o"])
    if detail == "low":
        return cost.base
    w, h = float(width), float(height)
    for limit, shortest in ((2048, False), (768, True)):
        side = min(w, h) if shortest else max(w, h)
        if side > limit:
            w, h = w * limit / side, h * limit / side
    tiles = math.ceil(int(w) / 512) * math.ceil(int(h) / 512)
    return cost.base + cost.tile * tiles


def base_name(model: str) -> str:
    return _DATED.sub("", model)


# --------------------------------------------------------------------------- prices


def price_of(
    prices: Mapping[str, Mapping[str, float]], *models: str
) -> Mapping[str, float] | None:
    """The first of ``models`` (and their undated names) that has a price table entry."""
    for model in models:
        for name in (model, base_name(model)):
            if name in prices:
                return prices[name]
    return None


def cost_usd(price: Mapping[str, float], prompt_tokens: int, completion_tokens: int) -> float:
    return (
        prompt_tokens * price["input_per_mtok"] + completion_tokens * price["output_per_mtok"]
    ) / 1e6


# --------------------------------------------------------------------------- images


@functools.lru_cache(maxsize=4096)
def image_header(path: Path) -> tuple[int, int, str] | None:
    """(width, height, MIME type) from the file header; None when
    :func:`bench.task.images.image_problem` finds the image unusable."""
    if image_problem(path) is not None:
        return None
    try:
        with Image.open(path) as image:
            return image.width, image.height, image.get_format_mimetype() or "image/jpeg"
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def data_url(path: Path) -> str | None:
    header = image_header(path)
    if header is None:
        return None
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"data:{header[2]};base64,{data}"
