"""The ``entire-tokens`` ablation (the paper's Table 7): each candidate image as all of
LLaVA-NeXT's own any-resolution image tokens instead of ``views`` [CLS] embeddings.

The tokens are the base model's, through its frozen vision side exactly as LLaVA feeds them
(its vision feature layer and selection strategy, any-resolution grid, unpadding and newline
tokens), computed once per image into the cache like the views. Their number depends on the
image's size (up to 2,928 per image on the real model, which is why the paper ran out of
memory at 10 candidates); the model's own processor counts them from the size alone, so a
prompt can be budgeted before any pixel is processed. A cached row holds ``tokens`` vectors
as ``(tokens, 1, hidden)``: each token fills one placeholder slot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import LlavaNextConfig, LlavaNextProcessor

from bench.cache import ArrayCache
from lavic.arch import preprocessor_settings
from lavic.embed import llava
from lavic.viewcache import CACHE_DIR, ImageRows
from lavic.views import ImageProcessor


class FullTokens:
    """LLaVA-NeXT's image tokens of one image: how many, and the vectors."""

    def __init__(self, config: LlavaNextConfig, tokenizer: Any, placeholder: str) -> None:
        self.config = config
        self._settings = preprocessor_settings(config)
        self.processor = LlavaNextProcessor(
            image_processor=ImageProcessor(**self._settings), tokenizer=tokenizer,
            patch_size=config.vision_config.patch_size, num_additional_image_tokens=1,
            vision_feature_select_strategy=config.vision_feature_select_strategy,
            image_token=placeholder)

    def settings(self) -> dict[str, Any]:
        return {"processor": self._settings, "layer": self.config.vision_feature_layer,
                "strategy": self.config.vision_feature_select_strategy}

    def count(self, image: Image.Image) -> int:
        """Tokens ``image`` becomes, from its size alone (the processor's own rule)."""
        sizes = [(image.height, image.width)]
        return int(self.processor._get_num_multimodal_tokens(image_sizes=sizes)
                   .num_image_tokens[0])

    @torch.inference_mode()
    def embed(self, model: torch.nn.Module, image: Image.Image) -> torch.Tensor:
        """``(tokens, hidden)`` float32 on the CPU, in eval mode."""
        inner = llava(model).model
        pixels = self.processor.image_processor(image, return_tensors="pt")
        weight = next(inner.vision_tower.parameters())
        was_training = model.training
        model.eval()
        try:
            out = inner.get_image_features(
                pixel_values=pixels["pixel_values"].to(weight.device, weight.dtype),
                image_sizes=pixels["image_sizes"].to(weight.device),
                vision_feature_layer=self.config.vision_feature_layer,
                vision_feature_select_strategy=self.config.vision_feature_select_strategy)
        finally:
            model.train(was_training)
        return torch.cat(list(out.pooler_output)).to("cpu", torch.float32)


class TokenCache(ImageRows):
    """Every image's full token rows; one store per token count (a store's rows share a
    shape), the count known from the image size."""

    def __init__(self, root: Path, *, base: str, full: FullTokens, hidden: int) -> None:
        super().__init__()
        self.full, self.hidden, self.root = full, hidden, Path(root) / CACHE_DIR
        self.key = "lavic-full-tokens;" + json.dumps({"base": base, **full.settings()},
                                                      sort_keys=True)
        self.store = ArrayCache(self.root, self.key)  # names the producer in identities
        self.counts: dict[bytes, int] = {}

    def _store(self, tokens: int) -> ArrayCache:
        return ArrayCache(self.root, f"{self.key};tokens={tokens}")

    def fill(self, model: torch.nn.Module, images: dict[bytes, Image.Image],
             batch_size: int = 16) -> int:
        done = 0
        for key, image in images.items():
            tokens = self.counts[key] = self.full.count(image)
            store = self._store(tokens)
            if store.missing([key]):
                row = self.full.embed(model, image)
                if row.shape[0] != tokens:
                    raise RuntimeError(f"{row.shape[0]} image features, {tokens} counted")
                store.write([key], row.unsqueeze(0))
                done += 1
        return done

    def read(self, keys: list[bytes]) -> torch.Tensor:
        rows = [self._store(self.counts[k]).read([k])[0] for k in keys]
        flat = torch.cat(rows) if rows else torch.zeros(0, self.hidden)
        return flat.unsqueeze(1)
