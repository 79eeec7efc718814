"""Stage 1, visual self-distillation: the frozen LLM must rewrite an image's description from
``views`` [CLS]-position embeddings alone; only LoRA on the vision tower and projector learns.

Training is transformers' ``Trainer`` on the peft model, so checkpoints hold only the adapter,
and ``resume_from_checkpoint``, gradient accumulation, bf16, gradient checkpointing and
``accelerate launch`` come with it. The loss covers the description tokens and the end of
sequence only; logits are computed only at those positions. The best checkpoint is the one with
the lowest validation perplexity (token-weighted over the whole validation set).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from transformers import EvalPrediction, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from baselines.generators.hf import DTYPE_NAMES, pick_device, pick_dtype
from bench.core.errors import BenchError
from lavic.embed import DEFAULT_VISION_LAYER, llava, spliced_inputs, view_embeddings
from lavic.lora import LoraSpec, stage1
from lavic.prompts import describe_prompt, prompt_ids
from lavic.views import DEFAULT_VIEWS, ViewMaker

IGNORE = -100
SPEC_FILE = "spec.json"
ADAPTER_DIR = "adapter"
Device = Literal["auto", "cuda", "cpu"]
Dtype = Literal["auto", "bf16", "fp16", "fp32"]


class Described(BaseModel):
    """One training pair: an item's image and the description the full-token model wrote."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    title: str
    image: Path
    description: str


class DistillConfig(BaseModel):
    """Stage-1 settings; defaults are the paper's (Section 5.1) or, where it is silent, the
    authors' code (constant learning rate, weight decay 1e-5, gradient clipping at 1.0)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    views: int = DEFAULT_VIEWS
    images_per_item: int | None = Field(None, gt=0)  # None: every described image (authors')
    vision_layer: int = DEFAULT_VISION_LAYER
    lora: LoraSpec = LoraSpec()
    learning_rate: float = Field(5e-5, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    epochs: float = Field(5, gt=0)
    max_steps: int = Field(-1, description="-1: train for `epochs`; N > 0: stop after N "
                           "steps (tests, smoke runs)")
    eval_steps: int | None = Field(None, gt=0)  # None: evaluate and save once per epoch
    batch_size: int = Field(4, gt=0)
    grad_accum: int = Field(1, gt=0)
    max_length: int = Field(1024, gt=0)
    seed: int = 42
    # where it runs and how many processes feed it are not the run's identity (excluded from
    # the spec); the dtype is: ``auto`` is resolved here, so the spec names the one used
    device: Device = Field("auto", exclude=True)
    workers: int = Field(0, ge=0, exclude=True)  # DataLoader processes (decoding, views)
    dtype: Dtype = Field("auto", validate_default=True)
    gradient_checkpointing: bool = False

    @field_validator("dtype")
    @classmethod
    def _resolve_dtype(cls, value: str, info: ValidationInfo) -> str:
        return DTYPE_NAMES[placement(info.data.get("device", "auto"), value)[1]]

    @field_validator("max_steps")
    @classmethod
    def _steps_or_epochs(cls, value: int) -> int:
        if value == 0 or value < -1:  # 0 would silently mean "epochs" to Trainer
            raise ValueError("use -1 (train for epochs) or a positive number of steps")
        return value


def placement(device: str = "auto", dtype: str = "auto") -> tuple[torch.device, torch.dtype]:
    """The device and dtype a command runs in (``auto``: cuda, bf16 there, else the CPU in
    fp32); under torchrun / accelerate a GPU is this process's own (``LOCAL_RANK``), which is
    where ``Trainer`` expects the model, so it never moves it."""
    chosen = pick_device(device, "--device")
    if chosen.type == "cuda" and chosen.index is None:
        chosen = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return chosen, pick_dtype(dtype, chosen)


def place(model: torch.nn.Module, config: DistillConfig) -> torch.nn.Module:
    """``model`` on the config's device in its dtype, before any forward (a no-op for a model
    loaded there, as ``bench lavic`` loads it)."""
    device, dtype = placement(config.device, config.dtype)
    return model.to(device=device, dtype=dtype)


def image_hash(path: Path) -> str:
    """sha256 of the image file's bytes (its identity in specs and caches)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise BenchError(f"cannot read image: {err.strerror}", where=str(path)) from err


def data_hash(examples: Sequence[Described]) -> str:
    """One hash over titles, descriptions and image bytes, in order."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(json.dumps([ex.title, ex.description, image_hash(ex.image)]).encode())
    return digest.hexdigest()


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
        self.tokenizer, self.views, self.max_length = tokenizer, views, max_length
        self.slots = tokenizer.convert_ids_to_tokens(placeholder_id) * views.views
        self.pad_id = tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = tokenizer.eos_token_id

    def encode(self, ex: Described) -> tuple[list[int], list[int]]:
        """(input ids, labels) of one example; a too-long description loses its tail."""
        prompt = prompt_ids(self.tokenizer, describe_prompt(ex.title, self.slots))
        room = self.max_length - len(prompt)
        if room < 1:
            raise BenchError(f"the prompt alone is {len(prompt)} tokens", where=ex.title,
                             hint=f"raise max_length above {self.max_length}")
        answer = self.tokenizer(ex.description, add_special_tokens=False)["input_ids"]
        answer = [*answer, self.tokenizer.eos_token_id][:room]
        return prompt + answer, [IGNORE] * len(prompt) + answer

    def __call__(self, batch: Sequence[Described]) -> dict[str, torch.Tensor]:
        encoded = [self.encode(ex) for ex in batch]
        width = max(len(ids) for ids, _ in encoded)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, labs) in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(labs)] = torch.tensor(labs)
            mask[row, : len(ids)] = 1
        pixels = self.views.batch([load_image(ex.image) for ex in batch])
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels,
                "pixels": pixels}


def token_nll(model: torch.nn.Module, inputs: dict[str, torch.Tensor], layer: int,
              wrapped: torch.nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example summed negative log-likelihood of the labelled tokens, and their counts.

    The LLM runs through ``wrapped`` (the data-parallel wrapper, when there is one) so that
    gradients are synchronised.
    """
    views = view_embeddings(model, inputs["pixels"], layer=layer)
    embeds = spliced_inputs(model, inputs["input_ids"], views)
    return labelled_nll(wrapped or model, embeds, inputs["attention_mask"], inputs["labels"])


