"""The ``lavic`` generator: a fine-tuned checkpoint answering the harness's prompt, each
candidate image as ``views`` embeddings read from the view cache.

``bench run --model lavic --checkpoint DIR`` (or ``checkpoint = "DIR"`` in
``[generators.lavic]``); the base weights are ``model_path`` or the real
``llava-hf/llava-v1.6-mistral-7b-hf``, and must be the ones the checkpoint was trained on.
Both decodings of every local generator work (``generate`` with the paper's parser, ``score``
over the candidates' IDs). The prompt ids are exactly those stage 2 trained on (one
:class:`lavic.stage2.prompt.RecPrompt`, chat turn and answer room with the default
``max_new_tokens``), and an image without a cached row is embedded once with the checkpoint's
own vision side and stored. The named configurations are the paper's ablations (Tables 7 and
8): each refuses a checkpoint trained as another variant. Nothing here loads the training
loop (an import-linter contract).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from pydantic import Field, ValidationError
from transformers import AutoConfig, AutoTokenizer, LlavaNextForConditionalGeneration

from baselines.generators.chat import ChatTurn
from baselines.generators.hf import HFGenerator, HFOptions, Rendered, Settings, Source, load
from bench.core.context import BuildContext
from bench.core.errors import BenchError
from bench.core.options import takes
from lavic.model.arch import REAL_MODEL_ID
from lavic.model.embed import spliced_inputs
from lavic.stage2.config import FinetuneConfig, image_rows, slots
from lavic.stage2.prompt import RecPrompt
from lavic.store import checkpoint
from lavic.store.tokencache import TokenCache
from lavic.store.viewcache import ImageRows, image_key

#: generator name -> the stage-2 variant it runs
VARIANTS = {"lavic": "lavic", "lavic-no-images": "no-images", "lavic-no-distill": "no-distill",
            "lavic-entire-tokens": "entire-tokens", "lavic-combined": "lavic"}


class LavicOptions(HFOptions):
    """``[generators.lavic]``: every local generator's options plus the checkpoint."""

    checkpoint: str | None = Field(None, description="the `bench lavic finetune` output folder")


