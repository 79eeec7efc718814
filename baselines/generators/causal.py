"""Text-only causal LMs (the paper's Vicuna-7B baseline, or any HF causal LM) as generators.

The prompt goes through the tokenizer's chat template when it has one; Vicuna v1.5 ships
none, so it gets its own v1.1 conversation format, the one it was fine-tuned on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import torch
from PIL import Image
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from baselines.generators.hf import HFGenerator, HFOptions, Settings, Source, load, load_model
from bench.core.context import BuildContext
from bench.core.options import takes

VICUNA = "lmsys/vicuna-7b-v1.5"
VICUNA_FORMAT = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the user's questions. "
    "USER: {prompt} ASSISTANT:"
)


class CausalGenerator(HFGenerator):
    """Titles only: the prompt is one user turn of plain text."""

    fallback = VICUNA_FORMAT

    def __init__(self, name: str, source: Source, settings: Settings,
                 weights: Callable[[], Any], config: Any, tokenizer: Any) -> None:
        self.tokenizer = self.templater = tokenizer
        super().__init__(name, source, settings, weights, config)

    def messages(self, text: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": text}]

    def encode(self, texts: list[str], images: list[Image.Image]) -> Mapping[str, torch.Tensor]:
        return self.tokenizer(texts, padding=True, return_tensors="pt",
                              add_special_tokens=self.add_special_tokens(texts[0]))


@takes(HFOptions)
def build(ctx: BuildContext) -> CausalGenerator:
    """``vicuna``: lmsys/vicuna-7b-v1.5 unless ``model_path`` (or bench.toml [models]) says
    where another causal LM is."""
    settings = Settings.from_context(ctx, "vicuna", vision=False)
    source = Source.locate(ctx, "vicuna", VICUNA)
    tokenizer = load(AutoTokenizer, source)
    weights = functools.partial(load_model, AutoModelForCausalLM, source, settings)
    return CausalGenerator("vicuna", source, settings, weights, load(AutoConfig, source),
                           tokenizer)
