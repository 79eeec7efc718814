"""The ``entire-tokens`` ablation (the paper's Table 7, "Entire tokens (5 x 577)"): each
candidate image as every token of its views instead of one [CLS] vector per view.

Definition ``views`` (the default, the paper's row): the same views the LaViC prompt uses
(:class:`lavic.model.views.ViewMaker`), every position of the same vision layer the [CLS] embedding
comes from ([CLS] and all patches: 5 x 577 = 2,885 tokens per image on the real model), each
through the projector. The vision side is the base model's, frozen: the paper fine-tunes
LLaVA-v1.6 "directly", with no self-distillation (Section 5.3). The count per image is fixed,
``views x (patches + 1)``, so a prompt's length is known before any pixel is read and a
request longer than the input limit is refused up front.

Definition ``anyres``: LLaVA-NeXT's own image features as LLaVA feeds them (its vision feature
layer and selection strategy, any-resolution grid, unpadding and newline tokens); their number
depends on the image's size (up to 2,928 on the real model) and the model's processor counts
them from the size alone.

Rows are computed once per image (eval mode, no gradient) into the harness's cache
(:mod:`lavic.store.tokencache`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
from PIL import Image
from transformers import LlavaNextConfig, LlavaNextProcessor

from bench.core.errors import BenchError
from lavic.model.arch import preprocessor_settings
from lavic.model.embed import llava
from lavic.model.views import DEFAULT_VIEWS, ImageProcessor, ViewMaker

EntireTokens = Literal["views", "anyres"]


@contextlib.contextmanager
def _eval(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode (no LoRA dropout) and no gradient, the model's mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def _on_model(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    weight = next(llava(model).model.vision_tower.parameters())
    return pixels.to(weight.device, weight.dtype)


def tokens_per_view(config: LlavaNextConfig) -> int:
    """[CLS] plus the patches of one view: 577 for CLIP-L/14 at 336 px."""
    vision = config.vision_config
    return (int(vision.image_size) // int(vision.patch_size)) ** 2 + 1


class ViewTokens:
    """Every token of every view of one vision layer, projected: ``views x (patches + 1)``
    vectors per image, whatever its size."""

    def __init__(self, config: LlavaNextConfig, views: int, layer: int) -> None:
        depth = int(config.vision_config.num_hidden_layers)
        if not -(depth + 1) <= layer <= depth:
            raise BenchError(f"vision layer {layer} does not exist", where="vision_layer",
                             hint=f"the vision tower has hidden states -{depth + 1}..{depth}")
        self.maker, self.layer = ViewMaker(config, views), layer
        self.tokens = views * tokens_per_view(config)

    def settings(self) -> dict[str, Any]:
        return {"definition": "views", "layer": self.layer, "views": self.maker.settings()}

    def count(self, image: Image.Image | None = None) -> int:
        return self.tokens

    def embed(self, model: torch.nn.Module, images: Sequence[Image.Image]) -> torch.Tensor:
        """``(len(images), tokens, hidden)`` on the CPU in the model's dtype."""
        inner = llava(model).model
        with _eval(model):
            pixels = _on_model(model, self.maker.batch(images).flatten(0, 1))
            states = inner.vision_tower(pixels, output_hidden_states=True).hidden_states
            rows = inner.multi_modal_projector(states[self.layer])
        return rows.reshape(len(images), self.tokens, -1).cpu()


class AnyResTokens:
    """LLaVA-NeXT's own image features of an image: how many (from its size), and the
    vectors."""

    def __init__(self, config: LlavaNextConfig, tokenizer: Any, placeholder: str) -> None:
        self.config = config
        self._settings = preprocessor_settings(config)
        self.processor = LlavaNextProcessor(
            image_processor=ImageProcessor(**self._settings), tokenizer=tokenizer,
            patch_size=config.vision_config.patch_size, num_additional_image_tokens=1,
            vision_feature_select_strategy=config.vision_feature_select_strategy,
            image_token=placeholder)

    def settings(self) -> dict[str, Any]:
        return {"definition": "anyres", "processor": self._settings,
                "layer": self.config.vision_feature_layer,
                "strategy": self.config.vision_feature_select_strategy}

    def count(self, image: Image.Image) -> int:
        """Tokens ``image`` becomes, from its size alone (the processor's own rule)."""
        sizes = [(image.height, image.width)]
        return int(self.processor._get_num_multimodal_tokens(image_sizes=sizes)
                   .num_image_tokens[0])

    def embed(self, model: torch.nn.Module, images: Sequence[Image.Image]) -> torch.Tensor:
        """``(len(images), tokens, hidden)`` for images of one token count, one at a time."""
        inner = llava(model).model
        rows = []
        with _eval(model):
            for image in images:
                pixels = self.processor.image_processor(image, return_tensors="pt")
                out = inner.get_image_features(
                    pixel_values=_on_model(model, pixels["pixel_values"]),
                    image_sizes=pixels["image_sizes"].to(inner.device),
                    vision_feature_layer=self.config.vision_feature_layer,
                    vision_feature_select_strategy=self.config.vision_feature_select_strategy)
                rows.append(torch.cat(list(out.pooler_output)).cpu())
        return torch.stack(rows)


Tokens = ViewTokens | AnyResTokens


def entire_tokens(definition: EntireTokens, config: LlavaNextConfig, *, views: int, layer: int,
                  tokenizer: Any) -> Tokens:
    """The token maker of ``definition`` (``views`` and ``layer`` apply to ``views`` only)."""
    if definition == "views":
        return ViewTokens(config, views, layer)
    if views != DEFAULT_VIEWS:
        raise BenchError("entire_tokens = anyres shows LLaVA's own image tokens, not views",
                         where="views", hint="leave views at its default")
    return AnyResTokens(config, tokenizer, tokenizer.convert_ids_to_tokens(
        config.image_token_index))
