"""LLaVA-1.5 and LLaVA-1.6 (LLaVA-NeXT) as generators, titles only or titles + images.

With ``images = true`` each candidate's ``IMAGE_SLOT`` becomes the processor's image token,
which the processor expands to one token per visual feature: a fixed 576 for LLaVA-1.5, and a
count that depends on each image's size and aspect ratio for LLaVA-1.6's any-resolution
views. The prompt budget counts those expanded tokens, so only the conversation is cut.
The images stay inline in the text rather than being passed as chat "image" parts, because
the llava-hf chat templates move such parts to the start of the turn.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoProcessor,
    LlavaForConditionalGeneration,
    LlavaNextForConditionalGeneration,
)

from baselines.generators.hf import HFGenerator, HFOptions, Settings, Source, load, load_model
from bench.core.context import BuildContext
from bench.core.options import takes
from bench.task.prompt import IMAGE_SLOT

LLAVA_15 = "llava-hf/llava-1.5-7b-hf"
LLAVA_16 = "llava-hf/llava-v1.6-mistral-7b-hf"


class LlavaGenerator(HFGenerator):
    """A LLaVA-family model behind its processor (tokenizer + image processor)."""

    def __init__(self, name: str, source: Source, settings: Settings,
                 weights: Callable[[], Any], config: Any, processor: Any, fallback: str) -> None:
        self.templater = processor
        self.tokenizer = processor.tokenizer
        self.fallback = fallback
        super().__init__(name, source, settings, weights, config)

    def messages(self, text: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": [{"type": "text", "text": text}]}]

    def sanitize(self, text: str) -> str:
        """A literal image token in a conversation or title would claim an image slot."""
        for token in dict.fromkeys((IMAGE_SLOT, self.templater.image_token)):
            text = text.replace(token, f"[{token.strip('<>')}]")
        return text

    def format_slots(self, text: str) -> str:
        return text.replace(IMAGE_SLOT, self.templater.image_token)

    def image_tokens(self, images: Sequence[Image.Image]) -> list[int]:
        """The processor's own count from image sizes alone (no pixels processed); the tests
        check it against the expansion the processor really performs."""
        if not images:
            return []
        sizes = [(image.height, image.width) for image in images]
        return list(self.templater._get_num_multimodal_tokens(image_sizes=sizes).num_image_tokens)

    def encode(self, texts: list[str], images: list[Image.Image]) -> Mapping[str, torch.Tensor]:
        return self.templater(
            text=texts, images=images or None, padding=True, return_tensors="pt",
            add_special_tokens=self.add_special_tokens(texts[0]),
        )


def _build(ctx: BuildContext, name: str, default: str, model_class: Any,
           fallback: str) -> LlavaGenerator:
    settings = Settings.from_context(ctx, name, vision=True)
    source = Source.locate(ctx, name, default)
    processor = load(AutoProcessor, source)
    weights = functools.partial(load_model, model_class, source, settings)
    return LlavaGenerator(name, source, settings, weights, load(AutoConfig, source), processor,
                          fallback)


@takes(HFOptions)
def build_llava_15(ctx: BuildContext) -> LlavaGenerator:
    """``llava-1.5``: CLIP ViT-L/336 + Vicuna-7B, 576 tokens per image."""
    return _build(ctx, "llava-1.5", LLAVA_15, LlavaForConditionalGeneration,
                  "USER: {prompt} ASSISTANT:")


@takes(HFOptions)
def build_llava_16(ctx: BuildContext) -> LlavaGenerator:
    """``llava-1.6``: CLIP ViT-L/336 + Mistral-7B with any-resolution image views."""
    return _build(ctx, "llava-1.6", LLAVA_16, LlavaNextForConditionalGeneration,
                  "[INST] {prompt} [/INST]")
