"""A tiny LLaVA-NeXT folder (model, character tokenizer, processor) for CPU runs from a clone.

``bench lavic tiny --out DIR`` writes it with ``save_pretrained``, so every stage loads it
exactly as it loads ``llava-hf/llava-v1.6-mistral-7b-hf`` (``--model-path DIR``): same classes,
same module tree, shrunken sizes, no download. The vocabulary is one token per printable
character plus the real model's special tokens, so any text round-trips.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    LlavaNextForConditionalGeneration,
    LlavaNextProcessor,
    PreTrainedTokenizerFast,
)

from lavic.arch import preprocessor_settings, tiny_model
from lavic.views import ImageProcessor

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]
IMAGE = "<image>"
# With the default init (std 0.02) a tower this small barely lets [CLS] attend to the patches,
# so every image gives nearly the same vector (relative spread across images 0.003) and an LLM
# trained on such inputs learns to ignore them; std 0.2 gives a spread of about 0.25, and a
# projector std of 0.1 keeps the projected vectors near unit norm.
VISION_STD = 0.2
PROJECTOR_STD = 0.1


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
    """:func:`~lavic.arch.tiny_model` whose view embeddings differ between images."""
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
