"""A small stage-2 world for the tests: the harness's release fixture, the character tokenizer,
tiny models, and stage-1 folders made without training (a random adapter + its spec)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from bench.task.data.release import ReleaseDataset
from lavic.model.lora import stage1
from lavic.model.tiny import tiny_model
from lavic.stage2.config import FinetuneConfig
from lavic.stage2.examples import RecExample, finetune_examples
from lavic.store.checkpoint import ADAPTER_DIR
from tests.conftest import write_release

FAST = FinetuneConfig(candidates=3, max_length=900, batch_size=2, max_steps=4, eval_steps=2,
                      learning_rate=1e-2, seed=3)


def model_for(tokenizer) -> torch.nn.Module:  # type: ignore[no-untyped-def]
    return tiny_model(vocab_size=len(tokenizer), projector_std=1.0)


def world(root: Path) -> tuple[list[RecExample], list[RecExample]]:
    """(train, valid) examples over the shipped SBERT candidates, 3 per conversation."""
    data = ReleaseDataset(write_release(root))
    out = []
    for split in (data.load("all_beauty", "valid"), data.load("all_beauty", "test")):
        ranked = {c.id: list(c.shipped_candidates["st"]) for c in split.conversations}
        out.append(finetune_examples(split, ranked, k=3, seed=0))
    return out[0], out[1][:4]


def fake_stage1(folder: Path, tokenizer, seed: int) -> Path:  # type: ignore[no-untyped-def]
    """A finished stage-1 folder: spec.json and a random (non-zero) vision adapter."""
    model = model_for(tokenizer)
    torch.manual_seed(seed)  # after tiny_model, which seeds itself
    model = stage1(model)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.2)
    model.save_pretrained(str(folder / ADAPTER_DIR))
    (folder / "spec.json").write_text(json.dumps({"stage": "distill", "seed": seed}))
    return folder
