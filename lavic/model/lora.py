"""Where each stage's LoRA goes, and how many parameters it trains (closed form).

Stage 1 (self-distillation) adapts the vision side only: every linear layer of the vision tower
and both projector layers; the LLM stays frozen. Stage 2 (recommendation) merges the stage-1
adapter and adapts the LLM's attention and MLP projections only; the whole vision side,
projector included, is frozen (the authors' code re-enables the projector silently).

Targets are found by module type under each sub-model, not by name lists, so a layer the
architecture adds cannot be missed; the formulas below are the independent check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from peft import LoraConfig, PeftModel, get_peft_model
from pydantic import Field
from torch import nn
from transformers import LlavaNextConfig

from lavic.model.embed import llava


@dataclass(frozen=True)
class LoraSpec:
    """The paper's LoRA hyper-parameters (Section 5.1) as defaults."""

    # checked where a schema holds it; the descriptions are the options' help lines
    r: Annotated[int, Field(gt=0, description="LoRA rank (the paper: 8).")] = 8
    alpha: Annotated[int, Field(gt=0, description=(
        "LoRA scaling numerator: updates are scaled by alpha / r (the paper: 32)."))] = 32
    dropout: Annotated[float, Field(ge=0, lt=1, description=(
        "Dropout on the LoRA branch's input, 0 <= p < 1 (the paper: 0.1)."))] = 0.1


def _linears(model: nn.Module, *prefixes: str) -> list[str]:
    """Names (relative to the LLaVA-NeXT model) of the ``nn.Linear`` modules under prefixes."""
    return [name for name, module in llava(model).named_modules()
            if isinstance(module, nn.Linear) and name.startswith(prefixes)]


def vision_targets(model: nn.Module) -> list[str]:
    """Every linear layer of the vision tower and of the projector."""
    return _linears(model, "model.vision_tower.", "model.multi_modal_projector.")


def llm_targets(model: nn.Module) -> list[str]:
    """The LLM's attention and MLP projections (``lm_head`` lives outside the LLM)."""
    return _linears(model, "model.language_model.")


def _adapt(model: nn.Module, targets: list[str], spec: LoraSpec) -> PeftModel:
    config = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                        target_modules=targets, bias="none")
    return get_peft_model(model, config)  # freezes every non-LoRA parameter


def stage1(model: nn.Module, spec: LoraSpec = LoraSpec()) -> PeftModel:
    """LoRA on the vision tower and projector; everything else frozen."""
    return _adapt(model, vision_targets(model), spec)


def stage2(model: nn.Module, spec: LoraSpec = LoraSpec()) -> PeftModel:
    """Merge a stage-1 adapter if ``model`` carries one, then LoRA on the LLM only."""
    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
    return _adapt(model, llm_targets(model), spec)


def trainable(model: nn.Module) -> dict[str, int]:
    """Trainable parameter count per LoRA target module (``lora_A``/``lora_B`` summed)."""
    counts: dict[str, int] = {}
    for name, param in llava(model).named_parameters():
        if param.requires_grad:
            owner = name.split(".lora_")[0]
            counts[owner] = counts.get(owner, 0) + param.numel()
    return counts


def stage1_count(config: LlavaNextConfig, r: int = LoraSpec.r) -> int:
    """Closed form: a rank-r LoRA on ``Linear(i, o)`` trains ``r * (i + o)`` weights.

    CLIP layer: q, k, v, out (d -> d) and fc1 (d -> m), fc2 (m -> d): ``r * (10 d + 2 m)``;
    projector: linear_1 (d -> h), linear_2 (h -> h): ``r * (d + 3 h)``.
    """
    vision, text = config.vision_config, config.text_config
    d, m, h = vision.hidden_size, vision.intermediate_size, text.hidden_size
    return vision.num_hidden_layers * r * (10 * d + 2 * m) + r * (d + 3 * h)


def stage2_count(config: LlavaNextConfig, r: int = LoraSpec.r) -> int:
    """Closed form for the Mistral decoder: q, o (h -> h), k, v (h -> kv), gate, up (h -> m),
    down (m -> h): ``r * (9 h + 2 kv + 3 m)`` per layer, ``kv`` = KV heads x head size."""
    text = config.text_config
    h, m = text.hidden_size, text.intermediate_size
    head_dim = getattr(text, "head_dim", None) or h // text.num_attention_heads
    kv = text.num_key_value_heads * head_dim
    return text.num_hidden_layers * r * (9 * h + 2 * kv + 3 * m)

