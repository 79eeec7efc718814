"""Stage 1, visual self-distillation: the frozen LLM must rewrite an image's description from
``views`` [CLS]-position embeddings alone; only LoRA on the vision tower and projector learns.

Training is :mod:`lavic.training`'s ``Trainer``. The loss covers the description tokens and the
end of sequence only; logits are computed only at those positions. The best checkpoint is the
one with the lowest validation perplexity (token-weighted over the whole validation set).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from pydantic import Field
from transformers import EvalPrediction, TrainerCallback, set_seed

from baselines.generators.chat import ChatTurn
from bench.core.errors import BenchError
from lavic.model.embed import llava, spliced_inputs, view_embeddings
from lavic.model.lora import stage1
from lavic.model.views import ViewMaker
from lavic.settings import TrainingConfig
from lavic.stage1.data import Described, data_hash
from lavic.stage1.prompt import describe_prompt
from lavic.training import (
    IGNORE,
    NllTrainer,
    labelled_nll,
    pad_id,
    pad_rows,
    place,
    train_and_save,
    training_arguments,
    write_spec,
)


class DistillConfig(TrainingConfig):
    """Stage-1 settings (:class:`~lavic.settings.TrainingConfig` plus the images trained on)."""

    images_per_item: int | None = Field(None, gt=0, description=(
        "Train on images {ASIN}_0 .. N-1 of each item only (default: every described image, as "
        "the authors' stage 1)."))
    batch_size: int = Field(4, gt=0, description=(
        "Images per process and forward pass (the paper: 4)."))
    max_length: int = Field(1024, gt=0, description=(
        "Token limit of prompt + description; a longer description loses its tail."))


def load_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise BenchError(f"not a readable image ({err})", where=str(path),
                         hint="run `bench data validate --decode-images`") from err


class Collator:
    """Tokenises prompt + description + EOS, masks the prompt, and makes each image's views."""

    def __init__(self, tokenizer: Any, views: ViewMaker, placeholder_id: int,
                 max_length: int) -> None:
        self.turn, self.views, self.max_length = ChatTurn(tokenizer), views, max_length
        self.slots = tokenizer.convert_ids_to_tokens(placeholder_id) * views.views
        self.pad_id = pad_id(tokenizer)

    def encode(self, ex: Described) -> tuple[list[int], list[int]]:
        """(input ids, labels) of one example; a too-long description loses its tail."""
        prompt = self.turn.encode(describe_prompt(ex.title, self.slots))
        room = self.max_length - len(prompt)
        if room < 1:
            raise BenchError(f"the prompt alone is {len(prompt)} tokens", where=ex.title,
                             hint=f"raise max_length above {self.max_length}")
        answer = self.turn.answer(ex.description)[:room]
        return prompt + answer, [IGNORE] * len(prompt) + answer

    def __call__(self, batch: Sequence[Described]) -> dict[str, torch.Tensor]:
        pixels = self.views.batch([load_image(ex.image) for ex in batch])
        return {**pad_rows([self.encode(ex) for ex in batch], self.pad_id), "pixels": pixels}


def token_nll(model: torch.nn.Module, inputs: dict[str, torch.Tensor], layer: int,
              wrapped: torch.nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example summed negative log-likelihood of the labelled tokens, and their counts.

    The LLM runs through ``wrapped`` (the data-parallel wrapper, when there is one) so that
    gradients are synchronised.
    """
    views = view_embeddings(model, inputs["pixels"], layer=layer)
    embeds = spliced_inputs(model, inputs["input_ids"], views)
    return labelled_nll(wrapped or model, embeds, inputs["attention_mask"], inputs["labels"])


class DistillTrainer(NllTrainer):
    """The loss is :func:`token_nll`: the views are embedded by the vision side being trained."""

    def __init__(self, *args: Any, vision_layer: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vision_layer = vision_layer

    def nll(self, inner: torch.nn.Module, inputs: dict[str, torch.Tensor],
            wrapped: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        return token_nll(inner, inputs, self.vision_layer, wrapped=wrapped)


def perplexity(prediction: EvalPrediction) -> dict[str, float]:
    """exp(total NLL / total tokens) over the whole validation set."""
    pairs = np.asarray(prediction.predictions, dtype=np.float64).reshape(-1, 2)
    tokens = pairs[:, 1].sum()
    return {"perplexity": math.exp(pairs[:, 0].sum() / tokens) if tokens else math.inf}


def distill(
    model: torch.nn.Module,
    tokenizer: Any,
    train: Sequence[Described],
    valid: Sequence[Described],
    out: Path,
    config: DistillConfig = DistillConfig(),
    *,
    base_identity: str = "",
    callbacks: Sequence[TrainerCallback] = (),
) -> dict[str, Any]:
    """Train stage 1 into ``out`` (resuming its last checkpoint if any) and save the best
    adapter under ``out/adapter``; returns the spec plus the best perplexity and checkpoint."""
    if not train or not valid:
        raise BenchError("stage 1 needs training and validation images",
                         where="lavic distill", hint="check the description files")
    spec = {"stage": "distill", "base": base_identity, "config": config.model_dump(mode="json"),
            "train": data_hash(train), "valid": data_hash(valid)}
    write_spec(out, spec)
    set_seed(config.seed)  # LoRA's initial weights
    peft_model = stage1(place(model, config), config.lora)
    views = ViewMaker(llava(peft_model).config, config.views)
    collator = Collator(tokenizer, views, llava(peft_model).config.image_token_index,
                        config.max_length)
    trainer = DistillTrainer(
        model=peft_model, args=training_arguments(out, config), data_collator=collator,
        train_dataset=list(train), eval_dataset=list(valid), compute_metrics=perplexity,
        callbacks=list(callbacks), vision_layer=config.vision_layer)
    return train_and_save(trainer, out, {**spec, "views_settings": views.settings()},
                          "perplexity")
