"""The real LLaVA-NeXT architecture as data.

LaViC is built on ``llava-hf/llava-v1.6-mistral-7b-hf``. Its ``config.json`` and
``preprocessor_config.json`` are embedded here (the values that shape the model) so that tests
and ``bench lavic plan`` can check the method against the real architecture without downloading
15 GB: the real model can be instantiated on the ``meta`` device for free, and
:mod:`lavic.model.tiny` shrinks the same configuration for CPU runs.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration

REAL_MODEL_ID = "llava-hf/llava-v1.6-mistral-7b-hf"

# config.json of llava-hf/llava-v1.6-mistral-7b-hf (architecture-defining keys).
REAL_CONFIG: dict[str, Any] = {
    "architectures": ["LlavaNextForConditionalGeneration"],
    "model_type": "llava_next",
    "ignore_index": -100,
    "image_grid_pinpoints": [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
    "image_token_index": 32000,
    "projector_hidden_act": "gelu",
    "use_image_newline_parameter": True,
    "vision_feature_layer": -2,
    "vision_feature_select_strategy": "default",
    "vocab_size": 32064,
    "text_config": {
        "_name_or_path": "mistralai/Mistral-7B-Instruct-v0.2",
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-05,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "vocab_size": 32064,
    },
    "vision_config": {
        "model_type": "clip_vision_model",
        "hidden_size": 1024,
        "image_size": 336,
        "intermediate_size": 4096,
        "num_attention_heads": 16,
        "num_hidden_layers": 24,
        "patch_size": 14,
        "projection_dim": 768,
        "vocab_size": 32000,
    },
}

# preprocessor_config.json of the same repository (LlavaNextImageProcessor settings).
REAL_PREPROCESSOR: dict[str, Any] = {
    "crop_size": {"height": 336, "width": 336},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_pad": True,
    "do_rescale": True,
    "do_resize": True,
    "image_grid_pinpoints": [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 336},
}


def real_config() -> LlavaNextConfig:
    """The real model's configuration, built in-process (no hub access)."""
    return LlavaNextConfig(**copy.deepcopy(REAL_CONFIG))


def preprocessor_settings(config: LlavaNextConfig) -> dict[str, Any]:
    """The real image-processor settings, with the sizes of ``config``'s vision tower."""
    side = int(config.vision_config.image_size)
    settings = copy.deepcopy(REAL_PREPROCESSOR)
    settings["crop_size"] = {"height": side, "width": side}
    settings["size"] = {"shortest_edge": side}
    settings["image_grid_pinpoints"] = [list(p) for p in config.image_grid_pinpoints]
    return settings


def meta_model(config: LlavaNextConfig | None = None) -> LlavaNextForConditionalGeneration:
    """A model of ``config`` (default: the real one) on the meta device: shapes, no memory."""
    with torch.device("meta"):
        return LlavaNextForConditionalGeneration(config or real_config())
