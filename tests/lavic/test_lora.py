"""Fidelity: each stage's LoRA lands exactly where the paper says, with the right size.

Real llava-v1.6-mistral-7b-hf counts (r = 8), from the formulas and from peft on a meta-device
copy of the real model: stage 1 (vision tower + projector) 3,645,440 trainable parameters in
146 layers; stage 2 (LLM attention + MLP) 20,971,520 in 224 layers.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lavic.model.arch import meta_model, real_config
from lavic.model.embed import view_embeddings
from lavic.model.lora import LoraSpec, stage1, stage1_count, stage2, stage2_count, trainable
from lavic.model.tiny import tiny_model

REAL_STAGE1, REAL_STAGE2 = 3_645_440, 20_971_520
LLM_PROJECTIONS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def linears(model: nn.Module, prefix: str) -> set[str]:
    return {name for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and name.startswith(prefix)}


def test_formulas_give_the_real_counts() -> None:
    config = real_config()
    print(f"\nreal stage-1 LoRA parameters: {stage1_count(config):,}")
    print(f"real stage-2 LoRA parameters: {stage2_count(config):,}")
    assert stage1_count(config) == REAL_STAGE1
    assert stage2_count(config) == REAL_STAGE2
    assert stage1_count(config, r=16) == 2 * REAL_STAGE1


def test_peft_on_the_real_model_trains_the_formula_counts() -> None:
    """peft on a meta-device copy of the 7B model: shapes only, no memory."""
    one = trainable(stage1(meta_model()))
    two = trainable(stage2(meta_model()))
    assert (sum(one.values()), len(one)) == (REAL_STAGE1, 24 * 6 + 2)
    assert (sum(two.values()), len(two)) == (REAL_STAGE2, 32 * 7)


def test_stage1_targets_every_vision_linear_and_nothing_else() -> None:
    base = tiny_model()
    vision = linears(base, "model.vision_tower.") | linears(base, "model.multi_modal_projector.")
    model = stage1(base)
    counts = trainable(model)
    assert set(counts) == vision
    assert {"model.multi_modal_projector.linear_1",
            "model.multi_modal_projector.linear_2"} <= set(counts)
    assert len(vision) == 2 * 6 + 2
    assert sum(counts.values()) == stage1_count(base.config)
    frozen = [n for n, p in model.named_parameters() if "lora_" not in n]
    assert frozen and not any(p.requires_grad for n, p in model.named_parameters()
                              if "lora_" not in n)
    assert model.peft_config["default"].r == 8
    assert model.peft_config["default"].lora_alpha == 32
    assert model.peft_config["default"].lora_dropout == 0.1


def test_stage2_targets_only_the_llm_projections() -> None:
    model = stage2(stage1(tiny_model()))
    counts = trainable(model)
    assert all(name.startswith("model.language_model.layers.") for name in counts)
    assert {name.rsplit(".", 1)[1] for name in counts} == LLM_PROJECTIONS
    assert len(counts) == 2 * len(LLM_PROJECTIONS)
    assert sum(counts.values()) == stage2_count(model.config)
    vision = [p for n, p in model.named_parameters()
              if ".vision_tower." in n or ".multi_modal_projector." in n]
    assert vision and not any(p.requires_grad for p in vision)
    assert not any("vision_tower" in n and "lora_" in n for n, _ in model.named_parameters())


def test_stage2_keeps_what_stage1_learned() -> None:
    """Merging the stage-1 adapter must not change the view embeddings."""
    model = stage1(tiny_model(projector_std=1.0), LoraSpec(dropout=0.0))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            nn.init.normal_(param, std=0.05)
    pixels = torch.randn(2, 5, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        adapted = view_embeddings(model, pixels)
        plain = view_embeddings(tiny_model(projector_std=1.0), pixels)
        merged = view_embeddings(stage2(model), pixels)
    assert not torch.allclose(adapted, plain, atol=1e-3)
    assert torch.allclose(adapted, merged, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("r", [4, 8])
def test_rank_changes_counts_by_the_formula(r: int) -> None:
    base = tiny_model()
    assert sum(trainable(stage1(base, LoraSpec(r=r))).values()) == stage1_count(base.config, r)
