"""Tiny LLaVA-NeXT models with exactly the real module tree, for CPU runs from a clone.

:func:`tiny_config` is the real configuration (:mod:`lavic.model.arch`) with shrunken sizes;
:func:`tiny_model` builds it in memory for the tests; ``bench lavic tiny --out DIR``
(:func:`tiny_folder`) writes model, character tokenizer and processor with
``save_pretrained``, so every stage loads it exactly as it loads
``llava-hf/llava-v1.6-mistral-7b-hf`` (``--model-path DIR``): same classes, same module tree, no
download. The vocabulary is one token per printable character plus the real model's special
tokens, so any text round-trips.
"""

from __future__ import annotations

import copy
import string
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextProcessor,
    PreTrainedTokenizerFast,
)

from lavic.model.arch import REAL_CONFIG, preprocessor_settings
from lavic.model.views import ImageProcessor

# Shrunken sizes for tests: the same GQA ratio (4 query heads per KV head) as Mistral-7B and
# CLIP's patch size; everything else small enough for a CPU.
TINY_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 1}
TINY_VISION = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
               "num_attention_heads": 2, "image_size": 28, "projection_dim": 16}

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]
IMAGE = "<image>"
# With the default init (std 0.02) a tower this small barely lets [CLS] attend to the patches,
# so every image gives nearly the same vector (relative spread across images 0.003) and an LLM
# trained on such inputs learns to ignore them; std 0.2 gives a spread of about 0.25, and a
# projector std of 0.1 keeps the projected vectors near unit norm.
VISION_STD = 0.2
PROJECTOR_STD = 0.1


def tiny_config(*, vocab_size: int = 64, image_token_index: int | None = None) -> LlavaNextConfig:
    """The real configuration with shrunken sizes; the image token is the last vocabulary id
    unless given, and the grid pinpoints are scaled with the image side."""
    raw = copy.deepcopy(REAL_CONFIG)
    raw["text_config"].update(TINY_TEXT, vocab_size=vocab_size, max_position_embeddings=2048)
    raw["vision_config"].update(TINY_VISION)
    raw["vocab_size"] = vocab_size
    raw["image_token_index"] = vocab_size - 1 if image_token_index is None else image_token_index
    scale = TINY_VISION["image_size"] / REAL_CONFIG["vision_config"]["image_size"]
    raw["image_grid_pinpoints"] = [[round(h * scale), round(w * scale)]
                                   for h, w in REAL_CONFIG["image_grid_pinpoints"]]
    return LlavaNextConfig(**raw)


def tiny_model(
    *, vocab_size: int = 64, seed: int = 0, projector_std: float | None = None
) -> LlavaNextForConditionalGeneration:
    """A randomly initialised tiny LLaVA-NeXT in eval mode.

    ``projector_std`` re-initialises the projector's weights: with the default (0.02) the
    projected embeddings of different images are nearly identical on a tiny model, and an LLM
    trained on them learns to ignore the images.
    """
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(tiny_config(vocab_size=vocab_size))
    if projector_std is not None:
        for layer in (model.model.multi_modal_projector.linear_1,
                      model.model.multi_modal_projector.linear_2):
            torch.nn.init.normal_(layer.weight, std=projector_std)
    return model.eval()


def char_tokenizer() -> PreTrainedTokenizerFast:
    """One token per printable character; the last id is ``<image>``."""
    vocab = {t: i for i, t in enumerate([*SPECIALS, *string.printable, IMAGE])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        pad_token="<pad>", extra_special_tokens=[IMAGE])


def image_aware_tiny(vocab_size: int, *, seed: int = 0) -> LlavaNextForConditionalGeneration:
    """:func:`tiny_model` whose view embeddings differ between images."""
    model = tiny_model(vocab_size=vocab_size, seed=seed, projector_std=PROJECTOR_STD)
    for module in model.model.vision_tower.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=VISION_STD)
    return model


def tiny_folder(out: Path, *, seed: int = 0) -> LlavaNextForConditionalGeneration:
    """Write a tiny model, its tokenizer and its any-resolution processor into ``out``."""
    tokenizer = char_tokenizer()
    model = image_aware_tiny(len(tokenizer), seed=seed)
    config = model.config
    processor = LlavaNextProcessor(
        image_processor=ImageProcessor(**preprocessor_settings(config)), tokenizer=tokenizer,
        patch_size=config.vision_config.patch_size, image_token=IMAGE,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        num_additional_image_tokens=1)  # CLIP's [CLS], as in the real processor_config.json
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return model