class LavicGenerator(HFGenerator):
    """An :class:`HFGenerator` whose rendering is stage 2's and whose image slots are view
    embeddings spliced in through the ``prompt_embeds`` seam."""

    def __init__(self, name: str, source: Source, settings: Settings, weights: Any,
                 config: Any, tokenizer: Any, coder: RecPrompt, cache: ImageRows | None,
                 folder: Path) -> None:
        self.tokenizer, self.coder, self.cache = tokenizer, coder, cache
        super().__init__(name, source, settings, weights, config)
        self.identity += f"|{checkpoint.identity(folder)}"
        if cache is not None:
            self.identity += f"|views={cache.store.key}"

    def chat_turn(self) -> ChatTurn:
        """Stage 2's turn, so the template, BOS and answer room are the trained ones."""
        return self.coder.turn

    def sanitize(self, text: str) -> str:
        return self.coder.sanitize(text)

    def format_slots(self, text: str) -> str:
        return self.coder.format_slots(text)

    def image_tokens(self, images: Sequence[Image.Image]) -> list[int]:
        """Views are in the text already (one token each); entire tokens expand to each
        image's count."""
        if isinstance(self.cache, TokenCache):
            return [self.cache.full.count(image) for image in images]
        return [1 for _ in images]

    def encode(self, texts: list[str], images: list[Image.Image]) -> Mapping[str, torch.Tensor]:
        if isinstance(self.cache, TokenCache):  # each image's one placeholder -> its tokens
            counts = iter(self.image_tokens(images))
            texts = [self.coder.expand(text, [next(counts) for _ in
                                              range(text.count(self.coder.placeholder))])
                     for text in texts]
        return self.tokenizer(texts, padding=True, return_tensors="pt",
                              add_special_tokens=self.add_special_tokens(texts[0]))

    def prompt_embeds(self, rendered: Sequence[Rendered],
                      inputs: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        if self.cache is None:
            return None
        keys, fresh = [], {}
        for r in rendered:
            for image, data in zip(r.images, r.image_bytes, strict=True):
                keys.append(image_key(data))
                fresh.setdefault(keys[-1], image)
        self.cache.fill(self.model, fresh)
        views = self.cache.read(keys).to(self.settings.device, self.settings.dtype)
        return spliced_inputs(self.model, inputs["input_ids"], views)


def load_weights(source: Source, settings: Settings, folder: Path) -> torch.nn.Module:
    """The base weights with both adapters merged (the vision side included, so rows the
    cache lacks are embedded by the same vision side stage 2 read)."""
    base = load(LlavaNextForConditionalGeneration, source, dtype=settings.dtype,
                device_map=str(settings.device))
    return checkpoint.load_finetuned(base, folder)[0]


def _build(ctx: BuildContext, name: str) -> LavicGenerator:
    table = ctx.where or f"[generators.{name}]"
    opts = ctx.parse(LavicOptions, table)
    if not opts.checkpoint:
        raise BenchError(f"{name} needs a fine-tuned checkpoint", where=f"{table} checkpoint",
                         hint="pass --checkpoint DIR (the output folder of `bench lavic "
                         "finetune`)")
    folder = Path(opts.checkpoint)
    spec = checkpoint.read_spec(folder, "finetune")
    variant = VARIANTS[name]
    if spec["config"]["variant"] != variant:
        raise BenchError(f"{folder} was fine-tuned as variant {spec['config']['variant']!r}, "
                         f"not {variant!r}", where=f"{table} checkpoint",
                         hint="use the generator named after its variant (see `bench ls`)")
    images = variant != "no-images"
    plain = {k: v for k, v in ctx.options.items() if k != "checkpoint"}
    settings = Settings.from_context(replace(ctx, options={**plain, "images": images}), name,
                                     vision=True)
    try:
        trained = FinetuneConfig(**spec["config"])
    except (ValidationError, TypeError) as err:
        raise BenchError(f"{folder} holds settings this version cannot read "
                         f"({str(err).splitlines()[0]})", where=f"{table} checkpoint",
                         hint="fine-tune it again with `bench lavic finetune`") from None
    # stage 2's input limit, explicit: a request that cannot fit (ten candidates' entire
    # tokens on the real model) is a counted over_budget failure, as the paper's o.o.m.
    settings = replace(settings, max_length=settings.max_length or trained.max_length)
    source = Source.locate(ctx, name, REAL_MODEL_ID)
    trained_on = str(spec.get("base") or "").rpartition("@")[2]
    if trained_on and source.fingerprint().rpartition("@")[2] != trained_on:
        raise BenchError(f"{folder} was fine-tuned on other base weights than {source.path}",
                         where=f"{table} model_path",
                         hint="point model_path at the weights stage 2 was trained on")
    config = load(AutoConfig, source)
    tokenizer = load(AutoTokenizer, source)
    placeholder = tokenizer.convert_ids_to_tokens(config.image_token_index)
    coder = RecPrompt(ChatTurn(tokenizer), placeholder, slots(trained), settings.max_length)
    cache = image_rows(trained, config, ctx.cache_dir, base=spec["base"],
                       stage1=spec["stage1"], tokenizer=tokenizer)
    weights = functools.partial(load_weights, source, settings, folder)
    return LavicGenerator(name, source, settings, weights, config, tokenizer, coder, cache,
                          folder)


def _factory(name: str) -> Any:
    @takes(LavicOptions)
    def build(ctx: BuildContext) -> LavicGenerator:
        return _build(ctx, name)

    return build


build_lavic = _factory("lavic")
build_no_images = _factory("lavic-no-images")
build_no_distill = _factory("lavic-no-distill")
build_entire_tokens = _factory("lavic-entire-tokens")
build_combined = _factory("lavic-combined")
