"""What both training stages' settings share, and where a run is placed.

:class:`TrainingConfig` is the base of stage 1's ``DistillConfig`` and stage 2's
``FinetuneConfig``; it lives apart from the training loop (:mod:`lavic.training`) because the
``lavic`` generator reads a checkpoint's ``FinetuneConfig`` and must not load transformers'
``Trainer``. Every field's description is the help line of its ``bench lavic`` option.
"""

from __future__ import annotations

import os
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from baselines.generators.hf import DTYPE_NAMES, pick_device, pick_dtype
from lavic.model.embed import DEFAULT_VISION_LAYER
from lavic.model.lora import LoraSpec
from lavic.model.views import DEFAULT_VIEWS

Device = Literal["auto", "cuda", "cpu"]
Dtype = Literal["auto", "bf16", "fp16", "fp32"]


def placement(device: str = "auto", dtype: str = "auto") -> tuple[torch.device, torch.dtype]:
    """The device and dtype a command runs in (``auto``: cuda, bf16 there, else the CPU in
    fp32); under torchrun / accelerate a GPU is this process's own (``LOCAL_RANK``), which is
    where ``Trainer`` expects the model, so it never moves it."""
    chosen = pick_device(device, "--device")
    if chosen.type == "cuda" and chosen.index is None:
        chosen = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return chosen, pick_dtype(dtype, chosen)


class TrainingConfig(BaseModel):
    """Settings of a LoRA training run; defaults are the paper's (Section 5.1) or, where it is
    silent, the authors' code (constant learning rate, weight decay 1e-5, clipping at 1.0)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    views: int = Field(DEFAULT_VIEWS, description=(
        "Views per image, one [CLS] embedding each: 1 (the whole image), 5 (plus a 2x2 grid, "
        "the paper's) or 9 (plus a 2x4 grid)."))
    vision_layer: int = Field(DEFAULT_VISION_LAYER, description=(
        "Vision-tower hidden state whose [CLS] position is embedded: -1 is the last encoder "
        "layer (the authors' code); LLaVA's own projector reads -2."))
    lora: LoraSpec = LoraSpec()
    learning_rate: float = Field(5e-5, gt=0, description=(
        "Constant AdamW learning rate; the paper's grid is 5e-5, 1e-5, 5e-6 and 1e-6."))
    weight_decay: float = Field(1e-5, ge=0, description=(
        "AdamW weight decay; the paper's grid is 1e-2, 1e-3, 1e-4, 1e-5 and 0."))
    epochs: float = Field(5, gt=0, description=(
        "Passes over the training data, fractions allowed (the paper: up to 5)."))
    max_steps: int = Field(-1, description=(
        "-1 trains for the epochs; N > 0 stops after N optimizer steps (smoke runs, tests)."))
    eval_steps: int | None = Field(None, gt=0, description=(
        "Validate and checkpoint every N optimizer steps (default: once per epoch)."))
    batch_size: int = Field(4, gt=0, description="Examples per process and forward pass.")
    grad_accum: int = Field(1, gt=0, description=(
        "Batches accumulated per optimizer step (the step's batch: batch size x this x "
        "processes)."))
    max_length: int = Field(1024, gt=0, description="Token limit of one training sequence.")
    seed: int = Field(42, description=(
        "Seed of the LoRA weights' initialisation, the data order and dropout."))
    # where it runs and how many processes feed it are not the run's identity (excluded from
    # the spec); the dtype is: ``auto`` is resolved here, so the spec names the one used
    device: Device = Field("auto", exclude=True, description=(
        "auto (cuda when there is one, else the CPU), cuda or cpu; not part of the run's "
        "identity."))
    workers: int = Field(0, ge=0, exclude=True, description=(
        "DataLoader processes that decode images and make views (0: the training process)."))
    dtype: Dtype = Field("auto", validate_default=True, description=(
        "Weights' dtype: auto (bf16 on cuda, fp32 on the CPU), bf16, fp16 or fp32; the spec "
        "records the one used."))
    gradient_checkpointing: bool = Field(False, description=(
        "Recompute activations in the backward pass: less memory, a third more compute."))

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
