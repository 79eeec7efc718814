"""The character tokenizer of the tiny model folder (last id ``<image>``), and one-colour items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from transformers import PreTrainedTokenizerFast

from lavic.model.tiny import IMAGE, char_tokenizer
from lavic.stage1.data import Described

__all__ = ["COLOURS", "IMAGE", "char_tokenizer", "examples", "tokenizer"]

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 50, 220),
           "yellow": (230, 220, 30)}


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return char_tokenizer()


def examples(root: Path, n: int, *, seed: int = 0) -> list[Described]:
    """Items with a one-colour (noisy) image each, described by their colour."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        name = list(COLOURS)[i % len(COLOURS)]
        pixels = np.clip(rng.normal(COLOURS[name], 20, (40, 56, 3)), 0, 255).astype(np.uint8)
        path = root / f"{i}.png"
        Image.fromarray(pixels).save(path)
        out.append(Described(title=f"item {i}", image=path, description=f"a {name} thing"))
    return out
