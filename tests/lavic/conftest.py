"""A character tokenizer whose last id is ``<image>``, matching ``tiny_model(vocab_size=...)``."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from lavic.distill import Described

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]
IMAGE = "<image>"
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 50, 220),
           "yellow": (230, 220, 30)}


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return char_tokenizer()


def char_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {t: i for i, t in enumerate([*SPECIALS, *string.printable, IMAGE])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        pad_token="<pad>", extra_special_tokens=[IMAGE])


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