def labelled_nll(forward: torch.nn.Module, embeds: torch.Tensor, attention_mask: torch.Tensor,
                 labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row summed NLL of the labelled tokens given input embeddings, and their counts;
    logits are computed only at positions that predict a label."""
    target = labels[:, 1:]
    positions = (target != IGNORE).any(dim=0).nonzero()[:, 0]
    logits = forward(inputs_embeds=embeds, attention_mask=attention_mask,
                     logits_to_keep=positions, use_cache=False).logits
    target = target[:, positions]
    keep = target != IGNORE
    per_token = F.cross_entropy(logits[keep].float(), target[keep], reduction="none")
    rows = keep.nonzero()[:, 0]
    size = target.shape[0]
    nll = torch.zeros(size, device=per_token.device).index_add(0, rows, per_token)
    count = torch.zeros(size, device=per_token.device).index_add(
        0, rows, torch.ones_like(per_token))
    return nll, count


class DistillTrainer(Trainer):
    """``Trainer`` whose loss is :func:`token_nll`; evaluation returns (nll, count) per example
    so that perplexity is weighted by tokens, not by batches."""

    def __init__(self, *args: Any, vision_layer: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vision_layer = vision_layer

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor],
                     return_outputs: bool = False,
                     num_items_in_batch: torch.Tensor | int | None = None) -> Any:
        nll, count = self.nll(self.accelerator.unwrap_model(model), inputs, model)
        if num_items_in_batch is None:  # Trainer then divides by the accumulation steps
            loss = nll.sum() / count.sum().clamp(min=1)
        else:  # the token count of all accumulated (and, averaged, all processes') batches
            loss = nll.sum() / num_items_in_batch
            if self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
        if return_outputs:
            return loss, {"loss": loss, "nll": torch.stack([nll.detach(), count], dim=-1)}
        return loss

    def nll(self, inner: torch.nn.Module, inputs: dict[str, torch.Tensor],
            wrapped: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example (NLL, labelled tokens) of a batch; ``wrapped`` runs the LLM."""
        return token_nll(inner, inputs, self.vision_layer, wrapped=wrapped)


def perplexity(prediction: EvalPrediction) -> dict[str, float]:
    """exp(total NLL / total tokens) over the whole validation set."""
    pairs = np.asarray(prediction.predictions, dtype=np.float64).reshape(-1, 2)
    tokens = pairs[:, 1].sum()
    return {"perplexity": math.exp(pairs[:, 0].sum() / tokens) if tokens else math.inf}


# transformers 5.23 renamed it (the old name warns); the floor, 5.0, knows only the old one
CHECKPOINTING = ("activation_checkpointing"
                 if "activation_checkpointing" in {f.name for f in fields(TrainingArguments)}
                 else "gradient_checkpointing")


def training_arguments(out: Path, config: DistillConfig, *, metric: str = "perplexity",
                       greater: bool = False) -> TrainingArguments:
    """The Trainer's settings. The weights are in ``config.dtype`` already; bf16 / fp16 add
    autocast for peft's float32 LoRA weights (and fp16 its loss scaling). ``use_cpu`` keeps a
    CPU run off any GPU and, under torchrun on a CPU-only machine, forms a gloo group (without
    it every process would train on all the data)."""
    every = "epoch" if config.eval_steps is None else "steps"
    device = placement(config.device, config.dtype)[0]
    return TrainingArguments(
        output_dir=str(out), seed=config.seed, data_seed=config.seed,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate, weight_decay=config.weight_decay,
        lr_scheduler_type="constant", max_grad_norm=1.0,
        num_train_epochs=config.epochs, max_steps=config.max_steps,
        eval_strategy=every, save_strategy=every,
        eval_steps=config.eval_steps, save_steps=config.eval_steps,
        load_best_model_at_end=True, metric_for_best_model=metric,
        greater_is_better=greater, save_total_limit=2,
        label_names=["labels"], remove_unused_columns=False,
        bf16=config.dtype == "bf16", fp16=config.dtype == "fp16",
        **{CHECKPOINTING: config.gradient_checkpointing},
        logging_steps=1, report_to=[], dataloader_num_workers=config.workers,
        use_cpu=device.type == "cpu",
    )


def write_spec(out: Path, spec: dict[str, Any], what: str = "stage-1") -> None:
    """Record what this run is; refuse to resume a folder that holds a different run."""
    path = out / SPEC_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if old != spec:
            raise BenchError(f"the output folder holds a different {what} run", where=str(path),
                             hint="use a new output folder or delete this one")
        return
    out.mkdir(parents=True, exist_ok=True)
    # atomic: data-parallel processes all write the same spec and may read each other's
    partial = path.with_name(f"{SPEC_FILE}.{os.getpid()}")
    partial.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)


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
    trainer.train(resume_from_checkpoint=get_last_checkpoint(str(out)))
    trainer.save_model(str(out / ADAPTER_DIR))
    state = trainer.state
    result = {**spec, "best_perplexity": state.best_metric,
              "best_checkpoint": Path(state.best_model_checkpoint or "").name,
              "views_settings": views.settings()}
    if trainer.is_world_process_zero():
        (out / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result
