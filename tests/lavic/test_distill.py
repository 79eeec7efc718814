"""Stage 1: loss on the description only, token-weighted perplexity, best checkpoint, resume."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import EvalPrediction, TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from bench.core.errors import BenchError
from lavic.model.embed import llava, spliced_inputs, view_embeddings
from lavic.model.tiny import tiny_model
from lavic.model.views import ViewMaker
from lavic.stage1.distill import Collator, DistillConfig, distill, perplexity, token_nll
from tests.lavic.conftest import IMAGE, examples

FAST = DistillConfig(batch_size=2, max_steps=6, eval_steps=2, learning_rate=1e-2,
                     max_length=512, seed=3)


def model_for(tokenizer) -> torch.nn.Module:
    return tiny_model(vocab_size=len(tokenizer), projector_std=1.0)


def test_labels_are_the_description_and_eos_only(tokenizer, tmp_path: Path) -> None:
    model = model_for(tokenizer)
    slot = model.config.image_token_index
    assert tokenizer.convert_ids_to_tokens(slot) == IMAGE
    collate = Collator(tokenizer, ViewMaker(model.config), slot, max_length=512)
    batch = collate(examples(tmp_path, 2))
    first = batch["labels"][0]
    kept = first[first != -100].tolist()
    assert tokenizer.decode(kept[:-1]) == "a red thing" and kept[-1] == tokenizer.eos_token_id
    assert batch["pixels"].shape == (2, 5, 3, 28, 28)
    assert ((batch["input_ids"] == slot).sum(dim=1) == 5).all()
    prompt = tokenizer.decode(batch["input_ids"][0][first == -100].tolist())
    assert "This product's title is: item 0\n" in prompt and "a red thing" not in prompt


def test_a_long_description_loses_its_tail_not_the_prompt(tokenizer, tmp_path: Path) -> None:
    model = model_for(tokenizer)
    slot = model.config.image_token_index
    ex = examples(tmp_path, 1)[0]
    full = Collator(tokenizer, ViewMaker(model.config), slot, max_length=1024).encode(ex)
    cut = Collator(tokenizer, ViewMaker(model.config), slot, max_length=len(full[0]) - 3)
    ids, labels = cut.encode(ex)
    assert ids == full[0][:-3] and labels == full[1][:-3]
    with pytest.raises(BenchError, match="the prompt alone is"):
        Collator(tokenizer, ViewMaker(model.config), slot, max_length=300).encode(ex)


def test_token_nll_matches_the_model_own_loss(tokenizer, tmp_path: Path) -> None:
    """Logits only at labelled positions give the same loss as the model's full forward."""
    model = model_for(tokenizer)
    slot = model.config.image_token_index
    batch = Collator(tokenizer, ViewMaker(model.config), slot, max_length=512)(
        [ex.model_copy(update={"description": ex.description * (i + 1)})
         for i, ex in enumerate(examples(tmp_path, 3))])
    with torch.no_grad():
        nll, count = token_nll(model, batch, layer=-1)
        embeds = spliced_inputs(model, batch["input_ids"], view_embeddings(model, batch["pixels"]))
        full = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                     labels=batch["labels"]).loss
    assert count.tolist() == [(batch["labels"][i] != -100).sum().item() for i in range(3)]
    assert count[0] < count[1] < count[2]
    assert (nll.sum() / count.sum()).item() == pytest.approx(full.item(), rel=1e-5)


def test_perplexity_is_token_weighted() -> None:
    pairs = np.array([[2.0, 1.0], [0.0, 3.0]])
    got = perplexity(EvalPrediction(predictions=pairs, label_ids=None))["perplexity"]
    assert got == pytest.approx(math.exp(0.5))  # not (e^2 + e^0) / 2


def test_training_moves_only_the_vision_adapter(tokenizer, tmp_path: Path) -> None:
    model = model_for(tokenizer)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = distill(model, tokenizer, examples(tmp_path / "img", 6),
                     examples(tmp_path / "val", 2, seed=1), tmp_path / "out", FAST)
    params = dict(llava(model).named_parameters())
    base = {n.replace(".base_layer", ""): p for n, p in params.items() if "lora_" not in n}
    assert base.keys() == before.keys()
    for name, old in before.items():  # every base weight, LLM and vision alike, is untouched
        assert torch.equal(base[name], old), name
    moved = [n for n, p in params.items() if "lora_B" in n and p.abs().sum() > 0]
    assert moved and all("vision_tower" in n or "multi_modal_projector" in n for n in moved)
    spec = json.loads((tmp_path / "out" / "spec.json").read_text())
    assert spec["config"]["views"] == 5 and spec["config"]["lora"] == {
        "r": 8, "alpha": 32, "dropout": 0.1}
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").is_file()
    logged = [e["eval_perplexity"] for e in json.loads(
        (tmp_path / "out" / result["best_checkpoint"] / "trainer_state.json").read_text()
    )["log_history"] if "eval_perplexity" in e]
    assert result["best_perplexity"] == pytest.approx(min(logged))


class Kill(TrainerCallback):
    """Dies as step ``at`` begins, after the checkpoint before it was written."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if state.global_step + 1 == self.at:
            raise KeyboardInterrupt


class Steps(TrainerCallback):
    """Counts the optimizer steps a run actually takes."""

    def __init__(self) -> None:
        self.taken = 0

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self.taken += 1


def adapter(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in llava(model).named_parameters() if "lora_" in n}


def test_a_killed_run_resumes_to_the_same_adapter(tokenizer, tmp_path: Path) -> None:
    train, valid = examples(tmp_path / "img", 6), examples(tmp_path / "val", 2, seed=1)
    whole = model_for(tokenizer)
    distill(whole, tokenizer, train, valid, tmp_path / "whole", FAST)
    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        distill(model_for(tokenizer), tokenizer, train, valid, killed, FAST, callbacks=[Kill(5)])
    assert Path(get_last_checkpoint(str(killed))).name == "checkpoint-4"
    resumed, steps = model_for(tokenizer), Steps()
    distill(resumed, tokenizer, train, valid, killed, FAST, callbacks=[steps])
    assert steps.taken == 2  # steps 5 and 6 only: the first four came from checkpoint-4
    want, got = adapter(whole), adapter(resumed)
    assert want.keys() == got.keys()
    assert all(torch.allclose(want[n], got[n], atol=1e-6) for n in want)
    with pytest.raises(BenchError, match="holds a different stage-1 run"):
        distill(model_for(tokenizer), tokenizer, train, valid, killed,
                FAST.model_copy(update={"learning_rate": 1e-3}))


@pytest.mark.slow
def test_data_parallel_on_two_cpu_processes(tmp_path: Path) -> None:
    """torchrun, not a line changed: each process sees half the data (6 examples, batch 2:
    2 steps, not 3) and the gradients are synchronised (identical adapters)."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "tests.lavic.ddp_distill", str(tmp_path)],
        cwd=root, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(r["world"], r["steps"]) for r in ranks] == [(2, 2), (2, 2)]
    assert ranks[0]["adapter"] == ranks[1]["adapter"]
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
    assert json.loads((tmp_path / "run" / "result.json").read_text())["stage"] == "distill"
