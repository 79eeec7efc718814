"""A tiny LLaVA-NeXT folder (model, character tokenizer, processor) for CPU runs from a clone.

``bench lavic tiny --out DIR`` writes it with ``save_pretrained``, so every stage loads it
exactly as it loads ``llava-hf/llava-v1.6-mistral-7b-hf`` (``--model-path DIR``): same classes,
same module tree, shrunken sizes, no download. The vocabulary is one token per printable
character plus the real model's special tokens, so any text round-trips.
"""

from __future__ import annotations

import string
from pathlib import Path

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
# The default init (std 0.02) maps every image to nearly the same vector on a model this small,
# and an LLM trained on such inputs learns to ignore them.
PROJECTOR_STD = 1.0


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


def tiny_folder(out: Path, *, seed: int = 0) -> LlavaNextForConditionalGeneration:
    """Write a tiny model, its tokenizer and its any-resolution processor into ``out``."""
    tokenizer = char_tokenizer()
    model = tiny_model(vocab_size=len(tokenizer), seed=seed, projector_std=PROJECTOR_STD)
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
