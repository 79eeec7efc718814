"""The tiny model is the real LLaVA-NeXT architecture, only smaller."""

from __future__ import annotations

import re

import torch

from lavic.model.arch import REAL_CONFIG, meta_model, preprocessor_settings, real_config
from lavic.model.tiny import tiny_model


def tree(model: torch.nn.Module) -> set[tuple[str, str]]:
    """(module path with layer numbers folded, class name) for every module."""
    return {(re.sub(r"\.\d+(?=\.|$)", ".#", name), type(module).__name__)
            for name, module in model.named_modules()}


def test_tiny_module_tree_equals_the_real_one() -> None:
    real, tiny = tree(meta_model()), tree(tiny_model())
    assert real == tiny
    assert ("model.vision_tower", "CLIPVisionModel") in real
    assert ("model.language_model", "MistralModel") in real
    assert ("model.multi_modal_projector", "LlavaNextMultiModalProjector") in real
    assert ("lm_head", "Linear") in real


def test_real_config_gives_the_published_size() -> None:
    """llava-v1.6-mistral-7b-hf has 7.57 B parameters (model card)."""
    total = sum(p.numel() for p in meta_model().parameters())
    assert total == 7_566_747_648
    assert round(total / 1e9, 2) == 7.57


def test_tiny_keeps_every_non_size_setting() -> None:
    real, tiny = real_config(), tiny_model().config
    for key in ("projector_hidden_act", "vision_feature_layer", "vision_feature_select_strategy",
                "use_image_newline_parameter", "multimodal_projector_bias"):
        assert getattr(tiny, key) == getattr(real, key), key
    assert tiny.text_config.model_type == "mistral"
    assert tiny.vision_config.patch_size == REAL_CONFIG["vision_config"]["patch_size"]
    ratio = real.text_config.num_attention_heads // real.text_config.num_key_value_heads
    assert tiny.text_config.num_attention_heads // tiny.text_config.num_key_value_heads == ratio
    side = tiny.vision_config.image_size
    # pinpoints scale with the side: the same 1x2, 2x1, 2x2, 3x1, 1x3 grids
    grids = [[h // side, w // side] for h, w in tiny.image_grid_pinpoints]
    assert grids == [[h // 336, w // 336] for h, w in real.image_grid_pinpoints]
    assert preprocessor_settings(tiny)["crop_size"] == {"height": side, "width": side}
    assert preprocessor_settings(real)["size"] == {"shortest_edge": 336}
